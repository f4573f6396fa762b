//! How every command reports an error: `error[CODE]: message` on stderr, then `hint: …`
//! lines where a next step helps, and one exit code per kind of failure.
//!
//! Exit codes: 0 done; 1 the action was refused or failed (not found, conflict, forbidden,
//! invalid form data, a store failure); 2 the command could not run as typed (bad
//! arguments or `--data`, no database at the path, an unknown user, a project that does
//! not load). The codes are the engine's stable `code()` where the engine refused.

use jiuzhu_engine::runtime::EngineError;
use jiuzhu_engine::store::StoreError;

/// Exit code of a refused or failed action.
pub const REFUSED: i32 = 1;
/// Exit code of a command that could not run as typed.
pub const USAGE: i32 = 2;

/// An error the command itself finds, with its code, exit code and hints.
#[derive(Debug)]
pub struct CliError {
    pub code: &'static str,
    pub message: String,
    pub hints: Vec<String>,
    pub exit: i32,
}

impl CliError {
    /// The command could not run as typed (exit 2).
    pub fn usage(code: &'static str, message: impl Into<String>) -> CliError {
        CliError {
            code,
            message: message.into(),
            hints: Vec::new(),
            exit: USAGE,
        }
    }

    /// The action was refused (exit 1).
    pub fn refused(code: &'static str, message: impl Into<String>) -> CliError {
        CliError {
            exit: REFUSED,
            ..CliError::usage(code, message)
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> CliError {
        self.hints.push(hint.into());
        self
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

/// Prints one error in the common form; every error of the binary goes through here.
pub fn emit(code: &str, message: &str, hints: &[String]) {
    // Messages that already start with their code (older engine texts) are not doubled.
    let message = message
        .strip_prefix(code)
        .and_then(|rest| rest.strip_prefix(": "))
        .unwrap_or(message);
    eprintln!("error[{code}]: {message}");
    for hint in hints {
        eprintln!("hint: {hint}");
    }
}

/// Prints an engine refusal and returns exit code 1.
pub fn engine(error: &EngineError) -> i32 {
    // Data refused with several problems: one line each, at its JSON path.
    if let EngineError::Step(step) = error
        && let problems = step.problems()
        && problems.len() > 1
    {
        let lines: Vec<String> = problems
            .iter()
            .map(|p| format!("  {}: {}", p.path, p.message))
            .collect();
        let message = format!(
            "{} problems with the data:\n{}",
            problems.len(),
            lines.join("\n")
        );
        emit(error.code(), &message, &engine_hints(error));
        return REFUSED;
    }
    emit(error.code(), &error.to_string(), &engine_hints(error));
    REFUSED
}

fn engine_hints(error: &EngineError) -> Vec<String> {
    match error.code() {
        "not_found" => vec!["`jiuzhu cases` lists cases; `jiuzhu tasks --as USER` a queue".into()],
        "forbidden" => {
            vec!["the task belongs to another unit or role: see `jiuzhu show CASE`".into()]
        }
        "tampered" => vec![
            "the case was changed outside the engine and is stopped: `jiuzhu incidents` lists it, \
             `jiuzhu audit verify` checks every case"
                .into(),
        ],
        _ => Vec::new(),
    }
}

/// Prints any error of a command (found by the binary, the engine or the store, with the
/// context added on the way) and returns its exit code.
pub fn report(error: &anyhow::Error) -> i32 {
    let message = format!("{error:#}");
    for cause in error.chain() {
        if let Some(cli) = cause.downcast_ref::<CliError>() {
            emit(cli.code, &message, &cli.hints);
            return cli.exit;
        }
        if let Some(engine) = cause.downcast_ref::<EngineError>() {
            emit(engine.code(), &message, &engine_hints(engine));
            return REFUSED;
        }
        if let Some(store) = cause.downcast_ref::<StoreError>() {
            let (code, exit) = store_code(store);
            let mut hints = Vec::new();
            if message.contains("readonly database") {
                hints.push(
                    "the database file or its folder is read-only: the reading commands \
                     (tasks, show, history, cases, status) work on it; this one writes"
                        .to_string(),
                );
            }
            emit(code, &message, &hints);
            return exit;
        }
    }
    emit("error", &message, &[]);
    REFUSED
}

fn store_code(error: &StoreError) -> (&'static str, i32) {
    match error {
        StoreError::NotFound { .. } => ("not_found", REFUSED),
        StoreError::SchemaTooNew { .. } => ("schema_too_new", USAGE),
        StoreError::InvalidUrl { .. } => ("invalid_input", USAGE),
        StoreError::Unreachable { .. } => ("unreachable", REFUSED),
        e if e.is_conflict() => ("conflict", REFUSED),
        StoreError::Tampered(_) => ("tampered", REFUSED),
        StoreError::AuditKey(_) => ("audit_key", USAGE),
        _ => ("store", REFUSED),
    }
}
