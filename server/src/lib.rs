//! The Jiuzhu server: users and logins, server-side sessions, API tokens, authorization in
//! one place, and the JSON API over the engine (`jiuzhu serve`).

#![forbid(unsafe_code)]
// Output goes through tracing; only the binary writes to the terminal.
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod access_log;
pub mod api;
pub mod app;
pub mod auth;
pub mod authz;
pub mod body;
pub mod db;
pub mod mask;
pub mod metrics;
pub mod problem;
pub mod secrets;
pub mod sessions;
pub mod users;
pub mod web;

pub use access_log::AccessRecord;
pub use app::{AppState, ServerConfig, serve};
pub use db::{DbError, ServerDb};
pub use sessions::{AuthConfig, TokenScope};
pub use users::{UserError, UserRecord};
