//! Loops that never wait: the loader rejects a cycle of nodes with no task, receive or
//! timer on it, and a step that still runs into one (a definition compiled before that
//! check, a wide fan-out) is stopped by the node-entry budget with an incident on the
//! case, never by the stack overflowing.

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset};
use jiuzhu_engine::calendar::Calendar;
use jiuzhu_engine::core::{self, AssessError, Assessor, Context, Event, InstanceState, Status};
use jiuzhu_engine::core::{Actor, StepError, TaskRef};
use jiuzhu_engine::lang::model::{Definition, NodeKind};
use jiuzhu_engine::lang::{LoadContext, load_definition, render};
use jiuzhu_rules::Value;

struct NoRules;

impl Assessor for NoRules {
    fn assess(&self, program: &str, _: &BTreeMap<String, Value>) -> Result<Value, AssessError> {
        Err(AssessError::new(format!("no assessment {program} here")))
    }
}

fn now() -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339("2026-03-02T09:00:00+08:00").expect("time")
}

fn clerk() -> Actor {
    Actor {
        user: "clerk".into(),
        roles: vec!["township_clerk".into()],
        unit: "双鸭山市/尖山区/中心站街道".into(),
    }
}

fn load(src: &str) -> Result<Definition, String> {
    load_definition(src, "loop.yaml", &LoadContext::default()).map_err(|d| render(&d))
}

/// A loop that forks a review on every pass and never leaves.
const FORKING_LOOP: &str = r#"
process: forking
start: accept
nodes:
  - {id: accept, type: task, role: township_clerk, next: fan}
  - {id: fan, type: parallel, branches: [again, review]}
  - {id: again, type: compute, next: fan}
  - {id: review, type: task, role: township_staff, next: done}
  - {id: done, type: end}
"#;

#[test]
fn the_loader_rejects_a_loop_that_never_waits_nor_leaves() {
    let text = load(FORKING_LOOP).expect_err("a loop without a wait or a way out is refused");
    assert!(text.contains("E_LOOP_WITHOUT_WAIT"), "{text}");
    assert!(text.contains("`fan`, `again`"), "{text}");
    // Positioned at the loop's first node.
    assert!(text.starts_with("loop.yaml:6:"), "{text}");
}

/// A counter loop of a compute and a choice node, with a task in front. Its way out is
/// conditional: `exit` is the condition.
fn counting(exit: &str) -> String {
    format!(
        r#"
process: counting
start: accept
variables:
  n: {{type: int, default: 0}}
nodes:
  - {{id: accept, type: task, role: township_clerk, next: count}}
  - {{id: count, type: compute, set: {{n: "n + 1"}}, next: check}}
  - id: check
    type: choice
    next:
      - {{if: "{exit}", to: done}}
      - {{to: count}}
  - {{id: done, type: end}}
"#
    )
}

#[test]
fn a_loop_that_never_waits_is_refused_even_with_a_way_out() {
    let text = load(&counting("n > 3")).expect_err("a counted loop within one step is refused");
    assert!(text.contains("E_LOOP_WITHOUT_WAIT"), "{text}");
    assert!(text.contains("`count`, `check`"), "{text}");
    assert!(
        text.contains("for_each"),
        "the hint names `for_each`: {text}"
    );
}

#[test]
fn a_loop_with_a_wait_loads() {
    let through_task = FORKING_LOOP.replace(
        "{id: again, type: compute, next: fan}",
        "{id: again, type: task, role: township_clerk, next: fan}",
    );
    load(&through_task).expect("a task waits on the loop");
    let through_timer = FORKING_LOOP.replace(
        "{id: again, type: compute, next: fan}",
        "{id: again, type: timer, wait: 1d, next: fan}",
    );
    load(&through_timer).expect("a timer waits on the loop");
}

/// A loop that never ends within one step, as a definition compiled before the loader
/// refused such loops would have it: loaded with a task on the loop, which is then made a
/// compute node.
fn looping_definition() -> Definition {
    let src = counting("n < 0").replace(
        "{id: count, type: compute,",
        "{id: count, type: task, role: township_clerk,",
    );
    let mut def = load(&src).unwrap_or_else(|text| panic!("does not load:\n{text}"));
    let count = def.node_index("count").expect("count");
    assert!(matches!(def.nodes[count].kind, NodeKind::Task(_)));
    def.nodes[count].kind = NodeKind::Compute;
    def
}

#[test]
fn a_loop_is_stopped_by_the_entry_budget_with_an_incident() {
    let def = looping_definition();
    let calendar = Calendar::china_national();
    let ctx = Context {
        calendar: &calendar,
        assessor: &NoRules,
    };
    let start = Event::Start {
        actor: clerk(),
        data: BTreeMap::new(),
    };
    let state = InstanceState::new("loop-1", &def.id, now());
    let started = core::step(&def, &state, &start, now(), &ctx).expect("starts at the task");
    assert_eq!(started.state.status, Status::Active);
    let complete = Event::Complete {
        task: TaskRef::Node("accept".into()),
        actor: clerk(),
        data: BTreeMap::new(),
    };
    // Recursing node by node, this step overflowed the test thread's stack.
    let error =
        core::step(&def, &started.state, &complete, now(), &ctx).expect_err("the loop is stopped");
    assert_eq!(error.code(), "incident");
    let StepError::Incident { message, .. } = error else {
        panic!("not an incident");
    };
    assert!(message.contains("10000 nodes entered"), "{message}");
}

/// What a loop of nodes did, an `emit` item with `for_each` does: one effect per element,
/// the element bound by `as`, in its fields and its `if`, each with an id of its own that
/// a replay of the step gives again.
#[test]
fn for_each_emits_once_per_element_with_stable_ids() {
    let def = load(
        r#"
process: per_member
start: accept
variables:
  members: {type: list, of: string, default: [m1, m2, m3]}
nodes:
  - {id: accept, type: task, role: township_clerk, next: done}
  - id: done
    type: end
    emit:
      - start_process: {process: per_member, data: {member: "=member", position: "=len(members)"}}
        for_each: members
        as: member
        if: "member != 'm2'"
      - escalation: {to_role: county_staff, reason: "=item"}
        for_each: "['a']"
"#,
    )
    .unwrap_or_else(|text| panic!("does not load:\n{text}"));
    let calendar = Calendar::china_national();
    let ctx = Context {
        calendar: &calendar,
        assessor: &NoRules,
    };
    let start = Event::Start {
        actor: clerk(),
        data: BTreeMap::new(),
    };
    let state = InstanceState::new("pm-1", &def.id, now());
    let started = core::step(&def, &state, &start, now(), &ctx).expect("starts");
    let complete = Event::Complete {
        task: TaskRef::Node("accept".into()),
        actor: clerk(),
        data: BTreeMap::new(),
    };
    let outward = |transition: &core::Transition| -> Vec<serde_json::Value> {
        transition
            .effects
            .iter()
            .filter_map(|e| match e {
                core::Effect::Outward(o) => Some(o.to_json()),
                _ => None,
            })
            .collect()
    };
    let done = core::step(&def, &started.state, &complete, now(), &ctx).expect("ends");
    let effects = outward(&done);
    let summary: Vec<(String, String)> = effects
        .iter()
        .map(|e| {
            let what = e["data"]["member"]
                .as_str()
                .or(e["reason"].as_str())
                .unwrap_or_default();
            (
                e["id"].as_str().unwrap_or_default().to_string(),
                what.to_string(),
            )
        })
        .collect();
    let ids: Vec<&str> = summary.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(summary.len(), 3, "{effects:?}");
    assert_eq!(summary[0].1, "m1");
    assert_eq!(summary[1].1, "m3");
    assert_eq!(summary[2].1, "a");
    // The elements of one item share the item's number and add their index.
    assert!(ids[0].ends_with("-0") && ids[1].ends_with("-2"), "{ids:?}");
    assert_eq!(ids[0].trim_end_matches("-0"), ids[1].trim_end_matches("-2"));
    assert_ne!(ids[1].trim_end_matches("-2"), ids[2].trim_end_matches("-0"));
    let again = core::step(&def, &started.state, &complete, now(), &ctx).expect("ends again");
    assert_eq!(
        outward(&again),
        effects,
        "a replay gives the same effects and ids"
    );
}

/// What an older version could deploy: a loop of compute nodes with a way out, and a
/// payment with a field no schema declares (`payees`, read by nothing).
const OLD_VERSION: &str = r#"
process: old
variables:
  n: {type: int, default: 0}
start: count
nodes:
  - {id: count, type: compute, set: {n: "n + 1"}, next: check}
  - id: check
    type: choice
    next:
      - {if: "n >= 3", to: done}
      - {to: count}
  - id: done
    type: end
    emit:
      - payment: {amount: 300, purpose: dibao, schedule: once, payees: all_households}
"#;

/// A version is checked strictly when it is deployed; read back from the store it is
/// compiled as it was accepted then, so cases running on it survive an upgrade that added
/// checks: its loop runs to its way out and its effect keeps the undeclared field.
#[test]
fn a_stored_version_is_read_as_it_was_accepted() {
    let strict = load(OLD_VERSION).expect_err("today's deploy refuses it");
    assert!(strict.contains("E_LOOP_WITHOUT_WAIT"), "{strict}");
    assert!(strict.contains("payees"), "{strict}");
    let def = load_definition(OLD_VERSION, "old@1", &LoadContext::default().for_stored())
        .unwrap_or_else(|d| panic!("{}", render(&d)));
    let calendar = Calendar::china_national();
    let ctx = Context {
        calendar: &calendar,
        assessor: &NoRules,
    };
    let start = Event::Start {
        actor: clerk(),
        data: BTreeMap::new(),
    };
    let state = InstanceState::new("old-1", &def.id, now());
    let done = core::step(&def, &state, &start, now(), &ctx).expect("runs to its end");
    assert_eq!(done.state.status, Status::Completed);
    assert_eq!(done.state.vars.get("n"), Some(&Value::Int(3)));
    let payments: Vec<serde_json::Value> = done
        .effects
        .iter()
        .filter_map(|e| match e {
            core::Effect::Outward(o) => Some(o.to_json()),
            _ => None,
        })
        .collect();
    assert_eq!(payments.len(), 1, "{payments:?}");
    assert_eq!(payments[0]["payees"], "all_households", "{}", payments[0]);
    assert_eq!(payments[0]["purpose"], "dibao", "{}", payments[0]);
}
