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
        if key.is_empty() || key.len() > NODE_KEY_MAX_LEN {
            return None;
        }
        Some(NodeKey(key.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
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
