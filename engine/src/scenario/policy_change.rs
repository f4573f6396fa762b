//! A policy taking effect while a scenario's clock moves: on its day each active case
//! of the scenario that waits for `policy_changed`, and whose unit the policy is for, is
//! sent the message as the system user, as the engine's scheduler does.

use super::*;
use crate::core::policy_change::{POLICY_CHANGED, message_data, takes_effect_for, waits_for};

impl Runner<'_> {
    pub(super) fn policy_takes_effect(&mut self, day: NaiveDate) -> Result<(), String> {
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
}
