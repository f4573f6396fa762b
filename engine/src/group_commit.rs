//! Group commit: steps committed concurrently share one durable transaction.
//!
//! A step is acknowledged only once its transaction is durable, and on SQLite the cost of a
//! durable commit (the fsync, and sqlx's per-statement overhead) does not grow much with the
//! rows it carries. So one committer task takes every step that is waiting, writes them with
//! [`Store::commit_group`] (multi-row statements, one commit) and answers each caller with its
//! own outcome. Nothing waits on a timer to fill a group: while one group commits, the next
//! one gathers in the queue, so many clients share each commit.
//!
//! A step that finds the committer idle (no group writing, none queued) commits itself,
//! inline: a lone client then pays no hand-off to the committer task and back, which on a
//! loaded 2-core machine costs more than the commit's own statements. The committer and
//! inline commits take turns on one lock, so groups still form while a commit is running.
//!
//! Each group is logged at `debug` (target `jiuzhu_engine::group_commit`) with its size,
//! how many of its steps failed, and how long the commit took; only counts and durations.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};
use tracing::Instrument as _;

use crate::store::{StepCommit, Store, StoreError};

/// Instances whose due timers a node fires at once under group commit. With a durable
/// commit (an fsync each) the firings in flight are what fills a group: at 64 a group held
/// ~16–22 firings and the fsync set the pace; at 1,024 a group holds ~200–260 and the
/// committer's own work does (BENCHMARKS.md).
pub const TIMER_CONCURRENCY: usize = 1024;

/// How a [`GroupCommitter`] batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupCommitOptions {
    /// The most steps one transaction carries: by default as many as a node fires timers at
    /// once ([`TIMER_CONCURRENCY`]).
    pub max_group: usize,
    /// Steps that may wait for the committer before callers wait to enqueue (backpressure).
    pub queue: usize,
}

impl Default for GroupCommitOptions {
    fn default() -> Self {
        GroupCommitOptions {
            max_group: TIMER_CONCURRENCY,
            queue: 4096,
        }
    }
}

/// How much grouping happened: `steps / groups` is the average group size.
#[derive(Debug, Default)]
pub struct GroupCommitStats {
    groups: AtomicU64,
    steps: AtomicU64,
}

impl GroupCommitStats {
    /// Transactions committed (or attempted) so far.
    pub fn groups(&self) -> u64 {
        self.groups.load(Ordering::Relaxed)
    }

    /// Steps handed to those transactions.
    pub fn steps(&self) -> u64 {
        self.steps.load(Ordering::Relaxed)
    }
}

/// A step waiting for its group, and where its outcome goes.
struct Pending {
    step: StepCommit,
    reply: oneshot::Sender<(StepCommit, Result<(), StoreError>)>,
}

/// The handle callers commit through; the committer task stops when the last handle is dropped.
#[derive(Debug, Clone)]
pub struct GroupCommitter {
    sender: mpsc::Sender<Pending>,
    /// Held while a group (or an inline step) is being written.
    writing: Arc<tokio::sync::Mutex<()>>,
    store: Store,
    stats: Arc<GroupCommitStats>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("instance", &self.step.instance.id)
            .finish()
    }
}

impl GroupCommitter {
    /// Starts the committer task on the current tokio runtime (panics outside one, like
    /// `tokio::spawn`).
    pub fn spawn(store: Store, options: GroupCommitOptions) -> GroupCommitter {
        let (sender, receiver) = mpsc::channel(options.queue.max(1));
        let stats = Arc::new(GroupCommitStats::default());
        let writing = Arc::new(tokio::sync::Mutex::new(()));
        tokio::spawn(run(
            store.clone(),
            receiver,
            writing.clone(),
            options.max_group.max(1),
            stats.clone(),
        ));
        GroupCommitter {
            sender,
            writing,
            store,
            stats,
        }
    }

    pub fn stats(&self) -> &GroupCommitStats {
        &self.stats
    }

    /// Commits `step` in the next group; returns it back once durable. A conflicting or
    /// invalid step fails alone; the rest of its group is committed.
    pub async fn commit(&self, step: StepCommit) -> Result<StepCommit, StoreError> {
        if self.sender.capacity() == self.sender.max_capacity()
            && let Ok(_writing) = self.writing.try_lock()
        {
            self.stats.groups.fetch_add(1, Ordering::Relaxed);
            self.stats.steps.fetch_add(1, Ordering::Relaxed);
            let started = Instant::now();
            let outcome = self.store.commit(&step).await;
            tracing::debug!(
                size = 1,
                inline = true,
                failed = usize::from(outcome.is_err()),
                elapsed = ?started.elapsed(),
                "group committed"
            );
            outcome?;
            return Ok(step);
        }
        let (reply, answer) = oneshot::channel();
        if let Err(mpsc::error::SendError(pending)) =
            self.sender.send(Pending { step, reply }).await
        {
            // The committer is gone (its runtime is shutting down): commit alone.
            self.store.commit(&pending.step).await?;
            return Ok(pending.step);
        }
        match answer.await {
            Ok((step, Ok(()))) => Ok(step),
            Ok((_, Err(error))) => Err(error),
            // The committer died with the step in hand: whether it was committed is unknown,
            // as after a lost connection; the caller reloads before trying again.
            Err(_) => Err(StoreError::Unreachable {
                source: sqlx::Error::WorkerCrashed,
            }),
        }
    }
}

async fn run(
    store: Store,
    mut receiver: mpsc::Receiver<Pending>,
    writing: Arc<tokio::sync::Mutex<()>>,
    max_group: usize,
    stats: Arc<GroupCommitStats>,
) {
    let mut waiting = Vec::with_capacity(max_group);
    // `recv_many` waits for the first step, then takes whatever else is already queued.
    while receiver.recv_many(&mut waiting, max_group).await > 0 {
        let (steps, replies): (Vec<StepCommit>, Vec<_>) =
            waiting.drain(..).map(|p| (p.step, p.reply)).unzip();
        stats.groups.fetch_add(1, Ordering::Relaxed);
        stats.steps.fetch_add(steps.len() as u64, Ordering::Relaxed);
        let turn = writing.lock().await;
        let started = Instant::now();
        let span = tracing::debug_span!("commit_group", size = steps.len());
        let outcomes = async {
            match store.commit_group(&steps).await {
                Ok(outcomes) => outcomes,
                Err(error) if steps.len() == 1 => vec![Err(error)],
                // Nothing of the group was kept (a lock timeout, a full disk, a lost connection).
                // Each step is tried on its own, so every caller gets its own, exact outcome.
                Err(error) => {
                    tracing::warn!(
                        size = steps.len(),
                        %error,
                        "group commit failed; committing its steps one by one"
                    );
                    let mut outcomes = Vec::with_capacity(steps.len());
                    for step in &steps {
                        outcomes.push(store.commit(step).await);
                    }
                    outcomes
                }
            }
        }
        .instrument(span)
        .await;
        drop(turn);
        tracing::debug!(
            size = steps.len(),
            failed = outcomes.iter().filter(|outcome| outcome.is_err()).count(),
            elapsed = ?started.elapsed(),
            "group committed"
        );
        for ((step, reply), outcome) in steps.into_iter().zip(replies).zip(outcomes) {
            // A caller that stopped waiting has nobody to tell; its step stands either way.
            let _ = reply.send((step, outcome));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{HistoryEntry, InstanceRow, Unchanged};
    use chrono::{DateTime, Utc};

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(ms).unwrap_or_default()
    }

    fn new_instance(id: &str, expected: Option<i64>) -> StepCommit {
        StepCommit {
            instance: InstanceRow {
                id: id.to_owned(),
                process_id: "p".to_owned(),
                process_version: 1,
                status: "active".to_owned(),
                outcome: None,
                unit: "u".to_owned(),
                state: serde_json::json!({}).into(),
                version: expected.unwrap_or(0) + 1,
                created_at: at(1_000),
                updated_at: at(1_000),
            },
            expected_version: expected,
            history: HistoryEntry {
                at: at(1_000),
                actor: None,
                event: "start".to_owned(),
                node: None,
                data: serde_json::json!({}),
            },
            tasks_opened: Vec::new(),
            tasks_closed: Vec::new(),
            timers_set: Vec::new(),
            timers_cancelled: Vec::new(),
            outbox: Vec::new(),
            tasks_assigned: Vec::new(),
            tasks_rescheduled: Vec::new(),
            completes: None,
            unchanged: Unchanged::default(),
            business_key: None,
        }
    }

    async fn store() -> anyhow::Result<Store> {
        let store = Store::open("sqlite::memory:").await?;
        let source = "process: p\n";
        store
            .deploy(
                &[crate::store::NewDeployment {
                    process_id: "p".to_owned(),
                    source: source.to_owned(),
                    hash: crate::store::sha256_hex(source.as_bytes()),
                }],
                at(0),
            )
            .await?;
        Ok(store)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_steps_share_groups_and_a_conflict_fails_alone() -> anyhow::Result<()> {
        let store = store().await?;
        let committer = GroupCommitter::spawn(store.clone(), GroupCommitOptions::default());
        let mut handles = Vec::new();
        for i in 0..64 {
            let committer = committer.clone();
            handles.push(tokio::spawn(async move {
                committer.commit(new_instance(&format!("i{i}"), None)).await
            }));
        }
        // Instance i0 again: a duplicate that must fail without taking its group down.
        let duplicate = {
            let committer = committer.clone();
            tokio::spawn(async move {
                // Wait until i0 exists so the duplicate is certain.
                while committer.store.load_instance("i0").await?.is_none() {
                    tokio::task::yield_now().await;
                }
                anyhow::Ok(committer.commit(new_instance("i0", None)).await)
            })
        };
        for handle in handles {
            handle.await??;
        }
        let duplicate = duplicate.await??;
        assert!(
            matches!(duplicate, Err(ref e) if e.is_conflict()),
            "{duplicate:?}"
        );
        for i in 0..64 {
            let row = store.load_instance(&format!("i{i}")).await?;
            assert_eq!(row.map(|r| r.version), Some(1), "i{i}");
        }
        assert_eq!(committer.stats().steps(), 65);
        assert!(committer.stats().groups() <= 65);
        // A stale version conflicts; the next version commits.
        let stale = committer.commit(new_instance("i1", Some(5))).await;
        assert!(matches!(stale, Err(ref e) if e.is_conflict()), "{stale:?}");
        committer.commit(new_instance("i1", Some(1))).await?;
        store.verify_history("i1").await?;
        Ok(())
    }
}
