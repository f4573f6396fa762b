//! The webhook channel: an HTTP POST of the notification as JSON (to an SMS
//! gateway, the government platform, …), signed with HMAC-SHA256 and carrying
//! the effect id as `Idempotency-Key` so the receiver can drop repeats.

use std::time::Duration;

use hmac::{Hmac, Mac};
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use sha2::Sha256;

use super::channel::{Channel, DeliveryError, Disposition, Message, SendFuture};
use super::config::{ConfigError, WebhookConfig};
use super::recipients::Recipient;
use crate::secrets::Secret;

/// The header carrying the idempotency key (the effect id).
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";
/// The header carrying `sha256=<hex HMAC-SHA256 of the body>`.
pub const SIGNATURE_HEADER: &str = "X-Jiuzhu-Signature";

type HmacSha256 = Hmac<Sha256>;

/// `sha256=<hex>` of `body` under `key`, as sent in [`SIGNATURE_HEADER`].
pub fn sign(key: &Secret, body: &[u8]) -> String {
    let mut mac = keyed(key);
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Whether `header` is a valid signature of `body` under `key`, compared in
/// constant time (what a receiver must do; used by our tests).
pub fn verify(key: &Secret, body: &[u8], header: &str) -> bool {
    let Some(hex_mac) = header.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(expected) = hex::decode(hex_mac) else {
        return false;
    };
    let mut mac = keyed(key);
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

fn keyed(key: &Secret) -> HmacSha256 {
    // HMAC takes keys of any length (long ones are hashed first), so this
    // constructor cannot fail.
    match HmacSha256::new_from_slice(key.expose().as_bytes()) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of every length"),
    }
}

/// POSTs each notification once, with every recipient in the body.
pub struct WebhookChannel {
    client: reqwest::Client,
    url: reqwest::Url,
    key: Secret,
}

impl std::fmt::Debug for WebhookChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookChannel")
            .field("url", &self.url.as_str())
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl WebhookChannel {
    /// `key` is the loaded `webhook.secret`.
    pub fn new(config: &WebhookConfig, key: Secret) -> Result<WebhookChannel, ConfigError> {
        let url = reqwest::Url::parse(&config.url)
            .map_err(|e| ConfigError::Invalid(format!("webhook.url `{}`: {e}", config.url)))?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(config.timeout_seconds))
            // A redirect would re-send personal data to wherever it points.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(WebhookChannel { client, url, key })
    }

    /// The exact bytes POSTed for `message` (the signature covers these).
    pub fn body(message: &Message) -> Result<Vec<u8>, DeliveryError> {
        Ok(serde_json::to_vec(message)?)
    }
}

impl Channel for WebhookChannel {
    /// The receiver decides what to do with each address (SMS to a phone,
    /// platform message to a user id), so every recipient is reachable.
    fn reaches(&self, _recipient: &Recipient) -> bool {
        true
    }

    fn send<'a>(&'a self, message: &'a Message) -> SendFuture<'a> {
        Box::pin(async move {
            let body = WebhookChannel::body(message)?;
            let signature = sign(&self.key, &body);
            let response = self
                .client
                .post(self.url.clone())
                .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                .header(IDEMPOTENCY_HEADER, message.effect_id.as_str())
                .header(SIGNATURE_HEADER, signature)
                .body(body)
                .send()
                .await
                .map_err(|source| {
                    // A request that cannot even be built (a header value with
                    // a newline in the effect id) fails the same way each time.
                    let disposition = if source.is_builder() {
                        Disposition::Permanent
                    } else {
                        Disposition::Retryable
                    };
                    DeliveryError::Http {
                        disposition,
                        source,
                    }
                })?;
            let status = response.status();
            if status.is_success() {
                Ok(())
            } else {
                Err(DeliveryError::Status {
                    status: status.as_u16(),
                })
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_the_rfc_4231_vector_and_verify() {
        // RFC 4231 test case 2.
        let key = Secret::new("Jefe");
        let body = b"what do ya want for nothing?";
        let sig = sign(&key, body);
        assert_eq!(
            sig,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(verify(&key, body, &sig));
        assert!(!verify(&key, b"tampered", &sig));
        assert!(!verify(&Secret::new("other"), body, &sig));
        assert!(!verify(&key, body, "sha1=00"));
        assert!(!verify(&key, body, "sha256=zz"));
    }
}
