//! Signing keys at rest: one file per role under `<repo>/keys/`, the Ed25519 private key
//! (PKCS#8) sealed with XChaCha20-Poly1305 under a key that scrypt derives from the role's
//! passphrase. The public half and key id are kept in clear, so a wrong passphrase is told
//! apart from a key that does not belong to the repository.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::Ed25519KeyPair;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use tough::key_source::KeySource;
use tough::schema::key::Key;
use tough::sign::Sign;

use crate::{Error, Role};

/// scrypt's cost: 2^15 rounds of 8 blocks, as go-tuf's encrypted keys use; about 0.1 s.
const SCRYPT_LOG_N: u8 = 15;
const SCRYPT_R: u32 = 8;
const SCRYPT_P: u32 = 1;

#[derive(Serialize, Deserialize)]
struct KeyFile {
    role: String,
    keyid: String,
    keytype: String,
    public: String,
    kdf: Kdf,
    cipher: Cipher,
    ciphertext: String,
}

#[derive(Serialize, Deserialize)]
struct Kdf {
    name: String,
    log_n: u8,
    r: u32,
    p: u32,
    salt: String,
}

#[derive(Serialize, Deserialize)]
struct Cipher {
    name: String,
    nonce: String,
}

/// A role's private key, decrypted in memory.
pub struct SigningKey {
    pub role: Role,
    pkcs8: Vec<u8>,
    key: Key,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("role", &self.role)
            .field("keyid", &self.key_id())
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new Ed25519 key for `role`.
    pub fn generate(role: Role) -> Result<Self, Error> {
        let rng = SystemRandom::new();
        let document = Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(|_| Error::Crypto("generating an Ed25519 key".into()))?;
        Self::from_pkcs8(role, document.as_ref().to_vec())
    }

    fn from_pkcs8(role: Role, pkcs8: Vec<u8>) -> Result<Self, Error> {
        let pair = Ed25519KeyPair::from_pkcs8(&pkcs8)
            .map_err(|_| Error::Crypto(format!("the {role} key is not an Ed25519 key")))?;
        let key = pair.tuf_key();
        Ok(Self { role, pkcs8, key })
    }

    /// The public key as TUF metadata names it.
    pub fn public(&self) -> &Key {
        &self.key
    }

    /// The key id: sha256 of the public key's canonical JSON.
    pub fn key_id(&self) -> String {
        self.key
            .key_id()
            .map(|id| hex::encode(id.as_ref()))
            .unwrap_or_default()
    }

    /// tough's signing interface for this key.
    pub fn source(&self) -> Box<dyn KeySource> {
        Box::new(InMemory(self.pkcs8.clone()))
    }

    /// Seals the key with `passphrase` and writes it to `path` (a new file in a staging
    /// directory, moved into place by the caller).
    pub fn write_encrypted(&self, path: &Path, passphrase: &str) -> Result<(), Error> {
        let rng = SystemRandom::new();
        let mut salt = [0u8; 32];
        let mut nonce = [0u8; 24];
        rng.fill(&mut salt)
            .and_then(|()| rng.fill(&mut nonce))
            .map_err(|_| Error::Crypto("reading random bytes".into()))?;
        let cipher = XChaCha20Poly1305::new(&derive(passphrase, &salt, SCRYPT_LOG_N)?.into());
        let ciphertext = cipher
            .encrypt(&XNonce::from(nonce), self.pkcs8.as_slice())
            .map_err(|_| Error::Crypto("sealing the key".into()))?;
        let public = match &self.key {
            Key::Ed25519 { keyval, .. } => hex::encode(keyval.public.as_ref()),
            _ => String::new(),
        };
        let file = KeyFile {
            role: self.role.to_string(),
            keyid: self.key_id(),
            keytype: "ed25519".into(),
            public,
            kdf: Kdf {
                name: "scrypt".into(),
                log_n: SCRYPT_LOG_N,
                r: SCRYPT_R,
                p: SCRYPT_P,
                salt: B64.encode(salt),
            },
            cipher: Cipher {
                name: "xchacha20poly1305".into(),
                nonce: B64.encode(nonce),
            },
            ciphertext: B64.encode(ciphertext),
        };
        let mut bytes = serde_json::to_vec_pretty(&file).expect("a key file serializes");
        bytes.push(b'\n');
        write_private(path, &bytes)
    }

    /// Reads and decrypts the key file at `path`.
    pub fn read_encrypted(path: &Path, role: Role, passphrase: &str) -> Result<Self, Error> {
        let bytes = std::fs::read(path).map_err(|e| Error::Io {
            path: path.to_owned(),
            source: e,
        })?;
        let file: KeyFile = serde_json::from_slice(&bytes).map_err(|e| Error::KeyFile {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        let bad = |reason: &str| Error::KeyFile {
            path: path.to_owned(),
            reason: reason.to_owned(),
        };
        if file.kdf.name != "scrypt" || file.cipher.name != "xchacha20poly1305" {
            return Err(bad(
                "unknown key encryption (expected scrypt and xchacha20poly1305)",
            ));
        }
        if file.kdf.r != SCRYPT_R || file.kdf.p != SCRYPT_P || !(10..=20).contains(&file.kdf.log_n)
        {
            return Err(bad("unexpected scrypt parameters"));
        }
        let salt = B64
            .decode(&file.kdf.salt)
            .map_err(|_| bad("salt is not base64"))?;
        let nonce = B64
            .decode(&file.cipher.nonce)
            .map_err(|_| bad("nonce is not base64"))?;
        let ciphertext = B64
            .decode(&file.ciphertext)
            .map_err(|_| bad("ciphertext is not base64"))?;
        let nonce: [u8; 24] = nonce.try_into().map_err(|_| bad("nonce is not 24 bytes"))?;
        let cipher = XChaCha20Poly1305::new(&derive(passphrase, &salt, file.kdf.log_n)?.into());
        let pkcs8 = cipher
            .decrypt(&XNonce::from(nonce), ciphertext.as_slice())
            .map_err(|_| Error::WrongPassphrase {
                role,
                path: path.to_owned(),
            })?;
        let key = Self::from_pkcs8(role, pkcs8)?;
        if key.key_id() != file.keyid {
            return Err(bad("the key does not match the key id recorded beside it"));
        }
        Ok(key)
    }
}

fn derive(passphrase: &str, salt: &[u8], log_n: u8) -> Result<[u8; 32], Error> {
    let params = scrypt::Params::new(log_n, SCRYPT_R, SCRYPT_P, 32)
        .map_err(|e| Error::Crypto(format!("scrypt parameters: {e}")))?;
    let mut out = [0u8; 32];
    scrypt::scrypt(passphrase.as_bytes(), salt, &params, &mut out)
        .map_err(|e| Error::Crypto(format!("scrypt: {e}")))?;
    Ok(out)
}

/// Writes a file only its owner can read (mode 0600 on Unix).
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    use std::io::Write;
    let io = |e| Error::Io {
        path: path.to_owned(),
        source: e,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)
}

/// The decrypted key handed to tough, which asks for it once per role it signs.
#[derive(Debug)]
struct InMemory(Vec<u8>);

#[async_trait]
impl KeySource for InMemory {
    async fn as_sign(
        &self,
    ) -> Result<Box<dyn Sign>, Box<dyn std::error::Error + Send + Sync + 'static>> {
        Ok(Box::new(tough::sign::parse_keypair(&self.0)?))
    }

    async fn write(
        &self,
        _value: &str,
        _key_id_hex: &str,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync + 'static>> {
        Err("keys are written by flotilla updates, not through tough".into())
    }
}

/// Where a role's key file lives in a repository directory.
pub fn key_path(repo: &Path, role: Role) -> PathBuf {
    repo.join("keys").join(format!("{role}.json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_comes_back_only_with_its_passphrase() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("targets.json");
        let key = SigningKey::generate(Role::Targets).unwrap();
        key.write_encrypted(&path, "correct horse").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(&key.key_id()), "{text}");

        let back = SigningKey::read_encrypted(&path, Role::Targets, "correct horse").unwrap();
        assert_eq!(back.key_id(), key.key_id());
        let wrong = SigningKey::read_encrypted(&path, Role::Targets, "battery staple");
        assert!(
            matches!(wrong, Err(Error::WrongPassphrase { .. })),
            "{wrong:?}"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
