//! Identifier newtypes. Every id that crosses a module boundary is one of these, never a bare
//! integer or string, so that a host id cannot be passed where a campaign id is expected.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A host's primary key in the store. Stable across re-enrollment and restarts.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostId(pub u64);

/// A live-query campaign's primary key; the suffix of `fleet_distributed_query_<id>`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CampaignId(pub u64);

/// A team's primary key. Hosts without a team belong to the global scope.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TeamId(pub u64);

impl fmt::Display for HostId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for CampaignId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for TeamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The secret an enrolled osquery agent presents on every request.
///
/// Generated keys are 32 random bytes in URL-safe base64 without padding (43 characters).
/// `Debug` never prints the key: node keys are credentials and must not reach the logs.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct NodeKey(Box<str>);

/// Random bytes in a generated node key (Fleet uses 24; more costs nothing).
const NODE_KEY_BYTES: usize = 32;

/// Longest node key accepted from the wire; anything longer cannot be one of ours.
const NODE_KEY_MAX_LEN: usize = 256;

impl NodeKey {
    /// A fresh random key from the operating system's CSPRNG.
    pub fn generate() -> NodeKey {
        let bytes: [u8; NODE_KEY_BYTES] = rand::random();
        NodeKey(URL_SAFE_NO_PAD.encode(bytes).into_boxed_str())
    }

    /// Wraps a key read from a request or the store. Empty and absurdly long keys are refused,
    /// so a lookup never has to hash megabytes of attacker input.
    pub fn new(key: &str) -> Option<NodeKey> {
        NodeKey::plausible(key).then(|| NodeKey(key.into()))
    }

    /// Whether `key` could be a node key at all (not empty, not absurdly long).
    pub fn plausible(key: &str) -> bool {
        !key.is_empty() && key.len() <= NODE_KEY_MAX_LEN
    }

    /// The [`NodeKey::digest`] of a presented key, without copying the key first; `None` for a
    /// key that cannot be one (see [`NodeKey::new`]).
    pub fn digest_of(key: &str) -> Option<NodeKey> {
        NodeKey::plausible(key).then(|| key_digest(key))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What the store and the in-memory index hold instead of the key: `sha256:` and the
    /// SHA-256 of the key in URL-safe base64. A copy of the database does not let anyone
    /// present a host's key. One unsalted hash is enough: generated keys carry 256 random bits.
    pub fn digest(&self) -> NodeKey {
        key_digest(&self.0)
    }

    /// Whether this is a [`NodeKey::digest`] rather than a key (databases written before keys
    /// were hashed hold keys).
    pub fn is_digest(&self) -> bool {
        self.0.starts_with(DIGEST_PREFIX)
    }
}

/// Prefix of a [`NodeKey::digest`].
pub const DIGEST_PREFIX: &str = "sha256:";

/// The [`NodeKey::digest`] of a presented key.
pub fn key_digest(key: &str) -> NodeKey {
    use sha2::Digest as _;
    let hash = sha2::Sha256::digest(key.as_bytes());
    let mut digest = String::with_capacity(DIGEST_PREFIX.len() + 43);
    digest.push_str(DIGEST_PREFIX);
    URL_SAFE_NO_PAD.encode_string(hash, &mut digest);
    NodeKey(digest.into_boxed_str())
}

impl fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NodeKey(<redacted>)")
    }
}

impl std::borrow::Borrow<str> for NodeKey {
    fn borrow(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_is_stable_marked_and_reveals_nothing_of_the_key() {
        let key = NodeKey::generate();
        let digest = key.digest();
        assert_eq!(digest, key.digest());
        assert!(digest.is_digest() && !key.is_digest());
        assert_eq!(digest.as_str().len(), DIGEST_PREFIX.len() + 43);
        assert!(!digest.as_str().contains(key.as_str()));
        assert_ne!(digest, NodeKey::generate().digest());
        // SHA-256 of "abc", base64url.
        assert_eq!(
            key_digest("abc").as_str(),
            "sha256:ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"
        );
    }

    #[test]
    fn generated_keys_are_long_url_safe_and_distinct() {
        let a = NodeKey::generate();
        let b = NodeKey::generate();
        assert_eq!(a.as_str().len(), 43);
        assert!(
            a.as_str()
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_ne!(a, b);
    }

    #[test]
    fn debug_does_not_leak_the_key() {
        let key = NodeKey::generate();
        assert!(!format!("{key:?}").contains(key.as_str()));
    }

    #[test]
    fn wire_keys_must_be_non_empty_and_bounded() {
        assert!(NodeKey::new("").is_none());
        assert!(NodeKey::new(&"a".repeat(257)).is_none());
        assert_eq!(NodeKey::new("abc").unwrap().as_str(), "abc");
    }
}
