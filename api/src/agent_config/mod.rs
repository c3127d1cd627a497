//! Agent configuration: what an osquery host pulls, and what its scheduled queries report.
//!
//! - [`configs`] — `AgentConfigs`: the config of each (team, platform), built once per change
//!   from agent options and scheduled queries.
//! - [`options`] — the agent options document: Fleet's defaults and its validation.
//! - [`orbit`] — orbit's config (`POST /api/fleet/orbit/config`), from the same options.
//! - [`reports`] — `Reports`: query reports in memory, flushed to the store.

pub mod configs;
pub mod options;
pub mod orbit;
pub mod reports;

pub use configs::AgentConfigs;
