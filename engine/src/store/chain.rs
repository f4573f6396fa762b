//! The per-instance history hash chain: canonical JSON, row hashes and verification.
//!
//! Each history row carries `prev_hash` and a `hash` over the previous hash and the
//! canonical JSON of `{seq, at, actor, event, node, data}`, both as lowercase hex. The
//! row's `scheme` says how: 1 (rows written before the audit key) is
//! `sha256(prev_hash || document)`; 2 adds `"state"` (the hash of the case's state after
//! the step, [`crate::audit::state_hash`]) to the document and takes
//! `HMAC-SHA256(key, instance || prev_hash || document)` ([`crate::audit::AuditKey`]).
//! Once a chain has a keyed row, every later row must be keyed. The instance row keeps the
//! chain's head (`history_hash`) and a head MAC over `(id, version, head, state hash)`.
//! "Canonical" means: object keys sorted by their UTF-8 bytes at every depth, no
//! insignificant whitespace, strings and numbers written as `serde_json` writes them, and
//! `at` as integer epoch milliseconds (the precision the store keeps). The `data` text is
//! stored exactly as it was hashed, so verification hashes the stored bytes and any edit
//! of them shows.

use sha2::{Digest, Sha256};

use crate::audit::{AuditKey, SCHEME_KEYED, SCHEME_PLAIN};
use std::fmt::Write as _;

/// `prev_hash` of the first row of every chain.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What verification found wrong with a history chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TamperKind {
    /// The row's content no longer matches its hash.
    HashMismatch,
    /// The row's `prev_hash` is not the hash of the row before it.
    BrokenLink,
    /// A sequence number is missing (a row was deleted).
    MissingRow,
    /// The chain ends before the head recorded on the instance (rows cut off the end).
    Truncated,
    /// A plain (unkeyed) row follows a keyed one: the chain was re-hashed without the key.
    Downgraded,
    /// The row or head is keyed, and this store has no audit key to check it with.
    NoKey,
    /// The case's stored state (or version, or head) is not what its signed head records.
    StateMismatch,
    /// The instance row has no head MAC (a case from before the audit key that was never
    /// sealed, or one whose MAC was removed).
    Unsealed,
}

impl std::fmt::Display for TamperKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TamperKind::HashMismatch => "row content does not match its hash",
            TamperKind::BrokenLink => "row does not link to the previous row's hash",
            TamperKind::MissingRow => "row is missing",
            TamperKind::Truncated => "chain ends before the instance's recorded head",
            TamperKind::Downgraded => "an unkeyed row follows a keyed one (re-hashed chain)",
            TamperKind::NoKey => "keyed row or head, and no audit key to check it",
            TamperKind::StateMismatch => "stored state does not match the case's signed head",
            TamperKind::Unsealed => "the case has no signed head (`jiuzhu audit seal` signs cases from before the audit key)",
        })
    }
}

/// The first history row of an instance that fails verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("history of instance {instance_id} fails verification at seq {seq}: {kind}")]
pub struct TamperError {
    pub instance_id: String,
    pub seq: i64,
    pub kind: TamperKind,
}

/// Writes `value` as canonical JSON (sorted keys, no whitespace).
pub fn canonical_json(value: &serde_json::Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        // Display of a Number and of a Value::String are serde_json's own
        // compact serialisation, which is what we want.
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::String(_) => {
            let _ = write!(out, "{value}");
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            // Sorted explicitly: serde_json's map order depends on a crate
            // feature that another crate in the build may switch on.
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_string(key, out);
                out.push(':');
                write_canonical(item, out);
            }
            out.push('}');
        }
    }
}

fn write_json_string(text: &str, out: &mut String) {
    let _ = write!(out, "{}", serde_json::Value::String(text.to_owned()));
}

fn write_optional_string(text: Option<&str>, out: &mut String) {
    match text {
        Some(text) => write_json_string(text, out),
        None => out.push_str("null"),
    }
}

/// The fields of one history row that its hash covers.
#[derive(Debug, Clone, Copy)]
pub struct ChainedRow<'a> {
    pub seq: i64,
    pub at_ms: i64,
    pub actor: Option<&'a str>,
    pub event: &'a str,
    pub node: Option<&'a str>,
    /// The canonical JSON text of the row's data, exactly as stored.
    pub data_json: &'a str,
}

/// The canonical JSON document of a row; `state_hash` is added (as `"state"`) for keyed rows.
fn row_document(row: &ChainedRow<'_>, state_hash: Option<&str>) -> String {
    // Keys in byte order: actor, at, data, event, node, seq, state.
    let mut document = String::with_capacity(row.data_json.len() + 200);
    document.push_str("{\"actor\":");
    write_optional_string(row.actor, &mut document);
    let _ = write!(document, ",\"at\":{},\"data\":", row.at_ms);
    document.push_str(row.data_json);
    document.push_str(",\"event\":");
    write_json_string(row.event, &mut document);
    document.push_str(",\"node\":");
    write_optional_string(row.node, &mut document);
    let _ = write!(document, ",\"seq\":{}", row.seq);
    if let Some(state_hash) = state_hash {
        document.push_str(",\"state\":");
        write_json_string(state_hash, &mut document);
    }
    document.push('}');
    document
}

/// `sha256(prev_hash || canonical JSON of the row)` as lowercase hex (scheme 1).
pub fn row_hash(prev_hash: &str, row: &ChainedRow<'_>) -> String {
    let document = row_document(row, None);
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.as_bytes());
    hasher.update(document.as_bytes());
    to_hex(&hasher.finalize())
}

/// The keyed hash of a scheme-2 row of `instance_id`, committing to `state_hash`.
pub fn keyed_row_hash(
    key: &AuditKey,
    instance_id: &str,
    prev_hash: &str,
    row: &ChainedRow<'_>,
    state_hash: &str,
) -> String {
    key.row_mac(instance_id, prev_hash, &row_document(row, Some(state_hash)))
}

/// sha256 of `bytes` as lowercase hex (the form of deployment hashes).
pub fn sha256_hex(bytes: &[u8]) -> String {
    to_hex(&Sha256::digest(bytes))
}

fn to_hex(digest: &[u8]) -> String {
    let mut hex = String::with_capacity(digest.len() * 2);
    for byte in digest {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

/// A stored history row as verification reads it.
#[derive(Debug, Clone)]
pub struct StoredLink<'a> {
    pub row: ChainedRow<'a>,
    pub prev_hash: &'a str,
    pub hash: &'a str,
    /// [`SCHEME_PLAIN`] or [`SCHEME_KEYED`].
    pub scheme: i64,
    /// The state hash a keyed row commits to.
    pub state_hash: Option<&'a str>,
}

/// What the instance row records about its chain.
#[derive(Debug, Clone, Copy)]
pub struct RecordedHead<'a> {
    pub version: i64,
    /// `history_hash`: the last row's hash.
    pub hash: &'a str,
    /// The head MAC; `None` on a case from before the audit key that was never sealed.
    pub mac: Option<&'a str>,
    /// The hash of the stored state ([`crate::audit::state_hash`]); `None` when it is not JSON.
    pub state_hash: Option<&'a str>,
}

/// What a sound chain holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VerifiedChain {
    pub rows: usize,
    /// Rows of the plain scheme (from before the audit key): they resist no one who can
    /// re-hash them.
    pub plain_rows: usize,
}

/// Checks the instance row's head against its state, without the history: the state's
/// hash, the version and the head hash are what the head MAC signed. With no key (a
/// read-only open of a copy without its key file) nothing can be checked.
pub fn check_head(
    instance_id: &str,
    head: &RecordedHead<'_>,
    key: Option<&AuditKey>,
) -> Result<(), TamperError> {
    let Some(key) = key else { return Ok(()) };
    let fail = |kind| TamperError {
        instance_id: instance_id.to_owned(),
        seq: head.version,
        kind,
    };
    let mac = head.mac.ok_or_else(|| fail(TamperKind::Unsealed))?;
    let state_hash = head
        .state_hash
        .ok_or_else(|| fail(TamperKind::StateMismatch))?;
    if key.head_mac(instance_id, head.version, head.hash, state_hash) != mac {
        return Err(fail(TamperKind::StateMismatch));
    }
    Ok(())
}

/// Checks a chain read in `seq` order against itself and against the head recorded on
/// the instance (hash, head MAC and state); reports the first bad row.
pub fn verify_chain(
    instance_id: &str,
    rows: &[StoredLink<'_>],
    head: &RecordedHead<'_>,
    key: Option<&AuditKey>,
) -> Result<VerifiedChain, TamperError> {
    let fail = |seq: i64, kind: TamperKind| TamperError {
        instance_id: instance_id.to_owned(),
        seq,
        kind,
    };
    let mut expected_prev = GENESIS_HASH;
    let mut expected_seq = 1_i64;
    let mut keyed_seen = false;
    let mut verified = VerifiedChain::default();
    for link in rows {
        if link.row.seq != expected_seq {
            return Err(fail(expected_seq, TamperKind::MissingRow));
        }
        if link.prev_hash != expected_prev {
            return Err(fail(link.row.seq, TamperKind::BrokenLink));
        }
        let hash = match link.scheme {
            SCHEME_PLAIN if keyed_seen => {
                return Err(fail(link.row.seq, TamperKind::Downgraded));
            }
            SCHEME_PLAIN => {
                verified.plain_rows += 1;
                row_hash(link.prev_hash, &link.row)
            }
            SCHEME_KEYED => {
                keyed_seen = true;
                let key = key.ok_or_else(|| fail(link.row.seq, TamperKind::NoKey))?;
                let state_hash = link
                    .state_hash
                    .ok_or_else(|| fail(link.row.seq, TamperKind::HashMismatch))?;
                keyed_row_hash(key, instance_id, link.prev_hash, &link.row, state_hash)
            }
            _ => return Err(fail(link.row.seq, TamperKind::HashMismatch)),
        };
        if hash != link.hash {
            return Err(fail(link.row.seq, TamperKind::HashMismatch));
        }
        expected_prev = link.hash;
        expected_seq += 1;
        verified.rows += 1;
    }
    if expected_prev != head.hash || expected_seq != head.version + 1 {
        return Err(fail(expected_seq, TamperKind::Truncated));
    }
    // The last keyed row's state is the state the instance row must hold.
    if let Some(last) = rows.last().filter(|link| link.scheme == SCHEME_KEYED)
        && last.state_hash != head.state_hash
    {
        return Err(fail(head.version, TamperKind::StateMismatch));
    }
    // Every case is sealed when the key is made, so a head without a MAC is one removed.
    // Without the key (a read-only copy), only a wholly plain, unsealed chain passes.
    match (head.mac, key) {
        (Some(_), Some(key)) => check_head(instance_id, head, Some(key))?,
        (Some(_), None) => return Err(fail(head.version, TamperKind::NoKey)),
        (None, Some(_)) => return Err(fail(head.version, TamperKind::Unsealed)),
        (None, None) => {}
    }
    Ok(verified)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_json_sorts_keys_at_every_depth() {
        let value = json!({"b": [ {"z": 1, "a": "x\"y"} ], "a": null, "c": 1.5});
        assert_eq!(
            canonical_json(&value),
            r#"{"a":null,"b":[{"a":"x\"y","z":1}],"c":1.5}"#
        );
    }

    #[test]
    fn row_hash_depends_on_every_field_and_the_link() {
        let row = ChainedRow {
            seq: 1,
            at_ms: 1_700_000_000_000,
            actor: Some("clerk"),
            event: "started",
            node: None,
            data_json: "{}",
        };
        let base = row_hash(GENESIS_HASH, &row);
        assert_eq!(base.len(), 64);
        let variants = [
            ChainedRow { seq: 2, ..row },
            ChainedRow { at_ms: 1, ..row },
            ChainedRow { actor: None, ..row },
            ChainedRow { event: "x", ..row },
            ChainedRow {
                node: Some("n"),
                ..row
            },
            ChainedRow {
                data_json: "{\"a\":1}",
                ..row
            },
        ];
        for variant in variants {
            assert_ne!(row_hash(GENESIS_HASH, &variant), base, "{variant:?}");
        }
        assert_ne!(row_hash(&base, &row), base);
    }

    #[test]
    fn verify_reports_the_first_bad_row() {
        let rows = [1, 2, 3].map(|seq| ChainedRow {
            seq,
            at_ms: seq * 1000,
            actor: None,
            event: "e",
            node: None,
            data_json: "{}",
        });
        let mut hashes = Vec::new();
        let mut prev = GENESIS_HASH.to_owned();
        for row in &rows {
            let hash = row_hash(&prev, row);
            hashes.push((prev.clone(), hash.clone()));
            prev = hash;
        }
        let links: Vec<StoredLink<'_>> = rows
            .iter()
            .zip(&hashes)
            .map(|(row, (prev, hash))| StoredLink {
                row: *row,
                prev_hash: prev,
                hash,
                scheme: SCHEME_PLAIN,
                state_hash: None,
            })
            .collect();
        let head = |hash, version| RecordedHead {
            version,
            hash,
            mac: None,
            state_hash: None,
        };
        let kind = |result: Result<VerifiedChain, TamperError>| result.map_err(|e| (e.seq, e.kind));
        assert_eq!(
            verify_chain("i", &links, &head(&prev, 3), None),
            Ok(VerifiedChain {
                rows: 3,
                plain_rows: 3
            })
        );

        let mut tampered = links.clone();
        tampered[1].row.event = "forged";
        assert_eq!(
            kind(verify_chain("i", &tampered, &head(&prev, 3), None)),
            Err((2, TamperKind::HashMismatch))
        );
        assert_eq!(
            kind(verify_chain(
                "i",
                &[links[0].clone(), links[2].clone()],
                &head(&prev, 3),
                None
            )),
            Err((2, TamperKind::MissingRow))
        );
        assert_eq!(
            kind(verify_chain("i", &links[..2], &head(&prev, 3), None)),
            Err((3, TamperKind::Truncated))
        );
    }

    #[test]
    fn a_keyed_chain_resists_rehashing_downgrade_and_state_edits() {
        let key = AuditKey::from_bytes(&[3; 32]);
        let states = ["s1", "s2"];
        let rows = [1, 2].map(|seq| ChainedRow {
            seq,
            at_ms: seq,
            actor: Some("a"),
            event: "e",
            node: None,
            data_json: "{}",
        });
        let first = keyed_row_hash(&key, "i", GENESIS_HASH, &rows[0], states[0]);
        let second = keyed_row_hash(&key, "i", &first, &rows[1], states[1]);
        let links = vec![
            StoredLink {
                row: rows[0],
                prev_hash: GENESIS_HASH,
                hash: &first,
                scheme: SCHEME_KEYED,
                state_hash: Some(states[0]),
            },
            StoredLink {
                row: rows[1],
                prev_hash: &first,
                hash: &second,
                scheme: SCHEME_KEYED,
                state_hash: Some(states[1]),
            },
        ];
        let mac = key.head_mac("i", 2, &second, states[1]);
        let head = RecordedHead {
            version: 2,
            hash: &second,
            mac: Some(&mac),
            state_hash: Some(states[1]),
        };
        let kind = |result: Result<VerifiedChain, TamperError>| result.map_err(|e| (e.seq, e.kind));
        assert_eq!(
            verify_chain("i", &links, &head, Some(&key)).map(|v| v.rows),
            Ok(2)
        );
        // Without the key, a keyed chain cannot be vouched for.
        assert_eq!(
            kind(verify_chain("i", &links, &head, None)),
            Err((1, TamperKind::NoKey))
        );
        // Another case's rows do not fit this one.
        assert_eq!(
            kind(verify_chain("j", &links, &head, Some(&key))),
            Err((1, TamperKind::HashMismatch))
        );
        // A changed actor re-hashed the old, unkeyed way.
        let mut forged_row = rows[1];
        forged_row.actor = Some("b");
        let rehashed = row_hash(&first, &forged_row);
        let mut downgraded = links.clone();
        downgraded[1] = StoredLink {
            row: forged_row,
            hash: &rehashed,
            scheme: SCHEME_PLAIN,
            state_hash: None,
            ..downgraded[1].clone()
        };
        let moved = RecordedHead {
            hash: &rehashed,
            ..head
        };
        assert_eq!(
            kind(verify_chain("i", &downgraded, &moved, Some(&key))),
            Err((2, TamperKind::Downgraded))
        );
        // The last row dropped and the head moved back: the head MAC no longer fits.
        let back = RecordedHead {
            version: 1,
            hash: &first,
            state_hash: Some(states[0]),
            ..head
        };
        assert_eq!(
            kind(verify_chain("i", &links[..1], &back, Some(&key))),
            Err((1, TamperKind::StateMismatch))
        );
        // An edited state.
        let edited = RecordedHead {
            state_hash: Some("other"),
            ..head
        };
        assert_eq!(
            kind(verify_chain("i", &links, &edited, Some(&key))),
            Err((2, TamperKind::StateMismatch))
        );
        assert_eq!(
            check_head("i", &edited, Some(&key)).map_err(|e| e.kind),
            Err(TamperKind::StateMismatch)
        );
        assert_eq!(check_head("i", &head, Some(&key)), Ok(()));
        let unsealed = RecordedHead { mac: None, ..head };
        assert_eq!(
            check_head("i", &unsealed, Some(&key)).map_err(|e| e.kind),
            Err(TamperKind::Unsealed)
        );
    }
}
