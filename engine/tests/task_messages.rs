//! Interrupting messages on a task (`on:` of a task node): while the task is
//! open such a message cancels it and continues at the handler's `next`; other
//! branches of a parallel split are left alone; once the task is gone the
//! message is refused. (temporary_aid's `stop_installments` during a `follow_up`.)

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset};
use jiuzhu_engine::calendar::Calendar;
use jiuzhu_engine::core::{
    self, Actor, AssessError, Assessor, Context, Effect, Event, InstanceState, Status, TaskRef,
};
use jiuzhu_engine::diagram;
use jiuzhu_engine::lang::model::Definition;
use jiuzhu_engine::lang::{LoadContext, load_definition, render};
use jiuzhu_rules::Value;

const DEFINITION: &str = r#"
process: interruptible
start: split
variables:
  stopped_by: {type: string}
  note: {type: string}
nodes:
  - {id: split, type: parallel, branches: [follow_up, watch]}
  - id: follow_up
    type: task
    role: township_staff
    form:
      continue: {type: bool, required: true}
    on:
      stop:
        roles: [township_head]
        form:
          reason: {type: string, required: true}
        set: {stopped_by: "message.reason"}
        next: stopped
    next: done
  - id: watch
    type: task
    role: county_staff
    next: done
  - {id: stopped, type: compute, set: {note: "'stopped'"}, next: done}
  - {id: done, type: join, of: split, next: finished}
  - {id: finished, type: end, outcome: completed}
"#;

struct NoRules;

impl Assessor for NoRules {
    fn assess(&self, program: &str, _: &BTreeMap<String, Value>) -> Result<Value, AssessError> {
        Err(AssessError::new(format!(
            "no assessment {program} in this test"
        )))
    }
}

fn definition() -> Definition {
    load_definition(DEFINITION, "interruptible.yaml", &LoadContext::default())
        .unwrap_or_else(|d| panic!("does not load:\n{}", render(&d)))
}

fn now() -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339("2026-03-02T09:00:00+08:00").expect("time")
}

fn actor(user: &str, role: &str) -> Actor {
    Actor {
        user: user.into(),
        roles: vec![role.into()],
        unit: "双鸭山市/尖山区/中心站街道".into(),
    }
}

fn data(json: serde_json::Value) -> BTreeMap<String, Value> {
    match Value::from_json(&json) {
        Value::Object(map) => map,
        _ => BTreeMap::new(),
    }
}

fn stop(by: Option<Actor>, reason: Option<&str>) -> Event {
    Event::Message {
        name: "stop".into(),
        actor: by,
        data: reason.map_or_else(BTreeMap::new, |r| data(serde_json::json!({"reason": r}))),
    }
}

fn started(def: &Definition, ctx: &Context<'_>) -> InstanceState {
    let state = InstanceState::new("i-1", &def.id, now());
    let event = Event::Start {
        actor: actor("clerk", "township_clerk"),
        data: BTreeMap::new(),
    };
    core::step(def, &state, &event, now(), ctx)
        .expect("starts")
        .state
}

fn open_nodes(state: &InstanceState) -> Vec<&str> {
    let mut nodes: Vec<&str> = state.tasks.iter().map(|t| t.node.as_str()).collect();
    nodes.sort_unstable();
    nodes
}

#[test]
fn a_message_on_an_open_task_cancels_it_and_leaves_other_branches() {
    let def = definition();
    let calendar = Calendar::china_national();
    let ctx = Context {
        calendar: &calendar,
        assessor: &NoRules,
    };
    let state = started(&def, &ctx);
    assert_eq!(open_nodes(&state), ["follow_up", "watch"]);

    // Refused without changing anything: wrong role, then a missing field.
    let refused = core::step(
        &def,
        &state,
        &stop(Some(actor("staff", "township_staff")), Some("x")),
        now(),
        &ctx,
    );
    assert_eq!(refused.map(|_| ()).map_err(|e| e.code()), Err("forbidden"));
    let refused = core::step(
        &def,
        &state,
        &stop(Some(actor("head", "township_head")), None),
        now(),
        &ctx,
    );
    assert_eq!(
        refused.map(|_| ()).map_err(|e| e.code()),
        Err("invalid_data")
    );

    let stopped = core::step(
        &def,
        &state,
        &stop(Some(actor("head", "township_head")), Some("已缓解")),
        now(),
        &ctx,
    )
    .expect("the stop is accepted while follow_up is open");
    // follow_up is cancelled (not completed), watch stays open, the handler ran.
    assert_eq!(open_nodes(&stopped.state), ["watch"]);
    assert!(stopped.effects.iter().any(|e| matches!(
        e,
        Effect::CloseTask {
            cancelled: true,
            ..
        }
    )));
    assert_eq!(
        stopped.state.vars.get("stopped_by"),
        Some(&Value::Str("已缓解".into()))
    );
    assert_eq!(
        stopped.state.vars.get("note"),
        Some(&Value::Str("stopped".into()))
    );
    assert_eq!(stopped.state.status, Status::Active);

    // The task is gone: a second stop finds nobody waiting.
    let again = core::step(
        &def,
        &stopped.state,
        &stop(Some(actor("head", "township_head")), Some("再次")),
        now(),
        &ctx,
    );
    assert_eq!(again.map(|_| ()).map_err(|e| e.code()), Err("not_found"));

    // The other branch completes and the join fires as usual.
    let done = core::step(
        &def,
        &stopped.state,
        &Event::Complete {
            task: TaskRef::Node("watch".into()),
            actor: actor("county", "county_staff"),
            data: BTreeMap::new(),
        },
        now(),
        &ctx,
    )
    .expect("watch completes");
    assert_eq!(done.state.status, Status::Completed);
    assert_eq!(done.state.outcome.as_deref(), Some("completed"));
}

#[test]
fn once_the_task_is_completed_its_message_is_refused() {
    let def = definition();
    let calendar = Calendar::china_national();
    let ctx = Context {
        calendar: &calendar,
        assessor: &NoRules,
    };
    let state = started(&def, &ctx);
    let completed = core::step(
        &def,
        &state,
        &Event::Complete {
            task: TaskRef::Node("follow_up".into()),
            actor: actor("staff", "township_staff"),
            data: data(serde_json::json!({"continue": true})),
        },
        now(),
        &ctx,
    )
    .expect("follow_up completes");
    assert_eq!(open_nodes(&completed.state), ["watch"]);
    let late = core::step(
        &def,
        &completed.state,
        &stop(Some(actor("head", "township_head")), Some("迟到")),
        now(),
        &ctx,
    );
    assert_eq!(late.map(|_| ()).map_err(|e| e.code()), Err("not_found"));
}

#[test]
fn the_loader_checks_task_handlers_and_the_diagram_shows_them() {
    let def = definition();
    let mermaid = diagram::mermaid(&def);
    assert!(
        mermaid.contains("n_follow_up -->|\"stop（中断）\"| n_stopped"),
        "{mermaid}"
    );
    // A handler's target must exist, like any `next`.
    let broken = DEFINITION.replace("next: stopped", "next: stoped");
    let problems = load_definition(&broken, "broken.yaml", &LoadContext::default())
        .map(|_| ())
        .map_err(|d| render(&d));
    let text = problems.expect_err("an unknown handler target is an error");
    assert!(text.contains("E_UNKNOWN_NODE"), "{text}");
    // And a handler makes its target reachable: without `on:`, `stopped` is not.
    let without = DEFINITION.replace(
        "    on:\n      stop:\n        roles: [township_head]\n        form:\n          reason: {type: string, required: true}\n        set: {stopped_by: \"message.reason\"}\n        next: stopped\n",
        "",
    );
    let text = load_definition(&without, "without.yaml", &LoadContext::default())
        .map(|_| ())
        .map_err(|d| render(&d))
        .expect_err("stopped is unreachable without the handler");
    assert!(text.contains("E_UNREACHABLE"), "{text}");
}
