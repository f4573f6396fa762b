//! A project folder (`processes/` by default): definitions, org directory,
//! calendars, policies and rule files, loaded and cross-checked together.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jiuzhu_rules::policy::{Policy, PolicySet};
use jiuzhu_rules::ruleset::RuleSet;

use crate::assessor::{Policies, RulesAssessor};
use crate::calendar::{Calendar, CalendarSet};
use crate::core::Assessor;
use crate::lang::model::Definition;
use crate::lang::{LoadContext, load_definition, load_dir};
use crate::org::Org;
use crate::scenario::World;

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
    /// Loads `dir`; every problem found is returned, one line each (`file:line:column: CODE: message`).
    pub fn load(dir: &Path) -> Result<Project, Vec<String>> {
        let mut problems = Vec::new();
        let org_path = dir.join("org.yaml");
        let org = if org_path.exists() {
            match Org::load(&org_path) {
                Ok(org) => Some(org),
                Err(e) => {
                    problems.push(e.to_string());
                    None
                }
            }
        } else {
            None
        };
        let calendars_dir = dir.join("calendars");
        let mut calendars = if calendars_dir.is_dir() {
            CalendarSet::load_dir(&calendars_dir).unwrap_or_else(|e| {
                problems.push(e.to_string());
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
                problems.push(e.to_string());
                RuleSet::builtin()
            })
        } else {
            RuleSet::builtin()
        };
        let mut context = LoadContext::default().with_calendars(
            calendars
                .iter()
                .map(|c| c.id().to_string())
                .collect::<Vec<_>>(),
        );
        if let Some(org) = &org {
            context = context.with_roles(org.role_ids());
        }
        let (loaded, diagnostics) = load_dir(dir, &context);
        problems.extend(diagnostics.iter().map(|d| d.to_string()));
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
            Err(problems)
        }
    }

    /// The project's policy files (`policies/`), selected per case by unit and date.
    pub fn policy_set(&self) -> Result<PolicySet, String> {
        PolicySet::load_dir(&self.dir.join("policies")).map_err(|errors| {
            errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        })
    }

    /// The assessor: one policy file when given, else the project's policies.
    pub fn assessor(&self, policy: Option<&Path>) -> Result<RulesAssessor, String> {
        let policies = match policy {
            Some(path) => Policies::Fixed(Box::new(Policy::load(path).map_err(|e| e.to_string())?)),
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
        Ok(Box::new(Project::assessor(self, policy)?))
    }
}
