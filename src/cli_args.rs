//! The options every command takes (`--db`, `--project`, `--definitions`, before or after
//! the subcommand), where the project folder and the database are found, and `--data`.
//!
//! The project folder is `--project DIR`, else `$JIUZHU_HOME`, else the current folder or
//! the nearest folder above it that holds `processes/`; so a command works from any
//! folder inside a project. The definitions are `processes/` in it, and the default
//! database `data/jiuzhu.db` in it.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::Result;
use jiuzhu_rules::Value;

use crate::errors::CliError;

/// Options valid before or after any subcommand.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct GlobalArgs {
    /// Database: a SQLite file or a `postgres://` URL [default: $JIUZHU_DB, else
    /// data/jiuzhu.db in the project folder]. Commands that only read never create it.
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        value_name = "FILE|URL"
    )]
    pub db: Option<String>,
    /// The project folder, holding processes/ and data/ [default: $JIUZHU_HOME, else the
    /// current folder or the nearest folder above it with a processes/ folder].
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        value_name = "DIR"
    )]
    pub project: Option<PathBuf>,
    /// The definitions folder (procedures, org.yaml, calendars, rules, policies, templates)
    /// [default: processes/ in the project folder].
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        value_name = "DIR"
    )]
    pub definitions: Option<PathBuf>,
}

/// Where a command's project, definitions and database are.
#[derive(Debug, Clone)]
pub struct Paths {
    pub definitions: PathBuf,
    /// A SQLite path or a PostgreSQL URL.
    pub db: String,
    /// Whether the database was named (`--db`, `JIUZHU_DB`) rather than the default.
    pub db_named: bool,
}

impl GlobalArgs {
    pub fn paths(&self) -> Result<Paths> {
        let project = self.project_dir()?;
        let definitions = self
            .definitions
            .clone()
            .unwrap_or_else(|| project.join("processes"));
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let (db, db_named) = match (&self.db, env("JIUZHU_DB")) {
            (Some(db), _) => (db.clone(), true),
            (None, Some(db)) => (db, true),
            (None, None) => {
                let dir = env("JIUZHU_DATA")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| project.join("data"));
                (dir.join("jiuzhu.db").display().to_string(), false)
            }
        };
        Ok(Paths {
            definitions,
            db,
            db_named,
        })
    }

    fn project_dir(&self) -> Result<PathBuf> {
        let named = self.project.clone().map(|p| (p, "--project")).or_else(|| {
            std::env::var("JIUZHU_HOME")
                .ok()
                .filter(|v| !v.is_empty())
                .map(|p| (PathBuf::from(p), "JIUZHU_HOME"))
        });
        if let Some((dir, from)) = named {
            if !dir.is_dir() {
                return Err(CliError::usage(
                    "invalid_input",
                    format!("{from}: {} is not a folder", dir.display()),
                )
                .into());
            }
            return Ok(dir);
        }
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        Ok(cwd
            .ancestors()
            .find(|dir| dir.join("processes").is_dir())
            .map(Path::to_path_buf)
            .unwrap_or(cwd))
    }
}

impl Paths {
    /// The SQLite file the database URL names, if it names one (not PostgreSQL, not memory).
    pub fn sqlite_file(&self) -> Option<PathBuf> {
        if self.db.starts_with("postgres://") || self.db.starts_with("postgresql://") {
            return None;
        }
        let rest = self
            .db
            .strip_prefix("sqlite://")
            .or_else(|| self.db.strip_prefix("sqlite:"))
            .unwrap_or(&self.db);
        let path = rest.split('?').next().unwrap_or_default();
        (path != ":memory:" && !path.is_empty()).then(|| PathBuf::from(path))
    }

    /// Refuses a SQLite database file that does not exist, so a mistyped `--db` is an
    /// error rather than a new empty database.
    pub fn require_database(&self) -> Result<()> {
        match self.sqlite_file() {
            Some(file) if !file.exists() => Err(CliError::usage(
                "no_database",
                format!("no database at {}", file.display()),
            )
            .hint(format!(
                "create it with `jiuzhu deploy --db {}` (or `jiuzhu demo` for demo data)",
                file.display()
            ))
            .hint("or name the right one with --db FILE or JIUZHU_DB")
            .into()),
            _ => Ok(()),
        }
    }
}

/// Reads `--data`: `-` (standard input), inline JSON (`'{"a":1}'`), or a file (JSON, or
/// YAML for any other extension), into an object's fields. No `--data`: no fields.
pub fn read_data(data: Option<&str>) -> Result<BTreeMap<String, Value>> {
    let Some(data) = data else {
        return Ok(BTreeMap::new());
    };
    let invalid = |message: String| CliError::usage("invalid_input", message);
    let (text, source, json_only) = if data == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| invalid(format!("--data -: reading standard input: {e}")))?;
        (text, "--data - (standard input)".to_string(), false)
    } else if data.trim_start().starts_with('{') {
        (data.to_string(), "--data (inline JSON)".to_string(), true)
    } else {
        let path = Path::new(data);
        // A file over the size cap is refused before it is read, let alone parsed.
        let cap = jiuzhu_rules::InputLimits::default().max_text_bytes();
        if let Ok(meta) = std::fs::metadata(path)
            && meta.len() > cap as u64
        {
            return Err(CliError::usage(
                "input_too_large",
                format!(
                    "--data {data}: the file is {} bytes; at most {cap}",
                    meta.len()
                ),
            )
            .into());
        }
        let text = std::fs::read_to_string(path).map_err(|e| {
            invalid(format!("--data {data}: {e}"))
                .hint("--data takes a file (JSON or YAML), `-` for standard input, or inline JSON such as '{\"complete\": true}'")
        })?;
        let json_only = path.extension().is_some_and(|e| e == "json");
        (text, data.to_string(), json_only)
    };
    if let Err(e) = jiuzhu_rules::InputLimits::default().check_text(&text) {
        return Err(CliError::usage(e.code(), format!("{source}: {e}")).into());
    }
    // Strict: a key given twice is refused, never silently the last one winning.
    let json: serde_json::Value = match jiuzhu_rules::parse_strict(&text) {
        Ok(json) => json,
        Err(e @ jiuzhu_rules::JsonError::DuplicateKey { .. }) => {
            return Err(CliError::usage(e.code(), format!("{source}: {e}")).into());
        }
        Err(e) if json_only => return Err(invalid(format!("{source}: not valid JSON: {e}")).into()),
        // YAML is read as such (JSON that failed above is reported by the YAML reader too).
        Err(_) => serde_saphyr::from_str(&text)
            .map_err(|e| invalid(format!("{source}: neither JSON nor YAML: {e}")))?,
    };
    match Value::from_json(&json) {
        Value::Object(map) => Ok(map),
        _ => Err(invalid(format!("{source}: expected an object ({{…}}) at the top")).into()),
    }
}
