//! When the controller first saw each claim that is waiting for a worker (the claim watch's first
//! event of it), for `hotpool_claim_bind_seconds`: `creationTimestamp` has a resolution of one
//! second, a bind from cached state takes milliseconds.
//!
//! In memory only, by claim UID. An entry goes when its claim is bound (the metric takes it), seen
//! ended (Expired or Failed), or deleted; past [`MAX_ENTRIES`] entries older than [`MAX_AGE`] are
//! dropped, and when none is, a new claim is not timed. A claim seen Bound keeps its entry: the
//! watch event of a binding often arrives before the response to its write, which then times it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use kube::ResourceExt;

use crate::api::hot_pool::{ClaimPhase, HotPoolClaim};
use crate::runtime::clock::Instant;

/// Claims timed at most at once.
const MAX_ENTRIES: usize = 100_000;
/// Age past which an entry may be dropped to make room.
const MAX_AGE: Duration = Duration::from_secs(3600);

/// First sightings of waiting claims (see the module documentation).
#[derive(Debug, Default)]
pub struct Arrivals {
    first_seen: Mutex<HashMap<String, Instant>>,
}

impl Arrivals {
    /// A watch event showed `claim` at `now`: a claim waiting for a worker is timed from its first
    /// event; an ended one is not (any more).
    pub fn saw(&self, claim: &HotPoolClaim, now: Instant) {
        let Some(uid) = claim.uid() else { return };
        let phase = claim.status.as_ref().and_then(|s| s.phase).unwrap_or_default();
        let mut map = self.first_seen.lock().unwrap_or_else(|p| p.into_inner());
        if matches!(phase, ClaimPhase::Expired | ClaimPhase::Failed) {
            map.remove(&uid);
            return;
        }
        if map.contains_key(&uid) || !super::stores::waiting(claim) {
            return;
        }
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, seen| now.saturating_duration_since(*seen) < MAX_AGE);
            if map.len() >= MAX_ENTRIES {
                return;
            }
        }
        map.insert(uid, now);
    }

    /// The claim with this UID is gone.
    pub fn gone(&self, uid: &str) {
        self.first_seen.lock().unwrap_or_else(|p| p.into_inner()).remove(uid);
    }

    /// The claim with this UID was bound at `now`: how long after it was first seen (`None` when it
    /// was not timed). Its entry goes.
    pub fn bound(&self, uid: &str, now: Instant) -> Option<Duration> {
        let seen = self.first_seen.lock().unwrap_or_else(|p| p.into_inner()).remove(uid)?;
        Some(now.saturating_duration_since(seen))
    }

    /// Claims being timed.
    pub fn len(&self) -> usize {
        self.first_seen.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether no claim is being timed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::hot_pool::{HotPoolClaimSpec, HotPoolClaimStatus};

    fn claim(uid: &str, phase: Option<ClaimPhase>) -> HotPoolClaim {
        let mut c = HotPoolClaim::new(
            "c",
            HotPoolClaimSpec { pool: "p".into(), version: "1".into(), client: "x".into(), renewed_at: None },
        );
        c.metadata.uid = Some(uid.into());
        c.status = phase.map(|p| HotPoolClaimStatus { phase: Some(p), ..Default::default() });
        c
    }

    #[test]
    fn a_claim_is_timed_from_its_first_event_to_its_binding_and_then_forgotten() {
        let a = Arrivals::default();
        let t0 = Instant::now();
        a.saw(&claim("u1", None), t0);
        // Later events (its Pending status) do not restart the clock.
        a.saw(&claim("u1", Some(ClaimPhase::Pending)), t0 + Duration::from_millis(5));
        assert_eq!(a.bound("u1", t0 + Duration::from_millis(12)), Some(Duration::from_millis(12)));
        assert_eq!(a.bound("u1", t0 + Duration::from_millis(20)), None, "measured once");
        // The Bound event may come before the write's response: the binding still times it.
        a.saw(&claim("u2", None), t0);
        a.saw(&claim("u2", Some(ClaimPhase::Bound)), t0 + Duration::from_millis(3));
        assert_eq!(a.bound("u2", t0 + Duration::from_millis(4)), Some(Duration::from_millis(4)));
        // A claim first seen bound is not timed; ended or deleted claims are not kept.
        a.saw(&claim("u5", Some(ClaimPhase::Bound)), t0);
        a.saw(&claim("u3", None), t0);
        a.saw(&claim("u3", Some(ClaimPhase::Failed)), t0);
        a.saw(&claim("u4", None), t0);
        a.gone("u4");
        assert!(a.is_empty());
    }
}
