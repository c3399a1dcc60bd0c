//! Which kind of pass an object gets, so periodic reads stay inside the AWS budget however many
//! objects there are.
//!
//! A *full pass* reads and compares every AWS resource of an object (drift detection); a *poll*
//! reads only what moves on its own (an ECS rollout, target health). Full passes run when the
//! spec changed, on the first pass of the process, and then once per period: `--resync-seconds`,
//! stretched when that many objects' full passes would take more than a share of the budget. Polls
//! of rollouts in progress start every 15 s and stretch the same way. At 100 FargateApps the
//! period is the configured resync; at 1,000 with the default ELBv2 budget it is about 13 minutes
//! (BENCHMARKS.md), instead of a backlog that never drains.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::runtime::clock::Instant;

/// The fastest rollout poll.
pub const MIN_PROGRESS_POLL: Duration = Duration::from_secs(15);

#[derive(Debug)]
struct Entry {
    generation: Option<i64>,
    full_at: Instant,
    full_passes: u64,
    progressing: bool,
}

/// Per-object pass history of this process (lost on restart: the first pass after one is full).
#[derive(Debug, Default)]
pub struct PassLog {
    entries: Mutex<HashMap<String, Entry>>,
}

impl PassLog {
    /// Whether `key` needs a full pass now: none yet in this process, a new generation, or the
    /// last one is at least `every` old.
    pub fn full_due(&self, key: &str, generation: Option<i64>, every: Duration) -> bool {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.get(key).is_none_or(|e| e.generation != generation || e.full_at.elapsed() >= every)
    }

    /// How many full passes `key` has had in this process before the one about to run.
    pub fn full_passes(&self, key: &str) -> u64 {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).get(key).map_or(0, |e| e.full_passes)
    }

    /// Record a completed full pass of `key` at `generation`.
    pub fn record_full(&self, key: &str, generation: Option<i64>) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let e = entries.entry(key.to_string()).or_insert(Entry {
            generation,
            full_at: Instant::now(),
            full_passes: 0,
            progressing: false,
        });
        e.generation = generation;
        e.full_at = Instant::now();
        e.full_passes += 1;
    }

    /// Mark whether `key` is polling a rollout; returns how many objects are.
    pub fn set_progressing(&self, key: &str, progressing: bool) -> usize {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = entries.get_mut(key) {
            e.progressing = progressing;
        }
        entries.values().filter(|e| e.progressing).count()
    }

    /// Objects with a recorded full pass (the population sharing the budget).
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether no object has had a full pass yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forget a deleted object.
    pub fn forget(&self, key: &str) {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }
}

/// `base`, or longer when `objects` passes of `calls_per_pass` calls each per period would take
/// more than `share` of a `rate` calls/s budget.
pub fn stretched(base: Duration, objects: usize, calls_per_pass: f64, rate: f64, share: f64) -> Duration {
    let budget = rate * share;
    if budget <= 0.0 {
        return base;
    }
    // try_: an infinite or huge quotient (a tiny budget) must not panic; the base period stands.
    let needed = Duration::try_from_secs_f64(objects as f64 * calls_per_pass / budget).unwrap_or(base);
    base.max(needed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_pass_due_on_first_sight_new_generation_and_age() {
        let log = PassLog::default();
        let hour = Duration::from_secs(3600);
        assert!(log.full_due("a", Some(1), hour), "never seen");
        log.record_full("a", Some(1));
        assert!(!log.full_due("a", Some(1), hour), "just done");
        assert!(log.full_due("a", Some(2), hour), "spec changed");
        assert!(log.full_due("a", Some(1), Duration::ZERO), "period over");
        assert_eq!(log.full_passes("a"), 1);
        log.record_full("a", Some(2));
        assert_eq!(log.full_passes("a"), 2);
        log.forget("a");
        assert!(log.full_due("a", Some(2), hour), "forgotten");
        assert!(log.is_empty());
    }

    #[test]
    fn progressing_objects_are_counted() {
        let log = PassLog::default();
        log.record_full("a", Some(1));
        log.record_full("b", Some(1));
        assert_eq!(log.set_progressing("a", true), 1);
        assert_eq!(log.set_progressing("b", true), 2);
        assert_eq!(log.set_progressing("a", false), 1);
        assert_eq!(log.set_progressing("unknown", true), 1, "only objects with a full pass count");
    }

    #[test]
    fn periods_stretch_to_keep_within_a_share_of_the_budget() {
        let resync = Duration::from_secs(300);
        // 100 objects x 3 reads at half of 8/s: 75 s of reads, so the resync stands.
        assert_eq!(stretched(resync, 100, 3.0, 8.0, 0.5), resync);
        // 1,000 objects: 750 s.
        assert_eq!(stretched(resync, 1000, 3.0, 8.0, 0.5), Duration::from_secs(750));
        assert_eq!(stretched(MIN_PROGRESS_POLL, 1000, 1.0, 20.0, 0.25), Duration::from_secs(200));
        assert_eq!(stretched(resync, 1000, 3.0, 0.0, 0.5), resync, "no budget configured");
    }
}
