//! Claims: which workers are released before claims are planned, and each claim's step in arrival
//! order.
//!
//! Binding is two writes: the worker first (`status.claim`), then the claim (`status.worker`). The
//! claim's status is the commit point a client sees, so after a crash between the two writes the
//! worker's claim reference is completed if the claim is still unbound, and dropped if the claim is
//! bound elsewhere. Both writes carry the resourceVersion they were planned from, so a stale read
//! fails with a conflict instead of binding twice.

use std::collections::BTreeMap;

use k8s_openapi::jiff::Timestamp;

use super::super::inventory::same_cluster;
use super::{WorkerView, plus, ts};
use crate::api::hot_pool::{
    ClaimPhase, HotPoolClaim, HotPoolSpec, OnRelease, PoolVersion, WhenEmpty, WorkerClaimRef, WorkerPhase,
};
use crate::api::validation::validate_hot_pool_claim;
use crate::runtime::clock;

#[derive(Clone, Debug)]
pub struct ClaimView {
    /// Name.
    pub name: String,
    /// UID.
    pub uid: String,
    /// Wanted version.
    pub version: String,
    /// Client.
    pub client: String,
    /// Creation time (arrival order).
    pub created: Timestamp,
    /// `spec.renewedAt`, unless it is invalid (too far ahead of now): then the lease runs as if
    /// it had not been renewed.
    pub renewed_at: Option<Timestamp>,
    /// Why the claim's spec is invalid (`InvalidSpec`): it is neither bound nor waited for.
    pub invalid: Option<String>,
    /// Phase.
    pub phase: ClaimPhase,
    /// Bound worker.
    pub worker: Option<String>,
    /// When bound.
    pub bound_at: Option<Timestamp>,
    /// The lease end last written to status (`status.expiresAt`).
    pub recorded_expiry: Option<Timestamp>,
}

impl ClaimView {
    /// The view of a claim object at `now`.
    pub fn of(c: &HotPoolClaim, now: Timestamp) -> Self {
        let st = c.status.as_ref();
        Self {
            name: c.metadata.name.clone().unwrap_or_default(),
            uid: c.metadata.uid.clone().unwrap_or_default(),
            version: c.spec.version.clone(),
            client: c.spec.client.clone(),
            created: ts(c.metadata.creation_timestamp.as_ref()).unwrap_or(Timestamp::UNIX_EPOCH),
            renewed_at: ts(c.spec.renewed_at.as_ref()).filter(|r| !clock::too_far_ahead(*r, now)),
            invalid: validate_hot_pool_claim(&c.spec, now).err().map(|e| e.to_string()),
            phase: st.and_then(|s| s.phase).unwrap_or_default(),
            worker: st.and_then(|s| s.worker.clone()),
            bound_at: st.and_then(|s| ts(s.bound_at.as_ref())),
            recorded_expiry: st.and_then(|s| ts(s.expires_at.as_ref())),
        }
    }

    /// When the lease of a bound claim runs out.
    pub fn expires_at(&self, lease_seconds: i32) -> Option<Timestamp> {
        let from = match (self.bound_at, self.renewed_at) {
            (Some(b), Some(r)) => Some(b.max(r)),
            (b, r) => b.or(r),
        }?;
        let computed = plus(from, lease_seconds);
        // An invalid renewal neither extends the lease nor cuts short one a valid renewal gave.
        match (&self.invalid, self.recorded_expiry) {
            (Some(_), Some(recorded)) => Some(computed.max(recorded)),
            _ => Some(computed),
        }
    }
}

/// What happens to a claim this pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClaimStep {
    /// Bind an idle Available worker: write the worker, then the claim.
    Bind { worker: String },
    /// The worker already names this claim (a crash between the two writes, or a cold start that is
    /// now running): write the claim.
    Complete { worker: String, cold_start: bool },
    /// Launch a worker reserved for this claim.
    ColdStart,
    /// Stay Pending with this reason and message.
    Pending { reason: &'static str, message: String },
    /// The lease ran out: the claim becomes Expired and its worker is released.
    Expire { worker: String },
    /// Cannot be served: Failed with this reason and message.
    Fail { reason: &'static str, message: String },
    /// Bound and healthy; `expires_at` is the lease end to show.
    Hold { expires_at: Option<Timestamp> },
    /// The spec is invalid: the claim keeps its phase (and its worker until the lease runs out)
    /// and reports `InvalidSpec` with this message; nothing is bound or launched for it.
    Invalid { message: String, expires_at: Option<Timestamp> },
    /// Expired or Failed already: nothing to do.
    Done,
}

/// What happens to a worker holding or reserving a claim that is gone, ended, or bound elsewhere.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Release {
    /// The claim let go: apply `onRelease`.
    Released { worker: String, on_release: OnRelease, why: String },
    /// The worker's reference was never committed on the claim (the claim is bound to another
    /// worker): drop the reference, the worker goes back to idle.
    Unreserve { worker: String },
}

/// Workers to release before claims are planned. `claims` are this pool's claims by name.
pub fn releases(
    workers: &[WorkerView],
    claims: &BTreeMap<String, ClaimView>,
    on_release: OnRelease,
    lease_seconds: i32,
    now: Timestamp,
) -> Vec<Release> {
    let mut out = Vec::new();
    for w in workers {
        let Some(r) = &w.claim else { continue };
        let claim = claims.get(&r.name).filter(|c| r.uid.as_deref().is_none_or(|u| u == c.uid));
        let released = |why: &str| Release::Released { worker: w.name.clone(), on_release, why: why.into() };
        match claim {
            None => out.push(released("its claim was deleted")),
            Some(c) if matches!(c.phase, ClaimPhase::Expired | ClaimPhase::Failed) => {
                out.push(released("its claim ended"))
            }
            Some(c) if c.worker.as_deref().is_some_and(|bound| bound != w.name) => {
                out.push(Release::Unreserve { worker: w.name.clone() })
            }
            Some(c) if c.phase == ClaimPhase::Bound && c.expires_at(lease_seconds).is_some_and(|e| now >= e) => {
                // Expired claims are handled in the claim pass, which releases the worker.
            }
            Some(_) => {}
        }
    }
    out
}

/// Decide every claim of the pool, in arrival order. `workers` must already reflect this pass's
/// releases; binds are applied to it as they are decided so no worker is handed out twice.
pub fn plan_claims(
    spec: &HotPoolSpec,
    claims: &[ClaimView],
    workers: &mut [WorkerView],
    current_td: &BTreeMap<String, String>,
    now: Timestamp,
) -> Vec<(String, ClaimStep)> {
    let mut ordered: Vec<&ClaimView> = claims.iter().collect();
    ordered.sort_by(|a, b| a.created.cmp(&b.created).then_with(|| a.name.cmp(&b.name)));
    let versions: BTreeMap<&str, &PoolVersion> = spec.versions.iter().map(|v| (v.version.as_str(), v)).collect();
    let lease = spec.claims.lease_seconds;
    let mut out = Vec::new();
    for c in ordered {
        let holder = workers.iter().find(|w| {
            w.claim.as_ref().is_some_and(|r| r.name == c.name && r.uid.as_deref().is_none_or(|u| u == c.uid))
        });
        let step = match c.phase {
            ClaimPhase::Expired | ClaimPhase::Failed => ClaimStep::Done,
            ClaimPhase::Bound => {
                let bound = c.worker.as_deref();
                match holder {
                    Some(w) if Some(w.name.as_str()) == bound => match (c.expires_at(lease), &c.invalid) {
                        (Some(e), _) if now >= e => ClaimStep::Expire { worker: w.name.clone() },
                        (e, Some(message)) => ClaimStep::Invalid { message: message.clone(), expires_at: e },
                        (e, None) => ClaimStep::Hold { expires_at: e },
                    },
                    _ => ClaimStep::Fail {
                        reason: "WorkerLost",
                        message: format!(
                            "worker {} is gone (its task stopped or the worker was deleted); create a new claim",
                            bound.unwrap_or("?")
                        ),
                    },
                }
            }
            // A worker already reserved for the claim completes the binding; the lease bounds it.
            ClaimPhase::Pending if c.invalid.is_some() && holder.is_none() => {
                ClaimStep::Invalid { message: c.invalid.clone().unwrap_or_default(), expires_at: None }
            }
            ClaimPhase::Pending => match holder {
                Some(w) if w.phase == WorkerPhase::Claimed => ClaimStep::Complete {
                    worker: w.name.clone(),
                    cold_start: w.claim.as_ref().is_some_and(|r| r.cold_start),
                },
                Some(w) => ClaimStep::Pending {
                    reason: "ColdStarting",
                    message: format!("worker {} was launched for this claim and is starting", w.name),
                },
                None => match versions.get(c.version.as_str()) {
                    None => ClaimStep::Pending {
                        reason: "VersionNotFound",
                        message: format!(
                            "spec.version {:?} is not one of the pool's versions ({}); add it to the HotPool or fix the claim",
                            c.version,
                            spec.versions.iter().map(|v| v.version.as_str()).collect::<Vec<_>>().join(", ")
                        ),
                    },
                    Some(v) => {
                        let td = current_td.get(&v.version);
                        let pick = pick_idle(workers, &v.version, td.map(String::as_str), &spec.cluster);
                        match pick {
                            Some(i) => {
                                let w = &mut workers[i];
                                w.phase = WorkerPhase::Claimed;
                                w.claim = Some(WorkerClaimRef {
                                    name: c.name.clone(),
                                    uid: Some(c.uid.clone()),
                                    client: Some(c.client.clone()),
                                    since: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now),
                                    cold_start: false,
                                });
                                ClaimStep::Bind { worker: w.name.clone() }
                            }
                            None if spec.claims.when_empty == WhenEmpty::Fail => ClaimStep::Fail {
                                reason: "PoolEmpty",
                                message: format!(
                                    "no Available worker of version {} and spec.claims.whenEmpty is Fail",
                                    v.version
                                ),
                            },
                            None if spec.claims.when_empty == WhenEmpty::ColdStart || !v.pooling => {
                                ClaimStep::ColdStart
                            }
                            None => {
                                // No queue position in the message: it would rewrite every waiting
                                // claim's status each time the queue moves.
                                ClaimStep::Pending {
                                    reason: "WaitingForWorker",
                                    message: format!(
                                        "no Available worker of version {}; bound in arrival order as workers start",
                                        v.version
                                    ),
                                }
                            }
                        }
                    }
                },
            },
        };
        out.push((c.name.clone(), step));
    }
    out
}

/// The idle Available worker to hand out: one in `spec.cluster` with the current task definition
/// first (the others are about to be replaced), then the one idle longest (so `maxIdleSeconds`
/// recycles as few as possible).
fn pick_idle(workers: &[WorkerView], version: &str, td: Option<&str>, cluster: &str) -> Option<usize> {
    workers
        .iter()
        .enumerate()
        .filter(|(_, w)| w.version == version && w.phase == WorkerPhase::Available && w.claim.is_none())
        .min_by_key(|(_, w)| {
            let elsewhere = w.cluster.as_deref().is_some_and(|c| !same_cluster(c, cluster));
            (elsewhere, td.is_some_and(|t| t != w.task_definition_arn), w.available_since, w.name.clone())
        })
        .map(|(i, _)| i)
}

/// Claims waiting per version (from the claim plan), for deficits and surplus.
pub fn waiting_per_version(claims: &[ClaimView], steps: &[(String, ClaimStep)]) -> BTreeMap<String, usize> {
    let by_name: BTreeMap<&str, &ClaimView> = claims.iter().map(|c| (c.name.as_str(), c)).collect();
    let mut out = BTreeMap::new();
    for (name, step) in steps {
        if let (ClaimStep::Pending { reason: "WaitingForWorker", .. }, Some(c)) = (step, by_name.get(name.as_str())) {
            *out.entry(c.version.clone()).or_default() += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::super::fixtures::*;
    use super::super::pool_deficits;
    use super::*;

    #[test]
    fn claims_bind_distinct_workers_in_arrival_order_and_the_rest_wait() {
        let spec = spec("Wait", "Stop");
        let mut workers = vec![
            worker("w1", "1", WorkerPhase::Available, None),
            worker("w2", "1", WorkerPhase::Available, None),
            worker("w3", "1", WorkerPhase::Starting, None),
        ];
        let claims: Vec<ClaimView> =
            (0..5).map(|i| claim(&format!("c{i}"), "1", 10 - i, ClaimPhase::Pending, None)).collect();
        let steps = plan_claims(&spec, &claims, &mut workers, &tds(), t(100));
        let bound: Vec<(&str, &str)> = steps
            .iter()
            .filter_map(|(c, s)| match s {
                ClaimStep::Bind { worker } => Some((c.as_str(), worker.as_str())),
                _ => None,
            })
            .collect();
        // The two oldest claims (c4, c3) get the two Available workers, each once.
        assert_eq!(bound.len(), 2);
        assert_eq!(bound.iter().map(|b| b.0).collect::<BTreeSet<_>>(), ["c3", "c4"].into());
        assert_eq!(bound.iter().map(|b| b.1).collect::<BTreeSet<_>>(), ["w1", "w2"].into());
        let waiting = waiting_per_version(&claims, &steps);
        assert_eq!(waiting.get("1"), Some(&3));
        // Deficit: scaleTo 2 + 3 waiting, minus the one Starting idle worker.
        let deficits = pool_deficits(&spec, &workers, &tds(), &waiting, &BTreeSet::new());
        assert_eq!(deficits.get("1"), Some(&4));
        // A second pass over the result binds nothing twice.
        let again = plan_claims(&spec, &claims, &mut workers, &tds(), t(100));
        assert!(again.iter().all(|(_, s)| !matches!(s, ClaimStep::Bind { .. })));
    }

    #[test]
    fn a_claim_takes_a_worker_in_spec_cluster_before_one_left_in_the_old_cluster() {
        let mut s = spec("Wait", "Stop");
        s.cluster = "spare".into();
        let mut old = worker("a-old", "1", WorkerPhase::Available, None);
        old.available_since = Some(t(-100));
        let mut new = worker("b-new", "1", WorkerPhase::Available, None);
        new.cluster = Some("spare".into());
        let mut workers = vec![old, new];
        let claims = vec![claim("c1", "1", 0, ClaimPhase::Pending, None)];
        let steps = plan_claims(&s, &claims, &mut workers, &tds(), t(1));
        assert_eq!(steps, vec![("c1".into(), ClaimStep::Bind { worker: "b-new".into() })]);
        // With only the old cluster's worker idle, the claim still gets it (it is running).
        let claims = vec![claim("c2", "1", 0, ClaimPhase::Pending, None)];
        let steps = plan_claims(&s, &claims, &mut workers, &tds(), t(1));
        assert_eq!(steps, vec![("c2".into(), ClaimStep::Bind { worker: "a-old".into() })]);
    }

    #[test]
    fn a_crash_between_the_two_writes_is_completed_not_bound_again() {
        let spec = spec("Wait", "Stop");
        let mut workers =
            vec![worker("w1", "1", WorkerPhase::Claimed, Some("c1")), worker("w2", "1", WorkerPhase::Available, None)];
        let claims = vec![claim("c1", "1", 0, ClaimPhase::Pending, None)];
        let steps = plan_claims(&spec, &claims, &mut workers, &tds(), t(5));
        assert_eq!(steps, vec![("c1".into(), ClaimStep::Complete { worker: "w1".into(), cold_start: false })]);
    }

    #[test]
    fn a_worker_reference_not_committed_on_the_claim_is_dropped() {
        let workers = vec![
            worker("w1", "1", WorkerPhase::Claimed, Some("c1")),
            worker("w2", "1", WorkerPhase::Claimed, Some("c1")),
        ];
        let claims: BTreeMap<String, ClaimView> =
            [("c1".to_string(), claim("c1", "1", 0, ClaimPhase::Bound, Some("w2")))].into();
        assert_eq!(
            releases(&workers, &claims, OnRelease::Stop, 60, t(5)),
            vec![Release::Unreserve { worker: "w1".into() }]
        );
    }

    #[test]
    fn deleted_and_ended_claims_release_their_workers() {
        let workers = vec![
            worker("w1", "1", WorkerPhase::Claimed, Some("gone")),
            worker("w2", "1", WorkerPhase::Claimed, Some("c2")),
            worker("w3", "1", WorkerPhase::Claimed, Some("c3")),
        ];
        let mut recreated = claim("c3", "1", 0, ClaimPhase::Pending, None);
        recreated.uid = "a-new-uid".into();
        let claims: BTreeMap<String, ClaimView> =
            [("c2".to_string(), claim("c2", "1", 0, ClaimPhase::Expired, Some("w2"))), ("c3".to_string(), recreated)]
                .into();
        let got = releases(&workers, &claims, OnRelease::Recycle, 60, t(5));
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(got.iter().all(|r| matches!(r, Release::Released { on_release: OnRelease::Recycle, .. })));
    }

    #[test]
    fn leases_expire_and_renewal_extends_them() {
        let spec = spec("Wait", "Stop");
        let mut workers = vec![worker("w1", "1", WorkerPhase::Claimed, Some("c1"))];
        let mut c = claim("c1", "1", 0, ClaimPhase::Bound, Some("w1"));
        let steps = plan_claims(&spec, std::slice::from_ref(&c), &mut workers, &tds(), t(59));
        assert_eq!(steps[0].1, ClaimStep::Hold { expires_at: Some(t(60)) });
        let steps = plan_claims(&spec, std::slice::from_ref(&c), &mut workers, &tds(), t(60));
        assert_eq!(steps[0].1, ClaimStep::Expire { worker: "w1".into() });
        c.renewed_at = Some(t(50));
        let steps = plan_claims(&spec, std::slice::from_ref(&c), &mut workers, &tds(), t(60));
        assert_eq!(steps[0].1, ClaimStep::Hold { expires_at: Some(t(110)) });
    }

    fn claim_obj(renewed_at: &str, bound: bool) -> HotPoolClaim {
        let mut c: HotPoolClaim = serde_json::from_value(serde_json::json!({
            "apiVersion": "fargate.operator.dev/v1alpha1", "kind": "HotPoolClaim",
            "metadata": {"name": "c1", "uid": "uid-c1", "creationTimestamp": "2027-01-15T08:00:00Z"},
            "spec": {"pool": "p", "version": "1", "client": "api", "renewedAt": renewed_at}
        }))
        .expect("claim");
        if bound {
            c.status = Some(crate::api::hot_pool::HotPoolClaimStatus {
                phase: Some(ClaimPhase::Bound),
                worker: Some("w1".into()),
                bound_at: Some(Time(t(0))),
                ..Default::default()
            });
        }
        c
    }

    #[test]
    fn a_renewal_at_the_end_of_time_is_refused_and_the_lease_runs_from_the_binding() {
        let spec = spec("Wait", "Stop");
        let c = ClaimView::of(&claim_obj("9999-12-30T21:59:59Z", true), t(10));
        assert_eq!(c.renewed_at, None);
        assert!(c.invalid.as_deref().is_some_and(|m| m.starts_with("spec.renewedAt: 9999-12-30T21:59:59Z")), "{c:?}");
        let mut workers = vec![worker("w1", "1", WorkerPhase::Claimed, Some("c1"))];
        let steps = plan_claims(&spec, std::slice::from_ref(&c), &mut workers, &tds(), t(59));
        assert!(matches!(&steps[0].1, ClaimStep::Invalid { expires_at: Some(e), .. } if *e == t(60)), "{steps:?}");
        let steps = plan_claims(&spec, std::slice::from_ref(&c), &mut workers, &tds(), t(60));
        assert_eq!(steps[0].1, ClaimStep::Expire { worker: "w1".into() });
        // A valid renewal's lease end (recorded in status) is not cut short by an invalid one.
        let mut renewed = claim_obj("9999-12-30T21:59:59Z", true);
        if let Some(s) = renewed.status.as_mut() {
            s.expires_at = Some(Time(t(500)));
        }
        let c = ClaimView::of(&renewed, t(100));
        let steps = plan_claims(&spec, std::slice::from_ref(&c), &mut workers, &tds(), t(100));
        assert!(matches!(&steps[0].1, ClaimStep::Invalid { expires_at: Some(e), .. } if *e == t(500)), "{steps:?}");
        // A renewal within the clock skew is a renewal.
        let skewed = ClaimView::of(&claim_obj(&t(100).to_string(), true), t(0));
        assert_eq!((skewed.renewed_at, skewed.invalid), (Some(t(100)), None));
    }

    #[test]
    fn an_invalid_pending_claim_takes_no_worker_and_is_not_waited_for() {
        let c = ClaimView::of(&claim_obj("9999-12-30T21:59:59Z", false), t(0));
        let mut workers = vec![worker("w1", "1", WorkerPhase::Available, None)];
        let steps = plan_claims(&spec("Wait", "Stop"), std::slice::from_ref(&c), &mut workers, &tds(), t(1));
        assert!(matches!(steps[0].1, ClaimStep::Invalid { expires_at: None, .. }), "{steps:?}");
        assert!(workers[0].claim.is_none());
        assert!(waiting_per_version(std::slice::from_ref(&c), &steps).is_empty());
        // A worker reserved for it before it became invalid completes the binding.
        let mut reserved = vec![worker("w1", "1", WorkerPhase::Claimed, Some("c1"))];
        let steps = plan_claims(&spec("Wait", "Stop"), std::slice::from_ref(&c), &mut reserved, &tds(), t(1));
        assert!(matches!(steps[0].1, ClaimStep::Complete { .. }), "{steps:?}");
    }

    #[test]
    fn bound_claim_whose_worker_is_gone_fails() {
        let spec = spec("Wait", "Stop");
        let c = claim("c1", "1", 0, ClaimPhase::Bound, Some("w9"));
        let steps = plan_claims(&spec, &[c], &mut [], &tds(), t(1));
        assert!(matches!(steps[0].1, ClaimStep::Fail { reason: "WorkerLost", .. }));
    }

    #[test]
    fn when_empty_fail_cold_start_and_pooling_off() {
        let claims = vec![claim("c1", "1", 0, ClaimPhase::Pending, None)];
        let steps = plan_claims(&spec("Fail", "Stop"), &claims, &mut [], &tds(), t(1));
        assert!(matches!(steps[0].1, ClaimStep::Fail { reason: "PoolEmpty", .. }));
        let steps = plan_claims(&spec("ColdStart", "Stop"), &claims, &mut [], &tds(), t(1));
        assert_eq!(steps[0].1, ClaimStep::ColdStart);
        // Version 2 has pooling off: even Wait claims cold-start.
        let claims = vec![claim("c2", "2", 0, ClaimPhase::Pending, None)];
        let steps = plan_claims(&spec("Wait", "Stop"), &claims, &mut [], &tds(), t(1));
        assert_eq!(steps[0].1, ClaimStep::ColdStart);
        // A reserved worker that is still starting keeps the claim Pending without a second launch.
        let mut reserved = vec![worker("w1", "2", WorkerPhase::Starting, Some("c2"))];
        let steps = plan_claims(&spec("Wait", "Stop"), &claims, &mut reserved, &tds(), t(1));
        assert!(matches!(steps[0].1, ClaimStep::Pending { reason: "ColdStarting", .. }));
        let claims = vec![claim("c3", "9", 0, ClaimPhase::Pending, None)];
        let steps = plan_claims(&spec("Wait", "Stop"), &claims, &mut [], &tds(), t(1));
        assert!(matches!(steps[0].1, ClaimStep::Pending { reason: "VersionNotFound", .. }));
    }
}
