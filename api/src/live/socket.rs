//! The results-websocket session: `auth`, `select_campaign`, then the campaign's events until
//! it finishes. Generic over the socket's halves so tests drive it with channels.

use std::future::Future;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, close_code};
use flotilla_engine::{CampaignId, Campaigns};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use serde::Deserialize;
use serde_json::Value;

use super::wire;

/// Who authenticated on the socket.
#[derive(Clone, Copy, Debug)]
pub struct SessionUser {
    pub id: u64,
    /// Global admins may watch any campaign; others only their own (Fleet's rule).
    pub is_admin: bool,
}

/// How long a client has to send each of its two messages.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Sessions cut off because a message could not be sent within the send timeout.
pub static SEND_TIMEOUTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

#[derive(Deserialize)]
struct Incoming {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    data: Value,
}

enum Handshake {
    Message(Incoming),
    /// The client left, or sent something that ends the session; the text says what.
    End(Option<String>),
}

async fn next_message<Rx>(rx: &mut Rx) -> Handshake
where
    Rx: Stream<Item = Result<Message, axum::Error>> + Unpin,
{
    loop {
        let frame = match tokio::time::timeout(HANDSHAKE_TIMEOUT, rx.next()).await {
            Err(_) => return Handshake::End(Some("timed out waiting for a message".into())),
            Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => return Handshake::End(None),
            Ok(Some(Ok(frame))) => frame,
        };
        let text = match frame {
            Message::Text(text) => text,
            Message::Ping(_) | Message::Pong(_) => continue,
            Message::Binary(_) => {
                return Handshake::End(Some("expected a JSON text message".into()));
            }
            Message::Close(_) => return Handshake::End(None),
        };
        return match serde_json::from_str::<Incoming>(text.as_str()) {
            Ok(message) => Handshake::Message(message),
            Err(e) => Handshake::End(Some(format!(
                "invalid message (expected {{\"type\", \"data\"}} JSON): {e}"
            ))),
        };
    }
}

/// How long one message may take to leave: a client that stops reading is cut off after it,
/// and what was queued for it is given back, rather than held for as long as the socket stays
/// open (`--websocket-send-timeout`).
#[derive(Clone, Copy, Debug)]
pub struct SendTimeout(pub Duration);

/// Sends `text`; false when the client is gone or did not take it within `timeout`.
async fn send<Tx: Sink<Message> + Unpin>(tx: &mut Tx, timeout: SendTimeout, text: &str) -> bool {
    match tokio::time::timeout(timeout.0, tx.send(Message::Text(text.into()))).await {
        Ok(sent) => sent.is_ok(),
        Err(_) => {
            SEND_TIMEOUTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::info!("a results websocket client stopped reading; its session is ended");
            false
        }
    }
}

async fn close<Tx: Sink<Message> + Unpin>(tx: &mut Tx, timeout: SendTimeout, error: Option<&str>) {
    if let Some(error) = error
        && !send(tx, timeout, &wire::error(error)).await
    {
        return;
    }
    let frame = Message::Close(Some(CloseFrame {
        code: close_code::NORMAL,
        reason: "".into(),
    }));
    let _ = tokio::time::timeout(timeout.0, tx.send(frame)).await;
}

pub async fn run_session<Tx, Rx, F, Fut>(
    mut tx: Tx,
    mut rx: Rx,
    campaigns: Campaigns,
    timeout: SendTimeout,
    authenticate: F,
) where
    Tx: Sink<Message> + Unpin,
    Rx: Stream<Item = Result<Message, axum::Error>> + Unpin,
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = Option<SessionUser>>,
{
    let auth = match next_message(&mut rx).await {
        Handshake::Message(m) if m.kind == "auth" => m,
        Handshake::Message(m) => {
            return close(
                &mut tx,
                timeout,
                Some(&format!("expected auth, got {}", m.kind)),
            )
            .await;
        }
        Handshake::End(why) => return close(&mut tx, timeout, why.as_deref()).await,
    };
    let token = auth
        .data
        .get("token")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let Some(user) = authenticate(token).await else {
        return close(&mut tx, timeout, Some("unauthorized")).await;
    };

    let select = match next_message(&mut rx).await {
        Handshake::Message(m) if m.kind == "select_campaign" => m,
        Handshake::Message(m) => {
            return close(
                &mut tx,
                timeout,
                Some(&format!("expected select_campaign, got {}", m.kind)),
            )
            .await;
        }
        Handshake::End(why) => return close(&mut tx, timeout, why.as_deref()).await,
    };
    let id = match select.data.get("campaign_id").and_then(Value::as_u64) {
        Some(id) if id > 0 => CampaignId(id),
        _ => {
            return close(
                &mut tx,
                timeout,
                Some("campaign_id must be a positive integer"),
            )
            .await;
        }
    };
    let Some(entry) = campaigns.get(id) else {
        return close(
            &mut tx,
            timeout,
            Some(&format!("cannot find campaign for ID {id}")),
        )
        .await;
    };
    if !user.is_admin && entry.owner != Some(user.id) {
        return close(&mut tx, timeout, Some("forbidden")).await;
    }
    let Ok(mut subscription) = campaigns.subscribe(id).await else {
        return close(
            &mut tx,
            timeout,
            Some(&format!("cannot find campaign for ID {id}")),
        )
        .await;
    };

    loop {
        tokio::select! {
            event = subscription.next() => match event {
                Some(event) => {
                    if !send(&mut tx, timeout, &wire::event(&event)).await {
                        return;
                    }
                }
                None => {
                    let why = subscription.overflowed().then_some(
                        "this client could not keep up with the results and was disconnected; \
                         the campaign goes on: reconnect and select it again to receive every result",
                    );
                    return close(&mut tx, timeout, why).await;
                }
            },
            incoming = rx.next() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(_)) => {
                    if !send(&mut tx, timeout, &wire::error("unexpected message: after select_campaign this socket only sends results")).await {
                        return;
                    }
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use flotilla_engine::campaigns::NewCampaign;
    use flotilla_engine::enroll::EnrollRequest;
    use flotilla_engine::host::HostResults;
    use flotilla_engine::live::LiveAnswer;
    use flotilla_engine::memory_store::MemoryStore;
    use flotilla_engine::store::{CampaignRecord, EnrollSecret};
    use flotilla_engine::{CampaignConfig, CampaignRouter, EngineConfig, HostId, Hosts, unix_now};
    use tokio::sync::mpsc;

    struct Client {
        to_server: mpsc::UnboundedSender<Message>,
        from_server: mpsc::UnboundedReceiver<Message>,
    }

    impl Client {
        fn send(&self, text: &str) {
            self.to_server.send(Message::Text(text.into())).unwrap();
        }

        /// Messages until the server closes: JSON values, then `None` for the close frame.
        async fn receive_all(&mut self) -> Vec<Value> {
            let mut messages = Vec::new();
            while let Some(message) = self.from_server.recv().await {
                match message {
                    Message::Text(text) => {
                        messages.push(serde_json::from_str(text.as_str()).unwrap())
                    }
                    Message::Close(_) => break,
                    _ => {}
                }
            }
            messages
        }
    }

    /// A session on channels; the token "good" is user 1, "other" is user 2.
    fn session(campaigns: Campaigns) -> Client {
        let (to_server, server_rx) = mpsc::unbounded_channel::<Message>();
        let (server_tx, from_server) = mpsc::unbounded_channel::<Message>();
        let rx = futures_util::stream::unfold(server_rx, |mut rx| async move {
            rx.recv().await.map(|m| (Ok::<_, axum::Error>(m), rx))
        });
        let tx = futures_util::sink::unfold(server_tx, |tx, m: Message| async move {
            tx.send(m).map_err(|_| ())?;
            Ok::<_, ()>(tx)
        });
        tokio::spawn(async move {
            run_session(
                Box::pin(tx),
                Box::pin(rx),
                campaigns,
                SendTimeout(Duration::from_secs(30)),
                |token| async move {
                    match token.as_str() {
                        "good" => Some(SessionUser {
                            id: 1,
                            is_admin: false,
                        }),
                        "other" => Some(SessionUser {
                            id: 2,
                            is_admin: false,
                        }),
                        _ => None,
                    }
                },
            )
            .await
        });
        Client {
            to_server,
            from_server,
        }
    }

    async fn one_host_campaign() -> (Hosts, Campaigns, String, CampaignId) {
        let store = Arc::new(MemoryStore::default());
        store.secrets.lock().push(EnrollSecret {
            secret: "s".into(),
            team: None,
        });
        let router = CampaignRouter::new();
        let hosts = Hosts::start(
            store.clone(),
            EngineConfig::default(),
            Arc::new(router.clone()),
        )
        .await
        .unwrap();
        let campaigns = Campaigns::new(router, hosts.clone(), store, CampaignConfig::default());
        let request = EnrollRequest {
            enroll_secret: "s".into(),
            host_identifier: "web-1".into(),
            system_info: Some([("hostname".to_string(), "web-1".to_string())].into()),
            ..EnrollRequest::default()
        };
        let key = hosts.enroll(request, unix_now()).await.unwrap();
        let started = campaigns
            .start(NewCampaign {
                record: CampaignRecord {
                    sql: "SELECT 1".into(),
                    query_id: None,
                    user_id: Some(1),
                    selected: vec![],
                    created_at: 0,
                },
                targets: vec![HostId(1)],
                deadline: None,
            })
            .await
            .unwrap();
        (hosts, campaigns, key.as_str().to_owned(), started.id)
    }

    #[tokio::test]
    async fn streams_totals_status_results_then_closes_when_finished() {
        let (hosts, campaigns, key, id) = one_host_campaign().await;
        let mut client = session(campaigns);
        client.send(r#"{"type":"auth","data":{"token":"good"}}"#);
        client.send(&format!(
            r#"{{"type":"select_campaign","data":{{"campaign_id":{id}}}}}"#
        ));
        tokio::time::sleep(Duration::from_millis(50)).await;
        hosts.read(&key, unix_now()).await.unwrap();
        let answer = LiveAnswer {
            campaign: id,
            rows: r#"[{"x":"1"}]"#.into(),
            row_count: 1,
            error: None,
            stats: None,
        };
        hosts
            .write(
                &key,
                unix_now(),
                HostResults {
                    details: vec![],
                    live: vec![answer],
                    labels: vec![],
                    policies: vec![],
                },
            )
            .await
            .unwrap();
        let messages = client.receive_all().await;
        let kinds: Vec<&str> = messages
            .iter()
            .map(|m| m["type"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["totals", "status", "result", "status"]);
        assert_eq!(messages[0]["data"]["count"], 1);
        assert_eq!(messages[1]["data"]["status"], "pending");
        assert_eq!(messages[2]["data"]["rows"][0]["host_hostname"], "web-1");
        assert_eq!(
            messages[3]["data"],
            serde_json::json!({"expected_results":1,"actual_results":1,"status":"finished"})
        );
    }

    #[tokio::test]
    async fn bad_tokens_garbage_and_other_peoples_campaigns_get_an_error_then_close() {
        let (_hosts, campaigns, _key, id) = one_host_campaign().await;
        let select = format!(r#"{{"type":"select_campaign","data":{{"campaign_id":{id}}}}}"#);
        let cases: Vec<(Vec<String>, &str)> = vec![
            (
                vec![r#"{"type":"auth","data":{"token":"bad"}}"#.into()],
                "unauthorized",
            ),
            (vec!["not json at all".into()], "invalid message"),
            (
                vec![r#"{"type":"select_campaign","data":{}}"#.into()],
                "expected auth",
            ),
            (
                vec![
                    r#"{"type":"auth","data":{"token":"other"}}"#.into(),
                    select.clone(),
                ],
                "forbidden",
            ),
            (
                vec![
                    r#"{"type":"auth","data":{"token":"good"}}"#.into(),
                    r#"{"type":"select_campaign","data":{"campaign_id":0}}"#.into(),
                ],
                "positive integer",
            ),
            (
                vec![
                    r#"{"type":"auth","data":{"token":"good"}}"#.into(),
                    r#"{"type":"select_campaign","data":{"campaign_id":999}}"#.into(),
                ],
                "cannot find campaign",
            ),
        ];
        for (sent, expected) in cases {
            let mut client = session(campaigns.clone());
            for text in &sent {
                client.send(text);
            }
            let messages = client.receive_all().await;
            assert_eq!(messages.len(), 1, "{sent:?}: {messages:?}");
            assert_eq!(messages[0]["type"], "error");
            assert!(
                messages[0]["data"].as_str().unwrap().contains(expected),
                "{sent:?}: {messages:?}"
            );
        }
        assert_eq!(
            campaigns.active(),
            1,
            "refused sessions did not touch the campaign"
        );
    }
}
