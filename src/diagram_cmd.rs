//! `jiuzhu diagram PROCESS`: prints a Mermaid flowchart of one definition.
//!
//! PROCESS is a path to a `.yaml` file, or a process id looked up in the
//! definitions directory (`DIR/ID.yaml` first, then any file declaring that id).

use std::path::{Path, PathBuf};

use jiuzhu_engine::lang::{self, Diagnostic};

use crate::validate_cmd::context_for;

pub fn run(process: &str, definitions_dir: &Path) -> i32 {
    let as_path = PathBuf::from(process);
    let (file, dir) = if as_path.extension().is_some_and(|e| e == "yaml") || as_path.is_file() {
        let dir = as_path
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        (Some(as_path), dir)
    } else {
        let candidate = definitions_dir.join(format!("{process}.yaml"));
        (
            candidate.is_file().then_some(candidate),
            definitions_dir.to_path_buf(),
        )
    };
    let (context, problems) = context_for(&dir);
    report(&problems);
    let definition = match file {
        Some(file) => {
            let name = file.display().to_string();
            match lang::read_source(&file)
                .map_err(|d| vec![d])
                .and_then(|src| lang::load_definition(&src, &name, &context))
            {
                Ok(definition) => definition,
                Err(diagnostics) => {
                    report(&diagnostics);
                    return 1;
                }
            }
        }
        None => {
            let (loaded, _) = lang::load_dir(&dir, &context);
            match loaded.into_iter().find(|(_, d)| d.id == process) {
                Some((_, definition)) => definition,
                None => {
                    eprintln!(
                        "no process `{process}` in {} (give its id or the path of a .yaml file)",
                        dir.display()
                    );
                    return 1;
                }
            }
        }
    };
    print!("{}", jiuzhu_engine::diagram::mermaid(&definition));
    0
}

fn report(diagnostics: &[Diagnostic]) {
    for d in diagnostics {
        eprintln!("{d}");
    }
}
