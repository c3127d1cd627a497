//! `Row`: one result row as osquery sends it, shared by enrollment, detail queries and vitals.

use std::collections::HashMap;

/// One result row as osquery sends it: column name to string value.
pub type Row = HashMap<String, String>;
