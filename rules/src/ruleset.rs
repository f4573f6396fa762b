//! Assessments as data: rule files (`processes/rules/*.yaml`) of named formulas
//! and decision tables in the expression language, loaded and type-checked like
//! process definitions, then evaluated step by step with a trace.
//!
//! A rule file has `program`, `label`, `steps` and `result`. A step has a
//! `name`, a Chinese `label` (shown in the explanation trace) and either a
//! `value` expression or a `table`. `for_each: member` evaluates a step once per
//! household member, with the member bound to `member`; inside such steps the
//! names of other per-member steps mean this member's value, outside they mean
//! the list of every member's value. A table has a `hit` policy (`first`,
//! `unique`, `collect`, `collect_sum`), optional named `inputs`, `outputs`,
//! `rules` (`when` + `then`) and, for `first`/`unique`, an optional `default`.
//! One output makes the table's value that output; several make an object.
//! `result` maps the assessment's fields to expressions.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use rust_decimal::Decimal;

use crate::case::Case;
use crate::case_fields::{CaseCheck, CaseFields, FIELD_TYPES, FieldDecl, FieldType};
use crate::expr::{
    self, Builtin, Env, Expr, ExprError, Implementation, LambdaUse, Registry, TypeEnv,
};
use crate::policy::Policy;
use crate::value::{Type, Value};
use crate::yaml::{self, Node};

/// The shipped rule files, embedded so the binary works from any directory: every
/// file of `processes/rules/` (a test checks this list against the directory).
const BUILTIN_FILES: &[(&str, &str)] = &[
    (
        "dibao.yaml",
        include_str!("../../processes/rules/dibao.yaml"),
    ),
    (
        "disability_subsidy.yaml",
        include_str!("../../processes/rules/disability_subsidy.yaml"),
    ),
    (
        "low_income.yaml",
        include_str!("../../processes/rules/low_income.yaml"),
    ),
    (
        "tekun.yaml",
        include_str!("../../processes/rules/tekun.yaml"),
    ),
    (
        "temporary_aid.yaml",
        include_str!("../../processes/rules/temporary_aid.yaml"),
    ),
];

/// The file names of the embedded rule files.
pub fn builtin_rule_files() -> Vec<&'static str> {
    BUILTIN_FILES.iter().map(|(f, _)| *f).collect()
}

/// One problem in a rule file, at `file:line:column`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleProblem {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub code: &'static str,
    pub message: String,
    pub hint: Option<String>,
}

impl std::fmt::Display for RuleProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file, self.line, self.column, self.code, self.message
        )?;
        if let Some(hint) = &self.hint {
            write!(f, " ({hint})")?;
        }
        Ok(())
    }
}

/// Why rule files could not be loaded or evaluated.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", .problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid { problems: Vec<RuleProblem> },
    #[error("no rules for program `{program}`")]
    UnknownProgram { program: String },
    #[error("{program}: step `{step}`: {source}")]
    Eval {
        program: String,
        step: String,
        #[source]
        source: expr::EvalError,
    },
    #[error("{program}: table `{step}`: {message}")]
    Table {
        program: String,
        step: String,
        message: String,
    },
}

/// How a decision table combines the rules that match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HitPolicy {
    /// The first matching rule, else the default.
    First,
    /// Exactly one rule may match (two is an error), else the default.
    Unique,
    /// Every matching rule's outputs, as a list.
    Collect,
    /// The sum of the single numeric output of every matching rule.
    CollectSum,
}

#[derive(Debug, Clone)]
struct TableRule {
    label: String,
    when: Expr,
    then: Vec<Expr>,
}

#[derive(Debug, Clone)]
struct Table {
    hit: HitPolicy,
    output_types: Vec<Type>,
    inputs: Vec<(String, Expr)>,
    outputs: Vec<String>,
    rules: Vec<TableRule>,
    default: Option<Vec<Expr>>,
}

#[derive(Debug, Clone)]
enum Body {
    Value(Expr),
    Table(Table),
}

#[derive(Debug, Clone)]
struct Step {
    name: String,
    label: String,
    per_member: bool,
    body: Body,
}

/// How an extra output field is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtraFormat {
    /// A money string with two decimals.
    Money,
    /// A plain string.
    Text,
}

#[derive(Debug, Clone)]
struct Extra {
    name: String,
    label: String,
    format: ExtraFormat,
    expr: Expr,
}

#[derive(Debug, Clone)]
struct ResultSpec {
    eligible: Expr,
    category: Expr,
    standard: Expr,
    household_income: Expr,
    base_amount: Expr,
    reasons: Expr,
    supplement_categories: Option<Expr>,
    supplement_amount: Option<Expr>,
    extra: Vec<Extra>,
}

/// The compiled rules of one program.
#[derive(Debug, Clone)]
pub struct ProgramRules {
    pub program: String,
    pub label: String,
    pub file: String,
    /// The program's own case fields and checks (the rule file's `case:` block).
    pub case: CaseFields,
    steps: Vec<Step>,
    result: ResultSpec,
}

/// Compiled rules for every program.
#[derive(Debug, Clone)]
pub struct RuleSet {
    programs: BTreeMap<String, ProgramRules>,
}

/// The registry rule files are checked against: the standard functions plus the
/// assessment built-ins written in Rust.
pub fn rules_registry() -> Arc<Registry> {
    static REGISTRY: OnceLock<Arc<Registry>> = OnceLock::new();
    REGISTRY
        .get_or_init(|| {
            let mut registry = Registry::standard();
            registry.register(Builtin {
                name: "severely_disabled",
                signature: "severely_disabled(member: object, severe_includes_grade3_intellectual_mental: bool) -> bool",
                description: "成员是否重度残疾 (severely disabled)：残疾等级 1–2 级，或 3 级智力、精神残疾（看参数），或伤残军人 1–4 级",
                min_args: 2,
                max_args: 2,
                lambda: LambdaUse::None,
                check: |t| {
                    if !matches!(t[0], Type::Object { .. } | Type::Any) {
                        return Err(format!("expected a member object, found {}", t[0]).into());
                    }
                    if !matches!(t[1], Type::Bool | Type::Any) {
                        return Err(format!("expected a bool flag, found {}", t[1]).into());
                    }
                    Ok(Type::Bool)
                },
                implementation: Implementation::Plain(severely_disabled_builtin),
            });
            Arc::new(registry)
        })
        .clone()
}

fn severely_disabled_builtin(args: &[Value]) -> Result<Value, expr::FunctionError> {
    let member = &args[0];
    let flag = args[1].as_bool().ok_or("the flag must be a bool")?;
    let int = |v: Option<&Value>| v.and_then(expr::number).and_then(|d| i64::try_from(d).ok());
    let disability = match member.get("disability") {
        Some(d @ Value::Object(_)) => {
            int(d.get("grade")).map(|g| (g, d.get("kind").and_then(Value::as_str).unwrap_or("")))
        }
        _ => None,
    };
    let veteran = int(member.get("disabled_veteran_grade"));
    Ok(Value::Bool(crate::domain::severely_disabled(
        disability, veteran, flag,
    )))
}

impl RuleSet {
    /// The shipped rule files.
    pub fn builtin() -> RuleSet {
        RuleSet::builtin_ref().clone()
    }

    /// The shipped rule files, shared.
    pub fn builtin_ref() -> &'static RuleSet {
        static BUILTIN: OnceLock<RuleSet> = OnceLock::new();
        BUILTIN.get_or_init(|| {
            let mut programs = BTreeMap::new();
            for (file, src) in BUILTIN_FILES {
                // The shipped files are checked by the test suite; a broken one
                // would be a build defect, so it is left out rather than crashing.
                if let Ok(rules) = ProgramRules::from_yaml(src, file) {
                    programs.insert(rules.program.clone(), rules);
                }
            }
            RuleSet { programs }
        })
    }

    /// Loads every `*.yaml` under `dir`; a program it defines replaces the shipped
    /// one, the others stay as shipped. Every problem of every file is reported.
    pub fn load_dir(dir: &Path) -> Result<RuleSet, RulesError> {
        let io = |source| RulesError::Io {
            path: dir.display().to_string(),
            source,
        };
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .map_err(io)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
            .collect();
        paths.sort();
        let mut set = RuleSet::builtin();
        let mut problems = Vec::new();
        for path in paths {
            let file = path.display().to_string();
            let src = std::fs::read_to_string(&path).map_err(|source| RulesError::Io {
                path: file.clone(),
                source,
            })?;
            match ProgramRules::from_yaml(&src, &file) {
                Ok(rules) => {
                    set.programs.insert(rules.program.clone(), rules);
                }
                Err(mut p) => problems.append(&mut p),
            }
        }
        if problems.is_empty() {
            Ok(set)
        } else {
            Err(RulesError::Invalid { problems })
        }
    }

    pub fn program(&self, name: &str) -> Option<&ProgramRules> {
        self.programs.get(name)
    }

    pub fn programs(&self) -> impl Iterator<Item = &ProgramRules> {
        self.programs.values()
    }
}

// ---- loading ---------------------------------------------------------------

struct Loader<'a> {
    file: &'a str,
    problems: Vec<RuleProblem>,
    registry: Arc<Registry>,
}

impl Loader<'_> {
    fn problem(&mut self, node: &Node, code: &'static str, message: impl Into<String>) {
        self.problems.push(RuleProblem {
            file: self.file.to_string(),
            line: node.line,
            column: node.column,
            code,
            message: message.into(),
            hint: None,
        });
    }

    fn text<'n>(&mut self, node: Option<&'n Node>, parent: &Node, what: &str) -> Option<&'n str> {
        match node {
            Some(n) => match n.as_scalar() {
                Some(s) => Some(s),
                None => {
                    self.problem(
                        n,
                        "E_RULE_SHAPE",
                        format!("`{what}` must be a single value"),
                    );
                    None
                }
            },
            None => {
                self.problem(parent, "E_RULE_SHAPE", format!("missing `{what}`"));
                None
            }
        }
    }

    fn check_keys(&mut self, node: &Node, allowed: &[&str]) {
        if let Some(entries) = node.as_map() {
            for (key, _) in entries {
                if !allowed.contains(&key.name.as_str()) {
                    self.problems.push(RuleProblem {
                        file: self.file.to_string(),
                        line: key.line,
                        column: key.column,
                        code: "E_RULE_SHAPE",
                        message: format!(
                            "unknown key `{}` (expected one of {})",
                            key.name,
                            allowed.join(", ")
                        ),
                        hint: crate::expr::did_you_mean(&key.name, allowed.iter().copied()),
                    });
                }
            }
        } else {
            self.problem(node, "E_RULE_SHAPE", "must be a mapping");
        }
    }

    /// Compiles an expression scalar, turning offsets into file positions.
    fn expr(&mut self, node: &Node, env: &dyn TypeEnv, want: Option<&Type>) -> Option<Expr> {
        let Some(src) = node.as_scalar() else {
            self.problem(
                node,
                "E_RULE_SHAPE",
                "an expression must be a single string",
            );
            return None;
        };
        match Expr::compile_with(src, env, self.registry.clone()) {
            Ok(e) => {
                if let Some(want) = want
                    && !want.accepts(e.result_type())
                    && *e.result_type() != Type::Null
                {
                    self.problem(
                        node,
                        "E_TYPE",
                        format!("expected {want}, found {}", e.result_type()),
                    );
                }
                Some(e)
            }
            Err(errors) => {
                for err in errors {
                    self.expr_problem(node, src, &err);
                }
                None
            }
        }
    }

    fn expr_problem(&mut self, node: &Node, src: &str, err: &ExprError) {
        let before = src.get(..err.offset).unwrap_or(src);
        let newlines = before.matches('\n').count();
        let (line, column) = if newlines == 0 {
            (node.line, node.content_column() + before.chars().count())
        } else {
            // A block scalar: its text starts on the line after the indicator.
            let tail = before.rsplit('\n').next().unwrap_or("");
            (node.line + newlines, tail.chars().count() + 1)
        };
        self.problems.push(RuleProblem {
            file: self.file.to_string(),
            line,
            column,
            code: err.code,
            message: err.message.clone(),
            hint: err.hint.clone(),
        });
    }
}

/// The names and types visible while checking a step.
#[derive(Clone)]
struct Scope {
    types: BTreeMap<String, Type>,
}

impl TypeEnv for Scope {
    fn var_type(&self, name: &str) -> Option<Type> {
        self.types.get(name).cloned()
    }
    fn var_names(&self) -> Vec<String> {
        self.types.keys().cloned().collect()
    }
}

impl ProgramRules {
    /// Parses and checks one rule file; every problem is reported with `file:line:column`.
    pub fn from_yaml(src: &str, file: &str) -> Result<ProgramRules, Vec<RuleProblem>> {
        let root = yaml::parse(src).map_err(|e| {
            vec![RuleProblem {
                file: file.to_string(),
                line: e.line,
                column: e.column,
                code: "E_YAML",
                message: e.message,
                hint: None,
            }]
        })?;
        let mut l = Loader {
            file,
            problems: Vec::new(),
            registry: rules_registry(),
        };
        l.check_keys(&root, &["program", "label", "case", "steps", "result"]);
        let program = l
            .text(root.get("program"), &root, "program")
            .unwrap_or("")
            .to_string();
        if !program.is_empty()
            && !is_name(&program)
            && let Some(n) = root.get("program")
        {
            l.problem(
                n,
                "E_RULE_SHAPE",
                format!("program `{program}` must be a name of lowercase letters, digits and `_`"),
            );
        }
        let label = l
            .text(root.get("label"), &root, "label")
            .unwrap_or("")
            .to_string();

        // Top-level names and their types; per-member names are listed separately.
        let mut case = match root.get("case") {
            Some(node) => load_case_fields(&mut l, node),
            None => CaseFields::default(),
        };
        let mut top = Case::variable_types(&case);
        top.insert("policy".into(), Policy::value_type());
        if let Some(checks) = root.get("case").and_then(|c| c.get("checks")) {
            case.checks = load_case_checks(&mut l, checks, &top);
        }
        let mut per_member: BTreeMap<String, Type> = BTreeMap::new();
        let mut steps = Vec::new();
        match root.get("steps").map(|s| (s, s.as_seq())) {
            Some((_, Some(items))) => {
                for item in items {
                    if let Some(step) = load_step(&mut l, item, &top, &per_member) {
                        let ty = step_type(&step, &mut l, item);
                        if top.contains_key(&step.name) {
                            l.problem(
                                item,
                                "E_DUPLICATE",
                                format!("`{}` is already defined", step.name),
                            );
                        }
                        if step.per_member {
                            per_member.insert(step.name.clone(), ty.clone());
                            top.insert(step.name.clone(), Type::list(ty));
                        } else {
                            top.insert(step.name.clone(), ty);
                        }
                        steps.push(step);
                    }
                }
            }
            Some((s, None)) => l.problem(s, "E_RULE_SHAPE", "`steps` must be a list"),
            None => l.problem(&root, "E_RULE_SHAPE", "missing `steps`"),
        }

        let result = root
            .get("result")
            .and_then(|r| load_result(&mut l, r, &top, &per_member));
        if root.get("result").is_none() {
            l.problem(&root, "E_RULE_SHAPE", "missing `result`");
        }
        match result {
            Some(result) if l.problems.is_empty() => Ok(ProgramRules {
                program,
                label,
                file: file.to_string(),
                case,
                steps,
                result,
            }),
            _ => Err(l.problems),
        }
    }
}

fn is_name(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Names a case already has; a program's own field cannot take one of them.
const COMMON_CASE_KEYS: [&str; 5] = ["program", "as_of", "area", "household", "members"];

/// The `case:` block's `fields` (its `checks` are read once the types are known).
fn load_case_fields(l: &mut Loader<'_>, node: &Node) -> CaseFields {
    l.check_keys(node, &["fields", "checks"]);
    let fields = match node.get("fields") {
        Some(f) => load_field_decls(l, f, true),
        None => BTreeMap::new(),
    };
    CaseFields {
        fields,
        checks: Vec::new(),
    }
}

fn load_field_decls(l: &mut Loader<'_>, node: &Node, top: bool) -> BTreeMap<String, FieldDecl> {
    let mut out = BTreeMap::new();
    let Some(entries) = node.as_map() else {
        l.problem(
            node,
            "E_RULE_SHAPE",
            "`fields` must be a mapping of field declarations",
        );
        return out;
    };
    for (key, decl) in entries {
        if top && COMMON_CASE_KEYS.contains(&key.name.as_str()) {
            l.problems.push(RuleProblem {
                file: l.file.to_string(),
                line: key.line,
                column: key.column,
                code: "E_DUPLICATE",
                message: format!("`{}` is a field of every case", key.name),
                hint: None,
            });
            continue;
        }
        l.check_keys(decl, &["type", "required", "label", "values", "fields"]);
        let Some(ty) = l.text(decl.get("type"), decl, "type") else {
            continue;
        };
        let required = match decl.get("required").map(|r| (r, r.as_scalar())) {
            None => false,
            Some((_, Some("true"))) => true,
            Some((_, Some("false"))) => false,
            Some((r, _)) => {
                l.problem(r, "E_RULE_SHAPE", "`required` must be true or false");
                false
            }
        };
        let label = decl
            .get("label")
            .and_then(Node::as_scalar)
            .unwrap_or(&key.name)
            .to_string();
        let ty = match ty {
            "amount" => FieldType::Amount,
            "decimal" => FieldType::Decimal,
            "integer" => FieldType::Integer,
            "bool" => FieldType::Bool,
            "text" => FieldType::Text,
            "date" => FieldType::Date,
            "member" => FieldType::Member,
            "enum" => {
                let values: Vec<String> = decl
                    .get("values")
                    .and_then(Node::as_seq)
                    .map(|items| {
                        items
                            .iter()
                            .filter_map(Node::as_scalar)
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default();
                if values.is_empty() {
                    l.problem(decl, "E_RULE_SHAPE", "an `enum` field needs `values: [..]`");
                }
                FieldType::Enum(values)
            }
            "object" => match decl.get("fields") {
                Some(f) => FieldType::Object(load_field_decls(l, f, false)),
                None => {
                    l.problem(decl, "E_RULE_SHAPE", "an `object` field needs `fields`");
                    FieldType::Object(BTreeMap::new())
                }
            },
            other => {
                if let Some(n) = decl.get("type") {
                    l.problem(
                        n,
                        "E_RULE_SHAPE",
                        format!("unknown field type `{other}` (expected one of {FIELD_TYPES})"),
                    );
                }
                continue;
            }
        };
        out.insert(
            key.name.clone(),
            FieldDecl {
                ty,
                required,
                label,
            },
        );
    }
    out
}

/// The `case:` block's `checks`: `require` (true when the case is acceptable),
/// `path` (where the problem is reported, `$.…`) and `message`.
fn load_case_checks(
    l: &mut Loader<'_>,
    node: &Node,
    top: &BTreeMap<String, Type>,
) -> Vec<CaseCheck> {
    let Some(items) = node.as_seq() else {
        l.problem(node, "E_RULE_SHAPE", "`checks` must be a list");
        return Vec::new();
    };
    let scope = Scope { types: top.clone() };
    let mut out = Vec::new();
    for item in items {
        l.check_keys(item, &["require", "path", "message"]);
        let path = l.text(item.get("path"), item, "path").map(String::from);
        let message = l
            .text(item.get("message"), item, "message")
            .map(String::from);
        if let Some(p) = &path
            && !p.starts_with('$')
            && let Some(n) = item.get("path")
        {
            l.problem(n, "E_RULE_SHAPE", "`path` is a JSON path starting with `$`");
        }
        let Some(require) = item.get("require") else {
            l.problem(item, "E_RULE_SHAPE", "missing `require`");
            continue;
        };
        let require = l.expr(require, &scope, Some(&Type::Bool));
        if let (Some(require), Some(path), Some(message)) = (require, path, message) {
            out.push(CaseCheck {
                require,
                path,
                message,
            });
        }
    }
    out
}

fn member_scope(top: &BTreeMap<String, Type>, per_member: &BTreeMap<String, Type>) -> Scope {
    let mut types = top.clone();
    types.extend(per_member.iter().map(|(k, v)| (k.clone(), v.clone())));
    types.insert("member".into(), crate::case::Member::value_type());
    Scope { types }
}

fn load_step(
    l: &mut Loader<'_>,
    node: &Node,
    top: &BTreeMap<String, Type>,
    member_types: &BTreeMap<String, Type>,
) -> Option<Step> {
    l.check_keys(node, &["name", "label", "for_each", "value", "table"]);
    let name = l.text(node.get("name"), node, "name")?.to_string();
    let label = node
        .get("label")
        .and_then(Node::as_scalar)
        .unwrap_or(&name)
        .to_string();
    let per_member = match node.get("for_each") {
        None => false,
        Some(f) if f.as_scalar() == Some("member") => true,
        Some(f) => {
            l.problem(f, "E_RULE_SHAPE", "`for_each` can only be `member`");
            false
        }
    };
    let scope = if per_member {
        member_scope(top, member_types)
    } else {
        Scope { types: top.clone() }
    };
    let body = match (node.get("value"), node.get("table")) {
        (Some(v), None) => Body::Value(l.expr(v, &scope, None)?),
        (None, Some(t)) => Body::Table(load_table(l, t, &scope)?),
        _ => {
            l.problem(
                node,
                "E_RULE_SHAPE",
                format!("step `{name}` needs exactly one of `value` or `table`"),
            );
            return None;
        }
    };
    Some(Step {
        name,
        label,
        per_member,
        body,
    })
}

fn load_table(l: &mut Loader<'_>, node: &Node, scope: &Scope) -> Option<Table> {
    l.check_keys(node, &["hit", "inputs", "outputs", "rules", "default"]);
    let hit = match l.text(node.get("hit"), node, "hit")? {
        "first" => HitPolicy::First,
        "unique" => HitPolicy::Unique,
        "collect" => HitPolicy::Collect,
        "collect_sum" => HitPolicy::CollectSum,
        other => {
            if let Some(h) = node.get("hit") {
                l.problem(h, "E_RULE_SHAPE", format!("unknown hit policy `{other}` (expected first, unique, collect or collect_sum)"));
            }
            return None;
        }
    };
    let mut scope = scope.clone();
    let mut inputs = Vec::new();
    if let Some(input_node) = node.get("inputs") {
        match input_node.as_map() {
            Some(entries) => {
                for (key, value) in entries {
                    if let Some(e) = l.expr(value, &scope, None) {
                        scope
                            .types
                            .insert(key.name.clone(), e.result_type().clone());
                        inputs.push((key.name.clone(), e));
                    }
                }
            }
            None => l.problem(
                input_node,
                "E_RULE_SHAPE",
                "`inputs` must map names to expressions",
            ),
        }
    }
    let outputs: Vec<String> = match node.get("outputs").and_then(Node::as_seq) {
        Some(items) if !items.is_empty() => items
            .iter()
            .filter_map(|n| n.as_scalar().map(str::to_string))
            .collect(),
        _ => {
            l.problem(
                node,
                "E_RULE_SHAPE",
                "a table needs a non-empty `outputs` list",
            );
            return None;
        }
    };
    if hit == HitPolicy::CollectSum && outputs.len() != 1 {
        l.problem(
            node,
            "E_RULE_SHAPE",
            "`collect_sum` needs exactly one output",
        );
    }
    let mut output_types = vec![Type::Null; outputs.len()];
    let load_outputs =
        |l: &mut Loader<'_>, then: &Node, output_types: &mut Vec<Type>| -> Option<Vec<Expr>> {
            l.check_keys(
                then,
                &outputs.iter().map(String::as_str).collect::<Vec<_>>(),
            );
            let mut exprs = Vec::new();
            for (i, out) in outputs.iter().enumerate() {
                let Some(cell) = then.get(out) else {
                    l.problem(then, "E_RULE_SHAPE", format!("missing output `{out}`"));
                    return None;
                };
                let e = l.expr(cell, &scope, None)?;
                match crate::expr::unify_types(&output_types[i], e.result_type()) {
                    Some(t) => output_types[i] = t,
                    None => l.problem(
                        cell,
                        "E_TYPE",
                        format!(
                            "output `{out}` is {} here but {} in an earlier rule",
                            e.result_type(),
                            output_types[i]
                        ),
                    ),
                }
                exprs.push(e);
            }
            Some(exprs)
        };
    let mut rules = Vec::new();
    match node.get("rules").and_then(Node::as_seq) {
        Some(items) => {
            for (i, item) in items.iter().enumerate() {
                l.check_keys(item, &["label", "when", "then"]);
                let label = item
                    .get("label")
                    .and_then(Node::as_scalar)
                    .map_or_else(|| format!("rule {}", i + 1), str::to_string);
                let when = item
                    .get("when")
                    .and_then(|w| l.expr(w, &scope, Some(&Type::Bool)));
                if item.get("when").is_none() {
                    l.problem(item, "E_RULE_SHAPE", "missing `when`");
                }
                let then = match item.get("then") {
                    Some(t) => load_outputs(l, t, &mut output_types),
                    None => {
                        l.problem(item, "E_RULE_SHAPE", "missing `then`");
                        None
                    }
                };
                if let (Some(when), Some(then)) = (when, then) {
                    rules.push(TableRule { label, when, then });
                }
            }
        }
        None => l.problem(node, "E_RULE_SHAPE", "a table needs a `rules` list"),
    }
    let default = match node.get("default") {
        Some(d) if matches!(hit, HitPolicy::First | HitPolicy::Unique) => {
            load_outputs(l, d, &mut output_types)
        }
        Some(d) => {
            l.problem(
                d,
                "E_RULE_SHAPE",
                "only `first` and `unique` tables take a `default`",
            );
            None
        }
        None => None,
    };
    if hit == HitPolicy::CollectSum
        && !matches!(
            output_types.first(),
            Some(Type::Int | Type::Decimal | Type::Any | Type::Null)
        )
    {
        l.problem(node, "E_TYPE", "`collect_sum` needs a numeric output");
    }
    Some(Table {
        hit,
        output_types,
        inputs,
        outputs,
        rules,
        default,
    })
}

/// The type of a step's value.
fn step_type(step: &Step, _l: &mut Loader<'_>, _node: &Node) -> Type {
    match &step.body {
        Body::Value(e) => e.result_type().clone(),
        Body::Table(t) => {
            let row = if t.outputs.len() == 1 {
                t.output_types[0].clone()
            } else {
                Type::Object {
                    fields: t
                        .outputs
                        .iter()
                        .cloned()
                        .zip(t.output_types.iter().cloned())
                        .collect(),
                    open: false,
                }
            };
            match t.hit {
                HitPolicy::First | HitPolicy::Unique => row,
                HitPolicy::Collect => Type::list(row),
                HitPolicy::CollectSum => match row {
                    Type::Null => Type::Int,
                    other => other,
                },
            }
        }
    }
}

fn load_result(
    l: &mut Loader<'_>,
    node: &Node,
    top: &BTreeMap<String, Type>,
    member_types: &BTreeMap<String, Type>,
) -> Option<ResultSpec> {
    l.check_keys(
        node,
        &[
            "eligible",
            "category",
            "standard",
            "household_income",
            "base_amount",
            "reasons",
            "supplement_categories",
            "supplement_amount",
            "extra",
        ],
    );
    let scope = Scope { types: top.clone() };
    let field = |l: &mut Loader<'_>, name: &str, want: Type| -> Option<Expr> {
        match node.get(name) {
            Some(n) => l.expr(n, &scope, Some(&want)),
            None => {
                l.problem(
                    node,
                    "E_RULE_SHAPE",
                    format!("`result` is missing `{name}`"),
                );
                None
            }
        }
    };
    let eligible = field(l, "eligible", Type::Bool);
    let category = field(l, "category", Type::String);
    let standard = field(l, "standard", Type::Decimal);
    let household_income = field(l, "household_income", Type::Decimal);
    let base_amount = field(l, "base_amount", Type::Decimal);
    let reasons = field(l, "reasons", Type::list(Type::String));
    let member = member_scope(top, member_types);
    let supplement_categories = node
        .get("supplement_categories")
        .and_then(|n| l.expr(n, &member, Some(&Type::list(Type::String))));
    let supplement_amount = node
        .get("supplement_amount")
        .and_then(|n| l.expr(n, &member, Some(&Type::Decimal)));
    let mut extra = Vec::new();
    if let Some(extra_node) = node.get("extra") {
        for (key, spec) in extra_node.as_map().unwrap_or(&[]) {
            l.check_keys(spec, &["label", "money", "text"]);
            let label = spec
                .get("label")
                .and_then(Node::as_scalar)
                .unwrap_or(&key.name)
                .to_string();
            let (format, expr_node, want) = match (spec.get("money"), spec.get("text")) {
                (Some(m), None) => (ExtraFormat::Money, m, Type::Decimal),
                (None, Some(t)) => (ExtraFormat::Text, t, Type::String),
                _ => {
                    l.problem(
                        spec,
                        "E_RULE_SHAPE",
                        "an extra field needs exactly one of `money` or `text`",
                    );
                    continue;
                }
            };
            if let Some(expr) = l.expr(expr_node, &scope, Some(&want)) {
                extra.push(Extra {
                    name: key.name.clone(),
                    label,
                    format,
                    expr,
                });
            }
        }
    }
    Some(ResultSpec {
        eligible: eligible?,
        category: category?,
        standard: standard?,
        household_income: household_income?,
        base_amount: base_amount?,
        reasons: reasons?,
        supplement_categories,
        supplement_amount,
        extra,
    })
}

// ---- evaluation --------------------------------------------------------------

/// One step of an evaluation, for explaining an amount to an applicant.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceEntry {
    /// The step's name in the rule file.
    pub name: String,
    /// Its Chinese label, e.g. 家庭月收入.
    pub label: String,
    /// The member id, for per-member steps.
    pub member: Option<String>,
    /// The table rules that matched, by label.
    pub matched: Vec<String>,
    /// The earlier results (and table inputs) the step read.
    pub inputs: BTreeMap<String, Value>,
    pub value: Value,
}

impl TraceEntry {
    pub fn to_json(&self) -> serde_json::Value {
        let mut out = serde_json::Map::new();
        out.insert("step".into(), self.name.clone().into());
        out.insert("label".into(), self.label.clone().into());
        if let Some(m) = &self.member {
            out.insert("member".into(), m.clone().into());
        }
        if !self.matched.is_empty() {
            out.insert("matched".into(), self.matched.clone().into());
        }
        if !self.inputs.is_empty() {
            out.insert(
                "inputs".into(),
                serde_json::Value::Object(
                    self.inputs
                        .iter()
                        .map(|(k, v)| (k.clone(), v.to_json()))
                        .collect(),
                ),
            );
        }
        out.insert("value".into(), self.value.to_json());
        serde_json::Value::Object(out)
    }
}

/// The raw results of evaluating a program's rules, before rounding.
#[derive(Debug, Clone)]
pub struct Evaluation {
    pub eligible: bool,
    pub category: Option<String>,
    pub standard: Decimal,
    pub household_income: Decimal,
    pub base_amount: Decimal,
    pub reasons: Vec<String>,
    /// Per member: (id, categories, supplement amount).
    pub supplements: Vec<(String, Vec<String>, Decimal)>,
    pub extra: Vec<(String, String, ExtraFormat, Value)>,
    pub trace: Vec<TraceEntry>,
}

/// Variables visible to one evaluation: `local` first, then `parent`. A member's
/// scope is the household's variables plus a few of its own, looked up in place:
/// copying the household's (every member's) variables for each member made an
/// assessment grow with the square of the household's size.
struct Layered<'a> {
    local: &'a BTreeMap<String, Value>,
    parent: &'a dyn Env,
}

impl Env for Layered<'_> {
    fn var(&self, name: &str) -> Option<&Value> {
        self.local.get(name).or_else(|| self.parent.var(name))
    }
}

/// A case's variables as the rules read them — the case's fields (all but one named
/// `policy`, which is always the policy's), each member's scope and the members' ids —
/// made once for every policy the case is assessed under.
pub struct CaseScope {
    vars: BTreeMap<String, Value>,
    ids: Vec<String>,
    /// Per member: `member` itself (the member's values of per-member steps go above it).
    member_scopes: Vec<BTreeMap<String, Value>>,
}

impl CaseScope {
    pub fn new(case: &Case) -> CaseScope {
        let mut vars = case.variables();
        // `policy` is the policy's, whatever the case's fields are called.
        vars.remove("policy");
        let members = &case.household.members;
        CaseScope {
            vars,
            ids: members.iter().map(|m| m.id.clone()).collect(),
            member_scopes: members
                .iter()
                .map(|m| BTreeMap::from([("member".to_string(), m.to_value())]))
                .collect(),
        }
    }
}

/// The `policy` variable, seen below the case's variables and the steps' results.
struct PolicyEnv<'a>(&'a Value);

impl Env for PolicyEnv<'_> {
    fn var(&self, name: &str) -> Option<&Value> {
        (name == "policy").then_some(self.0)
    }
}

impl ProgramRules {
    /// Evaluates the rules for a case under a policy, with the trace of every step.
    pub fn evaluate(&self, policy: &Policy, case: &Case) -> Result<Evaluation, RulesError> {
        self.evaluate_in(&policy.to_value(), case, true)
    }

    /// Evaluates the rules for a case under a policy given as its [`Policy::to_value`]
    /// (made once for many cases); with `trace` false no step is recorded (the
    /// evaluation's `trace` is empty) and nothing is copied for the explanation: the same
    /// results, for callers that need only the figures.
    pub fn evaluate_in(
        &self,
        policy: &Value,
        case: &Case,
        trace: bool,
    ) -> Result<Evaluation, RulesError> {
        self.evaluate_scoped(policy, &CaseScope::new(case), trace)
    }

    /// [`ProgramRules::evaluate_in`] over a case's variables made once ([`CaseScope`]), so
    /// that several policies can be applied to one case without making them again.
    pub fn evaluate_scoped(
        &self,
        policy: &Value,
        case: &CaseScope,
        trace: bool,
    ) -> Result<Evaluation, RulesError> {
        let policy = PolicyEnv(policy);
        // The case's variables below the steps' results (a step's value hides a case
        // field of its name, as it replaced it before the variables were shared).
        let base = Layered {
            local: &case.vars,
            parent: &policy,
        };
        let mut env: BTreeMap<String, Value> = BTreeMap::new();
        let ids = &case.ids;
        let member_scopes = &case.member_scopes;
        let mut member_values: Vec<BTreeMap<String, Value>> =
            vec![BTreeMap::new(); member_scopes.len()];
        let mut step_names: Vec<&str> = Vec::new();
        let mut steps = Vec::new();
        for step in &self.steps {
            if step.per_member {
                let mut all = Vec::with_capacity(member_scopes.len());
                for (i, member) in member_scopes.iter().enumerate() {
                    let household = Layered {
                        local: &env,
                        parent: &base,
                    };
                    let values = Layered {
                        local: &member_values[i],
                        parent: &household,
                    };
                    let scope = Layered {
                        local: member,
                        parent: &values,
                    };
                    let (value, entry) = self.run_step(step, &scope, &step_names, trace)?;
                    if let Some(entry) = entry {
                        steps.push(TraceEntry {
                            member: Some(ids[i].clone()),
                            ..entry
                        });
                    }
                    member_values[i].insert(step.name.clone(), value.clone());
                    all.push(value);
                }
                env.insert(step.name.clone(), Value::List(all));
            } else {
                let scope = Layered {
                    local: &env,
                    parent: &base,
                };
                let (value, entry) = self.run_step(step, &scope, &step_names, trace)?;
                steps.extend(entry);
                env.insert(step.name.clone(), value);
            }
            step_names.push(&step.name);
        }
        let env = Layered {
            local: &env,
            parent: &base,
        };
        let r = &self.result;
        let eval = |e: &Expr, scope: &dyn Env, field: &str| {
            e.eval(scope).map_err(|source| RulesError::Eval {
                program: self.program.clone(),
                step: format!("result.{field}"),
                source,
            })
        };
        let decimal = |v: Value| expr::number(&v).unwrap_or(Decimal::ZERO);
        let strings = |v: Value| match v {
            Value::List(items) => items
                .into_iter()
                .filter_map(|i| i.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        };
        let eligible = eval(&r.eligible, &env, "eligible")?
            .as_bool()
            .unwrap_or(false);
        let category = eval(&r.category, &env, "category")?
            .as_str()
            .map(str::to_string);
        let mut supplements = Vec::new();
        if r.supplement_amount.is_some() || r.supplement_categories.is_some() {
            for (i, member) in member_scopes.iter().enumerate() {
                let values = Layered {
                    local: &member_values[i],
                    parent: &env,
                };
                let scope = Layered {
                    local: member,
                    parent: &values,
                };
                let categories = match &r.supplement_categories {
                    Some(e) => strings(eval(e, &scope, "supplement_categories")?),
                    None => Vec::new(),
                };
                let amount = match &r.supplement_amount {
                    Some(e) => decimal(eval(e, &scope, "supplement_amount")?),
                    None => Decimal::ZERO,
                };
                supplements.push((ids[i].clone(), categories, amount));
            }
        }
        let mut extra = Vec::new();
        for x in &r.extra {
            extra.push((
                x.name.clone(),
                x.label.clone(),
                x.format,
                eval(&x.expr, &env, &x.name)?,
            ));
        }
        Ok(Evaluation {
            eligible,
            category,
            standard: decimal(eval(&r.standard, &env, "standard")?),
            household_income: decimal(eval(&r.household_income, &env, "household_income")?),
            base_amount: decimal(eval(&r.base_amount, &env, "base_amount")?),
            reasons: strings(eval(&r.reasons, &env, "reasons")?),
            supplements,
            extra,
            trace: steps,
        })
    }

    /// Runs one step: its value, and its trace entry when `trace` is asked for.
    fn run_step(
        &self,
        step: &Step,
        env: &dyn Env,
        step_names: &[&str],
        trace: bool,
    ) -> Result<(Value, Option<TraceEntry>), RulesError> {
        let eval_error = |source| RulesError::Eval {
            program: self.program.clone(),
            step: step.name.clone(),
            source,
        };
        let inputs_of = |e: &Expr, env: &dyn Env, extra: &[&str]| -> BTreeMap<String, Value> {
            e.variables()
                .into_iter()
                .filter(|v| step_names.contains(&v.as_str()) || extra.contains(&v.as_str()))
                .filter_map(|v| env.var(&v).map(|val| (v, val.clone())))
                .collect()
        };
        // Without a trace only `matched` is kept (a `unique` table's error names them).
        let mut entry = TraceEntry {
            name: if trace {
                step.name.clone()
            } else {
                String::new()
            },
            label: if trace {
                step.label.clone()
            } else {
                String::new()
            },
            member: None,
            matched: Vec::new(),
            inputs: BTreeMap::new(),
            value: Value::Null,
        };
        let value = match &step.body {
            Body::Value(e) => {
                if trace {
                    entry.inputs = inputs_of(e, env, &[]);
                }
                e.eval(env).map_err(eval_error)?
            }
            Body::Table(table) => {
                // The table's inputs, seen by its later inputs and its rules.
                let mut inputs = BTreeMap::new();
                let input_names: Vec<&str> = table.inputs.iter().map(|(n, _)| n.as_str()).collect();
                for (name, e) in &table.inputs {
                    let scope = Layered {
                        local: &inputs,
                        parent: env,
                    };
                    let v = e.eval(&scope).map_err(eval_error)?;
                    if trace {
                        entry.inputs.insert(name.clone(), v.clone());
                    }
                    inputs.insert(name.clone(), v);
                }
                let scope = Layered {
                    local: &inputs,
                    parent: env,
                };
                let mut rows = Vec::new();
                for rule in &table.rules {
                    let hit = rule.when.eval(&scope).map_err(eval_error)?;
                    if trace {
                        for (k, v) in inputs_of(&rule.when, &scope, &input_names) {
                            entry.inputs.entry(k).or_insert(v);
                        }
                    }
                    if hit != Value::Bool(true) {
                        continue;
                    }
                    entry.matched.push(rule.label.clone());
                    let row = rule
                        .then
                        .iter()
                        .map(|e| e.eval(&scope))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(eval_error)?;
                    rows.push(row);
                    if table.hit == HitPolicy::First {
                        break;
                    }
                }
                if table.hit == HitPolicy::Unique && rows.len() > 1 {
                    return Err(RulesError::Table {
                        program: self.program.clone(),
                        step: step.name.clone(),
                        message: format!(
                            "a `unique` table matched {} rules: {}",
                            rows.len(),
                            entry.matched.join(", ")
                        ),
                    });
                }
                let shape = |row: Vec<Value>| -> Value {
                    if table.outputs.len() == 1 {
                        row.into_iter().next().unwrap_or_default()
                    } else {
                        Value::Object(table.outputs.iter().cloned().zip(row).collect())
                    }
                };
                match table.hit {
                    HitPolicy::First | HitPolicy::Unique => match rows.pop() {
                        Some(row) => shape(row),
                        None => match &table.default {
                            Some(default) => {
                                entry.matched.push("default".into());
                                shape(
                                    default
                                        .iter()
                                        .map(|e| e.eval(&scope))
                                        .collect::<Result<Vec<_>, _>>()
                                        .map_err(eval_error)?,
                                )
                            }
                            None => shape(vec![Value::Null; table.outputs.len()]),
                        },
                    },
                    HitPolicy::Collect => Value::List(rows.into_iter().map(shape).collect()),
                    HitPolicy::CollectSum => {
                        let values: Vec<Value> = rows.into_iter().map(shape).collect();
                        let mut total = Decimal::ZERO;
                        for v in &values {
                            total = total
                                .checked_add(expr::number(v).unwrap_or(Decimal::ZERO))
                                .ok_or_else(|| RulesError::Table {
                                    program: self.program.clone(),
                                    step: step.name.clone(),
                                    message: "the sum overflows".into(),
                                })?;
                        }
                        Value::Decimal(total)
                    }
                }
            }
        };
        if !trace {
            return Ok((value, None));
        }
        entry.value = value.clone();
        Ok((value, Some(entry)))
    }
}
