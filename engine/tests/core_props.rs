//! Property test of the pure core over the shipped `dibao` definition: random
//! event sequences (right and wrong actors, good and bad data, stray messages
//! and timers, time passing) never panic and never break the instance invariants.

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, FixedOffset, TimeDelta};
use jiuzhu_engine::calendar::Calendar;
use jiuzhu_engine::core::{self, Actor, Context, Event, InstanceState, TaskRef};
use jiuzhu_engine::project::Project;
use jiuzhu_rules::Value;
use proptest::prelude::*;

fn project() -> Project {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../processes");
    Project::load(&dir)
        .unwrap_or_else(|problems| panic!("processes/ does not load:\n{}", problems.join("\n")))
}

const UNIT: &str = "双鸭山市/尖山区/中心站街道";

fn actors() -> Vec<Actor> {
    let actor = |user: &str, roles: &[&str], unit: &str| Actor {
        user: user.into(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        unit: unit.into(),
    };
    vec![
        actor("clerk1", &["township_clerk"], UNIT),
        actor("staff1", &["township_staff"], UNIT),
        actor("staff2", &["township_staff", "township_head"], UNIT),
        actor("head1", &["township_head"], UNIT),
        actor("county1", &["county_staff"], "双鸭山市/尖山区"),
        actor(
            "other",
            &["township_staff", "township_head"],
            "双鸭山市/尖山区/富安街道",
        ),
    ]
}

fn json_map(json: serde_json::Value) -> BTreeMap<String, Value> {
    match Value::from_json(&json) {
        Value::Object(map) => map,
        _ => BTreeMap::new(),
    }
}

fn household() -> serde_json::Value {
    serde_json::json!({
        "members": [
            {"id": "m1", "birth_date": "1948-10-20", "income": [{"kind": "pension_basic", "monthly": "180.00"}]},
            {"id": "m2", "birth_date": "1979-04-12", "income": [{"kind": "wage", "monthly": "1000.00"}]}
        ],
        "savings": "8000.00"
    })
}

/// Form data to throw at tasks: valid for some nodes, wrong for others.
fn payloads() -> Vec<BTreeMap<String, Value>> {
    vec![
        json_map(serde_json::json!({"complete": true})),
        json_map(serde_json::json!({"complete": false, "missing": ["户口簿"]})),
        json_map(serde_json::json!({"complete": true, "staff_relative": true})),
        json_map(serde_json::json!({"surveyors": ["甲", "乙"]})),
        json_map(serde_json::json!({"surveyors": ["甲"]})),
        json_map(serde_json::json!({"verification_ok": true})),
        json_map(serde_json::json!({"verification_ok": false, "findings": "x"})),
        json_map(serde_json::json!({"household": household()})),
        json_map(serde_json::json!({"proposal": "approve"})),
        json_map(serde_json::json!({"proposal": "approve", "monthly_amount": "1.00"})),
        json_map(serde_json::json!({"review_passed": true})),
        json_map(serde_json::json!({"passed": false})),
        json_map(serde_json::json!({"passed": true})),
        json_map(serde_json::json!({"decision": "approve"})),
        json_map(serde_json::json!({"decision": "reject", "reason": "存款超标"})),
        json_map(serde_json::json!({"decision": "maybe"})),
        json_map(serde_json::json!({"reason": "人户分离"})),
        json_map(serde_json::json!({"bogus": 1})),
        BTreeMap::new(),
    ]
}

#[derive(Debug, Clone)]
enum Action {
    Complete {
        node: usize,
        actor: usize,
        data: usize,
    },
    Message {
        name: usize,
        actor: Option<usize>,
        data: usize,
    },
    FireTimer {
        pick: usize,
    },
    StrayTimer,
    Advance {
        hours: i64,
    },
}

const MESSAGES: [&str; 6] = [
    "objection",
    "withdraw",
    "extend",
    "materials_supplied",
    "bogus",
    "approve",
];

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        4 => (0usize..16, 0usize..6, 0usize..19).prop_map(|(node, actor, data)| Action::Complete { node, actor, data }),
        1 => (0usize..6, proptest::option::of(0usize..6), 0usize..19)
            .prop_map(|(name, actor, data)| Action::Message { name, actor, data }),
        1 => (0usize..8).prop_map(|pick| Action::FireTimer { pick }),
        1 => Just(Action::StrayTimer),
        2 => (1i64..400).prop_map(|hours| Action::Advance { hours }),
    ]
}

fn run(actions: &[Action]) -> Result<(), TestCaseError> {
    let project = project();
    let def = project
        .definitions
        .get("dibao")
        .expect("dibao is shipped")
        .clone();
    let calendar = Calendar::china_national();
    let assessor = project
        .assessor(None)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let ctx = Context {
        calendar: &calendar,
        assessor: &assessor,
    };
    let actors = actors();
    let payloads = payloads();
    let task_nodes: Vec<String> = def
        .nodes
        .iter()
        .map(|n| n.id.clone())
        .chain(["nope".to_string()])
        .collect();
    let mut now: DateTime<FixedOffset> =
        DateTime::parse_from_rfc3339("2026-09-21T09:00:00+08:00").expect("valid time");
    let start = Event::Start {
        actor: actors[0].clone(),
        data: json_map(
            serde_json::json!({"applicant_name": "张三", "area": "urban", "household": household()}),
        ),
    };
    let mut state = core::step(
        &def,
        &InstanceState::new("c1", "dibao", now),
        &start,
        now,
        &ctx,
    )
    .map_err(|e| TestCaseError::fail(e.to_string()))?
    .state;
    state
        .check_invariants(&def)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    for action in actions {
        let events: Vec<Event> = match action {
            Action::Complete { node, actor, data } => vec![Event::Complete {
                task: TaskRef::Node(task_nodes[node % task_nodes.len()].clone()),
                actor: actors[*actor].clone(),
                data: payloads[*data].clone(),
            }],
            Action::Message { name, actor, data } => vec![Event::Message {
                name: MESSAGES[*name].to_string(),
                actor: actor.map(|a| actors[a].clone()),
                data: payloads[*data].clone(),
            }],
            Action::FireTimer { pick } => state
                .timers
                .get(pick % state.timers.len().max(1))
                .map(|t| Event::TimerFired {
                    timer_id: t.id.clone(),
                })
                .into_iter()
                .collect(),
            Action::StrayTimer => vec![Event::TimerFired {
                timer_id: "c1-w999999".into(),
            }],
            Action::Advance { hours } => {
                now += TimeDelta::hours(*hours);
                let mut due: Vec<_> = state
                    .timers
                    .iter()
                    .filter(|t| t.due_at <= now)
                    .cloned()
                    .collect();
                due.sort_by_key(|t| t.due_at);
                due.into_iter()
                    .map(|t| Event::TimerFired { timer_id: t.id })
                    .collect()
            }
        };
        for event in events {
            match core::step(&def, &state, &event, now, &ctx) {
                Ok(transition) => {
                    transition
                        .state
                        .check_invariants(&def)
                        .map_err(|e| TestCaseError::fail(format!("after {event:?}: {e}")))?;
                    state = transition.state;
                }
                Err(core::StepError::Incident { node, message }) => {
                    return Err(TestCaseError::fail(format!(
                        "incident at {node} after {event:?}: {message}"
                    )));
                }
                Err(_) => {}
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn random_event_sequences_keep_the_invariants(actions in proptest::collection::vec(action(), 0..60)) {
        run(&actions)?;
    }
}

#[test]
fn a_refused_event_changes_nothing() {
    let project = project();
    let def = project
        .definitions
        .get("dibao")
        .expect("dibao is shipped")
        .clone();
    let calendar = Calendar::china_national();
    let assessor = project.assessor(None).expect("policies load");
    let ctx = Context {
        calendar: &calendar,
        assessor: &assessor,
    };
    let now = DateTime::parse_from_rfc3339("2026-03-02T09:00:00+08:00").expect("valid time");
    let start = Event::Start {
        actor: actors()[0].clone(),
        data: json_map(
            serde_json::json!({"applicant_name": "张三", "area": "urban", "household": household()}),
        ),
    };
    let state = core::step(
        &def,
        &InstanceState::new("c1", "dibao", now),
        &start,
        now,
        &ctx,
    )
    .expect("starts")
    .state;
    let before = state.clone();
    let wrong = Event::Complete {
        task: TaskRef::Node("accept".into()),
        actor: actors()[0].clone(),
        data: json_map(serde_json::json!({"complete": "yes"})),
    };
    let err = core::step(&def, &state, &wrong, now, &ctx).expect_err("a string is not a bool");
    assert_eq!(err.code(), "invalid_data");
    assert_eq!(state, before);
}
