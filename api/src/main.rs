//! `flotilla`: the server (`flotilla serve`) and the admin's command line (`flotilla login`,
//! `query`, `get`, `apply`, …).

use clap::{CommandFactory, Parser};
use flotilla_api::cli::{Cli, Command, LogFormat};
use tracing_subscriber::EnvFilter;

/// mimalloc rather than glibc's malloc: under load the server spent a third of its CPU in
/// glibc's allocator (BENCHMARKS.md, "Whole server").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn init_logging(level: &str, format: LogFormat) -> anyhow::Result<()> {
    let mut filter = EnvFilter::try_new(level)
        .map_err(|e| anyhow::anyhow!("invalid --log-level `{level}`: {e}"))?;
    // The websocket library logs whole frames at debug and trace, session tokens among them
    // (the results socket's `auth` message): it stays at info whatever the level asked for.
    for quiet in ["tungstenite=info", "tokio_tungstenite=info"] {
        filter = filter.add_directive(quiet.parse().expect("a valid directive"));
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // One TLS provider for every crate: ring (rust-stack.md explains why not aws-lc-rs).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let level = args
                .log_level
                .clone()
                .or_else(|| std::env::var("RUST_LOG").ok())
                .unwrap_or_else(|| "info".to_owned());
            init_logging(&level, args.log_format)?;
            flotilla_api::server::run(*args).await
        }
        Command::Updates(args) => std::process::exit(flotilla_api::updates::cli::run(args).await),
        Command::Client(command) => {
            std::process::exit(flotilla_api::client::run(command, Cli::command()).await)
        }
    }
}
