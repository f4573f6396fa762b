//! The generic engine: process language, pure core, calendars, scenario runner, store and scheduler.

pub mod assessor;
pub mod calendar;
pub mod clock;
pub mod core;
pub mod diagram;
pub mod duration;
pub mod group_commit;
pub mod lang;
pub mod org;
pub mod privacy;
pub mod project;
pub mod runtime;
pub mod scenario;
pub mod scheduler;
pub mod store;
