//! Table-driven checks of every boundary assess.md names, against the shipped
//! rule files and the example policy (standard urban 700 / rural 520).

use std::path::Path;

use jiuzhu_rules::{Assessment, Policy, RuleSet, assess, parse_case};
use serde_json::{Value, json};

fn policy() -> Policy {
    Policy::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/examples/policy.yaml"))
        .expect("policy")
}

fn member(id: &str, birth: &str) -> Value {
    json!({"id": id, "birth_date": birth})
}

fn with(mut m: Value, key: &str, value: Value) -> Value {
    m[key] = value;
    m
}

fn case(program: &str, members: Vec<Value>, savings: &str) -> Value {
    json!({
        "program": program,
        "as_of": "2026-03-01",
        "area": "urban",
        "household": {"members": members, "savings": savings}
    })
}

fn run(case: &Value) -> Assessment {
    let parsed = parse_case(case).unwrap_or_else(|e| panic!("{e:?}"));
    assess(&RuleSet::builtin(), &policy(), &parsed)
}

fn field(a: &Assessment, name: &str) -> Value {
    a.to_json()[name].clone()
}

fn wage(amount: &str) -> Value {
    json!([{"kind": "wage", "monthly": amount}])
}

#[test]
fn supplement_categories_turn_on_the_birthday() {
    // (birth date, expected categories) for an otherwise income-less single member.
    let cases = [
        ("1966-03-01", json!(["elderly"])),
        ("1966-03-02", json!([])),
        ("2008-03-01", json!([])),
        ("2008-03-02", json!(["minor"])),
        // 29 Feb 2008: 18 is reached on 1 Mar 2026, the as_of.
        ("2008-02-29", json!([])),
    ];
    for (birth, want) in cases {
        let a = run(&case("dibao", vec![member("m1", birth)], "0"));
        assert!(a.eligible(), "{birth}");
        let got = a
            .supplements
            .first()
            .map(|s| json!(s.categories))
            .unwrap_or(json!([]));
        assert_eq!(got, want, "{birth}");
    }
    // A 29 Feb birthday the day before: still 17 on 28 Feb in a common year.
    let mut c = case("dibao", vec![member("m1", "2008-02-29")], "0");
    c["as_of"] = json!("2026-02-28");
    assert_eq!(run(&c).supplements[0].categories, vec!["minor".to_string()]);
}

#[test]
fn savings_and_vehicle_caps_at_and_one_fen_above() {
    // Cap: 24 × 700 per person; two members → 33600.00.
    let two = || vec![member("m1", "1980-01-01"), member("m2", "1980-01-01")];
    let at = run(&case("dibao", two(), "33600.00"));
    assert!(at.eligible());
    let above = run(&case("dibao", two(), "33600.01"));
    assert!(!above.eligible());
    assert_eq!(field(&above, "reasons"), json!(["assets"]));
    assert_eq!(field(&above, "category"), Value::Null);
    assert_eq!(field(&above, "monthly_amount"), json!("0.00"));

    let vehicle = |price: &str, mobility: bool| {
        let mut c = case("dibao", vec![member("m1", "1980-01-01")], "0");
        c["household"]["vehicles"] = json!([{"price": price, "disabled_mobility": mobility}]);
        run(&c)
    };
    assert!(vehicle("16800.00", true).eligible());
    assert_eq!(
        field(&vehicle("16800.01", true), "reasons"),
        json!(["vehicle"])
    );
    assert_eq!(
        field(&vehicle("100.00", false), "reasons"),
        json!(["vehicle"])
    );
}

#[test]
fn excluded_income_kinds_are_not_counted() {
    for kind in [
        "pension_basic",
        "social_assistance",
        "traffic_accident_aid",
        "preferential_care",
        "reward",
    ] {
        let m = with(
            member("m1", "1980-01-01"),
            "income",
            json!([{"kind": kind, "monthly": "5000"}]),
        );
        let a = run(&case("dibao", vec![m], "0"));
        assert_eq!(field(&a, "per_capita_income"), json!("0.00"), "{kind}");
        assert_eq!(field(&a, "base_amount"), json!("700.00"), "{kind}");
    }
    for kind in ["business", "property", "transfer", "other"] {
        let m = with(
            member("m1", "1980-01-01"),
            "income",
            json!([{"kind": kind, "monthly": "100"}]),
        );
        let a = run(&case("dibao", vec![m], "0"));
        assert_eq!(field(&a, "per_capita_income"), json!("100.00"), "{kind}");
    }
}

#[test]
fn employment_cost_deduction_is_capped() {
    // 20 % of the wage up to 300: 1000 → 800; 1500 → 1200 (exactly the cap); 2000 → 1700.
    for (wage_amount, counted) in [("1000", "800.00"), ("1500", "1200.00"), ("2000", "1700.00")] {
        let m = with(member("m1", "1980-01-01"), "income", wage(wage_amount));
        let a = run(&case("low_income", vec![m], "0"));
        assert_eq!(
            field(&a, "per_capita_income"),
            json!(counted),
            "{wage_amount}"
        );
    }
}

#[test]
fn categories_do_not_stack() {
    let m = with(
        with(
            with(member("m1", "1950-01-01"), "serious_illness", json!(true)),
            "martyr_family",
            json!(true),
        ),
        "disability",
        json!({"grade": 1, "kind": "physical"}),
    );
    let a = run(&case("dibao", vec![m], "0"));
    assert_eq!(a.supplements.len(), 1);
    assert_eq!(
        a.supplements[0].categories,
        [
            "severe_disability",
            "serious_illness",
            "elderly",
            "martyr_family"
        ]
        .map(String::from)
        .to_vec()
    );
    assert_eq!(field(&a, "supplements")[0]["amount"], json!("105.00"));
    assert_eq!(field(&a, "monthly_amount"), json!("805.00"));
}

#[test]
fn grade3_intellectual_counts_as_severe_only_when_the_policy_says_so() {
    let m = with(
        member("m1", "1980-01-01"),
        "disability",
        json!({"grade": 3, "kind": "intellectual"}),
    );
    let a = run(&case("dibao", vec![m.clone()], "0"));
    assert_eq!(
        a.supplements[0].categories,
        vec!["severe_disability".to_string()]
    );
    let mut p = policy();
    assert!(p.set(
        "dibao.severe_includes_grade3_intellectual_mental",
        jiuzhu_rules::Value::Bool(false)
    ));
    let a = assess(
        &RuleSet::builtin(),
        &p,
        &parse_case(&case("dibao", vec![m], "0")).expect("case"),
    );
    assert!(a.supplements.is_empty());
}

#[test]
fn expenditure_type_with_rigid_spending_above_income() {
    let m = with(member("m1", "1980-01-01"), "income", wage("1100"));
    let mut c = case("dibao", vec![m], "0");
    // Counted 880 ≥ 700; rigid spending 1000 > income → adjusted income 0 → base 700.
    c["household"]["rigid_expenses"] = json!("1000.00");
    let a = run(&c);
    assert_eq!(a.category(), Some("expenditure"));
    assert_eq!(field(&a, "base_amount"), json!("700.00"));
    // Just enough spending to bring the adjusted income to the standard: not eligible.
    c["household"]["rigid_expenses"] = json!("180.00");
    let a = run(&c);
    assert!(!a.eligible());
    assert_eq!(field(&a, "reasons"), json!(["income_above_standard"]));
}

#[test]
fn single_person_household_coverage() {
    let ill = with(member("m1", "1980-01-01"), "serious_illness", json!(true));
    let earner = with(member("m2", "1980-01-01"), "income", wage("2000"));
    // Counted 1700 over 2 members: 850 per head, between 700 and 1050.
    let a = run(&case("dibao", vec![ill.clone(), earner.clone()], "0"));
    assert_eq!(a.category(), Some("single_person"));
    assert_eq!(field(&a, "base_amount"), json!("450.00"));
    assert_eq!(
        field(&a, "supplements"),
        json!([{"member": "m1", "categories": ["serious_illness"], "amount": "105.00"}])
    );
    // A veteran of grade 6 qualifies but is in no supplement category: an empty list.
    let veteran = with(
        member("m1", "1980-01-01"),
        "disabled_veteran_grade",
        json!(6),
    );
    let a = run(&case("dibao", vec![veteran, earner.clone()], "0"));
    assert_eq!(
        field(&a, "supplements"),
        json!([{"member": "m1", "categories": [], "amount": "105.00"}])
    );
    // Without a qualifying member: income above the standard.
    let plain = member("m1", "1980-01-01");
    let a = run(&case("dibao", vec![plain, earner.clone()], "0"));
    assert_eq!(field(&a, "reasons"), json!(["income_above_standard"]));
    // At 1.5 × the standard per head (counted 2100 over 2) the bound fails.
    let big = with(member("m2", "1980-01-01"), "income", wage("2400"));
    let a = run(&case("dibao", vec![ill, big], "0"));
    assert_eq!(field(&a, "per_capita_income"), json!("1050.00"));
    assert_eq!(field(&a, "reasons"), json!(["income_above_standard"]));
}

#[test]
fn low_income_band() {
    let single = |amount: &str| {
        vec![with(
            member("m1", "1980-01-01"),
            "income",
            json!([{"kind": "business", "monthly": amount}]),
        )]
    };
    let below = run(&case("low_income", single("699.99"), "0"));
    assert_eq!(field(&below, "reasons"), json!(["dibao_eligible"]));
    let at = run(&case("low_income", single("700.00"), "0"));
    assert_eq!(
        (at.category(), field(&at, "monthly_amount")),
        (Some("low_income"), json!("0.00"))
    );
    let top = run(&case("low_income", single("1050.00"), "0"));
    assert_eq!(
        field(&top, "reasons"),
        json!(["income_above_low_income_line"])
    );
}

#[test]
fn tekun_care_tiers() {
    for (adl, tier, care) in [
        (0, "self", "186.00"),
        (1, "semi", "310.00"),
        (3, "semi", "310.00"),
        (4, "full", "465.00"),
        (6, "full", "465.00"),
    ] {
        let m = with(member("p1", "1950-01-01"), "adl_not_met", json!(adl));
        let a = run(&case("tekun", vec![m], "0"));
        assert_eq!(a.care_tier(), Some(tier), "{adl}");
        assert_eq!(field(&a, "care_amount"), json!(care), "{adl}");
        assert_eq!(field(&a, "basic_amount"), json!("910.00"), "{adl}");
    }
}

#[test]
fn tekun_inability_to_work_and_reasons() {
    let cases: Vec<(Value, Value)> = vec![
        (member("p1", "1980-01-01"), json!(["able_to_work"])),
        (
            with(member("p1", "2003-03-02"), "in_school", json!(true)),
            json!([]),
        ),
        (
            with(member("p1", "2001-03-01"), "in_school", json!(true)),
            json!(["able_to_work"]),
        ),
        (
            with(
                member("p1", "1980-01-01"),
                "disability",
                json!({"grade": 3, "kind": "mental"}),
            ),
            json!([]),
        ),
        (
            with(
                member("p1", "1980-01-01"),
                "disability",
                json!({"grade": 3, "kind": "physical"}),
            ),
            json!(["able_to_work"]),
        ),
        (
            with(
                member("p1", "1980-01-01"),
                "disability",
                json!({"grade": 1, "kind": "visual"}),
            ),
            json!([]),
        ),
        (
            with(
                member("p1", "1980-01-01"),
                "disability",
                json!({"grade": 1, "kind": "hearing"}),
            ),
            json!(["able_to_work"]),
        ),
        (
            with(
                member("p1", "1950-01-01"),
                "income",
                json!([{"kind": "other", "monthly": "700"}]),
            ),
            json!(["income_above_standard"]),
        ),
    ];
    for (m, reasons) in cases {
        let a = run(&case("tekun", vec![m.clone()], "0"));
        assert_eq!(field(&a, "reasons"), reasons, "{m}");
        if !a.eligible() {
            assert_eq!(field(&a, "base_amount"), json!("0.00"));
            assert!(field(&a, "care_tier").is_string(), "tier still reported");
        }
    }
    let mut c = case("tekun", vec![member("p1", "1950-01-01")], "0");
    c["household"]["supporter_able"] = json!(true);
    assert_eq!(field(&run(&c), "reasons"), json!(["has_supporter"]));
    // Exactly one member.
    let two = case(
        "tekun",
        vec![member("p1", "1950-01-01"), member("p2", "1950-01-01")],
        "0",
    );
    assert!(parse_case(&two).is_err());
}

#[test]
fn temporary_aid_approval_ceilings_and_advance() {
    // Ceilings: township 3 × 700 = 2100, county 6 × 700 = 4200, even for a rural case.
    let cases = [
        ("2100.00", "township", "1000.00"),
        ("2100.01", "county", "1000.00"),
        ("4200.00", "county", "1000.00"),
        ("4200.01", "committee", "1000.00"),
        ("999.99", "township", "999.99"),
    ];
    for (amount, level, advance) in cases {
        let mut c = case(
            "temporary_aid",
            vec![member("m1", "1980-01-01")],
            "99999999",
        );
        c["area"] = json!("rural");
        c["request"] = json!({"kind": "emergency", "amount": amount});
        let a = run(&c);
        assert!(a.eligible(), "{amount}: no asset test");
        assert_eq!(a.approval_level(), Some(level), "{amount}");
        assert_eq!(field(&a, "advance_amount"), json!(advance), "{amount}");
        assert_eq!(field(&a, "standard"), json!("520.00"));
        assert_eq!(field(&a, "monthly_amount"), json!(amount));
    }
    // Expenditure requests: below the disposable-income line only, no advance.
    let request = |income: &str| {
        let m = with(
            member("m1", "1980-01-01"),
            "income",
            json!([{"kind": "business", "monthly": income}]),
        );
        let mut c = case("temporary_aid", vec![m], "0");
        c["request"] = json!({"kind": "expenditure", "amount": "3000"});
        run(&c)
    };
    let ok = request("2099.99");
    assert_eq!(
        (ok.category(), field(&ok, "advance_amount")),
        (Some("expenditure"), json!("0.00"))
    );
    let no = request("2100.00");
    assert_eq!(
        field(&no, "reasons"),
        json!(["income_above_disposable_line"])
    );
    assert_eq!(field(&no, "approval_level"), json!("county"));
}

#[test]
fn rounding_only_at_output_half_away_from_zero() {
    // Three members with 1000.01 counted in total: 333.3366… per head → 333.34.
    let members = vec![
        with(
            member("m1", "1980-01-01"),
            "income",
            json!([{"kind": "business", "monthly": "1000.01"}]),
        ),
        member("m2", "1980-01-01"),
        member("m3", "1980-01-01"),
    ];
    let a = run(&case("dibao", members, "0"));
    assert_eq!(field(&a, "per_capita_income"), json!("333.34"));
    assert_eq!(field(&a, "base_amount"), json!("1099.99"));
    assert_eq!(
        jiuzhu_rules::money("0.005".parse().expect("decimal")),
        "0.01"
    );
    assert_eq!(
        jiuzhu_rules::money("-0.005".parse().expect("decimal")),
        "-0.01"
    );
}

#[test]
fn input_errors_name_every_path() {
    let mut c = case("dibao", vec![member("m1", "2027-01-01")], "-1");
    c["household"]["members"][0]["income"] = json!([{"kind": "lottery", "monthly": "1e3"}]);
    c["request"] = json!({"kind": "emergency", "amount": "1"});
    c["surprise"] = json!(true);
    let errors = parse_case(&c).expect_err("invalid");
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    for want in [
        "$.surprise",
        "$.household.members[0].birth_date",
        "$.household.members[0].income[0].kind",
        "$.household.members[0].income[0].monthly",
        "$.household.savings",
        "$.request",
    ] {
        assert!(paths.contains(&want), "{want} in {paths:?}");
    }
    let empty = json!({"program": "dibao", "as_of": "2026-03-01", "area": "urban", "household": {"members": [], "savings": "0"}});
    assert_eq!(
        parse_case(&empty).expect_err("no members")[0].path,
        "$.household.members"
    );
    let aid = case("temporary_aid", vec![member("m1", "1980-01-01")], "0");
    assert_eq!(
        parse_case(&aid).expect_err("no request")[0].path,
        "$.request"
    );
}
