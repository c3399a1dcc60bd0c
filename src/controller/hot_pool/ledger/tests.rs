use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::api::hot_pool::{
    ClaimPhase, HotPoolClaimSpec, HotPoolClaimStatus, HotPoolWorkerSpec, HotPoolWorkerStatus, WorkerPhase,
};

fn worker(name: &str, rv: &str) -> HotPoolWorker {
    let mut w = HotPoolWorker::new(
        name,
        HotPoolWorkerSpec {
            pool: "p".into(),
            version: "1".into(),
            task_definition_arn: "td".into(),
            launch_token: None,
        },
    );
    w.metadata.namespace = Some("ns".into());
    w.metadata.resource_version = Some(rv.into());
    w.status = Some(HotPoolWorkerStatus { phase: Some(WorkerPhase::Available), ..Default::default() });
    w
}

fn claim(name: &str, rv: &str) -> HotPoolClaim {
    let mut c = HotPoolClaim::new(
        name,
        HotPoolClaimSpec { pool: "p".into(), version: "1".into(), client: "c".into(), renewed_at: None },
    );
    c.metadata.namespace = Some("ns".into());
    c.metadata.uid = Some(format!("uid-{name}"));
    c.metadata.resource_version = Some(rv.into());
    c
}

/// What a bind's two writes return: the same objects at a new resourceVersion, naming each other.
fn written(w: &HotPoolWorker, c: &HotPoolClaim, rv: &str) -> (HotPoolWorker, HotPoolClaim) {
    let mut w = w.clone();
    w.metadata.resource_version = Some(format!("{rv}w"));
    if let Some(s) = w.status.as_mut() {
        s.phase = Some(WorkerPhase::Claimed);
    }
    let mut c = c.clone();
    c.metadata.resource_version = Some(format!("{rv}c"));
    c.status =
        Some(HotPoolClaimStatus { phase: Some(ClaimPhase::Bound), worker: Some(w.name_any()), ..Default::default() });
    (w, c)
}

/// A small deterministic generator, so a failure repeats.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        usize::try_from((self.0 >> 33) % n as u64).unwrap_or(0)
    }
}

#[test]
fn concurrent_reservations_never_give_one_worker_or_one_claim_twice() {
    // Eight threads race to reserve random (claim, worker) pairs from the same stale copies, as
    // bind rounds and passes do when a burst of claims arrives.
    let ledger = Arc::new(Ledger::default());
    let workers: Arc<Vec<HotPoolWorker>> = Arc::new((0..20).map(|i| worker(&format!("w{i}"), "1")).collect());
    let claims: Arc<Vec<HotPoolClaim>> = Arc::new((0..50).map(|i| claim(&format!("c{i}"), "1")).collect());
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let (ledger, workers, claims) = (ledger.clone(), workers.clone(), claims.clone());
            std::thread::spawn(move || {
                let mut rng = Lcg(t + 1);
                let mut won = Vec::new();
                for _ in 0..500 {
                    let (c, w) = (&claims[rng.below(claims.len())], &workers[rng.below(workers.len())]);
                    let listed_at = (rng.below(2) == 0).then(Instant::now);
                    if ledger.reserve(c, w, listed_at, Instant::now()).is_ok() {
                        won.push((c.name_any(), w.name_any()));
                    }
                }
                won
            })
        })
        .collect();
    let won: Vec<(String, String)> = threads.into_iter().flat_map(|t| t.join().expect("thread")).collect();
    let by_worker: BTreeSet<&String> = won.iter().map(|(_, w)| w).collect();
    let by_claim: BTreeSet<&String> = won.iter().map(|(c, _)| c).collect();
    assert_eq!(by_worker.len(), won.len(), "a worker was reserved twice: {won:?}");
    assert_eq!(by_claim.len(), won.len(), "a claim was reserved twice: {won:?}");
    assert_eq!(won.len(), 20, "every worker finds a claim: {won:?}");
}

#[test]
fn a_finished_bind_keeps_its_stale_copies_from_being_picked_until_the_store_catches_up() {
    let ledger = Ledger::default();
    let (w, c) = (worker("w1", "5"), claim("c1", "7"));
    let now = Instant::now();
    ledger.reserve(&c, &w, None, now).expect("reserve");
    assert!(!ledger.worker_free(&w) && !ledger.claim_free(&c), "in flight");
    let (w2, c2) = written(&w, &c, "9");
    ledger.worker_written(&worker_key(&w), w2.clone());
    ledger.claim_written(&worker_key(&w), c2.clone(), now);
    // The store still holds the copies the bind wrote over: neither is picked again.
    assert!(!ledger.worker_free(&w) && !ledger.claim_free(&c));
    assert_eq!(ledger.reserve(&claim("c2", "1"), &w, None, now), Err(Refused::WorkerTaken));
    // Caught up, the store shows what the bind wrote; the worker may be picked again once a
    // release made it Available (a newer copy).
    assert!(ledger.worker_free(&w2) && ledger.claim_free(&c2));
    assert!(ledger.worker_free(&worker("w1", "12")));
}

#[test]
fn a_refused_worker_write_is_not_retried_on_the_same_copy() {
    let ledger = Ledger::default();
    let (w, c) = (worker("w1", "5"), claim("c1", "7"));
    let now = Instant::now();
    ledger.reserve(&c, &w, None, now).expect("reserve");
    ledger.failed(&worker_key(&w), true, now);
    assert!(!ledger.worker_free(&w), "the copy that conflicted");
    assert!(ledger.claim_free(&c), "the claim was not written: another worker may take it");
    assert!(ledger.worker_free(&worker("w1", "6")), "a newer copy");
    ledger.reserve(&c, &worker("w2", "3"), None, now).expect("the claim takes another worker");
}

#[test]
fn a_pass_stops_no_worker_a_bind_touched_after_its_list_and_overlays_what_binds_wrote() {
    let ledger = Ledger::default();
    let listed_at = Instant::now();
    let (w, c) = (worker("w1", "5"), claim("c1", "7"));
    ledger.reserve(&c, &w, None, listed_at).expect("reserve");
    assert!(!ledger.begin_stop(&w, listed_at), "a bind in flight");
    let (w2, c2) = written(&w, &c, "9");
    ledger.worker_written(&worker_key(&w), w2.clone());
    ledger.claim_written(&worker_key(&w), c2.clone(), listed_at + Duration::from_millis(3));
    assert!(!ledger.begin_stop(&w, listed_at), "bound after the pass listed the workers");
    // The pass's plan sees what the bind wrote, not the copies it read before.
    let mut workers = BTreeMap::from([("w1".to_string(), w.clone())]);
    let mut claims = vec![Arc::new(c.clone())];
    ledger.overlay(&mut workers, &mut claims);
    assert_eq!(workers["w1"].metadata.resource_version.as_deref(), Some("9w"));
    assert_eq!(claims[0].status.as_ref().and_then(|s| s.worker.as_deref()), Some("w1"));
    assert!(ledger.claim_busy(&c) && !ledger.claim_busy(&c2));
    // A later pass (listed after the bind) may stop another idle worker, and the bind path does not
    // pick a worker while it is being stopped.
    let later = listed_at + Duration::from_millis(10);
    let idle = worker("w2", "4");
    assert!(ledger.begin_stop(&idle, later));
    assert_eq!(ledger.reserve(&claim("c2", "1"), &idle, None, later), Err(Refused::WorkerTaken));
    ledger.end_stop(&worker_key(&idle));
    assert!(ledger.worker_free(&idle));
}

#[test]
fn a_pass_binds_no_claim_the_bind_path_holds() {
    let ledger = Ledger::default();
    let now = Instant::now();
    let c = claim("c1", "7");
    ledger.reserve(&c, &worker("w1", "5"), None, now).expect("bind path");
    assert_eq!(ledger.reserve(&c, &worker("w2", "5"), Some(now), now), Err(Refused::ClaimTaken));
}
