//! The built-in function registry: name, arity, a type rule checked at load time
//! and a pure implementation. New functions are added with [`Registry::register`].

mod checks;
mod functions;

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

use chrono::Datelike;
use rust_decimal::RoundingStrategy;

use crate::value::{Type, Value};
use checks::*;
use functions::*;

#[cfg(test)]
pub(super) use functions::stable_percent_of;
pub use functions::{as_date, sort_by_keys, sum_values};

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

/// A pure implementation over evaluated arguments; the message of an `Err`
/// becomes an [`super::EvalError::Function`].
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
    Sort,
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
    /// One line for the language guide's function table (Chinese, the
    /// English term beside it where useful).
    pub description: &'static str,
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

    /// Every function, by name.
    pub fn functions(&self) -> impl Iterator<Item = &Builtin> {
        self.functions.values()
    }
}

fn plain(
    name: &'static str,
    signature: &'static str,
    description: &'static str,
    arity: (usize, usize),
    check: CheckFn,
    f: PlainFn,
) -> Builtin {
    Builtin {
        name,
        signature,
        description,
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
    description: &'static str,
    kind: ListFn,
    without_lambda: Option<PlainFn>,
    check: CheckFn,
) -> Builtin {
    Builtin {
        name,
        signature,
        description,
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
        // ---- numbers --------------------------------------------------------
        plain(
            "min",
            "min(a, b) | min(xs: list) -> number | date",
            "较小值 (minimum)：两个数或日期中的较小者，或列表中最小的一项",
            (1, 2),
            check_min_max,
            |a| extreme(a, Ordering::Less),
        ),
        plain(
            "max",
            "max(a, b) | max(xs: list) -> number | date",
            "较大值 (maximum)：两个数或日期中的较大者，或列表中最大的一项",
            (1, 2),
            check_min_max,
            |a| extreme(a, Ordering::Greater),
        ),
        plain(
            "abs",
            "abs(x: number) -> number",
            "绝对值 (absolute value)",
            (1, 1),
            check_abs,
            abs,
        ),
        plain(
            "round",
            "round(x: number, places?: int) -> decimal",
            "四舍五入到 places 位小数（缺省 0），0.005 → 0.01 (half away from zero)",
            (1, 2),
            check_rounding,
            |a| rounding(a, RoundingStrategy::MidpointAwayFromZero),
        ),
        plain(
            "floor",
            "floor(x: number, places?: int) -> decimal",
            "向下舍到 places 位小数 (towards −∞)，如分期金额舍到分",
            (1, 2),
            check_rounding,
            |a| rounding(a, RoundingStrategy::ToNegativeInfinity),
        ),
        plain(
            "ceil",
            "ceil(x: number, places?: int) -> decimal",
            "向上进到 places 位小数 (towards +∞)",
            (1, 2),
            check_rounding,
            |a| rounding(a, RoundingStrategy::ToPositiveInfinity),
        ),
        plain(
            "decimal",
            "decimal(x: number | string) -> decimal",
            "转为精确小数 (decimal)，可从数字或 \"12.34\" 这样的字符串",
            (1, 1),
            check_decimal_ctor,
            decimal,
        ),
        // ---- lists ----------------------------------------------------------
        plain(
            "len",
            "len(x: list | string) -> int",
            "列表的项数，或字符串的字符数 (length)",
            (1, 1),
            check_len,
            len,
        ),
        plain(
            "contains",
            "contains(xs: list | string, x) -> bool",
            "列表是否含有 x，或字符串是否含有子串 (membership)",
            (2, 2),
            check_contains,
            contains,
        ),
        list_fn(
            "all",
            "all(xs: list, x => bool) -> bool",
            "每一项都满足条件 (all)；空列表为 true",
            ListFn::All,
            None,
            check_predicate,
        ),
        list_fn(
            "any",
            "any(xs: list, x => bool) -> bool",
            "至少一项满足条件 (any)；空列表为 false",
            ListFn::Any,
            None,
            check_predicate,
        ),
        list_fn(
            "filter",
            "filter(xs: list, x => bool) -> list",
            "筛选 (filter)：保留满足条件的项，顺序不变，如 filter(votes, v => v.decision == 'approve')",
            ListFn::Filter,
            None,
            check_filter,
        ),
        list_fn(
            "map",
            "map(xs: list, x => y) -> list<y>",
            "映射 (map)：每一项换成表达式的值，如取字段 map(votes, v => v.amount)",
            ListFn::Map,
            None,
            check_map,
        ),
        list_fn(
            "count",
            "count(xs: list, x => bool?) -> int",
            "计数 (count)：项数，或满足条件的项数",
            ListFn::Count,
            Some(len),
            check_count,
        ),
        list_fn(
            "sum",
            "sum(xs: list<number>) | sum(xs: list, x => number) -> number",
            "求和 (sum)：各项之和，或每项表达式值之和；全为整数时结果为整数",
            ListFn::Sum,
            Some(sum_plain),
            check_sum,
        ),
        list_fn(
            "sort",
            "sort(xs: list) | sort(xs: list, x => key) -> list",
            "升序排列 (sort)：按项本身或按每项的键（数、字符串、日期）；键相同的保持原顺序",
            ListFn::Sort,
            Some(sort),
            check_sort,
        ),
        plain(
            "median",
            "median(xs: list<number>) -> decimal",
            "中位数 (median)；偶数项时取中间两项的平均值；空列表是错误",
            (1, 1),
            check_median,
            median,
        ),
        plain(
            "lower_median",
            "lower_median(xs: list<number>) -> decimal",
            "较低中位数 (lower median)：排序后的中间一项，偶数项时取中间两项中较小的；空列表是错误",
            (1, 1),
            check_median,
            |a| middle(a, true),
        ),
        plain(
            "upper_median",
            "upper_median(xs: list<number>) -> decimal",
            "较高中位数 (upper median)：偶数项时取中间两项中较大的；空列表是错误",
            (1, 1),
            check_median,
            |a| middle(a, false),
        ),
        // ---- dates ----------------------------------------------------------
        plain(
            "date",
            "date(s: string) -> date",
            "由 \"YYYY-MM-DD\" 得到日期 (date)",
            (1, 1),
            check_date_ctor,
            date,
        ),
        plain(
            "datetime",
            "datetime(s: string) -> datetime",
            "由 RFC 3339 字符串得到时刻 (datetime)，如 \"2026-03-02T09:00:00+08:00\"",
            (1, 1),
            check_datetime_ctor,
            datetime,
        ),
        plain(
            "date_of",
            "date_of(t: datetime | date) -> date",
            "时刻所在的当地日期，如 date_of(now)",
            (1, 1),
            check_to_date,
            date_of,
        ),
        plain(
            "add_days",
            "add_days(d: date | datetime, n: int) -> same",
            "加 n 个自然日（n 可为负）；工作日请用期限写法 5wd",
            (2, 2),
            check_shift,
            add_days,
        ),
        plain(
            "add_months",
            "add_months(d: date | datetime, n: int) -> same",
            "加 n 个月，落到月末之后取月末（1月31日 + 1 = 2月28/29日）",
            (2, 2),
            check_shift,
            add_months,
        ),
        plain(
            "first_day_of_next_month",
            "first_day_of_next_month(d: date | datetime) -> date",
            "下个月的第一天，如次月起发放",
            (1, 1),
            check_to_date,
            first_day_of_next_month,
        ),
        plain(
            "year",
            "year(d: date | datetime) -> int",
            "年份 (year)",
            (1, 1),
            check_date_part,
            |a| date_part(a, |d| i64::from(d.year())),
        ),
        plain(
            "month",
            "month(d: date | datetime) -> int",
            "月份 1–12 (month)",
            (1, 1),
            check_date_part,
            |a| date_part(a, |d| i64::from(d.month())),
        ),
        plain(
            "day",
            "day(d: date | datetime) -> int",
            "日 1–31 (day of month)",
            (1, 1),
            check_date_part,
            |a| date_part(a, |d| i64::from(d.day())),
        ),
        plain(
            "age",
            "age(birth_date: date, as_of: date | datetime) -> int",
            "周岁 (age)：到 as_of 已满的整年数；2月29日生日在平年按3月1日算",
            (2, 2),
            check_two_dates,
            age,
        ),
        plain(
            "birthday",
            "birthday(birth_date: date, years: int) -> date",
            "满 years 周岁的那一天（与 age 同一算法），如 18 周岁复核",
            (2, 2),
            check_birthday,
            birthday,
        ),
        plain(
            "days_between",
            "days_between(from: date, to: date) -> int",
            "两日期相差的自然日数 to − from",
            (2, 2),
            check_two_dates,
            days_between,
        ),
        // ---- values ---------------------------------------------------------
        plain(
            "string",
            "string(x) -> string",
            "转为字符串 (string)；null 为空串",
            (1, 1),
            |_| Ok(Type::String),
            string,
        ),
        plain(
            "is_null",
            "is_null(x) -> bool",
            "是否为空值 (null)",
            (1, 1),
            |_| Ok(Type::Bool),
            |a| Ok(Value::Bool(matches!(a[0], Value::Null))),
        ),
        plain(
            "coalesce",
            "coalesce(a, b) -> a | b",
            "a 不为空时取 a，否则取 b，如 coalesce(form.reason, '')",
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
        plain(
            "with",
            "with(object, field: string, value) -> object",
            "复制对象并设置一个字段，如 map(h.members, m => with(m, 'adl_not_met', 2))",
            (3, 3),
            check_with,
            with_field,
        ),
        plain(
            "stable_percent",
            "stable_percent(key: string) -> int",
            "由键得到固定的 0–99（各机器、各版本相同），用于抽查，如 stable_percent(instance_id) < 30",
            (1, 1),
            check_stable_percent,
            stable_percent,
        ),
        // ---- assessment helpers ---------------------------------------------
        plain(
            "all_unable_to_work",
            "all_unable_to_work(household: object, as_of: date, severe_includes_grade3_intellectual_mental?: bool) -> bool",
            "家庭成员是否全部无劳动能力（≥ 60 岁、< 18 岁或重度残疾），年度复核用",
            (2, 3),
            check_all_unable_to_work,
            all_unable_to_work,
        ),
    ]
}
