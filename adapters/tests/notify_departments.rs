//! Notifications to a department (`to_department`): each department of the settings has
//! a webhook of its own; a department without one is unreachable, never sent elsewhere.
//! Delivered to a local HTTP receiver that records the requests.

mod support;

use std::sync::Arc;

use jiuzhu_adapters::notify::webhook::IDEMPOTENCY_HEADER;
use jiuzhu_adapters::notify::{
    ChannelName, Notifier, NotifyConfig, NotifyError, Routes, WebhookChannel, WebhookConfig,
};
use jiuzhu_adapters::secrets::{Secret, SecretRef};
use serde_json::{Value as Json, json};
use support::webhook_sink::WebhookSink;
use support::{shipped_org, shipped_templates};

fn department_channel(url: String) -> anyhow::Result<WebhookChannel> {
    let config = WebhookConfig {
        url,
        secret: SecretRef::Env("JIUZHU_TEST_DEPARTMENT_KEY".into()),
        timeout_seconds: 5,
        allow_http_remote: false,
    };
    Ok(WebhookChannel::new(&config, Secret::new("department-key"))?)
}

fn referral(id: &str, department: &str) -> Json {
    json!({
        "type": "notification", "id": id, "instance": "referral-3",
        "template": "referral_sent", "to_department": department,
        "need": department, "details": "慢性病透析"
    })
}

fn case() -> Json {
    json!({"applicant_name": "赵丽华", "unit": "双鸭山市/尖山区/中心站街道"})
}

#[tokio::test]
async fn a_department_is_reached_by_its_own_webhook_only() -> anyhow::Result<()> {
    let medical = WebhookSink::start(0, 500).await?;
    let general = WebhookSink::start(0, 500).await?;
    let routes = Routes {
        applicant: vec![ChannelName::Webhook],
        staff: vec![ChannelName::Webhook],
    };
    let notifier = Notifier::new(shipped_templates(), shipped_org(), routes)
        .with_channel(
            ChannelName::Webhook,
            Arc::new(department_channel(general.url())?),
        )
        .with_department("medical", Arc::new(department_channel(medical.url())?));

    let plan = notifier.prepare(&referral("referral-3-e1", "medical"), &case())?;
    assert_eq!(plan.deliveries.len(), 1, "{plan:?}");
    let delivery = &plan.deliveries[0];
    assert_eq!(delivery.key, "referral-3-e1:department:medical");
    assert_eq!(delivery.department.as_deref(), Some("medical"));
    notifier.send(delivery).await?;

    let requests = medical.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0].header(IDEMPOTENCY_HEADER),
        Some("referral-3-e1")
    );
    let body: Json = serde_json::from_slice(&requests[0].body)?;
    assert_eq!(body["template"], "referral_sent");
    assert!(
        body["subject"]
            .as_str()
            .is_some_and(|s| s.contains("医疗救助需求")),
        "{body}"
    );
    assert!(
        body["body"]
            .as_str()
            .is_some_and(|b| b.contains("referral-3") && b.contains("慢性病透析")),
        "{body}"
    );
    assert!(
        general.requests().is_empty(),
        "the general webhook is not a department's"
    );

    // A department the settings do not list: unreachable, an incident for a person.
    match notifier.prepare(&referral("referral-3-e2", "housing"), &case()) {
        Err(NotifyError::Unreachable { effect, who }) => {
            assert_eq!(effect, "referral-3-e2");
            assert_eq!(who, "housing");
        }
        other => panic!("expected unreachable, got {other:?}"),
    }
    assert!(medical.requests().len() == 1 && general.requests().is_empty());
    Ok(())
}

#[test]
fn department_webhooks_are_checked_like_the_webhook() {
    let good = "smtp: {host: localhost, tls: plain, from: a@b.example}\n\
                routes: {staff: [email]}\n\
                departments:\n  medical: {url: 'https://ylbz.example.gov.cn/hook', secret: {env: K}}\n";
    let config = NotifyConfig::from_yaml(good, "notify.yaml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        config.departments.keys().collect::<Vec<_>>(),
        vec!["medical"]
    );
    let plain = "smtp: {host: localhost, tls: plain, from: a@b.example}\n\
                 routes: {staff: [email]}\n\
                 departments:\n  housing: {url: 'http://zjj.example/hook', secret: {env: K}}\n";
    let error = NotifyConfig::from_yaml(plain, "notify.yaml")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        error.contains("departments.housing.url") && error.contains("plain http"),
        "{error}"
    );
}
