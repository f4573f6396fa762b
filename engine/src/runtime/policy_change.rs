//! Delivering `policy_changed` (see `core::policy_change`) from the scheduler: when a
//! policy with a later `effective_from` has taken effect for a case's unit, every active
//! case waiting for the message receives it, once per (case, policy day).
//!
//! Durable and idempotent without a table of its own: the delivery id (`policy_changed:
//! DAY`) is kept in the case's state (`received`) by the same commit as the step, as for
//! any engine-delivered message, so a sweep after a crash — or a second scheduler node
//! sweeping at the same time — skips the cases already told (the version check stops a
//! racing second delivery). A sweep reads the active cases of the processes that handle
//! the message; the scheduler sweeps a process again only when a policy day has come
//! that it has not swept yet (and again after a sweep with failures).
//!
//! The same sweep starts the cases a definition asks for on each policy day (`schedules:`
//! with `on: policy_changed`, [`Engine::start_policy_schedules`]): one per policy day and
//! jurisdiction, with an id made from both, so a second start — a second node, a sweep
//! after a restart — is a duplicate. Only policy days from the day the process was first
//! deployed count: a procedure deployed later does not reach back to earlier raises.

use chrono::NaiveDate;

use crate::core::Assessor as _;

use super::internal::InternalOutcome;
use super::{Engine, EngineError};
use crate::core::Actor;
use crate::core::policy_change::{
    POLICY_CHANGED, POLICY_STARTER, delivery_id, handles, message_data, owed, policy_starts,
    takes_effect_for, waits_for,
};
use crate::store::InstanceFilter;
use crate::store::{ConflictReason, StoreError};

/// Cases read per page while sweeping.
const PAGE: u32 = 500;

/// What one sweep of a process did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PolicySweep {
    pub process: String,
    /// The local date the sweep ran on (the process's calendar).
    pub today: Option<NaiveDate>,
    /// `(case, policy day)` told now.
    pub delivered: Vec<(String, NaiveDate)>,
    /// `(case, error)` that could not be told; the next sweep tries again.
    pub failures: Vec<(String, String)>,
}

impl Engine {
    /// The processes any deployed version of which takes `policy_changed`.
    pub async fn policy_listeners(&self) -> Result<Vec<String>, EngineError> {
        let mut out: Vec<String> = Vec::new();
        for deployment in self.store.deployments().await? {
            if out.contains(&deployment.process_id) {
                continue;
            }
            let def = self
                .definition(&deployment.process_id, deployment.version)
                .await?;
            if handles(&def, POLICY_CHANGED) {
                out.push(deployment.process_id);
            }
        }
        Ok(out)
    }

    /// The latest policy day that has come somewhere on earth (UTC+14): no process's
    /// calendar has reached a later one. `None` without policy days.
    pub fn policy_day_probe(&self) -> Option<NaiveDate> {
        let furthest = (self.now() + chrono::Duration::hours(14)).date_naive();
        self.assessor
            .policy_dates()
            .into_iter()
            .filter(|day| *day <= furthest)
            .max()
    }

    /// The latest policy day up to today for `process` (its calendar's date), if any.
    pub async fn latest_policy_day(&self, process: &str) -> Result<Option<NaiveDate>, EngineError> {
        let today = self.today_of(process).await?;
        Ok(self
            .assessor
            .policy_dates()
            .into_iter()
            .filter(|day| *day <= today)
            .max())
    }

    async fn today_of(&self, process: &str) -> Result<NaiveDate, EngineError> {
        let version = self.latest_version(process).await?;
        let def = self.definition(process, version).await?;
        Ok(self
            .now()
            .with_timezone(&self.utc_offset(&def))
            .date_naive())
    }

    /// Tells every active case of `process` the policy days it is owed and waits for.
    pub async fn sweep_policy_changes(&self, process: &str) -> Result<PolicySweep, EngineError> {
        let today = self.today_of(process).await?;
        let days: Vec<NaiveDate> = self
            .assessor
            .policy_dates()
            .into_iter()
            .filter(|day| *day <= today)
            .collect();
        let mut sweep = PolicySweep {
            process: process.to_string(),
            today: Some(today),
            ..PolicySweep::default()
        };
        if days.is_empty() {
            return Ok(sweep);
        }
        // The ids first: a delivery may end a case, which would shift the pages.
        let mut ids = Vec::new();
        let mut filter = InstanceFilter {
            process_id: Some(process.to_string()),
            status: Some("active".to_string()),
            limit: PAGE,
            offset: 0,
            unit: None,
        };
        loop {
            let page = self.store.list_instances(&filter).await?;
            let n = page.len();
            ids.extend(page.into_iter().map(|row| row.id));
            if n < PAGE as usize {
                break;
            }
            filter.offset += PAGE;
        }
        for id in ids {
            let (_, mut def, mut state) = self.load(&id).await?;
            for day in owed(&state, &days, today) {
                if !waits_for(&def, &state, POLICY_CHANGED) {
                    break;
                }
                if !takes_effect_for(&self.assessor, &state.unit, day) {
                    continue;
                }
                match self
                    .deliver_message_here(&id, POLICY_CHANGED, message_data(day), &delivery_id(day))
                    .await
                {
                    // Another node told the case at the same moment: not this sweep's.
                    (InternalOutcome::Done, false) => {}
                    (InternalOutcome::Done, true) => {
                        tracing::info!(case = %id, %day, "policy change delivered");
                        sweep.delivered.push((id.clone(), day));
                    }
                    (InternalOutcome::Failed { error, .. }, _) => {
                        sweep.failures.push((id.clone(), error));
                        break;
                    }
                    (InternalOutcome::NotBefore(_), _) => break,
                }
                (_, def, state) = self.load(&id).await?;
            }
        }
        Ok(sweep)
    }
}

/// What one pass over the policy-day starts did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PolicyStarts {
    /// `(case, policy day)` started now.
    pub started: Vec<(String, NaiveDate)>,
    /// `(process or case, error)` not started; the next pass tries again.
    pub failures: Vec<(String, String)>,
}

impl Engine {
    /// Starts what the latest deployment of each process asks for on the policy days that
    /// have come (its calendar's date) since it was first deployed; a start made before is
    /// left alone. Problems are reported per process or case, never stop the others.
    pub async fn start_policy_schedules(&self) -> Result<PolicyStarts, EngineError> {
        let mut out = PolicyStarts::default();
        let days = self.assessor.policy_dates();
        if days.is_empty() {
            return Ok(out);
        }
        let deployments = self.store.deployments().await?;
        for (process, version) in self.store.latest_versions().await? {
            let def = match self.definition(&process, version).await {
                Ok(def) => def,
                Err(error) => {
                    out.failures.push((process, error.to_string()));
                    continue;
                }
            };
            if def.policy_starts.is_empty() {
                continue;
            }
            let offset = self.utc_offset(&def);
            let today = self.now().with_timezone(&offset).date_naive();
            let Some(first) = deployments
                .iter()
                .filter(|d| d.process_id == process)
                .map(|d| d.deployed_at.with_timezone(&offset).date_naive())
                .min()
            else {
                continue;
            };
            for day in days.iter().copied().filter(|d| *d >= first && *d <= today) {
                for decl in &def.policy_starts {
                    let starts = match policy_starts(&self.assessor, &process, decl, day, offset) {
                        Ok(starts) => starts,
                        Err(error) => {
                            out.failures.push((process.clone(), error));
                            continue;
                        }
                    };
                    for start in starts {
                        match self.start_for_policy(&process, version, &start).await {
                            Ok(true) => {
                                tracing::info!(case = %start.instance_id, %day, "policy day start");
                                out.started.push((start.instance_id, day));
                            }
                            Ok(false) => {}
                            Err(error) => {
                                tracing::warn!(
                                    case = %start.instance_id,
                                    error = error.code(),
                                    "policy day start failed; tried again"
                                );
                                out.failures.push((start.instance_id, error.to_string()));
                            }
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// One policy-day start; `false` when the case exists already (live or archived) or
    /// another case holds its business key.
    async fn start_for_policy(
        &self,
        process: &str,
        version: i64,
        start: &crate::core::policy_change::PolicyStart,
    ) -> Result<bool, EngineError> {
        if self
            .store
            .find_instance(&start.instance_id)
            .await?
            .is_some()
        {
            return Ok(false);
        }
        let actor = Actor {
            user: POLICY_STARTER.to_string(),
            roles: vec![crate::lang::model::SYSTEM_ROLE.to_string()],
            unit: match start.data.get("unit") {
                Some(jiuzhu_rules::Value::Str(unit)) => unit.clone(),
                _ => start.jurisdiction.clone(),
            },
        };
        match self
            .start_with_id(
                &start.instance_id,
                process,
                version,
                &actor,
                start.data.clone(),
                None,
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(EngineError::Store(StoreError::Conflict {
                reason: ConflictReason::Duplicate,
                ..
            }))
            | Err(EngineError::DuplicateKey { .. }) => Ok(false),
            Err(error) => Err(error),
        }
    }
}
