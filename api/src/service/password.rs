//! Passwords: Fleet's rules for new ones, argon2id hashing (RustCrypto's defaults), and a
//! verification that costs the same whether or not the account exists.
//!
//! Hashing takes tens of milliseconds by design, so it runs on the blocking pool.

use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

use crate::fleet::error::FleetError;

/// Fleet's bounds on a password's length, in characters.
const MIN_LEN: usize = 12;
const MAX_LEN: usize = 48;

/// Fleet's rules: 12 to 48 characters, at least one number and one symbol. The error is a
/// 422 naming `field`.
pub fn check_rules(field: &str, password: &str) -> Result<(), FleetError> {
    let length = password.chars().count();
    let has_number = password.chars().any(|c| c.is_numeric());
    let has_symbol = password
        .chars()
        .any(|c| !c.is_alphanumeric() && !c.is_whitespace());
    if (MIN_LEN..=MAX_LEN).contains(&length) && has_number && has_symbol {
        return Ok(());
    }
    Err(FleetError::validation(
        field,
        format!(
            "Password must meet the criteria below: at least {MIN_LEN} characters long, \
             at most {MAX_LEN}, at least 1 number (e.g. 0 - 9), at least 1 symbol (e.g. &*#)"
        ),
    ))
}

/// A password for an account nobody logs in to interactively (an API-only user created without
/// one): 30 random bytes in base64, with a number and a symbol so that it meets
/// [`check_rules`] like any other.
pub fn generate() -> String {
    use base64::Engine as _;
    let bytes: [u8; 30] = rand::random();
    format!(
        "{}-1",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

fn hash_now(password: &str) -> Result<String, FleetError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|e| FleetError::Internal(format!("hashing a password: {e}")))
}

/// An argon2id PHC string for `password`, with a fresh random salt.
pub async fn hash(password: String) -> Result<String, FleetError> {
    tokio::task::spawn_blocking(move || hash_now(&password))
        .await
        .map_err(|e| FleetError::Internal(format!("password hashing task: {e}")))?
}

/// A hash nobody's password matches, verified against when an email is unknown so that the
/// answer takes as long as for a known one.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let random: [u8; 24] = rand::random();
        hash_now(&format!("{random:?}")).expect("argon2 hashes with its default parameters")
    })
}

fn verify_now(password: &str, hash: Option<&str>) -> bool {
    let known = hash.is_some();
    let Ok(parsed) = PasswordHash::new(hash.unwrap_or_else(|| dummy_hash())) else {
        tracing::error!("a stored password hash is not a PHC string");
        return false;
    };
    let matches = Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok();
    known && matches
}

/// Whether `password` matches `hash`. With no hash (unknown user) it still does the work and
/// answers false.
pub async fn verify(password: String, hash: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || verify_now(&password, hash.as_deref()))
        .await
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fleet_password_rules() {
        for good in ["correct-horse-1", "12345678901!", "pässwörd-mit-1"] {
            assert!(check_rules("password", good).is_ok(), "{good}");
        }
        for bad in [
            "short-1!",                       // too short
            "no-number-at-all!",              // no number
            "nosymbolatall123",               // no symbol
            "with spaces 123",                // a space is not a symbol
            &format!("{}-1", "a".repeat(47)), // too long
        ] {
            let error = check_rules("password", bad).unwrap_err();
            assert!(
                matches!(error, FleetError::Validation { ref name, .. } if name == "password"),
                "{bad}"
            );
        }
    }

    #[test]
    fn generated_passwords_meet_the_rules_and_differ() {
        let one = generate();
        assert!(check_rules("password", &one).is_ok(), "{one}");
        assert_ne!(one, generate());
    }

    #[tokio::test]
    async fn hashes_verify_and_unknown_users_never_match() {
        let stored = hash("correct-horse-1".into()).await.unwrap();
        assert!(stored.starts_with("$argon2id$"), "{stored}");
        assert!(verify("correct-horse-1".into(), Some(stored.clone())).await);
        assert!(!verify("wrong-horse-1".into(), Some(stored)).await);
        assert!(!verify("correct-horse-1".into(), None).await);
        assert!(!verify("x".into(), Some("not a hash".into())).await);
    }
}
