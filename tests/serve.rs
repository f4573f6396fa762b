//! `jiuzhu serve`, `jiuzhu users` and `jiuzhu tokens` as a person runs them: the binary on a
//! SQLite file, listening on 127.0.0.1 with an ephemeral port, stopped with SIGTERM.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn jiuzhu(db: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_jiuzhu"))
        .current_dir(root())
        .args(args)
        // The database of `users`/`tokens` goes before their subcommand as --db, or here.
        .env("JIUZHU_DB", db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("jiuzhu runs");
    if let Some(mut input) = child.stdin.take() {
        input
            .write_all(stdin.unwrap_or_default().as_bytes())
            .expect("stdin");
    }
    child.wait_with_output().expect("jiuzhu ends")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Sends SIGTERM to a child this test started.
fn terminate(child: &Child) {
    // SAFETY: sends a signal to the child this test started, by its pid.
    let sent = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(sent, 0, "SIGTERM sent");
}

/// One HTTP/1.1 request to `address`; `None` when the connection is refused or cut
/// before a whole response came back (a server shutting down).
fn try_request(
    address: &str,
    method: &str,
    path: &str,
    headers: &[&str],
    body: &str,
) -> Option<(u16, String, String)> {
    let mut stream = TcpStream::connect(address).ok()?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        request.push_str("Content-Type: application/json\r\n");
    }
    for header in headers {
        request.push_str(header);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, head.to_string(), body.to_string()))
}

/// A `jiuzhu serve` process and the address it listens on.
struct Server {
    child: Child,
    stdout: BufReader<ChildStdout>,
    address: String,
    /// What it printed before it listened.
    banner: String,
}

impl Server {
    fn start(db: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_jiuzhu"))
            .current_dir(root())
            .args(["serve", "--listen", "127.0.0.1:0", "--db"])
            .arg(db)
            .args(extra)
            .env_remove("JIUZHU_DB")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("jiuzhu serve runs");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut banner = String::new();
        let address = loop {
            let mut line = String::new();
            if stdout.read_line(&mut line).expect("read stdout") == 0 {
                let _ = child.kill();
                panic!("jiuzhu serve ended before listening:\n{banner}");
            }
            banner.push_str(&line);
            if let Some(rest) = line.trim().strip_prefix("Jiuzhu is serving on http://") {
                break rest.to_string();
            }
        };
        Server {
            child,
            stdout,
            address,
            banner,
        }
    }

    /// One HTTP/1.1 request; returns the status, the headers block and the body.
    fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[&str],
        body: &str,
    ) -> (u16, String, String) {
        try_request(&self.address, method, path, headers, body).expect("a whole response")
    }

    /// SIGTERM, then the exit status and the rest of stdout.
    fn stop(mut self) -> (bool, String) {
        terminate(&self.child);
        let mut rest = String::new();
        self.stdout.read_to_string(&mut rest).expect("read stdout");
        let status = self.child.wait().expect("wait");
        (status.success(), rest)
    }
}

#[test]
fn serve_demo_logs_in_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("jiuzhu.db");
    let server = Server::start(&db, &["--demo"]);
    // The banner: the cases at their steps, then the logins with role, unit and password.
    for expected in [
        "waiting for the home survey",
        "in verification",
        "in publicity",
        "approved, monthly payment in the ledger",
        "refused",
        "zx_head        township_head      demo-zx_head",
    ] {
        assert!(
            server.banner.contains(expected),
            "{expected}: {}",
            server.banner
        );
    }
    assert!(
        !server.banner.contains("张秀兰"),
        "names are masked: {}",
        server.banner
    );
    let (status, _, body) = server.request("GET", "/healthz", &[], "");
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = server.request("GET", "/readyz", &[], "");
    assert_eq!(status, 200, "{body}");
    let (status, head, body) = server.request(
        "POST",
        "/api/login",
        &[],
        r#"{"user":"zx_clerk","password":"demo-zx_clerk"}"#,
    );
    assert_eq!(status, 200, "{body}");
    assert!(
        head.to_ascii_lowercase()
            .contains("set-cookie: jiuzhu_session="),
        "{head}"
    );
    let cookie = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("set-cookie: ")
                .or_else(|| l.strip_prefix("Set-Cookie: "))
        })
        .and_then(|c| c.split(';').next())
        .expect("cookie")
        .to_string();
    // Six of the demo's seven cases are in the clerk's township (one is in 富安街道).
    let (status, head, body) = server.request(
        "GET",
        "/api/cases",
        &[&format!("Cookie: {cookie}"), "X-Request-Id: demo-request-1"],
        "",
    );
    assert_eq!(status, 200, "{body}");
    assert!(
        head.to_ascii_lowercase()
            .contains("x-request-id: demo-request-1"),
        "the caller's request id is echoed: {head}"
    );
    let cases: serde_json::Value = serde_json::from_str(&body).expect("json");
    let items = cases["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 6, "{body}");
    let outcomes: Vec<_> = items.iter().filter_map(|c| c["outcome"].as_str()).collect();
    assert!(
        outcomes.contains(&"approved") && outcomes.contains(&"rejected"),
        "{body}"
    );
    // Without an id of its own, a request gets one.
    let (_, head, _) = server.request("GET", "/healthz", &[], "");
    assert!(
        head.to_ascii_lowercase().contains("x-request-id: "),
        "{head}"
    );
    // The metrics name every family the operators watch.
    let (status, _, text) = server.request("GET", "/metrics", &[], "");
    assert_eq!(status, 200);
    for family in [
        "jiuzhu_http_request_duration_seconds_bucket{route=\"/api/cases\",le=\"+Inf\"} 1",
        "jiuzhu_steps_total ",
        "jiuzhu_queue_tasks{role=\"township_staff\",unit=\"双鸭山市/尖山区/中心站街道\"} 2",
        "jiuzhu_queue_tasks{role=\"county_staff\",unit=\"双鸭山市/尖山区/中心站街道\"} 2",
        "# TYPE jiuzhu_overdue_tasks gauge",
        "jiuzhu_timer_lag_seconds ",
        "jiuzhu_outbox_backlog ",
        "jiuzhu_incidents ",
    ] {
        assert!(text.contains(family), "{family} missing from\n{text}");
    }
    let (ok, rest) = server.stop();
    assert!(ok, "exit status after SIGTERM; output: {rest}");
    assert!(rest.contains("Jiuzhu stopped"), "{rest}");
}

#[test]
fn users_and_tokens_are_managed_from_the_command_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("jiuzhu.db");
    let deploy = jiuzhu(&db, &["deploy"], None);
    assert!(deploy.status.success(), "{}", text(&deploy.stderr));
    let added = jiuzhu(
        &db,
        &[
            "users",
            "add",
            "zx_new",
            "--name",
            "新人",
            "--unit",
            "双鸭山市/尖山区/中心站街道",
            "--role",
            "township_clerk",
            "--password-stdin",
        ],
        Some("a long enough password\n"),
    );
    assert!(added.status.success(), "{}", text(&added.stderr));
    let again = jiuzhu(
        &db,
        &[
            "users",
            "add",
            "zx_new",
            "--name",
            "x",
            "--unit",
            "u",
            "--role",
            "township_clerk",
        ],
        None,
    );
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("duplicate"),
        "{}",
        text(&again.stderr)
    );
    let unknown_role = jiuzhu(
        &db,
        &[
            "users", "add", "x1", "--name", "x", "--unit", "u", "--role", "emperor",
        ],
        None,
    );
    assert!(!unknown_role.status.success());
    // org.yaml's users are there too, without a password until one is set.
    let list = text(&jiuzhu(&db, &["users", "list"], None).stdout);
    assert!(list.contains("zx_new") && list.contains("active"), "{list}");
    assert!(
        list.lines()
            .any(|l| l.starts_with("county_staff1 ") && l.ends_with("no password")),
        "{list}"
    );
    let set = jiuzhu(
        &db,
        &["users", "set-password", "county_staff1"],
        Some("county password 1\n"),
    );
    assert!(set.status.success(), "{}", text(&set.stderr));
    let created = jiuzhu(
        &db,
        &[
            "tokens",
            "create",
            "--user",
            "county_staff1",
            "--label",
            "robot",
        ],
        None,
    );
    assert!(created.status.success(), "{}", text(&created.stderr));
    let token = text(&created.stdout).trim().to_string();
    assert!(
        token.starts_with("jzt_") && token.len() == 4 + 64,
        "{token}"
    );
    let listed = text(&jiuzhu(&db, &["tokens", "list"], None).stdout);
    let id = listed
        .lines()
        .find(|l| l.contains("robot"))
        .and_then(|l| l.split_whitespace().next())
        .expect("token id")
        .to_string();
    assert!(
        listed.contains("county_staff1") && listed.contains("robot") && listed.contains("live"),
        "{listed}"
    );
    assert!(!listed.contains(&token), "the token is shown once only");
    let missing = jiuzhu(&db, &["tokens", "create", "--user", "nobody"], None);
    assert!(!missing.status.success());
    // A token narrowed to a unit below the user's sees that unit's cases only; a role or
    // unit the user does not hold is refused.
    let scoped = jiuzhu(
        &db,
        &[
            "tokens",
            "create",
            "--user",
            "county_staff1",
            "--role",
            "county_staff",
            "--unit",
            "双鸭山市/尖山区/富安街道",
        ],
        None,
    );
    assert!(scoped.status.success(), "{}", text(&scoped.stderr));
    let scoped = text(&scoped.stdout).trim().to_string();
    for refused in [["--role", "county_head"], ["--unit", "双鸭山市/宝山区"]] {
        let out = jiuzhu(
            &db,
            &[
                &["tokens", "create", "--user", "county_staff1"][..],
                &refused[..],
            ]
            .concat(),
            None,
        );
        assert!(!out.status.success(), "{refused:?}");
        assert!(
            text(&out.stderr).contains("forbidden"),
            "{}",
            text(&out.stderr)
        );
    }
    let listed = text(&jiuzhu(&db, &["tokens", "list"], None).stdout);
    assert!(
        listed.contains("county_staff@双鸭山市/尖山区/富安街道") && listed.contains("*@*"),
        "{listed}"
    );

    let server = Server::start(&db, &[]);
    let bearer = format!("Authorization: Bearer {token}");
    let (status, _, body) = server.request("GET", "/api/me", &[&bearer], "");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"user\":\"county_staff1\""), "{body}");
    let (status, _, body) = server.request(
        "GET",
        "/api/me",
        &[&format!("Authorization: Bearer {scoped}")],
        "",
    );
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("\"unit\":\"双鸭山市/尖山区/富安街道\""),
        "the token acts on its unit: {body}"
    );
    let (status, _, body) = server.request(
        "POST",
        "/api/login",
        &[],
        r#"{"user":"zx_new","password":"a long enough password"}"#,
    );
    assert_eq!(status, 200, "{body}");
    // Revoked from the command line while the server runs: the next request is refused.
    let revoked = jiuzhu(&db, &["tokens", "revoke", &id], None);
    assert!(revoked.status.success(), "{}", text(&revoked.stderr));
    let (status, head, _) = server.request("GET", "/api/me", &[&bearer], "");
    assert_eq!(status, 401);
    assert!(
        head.to_ascii_lowercase().contains("www-authenticate"),
        "{head}"
    );
    // A disabled user's login is refused.
    let disabled = jiuzhu(&db, &["users", "disable", "zx_new"], None);
    assert!(disabled.status.success(), "{}", text(&disabled.stderr));
    let (status, _, _) = server.request(
        "POST",
        "/api/login",
        &[],
        r#"{"user":"zx_new","password":"a long enough password"}"#,
    );
    assert_eq!(status, 401);
    let (ok, _) = server.stop();
    assert!(ok);
}

/// A dibao application as the API takes it.
const APPLICATION: &str = r#"{"process":"dibao","data":{"applicant_name":"测试","area":"urban","household":{"members":[{"id":"m1","birth_date":"1960-01-01","income":[{"kind":"wage","monthly":"900.00"}]}],"savings":"0"}}}"#;

/// A token for `user`, made with `jiuzhu tokens create` on `db` (a path or a URL).
fn token_for(db: &Path, user: &str) -> String {
    let created = jiuzhu(db, &["tokens", "create", "--user", user], None);
    assert!(created.status.success(), "{}", text(&created.stderr));
    text(&created.stdout).trim().to_string()
}

#[test]
fn sigterm_lets_the_requests_in_flight_finish_and_exits_zero() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("jiuzhu.db");
    let deploy = jiuzhu(&db, &["deploy"], None);
    assert!(deploy.status.success(), "{}", text(&deploy.stderr));
    let bearer = format!("Authorization: Bearer {}", token_for(&db, "zx_clerk"));
    let server = Server::start(&db, &[]);
    // Eight clients start cases back to back until the server stops answering.
    let (started, progress) = std::sync::mpsc::channel::<()>();
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let (address, bearer, started) =
                (server.address.clone(), bearer.clone(), started.clone());
            std::thread::spawn(move || {
                let mut created = 0u32;
                while let Some((status, _, body)) =
                    try_request(&address, "POST", "/api/cases", &[&bearer], APPLICATION)
                {
                    assert_eq!(status, 201, "{body}");
                    created += 1;
                    let _ = started.send(());
                }
                created
            })
        })
        .collect();
    drop(started);
    for _ in 0..40 {
        progress.recv().expect("cases are being started");
    }
    // Requests are in flight on every client when the signal comes.
    let (ok, rest) = server.stop();
    assert!(ok, "exit status after SIGTERM; output: {rest}");
    let answered: u32 = clients.into_iter().map(|c| c.join().expect("client")).sum();
    assert!(answered >= 40);
    // Every answered request's case is there whole, and no other: a step was either
    // committed with its answer or never begun.
    let listed = jiuzhu(&db, &["cases", "--json", "--limit", "1000"], None);
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    let cases: Vec<serde_json::Value> =
        serde_json::from_str(&text(&listed.stdout)).expect("a JSON array of cases");
    assert_eq!(cases.len() as u32, answered, "{}", text(&listed.stdout));
    for case in cases.iter().take(5) {
        let id = case["id"].as_str().expect("case id");
        let verified = jiuzhu(&db, &["history", id, "--verify"], None);
        assert!(verified.status.success(), "{}", text(&verified.stderr));
    }
}

/// Copies the shipped project (without the bench folder) and adds the bench's
/// `timer_lite` process, whose timer is due at a time the start data gives.
fn project_with_timers(to: &Path) {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).expect("mkdir");
        for entry in std::fs::read_dir(from).expect("read dir") {
            let entry = entry.expect("entry");
            let path = entry.path();
            if path.is_dir() {
                if entry.file_name() != "bench" {
                    copy(&path, &to.join(entry.file_name()));
                }
            } else {
                std::fs::copy(&path, to.join(entry.file_name())).expect("copy");
            }
        }
    }
    let processes = root().join("processes");
    copy(&processes, &to.join("processes"));
    std::fs::copy(
        processes.join("bench/timer_lite.yaml"),
        to.join("processes/timer_lite.yaml"),
    )
    .expect("copy timer_lite");
}

#[test]
fn two_nodes_on_postgresql_share_sessions_and_fire_each_timer_once() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let database = runtime.block_on(jiuzhu_testkit::TestDatabase::create(
        jiuzhu_testkit::Db::Postgres,
        "serve",
    ));
    let url = PathBuf::from(&database.url);
    let dir = tempfile::tempdir().expect("temp dir");
    project_with_timers(dir.path());
    let project = dir.path().to_str().expect("utf-8 path").to_string();
    let on_project = |args: &[&str], stdin: Option<&str>| {
        let mut all = vec!["--project", project.as_str()];
        all.extend_from_slice(args);
        jiuzhu(&url, &all, stdin)
    };
    let deploy = on_project(&["deploy"], None);
    assert!(deploy.status.success(), "{}", text(&deploy.stderr));
    let set = on_project(
        &["users", "set-password", "zx_clerk"],
        Some("clerk password 1\n"),
    );
    assert!(set.status.success(), "{}", text(&set.stderr));
    let a = Server::start(&url, &["--project", &project]);
    let b = Server::start(&url, &["--project", &project]);

    // Logged in on A, the session works on B: it lives in the database.
    let (status, head, body) = a.request(
        "POST",
        "/api/login",
        &[],
        r#"{"user":"zx_clerk","password":"clerk password 1"}"#,
    );
    assert_eq!(status, 200, "{body}");
    let cookie = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .starts_with("set-cookie: ")
                .then(|| l[12..].to_string())
        })
        .and_then(|c| c.split(';').next().map(str::to_string))
        .expect("cookie");
    let csrf = serde_json::from_str::<serde_json::Value>(&body).expect("json")["csrf_token"]
        .as_str()
        .expect("csrf token")
        .to_string();
    let cookie = format!("Cookie: {cookie}");
    let csrf = format!("X-CSRF-Token: {csrf}");
    let (status, _, body) = b.request("GET", "/api/me", &[&cookie], "");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"user\":\"zx_clerk\""), "{body}");

    // Cases with timers already due, started half on each node: both nodes' schedulers
    // tick, and each timer fires once.
    const CASES: usize = 30;
    let mut ids = Vec::new();
    for i in 0..CASES {
        let node = if i % 2 == 0 { &a } else { &b };
        let (status, _, body) = node.request(
            "POST",
            "/api/cases",
            &[&cookie, &csrf],
            r#"{"process":"timer_lite","data":{"wake_at":"2026-01-05T09:00:00+08:00"}}"#,
        );
        assert_eq!(status, 201, "{body}");
        let case: serde_json::Value = serde_json::from_str(&body).expect("json");
        ids.push(case["case_id"].as_str().expect("case id").to_string());
    }
    // Each node prints what it fired; read both until every timer is accounted for.
    let (lines, fired) = std::sync::mpsc::channel::<usize>();
    let mut readers = Vec::new();
    let mut children = Vec::new();
    for server in [a, b] {
        let Server { child, stdout, .. } = server;
        let lines = lines.clone();
        readers.push(std::thread::spawn(move || {
            let mut total = 0;
            for line in stdout.lines().map_while(Result::ok) {
                if let Some(n) = line
                    .strip_prefix("fired ")
                    .and_then(|rest| rest.split_whitespace().next())
                    .and_then(|n| n.parse::<usize>().ok())
                {
                    total += n;
                    let _ = lines.send(n);
                }
            }
            total
        }));
        children.push(child);
    }
    drop(lines);
    let mut seen = 0;
    while seen < CASES {
        seen += fired
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("the nodes fire the timers");
    }
    for child in &children {
        terminate(child);
    }
    let totals: Vec<usize> = readers
        .into_iter()
        .map(|r| r.join().expect("reader"))
        .collect();
    for child in &mut children {
        assert!(child.wait().expect("wait").success());
    }
    assert_eq!(
        totals.iter().sum::<usize>(),
        CASES,
        "fired per node: {totals:?}"
    );
    // Every case ended through its one timer.
    for id in &ids {
        let history = on_project(&["history", id, "--json"], None);
        assert!(history.status.success(), "{}", text(&history.stderr));
        let rows = text(&history.stdout);
        assert_eq!(
            rows.matches("\"event\": \"timer\"").count(),
            1,
            "one timer event in {id}: {rows}"
        );
    }
    runtime.block_on(database.drop());
}

#[test]
fn bench_http_runs_quick() {
    let output = Command::new(env!("CARGO_BIN_EXE_jiuzhu"))
        .current_dir(root())
        .args(["bench", "http", "--quick"])
        .output()
        .expect("jiuzhu bench runs");
    assert!(output.status.success(), "{}", text(&output.stderr));
    let report: serde_json::Value =
        serde_json::from_str(text(&output.stdout).trim()).expect("one JSON object");
    assert_eq!(report["bench"], "http");
    assert_eq!(report["clients"], 8);
    assert_eq!(report["open_tasks"], 2000);
    assert!(
        report["api_steps_per_s"].as_f64().unwrap_or(0.0) > 0.0,
        "{report}"
    );
    assert!(
        report["engine_steps_per_s"].as_f64().unwrap_or(0.0) > 0.0,
        "{report}"
    );
    assert!(
        report["queue_page_p99_ms"].as_f64().unwrap_or(0.0) > 0.0,
        "{report}"
    );
    // Each side's steps went through the group commit: at least one step per commit.
    for side in ["engine_steps_per_commit", "api_steps_per_commit"] {
        assert!(report[side].as_f64().unwrap_or(0.0) >= 1.0, "{report}");
    }
}
