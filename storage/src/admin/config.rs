//! [`ConfigStore`] for [`SqlStore`]: agent options (global in `app_config`, per team in
//! `team_agent_options`) and the organisation settings (`app_config`).

use async_trait::async_trait;
use flotilla_engine::ids::TeamId;
use flotilla_engine::store::StoreError;

use crate::SqlStore;
use crate::admin::write_error;
use crate::admin::{AdminError, ConfigStore};
use crate::common::store_error;
use crate::rows::ModelRow;
use crate::sql::{query, sql};

const GLOBAL_AGENT_OPTIONS: &str = "agent_options";
const APP_SETTINGS: &str = "settings";

fn parse_json(text: &str) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Data(format!("stored JSON: {e}")))
}

impl SqlStore {
    /// The JSON document stored under `name` in `app_config`.
    pub(super) async fn app_config(
        &self,
        name: &str,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        let row = query("SELECT value FROM app_config WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.db)
            .await
            .map_err(store_error)?;
        let text = row
            .map(|row| row.text("value"))
            .transpose()
            .map_err(store_error)?;
        text.as_deref().map(parse_json).transpose()
    }

    /// Stores `value` under `name` in `app_config`, replacing what was there.
    pub(super) async fn set_app_config(
        &self,
        name: &str,
        value: String,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        let d = self.db.dialect();
        query(sql!(
            d,
            "INSERT INTO app_config (name, value, updated_at) VALUES (?, ?, ?) ",
            UPSERT("name"),
            " value = ",
            EXCLUDED(value),
            ", updated_at = ",
            EXCLUDED(updated_at)
        ))
        .bind(name)
        .bind(value)
        .bind(now)
        .execute(&self.db)
        .await?;
        Ok(())
    }
}

#[async_trait]
impl ConfigStore for SqlStore {
    async fn agent_options(
        &self,
        team: Option<TeamId>,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        let Some(team) = team else {
            return self.app_config(GLOBAL_AGENT_OPTIONS).await;
        };
        let row = query("SELECT options FROM team_agent_options WHERE team_id = ?")
            .bind(team)
            .fetch_optional(&self.db)
            .await
            .map_err(store_error)?;
        let text = row
            .map(|row| row.text("options"))
            .transpose()
            .map_err(store_error)?;
        text.as_deref().map(parse_json).transpose()
    }

    async fn set_agent_options(
        &self,
        team: Option<TeamId>,
        options: &serde_json::Value,
        now: i64,
    ) -> Result<(), AdminError> {
        let failed = |e| write_error(e, "agent options");
        let text = options.to_string();
        let Some(team) = team else {
            return self
                .set_app_config(GLOBAL_AGENT_OPTIONS, text, now)
                .await
                .map_err(failed);
        };
        let d = self.db.dialect();
        let mut tx = self.db.begin().await.map_err(failed)?;
        if !super::teams::team_exists(&mut tx, team)
            .await
            .map_err(failed)?
        {
            return Err(AdminError::NotFound(format!("team {team}")));
        }
        if options.is_null() {
            query("DELETE FROM team_agent_options WHERE team_id = ?")
                .bind(team)
                .execute(&mut tx)
                .await
                .map_err(failed)?;
        } else {
            query(sql!(
                d,
                "INSERT INTO team_agent_options (team_id, options, updated_at) VALUES (?, ?, ?) ",
                UPSERT("team_id"),
                " options = ",
                EXCLUDED(options),
                ", updated_at = ",
                EXCLUDED(updated_at)
            ))
            .bind(team)
            .bind(text)
            .bind(now)
            .execute(&mut tx)
            .await
            .map_err(failed)?;
        }
        tx.commit().await.map_err(failed)
    }

    async fn app_settings(&self) -> Result<Option<serde_json::Value>, StoreError> {
        self.app_config(APP_SETTINGS).await
    }

    async fn set_app_settings(
        &self,
        settings: &serde_json::Value,
        now: i64,
    ) -> Result<(), StoreError> {
        self.set_app_config(APP_SETTINGS, settings.to_string(), now)
            .await
            .map_err(store_error)
    }

    async fn team_agent_options(&self) -> Result<Vec<(TeamId, serde_json::Value)>, StoreError> {
        let rows = query("SELECT team_id, options FROM team_agent_options ORDER BY team_id")
            .fetch_all(&self.db)
            .await
            .map_err(store_error)?;
        rows.iter()
            .map(|row| {
                let team = row.id("team_id").map_err(store_error)?;
                let text = row.text("options").map_err(store_error)?;
                Ok((TeamId(team), parse_json(&text)?))
            })
            .collect()
    }
}
