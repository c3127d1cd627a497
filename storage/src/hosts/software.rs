//! Writing hosts' software sets, for the batched flush.
//!
//! - **Interning.** Every distinct package is one `software` row for the whole fleet, found
//!   by the digest of its identity columns. The ids of packages already stored are cached in
//!   memory (tens of thousands of entries for a large fleet), so a host's set is resolved
//!   without a query; packages new to the fleet are inserted once, many per statement, and an
//!   insert two nodes race on is ignored by the loser, which then reads the winner's id.
//! - **Only the difference is written.** A host's stored rows are read (one indexed range) and
//!   compared with the new set: rows that went are deleted, new or changed ones upserted. An
//!   upgrade of one package is two row writes, not five hundred.
//! - **Bounded transactions.** Hosts are written in groups of up to [`ROWS_PER_TX`] rows, each
//!   group in a transaction of its own. Larger groups write each page of the
//!   `(software_id, host_id)` index (where inserts land all over) to the WAL fewer times; this
//!   size holds SQLite's write lock for about a second during a rollout's first inventories
//!   (BENCHMARKS.md), and for nothing once sets stop changing.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use flotilla_engine::ids::HostId;
use flotilla_engine::software::{Installed, Inventory, Software};
use parking_lot::Mutex;

use crate::rows::ModelRow;
use crate::sql::{Db, Dialect, Tx, query};

/// Rows (a host's packages) per write transaction.
const ROWS_PER_TX: usize = 100_000;
/// Rows per multi-row `INSERT`: four or thirteen parameters each, well under both
/// databases' placeholder limits.
const ROWS_PER_INSERT: usize = 500;

/// A distribution package and an OS (platform, `os_version`) it was seen on.
type OsPair = (i64, Box<str>, Box<str>);

/// What the store remembers between flushes: ids of interned software and titles, and which
/// distribution packages it has recorded on which OS.
#[derive(Default)]
pub(crate) struct SoftwareCache {
    ids: Mutex<HashMap<[u8; 16], i64>>,
    titles: Mutex<HashMap<[u8; 16], i64>>,
    os_pairs: Mutex<HashSet<OsPair>>,
}

impl SoftwareCache {
    fn id(&self, software: &Software) -> Option<i64> {
        self.ids.lock().get(&software.checksum()).copied()
    }
}

fn hex(digest: [u8; 16]) -> String {
    format!("{:032x}", u128::from_be_bytes(digest))
}

fn insert_ignore(d: Dialect) -> &'static str {
    match d {
        Dialect::Sqlite => "INSERT OR IGNORE INTO ",
        Dialect::Mysql => "INSERT IGNORE INTO ",
    }
}

/// Writes each host's new set; `batch` is in host order.
pub(super) async fn write(
    db: &Db,
    cache: &SoftwareCache,
    batch: &[(HostId, &Arc<Inventory>, i64)],
) -> Result<(), sqlx::Error> {
    if batch.is_empty() {
        return Ok(());
    }
    intern(
        db,
        cache,
        batch.iter().flat_map(|(_, inv, _)| inv.items.iter()),
    )
    .await?;
    let mut start = 0;
    while start < batch.len() {
        let mut end = start;
        let mut rows = 0;
        while end < batch.len() && (end == start || rows + batch[end].1.items.len() <= ROWS_PER_TX)
        {
            rows += batch[end].1.items.len();
            end += 1;
        }
        let mut tx = db.begin_hot().await?;
        let mut pairs = Vec::new();
        for (host, inventory, at) in &batch[start..end] {
            write_host(&mut tx, cache, *host, inventory, *at, &mut pairs).await?;
        }
        let at = batch[start..end].iter().map(|(_, _, at)| *at).max();
        query("UPDATE software_state SET generation = generation + 1, changed_at = ? WHERE id = 1")
            .bind(at.unwrap_or_default())
            .execute(&mut tx)
            .await?;
        tx.commit().await?;
        cache.os_pairs.lock().extend(pairs);
        start = end;
    }
    Ok(())
}

/// Makes sure every package in `items` has a `software` row (and its title one), and caches
/// their ids.
async fn intern<'a>(
    db: &Db,
    cache: &SoftwareCache,
    items: impl Iterator<Item = &'a Installed>,
) -> Result<(), sqlx::Error> {
    let mut missing: HashMap<[u8; 16], &Software> = HashMap::new();
    {
        let ids = cache.ids.lock();
        for item in items {
            let checksum = item.software.checksum();
            if !ids.contains_key(&checksum) {
                missing.insert(checksum, &item.software);
            }
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let mut missing: Vec<([u8; 16], &Software)> = missing.into_iter().collect();
    missing.sort_by_key(|(checksum, _)| *checksum);
    let d = db.dialect();
    let now = flotilla_engine::unix_now();
    for chunk in missing.chunks(ROWS_PER_INSERT) {
        let titles = intern_titles(db, cache, chunk.iter().map(|(_, s)| *s)).await?;
        let mut tx = db.begin_hot().await?;
        let mut insert = query(insert_ignore(d));
        insert.push(
            "software (checksum, title_id, name, version, source, bundle_identifier, \
             extension_id, browser, ",
        );
        insert.push(match d {
            Dialect::Sqlite => "\"release\"",
            Dialect::Mysql => "`release`",
        });
        insert.push(", vendor, arch, created_at) VALUES ");
        for (i, (checksum, software)) in chunk.iter().enumerate() {
            if i > 0 {
                insert.push(", ");
            }
            insert
                .push("(")
                .push_bind(hex(*checksum))
                .push(", ")
                .push_bind(titles[&software.title_checksum()]);
            for field in software.fields() {
                insert.push(", ").push_bind(field);
            }
            insert.push(", ").push_bind(now).push(")");
        }
        insert.execute(&mut tx).await?;
        let mut select = query("SELECT id, checksum FROM software WHERE checksum IN ");
        select.push_list(chunk.iter().map(|(checksum, _)| hex(*checksum)));
        let rows = select.fetch_all(&mut tx).await?;
        tx.commit().await?;
        let mut ids = cache.ids.lock();
        for row in rows {
            let checksum = u128::from_str_radix(&row.text("checksum")?, 16)
                .map_err(|e| sqlx::Error::Decode(e.into()))?;
            ids.insert(checksum.to_be_bytes(), row.int("id")?);
        }
    }
    Ok(())
}

/// The title ids of `software`, creating the titles not stored yet.
async fn intern_titles<'a>(
    db: &Db,
    cache: &SoftwareCache,
    software: impl Iterator<Item = &'a Software>,
) -> Result<HashMap<[u8; 16], i64>, sqlx::Error> {
    let mut found = HashMap::new();
    let mut missing: HashMap<[u8; 16], &Software> = HashMap::new();
    {
        let titles = cache.titles.lock();
        for s in software {
            let checksum = s.title_checksum();
            match titles.get(&checksum) {
                Some(id) => {
                    found.insert(checksum, *id);
                }
                None => {
                    missing.insert(checksum, s);
                }
            }
        }
    }
    if missing.is_empty() {
        return Ok(found);
    }
    let d = db.dialect();
    let mut tx = db.begin_hot().await?;
    let mut insert = query(insert_ignore(d));
    insert.push("software_titles (checksum, name, source, browser, bundle_identifier) VALUES ");
    for (i, (checksum, s)) in missing.iter().enumerate() {
        if i > 0 {
            insert.push(", ");
        }
        insert
            .push("(")
            .push_bind(hex(*checksum))
            .push(", ")
            .push_bind(&*s.name)
            .push(", ")
            .push_bind(&*s.source)
            .push(", ")
            .push_bind(&*s.browser)
            .push(", ")
            .push_bind(&*s.bundle_identifier)
            .push(")");
    }
    insert.execute(&mut tx).await?;
    let mut select = query("SELECT id, checksum FROM software_titles WHERE checksum IN ");
    select.push_list(missing.keys().map(|checksum| hex(*checksum)));
    let rows = select.fetch_all(&mut tx).await?;
    tx.commit().await?;
    let mut titles = cache.titles.lock();
    for row in rows {
        let checksum = u128::from_str_radix(&row.text("checksum")?, 16)
            .map_err(|e| sqlx::Error::Decode(e.into()))?
            .to_be_bytes();
        let id = row.int("id")?;
        titles.insert(checksum, id);
        found.insert(checksum, id);
    }
    Ok(found)
}

/// What a `host_software` row holds besides its key.
#[derive(PartialEq, Eq)]
struct Holding {
    last_opened_at: Option<i64>,
    installed_paths: Option<String>,
}

fn holding(item: &Installed) -> Holding {
    Holding {
        last_opened_at: item.last_opened_at,
        installed_paths: (!item.installed_paths.is_empty())
            .then(|| item.installed_paths.join("\n")),
    }
}

/// Replaces one host's stored set with `inventory`, writing only the difference.
async fn write_host(
    tx: &mut Tx,
    cache: &SoftwareCache,
    host: HostId,
    inventory: &Inventory,
    at: i64,
    pairs: &mut Vec<OsPair>,
) -> Result<(), sqlx::Error> {
    let d = tx.dialect();
    let mut wanted: HashMap<i64, (&Installed, Holding)> =
        HashMap::with_capacity(inventory.items.len());
    for item in &inventory.items {
        let id = cache.id(&item.software).ok_or_else(|| {
            sqlx::Error::Protocol(format!("software {} was not interned", item.software.name))
        })?;
        wanted.insert(id, (item, holding(item)));
    }
    let stored = query(
        "SELECT software_id, last_opened_at, installed_paths FROM host_software WHERE host_id = ?",
    )
    .bind(host)
    .fetch_all(&mut *tx)
    .await?;
    let mut gone = Vec::new();
    let mut same = HashSet::new();
    for row in stored {
        let id = row.int("software_id")?;
        let now = Holding {
            last_opened_at: row.opt_int("last_opened_at")?,
            installed_paths: row.opt_text("installed_paths")?,
        };
        match wanted.get(&id) {
            None => gone.push(id as u64),
            Some((_, holding)) if *holding == now => {
                same.insert(id);
            }
            Some(_) => {}
        }
    }
    if !gone.is_empty() {
        let mut delete = query("DELETE FROM host_software WHERE host_id = ");
        delete.push_bind(host).push(" AND software_id IN ");
        delete.push_id_set(d, gone);
        delete.execute(&mut *tx).await?;
    }
    let mut changed: Vec<(&i64, &(&Installed, Holding))> = wanted
        .iter()
        .filter(|(id, _)| !same.contains(*id))
        .collect();
    changed.sort_by_key(|(id, _)| **id);
    for chunk in changed.chunks(ROWS_PER_INSERT) {
        // SQLite: `INSERT OR REPLACE` (every column is given) rather than an upsert clause,
        // which makes SQLite keep a statement journal of every page the statement touches
        // (a tenth of a first ingest's time).
        let mut upsert = query(match d {
            Dialect::Sqlite => "INSERT OR REPLACE INTO ",
            Dialect::Mysql => "INSERT INTO ",
        });
        upsert
            .push("host_software (host_id, software_id, last_opened_at, installed_paths) VALUES ");
        for (i, (id, (_, holding))) in chunk.iter().enumerate() {
            if i > 0 {
                upsert.push(", ");
            }
            upsert
                .push("(")
                .push_bind(host)
                .push(", ")
                .push_bind(**id)
                .push(", ")
                .push_bind(holding.last_opened_at)
                .push(", ")
                .push_bind(holding.installed_paths.clone())
                .push(")");
        }
        if d == Dialect::Mysql {
            upsert.push(
                " ON DUPLICATE KEY UPDATE last_opened_at = VALUES(last_opened_at), \
                 installed_paths = VALUES(installed_paths)",
            );
        }
        upsert.execute(&mut *tx).await?;
    }
    query("UPDATE hosts SET software_fingerprint = ?, software_updated_at = ? WHERE id = ?")
        .bind(inventory.fingerprint as i64)
        .bind(at)
        .bind(host)
        .execute(&mut *tx)
        .await?;
    record_os(tx, cache, inventory, &wanted, pairs).await
}

/// Records, once per node and pair, that these distribution packages run on the host's OS.
async fn record_os(
    tx: &mut Tx,
    cache: &SoftwareCache,
    inventory: &Inventory,
    wanted: &HashMap<i64, (&Installed, Holding)>,
    pairs: &mut Vec<OsPair>,
) -> Result<(), sqlx::Error> {
    if inventory.platform.is_empty() {
        return Ok(());
    }
    let new: Vec<i64> = {
        let known = cache.os_pairs.lock();
        let mut new: Vec<i64> = wanted
            .iter()
            .filter(|(_, (item, _))| item.software.is_os_package())
            .map(|(id, _)| *id)
            .filter(|id| {
                !known.contains(&(
                    *id,
                    inventory.platform.clone(),
                    inventory.os_version.clone(),
                ))
            })
            .collect();
        new.sort_unstable();
        new
    };
    let d = tx.dialect();
    for chunk in new.chunks(ROWS_PER_INSERT) {
        let mut insert = query(insert_ignore(d));
        insert.push("software_os (software_id, platform, os_version) VALUES ");
        for (i, id) in chunk.iter().enumerate() {
            if i > 0 {
                insert.push(", ");
            }
            insert
                .push("(")
                .push_bind(*id)
                .push(", ")
                .push_bind(d.fit(&inventory.platform).to_owned())
                .push(", ")
                .push_bind(d.fit(&inventory.os_version).to_owned())
                .push(")");
        }
        insert.execute(&mut *tx).await?;
    }
    pairs.extend(
        new.into_iter()
            .map(|id| (id, inventory.platform.clone(), inventory.os_version.clone())),
    );
    Ok(())
}
