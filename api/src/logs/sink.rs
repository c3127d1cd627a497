//! `LogSink`: where osquery's result and status logs go, chosen separately for each
//! ([`Destination`]):
//!
//! - `filesystem` (default): JSON lines in `<data-dir>/logs/result.log` and `status.log`,
//!   rotated by size (`result.log.1` is the newest old file);
//! - `stdout`: JSON lines on the server's standard output;
//! - `webhook`: batched HTTP POSTs ([`crate::logs::webhook`]),
//! - `kafka`: records produced to a Kafka topic ([`crate::logs::kafka`]),
//! - `nats`: messages on a NATS subject, through JetStream when a stream takes it
//!   ([`crate::logs::nats`]), and
//! - `s3`: gzip-compressed JSON-lines objects in a bucket ([`crate::logs::s3`]), all four through
//!   a bounded on-disk spool ([`crate::logs::spool`]).
//!
//! A request's lines are written together, handed to the operating system and synced to disk
//! before the request is answered, so a success answer means the lines are kept, through a
//! power loss too. Syncs are group-committed ([`crate::logs::durable`]): one `fdatasync` covers
//! every request written before it began. `--no-log-fsync` stops at the operating system
//! (kept through a crash of this process, not of the machine). Writes run on the blocking
//! pool; each file has one writer at a time. A failed write or sync is reported to osquery as
//! 413, so it keeps the lines and sends them again.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::logs::durable::GroupSync;
use crate::logs::kafka::{KafkaDelivery, KafkaSettings};
use crate::logs::nats::{NatsDelivery, NatsSettings};
use crate::logs::s3::{S3Delivery, S3Settings};
use crate::logs::spool::{SpoolCounters, SpoolSettings, SpooledOutput};
use crate::logs::webhook::WebhookDelivery;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogKind {
    Result,
    Status,
    /// The activity audit log (`--activity-audit-log-plugin`): one line per activity.
    Audit,
}

impl LogKind {
    pub fn name(self) -> &'static str {
        match self {
            LogKind::Result => "result",
            LogKind::Status => "status",
            LogKind::Audit => "audit",
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Rotation {
    /// A file is rotated before a write would take it past this size.
    pub max_bytes: u64,
    /// Rotated files kept (`.1` … `.keep`); older ones are deleted.
    pub keep: usize,
}

impl Default for Rotation {
    fn default() -> Self {
        Rotation {
            max_bytes: 100 << 20,
            keep: 5,
        }
    }
}

struct LogFile {
    path: PathBuf,
    rotation: Rotation,
    writer: Option<BufWriter<File>>,
    size: u64,
}

impl LogFile {
    fn open(path: PathBuf, rotation: Rotation) -> io::Result<LogFile> {
        let mut file = LogFile {
            path,
            rotation,
            writer: None,
            size: 0,
        };
        file.reopen()?;
        Ok(file)
    }

    fn reopen(&mut self) -> io::Result<()> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = file.metadata()?.len();
        self.writer = Some(BufWriter::with_capacity(64 << 10, file));
        // The file's name is on disk too, not only its data (once per file).
        sync_parent(&self.path)
    }

    /// A second handle on the open file, for syncing it without holding its lock.
    fn handle(&self) -> io::Result<Option<File>> {
        self.writer
            .as_ref()
            .map(|writer| writer.get_ref().try_clone())
            .transpose()
    }

    fn rotate(&mut self) -> io::Result<()> {
        if let Some(mut writer) = self.writer.take() {
            writer.flush()?;
            // Lines waiting for a sync may be in this file: it is synced before it is renamed.
            writer.get_ref().sync_data()?;
        }
        let numbered = |n: usize| PathBuf::from(format!("{}.{n}", self.path.display()));
        let _ = fs::remove_file(numbered(self.rotation.keep));
        for n in (1..self.rotation.keep).rev() {
            let from = numbered(n);
            if from.exists() {
                fs::rename(&from, numbered(n + 1))?;
            }
        }
        if self.rotation.keep > 0 {
            fs::rename(&self.path, numbered(1))?;
        } else {
            fs::remove_file(&self.path)?;
        }
        self.reopen()
    }

    fn append(&mut self, buffer: &[u8]) -> io::Result<()> {
        if self.size > 0 && self.size + buffer.len() as u64 > self.rotation.max_bytes {
            self.rotate()?;
        }
        if self.writer.is_none() {
            // A previous failure closed the file; try again.
            self.reopen()?;
        }
        let writer = self.writer.as_mut().expect("opened above");
        let result = writer.write_all(buffer).and_then(|()| writer.flush());
        match result {
            Ok(()) => {
                self.size += buffer.len() as u64;
                Ok(())
            }
            Err(error) => {
                // Drop the writer with whatever it buffered; the next write reopens the file.
                self.writer = None;
                Err(error)
            }
        }
    }
}

/// Where one kind of log goes.
#[derive(Clone, Debug)]
pub enum Destination {
    Filesystem,
    Stdout,
    Webhook {
        url: String,
        timeout: std::time::Duration,
        spool: SpoolSettings,
    },
    Kafka {
        kafka: KafkaSettings,
        spool: SpoolSettings,
    },
    Nats {
        nats: NatsSettings,
        spool: SpoolSettings,
    },
    S3 {
        s3: S3Settings,
        spool: SpoolSettings,
    },
}

enum Output {
    File {
        file: Arc<Mutex<LogFile>>,
        sync: Arc<GroupSync>,
    },
    Stdout,
    Spooled {
        spooled: Arc<SpooledOutput>,
        sync: Arc<GroupSync>,
    },
}

impl Output {
    /// Hands `buffer` to the operating system; the generation to wait for until it is on disk,
    /// if it is synced.
    fn append(&self, buffer: &[u8]) -> io::Result<Option<u64>> {
        match self {
            Output::File { file, sync } => {
                file.lock().append(buffer)?;
                Ok(sync.wrote())
            }
            Output::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(buffer).and_then(|()| out.flush())?;
                Ok(None)
            }
            Output::Spooled { spooled, sync } => {
                spooled.write(buffer)?;
                Ok(sync.wrote())
            }
        }
    }

    fn sync(&self) -> Option<&Arc<GroupSync>> {
        match self {
            Output::File { sync, .. } | Output::Spooled { sync, .. } => Some(sync),
            Output::Stdout => None,
        }
    }
}

/// Syncs the directory holding `path`, so a file created in it survives a power loss.
fn sync_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) => File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

#[derive(Clone)]
pub struct LogSink {
    result: Arc<Output>,
    status: Arc<Output>,
    /// Only when an audit log destination is configured.
    audit: Option<Arc<Output>>,
    set_aside: Arc<Mutex<SetAsideFile>>,
}

/// The most `set-aside.jsonl` grows to; lines set aside beyond it are only counted, so a host
/// sending garbage cannot fill the disk.
pub const SET_ASIDE_MAX_BYTES: u64 = 64 << 20;

/// `set-aside.jsonl`: log lines the server took but could not pass on, kept for a person to read.
struct SetAsideFile {
    path: PathBuf,
}

impl SetAsideFile {
    fn append(&self, buffer: &[u8]) -> io::Result<()> {
        let size = fs::metadata(&self.path).map_or(0, |m| m.len());
        if size + buffer.len() as u64 > SET_ASIDE_MAX_BYTES {
            return Err(io::Error::other(format!(
                "{} has reached {SET_ASIDE_MAX_BYTES} bytes",
                self.path.display()
            )));
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        file.write_all(buffer)
    }
}

/// A spooled destination's state, for `/metrics`.
pub struct SpoolStats<'a> {
    pub log: &'static str,
    pub destination: &'static str,
    pub spooled_bytes: u64,
    /// How long the oldest spooled line has waited.
    pub oldest_age: std::time::Duration,
    pub counters: &'a SpoolCounters,
}

impl LogSink {
    /// Both logs as files in `dir`.
    pub fn open(dir: &Path, rotation: Rotation) -> io::Result<LogSink> {
        LogSink::with_destinations(
            dir,
            rotation,
            &Destination::Filesystem,
            &Destination::Filesystem,
        )
    }

    /// Each log to its destination: files go in `dir`, the remote destinations' spools in
    /// `dir/spool/<kind>`. Starts their senders on the current runtime.
    pub fn with_destinations(
        dir: &Path,
        rotation: Rotation,
        result: &Destination,
        status: &Destination,
    ) -> io::Result<LogSink> {
        fs::create_dir_all(dir)?;
        let output =
            |destination: &Destination, name: &str| open_output(dir, rotation, destination, name);
        Ok(LogSink {
            result: output(result, "result")?,
            status: output(status, "status")?,
            audit: None,
            set_aside: Arc::new(Mutex::new(SetAsideFile {
                path: dir.join("set-aside.jsonl"),
            })),
        })
    }

    /// Adds the activity audit log, to `destination` (`audit.log` in `dir` for files).
    pub fn with_audit(
        mut self,
        dir: &Path,
        rotation: Rotation,
        destination: &Destination,
    ) -> io::Result<LogSink> {
        self.audit = Some(open_output(dir, rotation, destination, "audit")?);
        Ok(self)
    }

    /// Whether activities go to an audit log.
    pub fn audits(&self) -> bool {
        self.audit.is_some()
    }

    /// The spooled destinations' state (webhook, Kafka, NATS, S3), for `/metrics`.
    pub fn spool_stats(&self, mut each: impl FnMut(SpoolStats<'_>)) {
        let outputs = [
            ("result", Some(&self.result)),
            ("status", Some(&self.status)),
            ("audit", self.audit.as_ref()),
        ];
        for (log, output) in outputs {
            let Some(output) = output else { continue };
            if let Output::Spooled { spooled, .. } = output.as_ref() {
                each(SpoolStats {
                    log,
                    destination: spooled.destination_kind(),
                    spooled_bytes: spooled.spooled_bytes(),
                    oldest_age: spooled.oldest_age(),
                    counters: &spooled.counters,
                });
            }
        }
    }

    /// Appends `buffer` (complete lines) to `set-aside.jsonl` in the log directory, whatever the
    /// destinations, up to [`SET_ASIDE_MAX_BYTES`].
    pub async fn set_aside(&self, buffer: Vec<u8>) -> io::Result<()> {
        let file = self.set_aside.clone();
        tokio::task::spawn_blocking(move || file.lock().append(&buffer))
            .await
            .map_err(io::Error::other)?
    }

    /// Appends `buffer` (complete lines, each ending in `\n`) to the log of `kind`.
    pub async fn write(&self, kind: LogKind, buffer: Vec<u8>) -> io::Result<()> {
        if buffer.is_empty() {
            return Ok(());
        }
        let output = match kind {
            LogKind::Result => self.result.clone(),
            LogKind::Status => self.status.clone(),
            LogKind::Audit => match &self.audit {
                Some(audit) => audit.clone(),
                None => return Ok(()),
            },
        };
        let written = {
            let output = output.clone();
            tokio::task::spawn_blocking(move || output.append(&buffer))
                .await
                .map_err(io::Error::other)??
        };
        match (written, output.sync()) {
            (Some(generation), Some(sync)) => sync.durable(generation).await,
            _ => Ok(()),
        }
    }

    /// Whether a log request waits for its lines to be synced to disk (the default) or only
    /// handed to the operating system (`--no-log-fsync`).
    pub fn set_fsync(&self, on: bool) {
        for output in self.outputs() {
            if let Some(sync) = output.sync() {
                sync.set_enabled(on);
            }
        }
    }

    /// Each synced log's syncs so far and the seconds they took, for `/metrics`.
    pub fn sync_stats(&self, mut each: impl FnMut(&'static str, u64, f64)) {
        for (log, output) in [
            ("result", Some(&self.result)),
            ("status", Some(&self.status)),
            ("audit", self.audit.as_ref()),
        ] {
            if let Some(sync) = output.and_then(|o| o.sync()) {
                use std::sync::atomic::Ordering::Relaxed;
                each(
                    log,
                    sync.syncs.load(Relaxed),
                    sync.sync_nanos.load(Relaxed) as f64 / 1e9,
                );
            }
        }
    }

    fn outputs(&self) -> impl Iterator<Item = &Arc<Output>> {
        [&self.result, &self.status]
            .into_iter()
            .chain(self.audit.as_ref())
    }
}

/// One log's output: a file in `dir`, stdout, or a remote destination behind its spool in
/// `dir/spool/<name>`.
fn open_output(
    dir: &Path,
    rotation: Rotation,
    destination: &Destination,
    name: &str,
) -> io::Result<Arc<Output>> {
    let spool_dir = dir.join("spool").join(name);
    let spooled = |spool: &SpoolSettings, delivery: Box<dyn crate::logs::spool::Delivery>| {
        let spooled = SpooledOutput::start(&spool_dir, spool.clone(), delivery)?;
        let syncing = spooled.clone();
        let sync = GroupSync::start(move || syncing.sync_current());
        io::Result::Ok(Output::Spooled { spooled, sync })
    };
    Ok(Arc::new(match destination {
        Destination::Filesystem => {
            let file = Arc::new(Mutex::new(LogFile::open(
                dir.join(format!("{name}.log")),
                rotation,
            )?));
            let syncing = file.clone();
            let sync = GroupSync::start(move || {
                // The handle is taken under the lock; the sync runs without it.
                let handle = syncing.lock().handle()?;
                handle.map_or(Ok(()), |file| file.sync_data())
            });
            Output::File { file, sync }
        }
        Destination::Stdout => Output::Stdout,
        Destination::Webhook {
            url,
            timeout,
            spool,
        } => spooled(
            spool,
            Box::new(WebhookDelivery::new(url.clone(), *timeout)?),
        )?,
        Destination::Kafka { kafka, spool } => {
            spooled(spool, Box::new(KafkaDelivery::new(kafka.clone())))?
        }
        Destination::Nats { nats, spool } => {
            spooled(spool, Box::new(NatsDelivery::new(nats.clone())))?
        }
        Destination::S3 { s3, spool } => spooled(
            spool,
            Box::new(S3Delivery::new(s3.clone()).map_err(io::Error::other)?),
        )?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rotates_by_size_and_keeps_a_bounded_number() {
        let dir = tempfile::tempdir().unwrap();
        let sink = LogSink::open(
            dir.path(),
            Rotation {
                max_bytes: 120,
                keep: 2,
            },
        )
        .unwrap();
        for i in 0..10 {
            // 57 bytes a line: two fit under the limit, a third would not.
            let line = format!("{{\"n\":{i},\"pad\":\"{}\"}}\n", "x".repeat(40));
            sink.write(LogKind::Result, line.into_bytes())
                .await
                .unwrap();
        }
        let current = fs::read_to_string(dir.path().join("result.log")).unwrap();
        assert!(current.contains("\"n\":9"));
        assert!(dir.path().join("result.log.1").exists());
        assert!(dir.path().join("result.log.2").exists());
        assert!(!dir.path().join("result.log.3").exists());
        let all: usize = ["result.log", "result.log.1", "result.log.2"]
            .iter()
            .map(|f| {
                fs::read_to_string(dir.path().join(f))
                    .unwrap()
                    .lines()
                    .count()
            })
            .sum();
        assert_eq!(all, 6, "two lines per file, three files");
    }

    #[tokio::test]
    async fn reopening_appends() {
        let dir = tempfile::tempdir().unwrap();
        let rotation = Rotation::default();
        LogSink::open(dir.path(), rotation)
            .unwrap()
            .write(LogKind::Status, b"{\"a\":1}\n".to_vec())
            .await
            .unwrap();
        LogSink::open(dir.path(), rotation)
            .unwrap()
            .write(LogKind::Status, b"{\"a\":2}\n".to_vec())
            .await
            .unwrap();
        let text = fs::read_to_string(dir.path().join("status.log")).unwrap();
        assert_eq!(text.lines().count(), 2);
    }
}
