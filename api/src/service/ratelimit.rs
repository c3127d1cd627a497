//! `LoginLimiter`: Fleet's login rate limit (10 a minute, ten at once), counted on failed
//! logins only, per email and client address; ten times looser per email alone and per address
//! alone. In memory, per node. A GCRA from `governor` on tokio's clock, so tests can pause time.
//!
//! `FailureBan`: Fleet's ban of addresses that keep presenting bad device tokens (1,000
//! consecutive failures within a minute ban the address for a minute), per node.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::{Quota, RateLimiter};

/// Keys kept before idle ones are dropped, so a flood of distinct emails cannot grow the maps
/// without bound.
const RETAIN_THRESHOLD: usize = 10_000;

/// tokio's clock (pausable in tests) as governor's time source.
#[derive(Clone, Copy, Debug, Default)]
pub struct TokioClock;

impl Clock for TokioClock {
    type Instant = std::time::Instant;

    fn now(&self) -> Self::Instant {
        tokio::time::Instant::now().into_std()
    }
}

type Keyed<K> =
    RateLimiter<K, DashMapStateStore<K>, TokioClock, NoOpMiddleware<std::time::Instant>>;

/// What a login failure is counted against.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum LoginKey {
    /// This email from this address: the strict limit.
    Pair(String, Option<IpAddr>),
    /// This email from anywhere: looser, so one address cannot lock a user out.
    Email(String),
    /// This address, whatever the email: looser, against spraying many accounts.
    Address(IpAddr),
}

/// Counts failed logins only: a user who logs in often uses none of it, and an attacker who
/// guesses from one address locks only that address out of that account (Fleet counts every
/// attempt against the email, so ten bad guesses a minute lock the admin out everywhere).
pub struct LoginLimiter {
    strict: Keyed<LoginKey>,
    loose: Keyed<LoginKey>,
    /// Keys over their limit, and until when.
    blocked: dashmap::DashMap<LoginKey, tokio::time::Instant>,
}

impl LoginLimiter {
    /// `per_minute` failures a minute, up to `burst` at once, for an email from one address;
    /// ten times as many for an email from anywhere or for an address across emails.
    pub fn new(per_minute: u32, burst: u32) -> LoginLimiter {
        let quota = |per_minute: u32, burst: u32| {
            let per_minute = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
            let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
            Quota::per_minute(per_minute).allow_burst(burst)
        };
        LoginLimiter {
            strict: RateLimiter::dashmap_with_clock(quota(per_minute, burst), TokioClock),
            loose: RateLimiter::dashmap_with_clock(
                quota(per_minute.saturating_mul(10), burst.saturating_mul(10)),
                TokioClock,
            ),
            blocked: dashmap::DashMap::new(),
        }
    }

    /// Fleet's numbers (10 a minute, ten at once), counted on failures.
    pub fn fleet_default() -> LoginLimiter {
        LoginLimiter::new(10, 10)
    }

    fn keys(email: &str, ip: Option<IpAddr>) -> [(LoginKey, bool); 3] {
        let email = email.trim().to_lowercase();
        [
            (LoginKey::Pair(email.clone(), ip), true),
            (LoginKey::Email(email), false),
            // Without an address, the pair and the email say it all.
            (
                LoginKey::Address(ip.unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))),
                false,
            ),
        ]
    }

    /// Whether a login for `email` (compared case-insensitively) from `ip` may be tried now;
    /// `Err` says how long to wait. Counts nothing.
    pub fn check(&self, email: &str, ip: Option<IpAddr>) -> Result<(), Duration> {
        let now = tokio::time::Instant::now();
        let mut wait = Duration::ZERO;
        for (key, _) in Self::keys(email, ip) {
            if let Some(until) = self.blocked.get(&key).map(|u| *u) {
                if until > now {
                    wait = wait.max(until - now);
                } else {
                    self.blocked.remove(&key);
                }
            }
        }
        if wait.is_zero() { Ok(()) } else { Err(wait) }
    }

    /// Counts a failed login; a key past its limit is refused until its budget refills.
    pub fn failed(&self, email: &str, ip: Option<IpAddr>) {
        let now = TokioClock.now();
        for (key, strict) in Self::keys(email, ip) {
            let limiter = if strict { &self.strict } else { &self.loose };
            if let Err(not_until) = limiter.check_key(&key) {
                let until = tokio::time::Instant::from_std(now) + not_until.wait_time_from(now);
                self.blocked.insert(key, until);
            }
        }
        for limiter in [&self.strict, &self.loose] {
            if limiter.len() > RETAIN_THRESHOLD {
                limiter.retain_recent();
            }
        }
        if self.blocked.len() > RETAIN_THRESHOLD {
            let now = tokio::time::Instant::now();
            self.blocked.retain(|_, until| *until > now);
        }
    }
}

/// Bans an address after `limit` consecutive failures within `window`, for `ban`. A success
/// from the address starts its count again. Counted per node, in memory.
pub struct FailureBan {
    limit: u32,
    window: Duration,
    ban: Duration,
    by_ip: dashmap::DashMap<IpAddr, Failures>,
}

#[derive(Clone, Copy)]
struct Failures {
    /// Consecutive failures since `since`.
    count: u32,
    since: tokio::time::Instant,
    banned_until: Option<tokio::time::Instant>,
}

impl FailureBan {
    pub fn new(limit: u32, window: Duration, ban: Duration) -> FailureBan {
        FailureBan {
            limit: limit.max(1),
            window,
            ban,
            by_ip: dashmap::DashMap::new(),
        }
    }

    /// Fleet's device-token numbers: 1,000 failures in a minute ban for a minute.
    pub fn fleet_device_default() -> FailureBan {
        FailureBan::new(1_000, Duration::from_secs(60), Duration::from_secs(60))
    }

    /// `Err(wait)` while `ip` is banned.
    pub fn check(&self, ip: Option<IpAddr>) -> Result<(), Duration> {
        let Some(ip) = ip else { return Ok(()) };
        let now = tokio::time::Instant::now();
        match self.by_ip.get(&ip).and_then(|f| f.banned_until) {
            Some(until) if until > now => Err(until - now),
            _ => Ok(()),
        }
    }

    /// Counts a failure from `ip`; the one that reaches the limit starts the ban.
    pub fn failed(&self, ip: Option<IpAddr>) {
        let Some(ip) = ip else { return };
        let now = tokio::time::Instant::now();
        if self.by_ip.len() > RETAIN_THRESHOLD {
            self.by_ip.retain(|_, f| {
                now.duration_since(f.since) < self.window
                    || f.banned_until.is_some_and(|until| until > now)
            });
        }
        let mut entry = self.by_ip.entry(ip).or_insert(Failures {
            count: 0,
            since: now,
            banned_until: None,
        });
        let f = entry.value_mut();
        if f.banned_until.is_some_and(|until| until <= now) {
            f.banned_until = None;
            f.count = 0;
            f.since = now;
        }
        if now.duration_since(f.since) >= self.window {
            f.count = 0;
            f.since = now;
        }
        f.count += 1;
        if f.count >= self.limit && f.banned_until.is_none() {
            f.banned_until = Some(now + self.ban);
            tracing::warn!(%ip, failures = f.count, "too many bad device tokens from one address; refusing it for a while");
        }
    }

    /// A success from `ip` ends its run of failures.
    pub fn succeeded(&self, ip: Option<IpAddr>) {
        if let Some(ip) = ip {
            self.by_ip.remove_if(&ip, |_, f| f.banned_until.is_none());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_thousand_failures_in_a_minute_ban_the_address_for_a_minute() {
        let ban = FailureBan::fleet_device_default();
        let other = Some(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 9)));
        for _ in 0..999 {
            ban.failed(IP);
        }
        assert!(ban.check(IP).is_ok(), "999 failures are not yet a ban");
        ban.failed(IP);
        let wait = ban.check(IP).unwrap_err();
        assert!(wait <= Duration::from_secs(60) && wait > Duration::from_secs(59));
        assert!(ban.check(other).is_ok(), "other addresses are not banned");
        ban.succeeded(IP);
        assert!(ban.check(IP).is_err(), "a ban is not lifted by a success");
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(ban.check(IP).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn failures_must_be_consecutive_and_within_the_window() {
        let ban = FailureBan::new(3, Duration::from_secs(60), Duration::from_secs(60));
        ban.failed(IP);
        ban.failed(IP);
        ban.succeeded(IP);
        ban.failed(IP);
        ban.failed(IP);
        assert!(ban.check(IP).is_ok(), "a success starts the count again");
        tokio::time::sleep(Duration::from_secs(61)).await;
        ban.failed(IP);
        assert!(ban.check(IP).is_ok(), "old failures fall out of the window");
        ban.failed(IP);
        ban.failed(IP);
        assert!(ban.check(IP).is_err());
    }

    const IP: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));

    #[tokio::test(start_paused = true)]
    async fn ten_failures_at_once_then_one_every_six_seconds() {
        let limiter = LoginLimiter::fleet_default();
        for _ in 0..10 {
            limiter.check("a@example.com", IP).unwrap();
            limiter.failed("a@example.com", IP);
        }
        limiter.check("a@example.com", IP).unwrap();
        // The eleventh failure inside the minute is one too many.
        limiter.failed("A@Example.com", IP);
        let wait = limiter.check("a@example.com", IP).unwrap_err();
        assert!(
            wait > Duration::from_secs(5) && wait <= Duration::from_secs(6),
            "{wait:?}"
        );
        tokio::time::sleep(Duration::from_secs(6)).await;
        limiter.check("a@example.com", IP).unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn only_failures_count() {
        let limiter = LoginLimiter::fleet_default();
        for _ in 0..100 {
            limiter.check("a@example.com", IP).unwrap();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_attacker_locks_out_only_their_own_address() {
        let limiter = LoginLimiter::fleet_default();
        for _ in 0..11 {
            limiter.failed("admin@example.com", IP);
        }
        assert!(limiter.check("admin@example.com", IP).is_err());
        let admin_desk = Some(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2)));
        limiter.check("admin@example.com", admin_desk).unwrap();
        // Many addresses guessing one account are slowed too: a hundred failures a minute.
        for n in 0..101u8 {
            let ip = Some(IpAddr::V4(std::net::Ipv4Addr::new(10, 1, 0, n)));
            limiter.failed("admin@example.com", ip);
        }
        assert!(limiter.check("admin@example.com", admin_desk).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn one_address_spraying_many_emails_is_limited() {
        let limiter = LoginLimiter::fleet_default();
        for n in 0..101 {
            limiter.failed(&format!("user{n}@example.com"), IP);
        }
        assert!(limiter.check("someone-else@example.com", IP).is_err());
        let other_ip = Some(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2)));
        limiter.check("someone-else@example.com", other_ip).unwrap();
        tokio::time::sleep(Duration::from_secs(60)).await;
        limiter.check("someone-else@example.com", IP).unwrap();
    }
}
