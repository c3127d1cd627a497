//! Reading the input directory: OSV files (plain, gzipped, zipped), the KEV
//! catalogue and EPSS scores, into a [`Feed`].

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::Deserialize;

use crate::osv::{self, Record};
use crate::version::{Parsed, Scheme};
use crate::{
    CveMeta, Ecosystem, End, Entry, Feed, FileReport, Interval, LoadReport, RangeSpec, RecordInfo,
};

/// What kind of input a file is, by its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    Osv { gz: bool },
    Zip,
    Kev { gz: bool },
    Epss { gz: bool },
}

fn classify(path: &Path) -> Option<Kind> {
    let name = path.file_name()?.to_str()?.to_ascii_lowercase();
    if name.starts_with('.') {
        return None;
    }
    let (stem, gz) = match name.strip_suffix(".gz") {
        Some(stem) => (stem, true),
        None => (name.as_str(), false),
    };
    if stem.starts_with("known_exploited_vulnerabilities") && stem.ends_with(".json") {
        Some(Kind::Kev { gz })
    } else if stem.starts_with("epss_scores") && stem.ends_with(".csv") {
        Some(Kind::Epss { gz })
    } else if stem.ends_with(".json") {
        Some(Kind::Osv { gz })
    } else if !gz && stem.ends_with(".zip") {
        Some(Kind::Zip)
    } else {
        None
    }
}

/// Every input file under `dir` (subdirectories included, hidden ones not),
/// sorted by path so that loading is deterministic.
pub(crate) fn input_files(dir: &Path) -> Vec<(PathBuf, Kind)> {
    fn walk(dir: &Path, depth: usize, out: &mut Vec<(PathBuf, Kind)>) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        for entry in rd.flatten() {
            let path = entry.path();
            let Ok(meta) = fs::metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                let hidden = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with('.'));
                if !hidden && depth < 16 {
                    walk(&path, depth + 1, out);
                }
            } else if let Some(kind) = classify(&path) {
                out.push((path, kind));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, 0, &mut out);
    out.sort();
    out
}

fn read_file(path: &Path, gz: bool) -> io::Result<Vec<u8>> {
    let raw = fs::read(path)?;
    if !gz {
        return Ok(raw);
    }
    let mut out = Vec::with_capacity(raw.len() * 4);
    flate2::read::MultiGzDecoder::new(&raw[..]).read_to_end(&mut out)?;
    Ok(out)
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f") {
        return Some(t.and_utc());
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

/// CVE metadata while loading: summary and details are kept apart until the
/// end so that a summary from a later record beats details from an earlier.
#[derive(Default)]
struct MetaDraft {
    cvss: Option<f64>,
    published: Option<DateTime<Utc>>,
    summary: Option<String>,
    details: Option<String>,
}

fn non_empty(s: &Option<String>) -> Option<String> {
    s.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

#[derive(Default)]
pub(crate) struct Builder {
    feed: Feed,
    report: LoadReport,
    drafts: HashMap<String, MetaDraft>,
    kev: HashSet<String>,
    epss: HashMap<String, f64>,
}

/// Turns one OSV range's events into intervals, in the ecosystem's order.
fn build_range(scheme: Scheme, events: &[osv::Event]) -> RangeSpec {
    enum Ev {
        Introduced,
        Fixed(String),
        LastAffected,
        Limit,
    }
    let mut evs: Vec<(Ev, Option<Parsed>)> = Vec::with_capacity(events.len());
    for e in events {
        let (ev, text) = if let Some(t) = &e.introduced {
            if t.trim() == "0" {
                evs.push((Ev::Introduced, None));
                continue;
            }
            (Ev::Introduced, t)
        } else if let Some(t) = &e.fixed {
            (Ev::Fixed(t.trim().to_string()), t)
        } else if let Some(t) = &e.last_affected {
            (Ev::LastAffected, t)
        } else if let Some(t) = &e.limit {
            if t.trim() == "*" {
                continue;
            }
            (Ev::Limit, t)
        } else {
            continue;
        };
        // A bound that does not parse in the ecosystem's scheme is dropped.
        if let Some(p) = Parsed::parse(scheme, text) {
            evs.push((ev, Some(p)));
        }
    }
    // OSV does not promise the events are in order: sort them by version
    // (the "everything" introduced first), keeping the record's order on ties.
    evs.sort_by(|(_, a), (_, b)| match (a, b) {
        (None, None) => std::cmp::Ordering::Equal,
        (None, Some(_)) => std::cmp::Ordering::Less,
        (Some(_), None) => std::cmp::Ordering::Greater,
        (Some(a), Some(b)) => a.compare(b).unwrap_or(std::cmp::Ordering::Equal),
    });
    let mut spec = RangeSpec::default();
    let mut open: Option<Option<Parsed>> = None;
    for (ev, p) in evs {
        match ev {
            Ev::Introduced => {
                if open.is_none() {
                    open = Some(p);
                }
            }
            Ev::Fixed(text) => {
                if let (Some(start), Some(p)) = (open.take(), p) {
                    spec.intervals.push(Interval {
                        start,
                        end: End::Fixed(p, text),
                    });
                }
            }
            Ev::LastAffected => {
                if let (Some(start), Some(p)) = (open.take(), p) {
                    spec.intervals.push(Interval {
                        start,
                        end: End::LastAffected(p),
                    });
                }
            }
            Ev::Limit => spec.limits.extend(p),
        }
    }
    if let Some(start) = open {
        spec.intervals.push(Interval {
            start,
            end: End::Open,
        });
    }
    spec
}

impl Builder {
    fn add_record(&mut self, rec: Record) {
        if rec
            .withdrawn
            .as_deref()
            .is_some_and(|w| !w.trim().is_empty())
        {
            self.report.withdrawn += 1;
            return;
        }
        self.report.records += 1;
        let cve = osv::display_cve(&rec);

        let draft = self.drafts.entry(cve.clone()).or_default();
        let score = osv::cvss_score(
            rec.severity
                .iter()
                .chain(rec.affected.iter().flat_map(|a| a.severity.iter())),
        );
        if let Some(s) = score {
            draft.cvss = Some(draft.cvss.map_or(s, |d| d.max(s)));
        }
        if let Some(p) = rec.published.as_deref().and_then(parse_time) {
            draft.published = Some(draft.published.map_or(p, |d| d.min(p)));
        }
        if draft.summary.is_none() {
            draft.summary = non_empty(&rec.summary);
        }
        if draft.details.is_none() {
            draft.details = non_empty(&rec.details);
        }

        let record = self.feed.records.len() as u32;
        let mut used = false;
        for aff in &rec.affected {
            let Some(pkg) = &aff.package else { continue };
            let Some(eco) = Ecosystem::from_osv(pkg.ecosystem.trim()) else {
                *self
                    .report
                    .unknown_ecosystems
                    .entry(pkg.ecosystem.clone())
                    .or_default() += 1;
                continue;
            };
            let scheme = Scheme::of(&eco);
            let ranges: Vec<RangeSpec> = aff
                .ranges
                .iter()
                .filter(|r| !r.kind.eq_ignore_ascii_case("GIT"))
                .map(|r| build_range(scheme, &r.events))
                .filter(|r| !r.intervals.is_empty())
                .collect();
            let versions: Vec<(String, Option<Parsed>)> = aff
                .versions
                .iter()
                .map(|v| (v.trim().to_string(), Parsed::parse(scheme, v)))
                .collect();
            if ranges.is_empty() && versions.is_empty() {
                continue;
            }
            let id = self.feed.entries.len() as u32;
            self.feed.entries.push(Entry {
                record,
                ranges,
                versions,
            });
            let mut names = vec![eco.normalize_name(&pkg.name).into_owned()];
            if matches!(eco, Ecosystem::Ubuntu { .. }) {
                for b in aff.binary_names() {
                    let b = eco.normalize_name(&b).into_owned();
                    if !names.contains(&b) {
                        names.push(b);
                    }
                }
            }
            let by_name = self.feed.index.entry(eco).or_default();
            for name in names {
                by_name.entry(name).or_default().push(id);
            }
            used = true;
        }
        if used {
            self.feed.records.push(RecordInfo {
                osv_id: rec.id.trim().to_owned(),
                cve,
            });
        }
    }

    pub(crate) fn load_osv_bytes(&mut self, bytes: &[u8]) -> Result<usize, String> {
        let records = osv::parse_records(bytes).map_err(|e| e.to_string())?;
        let n = records.len();
        for r in records {
            self.add_record(r);
        }
        Ok(n)
    }

    fn load_zip(&mut self, path: &Path, name: &str) -> Result<usize, String> {
        let file = fs::File::open(path).map_err(|e| e.to_string())?;
        let mut zip = zip::ZipArchive::new(io::BufReader::new(file)).map_err(|e| e.to_string())?;
        let mut total = 0;
        let mut buf = Vec::new();
        for i in 0..zip.len() {
            let mut entry_name = format!("entry #{i}");
            let read = match zip.by_index(i) {
                Err(e) => Err(e.to_string()),
                Ok(mut entry) => {
                    if let Ok(n) = entry.name() {
                        entry_name = n.to_string();
                    }
                    if entry.is_dir() || !entry_name.to_ascii_lowercase().ends_with(".json") {
                        continue;
                    }
                    buf.clear();
                    entry.read_to_end(&mut buf).map_err(|e| e.to_string())
                }
            };
            match read.and_then(|_| self.load_osv_bytes(&buf)) {
                Ok(n) => total += n,
                Err(error) => {
                    tracing::warn!(file = name, entry = %entry_name, %error, "skipping bad zip entry");
                    self.report.files.push(FileReport {
                        name: name.to_string(),
                        entry: Some(entry_name),
                        records: 0,
                        error: Some(error),
                    });
                }
            }
        }
        Ok(total)
    }

    pub(crate) fn load_kev(&mut self, bytes: &[u8]) -> Result<usize, String> {
        #[derive(Deserialize)]
        struct Kev {
            vulnerabilities: Vec<KevEntry>,
        }
        #[derive(Deserialize)]
        struct KevEntry {
            #[serde(rename = "cveID")]
            cve_id: String,
        }
        let kev: Kev = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let n = kev.vulnerabilities.len();
        self.kev.extend(
            kev.vulnerabilities
                .into_iter()
                .map(|v| v.cve_id.trim().to_ascii_uppercase()),
        );
        Ok(n)
    }

    pub(crate) fn load_epss(&mut self, bytes: &[u8]) -> Result<usize, String> {
        let mut rdr = csv::ReaderBuilder::new()
            .comment(Some(b'#'))
            .trim(csv::Trim::All)
            .flexible(true)
            .from_reader(bytes);
        let headers = rdr.headers().map_err(|e| e.to_string())?.clone();
        let col = |n: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(n));
        let (Some(cve_col), Some(epss_col)) = (col("cve"), col("epss")) else {
            return Err(format!("no cve and epss columns in header {headers:?}"));
        };
        let mut n = 0;
        for row in rdr.records() {
            let row = row.map_err(|e| e.to_string())?;
            let (Some(cve), Some(score)) = (row.get(cve_col), row.get(epss_col)) else {
                continue;
            };
            let Ok(score) = score.parse::<f64>() else {
                continue;
            };
            self.epss.insert(cve.to_ascii_uppercase(), score);
            n += 1;
        }
        Ok(n)
    }

    fn load_file(&mut self, path: &Path, kind: Kind, name: String) {
        let result = match kind {
            Kind::Zip => self.load_zip(path, &name),
            Kind::Osv { gz } => read_file(path, gz)
                .map_err(|e| e.to_string())
                .and_then(|b| self.load_osv_bytes(&b)),
            Kind::Kev { gz } => read_file(path, gz)
                .map_err(|e| e.to_string())
                .and_then(|b| self.load_kev(&b)),
            Kind::Epss { gz } => read_file(path, gz)
                .map_err(|e| e.to_string())
                .and_then(|b| self.load_epss(&b)),
        };
        let (records, error) = match result {
            Ok(n) => (n, None),
            Err(e) => {
                tracing::warn!(file = %name, error = %e, "skipping unreadable vulnerability file");
                (0, Some(e))
            }
        };
        self.report.files.push(FileReport {
            name,
            entry: None,
            records,
            error,
        });
    }

    pub(crate) fn finish(mut self) -> (Feed, LoadReport) {
        self.report.kev = self.kev.len();
        self.report.epss = self.epss.len();
        self.feed.cves = self
            .drafts
            .into_iter()
            .map(|(cve, d)| {
                let meta = CveMeta {
                    epss_probability: self.epss.get(&cve).copied(),
                    cisa_known_exploit: self.kev.contains(&cve),
                    cvss_score: d.cvss,
                    published: d.published,
                    description: d.summary.or(d.details),
                    cve: cve.clone(),
                };
                (cve.to_ascii_uppercase(), meta)
            })
            .collect();
        (self.feed, self.report)
    }
}

pub(crate) fn load_dir(dir: &Path) -> (Feed, LoadReport) {
    let mut b = Builder::default();
    if !dir.is_dir() {
        b.report.files.push(FileReport {
            name: dir.display().to_string(),
            entry: None,
            records: 0,
            error: Some("not a directory".into()),
        });
        return b.finish();
    }
    for (path, kind) in input_files(dir) {
        let name = path
            .strip_prefix(dir)
            .unwrap_or(&path)
            .to_string_lossy()
            .replace('\\', "/");
        b.load_file(&path, kind, name);
    }
    b.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Option<Kind> {
        classify(Path::new(s))
    }

    #[test]
    fn files_classified_by_name() {
        assert_eq!(p("a/CVE-1.json"), Some(Kind::Osv { gz: false }));
        assert_eq!(p("all.json.gz"), Some(Kind::Osv { gz: true }));
        assert_eq!(p("all.zip"), Some(Kind::Zip));
        assert_eq!(
            p("known_exploited_vulnerabilities.json"),
            Some(Kind::Kev { gz: false })
        );
        assert_eq!(
            p("epss_scores-2024-06-01.csv.gz"),
            Some(Kind::Epss { gz: true })
        );
        assert_eq!(p("epss_scores.csv"), Some(Kind::Epss { gz: false }));
        assert_eq!(p("other.csv"), None);
        assert_eq!(p("README.md"), None);
        assert_eq!(p(".hidden.json"), None);
    }

    #[test]
    fn times_read_in_the_forms_osv_uses() {
        assert!(parse_time("2024-01-31T12:00:00Z").is_some());
        assert!(parse_time("2024-01-31T12:00:00.123456Z").is_some());
        assert!(parse_time("2024-01-31T12:00:00").is_some());
        assert!(parse_time("2024-01-31").is_some());
        assert!(parse_time("yesterday").is_none());
    }
}
