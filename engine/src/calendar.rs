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
//! - A scenario or deployment may override a calendar: each field the override
//!   names replaces the calendar's field wholesale (a `holidays` list replaces
//!   the holidays, it is not appended).
//!
//! Every search over days is bounded: a gap of [`MAX_SEARCH_DAYS`] consecutive
//! non-working days is reported as [`CalendarError::NoWorkingDay`] instead of
//! looping, and leaving chrono's date range is [`CalendarError::OutOfRange`].
//! Between and beyond the listed holidays and workdays the arithmetic jumps
//! whole weeks, so the cost grows with the listed dates crossed, not with `N`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Bound::{Excluded, Unbounded};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use chrono::{DateTime, Datelike, Days, FixedOffset, NaiveDate, NaiveTime, TimeZone, Weekday};
use serde::{Deserialize, Deserializer};
use serde_saphyr::{Localizer, Location, MessageFormatter, Spanned};

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

/// The national calendar shipped with the product, embedded so the binary
/// works from any directory.
const CHINA_NATIONAL_YAML: &str = include_str!("../../processes/calendars/cn.yaml");
const CHINA_NATIONAL_FILE: &str = "processes/calendars/cn.yaml";

static CHINA_NATIONAL: LazyLock<Calendar> = LazyLock::new(|| {
    // The embedded file is part of the source tree, not user input; the test
    // `china_national_calendar_loads` keeps it valid.
    Calendar::from_yaml(CHINA_NATIONAL_YAML, CHINA_NATIONAL_FILE)
        .unwrap_or_else(|error| panic!("embedded national calendar is invalid: {error}"))
});

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
}

/// Errors of calendar loading and working-day arithmetic.
#[derive(Debug, thiserror::Error)]
pub enum CalendarError {
    /// The file is not valid YAML or does not have the calendar's shape. The
    /// parser's error is kept whole (`yaml`) so a caller can render it with a
    /// source snippet; `message` is its text without the location suffix. It
    /// is deliberately not a `#[source]`: its text is already in ours.
    #[error("{location}: {message}")]
    Syntax {
        location: SourceLocation,
        message: String,
        yaml: Box<serde_saphyr::Error>,
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
    #[serde(default, deserialize_with = "optional_dates")]
    pub holidays: Option<Vec<NaiveDate>>,
    #[serde(default, deserialize_with = "optional_dates")]
    pub workdays: Option<Vec<NaiveDate>>,
    #[serde(default, deserialize_with = "optional_time")]
    pub workday_start: Option<NaiveTime>,
    #[serde(default, deserialize_with = "optional_time")]
    pub workday_end: Option<NaiveTime>,
    #[serde(default, deserialize_with = "optional_offset")]
    pub utc_offset: Option<FixedOffset>,
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
        }
    }

    /// The national statutory calendar (`processes/calendars/cn.yaml`),
    /// embedded at build time.
    pub fn china_national() -> Calendar {
        CHINA_NATIONAL.clone()
    }

    /// Parses a calendar file. `file_name` only labels error locations
    /// (`file:line:column: message`).
    pub fn from_yaml(source: &str, file_name: &str) -> Result<Calendar, CalendarError> {
        let file: CalendarFile =
            serde_saphyr::from_str(source).map_err(|error| syntax_error(file_name, error))?;
        let invalid = |location: Location, problem: CalendarProblem| CalendarError::Invalid {
            location: SourceLocation::new(file_name, location),
            problem,
        };

        if file.id.value.trim().is_empty() {
            return Err(invalid(file.id.referenced, CalendarProblem::EmptyId));
        }
        let holidays = file
            .holidays
            .iter()
            .map(|date| (date.value.0, date.referenced));
        let workdays = file
            .workdays
            .iter()
            .map(|date| (date.value.0, date.referenced));
        let (holidays, workdays) =
            checked_date_sets(holidays, workdays).map_err(|(problem, at)| invalid(at, problem))?;

        let workday_start = file
            .workday_start
            .as_ref()
            .map_or(DEFAULT_WORKDAY_START, |time| time.value.0);
        let workday_end = file
            .workday_end
            .as_ref()
            .map_or(DEFAULT_WORKDAY_END, |time| time.value.0);
        if workday_start >= workday_end {
            // Point at whichever of the two the file wrote (the end if both).
            let at = file
                .workday_end
                .as_ref()
                .or(file.workday_start.as_ref())
                .map_or(file.id.referenced, |time| time.referenced);
            return Err(invalid(
                at,
                CalendarProblem::WorkdayStartNotBeforeEnd {
                    start: workday_start,
                    end: workday_end,
                },
            ));
        }

        Ok(Calendar {
            id: file.id.value,
            name: file.name,
            utc_offset: file.utc_offset.map_or(CHINA_OFFSET, |offset| offset.0),
            workday_start,
            workday_end,
            holidays,
            workdays,
        })
    }

    /// This calendar with the fields `replacement` names replaced; the result
    /// is checked like a calendar file.
    pub fn merged(&self, replacement: &CalendarOverride) -> Result<Calendar, CalendarError> {
        let invalid = |problem| CalendarError::InvalidOverride {
            calendar: self.id.clone(),
            problem,
        };
        let holiday_dates: Vec<NaiveDate> = match &replacement.holidays {
            Some(dates) => dates.clone(),
            None => self.holidays.iter().copied().collect(),
        };
        let workday_dates: Vec<NaiveDate> = match &replacement.workdays {
            Some(dates) => dates.clone(),
            None => self.workdays.iter().copied().collect(),
        };
        let (holidays, workdays) = checked_date_sets(
            holiday_dates.into_iter().map(|date| (date, ())),
            workday_dates.into_iter().map(|date| (date, ())),
        )
        .map_err(|(problem, ())| invalid(problem))?;

        let workday_start = replacement.workday_start.unwrap_or(self.workday_start);
        let workday_end = replacement.workday_end.unwrap_or(self.workday_end);
        if workday_start >= workday_end {
            return Err(invalid(CalendarProblem::WorkdayStartNotBeforeEnd {
                start: workday_start,
                end: workday_end,
            }));
        }
        Ok(Calendar {
            id: self.id.clone(),
            name: self.name.clone(),
            utc_offset: replacement.utc_offset.unwrap_or(self.utc_offset),
            workday_start,
            workday_end,
            holidays,
            workdays,
        })
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

    /// Monday–Friday and not a holiday, or a listed workday (调休).
    pub fn is_working_day(&self, date: NaiveDate) -> bool {
        self.workdays.contains(&date) || (is_weekday(date) && !self.holidays.contains(&date))
    }

    /// The local date of an instant in this calendar's offset.
    pub fn local_date(&self, instant: DateTime<FixedOffset>) -> NaiveDate {
        instant.with_timezone(&self.utc_offset).date_naive()
    }

    /// `workday_end` of a local date, as an instant in the calendar's offset.
    pub fn end_of_working_day(
        &self,
        date: NaiveDate,
    ) -> Result<DateTime<FixedOffset>, CalendarError> {
        self.local_instant(date, self.workday_end)
    }

    /// `workday_start` of a local date, as an instant in the calendar's offset.
    pub fn start_of_working_day(
        &self,
        date: NaiveDate,
    ) -> Result<DateTime<FixedOffset>, CalendarError> {
        self.local_instant(date, self.workday_start)
    }

    /// The first working day strictly after `date`.
    pub fn next_working_day(&self, date: NaiveDate) -> Result<NaiveDate, CalendarError> {
        self.nth_working_day(date, 1, SearchDirection::Forward)
    }

    /// The last working day strictly before `date`.
    pub fn previous_working_day(&self, date: NaiveDate) -> Result<NaiveDate, CalendarError> {
        self.nth_working_day(date, 1, SearchDirection::Backward)
    }

    /// `workday_end` of the `n`-th working day after the local date of `t`;
    /// for `n = 0`, of that date if it is a working day, else of the next one.
    /// The result is in the calendar's offset.
    pub fn add_working_days(
        &self,
        t: DateTime<FixedOffset>,
        n: u32,
    ) -> Result<DateTime<FixedOffset>, CalendarError> {
        let date = self.local_date(t);
        let due = if n == 0 && self.is_working_day(date) {
            date
        } else {
            self.nth_working_day(date, n.max(1), SearchDirection::Forward)?
        };
        self.end_of_working_day(due)
    }

    /// `workday_end` of the `n`-th working day before the local date of `t`;
    /// for `n = 0`, of that date if it is a working day, else of the previous
    /// one. The result is in the calendar's offset.
    pub fn subtract_working_days(
        &self,
        t: DateTime<FixedOffset>,
        n: u32,
    ) -> Result<DateTime<FixedOffset>, CalendarError> {
        let date = self.local_date(t);
        let day = if n == 0 && self.is_working_day(date) {
            date
        } else {
            self.nth_working_day(date, n.max(1), SearchDirection::Backward)?
        };
        self.end_of_working_day(day)
    }

    /// The number of working days `d` with `from < d <= to`, negated when
    /// `to < from`. It is the inverse of [`Calendar::add_working_days`]: the
    /// due date of `n ≥ 1` working days from `from` is `n` working days away.
    pub fn working_days_between(&self, from: NaiveDate, to: NaiveDate) -> i64 {
        if from <= to {
            self.working_days_in(from, to)
        } else {
            -self.working_days_in(to, from)
        }
    }

    /// Working days in `(after, up_to]`, `after <= up_to`: whole weeks by
    /// arithmetic, then the listed dates in the range as corrections.
    fn working_days_in(&self, after: NaiveDate, up_to: NaiveDate) -> i64 {
        let range = (Excluded(after), std::ops::Bound::Included(up_to));
        let weekday_holidays = self
            .holidays
            .range(range)
            .filter(|date| is_weekday(**date))
            .count();
        let weekend_workdays = self
            .workdays
            .range(range)
            .filter(|date| !is_weekday(**date))
            .count();
        weekdays_in(after, up_to) - count_as_i64(weekday_holidays) + count_as_i64(weekend_workdays)
    }

    /// The `n`-th (n ≥ 1) working day strictly after/before `from`.
    ///
    /// Only the listed holidays and workdays need a look day by day; the
    /// plain stretches between them follow the Monday–Friday rule and are
    /// crossed by arithmetic, so the cost grows with the number of listed
    /// dates passed, not with `n` or with the distance to them.
    fn nth_working_day(
        &self,
        from: NaiveDate,
        n: u32,
        direction: SearchDirection,
    ) -> Result<NaiveDate, CalendarError> {
        let out_of_range = || CalendarError::OutOfRange {
            calendar: self.id.clone(),
            from,
            direction,
        };
        let mut date = from;
        let mut remaining = n;
        // Consecutive non-working days walked so far, and the day before them.
        let mut idle_days = 0u32;
        let mut gap_start = from;
        while remaining > 0 {
            let Some(listed) = self.next_listed_date(date, direction) else {
                // Past the last listed date only weekends are off.
                return nth_weekday(date, remaining, direction).ok_or_else(out_of_range);
            };
            let distance = (listed - date).num_days().abs();
            if distance > 7 {
                // Jump to a week before the listed date: everything up to
                // there is plain.
                let week = Days::new(7);
                let target = match direction {
                    SearchDirection::Forward => listed.checked_sub_days(week),
                    SearchDirection::Backward => listed.checked_add_days(week),
                }
                .ok_or_else(out_of_range)?;
                let plain = match direction {
                    SearchDirection::Forward => weekdays_in(date, target),
                    // [target, date) = (target - 1, date - 1]
                    SearchDirection::Backward => {
                        weekdays_in(target, date) + i64::from(is_weekday(target))
                            - i64::from(is_weekday(date))
                    }
                };
                if plain >= i64::from(remaining) {
                    return nth_weekday(date, remaining, direction).ok_or_else(out_of_range);
                }
                // 0 <= plain < remaining, so it fits; never an error in fact.
                remaining -= u32::try_from(plain).map_err(|_| out_of_range())?;
                if plain > 0 {
                    // The stretch held working days, so an idle run ended in
                    // it (a weekend day or two at its end are not counted,
                    // but the six plain days after `target` hold a weekday
                    // that ends the run again long before the limit).
                    idle_days = 0;
                    gap_start = target;
                } else {
                    // Only a weekend day or two: still idle.
                    idle_days += u32::try_from(distance - 7).unwrap_or(MAX_SEARCH_DAYS);
                }
                date = target;
            } else {
                date = step(date, direction).ok_or_else(out_of_range)?;
                if self.is_working_day(date) {
                    remaining -= 1;
                    idle_days = 0;
                    gap_start = date;
                } else {
                    idle_days += 1;
                }
            }
            if idle_days >= MAX_SEARCH_DAYS {
                return Err(CalendarError::NoWorkingDay {
                    calendar: self.id.clone(),
                    from: gap_start,
                    direction,
                    limit: MAX_SEARCH_DAYS,
                });
            }
        }
        Ok(date)
    }

    /// The nearest holiday or workday strictly beyond `date`.
    fn next_listed_date(&self, date: NaiveDate, direction: SearchDirection) -> Option<NaiveDate> {
        match direction {
            SearchDirection::Forward => {
                let beyond = (Excluded(date), Unbounded);
                let holiday = self.holidays.range(beyond).next();
                let workday = self.workdays.range(beyond).next();
                holiday.into_iter().chain(workday).min().copied()
            }
            SearchDirection::Backward => {
                let holiday = self.holidays.range(..date).next_back();
                let workday = self.workdays.range(..date).next_back();
                holiday.into_iter().chain(workday).max().copied()
            }
        }
    }

    fn local_instant(
        &self,
        date: NaiveDate,
        time: NaiveTime,
    ) -> Result<DateTime<FixedOffset>, CalendarError> {
        // A fixed offset maps every local time to exactly one instant; `single`
        // is `None` only at the very ends of chrono's range.
        self.utc_offset
            .from_local_datetime(&date.and_time(time))
            .single()
            .ok_or_else(|| CalendarError::OutOfRange {
                calendar: self.id.clone(),
                from: date,
                direction: SearchDirection::Forward,
            })
    }
}

/// All calendars of a deployment, by id.
#[derive(Clone, Debug, Default)]
pub struct CalendarSet {
    calendars: BTreeMap<String, Calendar>,
}

impl CalendarSet {
    /// Loads every `*.yaml` / `*.yml` file of `dir` (not its subfolders), in
    /// file-name order so errors are reported deterministically.
    pub fn load_dir(dir: &Path) -> Result<CalendarSet, CalendarError> {
        let io_error = |source| CalendarError::Io {
            path: dir.to_path_buf(),
            source,
        };
        let mut paths = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io_error)? {
            let path = entry.map_err(io_error)?.path();
            let is_yaml = path
                .extension()
                .and_then(|extension| extension.to_str())
                .is_some_and(|extension| extension == "yaml" || extension == "yml");
            if is_yaml && path.is_file() {
                paths.push(path);
            }
        }
        paths.sort();

        let mut set = CalendarSet::default();
        let mut origins: BTreeMap<String, String> = BTreeMap::new();
        for path in paths {
            let source = std::fs::read_to_string(&path).map_err(|source| CalendarError::Io {
                path: path.clone(),
                source,
            })?;
            let file_name = path.display().to_string();
            let calendar = Calendar::from_yaml(&source, &file_name)?;
            if let Some(first) = origins.get(calendar.id()) {
                return Err(CalendarError::DuplicateId {
                    id: calendar.id().to_owned(),
                    first: first.clone(),
                    second: file_name,
                });
            }
            origins.insert(calendar.id().to_owned(), file_name);
            set.calendars.insert(calendar.id().to_owned(), calendar);
        }
        Ok(set)
    }

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

/// The YAML shape of a calendar file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CalendarFile {
    id: Spanned<String>,
    name: String,
    utc_offset: Option<OffsetText>,
    workday_start: Option<Spanned<TimeText>>,
    workday_end: Option<Spanned<TimeText>>,
    #[serde(default)]
    holidays: Vec<Spanned<DateText>>,
    #[serde(default)]
    workdays: Vec<Spanned<DateText>>,
}

/// A `YYYY-MM-DD` date; a newtype so the error message says what is expected.
struct DateText(NaiveDate);

impl<'de> Deserialize<'de> for DateText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_date(&text).map(DateText).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "bad date {text:?}: expected a real date written YYYY-MM-DD"
            ))
        })
    }
}

/// A local `HH:MM` time of day.
struct TimeText(NaiveTime);

impl<'de> Deserialize<'de> for TimeText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        NaiveTime::parse_from_str(&text, "%H:%M")
            .ok()
            .filter(|_| text.len() == 5)
            .map(TimeText)
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "bad time {text:?}: expected HH:MM, e.g. \"17:30\""
                ))
            })
    }
}

/// A `+HH:MM` / `-HH:MM` UTC offset.
struct OffsetText(FixedOffset);

impl<'de> Deserialize<'de> for OffsetText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_offset(&text).map(OffsetText).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "bad UTC offset {text:?}: expected +HH:MM, e.g. \"+08:00\""
            ))
        })
    }
}

fn optional_dates<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Vec<NaiveDate>>, D::Error> {
    let dates = Vec::<DateText>::deserialize(deserializer)?;
    Ok(Some(dates.into_iter().map(|date| date.0).collect()))
}

fn optional_time<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<NaiveTime>, D::Error> {
    TimeText::deserialize(deserializer).map(|time| Some(time.0))
}

fn optional_offset<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<FixedOffset>, D::Error> {
    OffsetText::deserialize(deserializer).map(|offset| Some(offset.0))
}

/// Strict `YYYY-MM-DD`: chrono alone would also take `2026-1-1`.
fn parse_date(text: &str) -> Option<NaiveDate> {
    let bytes = text.as_bytes();
    let shaped = bytes.len() == 10
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes
            .iter()
            .enumerate()
            .all(|(index, byte)| index == 4 || index == 7 || byte.is_ascii_digit());
    if !shaped {
        return None;
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
}

fn parse_offset(text: &str) -> Option<FixedOffset> {
    let &[sign, hour_tens, hour_units, b':', minute_tens, minute_units] = text.as_bytes() else {
        return None;
    };
    let sign = match sign {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digit = |byte: u8| byte.is_ascii_digit().then(|| i32::from(byte - b'0'));
    let hours = digit(hour_tens)? * 10 + digit(hour_units)?;
    let minutes = digit(minute_tens)? * 10 + digit(minute_units)?;
    if hours > 23 || minutes > 59 {
        return None;
    }
    FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60))
}

/// The holidays and the workdays of a calendar.
type DateSets = (BTreeSet<NaiveDate>, BTreeSet<NaiveDate>);

/// Builds the two date sets, refusing duplicates within a list, a date in
/// both lists, and workdays that are not weekend days. `L` is where a date
/// was written (a file location, or nothing for an override).
fn checked_date_sets<L>(
    holidays: impl IntoIterator<Item = (NaiveDate, L)>,
    workdays: impl IntoIterator<Item = (NaiveDate, L)>,
) -> Result<DateSets, (CalendarProblem, L)> {
    let mut holiday_set = BTreeSet::new();
    for (date, at) in holidays {
        if !holiday_set.insert(date) {
            let list = DateList::Holidays;
            return Err((CalendarProblem::DuplicateDate { date, list }, at));
        }
    }
    let mut workday_set = BTreeSet::new();
    for (date, at) in workdays {
        if !workday_set.insert(date) {
            let list = DateList::Workdays;
            return Err((CalendarProblem::DuplicateDate { date, list }, at));
        }
        if holiday_set.contains(&date) {
            return Err((CalendarProblem::HolidayAndWorkday { date }, at));
        }
        if is_weekday(date) {
            let weekday = date.weekday();
            return Err((CalendarProblem::WorkdayNotOnWeekend { date, weekday }, at));
        }
    }
    Ok((holiday_set, workday_set))
}

fn syntax_error(file_name: &str, error: serde_saphyr::Error) -> CalendarError {
    let location = SourceLocation::new(file_name, error.location().unwrap_or(Location::UNKNOWN));
    let message = error.render_with_options(serde_saphyr::render_options! {
        formatter: &BareMessage,
        snippets: serde_saphyr::SnippetMode::Off,
    });
    CalendarError::Syntax {
        location,
        message,
        yaml: Box::new(error),
    }
}

/// The parser's own wording without its "at line X, column Y" suffix: we put
/// the location first, as `file:line:column:`, like every other diagnostic.
struct BareMessage;

struct NoLocationSuffix;

impl Localizer for NoLocationSuffix {
    fn attach_location<'a>(
        &self,
        base: std::borrow::Cow<'a, str>,
        _location: Location,
    ) -> std::borrow::Cow<'a, str> {
        base
    }
}

impl MessageFormatter for BareMessage {
    fn localizer(&self) -> &dyn Localizer {
        &NoLocationSuffix
    }

    fn format_message<'a>(&self, error: &'a serde_saphyr::Error) -> std::borrow::Cow<'a, str> {
        serde_saphyr::UserMessageFormatter.format_message(error)
    }
}

fn is_weekday(date: NaiveDate) -> bool {
    date.weekday().num_days_from_monday() < 5
}

fn step(date: NaiveDate, direction: SearchDirection) -> Option<NaiveDate> {
    match direction {
        SearchDirection::Forward => date.succ_opt(),
        SearchDirection::Backward => date.pred_opt(),
    }
}

/// The `n`-th (n ≥ 1) Monday–Friday strictly after/before `from`, ignoring
/// holidays. Any 7 consecutive days hold exactly 5 weekdays, so whole weeks
/// are jumped and at most 5 further weekdays are walked.
fn nth_weekday(from: NaiveDate, n: u32, direction: SearchDirection) -> Option<NaiveDate> {
    let whole_weeks = (n - 1) / 5;
    let mut remaining = n - whole_weeks * 5;
    let jump = Days::new(u64::from(whole_weeks) * 7);
    let mut date = match direction {
        SearchDirection::Forward => from.checked_add_days(jump)?,
        SearchDirection::Backward => from.checked_sub_days(jump)?,
    };
    while remaining > 0 {
        date = step(date, direction)?;
        if is_weekday(date) {
            remaining -= 1;
        }
    }
    Some(date)
}

/// Monday–Friday dates in `(after, up_to]`, `after <= up_to`.
fn weekdays_in(after: NaiveDate, up_to: NaiveDate) -> i64 {
    let days = (up_to - after).num_days();
    let whole_weeks = days / 7;
    let start = i64::from(after.weekday().num_days_from_monday());
    let partial = (1..=days % 7)
        .filter(|offset| (start + offset) % 7 < 5)
        .count();
    whole_weeks * 5 + count_as_i64(partial)
}

/// Counts here are bounded by chrono's date range (~10^8 days).
fn count_as_i64(count: usize) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;
    use proptest::prelude::*;

    fn date(text: &str) -> NaiveDate {
        parse_date(text).unwrap_or_else(|| panic!("test date {text}"))
    }

    fn instant(text: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(text).unwrap_or_else(|error| panic!("{text}: {error}"))
    }

    fn cn() -> Calendar {
        Calendar::china_national()
    }

    #[test]
    fn errors_can_cross_threads() {
        // The binary wraps them in `anyhow`, which needs `Send + Sync`.
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<CalendarError>();
        assert_send_sync::<Calendar>();
    }

    #[test]
    fn china_national_calendar_loads() {
        let calendar = cn();
        assert_eq!(calendar.id(), "cn");
        assert_eq!(calendar.name(), "中华人民共和国法定节假日");
        assert_eq!(calendar.utc_offset(), CHINA_OFFSET);
        assert_eq!(calendar.workday_start(), DEFAULT_WORKDAY_START);
        assert_eq!(calendar.workday_end(), DEFAULT_WORKDAY_END);
        // 3 + 9 + 3 + 5 + 3 + 3 + 7 days off, 6 swapped working days.
        assert_eq!(calendar.holidays().len(), 33);
        assert_eq!(calendar.workdays().len(), 6);
        // The weekdays the State Council notice names, checked with chrono.
        let swapped = [
            ("2026-01-04", Weekday::Sun),
            ("2026-02-14", Weekday::Sat),
            ("2026-02-28", Weekday::Sat),
            ("2026-05-09", Weekday::Sat),
            ("2026-09-20", Weekday::Sun),
            ("2026-10-10", Weekday::Sat),
        ];
        for (day, weekday) in swapped {
            assert_eq!(date(day).weekday(), weekday, "{day}");
            assert!(calendar.workdays().contains(&date(day)), "{day}");
            assert!(calendar.is_working_day(date(day)), "{day}");
        }
        let festivals = [
            ("2026-01-01", "2026-01-03", Weekday::Thu),
            ("2026-02-15", "2026-02-23", Weekday::Sun),
            ("2026-04-04", "2026-04-06", Weekday::Sat),
            ("2026-05-01", "2026-05-05", Weekday::Fri),
            ("2026-06-19", "2026-06-21", Weekday::Fri),
            ("2026-09-25", "2026-09-27", Weekday::Fri),
            ("2026-10-01", "2026-10-07", Weekday::Thu),
        ];
        for (first, last, first_weekday) in festivals {
            assert_eq!(date(first).weekday(), first_weekday, "{first}");
            let mut day = date(first);
            while day <= date(last) {
                assert!(!calendar.is_working_day(day), "{day}");
                day = day.succ_opt().unwrap();
            }
        }
    }

    #[test]
    fn the_shipped_calendar_folder_loads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../processes/calendars");
        let set = CalendarSet::load_dir(&dir).unwrap();
        assert_eq!(set.get("cn"), Some(&cn()));
    }

    /// Runs a table of `FROM +N = DUE  why` (or `-N`) lines; `#` lines are
    /// comments. Instants are RFC 3339.
    fn check_working_day_table(calendar: &Calendar, table: &str) {
        let mut checked = 0;
        for line in table.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [from, count, "=", due, ref why @ ..] = fields[..] else {
                panic!("bad table line: {line}");
            };
            let why = why.join(" ");
            let (sign, n) = count.split_at(1);
            let n: u32 = n.parse().unwrap();
            let got = match sign {
                "+" => calendar.add_working_days(instant(from), n),
                "-" => calendar.subtract_working_days(instant(from), n),
                _ => panic!("bad count in: {line}"),
            }
            .unwrap();
            assert_eq!(got, instant(due), "{why}: {from} {count}wd");
            assert_eq!(got.offset(), &calendar.utc_offset(), "{line}");
            checked += 1;
        }
        assert!(checked > 0, "empty table");
    }

    #[test]
    fn add_working_days_table() {
        check_working_day_table(
            &cn(),
            "
            # National Day 2026. Working days after Mon 28 Sep: Tue 29 (1),
            # Wed 30 (2); 1–7 Oct off; Thu 8 (3), Fri 9 (4), Sat 10 调休 (5),
            # Mon 12–Fri 16 (6–10), Mon 19–Fri 23 (11–15), Mon 26–Fri 30 (16–20).
            2026-09-28T09:00:00+08:00 +20 = 2026-10-30T17:30:00+08:00  national day
            2026-09-28T09:00:00+08:00 +3  = 2026-10-08T17:30:00+08:00  29, 30, then 8 Oct
            2026-09-28T09:00:00+08:00 +5  = 2026-10-10T17:30:00+08:00  调休 Saturday counts
            2026-09-28T09:00:00+08:00 +6  = 2026-10-12T17:30:00+08:00  Sunday 11 Oct skipped
            2026-09-30T23:59:00+08:00 +1  = 2026-10-08T17:30:00+08:00  time of day is irrelevant
            2026-10-09T10:00:00+08:00 +1  = 2026-10-10T17:30:00+08:00  Fri → 调休 Sat
            # Weekends without holidays: Fri 6 Mar → Mon 9 Mar.
            2026-03-06T09:00:00+08:00 +1  = 2026-03-09T17:30:00+08:00  weekend skipped
            2026-03-07T09:00:00+08:00 +1  = 2026-03-09T17:30:00+08:00  from a Saturday
            2026-03-02T09:00:00+08:00 +10 = 2026-03-16T17:30:00+08:00  two plain weeks
            # 20:00Z on Thu 5 Mar is 04:00 on Fri 6 Mar in China.
            2026-03-05T20:00:00Z      +1  = 2026-03-09T17:30:00+08:00  local date, not UTC
            # New Year: 1–3 Jan off, Sun 4 Jan worked.
            2025-12-31T09:00:00+08:00 +1  = 2026-01-04T17:30:00+08:00  元旦 调休 Sunday
            # Spring Festival: Sat 14 Feb worked, 15–23 Feb off.
            2026-02-13T09:00:00+08:00 +1  = 2026-02-14T17:30:00+08:00  春节 调休 Saturday
            2026-02-13T09:00:00+08:00 +2  = 2026-02-24T17:30:00+08:00  春节 holidays
            # Labour Day: 1–5 May off; Wed 6 … Fri 8 and Sat 9 May worked.
            2026-04-30T09:00:00+08:00 +1  = 2026-05-06T17:30:00+08:00  劳动节
            2026-04-30T09:00:00+08:00 +4  = 2026-05-09T17:30:00+08:00  劳动节 调休 Saturday
            2026-04-03T09:00:00+08:00 +1  = 2026-04-07T17:30:00+08:00  清明
            # n = 0: that day if working (even after hours), else the next one.
            2026-03-09T08:00:00+08:00 +0  = 2026-03-09T17:30:00+08:00  0wd on a working day
            2026-03-09T20:00:00+08:00 +0  = 2026-03-09T17:30:00+08:00  0wd after hours
            2026-03-07T09:00:00+08:00 +0  = 2026-03-09T17:30:00+08:00  0wd on a Saturday
            2026-10-01T09:00:00+08:00 +0  = 2026-10-08T17:30:00+08:00  0wd on a holiday
            2026-10-10T09:00:00+08:00 +0  = 2026-10-10T17:30:00+08:00  0wd on 调休 Saturday
            # Past the listed years only weekends are off: 52 plain weeks.
            2027-03-01T09:00:00+08:00 +260 = 2028-02-28T17:30:00+08:00 a year of weeks
            # From far before the listed dates: whole weeks are jumped up to them.
            # 52 weeks after Mon 6 Jan 2025 is Mon 5 Jan 2026: 260 weekdays, less
            # Thu 1 and Fri 2 Jan off, plus Sun 4 Jan worked: 259; Tue 6 Jan is 260.
            2025-01-06T09:00:00+08:00 +260 = 2026-01-06T17:30:00+08:00 up to and over 元旦
            ",
        );
    }

    #[test]
    fn subtract_working_days_table() {
        check_working_day_table(
            &cn(),
            "
            # The national-day case backwards: 20 working days before Fri 30 Oct.
            2026-10-30T09:00:00+08:00 -20 = 2026-09-28T17:30:00+08:00  national day back
            # Remind 3 WD before a deadline on Mon 12 Oct: Sat 10, Fri 9, Thu 8.
            2026-10-12T17:30:00+08:00 -3  = 2026-10-08T17:30:00+08:00  调休 Saturday counts
            2026-10-08T17:30:00+08:00 -1  = 2026-09-30T17:30:00+08:00  holidays skipped
            2026-03-09T17:30:00+08:00 -1  = 2026-03-06T17:30:00+08:00  weekend skipped
            2026-10-11T12:00:00+08:00 -0  = 2026-10-10T17:30:00+08:00  0wd on a Sunday
            2026-10-04T12:00:00+08:00 -0  = 2026-09-30T17:30:00+08:00  0wd on a holiday
            2026-03-09T12:00:00+08:00 -0  = 2026-03-09T17:30:00+08:00  0wd on a working day
            2025-03-03T09:00:00+08:00 -5  = 2025-02-24T17:30:00+08:00  before the listed years
            # From far after the listed dates: whole weeks are jumped back to them.
            # 12 weeks before Fri 8 Jan 2027 is Fri 16 Oct 2026 (60 weekdays); then
            # Thu 15 (61), Wed 14, Tue 13, Mon 12 (64), Sat 10 Oct 调休 (65).
            2027-01-08T09:00:00+08:00 -60 = 2026-10-16T17:30:00+08:00  twelve plain weeks
            2027-01-08T09:00:00+08:00 -65 = 2026-10-10T17:30:00+08:00  back to 调休 Saturday
            ",
        );
    }

    #[test]
    fn next_previous_and_between() {
        let calendar = cn();
        assert_eq!(
            calendar.next_working_day(date("2026-09-30")).unwrap(),
            date("2026-10-08")
        );
        assert_eq!(
            calendar.next_working_day(date("2026-10-09")).unwrap(),
            date("2026-10-10")
        );
        assert_eq!(
            calendar.next_working_day(date("2026-03-06")).unwrap(),
            date("2026-03-09")
        );
        assert_eq!(
            calendar.previous_working_day(date("2026-10-08")).unwrap(),
            date("2026-09-30")
        );
        assert_eq!(
            calendar.previous_working_day(date("2026-10-12")).unwrap(),
            date("2026-10-10")
        );

        let cases = [
            ("2026-09-28", "2026-10-30", 20),
            ("2026-10-30", "2026-09-28", -20),
            ("2026-09-28", "2026-09-28", 0),
            ("2026-10-01", "2026-10-07", 0),
            ("2026-10-09", "2026-10-11", 1),
            ("2026-03-06", "2026-03-09", 1),
            ("2027-01-01", "2027-12-31", 260),
        ];
        for (from, to, expected) in cases {
            assert_eq!(
                calendar.working_days_between(date(from), date(to)),
                expected,
                "{from} → {to}"
            );
        }
    }

    #[test]
    fn an_override_replaces_the_fields_it_names() {
        // The scenario example: only the National Day holidays, 4 Oct (Sun)
        // left out, 10 Oct worked.
        let replacement: CalendarOverride = serde_saphyr::from_str(
            "holidays: [2026-10-01, 2026-10-02, 2026-10-03, 2026-10-05, 2026-10-06, 2026-10-07]\n\
             workdays: [2026-10-10]\n\
             workday_end: \"17:00\"\n",
        )
        .unwrap();
        let calendar = cn().merged(&replacement).unwrap();
        assert_eq!(calendar.id(), "cn");
        assert_eq!(calendar.holidays().len(), 6);
        assert!(
            calendar.is_working_day(date("2026-02-16")),
            "cn's Spring Festival is replaced"
        );
        assert!(
            !calendar.is_working_day(date("2026-09-20")),
            "cn's workdays are replaced"
        );
        assert_eq!(
            calendar.workday_start(),
            DEFAULT_WORKDAY_START,
            "not named: kept"
        );
        let due = calendar
            .add_working_days(instant("2026-09-30T09:00:00+08:00"), 1)
            .unwrap();
        assert_eq!(due, instant("2026-10-08T17:00:00+08:00"));

        let unchanged = cn().merged(&CalendarOverride::default()).unwrap();
        assert_eq!(unchanged, cn());

        let offset_only: CalendarOverride =
            serde_saphyr::from_str("utc_offset: \"+00:00\"\n").unwrap();
        let utc = Calendar::new("utc", "UTC").merged(&offset_only).unwrap();
        assert_eq!(
            utc.add_working_days(instant("2026-03-05T20:00:00Z"), 1)
                .unwrap(),
            instant("2026-03-06T17:30:00Z")
        );
    }

    #[test]
    fn invalid_overrides_are_refused() {
        let cases = [
            (
                "workdays: [2026-10-01]\n",
                "calendar `cn` with override: 2026-10-01 is listed both as a holiday and as a workday",
            ),
            (
                "holidays: [2026-03-02, 2026-03-02]\n",
                "calendar `cn` with override: 2026-03-02 is listed twice in `holidays`",
            ),
            (
                "workdays: [2026-03-02]\n",
                "calendar `cn` with override: 2026-03-02 is a Mon, already a working day: `workdays` lists only weekend days worked in exchange for a holiday (调休)",
            ),
            (
                "workday_start: \"18:00\"\n",
                "calendar `cn` with override: workday_start 18:00 must be before workday_end 17:30",
            ),
        ];
        for (yaml, expected) in cases {
            let replacement: CalendarOverride = serde_saphyr::from_str(yaml).unwrap();
            let error = cn().merged(&replacement).unwrap_err();
            assert_eq!(error.to_string(), expected, "{yaml}");
        }
        let unknown = serde_saphyr::from_str::<CalendarOverride>("holiday: [2026-10-01]\n");
        assert!(unknown.is_err(), "a misspelt field is refused");
    }

    #[test]
    fn calendar_file_errors_name_file_line_and_column() {
        let header = "id: test\nname: Test\n";
        let cases = [
            ("unknown field", format!("{header}holiday: [2026-10-01]\n")),
            ("duplicate key", format!("{header}name: Again\n")),
            ("missing name", "id: test\n".to_owned()),
            (
                "impossible date",
                format!("{header}holidays:\n  - 2026-02-30\n"),
            ),
            ("sloppy date", format!("{header}holidays: [2026-2-3]\n")),
            ("not a date", format!("{header}holidays: [next monday]\n")),
            (
                "holiday and workday",
                format!("{header}holidays: [2026-10-10]\nworkdays:\n  - 2026-10-10\n"),
            ),
            (
                "duplicate holiday",
                format!("{header}holidays:\n  - 2026-10-01\n  - 2026-10-01\n"),
            ),
            (
                "workday on a weekday",
                format!("{header}workdays: [2026-10-09]\n"),
            ),
            ("bad time", format!("{header}workday_end: \"5:30pm\"\n")),
            (
                "start after end",
                format!("{header}workday_start: \"09:00\"\nworkday_end: \"08:00\"\n"),
            ),
            ("bad offset", format!("{header}utc_offset: \"+8\"\n")),
            (
                "offset minutes",
                format!("{header}utc_offset: \"+08:60\"\n"),
            ),
            ("offset sign", format!("{header}utc_offset: \"08:00\"\n")),
            ("empty id", "id: \"\"\nname: Test\n".to_owned()),
            ("not yaml", format!("{header}holidays: [2026-10-01\n")),
        ];
        let mut report = String::new();
        for (why, yaml) in cases {
            let error = Calendar::from_yaml(&yaml, "test.yaml").unwrap_err();
            report.push_str(&format!("{why}: {error}\n"));
        }
        expect![[r#"
            unknown field: test.yaml:3:1: unknown field `holiday`, expected one of id, name, utc_offset, workday_start, workday_end, holidays, workdays
            duplicate key: test.yaml:3:1: duplicate mapping key `name` is not allowed here
            missing name: test.yaml:1:1: missing field `name`
            impossible date: test.yaml:4:5: bad date "2026-02-30": expected a real date written YYYY-MM-DD
            sloppy date: test.yaml:3:12: bad date "2026-2-3": expected a real date written YYYY-MM-DD
            not a date: test.yaml:3:12: bad date "next monday": expected a real date written YYYY-MM-DD
            holiday and workday: test.yaml:5:5: 2026-10-10 is listed both as a holiday and as a workday
            duplicate holiday: test.yaml:5:5: 2026-10-01 is listed twice in `holidays`
            workday on a weekday: test.yaml:3:12: 2026-10-09 is a Fri, already a working day: `workdays` lists only weekend days worked in exchange for a holiday (调休)
            bad time: test.yaml:3:14: bad time "5:30pm": expected HH:MM, e.g. "17:30"
            start after end: test.yaml:4:14: workday_start 09:00 must be before workday_end 08:00
            bad offset: test.yaml:3:13: bad UTC offset "+8": expected +HH:MM, e.g. "+08:00"
            offset minutes: test.yaml:3:13: bad UTC offset "+08:60": expected +HH:MM, e.g. "+08:00"
            offset sign: test.yaml:3:13: bad UTC offset "08:00": expected +HH:MM, e.g. "+08:00"
            empty id: test.yaml:1:5: calendar id must not be empty
            not yaml: test.yaml:3:11: unclosed bracket '['
        "#]].assert_eq(&report);
    }

    #[test]
    fn unquoted_times_and_offsets_are_read_as_written() {
        let calendar = Calendar::from_yaml(
            "id: x\nname: X\nutc_offset: +07:00\nworkday_start: 09:00\nworkday_end: 18:00\n",
            "x.yaml",
        )
        .unwrap();
        assert_eq!(
            calendar.utc_offset(),
            FixedOffset::east_opt(7 * 3600).unwrap()
        );
        assert_eq!(
            calendar.workday_start(),
            NaiveTime::from_hms_opt(9, 0, 0).unwrap()
        );
        assert_eq!(
            calendar.workday_end(),
            NaiveTime::from_hms_opt(18, 0, 0).unwrap()
        );
        assert!(calendar.holidays().is_empty());
    }

    #[test]
    fn load_dir_keys_by_id_and_refuses_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.yaml"),
            "id: a\nname: A\nholidays: [2026-03-02]\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("b.yml"), "id: b\nname: B\n").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not a calendar").unwrap();
        let set = CalendarSet::load_dir(dir.path()).unwrap();
        assert_eq!(set.len(), 2);
        assert!(!set.get("a").unwrap().is_working_day(date("2026-03-02")));
        assert!(set.get("b").unwrap().is_working_day(date("2026-03-02")));

        std::fs::write(dir.path().join("c.yaml"), "id: a\nname: Another A\n").unwrap();
        let error = CalendarSet::load_dir(dir.path()).unwrap_err();
        let a = dir.path().join("a.yaml").display().to_string();
        let c = dir.path().join("c.yaml").display().to_string();
        assert_eq!(
            error.to_string(),
            format!("{c}: calendar id `a` is already defined in {a}")
        );

        std::fs::write(
            dir.path().join("c.yaml"),
            "id: c\nname: C\nworkdays: [2026-03-02]\n",
        )
        .unwrap();
        let error = CalendarSet::load_dir(dir.path()).unwrap_err();
        assert!(error.to_string().starts_with(&format!("{c}:3:")), "{error}");

        let missing = CalendarSet::load_dir(&dir.path().join("missing")).unwrap_err();
        assert!(matches!(missing, CalendarError::Io { .. }), "{missing}");
    }

    /// A calendar whose every day for eleven years is a holiday: the search
    /// must stop with an error, not loop.
    #[test]
    fn a_calendar_without_working_days_is_an_error_not_a_hang() {
        let first = date("2026-01-01");
        let holidays: Vec<NaiveDate> = first.iter_days().take(11 * 366).collect();
        let replacement = CalendarOverride {
            holidays: Some(holidays),
            ..CalendarOverride::default()
        };
        let closed = Calendar::new("closed", "Closed")
            .merged(&replacement)
            .unwrap();
        let start = instant("2026-01-05T09:00:00+08:00");
        let error = closed.add_working_days(start, 1).unwrap_err();
        assert_eq!(
            error.to_string(),
            "calendar `closed`: no working day within 3660 days after 2026-01-05; are the holidays listed right?"
        );
        assert!(closed.add_working_days(start, 0).is_err());
        let end = instant("2036-12-01T09:00:00+08:00");
        assert!(matches!(
            closed.subtract_working_days(end, 2),
            Err(CalendarError::NoWorkingDay {
                direction: SearchDirection::Backward,
                ..
            })
        ));
        // Before the closure working days are found as usual.
        assert_eq!(
            closed.subtract_working_days(start, 1).unwrap(),
            instant("2025-12-31T17:30:00+08:00")
        );
    }

    #[test]
    fn the_ends_of_the_date_range_are_errors() {
        let calendar = Calendar::new("plain", "Plain");
        let near_end = NaiveDate::MAX
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc()
            .fixed_offset();
        assert!(matches!(
            calendar.add_working_days(near_end, 10),
            Err(CalendarError::OutOfRange { .. })
        ));
        let near_start = NaiveDate::MIN
            .and_hms_opt(12, 0, 0)
            .unwrap()
            .and_utc()
            .fixed_offset();
        assert!(
            calendar
                .subtract_working_days(near_start, u32::MAX)
                .is_err()
        );
        assert!(calendar.add_working_days(near_start, 1_000_000).is_ok());
        // u32::MAX working days span about 6 * 10^9 days, beyond chrono's range.
        assert!(calendar.add_working_days(near_start, u32::MAX).is_err());
    }

    /// The plain day-by-day definition, to check the week-jumping one.
    fn reference_nth(calendar: &Calendar, from: NaiveDate, n: u32, forward: bool) -> NaiveDate {
        let mut date = from;
        let mut remaining = n;
        while remaining > 0 {
            date = if forward {
                date.succ_opt().unwrap()
            } else {
                date.pred_opt().unwrap()
            };
            if calendar.is_working_day(date) {
                remaining -= 1;
            }
        }
        date
    }

    /// Random calendars around 2026: holidays anywhere, workdays on weekends.
    fn arbitrary_calendar() -> impl Strategy<Value = Calendar> {
        let base = date("2026-01-01");
        (
            proptest::collection::btree_set(0u64..730, 0..120),
            proptest::collection::btree_set(0u64..730, 0..20),
        )
            .prop_map(move |(holiday_offsets, workday_offsets)| {
                let holidays: BTreeSet<NaiveDate> = holiday_offsets
                    .iter()
                    .map(|offset| base + Days::new(*offset))
                    .collect();
                let workdays = workday_offsets
                    .iter()
                    .map(|offset| base + Days::new(*offset))
                    .filter(|day| !is_weekday(*day) && !holidays.contains(day))
                    .collect();
                let replacement = CalendarOverride {
                    holidays: Some(holidays.into_iter().collect()),
                    workdays: Some(workdays),
                    ..CalendarOverride::default()
                };
                Calendar::new("random", "Random")
                    .merged(&replacement)
                    .unwrap()
            })
    }

    fn arbitrary_instant() -> impl Strategy<Value = DateTime<FixedOffset>> {
        // 2025-06-01 … 2028-06-01, any second, in China or UTC.
        (0i64..3 * 366 * 86_400, prop::bool::ANY).prop_map(|(seconds, utc)| {
            let offset = if utc {
                FixedOffset::east_opt(0).unwrap()
            } else {
                CHINA_OFFSET
            };
            (instant("2025-06-01T00:00:00+08:00") + TimeDelta::seconds(seconds))
                .with_timezone(&offset)
        })
    }

    use chrono::TimeDelta;

    proptest! {
        #[test]
        fn adding_working_days_is_monotonic_and_lands_at_workday_end(
            calendar in arbitrary_calendar(),
            t in arbitrary_instant(),
            n in 0u32..400,
        ) {
            let due = calendar.add_working_days(t, n).unwrap();
            let later = calendar.add_working_days(t, n + 1).unwrap();
            // 0wd and 1wd coincide when `t` falls on a day off.
            prop_assert!(due <= later, "{n}wd = {due}, {}wd = {later}", n + 1);
            if n > 0 {
                prop_assert!(due < later, "{n}wd = {due}, {}wd = {later}", n + 1);
            }
            let due_date = calendar.local_date(due);
            prop_assert!(calendar.is_working_day(due_date));
            prop_assert_eq!(due.time(), calendar.workday_end());
            prop_assert_eq!(due.offset(), &calendar.utc_offset());
            let from = calendar.local_date(t);
            if n > 0 {
                prop_assert_eq!(due_date, reference_nth(&calendar, from, n, true));
                prop_assert_eq!(calendar.working_days_between(from, due_date), i64::from(n));
            } else {
                prop_assert!(due_date >= from);
                prop_assert!(calendar.working_days_between(from, due_date) <= 1);
            }
        }

        #[test]
        fn subtracting_working_days_mirrors_adding(
            calendar in arbitrary_calendar(),
            t in arbitrary_instant(),
            n in 1u32..400,
        ) {
            let day = calendar.subtract_working_days(t, n).unwrap();
            let day_date = calendar.local_date(day);
            let from = calendar.local_date(t);
            prop_assert!(calendar.is_working_day(day_date));
            prop_assert_eq!(day.time(), calendar.workday_end());
            prop_assert_eq!(day_date, reference_nth(&calendar, from, n, false));
            let earlier = calendar.subtract_working_days(t, n + 1).unwrap();
            prop_assert!(earlier < day);
        }

        #[test]
        fn between_is_antisymmetric_and_additive(
            calendar in arbitrary_calendar(),
            a in 0u64..1500, b in 0u64..1500, c in 0u64..1500,
        ) {
            let base = date("2025-06-01");
            let (a, b, c) = (base + Days::new(a), base + Days::new(b), base + Days::new(c));
            prop_assert_eq!(calendar.working_days_between(a, b), -calendar.working_days_between(b, a));
            prop_assert_eq!(
                calendar.working_days_between(a, b) + calendar.working_days_between(b, c),
                calendar.working_days_between(a, c)
            );
        }
    }
}
