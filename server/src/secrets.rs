//! Passwords (argon2id), random secrets (session ids, CSRF and API tokens) and their
//! digests.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use sha2::{Digest, Sha256};

/// Why a password could not be hashed or a secret generated.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("the system's random source failed")]
    Random,
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("a password needs at least {MIN_PASSWORD_CHARS} characters")]
    TooShort,
}

/// Shortest password `users add` / `set-password` accept.
pub const MIN_PASSWORD_CHARS: usize = 8;

/// `n` bytes from the operating system's CSPRNG, as lowercase hex.
pub fn random_hex(n: usize) -> Result<String, SecretError> {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).map_err(|_| SecretError::Random)?;
    Ok(hex::encode(bytes))
}

/// A new 256-bit secret (session id, CSRF token, API token body).
pub fn new_secret() -> Result<String, SecretError> {
    random_hex(32)
}

/// SHA-256 of a high-entropy secret, lowercase hex: enough for session ids and tokens,
/// which are never guessed from a dictionary (passwords get argon2id).
pub fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn argon2() -> Argon2<'static> {
    // OWASP's argon2id minimum (19 MiB, 2 passes): a login costs tens of milliseconds.
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// An argon2id PHC string for `password`.
pub fn hash_password(password: &str) -> Result<String, SecretError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(SecretError::TooShort);
    }
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|_| SecretError::Random)?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| SecretError::Hash(e.to_string()))?;
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| SecretError::Hash(e.to_string()))
}

/// True when `password` matches the stored PHC string (false for a malformed one).
pub fn verify_password(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .map(|hash| argon2().verify_password(password.as_bytes(), &hash).is_ok())
        .unwrap_or(false)
}

/// A hash of a password nobody has, verified against when the account does not exist or
/// has no password, so such a login costs what a real one does (no timing oracle).
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password("no-such-password-ever").unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_verifies_against_its_own_hash_only() {
        let hash = hash_password("correct horse").expect("hash");
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("correct horse!", &hash));
        assert!(!verify_password("correct horse", "not a phc string"));
        assert!(matches!(hash_password("short"), Err(SecretError::TooShort)));
    }

    #[test]
    fn secrets_are_256_bits_and_differ() {
        let a = new_secret().expect("secret");
        let b = new_secret().expect("secret");
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert_eq!(digest(&a).len(), 64);
        assert_ne!(digest(&a), a);
    }
}
