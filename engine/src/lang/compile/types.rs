//! Types and values: `{type: …}` specs, bare type names, literals, forms
//! (field lists) and numeric bounds.

use super::*;

impl Compiler<'_, '_> {
    /// A type with its options, written bare (`string`) or as a mapping.
    pub(super) fn spec<'y>(&mut self, y: &'y Yaml, kind: SpecKind, what: &str) -> Option<Spec<'y>> {
        let mut spec = Spec {
            ty: Type::Any,
            label: None,
            required: false,
            default: None,
            required_when: None,
            min: None,
            max: None,
            min_items: None,
        };
        if let YamlValue::Str(name) = &y.value {
            spec.ty = self.bare_type(name, y, what)?;
            return Some(spec);
        }
        let mut f = self.ctx.fields(y, what)?;
        let type_yaml = f.required(self.ctx, "type");
        let type_name = type_yaml.and_then(|t| self.ctx.str(t, "type"));
        spec.ty = match type_name {
            Some("enum") => match f.required(self.ctx, "values") {
                Some(values) => {
                    let values: Vec<String> = self
                        .ctx
                        .str_list(values, "values")
                        .into_iter()
                        .map(|(v, _)| v)
                        .collect();
                    if values.is_empty() {
                        self.ctx.error(
                            &y.at,
                            codes::E_BAD_VALUE,
                            format!("{what}: an enum needs values"),
                        );
                    }
                    Type::Enum(values)
                }
                None => Type::Any,
            },
            Some("list") => match f.get("of") {
                Some(of) => {
                    let item = self
                        .spec(of, SpecKind::Nested, what)
                        .map_or(Type::Any, |s| s.ty);
                    Type::list(item)
                }
                None => Type::list(Type::Any),
            },
            Some("object") => match f.get("fields") {
                Some(fields) => {
                    let mut map = BTreeMap::new();
                    for (key, field) in self.ctx.entries(fields, "fields") {
                        let sub = format!("{what}.{}", key.name);
                        if let Some(s) = self.spec(field, SpecKind::Nested, &sub) {
                            map.insert(key.name.clone(), s.ty);
                        }
                    }
                    Type::Object {
                        fields: map,
                        open: false,
                    }
                }
                None => Type::open_object(),
            },
            Some(name) => type_yaml.and_then(|t| self.bare_type(name, t, what))?,
            None => Type::Any,
        };
        spec.label = f
            .get("label")
            .and_then(|l| self.ctx.str(l, "label"))
            .map(str::to_string);
        if kind != SpecKind::Nested {
            spec.required = f
                .get("required")
                .and_then(|r| self.ctx.bool(r, "required"))
                .unwrap_or(false);
            spec.default = f.get("default");
        }
        if kind == SpecKind::FormField {
            spec.required_when = f.get("required_when");
            spec.min = f.get("min");
            spec.max = f.get("max");
            spec.min_items = f
                .get("min_items")
                .and_then(|m| self.ctx.count(m, "min_items"));
        }
        f.finish(self.ctx);
        Some(spec)
    }

    pub(super) fn bare_type(&mut self, name: &str, y: &Yaml, what: &str) -> Option<Type> {
        Some(match name {
            "string" => Type::String,
            "int" => Type::Int,
            "decimal" => Type::Decimal,
            "bool" => Type::Bool,
            "date" => Type::Date,
            "datetime" => Type::DateTime,
            "list" => Type::list(Type::Any),
            "object" => Type::open_object(),
            "household" => household_type(),
            "enum" => {
                self.ctx.error_hint(
                    &y.at,
                    codes::E_MISSING_KEY,
                    format!("{what}: an enum needs its values"),
                    "write {type: enum, values: [a, b]}",
                );
                return None;
            }
            other => {
                let hint = hint_list(other, TYPE_NAMES.iter().copied());
                self.ctx.error_hint(
                    &y.at,
                    codes::E_UNKNOWN_TYPE,
                    format!("{what}: unknown type `{other}`"),
                    hint,
                );
                return None;
            }
        })
    }

    /// A literal YAML value checked against `ty`.
    pub(super) fn literal(&mut self, y: &Yaml, ty: &Type, what: &str) -> Option<Value> {
        let value = plain_value(y);
        match value.coerce(ty, "$") {
            Ok(v) => Some(v),
            Err(err) => {
                self.ctx.error(
                    &y.at,
                    codes::E_WRONG_TYPE,
                    format!("{what}: the default does not fit its type: {}", err.message),
                );
                None
            }
        }
    }

    /// Form fields (task forms, message payloads) and the object type they make.
    pub(super) fn form(&mut self, y: &Yaml, what: &str) -> (Vec<FieldDecl>, Type) {
        let mut decls = Vec::new();
        let mut specs = Vec::new();
        for (key, field) in self.ctx.entries(y, what) {
            if !is_identifier(&key.name) {
                self.ctx.error(
                    &key.at,
                    codes::E_BAD_ID,
                    format!("form field `{}` is not a valid identifier", key.name),
                );
                continue;
            }
            let sub = format!("form field `{}`", key.name);
            if let Some(spec) = self.spec(field, SpecKind::FormField, &sub) {
                specs.push((key.name.clone(), spec));
            }
        }
        let ty = Type::Object {
            fields: specs
                .iter()
                .map(|(n, s)| (n.clone(), s.ty.clone()))
                .collect(),
            open: false,
        };
        for (name, spec) in specs {
            let what = format!("form field `{name}`");
            let form_scope_ty = ty.clone();
            let required_when = spec.required_when.and_then(|c| {
                let base = self.base.clone();
                let scope = Scope::new(&base)
                    .with("form", form_scope_ty.clone())
                    .with("message", form_scope_ty);
                self.expr(c, &scope, Expect::Bool, "required_when")
            });
            let default = spec.default.and_then(|d| {
                let base = self.base.clone();
                let scope = Scope::new(&base);
                self.template(d, &scope, Some(&spec.ty))
            });
            let min = spec.min.and_then(|m| self.bound(m, &spec.ty, &what));
            let max = spec.max.and_then(|m| self.bound(m, &spec.ty, &what));
            decls.push(FieldDecl {
                name,
                ty: spec.ty,
                label: spec.label,
                required: spec.required,
                required_when,
                default,
                min,
                max,
                min_items: spec.min_items,
            });
        }
        (decls, ty)
    }

    pub(super) fn bound(&mut self, y: &Yaml, ty: &Type, what: &str) -> Option<Value> {
        let target = match ty {
            Type::Int => Type::Int,
            Type::Decimal => Type::Decimal,
            Type::Date => Type::Date,
            _ => {
                self.ctx.error(
                    &y.at,
                    codes::E_WRONG_TYPE,
                    format!("{what}: min/max apply to int, decimal and date fields, not {ty}"),
                );
                return None;
            }
        };
        self.literal(y, &target, what)
    }
}
