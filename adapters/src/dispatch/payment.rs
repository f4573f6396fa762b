//! Where `payment` and `payment_stop` effects go: a [`PaymentSink`], which the
//! payments [`Ledger`] implements.
//!
//! The outbox delivers at least once, and a node may die between applying an
//! effect and marking it delivered, so a sink must make a second application of
//! the same effect id a no-op: that is what keeps a payment from being made twice.

use std::future::Future;
use std::pin::Pin;

use chrono::{DateTime, Utc};
use jiuzhu_engine::effects::Outward;
use jiuzhu_engine::runtime::Engine;
use jiuzhu_engine::store::{OutboxRow, StoreError};

use crate::payments::{Ledger, PaymentError, RESERVE_REPLY_FIELD};

/// The future a sink returns; boxed so sinks can live behind `dyn`.
pub type ApplyFuture<'a> = Pin<Box<dyn Future<Output = Result<(), PaymentSinkError>> + Send + 'a>>;

/// Takes payment effects: outbox rows of kind `payment` or `payment_stop`, read by the
/// dispatcher into their typed effect.
pub trait PaymentSink: Send + Sync {
    /// Applies one effect (the row and its typed reading) at `now`. Applying an effect id
    /// a second time must change nothing and succeed.
    fn apply_payment<'a>(
        &'a self,
        entry: &'a OutboxRow,
        effect: &'a Outward,
        now: DateTime<Utc>,
    ) -> ApplyFuture<'a>;

    /// [`PaymentSink::apply_payment`] with the engine at hand: a payment drawn from a
    /// township reserve (`reserve_reply`) answers its case. Sinks without reserves apply
    /// the payment as any other.
    fn apply_payment_for<'a>(
        &'a self,
        _engine: &'a Engine,
        entry: &'a OutboxRow,
        effect: &'a Outward,
        now: DateTime<Utc>,
    ) -> ApplyFuture<'a> {
        self.apply_payment(entry, effect, now)
    }

    /// Carries out a `batch` request (one payment per recipient, then the report to the
    /// case). Delivering it again must resume the run and pay nobody twice.
    fn run_batch<'a>(
        &'a self,
        _engine: &'a Engine,
        _entry: &'a OutboxRow,
        _now: DateTime<Utc>,
    ) -> ApplyFuture<'a> {
        Box::pin(async {
            Err(PaymentSinkError::permanent(
                "this payment sink does not run batches",
            ))
        })
    }
}

/// A payment effect the sink did not take, and whether trying again may help.
#[derive(Debug, thiserror::Error)]
#[error("{source}")]
pub struct PaymentSinkError {
    /// True for passing conditions (the database busy or unreachable, a lost race);
    /// false when the effect itself is wrong (no amount, an unknown schedule), which
    /// waits for a person.
    pub retryable: bool,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl PaymentSinkError {
    pub fn retryable(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        PaymentSinkError {
            retryable: true,
            source: source.into(),
        }
    }

    pub fn permanent(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        PaymentSinkError {
            retryable: false,
            source: source.into(),
        }
    }
}

/// Whether a ledger failure may pass by itself.
fn ledger_failure_is_retryable(error: &PaymentError) -> bool {
    match error {
        PaymentError::Conflict(_) | PaymentError::Database(_) => true,
        // A case busy with another step, or the engine's database passing trouble.
        PaymentError::BatchEngine { source, .. } => matches!(
            source,
            jiuzhu_engine::runtime::EngineError::Conflict { .. }
                | jiuzhu_engine::runtime::EngineError::Store(_)
        ),
        PaymentError::Store(store) => matches!(
            store,
            StoreError::Conflict { .. }
                | StoreError::Locked { .. }
                | StoreError::Unreachable { .. }
                | StoreError::Full { .. }
                | StoreError::Database(_)
        ),
        PaymentError::Reserve { retryable, .. } => *retryable,
        // Malformed effects, unknown instances, corrupt rows: a person has to look.
        _ => false,
    }
}

impl PaymentSink for Ledger {
    fn apply_payment<'a>(
        &'a self,
        entry: &'a OutboxRow,
        effect: &'a Outward,
        now: DateTime<Utc>,
    ) -> ApplyFuture<'a> {
        Box::pin(async move {
            // `Applied::Duplicate` is the second delivery of an effect already applied:
            // success, with nothing changed.
            self.apply_typed(entry, effect, now)
                .await
                .map(|_applied| ())
                .map_err(|error| PaymentSinkError {
                    retryable: ledger_failure_is_retryable(&error),
                    source: Box::new(error),
                })
        })
    }

    fn apply_payment_for<'a>(
        &'a self,
        engine: &'a Engine,
        entry: &'a OutboxRow,
        effect: &'a Outward,
        now: DateTime<Utc>,
    ) -> ApplyFuture<'a> {
        if entry.payload.get(RESERVE_REPLY_FIELD).is_none() {
            return self.apply_payment(entry, effect, now);
        }
        Box::pin(async move {
            self.pay_from_reserve(engine, entry, now)
                .await
                .map(|_outcome| ())
                .map_err(|error| PaymentSinkError {
                    retryable: ledger_failure_is_retryable(&error),
                    source: Box::new(error),
                })
        })
    }

    fn run_batch<'a>(
        &'a self,
        engine: &'a Engine,
        entry: &'a OutboxRow,
        now: DateTime<Utc>,
    ) -> ApplyFuture<'a> {
        Box::pin(async move {
            self.run_batch(engine, entry, now)
                .await
                .map(|_outcome| ())
                .map_err(|error| PaymentSinkError {
                    retryable: ledger_failure_is_retryable(&error),
                    source: Box::new(error),
                })
        })
    }
}
