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
        let mut stream = TcpStream::connect(&self.address).expect("connect");
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.address,
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
        stream.write_all(request.as_bytes()).expect("send");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("receive");
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        (status, head.to_string(), body.to_string())
    }

    /// SIGTERM, then the exit status and the rest of stdout.
    fn stop(mut self) -> (bool, String) {
        // SAFETY: sends a signal to the child this test started, by its pid.
        let sent = unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        assert_eq!(sent, 0, "SIGTERM sent");
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
    assert!(server.banner.contains("cases:"), "{}", server.banner);
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
    // The demo's cases are in the clerk's township.
    let (status, _, body) =
        server.request("GET", "/api/cases", &[&format!("Cookie: {cookie}")], "");
    assert_eq!(status, 200, "{body}");
    let cases: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(cases["items"].as_array().map(Vec::len), Some(2), "{body}");
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
        .split_whitespace()
        .next()
        .expect("token id")
        .to_string();
    assert!(
        listed.contains("county_staff1") && listed.contains("robot") && listed.contains("live"),
        "{listed}"
    );
    assert!(!listed.contains(&token), "the token is shown once only");
    let missing = jiuzhu(&db, &["tokens", "create", "--user", "nobody"], None);
    assert!(!missing.status.success());

    let server = Server::start(&db, &[]);
    let bearer = format!("Authorization: Bearer {token}");
    let (status, _, body) = server.request("GET", "/api/me", &[&bearer], "");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"user\":\"county_staff1\""), "{body}");
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
