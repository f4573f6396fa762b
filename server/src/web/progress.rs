//! The applicant's progress page (public, no login): the case number and the last six
//! characters of an ID number of the case → where the case stands, in plain Chinese,
//! with no personal data beyond what was typed. A wrong suffix gives exactly the answer
//! of an unknown case, the suffix is compared without an early exit, and every lookup
//! counts against the address in the login throttle table, so numbers cannot be tried
//! in bulk.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use jiuzhu_engine::core::{InstanceState, Status};
use jiuzhu_engine::lang::model::Definition;
use jiuzhu_engine::store::search::id_numbers;

use super::post::Posted;
use super::{WebResult, login, page, render};
use crate::app::AppState;
use crate::auth::same;

/// Characters of the ID number the applicant types.
pub const SUFFIX_LEN: usize = 6;

/// The page's templates (registered with the others by `render`).
pub const TEMPLATES: &[(&str, &str)] = &[(
    "progress.html",
    include_str!("../../templates/progress.html"),
)];

/// `/progress`.
pub fn router() -> Router<Arc<AppState>> {
    Router::new().route("/progress", get(form).post(lookup))
}

/// What the page shows.
enum Answer {
    Form,
    Unknown,
    Limited,
    Found(serde_json::Value),
}

fn show(answer: Answer, case_no: &str) -> WebResult {
    let mut context = tera::Context::new();
    context.insert("case_no", case_no);
    let status = match &answer {
        Answer::Form => StatusCode::OK,
        Answer::Unknown => {
            context.insert(
                "error",
                "没有查到与该案件编号和身份证号后六位相符的申请。请核对后重试，或向受理的乡镇（街道）咨询。",
            );
            StatusCode::OK
        }
        Answer::Limited => {
            context.insert("error", "查询次数过多，请稍后再试。");
            StatusCode::TOO_MANY_REQUESTS
        }
        Answer::Found(found) => {
            context.insert("found", found);
            StatusCode::OK
        }
    };
    let mut response = page(render::render("progress.html", &context)?);
    *response.status_mut() = status;
    Ok(response)
}

/// `GET /progress`: the form.
pub async fn form() -> WebResult {
    show(Answer::Form, "")
}

/// `POST /progress`: a lookup.
pub async fn lookup(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: Posted,
) -> WebResult {
    let case_no = form.one("case").unwrap_or_default().trim().to_string();
    let suffix = form.one("suffix").unwrap_or_default().trim().to_uppercase();
    let config = &state.config.auth;
    let now = state.engine.now();
    let since = now - config.failure_window;
    let subject = format!("progress:{}", login::client_address(&state, &headers, peer));
    if state.db.login_failures(&subject, since).await? >= config.max_failures_per_address {
        return show(Answer::Limited, &case_no);
    }
    state
        .db
        .record_login_failure(std::slice::from_ref(&subject), now, since)
        .await?;
    if case_no.is_empty() || suffix.chars().count() != SUFFIX_LEN {
        return show(Answer::Unknown, &case_no);
    }
    let Some(row) = state.engine.store.load_instance(&case_no).await? else {
        return show(Answer::Unknown, &case_no);
    };
    let (row, def, case) = state.engine.load(&row.id).await?;
    let vars = serde_json::Value::Object(
        case.vars
            .iter()
            .map(|(k, v)| (k.clone(), v.to_json()))
            .collect(),
    );
    // Every ID number is compared, matching or not, without an early exit.
    let matched = id_numbers(&vars).iter().fold(false, |acc, number| {
        let number = number.trim().to_uppercase();
        let tail: String = number
            .chars()
            .skip(number.chars().count().saturating_sub(SUFFIX_LEN))
            .collect();
        same(&tail, &suffix) | acc
    });
    if !matched {
        return show(Answer::Unknown, &case_no);
    }
    let found = serde_json::json!({
        "process_name": def.name,
        "stage": stage(&def, &case),
        "started": render::local_time(row.created_at),
        "updated": render::local_time(row.updated_at),
    });
    show(Answer::Found(found), &case_no)
}

/// Where the case stands, in words for a citizen.
pub fn stage(def: &Definition, case: &InstanceState) -> String {
    match case.status {
        Status::Active => {
            let mut steps: Vec<String> = case
                .tokens
                .iter()
                .filter_map(|t| def.node_index(&t.node).and_then(|i| def.nodes.get(i)))
                .map(|node| node.name.clone())
                .collect();
            steps.dedup();
            if steps.is_empty() {
                "您的申请正在办理中。".to_string()
            } else {
                format!(
                    "您的申请正在办理中，目前处于“{}”环节。",
                    steps.join("”“")
                )
            }
        }
        Status::Completed => match case.outcome.as_deref() {
            Some("approved") => {
                "您的申请已审核确认，决定给予救助。决定通知书由受理的乡镇（街道）送达，救助金自批准的次月起按月发放。".to_string()
            }
            Some("rejected") => {
                "您的申请经审核不符合条件，决定不予批准。书面决定及理由由受理的乡镇（街道）送达；如有异议，可以依法申请行政复议或者提起行政诉讼。".to_string()
            }
            _ => "您的申请已办结。".to_string(),
        },
        Status::Terminated => "您的申请已终止办理（例如已撤回）。如有疑问，请向受理的乡镇（街道）咨询。".to_string(),
    }
}
