//! The client's config file: named contexts, each a server address, the session token and how
//! to trust the server's certificate. Laid out like fleetctl's `~/.fleet/config`:
//!
//! ```yaml
//! contexts:
//!   default:
//!     address: https://localhost:8080
//!     email: admin@example.com
//!     token: 6x8kGc…
//!     rootca: /home/me/flotilla-data/tls/ca.pem
//!     tls-skip-verify: false
//! ```
//!
//! The file holds a bearer token, so it is written with mode 0600 (in a 0700 directory when
//! it creates one), through a temporary file renamed into place so a crash never leaves half a
//! config behind.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::Args;
use serde::{Deserialize, Serialize};

/// Where the config file is and which context of it to use; every client subcommand takes these.
#[derive(Args, Debug, Clone)]
pub struct ConfigArgs {
    /// Config file [default: $XDG_CONFIG_HOME/flotilla/config.yml, i.e. ~/.config/flotilla/config.yml].
    #[arg(long, env = "FLOTILLA_CONFIG", global = true)]
    pub config: Option<PathBuf>,

    /// Named context in the config file: one server and session per context.
    #[arg(
        long,
        env = "FLOTILLA_CONTEXT",
        default_value = "default",
        global = true
    )]
    pub context: String,
}

impl ConfigArgs {
    pub fn path(&self) -> anyhow::Result<PathBuf> {
        if let Some(path) = &self.config {
            return Ok(path.clone());
        }
        let Some(dir) = dirs::config_dir() else {
            bail!("cannot tell where the user's config directory is; pass --config PATH");
        };
        Ok(dir.join("flotilla").join("config.yml"))
    }
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigFile {
    #[serde(default)]
    pub contexts: BTreeMap<String, Context>,
}

/// One server and the session on it.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Context {
    /// `https://host:port` of the server.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub address: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub email: String,
    /// The session token from login; empty after logout.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub token: String,
    /// PEM file of the CA to trust for this server instead of the system's roots.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub rootca: String,
    /// Accept any certificate (development only).
    #[serde(default, rename = "tls-skip-verify")]
    pub tls_skip_verify: bool,
}

impl ConfigFile {
    /// Reads the file; a missing file is an empty config.
    pub fn load(path: &Path) -> anyhow::Result<ConfigFile> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ConfigFile::default()),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        if text.trim().is_empty() {
            return Ok(ConfigFile::default());
        }
        serde_saphyr::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{} is not a valid config file: {e}", path.display()))
    }

    /// Writes the file with mode 0600, atomically.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let text = serde_saphyr::to_string(self)
            .map_err(|e| anyhow::anyhow!("encoding the config file: {e}"))?;
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !dir.exists() {
            create_private_dir(&dir)
                .with_context(|| format!("creating the directory {}", dir.display()))?;
        }
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "config.yml".into());
        let temporary = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut file = private_file(&temporary)?;
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&temporary, path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&temporary);
            anyhow::anyhow!("writing {}: {e}", path.display())
        })
    }

    /// The named context, or a clear error saying how to create it.
    pub fn context(&self, name: &str) -> anyhow::Result<&Context> {
        match self.contexts.get(name) {
            Some(context) if !context.address.is_empty() => Ok(context),
            _ => bail!(
                "no server configured for context `{name}`; run `flotilla login --address https://HOST:PORT --email EMAIL{}` first",
                context_flag(name)
            ),
        }
    }
}

/// ` --context NAME` when the context is not the default one, for messages.
pub fn context_flag(name: &str) -> String {
    if name == "default" {
        String::new()
    } else {
        format!(" --context {name}")
    }
}

#[cfg(unix)]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contexts_round_trip_and_the_file_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/config.yml");
        let mut config = ConfigFile::load(&path).unwrap();
        assert!(
            config.contexts.is_empty(),
            "a missing file is an empty config"
        );
        config.contexts.insert(
            "default".into(),
            Context {
                address: "https://localhost:8080".into(),
                email: "admin@example.com".into(),
                token: "secret-token".into(),
                rootca: "/tmp/ca.pem".into(),
                tls_skip_verify: false,
            },
        );
        config.contexts.insert(
            "staging".into(),
            Context {
                address: "https://staging:8080".into(),
                tls_skip_verify: true,
                ..Context::default()
            },
        );
        config.save(&path).unwrap();
        assert_eq!(ConfigFile::load(&path).unwrap(), config);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("tls-skip-verify: true"), "{text}");
        assert!(config.context("nowhere").is_err());
        assert_eq!(
            config.context("staging").unwrap().address,
            "https://staging:8080"
        );
    }

    #[test]
    fn fleetctl_style_files_are_read() {
        let config: ConfigFile = serde_saphyr::from_str(
            "contexts:\n  default:\n    address: https://fleet.example:8080\n    email: a@b.c\n    token: abc\n    tls-skip-verify: true\n    url-prefix: \"\"\n",
        )
        .unwrap();
        let context = config.context("default").unwrap();
        assert_eq!(context.token, "abc");
        assert!(context.tls_skip_verify);
    }

    #[test]
    fn a_broken_file_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yml");
        std::fs::write(&path, "contexts: [not, a, map").unwrap();
        let error = ConfigFile::load(&path).unwrap_err().to_string();
        assert!(error.contains("config.yml"), "{error}");
    }
}
