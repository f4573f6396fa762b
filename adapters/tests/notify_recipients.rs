//! Recipient resolution from the applicant's contact data, roles over units
//! in the org file, and user ids; and how a notifier routes them.

mod support;

use std::sync::Arc;

use jiuzhu_adapters::notify::channel::{Channel, SendFuture};
use jiuzhu_adapters::notify::{
    ChannelName, Message, Notifier, NotifyError, Recipient, RecipientError, RecipientKind,
    Recipients, Routes,
};
use jiuzhu_engine::org::Org;
use serde_json::{Value as Json, json};
use support::{sample_instance, shipped_org, shipped_templates};

fn ids(recipients: &Recipients) -> Vec<String> {
    recipients
        .iter()
        .map(|r| {
            r.user_id
                .clone()
                .unwrap_or_else(|| format!("applicant:{}", r.name))
        })
        .collect()
}

fn effect(extra: Json) -> Json {
    let mut effect =
        json!({"type": "notification", "id": "dibao-1-e9", "template": "task_reminder"});
    if let (Some(e), Some(x)) = (effect.as_object_mut(), extra.as_object()) {
        e.extend(x.clone());
    }
    effect
}

#[test]
fn the_applicant_is_reached_through_the_contact_data() {
    let r = Recipients::resolve(
        &effect(json!({"to": "applicant"})),
        &sample_instance(),
        &shipped_org(),
    )
    .unwrap();
    assert_eq!(
        r.as_slice(),
        [Recipient {
            kind: RecipientKind::Applicant,
            user_id: None,
            name: "张桂兰".into(),
            email: Some("zhang.guilan@example.cn".into()),
            phone: Some("13800001234".into()),
        }]
    );

    let mut no_contact = sample_instance();
    no_contact["contact"] = json!({"phone": " "});
    let err = Recipients::resolve(
        &effect(json!({"to": "applicant"})),
        &no_contact,
        &shipped_org(),
    )
    .unwrap_err();
    assert_eq!(
        err,
        RecipientError::ApplicantWithoutContact {
            effect: "dibao-1-e9".into()
        }
    );
}

#[test]
fn roles_resolve_to_the_users_whose_unit_contains_the_case() {
    let org = shipped_org();
    let case = sample_instance(); // 双鸭山市/尖山区/富安街道/安邦社区
    let r =
        Recipients::resolve(&effect(json!({"to_role": "township_staff"})), &case, &org).unwrap();
    assert_eq!(ids(&r), ["fa_staff1", "fa_staff2"]);
    assert!(
        r.iter()
            .all(|r| r.kind == RecipientKind::Staff && r.email.is_some())
    );

    // A list of roles; county staff sit above every township of the county.
    let r = Recipients::resolve(
        &effect(json!({"to_role": ["township_head", "county_staff"]})),
        &case,
        &org,
    )
    .unwrap();
    assert_eq!(ids(&r), ["fa_head", "county_staff1", "county_staff2"]);

    // A village worker of another community does not cover this case: the
    // head of the case's township is told instead.
    let elsewhere = {
        let mut c = case.clone();
        c["unit"] = json!("双鸭山市/尖山区/富安街道/另一社区");
        c
    };
    let r = Recipients::resolve(
        &effect(json!({"to_role": "village_worker"})),
        &elsewhere,
        &org,
    )
    .unwrap();
    assert_eq!(ids(&r), ["fa_head"], "the nearest head, not the county's");

    // No open task: an empty list of roles goes to the unit's head too.
    let r = Recipients::resolve(&effect(json!({"to_role": []})), &case, &org).unwrap();
    assert_eq!(ids(&r), ["fa_head"]);

    // A county-level case has the county's head.
    let mut county_case = case.clone();
    county_case["unit"] = json!("双鸭山市/尖山区");
    let r = Recipients::resolve(&effect(json!({"to_role": []})), &county_case, &org).unwrap();
    assert_eq!(ids(&r), ["county_head"]);

    // A unit nobody heads: an error (the dispatcher's incident), never an
    // empty delivery.
    let mut headless = case.clone();
    headless["unit"] = json!("双鸭山市/宝山区/七星镇");
    for roles in [json!([]), json!("township_staff")] {
        let err =
            Recipients::resolve(&effect(json!({"to_role": roles})), &headless, &org).unwrap_err();
        assert!(matches!(err, RecipientError::NobodyInUnit { .. }), "{err}");
    }
}

#[test]
fn named_users_are_added_once() {
    let r = Recipients::resolve(
        &effect(json!({"to_user": "fa_head", "to_role": "township_head"})),
        &sample_instance(),
        &shipped_org(),
    )
    .unwrap();
    assert_eq!(ids(&r), ["fa_head"]);
}

#[test]
fn bad_addressing_is_reported_precisely() {
    let org = shipped_org();
    let case = sample_instance();
    let err = |extra: Json, case: &Json| {
        Recipients::resolve(&effect(extra), case, &org)
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        err(json!({}), &case),
        "notification dibao-1-e9: it names no recipient (`to`, `to_role`, `to_user` or `to_department`)"
    );
    assert_eq!(
        err(json!({"to": "mayor"}), &case),
        "notification dibao-1-e9: `to: mayor` is not a recipient (only `applicant`)"
    );
    assert_eq!(
        err(json!({"to_user": "nobody"}), &case),
        "notification dibao-1-e9: no user `nobody` in the org file"
    );
    assert_eq!(
        err(json!({"to_role": "mayor"}), &case),
        "notification dibao-1-e9: no role `mayor` in the org file"
    );
    assert_eq!(
        err(json!({"to_role": 3}), &case),
        "notification dibao-1-e9: `to_role` must be a role id or a list of role ids"
    );
    assert_eq!(
        err(json!({"to_role": "township_staff"}), &json!({})),
        "notification dibao-1-e9: the instance has no `unit`, so roles cannot be resolved"
    );
}

/// A channel that only reaches recipients with a phone (an SMS gateway) and
/// must never be sent to in these tests.
struct PhoneOnly;
impl Channel for PhoneOnly {
    fn reaches(&self, recipient: &Recipient) -> bool {
        recipient.phone.is_some()
    }
    fn send<'a>(&'a self, _message: &'a Message) -> SendFuture<'a> {
        Box::pin(async { panic!("prepare must not send") })
    }
}

#[test]
fn the_notifier_routes_each_kind_over_its_channels() {
    let org_src = "roles: {township_staff: 经办人}\nusers:\n  - {id: a, name: 甲, roles: [township_staff], unit: 市/县/镇, phone: '139'}\n  - {id: b, name: 乙, roles: [township_staff], unit: 市/县/镇}\n";
    let org = Org::from_yaml(org_src, "org.yaml").unwrap();
    let routes = Routes {
        applicant: vec![ChannelName::Webhook],
        staff: vec![ChannelName::Webhook],
    };
    let notifier = Notifier::new(shipped_templates(), org, routes)
        .with_channel(ChannelName::Webhook, Arc::new(PhoneOnly));
    let instance =
        json!({"unit": "市/县/镇", "applicant_name": "丙", "contact": {"email": "c@example.cn"}});
    let reminder = json!({
        "type": "notification", "id": "x-e1", "instance": "x", "template": "task_reminder",
        "to_role": ["township_staff"], "task": "survey", "due_at": null
    });
    let plan = notifier.prepare(&reminder, &instance).unwrap();
    assert_eq!(plan.deliveries.len(), 1);
    let reached: Vec<_> = plan.deliveries[0]
        .message
        .recipients
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(reached, ["甲"]);
    assert_eq!(plan.unreachable.len(), 1, "乙 has no phone");
    assert_eq!(plan.deliveries[0].message.subject, "待办提醒：survey");

    // The applicant has only an email: nobody is reachable, a permanent error.
    let approval = json!({
        "type": "notification", "id": "x-e2", "template": "low_income_approved", "to": "applicant"
    });
    let err = notifier.prepare(&approval, &instance).unwrap_err();
    assert!(matches!(err, NotifyError::Unreachable { .. }), "{err}");

    let payment = json!({"type": "payment", "id": "x-e3"});
    assert!(matches!(
        notifier.prepare(&payment, &instance),
        Err(NotifyError::NotANotification(_))
    ));
}
