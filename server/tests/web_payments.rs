//! Payments in administration and corrections on the case file, over HTTP: the payments
//! page refused to a township clerk and open to the county's staff (run, report, export,
//! download with its access-log row, results import); a correction posted from the case
//! file shows in the timeline with its reason and masked values; a correction of another
//! township's case, or by a role the engine refuses, changes nothing.

mod web_support;

use jiuzhu_adapters::payments::Ledger;
use jiuzhu_engine::clock::Clock;
use jiuzhu_server::UserRecord;
use serde_json::json;
use web_support::{COUNTY, TOWNSHIP, Web, start};

const ADDRESS: &str = "192.0.2.20";
const PAYEE_ACCOUNT: &str = "6222020000001111";

async fn add_user(web: &Web, id: &str, role: &str, unit: &str) -> String {
    let user = UserRecord {
        id: id.to_string(),
        name: format!("{id}名"),
        unit: unit.to_string(),
        roles: vec![role.to_string()],
        disabled: false,
        has_password: false,
    };
    web.state
        .db
        .add_user(&user, None, web.clock.now())
        .await
        .expect("add user");
    web.session(id).await
}

/// The access-log rows as an administrator reads them through the API.
async fn access_log(web: &Web) -> Vec<serde_json::Value> {
    let admin = web.session("admin").await;
    let response = web
        .http
        .get(format!("{}/api/access-log", web.base))
        .header("cookie", admin)
        .send()
        .await
        .expect("access log");
    assert_eq!(response.status().as_u16(), 200);
    let rows: serde_json::Value = response.json().await.expect("json");
    rows.as_array().cloned().unwrap_or_default()
}

/// The last form token of a page (the first is the logout form's).
fn last_token(page: &web_support::Page) -> String {
    page.tokens().last().cloned().expect("a form token")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_payments_page_runs_reports_exports_and_downloads_for_county_staff() {
    let web = start().await;
    let clerk = web.session("fa_clerk").await;
    let page = web.get("/admin/payments", Some(&clerk)).await;
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(page.body.contains("无权办理"), "{}", page.body);
    let page = web
        .get("/admin/payments/bank-files/20260302-001", Some(&clerk))
        .await;
    assert_eq!(page.status, 403, "{}", page.body);

    let ledger = Ledger::new(&web.state.engine.store);
    let effect = json!({"type": "payment", "id": "mini-9-e1", "instance": "mini-9",
        "unit": TOWNSHIP, "amount": "705.00", "purpose": "dibao", "schedule": "monthly",
        "from": "2026-03-01", "payee": "张秀兰", "account": PAYEE_ACCOUNT,
        "id_number": "230504195005011234"});
    ledger
        .apply_effect(&effect, web.clock.now())
        .await
        .expect("benefit");

    let county = add_user(&web, "county_staff1", "county_staff", COUNTY).await;
    // The nav leads the county's staff to the page; a clerk has no such link.
    let queue = web.get("/queue", Some(&county)).await;
    assert!(
        queue.body.contains("href=\"/admin/payments\""),
        "{}",
        queue.body
    );
    let queue = web.get("/queue", Some(&clerk)).await;
    assert!(
        !queue.body.contains("href=\"/admin/payments\""),
        "{}",
        queue.body
    );
    let page = web
        .get("/admin/payments?month=2026-03", Some(&county))
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("本月没有发放"), "{}", page.body);
    let token = page.tokens()[1].clone();
    let page = web
        .post(
            "/admin/payments",
            Some(&county),
            &[("_csrf", &token), ("action", "run"), ("month", "2026-03")],
            ADDRESS,
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("新建 1 笔，已存在 0 笔"),
        "{}",
        page.body
    );
    assert!(page.body.contains("705.00"), "{}", page.body);
    // The same form token again: refused, nothing made twice.
    let again = web
        .post(
            "/admin/payments",
            Some(&county),
            &[("_csrf", &token), ("action", "run"), ("month", "2026-03")],
            ADDRESS,
        )
        .await;
    assert_eq!(again.status, 403, "{}", again.body);
    let month = "2026-03".parse().expect("month");
    assert_eq!(
        ledger
            .instructions(Some(month), None)
            .await
            .expect("ledger")
            .len(),
        1
    );

    // The report of the month, with the money formatted.
    let page = web
        .get("/admin/payments?month=2026-03", Some(&county))
        .await;
    assert!(page.body.contains("id=\"report-total\">"), "{}", page.body);
    assert!(page.body.contains("尚未导出"), "{}", page.body);

    // Export: one bank file, linked for download.
    let export_token = page.tokens()[2].clone();
    let page = web
        .post(
            "/admin/payments",
            Some(&county),
            &[
                ("_csrf", &export_token),
                ("action", "export"),
                ("month", "2026-03"),
            ],
            ADDRESS,
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("id=\"export-outcome\""), "{}", page.body);
    let marker = "href=\"/admin/payments/bank-files/";
    let at = page.body.find(marker).expect("a bank file link") + marker.len();
    let batch: String = page.body[at..].chars().take_while(|c| *c != '"').collect();
    assert!(page.body.contains("1 笔"), "{}", page.body);
    let written = std::fs::read_dir(web.bank.path())
        .expect("bank folder")
        .count();
    assert_eq!(written, 1);

    assert!(access_log(&web).await.is_empty());
    let response = web
        .http
        .get(format!("{}/admin/payments/bank-files/{batch}", web.base))
        .header("cookie", &county)
        .header("x-forwarded-for", ADDRESS)
        .send()
        .await
        .expect("download");
    assert_eq!(response.status().as_u16(), 200);
    let text = response.text().await.expect("csv");
    assert!(text.contains(PAYEE_ACCOUNT), "{text}");
    let log = access_log(&web).await;
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0]["user"], "county_staff1");
    assert_eq!(log[0]["what"], "bank_file");
    assert_eq!(log[0]["subject"], batch.as_str());

    // The bank's results: the payment was made.
    let reference = ledger
        .instructions(Some(month), None)
        .await
        .expect("ledger")[0]
        .reference
        .clone();
    let page = web
        .get("/admin/payments?month=2026-03", Some(&county))
        .await;
    let import_token = page.tokens()[3].clone();
    let csv = format!("reference,status,reason\n{reference},paid,\n");
    let page = web
        .post(
            "/admin/payments",
            Some(&county),
            &[
                ("_csrf", &import_token),
                ("action", "import"),
                ("month", "2026-03"),
                ("file_name", "result-20260302.csv"),
                ("csv", &csv),
            ],
            ADDRESS,
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("成功 1 笔，失败 0 笔"), "{}", page.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correction_posted_from_the_case_file_shows_its_reason() {
    let web = start().await;
    let case = web.start_case("张秀兰", "705.00").await;
    let staff = web.session("zx_head").await;
    let page = web.get(&format!("/cases/{case}"), Some(&staff)).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("id=\"correction-form\""),
        "{}",
        page.body
    );
    let token = last_token(&page);
    let page = web
        .post(
            &format!("/cases/{case}/corrections"),
            Some(&staff),
            &[
                ("_csrf", &token),
                ("path", "applicant_name"),
                ("value", "张秀英"),
                ("reason", "户口簿上的名字是张秀英"),
            ],
            ADDRESS,
        )
        .await;
    assert_eq!(page.status, 303, "{}", page.body);
    let page = web.get(&format!("/cases/{case}"), Some(&staff)).await;
    assert!(page.body.contains("更正数据"), "{}", page.body);
    assert!(
        page.body.contains("理由：户口簿上的名字是张秀英"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("<code>applicant_name</code>"),
        "{}",
        page.body
    );
    // Names are masked as stored: old and new show only their first character.
    assert!(
        page.body.contains("</code>：张* → 张*</li>"),
        "{}",
        page.body
    );
    let (_, _, state) = web.state.engine.load(&case).await.expect("load");
    assert_eq!(
        state
            .vars
            .get("applicant_name")
            .map(ToString::to_string)
            .as_deref(),
        Some("张秀英")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_township_or_a_refused_role_changes_nothing() {
    let web = start().await;
    let case = web.start_case("张秀兰", "705.00").await;
    let history = web
        .state
        .engine
        .store
        .history(&case)
        .await
        .expect("history")
        .len();

    // Another township does not see the case: the not-found page.
    let other = web.session("fa_clerk").await;
    let form = web.get("/cases/new", Some(&other)).await;
    let token = last_token(&form);
    let page = web
        .post(
            &format!("/cases/{case}/corrections"),
            Some(&other),
            &[
                ("_csrf", &token),
                ("path", "monthly_amount"),
                ("value", "\"900.00\""),
                ("reason", "多报"),
            ],
            ADDRESS,
        )
        .await;
    assert_eq!(page.status, 404, "{}", page.body);

    // A role none of the procedure's tasks is for: the engine refuses, in words, on the
    // case file, with the form as posted.
    let staff = web.session("zx_staff1").await;
    let page = web.get(&format!("/cases/{case}"), Some(&staff)).await;
    let token = last_token(&page);
    let page = web
        .post(
            &format!("/cases/{case}/corrections"),
            Some(&staff),
            &[
                ("_csrf", &token),
                ("path", "monthly_amount"),
                ("value", "\"900.00\""),
                ("reason", "核对"),
            ],
            ADDRESS,
        )
        .await;
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(
        page.body.contains("更正未保存：您的角色或所在单位无权办理"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("value=\"&quot;900.00&quot;\""),
        "{}",
        page.body
    );

    // A value that does not fit its type: refused in words.
    let staff = web.session("zx_head").await;
    let page = web.get(&format!("/cases/{case}"), Some(&staff)).await;
    let token = last_token(&page);
    let page = web
        .post(
            &format!("/cases/{case}/corrections"),
            Some(&staff),
            &[
                ("_csrf", &token),
                ("path", "monthly_amount"),
                ("value", "很多"),
                ("reason", "核对"),
            ],
            ADDRESS,
        )
        .await;
    assert_eq!(page.status, 422, "{}", page.body);
    assert!(
        page.body.contains("id=\"correction-error\""),
        "{}",
        page.body
    );
    assert!(page.body.contains("更正未保存"), "{}", page.body);
    assert!(page.body.contains("value=\"很多\""), "{}", page.body);
    let after = web
        .state
        .engine
        .store
        .history(&case)
        .await
        .expect("history")
        .len();
    assert_eq!(after, history);
}
