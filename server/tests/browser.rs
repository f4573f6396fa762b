//! The pages in a real browser: Debian's headless Chromium driven through chromedriver
//! (WebDriver, `fantoccini`). The server runs in-process on a SQLite file with a MANUAL
//! clock: "moving past publicity" is this test moving its clock and running one scheduler
//! tick — a control that exists only here. Screenshots are saved under
//! `target/browser-artifacts/`. Without chromium or chromedriver the tests fail, saying
//! how to install them (`scripts/services.sh` does).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use anyhow::{Context as _, Result, bail, ensure};
use chrono::{Duration, TimeZone, Utc};
use fantoccini::{Client, ClientBuilder, Locator};
use jiuzhu_engine::clock::{Clock, ManualClock};
use jiuzhu_engine::project::Project;
use jiuzhu_engine::runtime::Engine;
use jiuzhu_engine::scheduler::Scheduler;
use jiuzhu_engine::store::Store;
use jiuzhu_server::{AppState, ServerConfig, UserRecord};
use jiuzhu_testkit::{Db, TestDatabase};
use tokio::io::{AsyncBufReadExt, BufReader};

/// Every wait for the browser is bounded by this; the whole file stays well under 2 min.
const WAIT: StdDuration = StdDuration::from_secs(20);

/// The users the tests log in as, with their demo-style passwords.
const USERS: &[&str] = &[
    "zx_clerk",
    "zx_staff1",
    "zx_staff2",
    "zx_head",
    "county_staff1",
    "fa_clerk",
];

fn password(user: &str) -> String {
    format!("demo-{user}")
}

struct Site {
    base: String,
    clock: Arc<ManualClock>,
    engine: Arc<Engine>,
    _database: TestDatabase,
    _stop: tokio::sync::watch::Sender<bool>,
}

async fn site(label: &str) -> Result<Site> {
    let database = TestDatabase::create(Db::Sqlite, label).await;
    let store = Store::open(&database.url).await?;
    let processes = Path::new(env!("CARGO_MANIFEST_DIR")).join("../processes");
    let project = Project::load(&processes)?;
    // Monday 2026-03-02 09:00 in China.
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 3, 2, 1, 0, 0)
            .single()
            .context("time")?,
    ));
    let engine = Arc::new(Engine::new(
        store,
        Arc::new(project),
        clock.clone() as Arc<dyn Clock>,
        "browser-test",
    )?);
    engine.deploy().await?;
    let state = AppState::new(engine.clone(), ServerConfig::default())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let org = engine.project.org.as_ref().context("org.yaml")?;
    for id in USERS {
        let user = org.user(id).context("user in org.yaml")?;
        let record = UserRecord {
            id: user.id.clone(),
            name: user.name.clone(),
            unit: user.unit.clone(),
            roles: user.roles.clone(),
            disabled: false,
            has_password: false,
        };
        state
            .db
            .add_user(&record, Some(&password(id)), clock.now())
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(jiuzhu_server::serve(listener, state, async move {
        let _ = stopped.wait_for(|s| *s).await;
    }));
    Ok(Site {
        base,
        clock,
        engine,
        _database: database,
        _stop: stop,
    })
}

/// chromedriver on a free port, killed when dropped.
struct Driver {
    url: String,
    _child: tokio::process::Child,
}

fn need(program: &str) -> Result<PathBuf> {
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let path = Path::new(dir).join(program);
        if path.is_file() {
            return Ok(path);
        }
    }
    bail!(
        "{program} is not installed: the browser tests need Debian's `chromium` and \
         `chromium-driver` packages (scripts/services.sh installs them)"
    )
}

async fn driver() -> Result<Driver> {
    let chromedriver = need("chromedriver")?;
    need("chromium")?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut child = tokio::process::Command::new(chromedriver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting chromedriver")?;
    let stdout = child.stdout.take().context("chromedriver's stdout")?;
    // Ready when it says so (no polling).
    let mut lines = BufReader::new(stdout).lines();
    tokio::time::timeout(WAIT, async {
        while let Some(line) = lines.next_line().await? {
            if line.contains("started successfully") {
                return Ok(());
            }
        }
        bail!("chromedriver exited before it was ready")
    })
    .await
    .context("chromedriver did not start in time")??;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(Driver {
        url: format!("http://127.0.0.1:{port}"),
        _child: child,
    })
}

async fn browser(driver: &Driver) -> Result<Client> {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": need("chromium")?,
            "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--window-size=1280,1100", "--lang=zh-CN"],
        }),
    );
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .context("opening a chromium session")?;
    Ok(client)
}

fn artifacts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/browser-artifacts")
}

async fn screenshot(client: &Client, name: &str) -> Result<()> {
    let png = client.screenshot().await?;
    let dir = artifacts();
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join(format!("{name}.png")), png)?;
    Ok(())
}

/// A screenshot of the whole page: the window is made as tall as the page for it.
async fn full_page_screenshot(client: &Client, name: &str) -> Result<()> {
    let height = client
        .execute("return document.documentElement.scrollHeight;", vec![])
        .await?
        .as_u64()
        .unwrap_or(1100)
        .clamp(600, 4000);
    client.set_window_size(1280, height as u32 + 140).await?;
    let result = screenshot(client, name).await;
    client.set_window_size(1280, 1100).await?;
    result
}

async fn find(client: &Client, css: &str) -> Result<fantoccini::elements::Element> {
    match client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css(css))
        .await
    {
        Ok(element) => Ok(element),
        Err(error) => {
            let url = client.current_url().await.ok();
            let page = client.source().await.unwrap_or_default();
            let start = page.find("<main").unwrap_or(0);
            let excerpt: String = page[start..].chars().take(1500).collect();
            bail!("waiting for `{css}` on {url:?}: {error}\n{excerpt}")
        }
    }
}

async fn text(client: &Client, css: &str) -> Result<String> {
    Ok(find(client, css).await?.text().await?)
}

async fn login(client: &Client, base: &str, user: &str) -> Result<()> {
    client.goto(&format!("{base}/login")).await?;
    find(client, "#user").await?.send_keys(user).await?;
    find(client, "#password")
        .await?
        .send_keys(&password(user))
        .await?;
    find(client, "#login-submit").await?.click().await?;
    let name = text(client, "#me-name").await?;
    ensure!(!name.is_empty(), "{user} is logged in");
    Ok(())
}

async fn logout(client: &Client) -> Result<()> {
    find(client, "form[action='/logout'] button")
        .await?
        .click()
        .await?;
    find(client, "#login-form").await?;
    Ok(())
}

/// Opens the queue and the first task of step `node`; returns its id.
async fn open_task(client: &Client, base: &str, node: &str) -> Result<String> {
    client.goto(&format!("{base}/queue")).await?;
    let row = find(client, &format!("tr[data-node='{node}']")).await?;
    let id = row.attr("data-task").await?.context("task id")?;
    row.find(Locator::Css("a.task-link")).await?.click().await?;
    find(client, "#task-form").await?;
    Ok(id)
}

async fn select(client: &Client, css: &str, value: &str) -> Result<()> {
    find(client, css).await?.select_by_value(value).await?;
    Ok(())
}

async fn submit_task(client: &Client) -> Result<()> {
    find(client, "#submit-task").await?.click().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dibao_application_is_worked_through_to_payment_in_the_browser() -> Result<()> {
    let site = site("browser-flow").await?;
    let driver = driver().await?;
    let client = browser(&driver).await?;
    let result = dibao_flow(&client, &site).await;
    if result.is_err() {
        let _ = screenshot(&client, "failure-flow").await;
    }
    client.close().await?;
    result
}

async fn dibao_flow(client: &Client, site: &Site) -> Result<()> {
    let base = &site.base;
    // The township clerk takes the application.
    login(client, base, "zx_clerk").await?;
    client
        .goto(&format!("{base}/cases/new?process=dibao"))
        .await?;
    find(client, "#in-applicant_name")
        .await?
        .send_keys("张三丰")
        .await?;
    select(client, "#in-area", "urban").await?;
    let member = |field: &str| format!("input[name='household.members.0.{field}']");
    client
        .execute(
            "document.querySelector(arguments[0]).value = arguments[1];",
            vec![member("birth_date").into(), "1948-10-20".into()],
        )
        .await?;
    find(client, &member("income.0.kind"))
        .await?
        .send_keys("pension_basic")
        .await?;
    find(client, &member("income.0.monthly"))
        .await?
        .send_keys("180.00")
        .await?;
    // A second member, added with the editor's button.
    find(client, "[data-add-row='household-members']")
        .await?
        .click()
        .await?;
    let second = |field: &str| format!("input[name='household.members.1.{field}']");
    find(client, &second("id")).await?.send_keys("m2").await?;
    client
        .execute(
            "document.querySelector(arguments[0]).value = arguments[1];",
            vec![second("birth_date").into(), "1979-04-12".into()],
        )
        .await?;
    find(client, &second("income.0.kind"))
        .await?
        .send_keys("wage")
        .await?;
    find(client, &second("income.0.monthly"))
        .await?
        .send_keys("1000.00")
        .await?;
    find(client, "input[name='household.savings']")
        .await?
        .send_keys("8000.00")
        .await?;
    screenshot(client, "01-new-application").await?;
    find(client, "#submit-case").await?.click().await?;
    let case_id = text(client, "#case-id").await?;
    ensure!(
        case_id.starts_with("dibao-"),
        "case page after start: {case_id}"
    );

    // Acceptance: a wrong-typed value is refused at its field, nothing is changed.
    open_task(client, base, "accept").await?;
    client
        .execute(
            "var s = document.querySelector('#in-complete'); \
             var o = document.createElement('option'); o.value = 'maybe'; s.appendChild(o); s.value = 'maybe';",
            vec![],
        )
        .await?;
    submit_task(client).await?;
    let error = text(client, "#error-complete").await?;
    ensure!(
        error.contains("是") && error.contains("否"),
        "bool error: {error}"
    );
    screenshot(client, "02-field-error").await?;
    select(client, "#in-complete", "true").await?;
    let task_url = client.current_url().await?.to_string();
    let posted = client
        .execute(
            "return new URLSearchParams(new FormData(document.getElementById('task-form'))).toString();",
            vec![],
        )
        .await?;
    submit_task(client).await?;
    find(client, "#flash").await?;
    // The same form posted again (a double click, a replay): refused, nothing changes.
    let replay = client
        .execute_async(
            "var done = arguments[arguments.length - 1];\
             fetch(arguments[0], {method: 'POST', body: arguments[1], credentials: 'same-origin',\
               headers: {'Content-Type': 'application/x-www-form-urlencoded'}})\
             .then(function (r) { return r.text().then(function (t) { done([r.status, t]); }); });",
            vec![task_url.into(), posted],
        )
        .await?;
    ensure!(
        replay[0] == 403 && replay[1].as_str().unwrap_or("").contains("已经提交过"),
        "double submit refused: {}",
        replay[0]
    );
    let history = site.engine.store.history(&case_id).await?;
    ensure!(
        history
            .iter()
            .filter(|h| h.node.as_deref() == Some("accept") && h.event == "complete")
            .count()
            == 1,
        "accept completed once"
    );
    logout(client).await?;

    // Survey by the township staff: claim from the queue, then complete.
    login(client, base, "zx_staff1").await?;
    client.goto(&format!("{base}/queue")).await?;
    screenshot(client, "03-queue").await?;
    find(client, "tr[data-node='survey'] button.claim")
        .await?
        .click()
        .await?;
    find(client, "tr[data-node='survey'] button.unclaim").await?;
    open_task(client, base, "survey").await?;
    ensure!(
        find(client, "#unclaim").await.is_ok(),
        "the claimed task offers to release it"
    );
    find(client, "#in-surveyors")
        .await?
        .send_keys("李四\n王五")
        .await?;
    submit_task(client).await?;
    find(client, "#flash").await?;
    logout(client).await?;

    // Verification by the county.
    login(client, base, "county_staff1").await?;
    open_task(client, base, "verify").await?;
    select(client, "#in-verification_ok", "true").await?;
    submit_task(client).await?;
    find(client, "#flash").await?;
    logout(client).await?;

    // Initial opinion by a second staff member, with the assessment beside the form.
    login(client, base, "zx_staff2").await?;
    open_task(client, base, "initial_opinion").await?;
    let amount = text(client, "#assessment-amount").await?;
    ensure!(amount == "¥705.00", "assessment beside the form: {amount}");
    screenshot(client, "04-task-form").await?;
    select(client, "#in-proposal", "approve").await?;
    submit_task(client).await?;
    find(client, "#flash").await?;
    // The case file during publicity: the waiting step is highlighted on the diagram.
    client.goto(&format!("{base}/cases/{case_id}")).await?;
    find(client, "#diagram svg g.current").await?;
    full_page_screenshot(client, "05-case-in-publicity").await?;
    logout(client).await?;

    // Publicity: seven days pass (the test's clock) and the scheduler fires the timer.
    site.clock.advance(Duration::days(8));
    let fired = Scheduler::new(&site.engine).tick().await?;
    ensure!(
        !fired.fired.is_empty(),
        "the publicity timer fired: {fired:?}"
    );

    // The separation of duties is explained to a staff member who did the survey: they
    // do not hold the head's role anyway, so the head approves.
    login(client, base, "zx_head").await?;
    open_task(client, base, "approve").await?;
    select(client, "#in-decision", "approve").await?;
    submit_task(client).await?;
    let outcome = text(client, "#case-outcome").await?;
    ensure!(outcome == "批准", "outcome on the case page: {outcome}");
    let payment = text(client, "#payments .payment-amount").await?;
    ensure!(payment == "¥705.00", "payment on the case page: {payment}");
    // The procedure's diagram is drawn, with the case's completed steps marked.
    find(client, "#diagram svg g.done").await?;
    full_page_screenshot(client, "06-case-file").await?;
    find(client, "#notice-link").await?.click().await?;
    let notice = text(client, "#notice-text").await?;
    ensure!(
        notice.contains("¥705.00") && notice.contains("符合条件"),
        "printed notice: {notice}"
    );
    screenshot(client, "07-notice").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_townships_user_cannot_open_the_case() -> Result<()> {
    let site = site("browser-jurisdiction").await?;
    let org = site.engine.project.org.as_ref().context("org")?;
    let clerk = org.user("zx_clerk").context("zx_clerk")?.actor();
    let data = serde_json::json!({
        "applicant_name": "李四", "area": "rural",
        "household": {"members": [{"id": "m1", "birth_date": "1950-01-01"}], "savings": "0.00"},
    });
    let data = match jiuzhu_rules::Value::from_json(&data) {
        jiuzhu_rules::Value::Object(map) => map,
        _ => bail!("object"),
    };
    let case = site.engine.start("dibao", &clerk, data).await?.instance.id;
    let driver = driver().await?;
    let client = browser(&driver).await?;
    let result = async {
        login(&client, &site.base, "fa_clerk").await?;
        client.goto(&format!("{}/cases/{case}", site.base)).await?;
        let message = text(&client, "#error .error-message").await?;
        ensure!(message.contains("没有找到"), "refusal: {message}");
        ensure!(
            !client.source().await?.contains("李"),
            "nothing of the case is shown"
        );
        screenshot(&client, "08-other-township").await?;
        // Nor is it in their queue.
        client.goto(&format!("{}/queue", site.base)).await?;
        find(&client, "#queue-empty").await?;
        logout(&client).await?;
        // A stale page: the clerk opens the task, it is completed meanwhile (as by a
        // colleague), and submitting the page explains that and changes nothing.
        login(&client, &site.base, "zx_clerk").await?;
        let task = open_task(&client, &site.base, "accept").await?;
        let version = site
            .engine
            .store
            .load_instance(&case)
            .await?
            .context("case")?
            .version;
        let done = match jiuzhu_rules::Value::from_json(&serde_json::json!({"complete": true})) {
            jiuzhu_rules::Value::Object(map) => map,
            _ => bail!("object"),
        };
        site.engine.complete(&task, &clerk, done).await?;
        select(&client, "#in-complete", "false").await?;
        submit_task(&client).await?;
        let message = text(&client, "#error .error-message").await?;
        ensure!(message.contains("已经办理完毕"), "stale page: {message}");
        let after = site
            .engine
            .store
            .load_instance(&case)
            .await?
            .context("case")?
            .version;
        ensure!(
            after == version + 1,
            "only the colleague's completion was recorded"
        );
        screenshot(&client, "09-stale-page").await?;
        Ok(())
    }
    .await;
    if result.is_err() {
        let _ = screenshot(&client, "failure-jurisdiction").await;
    }
    client.close().await?;
    result
}
