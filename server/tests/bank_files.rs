//! Bank files through the API: written to the server's bank folder, downloaded as CSV,
//! each download in the access log.

mod common;

use anyhow::{Context as _, Result, ensure};
use common::*;
use jiuzhu_adapters::payments::Ledger;
use jiuzhu_engine::clock::Clock;
use jiuzhu_testkit::Db;
use reqwest::header;
use serde_json::json;

const ZX: &str = "双鸭山市/尖山区/中心站街道";
const COUNTY: &str = "双鸭山市/尖山区";
const ACCOUNT: &str = "6222020000001111";

const USERS: &[(&str, &str, &str)] = &[
    ("zx_clerk", "township_clerk", ZX),
    ("county_staff1", "county_staff", COUNTY),
    ("admin", "admin", COUNTY),
];

async fn setup(db: Db) -> (Ctx, Teardown) {
    setup_with(db, USERS, 0).await
}

/// A GET as the holder of `token`: status, content type and the body's text.
async fn download(ctx: &Ctx, path: &str, token: &str) -> Result<(u16, String, String)> {
    let response = ctx
        .http
        .get(format!("{}{path}", ctx.base))
        .bearer_auth(token)
        .send()
        .await?;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    Ok((status, content_type, response.text().await?))
}

async fn an_export_writes_the_file_and_a_download_is_logged(ctx: Ctx) -> Result<()> {
    let county = ctx.token("county_staff1").await?;
    let clerk = ctx.token("zx_clerk").await?;
    let admin = ctx.token("admin").await?;
    let ledger = Ledger::new(&ctx.state.engine.store);
    let now = ctx.clock.now();
    let effect = json!({"type": "payment", "id": "dibao-9-e21", "instance": "dibao-9",
        "unit": ZX, "amount": "705.00", "purpose": "dibao", "schedule": "monthly",
        "from": "2026-03-01", "payee": "张秀兰", "account": ACCOUNT,
        "id_number": "230504195005011234"});
    ledger.apply_effect(&effect, now).await?;
    ledger.run_month("2026-03".parse()?, now).await?;

    // The township may not write bank files.
    ctx.send(
        reqwest::Method::POST,
        "/api/payments/bank-files",
        Auth::Bearer(&clerk),
        None,
        &[],
    )
    .await?
    .expect_problem(403, "forbidden")?;
    let export = ctx
        .send(
            reqwest::Method::POST,
            "/api/payments/bank-files",
            Auth::Bearer(&county),
            None,
            &[],
        )
        .await?;
    ensure!(export.status == 200, "{}", export.body);
    let files = export.body["files"].as_array().context("files")?;
    ensure!(files.len() == 1, "{}", export.body);
    ensure!(files[0]["count"] == 1 && files[0]["total"] == "705.00");
    let batch = files[0]["batch_id"].as_str().context("batch id")?;
    let name = files[0]["file_name"].as_str().context("file name")?;
    let written = std::fs::read_to_string(ctx.bank.path().join(name))?;
    ensure!(written.contains(ACCOUNT), "{written}");
    // Nothing more is due: a second export writes nothing.
    let again = ctx
        .send(
            reqwest::Method::POST,
            "/api/payments/bank-files",
            Auth::Bearer(&county),
            None,
            &[],
        )
        .await?;
    ensure!(again.body["files"] == json!([]), "{}", again.body);

    // Nobody has viewed anything unmasked yet.
    let log = ctx.get("/api/access-log", Auth::Bearer(&admin)).await?;
    ensure!(log.body == json!([]), "{}", log.body);
    let path = format!("/api/payments/bank-files/{batch}");
    let (status, _, _) = download(&ctx, &path, &clerk).await?;
    ensure!(status == 403, "a clerk downloaded a bank file: {status}");
    let (status, content_type, text) = download(&ctx, &path, &county).await?;
    ensure!(status == 200, "{status} {text}");
    ensure!(content_type.starts_with("text/csv"), "{content_type}");
    ensure!(
        text == written,
        "download differs from the file:\n{text}\n{written}"
    );
    let (status, _, _) = download(&ctx, "/api/payments/bank-files/20260302-999", &county).await?;
    ensure!(status == 404, "{status}");

    // One row: the download, not the refused or missing ones.
    let log = ctx.get("/api/access-log", Auth::Bearer(&admin)).await?;
    let entries = log.body.as_array().context("entries")?;
    ensure!(entries.len() == 1, "{}", log.body);
    ensure!(
        entries[0]["user"] == "county_staff1"
            && entries[0]["what"] == "bank_file"
            && entries[0]["subject"] == batch,
        "{}",
        log.body
    );
    Ok(())
}

jiuzhu_testkit::on_both_databases!(an_export_writes_the_file_and_a_download_is_logged);
