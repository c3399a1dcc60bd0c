use std::collections::BTreeSet;
use std::sync::Arc;

use super::*;
use crate::api::hot_pool::{ClaimPhase, HotPoolClaimStatus, WorkerPhase};
use crate::runtime::clock::Instant;

fn t(s: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + s).expect("time")
}

fn pool() -> HotPool {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "fargate.operator.dev/v1alpha1", "kind": "HotPool",
        "metadata": {"name": "p", "namespace": "ns", "uid": "pool-uid", "finalizers": [FINALIZER]},
        "spec": {
            "cluster": "workers", "network": {"subnets": ["subnet-1"]},
            "versions": [
                {"version": "1", "taskDefinition": "w:1", "scaleTo": 2, "port": 7000},
                {"version": "2", "taskDefinition": "w:2", "scaleTo": 1, "port": 7000}
            ],
            "claims": {"leaseSeconds": 60, "whenEmpty": "Wait", "onRelease": "Stop"}
        },
        "status": {"versions": [
            {"version": "1", "taskDefinitionArn": "td-1", "scaleTo": 2, "available": 0, "claimed": 0, "starting": 0, "stopping": 0}
        ]}
    }))
    .expect("pool")
}

fn worker(name: &str, version: &str, phase: WorkerPhase, idle_since: i64) -> Arc<HotPoolWorker> {
    Arc::new(
        serde_json::from_value(serde_json::json!({
            "apiVersion": "fargate.operator.dev/v1alpha1", "kind": "HotPoolWorker",
            "metadata": {"name": name, "namespace": "ns", "resourceVersion": "10",
                "ownerReferences": [{"apiVersion": "fargate.operator.dev/v1alpha1", "kind": "HotPool", "name": "p", "uid": "pool-uid"}]},
            "spec": {"pool": "p", "version": version, "taskDefinitionArn": format!("td-{version}")},
            "status": {"phase": phase, "taskArn": format!("arn:aws:ecs:us-east-1:1:task/workers/{name}"),
                "ip": "10.0.0.1", "port": 7000, "availableSince": t(idle_since).to_string()}
        }))
        .expect("worker"),
    )
}

fn claim(name: &str, version: &str, created: i64) -> Arc<HotPoolClaim> {
    Arc::new(
        serde_json::from_value(serde_json::json!({
            "apiVersion": "fargate.operator.dev/v1alpha1", "kind": "HotPoolClaim",
            "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}"), "resourceVersion": "20",
                "creationTimestamp": t(created).to_string()},
            "spec": {"pool": "p", "version": version, "client": "api"}
        }))
        .expect("claim"),
    )
}

fn names(picks: &[Pick]) -> Vec<(String, String)> {
    picks.iter().map(|p| (p.claim.name_any(), p.worker.name_any())).collect()
}

#[test]
fn a_burst_gets_distinct_idle_workers_of_its_version_oldest_claim_and_longest_idle_first() {
    let workers = vec![
        worker("w-new", "1", WorkerPhase::Available, 50),
        worker("w-old", "1", WorkerPhase::Available, 10),
        worker("w-starting", "1", WorkerPhase::Starting, 0),
        worker("w-v2", "2", WorkerPhase::Available, 0),
    ];
    let claims =
        vec![claim("c-late", "1", 9), claim("c-early", "1", 1), claim("c-third", "1", 12), claim("c-v2", "2", 5)];
    let picks = assign(&pool(), &claims, &workers, &Ledger::default(), t(100));
    let got: BTreeSet<(String, String)> = names(&picks).into_iter().collect();
    let want: BTreeSet<(String, String)> = [("c-early", "w-old"), ("c-late", "w-new"), ("c-v2", "w-v2")]
        .into_iter()
        .map(|(c, w)| (c.to_string(), w.to_string()))
        .collect();
    assert_eq!(got, want, "c-third waits: no idle worker of version 1 is left");
    let p = picks.iter().find(|p| p.claim.name_any() == "c-early").expect("c-early");
    assert_eq!(p.reference.uid.as_deref(), Some("uid-c-early"));
    assert!(!p.reference.cold_start);
}

#[test]
fn bound_claims_and_claimed_workers_are_left_alone() {
    let mut bound = (*claim("c-bound", "1", 0)).clone();
    bound.status = Some(HotPoolClaimStatus {
        phase: Some(ClaimPhase::Bound),
        worker: Some("w-held".into()),
        ..Default::default()
    });
    let mut held = (*worker("w-held", "1", WorkerPhase::Claimed, 0)).clone();
    if let Some(s) = held.status.as_mut() {
        s.claim = Some(WorkerClaimRef {
            name: "c-bound".into(),
            uid: Some("uid-c-bound".into()),
            client: None,
            since: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t(0)),
            cold_start: false,
        });
    }
    let picks = assign(&pool(), &[Arc::new(bound)], &[Arc::new(held)], &Ledger::default(), t(1));
    assert!(picks.is_empty(), "{:?}", names(&picks));
}

#[test]
fn concurrent_rounds_over_one_stale_snapshot_bind_each_worker_once() {
    // Four rounds (threads) start from the same store snapshot, as rounds of a pool and a pass do
    // while the stores lag their writes. Each assigns, reserves what it picked, and assigns again
    // while it got nothing (a refused reservation), as the bind path does.
    let workers: Arc<Vec<Arc<HotPoolWorker>>> =
        Arc::new((0..12).map(|i| worker(&format!("w{i:02}"), "1", WorkerPhase::Available, i)).collect());
    let claims: Arc<Vec<Arc<HotPoolClaim>>> = Arc::new((0..30).map(|i| claim(&format!("c{i:02}"), "1", i)).collect());
    let ledger = Arc::new(Ledger::default());
    let rounds: Vec<_> = (0..4)
        .map(|_| {
            let (workers, claims, ledger) = (workers.clone(), claims.clone(), ledger.clone());
            std::thread::spawn(move || {
                let mut won = Vec::new();
                loop {
                    let picks = assign(&pool(), &claims, &workers, &ledger, t(100));
                    if picks.is_empty() {
                        return won;
                    }
                    for p in picks {
                        if ledger.reserve(&p.claim, &p.worker, None, Instant::now()).is_ok() {
                            won.push((p.claim.name_any(), p.worker.name_any()));
                        }
                    }
                }
            })
        })
        .collect();
    let won: Vec<(String, String)> = rounds.into_iter().flat_map(|r| r.join().expect("round")).collect();
    let workers_won: BTreeSet<&String> = won.iter().map(|(_, w)| w).collect();
    let claims_won: BTreeSet<&String> = won.iter().map(|(c, _)| c).collect();
    assert_eq!(won.len(), 12, "every idle worker is bound once: {won:?}");
    assert_eq!(workers_won.len(), 12, "a worker went to two claims: {won:?}");
    assert_eq!(claims_won.len(), 12, "a claim got two workers: {won:?}");
    // In arrival order: the twelve oldest claims.
    let oldest: BTreeSet<String> = (0..12).map(|i| format!("c{i:02}")).collect();
    assert_eq!(claims_won.into_iter().cloned().collect::<BTreeSet<_>>(), oldest);
}
