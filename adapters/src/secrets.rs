//! Secrets (SMTP password, webhook HMAC key): where they come from and how they
//! are kept out of logs.
//!
//! A secret is named in configuration by reference only (`{env: NAME}` or
//! `{file: path}`), never written into a process YAML or a config file itself.
//! A secrets file must not be readable by group or others: a key that every
//! local account can read is not a key, so loading refuses it rather than warn.
//! The loaded value lives in [`Secret`], whose `Debug` prints `***` and which
//! wipes its memory when dropped.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use zeroize::Zeroizing;

/// A secret value. `Debug` prints `***`; there is deliberately no `Display`,
/// so a secret cannot slip into a `format!` by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(Zeroizing::new(value.into()))
    }

    /// The secret's text, for the one place that must hand it on (the SMTP
    /// login, the HMAC key).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Where to find a secret: `{env: JIUZHU_SMTP_PASSWORD}` or
/// `{file: /etc/jiuzhu/smtp-password}` in the notification config.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum SecretRef {
    /// An environment variable holding the secret.
    Env(String),
    /// A file holding the secret (one line; a trailing newline is dropped).
    File(PathBuf),
}

/// Why a secret could not be loaded. Never carries the secret itself.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable `{name}` is not set (or not valid UTF-8)")]
    MissingEnv { name: String },
    #[error("environment variable `{name}` is empty")]
    EmptyEnv { name: String },
    #[error("cannot read secrets file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "secrets file {path} has mode {mode:03o}: it must not be readable or writable by group or others (chmod 600)"
    )]
    TooOpen { path: PathBuf, mode: u32 },
    #[error("secrets file {path} is empty")]
    EmptyFile { path: PathBuf },
    #[error("secrets file {path} is not valid UTF-8")]
    NotUtf8 { path: PathBuf },
}

impl SecretRef {
    /// Loads the secret from the process environment or the file.
    pub fn load(&self) -> Result<Secret, SecretError> {
        self.load_with(|name| std::env::var(name).ok())
    }

    /// Loads the secret, reading environment variables through `env` (tests
    /// pass a map instead of mutating the process environment).
    pub fn load_with(&self, env: impl Fn(&str) -> Option<String>) -> Result<Secret, SecretError> {
        match self {
            SecretRef::Env(name) => {
                let value =
                    env(name).ok_or_else(|| SecretError::MissingEnv { name: name.clone() })?;
                if value.is_empty() {
                    return Err(SecretError::EmptyEnv { name: name.clone() });
                }
                Ok(Secret::new(value))
            }
            SecretRef::File(path) => load_file(path),
        }
    }
}

fn load_file(path: &Path) -> Result<Secret, SecretError> {
    let io = |source| SecretError::Io {
        path: path.to_path_buf(),
        source,
    };
    let metadata = std::fs::metadata(path).map_err(io)?;
    check_permissions(path, &metadata)?;
    let bytes = Zeroizing::new(std::fs::read(path).map_err(io)?);
    let text = std::str::from_utf8(&bytes).map_err(|_| SecretError::NotUtf8 {
        path: path.to_path_buf(),
    })?;
    // Editors and `echo` add a final newline that is not part of the key.
    let text = text.strip_suffix('\n').unwrap_or(text);
    let text = text.strip_suffix('\r').unwrap_or(text);
    if text.is_empty() {
        return Err(SecretError::EmptyFile {
            path: path.to_path_buf(),
        });
    }
    Ok(Secret::new(text))
}

#[cfg(unix)]
fn check_permissions(path: &Path, metadata: &std::fs::Metadata) -> Result<(), SecretError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(SecretError::TooOpen {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_permissions(_path: &Path, _metadata: &std::fs::Metadata) -> Result<(), SecretError> {
    // Windows ACLs are not mode bits; the deployment guide covers them.
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn debug_never_shows_the_value() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?}"), "***");
        assert_eq!(format!("{:?}", Some(&secret)), "Some(***)");
        assert_eq!(secret.expose(), "hunter2");
    }

    #[test]
    fn env_secrets_come_from_the_given_environment() {
        let env = HashMap::from([("SMTP_PW".to_string(), "s3cret".to_string())]);
        let lookup = |name: &str| env.get(name).cloned();
        let secret = SecretRef::Env("SMTP_PW".into()).load_with(lookup).unwrap();
        assert_eq!(secret.expose(), "s3cret");
        let err = SecretRef::Env("NOPE".into()).load_with(lookup).unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable `NOPE` is not set (or not valid UTF-8)"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_secrets_file_readable_by_others_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hmac-key");
        std::fs::write(&path, "k3y\n").unwrap();

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = SecretRef::File(path.clone()).load().unwrap_err();
        assert!(
            matches!(err, SecretError::TooOpen { mode: 0o644, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("chmod 600"));

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(
            SecretRef::File(path.clone()).load(),
            Err(SecretError::TooOpen { mode: 0o640, .. })
        ));

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let secret = SecretRef::File(path).load().unwrap();
        assert_eq!(secret.expose(), "k3y", "the trailing newline is dropped");
    }

    #[test]
    fn secret_refs_read_from_yaml() {
        let r: SecretRef = serde_saphyr::from_str("env: JIUZHU_HMAC_KEY").unwrap();
        assert_eq!(r, SecretRef::Env("JIUZHU_HMAC_KEY".into()));
        let r: SecretRef = serde_saphyr::from_str("file: /run/secrets/k").unwrap();
        assert_eq!(r, SecretRef::File("/run/secrets/k".into()));
    }
}
