//! Hostile requests against a real listener: bodies that are malformed, oversized, of the
//! wrong type, with repeated or unknown keys, over the engine's input caps; credentials
//! that are expired, revoked or replayed; a thousand failed logins. Each gets a clear
//! problem-details answer, leaves the stored cases, tasks, outbox and tokens as they
//! were, and the server answers the next honest request. What `api.rs` already covers
//! (one bad body of each kind, CSRF tokens of other sessions) is not repeated here.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Result, ensure};
use chrono::{Duration, TimeZone, Utc};
use jiuzhu_engine::clock::{Clock, ManualClock};
use jiuzhu_engine::project::Project;
use jiuzhu_engine::runtime::Engine;
use jiuzhu_engine::store::{InstanceFilter, Store};
use jiuzhu_server::{AppState, AuthConfig, ServerConfig, UserRecord};
use jiuzhu_testkit::{Db, Outcome, TestDatabase, report};
use reqwest::header;
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery";

struct Ctx {
    base: String,
    http: reqwest::Client,
    clock: Arc<ManualClock>,
    state: Arc<AppState>,
    _stop: tokio::sync::watch::Sender<bool>,
}

struct Teardown {
    database: TestDatabase,
    store: Store,
}

async fn setup(db: Db) -> (Ctx, Teardown) {
    let database = TestDatabase::create(db, "hostile").await;
    let store = Store::open(&database.url).await.expect("open store");
    let processes = Path::new(env!("CARGO_MANIFEST_DIR")).join("../processes");
    let project = Project::load(&processes).expect("project loads");
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 3, 2, 1, 0, 0)
            .single()
            .expect("time"),
    ));
    let engine = Engine::new(
        store.clone(),
        Arc::new(project),
        clock.clone() as Arc<dyn Clock>,
        "test-node",
    )
    .expect("engine");
    engine.deploy().await.expect("deploy");
    let config = ServerConfig {
        // The defaults: 5 failures lock an account, 20 limit an address.
        auth: AuthConfig::default(),
        trust_proxy: true,
        ..ServerConfig::default()
    };
    let state = AppState::new(Arc::new(engine), config)
        .await
        .expect("server state");
    let user = UserRecord {
        id: "zx_clerk".into(),
        name: "王丽".into(),
        unit: "双鸭山市/尖山区/中心站街道".into(),
        roles: vec!["township_clerk".into()],
        disabled: false,
        has_password: false,
    };
    state
        .db
        .add_user(&user, Some(PASSWORD), clock.now())
        .await
        .expect("add user");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let shutdown = async move {
        let _ = stopped.wait_for(|s| *s).await;
    };
    tokio::spawn(jiuzhu_server::serve(listener, state.clone(), shutdown));
    let ctx = Ctx {
        base,
        http: reqwest::Client::new(),
        clock,
        state,
        _stop: stop,
    };
    (ctx, Teardown { database, store })
}

async fn finish(db: Db, teardown: Teardown, outcome: Outcome) {
    teardown.store.close().await;
    teardown.database.drop().await;
    report(db, outcome);
}

/// What a refused request must leave as it was: cases, open tasks, outbox, tokens.
#[derive(Debug, PartialEq, Eq)]
struct Stored {
    cases: usize,
    open_tasks: i64,
    outbox: i64,
    tokens: usize,
}

impl Ctx {
    async fn stored(&self) -> Result<Stored> {
        let store = &self.state.engine.store;
        let cases = store
            .list_instances(&InstanceFilter {
                limit: 10_000,
                ..InstanceFilter::default()
            })
            .await?
            .len();
        let summary = store.summary().await?;
        Ok(Stored {
            cases,
            open_tasks: summary.open_tasks,
            outbox: summary.pending_outbox,
            tokens: self.state.db.tokens().await?.len(),
        })
    }

    async fn token(&self) -> Result<String> {
        Ok(self
            .state
            .db
            .create_token("zx_clerk", "test", self.clock.now())
            .await?
            .token)
    }

    /// Sends raw bytes with a content type, with these extra headers.
    async fn raw(
        &self,
        path: &str,
        body: Vec<u8>,
        content_type: &str,
        headers: &[(&str, String)],
    ) -> Result<Answer> {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .header(header::CONTENT_TYPE, content_type)
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        Answer::read(request.send().await?).await
    }

    async fn get(&self, path: &str, headers: &[(&str, String)]) -> Result<Answer> {
        let mut request = self.http.get(format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        Answer::read(request.send().await?).await
    }

    async fn login_from(&self, user: &str, password: &str, address: &str) -> Result<Answer> {
        let body = json!({"user": user, "password": password}).to_string();
        self.raw(
            "/api/login",
            body.into_bytes(),
            "application/json",
            &[("x-forwarded-for", address.to_string())],
        )
        .await
    }

    /// The server still serves an honest request.
    async fn still_up(&self, token: &str) -> Result<()> {
        let me = self.get("/api/me", &[bearer(token)]).await?;
        ensure!(me.status == 200, "after the hostile input: {}", me.body);
        Ok(())
    }
}

fn bearer(token: &str) -> (&'static str, String) {
    ("authorization", format!("Bearer {token}"))
}

struct Answer {
    status: u16,
    content_type: String,
    body: Value,
}

impl Answer {
    async fn read(response: reqwest::Response) -> Result<Answer> {
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let bytes = response.bytes().await?;
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Answer {
            status,
            content_type,
            body,
        })
    }

    /// A problem-details answer of `status` and `code` whose detail mentions `mention`.
    fn expect(&self, status: u16, code: &str, mention: &str) -> Result<()> {
        ensure!(
            self.status == status,
            "expected {status}, got {} {}",
            self.status,
            self.body
        );
        ensure!(
            self.content_type == "application/problem+json",
            "content type {}",
            self.content_type
        );
        ensure!(self.body["code"] == code, "code: {}", self.body);
        let detail = self.body["detail"].as_str().unwrap_or_default();
        ensure!(
            detail.contains(mention),
            "detail {detail:?} lacks {mention:?}"
        );
        Ok(())
    }
}

fn household() -> Value {
    json!({
        "applicant_name": "张秀兰",
        "area": "urban",
        "household": {
            "members": [{"id": "m1", "birth_date": "1950-05-01", "income": []}],
            "savings": "6000.00"
        }
    })
}

// ------------------------------------------------------------------- bodies

async fn bad_bodies_store_nothing_and_say_where(ctx: Ctx) -> Result<()> {
    let token = ctx.token().await?;
    let auth = [bearer(&token)];
    let before = ctx.stored().await?;
    let json = "application/json";
    let post = |body: &str| ctx.raw("/api/cases", body.as_bytes().to_vec(), json, &auth);

    // Malformed JSON: the line and column of the fault.
    post("{\"process\": \"dibao\",\n \"data\": {\"a\": }}")
        .await?
        .expect(400, "bad_json", "2:")?;
    // A repeated key (serde_json would keep the last one): refused at its JSON path.
    post(r#"{"process": "dibao", "data": {"household": {"savings": "0.00", "savings": "999999.00"}}}"#)
        .await?
        .expect(400, "duplicate_key", "$.data.household.savings")?;
    post(r#"{"process": "dibao", "process": "tekun"}"#)
        .await?
        .expect(400, "duplicate_key", "$.process")?;
    // Not UTF-8.
    ctx.raw(
        "/api/cases",
        b"{\"process\": \"\xff\xfe\"}".to_vec(),
        json,
        &auth,
    )
    .await?
    .expect(400, "bad_json", "UTF-8")?;
    // A byte-order mark is not JSON.
    post("\u{feff}{\"process\": \"dibao\"}")
        .await?
        .expect(400, "bad_json", "")?;
    // Unknown and mistyped fields: the path of the misfit.
    post(r#"{"process": "dibao", "data": {}, "colour": "red"}"#)
        .await?
        .expect(422, "invalid_request", "colour")?;
    post(r#"{"process": 7}"#)
        .await?
        .expect(422, "invalid_request", "$.process")?;
    // Deep nesting is refused by the parser, before any tree is built.
    let deep = format!(
        "{{\"process\": \"dibao\", \"data\": {{\"x\": {}{}}}}}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    post(&deep).await?.expect(400, "bad_json", "")?;
    // Over the engine's caps (a string of 10,001 characters).
    let long = json!({"process": "dibao", "data": {"applicant_name": "张".repeat(10_001)}});
    post(&long.to_string())
        .await?
        .expect(422, "invalid_data", "string_too_long")?;
    // Wrong content types, and none at all.
    for content_type in ["text/plain", "application/x-www-form-urlencoded", ""] {
        ctx.raw(
            "/api/cases",
            br#"{"process": "dibao"}"#.to_vec(),
            content_type,
            &auth,
        )
        .await?
        .expect(415, "unsupported_media_type", "application/json")?;
    }
    // Over the body limit (1 MiB), on a route that takes a message too.
    let big = format!("{{\"pad\": \"{}\"}}", "x".repeat(2 * 1024 * 1024));
    ctx.raw(
        "/api/cases/none/messages/objection",
        big.into_bytes(),
        json,
        &auth,
    )
    .await?
    .expect(413, "payload_too_large", "")?;
    ensure!(
        ctx.stored().await? == before,
        "a refused body stored something"
    );

    // The same body without its faults is accepted: the refusals above were the faults.
    let good = json!({"process": "dibao", "data": household()});
    let started = post(&good.to_string()).await?;
    ensure!(started.status == 201, "{}", started.body);
    ensure!(ctx.stored().await?.cases == before.cases + 1);
    ctx.still_up(&token).await
}

// ------------------------------------------------------------------- credentials

async fn forged_and_revoked_credentials_store_nothing(ctx: Ctx) -> Result<()> {
    let start = json!({"process": "dibao", "data": household()})
        .to_string()
        .into_bytes();
    let token = ctx.token().await?;
    let revoked = ctx
        .state
        .db
        .create_token("zx_clerk", "to revoke", ctx.clock.now())
        .await?;
    ensure!(
        ctx.state
            .db
            .revoke_token(&revoked.id, ctx.clock.now())
            .await?
    );
    let before = ctx.stored().await?;
    let refused: [&[(&str, String)]; 4] = [
        &[("cookie", "jiuzhu_session=forged".to_string())],
        &[bearer(&revoked.token)],
        &[bearer("jzt_made_up")],
        &[("authorization", "Basic emhfY2xlcms6eA==".to_string())],
    ];
    for headers in refused {
        ctx.raw("/api/cases", start.clone(), "application/json", headers)
            .await?
            .expect(401, "unauthenticated", "")?;
    }
    ensure!(
        ctx.stored().await? == before,
        "a refused request stored something"
    );
    ctx.still_up(&token).await
}

async fn expired_session_and_reused_csrf_are_refused(ctx: Ctx) -> Result<()> {
    let start = json!({"process": "dibao", "data": household()})
        .to_string()
        .into_bytes();
    let login = ctx
        .http
        .post(format!("{}/api/login", ctx.base))
        .json(&json!({"user": "zx_clerk", "password": PASSWORD}))
        .send()
        .await?;
    ensure!(login.status() == 200);
    let cookie = login
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or_default()
        .to_string();
    let body: Value = login.json().await?;
    let csrf = body["csrf_token"].as_str().unwrap_or_default().to_string();
    let session = |csrf: Option<&str>| {
        let mut headers = vec![("cookie", cookie.clone())];
        if let Some(csrf) = csrf {
            headers.push(("x-csrf-token", csrf.to_string()));
        }
        headers
    };
    let before = ctx.stored().await?;
    // No CSRF token, a made-up one, one of the right shape but another value.
    for csrf in [None, Some("forged"), Some(&"0".repeat(csrf.len()) as &str)] {
        ctx.raw(
            "/api/cases",
            start.clone(),
            "application/json",
            &session(csrf),
        )
        .await?
        .expect(403, "csrf", "")?;
    }
    ensure!(ctx.stored().await? == before);
    // The session's own token works, and works again: it is per session, not per request.
    for _ in 0..2 {
        let ok = ctx
            .raw(
                "/api/cases",
                start.clone(),
                "application/json",
                &session(Some(&csrf)),
            )
            .await?;
        ensure!(ok.status == 201, "{}", ok.body);
    }
    let created = ctx.stored().await?;
    // Idle past the timeout (30 min): the same cookie and CSRF token are refused.
    ctx.clock.advance(Duration::minutes(31));
    ctx.raw(
        "/api/cases",
        start.clone(),
        "application/json",
        &session(Some(&csrf)),
    )
    .await?
    .expect(401, "unauthenticated", "")?;
    ctx.get("/api/me", &session(None))
        .await?
        .expect(401, "unauthenticated", "")?;
    ensure!(ctx.stored().await? == created);
    Ok(())
}

// ------------------------------------------------------------------- logins

async fn a_thousand_failed_logins_lock_out_and_the_server_stays_up(ctx: Ctx) -> Result<()> {
    let token = ctx.token().await?;
    let before = ctx.stored().await?;
    let mut statuses = std::collections::BTreeMap::new();
    // 500 from one address over many accounts: the address is limited after 20.
    for i in 0..500 {
        let answer = ctx
            .login_from(&format!("guess{}", i % 50), "wrong", "203.0.113.66")
            .await?;
        *statuses.entry(answer.status).or_insert(0) += 1;
        if i >= 20 {
            answer.expect(429, "rate_limited", "")?;
        }
    }
    ensure!(statuses.get(&401) == Some(&20), "{statuses:?}");
    // 500 at one account from as many addresses: it locks after 5, even for the right
    // password.
    for i in 0..500 {
        let address = format!("198.51.{}.{}", i / 250, i % 250);
        let answer = ctx.login_from("zx_clerk", "wrong", &address).await?;
        if i >= 5 {
            answer.expect(429, "locked", "")?;
        } else {
            answer.expect(401, "unauthenticated", "")?;
        }
    }
    ctx.login_from("zx_clerk", PASSWORD, "192.0.2.99")
        .await?
        .expect(429, "locked", "")?;
    // The failures stored no case, task or token; the server answers, and after the
    // window the account logs in again.
    ensure!(ctx.stored().await? == before);
    ctx.still_up(&token).await?;
    ctx.clock.advance(Duration::minutes(16));
    let login = ctx.login_from("zx_clerk", PASSWORD, "192.0.2.99").await?;
    ensure!(login.status == 200, "{}", login.body);
    Ok(())
}

jiuzhu_testkit::on_both_databases!(
    bad_bodies_store_nothing_and_say_where,
    forged_and_revoked_credentials_store_nothing,
    expired_session_and_reused_csrf_are_refused,
    a_thousand_failed_logins_lock_out_and_the_server_stays_up,
);
