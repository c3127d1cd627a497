//! Enrollment: the one write on an osquery request's path, because a node key the store has
//! not recorded would be lost on restart.
//!
//! What one enrollment writes ([`enroll_in`]) is the same on both databases. How enrollments
//! reach the database is not ([`Enroller`]):
//!
//! - **SQLite** takes one writer at a time, so enrollments are group-committed: one task takes
//!   every enrollment waiting (up to [`ENROLL_BATCH`]) and writes them in one transaction, so
//!   a burst of hosts enrolling at once pays one commit per batch, not per host (10,000 hosts
//!   enrolling in 10 s took 8 s each on average before, 0.15 s after). If the batch fails, each
//!   enrollment is retried in its own transaction so one bad row fails alone.
//! - **MySQL** may be shared by several nodes: each enrollment is its own transaction that
//!   locks the row it re-keys, run again when another node inserted the same identifier
//!   between our lookup and our insert, or when InnoDB chose it as a deadlock victim
//!   (concurrent enrollments take gap locks on the same index range).

use flotilla_engine::ids::NodeKey;
use flotilla_engine::store::{EnrolledHost, Enrollment, OrbitEnrollment};
use tokio::sync::{mpsc, oneshot};

use super::{bind_vitals, select_stored_host, vitals_set};
use crate::rows::ModelRow;
use crate::sql::{Db, Dialect, Tx, query, sql};

/// Enrollments written in one transaction at most (SQLite).
const ENROLL_BATCH: usize = 256;

/// Attempts of one enrollment on MySQL before its error is returned.
const MYSQL_ATTEMPTS: u32 = 3;

/// How enrollments reach the database: see the module comment.
#[derive(Clone)]
pub(crate) enum Enroller {
    /// To the SQLite group-commit task.
    GroupCommit(mpsc::Sender<EnrollJob>),
    /// One retried transaction per enrollment (MySQL).
    EachAlone,
}

pub(crate) struct EnrollJob {
    enrollment: Agent,
    reply: oneshot::Sender<Result<EnrolledHost, sqlx::Error>>,
}

/// Whose enrollment: osqueryd's, or orbit's (`orbit.rs`). Both go through the same writer, so
/// a machine whose two agents enroll at once costs one commit, not two.
#[derive(Clone)]
pub(crate) enum Agent {
    Osquery(Box<Enrollment>),
    Orbit(Box<OrbitEnrollment>),
}

impl Agent {
    async fn enroll_in(&self, tx: &mut Tx) -> Result<EnrolledHost, sqlx::Error> {
        match self {
            Agent::Osquery(e) => enroll_in(tx, e).await,
            Agent::Orbit(e) => super::orbit::enroll_in(tx, e).await,
        }
    }
}

impl Enroller {
    /// Starts the group-commit task on SQLite (it ends when every clone of the store is gone).
    pub(crate) fn for_db(db: &Db) -> Enroller {
        match db.dialect() {
            Dialect::Sqlite => {
                let (jobs, queue) = mpsc::channel(4 * ENROLL_BATCH);
                tokio::spawn(group_commit(db.clone(), queue));
                Enroller::GroupCommit(jobs)
            }
            Dialect::Mysql => Enroller::EachAlone,
        }
    }

    pub(crate) async fn enroll(&self, db: &Db, e: Agent) -> Result<EnrolledHost, sqlx::Error> {
        match self {
            Enroller::GroupCommit(jobs) => {
                let (reply, answer) = oneshot::channel();
                let job = EnrollJob {
                    enrollment: e,
                    reply,
                };
                let closed = || sqlx::Error::WorkerCrashed;
                jobs.send(job).await.map_err(|_| closed())?;
                answer.await.map_err(|_| closed())?
            }
            Enroller::EachAlone => {
                let mut attempt = 1;
                loop {
                    match alone(db, &e).await {
                        Err(error)
                            if attempt < MYSQL_ATTEMPTS
                                && (crate::sql::mysql::is_retryable(&error)
                                    || matches!(e, Agent::Orbit(_))
                                        && crate::common::is_unique_violation(&error)) =>
                        {
                            attempt += 1
                        }
                        other => return other,
                    }
                }
            }
        }
    }
}

/// One enrollment in a transaction of its own.
async fn alone(db: &Db, e: &Agent) -> Result<EnrolledHost, sqlx::Error> {
    let mut tx = db.begin_hot().await?;
    let host = e.enroll_in(&mut tx).await?;
    tx.commit().await?;
    Ok(host)
}

/// Writes enrollments as they come, each time all that wait (up to [`ENROLL_BATCH`]) in one
/// transaction.
async fn group_commit(db: Db, mut jobs: mpsc::Receiver<EnrollJob>) {
    let mut batch = Vec::with_capacity(ENROLL_BATCH);
    while jobs.recv_many(&mut batch, ENROLL_BATCH).await > 0 {
        let together = async {
            let mut tx = db.begin_hot().await?;
            let mut enrolled = Vec::with_capacity(batch.len());
            for job in &batch {
                enrolled.push(job.enrollment.enroll_in(&mut tx).await?);
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(enrolled)
        };
        match together.await {
            Ok(enrolled) => {
                for (job, host) in batch.drain(..).zip(enrolled) {
                    let _ = job.reply.send(Ok(host));
                }
            }
            Err(error) => {
                tracing::debug!(%error, size = batch.len(), "an enrollment batch failed; writing each alone");
                for job in batch.drain(..) {
                    let _ = job.reply.send(alone(&db, &job.enrollment).await);
                }
            }
        }
    }
}

/// The host this enrollment is for, locked until the transaction ends: by identifier, else by
/// hardware UUID (most recently enrolled first).
async fn find_for_enrollment(
    tx: &mut Tx,
    e: &Enrollment,
) -> Result<Option<(u64, Option<String>)>, sqlx::Error> {
    let d = tx.dialect();
    let by_identifier = query(sql!(
        d,
        "SELECT id, node_key FROM hosts WHERE osquery_host_id = ?",
        FOR_UPDATE
    ))
    .bind(d.fit(&e.identifier))
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(row) = by_identifier {
        return Ok(Some((row.id("id")?, row.opt_text("node_key")?)));
    }
    let Some(uuid) = e.hardware_uuid.as_deref().filter(|u| !u.is_empty()) else {
        return Ok(None);
    };
    let by_uuid = query(sql!(
        d,
        "SELECT id, node_key, osquery_host_id FROM hosts WHERE uuid = ? \
         ORDER BY last_enrolled_at DESC LIMIT 1",
        FOR_UPDATE
    ))
    .bind(d.fit(uuid))
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = by_uuid else {
        return Ok(None);
    };
    tracing::warn!(
        identifier = %e.identifier,
        previous_identifier = %row.text("osquery_host_id")?,
        "host re-enrolled under a new identifier; matched by hardware uuid"
    );
    Ok(Some((row.id("id")?, row.opt_text("node_key")?)))
}

/// One enrollment's statements, inside the caller's write transaction: an existing host gets
/// the new node key, or a host is created.
async fn enroll_in(tx: &mut Tx, e: &Enrollment) -> Result<EnrolledHost, sqlx::Error> {
    let d = tx.dialect();
    let existing = find_for_enrollment(tx, e).await?;
    let (id, previous, created) = match existing {
        Some((id, previous)) => {
            let update = query(sql!(
                d,
                "UPDATE hosts SET node_key = ?, osquery_host_id = ?, team_id = ?, \
                 last_enrolled_at = ?, updated_at = ?, seen_time = ",
                GREATEST,
                "(seen_time, ?), ",
                vitals_set!(),
                " WHERE id = ?"
            ))
            .bind(e.node_key.as_str())
            .bind(d.fit(&e.identifier))
            .bind(e.team)
            .bind(e.now)
            .bind(e.now)
            .bind(e.now);
            bind_vitals(update, &e.vitals, d)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            (id, previous, false)
        }
        None => {
            let inserted = query(
                "INSERT INTO hosts (osquery_host_id, node_key, team_id, seen_time, \
                 refetch_requested, created_at, last_enrolled_at, updated_at) \
                 VALUES (?, ?, ?, ?, 1, ?, ?, ?)",
            )
            .bind(d.fit(&e.identifier))
            .bind(e.node_key.as_str())
            .bind(e.team)
            .bind(e.now)
            .bind(e.now)
            .bind(e.now)
            .bind(e.now)
            .execute(&mut *tx)
            .await?;
            let id = inserted.last_insert_id;
            let vitals = query(sql!(d, "UPDATE hosts SET ", vitals_set!(), " WHERE id = ?"));
            bind_vitals(vitals, &e.vitals, d)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            (id, None, true)
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
