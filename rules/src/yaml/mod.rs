//! The one YAML layer of the workspace: a position-carrying tree read through
//! `serde-saphyr`, and the one helper that turns a parser error (or a byte
//! offset) into `file:line:column: message`.
//!
//! - [`tree`]: every node and key with its position; numbers keep their source
//!   text so decimals stay exact. The process language reads this tree.
//! - [`node`]: the simpler view policy and rule files read (every scalar as text).
//! - [`position`]: byte offset → `line:column`, and serde-saphyr errors →
//!   [`SourceError`], optionally with the offending value withheld (config files
//!   may hold secrets).
//!
//! Crates that deserialize straight into typed structs (calendars, org files,
//! config files) still call `serde_saphyr::from_str`, and map its error through
//! [`SourceError::from_yaml`] or [`SourceError::from_config_yaml`].

pub mod node;
pub mod position;
pub mod tree;

pub use node::{Node, NodeKey, NodeValue, YamlError, parse};
pub use position::{ErrorAt, LineIndex, SourceError};
pub use tree::{Key, Limits, Pos, Yaml, YamlValue, read};
