//! Adapters: everything that talks to the outside world (notifications, payments, HTTP). Filled in by the adapters issue.
