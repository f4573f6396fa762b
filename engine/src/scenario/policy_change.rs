//! A policy taking effect while a scenario's clock moves: on its day the cases the
//! scenario's processes start on a policy day (`schedules:` with `on: policy_changed`) are
//! started, named by the id the engine gives them (`dibao_standard-raise-20260701-双鸭山市`),
//! and each active case of the scenario that waits for `policy_changed`, and whose unit the
//! policy is for, is sent the message as the system user, as the engine's scheduler does.

use super::*;
use crate::core::policy_change::{
    POLICY_CHANGED, POLICY_STARTER, message_data, policy_starts, takes_effect_for, waits_for,
};

impl Runner<'_> {
    pub(super) fn policy_takes_effect(&mut self, day: NaiveDate) -> Result<(), String> {
        self.policy_day_starts(day)?;
        let targets: Vec<String> = self
            .instances
            .iter()
            .map(|(_, i)| i)
            .filter(|i| waits_for(&i.def, &i.state, POLICY_CHANGED))
            .filter(|i| takes_effect_for(self.assessor.as_ref(), &i.state.unit, day))
            .map(|i| i.state.id.clone())
            .collect();
        for target in targets {
            self.deliver_message(&target, POLICY_CHANGED, message_data(day))
                .map_err(|e| format!("policy of {day}: {e}"))?;
        }
        Ok(())
    }

    /// The policy-day starts of the scenario's own process and of its cases' processes.
    fn policy_day_starts(&mut self, day: NaiveDate) -> Result<(), String> {
        let mut defs: Vec<Arc<Definition>> = self.home.iter().cloned().collect();
        for (_, instance) in &self.instances {
            if !defs.iter().any(|d| d.id == instance.def.id) {
                defs.push(instance.def.clone());
            }
        }
        for def in defs {
            for decl in &def.policy_starts {
                let starts = policy_starts(
                    self.assessor.as_ref(),
                    &def.id,
                    decl,
                    day,
                    *self.now.offset(),
                )
                .map_err(|e| format!("policy of {day}: {def_id}: {e}", def_id = def.id))?;
                for start in starts {
                    if self.instances.iter().any(|(n, _)| *n == start.instance_id) {
                        continue;
                    }
                    let actor = Actor {
                        user: POLICY_STARTER.to_string(),
                        roles: vec![crate::lang::model::SYSTEM_ROLE.to_string()],
                        unit: match start.data.get("unit") {
                            Some(Value::Str(unit)) => unit.clone(),
                            _ => start.jurisdiction.clone(),
                        },
                    };
                    match self.start_linked(&def.id, actor, start.data, &start.instance_id, None) {
                        Ok(_) => {}
                        // Another case holds the business key: the engine starts nothing.
                        Err(StartFailure::Refused {
                            code: "duplicate", ..
                        }) => {}
                        Err(failure) => {
                            return Err(format!(
                                "policy of {day}: starting {}: {}",
                                start.instance_id,
                                String::from(failure)
                            ));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}
