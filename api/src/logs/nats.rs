//! The `nats` log destination: each osquery log line one NATS message on the log's subject
//! (`osquery.result`, `osquery.status` by default), published with the `async-nats` client
//! through the spool ([`crate::logs::spool`]), so an outage loses nothing.
//!
//! When a JetStream stream captures the subject, every message is published to JetStream and
//! the batch counts as delivered only once the stream has acknowledged each one; the message
//! carries a `Nats-Msg-Id` made of the node, the spool segment, the batch and the line, so a
//! batch sent again after a lost acknowledgement is dropped by the stream's duplicate window
//! rather than stored twice. Without a stream, messages are published plainly and the batch is
//! delivered once the server has answered a flush (it has them; there is nobody to store them).
//! The stream is looked up again every minute, so one created later is used from then on.
//!
//! A line larger than the server's `max_payload` can never be published; it is set aside by the
//! spool rather than blocking the lines behind it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_trait::async_trait;
use bytes::Bytes;

use crate::client::http::Trust;
use crate::logs::redact_url;
use crate::logs::spool::{BatchId, Delivery, DeliveryError};

/// How a NATS connection proves who it is.
#[derive(Clone, Debug, Default)]
pub enum NatsAuth {
    #[default]
    None,
    UserPassword(String, String),
    Token(String),
    /// A file holding an NKey seed (`SU…`).
    NKeySeedFile(PathBuf),
    /// A `.creds` file: a user JWT and its NKey seed.
    CredentialsFile(PathBuf),
}

#[derive(Clone, Debug)]
pub struct NatsSettings {
    /// Server URLs (`nats://host:4222`, `tls://…`); the client fails over between them.
    pub servers: Vec<String>,
    pub subject: String,
    pub auth: NatsAuth,
    /// Connect with TLS, trusting this.
    pub tls: Option<Trust>,
    /// This node's name, in message ids.
    pub node: String,
    /// How long one attempt (connect, publish, acknowledgements) may take before the spool
    /// sees a failure and backs off.
    pub attempt_timeout: Duration,
}

impl NatsSettings {
    pub fn new(servers: Vec<String>, subject: String, node: String) -> NatsSettings {
        NatsSettings {
            servers,
            subject,
            auth: NatsAuth::None,
            tls: None,
            node,
            attempt_timeout: Duration::from_secs(15),
        }
    }
}

struct Connection {
    client: async_nats::Client,
    /// Set when a JetStream stream captures the subject.
    jetstream: Option<async_nats::jetstream::Context>,
    looked_up: Instant,
}

/// How often to look again for a stream on the subject.
const STREAM_LOOKUP_EVERY: Duration = Duration::from_secs(60);

pub struct NatsDelivery {
    settings: NatsSettings,
    connection: tokio::sync::Mutex<Option<Connection>>,
}

impl NatsDelivery {
    pub fn new(settings: NatsSettings) -> NatsDelivery {
        NatsDelivery {
            settings,
            connection: tokio::sync::Mutex::new(None),
        }
    }

    async fn connect(&self) -> Result<async_nats::Client, String> {
        let settings = &self.settings;
        let mut options = match &settings.auth {
            NatsAuth::None => async_nats::ConnectOptions::new(),
            NatsAuth::UserPassword(user, password) => {
                async_nats::ConnectOptions::with_user_and_password(user.clone(), password.clone())
            }
            NatsAuth::Token(token) => async_nats::ConnectOptions::with_token(token.clone()),
            NatsAuth::NKeySeedFile(path) => {
                let seed = tokio::fs::read_to_string(path)
                    .await
                    .map_err(|e| format!("reading the NKey seed {}: {e}", path.display()))?;
                async_nats::ConnectOptions::with_nkey(seed.trim().to_owned())
            }
            NatsAuth::CredentialsFile(path) => {
                async_nats::ConnectOptions::with_credentials_file(path)
                    .await
                    .map_err(|e| format!("reading the credentials {}: {e}", path.display()))?
            }
        }
        .name("flotilla")
        .connection_timeout(settings.attempt_timeout)
        .request_timeout(Some(settings.attempt_timeout));
        if let Some(trust) = &settings.tls {
            let config = trust.rustls_config().map_err(|e| e.to_string())?;
            options = options.require_tls(true).tls_client_config(config);
        }
        let servers: Vec<async_nats::ServerAddr> = settings
            .servers
            .iter()
            .map(|url| {
                url.parse()
                    .map_err(|e| format!("NATS server {}: {e}", redact_url(url)))
            })
            .collect::<Result<_, _>>()?;
        options
            .connect(servers)
            .await
            .map_err(|e| format!("connecting to {}: {e}", self.describe_servers()))
    }

    /// The stream capturing the subject, if there is one.
    async fn look_up_stream(
        &self,
        client: &async_nats::Client,
    ) -> Option<async_nats::jetstream::Context> {
        let jetstream = async_nats::jetstream::new(client.clone());
        match jetstream
            .stream_by_subject(self.settings.subject.clone())
            .await
        {
            Ok(stream) => {
                tracing::debug!(subject = %self.settings.subject, %stream, "publishing to JetStream");
                Some(jetstream)
            }
            Err(error) => {
                tracing::debug!(subject = %self.settings.subject, %error,
                    "no JetStream stream for the subject; publishing plainly");
                None
            }
        }
    }

    /// Connects (and looks up the stream) unless connected already.
    async fn ensure_connected(&self, slot: &mut Option<Connection>) -> Result<(), String> {
        if slot.is_some() {
            return Ok(());
        }
        let client = tokio::time::timeout(self.settings.attempt_timeout, self.connect())
            .await
            .map_err(|_| format!("connecting to {} timed out", self.describe_servers()))??;
        let jetstream = self.look_up_stream(&client).await;
        *slot = Some(Connection {
            client,
            jetstream,
            looked_up: Instant::now(),
        });
        Ok(())
    }

    fn describe_servers(&self) -> String {
        self.settings
            .servers
            .iter()
            .map(|url| redact_url(url))
            .collect::<Vec<_>>()
            .join(",")
    }

    async fn publish(
        &self,
        connection: &Connection,
        lines: &[&[u8]],
        keep: &[bool],
        batch: BatchId,
    ) -> Result<(), String> {
        let subject = &self.settings.subject;
        let client = &connection.client;
        match &connection.jetstream {
            Some(jetstream) => {
                let mut acks = Vec::with_capacity(lines.len());
                for (i, line) in lines.iter().enumerate().filter(|(i, _)| keep[*i]) {
                    let mut headers = HeaderMap::new();
                    headers.insert(
                        "Nats-Msg-Id",
                        format!(
                            "{}-{}-{}-{i}",
                            self.settings.node, batch.segment, batch.index
                        )
                        .as_str(),
                    );
                    let ack = jetstream
                        .publish_with_headers(
                            subject.clone(),
                            headers,
                            Bytes::copy_from_slice(line),
                        )
                        .await
                        .map_err(|e| format!("publishing to JetStream: {e}"))?;
                    acks.push(ack);
                }
                for ack in acks {
                    ack.await
                        .map_err(|e| format!("JetStream acknowledgement: {e}"))?;
                }
            }
            None => {
                for (_, line) in lines.iter().enumerate().filter(|(i, _)| keep[*i]) {
                    client
                        .publish(subject.clone(), Bytes::copy_from_slice(line))
                        .await
                        .map_err(|e| format!("publishing: {e}"))?;
                }
                client.flush().await.map_err(|e| format!("flushing: {e}"))?;
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Delivery for NatsDelivery {
    fn kind(&self) -> &'static str {
        "nats"
    }

    fn describe(&self) -> String {
        format!(
            "NATS subject {} on {}",
            self.settings.subject,
            self.describe_servers()
        )
    }

    async fn check(&self) -> Result<(), String> {
        let mut guard = self.connection.lock().await;
        self.ensure_connected(&mut guard).await
    }

    async fn deliver(&self, lines: &[&[u8]], batch: BatchId) -> Result<(), DeliveryError> {
        let timeout = self.settings.attempt_timeout;
        let mut guard = self.connection.lock().await;
        self.ensure_connected(&mut guard)
            .await
            .map_err(DeliveryError::Retry)?;
        let connection = guard.as_mut().expect("connected above");
        if connection.looked_up.elapsed() >= STREAM_LOOKUP_EVERY {
            connection.jetstream = self.look_up_stream(&connection.client).await;
            connection.looked_up = Instant::now();
        }
        // Header and protocol line beside the payload: stay clear of the limit.
        let max_payload = connection
            .client
            .server_info()
            .max_payload
            .saturating_sub(256);
        let keep: Vec<bool> = lines.iter().map(|l| l.len() <= max_payload).collect();
        let attempt = self.publish(connection, lines, &keep, batch);
        let result = match tokio::time::timeout(timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(format!("no answer within {timeout:?}")),
        };
        if let Err(error) = result {
            // Start again from a fresh connection (and stream lookup) next time.
            *guard = None;
            return Err(DeliveryError::Retry(error));
        }
        let rejected: Vec<usize> = (0..lines.len()).filter(|&i| !keep[i]).collect();
        if rejected.is_empty() {
            Ok(())
        } else {
            Err(DeliveryError::Rejected(
                rejected,
                format!("larger than the NATS server's max_payload ({max_payload} bytes)"),
            ))
        }
    }
}
