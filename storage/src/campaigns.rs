//! The engine's [`CampaignStore`] for [`SqlStore`]: the record of every live query.

use async_trait::async_trait;
use flotilla_engine::ids::CampaignId;
use flotilla_engine::store::{
    CampaignCounts, CampaignOutcome, CampaignRecord, CampaignStore, StoreError, TargetKind,
};

use crate::SqlStore;
use crate::sql::query;

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
impl CampaignStore for SqlStore {
    async fn create_campaign(&self, c: &CampaignRecord) -> Result<CampaignId, StoreError> {
        let mut tx = self.db.begin().await.map_err(unavailable)?;
        let inserted = query(
            "INSERT INTO distributed_query_campaigns (query_sql, query_id, user_id, status, \
             created_at, updated_at) VALUES (?, ?, ?, 1, ?, ?)",
        )
        .bind(&c.sql)
        .bind(c.query_id)
        .bind(c.user_id)
        .bind(c.created_at)
        .bind(c.created_at)
        .execute(&mut tx)
        .await
        .map_err(unavailable)?;
        let id = CampaignId(inserted.last_insert_id);
        if !c.selected.is_empty() {
            // One multi-row insert for every selected target.
            let mut targets = query(
                "INSERT INTO distributed_query_campaign_targets (campaign_id, type, target_id) \
                 VALUES ",
            );
            for (i, (kind, target)) in c.selected.iter().enumerate() {
                targets.push(if i == 0 { "(" } else { ", (" });
                targets.push_bind(id).push(", ");
                targets.push_bind(target_type(*kind)).push(", ");
                targets.push_bind(*target).push(")");
            }
            targets.execute(&mut tx).await.map_err(unavailable)?;
        }
        tx.commit().await.map_err(unavailable)?;
        Ok(id)
    }

    async fn record_campaign_counts(
        &self,
        id: CampaignId,
        counts: CampaignCounts,
        now: i64,
    ) -> Result<(), StoreError> {
        query(
            "UPDATE distributed_query_campaigns SET targets_count = ?, online_count = ?, \
             responded_count = CASE WHEN responded_count > ? THEN responded_count ELSE ? END, \
             updated_at = ? WHERE id = ? AND status <> 2",
        )
        .bind(counts.targets)
        .bind(counts.online)
        .bind(counts.responded)
        .bind(counts.responded)
        .bind(now)
        .bind(id)
        .execute(&self.db)
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn finish_campaign(&self, id: CampaignId, o: &CampaignOutcome) -> Result<(), StoreError> {
        query(
            "UPDATE distributed_query_campaigns SET status = 2, targets_count = ?, \
             online_count = ?, responded_count = ?, finish_reason = ?, updated_at = ? WHERE id = ?",
        )
        .bind(o.targets)
        .bind(o.online)
        .bind(o.responded)
        .bind(o.reason)
        .bind(o.finished_at)
        .bind(id)
        .execute(&self.db)
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn finish_abandoned_campaigns(
        &self,
        now: i64,
        keep: &[CampaignId],
    ) -> Result<u64, StoreError> {
        let mut finish = query(
            "UPDATE distributed_query_campaigns SET status = 2, finish_reason = 'abandoned', \
             updated_at = ? WHERE status <> 2",
        )
        .bind(now);
        if !keep.is_empty() {
            finish
                .push(" AND id NOT IN ")
                .push_list(keep.iter().copied());
        }
        let done = finish.execute(&self.db).await.map_err(unavailable)?;
        Ok(done.rows_affected)
    }
}
