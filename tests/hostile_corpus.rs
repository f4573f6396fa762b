//! The hostile corpus: release-like bad inputs run through the real `jiuzhu` binary —
//! definitions for `validate`, case files for `assess`, start data for `start`, and two
//! definitions that loop without waiting (`tests/hostile/`). Every input must end the
//! process with an exit code (never a signal: no abort, no stack overflow, no OOM kill),
//! and a refused one with a message saying what is wrong. The peak RSS of the children
//! stays under 1 GiB; no time is asserted. The figures (count, worst time, peak RSS)
//! are printed and kept in BENCHMARKS.md ("Hostile inputs and fuzzing").

use jiuzhu_testkit::copy_dir;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One hostile input: what it is, the command line, and what it must do.
struct Input {
    name: &'static str,
    args: Vec<String>,
    /// Must be accepted (exit 0) rather than refused.
    accepted: bool,
    /// A refusal's output must contain this.
    says: &'static str,
}

/// Runs the binary with `args`, output to files in `dir`; returns its exit code (None when
/// a signal ended it), its peak resident set in KiB (from `wait4`'s resource usage of that
/// one child), and its output.
fn run(dir: &Path, args: &[String]) -> (Option<i32>, i64, String) {
    let out_path = dir.join("out.txt");
    let err_path = dir.join("err.txt");
    let child = Command::new(env!("CARGO_BIN_EXE_jiuzhu"))
        .current_dir(root())
        .args(args)
        .env_remove("JIUZHU_DB")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"))
        .spawn()
        .expect("the jiuzhu binary runs");
    let pid = libc::pid_t::try_from(child.id()).expect("pid fits");
    let mut status: libc::c_int = 0;
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: waits for our own child `pid`, writing its status and resource usage into
    // the two locals given; the child is reaped here, not by `Child` (which is dropped).
    let rc = unsafe { libc::wait4(pid, &mut status, 0, usage.as_mut_ptr()) };
    assert_eq!(rc, pid, "wait4");
    drop(child);
    // SAFETY: filled by the successful wait4 above (and zeroed before).
    let usage = unsafe { usage.assume_init() };
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    let text = format!(
        "{}{}",
        std::fs::read_to_string(&out_path).unwrap_or_default(),
        std::fs::read_to_string(&err_path).unwrap_or_default()
    );
    (code, usage.ru_maxrss, text)
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    let mut file = std::fs::File::create(&path).expect("create input");
    file.write_all(bytes).expect("write input");
    path.display().to_string()
}

/// Writes `prefix`, `count` times `byte`, then `suffix`, a megabyte at a time: the big
/// inputs are never held in this process, whose peak memory a spawned child's `ru_maxrss`
/// may include (a child sharing the parent's memory until `exec` inherits its high-water).
fn write_repeated(
    dir: &Path,
    name: &str,
    prefix: &[u8],
    byte: u8,
    count: usize,
    suffix: &[u8],
) -> String {
    let path = dir.join(name);
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).expect("create input"));
    file.write_all(prefix).expect("write input");
    let chunk = vec![byte; 1024 * 1024];
    let mut left = count;
    while left > 0 {
        let n = left.min(chunk.len());
        file.write_all(&chunk[..n]).expect("write input");
        left -= n;
    }
    file.write_all(suffix).expect("write input");
    file.flush().expect("flush input");
    path.display().to_string()
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn member(i: usize) -> serde_json::Value {
    serde_json::json!({
        "id": format!("m{i}"),
        "birth_date": "1980-01-01",
        "income": [{"kind": "wage", "monthly": "100.00"}]
    })
}

fn case_with_members(n: usize) -> Vec<u8> {
    let members: Vec<_> = (0..n).map(member).collect();
    serde_json::to_vec(&serde_json::json!({
        "program": "dibao",
        "as_of": "2026-03-01",
        "area": "urban",
        "household": {"members": members, "savings": "0.00"}
    }))
    .expect("json")
}

fn start_data(extra: &str) -> String {
    format!(
        r#"{{"applicant_name": "张三", "area": "urban", "household": {{"members": [{{"id": "m1", "birth_date": "1980-01-01", "income": []}}], "savings": "0.00"}}{extra}}}"#
    )
}

#[test]
fn hostile_inputs_end_cleanly_within_bounds() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    // A project folder of the shipped definitions. The two loops are refused by the
    // loader (a cycle with nothing on it that waits), so they never reach a start.
    let defs = d.join("processes");
    copy_dir(&root().join("processes"), &defs);
    let hostile = |name: &str| {
        root()
            .join("tests/hostile")
            .join(name)
            .display()
            .to_string()
    };
    let db = d.join("jiuzhu.db").display().to_string();
    let defs_arg = defs.display().to_string();
    let deploy = Command::new(env!("CARGO_BIN_EXE_jiuzhu"))
        .args(["--definitions", &defs_arg, "--db", &db, "deploy"])
        .output()
        .expect("deploy runs");
    assert!(
        deploy.status.success(),
        "{}",
        String::from_utf8_lossy(&deploy.stderr)
    );

    let dibao = std::fs::read_to_string(root().join("processes/dibao.yaml")).expect("dibao");
    let policy = root()
        .join("rules/tests/examples/policy.yaml")
        .display()
        .to_string();
    let good_case =
        std::fs::read(root().join("rules/tests/examples/dibao-single-person.case.json"))
            .expect("case");
    let sixty_mb = 60 * 1024 * 1024;

    let validate = |file: String| args(&["validate", &file]);
    let assess = |file: String| args(&["assess", "--policy", &policy, "--case", &file]);
    let start = |process: &str, file: String| {
        args(&[
            "--definitions",
            &defs_arg,
            "--db",
            &db,
            "start",
            process,
            "--data",
            &file,
            "--as",
            "zx_clerk",
        ])
    };

    let mut laughs = String::from("process: laughs\na0: &a0 [\"哈哈哈哈哈哈哈哈\"]\n");
    for i in 1..=30 {
        let prev = format!("*a{}", i - 1);
        laughs.push_str(&format!(
            "a{i}: &a{i} [{}]\n",
            [prev.as_str(); 10].join(", ")
        ));
    }
    let mut invalid_utf8 = dibao.clone().into_bytes();
    invalid_utf8.splice(200..200, [0xff, 0xfe, 0xc0, 0x80]);
    let nested_block: String = (0..1_000)
        .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
        .collect();
    let mut contact_prefix = start_data(", \"contact\": {\"note\": \"").into_bytes();
    contact_prefix.truncate(contact_prefix.len() - 1);

    let inputs = vec![
        // --- definitions (the YAML loader)
        Input { name: "YAML: 100,000 nested flow sequences", args: validate(write(d, "deep-flow.yaml", format!("process: x\nnodes: {}{}", "[".repeat(100_000), "]".repeat(100_000)).as_bytes())), accepted: false, says: "deep" },
        Input { name: "YAML: 1,000 nested block mappings", args: validate(write(d, "deep-block.yaml", nested_block.as_bytes())), accepted: false, says: "" },
        Input { name: "YAML: billion laughs (10^30 aliases)", args: validate(write(d, "laughs.yaml", laughs.as_bytes())), accepted: false, says: "" },
        Input { name: "YAML: tab indentation", args: validate(write(d, "tabs.yaml", dibao.replacen("\n  - id:", "\n\t- id:", 1).as_bytes())), accepted: false, says: "tab" },
        Input { name: "YAML: byte-order mark", args: validate(write(d, "bom.yaml", format!("\u{feff}{dibao}").as_bytes())), accepted: true, says: "" },
        Input { name: "YAML: invalid UTF-8", args: validate(write(d, "utf8.yaml", &invalid_utf8)), accepted: false, says: "UTF-8" },
        Input { name: "YAML: huge numbers", args: validate(write(d, "numbers.yaml", dibao.replacen("due: 5wd", "due: 99999999999999999999999999999999wd", 1).replacen("process: dibao", "process: dibao\nversion: 1e99999", 1).as_bytes())), accepted: false, says: "" },
        Input { name: "YAML: duplicate keys", args: validate(write(d, "dup.yaml", dibao.replacen("process: dibao\n", "process: dibao\nprocess: tekun\n", 1).as_bytes())), accepted: false, says: "process" },
        Input { name: "YAML: 60 MB definition", args: validate(write_repeated(d, "huge.yaml", b"process: x\n# ", b'x', sixty_mb, b"\n")), accepted: false, says: "" },
        Input { name: "YAML: empty file", args: validate(write(d, "empty.yaml", b"")), accepted: false, says: "" },
        // --- case files (assess)
        Input { name: "case: 10,000-member household", args: assess(write(d, "members-10000.json", &case_with_members(10_000))), accepted: true, says: "" },
        Input { name: "case: 10,001-member household", args: assess(write(d, "members-10001.json", &case_with_members(10_001))), accepted: false, says: "members" },
        Input { name: "case: duplicate JSON keys", args: assess(write(d, "dup.json", String::from_utf8_lossy(&good_case).replacen("\"area\": \"urban\"", "\"area\": \"urban\", \"area\": \"rural\"", 1).as_bytes())), accepted: false, says: "duplicate" },
        Input { name: "case: 100,000 nested JSON arrays", args: assess(write(d, "deep.json", format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).as_bytes())), accepted: false, says: "" },
        Input { name: "case: huge numbers", args: assess(write(d, "numbers.json", String::from_utf8_lossy(&good_case).replacen("\"as_of\"", &format!("\"savings_x\": {}, \"n\": 1e400, \"as_of\"", "9".repeat(400)), 1).as_bytes())), accepted: false, says: "" },
        Input { name: "case: invalid UTF-8", args: assess(write(d, "utf8.json", b"{\"program\": \"\xff\xfe\"}")), accepted: false, says: "" },
        Input { name: "case: byte-order mark", args: assess(write(d, "bom.json", &[b"\xef\xbb\xbf".as_slice(), &good_case].concat())), accepted: false, says: "" },
        Input { name: "case: 60 MB file", args: assess(write_repeated(d, "huge.json", b"{\"pad\": \"", b'x', sixty_mb, b"\"}")), accepted: false, says: "" },
        // --- start data and the runtime
        Input { name: "start: 60 MB contact object", args: start("dibao", write_repeated(d, "contact.json", &contact_prefix, b'x', sixty_mb, b"\"}}")), accepted: false, says: "input_too_large" },
        Input { name: "start: duplicate JSON keys", args: start("dibao", write(d, "start-dup.json", start_data(", \"area\": \"rural\"").as_bytes())), accepted: false, says: "duplicate" },
        Input { name: "start: 10,001 members", args: start("dibao", write(d, "start-members.json", &serde_json::to_vec(&serde_json::json!({"applicant_name": "张三", "area": "urban", "household": {"members": (0..10_001).map(member).collect::<Vec<_>>(), "savings": "0.00"}})).expect("json"))), accepted: false, says: "members" },
        Input { name: "definition: string `+` loop", args: validate(hostile("string_loop.yaml")), accepted: false, says: "E_LOOP_WITHOUT_WAIT" },
        Input { name: "definition: compute-node loop", args: validate(hostile("compute_loop.yaml")), accepted: false, says: "E_LOOP_WITHOUT_WAIT" },
    ];

    let mut peak = 0;
    let mut worst_time = (Duration::ZERO, "");
    let mut worst_rss = (0, "");
    let mut problems = Vec::new();
    let outputs = tempfile::tempdir().expect("temp dir");
    println!("{} hostile inputs:", inputs.len());
    for input in &inputs {
        let started = Instant::now();
        let (code, rss, text) = run(outputs.path(), &input.args);
        let took = started.elapsed();
        if rss > peak {
            peak = rss;
            worst_rss = (rss, input.name);
        }
        if took > worst_time.0 {
            worst_time = (took, input.name);
        }
        let head: String = text.chars().take(300).collect();
        println!(
            "  {:<40} exit {:?} in {:>7.2?}, {:>4} MiB: {}",
            input.name,
            code,
            took,
            rss / 1024,
            head.lines().next().unwrap_or_default()
        );
        match code {
            None => problems.push(format!("{}: killed by a signal: {head}", input.name)),
            Some(0) if input.accepted => {}
            Some(0) => problems.push(format!("{}: accepted, should be refused", input.name)),
            Some(_) if input.accepted => problems.push(format!(
                "{}: refused, should be accepted: {head}",
                input.name
            )),
            Some(_) => {
                if text.trim().is_empty()
                    || !text.to_lowercase().contains(&input.says.to_lowercase())
                {
                    problems.push(format!(
                        "{}: refusal does not say {:?}: {head}",
                        input.name, input.says
                    ));
                }
                if text.contains("panicked") || text.contains("RUST_BACKTRACE") {
                    problems.push(format!("{}: panicked: {head}", input.name));
                }
            }
        }
    }
    println!(
        "worst time: {:.2?} ({}); highest peak RSS: {} MiB ({})",
        worst_time.0,
        worst_time.1,
        worst_rss.0 / 1024,
        worst_rss.1
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(peak < 1024 * 1024, "peak RSS {peak} KiB is over 1 GiB");
}
