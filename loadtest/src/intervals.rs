//! Timing flags of a running agent.

use std::time::Duration;

/// The timing-related osquery flags a simulated agent runs with.
///
/// Defaults are osquery's own. When `honor_server_options` is set, options pushed by the server in
/// the config (`distributed_interval`, `logger_tls_period`, `logger_tls_max_lines`,
/// `logger_tls_compress`, `distributed_tls_max_attempts`) replace these values as they would in
/// osqueryd (reference §6.4); a load test that wants its own cadence turns it off.
#[derive(Debug, Clone, PartialEq)]
pub struct Intervals {
    /// `distributed_interval` (60 s): sleep between distributed cycles.
    pub distributed: Duration,
    /// Sleep between cycles while accelerated (osquery's fixed 5 s).
    pub accelerated: Duration,
    /// `config_refresh` (0 = fetch the config only at start-up).
    pub config_refresh: Duration,
    /// `config_accelerated_refresh` (300 s): refresh interval after a failed refresh.
    pub config_accelerated_refresh: Duration,
    /// `logger_tls_period` (4 s).
    pub logger_period: Duration,
    /// `logger_tls_max_lines` (1024): result + status lines per flush.
    pub logger_max_lines: usize,
    /// `logger_tls_compress` (false): gzip logger bodies.
    pub logger_compress: bool,
    /// `logger_tls_backoff_max` (3600 s).
    pub logger_backoff_max: Duration,
    /// `buffered_log_max` (1,000,000; 0 = unlimited).
    pub buffered_log_max: usize,
    /// Apply interval options pushed by the server in the config.
    pub honor_server_options: bool,
}

impl Default for Intervals {
    fn default() -> Self {
        Intervals {
            distributed: Duration::from_secs(60),
            accelerated: Duration::from_secs(5),
            config_refresh: Duration::ZERO,
            config_accelerated_refresh: Duration::from_secs(300),
            logger_period: Duration::from_secs(4),
            logger_max_lines: 1024,
            logger_compress: false,
            logger_backoff_max: Duration::from_secs(3600),
            buffered_log_max: 1_000_000,
            honor_server_options: true,
        }
    }
}
