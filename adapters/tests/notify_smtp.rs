//! Email delivery against a real SMTP server (Debian's aiosmtpd on a
//! loopback port): recipients, subject and UTF-8 Chinese body as received.

mod support;

use std::sync::Arc;

use jiuzhu_adapters::notify::{
    ChannelName, Disposition, Notifier, Routes, SmtpChannel, SmtpConfig, TlsMode,
};
use jiuzhu_adapters::secrets::{Secret, SecretRef};
use mail_parser::MessageParser;
use serde_json::json;
use support::smtp_sink::SmtpSink;
use support::{sample_instance, shipped_org, shipped_templates};

const FROM: &str = "尖山区民政局 <notify@mz.jianshan.example>";

fn smtp_config(port: u16) -> SmtpConfig {
    SmtpConfig {
        host: "127.0.0.1".into(),
        port: Some(port),
        tls: TlsMode::Plain,
        username: Some("jiuzhu".into()),
        password: Some(SecretRef::Env("JIUZHU_TEST_SMTP_PASSWORD".into())),
        from: FROM.into(),
        timeout_seconds: 10,
        allow_plain_remote: false,
    }
}

fn notifier(channel: SmtpChannel) -> Notifier {
    let routes = Routes {
        applicant: vec![ChannelName::Email],
        staff: vec![ChannelName::Email],
    };
    Notifier::new(shipped_templates(), shipped_org(), routes)
        .with_channel(ChannelName::Email, Arc::new(channel))
}

#[tokio::test]
async fn an_approval_reaches_the_applicant_as_utf8_mail() -> anyhow::Result<()> {
    let mut sink = SmtpSink::start(Some(("jiuzhu", "s3cret"))).await?;
    let channel = SmtpChannel::new(&smtp_config(sink.port), Some(&Secret::new("s3cret")))?;
    let notifier = notifier(channel);

    let effect = json!({
        "type": "notification", "id": "dibao-1-e17", "instance": "dibao-1",
        "template": "dibao_approved", "to": "applicant", "monthly_amount": "705.00"
    });
    let plan = notifier.prepare(&effect, &sample_instance())?;
    assert_eq!(plan.deliveries.len(), 1);
    assert!(plan.unreachable.is_empty());
    assert_eq!(plan.deliveries[0].key, "dibao-1-e17:email");
    notifier.send(&plan.deliveries[0]).await?;

    let received = sink.next_message().await?;
    assert_eq!(received.rcpt_tos, ["zhang.guilan@example.cn"]);
    assert_eq!(received.mail_from, "notify@mz.jianshan.example");
    assert_eq!(
        received.login.as_deref(),
        Some("jiuzhu"),
        "logged in with the secret"
    );

    let raw = received.raw();
    let mail = MessageParser::default()
        .parse(&raw)
        .expect("a parseable message");
    assert_eq!(mail.subject(), Some("最低生活保障审核确认结果通知"));
    assert_eq!(
        mail.message_id(),
        Some("dibao-1-e17.notify@mz.jianshan.example")
    );
    let to = mail.to().and_then(|a| a.first()).expect("a To header");
    assert_eq!(to.name(), Some("张桂兰"));
    assert_eq!(to.address(), Some("zhang.guilan@example.cn"));
    let from = mail.from().and_then(|a| a.first()).expect("a From header");
    assert_eq!(from.name(), Some("尖山区民政局"));
    // Mail travels with CRLF line ends.
    let body = mail
        .body_text(0)
        .expect("a text body")
        .replace("\r\n", "\n");
    assert!(body.starts_with("张桂兰：\n\n"), "{body}");
    assert!(body.ends_with("\n双鸭山市尖山区富安街道\n"), "{body}");
    assert!(
        body.contains("核定的最低生活保障金为每月 705.00 元"),
        "{body}"
    );

    assert!(sink.stop().await?.is_empty(), "exactly one message");
    Ok(())
}

#[tokio::test]
async fn a_reminder_reaches_every_staff_member_of_the_role_over_the_unit() -> anyhow::Result<()> {
    let mut sink = SmtpSink::start(Some(("jiuzhu", "s3cret"))).await?;
    let channel = SmtpChannel::new(&smtp_config(sink.port), Some(&Secret::new("s3cret")))?;
    let notifier = notifier(channel);

    let effect = json!({
        "type": "notification", "id": "dibao-1-e30", "instance": "dibao-1",
        "template": "deadline_reminder", "to_role": ["township_staff"]
    });
    let plan = notifier.prepare(&effect, &sample_instance())?;
    notifier.send(&plan.deliveries[0]).await?;

    let received = sink.next_message().await?;
    // 富安街道's two staff, not 中心站街道's: the case is in 富安街道/安邦社区.
    let mut rcpts = received.rcpt_tos.clone();
    rcpts.sort();
    assert_eq!(
        rcpts,
        [
            "fa_staff1@mz.jianshan.example",
            "fa_staff2@mz.jianshan.example"
        ]
    );
    let raw = received.raw();
    let mail = MessageParser::default().parse(&raw).expect("parseable");
    assert_eq!(mail.subject(), Some("办理时限提醒：张桂兰的申请即将到期"));
    let body = mail.body_text(0).expect("a text body");
    assert!(body.starts_with("乡镇社会救助经办人："), "{body}");
    assert!(body.contains("案件编号 dibao-1"), "{body}");
    sink.stop().await?;
    Ok(())
}

#[tokio::test]
async fn a_reminder_with_no_open_task_reaches_the_head_and_is_sent_again_as_the_same_message()
-> anyhow::Result<()> {
    let mut sink = SmtpSink::start(Some(("jiuzhu", "s3cret"))).await?;
    let channel = SmtpChannel::new(&smtp_config(sink.port), Some(&Secret::new("s3cret")))?;
    let notifier = notifier(channel);

    // A deadline reminder fired while no task was open: `to_role` is empty.
    let effect = json!({
        "type": "notification", "id": "dibao-1-e31", "instance": "dibao-1",
        "template": "deadline_reminder", "to_role": []
    });
    let plan = notifier.prepare(&effect, &sample_instance())?;
    assert_eq!(plan.deliveries.len(), 1, "never a delivery to no one");
    // At least once: a node killed between sending and recording sends again.
    notifier.send(&plan.deliveries[0]).await?;
    notifier.send(&plan.deliveries[0]).await?;

    let mut ids = Vec::new();
    for _ in 0..2 {
        let received = sink.next_message().await?;
        assert_eq!(received.rcpt_tos, ["fa_head@mz.jianshan.example"]);
        let raw = received.raw();
        let mail = MessageParser::default().parse(&raw).expect("parseable");
        ids.push(mail.message_id().map(str::to_string));
    }
    assert_eq!(
        ids,
        [
            Some("dibao-1-e31.notify@mz.jianshan.example".to_string()),
            Some("dibao-1-e31.notify@mz.jianshan.example".to_string())
        ],
        "the Message-ID comes from the effect id, so a re-send is recognisable"
    );
    assert!(sink.stop().await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn a_refused_login_is_permanent_and_no_server_is_retryable() -> anyhow::Result<()> {
    let sink = SmtpSink::start(Some(("jiuzhu", "s3cret"))).await?;
    let channel = SmtpChannel::new(&smtp_config(sink.port), Some(&Secret::new("wrong")))?;
    let notifier = notifier(channel);
    let effect = json!({
        "type": "notification", "id": "dibao-2-e5", "instance": "dibao-2",
        "template": "dibao_missing_materials", "to": "applicant",
        "missing": ["户口簿复印件"]
    });
    let plan = notifier.prepare(&effect, &sample_instance())?;
    let err = notifier.send(&plan.deliveries[0]).await.unwrap_err();
    assert_eq!(err.disposition(), Disposition::Permanent, "{err}");
    assert!(sink.stop().await?.is_empty(), "nothing delivered");

    // A port nobody listens on: the server may come back, so try again later.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let channel = SmtpChannel::new(&smtp_config(closed), Some(&Secret::new("s3cret")))?;
    let err = notifier_send(channel, &plan.deliveries[0].message).await;
    assert!(err.is_retryable(), "{err}");
    Ok(())
}

async fn notifier_send(
    channel: SmtpChannel,
    message: &jiuzhu_adapters::notify::Message,
) -> jiuzhu_adapters::notify::DeliveryError {
    use jiuzhu_adapters::notify::Channel;
    channel
        .send(message)
        .await
        .expect_err("sending to a closed port fails")
}
