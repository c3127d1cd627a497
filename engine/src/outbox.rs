//! `Outbox`: the queue of this node's live-query answers on their way to their campaigns' logs
//! in a shared relay.
//!
//! - Its task is spawned by [`Engine::start`](crate::engine::Engine::start) when nodes share a
//!   relay; the [`CampaignRouter`](crate::router::CampaignRouter) hands it every answer.
//! - Sends answers in batches; keeps them through a relay outage, retrying with backoff, for
//!   up to fifteen minutes (then counts them as dropped).
//! - Stops when the engine shuts down: what is still queued then is not sent.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::counters::CampaignCounters;
use crate::live::HostResult;
use crate::relay::Relay;

/// Answers sent per relay round trip at most.
const OUTBOX_BATCH: usize = 256;
/// An answer the relay could not take for this long is given up (and counted as dropped):
/// every campaign has ended by then.
const OUTBOX_KEEP: Duration = Duration::from_secs(15 * 60);

/// Where the router puts answers on their way to the relay.
pub(crate) struct Outbox {
    queue: mpsc::UnboundedSender<(Instant, HostResult)>,
}

/// The receiving end of the [`Outbox`], read by [`relay_answers`].
pub(crate) struct OutboxQueue {
    receiver: mpsc::UnboundedReceiver<(Instant, HostResult)>,
}

impl Outbox {
    pub(crate) fn new() -> (Outbox, OutboxQueue) {
        let (queue, receiver) = mpsc::unbounded_channel();
        (Outbox { queue }, OutboxQueue { receiver })
    }

    pub(crate) fn send(&self, result: HostResult) {
        // After the engine's shutdown nobody reads the queue: the answer is not sent, as if
        // the process had ended.
        let _ = self.queue.send((Instant::now(), result));
    }
}

/// The outbox task: sends queued answers to the relay in batches, each batch until it is
/// through or has expired.
pub(crate) async fn relay_answers(
    mut queue: OutboxQueue,
    relay: Arc<dyn Relay>,
    counters: Arc<CampaignCounters>,
) {
    let mut batch = Vec::with_capacity(OUTBOX_BATCH);
    while queue.receiver.recv_many(&mut batch, OUTBOX_BATCH).await > 0 {
        send_batch(&mut batch, relay.as_ref(), &counters).await;
        batch.clear();
    }
}

/// Sends one batch, retrying with backoff (100 ms doubling to 5 s) while the relay is
/// unreachable; answers older than [`OUTBOX_KEEP`] are given up and counted as dropped.
async fn send_batch(
    batch: &mut Vec<(Instant, HostResult)>,
    relay: &dyn Relay,
    counters: &CampaignCounters,
) {
    let mut delay = Duration::from_millis(100);
    loop {
        let results: Vec<HostResult> = batch.iter().map(|(_, result)| result.clone()).collect();
        let error = match relay.send_results(&results).await {
            Ok(()) => {
                counters.results_relayed.add(results.len() as u64);
                return;
            }
            Err(error) => error,
        };
        let before = batch.len();
        batch.retain(|(at, _)| at.elapsed() < OUTBOX_KEEP);
        let expired = before - batch.len();
        if expired > 0 {
            counters.results_dropped.add(expired as u64);
            tracing::error!(answers = expired, %error, "gave up relaying live-query answers after the relay stayed unreachable");
        }
        if batch.is_empty() {
            return;
        }
        tracing::warn!(answers = batch.len(), %error, "relay unreachable; keeping live-query answers to send when it returns");
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}
