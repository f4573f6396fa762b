//! Business keys at start: a start whose key another active case of the process holds is
//! refused with `duplicate`, naming that case (the store's unique key decides; see
//! `store/keys.rs`). A start whose definition `requires_active` an approved case of
//! another process for a person is refused with `no_active_benefit` when the store holds
//! none, before anything is written.

use super::*;
use crate::store::search::CaseQuery;

/// The outcome of a case whose benefit a `requires_active` start looks for.
const APPROVED: &str = "approved";

/// Cases read per page while looking for the approved case a start requires.
const NEED_PAGE: u32 = 50;

impl Engine {
    /// The approved case `state.requires` names exists (active, or ended with outcome
    /// `approved`, archived ones included): a case of the process whose variables hold
    /// the ID number. Else [`EngineError::NoActiveBenefit`].
    pub(super) async fn check_requires(&self, state: &InstanceState) -> Result<(), EngineError> {
        let Some(need) = &state.requires else {
            return Ok(());
        };
        let mut query = CaseQuery {
            process_id: Some(need.process.clone()),
            id_number: Some(need.id_number.clone()),
            limit: NEED_PAGE,
            ..CaseQuery::default()
        };
        loop {
            let found = self.store.search_cases(&query).await?;
            if found.iter().any(|case| {
                case.outcome.as_deref() == Some(APPROVED)
                    && case.status != core::Status::Terminated.as_str()
            }) {
                return Ok(());
            }
            if found.len() < NEED_PAGE as usize {
                return Err(EngineError::NoActiveBenefit {
                    process: need.process.clone(),
                    id_number: crate::privacy::mask_id_number(&need.id_number),
                });
            }
            query.offset += NEED_PAGE;
        }
    }

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
