//! `WebhookOutput`: osquery log lines POSTed to an HTTP receiver in batches, through a bounded
//! on-disk spool, so a slow or unreachable receiver loses nothing.
//!
//! A log request's lines are appended to the spool (`<spool dir>/<seq>.jsonl`) and flushed to
//! the operating system before the request is answered; from then on they survive a receiver
//! outage and a restart of this server. One sender task takes the oldest segment, POSTs its
//! lines as JSON arrays of at most `batch_lines` lines, retries each batch with exponential
//! backoff until the receiver answers 2xx, and deletes the segment once all its batches are
//! through. When the spool holds `max_spool_bytes`, writes fail, and the log endpoint answers
//! 413 so osquery keeps the lines in its own buffer and sends them again later.
//!
//! Delivery is at least once: a batch whose 2xx answer was lost, or a segment half sent when
//! the server stopped, is sent again.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;

/// How the webhook output behaves.
#[derive(Clone, Debug)]
pub struct WebhookSettings {
    pub url: String,
    /// Lines per POST at most.
    pub batch_lines: usize,
    /// Spool size at which writes are refused (and osquery told to keep its buffer).
    pub max_spool_bytes: u64,
    /// The first retry waits this long; each further one twice as long, up to `max_backoff`.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// Per-request timeout.
    pub timeout: Duration,
}

impl WebhookSettings {
    pub fn new(url: String) -> WebhookSettings {
        WebhookSettings {
            url,
            batch_lines: 500,
            max_spool_bytes: 1 << 30,
            min_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(30),
            timeout: Duration::from_secs(30),
        }
    }
}

/// A segment is closed (and becomes sendable) once it reaches this size, or when the sender
/// finds nothing else to send.
const SEGMENT_BYTES: u64 = 4 << 20;

struct Spool {
    dir: PathBuf,
    /// The segment being appended to: its number, file and size.
    current: Option<(u64, File, u64)>,
    next_seq: u64,
}

impl Spool {
    fn segment_path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{seq:012}.jsonl"))
    }

    /// Segment numbers present on disk, oldest first.
    fn segments(dir: &Path) -> io::Result<Vec<u64>> {
        let mut seqs: Vec<u64> = fs::read_dir(dir)?
            .flatten()
            .filter_map(|entry| {
                let name = entry.file_name();
                let name = name.to_str()?;
                name.strip_suffix(".jsonl")?.parse().ok()
            })
            .collect();
        seqs.sort_unstable();
        Ok(seqs)
    }

    fn append(&mut self, buffer: &[u8]) -> io::Result<()> {
        if self.current.is_none() {
            let seq = self.next_seq;
            self.next_seq += 1;
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.segment_path(seq))?;
            self.current = Some((seq, file, 0));
        }
        let (_, file, size) = self.current.as_mut().expect("opened above");
        file.write_all(buffer)?;
        file.flush()?;
        *size += buffer.len() as u64;
        if *size >= SEGMENT_BYTES {
            self.current = None;
        }
        Ok(())
    }

    /// The oldest segment that nobody appends to any more, closing the current one if it is
    /// the only one with data.
    fn oldest_closed(&mut self) -> io::Result<Option<u64>> {
        let open = self.current.as_ref().map(|(seq, _, _)| *seq);
        let seqs = Spool::segments(&self.dir)?;
        if let Some(&oldest) = seqs.iter().find(|&&s| Some(s) != open) {
            return Ok(Some(oldest));
        }
        match self.current.take() {
            Some((seq, _, size)) if size > 0 => Ok(Some(seq)),
            Some(current) => {
                self.current = Some(current);
                Ok(None)
            }
            None => Ok(None),
        }
    }
}

/// Counters tests and logs read.
#[derive(Debug, Default)]
pub struct WebhookCounters {
    pub batches_sent: AtomicU64,
    pub lines_sent: AtomicU64,
    pub failed_attempts: AtomicU64,
}

pub struct WebhookOutput {
    spool: Mutex<Spool>,
    /// Bytes on disk in the spool, sent or not yet deleted.
    spooled: AtomicU64,
    settings: WebhookSettings,
    wake: Arc<Notify>,
    pub counters: WebhookCounters,
}

impl WebhookOutput {
    /// Opens the spool in `dir` (keeping what a previous run left unsent) and starts the
    /// sender on the current tokio runtime.
    pub fn start(dir: &Path, settings: WebhookSettings) -> io::Result<Arc<WebhookOutput>> {
        fs::create_dir_all(dir)?;
        let seqs = Spool::segments(dir)?;
        let spooled = seqs
            .iter()
            .filter_map(|seq| fs::metadata(dir.join(format!("{seq:012}.jsonl"))).ok())
            .map(|m| m.len())
            .sum();
        let output = Arc::new(WebhookOutput {
            spool: Mutex::new(Spool {
                dir: dir.to_path_buf(),
                current: None,
                next_seq: seqs.last().map_or(1, |s| s + 1),
            }),
            spooled: AtomicU64::new(spooled),
            settings,
            wake: Arc::new(Notify::new()),
            counters: WebhookCounters::default(),
        });
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(output.settings.timeout)
            .build()
            .map_err(io::Error::other)?;
        tokio::spawn(send_loop(Arc::downgrade(&output), client));
        Ok(output)
    }

    /// Spools complete lines. Fails when the spool is full, so nothing is accepted that
    /// cannot be kept.
    pub fn write(&self, buffer: &[u8]) -> io::Result<()> {
        let size = buffer.len() as u64;
        if self.spooled.load(Ordering::Acquire) + size > self.settings.max_spool_bytes {
            return Err(io::Error::other(format!(
                "the webhook spool is full ({} bytes waiting for {})",
                self.spooled.load(Ordering::Acquire),
                self.settings.url
            )));
        }
        self.spool.lock().append(buffer)?;
        self.spooled.fetch_add(size, Ordering::AcqRel);
        self.wake.notify_one();
        Ok(())
    }

    /// Bytes waiting in the spool.
    pub fn spooled_bytes(&self) -> u64 {
        self.spooled.load(Ordering::Acquire)
    }
}

/// Sends segments oldest first until the output is dropped.
async fn send_loop(output: std::sync::Weak<WebhookOutput>, client: reqwest::Client) {
    loop {
        let Some(this) = output.upgrade() else { return };
        let next = {
            let mut spool = this.spool.lock();
            spool
                .oldest_closed()
                .map(|seq| seq.map(|seq| spool.segment_path(seq)))
        };
        match next {
            Ok(Some(path)) => send_segment(&this, &client, &path).await,
            Ok(None) => {
                let wake = this.wake.clone();
                drop(this);
                let notified = wake.notified();
                // Wake on a write, or look again in a while in case the output was dropped.
                let _ = tokio::time::timeout(Duration::from_secs(1), notified).await;
            }
            Err(error) => {
                tracing::error!(%error, "reading the webhook spool");
                drop(this);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

async fn send_segment(output: &WebhookOutput, client: &reqwest::Client, path: &Path) {
    let data = match tokio::fs::read(path).await {
        Ok(data) => data,
        Err(error) => {
            tracing::error!(%error, path = %path.display(), "reading a webhook spool segment");
            tokio::time::sleep(Duration::from_secs(1)).await;
            return;
        }
    };
    let lines: Vec<&[u8]> = data
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .collect();
    for batch in lines.chunks(output.settings.batch_lines.max(1)) {
        let mut body = Vec::with_capacity(batch.iter().map(|l| l.len() + 1).sum::<usize>() + 2);
        body.push(b'[');
        for (i, line) in batch.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(line);
        }
        body.push(b']');
        post_until_accepted(output, client, body, batch.len()).await;
    }
    if let Err(error) = tokio::fs::remove_file(path).await {
        tracing::error!(%error, path = %path.display(), "removing a sent webhook spool segment");
    }
    output
        .spooled
        .fetch_sub(data.len() as u64, Ordering::AcqRel);
}

async fn post_until_accepted(
    output: &WebhookOutput,
    client: &reqwest::Client,
    body: Vec<u8>,
    lines: usize,
) {
    let settings = &output.settings;
    let mut backoff = settings.min_backoff;
    loop {
        let result = client
            .post(&settings.url)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await;
        let failure = match result {
            Ok(response) if response.status().is_success() => {
                output.counters.batches_sent.fetch_add(1, Ordering::Relaxed);
                output
                    .counters
                    .lines_sent
                    .fetch_add(lines as u64, Ordering::Relaxed);
                return;
            }
            Ok(response) => format!("the receiver answered {}", response.status()),
            Err(error) => error.to_string(),
        };
        output
            .counters
            .failed_attempts
            .fetch_add(1, Ordering::Relaxed);
        tracing::warn!(url = %settings.url, error = %failure, retry_in = ?backoff, "webhook delivery failed; the batch stays spooled");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(settings.max_backoff);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_spool_refuses_writes_and_keeps_what_it_has() {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = WebhookSettings::new("http://127.0.0.1:9/never".into());
        settings.max_spool_bytes = 100;
        settings.min_backoff = Duration::from_secs(60);
        let output = WebhookOutput::start(dir.path(), settings).unwrap();
        output.write(&[b'x'; 60]).unwrap();
        assert!(output.write(&[b'y'; 60]).is_err(), "over the bound");
        assert_eq!(output.spooled_bytes(), 60);
        let on_disk: u64 = Spool::segments(dir.path())
            .unwrap()
            .iter()
            .map(|s| {
                fs::metadata(dir.path().join(format!("{s:012}.jsonl")))
                    .unwrap()
                    .len()
            })
            .sum();
        assert_eq!(on_disk, 60);
    }
}
