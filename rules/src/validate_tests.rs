//! Tables of bad inputs to the door checks, each with the exact path and message.

use super::*;
use serde_json::json;

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, 2).expect("date")
}

/// A valid ID number born on 1978-09-12 (check character computed, not guessed).
const GOOD_ID: &str = "230502197809123326";

#[test]
fn id_numbers_are_checked_for_shape_checksum_and_birth_date() {
    assert_eq!(id_number_problem(GOOD_ID, today()), None);
    // A check character X, in either case.
    assert_eq!(id_number_problem("23050219800101018X", today()), None);
    assert_eq!(id_number_problem("23050219800101018x", today()), None);
    let table: [(&str, &str); 7] = [
        (
            "23050219780912332",
            "an ID number has 18 characters, found 17",
        ),
        (
            "2305021978091233X6",
            "an ID number has digits in its first 17 places, found a non-digit at place 17",
        ),
        ("23050219780912332Y", "an ID number ends in a digit or X"),
        (
            "230502197809123327",
            "the check character does not match the ID number (GB 11643)",
        ),
        // Valid check characters, implausible dates inside.
        (
            "230502202701011238",
            "the ID number's birth date 2027-01-01 is in the future (today is 2026-03-02)",
        ),
        (
            "230502189912311237",
            "the ID number's birth date 1899-12-31 is before 1900",
        ),
        (
            "230502197802301230",
            "the birth date in the ID number (places 7–14) is no real date",
        ),
    ];
    for (input, want) in table {
        let got = id_number_problem(input, today());
        assert_eq!(got.as_deref(), Some(want), "{input}");
    }
}

#[test]
fn bank_accounts_are_twelve_to_thirty_digits() {
    assert_eq!(bank_account_problem("622202020011223344"), None);
    assert_eq!(bank_account_problem("123456789012"), None);
    for (input, want) in [
        ("12345678901", "a bank account is 12 to 30 digits, found 11"),
        (
            "1234567890123456789012345678901",
            "a bank account is 12 to 30 digits, found 31",
        ),
        (
            "6222 0202 0011 2233",
            "a bank account is 12 to 30 digits, without spaces or other characters",
        ),
        ("", "a bank account is 12 to 30 digits, found 0"),
    ] {
        assert_eq!(
            bank_account_problem(input).as_deref(),
            Some(want),
            "{input:?}"
        );
    }
}

#[test]
fn names_are_not_blank_and_not_too_long() {
    assert_eq!(name_problem("张三"), None);
    assert_eq!(name_problem("  ").as_deref(), Some("must not be empty"));
    assert_eq!(
        name_problem(&"张".repeat(51)).as_deref(),
        Some("a name has at most 50 characters, found 51")
    );
    assert_eq!(
        name_problem("张\u{7}三").as_deref(),
        Some("a name has no control characters")
    );
}

#[test]
fn a_bad_household_reports_every_problem_at_its_path() {
    let household = json!({
        "members": [
            {"id": "m1", "name": "张三", "id_number": GOOD_ID, "birth_date": "1978-09-12",
             "income": [{"kind": "wage", "monthly": "1000"}]},
            {"id": "m2", "name": "", "birth_date": "2027-05-01",
             "income": [{"kind": "salary", "monthly": "10"}, {"kind": "wage", "monthly": "-3"}]},
            {"id": "m3", "birth_date": "1880-01-01", "id_number": "230502197809123327"}
        ],
        "savings": "-5",
        "vehicles": [{"price": "x"}]
    });
    let problems: Vec<String> = check_household(&household, "$.household", today())
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        problems,
        vec![
            "$.household.members[1].birth_date: birth date 2027-05-01 is in the future (today is 2026-03-02)",
            "$.household.members[1].income[0].kind: unknown income kind \"salary\" (expected one of wage, business, property, transfer, pension_basic, social_assistance, traffic_accident_aid, preferential_care, reward, other)",
            "$.household.members[1].income[1].monthly: must be >= 0",
            "$.household.members[1].name: must not be empty",
            "$.household.members[2].birth_date: birth date 1880-01-01 is before 1900",
            "$.household.members[2].id_number: the check character does not match the ID number (GB 11643)",
            "$.household.savings: must be >= 0",
            "$.household.vehicles[0].price: must be a decimal amount, found \"x\"",
        ]
    );
}

#[test]
fn a_good_household_passes_and_reaches_the_rules_without_its_personal_fields() {
    let household = json!({
        "members": [{"id": "m1", "name": "张三", "id_number": GOOD_ID, "birth_date": "1978-09-12"}],
        "savings": "0"
    });
    assert_eq!(check_household(&household, "$.household", today()), vec![]);
    assert_eq!(
        household_for_rules(&household),
        json!({"members": [{"id": "m1", "birth_date": "1978-09-12"}], "savings": "0"})
    );
}

#[test]
fn personal_fields_are_found_at_any_depth() {
    let data = json!({
        "applicant_name": " ",
        "bank": {"account": "12ab", "id_number": 230502197809123326_u64},
        "contact": {"name": ""},
        "guardian_name": null
    });
    let problems: Vec<String> = check_personal_fields(&data, "$", today())
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        problems,
        vec![
            "$.applicant_name: must not be empty",
            "$.bank.account: a bank account is 12 to 30 digits, without spaces or other characters",
            "$.bank.id_number: must be a string",
        ]
    );
}
