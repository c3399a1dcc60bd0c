//! The operator's clock and time arithmetic.
//!
//! [`now`] is the one source of the current time for everything the operator writes or compares
//! (status times, lease expiry, launch ages), and [`Instant`] the one monotonic clock for elapsed
//! times. Both are the wall clock in production. Under the simulator (feature `sim`) they follow
//! tokio's clock, which the simulator pauses and advances virtually (`use_virtual_time`, per
//! thread).
//!
//! Arithmetic on values users write (`renewedAt`, lease and timeout seconds, status times) must
//! never panic: a sum past the end of time saturates at the largest (or smallest) representable
//! instant instead, so "year 9999 plus a lease" is simply "never".

use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// How far in the future a client-written time may be before it is refused: clients' clocks drift,
/// but a renewal from much later than now is a mistake (or an attempt to hold a worker forever).
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(300);

/// The monotonic clock for elapsed times: tokio's, which is the system's monotonic clock unless a
/// test or the simulator pauses it.
pub type Instant = tokio::time::Instant;

// Where this thread's virtual clock started: (wall time it reads as, tokio instant it started
// at). Per thread rather than per process: the simulator runs each seed on a current-thread runtime
// of its own (one per OS thread at a time), each with its own paused clock, and every task of such
// a runtime runs on the thread that drives it.
#[cfg(feature = "sim")]
thread_local! {
    static VIRTUAL: std::cell::Cell<Option<(Timestamp, Instant)>> = const { std::cell::Cell::new(None) };
}

/// The current time.
pub fn now() -> Timestamp {
    #[cfg(feature = "sim")]
    if let Some((epoch, start)) = VIRTUAL.with(std::cell::Cell::get) {
        let elapsed = i64::try_from(start.elapsed().as_millis()).unwrap_or(i64::MAX);
        return epoch.checked_add(SignedDuration::from_millis(elapsed)).unwrap_or(Timestamp::MAX);
    }
    Timestamp::now()
}

/// From now on, on this thread, [`now`] reads `epoch` plus the time tokio's clock has moved since
/// this call. The simulator calls it at the start of each run, inside a current-thread runtime whose
/// clock is paused, so that timestamps follow that runtime's virtual time; a later call starts the
/// clock afresh. Other threads (and so a multi-thread runtime's workers) keep the wall clock.
#[cfg(feature = "sim")]
pub fn use_virtual_time(epoch: Timestamp) {
    VIRTUAL.with(|v| v.set(Some((epoch, Instant::now()))));
}

/// Back to the wall clock on this thread (the end of a simulated run).
#[cfg(feature = "sim")]
pub fn use_wall_time() {
    VIRTUAL.with(|v| v.set(None));
}

/// `t` plus `secs` seconds, saturating at [`Timestamp::MAX`] / [`Timestamp::MIN`].
pub fn plus_secs(t: Timestamp, secs: i64) -> Timestamp {
    t.checked_add(SignedDuration::from_secs(secs)).unwrap_or(if secs >= 0 { Timestamp::MAX } else { Timestamp::MIN })
}

/// The time from `now` until `at` (zero when `at` has passed), plus a moment so that a requeue at
/// that delay finds the deadline passed, capped at `cap` so a far-future time never becomes a timer
/// that outlives every process.
pub fn until(now: Timestamp, at: Timestamp, cap: Duration) -> Duration {
    let d = Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO);
    d.saturating_add(Duration::from_millis(200)).min(cap)
}

/// True when `t` lies later than `now` plus [`MAX_CLOCK_SKEW`].
pub fn too_far_ahead(t: Timestamp, now: Timestamp) -> bool {
    let skew = i64::try_from(MAX_CLOCK_SKEW.as_secs()).unwrap_or(i64::MAX);
    t > plus_secs(now, skew)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    #[cfg(feature = "sim")]
    #[tokio::test(start_paused = true)]
    async fn virtual_time_follows_the_paused_clock_on_this_thread_only() {
        let epoch = at("2100-01-01T00:00:00Z");
        use_virtual_time(epoch);
        tokio::time::sleep(Duration::from_secs(90)).await;
        assert_eq!(now(), at("2100-01-01T00:01:30Z"));
        let other = std::thread::spawn(now).join().expect("thread");
        assert!(other < epoch, "another thread keeps the wall clock");
        use_virtual_time(epoch);
        assert_eq!(now(), epoch, "a later call starts the clock afresh");
        use_wall_time();
        assert!(now() < epoch);
    }

    #[test]
    fn sums_past_the_end_of_time_saturate() {
        let late = at("9999-12-30T21:59:59Z");
        assert_eq!(plus_secs(late, 604_800), Timestamp::MAX);
        assert_eq!(plus_secs(Timestamp::MAX, i64::MAX), Timestamp::MAX);
        assert_eq!(plus_secs(Timestamp::MIN, -1), Timestamp::MIN);
        assert_eq!(plus_secs(Timestamp::MIN, i64::MIN), Timestamp::MIN);
        assert_eq!(plus_secs(at("2026-01-01T00:00:00Z"), 60), at("2026-01-01T00:01:00Z"));
    }

    #[test]
    fn until_is_zero_for_the_past_and_capped_for_the_far_future() {
        let now = at("2026-01-01T00:00:00Z");
        let cap = Duration::from_secs(3600);
        assert_eq!(until(now, at("2025-01-01T00:00:00Z"), cap), Duration::from_millis(200));
        assert_eq!(until(now, Timestamp::MIN, cap), Duration::from_millis(200));
        assert_eq!(until(now, at("2026-01-01T00:00:10Z"), cap), Duration::from_millis(10_200));
        assert_eq!(until(now, Timestamp::MAX, cap), cap);
    }

    #[test]
    fn a_little_skew_is_allowed_and_far_ahead_is_not() {
        let now = at("2026-01-01T00:00:00Z");
        assert!(!too_far_ahead(at("2026-01-01T00:04:59Z"), now));
        assert!(too_far_ahead(at("2026-01-01T00:05:01Z"), now));
        assert!(too_far_ahead(Timestamp::MAX, now));
        assert!(!too_far_ahead(Timestamp::MIN, now));
        assert!(!too_far_ahead(Timestamp::MAX, Timestamp::MAX));
    }
}
