//! What the page tests share: a server on 127.0.0.1 over a SQLite file, a small project
//! (the org file of `processes/` and one short procedure that passes 公示 and is
//! decided), logged-in users by session, and reading form tokens out of pages.

#![allow(dead_code)]

use jiuzhu_testkit::copy_dir;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use jiuzhu_adapters::payments::PaymentsConfig;
use jiuzhu_engine::clock::{Clock, ManualClock};
use jiuzhu_engine::core::Actor;
use jiuzhu_engine::project::Project;
use jiuzhu_engine::runtime::Engine;
use jiuzhu_engine::store::Store;
use jiuzhu_rules::Value;
use jiuzhu_server::{AppState, AuthConfig, ServerConfig, UserRecord};
use jiuzhu_testkit::{Db, TestDatabase};

pub const TOWNSHIP: &str = "双鸭山市/尖山区/中心站街道";
pub const OTHER_TOWNSHIP: &str = "双鸭山市/尖山区/富安街道";
pub const COUNTY: &str = "双鸭山市/尖山区";
/// The ID number of the test applicant (its last six characters: `01123X`).
pub const ID_NUMBER: &str = "23050819500501123X";
pub const ACCOUNT: &str = "6222021234567890";
/// Lookups of the progress page allowed per address in the window.
pub const PROGRESS_LIMIT: i64 = 6;

/// The short procedure of the tests.
pub const MINI: &str = r#"process: mini
name: 最低生活保障
calendar: cn
start: publicity

variables:
  applicant_name: {type: string, required: true, label: 申请人姓名}
  bank: {type: object, label: 收款账户}
  household: {type: object, label: 家庭情况}
  monthly_amount: {type: decimal, label: 月保障金额}
  decision: {type: enum, values: [approve, reject], label: 审核确认决定}
  reason: {type: string, label: 理由}

nodes:
  - id: publicity
    type: receive
    name: 公示
    on:
      passed:
        next: approve
    timeout:
      after: 7d
      next: approve

  - id: approve
    type: task
    name: 审核确认
    role: township_head
    form:
      decision: {type: enum, values: [approve, reject], required: true, label: 决定}
      reason: {type: string, label: 理由}
    set:
      decision: "form.decision"
      reason: "coalesce(form.reason, '')"
    next:
      - {if: "form.decision == 'approve'", to: approved}
      - {to: rejected}

  - id: approved
    type: end
    name: 批准
    outcome: approved

  - id: rejected
    type: end
    name: 不予批准
    outcome: rejected
"#;

pub struct Web {
    pub base: String,
    pub http: reqwest::Client,
    pub clock: Arc<ManualClock>,
    pub state: Arc<AppState>,
    _stop: tokio::sync::watch::Sender<bool>,
    /// The server's bank folder (its payments config's `bank_dir`).
    pub bank: tempfile::TempDir,
    _project: tempfile::TempDir,
    _database: TestDatabase,
}

/// A page as answered: status and body.
pub struct Page {
    pub status: u16,
    pub body: String,
}

impl Page {
    /// The values of every `_csrf` field of the page, in order.
    pub fn tokens(&self) -> Vec<String> {
        let marker = "name=\"_csrf\" value=\"";
        self.body
            .match_indices(marker)
            .filter_map(|(at, _)| {
                let rest = &self.body[at + marker.len()..];
                rest.split('"').next().map(str::to_string)
            })
            .collect()
    }
}

const USERS: &[(&str, &str, &str)] = &[
    ("admin", "admin", COUNTY),
    ("zx_staff1", "township_staff", TOWNSHIP),
    ("zx_head", "township_head", TOWNSHIP),
    ("fa_clerk", "township_clerk", OTHER_TOWNSHIP),
];

pub async fn start() -> Web {
    let database = TestDatabase::create(Db::Sqlite, "web").await;
    let store = Store::open(&database.url).await.expect("open store");
    let project_dir = tempfile::tempdir().expect("temp dir");
    let processes = Path::new(env!("CARGO_MANIFEST_DIR")).join("../processes");
    std::fs::copy(
        processes.join("org.yaml"),
        project_dir.path().join("org.yaml"),
    )
    .expect("org file");
    std::fs::write(project_dir.path().join("mini.yaml"), MINI).expect("definition");
    copy_dir(
        &processes.join("policies"),
        &project_dir.path().join("policies"),
    );
    write_scenarios(&project_dir.path().join("scenarios/mini"));
    let project = match Project::load(project_dir.path()) {
        Ok(project) => project,
        Err(problems) => panic!("project: {}", problems.join("\n")),
    };
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 3, 2, 1, 0, 0)
            .single()
            .expect("time"),
    ));
    let engine = Engine::new(
        store,
        Arc::new(project),
        clock.clone() as Arc<dyn Clock>,
        "test-node",
    )
    .expect("engine");
    engine.deploy().await.expect("deploy");
    let bank = tempfile::tempdir().expect("bank folder");
    let config = ServerConfig {
        auth: AuthConfig {
            max_failures_per_address: PROGRESS_LIMIT,
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
    for (id, role, unit) in USERS {
        let user = UserRecord {
            id: id.to_string(),
            name: format!("{id}名"),
            unit: unit.to_string(),
            roles: vec![role.to_string()],
            disabled: false,
            has_password: false,
        };
        state
            .db
            .add_user(&user, None, clock.now())
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
    Web {
        base,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
        clock,
        state,
        _stop: stop,
        bank,
        _project: project_dir,
        _database: database,
    }
}

impl Web {
    /// A session cookie of `user`.
    pub async fn session(&self, user: &str) -> String {
        let session = self
            .state
            .db
            .create_session(user, self.clock.now())
            .await
            .expect("session");
        format!("jiuzhu_session={}", session.id)
    }

    pub async fn get(&self, path: &str, cookie: Option<&str>) -> Page {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        answer(request).await
    }

    /// Posts a form from `address` (the trusted proxy's `X-Forwarded-For`).
    pub async fn post(
        &self,
        path: &str,
        cookie: Option<&str>,
        fields: &[(&str, &str)],
        address: &str,
    ) -> Page {
        let body = fields
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-forwarded-for", address)
            .body(body);
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        answer(request).await
    }

    /// Starts a case of `mini` in the township: it waits in 公示.
    pub async fn start_case(&self, name: &str, amount: &str) -> String {
        let data = serde_json::json!({
            "applicant_name": name,
            "bank": {"account": ACCOUNT, "id_number": ID_NUMBER},
            "household": {"members": [{"id": "m1"}, {"id": "m2"}]},
            "monthly_amount": amount,
        });
        let data: BTreeMap<String, Value> = data
            .as_object()
            .expect("object")
            .iter()
            .map(|(k, v)| (k.clone(), Value::from_json(v)))
            .collect();
        let report = self
            .state
            .engine
            .start(
                "mini",
                &actor("zx_staff1", "township_staff", TOWNSHIP),
                data,
            )
            .await
            .expect("start");
        report.instance.id
    }

    /// Ends 公示 and decides the case.
    pub async fn decide(&self, case: &str, decision: &str, reason: &str) {
        let engine = &self.state.engine;
        engine
            .message(case, "passed", None, BTreeMap::new())
            .await
            .expect("publicity passed");
        let (_, _, state) = engine.load(case).await.expect("load");
        let task = state.tasks.first().expect("decision task").id.clone();
        let mut data = BTreeMap::new();
        data.insert("decision".to_string(), Value::Str(decision.to_string()));
        if !reason.is_empty() {
            data.insert("reason".to_string(), Value::Str(reason.to_string()));
        }
        engine
            .complete(&task, &actor("zx_head", "township_head", TOWNSHIP), data)
            .await
            .expect("decide");
    }
}

/// Two scenarios of `mini`: one that passes, one that fails.
fn write_scenarios(dir: &Path) {
    std::fs::create_dir_all(dir).expect("scenario folder");
    for (file, name, tasks) in [
        ("01-ok.scenario.yaml", "公示期间没有待办", "[]"),
        ("02-wrong.scenario.yaml", "错误的期望", "[approve]"),
    ] {
        let text = format!(
            "name: {name}\nprocess: mini\nstart:\n  at: 2026-03-02T09:00:00+08:00\n  \
             by: {{user: s1, roles: [township_staff], unit: {TOWNSHIP}}}\n  \
             data: {{applicant_name: 张三}}\nsteps:\n  - expect: {{tasks: {tasks}}}\n"
        );
        std::fs::write(dir.join(file), text).expect("scenario");
    }
}

pub fn actor(user: &str, role: &str, unit: &str) -> Actor {
    Actor {
        user: user.to_string(),
        roles: vec![role.to_string()],
        unit: unit.to_string(),
    }
}

async fn answer(request: reqwest::RequestBuilder) -> Page {
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let body = response.text().await.expect("body");
    Page { status, body }
}

/// Percent-encoding of a form value.
pub fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
