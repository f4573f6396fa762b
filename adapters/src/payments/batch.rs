//! Batch runs over the recipients of active benefits (`docs/batches.md`).
//!
//! A case's batch node emits a `batch` request; the ledger, which owns the benefits,
//! carries it out: it lists the recipients once (the benefits in force in the month of
//! `as_of`, of the programs asked for, in the unit), one row per (run key, recipient)
//! under a primary key, then works the list off in chunks — each recipient's effects made
//! by the engine's pure [`expand`] and applied to the ledger under ids derived from the
//! run key and the recipient, then the row marked done. A run killed midway resumes
//! where it stopped when the outbox delivers the request again; a recipient whose
//! payment went in but whose row was not yet marked meets its own effect id, which the
//! ledger applies once. When the list is done the case gets `batch_done` with the count
//! and total. A second request under a run key another case ran pays nobody and reports
//! `duplicate` with that case's id.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use jiuzhu_engine::core::Actor;
use jiuzhu_engine::core::batch::{expand, fields};
use jiuzhu_engine::effects::{Outward, TypedEffect, TypedError, parse_outbox};
use jiuzhu_engine::lang::model::{BATCH_DONE, BATCH_SENDER_ROLE, EffectKind};
use jiuzhu_engine::runtime::{Engine, EngineError};
use jiuzhu_engine::store::{DbPool, OutboxRow};
use jiuzhu_rules::Value;
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::Value as Json;

use super::PaymentError;
use super::db::{ENTRY_COLUMNS, parse_amount};
use super::ledger::Ledger;
use super::model::{BenefitEntry, YearMonth, due_in_month};

/// Recipients worked off per chunk: each chunk's rows are marked done before the next is read.
const CHUNK: i64 = 100;

/// A `batch` request, read.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchRequest {
    pub run_key: String,
    pub node: String,
    pub programs: Vec<String>,
    /// Recipients in this unit or below; empty for every unit.
    pub unit: String,
    pub as_of: NaiveDate,
    /// One recipient per household (case) rather than per benefit.
    pub per_household: bool,
    /// The node's `once_per`: a recipient some run listed under this key is skipped.
    pub once_per: Option<String>,
}

impl BatchRequest {
    /// Reads a request; `today` stands in for a missing `as_of`.
    pub fn parse(effect: &Json, today: NaiveDate) -> Result<BatchRequest, PaymentError> {
        let mut effect = effect.clone();
        if let Json::Object(map) = &mut effect {
            map.insert(
                "type".into(),
                Json::String(EffectKind::Batch.as_str().into()),
            );
        }
        let run_key = effect
            .get(fields::RUN_KEY)
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_string();
        match Outward::from_json(&effect, None) {
            Ok(outward) => BatchRequest::from_typed(&outward, today),
            Err(error) => Err(PaymentError::Batch {
                run_key,
                problem: typed_problem(&error),
            }),
        }
    }

    /// Reads an outbox row through the engine's one parse of effects.
    pub fn from_outbox(row: &OutboxRow, today: NaiveDate) -> Result<BatchRequest, PaymentError> {
        match parse_outbox(row) {
            Ok(outward) => BatchRequest::from_typed(&outward, today),
            Err(error) => Err(PaymentError::Batch {
                run_key: String::new(),
                problem: typed_problem(&error),
            }),
        }
    }

    /// The request of a typed `batch` effect, its query (`over`) checked.
    pub fn from_typed(outward: &Outward, today: NaiveDate) -> Result<BatchRequest, PaymentError> {
        let TypedEffect::Batch(batch) = &outward.effect else {
            return Err(PaymentError::Batch {
                run_key: String::new(),
                problem: format!(
                    "a `{}` effect is not a batch request",
                    outward.kind().as_str()
                ),
            });
        };
        let run_key = batch.run_key.clone();
        let bad = |problem: &str| PaymentError::Batch {
            run_key: run_key.clone(),
            problem: problem.to_string(),
        };
        let over = &batch.over;
        let programs: Vec<String> = match over.get("benefits") {
            Some(Value::List(items)) => items
                .iter()
                .map(|p| match p {
                    Value::Str(s) => Some(s.clone()),
                    _ => None,
                })
                .collect::<Option<_>>()
                .ok_or_else(|| bad("`over.benefits` must be a list of program ids"))?,
            _ => return Err(bad("`over.benefits` must be a list of program ids")),
        };
        let unit = match over.get("unit") {
            None | Some(Value::Null) => String::new(),
            Some(Value::Str(unit)) => unit.clone(),
            Some(_) => return Err(bad("`over.unit` must be a unit path")),
        };
        let as_of = match over.get("as_of") {
            None | Some(Value::Null) => today,
            Some(Value::Date(date)) => *date,
            Some(Value::Str(text)) => text
                .get(..10)
                .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
                .ok_or_else(|| bad("`over.as_of` must be a date YYYY-MM-DD"))?,
            Some(_) => return Err(bad("`over.as_of` must be a date YYYY-MM-DD")),
        };
        let per_household = match over.get("per") {
            None | Some(Value::Null) => true,
            Some(Value::Str(per)) if per == "household" => true,
            Some(Value::Str(per)) if per == "benefit" => false,
            Some(_) => return Err(bad("`over.per` must be `household` or `benefit`")),
        };
        Ok(BatchRequest {
            run_key,
            node: batch.node.clone(),
            programs,
            unit,
            as_of,
            per_household,
            once_per: batch.once_per.clone(),
        })
    }
}

/// What the engine's reading of a batch request found wrong, naming the field.
fn typed_problem(error: &TypedError) -> String {
    match error {
        TypedError::Missing { field, .. } | TypedError::Malformed { field, .. }
            if *field == fields::RUN_KEY =>
        {
            "`run_key` must be a non-empty string".to_string()
        }
        TypedError::Missing { field, .. } | TypedError::Malformed { field, .. }
            if *field == fields::NODE =>
        {
            "`node` must name the batch node".to_string()
        }
        TypedError::Malformed { field, .. } if *field == fields::OVER => {
            "`over` must be an object".to_string()
        }
        other => other.to_string(),
    }
}

/// Whether `unit` is `within` or below it (whole path segments).
fn unit_within(unit: &str, within: &str) -> bool {
    within.is_empty()
        || unit == within
        || unit
            .strip_prefix(within)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// One recipient as listed when the run starts.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    pub recipient: String,
    pub case_id: String,
    pub program: String,
    pub unit: String,
    pub benefit_id: String,
}

/// How a run's start went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RunStart {
    /// Listed now, or by an earlier delivery of the same request: work the list off.
    Running,
    /// Already finished by this request (the report may not have reached the case).
    Finished,
    /// The key belongs to another case's run.
    Duplicate { first_case: String },
}

/// A run's progress, for `jiuzhu payments batches` and the API.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BatchProgress {
    pub run_key: String,
    pub case_id: String,
    /// The outbox entry of the request (its delivery may have been given up).
    pub effect_id: String,
    pub status: String,
    pub as_of: String,
    pub recipients: i64,
    pub done: i64,
    pub paid: i64,
    pub total: Decimal,
}

/// What a delivery of a request did.
#[derive(Debug, Clone, PartialEq)]
pub enum BatchOutcome {
    /// Worked off (now or before); the case was told (or had been).
    Done { count: i64, total: Decimal },
    /// Refused as a second run under a key another case ran; the case was told.
    Duplicate { first_case: String },
}

/// Which benefits, in force in `month`, become recipients: of the programs, in the
/// unit, one per case when `per_household` (its first program in id order).
fn select_items(
    benefits: Vec<(String, String, String, String, Vec<BenefitEntry>)>,
    request: &BatchRequest,
) -> Vec<Item> {
    let month = YearMonth::of(request.as_of);
    let mut items: Vec<Item> = benefits
        .into_iter()
        .filter(|(_, _, program, unit, entries)| {
            request.programs.contains(program)
                && unit_within(unit, &request.unit)
                && due_in_month(entries, month).is_some()
        })
        .map(|(id, case_id, program, unit, _)| Item {
            recipient: if request.per_household {
                case_id.clone()
            } else {
                id.clone()
            },
            case_id,
            program,
            unit,
            benefit_id: id,
        })
        .collect();
    items.sort_by(|a, b| {
        a.recipient
            .cmp(&b.recipient)
            .then(a.program.cmp(&b.program))
    });
    items.dedup_by(|later, first| later.recipient == first.recipient);
    items
}

macro_rules! batch_ops {
    ($module:ident, $db:ty, $begin:literal, $entries:path) => {
        pub(crate) mod $module {
            use super::*;
            use sqlx::Row as _;

            type Db = $db;
            type Pool = sqlx::Pool<Db>;

            /// Starts the run of `request` for `case` (listing its recipients), or finds it.
            pub(crate) async fn begin(
                pool: &Pool,
                request: &BatchRequest,
                case: &str,
                effect_id: &str,
                at: i64,
            ) -> Result<RunStart, PaymentError> {
                let mut tx = pool.begin_with($begin).await?;
                let existing = sqlx::query(
                    "SELECT case_id, effect_id, status FROM batch_runs WHERE run_key = $1",
                )
                .bind(&request.run_key)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some(row) = existing {
                    let first_case: String = row.try_get(0)?;
                    let first_effect: String = row.try_get(1)?;
                    let status: String = row.try_get(2)?;
                    tx.commit().await?;
                    return Ok(if first_effect != effect_id {
                        RunStart::Duplicate { first_case }
                    } else if status == "done" {
                        RunStart::Finished
                    } else {
                        RunStart::Running
                    });
                }
                let month = YearMonth::of(request.as_of).to_string();
                let rows = sqlx::query(&format!(
                    "SELECT b.id, b.case_id, b.program, b.unit, {ENTRY_COLUMNS} \
                     FROM benefits b JOIN benefit_entries e ON e.benefit_id = b.id \
                     WHERE e.effective_month <= $1 ORDER BY b.id, e.seq"
                ))
                .bind(&month)
                .fetch_all(&mut *tx)
                .await?;
                let mut benefits: Vec<(String, String, String, String, Vec<BenefitEntry>)> =
                    Vec::new();
                for row in &rows {
                    let id: String = row.try_get(0)?;
                    let entry = $entries(row, 4)?;
                    match benefits.last_mut() {
                        Some(last) if last.0 == id => last.4.push(entry),
                        _ => benefits.push((
                            id,
                            row.try_get(1)?,
                            row.try_get(2)?,
                            row.try_get(3)?,
                            vec![entry],
                        )),
                    }
                }
                let mut items = select_items(benefits, request);
                sqlx::query(
                    "INSERT INTO batch_runs (run_key, case_id, effect_id, node, as_of, status, \
                     recipients, created_at) VALUES ($1, $2, $3, $4, $5, 'running', $6, $7)",
                )
                .bind(&request.run_key)
                .bind(case)
                .bind(effect_id)
                .bind(&request.node)
                .bind(request.as_of.format("%Y-%m-%d").to_string())
                .bind(i64::try_from(items.len()).unwrap_or(i64::MAX))
                .bind(at)
                .execute(&mut *tx)
                .await?;
                if let Some(once) = &request.once_per {
                    let mut kept = Vec::with_capacity(items.len());
                    for item in items {
                        // Once per household (case), whatever `per`: claimed by this run,
                        // or already by another run under the key and skipped.
                        // (PostgreSQL: a run listing at the same time waits on the row.)
                        let claimed = sqlx::query(
                            "INSERT INTO batch_once (once_key, recipient, run_key) \
                             VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                        )
                        .bind(once)
                        .bind(&item.case_id)
                        .bind(&request.run_key)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                        if claimed == 1 {
                            kept.push(item);
                        }
                    }
                    items = kept;
                    sqlx::query("UPDATE batch_runs SET recipients = $1 WHERE run_key = $2")
                        .bind(i64::try_from(items.len()).unwrap_or(i64::MAX))
                        .bind(&request.run_key)
                        .execute(&mut *tx)
                        .await?;
                }
                for item in &items {
                    sqlx::query(
                        "INSERT INTO batch_items (run_key, recipient, case_id, program, unit, \
                         benefit_id, status) VALUES ($1, $2, $3, $4, $5, $6, 'pending') \
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(&request.run_key)
                    .bind(&item.recipient)
                    .bind(&item.case_id)
                    .bind(&item.program)
                    .bind(&item.unit)
                    .bind(&item.benefit_id)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(RunStart::Running)
            }

            /// The next recipients not yet done, in recipient order.
            pub(crate) async fn pending(
                pool: &Pool,
                run_key: &str,
            ) -> Result<Vec<Item>, PaymentError> {
                let rows = sqlx::query(
                    "SELECT recipient, case_id, program, unit, benefit_id FROM batch_items \
                     WHERE run_key = $1 AND status = 'pending' ORDER BY recipient LIMIT $2",
                )
                .bind(run_key)
                .bind(CHUNK)
                .fetch_all(pool)
                .await?;
                rows.iter()
                    .map(|row| {
                        Ok(Item {
                            recipient: row.try_get(0)?,
                            case_id: row.try_get(1)?,
                            program: row.try_get(2)?,
                            unit: row.try_get(3)?,
                            benefit_id: row.try_get(4)?,
                        })
                    })
                    .collect()
            }

            /// Marks a recipient done with what it was paid (`None`: nothing was due).
            pub(crate) async fn mark_done(
                pool: &Pool,
                run_key: &str,
                recipient: &str,
                amount: Option<Decimal>,
                at: i64,
            ) -> Result<(), PaymentError> {
                sqlx::query(
                    "UPDATE batch_items SET status = 'done', amount = $1, done_at = $2 \
                     WHERE run_key = $3 AND recipient = $4",
                )
                .bind(amount.map(|a| a.to_string()))
                .bind(at)
                .bind(run_key)
                .bind(recipient)
                .execute(pool)
                .await?;
                Ok(())
            }

            /// Marks the run finished.
            pub(crate) async fn finish(
                pool: &Pool,
                run_key: &str,
                at: i64,
            ) -> Result<(), PaymentError> {
                sqlx::query(
                    "UPDATE batch_runs SET status = 'done', finished_at = $1 \
                     WHERE run_key = $2 AND status <> 'done'",
                )
                .bind(at)
                .bind(run_key)
                .execute(pool)
                .await?;
                Ok(())
            }

            /// Every run (or the one under `run_key`) with its counts, newest first.
            pub(crate) async fn progress(
                pool: &Pool,
                run_key: Option<&str>,
            ) -> Result<Vec<BatchProgress>, PaymentError> {
                let runs = sqlx::query(
                    "SELECT run_key, case_id, status, as_of, recipients, effect_id FROM batch_runs \
                     WHERE $1 IS NULL OR run_key = $1 ORDER BY created_at DESC, run_key",
                )
                .bind(run_key)
                .fetch_all(pool)
                .await?;
                let mut out = Vec::new();
                for run in &runs {
                    let key: String = run.try_get(0)?;
                    let items = sqlx::query(
                        "SELECT status, amount FROM batch_items WHERE run_key = $1",
                    )
                    .bind(&key)
                    .fetch_all(pool)
                    .await?;
                    let (mut done, mut paid, mut total) = (0, 0, Decimal::ZERO);
                    for item in &items {
                        let status: String = item.try_get(0)?;
                        let amount: Option<String> = item.try_get(1)?;
                        if status == "done" {
                            done += 1;
                        }
                        if let Some(amount) = amount {
                            paid += 1;
                            total += parse_amount(&amount)?;
                        }
                    }
                    out.push(BatchProgress {
                        run_key: key,
                        case_id: run.try_get(1)?,
                        status: run.try_get(2)?,
                        as_of: run.try_get(3)?,
                        recipients: run.try_get(4)?,
                        effect_id: run.try_get(5)?,
                        done,
                        paid,
                        total,
                    });
                }
                Ok(out)
            }
        }
    };
}

batch_ops!(
    sqlite_batch,
    sqlx::Sqlite,
    "BEGIN IMMEDIATE",
    super::super::db::sqlite_ops::entry_row
);
batch_ops!(
    postgres_batch,
    sqlx::Postgres,
    "BEGIN",
    super::super::db::postgres_ops::entry_row
);

/// Runs one operation of the module above on whichever database the ledger is on.
macro_rules! on_batch_db {
    ($ledger:ident, |$pool:ident, $ops:ident| $call:expr) => {
        match $ledger.db().await?.pool() {
            DbPool::Sqlite($pool) => {
                use sqlite_batch as $ops;
                $call.await
            }
            DbPool::Postgres($pool) => {
                use postgres_batch as $ops;
                $call.await
            }
        }
    };
}

/// What a recipient's case tells about the benefit (`docs/batches.md`).
#[derive(Debug, Clone, PartialEq)]
struct CaseFacts {
    /// Members of the case's `household` (1 when it has none).
    household_size: i64,
    /// Members the benefit covers: 1 for a case of one member alone (`member`, 单人户),
    /// else `household_size`.
    covered: i64,
    /// The case's `area` (`urban` / `rural`), when it has one.
    area: Option<String>,
}

impl CaseFacts {
    /// A case the store no longer holds: one member, no area.
    const UNKNOWN: CaseFacts = CaseFacts {
        household_size: 1,
        covered: 1,
        area: None,
    };

    fn of(state: &jiuzhu_engine::store::StateJson) -> CaseFacts {
        #[derive(serde::Deserialize)]
        struct WithVars {
            #[serde(default)]
            vars: serde_json::Map<String, Json>,
        }
        let Ok(WithVars { vars }) = state.parse::<WithVars>() else {
            return CaseFacts::UNKNOWN;
        };
        let household_size = vars
            .get("household")
            .and_then(|h| h.get("members")?.as_array().map(Vec::len))
            .and_then(|n| i64::try_from(n).ok())
            .filter(|n| *n > 0)
            .unwrap_or(1);
        let covered = match vars.get("member") {
            None | Some(Json::Null) => household_size,
            Some(_) => 1,
        };
        CaseFacts {
            household_size,
            covered,
            area: vars.get("area").and_then(Json::as_str).map(str::to_string),
        }
    }
}

impl Ledger {
    /// Carries out a `batch` request from the outbox (see the module docs). Delivering it
    /// again after a crash resumes the run; nobody is paid twice.
    pub async fn run_batch(
        &self,
        engine: &Engine,
        entry: &OutboxRow,
        now: DateTime<Utc>,
    ) -> Result<BatchOutcome, PaymentError> {
        self.run_batch_observed(engine, entry, now, &mut || {})
            .await
    }

    /// As [`Ledger::run_batch`], calling `on_done` each time a recipient is recorded done.
    pub async fn run_batch_observed(
        &self,
        engine: &Engine,
        entry: &OutboxRow,
        now: DateTime<Utc>,
        on_done: &mut (dyn FnMut() + Send),
    ) -> Result<BatchOutcome, PaymentError> {
        let request = BatchRequest::from_outbox(entry, self.today(now))?;
        let case = entry.instance_id.as_str();
        let at = now.timestamp_millis();
        let start = on_batch_db!(self, |pool, ops| ops::begin(
            pool, &request, case, &entry.id, at
        ))?;
        let engine_error = |source: EngineError| PaymentError::BatchEngine {
            run_key: request.run_key.clone(),
            source,
        };
        if let RunStart::Duplicate { first_case } = start {
            let report = report(&request.run_key, 0, Decimal::ZERO, Some(&first_case));
            self.report(engine, case, &request, report)
                .await
                .map_err(engine_error)?;
            return Ok(BatchOutcome::Duplicate { first_case });
        }
        if start == RunStart::Running {
            let (_, def, state) = engine.load(case).await.map_err(engine_error)?;
            let local_now = now.with_timezone(&self.offset());
            let month = YearMonth::of(request.as_of);
            loop {
                let items = on_batch_db!(self, |pool, ops| ops::pending(pool, &request.run_key))?;
                if items.is_empty() {
                    break;
                }
                for item in items {
                    let entries = self.entries(&item.benefit_id).await?;
                    let Some(due) = due_in_month(&entries, month) else {
                        on_batch_db!(self, |pool, ops| ops::mark_done(
                            pool,
                            &request.run_key,
                            &item.recipient,
                            None,
                            at
                        ))?;
                        on_done();
                        continue;
                    };
                    let facts = match self.store().find_instance(&item.case_id).await? {
                        // An approved case that ended (dibao) may be archived by now.
                        Some((row, _archived)) => CaseFacts::of(&row.state),
                        None => CaseFacts::UNKNOWN,
                    };
                    let text = |s: &Option<String>| s.clone().map_or(Value::Null, Value::Str);
                    let recipient = Value::Object(BTreeMap::from([
                        ("case".to_string(), Value::Str(item.case_id.clone())),
                        ("unit".to_string(), Value::Str(item.unit.clone())),
                        ("program".to_string(), Value::Str(item.program.clone())),
                        ("payee".to_string(), Value::Str(due.payee.name.clone())),
                        ("account".to_string(), text(&due.payee.account)),
                        ("id_number".to_string(), text(&due.payee.id_number)),
                        (
                            "household_size".to_string(),
                            Value::Int(facts.household_size),
                        ),
                        ("covered".to_string(), Value::Int(facts.covered)),
                        ("area".to_string(), text(&facts.area)),
                        ("amount".to_string(), Value::Decimal(due.amount)),
                    ]));
                    let effects = expand(
                        &def,
                        &state,
                        &request.node,
                        local_now,
                        &request.run_key,
                        &item.recipient,
                        &recipient,
                    )
                    .map_err(|problem| PaymentError::Batch {
                        run_key: request.run_key.clone(),
                        problem: format!("recipient {}: {problem}", item.recipient),
                    })?;
                    let mut paid: Option<Decimal> = None;
                    for effect in &effects {
                        // A second application of the same id (a resumed run) is a no-op.
                        self.apply_effect(&effect.to_json(), now).await?;
                        if let jiuzhu_engine::effects::TypedEffect::Payment(payment) =
                            &effect.effect
                        {
                            paid = Some(paid.unwrap_or_default() + payment.amount);
                        }
                    }
                    on_batch_db!(self, |pool, ops| ops::mark_done(
                        pool,
                        &request.run_key,
                        &item.recipient,
                        paid,
                        at
                    ))?;
                    on_done();
                }
            }
            on_batch_db!(self, |pool, ops| ops::finish(pool, &request.run_key, at))?;
        }
        let progress = self.batches(Some(&request.run_key)).await?;
        let (count, total) = progress
            .first()
            .map_or((0, Decimal::ZERO), |p| (p.paid, p.total));
        let report = report(&request.run_key, count, total, None);
        self.report(engine, case, &request, report)
            .await
            .map_err(engine_error)?;
        Ok(BatchOutcome::Done { count, total })
    }

    /// Every batch run with its progress (or the one under `run_key`), newest first.
    pub async fn batches(&self, run_key: Option<&str>) -> Result<Vec<BatchProgress>, PaymentError> {
        on_batch_db!(self, |pool, ops| ops::progress(pool, run_key))
    }

    /// Tells the case its run is over, unless it no longer waits at the batch node
    /// (an earlier delivery told it already).
    async fn report(
        &self,
        engine: &Engine,
        case: &str,
        request: &BatchRequest,
        report: BTreeMap<String, Value>,
    ) -> Result<(), EngineError> {
        let (row, _, state) = engine.load(case).await?;
        if !state.tokens.iter().any(|t| t.node == request.node) {
            return Ok(());
        }
        let actor = Actor {
            user: BATCH_SENDER_ROLE.to_string(),
            roles: vec![BATCH_SENDER_ROLE.to_string()],
            unit: row.unit,
        };
        engine
            .message(case, BATCH_DONE, Some(&actor), report)
            .await
            .map(|_| ())
    }
}

fn report(
    run_key: &str,
    count: i64,
    total: Decimal,
    first_case: Option<&str>,
) -> BTreeMap<String, Value> {
    let mut report = BTreeMap::from([
        ("run_key".to_string(), Value::Str(run_key.to_string())),
        ("count".to_string(), Value::Int(count)),
        ("total".to_string(), Value::Decimal(total)),
        ("duplicate".to_string(), Value::Bool(first_case.is_some())),
    ]);
    if let Some(first) = first_case {
        report.insert("first_case".to_string(), Value::Str(first.to_string()));
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 10, 15).unwrap()
    }

    #[test]
    fn requests_read_their_query() {
        let request = BatchRequest::parse(
            &json!({"type": "batch", "id": "h-1-e1", "run_key": "heating:2026", "node": "pay",
                    "over": {"benefits": ["dibao", "tekun"], "unit": "双鸭山市/尖山区",
                             "as_of": "2026-10-20", "per": "household"}}),
            today(),
        )
        .unwrap();
        assert_eq!(request.programs, vec!["dibao", "tekun"]);
        assert_eq!(
            request.as_of,
            NaiveDate::from_ymd_opt(2026, 10, 20).unwrap()
        );
        assert!(request.per_household);
        let defaults = BatchRequest::parse(
            &json!({"run_key": "k", "node": "pay", "over": {"benefits": [], "per": "benefit"}}),
            today(),
        )
        .unwrap();
        assert_eq!(defaults.as_of, today());
        assert_eq!(defaults.unit, "");
        assert!(!defaults.per_household);
    }

    #[test]
    fn malformed_requests_name_what_is_wrong() {
        let table = [
            (json!({"node": "pay", "over": {"benefits": []}}), "run_key"),
            (json!({"run_key": "k", "over": {"benefits": []}}), "node"),
            (json!({"run_key": "k", "node": "pay"}), "over"),
            (
                json!({"run_key": "k", "node": "pay", "over": {}}),
                "benefits",
            ),
            (
                json!({"run_key": "k", "node": "pay", "over": {"benefits": [1]}}),
                "benefits",
            ),
            (
                json!({"run_key": "k", "node": "pay", "over": {"benefits": [], "as_of": "soon"}}),
                "as_of",
            ),
            (
                json!({"run_key": "k", "node": "pay", "over": {"benefits": [], "per": "person"}}),
                "per",
            ),
        ];
        for (effect, field) in table {
            match BatchRequest::parse(&effect, today()) {
                Err(PaymentError::Batch { problem, .. }) => {
                    assert!(problem.contains(field), "{effect}: {problem}")
                }
                other => panic!("{effect}: {other:?}"),
            }
        }
    }

    #[test]
    fn units_contain_whole_segments() {
        assert!(unit_within("双鸭山市/尖山区/中心站街道", "双鸭山市/尖山区"));
        assert!(unit_within("双鸭山市/尖山区", "双鸭山市/尖山区"));
        assert!(unit_within("双鸭山市/尖山区", ""));
        assert!(!unit_within("双鸭山市/尖山区二", "双鸭山市/尖山区"));
        assert!(!unit_within("双鸭山市", "双鸭山市/尖山区"));
    }
}
