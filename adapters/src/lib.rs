//! Adapters: everything that talks to the outside world (notifications, payments, HTTP). Filled in by the adapters issue.

#![forbid(unsafe_code)]
// A library reports through its return values; only the binary writes to the terminal.
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod dispatch;
pub mod notify;
pub mod payments;
pub mod retry;
pub mod secrets;
