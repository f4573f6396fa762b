//! What the engine does with a case that fails its head check: refuses the step and
//! raises an incident.

use super::*;

impl Engine {
    /// A case whose stored state or head fails its check: no step runs on it, and an
    /// incident (`tampered`, once per case) says so to the operators.
    pub(super) async fn tampered(&self, tamper: crate::store::TamperError) -> EngineError {
        let id = format!("{}-tampered", tamper.instance_id);
        let payload = serde_json::json!({
            "type": "tampered",
            "instance": tamper.instance_id,
            "seq": tamper.seq,
        });
        let recorded = self
            .store
            .record_incident(
                &id,
                &tamper.instance_id,
                "tampered",
                &payload,
                &tamper.to_string(),
                self.now(),
            )
            .await;
        if let Err(error) = recorded {
            tracing::warn!(instance = %tamper.instance_id, %error, "tampered case: incident not recorded");
        }
        tracing::warn!(instance = %tamper.instance_id, seq = tamper.seq, "tampered case refused");
        EngineError::Tampered(tamper)
    }
}
