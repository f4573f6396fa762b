//! What the server suites share: a server on a real listener (127.0.0.1, ephemeral port)
//! in front of an engine on a real database, with a manual clock; requests as users.

#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, Result, ensure};
use chrono::{TimeZone, Utc};
use jiuzhu_adapters::payments::PaymentsConfig;
use jiuzhu_engine::clock::{Clock, ManualClock};
use jiuzhu_engine::project::Project;
use jiuzhu_engine::runtime::Engine;
use jiuzhu_engine::store::Store;
use jiuzhu_server::{AppState, AuthConfig, ServerConfig, UserRecord};
use jiuzhu_testkit::{Db, Outcome, TestDatabase, report};
use reqwest::header::{self, HeaderMap};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub const PASSWORD: &str = "correct horse battery";

pub struct Ctx {
    pub base: String,
    pub http: reqwest::Client,
    pub clock: Arc<ManualClock>,
    pub state: Arc<AppState>,
    /// The server's bank folder (its payments config's `bank_dir`).
    pub bank: tempfile::TempDir,
    /// Dropping it shuts the server down.
    pub _stop: tokio::sync::watch::Sender<bool>,
}

pub struct Teardown {
    pub database: TestDatabase,
    pub store: Store,
    /// The test's own project folder, if it has one.
    pub project: Option<tempfile::TempDir>,
}

/// A server over a fresh database with `users`; the first `with_password` get
/// [`PASSWORD`] (argon2 is slow on purpose, and tokens do for the rest).
pub async fn setup_with(
    db: Db,
    users: &[(&str, &str, &str)],
    with_password: usize,
) -> (Ctx, Teardown) {
    let processes = Path::new(env!("CARGO_MANIFEST_DIR")).join("../processes");
    setup_in(db, users, with_password, &processes, None).await
}

/// [`setup_with`] over a project of the test's own (a copy it changed), kept until the
/// teardown.
pub async fn setup_project(
    db: Db,
    users: &[(&str, &str, &str)],
    project: tempfile::TempDir,
) -> (Ctx, Teardown) {
    let processes = project.path().to_path_buf();
    setup_in(db, users, 0, &processes, Some(project)).await
}

async fn setup_in(
    db: Db,
    users: &[(&str, &str, &str)],
    with_password: usize,
    processes: &Path,
    own: Option<tempfile::TempDir>,
) -> (Ctx, Teardown) {
    let database = TestDatabase::create(db, "server").await;
    let store = Store::open(&database.url).await.expect("open store");
    let project = Project::load(processes).expect("project loads");
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
    let bank = tempfile::tempdir().expect("bank folder");
    let config = ServerConfig {
        auth: AuthConfig {
            max_failures_per_account: 3,
            max_failures_per_address: 6,
            ..AuthConfig::default()
        },
        trust_proxy: true,
        payments: Some(PaymentsConfig {
            bank_dir: bank.path().to_path_buf(),
            ..PaymentsConfig::default()
        }),
        ..ServerConfig::default()
    };
    let state = AppState::new(Arc::new(engine), config)
        .await
        .expect("server state");
    let now = clock.now();
    for (i, (id, role, unit)) in users.iter().enumerate() {
        let user = UserRecord {
            id: id.to_string(),
            name: format!("用户{i}"),
            unit: unit.to_string(),
            roles: vec![role.to_string()],
            disabled: false,
            has_password: false,
        };
        let password = (i < with_password).then_some(PASSWORD);
        state
            .db
            .add_user(&user, password, now)
            .await
            .expect("add user");
    }
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
        bank,
        _stop: stop,
    };
    (
        ctx,
        Teardown {
            database,
            store,
            project: own,
        },
    )
}

pub async fn finish(db: Db, teardown: Teardown, outcome: Outcome) {
    teardown.store.close().await;
    teardown.database.drop().await;
    report(db, outcome);
}

/// A response: status, headers, body as JSON (Null when not JSON).
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn problem_code(&self) -> &str {
        self.body["code"].as_str().unwrap_or_default()
    }

    /// Asserts a problem-details answer of `status` and `code`.
    pub fn expect_problem(&self, status: u16, code: &str) -> Result<()> {
        ensure!(
            self.status.as_u16() == status,
            "expected {status}, got {} {}",
            self.status,
            self.body
        );
        let content_type = self
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        ensure!(
            content_type == "application/problem+json",
            "content type {content_type}"
        );
        ensure!(self.problem_code() == code, "code: {}", self.body);
        ensure!(self.body["status"] == status, "{}", self.body);
        ensure!(self.body["title"].is_string() && self.body["type"].is_string());
        Ok(())
    }
}

/// How a request authenticates.
#[derive(Clone)]
pub enum Auth<'a> {
    None,
    Bearer(&'a str),
    /// A session cookie, with the CSRF token to send (if any).
    Session(&'a Session, Option<&'a str>),
}

#[derive(Clone)]
pub struct Session {
    pub cookie: String,
    pub csrf: String,
}

impl Ctx {
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        auth: Auth<'_>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Result<Answer> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        match auth {
            Auth::None => {}
            Auth::Bearer(token) => request = request.bearer_auth(token),
            Auth::Session(session, csrf) => {
                request =
                    request.header(header::COOKIE, format!("jiuzhu_session={}", session.cookie));
                if let Some(csrf) = csrf {
                    request = request.header("x-csrf-token", csrf);
                }
            }
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await?;
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    pub async fn get(&self, path: &str, auth: Auth<'_>) -> Result<Answer> {
        self.send(Method::GET, path, auth, None, &[]).await
    }

    pub async fn post(&self, path: &str, auth: Auth<'_>, body: Value) -> Result<Answer> {
        self.send(Method::POST, path, auth, Some(body), &[]).await
    }

    pub async fn login_from(&self, user: &str, password: &str, address: &str) -> Result<Answer> {
        self.send(
            Method::POST,
            "/api/login",
            Auth::None,
            Some(json!({"user": user, "password": password})),
            &[("x-forwarded-for", address)],
        )
        .await
    }

    pub async fn login(&self, user: &str) -> Result<Session> {
        let answer = self.login_from(user, PASSWORD, "192.0.2.1").await?;
        ensure!(answer.status == 200, "login {user}: {}", answer.body);
        let set_cookie = answer
            .headers
            .get(header::SET_COOKIE)
            .and_then(|v| v.to_str().ok())
            .context("no Set-Cookie")?;
        let cookie = set_cookie
            .split(';')
            .next()
            .and_then(|pair| pair.strip_prefix("jiuzhu_session="))
            .context("no session cookie")?
            .to_string();
        let csrf = answer.body["csrf_token"]
            .as_str()
            .context("no csrf token")?
            .to_string();
        Ok(Session { cookie, csrf })
    }

    pub async fn token(&self, user: &str) -> Result<String> {
        Ok(self
            .state
            .db
            .create_token(user, "test", self.clock.now())
            .await?
            .token)
    }
}

pub fn household() -> Value {
    json!({
        "applicant_name": "张秀兰",
        "area": "urban",
        "bank": {"account": "6222021234567890", "id_number": "230504195005011234"},
        "household": {
            "members": [
                {"id": "m1", "birth_date": "1950-05-01", "income": [{"kind": "pension_basic", "monthly": "180.00"}]}
            ],
            "savings": "6000.00"
        }
    })
}
