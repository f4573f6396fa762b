//! The email channel: plain-text UTF-8 mail over SMTP with lettre, secured
//! with STARTTLS or implicit TLS (rustls), or plain to a loopback relay.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MessageBuilder};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::channel::{Channel, DeliveryError, Disposition, Message, SendFuture};
use super::config::{ConfigError, SmtpConfig, TlsMode};
use super::recipients::Recipient;
use crate::secrets::Secret;

/// Sends each notification as one email to all its recipients with an address.
pub struct SmtpChannel {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl std::fmt::Debug for SmtpChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpChannel")
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

impl SmtpChannel {
    /// Builds the transport; connects lazily on the first send. `password`
    /// is the loaded `smtp.password` (see [`crate::secrets::SecretRef::load`]).
    pub fn new(config: &SmtpConfig, password: Option<&Secret>) -> Result<SmtpChannel, ConfigError> {
        let from: Mailbox = config.from.parse().map_err(|source| ConfigError::From {
            address: config.from.clone(),
            source,
        })?;
        let tls = match config.tls {
            TlsMode::Starttls => Tls::Required(TlsParameters::new(config.host.clone())?),
            TlsMode::Tls => Tls::Wrapper(TlsParameters::new(config.host.clone())?),
            TlsMode::Plain => Tls::None,
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host)
            .port(config.port())
            .tls(tls)
            .timeout(Some(Duration::from_secs(config.timeout_seconds)));
        match (&config.username, password) {
            (Some(user), Some(password)) => {
                builder = builder.credentials(Credentials::new(
                    user.clone(),
                    password.expose().to_string(),
                ));
            }
            (None, None) => {}
            _ => {
                return Err(ConfigError::Invalid(
                    "smtp.username and smtp.password go together".into(),
                ));
            }
        }
        Ok(SmtpChannel {
            transport: builder.build(),
            from,
        })
    }

    /// The email for `message`, as it will be sent (public for inspection).
    pub fn build_email(&self, message: &Message) -> Result<lettre::Message, DeliveryError> {
        let mut builder: MessageBuilder = lettre::Message::builder()
            .from(self.from.clone())
            .subject(message.subject.clone())
            .message_id(Some(message_id(&message.effect_id, &self.from)))
            .header(ContentType::TEXT_PLAIN);
        let mut any = false;
        for recipient in &message.recipients {
            let Some(email) = &recipient.email else {
                continue;
            };
            let address: Address = email.parse().map_err(|source| DeliveryError::Address {
                address: email.clone(),
                source,
            })?;
            let name = (!recipient.name.is_empty()).then(|| recipient.name.clone());
            builder = builder.to(Mailbox::new(name, address));
            any = true;
        }
        if !any {
            return Err(DeliveryError::NoRecipient {
                channel: "email".into(),
            });
        }
        Ok(builder.body(message.body.clone())?)
    }
}

/// A stable Message-ID per effect, so a mail delivered again after a lost
/// acknowledgement is recognisable as the same message by mail clients.
fn message_id(effect_id: &str, from: &Mailbox) -> String {
    let safe = effect_id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && !effect_id.is_empty()
        && !effect_id.starts_with('.')
        && !effect_id.ends_with('.')
        && !effect_id.contains("..");
    let left = if safe {
        effect_id.to_string()
    } else {
        hex::encode(effect_id.as_bytes())
    };
    format!("<{left}.notify@{}>", from.email.domain())
}

impl Channel for SmtpChannel {
    fn reaches(&self, recipient: &Recipient) -> bool {
        recipient.email.is_some()
    }

    fn send<'a>(&'a self, message: &'a Message) -> SendFuture<'a> {
        Box::pin(async move {
            let email = self.build_email(message)?;
            self.transport.send(email).await.map_err(|source| {
                // A 5xx reply (unknown mailbox, refused) will not change on
                // its own; connection trouble and 4xx replies may.
                let disposition = if source.is_permanent() {
                    Disposition::Permanent
                } else {
                    Disposition::Retryable
                };
                DeliveryError::Smtp {
                    disposition,
                    source,
                }
            })?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_stable_and_valid() {
        let from: Mailbox = "尖山区民政局 <notify@mz.jianshan.example>".parse().unwrap();
        assert_eq!(
            message_id("dibao-1-e17", &from),
            "<dibao-1-e17.notify@mz.jianshan.example>"
        );
        assert_eq!(
            message_id("a b", &from),
            "<612062.notify@mz.jianshan.example>"
        );
    }
}
