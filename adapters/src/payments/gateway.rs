//! The HTTP payment gateway: one POST per instruction, carrying its reference as
//! `Idempotency-Key`, so a retry (after a timeout, a 5xx or a crash before the
//! acknowledgement was recorded) can never pay twice.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ledger::Instruction;

/// Where and how to reach the gateway.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// The payment endpoint, e.g. `https://pay.example/v1/payments`.
    pub url: String,
    /// Sent as `Authorization: Bearer …` when set.
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Attempts per instruction in one round, the first included.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// Wait before the second attempt; doubled before each further one.
    #[serde(default = "default_retry_ms")]
    pub retry_delay_ms: u64,
}

fn default_timeout_ms() -> u64 {
    10_000
}
fn default_attempts() -> u32 {
    3
}
fn default_retry_ms() -> u64 {
    500
}

impl GatewayConfig {
    pub fn new(url: &str) -> GatewayConfig {
        GatewayConfig {
            url: url.to_owned(),
            token: None,
            timeout_ms: default_timeout_ms(),
            max_attempts: default_attempts(),
            retry_delay_ms: default_retry_ms(),
        }
    }
}

/// What the gateway said about one instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayOutcome {
    /// Taken (2xx), or already taken under this key before (409).
    Accepted { attempts: u32 },
    /// Refused for good (another 4xx): the payment fails and needs a person.
    Rejected { status: u16, reason: String },
}

/// The gateway could not be reached or kept failing; nothing is known to be paid.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("payment gateway unavailable after {attempts} attempts (last status {status})")]
    Status { attempts: u32, status: u16 },
    #[error("payment gateway unreachable after {attempts} attempts")]
    Transport {
        attempts: u32,
        #[source]
        source: reqwest::Error,
    },
    #[error("cannot build the gateway client")]
    Client(#[source] reqwest::Error),
}

/// The request body.
#[derive(Debug, Serialize)]
struct PaymentRequest<'a> {
    reference: &'a str,
    payee_name: &'a str,
    account: Option<&'a str>,
    /// Decimal text, never a float.
    amount: String,
    currency: &'static str,
    program: &'a str,
    month: String,
}

/// A gateway client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct HttpGateway {
    client: reqwest::Client,
    config: GatewayConfig,
}

impl HttpGateway {
    pub fn new(config: GatewayConfig) -> Result<HttpGateway, GatewayError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.timeout_ms))
            .build()
            .map_err(GatewayError::Client)?;
        Ok(HttpGateway { client, config })
    }

    /// Sends one instruction, retrying timeouts, connection errors, 408, 429 and 5xx with
    /// the same idempotency key.
    pub async fn send(&self, instruction: &Instruction) -> Result<GatewayOutcome, GatewayError> {
        let body = PaymentRequest {
            reference: &instruction.reference,
            payee_name: &instruction.payee.name,
            account: instruction.payee.account.as_deref(),
            amount: instruction.amount.to_string(),
            currency: "CNY",
            program: &instruction.program,
            month: instruction.month.to_string(),
        };
        // Serialising a struct of strings cannot fail; an empty body would be refused anyway.
        let body = serde_json::to_vec(&body).unwrap_or_default();
        let attempts = self.config.max_attempts.max(1);
        let mut delay = Duration::from_millis(self.config.retry_delay_ms);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut request = self
                .client
                .post(&self.config.url)
                .header("Idempotency-Key", &instruction.reference)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone());
            if let Some(token) = &self.config.token {
                request = request.bearer_auth(token);
            }
            let failure = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    if status.is_success() || status == reqwest::StatusCode::CONFLICT {
                        return Ok(GatewayOutcome::Accepted { attempts: attempt });
                    }
                    let retryable = status.is_server_error()
                        || status == reqwest::StatusCode::REQUEST_TIMEOUT
                        || status == reqwest::StatusCode::TOO_MANY_REQUESTS;
                    if !retryable {
                        let reason = response.text().await.unwrap_or_default();
                        return Ok(GatewayOutcome::Rejected {
                            status: status.as_u16(),
                            reason: reason.trim().chars().take(500).collect(),
                        });
                    }
                    GatewayError::Status {
                        attempts: attempt,
                        status: status.as_u16(),
                    }
                }
                Err(source) => GatewayError::Transport {
                    attempts: attempt,
                    source,
                },
            };
            if attempt >= attempts {
                return Err(failure);
            }
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            delay = delay.saturating_mul(2);
        }
    }
}
