//! The activity log: who did what, newest first by default.

use flotilla_engine::store::StoreError;
use sqlx::{QueryBuilder, Sqlite, SqlitePool};

use super::store_error;
use crate::admin::{Activity, Order, Page, UserId};

pub async fn record(
    pool: &SqlitePool,
    actor: Option<UserId>,
    kind: &str,
    details: &serde_json::Value,
    now: i64,
) -> Result<(), StoreError> {
    let actor = actor.map(|a| a.0 as i64);
    sqlx::query(
        "INSERT INTO activities (actor_id, actor_full_name, actor_email, type, details, \
         created_at) VALUES ((SELECT id FROM users WHERE id = ?), \
         (SELECT name FROM users WHERE id = ?), (SELECT email FROM users WHERE id = ?), ?, ?, ?)",
    )
    .bind(actor)
    .bind(actor)
    .bind(actor)
    .bind(kind)
    .bind(details.to_string())
    .bind(now)
    .execute(pool)
    .await
    .map_err(store_error)?;
    Ok(())
}

pub async fn list(
    pool: &SqlitePool,
    order: &Order,
    page: Page,
) -> Result<Vec<Activity>, StoreError> {
    let column = match order.key.as_str() {
        "created_at" => "created_at",
        "id" => "id",
        "type" => "type",
        other => {
            return Err(StoreError::Data(format!(
                "unknown activity order key `{other}`"
            )));
        }
    };
    let direction = if order.descending { " DESC" } else { " ASC" };
    let mut query = QueryBuilder::<Sqlite>::new(
        "SELECT id, actor_id, actor_full_name, actor_email, type, details, created_at \
         FROM activities ORDER BY ",
    );
    query
        .push(column)
        .push(direction)
        .push(", id")
        .push(direction)
        .push(" LIMIT ")
        .push_bind(page.limit.min(i64::MAX as u64) as i64)
        .push(" OFFSET ")
        .push_bind(page.offset.min(i64::MAX as u64) as i64);
    let rows = query.build().fetch_all(pool).await.map_err(store_error)?;
    rows.iter().map(crate::rows::activity).collect()
}
