//! Archived cases in the engine: a step on a case that is no longer live is refused with
//! `conflict` when the case is in the archive (it is read-only there), `not_found`
//! otherwise; and the archive run of the scheduler (see `store/archive.rs`).

use super::*;

impl Engine {
    /// The error for a case the live tables do not hold.
    pub(super) async fn missing_instance(&self, instance_id: &str) -> EngineError {
        match self.store.archived_instance(instance_id).await {
            Ok(Some(_)) | Err(StoreError::Tampered(_)) => EngineError::Conflict {
                instance: instance_id.to_string(),
                reason: ConflictReason::Archived,
                holder: None,
            },
            Ok(None) => EngineError::NotFound {
                what: "instance",
                id: instance_id.to_string(),
            },
            Err(error) => EngineError::Store(error),
        }
    }

    /// Moves cases that finished more than `age` ago into the archive, `batch` per
    /// transaction, until none is left; the batches moved. Each moved case leaves this
    /// engine's state cache, so a step on it loads it and is refused.
    pub async fn archive_finished(
        &self,
        age: chrono::Duration,
        batch: u32,
    ) -> Result<Vec<crate::store::archive::ArchivedBatch>, EngineError> {
        let now = self.clock.now();
        let cutoff = now - age;
        let mut batches = Vec::new();
        loop {
            let done = self.store.archive_batch(cutoff, batch.max(1), now).await?;
            if done.instances.is_empty() {
                return Ok(batches);
            }
            for id in &done.instances {
                self.instances.forget(id);
            }
            tracing::info!(cases = done.instances.len(), "archived a batch");
            batches.push(done);
        }
    }
}

impl Engine {
    /// A case live or archived with its definition and state, for reading (show, the case
    /// API and page); the flag says it is archived. Steps go through [`Engine::load`],
    /// which reads live cases only.
    pub async fn load_for_reading(
        &self,
        instance_id: &str,
    ) -> Result<Option<(InstanceRow, Arc<Definition>, InstanceState, bool)>, EngineError> {
        let found = self
            .store
            .find_instance(instance_id)
            .await
            .map_err(|error| match error {
                StoreError::Tampered(tamper) => EngineError::Tampered(tamper),
                error => EngineError::Store(error),
            })?;
        let Some((row, archived)) = found else {
            return Ok(None);
        };
        let def = self
            .definition(&row.process_id, row.process_version)
            .await?;
        let state = InstanceState::from_json(row.state.as_str(), &def).map_err(|source| {
            EngineError::CorruptState {
                instance: instance_id.to_string(),
                source,
            }
        })?;
        Ok(Some((row, def, state, archived)))
    }
}
