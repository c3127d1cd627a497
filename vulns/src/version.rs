//! Version ordering, one scheme per ecosystem.
//!
//! Each ecosystem orders its versions its own way, and getting this wrong is
//! the usual cause of a false alarm or a missed vulnerability:
//!
//! * Debian and Ubuntu use dpkg's order (epochs, `~` sorting before
//!   everything, Debian revisions), through the `debversion` crate.
//! * The Red Hat family (RHEL, Rocky, Alma, Amazon Linux) uses rpm's order on
//!   `[epoch:]version-release`. No well-kept crate does this, so
//!   [`rpmvercmp`] below is our own reading of rpm's algorithm.
//! * PyPI uses PEP 440 (pre, post, dev and local releases, epochs), through
//!   `pep440_rs`.
//! * npm, crates.io and Go use Semantic Versioning, through `semver` (Go's
//!   leading `v` is removed first; a short `1.2` is read as `1.2.0`).
//! * Homebrew has no published scheme; its versions (`3.2.1`, `1.2.3_1`) are
//!   ordered with the rpm segment comparison, which treats runs of digits as
//!   numbers and everything else as separators or letters.
//!
//! Versions are parsed once into [`Parsed`] so that range bounds read at load
//! time are not parsed again for every package matched.

use std::cmp::Ordering;
use std::str::FromStr;

use crate::ecosystem::Ecosystem;

/// Which comparison an ecosystem uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scheme {
    Dpkg,
    Rpm,
    Pep440,
    Semver,
    Generic,
}

impl Scheme {
    pub(crate) fn of(ecosystem: &Ecosystem) -> Scheme {
        match ecosystem {
            Ecosystem::Debian { .. } | Ecosystem::Ubuntu { .. } => Scheme::Dpkg,
            Ecosystem::RedHat { .. }
            | Ecosystem::Rocky { .. }
            | Ecosystem::Alma { .. }
            | Ecosystem::AmazonLinux { .. } => Scheme::Rpm,
            Ecosystem::PyPI => Scheme::Pep440,
            Ecosystem::Npm | Ecosystem::CratesIo | Ecosystem::Go => Scheme::Semver,
            Ecosystem::Homebrew => Scheme::Generic,
        }
    }
}

/// An rpm `[epoch:]version[-release]`, split but otherwise kept as text:
/// rpm compares the parts segment by segment, so there is nothing more to
/// parse ahead of time.
///
/// An epoch that is not written matches any epoch, as rpm treats a missing
/// release: osquery's `rpm_packages` rows as Fleet collects them carry no
/// epoch, while advisories write it (`1:3.0.7-25.el9_3` for openssl), and
/// reading the host's missing epoch as 0 would leave every package with an
/// epoch vulnerable forever. The cost is a real epoch bump going unseen when
/// the host does not say its epoch, which distributions make rarely.
#[derive(Clone, Debug)]
pub(crate) struct Evr {
    epoch: Option<u64>,
    version: String,
    release: Option<String>,
}

impl Evr {
    fn parse(s: &str) -> Option<Evr> {
        let s = s.trim();
        if s.is_empty() {
            return None;
        }
        let (epoch, rest) = match s.split_once(':') {
            Some((e, rest)) if !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()) => {
                (Some(e.parse().ok()?), rest)
            }
            Some(("", rest)) => (None, rest),
            _ => (None, s),
        };
        let (version, release) = match rest.rsplit_once('-') {
            Some((v, r)) => (v.to_string(), Some(r.to_string())),
            None => (rest.to_string(), None),
        };
        Some(Evr {
            epoch,
            version,
            release,
        })
    }

    fn cmp(&self, other: &Evr) -> Ordering {
        let epoch = match (self.epoch, other.epoch) {
            (Some(a), Some(b)) => a.cmp(&b),
            _ => Ordering::Equal,
        };
        epoch
            .then_with(|| rpmvercmp(&self.version, &other.version))
            .then_with(|| match (&self.release, &other.release) {
                // Like rpm, a side without a release matches any release.
                (Some(a), Some(b)) => rpmvercmp(a, b),
                _ => Ordering::Equal,
            })
    }
}

/// A version parsed for its ecosystem's ordering.
#[derive(Clone, Debug)]
pub(crate) enum Parsed {
    Dpkg(debversion::Version),
    Rpm(Evr),
    Pep440(pep440_rs::Version),
    Semver(semver::Version),
    Generic(String),
}

impl Parsed {
    pub(crate) fn parse(scheme: Scheme, s: &str) -> Option<Parsed> {
        let s = s.trim();
        if s.is_empty() {
            return None;
        }
        match scheme {
            Scheme::Dpkg => debversion::Version::from_str(s).ok().map(Parsed::Dpkg),
            Scheme::Rpm => Evr::parse(s).map(Parsed::Rpm),
            Scheme::Pep440 => pep440_rs::Version::from_str(s).ok().map(Parsed::Pep440),
            Scheme::Semver => parse_semver(s).map(Parsed::Semver),
            Scheme::Generic => Some(Parsed::Generic(s.to_string())),
        }
    }

    /// Compares two versions of the same scheme; `None` if they are not.
    pub(crate) fn compare(&self, other: &Parsed) -> Option<Ordering> {
        Some(match (self, other) {
            (Parsed::Dpkg(a), Parsed::Dpkg(b)) => a.cmp(b),
            (Parsed::Rpm(a), Parsed::Rpm(b)) => a.cmp(b),
            (Parsed::Pep440(a), Parsed::Pep440(b)) => a.cmp(b),
            (Parsed::Semver(a), Parsed::Semver(b)) => a.cmp(b),
            (Parsed::Generic(a), Parsed::Generic(b)) => rpmvercmp(a, b),
            _ => return None,
        })
    }
}

/// Reads a Semantic Version the way the registries' tools accept it: a
/// leading `v` or `=` is dropped, and a missing minor or patch number is 0.
fn parse_semver(s: &str) -> Option<semver::Version> {
    let s = s.trim_start_matches(['v', 'V', '=']).trim();
    if let Ok(v) = semver::Version::parse(s) {
        return Some(v);
    }
    // Pad `1` or `1.2` (possibly followed by `-pre` or `+build`) to three parts.
    let cut = s.find(['-', '+']).unwrap_or(s.len());
    let (core, tail) = s.split_at(cut);
    let dots = core.matches('.').count();
    if dots >= 2 || core.is_empty() {
        return None;
    }
    let padded = format!("{core}{}{tail}", ".0".repeat(2 - dots));
    semver::Version::parse(&padded).ok()
}

/// Compares two versions of `ecosystem`. `None` when either does not parse
/// in that ecosystem's scheme.
///
/// For the Red Hat family the strings are `[epoch:]version-release`; an
/// epoch written on one side only is not compared.
pub fn compare_versions(ecosystem: &Ecosystem, a: &str, b: &str) -> Option<Ordering> {
    let scheme = Scheme::of(ecosystem);
    Parsed::parse(scheme, a)?.compare(&Parsed::parse(scheme, b)?)
}

/// rpm's comparison of one version or release string (`rpmvercmp`).
///
/// Both strings are cut into runs of digits and runs of ASCII letters;
/// anything else only separates runs. Runs are compared pairwise: numbers
/// numerically (leading zeros ignored), letters as bytes, and a number is
/// newer than letters. A `~` sorts before anything, even the end of the
/// string (`1.0~rc1` < `1.0`); a `^` sorts after the end of the string but
/// before any further run (`1.0` < `1.0^git1` < `1.0.1`). When one string
/// runs out first, the longer one is newer.
pub fn rpmvercmp(a: &str, b: &str) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    let is_sep = |c: u8| !c.is_ascii_alphanumeric() && c != b'~' && c != b'^';
    loop {
        while a.first().is_some_and(|&c| is_sep(c)) {
            a = &a[1..];
        }
        while b.first().is_some_and(|&c| is_sep(c)) {
            b = &b[1..];
        }

        // Tilde: whoever has it is older; both have it: skip it.
        match (a.first() == Some(&b'~'), b.first() == Some(&b'~')) {
            (true, true) => {
                a = &a[1..];
                b = &b[1..];
                continue;
            }
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            (false, false) => {}
        }

        // Caret: older than any further run, newer than the end of string.
        match (a.first() == Some(&b'^'), b.first() == Some(&b'^')) {
            (true, true) => {
                a = &a[1..];
                b = &b[1..];
                continue;
            }
            (true, false) => {
                return if b.is_empty() {
                    Ordering::Greater
                } else {
                    Ordering::Less
                };
            }
            (false, true) => {
                return if a.is_empty() {
                    Ordering::Less
                } else {
                    Ordering::Greater
                };
            }
            (false, false) => {}
        }

        if a.is_empty() || b.is_empty() {
            break;
        }

        let numeric = a[0].is_ascii_digit();
        let take = |s: &[u8]| -> usize {
            s.iter()
                .take_while(|c| {
                    if numeric {
                        c.is_ascii_digit()
                    } else {
                        c.is_ascii_alphabetic()
                    }
                })
                .count()
        };
        let (na, nb) = (take(a), take(b));
        let (sa, sb) = (&a[..na], &b[..nb]);
        a = &a[na..];
        b = &b[nb..];

        // The runs are of different kinds: a number beats letters.
        if sb.is_empty() {
            return if numeric {
                Ordering::Greater
            } else {
                Ordering::Less
            };
        }

        let ord = if numeric {
            let strip = |s: &'_ [u8]| -> usize { s.iter().take_while(|&&c| c == b'0').count() };
            let (ta, tb) = (&sa[strip(sa)..], &sb[strip(sb)..]);
            ta.len().cmp(&tb.len()).then_with(|| ta.cmp(tb))
        } else {
            sa.cmp(sb)
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    match (a.is_empty(), b.is_empty()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        _ => Ordering::Greater,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every case of rpm's own test suite for `rpmvercmp`, from
    /// `tests/rpmvercmp.at` in rpm-software-management/rpm (the cases that
    /// file keeps commented out as "oddities" are left out here too).
    #[test]
    fn rpmvercmp_matches_rpms_test_suite() {
        const CASES: &[(&str, &str, i8)] = &[
            ("1.0", "1.0", 0),
            ("1.0", "2.0", -1),
            ("2.0", "1.0", 1),
            ("2.0.1", "2.0.1", 0),
            ("2.0", "2.0.1", -1),
            ("2.0.1", "2.0", 1),
            ("2.0.1a", "2.0.1a", 0),
            ("2.0.1a", "2.0.1", 1),
            ("2.0.1", "2.0.1a", -1),
            ("5.5p1", "5.5p1", 0),
            ("5.5p1", "5.5p2", -1),
            ("5.5p2", "5.5p1", 1),
            ("5.5p10", "5.5p10", 0),
            ("5.5p1", "5.5p10", -1),
            ("5.5p10", "5.5p1", 1),
            ("10xyz", "10.1xyz", -1),
            ("10.1xyz", "10xyz", 1),
            ("xyz10", "xyz10", 0),
            ("xyz10", "xyz10.1", -1),
            ("xyz10.1", "xyz10", 1),
            ("xyz.4", "xyz.4", 0),
            ("xyz.4", "8", -1),
            ("8", "xyz.4", 1),
            ("xyz.4", "2", -1),
            ("2", "xyz.4", 1),
            ("5.5p2", "5.6p1", -1),
            ("5.6p1", "5.5p2", 1),
            ("5.6p1", "6.5p1", -1),
            ("6.5p1", "5.6p1", 1),
            ("6.0.rc1", "6.0", 1),
            ("6.0", "6.0.rc1", -1),
            ("10b2", "10a1", 1),
            ("10a2", "10b2", -1),
            ("1.0aa", "1.0aa", 0),
            ("1.0a", "1.0aa", -1),
            ("1.0aa", "1.0a", 1),
            ("10.0001", "10.0001", 0),
            ("10.0001", "10.1", 0),
            ("10.1", "10.0001", 0),
            ("10.0001", "10.0039", -1),
            ("10.0039", "10.0001", 1),
            ("4.999.9", "5.0", -1),
            ("5.0", "4.999.9", 1),
            ("20101121", "20101121", 0),
            ("20101121", "20101122", -1),
            ("20101122", "20101121", 1),
            ("2_0", "2_0", 0),
            ("2.0", "2_0", 0),
            ("2_0", "2.0", 0),
            // RhBug:178798
            ("a", "a", 0),
            ("a+", "a+", 0),
            ("a+", "a_", 0),
            ("a_", "a+", 0),
            ("+a", "+a", 0),
            ("+a", "_a", 0),
            ("_a", "+a", 0),
            ("+_", "+_", 0),
            ("_+", "+_", 0),
            ("_+", "_+", 0),
            ("+", "_", 0),
            ("_", "+", 0),
            // tilde sorting
            ("1.0~rc1", "1.0~rc1", 0),
            ("1.0~rc1", "1.0", -1),
            ("1.0", "1.0~rc1", 1),
            ("1.0~rc1", "1.0~rc2", -1),
            ("1.0~rc2", "1.0~rc1", 1),
            ("1.0~rc1~git123", "1.0~rc1~git123", 0),
            ("1.0~rc1~git123", "1.0~rc1", -1),
            ("1.0~rc1", "1.0~rc1~git123", 1),
        ];
        for &(a, b, want) in CASES {
            let want = want.cmp(&0);
            assert_eq!(rpmvercmp(a, b), want, "rpmvercmp({a}, {b})");
        }
    }

    #[test]
    fn rpm_caret_sorts_after_end_but_before_more() {
        assert_eq!(rpmvercmp("1.0^git1", "1.0"), Ordering::Greater);
        assert_eq!(rpmvercmp("1.0^git1", "1.0.1"), Ordering::Less);
        assert_eq!(rpmvercmp("1.0^git1", "1.0^git2"), Ordering::Less);
    }

    #[test]
    fn rpm_evr_epoch_and_release() {
        let rh = Ecosystem::Rocky { major: 9 };
        let c = |a, b| compare_versions(&rh, a, b).unwrap();
        // An epoch on one side only is not compared: hosts do not report it.
        assert_eq!(c("3.0.7-24.el9", "0:3.0.7-24.el9"), Ordering::Equal);
        assert_eq!(c("3.0.7-25.el9_3", "1:3.0.7-25.el9_3"), Ordering::Equal);
        assert_eq!(c("3.0.7-24.el9", "1:3.0.7-25.el9_3"), Ordering::Less);
        assert_eq!(c("1:3.0.7-24.el9", "3.0.8-1.el9"), Ordering::Less);
        assert_eq!(c("1:3.0.7-24.el9", "0:3.0.8-1.el9"), Ordering::Greater);
        assert_eq!(c("1:3.0.7-24.el9", "1:3.0.7-25.el9"), Ordering::Less);
        assert_eq!(c("3.0.7-24.el9", "3.0.7-24.el9_3"), Ordering::Less);
        assert_eq!(c("7.76.1-26.el9_3.2", "7.76.1-26.el9"), Ordering::Greater);
        assert_eq!(c("3.0.7-24.el9", "3.0.7"), Ordering::Equal);
    }

    #[test]
    fn dpkg_order() {
        let deb = Ecosystem::Debian {
            release: "12".into(),
        };
        let c = |a, b| compare_versions(&deb, a, b).unwrap();
        assert_eq!(c("1:1.0-1", "2.0-1"), Ordering::Greater, "epoch wins");
        assert_eq!(c("1.0~rc1-1", "1.0-1"), Ordering::Less, "~ before release");
        assert_eq!(c("3.0.11-1~deb12u2", "3.0.11-1"), Ordering::Less);
        assert_eq!(c("3.0.11-1~deb12u2", "3.0.11-1~deb12u1"), Ordering::Greater);
        assert_eq!(c("7.88.1-10+deb12u5", "7.88.1-10"), Ordering::Greater);
        assert_eq!(c("1.0-1", "1.0-1"), Ordering::Equal);
        let ubuntu = Ecosystem::Ubuntu {
            release: "22.04".into(),
        };
        assert_eq!(
            compare_versions(&ubuntu, "3.0.2-0ubuntu1.10", "3.0.2-0ubuntu1.9"),
            Some(Ordering::Greater)
        );
    }

    #[test]
    fn pep440_order() {
        let c = |a, b| compare_versions(&Ecosystem::PyPI, a, b).unwrap();
        assert_eq!(c("2.0.0rc1", "2.0.0"), Ordering::Less, "pre before final");
        assert_eq!(c("2.0.0.dev1", "2.0.0a1"), Ordering::Less, "dev before pre");
        assert_eq!(c("2.0.0.post1", "2.0.0"), Ordering::Greater, "post after");
        assert_eq!(c("1.0", "1.0.0"), Ordering::Equal, "zero padding");
        assert_eq!(c("1!0.1", "2.0"), Ordering::Greater, "epoch");
        assert_eq!(c("3.1.10", "3.1.9"), Ordering::Greater);
        assert_eq!(
            compare_versions(&Ecosystem::PyPI, "not a version", "1.0"),
            None
        );
    }

    #[test]
    fn semver_order() {
        let c = |e: &Ecosystem, a, b| compare_versions(e, a, b).unwrap();
        let npm = Ecosystem::Npm;
        assert_eq!(c(&npm, "1.0.0-alpha", "1.0.0"), Ordering::Less);
        assert_eq!(c(&npm, "1.0.0-alpha.1", "1.0.0-alpha.beta"), Ordering::Less);
        assert_eq!(c(&npm, "1.0.0-beta.2", "1.0.0-beta.11"), Ordering::Less);
        assert_eq!(c(&npm, "1.2", "1.2.0"), Ordering::Equal);
        assert_eq!(c(&npm, "1.10.0", "1.9.9"), Ordering::Greater);
        assert_eq!(c(&Ecosystem::Go, "v0.17.0", "0.16.1"), Ordering::Greater);
        assert_eq!(
            c(
                &Ecosystem::Go,
                "v0.0.0-20220101000000-abcdef012345",
                "v0.0.0"
            ),
            Ordering::Less
        );
        assert_eq!(
            c(&Ecosystem::CratesIo, "0.10.55", "0.10.9"),
            Ordering::Greater
        );
        assert_eq!(compare_versions(&npm, "banana", "1.0.0"), None);
    }

    #[test]
    fn homebrew_generic_order() {
        let c = |a, b| compare_versions(&Ecosystem::Homebrew, a, b).unwrap();
        assert_eq!(c("3.2.1_1", "3.2.1"), Ordering::Greater, "revision suffix");
        assert_eq!(c("1.10", "1.9"), Ordering::Greater);
        assert_eq!(c("8.5.0", "8.5.0"), Ordering::Equal);
    }
}
