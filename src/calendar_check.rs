//! What `jiuzhu deploy` does about calendar years: counts provisional due dates again
//! with the deployed calendars (a `calendar_changed` step per case whose dates move),
//! and warns when a calendar's covered years end soon or due dates are still provisional.

use anyhow::Result;
use jiuzhu_engine::runtime::Engine;

/// How far ahead `deploy` looks for the end of a calendar's covered years: a 20-working-
/// day deadline reaches about a month ahead, so two months leave time to add the new year.
pub const COVERAGE_WARNING_DAYS: i64 = 60;

pub async fn after_deploy(engine: &Engine) -> Result<()> {
    let recounted = engine.recount_provisional().await?;
    if !recounted.changed.is_empty() {
        println!(
            "provisional due dates counted again with the deployed calendars: {} cases (history: calendar_changed)",
            recounted.changed.len()
        );
    }
    let now = engine.now();
    for calendar in engine.project.calendars.iter() {
        let Some(end) = calendar.coverage_end() else {
            continue;
        };
        let today = now.with_timezone(&calendar.utc_offset()).date_naive();
        let left = (end - today).num_days();
        if left <= COVERAGE_WARNING_DAYS {
            eprintln!(
                "warning: calendar `{}` covers up to {end} ({left} days from today): add the next year's official schedule and its year to `covers`; due dates past {end} are provisional (暂定)",
                calendar.id()
            );
        }
    }
    let (tasks, timers) = engine.store.provisional_counts().await?;
    if tasks > 0 || timers > 0 {
        eprintln!(
            "warning: {tasks} open tasks and {timers} pending timers have provisional due dates (暂定): they are counted again when a calendar covering their year is deployed"
        );
    }
    Ok(())
}
