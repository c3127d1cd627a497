//! Creating, reading and changing a repository: `init`, `add`, `timestamp`, `rotate`, and
//! what `roots`, `list` and the server read.

use std::collections::HashMap;
use std::io::Read;
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_lc_rs::digest::{Context, SHA256, SHA512};
use aws_lc_rs::rand::SystemRandom;
use serde::Serialize;
use serde_json::Value;
use tough::TargetName;
use tough::editor::signed::SignedRole;
use tough::schema::key::Key;
use tough::schema::{
    Hashes, KeyHolder, Metafile, RoleKeys, Root, Signed, Snapshot, Target, Targets, Timestamp,
};

use crate::keys::{SigningKey, key_path};
use crate::{Error, Passphrases, Role};

/// The spec version go-tuf's legacy client (orbit's) writes and reads.
const SPEC_VERSION: &str = "1.0";
const DAY: u64 = 24 * 60 * 60;

/// How long each role's signature lasts, from the moment it is made: `fleetctl updates`'s
/// periods (root 10 years, targets and snapshot 3, timestamp 14 days).
#[derive(Clone, Copy, Debug)]
pub struct Expiry {
    pub root: Duration,
    pub targets: Duration,
    pub snapshot: Duration,
    pub timestamp: Duration,
}

impl Default for Expiry {
    fn default() -> Self {
        Self {
            root: Duration::from_secs(10 * 365 * DAY),
            targets: Duration::from_secs(3 * 365 * DAY),
            snapshot: Duration::from_secs(3 * 365 * DAY),
            timestamp: Duration::from_secs(14 * DAY),
        }
    }
}

/// A file to publish: `add --target FILE --name N --platform P --version V -t TAG…`.
#[derive(Clone, Debug)]
pub struct TargetFile {
    pub file: PathBuf,
    pub name: String,
    pub platform: String,
    pub version: String,
    pub tags: Vec<String>,
}

/// One published target, as `list` and the server's API show it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct TargetRow {
    pub target: String,
    pub name: String,
    pub platform: String,
    pub channel: String,
    pub version: String,
    pub length: u64,
    pub sha512: String,
}

impl TargetRow {
    /// A path under a version (`orbit/linux/1.38.2/orbit`) never changes; a channel's
    /// (`orbit/linux/stable/orbit`) moves with every release.
    pub fn is_version_path(&self) -> bool {
        self.channel == self.version
    }
}

/// Seconds each role's metadata has left, for `/metrics` and the re-signer.
#[derive(Clone, Copy, Debug)]
pub struct MetadataExpiry {
    pub role: Role,
    pub version: u64,
    pub expires_unix: i64,
}

/// The four top-level roles as published, each checked against `root.json`.
#[derive(Clone, Debug)]
pub struct Published {
    pub root: Signed<Root>,
    pub targets: Signed<Targets>,
    pub snapshot: Signed<Snapshot>,
    pub timestamp: Signed<Timestamp>,
}

impl Published {
    pub fn expiry(&self) -> [MetadataExpiry; 4] {
        let one = |role, version: NonZeroU64, expires: jiff::Timestamp| MetadataExpiry {
            role,
            version: version.get(),
            expires_unix: expires.as_second(),
        };
        [
            one(
                Role::Root,
                self.root.signed.version,
                self.root.signed.expires,
            ),
            one(
                Role::Targets,
                self.targets.signed.version,
                self.targets.signed.expires,
            ),
            one(
                Role::Snapshot,
                self.snapshot.signed.version,
                self.snapshot.signed.expires,
            ),
            one(
                Role::Timestamp,
                self.timestamp.signed.version,
                self.timestamp.signed.expires,
            ),
        ]
    }

    /// Every target, sorted by path.
    pub fn targets(&self) -> Vec<TargetRow> {
        let mut rows: Vec<TargetRow> = self
            .targets
            .signed
            .targets
            .iter()
            .map(|(name, target)| {
                let path = name.raw().to_owned();
                let mut parts = path.splitn(4, '/');
                let mut next = || parts.next().unwrap_or_default().to_owned();
                let (name, platform, channel) = (next(), next(), next());
                TargetRow {
                    target: path.clone(),
                    name,
                    platform,
                    channel,
                    version: target
                        .custom
                        .get("version")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    length: target.length,
                    sha512: target
                        .hashes
                        ._extra
                        .get("sha512")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                }
            })
            .collect();
        rows.sort_by(|a, b| a.target.cmp(&b.target));
        rows
    }

    /// Whether root trusts `key` for `role`.
    pub fn trusts(&self, role: Role, key: &SigningKey) -> bool {
        self.root
            .signed
            .roles
            .get(&role.tough())
            .is_some_and(|keys| {
                keys.keyids
                    .iter()
                    .any(|id| hex::encode(id.as_ref()) == key.key_id())
            })
    }
}

/// A repository directory (`--path P`).
#[derive(Clone, Debug)]
pub struct Repository {
    path: PathBuf,
    expiry: Expiry,
}

impl Repository {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            expiry: Expiry::default(),
        }
    }

    pub fn with_expiry(mut self, expiry: Expiry) -> Self {
        self.expiry = expiry;
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory served under `/tuf/`.
    pub fn published_dir(&self) -> PathBuf {
        self.path.join("repository")
    }

    fn metadata_path(&self, role: Role) -> PathBuf {
        self.published_dir().join(format!("{role}.json"))
    }

    /// Makes keys for the four roles and publishes an empty repository signed with them.
    /// Refuses a directory that already holds keys or metadata.
    pub async fn init(&self, passphrases: &dyn Passphrases) -> Result<Published, Error> {
        let (keys_dir, published) = (self.path.join("keys"), self.published_dir());
        if non_empty(&keys_dir) || non_empty(&published) {
            return Err(Error::Exists(self.path.clone()));
        }
        let mut sealed = Vec::new();
        let mut keys = HashMap::new();
        for role in Role::ALL {
            let passphrase = passphrases.passphrase(role, true)?;
            let key = SigningKey::generate(role)?;
            sealed.push((role, passphrase));
            keys.insert(role, key);
        }
        let now = now();
        let mut root = Root {
            spec_version: SPEC_VERSION.into(),
            consistent_snapshot: false,
            version: NonZeroU64::MIN,
            expires: after(now, self.expiry.root),
            keys: HashMap::new(),
            roles: HashMap::new(),
            _extra: HashMap::new(),
        };
        for role in Role::ALL {
            let key = &keys[&role];
            set_role_key(&mut root, role, key)?;
        }
        let signed_root = sign(root.clone(), &root, &[&keys[&Role::Root]], Role::Root).await?;
        let targets = Targets::new(
            SPEC_VERSION.into(),
            NonZeroU64::MIN,
            after(now, self.expiry.targets),
        );
        let signed = self
            .sign_chain(&root, targets, None, None, &keys, now)
            .await?;

        std::fs::create_dir_all(&self.path).map_err(|e| io(&self.path, e))?;
        // Everything is written into a staging directory beside the final ones and moved
        // into place at the end, so a failure leaves no half-made repository.
        let staging = tempfile::Builder::new()
            .prefix(".init-")
            .tempdir_in(&self.path)
            .map_err(|e| io(&self.path, e))?;
        let (staged_keys, staged_repo) = (staging.path().join("keys"), staging.path().join("r"));
        for dir in [&staged_keys, &staged_repo.join("targets")] {
            std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        }
        for (role, passphrase) in &sealed {
            let file = staged_keys.join(format!("{role}.json"));
            keys[role].write_encrypted(&file, passphrase)?;
        }
        let root_bytes = signed_root.buffer();
        for (name, bytes) in [
            ("1.root.json", root_bytes.as_slice()),
            ("root.json", root_bytes),
            ("targets.json", signed.targets.buffer()),
            ("snapshot.json", signed.snapshot.buffer()),
            ("timestamp.json", signed.timestamp.buffer()),
        ] {
            let file = staged_repo.join(name);
            std::fs::write(&file, bytes).map_err(|e| io(&file, e))?;
        }
        for (from, to) in [(staged_keys, keys_dir), (staged_repo, published)] {
            if to.exists() {
                std::fs::remove_dir(&to).map_err(|e| io(&to, e))?;
            }
            std::fs::rename(&from, &to).map_err(|e| io(&to, e))?;
        }
        self.load()
    }

    /// Reads the published metadata and checks every role's signatures against root.json.
    pub fn load(&self) -> Result<Published, Error> {
        let root: Signed<Root> = self.read_role(Role::Root)?;
        root.signed
            .verify_role(&root)
            .map_err(|e| self.not_a_repository(format!("root.json is not signed by root: {e}")))?;
        let targets: Signed<Targets> = self.read_role(Role::Targets)?;
        let snapshot: Signed<Snapshot> = self.read_role(Role::Snapshot)?;
        let timestamp: Signed<Timestamp> = self.read_role(Role::Timestamp)?;
        for (role, check) in [
            (Role::Targets, root.signed.verify_role(&targets)),
            (Role::Snapshot, root.signed.verify_role(&snapshot)),
            (Role::Timestamp, root.signed.verify_role(&timestamp)),
        ] {
            check.map_err(|e| Error::Metadata {
                role,
                reason: format!("its signatures do not verify against root.json: {e}"),
            })?;
        }
        Ok(Published {
            root,
            targets,
            snapshot,
            timestamp,
        })
    }

    fn read_role<T: serde::de::DeserializeOwned>(&self, role: Role) -> Result<T, Error> {
        let path = self.metadata_path(role);
        let bytes = std::fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => self.not_a_repository(format!(
                "{} is missing",
                path.strip_prefix(&self.path).unwrap_or(&path).display()
            )),
            _ => io(&path, e),
        })?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Metadata {
            role,
            reason: e.to_string(),
        })
    }

    fn not_a_repository(&self, reason: String) -> Error {
        Error::NotARepository {
            path: self.path.clone(),
            reason,
        }
    }

    /// The root role's public keys, as `fleetctl updates roots` prints them (orbit's
    /// `--update-roots`).
    pub fn root_keys(&self) -> Result<Value, Error> {
        let published = self.load()?;
        let root = &published.root.signed;
        let keys: Vec<&Key> = root.keys(tough::schema::RoleType::Root).collect();
        Ok(serde_json::to_value(keys).expect("keys serialize"))
    }

    /// The newest signed root.json, byte for byte (newer orbit's `--update-roots` takes it,
    /// and any TUF client can start from it).
    pub fn signed_root(&self) -> Result<Vec<u8>, Error> {
        self.load()?;
        let path = self.metadata_path(Role::Root);
        std::fs::read(&path).map_err(|e| io(&path, e))
    }

    /// Publishes `target` at its version and at each tag; re-signs targets, snapshot and
    /// timestamp. Returns the target paths written.
    pub async fn add(
        &self,
        target: &TargetFile,
        passphrases: &dyn Passphrases,
    ) -> Result<Vec<String>, Error> {
        for (what, value) in [
            ("name", &target.name),
            ("platform", &target.platform),
            ("version", &target.version),
        ] {
            check_component(what, value)?;
        }
        for tag in &target.tags {
            check_component("tag", tag)?;
        }
        let hashed = hash_file(&target.file)?;
        let published = self.load()?;
        check_root(&published)?;
        let keys = self.unlock(
            &published,
            &[Role::Targets, Role::Snapshot, Role::Timestamp],
            passphrases,
        )?;
        let file_name = target_file_name(&target.name, &target.platform, &target.file);
        let mut channels = vec![target.version.clone()];
        for tag in &target.tags {
            if !channels.contains(tag) {
                channels.push(tag.clone());
            }
        }
        let now = now();
        let mut targets = published.targets.signed.clone();
        targets.version = next(targets.version);
        targets.expires = after(now, self.expiry.targets);
        let mut paths = Vec::new();
        for channel in &channels {
            let path = format!("{}/{}/{channel}/{file_name}", target.name, target.platform);
            let name = TargetName::new(path.clone())
                .map_err(|e| Error::Invalid(format!("target path {path}: {e}")))?;
            targets.targets.insert(name, hashed.target(&target.version));
            paths.push(path);
        }
        let signed = self
            .sign_chain(
                &published.root.signed,
                targets,
                Some(&published.snapshot.signed),
                Some(&published.timestamp.signed),
                &keys,
                now,
            )
            .await?;

        let mut staged = Staged::default();
        let targets_dir = self.published_dir().join("targets");
        for path in &paths {
            staged.copy(&target.file, &targets_dir.join(path))?;
        }
        staged.bytes(&self.metadata_path(Role::Targets), signed.targets.buffer())?;
        staged.bytes(
            &self.metadata_path(Role::Snapshot),
            signed.snapshot.buffer(),
        )?;
        staged.bytes(
            &self.metadata_path(Role::Timestamp),
            signed.timestamp.buffer(),
        )?;
        staged.commit()?;
        Ok(paths)
    }

    /// Every published target.
    pub fn list(&self) -> Result<Vec<TargetRow>, Error> {
        Ok(self.load()?.targets())
    }

    /// Re-signs timestamp.json with a raised version, to expire `expires_in` from now (14 days
    /// unless told). Needs only the timestamp key: the server holds it to re-sign daily.
    pub async fn timestamp(
        &self,
        key: &SigningKey,
        expires_in: Option<Duration>,
    ) -> Result<MetadataExpiry, Error> {
        let published = self.load()?;
        check_root(&published)?;
        if key.role != Role::Timestamp || !published.trusts(Role::Timestamp, key) {
            return Err(Error::KeyNotTrusted {
                role: Role::Timestamp,
            });
        }
        let mut timestamp = published.timestamp.signed.clone();
        timestamp.version = next(timestamp.version);
        timestamp.expires = after(now(), expires_in.unwrap_or(self.expiry.timestamp));
        let signed = sign(timestamp, &published.root.signed, &[key], Role::Timestamp).await?;
        let mut staged = Staged::default();
        staged.bytes(&self.metadata_path(Role::Timestamp), signed.buffer())?;
        staged.commit()?;
        Ok(MetadataExpiry {
            role: Role::Timestamp,
            version: signed.signed().signed.version.get(),
            expires_unix: signed.signed().signed.expires.as_second(),
        })
    }

    /// Decrypts the key of `role` after checking it is the one root trusts.
    pub fn unlock_one(
        &self,
        published: &Published,
        role: Role,
        passphrases: &dyn Passphrases,
    ) -> Result<SigningKey, Error> {
        let path = key_path(&self.path, role);
        if !path.exists() {
            return Err(Error::MissingKey { role, path });
        }
        let passphrase = passphrases.passphrase(role, false)?;
        let key = SigningKey::read_encrypted(&path, role, &passphrase)?;
        if !published.trusts(role, &key) {
            return Err(Error::KeyNotTrusted { role });
        }
        Ok(key)
    }

    fn unlock(
        &self,
        published: &Published,
        roles: &[Role],
        passphrases: &dyn Passphrases,
    ) -> Result<HashMap<Role, SigningKey>, Error> {
        roles
            .iter()
            .map(|&role| Ok((role, self.unlock_one(published, role, passphrases)?)))
            .collect()
    }

    /// Replaces `role`'s key with a new one: root is re-signed (by the old root key too when
    /// root itself rotates, so a client that trusts the old root follows `N.root.json`), and
    /// targets, snapshot and timestamp are re-signed with raised versions. Returns the new
    /// key id.
    pub async fn rotate(&self, role: Role, passphrases: &dyn Passphrases) -> Result<String, Error> {
        let published = self.load()?;
        // A root past its expiry is what rotating root repairs.
        if role != Role::Root {
            check_root(&published)?;
        }
        let mut keys = self.unlock(&published, &Role::ALL, passphrases)?;
        let new_passphrase = passphrases.passphrase(role, true)?;
        let new_key = SigningKey::generate(role)?;
        let old_key = keys.insert(role, new_key).expect("every role was unlocked");

        let now = now();
        let old_root = &published.root.signed;
        let mut root = old_root.clone();
        root.version = next(root.version);
        root.expires = after(now, self.expiry.root);
        set_role_key(&mut root, role, &keys[&role])?;
        let mut signed_root = sign(root.clone(), &root, &[&keys[&Role::Root]], Role::Root).await?;
        if role == Role::Root {
            let by_old = sign(root.clone(), old_root, &[&old_key], Role::Root).await?;
            signed_root = signed_root
                .add_old_signatures(by_old.signed().signatures.clone())
                .map_err(|e| Error::Sign {
                    role: Role::Root,
                    reason: e.to_string(),
                })?;
        }
        let mut targets = published.targets.signed.clone();
        targets.version = next(targets.version);
        targets.expires = after(now, self.expiry.targets);
        let signed = self
            .sign_chain(
                &root,
                targets,
                Some(&published.snapshot.signed),
                Some(&published.timestamp.signed),
                &keys,
                now,
            )
            .await?;

        let mut staged = Staged::default();
        let dir = self.published_dir();
        let version = root.version.get();
        staged.bytes(
            &dir.join(format!("{version}.root.json")),
            signed_root.buffer(),
        )?;
        staged.bytes(&self.metadata_path(Role::Root), signed_root.buffer())?;
        staged.bytes(&self.metadata_path(Role::Targets), signed.targets.buffer())?;
        staged.bytes(
            &self.metadata_path(Role::Snapshot),
            signed.snapshot.buffer(),
        )?;
        staged.bytes(
            &self.metadata_path(Role::Timestamp),
            signed.timestamp.buffer(),
        )?;
        staged.key(&keys[&role], &key_path(&self.path, role), &new_passphrase)?;
        staged.commit()?;
        Ok(keys[&role].key_id())
    }

    /// Signs `targets`, then a snapshot naming it and a timestamp naming that, each one
    /// version past the previous (or 1 for a new repository).
    async fn sign_chain(
        &self,
        root: &Root,
        targets: Targets,
        snapshot: Option<&Snapshot>,
        timestamp: Option<&Timestamp>,
        keys: &HashMap<Role, SigningKey>,
        now: jiff::Timestamp,
    ) -> Result<Chain, Error> {
        let targets = sign(targets, root, &[&keys[&Role::Targets]], Role::Targets).await?;
        let mut new_snapshot = Snapshot::new(
            SPEC_VERSION.into(),
            snapshot.map_or(NonZeroU64::MIN, |s| next(s.version)),
            after(now, self.expiry.snapshot),
        );
        new_snapshot.meta.insert(
            "targets.json".into(),
            metafile(targets.buffer(), targets.signed().signed.version),
        );
        let snapshot = sign(
            new_snapshot,
            root,
            &[&keys[&Role::Snapshot]],
            Role::Snapshot,
        )
        .await?;
        let mut new_timestamp = Timestamp::new(
            SPEC_VERSION.into(),
            timestamp.map_or(NonZeroU64::MIN, |t| next(t.version)),
            after(now, self.expiry.timestamp),
        );
        new_timestamp.meta.insert(
            "snapshot.json".into(),
            metafile(snapshot.buffer(), snapshot.signed().signed.version),
        );
        let timestamp = sign(
            new_timestamp,
            root,
            &[&keys[&Role::Timestamp]],
            Role::Timestamp,
        )
        .await?;
        Ok(Chain {
            targets,
            snapshot,
            timestamp,
        })
    }
}

struct Chain {
    targets: SignedRole<Targets>,
    snapshot: SignedRole<Snapshot>,
    timestamp: SignedRole<Timestamp>,
}

async fn sign<T>(
    role: T,
    root: &Root,
    keys: &[&SigningKey],
    which: Role,
) -> Result<SignedRole<T>, Error>
where
    T: tough::schema::Role + Serialize,
{
    let sources: Vec<_> = keys.iter().map(|key| key.source()).collect();
    SignedRole::new(
        role,
        &KeyHolder::Root(root.clone()),
        &sources,
        &SystemRandom::new(),
    )
    .await
    .map_err(|e| Error::Sign {
        role: which,
        reason: e.to_string(),
    })
}

/// Makes `key` the only key of `role` in `root`, dropping a replaced key no role uses.
fn set_role_key(root: &mut Root, role: Role, key: &SigningKey) -> Result<(), Error> {
    let id = key
        .public()
        .key_id()
        .map_err(|e| Error::Crypto(e.to_string()))?;
    let old = root
        .roles
        .insert(
            role.tough(),
            RoleKeys {
                keyids: vec![id.clone()],
                threshold: NonZeroU64::MIN,
                _extra: HashMap::new(),
            },
        )
        .map(|keys| keys.keyids)
        .unwrap_or_default();
    root.keys.insert(id, key.public().clone());
    for old_id in old {
        if !root
            .roles
            .values()
            .any(|keys| keys.keyids.contains(&old_id))
        {
            root.keys.remove(&old_id);
        }
    }
    Ok(())
}

fn check_root(published: &Published) -> Result<(), Error> {
    let expires = published.root.signed.expires;
    if expires <= jiff::Timestamp::now() {
        return Err(Error::RootExpired(expires.to_string()));
    }
    Ok(())
}

/// A name, platform, version or tag: one path component, no separators or dot-names.
fn check_component(what: &str, value: &str) -> Result<(), Error> {
    let ok = !value.is_empty()
        && value != "."
        && value != ".."
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '+'));
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "{what} `{value}` must be letters, digits, `.`, `-`, `_` or `+` (it becomes a path component)"
        )))
    }
}

/// The file name a target is published under, as `fleetctl updates add` names it: the
/// target's name with the source's kind of extension (`orbit.exe`, `osqueryd.app.tar.gz`,
/// `desktop.tar.gz`), and Fleet Desktop on Windows as `fleet-desktop.exe`.
pub fn target_file_name(name: &str, platform: &str, source: &Path) -> String {
    let source = source
        .file_name()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    let windows = platform.starts_with("windows");
    if name == "desktop" && windows {
        return "fleet-desktop.exe".into();
    }
    let extension = [".app.tar.gz", ".tar.gz", ".pkg", ".exe"]
        .into_iter()
        .find(|ext| source.ends_with(ext))
        .unwrap_or(if windows { ".exe" } else { "" });
    format!("{name}{extension}")
}

/// A target file's length and hashes.
struct Hashed {
    length: u64,
    sha256: Vec<u8>,
    sha512: Vec<u8>,
}

impl Hashed {
    fn target(&self, version: &str) -> Target {
        Target {
            length: self.length,
            hashes: hashes(&self.sha256, &self.sha512),
            custom: HashMap::from([("version".to_owned(), Value::from(version))]),
            _extra: HashMap::new(),
        }
    }
}

fn hash_file(path: &Path) -> Result<Hashed, Error> {
    let mut file = std::fs::File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            Error::Invalid(format!("target file {} does not exist", path.display()))
        }
        _ => io(path, e),
    })?;
    if !file.metadata().map_err(|e| io(path, e))?.is_file() {
        return Err(Error::Invalid(format!(
            "target {} is not a file",
            path.display()
        )));
    }
    let (mut sha256, mut sha512) = (Context::new(&SHA256), Context::new(&SHA512));
    let mut buffer = vec![0u8; 1 << 16];
    let mut length = 0u64;
    loop {
        let n = file.read(&mut buffer).map_err(|e| io(path, e))?;
        if n == 0 {
            break;
        }
        sha256.update(&buffer[..n]);
        sha512.update(&buffer[..n]);
        length += n as u64;
    }
    Ok(Hashed {
        length,
        sha256: sha256.finish().as_ref().to_vec(),
        sha512: sha512.finish().as_ref().to_vec(),
    })
}

fn hashes(sha256: &[u8], sha512: &[u8]) -> Hashes {
    Hashes {
        sha256: sha256.to_vec().into(),
        _extra: HashMap::from([("sha512".to_owned(), Value::from(hex::encode(sha512)))]),
    }
}

fn metafile(buffer: &[u8], version: NonZeroU64) -> Metafile {
    let sha256 = aws_lc_rs::digest::digest(&SHA256, buffer);
    let sha512 = aws_lc_rs::digest::digest(&SHA512, buffer);
    Metafile {
        length: Some(buffer.len() as u64),
        hashes: Some(hashes(sha256.as_ref(), sha512.as_ref())),
        version,
        _extra: HashMap::new(),
    }
}

/// Files written beside their destinations and renamed into place in the order they were
/// staged, once all of them are written.
#[derive(Default)]
struct Staged {
    files: Vec<(tempfile::NamedTempFile, PathBuf)>,
}

impl Staged {
    fn temp_beside(path: &Path) -> Result<tempfile::NamedTempFile, Error> {
        let dir = path.parent().expect("a staged path has a directory");
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        tempfile::Builder::new()
            .prefix(".staged-")
            .tempfile_in(dir)
            .map_err(|e| io(dir, e))
    }

    fn bytes(&mut self, path: &Path, bytes: &[u8]) -> Result<(), Error> {
        use std::io::Write;
        let mut file = Self::temp_beside(path)?;
        file.write_all(bytes)
            .and_then(|()| file.as_file().sync_all())
            .map_err(|e| io(file.path(), e))?;
        set_readable(&file)?;
        self.files.push((file, path.to_owned()));
        Ok(())
    }

    fn copy(&mut self, from: &Path, path: &Path) -> Result<(), Error> {
        let mut file = Self::temp_beside(path)?;
        let mut source = std::fs::File::open(from).map_err(|e| io(from, e))?;
        std::io::copy(&mut source, file.as_file_mut()).map_err(|e| io(file.path(), e))?;
        file.as_file().sync_all().map_err(|e| io(file.path(), e))?;
        set_readable(&file)?;
        self.files.push((file, path.to_owned()));
        Ok(())
    }

    fn key(&mut self, key: &SigningKey, path: &Path, passphrase: &str) -> Result<(), Error> {
        let file = Self::temp_beside(path)?;
        let temp = file.path().to_owned();
        // write_encrypted creates its file afresh (mode 0600), so hand it the temp name.
        std::fs::remove_file(&temp).map_err(|e| io(&temp, e))?;
        key.write_encrypted(&temp, passphrase)?;
        self.files.push((file, path.to_owned()));
        Ok(())
    }

    fn commit(self) -> Result<(), Error> {
        let mut dirs: Vec<PathBuf> = Vec::new();
        for (file, path) in self.files {
            file.persist(&path).map_err(|e| io(&path, e.error))?;
            if let Some(dir) = path.parent()
                && !dirs.iter().any(|d| d == dir)
            {
                dirs.push(dir.to_owned());
            }
        }
        // The renames themselves reach the disk only when their directories are synced.
        #[cfg(unix)]
        for dir in dirs {
            std::fs::File::open(&dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| io(&dir, e))?;
        }
        Ok(())
    }
}

/// Published files are read by the server, which may run as another user.
fn set_readable(file: &tempfile::NamedTempFile) -> Result<(), Error> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(file.path(), std::fs::Permissions::from_mode(0o644))
            .map_err(|e| io(file.path(), e))?;
    }
    let _ = file;
    Ok(())
}

fn non_empty(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some())
}

fn io(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.to_owned(),
        source,
    }
}

fn next(version: NonZeroU64) -> NonZeroU64 {
    version.saturating_add(1)
}

fn now() -> jiff::Timestamp {
    jiff::Timestamp::now()
}

/// `duration` after `from`, in whole seconds: strict clients reject fractional expiry times.
fn after(from: jiff::Timestamp, duration: Duration) -> jiff::Timestamp {
    let seconds = from
        .as_second()
        .saturating_add(i64::try_from(duration.as_secs()).unwrap_or(i64::MAX));
    jiff::Timestamp::from_second(seconds.min(jiff::Timestamp::MAX.as_second()))
        .unwrap_or(jiff::Timestamp::MAX)
}
