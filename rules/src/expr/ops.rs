//! Relations between types and between values that the checker, the evaluator
//! and the built-in functions all use. They live apart so that `builtins` does
//! not depend on `check` and `eval`, which depend on `builtins`.

use std::cmp::Ordering;

use rust_decimal::Decimal;

use crate::value::{Type, Value};

pub fn is_numeric(t: &Type) -> bool {
    matches!(t, Type::Int | Type::Decimal | Type::Any)
}

pub fn is_string(t: &Type) -> bool {
    matches!(t, Type::String | Type::Enum(_) | Type::Any)
}

/// The type of `l op r` for `+ - * %`: int only when both sides are ints.
pub fn numeric_result(l: &Type, r: &Type) -> Type {
    match (l, r) {
        (Type::Int, Type::Int) => Type::Int,
        (Type::Any, _) | (_, Type::Any) => Type::Any,
        _ => Type::Decimal,
    }
}

/// The common type of two branches or list items, if there is one.
pub fn unify(a: &Type, b: &Type) -> Option<Type> {
    Some(match (a, b) {
        _ if a == b => a.clone(),
        (Type::Null, t) | (t, Type::Null) => t.clone(),
        (Type::Any, _) | (_, Type::Any) => Type::Any,
        (Type::Int, Type::Decimal) | (Type::Decimal, Type::Int) => Type::Decimal,
        (Type::Enum(x), Type::Enum(y)) => {
            let mut all = x.clone();
            all.extend(y.iter().filter(|v| !x.contains(v)).cloned());
            Type::Enum(all)
        }
        (Type::String, Type::Enum(_)) | (Type::Enum(_), Type::String) => Type::String,
        (Type::List(x), Type::List(y)) => Type::list(unify(x, y)?),
        (Type::Object { .. }, Type::Object { .. }) => Type::open_object(),
        _ => return None,
    })
}

/// Equality across numeric kinds (`1 == 1.00`), recursively through lists and objects.
pub fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::List(x), Value::List(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| equal(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((k1, v1), (k2, v2))| k1 == k2 && equal(v1, v2))
        }
        _ => match (number(a), number(b)) {
            (Some(x), Some(y)) => x == y,
            _ => a == b,
        },
    }
}

/// The order of two values of a comparable kind, or `None`.
pub fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    if let (Some(x), Some(y)) = (number(a), number(b)) {
        return Some(x.cmp(&y));
    }
    match (a, b) {
        (Value::Str(x), Value::Str(y)) => Some(x.cmp(y)),
        (Value::Date(x), Value::Date(y)) => Some(x.cmp(y)),
        (Value::DateTime(x), Value::DateTime(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// The exact value of an `Int` or `Decimal` (strings are not numbers here).
pub fn number(v: &Value) -> Option<Decimal> {
    match v {
        Value::Int(i) => Some(Decimal::from(*i)),
        Value::Decimal(d) => Some(*d),
        _ => None,
    }
}
