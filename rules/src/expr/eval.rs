//! Evaluation of a checked tree against an [`Env`], within a step budget.
//! Every failure is an [`EvalError`] value; nothing here panics on bad data.

use std::cmp::Ordering;

use rust_decimal::Decimal;

use super::ast::{Arg, BinaryOp, Kind, Node, Span, UnaryOp};
use super::builtins::{Implementation, ListFn, Registry, sort_by_keys, sum_values};
use super::ops::{compare, equal, number};
use super::{Env, EvalError};
use crate::value::Value;

/// Most operations one evaluation may perform (nodes visited plus list items touched).
pub const MAX_STEPS: usize = 100_000;
/// Longest list an expression may build.
pub const MAX_LIST_LEN: usize = 10_000;
/// Longest string, in bytes, an expression may build (`+`, functions).
pub const MAX_STRING_LEN: usize = 1024 * 1024;
/// Most bytes one evaluation may build in new strings, lists and objects, counted as
/// their contents plus one value slot per item or field. Reading a variable builds
/// nothing; copying a list into a new one (`map`, `[xs, xs]`, `with`) does. Caps
/// memory where the step budget alone would not: each step may copy a large value.
pub const MAX_BUILT_BYTES: usize = 64 * 1024 * 1024;

/// The value a missing field reads as, borrowed without building one.
static NULL: Value = Value::Null;

pub struct Evaluator<'a> {
    env: &'a dyn Env,
    registry: &'a Registry,
    /// Lambda parameters bound during evaluation, innermost last.
    locals: Vec<(String, Value)>,
    steps: usize,
    /// Bytes built so far, see [`MAX_BUILT_BYTES`].
    built: usize,
}

impl<'a> Evaluator<'a> {
    pub fn new(env: &'a dyn Env, registry: &'a Registry) -> Evaluator<'a> {
        Evaluator {
            env,
            registry,
            locals: Vec::new(),
            steps: 0,
            built: 0,
        }
    }

    fn charge(&mut self, steps: usize) -> Result<(), EvalError> {
        self.steps = self.steps.saturating_add(steps);
        if self.steps > MAX_STEPS {
            return Err(EvalError::BudgetExhausted { limit: MAX_STEPS });
        }
        Ok(())
    }

    /// Counts `bytes` against [`MAX_BUILT_BYTES`].
    fn build(&mut self, bytes: usize, offset: usize) -> Result<(), EvalError> {
        self.built = self.built.saturating_add(bytes);
        if self.built > MAX_BUILT_BYTES {
            return Err(EvalError::LimitExceeded {
                what: "bytes built by one evaluation",
                limit: MAX_BUILT_BYTES,
                offset,
            });
        }
        Ok(())
    }

    /// Checks a newly built value against the caps and counts what it holds.
    fn built_value(&mut self, value: &Value, offset: usize) -> Result<(), EvalError> {
        check_size(value, offset)?;
        let left = MAX_BUILT_BYTES.saturating_sub(self.built);
        self.build(weight(value, left), offset)
    }

    /// A variable, or a chain of fields of one (`policy.dibao.standard.urban`),
    /// borrowed where it is stored: only the value at the end is copied, not the
    /// whole object on the way (a household of thousands of members, per member).
    /// `None` when the chain does not resolve; the owned path then reports why.
    fn lookup(&self, node: &Node) -> Option<&Value> {
        match &node.kind {
            Kind::Variable(name) => match self.locals.iter().rev().find(|(n, _)| n == name) {
                Some((_, v)) => Some(v),
                None => self.env.var(name),
            },
            Kind::Member(object, field) => match self.lookup(object)? {
                Value::Object(map) => Some(map.get(field).unwrap_or(&NULL)),
                _ => None,
            },
            _ => None,
        }
    }

    pub fn eval(&mut self, node: &Node) -> Result<Value, EvalError> {
        self.charge(1)?;
        let at = node.span;
        if let Kind::Variable(_) | Kind::Member(..) = &node.kind
            && let Some(value) = self.lookup(node)
        {
            let value = value.clone();
            // The same steps as reading the chain link by link.
            self.charge(chain_len(node) - 1)?;
            return Ok(value);
        }
        match &node.kind {
            Kind::Literal(v) => Ok(v.clone()),
            Kind::Variable(name) => Err(EvalError::UnknownVariable { name: name.clone() }),
            Kind::Member(object, field) => match self.eval(object)? {
                Value::Object(mut map) => Ok(map.remove(field).unwrap_or(Value::Null)),
                Value::Null => Err(EvalError::NullMember {
                    field: field.clone(),
                    offset: at.offset,
                }),
                other => Err(type_error(
                    at,
                    format!("{} has no field `{field}`", other.type_name()),
                )),
            },
            Kind::Index(list, index) => {
                let (container, key) = (self.eval(list)?, self.eval(index)?);
                match (container, key) {
                    (Value::List(mut items), Value::Int(i)) => {
                        let len = items.len();
                        usize::try_from(i)
                            .ok()
                            .filter(|i| *i < len)
                            .map(|i| items.swap_remove(i))
                            .ok_or(EvalError::IndexOutOfRange {
                                index: i,
                                len,
                                offset: at.offset,
                            })
                    }
                    (Value::Object(mut map), Value::Str(k)) => {
                        Ok(map.remove(&k).unwrap_or(Value::Null))
                    }
                    (Value::Null, _) => Err(EvalError::NullMember {
                        field: "[]".into(),
                        offset: at.offset,
                    }),
                    (c, k) => Err(type_error(
                        at,
                        format!("cannot index {} with {}", c.type_name(), k.type_name()),
                    )),
                }
            }
            Kind::Unary(op, operand) => {
                let v = self.eval(operand)?;
                match (op, v) {
                    (UnaryOp::Neg, Value::Int(i)) => i
                        .checked_neg()
                        .map(Value::Int)
                        .ok_or(EvalError::Overflow { offset: at.offset }),
                    (UnaryOp::Neg, Value::Decimal(d)) => Ok(Value::Decimal(-d)),
                    (UnaryOp::Not, Value::Bool(b)) => Ok(Value::Bool(!b)),
                    (_, v) => Err(type_error(
                        at,
                        format!("cannot apply the operator to {}", v.type_name()),
                    )),
                }
            }
            Kind::Binary(op, lhs, rhs) => self.binary(*op, lhs, rhs, at),
            Kind::Ternary(cond, then, otherwise) => match self.eval(cond)? {
                Value::Bool(true) => self.eval(then),
                Value::Bool(false) => self.eval(otherwise),
                v => Err(type_error(
                    cond.span,
                    format!("the condition is {}, not a bool", v.type_name()),
                )),
            },
            Kind::List(items) => {
                if items.len() > MAX_LIST_LEN {
                    return Err(list_too_long(at.offset));
                }
                // Counted item by item: `[xs, xs, ...]` stops at the cap, not after.
                let mut list = Vec::with_capacity(items.len());
                for n in items {
                    let item = self.eval(n)?;
                    let left = MAX_BUILT_BYTES.saturating_sub(self.built);
                    self.build(SLOT.saturating_add(weight(&item, left)), at.offset)?;
                    list.push(item);
                }
                Ok(Value::List(list))
            }
            Kind::Call { name, args, .. } => self.call(name, args, at),
        }
    }

    fn bool_operand(&mut self, node: &Node) -> Result<bool, EvalError> {
        match self.eval(node)? {
            Value::Bool(b) => Ok(b),
            v => Err(type_error(
                node.span,
                format!("expected a bool, found {}", v.type_name()),
            )),
        }
    }

    fn binary(
        &mut self,
        op: BinaryOp,
        lhs: &Node,
        rhs: &Node,
        at: Span,
    ) -> Result<Value, EvalError> {
        // `&&` and `||` short-circuit: the right side may rely on the left (`x != null && x.a`).
        match op {
            BinaryOp::And => {
                return Ok(Value::Bool(
                    self.bool_operand(lhs)? && self.bool_operand(rhs)?,
                ));
            }
            BinaryOp::Or => {
                return Ok(Value::Bool(
                    self.bool_operand(lhs)? || self.bool_operand(rhs)?,
                ));
            }
            _ => {}
        }
        let (l, r) = (self.eval(lhs)?, self.eval(rhs)?);
        let ordered = |want: fn(Ordering) -> bool| match compare(&l, &r) {
            Some(o) => Ok(Value::Bool(want(o))),
            None => Err(type_error(
                at,
                format!("cannot order {} and {}", l.type_name(), r.type_name()),
            )),
        };
        match op {
            BinaryOp::Eq => Ok(Value::Bool(equal(&l, &r))),
            BinaryOp::Ne => Ok(Value::Bool(!equal(&l, &r))),
            BinaryOp::Lt => ordered(|o| o == Ordering::Less),
            BinaryOp::Le => ordered(|o| o != Ordering::Greater),
            BinaryOp::Gt => ordered(|o| o == Ordering::Greater),
            BinaryOp::Ge => ordered(|o| o != Ordering::Less),
            BinaryOp::In => match (&l, &r) {
                (x, Value::List(items)) => {
                    self.charge(items.len())?;
                    Ok(Value::Bool(items.iter().any(|i| equal(x, i))))
                }
                (Value::Str(x), Value::Str(s)) => Ok(Value::Bool(s.contains(x.as_str()))),
                _ => Err(type_error(
                    at,
                    format!("cannot look for {} in {}", l.type_name(), r.type_name()),
                )),
            },
            _ => {
                let value = arithmetic(op, l, r, at)?;
                if let Value::Str(s) = &value {
                    self.build(s.len(), at.offset)?;
                }
                Ok(value)
            }
        }
    }

    fn call(&mut self, name: &str, args: &[Arg], at: Span) -> Result<Value, EvalError> {
        let builtin = self
            .registry
            .get(name)
            .ok_or_else(|| EvalError::UnknownFunction {
                name: name.to_string(),
            })?;
        let function_error = |message: String| EvalError::Function {
            function: name.to_string(),
            message,
            offset: at.offset,
        };
        match (builtin.implementation, args) {
            (
                Implementation::List { kind, .. },
                [Arg::Expr(list), Arg::Lambda { param, body, .. }],
            ) => {
                let items = match self.eval(list)? {
                    Value::List(items) => items,
                    other => {
                        return Err(function_error(format!(
                            "expected a list, found {}",
                            other.type_name()
                        )));
                    }
                };
                self.apply_lambda(kind, items, param, body)
            }
            (
                Implementation::List {
                    without_lambda: Some(f),
                    ..
                },
                _,
            )
            | (Implementation::Plain(f), _) => {
                let mut values = Vec::with_capacity(args.len());
                for arg in args {
                    match arg {
                        Arg::Expr(node) => values.push(self.eval(node)?),
                        Arg::Lambda { .. } => {
                            return Err(function_error("a lambda is not allowed here".into()));
                        }
                    }
                }
                let touched: usize = values
                    .iter()
                    .map(|v| {
                        if let Value::List(items) = v {
                            items.len()
                        } else {
                            0
                        }
                    })
                    .sum();
                self.charge(touched)?;
                let value = f(&values).map_err(|e| function_error(e.0))?;
                self.built_value(&value, at.offset)?;
                Ok(value)
            }
            (
                Implementation::List {
                    without_lambda: None,
                    ..
                },
                _,
            ) => Err(function_error(
                "needs a lambda `x => ...` as its second argument".into(),
            )),
        }
    }

    fn apply_lambda(
        &mut self,
        kind: ListFn,
        items: Vec<Value>,
        param: &str,
        body: &Node,
    ) -> Result<Value, EvalError> {
        let mut kept = Vec::new();
        // `sort`'s items beside their keys (`kept`).
        let mut sorted = Vec::new();
        let mut count: i64 = 0;
        for item in items {
            self.locals.push((param.to_string(), item));
            let result = self.eval(body);
            let (_, item) = self.locals.pop().unwrap_or_default();
            let result = result?;
            let truth = || match &result {
                Value::Bool(b) => Ok(*b),
                other => Err(type_error(
                    body.span,
                    format!("the lambda returned {}, not a bool", other.type_name()),
                )),
            };
            match kind {
                ListFn::All if !truth()? => return Ok(Value::Bool(false)),
                ListFn::Any if truth()? => return Ok(Value::Bool(true)),
                ListFn::All | ListFn::Any => {}
                ListFn::Filter => {
                    if truth()? {
                        // The item moves into the new list: one slot is built.
                        self.build(SLOT, body.span.offset)?;
                        kept.push(item);
                    }
                }
                ListFn::Count => count += i64::from(truth()?),
                ListFn::Map | ListFn::Sum => {
                    let left = MAX_BUILT_BYTES.saturating_sub(self.built);
                    self.build(SLOT.saturating_add(weight(&result, left)), body.span.offset)?;
                    kept.push(result);
                }
                ListFn::Sort => {
                    // The item moves into the sorted list; its key is kept meanwhile.
                    let left = MAX_BUILT_BYTES.saturating_sub(self.built);
                    self.build(
                        SLOT.saturating_mul(2).saturating_add(weight(&result, left)),
                        body.span.offset,
                    )?;
                    kept.push(result);
                    sorted.push(item);
                }
            }
            if kept.len() > MAX_LIST_LEN {
                return Err(list_too_long(body.span.offset));
            }
        }
        Ok(match kind {
            ListFn::All => Value::Bool(true),
            ListFn::Any => Value::Bool(false),
            ListFn::Filter | ListFn::Map => Value::List(kept),
            ListFn::Count => Value::Int(count),
            ListFn::Sum => sum_values(&kept).map_err(|e| EvalError::Function {
                function: "sum".into(),
                message: e.0,
                offset: body.span.offset,
            })?,
            ListFn::Sort => {
                Value::List(sort_by_keys(sorted, kept).map_err(|e| EvalError::Function {
                    function: "sort".into(),
                    message: e.0,
                    offset: body.span.offset,
                })?)
            }
        })
    }
}

/// Bytes counted for one item of a list or field of an object, besides its contents.
const SLOT: usize = std::mem::size_of::<Value>();

fn list_too_long(offset: usize) -> EvalError {
    EvalError::LimitExceeded {
        what: "list length",
        limit: MAX_LIST_LEN,
        offset,
    }
}

/// The caps on one value: a string's bytes, a list's items.
fn check_size(value: &Value, offset: usize) -> Result<(), EvalError> {
    match value {
        Value::Str(s) if s.len() > MAX_STRING_LEN => Err(string_too_long(offset)),
        Value::List(items) if items.len() > MAX_LIST_LEN => Err(list_too_long(offset)),
        _ => Ok(()),
    }
}

fn string_too_long(offset: usize) -> EvalError {
    EvalError::LimitExceeded {
        what: "string length",
        limit: MAX_STRING_LEN,
        offset,
    }
}

/// The bytes `value` holds beyond its own slot, counted up to a little over `cap`
/// (past the cap the exact figure does not matter, and counting on would cost time).
fn weight(value: &Value, cap: usize) -> usize {
    match value {
        Value::Str(s) => s.len(),
        Value::List(items) => {
            let mut total = 0usize;
            for item in items {
                total = total.saturating_add(SLOT + weight(item, cap.saturating_sub(total)));
                if total > cap {
                    break;
                }
            }
            total
        }
        Value::Object(map) => {
            let mut total = 0usize;
            for (key, item) in map {
                total = total
                    .saturating_add(SLOT + key.len() + weight(item, cap.saturating_sub(total)));
                if total > cap {
                    break;
                }
            }
            total
        }
        _ => 0,
    }
}

/// Links in a chain `a.b.c` (3), read by [`Evaluator::lookup`].
fn chain_len(node: &Node) -> usize {
    match &node.kind {
        Kind::Member(object, _) => 1 + chain_len(object),
        _ => 1,
    }
}

fn type_error(at: Span, message: String) -> EvalError {
    EvalError::Type {
        offset: at.offset,
        message,
    }
}

fn arithmetic(op: BinaryOp, l: Value, r: Value, at: Span) -> Result<Value, EvalError> {
    let overflow = EvalError::Overflow { offset: at.offset };
    let by_zero = EvalError::DivisionByZero { offset: at.offset };
    match (op, &l, &r) {
        (BinaryOp::Add, Value::Str(a), Value::Str(b)) => {
            // Refused before allocating: a doubling `s + s` stops here, not in the allocator.
            if a.len().saturating_add(b.len()) > MAX_STRING_LEN {
                return Err(string_too_long(at.offset));
            }
            return Ok(Value::Str(format!("{a}{b}")));
        }
        (BinaryOp::Div, _, _) => {}
        (_, Value::Int(a), Value::Int(b)) => {
            let result = match op {
                BinaryOp::Add => a.checked_add(*b),
                BinaryOp::Sub => a.checked_sub(*b),
                BinaryOp::Mul => a.checked_mul(*b),
                _ if *b == 0 => return Err(by_zero),
                _ => a.checked_rem(*b),
            };
            return result.map(Value::Int).ok_or(overflow);
        }
        _ => {}
    }
    let (Some(a), Some(b)) = (number(&l), number(&r)) else {
        return Err(type_error(
            at,
            format!(
                "cannot apply `{}` to {} and {}",
                op.symbol(),
                l.type_name(),
                r.type_name()
            ),
        ));
    };
    if matches!(op, BinaryOp::Div | BinaryOp::Rem) && b.is_zero() {
        return Err(by_zero);
    }
    let result: Option<Decimal> = match op {
        BinaryOp::Add => a.checked_add(b),
        BinaryOp::Sub => a.checked_sub(b),
        BinaryOp::Mul => a.checked_mul(b),
        // A quotient's scale is an artefact of the algorithm; show the plain value.
        BinaryOp::Div => a.checked_div(b).map(|q| q.normalize()),
        _ => a.checked_rem(b),
    };
    result.map(Value::Decimal).ok_or(overflow)
}
