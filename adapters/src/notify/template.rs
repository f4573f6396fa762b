//! Notification templates: one YAML file per template name in
//! `processes/templates/`, rendered with tera, checked when loaded.
//!
//! A template file declares the variables it may use:
//!
//! ```yaml
//! subject: 最低生活保障审核确认结果通知
//! variables: [applicant_name, monthly_amount]   # must be present when rendering
//! optional: [unit]                              # may be absent (then null)
//! body: |
//!   {{ applicant_name }}：……
//! ```
//!
//! Loading walks tera's syntax tree of subject and body and refuses a
//! reference to an undeclared variable, an unknown filter or test, and the
//! constructs a notification has no use for (includes, macros, function
//! calls — `now()` would read the system clock). So a typo fails at deploy
//! time with the template's name and the variable, not at 3 a.m. when the
//! reminder fires.

use jiuzhu_rules::yaml::ErrorAt;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, FixedOffset, NaiveDate};
use jiuzhu_engine::org::Org;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::Value as Json;
use tera::ast::{Expr, ExprVal, FunctionCall, Node};
use tera::{Context, Tera};

/// Subject and body of one rendered notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// One line: newlines in the template are folded into spaces.
    pub subject: String,
    /// Plain text ending with one newline.
    pub body: String,
}

/// Which part of a template a problem is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Subject,
    Body,
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Part::Subject => "subject",
            Part::Body => "body",
        })
    }
}

/// One problem found while loading the templates.
#[derive(Debug, thiserror::Error)]
pub enum TemplateProblem {
    #[error("{file}: cannot read the template: {source}")]
    Io {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}:{line}:{column}: {message}")]
    Yaml {
        file: PathBuf,
        line: u64,
        column: u64,
        message: String,
    },
    #[error("template `{template}` ({part}): {source}")]
    Syntax {
        template: String,
        part: Part,
        #[source]
        source: tera::Error,
    },
    #[error(
        "template `{template}` ({part}) uses the variable `{variable}`, which it does not declare (declared: {declared}); add it to `variables:` or `optional:`"
    )]
    UnknownVariable {
        template: String,
        part: Part,
        variable: String,
        declared: String,
    },
    #[error("template `{template}` ({part}) uses the unknown filter `{filter}`")]
    UnknownFilter {
        template: String,
        part: Part,
        filter: String,
    },
    #[error("template `{template}` ({part}) uses the unknown test `{test}`")]
    UnknownTest {
        template: String,
        part: Part,
        test: String,
    },
    #[error("template `{template}` ({part}): {construct} is not allowed in notification templates")]
    Forbidden {
        template: String,
        part: Part,
        construct: String,
    },
    #[error("template `{template}` declares `{variable}` twice")]
    DeclaredTwice { template: String, variable: String },
}

/// Errors of the template set's public API.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read the template folder {dir}: {source}")]
    ReadDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} problem(s) in the notification templates:\n{}", .0.len(), list(.0))]
    Invalid(Vec<TemplateProblem>),
    #[error("no notification template for: {}", .0.join(", "))]
    Missing(Vec<String>),
    #[error("no notification template `{0}`")]
    NotFound(String),
    #[error(
        "template `{template}` needs the variable `{variable}`, which neither the effect nor the instance has"
    )]
    MissingVariable { template: String, variable: String },
    #[error("the {what} of a notification must be a JSON object")]
    NotAnObject { what: &'static str },
    #[error("template `{template}` ({part}) failed to render: {source}")]
    Render {
        template: String,
        part: Part,
        #[source]
        source: tera::Error,
    },
}

fn list(problems: &[TemplateProblem]) -> String {
    problems
        .iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTemplate {
    subject: String,
    body: String,
    #[serde(default)]
    variables: Vec<String>,
    #[serde(default)]
    optional: Vec<String>,
}

#[derive(Debug, Clone)]
struct Declared {
    required: Vec<String>,
    optional: Vec<String>,
}

/// The loaded, checked templates.
pub struct TemplateSet {
    tera: Tera,
    declared: BTreeMap<String, Declared>,
}

impl fmt::Debug for TemplateSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TemplateSet")
            .field("templates", &self.declared.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// China Standard Time: UTC+8 all year (no daylight saving). Use
/// [`TemplateSet::set_utc_offset`] with the calendar's offset elsewhere.
const DEFAULT_OFFSET_SECONDS: i32 = 8 * 3600;

impl TemplateSet {
    /// Loads every `*.yaml` file of `dir`; the file stem is the template name.
    /// Every problem of every file is reported at once.
    pub fn load_dir(dir: &Path) -> Result<TemplateSet, TemplateError> {
        let entries = std::fs::read_dir(dir).map_err(|source| TemplateError::ReadDir {
            dir: dir.to_path_buf(),
            source,
        })?;
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| TemplateError::ReadDir {
                dir: dir.to_path_buf(),
                source,
            })?;
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "yaml") {
                files.push(path);
            }
        }
        files.sort();
        let mut sources = Vec::new();
        let mut problems = Vec::new();
        for path in files {
            let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            match std::fs::read_to_string(&path) {
                Ok(src) => sources.push((name.to_string(), path.clone(), src)),
                Err(source) => problems.push(TemplateProblem::Io { file: path, source }),
            }
        }
        let borrowed: Vec<(&str, &Path, &str)> = sources
            .iter()
            .map(|(n, p, s)| (n.as_str(), p.as_path(), s.as_str()))
            .collect();
        Self::from_sources_with(&borrowed, problems)
    }

    /// Builds a set from `(name, file, yaml text)` triples; `file` names the
    /// source in errors.
    pub fn from_sources(sources: &[(&str, &Path, &str)]) -> Result<TemplateSet, TemplateError> {
        Self::from_sources_with(sources, Vec::new())
    }

    fn from_sources_with(
        sources: &[(&str, &Path, &str)],
        mut problems: Vec<TemplateProblem>,
    ) -> Result<TemplateSet, TemplateError> {
        let mut tera = Tera::default();
        register_filters(
            &mut tera,
            FixedOffset::east_opt(DEFAULT_OFFSET_SECONDS),
            None,
        );
        let mut declared = BTreeMap::new();
        for (name, file, src) in sources {
            let raw: RawTemplate = match serde_saphyr::from_str(src) {
                Ok(raw) => raw,
                Err(err) => {
                    let ErrorAt {
                        line,
                        column,
                        message,
                    } = ErrorAt::of(&err);
                    problems.push(TemplateProblem::Yaml {
                        file: file.to_path_buf(),
                        line,
                        column,
                        message,
                    });
                    continue;
                }
            };
            let before = problems.len();
            let mut names = BTreeSet::new();
            for variable in raw.variables.iter().chain(&raw.optional) {
                if !names.insert(variable.as_str()) {
                    problems.push(TemplateProblem::DeclaredTwice {
                        template: name.to_string(),
                        variable: variable.clone(),
                    });
                }
            }
            for (part, text) in [(Part::Subject, &raw.subject), (Part::Body, &raw.body)] {
                let key = tera_name(name, part);
                match tera::Template::new(&key, None, text) {
                    Ok(parsed) => {
                        let mut check = Checker {
                            tera: &tera,
                            template: name,
                            part,
                            declared: &names,
                            scopes: vec![BTreeSet::new()],
                            problems: &mut problems,
                        };
                        check.nodes(&parsed.ast);
                    }
                    Err(source) => problems.push(TemplateProblem::Syntax {
                        template: name.to_string(),
                        part,
                        source,
                    }),
                }
            }
            if problems.len() > before {
                continue;
            }
            for (part, text) in [(Part::Subject, &raw.subject), (Part::Body, &raw.body)] {
                if let Err(source) = tera.add_raw_template(&tera_name(name, part), text) {
                    problems.push(TemplateProblem::Syntax {
                        template: name.to_string(),
                        part,
                        source,
                    });
                }
            }
            declared.insert(
                name.to_string(),
                Declared {
                    required: raw.variables,
                    optional: raw.optional,
                },
            );
        }
        if !problems.is_empty() {
            return Err(TemplateError::Invalid(problems));
        }
        Ok(TemplateSet { tera, declared })
    }

    /// Renders dates in `offset` (the calendar's `utc_offset`); UTC+8 by default.
    pub fn set_utc_offset(&mut self, offset: FixedOffset) {
        register_filters(&mut self.tera, Some(offset), None);
    }

    /// Lets the `role_label` filter print the org file's Chinese role names.
    pub fn set_org(&mut self, org: &Org) {
        let labels: BTreeMap<String, String> = org
            .role_ids()
            .into_iter()
            .filter_map(|id| org.role_label(&id).map(|l| (id.clone(), l.to_string())))
            .collect();
        register_filters(&mut self.tera, None, Some(Arc::new(labels)));
    }

    /// The template names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.declared.keys().map(String::as_str)
    }

    /// Reports the template names a process emits that have no template
    /// (the deploy step calls this with every `template:` of the processes).
    pub fn check_names(&self, used: &[&str]) -> Result<(), TemplateError> {
        let missing: BTreeSet<String> = used
            .iter()
            .filter(|n| !self.declared.contains_key(**n))
            .map(|n| n.to_string())
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(TemplateError::Missing(missing.into_iter().collect()))
        }
    }

    /// Renders `template` with the instance variables overlaid by the
    /// effect's fields (the effect's values are the ones at the time of the
    /// step, so they win).
    pub fn render(
        &self,
        template: &str,
        effect: &Json,
        instance_vars: &Json,
    ) -> Result<Rendered, TemplateError> {
        let declared = self
            .declared
            .get(template)
            .ok_or_else(|| TemplateError::NotFound(template.to_string()))?;
        let vars = instance_vars
            .as_object()
            .ok_or(TemplateError::NotAnObject {
                what: "instance variables",
            })?;
        let fields = effect
            .as_object()
            .ok_or(TemplateError::NotAnObject { what: "effect" })?;
        let mut merged = vars.clone();
        for (key, value) in fields {
            merged.insert(key.clone(), value.clone());
        }
        for variable in &declared.required {
            if merged.get(variable).is_none_or(Json::is_null) {
                return Err(TemplateError::MissingVariable {
                    template: template.to_string(),
                    variable: variable.clone(),
                });
            }
        }
        for variable in &declared.optional {
            merged.entry(variable.clone()).or_insert(Json::Null);
        }
        let context =
            Context::from_value(Json::Object(merged)).map_err(|source| TemplateError::Render {
                template: template.to_string(),
                part: Part::Body,
                source,
            })?;
        let render = |part| {
            self.tera
                .render(&tera_name(template, part), &context)
                .map_err(|source| TemplateError::Render {
                    template: template.to_string(),
                    part,
                    source,
                })
        };
        let subject = render(Part::Subject)?
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let mut body = render(Part::Body)?.trim_end().to_string();
        body.push('\n');
        Ok(Rendered { subject, body })
    }
}

fn tera_name(template: &str, part: Part) -> String {
    format!("{template}.{part}")
}

/// Walks a template's syntax tree with the names in scope.
struct Checker<'a> {
    tera: &'a Tera,
    template: &'a str,
    part: Part,
    declared: &'a BTreeSet<&'a str>,
    /// Loop variables and `set` names, innermost last.
    scopes: Vec<BTreeSet<String>>,
    problems: &'a mut Vec<TemplateProblem>,
}

impl Checker<'_> {
    fn forbid(&mut self, construct: impl Into<String>) {
        self.problems.push(TemplateProblem::Forbidden {
            template: self.template.to_string(),
            part: self.part,
            construct: construct.into(),
        });
    }

    fn nodes(&mut self, nodes: &[Node]) {
        for node in nodes {
            self.node(node);
        }
    }

    fn node(&mut self, node: &Node) {
        match node {
            Node::Text(_)
            | Node::Raw(..)
            | Node::Comment(..)
            | Node::Break(_)
            | Node::Continue(_) => {}
            Node::VariableBlock(_, expr) => self.expr(expr),
            Node::Set(_, set) => {
                self.expr(&set.value);
                let scope = if set.global {
                    self.scopes.first_mut()
                } else {
                    self.scopes.last_mut()
                };
                if let Some(scope) = scope {
                    scope.insert(set.key.clone());
                }
            }
            Node::FilterSection(_, section, _) => {
                self.filter(&section.filter);
                self.nodes(&section.body);
            }
            Node::Block(_, block, _) => self.nodes(&block.body),
            Node::Forloop(_, forloop, _) => {
                self.expr(&forloop.container);
                let mut scope = BTreeSet::from([forloop.value.clone(), "loop".to_string()]);
                scope.extend(forloop.key.clone());
                self.scopes.push(scope);
                self.nodes(&forloop.body);
                self.scopes.pop();
                if let Some(empty) = &forloop.empty_body {
                    self.nodes(empty);
                }
            }
            Node::If(branches, _) => {
                for (_, condition, body) in &branches.conditions {
                    self.expr(condition);
                    self.nodes(body);
                }
                if let Some((_, body)) = &branches.otherwise {
                    self.nodes(body);
                }
            }
            Node::Super => self.forbid("`super()`"),
            Node::MacroDefinition(_, def, _) => self.forbid(format!("macro `{}`", def.name)),
            Node::Extends(_, name) => self.forbid(format!("`extends \"{name}\"`")),
            Node::Include(_, names, _) => {
                self.forbid(format!("`include \"{}\"`", names.join("\", \"")))
            }
            Node::ImportMacro(_, name, _) => self.forbid(format!("`import \"{name}\"`")),
        }
    }

    fn expr(&mut self, expr: &Expr) {
        self.value(&expr.val);
        for filter in &expr.filters {
            self.filter(filter);
        }
    }

    fn filter(&mut self, call: &FunctionCall) {
        if self.tera.get_filter(&call.name).is_err() {
            self.problems.push(TemplateProblem::UnknownFilter {
                template: self.template.to_string(),
                part: self.part,
                filter: call.name.clone(),
            });
        }
        for arg in call.args.values() {
            self.expr(arg);
        }
    }

    fn value(&mut self, value: &ExprVal) {
        match value {
            ExprVal::String(_) | ExprVal::Int(_) | ExprVal::Float(_) | ExprVal::Bool(_) => {}
            ExprVal::Ident(ident) => self.ident(ident),
            ExprVal::Math(math) => {
                self.expr(&math.lhs);
                self.expr(&math.rhs);
            }
            ExprVal::Logic(logic) => {
                self.expr(&logic.lhs);
                self.expr(&logic.rhs);
            }
            ExprVal::In(within) => {
                self.expr(&within.lhs);
                self.expr(&within.rhs);
            }
            ExprVal::Test(test) => {
                self.ident(&test.ident);
                if self.tera.get_tester(&test.name).is_err() {
                    self.problems.push(TemplateProblem::UnknownTest {
                        template: self.template.to_string(),
                        part: self.part,
                        test: test.name.clone(),
                    });
                }
                for arg in &test.args {
                    self.expr(arg);
                }
            }
            ExprVal::Array(items) => {
                for item in items {
                    self.expr(item);
                }
            }
            ExprVal::StringConcat(concat) => {
                for part in &concat.values {
                    self.value(part);
                }
            }
            ExprVal::MacroCall(call) => {
                self.forbid(format!("macro call `{}::{}`", call.namespace, call.name))
            }
            ExprVal::FunctionCall(call) => self.forbid(format!("function call `{}()`", call.name)),
        }
    }

    /// `contact.email` and `reasons[0]` are checked by their root name.
    fn ident(&mut self, ident: &str) {
        let root = ident.split(['.', '[']).next().unwrap_or(ident);
        let known = self.declared.contains(root) || self.scopes.iter().any(|s| s.contains(root));
        if !known {
            self.problems.push(TemplateProblem::UnknownVariable {
                template: self.template.to_string(),
                part: self.part,
                variable: root.to_string(),
                declared: if self.declared.is_empty() {
                    "none".to_string()
                } else {
                    self.declared.iter().copied().collect::<Vec<_>>().join(", ")
                },
            });
        }
    }
}

type FilterArgs = HashMap<String, Json>;

/// Our filters: `money`, `local_date`, `local_datetime`, `unit_name`, `role_label`.
/// Registering again replaces a filter, which is how the offset and the org's
/// role labels are set after loading; `None` keeps the current one.
fn register_filters(
    tera: &mut Tera,
    offset: Option<FixedOffset>,
    role_labels: Option<Arc<BTreeMap<String, String>>>,
) {
    if tera.get_filter("money").is_err() {
        tera.register_filter("money", money);
        tera.register_filter("unit_name", unit_name);
        tera.register_filter("role_label", role_label(Arc::new(BTreeMap::new())));
    }
    if let Some(offset) = offset {
        tera.register_filter("local_date", local_time(offset, "%Y年%-m月%-d日"));
        tera.register_filter("local_datetime", local_time(offset, "%Y年%-m月%-d日 %H:%M"));
    }
    if let Some(labels) = role_labels {
        tera.register_filter("role_label", role_label(labels));
    }
}

fn filter_error(filter: &str, value: &Json, expected: &str) -> tera::Error {
    tera::Error::msg(format!("filter `{filter}` expects {expected}, got {value}"))
}

/// `"705"` or `705.5` → `"705.00"` / `"705.50"`: yuan with two decimals,
/// computed on decimals (money never goes through floating point here; a
/// JSON number is read from its shortest text, as the rules crate does).
fn money(value: &Json, _: &FilterArgs) -> tera::Result<Json> {
    let text = match value {
        Json::String(s) => s.clone(),
        Json::Number(n) => n.to_string(),
        _ => return Err(filter_error("money", value, "an amount")),
    };
    let amount = Decimal::from_str(text.trim())
        .or_else(|_| Decimal::from_scientific(text.trim()))
        .map_err(|_| filter_error("money", value, "an amount"))?;
    Ok(Json::String(format!("{:.2}", amount.round_dp(2))))
}

/// A date (`YYYY-MM-DD`) or an instant (RFC 3339) as a Chinese date in the
/// office's time zone.
fn local_time(
    offset: FixedOffset,
    format: &'static str,
) -> impl Fn(&Json, &FilterArgs) -> tera::Result<Json> + Send + Sync {
    move |value, _| {
        let text = value
            .as_str()
            .ok_or_else(|| filter_error("local_date", value, "a date or time"))?;
        if let Ok(instant) = DateTime::parse_from_rfc3339(text) {
            return Ok(Json::String(
                instant.with_timezone(&offset).format(format).to_string(),
            ));
        }
        let date = NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .map_err(|_| filter_error("local_date", value, "a date or time"))?;
        Ok(Json::String(date.format("%Y年%-m月%-d日").to_string()))
    }
}

/// `双鸭山市/尖山区/富安街道/安邦社区` → `双鸭山市尖山区富安街道安邦社区`, as
/// written in a letter; `levels=3` keeps the first three levels (the
/// township office that signs a decision, not the community).
fn unit_name(value: &Json, args: &FilterArgs) -> tera::Result<Json> {
    let unit = value
        .as_str()
        .ok_or_else(|| filter_error("unit_name", value, "a unit path"))?;
    let levels = match args.get("levels") {
        None => usize::MAX,
        Some(n) => n
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .filter(|n| *n > 0)
            .ok_or_else(|| filter_error("unit_name", n, "levels=<a positive number>"))?,
    };
    Ok(Json::String(unit.split('/').take(levels).collect()))
}

/// A role id, or a list of them, → the Chinese labels joined with `、`.
fn role_label(
    labels: Arc<BTreeMap<String, String>>,
) -> impl Fn(&Json, &FilterArgs) -> tera::Result<Json> + Send + Sync {
    move |value, _| {
        let label = |v: &Json| -> tera::Result<String> {
            let id = v
                .as_str()
                .ok_or_else(|| filter_error("role_label", v, "a role id"))?;
            Ok(labels.get(id).cloned().unwrap_or_else(|| id.to_string()))
        };
        match value {
            Json::Array(items) => Ok(Json::String(
                items
                    .iter()
                    .map(label)
                    .collect::<tera::Result<Vec<_>>>()?
                    .join("、"),
            )),
            other => Ok(Json::String(label(other)?)),
        }
    }
}
