//! Table-driven tests of parsing, checking and evaluation.

use std::collections::BTreeMap;

use proptest::prelude::*;
use rust_decimal::Decimal;

use super::*;

fn types() -> BTreeMap<String, Type> {
    let member = Type::Object {
        fields: [
            ("age".to_string(), Type::Int),
            ("name".to_string(), Type::String),
            ("income".to_string(), Type::Decimal),
        ]
        .into(),
        open: false,
    };
    [
        ("n".to_string(), Type::Int),
        ("x".to_string(), Type::Decimal),
        ("s".to_string(), Type::String),
        ("d".to_string(), Type::Date),
        ("t".to_string(), Type::DateTime),
        ("ok".to_string(), Type::Bool),
        (
            "area".to_string(),
            Type::Enum(vec!["urban".into(), "rural".into()]),
        ),
        ("members".to_string(), Type::list(member.clone())),
        (
            "household".to_string(),
            Type::Object {
                fields: [("members".to_string(), Type::list(member))].into(),
                open: false,
            },
        ),
        ("form".to_string(), Type::open_object()),
        ("nothing".to_string(), Type::Any),
        ("votes".to_string(), Type::list(Type::open_object())),
    ]
    .into()
}

fn values() -> BTreeMap<String, Value> {
    let json = serde_json::json!({
        "n": 7,
        "s": "abc",
        "ok": true,
        "area": "urban",
        "members": [
            {"age": 70, "name": "m1", "income": "100.50"},
            {"age": 40, "name": "m2", "income": "900"},
            {"age": 12, "name": "m3", "income": "0"}
        ],
        "form": {"reason": "fire"},
        "nothing": null,
    });
    let mut env: BTreeMap<String, Value> = match Value::from_json(&json) {
        Value::Object(map) => map,
        _ => BTreeMap::new(),
    };
    env.insert("x".into(), Value::Decimal(Decimal::new(125, 2)));
    env.insert(
        "d".into(),
        Value::Date(chrono::NaiveDate::from_ymd_opt(2026, 1, 31).expect("date")),
    );
    env.insert(
        "t".into(),
        Value::DateTime(
            chrono::DateTime::parse_from_rfc3339("2026-01-31T09:30:00+08:00").expect("datetime"),
        ),
    );
    // `members[].income` is declared decimal; JSON gave strings, so coerce like the engine does.
    let members = env.remove("members").unwrap_or(Value::Null);
    let member_type = types()["members"].clone();
    env.insert(
        "members".into(),
        members.coerce(&member_type, "$.members").expect("coerce"),
    );
    env.insert(
        "household".into(),
        Value::Object([("members".to_string(), env["members"].clone())].into()),
    );
    env.insert(
        "votes".into(),
        Value::from_json(&serde_json::json!([
            {"decision": "approve", "amount": "3000"},
            {"decision": "approve", "amount": "2000"},
            {"decision": "reject", "reason": "不符合条件"},
            {"decision": "approve", "amount": "2500"},
            {"decision": "approve", "amount": "4000"}
        ])),
    );
    env
}

fn eval(src: &str) -> Result<Value, String> {
    let expr = Expr::compile(src, &types()).map_err(|e| format!("{e:?}"))?;
    expr.eval(&values()).map_err(|e| e.to_string())
}

/// Evaluates and renders as JSON text, so expectations read naturally.
fn show(src: &str) -> String {
    match eval(src) {
        Ok(v) => v.to_json().to_string(),
        Err(e) => format!("error: {e}"),
    }
}

#[test]
fn evaluates_the_table() {
    let cases: &[(&str, &str)] = &[
        ("0.1 + 0.2 == 0.3", "true"),
        ("1 == 1.00", "true"),
        ("1 + 2", "3"),
        ("1 + 2.5", "\"3.5\""),
        ("7 / 2", "\"3.5\""),
        ("7 % 3", "1"),
        ("7.5 % 2", "\"1.5\""),
        ("2 + 3 * 4", "14"),
        ("(2 + 3) * 4", "20"),
        ("10 - 2 - 3", "5"),
        ("-n + 1", "-6"),
        ("\"a\" + 'b'", "\"ab\""),
        ("'it\\'s'", "\"it's\""),
        ("n > 5 && s == \"abc\"", "true"),
        ("n > 5 and not ok", "false"),
        ("!ok || n == 7", "true"),
        ("n in [1, 7, 9]", "true"),
        ("area in ['rural']", "false"),
        ("ok ? 'y' : 'n'", "\"y\""),
        ("n > 10 ? 1 : n > 5 ? 2 : 3", "2"),
        ("members[1].name", "\"m2\""),
        ("len(members)", "3"),
        ("all(members, m => m.age >= 12)", "true"),
        ("any(members, m => m.age >= 60)", "true"),
        ("count(members, m => m.age >= 18)", "2"),
        (
            "map(filter(members, m => m.age < 60), m => m.name)",
            "[\"m2\",\"m3\"]",
        ),
        ("sum(members, m => m.income)", "\"1000.50\""),
        ("sum([1, 2, 3])", "6"),
        ("min(3, 2.5)", "\"2.5\""),
        ("max([4, 9, 2])", "9"),
        ("abs(-2.50)", "\"2.50\""),
        ("round(2.345, 2)", "\"2.35\""),
        ("round(-2.345, 2)", "\"-2.35\""),
        ("round(0.005, 2)", "\"0.01\""),
        ("floor(2.349, 2)", "\"2.34\""),
        ("ceil(2.341, 2)", "\"2.35\""),
        ("median([5, 1, 3])", "\"3\""),
        ("median([4, 1, 3, 2])", "\"2.5\""),
        ("contains([1, 2], 2.0)", "true"),
        ("contains(s, 'bc')", "true"),
        ("date('2026-03-01') > d", "true"),
        ("add_days(d, 1)", "\"2026-02-01\""),
        ("add_days(d, -31)", "\"2025-12-31\""),
        ("add_months(d, 1)", "\"2026-02-28\""),
        ("add_months(date('2024-01-31'), 1)", "\"2024-02-29\""),
        ("add_months(t, 1)", "\"2026-02-28T09:30:00+08:00\""),
        ("first_day_of_next_month(d)", "\"2026-02-01\""),
        (
            "first_day_of_next_month(date('2026-12-15'))",
            "\"2027-01-01\"",
        ),
        ("date_of(t)", "\"2026-01-31\""),
        ("datetime('2026-01-31T02:00:00Z') < t", "false"),
        ("year(d) * 100 + month(d)", "202601"),
        ("day(t)", "31"),
        ("age(date('1966-03-01'), date('2026-03-01'))", "60"),
        ("age(date('1966-03-01'), date('2026-02-28'))", "59"),
        ("age(date('2008-02-29'), date('2026-02-28'))", "17"),
        ("age(date('2008-02-29'), date('2026-03-01'))", "18"),
        ("days_between(d, date('2026-03-01'))", "29"),
        ("string(n) + s", "\"7abc\""),
        // A date or an amount as written, not quoted.
        ("'k:' + string(d)", "\"k:2026-01-31\""),
        ("string(decimal('705.00'))", "\"705.00\""),
        ("decimal('12.345') * 2", "\"24.690\""),
        ("is_null(nothing)", "true"),
        ("coalesce(nothing, 5)", "5"),
        ("form.reason", "\"fire\""),
        ("form.missing == null", "true"),
        ("nothing != null && nothing.a", "false"),
        ("[]", "[]"),
        ("len('救助')", "2"),
        ("sort([3, 1.5, 2])", "[\"1.5\",2,3]"),
        ("sort(['b', 'a'])", "[\"a\",\"b\"]"),
        (
            "map(sort(members, m => m.age), m => m.name)",
            "[\"m3\",\"m2\",\"m1\"]",
        ),
        ("sort([])", "[]"),
        ("lower_median([4, 1, 3, 2])", "\"2\""),
        ("upper_median([4, 1, 3, 2])", "\"3\""),
        ("lower_median([5, 1, 3])", "\"3\""),
        ("upper_median([5, 1, 3])", "\"3\""),
        (
            "lower_median(map(filter(votes, v => v.decision == 'approve'), v => decimal(v.amount)))",
            "\"2500\"",
        ),
        (
            "count(votes, v => v.decision == 'approve') * 2 > len(votes)",
            "true",
        ),
        (
            "map(filter(votes, v => v.decision == 'reject'), v => v.reason)",
            "[\"不符合条件\"]",
        ),
        (
            "sort(members, m => m)",
            "error: [ExprError { code: \"E_TYPE\"",
        ),
    ];
    for (src, want) in cases {
        let got = show(src);
        assert!(got.starts_with(want), "{src}: got {got}, want {want}");
    }
}

#[test]
fn sorting_is_stable_and_refuses_mixed_keys() {
    let run = |src: &str, items: serde_json::Value| {
        let mut env = BTreeMap::new();
        env.insert("xs".to_string(), Value::from_json(&items));
        let mut types = BTreeMap::new();
        types.insert("xs".to_string(), Type::list(Type::Any));
        let e = Expr::compile(src, &types).expect("compiles");
        e.eval(&env).map(|v| v.to_json())
    };
    // Equal keys keep their order.
    let stable = run(
        "map(sort(xs, x => x.k), x => x.id)",
        serde_json::json!([{"id": 1, "k": 2}, {"id": 2, "k": 1}, {"id": 3, "k": 2}, {"id": 4, "k": 1}]),
    );
    assert_eq!(stable, Ok(serde_json::json!([2, 4, 1, 3])));
    let mixed = run("sort(xs)", serde_json::json!([1, "a"])).expect_err("mixed");
    assert!(mixed.to_string().contains("cannot compare"), "{mixed}");
    let keyed = run(
        "sort(xs, x => x.k)",
        serde_json::json!([{"k": 1}, {"k": "a"}]),
    );
    assert!(keyed.is_err(), "{keyed:?}");
    let empty = run("lower_median(xs)", serde_json::json!([])).expect_err("empty");
    assert!(empty.to_string().contains("empty"), "{empty}");
}

#[test]
fn all_unable_to_work_follows_the_household() {
    let check = |members: serde_json::Value, flag: &str| {
        let mut env = BTreeMap::new();
        env.insert(
            "h".to_string(),
            Value::from_json(&serde_json::json!({ "members": members })),
        );
        let mut types = BTreeMap::new();
        types.insert("h".to_string(), Type::open_object());
        let src = format!("all_unable_to_work(h, date('2026-03-01'){flag})");
        Expr::compile(&src, &types).expect("compiles").eval(&env)
    };
    let elderly = serde_json::json!({"birth_date": "1966-03-01"});
    let child = serde_json::json!({"birth_date": "2008-03-02"});
    let adult = serde_json::json!({"birth_date": "1980-01-01"});
    let grade3_mental = serde_json::json!({"birth_date": "1980-01-01", "disability": {"grade": 3, "kind": "mental"}});
    let veteran = serde_json::json!({"birth_date": "1980-01-01", "disabled_veteran_grade": 4});
    assert_eq!(
        check(serde_json::json!([elderly, child]), ""),
        Ok(Value::Bool(true))
    );
    assert_eq!(
        check(serde_json::json!([elderly, adult]), ""),
        Ok(Value::Bool(false))
    );
    assert_eq!(
        check(serde_json::json!([grade3_mental]), ""),
        Ok(Value::Bool(true))
    );
    assert_eq!(
        check(serde_json::json!([grade3_mental]), ", false"),
        Ok(Value::Bool(false))
    );
    assert_eq!(
        check(serde_json::json!([veteran]), ""),
        Ok(Value::Bool(true))
    );
}

#[test]
fn reports_static_errors_with_codes_and_offsets() {
    let cases: &[(&str, &str, usize, usize)] = &[
        ("n +", "E_EXPR_SYNTAX", 3, 0),
        ("houshold.members", "E_UNKNOWN_VARIABLE", 0, 8),
        ("frobnicate(1)", "E_UNKNOWN_FUNCTION", 0, 10),
        ("round(1, 2, 3)", "E_ARITY", 0, 14),
        ("\"a\" * 2", "E_TYPE", 0, 7),
        ("d < 3", "E_TYPE", 0, 5),
        ("1 + ok", "E_TYPE", 0, 6),
        ("members[0].agee", "E_UNKNOWN_FIELD", 0, 15),
        ("area == 'urbn'", "E_TYPE", 8, 6),
        ("all(members, 1)", "E_TYPE", 13, 1),
        ("all(members, m => m.age)", "E_TYPE", 0, 24),
        ("ok ? 1 : 'a'", "E_TYPE", 0, 12),
        ("len(n)", "E_TYPE", 0, 6),
        ("not n", "E_TYPE", 0, 5),
        ("n.x", "E_TYPE", 0, 3),
        ("99999999999999999999", "E_EXPR_SYNTAX", 0, 20),
        ("in", "E_EXPR_SYNTAX", 0, 0),
    ];
    for (src, code, offset, len) in cases {
        let errors = Expr::compile(src, &types()).expect_err(src);
        let first = &errors[0];
        assert_eq!(
            (first.code, first.offset, first.len),
            (*code, *offset, *len),
            "{src}: {errors:?}"
        );
    }
    let errors = Expr::compile("houshold", &types()).expect_err("unknown");
    assert_eq!(errors[0].hint.as_deref(), Some("did you mean `household`?"));
    // Every problem is reported, not just the first.
    let errors = Expr::compile("foo + bar * 'x'", &types()).expect_err("many");
    assert!(errors.len() >= 2, "{errors:?}");
}

#[test]
fn infers_result_types_and_variables() {
    let cases: &[(&str, Type)] = &[
        ("1 + 2", Type::Int),
        ("1 + x", Type::Decimal),
        ("n / 2", Type::Decimal),
        ("d", Type::Date),
        ("members[0].age >= 60", Type::Bool),
        ("map(members, m => m.name)", Type::list(Type::String)),
        ("form.anything", Type::Any),
        ("lower_median(map(votes, v => 1))", Type::Decimal),
        ("sort(members, m => m.age)", types()["members"].clone()),
    ];
    for (src, ty) in cases {
        let e = Expr::compile(src, &types()).expect(src);
        assert_eq!(e.result_type(), ty, "{src}");
    }
    let e = Expr::compile("all(members, m => m.age > n) && ok", &types()).expect("compiles");
    assert_eq!(
        e.variables(),
        vec!["members".to_string(), "n".into(), "ok".into()]
    );
    assert_eq!(e.source(), "all(members, m => m.age > n) && ok");
}

#[test]
fn runtime_errors_are_values() {
    let cases: &[(&str, &str)] = &[
        ("n / 0", "division by zero"),
        ("x % 0", "division by zero"),
        ("members[5]", "out of range"),
        ("nothing.field", "of null"),
        ("median([])", "median"),
        ("date('2026-02-30')", "not a date"),
        ("round(x, 40)", "places"),
    ];
    for (src, needle) in cases {
        let err = eval(src).expect_err(src);
        assert!(err.contains(needle), "{src}: {err}");
    }
}

#[test]
fn limits_are_enforced_without_overflowing_the_stack() {
    let long = "1 + ".repeat(2000) + "1";
    assert_eq!(
        Expr::compile(&long, &types()).expect_err("long")[0].code,
        "E_TOO_LONG"
    );
    let nested = "(".repeat(1000) + "1" + &")".repeat(1000);
    assert_eq!(
        Expr::compile(&nested, &types()).expect_err("nested")[0].code,
        "E_TOO_DEEP"
    );
    let chain = "1".to_string() + &" + 1".repeat(100);
    assert_eq!(
        Expr::compile(&chain, &types()).expect_err("chain")[0].code,
        "E_TOO_DEEP"
    );
    let nots = "!".repeat(500) + "ok";
    assert_eq!(
        Expr::compile(&nots, &types()).expect_err("nots")[0].code,
        "E_TOO_DEEP"
    );
    let negs = "- ".repeat(500) + "1";
    assert_eq!(
        Expr::compile(&negs, &types()).expect_err("negs")[0].code,
        "E_TOO_DEEP"
    );
    // A nested loop over 400 × 400 items exceeds the step budget.
    let mut types = types();
    types.insert("xs".into(), Type::list(Type::Int));
    let mut env = BTreeMap::new();
    env.insert(
        "xs".to_string(),
        Value::List((0..400).map(Value::Int).collect()),
    );
    let e = Expr::compile("count(xs, a => any(xs, b => b > 1000))", &types).expect("compiles");
    assert_eq!(
        e.eval(&env),
        Err(EvalError::BudgetExhausted { limit: MAX_STEPS })
    );
}

proptest! {
    #[test]
    fn compiling_arbitrary_text_never_panics(src in "\\PC{0,200}") {
        let _ = Expr::compile(&src, &types());
    }

    #[test]
    fn compiling_operator_soup_never_panics(src in "[-+*/%!?:()\\[\\]a-z0-9.,'\" <>=&|]{0,300}") {
        if let Ok(e) = Expr::compile(&src, &types()) {
            let _ = e.eval(&values());
        }
    }
}

#[test]
fn stable_percent_is_fnv1a_of_the_key_mod_100() {
    // Published FNV-1a 64-bit test vectors (the FNV reference's test suite).
    let vectors: &[(&str, u64)] = &[
        ("", 0xcbf2_9ce4_8422_2325),
        ("a", 0xaf63_dc4c_8601_ec8c),
        ("foobar", 0x8594_4171_f739_67e8),
    ];
    for (key, hash) in vectors {
        let want = i64::try_from(hash % 100).expect("below 100");
        assert_eq!(builtins::stable_percent_of(key), want, "{key:?}");
        assert_eq!(
            show(&format!("stable_percent('{key}')")),
            want.to_string(),
            "{key:?}"
        );
    }
    // Non-ASCII keys hash their UTF-8 bytes; every result is a percentage.
    for key in ["tekun-1", "特困-双鸭山", "x".repeat(500).as_str()] {
        let p = builtins::stable_percent_of(key);
        assert!((0..100).contains(&p), "{key}: {p}");
    }
    assert!(show("stable_percent(n)").starts_with("error: [ExprError { code: \"E_TYPE\""));
}

#[test]
fn birthday_and_with() {
    let cases: &[(&str, &str)] = &[
        ("birthday(date('2008-05-10'), 18)", "\"2026-05-10\""),
        // A 29 February birthday is completed on 1 March in a common year, as `age` counts.
        ("birthday(date('2008-02-29'), 18)", "\"2026-03-01\""),
        ("birthday(date('2008-02-29'), 16)", "\"2024-02-29\""),
        ("birthday(date('2008-03-01'), 18)", "\"2026-03-01\""),
        ("birthday(date('2008-12-31'), 18)", "\"2026-12-31\""),
        ("birthday(date('2008-05-10'), 0)", "\"2008-05-10\""),
        (
            "age(date('2008-02-29'), birthday(date('2008-02-29'), 18))",
            "18",
        ),
        ("birthday(date('2008-05-10'), -1)", "error: birthday: years"),
        ("with(form, 'reason', 'flood').reason", "\"flood\""),
        ("with(form, 'extra', 3).extra", "3"),
        ("map(household.members, m => with(m, 'age', 1))[2].age", "1"),
        ("with(form, 'extra', 3).reason", "\"fire\""),
        ("with(n, 'x', 1)", "error: [ExprError { code: \"E_TYPE\""),
    ];
    for (src, want) in cases {
        let got = show(src);
        assert!(got.starts_with(want), "{src}: got {got}, want {want}");
    }
    // The household itself is left as it was: `with` returns a copy.
    assert_eq!(show("household.members[2].age"), "12");
}
