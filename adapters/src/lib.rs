//! Adapters: everything that talks to the outside world (notifications, payments, HTTP). Filled in by the adapters issue.
pub mod dispatch;
pub mod notify;
pub mod payments;
pub mod retry;
pub mod secrets;
