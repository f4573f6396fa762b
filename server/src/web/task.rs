//! The task form: generated from the step's form definition, with the case's assessment
//! and its explanation beside it. Completing posts the form with a single-use token and
//! the case version the page was rendered at: a double submit, a replayed form or a page
//! made stale by someone else's completion is explained and changes nothing; a refusal of
//! the data is shown at the field it concerns.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use jiuzhu_engine::lang::model::NodeKind;
use jiuzhu_engine::runtime::EngineError;
use serde_json::{Map, Value as Json};

use super::fields::{self, FieldSpec};
use super::post::Posted;
use super::queue::visible_open_task;
use super::{Staff, WebError, WebResult, csrf, page, render};
use crate::app::AppState;

/// The fields of task node `node` of `def`.
fn form_of(def: &jiuzhu_engine::lang::model::Definition, node: &str) -> Vec<FieldSpec> {
    match def.node_index(node).map(|i| &def.nodes[i].kind) {
        Some(NodeKind::Task(task)) => task.form.iter().map(FieldSpec::of_field).collect(),
        _ => Vec::new(),
    }
}

/// The case's variables as JSON.
pub fn vars_json(case: &jiuzhu_engine::core::InstanceState) -> Map<String, Json> {
    case.vars
        .iter()
        .map(|(name, value)| (name.clone(), value.to_json()))
        .collect()
}

/// The assessment as the pages show it: the key figures as money, the reasons, and the
/// trace as lines of text (label: value — the rules that matched).
pub fn assessment_view(assessment: Option<&Json>) -> Option<Json> {
    let a = assessment.filter(|a| a.is_object())?;
    let money = |key: &str| {
        a.get(key)
            .and_then(Json::as_str)
            .and_then(|v| v.parse().ok())
            .map(render::money)
    };
    let text = |v: &Json| match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    };
    let trace: Vec<String> = a
        .get("trace")
        .and_then(Json::as_array)
        .map(|entries| {
            entries
                .iter()
                .map(|t| {
                    let label = t
                        .get("label")
                        .and_then(Json::as_str)
                        .filter(|l| !l.is_empty())
                        .or_else(|| t.get("name").and_then(Json::as_str))
                        .unwrap_or("");
                    let member = t
                        .get("member")
                        .and_then(Json::as_str)
                        .map(|m| format!("（{m}）"))
                        .unwrap_or_default();
                    let value = t.get("value").map(text).unwrap_or_default();
                    let matched: Vec<String> = t
                        .get("matched")
                        .and_then(Json::as_array)
                        .map(|m| m.iter().map(text).collect())
                        .unwrap_or_default();
                    if matched.is_empty() {
                        format!("{label}{member}：{value}")
                    } else {
                        format!("{label}{member}：{value} — {}", matched.join("；"))
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    Some(serde_json::json!({
        "eligible": a.get("eligible").and_then(Json::as_bool).unwrap_or(false),
        "category": a.get("category").and_then(Json::as_str),
        "standard": money("standard"),
        "per_capita_income": money("per_capita_income"),
        "base_amount": money("base_amount"),
        "monthly_amount": money("monthly_amount"),
        "reasons": a.get("reasons").and_then(Json::as_array).map(|r| r.iter().map(text).collect::<Vec<_>>()).unwrap_or_default(),
        "trace": trace,
    }))
}

/// Colleagues a task can be handed to: users of the org with one of its roles in a unit
/// covering the task's unit (the core checks again).
fn colleagues(state: &AppState, roles: &[String], unit: &str, me: &str) -> Vec<(String, String)> {
    state
        .engine
        .project
        .org
        .iter()
        .flat_map(|org| org.users())
        .filter(|u| u.id != me)
        .filter(|u| u.roles.iter().any(|r| roles.contains(r)))
        .filter(|u| jiuzhu_engine::core::unit_contains(&u.unit, unit))
        .map(|u| (u.id.clone(), jiuzhu_engine::privacy::mask_name(&u.name)))
        .collect()
}

/// Renders the task page; `values` and `errors` are what was posted and refused.
async fn render_task(
    state: &AppState,
    staff: &Staff,
    id: &str,
    posted: Option<Map<String, Json>>,
    errors: BTreeMap<String, String>,
    general: Option<String>,
) -> WebResult {
    let task = visible_open_task(state, staff, id).await?;
    let (row, def, case) = state.engine.load(&task.instance_id).await?;
    let specs = form_of(&def, &task.node_id);
    let vars = vars_json(&case);
    // A household field starts from the case's household; other fields start empty
    // (defaults are applied by the engine when a field is left empty).
    let mut values: Map<String, Json> = Map::new();
    for spec in &specs {
        if let Some(value) = vars.get(&spec.name)
            && matches!(spec.ty, jiuzhu_rules::Type::Object { .. })
        {
            values.insert(spec.name.clone(), value.clone());
        }
    }
    if let Some(posted) = posted {
        values.extend(posted);
    }
    let open = case.tasks.iter().find(|t| t.id == id);
    let holder = open.and_then(|t| t.claimed_by.clone());
    let roles = open.map(|t| t.roles.clone()).unwrap_or_default();
    let mut context = staff.context(state, "queue");
    context.insert(
        "task",
        &serde_json::json!({
            "id": task.id,
            "step": task.label,
            "node": task.node_id,
            "unit": task.unit,
            "due_at": task.due_at.map(render::local_time),
            "holder": holder,
            "mine": holder.as_deref() == Some(staff.principal.user.as_str()),
        }),
    );
    let mut masked_vars = Json::Object(vars.clone());
    crate::mask::mask_json(&mut masked_vars);
    context.insert(
        "case",
        &serde_json::json!({
            "id": row.id,
            "process_name": def.name,
            "unit": row.unit,
            "status": row.status,
            "version": row.version,
            "applicant": vars.get("applicant_name").and_then(Json::as_str)
                .map(jiuzhu_engine::privacy::mask_name),
        }),
    );
    context.insert(
        "assessment",
        &assessment_view(masked_vars.get("assessment")),
    );
    context.insert("fields", &fields::views(&specs, &values, &errors));
    context.insert("errors", &(!errors.is_empty() || general.is_some()));
    context.insert("general_error", &general);
    context.insert(
        "colleagues",
        &colleagues(state, &roles, &task.unit, &staff.principal.user),
    );
    context.insert("token", &staff.form_token(state).await?);
    context.insert("claim_token", &staff.form_token(state).await?);
    context.insert("handover_token", &staff.form_token(state).await?);
    Ok(page(render::render("task.html", &context)?))
}

/// `GET /tasks/{id}`.
pub async fn page_get(
    State(state): State<Arc<AppState>>,
    staff: Staff,
    Path(id): Path<String>,
) -> WebResult {
    render_task(&state, &staff, &id, None, BTreeMap::new(), None).await
}

/// `POST /tasks/{id}`: completes the task with the posted form.
pub async fn complete(
    State(state): State<Arc<AppState>>,
    staff: Staff,
    Path(id): Path<String>,
    form: Posted,
) -> WebResult {
    let now = state.engine.now();
    csrf::check(&state.db, &staff.session, form.one(csrf::FIELD), now).await?;
    let task = visible_open_task(&state, &staff, &id).await?;
    let (row, def, case) = state.engine.load(&task.instance_id).await?;
    // The version the page was rendered at: not a number, or one the case has not
    // reached, means the page was tampered with.
    let rendered_at = form
        .one("_version")
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|v| *v >= 1 && *v <= row.version)
        .ok_or_else(|| {
            WebError::bad_request("表单中的隐藏字段被修改过，已拒绝。请重新打开任务页面。")
        })?;
    let specs = form_of(&def, &task.node_id);
    let data = fields::data_of(&specs, &form, &vars_json(&case));
    let engine_data = match jiuzhu_rules::Value::from_json(&Json::Object(data.clone())) {
        jiuzhu_rules::Value::Object(map) => map,
        _ => BTreeMap::new(),
    };
    match state
        .engine
        .complete(&id, &staff.principal.actor(), engine_data)
        .await
    {
        Ok(report) => {
            let _ = rendered_at;
            let next = if report.instance.status == "active" {
                "/queue?done=1".to_string()
            } else {
                format!("/cases/{}", report.instance.id)
            };
            Ok(Redirect::to(&next).into_response())
        }
        Err(EngineError::Step(jiuzhu_engine::core::StepError::InvalidData { path, message })) => {
            let (field, text) = fields::field_error(&path, &message);
            let known = specs.iter().any(|s| s.name == field);
            let (errors, general) = if known {
                (BTreeMap::from([(field, text)]), None)
            } else {
                (BTreeMap::new(), Some(format!("“{field}”：{text}")))
            };
            let mut response =
                render_task(&state, &staff, &id, Some(data), errors, general).await?;
            *response.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            Ok(response)
        }
        Err(error) => Err(WebError::from(error)),
    }
}
