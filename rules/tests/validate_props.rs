//! Property tests of the door checks: random JSON (households, personal fields of any
//! shape) never panics them, and every problem names a path under the one given.

use chrono::NaiveDate;
use jiuzhu_rules::validate::{check_household, check_personal_fields, id_number_problem};
use proptest::prelude::*;

fn json_tree() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(|n| serde_json::json!(n)),
        any::<f64>().prop_map(|n| serde_json::json!(n)),
        "-?[0-9]{1,30}(\\.[0-9]{1,30})?".prop_map(serde_json::Value::String),
        "[0-9]{17}[0-9Xx]".prop_map(serde_json::Value::String),
        "\\PC{0,20}".prop_map(serde_json::Value::String),
        prop_oneof![
            Just("1950-05-01"),
            Just("2026-02-30"),
            Just("1899-12-31"),
            Just("2999-01-01"),
            Just("wage"),
            Just("salary"),
        ]
        .prop_map(|s| serde_json::Value::String(s.to_string())),
    ];
    leaf.prop_recursive(5, 64, 8, |inner| {
        let keys = prop_oneof![
            Just("members".to_string()),
            Just("savings".to_string()),
            Just("vehicles".to_string()),
            Just("income".to_string()),
            Just("kind".to_string()),
            Just("monthly".to_string()),
            Just("birth_date".to_string()),
            Just("id".to_string()),
            Just("name".to_string()),
            Just("id_number".to_string()),
            Just("account".to_string()),
            Just("applicant_name".to_string()),
            "[a-z_]{1,8}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(keys, inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, 2).unwrap_or_default()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_household_check_never_panics_and_stays_under_its_path(json in json_tree()) {
        for problem in check_household(&json, "$.household", today()) {
            prop_assert!(problem.path.starts_with("$.household"), "{}", problem);
            prop_assert!(!problem.message.is_empty());
        }
    }

    #[test]
    fn the_personal_field_check_never_panics(json in json_tree()) {
        for problem in check_personal_fields(&json, "$", today()) {
            prop_assert!(problem.path.starts_with('$') && problem.path.len() > 1, "{}", problem);
        }
    }

    #[test]
    fn id_numbers_of_any_text_never_panic(text in "\\PC{0,40}") {
        let _ = id_number_problem(&text, today());
    }
}
