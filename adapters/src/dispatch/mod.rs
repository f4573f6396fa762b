//! The outbox dispatcher: delivers the effects a step committed, retries failures with
//! backoff, and gives up on the hopeless ones as incidents for a person to look at.
//!
//! One [`Dispatcher::tick`] claims a batch of due outbox entries under a lease (so two
//! nodes never deliver one entry at the same time), delivers each through its adapter and
//! records the outcome:
//!
//! | effect type               | delivered by                                            |
//! |---------------------------|---------------------------------------------------------|
//! | `notification`            | the [`Notifier`]: one delivery per channel               |
//! | `escalation`              | the [`Notifier`], as a notification to `to_role` with the `escalation` template |
//! | `payment`, `payment_stop` | the [`PaymentSink`] (the payments ledger)               |
//! | `start_process`, `message` | the engine itself ([`Engine::deliver_outward`]): a child case at once or on its `at` date, a message to another case |
//!
//! Each row is read once into the engine's typed effect ([`parse_outbox`], lenient for
//! rows an older version queued); the adapters work on its typed fields. A row that does
//! not read is given up at once as an incident naming the field, never dropped.
//!
//! Delivery is at least once, idempotent per effect id:
//!
//! - a notification's channels are tracked one by one (`<effect id>:<channel>`), so a
//!   retried webhook does not send the email again. A node dying between sending and
//!   recording a channel sends that one message again on the next attempt: a
//!   duplicate email is possible (receivers see the same Message-ID / idempotency key),
//!   a lost one is not;
//! - the payments ledger keys every effect by its id, so applying it again after a
//!   crash between applying and acknowledging creates no second payment;
//! - a started process gets an instance id derived from the effect id, so a second start
//!   is a duplicate key and counts as done; a delivered message's effect id is kept by
//!   the case that took it, which refuses it a second time.
//!
//! A failure the adapter calls passing (network, HTTP 5xx, a busy database) is tried
//! again by the [`RetryPolicy`]: exponential backoff with jitter, up to its attempt
//! limit. A permanent failure (a bad address, a missing template, malformed effect data)
//! or the last allowed attempt makes the entry *dead*: an incident listed by
//! `jiuzhu incidents` with its last error, attempts and times, until `jiuzhu retry ID`
//! gives it a fresh attempt budget.
//!
//! Every delivery runs in a `delivery` span (target `jiuzhu_adapters::dispatch`) with the
//! effect id, kind, instance id and attempt number, and ends in one event with its outcome;
//! each notification channel sent or failed is an event with the channel's name. Errors
//! and notes are not logged: they can quote an address or a recipient's name. They are
//! kept on the entry, for `jiuzhu incidents`.

pub mod incidents;
pub mod payment;
pub mod route;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, Utc};
use futures_util::StreamExt as _;
use jiuzhu_engine::effects::typed::Notification;
use jiuzhu_engine::effects::{Outward, TypedEffect, parse_outbox};
use jiuzhu_engine::runtime::Engine;
use jiuzhu_engine::store::{ClaimedOutbox, Store, StoreError};
use rand::SeedableRng as _;
use tracing::Instrument as _;

use crate::notify::Notifier;
use crate::retry::{JitterSource, RetryPolicy};

pub use incidents::Incident;
pub use jiuzhu_engine::runtime::internal::{
    InternalOutcome, STARTER_ROLE, SYSTEM_USER, StartAt, StartRequest,
};
pub use payment::{ApplyFuture, PaymentSink, PaymentSinkError};
pub use route::{ESCALATION_TEMPLATE, Route, RouteError};

/// How the dispatcher claims and retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DispatchConfig {
    /// This node's name in outbox leases.
    pub node_id: String,
    pub retry: RetryPolicy,
    /// How long a claimed entry stays with this node. The node renews the leases it holds
    /// every third of this while it delivers a batch, so it can be short: a dead node's
    /// entries go to another within one lease.
    pub lease: chrono::Duration,
    /// Claims whose delivery never reported back (the node died, hung or panicked
    /// mid-delivery) an entry may have before it is given up as an incident.
    pub max_unreported: i64,
    /// Entries claimed per tick.
    pub batch: u32,
    /// Entries delivered at the same time within a tick.
    pub concurrency: usize,
}

impl DispatchConfig {
    pub fn new(node_id: &str) -> DispatchConfig {
        DispatchConfig {
            node_id: node_id.to_string(),
            retry: RetryPolicy::default(),
            lease: chrono::Duration::seconds(30),
            max_unreported: 3,
            batch: 32,
            concurrency: 8,
        }
    }
}

/// Why a tick did not run (each entry's own failure is an [`Outcome`], not an error).
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error("cannot claim outbox entries")]
    Claim(#[source] StoreError),
}

/// What became of one claimed entry.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Delivered,
    /// Not due yet (a process to start on a later date): back in the outbox until then,
    /// without an attempt counted.
    Deferred {
        until: DateTime<Utc>,
    },
    /// Failed; tried again at `next_attempt_at`. `attempts` counts this one.
    Retrying {
        attempts: i64,
        next_attempt_at: DateTime<Utc>,
        error: String,
    },
    /// Given up on: an incident now.
    Dead {
        attempts: i64,
        error: String,
    },
    /// The attempt was made but its outcome could not be recorded (the database failed
    /// meanwhile, or another node settled the entry after this node's lease ran out).
    /// The entry is claimed again when the lease ends.
    Unrecorded {
        error: String,
    },
}

impl Outcome {
    /// The outcome's name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::Deferred { .. } => "deferred",
            Outcome::Retrying { .. } => "retrying",
            Outcome::Dead { .. } => "dead",
            Outcome::Unrecorded { .. } => "unrecorded",
        }
    }
}

/// One entry of a tick.
#[derive(Debug, Clone, PartialEq)]
pub struct EntryReport {
    pub id: String,
    pub kind: String,
    pub instance_id: String,
    pub outcome: Outcome,
    /// Things worth a log line that did not fail the delivery, e.g. recipients no
    /// configured channel reaches.
    pub notes: Vec<String>,
}

/// What one tick did, entry by entry, in claim order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TickReport {
    pub entries: Vec<EntryReport>,
}

impl TickReport {
    pub fn claimed(&self) -> usize {
        self.entries.len()
    }

    fn count(&self, wanted: impl Fn(&Outcome) -> bool) -> usize {
        self.entries.iter().filter(|e| wanted(&e.outcome)).count()
    }

    pub fn delivered(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Delivered))
    }

    pub fn deferred(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Deferred { .. }))
    }

    pub fn retrying(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Retrying { .. }))
    }

    pub fn dead(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Dead { .. }))
    }

    pub fn unrecorded(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Unrecorded { .. }))
    }

    /// The outcome of the entry with this id, if this tick handled it.
    pub fn outcome(&self, id: &str) -> Option<&Outcome> {
        self.entries.iter().find(|e| e.id == id).map(|e| &e.outcome)
    }
}

/// The result of one delivery attempt, before it is recorded.
enum Attempt {
    Done,
    NotBefore(DateTime<Utc>),
    Failed { error: String, retryable: bool },
}

impl Attempt {
    fn retryable(error: impl std::fmt::Display) -> Attempt {
        Attempt::Failed {
            error: error.to_string(),
            retryable: true,
        }
    }

    fn permanent(error: impl std::fmt::Display) -> Attempt {
        Attempt::Failed {
            error: error.to_string(),
            retryable: false,
        }
    }
}

/// Delivers outbox entries through the adapters. Share it behind an `Arc`; ticks may run
/// concurrently on several nodes (the lease keeps them apart).
pub struct Dispatcher {
    engine: Arc<Engine>,
    config: DispatchConfig,
    notifier: Option<Arc<Notifier>>,
    payments: Option<Arc<dyn PaymentSink>>,
    jitter: Mutex<Box<dyn JitterSource + Send>>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("config", &self.config)
            .field("notifier", &self.notifier.is_some())
            .field("payments", &self.payments.is_some())
            .finish_non_exhaustive()
    }
}

impl Dispatcher {
    /// A dispatcher on the engine's store. Without a notifier or a payment sink, effects
    /// for them fail as retryable ("not configured") and end as incidents: a node with
    /// the missing configuration, or `jiuzhu retry` after fixing it, delivers them.
    pub fn new(engine: Arc<Engine>, config: DispatchConfig) -> Dispatcher {
        Dispatcher {
            engine,
            config,
            notifier: None,
            payments: None,
            jitter: Mutex::new(Box::new(rand::rngs::StdRng::from_os_rng())),
        }
    }

    pub fn with_notifier(mut self, notifier: Arc<Notifier>) -> Dispatcher {
        self.notifier = Some(notifier);
        self
    }

    pub fn with_payments(mut self, payments: Arc<dyn PaymentSink>) -> Dispatcher {
        self.payments = Some(payments);
        self
    }

    /// Replaces the random source of the retry jitter (tests pass a seeded generator).
    pub fn with_jitter(mut self, jitter: Box<dyn JitterSource + Send>) -> Dispatcher {
        self.jitter = Mutex::new(jitter);
        self
    }

    pub fn config(&self) -> &DispatchConfig {
        &self.config
    }

    fn store(&self) -> &Store {
        &self.engine.store
    }

    /// Claims the entries due at `now`, delivers them and records each outcome.
    pub async fn tick(&self, now: DateTime<Utc>) -> Result<TickReport, DispatchError> {
        let started = Instant::now();
        let claimed = self
            .store()
            .claim_outbox(
                &self.config.node_id,
                now,
                self.config.lease,
                self.config.batch,
            )
            .await
            .map_err(DispatchError::Claim)?;
        let delivering = futures_util::stream::iter(claimed.into_iter().enumerate())
            .map(|(index, claimed)| async move { (index, self.handle(claimed, now).await) })
            .buffer_unordered(self.config.concurrency.max(1))
            .collect::<Vec<(usize, EntryReport)>>();
        let mut entries = tokio::select! {
            entries = delivering => entries,
            () = self.renew_leases() => Vec::new(),
        };
        entries.sort_by_key(|(index, _)| *index);
        let report = TickReport {
            entries: entries.into_iter().map(|(_, entry)| entry).collect(),
        };
        if report.claimed() > 0 {
            tracing::debug!(
                node = %self.config.node_id,
                claimed = report.claimed(),
                delivered = report.delivered(),
                deferred = report.deferred(),
                retrying = report.retrying(),
                dead = report.dead(),
                unrecorded = report.unrecorded(),
                elapsed = ?started.elapsed(),
                "outbox batch handled"
            );
        }
        Ok(report)
    }

    async fn handle(&self, claimed: ClaimedOutbox, now: DateTime<Utc>) -> EntryReport {
        let span = tracing::debug_span!(
            "delivery",
            effect = %claimed.entry.id,
            kind = %claimed.entry.kind,
            instance = %claimed.entry.instance_id,
            attempt = claimed.attempts.saturating_add(1),
        );
        async move { self.handle_in_span(claimed, now).await }
            .instrument(span)
            .await
    }

    /// Renews, every third of the lease, the leases this node holds on outbox entries;
    /// never ends (the tick drops it once its deliveries are done).
    async fn renew_leases(&self) {
        let lease = self.config.lease;
        let every = lease
            .to_std()
            .unwrap_or(std::time::Duration::from_secs(30))
            .max(std::time::Duration::from_millis(300))
            / 3;
        loop {
            tokio::time::sleep(every).await;
            let now = self.engine.now();
            if let Err(error) = self
                .store()
                .renew_outbox_leases(&self.config.node_id, now, lease)
                .await
            {
                tracing::warn!(%error, "outbox lease renewal failed");
            }
        }
    }

    async fn handle_in_span(&self, claimed: ClaimedOutbox, now: DateTime<Utc>) -> EntryReport {
        use futures_util::FutureExt as _;
        let started = Instant::now();
        let mut notes = Vec::new();
        // Claims past the one of each recorded attempt never reported back: a poison entry
        // that kills (or hangs) the node is given up on instead of being tried forever.
        let unreported = claimed.claims - claimed.attempts - 1;
        let attempt = if unreported >= self.config.max_unreported {
            Attempt::permanent(format!(
                "claimed {unreported} times without its delivery reporting back \
                 (the node died, hung or panicked mid-delivery)"
            ))
        } else {
            std::panic::AssertUnwindSafe(self.deliver(&claimed, now, &mut notes))
                .catch_unwind()
                .await
                .unwrap_or_else(|_| Attempt::retryable("the delivery panicked"))
        };
        let outcome = self.record(&claimed, attempt, now).await;
        let elapsed = started.elapsed();
        match &outcome {
            Outcome::Delivered => {
                tracing::debug!(outcome = outcome.name(), ?elapsed, "delivery done")
            }
            Outcome::Deferred { until } => {
                tracing::debug!(outcome = outcome.name(), %until, ?elapsed, "delivery deferred")
            }
            Outcome::Retrying {
                attempts,
                next_attempt_at,
                ..
            } => tracing::info!(
                outcome = outcome.name(),
                attempts,
                %next_attempt_at,
                ?elapsed,
                "delivery failed; retrying later"
            ),
            Outcome::Dead { attempts, .. } => tracing::warn!(
                outcome = outcome.name(),
                attempts,
                ?elapsed,
                "delivery given up: an incident now (see `jiuzhu incidents`)"
            ),
            Outcome::Unrecorded { .. } => tracing::warn!(
                outcome = outcome.name(),
                ?elapsed,
                "delivery outcome not recorded; claimed again after the lease"
            ),
        }
        if !notes.is_empty() {
            tracing::debug!(
                notes = notes.len(),
                "delivery has notes (kept on the report)"
            );
        }
        EntryReport {
            id: claimed.entry.id,
            kind: claimed.entry.kind,
            instance_id: claimed.entry.instance_id,
            outcome,
            notes,
        }
    }

    async fn deliver(
        &self,
        claimed: &ClaimedOutbox,
        now: DateTime<Utc>,
        notes: &mut Vec<String>,
    ) -> Attempt {
        let entry = &claimed.entry;
        // Every row is read once, into the engine's typed effect; a row that does not read
        // (a kind the engine does not know, a field of the wrong type) waits for a person.
        let effect = match parse_outbox(entry) {
            Ok(effect) => effect,
            Err(error) => {
                return Attempt::permanent(format!("the effect does not read: {error}"));
            }
        };
        match &effect.effect {
            TypedEffect::Notification(notice) => {
                self.deliver_notification(&effect, notice, now, notes).await
            }
            TypedEffect::Escalation(escalation) => {
                let notice = route::escalation_notice(escalation);
                self.deliver_notification(&effect, &notice, now, notes)
                    .await
            }
            TypedEffect::Payment(_) | TypedEffect::PaymentStop(_) => match &self.payments {
                None => Attempt::retryable("no payment ledger is configured on this node"),
                Some(sink) => match sink
                    .apply_payment_for(&self.engine, entry, &effect, now)
                    .await
                {
                    Ok(()) => Attempt::Done,
                    Err(error) => Attempt::Failed {
                        error: format!("payment ledger: {error}"),
                        retryable: error.retryable,
                    },
                },
            },
            TypedEffect::StartProcess(_) | TypedEffect::Message(_) => {
                match self
                    .engine
                    .deliver_outward(&effect, entry.created_at, now)
                    .await
                {
                    InternalOutcome::Done => Attempt::Done,
                    InternalOutcome::NotBefore(until) => Attempt::NotBefore(until),
                    InternalOutcome::Failed { error, retryable } => {
                        Attempt::Failed { error, retryable }
                    }
                }
            }
            TypedEffect::Batch(_) => match &self.payments {
                None => Attempt::retryable("no payment ledger is configured on this node"),
                Some(sink) => match sink.run_batch(&self.engine, entry, now).await {
                    Ok(()) => Attempt::Done,
                    Err(error) => Attempt::Failed {
                        error: format!("batch run: {error}"),
                        retryable: error.retryable,
                    },
                },
            },
        }
    }

    /// Sends every channel of a notification not yet delivered; records each one sent.
    async fn deliver_notification(
        &self,
        effect: &Outward,
        notice: &Notification,
        now: DateTime<Utc>,
        notes: &mut Vec<String>,
    ) -> Attempt {
        let outbox_id = effect.id.as_str();
        let instance_id = effect.instance.as_str();
        let Some(notifier) = &self.notifier else {
            return Attempt::retryable("no notification channels are configured on this node");
        };
        let row = match self.store().load_instance(instance_id).await {
            Ok(Some(row)) => row,
            Ok(None) => return Attempt::permanent(format!("instance {instance_id} not found")),
            Err(error) => return Attempt::retryable(error_chain(&error)),
        };
        let plan = match notifier.prepare_typed(
            outbox_id,
            instance_id,
            notice,
            &route::instance_vars(&row),
        ) {
            Ok(plan) => plan,
            Err(error) => return Attempt::permanent(error),
        };
        for recipient in &plan.unreachable {
            notes.push(format!(
                "no configured channel reaches {}",
                recipient.user_id.as_deref().unwrap_or(&recipient.name)
            ));
        }
        let done: HashSet<String> = match self.store().delivered_parts(outbox_id).await {
            Ok(keys) => keys.into_iter().collect(),
            Err(error) => return Attempt::retryable(error_chain(&error)),
        };
        let mut failures = Vec::new();
        let mut retryable = true;
        for delivery in plan.deliveries.iter().filter(|d| !done.contains(&d.key)) {
            let sent = notifier.send(delivery).await;
            tracing::debug!(
                channel = delivery.channel.as_str(),
                sent = sent.is_ok(),
                retryable = sent.as_ref().err().map(|error| error.is_retryable()),
                "notification channel"
            );
            match sent {
                Ok(()) => {
                    // Unrecorded, the channel is sent again on the next attempt: a
                    // duplicate, never a loss.
                    if let Err(error) = self
                        .store()
                        .record_delivered_part(outbox_id, &delivery.key, now)
                        .await
                    {
                        failures.push(format!(
                            "{}: sent, but not recorded: {}",
                            delivery.key,
                            error_chain(&error)
                        ));
                    }
                }
                Err(error) => {
                    retryable &= error.is_retryable();
                    failures.push(format!("{}: {}", delivery.key, error_chain(&error)));
                }
            }
        }
        if failures.is_empty() {
            Attempt::Done
        } else {
            Attempt::Failed {
                error: failures.join("; "),
                retryable,
            }
        }
    }

    /// Records the attempt's outcome on the entry.
    async fn record(
        &self,
        claimed: &ClaimedOutbox,
        attempt: Attempt,
        now: DateTime<Utc>,
    ) -> Outcome {
        let id = &claimed.entry.id;
        let store = self.store();
        let (written, outcome) = match attempt {
            Attempt::Done => (store.mark_delivered(id, now).await, Outcome::Delivered),
            Attempt::NotBefore(until) => (
                store.defer_outbox(id, until).await,
                Outcome::Deferred { until },
            ),
            Attempt::Failed { error, retryable } => {
                let attempts = claimed.attempts.saturating_add(1);
                let next = if retryable {
                    let made = u32::try_from(attempts).unwrap_or(u32::MAX);
                    let mut jitter = self
                        .jitter
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                    self.config.retry.next_attempt(made, now, &mut **jitter)
                } else {
                    None
                };
                let written = store
                    .record_outbox_failure(id, &error, now, next.unwrap_or(now), next.is_none())
                    .await;
                let outcome = match next {
                    Some(next_attempt_at) => Outcome::Retrying {
                        attempts,
                        next_attempt_at,
                        error,
                    },
                    None => Outcome::Dead { attempts, error },
                };
                (written, outcome)
            }
        };
        match written {
            Ok(()) => outcome,
            Err(error) => Outcome::Unrecorded {
                error: error_chain(&error),
            },
        }
    }
}

/// An error with its sources, `outer: inner: innermost`, for the incident's last error.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
