//! The shipped example notification config stays valid as the format evolves.

use std::path::PathBuf;

use jiuzhu_adapters::notify::NotifyConfig;

#[test]
fn the_example_notification_config_loads() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config/notify.example.yaml");
    let config = NotifyConfig::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert!(config.smtp.is_some() && config.webhook.is_some());
    assert!(!config.routes.applicant.is_empty() && !config.routes.staff.is_empty());
}
