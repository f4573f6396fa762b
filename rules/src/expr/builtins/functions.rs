//! The implementations of the built-in functions: pure, over evaluated
//! arguments, each refusing what it cannot compute with a [`FunctionError`].

use std::cmp::Ordering;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Days, FixedOffset, Months, NaiveDate};
use rust_decimal::{Decimal, RoundingStrategy};

use super::FunctionError;
use crate::domain::{age_on, severely_disabled};
use crate::expr::ops::{compare, equal, number};
use crate::value::Value;

pub(super) fn want_number(v: &Value) -> Result<Decimal, FunctionError> {
    number(v).ok_or_else(|| FunctionError(format!("expected a number, found {}", v.type_name())))
}

pub(super) fn want_int(v: &Value) -> Result<i64, FunctionError> {
    match v {
        Value::Int(i) => Ok(*i),
        other => Err(format!("expected an int, found {}", other.type_name()).into()),
    }
}

pub(super) fn want_list(v: &Value) -> Result<&[Value], FunctionError> {
    match v {
        Value::List(items) => Ok(items),
        other => Err(format!("expected a list, found {}", other.type_name()).into()),
    }
}

/// A date from a `Date`, a `DateTime` (its local date) or a `YYYY-MM-DD` string,
/// so open objects holding JSON strings work too.
pub fn as_date(v: &Value) -> Result<NaiveDate, FunctionError> {
    match v {
        Value::Date(d) => Ok(*d),
        Value::DateTime(t) => Ok(t.date_naive()),
        Value::Str(s) => NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
            .map_err(|_| FunctionError(format!("{s:?} is not a date YYYY-MM-DD"))),
        other => Err(format!("expected a date, found {}", other.type_name()).into()),
    }
}

pub(super) fn as_datetime(v: &Value) -> Result<DateTime<FixedOffset>, FunctionError> {
    match v {
        Value::DateTime(t) => Ok(*t),
        Value::Str(s) => DateTime::parse_from_rfc3339(s.trim())
            .map_err(|_| FunctionError(format!("{s:?} is not an RFC 3339 date-time"))),
        other => Err(format!("expected a datetime, found {}", other.type_name()).into()),
    }
}

pub(super) fn len(a: &[Value]) -> Result<Value, FunctionError> {
    let n = match &a[0] {
        Value::List(items) => items.len(),
        Value::Str(s) => s.chars().count(),
        other => {
            return Err(format!("expected a list or a string, found {}", other.type_name()).into());
        }
    };
    Ok(Value::Int(i64::try_from(n).unwrap_or(i64::MAX)))
}

pub(super) fn extreme(a: &[Value], want: Ordering) -> Result<Value, FunctionError> {
    let items: &[Value] = if a.len() == 1 { want_list(&a[0])? } else { a };
    let mut best: Option<&Value> = None;
    for item in items {
        best = Some(match best {
            None => item,
            Some(b) => match compare(item, b) {
                Some(o) if o == want => item,
                Some(_) => b,
                None => {
                    return Err(format!(
                        "cannot compare {} with {}",
                        item.type_name(),
                        b.type_name()
                    )
                    .into());
                }
            },
        });
    }
    best.cloned()
        .ok_or_else(|| FunctionError("no values to choose from".to_string()))
}

pub(super) fn abs(a: &[Value]) -> Result<Value, FunctionError> {
    match &a[0] {
        Value::Int(i) => i
            .checked_abs()
            .map(Value::Int)
            .ok_or_else(|| "overflow".into()),
        Value::Decimal(d) => Ok(Value::Decimal(d.abs())),
        other => Err(format!("expected a number, found {}", other.type_name()).into()),
    }
}

pub(super) fn rounding(a: &[Value], strategy: RoundingStrategy) -> Result<Value, FunctionError> {
    let x = want_number(&a[0])?;
    let places = match a.get(1) {
        Some(p) => want_int(p)?,
        None => 0,
    };
    let places = u32::try_from(places)
        .ok()
        .filter(|p| *p <= 28)
        .ok_or_else(|| format!("places must be between 0 and 28, found {places}"))?;
    Ok(Value::Decimal(x.round_dp_with_strategy(places, strategy)))
}

pub(super) fn sorted_numbers(v: &Value) -> Result<Vec<Decimal>, FunctionError> {
    let mut numbers = want_list(v)?
        .iter()
        .map(want_number)
        .collect::<Result<Vec<_>, _>>()?;
    numbers.sort();
    Ok(numbers)
}

pub(super) fn median(a: &[Value]) -> Result<Value, FunctionError> {
    let numbers = sorted_numbers(&a[0])?;
    let n = numbers.len();
    if n == 0 {
        return Err("the median of an empty list is undefined".into());
    }
    if n % 2 == 1 {
        return Ok(Value::Decimal(numbers[n / 2]));
    }
    let pair = numbers[n / 2 - 1]
        .checked_add(numbers[n / 2])
        .ok_or_else(|| "overflow".to_string())?;
    Ok(Value::Decimal((pair / Decimal::TWO).normalize()))
}

/// The middle value of the sorted numbers; for an even count the lower
/// (`lower` true) or the upper of the two middle ones, never their mean.
pub(super) fn middle(a: &[Value], lower: bool) -> Result<Value, FunctionError> {
    let numbers = sorted_numbers(&a[0])?;
    let n = numbers.len();
    if n == 0 {
        return Err("the median of an empty list is undefined".into());
    }
    let at = if lower { (n - 1) / 2 } else { n / 2 };
    Ok(Value::Decimal(numbers[at]))
}

/// `sort(xs)`: the items in ascending order.
pub(super) fn sort(a: &[Value]) -> Result<Value, FunctionError> {
    let items = want_list(&a[0])?;
    sort_by_keys(items.to_vec(), items.to_vec()).map(Value::List)
}

/// The items ordered by their keys (ascending, stable: equal keys keep their
/// order); keys that cannot be compared (a number with a string, a null) are
/// an error rather than an arbitrary order.
pub fn sort_by_keys(items: Vec<Value>, keys: Vec<Value>) -> Result<Vec<Value>, FunctionError> {
    let mut pairs: Vec<(Value, Value)> = keys.into_iter().zip(items).collect();
    let mut problem = None;
    pairs.sort_by(|(x, _), (y, _)| {
        compare(x, y).unwrap_or_else(|| {
            problem.get_or_insert_with(|| {
                format!("cannot compare {} with {}", x.type_name(), y.type_name())
            });
            Ordering::Equal
        })
    });
    match problem {
        Some(message) => Err(message.into()),
        None => Ok(pairs.into_iter().map(|(_, item)| item).collect()),
    }
}

pub(super) fn contains(a: &[Value]) -> Result<Value, FunctionError> {
    match (&a[0], &a[1]) {
        (Value::List(items), x) => Ok(Value::Bool(items.iter().any(|i| equal(i, x)))),
        (Value::Str(s), Value::Str(sub)) => Ok(Value::Bool(s.contains(sub.as_str()))),
        (x, y) => Err(format!("cannot look for {} in {}", y.type_name(), x.type_name()).into()),
    }
}

pub(super) fn date(a: &[Value]) -> Result<Value, FunctionError> {
    match &a[0] {
        Value::Date(d) => Ok(Value::Date(*d)),
        Value::Str(_) => as_date(&a[0]).map(Value::Date),
        other => Err(format!("expected a string, found {}", other.type_name()).into()),
    }
}

pub(super) fn datetime(a: &[Value]) -> Result<Value, FunctionError> {
    as_datetime(&a[0]).map(Value::DateTime)
}

pub(super) fn date_of(a: &[Value]) -> Result<Value, FunctionError> {
    as_date(&a[0]).map(Value::Date)
}

pub(super) fn shift(
    a: &[Value],
    by: impl Fn(NaiveDate, i64) -> Option<NaiveDate>,
) -> Result<Value, FunctionError> {
    let n = want_int(&a[1])?;
    let out_of_range = || FunctionError::from("the resulting date is out of range");
    match &a[0] {
        Value::DateTime(t) => {
            let day = by(t.date_naive(), n).ok_or_else(out_of_range)?;
            let shifted = day.and_time(t.time()).and_local_timezone(*t.offset());
            shifted
                .single()
                .map(Value::DateTime)
                .ok_or_else(out_of_range)
        }
        other => by(as_date(other)?, n)
            .map(Value::Date)
            .ok_or_else(out_of_range),
    }
}

pub(super) fn add_days(a: &[Value]) -> Result<Value, FunctionError> {
    shift(a, |d, n| {
        let days = Days::new(n.unsigned_abs());
        if n >= 0 {
            d.checked_add_days(days)
        } else {
            d.checked_sub_days(days)
        }
    })
}

pub(super) fn add_months(a: &[Value]) -> Result<Value, FunctionError> {
    // chrono clamps to the last day of a shorter month (31 Jan + 1 month = 28/29 Feb).
    shift(a, |d, n| {
        let months = Months::new(u32::try_from(n.unsigned_abs()).ok()?);
        if n >= 0 {
            d.checked_add_months(months)
        } else {
            d.checked_sub_months(months)
        }
    })
}

pub(super) fn first_day_of_next_month(a: &[Value]) -> Result<Value, FunctionError> {
    let d = as_date(&a[0])?;
    d.with_day(1)
        .and_then(|first| first.checked_add_months(Months::new(1)))
        .map(Value::Date)
        .ok_or_else(|| FunctionError("the resulting date is out of range".to_string()))
}

pub(super) fn date_part(a: &[Value], part: fn(NaiveDate) -> i64) -> Result<Value, FunctionError> {
    as_date(&a[0]).map(|d| Value::Int(part(d)))
}

pub(super) fn age(a: &[Value]) -> Result<Value, FunctionError> {
    Ok(Value::Int(age_on(as_date(&a[0])?, as_date(&a[1])?)))
}

pub(super) fn days_between(a: &[Value]) -> Result<Value, FunctionError> {
    let (from, to) = (as_date(&a[0])?, as_date(&a[1])?);
    Ok(Value::Int((to - from).num_days()))
}

pub(super) fn string(a: &[Value]) -> Result<Value, FunctionError> {
    // A date, time or amount as written (`2026-07-01`, `705.00`), not as quoted JSON.
    Ok(Value::Str(match &a[0] {
        Value::Null => String::new(),
        other => match other.to_json() {
            serde_json::Value::String(text) => text,
            json => json.to_string(),
        },
    }))
}

pub(super) fn decimal(a: &[Value]) -> Result<Value, FunctionError> {
    match &a[0] {
        Value::Str(s) => Decimal::from_str(s.trim())
            .map(Value::Decimal)
            .map_err(|_| FunctionError(format!("{s:?} is not a decimal number"))),
        other => want_number(other).map(Value::Decimal),
    }
}

pub(super) fn sum_plain(a: &[Value]) -> Result<Value, FunctionError> {
    sum_values(want_list(&a[0])?)
}

/// Sums numbers, keeping an int result while every item is an int.
pub fn sum_values(items: &[Value]) -> Result<Value, FunctionError> {
    let mut total = Value::Int(0);
    for item in items {
        total = match (&total, item) {
            (Value::Int(x), Value::Int(y)) => match x.checked_add(*y) {
                Some(s) => Value::Int(s),
                None => Value::Decimal(Decimal::from(*x) + Decimal::from(*y)),
            },
            (t, i) => {
                let (x, y) = (want_number(t)?, want_number(i)?);
                Value::Decimal(x.checked_add(y).ok_or_else(|| "overflow".to_string())?)
            }
        };
    }
    Ok(total)
}

pub(super) fn all_unable_to_work(a: &[Value]) -> Result<Value, FunctionError> {
    let as_of = as_date(&a[1])?;
    let flag = match a.get(2) {
        Some(Value::Bool(b)) => *b,
        Some(Value::Null) | None => true,
        Some(other) => {
            return Err(format!("expected a bool flag, found {}", other.type_name()).into());
        }
    };
    let members = a[0]
        .get("members")
        .ok_or_else(|| "the household has no `members`".to_string())?;
    let members = want_list(members)?;
    if members.is_empty() {
        return Ok(Value::Bool(false));
    }
    for member in members {
        let birth = as_date(member.get("birth_date").unwrap_or(&Value::Null))
            .map_err(|e| format!("birth_date: {e}"))?;
        let years = age_on(birth, as_of);
        let disability = match member.get("disability") {
            Some(d @ Value::Object(_)) => {
                let grade = d
                    .get("grade")
                    .and_then(number)
                    .and_then(|g| i64::try_from(g).ok());
                let kind = d.get("kind").and_then(Value::as_str).unwrap_or("");
                grade.map(|g| (g, kind))
            }
            _ => None,
        };
        let veteran = member
            .get("disabled_veteran_grade")
            .and_then(number)
            .and_then(|g| i64::try_from(g).ok());
        let unable = !(18..60).contains(&years) || severely_disabled(disability, veteran, flag);
        if !unable {
            return Ok(Value::Bool(false));
        }
    }
    Ok(Value::Bool(true))
}

/// FNV-1a (64 bit) of the key's UTF-8 bytes, modulo 100: a stable 0..=99 for
/// sampling (≥ 30 % of tekun approvals get a spot check). Its constants are
/// fixed by the FNV specification, so the same key gives the same number on
/// every machine and every release, which `std`'s `DefaultHasher` does not promise.
pub fn stable_percent_of(key: &str) -> i64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let hash = key.bytes().fold(OFFSET_BASIS, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    });
    // `hash % 100` is below 100, so it always fits.
    i64::try_from(hash % 100).unwrap_or(0)
}

pub(super) fn stable_percent(a: &[Value]) -> Result<Value, FunctionError> {
    match &a[0] {
        Value::Str(key) => Ok(Value::Int(stable_percent_of(key))),
        other => Err(format!("expected a string key, found {}", other.type_name()).into()),
    }
}

/// The date a person born on `birth_date` completes `years` years, by the rule
/// of `age`: a 29 February birthday falls on 1 March in common years.
pub(super) fn birthday(a: &[Value]) -> Result<Value, FunctionError> {
    let birth = as_date(&a[0])?;
    let years = want_int(&a[1])?;
    let months = years
        .checked_mul(12)
        .and_then(|m| u32::try_from(m).ok())
        .ok_or_else(|| format!("years must be between 0 and 1000, found {years}"))?;
    // Shift the day before the birth date and add one day back, so that a
    // 29 February birth lands on 1 March (not 28 February) in a common year.
    birth
        .pred_opt()
        .and_then(|eve| eve.checked_add_months(Months::new(months)))
        .and_then(|eve| eve.succ_opt())
        .map(Value::Date)
        .ok_or_else(|| FunctionError("the resulting date is out of range".to_string()))
}

/// A copy of an object with one field set (added or replaced); used to update
/// a member inside a household (`with(m, 'adl_not_met', 2)`).
pub(super) fn with_field(a: &[Value]) -> Result<Value, FunctionError> {
    let Value::Str(field) = &a[1] else {
        return Err(format!("expected a field name, found {}", a[1].type_name()).into());
    };
    match &a[0] {
        Value::Object(map) => {
            let mut map = map.clone();
            map.insert(field.clone(), a[2].clone());
            Ok(Value::Object(map))
        }
        other => Err(format!("expected an object, found {}", other.type_name()).into()),
    }
}
