//! The engine's [`CampaignStore`] on SQLite.

use async_trait::async_trait;
use flotilla_engine::ids::CampaignId;
use flotilla_engine::store::{
    CampaignOutcome, CampaignRecord, CampaignStore, StoreError, TargetKind,
};
use sqlx::Row;

use crate::SqliteStore;

fn unavailable(error: sqlx::Error) -> StoreError {
    StoreError::Unavailable(error.to_string())
}

/// Fleet's numbering of target types.
fn target_type(kind: TargetKind) -> i64 {
    match kind {
        TargetKind::Label => 0,
        TargetKind::Host => 1,
        TargetKind::Team => 2,
    }
}

#[async_trait]
impl CampaignStore for SqliteStore {
    async fn create_campaign(&self, c: &CampaignRecord) -> Result<CampaignId, StoreError> {
        let mut tx = crate::sqlite_store::write_transaction(self.pool())
            .await
            .map_err(unavailable)?;
        let row = sqlx::query(
            "INSERT INTO distributed_query_campaigns (query_sql, query_id, user_id, status, \
             created_at, updated_at) VALUES (?, ?, ?, 1, ?, ?) RETURNING id",
        )
        .bind(&c.sql)
        .bind(c.query_id.map(|q| q as i64))
        .bind(c.user_id.map(|u| u as i64))
        .bind(c.created_at)
        .bind(c.created_at)
        .fetch_one(&mut *tx)
        .await
        .map_err(unavailable)?;
        let id: i64 = row.try_get("id").map_err(unavailable)?;
        for (kind, target) in &c.selected {
            sqlx::query(
                "INSERT INTO distributed_query_campaign_targets (campaign_id, type, target_id) \
                 VALUES (?, ?, ?)",
            )
            .bind(id)
            .bind(target_type(*kind))
            .bind(*target as i64)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        }
        tx.commit().await.map_err(unavailable)?;
        Ok(CampaignId(id as u64))
    }

    async fn finish_campaign(&self, id: CampaignId, o: &CampaignOutcome) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE distributed_query_campaigns SET status = 2, targets_count = ?, \
             online_count = ?, responded_count = ?, finish_reason = ?, updated_at = ? WHERE id = ?",
        )
        .bind(o.targets as i64)
        .bind(o.online as i64)
        .bind(o.responded as i64)
        .bind(o.reason)
        .bind(o.finished_at)
        .bind(id.0 as i64)
        .execute(self.pool())
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn finish_abandoned_campaigns(
        &self,
        now: i64,
        keep: &[CampaignId],
    ) -> Result<u64, StoreError> {
        let mut sql = String::from(
            "UPDATE distributed_query_campaigns SET status = 2, finish_reason = 'abandoned', \
             updated_at = ? WHERE status <> 2",
        );
        if !keep.is_empty() {
            sql.push_str(" AND id NOT IN (");
            sql.push_str(&vec!["?"; keep.len()].join(", "));
            sql.push(')');
        }
        // Only placeholders are added to the text; the ids are bound.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now);
        for id in keep {
            query = query.bind(id.0 as i64);
        }
        let result = query.execute(self.pool()).await.map_err(unavailable)?;
        Ok(result.rows_affected())
    }
}
