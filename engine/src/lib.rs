//! The generic engine: process language, pure core, calendars, scenario runner, store and scheduler.

// Unsafe code lives in one place: the SQLite writer hands sqlx's connection handle
// to rusqlite (see store/raw_sqlite.rs).
#![deny(unsafe_code)]
// A library reports through its return values; only the binary writes to the terminal.
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod assessor;
pub mod audit;
pub mod calendar;
pub mod clock;
pub mod core;
pub mod diagram;
pub mod duration;
pub mod effects;
pub mod group_commit;
pub mod lang;
pub mod org;
pub mod privacy;
pub mod project;
pub mod runtime;
pub mod scenario;
pub mod scheduler;
#[allow(unsafe_code)]
pub mod store;
