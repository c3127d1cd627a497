//! Ecosystems: where a package comes from, both as OSV names it and as a host
//! reports it.
//!
//! OSV scopes Linux distribution records to a release inside the ecosystem
//! string (`Debian:12`, `Ubuntu:22.04:LTS`, `Ubuntu:Pro:22.04:LTS`,
//! `Rocky Linux:9`, `AlmaLinux:9`, `Red Hat:enterprise_linux:9::baseos`).
//! [`Ecosystem`] keeps only what decides whether a host's package can be
//! compared with a record: the distribution and its release. So the regular
//! and the Ubuntu Pro (ESM) streams of Ubuntu 22.04 are one ecosystem, and so
//! are all Red Hat product streams whose release is 9 (`enterprise_linux:9`,
//! `rhel_eus:9.2`, …).
//!
//! Ubuntu's other subscription streams (`Ubuntu:Pro:FIPS-updates:22.04:LTS`,
//! `Ubuntu:Pro:Realtime:…`) ship differently built packages with their own fix
//! versions, and Red Hat's layered products (`Red Hat:openshift:4.14::el9`)
//! are not the operating system: both are left out and counted as unknown in
//! the load report rather than risk false alarms on a plain host.

use std::borrow::Cow;
use std::fmt;

/// A package ecosystem, with the distribution release where there is one.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Ecosystem {
    /// Debian, by major release number (`"12"`).
    Debian { release: String },
    /// Ubuntu, by `YY.MM` release (`"22.04"`); both the regular and the Pro
    /// (ESM) streams.
    Ubuntu { release: String },
    /// Red Hat Enterprise Linux, by major release: every OSV `Red Hat:` stream
    /// of the operating system with that major release.
    RedHat { major: u32 },
    /// Rocky Linux, by major release.
    Rocky { major: u32 },
    /// AlmaLinux, by major release.
    Alma { major: u32 },
    /// Amazon Linux (`"2"`, `"2023"`). OSV publishes no Amazon Linux records
    /// at the time of writing; records named `Amazon Linux:<release>` are
    /// read should a feed carry them.
    AmazonLinux { release: String },
    /// Python packages (PEP 440 versions, PEP 503 names).
    PyPI,
    /// npm packages (SemVer, names compared in lower case).
    Npm,
    /// Rust crates.
    CratesIo,
    /// Go modules (SemVer with a leading `v`).
    Go,
    /// Homebrew formulae and casks (no OSV ecosystem of that name exists
    /// today; records naming `Homebrew` are read, with a generic ordering).
    Homebrew,
}

impl fmt::Display for Ecosystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key())
    }
}

fn leading_number(s: &str) -> Option<u32> {
    let digits: &str = &s[..s.bytes().take_while(u8::is_ascii_digit).count()];
    digits.parse().ok()
}

/// `22.04` out of `22.04.3 LTS (Jammy Jellyfish)` or `22.04`.
fn yy_mm(s: &str) -> Option<String> {
    let s = s.trim();
    let mut parts = s.split(|c: char| !c.is_ascii_digit());
    let yy = parts.next()?;
    let mm = parts.next()?;
    if yy.is_empty() || mm.is_empty() || s.as_bytes().get(yy.len()) != Some(&b'.') {
        return None;
    }
    Some(format!("{yy}.{mm}"))
}

fn is_yy_mm(s: &str) -> bool {
    yy_mm(s).is_some_and(|r| r == s)
}

impl Ecosystem {
    /// Stable text for this ecosystem, to store in a database column:
    /// `Debian:12`, `Ubuntu:22.04`, `Red Hat:9`, `Rocky Linux:9`,
    /// `AlmaLinux:9`, `Amazon Linux:2023`, `PyPI`, `npm`, `crates.io`, `Go`,
    /// `Homebrew`. [`Ecosystem::parse_key`] reads it back.
    pub fn key(&self) -> String {
        match self {
            Ecosystem::Debian { release } => format!("Debian:{release}"),
            Ecosystem::Ubuntu { release } => format!("Ubuntu:{release}"),
            Ecosystem::RedHat { major } => format!("Red Hat:{major}"),
            Ecosystem::Rocky { major } => format!("Rocky Linux:{major}"),
            Ecosystem::Alma { major } => format!("AlmaLinux:{major}"),
            Ecosystem::AmazonLinux { release } => format!("Amazon Linux:{release}"),
            Ecosystem::PyPI => "PyPI".into(),
            Ecosystem::Npm => "npm".into(),
            Ecosystem::CratesIo => "crates.io".into(),
            Ecosystem::Go => "Go".into(),
            Ecosystem::Homebrew => "Homebrew".into(),
        }
    }

    /// Reads what [`Ecosystem::key`] wrote.
    pub fn parse_key(key: &str) -> Option<Ecosystem> {
        let (head, rest) = match key.split_once(':') {
            Some((h, r)) => (h, Some(r)),
            None => (key, None),
        };
        let release = || rest.filter(|r| !r.is_empty() && !r.contains(':'));
        let major = || {
            release()
                .filter(|r| r.bytes().all(|b| b.is_ascii_digit()))?
                .parse()
                .ok()
        };
        Some(match head {
            "Debian" => Ecosystem::Debian {
                release: release()?.to_string(),
            },
            "Ubuntu" => Ecosystem::Ubuntu {
                release: release().filter(|r| is_yy_mm(r))?.to_string(),
            },
            "Red Hat" => Ecosystem::RedHat { major: major()? },
            "Rocky Linux" => Ecosystem::Rocky { major: major()? },
            "AlmaLinux" => Ecosystem::Alma { major: major()? },
            "Amazon Linux" => Ecosystem::AmazonLinux {
                release: release()?.to_string(),
            },
            _ if rest.is_some() => return None,
            "PyPI" => Ecosystem::PyPI,
            "npm" => Ecosystem::Npm,
            "crates.io" => Ecosystem::CratesIo,
            "Go" => Ecosystem::Go,
            "Homebrew" => Ecosystem::Homebrew,
            _ => return None,
        })
    }

    /// The ecosystem an OSV `affected[].package.ecosystem` string names, or
    /// `None` for one this crate does not match against (see the module
    /// notes for what is left out and why).
    pub fn from_osv(s: &str) -> Option<Ecosystem> {
        let parts: Vec<&str> = s.split(':').collect();
        let numeric_major = |p: &str| {
            let m = leading_number(p)?;
            // `9` or `9.2`, nothing else.
            let tail = &p[p.bytes().take_while(u8::is_ascii_digit).count()..];
            (tail.is_empty() || tail.starts_with('.')).then_some(m)
        };
        Some(match parts.as_slice() {
            ["Debian", rel] if !rel.is_empty() && rel.bytes().all(|b| b.is_ascii_digit()) => {
                Ecosystem::Debian {
                    release: rel.to_string(),
                }
            }
            ["Ubuntu", rel] | ["Ubuntu", rel, "LTS"] | ["Ubuntu", "Pro", rel, "LTS"]
                if is_yy_mm(rel) =>
            {
                Ecosystem::Ubuntu {
                    release: rel.to_string(),
                }
            }
            ["Red Hat", product, rel, ..]
                if *product == "enterprise_linux" || product.starts_with("rhel") =>
            {
                Ecosystem::RedHat {
                    major: numeric_major(rel)?,
                }
            }
            ["Rocky Linux", rel] => Ecosystem::Rocky {
                major: numeric_major(rel)?,
            },
            ["AlmaLinux", rel] => Ecosystem::Alma {
                major: numeric_major(rel)?,
            },
            ["Amazon Linux", rel] if !rel.is_empty() => Ecosystem::AmazonLinux {
                release: rel.to_string(),
            },
            ["PyPI"] => Ecosystem::PyPI,
            ["npm"] => Ecosystem::Npm,
            ["crates.io"] => Ecosystem::CratesIo,
            ["Go"] => Ecosystem::Go,
            ["Homebrew"] => Ecosystem::Homebrew,
            _ => return None,
        })
    }

    /// The ecosystem a host's software must be matched in, from Fleet's
    /// software `source` and osquery's `os_version` table (`platform`,
    /// `name`, `version`). `None` when the software is not matched at all
    /// (for example `apps`, `programs`, browser and editor extensions, or
    /// rpm packages on a distribution OSV does not cover such as Fedora).
    ///
    /// * `deb_packages` on Ubuntu → `Ubuntu:YY.MM`; on Debian → `Debian:N`.
    /// * `rpm_packages` on RHEL, Rocky, AlmaLinux, Amazon Linux → that
    ///   distribution and major release.
    /// * `python_packages` → PyPI, `npm_packages` → npm,
    ///   `homebrew_packages` → Homebrew, `cargo_packages` → crates.io,
    ///   `go_binaries` → Go, whatever the OS.
    pub fn for_software(
        source: &str,
        platform: &str,
        os_name: &str,
        os_version: &str,
    ) -> Option<Ecosystem> {
        let platform = platform.trim().to_ascii_lowercase();
        let name = os_name.trim().to_ascii_lowercase();
        let is = |p: &str, n: &str| platform == p || (platform.is_empty() && name.contains(n));
        let major = || leading_number(os_version.trim());
        match source {
            "python_packages" => Some(Ecosystem::PyPI),
            "npm_packages" => Some(Ecosystem::Npm),
            "homebrew_packages" => Some(Ecosystem::Homebrew),
            "cargo_packages" => Some(Ecosystem::CratesIo),
            "go_binaries" => Some(Ecosystem::Go),
            "deb_packages" => {
                if is("ubuntu", "ubuntu") {
                    Some(Ecosystem::Ubuntu {
                        release: yy_mm(os_version)?,
                    })
                } else if is("debian", "debian") {
                    Some(Ecosystem::Debian {
                        release: major()?.to_string(),
                    })
                } else {
                    None
                }
            }
            "rpm_packages" => {
                if is("rhel", "red hat") {
                    Some(Ecosystem::RedHat { major: major()? })
                } else if is("rocky", "rocky") {
                    Some(Ecosystem::Rocky { major: major()? })
                } else if is("almalinux", "almalinux") {
                    Some(Ecosystem::Alma { major: major()? })
                } else if is("amzn", "amazon linux") {
                    Some(Ecosystem::AmazonLinux {
                        release: major()?.to_string(),
                    })
                } else {
                    None
                }
            }
            _ => None,
        }
    }

    /// True for the ecosystems whose versions are rpm's
    /// `[epoch:]version-release`.
    pub fn is_rpm(&self) -> bool {
        matches!(
            self,
            Ecosystem::RedHat { .. }
                | Ecosystem::Rocky { .. }
                | Ecosystem::Alma { .. }
                | Ecosystem::AmazonLinux { .. }
        )
    }

    /// A package name as this ecosystem compares it: PyPI names normalised
    /// per PEP 503 (lower case, each run of `-`, `_`, `.` becomes one `-`),
    /// npm names in lower case, others unchanged.
    pub fn normalize_name<'a>(&self, name: &'a str) -> Cow<'a, str> {
        let name = name.trim();
        match self {
            Ecosystem::PyPI => {
                let clean = name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !name.contains("--");
                if clean {
                    return Cow::Borrowed(name);
                }
                let mut out = String::with_capacity(name.len());
                let mut in_sep = false;
                for c in name.chars() {
                    if matches!(c, '-' | '_' | '.') {
                        if !in_sep {
                            out.push('-');
                        }
                        in_sep = true;
                    } else {
                        out.extend(c.to_lowercase());
                        in_sep = false;
                    }
                }
                Cow::Owned(out)
            }
            Ecosystem::Npm if name.bytes().any(|b| b.is_ascii_uppercase()) => {
                Cow::Owned(name.to_lowercase())
            }
            _ => Cow::Borrowed(name),
        }
    }
}

/// The version string to compare for a host's package: for the rpm family
/// `version-release` (the host reports them apart; an epoch, if the caller
/// has one, goes in front as `epoch:`), for others `version` as it is.
pub fn host_version<'a>(
    ecosystem: &Ecosystem,
    version: &'a str,
    release: &str,
    epoch: Option<&str>,
) -> Cow<'a, str> {
    if !ecosystem.is_rpm() {
        return Cow::Borrowed(version);
    }
    let release = release.trim();
    let epoch = epoch.map(str::trim).filter(|e| !e.is_empty() && *e != "0");
    if release.is_empty() && epoch.is_none() {
        return Cow::Borrowed(version);
    }
    let mut out = String::new();
    if let Some(e) = epoch {
        out.push_str(e);
        out.push(':');
    }
    out.push_str(version);
    if !release.is_empty() && !version.ends_with(&format!("-{release}")) {
        out.push('-');
        out.push_str(release);
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deb(r: &str) -> Ecosystem {
        Ecosystem::Debian { release: r.into() }
    }
    fn ubuntu(r: &str) -> Ecosystem {
        Ecosystem::Ubuntu { release: r.into() }
    }

    #[test]
    fn osv_ecosystem_strings() {
        let cases: &[(&str, Option<Ecosystem>)] = &[
            ("Debian:12", Some(deb("12"))),
            ("Debian:11", Some(deb("11"))),
            ("Debian", None),
            ("Ubuntu:22.04:LTS", Some(ubuntu("22.04"))),
            ("Ubuntu:Pro:22.04:LTS", Some(ubuntu("22.04"))),
            ("Ubuntu:24.10", Some(ubuntu("24.10"))),
            ("Ubuntu:Pro:FIPS-updates:22.04:LTS", None),
            ("Ubuntu:Pro", None),
            (
                "Red Hat:enterprise_linux:9::baseos",
                Some(Ecosystem::RedHat { major: 9 }),
            ),
            (
                "Red Hat:enterprise_linux:9::appstream",
                Some(Ecosystem::RedHat { major: 9 }),
            ),
            (
                "Red Hat:rhel_eus:9.2::appstream",
                Some(Ecosystem::RedHat { major: 9 }),
            ),
            (
                "Red Hat:rhel_aus:8.4::appstream",
                Some(Ecosystem::RedHat { major: 8 }),
            ),
            ("Red Hat:openshift:4.14::el9", None),
            ("Rocky Linux:9", Some(Ecosystem::Rocky { major: 9 })),
            ("AlmaLinux:8", Some(Ecosystem::Alma { major: 8 })),
            ("AlmaLinux", None),
            (
                "Amazon Linux:2023",
                Some(Ecosystem::AmazonLinux {
                    release: "2023".into(),
                }),
            ),
            ("PyPI", Some(Ecosystem::PyPI)),
            ("npm", Some(Ecosystem::Npm)),
            ("crates.io", Some(Ecosystem::CratesIo)),
            ("Go", Some(Ecosystem::Go)),
            ("Homebrew", Some(Ecosystem::Homebrew)),
            ("Maven", None),
            ("Alpine:v3.19", None),
        ];
        for (s, want) in cases {
            assert_eq!(&Ecosystem::from_osv(s), want, "{s}");
        }
    }

    #[test]
    fn keys_round_trip() {
        for e in [
            deb("12"),
            ubuntu("22.04"),
            Ecosystem::RedHat { major: 9 },
            Ecosystem::Rocky { major: 9 },
            Ecosystem::Alma { major: 8 },
            Ecosystem::AmazonLinux {
                release: "2".into(),
            },
            Ecosystem::PyPI,
            Ecosystem::Npm,
            Ecosystem::CratesIo,
            Ecosystem::Go,
            Ecosystem::Homebrew,
        ] {
            assert_eq!(Ecosystem::parse_key(&e.key()), Some(e.clone()), "{e}");
        }
        assert_eq!(Ecosystem::parse_key("Ubuntu:jammy"), None);
        assert_eq!(Ecosystem::parse_key("PyPI:3"), None);
        assert_eq!(Ecosystem::parse_key("Red Hat:nine"), None);
        assert_eq!(Ecosystem::parse_key(""), None);
    }

    #[test]
    fn software_on_each_os() {
        let f = Ecosystem::for_software;
        assert_eq!(
            f(
                "deb_packages",
                "ubuntu",
                "Ubuntu",
                "22.04.3 LTS (Jammy Jellyfish)"
            ),
            Some(ubuntu("22.04"))
        );
        assert_eq!(
            f(
                "deb_packages",
                "ubuntu",
                "Ubuntu",
                "24.10 (Oracular Oriole)"
            ),
            Some(ubuntu("24.10"))
        );
        assert_eq!(
            f(
                "deb_packages",
                "debian",
                "Debian GNU/Linux",
                "12 (bookworm)"
            ),
            Some(deb("12"))
        );
        assert_eq!(
            f("rpm_packages", "rocky", "Rocky Linux", "9.3 (Blue Onyx)"),
            Some(Ecosystem::Rocky { major: 9 })
        );
        assert_eq!(
            f(
                "rpm_packages",
                "rhel",
                "Red Hat Enterprise Linux",
                "9.4 (Plow)"
            ),
            Some(Ecosystem::RedHat { major: 9 })
        );
        assert_eq!(
            f(
                "rpm_packages",
                "almalinux",
                "AlmaLinux",
                "8.9 (Midnight Oncilla)"
            ),
            Some(Ecosystem::Alma { major: 8 })
        );
        assert_eq!(
            f("rpm_packages", "amzn", "Amazon Linux", "2023"),
            Some(Ecosystem::AmazonLinux {
                release: "2023".into()
            })
        );
        assert_eq!(
            f("rpm_packages", "amzn", "Amazon Linux", "2"),
            Some(Ecosystem::AmazonLinux {
                release: "2".into()
            })
        );
        // The platform may be missing; the OS name then decides.
        assert_eq!(
            f("deb_packages", "", "Ubuntu", "20.04.6 LTS (Focal Fossa)"),
            Some(ubuntu("20.04"))
        );
        assert_eq!(f("rpm_packages", "fedora", "Fedora Linux", "40"), None);
        assert_eq!(f("rpm_packages", "centos", "CentOS Linux", "7"), None);
        assert_eq!(f("deb_packages", "darwin", "macOS", "14.4"), None);
        assert_eq!(f("deb_packages", "ubuntu", "Ubuntu", "unknown"), None);
        for os in [
            ("darwin", "macOS", "14.4.1"),
            ("windows", "Microsoft Windows 11 Pro", "10.0.22631"),
            ("ubuntu", "Ubuntu", "22.04"),
        ] {
            assert_eq!(
                f("python_packages", os.0, os.1, os.2),
                Some(Ecosystem::PyPI)
            );
            assert_eq!(f("npm_packages", os.0, os.1, os.2), Some(Ecosystem::Npm));
            for other in [
                "apps",
                "programs",
                "chrome_extensions",
                "vscode_extensions",
                "portage_packages",
                "chocolatey_packages",
            ] {
                assert_eq!(f(other, os.0, os.1, os.2), None, "{other}");
            }
        }
        assert_eq!(
            f("homebrew_packages", "darwin", "macOS", "14.4.1"),
            Some(Ecosystem::Homebrew)
        );
    }

    #[test]
    fn names_normalised_per_ecosystem() {
        let py = Ecosystem::PyPI;
        assert_eq!(py.normalize_name("Jinja2"), "jinja2");
        assert_eq!(py.normalize_name("typing_extensions"), "typing-extensions");
        assert_eq!(py.normalize_name("zope.interface"), "zope-interface");
        assert_eq!(py.normalize_name("Foo-_.Bar"), "foo-bar");
        assert_eq!(py.normalize_name("requests"), "requests");
        assert_eq!(Ecosystem::Npm.normalize_name("JSONStream"), "jsonstream");
        assert_eq!(deb("12").normalize_name("libSSL3"), "libSSL3");
    }

    #[test]
    fn rpm_host_version_joins_release() {
        let r = Ecosystem::Rocky { major: 9 };
        assert_eq!(host_version(&r, "3.0.7", "24.el9", None), "3.0.7-24.el9");
        assert_eq!(
            host_version(&r, "3.0.7", "24.el9", Some("1")),
            "1:3.0.7-24.el9"
        );
        assert_eq!(
            host_version(&r, "3.0.7", "24.el9", Some("0")),
            "3.0.7-24.el9"
        );
        assert_eq!(
            host_version(&r, "3.0.7-24.el9", "24.el9", None),
            "3.0.7-24.el9"
        );
        assert_eq!(host_version(&r, "3.0.7", "", None), "3.0.7");
        assert_eq!(
            host_version(&Ecosystem::PyPI, "3.1.2", "ignored", None),
            "3.1.2"
        );
    }
}
