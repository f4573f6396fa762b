//! `jiuzhu bench province`: a province-sized table of decided cases — a realistic mix of
//! programs, household sizes 1–6 and units, each assessed by the engine at seeding — and
//! the time `simulate-policy` takes over it (cases per second), its peak memory, and the
//! database's bytes per case. `--payments N` times the province's monthly payment run
//! instead (`province_payments.rs`); the archive part is another bench's business.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Result, anyhow, ensure};
use chrono::{NaiveDate, TimeZone as _, Utc};
use jiuzhu_engine::clock::{Clock as _, ManualClock, SystemClock};
use jiuzhu_rules::Value;
use serde_json::json;

use super::setup::{self, BenchDb};
use super::{DbOptions, round};
use crate::simulate::{self, InputOptions, Summary};

const PROCESS: &str = "province_lite";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Decided cases to seed (`--cases 1000000` for a whole province).
    #[arg(long, default_value_t = 100_000)]
    pub cases: u64,
    /// Counties; each has `--towns` township units.
    #[arg(long, default_value_t = 8)]
    pub counties: u64,
    /// Township units per county.
    #[arg(long, default_value_t = 5)]
    pub towns: u64,
    /// The proposed policy the simulation is timed with (the city's 2026-07-01 raise).
    #[arg(
        long,
        default_value = "processes/policies/shuangyashan-2026-07-01.yaml"
    )]
    pub policy: PathBuf,
    /// Time the monthly payment run instead: seed this many active monthly benefits and
    /// measure the run, its rerun, the bank file and the report.
    #[arg(long)]
    pub payments: Option<u64>,
    /// Cases per seeding transaction.
    #[arg(long, default_value_t = 5_000)]
    pub seed_batch: usize,
    #[command(flatten)]
    pub db: DbOptions,
}

pub async fn run(args: &Args) -> Result<serde_json::Value> {
    ensure!(args.cases > 0, "--cases must be at least 1");
    ensure!(
        args.counties > 0 && args.towns > 0,
        "--counties and --towns must be at least 1"
    );
    if let Some(benefits) = args.payments {
        ensure!(benefits > 0, "--payments must be at least 1");
        return setup::with_db(&args.db, async |db| {
            payments::measure(db, args, benefits).await
        })
        .await;
    }
    setup::with_db(&args.db, async |db| measure(db, args).await).await
}

/// The day the seeded cases were decided: before the raise, so they were assessed under
/// the policy it replaces.
fn decided_on() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 15, 2, 0, 0)
        .single()
        .unwrap_or(chrono::DateTime::<Utc>::MIN_UTC)
}

async fn measure(db: &BenchDb, args: &Args) -> Result<serde_json::Value> {
    let clock = Arc::new(ManualClock::new(decided_on()));
    let engine = setup::engine(db, &args.db.definitions, clock, None).await?;
    let (counties, towns) = (args.counties, args.towns);
    let seeded = setup::seed(&engine, PROCESS, args.cases, args.seed_batch, move |i| {
        let unit = unit_of(i, counties, towns);
        let (program, data) = household(i);
        let mut vars = BTreeMap::new();
        vars.insert("program".to_string(), Value::Str(program.to_string()));
        for (key, value) in data {
            vars.insert(key, Value::from_json(&value));
        }
        (setup::actor(&format!("clerk-{i}"), &unit), vars)
    })
    .await?;
    let database_bytes = db.store.database_bytes().await?;

    let project = args
        .db
        .definitions
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let inputs = simulate::load_inputs(InputOptions {
        proposed: &args.policy,
        definitions: &project,
        as_of: None,
        today: SystemClock.now(),
        granted: vec!["approved".into()],
        refused: vec!["rejected".into()],
    })
    .map_err(|e| anyhow!(e))?;
    let (_, rss_before) = setup::memory_mib();
    reset_peak_rss();
    let summary = Summary::new(10, None)?;
    let run = simulate::simulate(&db.store, Arc::new(inputs), None, summary).await?;
    let (peak_rss_mib, _) = setup::memory_mib();
    ensure!(
        run.cases_read == args.cases,
        "the simulation read {} cases of {}",
        run.cases_read,
        args.cases
    );
    let total = &run.summary.total;
    ensure!(
        total.recipients() + total.newly_eligible + total.still_ineligible == args.cases,
        "the simulation accounted for {} cases of {} ({} unassessable)",
        total.recipients() + total.newly_eligible + total.still_ineligible,
        args.cases,
        run.summary
            .unassessable
            .values()
            .map(|(n, _)| n)
            .sum::<u64>()
    );
    let seconds = run.elapsed.as_secs_f64();
    Ok(json!({
        "bench": "province",
        "db": db.kind(),
        "synchronous": db.synchronous(),
        "cases": args.cases,
        "units": counties * towns,
        "seed_seconds": round(seeded.elapsed.as_secs_f64(), 3),
        "seed_cases_per_s": round(seeded.cases as f64 / seeded.elapsed.as_secs_f64(), 1),
        "simulate_seconds": round(seconds, 3),
        "simulate_cases_per_s": round(run.cases_read as f64 / seconds, 1),
        "simulate_threads": std::thread::available_parallelism().map_or(2, usize::from),
        "rss_before_simulate_mib": rss_before,
        "peak_rss_mib": peak_rss_mib,
        "database_bytes": database_bytes,
        "database_bytes_per_case": round(database_bytes as f64 / args.cases as f64, 1),
        "simulation": run.summary.total.to_json(),
    }))
}

/// Resets the kernel's peak-RSS mark (`VmHWM`), so the peak reported is the simulation's
/// own and not the seeding's; where that is not possible the peak covers both.
pub(super) fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

pub(super) fn unit_of(i: u64, counties: u64, towns: u64) -> String {
    // Cases of one unit are spread over the whole table, as applications arrive.
    let county = (i.wrapping_mul(7919)) % counties;
    let town = (i / counties) % towns;
    format!("双鸭山市/县区{county:02}/乡镇{town:02}")
}

/// A small deterministic generator: the same case for the same index on every run.
pub(super) fn mix(i: u64, salt: u64) -> u64 {
    let mut x = i
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(salt.wrapping_mul(0xBF58_476D_1CE4_E5B9));
    x ^= x >> 31;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 29)
}

/// Case `i`'s program and start data: 70 % dibao, 20 % low_income, 10 % tekun; households
/// of 1–6 members (tekun: one) with incomes around the standard, so the raise moves some.
pub fn household(i: u64) -> (&'static str, Vec<(String, serde_json::Value)>) {
    let program = match mix(i, 1) % 10 {
        0..=6 => "dibao",
        7 | 8 => "low_income",
        _ => "tekun",
    };
    let size = if program == "tekun" {
        1
    } else {
        1 + mix(i, 2) % 6
    };
    let area = if mix(i, 3) % 10 < 6 { "urban" } else { "rural" };
    let per_person = match program {
        "dibao" => 300 + mix(i, 4) % 480,
        "low_income" => 500 + mix(i, 4) % 700,
        _ => mix(i, 4) % 600,
    };
    let decided = NaiveDate::from_ymd_opt(2026, 6, 15).unwrap_or_default();
    let members: Vec<serde_json::Value> = (0..size)
        .map(|m| {
            let age = if program == "tekun" {
                60 + mix(i, 10 + m) % 30
            } else {
                1 + mix(i, 10 + m) % 85
            };
            let birth = decided
                .checked_sub_months(chrono::Months::new(
                    u32::try_from(age * 12 + 1).unwrap_or(0),
                ))
                .unwrap_or(decided);
            let mut member = json!({
                "id": format!("m{}", m + 1),
                "birth_date": birth.format("%Y-%m-%d").to_string(),
                "income": if (18..60).contains(&age) || m == 0 {
                    json!([{"kind": "wage", "monthly": format!("{per_person}.00")}])
                } else {
                    json!([])
                },
            });
            if program == "tekun" {
                member["adl_not_met"] = json!(mix(i, 20) % 7);
            }
            if mix(i, 30 + m) % 20 == 0 {
                member["serious_illness"] = json!(true);
            }
            member
        })
        .collect();
    let mut data = vec![
        ("applicant_name".to_string(), json!(format!("申请人{i}"))),
        ("area".to_string(), json!(area)),
        (
            "household".to_string(),
            json!({
                "members": members,
                "savings": format!("{}.00", mix(i, 5) % 20_000),
            }),
        ),
    ];
    data.push((
        "bank".to_string(),
        json!({
            "account": format!("6222{:012}", i),
            "id_number": id_number(i),
        }),
    ));
    (program, data)
}

/// A well-formed ID number for seeded case `i`: a birth date in 1950–51 and the GB 11643
/// check character, so the data passes the checks at the door.
fn id_number(i: u64) -> String {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: &[u8; 11] = b"10X98765432";
    let born = chrono::NaiveDate::from_ymd_opt(1950, 1, 1)
        .unwrap_or_default()
        .checked_add_days(chrono::Days::new(i % 500))
        .unwrap_or_default();
    let body = format!("230502{}{:03}", born.format("%Y%m%d"), i % 1000);
    let sum: u32 = body
        .bytes()
        .zip(WEIGHTS)
        .map(|(digit, weight)| u32::from(digit - b'0') * weight)
        .sum();
    let check = char::from(CHECK[(sum % 11) as usize]);
    format!("{body}{check}")
}

#[path = "province_payments.rs"]
mod payments;

#[cfg(test)]
#[path = "province_tests.rs"]
mod tests;
