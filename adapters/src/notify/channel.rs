//! The channel abstraction: one rendered notification goes out over email,
//! a webhook or anything else that can say whether a failure is worth
//! retrying.

use std::future::Future;
use std::pin::Pin;

use serde::Serialize;
use serde_json::Value as Json;

use super::recipients::Recipient;

/// One notification ready to send: rendered text and the recipients this
/// channel can reach. `effect_id` is the idempotency key of the delivery.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    pub effect_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    pub template: String,
    pub subject: String,
    pub body: String,
    pub recipients: Vec<Recipient>,
    /// The effect as the engine emitted it, for receivers that want the data
    /// (e.g. `monthly_amount`) rather than the text.
    pub effect: Json,
}

/// Whether the dispatcher should try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// A passing condition (network, 4xx SMTP reply, HTTP 5xx/429): retry
    /// by the [`crate::retry::RetryPolicy`].
    Retryable,
    /// Retrying cannot help (bad address, HTTP 400, 5xx SMTP reply): dead-letter now.
    Permanent,
}

/// A failed delivery.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("SMTP delivery failed: {source}")]
    Smtp {
        disposition: Disposition,
        #[source]
        source: lettre::transport::smtp::Error,
    },
    #[error("cannot build the email: {0}")]
    Email(#[from] lettre::error::Error),
    #[error("`{address}` is not a valid email address: {source}")]
    Address {
        address: String,
        #[source]
        source: lettre::address::AddressError,
    },
    #[error("webhook request failed: {source}")]
    Http {
        disposition: Disposition,
        #[source]
        source: reqwest::Error,
    },
    #[error("webhook answered HTTP {status}")]
    Status { status: u16 },
    #[error("cannot encode the webhook body: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("channel `{channel}` can reach none of the recipients")]
    NoRecipient { channel: String },
    #[error("channel `{channel}` is not configured")]
    NotConfigured { channel: String },
}

impl DeliveryError {
    pub fn disposition(&self) -> Disposition {
        match self {
            DeliveryError::Smtp { disposition, .. } | DeliveryError::Http { disposition, .. } => {
                *disposition
            }
            DeliveryError::Status { status } => status_disposition(*status),
            DeliveryError::Email(_)
            | DeliveryError::Address { .. }
            | DeliveryError::Encode(_)
            | DeliveryError::NoRecipient { .. }
            | DeliveryError::NotConfigured { .. } => Disposition::Permanent,
        }
    }

    pub fn is_retryable(&self) -> bool {
        self.disposition() == Disposition::Retryable
    }
}

/// HTTP statuses worth retrying: timeouts, conflicts while the receiver is
/// still processing the same idempotency key, throttling and server errors.
pub(crate) fn status_disposition(status: u16) -> Disposition {
    match status {
        408 | 409 | 425 | 429 | 500..=599 => Disposition::Retryable,
        _ => Disposition::Permanent,
    }
}

/// The future a channel returns; boxed so channels can live behind `dyn`.
pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<(), DeliveryError>> + Send + 'a>>;

/// A way to deliver notifications.
pub trait Channel: Send + Sync {
    /// Whether this channel can reach `recipient` (email needs an address).
    fn reaches(&self, recipient: &Recipient) -> bool;

    /// Sends `message` to its recipients (all of which this channel reaches).
    /// Sending the same `effect_id` again must be harmless to the receiver.
    fn send<'a>(&'a self, message: &'a Message) -> SendFuture<'a>;
}
