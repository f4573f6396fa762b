//! Procedures and their versions: the list, a definition's editor (paste or load a
//! file), the check (the engine's loader diagnostics shown beside the numbered source
//! lines, and the diff against the deployed version), deploying, and running the
//! procedure's scenarios.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use jiuzhu_engine::lang::{Diagnostic, codes, load_definition};
use jiuzhu_engine::scenario;
use jiuzhu_engine::store::Deployment;
use similar::{ChangeTag, TextDiff};

use super::{Admin, required, show};
use crate::app::AppState;
use crate::web::post::Posted;
use crate::web::{WebError, WebResult, render};

/// Lines of context around each change of the diff.
const DIFF_CONTEXT: usize = 3;

/// `GET /admin`: every deployed procedure with its latest version.
pub async fn index(State(state): State<Arc<AppState>>, admin: Admin) -> WebResult {
    let deployments = state.engine.store.deployments().await?;
    let mut latest: BTreeMap<&str, (&Deployment, usize)> = BTreeMap::new();
    for deployment in &deployments {
        let entry = latest
            .entry(deployment.process_id.as_str())
            .or_insert((deployment, 0));
        entry.1 += 1;
        if deployment.version > entry.0.version {
            entry.0 = deployment;
        }
    }
    let procedures: Vec<serde_json::Value> = latest
        .into_iter()
        .map(|(id, (deployment, versions))| {
            serde_json::json!({
                "id": id,
                "name": procedure_name(&state, id),
                "version": deployment.version,
                "versions": versions,
                "deployed_at": render::local_time(deployment.deployed_at),
            })
        })
        .collect();
    let mut context = admin.context(&state, "procedures");
    context.insert("procedures", &procedures);
    show("admin/index.html", &context)
}

fn procedure_name(state: &AppState, id: &str) -> String {
    state
        .engine
        .project
        .definitions
        .get(id)
        .map_or_else(|| id.to_string(), |def| def.name.clone())
}

/// The deployed versions of `id`, newest first; not found when there are none.
async fn versions(state: &AppState, id: &str) -> WebResult<Vec<Deployment>> {
    let mut versions: Vec<Deployment> = state
        .engine
        .store
        .deployments()
        .await?
        .into_iter()
        .filter(|d| d.process_id == id)
        .collect();
    versions.sort_by_key(|d| std::cmp::Reverse(d.version));
    if versions.is_empty() {
        return Err(WebError::not_found());
    }
    Ok(versions)
}

/// The editor page of `id` with `source` in the text area, and whatever `extra` adds.
async fn editor(
    state: &AppState,
    admin: &Admin,
    id: &str,
    source: Option<&str>,
    extra: impl FnOnce(&mut tera::Context),
) -> WebResult {
    let versions = versions(state, id).await?;
    let listed: Vec<serde_json::Value> = versions
        .iter()
        .map(|d| {
            serde_json::json!({
                "version": d.version,
                "hash": d.hash.chars().take(12).collect::<String>(),
                "deployed_at": render::local_time(d.deployed_at),
            })
        })
        .collect();
    let mut context = admin.context(state, "procedures");
    context.insert("id", id);
    context.insert("name", &procedure_name(state, id));
    context.insert("versions", &listed);
    context.insert(
        "source",
        source.unwrap_or_else(|| versions.first().map_or("", |d| d.source.as_str())),
    );
    context.insert("check_token", &admin.0.form_token(state).await?);
    context.insert("scenario_token", &admin.0.form_token(state).await?);
    extra(&mut context);
    show("admin/procedure.html", &context)
}

/// `GET /admin/procedures/{id}`.
pub async fn edit(
    State(state): State<Arc<AppState>>,
    admin: Admin,
    Path(id): Path<String>,
) -> WebResult {
    editor(&state, &admin, &id, None, |_| {}).await
}

/// The problems of `source` as a definition of `id` (none when it loads).
pub fn diagnose(state: &AppState, id: &str, source: &str) -> Vec<Diagnostic> {
    let file = format!("{id}.yaml");
    match load_definition(source, &file, &state.engine.project.context) {
        Ok(def) if def.id == id => Vec::new(),
        Ok(def) => vec![Diagnostic::new(
            file,
            1,
            1,
            codes::E_BAD_ID,
            format!("此处编辑的是流程 {id}，但内容声明的是流程 {}", def.id),
        )],
        Err(diagnostics) => diagnostics,
    }
}

/// The numbered lines of `source`, each with the problems reported at it. A problem
/// past the last line is shown on the last.
pub fn numbered(source: &str, diagnostics: &[Diagnostic]) -> Vec<serde_json::Value> {
    let lines: Vec<&str> = source.lines().collect();
    let last = lines.len().max(1);
    let mut at: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for d in diagnostics {
        let line = usize::try_from(d.line).unwrap_or(last).clamp(1, last);
        let mut text = format!("第{}列 {}：{}", d.column, d.code, d.message);
        if let Some(hint) = &d.hint {
            text.push_str(&format!("（提示：{hint}）"));
        }
        at.entry(line).or_default().push(text);
    }
    (1..=last)
        .map(|no| {
            serde_json::json!({
                "no": no,
                "text": lines.get(no - 1).copied().unwrap_or(""),
                "problems": at.remove(&no).unwrap_or_default(),
            })
        })
        .collect()
}

/// The diff of `new` against `old`, in hunks of lines (`tag` is `-`, `+` or a space).
pub fn diff(old: &str, new: &str) -> Vec<Vec<serde_json::Value>> {
    let diff = TextDiff::from_lines(old, new);
    diff.grouped_ops(DIFF_CONTEXT)
        .iter()
        .map(|group| {
            group
                .iter()
                .flat_map(|op| diff.iter_changes(op))
                .map(|change| {
                    let tag = match change.tag() {
                        ChangeTag::Delete => "-",
                        ChangeTag::Insert => "+",
                        ChangeTag::Equal => " ",
                    };
                    serde_json::json!({
                        "tag": tag,
                        "old": change.old_index().map(|i| i + 1),
                        "new": change.new_index().map(|i| i + 1),
                        "text": change.value().trim_end_matches(['\n', '\r']),
                    })
                })
                .collect()
        })
        .collect()
}

/// The posted source as typed (line ends as LF: browsers post a text area's with CRLF).
fn source_field(form: &Posted) -> WebResult<String> {
    required(form, "source", "流程定义")?;
    Ok(form.one("source").unwrap_or_default().replace("\r\n", "\n"))
}

/// `POST /admin/procedures/{id}/check`: the source checked, with its problems at their
/// lines and its diff against the deployed version; a valid, changed source can then be
/// deployed.
pub async fn check(
    State(state): State<Arc<AppState>>,
    admin: Admin,
    Path(id): Path<String>,
    form: Posted,
) -> WebResult {
    admin.accept(&state, &form, &["source"]).await?;
    let source = source_field(&form)?;
    let deployed = versions(&state, &id).await?;
    let current = deployed.first().map_or("", |d| d.source.as_str());
    let diagnostics = diagnose(&state, &id, &source);
    let lines = numbered(&source, &diagnostics);
    let hunks = diff(current, &source);
    let deploy_token = if diagnostics.is_empty() && !hunks.is_empty() {
        Some(admin.0.form_token(&state).await?)
    } else {
        None
    };
    let version = deployed.first().map_or(0, |d| d.version);
    editor(&state, &admin, &id, Some(&source), move |context| {
        context.insert("checked", &true);
        context.insert("problem_count", &diagnostics.len());
        context.insert("lines", &lines);
        context.insert("hunks", &hunks);
        context.insert("deployed_version", &version);
        context.insert("deploy_token", &deploy_token);
    })
    .await
}

/// `POST /admin/procedures/{id}/deploy`: deploys the checked source (checked again:
/// the hidden field is not trusted).
pub async fn deploy(
    State(state): State<Arc<AppState>>,
    admin: Admin,
    Path(id): Path<String>,
    form: Posted,
) -> WebResult {
    admin.accept(&state, &form, &["source"]).await?;
    let source = source_field(&form)?;
    versions(&state, &id).await?;
    if !diagnose(&state, &id, &source).is_empty() {
        return Err(WebError::new(
            "invalid_data",
            "提交的流程定义未通过检查（页面内容可能被改动），没有部署。请重新检查后再部署。",
        ));
    }
    let deployed = state.engine.deploy_source(&id, &source).await?;
    let flash = format!("已部署 {} 第 {} 版。", id, deployed.version);
    editor(&state, &admin, &id, None, move |context| {
        context.insert("flash", &flash);
    })
    .await
}

/// `POST /admin/procedures/{id}/scenarios`: runs the procedure's scenarios (the files
/// under the project's `scenarios/{id}/`) against the project's definitions.
pub async fn scenarios(
    State(state): State<Arc<AppState>>,
    admin: Admin,
    Path(id): Path<String>,
    form: Posted,
) -> WebResult {
    admin.accept(&state, &form, &[]).await?;
    versions(&state, &id).await?;
    let project = state.engine.project.clone();
    let dir = project.dir.join("scenarios").join(&id);
    let results = tokio::task::spawn_blocking(move || {
        let mut files = Vec::new();
        if dir.is_dir() {
            scenario::collect(&dir, &mut files);
        }
        files
            .iter()
            .map(|file| {
                let name = file
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                match scenario::run_file(file, project.as_ref(), None) {
                    Ok(outcome) => serde_json::json!({
                        "file": name, "name": outcome.name,
                        "ok": outcome.failure.is_none(), "failure": outcome.failure,
                    }),
                    Err(problems) => serde_json::json!({
                        "file": name, "name": name, "ok": false,
                        "failure": problems.join("\n"),
                    }),
                }
            })
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|_| WebError::new("internal", crate::web::error::plain_message("internal")))?;
    editor(&state, &admin, &id, None, move |context| {
        context.insert("scenario_results", &results);
    })
    .await
}
