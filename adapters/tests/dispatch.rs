//! The outbox dispatcher end to end, on SQLite and PostgreSQL: cases started through the
//! real engine emit effects, and one dispatcher tick at a time (on a manual clock, never
//! sleeping) delivers them to a real SMTP server (aiosmtpd), a local webhook receiver,
//! the payments ledger and the engine itself.
//!
//! PostgreSQL comes from `JIUZHU_TEST_PG` (default `postgres://postgres@127.0.0.1:5432/test`);
//! each test gets a fresh schema that is dropped afterwards.

mod support;

use std::collections::BTreeMap;

use std::path::Path;
use std::sync::Arc;

use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, ensure};
use chrono::{DateTime, TimeZone, Utc};
use jiuzhu_adapters::dispatch::{
    DispatchConfig, Dispatcher, Incident, Outcome, TickReport, incidents,
};
use jiuzhu_adapters::notify::{
    ChannelName, Notifier, Routes, SmtpChannel, SmtpConfig, TlsMode, WebhookChannel, WebhookConfig,
};
use jiuzhu_adapters::payments::Ledger;
use jiuzhu_adapters::retry::RetryPolicy;
use jiuzhu_adapters::secrets::{Secret, SecretRef};
use jiuzhu_engine::clock::{Clock, ManualClock};
use jiuzhu_engine::core::Actor;
use jiuzhu_engine::project::Project;
use jiuzhu_engine::runtime::Engine;
use jiuzhu_engine::store::{InstanceFilter, OutboxStatus, Store, StoreError};
use jiuzhu_rules::Value;
use jiuzhu_testkit::{Db, TestDatabase, report};
use mail_parser::MessageParser;
use rand::SeedableRng as _;
use rand::rngs::StdRng;
use support::smtp_sink::SmtpSink;
use support::webhook_sink::WebhookSink;
use support::{repo_path, shipped_org, shipped_templates};

/// The unit of the cases: 富安街道, whose clerk starts them.
const UNIT: &str = "双鸭山市/尖山区/富安街道";

/// A case whose start emits the effect named by `kind`, then waits at a task.
const PROBE: &str = r#"
process: probe
name: 派送测试
calendar: cn
start: emit
variables:
  applicant_name: {type: string, required: true, label: 申请人}
  contact: {type: object, label: 联系方式}
  kind: {type: string, required: true, label: 效果}
  amount: {type: decimal, label: 金额}
  review_on: {type: date, label: 复核日期}
nodes:
  - id: emit
    type: compute
    name: 发出
    emit:
      - notification: {template: dibao_approved, to: applicant, monthly_amount: "705.00"}
        if: "kind == 'notice'"
      - notification: {template: dibao_rejected, to: applicant}
        if: "kind == 'broken_notice'"
      - escalation: {to_role: county_staff, reason: 低保审核确认超过办理时限, task_label: 审核确认}
        if: "kind == 'escalation'"
      - payment: {amount: "=amount", purpose: temporary_aid, schedule: once, payee: "=applicant_name"}
        if: "kind == 'payment'"
      - start_process:
          process: probe_review
          at: "=review_on"
          data:
            applicant_name: "=applicant_name"
            case: "=instance_id"
        if: "kind == 'review'"
    next: wait
  - id: wait
    type: task
    name: 等待
    role: township_staff
    next: done
  - id: done
    type: end
    name: 结束
    outcome: completed
  - id: withdrawn
    type: end
    name: 撤回
    status: terminated
    outcome: withdrawn
messages:
  withdraw:
    name: 撤回
    goto: withdrawn
"#;

/// The process a `start_process` effect of the probe starts.
const PROBE_REVIEW: &str = r#"
process: probe_review
name: 派生复核
calendar: cn
start: recheck
variables:
  applicant_name: {type: string, required: true, label: 保障对象}
  case: {type: string, label: 原案件编号}
nodes:
  - id: recheck
    type: task
    name: 入户复核
    role: township_staff
    next: done
  - id: done
    type: end
    name: 结束
    outcome: completed
"#;

/// What a test body gets: an engine on a fresh database with the probe processes
/// deployed, and the manual clock it runs on.
#[derive(Clone)]
struct Ctx {
    db: Db,
    url: String,
    clock: Arc<ManualClock>,
    project: Arc<Project>,
    engine: Arc<Engine>,
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 1, 0, 0).unwrap()
}

impl Ctx {
    fn store(&self) -> &Store {
        &self.engine.store
    }

    /// Starts a probe case as 富安街道's clerk; returns its id and its one outbox entry.
    async fn start_probe(&self, kind: &str, extra: &[(&str, Value)]) -> Result<(String, String)> {
        let actor = Actor {
            user: "fa_clerk".into(),
            roles: vec!["township_clerk".into()],
            unit: UNIT.into(),
        };
        let mut data = BTreeMap::from([
            ("applicant_name".to_string(), Value::Str("张桂兰".into())),
            ("kind".to_string(), Value::Str(kind.into())),
            (
                "contact".to_string(),
                Value::from_json(&serde_json::json!({"email": "zhang.guilan@example.cn"})),
            ),
        ]);
        for (name, value) in extra {
            data.insert((*name).to_string(), value.clone());
        }
        let report = self.engine.start("probe", &actor, data).await?;
        ensure!(
            report.outbox.len() == 1,
            "one effect expected: {:?}",
            report.outbox
        );
        Ok((report.instance.id, report.outbox[0].id.clone()))
    }

    fn dispatcher(&self, retry: RetryPolicy) -> Dispatcher {
        let mut config = DispatchConfig::new("node-a");
        config.retry = retry;
        config.lease = chrono::Duration::minutes(1);
        Dispatcher::new(self.engine.clone(), config).with_jitter(Box::new(StdRng::seed_from_u64(7)))
    }

    /// Runs SQL behind the store's back (fault injection).
    async fn raw(&self, sql: &str) -> Result<()> {
        jiuzhu_testkit::raw(self.db, &self.url, sql).await
    }

    /// Moves the clock and ticks.
    async fn tick_at(&self, dispatcher: &Dispatcher, now: DateTime<Utc>) -> Result<TickReport> {
        self.clock.set(now);
        Ok(dispatcher.tick(now).await?)
    }
}

fn policy(max_attempts: u32) -> RetryPolicy {
    RetryPolicy::new(
        max_attempts,
        Duration::from_secs(30),
        Duration::from_secs(600),
    )
    .expect("a valid policy")
}

fn write_project(dir: &Path) -> Result<()> {
    std::fs::copy(repo_path("processes/org.yaml"), dir.join("org.yaml"))?;
    // The engine loads the assessment policies even when no process assesses.
    let policies = dir.join("policies");
    std::fs::create_dir(&policies)?;
    for file in std::fs::read_dir(repo_path("processes/policies"))? {
        let file = file?;
        // Policy files only: the section declarations (`sections/`) are built in.
        if !file.path().is_file() {
            continue;
        }
        std::fs::copy(file.path(), policies.join(file.file_name()))?;
    }
    std::fs::write(dir.join("probe.yaml"), PROBE)?;
    std::fs::write(dir.join("probe_review.yaml"), PROBE_REVIEW)?;
    Ok(())
}

/// What to clean up after a test.
struct Teardown {
    database: TestDatabase,
    store: Store,
}

/// A fresh database with the probe processes deployed on an engine with a manual clock.
async fn setup(db: Db) -> (Ctx, Teardown) {
    let database = TestDatabase::create(db, "dispatch").await;
    let project_dir = database.dir().join("processes");
    std::fs::create_dir(&project_dir).expect("project dir");
    write_project(&project_dir).expect("probe processes");
    let store = Store::open(&database.url).await.expect("open store");
    let project = Arc::new(
        Project::load(&project_dir)
            .map_err(|problems| anyhow!(problems.join("\n")))
            .expect("probe project loads"),
    );
    let clock = Arc::new(ManualClock::new(t0()));
    let engine = Engine::new(store.clone(), project.clone(), clock.clone(), "node-a")
        .map_err(|e| anyhow!("{e}"))
        .expect("engine");
    engine.deploy().await.expect("deploy");
    let ctx = Ctx {
        db,
        url: database.url.clone(),
        clock,
        project,
        engine: Arc::new(engine),
    };
    (ctx, Teardown { database, store })
}

/// Cleans up whatever the outcome, then reports it.
async fn finish(db: Db, teardown: Teardown, outcome: jiuzhu_testkit::Outcome) {
    teardown.store.close().await;
    teardown.database.drop().await;
    report(db, outcome);
}

jiuzhu_testkit::on_both_databases!(
    a_webhook_failing_twice_is_retried_and_delivered_once_without_resending_the_email,
    a_dead_letter_is_an_incident_until_retried_and_then_delivered,
    a_permanent_failure_is_an_incident_at_the_first_attempt,
    a_process_to_start_later_waits_for_its_date_and_starts_once,
    a_payment_applied_before_a_crash_is_not_paid_again,
    an_escalation_is_mailed_to_the_role_over_the_case,
    two_nodes_ticking_together_deliver_each_effect_once,
    an_entry_whose_deliveries_never_report_back_is_given_up,
    a_row_that_does_not_read_is_parked_naming_the_field,
    a_deferred_start_is_cancelled_when_its_case_ends_first,
);

fn webhook_channel(url: String) -> Result<WebhookChannel> {
    let config = WebhookConfig {
        url,
        secret: SecretRef::Env("JIUZHU_TEST_WEBHOOK_KEY".into()),
        timeout_seconds: 5,
        allow_http_remote: false,
    };
    Ok(WebhookChannel::new(
        &config,
        Secret::new("webhook-test-key"),
    )?)
}

fn smtp_channel(port: u16) -> Result<SmtpChannel> {
    let config = SmtpConfig {
        host: "127.0.0.1".into(),
        port: Some(port),
        tls: TlsMode::Plain,
        username: None,
        password: None,
        from: "尖山区民政局 <notify@mz.jianshan.example>".into(),
        timeout_seconds: 10,
        allow_plain_remote: false,
    };
    Ok(SmtpChannel::new(&config, None)?)
}

fn next_attempt(report: &TickReport, id: &str) -> Result<DateTime<Utc>> {
    match report.outcome(id) {
        Some(Outcome::Retrying {
            next_attempt_at, ..
        }) => Ok(*next_attempt_at),
        other => Err(anyhow!("{id}: expected a retry, got {other:?}")),
    }
}

/// Regression guard for the issue's delivery rule: a channel already delivered is not sent
/// again when another channel of the same effect is retried.
async fn a_webhook_failing_twice_is_retried_and_delivered_once_without_resending_the_email(
    ctx: Ctx,
) -> Result<()> {
    let mut smtp = SmtpSink::start(None).await?;
    let webhook = WebhookSink::start(2, 500).await?;
    let routes = Routes {
        applicant: vec![ChannelName::Email, ChannelName::Webhook],
        staff: vec![],
    };
    let notifier = Notifier::new(shipped_templates(), shipped_org(), routes)
        .with_channel(ChannelName::Email, Arc::new(smtp_channel(smtp.port)?))
        .with_channel(
            ChannelName::Webhook,
            Arc::new(webhook_channel(webhook.url())?),
        );
    let dispatcher = ctx.dispatcher(policy(5)).with_notifier(Arc::new(notifier));
    let (_, effect) = ctx.start_probe("notice", &[]).await?;

    let first = ctx.tick_at(&dispatcher, t0()).await?;
    ensure!(first.claimed() == 1, "{first:?}");
    let retry_at = next_attempt(&first, &effect)?;
    ensure!(retry_at > t0(), "the retry waits: {retry_at}");
    let mail = smtp.next_message().await?;
    ensure!(
        mail.rcpt_tos == ["zhang.guilan@example.cn"],
        "{:?}",
        mail.rcpt_tos
    );

    // Not due yet: nothing is claimed, nothing sent.
    let early = ctx
        .tick_at(&dispatcher, retry_at - chrono::Duration::milliseconds(1))
        .await?;
    ensure!(early.claimed() == 0, "{early:?}");

    let second = ctx.tick_at(&dispatcher, retry_at).await?;
    let retry_at = next_attempt(&second, &effect)?;
    let third = ctx.tick_at(&dispatcher, retry_at).await?;
    ensure!(
        third.outcome(&effect) == Some(&Outcome::Delivered),
        "{third:?}"
    );
    let done = ctx
        .tick_at(&dispatcher, retry_at + chrono::Duration::days(1))
        .await?;
    ensure!(
        done.claimed() == 0,
        "a delivered effect is not claimed again"
    );

    let requests = webhook.requests();
    ensure!(
        requests.len() == 3,
        "two failures and one delivery: {}",
        requests.len()
    );
    for request in &requests {
        ensure!(
            request.header("Idempotency-Key") == Some(effect.as_str()),
            "every attempt carries the effect id"
        );
    }
    let rest = smtp.stop().await?;
    ensure!(
        rest.is_empty(),
        "the email was sent once, not on each webhook retry"
    );

    let entry = ctx
        .store()
        .outbox_entry(&effect)
        .await?
        .context("the outbox entry")?;
    ensure!(entry.status == OutboxStatus::Delivered, "{entry:?}");
    ensure!(
        entry.attempts == 2,
        "two failed attempts recorded: {entry:?}"
    );
    ensure!(
        ctx.store().delivered_parts(&effect).await?
            == [format!("{effect}:email"), format!("{effect}:webhook")],
        "both channels recorded"
    );
    Ok(())
}

async fn a_dead_letter_is_an_incident_until_retried_and_then_delivered(ctx: Ctx) -> Result<()> {
    let webhook = WebhookSink::start(2, 500).await?;
    let routes = Routes {
        applicant: vec![ChannelName::Webhook],
        staff: vec![],
    };
    let notifier = Notifier::new(shipped_templates(), shipped_org(), routes).with_channel(
        ChannelName::Webhook,
        Arc::new(webhook_channel(webhook.url())?),
    );
    let dispatcher = ctx.dispatcher(policy(2)).with_notifier(Arc::new(notifier));
    let (case, effect) = ctx.start_probe("notice", &[]).await?;

    let first = ctx.tick_at(&dispatcher, t0()).await?;
    let last_try = next_attempt(&first, &effect)?;
    let second = ctx.tick_at(&dispatcher, last_try).await?;
    match second.outcome(&effect) {
        Some(Outcome::Dead { attempts: 2, error }) => {
            ensure!(error.contains("HTTP 500"), "{error}")
        }
        other => return Err(anyhow!("expected a dead letter, got {other:?}")),
    }
    let later = ctx
        .tick_at(&dispatcher, last_try + chrono::Duration::days(7))
        .await?;
    ensure!(
        later.claimed() == 0,
        "a dead letter is not retried by itself"
    );

    let dead = ctx.store().dead_outbox(100, 0).await?;
    ensure!(dead.len() == 1, "{dead:?}");
    let incident = Incident::from(&dead[0]);
    ensure!(incident.id == effect && incident.instance_id == case);
    ensure!(incident.attempts == 2);
    ensure!(incident.created_at == t0());
    ensure!(incident.last_attempt_at == Some(last_try));
    ensure!(incident.given_up_at == last_try);
    ensure!(
        incident
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains(&format!("{effect}:webhook")) && e.contains("HTTP 500")),
        "{incident:?}"
    );
    let text = incidents::render_text(&[incident]);
    ensure!(
        text.contains(&format!("retry: jiuzhu retry {effect}")),
        "{text}"
    );
    ensure!(text.contains("2 attempts"), "{text}");

    // The operator retries; the receiver is back.
    let retried_at = last_try + chrono::Duration::days(8);
    ctx.store().retry_outbox(&effect, retried_at).await?;
    ensure!(ctx.store().dead_outbox(100, 0).await?.is_empty());
    let third = ctx.tick_at(&dispatcher, retried_at).await?;
    ensure!(
        third.outcome(&effect) == Some(&Outcome::Delivered),
        "{third:?}"
    );
    ensure!(webhook.requests().len() == 3);

    // Only a dead entry can be retried.
    match ctx.store().retry_outbox(&effect, retried_at).await {
        Err(StoreError::NotFound { .. }) => {}
        other => return Err(anyhow!("retrying a delivered effect: {other:?}")),
    }
    match ctx.store().retry_outbox("no-such-effect", retried_at).await {
        Err(StoreError::NotFound { .. }) => {}
        other => return Err(anyhow!("retrying an unknown effect: {other:?}")),
    }
    Ok(())
}

async fn a_permanent_failure_is_an_incident_at_the_first_attempt(ctx: Ctx) -> Result<()> {
    let webhook = WebhookSink::start(0, 500).await?;
    let routes = Routes {
        applicant: vec![ChannelName::Webhook],
        staff: vec![],
    };
    let notifier = Notifier::new(shipped_templates(), shipped_org(), routes).with_channel(
        ChannelName::Webhook,
        Arc::new(webhook_channel(webhook.url())?),
    );
    let dispatcher = ctx.dispatcher(policy(8)).with_notifier(Arc::new(notifier));
    // dibao_rejected needs `reasons`, which this effect lacks: no retry can fix that.
    let (_, effect) = ctx.start_probe("broken_notice", &[]).await?;

    let report = ctx.tick_at(&dispatcher, t0()).await?;
    match report.outcome(&effect) {
        Some(Outcome::Dead { attempts: 1, error }) => {
            ensure!(
                error.contains("reasons"),
                "the error names the variable: {error}"
            )
        }
        other => return Err(anyhow!("expected a dead letter at once, got {other:?}")),
    }
    ensure!(webhook.requests().is_empty(), "nothing was sent");
    Ok(())
}

async fn a_process_to_start_later_waits_for_its_date_and_starts_once(ctx: Ctx) -> Result<()> {
    let dispatcher = ctx.dispatcher(policy(3));
    let review_on = chrono::NaiveDate::from_ymd_opt(2026, 9, 1).context("a date")?;
    let (case, effect) = ctx
        .start_probe("review", &[("review_on", Value::Date(review_on))])
        .await?;
    // 2026-09-01 00:00 in the calendar's zone (UTC+8).
    let due = Utc.with_ymd_and_hms(2026, 8, 31, 16, 0, 0).unwrap();
    let started = |ctx: Ctx| async move {
        ctx.store()
            .list_instances(&InstanceFilter {
                process_id: Some("probe_review".into()),
                ..InstanceFilter::default()
            })
            .await
    };

    let first = ctx.tick_at(&dispatcher, t0()).await?;
    ensure!(
        first.outcome(&effect) == Some(&Outcome::Deferred { until: due }),
        "{first:?}"
    );
    let entry = ctx.store().outbox_entry(&effect).await?.context("entry")?;
    ensure!(
        entry.status == OutboxStatus::Pending && entry.attempts == 0,
        "no attempt counted: {entry:?}"
    );
    ensure!(entry.available_at == due);

    let before = ctx
        .tick_at(&dispatcher, due - chrono::Duration::seconds(1))
        .await?;
    ensure!(before.claimed() == 0, "{before:?}");
    ensure!(
        started(ctx.clone()).await?.is_empty(),
        "not started before its date"
    );

    let on_time = ctx.tick_at(&dispatcher, due).await?;
    ensure!(
        on_time.outcome(&effect) == Some(&Outcome::Delivered),
        "{on_time:?}"
    );
    let children = started(ctx.clone()).await?;
    ensure!(children.len() == 1, "{children:?}");
    let child = &children[0];
    ensure!(
        child.unit == UNIT,
        "started in the unit of the case: {}",
        child.unit
    );
    let state = child.state.to_value();
    ensure!(state["vars"]["case"] == case.as_str(), "{state}");
    ensure!(state["started_by"] == "system", "{state}");
    let history = ctx.store().history(&child.id).await?;
    ensure!(history[0].actor.as_deref() == Some("system"));

    // A node dies after starting the process but before acknowledging: the effect is
    // delivered again, and still only one process exists.
    ctx.raw(&format!(
        "UPDATE outbox SET status = 'pending', delivered_at = NULL WHERE id = '{effect}'"
    ))
    .await?;
    let again = ctx
        .tick_at(&dispatcher, due + chrono::Duration::hours(1))
        .await?;
    ensure!(
        again.outcome(&effect) == Some(&Outcome::Delivered),
        "{again:?}"
    );
    ensure!(started(ctx.clone()).await?.len() == 1, "started once");
    Ok(())
}

async fn a_payment_applied_before_a_crash_is_not_paid_again(ctx: Ctx) -> Result<()> {
    let ledger = Ledger::new(ctx.store());
    let dispatcher = ctx
        .dispatcher(policy(3))
        .with_payments(Arc::new(ledger.clone()));
    let amount = Value::Decimal("1500.00".parse()?);
    let (case, effect) = ctx.start_probe("payment", &[("amount", amount)]).await?;

    // Another node claims the payment, applies it to the ledger and dies before marking
    // it delivered.
    let lease = chrono::Duration::minutes(1);
    let claimed = ctx.store().claim_outbox("node-b", t0(), lease, 10).await?;
    ensure!(
        claimed.len() == 1 && claimed[0].entry.id == effect,
        "{claimed:?}"
    );
    ledger.apply_outbox(&claimed[0].entry, t0()).await?;

    // Its lease still holds: this node keeps off.
    let during = ctx
        .tick_at(&dispatcher, t0() + chrono::Duration::seconds(30))
        .await?;
    ensure!(during.claimed() == 0, "{during:?}");

    // The lease ran out: this node delivers the effect again.
    let after = ctx.tick_at(&dispatcher, t0() + lease).await?;
    ensure!(
        after.outcome(&effect) == Some(&Outcome::Delivered),
        "{after:?}"
    );
    let instructions = ledger.instructions(None, Some(&case)).await?;
    ensure!(
        instructions.len() == 1,
        "one payment, not two: {instructions:?}"
    );
    ensure!(instructions[0].amount.to_string() == "1500.00");
    ensure!(instructions[0].effect_id.as_deref() == Some(effect.as_str()));
    Ok(())
}

async fn an_escalation_is_mailed_to_the_role_over_the_case(ctx: Ctx) -> Result<()> {
    let mut smtp = SmtpSink::start(None).await?;
    let routes = Routes {
        applicant: vec![ChannelName::Email],
        staff: vec![ChannelName::Email],
    };
    let notifier = Notifier::new(shipped_templates(), shipped_org(), routes)
        .with_channel(ChannelName::Email, Arc::new(smtp_channel(smtp.port)?));
    let dispatcher = ctx.dispatcher(policy(3)).with_notifier(Arc::new(notifier));
    let (case, effect) = ctx.start_probe("escalation", &[]).await?;

    let report = ctx.tick_at(&dispatcher, ctx.clock.now()).await?;
    ensure!(
        report.outcome(&effect) == Some(&Outcome::Delivered),
        "{report:?}"
    );
    let mail = smtp.next_message().await?;
    let mut to = mail.rcpt_tos.clone();
    to.sort();
    ensure!(
        to == [
            "county_staff1@mz.jianshan.example",
            "county_staff2@mz.jianshan.example"
        ],
        "the county staff over 富安街道: {to:?}"
    );
    let raw = mail.raw();
    let parsed = MessageParser::default()
        .parse(&raw)
        .context("a parseable message")?;
    let subject = parsed.subject().unwrap_or_default();
    ensure!(
        subject == "超期督办：张桂兰的「审核确认」已超过办理时限",
        "{subject}"
    );
    let body = parsed.body_text(0).unwrap_or_default();
    ensure!(body.contains(&case), "{body}");
    ensure!(
        body.contains("督办事由：低保审核确认超过办理时限"),
        "{body}"
    );
    ensure!(
        body.contains("县区民政局经办人"),
        "the role in Chinese: {body}"
    );
    ensure!(smtp.stop().await?.is_empty(), "one message");
    Ok(())
}

async fn two_nodes_ticking_together_deliver_each_effect_once(ctx: Ctx) -> Result<()> {
    const CASES: usize = 12;
    let webhook = WebhookSink::start(0, 500).await?;
    let notifier = |url: String| -> Result<Arc<Notifier>> {
        let routes = Routes {
            applicant: vec![ChannelName::Webhook],
            staff: vec![],
        };
        Ok(Arc::new(
            Notifier::new(shipped_templates(), shipped_org(), routes)
                .with_channel(ChannelName::Webhook, Arc::new(webhook_channel(url)?)),
        ))
    };
    let mut effects = Vec::new();
    for _ in 0..CASES {
        effects.push(ctx.start_probe("notice", &[]).await?.1);
    }
    // A second node: its own connections to the same database, its own engine.
    let other_store = Store::open(&ctx.url).await?;
    let other_engine = Engine::new(
        other_store.clone(),
        ctx.project.clone(),
        ctx.clock.clone(),
        "node-b",
    )
    .map_err(|e| anyhow!("{e}"))?;
    let mut config = DispatchConfig::new("node-b");
    config.batch = 4;
    let node_b =
        Dispatcher::new(Arc::new(other_engine), config).with_notifier(notifier(webhook.url())?);
    let mut config = DispatchConfig::new("node-a");
    config.batch = 4;
    let node_a =
        Dispatcher::new(ctx.engine.clone(), config).with_notifier(notifier(webhook.url())?);

    let mut delivered = Vec::new();
    for _ in 0..CASES {
        let (a, b) = tokio::join!(node_a.tick(t0()), node_b.tick(t0()));
        let (a, b) = (a?, b?);
        for report in [a, b] {
            for entry in report.entries {
                ensure!(entry.outcome == Outcome::Delivered, "{entry:?}");
                delivered.push(entry.id);
            }
        }
        if delivered.len() == CASES {
            break;
        }
    }
    other_store.close().await;
    delivered.sort();
    effects.sort();
    ensure!(
        delivered == effects,
        "each effect delivered by exactly one node"
    );
    let mut keys: Vec<String> = webhook
        .requests()
        .iter()
        .filter_map(|r| r.header("Idempotency-Key").map(str::to_string))
        .collect();
    keys.sort();
    ensure!(keys == effects, "each effect sent once: {keys:?}");
    Ok(())
}

/// A poison entry kills the node that delivers it: each claim counts, and after
/// `max_unreported` claims that never reported back it is an incident, not tried again.
/// Leases are seconds: a dead node's claim ends 31 s on; a live node's is renewed.
async fn an_entry_whose_deliveries_never_report_back_is_given_up(ctx: Ctx) -> Result<()> {
    let dispatcher = ctx.dispatcher(policy(8));
    let (_, effect) = ctx.start_probe("broken_notice", &[]).await?;
    let lease = DispatchConfig::new("x").lease;
    ensure!(lease <= chrono::Duration::seconds(30), "a lease of {lease}");
    let store = &ctx.engine.store;
    let mut now = t0();
    // A live node renews its lease: nobody else gets the entry meanwhile.
    ensure!(store.claim_outbox("live", now, lease, 10).await?.len() == 1);
    now += chrono::Duration::seconds(20);
    ensure!(store.renew_outbox_leases("live", now, lease).await? == 1);
    now += chrono::Duration::seconds(20);
    ensure!(
        store
            .claim_outbox("other", now, lease, 10)
            .await?
            .is_empty()
    );
    // Then it dies, and so do the next two nodes that claim it, each mid-delivery.
    for node in ["dead-1", "dead-2"] {
        now += lease + chrono::Duration::seconds(1);
        let claimed = store.claim_outbox(node, now, lease, 10).await?;
        ensure!(claimed.len() == 1, "{claimed:?}");
    }
    now += lease + chrono::Duration::seconds(1);
    let report = ctx.tick_at(&dispatcher, now).await?;
    match report.outcome(&effect) {
        Some(Outcome::Dead { error, .. }) => {
            ensure!(error.contains("reporting back"), "{error}")
        }
        other => return Err(anyhow!("expected a dead letter, got {other:?}")),
    }
    let entry = store.outbox_entry(&effect).await?.context("the entry")?;
    ensure!(entry.status == OutboxStatus::Dead, "{entry:?}");
    Ok(())
}

/// Every row is read into the engine's typed effect before any adapter sees it: a row
/// whose field has the wrong type (here a payment's amount, altered behind the store's
/// back) is an incident at once naming the field; nothing is paid, nothing dropped.
async fn a_row_that_does_not_read_is_parked_naming_the_field(ctx: Ctx) -> Result<()> {
    let ledger = Ledger::new(ctx.store());
    let dispatcher = ctx
        .dispatcher(policy(8))
        .with_payments(Arc::new(ledger.clone()));
    let amount = Value::Decimal("1500.00".parse()?);
    let (case, effect) = ctx.start_probe("payment", &[("amount", amount)]).await?;
    let payload =
        r#"{"type": "payment", "amount": "many", "purpose": "temporary_aid", "payee": "x"}"#;
    let cast = if ctx.db == Db::Postgres {
        "::jsonb"
    } else {
        ""
    };
    ctx.raw(&format!(
        "UPDATE outbox SET payload = '{payload}'{cast} WHERE id = '{effect}'"
    ))
    .await?;
    let report = ctx.tick_at(&dispatcher, t0()).await?;
    match report.outcome(&effect) {
        Some(Outcome::Dead { attempts: 1, error }) => ensure!(
            error.contains("does not read") && error.contains("`amount`"),
            "the error names the field: {error}"
        ),
        other => return Err(anyhow!("expected a dead letter at once, got {other:?}")),
    }
    let entry = ctx
        .store()
        .outbox_entry(&effect)
        .await?
        .context("the entry")?;
    ensure!(entry.status == OutboxStatus::Dead, "{entry:?}");
    let instructions = ledger.instructions(None, Some(&case)).await?;
    ensure!(instructions.is_empty(), "nothing paid: {instructions:?}");
    Ok(())
}

/// A review scheduled at a later date is not started when the case that asked for it
/// ended in a later step (withdrawn): the entry is settled, no child case appears.
async fn a_deferred_start_is_cancelled_when_its_case_ends_first(ctx: Ctx) -> Result<()> {
    let dispatcher = ctx.dispatcher(policy(3));
    let review_on = chrono::NaiveDate::from_ymd_opt(2026, 9, 1).context("a date")?;
    let (case, effect) = ctx
        .start_probe("review", &[("review_on", Value::Date(review_on))])
        .await?;
    let due = Utc.with_ymd_and_hms(2026, 8, 31, 16, 0, 0).unwrap();
    let first = ctx.tick_at(&dispatcher, t0()).await?;
    ensure!(
        first.outcome(&effect) == Some(&Outcome::Deferred { until: due }),
        "{first:?}"
    );
    // The applicant withdraws a month later.
    ctx.clock.set(t0() + chrono::Duration::days(30));
    let clerk = Actor {
        user: "fa_clerk".into(),
        roles: vec!["township_clerk".into()],
        unit: UNIT.into(),
    };
    ctx.engine
        .message(&case, "withdraw", Some(&clerk), BTreeMap::new())
        .await?;
    let on_time = ctx.tick_at(&dispatcher, due).await?;
    ensure!(
        on_time.outcome(&effect) == Some(&Outcome::Delivered),
        "settled: {on_time:?}"
    );
    let children = ctx
        .store()
        .list_instances(&InstanceFilter {
            process_id: Some("probe_review".into()),
            ..InstanceFilter::default()
        })
        .await?;
    ensure!(children.is_empty(), "nothing started: {children:?}");
    Ok(())
}
