//! The admin's command line: `flotilla login`, `logout`, `setup`, `query`, `get`, `apply`,
//! `delete`, `user` and `completion`, against a Flotilla server (or a Fleet server, where the API
//! matches) through its admin REST API and results websocket.
//!
//! - [`config`] — the config file of named contexts (address, token, CA), mode 0600.
//! - [`http`] — `Api`: TLS from the context, bearer token, Fleet's errors as one line.
//! - [`session`] — login, logout, setup.
//! - [`query`] — live queries: start a campaign, stream its results over the websocket.
//! - [`get`] — lists and single objects as tables, JSON or YAML.
//! - [`specs`] — fleetctl's YAML spec documents; [`apply`] sends them (apply and delete).
//! - [`user`] — creating users, API-only ones (with their token) included.
//! - [`output`] — tables, CSV, JSON and YAML rendering.
//!
//! Every failure ends as one line on standard error, `Error: …`, and exit code 1 (130 when
//! a live query is interrupted by Ctrl-C).

pub mod apply;
pub mod config;
pub mod get;
pub mod http;
pub mod output;
pub mod query;
pub mod session;
pub mod specs;
pub mod user;

use clap::{Args, Subcommand};

use config::ConfigArgs;

/// The client subcommands, flattened into the binary's `Command`.
#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Log in to a server; the session token is kept in the config file.
    Login {
        #[command(flatten)]
        config: ConfigArgs,
        #[command(flatten)]
        args: session::LoginArgs,
    },
    /// End the session on the server and forget its token.
    Logout {
        #[command(flatten)]
        config: ConfigArgs,
        #[command(flatten)]
        args: session::LogoutArgs,
    },
    /// Create the first admin on a fresh server (no users yet) and log in as them.
    Setup {
        #[command(flatten)]
        config: ConfigArgs,
        #[command(flatten)]
        args: session::SetupArgs,
    },
    /// Run a live query on hosts, labels or teams and print the results as they arrive.
    Query {
        #[command(flatten)]
        config: ConfigArgs,
        #[command(flatten)]
        args: query::QueryArgs,
    },
    /// Show hosts, labels, queries, teams, users, activities or the server's config.
    Get {
        #[command(flatten)]
        config: ConfigArgs,
        #[command(flatten)]
        args: get::GetArgs,
    },
    /// Apply fleetctl-style YAML specs (queries, labels, teams, config, enroll secrets).
    Apply {
        #[command(flatten)]
        config: ConfigArgs,
        #[command(flatten)]
        args: apply::ApplyArgs,
    },
    /// Delete what fleetctl-style YAML specs name (queries, labels, teams).
    Delete {
        #[command(flatten)]
        config: ConfigArgs,
        #[command(flatten)]
        args: apply::DeleteArgs,
    },
    /// Create users, API-only users (for scripts and dashboards, with a token) included.
    User {
        #[command(flatten)]
        config: ConfigArgs,
        #[command(flatten)]
        args: user::UserArgs,
    },
    /// Print a shell completion script: `source <(flotilla completion bash)`.
    Completion(CompletionArgs),
}

#[derive(Args, Debug)]
pub struct CompletionArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// How a client command ended, as the process's exit code.
pub enum Outcome {
    Done,
    /// Ctrl-C stopped it.
    Interrupted,
}

/// Runs a client command; prints any error as one line and returns the exit code. `program`
/// is the whole `flotilla` command line, which `completion` writes completions for.
pub async fn run(command: ClientCommand, program: clap::Command) -> i32 {
    http::install_crypto_provider();
    let outcome = match command {
        ClientCommand::Login { config, args } => session::login(&config, args).await.map(done),
        ClientCommand::Logout { config, args } => session::logout(&config, args).await.map(done),
        ClientCommand::Setup { config, args } => session::setup(&config, args).await.map(done),
        ClientCommand::Query { config, args } => query::run(&config, args).await,
        ClientCommand::Get { config, args } => get::run(&config, args).await.map(done),
        ClientCommand::Apply { config, args } => apply::apply(&config, args).await.map(done),
        ClientCommand::Delete { config, args } => apply::delete(&config, args).await.map(done),
        ClientCommand::User { config, args } => user::run(&config, args).await.map(done),
        ClientCommand::Completion(args) => {
            completion(args.shell, program);
            Ok(Outcome::Done)
        }
    };
    match outcome {
        Ok(Outcome::Done) => 0,
        Ok(Outcome::Interrupted) => 130,
        Err(error) => {
            // `{:#}` puts the whole chain on one line: "context: cause: cause".
            eprintln!("Error: {}", format!("{error:#}").replace('\n', " "));
            1
        }
    }
}

fn done(_: ()) -> Outcome {
    Outcome::Done
}

/// Completions for `program`, the whole `flotilla` command line (the client is part of it).
fn completion(shell: clap_complete::Shell, mut program: clap::Command) {
    clap_complete::generate(shell, &mut program, "flotilla", &mut std::io::stdout());
}

/// The API of the context's server with its session, or an error saying to log in.
pub(crate) fn logged_in(config: &ConfigArgs) -> anyhow::Result<http::Api> {
    let path = config.path()?;
    let file = config::ConfigFile::load(&path)?;
    let context = file.context(&config.context)?;
    if context.token.is_empty() {
        anyhow::bail!(
            "not logged in to {}; run `flotilla login{}` first",
            context.address,
            config::context_flag(&config.context)
        );
    }
    http::Api::for_context(context)
}
