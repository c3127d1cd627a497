//! The batched write of check-in updates, for the engine's `HostWriter`.
//!
//! Last-seen, label and policy times — nearly every update — go in one statement per chunk of
//! hosts, the whole chunk bound as one JSON parameter: one round trip whatever the number of
//! hosts. Times only ever move forward, so two nodes writing the same host in either order
//! leave the newest. Vitals (about one per host per hour), label and policy answers are
//! written host by host in the same transaction. Hosts are written in id order: one lock order for every node writing
//! the same hosts, so flushes never deadlock each other.

use flotilla_engine::ids::HostId;
use flotilla_engine::store::HostUpdate;

use super::software::SoftwareCache;
use super::{bind_vitals, vitals_set};
use crate::sql::{Db, Dialect, Tx, query, sql};

/// Hosts per chunk. SQLite: bounds how long a flush holds the database's one write lock.
/// MySQL: keeps the JSON parameter to a few hundred KB, well under `max_allowed_packet`.
fn chunk_size(d: Dialect) -> usize {
    match d {
        Dialect::Sqlite => 2_000,
        Dialect::Mysql => 5_000,
    }
}

/// Moves last-seen, label and policy times forward, never back, for every host of the JSON
/// array `[{"id":…,"seen":…,"label_at":…,"policy_at":…}, …]` bound as the one parameter. The one statement whose
/// shape differs between the dialects: SQLite's `UPDATE … FROM`, MySQL's `UPDATE … JOIN`.
fn times_statement(d: Dialect) -> &'static str {
    match d {
        Dialect::Sqlite => {
            "UPDATE hosts SET seen_time = MAX(seen_time, COALESCE(t.seen, 0)), \
                 label_updated_at = MAX(label_updated_at, COALESCE(t.label_at, 0)), \
                 policy_updated_at = MAX(policy_updated_at, COALESCE(t.policy_at, 0)) \
             FROM (SELECT json_extract(value, '$.id') AS id, \
                          json_extract(value, '$.seen') AS seen, \
                          json_extract(value, '$.label_at') AS label_at, \
                          json_extract(value, '$.policy_at') AS policy_at \
                   FROM json_each(?)) AS t \
             WHERE hosts.id = t.id"
        }
        Dialect::Mysql => {
            "UPDATE hosts h JOIN JSON_TABLE(?, '$[*]' COLUMNS (\
                 id BIGINT UNSIGNED PATH '$.id', \
                 seen BIGINT PATH '$.seen', \
                 label_at BIGINT PATH '$.label_at', \
                 policy_at BIGINT PATH '$.policy_at')) AS t ON t.id = h.id \
             SET h.seen_time = GREATEST(h.seen_time, COALESCE(t.seen, 0)), \
                 h.label_updated_at = GREATEST(h.label_updated_at, COALESCE(t.label_at, 0)), \
                 h.policy_updated_at = GREATEST(h.policy_updated_at, COALESCE(t.policy_at, 0))"
        }
    }
}

/// A host's times in one flush: last seen, labels answered, policies answered.
type Times = (HostId, Option<i64>, Option<i64>, Option<i64>);

/// `[{"id":…,"seen":…,"label_at":…,"policy_at":…}, …]` for the hosts whose times change, one
/// entry per host with the newest of its times (a join matching a host twice would apply only
/// one of them); `None` if none. `chunk` is in host order.
fn times_json(chunk: &[&(HostId, HostUpdate)]) -> Option<String> {
    let mut entries: Vec<Times> = Vec::new();
    for (host, u) in chunk {
        if u.seen_time.is_none() && u.label_updated_at.is_none() && u.policy_updated_at.is_none() {
            continue;
        }
        match entries.last_mut() {
            Some((last, seen, label_at, policy_at)) if last == host => {
                *seen = (*seen).max(u.seen_time);
                *label_at = (*label_at).max(u.label_updated_at);
                *policy_at = (*policy_at).max(u.policy_updated_at);
            }
            _ => entries.push((*host, u.seen_time, u.label_updated_at, u.policy_updated_at)),
        }
    }
    let entries: Vec<serde_json::Value> = entries
        .into_iter()
        .map(|(host, seen, label_at, policy_at)| {
            let mut entry = serde_json::Map::new();
            entry.insert("id".into(), host.0.into());
            if let Some(seen) = seen {
                entry.insert("seen".into(), seen.into());
            }
            if let Some(at) = label_at {
                entry.insert("label_at".into(), at.into());
            }
            if let Some(at) = policy_at {
                entry.insert("policy_at".into(), at.into());
            }
            serde_json::Value::Object(entry)
        })
        .collect();
    (!entries.is_empty()).then(|| serde_json::Value::Array(entries).to_string())
}

pub(super) async fn flush(
    db: &Db,
    software: &SoftwareCache,
    updates: &[(HostId, HostUpdate)],
) -> Result<(), sqlx::Error> {
    let d = db.dialect();
    let mut sorted: Vec<&(HostId, HostUpdate)> = updates.iter().collect();
    sorted.sort_by_key(|(host, _)| *host);
    for chunk in sorted.chunks(chunk_size(d)) {
        let times = times_json(chunk);
        let has_rows = chunk.iter().any(|(_, u)| {
            // (Software sets are written after the chunks, below.)
            u.vitals.is_some()
                || u.labels.is_some()
                || u.policies.as_ref().is_some_and(|p| !p.is_empty())
        });
        if !has_rows {
            // Times alone: one statement, no transaction needed.
            if let Some(times) = times {
                let _gate = db.hot_gate().await;
                query(times_statement(d)).bind(times).execute(db).await?;
            }
            continue;
        }
        let mut tx = db.begin_hot().await?;
        if let Some(times) = times {
            query(times_statement(d))
                .bind(times)
                .execute(&mut tx)
                .await?;
        }
        for (host, update) in chunk {
            write_rows(&mut tx, *host, update).await?;
        }
        tx.commit().await?;
    }
    // Software sets last, in transactions of their own: they are large, and rare.
    let sets: Vec<_> = sorted
        .iter()
        .filter_map(|(host, u)| {
            u.software
                .as_ref()
                .map(|inventory| (*host, inventory, u.software_updated_at.unwrap_or_default()))
        })
        .collect();
    super::software::write(db, software, &sets).await
}

/// A host's vitals, label and policy answers, if it has any.
async fn write_rows(tx: &mut Tx, host: HostId, update: &HostUpdate) -> Result<(), sqlx::Error> {
    let d = tx.dialect();
    if let Some(vitals) = &update.vitals {
        let set = query(sql!(
            d,
            "UPDATE hosts SET detail_updated_at = COALESCE(?, detail_updated_at), \
             refetch_requested = 0, updated_at = ?, ",
            vitals_set!(),
            " WHERE id = ?"
        ))
        .bind(update.detail_updated_at)
        .bind(update.detail_updated_at.unwrap_or_default());
        bind_vitals(set, vitals, d)
            .bind(host)
            .execute(&mut *tx)
            .await?;
        if let Some(orbit) = &vitals.orbit {
            query(sql!(
                d,
                "INSERT INTO host_orbit_info (host_id, version, desktop_version, \
                 scripts_enabled, updated_at) VALUES (?, ?, ?, ?, ?) ",
                UPSERT("host_id"),
                " version = ",
                EXCLUDED(version),
                ", desktop_version = ",
                EXCLUDED(desktop_version),
                ", scripts_enabled = ",
                EXCLUDED(scripts_enabled),
                ", updated_at = ",
                EXCLUDED(updated_at)
            ))
            .bind(host)
            .bind(cut(&orbit.version, 50))
            .bind(orbit.desktop_version.as_deref().map(|v| cut(v, 50)))
            .bind(orbit.scripts_enabled)
            .bind(update.detail_updated_at.unwrap_or_default())
            .execute(&mut *tx)
            .await?;
        }
    }
    if let Some(labels) = &update.labels {
        crate::admin::labels::write_results(
            tx,
            host,
            labels,
            update.label_updated_at.unwrap_or_default(),
        )
        .await?;
    }
    if let Some(policies) = update.policies.as_ref().filter(|p| !p.is_empty()) {
        crate::admin::policies::write_results(
            tx,
            host,
            policies,
            update.policy_updated_at.unwrap_or_default(),
        )
        .await?;
    }
    Ok(())
}

/// At most `max` characters of `text` (`host_orbit_info`'s versions are `VARCHAR(50)`, as
/// Fleet's, on both databases).
fn cut(text: &str, max: usize) -> &str {
    text.char_indices()
        .nth(max)
        .map_or(text, |(at, _)| &text[..at])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_twice_in_a_batch_is_one_entry_with_its_newest_times() {
        let update = |seen, label_at| HostUpdate {
            seen_time: seen,
            label_updated_at: label_at,
            ..HostUpdate::default()
        };
        let policies_at = |at| HostUpdate {
            policy_updated_at: Some(at),
            ..HostUpdate::default()
        };
        let updates = [
            (HostId(1), update(Some(1_000), None)),
            (HostId(1), update(Some(500), Some(700))),
            (HostId(2), update(None, None)),
            (HostId(3), update(Some(9), None)),
            (HostId(4), policies_at(40)),
        ];
        let chunk: Vec<&(HostId, HostUpdate)> = updates.iter().collect();
        let json: serde_json::Value = serde_json::from_str(&times_json(&chunk).unwrap()).unwrap();
        assert_eq!(
            json,
            serde_json::json!([
                {"id": 1, "seen": 1_000, "label_at": 700},
                {"id": 3, "seen": 9},
                {"id": 4, "policy_at": 40},
            ])
        );
        let nothing = [(HostId(2), update(None, None))];
        assert_eq!(times_json(&nothing.iter().collect::<Vec<_>>()), None);
    }
}
