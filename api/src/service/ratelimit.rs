//! `LoginLimiter`: Fleet's login rate limit (10 a minute, ten at once) per email and per
//! client IP, in memory. A GCRA from `governor` on tokio's clock, so tests can pause time.

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

#[cfg(test)]
mod tests {
    use super::*;

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
