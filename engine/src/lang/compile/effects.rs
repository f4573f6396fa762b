//! Effects (`emit:` lists of notifications, payments…), checked against the one
//! declared schema of each kind (`crate::effects::schema`): unknown or misspelt fields,
//! missing required ones, wrong types, values outside the allowed set, unknown roles,
//! templates and purposes, template variables nothing supplies. An item may be emitted
//! once per element of a list (`for_each`, `as`).

use super::*;
use crate::effects::schema::{self, Allowed, EffectSchema, FieldSpec, FieldType};

/// The keys of an `emit` item besides its one effect.
const ITEM_KEYS: &[&str] = &["if", "for_each", "as"];

/// What the runtime always gives a notification template besides the effect's fields
/// and the case's variables.
const ALWAYS_SUPPLIED: &[&str] = &["id", "instance", "unit", "process"];

/// A scope with one more name: the element of a `for_each`.
struct WithItem<'a> {
    outer: &'a dyn TypeEnv,
    name: String,
    ty: Type,
}

impl TypeEnv for WithItem<'_> {
    fn var_type(&self, name: &str) -> Option<Type> {
        if name == self.name {
            Some(self.ty.clone())
        } else {
            self.outer.var_type(name)
        }
    }

    fn var_names(&self) -> Vec<String> {
        let mut names = self.outer.var_names();
        names.push(self.name.clone());
        names
    }
}

impl Compiler<'_, '_> {
    pub(super) fn effects(&mut self, y: &Yaml, scope: &dyn TypeEnv) -> Vec<EffectTemplate> {
        let items = self.ctx.seq(y, "emit");
        items
            .iter()
            .filter_map(|item| self.effect(item, scope))
            .collect()
    }

    pub(super) fn effect(&mut self, y: &Yaml, scope: &dyn TypeEnv) -> Option<EffectTemplate> {
        let entries = self.ctx.entries(y, "an effect");
        // `for_each` and `as` first: the element is in scope of everything else.
        let mut for_each = None;
        let mut item_ty = Type::Any;
        let mut item_name = "item".to_string();
        let mut has_for_each = false;
        for (key, value) in entries {
            match key.name.as_str() {
                "for_each" => {
                    has_for_each = true;
                    let list = Type::list(Type::Any);
                    if let Some(e) = self.expr(
                        value,
                        scope,
                        Expect::Assignable(&list, "for_each"),
                        "for_each",
                    ) {
                        if let Type::List(item) = e.result_type() {
                            item_ty = (**item).clone();
                        }
                        for_each = Some(e);
                    }
                }
                "as" => match &value.value {
                    YamlValue::Str(name) if is_identifier(name) => item_name = name.clone(),
                    _ => self.ctx.error(
                        &value.at,
                        codes::E_BAD_VALUE,
                        "`as` names the element of `for_each`: a name of letters, digits and `_`",
                    ),
                },
                _ => {}
            }
        }
        if !has_for_each && let Some((key, _)) = entries.iter().find(|(k, _)| k.name == "as") {
            self.ctx.error(
                &key.at,
                codes::E_MISSING_KEY,
                "`as` names the element of `for_each`, and this item has no `for_each`",
            );
        }
        let inner = WithItem {
            outer: scope,
            name: item_name.clone(),
            ty: item_ty,
        };
        let scope: &dyn TypeEnv = if has_for_each { &inner } else { scope };

        let mut kind = None;
        let mut condition = None;
        let mut fields = Vec::new();
        for (key, value) in entries {
            match key.name.as_str() {
                "if" => {
                    condition = self.expr(value, scope, Expect::Bool, "if");
                    continue;
                }
                "for_each" | "as" => continue,
                _ => {}
            }
            let Some(found) = schema::by_name(&key.name) else {
                let hint = hint_list(
                    &key.name,
                    schema::SCHEMAS
                        .iter()
                        .map(|s| s.kind.as_str())
                        .chain(ITEM_KEYS.iter().copied()),
                );
                self.ctx.error_hint(
                    &key.at,
                    codes::E_UNKNOWN_KEY,
                    format!("unknown effect `{}`", key.name),
                    hint,
                );
                continue;
            };
            if kind.is_some() {
                self.ctx.error(
                    &key.at,
                    codes::E_UNKNOWN_KEY,
                    "an `emit` item has exactly one effect; write each effect as its own item",
                );
                continue;
            }
            kind = Some(found.kind);
            let body = self.ctx.entries(value, found.kind.as_str());
            self.cross_case_checks(found.kind, value, body);
            fields = self.effect_body(found, value, scope);
        }
        match kind {
            Some(kind) => Some(EffectTemplate {
                kind,
                fields,
                condition,
                for_each,
                item_name,
            }),
            None => {
                self.ctx.error(&y.at, codes::E_MISSING_KEY, "an `emit` item needs an effect: notification, payment, payment_stop, start_process, escalation or message");
                None
            }
        }
    }

    /// The fields of one effect, each checked against its schema.
    fn effect_body(
        &mut self,
        schema: &EffectSchema,
        y: &Yaml,
        scope: &dyn TypeEnv,
    ) -> Vec<(String, ValueTemplate)> {
        let name = schema.kind.as_str();
        let body = self.ctx.entries(y, name);
        for spec in schema.fields.iter().filter(|f| f.required) {
            if !body.iter().any(|(k, _)| k.name == spec.name) {
                self.ctx.error(
                    &y.at,
                    codes::E_MISSING_KEY,
                    format!("{name} needs `{}`", spec.name),
                );
            }
        }
        // The template whose variables the other fields are, when the project's are known.
        let template = self.effect_template_name(schema, body);
        let template_vars = match (&template, &self.load.templates) {
            (Some(t), Some(known)) => known.get(t).cloned(),
            _ => None,
        };
        let mut fields = Vec::new();
        for (field, value) in body {
            let Some(spec) = schema.field(&field.name) else {
                let used = template_vars
                    .as_ref()
                    .is_some_and(|vars| vars.uses(&field.name));
                let unchecked = schema.template_variables && template_vars.is_none();
                if !used && !unchecked && !self.load.stored {
                    self.unknown_field(schema, template.as_deref(), field);
                    continue;
                }
                if let Some(t) = self.template(value, scope, None) {
                    fields.push((field.name.clone(), t));
                }
                continue;
            };
            if let Some(t) = self.field_value(name, spec, value, scope) {
                fields.push((field.name.clone(), t));
            }
        }
        if let (Some(template), Some(vars)) = (&template, &template_vars) {
            self.template_variables_supplied(template, vars, body, &y.at);
        }
        fields
    }

    /// The literal template an effect is sent with, checked to exist.
    fn effect_template_name(
        &mut self,
        schema: &EffectSchema,
        body: &[(Key, Yaml)],
    ) -> Option<String> {
        let written = body.iter().find(|(k, _)| k.name == "template");
        match written.map(|(_, v)| &v.value) {
            Some(YamlValue::Str(s)) if !s.starts_with('=') => Some(s.clone()),
            Some(_) => None,
            None => schema.default_template.map(str::to_string),
        }
    }

    fn unknown_field(&mut self, schema: &EffectSchema, template: Option<&str>, field: &Key) {
        let name = schema.kind.as_str();
        let mut known: Vec<String> = schema.fields.iter().map(|f| f.name.to_string()).collect();
        if let (Some(t), Some(templates)) = (template, &self.load.templates)
            && let Some(vars) = templates.get(t)
        {
            known.extend(vars.required.iter().chain(&vars.optional).cloned());
        }
        let hint = hint_list(&field.name, known.iter().map(String::as_str));
        let message = match template {
            Some(t) if schema.template_variables => format!(
                "{name} has no field `{}`, and template `{t}` does not use it",
                field.name
            ),
            _ => format!("{name} has no field `{}`", field.name),
        };
        self.ctx
            .error_hint(&field.at, codes::E_UNKNOWN_KEY, message, hint);
    }

    /// One declared field: its type, and its allowed values when written literally.
    fn field_value(
        &mut self,
        effect: &str,
        spec: &FieldSpec,
        y: &Yaml,
        scope: &dyn TypeEnv,
    ) -> Option<ValueTemplate> {
        let mut t = self.template(y, scope, None)?;
        // A literal date is written as text.
        if let ValueTemplate::Literal(Value::Str(text)) = &t
            && matches!(spec.ty, FieldType::Date | FieldType::DateOrInstant)
            && let Ok(date) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        {
            t = ValueTemplate::Literal(Value::Date(date));
        }
        let fits = match &t {
            ValueTemplate::Literal(v) => spec.ty.accepts_value(v),
            ValueTemplate::Expr(e) => spec.ty.accepts_type(e.result_type()),
            ValueTemplate::List(_) => spec.ty == FieldType::Texts,
            ValueTemplate::Object(_) => spec.ty == FieldType::Object,
        };
        if !fits {
            let given = match &t {
                ValueTemplate::Literal(v) => v.type_name().to_string(),
                ValueTemplate::Expr(e) => e.result_type().to_string(),
                ValueTemplate::List(_) => "a list".into(),
                ValueTemplate::Object(_) => "a mapping".into(),
            };
            self.ctx.error(
                &y.at,
                codes::E_TYPE,
                format!(
                    "{effect} `{}` must be {}, not {given}",
                    spec.name,
                    spec.ty.name()
                ),
            );
            return None;
        }
        self.allowed_literals(effect, spec, y);
        Some(t)
    }

    /// Literal values (not `=expressions`) are checked against what the field allows.
    fn allowed_literals(&mut self, effect: &str, spec: &FieldSpec, y: &Yaml) {
        let literals: Vec<(&str, &Pos)> = match &y.value {
            YamlValue::Str(s) if !s.starts_with('=') => vec![(s.as_str(), &y.at)],
            YamlValue::Seq(items) => items
                .iter()
                .filter_map(|item| match &item.value {
                    YamlValue::Str(s) if !s.starts_with('=') => Some((s.as_str(), &item.at)),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        for (text, at) in literals {
            match spec.allowed {
                Allowed::Any => {}
                Allowed::Values(values) if !values.contains(&text) => {
                    let hint = hint_list(text, values.iter().copied());
                    self.ctx.error_hint(
                        at,
                        codes::E_BAD_VALUE,
                        format!("{effect} `{}` cannot be `{text}`", spec.name),
                        hint,
                    );
                }
                Allowed::Values(_) => {}
                Allowed::Roles => self.role(text, at),
                Allowed::Processes => self.process_refs.push(ProcessRef {
                    process: text.to_string(),
                    line: at.line,
                    column: at.column,
                }),
                Allowed::Templates => {
                    if let Some(known) = &self.load.templates
                        && !known.contains_key(text)
                    {
                        let hint = hint_list(text, known.keys().map(String::as_str));
                        self.ctx.error_hint(
                            at,
                            codes::E_UNKNOWN_TEMPLATE,
                            format!("unknown notification template `{text}`"),
                            hint,
                        );
                    }
                }
                Allowed::Purposes => {
                    if let Some(known) = &self.load.purposes
                        && !known.contains(text)
                    {
                        let hint = hint_list(text, known.iter().map(String::as_str));
                        self.ctx.error_hint(
                            at,
                            codes::E_UNKNOWN_PURPOSE,
                            format!("unknown payment purpose `{text}`"),
                            hint,
                        );
                    }
                }
            }
        }
    }

    /// Every variable a template needs comes from the effect's fields, the case's
    /// variables or what the runtime always supplies.
    fn template_variables_supplied(
        &mut self,
        template: &str,
        vars: &TemplateVars,
        body: &[(Key, Yaml)],
        at: &Pos,
    ) {
        for needed in &vars.required {
            let supplied = body.iter().any(|(k, _)| &k.name == needed)
                || self.declared.contains_key(needed)
                || ALWAYS_SUPPLIED.contains(&needed.as_str());
            if !supplied {
                self.ctx.error_hint(
                    at,
                    codes::E_TEMPLATE_VARIABLE,
                    format!(
                        "template `{template}` needs `{needed}`, which neither this effect nor the case's variables supply"
                    ),
                    format!("add `{needed}: \"=…\"` to the effect, or declare the variable"),
                );
            }
        }
    }
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
