//! Orbit's enrollment and Fleet Desktop's device tokens: the agent-side writes of the
//! [`HostStore`](flotilla_engine::store::HostStore), written once for both databases.
//!
//! orbit enrolls before the osqueryd it starts, so its enrollment may create the host row;
//! osqueryd's enrollment later finds the same row by identifier (`osquery_host_id`) and gives
//! it a node key. Either order, and re-enrolling either agent, leaves one row per machine.

use flotilla_engine::ids::{HostId, NodeKey};
use flotilla_engine::store::{DeviceAuth, DeviceTokenWrite, EnrolledHost, OrbitEnrollment};

use super::select_stored_host;
use crate::common::is_unique_violation;
use crate::rows::ModelRow;
use crate::sql::{Db, Tx, query, sql};

/// The host this orbit enrollment is for, locked until the transaction ends: by identifier;
/// else, when orbit sent no `osquery_identifier` of its own, by hardware UUID (a host osqueryd
/// enrolled under another identifier, such as its hostname, is still the same machine).
async fn find(
    tx: &mut Tx,
    e: &OrbitEnrollment,
) -> Result<Option<(u64, Option<String>)>, sqlx::Error> {
    let d = tx.dialect();
    let by_identifier = query(sql!(
        d,
        "SELECT id, orbit_node_key FROM hosts WHERE osquery_host_id = ?",
        FOR_UPDATE
    ))
    .bind(d.fit(&e.identifier))
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(row) = by_identifier {
        return Ok(Some((row.id("id")?, row.opt_text("orbit_node_key")?)));
    }
    if e.identifier != e.hardware_uuid {
        return Ok(None);
    }
    let by_uuid = query(sql!(
        d,
        "SELECT id, orbit_node_key FROM hosts WHERE uuid = ? \
         ORDER BY last_enrolled_at DESC LIMIT 1",
        FOR_UPDATE
    ))
    .bind(d.fit(&e.hardware_uuid))
    .fetch_optional(&mut *tx)
    .await?;
    match by_uuid {
        Some(row) => Ok(Some((row.id("id")?, row.opt_text("orbit_node_key")?))),
        None => Ok(None),
    }
}

/// One orbit enrollment's statements, inside the caller's write transaction (the enroller's,
/// `enroll.rs`, which writes osqueryd's and orbit's enrollments alike).
pub(super) async fn enroll_in(
    tx: &mut Tx,
    e: &OrbitEnrollment,
) -> Result<EnrolledHost, sqlx::Error> {
    let d = tx.dialect();
    let (id, previous, created) = match find(tx, e).await? {
        Some((id, previous)) => {
            if previous.is_some() {
                tracing::info!(
                    identifier = %e.identifier,
                    "orbit re-enrolled a host that already had an orbit key; the old key stops working"
                );
            }
            // What osquery reported wins: orbit's values only fill columns still empty.
            query(
                "UPDATE hosts SET orbit_node_key = ?, team_id = ?, \
                 uuid = COALESCE(NULLIF(uuid, ''), ?), \
                 hardware_serial = COALESCE(NULLIF(hardware_serial, ''), ?), \
                 hostname = COALESCE(NULLIF(hostname, ''), ?), \
                 computer_name = COALESCE(NULLIF(computer_name, ''), ?), \
                 hardware_model = COALESCE(NULLIF(hardware_model, ''), ?), \
                 platform = COALESCE(NULLIF(platform, ''), ?), \
                 platform_like = COALESCE(NULLIF(platform_like, ''), ?), \
                 updated_at = ? WHERE id = ?",
            )
            .bind(e.orbit_node_key.as_str())
            .bind(e.team)
            .bind(d.fit(&e.hardware_uuid))
            .bind(d.fit(&e.hardware_serial))
            .bind(d.fit(&e.hostname))
            .bind(d.fit(&e.computer_name))
            .bind(d.fit(&e.hardware_model))
            .bind(d.fit(&e.platform))
            .bind(d.fit(&e.platform_like))
            .bind(e.now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            (id, previous, false)
        }
        None => {
            let inserted = query(
                "INSERT INTO hosts (osquery_host_id, orbit_node_key, uuid, hardware_serial, \
                 hostname, computer_name, hardware_model, platform, platform_like, team_id, \
                 seen_time, refetch_requested, created_at, last_enrolled_at, updated_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 1, ?, ?, ?)",
            )
            .bind(d.fit(&e.identifier))
            .bind(e.orbit_node_key.as_str())
            .bind(d.fit(&e.hardware_uuid))
            .bind(d.fit(&e.hardware_serial))
            .bind(d.fit(&e.hostname))
            .bind(d.fit(&e.computer_name))
            .bind(d.fit(&e.hardware_model))
            .bind(d.fit(&e.platform))
            .bind(d.fit(&e.platform_like))
            .bind(e.team)
            .bind(e.now)
            .bind(e.now)
            .bind(e.now)
            .execute(&mut *tx)
            .await?;
            (inserted.last_insert_id, None, true)
        }
    };
    let row = query(concat!(select_stored_host!(), " WHERE hosts.id = ?"))
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
    Ok(EnrolledHost {
        host: crate::rows::stored_host(&row)?,
        previous_node_key: previous.as_deref().and_then(NodeKey::new),
        created,
    })
}

/// Sets a host's device token; see
/// [`HostStore::set_device_token`](flotilla_engine::store::HostStore::set_device_token).
pub(super) async fn set_device_token(
    db: &Db,
    host: HostId,
    token: &str,
    now: i64,
) -> Result<DeviceTokenWrite, sqlx::Error> {
    let d = db.dialect();
    // The hot writers' gate, as enrollment: SQLite's busy handler waits by sleeping.
    let mut tx = db.begin_hot().await?;
    let current = query(sql!(
        d,
        "SELECT token, previous_token, updated_at FROM host_device_auth WHERE host_id = ?",
        FOR_UPDATE
    ))
    .bind(host)
    .fetch_optional(&mut tx)
    .await?;
    let current = match current {
        Some(row) => Some(DeviceAuth {
            token: row.text("token")?,
            previous: row.opt_text("previous_token")?,
            updated_at: row.int("updated_at")?,
        }),
        None => None,
    };
    if let Some(current) = current.as_ref().filter(|c| c.token == token) {
        return Ok(DeviceTokenWrite::Set(current.clone()));
    }
    let written = match &current {
        Some(current) => {
            query(
                "UPDATE host_device_auth SET token = ?, previous_token = ?, updated_at = ? \
                 WHERE host_id = ?",
            )
            .bind(token)
            .bind(current.token.as_str())
            .bind(now)
            .bind(host)
            .execute(&mut tx)
            .await
        }
        None => {
            query(
                "INSERT INTO host_device_auth (host_id, token, previous_token, created_at, \
                 updated_at) VALUES (?, ?, NULL, ?, ?)",
            )
            .bind(host)
            .bind(token)
            .bind(now)
            .bind(now)
            .execute(&mut tx)
            .await
        }
    };
    match written {
        Err(error) if is_unique_violation(&error) => return Ok(DeviceTokenWrite::Conflict),
        Err(error) => return Err(error),
        Ok(_) => {}
    }
    tx.commit().await?;
    Ok(DeviceTokenWrite::Set(DeviceAuth {
        token: token.to_owned(),
        previous: current.map(|c| c.token),
        updated_at: now,
    }))
}

/// Records the end-user email orbit reports, as Fleet's `custom` source.
pub(super) async fn set_device_mapping(
    db: &Db,
    host: HostId,
    email: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    let d = db.dialect();
    query(sql!(
        d,
        "INSERT INTO host_emails (host_id, source, email, updated_at) VALUES (?, 'custom', ?, ?) ",
        UPSERT("host_id, source"),
        " email = ",
        EXCLUDED(email),
        ", updated_at = ",
        EXCLUDED(updated_at)
    ))
    .bind(host)
    .bind(d.fit(email))
    .bind(now)
    .execute(db)
    .await?;
    Ok(())
}
