//! Compilation of the YAML tree into a [`Definition`]: names resolved to
//! indexes, types read, expressions parsed and type-checked against the scope
//! of the place they appear in, durations and cron expressions validated.
//! Every problem is recorded in the [`Ctx`] and reading goes on, so one run
//! reports them all; the definition is only returned when there were none.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use jiuzhu_rules::expr::{Expr, TypeEnv};
use jiuzhu_rules::{Type, Value};
use rust_decimal::Decimal;

use super::LoadContext;
use super::diagnostic::{codes, did_you_mean};
use super::graph;
use super::model::*;
use super::read::{Ctx, Fields};
use super::scope::{Scope, assessment_type, builtins, household_type};
use super::yaml::{Pos, Yaml, YamlValue};
use crate::duration::Duration;

/// Most nodes a definition may have.
pub const MAX_NODES: usize = 1000;

/// The node types and the keys each accepts besides `id`, `type` and `name`.
const NODE_TYPES: &[&str] = &[
    "task", "rule", "compute", "choice", "parallel", "join", "timer", "receive", "end",
];

const TYPE_NAMES: &[&str] = &[
    "string",
    "int",
    "decimal",
    "bool",
    "date",
    "datetime",
    "enum",
    "list",
    "object",
    "household",
];

/// A `start_process` effect naming a process literally, checked across the set by `load_dir`.
#[derive(Debug, Clone)]
pub struct ProcessRef {
    pub process: String,
    pub line: u64,
    pub column: u64,
}

/// Where a compiled definition's nodes were written, for graph diagnostics.
struct NodeHead<'y> {
    id: String,
    at: Pos,
    kind: String,
    yaml: &'y Yaml,
}

/// How a field spec is used: variables and form fields accept different options.
#[derive(Clone, Copy, PartialEq, Eq)]
enum SpecKind {
    Variable,
    FormField,
    Nested,
}

/// What a field spec said besides its type.
struct Spec<'y> {
    ty: Type,
    label: Option<String>,
    required: bool,
    default: Option<&'y Yaml>,
    required_when: Option<&'y Yaml>,
    min: Option<&'y Yaml>,
    max: Option<&'y Yaml>,
    min_items: Option<usize>,
}

/// The expected result of an expression.
#[derive(Clone, Copy)]
enum Expect<'t> {
    Any,
    Bool,
    Assignable(&'t Type, &'t str),
}

pub struct Compiler<'c, 's> {
    pub ctx: &'c mut Ctx<'s>,
    load: &'c LoadContext,
    /// Declared variables + built-ins: the base scope of every expression.
    base: BTreeMap<String, Type>,
    declared: BTreeMap<String, Type>,
    node_ids: BTreeMap<String, NodeIdx>,
    deadline_ids: BTreeMap<String, usize>,
    pub process_refs: Vec<ProcessRef>,
    /// (join node, its split, position of `of`), resolved once all nodes exist.
    joins: Vec<(NodeIdx, NodeIdx, Pos)>,
}

impl<'c, 's> Compiler<'c, 's> {
    pub fn new(ctx: &'c mut Ctx<'s>, load: &'c LoadContext) -> Compiler<'c, 's> {
        Compiler {
            ctx,
            load,
            base: builtins()
                .into_iter()
                .map(|(n, t)| (n.to_string(), t))
                .collect(),
            declared: BTreeMap::new(),
            node_ids: BTreeMap::new(),
            deadline_ids: BTreeMap::new(),
            process_refs: Vec::new(),
            joins: Vec::new(),
        }
    }

    /// A join waits for one arrival per branch of the parallel node named by `of`.
    fn resolve_joins(&mut self, nodes: &mut [Node]) {
        for (join, split, at) in std::mem::take(&mut self.joins) {
            let branches = match nodes.get(split).map(|n| &n.kind) {
                Some(NodeKind::Parallel { branches }) => Some(branches.len()),
                _ => None,
            };
            match (branches, nodes.get_mut(join)) {
                (Some(count), Some(node)) => {
                    if let NodeKind::Join { expected, .. } = &mut node.kind {
                        *expected = count;
                    }
                }
                _ => {
                    let split_id = nodes.get(split).map_or("", |n| n.id.as_str()).to_string();
                    self.ctx.error_hint(
                        &at,
                        codes::E_BAD_JOIN,
                        format!("`of: {split_id}` must name a parallel node"),
                        "a join waits for the branches of the parallel split it names",
                    );
                }
            }
        }
    }

    /// Compiles the whole document; `None` when any problem was found.
    pub fn definition(&mut self, root: &Yaml) -> Option<Definition> {
        let mut top = self.ctx.fields(root, "the process definition")?;
        let id = top
            .required(self.ctx, "process")
            .and_then(|y| self.id(y, "process id"))
            .unwrap_or_default();
        let name = top
            .get("name")
            .and_then(|y| self.ctx.str(y, "name"))
            .map(str::to_string)
            .unwrap_or_else(|| id.clone());
        let description = top
            .get("description")
            .and_then(|y| self.ctx.str(y, "description"))
            .map(str::to_string);
        let calendar = match top.get("calendar") {
            Some(y) => self.calendar(y).unwrap_or_default(),
            None => "cn".to_string(),
        };
        let variables = top
            .get("variables")
            .map(|y| self.variables(y))
            .unwrap_or_default();

        let node_items: &[Yaml] = match top.required(self.ctx, "nodes") {
            Some(y) => self.ctx.seq(y, "nodes"),
            None => &[],
        };
        if node_items.len() > MAX_NODES {
            self.ctx.error(
                &top.key_at("nodes").unwrap_or(top.at),
                codes::E_TOO_LARGE,
                format!(
                    "{} nodes; a definition may have at most {MAX_NODES}",
                    node_items.len()
                ),
            );
            return None;
        }
        let heads = self.node_heads(node_items);
        let deadline_items: &[Yaml] = match top.get("deadlines") {
            Some(y) => self.ctx.seq(y, "deadlines"),
            None => &[],
        };
        self.deadline_heads(deadline_items);

        let mut nodes: Vec<Node> = heads
            .iter()
            .enumerate()
            .map(|(i, head)| self.node(i, head))
            .collect();
        self.resolve_joins(&mut nodes);
        let deadlines: Vec<DeadlineDecl> =
            deadline_items.iter().map(|y| self.deadline(y)).collect();
        let messages = match top.get("messages") {
            Some(y) => self.messages(y),
            None => Vec::new(),
        };
        let schedules = match top.get("schedules") {
            Some(y) => self
                .ctx
                .seq(y, "schedules")
                .iter()
                .filter_map(|s| self.schedule(s))
                .collect(),
            None => Vec::new(),
        };
        let start = match top.get("start") {
            Some(y) => self.node_ref(y, "start"),
            None if heads.is_empty() && top.has("nodes") => {
                self.ctx
                    .error(&top.at, codes::E_MISSING_KEY, "the process has no nodes");
                None
            }
            None if heads.is_empty() => None,
            None => Some(0),
        };
        top.finish(self.ctx);

        let at: Vec<Pos> = heads.iter().map(|h| h.at).collect();
        // Graph checks need every edge: skip them while references are broken,
        // since a missing edge would only produce misleading follow-up errors.
        let edges_intact = !self.ctx.diagnostics.iter().any(|d| {
            [
                codes::E_UNKNOWN_NODE,
                codes::E_MISSING_KEY,
                codes::E_WRONG_TYPE,
                codes::E_DUPLICATE_ID,
                codes::E_UNKNOWN_TYPE,
                codes::E_BAD_ID,
                codes::E_BAD_JOIN,
            ]
            .contains(&d.code)
        });
        if edges_intact && let Some(start) = start {
            graph::check(self.ctx, &nodes, &at, start, &messages);
        }
        if !self.ctx.diagnostics.is_empty() {
            return None;
        }
        Some(Definition {
            id,
            name,
            description,
            calendar,
            variables,
            start: start?,
            nodes,
            deadlines,
            messages,
            schedules,
        })
    }

    // ---- names ---------------------------------------------------------------

    /// An identifier `[a-z][a-z0-9_]*`.
    fn id(&mut self, y: &Yaml, what: &str) -> Option<String> {
        let s = self.ctx.str(y, what)?;
        if is_identifier(s) {
            Some(s.to_string())
        } else {
            self.ctx.error_hint(
                &y.at,
                codes::E_BAD_ID,
                format!("{what} `{s}` is not a valid identifier"),
                "use lowercase letters, digits and `_`, starting with a letter",
            );
            None
        }
    }

    fn calendar(&mut self, y: &Yaml) -> Option<String> {
        let id = self.ctx.str(y, "calendar")?.to_string();
        if let Some(known) = &self.load.calendars
            && !known.contains(&id)
        {
            let hint = hint_list(&id, known.iter().map(String::as_str));
            self.ctx.error_hint(
                &y.at,
                codes::E_UNKNOWN_CALENDAR,
                format!("unknown calendar `{id}`"),
                hint,
            );
        }
        Some(id)
    }

    fn role(&mut self, role: &str, at: &Pos) {
        if let Some(known) = &self.load.roles
            && !known.contains(role)
        {
            let hint = hint_list(role, known.iter().map(String::as_str));
            self.ctx.error_hint(
                at,
                codes::E_UNKNOWN_ROLE,
                format!("unknown role `{role}`"),
                hint,
            );
        }
    }

    fn roles(&mut self, y: &Yaml, what: &str) -> Vec<String> {
        let roles = self.ctx.str_list(y, what);
        for (role, at) in &roles {
            self.role(role, at);
        }
        roles.into_iter().map(|(r, _)| r).collect()
    }

    fn node_ref(&mut self, y: &Yaml, what: &str) -> Option<NodeIdx> {
        let id = self.ctx.str(y, what)?;
        self.resolve_node(id, &y.at)
    }

    fn resolve_node(&mut self, id: &str, at: &Pos) -> Option<NodeIdx> {
        match self.node_ids.get(id) {
            Some(index) => Some(*index),
            None => {
                let message = format!("unknown node `{id}`");
                match did_you_mean(id, self.node_ids.keys().map(String::as_str)) {
                    Some(best) => self.ctx.error_hint(
                        at,
                        codes::E_UNKNOWN_NODE,
                        message,
                        format!("did you mean `{best}`?"),
                    ),
                    None => self.ctx.error(at, codes::E_UNKNOWN_NODE, message),
                }
                None
            }
        }
    }

    fn duration(&mut self, y: &Yaml, what: &str) -> Option<Duration> {
        let text = match &y.value {
            YamlValue::Str(s) => s.clone(),
            YamlValue::Int(i) => i.to_string(),
            _ => {
                self.ctx.wrong_type(y, "a duration like 5wd or 7d", what);
                return None;
            }
        };
        match Duration::from_str(text.trim()) {
            Ok(d) => Some(d),
            Err(err) => {
                self.ctx.error_hint(
                    &y.at,
                    codes::E_BAD_DURATION,
                    format!("{what}: {err}"),
                    "durations are 5wd (working days), 7d, 36h, 30min, 6mo or 1y",
                );
                None
            }
        }
    }

    // ---- variables and types ------------------------------------------------

    fn variables(&mut self, y: &Yaml) -> Vec<VariableDecl> {
        let mut out: Vec<VariableDecl> = Vec::new();
        for (key, spec_yaml) in self.ctx.entries(y, "variables") {
            if !is_identifier(&key.name) {
                self.ctx.error_hint(
                    &key.at,
                    codes::E_BAD_ID,
                    format!("variable name `{}` is not a valid identifier", key.name),
                    "use lowercase letters, digits and `_`, starting with a letter",
                );
                continue;
            }
            if builtins().iter().any(|(b, _)| *b == key.name)
                || ["form", "message", "result", "item"].contains(&key.name.as_str())
            {
                self.ctx.error(
                    &key.at,
                    codes::E_DUPLICATE_ID,
                    format!(
                        "`{}` is a built-in variable and cannot be declared",
                        key.name
                    ),
                );
                continue;
            }
            let what = format!("variable `{}`", key.name);
            let Some(spec) = self.spec(spec_yaml, SpecKind::Variable, &what) else {
                continue;
            };
            let default = spec.default.and_then(|d| self.literal(d, &spec.ty, &what));
            self.declared.insert(key.name.clone(), spec.ty.clone());
            self.base.insert(key.name.clone(), spec.ty.clone());
            out.push(VariableDecl {
                name: key.name.clone(),
                ty: spec.ty,
                label: spec.label,
                required: spec.required,
                default,
            });
        }
        out
    }

    /// A type with its options, written bare (`string`) or as a mapping.
    fn spec<'y>(&mut self, y: &'y Yaml, kind: SpecKind, what: &str) -> Option<Spec<'y>> {
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

    fn bare_type(&mut self, name: &str, y: &Yaml, what: &str) -> Option<Type> {
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
    fn literal(&mut self, y: &Yaml, ty: &Type, what: &str) -> Option<Value> {
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
    fn form(&mut self, y: &Yaml, what: &str) -> (Vec<FieldDecl>, Type) {
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

    fn bound(&mut self, y: &Yaml, ty: &Type, what: &str) -> Option<Value> {
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

    // ---- expressions ----------------------------------------------------------

    /// Compiles the expression written in scalar `y` (skipping `skip` leading
    /// bytes, the `=` of a template), mapping errors to file positions.
    fn expr_at(
        &mut self,
        y: &Yaml,
        text: &str,
        skip: usize,
        scope: &dyn TypeEnv,
        expect: Expect<'_>,
    ) -> Option<Expr> {
        let src = text.get(skip..).unwrap_or_default();
        match Expr::compile(src, scope) {
            Ok(expr) => {
                let ty = expr.result_type().clone();
                let ok = match expect {
                    Expect::Any => true,
                    Expect::Bool => matches!(ty, Type::Bool | Type::Any),
                    Expect::Assignable(target, _) => assignable(target, &ty),
                };
                if !ok {
                    let (line, column) = self.ctx.lines.scalar_position(&y.at, text, skip);
                    let message = match expect {
                        Expect::Assignable(target, name) => {
                            format!("`{src}` is {ty}, but `{name}` is {target}")
                        }
                        _ => format!("a condition must be a bool, but `{src}` is {ty}"),
                    };
                    self.ctx.push(line, column, codes::E_TYPE, message, None);
                    return None;
                }
                Some(expr)
            }
            Err(errors) => {
                for e in errors {
                    let (line, column) =
                        self.ctx.lines.scalar_position(&y.at, text, skip + e.offset);
                    self.ctx.push(line, column, e.code, e.message, e.hint);
                }
                None
            }
        }
    }

    /// An expression written as a scalar (conditions, assignments).
    fn expr(
        &mut self,
        y: &Yaml,
        scope: &dyn TypeEnv,
        expect: Expect<'_>,
        what: &str,
    ) -> Option<Expr> {
        let text = match &y.value {
            YamlValue::Str(s) => s.clone(),
            YamlValue::Bool(b) => b.to_string(),
            YamlValue::Int(i) => i.to_string(),
            YamlValue::Number(n) => n.clone(),
            _ => {
                self.ctx.wrong_type(y, "an expression (a string)", what);
                return None;
            }
        };
        self.expr_at(y, &text, 0, scope, expect)
    }

    /// A value: literal, `=expression`, or a list/mapping of those.
    fn template(
        &mut self,
        y: &Yaml,
        scope: &dyn TypeEnv,
        ty: Option<&Type>,
    ) -> Option<ValueTemplate> {
        match &y.value {
            YamlValue::Str(s) if s.starts_with('=') => {
                let expect = ty.map_or(Expect::Any, |t| Expect::Assignable(t, "the field"));
                self.expr_at(y, s, 1, scope, expect)
                    .map(ValueTemplate::Expr)
            }
            YamlValue::Seq(items) => {
                let mut out = Vec::new();
                for item in items {
                    out.push(self.template(item, scope, None)?);
                }
                Some(ValueTemplate::List(out))
            }
            YamlValue::Map(entries) => {
                let mut out = Vec::new();
                for (key, value) in entries {
                    if let Some(t) = self.template(value, scope, None) {
                        out.push((key.name.clone(), t));
                    }
                }
                Some(ValueTemplate::Object(out))
            }
            _ => match ty {
                Some(ty) => self.literal(y, ty, "value").map(ValueTemplate::Literal),
                None => Some(ValueTemplate::Literal(plain_value(y))),
            },
        }
    }

    fn assignments(&mut self, y: &Yaml, scope: &dyn TypeEnv) -> Vec<Assignment> {
        let mut out = Vec::new();
        for (key, value) in self.ctx.entries(y, "set") {
            let Some(target) = self.declared.get(&key.name).cloned() else {
                let message = if self.base.contains_key(&key.name) {
                    format!(
                        "`{}` is a built-in variable and cannot be assigned",
                        key.name
                    )
                } else {
                    format!("`set` assigns the undeclared variable `{}`", key.name)
                };
                let hint = match did_you_mean(&key.name, self.declared.keys().map(String::as_str)) {
                    Some(best) => format!("did you mean `{best}`?"),
                    None => "declare it under `variables:`".to_string(),
                };
                self.ctx
                    .error_hint(&key.at, codes::E_UNKNOWN_VARIABLE, message, hint);
                continue;
            };
            if let Some(expr) =
                self.expr(value, scope, Expect::Assignable(&target, &key.name), "set")
            {
                out.push(Assignment {
                    variable: key.name.clone(),
                    value: expr,
                });
            }
        }
        out
    }

    // ---- effects ------------------------------------------------------------

    fn effects(&mut self, y: &Yaml, scope: &dyn TypeEnv) -> Vec<EffectTemplate> {
        let items = self.ctx.seq(y, "emit");
        items
            .iter()
            .filter_map(|item| self.effect(item, scope))
            .collect()
    }

    fn effect(&mut self, y: &Yaml, scope: &dyn TypeEnv) -> Option<EffectTemplate> {
        const KINDS: &[(&str, EffectKind, &[&str])] = &[
            ("notification", EffectKind::Notification, &["template"]),
            ("payment", EffectKind::Payment, &["amount", "purpose"]),
            ("payment_stop", EffectKind::PaymentStop, &["purpose"]),
            ("start_process", EffectKind::StartProcess, &["process"]),
            ("escalation", EffectKind::Escalation, &["to_role"]),
        ];
        let entries = self.ctx.entries(y, "an effect");
        let mut kind = None;
        let mut condition = None;
        let mut fields = Vec::new();
        for (key, value) in entries {
            if key.name == "if" {
                condition = self.expr(value, scope, Expect::Bool, "if");
                continue;
            }
            let Some((_, k, required)) = KINDS.iter().find(|(name, _, _)| *name == key.name) else {
                let hint = hint_list(&key.name, KINDS.iter().map(|(n, _, _)| *n).chain(["if"]));
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
            kind = Some(*k);
            let body = self.ctx.entries(value, key.name.as_str());
            for field in *required {
                if !body.iter().any(|(k, _)| k.name == *field) {
                    self.ctx.error(
                        &value.at,
                        codes::E_MISSING_KEY,
                        format!("{} needs `{field}`", key.name),
                    );
                }
            }
            for (field, field_value) in body {
                if let Some(t) = self.template(field_value, scope, None) {
                    self.effect_field_checks(*k, &field.name, field_value);
                    fields.push((field.name.clone(), t));
                }
            }
        }
        match kind {
            Some(kind) => Some(EffectTemplate {
                kind,
                fields,
                condition,
            }),
            None => {
                self.ctx.error(&y.at, codes::E_MISSING_KEY, "an `emit` item needs an effect: notification, payment, payment_stop, start_process or escalation");
                None
            }
        }
    }

    /// Literal roles and process ids in effects are checked like everywhere else.
    fn effect_field_checks(&mut self, kind: EffectKind, field: &str, y: &Yaml) {
        let YamlValue::Str(s) = &y.value else { return };
        if s.starts_with('=') {
            return;
        }
        match (kind, field) {
            (_, "to_role") => self.role(s, &y.at),
            (EffectKind::StartProcess, "process") => self.process_refs.push(ProcessRef {
                process: s.clone(),
                line: y.at.line,
                column: y.at.column,
            }),
            (EffectKind::Payment, "schedule") if s != "once" && s != "monthly" => {
                self.ctx.error(
                    &y.at,
                    codes::E_BAD_VALUE,
                    format!("payment schedule `{s}` must be `once` or `monthly`"),
                );
            }
            _ => {}
        }
    }

    // ---- nodes --------------------------------------------------------------

    /// First pass over the nodes: ids and types, so references resolve in any order.
    fn node_heads<'y>(&mut self, items: &'y [Yaml]) -> Vec<NodeHead<'y>> {
        let mut heads = Vec::new();
        for (index, item) in items.iter().enumerate() {
            let YamlValue::Map(entries) = &item.value else {
                self.ctx.wrong_type(item, "a mapping", "a node");
                // Keep indexes aligned with the list: a placeholder head.
                heads.push(NodeHead {
                    id: String::new(),
                    at: item.at,
                    kind: String::new(),
                    yaml: item,
                });
                continue;
            };
            let get = |k: &str| {
                entries
                    .iter()
                    .find(|(key, _)| key.name == k)
                    .map(|(_, v)| v)
            };
            let id = match get("id") {
                Some(y) => self.id(y, "node id").unwrap_or_default(),
                None => {
                    self.ctx
                        .error(&item.at, codes::E_MISSING_KEY, "a node needs `id`");
                    String::new()
                }
            };
            let at = get("id").map_or(item.at, |y| y.at);
            if !id.is_empty() {
                if self.node_ids.contains_key(&id) {
                    self.ctx.error_hint(
                        &at,
                        codes::E_DUPLICATE_ID,
                        format!("duplicate node id `{id}`"),
                        "node ids must be unique within a process",
                    );
                } else {
                    self.node_ids.insert(id.clone(), index);
                }
            }
            let kind = match get("type") {
                Some(y) => match self.ctx.str(y, "node type") {
                    Some(t) if NODE_TYPES.contains(&t) => t.to_string(),
                    Some(t) => {
                        let hint = hint_list(t, NODE_TYPES.iter().copied());
                        self.ctx.error_hint(
                            &y.at,
                            codes::E_UNKNOWN_TYPE,
                            format!("unknown node type `{t}`"),
                            hint,
                        );
                        String::new()
                    }
                    None => String::new(),
                },
                None => {
                    self.ctx.error(
                        &item.at,
                        codes::E_MISSING_KEY,
                        format!("node `{id}` needs `type`"),
                    );
                    String::new()
                }
            };
            heads.push(NodeHead {
                id,
                at,
                kind,
                yaml: item,
            });
        }
        heads
    }

    fn node(&mut self, index: NodeIdx, head: &NodeHead<'_>) -> Node {
        let placeholder = Node {
            id: head.id.clone(),
            name: head.id.clone(),
            kind: NodeKind::Compute,
            completion: Completion::default(),
        };
        if head.kind.is_empty() {
            // Its problem (not a mapping, no or unknown type) is already reported.
            return placeholder;
        }
        let Some(mut f) = self.ctx.fields(head.yaml, &format!("node `{}`", head.id)) else {
            return placeholder;
        };
        f.get("id");
        f.get("type");
        let name = f
            .get("name")
            .and_then(|y| self.ctx.str(y, "name"))
            .map_or_else(|| head.id.clone(), str::to_string);
        let base = self.base.clone();
        let (kind, completion) = match head.kind.as_str() {
            "task" => self.task(&mut f, &base),
            "rule" => self.rule(&mut f, &base),
            "compute" => {
                let scope = Scope::new(&base);
                (NodeKind::Compute, self.completion(&mut f, &scope, true))
            }
            "choice" => {
                let scope = Scope::new(&base);
                let next = self.next(&mut f, &scope, true);
                (
                    NodeKind::Choice,
                    Completion {
                        next,
                        ..Completion::default()
                    },
                )
            }
            "parallel" => {
                let branches = match f.required(self.ctx, "branches") {
                    Some(y) => {
                        let ids = self.ctx.str_list(y, "branches");
                        if ids.len() < 2 {
                            self.ctx.error(
                                &y.at,
                                codes::E_BAD_VALUE,
                                "a parallel node needs at least two branches",
                            );
                        }
                        ids.iter()
                            .filter_map(|(id, at)| self.resolve_node(id, at))
                            .collect()
                    }
                    None => Vec::new(),
                };
                (NodeKind::Parallel { branches }, Completion::default())
            }
            "join" => {
                let split = f.required(self.ctx, "of").and_then(|y| {
                    let split = self.node_ref(y, "of")?;
                    Some((split, y.at))
                });
                let scope = Scope::new(&base);
                let completion = self.completion(&mut f, &scope, true);
                match split {
                    Some((split, at)) => {
                        self.joins.push((index, split, at));
                        (NodeKind::Join { split, expected: 0 }, completion)
                    }
                    None => (NodeKind::Compute, completion),
                }
            }
            "timer" => {
                let scope = Scope::new(&base);
                let spec = self.timer_spec(&mut f, &scope, "wait");
                let completion = self.completion(&mut f, &scope, true);
                (
                    NodeKind::Timer(spec.unwrap_or(TimerSpec::After(Duration::working_days(0)))),
                    completion,
                )
            }
            "receive" => (
                NodeKind::Receive(self.receive(&mut f, &base)),
                Completion::default(),
            ),
            "end" => {
                let scope = Scope::new(&base);
                let status = match f.get("status") {
                    Some(y) => match self.ctx.str(y, "status") {
                        Some("completed") | None => EndStatus::Completed,
                        Some("terminated") => EndStatus::Terminated,
                        Some(other) => {
                            self.ctx.error(
                                &y.at,
                                codes::E_BAD_VALUE,
                                format!("end status `{other}` must be `completed` or `terminated`"),
                            );
                            EndStatus::Completed
                        }
                    },
                    None => EndStatus::Completed,
                };
                (
                    NodeKind::End { status },
                    self.completion(&mut f, &scope, false),
                )
            }
            _ => (NodeKind::Compute, Completion::default()),
        };
        f.finish(self.ctx);
        Node {
            id: head.id.clone(),
            name,
            kind,
            completion,
        }
    }

    /// `set`, `emit`, `outcome` and (unless an end node) `next`.
    fn completion(
        &mut self,
        f: &mut Fields<'_>,
        scope: &dyn TypeEnv,
        has_next: bool,
    ) -> Completion {
        let set = f
            .get("set")
            .map(|y| self.assignments(y, scope))
            .unwrap_or_default();
        let emit = f
            .get("emit")
            .map(|y| self.effects(y, scope))
            .unwrap_or_default();
        let outcome = f
            .get("outcome")
            .and_then(|y| self.ctx.str(y, "outcome"))
            .map(str::to_string);
        let next = if has_next {
            self.next(f, scope, false)
        } else {
            Vec::new()
        };
        Completion {
            set,
            emit,
            outcome,
            next,
        }
    }

    /// `next: id` or a list of `{if, to}` ending with a default `{to}`.
    fn next(
        &mut self,
        f: &mut Fields<'_>,
        scope: &dyn TypeEnv,
        conditional_only: bool,
    ) -> Vec<Transition> {
        let Some(y) = f.required(self.ctx, "next") else {
            return Vec::new();
        };
        if let YamlValue::Str(id) = &y.value {
            if conditional_only {
                self.ctx.error_hint(
                    &y.at,
                    codes::E_WRONG_TYPE,
                    "a choice needs a list of `{if, to}` transitions",
                    "for an unconditional step use a compute node or point `next` past the choice",
                );
            }
            return self
                .resolve_node(id, &y.at)
                .map(|target| {
                    vec![Transition {
                        condition: None,
                        target,
                    }]
                })
                .unwrap_or_default();
        }
        let items = self.ctx.seq(y, "next");
        let mut out = Vec::new();
        let mut conditions: Vec<String> = Vec::new();
        let mut has_default = false;
        for (index, item) in items.iter().enumerate() {
            let Some(mut t) = self.ctx.fields(item, "a transition") else {
                continue;
            };
            let condition_yaml = t.get("if");
            let target = t
                .required(self.ctx, "to")
                .and_then(|to| self.node_ref(to, "to"));
            t.finish(self.ctx);
            let condition = match condition_yaml {
                Some(c) => {
                    if let YamlValue::Str(s) = &c.value {
                        conditions.push(s.clone());
                    }
                    self.expr(c, scope, Expect::Bool, "if")
                }
                None => {
                    has_default = true;
                    if index + 1 != items.len() {
                        self.ctx.error(
                            &item.at,
                            codes::E_BAD_VALUE,
                            "the default transition (without `if`) must come last",
                        );
                    }
                    None
                }
            };
            if let Some(target) = target {
                out.push(Transition { condition, target });
            }
        }
        if items.is_empty() {
            self.ctx
                .error(&y.at, codes::E_MISSING_KEY, "`next` lists no transition");
        } else if !has_default && !graph::exhaustive(&conditions, scope) {
            self.ctx.error_hint(
                &y.at,
                codes::E_NO_DEFAULT,
                "these conditions may all be false, and there is no default transition",
                "end the list with a default `{to: ID}` (no `if`)",
            );
        }
        out
    }

    fn timer_spec(
        &mut self,
        f: &mut Fields<'_>,
        scope: &dyn TypeEnv,
        after_key: &'static str,
    ) -> Option<TimerSpec> {
        let after = f.get(after_key);
        let until = f.get("until");
        match (after, until) {
            (Some(a), None) => self.duration(a, after_key).map(TimerSpec::After),
            (None, Some(u)) => {
                let expr = self.expr(u, scope, Expect::Any, "until")?;
                if !matches!(expr.result_type(), Type::Date | Type::DateTime | Type::Any) {
                    self.ctx.error(
                        &u.at,
                        codes::E_TYPE,
                        format!(
                            "`until` must be a date or datetime, not {}",
                            expr.result_type()
                        ),
                    );
                    return None;
                }
                Some(TimerSpec::Until(expr))
            }
            (Some(_), Some(u)) => {
                self.ctx.error(
                    &u.at,
                    codes::E_BAD_VALUE,
                    format!("give either `{after_key}` or `until`, not both"),
                );
                None
            }
            (None, None) => {
                self.ctx.error(
                    &f.at,
                    codes::E_MISSING_KEY,
                    format!(
                        "a timer needs `{after_key}` (a duration) or `until` (a date expression)"
                    ),
                );
                None
            }
        }
    }

    fn task(
        &mut self,
        f: &mut Fields<'_>,
        base: &BTreeMap<String, Type>,
    ) -> (NodeKind, Completion) {
        let mut roles = Vec::new();
        if let Some(y) = f.get("role") {
            roles.extend(self.roles(y, "role"));
        }
        if let Some(y) = f.get("roles") {
            roles.extend(self.roles(y, "roles"));
        }
        let scope = Scope::new(base);
        let unit = f
            .get("unit")
            .and_then(|y| self.expr(y, &scope, Expect::Assignable(&Type::String, "unit"), "unit"));
        let (form, form_ty) = match f.get("form") {
            Some(y) => self.form(y, "form"),
            None => (
                Vec::new(),
                Type::Object {
                    fields: BTreeMap::new(),
                    open: false,
                },
            ),
        };
        let deadline = f.get("deadline").and_then(|y| self.task_deadline(y));
        let separate_from = match f.get("separate_from") {
            Some(y) => self
                .ctx
                .str_list(y, "separate_from")
                .iter()
                .filter_map(|(id, at)| self.resolve_node(id, at))
                .collect(),
            None => Vec::new(),
        };
        let form_scope = Scope::new(base).with("form", form_ty.clone());
        let (multi, item_ty) = match f.get("multi") {
            Some(y) => self.multi(y, base, &form_ty),
            None => (None, None),
        };
        let assignee = f.get("assignee").and_then(|y| {
            let scope = match &item_ty {
                Some(t) => Scope::new(base).with("item", t.clone()),
                None => Scope::new(base),
            };
            self.expr(
                y,
                &scope,
                Expect::Assignable(&Type::String, "assignee"),
                "assignee",
            )
        });
        if roles.is_empty() && assignee.is_none() && multi.is_none() {
            self.ctx.error_hint(
                &f.at,
                codes::E_MISSING_KEY,
                "a task needs `role`, `roles`, `assignee` or `multi`",
                "name the role whose users may claim it",
            );
        }
        let on = match f.get("on") {
            Some(y) => self.handlers(y, base),
            None => Vec::new(),
        };
        let completion = self.completion(f, &form_scope, true);
        (
            NodeKind::Task(TaskDecl {
                roles,
                unit,
                assignee,
                form,
                deadline,
                separate_from,
                multi,
                on,
            }),
            completion,
        )
    }

    fn task_deadline(&mut self, y: &Yaml) -> Option<TaskDeadline> {
        let mut f = self.ctx.fields(y, "deadline")?;
        let due = f
            .required(self.ctx, "due")
            .and_then(|d| self.duration(d, "due"));
        let remind_before = f
            .get("remind_before")
            .and_then(|d| self.duration(d, "remind_before"));
        let escalate_to = f.get("escalate_to").and_then(|r| {
            let role = self.ctx.str(r, "escalate_to")?.to_string();
            self.role(&role, &r.at);
            Some(role)
        });
        f.finish(self.ctx);
        Some(TaskDeadline {
            due: due?,
            remind_before,
            escalate_to,
        })
    }

    fn multi(
        &mut self,
        y: &Yaml,
        base: &BTreeMap<String, Type>,
        form_ty: &Type,
    ) -> (Option<MultiInstance>, Option<Type>) {
        let Some(mut f) = self.ctx.fields(y, "multi") else {
            return (None, None);
        };
        let scope = Scope::new(base);
        let for_each = f.required(self.ctx, "for_each").and_then(|e| {
            let expr = self.expr(e, &scope, Expect::Any, "for_each")?;
            if !matches!(expr.result_type(), Type::List(_) | Type::Any) {
                self.ctx.error(
                    &e.at,
                    codes::E_TYPE,
                    format!("`for_each` must be a list, not {}", expr.result_type()),
                );
                return None;
            }
            Some(expr)
        });
        let item_ty = for_each.as_ref().map(|e| match e.result_type() {
            Type::List(item) => (**item).clone(),
            _ => Type::Any,
        });
        let collect = f.required(self.ctx, "collect").and_then(|c| {
            let name = self.ctx.str(c, "collect")?.to_string();
            match self.declared.get(&name) {
                Some(Type::List(_) | Type::Any) => Some(name),
                Some(other) => {
                    self.ctx.error(
                        &c.at,
                        codes::E_TYPE,
                        format!("`collect` variable `{name}` must be a list, not {other}"),
                    );
                    None
                }
                None => {
                    self.ctx.error_hint(
                        &c.at,
                        codes::E_UNKNOWN_VARIABLE,
                        format!("`collect` names the undeclared variable `{name}`"),
                        "declare it under `variables:` with type list",
                    );
                    None
                }
            }
        });
        let when_scope = Scope::new(base).with("form", form_ty.clone());
        let complete_when = f
            .required(self.ctx, "complete_when")
            .and_then(|c| self.expr(c, &when_scope, Expect::Bool, "complete_when"));
        f.finish(self.ctx);
        match (for_each, collect, complete_when) {
            (Some(for_each), Some(collect), Some(complete_when)) => (
                Some(MultiInstance {
                    for_each,
                    collect,
                    complete_when,
                }),
                item_ty,
            ),
            _ => (None, item_ty),
        }
    }

    fn rule(
        &mut self,
        f: &mut Fields<'_>,
        base: &BTreeMap<String, Type>,
    ) -> (NodeKind, Completion) {
        const INPUTS: &[(&str, &str)] = &[
            ("household", "household"),
            ("area", "area"),
            ("as_of", "date_of(now)"),
            ("request", "request"),
        ];
        let program_at = f.key_at("program").unwrap_or(f.at);
        let program = f.required(self.ctx, "program").and_then(|y| {
            let p = self.ctx.str(y, "program")?.to_string();
            if !self.load.programs.contains(&p) {
                let hint = hint_list(&p, self.load.programs.iter().map(String::as_str));
                self.ctx.error_hint(
                    &y.at,
                    codes::E_UNKNOWN_PROGRAM,
                    format!("unknown assessment program `{p}`"),
                    hint,
                );
            }
            Some(p)
        });
        let scope = Scope::new(base);
        let mut inputs = Vec::new();
        let given: Vec<(String, Yaml)> = match f.get("input") {
            Some(y) => self
                .ctx
                .entries(y, "input")
                .iter()
                .map(|(k, v)| (k.name.clone(), v.clone()))
                .collect(),
            None => Vec::new(),
        };
        for (name, value) in &given {
            if !INPUTS.iter().any(|(n, _)| n == name) {
                let hint = hint_list(name, INPUTS.iter().map(|(n, _)| *n));
                self.ctx.error_hint(
                    &value.at,
                    codes::E_UNKNOWN_KEY,
                    format!("unknown rule input `{name}`"),
                    hint,
                );
                continue;
            }
            if let Some(e) = self.expr(value, &scope, Expect::Any, "input") {
                inputs.push((name.clone(), e));
            }
        }
        for (name, default) in INPUTS {
            let needed = *name != "request" || program.as_deref() == Some("temporary_aid");
            if !needed || given.iter().any(|(n, _)| n == name) {
                continue;
            }
            match Expr::compile(default, &scope) {
                Ok(e) => inputs.push((name.to_string(), e)),
                Err(_) => self.ctx.error_hint(
                    &program_at,
                    codes::E_UNKNOWN_VARIABLE,
                    format!("the rule reads `{name}` from `{default}` by default, but that is not in scope"),
                    format!("declare the variable or give `input: {{{name}: EXPR}}`"),
                ),
            }
        }
        let result_scope = Scope::new(base).with("result", assessment_type());
        let completion = self.completion(f, &result_scope, true);
        (
            NodeKind::Rule(RuleDecl {
                program: program.unwrap_or_default(),
                inputs,
            }),
            completion,
        )
    }

    /// The message handlers of an `on:` map (a receive node's, or a task's interrupting ones).
    fn handlers(&mut self, on: &Yaml, base: &BTreeMap<String, Type>) -> Vec<MessageHandler> {
        let mut handlers = Vec::new();
        for (key, body) in self.ctx.entries(on, "on") {
            let what = format!("message `{}`", key.name);
            let Some(mut h) = self.ctx.fields(body, &what) else {
                continue;
            };
            let roles = h
                .get("roles")
                .map(|r| self.roles(r, "roles"))
                .unwrap_or_default();
            let (form, form_ty) = match h.get("form") {
                Some(y) => self.form(y, "form"),
                None => (
                    Vec::new(),
                    Type::Object {
                        fields: BTreeMap::new(),
                        open: false,
                    },
                ),
            };
            let scope = Scope::new(base).with("message", form_ty);
            let completion = self.completion(&mut h, &scope, true);
            h.finish(self.ctx);
            handlers.push(MessageHandler {
                name: key.name.clone(),
                roles,
                form,
                completion,
            });
        }
        handlers
    }

    fn receive(&mut self, f: &mut Fields<'_>, base: &BTreeMap<String, Type>) -> ReceiveDecl {
        let mut handlers = Vec::new();
        if let Some(on) = f.required(self.ctx, "on") {
            handlers = self.handlers(on, base);
            if handlers.is_empty() && matches!(on.value, YamlValue::Map(_)) {
                self.ctx.error(
                    &on.at,
                    codes::E_MISSING_KEY,
                    "a receive node waits for at least one message",
                );
            }
        }
        let timeout = f.get("timeout").and_then(|y| {
            let mut t = self.ctx.fields(y, "timeout")?;
            let scope = Scope::new(base);
            let spec = self.timer_spec(&mut t, &scope, "after");
            let completion = self.completion(&mut t, &scope, true);
            t.finish(self.ctx);
            Some((spec?, completion))
        });
        ReceiveDecl { handlers, timeout }
    }

    // ---- instance-wide declarations -------------------------------------------

    fn deadline_heads(&mut self, items: &[Yaml]) {
        for (index, item) in items.iter().enumerate() {
            let YamlValue::Map(entries) = &item.value else {
                continue;
            };
            let Some((_, id_yaml)) = entries.iter().find(|(k, _)| k.name == "id") else {
                continue;
            };
            let YamlValue::Str(id) = &id_yaml.value else {
                continue;
            };
            if self.deadline_ids.insert(id.clone(), index).is_some() {
                self.ctx.error(
                    &id_yaml.at,
                    codes::E_DUPLICATE_ID,
                    format!("duplicate deadline id `{id}`"),
                );
            }
        }
    }

    fn deadline(&mut self, y: &Yaml) -> DeadlineDecl {
        let mut decl = DeadlineDecl {
            id: String::new(),
            name: String::new(),
            start: None,
            due: Duration::working_days(0),
            stop: Vec::new(),
            remind_before: None,
            remind: Vec::new(),
            overdue_set: Vec::new(),
            overdue_emit: Vec::new(),
        };
        let Some(mut f) = self.ctx.fields(y, "a deadline") else {
            return decl;
        };
        decl.id = f
            .required(self.ctx, "id")
            .and_then(|i| self.id(i, "deadline id"))
            .unwrap_or_default();
        decl.name = f
            .get("name")
            .and_then(|n| self.ctx.str(n, "name"))
            .map_or_else(|| decl.id.clone(), str::to_string);
        decl.start = f.get("start").and_then(|s| self.node_ref(s, "start"));
        if let Some(due) = f
            .required(self.ctx, "due")
            .and_then(|d| self.duration(d, "due"))
        {
            decl.due = due;
        }
        if let Some(stop) = f.get("stop") {
            decl.stop = self
                .ctx
                .str_list(stop, "stop")
                .iter()
                .filter_map(|(id, at)| self.resolve_node(id, at))
                .collect();
        }
        decl.remind_before = f
            .get("remind_before")
            .and_then(|d| self.duration(d, "remind_before"));
        let base = self.base.clone();
        let scope = Scope::new(&base);
        decl.remind = f
            .get("remind")
            .map(|r| self.effects(r, &scope))
            .unwrap_or_default();
        if let Some(overdue) = f.get("overdue")
            && let Some(mut o) = self.ctx.fields(overdue, "overdue")
        {
            decl.overdue_set = o
                .get("set")
                .map(|s| self.assignments(s, &scope))
                .unwrap_or_default();
            decl.overdue_emit = o
                .get("emit")
                .map(|e| self.effects(e, &scope))
                .unwrap_or_default();
            o.finish(self.ctx);
        }
        f.finish(self.ctx);
        decl
    }

    fn messages(&mut self, y: &Yaml) -> Vec<MessageDecl> {
        let mut out = Vec::new();
        let base = self.base.clone();
        for (key, body) in self.ctx.entries(y, "messages") {
            if !is_identifier(&key.name) {
                self.ctx.error(
                    &key.at,
                    codes::E_BAD_ID,
                    format!("message name `{}` is not a valid identifier", key.name),
                );
                continue;
            }
            let what = format!("message `{}`", key.name);
            let Some(mut f) = self.ctx.fields(body, &what) else {
                continue;
            };
            let label = f
                .get("name")
                .and_then(|n| self.ctx.str(n, "name"))
                .map(str::to_string);
            let roles = f
                .get("roles")
                .map(|r| self.roles(r, "roles"))
                .unwrap_or_default();
            let (form, form_ty) = match f.get("form") {
                Some(y) => self.form(y, "form"),
                None => (
                    Vec::new(),
                    Type::Object {
                        fields: BTreeMap::new(),
                        open: false,
                    },
                ),
            };
            let scope = Scope::new(&base).with("message", form_ty);
            let set = f
                .get("set")
                .map(|s| self.assignments(s, &scope))
                .unwrap_or_default();
            let emit = f
                .get("emit")
                .map(|e| self.effects(e, &scope))
                .unwrap_or_default();
            let goto = f.get("goto").and_then(|g| self.node_ref(g, "goto"));
            let mut reschedule = Vec::new();
            if let Some(r) = f.get("reschedule") {
                for (deadline, duration) in self.ctx.entries(r, "reschedule") {
                    let index = self.deadline_ids.get(&deadline.name).copied();
                    if index.is_none() {
                        let hint =
                            hint_list(&deadline.name, self.deadline_ids.keys().map(String::as_str));
                        self.ctx.error_hint(
                            &deadline.at,
                            codes::E_UNKNOWN_DEADLINE,
                            format!("unknown deadline `{}`", deadline.name),
                            hint,
                        );
                    }
                    if let (Some(index), Some(d)) = (index, self.duration(duration, "reschedule")) {
                        reschedule.push((index, d));
                    }
                }
            }
            f.finish(self.ctx);
            out.push(MessageDecl {
                name: key.name.clone(),
                label,
                roles,
                form,
                set,
                emit,
                goto,
                reschedule,
            });
        }
        out
    }

    fn schedule(&mut self, y: &Yaml) -> Option<ScheduleDecl> {
        let mut f = self.ctx.fields(y, "a schedule")?;
        let id = f
            .required(self.ctx, "id")
            .and_then(|i| self.id(i, "schedule id"));
        let cron = f.required(self.ctx, "cron").and_then(|c| {
            let text = self.ctx.str(c, "cron")?.to_string();
            match cron::Schedule::from_str(&text) {
                Ok(_) => Some(text),
                Err(err) => {
                    // The cron crate draws a caret diagram above its reason: keep the reason.
                    let reason = err.to_string();
                    let reason = reason.lines().last().unwrap_or_default().trim().to_string();
                    self.ctx.error_hint(
                        &c.at,
                        codes::E_BAD_CRON,
                        format!("bad cron expression `{text}`: {reason}"),
                        "six or seven fields: sec min hour day-of-month month day-of-week [year]",
                    );
                    None
                }
            }
        });
        let base = self.base.clone();
        let scope = Scope::new(&base);
        let mut data = BTreeMap::new();
        if let Some(d) = f.get("data") {
            for (key, value) in self.ctx.entries(d, "data") {
                if let Some(t) = self.template(value, &scope, None) {
                    data.insert(key.name.clone(), t);
                }
            }
        }
        f.finish(self.ctx);
        Some(ScheduleDecl {
            id: id?,
            cron: cron?,
            data,
        })
    }
}

/// `[a-z][a-z0-9_]*`
pub fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
}

/// A value of type `expr` may be stored in a variable of type `target`.
/// Strings are accepted for enums (checked when assigned) and null for anything
/// (variables are nullable).
fn assignable(target: &Type, expr: &Type) -> bool {
    target.accepts(expr)
        || matches!(expr, Type::Null)
        || matches!((target, expr), (Type::Enum(_), Type::String))
}

/// "did you mean" when close, else the list of what is known.
fn hint_list<'a>(name: &str, known: impl Iterator<Item = &'a str> + Clone) -> String {
    match did_you_mean(name, known.clone()) {
        Some(best) => format!("did you mean `{best}`?"),
        None => {
            let all: BTreeSet<&str> = known.collect();
            format!("known: {}", all.into_iter().collect::<Vec<_>>().join(", "))
        }
    }
}

/// The untyped value of a literal YAML node (numbers exact).
fn plain_value(y: &Yaml) -> Value {
    match &y.value {
        YamlValue::Null => Value::Null,
        YamlValue::Bool(b) => Value::Bool(*b),
        YamlValue::Int(i) => Value::Int(*i),
        YamlValue::Number(text) => Decimal::from_str(text)
            .or_else(|_| Decimal::from_scientific(text))
            .map_or_else(|_| Value::Str(text.clone()), Value::Decimal),
        YamlValue::Str(s) => Value::Str(s.clone()),
        YamlValue::Seq(items) => Value::List(items.iter().map(plain_value).collect()),
        YamlValue::Map(entries) => Value::Object(
            entries
                .iter()
                .map(|(k, v)| (k.name.clone(), plain_value(v)))
                .collect(),
        ),
    }
}
