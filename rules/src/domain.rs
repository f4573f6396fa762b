//! Small pure facts of the social-assistance domain shared by the expression
//! built-ins and the assessments: completed age, and the severe-disability test.

use chrono::{Datelike, NaiveDate};

/// Whole years completed on `as_of`. A 29 February birthday is reached on
/// 1 March in common years, because (2, 28) still sorts before (2, 29).
pub fn age_on(birth: NaiveDate, as_of: NaiveDate) -> i64 {
    let mut years = i64::from(as_of.year()) - i64::from(birth.year());
    if (as_of.month(), as_of.day()) < (birth.month(), birth.day()) {
        years -= 1;
    }
    years
}

/// The disability kinds of the case file (`disability.kind`).
pub const DISABILITY_KINDS: [&str; 7] = [
    "physical",
    "intellectual",
    "mental",
    "visual",
    "hearing",
    "speech",
    "multiple",
];

/// Severely disabled per assess.md: disability grade 1 or 2; grade 3
/// intellectual or mental when the policy says so; or a disabled veteran of
/// grade 1..4.
pub fn severely_disabled(
    disability: Option<(i64, &str)>,
    disabled_veteran_grade: Option<i64>,
    include_grade3_intellectual_mental: bool,
) -> bool {
    let by_disability = match disability {
        Some((1 | 2, _)) => true,
        Some((3, "intellectual" | "mental")) => include_grade3_intellectual_mental,
        _ => false,
    };
    by_disability || matches!(disabled_veteran_grade, Some(1..=4))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("test date")
    }

    #[test]
    fn ages_turn_on_the_birthday() {
        let cases = [
            ("1966-03-01", "2026-03-01", 60),
            ("1966-03-01", "2026-02-28", 59),
            ("2008-03-01", "2026-03-01", 18),
            ("2008-03-02", "2026-03-01", 17),
            ("2008-02-29", "2026-02-28", 17),
            ("2008-02-29", "2026-03-01", 18),
            ("2008-02-29", "2028-02-29", 20),
        ];
        for (birth, as_of, age) in cases {
            assert_eq!(age_on(d(birth), d(as_of)), age, "{birth} on {as_of}");
        }
    }

    #[test]
    fn severity_follows_the_grades() {
        assert!(severely_disabled(Some((2, "physical")), None, false));
        assert!(severely_disabled(Some((3, "mental")), None, true));
        assert!(!severely_disabled(Some((3, "mental")), None, false));
        assert!(!severely_disabled(Some((3, "physical")), None, true));
        assert!(severely_disabled(None, Some(4), false));
        assert!(!severely_disabled(None, Some(5), true));
    }
}
