//! Entry points for the fuzz targets in `fuzz/` and for the tests that replay their corpora.
//! A panic is a defect: a crash, or an ordering that contradicts itself.
//!
//! Not a stable interface; it exists for the fuzzers.

use std::cmp::Ordering;
use std::io::Read;

use crate::load::Builder;
use crate::version::Scheme;
use crate::{Ecosystem, Package, compare_versions, rpmvercmp};

/// One file of a vulnerability feed: the first byte picks what it is read as (its value modulo
/// 3: an OSV record or array of records, CISA's KEV catalogue, FIRST's EPSS scores) and, with
/// its high bit, gzip; the rest is the file. The feed built from it is then matched against
/// every package it names, at the versions it names and a few others.
pub fn feed_file(data: &[u8]) {
    let Some((&selector, file)) = data.split_first() else {
        return;
    };
    let inflated;
    let bytes = if selector & 0x80 != 0 {
        let mut out = Vec::new();
        if flate2::read::GzDecoder::new(file)
            .take(1 << 20)
            .read_to_end(&mut out)
            .is_err()
        {
            return;
        }
        inflated = out;
        &inflated[..]
    } else {
        file
    };
    let mut builder = Builder::default();
    let _ = match (selector & 0x7f) % 3 {
        0 => builder.load_osv_bytes(bytes),
        1 => builder.load_kev(bytes),
        _ => builder.load_epss(bytes),
    };
    let (feed, _report) = builder.finish();
    for (ecosystem, names) in &feed.index {
        for (name, entries) in names {
            let listed = entries
                .iter()
                .flat_map(|&e| feed.entries[e as usize].versions.iter())
                .map(|(text, _)| text.as_str());
            for version in listed.chain(["0", "1.0", "1.0.0-1", "1:2.3-4.el9", ""]) {
                for found in feed.matches(&Package {
                    ecosystem,
                    name,
                    version,
                }) {
                    assert!(
                        feed.cve(&found.cve).is_some(),
                        "a match names a CVE the feed does not describe"
                    );
                }
            }
        }
    }
    for meta in feed.cves() {
        if let Some(p) = meta.epss_probability {
            assert!(
                (0.0..=1.0).contains(&p),
                "an EPSS probability out of [0, 1]: {p}"
            );
        }
        if let Some(score) = meta.cvss_score {
            assert!(
                (0.0..=10.0).contains(&score),
                "a CVSS score out of [0, 10]: {score}"
            );
        }
    }
}

/// Version ordering: the first line names an ecosystem as OSV does (`Debian:12`, `PyPI`, …),
/// the next three are versions. Every ordering must be antisymmetric and reflexive, and, for
/// all but the rpm family (whose epoch on one side only is not compared, as rpm does),
/// transitive; `rpmvercmp` must be antisymmetric on any two strings.
pub fn version_order(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let ecosystem = lines.next().and_then(Ecosystem::from_osv);
    let v: Vec<&str> = lines.take(3).collect();
    let [a, b, c] = [0, 1, 2].map(|i| v.get(i).copied().unwrap_or(""));
    assert_eq!(
        rpmvercmp(a, b),
        rpmvercmp(b, a).reverse(),
        "rpmvercmp({a:?}, {b:?}) is not antisymmetric"
    );
    assert_eq!(rpmvercmp(a, a), Ordering::Equal);
    let Some(ecosystem) = ecosystem else {
        return;
    };
    let cmp = |x: &str, y: &str| compare_versions(&ecosystem, x, y);
    for (x, y) in [(a, b), (b, c), (a, c)] {
        assert_eq!(
            cmp(x, y),
            cmp(y, x).map(Ordering::reverse),
            "{ecosystem:?}: {x:?} vs {y:?} is not antisymmetric"
        );
        if cmp(x, x).is_some() {
            assert_eq!(
                cmp(x, x),
                Some(Ordering::Equal),
                "{x:?} is not equal to itself"
            );
        }
    }
    if matches!(Scheme::of(&ecosystem), Scheme::Rpm) {
        return;
    }
    if let (Some(ab), Some(bc), Some(ac)) = (cmp(a, b), cmp(b, c), cmp(a, c))
        && ab == bc
        && ab != Ordering::Equal
    {
        assert_eq!(
            ac, ab,
            "{ecosystem:?}: {a:?}, {b:?}, {c:?} is not transitive"
        );
    }
}
