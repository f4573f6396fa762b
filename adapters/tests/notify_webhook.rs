//! Webhook delivery against a local HTTP receiver that records requests and
//! fails on demand, driven through the retry policy as the dispatcher would.

mod support;

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use jiuzhu_adapters::notify::webhook::{IDEMPOTENCY_HEADER, SIGNATURE_HEADER, verify};
use jiuzhu_adapters::notify::{
    ChannelName, DeliveryError, Disposition, Notifier, Routes, WebhookChannel, WebhookConfig,
};
use jiuzhu_adapters::retry::RetryPolicy;
use jiuzhu_adapters::secrets::{Secret, SecretRef};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::{Value as Json, json};
use support::webhook_sink::WebhookSink;
use support::{sample_instance, shipped_org, shipped_templates};

fn key() -> Secret {
    Secret::new("webhook-test-key")
}

fn notifier(url: String) -> anyhow::Result<Notifier> {
    let config = WebhookConfig {
        url,
        secret: SecretRef::Env("JIUZHU_TEST_WEBHOOK_KEY".into()),
        timeout_seconds: 5,
        allow_http_remote: false,
    };
    let channel = WebhookChannel::new(&config, key())?;
    let routes = Routes {
        applicant: vec![ChannelName::Webhook],
        staff: vec![ChannelName::Webhook],
    };
    Ok(Notifier::new(shipped_templates(), shipped_org(), routes)
        .with_channel(ChannelName::Webhook, Arc::new(channel)))
}

fn rejection() -> Json {
    json!({
        "type": "notification", "id": "dibao-7-e21", "instance": "dibao-7",
        "template": "dibao_rejected", "to": "applicant",
        "reasons": ["家庭人均收入高于当地最低生活保障标准"]
    })
}

#[tokio::test]
async fn a_webhook_failing_twice_is_retried_and_then_delivered_once() -> anyhow::Result<()> {
    let sink = WebhookSink::start(2, 500).await?;
    let notifier = notifier(sink.url())?;
    let plan = notifier.prepare(&rejection(), &sample_instance())?;
    let delivery = &plan.deliveries[0];
    assert_eq!(delivery.key, "dibao-7-e21:webhook");

    // The dispatcher's loop in miniature: attempt, and on a retryable error
    // ask the policy when to try next (the test does not wait for that time).
    let policy = RetryPolicy::new(5, Duration::from_secs(30), Duration::from_secs(600))?;
    let mut jitter = StdRng::seed_from_u64(7);
    let mut now = Utc
        .with_ymd_and_hms(2026, 3, 2, 2, 0, 0)
        .single()
        .expect("a time");
    let mut attempts = 0;
    let mut schedule = Vec::new();
    loop {
        attempts += 1;
        match notifier.send(delivery).await {
            Ok(()) => break,
            Err(err) => {
                assert!(
                    matches!(err, DeliveryError::Status { status: 500 }),
                    "{err}"
                );
                assert!(err.is_retryable());
                now = policy
                    .next_attempt(attempts, now, &mut jitter)
                    .expect("within the retry limit");
                schedule.push(now);
            }
        }
    }
    assert_eq!(attempts, 3);
    assert!(
        schedule.windows(2).all(|w| w[0] < w[1]),
        "backoff moves forward"
    );

    let requests = sink.requests();
    assert_eq!(requests.len(), 3, "two failures, then one delivery");
    for request in &requests {
        assert_eq!(request.header(IDEMPOTENCY_HEADER), Some("dibao-7-e21"));
        assert_eq!(request.header("content-type"), Some("application/json"));
        let signature = request.header(SIGNATURE_HEADER).expect("a signature");
        assert!(
            verify(&key(), &request.body, signature),
            "signature verifies"
        );
        assert!(!verify(&Secret::new("other key"), &request.body, signature));
    }
    assert_eq!(
        requests[0].body, requests[2].body,
        "a retry sends the same bytes"
    );

    let body: Json = serde_json::from_slice(&requests[2].body)?;
    assert_eq!(body["effect_id"], "dibao-7-e21");
    assert_eq!(body["template"], "dibao_rejected");
    assert_eq!(body["subject"], "最低生活保障审核确认结果通知（不予批准）");
    assert!(
        body["body"]
            .as_str()
            .is_some_and(|b| b.contains("  - 家庭人均收入高于当地最低生活保障标准")),
        "{body}"
    );
    assert_eq!(
        body["recipients"],
        json!([{"kind": "applicant", "name": "张桂兰",
                "email": "zhang.guilan@example.cn", "phone": "13800001234"}])
    );
    assert_eq!(body["effect"], rejection());
    Ok(())
}

#[tokio::test]
async fn a_client_error_is_permanent_and_throttling_is_retryable() -> anyhow::Result<()> {
    let refused = WebhookSink::start(1, 400).await?;
    let notifier_refused = notifier(refused.url())?;
    let plan = notifier_refused.prepare(&rejection(), &sample_instance())?;
    let err = notifier_refused
        .send(&plan.deliveries[0])
        .await
        .unwrap_err();
    assert_eq!(err.disposition(), Disposition::Permanent, "{err}");
    assert_eq!(err.to_string(), "webhook answered HTTP 400");

    let throttled = WebhookSink::start(1, 429).await?;
    let notifier_throttled = notifier(throttled.url())?;
    let err = notifier_throttled
        .send(&plan.deliveries[0])
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    notifier_throttled.send(&plan.deliveries[0]).await?;
    assert_eq!(throttled.requests().len(), 2);
    Ok(())
}

#[tokio::test]
async fn an_unreachable_receiver_is_retryable_until_the_policy_dead_letters() -> anyhow::Result<()>
{
    let closed = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let notifier = notifier(format!("http://{closed}/notify"))?;
    let plan = notifier.prepare(&rejection(), &sample_instance())?;
    let policy = RetryPolicy::new(3, Duration::from_secs(1), Duration::from_secs(4))?;
    let mut jitter = StdRng::seed_from_u64(1);
    let now = Utc
        .with_ymd_and_hms(2026, 3, 2, 2, 0, 0)
        .single()
        .expect("a time");
    let mut attempts = 0;
    let dead = loop {
        let err = notifier.send(&plan.deliveries[0]).await.unwrap_err();
        assert!(
            matches!(
                err,
                DeliveryError::Http {
                    disposition: Disposition::Retryable,
                    ..
                }
            ),
            "{err}"
        );
        attempts += 1;
        if policy.next_attempt(attempts, now, &mut jitter).is_none() {
            break attempts;
        }
    };
    assert_eq!(dead, 3, "dead-lettered after max_attempts");
    Ok(())
}
