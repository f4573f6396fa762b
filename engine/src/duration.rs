//! Durations as process definitions and scenarios write them: `5wd`, `7d`,
//! `36h`, `30min`, `6mo`, `1y`.
//!
//! - `wd`: working days by a [`Calendar`] (see [`crate::calendar`] for the
//!   rule: the deadline is `workday_end` of the N-th working day after the
//!   local date).
//! - `d`: calendar days, same local time of day.
//! - `h`, `min`: elapsed hours and minutes.
//! - `mo`, `y`: calendar months and years, same local time of day, the day
//!   clamped to the end of a shorter month (31 Jan + 1mo = 28 Feb; 29 Feb +
//!   1y = 28 Feb).
//!
//! Local means the calendar's UTC offset: "one month" from 20:00Z on 31
//! January is 1 March in China, so the calendar's offset decides the month,
//! and every result is expressed in that offset.
//!
//! The grammar is exactly `<digits><unit>`: no sign, spaces, fractions or
//! combinations, so a typo such as `5 days` or `1.5d` is refused rather than
//! guessed at. Amounts above [`MAX_AMOUNT`] are refused when parsed; adding
//! any duration is checked and never panics.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Days, FixedOffset, Months, TimeDelta};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::calendar::{Calendar, CalendarError};

/// The largest amount a duration may be written with. A million minutes is
/// about two years and a million years is outside chrono's range anyway; the
/// cap only turns absurd input into a clear parse error.
pub const MAX_AMOUNT: u32 = 1_000_000;

/// The unit of a [`Duration`], written as its suffix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DurationUnit {
    /// `wd`: working days by the calendar.
    WorkingDays,
    /// `d`: calendar days.
    Days,
    /// `h`
    Hours,
    /// `min`
    Minutes,
    /// `mo`: calendar months.
    Months,
    /// `y`: calendar years.
    Years,
}

impl DurationUnit {
    pub const ALL: [DurationUnit; 6] = [
        DurationUnit::WorkingDays,
        DurationUnit::Days,
        DurationUnit::Hours,
        DurationUnit::Minutes,
        DurationUnit::Months,
        DurationUnit::Years,
    ];

    pub fn suffix(self) -> &'static str {
        match self {
            DurationUnit::WorkingDays => "wd",
            DurationUnit::Days => "d",
            DurationUnit::Hours => "h",
            DurationUnit::Minutes => "min",
            DurationUnit::Months => "mo",
            DurationUnit::Years => "y",
        }
    }

    fn from_suffix(suffix: &str) -> Option<DurationUnit> {
        DurationUnit::ALL
            .into_iter()
            .find(|unit| unit.suffix() == suffix)
    }
}

/// An amount of one unit, e.g. `5wd`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Duration {
    amount: u32,
    unit: DurationUnit,
}

/// Errors of parsing and applying durations.
#[derive(Debug, thiserror::Error)]
pub enum DurationError {
    #[error("bad duration {text:?}: expected <number><unit> with unit wd, d, h, min, mo or y")]
    Malformed { text: String },
    #[error("bad duration {text:?}: the number is too large (at most {MAX_AMOUNT})")]
    TooLarge { text: String },
    #[error("{duration} after {from} is outside the supported date range")]
    OutOfRange {
        duration: Duration,
        from: DateTime<FixedOffset>,
    },
    #[error(transparent)]
    Calendar(#[from] CalendarError),
}

impl Duration {
    pub const fn new(amount: u32, unit: DurationUnit) -> Duration {
        Duration { amount, unit }
    }

    pub const fn working_days(amount: u32) -> Duration {
        Duration::new(amount, DurationUnit::WorkingDays)
    }

    pub const fn amount(self) -> u32 {
        self.amount
    }

    pub const fn unit(self) -> DurationUnit {
        self.unit
    }

    /// The instant this duration after `t`, by `calendar` (which decides
    /// working days and the local offset; see the module doc).
    pub fn add_to(
        self,
        t: DateTime<FixedOffset>,
        calendar: &Calendar,
    ) -> Result<DateTime<FixedOffset>, DurationError> {
        let local = t.with_timezone(&calendar.utc_offset());
        let amount = self.amount;
        let result = match self.unit {
            DurationUnit::WorkingDays => return Ok(calendar.add_working_days(t, amount)?),
            DurationUnit::Days => local.checked_add_days(Days::new(u64::from(amount))),
            DurationUnit::Hours => TimeDelta::try_hours(i64::from(amount))
                .and_then(|delta| local.checked_add_signed(delta)),
            DurationUnit::Minutes => TimeDelta::try_minutes(i64::from(amount))
                .and_then(|delta| local.checked_add_signed(delta)),
            DurationUnit::Months => local.checked_add_months(Months::new(amount)),
            DurationUnit::Years => amount
                .checked_mul(12)
                .and_then(|months| local.checked_add_months(Months::new(months))),
        };
        result.ok_or(DurationError::OutOfRange {
            duration: self,
            from: t,
        })
    }
}

impl FromStr for Duration {
    type Err = DurationError;

    fn from_str(text: &str) -> Result<Duration, DurationError> {
        let malformed = || DurationError::Malformed {
            text: text.to_owned(),
        };
        // The first non-digit is a char boundary, so the split cannot panic.
        let digits_end = text
            .find(|character: char| !character.is_ascii_digit())
            .unwrap_or(text.len());
        let (digits, suffix) = text.split_at(digits_end);
        let unit = DurationUnit::from_suffix(suffix).ok_or_else(malformed)?;
        if digits.is_empty() {
            return Err(malformed());
        }
        // Only ASCII digits remain, so the sole parse failure is overflow.
        let amount = digits
            .parse::<u32>()
            .ok()
            .filter(|amount| *amount <= MAX_AMOUNT)
            .ok_or_else(|| DurationError::TooLarge {
                text: text.to_owned(),
            })?;
        Ok(Duration { amount, unit })
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.amount, self.unit.suffix())
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn instant(text: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(text).unwrap_or_else(|error| panic!("{text}: {error}"))
    }

    #[test]
    fn parses_every_unit_and_prints_it_back() {
        let cases = [
            ("5wd", 5, DurationUnit::WorkingDays),
            ("7d", 7, DurationUnit::Days),
            ("36h", 36, DurationUnit::Hours),
            ("30min", 30, DurationUnit::Minutes),
            ("6mo", 6, DurationUnit::Months),
            ("1y", 1, DurationUnit::Years),
            ("0wd", 0, DurationUnit::WorkingDays),
            ("0d", 0, DurationUnit::Days),
            ("1000000min", MAX_AMOUNT, DurationUnit::Minutes),
        ];
        for (text, amount, unit) in cases {
            let duration: Duration = text.parse().unwrap();
            assert_eq!(duration, Duration::new(amount, unit), "{text}");
            assert_eq!(duration.to_string(), text);
        }
        // Leading zeros are read but not kept.
        assert_eq!("007d".parse::<Duration>().unwrap().to_string(), "7d");
    }

    #[test]
    fn refuses_everything_else() {
        let malformed = [
            "5 days", "", "d", "5", "wd", "5D", "5WD", "-5d", "+5d", "1.5d", " 5d", "5d ", "5wdx",
            "5m", "5mon", "5 min", "5d3h", "٣d", "5天", "d5", "5\nd",
        ];
        for text in malformed {
            let error = text.parse::<Duration>().unwrap_err();
            assert!(
                matches!(error, DurationError::Malformed { .. }),
                "{text:?}: {error}"
            );
        }
        assert_eq!(
            "5 days".parse::<Duration>().unwrap_err().to_string(),
            r#"bad duration "5 days": expected <number><unit> with unit wd, d, h, min, mo or y"#
        );
        for text in ["1000001d", "4294967296wd", "99999999999999999999999999y"] {
            let error = text.parse::<Duration>().unwrap_err();
            assert_eq!(
                error.to_string(),
                format!("bad duration {text:?}: the number is too large (at most 1000000)")
            );
        }
    }

    #[test]
    fn adds_each_unit() {
        let calendar = Calendar::china_national();
        // FROM + DURATION = RESULT  why
        let table = "
            # Working days: see the calendar's own tables for the rule.
            2026-09-28T09:00:00+08:00 + 20wd  = 2026-10-30T17:30:00+08:00  national day
            2026-03-06T09:00:00+08:00 + 0wd   = 2026-03-06T17:30:00+08:00  zero working days
            2026-03-02T09:00:00+08:00 + 7d    = 2026-03-09T09:00:00+08:00  days keep the time
            2026-09-30T09:00:00+08:00 + 7d    = 2026-10-07T09:00:00+08:00  days ignore holidays
            2026-03-02T09:00:00+08:00 + 0d    = 2026-03-02T09:00:00+08:00  zero days
            2026-03-02T09:00:00+08:00 + 36h   = 2026-03-03T21:00:00+08:00  hours
            2026-03-02T23:50:00+08:00 + 30min = 2026-03-03T00:20:00+08:00  minutes
            2026-03-02T09:00:00+08:00 + 0h    = 2026-03-02T09:00:00+08:00  zero hours
            2026-03-15T09:00:00+08:00 + 6mo   = 2026-09-15T09:00:00+08:00  months
            2026-01-31T09:00:00+08:00 + 1mo   = 2026-02-28T09:00:00+08:00  clamped to 28 Feb
            2028-01-31T09:00:00+08:00 + 1mo   = 2028-02-29T09:00:00+08:00  leap year
            2026-08-31T09:00:00+08:00 + 1mo   = 2026-09-30T09:00:00+08:00  clamped to 30 Sep
            2026-03-02T09:00:00+08:00 + 1y    = 2027-03-02T09:00:00+08:00  a year
            2028-02-29T09:00:00+08:00 + 1y    = 2029-02-28T09:00:00+08:00  29 Feb + 1y
            2026-03-02T09:00:00+08:00 + 18y   = 2044-03-02T09:00:00+08:00  18th birthday
            # 20:00Z on 31 Jan is 04:00 on 1 Feb in China: a month later is 1 March.
            2026-01-31T20:00:00Z      + 1mo   = 2026-03-01T04:00:00+08:00  months in local time
            2026-03-02T01:00:00Z      + 7d    = 2026-03-09T09:00:00+08:00  in the calendar's offset
        ";
        let mut checked = 0;
        for line in table.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [from, "+", text, "=", expected, ref why @ ..] = fields[..] else {
                panic!("bad table line: {line}");
            };
            let why = why.join(" ");
            let duration: Duration = text.parse().unwrap();
            let got = duration.add_to(instant(from), &calendar).unwrap();
            assert_eq!(got, instant(expected), "{why}: {from} + {text}");
            assert_eq!(got.offset(), &calendar.utc_offset(), "{why}");
            checked += 1;
        }
        assert_eq!(checked, 17);
    }

    #[test]
    fn leaving_the_date_range_is_an_error() {
        let calendar = Calendar::china_national();
        let from = instant("2026-03-02T09:00:00+08:00");
        // chrono ends in the year 262143; a million months (83,333 years) is fine.
        assert!(
            Duration::new(MAX_AMOUNT, DurationUnit::Months)
                .add_to(from, &calendar)
                .is_ok()
        );
        for text in ["300000y", "1000000y"] {
            let duration: Duration = text.parse().unwrap();
            let error = duration.add_to(from, &calendar).unwrap_err();
            assert!(
                matches!(error, DurationError::OutOfRange { .. }),
                "{text}: {error}"
            );
        }
        let huge = Duration::new(u32::MAX, DurationUnit::Years);
        assert!(huge.add_to(from, &calendar).is_err());
        let huge = Duration::working_days(u32::MAX);
        assert!(matches!(
            huge.add_to(from, &calendar),
            Err(DurationError::Calendar(CalendarError::OutOfRange { .. }))
        ));
    }

    #[derive(Debug, Deserialize, Serialize, PartialEq)]
    struct Step {
        advance: Duration,
    }

    #[test]
    fn reads_and_writes_strings() {
        let step: Step = serde_saphyr::from_str("advance: 3wd\n").unwrap();
        assert_eq!(step.advance, Duration::working_days(3));
        let quoted: Step = serde_saphyr::from_str("advance: \"36h\"\n").unwrap();
        assert_eq!(quoted.advance, Duration::new(36, DurationUnit::Hours));
        assert_eq!(
            serde_json::to_string(&quoted).unwrap(),
            r#"{"advance":"36h"}"#
        );

        let error = serde_saphyr::from_str::<Step>("advance: 3 days\n").unwrap_err();
        assert!(
            error.to_string().contains(r#"bad duration "3 days""#),
            "{error}"
        );
        let number = serde_saphyr::from_str::<Step>("advance: 3\n").unwrap_err();
        assert!(number.to_string().contains("bad duration"), "{number}");
    }

    proptest! {
        #[test]
        fn parsing_any_string_never_panics(text in "\\PC{0,12}") {
            let _ = text.parse::<Duration>();
        }

        #[test]
        fn parsing_near_misses_never_panics(text in "[0-9]{0,25}(wd|d|h|min|mo|y|m|w|D|天)?[0-9 ]{0,2}") {
            if let Ok(duration) = text.parse::<Duration>() {
                prop_assert!(duration.amount() <= MAX_AMOUNT);
            }
        }

        #[test]
        fn display_round_trips(amount in 0u32..=MAX_AMOUNT, unit_index in 0usize..6) {
            let duration = Duration::new(amount, DurationUnit::ALL[unit_index]);
            prop_assert_eq!(duration.to_string().parse::<Duration>().unwrap(), duration);
        }

        #[test]
        fn adding_never_panics_and_never_goes_back(
            amount in 0u32..=MAX_AMOUNT,
            unit_index in 0usize..6,
            seconds in -1_000_000_000_000i64..1_000_000_000_000,
        ) {
            let from = DateTime::from_timestamp(seconds, 0).unwrap().fixed_offset();
            let duration = Duration::new(amount, DurationUnit::ALL[unit_index]);
            if let Ok(to) = duration.add_to(from, &Calendar::china_national()) {
                // Only `0wd` may land before `from` (after hours on a working day).
                if duration.unit() != DurationUnit::WorkingDays || amount > 0 {
                    prop_assert!(to >= from, "{from} + {duration} = {to}");
                }
            }
        }
    }
}
