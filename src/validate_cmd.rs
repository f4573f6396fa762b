//! `jiuzhu validate FILE|DIR...`: loads definitions and prints every problem.
//!
//! The context of a file is its directory: the org file `org.yaml` (roles),
//! the calendars in `calendars/` and the rule files in `rules/` (programs). A directory argument is validated as a set
//! (its top-level `*.yaml`), which also checks `start_process` targets.
//! Diagnostics go to stderr, `ok FILE` lines to stdout; the exit code is 1 when
//! any problem was found.

use std::path::{Path, PathBuf};

use jiuzhu_engine::calendar::CalendarSet;
use jiuzhu_engine::effects::catalog::load_templates;
use jiuzhu_engine::lang::{self, Diagnostic, LoadContext};
use jiuzhu_engine::org::Org;
use jiuzhu_rules::ruleset::{RuleSet, RulesError};

pub fn run(paths: &[PathBuf]) -> i32 {
    let mut failed = false;
    for path in paths {
        let (ok, diagnostics) = validate(path);
        for d in &diagnostics {
            eprintln!("{d}");
        }
        for file in ok {
            println!("ok {}", file.display());
        }
        failed |= !diagnostics.is_empty();
    }
    i32::from(failed)
}

/// The files that loaded and every diagnostic for one argument.
fn validate(path: &Path) -> (Vec<PathBuf>, Vec<Diagnostic>) {
    let dir = if path.is_dir() {
        path.to_path_buf()
    } else {
        path.parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    };
    let (context, mut diagnostics) = context_for(&dir);
    if path.is_dir() {
        let (loaded, mut problems) = lang::load_dir(path, &context);
        diagnostics.append(&mut problems);
        return (loaded.into_iter().map(|(p, _)| p).collect(), diagnostics);
    }
    if path.file_name().is_some_and(|n| n == "org.yaml") {
        // The org directory sits beside the definitions (so `processes/*.yaml` names it):
        // it is checked as what it is. Its problems were reported by `context_for`.
        return if diagnostics.is_empty() {
            (vec![path.to_path_buf()], diagnostics)
        } else {
            (Vec::new(), diagnostics)
        };
    }
    let name = path.display().to_string();
    match lang::read_source(path).and_then(|src| {
        lang::load_definition(&src, &name, &context).map_err(|mut d| {
            let first = d.remove(0);
            diagnostics.append(&mut d);
            first
        })
    }) {
        Ok(_) if diagnostics.is_empty() => (vec![path.to_path_buf()], diagnostics),
        Ok(_) => (Vec::new(), diagnostics),
        Err(first) => {
            diagnostics.insert(0, first);
            (Vec::new(), diagnostics)
        }
    }
}

/// Roles and payment purposes from `DIR/org.yaml`, calendar ids from `DIR/calendars/`
/// and notification templates from `DIR/templates/`; a missing
/// file or folder leaves that check off, a broken one is reported.
pub fn context_for(dir: &Path) -> (LoadContext, Vec<Diagnostic>) {
    let mut context = LoadContext::default();
    let mut diagnostics = Vec::new();
    let org_path = dir.join("org.yaml");
    if org_path.is_file() {
        match Org::load(&org_path) {
            Ok(org) => {
                context = context
                    .with_roles(org.role_ids())
                    .with_purposes(org.purpose_ids())
            }
            Err(err) => diagnostics.push(Diagnostic::new(
                org_path.display().to_string(),
                1,
                1,
                lang::codes::E_YAML,
                err.to_string(),
            )),
        }
    }
    let calendars = dir.join("calendars");
    if calendars.is_dir() {
        match CalendarSet::load_dir(&calendars) {
            Ok(set) => context = context.with_calendars(set.iter().map(|c| c.id().to_string())),
            Err(err) => diagnostics.push(Diagnostic::new(
                calendars.display().to_string(),
                1,
                1,
                lang::codes::E_YAML,
                err.to_string(),
            )),
        }
    }
    let templates = dir.join("templates");
    if templates.is_dir() {
        match load_templates(&templates) {
            Ok(known) => context = context.with_templates(known),
            Err(errors) => diagnostics.extend(errors.into_iter().map(|e| {
                Diagnostic::new(e.file, e.line, e.column, lang::codes::E_YAML, e.message)
            })),
        }
    }
    let rules = dir.join("rules");
    if rules.is_dir() {
        match RuleSet::load_dir(&rules) {
            Ok(set) => context = context.with_programs(&set),
            Err(RulesError::Invalid { problems }) => {
                diagnostics.extend(problems.into_iter().map(|p| {
                    Diagnostic::new(p.file, p.line as u64, p.column as u64, p.code, p.message)
                }));
            }
            Err(err) => diagnostics.push(Diagnostic::new(
                rules.display().to_string(),
                1,
                1,
                lang::codes::E_YAML,
                err.to_string(),
            )),
        }
    }
    (context, diagnostics)
}
