//! Simulated osquery agents for Flotilla's tests and load tests.
//!
//! A [`SimAgent`] behaves like one osqueryd 5.23 host talking to a TLS remote server: the same
//! request bodies and headers, the same reading of responses (HTTP status ignored, empty body =
//! success, `node_invalid: true` → delete the node key and re-enroll), the same retry schedules,
//! one keep-alive connection per osquery thread, and osqueryd's start-up order and loops.
//!
//! # Map of the crate
//!
//! | Module | Contents |
//! |---|---|
//! | [`agent`] | [`SimAgent`], [`AgentConfig`], [`CycleReport`], [`CarveReport`], [`AgentThread`] — transport, enrollment, config, distributed, logger, carver, and the [`SimAgent::run`] loop |
//! | [`response`] | osquery's response rules as pure functions ([`interpret_response`], [`parse_enroll_response`], carve checks) |
//! | [`retry`] | [`RetryPolicy`] / [`RetryPolicies`]: attempt counts and squared back-off with a scalable time base |
//! | [`read`] | [`ReadResponse`] (parsed `distributed/read`) and the discovery rule ([`AcceptedWork`]) |
//! | [`write`](mod@write) | [`WriteBody`]: `queries` / `statuses` / `messages` / `stats` of `distributed/write` |
//! | [`answer`] | [`QueryAnswerer`], the seam deciding what queries return; [`QueryAnswer`], [`QueryStats`], [`AnswerContext`] |
//! | [`template`] | [`OsTemplate`] (Ubuntu, macOS, Windows, Rocky Linux): enrollment `host_details` and detail-table rows |
//! | [`template_answerer`] | [`TemplateAnswerer`]: answers detail/label/decorator queries from the template, software queries from [`software`], live queries per [`LiveQueryProfile`] |
//! | [`software`] | Fleet's software detail queries: per-OS package pools ([`software::pool`]), each host's packages, known-vulnerable versions, and the OSV/KEV/EPSS fixture writer ([`software::fixture`]) |
//! | [`host`] | [`HostProfile`]: per-host identity (UUIDs, serials, addresses) derived from the host identifier |
//! | [`sql`] | the small SQL subset the template answerer evaluates ([`sql::SelectQuery`], [`Row`]) |
//! | [`logger`] | [`LogType`], status-line builder; the buffered log quota and back-off used by `run` |
//! | `schedule` (private) | config options, scheduled queries, decorators and result-line formats |
//! | [`intervals`] | [`Intervals`]: timing flags of a running agent |
//! | [`endpoints`] | [`Endpoint`], [`EndpointPaths`] (`/api/v1/osquery/...` or `/api/osquery/...`) |
//! | [`stats`] | [`AgentCounters`] (live atomics, optional hdrhistogram latencies), [`AgentStats`] / [`EndpointStats`] (snapshots, mergeable), [`Percentiles`] |
//! | [`fanout`] | the fan-out scenario: admin login, live query over the results websocket, [`fanout::SendTimes`] / [`fanout::CampaignTracker`] timing |
//! | [`fleetd`] | [`fleetd::SimFleetd`]: orbit and Fleet Desktop of one host (enroll, config, ping, device token rotation, Desktop's summary) |
//! | [`clock`] | `calendarTime` formatting and [`parse_duration`] for `10s`, `5m`, `500ms` |
//! | [`error`] | [`AgentError`] |
//!
//! The binary `flotilla-loadtest` (in `src/main.rs`) runs many agents against a server.
//!
//! Behaviour follows `/work/shared/reference/osquery-agent.md` (section numbers in the docs
//! refer to it).
//!
//! # Example
//!
//! ```no_run
//! use flotilla_loadtest::{AgentConfig, Intervals, LiveQueryProfile, OsTemplate, SimAgent, TemplateAnswerer};
//! # async fn demo() -> Result<(), flotilla_loadtest::AgentError> {
//! let cfg = AgentConfig::new("https://localhost:8443", "secret", "host-1", OsTemplate::Ubuntu);
//! let mut agent = SimAgent::new(cfg)?;
//! agent.enroll().await?;
//! let answerer = TemplateAnswerer::new(agent.profile().clone(), LiveQueryProfile::default());
//! let report = agent.run_distributed_cycle(&answerer).await;
//! println!("answered {:?}", report.answered);
//! # Ok(()) }
//! ```

pub mod agent;
pub mod answer;
pub mod clock;
pub mod endpoints;
pub mod error;
pub mod fanout;
pub mod fleetd;
pub mod host;
pub mod intervals;
pub mod logger;
pub mod read;
pub mod response;
pub mod retry;
mod schedule;
pub mod software;
pub mod sql;
pub mod stats;
pub mod template;
pub mod template_answerer;
pub mod write;

#[cfg(test)]
mod agent_tests;
#[cfg(test)]
mod test_server;

pub use agent::{
    AgentConfig, AgentThread, CarveReport, ConnectionPool, CycleReport, DEFAULT_OSQUERY_VERSION,
    REQUEST_TIMEOUT, SimAgent, WriteHook, install_crypto_provider, tls_client_config,
};
pub use answer::{AnswerContext, QueryAnswer, QueryAnswerer, QueryKind, QueryStats};
pub use clock::parse_duration;
pub use endpoints::{Endpoint, EndpointPaths};
pub use error::AgentError;
pub use host::HostProfile;
pub use intervals::Intervals;
pub use logger::LogType;
pub use read::{AcceptedWork, ReadResponse};
pub use response::{interpret_response, parse_enroll_response};
pub use retry::{RetryPolicies, RetryPolicy};
pub use software::{Software, SoftwareOptions};
pub use sql::Row;
pub use stats::{AgentCounters, AgentStats, EndpointStats, Percentiles};
pub use template::OsTemplate;
pub use template_answerer::{LiveQueryProfile, TemplateAnswerer};
pub use write::WriteBody;
