//! The log pipeline: osquery's result and status logs, from the `log` endpoint to where they
//! are kept or sent.
//!
//! - [`sink`] — `LogSink`: each log kind to its `Destination` (files with rotation, stdout,
//!   webhook, Kafka).
//! - [`spool`] — `SpooledOutput`: the bounded on-disk spool in front of a remote destination,
//!   and the one sender task that hands its batches to a `Delivery`.
//! - [`webhook`], [`kafka`] — the two deliveries.

pub mod kafka;
pub mod sink;
pub mod spool;
pub mod webhook;

pub use sink::LogSink;
