//! Batch nodes: entering one asks for a run over the recipients (an outward `batch`
//! effect) and waits for its report; [`expand`] makes one recipient's effects, for
//! whoever carries the run out (the payments ledger, the scenario runner).
//!
//! The run itself is not the core's: it needs the benefits in force, which the
//! payments side owns. The core only states what to run (`over`, `run_key`, the node)
//! and, given a recipient, what to make for them (`each`) — a pure function, so a run
//! resumed after a crash makes exactly what it made before.

use crate::core::*;
use crate::lang::model::BatchDecl;

/// The effect fields of a `batch` request.
pub mod fields {
    /// The run's key: a second run under it pays nobody twice.
    pub const RUN_KEY: &str = "run_key";
    /// The node waiting for the report, whose `each` makes each recipient's effects.
    pub const NODE: &str = "node";
    /// The query: `benefits`, `unit`, `as_of`, `per`.
    pub const OVER: &str = "over";
    /// The node's `once_per`: once per recipient under this key, whatever the run.
    pub const ONCE_PER: &str = "once_per";
}

impl<'a> Run<'a> {
    /// A batch node: the request goes out and the token waits for the run's report.
    pub(in crate::core) fn enter_batch(
        &mut self,
        node_id: &str,
        decl: &'a BatchDecl,
        token: u64,
    ) -> Result<(), StepError> {
        let node_id = node_id.to_string();
        let decl_node = node_id.clone();
        let run_key = self.eval_string(&decl.run_key, &[], &node_id)?;
        if run_key.is_empty() {
            return Err(incident(&node_id, "the batch's run_key is empty"));
        }
        let once_per = match &decl.once_per {
            Some(expr) => {
                let key = self.eval_string(expr, &[], &node_id)?;
                if key.is_empty() {
                    return Err(incident(&node_id, "the batch's once_per is empty"));
                }
                Some(key)
            }
            None => None,
        };
        let mut over = BTreeMap::new();
        for (name, template) in &decl.over {
            over.insert(name.clone(), self.render(template, &[], &node_id)?);
        }
        self.st.tokens.push(Token {
            id: token,
            node: node_id.clone(),
        });
        let mut request = BTreeMap::from([
            (fields::RUN_KEY.to_string(), Value::Str(run_key)),
            (fields::NODE.to_string(), Value::Str(node_id)),
            (fields::OVER.to_string(), Value::Object(over)),
        ]);
        if let Some(key) = once_per {
            request.insert(fields::ONCE_PER.to_string(), Value::Str(key));
        }
        self.push_outward(EffectKind::Batch, request, &decl_node)
    }
}

/// What a scope of [`expand`] sees: `recipient`, the case's built-ins, its variables.
struct RecipientScope<'s> {
    recipient: &'s Value,
    builtins: BTreeMap<String, Value>,
    vars: &'s BTreeMap<String, Value>,
}

impl Env for RecipientScope<'_> {
    fn var(&self, name: &str) -> Option<&Value> {
        if name == "recipient" {
            return Some(self.recipient);
        }
        self.builtins.get(name).or_else(|| self.vars.get(name))
    }
}

/// One recipient's effects of the batch node `node_id` of `state`'s case: each `each`
/// item whose `if` holds, evaluated with `recipient` in scope. The ids are
/// `batch:RUN_KEY:RECIPIENT_KEY:N`, the same whichever case runs the key and however often,
/// so the ledger, which applies an effect id once, pays a recipient once per run key.
/// Fails (with the expression's problem) when an expression fails for this recipient.
pub fn expand(
    def: &Definition,
    state: &InstanceState,
    node_id: &str,
    now: DateTime<FixedOffset>,
    run_key: &str,
    recipient_key: &str,
    recipient: &Value,
) -> Result<Vec<Outward>, String> {
    let Some(NodeKind::Batch(decl)) = def.node_index(node_id).map(|i| &def.nodes[i].kind) else {
        return Err(format!("{} has no batch node {node_id}", def.id));
    };
    let builtins = BTreeMap::from([
        ("instance_id".to_string(), Value::Str(state.id.clone())),
        ("process".to_string(), Value::Str(state.process.clone())),
        ("unit".to_string(), Value::Str(state.unit.clone())),
        ("started_at".to_string(), Value::DateTime(state.started_at)),
        ("now".to_string(), Value::DateTime(now)),
        (
            "started_by".to_string(),
            Value::Str(state.started_by.clone()),
        ),
        (
            "outcome".to_string(),
            state.outcome.clone().map_or(Value::Null, Value::Str),
        ),
    ]);
    let scope = RecipientScope {
        recipient,
        builtins,
        vars: &state.vars,
    };
    let mut out = Vec::new();
    for (index, template) in decl.each.iter().enumerate() {
        if let Some(condition) = &template.condition {
            match condition.eval(&scope) {
                Ok(Value::Bool(true)) => {}
                Ok(Value::Bool(false) | Value::Null) => continue,
                Ok(other) => {
                    return Err(format!(
                        "`{}` gave {}, not a bool",
                        condition.source(),
                        other.type_name()
                    ));
                }
                Err(e) => return Err(format!("`{}`: {e}", condition.source())),
            }
        }
        let mut fields = BTreeMap::new();
        for (name, value) in &template.fields {
            fields.insert(name.clone(), scope::render_template(value, &scope)?);
        }
        fields
            .entry("instance".to_string())
            .or_insert_with(|| Value::Str(state.id.clone()));
        if let Some(case) = recipient.get("case") {
            fields
                .entry("case".to_string())
                .or_insert_with(|| case.clone());
        }
        if let Some(unit) = recipient.get("unit") {
            fields
                .entry("unit".to_string())
                .or_insert_with(|| unit.clone());
        }
        let id = format!("batch:{run_key}:{recipient_key}:{}", index + 1);
        let outward = Outward::from_fields(id, state.id.clone(), template.kind, fields)
            .map_err(|e| e.to_string())?;
        out.push(outward);
    }
    Ok(out)
}
