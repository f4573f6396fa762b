//! The rule expression language: a small, sandboxed, statically checked
//! CEL/JavaScript-like language used in process definitions and rule files.
//!
//! Expressions are parsed with `pest` (grammar in `grammar.pest`, precedence by
//! a Pratt parser), checked against declared variable types when a definition is
//! loaded, and evaluated without IO against an [`Env`]. Numbers are exact
//! decimals: `0.1 + 0.2 == 0.3` holds; `int op int` stays an int except `/`,
//! which always yields a decimal.
//!
//! Operators, loosest first: `c ? a : b`; `||`/`or`; `&&`/`and`; `==` `!=`;
//! `<` `<=` `>` `>=` `in`; `+` `-`; `*` `/` `%`; prefix `-` `!`/`not`;
//! member `a.b` and index `xs[0]`.
//!
//! Limits: source ≤ [`parse::MAX_SOURCE_LEN`] bytes, tree depth ≤
//! [`parse::MAX_DEPTH`], ≤ [`eval::MAX_STEPS`] operations per evaluation, lists
//! built by an expression ≤ [`eval::MAX_LIST_LEN`] items, strings ≤
//! [`eval::MAX_STRING_LEN`] bytes, and ≤ [`eval::MAX_BUILT_BYTES`] built in all
//! by one evaluation. Exceeding one is [`EvalError::LimitExceeded`]
//! (`limit_exceeded`), never an allocation failure.
//!
//! # Built-in functions
//!
//! [`Registry::standard`] lists them, each with its signature, type rule and a
//! one-line description; the table of `docs/process-language.md` is generated
//! from it ([`function_table`]) and a test keeps the two equal.
//!
//! Further functions (e.g. the assessment built-ins) are added to a
//! [`Registry`] and used with [`Expr::compile_with`].

mod ast;
mod builtins;
mod check;
mod eval;
mod guide;
mod ops;
mod parse;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};

pub use ast::Span;
pub use builtins::{
    Builtin, CheckFn, FunctionError, Implementation, LambdaUse, ListFn, PlainFn, Registry, as_date,
};
pub use check::did_you_mean;
pub use eval::{MAX_BUILT_BYTES, MAX_LIST_LEN, MAX_STEPS, MAX_STRING_LEN};
pub use guide::function_table;
pub use ops::unify as unify_types;
pub use ops::{compare, equal, number};
pub use parse::{MAX_DEPTH, MAX_SOURCE_LEN};

use crate::value::{Type, Value};

/// Declared types of the variables an expression may read.
pub trait TypeEnv {
    fn var_type(&self, name: &str) -> Option<Type>;
    /// Every declared name, for "did you mean" hints.
    fn var_names(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Values of the variables at evaluation time.
pub trait Env {
    fn var(&self, name: &str) -> Option<&Value>;
}

impl TypeEnv for BTreeMap<String, Type> {
    fn var_type(&self, name: &str) -> Option<Type> {
        self.get(name).cloned()
    }
    fn var_names(&self) -> Vec<String> {
        self.keys().cloned().collect()
    }
}

impl TypeEnv for HashMap<String, Type> {
    fn var_type(&self, name: &str) -> Option<Type> {
        self.get(name).cloned()
    }
    fn var_names(&self) -> Vec<String> {
        self.keys().cloned().collect()
    }
}

impl Env for BTreeMap<String, Value> {
    fn var(&self, name: &str) -> Option<&Value> {
        self.get(name)
    }
}

impl Env for HashMap<String, Value> {
    fn var(&self, name: &str) -> Option<&Value> {
        self.get(name)
    }
}

/// A load-time problem in an expression, located within its source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code} at {offset}: {message}")]
pub struct ExprError {
    /// Stable code: `E_EXPR_SYNTAX`, `E_TOO_LONG`, `E_TOO_DEEP`, `E_UNKNOWN_VARIABLE`,
    /// `E_UNKNOWN_FIELD`, `E_UNKNOWN_FUNCTION`, `E_ARITY`, `E_TYPE`.
    pub code: &'static str,
    /// Byte offset within the expression source.
    pub offset: usize,
    /// Byte length of the offending text (0 for a position).
    pub len: usize,
    pub message: String,
    /// e.g. "did you mean `household`?"
    pub hint: Option<String>,
}

impl ExprError {
    fn new(code: &'static str, span: Span, message: impl Into<String>) -> ExprError {
        ExprError {
            code,
            offset: span.offset,
            len: span.len,
            message: message.into(),
            hint: None,
        }
    }
}

/// A run-time failure of an evaluation (the expression was well typed, the data was not as hoped).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    #[error("division by zero (at {offset})")]
    DivisionByZero { offset: usize },
    #[error("cannot read `{field}` of null (at {offset})")]
    NullMember { field: String, offset: usize },
    #[error("{message} (at {offset})")]
    Type { message: String, offset: usize },
    #[error("variable `{name}` has no value")]
    UnknownVariable { name: String },
    #[error("unknown function `{name}`")]
    UnknownFunction { name: String },
    #[error("index {index} is out of range for a list of {len} (at {offset})")]
    IndexOutOfRange {
        index: i64,
        len: usize,
        offset: usize,
    },
    #[error("arithmetic overflow (at {offset})")]
    Overflow { offset: usize },
    #[error("evaluation exceeded its budget of {limit} operations")]
    BudgetExhausted { limit: usize },
    /// A string, a list or everything one evaluation builds would exceed its cap.
    #[error("limit_exceeded: the {what} would exceed {limit} (at {offset})")]
    LimitExceeded {
        /// `string length`, `list length` or `bytes built by one evaluation`.
        what: &'static str,
        limit: usize,
        offset: usize,
    },
    #[error("{function}: {message} (at {offset})")]
    Function {
        function: String,
        message: String,
        offset: usize,
    },
}

impl EvalError {
    /// Stable code, for callers that report failures to machines.
    pub fn code(&self) -> &'static str {
        match self {
            EvalError::DivisionByZero { .. } => "division_by_zero",
            EvalError::NullMember { .. } => "null_member",
            EvalError::Type { .. } => "type_error",
            EvalError::UnknownVariable { .. } => "unknown_variable",
            EvalError::UnknownFunction { .. } => "unknown_function",
            EvalError::IndexOutOfRange { .. } => "index_out_of_range",
            EvalError::Overflow { .. } => "overflow",
            EvalError::BudgetExhausted { .. } => "budget_exhausted",
            EvalError::LimitExceeded { .. } => "limit_exceeded",
            EvalError::Function { .. } => "function_error",
        }
    }
}

/// The standard registry, shared by every expression compiled with [`Expr::compile`].
pub fn standard_registry() -> Arc<Registry> {
    static STANDARD: OnceLock<Arc<Registry>> = OnceLock::new();
    STANDARD
        .get_or_init(|| Arc::new(Registry::standard()))
        .clone()
}

/// A parsed and type-checked expression, ready to evaluate many times.
#[derive(Clone, Debug)]
pub struct Expr {
    source: String,
    root: ast::Node,
    result_type: Type,
    variables: Vec<String>,
    registry: Arc<Registry>,
}

impl Expr {
    /// Parses and checks `src` with the standard functions.
    pub fn compile(src: &str, env: &dyn TypeEnv) -> Result<Expr, Vec<ExprError>> {
        Expr::compile_with(src, env, standard_registry())
    }

    /// Parses and checks `src` with the functions of `registry`.
    pub fn compile_with(
        src: &str,
        env: &dyn TypeEnv,
        registry: Arc<Registry>,
    ) -> Result<Expr, Vec<ExprError>> {
        let root = parse::parse(src).map_err(|e| vec![e])?;
        let mut checker = check::Checker::new(env, &registry);
        let result_type = checker.check(&root);
        if !checker.errors.is_empty() {
            let mut errors = checker.errors;
            errors.sort_by_key(|e| e.offset);
            return Err(errors);
        }
        let variables = checker.variables.into_iter().collect();
        Ok(Expr {
            source: src.to_string(),
            root,
            result_type,
            variables,
            registry,
        })
    }

    pub fn result_type(&self) -> &Type {
        &self.result_type
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Root variable names the expression reads (lambda parameters excluded), sorted.
    pub fn variables(&self) -> Vec<String> {
        self.variables.clone()
    }

    pub fn eval(&self, env: &dyn Env) -> Result<Value, EvalError> {
        eval::Evaluator::new(env, &self.registry).eval(&self.root)
    }
}

#[cfg(test)]
mod tests;
