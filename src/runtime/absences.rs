//! Inventory entries whose AWS object a pass found absent, and since when this process first saw
//! it so. An entry is dropped only once its object has stayed absent for a grace period: a write
//! another replica recorded before sending may still land after this pass looked (two replicas
//! overlap during a rolling upgrade, and a call already sent when a leader lost its term can
//! still land). Dropped at once, the entry's object would land unrecorded, with nothing left to
//! delete it (found by the simulator: a Route 53 record a replica wrote while a new one dropped
//! its entry stayed after its FargateApp's `dns` block was removed).
//!
//! Lost on restart: the next process looks twice again, which only delays the drop.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::runtime::clock::Instant;

/// What [`grace`] allows for a write's wait for its service's budget before it is sent.
const BUDGET_WAIT_ALLOWANCE: Duration = Duration::from_secs(60);

/// How long after a pass found an object absent a write recorded before may still land: the
/// longest call (`RetryPolicy::longest_call`: every attempt timing out, every retry delay) and a
/// minute for its wait for the service's budget before it was sent.
pub fn grace(longest_call: Duration) -> Duration {
    longest_call.saturating_add(BUDGET_WAIT_ALLOWANCE)
}

/// A deletion's error while a recorded record it found absent is in its grace: the deletion looks
/// again once `left` has passed.
pub fn record_not_seen_yet(id: &str, left: Duration) -> crate::aws::AwsError {
    crate::aws::AwsError {
        service: "route53",
        operation: "ListResourceRecordSets",
        category: crate::aws::ErrorCategory::Conflict,
        code: "RecordNotSeenYet".into(),
        message: format!(
            "the recorded record {id} is not in its zone; a write of it another replica recorded may still land, so it is looked for again in {}s before its entry goes",
            left.as_secs().saturating_add(1)
        ),
    }
}

/// The first sighting of an absence and the grace it was given.
#[derive(Clone, Copy, Debug)]
struct Sighting {
    since: Instant,
    grace: Duration,
}

/// Absences seen by this process, per (object key, entry id).
#[derive(Debug, Default)]
pub struct Absences {
    seen: Mutex<HashMap<(String, String), Sighting>>,
}

impl Absences {
    /// The object of entry `id` of object `key` is absent now. `Ok`: it has been since this process
    /// first saw it so, `grace` ago or more, and the entry can go (the sighting is forgotten).
    /// `Err(left)`: keep the entry and look again in `left`.
    pub fn confirmed(&self, key: &str, id: &str, grace: Duration) -> Result<(), Duration> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let k = (key.to_string(), id.to_string());
        let s = *seen.entry(k.clone()).or_insert(Sighting { since: Instant::now(), grace });
        let elapsed = s.since.elapsed();
        if elapsed >= s.grace {
            seen.remove(&k);
            Ok(())
        } else {
            Err(s.grace.saturating_sub(elapsed))
        }
    }

    /// [`confirmed`](Self::confirmed) for every entry of `ids` at once, for a caller that drops
    /// them together or not at all (a deletion that reads its inventory afresh each attempt):
    /// `Ok` once each has been absent for `grace` (their sightings are forgotten), else
    /// `Err(longest left)` and every sighting stays.
    pub fn all_confirmed(&self, key: &str, ids: &[String], grace: Duration) -> Result<(), Duration> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let mut left = Duration::ZERO;
        for id in ids {
            let s = *seen.entry((key.to_string(), id.clone())).or_insert(Sighting { since: now, grace });
            left = left.max(s.grace.saturating_sub(s.since.elapsed()));
        }
        if !left.is_zero() {
            return Err(left);
        }
        for id in ids {
            seen.remove(&(key.to_string(), id.clone()));
        }
        Ok(())
    }

    /// This process deleted the object of entry `id` of `key` itself: its absence from now on needs
    /// no grace (a deletion that reads its inventory afresh each attempt finds it absent again).
    pub fn deleted(&self, key: &str, id: &str) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.insert((key.to_string(), id.to_string()), Sighting { since: Instant::now(), grace: Duration::ZERO });
    }

    /// The object of entry `id` of `key` is there (again): a later absence starts a new grace.
    pub fn present(&self, key: &str, id: &str) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.remove(&(key.to_string(), id.to_string()));
    }

    /// Whether `key` has an absence this process is still looking at (due or not).
    pub fn holds(&self, key: &str) -> bool {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.keys().any(|(k, _)| k == key)
    }

    /// Whether an absence of `key` is due for its second look.
    pub fn due(&self, key: &str) -> bool {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.iter().any(|((k, _), s)| k == key && s.since.elapsed() >= s.grace)
    }

    /// Forget every absence of a deleted object.
    pub fn forget(&self, key: &str) {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).retain(|(k, _), _| k != key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_absence_is_confirmed_only_after_its_grace_and_a_presence_restarts_it() {
        let a = Absences::default();
        let grace = Duration::from_secs(60);
        assert_eq!(a.confirmed("app", "rec", grace), Err(grace), "first sight: keep");
        assert!(!a.due("app"));
        tokio::time::advance(Duration::from_secs(40)).await;
        assert_eq!(a.confirmed("app", "rec", grace), Err(Duration::from_secs(20)));
        a.present("app", "rec");
        tokio::time::advance(Duration::from_secs(30)).await;
        assert!(a.confirmed("app", "rec", grace).is_err(), "seen present in between: a new grace");
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(a.due("app"));
        assert!(a.holds("app") && !a.holds("other"));
        assert!(!a.due("other"));
        assert_eq!(a.confirmed("app", "rec", grace), Ok(()));
        assert!(a.confirmed("app", "rec", grace).is_err(), "confirmed once: the sighting is gone");
        a.forget("app");
        assert!(!a.due("app"));
    }

    #[tokio::test(start_paused = true)]
    async fn absences_confirmed_together_wait_for_the_youngest() {
        let a = Absences::default();
        let grace = Duration::from_secs(60);
        let ids = ["one".to_string(), "two".to_string()];
        assert!(a.all_confirmed("dr", &ids[..1], grace).is_err());
        tokio::time::advance(Duration::from_secs(40)).await;
        assert_eq!(a.all_confirmed("dr", &ids, grace), Err(grace), "two was first seen now");
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(a.all_confirmed("dr", &ids, grace), Err(Duration::from_secs(30)), "one's grace passed, not two's");
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(a.all_confirmed("dr", &ids, grace), Ok(()));
        a.deleted("dr", "one");
        assert_eq!(a.all_confirmed("dr", &ids[..1], grace), Ok(()), "deleted by this process: no grace");
    }
}
