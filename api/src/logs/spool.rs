//! `SpooledOutput`: osquery log lines delivered to a remote destination (an HTTP receiver,
//! [`crate::logs::webhook`]; a Kafka topic, [`crate::logs::kafka`]) in batches, through a bounded on-disk
//! spool, so a slow or unreachable destination loses nothing.
//!
//! A log request's lines are appended to the spool (`<spool dir>/<seq>.jsonl`) and flushed to
//! the operating system before the request is answered; from then on they survive a
//! destination outage and a restart of this server. One sender task takes the oldest segment,
//! hands its lines to the [`Delivery`] in batches of at most `batch_lines` lines, retries each
//! batch with exponential backoff until it is accepted, and deletes the segment once all its
//! batches are through. A segment is closed when it reaches `segment_bytes`, or once it is
//! `linger` old and the sender has nothing older to send (the S3 destination lingers, to write
//! one object per window; the others close at once). Segment numbers never repeat, across
//! restarts too (the next one is kept in `<spool dir>/sequence`), so a batch's [`BatchId`]
//! names it uniquely: the S3 destination's object keys and the NATS message ids come from it.
//! When the spool holds `max_spool_bytes`, writes fail, and the log endpoint answers 413 so
//! osquery keeps the lines in its own buffer and sends them again later.
//!
//! Delivery is at least once: a batch whose acknowledgement was lost, or a segment half sent
//! when the server stopped, is sent again. A line the destination can never take (larger than
//! its message limit) is moved to `<spool dir>/rejected.jsonl` rather than blocking the lines
//! behind it, and counted.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use tokio::sync::Notify;

/// How a spooled output batches, bounds and retries.
#[derive(Clone, Debug)]
pub struct SpoolSettings {
    /// Lines per batch at most.
    pub batch_lines: usize,
    /// Spool size at which writes are refused (and osquery told to keep its buffer).
    pub max_spool_bytes: u64,
    /// The first retry waits this long; each further one twice as long, up to `max_backoff`.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// A segment is closed (and becomes sendable) once it reaches this size …
    pub segment_bytes: u64,
    /// … or once it is this old and nothing older waits (zero: as soon as the sender is idle).
    pub linger: Duration,
}

impl Default for SpoolSettings {
    fn default() -> Self {
        SpoolSettings {
            batch_lines: 500,
            max_spool_bytes: 1 << 30,
            min_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(30),
            segment_bytes: 4 << 20,
            linger: Duration::ZERO,
        }
    }
}

/// Why a batch was not delivered.
#[derive(Debug)]
pub enum DeliveryError {
    /// Worth retrying: the destination is down, slow or refused for now.
    Retry(String),
    /// These lines (indexes into the batch) can never be delivered, for the reason given; the
    /// rest of the batch was delivered.
    Rejected(Vec<usize>, String),
}

/// Which batch a delivery carries: the same on every attempt, and never used for another
/// batch, on this spool, even after a restart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchId {
    /// The segment's number.
    pub segment: u64,
    /// The batch's place in its segment, from 0.
    pub index: usize,
    /// When the segment was opened: when its first line was accepted.
    pub opened: std::time::SystemTime,
}

/// Where a spooled output's batches go.
#[async_trait]
pub trait Delivery: Send + Sync + 'static {
    /// The plugin's name: `webhook`, `kafka`, `nats`, `s3`.
    fn kind(&self) -> &'static str;

    /// The destination, for log lines and errors ("https://…", "kafka topic …"), with no
    /// secret in it.
    fn describe(&self) -> String;

    /// Whether the destination can take lines now: tried once at start, so a wrong bucket,
    /// subject or broker is named in the log at once (the lines wait in the spool meanwhile).
    async fn check(&self) -> Result<(), String> {
        Ok(())
    }

    /// Delivers `lines` (each one JSON document, without its newline). Returns once the
    /// destination has acknowledged them.
    async fn deliver(&self, lines: &[&[u8]], batch: BatchId) -> Result<(), DeliveryError>;
}

/// The segment being appended to.
struct Current {
    seq: u64,
    file: File,
    size: u64,
    opened: std::time::Instant,
}

struct Spool {
    dir: PathBuf,
    current: Option<Current>,
    next_seq: u64,
    segment_bytes: u64,
    linger: Duration,
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

    /// The first segment number this spool may use: past every segment on disk and past the
    /// number kept in `sequence`, so a restart with an empty spool does not reuse one.
    fn first_seq(dir: &Path, on_disk: &[u64]) -> u64 {
        let kept = fs::read_to_string(dir.join("sequence"))
            .ok()
            .and_then(|text| text.trim().parse::<u64>().ok())
            .unwrap_or(1);
        kept.max(on_disk.last().map_or(1, |s| s + 1))
    }

    /// Takes the next segment number, keeping the one after it on disk first (replaced whole
    /// by a rename; handed to the operating system like the segments themselves, not synced,
    /// so opening a segment costs no fsync on the log request's path).
    fn take_seq(&mut self) -> io::Result<u64> {
        let seq = self.next_seq;
        let temporary = self.dir.join("sequence.tmp");
        fs::write(&temporary, format!("{}\n", seq + 1))?;
        fs::rename(&temporary, self.dir.join("sequence"))?;
        self.next_seq = seq + 1;
        Ok(seq)
    }

    fn append(&mut self, buffer: &[u8]) -> io::Result<()> {
        if self.current.is_none() {
            let seq = self.take_seq()?;
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.segment_path(seq))?;
            // The segment's name is on disk too, not only its lines (once per segment).
            File::open(&self.dir)?.sync_all()?;
            self.current = Some(Current {
                seq,
                file,
                size: 0,
                opened: std::time::Instant::now(),
            });
        }
        let current = self.current.as_mut().expect("opened above");
        current.file.write_all(buffer)?;
        current.file.flush()?;
        current.size += buffer.len() as u64;
        if current.size >= self.segment_bytes {
            // Lines waiting for a sync may be in this segment: synced before it is let go.
            current.file.sync_data()?;
            self.current = None;
        }
        Ok(())
    }

    /// The oldest segment that nobody appends to any more, closing the current one if it is
    /// the only one with data and has lingered long enough.
    fn oldest_closed(&mut self) -> io::Result<Option<u64>> {
        let open = self.current.as_ref().map(|current| current.seq);
        let seqs = Spool::segments(&self.dir)?;
        if let Some(&oldest) = seqs.iter().find(|&&s| Some(s) != open) {
            return Ok(Some(oldest));
        }
        match self.current.take() {
            Some(current) if current.size > 0 && current.opened.elapsed() >= self.linger => {
                current.file.sync_data()?;
                Ok(Some(current.seq))
            }
            Some(current) => {
                self.current = Some(current);
                Ok(None)
            }
            None => Ok(None),
        }
    }

    /// When the oldest segment on disk was opened.
    fn oldest_opened(&self) -> Option<std::time::SystemTime> {
        let oldest = *Spool::segments(&self.dir).ok()?.first()?;
        segment_opened(&self.segment_path(oldest))
    }
}

/// When a segment was opened: its file's birth time where the file system keeps one, else its
/// last change.
fn segment_opened(path: &Path) -> Option<std::time::SystemTime> {
    let metadata = fs::metadata(path).ok()?;
    metadata.created().or_else(|_| metadata.modified()).ok()
}

/// Counters the metrics and tests read.
#[derive(Debug, Default)]
pub struct SpoolCounters {
    /// Lines accepted into the spool.
    pub lines_spooled: AtomicU64,
    pub batches_sent: AtomicU64,
    pub lines_sent: AtomicU64,
    pub failed_attempts: AtomicU64,
    /// Lines the destination can never take, moved to `rejected.jsonl`.
    pub lines_rejected: AtomicU64,
}

pub struct SpooledOutput {
    spool: Mutex<Spool>,
    /// Bytes on disk in the spool, sent or not yet deleted.
    spooled: AtomicU64,
    settings: SpoolSettings,
    delivery: Box<dyn Delivery>,
    wake: Arc<Notify>,
    pub counters: SpoolCounters,
}

impl SpooledOutput {
    /// Opens the spool in `dir` (keeping what a previous run left unsent) and starts the
    /// sender on the current tokio runtime.
    pub fn start(
        dir: &Path,
        settings: SpoolSettings,
        delivery: Box<dyn Delivery>,
    ) -> io::Result<Arc<SpooledOutput>> {
        fs::create_dir_all(dir)?;
        let seqs = Spool::segments(dir)?;
        let next_seq = Spool::first_seq(dir, &seqs);
        let spooled = seqs
            .iter()
            .filter_map(|seq| fs::metadata(dir.join(format!("{seq:012}.jsonl"))).ok())
            .map(|m| m.len())
            .sum();
        let output = Arc::new(SpooledOutput {
            spool: Mutex::new(Spool {
                dir: dir.to_path_buf(),
                current: None,
                next_seq,
                segment_bytes: settings.segment_bytes.max(1),
                linger: settings.linger,
            }),
            spooled: AtomicU64::new(spooled),
            settings,
            delivery,
            wake: Arc::new(Notify::new()),
            counters: SpoolCounters::default(),
        });
        tokio::spawn(send_loop(Arc::downgrade(&output)));
        Ok(output)
    }

    /// Spools complete lines. Fails when the spool is full, so nothing is accepted that
    /// cannot be kept.
    pub fn write(&self, buffer: &[u8]) -> io::Result<()> {
        let size = buffer.len() as u64;
        if self.spooled.load(Ordering::Acquire) + size > self.settings.max_spool_bytes {
            return Err(io::Error::other(format!(
                "the log spool is full ({} bytes waiting for {})",
                self.spooled.load(Ordering::Acquire),
                self.delivery.describe()
            )));
        }
        self.spool.lock().append(buffer)?;
        self.spooled.fetch_add(size, Ordering::AcqRel);
        let lines = buffer.iter().filter(|&&b| b == b'\n').count();
        self.counters
            .lines_spooled
            .fetch_add(lines as u64, Ordering::Relaxed);
        self.wake.notify_one();
        Ok(())
    }

    /// Syncs the segment being appended to, for the group commit
    /// ([`crate::logs::durable::GroupSync`]): the handle is taken under the lock, the sync runs
    /// without it. A segment let go of is synced as it is.
    pub fn sync_current(&self) -> io::Result<()> {
        let handle = self
            .spool
            .lock()
            .current
            .as_ref()
            .map(|current| current.file.try_clone())
            .transpose()?;
        handle.map_or(Ok(()), |file| file.sync_data())
    }

    /// The plugin's name, as [`Delivery::kind`].
    pub fn destination_kind(&self) -> &'static str {
        self.delivery.kind()
    }

    /// Bytes waiting in the spool.
    pub fn spooled_bytes(&self) -> u64 {
        self.spooled.load(Ordering::Acquire)
    }

    /// How long the oldest line still spooled has waited (zero when nothing waits).
    pub fn oldest_age(&self) -> Duration {
        if self.spooled_bytes() == 0 {
            return Duration::ZERO;
        }
        let opened = self.spool.lock().oldest_opened();
        opened
            .and_then(|opened| opened.elapsed().ok())
            .unwrap_or_default()
    }
}

/// Sends segments oldest first until the output is dropped.
async fn send_loop(output: std::sync::Weak<SpooledOutput>) {
    if let Some(this) = output.upgrade() {
        let delivery = &this.delivery;
        match delivery.check().await {
            Ok(()) => tracing::info!(destination = %delivery.describe(), "log destination ready"),
            Err(error) => tracing::error!(
                destination = %delivery.describe(),
                %error,
                "the log destination cannot take lines yet; they wait in the spool until it can"
            ),
        }
    }
    loop {
        let Some(this) = output.upgrade() else { return };
        let next = {
            let mut spool = this.spool.lock();
            spool
                .oldest_closed()
                .map(|seq| seq.map(|seq| (seq, spool.segment_path(seq))))
        };
        match next {
            Ok(Some((seq, path))) => send_segment(&this, seq, &path).await,
            Ok(None) => {
                let wake = this.wake.clone();
                drop(this);
                let notified = wake.notified();
                // Wake on a write, or look again in a while in case the output was dropped.
                let _ = tokio::time::timeout(Duration::from_secs(1), notified).await;
            }
            Err(error) => {
                tracing::error!(%error, "reading the log spool");
                drop(this);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

async fn send_segment(output: &SpooledOutput, seq: u64, path: &Path) {
    let opened = segment_opened(path).unwrap_or_else(std::time::SystemTime::now);
    let data = match tokio::fs::read(path).await {
        Ok(data) => data,
        Err(error) => {
            tracing::error!(%error, path = %path.display(), "reading a log spool segment");
            tokio::time::sleep(Duration::from_secs(1)).await;
            return;
        }
    };
    let lines: Vec<&[u8]> = data
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .collect();
    for (index, batch) in lines.chunks(output.settings.batch_lines.max(1)).enumerate() {
        let id = BatchId {
            segment: seq,
            index,
            opened,
        };
        deliver_until_accepted(output, batch, id).await;
    }
    if let Err(error) = tokio::fs::remove_file(path).await {
        tracing::error!(%error, path = %path.display(), "removing a delivered log spool segment");
    }
    output
        .spooled
        .fetch_sub(data.len() as u64, Ordering::AcqRel);
}

async fn deliver_until_accepted(output: &SpooledOutput, batch: &[&[u8]], id: BatchId) {
    let settings = &output.settings;
    let counters = &output.counters;
    let mut backoff = settings.min_backoff;
    loop {
        let failure = match output.delivery.deliver(batch, id).await {
            Ok(()) => {
                counters.batches_sent.fetch_add(1, Ordering::Relaxed);
                counters
                    .lines_sent
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                return;
            }
            Err(DeliveryError::Rejected(rejected, reason)) => {
                counters.batches_sent.fetch_add(1, Ordering::Relaxed);
                counters
                    .lines_sent
                    .fetch_add((batch.len() - rejected.len()) as u64, Ordering::Relaxed);
                keep_rejected(output, batch, &rejected, &reason);
                return;
            }
            Err(DeliveryError::Retry(failure)) => failure,
        };
        counters.failed_attempts.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            destination = %output.delivery.describe(),
            error = %failure,
            retry_in = ?backoff,
            "log delivery failed; the batch stays spooled"
        );
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(settings.max_backoff);
    }
}

/// Appends lines the destination refused for good to `rejected.jsonl` beside the spool, so an
/// operator can see and replay them.
fn keep_rejected(output: &SpooledOutput, batch: &[&[u8]], rejected: &[usize], reason: &str) {
    let path = output.spool.lock().dir.join("rejected.jsonl");
    let mut buffer = Vec::new();
    for &i in rejected {
        if let Some(line) = batch.get(i) {
            buffer.extend_from_slice(line);
            buffer.push(b'\n');
        }
    }
    let written = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut file| file.write_all(&buffer));
    output
        .counters
        .lines_rejected
        .fetch_add(rejected.len() as u64, Ordering::Relaxed);
    match written {
        Ok(()) => tracing::error!(
            destination = %output.delivery.describe(),
            lines = rejected.len(),
            %reason,
            kept_in = %path.display(),
            "log lines the destination can never take were set aside"
        ),
        Err(error) => tracing::error!(
            destination = %output.delivery.describe(),
            lines = rejected.len(),
            %reason,
            %error,
            "log lines the destination can never take could not be set aside either"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A destination in memory: fails the first `fail_first` attempts, refuses lines longer
    /// than `max_line` for good, and keeps what it accepts.
    struct Recorder {
        fail_first: AtomicU64,
        max_line: usize,
        accepted: Arc<Mutex<Vec<String>>>,
        batches: Arc<Mutex<Vec<BatchId>>>,
    }

    #[async_trait]
    impl Delivery for Recorder {
        fn kind(&self) -> &'static str {
            "memory"
        }

        fn describe(&self) -> String {
            "memory".into()
        }

        async fn deliver(&self, lines: &[&[u8]], batch: BatchId) -> Result<(), DeliveryError> {
            self.batches.lock().push(batch);
            let left = self.fail_first.load(Ordering::Relaxed);
            if left > 0 {
                self.fail_first.store(left - 1, Ordering::Relaxed);
                return Err(DeliveryError::Retry("down".into()));
            }
            let mut rejected = Vec::new();
            let mut accepted = self.accepted.lock();
            for (i, line) in lines.iter().enumerate() {
                if line.len() > self.max_line {
                    rejected.push(i);
                } else {
                    accepted.push(String::from_utf8(line.to_vec()).unwrap());
                }
            }
            if rejected.is_empty() {
                Ok(())
            } else {
                Err(DeliveryError::Rejected(rejected, "too large".into()))
            }
        }
    }

    type Accepted = Arc<Mutex<Vec<String>>>;
    type Batches = Arc<Mutex<Vec<BatchId>>>;

    fn recorder(fail_first: u64, max_line: usize) -> (Box<Recorder>, Accepted, Batches) {
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let batches = Arc::new(Mutex::new(Vec::new()));
        let recorder = Recorder {
            fail_first: AtomicU64::new(fail_first),
            max_line,
            accepted: accepted.clone(),
            batches: batches.clone(),
        };
        (Box::new(recorder), accepted, batches)
    }

    fn fast_retries() -> SpoolSettings {
        SpoolSettings {
            batch_lines: 2,
            min_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(20),
            ..SpoolSettings::default()
        }
    }

    async fn until(mut done: impl FnMut() -> bool) {
        for _ in 0..500 {
            if done() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("condition not reached in 5 s");
    }

    #[tokio::test]
    async fn a_full_spool_refuses_writes_and_keeps_what_it_has() {
        let dir = tempfile::tempdir().unwrap();
        let settings = SpoolSettings {
            max_spool_bytes: 100,
            min_backoff: Duration::from_secs(60),
            ..SpoolSettings::default()
        };
        let (delivery, _, _) = recorder(u64::MAX, usize::MAX);
        let output = SpooledOutput::start(dir.path(), settings, delivery).unwrap();
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

    #[tokio::test]
    async fn failed_batches_are_retried_in_order_until_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let (delivery, accepted, batches) = recorder(3, usize::MAX);
        let output = SpooledOutput::start(dir.path(), fast_retries(), delivery).unwrap();
        output.write(b"{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n").unwrap();
        output.write(b"{\"n\":4}\n").unwrap();
        until(|| output.spooled_bytes() == 0).await;
        assert_eq!(
            *accepted.lock(),
            ["{\"n\":1}", "{\"n\":2}", "{\"n\":3}", "{\"n\":4}"]
        );
        assert_eq!(output.counters.failed_attempts.load(Ordering::Relaxed), 3);
        assert_eq!(output.counters.lines_sent.load(Ordering::Relaxed), 4);
        assert_eq!(output.counters.lines_spooled.load(Ordering::Relaxed), 4);
        // Each retry carried the same batch id; the ids name (segment, batch) in order.
        let ids: Vec<(u64, usize)> = batches
            .lock()
            .iter()
            .map(|b| (b.segment, b.index))
            .collect();
        assert_eq!(
            ids[..4],
            [(1, 0); 4],
            "three failures, then the first batch"
        );
        assert!(ids[4..].windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    }

    #[tokio::test]
    async fn segment_numbers_never_repeat_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let mut segments = Vec::new();
        for _ in 0..3 {
            let (delivery, _, batches) = recorder(0, usize::MAX);
            let output = SpooledOutput::start(dir.path(), fast_retries(), delivery).unwrap();
            output.write(b"{\"n\":1}\n").unwrap();
            until(|| output.spooled_bytes() == 0).await;
            segments.extend(batches.lock().iter().map(|b| b.segment));
            drop(output);
        }
        // The spool was empty at each start: only the kept sequence tells the numbers apart.
        assert_eq!(segments, [1, 2, 3]);
    }

    #[tokio::test]
    async fn a_lingering_segment_waits_for_its_window_or_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let settings = SpoolSettings {
            batch_lines: usize::MAX,
            segment_bytes: 40,
            linger: Duration::from_millis(1500),
            ..fast_retries()
        };
        let (delivery, accepted, batches) = recorder(0, usize::MAX);
        let output = SpooledOutput::start(dir.path(), settings, delivery).unwrap();
        output.write(b"{\"n\":1}\n").unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(accepted.lock().is_empty(), "held for its window");
        assert!(output.oldest_age() > Duration::ZERO);
        // Past the size bound the segment closes at once, in one batch.
        output
            .write(format!("{{\"n\":2,\"pad\":\"{}\"}}\n", "x".repeat(30)).as_bytes())
            .unwrap();
        until(|| accepted.lock().len() == 2).await;
        assert_eq!(batches.lock().len(), 1);
        // A small write now waits for the window, then goes alone.
        output.write(b"{\"n\":3}\n").unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(accepted.lock().len(), 2);
        until(|| accepted.lock().len() == 3).await;
        assert_eq!(output.oldest_age(), Duration::ZERO);
    }

    #[tokio::test]
    async fn a_line_the_destination_never_takes_is_set_aside_not_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let (delivery, accepted, _) = recorder(0, 10);
        let output = SpooledOutput::start(dir.path(), fast_retries(), delivery).unwrap();
        let big = format!("{{\"big\":\"{}\"}}", "x".repeat(40));
        output
            .write(format!("{{\"n\":1}}\n{big}\n{{\"n\":2}}\n").as_bytes())
            .unwrap();
        until(|| output.spooled_bytes() == 0).await;
        assert_eq!(*accepted.lock(), ["{\"n\":1}", "{\"n\":2}"]);
        let rejected = fs::read_to_string(dir.path().join("rejected.jsonl")).unwrap();
        assert_eq!(rejected, format!("{big}\n"));
        assert_eq!(output.counters.lines_rejected.load(Ordering::Relaxed), 1);
    }
}
