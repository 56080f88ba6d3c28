//! The password file: one `user:hash` line each, the hash an argon2id PHC string as
//! `tabmq passwd` writes it (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`). Blank lines and
//! lines starting with `#` are skipped.

use std::collections::HashMap;

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

/// A line of the password file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct PasswordFileError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

/// The users of a password file and their hashes.
#[derive(Debug, Clone, Default)]
pub struct PasswordFile {
    hashes: HashMap<String, String>,
}

impl PasswordFile {
    /// Parses the text of a password file; every hash must be a valid argon2 PHC string.
    pub fn parse(text: &str) -> Result<Self, PasswordFileError> {
        let mut hashes = HashMap::new();
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let error = |reason: &str| PasswordFileError {
                line: index + 1,
                reason: reason.to_owned(),
            };
            let (user, hash) = line.split_once(':').ok_or_else(|| error("expected user:hash"))?;
            if user.is_empty() {
                return Err(error("the user name is empty"));
            }
            let parsed = PasswordHash::new(hash).map_err(|_| error("the hash is not a PHC string"))?;
            if !parsed.algorithm.as_str().starts_with("argon2") {
                return Err(error(
                    "the hash is not an argon2 hash (write it with `tabmq passwd`)",
                ));
            }
            if hashes.insert(user.to_owned(), hash.to_owned()).is_some() {
                return Err(error("the user appears twice"));
            }
        }
        Ok(Self { hashes })
    }

    /// The stored hash of `user`.
    pub fn hash_of(&self, user: &str) -> Option<&str> {
        self.hashes.get(user).map(String::as_str)
    }

    /// How many users it holds.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Whether it holds no user.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }
}

/// Whether `password` is the one `hash` was made from (CPU-heavy by design: run it
/// off the async threads).
pub fn verify(hash: &str, password: &[u8]) -> bool {
    PasswordHash::new(hash).is_ok_and(|hash| Argon2::default().verify_password(password, &hash).is_ok())
}

/// A fresh argon2id hash of `password` with a random salt, in PHC form.
pub fn hash(password: &[u8]) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password, &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| error.to_string())
}

/// A hash no password matches, verified for unknown users so that a refusal takes as
/// long whether or not the user exists.
pub fn decoy() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash(b"decoy for unknown users").unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let hashed = hash(b"s3cret").expect("hashes");
        assert!(hashed.starts_with("$argon2id$"), "{hashed}");
        assert!(verify(&hashed, b"s3cret"));
        assert!(!verify(&hashed, b"s3cret "));
        assert!(!verify("not a hash", b"s3cret"));
    }

    #[test]
    fn the_file_is_read_line_by_line_and_bad_lines_named() {
        let hashed = hash(b"pw").expect("hashes");
        let file =
            PasswordFile::parse(&format!("# users\n\nalice:{hashed}\nbob:{hashed}\n")).expect("parses");
        assert_eq!(file.len(), 2);
        assert_eq!(file.hash_of("alice"), Some(hashed.as_str()));
        assert_eq!(file.hash_of("carol"), None);
        let error = |text: &str| PasswordFile::parse(text).map(drop).expect_err("refused");
        assert_eq!(error("alice").line, 1);
        assert_eq!(error(&format!("a:{hashed}\n:{hashed}")).line, 2);
        assert!(error("alice:plaintext").reason.contains("PHC"));
        assert!(error(&format!("a:{hashed}\na:{hashed}")).reason.contains("twice"));
        assert!(
            error(
                "a:$scrypt$ln=16,r=8,p=1$aM15713r3Xsvxbi31lqr1Q$nFNh2CVHVjNldFVKDHDlm4CbdRSCdEBsjjJxD+iCs5E"
            )
            .reason
            .contains("argon2")
        );
    }
}
