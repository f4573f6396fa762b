//! The compiled process definition: what the loader produces and the pure core runs.
//!
//! Names are resolved to indexes and every expression is parsed and type-checked
//! against the declared variables before a definition reaches this form, so the
//! core never meets an unknown node, variable or type at run time.

use std::collections::BTreeMap;

use jiuzhu_rules::expr::Expr;
use jiuzhu_rules::{Type, Value};

use crate::duration::Duration;

/// The built-in role of messages the engine delivers between cases (`message` effects,
/// `reply` and `on_end`): not an org role, so no user holds it; a message handler with
/// `roles:` lists it to accept such messages.
pub const SYSTEM_ROLE: &str = "system";

/// Index of a node in [`Definition::nodes`].
pub type NodeIdx = usize;

/// A validated, compiled process definition.
#[derive(Debug, Clone)]
pub struct Definition {
    /// The process id (`dibao`), a contract with scenarios.
    pub id: String,
    /// Display name (Chinese).
    pub name: String,
    pub description: Option<String>,
    /// Calendar id used for working-day durations (`cn` by default).
    pub calendar: String,
    /// Declared variables, in declaration order.
    pub variables: Vec<VariableDecl>,
    /// The node entered when an instance starts.
    pub start: NodeIdx,
    pub nodes: Vec<Node>,
    /// Instance-wide deadlines (e.g. the 20 WD decision deadline).
    pub deadlines: Vec<DeadlineDecl>,
    /// Instance-wide messages that may arrive at any open step (withdraw, extend).
    pub messages: Vec<MessageDecl>,
    /// Recurring schedules declared by the definition (batch processes).
    pub schedules: Vec<ScheduleDecl>,
    /// Starts on each policy day (`schedules:` items with `on: policy_changed`).
    pub policy_starts: Vec<PolicyStartDecl>,
    /// The business key (`key:`), a string expression over the variables at start:
    /// unique among the process's active cases (`docs/process-language.md`).
    pub key: Option<Expr>,
    /// The outcomes whose cases keep holding their business key after they end
    /// (`key_outlives:`): a funeral aid approved for a person is not started again.
    pub key_outlives: Vec<String>,
    /// A case of another process the start needs (`requires_active:`): checked by the
    /// runtime and the scenario runner against the cases they hold before anything is
    /// stored (`no_active_benefit`).
    pub requires_active: Option<RequiresActive>,
    /// Conditions the start data must meet (`checks:`), beyond the declared types.
    pub checks: Vec<StartCheck>,
    /// The roles that may start a case (`started_by:`); the engine itself (role
    /// `system`: a parent's `start_process`, a schedule) always may. Empty: any role.
    pub started_by: Vec<String>,
    /// Some expression reads `policy` (the figures in force), so steps put it in scope.
    pub reads_policy: bool,
    /// Some expression reads `previous_policy` (the figures before the ones in force).
    pub reads_previous_policy: bool,
    /// Compiled from a stored version: its effects keep fields no schema declares.
    pub stored: bool,
}

/// `requires_active:` a start needs an approved case of `process` (active, or ended with
/// outcome `approved`) whose variables hold the ID number `id_number`; both are string
/// expressions over the start's variables, evaluated by the core at start.
#[derive(Debug, Clone)]
pub struct RequiresActive {
    pub process: Expr,
    pub id_number: Expr,
}

impl Definition {
    pub fn node_index(&self, id: &str) -> Option<NodeIdx> {
        self.nodes.iter().position(|n| n.id == id)
    }

    pub fn variable(&self, name: &str) -> Option<&VariableDecl> {
        self.variables.iter().find(|v| v.name == name)
    }

    pub fn message(&self, name: &str) -> Option<&MessageDecl> {
        self.messages.iter().find(|m| m.name == name)
    }

    /// The roles that may send message `name`, wherever it is declared (the process's
    /// messages, receive nodes, task handlers); empty when some declaration names none
    /// (the applicant's own message, e.g. an objection) or none declares it.
    pub fn message_roles(&self, name: &str) -> Vec<String> {
        let handlers = self.nodes.iter().flat_map(|node| match &node.kind {
            NodeKind::Receive(recv) => recv.handlers.as_slice(),
            NodeKind::Task(task) => task.on.as_slice(),
            NodeKind::Batch(batch) => std::slice::from_ref(&batch.done),
            _ => &[],
        });
        let declared: Vec<&[String]> = self
            .messages
            .iter()
            .filter(|m| m.name == name)
            .map(|m| m.roles.as_slice())
            .chain(
                handlers
                    .filter(|h| h.name == name)
                    .map(|h| h.roles.as_slice()),
            )
            .collect();
        if declared.iter().any(|roles| roles.is_empty()) {
            return Vec::new();
        }
        let mut roles: Vec<String> = declared.concat();
        roles.sort();
        roles.dedup();
        roles
    }

    /// Every effect template the definition can emit, wherever it is declared.
    pub fn effect_templates(&self) -> Vec<&EffectTemplate> {
        let mut out: Vec<&EffectTemplate> = Vec::new();
        for node in &self.nodes {
            out.extend(&node.completion.emit);
            match &node.kind {
                NodeKind::Receive(recv) => {
                    for handler in &recv.handlers {
                        out.extend(&handler.completion.emit);
                    }
                    if let Some((_, completion)) = &recv.timeout {
                        out.extend(&completion.emit);
                    }
                }
                NodeKind::Task(task) => {
                    for handler in &task.on {
                        out.extend(&handler.completion.emit);
                    }
                }
                NodeKind::Batch(batch) => {
                    out.extend(&batch.each);
                    out.extend(&batch.done.completion.emit);
                }
                _ => {}
            }
        }
        for deadline in &self.deadlines {
            out.extend(&deadline.remind);
            out.extend(&deadline.overdue_emit);
        }
        for message in &self.messages {
            out.extend(&message.emit);
        }
        out
    }

    /// The notification templates the definition names (literal `template:` fields),
    /// so a deployment can refuse a definition whose notice has no template.
    pub fn notification_templates(&self) -> std::collections::BTreeSet<String> {
        self.effect_templates()
            .into_iter()
            .filter(|t| t.kind == EffectKind::Notification)
            .filter_map(|t| {
                t.fields
                    .iter()
                    .find(|(name, _)| name == "template")
                    .and_then(|(_, value)| match value {
                        ValueTemplate::Literal(Value::Str(name)) => Some(name.clone()),
                        _ => None,
                    })
            })
            .collect()
    }
}

/// A declared, typed process variable.
#[derive(Debug, Clone)]
pub struct VariableDecl {
    pub name: String,
    pub ty: Type,
    pub label: Option<String>,
    /// Must be present in the start data.
    pub required: bool,
    /// Value when absent from the start data.
    pub default: Option<Value>,
}

/// A condition the start data must meet (`checks:`): when it does not hold, the start
/// is refused (`invalid_data`) with `message` at `path`.
#[derive(Debug, Clone)]
pub struct StartCheck {
    pub condition: Expr,
    pub path: String,
    pub message: String,
}

/// A typed field of a task form or message payload.
#[derive(Debug, Clone)]
pub struct FieldDecl {
    pub name: String,
    pub ty: Type,
    pub label: Option<String>,
    pub required: bool,
    /// Required only when this condition (over `form`/`message` and the variables) holds.
    pub required_when: Option<Expr>,
    /// Value used when the field is absent; may be an expression over the variables.
    pub default: Option<ValueTemplate>,
    /// Inclusive numeric bounds.
    pub min: Option<Value>,
    pub max: Option<Value>,
    /// For lists: the fewest items allowed.
    pub min_items: Option<usize>,
}

/// A value written in YAML: a literal, an `=expression`, or a structure of those.
#[derive(Debug, Clone)]
pub enum ValueTemplate {
    Literal(Value),
    Expr(Expr),
    List(Vec<ValueTemplate>),
    Object(Vec<(String, ValueTemplate)>),
}

/// `variable = expression` run when a node completes.
#[derive(Debug, Clone)]
pub struct Assignment {
    pub variable: String,
    pub value: Expr,
}

/// One outgoing transition; the first whose condition holds is taken, in order.
/// A transition without a condition is the default and is always last.
#[derive(Debug, Clone)]
pub struct Transition {
    pub condition: Option<Expr>,
    pub target: NodeIdx,
}

/// What a node does after it completes: assignments, effects, outcome, next node.
#[derive(Debug, Clone, Default)]
pub struct Completion {
    pub set: Vec<Assignment>,
    pub emit: Vec<EffectTemplate>,
    /// Records the case outcome without ending the instance (tekun stays active).
    pub outcome: Option<String>,
    /// Empty only for end nodes.
    pub next: Vec<Transition>,
}

/// An outward effect declared in YAML (`emit:`), evaluated when the node completes.
#[derive(Debug, Clone)]
pub struct EffectTemplate {
    pub kind: EffectKind,
    /// Fields of the effect (template, to_role, amount, purpose, from, process, data, …).
    pub fields: Vec<(String, ValueTemplate)>,
    /// Emitted only when this condition holds.
    pub condition: Option<Expr>,
    /// Emitted once per element of this list, with the element bound to `item_name` in
    /// the fields and the condition.
    pub for_each: Option<Expr>,
    /// The name an element of `for_each` is bound to (`item` unless `as:` says otherwise).
    pub item_name: String,
}

/// The closed set of outward effect kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EffectKind {
    Notification,
    Payment,
    PaymentStop,
    StartProcess,
    Escalation,
    /// A named message to another case, delivered by the engine (`runtime/internal.rs`).
    Message,
    /// A batch node's run over the recipients: emitted by the node itself, never by `emit`.
    Batch,
}

impl EffectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EffectKind::Notification => "notification",
            EffectKind::Payment => "payment",
            EffectKind::PaymentStop => "payment_stop",
            EffectKind::StartProcess => "start_process",
            EffectKind::Escalation => "escalation",
            EffectKind::Message => "message",
            EffectKind::Batch => "batch",
        }
    }
}

/// A node of the process graph.
#[derive(Debug, Clone)]
pub struct Node {
    pub id: String,
    /// Display label (Chinese), e.g. 入户调查.
    pub name: String,
    pub kind: NodeKind,
    pub completion: Completion,
}

// Nodes live once per definition and are read far more than moved, so the
// size difference between a task and a choice costs nothing worth a Box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum NodeKind {
    /// A user task (or, with `multi`, one task per item).
    Task(TaskDecl),
    /// Calls an assessment program of the rules crate; `result` is in scope for `set`.
    Rule(RuleDecl),
    /// Only assignments and effects.
    Compute,
    /// Exclusive choice: only `completion.next` (conditions + default).
    Choice,
    /// Parallel split: one token per branch.
    Parallel { branches: Vec<NodeIdx> },
    /// Parallel join: waits for one token per branch of `split`.
    Join { split: NodeIdx, expected: usize },
    /// Waits for a duration or until a computed date/time.
    Timer(TimerSpec),
    /// Deferred choice: waits for one of several messages, or a timeout, whichever comes first.
    Receive(ReceiveDecl),
    /// Runs one thing per recipient of a query of active benefits, then continues
    /// with `batch` (count, total) in scope (`docs/batches.md`).
    Batch(BatchDecl),
    /// Ends the instance.
    End { status: EndStatus },
}

/// A batch node: what it asks for (`over`, `run_key`), what it does per recipient
/// (`each`, with `recipient` in scope) and what it does once the run reports back.
#[derive(Debug, Clone)]
pub struct BatchDecl {
    /// The query: `benefits` (programs), `unit`, `as_of`, `per` (household | benefit).
    pub over: Vec<(String, ValueTemplate)>,
    /// Same key, same run: nobody is paid twice under one key.
    pub run_key: Expr,
    /// Once per recipient under this key (`once_per:`), whatever runs cover them: the
    /// ledger skips a recipient already paid under it by another run.
    pub once_per: Option<Expr>,
    /// The effects made per recipient (payments), evaluated by whoever expands the run.
    pub each: Vec<EffectTemplate>,
    /// The report the node waits for (message [`BATCH_DONE`]); its completion is the
    /// node's `set`/`outcome`/`next`, with the report in scope as `batch`.
    pub done: MessageHandler,
}

/// The message that reports a batch run's end to the case waiting at its node.
pub const BATCH_DONE: &str = "batch_done";

/// The role the report of a batch run is sent with: no person holds it.
pub const BATCH_SENDER_ROLE: &str = "system";

#[derive(Debug, Clone)]
pub struct TaskDecl {
    /// Candidate roles (any of them may act).
    pub roles: Vec<String>,
    /// The unit the task belongs to; defaults to the case's `unit`.
    pub unit: Option<Expr>,
    /// A specific user (expression yielding a user id); otherwise claimable by role.
    pub assignee: Option<Expr>,
    pub form: Vec<FieldDecl>,
    pub deadline: Option<TaskDeadline>,
    /// The users who completed these nodes may not complete this one.
    pub separate_from: Vec<NodeIdx>,
    pub multi: Option<MultiInstance>,
    /// Interrupting messages (`on:`): while the task is open, such a message
    /// cancels the node's open tasks and continues at the handler's `next`
    /// (e.g. `stop_installments` during a `follow_up`).
    pub on: Vec<MessageHandler>,
}

#[derive(Debug, Clone)]
pub struct TaskDeadline {
    pub due: Duration,
    /// Lead time of the reminder before `due`.
    pub remind_before: Option<Duration>,
    /// Role that receives an escalation when the task is overdue.
    pub escalate_to: Option<String>,
}

/// One task per item of a list (committee votes), completed by a condition.
#[derive(Debug, Clone)]
pub struct MultiInstance {
    /// A list expression; each item (a user id) becomes a task assigned to that user.
    pub for_each: Expr,
    /// Variable that collects each completed task's form data plus `by` (user id).
    pub collect: String,
    /// Evaluated after each completion; when true, remaining tasks are cancelled.
    pub complete_when: Expr,
}

#[derive(Debug, Clone)]
pub struct RuleDecl {
    /// Assessment program: dibao | low_income | tekun | temporary_aid.
    pub program: String,
    /// Inputs by name (household, area, as_of, request); each an expression.
    pub inputs: Vec<(String, Expr)>,
}

#[derive(Debug, Clone)]
pub enum TimerSpec {
    After(Duration),
    /// An expression yielding a date (start of that local day) or a date-time.
    Until(Expr),
}

#[derive(Debug, Clone)]
pub struct ReceiveDecl {
    pub handlers: Vec<MessageHandler>,
    pub timeout: Option<(TimerSpec, Completion)>,
}

/// What happens when message `name` arrives while a `Receive` node (or a task
/// with `on:`) waits.
#[derive(Debug, Clone)]
pub struct MessageHandler {
    pub name: String,
    /// Roles allowed to send it; empty means anyone (e.g. an objection from the public).
    pub roles: Vec<String>,
    pub form: Vec<FieldDecl>,
    pub completion: Completion,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndStatus {
    Completed,
    Terminated,
}

/// An instance-wide deadline: armed when `start` completes (or at instance start),
/// disarmed when one of `stop` completes or the instance ends.
#[derive(Debug, Clone)]
pub struct DeadlineDecl {
    pub id: String,
    pub name: String,
    /// `None`: armed when the instance starts.
    pub start: Option<NodeIdx>,
    pub due: Duration,
    pub stop: Vec<NodeIdx>,
    pub remind_before: Option<Duration>,
    /// Effects at the reminder time.
    pub remind: Vec<EffectTemplate>,
    /// Assignments and effects when the deadline passes.
    pub overdue_set: Vec<Assignment>,
    pub overdue_emit: Vec<EffectTemplate>,
}

/// A message accepted at any open step of the instance.
#[derive(Debug, Clone)]
pub struct MessageDecl {
    pub name: String,
    pub label: Option<String>,
    pub roles: Vec<String>,
    pub form: Vec<FieldDecl>,
    pub set: Vec<Assignment>,
    pub emit: Vec<EffectTemplate>,
    /// Interrupting: cancel every open task and timer and continue at this node.
    pub goto: Option<NodeIdx>,
    /// Moves deadlines: the named deadline becomes `duration` after its arming time.
    pub reschedule: Vec<(usize, Duration)>,
}

/// A start of this process each time a policy takes effect (a `schedules:` item with
/// `on: policy_changed`): once per policy day and jurisdiction, by the scheduler and the
/// scenario runner alike (`core::policy_change::policy_start_data`). Its `data` sees the
/// policy taking effect as `policy`, the one before it as `previous_policy` and the day as
/// `effective_from`.
#[derive(Debug, Clone)]
pub struct PolicyStartDecl {
    pub id: String,
    pub data: BTreeMap<String, ValueTemplate>,
}

/// The trigger `on:` of a schedule started by a policy taking effect.
pub const ON_POLICY_CHANGED: &str = "policy_changed";

/// A recurring schedule (cron) that starts an instance of this process.
#[derive(Debug, Clone)]
pub struct ScheduleDecl {
    pub id: String,
    /// Cron expression (seconds field included, as the `cron` crate reads it).
    pub cron: String,
    pub data: BTreeMap<String, ValueTemplate>,
}
