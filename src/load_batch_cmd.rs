//! `jiuzhu load-batch` (hidden, for the crash test): a heating aid run over many
//! recipients, carried out by the payments ledger, printing `progress N` as recipients
//! are done and `done` when the case has its report.
//!
//! It resumes from whatever the database holds, so it can be killed at any moment and
//! started again: the benefits are seeded under fixed effect ids (the ledger applies each
//! once), the case is started only when there is none, and the run itself resumes at its
//! first pending recipient. Every tenth benefit was stopped before the run.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, Result, anyhow};
use chrono::{DateTime, Utc};
use jiuzhu_adapters::payments::Ledger;
use jiuzhu_engine::clock::ManualClock;
use jiuzhu_engine::core::Actor;
use jiuzhu_engine::project::Project;
use jiuzhu_engine::runtime::Engine;
use jiuzhu_engine::store::{InstanceFilter, Store};
use jiuzhu_rules::Value;
use serde_json::json;

/// Business time of the run: 15 October 2026, 09:00 in Beijing.
const RUN_AT: &str = "2026-10-15T09:00:00+08:00";
/// The season the run pays.
pub const SEASON: &str = "2026-2027";
/// The unit of the run and of every recipient.
const UNIT: &str = "双鸭山市/尖山区";

pub fn run(db: &str, definitions: &Path, recipients: usize) -> i32 {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            crate::errors::emit(
                "runtime",
                &format!("cannot start the async runtime: {e}"),
                &[],
            );
            return 1;
        }
    };
    match runtime.block_on(drive(db, definitions, recipients)) {
        Ok(()) => 0,
        Err(e) => crate::errors::report(&e),
    }
}

async fn drive(db: &str, definitions: &Path, recipients: usize) -> Result<()> {
    let project = Project::load(definitions).map_err(|problems| anyhow!(problems.join("\n")))?;
    let store = Store::open(db)
        .await
        .with_context(|| format!("opening {db}"))?;
    let now: DateTime<Utc> = DateTime::parse_from_rfc3339(RUN_AT)?.with_timezone(&Utc);
    let clock = Arc::new(ManualClock::new(now));
    let engine = Engine::new(
        store.clone(),
        Arc::new(project),
        clock,
        &format!("load-batch-{}", std::process::id()),
    )
    .map_err(|e| anyhow!(e))?;
    engine.deploy().await.map_err(|e| anyhow!(e))?;
    let ledger = Ledger::open(&store).await?;
    seed(&ledger, recipients, now).await?;

    let filter = InstanceFilter {
        process_id: Some("heating_aid".into()),
        ..InstanceFilter::default()
    };
    let case = match store.list_instances(&filter).await?.into_iter().next() {
        Some(row) => row.id,
        None => {
            let actor = Actor {
                user: "admin".into(),
                roles: vec!["admin".into()],
                unit: UNIT.into(),
            };
            let data = BTreeMap::from([("season".to_string(), Value::Str(SEASON.into()))]);
            engine
                .start("heating_aid", &actor, data)
                .await
                .map_err(|e| anyhow!(e))?
                .instance
                .id
        }
    };
    let (row, _, _) = engine.load(&case).await.map_err(|e| anyhow!(e))?;
    if row.status == "active" {
        let entry = store
            .outbox_of_instance(&case)
            .await?
            .into_iter()
            .find(|e| e.entry.kind == "batch")
            .ok_or_else(|| anyhow!("{case} waits without a batch request"))?
            .entry;
        let mut done = 0_u64;
        let mut report = || {
            done += 1;
            println!("progress {done}");
        };
        ledger
            .run_batch_observed(&engine, &entry, now, &mut report)
            .await?;
    }
    println!("done");
    Ok(())
}

/// The recipients' monthly benefits, each under a fixed effect id; every tenth stopped.
async fn seed(ledger: &Ledger, recipients: usize, now: DateTime<Utc>) -> Result<()> {
    let before = now - chrono::Duration::days(200);
    for i in 0..recipients {
        let case = format!("household-{i:05}");
        ledger
            .apply_effect(
                &json!({"type": "payment", "id": format!("{case}-e1"), "instance": case,
                        "unit": format!("{UNIT}/富安街道"), "amount": "705.00",
                        "purpose": "dibao", "schedule": "monthly", "from": "2026-01-01",
                        "payee": format!("户主{i}")}),
                before,
            )
            .await?;
        if i % 10 == 9 {
            ledger
                .apply_effect(
                    &json!({"type": "payment_stop", "id": format!("{case}-e2"),
                            "instance": case, "unit": format!("{UNIT}/富安街道"),
                            "purpose": "dibao", "from": "2026-09-01"}),
                    before,
                )
                .await?;
        }
    }
    Ok(())
}
