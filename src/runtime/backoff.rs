//! Exponential backoff with jitter: the one formula used by AWS call retries and by the per-object
//! requeue policy.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::aws::ErrorCategory;

/// `base * 2^attempt`, capped, then jittered into `[d/2, d]` ("equal jitter"): delays still grow
/// from one attempt to the next while concurrent retries spread out.
pub fn exponential_delay(attempt: u32, base: Duration, cap: Duration, unit_random: f64) -> Duration {
    let exp = base.saturating_mul(2u32.saturating_pow(attempt.min(30))).min(cap);
    let jitter = 0.5 + 0.5 * unit_random.clamp(0.0, 1.0);
    exp.mul_f64(jitter)
}

/// A random number in `[0, 1)`.
pub fn unit_random() -> f64 {
    rand::random::<f64>()
}

/// How long an object waits before its next reconcile after an error of a category.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RequeuePolicy {
    /// First delay after a retryable error.
    pub base: Duration,
    /// Longest delay for retryable errors.
    pub cap: Duration,
    /// Delay after a terminal error (a spec change triggers a reconcile sooner).
    pub terminal: Duration,
}

impl Default for RequeuePolicy {
    fn default() -> Self {
        Self { base: Duration::from_secs(1), cap: Duration::from_secs(300), terminal: Duration::from_secs(600) }
    }
}

impl RequeuePolicy {
    /// Delay for the `attempt`-th consecutive failure (0-based) of `category`.
    pub fn delay(&self, attempt: u32, category: ErrorCategory, unit_random: f64) -> Duration {
        match category {
            ErrorCategory::Terminal => self.terminal,
            // Throttling means the budget is exhausted: start slower than for a blip.
            ErrorCategory::Throttling => exponential_delay(attempt + 2, self.base, self.cap, unit_random),
            ErrorCategory::Transient | ErrorCategory::NotFound | ErrorCategory::Conflict => {
                exponential_delay(attempt, self.base, self.cap, unit_random)
            }
        }
    }
}

/// Consecutive failures per object, so backoff grows per object and resets on success.
#[derive(Debug, Default)]
pub struct BackoffTracker {
    policy: RequeuePolicy,
    failures: Mutex<HashMap<String, u32>>,
}

impl BackoffTracker {
    /// A tracker with `policy`.
    pub fn new(policy: RequeuePolicy) -> Self {
        Self { policy, failures: Mutex::default() }
    }

    /// Record a failure of `key` and return how long to wait before the next attempt.
    pub fn on_failure(&self, key: &str, category: ErrorCategory) -> Duration {
        let attempt = {
            let mut map = self.failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let n = map.entry(key.to_string()).or_insert(0);
            let attempt = *n;
            *n = n.saturating_add(1);
            attempt
        };
        self.policy.delay(attempt, category, unit_random())
    }

    /// Forget the failures of `key` after a successful reconcile (or its deletion).
    pub fn on_success(&self, key: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        map.remove(key);
    }

    /// Consecutive failures recorded for `key`.
    pub fn failures(&self, key: &str) -> u32 {
        let map = self.failures.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        map.get(key).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_stay_capped_for_any_jitter() {
        let (base, cap) = (Duration::from_secs(1), Duration::from_secs(60));
        for r in [0.0, 0.3, 0.999] {
            let mut prev_max = Duration::ZERO;
            for attempt in 0..10 {
                let lo = exponential_delay(attempt, base, cap, 0.0);
                let hi = exponential_delay(attempt, base, cap, 0.999_999);
                let d = exponential_delay(attempt, base, cap, r);
                assert!(lo <= d && d <= hi);
                assert!(d <= cap);
                // The smallest delay of this attempt is at least the largest of the previous one until the cap.
                if base * 2u32.pow(attempt) < cap {
                    assert!(lo >= prev_max.mul_f64(0.999), "attempt {attempt}: {lo:?} < {prev_max:?}");
                }
                prev_max = hi;
            }
        }
    }

    #[test]
    fn per_object_backoff_grows_and_resets() {
        let t = BackoffTracker::new(RequeuePolicy::default());
        let first = t.on_failure("ns/a", ErrorCategory::Transient);
        let mut last = first;
        for _ in 0..5 {
            last = t.on_failure("ns/a", ErrorCategory::Transient);
        }
        assert!(last > first, "{last:?} > {first:?}");
        assert!(last <= Duration::from_secs(300));
        // Another object is unaffected.
        assert!(t.on_failure("ns/b", ErrorCategory::Transient) <= Duration::from_secs(1));
        t.on_success("ns/a");
        assert_eq!(t.failures("ns/a"), 0);
        assert!(t.on_failure("ns/a", ErrorCategory::Transient) <= Duration::from_secs(1));
    }

    #[test]
    fn terminal_errors_wait_minutes_and_throttling_starts_slower() {
        let p = RequeuePolicy::default();
        assert_eq!(p.delay(0, ErrorCategory::Terminal, 0.5), Duration::from_secs(600));
        assert!(p.delay(0, ErrorCategory::Throttling, 0.0) > p.delay(0, ErrorCategory::Transient, 0.999));
    }
}
