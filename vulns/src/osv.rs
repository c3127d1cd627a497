//! The part of the OSV schema (<https://ossf.github.io/osv-schema/>) that
//! matching needs, read tolerantly: unknown fields are ignored, missing or
//! `null` optional fields are empty.
//!
//! These are our own types rather than the `osv` crate's: that crate turns
//! the ecosystem into a closed enum, so a record naming an ecosystem it does
//! not know (or a Linux release suffix it does not expect) fails to parse as
//! a whole, where we want to read the record and count the ecosystem.

use serde::{Deserialize, Deserializer};

fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[derive(Debug, Deserialize)]
pub(crate) struct Record {
    pub id: String,
    #[serde(default)]
    pub published: Option<String>,
    #[serde(default)]
    pub withdrawn: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub aliases: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub upstream: Vec<String>,
    #[serde(default)]
    pub summary: Option<String>,
    #[serde(default)]
    pub details: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub severity: Vec<Severity>,
    #[serde(default, deserialize_with = "nullable")]
    pub affected: Vec<Affected>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Severity {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub score: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Affected {
    #[serde(default)]
    pub package: Option<PackageRef>,
    #[serde(default, deserialize_with = "nullable")]
    pub ranges: Vec<Range>,
    #[serde(default, deserialize_with = "nullable")]
    pub versions: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub severity: Vec<Severity>,
    /// Kept unparsed: its shape differs per ecosystem, and only Ubuntu's
    /// binary package list is read from it (see [`Affected::binary_names`]).
    #[serde(default)]
    pub ecosystem_specific: Option<Box<serde_json::value::RawValue>>,
}

impl Affected {
    /// The binary package names an Ubuntu record lists under
    /// `ecosystem_specific.binaries[].binary_name`; empty when there are none
    /// or the field has another shape.
    pub(crate) fn binary_names(&self) -> Vec<String> {
        #[derive(Deserialize, Default)]
        struct Specific {
            #[serde(default)]
            binaries: Vec<serde_json::Value>,
        }
        let Some(raw) = &self.ecosystem_specific else {
            return Vec::new();
        };
        let specific: Specific = serde_json::from_str(raw.get()).unwrap_or_default();
        specific
            .binaries
            .iter()
            .filter_map(|b| b.get("binary_name")?.as_str())
            .map(str::to_string)
            .collect()
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct PackageRef {
    #[serde(default)]
    pub ecosystem: String,
    #[serde(default)]
    pub name: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Range {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default, deserialize_with = "nullable")]
    pub events: Vec<Event>,
}

#[derive(Debug, Deserialize, Default)]
pub(crate) struct Event {
    #[serde(default)]
    pub introduced: Option<String>,
    #[serde(default)]
    pub fixed: Option<String>,
    #[serde(default)]
    pub last_affected: Option<String>,
    #[serde(default)]
    pub limit: Option<String>,
}

/// Reads one record or an array of records.
pub(crate) fn parse_records(bytes: &[u8]) -> Result<Vec<Record>, serde_json::Error> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'[') {
        serde_json::from_slice(bytes)
    } else {
        serde_json::from_slice::<Record>(bytes).map(|r| vec![r])
    }
}

/// The CVE a record is shown as: its id if that is a CVE; else its first
/// `CVE-` alias; else the first `CVE-` in `upstream` (how osv.dev's Debian and
/// Ubuntu records name the CVE they track); else a CVE embedded in the id
/// (`DEBIAN-CVE-2024-1234`, `UBUNTU-CVE-…`); else the OSV id itself.
pub(crate) fn display_cve(r: &Record) -> String {
    // `get`, not indexing: ids come from the feed and may start with any character. Blanks
    // around an id are the feed's slip, not part of it (the lookup by CVE trims too).
    let is_cve =
        |s: &str| s.len() > 4 && s.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("CVE-"));
    let id = r.id.trim();
    if is_cve(id) {
        return id.to_ascii_uppercase();
    }
    if let Some(a) = r
        .aliases
        .iter()
        .chain(&r.upstream)
        .map(|a| a.trim())
        .find(|a| is_cve(a))
    {
        return a.to_ascii_uppercase();
    }
    if let Some(pos) = id.to_ascii_uppercase().find("-CVE-") {
        return id[pos + 1..].to_ascii_uppercase();
    }
    id.to_owned()
}

/// The highest CVSS base score among a record's `severity` vectors (v2, v3.0,
/// v3.1 and v4.0 vectors, scored by RustSec's `cvss` crate). Entries that are
/// not CVSS vectors (Ubuntu's `"score": "high"`) are skipped.
pub(crate) fn cvss_score<'a>(severities: impl Iterator<Item = &'a Severity>) -> Option<f64> {
    severities
        .filter(|s| s.kind.starts_with("CVSS"))
        .filter_map(|s| s.score.trim().parse::<cvss::Cvss>().ok())
        .map(|c| c.score())
        .fold(None, |best: Option<f64>, s| {
            Some(best.map_or(s, |b| b.max(s)))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerant_of_unknown_and_null_fields() {
        let r = parse_records(
            br#"{"id":"X-1","aliases":null,"affected":[{"package":{"ecosystem":"PyPI","name":"a","purl":"pkg:pypi/a"},"ranges":null,"database_specific":{"x":1}}],"schema_version":"1.6.0","credits":[]}"#,
        )
        .unwrap();
        assert_eq!(r.len(), 1);
        assert!(r[0].aliases.is_empty());
        assert!(r[0].affected[0].ranges.is_empty());
    }

    #[test]
    fn ids_and_aliases_starting_with_other_than_ascii_are_shown_as_they_are() {
        // Found by fuzzing: the first four bytes of "CVE\u{359}…" end inside a character.
        let r: Record =
            serde_json::from_str(r#"{"id": "CVE\u0359-1", "aliases": ["abcé-1"], "affected": []}"#)
                .unwrap();
        assert_eq!(display_cve(&r), "CVE\u{359}-1");
    }

    #[test]
    fn blanks_around_ids_and_aliases_are_not_part_of_them() {
        // Found by fuzzing: " PYSEC-…" was matched, but its metadata was filed under the
        // blank and the lookup by CVE, which trims, did not find it.
        let r: Record =
            serde_json::from_str(r#"{"id": " PYSEC-2024-1 ", "affected": []}"#).unwrap();
        assert_eq!(display_cve(&r), "PYSEC-2024-1");
        let r: Record = serde_json::from_str(
            r#"{"id": "GHSA-x", "aliases": [" cve-2024-2\n"], "affected": []}"#,
        )
        .unwrap();
        assert_eq!(display_cve(&r), "CVE-2024-2");
    }

    #[test]
    fn cve_shown_for_a_record() {
        let rec = |id: &str, aliases: &[&str], upstream: &[&str]| Record {
            id: id.into(),
            published: None,
            withdrawn: None,
            aliases: aliases.iter().map(|s| s.to_string()).collect(),
            upstream: upstream.iter().map(|s| s.to_string()).collect(),
            summary: None,
            details: None,
            severity: vec![],
            affected: vec![],
        };
        assert_eq!(display_cve(&rec("CVE-2024-1", &[], &[])), "CVE-2024-1");
        assert_eq!(
            display_cve(&rec("GHSA-aaaa", &["PYSEC-1", "CVE-2024-2"], &[])),
            "CVE-2024-2"
        );
        assert_eq!(
            display_cve(&rec("USN-6000-1", &[], &["CVE-2024-3"])),
            "CVE-2024-3"
        );
        assert_eq!(
            display_cve(&rec("DEBIAN-CVE-2024-4", &[], &[])),
            "CVE-2024-4"
        );
        assert_eq!(display_cve(&rec("RLSA-2024:1", &[], &[])), "RLSA-2024:1");
    }

    #[test]
    fn cvss_v3_and_v4_scored_highest_kept() {
        let sev = |k: &str, s: &str| Severity {
            kind: k.into(),
            score: s.into(),
        };
        let list = [
            sev("CVSS_V3", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"),
            sev("Ubuntu", "high"),
            sev(
                "CVSS_V4",
                "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N",
            ),
        ];
        assert_eq!(cvss_score(list[..1].iter()), Some(7.5));
        assert_eq!(cvss_score(list[2..].iter()), Some(9.3));
        assert_eq!(cvss_score(list.iter()), Some(9.3));
        assert_eq!(cvss_score(list[1..2].iter()), None);
    }
}
