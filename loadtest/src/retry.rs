//! Retry schedules of osquery's TLS plugins (reference §3.6, §5.3, §10.3), with a scalable time base.

use std::time::Duration;

/// How often a request is attempted and how long to sleep between attempts.
///
/// After failed attempt `i` (1-based) the agent sleeps `base · min(i², cap)` before attempt
/// `i + 1`; no sleep follows the last attempt. With `base` = 1 s this is osquery's schedule
/// (1 s, 4 s, 9 s, …); tests scale `base` down to milliseconds. `attempts == 0` means
/// "retry forever" (osquery's `tls_enroll_max_attempts=0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts; 0 = unlimited.
    pub attempts: u32,
    /// One "second" of the schedule.
    pub base: Duration,
    /// Upper bound of the squared factor, in multiples of `base`
    /// (600 for enrollment = `tls_enroll_max_interval`; `u32::MAX` = uncapped).
    pub cap: u32,
}

impl RetryPolicy {
    /// `attempts` attempts on osquery's uncapped squared schedule with a 1 s base
    /// (`config_tls_max_attempts`, `distributed_tls_max_attempts`, carver: 3).
    pub const fn osquery(attempts: u32) -> Self {
        RetryPolicy {
            attempts,
            base: Duration::from_secs(1),
            cap: u32::MAX,
        }
    }

    /// Enrollment: 12 attempts, sleeps `min(k², 600)` s (`tls_enroll_max_attempts`,
    /// `tls_enroll_max_interval`).
    pub const fn enroll() -> Self {
        RetryPolicy {
            attempts: 12,
            base: Duration::from_secs(1),
            cap: 600,
        }
    }

    /// A single attempt (the logger's variant).
    pub const fn once() -> Self {
        RetryPolicy {
            attempts: 1,
            base: Duration::from_secs(1),
            cap: u32::MAX,
        }
    }

    /// Same schedule with another time base (e.g. 1 ms in tests).
    pub const fn with_base(mut self, base: Duration) -> Self {
        self.base = base;
        self
    }

    /// Same schedule with another attempt count.
    pub const fn with_attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts;
        self
    }

    /// Whether attempt number `attempt` (1-based) may still be made.
    pub fn allows(&self, attempt: u32) -> bool {
        self.attempts == 0 || attempt <= self.attempts
    }

    /// Sleep after failed attempt `attempt` (1-based) when another attempt follows.
    pub fn sleep_after(&self, attempt: u32) -> Duration {
        let squared = u64::from(attempt).saturating_mul(u64::from(attempt));
        let factor = squared.min(u64::from(self.cap));
        let factor = u32::try_from(factor).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor)
    }
}

/// The retry policies of one agent, one per kind of request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicies {
    /// Config fetches (`config_tls_max_attempts` = 3).
    pub config: RetryPolicy,
    /// Distributed read and write (`distributed_tls_max_attempts` = 3).
    pub distributed: RetryPolicy,
    /// Enrollment (12 attempts, capped at 600 s).
    pub enroll: RetryPolicy,
    /// Carve start and each carve block (3 attempts, osquery 5.22+).
    pub carve: RetryPolicy,
}

impl Default for RetryPolicies {
    fn default() -> Self {
        RetryPolicies {
            config: RetryPolicy::osquery(3),
            distributed: RetryPolicy::osquery(3),
            enroll: RetryPolicy::enroll(),
            carve: RetryPolicy::osquery(3),
        }
    }
}

impl RetryPolicies {
    /// osquery's defaults with every time base replaced by `base`.
    pub fn scaled(base: Duration) -> Self {
        let d = RetryPolicies::default();
        RetryPolicies {
            config: d.config.with_base(base),
            distributed: d.distributed.with_base(base),
            enroll: d.enroll.with_base(base),
            carve: d.carve.with_base(base),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn osquery_schedule_is_squared() {
        let p = RetryPolicy::osquery(3);
        assert_eq!(p.sleep_after(1), Duration::from_secs(1));
        assert_eq!(p.sleep_after(2), Duration::from_secs(4));
        assert!(p.allows(3));
        assert!(!p.allows(4));
    }

    #[test]
    fn enroll_schedule_is_capped() {
        let p = RetryPolicy::enroll();
        assert_eq!(p.sleep_after(11), Duration::from_secs(121));
        assert_eq!(p.sleep_after(30), Duration::from_secs(600));
        let forever = p.with_attempts(0);
        assert!(forever.allows(1_000_000));
        assert_eq!(forever.sleep_after(u32::MAX), Duration::from_secs(600));
    }

    #[test]
    fn base_scales() {
        let p = RetryPolicy::osquery(3).with_base(Duration::from_millis(2));
        assert_eq!(p.sleep_after(2), Duration::from_millis(8));
    }
}
