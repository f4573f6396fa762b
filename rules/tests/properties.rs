//! Properties of the assessment over generated households.

use std::path::Path;

use jiuzhu_rules::{Policy, RuleSet, assess, parse_case};
use proptest::prelude::*;
use rust_decimal::Decimal;
use serde_json::json;

fn policy() -> Policy {
    Policy::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/examples/policy.yaml"))
        .expect("policy")
}

const KINDS: [&str; 10] = [
    "wage",
    "business",
    "property",
    "transfer",
    "pension_basic",
    "social_assistance",
    "traffic_accident_aid",
    "preferential_care",
    "reward",
    "other",
];

fn member_strategy() -> impl Strategy<Value = serde_json::Value> {
    (
        1940i32..2025,
        prop::collection::vec((0usize..10, 0u32..400_000), 0..3),
        any::<bool>(),
        prop::option::of((1i64..=4, 0usize..7)),
        0i64..=6,
    )
        .prop_map(|(year, income, ill, disability, adl)| {
            let kinds = ["physical", "intellectual", "mental", "visual", "hearing", "speech", "multiple"];
            json!({
                "id": format!("m{year}"),
                "birth_date": format!("{year}-06-15"),
                "serious_illness": ill,
                "adl_not_met": adl,
                "disability": disability.map(|(g, k)| json!({"grade": g, "kind": kinds[k]})),
                "income": income.iter().map(|(k, cents)| json!({"kind": KINDS[*k], "monthly": Decimal::new(i64::from(*cents), 2).to_string()})).collect::<Vec<_>>(),
            })
        })
}

fn household_case(
    program: &str,
    members: Vec<serde_json::Value>,
    savings: u32,
    rigid: u32,
) -> serde_json::Value {
    let members: Vec<_> = members
        .into_iter()
        .enumerate()
        .map(|(i, mut m)| {
            m["id"] = json!(format!("m{i}"));
            m
        })
        .collect();
    json!({
        "program": program,
        "as_of": "2026-03-01",
        "area": "urban",
        "household": {"members": members, "savings": savings.to_string(), "rigid_expenses": rigid.to_string()},
        "request": if program == "temporary_aid" { json!({"kind": "emergency", "amount": "3000"}) } else { serde_json::Value::Null },
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn amounts_are_never_negative(
        program in prop::sample::select(vec!["dibao", "low_income", "temporary_aid"]),
        members in prop::collection::vec(member_strategy(), 1..5),
        savings in 0u32..50_000,
        rigid in 0u32..3_000,
    ) {
        let case = parse_case(&household_case(program, members, savings, rigid)).expect("valid case");
        let a = assess(&RuleSet::builtin(), &policy(), &case);
        prop_assert!(a.monthly_amount() >= Decimal::ZERO);
        prop_assert!(a.base_amount >= Decimal::ZERO);
        prop_assert!(a.supplements.iter().all(|s| s.amount >= Decimal::ZERO));
        prop_assert!(!a.reasons.contains(&"rule_error".to_string()), "{:?}", a.trace());
        prop_assert_eq!(a.eligible(), a.reasons.is_empty());
    }

    #[test]
    fn tekun_amounts_are_never_negative(member in member_strategy(), savings in 0u32..30_000) {
        let case = parse_case(&household_case("tekun", vec![member], savings, 0)).expect("valid case");
        let a = assess(&RuleSet::builtin(), &policy(), &case);
        prop_assert!(a.monthly_amount() >= Decimal::ZERO);
        prop_assert!(!a.reasons.contains(&"rule_error".to_string()));
    }

    #[test]
    fn adding_income_never_raises_the_dibao_amount(
        members in prop::collection::vec(member_strategy(), 1..5),
        savings in 0u32..20_000,
        rigid in 0u32..2_000,
        who in 0usize..5,
        kind in 0usize..10,
        extra_cents in 1u32..300_000,
    ) {
        let before_json = household_case("dibao", members, savings, rigid);
        let mut after_json = before_json.clone();
        let n = after_json["household"]["members"].as_array().map_or(1, Vec::len);
        let entry = json!({"kind": KINDS[kind], "monthly": Decimal::new(i64::from(extra_cents), 2).to_string()});
        if let Some(list) = after_json["household"]["members"][who % n]["income"].as_array_mut() {
            list.push(entry);
        }
        let rules = RuleSet::builtin();
        let before = assess(&rules, &policy(), &parse_case(&before_json).expect("before"));
        let after = assess(&rules, &policy(), &parse_case(&after_json).expect("after"));
        // Within a category more income never pays more. Across categories assess.md
        // itself allows a rise (see `category_changes_can_raise_the_amount`).
        if before.category() == after.category() || !after.eligible() {
            prop_assert!(after.monthly_amount() <= before.monthly_amount(),
                "before {} after {}", before.monthly_amount(), after.monthly_amount());
        }
    }
}

/// assess.md deducts rigid spending only once income reaches the standard
/// (支出型), and covers 单人户 members only above it, so crossing the standard can
/// raise the amount. This pins that behaviour of the contract down so a change to
/// it is a deliberate decision, not an accident.
#[test]
fn category_changes_can_raise_the_amount() {
    let rules = RuleSet::builtin();
    let run = |business: &str, rigid: &str, ill: bool| {
        let c = json!({
            "program": "dibao", "as_of": "2026-03-01", "area": "urban",
            "household": {
                "members": [
                    {"id": "m1", "birth_date": "1980-01-01", "serious_illness": ill},
                    {"id": "m2", "birth_date": "1980-01-01", "income": [{"kind": "business", "monthly": business}]}
                ],
                "savings": "0", "rigid_expenses": rigid
            }
        });
        assess(&rules, &policy(), &parse_case(&c).expect("case"))
    };
    // Income type just below the standard: 1 yuan plus the ill member's 105.
    let below = run("1399.00", "0", true);
    assert_eq!(
        (below.category(), below.monthly_amount()),
        (Some("income"), Decimal::new(10600, 2))
    );
    // At the standard: 单人户, 450 + 105.
    let at = run("1400.00", "0", true);
    assert_eq!(
        (at.category(), at.monthly_amount()),
        (Some("single_person"), Decimal::new(55500, 2))
    );
    // Rigid spending counts only from the standard on.
    let below = run("1399.00", "500", false);
    let at = run("1400.00", "500", false);
    assert_eq!(
        (below.category(), at.category()),
        (Some("income"), Some("expenditure"))
    );
    assert!(at.monthly_amount() > below.monthly_amount());
}
