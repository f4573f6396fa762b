//! Evaluation of a checked tree against an [`Env`], within a step budget.
//! Every failure is an [`EvalError`] value; nothing here panics on bad data.

use std::cmp::Ordering;

use rust_decimal::Decimal;

use super::ast::{Arg, BinaryOp, Kind, Node, Span, UnaryOp};
use super::builtins::{Implementation, ListFn, Registry, sum_values};
use super::ops::{compare, equal, number};
use super::{Env, EvalError};
use crate::value::Value;

/// Most operations one evaluation may perform (nodes visited plus list items touched).
pub const MAX_STEPS: usize = 100_000;
/// Longest list an expression may build.
pub const MAX_LIST_LEN: usize = 10_000;

pub struct Evaluator<'a> {
    env: &'a dyn Env,
    registry: &'a Registry,
    /// Lambda parameters bound during evaluation, innermost last.
    locals: Vec<(String, Value)>,
    steps: usize,
}

impl<'a> Evaluator<'a> {
    pub fn new(env: &'a dyn Env, registry: &'a Registry) -> Evaluator<'a> {
        Evaluator {
            env,
            registry,
            locals: Vec::new(),
            steps: 0,
        }
    }

    fn charge(&mut self, steps: usize) -> Result<(), EvalError> {
        self.steps = self.steps.saturating_add(steps);
        if self.steps > MAX_STEPS {
            return Err(EvalError::BudgetExhausted { limit: MAX_STEPS });
        }
        Ok(())
    }

    pub fn eval(&mut self, node: &Node) -> Result<Value, EvalError> {
        self.charge(1)?;
        let at = node.span;
        match &node.kind {
            Kind::Literal(v) => Ok(v.clone()),
            Kind::Variable(name) => {
                if let Some((_, v)) = self.locals.iter().rev().find(|(n, _)| n == name) {
                    return Ok(v.clone());
                }
                self.env
                    .var(name)
                    .cloned()
                    .ok_or_else(|| EvalError::UnknownVariable { name: name.clone() })
            }
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
                    return Err(EvalError::ListTooLarge {
                        limit: MAX_LIST_LEN,
                        offset: at.offset,
                    });
                }
                items
                    .iter()
                    .map(|n| self.eval(n))
                    .collect::<Result<Vec<_>, _>>()
                    .map(Value::List)
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
            _ => arithmetic(op, l, r, at),
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
                f(&values).map_err(|e| function_error(e.0))
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
                        kept.push(item);
                    }
                }
                ListFn::Count => count += i64::from(truth()?),
                ListFn::Map | ListFn::Sum => kept.push(result),
            }
            if kept.len() > MAX_LIST_LEN {
                return Err(EvalError::ListTooLarge {
                    limit: MAX_LIST_LEN,
                    offset: body.span.offset,
                });
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
        })
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
        (BinaryOp::Add, Value::Str(a), Value::Str(b)) => return Ok(Value::Str(format!("{a}{b}"))),
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
