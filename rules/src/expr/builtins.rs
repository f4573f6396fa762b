//! The built-in function registry: name, arity, a type rule checked at load time
//! and a pure implementation. New functions are added with [`Registry::register`].

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Days, FixedOffset, Months, NaiveDate};
use rust_decimal::{Decimal, RoundingStrategy};

use super::ops::{compare, equal, is_numeric, is_string, number, numeric_result, unify};
use crate::domain::{age_on, severely_disabled};
use crate::value::{Type, Value};

/// A pure implementation over evaluated arguments; the message of an `Err`
/// becomes an [`super::EvalError::Function`].
/// Why a built-in function refused its arguments or could not compute a
/// result; the evaluator turns it into [`super::EvalError::Function`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FunctionError(pub String);

impl From<String> for FunctionError {
    fn from(message: String) -> FunctionError {
        FunctionError(message)
    }
}

impl From<&str> for FunctionError {
    fn from(message: &str) -> FunctionError {
        FunctionError(message.to_string())
    }
}

pub type PlainFn = fn(&[Value]) -> Result<Value, FunctionError>;
/// A type rule: argument types (for a lambda, the type of its body) → result type.
pub type CheckFn = fn(&[Type]) -> Result<Type, FunctionError>;

/// Whether the second argument is a lambda `x => ...` over the first (a list).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LambdaUse {
    None,
    Optional,
    Required,
}

/// The list functions whose lambda the evaluator applies item by item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListFn {
    All,
    Any,
    Filter,
    Map,
    Count,
    Sum,
}

#[derive(Clone, Copy)]
pub enum Implementation {
    Plain(PlainFn),
    /// Applied with a lambda; `without_lambda` handles the one-argument form.
    List {
        kind: ListFn,
        without_lambda: Option<PlainFn>,
    },
}

/// One built-in function.
#[derive(Clone)]
pub struct Builtin {
    pub name: &'static str,
    /// Shown in arity and type errors, e.g. `round(x: number, places?: int) -> decimal`.
    pub signature: &'static str,
    pub min_args: usize,
    pub max_args: usize,
    pub lambda: LambdaUse,
    pub check: CheckFn,
    pub implementation: Implementation,
}

impl fmt::Debug for Builtin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.signature)
    }
}

/// The functions an expression may call.
#[derive(Clone, Debug)]
pub struct Registry {
    functions: BTreeMap<&'static str, Builtin>,
}

impl Registry {
    /// An empty registry (no functions at all).
    pub fn empty() -> Registry {
        Registry {
            functions: BTreeMap::new(),
        }
    }

    /// The standard library documented in the module doc of [`super`].
    pub fn standard() -> Registry {
        let mut r = Registry::empty();
        for b in standard_builtins() {
            r.register(b);
        }
        r
    }

    /// Adds or replaces a function.
    pub fn register(&mut self, builtin: Builtin) {
        self.functions.insert(builtin.name, builtin);
    }

    pub fn get(&self, name: &str) -> Option<&Builtin> {
        self.functions.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.functions.keys().copied()
    }
}

fn plain(
    name: &'static str,
    signature: &'static str,
    arity: (usize, usize),
    check: CheckFn,
    f: PlainFn,
) -> Builtin {
    Builtin {
        name,
        signature,
        min_args: arity.0,
        max_args: arity.1,
        lambda: LambdaUse::None,
        check,
        implementation: Implementation::Plain(f),
    }
}

fn list_fn(
    name: &'static str,
    signature: &'static str,
    kind: ListFn,
    without_lambda: Option<PlainFn>,
    check: CheckFn,
) -> Builtin {
    Builtin {
        name,
        signature,
        min_args: if without_lambda.is_some() { 1 } else { 2 },
        max_args: 2,
        lambda: if without_lambda.is_some() {
            LambdaUse::Optional
        } else {
            LambdaUse::Required
        },
        check,
        implementation: Implementation::List {
            kind,
            without_lambda,
        },
    }
}

fn standard_builtins() -> Vec<Builtin> {
    vec![
        plain(
            "len",
            "len(x: list | string) -> int",
            (1, 1),
            check_len,
            len,
        ),
        plain(
            "min",
            "min(a, b) | min(xs: list) -> number | date",
            (1, 2),
            check_min_max,
            |a| extreme(a, Ordering::Less),
        ),
        plain(
            "max",
            "max(a, b) | max(xs: list) -> number | date",
            (1, 2),
            check_min_max,
            |a| extreme(a, Ordering::Greater),
        ),
        plain("abs", "abs(x: number) -> number", (1, 1), check_abs, abs),
        plain(
            "round",
            "round(x: number, places?: int) -> decimal",
            (1, 2),
            check_rounding,
            |a| rounding(a, RoundingStrategy::MidpointAwayFromZero),
        ),
        plain(
            "floor",
            "floor(x: number, places?: int) -> decimal",
            (1, 2),
            check_rounding,
            |a| rounding(a, RoundingStrategy::ToNegativeInfinity),
        ),
        plain(
            "ceil",
            "ceil(x: number, places?: int) -> decimal",
            (1, 2),
            check_rounding,
            |a| rounding(a, RoundingStrategy::ToPositiveInfinity),
        ),
        plain(
            "median",
            "median(xs: list<number>) -> decimal",
            (1, 1),
            check_median,
            median,
        ),
        plain(
            "contains",
            "contains(xs: list | string, x) -> bool",
            (2, 2),
            check_contains,
            contains,
        ),
        plain(
            "date",
            "date(s: string) -> date",
            (1, 1),
            check_date_ctor,
            date,
        ),
        plain(
            "datetime",
            "datetime(s: string) -> datetime",
            (1, 1),
            check_datetime_ctor,
            datetime,
        ),
        plain(
            "date_of",
            "date_of(t: datetime | date) -> date",
            (1, 1),
            check_to_date,
            date_of,
        ),
        plain(
            "add_days",
            "add_days(d: date | datetime, n: int) -> same",
            (2, 2),
            check_shift,
            add_days,
        ),
        plain(
            "add_months",
            "add_months(d: date | datetime, n: int) -> same",
            (2, 2),
            check_shift,
            add_months,
        ),
        plain(
            "first_day_of_next_month",
            "first_day_of_next_month(d: date | datetime) -> date",
            (1, 1),
            check_to_date,
            first_day_of_next_month,
        ),
        plain(
            "year",
            "year(d: date | datetime) -> int",
            (1, 1),
            check_date_part,
            |a| date_part(a, |d| i64::from(d.year())),
        ),
        plain(
            "month",
            "month(d: date | datetime) -> int",
            (1, 1),
            check_date_part,
            |a| date_part(a, |d| i64::from(d.month())),
        ),
        plain(
            "day",
            "day(d: date | datetime) -> int",
            (1, 1),
            check_date_part,
            |a| date_part(a, |d| i64::from(d.day())),
        ),
        plain(
            "age",
            "age(birth_date: date, as_of: date | datetime) -> int",
            (2, 2),
            check_two_dates,
            age,
        ),
        plain(
            "days_between",
            "days_between(from: date, to: date) -> int",
            (2, 2),
            check_two_dates,
            days_between,
        ),
        plain(
            "string",
            "string(x) -> string",
            (1, 1),
            |_| Ok(Type::String),
            string,
        ),
        plain(
            "decimal",
            "decimal(x: number | string) -> decimal",
            (1, 1),
            check_decimal_ctor,
            decimal,
        ),
        plain(
            "is_null",
            "is_null(x) -> bool",
            (1, 1),
            |_| Ok(Type::Bool),
            |a| Ok(Value::Bool(matches!(a[0], Value::Null))),
        ),
        plain(
            "coalesce",
            "coalesce(a, b) -> a | b",
            (2, 2),
            check_coalesce,
            |a| {
                Ok(if a[0] == Value::Null {
                    a[1].clone()
                } else {
                    a[0].clone()
                })
            },
        ),
        list_fn(
            "all",
            "all(xs: list, x => bool) -> bool",
            ListFn::All,
            None,
            check_predicate,
        ),
        list_fn(
            "any",
            "any(xs: list, x => bool) -> bool",
            ListFn::Any,
            None,
            check_predicate,
        ),
        list_fn(
            "filter",
            "filter(xs: list, x => bool) -> list",
            ListFn::Filter,
            None,
            check_filter,
        ),
        list_fn(
            "map",
            "map(xs: list, x => y) -> list<y>",
            ListFn::Map,
            None,
            check_map,
        ),
        list_fn(
            "count",
            "count(xs: list, x => bool?) -> int",
            ListFn::Count,
            Some(len),
            check_count,
        ),
        list_fn(
            "sum",
            "sum(xs: list<number>) | sum(xs: list, x => number) -> number",
            ListFn::Sum,
            Some(sum_plain),
            check_sum,
        ),
        plain(
            "all_unable_to_work",
            "all_unable_to_work(household: object, as_of: date, severe_includes_grade3_intellectual_mental?: bool) -> bool",
            (2, 3),
            check_all_unable_to_work,
            all_unable_to_work,
        ),
        plain(
            "stable_percent",
            "stable_percent(key: string) -> int",
            (1, 1),
            check_stable_percent,
            stable_percent,
        ),
        plain(
            "birthday",
            "birthday(birth_date: date, years: int) -> date",
            (2, 2),
            check_birthday,
            birthday,
        ),
        plain(
            "with",
            "with(object, field: string, value) -> object",
            (3, 3),
            check_with,
            with_field,
        ),
        plain(
            "committee_decision",
            "committee_decision(votes: list<{decision, amount, reason}>) -> {decision, amount, reasons}",
            (1, 1),
            check_committee_decision,
            committee_decision,
        ),
    ]
}

// ---- type rules ------------------------------------------------------------

fn is_datelike(t: &Type) -> bool {
    matches!(t, Type::Date | Type::DateTime | Type::Any)
}

fn item_type(t: &Type) -> Option<Type> {
    match t {
        Type::List(item) => Some((**item).clone()),
        Type::Any => Some(Type::Any),
        _ => None,
    }
}

fn check_len(t: &[Type]) -> Result<Type, FunctionError> {
    if item_type(&t[0]).is_some() || is_string(&t[0]) {
        Ok(Type::Int)
    } else {
        Err(format!("`len` needs a list or a string, found {}", t[0]).into())
    }
}

fn check_min_max(t: &[Type]) -> Result<Type, FunctionError> {
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

fn check_abs(t: &[Type]) -> Result<Type, FunctionError> {
    if is_numeric(&t[0]) {
        Ok(t[0].clone())
    } else {
        Err(format!("expected a number, found {}", t[0]).into())
    }
}

fn check_rounding(t: &[Type]) -> Result<Type, FunctionError> {
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

fn check_median(t: &[Type]) -> Result<Type, FunctionError> {
    match item_type(&t[0]) {
        Some(item) if is_numeric(&item) => Ok(Type::Decimal),
        _ => Err(format!("expected a list of numbers, found {}", t[0]).into()),
    }
}

fn check_contains(t: &[Type]) -> Result<Type, FunctionError> {
    match &t[0] {
        Type::List(_) | Type::Any => Ok(Type::Bool),
        s if is_string(s) && is_string(&t[1]) => Ok(Type::Bool),
        other => Err(format!("expected a list or a string, found {other}").into()),
    }
}

fn check_date_ctor(t: &[Type]) -> Result<Type, FunctionError> {
    if is_string(&t[0]) || t[0] == Type::Date {
        Ok(Type::Date)
    } else {
        Err(format!("expected a string, found {}", t[0]).into())
    }
}

fn check_datetime_ctor(t: &[Type]) -> Result<Type, FunctionError> {
    if is_string(&t[0]) || t[0] == Type::DateTime {
        Ok(Type::DateTime)
    } else {
        Err(format!("expected a string, found {}", t[0]).into())
    }
}

fn check_to_date(t: &[Type]) -> Result<Type, FunctionError> {
    if is_datelike(&t[0]) {
        Ok(Type::Date)
    } else {
        Err(format!("expected a date or datetime, found {}", t[0]).into())
    }
}

fn check_shift(t: &[Type]) -> Result<Type, FunctionError> {
    if !is_datelike(&t[0]) {
        return Err(format!("expected a date or datetime, found {}", t[0]).into());
    }
    if !matches!(t[1], Type::Int | Type::Any) {
        return Err(format!("expected an int count, found {}", t[1]).into());
    }
    Ok(t[0].clone())
}

fn check_date_part(t: &[Type]) -> Result<Type, FunctionError> {
    check_to_date(t).map(|_| Type::Int)
}

fn check_two_dates(t: &[Type]) -> Result<Type, FunctionError> {
    if is_datelike(&t[0]) && is_datelike(&t[1]) {
        Ok(Type::Int)
    } else {
        Err(format!("expected two dates, found {} and {}", t[0], t[1]).into())
    }
}

fn check_decimal_ctor(t: &[Type]) -> Result<Type, FunctionError> {
    if is_numeric(&t[0]) || is_string(&t[0]) {
        Ok(Type::Decimal)
    } else {
        Err(format!("expected a number or a string, found {}", t[0]).into())
    }
}

fn check_coalesce(t: &[Type]) -> Result<Type, FunctionError> {
    unify(&t[0], &t[1])
        .ok_or_else(|| FunctionError(format!("{} and {} have no common type", t[0], t[1])))
}

fn check_list_arg(t: &Type) -> Result<(), FunctionError> {
    item_type(t)
        .map(|_| ())
        .ok_or_else(|| FunctionError(format!("expected a list, found {t}")))
}

fn check_predicate(t: &[Type]) -> Result<Type, FunctionError> {
    check_list_arg(&t[0])?;
    if matches!(t[1], Type::Bool | Type::Any) {
        Ok(Type::Bool)
    } else {
        Err(format!("the lambda must return a bool, found {}", t[1]).into())
    }
}

fn check_filter(t: &[Type]) -> Result<Type, FunctionError> {
    check_predicate(t).map(|_| t[0].clone())
}

fn check_map(t: &[Type]) -> Result<Type, FunctionError> {
    check_list_arg(&t[0])?;
    Ok(Type::list(t[1].clone()))
}

fn check_count(t: &[Type]) -> Result<Type, FunctionError> {
    check_list_arg(&t[0])?;
    if t.len() == 2 {
        check_predicate(t)?;
    }
    Ok(Type::Int)
}

fn check_sum(t: &[Type]) -> Result<Type, FunctionError> {
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

fn check_all_unable_to_work(t: &[Type]) -> Result<Type, FunctionError> {
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

fn check_stable_percent(t: &[Type]) -> Result<Type, FunctionError> {
    if is_string(&t[0]) || matches!(t[0], Type::Enum(_)) {
        Ok(Type::Int)
    } else {
        Err(format!("expected a string key, found {}", t[0]).into())
    }
}

fn check_birthday(t: &[Type]) -> Result<Type, FunctionError> {
    if !is_datelike(&t[0]) && !is_string(&t[0]) {
        return Err(format!("expected a birth date, found {}", t[0]).into());
    }
    if !matches!(t[1], Type::Int | Type::Any) {
        return Err(format!("expected an int number of years, found {}", t[1]).into());
    }
    Ok(Type::Date)
}

fn check_with(t: &[Type]) -> Result<Type, FunctionError> {
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

/// The result type of `committee_decision`.
pub fn committee_result_type() -> Type {
    Type::Object {
        fields: [
            (
                "decision".to_string(),
                Type::Enum(vec!["approve".into(), "reject".into()]),
            ),
            ("amount".to_string(), Type::Decimal),
            ("reasons".to_string(), Type::list(Type::String)),
        ]
        .into(),
        open: false,
    }
}

fn check_committee_decision(t: &[Type]) -> Result<Type, FunctionError> {
    check_list_arg(&t[0])?;
    Ok(committee_result_type())
}

// ---- value helpers -----------------------------------------------------------

fn want_number(v: &Value) -> Result<Decimal, FunctionError> {
    number(v).ok_or_else(|| FunctionError(format!("expected a number, found {}", v.type_name())))
}

fn want_int(v: &Value) -> Result<i64, FunctionError> {
    match v {
        Value::Int(i) => Ok(*i),
        other => Err(format!("expected an int, found {}", other.type_name()).into()),
    }
}

fn want_list(v: &Value) -> Result<&[Value], FunctionError> {
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

fn as_datetime(v: &Value) -> Result<DateTime<FixedOffset>, FunctionError> {
    match v {
        Value::DateTime(t) => Ok(*t),
        Value::Str(s) => DateTime::parse_from_rfc3339(s.trim())
            .map_err(|_| FunctionError(format!("{s:?} is not an RFC 3339 date-time"))),
        other => Err(format!("expected a datetime, found {}", other.type_name()).into()),
    }
}

// ---- implementations -----------------------------------------------------------

fn len(a: &[Value]) -> Result<Value, FunctionError> {
    let n = match &a[0] {
        Value::List(items) => items.len(),
        Value::Str(s) => s.chars().count(),
        other => {
            return Err(format!("expected a list or a string, found {}", other.type_name()).into());
        }
    };
    Ok(Value::Int(i64::try_from(n).unwrap_or(i64::MAX)))
}

fn extreme(a: &[Value], want: Ordering) -> Result<Value, FunctionError> {
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

fn abs(a: &[Value]) -> Result<Value, FunctionError> {
    match &a[0] {
        Value::Int(i) => i
            .checked_abs()
            .map(Value::Int)
            .ok_or_else(|| "overflow".into()),
        Value::Decimal(d) => Ok(Value::Decimal(d.abs())),
        other => Err(format!("expected a number, found {}", other.type_name()).into()),
    }
}

fn rounding(a: &[Value], strategy: RoundingStrategy) -> Result<Value, FunctionError> {
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

fn sorted_numbers(v: &Value) -> Result<Vec<Decimal>, FunctionError> {
    let mut numbers = want_list(v)?
        .iter()
        .map(want_number)
        .collect::<Result<Vec<_>, _>>()?;
    numbers.sort();
    Ok(numbers)
}

fn median(a: &[Value]) -> Result<Value, FunctionError> {
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

fn contains(a: &[Value]) -> Result<Value, FunctionError> {
    match (&a[0], &a[1]) {
        (Value::List(items), x) => Ok(Value::Bool(items.iter().any(|i| equal(i, x)))),
        (Value::Str(s), Value::Str(sub)) => Ok(Value::Bool(s.contains(sub.as_str()))),
        (x, y) => Err(format!("cannot look for {} in {}", y.type_name(), x.type_name()).into()),
    }
}

fn date(a: &[Value]) -> Result<Value, FunctionError> {
    match &a[0] {
        Value::Date(d) => Ok(Value::Date(*d)),
        Value::Str(_) => as_date(&a[0]).map(Value::Date),
        other => Err(format!("expected a string, found {}", other.type_name()).into()),
    }
}

fn datetime(a: &[Value]) -> Result<Value, FunctionError> {
    as_datetime(&a[0]).map(Value::DateTime)
}

fn date_of(a: &[Value]) -> Result<Value, FunctionError> {
    as_date(&a[0]).map(Value::Date)
}

fn shift(
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

fn add_days(a: &[Value]) -> Result<Value, FunctionError> {
    shift(a, |d, n| {
        let days = Days::new(n.unsigned_abs());
        if n >= 0 {
            d.checked_add_days(days)
        } else {
            d.checked_sub_days(days)
        }
    })
}

fn add_months(a: &[Value]) -> Result<Value, FunctionError> {
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

fn first_day_of_next_month(a: &[Value]) -> Result<Value, FunctionError> {
    let d = as_date(&a[0])?;
    d.with_day(1)
        .and_then(|first| first.checked_add_months(Months::new(1)))
        .map(Value::Date)
        .ok_or_else(|| FunctionError("the resulting date is out of range".to_string()))
}

fn date_part(a: &[Value], part: fn(NaiveDate) -> i64) -> Result<Value, FunctionError> {
    as_date(&a[0]).map(|d| Value::Int(part(d)))
}

fn age(a: &[Value]) -> Result<Value, FunctionError> {
    Ok(Value::Int(age_on(as_date(&a[0])?, as_date(&a[1])?)))
}

fn days_between(a: &[Value]) -> Result<Value, FunctionError> {
    let (from, to) = (as_date(&a[0])?, as_date(&a[1])?);
    Ok(Value::Int((to - from).num_days()))
}

fn string(a: &[Value]) -> Result<Value, FunctionError> {
    Ok(Value::Str(match &a[0] {
        Value::Null => String::new(),
        other => other.to_string(),
    }))
}

fn decimal(a: &[Value]) -> Result<Value, FunctionError> {
    match &a[0] {
        Value::Str(s) => Decimal::from_str(s.trim())
            .map(Value::Decimal)
            .map_err(|_| FunctionError(format!("{s:?} is not a decimal number"))),
        other => want_number(other).map(Value::Decimal),
    }
}

fn sum_plain(a: &[Value]) -> Result<Value, FunctionError> {
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

fn all_unable_to_work(a: &[Value]) -> Result<Value, FunctionError> {
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

fn committee_decision(a: &[Value]) -> Result<Value, FunctionError> {
    let votes = want_list(&a[0])?;
    let mut approving = Vec::new();
    let mut reasons = Vec::new();
    for (i, vote) in votes.iter().enumerate() {
        match vote.get("decision").and_then(Value::as_str) {
            Some("approve") => {
                let amount = vote
                    .get("amount")
                    .and_then(Value::as_decimal)
                    .ok_or_else(|| format!("vote {i}: an approving vote needs an amount"))?;
                if amount < Decimal::ZERO {
                    return Err(format!("vote {i}: the amount must be >= 0").into());
                }
                approving.push(amount);
            }
            Some("reject") => {
                if let Some(Value::Str(reason)) = vote.get("reason") {
                    reasons.push(Value::Str(reason.clone()));
                }
            }
            other => {
                return Err(format!(
                    "vote {i}: decision must be \"approve\" or \"reject\", found {other:?}"
                )
                .into());
            }
        }
    }
    // A strict majority of the votes cast approves; a tie rejects.
    let approved = approving.len() * 2 > votes.len();
    let amount = if approved {
        approving.sort();
        // The lower middle value for an even count: the committee never grants
        // more than half of the approving members agreed to.
        Value::Decimal(approving[(approving.len() - 1) / 2])
    } else {
        Value::Null
    };
    let decision = if approved { "approve" } else { "reject" };
    Ok(Value::Object(
        [
            ("decision".to_string(), Value::Str(decision.to_string())),
            ("amount".to_string(), amount),
            ("reasons".to_string(), Value::List(reasons)),
        ]
        .into(),
    ))
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

fn stable_percent(a: &[Value]) -> Result<Value, FunctionError> {
    match &a[0] {
        Value::Str(key) => Ok(Value::Int(stable_percent_of(key))),
        other => Err(format!("expected a string key, found {}", other.type_name()).into()),
    }
}

/// The date a person born on `birth_date` completes `years` years, by the rule
/// of `age`: a 29 February birthday falls on 1 March in common years.
fn birthday(a: &[Value]) -> Result<Value, FunctionError> {
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
fn with_field(a: &[Value]) -> Result<Value, FunctionError> {
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
