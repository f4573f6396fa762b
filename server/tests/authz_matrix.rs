//! The authorization matrix: every route of the API (read from the router's route table,
//! checked against the OpenAPI document) × callers of every role and unit (own township,
//! other township, county; an administrator; no credential; a revoked token) against the
//! expected status of each cell. A route without a row, or a cell that answers otherwise,
//! fails the test. Each cell that changes state gets a fresh case of its own, so cells do
//! not depend on each other's order.

mod common;

use std::collections::BTreeSet;

use anyhow::{Context as _, Result, ensure};
use common::*;
use jiuzhu_engine::clock::Clock;
use jiuzhu_engine::core::Actor;
use jiuzhu_testkit::Db;
use reqwest::Method;
use serde_json::{Value, json};

const ZX: &str = "双鸭山市/尖山区/中心站街道";
const FA: &str = "双鸭山市/尖山区/富安街道";
const COUNTY: &str = "双鸭山市/尖山区";

/// The users: the cases under test are in ZX (own township).
const USERS: &[(&str, &str, &str)] = &[
    ("zx_clerk", "township_clerk", ZX),
    ("zx_staff1", "township_staff", ZX),
    ("zx_head", "township_head", ZX),
    ("fa_clerk", "township_clerk", FA),
    ("fa_head", "township_head", FA),
    ("county_staff1", "county_staff", COUNTY),
    ("county_head", "county_head", COUNTY),
    ("admin", "admin", COUNTY),
    // A second clerk of ZX: the target of hand-overs, not a column.
    ("zx_clerk2", "township_clerk", ZX),
    // The owner of the revoked token.
    ("gone", "township_clerk", ZX),
];

/// The matrix's columns, in order.
const CALLERS: [&str; 10] = [
    "zx_clerk",
    "zx_staff1",
    "zx_head",
    "fa_clerk",
    "fa_head",
    "county_staff1",
    "county_head",
    "admin",
    "anonymous",
    "revoked",
];

/// The expected status of every route for each caller of [`CALLERS`].
#[rustfmt::skip]
const MATRIX: &[(&str, &str, [u16; 10])] = &[
    //                                               zxc  zxs  zxh  fac  fah  cst  chd  adm  anon rev
    ("GET",  "/healthz",                            [200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    ("GET",  "/readyz",                             [200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    ("GET",  "/metrics",                            [200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    ("GET",  "/api/openapi.json",                   [200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
    // Wrong credentials whoever asks.
    ("POST", "/api/login",                          [401, 401, 401, 401, 401, 401, 401, 401, 401, 401]),
    ("POST", "/api/logout",                         [204, 204, 204, 204, 204, 204, 204, 204, 401, 401]),
    ("GET",  "/api/me",                             [200, 200, 200, 200, 200, 200, 200, 200, 401, 401]),
    ("GET",  "/api/cases",                          [200, 200, 200, 200, 200, 200, 200, 200, 401, 401]),
    // dibao is started by the front desk or staff (`started_by`), not by a head or an
    // administrator; county staff may, but at the county nobody could accept the case,
    // so the start data's unit is refused.
    ("POST", "/api/cases",                          [201, 201, 403, 201, 403, 422, 403, 403, 401, 401]),
    ("GET",  "/api/cases/{id}",                     [200, 200, 200, 404, 404, 200, 200, 200, 401, 401]),
    ("GET",  "/api/cases/{id}/history",             [200, 200, 200, 404, 404, 200, 200, 200, 401, 401]),
    // `withdraw`: the township of the case's unit records it (the window's clerk on the
    // applicant's behalf); the county does not.
    ("POST", "/api/cases/{id}/messages/{name}",     [200, 200, 200, 404, 404, 403, 403, 403, 401, 401]),
    // Staff of the process's tasks in the case's unit or above, or a head.
    ("POST", "/api/cases/{id}/corrections",         [200, 200, 200, 404, 404, 200, 200, 200, 401, 401]),
    ("GET",  "/api/tasks",                          [200, 200, 200, 200, 200, 200, 200, 200, 401, 401]),
    // The case's first task is the clerk's (受理).
    ("POST", "/api/tasks/{id}/claim",               [200, 403, 403, 404, 404, 403, 403, 403, 401, 401]),
    // Claimed by zx_clerk: the holder or a head of a unit covering it releases it.
    ("POST", "/api/tasks/{id}/unclaim",             [200, 403, 200, 404, 404, 403, 200, 200, 401, 401]),
    // Claimed by zx_clerk, handed to zx_clerk2 by a head of a unit covering it.
    ("POST", "/api/tasks/{id}/reassign",            [403, 403, 200, 404, 404, 403, 200, 200, 401, 401]),
    // Claimed by zx_clerk, handed to zx_clerk2 by its holder; anyone else finds it held.
    ("POST", "/api/tasks/{id}/delegate",            [200, 409, 409, 404, 404, 409, 409, 409, 401, 401]),
    ("POST", "/api/tasks/{id}/complete",            [200, 403, 403, 404, 404, 403, 403, 403, 401, 401]),
    ("GET",  "/api/definitions",                    [403, 403, 403, 403, 403, 403, 403, 200, 401, 401]),
    ("POST", "/api/definitions/validate",           [403, 403, 403, 403, 403, 403, 403, 200, 401, 401]),
    ("POST", "/api/definitions/deploy",             [403, 403, 403, 403, 403, 403, 403, 200, 401, 401]),
    ("GET",  "/api/incidents",                      [403, 403, 200, 403, 200, 403, 200, 200, 401, 401]),
    // An incident of a ZX case: the other township's head finds none.
    ("POST", "/api/incidents/{id}/retry",           [403, 403, 200, 403, 404, 403, 200, 200, 401, 401]),
    ("POST", "/api/payments/runs",                  [403, 403, 403, 403, 403, 200, 200, 200, 401, 401]),
    ("POST", "/api/payments/results",               [403, 403, 403, 403, 403, 200, 200, 200, 401, 401]),
    ("POST", "/api/payments/bank-files",            [403, 403, 403, 403, 403, 200, 200, 200, 401, 401]),
    // No bank file has the case's id: the roles that may download find none.
    ("GET",  "/api/payments/bank-files/{id}",       [403, 403, 403, 403, 403, 404, 404, 404, 401, 401]),
    // The test server has no gateway configured.
    ("POST", "/api/payments/send",                  [403, 403, 403, 403, 403, 409, 409, 409, 401, 401]),
    ("GET",  "/api/payments/reports/{month}",       [403, 403, 403, 403, 403, 200, 200, 200, 401, 401]),
    // Batch runs: the roles that pay benefits, runs of cases in their units (none here yet).
    ("GET",  "/api/batches",                        [403, 403, 403, 403, 403, 200, 200, 200, 401, 401]),
    ("GET",  "/api/batches/{id}",                   [403, 403, 403, 403, 403, 404, 404, 404, 401, 401]),
    // Staff and heads of a township or the county read (each the reserves within their units).
    ("GET",  "/api/reserves",                       [403, 200, 200, 403, 200, 200, 200, 200, 401, 401]),
    // ZX's reserve: county staff and administrators above it replenish.
    ("POST", "/api/reserves/{unit}/replenish",      [403, 403, 403, 403, 403, 200, 403, 200, 401, 401]),
    ("GET",  "/api/payments/standard-changes",     [403, 403, 403, 403, 403, 200, 200, 200, 401, 401]),
    ("POST", "/api/assess",                         [200, 200, 200, 200, 200, 200, 200, 200, 401, 401]),
    ("GET",  "/api/access-log",                     [403, 403, 403, 403, 403, 403, 403, 200, 401, 401]),
];

async fn setup(db: Db) -> (Ctx, Teardown) {
    setup_with(db, USERS, 0).await
}

fn actor(user: &str) -> Result<Actor> {
    let (id, role, unit) = USERS
        .iter()
        .find(|(id, _, _)| *id == user)
        .context("no such user")?;
    Ok(Actor {
        user: id.to_string(),
        roles: vec![role.to_string()],
        unit: unit.to_string(),
    })
}

/// What a cell acts on: a fresh ZX case, its first task, an incident.
struct Fixture {
    case: String,
    task: String,
    incident: String,
}

/// A fresh ZX case; its first task claimed by zx_clerk when `claimed`; with `incident`, an
/// effect of it given up on by the dispatcher.
async fn fixture(ctx: &Ctx, claimed: bool, incident: bool) -> Result<Fixture> {
    let engine = &ctx.state.engine;
    let jiuzhu_rules::Value::Object(data) = jiuzhu_rules::Value::from_json(&household()) else {
        anyhow::bail!("the household is no object");
    };
    let clerk = actor("zx_clerk")?;
    let started = engine.start("dibao", &clerk, data).await?;
    let case = started.instance.id.clone();
    let task = started.tasks_opened.first().context("no task")?.id.clone();
    if claimed {
        engine.claim(&task, &clerk).await?;
    }
    let mut effect = String::new();
    if incident {
        // Materials missing: the applicant is notified, and that delivery fails for good.
        let jiuzhu_rules::Value::Object(form) =
            jiuzhu_rules::Value::from_json(&json!({"complete": false, "missing": ["户口簿"]}))
        else {
            anyhow::bail!("the form is no object");
        };
        let done = engine.complete(&task, &clerk, form).await?;
        let ids: Vec<String> = done.outbox.iter().map(|e| e.id.clone()).collect();
        effect = ids.first().context("the case emitted no effect")?.clone();
        let now = engine.now();
        engine
            .store
            .record_outbox_failure(&effect, "refused", now, now, true)
            .await?;
    }
    Ok(Fixture {
        case,
        task,
        incident: effect,
    })
}

/// The request of a matrix row: the concrete path and body.
fn request(path: &str, fx: &Fixture, cell: usize) -> (String, Option<Value>) {
    let concrete = path
        .replace(
            "{id}",
            if path.starts_with("/api/tasks") {
                &fx.task
            } else if path.starts_with("/api/incidents") {
                &fx.incident
            } else {
                &fx.case
            },
        )
        .replace("{name}", "withdraw")
        .replace("{month}", "2026-03")
        .replace("{unit}", &ZX.replace('/', "%2F"));
    // A query the route requires.
    let concrete = if path == "/api/payments/standard-changes" {
        format!("{concrete}?from=2026-07-01")
    } else {
        concrete
    };
    let body = match path {
        "/api/login" => Some(json!({"user": format!("nobody{cell}"), "password": "wrong"})),
        "/api/cases" => Some(json!({"process": "dibao", "data": household()})),
        "/api/tasks/{id}/complete" => Some(json!({"complete": true})),
        "/api/tasks/{id}/reassign" | "/api/tasks/{id}/delegate" => Some(json!({"to": "zx_clerk2"})),
        "/api/definitions/validate" => Some(json!({"source": "process: x\n"})),
        "/api/payments/runs" => Some(json!({"month": "2026-03"})),
        "/api/payments/results" => {
            Some(json!({"file_name": "result.csv", "csv": "reference,status,reason\n"}))
        }
        "/api/assess" => Some(json!({"case": assess_case()})),
        "/api/reserves/{unit}/replenish" => Some(json!({"amount": "100.00", "note": "矩阵"})),
        p if p.contains("/messages/") => Some(json!({})),
        "/api/cases/{id}/corrections" => Some(json!({
            "changes": {"applicant_name": "张秀英"},
            "reason": "姓名录入错误",
        })),
        _ => None,
    };
    (concrete, body)
}

fn assess_case() -> Value {
    json!({
        "program": "dibao", "as_of": "2026-03-01", "area": "urban",
        "household": {
            "members": [{"id": "m1", "birth_date": "1964-08-01", "income": [{"kind": "wage", "monthly": "500.00"}]}],
            "savings": "0.00"
        }
    })
}

async fn every_route_answers_every_caller_as_the_matrix_says(ctx: Ctx) -> Result<()> {
    // The matrix, the router's table and the OpenAPI document name the same routes.
    let routes: BTreeSet<(String, String)> = jiuzhu_server::api::route_list()
        .into_iter()
        .map(|(method, path)| (method.to_string(), path.to_string()))
        .collect();
    let rows: BTreeSet<(String, String)> = MATRIX
        .iter()
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .collect();
    ensure!(rows.len() == MATRIX.len(), "a route has two rows");
    let unlisted: Vec<_> = routes.difference(&rows).collect();
    ensure!(
        unlisted.is_empty(),
        "routes without a row in the authorization matrix: {unlisted:?}"
    );
    let stale: Vec<_> = rows.difference(&routes).collect();
    ensure!(stale.is_empty(), "matrix rows that are no route: {stale:?}");
    let doc = ctx.get("/api/openapi.json", Auth::None).await?.body;
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().context("paths")? {
        for method in item.as_object().context("path item")?.keys() {
            documented.insert((method.to_uppercase(), path.clone()));
        }
    }
    ensure!(
        documented == routes,
        "OpenAPI and router differ: only documented {:?}, only routed {:?}",
        documented.difference(&routes).collect::<Vec<_>>(),
        routes.difference(&documented).collect::<Vec<_>>()
    );

    let mut tokens = Vec::new();
    for caller in CALLERS {
        tokens.push(match caller {
            "anonymous" => None,
            "revoked" => {
                let token = ctx
                    .state
                    .db
                    .create_token("gone", "revoked", ctx.clock.now())
                    .await?;
                ctx.state
                    .db
                    .revoke_token(&token.id, ctx.clock.now())
                    .await?;
                Some(token.token)
            }
            user => Some(ctx.token(user).await?),
        });
    }
    // A shared case for the rows that only read.
    let shared = fixture(&ctx, false, false).await?;
    let mut wrong = Vec::new();
    for (cell, (method, path, expected)) in MATRIX.iter().enumerate() {
        let changes = *method == "POST";
        for (column, caller) in CALLERS.iter().enumerate() {
            let fresh;
            let fx = if changes && path.contains("{id}") {
                let claimed = ["unclaim", "reassign", "delegate"]
                    .iter()
                    .any(|a| path.ends_with(a));
                fresh = fixture(&ctx, claimed, path.starts_with("/api/incidents")).await?;
                &fresh
            } else {
                &shared
            };
            let (concrete, body) = request(path, fx, cell * 100 + column);
            let auth = match &tokens[column] {
                Some(token) => Auth::Bearer(token),
                None => Auth::None,
            };
            let method = Method::from_bytes(method.as_bytes())?;
            let address = format!("198.51.100.{}", column + 1);
            let answer = ctx
                .send(
                    method.clone(),
                    &concrete,
                    auth,
                    body,
                    &[("x-forwarded-for", &address)],
                )
                .await?;
            let got = answer.status.as_u16();
            if got != expected[column] {
                wrong.push(format!(
                    "{method} {path} as {caller}: expected {}, got {got} {}",
                    expected[column], answer.body
                ));
            }
            if got >= 400 {
                answer
                    .expect_problem(got, answer.problem_code())
                    .with_context(|| format!("{method} {path} as {caller}"))?;
            }
        }
    }
    ensure!(
        wrong.is_empty(),
        "cells differ from the matrix:\n{}",
        wrong.join("\n")
    );
    Ok(())
}

/// `reveal=true` shows full ID numbers to the roles that need them and writes the access
/// log; an applicant's message recorded by a clerk says for whom in the history.
async fn reveals_are_logged_and_messages_say_for_whom(ctx: Ctx) -> Result<()> {
    let clerk = ctx.token("zx_clerk").await?;
    let head = ctx.token("zx_head").await?;
    let admin = ctx.token("admin").await?;
    let fx = fixture(&ctx, false, false).await?;
    let masked = ctx
        .get(&format!("/api/cases/{}", fx.case), Auth::Bearer(&clerk))
        .await?;
    ensure!(
        masked.body["id_number"] == "230***********1234",
        "{}",
        masked.body
    );
    ensure!(masked.body["revealed"] == false);
    // Masked views are not logged.
    let log = ctx.get("/api/access-log", Auth::Bearer(&admin)).await?;
    ensure!(
        log.body.as_array().is_some_and(Vec::is_empty),
        "{}",
        log.body
    );
    ctx.get(
        &format!("/api/cases/{}?reveal=true", fx.case),
        Auth::Bearer(&head),
    )
    .await?
    .expect_problem(403, "forbidden")?;
    let shown = ctx
        .get(
            &format!("/api/cases/{}?reveal=true", fx.case),
            Auth::Bearer(&clerk),
        )
        .await?;
    ensure!(shown.status == 200, "{}", shown.body);
    ensure!(
        shown.body["id_number"] == "230504195005011234",
        "{}",
        shown.body
    );
    ensure!(shown.body["variables"]["bank"]["account"] == "6222021234567890");
    ensure!(shown.body["applicant"] == "张秀兰");
    let listed = ctx
        .get("/api/cases?reveal=true&name=秀兰", Auth::Bearer(&clerk))
        .await?;
    ensure!(
        listed.body["items"][0]["id_number"] == "230504195005011234",
        "{}",
        listed.body
    );
    let log = ctx
        .get("/api/access-log?user=zx_clerk", Auth::Bearer(&admin))
        .await?;
    let entries = log.body.as_array().context("entries")?;
    ensure!(entries.len() == 2, "{}", log.body);
    ensure!(
        entries
            .iter()
            .any(|e| e["what"] == "case" && e["subject"] == fx.case.as_str()),
        "{}",
        log.body
    );
    ensure!(
        entries
            .iter()
            .all(|e| e["via"] == "token" && e["address"] == "127.0.0.1")
    );
    // The history of an applicant's withdrawal names the clerk and the applicant.
    let withdrawn = ctx
        .post(
            &format!("/api/cases/{}/messages/withdraw", fx.case),
            Auth::Bearer(&clerk),
            json!({}),
        )
        .await?;
    ensure!(withdrawn.status == 200, "{}", withdrawn.body);
    let history = ctx
        .get(
            &format!("/api/cases/{}/history?verify=true", fx.case),
            Auth::Bearer(&head),
        )
        .await?;
    ensure!(history.body["verified"] == true, "{}", history.body);
    let last = history.body["entries"]
        .as_array()
        .and_then(|e| e.last())
        .context("entries")?;
    ensure!(last["event"] == "message:withdraw", "{last}");
    ensure!(
        last["actor"] == "zx_clerk" && last["on_behalf_of"] == "applicant",
        "{last}"
    );
    // Masked in the history too.
    ensure!(
        !history.body.to_string().contains("195005011234"),
        "{}",
        history.body
    );
    Ok(())
}

/// A correction through the API: refused with the JSON path of a misfit or without a
/// reason, then taken, shown in the history with its reason and masked values, and refused
/// once the case is closed.
async fn corrections_are_steps_in_the_history_and_closed_cases_refuse_them(ctx: Ctx) -> Result<()> {
    let staff = ctx.token("zx_staff1").await?;
    let clerk = ctx.token("zx_clerk").await?;
    let fx = fixture(&ctx, false, false).await?;
    let path = format!("/api/cases/{}/corrections", fx.case);
    let misfit = ctx
        .post(
            &path,
            Auth::Bearer(&staff),
            json!({"changes": {"household.savings": "很多"}, "reason": "录入错误"}),
        )
        .await?;
    misfit.expect_problem(422, "invalid_data")?;
    ensure!(
        misfit.body.to_string().contains("$.household.savings"),
        "{}",
        misfit.body
    );
    let no_reason = ctx
        .post(
            &path,
            Auth::Bearer(&staff),
            json!({"changes": {"applicant_name": "张秀英"}, "reason": " "}),
        )
        .await?;
    no_reason.expect_problem(422, "invalid_data")?;
    let done = ctx
        .post(
            &path,
            Auth::Bearer(&staff),
            json!({
                "changes": {"applicant_name": "张秀英", "household.members[0].income[0].monthly": "200.00"},
                "reason": "姓名录入错误，养老金以发放记录为准"
            }),
        )
        .await?;
    ensure!(done.status == 200, "{}", done.body);
    let history = ctx
        .get(
            &format!("/api/cases/{}/history?reveal=true", fx.case),
            Auth::Bearer(&staff),
        )
        .await?;
    let last = history.body["entries"]
        .as_array()
        .and_then(|e| e.last())
        .context("entries")?;
    ensure!(
        last["event"] == "correct" && last["actor"] == "zx_staff1",
        "{last}"
    );
    ensure!(
        last["input"]["reason"] == "姓名录入错误，养老金以发放记录为准",
        "{last}"
    );
    ensure!(
        last["corrections"]
            == json!([
                {"path": "$.applicant_name", "old": "张*", "new": "张*"},
                {"path": "$.household.members[0].income[0].monthly", "old": "180.00", "new": "200.00"}
            ]),
        "{last}"
    );
    let withdrawn = ctx
        .post(
            &format!("/api/cases/{}/messages/withdraw", fx.case),
            Auth::Bearer(&clerk),
            json!({}),
        )
        .await?;
    ensure!(withdrawn.status == 200, "{}", withdrawn.body);
    let closed = ctx
        .post(
            &path,
            Auth::Bearer(&staff),
            json!({"changes": {"applicant_name": "张秀兰"}, "reason": "改回"}),
        )
        .await?;
    closed.expect_problem(409, "conflict")?;
    Ok(())
}

jiuzhu_testkit::on_both_databases!(
    every_route_answers_every_caller_as_the_matrix_says,
    reveals_are_logged_and_messages_say_for_whom,
    corrections_are_steps_in_the_history_and_closed_cases_refuse_them,
);
