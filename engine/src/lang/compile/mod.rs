//! Compilation of the YAML tree into a [`Definition`]: names resolved to
//! indexes, types read, expressions parsed and type-checked against the scope
//! of the place they appear in, durations and cron expressions validated.
//! Every problem is recorded in the [`Ctx`] and reading goes on, so one run
//! reports them all; the definition is only returned when there were none.
//!
//! One impl of [`Compiler`] spread over files by concern: `header` (ids,
//! roles, variables), `types` (specs, forms), `exprs`, `effects`, `nodes`
//! (heads, bodies, `next`, timers), `kinds` (tasks, multi, rules, handlers)
//! and `deadlines` (deadlines, messages, schedules).

mod batch;
mod checks;
mod cross_case;
mod deadlines;
mod effects;
mod exprs;
mod header;
mod kinds;
mod nodes;
mod types;

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use jiuzhu_rules::expr::{Expr, TypeEnv};
use jiuzhu_rules::{Type, Value};
use rust_decimal::Decimal;

use super::context::{LoadContext, TemplateVars};
use super::diagnostic::{codes, did_you_mean};
use super::graph;
use super::model::*;
use super::read::{Ctx, Fields};
use super::scope::{Scope, assessment_type, builtins, household_type};
use super::yaml::{Key, Pos, Yaml, YamlValue};
use crate::duration::Duration;

/// Most nodes a definition may have.
pub const MAX_NODES: usize = 1000;

/// The node types and the keys each accepts besides `id`, `type` and `name`.
const NODE_TYPES: &[&str] = &[
    "task", "rule", "compute", "choice", "parallel", "join", "timer", "receive", "batch", "end",
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
    /// Some expression reads `policy`.
    reads_policy: bool,
    /// Some expression reads `previous_policy`.
    reads_previous_policy: bool,
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
            reads_policy: false,
            reads_previous_policy: false,
        }
    }

    /// A join waits for one arrival per branch of the parallel node named by `of`.
    pub(super) fn resolve_joins(&mut self, nodes: &mut [Node]) {
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
        let key = top.get("key").and_then(|y| self.business_key(y));
        let key_outlives = top
            .get("key_outlives")
            .map(|y| self.key_outlives(y))
            .unwrap_or_default();
        let requires_active = top
            .get("requires_active")
            .and_then(|y| self.requires_active(y));
        let checks = top
            .get("checks")
            .map(|y| self.start_checks(y))
            .unwrap_or_default();
        let started_by = top
            .get("started_by")
            .map(|y| self.roles(y, "started_by"))
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
        let mut schedules = Vec::new();
        let mut policy_starts = Vec::new();
        if let Some(y) = top.get("schedules") {
            for item in self.ctx.seq(y, "schedules") {
                match self.schedule(item) {
                    Some(deadlines::Schedule::Cron(decl)) => schedules.push(decl),
                    Some(deadlines::Schedule::Policy(decl)) => policy_starts.push(decl),
                    None => {}
                }
            }
        }
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
            if !self.load.stored {
                graph::check_loops(self.ctx, &nodes, &at);
            }
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
            policy_starts,
            key,
            key_outlives,
            requires_active,
            checks,
            started_by,
            reads_policy: self.reads_policy,
            reads_previous_policy: self.reads_previous_policy,
            stored: self.load.stored,
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
