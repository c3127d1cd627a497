//! [`ActivityStore`] for [`SqlStore`]: the activity log, who did what, newest first by default.

use async_trait::async_trait;
use flotilla_engine::store::StoreError;

use crate::SqlStore;
use crate::admin::{Activity, ActivityStore, Order, Page, UserId};
use crate::common::store_error;
use crate::sql::query;

#[async_trait]
impl ActivityStore for SqlStore {
    async fn record_activity(
        &self,
        actor: Option<UserId>,
        kind: &str,
        details: serde_json::Value,
        now: i64,
    ) -> Result<(), StoreError> {
        // The actor's name and email are copied: the entry outlives the user.
        query(
            "INSERT INTO activities (actor_id, actor_full_name, actor_email, type, details, \
             created_at) VALUES ((SELECT id FROM users WHERE id = ?), \
             (SELECT name FROM users WHERE id = ?), (SELECT email FROM users WHERE id = ?), \
             ?, ?, ?)",
        )
        .bind(actor)
        .bind(actor)
        .bind(actor)
        .bind(kind)
        .bind(details.to_string())
        .bind(now)
        .execute(&self.db)
        .await
        .map_err(store_error)?;
        Ok(())
    }

    async fn activities(&self, order: &Order, page: Page) -> Result<Vec<Activity>, StoreError> {
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
        let mut list = query(
            "SELECT id, actor_id, actor_full_name, actor_email, type, details, created_at \
             FROM activities ORDER BY ",
        );
        list.push(column)
            .push(direction)
            .push(", id")
            .push(direction)
            .push(" LIMIT ")
            .push_bind(page.limit.min(i64::MAX as u64))
            .push(" OFFSET ")
            .push_bind(page.offset.min(i64::MAX as u64));
        let rows = list.fetch_all(&self.db).await.map_err(store_error)?;
        rows.iter().map(crate::rows::activity).collect()
    }
}
