//! Business keys (`key:` of a process): one row per active case that has one, written in
//! the transaction of the case's start and deleted in the transaction of its end. The
//! primary key `(process_id, business_key)` is what refuses a second active case with the
//! same key, on both databases and however many nodes start cases at once.

use super::group_write::{Param, WriteTx};
use super::shared::PreparedStep;
use super::{Backend, ConflictReason, StepCommit, Store, StoreError};

/// What a step does with its case's business key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyChange {
    /// The case starts (and stays active): it takes `key` among its process's active
    /// cases, or the step is refused with [`ConflictReason::KeyTaken`].
    Claim { key: String },
    /// The case ends: its key is free again.
    Release,
}

const CLAIM_SQL: &str = "INSERT INTO business_keys (process_id, business_key, instance_id) \
     VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";
const RELEASE_SQL: &str = "DELETE FROM business_keys WHERE instance_id = $1";
const HOLDER_SQL: &str =
    "SELECT instance_id FROM business_keys WHERE process_id = $1 AND business_key = $2";

/// Claims and releases the keys of a group's prepared steps, in the group's transaction.
/// A key held by another case fails the step (a key conflict: the group is written again
/// step by step, and only this one is refused).
pub(crate) async fn write_keys<T: WriteTx>(
    tx: &mut T,
    steps: &[StepCommit],
    prepared: &[PreparedStep],
) -> Result<(), StoreError> {
    for link in prepared {
        let step = &steps[link.index];
        let instance = &step.instance;
        match &step.business_key {
            None => {}
            Some(KeyChange::Claim { key }) => {
                let claimed = tx
                    .execute(
                        CLAIM_SQL,
                        &[
                            Param::Text(&instance.process_id),
                            Param::Text(key),
                            Param::Text(&instance.id),
                        ],
                    )
                    .await?;
                if claimed != 1 {
                    return Err(StoreError::Conflict {
                        reason: ConflictReason::KeyTaken,
                        source: None,
                    });
                }
            }
            Some(KeyChange::Release) => {
                tx.execute(RELEASE_SQL, &[Param::Text(&instance.id)])
                    .await?;
            }
        }
    }
    Ok(())
}

impl Store {
    /// The active case of `process` holding business key `key`, if any.
    pub async fn key_holder(&self, process: &str, key: &str) -> Result<Option<String>, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => sqlx::query_scalar(HOLDER_SQL)
                .bind(process)
                .bind(key)
                .fetch_optional(&s.reader)
                .await
                .map_err(super::sqlite::classify),
            Backend::Postgres(s) => sqlx::query_scalar(HOLDER_SQL)
                .bind(process)
                .bind(key)
                .fetch_optional(&s.reader)
                .await
                .map_err(super::postgres::classify),
        }
    }
}
