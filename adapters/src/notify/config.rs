//! Notification configuration: the SMTP server, the webhook, which channels
//! reach applicants and staff, and the retry policy.
//!
//! Read from a YAML file (see `NotifyConfig::from_yaml`) or from `JIUZHU_NOTIFY_*`
//! environment variables. Secrets are only *named* here (`{env: …}` or
//! `{file: …}`); their values are loaded when the channels are built.

use jiuzhu_rules::yaml::ErrorAt;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use serde::Deserialize;

use crate::retry::RetryPolicy;
use crate::secrets::{SecretError, SecretRef};

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TlsMode {
    /// Plain connection upgraded with STARTTLS, which must succeed (port 587).
    Starttls,
    /// TLS from the first byte (SMTPS, port 465).
    Tls,
    /// No encryption: only to a loopback relay unless `allow_plain_remote`.
    Plain,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default = "default_tls")]
    pub tls: TlsMode,
    #[serde(default)]
    pub username: Option<String>,
    /// Where the password is; required with `username`.
    #[serde(default)]
    pub password: Option<SecretRef>,
    /// `尖山区民政局 <notify@example.gov.cn>` or a bare address.
    pub from: String,
    #[serde(default = "default_smtp_timeout")]
    pub timeout_seconds: u64,
    /// Personal data over an unencrypted link to another machine is refused
    /// unless an administrator says so here (e.g. a relay on a private link).
    #[serde(default)]
    pub allow_plain_remote: bool,
}

impl SmtpConfig {
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            TlsMode::Starttls => 587,
            TlsMode::Tls => 465,
            TlsMode::Plain => 25,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: String,
    /// The HMAC-SHA256 key that signs every body.
    pub secret: SecretRef,
    #[serde(default = "default_webhook_timeout")]
    pub timeout_seconds: u64,
    /// Plain `http://` is allowed only to loopback unless set.
    #[serde(default)]
    pub allow_http_remote: bool,
}

/// A channel name in `routes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelName {
    Email,
    Webhook,
}

impl ChannelName {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelName::Email => "email",
            ChannelName::Webhook => "webhook",
        }
    }
}

/// Which channels carry notifications to each kind of recipient; a recipient
/// gets the notification on every listed channel that can reach them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Routes {
    #[serde(default)]
    pub applicant: Vec<ChannelName>,
    #[serde(default)]
    pub staff: Vec<ChannelName>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    #[serde(default)]
    pub smtp: Option<SmtpConfig>,
    #[serde(default)]
    pub webhook: Option<WebhookConfig>,
    pub routes: Routes,
    /// Departments a notification may name (`to_department`), each reached by a webhook
    /// of its own (a referral to the medical insurance office, the housing office …).
    #[serde(default)]
    pub departments: BTreeMap<String, WebhookConfig>,
    #[serde(default)]
    pub retry: RetryPolicy,
}

/// Errors of reading or checking the configuration and building channels.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read the notification config: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}:{line}:{column}: {message}")]
    Yaml {
        file: String,
        line: u64,
        column: u64,
        message: String,
    },
    #[error("notification config: {0}")]
    Invalid(String),
    #[error("notification config: environment variable {name}: {message}")]
    Env { name: String, message: String },
    #[error("notification config: {0}")]
    Secret(#[from] SecretError),
    #[error("notification config: smtp.from `{address}`: {source}")]
    From {
        address: String,
        #[source]
        source: lettre::address::AddressError,
    },
    #[error("notification config: SMTP transport: {0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
    #[error("notification config: webhook client: {0}")]
    Http(#[from] reqwest::Error),
}

fn default_tls() -> TlsMode {
    TlsMode::Starttls
}
fn default_smtp_timeout() -> u64 {
    30
}
fn default_webhook_timeout() -> u64 {
    10
}

/// `localhost` or a loopback address: traffic that never leaves the machine.
pub(crate) fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl NotifyConfig {
    pub fn load(path: &Path) -> Result<NotifyConfig, ConfigError> {
        let file = path.display().to_string();
        let src = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            file: file.clone(),
            source,
        })?;
        NotifyConfig::from_yaml(&src, &file)
    }

    /// Parses and checks a config file's text; `file` names it in errors.
    pub fn from_yaml(src: &str, file: &str) -> Result<NotifyConfig, ConfigError> {
        let config: NotifyConfig = serde_saphyr::from_str(src).map_err(|err| {
            // Never the refused value: it may be a misplaced password.
            let ErrorAt {
                line,
                column,
                message,
            } = ErrorAt::of_config(&err, src);
            ConfigError::Yaml {
                file: file.to_string(),
                line,
                column,
                message,
            }
        })?;
        config.check()?;
        Ok(config)
    }

    /// Reads the config from `JIUZHU_NOTIFY_*` variables through `env`:
    /// `SMTP_HOST`, `SMTP_PORT`, `SMTP_TLS` (starttls|tls|plain),
    /// `SMTP_USERNAME`, `SMTP_PASSWORD_ENV` (the variable holding the
    /// password), `SMTP_FROM`, `WEBHOOK_URL`, `WEBHOOK_SECRET_ENV`,
    /// `ROUTE_APPLICANT` and `ROUTE_STAFF` (comma-separated channel names).
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> Result<NotifyConfig, ConfigError> {
        let var = |name: &str| env(&format!("JIUZHU_NOTIFY_{name}")).filter(|v| !v.is_empty());
        let bad = |name: &str, message: String| ConfigError::Env {
            name: format!("JIUZHU_NOTIFY_{name}"),
            message,
        };
        let smtp = match var("SMTP_HOST") {
            None => None,
            Some(host) => {
                let port = var("SMTP_PORT")
                    .map(|p| {
                        p.parse::<u16>()
                            .map_err(|e| bad("SMTP_PORT", e.to_string()))
                    })
                    .transpose()?;
                let tls = match var("SMTP_TLS").as_deref() {
                    None | Some("starttls") => TlsMode::Starttls,
                    Some("tls") => TlsMode::Tls,
                    Some("plain") => TlsMode::Plain,
                    Some(other) => {
                        return Err(bad(
                            "SMTP_TLS",
                            format!("`{other}` is not starttls, tls or plain"),
                        ));
                    }
                };
                let from = var("SMTP_FROM").ok_or_else(|| bad("SMTP_FROM", "is not set".into()))?;
                Some(SmtpConfig {
                    host,
                    port,
                    tls,
                    username: var("SMTP_USERNAME"),
                    password: var("SMTP_PASSWORD_ENV").map(SecretRef::Env),
                    from,
                    timeout_seconds: default_smtp_timeout(),
                    allow_plain_remote: false,
                })
            }
        };
        let webhook = match var("WEBHOOK_URL") {
            None => None,
            Some(url) => Some(WebhookConfig {
                url,
                secret: SecretRef::Env(
                    var("WEBHOOK_SECRET_ENV")
                        .ok_or_else(|| bad("WEBHOOK_SECRET_ENV", "is not set".into()))?,
                ),
                timeout_seconds: default_webhook_timeout(),
                allow_http_remote: false,
            }),
        };
        let route = |name: &str| -> Result<Vec<ChannelName>, ConfigError> {
            let Some(list) = var(name) else {
                return Ok(Vec::new());
            };
            list.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| match s {
                    "email" => Ok(ChannelName::Email),
                    "webhook" => Ok(ChannelName::Webhook),
                    other => Err(bad(name, format!("`{other}` is not email or webhook"))),
                })
                .collect()
        };
        let config = NotifyConfig {
            smtp,
            webhook,
            routes: Routes {
                applicant: route("ROUTE_APPLICANT")?,
                staff: route("ROUTE_STAFF")?,
            },
            departments: BTreeMap::new(),
            retry: RetryPolicy::default(),
        };
        config.check()?;
        Ok(config)
    }

    /// Consistency checks that need no network and no secret.
    pub fn check(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        for name in self.routes.applicant.iter().chain(&self.routes.staff) {
            let configured = match name {
                ChannelName::Email => self.smtp.is_some(),
                ChannelName::Webhook => self.webhook.is_some(),
            };
            if !configured {
                return invalid(format!(
                    "routes use the `{}` channel, which is not configured",
                    name.as_str()
                ));
            }
        }
        if self.routes.applicant.is_empty() && self.routes.staff.is_empty() {
            return invalid(
                "routes send nothing anywhere: list channels under `applicant` or `staff`".into(),
            );
        }
        if let Some(smtp) = &self.smtp {
            if smtp.tls == TlsMode::Plain && !is_loopback(&smtp.host) && !smtp.allow_plain_remote {
                return invalid(format!(
                    "smtp.tls is plain but smtp.host `{}` is not loopback: use starttls or tls, or set allow_plain_remote",
                    smtp.host
                ));
            }
            if smtp.username.is_some() != smtp.password.is_some() {
                return invalid("smtp.username and smtp.password go together".into());
            }
            if smtp.timeout_seconds == 0 {
                return invalid("smtp.timeout_seconds must be at least 1".into());
            }
        }
        if let Some(webhook) = &self.webhook {
            check_webhook(webhook, "webhook")?;
        }
        for (name, webhook) in &self.departments {
            check_webhook(webhook, &format!("departments.{name}"))?;
        }
        Ok(())
    }
}

/// A webhook's URL (https, or http to loopback unless allowed) and timeout; `at` names it.
fn check_webhook(webhook: &WebhookConfig, at: &str) -> Result<(), ConfigError> {
    let invalid = |m: String| Err(ConfigError::Invalid(m));
    let url = reqwest::Url::parse(&webhook.url)
        .map_err(|e| ConfigError::Invalid(format!("{at}.url `{}`: {e}", webhook.url)))?;
    let host = url.host_str().unwrap_or_default();
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(host) || webhook.allow_http_remote => {}
        "http" => {
            return invalid(format!(
                "{at}.url `{}` is plain http to another machine: use https, or set allow_http_remote",
                webhook.url
            ));
        }
        other => return invalid(format!("{at}.url scheme `{other}` is not http(s)")),
    }
    if webhook.timeout_seconds == 0 {
        return invalid(format!("{at}.timeout_seconds must be at least 1"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::time::Duration;

    const SAMPLE: &str = r#"
smtp:
  host: smtp.mz.jianshan.example
  tls: starttls
  username: jiuzhu
  password: {env: JIUZHU_SMTP_PASSWORD}
  from: 尖山区民政局 <notify@mz.jianshan.example>
webhook:
  url: https://sms.jianshan.example/api/notify
  secret: {file: /etc/jiuzhu/webhook-key}
routes:
  applicant: [webhook, email]
  staff: [email]
retry: {max_attempts: 5, base_seconds: 60, max_delay_seconds: 1800}
"#;

    #[test]
    fn a_full_config_reads_with_defaults() {
        let config = NotifyConfig::from_yaml(SAMPLE, "notify.yaml").unwrap();
        let smtp = config.smtp.as_ref().unwrap();
        assert_eq!(smtp.port(), 587);
        assert_eq!(smtp.timeout_seconds, 30);
        assert_eq!(
            smtp.password,
            Some(SecretRef::Env("JIUZHU_SMTP_PASSWORD".into()))
        );
        assert_eq!(
            config.routes.applicant,
            [ChannelName::Webhook, ChannelName::Email]
        );
        assert_eq!(config.retry.max_attempts(), 5);
        assert_eq!(config.retry.max_delay(), Duration::from_secs(1800));
    }

    #[test]
    fn plain_smtp_to_another_machine_is_refused() {
        let src =
            "smtp: {host: mail.example, tls: plain, from: a@b.example}\nroutes: {staff: [email]}\n";
        let err = NotifyConfig::from_yaml(src, "n.yaml").unwrap_err();
        assert!(err.to_string().contains("not loopback"), "{err}");
        let local = src.replace("mail.example", "127.0.0.1");
        let config = NotifyConfig::from_yaml(&local, "n.yaml").unwrap();
        assert_eq!(config.smtp.unwrap().port(), 25);
    }

    #[test]
    fn routes_must_name_configured_channels() {
        let src = "smtp: {host: localhost, tls: plain, from: a@b.example}\nroutes: {applicant: [webhook]}\n";
        let err = NotifyConfig::from_yaml(src, "n.yaml").unwrap_err();
        assert_eq!(
            err.to_string(),
            "notification config: routes use the `webhook` channel, which is not configured"
        );
    }

    #[test]
    fn plain_http_webhooks_only_to_loopback() {
        let src =
            "webhook: {url: 'http://gw.example/x', secret: {env: K}}\nroutes: {staff: [webhook]}\n";
        let err = NotifyConfig::from_yaml(src, "n.yaml").unwrap_err();
        assert!(err.to_string().contains("use https"), "{err}");
        let local = src.replace("gw.example", "127.0.0.1:8080");
        assert!(NotifyConfig::from_yaml(&local, "n.yaml").is_ok());
    }

    #[test]
    fn unknown_keys_are_reported_with_their_position() {
        let src =
            "routes: {staff: [email]}\nsmtp: {host: localhost, from: a@b.example, pasword: x}\n";
        let err = NotifyConfig::from_yaml(src, "notify.yaml").unwrap_err();
        assert!(err.to_string().starts_with("notify.yaml:2:"), "{err}");
    }

    #[test]
    fn a_misplaced_secret_is_never_echoed() {
        // A password pasted where a variant or a number belongs.
        for src in [
            "routes: {staff: [email]}\nsmtp:\n  host: localhost\n  from: a@b.example\n  tls: Hunter2-secret\n",
            "routes: {staff: [email]}\nsmtp:\n  host: localhost\n  from: a@b.example\n  port: Hunter2-secret\n",
            "routes: {staff: [email]}\nsmtp:\n  host: localhost\n  from: a@b.example\n  password: Hunter2-secret\n",
        ] {
            let err = NotifyConfig::from_yaml(src, "notify.yaml").unwrap_err();
            let text = err.to_string();
            assert!(!text.contains("Hunter2"), "{text}");
            assert!(text.starts_with("notify.yaml:5:"), "{text}");
            let key = src
                .lines()
                .nth(4)
                .and_then(|l| l.split(':').next())
                .unwrap();
            assert!(text.contains(&format!("`{}`", key.trim())), "{text}");
        }
    }

    #[test]
    fn the_environment_gives_a_config() {
        let env = HashMap::from([
            ("JIUZHU_NOTIFY_SMTP_HOST", "127.0.0.1"),
            ("JIUZHU_NOTIFY_SMTP_PORT", "2525"),
            ("JIUZHU_NOTIFY_SMTP_TLS", "plain"),
            ("JIUZHU_NOTIFY_SMTP_FROM", "notify@mz.jianshan.example"),
            ("JIUZHU_NOTIFY_ROUTE_STAFF", "email"),
        ]);
        let config = NotifyConfig::from_env(|k| env.get(k).map(|v| v.to_string())).unwrap();
        let smtp = config.smtp.unwrap();
        assert_eq!((smtp.port(), smtp.tls), (2525, TlsMode::Plain));
        assert_eq!(config.routes.staff, [ChannelName::Email]);

        let err = NotifyConfig::from_env(|k| {
            (k == "JIUZHU_NOTIFY_SMTP_PORT")
                .then(|| "x".to_string())
                .or_else(|| env.get(k).map(|v| v.to_string()))
        })
        .unwrap_err();
        assert!(err.to_string().contains("JIUZHU_NOTIFY_SMTP_PORT"), "{err}");
    }
}
