//! Scenario files on disk: finding them under a folder and running one, shared by
//! `jiuzhu test` and the administration pages.

use std::path::{Path, PathBuf};

use super::{Outcome, World, parse_scenario, run};

/// Scenario files under `path`: every `*.scenario.yaml` of a folder (recursively, in
/// name order), or the file itself.
pub fn collect(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        entries.sort();
        for entry in entries {
            if entry.is_dir() || entry.to_string_lossy().ends_with(".scenario.yaml") {
                collect(&entry, out);
            }
        }
    } else {
        out.push(path.to_path_buf());
    }
}

/// Reads, parses and runs one scenario file. `Err` holds the problems of a file that
/// could not be read or parsed (one line each).
pub fn run_file(
    file: &Path,
    world: &dyn World,
    default_policy: Option<&Path>,
) -> Result<Outcome, Vec<String>> {
    let src =
        std::fs::read_to_string(file).map_err(|e| vec![format!("{}: {e}", file.display())])?;
    let scenario = parse_scenario(&src, &file.display().to_string())
        .map_err(|errors| errors.iter().map(ToString::to_string).collect::<Vec<_>>())?;
    Ok(run(&scenario, file, world, default_policy))
}
