//! Tests of calendar loading and working-day arithmetic.

use super::load::*;
use super::workdays::*;
use super::*;
use std::path::Path;

use chrono::{DateTime, Datelike, Days};
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

    let offset_only: CalendarOverride = serde_saphyr::from_str("utc_offset: \"+00:00\"\n").unwrap();
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
        unknown field: test.yaml:3:1: unknown field `holiday`, expected one of id, name, utc_offset, workday_start, workday_end, holidays, workdays, covers
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
        (instant("2025-06-01T00:00:00+08:00") + TimeDelta::seconds(seconds)).with_timezone(&offset)
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

#[test]
fn a_calendar_declares_the_years_it_covers() {
    let calendar = cn();
    assert_eq!(calendar.covers(), Some(&BTreeSet::from([2026])));
    assert_eq!(calendar.coverage_end(), Some(date("2026-12-31")));
    assert!(calendar.covers_year(2026));
    assert!(!calendar.covers_year(2027));
    // A count that stays in 2026 is final; one that touches 2027 is provisional.
    assert!(!calendar.is_provisional_between(date("2026-12-04"), date("2026-12-31")));
    assert!(calendar.is_provisional_between(date("2026-12-04"), date("2027-01-01")));
    assert!(calendar.is_provisional_between(date("2027-01-05"), date("2026-12-30")));
    assert!(calendar.is_provisional_between(date("2025-12-30"), date("2026-01-05")));
    // Outside the covered years only weekends are off: 1 January 2027 counts.
    let due = calendar
        .add_working_days(instant("2026-12-04T09:00:00+08:00"), 20)
        .unwrap();
    assert_eq!(due, instant("2027-01-01T17:30:00+08:00"));

    // A calendar that declares nothing vouches for every year.
    let plain = Calendar::new("plain", "Plain");
    assert_eq!(plain.covers(), None);
    assert_eq!(plain.coverage_end(), None);
    assert!(!plain.is_provisional_between(date("2026-12-04"), date("2030-01-01")));

    // An override may extend the coverage with the new year's dates.
    let extended = calendar
        .merged(&CalendarOverride {
            holidays: Some(vec![date("2026-10-01"), date("2027-01-01")]),
            covers: Some(vec![2026, 2027]),
            ..CalendarOverride::default()
        })
        .unwrap();
    assert!(!extended.is_provisional_between(date("2026-12-04"), date("2027-01-04")));
    assert_eq!(
        extended
            .add_working_days(instant("2026-12-04T09:00:00+08:00"), 20)
            .unwrap(),
        instant("2027-01-04T17:30:00+08:00")
    );
}

#[test]
fn covers_must_hold_every_listed_date() {
    let source = "id: t\nname: T\ncovers: [2026]\nholidays:\n  - 2026-10-01\n  - 2027-01-01\n";
    let error = Calendar::from_yaml(source, "t.yaml").unwrap_err();
    assert_eq!(
        error.to_string(),
        "t.yaml:6:5: 2027-01-01 is in 2027, which `covers` does not list"
    );
    let twice = "id: t\nname: T\ncovers: [2026, 2026]\n";
    let error = Calendar::from_yaml(twice, "t.yaml").unwrap_err();
    assert!(
        error.to_string().ends_with("`covers` lists 2026 twice"),
        "{error}"
    );
    let overridden = cn().merged(&CalendarOverride {
        covers: Some(vec![2027]),
        ..CalendarOverride::default()
    });
    assert!(
        matches!(
            overridden,
            Err(CalendarError::InvalidOverride {
                problem: CalendarProblem::DateOutsideCovers { .. },
                ..
            })
        ),
        "{overridden:?}"
    );
}
