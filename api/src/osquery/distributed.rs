use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use flotilla_engine::host::{DetailAnswer, HostResults, ReadWork};
use flotilla_engine::live::{LiveAnswer, QueryName};
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

use super::body::{check_header_key, node_key, parse, read_body};
use super::error::{OsqueryError, json_response};
use super::wire::{KeyBody, WriteBody, raw_rows, rows, stats, status_code};
use crate::state::SharedState;

/// The reply to a read with nothing to do; 99 % of check-ins get exactly these bytes.
const NO_WORK: &[u8] = br#"{"queries":{},"discovery":{}}"#;

/// `POST /api/osquery/distributed/read`: the queries this host should run now.
pub async fn read(
    State(state): State<SharedState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, OsqueryError> {
    let bytes = read_body(&headers, body, state.limits.default).await?;
    let request: KeyBody = parse(&bytes)?;
    let key = node_key(request.node_key.as_deref(), &headers)?;
    let work = state.hosts.read(key, flotilla_engine::unix_now()).await?;
    if work.is_empty() {
        return Ok(json_response(StatusCode::OK, NO_WORK));
    }
    Ok(json_response(StatusCode::OK, encode_read(&work)))
}

/// `{"queries": {name: sql}, "discovery": {name: sql}, "accelerate": n}`.
fn encode_read(work: &ReadWork) -> Vec<u8> {
    struct Queries<'a>(&'a ReadWork, bool);
    impl Serialize for Queries<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let mut map = serializer.serialize_map(Some(self.0.queries.len()))?;
            for query in &self.0.queries {
                let sql = if self.1 { &query.discovery } else { &query.sql };
                map.serialize_entry(&*query.name, &**sql)?;
            }
            map.end()
        }
    }
    #[derive(Serialize)]
    struct Reply<'a> {
        queries: Queries<'a>,
        discovery: Queries<'a>,
        #[serde(skip_serializing_if = "Option::is_none")]
        accelerate: Option<u32>,
    }
    serde_json::to_vec(&Reply {
        queries: Queries(work, false),
        discovery: Queries(work, true),
        accelerate: work.accelerate,
    })
    .expect("strings serialise")
}

/// `POST /api/osquery/distributed/write`: answers to what a read handed out. Detail answers fill
/// the host's vitals; live answers go to their campaigns. Problems with individual answers are
/// logged and never returned: osquery would resend the same write forever.
pub async fn write(
    State(state): State<SharedState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, OsqueryError> {
    check_header_key(&state.hosts, &headers).await?;
    let bytes = read_body(&headers, body, state.limits.distributed_write).await?;
    let request: WriteBody = parse(&bytes)?;
    let key = node_key(request.node_key.as_deref(), &headers)?;
    let results = host_results(&request);
    state
        .hosts
        .write(key, flotilla_engine::unix_now(), results)
        .await?;
    Ok(super::empty_object())
}

/// The answers of a write as the engine takes them.
pub fn host_results(request: &WriteBody) -> HostResults {
    let mut results = HostResults::default();
    for (name, raw) in &request.queries {
        let status = status_code(request.statuses.get(AsRef::<str>::as_ref(name)));
        let message = request
            .messages
            .get(AsRef::<str>::as_ref(name))
            .and_then(|m| m.as_str())
            .filter(|m| !m.is_empty());
        match QueryName::parse(name) {
            QueryName::Detail(suffix) => {
                if status != 0 {
                    tracing::debug!(query = %name, message = message.unwrap_or(""), "detail query failed on host");
                    continue;
                }
                results.details.push(DetailAnswer {
                    suffix: suffix.to_owned(),
                    rows: rows(raw),
                });
            }
            QueryName::Live(campaign) => {
                let (rows, row_count) = raw_rows(raw);
                let error = (status != 0).then(|| {
                    message
                        .map(Into::into)
                        .unwrap_or_else(|| format!("query failed with status {status}").into())
                });
                results.live.push(LiveAnswer {
                    campaign,
                    rows: rows.into(),
                    row_count,
                    error,
                    stats: stats(request.stats.get(AsRef::<str>::as_ref(name))),
                });
            }
            QueryName::Label(label) => {
                // Member when the query returned a row; unknown when it failed on the host.
                let member = (status == 0).then(|| !rows(raw).is_empty());
                results.labels.push((label, member));
            }
            QueryName::Policy(policy) => {
                // Pass with rows, fail without, unknown when it failed on the host.
                let response = flotilla_engine::policies::response(status != 0, rows(raw).len());
                results.policies.push((policy, response));
            }
            QueryName::Other => {}
        }
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_engine::host::PendingQuery;

    #[test]
    fn read_reply_pairs_each_query_with_its_discovery() {
        let work = ReadWork {
            queries: vec![PendingQuery {
                name: "fleet_distributed_query_1".into(),
                sql: "SELECT * FROM users".into(),
                discovery: "SELECT 1".into(),
            }],
            accelerate: Some(10),
        };
        let reply: serde_json::Value = serde_json::from_slice(&encode_read(&work)).unwrap();
        assert_eq!(
            reply["queries"]["fleet_distributed_query_1"],
            "SELECT * FROM users"
        );
        assert_eq!(reply["discovery"]["fleet_distributed_query_1"], "SELECT 1");
        assert_eq!(
            reply["accelerate"], 10,
            "accelerate is an integer, never a string"
        );
    }

    #[test]
    fn write_bodies_split_into_details_and_live_answers() {
        let body = br#"{"node_key":"k",
            "queries":{"fleet_detail_query_uptime":[{"total_seconds":"5"}],
                       "fleet_detail_query_system_info":"",
                       "fleet_distributed_query_9":[{"a":"1"}],
                       "fleet_distributed_query_10":"",
                       "fleet_label_query_3":[],
                       "fleet_label_query_4":[{"1":"1"}],
                       "fleet_policy_query_5":[],
                       "fleet_policy_query_6":[{"1":"1"}],
                       "fleet_policy_query_7":[{"1":"1"}],
                       "fleet_policy_query_x":[]},
            "statuses":{"fleet_detail_query_uptime":0,"fleet_detail_query_system_info":"1",
                        "fleet_distributed_query_9":"0","fleet_distributed_query_10":1,
                        "fleet_policy_query_7":1},
            "messages":{"fleet_distributed_query_10":"no such table: nope"}}"#;
        let request: WriteBody = serde_json::from_slice(body).unwrap();
        let results = host_results(&request);
        assert_eq!(
            results.details.len(),
            1,
            "failed detail answers are skipped"
        );
        assert_eq!(results.details[0].suffix, "uptime");
        assert_eq!(results.live.len(), 2);
        let failed = results.live.iter().find(|a| a.campaign.0 == 10).unwrap();
        assert_eq!(failed.error.as_deref(), Some("no such table: nope"));
        assert_eq!(&*failed.rows, "[]");
        let ok = results.live.iter().find(|a| a.campaign.0 == 9).unwrap();
        assert_eq!((ok.row_count, ok.error.is_none()), (1, true));
        let mut labels = results.labels.clone();
        labels.sort();
        assert_eq!(labels, vec![(3, Some(false)), (4, Some(true))]);
        let mut policies = results.policies.clone();
        policies.sort();
        assert_eq!(
            policies,
            vec![(5, Some(false)), (6, Some(true)), (7, None)],
            "no rows fail, rows pass, a failed query is unknown"
        );
    }
}
