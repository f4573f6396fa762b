//! Rules: the expression language, policy parameters, decision tables and the
//! assessments of `spec/assess.md`. Pure evaluation: no IO, no clock (`as_of` is an argument).

#![forbid(unsafe_code)]
// A library reports through its return values; only the binary writes to the terminal.
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod assessment;
pub mod case;
pub mod case_fields;
pub mod domain;
pub mod expr;
pub mod json;
pub mod limits;
pub mod policy;
pub mod ruleset;
pub mod validate;
pub mod value;
pub mod yaml;

pub use assessment::{
    Assessment, Supplement, assess, check_policy_applies, money, try_assess, try_assess_in,
    try_assess_scoped,
};
pub use case::{Case, InputError, parse_case, parse_case_for, parse_case_text, parse_case_with};
pub use json::{JsonError, parse_strict};
pub use limits::{InputLimits, LimitKind, LimitViolation};
pub use policy::{Policy, PolicyError, PolicySections, PolicySet};
pub use ruleset::{CaseScope, ProgramRules, RuleProblem, RuleSet, RulesError, TraceEntry};
pub use value::{CoerceError, Type, Value};
