//! Crash safety of the built binary: `jiuzhu load` drives dibao cases and prints an `ack`
//! line after each committed step; the test kills it with SIGKILL after a random number of
//! acknowledged steps, over and over, restarting it each time (it resumes from the
//! database), and lets the last run finish. Then it proves: every acknowledged step is in
//! the history, every hash chain verifies, every stored state keeps the core's invariants,
//! every timer fired at most once and none is left pending, and no outward effect was
//! emitted twice. A poison case is there all along: its timer leads into a division by
//! zero, so every firing fails (and a kill may land mid-firing); it must end
//! parked as an incident, and the other cases finish regardless. The seed is printed;
//! `JIUZHU_CRASH_SEED` replays a run. Nothing sleeps: the test waits on the child's output.

use jiuzhu_testkit::copy_dir;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::hash::{BuildHasher, Hasher};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use jiuzhu_engine::project::Project;
use jiuzhu_engine::runtime::Engine;
use jiuzhu_engine::store::{InstanceFilter, Store};

const INSTANCES: usize = 60;
const KILLS: usize = 25;

/// splitmix64: a small, seedable generator, so a failing run can be replayed.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

fn seed() -> u64 {
    match std::env::var("JIUZHU_CRASH_SEED") {
        Ok(text) => text.parse().expect("JIUZHU_CRASH_SEED is a number"),
        // A fresh seed per run, without reading the clock.
        Err(_) => std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish(),
    }
}

/// One acknowledged step: the instance reached `version` by `event`.
#[derive(Debug, Clone)]
struct Ack {
    instance: String,
    version: i64,
    event: String,
    detail: String,
}

fn parse_ack(line: &str) -> Option<Ack> {
    let mut parts = line.trim_end_matches('\n').splitn(5, ' ');
    if parts.next()? != "ack" {
        return None;
    }
    Some(Ack {
        instance: parts.next()?.to_string(),
        version: parts.next()?.parse().ok()?,
        event: parts.next()?.to_string(),
        detail: parts.next().unwrap_or_default().trim().to_string(),
    })
}

fn processes() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("processes")
}

/// A timer that leads into a division by zero: every firing is an incident.
const POISON: &str = r#"process: poison
variables:
  n: {type: decimal, default: 0}
nodes:
  - {id: pause, type: timer, wait: 1d, next: count}
  - {id: count, type: compute, set: {n: "n / (n - n)"}, next: done}
  - {id: done, type: end}
"#;

/// The shipped definitions plus the poison one, in `dir`.
fn project_with_poison(dir: &Path) -> PathBuf {
    let definitions = dir.join("processes");
    copy_dir(&processes(), &definitions);
    std::fs::write(definitions.join("poison.yaml"), POISON).expect("write poison.yaml");
    definitions
}

/// Deploys and starts the poison case before the load's first run, at the load's first day.
async fn start_poison(db: &Path, definitions: &Path) -> String {
    let url = format!("sqlite:{}", db.display());
    let store = Store::open(&url).await.expect("open the database");
    let project = Project::load(definitions).expect("processes load");
    let first_day = chrono::DateTime::parse_from_rfc3339("2026-03-02T09:00:00+08:00")
        .expect("valid time")
        .with_timezone(&chrono::Utc);
    let clock = std::sync::Arc::new(jiuzhu_engine::clock::ManualClock::new(first_day));
    let engine =
        Engine::new(store.clone(), std::sync::Arc::new(project), clock, "setup").expect("engine");
    engine.deploy().await.expect("deploy");
    let actor = jiuzhu_engine::core::Actor {
        user: "zx_clerk".into(),
        roles: vec!["township_clerk".into()],
        unit: "双鸭山市/尖山区/中心站街道".into(),
    };
    let step = engine
        .start("poison", &actor, BTreeMap::new())
        .await
        .expect("start the poison case");
    store.close().await;
    step.instance.id
}

/// Runs `jiuzhu load` until it has acknowledged `kill_after` steps (then SIGKILLs it) or
/// finishes. Returns the acks read and whether it finished.
fn run_load(db: &Path, definitions: &Path, kill_after: Option<usize>, acks: &mut Vec<Ack>) -> bool {
    let mut child = Command::new(env!("CARGO_BIN_EXE_jiuzhu"))
        .args(["load", "--instances", &INSTANCES.to_string(), "--db"])
        .arg(db)
        .arg("--definitions")
        .arg(definitions)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start jiuzhu load");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    let mut seen = 0;
    let mut finished = false;
    loop {
        line.clear();
        let read = reader
            .read_line(&mut line)
            .expect("read the child's output");
        // A line cut off by the kill (no newline) was never fully acknowledged.
        if read == 0 || !line.ends_with('\n') {
            break;
        }
        if line == "done\n" {
            finished = true;
            break;
        }
        let ack = parse_ack(&line).unwrap_or_else(|| panic!("unexpected output: {line:?}"));
        acks.push(ack);
        seen += 1;
        if kill_after == Some(seen) {
            child.kill().expect("SIGKILL the child");
            break;
        }
    }
    let status = child.wait().expect("reap the child");
    if kill_after.is_none() || finished {
        let mut stderr = String::new();
        if let Some(mut err) = child.stderr.take() {
            std::io::Read::read_to_string(&mut err, &mut stderr).ok();
        }
        assert!(
            finished && status.success(),
            "load did not finish: {status}\n{stderr}"
        );
    }
    finished
}

#[test]
fn killed_and_restarted_load_loses_no_acknowledged_step() {
    let seed = seed();
    println!("crash test seed {seed} (replay with JIUZHU_CRASH_SEED={seed})");
    let mut random = Random(seed);
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("crash.db");
    let definitions = project_with_poison(dir.path());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let poison = runtime.block_on(start_poison(&db, &definitions));
    let mut acks = Vec::new();
    let mut kills = 0;
    while kills < KILLS {
        let kill_after = 1 + random.below(20) as usize;
        if run_load(&db, &definitions, Some(kill_after), &mut acks) {
            break;
        }
        kills += 1;
    }
    assert!(kills >= 20, "only {kills} kills before the load finished");
    run_load(&db, &definitions, None, &mut acks);
    println!("{kills} kills, {} acknowledged steps", acks.len());

    runtime.block_on(check_database(&db, &definitions, &acks, &poison));
}

async fn check_database(db: &Path, definitions: &Path, acks: &[Ack], poison: &str) {
    let url = format!("sqlite:{}", db.display());
    let store = Store::open(&url).await.expect("open the crashed database");
    let project = Project::load(definitions).expect("processes load");
    let clock = std::sync::Arc::new(jiuzhu_engine::clock::ManualClock::new(
        chrono::DateTime::UNIX_EPOCH,
    ));
    let engine = Engine::new(
        store.clone(),
        std::sync::Arc::new(project),
        clock,
        "checker",
    )
    .expect("engine");

    // Every acknowledged step is in its instance's history, at its version, as that event.
    let mut histories = BTreeMap::new();
    for ack in acks {
        if !histories.contains_key(&ack.instance) {
            let history = store.history(&ack.instance).await.expect("history");
            histories.insert(ack.instance.clone(), history);
        }
        let history = &histories[&ack.instance];
        let row = history
            .iter()
            .find(|h| h.seq == ack.version)
            .unwrap_or_else(|| panic!("acknowledged step lost: {ack:?}"));
        assert_eq!(row.event, ack.event, "{ack:?}");
        if ack.event == "timer" {
            assert_eq!(row.data["input"]["timer"], ack.detail.as_str(), "{ack:?}");
        }
    }

    let instances = store
        .list_instances(&InstanceFilter {
            limit: 10_000,
            ..InstanceFilter::default()
        })
        .await
        .expect("instances");
    let cases: Vec<_> = instances
        .iter()
        .filter(|i| i.process_id == "dibao")
        .collect();
    assert_eq!(cases.len(), INSTANCES, "each case started exactly once");

    // The poison case is parked as an incident: its timer stays, claimed no more.
    let parked = store.parked_timers(10).await.expect("parked timers");
    assert_eq!(parked.len(), 1, "{parked:?}");
    assert_eq!(parked[0].instance_id, poison, "{parked:?}");
    assert_eq!(
        parked[0].last_error.as_deref(),
        Some("incident"),
        "{parked:?}"
    );
    println!(
        "poison case parked after {} attempts (default budget 5)",
        parked[0].attempts
    );

    for instance in &instances {
        store
            .verify_history(&instance.id)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", instance.id));
        let (_, def, state) = engine.load(&instance.id).await.expect("load");
        state
            .check_invariants(&def)
            .unwrap_or_else(|e| panic!("unreachable state: {e}"));
        if instance.id == poison {
            assert_eq!(instance.status, "active", "the poison case moved");
        } else {
            assert_ne!(instance.status, "active", "{} did not finish", instance.id);
        }
        // Each timer fired at most once.
        let history = store.history(&instance.id).await.expect("history");
        let mut fired = BTreeSet::new();
        for row in history.iter().filter(|h| h.event == "timer") {
            let timer = row.data["input"]["timer"]
                .as_str()
                .expect("timer id")
                .to_string();
            assert!(fired.insert(timer.clone()), "{timer} fired twice");
        }
        // The history has one row per version, no gaps.
        let seqs: Vec<i64> = history.iter().map(|h| h.seq).collect();
        assert_eq!(
            seqs,
            (1..=instance.version).collect::<Vec<_>>(),
            "{}",
            instance.id
        );
    }
    let summary = store.summary().await.expect("summary");
    assert_eq!(
        summary.pending_timers, 1,
        "every due timer fired but the parked one: {summary:?}"
    );
    assert_eq!(summary.open_tasks, 0, "{summary:?}");

    // No outward effect twice: unique ids, the id is the payload's idempotency key, and a
    // decided case carries exactly one decision's effects.
    let outbox = store
        .claim_outbox(
            "checker",
            chrono::DateTime::<chrono::Utc>::MAX_UTC,
            chrono::Duration::seconds(1),
            100_000,
        )
        .await
        .expect("outbox");
    let mut ids = HashSet::new();
    let mut per_case: BTreeMap<(&str, String), usize> = BTreeMap::new();
    for claimed in &outbox {
        let entry = &claimed.entry;
        assert!(ids.insert(entry.id.clone()), "effect {} twice", entry.id);
        assert_eq!(entry.payload["id"], entry.id.as_str());
        let what = match entry.payload["template"].as_str() {
            Some(template) => format!("{}:{template}", entry.kind),
            None => entry.kind.clone(),
        };
        *per_case
            .entry((entry.instance_id.as_str(), what))
            .or_default() += 1;
    }
    for case in &cases {
        let count = |what: &str| {
            per_case
                .get(&(case.id.as_str(), what.to_string()))
                .copied()
                .unwrap_or(0)
        };
        match case.outcome.as_deref() {
            Some("approved") => {
                assert_eq!(count("payment"), 1, "{}", case.id);
                assert_eq!(count("notification:dibao_approved"), 1, "{}", case.id);
                assert_eq!(count("start_process"), 1, "{}", case.id);
            }
            Some("rejected") => {
                assert_eq!(count("payment"), 0, "{}", case.id);
                assert_eq!(count("notification:dibao_rejected"), 1, "{}", case.id);
            }
            other => panic!("{} ended with {other:?}", case.id),
        }
    }
    store.close().await;
}

/// Recipients of the batch crash test; every tenth benefit was stopped before the run.
const BATCH_RECIPIENTS: usize = 300;
const BATCH_KILLS: usize = 6;

/// Runs `jiuzhu load-batch` until it has printed `kill_after` progress lines (then
/// SIGKILLs it) or finishes. Returns whether it finished.
fn run_load_batch(db: &Path, definitions: &Path, kill_after: Option<usize>) -> bool {
    let mut child = Command::new(env!("CARGO_BIN_EXE_jiuzhu"))
        .args([
            "load-batch",
            "--recipients",
            &BATCH_RECIPIENTS.to_string(),
            "--db",
        ])
        .arg(db)
        .arg("--definitions")
        .arg(definitions)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start jiuzhu load-batch");
    let mut reader = BufReader::new(child.stdout.take().expect("piped stdout"));
    let mut line = String::new();
    let (mut seen, mut finished) = (0, false);
    loop {
        line.clear();
        let read = reader
            .read_line(&mut line)
            .expect("read the child's output");
        if read == 0 || !line.ends_with('\n') {
            break;
        }
        if line == "done\n" {
            finished = true;
            break;
        }
        assert!(line.starts_with("progress "), "unexpected output: {line:?}");
        seen += 1;
        if kill_after == Some(seen) {
            child.kill().expect("SIGKILL the child");
            break;
        }
    }
    let status = child.wait().expect("reap the child");
    if kill_after.is_none() || finished {
        let mut stderr = String::new();
        if let Some(mut err) = child.stderr.take() {
            std::io::Read::read_to_string(&mut err, &mut stderr).ok();
        }
        assert!(
            finished && status.success(),
            "load-batch did not finish: {status}\n{stderr}"
        );
    }
    finished
}

#[test]
fn a_batch_killed_midway_and_restarted_pays_each_recipient_once() {
    let seed = seed();
    println!("batch crash test seed {seed} (replay with JIUZHU_CRASH_SEED={seed})");
    let mut random = Random(seed);
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("batch.db");
    let definitions = dir.path().join("processes");
    copy_dir(&processes(), &definitions);
    let mut kills = 0;
    while kills < BATCH_KILLS {
        let kill_after = 1 + random.below(40) as usize;
        if run_load_batch(&db, &definitions, Some(kill_after)) {
            break;
        }
        kills += 1;
    }
    assert!(kills >= 2, "only {kills} kills before the batch finished");
    run_load_batch(&db, &definitions, None);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let store = Store::open(&format!("sqlite:{}", db.display()))
            .await
            .expect("open the crashed database");
        let ledger = jiuzhu_adapters::payments::Ledger::open(&store)
            .await
            .expect("ledger");
        let paid: Vec<String> = ledger
            .instructions(None, None)
            .await
            .expect("instructions")
            .into_iter()
            .filter(|i| i.program == "heating_aid")
            .map(|i| i.case_id)
            .collect();
        let active = BATCH_RECIPIENTS - BATCH_RECIPIENTS / 10;
        let distinct: BTreeSet<&String> = paid.iter().collect();
        assert_eq!(
            paid.len(),
            active,
            "{kills} kills: one payment per active household"
        );
        assert_eq!(distinct.len(), active, "nobody paid twice");
        for i in (9..BATCH_RECIPIENTS).step_by(10) {
            let stopped = format!("household-{i:05}");
            assert!(!distinct.contains(&stopped), "{stopped} was stopped");
        }
        let runs = ledger.batches(None).await.expect("runs");
        assert_eq!(runs.len(), 1, "{runs:?}");
        assert_eq!(
            (runs[0].status.as_str(), runs[0].done, runs[0].paid),
            ("done", active as i64, active as i64)
        );
        let cases = store
            .list_instances(&InstanceFilter {
                process_id: Some("heating_aid".into()),
                ..InstanceFilter::default()
            })
            .await
            .expect("cases");
        assert_eq!(cases.len(), 1, "one case");
        assert_eq!(cases[0].status, "completed");
        store.close().await;
    });
    println!("{kills} kills during the batch");
}

/// Benefits of the payment-run crash test (every tenth stopped), and benefits per page:
/// thirty pages, each its own transaction.
const PAYMENT_BENEFITS: usize = 3_000;
const PAYMENT_PAGE: usize = 100;
const PAYMENT_KILLS: usize = 6;

/// Runs `jiuzhu load-payments` until it has printed `kill_after` lines (then SIGKILLs it)
/// or finishes. Returns whether it finished.
fn run_load_payments(db: &Path, definitions: &Path, out: &Path, kill_after: Option<usize>) -> bool {
    let mut child = Command::new(env!("CARGO_BIN_EXE_jiuzhu"))
        .args([
            "load-payments",
            "--benefits",
            &PAYMENT_BENEFITS.to_string(),
            "--page",
            &PAYMENT_PAGE.to_string(),
            "--out",
        ])
        .arg(out)
        .arg("--db")
        .arg(db)
        .arg("--definitions")
        .arg(definitions)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start jiuzhu load-payments");
    let mut reader = BufReader::new(child.stdout.take().expect("piped stdout"));
    let mut line = String::new();
    let (mut seen, mut finished) = (0, false);
    loop {
        line.clear();
        let read = reader
            .read_line(&mut line)
            .expect("read the child's output");
        if read == 0 || !line.ends_with('\n') {
            break;
        }
        if line == "done\n" {
            finished = true;
            break;
        }
        assert!(
            line.starts_with("progress ") || line.starts_with("file "),
            "unexpected output: {line:?}"
        );
        seen += 1;
        if kill_after == Some(seen) {
            child.kill().expect("SIGKILL the child");
            break;
        }
    }
    let status = child.wait().expect("reap the child");
    if kill_after.is_none() || finished {
        let mut stderr = String::new();
        if let Some(mut err) = child.stderr.take() {
            std::io::Read::read_to_string(&mut err, &mut stderr).ok();
        }
        assert!(
            finished && status.success(),
            "load-payments did not finish: {status}\n{stderr}"
        );
    }
    finished
}

/// The bank files in `dir` (a kill mid-write may leave a hidden temp file; the bank's
/// pickup never sees those), by name.
fn bank_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .expect("bank folder")
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            (!name.starts_with('.'))
                .then(|| (name, std::fs::read(entry.path()).expect("read bank file")))
        })
        .collect()
}

#[test]
fn a_payment_run_killed_midway_and_restarted_writes_the_same_file_and_no_duplicate() {
    let seed = seed();
    println!("payment run crash test seed {seed} (replay with JIUZHU_CRASH_SEED={seed})");
    let mut random = Random(seed);
    let dir = tempfile::tempdir().expect("temp dir");
    let definitions = dir.path().join("processes");
    copy_dir(&processes(), &definitions);

    // The same run, never interrupted, on a database of its own.
    let calm_out = dir.path().join("bank-calm");
    run_load_payments(&dir.path().join("calm.db"), &definitions, &calm_out, None);
    let calm = bank_files(&calm_out);
    assert_eq!(calm.len(), 1, "{:?}", calm.keys());

    let db = dir.path().join("payments.db");
    let out = dir.path().join("bank");
    let pages = PAYMENT_BENEFITS.div_ceil(PAYMENT_PAGE);
    let mut kills = 0;
    while kills < PAYMENT_KILLS {
        // Within the next few pages (each restart resumes, so fewer are left each time),
        // or just after the file was written.
        let kill_after = 1 + random.below(pages as u64 / 6 + 1) as usize;
        if run_load_payments(&db, &definitions, &out, Some(kill_after)) {
            break;
        }
        kills += 1;
    }
    assert!(kills >= 2, "only {kills} kills before the run finished");
    run_load_payments(&db, &definitions, &out, None);
    assert_eq!(
        bank_files(&out),
        calm,
        "{kills} kills: the same file, byte for byte"
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let store = Store::open(&format!("sqlite:{}", db.display()))
            .await
            .expect("open the crashed database");
        let ledger = jiuzhu_adapters::payments::Ledger::open(&store)
            .await
            .expect("ledger");
        let month = "2026-11".parse().expect("month");
        let instructions = ledger
            .instructions(Some(month), None)
            .await
            .expect("instructions");
        let active = PAYMENT_BENEFITS - PAYMENT_BENEFITS / 10;
        let benefits: BTreeSet<Option<&String>> =
            instructions.iter().map(|i| i.benefit_id.as_ref()).collect();
        assert_eq!(
            instructions.len(),
            active,
            "{kills} kills: one per active benefit"
        );
        assert_eq!(benefits.len(), active, "no benefit paid twice");
        assert!(
            instructions.iter().all(|i| i.status
                == jiuzhu_adapters::payments::InstructionStatus::Sent
                && i.batch_id.as_deref() == Some("20261105-001")),
            "all sent in the one file"
        );
        let report = ledger.month_report(month).await.expect("report");
        assert_eq!(report.count, active as u64);
        store.close().await;
    });
    println!("{kills} kills during the payment run");
}
