//! What the resources beyond cases answer: definitions (validate, versions, deploy),
//! hand-overs, incidents and their retry, payments, assessment, bad queries.

mod common;

use anyhow::{Context as _, Result, ensure};
use common::*;
use jiuzhu_engine::core::Actor;
use jiuzhu_testkit::Db;
use serde_json::json;

const ZX: &str = "双鸭山市/尖山区/中心站街道";

const USERS: &[(&str, &str, &str)] = &[
    ("zx_clerk", "township_clerk", ZX),
    ("zx_clerk2", "township_clerk", ZX),
    ("zx_head", "township_head", ZX),
    ("zx_staff1", "township_staff", ZX),
    ("county_staff1", "county_staff", "双鸭山市/尖山区"),
    ("admin", "admin", "双鸭山市/尖山区"),
];

async fn setup(db: Db) -> (Ctx, Teardown) {
    setup_with(db, USERS, 0).await
}

async fn definitions_validate_list_and_deploy(ctx: Ctx) -> Result<()> {
    let admin = ctx.token("admin").await?;
    let source = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../processes/dibao.yaml"),
    )?;
    let good = ctx
        .post(
            "/api/definitions/validate",
            Auth::Bearer(&admin),
            json!({"source": source, "name": "dibao.yaml"}),
        )
        .await?;
    ensure!(
        good.body["ok"] == true && good.body["process"] == "dibao",
        "{}",
        good.body
    );
    let broken = source.replace("role: township_clerk", "role: no_such_role");
    let bad = ctx
        .post(
            "/api/definitions/validate",
            Auth::Bearer(&admin),
            json!({"source": broken, "name": "dibao.yaml"}),
        )
        .await?;
    ensure!(bad.status == 200 && bad.body["ok"] == false, "{}", bad.body);
    let diagnostics = bad.body["diagnostics"].as_array().context("diagnostics")?;
    ensure!(
        diagnostics.iter().any(|d| d
            .as_str()
            .is_some_and(|d| d.starts_with("dibao.yaml:") && d.contains("no_such_role"))),
        "{}",
        bad.body
    );
    let listed = ctx.get("/api/definitions", Auth::Bearer(&admin)).await?;
    let versions = listed.body.as_array().context("deployments")?;
    ensure!(
        versions
            .iter()
            .any(|d| d["process"] == "dibao" && d["version"] == 1),
        "{}",
        listed.body
    );
    // Nothing changed since the deploy at setup: no new version.
    let deployed = ctx
        .post("/api/definitions/deploy", Auth::Bearer(&admin), json!({}))
        .await?;
    ensure!(deployed.status == 200, "{}", deployed.body);
    let after = ctx.get("/api/definitions", Auth::Bearer(&admin)).await?;
    ensure!(
        after.body == listed.body,
        "{} vs {}",
        after.body,
        listed.body
    );
    Ok(())
}

async fn hand_overs_incidents_and_retry(ctx: Ctx) -> Result<()> {
    let clerk = ctx.token("zx_clerk").await?;
    let head = ctx.token("zx_head").await?;
    let started = ctx
        .post(
            "/api/cases",
            Auth::Bearer(&clerk),
            json!({"process": "dibao", "data": household()}),
        )
        .await?;
    let case = started.body["case_id"]
        .as_str()
        .context("case")?
        .to_string();
    let task = started.body["tasks_opened"][0]["id"]
        .as_str()
        .context("task")?
        .to_string();
    let moved = ctx
        .post(
            &format!("/api/tasks/{task}/reassign"),
            Auth::Bearer(&head),
            json!({"to": "zx_clerk2"}),
        )
        .await?;
    ensure!(moved.body["assignee"] == "zx_clerk2", "{}", moved.body);
    ctx.post(
        &format!("/api/tasks/{task}/reassign"),
        Auth::Bearer(&head),
        json!({"to": "nobody"}),
    )
    .await?
    .expect_problem(422, "invalid_data")?;
    ctx.post(
        &format!("/api/tasks/{task}/reassign"),
        Auth::Bearer(&head),
        json!({"to": "zx_clerk", "extra": 1}),
    )
    .await?
    .expect_problem(422, "invalid_request")?;
    let released = ctx
        .post(
            &format!("/api/tasks/{task}/unclaim"),
            Auth::Bearer(&head),
            json!({}),
        )
        .await?;
    ensure!(released.body["assignee"].is_null(), "{}", released.body);
    // Materials missing: the applicant's notice goes out, and is given up on.
    let clerk_actor = Actor {
        user: "zx_clerk".into(),
        roles: vec!["township_clerk".into()],
        unit: ZX.into(),
    };
    let jiuzhu_rules::Value::Object(form) =
        jiuzhu_rules::Value::from_json(&json!({"complete": false, "missing": ["户口簿"]}))
    else {
        anyhow::bail!("the form is no object");
    };
    let engine = &ctx.state.engine;
    let done = engine.complete(&task, &clerk_actor, form).await?;
    let id = done.outbox.first().context("no effect")?.id.clone();
    let now = engine.now();
    engine
        .store
        .record_outbox_failure(&id, "mailbox full", now, now, true)
        .await?;
    let incidents = ctx.get("/api/incidents", Auth::Bearer(&head)).await?;
    let listed = incidents.body.as_array().context("incidents")?;
    ensure!(
        listed.len() == 1 && listed[0]["id"] == id.as_str(),
        "{}",
        incidents.body
    );
    ensure!(listed[0]["case_id"] == case.as_str());
    let retried = ctx
        .post(
            &format!("/api/incidents/{id}/retry"),
            Auth::Bearer(&head),
            json!({}),
        )
        .await?;
    ensure!(retried.body["status"] == "pending", "{}", retried.body);
    ctx.post(
        &format!("/api/incidents/{id}/retry"),
        Auth::Bearer(&head),
        json!({}),
    )
    .await?
    .expect_problem(409, "conflict")?;
    let none = ctx.get("/api/incidents", Auth::Bearer(&head)).await?;
    ensure!(
        none.body.as_array().is_some_and(Vec::is_empty),
        "{}",
        none.body
    );
    Ok(())
}

async fn payments_assessment_and_bad_queries(ctx: Ctx) -> Result<()> {
    let county = ctx.token("county_staff1").await?;
    let clerk = ctx.token("zx_clerk").await?;
    let run = ctx
        .post(
            "/api/payments/runs",
            Auth::Bearer(&county),
            json!({"month": "2026-03"}),
        )
        .await?;
    ensure!(
        run.body["month"] == "2026-03" && run.body["created"] == 0,
        "{}",
        run.body
    );
    ctx.post(
        "/api/payments/runs",
        Auth::Bearer(&county),
        json!({"month": "2026-13"}),
    )
    .await?
    .expect_problem(422, "invalid_data")?;
    let report = ctx
        .get("/api/payments/reports/2026-03", Auth::Bearer(&county))
        .await?;
    ensure!(
        report.body["month"] == "2026-03" && report.body["count"] == 0,
        "{}",
        report.body
    );
    let unknown = ctx
        .post(
            "/api/payments/results",
            Auth::Bearer(&county),
            json!({"file_name": "r.csv", "csv": "reference,status,reason\nPAY-nope,paid,\n"}),
        )
        .await?;
    ensure!(
        unknown.body["unknown"] == json!(["PAY-nope"]),
        "{}",
        unknown.body
    );
    ctx.post(
        "/api/payments/results",
        Auth::Bearer(&county),
        json!({"file_name": "r.csv", "csv": "no,columns\n"}),
    )
    .await?
    .expect_problem(422, "invalid_data")?;
    let case = json!({
        "program": "dibao", "as_of": "2026-03-01", "area": "urban",
        "household": {
            "members": [{"id": "m1", "birth_date": "1964-08-01", "income": [{"kind": "wage", "monthly": "500.00"}]}],
            "savings": "0.00"
        }
    });
    let assessed = ctx
        .post(
            "/api/assess",
            Auth::Bearer(&clerk),
            json!({"case": case, "explain": true}),
        )
        .await?;
    ensure!(assessed.status == 200, "{}", assessed.body);
    ensure!(assessed.body["eligible"] == true, "{}", assessed.body);
    ensure!(assessed.body["trace"].is_array(), "{}", assessed.body);
    ctx.post(
        "/api/assess",
        Auth::Bearer(&clerk),
        json!({"case": {"program": "dibao"}}),
    )
    .await?
    .expect_problem(422, "invalid_data")?;
    ctx.get("/api/cases?colour=red", Auth::Bearer(&clerk))
        .await?
        .expect_problem(400, "bad_query")?;
    ctx.get("/api/cases?limit=many", Auth::Bearer(&clerk))
        .await?
        .expect_problem(400, "bad_query")?;
    Ok(())
}

/// Starts a dibao case and accepts it at `now` (UTC); the case and its survey task as the
/// step answered (its 5wd due date counted from `now`).
async fn surveyed(ctx: &Ctx, clerk: &str, now: &str) -> Result<(String, serde_json::Value)> {
    ctx.clock
        .set(chrono::DateTime::parse_from_rfc3339(now)?.to_utc());
    let started = ctx
        .post(
            "/api/cases",
            Auth::Bearer(clerk),
            json!({"process": "dibao", "data": household()}),
        )
        .await?;
    let case = started.body["case_id"]
        .as_str()
        .context("case")?
        .to_string();
    let accept = started.body["tasks_opened"][0]["id"]
        .as_str()
        .context("accept task")?
        .to_string();
    let accepted = ctx
        .post(
            &format!("/api/tasks/{accept}/complete"),
            Auth::Bearer(clerk),
            json!({"complete": true}),
        )
        .await?;
    let survey = accepted.body["tasks_opened"]
        .as_array()
        .and_then(|tasks| tasks.iter().find(|t| t["node"] == "survey"))
        .with_context(|| format!("no survey task: {}", accepted.body))?
        .clone();
    Ok((case, survey))
}

/// A due date counted past the years the calendar covers is marked `provisional` in every
/// task view: the step's answer, the case and the queue; one inside them is not.
async fn task_views_mark_provisional_due_dates(ctx: Ctx) -> Result<()> {
    let clerk = ctx.token("zx_clerk").await?;
    let staff = ctx.token("zx_staff1").await?;
    // Monday 2 March 2026: 5 working days stay in 2026.
    let (march, survey) = surveyed(&ctx, &clerk, "2026-03-02T01:00:00Z").await?;
    ensure!(survey["provisional"] == false, "{survey}");
    ensure!(survey["due_at"].is_string(), "{survey}");
    // Monday 28 December 2026 (Beijing): 5 working days reach 4 January 2027, a year the
    // shipped calendar does not cover.
    let (december, survey) = surveyed(&ctx, &clerk, "2026-12-28T01:00:00Z").await?;
    ensure!(survey["provisional"] == true, "{survey}");
    ensure!(
        survey["due_at"]
            .as_str()
            .is_some_and(|d| d.starts_with("2027-01-04")),
        "{survey}"
    );
    for (case, provisional) in [(&march, false), (&december, true)] {
        let detail = ctx
            .get(&format!("/api/cases/{case}"), Auth::Bearer(&clerk))
            .await?;
        let open = detail.body["open_tasks"].as_array().context("open tasks")?;
        let survey = open
            .iter()
            .find(|t| t["node"] == "survey")
            .with_context(|| format!("{}", detail.body))?;
        ensure!(survey["provisional"] == provisional, "{case}: {survey}");
    }
    let queue = ctx.get("/api/tasks", Auth::Bearer(&staff)).await?;
    let rows = queue.body.as_array().context("the queue")?;
    for (case, provisional) in [(&march, false), (&december, true)] {
        let row = rows
            .iter()
            .find(|t| t["case_id"] == *case && t["node"] == "survey")
            .with_context(|| format!("{case} not queued: {}", queue.body))?;
        ensure!(row["provisional"] == provisional, "{case}: {row}");
    }
    // The OpenAPI description names the field.
    let api = ctx.get("/api/openapi.json", Auth::None).await?;
    ensure!(
        api.body["components"]["schemas"]["TaskView"]["properties"]["provisional"]["type"]
            == "boolean",
        "{}",
        api.body["components"]["schemas"]["TaskView"]
    );
    Ok(())
}

jiuzhu_testkit::on_both_databases!(
    task_views_mark_provisional_due_dates,
    definitions_validate_list_and_deploy,
    hand_overs_incidents_and_retry,
    payments_assessment_and_bad_queries,
);
