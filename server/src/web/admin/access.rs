//! Users (add, disable or enable, reset a password), the roles and units they hold, and
//! API tokens (a new token is shown once; revoking is immediate).

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::State;

use super::{Admin, required, show};
use crate::app::AppState;
use crate::users::{UserError, UserRecord};
use crate::web::post::Posted;
use crate::web::{WebError, WebResult, render, role_label};

/// Shortest password an administrator may set.
const MIN_PASSWORD: usize = 8;

fn user_error(error: UserError) -> WebError {
    match error {
        UserError::NotFound(_) => WebError::not_found(),
        UserError::Exists(id) => {
            WebError::new("duplicate", format!("用户 {id} 已经存在，没有重复添加。"))
        }
        UserError::Invalid(what) => WebError::bad_request(format!("用户信息不完整：{what}")),
        UserError::Db(e) => WebError::from(e),
        UserError::Secret(e) => WebError::from(crate::problem::ApiError::internal(&e)),
    }
}

/// The users page with an optional message.
async fn users_page(state: &AppState, admin: &Admin, flash: Option<String>) -> WebResult {
    let users = state.db.users().await?;
    let units: BTreeSet<&str> = users.iter().map(|u| u.unit.as_str()).collect();
    let roles: Vec<(String, String)> = state
        .engine
        .project
        .org
        .as_ref()
        .map(|org| org.role_ids().into_iter().collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|role| {
            let label = role_label(state, &role);
            (role, label)
        })
        .collect();
    let mut rows = Vec::new();
    for user in &users {
        rows.push(serde_json::json!({
            "id": user.id,
            "name": user.name,
            "unit": user.unit,
            "roles": user.roles.iter().map(|r| role_label(state, r)).collect::<Vec<_>>(),
            "disabled": user.disabled,
            "has_password": user.has_password,
            "token": admin.0.form_token(state).await?,
        }));
    }
    let mut context = admin.context(state, "users");
    context.insert("users", &rows);
    context.insert("units", &units);
    context.insert("roles", &roles);
    context.insert("add_token", &admin.0.form_token(state).await?);
    if let Some(flash) = flash {
        context.insert("flash", &flash);
    }
    show("admin/users.html", &context)
}

/// `GET /admin/users`.
pub async fn users(State(state): State<Arc<AppState>>, admin: Admin) -> WebResult {
    users_page(&state, &admin, None).await
}

/// `POST /admin/users`: `action` = `add`, `disable`, `enable` or `password`.
pub async fn user_action(
    State(state): State<Arc<AppState>>,
    admin: Admin,
    form: Posted,
) -> WebResult {
    let now = state.engine.now();
    let flash = match form.one("action") {
        Some("add") => {
            admin
                .accept(
                    &state,
                    &form,
                    &["action", "id", "name", "unit", "role", "password"],
                )
                .await?;
            let roles: Vec<String> = form
                .all("role")
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map(String::from)
                .collect();
            if roles.is_empty() {
                return Err(WebError::bad_request("请至少选择一个角色，没有添加用户。"));
            }
            let known = state.engine.project.org.as_ref().map(|org| org.role_ids());
            if let Some(unknown) = roles
                .iter()
                .find(|r| known.as_ref().is_some_and(|k| !k.contains(*r)))
            {
                return Err(WebError::bad_request(format!(
                    "没有角色“{unknown}”，没有添加用户。"
                )));
            }
            let password = form.one("password").filter(|p| !p.is_empty());
            if password.is_some_and(|p| p.chars().count() < MIN_PASSWORD) {
                return Err(WebError::bad_request(format!(
                    "密码至少 {MIN_PASSWORD} 位，没有添加用户。"
                )));
            }
            let user = UserRecord {
                id: required(&form, "id", "用户名")?.to_string(),
                name: required(&form, "name", "姓名")?.to_string(),
                unit: required(&form, "unit", "单位")?.to_string(),
                roles,
                disabled: false,
                has_password: password.is_some(),
            };
            state
                .db
                .add_user(&user, password, now)
                .await
                .map_err(user_error)?;
            format!("已添加用户 {}。", user.id)
        }
        Some(action @ ("disable" | "enable")) => {
            admin.accept(&state, &form, &["action", "id"]).await?;
            let id = required(&form, "id", "用户名")?;
            let disabled = action == "disable";
            state
                .db
                .set_disabled(id, disabled, now)
                .await
                .map_err(user_error)?;
            if disabled {
                state.db.end_sessions_of(id).await?;
                format!("已停用用户 {id}，其登录已全部结束。")
            } else {
                format!("已启用用户 {id}。")
            }
        }
        Some("password") => {
            admin
                .accept(&state, &form, &["action", "id", "password"])
                .await?;
            let id = required(&form, "id", "用户名")?;
            let password = required(&form, "password", "新密码")?;
            if password.chars().count() < MIN_PASSWORD {
                return Err(WebError::bad_request(format!(
                    "密码至少 {MIN_PASSWORD} 位，密码没有修改。"
                )));
            }
            state
                .db
                .set_password(id, password, now)
                .await
                .map_err(user_error)?;
            state.db.end_sessions_of(id).await?;
            format!("已重置用户 {id} 的密码。")
        }
        _ => return Err(WebError::bad_request("不认识的操作，没有任何内容被修改。")),
    };
    users_page(&state, &admin, Some(flash)).await
}

/// The tokens page; `created` is a token just made, shown this once.
async fn tokens_page(
    state: &AppState,
    admin: &Admin,
    created: Option<(String, String)>,
    flash: Option<String>,
) -> WebResult {
    let tokens = state.db.tokens().await?;
    let mut rows = Vec::new();
    for token in &tokens {
        rows.push(serde_json::json!({
            "id": token.id,
            "user": token.user_id,
            "label": token.label,
            "created_at": render::local_time(token.created_at),
            "revoked_at": token.revoked_at.map(render::local_time),
            "token": if token.revoked_at.is_none() { Some(admin.0.form_token(state).await?) } else { None },
        }));
    }
    let users: Vec<String> = state
        .db
        .users()
        .await?
        .into_iter()
        .filter(|u| !u.disabled)
        .map(|u| u.id)
        .collect();
    let mut context = admin.context(state, "tokens");
    context.insert("tokens", &rows);
    context.insert("users", &users);
    context.insert("create_token", &admin.0.form_token(state).await?);
    context.insert("created", &created);
    if let Some(flash) = flash {
        context.insert("flash", &flash);
    }
    show("admin/tokens.html", &context)
}

/// `GET /admin/tokens`.
pub async fn tokens(State(state): State<Arc<AppState>>, admin: Admin) -> WebResult {
    tokens_page(&state, &admin, None, None).await
}

/// `POST /admin/tokens`: `action` = `create` (user, label) or `revoke` (id).
pub async fn token_action(
    State(state): State<Arc<AppState>>,
    admin: Admin,
    form: Posted,
) -> WebResult {
    let now = state.engine.now();
    match form.one("action") {
        Some("create") => {
            admin
                .accept(&state, &form, &["action", "user", "label"])
                .await?;
            let user = required(&form, "user", "用户")?;
            let label = required(&form, "label", "用途")?;
            match state.db.user(user).await? {
                Some(record) if !record.disabled => {}
                _ => {
                    return Err(WebError::bad_request(
                        "没有该用户或该用户已停用，没有创建令牌。",
                    ));
                }
            }
            let created = state.db.create_token(user, label, now).await?;
            tokens_page(&state, &admin, Some((created.id, created.token)), None).await
        }
        Some("revoke") => {
            admin.accept(&state, &form, &["action", "id"]).await?;
            let id = required(&form, "id", "令牌")?;
            if !state.db.revoke_token(id, now).await? {
                return Err(WebError::new(
                    "duplicate",
                    "该令牌不存在或已经吊销，没有重复操作。",
                ));
            }
            tokens_page(&state, &admin, None, Some(format!("已吊销令牌 {id}。"))).await
        }
        _ => Err(WebError::bad_request("不认识的操作，没有任何内容被修改。")),
    }
}
