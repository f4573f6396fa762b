//! `jiuzhu bench nodes`, the `serve` half: K `jiuzhu serve` children on one PostgreSQL
//! database, and C clients holding API tokens, spread round-robin over the nodes, driving
//! `dibao_lite` cases from start to completion through the API (as `bench http` does). The
//! rate counts completed cases; the nodes' dispatchers then carry each payment into the
//! ledger, and every case must be completed and paid exactly once.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use jiuzhu_engine::clock::{Clock as _, SystemClock};
use serde_json::{Value as Json, json};

use super::http;
use super::nodes::Args;
use super::nodes_proc::{ChildProject, CpuSnapshot, Node, PgProbe};
use super::round;
use super::setup::{self, BenchDb};

pub async fn measure(db: &BenchDb, args: &Args, k: usize) -> Result<Json> {
    let url = db
        .postgres_url()
        .context("bench nodes runs on PostgreSQL")?
        .to_string();
    // Deploys the bench definitions; the nodes run what is deployed.
    setup::engine(
        db,
        &args.db.definitions,
        std::sync::Arc::new(SystemClock),
        None,
    )
    .await?;
    // The ledger's and the server's tables, made once here rather than by K nodes at once.
    jiuzhu_adapters::payments::Ledger::open(&db.store).await?;
    let server = jiuzhu_server::ServerDb::open(&db.store)
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    let now = SystemClock.now();
    let mut credentials = Vec::new();
    for client in 0..args.clients {
        let actor = setup::actor(&format!("bench-{client}"), http::UNIT);
        credentials.push(http::token_user(&server, &actor, now).await?);
    }
    let probe = PgProbe::connect(&url).await?;
    let project = ChildProject::create(&args.db.definitions)?;
    let mut nodes = Vec::with_capacity(k);
    for index in 0..k {
        let command = ["serve", "--listen", "127.0.0.1:0"];
        nodes.push(Node::spawn(&project, &url, index, &command, &[], true).await?);
    }
    let bases: Vec<String> = nodes.iter().filter_map(|n| n.base.clone()).collect();
    ensure!(bases.len() == k, "{} of {k} nodes serving", bases.len());

    let backends_before = probe.backends().await?.len();
    let commits_before = probe.commits().await?;
    let queries_before = probe.queries();
    let cpu_before = CpuSnapshot::take(&probe, &nodes).await?;
    let started = Instant::now();
    let (steps, paid) = http::api_round(&bases, &credentials, args.instances).await?;
    let completed_after = started.elapsed().as_secs_f64();
    // The payments reach the ledger through the nodes' dispatchers.
    let timeout = Duration::from_secs(args.timeout);
    loop {
        let pending = probe
            .numbers("SELECT count(*) FROM outbox WHERE status = 'pending'")
            .await?[0];
        if pending == 0 {
            break;
        }
        for node in &mut nodes {
            node.check_running()?;
        }
        if started.elapsed() > timeout {
            bail!("{pending} payments still pending after {} s", args.timeout);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let paid_after = started.elapsed().as_secs_f64();
    let cpu = CpuSnapshot::take(&probe, &nodes).await?.since(&cpu_before);
    for node in nodes {
        node.stop().await?;
    }
    let commits = probe.settled_commits(backends_before).await? - commits_before;
    let probe_queries = (probe.queries() - queries_before).saturating_sub(1);

    let n = i64::try_from(args.instances)?;
    let [
        completed,
        open_tasks,
        effects,
        effect_cases,
        instructions,
        instruction_cases,
        dead,
    ] = probe
        .numbers(
            "SELECT (SELECT count(*) FROM instances WHERE status = 'completed'), \
                 (SELECT count(*) FROM tasks WHERE closed_at IS NULL), \
                 (SELECT count(*) FROM payment_effects WHERE kind = 'payment'), \
                 (SELECT count(DISTINCT instance_id) FROM payment_effects WHERE kind = 'payment'), \
                 (SELECT count(*) FROM payment_instructions), \
                 (SELECT count(DISTINCT case_id) FROM payment_instructions), \
                 (SELECT count(*) FROM outbox WHERE status = 'dead')",
        )
        .await?[..]
    else {
        bail!("the exactly-once counts did not read");
    };
    let outbox = probe
        .text_rows(
            "SELECT status || ' ' || kind || ': ' || count(*)::text || ' ' || \
             coalesce(min(last_error), '') FROM outbox GROUP BY status, kind",
        )
        .await?
        .join("; ");
    probe.close().await;
    ensure!(completed == n, "{completed} of {n} cases completed");
    ensure!(open_tasks == 0, "{open_tasks} tasks left open");
    ensure!(paid == args.instances, "{paid} of {n} cases approved");
    ensure!(
        effects == n && effect_cases == n,
        "{effects} payments in the ledger for {n} cases ({effect_cases} cases); outbox: {outbox}"
    );
    ensure!(
        instructions == n && instruction_cases == n,
        "{instructions} payment instructions for {n} cases ({instruction_cases} cases)"
    );
    ensure!(dead == 0, "{dead} outbox entries dead");
    let net_commits = commits - i64::try_from(probe_queries)?;
    Ok(json!({
        "nodes": k,
        "clients": args.clients,
        "instances": args.instances,
        "steps": steps,
        "seconds": round(completed_after, 3),
        "completions_per_s": round(args.instances as f64 / completed_after, 1),
        "steps_per_s": round(steps as f64 / completed_after, 1),
        "all_paid_seconds": round(paid_after, 3),
        "paid": effects,
        "xact_commits": commits,
        "xact_commits_less_probe": net_commits,
        "commits_per_s": round(net_commits as f64 / paid_after, 1),
        "cpu": cpu,
    }))
}
