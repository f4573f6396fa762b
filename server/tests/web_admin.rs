//! The administration pages over HTTP: refused to everyone but administrators, a
//! definition's problems shown at their lines, deploying a new version (once: a reused
//! or missing form token, a tampered hidden field or an extra field change nothing),
//! and API tokens created (shown once) and revoked.

mod web_support;

use web_support::{MINI, start};

const ADDRESS: &str = "192.0.2.10";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn administration_is_refused_to_everyone_else() {
    let web = start().await;
    let staff = web.session("zx_head").await;
    for path in [
        "/admin",
        "/admin/users",
        "/admin/tokens",
        "/admin/procedures/mini",
    ] {
        let page = web.get(path, Some(&staff)).await;
        assert_eq!(page.status, 403, "{path}: {}", page.body);
        assert!(page.body.contains("无权办理"), "{path}: {}", page.body);
        // Without a session: the login form.
        let page = web.get(path, None).await;
        assert_eq!(page.status, 303, "{path}: {}", page.body);
    }
    let page = web
        .post(
            "/admin/tokens",
            Some(&staff),
            &[("action", "create"), ("user", "zx_head"), ("label", "x")],
            ADDRESS,
        )
        .await;
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(web.state.db.tokens().await.expect("tokens").is_empty());
    let admin = web.session("admin").await;
    let page = web.get("/admin", Some(&admin)).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("/admin/procedures/mini"),
        "{}",
        page.body
    );
    assert!(page.body.contains("第 1 版"), "{}", page.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_definition_with_an_error_shows_it_at_its_line() {
    let web = start().await;
    let admin = web.session("admin").await;
    let page = web.get("/admin/procedures/mini", Some(&admin)).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let token = page.tokens()[1].clone();
    let broken = MINI.replace("role: township_head", "role: nobody_here");
    let line = broken
        .lines()
        .position(|l| l.contains("nobody_here"))
        .expect("line")
        + 1;
    let page = web
        .post(
            "/admin/procedures/mini/check",
            Some(&admin),
            &[("_csrf", &token), ("source", &broken)],
            ADDRESS,
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("检查未通过"), "{}", page.body);
    let at_line = format!("<div class=\"problem\" data-line=\"{line}\">第{line}行");
    assert!(
        page.body.contains(&at_line),
        "{at_line} missing: {}",
        page.body
    );
    assert!(page.body.contains("E_UNKNOWN_ROLE"), "{}", page.body);
    assert!(!page.body.contains("deploy-form"), "{}", page.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploying_makes_a_new_version_once() {
    let web = start().await;
    let admin = web.session("admin").await;
    let versions = || async {
        web.state
            .engine
            .store
            .deployments()
            .await
            .expect("deployments")
            .into_iter()
            .filter(|d| d.process_id == "mini")
            .count()
    };
    let page = web.get("/admin/procedures/mini", Some(&admin)).await;
    let token = page.tokens()[1].clone();
    let changed = MINI.replace("name: 最低生活保障", "name: 最低生活保障（修订）");
    let page = web
        .post(
            "/admin/procedures/mini/check",
            Some(&admin),
            &[("_csrf", &token), ("source", &changed)],
            ADDRESS,
        )
        .await;
    assert!(page.body.contains("检查通过"), "{}", page.body);
    assert!(
        page.body.contains("+ name: 最低生活保障（修订）"),
        "{}",
        page.body
    );
    assert!(page.body.contains("- name: 最低生活保障"), "{}", page.body);
    let deploy_token = page.tokens()[1].clone();
    let page = web
        .post(
            "/admin/procedures/mini/deploy",
            Some(&admin),
            &[("_csrf", &deploy_token), ("source", &changed)],
            ADDRESS,
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("第 2 版"), "{}", page.body);
    assert_eq!(versions().await, 2);
    // The same form again (a double submit): refused, nothing deployed twice.
    let again = changed.replace("（修订）", "（再次）");
    let page = web
        .post(
            "/admin/procedures/mini/deploy",
            Some(&admin),
            &[("_csrf", &deploy_token), ("source", &again)],
            ADDRESS,
        )
        .await;
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(page.body.contains("已经提交过"), "{}", page.body);
    // A tampered hidden field with a fresh token: checked again, refused.
    let page = web.get("/admin/procedures/mini", Some(&admin)).await;
    let fresh = page.tokens()[1].clone();
    let tampered = changed.replace("role: township_head", "role: nobody_here");
    let page = web
        .post(
            "/admin/procedures/mini/deploy",
            Some(&admin),
            &[("_csrf", &fresh), ("source", &tampered)],
            ADDRESS,
        )
        .await;
    assert_eq!(page.status, 422, "{}", page.body);
    // An extra field: refused before anything happens.
    let page = web.get("/admin/procedures/mini", Some(&admin)).await;
    let fresh = page.tokens()[1].clone();
    let page = web
        .post(
            "/admin/procedures/mini/deploy",
            Some(&admin),
            &[("_csrf", &fresh), ("source", &again), ("version", "9")],
            ADDRESS,
        )
        .await;
    assert_eq!(page.status, 422, "{}", page.body);
    assert!(page.body.contains("version"), "{}", page.body);
    assert_eq!(versions().await, 2);
    let latest = web
        .state
        .engine
        .store
        .latest_deployment("mini")
        .await
        .expect("latest")
        .expect("deployed");
    assert_eq!(latest.source, changed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_shown_once_and_can_be_revoked() {
    let web = start().await;
    let admin = web.session("admin").await;
    let page = web.get("/admin/tokens", Some(&admin)).await;
    let token = page.tokens()[1].clone();
    // Without a form token, and with a made-up one: refused, no token created.
    for sent in [None, Some("forged")] {
        let mut fields = vec![
            ("action", "create"),
            ("user", "zx_staff1"),
            ("label", "对接"),
        ];
        if let Some(sent) = sent {
            fields.push(("_csrf", sent));
        }
        let page = web
            .post("/admin/tokens", Some(&admin), &fields, ADDRESS)
            .await;
        assert_eq!(page.status, 403, "{}", page.body);
    }
    assert!(web.state.db.tokens().await.expect("tokens").is_empty());
    let page = web
        .post(
            "/admin/tokens",
            Some(&admin),
            &[
                ("_csrf", &token),
                ("action", "create"),
                ("user", "zx_staff1"),
                ("label", "对接"),
            ],
            ADDRESS,
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let marker = "<code id=\"new-token\">";
    let at = page.body.find(marker).expect("new token shown") + marker.len();
    let secret = page.body[at..]
        .split('<')
        .next()
        .expect("secret")
        .to_string();
    assert!(secret.starts_with("jzt_"), "{secret}");
    assert_eq!(
        web.state
            .db
            .token_user(&secret)
            .await
            .expect("lookup")
            .as_deref(),
        Some("zx_staff1")
    );
    // The same form posted twice creates nothing more.
    let twice = web
        .post(
            "/admin/tokens",
            Some(&admin),
            &[
                ("_csrf", &token),
                ("action", "create"),
                ("user", "zx_staff1"),
                ("label", "对接"),
            ],
            ADDRESS,
        )
        .await;
    assert_eq!(twice.status, 403, "{}", twice.body);
    let listed = web.state.db.tokens().await.expect("tokens");
    assert_eq!(listed.len(), 1);
    // Shown once: the list does not show it again.
    let list = web.get("/admin/tokens", Some(&admin)).await;
    assert!(!list.body.contains(&secret), "{}", list.body);
    let revoke = list.tokens()[2].clone();
    let page = web
        .post(
            "/admin/tokens",
            Some(&admin),
            &[
                ("_csrf", &revoke),
                ("action", "revoke"),
                ("id", &listed[0].id),
            ],
            ADDRESS,
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("已吊销"), "{}", page.body);
    assert_eq!(
        web.state.db.token_user(&secret).await.expect("lookup"),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_show_calendar_coverage_and_refuse_retrying_a_non_incident() {
    let web = start().await;
    let admin = web.session("admin").await;
    let page = web.get("/admin/operations", Some(&admin)).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("没有发送失败的事项"), "{}", page.body);
    // The national calendar declares that it covers 2026 (`covers`), so no inferred note.
    let row = page
        .body
        .find("<code>cn</code>")
        .expect("calendar cn listed");
    let row_text = &page.body[row..row + page.body[row..].find("</tr>").expect("row end")];
    assert!(row_text.contains("2026"), "{}", page.body);
    assert!(!row_text.contains("未声明覆盖年份"), "{row_text}");
    // Form tokens belong to the session: any page's will do for a hand-made post.
    let token = web.get("/admin/tokens", Some(&admin)).await.tokens()[1].clone();
    let page = web
        .post(
            "/admin/operations",
            Some(&admin),
            &[("_csrf", &token), ("id", "no-such-effect")],
            ADDRESS,
        )
        .await;
    assert_eq!(page.status, 409, "{}", page.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_procedures_scenarios_run_from_the_page() {
    let web = start().await;
    let admin = web.session("admin").await;
    let page = web.get("/admin/procedures/mini", Some(&admin)).await;
    let token = page.tokens()[2].clone();
    let page = web
        .post(
            "/admin/procedures/mini/scenarios",
            Some(&admin),
            &[("_csrf", &token)],
            ADDRESS,
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("通过 公示期间没有待办"), "{}", page.body);
    assert!(page.body.contains("失败 错误的期望"), "{}", page.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_are_added_once_and_disabled() {
    let web = start().await;
    let admin = web.session("admin").await;
    let page = web.get("/admin/users", Some(&admin)).await;
    assert!(page.body.contains("系统管理员"), "{}", page.body);
    let add = page.tokens().last().expect("add form").clone();
    let fields = [
        ("_csrf", add.as_str()),
        ("action", "add"),
        ("id", "zx_new"),
        ("name", "新同事"),
        ("unit", web_support::TOWNSHIP),
        ("role", "township_staff"),
    ];
    // An extra field is refused and nothing is added.
    let mut extra = fields.to_vec();
    extra.push(("roles_all", "admin"));
    let page = web
        .post("/admin/users", Some(&admin), &extra, ADDRESS)
        .await;
    assert_eq!(page.status, 422, "{}", page.body);
    assert!(web.state.db.user("zx_new").await.expect("user").is_none());
    let page = web
        .post("/admin/users", Some(&admin), &fields, ADDRESS)
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("已添加用户 zx_new"), "{}", page.body);
    let page = web
        .post("/admin/users", Some(&admin), &fields, ADDRESS)
        .await;
    assert_eq!(page.status, 403, "a double submit: {}", page.body);
    let page = web.get("/admin/users", Some(&admin)).await;
    let row = page.body.find("id=\"user-zx_new\"").expect("listed");
    let marker = "name=\"_csrf\" value=\"";
    let at = page.body[row..].find(marker).expect("row form") + row + marker.len();
    let token = page.body[at..]
        .split('"')
        .next()
        .expect("token")
        .to_string();
    let page = web
        .post(
            "/admin/users",
            Some(&admin),
            &[("_csrf", &token), ("action", "disable"), ("id", "zx_new")],
            ADDRESS,
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let user = web
        .state
        .db
        .user("zx_new")
        .await
        .expect("user")
        .expect("exists");
    assert!(user.disabled && user.roles == ["township_staff"]);
}
