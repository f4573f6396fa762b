//! Working-day calendars: which local dates are working days, and on which day
//! and hour a deadline written in working days falls.
//!
//! # The rule
//!
//! A calendar has a fixed UTC offset (China: `+08:00`), a working day from
//! `workday_start` to `workday_end` (default 08:30–17:30), a set of `holidays`
//! and a set of `workdays` (调休: weekend days worked in exchange for a
//! holiday). A **working day** is a Monday–Friday that is not a holiday, or
//! any day listed in `workdays`.
//!
//! Every question about dates is asked about the *local* date of an instant in
//! the calendar's offset, so 2026-09-30T23:00Z is already 1 October in China.
//!
//! - `N` working days from instant `t` (`Nwd`, N ≥ 1) end at `workday_end` of
//!   the N-th working day *after* the local date of `t`. The time of day of `t`
//!   does not matter: a case received at 08:00 or at 23:00 on a Monday has the
//!   same "3 WD" deadline, Thursday 17:30. This keeps due dates checkable by
//!   hand, which the scenario files rely on.
//! - `0wd` from `t` ends at `workday_end` of the local date of `t` if that is a
//!   working day, else of the next working day (so "due today" on a Saturday
//!   means Monday evening). It may lie before `t` when `t` is after hours.
//! - Subtracting `N` working days (reminders "3 WD before the deadline") ends
//!   at `workday_end` of the N-th working day *before* the local date of `t`;
//!   subtracting 0 mirrors adding 0 (that day if working, else the previous
//!   working day).
//! - A calendar declares the years whose official schedule it lists
//!   (`covers: [2026]`). A date in another year is still counted (Monday to
//!   Friday are working days), but a due date whose count touched such a year
//!   is **provisional**: [`Calendar::is_provisional_between`] says so, the core
//!   marks the task, timer or deadline, and deploying a calendar that covers
//!   the year recomputes it. A calendar without `covers` vouches for every year.
//! - A scenario or deployment may override a calendar: each field the override
//!   names replaces the calendar's field wholesale (a `holidays` list replaces
//!   the holidays, it is not appended).
//!
//! Every search over days is bounded: a gap of [`MAX_SEARCH_DAYS`] consecutive
//! non-working days is reported as [`CalendarError::NoWorkingDay`] instead of
//! looping, and leaving chrono's date range is [`CalendarError::OutOfRange`].
//! Between and beyond the listed holidays and workdays the arithmetic jumps
//! whole weeks, so the cost grows with the listed dates crossed, not with `N`.
//!
//! The module is split by concern: [`load`](self) reads calendar files (YAML →
//! [`Calendar`], errors with positions) and `workdays` does the pure
//! working-day arithmetic.

mod load;
#[cfg(test)]
mod tests;
mod workdays;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;

use chrono::{Datelike, FixedOffset, NaiveDate, NaiveTime, Weekday};
use serde::Deserialize;
use serde_saphyr::Location;

/// How many consecutive non-working days a search crosses before it gives up.
/// Ten years: far more than any real holiday, small enough to answer at once.
pub const MAX_SEARCH_DAYS: u32 = 3660;

/// China Standard Time; no daylight saving, so a fixed offset is exact.
const CHINA_OFFSET: FixedOffset = match FixedOffset::east_opt(8 * 3600) {
    Some(offset) => offset,
    None => panic!("+08:00 is a valid offset"),
};
const DEFAULT_WORKDAY_START: NaiveTime = match NaiveTime::from_hms_opt(8, 30, 0) {
    Some(time) => time,
    None => panic!("08:30 is a valid time"),
};
const DEFAULT_WORKDAY_END: NaiveTime = match NaiveTime::from_hms_opt(17, 30, 0) {
    Some(time) => time,
    None => panic!("17:30 is a valid time"),
};

/// A working-day calendar. Invariants (kept by every constructor): no date is
/// both a holiday and a workday, every workday is a Saturday or Sunday, and
/// `workday_start < workday_end`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Calendar {
    id: String,
    name: String,
    utc_offset: FixedOffset,
    workday_start: NaiveTime,
    workday_end: NaiveTime,
    holidays: BTreeSet<NaiveDate>,
    workdays: BTreeSet<NaiveDate>,
    /// The years whose official schedule the calendar lists; `None`: every year.
    covers: Option<BTreeSet<i32>>,
}

/// Which way a search over days runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SearchDirection {
    Forward,
    Backward,
}

impl fmt::Display for SearchDirection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SearchDirection::Forward => "after",
            SearchDirection::Backward => "before",
        })
    }
}

/// The two date lists of a calendar, named as in the YAML.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DateList {
    Holidays,
    Workdays,
}

impl fmt::Display for DateList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DateList::Holidays => "holidays",
            DateList::Workdays => "workdays",
        })
    }
}

/// A place in a calendar file. `line` and `column` are 1-based; 0 means the
/// YAML parser could not tell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceLocation {
    pub file: String,
    pub line: u64,
    pub column: u64,
}

impl SourceLocation {
    fn new(file: &str, location: Location) -> Self {
        SourceLocation {
            file: file.to_owned(),
            line: location.line(),
            column: location.column(),
        }
    }
}

impl fmt::Display for SourceLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.file)
        } else {
            write!(f, "{}:{}:{}", self.file, self.line, self.column)
        }
    }
}

/// Something wrong with the content of a calendar (its file or an override).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CalendarProblem {
    #[error("{date} is listed both as a holiday and as a workday")]
    HolidayAndWorkday { date: NaiveDate },
    #[error("{date} is listed twice in `{list}`")]
    DuplicateDate { date: NaiveDate, list: DateList },
    #[error(
        "{date} is a {weekday}, already a working day: `workdays` lists only weekend days worked in exchange for a holiday (调休)"
    )]
    WorkdayNotOnWeekend { date: NaiveDate, weekday: Weekday },
    #[error(
        "workday_start {} must be before workday_end {}",
        start.format("%H:%M"),
        end.format("%H:%M")
    )]
    WorkdayStartNotBeforeEnd { start: NaiveTime, end: NaiveTime },
    #[error("calendar id must not be empty")]
    EmptyId,
    #[error("{date} is in {year}, which `covers` does not list")]
    DateOutsideCovers { date: NaiveDate, year: i32 },
    #[error("`covers` lists {year} twice")]
    DuplicateYear { year: i32 },
}

/// Errors of calendar loading and working-day arithmetic.
#[derive(Debug, thiserror::Error)]
pub enum CalendarError {
    /// The file is not valid YAML or does not have the calendar's shape;
    /// `message` is the parser's text without its location suffix.
    #[error("{location}: {message}")]
    Syntax {
        location: SourceLocation,
        message: String,
    },
    /// The file parses but breaks a calendar invariant.
    #[error("{location}: {problem}")]
    Invalid {
        location: SourceLocation,
        problem: CalendarProblem,
    },
    /// An override (e.g. a scenario's `calendar:`) breaks a calendar invariant.
    #[error("calendar `{calendar}` with override: {problem}")]
    InvalidOverride {
        calendar: String,
        problem: CalendarProblem,
    },
    #[error(
        "calendar `{calendar}`: no working day within {limit} days {direction} {from}; are the holidays listed right?"
    )]
    NoWorkingDay {
        calendar: String,
        from: NaiveDate,
        direction: SearchDirection,
        limit: u32,
    },
    #[error("calendar `{calendar}`: counting {direction} {from} leaves the supported date range")]
    OutOfRange {
        calendar: String,
        from: NaiveDate,
        direction: SearchDirection,
    },
    #[error("cannot read calendars from {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{second}: calendar id `{id}` is already defined in {first}")]
    DuplicateId {
        id: String,
        first: String,
        second: String,
    },
}

/// Fields that replace a calendar's own (a scenario's `calendar:` block, for
/// instance). Absent fields keep the calendar's value.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalendarOverride {
    #[serde(default, deserialize_with = "load::optional_dates")]
    pub holidays: Option<Vec<NaiveDate>>,
    #[serde(default, deserialize_with = "load::optional_dates")]
    pub workdays: Option<Vec<NaiveDate>>,
    #[serde(default, deserialize_with = "load::optional_time")]
    pub workday_start: Option<NaiveTime>,
    #[serde(default, deserialize_with = "load::optional_time")]
    pub workday_end: Option<NaiveTime>,
    #[serde(default, deserialize_with = "load::optional_offset")]
    pub utc_offset: Option<FixedOffset>,
    #[serde(default)]
    pub covers: Option<Vec<i32>>,
}

impl Calendar {
    /// A calendar with no holidays or workdays: Monday–Friday, 08:30–17:30,
    /// `+08:00`. Add dates with [`Calendar::merged`].
    pub fn new(id: impl Into<String>, name: impl Into<String>) -> Calendar {
        Calendar {
            id: id.into(),
            name: name.into(),
            utc_offset: CHINA_OFFSET,
            workday_start: DEFAULT_WORKDAY_START,
            workday_end: DEFAULT_WORKDAY_END,
            holidays: BTreeSet::new(),
            workdays: BTreeSet::new(),
            covers: None,
        }
    }

    /// The national statutory calendar (`processes/calendars/cn.yaml`),
    /// embedded at build time.
    pub fn china_national() -> Calendar {
        load::CHINA_NATIONAL.clone()
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn utc_offset(&self) -> FixedOffset {
        self.utc_offset
    }

    pub fn workday_start(&self) -> NaiveTime {
        self.workday_start
    }

    pub fn workday_end(&self) -> NaiveTime {
        self.workday_end
    }

    pub fn holidays(&self) -> &BTreeSet<NaiveDate> {
        &self.holidays
    }

    pub fn workdays(&self) -> &BTreeSet<NaiveDate> {
        &self.workdays
    }

    /// The years the calendar declares it covers; `None` when it declares none
    /// (then it vouches for every year).
    pub fn covers(&self) -> Option<&BTreeSet<i32>> {
        self.covers.as_ref()
    }

    /// Whether the official schedule of `year` is in the calendar.
    pub fn covers_year(&self, year: i32) -> bool {
        self.covers
            .as_ref()
            .is_none_or(|years| years.contains(&year))
    }

    /// Whether a count of working days from `from` to `to` (either order)
    /// crossed a year the calendar does not cover: its result is provisional.
    pub fn is_provisional_between(&self, from: NaiveDate, to: NaiveDate) -> bool {
        let (low, high) = if from <= to { (from, to) } else { (to, from) };
        (low.year()..=high.year()).any(|year| !self.covers_year(year))
    }

    /// The last day of the last covered year (`None` without `covers`, or
    /// with an empty list).
    pub fn coverage_end(&self) -> Option<NaiveDate> {
        let last = *self.covers.as_ref()?.last()?;
        NaiveDate::from_ymd_opt(last, 12, 31)
    }
}

/// All calendars of a deployment, by id.
#[derive(Clone, Debug, Default)]
pub struct CalendarSet {
    calendars: BTreeMap<String, Calendar>,
}

impl CalendarSet {
    /// Adds or replaces a calendar (e.g. the embedded national one when the
    /// deployment ships no `cn.yaml`); returns the one it replaced.
    pub fn insert(&mut self, calendar: Calendar) -> Option<Calendar> {
        self.calendars.insert(calendar.id().to_owned(), calendar)
    }

    pub fn get(&self, id: &str) -> Option<&Calendar> {
        self.calendars.get(id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Calendar> {
        self.calendars.values()
    }

    pub fn len(&self) -> usize {
        self.calendars.len()
    }

    pub fn is_empty(&self) -> bool {
        self.calendars.is_empty()
    }
}
