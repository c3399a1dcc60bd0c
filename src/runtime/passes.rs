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
//!
//! Periodic passes also end on a slot of the wall clock ([`aligned`]): those falling due within one
//! slot start together, so the reads they share (DescribeServices 10 at a time, a listener's
//! rules, a hosted zone's walk, one ListHealthChecks) are made once for all of them instead of
//! once each at scattered times.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::runtime::clock::Instant;

/// The fastest rollout poll.
pub const MIN_PROGRESS_POLL: Duration = Duration::from_secs(15);
/// The slot rollout polls end on: a poll waits at most this much longer, and polls due within one
/// slot share their DescribeServices calls.
pub const POLL_SLOT: Duration = Duration::from_secs(5);
/// The slot periodic full passes end on (at most a minute later than due).
pub const RESYNC_SLOT: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct Entry {
    generation: Option<i64>,
    full_at: Instant,
    full_passes: u64,
    /// When the next full pass is due, and the AccessPolicy epoch it was decided under, for kinds
    /// whose passes in between read nothing they do not need ([`PassLog::settle_until`]).
    next_full: Option<(Instant, u64)>,
    /// Since when the rollout polled is in progress (`None`: not polling one).
    progressing_since: Option<Instant>,
    /// What the object's AWS resources looked like when a read last found them healthy, for a
    /// kind that reads health only when that changes (a fingerprint the kind chooses).
    healthy_as: Option<u64>,
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
            next_full: None,
            progressing_since: None,
            healthy_as: None,
        });
        if e.generation != generation {
            // A new spec: a rollout it starts is a new one, polled often again at first.
            e.progressing_since = None;
        }
        e.generation = generation;
        e.full_at = Instant::now();
        e.full_passes += 1;
        e.next_full = None;
    }

    /// Record a completed full pass of `key` at `generation` that found everything in place (under
    /// AccessPolicy `epoch`, see `Access::epoch`), its status written: until `next` from now,
    /// passes of that generation and epoch need not read what this one compared.
    pub fn settle_until(&self, key: &str, generation: Option<i64>, next: Duration, epoch: u64) {
        self.record_full(key, generation);
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = entries.get_mut(key) {
            // checked_add: a huge period (a tiny budget) must not panic; no settling then.
            e.next_full = e.full_at.checked_add(next).map(|at| (at, epoch));
        }
    }

    /// How long `key` stays settled at `generation` and AccessPolicy `epoch` (see
    /// [`settle_until`](Self::settle_until)): `None` when a full pass is due (none settled in this
    /// term, another generation, the policies changed, or time).
    pub fn settled_for(&self, key: &str, generation: Option<i64>, epoch: u64) -> Option<Duration> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let e = entries.get(key).filter(|e| e.generation == generation)?;
        let (at, settled_epoch) = e.next_full?;
        let left = at.checked_duration_since(Instant::now()).filter(|_| settled_epoch == epoch)?;
        (!left.is_zero()).then_some(left)
    }

    /// The fingerprint `key`'s resources had when a read last found them healthy (see
    /// [`set_healthy_as`](Self::set_healthy_as)).
    pub fn healthy_as(&self, key: &str) -> Option<u64> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).get(key).and_then(|e| e.healthy_as)
    }

    /// A health read of `key` found its resources healthy with this fingerprint (`None`: not
    /// healthy). Also during an object's first full pass, before it is recorded (a service ECS
    /// reports running as it is created is read then: the next pass must not read it again).
    pub fn set_healthy_as(&self, key: &str, fingerprint: Option<u64>) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let e = entries.entry(key.to_string()).or_insert(Entry {
            generation: None,
            full_at: Instant::now(),
            full_passes: 0,
            next_full: None,
            progressing_since: None,
            healthy_as: None,
        });
        e.healthy_as = fingerprint;
    }

    /// Mark whether `key` is polling a rollout; returns how many objects are.
    pub fn set_progressing(&self, key: &str, progressing: bool) -> usize {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = entries.get_mut(key) {
            e.progressing_since = if progressing { e.progressing_since.or_else(|| Some(Instant::now())) } else { None };
        }
        entries.values().filter(|e| e.progressing_since.is_some()).count()
    }

    /// A pass of `key` started a deployment (a new service, or an update of it): its rollout is
    /// new, polled often again at first.
    pub fn rollout_started(&self, key: &str) {
        if let Some(e) = self.entries.lock().unwrap_or_else(|p| p.into_inner()).get_mut(key) {
            e.progressing_since = None;
        }
    }

    /// How long `key`'s rollout has been polled in progress (zero when it is not).
    pub fn progressing_for(&self, key: &str) -> Duration {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.get(key).and_then(|e| e.progressing_since).map_or(Duration::ZERO, |since| since.elapsed())
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

/// A rollout in progress for `age` is polled again after an eighth of that (at least `base`, at
/// most `cap`): a deployment of a few minutes is seen done within seconds of its end, one stuck for
/// an hour (an image that cannot be pulled; tasks that never start) costs a poll every `cap`.
pub fn rollout_poll(base: Duration, age: Duration, cap: Duration) -> Duration {
    base.max((age / ROLLOUT_AGE_SHARE).min(cap))
}

/// See [`rollout_poll`].
const ROLLOUT_AGE_SHARE: u32 = 8;

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

/// `after`, lengthened (by less than `slot`, and less than a fifth of `after`) to end on a
/// multiple of that slot since the Unix epoch, counted from `now`. Objects whose periodic passes
/// fall due within one slot then start them together, whenever each was last reconciled.
pub fn aligned(after: Duration, slot: Duration, now: k8s_openapi::jiff::Timestamp) -> Duration {
    let slot_ms = slot.min(after / 5).as_millis();
    // Before the epoch (a clock gone wrong) or a zero slot: no alignment, never a panic.
    let Ok(now_ms) = u128::try_from(now.as_millisecond()) else { return after };
    if slot_ms == 0 {
        return after;
    }
    let past = now_ms.saturating_add(after.as_millis()) % slot_ms;
    let wait = if past == 0 { 0 } else { slot_ms - past };
    after.saturating_add(Duration::from_millis(u64::try_from(wait).unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_healthy_reading_of_the_first_pass_is_kept_and_a_first_pass_is_still_due() {
        let log = PassLog::default();
        log.set_healthy_as("app", Some(7));
        assert!(log.full_due("app", Some(1), Duration::from_secs(300)), "no full pass recorded yet");
        assert_eq!(log.full_passes("app"), 0);
        log.record_full("app", Some(1));
        assert_eq!(log.healthy_as("app"), Some(7), "kept through the first pass's record");
        assert_eq!(log.full_passes("app"), 1);
        assert!(!log.full_due("app", Some(1), Duration::from_secs(300)));
        log.set_healthy_as("app", None);
        assert_eq!(log.healthy_as("app"), None);
    }

    #[test]
    fn passes_due_within_one_slot_end_together() {
        use k8s_openapi::jiff::Timestamp;
        let slot = Duration::from_secs(60);
        let at = |ms: i64| Timestamp::from_millisecond(ms).expect("time");
        // Due at 330 s and at 355 s: both end at 360 s.
        assert_eq!(aligned(Duration::from_secs(300), slot, at(30_000)), Duration::from_secs(330));
        assert_eq!(aligned(Duration::from_secs(300), slot, at(55_000)), Duration::from_secs(305));
        // Due on a boundary: no wait added.
        assert_eq!(aligned(Duration::from_secs(330), slot, at(30_000)), Duration::from_secs(330));
        // A short period takes a slot of a fifth of it: 10 s due at 13 s ends at 14 s.
        assert_eq!(aligned(Duration::from_secs(10), slot, at(3_000)), Duration::from_secs(11));
        // No slot, or a clock before the epoch: unchanged.
        assert_eq!(aligned(Duration::from_secs(7), Duration::ZERO, at(1)), Duration::from_secs(7));
        assert_eq!(aligned(Duration::ZERO, slot, at(1)), Duration::ZERO);
        assert_eq!(aligned(Duration::from_secs(7), slot, at(-5_000)), Duration::from_secs(7));
        // Huge values saturate instead of panicking.
        assert!(aligned(Duration::MAX, slot, at(1)) >= Duration::MAX - slot);
    }

    #[tokio::test(start_paused = true)]
    async fn a_rollout_in_progress_is_polled_less_often_the_longer_it_takes() {
        let log = PassLog::default();
        let (base, cap) = (Duration::from_secs(15), Duration::from_secs(300));
        log.record_full("a", Some(1));
        assert_eq!(log.progressing_for("a"), Duration::ZERO);
        log.set_progressing("a", true);
        tokio::time::advance(Duration::from_secs(60)).await;
        log.set_progressing("a", true);
        assert_eq!(log.progressing_for("a"), Duration::from_secs(60), "counted from when it started");
        assert_eq!(rollout_poll(base, log.progressing_for("a"), cap), base);
        tokio::time::advance(Duration::from_secs(540)).await;
        assert_eq!(rollout_poll(base, log.progressing_for("a"), cap), Duration::from_secs(75));
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert_eq!(rollout_poll(base, log.progressing_for("a"), cap), cap);
        log.record_full("a", Some(2));
        assert_eq!(log.progressing_for("a"), Duration::ZERO, "a new spec's rollout starts at the base");
        log.set_progressing("a", true);
        tokio::time::advance(Duration::from_secs(600)).await;
        log.rollout_started("a");
        log.set_progressing("a", true);
        assert_eq!(log.progressing_for("a"), Duration::ZERO, "a deployment of the same spec starts at the base too");
        log.set_progressing("a", true);
        tokio::time::advance(Duration::from_secs(600)).await;
        log.set_progressing("a", false);
        assert_eq!(log.progressing_for("a"), Duration::ZERO, "done: the next rollout starts at the base");
        assert_eq!(rollout_poll(Duration::from_secs(40), Duration::ZERO, cap), Duration::from_secs(40));
    }

    #[tokio::test(start_paused = true)]
    async fn a_settled_object_stays_settled_for_its_generation_until_its_next_full_pass() {
        let log = PassLog::default();
        assert_eq!(log.settled_for("a", Some(1), 0), None, "nothing settled yet");
        log.settle_until("a", Some(1), Duration::from_secs(300), 0);
        assert_eq!(log.settled_for("a", Some(1), 0), Some(Duration::from_secs(300)));
        assert_eq!(log.settled_for("a", Some(2), 0), None, "a new generation needs a full pass");
        assert_eq!(log.settled_for("a", Some(1), 1), None, "so do changed AccessPolicies");
        assert_eq!(log.full_passes("a"), 1);
        tokio::time::advance(Duration::from_secs(200)).await;
        assert_eq!(log.settled_for("a", Some(1), 0), Some(Duration::from_secs(100)));
        tokio::time::advance(Duration::from_secs(100)).await;
        assert_eq!(log.settled_for("a", Some(1), 0), None, "due");
        log.settle_until("a", Some(1), Duration::from_secs(60), 0);
        log.record_full("a", Some(1));
        assert_eq!(log.settled_for("a", Some(1), 0), None, "a full pass that settled nothing clears it");
        log.settle_until("a", Some(1), Duration::MAX, 0);
        assert_eq!(log.settled_for("a", Some(1), 0), None, "a period past the clock's end settles nothing");
        log.settle_until("b", Some(1), Duration::from_secs(60), 0);
        log.forget("b");
        assert_eq!(log.settled_for("b", Some(1), 0), None);
    }

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
