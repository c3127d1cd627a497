//! The engine's [`CampaignStore`] on MySQL.

use async_trait::async_trait;
use flotilla_engine::ids::CampaignId;
use flotilla_engine::store::{
    CampaignOutcome, CampaignRecord, CampaignStore, StoreError, TargetKind,
};

use crate::MysqlStore;

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
impl CampaignStore for MysqlStore {
    async fn create_campaign(&self, c: &CampaignRecord) -> Result<CampaignId, StoreError> {
        let mut tx = self.pool().begin().await.map_err(unavailable)?;
        let inserted = sqlx::query(
            "INSERT INTO distributed_query_campaigns (query_sql, query_id, user_id, status, \
             created_at, updated_at) VALUES (?, ?, ?, 1, ?, ?)",
        )
        .bind(&c.sql)
        .bind(c.query_id)
        .bind(c.user_id)
        .bind(c.created_at)
        .bind(c.created_at)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        let id = inserted.last_insert_id();
        if !c.selected.is_empty() {
            let mut query = sqlx::QueryBuilder::<sqlx::MySql>::new(
                "INSERT INTO distributed_query_campaign_targets (campaign_id, type, target_id) ",
            );
            query.push_values(&c.selected, |mut row, (kind, target)| {
                row.push_bind(id)
                    .push_bind(target_type(*kind))
                    .push_bind(*target);
            });
            query.build().execute(&mut *tx).await.map_err(unavailable)?;
        }
        tx.commit().await.map_err(unavailable)?;
        Ok(CampaignId(id))
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
        .bind(id.0)
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
            query = query.bind(id.0);
        }
        let result = query.execute(self.pool()).await.map_err(unavailable)?;
        Ok(result.rows_affected())
    }
}
