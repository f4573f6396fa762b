//! The API's deploy makes the CLI's template check: a notification template that does not
//! load is refused with the template and part it is in, and nothing is deployed.

mod common;

use std::path::Path;

use anyhow::{Result, ensure};
use common::*;
use jiuzhu_testkit::Db;

const USERS: &[(&str, &str, &str)] = &[("admin", "admin", "双鸭山市/尖山区")];

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// A project whose reminder template uses a variable it does not declare.
fn broken_project() -> Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    let processes = Path::new(env!("CARGO_MANIFEST_DIR")).join("../processes");
    copy_dir(&processes, dir.path())?;
    std::fs::write(
        dir.path().join("templates/task_reminder.yaml"),
        "subject: 待办提醒\nvariables: [instance, task]\nbody: |\n  {{ instance }} {{ no_such_variable }}\n",
    )?;
    Ok(dir)
}

async fn setup(db: Db) -> (Ctx, Teardown) {
    let project = broken_project().expect("a copy of the project");
    setup_project(db, USERS, project).await
}

async fn deploy_refuses_a_broken_template(ctx: Ctx) -> Result<()> {
    let admin = ctx.token("admin").await?;
    let before = ctx.get("/api/definitions", Auth::Bearer(&admin)).await?;
    let refused = ctx
        .send(
            reqwest::Method::POST,
            "/api/definitions/deploy",
            Auth::Bearer(&admin),
            None,
            &[],
        )
        .await?;
    refused.expect_problem(422, "invalid_definition")?;
    let detail = refused.body["detail"].as_str().unwrap_or_default();
    ensure!(
        detail.contains("`task_reminder` (body)") && detail.contains("no_such_variable"),
        "the problem does not say where: {detail}"
    );
    let after = ctx.get("/api/definitions", Auth::Bearer(&admin)).await?;
    ensure!(before.body == after.body, "something was deployed");
    Ok(())
}

jiuzhu_testkit::on_both_databases!(deploy_refuses_a_broken_template);
