//! The read commands: `tasks`, `show`, `history`, `status` and `cases`, on a database
//! opened read-only, without loading the process definitions.
//!
//! What they show is in the database (the instances, and the deployed source of each
//! version for labels), so a broken YAML file in `processes/`, a read-only file, or a
//! folder outside the project does not stop them. Only `org.yaml` is read, for `--as`.
//! Personal data is masked unless `--reveal` is given.

use std::collections::{BTreeMap, HashMap};

use anyhow::{Context as _, Result};
use chrono::{DateTime, FixedOffset, Utc};
use jiuzhu_engine::calendar::{Calendar, CalendarSet};
use jiuzhu_engine::clock::{Clock as _, SystemClock};
use jiuzhu_engine::core::{Actor, InstanceState};
use jiuzhu_engine::lang::model::Definition;
use jiuzhu_engine::lang::{LoadContext, load_definition};
use jiuzhu_engine::org::Org;
use jiuzhu_engine::privacy;
use jiuzhu_engine::store::search::{CaseQuery, Resolved};
use jiuzhu_engine::store::{Store, StoreOptions};
use serde_json::json;

use crate::cli_args::Paths;
use crate::errors::CliError;
use crate::output::{MASKED, REVEALED, local_minute, local_time, short_id};

/// A database opened for reading, with what the project says about users and calendars.
pub struct ReadSession {
    pub store: Store,
    /// The database's path or URL (a `--reveal` read opens it again to log the view).
    db_url: String,
    org: std::result::Result<Option<Org>, String>,
    context: LoadContext,
    offset: FixedOffset,
}

impl ReadSession {
    /// Opens the database of `paths` read-only; an absent SQLite file is an error.
    pub async fn open(paths: &Paths) -> Result<ReadSession> {
        paths.require_database()?;
        let options = StoreOptions {
            read_only: true,
            ..StoreOptions::default()
        };
        let store = Store::open_with(&paths.db, options)
            .await
            .with_context(|| format!("opening the database {}", paths.db))?;
        let org_path = paths.definitions.join("org.yaml");
        let org = if org_path.exists() {
            Org::load(&org_path).map(Some).map_err(|e| e.to_string())
        } else {
            Ok(None)
        };
        // Calendars only give the offset and the names deployed sources may use; a broken
        // calendar file falls back to the national one rather than stopping a read.
        let mut calendars =
            CalendarSet::load_dir(&paths.definitions.join("calendars")).unwrap_or_default();
        if calendars.get("cn").is_none() {
            calendars.insert(Calendar::china_national());
        }
        let offset = calendars
            .get("cn")
            .map(Calendar::utc_offset)
            .unwrap_or_else(|| Calendar::china_national().utc_offset());
        let mut context = LoadContext::default().with_calendars(
            calendars
                .iter()
                .map(|c| c.id().to_string())
                .collect::<Vec<_>>(),
        );
        if let Ok(Some(org)) = &org {
            context = context.with_roles(org.role_ids());
        }
        Ok(ReadSession {
            store,
            db_url: paths.db.clone(),
            org,
            context,
            offset,
        })
    }

    pub fn db_url(&self) -> &str {
        &self.db_url
    }

    pub fn view(&self, reveal: bool) -> View<'_> {
        View {
            store: &self.store,
            org: self
                .org
                .as_ref()
                .map(Option::as_ref)
                .map_err(String::as_str),
            context: &self.context,
            offset: self.offset,
            reveal,
        }
    }
}

/// What a read command needs; built from a [`ReadSession`] or from a lifecycle session.
pub struct View<'a> {
    pub store: &'a Store,
    pub org: std::result::Result<Option<&'a Org>, &'a str>,
    pub context: &'a LoadContext,
    /// Times are printed in this offset (the national calendar's: +08:00 in China).
    pub offset: FixedOffset,
    /// Print personal data unmasked.
    pub reveal: bool,
}

impl View<'_> {
    fn actor(&self, user: &str) -> Result<Actor> {
        let org = match self.org {
            Ok(Some(org)) => org,
            Ok(None) => {
                return Err(CliError::usage(
                    "invalid_input",
                    "no org.yaml in the definitions folder",
                )
                .hint("name the project with --project DIR or JIUZHU_HOME")
                .into());
            }
            Err(problem) => {
                return Err(
                    CliError::usage("invalid_input", format!("org.yaml: {problem}")).into(),
                );
            }
        };
        let u = org.user(user).ok_or_else(|| {
            CliError::usage("unknown_user", format!("no user {user} in org.yaml"))
        })?;
        Ok(u.actor())
    }

    fn mask(&self, value: &serde_json::Value) -> serde_json::Value {
        if self.reveal {
            value.clone()
        } else {
            privacy::mask_json(value)
        }
    }

    fn mask_name(&self, name: &str) -> String {
        if self.reveal {
            name.to_string()
        } else {
            privacy::mask_name(name)
        }
    }

    /// The definition of a deployed version, for labels; `None` when it does not load
    /// (a read shows the case anyway).
    async fn definition(&self, process: &str, version: i64) -> Option<Definition> {
        let deployment = self.store.deployment(process, version).await.ok()??;
        load_definition(
            &deployment.source,
            &format!("{process}@{version}"),
            self.context,
        )
        .ok()
    }
}

/// The full instance id `fragment` stands for (see [`short_id`]).
pub async fn resolve_instance(store: &Store, fragment: &str) -> Result<String> {
    resolved(store.resolve_instance_id(fragment).await?, "case", fragment)
}

/// The full task id `fragment` stands for (see [`short_id`]).
pub async fn resolve_task(store: &Store, fragment: &str) -> Result<String> {
    resolved(store.resolve_task_id(fragment).await?, "task", fragment)
}

fn resolved(found: Resolved, what: &str, fragment: &str) -> Result<String> {
    match found {
        Resolved::One(id) => Ok(id),
        // Left to the command, which says what it found missing in its own words.
        Resolved::None => Ok(fragment.to_string()),
        Resolved::Ambiguous(ids) => Err(CliError::usage(
            "ambiguous_id",
            format!(
                "{fragment} matches several {what} ids: {}",
                ids.iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
        .hint("type more of the id")
        .into()),
    }
}

fn applicant(vars: &serde_json::Value) -> Option<String> {
    ["applicant_name", "payee"]
        .iter()
        .find_map(|k| vars[*k].as_str().map(str::to_string))
}

/// `jiuzhu tasks --as USER`: the user's queue, due date first.
/// The open tasks in `user`'s queue (as `tasks` lists them).
async fn queue(view: &View<'_>, user: &str) -> Result<Vec<jiuzhu_engine::store::TaskRow>> {
    let actor = view.actor(user)?;
    Ok(view
        .store
        .tasks_for(
            &actor.roles,
            std::slice::from_ref(&actor.unit),
            &actor.user,
            200,
        )
        .await?)
}

/// The ids of the cases `tasks` lists for `user`, sorted.
pub async fn task_case_ids(view: &View<'_>, user: &str) -> Result<Vec<String>> {
    let mut ids: Vec<String> = queue(view, user)
        .await?
        .into_iter()
        .map(|t| t.instance_id)
        .collect();
    ids.sort();
    ids.dedup();
    Ok(ids)
}

pub async fn tasks(view: &View<'_>, user: &str) -> Result<i32> {
    let tasks = queue(view, user).await?;
    if tasks.is_empty() {
        println!("(no tasks for {user})");
        return Ok(0);
    }
    let mut ids: Vec<String> = tasks.iter().map(|t| t.instance_id.clone()).collect();
    ids.sort();
    ids.dedup();
    let cases: HashMap<String, (String, Option<String>)> = view
        .store
        .load_instances(&ids)
        .await?
        .into_iter()
        .map(|row| {
            let state: serde_json::Value =
                serde_json::from_str(row.state.as_str()).unwrap_or_default();
            (row.id, (row.process_id, applicant(&state["vars"])))
        })
        .collect();
    let now = SystemClock.now();
    println!("TASK\tCASE\tPROCEDURE\tSTEP\tAPPLICANT\tDUE\tUNIT");
    for task in tasks {
        let due = match task.due_at {
            Some(due) if due < now => format!("{} OVERDUE", local_minute(&due, view.offset)),
            Some(due) => local_minute(&due, view.offset),
            None => "-".into(),
        } + provisional_mark(task.provisional);
        let (process, name) = cases
            .get(&task.instance_id)
            .cloned()
            .unwrap_or_else(|| ("?".into(), None));
        let name = name
            .map(|n| view.mask_name(&n))
            .unwrap_or_else(|| "-".into());
        let holder = task
            .assignee
            .as_deref()
            .map(|a| format!(" [{a}]"))
            .unwrap_or_default();
        println!(
            "{}\t{}\t{process}\t{}\t{name}\t{due}\t{}{holder}",
            short_id(&task.id),
            short_id(&task.instance_id),
            task.label,
            task.unit
        );
    }
    Ok(0)
}

/// `jiuzhu show CASE`: state, variables (whole), open tasks and timers.
pub async fn show(view: &View<'_>, fragment: &str, as_json: bool) -> Result<i32> {
    let id = resolve_instance(view.store, fragment).await?;
    // A case finished long ago is read from the archive (`archived: true`).
    let Some((row, archived)) = view.store.find_instance(&id).await? else {
        return Err(not_found_case(&id).into());
    };
    let state: InstanceState = serde_json::from_str(row.state.as_str())
        .with_context(|| format!("reading the stored state of {id}"))?;
    let def = view.definition(&row.process_id, row.process_version).await;
    let vars: serde_json::Map<String, serde_json::Value> = state
        .vars
        .iter()
        .map(|(k, v)| (k.clone(), v.to_json()))
        .collect();
    let vars = view.mask(&serde_json::Value::Object(vars));
    let offset = view.offset;
    if as_json {
        let tasks: Vec<serde_json::Value> = state
            .tasks
            .iter()
            .map(|t| {
                json!({
                    "id": t.id, "short_id": short_id(&t.id),
                    "node": t.node, "label": t.label, "roles": t.roles, "unit": t.unit,
                    "claimed_by": t.claimed_by,
                    "due_at": t.due_at.map(|d| d.with_timezone(&offset).to_rfc3339()),
                    "provisional": t.provisional,
                })
            })
            .collect();
        let timers: Vec<serde_json::Value> = state
            .timers
            .iter()
            .map(|t| {
                json!({
                    "id": t.id, "due_at": t.due_at.with_timezone(&offset).to_rfc3339(),
                    "kind": serde_json::to_value(&t.kind).unwrap_or_default(),
                    "provisional": t.provisional,
                })
            })
            .collect();
        let out = json!({
            "id": row.id, "short_id": short_id(&row.id),
            "process_id": row.process_id, "process_version": row.process_version,
            "process_name": def.as_ref().map(|d| d.name.clone()),
            "status": row.status, "outcome": row.outcome, "unit": row.unit,
            "started_at": state.started_at.with_timezone(&offset).to_rfc3339(),
            "started_by": state.started_by,
            "updated_at": row.updated_at.with_timezone(&offset).to_rfc3339(),
            "variables": vars, "tasks": tasks, "timers": timers,
            "incidents": state.incidents.iter().map(|i| json!({
                "id": i.id, "node": i.node, "code": i.code, "message": i.message,
                "at": i.at.with_timezone(&offset).to_rfc3339(),
            })).collect::<Vec<_>>(),
            "revealed": view.reveal,
            "archived": archived,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(0);
    }
    if view.reveal {
        println!("{REVEALED}");
    }
    let name = def.as_ref().map(|d| d.name.as_str()).unwrap_or("?");
    println!(
        "{} ({}) · {name} ({}@{})",
        row.id,
        short_id(&row.id),
        row.process_id,
        row.process_version
    );
    println!(
        "status: {}  outcome: {}{}",
        row.status,
        row.outcome.as_deref().unwrap_or("-"),
        if archived {
            "  (archived: read-only)"
        } else {
            ""
        }
    );
    println!(
        "unit: {}  started: {} by {}",
        state.unit,
        local_time(&state.started_at, offset),
        state.started_by
    );
    println!("variables:");
    let labels: BTreeMap<&str, &str> = def
        .as_ref()
        .map(|d| {
            d.variables
                .iter()
                .filter_map(|v| v.label.as_deref().map(|l| (v.name.as_str(), l)))
                .collect()
        })
        .unwrap_or_default();
    if let serde_json::Value::Object(vars) = &vars {
        for (name, value) in vars {
            let label = labels
                .get(name.as_str())
                .map(|l| format!(" ({l})"))
                .unwrap_or_default();
            println!("  {name}{label}: {}", plain(value));
        }
    }
    println!("open tasks:");
    for task in &state.tasks {
        let due = task
            .due_at
            .map(|d| local_minute(&d, offset))
            .unwrap_or_else(|| "-".into())
            + provisional_mark(task.provisional);
        let claimed = task
            .claimed_by
            .as_deref()
            .map(|u| format!(" claimed by {u}"))
            .unwrap_or_default();
        println!(
            "  {} {} role {} unit {} due {due}{claimed}",
            short_id(&task.id),
            task.label,
            task.roles.join("|"),
            task.unit
        );
    }
    println!("timers:");
    for timer in &state.timers {
        println!(
            "  {} at {}{} ({})",
            timer.id,
            local_time(&timer.due_at, offset),
            provisional_mark(timer.provisional),
            serde_json::to_value(&timer.kind).unwrap_or_default()
        );
    }
    for incident in &state.incidents {
        println!(
            "incident {} at {}: {} ({}); after correcting the data: `jiuzhu retry {} --as USER`",
            incident.id, incident.node, incident.message, incident.code, incident.id
        );
    }
    if !view.reveal {
        println!("{MASKED}");
    }
    Ok(0)
}

/// " (暂定)" after a due date counted through a year the calendar does not cover yet:
/// deploying the year's calendar counts it again.
pub fn provisional_mark(provisional: bool) -> &'static str {
    if provisional { " (暂定)" } else { "" }
}

/// A value as a person reads it: strings without quotes, anything else as JSON.
fn plain(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn not_found_case(id: &str) -> CliError {
    CliError::refused("not_found", format!("no case {id}"))
        .hint("`jiuzhu cases` lists the cases; ids may be shortened to their last 8 characters")
}

/// `jiuzhu history CASE`: the audit trail as a timeline in local time; `--verify` checks
/// its hash chain; `--json` prints the rows for machines.
pub async fn history(view: &View<'_>, fragment: &str, verify: bool, as_json: bool) -> Result<i32> {
    let id = resolve_instance(view.store, fragment).await?;
    let rows = view.store.history(&id).await?;
    if rows.is_empty() {
        return Err(not_found_case(&id).into());
    }
    let offset = view.offset;
    let verified = if verify {
        Some(view.store.verify_history(&id).await)
    } else {
        None
    };
    if as_json {
        let out: Vec<serde_json::Value> = rows
            .iter()
            .map(|row| {
                json!({
                    "seq": row.seq, "at": row.at.with_timezone(&offset).to_rfc3339(),
                    "actor": row.actor, "event": row.event, "node": row.node,
                    "input": view.mask(&row.data["input"]),
                    "changed": view.mask(&row.data["changed"]),
                    // Stored masked already (a correction's old and new values).
                    "corrections": row.data.get("corrections"),
                    "hash": row.hash,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        if view.reveal {
            println!("{REVEALED}");
        }
        println!("history of {id} ({})", short_id(&id));
        for row in &rows {
            println!(
                "#{} {}  {}  {}{}",
                row.seq,
                local_time(&row.at, offset),
                row.actor.as_deref().unwrap_or("system"),
                row.event,
                row.node
                    .as_deref()
                    .map(|n| format!(" at {n}"))
                    .unwrap_or_default()
            );
            for (what, key) in [("input", "input"), ("changed", "changed")] {
                if let serde_json::Value::Object(fields) = view.mask(&row.data[key])
                    && !fields.is_empty()
                {
                    let text: Vec<String> = fields
                        .iter()
                        .map(|(k, v)| format!("{k} = {}", plain(v)))
                        .collect();
                    println!("    {what}: {}", text.join("; "));
                }
            }
            for change in row.data["corrections"].as_array().into_iter().flatten() {
                let path = change["path"].as_str().unwrap_or_default();
                let (old, new) = (plain(&change["old"]), plain(&change["new"]));
                println!("    corrected {path}: {old} -> {new}");
            }
        }
        if !view.reveal {
            println!("{MASKED}");
        }
    }
    match verified {
        Some(Ok(chain)) => {
            let head = rows.last().map(|r| r.hash.as_str()).unwrap_or_default();
            let plain = match chain.plain_rows {
                0 => String::new(),
                n => format!(" ({n} from before the audit key)"),
            };
            let line = format!(
                "hash chain verified: {} rows{plain}, head {}",
                rows.len(),
                head.get(..16).unwrap_or(head)
            );
            if as_json {
                eprintln!("{line}");
            } else {
                println!("{line}");
            }
            Ok(0)
        }
        Some(Err(e)) => Err(CliError::refused(
            "tampered",
            format!("the history of {id} was altered: {e}"),
        )
        .into()),
        None => Ok(0),
    }
}

/// What the database holds: deployments, active cases per process, open tasks, pending
/// timers and outbox, the cron schedules and how late the oldest due timer is.
pub async fn status(view: &View<'_>) -> Result<i32> {
    let store = view.store;
    let now = SystemClock.now();
    let summary = store.summary().await?;
    let active: BTreeMap<String, i64> = summary.active_instances.into_iter().collect();
    println!("deployments:");
    let versions = store.latest_versions().await?;
    if versions.is_empty() {
        println!("  (none: run `jiuzhu deploy`)");
    }
    for (process, version) in versions {
        println!(
            "  {process}@{version}  active instances: {}",
            active.get(&process).copied().unwrap_or(0)
        );
    }
    println!("open tasks: {}", summary.open_tasks);
    println!("pending timers: {}", summary.pending_timers);
    println!("pending outbox effects: {}", summary.pending_outbox);
    let (tasks, timers) = store.provisional_counts().await?;
    println!(
        "provisional due dates (暂定, past the calendar's years): {tasks} open tasks, {timers} pending timers"
    );
    println!(
        "oldest due timer: {}",
        crate::lifecycle::lag_text(store.oldest_due_timer_lag(now).await?)
    );
    let schedules = store.schedules().await?;
    if !schedules.is_empty() {
        println!("schedules:");
    }
    for schedule in schedules {
        println!(
            "  {} {} `{}` next {}",
            schedule.process_id,
            schedule.schedule_id,
            schedule.cron,
            local_time(&schedule.next_due_at, view.offset)
        );
    }
    Ok(0)
}

/// `jiuzhu cases`: filters, paging, masked applicant and ID number.
pub async fn cases(view: &View<'_>, query: &CaseQuery, as_json: bool) -> Result<i32> {
    let found = view.store.search_cases(query).await?;
    let offset = view.offset;
    let id_number = |n: &str| {
        if view.reveal {
            n.to_string()
        } else {
            privacy::mask_id_number(n)
        }
    };
    let time = |at: &DateTime<Utc>| at.with_timezone(&offset).to_rfc3339();
    if as_json {
        let out: Vec<serde_json::Value> = found
            .iter()
            .map(|c| {
                json!({
                    "id": c.id, "short_id": short_id(&c.id),
                    "process_id": c.process_id, "process_version": c.process_version,
                    "status": c.status, "outcome": c.outcome, "unit": c.unit,
                    "applicant_name": c.applicant_name.as_deref().map(|n| view.mask_name(n)),
                    "id_number": c.id_number.as_deref().map(id_number),
                    "created_at": time(&c.created_at), "updated_at": time(&c.updated_at),
                    "archived": c.archived,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(0);
    }
    if view.reveal {
        println!("{REVEALED}");
    }
    if found.is_empty() {
        println!("(no cases match)");
        return Ok(0);
    }
    println!("CASE\tPROCEDURE\tSTATUS\tAPPLICANT\tID NUMBER\tSTARTED\tUNIT");
    for c in &found {
        let mut status = match &c.outcome {
            Some(outcome) => format!("{} ({outcome})", c.status),
            None => c.status.clone(),
        };
        if c.archived {
            status.push_str(" [archived]");
        }
        println!(
            "{}\t{}\t{status}\t{}\t{}\t{}\t{}",
            short_id(&c.id),
            c.process_id,
            c.applicant_name
                .as_deref()
                .map(|n| view.mask_name(n))
                .unwrap_or_else(|| "-".into()),
            c.id_number
                .as_deref()
                .map(id_number)
                .unwrap_or_else(|| "-".into()),
            local_minute(&c.created_at, offset),
            c.unit
        );
    }
    if found.len() as u32 == query.limit {
        println!(
            "(first {} shown from {}: --offset {} for the next page)",
            query.limit,
            query.offset,
            query.offset + query.limit
        );
    }
    if !view.reveal {
        println!("{MASKED}");
    }
    Ok(0)
}
