//! `jiuzhu audit verify` and `jiuzhu audit seal`: the keyed history chain of every case.
//!
//! `verify` walks every case, a page of ids at a time, checks each chain (keyed rows with
//! the audit key, plain rows from before it as they always were) and the case's signed
//! head against its stored state, and prints a summary: cases, rows, and every case that
//! fails with why. Exit 1 (`tampered`) when any fails. `seal` signs the heads of cases from
//! before the audit key; the store does that by itself when it creates the key, so this is
//! for a key put in place by hand (see docs/audit.md).

use anyhow::{Context as _, Result};
use clap::Subcommand;
use jiuzhu_engine::store::{Store, StoreError, TamperKind};

use crate::errors::CliError;

/// Cases read per page.
const PAGE: u32 = 500;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Verify the history chain and signed head of every case; exit 1 if any fails.
    Verify,
    /// Sign the heads of cases from before the audit key, as they stand now.
    Seal,
}

/// `jiuzhu audit verify`.
pub async fn verify(store: &Store) -> Result<i32> {
    let (mut cases, mut rows, mut plain) = (0_u64, 0_u64, 0_u64);
    let mut failures = Vec::new();
    // The live cases, then the archived ones (a case archived during the walk may be
    // verified in both or, rarely, neither; a later run finds it in the archive).
    for archived in [false, true] {
        let mut after: Option<String> = None;
        loop {
            let ids = if archived {
                store.archived_ids_after(after.as_deref(), PAGE).await
            } else {
                store.instance_ids_after(after.as_deref(), PAGE).await
            }
            .context("listing the cases")?;
            let Some(last) = ids.last() else { break };
            after = Some(last.clone());
            for id in &ids {
                cases += 1;
                match store.verify_history(id).await {
                    Ok(chain) => {
                        rows += chain.rows as u64;
                        plain += chain.plain_rows as u64;
                    }
                    Err(StoreError::Tampered(tamper)) => failures.push(tamper),
                    // A case deleted meanwhile is not a finding.
                    Err(StoreError::NotFound { .. }) => cases -= 1,
                    Err(error) => return Err(error).with_context(|| format!("verifying {id}")),
                }
            }
        }
    }
    for failure in &failures {
        println!("FAILED {}: {}", failure.instance_id, failure);
    }
    println!(
        "audit: {cases} cases, {rows} history rows ({plain} from before the audit key), {} failed",
        failures.len()
    );
    if failures.is_empty() {
        return Ok(0);
    }
    let mut error = CliError::refused(
        "tampered",
        format!(
            "{} of {cases} cases fail verification: their history or state was changed outside the engine",
            failures.len()
        ),
    );
    if failures.iter().any(|f| f.kind == TamperKind::NoKey) {
        error = error.hint(
            "some cases are keyed and this database's audit key was not found: \
             give its file with JIUZHU_AUDIT_KEY_FILE",
        );
    }
    Err(error.into())
}

/// `jiuzhu audit seal`.
pub async fn seal(store: &Store) -> Result<i32> {
    let sealed = store.seal_unsealed().await.context("sealing the cases")?;
    println!("sealed {sealed} cases from before the audit key");
    Ok(0)
}
