//! The per-instance history hash chain: canonical JSON, row hashes and verification.
//!
//! Each history row carries `prev_hash` and
//! `hash = sha256(prev_hash || canonical JSON of {seq, at, actor, event, node, data})`,
//! both as lowercase hex. "Canonical" here means: object keys sorted by their
//! UTF-8 bytes at every depth, no insignificant whitespace, strings and numbers
//! written as `serde_json` writes them, and `at` as integer epoch milliseconds
//! (the precision the store keeps). The `data` text is stored exactly as it was
//! hashed, so verification hashes the stored bytes and any edit of them shows.

use sha2::{Digest, Sha256};
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
}

impl std::fmt::Display for TamperKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TamperKind::HashMismatch => "row content does not match its hash",
            TamperKind::BrokenLink => "row does not link to the previous row's hash",
            TamperKind::MissingRow => "row is missing",
            TamperKind::Truncated => "chain ends before the instance's recorded head",
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

/// `sha256(prev_hash || canonical JSON of the row)` as lowercase hex.
pub fn row_hash(prev_hash: &str, row: &ChainedRow<'_>) -> String {
    // Keys in byte order: actor, at, data, event, node, seq.
    let mut document = String::with_capacity(row.data_json.len() + 128);
    document.push_str("{\"actor\":");
    write_optional_string(row.actor, &mut document);
    let _ = write!(document, ",\"at\":{},\"data\":", row.at_ms);
    document.push_str(row.data_json);
    document.push_str(",\"event\":");
    write_json_string(row.event, &mut document);
    document.push_str(",\"node\":");
    write_optional_string(row.node, &mut document);
    let _ = write!(document, ",\"seq\":{}}}", row.seq);

    let mut hasher = Sha256::new();
    hasher.update(prev_hash.as_bytes());
    hasher.update(document.as_bytes());
    to_hex(&hasher.finalize())
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
}

/// Checks a chain read in `seq` order against itself and against the head
/// hash recorded on the instance; reports the first bad row.
pub fn verify_chain(
    instance_id: &str,
    rows: &[StoredLink<'_>],
    recorded_head: &str,
) -> Result<(), TamperError> {
    let fail = |seq: i64, kind: TamperKind| TamperError {
        instance_id: instance_id.to_owned(),
        seq,
        kind,
    };
    let mut expected_prev = GENESIS_HASH;
    let mut expected_seq = 1_i64;
    for link in rows {
        if link.row.seq != expected_seq {
            return Err(fail(expected_seq, TamperKind::MissingRow));
        }
        if link.prev_hash != expected_prev {
            return Err(fail(link.row.seq, TamperKind::BrokenLink));
        }
        if row_hash(link.prev_hash, &link.row) != link.hash {
            return Err(fail(link.row.seq, TamperKind::HashMismatch));
        }
        expected_prev = link.hash;
        expected_seq += 1;
    }
    if expected_prev != recorded_head {
        return Err(fail(expected_seq, TamperKind::Truncated));
    }
    Ok(())
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
            })
            .collect();
        assert_eq!(verify_chain("i", &links, &prev), Ok(()));

        let mut tampered = links.clone();
        tampered[1].row.event = "forged";
        assert_eq!(
            verify_chain("i", &tampered, &prev).map_err(|e| (e.seq, e.kind)),
            Err((2, TamperKind::HashMismatch))
        );
        assert_eq!(
            verify_chain("i", &[links[0].clone(), links[2].clone()], &prev)
                .map_err(|e| (e.seq, e.kind)),
            Err((2, TamperKind::MissingRow))
        );
        assert_eq!(
            verify_chain("i", &links[..2], &prev).map_err(|e| (e.seq, e.kind)),
            Err((3, TamperKind::Truncated))
        );
    }
}
