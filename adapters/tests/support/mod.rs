//! Shared test fixtures for the notification tests: the shipped templates
//! and org file, a sample case, a real SMTP server (aiosmtpd) and a
//! recording webhook receiver.
#![allow(dead_code)] // each test file uses a part of the fixtures

pub mod smtp_sink;
pub mod webhook_sink;

use std::path::PathBuf;

use jiuzhu_adapters::notify::TemplateSet;
use jiuzhu_engine::org::Org;
use serde_json::{Value as Json, json};

pub fn repo_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
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
