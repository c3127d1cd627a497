//! `RedisRelay`: the [`Relay`] nodes share through Redis.
//!
//! Keys (every key of one campaign shares the hash tag `{c<id>}`, so it lives in one Redis
//! Cluster slot; the set of running campaigns has its own tag):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `flotilla:{c<id>}:spec` | hash | `v`, `sql`, `owner`, `deadline_ms`, `missing`, `targets`, `online` (id sets, [`relay_codec`](crate::relay_codec)), and `finished` once claimed |
//! | `flotilla:{c<id>}:results` | stream | one entry per answer: `v`, `node`, `host`, `hostname`, `rows`, `count`, `error`, `stats`, `sent_ms` |
//! | `flotilla:{c<id>}:watched` | string | present (5 s expiry, renewed) while some node has a subscriber |
//! | `flotilla:{active}:campaigns` | sorted set | running campaign ids, scored by deadline (ms) |
//!
//! Campaign keys expire ten minutes after the deadline, and two minutes after the finish is
//! claimed (time for every node to read the log to its end), so nothing outlives a campaign.
//! Answers travel in the stream, which each node reads at its own pace: a node that loses its
//! connection resumes where it stopped, and no answer rides in a pub/sub message, so Redis'
//! pub/sub output buffers never hold large payloads. The pub/sub channel `flotilla:events`
//! carries only small announcements (JSON with a version field `v`), which are a fast path:
//! nodes reconcile with the keys every few seconds and after every reconnect.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use flotilla_engine::counters::{RelayCounters, RelayKind};
use flotilla_engine::live::{HostResult, LiveAnswer, QueryStats};
use flotilla_engine::relay::{
    AnswerTimes, CampaignSpec, Relay, RelayError, RelayEvent, ResultReader, Topic, unix_now_ms,
};
use flotilla_engine::{CampaignId, HostId};
use futures_util::StreamExt;
use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamReadOptions, StreamReadReply};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::relay_codec::{decode_ids, encode_ids};

/// Version of every record and message this relay writes; readers skip other versions.
const VERSION: u32 = 1;
const EVENTS_CHANNEL: &str = "flotilla:events";
const ACTIVE_KEY: &str = "flotilla:{active}:campaigns";
/// Every Redis command gives up after this long: callers get an error, never a hang.
const OP_TIMEOUT: Duration = Duration::from_secs(3);
/// Campaign keys outlive the deadline by this much, in case no node claims the finish.
const KEEP_AFTER_DEADLINE_MS: i64 = 10 * 60 * 1000;
/// And outlive a claimed finish by this much, so every node reads the answer log to its end.
const KEEP_AFTER_FINISH_MS: i64 = 2 * 60 * 1000;
/// A node's note that it has a subscriber lasts this long unless renewed.
const WATCHED_TTL_SECS: u64 = 5;
/// Answers read per round trip at most.
const READ_BATCH: usize = 256;

fn spec_key(id: CampaignId) -> String {
    format!("flotilla:{{c{}}}:spec", id.0)
}

fn results_key(id: CampaignId) -> String {
    format!("flotilla:{{c{}}}:results", id.0)
}

fn watched_key(id: CampaignId) -> String {
    format!("flotilla:{{c{}}}:watched", id.0)
}

fn unavailable(error: impl std::fmt::Display) -> RelayError {
    RelayError::Unavailable(error.to_string())
}

async fn timed<T>(
    future: impl std::future::Future<Output = Result<T, redis::RedisError>>,
) -> Result<T, RelayError> {
    match tokio::time::timeout(OP_TIMEOUT, future).await {
        Ok(result) => result.map_err(unavailable),
        Err(_) => Err(RelayError::Unavailable(format!(
            "Redis did not answer within {} s",
            OP_TIMEOUT.as_secs()
        ))),
    }
}

/// An announcement as it travels on the events channel.
#[derive(Serialize, Deserialize, Debug)]
struct Envelope {
    v: u32,
    node: String,
    /// When it was published, Unix milliseconds (for the relay-lag metric).
    #[serde(default)]
    at_ms: i64,
    #[serde(flatten)]
    event: Wire,
}

#[derive(Serialize, Deserialize, Debug)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Wire {
    CampaignStarted {
        campaign: u64,
    },
    CampaignFinished {
        campaign: u64,
        reason: String,
    },
    HostChanged {
        host: u64,
    },
    HostsSeen {
        hosts: Vec<(u64, i64)>,
    },
    /// `(host, detail, label, policy)` answer times.
    HostsAnswered {
        hosts: Vec<(u64, i64, i64, i64)>,
    },
    Changed {
        topic: String,
    },
}

fn to_wire(event: &RelayEvent) -> Option<Wire> {
    Some(match event {
        RelayEvent::CampaignStarted(id) => Wire::CampaignStarted { campaign: id.0 },
        RelayEvent::CampaignFinished { id, reason } => Wire::CampaignFinished {
            campaign: id.0,
            reason: reason.clone(),
        },
        RelayEvent::HostChanged(id) => Wire::HostChanged { host: id.0 },
        RelayEvent::HostsSeen(hosts) => Wire::HostsSeen {
            hosts: hosts.iter().map(|(h, t)| (h.0, *t)).collect(),
        },
        RelayEvent::HostsAnswered(hosts) => Wire::HostsAnswered {
            hosts: hosts
                .iter()
                .map(|(h, t)| (h.0, t.detail, t.label, t.policy))
                .collect(),
        },
        RelayEvent::Changed(topic) => Wire::Changed {
            topic: topic.as_str().to_owned(),
        },
        RelayEvent::Reconnected => return None,
    })
}

fn from_wire(wire: Wire) -> Option<RelayEvent> {
    Some(match wire {
        Wire::CampaignStarted { campaign } => RelayEvent::CampaignStarted(CampaignId(campaign)),
        Wire::CampaignFinished { campaign, reason } => RelayEvent::CampaignFinished {
            id: CampaignId(campaign),
            reason,
        },
        Wire::HostChanged { host } => RelayEvent::HostChanged(HostId(host)),
        Wire::HostsSeen { hosts } => {
            RelayEvent::HostsSeen(hosts.into_iter().map(|(h, t)| (HostId(h), t)).collect())
        }
        Wire::HostsAnswered { hosts } => RelayEvent::HostsAnswered(
            hosts
                .into_iter()
                .map(|(h, detail, label, policy)| {
                    (
                        HostId(h),
                        AnswerTimes {
                            detail,
                            label,
                            policy,
                        },
                    )
                })
                .collect(),
        ),
        Wire::Changed { topic } => RelayEvent::Changed(Topic::parse(&topic)?),
    })
}

/// Decodes one announcement; `None` for this node's own, other versions, or garbage.
fn decode_event(payload: &[u8], own_node: &str) -> Option<(RelayEvent, i64)> {
    let envelope: Envelope = match serde_json::from_slice(payload) {
        Ok(envelope) => envelope,
        Err(error) => {
            tracing::debug!(%error, "ignoring an unreadable relay announcement");
            return None;
        }
    };
    if envelope.v != VERSION || envelope.node == own_node {
        return None;
    }
    Some((from_wire(envelope.event)?, envelope.at_ms))
}

fn kind_of(event: &RelayEvent) -> RelayKind {
    match event {
        RelayEvent::CampaignStarted(_) => RelayKind::CampaignStarted,
        RelayEvent::CampaignFinished { .. } => RelayKind::CampaignFinished,
        _ => RelayKind::Other,
    }
}

fn observe_lag(counters: &RelayCounters, sent_ms: i64) {
    if sent_ms > 0 {
        let lag = (unix_now_ms() - sent_ms).max(0) as u64;
        counters.lag.observe(Duration::from_millis(lag));
    }
}

pub struct RedisRelay {
    node: String,
    client: redis::Client,
    pool: bb8::Pool<bb8_redis::RedisConnectionManager>,
    events: broadcast::Sender<RelayEvent>,
    counters: Arc<RelayCounters>,
}

impl RedisRelay {
    /// A relay on `url` (`redis://host:port/db`, `rediss://` for TLS) for the node `node`.
    /// Does not need Redis to be up: the connection is made (and remade, with backoff) in the
    /// background; until then relay operations fail fast with [`RelayError::Unavailable`].
    /// `counters` is where it records what it sends and receives, for `/metrics`.
    pub fn connect(
        url: &str,
        node: String,
        pool_size: u32,
        counters: Arc<RelayCounters>,
    ) -> Result<Arc<RedisRelay>, RelayError> {
        let client = redis::Client::open(url).map_err(|e| RelayError::Data(e.to_string()))?;
        let manager = bb8_redis::RedisConnectionManager::new(url)
            .map_err(|e| RelayError::Data(e.to_string()))?;
        let pool = bb8::Pool::builder()
            .max_size(pool_size.max(1))
            .connection_timeout(OP_TIMEOUT)
            .build_unchecked(manager);
        let (events, _) = broadcast::channel(4096);
        let relay = Arc::new(RedisRelay {
            node,
            client,
            pool,
            events,
            counters,
        });
        relay.clone().spawn_subscriber();
        Ok(relay)
    }

    async fn conn(
        &self,
    ) -> Result<bb8::PooledConnection<'_, bb8_redis::RedisConnectionManager>, RelayError> {
        self.pool.get().await.map_err(|e| {
            self.counters.errors.incr();
            unavailable(e)
        })
    }

    /// Counts a failed command.
    fn count<T>(&self, result: Result<T, RelayError>) -> Result<T, RelayError> {
        if result.is_err() {
            self.counters.errors.incr();
        }
        result
    }

    /// Listens on the events channel for as long as the process runs, reconnecting with
    /// backoff. After every reconnect the engine is told to reconcile.
    fn spawn_subscriber(self: Arc<Self>) {
        let weak = Arc::downgrade(&self);
        drop(self);
        tokio::spawn(async move {
            let mut delay = Duration::from_millis(100);
            let mut connected_before = false;
            loop {
                let Some(relay) = weak.upgrade() else { return };
                let (client, sender, node, counters) = (
                    relay.client.clone(),
                    relay.events.clone(),
                    relay.node.clone(),
                    relay.counters.clone(),
                );
                drop(relay);
                match tokio::time::timeout(OP_TIMEOUT, client.get_async_pubsub()).await {
                    Ok(Ok(mut pubsub)) => match pubsub.subscribe(EVENTS_CHANNEL).await {
                        Ok(()) => {
                            tracing::info!(node = %node, "relay connected to Redis");
                            if connected_before {
                                let _ = sender.send(RelayEvent::Reconnected);
                            }
                            connected_before = true;
                            counters.set_connected(true);
                            delay = Duration::from_millis(100);
                            let mut messages = pubsub.on_message();
                            while let Some(message) = messages.next().await {
                                if let Some((event, at_ms)) =
                                    decode_event(message.get_payload_bytes(), &node)
                                {
                                    counters.received(kind_of(&event));
                                    observe_lag(&counters, at_ms);
                                    let _ = sender.send(event);
                                }
                            }
                            counters.set_connected(false);
                            counters.errors.incr();
                            tracing::warn!(node = %node, "relay lost its Redis subscription; reconnecting");
                        }
                        Err(error) => {
                            counters.errors.incr();
                            tracing::warn!(%error, "relay could not subscribe to Redis")
                        }
                    },
                    Ok(Err(error)) => {
                        counters.errors.incr();
                        tracing::warn!(%error, "relay cannot reach Redis; retrying")
                    }
                    Err(_) => {
                        counters.errors.incr();
                        tracing::warn!("relay cannot reach Redis (timeout); retrying")
                    }
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        });
    }
}

fn encode_stats(stats: &QueryStats) -> String {
    format!(
        "{},{},{},{}",
        stats.wall_time_ms, stats.user_time, stats.system_time, stats.memory
    )
}

fn decode_stats(s: &str) -> Option<QueryStats> {
    let mut parts = s.split(',').map(|p| p.parse::<u64>().ok());
    Some(QueryStats {
        wall_time_ms: parts.next()??,
        user_time: parts.next()??,
        system_time: parts.next()??,
        memory: parts.next()??,
    })
}

fn field<T: redis::FromRedisValue>(
    map: &std::collections::HashMap<String, redis::Value>,
    name: &str,
) -> Option<T> {
    map.get(name)
        .and_then(|v| redis::from_redis_value::<T>(v.clone()).ok())
}

/// One stream entry back into an answer; `None` (skipped, logged) if it is not one this
/// version wrote.
fn decode_result(
    campaign: CampaignId,
    map: &std::collections::HashMap<String, redis::Value>,
) -> Option<HostResult> {
    if field::<u32>(map, "v")? != VERSION {
        return None;
    }
    let error: Option<String> = field(map, "error");
    Some(HostResult {
        host: HostId(field(map, "host")?),
        hostname: field::<String>(map, "hostname")?.into(),
        answer: LiveAnswer {
            campaign,
            rows: field::<String>(map, "rows")?.into(),
            row_count: field(map, "count")?,
            error: error.filter(|e| !e.is_empty()).map(Into::into),
            stats: field::<String>(map, "stats").and_then(|s| decode_stats(&s)),
        },
    })
}

struct StreamReader {
    client: redis::Client,
    counters: Arc<RelayCounters>,
    connection: Option<MultiplexedConnection>,
    key: String,
    campaign: CampaignId,
    /// The id of the last entry read; the next read starts after it.
    last: String,
}

#[async_trait]
impl ResultReader for StreamReader {
    async fn next_batch(&mut self, wait: Duration) -> Result<Vec<HostResult>, RelayError> {
        let connection = match &mut self.connection {
            Some(connection) => connection,
            None => {
                // A connection of its own: a blocking read would hold up anything sharing it.
                let config = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(OP_TIMEOUT))
                    .set_response_timeout(Some(wait + OP_TIMEOUT));
                let fresh = timed(
                    self.client
                        .get_multiplexed_async_connection_with_config(&config),
                )
                .await?;
                self.connection.insert(fresh)
            }
        };
        let options = StreamReadOptions::default()
            .block(wait.as_millis() as usize)
            .count(READ_BATCH);
        let reply: Result<Option<StreamReadReply>, _> = connection
            .xread_options(&[&self.key], &[&self.last], &options)
            .await;
        let reply = match reply {
            Ok(reply) => reply,
            Err(error) => {
                self.connection = None;
                self.counters.errors.incr();
                return Err(unavailable(error));
            }
        };
        let mut results = Vec::new();
        for stream in reply.map(|r| r.keys).unwrap_or_default() {
            for entry in stream.ids {
                match decode_result(self.campaign, &entry.map) {
                    Some(result) => {
                        self.counters.received(RelayKind::Result);
                        if let Some(sent) = field::<i64>(&entry.map, "sent_ms") {
                            observe_lag(&self.counters, sent);
                        }
                        results.push(result)
                    }
                    None => {
                        tracing::warn!(campaign = %self.campaign, entry = %entry.id, "skipping a relayed answer this node cannot read")
                    }
                }
                self.last = entry.id;
            }
        }
        Ok(results)
    }
}

#[async_trait]
impl Relay for RedisRelay {
    fn node(&self) -> &str {
        &self.node
    }

    async fn announce_campaign(&self, spec: &CampaignSpec) -> Result<(), RelayError> {
        let key = spec_key(spec.id);
        let expire_at = spec.deadline_unix_ms + KEEP_AFTER_DEADLINE_MS;
        let mut conn = self.conn().await?;
        let mut pipe = redis::pipe();
        pipe.hset_multiple(
            &key,
            &[
                ("v", VERSION.to_string().into_bytes()),
                ("sql", spec.sql.as_bytes().to_vec()),
                (
                    "owner",
                    spec.owner
                        .map(|o| o.to_string())
                        .unwrap_or_default()
                        .into_bytes(),
                ),
                (
                    "deadline_ms",
                    spec.deadline_unix_ms.to_string().into_bytes(),
                ),
                ("missing", spec.missing.to_string().into_bytes()),
                ("targets", encode_ids(&spec.targets)),
                ("online", encode_ids(&spec.online)),
            ],
        )
        .ignore()
        .pexpire_at(&key, expire_at)
        .ignore()
        .zadd(ACTIVE_KEY, spec.id.0, spec.deadline_unix_ms)
        .ignore();
        timed(pipe.query_async::<()>(&mut *conn)).await?;
        drop(conn);
        self.publish(&RelayEvent::CampaignStarted(spec.id)).await
    }

    async fn campaign(&self, id: CampaignId) -> Result<Option<CampaignSpec>, RelayError> {
        let mut conn = self.conn().await?;
        let map: std::collections::HashMap<String, Vec<u8>> =
            timed(conn.hgetall(spec_key(id))).await?;
        if map.is_empty() {
            return Ok(None);
        }
        let text = |name: &str| {
            map.get(name)
                .and_then(|b| std::str::from_utf8(b).ok())
                .map(str::to_owned)
        };
        let bad = |what: &str| RelayError::Data(format!("campaign {id}: unreadable {what}"));
        if text("v").and_then(|v| v.parse::<u32>().ok()) != Some(VERSION) {
            return Err(bad("version"));
        }
        Ok(Some(CampaignSpec {
            id,
            sql: text("sql").ok_or_else(|| bad("sql"))?.into(),
            owner: text("owner").and_then(|o| o.parse().ok()),
            targets: map
                .get("targets")
                .and_then(|b| decode_ids(b))
                .ok_or_else(|| bad("targets"))?,
            online: map
                .get("online")
                .and_then(|b| decode_ids(b))
                .ok_or_else(|| bad("online hosts"))?,
            missing: text("missing").and_then(|m| m.parse().ok()).unwrap_or(0),
            deadline_unix_ms: text("deadline_ms")
                .and_then(|d| d.parse().ok())
                .ok_or_else(|| bad("deadline"))?,
        }))
    }

    async fn active_campaigns(&self) -> Result<Vec<CampaignId>, RelayError> {
        let mut conn = self.conn().await?;
        let now = unix_now_ms();
        let (ids,): (Vec<u64>,) = timed(
            redis::pipe()
                .zrembyscore(ACTIVE_KEY, "-inf", now)
                .ignore()
                .zrangebyscore(ACTIVE_KEY, now, "+inf")
                .query_async(&mut *conn),
        )
        .await?;
        Ok(ids.into_iter().map(CampaignId).collect())
    }

    async fn send_results(&self, results: &[HostResult]) -> Result<(), RelayError> {
        if results.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn().await?;
        let mut pipe = redis::pipe();
        let sent = unix_now_ms().to_string();
        let version = VERSION.to_string();
        for result in results {
            let key = results_key(result.answer.campaign);
            let stats = result
                .answer
                .stats
                .as_ref()
                .map(encode_stats)
                .unwrap_or_default();
            let fields: [(&str, &[u8]); 9] = [
                ("v", version.as_bytes()),
                ("node", self.node.as_bytes()),
                ("host", &*result.host.0.to_string().into_bytes()),
                ("hostname", result.hostname.as_bytes()),
                ("rows", result.answer.rows.as_bytes()),
                ("count", &*result.answer.row_count.to_string().into_bytes()),
                (
                    "error",
                    result.answer.error.as_deref().unwrap_or("").as_bytes(),
                ),
                ("stats", stats.as_bytes()),
                ("sent_ms", sent.as_bytes()),
            ];
            pipe.xadd(&key, "*", &fields).ignore();
            // The log goes when the campaign does (at the latest a day on, if it never did).
            pipe.cmd("PEXPIRE")
                .arg(&key)
                .arg(24 * 3600 * 1000)
                .arg("NX")
                .ignore();
        }
        let sent = self.count(timed(pipe.query_async::<()>(&mut *conn)).await);
        if sent.is_ok() {
            self.counters.published.add(results.len() as u64);
        }
        sent
    }

    async fn results(&self, id: CampaignId) -> Result<Box<dyn ResultReader>, RelayError> {
        Ok(Box::new(StreamReader {
            client: self.client.clone(),
            counters: self.counters.clone(),
            connection: None,
            key: results_key(id),
            campaign: id,
            last: "0-0".to_owned(),
        }))
    }

    async fn claim_finish(&self, id: CampaignId, reason: &str) -> Result<bool, RelayError> {
        let mut conn = self.conn().await?;
        let key = spec_key(id);
        let won: bool = timed(conn.hset_nx(&key, "finished", reason)).await?;
        if won {
            let expire_at = unix_now_ms() + KEEP_AFTER_FINISH_MS;
            timed(
                redis::pipe()
                    .zrem(ACTIVE_KEY, id.0)
                    .ignore()
                    .pexpire_at(&key, expire_at)
                    .ignore()
                    .pexpire_at(results_key(id), expire_at)
                    .ignore()
                    .query_async::<()>(&mut *conn),
            )
            .await?;
        }
        Ok(won)
    }

    async fn finished(&self, id: CampaignId) -> Result<Option<String>, RelayError> {
        let mut conn = self.conn().await?;
        timed(conn.hget(spec_key(id), "finished")).await
    }

    async fn mark_watched(&self, id: CampaignId) -> Result<(), RelayError> {
        let mut conn = self.conn().await?;
        timed(conn.set_ex(watched_key(id), &self.node, WATCHED_TTL_SECS)).await
    }

    async fn watched(&self, id: CampaignId) -> Result<bool, RelayError> {
        let mut conn = self.conn().await?;
        timed(conn.exists(watched_key(id))).await
    }

    async fn publish(&self, event: &RelayEvent) -> Result<(), RelayError> {
        let Some(wire) = to_wire(event) else {
            return Ok(());
        };
        let payload = serde_json::to_vec(&Envelope {
            v: VERSION,
            node: self.node.clone(),
            at_ms: unix_now_ms(),
            event: wire,
        })
        .map_err(|e| RelayError::Data(e.to_string()))?;
        let mut conn = self.conn().await?;
        let published = self.count(timed(conn.publish::<_, _, ()>(EVENTS_CHANNEL, payload)).await);
        if published.is_ok() {
            self.counters.published.incr();
        }
        published
    }

    fn events(&self) -> broadcast::Receiver<RelayEvent> {
        self.events.subscribe()
    }

    async fn ping(&self) -> Result<(), RelayError> {
        let mut conn = self.conn().await?;
        self.count(timed(redis::cmd("PING").query_async::<()>(&mut *conn)).await)
    }

    async fn hold_lock(&self, name: &str, ttl: Duration) -> Result<bool, RelayError> {
        let key = format!("flotilla:lock:{name}");
        let ttl_ms = ttl.as_millis().max(1) as u64;
        let mut conn = self.conn().await?;
        let taken: Option<String> = self.count(
            timed(
                redis::cmd("SET")
                    .arg(&key)
                    .arg(&self.node)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl_ms)
                    .query_async(&mut *conn),
            )
            .await,
        )?;
        if taken.is_some() {
            return Ok(true);
        }
        // Held already: renewed if by this node. (Between the read and the renewal the lock
        // may expire and pass to another node, whose hold this then lengthens: harmless, as
        // it only delays this node's next claim.)
        let holder: Option<String> =
            self.count(timed(redis::cmd("GET").arg(&key).query_async(&mut *conn)).await)?;
        if holder.as_deref() != Some(self.node.as_str()) {
            return Ok(false);
        }
        self.count(
            timed(
                redis::cmd("PEXPIRE")
                    .arg(&key)
                    .arg(ttl_ms)
                    .query_async::<()>(&mut *conn),
            )
            .await,
        )?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_round_trip_and_skip_own_and_foreign_versions() {
        let events = [
            RelayEvent::CampaignStarted(CampaignId(7)),
            RelayEvent::CampaignFinished {
                id: CampaignId(7),
                reason: "deadline".into(),
            },
            RelayEvent::HostChanged(HostId(3)),
            RelayEvent::HostsSeen(vec![(HostId(1), 100), (HostId(2), 101)]),
            RelayEvent::HostsAnswered(vec![(
                HostId(4),
                AnswerTimes {
                    detail: 100,
                    label: 0,
                    policy: 102,
                },
            )]),
            RelayEvent::Changed(Topic::Labels),
        ];
        for event in events {
            let payload = serde_json::to_vec(&Envelope {
                v: VERSION,
                node: "a".into(),
                at_ms: 5,
                event: to_wire(&event).unwrap(),
            })
            .unwrap();
            assert_eq!(decode_event(&payload, "b"), Some((event.clone(), 5)));
            assert_eq!(
                decode_event(&payload, "a"),
                None,
                "own announcements are skipped"
            );
        }
        assert_eq!(
            decode_event(br#"{"v":2,"node":"a","kind":"host_changed","host":1}"#, "b"),
            None
        );
        assert_eq!(decode_event(b"garbage", "b"), None);
    }

    #[test]
    fn stats_round_trip() {
        let stats = QueryStats {
            wall_time_ms: 1,
            user_time: 2,
            system_time: 3,
            memory: 4,
        };
        assert_eq!(decode_stats(&encode_stats(&stats)), Some(stats));
        assert_eq!(decode_stats("1,2"), None);
    }
}
