//! The audit key: the secret that makes the history chain and each case's head
//! tamper-evident to someone who can write the database but not read the key.
//!
//! History rows of hash scheme 2 carry `HMAC-SHA256(key, …)` instead of a plain SHA-256
//! (scheme 1, the rows written before the key existed, which still verify as they did),
//! and they commit to a hash of the case's state after the step. The instance row carries
//! a *head MAC* over `(instance id, version, chain head, state hash)`, so a step can check
//! the state it reads against the chain without reading the history, and dropping the last
//! row and moving the head needs the key. See `docs/audit.md` for what this does not cover.
//!
//! The key lives outside the database: in the file `JIUZHU_AUDIT_KEY_FILE` names, else
//! beside a SQLite database (`FILE.audit-key`), else (PostgreSQL) in the user's data folder
//! (`$XDG_DATA_HOME/jiuzhu/audit.key` or `~/.local/share/jiuzhu/audit.key`). It is created
//! on first use, owner-only (0600), as 32 random bytes in hex; a key file readable by group
//! or others is refused.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The environment variable naming the key file (overrides the default place).
pub const KEY_FILE_ENV: &str = "JIUZHU_AUDIT_KEY_FILE";

/// The hash scheme of rows written before the audit key: plain SHA-256, no state hash.
pub const SCHEME_PLAIN: i64 = 1;
/// The keyed scheme: HMAC-SHA256 over the row, its instance and its state hash.
pub const SCHEME_KEYED: i64 = 2;

const KEY_BYTES: usize = 32;

/// Why the audit key could not be had.
#[derive(Debug, thiserror::Error)]
pub enum AuditKeyError {
    #[error("audit key file {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("audit key file {path} is not {KEY_BYTES} or more bytes of hex")]
    Malformed { path: String },
    #[error("audit key file {path} may be read by group or others (mode {mode:o}); make it 0600")]
    Exposed { path: String, mode: u32 },
    #[error("no place for the audit key: set {KEY_FILE_ENV} (or HOME)")]
    NoPlace,
    #[error("no random source for a new audit key: {0}")]
    Random(String),
}

/// The secret key of the history chain. Never printed; wiped from memory when dropped.
#[derive(Clone)]
pub struct AuditKey {
    bytes: Vec<u8>,
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditKey(…)")
    }
}

impl Drop for AuditKey {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.bytes);
    }
}

impl AuditKey {
    /// A fresh random key (an in-memory database's, which lives no longer than it).
    pub fn random() -> Result<AuditKey, AuditKeyError> {
        let mut bytes = vec![0_u8; KEY_BYTES];
        getrandom::fill(&mut bytes).map_err(|e| AuditKeyError::Random(e.to_string()))?;
        Ok(AuditKey { bytes })
    }

    /// A key from its bytes (tests, or a key kept elsewhere).
    pub fn from_bytes(bytes: &[u8]) -> AuditKey {
        AuditKey {
            bytes: bytes.to_vec(),
        }
    }

    /// Reads the key file at `path`; `None` when there is none.
    pub fn read(path: &Path) -> Result<Option<AuditKey>, AuditKeyError> {
        let io = |source| AuditKeyError::Io {
            path: path.display().to_string(),
            source,
        };
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(io(error)),
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path).map_err(io)?.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(AuditKeyError::Exposed {
                    path: path.display().to_string(),
                    mode,
                });
            }
        }
        let bytes = hex::decode(text.trim()).map_err(|_| AuditKeyError::Malformed {
            path: path.display().to_string(),
        })?;
        if bytes.len() < KEY_BYTES {
            return Err(AuditKeyError::Malformed {
                path: path.display().to_string(),
            });
        }
        Ok(Some(AuditKey { bytes }))
    }

    /// Reads the key file at `path`, creating it (owner-only) when there is none. The
    /// flag says whether it was created now. Two processes creating it at once agree on
    /// one key: each writes a file of its own and links it into place, and the loser
    /// reads the winner's.
    pub fn read_or_create(path: &Path) -> Result<(AuditKey, bool), AuditKeyError> {
        if let Some(key) = AuditKey::read(path)? {
            return Ok((key, false));
        }
        let io = |source| AuditKeyError::Io {
            path: path.display().to_string(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let key = AuditKey::random()?;
        let temp = path.with_extension(format!("new-{}", std::process::id()));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let written = options.open(&temp).and_then(|mut file| {
            file.write_all(format!("{}\n", hex::encode(&key.bytes)).as_bytes())?;
            file.sync_all()
        });
        let linked = written.and_then(|()| std::fs::hard_link(&temp, path));
        let _ = std::fs::remove_file(&temp);
        match linked {
            Ok(()) => Ok((key, true)),
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                let key = AuditKey::read(path)?.ok_or_else(|| io(error))?;
                Ok((key, false))
            }
            Err(error) => Err(io(error)),
        }
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes a key of any length.
        match Hmac::<Sha256>::new_from_slice(&self.bytes) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC accepts keys of every length"),
        }
    }

    /// The MAC of a scheme-2 history row: its instance, the previous row's hash and the
    /// row's canonical document (which includes the state hash).
    pub fn row_mac(&self, instance_id: &str, prev_hash: &str, document: &str) -> String {
        let mut mac = self.mac();
        mac.update(b"jiuzhu.history.v2\0");
        mac.update(instance_id.as_bytes());
        mac.update(b"\0");
        mac.update(prev_hash.as_bytes());
        mac.update(document.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// The head MAC of an instance row: its id, version, chain head and state hash.
    pub fn head_mac(
        &self,
        instance_id: &str,
        version: i64,
        history_hash: &str,
        state_hash: &str,
    ) -> String {
        let mut mac = self.mac();
        let mut text = String::with_capacity(instance_id.len() + 160);
        let _ = write!(
            text,
            "jiuzhu.head.v2\0{instance_id}\0{version}\0{history_hash}\0{state_hash}"
        );
        mac.update(text.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

/// Where the key of a store is kept: `explicit` (a caller's choice), else the file
/// [`KEY_FILE_ENV`] names, else beside the SQLite file `database`, else (PostgreSQL) the
/// user's data folder.
pub fn key_path(
    explicit: Option<&Path>,
    database: Option<&Path>,
) -> Result<PathBuf, AuditKeyError> {
    if let Some(path) = explicit {
        return Ok(path.to_path_buf());
    }
    if let Some(path) = std::env::var_os(KEY_FILE_ENV).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    if let Some(database) = database {
        let mut name = database.as_os_str().to_owned();
        name.push(".audit-key");
        return Ok(PathBuf::from(name));
    }
    let data = std::env::var_os("XDG_DATA_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|p| !p.is_empty())
                .map(|home| PathBuf::from(home).join(".local/share"))
        })
        .ok_or(AuditKeyError::NoPlace)?;
    Ok(data.join("jiuzhu").join("audit.key"))
}

/// The hash a row and a head MAC commit to for a state. With `exact` (SQLite, which gives
/// back the very text written): SHA-256 of the text, no parse. Otherwise (PostgreSQL, whose
/// `jsonb` gives back a normalised text): SHA-256 of its canonical JSON (sorted keys, no
/// whitespace), which is the same for the text written and the text read. `None` when a
/// text to canonicalise is not JSON.
pub fn state_hash(text: &str, exact: bool) -> Option<String> {
    if exact {
        return Some(crate::store::sha256_hex(text.as_bytes()));
    }
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    Some(crate::store::sha256_hex(
        crate::store::canonical_json(&value).as_bytes(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_depend_on_the_key_and_every_input() {
        let key = AuditKey::from_bytes(&[7; 32]);
        let other = AuditKey::from_bytes(&[8; 32]);
        let base = key.row_mac("i", "p", "{}");
        assert_eq!(base.len(), 64);
        assert_ne!(other.row_mac("i", "p", "{}"), base);
        assert_ne!(key.row_mac("j", "p", "{}"), base);
        assert_ne!(key.row_mac("i", "q", "{}"), base);
        assert_ne!(key.row_mac("i", "p", "{ }"), base);
        let head = key.head_mac("i", 3, "h", "s");
        for changed in [
            key.head_mac("j", 3, "h", "s"),
            key.head_mac("i", 2, "h", "s"),
            key.head_mac("i", 3, "g", "s"),
            key.head_mac("i", 3, "h", "t"),
            other.head_mac("i", 3, "h", "s"),
        ] {
            assert_ne!(changed, head);
        }
    }

    #[test]
    fn the_state_hash_ignores_key_order_and_spacing() {
        assert_eq!(
            state_hash(r#"{"a":1,"b":[2]}"#, false),
            state_hash(r#"{ "b": [2], "a": 1 }"#, false)
        );
        assert_ne!(
            state_hash(r#"{"a":1,"b":[2]}"#, true),
            state_hash(r#"{ "b": [2], "a": 1 }"#, true)
        );
        assert_ne!(
            state_hash(r#"{"a":1}"#, false),
            state_hash(r#"{"a":2}"#, false)
        );
        assert_eq!(state_hash(r#"{"a":"#, false), None);
    }

    #[test]
    fn a_key_file_is_created_once_owner_only_and_read_back() -> Result<(), AuditKeyError> {
        let dir = tempfile::tempdir().map_err(|source| AuditKeyError::Io {
            path: "temp".into(),
            source,
        })?;
        let path = dir.path().join("sub").join("k.audit-key");
        let (key, created) = AuditKey::read_or_create(&path)?;
        assert!(created);
        let (again, created) = AuditKey::read_or_create(&path)?;
        assert!(!created);
        assert_eq!(key.bytes, again.bytes);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path)
                .map(|m| m.permissions().mode() & 0o777)
                .unwrap_or(0);
            assert_eq!(mode, 0o600);
            let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644));
            assert!(matches!(
                AuditKey::read(&path),
                Err(AuditKeyError::Exposed { .. })
            ));
        }
        Ok(())
    }
}
