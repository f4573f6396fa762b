//! The case file — household, assessment, open tasks, timers and deadlines, payments, the
//! history as a timeline in local time, and the procedure's diagram with the case's
//! current step highlighted — the case search (applicant name, ID number, status; results
//! masked), and starting a new application from the procedure's declared variables.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use jiuzhu_engine::core::{InstanceState, TimerKind};
use jiuzhu_engine::lang::model::Definition;
use jiuzhu_engine::privacy::{mask_id_number, mask_name};
use jiuzhu_engine::runtime::EngineError;
use jiuzhu_engine::store::search::CaseQuery;
use serde::Deserialize;
use serde_json::{Map, Value as Json, json};

use super::fields::{self, FieldSpec};
use super::post::Posted;
use super::task::{assessment_view, vars_json};
use super::{Staff, WebError, WebResult, csrf, page, render, visible_case};
use crate::app::AppState;

/// Status names in Chinese.
fn status_words(status: &str) -> &str {
    match status {
        "active" => "办理中",
        "completed" => "已办结",
        "terminated" => "已终止",
        "failed" => "异常",
        other => other,
    }
}

fn outcome_words(outcome: Option<&str>) -> String {
    match outcome {
        Some("approved") => "批准".into(),
        Some("rejected") => "不予批准".into(),
        Some("withdrawn") => "申请人撤回".into(),
        Some(other) => other.into(),
        None => String::new(),
    }
}

/// What a history event was, in words.
fn event_words(event: &str) -> &str {
    match event {
        "start" => "提出申请",
        "complete" => "完成",
        "claim" => "认领",
        "unclaim" => "释放",
        "reassign" => "改派",
        "delegate" => "委托",
        "message" => "收到消息",
        "timer" | "timer_fired" => "时限到达",
        "correct" => "更正数据",
        other => other,
    }
}

/// The diagram's Mermaid text with the nodes holding the case now highlighted and the
/// nodes already completed marked.
fn diagram(def: &Definition, case: &InstanceState) -> String {
    let mut text = jiuzhu_engine::diagram::mermaid(def);
    text.push_str("    classDef current fill:#fde68a,stroke:#b45309,stroke-width:3px\n");
    text.push_str("    classDef done fill:#d1fae5,stroke:#0f766e\n");
    let current: Vec<String> = case
        .tokens
        .iter()
        .map(|t| format!("n_{}", t.node))
        .collect();
    let done: Vec<String> = case
        .completed_by
        .keys()
        .map(|n| format!("n_{n}"))
        .filter(|n| !current.contains(n))
        .collect();
    if !done.is_empty() {
        text.push_str(&format!("    class {} done\n", done.join(",")));
    }
    if !current.is_empty() {
        text.push_str(&format!("    class {} current\n", current.join(",")));
    }
    text
}

fn timer_words(kind: &TimerKind) -> &'static str {
    match kind {
        TimerKind::Node { .. } => "等待期满（如公示期）",
        TimerKind::TaskReminder { .. } => "任务到期提醒",
        TimerKind::TaskDue { .. } => "任务办理期限",
        TimerKind::DeadlineReminder { .. } => "办理时限提醒",
        TimerKind::DeadlineDue { .. } => "办理时限",
    }
}

/// `GET /cases/{id}`: the case file.
pub async fn file(
    State(state): State<Arc<AppState>>,
    staff: Staff,
    Path(id): Path<String>,
) -> WebResult {
    render_file(&state, &staff, &id, None).await
}

/// A history value as text: a string as itself, anything else as JSON.
fn plain(value: &Json) -> String {
    match value {
        Json::String(text) => text.clone(),
        Json::Null => "（空）".into(),
        other => other.to_string(),
    }
}

/// The case file of `id`; `correction` is a refused correction form (its values and the
/// refusal in plain words) to show again.
async fn render_file(
    state: &AppState,
    staff: &Staff,
    id: &str,
    correction: Option<Json>,
) -> WebResult {
    let (row, def, case) = visible_case(state, staff, id).await?;
    let vars = vars_json(&case);
    let mut masked = Json::Object(vars.clone());
    crate::mask::mask_json(&mut masked);
    let household = masked.get("household").cloned().unwrap_or(Json::Null);
    let members: Vec<Json> = household
        .get("members")
        .and_then(Json::as_array)
        .map(|members| {
            members
                .iter()
                .map(|m| {
                    let income: Vec<String> = m
                        .get("income")
                        .and_then(Json::as_array)
                        .map(|list| {
                            list.iter()
                                .map(|i| {
                                    let amount = i
                                        .get("monthly")
                                        .and_then(Json::as_str)
                                        .and_then(|a| a.parse().ok())
                                        .map(render::money)
                                        .unwrap_or_default();
                                    format!(
                                        "{} {}",
                                        i.get("kind").and_then(Json::as_str).unwrap_or(""),
                                        amount
                                    )
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    json!({
                        "id": m.get("id"), "name": m.get("name"), "birth_date": m.get("birth_date"),
                        "income": income.join("；"),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let tasks: Vec<Json> = case
        .tasks
        .iter()
        .map(|t| {
            json!({
                "id": t.id, "label": t.label, "unit": t.unit,
                "roles": t.roles.iter().map(|r| super::role_label(state, r)).collect::<Vec<_>>(),
                "holder": t.claimed_by, "due_at": t.due_at.map(|d| render::local_time(d.to_utc())),
            })
        })
        .collect();
    let timers: Vec<Json> = case
        .timers
        .iter()
        .map(|t| json!({"what": timer_words(&t.kind), "due_at": render::local_time(t.due_at.to_utc())}))
        .collect();
    let deadlines: Vec<Json> = case
        .deadlines
        .iter()
        .map(|d| {
            let name = def
                .deadlines
                .iter()
                .find(|decl| decl.id == d.id)
                .map(|decl| decl.name.clone())
                .unwrap_or_else(|| d.id.clone());
            json!({"name": name, "due_at": render::local_time(d.due_at.to_utc()),
                   "active": d.active, "overdue": d.overdue})
        })
        .collect();
    let payments: Vec<Json> = state
        .engine
        .store
        .outbox_of_instance(&row.id)
        .await?
        .into_iter()
        .filter(|e| e.entry.kind == "payment")
        .map(|e| {
            let p = &e.entry.payload;
            let text = |k: &str| p.get(k).map(|v| v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()));
            json!({
                "amount": text("amount").and_then(|a| a.parse().ok()).map(render::money),
                "schedule": match text("schedule").as_deref() { Some("monthly") => "按月发放", Some("once") => "一次性发放", _ => "发放" },
                "from": text("from"),
                "payee": text("payee").map(|n| mask_name(&n)),
                "account": text("account").filter(|a| a != "null").map(|a| jiuzhu_engine::privacy::mask_account(&a)),
                "status": match e.status.as_str() { "delivered" => "已转入发放账本", "dead" => "发放失败（待处理）", _ => "待转入发放账本" },
                "ordered_at": render::local_time(e.entry.created_at),
            })
        })
        .collect();
    let node_names: BTreeMap<&str, &str> = def
        .nodes
        .iter()
        .map(|n| (n.id.as_str(), n.name.as_str()))
        .collect();
    let history: Vec<Json> = state
        .engine
        .store
        .history(&row.id)
        .await?
        .into_iter()
        .map(|h| {
            let mut input = h.data.get("input").cloned().unwrap_or(Json::Null);
            crate::mask::mask_json(&mut input);
            let reason = input
                .get("reason")
                .and_then(Json::as_str)
                .map(str::to_string);
            let who = h.actor.as_deref().map(|u| {
                let name = state
                    .engine
                    .project
                    .org
                    .as_ref()
                    .and_then(|o| o.user(u))
                    .map(|u| mask_name(&u.name));
                match name {
                    Some(n) => format!("{n}（{u}）"),
                    None => u.to_string(),
                }
            });
            // Stored masked already: a correction's old and new values.
            let corrections: Vec<Json> = h
                .data
                .get("corrections")
                .and_then(Json::as_array)
                .into_iter()
                .flatten()
                .map(|c| {
                    json!({
                        "path": c.get("path").and_then(Json::as_str).map(|p| p.trim_start_matches("$.")),
                        "old": plain(c.get("old").unwrap_or(&Json::Null)),
                        "new": plain(c.get("new").unwrap_or(&Json::Null)),
                    })
                })
                .collect();
            json!({
                "when": render::local_time(h.at),
                "who": who.unwrap_or_else(|| "系统".into()),
                "corrections": corrections,
                "what": event_words(&h.event),
                "step": h.node.as_deref().map(|n| node_names.get(n).copied().unwrap_or(n)),
                "reason": reason,
            })
        })
        .collect();
    let mut context = staff.context(state, "cases");
    if row.status == "active" {
        context.insert("correct_token", &staff.form_token(state).await?);
    }
    context.insert("correction", &correction);
    context.insert(
        "case",
        &json!({
            "id": row.id, "process_name": def.name, "unit": row.unit,
            "status": status_words(&row.status), "outcome": outcome_words(row.outcome.as_deref()),
            "decided": row.outcome.is_some(),
            "applicant": masked.get("applicant_name"),
            "area": vars.get("area").and_then(Json::as_str).map(fields::option_label),
            "monthly_amount": vars.get("monthly_amount").and_then(Json::as_str).and_then(|a| a.parse().ok()).map(render::money),
            "started_at": render::local_time(case.started_at.to_utc()),
            "reason": vars.get("reason").and_then(Json::as_str).filter(|r| !r.is_empty()),
        }),
    );
    context.insert("household", &json!({
        "members": members,
        "savings": household.get("savings").and_then(Json::as_str).and_then(|a| a.parse().ok()).map(render::money),
    }));
    context.insert("assessment", &assessment_view(masked.get("assessment")));
    context.insert("tasks", &tasks);
    context.insert("timers", &timers);
    context.insert("deadlines", &deadlines);
    context.insert("payments", &payments);
    context.insert("history", &history);
    context.insert("diagram", &diagram(&def, &case));
    Ok(page(render::render("case.html", &context)?))
}

/// A refused correction: the form's values with the refusal, and the page's status.
struct Refused {
    shown: Json,
    status: StatusCode,
}

impl Refused {
    /// The case file again, with the form as posted and why nothing changed.
    async fn show(self, state: &AppState, staff: &Staff, id: &str) -> WebResult {
        let mut response = render_file(state, staff, id, Some(self.shown)).await?;
        *response.status_mut() = self.status;
        Ok(response)
    }
}

/// `POST /cases/{id}/corrections`: corrects one value of the case as the user, with the
/// reason (`path`, `value` as JSON or plain text, `reason`). Whether the user may is the
/// engine's decision; a refusal is shown on the case file in plain words, nothing changed.
pub async fn correct(
    State(state): State<Arc<AppState>>,
    staff: Staff,
    Path(id): Path<String>,
    form: Posted,
) -> WebResult {
    csrf::check(
        &state.db,
        &staff.session,
        form.one(csrf::FIELD),
        state.engine.now(),
    )
    .await?;
    let (row, _, _) = visible_case(&state, &staff, &id).await?;
    let field = |name: &str| {
        form.one(name)
            .map(str::trim)
            .unwrap_or_default()
            .to_string()
    };
    let (path, text, reason) = (field("path"), field("value"), field("reason"));
    let refused = |message: String, status: StatusCode| Refused {
        shown: json!({"path": path, "value": text, "reason": reason, "error": message}),
        status,
    };
    if path.is_empty() || reason.is_empty() {
        return refused(
            "请填写要更正的项目和更正理由，没有任何内容被修改。".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .show(&state, &staff, &id)
        .await;
    }
    if let Err(refusal) = crate::authz::correct(&staff.principal, &row.unit, &id) {
        return Err(refusal.into());
    }
    let value = serde_json::from_str(&text).unwrap_or_else(|_| Json::String(text.clone()));
    let changes = vec![(path.clone(), jiuzhu_rules::Value::from_json(&value))];
    match state
        .engine
        .correct(&id, &staff.principal.actor(), changes, &reason)
        .await
    {
        Ok(_) => Ok(Redirect::to(&format!("/cases/{id}#history")).into_response()),
        Err(EngineError::Step(jiuzhu_engine::core::StepError::InvalidData {
            path: at,
            message,
        })) => {
            let (_, words) = fields::field_error(&at, &message);
            refused(
                format!("更正未保存：{words}"),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .show(&state, &staff, &id)
            .await
        }
        Err(error) => {
            let error = WebError::from(error);
            refused(format!("更正未保存：{}", error.message), error.status)
                .show(&state, &staff, &id)
                .await
        }
    }
}

#[derive(Deserialize, Default)]
pub struct SearchQuery {
    name: Option<String>,
    id_number: Option<String>,
    status: Option<String>,
}

/// `GET /cases`: search by applicant name, ID number and status, in the user's units.
pub async fn search(
    State(state): State<Arc<AppState>>,
    staff: Staff,
    Query(query): Query<SearchQuery>,
) -> WebResult {
    let clean = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let found = state
        .engine
        .store
        .search_cases(&CaseQuery {
            process_id: None,
            status: clean(&query.status),
            unit: Some(staff.principal.unit.clone()),
            name: clean(&query.name),
            id_number: clean(&query.id_number),
            limit: 100,
            offset: 0,
        })
        .await?;
    let rows: Vec<Json> = found
        .iter()
        .filter(|c| staff.principal.can_see(&c.unit))
        .map(|c| {
            json!({
                "id": c.id, "process": c.process_id, "unit": c.unit,
                "status": status_words(&c.status), "outcome": outcome_words(c.outcome.as_deref()),
                "applicant": c.applicant_name.as_deref().map(mask_name),
                "id_number": c.id_number.as_deref().map(mask_id_number),
                "created_at": render::local_time(c.created_at),
            })
        })
        .collect();
    let mut context = staff.context(&state, "cases");
    context.insert("rows", &rows);
    context.insert(
        "query",
        &json!({"name": query.name, "id_number": query.id_number, "status": query.status}),
    );
    Ok(page(render::render("cases.html", &context)?))
}

/// The start form's fields: the procedure's required variables (the application).
fn start_fields(def: &Definition) -> Vec<FieldSpec> {
    def.variables
        .iter()
        .filter(|v| v.required)
        .map(FieldSpec::of_variable)
        .collect()
}

#[derive(Deserialize, Default)]
pub struct NewQuery {
    process: Option<String>,
}

async fn render_new(
    state: &AppState,
    staff: &Staff,
    process: &str,
    values: Map<String, Json>,
    errors: BTreeMap<String, String>,
) -> WebResult {
    let deployments = state.engine.store.deployments().await?;
    let mut processes: BTreeMap<String, String> = BTreeMap::new();
    for d in &deployments {
        if let Ok(def) = state.engine.definition(&d.process_id, d.version).await {
            processes.insert(d.process_id.clone(), def.name.clone());
        }
    }
    let latest = state.engine.store.latest_deployment(process).await?;
    let fields = match latest {
        Some(d) => {
            let def = state.engine.definition(&d.process_id, d.version).await?;
            fields::views(&start_fields(&def), &values, &errors)
        }
        None => Vec::new(),
    };
    let mut context = staff.context(state, "new");
    context.insert("processes", &processes);
    context.insert("process", process);
    context.insert("fields", &fields);
    context.insert("errors", &!errors.is_empty());
    context.insert("token", &staff.form_token(state).await?);
    Ok(page(render::render("new_case.html", &context)?))
}

/// `GET /cases/new?process=dibao`.
pub async fn new_form(
    State(state): State<Arc<AppState>>,
    staff: Staff,
    Query(query): Query<NewQuery>,
) -> WebResult {
    let process = query.process.unwrap_or_else(|| "dibao".into());
    render_new(&state, &staff, &process, Map::new(), BTreeMap::new()).await
}

/// `POST /cases/new`: starts the case as the user (the engine checks they may).
pub async fn start(State(state): State<Arc<AppState>>, staff: Staff, form: Posted) -> WebResult {
    let now = state.engine.now();
    csrf::check(&state.db, &staff.session, form.one(csrf::FIELD), now).await?;
    let process = form.one("_process").unwrap_or_default().to_string();
    let Some(deployment) = state.engine.store.latest_deployment(&process).await? else {
        return Err(WebError::not_found());
    };
    let def = state
        .engine
        .definition(&deployment.process_id, deployment.version)
        .await?;
    let specs = start_fields(&def);
    let data = fields::data_of(&specs, &form, &Map::new());
    let engine_data = match jiuzhu_rules::Value::from_json(&Json::Object(data.clone())) {
        jiuzhu_rules::Value::Object(map) => map,
        _ => BTreeMap::new(),
    };
    match state
        .engine
        .start(&process, &staff.principal.actor(), engine_data)
        .await
    {
        Ok(report) => Ok(Redirect::to(&format!("/cases/{}", report.instance.id)).into_response()),
        Err(EngineError::Step(
            refusal @ (jiuzhu_engine::core::StepError::InvalidData { .. }
            | jiuzhu_engine::core::StepError::InvalidFields(_)),
        )) => {
            // Every problem at its field; several inside one field (a household) together.
            let mut errors: BTreeMap<String, String> = BTreeMap::new();
            for problem in refusal.problems() {
                let (field, text) = fields::field_error(&problem.path, &problem.message);
                errors
                    .entry(field)
                    .and_modify(|all| {
                        all.push('；');
                        all.push_str(&text);
                    })
                    .or_insert(text);
            }
            let mut response = render_new(&state, &staff, &process, data, errors).await?;
            *response.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            Ok(response)
        }
        Err(error) => Err(WebError::from(error)),
    }
}
