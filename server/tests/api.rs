//! The server over HTTP: a real listener on 127.0.0.1 (ephemeral port) in front of an
//! engine on a real database (a SQLite file, and a PostgreSQL schema), with a manual clock
//! so session expiry is tested without sleeping.

mod common;

use std::collections::BTreeMap;

use anyhow::{Context as _, Result, bail, ensure};
use chrono::Duration;
use common::*;
use jiuzhu_engine::clock::Clock;
use jiuzhu_server::AuthConfig;
use jiuzhu_testkit::Db;
use reqwest::Method;
use reqwest::header;
use serde_json::{Value, json};

/// The users of the tests: two townships' clerks and staff, and the county.
const USERS: &[(&str, &str, &str)] = &[
    ("zx_clerk", "township_clerk", "双鸭山市/尖山区/中心站街道"),
    ("zx_staff1", "township_staff", "双鸭山市/尖山区/中心站街道"),
    ("fa_clerk", "township_clerk", "双鸭山市/尖山区/富安街道"),
    ("fa_staff1", "township_staff", "双鸭山市/尖山区/富安街道"),
    ("county_staff1", "county_staff", "双鸭山市/尖山区"),
];

async fn setup(db: Db) -> (Ctx, Teardown) {
    setup_with(db, USERS, 3).await
}

// ------------------------------------------------------------------- logins

async fn login_sets_a_strict_http_only_session_cookie(ctx: Ctx) -> Result<()> {
    let answer = ctx.login_from("zx_clerk", PASSWORD, "192.0.2.1").await?;
    ensure!(answer.status == 200, "{}", answer.body);
    ensure!(answer.body["user"] == "zx_clerk" && answer.body["unit"] == USERS[0].2);
    let cookie = answer.headers[header::SET_COOKIE].to_str()?.to_string();
    let attributes: Vec<&str> = cookie.split(';').map(str::trim).collect();
    ensure!(
        attributes[0].starts_with("jiuzhu_session=") && attributes[0].len() == 15 + 64,
        "{cookie}"
    );
    for wanted in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        ensure!(attributes.contains(&wanted), "{wanted} missing: {cookie}");
    }
    ensure!(
        !attributes.contains(&"Secure"),
        "plain HTTP gets no Secure: {cookie}"
    );
    // Through the trusted proxy over TLS the cookie is Secure.
    let answer = ctx
        .send(
            Method::POST,
            "/api/login",
            Auth::None,
            Some(json!({"user": "zx_clerk", "password": PASSWORD})),
            &[("x-forwarded-proto", "https")],
        )
        .await?;
    ensure!(answer.status == 200);
    let cookie = answer.headers[header::SET_COOKIE].to_str()?;
    ensure!(cookie.split(';').any(|a| a.trim() == "Secure"), "{cookie}");
    // The session id is stored hashed: the cookie's value is nowhere in the table.
    let session = ctx.login("zx_clerk").await?;
    let me = ctx.get("/api/me", Auth::Session(&session, None)).await?;
    ensure!(
        me.status == 200 && me.body["via"] == "session",
        "{}",
        me.body
    );
    ensure!(
        ctx.state
            .db
            .session(&session.cookie, ctx.clock.now(), &AuthConfig::default())
            .await?
            .is_some()
    );
    let (_, user) = ctx
        .state
        .db
        .session_user(&session.cookie, ctx.clock.now(), &AuthConfig::default())
        .await?
        .context("live session not found")?;
    ensure!(user.is_some_and(|u| u.id == "zx_clerk" && !u.disabled));
    ensure!(
        ctx.state
            .db
            .session(
                &jiuzhu_server::secrets::digest(&session.cookie),
                ctx.clock.now(),
                &AuthConfig::default()
            )
            .await?
            .is_none()
    );
    Ok(())
}

async fn wrong_password_unknown_and_disabled_users_are_refused(ctx: Ctx) -> Result<()> {
    let wrong = ctx
        .login_from("zx_clerk", "not the password", "192.0.2.2")
        .await?;
    wrong.expect_problem(401, "unauthenticated")?;
    ensure!(wrong.headers.contains_key(header::WWW_AUTHENTICATE));
    ensure!(wrong.headers.get(header::SET_COOKIE).is_none());
    // No password set (fa_staff1) and no such user: the same answer.
    ctx.login_from("fa_staff1", PASSWORD, "192.0.2.2")
        .await?
        .expect_problem(401, "unauthenticated")?;
    ctx.login_from("nobody", PASSWORD, "192.0.2.2")
        .await?
        .expect_problem(401, "unauthenticated")?;
    // A disabled user cannot log in, and their live session ends.
    let session = ctx.login("zx_staff1").await?;
    ctx.state
        .db
        .set_disabled("zx_staff1", true, ctx.clock.now())
        .await?;
    ctx.login_from("zx_staff1", PASSWORD, "192.0.2.3")
        .await?
        .expect_problem(401, "unauthenticated")?;
    ctx.get("/api/me", Auth::Session(&session, None))
        .await?
        .expect_problem(401, "unauthenticated")?;
    Ok(())
}

async fn an_account_locks_after_failures_until_the_window_passes(ctx: Ctx) -> Result<()> {
    for i in 0..3 {
        // Different addresses: this is the account's limit, not the address's.
        let address = format!("198.51.100.{i}");
        ctx.login_from("zx_clerk", "wrong password", &address)
            .await?
            .expect_problem(401, "unauthenticated")?;
    }
    let locked = ctx.login_from("zx_clerk", PASSWORD, "198.51.100.9").await?;
    locked.expect_problem(429, "locked")?;
    ensure!(locked.headers.contains_key(header::RETRY_AFTER));
    // Other accounts are not affected.
    ensure!(
        ctx.login_from("zx_staff1", PASSWORD, "198.51.100.9")
            .await?
            .status
            == 200
    );
    ctx.clock.advance(Duration::minutes(16));
    ensure!(
        ctx.login_from("zx_clerk", PASSWORD, "198.51.100.9")
            .await?
            .status
            == 200
    );
    Ok(())
}

async fn an_address_is_rate_limited_after_failures(ctx: Ctx) -> Result<()> {
    // Spread over accounts (so none locks), from one address.
    for i in 0..6 {
        let user = format!("guess{}", i % 2);
        ctx.login_from(&user, "wrong password", "203.0.113.7")
            .await?
            .expect_problem(401, "unauthenticated")?;
    }
    let limited = ctx.login_from("zx_clerk", PASSWORD, "203.0.113.7").await?;
    limited.expect_problem(429, "rate_limited")?;
    ensure!(limited.headers.contains_key(header::RETRY_AFTER));
    // Another address is served.
    ensure!(
        ctx.login_from("zx_clerk", PASSWORD, "203.0.113.8")
            .await?
            .status
            == 200
    );
    Ok(())
}

async fn sessions_expire_when_idle_and_absolutely_on_the_clock(ctx: Ctx) -> Result<()> {
    let session = ctx.login("zx_clerk").await?;
    ctx.clock.advance(Duration::minutes(29));
    ensure!(
        ctx.get("/api/me", Auth::Session(&session, None))
            .await?
            .status
            == 200
    );
    // Activity moved the idle window: 29 more minutes is still fine.
    ctx.clock.advance(Duration::minutes(29));
    ensure!(
        ctx.get("/api/me", Auth::Session(&session, None))
            .await?
            .status
            == 200
    );
    ctx.clock.advance(Duration::minutes(31));
    ctx.get("/api/me", Auth::Session(&session, None))
        .await?
        .expect_problem(401, "unauthenticated")?;
    // However busy, a session ends 12 hours after login.
    let busy = ctx.login("zx_clerk").await?;
    for _ in 0..(12 * 60 / 20 - 1) {
        ctx.clock.advance(Duration::minutes(20));
        let me = ctx.get("/api/me", Auth::Session(&busy, None)).await?;
        ensure!(me.status == 200, "{}", me.body);
    }
    ctx.clock.advance(Duration::minutes(20));
    ctx.get("/api/me", Auth::Session(&busy, None))
        .await?
        .expect_problem(401, "unauthenticated")?;
    Ok(())
}

async fn logout_ends_the_session(ctx: Ctx) -> Result<()> {
    let session = ctx.login("zx_clerk").await?;
    // Logout changes state: it needs the CSRF token too.
    ctx.post("/api/logout", Auth::Session(&session, None), json!({}))
        .await?
        .expect_problem(403, "csrf")?;
    let out = ctx
        .post(
            "/api/logout",
            Auth::Session(&session, Some(&session.csrf)),
            json!({}),
        )
        .await?;
    ensure!(out.status == 204, "{}", out.status);
    let cleared = out.headers[header::SET_COOKIE].to_str()?;
    ensure!(cleared.contains("Max-Age=0"), "{cleared}");
    ctx.get("/api/me", Auth::Session(&session, None))
        .await?
        .expect_problem(401, "unauthenticated")?;
    Ok(())
}

async fn cookie_requests_that_change_state_need_their_csrf_token(ctx: Ctx) -> Result<()> {
    let start = json!({"process": "dibao", "data": household()});
    let session = ctx.login("zx_clerk").await?;
    let other = ctx.login("fa_clerk").await?;
    let old = ctx.login("zx_clerk").await?;
    ensure!(
        ctx.post(
            "/api/logout",
            Auth::Session(&old, Some(&old.csrf)),
            json!({})
        )
        .await?
        .status
            == 204
    );
    ctx.post("/api/cases", Auth::Session(&session, None), start.clone())
        .await?
        .expect_problem(403, "csrf")?;
    // Another session's token, and the token of an ended session, are refused.
    ctx.post(
        "/api/cases",
        Auth::Session(&session, Some(&other.csrf)),
        start.clone(),
    )
    .await?
    .expect_problem(403, "csrf")?;
    ctx.post(
        "/api/cases",
        Auth::Session(&session, Some(&old.csrf)),
        start.clone(),
    )
    .await?
    .expect_problem(403, "csrf")?;
    let started = ctx
        .post(
            "/api/cases",
            Auth::Session(&session, Some(&session.csrf)),
            start.clone(),
        )
        .await?;
    ensure!(started.status == 201, "{}", started.body);
    // Reads need no token.
    ensure!(
        ctx.get("/api/cases", Auth::Session(&session, None))
            .await?
            .status
            == 200
    );
    // Bearer tokens are not sent by browsers on their own: no CSRF token needed.
    let token = ctx.token("zx_clerk").await?;
    let by_token = ctx.post("/api/cases", Auth::Bearer(&token), start).await?;
    ensure!(by_token.status == 201, "{}", by_token.body);
    Ok(())
}

async fn tokens_work_until_revoked(ctx: Ctx) -> Result<()> {
    let created = ctx
        .state
        .db
        .create_token("fa_staff1", "robot", ctx.clock.now())
        .await?;
    ensure!(created.token.starts_with("jzt_"));
    let me = ctx.get("/api/me", Auth::Bearer(&created.token)).await?;
    ensure!(me.status == 200, "{}", me.body);
    ensure!(
        me.body["user"] == "fa_staff1"
            && me.body["via"] == "token"
            && me.body["unit"] == USERS[3].2
    );
    ensure!(
        ctx.state
            .db
            .revoke_token(&created.id, ctx.clock.now())
            .await?
    );
    let revoked = ctx.get("/api/me", Auth::Bearer(&created.token)).await?;
    revoked.expect_problem(401, "unauthenticated")?;
    ensure!(revoked.headers.contains_key(header::WWW_AUTHENTICATE));
    ctx.get("/api/me", Auth::Bearer("jzt_made_up"))
        .await?
        .expect_problem(401, "unauthenticated")?;
    ctx.get("/api/me", Auth::None)
        .await?
        .expect_problem(401, "unauthenticated")?;
    let listed = ctx.state.db.tokens().await?;
    ensure!(
        listed
            .iter()
            .any(|t| t.id == created.id && t.revoked_at.is_some())
    );
    // The token's user is read with the token on every request: disabling the user
    // refuses the token at once, enabling them lets it in again.
    let other = ctx
        .state
        .db
        .create_token("zx_clerk", "robot", ctx.clock.now())
        .await?;
    let (grant, user) = ctx
        .state
        .db
        .token_user_grant(&other.token)
        .await?
        .context("live token not found")?;
    ensure!(grant.user_id == "zx_clerk" && user.is_some_and(|u| u.id == "zx_clerk"));
    for (disabled, status) in [(true, 401), (false, 200)] {
        ctx.state
            .db
            .set_disabled("zx_clerk", disabled, ctx.clock.now())
            .await?;
        let me = ctx.get("/api/me", Auth::Bearer(&other.token)).await?;
        ensure!(me.status == status, "disabled {disabled}: {}", me.body);
    }
    Ok(())
}

// ------------------------------------------------------------------- authorization

async fn each_endpoint_answers_each_user_by_unit_and_role(ctx: Ctx) -> Result<()> {
    let mut tokens = BTreeMap::new();
    for (id, _, _) in USERS {
        tokens.insert(*id, ctx.token(id).await?);
    }
    let as_user = |user: &str| Auth::Bearer(tokens[user].as_str());
    let start = |unit_clerk: &'static str| {
        let ctx = &ctx;
        let auth = as_user(unit_clerk);
        async move {
            let answer = ctx
                .post(
                    "/api/cases",
                    auth,
                    json!({"process": "dibao", "data": household()}),
                )
                .await?;
            ensure!(answer.status == 201, "{}", answer.body);
            let case = answer.body["case_id"]
                .as_str()
                .context("case id")?
                .to_string();
            let task = answer.body["tasks_opened"][0]["id"]
                .as_str()
                .context("task id")?
                .to_string();
            Ok::<_, anyhow::Error>((case, task))
        }
    };
    let (case_a, task_a) = start("zx_clerk").await?;
    let (case_b, task_b) = start("fa_clerk").await?;
    // Reads: township A sees A only; township B sees B only; the county sees both.
    let sees = |user: &str| match user {
        "county_staff1" => (true, true),
        u if u.starts_with("zx") => (true, false),
        _ => (false, true),
    };
    for (user, _, _) in USERS {
        let (a, b) = sees(user);
        for (case, visible) in [(&case_a, a), (&case_b, b)] {
            let answer = ctx
                .get(&format!("/api/cases/{case}"), as_user(user))
                .await?;
            if visible {
                ensure!(answer.status == 200, "{user} {case}: {}", answer.body);
                ensure!(answer.body["id"] == case.as_str());
            } else {
                answer
                    .expect_problem(404, "not_found")
                    .with_context(|| format!("{user} reads {case}"))?;
            }
            let message = ctx
                .post(
                    &format!("/api/cases/{case}/messages/extend"),
                    as_user(user),
                    json!({"reason": "调查困难"}),
                )
                .await?;
            match (visible, *user) {
                (false, _) => message
                    .expect_problem(404, "not_found")
                    .with_context(|| format!("{user} messages {case}"))?,
                // The county may send it; whether the case takes it now is the engine's say.
                (true, "county_staff1") => ensure!(
                    message.status == 200 || message.status == 409,
                    "{user} extends {case}: {}",
                    message.body
                ),
                // `extend` is the county's message.
                (true, _) => message
                    .expect_problem(403, "forbidden")
                    .with_context(|| format!("{user} extends {case}"))?,
            }
        }
        let list = ctx.get("/api/cases", as_user(user)).await?;
        ensure!(list.status == 200, "{}", list.body);
        let ids: Vec<&str> = list.body["items"]
            .as_array()
            .context("items")?
            .iter()
            .filter_map(|c| c["id"].as_str())
            .collect();
        ensure!(
            ids.contains(&case_a.as_str()) == a && ids.contains(&case_b.as_str()) == b,
            "{user}: {ids:?}"
        );
        let queue = ctx.get("/api/tasks", as_user(user)).await?;
        let queued: Vec<&str> = queue
            .body
            .as_array()
            .context("tasks")?
            .iter()
            .filter_map(|t| t["id"].as_str())
            .collect();
        let clerk_a = *user == "zx_clerk";
        let clerk_b = *user == "fa_clerk";
        ensure!(
            queued.contains(&task_a.as_str()) == clerk_a
                && queued.contains(&task_b.as_str()) == clerk_b,
            "{user}: {queued:?}"
        );
    }
    // Unknown ids answer exactly as invisible ones do.
    ctx.get("/api/cases/dibao-nope", as_user("zx_clerk"))
        .await?
        .expect_problem(404, "not_found")?;
    // Claims and completions on A's first task: other township 404, wrong role 403, the
    // county (right unit, wrong role) 403, the clerk of A 200.
    for (user, status, code) in [
        ("fa_clerk", 404, "not_found"),
        ("fa_staff1", 404, "not_found"),
        ("zx_staff1", 403, "forbidden"),
        ("county_staff1", 403, "forbidden"),
    ] {
        ctx.post(
            &format!("/api/tasks/{task_a}/claim"),
            as_user(user),
            json!({}),
        )
        .await?
        .expect_problem(status, code)
        .with_context(|| format!("{user} claims"))?;
        ctx.post(
            &format!("/api/tasks/{task_a}/complete"),
            as_user(user),
            json!({"complete": true}),
        )
        .await?
        .expect_problem(status, code)
        .with_context(|| format!("{user} completes"))?;
    }
    let claimed = ctx
        .post(
            &format!("/api/tasks/{task_a}/claim"),
            as_user("zx_clerk"),
            json!({}),
        )
        .await?;
    ensure!(
        claimed.status == 200 && claimed.body["assignee"] == "zx_clerk",
        "{}",
        claimed.body
    );
    // The form is checked by the engine.
    ctx.post(
        &format!("/api/tasks/{task_a}/complete"),
        as_user("zx_clerk"),
        json!({"complete": "yes"}),
    )
    .await?
    .expect_problem(422, "invalid_data")?;
    let done = ctx
        .post(
            &format!("/api/tasks/{task_a}/complete"),
            as_user("zx_clerk"),
            json!({"complete": true}),
        )
        .await?;
    ensure!(done.status == 200, "{}", done.body);
    ensure!(
        done.body["tasks_opened"]
            .as_array()
            .is_some_and(|t| t.len() == 2),
        "{}",
        done.body
    );
    // Done: a second completion finds no open task.
    let again = ctx
        .post(
            &format!("/api/tasks/{task_a}/complete"),
            as_user("zx_clerk"),
            json!({"complete": true}),
        )
        .await?;
    ensure!(
        again.status == 404 || again.status == 409,
        "{} {}",
        again.status,
        again.body
    );
    // Details mask personal data.
    let detail = ctx
        .get(&format!("/api/cases/{case_a}"), as_user("county_staff1"))
        .await?;
    ensure!(detail.body["applicant"] == "张*", "{}", detail.body);
    ensure!(
        detail.body["variables"]["applicant_name"] == "张*",
        "{}",
        detail.body
    );
    ensure!(
        detail.body["variables"]["bank"]["account"] == "************7890",
        "{}",
        detail.body
    );
    ensure!(
        detail.body["variables"]["bank"]["id_number"] == "230***********1234",
        "{}",
        detail.body
    );
    ensure!(!detail.body.to_string().contains("秀兰"), "{}", detail.body);
    // Filters.
    let none = ctx
        .get("/api/cases?process=tekun", as_user("county_staff1"))
        .await?;
    ensure!(
        none.body["items"].as_array().is_some_and(Vec::is_empty),
        "{}",
        none.body
    );
    let paged = ctx
        .get("/api/cases?limit=1&offset=1", as_user("county_staff1"))
        .await?;
    ensure!(
        paged.body["items"].as_array().is_some_and(|i| i.len() == 1),
        "{}",
        paged.body
    );
    let _ = task_b;
    Ok(())
}

// ------------------------------------------------------------------- the API itself

async fn openapi_lists_every_route(ctx: Ctx) -> Result<()> {
    let answer = ctx.get("/api/openapi.json", Auth::None).await?;
    ensure!(answer.status == 200);
    ensure!(
        answer.body["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3."))
    );
    let paths = answer.body["paths"].as_object().context("paths")?;
    for (path, method) in [
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
        ("/api/openapi.json", "get"),
        ("/api/login", "post"),
        ("/api/logout", "post"),
        ("/api/me", "get"),
        ("/api/cases", "get"),
        ("/api/cases", "post"),
        ("/api/cases/{id}", "get"),
        ("/api/cases/{id}/messages/{name}", "post"),
        ("/api/tasks", "get"),
        ("/api/tasks/{id}/claim", "post"),
        ("/api/tasks/{id}/complete", "post"),
    ] {
        ensure!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} missing"
        );
    }
    ensure!(answer.body["components"]["schemas"]["Problem"].is_object());
    Ok(())
}

async fn bad_bodies_get_problem_details(ctx: Ctx) -> Result<()> {
    let token = ctx.token("zx_clerk").await?;
    let url = format!("{}/api/cases", ctx.base);
    let send = |body: Vec<u8>, content_type: &'static str| {
        ctx.http
            .post(&url)
            .bearer_auth(&token)
            .header(header::CONTENT_TYPE, content_type)
            .body(body)
            .send()
    };
    let read = |response: reqwest::Response| async move {
        let status = response.status();
        let headers = response.headers().clone();
        let body = serde_json::from_slice(&response.bytes().await?).unwrap_or(Value::Null);
        Ok::<_, anyhow::Error>(Answer {
            status,
            headers,
            body,
        })
    };
    read(send(b"{\"process\": ".to_vec(), "application/json").await?)
        .await?
        .expect_problem(400, "bad_json")?;
    read(
        send(
            b"process=dibao".to_vec(),
            "application/x-www-form-urlencoded",
        )
        .await?,
    )
    .await?
    .expect_problem(415, "unsupported_media_type")?;
    let mut big = b"{\"process\": \"dibao\", \"data\": {\"pad\": \"".to_vec();
    big.extend(std::iter::repeat_n(b'x', 1024 * 1024 + 10));
    big.extend(b"\"}}");
    read(send(big, "application/json").await?)
        .await?
        .expect_problem(413, "payload_too_large")?;
    // Unknown fields in a login body are refused.
    let login = ctx
        .post(
            "/api/login",
            Auth::None,
            json!({"user": "zx_clerk", "password": PASSWORD, "admin": true}),
        )
        .await?;
    login.expect_problem(422, "invalid_request")?;
    // An unknown process, and data that is not an object.
    ctx.post(
        "/api/cases",
        Auth::Bearer(&token),
        json!({"process": "nope"}),
    )
    .await?
    .expect_problem(404, "not_found")?;
    ctx.post(
        "/api/cases",
        Auth::Bearer(&token),
        json!({"process": "dibao", "data": [1]}),
    )
    .await?
    .expect_problem(422, "invalid_data")?;
    ctx.get("/api/nothing-here", Auth::None)
        .await?
        .expect_problem(404, "not_found")?;
    Ok(())
}

/// Start data with several problems: 422 `invalid_data` with every problem at its JSON
/// path in the problem's `errors`, and no case started.
async fn bad_start_data_gets_every_problem_at_its_path(ctx: Ctx) -> Result<()> {
    let token = ctx.token("zx_clerk").await?;
    let refused = ctx
        .post(
            "/api/cases",
            Auth::Bearer(&token),
            json!({"process": "dibao", "data": {
                "applicant_name": "",
                "area": "urban",
                "household": {
                    "members": [{"id": "m1", "birth_date": "2030-01-01",
                                 "income": [{"kind": "salary", "monthly": "10"}]}],
                    "savings": "-5"
                },
                "bank": {"account": "12", "id_number": "230502197809123327"}
            }}),
        )
        .await?;
    refused.expect_problem(422, "invalid_data")?;
    let problem = &refused;
    let paths: Vec<&str> = problem.body["errors"]
        .as_array()
        .context("errors")?
        .iter()
        .filter_map(|e| e["path"].as_str())
        .collect();
    ensure!(
        paths
            == [
                "$.applicant_name",
                "$.bank.account",
                "$.bank.id_number",
                "$.household.members[0].birth_date",
                "$.household.members[0].income[0].kind",
                "$.household.savings",
            ],
        "{}",
        problem.body
    );
    ensure!(
        problem.body["errors"][4]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("unknown income kind \"salary\"")),
        "{}",
        problem.body
    );
    // The ID number is never quoted back.
    ensure!(!problem.body.to_string().contains("230502197809123327"));
    let listed = ctx.get("/api/cases", Auth::Bearer(&token)).await?;
    ensure!(
        listed.body["items"].as_array().is_some_and(Vec::is_empty),
        "{}",
        listed.body
    );
    Ok(())
}

async fn probes_and_metrics_answer(ctx: Ctx) -> Result<()> {
    ensure!(ctx.get("/healthz", Auth::None).await?.body["status"] == "ok");
    ensure!(ctx.get("/readyz", Auth::None).await?.body["status"] == "ready");
    let token = ctx.token("zx_clerk").await?;
    ctx.get("/api/cases/dibao-x", Auth::Bearer(&token))
        .await?
        .expect_problem(404, "not_found")?;
    let started = ctx
        .post(
            "/api/cases",
            Auth::Bearer(&token),
            json!({"process": "dibao", "data": household()}),
        )
        .await?;
    ensure!(started.status == 201);
    let text = ctx
        .http
        .get(format!("{}/metrics", ctx.base))
        .send()
        .await?
        .text()
        .await?;
    for line in [
        "jiuzhu_http_requests_total{method=\"GET\",route=\"/api/cases/{id}\",status=\"404\"} 1",
        "jiuzhu_http_requests_total{method=\"POST\",route=\"/api/cases\",status=\"201\"} 1",
        "jiuzhu_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 1",
        "jiuzhu_active_cases{process=\"dibao\"} 1",
        "jiuzhu_open_tasks 1",
    ] {
        if !text.contains(line) {
            bail!("{line} missing from\n{text}");
        }
    }
    ensure!(
        text.contains(
            "jiuzhu_http_request_duration_seconds_bucket{route=\"/api/cases\",le=\"+Inf\"} 1"
        ),
        "{text}"
    );
    Ok(())
}

jiuzhu_testkit::on_both_databases!(
    login_sets_a_strict_http_only_session_cookie,
    wrong_password_unknown_and_disabled_users_are_refused,
    an_account_locks_after_failures_until_the_window_passes,
    an_address_is_rate_limited_after_failures,
    sessions_expire_when_idle_and_absolutely_on_the_clock,
    logout_ends_the_session,
    cookie_requests_that_change_state_need_their_csrf_token,
    tokens_work_until_revoked,
    each_endpoint_answers_each_user_by_unit_and_role,
    openapi_lists_every_route,
    bad_bodies_get_problem_details,
    bad_start_data_gets_every_problem_at_its_path,
    probes_and_metrics_answer,
);
