//! The `cases:` fixture of a scenario: cases that exist before the scenario starts (the
//! deceased's approved benefit a funeral aid requires, `requires_active`), held with the
//! scenario's own cases but never stepped by it unless a step names them.

use serde::Deserialize;

use super::*;
use crate::core::Status;

/// One case the scenario's world holds already.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseFixture {
    /// Its instance id (`tekun-9`), also its name for `instance:`.
    pub id: String,
    pub process: String,
    /// `active` or `completed` (the default).
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub outcome: Option<String>,
    #[serde(default)]
    pub unit: Option<String>,
    /// Its variables, as a start's data.
    #[serde(default)]
    pub data: serde_json::Map<String, serde_json::Value>,
}

impl Runner<'_> {
    /// Adds the `cases:` fixture to the scenario's cases.
    pub(super) fn seed_cases(&mut self, fixtures: &[CaseFixture]) -> Result<(), String> {
        for fixture in fixtures {
            let def = self.world.definition(&fixture.process, &self.dir)?;
            let calendar = self.world.calendar(&def.calendar).ok_or_else(|| {
                format!("process {} names unknown calendar {}", def.id, def.calendar)
            })?;
            let mut state = InstanceState::new(&fixture.id, &def.id, self.now);
            state.status = match fixture.status.as_deref() {
                None | Some("completed") => Status::Completed,
                Some("active") => Status::Active,
                Some(other) => {
                    return Err(format!(
                        "cases: {}: status `{other}` is not `active` or `completed`",
                        fixture.id
                    ));
                }
            };
            state.outcome = fixture.outcome.clone();
            state.unit = fixture.unit.clone().unwrap_or_default();
            state.vars = fixture
                .data
                .iter()
                .map(|(name, value)| (name.clone(), Value::from_json(value)))
                .collect();
            let instance = Instance {
                def,
                calendar,
                state,
                effects: Vec::new(),
                seen: 0,
            };
            self.instances.push((fixture.id.clone(), instance));
        }
        Ok(())
    }
}
