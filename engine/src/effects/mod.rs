//! Outward effects, declared once: [`schema`] says which fields each kind has, of which
//! type, which are required and which values they allow. The compiler checks `emit:`
//! items against it and the effect table of `docs/process-language.md` is generated from
//! it. [`typed`] is the closed enum of typed effects the core emits and the dispatcher
//! reads back from the outbox. [`catalog`] reads what a project's effects are checked against (its templates).

pub mod catalog;
pub mod schema;
pub mod typed;

pub use schema::{Allowed, EffectSchema, FieldSpec, FieldType, SCHEMAS};
pub use typed::{Outward, TypedEffect, TypedError, parse_outbox};
