//! The check a deploy makes of a project's notification templates, shared by `jiuzhu
//! deploy` and the API's deploy: every template in `templates/` loads (no unknown
//! variables, filters or constructs), and every template a definition names — and the
//! built-in reminder and escalation notices — exists. Notices are checked at deploy time,
//! not at 3 a.m. when a reminder fires.

use jiuzhu_engine::project::Project;

use super::template::{TemplateError, TemplateSet};

/// The notices the engine sends of its own, whatever the definitions say.
pub const BUILT_IN_TEMPLATES: &[&str] = &["task_reminder", "escalation"];

/// Checks the templates of `project` (its `templates/` folder) against its definitions.
/// A project without a `templates/` folder has nothing to check.
pub fn check_project_templates(project: &Project) -> Result<(), TemplateError> {
    let dir = project.dir.join("templates");
    if !dir.is_dir() {
        return Ok(());
    }
    let templates = TemplateSet::load_dir(&dir)?;
    let mut used: Vec<String> = BUILT_IN_TEMPLATES.iter().map(|n| n.to_string()).collect();
    for definition in project.definitions.values() {
        used.extend(definition.notification_templates());
    }
    let names: Vec<&str> = used.iter().map(String::as_str).collect();
    templates.check_names(&names)
}
