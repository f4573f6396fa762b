//! Shared test fixtures: the shipped templates and org file, a sample case, a real SMTP
//! server (aiosmtpd) and a recording webhook receiver for the notification tests; a
//! deployed node over a test project for the ledger's end-to-end tests.
#![allow(dead_code)] // each test file uses a part of the fixtures

pub mod smtp_sink;
pub mod webhook_sink;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use jiuzhu_adapters::payments::Ledger;
use jiuzhu_engine::clock::ManualClock;
use jiuzhu_engine::project::Project;
use jiuzhu_engine::runtime::Engine;
use jiuzhu_engine::store::Store;

use jiuzhu_adapters::notify::TemplateSet;
use jiuzhu_engine::org::Org;
use serde_json::{Value as Json, json};

pub fn repo_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

/// One node over the test project at `dir` on the database at `url`: the store, the
/// engine (on a manual clock at `now`, its definitions deployed) and the ledger.
pub async fn deployed_node(
    url: &str,
    dir: &Path,
    now: DateTime<Utc>,
) -> (Store, Arc<ManualClock>, Arc<Engine>, Ledger) {
    let store = Store::open(url).await.expect("open store");
    let project = Project::load(dir)
        .unwrap_or_else(|problems| panic!("project does not load:\n{}", problems.join("\n")));
    let clock = Arc::new(ManualClock::new(now));
    let engine =
        Engine::new(store.clone(), Arc::new(project), clock.clone(), "node-a").expect("engine");
    engine.deploy().await.expect("deploy");
    let ledger = Ledger::open(&store).await.expect("ledger");
    (store, clock, Arc::new(engine), ledger)
}

pub fn shipped_templates() -> TemplateSet {
    TemplateSet::load_dir(&repo_path("processes/templates")).expect("shipped templates load")
}

pub fn shipped_org() -> Org {
    Org::load(&repo_path("processes/org.yaml")).expect("org.yaml loads")
}

/// Instance variables of a dibao case in 富安街道/安邦社区.
pub fn sample_instance() -> Json {
    json!({
        "applicant_name": "张桂兰",
        "area": "urban",
        "unit": "双鸭山市/尖山区/富安街道/安邦社区",
        "contact": {"phone": "13800001234", "email": "zhang.guilan@example.cn"},
        "program": "dibao",
        "monthly_amount": "705.00"
    })
}
