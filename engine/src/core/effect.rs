//! What a step asks the world to do: the closed set of effects.
//!
//! Bookkeeping effects (tasks, timers) become rows in the same transaction as
//! the state; outward effects go to the outbox and are delivered after commit,
//! at least once, with their `id` as idempotency key.

use super::state::{OpenTask, Timer};

#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    OpenTask(OpenTask),
    CloseTask {
        task_id: String,
        cancelled: bool,
    },
    /// Who holds an open task changed (claim, unclaim, reassign, delegate): `holder` is the
    /// user it is now reserved for (its claimant, else its explicit assignee), `None` when it
    /// is back in every candidate's queue.
    AssignTask {
        task_id: String,
        holder: Option<String>,
    },
    /// An open task's due date was counted again (a calendar covering its year arrived).
    RescheduleTask {
        task_id: String,
        due_at: Option<chrono::DateTime<chrono::FixedOffset>>,
        provisional: bool,
    },
    ScheduleTimer(Timer),
    CancelTimer {
        timer_id: String,
    },
    Outward(Outward),
}

/// An effect for an adapter (notification, payment, payment stop, start process,
/// escalation): the closed, typed set of `crate::effects::typed`.
pub use crate::effects::typed::Outward;
