//! A `timer` node's `wait: 20wd` (and a `receive` timeout's `after: 20wd`) counted into a
//! year the calendar does not cover is provisional like a task's due date: the core marks
//! the timer, remembers where the count started, and `CalendarChanged` counts it again
//! with the calendar now in force, moving the timer and clearing the mark.

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset};
use jiuzhu_engine::calendar::Calendar;
use jiuzhu_engine::core::{self, AssessError, Assessor, Context, Effect, Event, InstanceState};
use jiuzhu_engine::core::{Actor, TaskRef, Timer, TimerKind};
use jiuzhu_engine::lang::model::Definition;
use jiuzhu_engine::lang::{LoadContext, load_definition, render};
use jiuzhu_rules::Value;

struct NoRules;

impl Assessor for NoRules {
    fn assess(&self, program: &str, _: &BTreeMap<String, Value>) -> Result<Value, AssessError> {
        Err(AssessError::new(format!("no assessment {program} here")))
    }
}

fn at(text: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(text).expect("time")
}

fn clerk() -> Actor {
    Actor {
        user: "clerk".into(),
        roles: vec!["township_clerk".into()],
        unit: "双鸭山市/尖山区/中心站街道".into(),
    }
}

/// A calendar covering `covers`, with 1 January a holiday in each covered year.
fn calendar(covers: &[i32]) -> Calendar {
    let years: Vec<String> = covers.iter().map(i32::to_string).collect();
    let holidays: String = covers.iter().map(|y| format!("  - {y}-01-01\n")).collect();
    let source = format!(
        "id: t\nname: T\ncovers: [{}]\nholidays:\n{holidays}",
        years.join(", ")
    );
    Calendar::from_yaml(&source, "t.yaml").expect("the calendar loads")
}

fn load(src: &str) -> Definition {
    load_definition(src, "wait.yaml", &LoadContext::default())
        .unwrap_or_else(|d| panic!("does not load:\n{}", render(&d)))
}

const TIMER_NODE: &str = r#"
process: waiting
start: accept
nodes:
  - {id: accept, type: task, role: township_clerk, next: wait}
  - {id: wait, type: timer, wait: 20wd, next: done}
  - {id: done, type: end}
"#;

const RECEIVE_TIMEOUT: &str = r#"
process: waiting
start: accept
nodes:
  - {id: accept, type: task, role: township_clerk, next: wait}
  - id: wait
    type: receive
    on:
      objection: {next: done}
    timeout: {after: 20wd, next: done}
  - {id: done, type: end}
"#;

/// Starts the case and completes `accept` at `now`: the token waits at `wait`.
fn waiting(def: &Definition, now: DateTime<FixedOffset>, ctx: &Context<'_>) -> InstanceState {
    let start = Event::Start {
        actor: clerk(),
        data: BTreeMap::new(),
    };
    let state = InstanceState::new("wait-1", &def.id, now);
    let started = core::step(def, &state, &start, now, ctx).expect("starts at the task");
    let complete = Event::Complete {
        task: TaskRef::Node("accept".into()),
        actor: clerk(),
        data: BTreeMap::new(),
    };
    core::step(def, &started.state, &complete, now, ctx)
        .expect("accepted")
        .state
}

fn node_timer(state: &InstanceState) -> Timer {
    let timers: Vec<&Timer> = state
        .timers
        .iter()
        .filter(|t| matches!(t.kind, TimerKind::Node { .. }))
        .collect();
    assert_eq!(timers.len(), 1, "{:?}", state.timers);
    timers[0].clone()
}

#[test]
fn a_wait_counted_into_an_uncovered_year_is_provisional_and_counted_again() {
    let old = calendar(&[2026]);
    let new = calendar(&[2026, 2027]);
    // Friday 4 December 2026: 20 working days end on Friday 1 January 2027, a working
    // day for a calendar that does not cover 2027, a holiday for the new one.
    let december = at("2026-12-04T09:00:00+08:00");
    for source in [TIMER_NODE, RECEIVE_TIMEOUT] {
        let def = load(source);
        let before = Context {
            calendar: &old,
            assessor: &NoRules,
        };
        let state = waiting(&def, december, &before);
        let timer = node_timer(&state);
        let counted = old.add_working_days(december, 20).expect("counted");
        assert_eq!(timer.due_at, counted, "{source}");
        assert_eq!(counted.date_naive().to_string(), "2027-01-01");
        assert!(timer.provisional, "{source}: {timer:?}");
        assert_eq!(timer.counted_from, Some(december), "{source}");

        // Nothing changes while the calendar is the same: the recount is refused.
        let later = at("2026-12-20T10:00:00+08:00");
        let same = core::step(&def, &state, &Event::CalendarChanged, later, &before)
            .expect_err("no due date moves");
        assert_eq!(same.code(), "not_found", "{source}");

        // The 2027 schedule arrives: counted again from 4 December, not from now.
        let after = Context {
            calendar: &new,
            assessor: &NoRules,
        };
        let moved = core::step(&def, &state, &Event::CalendarChanged, later, &after)
            .expect("the timer moves");
        let recounted = node_timer(&moved.state);
        let expected = new.add_working_days(december, 20).expect("counted");
        assert_eq!(expected.date_naive().to_string(), "2027-01-04");
        assert_eq!(recounted.due_at, expected, "{source}");
        assert!(!recounted.provisional, "{source}: {recounted:?}");
        assert_eq!(recounted.counted_from, None, "{source}");
        assert_eq!(recounted.kind, timer.kind, "the same token waits");
        assert!(
            moved
                .effects
                .iter()
                .any(|e| matches!(e, Effect::CancelTimer { timer_id } if *timer_id == timer.id)),
            "{source}: {:?}",
            moved.effects
        );
        assert!(
            moved.effects.iter().any(|e| matches!(
                e,
                Effect::ScheduleTimer(t) if t.due_at == expected && !t.provisional
            )),
            "{source}: {:?}",
            moved.effects
        );
        // Final now: a second recount finds nothing to do.
        core::step(&def, &moved.state, &Event::CalendarChanged, later, &after)
            .expect_err("nothing provisional is left");
    }
}

#[test]
fn a_wait_inside_the_covered_years_is_final() {
    let covered = calendar(&[2026]);
    let ctx = Context {
        calendar: &covered,
        assessor: &NoRules,
    };
    for source in [TIMER_NODE, RECEIVE_TIMEOUT] {
        let def = load(source);
        let march = at("2026-03-02T09:00:00+08:00");
        let timer = node_timer(&waiting(&def, march, &ctx));
        assert_eq!(
            timer.due_at,
            covered.add_working_days(march, 20).expect("counted")
        );
        assert!(!timer.provisional, "{source}: {timer:?}");
        assert_eq!(timer.counted_from, None, "{source}");
    }
}
