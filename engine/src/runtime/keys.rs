//! Business keys at start: a start whose key another active case of the process holds is
//! refused with `duplicate`, naming that case (the store's unique key decides; see
//! `store/keys.rs`).

use super::*;

impl Engine {
    /// Commits a start step; a key conflict becomes [`EngineError::DuplicateKey`] naming
    /// the case that holds the key.
    pub(super) async fn commit_start(&self, commit: StepCommit) -> Result<StepCommit, EngineError> {
        let claimed = match &commit.business_key {
            Some(KeyChange::Claim { key }) => {
                Some((commit.instance.process_id.clone(), key.clone()))
            }
            _ => None,
        };
        match self.commit_step(commit).await {
            Ok(commit) => Ok(commit),
            Err(StoreError::Conflict {
                reason: ConflictReason::KeyTaken,
                ..
            }) => {
                let Some((process, key)) = claimed else {
                    return Err(EngineError::Store(StoreError::Conflict {
                        reason: ConflictReason::KeyTaken,
                        source: None,
                    }));
                };
                // The holder may have ended between the refusal and this read: the start was
                // still refused, and the message says so without a name.
                let case = self
                    .store
                    .key_holder(&process, &key)
                    .await?
                    .unwrap_or_else(|| "(ended since)".to_string());
                Err(EngineError::DuplicateKey { process, case })
            }
            Err(error) => Err(EngineError::Store(error)),
        }
    }
}
