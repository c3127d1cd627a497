//! Node keys are stored as their digests ([`NodeKey::digest`]); a database written before that
//! holds the keys themselves, which [`hash_legacy_keys`] replaces once, at open.

use flotilla_engine::ids::{DIGEST_PREFIX, NodeKey};
use flotilla_engine::store::StoreError;

use super::unavailable;
use crate::rows::ModelRow;
use crate::sql::{Db, query};

/// The digest to store for a stored value: itself when it is one already.
fn digest_of(stored: Option<String>) -> Option<String> {
    stored.map(|value| match NodeKey::new(&value) {
        Some(key) if !key.is_digest() => key.digest().as_str().to_owned(),
        _ => value,
    })
}

/// Replaces every osquery and orbit node key stored in plain text by its digest, in one
/// transaction; returns how many hosts were rewritten. Agents keep their keys: what they
/// present is hashed before it is looked up.
pub(crate) async fn hash_legacy_keys(db: &Db) -> Result<u64, StoreError> {
    let legacy = query(format!(
        "SELECT id, node_key, orbit_node_key FROM hosts \
         WHERE (node_key IS NOT NULL AND node_key NOT LIKE '{DIGEST_PREFIX}%') \
         OR (orbit_node_key IS NOT NULL AND orbit_node_key NOT LIKE '{DIGEST_PREFIX}%')"
    ))
    .fetch_all(db)
    .await
    .map_err(unavailable)?;
    if legacy.is_empty() {
        return Ok(0);
    }
    let mut tx = db.begin().await.map_err(unavailable)?;
    for row in &legacy {
        query("UPDATE hosts SET node_key = ?, orbit_node_key = ? WHERE id = ?")
            .bind(digest_of(row.opt_text("node_key").map_err(unavailable)?))
            .bind(digest_of(
                row.opt_text("orbit_node_key").map_err(unavailable)?,
            ))
            .bind(row.id("id").map_err(unavailable)?)
            .execute(&mut tx)
            .await
            .map_err(unavailable)?;
    }
    tx.commit().await.map_err(unavailable)?;
    Ok(legacy.len() as u64)
}
