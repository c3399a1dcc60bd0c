//! A kube-runtime Controller over the model, on the paused clock: every object is reconciled and
//! the controller sees its own status writes.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use serde_json::json;
use tokio::time::Instant;

use super::*;
use crate::kube_model::KubeModel;

/// Passes per object after which the reconciler stops writing (a write loop would never end).
const MAX_PASSES: usize = 10;

/// What the reconciler saw of each claim: (generation, observedGeneration of its status) per pass.
type Seen = Arc<Mutex<BTreeMap<String, Vec<(Option<i64>, Option<i64>)>>>>;

struct Ctx {
    api: Api<HotPoolClaim>,
    seen: Seen,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct ReconcileError(#[from] kube::Error);

async fn reconcile(obj: Arc<HotPoolClaim>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    let observed = obj.status.as_ref().and_then(|s| s.observed_generation);
    let passes = {
        let mut seen = ctx.seen.lock().expect("lock");
        let passes = seen.entry(obj.name_any()).or_default();
        passes.push((obj.meta().generation, observed));
        passes.len()
    };
    if passes > MAX_PASSES {
        // A write loop: stop writing so the test ends (and fails on the count) instead of spinning.
        return Ok(Action::await_change());
    }
    let status = json!({
        "apiVersion": "fargate.operator.dev/v1alpha1", "kind": "HotPoolClaim",
        "status": { "phase": "Pending", "observedGeneration": obj.meta().generation },
    });
    let pp = PatchParams::apply("test-controller").force();
    ctx.api.patch_status(&obj.name_any(), &pp, &Patch::Apply(&status)).await?;
    Ok(Action::await_change())
}

fn error_policy(_obj: Arc<HotPoolClaim>, _err: &ReconcileError, _ctx: Arc<Ctx>) -> Action {
    Action::requeue(Duration::from_secs(1))
}

/// Wait (on the paused clock) until `done` holds for what the reconciler saw; panics after 120 s.
async fn wait_for(seen: &Seen, what: &str, done: impl Fn(&BTreeMap<String, Vec<(Option<i64>, Option<i64>)>>) -> bool) {
    let start = Instant::now();
    while !done(&seen.lock().expect("lock")) {
        assert!(start.elapsed() < Duration::from_secs(120), "never {what}: {:?}", seen.lock().expect("lock"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn controller_reconciles_and_sees_its_status_writes() {
    let model = KubeModel::new();
    let api: Api<HotPoolClaim> = Api::namespaced(model.client(), NS);
    create(&api, &claim("c0", "pool1")).await;
    let seen: Seen = Arc::default();
    let ctx = Arc::new(Ctx { api: api.clone(), seen: Arc::clone(&seen) });
    let controller = Controller::new(api.clone(), watcher::Config::default().any_semantic())
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {});
    let task = tokio::spawn(controller);

    for name in ["c1", "c2", "c3"] {
        create(&api, &claim(name, "pool1")).await;
    }
    // Each claim is reconciled, and a later pass sees the status the first one wrote.
    wait_for(&seen, "saw its own status", |s| {
        s.len() == 4 && s.values().all(|passes| passes.iter().any(|(g, o)| *g == Some(1) && *o == Some(1)))
    })
    .await;

    // A spec change bumps generation; the controller reconciles it and records it in the status.
    let patch = json!({ "spec": { "client": "client-2" } });
    api.patch("c2", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("patch");
    wait_for(&seen, "saw generation 2 observed", |s| {
        s.get("c2").is_some_and(|passes| passes.contains(&(Some(2), Some(2))))
    })
    .await;
    let status = api.get("c2").await.expect("get").status.expect("status");
    assert_eq!(status.observed_generation, Some(2));

    // Status writes that change nothing are not writes: the controller settles. Let watches time
    // out and resume a few times; nothing is reconciled again.
    let passes = |s: &Seen| s.lock().expect("lock").values().map(Vec::len).sum::<usize>();
    let before = passes(&seen);
    tokio::time::sleep(Duration::from_secs(1000)).await;
    assert_eq!(passes(&seen), before, "{:?}", seen.lock().expect("lock"));
    // One pass per write the controller had to react to: creation and its own first status write
    // (and for c2 the spec change and the status write for it).
    let counts: Vec<(String, usize)> = seen.lock().expect("lock").iter().map(|(k, v)| (k.clone(), v.len())).collect();
    let expected: Vec<(String, usize)> =
        [("c0", 2), ("c1", 2), ("c2", 4), ("c3", 2)].map(|(k, n)| (k.into(), n)).into();
    assert_eq!(counts, expected, "{:?}", seen.lock().expect("lock"));
    task.abort();
}

/// The project's leader election (kube-lease-manager) over the model: one replica leads, a second
/// one waits, and a release clears the holder. (A standby's takeover is not tested: kube-lease-manager
/// decides expiry by the wall clock, which tokio's paused clock does not move.)
#[tokio::test(start_paused = true)]
async fn leader_election_over_the_model() {
    use k8s_openapi::api::coordination::v1::Lease;

    use crate::runtime::leader::Leadership;

    let model = KubeModel::new();
    let client = model.client();
    let leases: Api<Lease> = Api::namespaced(client.clone(), NS);
    let holder = || async { leases.get("leader").await.expect("lease").spec.and_then(|s| s.holder_identity) };
    let secs = Duration::from_secs;
    let mut a = Leadership::start(client.clone(), NS, "leader", "replica-a", secs(15)).await.expect("start a");
    assert!(tokio::time::timeout(secs(60), a.acquired()).await.expect("a acquires in time"));
    assert_eq!(holder().await.as_deref(), Some("replica-a"));
    let mut b = Leadership::start(client.clone(), NS, "leader", "replica-b", secs(15)).await.expect("start b");
    assert!(tokio::time::timeout(secs(60), b.acquired()).await.is_err(), "b must not lead while a does");
    assert_eq!(holder().await.as_deref(), Some("replica-a"), "a kept renewing");

    a.release().await;
    assert_eq!(holder().await, None);
}
