//! Operating-system templates: what a simulated host reports about itself.
//!
//! Values are invented but shaped like real osquery output: every column value is a string
//! (osquery rows are string maps), column sets follow osquery's table specs, and per-host values
//! (UUIDs, serials, addresses) come from the [`HostProfile`].

use std::fmt;
use std::str::FromStr;

use serde_json::{Map, Value};

use crate::answer::AnswerContext;
use crate::clock::unix_now;
use crate::host::HostProfile;
use crate::sql::Row;

/// The operating system a simulated host pretends to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OsTemplate {
    /// Ubuntu 22.04.4 LTS on x86_64.
    Ubuntu,
    /// macOS 14.1.2 (Sonoma) on Apple silicon.
    MacOs,
    /// Windows 11 Pro 23H2 on x86_64.
    Windows,
    /// Rocky Linux 9.3 (Blue Onyx) on x86_64: a server image, rpm packages, no desktop.
    Rocky,
}

struct Model {
    vendor: &'static str,
    model: &'static str,
    version: &'static str,
    cpu_brand: &'static str,
    physical_cores: u32,
    logical_cores: u32,
    cpu_microcode: &'static str,
    board_model: &'static str,
    board_version: &'static str,
    bios_vendor: &'static str,
    bios_version: &'static str,
    bios_date: &'static str,
    bios_revision: &'static str,
}

const UBUNTU_MODELS: [Model; 3] = [
    Model {
        vendor: "Dell Inc.",
        model: "PowerEdge R650",
        version: "",
        cpu_brand: "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz",
        physical_cores: 32,
        logical_cores: 64,
        cpu_microcode: "0xd0003a5",
        board_model: "0Y2G81",
        board_version: "A01",
        bios_vendor: "Dell Inc.",
        bios_version: "1.12.1",
        bios_date: "11/22/2023",
        bios_revision: "1.12",
    },
    Model {
        vendor: "QEMU",
        model: "Standard PC (Q35 + ICH9, 2009)",
        version: "pc-q35-8.2",
        cpu_brand: "Intel Xeon Processor (Icelake)",
        physical_cores: 4,
        logical_cores: 4,
        cpu_microcode: "0x1",
        board_model: "",
        board_version: "",
        bios_vendor: "EFI Development Kit II / OVMF",
        bios_version: "0.0.0",
        bios_date: "02/06/2015",
        bios_revision: "0.0",
    },
    Model {
        vendor: "LENOVO",
        model: "21AHCTO1WW",
        version: "ThinkPad T14 Gen 3",
        cpu_brand: "12th Gen Intel(R) Core(TM) i7-1265U",
        physical_cores: 10,
        logical_cores: 12,
        cpu_microcode: "0x432",
        board_model: "21AHCTO1WW",
        board_version: "SDK0T76530 WIN",
        bios_vendor: "LENOVO",
        bios_version: "R23ET70W (1.46 )",
        bios_date: "08/29/2023",
        bios_revision: "1.46",
    },
];

const MAC_MODELS: [Model; 3] = [
    Model {
        vendor: "Apple Inc.",
        model: "Mac14,10",
        version: "",
        cpu_brand: "Apple M2 Pro",
        physical_cores: 12,
        logical_cores: 12,
        cpu_microcode: "",
        board_model: "",
        board_version: "",
        bios_vendor: "Apple Inc.",
        bios_version: "10151.41.12",
        bios_date: "",
        bios_revision: "",
    },
    Model {
        vendor: "Apple Inc.",
        model: "MacBookAir10,1",
        version: "",
        cpu_brand: "Apple M1",
        physical_cores: 8,
        logical_cores: 8,
        cpu_microcode: "",
        board_model: "",
        board_version: "",
        bios_vendor: "Apple Inc.",
        bios_version: "10151.41.12",
        bios_date: "",
        bios_revision: "",
    },
    Model {
        vendor: "Apple Inc.",
        model: "Mac15,3",
        version: "",
        cpu_brand: "Apple M3",
        physical_cores: 8,
        logical_cores: 8,
        cpu_microcode: "",
        board_model: "",
        board_version: "",
        bios_vendor: "Apple Inc.",
        bios_version: "10151.41.12",
        bios_date: "",
        bios_revision: "",
    },
];

const WINDOWS_MODELS: [Model; 3] = [
    Model {
        vendor: "LENOVO",
        model: "20XW0055US",
        version: "ThinkPad X1 Carbon Gen 9",
        cpu_brand: "11th Gen Intel(R) Core(TM) i7-1185G7 @ 3.00GHz",
        physical_cores: 4,
        logical_cores: 8,
        cpu_microcode: "",
        board_model: "20XW0055US",
        board_version: "SDK0J40697 WIN",
        bios_vendor: "LENOVO",
        bios_version: "N32ET86W (1.62 )",
        bios_date: "05/18/2023",
        bios_revision: "1.62",
    },
    Model {
        vendor: "Dell Inc.",
        model: "Latitude 5440",
        version: "",
        cpu_brand: "13th Gen Intel(R) Core(TM) i5-1345U",
        physical_cores: 10,
        logical_cores: 12,
        cpu_microcode: "",
        board_model: "0KH1CK",
        board_version: "A00",
        bios_vendor: "Dell Inc.",
        bios_version: "1.9.0",
        bios_date: "01/10/2024",
        bios_revision: "1.9",
    },
    Model {
        vendor: "HP",
        model: "HP EliteBook 840 G8 Notebook PC",
        version: "",
        cpu_brand: "11th Gen Intel(R) Core(TM) i5-1145G7 @ 2.60GHz",
        physical_cores: 4,
        logical_cores: 8,
        cpu_microcode: "",
        board_model: "880D",
        board_version: "KBC Version 30.3A.00",
        bios_vendor: "HP",
        bios_version: "T37 Ver. 01.16.00",
        bios_date: "12/14/2023",
        bios_revision: "16.0",
    },
];

/// Tables a template can answer from its own data.
pub const TEMPLATE_TABLES: [&str; 14] = [
    "os_version",
    "osquery_info",
    "system_info",
    "platform_info",
    "uptime",
    "kernel_info",
    "interface_addresses",
    "interface_details",
    "routes",
    "osquery_flags",
    "time",
    "osquery_registry",
    "orbit_info",
    "vscode_extensions",
];

/// The first osquery version with the `vscode_extensions` table.
const VSCODE_EXTENSIONS_SINCE: (u32, u32) = (5, 11);

/// Whether `version` (`5.23.1`) is at least `major.minor`; unparsable versions count as new.
fn osquery_at_least(version: &str, (major, minor): (u32, u32)) -> bool {
    let mut parts = version.split('.').map(|p| p.trim().parse::<u32>());
    match (parts.next(), parts.next()) {
        (Some(Ok(a)), Some(Ok(b))) => (a, b) >= (major, minor),
        (Some(Ok(a)), None) => a > major,
        _ => true,
    }
}

fn row<const N: usize>(pairs: [(&str, String); N]) -> Row {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

impl OsTemplate {
    /// All templates.
    pub const ALL: [OsTemplate; 4] = [
        OsTemplate::Ubuntu,
        OsTemplate::MacOs,
        OsTemplate::Windows,
        OsTemplate::Rocky,
    ];

    /// Short name: `ubuntu`, `macos`, `windows`, `rocky`.
    pub fn name(self) -> &'static str {
        match self {
            OsTemplate::Ubuntu => "ubuntu",
            OsTemplate::MacOs => "macos",
            OsTemplate::Windows => "windows",
            OsTemplate::Rocky => "rocky",
        }
    }

    /// Whether the host runs a Linux distribution (Ubuntu or Rocky).
    pub fn is_linux(self) -> bool {
        matches!(self, OsTemplate::Ubuntu | OsTemplate::Rocky)
    }

    /// Whether osquery on this host has the `vscode_extensions` table: the desktop templates
    /// (Ubuntu, macOS, Windows) with osquery 5.11 or later. The Rocky template is a server
    /// image without VS Code, and its simulated osquery leaves the table out, so Fleet's
    /// discovery query skips the VS Code software query there.
    pub fn has_vscode_extensions(self, osquery_version: &str) -> bool {
        self != OsTemplate::Rocky && osquery_at_least(osquery_version, VSCODE_EXTENSIONS_SINCE)
    }

    /// osquery's `platform_type` enrollment field: the build's platform bitmask as a string
    /// (Linux `"9"`, macOS `"21"`, Windows `"2"`).
    pub fn platform_type(self) -> &'static str {
        match self {
            OsTemplate::Ubuntu | OsTemplate::Rocky => "9",
            OsTemplate::MacOs => "21",
            OsTemplate::Windows => "2",
        }
    }

    /// `os_version.platform`: `ubuntu`, `darwin`, `windows`, `rocky`.
    pub fn platform(self) -> &'static str {
        match self {
            OsTemplate::Ubuntu => "ubuntu",
            OsTemplate::MacOs => "darwin",
            OsTemplate::Windows => "windows",
            OsTemplate::Rocky => "rocky",
        }
    }

    /// Whether a config `platform` string (comma list such as `linux,darwin`, or `any`/`all`)
    /// selects this host. osquery matches by substring.
    pub fn matches_platform(self, spec: &str) -> bool {
        let spec = spec.to_ascii_lowercase();
        if spec.is_empty() || spec.contains("any") || spec.contains("all") {
            return true;
        }
        let names: &[&str] = match self {
            OsTemplate::Ubuntu => &["linux", "ubuntu", "posix"],
            OsTemplate::MacOs => &["darwin", "posix"],
            OsTemplate::Windows => &["windows"],
            OsTemplate::Rocky => &["linux", "rocky", "centos", "redhat", "posix"],
        };
        names.iter().any(|n| spec.contains(n))
    }

    pub(crate) fn model_count(self) -> usize {
        self.models().len()
    }

    fn models(self) -> &'static [Model] {
        match self {
            // Rocky runs on the same server and VM hardware as the Ubuntu hosts.
            OsTemplate::Ubuntu | OsTemplate::Rocky => &UBUNTU_MODELS,
            OsTemplate::MacOs => &MAC_MODELS,
            OsTemplate::Windows => &WINDOWS_MODELS,
        }
    }

    fn model(self, p: &HostProfile) -> &'static Model {
        let models = self.models();
        &models[p.model % models.len()]
    }

    /// The `os_version` row.
    pub fn os_version(self, p: &HostProfile) -> Row {
        let mut r = match self {
            OsTemplate::Ubuntu => row([
                ("name", "Ubuntu".into()),
                ("version", "22.04.4 LTS (Jammy Jellyfish)".into()),
                ("major", "22".into()),
                ("minor", "4".into()),
                ("patch", "0".into()),
                ("build", String::new()),
                ("platform", "ubuntu".into()),
                ("platform_like", "debian".into()),
                ("codename", "jammy".into()),
                ("arch", "x86_64".into()),
            ]),
            OsTemplate::MacOs => row([
                ("name", "macOS".into()),
                ("version", "14.1.2".into()),
                ("major", "14".into()),
                ("minor", "1".into()),
                ("patch", "2".into()),
                ("build", "23B92".into()),
                ("platform", "darwin".into()),
                ("platform_like", "darwin".into()),
                ("codename", String::new()),
                ("arch", "arm64".into()),
            ]),
            OsTemplate::Windows => row([
                ("name", "Microsoft Windows 11 Pro".into()),
                ("version", "10.0.22631".into()),
                ("major", "10".into()),
                ("minor", "0".into()),
                ("patch", String::new()),
                ("build", "22631".into()),
                ("platform", "windows".into()),
                ("platform_like", "windows".into()),
                ("codename", "Microsoft Windows 11 Pro".into()),
                ("arch", "64-bit".into()),
            ]),
            OsTemplate::Rocky => row([
                ("name", "Rocky Linux".into()),
                ("version", "9.3 (Blue Onyx)".into()),
                ("major", "9".into()),
                ("minor", "3".into()),
                ("patch", "0".into()),
                ("build", String::new()),
                ("platform", "rocky".into()),
                ("platform_like", "rhel centos fedora".into()),
                ("codename", String::new()),
                ("arch", "x86_64".into()),
            ]),
        };
        match self {
            OsTemplate::Ubuntu | OsTemplate::Rocky => {
                r.insert("pid_with_namespace".into(), "0".into());
                r.insert("mount_namespace_id".into(), String::new());
            }
            OsTemplate::MacOs => {
                r.insert("extra".into(), String::new());
            }
            OsTemplate::Windows => {
                let installed = p
                    .boot_time
                    .saturating_sub(86_400 * (30 + p.stream("install").below(600)));
                r.insert("install_date".into(), installed.to_string());
                r.insert("revision".into(), "2861".into());
            }
        }
        r
    }

    /// The `osquery_info` row. `config_hash` is `""` before a config was loaded.
    pub fn osquery_info(self, p: &HostProfile, config_hash: &str) -> Row {
        let (build_platform, build_distro) = match self {
            OsTemplate::Ubuntu | OsTemplate::Rocky => ("linux", "centos7"),
            OsTemplate::MacOs => ("darwin", "10.14"),
            OsTemplate::Windows => ("windows", "10"),
        };
        row([
            ("pid", p.pid.to_string()),
            ("uuid", p.hardware_uuid.clone()),
            ("instance_id", p.instance_id.clone()),
            ("version", p.osquery_version.clone()),
            ("config_hash", config_hash.to_string()),
            (
                "config_valid",
                if config_hash.is_empty() { "0" } else { "1" }.into(),
            ),
            ("extensions", "active".into()),
            ("build_platform", build_platform.into()),
            ("build_distro", build_distro.into()),
            ("start_time", p.start_time.to_string()),
            ("watcher", p.watcher_pid.to_string()),
            ("platform_mask", self.platform_type().into()),
        ])
    }

    /// The `system_info` row.
    pub fn system_info(self, p: &HostProfile) -> Row {
        let m = self.model(p);
        let (cpu_type, cpu_subtype) = match self {
            OsTemplate::Ubuntu | OsTemplate::Rocky => ("x86_64", "106"),
            OsTemplate::MacOs => ("arm64e", "ARM64E"),
            OsTemplate::Windows => ("x86_64", "-1"),
        };
        let computer_name = match self {
            OsTemplate::Windows => p.hostname.to_uppercase(),
            _ => p.hostname.clone(),
        };
        let local_hostname = match self {
            OsTemplate::MacOs => format!("{}.local", p.hostname),
            _ => p.hostname.clone(),
        };
        let board_serial = if m.board_model.is_empty() {
            String::new()
        } else {
            p.board_serial.clone()
        };
        row([
            ("hostname", p.hostname.clone()),
            ("uuid", p.hardware_uuid.clone()),
            ("cpu_type", cpu_type.into()),
            ("cpu_subtype", cpu_subtype.into()),
            ("cpu_brand", m.cpu_brand.into()),
            ("cpu_physical_cores", m.physical_cores.to_string()),
            ("cpu_logical_cores", m.logical_cores.to_string()),
            ("cpu_sockets", "1".into()),
            ("cpu_microcode", m.cpu_microcode.into()),
            ("physical_memory", p.physical_memory.to_string()),
            ("hardware_vendor", m.vendor.into()),
            ("hardware_model", m.model.into()),
            ("hardware_version", m.version.into()),
            ("hardware_serial", p.hardware_serial.clone()),
            (
                "board_vendor",
                if m.board_model.is_empty() {
                    ""
                } else {
                    m.vendor
                }
                .into(),
            ),
            ("board_model", m.board_model.into()),
            ("board_version", m.board_version.into()),
            ("board_serial", board_serial),
            ("computer_name", computer_name),
            ("local_hostname", local_hostname),
        ])
    }

    /// The `platform_info` row (firmware).
    pub fn platform_info(self, p: &HostProfile) -> Row {
        let m = self.model(p);
        let (firmware_type, address, size) = match self {
            OsTemplate::Ubuntu | OsTemplate::Rocky => ("uefi", "0xe0000", "16777216"),
            OsTemplate::MacOs => ("iBoot", "", "0"),
            OsTemplate::Windows => ("uefi", "", "33554432"),
        };
        row([
            ("vendor", m.bios_vendor.into()),
            ("version", m.bios_version.into()),
            ("date", m.bios_date.into()),
            ("revision", m.bios_revision.into()),
            ("extra", String::new()),
            ("firmware_type", firmware_type.into()),
            ("address", address.into()),
            ("size", size.into()),
            ("volume_size", "0".into()),
        ])
    }

    /// The `kernel_info` row.
    pub fn kernel_info(self, _p: &HostProfile) -> Row {
        let (version, arguments, path, device) = match self {
            OsTemplate::Ubuntu => (
                "5.15.0-105-generic",
                "ro quiet splash",
                "/boot/vmlinuz-5.15.0-105-generic",
                "UUID=5f0d7a4e-3c1b-4f5e-9d8a-2b6c7e1f0a94",
            ),
            OsTemplate::Rocky => (
                "5.14.0-362.8.1.el9_3.x86_64",
                "ro crashkernel=1G-4G:192M,4G-64G:256M,64G-:512M resume=/dev/mapper/rl-swap",
                "/boot/vmlinuz-5.14.0-362.8.1.el9_3.x86_64",
                "/dev/mapper/rl-root",
            ),
            OsTemplate::MacOs => ("23.1.0", "", "/System/Library/Kernels/kernel", ""),
            OsTemplate::Windows => (
                "10.0.22631.2861",
                "",
                "C:\\Windows\\system32\\ntoskrnl.exe",
                "",
            ),
        };
        row([
            ("version", version.into()),
            ("arguments", arguments.into()),
            ("path", path.into()),
            ("device", device.into()),
        ])
    }

    /// The `uptime` row at unix time `now`.
    pub fn uptime(self, p: &HostProfile, now: u64) -> Row {
        let total = now.saturating_sub(p.boot_time);
        row([
            ("days", (total / 86_400).to_string()),
            ("hours", (total % 86_400 / 3600).to_string()),
            ("minutes", (total % 3600 / 60).to_string()),
            ("seconds", (total % 60).to_string()),
            ("total_seconds", total.to_string()),
        ])
    }

    fn interface_name(self) -> &'static str {
        match self {
            OsTemplate::Ubuntu => "eth0",
            OsTemplate::Rocky => "ens192",
            OsTemplate::MacOs => "en0",
            OsTemplate::Windows => "12",
        }
    }

    /// The primary `interface_addresses` row.
    pub fn interface_address(self, p: &HostProfile) -> Row {
        let mut r = row([
            ("interface", self.interface_name().into()),
            ("address", p.primary_ip.to_string()),
            ("mask", "255.255.255.0".into()),
            ("broadcast", format!("{}.255", ip_prefix(p))),
            ("point_to_point", String::new()),
            (
                "type",
                if self == OsTemplate::Windows {
                    "dhcp"
                } else {
                    "unknown"
                }
                .into(),
            ),
        ]);
        if self == OsTemplate::Windows {
            r.insert("friendly_name".into(), "Wi-Fi".into());
        }
        r
    }

    /// The primary `interface_details` row.
    pub fn interface_details(self, p: &HostProfile) -> Row {
        row([
            ("interface", self.interface_name().into()),
            ("mac", p.mac.clone()),
            ("type", "6".into()),
            ("mtu", "1500".into()),
            ("metric", "0".into()),
            ("flags", "4163".into()),
            (
                "ipackets",
                (p.stream("rx").below(90_000_000) + 100_000).to_string(),
            ),
            (
                "opackets",
                (p.stream("tx").below(50_000_000) + 100_000).to_string(),
            ),
            ("link_speed", "1000".into()),
        ])
    }

    /// The default route (`routes` row).
    pub fn default_route(self, p: &HostProfile) -> Row {
        row([
            ("destination", "0.0.0.0".into()),
            ("netmask", "0".into()),
            ("gateway", format!("{}.1", ip_prefix(p))),
            ("source", p.primary_ip.to_string()),
            ("flags", "3".into()),
            ("interface", self.interface_name().into()),
            ("mtu", "1500".into()),
            ("metric", "100".into()),
            ("type", "remote".into()),
            ("hopcount", "0".into()),
        ])
    }

    /// `osquery_flags` rows describing the agent's own flags, values as strings.
    pub fn osquery_flags(self, ctx: &AnswerContext<'_>) -> Vec<Row> {
        let iv = ctx.intervals;
        let secs = |d: std::time::Duration| d.as_secs().to_string();
        let flags: [(&str, &str, String, &str); 7] = [
            ("distributed_interval", "int32", secs(iv.distributed), "60"),
            ("config_refresh", "uint64", secs(iv.config_refresh), "0"),
            ("config_tls_refresh", "uint64", secs(iv.config_refresh), "0"),
            (
                "config_accelerated_refresh",
                "uint64",
                secs(iv.config_accelerated_refresh),
                "300",
            ),
            ("logger_tls_period", "uint64", secs(iv.logger_period), "4"),
            (
                "logger_tls_max_lines",
                "uint64",
                iv.logger_max_lines.to_string(),
                "1024",
            ),
            (
                "logger_tls_compress",
                "bool",
                iv.logger_compress.to_string(),
                "false",
            ),
        ];
        flags
            .into_iter()
            .map(|(name, ty, value, default)| {
                row([
                    ("name", name.into()),
                    ("type", ty.into()),
                    ("description", String::new()),
                    ("default_value", default.into()),
                    ("value", value),
                    ("shell_only", "0".into()),
                ])
            })
            .collect()
    }

    /// Rows of `table` when the template knows it (see [`TEMPLATE_TABLES`]).
    pub fn table_rows(
        self,
        table: &str,
        p: &HostProfile,
        ctx: &AnswerContext<'_>,
    ) -> Option<Vec<Row>> {
        let now = unix_now();
        Some(match table {
            "os_version" => vec![self.os_version(p)],
            "osquery_info" => vec![self.osquery_info(p, ctx.config_hash)],
            "system_info" => vec![self.system_info(p)],
            "platform_info" => vec![self.platform_info(p)],
            "uptime" => vec![self.uptime(p, now)],
            "kernel_info" => vec![self.kernel_info(p)],
            "interface_addresses" => vec![self.interface_address(p)],
            "interface_details" => vec![self.interface_details(p)],
            "routes" => vec![self.default_route(p)],
            "osquery_flags" => self.osquery_flags(ctx),
            "time" => vec![row([
                ("unix_time", now.to_string()),
                ("timezone", "UTC".into()),
            ])],
            // The tables osquery has registered: the template's own, and orbit's extension
            // table on a host that runs orbit.
            "osquery_registry" => TEMPLATE_TABLES
                .iter()
                .filter(|&&t| t != "orbit_info" || p.orbit.is_some())
                .filter(|&&t| {
                    t != "vscode_extensions" || self.has_vscode_extensions(&p.osquery_version)
                })
                .map(|&name| {
                    row([
                        ("registry", "table".to_string()),
                        ("name", name.to_string()),
                        ("owner_uuid", "0".into()),
                        ("internal", "0".into()),
                        ("active", "1".into()),
                    ])
                })
                .collect(),
            "orbit_info" => match &p.orbit {
                Some(version) => vec![row([
                    ("version", version.clone()),
                    ("device_auth_token", String::new()),
                    ("enrolled", "1".into()),
                    ("last_recorded_error", String::new()),
                    ("orbit_channel", "stable".into()),
                    ("osqueryd_channel", "stable".into()),
                    ("desktop_channel", "stable".into()),
                    ("desktop_version", version.clone()),
                    ("uptime", "120".into()),
                    ("scripts_enabled", "0".into()),
                    ("update_url", "https://updates.fleetdm.com".into()),
                ])],
                None => Vec::new(),
            },
            "vscode_extensions" if self.has_vscode_extensions(&p.osquery_version) => {
                crate::software::vscode_table_rows(p)
            }
            _ => return None,
        })
    }

    /// The enrollment `host_details` object: first rows of `os_version`, `osquery_info`
    /// (no config yet), `system_info` and `platform_info`, all values strings.
    pub fn host_details(self, p: &HostProfile) -> Value {
        let to_obj = |r: Row| {
            Value::Object(
                r.into_iter()
                    .map(|(k, v)| (k, Value::String(v)))
                    .collect::<Map<_, _>>(),
            )
        };
        let mut details = Map::new();
        details.insert("os_version".into(), to_obj(self.os_version(p)));
        details.insert("osquery_info".into(), to_obj(self.osquery_info(p, "")));
        details.insert("system_info".into(), to_obj(self.system_info(p)));
        details.insert("platform_info".into(), to_obj(self.platform_info(p)));
        Value::Object(details)
    }
}

fn ip_prefix(p: &HostProfile) -> String {
    let o = p.primary_ip.octets();
    format!("{}.{}.{}", o[0], o[1], o[2])
}

impl fmt::Display for OsTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for OsTemplate {
    type Err = String;

    /// Accepts `ubuntu`/`linux`, `macos`/`darwin`/`mac`, `windows`/`win`, `rocky`/`rockylinux`
    /// (case-insensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ubuntu" | "linux" => Ok(OsTemplate::Ubuntu),
            "macos" | "darwin" | "mac" => Ok(OsTemplate::MacOs),
            "windows" | "win" => Ok(OsTemplate::Windows),
            "rocky" | "rockylinux" | "rocky-linux" => Ok(OsTemplate::Rocky),
            other => Err(format!(
                "unknown OS template {other:?} (expected ubuntu, macos, windows or rocky)"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intervals::Intervals;

    fn all_strings(v: &Value) -> bool {
        match v {
            Value::String(_) => true,
            Value::Object(m) => m.values().all(all_strings),
            _ => false,
        }
    }

    #[test]
    fn host_details_values_are_all_strings() {
        for t in OsTemplate::ALL {
            let p = HostProfile::new(t, "host-1", "5.23.1");
            let d = t.host_details(&p);
            assert!(all_strings(&d), "{t}: {d}");
            for table in ["os_version", "osquery_info", "system_info", "platform_info"] {
                assert!(
                    d[table].as_object().is_some_and(|o| !o.is_empty()),
                    "{t} {table}"
                );
            }
            assert_eq!(
                d["system_info"]["uuid"],
                Value::String(p.hardware_uuid.clone())
            );
            assert_eq!(
                d["osquery_info"]["uuid"],
                Value::String(p.hardware_uuid.clone())
            );
            assert_eq!(d["osquery_info"]["version"], "5.23.1");
            assert_eq!(d["osquery_info"]["platform_mask"], t.platform_type());
        }
    }

    #[test]
    fn rocky_reports_rocky_linux_9() {
        let p = HostProfile::new(OsTemplate::Rocky, "db-1", "5.23.1");
        let v = OsTemplate::Rocky.os_version(&p);
        assert_eq!(v["name"], "Rocky Linux");
        assert_eq!(v["version"], "9.3 (Blue Onyx)");
        assert_eq!((v["major"].as_str(), v["minor"].as_str()), ("9", "3"));
        assert_eq!(v["platform"], "rocky");
        assert_eq!(v["platform_like"], "rhel centos fedora");
        assert!(p.hostname == "db-1");
    }

    #[test]
    fn platform_types() {
        assert_eq!(OsTemplate::Ubuntu.platform_type(), "9");
        assert_eq!(OsTemplate::MacOs.platform_type(), "21");
        assert_eq!(OsTemplate::Windows.platform_type(), "2");
        assert_eq!(OsTemplate::Rocky.platform_type(), "9");
    }

    #[test]
    fn serials_differ_per_host() {
        let a = HostProfile::new(OsTemplate::MacOs, "a", "5.23.1");
        let b = HostProfile::new(OsTemplate::MacOs, "b", "5.23.1");
        let (sa, sb) = (
            OsTemplate::MacOs.system_info(&a),
            OsTemplate::MacOs.system_info(&b),
        );
        assert_ne!(sa["hardware_serial"], sb["hardware_serial"]);
        assert_ne!(sa["uuid"], sb["uuid"]);
    }

    #[test]
    fn flags_report_intervals_as_strings() {
        let iv = Intervals {
            distributed: std::time::Duration::from_secs(10),
            ..Intervals::default()
        };
        let ctx = AnswerContext::new(&iv);
        let rows = OsTemplate::Ubuntu.osquery_flags(&ctx);
        let di = rows
            .iter()
            .find(|r| r["name"] == "distributed_interval")
            .unwrap();
        assert_eq!(di["value"], "10");
        let lp = rows
            .iter()
            .find(|r| r["name"] == "logger_tls_period")
            .unwrap();
        assert_eq!(lp["value"], "4");
    }

    #[test]
    fn parse_names() {
        assert_eq!("macOS".parse::<OsTemplate>().unwrap(), OsTemplate::MacOs);
        assert_eq!(
            "Windows".parse::<OsTemplate>().unwrap(),
            OsTemplate::Windows
        );
        assert!("beos".parse::<OsTemplate>().is_err());
        assert_eq!("Rocky".parse::<OsTemplate>().unwrap(), OsTemplate::Rocky);
        assert!(OsTemplate::Rocky.matches_platform("linux"));
        assert!(!OsTemplate::Rocky.matches_platform("ubuntu"));
        assert!(OsTemplate::Ubuntu.matches_platform("linux,darwin"));
        assert!(!OsTemplate::Windows.matches_platform("darwin"));
        assert!(OsTemplate::Windows.matches_platform(""));
    }
}
