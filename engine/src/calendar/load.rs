//! Calendar files: YAML → [`Calendar`], with every error at `file:line:column`,
//! and the overrides a scenario or deployment applies.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::LazyLock;

use chrono::{Datelike, FixedOffset, NaiveDate, NaiveTime};
use jiuzhu_rules::yaml::ErrorAt;
use serde::{Deserialize, Deserializer};
use serde_saphyr::{Location, Spanned};

use super::workdays::is_weekday;
use super::{
    CHINA_OFFSET, Calendar, CalendarError, CalendarOverride, CalendarProblem, CalendarSet,
    DEFAULT_WORKDAY_END, DEFAULT_WORKDAY_START, DateList, SourceLocation,
};

/// The national calendar shipped with the product, embedded so the binary
/// works from any directory.
const CHINA_NATIONAL_YAML: &str = include_str!("../../../processes/calendars/cn.yaml");
const CHINA_NATIONAL_FILE: &str = "processes/calendars/cn.yaml";

pub(super) static CHINA_NATIONAL: LazyLock<Calendar> = LazyLock::new(|| {
    // The embedded file is part of the source tree, not user input; the test
    // `china_national_calendar_loads` keeps it valid.
    Calendar::from_yaml(CHINA_NATIONAL_YAML, CHINA_NATIONAL_FILE)
        .unwrap_or_else(|error| panic!("embedded national calendar is invalid: {error}"))
});

impl Calendar {
    /// Parses a calendar file. `file_name` only labels error locations
    /// (`file:line:column: message`).
    pub fn from_yaml(source: &str, file_name: &str) -> Result<Calendar, CalendarError> {
        let file: CalendarFile =
            serde_saphyr::from_str(source).map_err(|error| syntax_error(file_name, &error))?;
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
        let covers = match &file.covers {
            None => None,
            Some(years) => {
                let years = years.iter().map(|year| (year.value, year.referenced));
                let listed = file.holidays.iter().chain(&file.workdays);
                let dates = listed.map(|date| (date.value.0, date.referenced));
                Some(checked_covers(years, dates).map_err(|(problem, at)| invalid(at, problem))?)
            }
        };

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
            covers,
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
        let covers = match &replacement.covers {
            Some(years) => Some(
                checked_covers(
                    years.iter().map(|year| (*year, ())),
                    holidays.iter().chain(&workdays).map(|date| (*date, ())),
                )
                .map_err(|(problem, ())| invalid(problem))?,
            ),
            None => self.covers.clone(),
        };
        Ok(Calendar {
            id: self.id.clone(),
            name: self.name.clone(),
            utc_offset: replacement.utc_offset.unwrap_or(self.utc_offset),
            workday_start,
            workday_end,
            holidays,
            workdays,
            covers,
        })
    }
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
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CalendarFile {
    id: Spanned<String>,
    name: String,
    utc_offset: Option<OffsetText>,
    workday_start: Option<Spanned<TimeText>>,
    workday_end: Option<Spanned<TimeText>>,
    #[serde(default)]
    holidays: Vec<Spanned<DateText>>,
    #[serde(default)]
    workdays: Vec<Spanned<DateText>>,
    /// The years whose official schedule the file lists.
    covers: Option<Vec<Spanned<i32>>>,
}

/// A `YYYY-MM-DD` date; a newtype so the error message says what is expected.
pub(super) struct DateText(NaiveDate);

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
pub(super) struct TimeText(NaiveTime);

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
pub(super) struct OffsetText(FixedOffset);

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

pub(super) fn optional_dates<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Vec<NaiveDate>>, D::Error> {
    let dates = Vec::<DateText>::deserialize(deserializer)?;
    Ok(Some(dates.into_iter().map(|date| date.0).collect()))
}

pub(super) fn optional_time<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<NaiveTime>, D::Error> {
    TimeText::deserialize(deserializer).map(|time| Some(time.0))
}

pub(super) fn optional_offset<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<FixedOffset>, D::Error> {
    OffsetText::deserialize(deserializer).map(|offset| Some(offset.0))
}

/// Strict `YYYY-MM-DD`: chrono alone would also take `2026-1-1`.
pub(super) fn parse_date(text: &str) -> Option<NaiveDate> {
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

pub(super) fn parse_offset(text: &str) -> Option<FixedOffset> {
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
pub(super) type DateSets = (BTreeSet<NaiveDate>, BTreeSet<NaiveDate>);

/// Builds the two date sets, refusing duplicates within a list, a date in
/// both lists, and workdays that are not weekend days. `L` is where a date
/// was written (a file location, or nothing for an override).
pub(super) fn checked_date_sets<L>(
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

/// The covered years, refusing a year listed twice and a listed date outside
/// them (a holiday of a year the file does not claim to cover is a typo).
pub(super) fn checked_covers<L>(
    years: impl IntoIterator<Item = (i32, L)>,
    dates: impl IntoIterator<Item = (NaiveDate, L)>,
) -> Result<BTreeSet<i32>, (CalendarProblem, L)> {
    let mut covered = BTreeSet::new();
    for (year, at) in years {
        if !covered.insert(year) {
            return Err((CalendarProblem::DuplicateYear { year }, at));
        }
    }
    for (date, at) in dates {
        if !covered.contains(&date.year()) {
            let year = date.year();
            return Err((CalendarProblem::DateOutsideCovers { date, year }, at));
        }
    }
    Ok(covered)
}

fn syntax_error(file_name: &str, error: &serde_saphyr::Error) -> CalendarError {
    let at = ErrorAt::of(error);
    CalendarError::Syntax {
        location: SourceLocation {
            file: file_name.to_owned(),
            line: at.line,
            column: at.column,
        },
        message: at.message,
    }
}
