//! Live queries for admins: starting campaigns (`/queries/run`, `run_by_identifiers`), the
//! synchronous forms, and the results websocket.

pub mod routes;
pub mod socket;
pub mod wire;
