//! What a definition is checked against besides itself: the roles, calendars
//! and assessment programs (from the rule files) of the deployment. A module of its own so the
//! compiler can use it without depending on the loader that calls the compiler.

use std::collections::{BTreeMap, BTreeSet};

use jiuzhu_rules::ruleset::RuleSet;

/// What a definition is checked against besides itself.
#[derive(Debug, Clone)]
pub struct LoadContext {
    /// Role ids from the org file; `None` leaves roles unchecked.
    pub roles: Option<BTreeSet<String>>,
    /// Calendar ids; `None` leaves calendars unchecked.
    pub calendars: Option<BTreeSet<String>>,
    /// Assessment programs a rule node may call: one per rule file
    /// (`processes/rules/*.yaml`), so a new program is a new rule file.
    pub programs: BTreeSet<String>,
    /// The case fields each program's rule file declares (`case:`): the inputs a rule
    /// node may give it besides the common ones.
    pub program_fields: BTreeMap<String, BTreeSet<String>>,
    /// Payment purposes besides the programs (the project's `purposes.yaml`); `None`
    /// leaves purposes unchecked.
    pub purposes: Option<BTreeSet<String>>,
    /// Notification templates by name; `None` leaves templates unchecked.
    pub templates: Option<BTreeMap<String, TemplateVars>>,
    /// A version read back from the store: it was checked when it was deployed, so the
    /// checks added since (loops with a way out, effect fields no schema declares) do not
    /// refuse it, and its cases keep running after an upgrade.
    pub stored: bool,
}

/// The variables a notification template declares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateVars {
    /// Rendering fails without them.
    pub required: BTreeSet<String>,
    /// Used when present.
    pub optional: BTreeSet<String>,
}

impl TemplateVars {
    pub fn uses(&self, name: &str) -> bool {
        self.required.contains(name) || self.optional.contains(name)
    }
}

impl Default for LoadContext {
    fn default() -> LoadContext {
        LoadContext {
            roles: None,
            calendars: None,
            programs: program_names(&RuleSet::builtin()),
            program_fields: program_fields(&RuleSet::builtin()),
            purposes: None,
            templates: None,
            stored: false,
        }
    }
}

/// The programs the rule files of `rules` define.
pub fn program_names(rules: &RuleSet) -> BTreeSet<String> {
    rules.programs().map(|p| p.program.clone()).collect()
}

/// The case fields each program of `rules` declares.
pub fn program_fields(rules: &RuleSet) -> BTreeMap<String, BTreeSet<String>> {
    rules
        .programs()
        .map(|p| (p.program.clone(), p.case.fields.keys().cloned().collect()))
        .collect()
}

impl LoadContext {
    /// The context a stored version is compiled in: its roles, calendars and programs as
    /// today, without the checks a deploy made when it was accepted.
    pub fn for_stored(&self) -> LoadContext {
        LoadContext {
            purposes: None,
            templates: None,
            stored: true,
            ..self.clone()
        }
    }

    /// Checks rule nodes against the programs of `rules` (a project's rule
    /// files) instead of the shipped ones.
    pub fn with_programs(mut self, rules: &RuleSet) -> LoadContext {
        self.programs = program_names(rules);
        self.program_fields = program_fields(rules);
        self
    }

    pub fn with_roles(mut self, roles: impl IntoIterator<Item = impl Into<String>>) -> LoadContext {
        self.roles = Some(roles.into_iter().map(Into::into).collect());
        self
    }

    pub fn with_calendars(
        mut self,
        calendars: impl IntoIterator<Item = impl Into<String>>,
    ) -> LoadContext {
        self.calendars = Some(calendars.into_iter().map(Into::into).collect());
        self
    }

    /// Checks payment purposes: the programs plus `declared`.
    pub fn with_purposes(
        mut self,
        declared: impl IntoIterator<Item = impl Into<String>>,
    ) -> LoadContext {
        let mut purposes: BTreeSet<String> = self.programs.clone();
        purposes.extend(declared.into_iter().map(Into::into));
        self.purposes = Some(purposes);
        self
    }

    /// Checks notification templates (names and variables) against `templates`.
    pub fn with_templates(mut self, templates: BTreeMap<String, TemplateVars>) -> LoadContext {
        self.templates = Some(templates);
        self
    }
}
