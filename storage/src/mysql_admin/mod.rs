//! [`AdminStore`] for [`MysqlStore`]: one module per area, mirroring `sqlite_admin/`, with the
//! same behaviour. The MySQL dialect lives here: id sets bound as one JSON array and read with
//! [`JSON_IDS`] (`JSON_TABLE`), `<=>` for null-safe comparison, ids from `LAST_INSERT_ID()`
//! instead of `RETURNING` (MySQL 8 has none), `ON DUPLICATE KEY UPDATE` for upserts, and
//! `COLLATE utf8mb4_general_ci` where SQLite's `LIKE` ignores ASCII case.
//! Rows become models through [`crate::rows`], the same code SQLite uses.

mod activities;
mod config;
mod hosts;
pub(crate) mod labels;
mod queries;
mod teams;
mod users;

use async_trait::async_trait;
use flotilla_engine::ids::{HostId, TeamId};
use flotilla_engine::store::StoreError;
use sqlx::{MySql, QueryBuilder};

use crate::MysqlStore;
use crate::admin::*;

pub(crate) use crate::common::{id_array, like_pattern, store_error, write_error};

/// `SELECT id FROM <this>`: the ids of a JSON array bound as the one parameter.
pub(crate) const JSON_IDS: &str =
    "JSON_TABLE(?, '$[*]' COLUMNS (id BIGINT UNSIGNED PATH '$')) AS ids";

/// Appends `(SELECT id FROM JSON_TABLE(?, …))` with `ids` (see [`id_array`]) bound: an id set
/// of any size as one parameter.
pub(crate) fn push_id_set(query: &mut QueryBuilder<MySql>, ids: String) {
    query
        .push("(SELECT id FROM JSON_TABLE(")
        .push_bind(ids)
        .push(", '$[*]' COLUMNS (id BIGINT UNSIGNED PATH '$')) AS ids)");
}

/// Follows `<column> LIKE ?`: ignore case as SQLite's `LIKE` does (our text columns compare
/// byte for byte otherwise), with a backslash escaping `%` and `_` as [`like_pattern`] writes.
pub(crate) const LIKE_CI_END: &str = " COLLATE utf8mb4_general_ci ESCAPE '\\\\'";

pub(crate) fn host_ids(ids: Vec<u64>) -> Vec<HostId> {
    ids.into_iter().map(HostId).collect()
}

#[async_trait]
impl UserStore for MysqlStore {
    async fn user_count(&self) -> Result<u64, StoreError> {
        users::count(self.pool()).await
    }
    async fn global_admin_count(&self) -> Result<u64, StoreError> {
        users::global_admin_count(self.pool()).await
    }
    async fn create_user(&self, user: &NewUser, now: i64) -> Result<User, AdminError> {
        users::create(self.pool(), user, now, false)
            .await?
            .ok_or_else(|| AdminError::Store(StoreError::Data("user not created".into())))
    }
    async fn create_first_user(
        &self,
        user: &NewUser,
        now: i64,
    ) -> Result<Option<User>, AdminError> {
        users::create(self.pool(), user, now, true).await
    }
    async fn user(&self, id: UserId) -> Result<Option<User>, StoreError> {
        users::get(self.pool(), id).await
    }
    async fn user_by_email(&self, email: &str) -> Result<Option<(User, String)>, StoreError> {
        users::by_email(self.pool(), email).await
    }
    async fn password_hash(&self, id: UserId) -> Result<Option<String>, StoreError> {
        users::password_hash(self.pool(), id).await
    }
    async fn users(&self) -> Result<Vec<User>, StoreError> {
        users::list(self.pool()).await
    }
    async fn update_user(
        &self,
        id: UserId,
        changes: &UserChanges,
        now: i64,
    ) -> Result<User, AdminError> {
        users::update(self.pool(), id, changes, now).await
    }
    async fn delete_user(&self, id: UserId) -> Result<Option<User>, StoreError> {
        users::delete(self.pool(), id).await
    }
    async fn create_session(
        &self,
        user: UserId,
        token_hash: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        users::create_session(self.pool(), user, token_hash, now).await
    }
    async fn session(&self, token_hash: &str) -> Result<Option<(User, i64)>, StoreError> {
        users::session(self.pool(), token_hash).await
    }
    async fn touch_session(&self, token_hash: &str, now: i64) -> Result<(), StoreError> {
        users::touch_session(self.pool(), token_hash, now).await
    }
    async fn delete_session(&self, token_hash: &str) -> Result<(), StoreError> {
        users::delete_session(self.pool(), token_hash).await
    }
}

#[async_trait]
impl HostDirectory for MysqlStore {
    async fn list_hosts(
        &self,
        filter: &HostFilter,
        order: &Order,
        page: Page,
    ) -> Result<Vec<Host>, StoreError> {
        hosts::list(self.pool(), filter, order, page).await
    }
    async fn count_hosts(&self, filter: &HostFilter) -> Result<u64, StoreError> {
        hosts::count(self.pool(), filter).await
    }
    async fn host(&self, id: HostId) -> Result<Option<Host>, StoreError> {
        hosts::get(self.pool(), id).await
    }
    async fn host_by_identifier(&self, identifier: &str) -> Result<Option<Host>, StoreError> {
        hosts::by_identifier(self.pool(), identifier).await
    }
    async fn delete_host(&self, id: HostId) -> Result<Option<Host>, StoreError> {
        hosts::delete(self.pool(), id).await
    }
    async fn transfer_hosts(
        &self,
        team: Option<TeamId>,
        hosts: &[HostId],
        now: i64,
    ) -> Result<Vec<HostId>, AdminError> {
        hosts::transfer(self.pool(), team, hosts, now).await
    }
    async fn host_totals(
        &self,
        scope: &HostScope,
        team: Option<TeamFilter>,
        new_since: i64,
        not_seen_since: i64,
    ) -> Result<HostTotals, StoreError> {
        hosts::totals(self.pool(), scope, team, new_since, not_seen_since).await
    }
    async fn host_ids_in_labels(&self, labels: &[LabelId]) -> Result<Vec<HostId>, StoreError> {
        hosts::ids_in_labels(self.pool(), labels).await
    }
    async fn host_ids_in_teams(&self, teams: &[TeamId]) -> Result<Vec<HostId>, StoreError> {
        hosts::ids_in_teams(self.pool(), teams).await
    }
    async fn host_ids_by_identifiers(
        &self,
        identifiers: &[String],
    ) -> Result<Vec<HostId>, StoreError> {
        hosts::ids_by_identifiers(self.pool(), identifiers).await
    }
}

#[async_trait]
impl LabelStore for MysqlStore {
    async fn create_label(&self, label: &NewLabel, now: i64) -> Result<Label, AdminError> {
        labels::create(self.pool(), label, now).await
    }
    async fn labels(&self, scope: &HostScope) -> Result<Vec<Label>, StoreError> {
        labels::list(self.pool(), scope).await
    }
    async fn label(&self, id: LabelId, scope: &HostScope) -> Result<Option<Label>, StoreError> {
        labels::get(self.pool(), id, scope).await
    }
    async fn label_ids_by_names(&self, names: &[String]) -> Result<Vec<LabelId>, StoreError> {
        labels::ids_by_names(self.pool(), names).await
    }
    async fn manual_label_hosts(&self, id: LabelId) -> Result<Vec<HostId>, StoreError> {
        labels::manual_hosts(self.pool(), id).await
    }
    async fn update_label(
        &self,
        id: LabelId,
        changes: &LabelChanges,
        now: i64,
    ) -> Result<Label, AdminError> {
        labels::update(self.pool(), id, changes, now).await
    }
    async fn delete_label(&self, id: LabelId) -> Result<Option<Label>, AdminError> {
        labels::delete(self.pool(), id).await
    }
    async fn label_by_name(&self, name: &str) -> Result<Option<Label>, StoreError> {
        labels::by_name(self.pool(), name).await
    }
    async fn host_labels(&self, host: HostId) -> Result<Vec<Label>, StoreError> {
        labels::of_host(self.pool(), host).await
    }
    async fn dynamic_label_queries(&self) -> Result<Vec<LabelQuery>, StoreError> {
        labels::dynamic_queries(self.pool()).await
    }
}

#[async_trait]
impl TeamStore for MysqlStore {
    async fn create_team(
        &self,
        name: &str,
        description: &str,
        secret: &str,
        now: i64,
    ) -> Result<Team, AdminError> {
        teams::create(self.pool(), name, description, secret, now).await
    }
    async fn teams(&self) -> Result<Vec<Team>, StoreError> {
        teams::list(self.pool()).await
    }
    async fn team(&self, id: TeamId) -> Result<Option<Team>, StoreError> {
        teams::get(self.pool(), id).await
    }
    async fn update_team(
        &self,
        id: TeamId,
        changes: &TeamChanges,
        now: i64,
    ) -> Result<Team, AdminError> {
        teams::update(self.pool(), id, changes, now).await
    }
    async fn delete_team(&self, id: TeamId) -> Result<Option<(Team, Vec<HostId>)>, StoreError> {
        teams::delete(self.pool(), id).await
    }
    async fn enroll_secrets_of(&self, team: Option<TeamId>) -> Result<Vec<TeamSecret>, StoreError> {
        teams::secrets_of(self.pool(), team).await
    }
    async fn replace_enroll_secrets(
        &self,
        team: Option<TeamId>,
        secrets: &[String],
        now: i64,
    ) -> Result<Vec<TeamSecret>, AdminError> {
        teams::replace_secrets(self.pool(), team, secrets, now).await
    }
}

#[async_trait]
impl QueryStore for MysqlStore {
    async fn create_query(
        &self,
        team: Option<TeamId>,
        fields: &QueryFields,
        author: Option<UserId>,
        now: i64,
    ) -> Result<SavedQuery, AdminError> {
        queries::create(self.pool(), team, fields, author, now).await
    }
    async fn queries(
        &self,
        team: Option<TeamId>,
        search: Option<&str>,
    ) -> Result<Vec<SavedQuery>, StoreError> {
        queries::list(self.pool(), team, search).await
    }
    async fn get_query(&self, id: QueryId) -> Result<Option<SavedQuery>, StoreError> {
        queries::get(self.pool(), id).await
    }
    async fn update_query(
        &self,
        id: QueryId,
        fields: &QueryFields,
        now: i64,
    ) -> Result<SavedQuery, AdminError> {
        queries::update(self.pool(), id, fields, now).await
    }
    async fn delete_query(&self, id: QueryId) -> Result<Option<SavedQuery>, StoreError> {
        queries::delete(self.pool(), id).await
    }
    async fn delete_queries(&self, ids: &[QueryId]) -> Result<u64, StoreError> {
        queries::delete_many(self.pool(), ids).await
    }
    async fn query_by_name(
        &self,
        team: Option<TeamId>,
        name: &str,
    ) -> Result<Option<SavedQuery>, StoreError> {
        queries::by_name(self.pool(), team, name).await
    }
    async fn scheduled_queries(&self) -> Result<Vec<SavedQuery>, StoreError> {
        config::scheduled_queries(self.pool()).await
    }
    async fn write_reports(&self, reports: &[ReportRows]) -> Result<(), StoreError> {
        config::write_reports(self.pool(), reports).await
    }
    async fn reports(&self) -> Result<Vec<ReportRows>, StoreError> {
        config::reports(self.pool()).await
    }
    async fn delete_report(&self, query: QueryId) -> Result<(), StoreError> {
        config::delete_report(self.pool(), query).await
    }
}

#[async_trait]
impl ConfigStore for MysqlStore {
    async fn agent_options(
        &self,
        team: Option<TeamId>,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        config::agent_options(self.pool(), team).await
    }
    async fn set_agent_options(
        &self,
        team: Option<TeamId>,
        options: &serde_json::Value,
        now: i64,
    ) -> Result<(), AdminError> {
        config::set_agent_options(self.pool(), team, options, now).await
    }
    async fn app_settings(&self) -> Result<Option<serde_json::Value>, StoreError> {
        config::app_settings(self.pool()).await
    }
    async fn set_app_settings(
        &self,
        settings: &serde_json::Value,
        now: i64,
    ) -> Result<(), StoreError> {
        config::set_app_settings(self.pool(), settings, now).await
    }
    async fn team_agent_options(&self) -> Result<Vec<(TeamId, serde_json::Value)>, StoreError> {
        config::team_agent_options(self.pool()).await
    }
}

#[async_trait]
impl ActivityStore for MysqlStore {
    async fn record_activity(
        &self,
        actor: Option<UserId>,
        kind: &str,
        details: serde_json::Value,
        now: i64,
    ) -> Result<(), StoreError> {
        activities::record(self.pool(), actor, kind, &details, now).await
    }
    async fn activities(&self, order: &Order, page: Page) -> Result<Vec<Activity>, StoreError> {
        activities::list(self.pool(), order, page).await
    }
}
