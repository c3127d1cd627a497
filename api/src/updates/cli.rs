//! `flotilla updates`: the release owner's commands for the agents' TUF repository, after
//! `fleetctl updates` (init, roots, add, list, timestamp, rotate).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use flotilla_updates::{Error, Passphrases, Repository, Role, SigningKey, TargetFile};

use crate::units::parse_duration;

#[derive(Args, Debug)]
pub struct UpdatesArgs {
    #[command(subcommand)]
    pub command: UpdatesCommand,
}

/// The repository directory every subcommand works on.
#[derive(Args, Debug, Clone)]
pub struct RepoPath {
    /// The repository directory: keys/ (encrypted), repository/ (what is served).
    #[arg(long, env = "FLOTILLA_TUF_PATH", default_value = ".")]
    pub path: PathBuf,
}

#[derive(Subcommand, Debug)]
pub enum UpdatesCommand {
    /// Create a repository: one Ed25519 key per role (root, targets, snapshot, timestamp),
    /// each encrypted with its passphrase, and empty signed metadata. Refuses a directory
    /// that already holds one.
    Init {
        #[command(flatten)]
        repo: RepoPath,
    },
    /// Print the root keys to embed in agents (orbit's --update-roots); --signed prints the
    /// newest signed root.json instead, which newer orbit and any TUF client start from.
    Roots {
        #[command(flatten)]
        repo: RepoPath,
        #[arg(long)]
        signed: bool,
    },
    /// Publish a file as NAME/PLATFORM/VERSION/FILE and at each tag (channel); re-signs
    /// targets, snapshot and timestamp.
    Add {
        #[command(flatten)]
        repo: RepoPath,
        /// The file to publish (an orbit, osqueryd or Fleet Desktop build).
        #[arg(long)]
        target: PathBuf,
        /// The target's name: orbit, osqueryd, desktop, or an extension's.
        #[arg(long)]
        name: String,
        /// macos, macos-app, linux, linux-arm64, windows, windows-arm64.
        #[arg(long)]
        platform: String,
        /// The version, recorded as the target's custom `version`.
        #[arg(long)]
        version: String,
        /// A channel to publish it on as well (stable, edge, 1.38, …); repeatable.
        #[arg(short = 't', long = "tag")]
        tags: Vec<String>,
    },
    /// List the published targets: channel, version, size.
    List {
        #[command(flatten)]
        repo: RepoPath,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Re-sign timestamp.json (it expires 14 days after signing: run this, or give the
    /// server --tuf-timestamp-key, well within that).
    Timestamp {
        #[command(flatten)]
        repo: RepoPath,
        /// How long the new signature lasts.
        #[arg(long, value_parser = parse_duration, default_value = "14d")]
        expires_in: Duration,
    },
    /// Replace a role's key (root, targets, snapshot or timestamp) with a new one; root is
    /// re-signed and chained, so agents that trust the old root follow it.
    Rotate {
        #[command(flatten)]
        repo: RepoPath,
        role: Role,
    },
}

/// Passphrases from `FLOTILLA_<ROLE>_PASSPHRASE`, else typed at the terminal.
pub struct EnvOrPrompt;

impl Passphrases for EnvOrPrompt {
    fn passphrase(&self, role: Role, new: bool) -> Result<String, Error> {
        if let Ok(value) = std::env::var(role.passphrase_variable()) {
            return Ok(value);
        }
        if !std::io::stdin().is_terminal() {
            return Err(Error::NoPassphrase { role });
        }
        let prompt = |text: String| {
            rpassword::prompt_password(text).map_err(|_| Error::NoPassphrase { role })
        };
        if !new {
            return prompt(format!("Passphrase for the {role} key: "));
        }
        let first = prompt(format!("New passphrase for the {role} key: "))?;
        let again = prompt(format!("New passphrase for the {role} key, again: "))?;
        if first != again {
            return Err(Error::PassphraseMismatch(role));
        }
        Ok(first)
    }
}

/// Passphrases from the environment only: the server has no terminal to ask at.
pub struct EnvOnly;

impl Passphrases for EnvOnly {
    fn passphrase(&self, role: Role, _new: bool) -> Result<String, Error> {
        std::env::var(role.passphrase_variable()).map_err(|_| Error::NoPassphrase { role })
    }
}

pub async fn run(args: UpdatesArgs) -> i32 {
    match execute(args.command).await {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("Error: {error}");
            1
        }
    }
}

async fn execute(command: UpdatesCommand) -> Result<(), Error> {
    match command {
        UpdatesCommand::Init { repo } => {
            let repository = Repository::new(&repo.path);
            let published = repository.init(&EnvOrPrompt).await?;
            println!(
                "Created a TUF repository in {}: keys in keys/, metadata in repository/ \
                 (timestamp expires {}).",
                repo.path.display(),
                published.timestamp.signed.expires
            );
            println!(
                "Serve it with `flotilla serve --tuf-repo {}`; `flotilla updates roots` prints \
                 the root keys for agents.",
                repo.path.display()
            );
        }
        UpdatesCommand::Roots { repo, signed } => {
            let repository = Repository::new(&repo.path);
            if signed {
                let bytes = repository.signed_root()?;
                print!("{}", String::from_utf8_lossy(&bytes));
            } else {
                let keys = repository.root_keys()?;
                println!("{}", serde_json::to_string(&keys).expect("keys serialize"));
            }
        }
        UpdatesCommand::Add {
            repo,
            target,
            name,
            platform,
            version,
            tags,
        } => {
            let repository = Repository::new(&repo.path);
            let file = TargetFile {
                file: target,
                name,
                platform,
                version,
                tags,
            };
            for path in repository.add(&file, &EnvOrPrompt).await? {
                println!("published {path}");
            }
        }
        UpdatesCommand::List { repo, json } => {
            let rows = Repository::new(&repo.path).list()?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&rows).expect("rows serialize")
                );
            } else {
                let rows = rows.into_iter().map(|row| {
                    let short = row.sha512.get(..16).unwrap_or_default().to_owned();
                    vec![
                        row.target,
                        row.channel,
                        row.version,
                        row.length.to_string(),
                        short,
                    ]
                });
                println!(
                    "{}",
                    crate::client::output::table(
                        &["TARGET", "CHANNEL", "VERSION", "SIZE", "SHA512"],
                        rows
                    )
                );
            }
        }
        UpdatesCommand::Timestamp { repo, expires_in } => {
            let repository = Repository::new(&repo.path);
            let published = repository.load()?;
            let key = repository.unlock_one(&published, Role::Timestamp, &EnvOrPrompt)?;
            let signed = repository.timestamp(&key, Some(expires_in)).await?;
            println!(
                "timestamp.json version {} expires {}",
                signed.version,
                jiff::Timestamp::from_second(signed.expires_unix).unwrap_or_default()
            );
        }
        UpdatesCommand::Rotate { repo, role } => {
            let repository = Repository::new(&repo.path);
            let key_id = repository.rotate(role, &EnvOrPrompt).await?;
            println!("the {role} role now uses key {key_id}; the old key is revoked");
        }
    }
    Ok(())
}

/// Reads the timestamp key the server re-signs with (`--tuf-timestamp-key`), its passphrase
/// from `FLOTILLA_TIMESTAMP_PASSPHRASE`.
pub fn server_timestamp_key(path: &std::path::Path) -> Result<SigningKey, Error> {
    let passphrase = EnvOnly.passphrase(Role::Timestamp, false)?;
    SigningKey::read_encrypted(path, Role::Timestamp, &passphrase)
}
