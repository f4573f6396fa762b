//! A group commit's writes, written once for both databases.
//!
//! [`commit_group`] writes the steps of one group in one transaction: the instance rows
//! (insert, or update with the version and chain-head check), then history, tasks (with
//! their inbox rows, one per candidate role), timers and outbox (in multi-row statements on
//! PostgreSQL, in kept single-row statements on SQLite), then the tasks' new holders, the
//! task closes (with the claim check; a closed task leaves the inbox) and the timer
//! cancels. A step that
//! loses a race is rejected alone; a key or reference violation undoes the attempt, and the
//! group is written again in a new transaction with one savepoint per step.
//!
//! The statements go through a [`WriteTx`]: PostgreSQL's is a sqlx transaction
//! ([`super::postgres`]); SQLite's runs on the C library directly, on a connection of the
//! store's own ([`super::raw_sqlite`]), because a round trip to sqlx's worker thread per
//! statement cost more than the fsync the step waits for (BENCHMARKS.md).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::future::Future;

use super::shared::{self, HeadCache, PreparedStep, StepPlan, ms};
use super::{ConflictReason, GENESIS_HASH, StepCommit, StoreError, Unchanged};
use crate::audit::AuditKey;

/// One bound value of a statement. Placeholders are written `$N` and take the N-th value.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Param<'a> {
    Text(&'a str),
    MaybeText(Option<&'a str>),
    Int(i64),
    MaybeInt(Option<i64>),
    /// Stored as JSON (`jsonb` on PostgreSQL, text on SQLite).
    Json(&'a serde_json::Value),
    /// JSON already rendered as text, stored as [`Param::Json`] is.
    RawJson(&'a serde_json::value::RawValue),
}

/// The statements a group commit needs from a database connection. `begin` … `commit` (or
/// `rollback`) bracket one transaction; the statements run inside it.
pub(crate) trait WriteTx: Send {
    /// Rows a multi-row statement carries at most. PostgreSQL wants many (each statement is
    /// a round trip); SQLite one: a statement is a function call there, the same single-row
    /// statement is prepared once and run again with new values, and a single-row write
    /// needs no statement journal (a multi-row one copies every page it touches first).
    const ROWS_PER_STATEMENT: usize;
    /// True when the database gives a state back as the very text written (SQLite), so its
    /// hash is of the text; PostgreSQL's `jsonb` normalises it (see
    /// [`crate::audit::state_hash`]).
    const EXACT_STATE_TEXT: bool;
    fn begin(&mut self) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn commit(&mut self) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Ends the transaction keeping nothing. Never fails the caller: a rollback that cannot
    /// run leaves nothing behind either.
    fn rollback(&mut self) -> impl Future<Output = ()> + Send;
    /// Runs a statement; the number of rows it changed.
    fn execute(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
    /// Runs a statement returning one text column (`RETURNING id`); the values.
    fn fetch_ids(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;
    /// The stored `(version, history_hash)` of an instance, if it exists.
    fn fetch_head(
        &mut self,
        instance_id: &str,
    ) -> impl Future<Output = Result<Option<(i64, String)>, StoreError>> + Send;
}

pub(crate) const HEAD_SQL: &str = "SELECT version, history_hash FROM instances WHERE id = $1";

const INSERT_INSTANCE_SQL: &str = "INSERT INTO instances (id, process_id, process_version, status, outcome, unit, state, version, created_at, updated_at, history_hash, head_mac) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (id) DO NOTHING";

/// The single-row instance update, by what the step leaves unchanged (see
/// [`StepCommit::unchanged`]): `[status changes][unit changes]`. The values are bound the same
/// way in all four; a column not set leaves its number unused.
const UPDATE_INSTANCE_SQL: [[&str; 2]; 2] = [
    [
        "UPDATE instances SET outcome = $2, state = $4, version = $5, updated_at = $6, history_hash = $7, head_mac = $11 \
         WHERE id = $8 AND version = $9 AND history_hash = $10",
        "UPDATE instances SET outcome = $2, unit = $3, state = $4, version = $5, updated_at = $6, history_hash = $7, head_mac = $11 \
         WHERE id = $8 AND version = $9 AND history_hash = $10",
    ],
    [
        "UPDATE instances SET status = $1, outcome = $2, state = $4, version = $5, updated_at = $6, history_hash = $7, head_mac = $11 \
         WHERE id = $8 AND version = $9 AND history_hash = $10",
        "UPDATE instances SET status = $1, outcome = $2, unit = $3, state = $4, version = $5, updated_at = $6, history_hash = $7, head_mac = $11 \
         WHERE id = $8 AND version = $9 AND history_hash = $10",
    ],
];

fn update_instance_sql(unchanged: Unchanged) -> &'static str {
    UPDATE_INSTANCE_SQL[usize::from(!unchanged.status)][usize::from(!unchanged.unit)]
}

/// Heads of chains this group moved, `(version, hash)` by instance id.
type GroupHeads = HashMap<String, (i64, String)>;

/// How [`commit_group`] writes a group's steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Attempt {
    /// All steps at once. A key or reference violation of one step undoes the attempt.
    Together,
    /// Each step under a savepoint of its own, so an offending step fails alone and the
    /// rest still share one durable commit.
    OneByOne,
}

/// Outcome per step of a group, in the order of its steps.
pub(crate) type Outcomes = Vec<Result<(), StoreError>>;

/// Writes a group with `write` (one transaction per call): [`Attempt::Together`], then once
/// more [`Attempt::OneByOne`] if a step violated a key (see [`commit_group`]).
pub(crate) async fn in_attempts<F, Fut>(mut write: F) -> Result<Outcomes, StoreError>
where
    F: FnMut(Attempt) -> Fut,
    Fut: Future<Output = Result<Option<Outcomes>, StoreError>>,
{
    let mut attempt = Attempt::Together;
    loop {
        if let Some(outcomes) = write(attempt).await? {
            return Ok(outcomes);
        }
        attempt = Attempt::OneByOne;
    }
}

/// Writes `steps` in one transaction: the outcome per step, in the order of `steps` — or
/// `None` when an [`Attempt::Together`] found a key or reference violation and undid
/// everything, and the group is to be written again [`Attempt::OneByOne`] (in a transaction
/// of its own; that attempt always gives outcomes).
pub(crate) async fn commit_group<T: WriteTx>(
    tx: &mut T,
    cache: &HeadCache,
    key: Option<&AuditKey>,
    steps: &[StepCommit],
    attempt: Attempt,
) -> Result<Option<Outcomes>, StoreError> {
    let mut outcomes: Vec<Option<Result<(), StoreError>>> = steps
        .iter()
        .map(|step| shared::check_step(step).err().map(Err))
        .collect();
    // Take instance rows in one order across all groups, so two groups on PostgreSQL
    // cannot deadlock; the sort is stable, so one instance's steps keep their order.
    let mut order: Vec<usize> = (0..steps.len())
        .filter(|&i| outcomes[i].is_none())
        .collect();
    order.sort_by(|&a, &b| steps[a].instance.id.cmp(&steps[b].instance.id));
    if !order.is_empty() {
        tx.begin().await?;
        let mut heads = GroupHeads::new();
        let written = match attempt {
            Attempt::Together => write_group_fast(tx, cache, key, steps, &order, &mut heads).await,
            Attempt::OneByOne => isolated_steps(tx, cache, key, steps, &order, &mut heads).await,
        };
        let written = match written {
            Ok(written) => written,
            Err(error) => {
                tx.rollback().await;
                // Nothing of the attempt is kept, and no head it moved is remembered.
                for instance_id in heads.keys() {
                    cache.forget(instance_id);
                }
                if attempt == Attempt::OneByOne || !shared::is_step_error(&error) {
                    return Err(error);
                }
                match order[..] {
                    [only] => vec![(only, Err(error))],
                    _ => return Ok(None),
                }
            }
        };
        if written.iter().any(|(_, outcome)| outcome.is_ok()) {
            tx.commit().await?;
            for (instance_id, (version, hash)) in heads {
                cache.put(instance_id, version, hash);
            }
        } else {
            tx.rollback().await;
        }
        for (index, outcome) in written {
            outcomes[index] = Some(outcome);
        }
    }
    Ok(Some(
        outcomes
            .into_iter()
            .map(|outcome| outcome.unwrap_or(Ok(())))
            .collect(),
    ))
}

type Written = Vec<(usize, Result<(), StoreError>)>;

/// All steps at once, multi-row statements. A key or reference violation of one step is
/// the error (the caller undoes the attempt); a lost race rejects that step alone.
async fn write_group_fast<T: WriteTx>(
    tx: &mut T,
    cache: &HeadCache,
    key: Option<&AuditKey>,
    steps: &[StepCommit],
    order: &[usize],
    heads: &mut GroupHeads,
) -> Result<Written, StoreError> {
    let mut outcomes = Vec::with_capacity(order.len());
    let mut prepared = Vec::with_capacity(order.len());
    for (index, plan) in write_instances(tx, cache, key, steps, order, heads).await? {
        match plan {
            StepPlan::Write(step) => prepared.push(step),
            StepPlan::Reject(error) => outcomes.push((index, Err(error))),
        }
    }
    insert_effects(tx, steps, &prepared).await?;
    outcomes.extend(prepared.iter().map(|step| (step.index, Ok(()))));
    Ok(outcomes)
}

async fn isolated_steps<T: WriteTx>(
    tx: &mut T,
    cache: &HeadCache,
    key: Option<&AuditKey>,
    steps: &[StepCommit],
    order: &[usize],
    heads: &mut GroupHeads,
) -> Result<Written, StoreError> {
    let mut outcomes = Vec::with_capacity(order.len());
    for &index in order {
        let instance_id = &steps[index].instance.id;
        let head_before = heads.get(instance_id).cloned();
        tx.execute("SAVEPOINT group_step", &[]).await?;
        let result = match apply_instance(tx, cache, key, steps, index, heads).await {
            Ok(StepPlan::Write(step)) => insert_effects(tx, steps, std::slice::from_ref(&step))
                .await
                .map(|()| Ok(())),
            Ok(StepPlan::Reject(error)) => Ok(Err(error)),
            Err(error) => Err(error),
        };
        let outcome = match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(rejected)) => Err(rejected),
            Err(error) if shared::is_step_error(&error) => Err(error),
            Err(error) => return Err(error),
        };
        if outcome.is_err() {
            tx.execute("ROLLBACK TO SAVEPOINT group_step", &[]).await?;
            match head_before {
                Some(head) => heads.insert(instance_id.clone(), head),
                None => heads.remove(instance_id),
            };
            cache.forget(instance_id);
        }
        tx.execute("RELEASE SAVEPOINT group_step", &[]).await?;
        outcomes.push((index, outcome));
    }
    Ok(outcomes)
}

fn conflict(reason: ConflictReason) -> StoreError {
    StoreError::Conflict {
        reason,
        source: None,
    }
}

/// Writes the instance row (insert, or update with the version check) and works out the
/// step's history link. A lost race is a `Reject`, not an error.
async fn apply_instance<T: WriteTx>(
    tx: &mut T,
    cache: &HeadCache,
    key: Option<&AuditKey>,
    steps: &[StepCommit],
    index: usize,
    heads: &mut GroupHeads,
) -> Result<StepPlan, StoreError> {
    let step = &steps[index];
    let instance = &step.instance;
    let link = match chain_link(tx, cache, key, steps, index, heads).await? {
        StepPlan::Write(link) => link,
        rejected => return Ok(rejected),
    };
    let written = match step.expected_version {
        None => {
            tx.execute(
                INSERT_INSTANCE_SQL,
                &[
                    Param::Text(&instance.id),
                    Param::Text(&instance.process_id),
                    Param::Int(instance.process_version),
                    Param::Text(&instance.status),
                    Param::MaybeText(instance.outcome.as_deref()),
                    Param::Text(&instance.unit),
                    Param::RawJson(instance.state.raw()),
                    Param::Int(instance.version),
                    Param::Int(ms(instance.created_at)),
                    Param::Int(ms(instance.updated_at)),
                    Param::Text(&link.hash),
                    Param::MaybeText(link.head_mac.as_deref()),
                ],
            )
            .await?
        }
        Some(expected) => {
            tx.execute(
                update_instance_sql(step.unchanged),
                &[
                    Param::Text(&instance.status),
                    Param::MaybeText(instance.outcome.as_deref()),
                    Param::Text(&instance.unit),
                    Param::RawJson(instance.state.raw()),
                    Param::Int(instance.version),
                    Param::Int(ms(instance.updated_at)),
                    Param::Text(&link.hash),
                    Param::Text(&instance.id),
                    Param::Int(expected),
                    Param::Text(&link.prev_hash),
                    Param::MaybeText(link.head_mac.as_deref()),
                ],
            )
            .await?
        }
    };
    if written != 1 {
        cache.forget(&instance.id);
        let reason = match step.expected_version {
            None => ConflictReason::Duplicate,
            Some(_) => ConflictReason::VersionMismatch,
        };
        return Ok(StepPlan::Reject(conflict(reason)));
    }
    heads.insert(instance.id.clone(), (instance.version, link.hash.clone()));
    Ok(StepPlan::Write(link))
}

/// Works out a step's link in its instance's history chain: the previous hash (from this
/// group, the head cache, or one read of the row) and its own. Writes nothing.
async fn chain_link<T: WriteTx>(
    tx: &mut T,
    cache: &HeadCache,
    key: Option<&AuditKey>,
    steps: &[StepCommit],
    index: usize,
    heads: &GroupHeads,
) -> Result<StepPlan, StoreError> {
    let step = &steps[index];
    let instance = &step.instance;
    let prev_hash = match step.expected_version {
        None => GENESIS_HASH.to_owned(),
        Some(expected) => {
            let known = match heads.get(&instance.id) {
                Some((version, hash)) if *version == expected => Some(hash.clone()),
                Some(_) => return Ok(StepPlan::Reject(conflict(ConflictReason::VersionMismatch))),
                None => cache.get(&instance.id, expected),
            };
            match known {
                Some(hash) => hash,
                None => match tx.fetch_head(&instance.id).await? {
                    None => {
                        return Ok(StepPlan::Reject(StoreError::NotFound {
                            what: "instance",
                            id: instance.id.clone(),
                        }));
                    }
                    Some((version, _)) if version != expected => {
                        return Ok(StepPlan::Reject(conflict(ConflictReason::VersionMismatch)));
                    }
                    Some((_, hash)) => hash,
                },
            }
        }
    };
    Ok(StepPlan::Write(shared::prepare_link(
        key,
        T::EXACT_STATE_TEXT,
        step,
        index,
        prev_hash,
    )?))
}

/// The group's instance rows in a few statements. Each round takes the next step of every
/// instance (a single round unless an instance has several steps in the group): its new
/// instances are inserted one by one, the others updated by one multi-row UPDATE that
/// checks version and head hash per row, as the single-row UPDATE does. The ids it returns
/// are the steps that won; the others lost a race and are rejected, and so are later steps
/// of their instance.
async fn write_instances<T: WriteTx>(
    tx: &mut T,
    cache: &HeadCache,
    key: Option<&AuditKey>,
    steps: &[StepCommit],
    order: &[usize],
    heads: &mut GroupHeads,
) -> Result<Vec<(usize, StepPlan)>, StoreError> {
    let mut planned = Vec::with_capacity(order.len());
    let mut pending: Vec<usize> = order.to_vec();
    while !pending.is_empty() {
        let mut seen = HashSet::new();
        let (round, rest): (Vec<usize>, Vec<usize>) = pending
            .iter()
            .copied()
            .partition(|&index| seen.insert(steps[index].instance.id.as_str()));
        let mut updates = Vec::with_capacity(round.len());
        for index in round {
            if steps[index].expected_version.is_none() {
                let plan = apply_instance(tx, cache, key, steps, index, heads).await?;
                planned.push((index, plan));
                continue;
            }
            match chain_link(tx, cache, key, steps, index, heads).await? {
                StepPlan::Write(link) => updates.push(link),
                rejected => planned.push((index, rejected)),
            }
        }
        let mut updates = updates.into_iter().peekable();
        while updates.peek().is_some() {
            let chunk: Vec<PreparedStep> = updates.by_ref().take(T::ROWS_PER_STATEMENT).collect();
            let won = update_instances(tx, steps, &chunk).await?;
            for link in chunk {
                let instance = &steps[link.index].instance;
                if won.contains(&instance.id) {
                    heads.insert(instance.id.clone(), (instance.version, link.hash.clone()));
                    planned.push((link.index, StepPlan::Write(link)));
                } else {
                    cache.forget(&instance.id);
                    let lost = conflict(ConflictReason::VersionMismatch);
                    planned.push((link.index, StepPlan::Reject(lost)));
                }
            }
        }
        pending = rest;
    }
    Ok(planned)
}

/// The rows of one kind (tasks opened, timers set, outbox entries) of all prepared steps.
fn effects<'a, R>(
    steps: &'a [StepCommit],
    prepared: &[PreparedStep],
    rows: impl Fn(&'a StepCommit) -> &'a Vec<R>,
) -> Vec<&'a R> {
    prepared
        .iter()
        .flat_map(|link| rows(&steps[link.index]))
        .collect()
}

/// Inserts `rows` into `head` (`table (columns)`), a multi-row statement per chunk.
async fn insert_rows<'a, T: WriteTx, R: Sync, const COLUMNS: usize>(
    tx: &mut T,
    head: &str,
    rows: &'a [R],
    values: impl Fn(&'a R) -> [Param<'a>; COLUMNS] + Send + Sync,
) -> Result<(), StoreError> {
    // Every chunk but the last has the same length, so the statement is written once for
    // them (on SQLite, once for all the group's rows of the table).
    let mut sql = (0, String::new());
    for chunk in rows.chunks(T::ROWS_PER_STATEMENT) {
        if sql.0 != chunk.len() {
            sql = (
                chunk.len(),
                shared::multi_row_insert(head, COLUMNS, chunk.len()),
            );
        }
        let params: Vec<Param<'a>> = chunk.iter().flat_map(&values).collect();
        tx.execute(&sql.1, &params).await?;
    }
    Ok(())
}

/// Updates the instance rows of `chunk` (each at its expected version and head hash); the
/// ids of the rows that matched. One row takes the plain single-row UPDATE: SQLite plans
/// and runs it in a fraction of the multi-row form's time.
async fn update_instances<T: WriteTx>(
    tx: &mut T,
    steps: &[StepCommit],
    chunk: &[PreparedStep],
) -> Result<HashSet<String>, StoreError> {
    let mut params = Vec::with_capacity(chunk.len() * 11);
    for link in chunk {
        let step = &steps[link.index];
        let instance = &step.instance;
        params.extend([
            Param::Text(&instance.status),
            Param::MaybeText(instance.outcome.as_deref()),
            Param::Text(&instance.unit),
            Param::RawJson(instance.state.raw()),
            Param::Int(instance.version),
            Param::Int(ms(instance.updated_at)),
            Param::Text(&link.hash),
            Param::Text(&instance.id),
            Param::MaybeInt(step.expected_version),
            Param::Text(&link.prev_hash),
            Param::MaybeText(link.head_mac.as_deref()),
        ]);
    }
    if let [only] = chunk {
        let sql = update_instance_sql(steps[only.index].unchanged);
        let changed = tx.execute(sql, &params).await?;
        let id = &steps[only.index].instance.id;
        return Ok((changed == 1).then(|| id.clone()).into_iter().collect());
    }
    let mut sql = String::from(
        "UPDATE instances SET status = v.column1, outcome = v.column2, unit = v.column3, state = v.column4, \
         version = v.column5, updated_at = v.column6, history_hash = v.column7, head_mac = v.column11 \
         FROM (VALUES ",
    );
    shared::push_value_rows(&mut sql, 1, 11, chunk.len());
    sql.push_str(
        ") AS v WHERE instances.id = v.column8 AND instances.version = v.column9 \
         AND instances.history_hash = v.column10 RETURNING instances.id",
    );
    Ok(tx.fetch_ids(&sql, &params).await?.into_iter().collect())
}

/// Closes one task (see the multi-row close in [`insert_effects`]).
const CLOSE_TASK_SQL: &str = "UPDATE tasks SET closed_at = $2 WHERE id = $1 AND instance_id = $3 AND closed_at IS NULL \
     AND ($4 IS NULL OR assignee IS NULL OR assignee = $4) RETURNING id";

/// Removes a closed task from every queue (see [`insert_effects`]).
const CLOSE_INBOX_SQL: &str = "DELETE FROM task_roles WHERE task_id = $1";

/// Sets an open task's holder (claimed_at is when it was last handed to someone).
const ASSIGN_TASK_SQL: &str = "UPDATE tasks SET assignee = $2, claimed_at = CASE WHEN $2 IS NULL THEN NULL ELSE $3 END \
     WHERE id = $1 AND instance_id = $4 AND closed_at IS NULL";

/// Mirrors a task's holder in its inbox rows.
const ASSIGN_INBOX_SQL: &str = "UPDATE task_roles SET assignee = $2 WHERE task_id = $1";

/// Cancels one timer (see the multi-row cancel in [`insert_effects`]).
const RESCHEDULE_TASK_SQL: &str = "UPDATE tasks SET due_at = $2, provisional = $3 \
     WHERE id = $1 AND instance_id = $4 AND closed_at IS NULL";
const RESCHEDULE_INBOX_SQL: &str = "UPDATE task_roles SET due_at = $2 WHERE task_id = $1";
const CANCEL_TIMER_SQL: &str = "DELETE FROM timers WHERE id = $1 AND instance_id = $2";

/// History, tasks, timers and outbox of the prepared steps, a few multi-row statements for
/// the whole group. Inserts run before closes and cancels so a task or timer opened and
/// closed within one group ends up closed.
async fn insert_effects<T: WriteTx>(
    tx: &mut T,
    steps: &[StepCommit],
    prepared: &[PreparedStep],
) -> Result<(), StoreError> {
    super::keys::write_keys(tx, steps, prepared).await?;
    super::assessment_inputs::write_inputs(tx, steps, prepared).await?;
    insert_rows(
        tx,
        "history (instance_id, seq, at, actor, event, node, data, prev_hash, hash, scheme, state_hash)",
        prepared,
        |link| {
            let step = &steps[link.index];
            [
                Param::Text(&step.instance.id),
                Param::Int(link.seq),
                Param::Int(ms(step.history.at)),
                Param::MaybeText(step.history.actor.as_deref()),
                Param::Text(&step.history.event),
                Param::MaybeText(step.history.node.as_deref()),
                Param::Text(&link.data_json),
                Param::Text(&link.prev_hash),
                Param::Text(&link.hash),
                Param::Int(link.scheme),
                Param::MaybeText(link.state_hash.as_deref()),
            ]
        },
    )
    .await?;
    // A task's roles are stored as JSON; rendered here so the rows can borrow them.
    let opened: Vec<(&super::TaskRow, serde_json::Value)> =
        effects(steps, prepared, |step| &step.tasks_opened)
            .into_iter()
            .map(|task| {
                (
                    task,
                    serde_json::Value::from(task.candidate_roles().to_vec()),
                )
            })
            .collect();
    insert_rows(
        tx,
        "tasks (id, instance_id, node_id, label, role, unit, assignee, due_at, created_at, form, roles, provisional)",
        &opened,
        |(task, roles)| {
            [
                Param::Text(&task.id),
                Param::Text(&task.instance_id),
                Param::Text(&task.node_id),
                Param::Text(&task.label),
                Param::Text(&task.role),
                Param::Text(&task.unit),
                Param::MaybeText(task.assignee.as_deref()),
                Param::MaybeInt(task.due_at.map(ms)),
                Param::Int(ms(task.created_at)),
                Param::Json(&task.form),
                Param::Json(roles),
                Param::Int(i64::from(task.provisional)),
            ]
        },
    )
    .await?;
    // The inbox: a row per candidate role of each opened task.
    let candidates: Vec<(&super::TaskRow, &str)> = opened
        .iter()
        .flat_map(|(task, _)| {
            task.candidate_roles()
                .iter()
                .map(move |role| (*task, role.as_str()))
        })
        .collect();
    insert_rows(
        tx,
        "task_roles (task_id, role, unit, due_at, created_at, assignee)",
        &candidates,
        |(task, role)| {
            [
                Param::Text(&task.id),
                Param::Text(role),
                Param::Text(&task.unit),
                Param::MaybeInt(task.due_at.map(ms)),
                Param::Int(ms(task.created_at)),
                Param::MaybeText(task.assignee.as_deref()),
            ]
        },
    )
    .await?;
    insert_rows(
        tx,
        "timers (id, instance_id, due_at, payload, available_at, provisional)",
        &effects(steps, prepared, |step| &step.timers_set),
        |timer| {
            [
                Param::Text(&timer.id),
                Param::Text(&timer.instance_id),
                Param::Int(ms(timer.due_at)),
                Param::Json(&timer.payload),
                Param::Int(ms(timer.due_at)),
                Param::Int(i64::from(timer.provisional)),
            ]
        },
    )
    .await?;
    insert_rows(
        tx,
        "outbox (id, instance_id, kind, payload, created_at, available_at)",
        &effects(steps, prepared, |step| &step.outbox),
        |entry| {
            [
                Param::Text(&entry.id),
                Param::Text(&entry.instance_id),
                Param::Text(&entry.kind),
                Param::Json(&entry.payload),
                Param::Int(ms(entry.created_at)),
                Param::Int(ms(entry.created_at)),
            ]
        },
    )
    .await?;

    // Holders the steps changed: the task row and its inbox rows mirror the core's claim.
    // Scoped to the step's own instance and to open tasks, as closing is. Few per group
    // (a claim is a step of its own), so one statement pair per assignment.
    for link in prepared {
        let step = &steps[link.index];
        for assigned in &step.tasks_assigned {
            let holder = assigned.assignee.as_deref();
            let at = ms(step.history.at);
            let changed = tx
                .execute(
                    ASSIGN_TASK_SQL,
                    &[
                        Param::Text(&assigned.task_id),
                        Param::MaybeText(holder),
                        Param::Int(at),
                        Param::Text(&step.instance.id),
                    ],
                )
                .await?;
            if changed != 1 {
                return Err(conflict(ConflictReason::TaskClosed));
            }
            tx.execute(
                ASSIGN_INBOX_SQL,
                &[Param::Text(&assigned.task_id), Param::MaybeText(holder)],
            )
            .await?;
        }
    }

    // Due dates counted again (a calendar covering their year arrived): the task row and
    // its inbox rows, scoped to the step's own instance and to open tasks.
    for link in prepared {
        let step = &steps[link.index];
        for moved in &step.tasks_rescheduled {
            let due = moved.due_at.map(ms);
            let changed = tx
                .execute(
                    RESCHEDULE_TASK_SQL,
                    &[
                        Param::Text(&moved.task_id),
                        Param::MaybeInt(due),
                        Param::Int(i64::from(moved.provisional)),
                        Param::Text(&step.instance.id),
                    ],
                )
                .await?;
            if changed != 1 {
                return Err(conflict(ConflictReason::TaskClosed));
            }
            tx.execute(
                RESCHEDULE_INBOX_SQL,
                &[Param::Text(&moved.task_id), Param::MaybeInt(due)],
            )
            .await?;
        }
    }

    // Closing is scoped to the step's own instance: a step cannot close another case's
    // task. closed_at is the step's history time. A completed task closes only if no other
    // user holds its claim (column4 is the completing user, NULL for the tasks a step
    // closes for other reasons); which ones closed comes back, so a refused completion
    // fails its step.
    let closes: Vec<(&str, i64, &str, Option<&str>)> = prepared
        .iter()
        .flat_map(|link| {
            let step = &steps[link.index];
            step.tasks_closed.iter().map(move |task_id| {
                let claimant = step
                    .completes
                    .as_ref()
                    .filter(|c| &c.task_id == task_id)
                    .map(|c| c.user.as_str());
                (
                    task_id.as_str(),
                    ms(step.history.at),
                    step.instance.id.as_str(),
                    claimant,
                )
            })
        })
        .collect();
    let mut closed = HashSet::new();
    for chunk in closes.chunks(T::ROWS_PER_STATEMENT) {
        // A single row (every row on SQLite) takes the fixed statement, with no text built.
        let sql: Cow<'static, str> = if chunk.len() == 1 {
            Cow::Borrowed(CLOSE_TASK_SQL)
        } else {
            let mut sql =
                String::from("UPDATE tasks SET closed_at = closing.column2 FROM (VALUES ");
            shared::push_value_rows(&mut sql, 1, 4, chunk.len());
            sql.push_str(
                ") AS closing WHERE tasks.id = closing.column1 AND tasks.instance_id = closing.column3 AND tasks.closed_at IS NULL \
                 AND (closing.column4 IS NULL OR tasks.assignee IS NULL OR tasks.assignee = closing.column4) RETURNING tasks.id",
            );
            Cow::Owned(sql)
        };
        let mut params = Vec::with_capacity(chunk.len() * 4);
        for (task_id, at, instance_id, claimant) in chunk {
            params.extend([
                Param::Text(task_id),
                Param::Int(*at),
                Param::Text(instance_id),
                Param::MaybeText(*claimant),
            ]);
        }
        closed.extend(tx.fetch_ids(&sql, &params).await?);
    }
    // Closed tasks leave every queue.
    let closed_ids: Vec<&String> = closed.iter().collect();
    for chunk in closed_ids.chunks(T::ROWS_PER_STATEMENT) {
        let sql: Cow<'static, str> = if chunk.len() == 1 {
            Cow::Borrowed(CLOSE_INBOX_SQL)
        } else {
            let mut sql = String::from("DELETE FROM task_roles WHERE task_id IN (");
            shared::push_placeholders(&mut sql, 1, chunk.len());
            sql.push(')');
            Cow::Owned(sql)
        };
        let params: Vec<Param<'_>> = chunk.iter().map(|id| Param::Text(id)).collect();
        tx.execute(&sql, &params).await?;
    }
    let refused = prepared.iter().any(|link| {
        steps[link.index]
            .completes
            .as_ref()
            .is_some_and(|c| !closed.contains(&c.task_id))
    });
    if refused {
        return Err(conflict(ConflictReason::ClaimedByOther));
    }

    let cancels: Vec<(&str, &str)> = prepared
        .iter()
        .flat_map(|link| {
            let step = &steps[link.index];
            step.timers_cancelled
                .iter()
                .map(move |timer_id| (timer_id.as_str(), step.instance.id.as_str()))
        })
        .collect();
    for chunk in cancels.chunks(T::ROWS_PER_STATEMENT) {
        let sql: Cow<'static, str> = if chunk.len() == 1 {
            Cow::Borrowed(CANCEL_TIMER_SQL)
        } else {
            let mut sql = String::from("DELETE FROM timers WHERE (id, instance_id) IN (VALUES ");
            shared::push_value_rows(&mut sql, 1, 2, chunk.len());
            sql.push(')');
            Cow::Owned(sql)
        };
        let mut params = Vec::with_capacity(chunk.len() * 2);
        for (timer_id, instance_id) in chunk {
            params.extend([Param::Text(timer_id), Param::Text(instance_id)]);
        }
        tx.execute(&sql, &params).await?;
    }
    Ok(())
}
