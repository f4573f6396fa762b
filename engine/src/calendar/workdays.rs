//! Working-day arithmetic: pure functions of a [`Calendar`] and dates, no IO.

use std::ops::Bound::{Excluded, Unbounded};

use chrono::{DateTime, Datelike, Days, FixedOffset, NaiveDate, NaiveTime, TimeZone};

use super::{Calendar, CalendarError, MAX_SEARCH_DAYS, SearchDirection};

impl Calendar {
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

pub(super) fn is_weekday(date: NaiveDate) -> bool {
    date.weekday().num_days_from_monday() < 5
}

pub(super) fn step(date: NaiveDate, direction: SearchDirection) -> Option<NaiveDate> {
    match direction {
        SearchDirection::Forward => date.succ_opt(),
        SearchDirection::Backward => date.pred_opt(),
    }
}

/// The `n`-th (n ≥ 1) Monday–Friday strictly after/before `from`, ignoring
/// holidays. Any 7 consecutive days hold exactly 5 weekdays, so whole weeks
/// are jumped and at most 5 further weekdays are walked.
pub(super) fn nth_weekday(
    from: NaiveDate,
    n: u32,
    direction: SearchDirection,
) -> Option<NaiveDate> {
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
pub(super) fn weekdays_in(after: NaiveDate, up_to: NaiveDate) -> i64 {
    let days = (up_to - after).num_days();
    let whole_weeks = days / 7;
    let start = i64::from(after.weekday().num_days_from_monday());
    let partial = (1..=days % 7)
        .filter(|offset| (start + offset) % 7 < 5)
        .count();
    whole_weeks * 5 + count_as_i64(partial)
}

/// Counts here are bounded by chrono's date range (~10^8 days).
pub(super) fn count_as_i64(count: usize) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}
