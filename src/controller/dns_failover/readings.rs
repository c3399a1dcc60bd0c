//! Health readings handed from the poller to the reconciler. The poller reads Route 53 and writes
//! no status: it records what it read here and asks for a reconcile when the reading would change
//! the status. The reconcile (the one writer of a DnsFailover's status) applies the latest reading
//! to the status it has just computed, so a reading never overwrites newer health-check ids,
//! conditions or `observedGeneration` with a snapshot taken before them.

use std::collections::HashMap;
use std::sync::Mutex;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::health::observe;
use crate::api::dns_failover::{DnsFailover, DnsFailoverStatus, Failover, HealthState};

/// What the poller read for one object's checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reading {
    /// The object it was read for (a recreated object with the same name is another one).
    pub uid: String,
    /// The object's generation when it was read: a reading of an older spec (another target, port
    /// or mode on the same check) is not applied to a newer one.
    pub generation: Option<i64>,
    /// The primary check it read.
    pub primary_id: String,
    /// The secondary check it read (empty when there is none).
    pub secondary_id: String,
    /// The primary's health.
    pub primary: HealthState,
    /// The secondary's health.
    pub secondary: HealthState,
}

/// The latest reading per object (`namespace/name`), for the leadership term.
#[derive(Debug, Default)]
pub struct Readings {
    by_object: Mutex<HashMap<String, Reading>>,
}

fn key(obj: &DnsFailover) -> String {
    format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any())
}

impl Readings {
    /// Remember `reading` for `obj`.
    pub fn record(&self, obj: &DnsFailover, reading: Reading) {
        self.by_object.lock().unwrap_or_else(|p| p.into_inner()).insert(key(obj), reading);
    }

    /// Forget `obj` (deleted).
    pub fn forget(&self, obj: &DnsFailover) {
        self.by_object.lock().unwrap_or_else(|p| p.into_inner()).remove(&key(obj));
    }

    /// Keep only the objects `listed` names (`namespace/name`): an object deleted during a sweep
    /// may be recorded after its cleanup forgot it.
    pub fn retain_listed(&self, listed: &std::collections::HashSet<String>) {
        self.by_object.lock().unwrap_or_else(|p| p.into_inner()).retain(|k, _| listed.contains(k));
    }

    /// The key of `obj` in the map.
    pub fn key_of(obj: &DnsFailover) -> String {
        key(obj)
    }

    /// The latest reading of `obj`, if any.
    pub fn latest(&self, obj: &DnsFailover) -> Option<Reading> {
        self.by_object.lock().unwrap_or_else(|p| p.into_inner()).get(&key(obj)).cloned()
    }
}

/// Apply `reading` to `status` when it was taken of the checks `status` names now (a check replaced
/// since is not judged by its predecessor's reading). Returns the failover it shows, if any.
pub fn apply_reading(
    status: &mut DnsFailoverStatus,
    obj: &DnsFailover,
    reading: Option<&Reading>,
    now: Timestamp,
) -> Option<Failover> {
    let reading = reading?;
    let checks = status.health_checks.as_ref()?;
    let current = obj.uid().as_deref() == Some(reading.uid.as_str())
        && obj.metadata.generation == reading.generation
        && !checks.primary.id.is_empty()
        && checks.primary.id == reading.primary_id
        && checks.secondary.id == reading.secondary_id;
    if !current {
        return None;
    }
    let (new, flip) =
        observe(status, obj.spec.mode, reading.primary, reading.secondary, status.observed_generation, now);
    *status = new;
    flip
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::dns_failover::{ActiveTarget, HealthCheckStatus, HealthChecksStatus};

    fn obj() -> DnsFailover {
        let mut o = DnsFailover::new(
            "dr",
            serde_json::from_value(serde_json::json!({
                "hostedZoneId": "Z1", "name": "a.example.com",
                "primary": {"target": "p.example.net", "healthCheck": {"type": "HTTPS"}},
                "secondary": {"target": "s.example.net"}
            }))
            .expect("spec"),
        );
        o.metadata.namespace = Some("ns".into());
        o.metadata.uid = Some("uid-1".into());
        o.metadata.generation = Some(4);
        o
    }

    fn status(primary_id: &str) -> DnsFailoverStatus {
        DnsFailoverStatus {
            observed_generation: Some(4),
            active_target: Some(ActiveTarget::Primary),
            health_checks: Some(HealthChecksStatus {
                primary: HealthCheckStatus { id: primary_id.into(), status: HealthState::Healthy },
                secondary: HealthCheckStatus::default(),
            }),
            ..Default::default()
        }
    }

    fn reading(primary_id: &str, primary: HealthState) -> Reading {
        Reading {
            uid: "uid-1".into(),
            generation: Some(4),
            primary_id: primary_id.into(),
            secondary_id: String::new(),
            primary,
            secondary: HealthState::Unknown,
        }
    }

    #[test]
    fn a_reading_of_the_current_checks_is_applied_and_shows_the_failover() {
        let mut st = status("hc-1");
        let flip =
            apply_reading(&mut st, &obj(), Some(&reading("hc-1", HealthState::Unhealthy)), Timestamp::UNIX_EPOCH);
        assert_eq!(flip.map(|f| f.to), Some(ActiveTarget::Secondary));
        assert_eq!(st.active_target, Some(ActiveTarget::Secondary));
        assert_eq!(st.observed_generation, Some(4), "a reading never changes observedGeneration");
    }

    #[test]
    fn a_reading_of_a_replaced_check_or_of_another_object_is_ignored() {
        let before = status("hc-2");
        let mut st = before.clone();
        let stale = reading("hc-1", HealthState::Unhealthy);
        assert_eq!(apply_reading(&mut st, &obj(), Some(&stale), Timestamp::UNIX_EPOCH), None);
        assert_eq!(st, before);
        let mut other = reading("hc-2", HealthState::Unhealthy);
        other.uid = "uid-of-a-deleted-namesake".into();
        assert_eq!(apply_reading(&mut st, &obj(), Some(&other), Timestamp::UNIX_EPOCH), None);
        assert_eq!(st, before);
        let mut older_spec = reading("hc-2", HealthState::Unhealthy);
        older_spec.generation = Some(3);
        assert_eq!(apply_reading(&mut st, &obj(), Some(&older_spec), Timestamp::UNIX_EPOCH), None);
        assert_eq!(st, before, "a reading taken under an older spec is not applied");
        assert_eq!(apply_reading(&mut st, &obj(), None, Timestamp::UNIX_EPOCH), None);
    }

    #[test]
    fn readings_are_kept_per_object() {
        let r = Readings::default();
        let o = obj();
        assert_eq!(r.latest(&o), None);
        r.record(&o, reading("hc-1", HealthState::Healthy));
        assert_eq!(r.latest(&o).map(|x| x.primary_id), Some("hc-1".into()));
        r.forget(&o);
        assert_eq!(r.latest(&o), None);
    }
}
