//! A rule step that failed, and its retry: the failure parks the token at the rule node
//! as an incident on the case (the event that led there still commits), and a retry by
//! an authorised user — after correcting the case's data, or once the missing policy is
//! deployed — enters the node again.

use crate::core::*;

/// The code of an incident raised by a failed rule step.
pub const RULE_FAILED: &str = "rule_failed";

impl Run<'_> {
    /// The rule node `node_id` failed with `message`: `token` waits there as an incident.
    pub(in crate::core) fn park_on_incident(
        &mut self,
        node_id: String,
        token: u64,
        message: String,
    ) {
        let id = self.st.next_id('i');
        self.st.tokens.push(Token {
            id: token,
            node: node_id.clone(),
        });
        self.st.incidents.push(CaseIncident {
            id,
            token,
            node: node_id,
            code: RULE_FAILED.to_string(),
            message,
            at: self.now,
        });
    }

    /// Enters the incident's node again. Who may: as for a correction. Refused as
    /// `incident` when the node fails again (the incident stays as it was).
    pub(in crate::core) fn retry(&mut self, actor: &Actor, id: &str) -> Result<String, StepError> {
        let Some(pos) = self.st.incidents.iter().position(|i| i.id == id) else {
            return Err(StepError::NotFound(format!(
                "case {} has no incident {id}",
                self.st.id
            )));
        };
        self.authorize_correction(actor)?;
        let incident = self.st.incidents.remove(pos);
        let Some(node_idx) = self.def.node_index(&incident.node) else {
            return Err(StepError::NotFound(format!(
                "incident {id}: node {} is not in this definition",
                incident.node
            )));
        };
        self.remove_token(incident.token);
        self.enter(node_idx, incident.token)?;
        if let Some(again) = self
            .st
            .incidents
            .iter()
            .find(|i| i.token == incident.token && i.node == incident.node)
        {
            return Err(StepError::Incident {
                node: incident.node.clone(),
                message: again.message.clone(),
            });
        }
        Ok(incident.node)
    }
}
