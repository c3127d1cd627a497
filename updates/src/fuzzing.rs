//! Entry points for the fuzz targets in `fuzz/` and for the test that replays their corpus.
//!
//! Not a stable interface; it exists for the fuzzers.

use std::path::PathBuf;
use std::sync::OnceLock;

use crate::{Repository, Role};

/// Splits the four metadata files of one fuzz input.
pub const SEPARATOR: &[u8] = b"\n--flotilla-fuzz--\n";

/// A repository's published metadata as the update server reads it at start: `data` holds
/// `root.json`, `targets.json`, `snapshot.json` and `timestamp.json` in that order, between
/// [`SEPARATOR`]s. They are written to a scratch repository and loaded with
/// [`Repository::load`], which parses each and checks every signature against root; a load
/// that succeeds must describe what was written. True when it loaded.
pub fn repository_metadata(data: &[u8]) -> bool {
    // One scratch repository per process, used by one caller at a time.
    static SCRATCH: OnceLock<std::sync::Mutex<PathBuf>> = OnceLock::new();
    let dir = SCRATCH.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("flotilla-fuzz-tuf-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("repository")).expect("a scratch repository");
        std::sync::Mutex::new(dir)
    });
    let dir = dir.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let repo = Repository::new(dir.clone());
    let mut files = split(data);
    files.resize(4, &b""[..]);
    for (role, bytes) in [Role::Root, Role::Targets, Role::Snapshot, Role::Timestamp]
        .into_iter()
        .zip(&files)
    {
        std::fs::write(repo.published_dir().join(format!("{role}.json")), bytes)
            .expect("writing scratch metadata");
    }
    let Ok(published) = repo.load() else {
        return false;
    };
    {
        let root: serde_json::Value = serde_json::from_slice(files[0]).expect("root was parsed");
        assert_eq!(
            root["signed"]["version"].as_u64(),
            Some(published.root.signed.version.get()),
            "the loaded root is not the one written"
        );
        let _ = published.expiry();
        let _ = published.targets();
    }
    true
}

fn split(data: &[u8]) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    let mut rest = data;
    while let Some(at) = rest.windows(SEPARATOR.len()).position(|w| w == SEPARATOR) {
        parts.push(&rest[..at]);
        rest = &rest[at + SEPARATOR.len()..];
    }
    parts.push(rest);
    parts
}
