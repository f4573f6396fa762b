//! Printed documents over HTTP: the decision notice of an approved and of a refused case,
//! the approval form, the 公示 list (names masked, amounts, never ID numbers or
//! accounts), and the unit check that guards them.

mod web_support;

use web_support::{ACCOUNT, ID_NUMBER, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_notice_has_the_amount_and_the_first_month_paid() {
    let web = start().await;
    let case = web.start_case("张秀兰", "850.5").await;
    web.decide(&case, "approve", "").await;
    let head = web.session("zx_head").await;
    let page = web.get(&format!("/cases/{case}/notice"), Some(&head)).await;
    assert_eq!(page.status, 200, "{}", page.body);
    for wanted in [
        "审核确认决定通知书",
        "¥850.50",
        "2026年4月",
        "张*",
        "/static/print.css",
    ] {
        assert!(
            page.body.contains(wanted),
            "{wanted} missing: {}",
            page.body
        );
    }
    for unwanted in ["张秀兰", "行政复议", ID_NUMBER] {
        assert!(
            !page.body.contains(unwanted),
            "{unwanted} shown: {}",
            page.body
        );
    }
    let css = web.get("/static/print.css", None).await;
    assert!(css.body.contains("size: A4"), "{}", css.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_notice_gives_the_reasons_and_the_time_limits() {
    let web = start().await;
    let case = web.start_case("李建华", "300").await;
    web.decide(&case, "reject", "家庭人均收入高于当地保障标准")
        .await;
    let head = web.session("zx_head").await;
    let page = web.get(&format!("/cases/{case}/notice"), Some(&head)).await;
    assert_eq!(page.status, 200, "{}", page.body);
    for wanted in [
        "不予批准决定通知书",
        "家庭人均收入高于当地保障标准",
        "60日",
        "行政复议",
        "6个月",
        "行政诉讼",
    ] {
        assert!(
            page.body.contains(wanted),
            "{wanted} missing: {}",
            page.body
        );
    }
    assert!(!page.body.contains("¥300.00"), "{}", page.body);
    // Another township's staff get the not-found page, as for a case that does not exist.
    let other = web.session("fa_clerk").await;
    let page = web
        .get(&format!("/cases/{case}/notice"), Some(&other))
        .await;
    assert_eq!(page.status, 404, "{}", page.body);
    assert!(!page.body.contains("李"), "{}", page.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_publicity_list_shows_masked_names_and_amounts_but_no_id_numbers() {
    let web = start().await;
    web.start_case("王大明", "620").await;
    web.start_case("赵小红", "410.25").await;
    let decided = web.start_case("钱多多", "999").await;
    web.decide(&decided, "approve", "").await;
    let staff = web.session("zx_staff1").await;
    let page = web.get("/print/publicity", Some(&staff)).await;
    assert_eq!(page.status, 200, "{}", page.body);
    for wanted in [
        "社会救助对象公示",
        "王*",
        "¥620.00",
        "赵*",
        "¥410.25",
        "2026-03-09",
    ] {
        assert!(
            page.body.contains(wanted),
            "{wanted} missing: {}",
            page.body
        );
    }
    for unwanted in [
        "王大明",
        "赵小红",
        "钱",
        "¥999.00",
        ID_NUMBER,
        "1123X",
        "230***",
        ACCOUNT,
        "7890",
    ] {
        assert!(
            !page.body.contains(unwanted),
            "{unwanted} shown: {}",
            page.body
        );
    }
    // A township cannot print another township's list.
    let other = web.session("fa_clerk").await;
    let page = web
        .get(
            &format!(
                "/print/publicity?unit={}",
                web_support::encode(web_support::TOWNSHIP)
            ),
            Some(&other),
        )
        .await;
    assert_eq!(page.status, 404, "{}", page.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_approval_form_lists_the_data_masked_and_every_step() {
    let web = start().await;
    let case = web.start_case("孙丽娟", "700").await;
    web.decide(&case, "approve", "").await;
    let head = web.session("zx_head").await;
    let page = web
        .get(&format!("/cases/{case}/approval-form"), Some(&head))
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    for wanted in [
        "审批表",
        "申请人姓名",
        "孙*",
        "审核确认",
        "zx_head",
        "approved",
    ] {
        assert!(
            page.body.contains(wanted),
            "{wanted} missing: {}",
            page.body
        );
    }
    for unwanted in ["孙丽娟", ID_NUMBER, ACCOUNT] {
        assert!(
            !page.body.contains(unwanted),
            "{unwanted} shown: {}",
            page.body
        );
    }
}
