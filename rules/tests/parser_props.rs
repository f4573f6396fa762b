//! Property tests of the rules crate's parsers, with their case counts (stated in
//! BENCHMARKS.md): case files (`parse_case_text`) from mutations of a shipped example and
//! from arbitrary JSON trees, and expressions generated from the grammar (well-formed
//! mixes of literals, variables, operators, indexing and conditionals) through the parser,
//! the checker and the evaluator. Nothing panics; a refusal names where; an expression
//! the checker types as `bool` evaluates to a bool (or a runtime error, never another type).

use std::collections::BTreeMap;
use std::path::Path;

use jiuzhu_rules::expr::Expr;
use jiuzhu_rules::{InputLimits, Type, Value, parse_case_text};
use proptest::prelude::*;

const CASE_FILE_CASES: u32 = 1024;
const EXPRESSION_CASES: u32 = 2048;

fn example_case() -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/examples/dibao-single-person.case.json"),
    )
    .expect("the example case")
}

fn mutate(src: &str, edits: &[(usize, usize, String)]) -> String {
    let mut src = src.to_string();
    for (at, remove, insert) in edits {
        let mut at = at % (src.len() + 1);
        while !src.is_char_boundary(at) {
            at -= 1;
        }
        let mut end = (at + remove).min(src.len());
        while !src.is_char_boundary(end) {
            end -= 1;
        }
        src.replace_range(at..end, insert);
    }
    src
}

fn json_tree() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(|n| serde_json::json!(n)),
        "[0-9]{1,30}(\\.[0-9]{1,30})?".prop_map(serde_json::Value::String),
        "\\PC{0,12}".prop_map(serde_json::Value::String),
        prop_oneof![
            Just("1950-05-01"),
            Just("2026-02-30"),
            Just("urban"),
            Just("wage")
        ]
        .prop_map(|s| serde_json::Value::String(s.to_string())),
    ];
    leaf.prop_recursive(5, 64, 8, |inner| {
        let keys = prop_oneof![
            Just("program".to_string()),
            Just("as_of".to_string()),
            Just("area".to_string()),
            Just("household".to_string()),
            Just("members".to_string()),
            Just("income".to_string()),
            Just("monthly".to_string()),
            Just("birth_date".to_string()),
            Just("id".to_string()),
            "[a-z_]{1,8}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(keys, inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

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
        ("ok".to_string(), Type::Bool),
        ("members".to_string(), Type::list(member)),
    ]
    .into()
}

fn values() -> BTreeMap<String, Value> {
    let json = serde_json::json!({
        "n": 7,
        "x": "2.50",
        "s": "救助",
        "ok": true,
        "members": [
            {"age": 70, "name": "m1", "income": "100.50"},
            {"age": 12, "name": "m2", "income": "0"}
        ]
    });
    let types = types();
    match Value::from_json(&json) {
        Value::Object(map) => map
            .into_iter()
            .map(|(k, v)| {
                let ty = types.get(&k).cloned().expect("typed");
                let v = v.coerce(&ty, &k).expect("coerces");
                (k, v)
            })
            .collect(),
        _ => unreachable!("an object"),
    }
}

/// Well-formed expression text: literals, variables, unary and binary operators,
/// indexing, field access and conditionals, nested.
fn expression() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        (-1000i64..1000).prop_map(|n| n.to_string()),
        "[0-9]{1,4}\\.[0-9]{1,3}",
        Just("9223372036854775807".to_string()),
        Just("n".to_string()),
        Just("x".to_string()),
        Just("s".to_string()),
        Just("ok".to_string()),
        Just("true".to_string()),
        Just("'低保'".to_string()),
        Just("members[0].income".to_string()),
        Just("members[5].age".to_string()),
        Just("members".to_string()),
    ];
    leaf.prop_recursive(6, 48, 3, |inner| {
        let op = prop_oneof![
            Just("+"),
            Just("-"),
            Just("*"),
            Just("/"),
            Just("%"),
            Just("=="),
            Just("!="),
            Just("<"),
            Just(">="),
            Just("and"),
            Just("or"),
        ];
        prop_oneof![
            (inner.clone(), op, inner.clone()).prop_map(|(a, op, b)| format!("({a} {op} {b})")),
            inner.clone().prop_map(|a| format!("not ({a})")),
            inner.clone().prop_map(|a| format!("-({a})")),
            (inner.clone(), inner.clone(), inner)
                .prop_map(|(c, a, b)| format!("({c} ? {a} : {b})")),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CASE_FILE_CASES, ..ProptestConfig::default() })]

    #[test]
    fn mutated_case_files_parse_or_name_a_path(
        edits in prop::collection::vec(
            (0usize..100_000, 0usize..16, "[-a-z0-9 :,\"\\[\\]{}.\n]{0,6}"),
            1..5,
        )
    ) {
        let src = mutate(&example_case(), &edits);
        if let Err(errors) = parse_case_text(&src, &InputLimits::default()) {
            prop_assert!(!errors.is_empty());
            for e in &errors {
                prop_assert!(e.path.starts_with('$'), "{e:?}");
                prop_assert!(!e.message.is_empty(), "{e:?}");
            }
        }
    }

    #[test]
    fn arbitrary_json_case_files_parse_or_name_a_path(tree in json_tree()) {
        let src = tree.to_string();
        if let Err(errors) = parse_case_text(&src, &InputLimits::default()) {
            prop_assert!(!errors.is_empty());
            for e in &errors {
                prop_assert!(e.path.starts_with('$'), "{e:?}");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: EXPRESSION_CASES, ..ProptestConfig::default() })]

    #[test]
    fn generated_expressions_check_and_evaluate_without_panics(src in expression()) {
        let types = types();
        if let Ok(expr) = Expr::compile(&src, &types) {
            let result = expr.eval(&values());
            if expr.result_type() == &Type::Bool
                && let Ok(value) = &result
            {
                prop_assert!(matches!(value, Value::Bool(_) | Value::Null), "{src}: {value:?}");
            }
        }
    }
}
