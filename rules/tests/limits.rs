//! Bounded evaluation and bounded input: the evaluator's caps on what an
//! expression builds, large households assessed in linear time (checked by
//! shape, not by the clock), strict JSON and the input limits of case files.

use std::collections::BTreeMap;
use std::path::Path;

use jiuzhu_rules::expr::{EvalError, Expr, MAX_LIST_LEN, MAX_STRING_LEN};
use jiuzhu_rules::{
    InputLimits, Policy, RuleSet, Type, Value, assess, parse_case, parse_case_text,
};
use proptest::prelude::*;
use serde_json::json;

fn types(vars: &[(&str, Type)]) -> BTreeMap<String, Type> {
    vars.iter()
        .map(|(n, t)| (n.to_string(), t.clone()))
        .collect()
}

fn is_limit(err: &EvalError) -> bool {
    matches!(err, EvalError::LimitExceeded { .. }) && err.code() == "limit_exceeded"
}

/// A process that loops `s = s + s` (each turn one evaluation) grows the string
/// to the cap and is then refused with `limit_exceeded`, never an allocation failure.
#[test]
fn a_string_doubling_loop_stops_at_the_cap() {
    let e = Expr::compile("s + s", &types(&[("s", Type::String)])).expect("compiles");
    let mut env = BTreeMap::new();
    env.insert("s".to_string(), Value::Str("救助".into()));
    let mut turns = 0;
    let err = loop {
        match e.eval(&env) {
            Ok(Value::Str(s)) => {
                assert!(s.len() <= MAX_STRING_LEN);
                env.insert("s".to_string(), Value::Str(s));
                turns += 1;
                assert!(turns < 64, "the string kept growing");
            }
            Ok(other) => panic!("not a string: {other:?}"),
            Err(err) => break err,
        }
    };
    assert!(is_limit(&err), "{err:?}");
    assert!(err.to_string().contains("string length"), "{err}");
    // 6 bytes doubled 17 times is 786,432 bytes; once more would pass 1 MiB.
    assert_eq!(turns, 17);
}

/// A single expression that repeats a long string many times is refused too.
#[test]
fn one_expression_cannot_multiply_a_string_past_the_cap() {
    let src = vec!["s"; 40].join(" + ");
    let e = Expr::compile(&src, &types(&[("s", Type::String)])).expect("compiles");
    let mut env = BTreeMap::new();
    env.insert("s".to_string(), Value::Str("x".repeat(30_000)));
    let err = e.eval(&env).expect_err("1.2 MB");
    assert!(is_limit(&err), "{err:?}");
    env.insert("s".to_string(), Value::Str("x".repeat(20_000)));
    assert!(matches!(e.eval(&env), Ok(Value::Str(s)) if s.len() == 800_000));
}

/// Lists of lists: each item a copy of a 10,000-item list. The step budget alone
/// would let this build 3 GB; the byte cap stops it.
#[test]
fn a_list_growing_expression_stops_at_the_byte_cap() {
    let t = types(&[("xs", Type::list(Type::Int))]);
    let mut env = BTreeMap::new();
    env.insert(
        "xs".to_string(),
        Value::List((0..10_000).map(Value::Int).collect()),
    );
    // 250 copies of 320 KB each: 80 MB.
    let literal = format!("[{}]", vec!["xs"; 250].join(", "));
    for src in ["map(xs, x => xs)", literal.as_str()] {
        let e = Expr::compile(src, &t).expect("compiles");
        let err = e.eval(&env).expect_err(src);
        assert!(is_limit(&err), "{src}: {err:?}");
        assert!(err.to_string().contains("bytes built"), "{err}");
    }
    // A list of plain items stays within the caps at its full length.
    let e = Expr::compile("map(xs, x => x * 2)", &t).expect("compiles");
    assert!(matches!(e.eval(&env), Ok(Value::List(items)) if items.len() == MAX_LIST_LEN));
}

proptest! {
    /// Whatever is concatenated, the result is within the cap or refused with the code.
    #[test]
    fn concatenation_is_within_the_cap_or_refused(len in 0usize..200_000, copies in 1usize..12) {
        let src = vec!["s"; copies].join(" + ");
        let e = Expr::compile(&src, &types(&[("s", Type::String)])).expect("compiles");
        let mut env = BTreeMap::new();
        env.insert("s".to_string(), Value::Str("a".repeat(len)));
        match e.eval(&env) {
            Ok(Value::Str(s)) => {
                prop_assert_eq!(s.len(), len * copies);
                prop_assert!(s.len() <= MAX_STRING_LEN);
            }
            Ok(other) => prop_assert!(false, "not a string: {:?}", other),
            Err(err) => {
                prop_assert!(is_limit(&err), "{:?}", err);
                prop_assert!(len * copies > MAX_STRING_LEN);
            }
        }
    }

    /// Lists built by `filter`/`map` over any list are refused only past the caps.
    #[test]
    fn built_lists_are_within_the_caps_or_refused(n in 0i64..12_000) {
        let t = types(&[("xs", Type::list(Type::Int))]);
        let mut env = BTreeMap::new();
        env.insert("xs".to_string(), Value::List((0..n).map(Value::Int).collect()));
        let e = Expr::compile("map(filter(xs, x => x >= 0), x => [x])", &t).expect("compiles");
        match e.eval(&env) {
            Ok(Value::List(items)) => prop_assert_eq!(items.len() as i64, n),
            Ok(other) => prop_assert!(false, "not a list: {:?}", other),
            Err(err) => {
                prop_assert!(is_limit(&err), "{:?}", err);
                prop_assert!(n as usize > MAX_LIST_LEN);
            }
        }
    }
}

fn policy() -> Policy {
    Policy::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/examples/policy.yaml"))
        .expect("policy")
}

/// The two members of the `dibao-income-elderly` example, repeated: an elderly
/// member with an excluded pension, and a working member.
fn household(members: usize) -> serde_json::Value {
    let list: Vec<serde_json::Value> = (0..members)
        .map(|i| {
            if i % 2 == 0 {
                json!({"id": format!("m{i}"), "birth_date": "1948-10-20",
                    "income": [{"kind": "pension_basic", "monthly": "180.00"}]})
            } else {
                json!({"id": format!("m{i}"), "birth_date": "1979-04-12",
                    "income": [{"kind": "wage", "monthly": "1000.00"}]})
            }
        })
        .collect();
    json!({"program": "dibao", "as_of": "2026-03-01", "area": "urban",
        "household": {"members": list, "savings": "8000.00", "vehicles": [],
            "rigid_expenses": "0.00", "supporter_able": false}})
}

/// 10,000 members (the most the input limits allow) are assessed, and the result
/// is the two-member example's, scaled: the same per-capita income and category,
/// 5,000 times its base amount, one supplement per elderly member.
#[test]
fn a_household_of_ten_thousand_is_assessed_in_full() {
    let rules = RuleSet::builtin();
    let policy = policy();
    let small = assess(&rules, &policy, &parse_case(&household(2)).expect("small"));
    let big_case = parse_case(&household(10_000)).expect("10,000 members are within the limits");
    let big = assess(&rules, &policy, &big_case);
    let (s, b) = (small.to_json(), big.to_json());
    assert_eq!(s["eligible"], json!(true), "{s:#}");
    for field in [
        "eligible",
        "category",
        "standard",
        "per_capita_income",
        "reasons",
    ] {
        assert_eq!(b[field], s[field], "{field}");
    }
    assert_eq!(b["base_amount"], json!("3000000.00"));
    assert_eq!(s["base_amount"], json!("600.00"));
    let supplements = b["supplements"].as_array().expect("supplements");
    assert_eq!(supplements.len(), 5_000);
    assert_eq!(supplements[4_999]["member"], json!("m9998"));
    assert!(supplements.iter().all(|x| x["amount"] == json!("105.00")));
    assert_eq!(b["monthly_amount"], json!("3525000.00"));
    // Every per-member step ran once per member.
    let per_member_wage = big
        .trace()
        .iter()
        .filter(|t| t.name == "wage_income")
        .count();
    assert_eq!(per_member_wage, 10_000);
}

#[test]
fn more_members_than_the_limit_are_refused_at_their_path() {
    let errors = parse_case(&household(10_001)).expect_err("too many");
    assert!(
        errors
            .iter()
            .any(|e| e.path == "$.household.members" && e.message.starts_with("too_many_members")),
        "{errors:?}"
    );
}

#[test]
fn a_repeated_savings_key_is_refused_not_resolved() {
    let text = r#"{"program": "dibao", "as_of": "2026-03-01", "area": "urban",
  "household": {"members": [{"id": "m1", "birth_date": "1950-01-01"}],
    "savings": "0.00",
    "savings": "999999999.00"}}"#;
    let errors = parse_case_text(text, &InputLimits::default()).expect_err("duplicate");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].path, "$.household.savings");
    assert!(
        errors[0].message.starts_with("duplicate_key") && errors[0].message.contains("line 4"),
        "{}",
        errors[0].message
    );
    // Without the repeat, the same text is a valid case.
    let once = text.replace("\"savings\": \"0.00\",\n", "");
    assert!(parse_case_text(&once, &InputLimits::default()).is_ok());
}

#[test]
fn oversized_strings_in_a_case_are_refused_before_reading() {
    let mut case = household(1);
    case["household"]["members"][0]["id"] = json!("x".repeat(10_001));
    let errors = parse_case(&case).expect_err("long id");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].path, "$.household.members[0].id");
    assert!(errors[0].message.starts_with("string_too_long"));
    let text = serde_json::to_string(&case).expect("text");
    let tight = InputLimits {
        max_total_bytes: 1_000,
        ..InputLimits::default()
    };
    let errors = parse_case_text(&text, &tight).expect_err("too large");
    assert_eq!(errors[0].path, "$");
    assert!(errors[0].message.starts_with("input_too_large"));
}
