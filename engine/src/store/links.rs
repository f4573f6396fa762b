//! A step's link in its case's history chain, and the check of a case read for a step:
//! what the store writes (keyed row hash, state hash, head MAC) and verifies on load.
//! The hashes themselves are `chain`'s and `crate::audit`'s.

use super::shared::ms;
use super::{StepCommit, StoreError};

/// What an instance row records of its chain: the head hash and the head MAC.
pub(crate) struct RowHead {
    pub hash: String,
    pub mac: Option<String>,
}

/// An instance's head as verification reads it, with the hash of its stored state.
pub(crate) struct ChainHead {
    pub version: i64,
    pub hash: String,
    pub mac: Option<String>,
    pub state_hash: Option<String>,
}

impl ChainHead {
    pub fn recorded(&self) -> super::chain::RecordedHead<'_> {
        super::chain::RecordedHead {
            version: self.version,
            hash: &self.hash,
            mac: self.mac.as_deref(),
            state_hash: self.state_hash.as_deref(),
        }
    }
}

/// An instance row as read, checked against its signed head before a step may use it: the
/// state must be the one the head MAC signed (with the version and chain head). A state
/// that is not JSON is tampering when there is a key to say so. Returns the row and its
/// head hash.
pub(crate) fn checked_instance(
    read: Result<(super::InstanceRow, RowHead), StoreError>,
    key: Option<&crate::audit::AuditKey>,
    exact_state_text: bool,
) -> Result<(super::InstanceRow, String), StoreError> {
    let (instance, head) = match read {
        Ok(read) => read,
        Err(StoreError::UnreadableState { instance_id }) if key.is_some() => {
            return Err(StoreError::Tampered(super::TamperError {
                instance_id,
                seq: 0,
                kind: super::TamperKind::StateMismatch,
            }));
        }
        Err(error) => return Err(error),
    };
    let state_hash = crate::audit::state_hash(instance.state.as_str(), exact_state_text);
    super::chain::check_head(
        &instance.id,
        &super::chain::RecordedHead {
            version: instance.version,
            hash: &head.hash,
            mac: head.mac.as_deref(),
            state_hash: state_hash.as_deref(),
        },
        key,
    )?;
    Ok((instance, head.hash))
}

/// What one step will write once its instance row is in: its link in the history chain.
pub(crate) struct PreparedStep {
    pub index: usize,
    pub seq: i64,
    pub prev_hash: String,
    pub hash: String,
    pub data_json: String,
    /// [`crate::audit::SCHEME_KEYED`], or plain when the store has no key (never when it writes).
    pub scheme: i64,
    /// The hash of the state after the step (keyed rows).
    pub state_hash: Option<String>,
    /// The instance row's new head MAC (keyed rows).
    pub head_mac: Option<String>,
}

/// A step's link in its instance's history chain after `prev_hash`: keyed with `key`
/// (committing to the new state, with the instance's new head MAC), or plain without one.
pub(crate) fn prepare_link(
    key: Option<&crate::audit::AuditKey>,
    exact_state_text: bool,
    step: &StepCommit,
    index: usize,
    prev_hash: String,
) -> Result<PreparedStep, StoreError> {
    use super::chain;
    let instance = &step.instance;
    let data_json = super::canonical_json(&step.history.data);
    let seq = instance.version;
    let row = chain::ChainedRow {
        seq,
        at_ms: ms(step.history.at),
        actor: step.history.actor.as_deref(),
        event: &step.history.event,
        node: step.history.node.as_deref(),
        data_json: &data_json,
    };
    let Some(key) = key else {
        let hash = chain::row_hash(&prev_hash, &row);
        return Ok(PreparedStep {
            index,
            seq,
            prev_hash,
            hash,
            data_json,
            scheme: crate::audit::SCHEME_PLAIN,
            state_hash: None,
            head_mac: None,
        });
    };
    let state_hash = crate::audit::state_hash(instance.state.as_str(), exact_state_text)
        .ok_or_else(|| StoreError::UnreadableState {
            instance_id: instance.id.clone(),
        })?;
    let hash = chain::keyed_row_hash(key, &instance.id, &prev_hash, &row, &state_hash);
    let head_mac = key.head_mac(&instance.id, seq, &hash, &state_hash);
    Ok(PreparedStep {
        index,
        seq,
        prev_hash,
        hash,
        data_json,
        scheme: crate::audit::SCHEME_KEYED,
        state_hash: Some(state_hash),
        head_mac: Some(head_mac),
    })
}
