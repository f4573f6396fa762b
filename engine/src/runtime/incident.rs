//! Incidents on a case: a rule step that failed parks its token at the node (the core's
//! `CaseIncident`); after the step commits, the engine lists the incident with the
//! others (a dead outbox entry of kind `rule_failed`, id = the incident's id), and settles
//! it when a later step of the case no longer holds it (a retry passed, or the case
//! ended). [`Engine::retry_incident`] is the retry a user asks for.

use super::*;
use crate::core::{CaseIncident, RULE_FAILED};

/// What a committed step changed about its case's incidents.
pub(super) struct IncidentChanges {
    instance: String,
    raised: Vec<CaseIncident>,
    settled: Vec<String>,
}

/// The incidents `after` holds that `before` did not, and those it no longer holds.
pub(super) fn incident_changes(before: &InstanceState, after: &InstanceState) -> IncidentChanges {
    IncidentChanges {
        instance: after.id.clone(),
        raised: after
            .incidents
            .iter()
            .filter(|i| !before.incidents.iter().any(|b| b.id == i.id))
            .cloned()
            .collect(),
        settled: before
            .incidents
            .iter()
            .filter(|b| !after.incidents.iter().any(|i| i.id == b.id))
            .map(|b| b.id.clone())
            .collect(),
    }
}

/// The case an incident id (`{instance}-i{seq}`) belongs to.
pub fn instance_of_incident(id: &str) -> Option<&str> {
    let (instance, seq) = id.rsplit_once("-i")?;
    let well_formed =
        !instance.is_empty() && !seq.is_empty() && seq.bytes().all(|b| b.is_ascii_digit());
    well_formed.then_some(instance)
}

impl Engine {
    /// Lists the incidents a committed step raised and settles those it ended. The step
    /// is committed whatever happens here: a failure is logged (the case's state still
    /// holds its incidents, and `jiuzhu show` names them).
    pub(super) async fn sync_incidents(&self, changes: IncidentChanges) {
        let now = self.now();
        for incident in &changes.raised {
            let payload = serde_json::json!({
                "type": RULE_FAILED,
                "instance": changes.instance,
                "node": incident.node,
                "incident": incident.id,
            });
            let recorded = self
                .store
                .record_incident(
                    &incident.id,
                    &changes.instance,
                    &incident.code,
                    &payload,
                    &incident.message,
                    now,
                )
                .await;
            match recorded {
                Ok(()) => tracing::warn!(instance = %changes.instance, node = %incident.node,
                    incident = %incident.id, "rule step failed: incident raised"),
                Err(error) => tracing::warn!(instance = %changes.instance, %error,
                    "rule step failed: incident not recorded"),
            }
        }
        for id in &changes.settled {
            if let Err(error) = self.store.settle_incident(id, now).await {
                tracing::warn!(instance = %changes.instance, incident = %id, %error,
                    "incident not settled");
            }
        }
    }

    /// Runs the failed rule step of incident `id` again, as `actor` (who may: as for a
    /// correction). Refused with `incident` when it fails again: the incident stays,
    /// with one more attempt and the new error.
    pub async fn retry_incident(&self, id: &str, actor: &Actor) -> Result<StepReport, EngineError> {
        let instance = instance_of_incident(id).ok_or_else(|| EngineError::NotFound {
            what: "incident",
            id: id.to_string(),
        })?;
        let event = Event::Retry {
            actor: actor.clone(),
            incident: id.to_string(),
        };
        let data = BTreeMap::from([("incident".to_string(), Value::Str(id.to_string()))]);
        let step = Step {
            event: &event,
            kind: "retry",
            actor: Some(actor),
            data: &data,
            fired_timer: None,
            completes: None,
            on_behalf_of: None,
            delivery: None,
        };
        let outcome = self.apply(instance, step).await;
        if let Err(EngineError::Step(StepError::Incident { message, .. })) = &outcome
            && let Err(error) = self
                .store
                .incident_failed_again(id, message, self.now())
                .await
        {
            tracing::warn!(instance, incident = id, %error, "failed retry not recorded");
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_incident_id_names_its_case() {
        assert_eq!(
            instance_of_incident("dibao-0192ab-i12"),
            Some("dibao-0192ab")
        );
        assert_eq!(instance_of_incident("dibao-0192ab-e12"), None);
        assert_eq!(instance_of_incident("-i1"), None);
        assert_eq!(instance_of_incident("x-i"), None);
    }
}
