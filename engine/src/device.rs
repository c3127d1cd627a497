//! Fleet Desktop's device tokens: what makes one acceptable when orbit sets it, and how long it
//! authenticates the host's Desktop and My Device page. Pure decisions, used by the registry
//! ([`Hosts`](crate::hosts::Hosts)) which keeps every host's token in memory.

use crate::store::DeviceAuth;

/// A device token authenticates for an hour after it was set (Fleet's TTL); orbit rotates it
/// before that.
pub const DEVICE_TOKEN_TTL_SECS: i64 = 3600;

/// Longest device token accepted (orbit's are 36-character UUIDs; the column holds 255).
pub const DEVICE_TOKEN_MAX_LEN: usize = 255;

/// Why a token orbit sent cannot be a device token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadDeviceToken {
    #[error("device auth token cannot be empty")]
    Empty,
    #[error("device auth token is longer than 255 characters")]
    TooLong,
    /// The token appears in URL paths (`/device/<token>`), so it must survive them unchanged.
    #[error("device auth token contains invalid characters")]
    NotUrlSafe,
}

/// Checks a token orbit wants to set: not empty, not over [`DEVICE_TOKEN_MAX_LEN`], and made
/// only of characters that URL escaping leaves alone (RFC 3986's unreserved set), as Fleet
/// requires.
pub fn check_token(token: &str) -> Result<(), BadDeviceToken> {
    if token.is_empty() {
        return Err(BadDeviceToken::Empty);
    }
    if token.len() > DEVICE_TOKEN_MAX_LEN {
        return Err(BadDeviceToken::TooLong);
    }
    let unreserved = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~');
    if !token.bytes().all(unreserved) {
        return Err(BadDeviceToken::NotUrlSafe);
    }
    Ok(())
}

impl DeviceAuth {
    /// Whether `token` authenticates this host at `now`: the current token, or the one it
    /// replaced, within [`DEVICE_TOKEN_TTL_SECS`] of the rotation. The previous token is kept
    /// so a My Device page opened just before a rotation keeps working (Fleet #38351).
    pub fn accepts(&self, token: &str, now: i64) -> bool {
        let fresh = now - self.updated_at < DEVICE_TOKEN_TTL_SECS;
        fresh && (self.token == token || self.previous.as_deref() == Some(token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_must_survive_a_url_unchanged() {
        assert_eq!(check_token(""), Err(BadDeviceToken::Empty));
        assert_eq!(check_token("a b"), Err(BadDeviceToken::NotUrlSafe));
        assert_eq!(check_token("a/b"), Err(BadDeviceToken::NotUrlSafe));
        assert_eq!(check_token("a%2F"), Err(BadDeviceToken::NotUrlSafe));
        assert_eq!(check_token("é"), Err(BadDeviceToken::NotUrlSafe));
        assert_eq!(check_token(&"a".repeat(256)), Err(BadDeviceToken::TooLong));
        assert!(check_token("0c8d1e44-7a5b-4f5c-9d7e-2b1a3c4d5e6f").is_ok());
        assert!(check_token("A-z_0.9~").is_ok());
    }

    #[test]
    fn a_token_and_the_one_it_replaced_last_an_hour() {
        let auth = DeviceAuth {
            token: "new".into(),
            previous: Some("old".into()),
            updated_at: 1_000,
        };
        assert!(auth.accepts("new", 1_000));
        assert!(auth.accepts("old", 1_000 + DEVICE_TOKEN_TTL_SECS - 1));
        assert!(!auth.accepts("new", 1_000 + DEVICE_TOKEN_TTL_SECS));
        assert!(!auth.accepts("old", 1_000 + DEVICE_TOKEN_TTL_SECS));
        assert!(!auth.accepts("other", 1_001));
        assert!(!auth.accepts("", 1_001));
    }
}
