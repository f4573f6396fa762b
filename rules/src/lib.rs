//! Rules: the expression language, policy parameters, decision tables and the
//! assessments of `spec/assess.md`. Pure evaluation: no IO, no clock (`as_of` is an argument).

pub mod domain;
pub mod expr;
pub mod value;

pub use value::{CoerceError, Type, Value};
