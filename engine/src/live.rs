//! Live-query types shared by hosts and (in a later step) campaigns: the query a campaign places
//! in a host's mailbox, the answer a host posts back, and the sink answers are handed to.

use std::sync::Arc;

use crate::ids::{CampaignId, HostId};

/// Prefix of a live query's name in distributed reads and writes.
pub const LIVE_PREFIX: &str = "fleet_distributed_query_";

/// A live query waiting in a host's mailbox. The SQL is shared by every target host.
#[derive(Clone, Debug)]
pub struct LiveQuery {
    pub campaign: CampaignId,
    /// `fleet_distributed_query_<campaign>`, built once per campaign.
    pub name: Arc<str>,
    pub sql: Arc<str>,
    /// The campaign's deadline. A host drops the query after it even if no cancel reached it,
    /// so a campaign that died abnormally leaves nothing behind in host mailboxes.
    pub expires: tokio::time::Instant,
}

impl LiveQuery {
    /// A query that expires a day from now; campaigns set their own deadline with
    /// [`LiveQuery::expiring`].
    pub fn new(campaign: CampaignId, sql: Arc<str>) -> LiveQuery {
        LiveQuery::expiring(
            campaign,
            sql,
            tokio::time::Instant::now() + std::time::Duration::from_secs(24 * 3600),
        )
    }

    pub fn expiring(
        campaign: CampaignId,
        sql: Arc<str>,
        expires: tokio::time::Instant,
    ) -> LiveQuery {
        LiveQuery {
            campaign,
            name: format!("{LIVE_PREFIX}{campaign}").into(),
            sql,
            expires,
        }
    }
}

/// osquery's per-query execution statistics (5.8+); all zero when the agent did not send them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueryStats {
    pub wall_time_ms: u64,
    pub user_time: u64,
    pub system_time: u64,
    pub memory: u64,
}

/// One host's answer to one live query, as it travels to the campaign.
#[derive(Clone, Debug)]
pub struct LiveAnswer {
    pub campaign: CampaignId,
    /// The rows exactly as the host encoded them (a JSON array), forwarded without re-encoding.
    pub rows: Arc<str>,
    pub row_count: usize,
    /// osquery's error message when the query failed on the host.
    pub error: Option<Box<str>>,
    pub stats: Option<QueryStats>,
}

/// A result on its way out of the host's actor.
#[derive(Clone, Debug)]
pub struct HostResult {
    pub host: HostId,
    pub hostname: Arc<str>,
    pub answer: LiveAnswer,
}

/// Where host actors hand live-query answers: the
/// [`CampaignRouter`](crate::campaigns::CampaignRouter) in the server.
pub trait ResultSink: Send + Sync + 'static {
    fn deliver(&self, result: HostResult);
}

/// What a name in a distributed write refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryName<'a> {
    /// `fleet_detail_query_<suffix>`
    Detail(&'a str),
    /// `fleet_distributed_query_<campaign>`
    Live(CampaignId),
    /// `fleet_label_query_<label id>`
    Label(u64),
    /// `fleet_policy_query_<policy id>`
    Policy(u64),
    /// Anything else: names from other servers. Ignored, never an error.
    Other,
}

impl<'a> QueryName<'a> {
    pub fn parse(name: &'a str) -> QueryName<'a> {
        if let Some(suffix) = name.strip_prefix(crate::detail::DETAIL_PREFIX) {
            return QueryName::Detail(suffix);
        }
        if let Some(id) = name.strip_prefix(LIVE_PREFIX)
            && let Ok(id) = id.parse()
        {
            return QueryName::Live(CampaignId(id));
        }
        if let Some(id) = name.strip_prefix(crate::labels::LABEL_PREFIX)
            && let Ok(id) = id.parse()
        {
            return QueryName::Label(id);
        }
        if let Some(id) = name.strip_prefix(crate::policies::POLICY_PREFIX)
            && let Ok(id) = id.parse()
        {
            return QueryName::Policy(id);
        }
        QueryName::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_by_prefix() {
        assert_eq!(
            QueryName::parse("fleet_detail_query_uptime"),
            QueryName::Detail("uptime")
        );
        assert_eq!(
            QueryName::parse("fleet_distributed_query_42"),
            QueryName::Live(CampaignId(42))
        );
        assert_eq!(
            QueryName::parse("fleet_distributed_query_x"),
            QueryName::Other
        );
        assert_eq!(QueryName::parse("fleet_label_query_3"), QueryName::Label(3));
        assert_eq!(
            QueryName::parse("fleet_policy_query_3"),
            QueryName::Policy(3)
        );
        assert_eq!(QueryName::parse("fleet_policy_query_x"), QueryName::Other);
        assert_eq!(
            &*LiveQuery::new(CampaignId(7), "SELECT 1".into()).name,
            "fleet_distributed_query_7"
        );
    }
}
