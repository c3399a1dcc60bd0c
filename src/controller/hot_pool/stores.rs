//! The HotPool controller's watches: one reflector each for HotPools, HotPoolWorkers and
//! HotPoolClaims, whose stores everything of the controller reads (the pool passes, the claim
//! controller, the bind path), and whose events are fanned out as triggers:
//!
//! - the bind path, for a claim waiting for a worker (it triggers the pool's pass after each round,
//!   so such a claim reaches the pass once the bind path has bound it or left it: the pass does not
//!   race the bind path for it, and still decides what the bind path cannot);
//! - a pool pass, for any other event of a claim of the pool (a deletion too: it releases the
//!   worker) and for a worker the pool owns;
//! - the claim controller, for every claim event.
//!
//! `metadata.managedFields` and the `kubectl.kubernetes.io/last-applied-configuration` annotation
//! are dropped from every object before it enters a store (`controller::slim`): the controller reads neither
//! (it writes status through the status subresource, which keeps the stored metadata, and an update
//! without `managedFields` keeps the stored ones), and on small objects they are most of the bytes.
//!
//! Each store says when it holds its first full list through a watch channel, not
//! `Store::wait_until_ready`: in kube-runtime 5.0 that wakes only the last of several concurrent
//! waiters (its `DelayedInit` polls one oneshot receiver, which keeps a single waker), so after a
//! leader takeover every pool reconcile but one waited forever (found by the chaos run). The only
//! `wait_until_ready` callers left are kube-runtime's own controllers, one per store.

use std::sync::Arc;

use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use futures::{Stream, StreamExt, TryStreamExt};
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use tokio::sync::watch;

use super::arrivals::Arrivals;
use crate::api::hot_pool::{ClaimPhase, HotPool, HotPoolClaim, HotPoolWorker, WorkerPhase};
use crate::runtime::Context;
use crate::runtime::clock::Instant;

/// The stores, and whether each holds its first full list.
#[derive(Clone)]
pub struct Stores {
    /// Every HotPool the operator watches.
    pub pools: Store<HotPool>,
    /// Every HotPoolWorker the operator watches.
    pub workers: Store<HotPoolWorker>,
    /// Every HotPoolClaim the operator watches.
    pub claims: Store<HotPoolClaim>,
    pools_ready: watch::Receiver<bool>,
    workers_ready: watch::Receiver<bool>,
    claims_ready: watch::Receiver<bool>,
}

impl Stores {
    /// Wait until the claim store holds its first list; false when its watch ended first.
    pub async fn claims_listed(&self) -> bool {
        self.claims_ready.clone().wait_for(|r| *r).await.is_ok()
    }

    /// Whether every store holds its first list.
    pub fn all_listed_now(&self) -> bool {
        *self.pools_ready.borrow() && *self.workers_ready.borrow() && *self.claims_ready.borrow()
    }

    /// Wait until every store holds its first list; false when a watch ended first.
    pub async fn all_listed(&self) -> bool {
        let (mut p, mut w) = (self.pools_ready.clone(), self.workers_ready.clone());
        p.wait_for(|r| *r).await.is_ok() && w.wait_for(|r| *r).await.is_ok() && self.claims_listed().await
    }
}

/// Where the watch events go, as triggers.
pub struct Triggers {
    /// Pools to pass over (their claims and workers changed).
    pub pools: UnboundedReceiver<ObjectRef<HotPool>>,
    /// A sender of pool triggers, for the bind path (its rounds end with one).
    pub pass: UnboundedSender<ObjectRef<HotPool>>,
    /// Claims for the claim controller.
    pub claims: UnboundedReceiver<ObjectRef<HotPoolClaim>>,
    /// Pools with a claim waiting for a worker, for the bind path.
    pub binds: UnboundedReceiver<ObjectRef<HotPool>>,
}

/// The watches of the HotPool controller: the stores, the stream of pools its controller runs on,
/// the triggers, and the future that keeps the worker and claim stores current (run it alongside
/// the controllers; the pool store is kept current by the controller polling its stream).
pub fn watch_all(
    ctx: &Context,
    arrivals: Arc<Arrivals>,
) -> (
    Stores,
    impl Stream<Item = Result<HotPool, watcher::Error>> + Send + 'static,
    Triggers,
    impl std::future::Future<Output = ()> + Send + 'static,
) {
    let (pools, pool_writer) = reflector::store();
    let (workers, worker_writer) = reflector::store();
    let (claims, claim_writer) = reflector::store();
    let (pools_ready_tx, pools_ready) = watch::channel(false);
    let (workers_ready_tx, workers_ready) = watch::channel(false);
    let (claims_ready_tx, claims_ready) = watch::channel(false);
    let (pool_tx, pool_rx) = unbounded();
    let (claim_tx, claim_rx) = unbounded();
    let (bind_tx, bind_rx) = unbounded();

    let pool_stream = reflector::reflector(pool_writer, stripped(super::super::api_for::<HotPool>(ctx)))
        .default_backoff()
        .inspect_ok(move |event| {
            if matches!(event, watcher::Event::InitDone) {
                pools_ready_tx.send_replace(true);
            }
        })
        .applied_objects();

    let out = Fanout { pools: pool_tx.clone(), claims: claim_tx, binds: bind_tx };
    let worker_events = {
        let (out, store) = (out.clone(), workers.clone());
        let mut before: Vec<Arc<HotPoolWorker>> = Vec::new();
        reflector::reflector(worker_writer, stripped(super::super::api_for::<HotPoolWorker>(ctx)))
            .default_backoff()
            .for_each(move |event| {
                match event {
                    Ok(watcher::Event::Apply(w) | watcher::Event::Delete(w)) => out.worker(&w),
                    // A re-list replaces the store without Delete events: what it drops is
                    // triggered too, from the copy taken when the list began.
                    Ok(watcher::Event::Init) => before = store.state(),
                    Ok(watcher::Event::InitApply(_)) => {}
                    Ok(watcher::Event::InitDone) => {
                        workers_ready_tx.send_replace(true);
                        for w in std::mem::take(&mut before).iter().chain(store.state().iter()) {
                            out.worker(w);
                        }
                    }
                    Err(err) => tracing::debug!(kind = "HotPoolWorker", %err, "watch event"),
                }
                async {}
            })
    };
    let claim_events = {
        let (out, store) = (out, claims.clone());
        let mut before: Vec<Arc<HotPoolClaim>> = Vec::new();
        reflector::reflector(claim_writer, stripped(super::super::api_for::<HotPoolClaim>(ctx)))
            .default_backoff()
            .for_each(move |event| {
                match event {
                    Ok(watcher::Event::Apply(c)) => {
                        arrivals.saw(&c, Instant::now());
                        out.claim(&c);
                    }
                    Ok(watcher::Event::Delete(c)) => {
                        arrivals.gone(&c.uid().unwrap_or_default());
                        out.claim(&c);
                    }
                    Ok(watcher::Event::Init) => before = store.state(),
                    Ok(watcher::Event::InitApply(c)) => arrivals.saw(&c, Instant::now()),
                    Ok(watcher::Event::InitDone) => {
                        claims_ready_tx.send_replace(true);
                        let now = store.state();
                        let listed: std::collections::HashSet<Option<String>> = now.iter().map(|c| c.uid()).collect();
                        for gone in std::mem::take(&mut before).iter().filter(|c| !listed.contains(&c.uid())) {
                            arrivals.gone(&gone.uid().unwrap_or_default());
                            out.claim(gone);
                        }
                        for c in &now {
                            out.claim(c);
                        }
                    }
                    Err(err) => tracing::debug!(kind = "HotPoolClaim", %err, "watch event"),
                }
                async {}
            })
    };
    let stores = Stores { pools, workers, claims, pools_ready, workers_ready, claims_ready };
    let triggers = Triggers { pools: pool_rx, pass: pool_tx, claims: claim_rx, binds: bind_rx };
    let run = async move {
        tokio::join!(worker_events, claim_events);
    };
    (stores, pool_stream, triggers, run)
}

/// The watch of every `K` the operator watches, stripped before anything stores it.
fn stripped<K>(api: Api<K>) -> impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    watcher(api, crate::controller::slim::watch_config()).modify(crate::controller::slim::slim::<K>)
}

#[derive(Clone)]
struct Fanout {
    pools: UnboundedSender<ObjectRef<HotPool>>,
    claims: UnboundedSender<ObjectRef<HotPoolClaim>>,
    binds: UnboundedSender<ObjectRef<HotPool>>,
}

impl Fanout {
    // A send fails only when the receiving controller has stopped (shutdown): nothing to do then.
    fn claim(&self, c: &HotPoolClaim) {
        let _ = self.claims.unbounded_send(ObjectRef::from_obj(c));
        if let Some(pool) = pool_of_claim(c) {
            let to = if waiting(c) { &self.binds } else { &self.pools };
            let _ = to.unbounded_send(pool);
        }
    }

    fn worker(&self, w: &HotPoolWorker) {
        if let Some(pool) = pool_of_worker(w) {
            let _ = self.pools.unbounded_send(pool);
        }
    }
}

/// The pool a claim names.
pub fn pool_of_claim(c: &HotPoolClaim) -> Option<ObjectRef<HotPool>> {
    c.namespace().map(|ns| ObjectRef::new(&c.spec.pool).within(&ns))
}

/// The pool that owns a worker (its owner reference of kind HotPool).
pub fn pool_of_worker(w: &HotPoolWorker) -> Option<ObjectRef<HotPool>> {
    let ns = w.namespace()?;
    w.owner_references().iter().find(|o| o.kind == super::KIND).map(|o| ObjectRef::new(&o.name).within(&ns))
}

/// A claim waiting for a worker: Pending, naming no worker, not being deleted.
pub fn waiting(c: &HotPoolClaim) -> bool {
    let st = c.status.as_ref();
    st.and_then(|s| s.phase).unwrap_or_default() == ClaimPhase::Pending
        && st.and_then(|s| s.worker.as_ref()).is_none()
        && c.metadata.deletion_timestamp.is_none()
}

/// A worker a claim may take: Available and holding no claim.
pub fn idle(w: &HotPoolWorker) -> bool {
    let st = w.status.as_ref();
    st.and_then(|s| s.phase) == Some(WorkerPhase::Available) && st.and_then(|s| s.claim.as_ref()).is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_drop_managed_fields_and_the_last_applied_annotation_and_nothing_else() {
        let mut c: HotPoolClaim = serde_json::from_value(serde_json::json!({
            "apiVersion": "fargate.operator.dev/v1alpha1", "kind": "HotPoolClaim",
            "metadata": {
                "name": "c1", "namespace": "n", "uid": "u1", "resourceVersion": "42", "generation": 3,
                "labels": {"team": "a"}, "finalizers": ["x"],
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"big\": true}", "keep": "me"},
                "ownerReferences": [{"apiVersion": "v1", "kind": "HotPool", "name": "p", "uid": "pu"}],
                "managedFields": [{"manager": "kubectl", "operation": "Apply", "apiVersion": "v1"}]
            },
            "spec": {"pool": "p", "version": "1", "client": "x"},
            "status": {"phase": "Pending"}
        }))
        .expect("claim");
        let before = c.clone();
        crate::controller::slim::slim(&mut c);
        assert_eq!(c.metadata.managed_fields, None);
        let annotations = c.metadata.annotations.clone().unwrap_or_default();
        assert_eq!(annotations.into_iter().collect::<Vec<_>>(), vec![("keep".to_string(), "me".to_string())]);
        // Everything the controller reads is still there.
        let mut expected = before;
        expected.metadata.managed_fields = None;
        expected.metadata.annotations = c.metadata.annotations.clone();
        assert_eq!(serde_json::to_value(&c).ok(), serde_json::to_value(&expected).ok());
        assert_eq!(c.resource_version().as_deref(), Some("42"));
    }

    #[test]
    fn claims_and_workers_trigger_their_pool_and_waiting_claims_the_bind_path() {
        let w: HotPoolWorker = serde_json::from_value(serde_json::json!({
            "apiVersion": "fargate.operator.dev/v1alpha1", "kind": "HotPoolWorker",
            "metadata": {"name": "w1", "namespace": "n",
                "ownerReferences": [{"apiVersion": "fargate.operator.dev/v1alpha1", "kind": "HotPool", "name": "p", "uid": "pu"}]},
            "spec": {"pool": "p", "version": "1", "taskDefinitionArn": "td"},
            "status": {"phase": "Available"}
        }))
        .expect("worker");
        assert_eq!(pool_of_worker(&w), Some(ObjectRef::new("p").within("n")));
        assert!(idle(&w));
        let mut c: HotPoolClaim = serde_json::from_value(serde_json::json!({
            "apiVersion": "fargate.operator.dev/v1alpha1", "kind": "HotPoolClaim",
            "metadata": {"name": "c1", "namespace": "n"},
            "spec": {"pool": "p", "version": "1", "client": "x"}
        }))
        .expect("claim");
        assert_eq!(pool_of_claim(&c), Some(ObjectRef::new("p").within("n")));
        assert!(waiting(&c), "a new claim (no status yet) waits");
        c.status = Some(crate::api::hot_pool::HotPoolClaimStatus {
            phase: Some(ClaimPhase::Bound),
            worker: Some("w1".into()),
            ..Default::default()
        });
        assert!(!waiting(&c));
    }
}
