//! The shipped notification templates and the load-time checks.

mod support;

use std::path::Path;

use jiuzhu_adapters::notify::{TemplateError, TemplateProblem, TemplateSet};
use serde_json::{Value as Json, json};
use support::{sample_instance, shipped_templates};

/// Every template name the procedures of the spec emit.
const USED: &[&str] = &[
    "dibao_approved",
    "dibao_rejected",
    "dibao_missing_materials",
    "deadline_reminder",
    "task_reminder",
    "dibao_review_stopped",
    "tekun_approved",
    "tekun_rejected",
    "tekun_missing_materials",
    "tekun_withdrawn",
    "heating_aid_paid",
    "price_subsidy_paid",
    "temporary_aid_approved",
    "temporary_aid_rejected",
    "temporary_aid_missing_materials",
    "low_income_approved",
    "low_income_rejected",
    "low_income_missing_materials",
];

/// An effect as the engine would emit it for `template`.
fn sample_effect(template: &str) -> Json {
    let mut effect = json!({
        "type": "notification",
        "id": format!("case-1-{template}"),
        "instance": "case-1",
        "template": template,
        "to": "applicant",
    });
    let extra = match template {
        t if t.ends_with("_rejected") || t.ends_with("_review_stopped") => {
            json!({"reasons": ["家庭人均收入高于当地最低生活保障标准", "拥有机动车辆（残疾人功能性补偿代步车除外）"]})
        }
        t if t.ends_with("_missing_materials") => {
            json!({"missing": ["户口簿复印件", "家庭成员收入证明"]})
        }
        t if t.ends_with("_approved") => {
            json!({"monthly_amount": "705", "amount": "1500.00", "installments": 3,
                   "living_amount": "80.00", "care_amount": "100.00"})
        }
        "deadline_reminder" => json!({"to": null, "to_role": ["township_staff", "county_staff"]}),
        "task_reminder" => json!({
            "to": null,
            "to_role": ["township_staff"],
            "task": "survey",
            "due_at": "2026-03-09T09:30:00+00:00"
        }),
        "escalation" => json!({
            "type": "escalation",
            "to": null,
            "to_role": "county_staff",
            "task_label": "审核确认",
            "reason": "低保审核确认超过办理时限"
        }),
        "tekun_withdrawn" => json!({"from": "2027-05-01", "reason": "已由子女接回赡养"}),
        "heating_aid_paid" => {
            json!({"to": null, "to_role": "county_staff", "season": "2026-2027",
                   "paid_households": 12, "total": "3600.00", "note": ""})
        }
        "price_subsidy_paid" => {
            json!({"to": null, "to_role": "county_staff", "month": "2026-06",
                   "paid_households": 12, "total": "1250.00", "note": ""})
        }
        "dibao_standard_adjusted" => {
            json!({"to": null, "to_role": "county_staff", "effective_from": "2026-07-01",
                   "adjusted": 12, "total": "8460.00", "rise_urban": "30.00",
                   "rise_rural": "25.00", "note": ""})
        }
        "referral_sent" | "referral_reminder" => json!({"to": null, "to_department": "medical",
            "need": "medical"}),
        other => panic!("no sample effect for {other}"),
    };
    if let (Some(effect), Some(extra)) = (effect.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            effect.insert(k.clone(), v.clone());
        }
    }
    effect
}

#[test]
fn every_template_the_procedures_use_is_shipped() {
    let templates = shipped_templates();
    templates.check_names(USED).expect("no template missing");
    let err = templates
        .check_names(&[
            "dibao_approved",
            "orphan_allowance_paid",
            "funeral_aid_paid",
        ])
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "no notification template for: funeral_aid_paid, orphan_allowance_paid"
    );
}

#[test]
fn every_shipped_template_renders_with_a_sample_case() {
    let mut templates = shipped_templates();
    templates.set_org(&support::shipped_org());
    for name in templates.names().map(str::to_string).collect::<Vec<_>>() {
        let rendered = templates
            .render(&name, &sample_effect(&name), &sample_instance())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!rendered.subject.is_empty(), "{name}: empty subject");
        assert!(
            !rendered.subject.contains('\n'),
            "{name}: multi-line subject"
        );
        assert!(!rendered.body.contains("{{"), "{name}: unrendered tag");
        assert!(
            !rendered.body.contains("\n\n\n"),
            "{name}: ragged blank lines:\n{}",
            rendered.body
        );
        if sample_effect(&name)["to"] == "applicant" {
            assert!(
                rendered.body.starts_with("张桂兰："),
                "{name}:\n{}",
                rendered.body
            );
            assert!(
                rendered
                    .body
                    .trim_end()
                    .ends_with("\n双鸭山市尖山区富安街道"),
                "{name}: signed by the township:\n{}",
                rendered.body
            );
        }
    }
}

#[test]
fn a_rejection_lists_the_reasons_and_the_legal_remedies() {
    let templates = shipped_templates();
    let rendered = templates
        .render(
            "dibao_rejected",
            &sample_effect("dibao_rejected"),
            &sample_instance(),
        )
        .unwrap();
    let body = &rendered.body;
    assert!(
        body.contains("  - 家庭人均收入高于当地最低生活保障标准\n"),
        "{body}"
    );
    assert!(body.contains("  - 拥有机动车辆"), "{body}");
    assert!(body.contains("六十日内依法申请行政复议"), "{body}");
    assert!(
        body.contains("六个月内依法向人民法院提起行政诉讼"),
        "{body}"
    );
    assert_eq!(rendered.subject, "最低生活保障审核确认结果通知（不予批准）");

    // An empty reason (a county check without findings) is not a blank bullet.
    let mut effect = sample_effect("dibao_rejected");
    effect["reasons"] = json!([""]);
    let body = templates
        .render("dibao_rejected", &effect, &sample_instance())
        .unwrap()
        .body;
    assert!(body.contains("具体理由请向经办机构咨询"), "{body}");
    assert!(!body.contains("  - \n"), "{body}");
}

#[test]
fn approval_and_missing_materials_show_the_concrete_data() {
    let templates = shipped_templates();
    let approved = templates
        .render(
            "dibao_approved",
            &sample_effect("dibao_approved"),
            &sample_instance(),
        )
        .unwrap();
    assert!(
        approved.body.contains("每月 705.00 元"),
        "{}",
        approved.body
    );

    let missing = templates
        .render(
            "tekun_missing_materials",
            &sample_effect("tekun_missing_materials"),
            &sample_instance(),
        )
        .unwrap();
    assert!(
        missing
            .body
            .contains("  1. 户口簿复印件\n  2. 家庭成员收入证明\n"),
        "{}",
        missing.body
    );
}

#[test]
fn reminders_name_roles_in_chinese_and_times_in_local_time() {
    let mut templates = shipped_templates();
    templates.set_org(&support::shipped_org());
    let rendered = templates
        .render(
            "task_reminder",
            &sample_effect("task_reminder"),
            &sample_instance(),
        )
        .unwrap();
    // 09:30 UTC is 17:30 in China.
    assert_eq!(rendered.subject, "待办提醒：survey，请于2026年3月9日前办理");
    assert!(
        rendered.body.starts_with("乡镇社会救助经办人："),
        "{}",
        rendered.body
    );
    assert!(
        rendered.body.contains("将于2026年3月9日 17:30到期"),
        "{}",
        rendered.body
    );

    let deadline = templates
        .render(
            "deadline_reminder",
            &sample_effect("deadline_reminder"),
            &sample_instance(),
        )
        .unwrap();
    assert!(
        deadline
            .body
            .starts_with("乡镇社会救助经办人、县区民政局经办人（核对中心）："),
        "{}",
        deadline.body
    );
}

#[test]
fn a_missing_required_variable_is_named_at_render_time() {
    let templates = shipped_templates();
    let mut effect = sample_effect("dibao_approved");
    effect.as_object_mut().unwrap().remove("monthly_amount");
    let mut instance = sample_instance();
    instance.as_object_mut().unwrap().remove("monthly_amount");
    let err = templates
        .render("dibao_approved", &effect, &instance)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "template `dibao_approved` needs the variable `monthly_amount`, which neither the effect nor the instance has"
    );
    assert!(matches!(
        templates.render("nope", &effect, &instance),
        Err(TemplateError::NotFound(_))
    ));
}

fn load(name: &str, yaml: &str) -> Result<TemplateSet, TemplateError> {
    TemplateSet::from_sources(&[(name, Path::new("templates/x.yaml"), yaml)])
}

fn problems(result: Result<TemplateSet, TemplateError>) -> Vec<TemplateProblem> {
    match result {
        Err(TemplateError::Invalid(problems)) => problems,
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("the template loaded"),
    }
}

#[test]
fn an_unknown_variable_fails_at_load_naming_template_and_variable() {
    let yaml = "subject: 通知\nvariables: [applicant_name]\nbody: |\n  {{ applicant_name }}，金额 {{ monthy_amount | money }}\n";
    let problems = problems(load("dibao_approved", yaml));
    assert_eq!(problems.len(), 1);
    assert_eq!(
        problems[0].to_string(),
        "template `dibao_approved` (body) uses the variable `monthy_amount`, which it does not declare (declared: applicant_name); add it to `variables:` or `optional:`"
    );
}

#[test]
fn variables_hidden_in_conditions_loops_and_filters_are_checked_too() {
    let yaml = r#"
subject: "{% if urgent %}急{% endif %}通知"
variables: [reasons]
optional: [unit]
body: |
  {% for r in reasons %}{{ loop.index }} {{ r | replace(from="a", to=suffix) }}{% endfor %}
  {% set office = unit | unit_name %}{{ office }}{{ contact.phone }}
"#;
    let found: Vec<String> = problems(load("t", yaml))
        .iter()
        .map(|p| match p {
            TemplateProblem::UnknownVariable { part, variable, .. } => format!("{part}:{variable}"),
            other => panic!("unexpected {other}"),
        })
        .collect();
    assert_eq!(found, ["subject:urgent", "body:suffix", "body:contact"]);
}

#[test]
fn unknown_filters_functions_includes_and_bad_yaml_are_all_reported_at_once() {
    let sources = [
        ("a", "subject: x\nbody: \"{{ 1 | moneyy }}\"\n"),
        ("b", "subject: x\nbody: \"{{ now() }}\"\n"),
        ("c", "subject: x\nbody: \"{% include 'footer' %}\"\n"),
        ("d", "subject: x\nbody: \"{% if %}\"\n"),
        ("e", "subject: x\nbody: y\nvariabels: [a]\n"),
        ("f", "subject: x\nvariables: [a]\noptional: [a]\nbody: y\n"),
    ];
    let triples: Vec<(&str, &Path, &str)> = sources
        .iter()
        .map(|(n, y)| (*n, Path::new("templates/t.yaml"), *y))
        .collect();
    let err = TemplateSet::from_sources(&triples).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("6 problem(s) in the notification templates:"),
        "{text}"
    );
    let problems = problems(Err(err));
    assert!(
        matches!(&problems[0], TemplateProblem::UnknownFilter { template, filter, .. } if template == "a" && filter == "moneyy")
    );
    assert!(
        matches!(&problems[1], TemplateProblem::Forbidden { construct, .. } if construct == "function call `now()`")
    );
    assert!(
        matches!(&problems[2], TemplateProblem::Forbidden { construct, .. } if construct.contains("include"))
    );
    assert!(matches!(&problems[3], TemplateProblem::Syntax { template, .. } if template == "d"));
    assert!(
        matches!(&problems[4], TemplateProblem::Yaml { line: 3, .. }),
        "{}",
        problems[4]
    );
    assert!(
        matches!(&problems[5], TemplateProblem::DeclaredTwice { variable, .. } if variable == "a")
    );
}

#[test]
fn money_is_formatted_as_decimal_never_through_floats() {
    let yaml = "subject: x\nvariables: [a, b, c]\nbody: \"{{ a | money }} {{ b | money }} {{ c | money }}\"\n";
    let set = load("m", yaml).unwrap();
    let rendered = set
        .render(
            "m",
            &json!({"a": "0.1", "b": "1234567890123.455", "c": 705}),
            &json!({}),
        )
        .unwrap();
    assert_eq!(rendered.body, "0.10 1234567890123.46 705.00\n");
    let err = set
        .render("m", &json!({"a": "abc", "b": "1", "c": "1"}), &json!({}))
        .unwrap_err();
    assert!(matches!(err, TemplateError::Render { .. }), "{err}");
}
