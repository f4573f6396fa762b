//! The applicant's progress page over HTTP: the right suffix shows where the case
//! stands and nothing personal; a wrong suffix or a wrong number gets the very answer of
//! an unknown case; lookups are limited per address.

mod web_support;

use web_support::{PROGRESS_LIMIT, Page, start};

/// The answer part of a progress page (the form echoes the case number typed).
fn answer(page: &Page) -> String {
    let start = page.body.find("</form>").unwrap_or(0);
    page.body[start..].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_right_suffix_shows_the_stage_and_nothing_personal() {
    let web = start().await;
    let case = web.start_case("周桂芳", "500").await;
    let form = web.get("/progress", None).await;
    assert_eq!(form.status, 200, "{}", form.body);
    assert!(form.body.contains("身份证号后六位"), "{}", form.body);
    // The X of an ID number may be typed in lower case.
    let page = web
        .post(
            "/progress",
            None,
            &[("case", &case), ("suffix", "01123x")],
            "198.51.100.1",
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    for wanted in ["progress-result", "最低生活保障", "“公示”环节"] {
        assert!(
            page.body.contains(wanted),
            "{wanted} missing: {}",
            page.body
        );
    }
    for unwanted in [
        "周",
        "¥",
        "500",
        web_support::ID_NUMBER,
        web_support::ACCOUNT,
    ] {
        assert!(
            !answer(&page).contains(unwanted),
            "{unwanted} shown: {}",
            page.body
        );
    }
    web.decide(&case, "approve", "").await;
    let page = web
        .post(
            "/progress",
            None,
            &[("case", &case), ("suffix", "01123X")],
            "198.51.100.1",
        )
        .await;
    assert!(page.body.contains("决定给予救助"), "{}", page.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_suffix_answers_like_an_unknown_case() {
    let web = start().await;
    let case = web.start_case("吴志刚", "500").await;
    let address = "198.51.100.2";
    let wrong_suffix = web
        .post(
            "/progress",
            None,
            &[("case", &case), ("suffix", "01123Y")],
            address,
        )
        .await;
    let unknown = web
        .post(
            "/progress",
            None,
            &[("case", "mini-nonexistent"), ("suffix", "01123X")],
            address,
        )
        .await;
    let short = web
        .post(
            "/progress",
            None,
            &[("case", &case), ("suffix", "123X")],
            address,
        )
        .await;
    assert_eq!(wrong_suffix.status, unknown.status);
    assert_eq!(short.status, unknown.status);
    assert!(unknown.body.contains("progress-error"), "{}", unknown.body);
    assert_eq!(answer(&wrong_suffix), answer(&unknown));
    assert_eq!(answer(&short), answer(&unknown));
    assert!(!wrong_suffix.body.contains("progress-result"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_are_limited_per_address() {
    let web = start().await;
    let case = web.start_case("郑海燕", "500").await;
    let address = "198.51.100.3";
    for i in 0..PROGRESS_LIMIT {
        let page = web
            .post(
                "/progress",
                None,
                &[("case", &case), ("suffix", &format!("{i:06}"))],
                address,
            )
            .await;
        assert_eq!(page.status, 200, "try {i}: {}", page.body);
    }
    // Past the limit even the right suffix is refused from this address...
    let page = web
        .post(
            "/progress",
            None,
            &[("case", &case), ("suffix", "01123X")],
            address,
        )
        .await;
    assert_eq!(page.status, 429, "{}", page.body);
    assert!(!page.body.contains("progress-result"), "{}", page.body);
    // ...but not from another one, and the window passes.
    let page = web
        .post(
            "/progress",
            None,
            &[("case", &case), ("suffix", "01123X")],
            "198.51.100.4",
        )
        .await;
    assert!(page.body.contains("progress-result"), "{}", page.body);
    web.clock.advance(chrono::Duration::minutes(16));
    let page = web
        .post(
            "/progress",
            None,
            &[("case", &case), ("suffix", "01123X")],
            address,
        )
        .await;
    assert!(page.body.contains("progress-result"), "{}", page.body);
}
