//! A project folder (`processes/` by default): definitions, org directory,
//! calendars, policies and rule files, loaded and cross-checked together.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jiuzhu_rules::policy::{Policy, PolicyError, PolicySet};
use jiuzhu_rules::ruleset::{RuleSet, RulesError};

use crate::assessor::{Policies, RulesAssessor};
use crate::calendar::{Calendar, CalendarError, CalendarSet};
use crate::core::Assessor;
use crate::effects::catalog::{CatalogError, load_templates};
use crate::lang::model::Definition;
use crate::lang::{Diagnostic, LoadContext, load_definition, load_dir};
use crate::org::{Org, OrgError};
use crate::scenario::World;

/// One problem of a project folder. Each displays as one or more
/// `file:line:column: message` lines.
#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    #[error(transparent)]
    Org(#[from] OrgError),
    #[error(transparent)]
    Calendar(#[from] CalendarError),
    #[error(transparent)]
    Rules(#[from] RulesError),
    /// A process definition breaks the language (`file:line:column: CODE: message`).
    #[error("{0}")]
    Definition(Diagnostic),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// Every problem of the `policies/` folder, one a line.
    #[error("{}", lines(.0))]
    Policies(Vec<PolicyError>),
    /// A notification template's variable lists do not read.
    #[error(transparent)]
    Template(#[from] CatalogError),
}

impl ProjectError {
    /// A stable name of the kind of problem, for APIs and logs.
    pub fn code(&self) -> &'static str {
        match self {
            ProjectError::Definition(_) => "invalid_definition",
            ProjectError::Org(_)
            | ProjectError::Calendar(_)
            | ProjectError::Rules(_)
            | ProjectError::Policy(_)
            | ProjectError::Policies(_)
            | ProjectError::Template(_) => "invalid_configuration",
        }
    }
}

/// Every problem found while loading a project folder, in the order found.
#[derive(Debug, thiserror::Error)]
#[error("{}", lines(.0))]
pub struct ProjectErrors(pub Vec<ProjectError>);

impl ProjectErrors {
    /// The problems' lines joined by `separator` (as a report prints them).
    pub fn join(&self, separator: &str) -> String {
        self.0
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(separator)
    }

    pub fn iter(&self) -> std::slice::Iter<'_, ProjectError> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl IntoIterator for ProjectErrors {
    type Item = ProjectError;
    type IntoIter = std::vec::IntoIter<ProjectError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

fn lines<T: std::fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Everything a folder of process definitions brings.
pub struct Project {
    pub dir: PathBuf,
    pub definitions: BTreeMap<String, Arc<Definition>>,
    /// Source file of each definition, by process id.
    pub files: BTreeMap<String, PathBuf>,
    pub org: Option<Org>,
    pub calendars: CalendarSet,
    pub rules: RuleSet,
    pub context: LoadContext,
}

impl Project {
    /// Loads `dir`; every problem found is returned (`file:line:column: CODE: message`).
    pub fn load(dir: &Path) -> Result<Project, ProjectErrors> {
        let mut problems = Vec::new();
        let org_path = dir.join("org.yaml");
        let org = if org_path.exists() {
            match Org::load(&org_path) {
                Ok(org) => Some(org),
                Err(e) => {
                    problems.push(ProjectError::Org(e));
                    None
                }
            }
        } else {
            None
        };
        let calendars_dir = dir.join("calendars");
        let mut calendars = if calendars_dir.is_dir() {
            CalendarSet::load_dir(&calendars_dir).unwrap_or_else(|e| {
                problems.push(ProjectError::Calendar(e));
                CalendarSet::default()
            })
        } else {
            CalendarSet::default()
        };
        if calendars.get("cn").is_none() {
            calendars.insert(Calendar::china_national());
        }
        let rules_dir = dir.join("rules");
        let rules = if rules_dir.is_dir() {
            RuleSet::load_dir(&rules_dir).unwrap_or_else(|e| {
                problems.push(ProjectError::Rules(e));
                RuleSet::builtin()
            })
        } else {
            RuleSet::builtin()
        };
        let mut context = LoadContext::default()
            .with_calendars(
                calendars
                    .iter()
                    .map(|c| c.id().to_string())
                    .collect::<Vec<_>>(),
            )
            .with_programs(&rules);
        if let Some(org) = &org {
            context = context
                .with_roles(org.role_ids())
                .with_purposes(org.purpose_ids());
        }
        let templates_dir = dir.join("templates");
        if templates_dir.is_dir() {
            match load_templates(&templates_dir) {
                Ok(templates) => context = context.with_templates(templates),
                Err(errors) => problems.extend(errors.into_iter().map(ProjectError::Template)),
            }
        }
        let (loaded, diagnostics) = load_dir(dir, &context);
        problems.extend(diagnostics.into_iter().map(ProjectError::Definition));
        let mut definitions = BTreeMap::new();
        let mut files = BTreeMap::new();
        for (path, def) in loaded {
            files.insert(def.id.clone(), path);
            definitions.insert(def.id.clone(), Arc::new(def));
        }
        if problems.is_empty() {
            Ok(Project {
                dir: dir.to_path_buf(),
                definitions,
                files,
                org,
                calendars,
                rules,
                context,
            })
        } else {
            Err(ProjectErrors(problems))
        }
    }

    /// The project's policy files (`policies/`), selected per case by unit and date.
    pub fn policy_set(&self) -> Result<PolicySet, ProjectError> {
        PolicySet::load_dir(&self.dir.join("policies")).map_err(ProjectError::Policies)
    }

    /// The assessor: one policy file when given, else the project's policies.
    pub fn assessor(&self, policy: Option<&Path>) -> Result<RulesAssessor, ProjectError> {
        let policies = match policy {
            // A folder is a set of policy files, chosen by unit and date like the project's.
            Some(path) if path.is_dir() => {
                Policies::Set(PolicySet::load_dir(path).map_err(ProjectError::Policies)?)
            }
            Some(path) => Policies::Fixed(Box::new(Policy::load(path)?)),
            None => Policies::Set(self.policy_set()?),
        };
        Ok(RulesAssessor {
            rules: self.rules.clone(),
            policies,
        })
    }
}

impl World for Project {
    fn definition(&self, process: &str, scenario_dir: &Path) -> Result<Arc<Definition>, String> {
        if let Some(def) = self.definitions.get(process) {
            return Ok(def.clone());
        }
        if process.ends_with(".yaml") || process.ends_with(".yml") {
            let path = scenario_dir.join(process);
            let src =
                std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            return load_definition(&src, &path.display().to_string(), &self.context)
                .map(Arc::new)
                .map_err(|diagnostics| {
                    diagnostics
                        .iter()
                        .map(|d| d.to_string())
                        .collect::<Vec<_>>()
                        .join("\n")
                });
        }
        Err(format!(
            "unknown process {process} (not among the definitions in {})",
            self.dir.display()
        ))
    }

    fn calendar(&self, id: &str) -> Option<Calendar> {
        self.calendars.get(id).cloned()
    }

    fn assessor(&self, policy: Option<&Path>) -> Result<Box<dyn Assessor>, String> {
        // The scenario runner's interface still speaks in strings.
        Ok(Box::new(
            Project::assessor(self, policy).map_err(|e| e.to_string())?,
        ))
    }
}
