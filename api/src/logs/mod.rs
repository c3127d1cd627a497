//! The log pipeline: osquery's result and status logs, from the `log` endpoint to where they
//! are kept or sent.
//!
//! - [`sink`] — `LogSink`: each log kind to its `Destination` (files with rotation, stdout,
//!   webhook, Kafka).
//! - [`durable`] — `GroupSync`: the group commit that makes a log request's lines durable
//!   (one `fdatasync` for every request written before it) before osquery is answered.
//! - [`spool`] — `SpooledOutput`: the bounded on-disk spool in front of a remote destination,
//!   and the one sender task that hands its batches to a `Delivery`.
//! - [`webhook`], [`kafka`], [`nats`], [`s3`] — the remote deliveries.

pub mod durable;
pub mod kafka;
pub mod nats;
pub mod s3;
pub mod sink;
pub mod spool;
pub mod webhook;

pub use sink::LogSink;

/// `url` fit for a log line: a user name, password or token in its userinfo becomes `***`,
/// and so does every query value (receivers take tokens there: `?token=…`, `?sig=…`). Text
/// that is not a URL is shown only up to any `@` or `?`.
pub fn redact_url(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        let end = url.find(['@', '?']).unwrap_or(url.len());
        return format!("{}…", &url[..end]);
    };
    if !parsed.username().is_empty() {
        let _ = parsed.set_username("***");
    }
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some("***"));
    }
    if parsed.query().is_some() {
        let names: Vec<String> = parsed
            .query_pairs()
            .map(|(name, _)| name.into_owned())
            .collect();
        let mut query = parsed.query_pairs_mut();
        query.clear();
        for name in names {
            query.append_pair(&name, "***");
        }
    }
    parsed.to_string()
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn urls_in_logs_keep_no_secret() {
        assert_eq!(
            redact_url("https://hook:s3cret@example.com/in?token=abc&x=1"),
            "https://***:***@example.com/in?token=***&x=***"
        );
        assert_eq!(
            redact_url("nats://tok@127.0.0.1:4222"),
            "nats://***@127.0.0.1:4222"
        );
        assert_eq!(
            redact_url("http://127.0.0.1:9/results"),
            "http://127.0.0.1:9/results"
        );
        assert_eq!(redact_url("not a url user:pw@host"), "not a url user:pw…");
    }
}
