//! The process language: loading YAML definitions into validated, compiled
//! [`model::Definition`]s, reporting every problem at once.
//!
//! Loading goes YAML text → position-carrying tree ([`yaml`]) → compiled model
//! ([`compile`], with [`graph`] checks). Each problem is a [`Diagnostic`]
//! rendered as `file:line:column: CODE: message` plus an optional `  hint:`
//! line. The language itself is described in `docs/process-language.md`.
//!
//! # Diagnostic codes
//!
//! | code | meaning |
//! | --- | --- |
//! | `E_YAML` | the file is not well-formed YAML |
//! | `E_TAB` | a tab in indentation (each such line is reported) |
//! | `E_TOO_LARGE` | the file exceeds 1 MiB, or has more than 1,000 nodes |
//! | `E_TOO_DEEP` | nesting deeper than 64 levels (also: an expression nested too deeply) |
//! | `E_DUPLICATE_KEY` | a key appears twice in one mapping |
//! | `E_UNKNOWN_KEY` | a key the place does not accept (with a did-you-mean hint) |
//! | `E_MISSING_KEY` | a required key is absent |
//! | `E_WRONG_TYPE` | a value of the wrong YAML kind (a list where a string belongs …) or a literal not fitting its declared type |
//! | `E_BAD_VALUE` | a value of the right kind but not allowed (end status, payment schedule, default transition not last …) |
//! | `E_BAD_ID` | an id or name that is not `[a-z][a-z0-9_]*` |
//! | `E_DUPLICATE_ID` | two nodes (or deadlines) with one id, or a declared variable named like a built-in |
//! | `E_UNKNOWN_TYPE` | an unknown value type or node type |
//! | `E_UNKNOWN_NODE` | a reference to a node id that does not exist (did-you-mean hint) |
//! | `E_UNREACHABLE` | a node that cannot be reached from the start node |
//! | `E_NO_END` | a node from which no end node can be reached (a cycle without exit) |
//! | `E_LOOP_WITHOUT_WAIT` | a cycle of nodes with no task, receive or timer on it (it would go round within one step; a pass per list item is an `emit` with `for_each`) |
//! | `E_NO_DEFAULT` | a conditional `next` without default whose conditions may all be false |
//! | `E_BAD_JOIN` | a join whose `of` is not a parallel node |
//! | `E_UNKNOWN_ROLE` | a role not in the org file |
//! | `E_UNKNOWN_CALENDAR` | a calendar id not among the loaded calendars |
//! | `E_UNKNOWN_PROGRAM` | a rule node's `program` is not an assessment program |
//! | `E_UNKNOWN_TEMPLATE` | a notification names a template the project does not have |
//! | `E_UNKNOWN_PURPOSE` | a payment's `purpose` is neither a rule program nor a declared purpose |
//! | `E_TEMPLATE_VARIABLE` | a template needs a variable neither the effect nor the case supplies |
//! | `E_UNKNOWN_PROCESS` | `start_process` names a process not in the loaded set ([`load_dir`]) |
//! | `E_UNKNOWN_DEADLINE` | a `reschedule` names an undeclared deadline |
//! | `E_BAD_DURATION` | not a duration (`5wd`, `7d`, `36h`, `30min`, `6mo`, `1y`) |
//! | `E_BAD_CRON` | not a cron expression the `cron` crate accepts |
//! | `E_UNKNOWN_VARIABLE` | an expression reads (or `set` assigns) an undeclared variable |
//! | `E_TYPE` | an expression of the wrong type: a non-bool condition, an assignment the variable's type does not accept |
//! | `E_EXPR_SYNTAX` | an expression does not parse |
//! | `E_IO` | a file could not be read |
//!
//! Expression checking may also report the expression language's own codes
//! (`E_UNKNOWN_FIELD`, `E_UNKNOWN_FUNCTION`, `E_ARITY`, `E_TOO_LONG`), each
//! positioned at the offending character inside the YAML scalar.

pub mod compile;
pub mod context;
pub mod diagnostic;
pub mod graph;
pub mod model;
pub mod read;
pub mod scope;
pub mod yaml;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

pub use context::{LoadContext, TemplateVars, program_names};
pub use diagnostic::{Diagnostic, codes, render};
use model::Definition;

/// Loads one definition from its source text. `file_name` is used in diagnostics.
pub fn load_definition(
    src: &str,
    file_name: &str,
    context: &LoadContext,
) -> Result<Definition, Vec<Diagnostic>> {
    load_with_refs(src, file_name, context).map(|(definition, _)| definition)
}

/// Like [`load_definition`], also returning the literal `start_process` targets.
fn load_with_refs(
    src: &str,
    file_name: &str,
    context: &LoadContext,
) -> Result<(Definition, Vec<compile::ProcessRef>), Vec<Diagnostic>> {
    let root = yaml::parse(src).map_err(|problems| {
        problems
            .into_iter()
            .map(|p| Diagnostic {
                file: file_name.to_string(),
                line: p.line,
                column: p.column,
                code: p.code,
                message: p.message,
                hint: p.hint,
            })
            .collect::<Vec<_>>()
    })?;
    let mut ctx = read::Ctx::new(file_name, src);
    let mut compiler = compile::Compiler::new(&mut ctx, context);
    let definition = compiler.definition(&root);
    let refs = std::mem::take(&mut compiler.process_refs);
    match definition {
        Some(definition) if ctx.diagnostics.is_empty() => Ok((definition, refs)),
        _ => {
            let mut diagnostics = ctx.diagnostics;
            diagnostics.sort_by_key(|d| (d.line, d.column));
            Err(diagnostics)
        }
    }
}

/// The process definitions of a directory: its top-level `*.yaml` files, in name
/// order (subfolders hold calendars, policies, rules, scenarios, templates, and
/// `org.yaml` is the org file). Returns the definitions that loaded and every
/// diagnostic, including `start_process` effects that name a process outside
/// the set (`E_UNKNOWN_PROCESS`) and two files declaring one process id.
pub fn load_dir(
    dir: &Path,
    context: &LoadContext,
) -> (Vec<(PathBuf, Definition)>, Vec<Diagnostic>) {
    let mut diagnostics = Vec::new();
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| is_definition_file(p))
            .collect(),
        Err(err) => {
            diagnostics.push(Diagnostic::new(
                dir.display().to_string(),
                1,
                1,
                codes::E_IO,
                format!("cannot read the directory: {err}"),
            ));
            return (Vec::new(), diagnostics);
        }
    };
    files.sort();
    let mut loaded = Vec::new();
    let mut refs = Vec::new();
    for path in files {
        let name = path.display().to_string();
        match read_source(&path) {
            Ok(src) => match load_with_refs(&src, &name, context) {
                Ok((definition, file_refs)) => {
                    refs.extend(file_refs.into_iter().map(|r| (name.clone(), r)));
                    loaded.push((path, definition));
                }
                Err(mut problems) => diagnostics.append(&mut problems),
            },
            Err(problem) => diagnostics.push(problem),
        }
    }
    let mut ids: BTreeMap<&str, &Path> = BTreeMap::new();
    for (path, definition) in &loaded {
        if let Some(first) = ids.insert(&definition.id, path) {
            diagnostics.push(
                Diagnostic::new(
                    path.display().to_string(),
                    1,
                    1,
                    codes::E_DUPLICATE_ID,
                    format!(
                        "process id `{}` is also declared by {}",
                        definition.id,
                        first.display()
                    ),
                )
                .with_hint("each process id must be unique across the definitions"),
            );
        }
    }
    let known: BTreeSet<&str> = loaded.iter().map(|(_, d)| d.id.as_str()).collect();
    for (file, r) in refs {
        if !known.contains(r.process.as_str()) {
            let hint = match diagnostic::did_you_mean(&r.process, known.iter().copied()) {
                Some(best) => format!("did you mean `{best}`?"),
                None => format!(
                    "known processes: {}",
                    known.iter().copied().collect::<Vec<_>>().join(", ")
                ),
            };
            diagnostics.push(
                Diagnostic::new(
                    file,
                    r.line,
                    r.column,
                    codes::E_UNKNOWN_PROCESS,
                    format!("start_process names the unknown process `{}`", r.process),
                )
                .with_hint(hint),
            );
        }
    }
    (loaded, diagnostics)
}

/// A top-level process definition file: `*.yaml`, not the org file.
pub fn is_definition_file(path: &Path) -> bool {
    path.is_file()
        && path.extension().is_some_and(|e| e == "yaml")
        && path.file_name().is_some_and(|n| n != "org.yaml")
}

/// Reads a definition file, refusing oversized files before reading them whole.
pub fn read_source(path: &Path) -> Result<String, Diagnostic> {
    let name = path.display().to_string();
    let io = |err: std::io::Error| {
        Diagnostic::new(
            name.clone(),
            1,
            1,
            codes::E_IO,
            format!("cannot read the file: {err}"),
        )
    };
    let size = std::fs::metadata(path).map_err(io)?.len();
    if size > yaml::MAX_FILE_BYTES as u64 {
        return Err(Diagnostic::new(
            name.clone(),
            1,
            1,
            codes::E_TOO_LARGE,
            format!(
                "the file is {size} bytes; a definition may be at most {} bytes (1 MiB)",
                yaml::MAX_FILE_BYTES
            ),
        ));
    }
    std::fs::read_to_string(path).map_err(io)
}
