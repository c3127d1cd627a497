//! `LoginLimiter`: Fleet's login rate limit (10 a minute, ten at once) per email and per
//! client IP, in memory. A GCRA from `governor` on tokio's clock, so tests can pause time.
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

pub struct LoginLimiter {
    by_email: Keyed<String>,
    by_ip: Keyed<IpAddr>,
}

impl LoginLimiter {
    /// `per_minute` attempts a minute, up to `burst` at once.
    pub fn new(per_minute: u32, burst: u32) -> LoginLimiter {
        let per_minute = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::per_minute(per_minute).allow_burst(burst);
        LoginLimiter {
            by_email: RateLimiter::dashmap_with_clock(quota, TokioClock),
            by_ip: RateLimiter::dashmap_with_clock(quota, TokioClock),
        }
    }

    /// Fleet's numbers.
    pub fn fleet_default() -> LoginLimiter {
        LoginLimiter::new(10, 10)
    }

    /// Counts one attempt for `email` (compared case-insensitively) and `ip`; `Err` says how
    /// long to wait when either is over its limit.
    pub fn check(&self, email: &str, ip: Option<IpAddr>) -> Result<(), Duration> {
        let now = TokioClock.now();
        self.by_email
            .check_key(&email.trim().to_lowercase())
            .map_err(|not_until| not_until.wait_time_from(now))?;
        if let Some(ip) = ip {
            self.by_ip
                .check_key(&ip)
                .map_err(|not_until| not_until.wait_time_from(now))?;
        }
        if self.by_email.len() > RETAIN_THRESHOLD {
            self.by_email.retain_recent();
        }
        if self.by_ip.len() > RETAIN_THRESHOLD {
            self.by_ip.retain_recent();
        }
        Ok(())
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
    async fn ten_at_once_then_one_every_six_seconds() {
        let limiter = LoginLimiter::fleet_default();
        for _ in 0..10 {
            limiter.check("a@example.com", IP).unwrap();
        }
        let wait = limiter.check("A@Example.com", IP).unwrap_err();
        assert!(
            wait > Duration::from_secs(5) && wait <= Duration::from_secs(6),
            "{wait:?}"
        );
        tokio::time::sleep(Duration::from_secs(6)).await;
        limiter.check("a@example.com", IP).unwrap();
        assert!(limiter.check("a@example.com", IP).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn one_address_is_limited_across_emails() {
        let limiter = LoginLimiter::fleet_default();
        for n in 0..10 {
            limiter.check(&format!("user{n}@example.com"), IP).unwrap();
        }
        assert!(limiter.check("someone-else@example.com", IP).is_err());
        let other_ip = Some(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2)));
        limiter.check("someone-else@example.com", other_ip).unwrap();
        tokio::time::sleep(Duration::from_secs(60)).await;
        limiter.check("someone-else@example.com", IP).unwrap();
    }
}
