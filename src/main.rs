//! The `jiuzhu` command: thin wiring of the engine, rules and adapters crates.

mod diagram_cmd;
mod test_cmd;
mod validate_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "jiuzhu",
    version,
    about = "Jiuzhu (救助): a durable workflow engine for social assistance"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check process definitions; every problem as file:line:column: CODE: message.
    Validate {
        /// Definition files or folders.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Print a process as a Mermaid flowchart (labels in Chinese).
    Diagram {
        /// A process id or a path to a .yaml definition.
        process: String,
        #[arg(long, default_value = "processes")]
        definitions: PathBuf,
    },
    /// Run scenario files against a fresh engine with a manual clock.
    Test {
        /// Where process ids are looked up.
        #[arg(long, default_value = "processes")]
        definitions: PathBuf,
        /// A policy parameter file for every rule step (default: the project's, by date and unit).
        #[arg(long)]
        policy: Option<PathBuf>,
        /// Scenario files or folders (searched recursively for *.scenario.yaml).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Validate { paths } => validate_cmd::run(&paths),
        Command::Diagram {
            process,
            definitions,
        } => diagram_cmd::run(&process, &definitions),
        Command::Test {
            definitions,
            policy,
            paths,
        } => test_cmd::run(&definitions, policy.as_deref(), &paths),
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
