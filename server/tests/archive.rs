//! Archived cases through the API, on SQLite and PostgreSQL: a withdrawn dibao case
//! archived a month later is still listed and shown (`archived: true`), masked, to the
//! same units only; its history verifies; a message to it is refused with `conflict`.

mod common;

use anyhow::{Context as _, Result, ensure};
use chrono::Duration;
use common::*;
use jiuzhu_testkit::Db;
use serde_json::json;

const USERS: &[(&str, &str, &str)] = &[
    ("zx_clerk", "township_clerk", "双鸭山市/尖山区/中心站街道"),
    ("fa_clerk", "township_clerk", "双鸭山市/尖山区/富安街道"),
    ("county_staff1", "county_staff", "双鸭山市/尖山区"),
];

async fn setup(db: Db) -> (Ctx, Teardown) {
    setup_with(db, USERS, 0).await
}

jiuzhu_testkit::on_both_databases!(an_archived_case_is_read_through_the_api_and_refuses_steps);

async fn an_archived_case_is_read_through_the_api_and_refuses_steps(ctx: Ctx) -> Result<()> {
    let clerk = ctx.token("zx_clerk").await?;
    let other = ctx.token("fa_clerk").await?;
    let county = ctx.token("county_staff1").await?;
    let started = ctx
        .post(
            "/api/cases",
            Auth::Bearer(&clerk),
            json!({"process": "dibao", "data": household()}),
        )
        .await?;
    ensure!(started.status == 201, "{}", started.body);
    let case = started.body["case_id"]
        .as_str()
        .context("case id")?
        .to_string();
    let withdrawn = ctx
        .post(
            &format!("/api/cases/{case}/messages/withdraw"),
            Auth::Bearer(&clerk),
            json!({}),
        )
        .await?;
    ensure!(withdrawn.status == 200, "{}", withdrawn.body);
    ctx.clock.advance(Duration::days(31));
    let moved = ctx
        .state
        .engine
        .archive_finished(Duration::days(30), 10)
        .await?;
    ensure!(
        moved.iter().any(|b| b.instances.contains(&case)),
        "not archived"
    );
    ensure!(ctx.state.engine.store.load_instance(&case).await?.is_none());

    let shown = ctx
        .get(&format!("/api/cases/{case}"), Auth::Bearer(&clerk))
        .await?;
    ensure!(shown.status == 200, "{}", shown.body);
    ensure!(shown.body["archived"] == true, "{}", shown.body);
    ensure!(shown.body["outcome"] == "withdrawn", "{}", shown.body);
    // Masked as a live case is: the ID number keeps its first 3 and last 4 characters.
    let id_number = shown.body["id_number"].as_str().unwrap_or("");
    ensure!(id_number.contains('*'), "unmasked: {}", shown.body);

    let listed = ctx.get("/api/cases", Auth::Bearer(&county)).await?;
    ensure!(listed.status == 200, "{}", listed.body);
    let items = listed.body["items"].as_array().context("items")?;
    ensure!(
        items
            .iter()
            .any(|c| c["id"] == case.as_str() && c["archived"] == true),
        "{}",
        listed.body
    );
    // Another township sees neither the case nor its history.
    ctx.get(&format!("/api/cases/{case}"), Auth::Bearer(&other))
        .await?
        .expect_problem(404, "not_found")?;
    ctx.get(&format!("/api/cases/{case}/history"), Auth::Bearer(&other))
        .await?
        .expect_problem(404, "not_found")?;
    let listed = ctx.get("/api/cases", Auth::Bearer(&other)).await?;
    ensure!(
        !listed.body["items"]
            .as_array()
            .context("items")?
            .iter()
            .any(|c| c["id"] == case.as_str()),
        "{}",
        listed.body
    );

    let history = ctx
        .get(
            &format!("/api/cases/{case}/history?verify=true"),
            Auth::Bearer(&clerk),
        )
        .await?;
    ensure!(history.body["verified"] == true, "{}", history.body);

    ctx.post(
        &format!("/api/cases/{case}/messages/withdraw"),
        Auth::Bearer(&clerk),
        json!({}),
    )
    .await?
    .expect_problem(409, "conflict")?;
    Ok(())
}
