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
    use tracing_subscriber::filter::{LevelFilter, filter_fn};
    use tracing_subscriber::prelude::*;

    let mut filter = EnvFilter::try_new(level)
        .map_err(|e| anyhow::anyhow!("invalid --log-level `{level}`: {e}"))?;
    // The websocket library logs whole frames at debug and trace, session tokens among them
    // (the results socket's `auth` message): it stays at info whatever the level asked for.
    let mut quiet = vec![
        "tungstenite=info".to_owned(),
        "tokio_tungstenite=info".to_owned(),
    ];
    // rustls warns of every client that names the server by an IP address (one line per
    // connection): counted in a metric, and shown only when debug logging is on.
    if filter
        .max_level_hint()
        .is_none_or(|max| max < LevelFilter::DEBUG)
    {
        quiet.push(format!("{}=error", flotilla_api::tls::SNI_WARNING_TARGET));
    }
    for directive in quiet {
        filter = filter.add_directive(directive.parse().expect("a valid directive"));
    }
    let sni = flotilla_api::tls::IllegalSniCounter.with_filter(
        filter_fn(flotilla_api::tls::IllegalSniCounter::wants)
            .with_max_level_hint(LevelFilter::WARN),
    );
    let text = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let registry = tracing_subscriber::registry().with(sni);
    match format {
        LogFormat::Text => registry.with(text.with_filter(filter)).try_init()?,
        LogFormat::Json => registry
            .with(text.json().flatten_event(true).with_filter(filter))
            .try_init()?,
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
