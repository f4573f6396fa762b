//! The events a case takes, one module each: start, complete, claim and its hand-overs,
//! corrections, messages, timers. Each adds its part of `Run`; `Run::apply` in the parent picks one.

mod complete;
pub(super) mod correct;
mod door;
pub(super) mod handover;
mod message;
pub(super) mod retry;
mod start;
mod timer;
