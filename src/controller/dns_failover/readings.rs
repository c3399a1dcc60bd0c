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
use crate::runtime::conditions::{self, DEGRADED};
use crate::runtime::status::set_last_error;

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
    /// Why the configured health source (CloudWatch) could not be read for this object, when it
    /// was refused for good; its checks were then read one by one.
    pub source_error: Option<crate::aws::AwsError>,
}

/// The latest reading per object (`namespace/name`), for the leadership term.
#[derive(Debug, Default)]
pub struct Readings {
    by_object: Mutex<HashMap<String, Reading>>,
    /// How many DnsFailovers the poller's last sweep saw (with checks or not yet).
    seen: std::sync::atomic::AtomicUsize,
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

    /// How many objects have a reading (those whose checks exist: the objects resyncing).
    pub fn len(&self) -> usize {
        self.by_object.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// The poller's last sweep saw `objects` DnsFailovers.
    pub fn set_seen(&self, objects: usize) {
        self.seen.store(objects, std::sync::atomic::Ordering::Relaxed);
    }

    /// The objects whose periodic full passes share the Route 53 budget: every DnsFailover the
    /// last sweep saw, not only those read so far. While 1,000 new objects are created (at
    /// CreateHealthCheck's 0.5/s), counting only those with a reading gave the first ones a short
    /// period, and their full passes took reads from the rest.
    pub fn population(&self) -> usize {
        self.len().max(self.seen.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Whether no object has a reading.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
    if let Some(err) = &reading.source_error {
        report_source_error(status, obj, err);
    }
    flip
}

/// A refused health source is `Degraded` with the error in `lastError` (kept as it was, time
/// included, while it stays the same: a pass clears `lastError` before this runs, and a fresh
/// time on every pass would be a status write on every pass).
fn report_source_error(status: &mut DnsFailoverStatus, obj: &DnsFailover, err: &crate::aws::AwsError) {
    let message = format!(
        "health checks are read one by one with GetHealthCheckStatus (one per second) because {err}; \
         allow cloudwatch:GetMetricData or run with --health-source route53"
    );
    let generation = status.observed_generation;
    conditions::set_condition(&mut status.conditions, DEGRADED, true, "HealthSourceRefused", &message, generation);
    // The pass set Degraded=False before this ran: a condition already written as this one keeps
    // its transition time.
    let written = obj.status.as_ref().and_then(|s| conditions::find(&s.conditions, DEGRADED));
    if let (Some(written), Some(now)) = (written, status.conditions.iter_mut().find(|c| c.type_ == DEGRADED))
        && (&written.status, &written.reason, &written.message, written.observed_generation)
            == (&now.status, &now.reason, &now.message, now.observed_generation)
    {
        now.last_transition_time = written.last_transition_time.clone();
    }
    let operation = err.operation_path();
    let previous = obj.status.as_ref().and_then(|s| s.last_error.clone());
    match previous.filter(|e| e.operation == operation && e.code == err.code && e.message == message) {
        Some(kept) => status.last_error = Some(kept),
        None => set_last_error(&mut status.last_error, &operation, &err.code, &message),
    }
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
            source_error: None,
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
        assert_eq!(r.population(), 1, "before any sweep: those with a reading");
        r.set_seen(1000);
        assert_eq!(r.population(), 1000, "every object the sweep saw, read or not");
        r.forget(&o);
        assert_eq!(r.latest(&o), None);
    }

    #[test]
    fn a_refused_health_source_is_degraded_with_its_error_and_a_later_pass_writes_nothing_new() {
        let err = crate::aws::AwsError::new(
            "cloudwatch",
            "GetMetricData",
            crate::aws::Classified {
                category: crate::aws::ErrorCategory::Terminal,
                code: "AccessDenied".into(),
                message: "not authorized to perform: cloudwatch:GetMetricData".into(),
            },
        );
        let mut refused = reading("hc-1", HealthState::Healthy);
        refused.source_error = Some(err);
        let mut st = status("hc-1");
        apply_reading(&mut st, &obj(), Some(&refused), Timestamp::UNIX_EPOCH);
        assert!(conditions::is_true(&st.conditions, DEGRADED));
        let last = st.last_error.clone().expect("lastError");
        assert_eq!((last.operation.as_str(), last.code.as_str()), ("cloudwatch:GetMetricData", "AccessDenied"));
        assert!(last.message.contains("--health-source route53"), "{}", last.message);
        assert_eq!(st.health_checks.as_ref().map(|c| c.primary.status), Some(HealthState::Healthy), "still read");
        // The next pass clears lastError and applies the reading again: the written one is kept,
        // time included, so the status is unchanged.
        let mut o = obj();
        o.status = Some(st.clone());
        let mut next = status("hc-1");
        conditions::set_condition(&mut next.conditions, DEGRADED, false, "AsExpected", "no problems found", Some(4));
        apply_reading(&mut next, &o, Some(&refused), Timestamp::from_second(60).expect("time"));
        assert_eq!(next.last_error, st.last_error, "kept, time included");
        assert_eq!(
            conditions::find(&next.conditions, DEGRADED),
            conditions::find(&st.conditions, DEGRADED),
            "kept, transition time included"
        );
        // Allowed again: the reading carries no error and adds none.
        let mut fixed = status("hc-1");
        apply_reading(&mut fixed, &o, Some(&reading("hc-1", HealthState::Healthy)), Timestamp::UNIX_EPOCH);
        assert_eq!((fixed.last_error, conditions::is_true(&fixed.conditions, DEGRADED)), (None, false));
    }
}
