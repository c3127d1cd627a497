//! Durability for Flotilla: implementations of the engine's store traits and of the admin API's
//! [`admin::AdminStore`].
//!
//! - [`SqliteStore`] — the embedded default: one file in the data directory, no service to run.
//! - [`admin`] — the admin API's model types and the `AdminStore` trait.
//! - [`RedisRelay`] — the engine's [`Relay`](flotilla_engine::Relay) for several nodes, over
//!   Redis.
//!
//! Every implementation carries its own migrations (`migrations/<backend>/`), applied at open.

pub mod admin;
mod redis_relay;
pub mod relay_codec;
mod sqlite_admin;
mod sqlite_campaigns;
mod sqlite_store;

pub use redis_relay::RedisRelay;
pub use sqlite_store::SqliteStore;
