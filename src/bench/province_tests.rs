//! The city's 2026-07-01 raise simulated over seeded cases: the totals match the cases
//! assessed one by one with the rules library, the CSV is masked, and nothing in the
//! database changed.

use std::path::Path;

use jiuzhu_engine::store::{Store, StoreOptions};
use jiuzhu_rules::{Policy, RuleSet, parse_case, try_assess};
use rust_decimal::Decimal;

use super::*;
use crate::simulate::{Change, Inputs, Tally};

const CASES: u64 = 600;

fn project() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("processes")
}

fn file_digest(path: &Path) -> Vec<u8> {
    use std::hash::{Hash as _, Hasher as _};
    // Whatever is still in the log (a closing connection may checkpoint it at any moment)
    // goes into the file first, so the file alone holds every row.
    let conn = rusqlite::Connection::open(path).expect("open for the checkpoint");
    let busy: i64 = conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get(0))
        .expect("checkpoint");
    assert_eq!(busy, 0, "the checkpoint was blocked");
    drop(conn);
    let bytes = std::fs::read(path).expect("the database file");
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut hasher);
    let mut digest = hasher.finish().to_le_bytes().to_vec();
    digest.extend((bytes.len() as u64).to_le_bytes());
    digest
}

/// What the simulation must find, worked out case by case with the rules library.
fn expected() -> (Tally, Vec<(String, Change)>) {
    let rules = RuleSet::load_dir(&project().join("rules")).expect("rules");
    let load = |name: &str| Policy::load(&project().join("policies").join(name)).expect("policy");
    let (january, july) = (
        load("shuangyashan-2026-01-01.yaml"),
        load("shuangyashan-2026-07-01.yaml"),
    );
    let assess =
        |program: &str, data: &[(String, serde_json::Value)], as_of: &str, policy: &Policy| {
            let mut case = serde_json::Map::new();
            case.insert("program".into(), program.into());
            case.insert("as_of".into(), as_of.into());
            for (key, value) in data {
                if key == "area" || key == "household" {
                    case.insert(key.clone(), value.clone());
                }
            }
            let case = parse_case(&serde_json::Value::Object(case)).expect("case");
            let a = try_assess(&rules, policy, &case).expect("assess");
            (
                a.eligible(),
                if a.eligible() {
                    a.monthly_amount()
                } else {
                    Decimal::ZERO
                },
            )
        };
    let mut tally = Tally::default();
    let mut changes = Vec::new();
    for i in 0..CASES {
        let (program, data) = household(i);
        // Decided on 2026-06-15 under the January policy: eligible → approved.
        let (granted, _) = assess(program, &data, "2026-06-15", &january);
        let (now_ok, now) = assess(program, &data, "2026-07-01", &january);
        let (then_ok, then) = assess(program, &data, "2026-07-01", &july);
        let change = if granted {
            tally.current_monthly += now;
            tally.proposed_monthly += then;
            if now_ok && !then_ok {
                tally.losing_eligibility += 1;
                Change::LosingEligibility
            } else if then > now || (then_ok && !now_ok) {
                tally.gaining += 1;
                Change::Gaining
            } else if then < now {
                tally.losing += 1;
                Change::Losing
            } else {
                tally.unchanged += 1;
                Change::Unchanged
            }
        } else if then_ok && !now_ok {
            tally.newly_eligible += 1;
            tally.newly_eligible_monthly += then;
            Change::NewlyEligible
        } else {
            tally.still_ineligible += 1;
            Change::StillIneligible
        };
        changes.push((data[0].1.as_str().unwrap_or_default().to_string(), change));
    }
    (tally, changes)
}

#[test]
fn the_july_raise_over_a_seeded_city_matches_case_by_case_assessment() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("dir");
    let db_path = dir.path().join("city.db");
    let options = DbOptions {
        db: Some(db_path.display().to_string()),
        synchronous: setup::SyncArg::Normal,
        definitions: project().join("bench"),
    };
    runtime.block_on(async {
        let db = BenchDb::open(&options).await.expect("database");
        let clock = Arc::new(ManualClock::new(decided_on()));
        let engine = setup::engine(&db, &options.definitions, clock, None)
            .await
            .expect("engine");
        setup::seed(&engine, PROCESS, CASES, 100, move |i| {
            let (program, data) = household(i);
            let mut vars = BTreeMap::new();
            vars.insert("program".to_string(), Value::Str(program.to_string()));
            for (key, value) in data {
                vars.insert(key, Value::from_json(&value));
            }
            (setup::actor("clerk", &unit_of(i, 3, 2)), vars)
        })
        .await
        .expect("seeding");
        drop(engine);
        db.store.close().await;
        drop(db);
    });
    let before = file_digest(&db_path);

    let csv_path = dir.path().join("changes.csv");
    let run = runtime.block_on(async {
        let store = Store::open_with(
            &db_path.display().to_string(),
            StoreOptions {
                read_only: true,
                ..StoreOptions::default()
            },
        )
        .await
        .expect("read-only store");
        let inputs = simulate::load_inputs(InputOptions {
            proposed: &project().join("policies/shuangyashan-2026-07-01.yaml"),
            definitions: &project(),
            as_of: None,
            today: Utc
                .with_ymd_and_hms(2026, 12, 3, 0, 0, 0)
                .single()
                .expect("date"),
            granted: vec!["approved".into()],
            refused: vec!["rejected".into()],
        })
        .expect("inputs");
        assert_eq!(inputs.as_of.to_string(), "2026-07-01");
        let csv: Box<dyn std::io::Write + Send> =
            Box::new(std::fs::File::create(&csv_path).expect("csv"));
        let summary = Summary::new(5, Some(csv)).expect("summary");
        let inputs = Arc::new(inputs);
        let run = simulate::simulate(&store, inputs.clone(), None, summary)
            .await
            .expect("simulation");
        // One case's steps side by side: the standard is the step the raise changes.
        let first = store
            .decided_cases(&jiuzhu_engine::store::simulate::DecidedPage {
                after: String::new(),
                unit: None,
                limit: 1,
                inputs: true,
            })
            .await
            .expect("a case");
        let explained = simulate::explain::run(&store, &inputs, &first[0].id, false)
            .await
            .expect("explain");
        assert!(explained.contains(&first[0].id), "{explained}");
        assert!(
            explained
                .lines()
                .any(|l| l.starts_with('*') && l.contains("standard")),
            "{explained}"
        );
        let as_json = simulate::explain::run(&store, &inputs, &first[0].id, true)
            .await
            .expect("explain as JSON");
        let as_json: serde_json::Value = serde_json::from_str(&as_json).expect("JSON");
        assert_ne!(
            as_json["current"]["assessment"]["standard"],
            as_json["proposed"]["assessment"]["standard"]
        );
        fast_path_matches_assess_per_case(&store, &inputs, &db_path).await;
        store.close().await;
        run
    });
    assert_eq!(
        before,
        file_digest(&db_path),
        "the simulation changed the database"
    );

    let (want, changes) = expected();
    assert_eq!(run.cases_read, CASES);
    assert_eq!(run.summary.total, want);
    assert!(
        run.summary.unassessable.is_empty(),
        "{:?}",
        run.summary.unassessable
    );
    // The raise moves money and people: the test would not notice a simulation that did nothing.
    assert!(want.gaining > 0 && want.newly_eligible > 0, "{want:?}");
    assert!(want.proposed_monthly > want.current_monthly);
    let report = run.summary.to_json();
    assert_eq!(
        report["total"]["yearly_change"],
        jiuzhu_rules::money((want.proposed_monthly - want.current_monthly) * Decimal::from(12))
    );
    assert_eq!(report["largest_changes"].as_array().map(Vec::len), Some(5));

    // Every change is a CSV row; names and ID numbers are masked.
    let text = std::fs::read_to_string(&csv_path).expect("csv text");
    let changed = changes
        .iter()
        .filter(|(_, c)| !matches!(c, Change::Unchanged | Change::StillIneligible))
        .count();
    assert_eq!(
        text.lines().count(),
        changed + 1,
        "header plus one row per change"
    );
    assert_eq!(run.summary.csv_rows as usize, changed);
    for (name, _) in &changes {
        assert!(!text.contains(name.as_str()), "{name} unmasked in the CSV");
    }
    assert!(
        !text.contains("23050219"),
        "an ID number unmasked in the CSV"
    );
    assert!(text.contains("申*"), "masked names are written");
}

/// Every case as the simulation reads and assesses it (the variables cut out of the state
/// by the database, policies made into values once, no trace) against the same case read
/// whole from the file and assessed with [`try_assess`], trace and all: the same group,
/// eligibility and amount under both policies, case by case.
async fn fast_path_matches_assess_per_case(store: &Store, inputs: &Inputs, db_path: &Path) {
    let mut fast = std::collections::BTreeMap::new();
    let mut after = String::new();
    loop {
        let page = store
            .decided_cases(&jiuzhu_engine::store::simulate::DecidedPage {
                after: after.clone(),
                unit: None,
                limit: 250,
                inputs: true,
            })
            .await
            .expect("a page");
        let Some(last) = page.last() else { break };
        after = last.id.clone();
        for row in page {
            assert!(
                row.vars.as_deref().is_some_and(|v| !v.contains("trace")),
                "the page carries the assessment's trace: {:?}",
                row.vars
            );
            let id = row.id.clone();
            fast.insert(id, simulate::evaluate_case(inputs, row));
        }
    }
    let conn =
        rusqlite::Connection::open_with_flags(db_path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open the file");
    let mut select = conn
        .prepare("SELECT id, unit, outcome, state FROM instances ORDER BY id")
        .expect("select");
    let rows: Vec<(String, String, String, String)> = select
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(rows.len(), fast.len());
    let figures = |a: &jiuzhu_rules::Assessment| {
        let monthly = if a.eligible() {
            a.monthly_amount()
        } else {
            Decimal::ZERO
        };
        (a.eligible(), monthly)
    };
    for (id, unit, outcome, state) in rows {
        let state: serde_json::Value = serde_json::from_str(&state).expect("state");
        let vars = &state["vars"];
        assert!(vars["assessment"]["trace"].is_array(), "the stored trace");
        let case = parse_case(&serde_json::json!({
            "program": vars["assessment"]["program"],
            "as_of": inputs.as_of.to_string(),
            "area": vars["area"],
            "household": vars["household"],
        }))
        .expect("case");
        let in_force = inputs.in_force.select(&unit, inputs.as_of).expect("policy");
        let current = try_assess(&inputs.rules, in_force, &case).expect("assess");
        let proposed = try_assess(&inputs.rules, &inputs.proposed, &case).expect("assess");
        assert!(!current.trace().is_empty());
        let result = fast
            .get(&id)
            .expect("the case read")
            .as_ref()
            .unwrap_or_else(|(_, skip)| panic!("{id} skipped: {skip:?}"));
        let group = if outcome == "approved" {
            simulate::Group::Recipient
        } else {
            simulate::Group::Refused
        };
        assert_eq!(result.group, group, "{id}");
        assert_eq!(
            (result.current.eligible, result.current.monthly),
            figures(&current),
            "{id} under the policy in force"
        );
        assert_eq!(
            (result.proposed.eligible, result.proposed.monthly),
            figures(&proposed),
            "{id} under the proposal"
        );
    }
}
