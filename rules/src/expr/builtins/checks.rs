//! The type rules of the built-in functions: argument types (for a lambda, the
//! type of its body) to the result type, checked when a definition is loaded.

use super::FunctionError;
use crate::expr::ops::{is_numeric, is_string, numeric_result, unify};
use crate::value::Type;

pub(super) fn is_datelike(t: &Type) -> bool {
    matches!(t, Type::Date | Type::DateTime | Type::Any)
}

pub(super) fn item_type(t: &Type) -> Option<Type> {
    match t {
        Type::List(item) => Some((**item).clone()),
        Type::Any => Some(Type::Any),
        _ => None,
    }
}

pub(super) fn check_len(t: &[Type]) -> Result<Type, FunctionError> {
    if item_type(&t[0]).is_some() || is_string(&t[0]) {
        Ok(Type::Int)
    } else {
        Err(format!("`len` needs a list or a string, found {}", t[0]).into())
    }
}

pub(super) fn check_min_max(t: &[Type]) -> Result<Type, FunctionError> {
    let (a, b) = match t {
        [list] => {
            let item = item_type(list).ok_or_else(|| format!("expected a list, found {list}"))?;
            (item.clone(), item)
        }
        [a, b] => (a.clone(), b.clone()),
        _ => return Err("expected one list or two values".into()),
    };
    if is_numeric(&a) && is_numeric(&b) {
        return Ok(numeric_result(&a, &b));
    }
    match unify(&a, &b) {
        Some(u @ (Type::Date | Type::DateTime | Type::Any)) => Ok(u),
        _ => Err(format!("cannot take the extreme of {a} and {b}").into()),
    }
}

pub(super) fn check_abs(t: &[Type]) -> Result<Type, FunctionError> {
    if is_numeric(&t[0]) {
        Ok(t[0].clone())
    } else {
        Err(format!("expected a number, found {}", t[0]).into())
    }
}

pub(super) fn check_rounding(t: &[Type]) -> Result<Type, FunctionError> {
    if !is_numeric(&t[0]) {
        return Err(format!("expected a number, found {}", t[0]).into());
    }
    if let Some(places) = t.get(1)
        && !matches!(places, Type::Int | Type::Any)
    {
        return Err(format!("places must be an int, found {places}").into());
    }
    Ok(Type::Decimal)
}

pub(super) fn check_median(t: &[Type]) -> Result<Type, FunctionError> {
    match item_type(&t[0]) {
        Some(item) if is_numeric(&item) => Ok(Type::Decimal),
        _ => Err(format!("expected a list of numbers, found {}", t[0]).into()),
    }
}

pub(super) fn check_contains(t: &[Type]) -> Result<Type, FunctionError> {
    match &t[0] {
        Type::List(_) | Type::Any => Ok(Type::Bool),
        s if is_string(s) && is_string(&t[1]) => Ok(Type::Bool),
        other => Err(format!("expected a list or a string, found {other}").into()),
    }
}

pub(super) fn check_date_ctor(t: &[Type]) -> Result<Type, FunctionError> {
    if is_string(&t[0]) || t[0] == Type::Date {
        Ok(Type::Date)
    } else {
        Err(format!("expected a string, found {}", t[0]).into())
    }
}

pub(super) fn check_datetime_ctor(t: &[Type]) -> Result<Type, FunctionError> {
    if is_string(&t[0]) || t[0] == Type::DateTime {
        Ok(Type::DateTime)
    } else {
        Err(format!("expected a string, found {}", t[0]).into())
    }
}

pub(super) fn check_to_date(t: &[Type]) -> Result<Type, FunctionError> {
    if is_datelike(&t[0]) {
        Ok(Type::Date)
    } else {
        Err(format!("expected a date or datetime, found {}", t[0]).into())
    }
}

pub(super) fn check_shift(t: &[Type]) -> Result<Type, FunctionError> {
    if !is_datelike(&t[0]) {
        return Err(format!("expected a date or datetime, found {}", t[0]).into());
    }
    if !matches!(t[1], Type::Int | Type::Any) {
        return Err(format!("expected an int count, found {}", t[1]).into());
    }
    Ok(t[0].clone())
}

pub(super) fn check_date_part(t: &[Type]) -> Result<Type, FunctionError> {
    check_to_date(t).map(|_| Type::Int)
}

pub(super) fn check_two_dates(t: &[Type]) -> Result<Type, FunctionError> {
    if is_datelike(&t[0]) && is_datelike(&t[1]) {
        Ok(Type::Int)
    } else {
        Err(format!("expected two dates, found {} and {}", t[0], t[1]).into())
    }
}

pub(super) fn check_decimal_ctor(t: &[Type]) -> Result<Type, FunctionError> {
    if is_numeric(&t[0]) || is_string(&t[0]) {
        Ok(Type::Decimal)
    } else {
        Err(format!("expected a number or a string, found {}", t[0]).into())
    }
}

pub(super) fn check_coalesce(t: &[Type]) -> Result<Type, FunctionError> {
    unify(&t[0], &t[1])
        .ok_or_else(|| FunctionError(format!("{} and {} have no common type", t[0], t[1])))
}

pub(super) fn check_list_arg(t: &Type) -> Result<(), FunctionError> {
    item_type(t)
        .map(|_| ())
        .ok_or_else(|| FunctionError(format!("expected a list, found {t}")))
}

pub(super) fn check_predicate(t: &[Type]) -> Result<Type, FunctionError> {
    check_list_arg(&t[0])?;
    if matches!(t[1], Type::Bool | Type::Any) {
        Ok(Type::Bool)
    } else {
        Err(format!("the lambda must return a bool, found {}", t[1]).into())
    }
}

pub(super) fn check_filter(t: &[Type]) -> Result<Type, FunctionError> {
    check_predicate(t).map(|_| t[0].clone())
}

pub(super) fn check_map(t: &[Type]) -> Result<Type, FunctionError> {
    check_list_arg(&t[0])?;
    Ok(Type::list(t[1].clone()))
}

pub(super) fn check_count(t: &[Type]) -> Result<Type, FunctionError> {
    check_list_arg(&t[0])?;
    if t.len() == 2 {
        check_predicate(t)?;
    }
    Ok(Type::Int)
}

pub(super) fn check_sum(t: &[Type]) -> Result<Type, FunctionError> {
    check_list_arg(&t[0])?;
    let summed = match t.get(1) {
        Some(body) => body.clone(),
        None => item_type(&t[0]).unwrap_or(Type::Any),
    };
    if is_numeric(&summed) {
        Ok(summed)
    } else {
        Err(format!("can only sum numbers, found {summed}").into())
    }
}

pub(super) fn check_all_unable_to_work(t: &[Type]) -> Result<Type, FunctionError> {
    if !matches!(t[0], Type::Object { .. } | Type::Any) {
        return Err(format!("expected a household object, found {}", t[0]).into());
    }
    if !is_datelike(&t[1]) && !is_string(&t[1]) {
        return Err(format!("expected an as_of date, found {}", t[1]).into());
    }
    if let Some(flag) = t.get(2)
        && !matches!(flag, Type::Bool | Type::Any)
    {
        return Err(format!("expected a bool flag, found {flag}").into());
    }
    Ok(Type::Bool)
}

pub(super) fn check_stable_percent(t: &[Type]) -> Result<Type, FunctionError> {
    if is_string(&t[0]) || matches!(t[0], Type::Enum(_)) {
        Ok(Type::Int)
    } else {
        Err(format!("expected a string key, found {}", t[0]).into())
    }
}

pub(super) fn check_birthday(t: &[Type]) -> Result<Type, FunctionError> {
    if !is_datelike(&t[0]) && !is_string(&t[0]) {
        return Err(format!("expected a birth date, found {}", t[0]).into());
    }
    if !matches!(t[1], Type::Int | Type::Any) {
        return Err(format!("expected an int number of years, found {}", t[1]).into());
    }
    Ok(Type::Date)
}

pub(super) fn check_with(t: &[Type]) -> Result<Type, FunctionError> {
    if !matches!(t[0], Type::Object { .. } | Type::Any) {
        return Err(format!("expected an object, found {}", t[0]).into());
    }
    if !is_string(&t[1]) {
        return Err(format!("expected a field name, found {}", t[1]).into());
    }
    // The object keeps its type; a value that does not fit the field is caught
    // when the result is stored (variables are coerced to their declared type).
    Ok(t[0].clone())
}

pub(super) fn check_sort(t: &[Type]) -> Result<Type, FunctionError> {
    check_list_arg(&t[0])?;
    let key = match t.get(1) {
        Some(body) => body.clone(),
        None => item_type(&t[0]).unwrap_or(Type::Any),
    };
    if is_numeric(&key)
        || is_string(&key)
        || matches!(key, Type::Date | Type::DateTime | Type::Any | Type::Enum(_))
    {
        Ok(t[0].clone())
    } else {
        Err(format!("can only sort by numbers, strings or dates, found {key}").into())
    }
}
