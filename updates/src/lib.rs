//! The agent update server's repository: a TUF repository that orbit, osqueryd and Fleet
//! Desktop update from, laid out as `fleetctl updates` lays it out.
//!
//! ```text
//! P/keys/{root,targets,snapshot,timestamp}.json   encrypted private keys (`keys`)
//! P/repository/                                    what is served under /tuf/
//!     root.json, 1.root.json, 2.root.json, …       every root version, for clients to chain
//!     targets.json snapshot.json timestamp.json
//!     targets/<name>/<platform>/<channel>/<file>
//! ```
//!
//! Metadata is built, signed and serialized by `tough` (canonical JSON, key ids, signature
//! checks); this crate decides what goes in it: go-tuf's legacy client's conventions (spec
//! 1.0, consistent snapshots off, sha256 and sha512, whole-second expiry times, a `version`
//! in each target's custom field). Every change is signed in memory first and then moved
//! into place file by file, targets before the metadata that names them and
//! `timestamp.json` last, so a client never sees metadata naming a file not yet there and a
//! failed command leaves the repository as it was.

#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
mod keys;
mod repo;

pub use keys::{SigningKey, key_path};
pub use repo::{
    Expiry, MetadataExpiry, Published, Repository, TargetFile, TargetRow, target_file_name,
};

use std::path::PathBuf;

/// The four top-level TUF roles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Root,
    Targets,
    Snapshot,
    Timestamp,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Root, Role::Targets, Role::Snapshot, Role::Timestamp];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Root => "root",
            Role::Targets => "targets",
            Role::Snapshot => "snapshot",
            Role::Timestamp => "timestamp",
        }
    }

    /// The environment variable a passphrase is read from: `FLOTILLA_TARGETS_PASSPHRASE`, …
    pub fn passphrase_variable(self) -> String {
        format!("FLOTILLA_{}_PASSPHRASE", self.as_str().to_uppercase())
    }

    fn tough(self) -> tough::schema::RoleType {
        match self {
            Role::Root => tough::schema::RoleType::Root,
            Role::Targets => tough::schema::RoleType::Targets,
            Role::Snapshot => tough::schema::RoleType::Snapshot,
            Role::Timestamp => tough::schema::RoleType::Timestamp,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == s)
            .ok_or_else(|| format!("unknown role `{s}` (root, targets, snapshot or timestamp)"))
    }
}

/// Where passphrases come from: the command line reads `FLOTILLA_<ROLE>_PASSPHRASE` or
/// prompts; the server reads the variable only.
pub trait Passphrases {
    /// The passphrase for `role`'s key. `new` is set when a key is about to be sealed with
    /// it (a prompt asks twice).
    fn passphrase(&self, role: Role, new: bool) -> Result<String, Error>;
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{} already holds a repository (keys/ or repository/ is there); nothing was changed",
        .0.display()
    )]
    Exists(PathBuf),
    #[error("{} is not a repository made by `flotilla updates init`: {reason}", path.display())]
    NotARepository { path: PathBuf, reason: String },
    #[error("{}: {reason}", path.display())]
    KeyFile { path: PathBuf, reason: String },
    #[error("wrong passphrase for the {role} key ({})", path.display())]
    WrongPassphrase { role: Role, path: PathBuf },
    #[error(
        "the {role} key is missing: {} does not exist (keep it offline and copy it back to sign)",
        path.display()
    )]
    MissingKey { role: Role, path: PathBuf },
    #[error("no passphrase for the {role} key: set {} or run in a terminal", role.passphrase_variable())]
    NoPassphrase { role: Role },
    #[error("the passphrases typed for the {0} key do not match")]
    PassphraseMismatch(Role),
    #[error("the {role} key in keys/ is not the one root.json trusts for {role}")]
    KeyNotTrusted { role: Role },
    #[error(
        "root.json expired at {0}; run `flotilla updates rotate root` to sign a new root before anything else"
    )]
    RootExpired(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{role}.json: {reason}")]
    Metadata { role: Role, reason: String },
    #[error("{0}")]
    Crypto(String),
    #[error("signing {role}.json: {reason}")]
    Sign { role: Role, reason: String },
}
