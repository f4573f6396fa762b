//! The generic engine: process language, pure core, calendars, scenario runner, store and scheduler.

pub mod calendar;
pub mod diagram;
pub mod duration;
pub mod lang;
pub mod org;
pub mod core;
pub mod scenario;
pub mod store;
pub mod assessor;
pub mod project;
pub mod clock;
pub mod runtime;
