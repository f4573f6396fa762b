//! What effects are checked against in a project: the notification templates of its
//! `templates/` folder with the variables each declares (`variables:`, `optional:`).
//! Only those two lists are read here; rendering is the notifier's.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use jiuzhu_rules::yaml::ErrorAt;
use serde::Deserialize;

use crate::lang::TemplateVars;

/// A template file whose variable lists do not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct CatalogError {
    pub file: String,
    pub line: u64,
    pub column: u64,
    pub message: String,
}

#[derive(Deserialize)]
struct RawTemplate {
    #[serde(default)]
    variables: Vec<String>,
    #[serde(default)]
    optional: Vec<String>,
}

/// The variables of one template file's text; `file` names it in errors.
pub fn template_vars(src: &str, file: &str) -> Result<TemplateVars, CatalogError> {
    let raw: RawTemplate = serde_saphyr::from_str(src).map_err(|err| {
        let ErrorAt {
            line,
            column,
            message,
        } = ErrorAt::of(&err);
        CatalogError {
            file: file.to_string(),
            line,
            column,
            message,
        }
    })?;
    Ok(TemplateVars {
        required: raw.variables.into_iter().collect::<BTreeSet<_>>(),
        optional: raw.optional.into_iter().collect::<BTreeSet<_>>(),
    })
}

/// Every `*.yaml` template of `dir`, by name (the file name without `.yaml`).
pub fn load_templates(dir: &Path) -> Result<BTreeMap<String, TemplateVars>, Vec<CatalogError>> {
    let io = |message: String| CatalogError {
        file: dir.display().to_string(),
        line: 1,
        column: 1,
        message,
    };
    let entries = std::fs::read_dir(dir).map_err(|e| vec![io(e.to_string())])?;
    let mut templates = BTreeMap::new();
    let mut problems = Vec::new();
    for entry in entries {
        let path = match entry {
            Ok(entry) => entry.path(),
            Err(e) => {
                problems.push(io(e.to_string()));
                continue;
            }
        };
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".yaml"))
        else {
            continue;
        };
        let file = path.display().to_string();
        let read = std::fs::read_to_string(&path)
            .map_err(|e| CatalogError {
                file: file.clone(),
                line: 1,
                column: 1,
                message: e.to_string(),
            })
            .and_then(|src| template_vars(&src, &file));
        match read {
            Ok(vars) => {
                templates.insert(name.to_string(), vars);
            }
            Err(e) => problems.push(e),
        }
    }
    if problems.is_empty() {
        Ok(templates)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_template_declares_what_it_needs_and_may_use() {
        let vars = template_vars(
            "subject: x\nvariables: [applicant_name]\noptional: [unit]\nbody: y\n",
            "t.yaml",
        )
        .unwrap();
        assert!(vars.required.contains("applicant_name"));
        assert!(vars.uses("unit"));
        assert!(!vars.uses("monthly_amount"));
        let bad = template_vars("variables: 3\n", "t.yaml").unwrap_err();
        assert_eq!((bad.file.as_str(), bad.line), ("t.yaml", 1));
    }
}
