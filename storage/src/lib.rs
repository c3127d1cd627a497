//! Durability for Flotilla: implementations of the engine's store traits.
//!
//! - [`SqliteStore`] — the embedded default: one file in the data directory, no service to run.
//!
//! Every implementation carries its own migrations (`migrations/<backend>/`), applied at open.

mod sqlite_campaigns;
mod sqlite_store;

pub use sqlite_store::SqliteStore;
