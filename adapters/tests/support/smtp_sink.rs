//! A real SMTP server for tests: Debian's aiosmtpd, started on a free
//! loopback port by `smtp_sink.py`, reporting each received message.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// How long to wait for the server to come up or a message to arrive: a
/// bound on a wait for an event, not a guess at how long something takes.
const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

/// One message as the server received it.
#[derive(Debug, Deserialize)]
pub struct Received {
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    pub login: Option<String>,
    data: String,
}

impl Received {
    /// The raw message bytes (the script sends them as Latin-1 code points).
    pub fn raw(&self) -> Vec<u8> {
        self.data.chars().map(|c| c as u32 as u8).collect()
    }
}

pub struct SmtpSink {
    pub port: u16,
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

/// A Python 3 that has aiosmtpd: `JIUZHU_TEST_PYTHON`, `python3` on the
/// PATH, or the system's (a version manager's shim may hide Debian's modules).
fn python_with_aiosmtpd() -> anyhow::Result<String> {
    let mut candidates: Vec<String> = std::env::var("JIUZHU_TEST_PYTHON").into_iter().collect();
    candidates.extend(["python3".to_string(), "/usr/bin/python3".to_string()]);
    for python in candidates {
        let ok = std::process::Command::new(&python)
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Ok(python);
        }
    }
    bail!(
        "the SMTP tests need a real SMTP server and none was found: apt-get install python3-aiosmtpd"
    )
}

impl SmtpSink {
    /// Starts the server; with `login`, it requires AUTH with that user and password.
    pub async fn start(login: Option<(&str, &str)>) -> anyhow::Result<SmtpSink> {
        let python = python_with_aiosmtpd()?;
        let script = super::repo_path("adapters/tests/support/smtp_sink.py");
        let mut command = Command::new(python);
        command.arg(script);
        if let Some((user, password)) = login {
            command.args([user, password]);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("starting smtp_sink.py")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(EVENT_TIMEOUT, lines.next_line())
            .await
            .context("the SMTP server did not report READY in time")??
            .ok_or_else(|| anyhow!("the SMTP server exited before listening"))?;
        let port = first
            .strip_prefix("READY ")
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| anyhow!("unexpected first line from the SMTP server: {first}"))?;
        Ok(SmtpSink { port, child, lines })
    }

    /// The next message the server receives.
    pub async fn next_message(&mut self) -> anyhow::Result<Received> {
        let line = tokio::time::timeout(EVENT_TIMEOUT, self.lines.next_line())
            .await
            .context("no message reached the SMTP server in time")??
            .ok_or_else(|| anyhow!("the SMTP server exited"))?;
        Ok(serde_json::from_str(&line)?)
    }

    /// Stops the server and reports every further message it had received.
    pub async fn stop(mut self) -> anyhow::Result<Vec<Received>> {
        drop(self.child.stdin.take());
        let mut rest = Vec::new();
        while let Some(line) = tokio::time::timeout(EVENT_TIMEOUT, self.lines.next_line())
            .await
            .context("the SMTP server did not stop in time")??
        {
            rest.push(serde_json::from_str(&line)?);
        }
        self.child.wait().await?;
        Ok(rest)
    }
}
