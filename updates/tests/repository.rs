//! The repository as go-tuf's legacy client (orbit's) reads it, and what a command refuses.

use std::path::Path;
use std::time::Duration;

use flotilla_updates::{Error, Expiry, Passphrases, Repository, Role, TargetFile};
use serde_json::Value;

struct Fixed;

impl Passphrases for Fixed {
    fn passphrase(&self, role: Role, _new: bool) -> Result<String, Error> {
        Ok(format!("{role} passphrase"))
    }
}

fn read(repo: &Repository, name: &str) -> Value {
    let text = std::fs::read_to_string(repo.published_dir().join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn orbit(dir: &Path) -> TargetFile {
    let file = dir.join("orbit");
    std::fs::write(&file, b"#!/bin/sh\necho orbit\n").unwrap();
    TargetFile {
        file,
        name: "orbit".into(),
        platform: "linux".into(),
        version: "1.38.2".into(),
        tags: vec!["1.38".into(), "stable".into()],
    }
}

#[tokio::test]
async fn metadata_is_written_as_go_tuf_legacy_clients_expect() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::new(dir.path().join("tuf"));
    repo.init(&Fixed).await.unwrap();
    let root_before = read(&repo, "root.json");
    let paths = repo.add(&orbit(dir.path()), &Fixed).await.unwrap();
    assert_eq!(
        paths,
        [
            "orbit/linux/1.38.2/orbit",
            "orbit/linux/1.38/orbit",
            "orbit/linux/stable/orbit"
        ]
    );

    let root = read(&repo, "root.json");
    assert_eq!(root, root_before, "adding a target leaves root alone");
    assert_eq!(root, read(&repo, "1.root.json"));
    assert_eq!(root["signed"]["spec_version"], "1.0");
    assert_eq!(root["signed"]["consistent_snapshot"], false);
    for role in ["root", "targets", "snapshot", "timestamp"] {
        let meta = read(&repo, &format!("{role}.json"));
        let expires = meta["signed"]["expires"].as_str().unwrap();
        // Whole seconds, UTC, as strict clients require: 2036-11-29T16:12:56Z.
        assert_eq!(expires.len(), 20, "{role}: {expires}");
        assert!(
            expires.ends_with('Z') && !expires.contains('.'),
            "{expires}"
        );
        assert_eq!(meta["signatures"].as_array().unwrap().len(), 1, "{role}");
        assert!(root["signed"]["roles"][role]["keyids"].is_array());
    }
    let targets = read(&repo, "targets.json");
    assert_eq!(targets["signed"]["version"], 2);
    let stable = &targets["signed"]["targets"]["orbit/linux/stable/orbit"];
    assert_eq!(stable["length"], 21);
    assert_eq!(stable["custom"]["version"], "1.38.2");
    assert_eq!(stable["hashes"]["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(stable["hashes"]["sha512"].as_str().unwrap().len(), 128);
    let snapshot = read(&repo, "snapshot.json");
    assert_eq!(snapshot["signed"]["meta"]["targets.json"]["version"], 2);
    let timestamp = read(&repo, "timestamp.json");
    let named = &timestamp["signed"]["meta"]["snapshot.json"];
    assert_eq!(named["version"], snapshot["signed"]["version"]);
    assert_eq!(
        named["length"].as_u64().unwrap(),
        std::fs::metadata(repo.published_dir().join("snapshot.json"))
            .unwrap()
            .len(),
        "the timestamp states snapshot.json's exact length"
    );
    assert!(named["hashes"]["sha512"].is_string());
    let served = repo.published_dir().join("targets/orbit/linux/1.38/orbit");
    assert_eq!(std::fs::read(served).unwrap(), b"#!/bin/sh\necho orbit\n");
    // Every change raises the timestamp's version.
    assert_eq!(timestamp["signed"]["version"], 2);
    let published = repo.load().unwrap();
    let key = repo
        .unlock_one(&published, Role::Timestamp, &Fixed)
        .unwrap();
    let signed = repo.timestamp(&key, None).await.unwrap();
    assert_eq!(signed.version, 3);
}

#[tokio::test]
async fn an_expired_root_is_refused_until_root_is_rotated() {
    let dir = tempfile::tempdir().unwrap();
    let short = Expiry {
        root: Duration::from_secs(1),
        ..Expiry::default()
    };
    let repo = Repository::new(dir.path().join("tuf")).with_expiry(short);
    repo.init(&Fixed).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let before = std::fs::read(repo.published_dir().join("targets.json")).unwrap();
    let refused = repo.add(&orbit(dir.path()), &Fixed).await.unwrap_err();
    assert!(matches!(refused, Error::RootExpired(_)), "{refused}");
    assert!(refused.to_string().contains("rotate root"), "{refused}");
    assert_eq!(
        std::fs::read(repo.published_dir().join("targets.json")).unwrap(),
        before
    );
    assert!(
        !repo.published_dir().join("targets/orbit").exists(),
        "no target was copied"
    );

    // Rotating root signs a new one (with the standard ten years), and work goes on.
    let repo = Repository::new(dir.path().join("tuf"));
    repo.rotate(Role::Root, &Fixed).await.unwrap();
    assert!(repo.published_dir().join("2.root.json").exists());
    repo.add(&orbit(dir.path()), &Fixed).await.unwrap();
    let root = repo.load().unwrap().root;
    assert_eq!(root.signed.version.get(), 2);
    // The new root carries the old root key's signature too, so old clients chain to it.
    assert_eq!(root.signatures.len(), 2);
}
