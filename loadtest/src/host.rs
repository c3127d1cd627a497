//! The identity of one simulated host, derived deterministically from its host identifier.

use std::net::Ipv4Addr;

use crate::clock::unix_now;
use crate::template::OsTemplate;

/// A small deterministic generator (SplitMix64) for per-host values.
#[derive(Debug, Clone)]
pub struct SeedStream(u64);

impl SeedStream {
    /// How far the state moves per value (SplitMix64's golden-ratio increment).
    const STEP: u64 = 0x9E37_79B9_7F4A_7C15;

    /// A stream starting at `seed`.
    pub fn new(seed: u64) -> Self {
        SeedStream(seed)
    }

    /// Next 64 pseudo-random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(Self::STEP);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// `len` characters drawn from `alphabet`.
    pub fn chars(&mut self, alphabet: &[u8], len: usize) -> String {
        (0..len)
            .map(|_| alphabet[self.below(alphabet.len() as u64) as usize] as char)
            .collect()
    }

    /// A random-looking (version 4 layout) UUID.
    pub fn uuid(&mut self) -> uuid::Uuid {
        let hi = u128::from(self.next_u64());
        let lo = u128::from(self.next_u64());
        uuid::Builder::from_random_bytes(((hi << 64) | lo).to_be_bytes()).into_uuid()
    }
}

/// The host identifier of host number `index` of a run with `seed`: the `index`-th UUID (upper
/// case) of a [`SeedStream`] started at `seed`, as `flotilla-loadtest` names its hosts.
pub fn host_identifier(seed: u64, index: usize) -> String {
    // Each UUID takes two steps of the stream; jump straight to this host's.
    let skip = (index as u64)
        .wrapping_mul(2)
        .wrapping_mul(SeedStream::STEP);
    SeedStream::new(seed.wrapping_add(skip))
        .uuid()
        .hyphenated()
        .to_string()
        .to_uppercase()
}

/// 64-bit FNV-1a of `text`.
pub fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Everything that makes one simulated host different from the next: names, hardware ids,
/// osquery process data, network address. Two profiles built from the same template and host
/// identifier are identical (apart from the start time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostProfile {
    /// Operating-system template.
    pub template: OsTemplate,
    /// osquery's `host_identifier` sent at enrollment.
    pub host_identifier: String,
    /// Host name (the identifier itself unless that is a UUID).
    pub hostname: String,
    /// Upper-case hardware UUID (`system_info.uuid`, `osquery_info.uuid`).
    pub hardware_uuid: String,
    /// Hardware serial number.
    pub hardware_serial: String,
    /// Board serial number.
    pub board_serial: String,
    /// `osquery_info.instance_id` (lower-case UUID).
    pub instance_id: String,
    /// osquery version, e.g. `5.23.1`.
    pub osquery_version: String,
    /// Worker pid.
    pub pid: u32,
    /// Watcher pid.
    pub watcher_pid: u32,
    /// Unix time the simulated osqueryd started.
    pub start_time: u64,
    /// Unix time the simulated host booted.
    pub boot_time: u64,
    /// Primary private IPv4 address.
    pub primary_ip: Ipv4Addr,
    /// MAC address of the primary interface.
    pub mac: String,
    /// RAM in bytes.
    pub physical_memory: u64,
    /// Which hardware model of the template this host is (index into the template's list).
    pub model: usize,
    /// Seed of all derived values.
    pub seed: u64,
    /// The orbit version when the host runs orbit (fleetd): its osquery then has orbit's
    /// `orbit_info` table.
    pub orbit: Option<String>,
}

impl HostProfile {
    /// Derive a profile from the template and host identifier.
    pub fn new(template: OsTemplate, host_identifier: &str, osquery_version: &str) -> Self {
        let seed = fnv1a(host_identifier) ^ fnv1a(template.name()).rotate_left(17);
        let mut s = SeedStream::new(seed);
        let hardware_uuid = s.uuid().hyphenated().to_string().to_uppercase();
        let instance_id = s.uuid().hyphenated().to_string();
        let upper_alnum = b"ABCDEFGHJKLMNPQRSTUVWXYZ0123456789";
        let hardware_serial = match template {
            OsTemplate::MacOs => s.chars(upper_alnum, 10),
            OsTemplate::Windows => format!("PF{}", s.chars(upper_alnum, 6)),
            OsTemplate::Ubuntu | OsTemplate::Rocky => s.chars(upper_alnum, 7),
        };
        let board_serial = match template {
            OsTemplate::MacOs => s.chars(upper_alnum, 17),
            OsTemplate::Windows => format!("L1HF{}", s.chars(upper_alnum, 8)),
            OsTemplate::Ubuntu | OsTemplate::Rocky => {
                format!(".{}.CNFCP00{}.", hardware_serial, s.chars(b"0123456789", 5))
            }
        };
        let hostname =
            if host_identifier.is_empty() || uuid::Uuid::parse_str(host_identifier).is_ok() {
                match template {
                    OsTemplate::Ubuntu => format!("ubuntu-{}", s.chars(b"0123456789abcdef", 6)),
                    OsTemplate::Rocky => format!("rocky-{}", s.chars(b"0123456789abcdef", 6)),
                    OsTemplate::MacOs => format!("mbp-{}", s.chars(b"0123456789abcdef", 6)),
                    OsTemplate::Windows => format!("DESKTOP-{}", s.chars(upper_alnum, 7)),
                }
            } else {
                host_identifier.to_string()
            };
        let pid = 1000 + s.below(60_000) as u32;
        let now = unix_now();
        let boot_time = now.saturating_sub(3600 + s.below(30 * 86_400));
        let primary_ip = Ipv4Addr::new(
            10,
            s.below(256) as u8,
            s.below(256) as u8,
            2 + s.below(250) as u8,
        );
        let mac_bytes: Vec<String> = (0..6)
            .map(|i| {
                let b = s.below(256) as u8;
                // Locally administered, unicast first octet.
                let b = if i == 0 { (b | 0x02) & 0xfe } else { b };
                format!("{b:02x}")
            })
            .collect();
        let memory_gib = [8u64, 16, 16, 32, 64][s.below(5) as usize];
        let model = s.below(template.model_count() as u64) as usize;
        HostProfile {
            template,
            host_identifier: host_identifier.to_string(),
            hostname,
            hardware_uuid,
            hardware_serial,
            board_serial,
            instance_id,
            osquery_version: osquery_version.to_string(),
            pid,
            watcher_pid: pid - 1,
            start_time: now,
            boot_time,
            primary_ip,
            mac: mac_bytes.join(":"),
            physical_memory: memory_gib << 30,
            model,
            seed,
            orbit: None,
        }
    }

    /// A stream of derived values for `salt` (stable per host and salt).
    pub fn stream(&self, salt: &str) -> SeedStream {
        SeedStream::new(self.seed ^ fnv1a(salt))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_are_deterministic_and_distinct() {
        let a = HostProfile::new(OsTemplate::Ubuntu, "host-a", "5.23.1");
        let a2 = HostProfile::new(OsTemplate::Ubuntu, "host-a", "5.23.1");
        let b = HostProfile::new(OsTemplate::Ubuntu, "host-b", "5.23.1");
        assert_eq!(a.hardware_uuid, a2.hardware_uuid);
        assert_eq!(a.hardware_serial, a2.hardware_serial);
        assert_ne!(a.hardware_uuid, b.hardware_uuid);
        assert_ne!(a.hardware_serial, b.hardware_serial);
        assert_eq!(a.hostname, "host-a");
        assert_eq!(a.hardware_uuid, a.hardware_uuid.to_uppercase());
        assert!(uuid::Uuid::parse_str(&a.instance_id).is_ok());
    }

    #[test]
    fn host_identifiers_jump_to_the_nth_uuid_of_the_stream() {
        let mut ids = SeedStream::new(42);
        for i in 0..5 {
            let expected = ids.uuid().hyphenated().to_string().to_uppercase();
            assert_eq!(host_identifier(42, i), expected);
        }
    }

    #[test]
    fn uuid_identifiers_get_a_generated_hostname() {
        let p = HostProfile::new(
            OsTemplate::Windows,
            "5E4C2A8B-2F1D-4C3B-9A7E-1234567890AB",
            "5.23.1",
        );
        assert!(p.hostname.starts_with("DESKTOP-"));
    }
}
