//! Durability for Flotilla: implementations of the engine's store traits and of the admin API's
//! [`admin::AdminStore`].
//!
//! - [`SqliteStore`] — the embedded default: one file in the data directory, no service to run.
//! - [`MysqlStore`] — MySQL 8 or MariaDB 10.11, for production and for several nodes sharing
//!   one database.
//! - [`admin`] — the admin API's model types and the `AdminStore` trait.
//! - [`RedisRelay`] — the engine's [`Relay`](flotilla_engine::Relay) for several nodes, over
//!   Redis.
//!
//! Every implementation carries its own migrations (`migrations/<backend>/`), applied at open.
//! What a row means is shared (`rows.rs`), as are error mapping and parameter helpers
//! (`common.rs`); each backend keeps its own SQL.

pub mod admin;
mod common;
mod mysql_admin;
mod mysql_campaigns;
mod mysql_store;
mod redis_relay;
pub mod relay_codec;
mod rows;
mod sqlite_admin;
mod sqlite_campaigns;
mod sqlite_store;

pub use mysql_store::{MysqlOptions, MysqlStore};
pub use redis_relay::RedisRelay;
pub use sqlite_store::SqliteStore;
