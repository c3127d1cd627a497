//! Durability for Flotilla: the engine's store traits and the admin API's store traits,
//! implemented once for SQLite and MySQL, and the Redis relay between nodes.
//!
//! - [`SqlStore`] — the one store: an embedded SQLite file ([`SqlStore::open_sqlite`], the
//!   default, no service to run) or a MySQL 8 / MariaDB 10.11 database that several nodes may
//!   share ([`SqlStore::connect_mysql`]). Every statement is written once (`hosts/`,
//!   `campaigns.rs`, `admin/`); what differs between the two databases lives in `sql/`.
//! - [`admin`] — the admin API's model types and its store traits, one per area.
//! - [`RedisRelay`] — the engine's [`Relay`](flotilla_engine::Relay) for several nodes, over
//!   Redis.
//!
//! Each database keeps its own migrations (`migrations/sqlite/`, `migrations/mysql/`),
//! applied at open. What a row means is written once (`rows.rs`).

pub mod admin;
mod campaigns;
pub mod carves;
mod common;
mod hosts;
mod redis_relay;
pub mod relay_codec;
mod rows;
mod sql;
mod store;

pub use redis_relay::RedisRelay;
pub use sql::{MysqlOptions, PoolUsage};
pub use store::SqlStore;
