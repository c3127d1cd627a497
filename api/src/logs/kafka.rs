//! The `kafka` log destination: each osquery log line one Kafka record (the line's JSON as the
//! value, no key), produced with a real Kafka client ([rskafka]) through the spool
//! ([`crate::logs::spool`]), so a broker outage loses nothing.
//!
//! The topic must exist (brokers usually refuse to create topics for producers); until it does,
//! delivery is retried with a message saying so. Batches go to the topic's partitions in turn;
//! a batch is split into produce requests of at most `max_message_bytes`, and a line larger than
//! that on its own is set aside by the spool rather than blocking the lines behind it. Records
//! carry the time they were produced.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use rskafka::BackoffConfig;
use rskafka::client::partition::{Compression, PartitionClient, UnknownTopicHandling};
use rskafka::client::{ClientBuilder, Credentials, SaslConfig};
use rskafka::record::Record;

use crate::client::http::Trust;
use crate::logs::spool::{BatchId, Delivery, DeliveryError};

/// Record-batch framing per produce request and per record, counted against the size bound.
const BATCH_OVERHEAD: usize = 128;
const RECORD_OVERHEAD: usize = 32;

#[derive(Clone, Debug)]
pub struct KafkaSettings {
    /// Bootstrap brokers, `host:port`.
    pub brokers: Vec<String>,
    pub topic: String,
    pub client_id: String,
    /// Connect with TLS, trusting this (the system's roots, or a CA file).
    pub tls: Option<Trust>,
    /// SASL PLAIN user name and password.
    pub sasl_plain: Option<(String, String)>,
    /// The broker's `message.max.bytes`: produce requests are split to stay under it.
    pub max_message_bytes: usize,
    /// How long one attempt may keep retrying inside the client before the spool sees a
    /// failure (and logs it, and backs off).
    pub attempt_timeout: Duration,
}

impl KafkaSettings {
    pub fn new(brokers: Vec<String>, topic: String) -> KafkaSettings {
        KafkaSettings {
            brokers,
            topic,
            client_id: "flotilla".into(),
            tls: None,
            sasl_plain: None,
            max_message_bytes: 1_000_000,
            attempt_timeout: Duration::from_secs(30),
        }
    }
}

pub struct KafkaDelivery {
    settings: KafkaSettings,
    /// One client per partition of the topic, once connected; dropped on an error so the next
    /// attempt reconnects and re-reads the topic's partitions.
    partitions: tokio::sync::Mutex<Option<Arc<Vec<PartitionClient>>>>,
    next_partition: AtomicUsize,
}

impl KafkaDelivery {
    pub fn new(settings: KafkaSettings) -> KafkaDelivery {
        KafkaDelivery {
            settings,
            partitions: tokio::sync::Mutex::new(None),
            next_partition: AtomicUsize::new(0),
        }
    }

    async fn connect(&self) -> Result<Vec<PartitionClient>, String> {
        let settings = &self.settings;
        let mut builder = ClientBuilder::new(settings.brokers.clone())
            .client_id(settings.client_id.clone())
            .backoff_config(BackoffConfig {
                deadline: Some(settings.attempt_timeout),
                max_backoff: Duration::from_secs(5),
                ..BackoffConfig::default()
            });
        if let Some(trust) = &settings.tls {
            let config = trust.rustls_config().map_err(|e| e.to_string())?;
            builder = builder.tls_config(Arc::new(config));
        }
        if let Some((username, password)) = &settings.sasl_plain {
            builder = builder.sasl_config(SaslConfig::Plain(Credentials::new(
                username.clone(),
                password.clone(),
            )));
        }
        let client = builder
            .build()
            .await
            .map_err(|e| format!("connecting to {}: {e}", settings.brokers.join(",")))?;
        let topics = client
            .list_topics()
            .await
            .map_err(|e| format!("listing topics: {e}"))?;
        let Some(topic) = topics.into_iter().find(|t| t.name == settings.topic) else {
            return Err(format!(
                "topic {:?} does not exist on {}; create it (kafka-topics.sh --create --topic {})",
                settings.topic,
                settings.brokers.join(","),
                settings.topic
            ));
        };
        let mut clients = Vec::with_capacity(topic.partitions.len());
        for partition in topic.partitions {
            let client = client
                .partition_client(
                    settings.topic.clone(),
                    partition,
                    UnknownTopicHandling::Retry,
                )
                .await
                .map_err(|e| format!("partition {partition}: {e}"))?;
            clients.push(client);
        }
        if clients.is_empty() {
            return Err(format!("topic {:?} has no partitions", settings.topic));
        }
        Ok(clients)
    }

    async fn partitions(&self) -> Result<Arc<Vec<PartitionClient>>, String> {
        let mut slot = self.partitions.lock().await;
        if let Some(partitions) = slot.as_ref() {
            return Ok(partitions.clone());
        }
        let partitions = Arc::new(self.connect().await?);
        *slot = Some(partitions.clone());
        Ok(partitions)
    }
}

/// Splits the lines that fit into produce requests of at most `max_bytes`; returns the
/// requests (as line indexes) and the lines too large for any request.
fn plan_requests(lines: &[&[u8]], max_bytes: usize) -> (Vec<Vec<usize>>, Vec<usize>) {
    let mut requests = Vec::new();
    let mut oversized = Vec::new();
    let mut current = Vec::new();
    let mut size = BATCH_OVERHEAD;
    for (i, line) in lines.iter().enumerate() {
        let cost = line.len() + RECORD_OVERHEAD;
        if BATCH_OVERHEAD + cost > max_bytes {
            oversized.push(i);
            continue;
        }
        if size + cost > max_bytes && !current.is_empty() {
            requests.push(std::mem::take(&mut current));
            size = BATCH_OVERHEAD;
        }
        current.push(i);
        size += cost;
    }
    if !current.is_empty() {
        requests.push(current);
    }
    (requests, oversized)
}

#[async_trait]
impl Delivery for KafkaDelivery {
    fn kind(&self) -> &'static str {
        "kafka"
    }

    fn describe(&self) -> String {
        format!(
            "kafka topic {} at {}",
            self.settings.topic,
            self.settings.brokers.join(",")
        )
    }

    async fn check(&self) -> Result<(), String> {
        self.partitions().await.map(|_| ())
    }

    async fn deliver(&self, lines: &[&[u8]], _batch: BatchId) -> Result<(), DeliveryError> {
        let (requests, oversized) = plan_requests(lines, self.settings.max_message_bytes);
        if !requests.is_empty() {
            let partitions = self.partitions().await.map_err(DeliveryError::Retry)?;
            // One batch, one partition: the lines of a batch stay in order.
            let turn = self.next_partition.fetch_add(1, Ordering::Relaxed);
            let partition = &partitions[turn % partitions.len()];
            let now = chrono::Utc::now();
            for request in requests {
                let records = request
                    .iter()
                    .map(|&i| Record {
                        key: None,
                        value: Some(lines[i].to_vec()),
                        headers: Default::default(),
                        timestamp: now,
                    })
                    .collect();
                if let Err(error) = partition.produce(records, Compression::NoCompression).await {
                    *self.partitions.lock().await = None;
                    return Err(DeliveryError::Retry(format!(
                        "producing to partition {}: {error}",
                        partition.partition()
                    )));
                }
            }
        }
        if oversized.is_empty() {
            Ok(())
        } else {
            Err(DeliveryError::Rejected(
                oversized,
                format!(
                    "larger than --kafka-max-message-bytes ({})",
                    self.settings.max_message_bytes
                ),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_stay_under_the_message_limit_and_keep_line_order() {
        let small = [b'a'; 100];
        let big = [b'b'; 2000];
        let lines: Vec<&[u8]> = vec![&small, &small, &big, &small, &small, &small];
        // Room for the batch framing and three small records, not four.
        let max = BATCH_OVERHEAD + 3 * (100 + RECORD_OVERHEAD) + 10;
        let (requests, oversized) = plan_requests(&lines, max);
        assert_eq!(requests, vec![vec![0, 1, 3], vec![4, 5]]);
        assert_eq!(oversized, vec![2]);
    }

    #[test]
    fn nothing_is_planned_for_nothing() {
        let (requests, oversized) = plan_requests(&[], 1_000_000);
        assert!(requests.is_empty() && oversized.is_empty());
    }
}
