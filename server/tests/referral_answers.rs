//! A department answers a referral through the API with a machine client's token
//! (`POST /api/cases/{id}/messages/answered`): the answer closes the case; an answer
//! for an unknown case, a malformed one, and one for a case already answered are
//! refused with their codes. Over HTTP on a real database (SQLite and PostgreSQL).

mod common;

use anyhow::{Context as _, Result, ensure};
use common::*;
use jiuzhu_testkit::Db;
use serde_json::json;

/// The window's clerk, and the machine client a department's system uses: `answered`
/// names no roles (the department's own word), so the API records it as a front-desk
/// role of the county's townships, as it records an applicant's.
const USERS: &[(&str, &str, &str)] = &[
    ("zx_clerk", "township_clerk", "双鸭山市/尖山区/中心站街道"),
    ("referral_gateway", "township_staff", "双鸭山市/尖山区"),
];

async fn setup(db: Db) -> (Ctx, Teardown) {
    setup_with(db, USERS, 0).await
}

jiuzhu_testkit::on_both_databases!(a_department_answers_a_referral_once_by_token);

async fn a_department_answers_a_referral_once_by_token(ctx: Ctx) -> Result<()> {
    let clerk = ctx.token("zx_clerk").await?;
    let gateway = ctx.token("referral_gateway").await?;
    let started = ctx
        .post(
            "/api/cases",
            Auth::Bearer(&clerk),
            json!({"process": "referral", "data": {
                "applicant_name": "赵丽华", "area": "urban", "need": "medical",
                "details": "慢性肾病透析"
            }}),
        )
        .await?;
    ensure!(started.status == 201, "{}", started.body);
    let case = started.body["case_id"]
        .as_str()
        .context("case id")?
        .to_string();
    let answer = |case: String, body: serde_json::Value| {
        let ctx = &ctx;
        let gateway = gateway.clone();
        async move {
            ctx.post(
                &format!("/api/cases/{case}/messages/answered"),
                Auth::Bearer(&gateway),
                body,
            )
            .await
        }
    };
    // No such case.
    answer("referral-none".into(), json!({"accepted": true}))
        .await?
        .expect_problem(404, "not_found")?;
    // `accepted` is required.
    answer(case.clone(), json!({"note": "材料不全"}))
        .await?
        .expect_problem(422, "invalid_data")?;
    let taken = answer(
        case.clone(),
        json!({"accepted": true, "note": "已纳入医疗救助"}),
    )
    .await?;
    ensure!(taken.status == 200, "{}", taken.body);
    let shown = ctx
        .get(&format!("/api/cases/{case}"), Auth::Bearer(&clerk))
        .await?;
    ensure!(
        shown.body["status"] == "completed" && shown.body["outcome"] == "answered",
        "{}",
        shown.body
    );
    // Answered already: nobody waits for a second answer.
    answer(case.clone(), json!({"accepted": false}))
        .await?
        .expect_problem(404, "not_found")?;
    Ok(())
}
