//! The bind path: a claim that appears while its pool has an Available worker of its version is
//! bound at once, from the stores, with two apiserver writes (`bind`) and no AWS call, without
//! waiting for a pool pass (whose task reads and launches take seconds, and which kube-runtime runs
//! one at a time per pool).
//!
//! Triggered by the claim watch (a claim waiting for a worker names its pool). A round over one
//! pool takes every waiting claim of the pool from the claim store and every idle worker from the
//! worker store, leaves out what the [`Ledger`](super::ledger::Ledger) says is being bound, being
//! stopped, or stale in the store, and assigns workers with the pass's own rule
//! (`plan::plan_claims`: arrival order, a worker in `spec.cluster` on the current task definition
//! first, then the longest idle). The binds of a round run concurrently; a worker write refused
//! (another writer took it) leaves the claim for another try at once, on another worker. The
//! round's `Bound` Events are published after all its writes.
//!
//! Every pool pass also runs a round first, from the stores, before its own AWS reads: a claim
//! whose watch event the bind path missed, or whose binding was cut short, is bound by the next
//! pass even while that pass cannot read AWS.
//!
//! Each trigger starts a round at once, as a task of its own, up to [`ROUNDS_PER_POOL`] per pool at
//! a time (a trigger past that runs one more round when one ends): rounds overlap, each taking only
//! the claims and workers no other round has reserved, so a claim arriving while earlier ones are
//! being bound does not wait for them. Every round ends by triggering the pool's pass, which is how
//! a waiting claim reaches it (see `stores`): after its binding, or with what the bind path left.
//!
//! A pool is served only as its pass would be: not paused, not being deleted, carrying the
//! finalizer (a pass has run), its spec valid, its AWS scope unchanged, and let through by the
//! AccessPolicies of its namespace. Everything else about claims (no idle worker: waiting, cold
//! starts, `whenEmpty: Fail`; leases, release, invalid specs, completing a binding a crash cut
//! short) stays with the pool pass.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender};
use futures::stream::FuturesUnordered;
use futures::{StreamExt, stream};
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};

use super::bind::{self, Binding, Outcome};
use super::ledger::{Ledger, Refused};
use super::plan::{self, ClaimStep, ClaimView, WorkerView};
use super::stores::{idle, waiting};
use super::{Shared, access_uses};
use crate::api::FINALIZER;
use crate::api::hot_pool::{HotPool, HotPoolClaim, HotPoolWorker, WorkerClaimRef};
use crate::controller::access::Gate;
use crate::controller::{Managed, catch_panic};
use crate::runtime::Context;
use crate::runtime::clock::Instant;
use crate::runtime::events::Deferred;

/// Binds of one round in flight at once: a burst is bound concurrently, within what one
/// apiserver client serves well.
const CONCURRENCY: usize = 32;
/// Rounds in a row after a refused worker write, each on what the stores and the ledger say then.
const ROUNDS: usize = 3;
/// Rounds of one pool at a time.
const ROUNDS_PER_POOL: usize = 8;
/// How long a round waits for the stores' first lists (after a start or a leader change).
const LISTED_WAIT: Duration = Duration::from_secs(30);

/// Run the bind path until `stop` resolves, then let the rounds in flight finish. Every round ends
/// with a trigger of the pool's pass on `pass`.
pub async fn run(
    ctx: Arc<Context>,
    shared: Arc<Shared>,
    mut triggers: UnboundedReceiver<ObjectRef<HotPool>>,
    pass: UnboundedSender<ObjectRef<HotPool>>,
    stop: impl std::future::Future<Output = ()> + Send,
) {
    let mut running: HashMap<ObjectRef<HotPool>, usize> = HashMap::new();
    let mut again: HashSet<ObjectRef<HotPool>> = HashSet::new();
    let mut rounds = FuturesUnordered::new();
    // Each round is a task of its own, so rounds (and the JSON of their requests) use every core.
    let round = |pool: ObjectRef<HotPool>| {
        let (ctx, shared, pass) = (ctx.clone(), shared.clone(), pass.clone());
        let key = pool.clone();
        let task = tokio::spawn(async move {
            if let Err(msg) = catch_panic(bind_waiting(&ctx, &shared, &pool, Some(&pass))).await {
                // Counted with the pool's reconciles: a panic here is a bug of the HotPool controller.
                ctx.metrics.reconcile_panicked(super::KIND);
                tracing::error!(pool = %pool, panic = %msg, "a bind round panicked; the pool pass binds instead");
            }
            // Fails only once the pool controller has stopped (shutdown).
            let _ = pass.unbounded_send(pool);
        });
        async move {
            // A task ends in an error only when the runtime shuts down: nothing left to do then.
            let _ = task.await;
            key
        }
    };
    let mut stop = std::pin::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            trigger = triggers.next() => {
                let Some(pool) = trigger else { break };
                let n = running.entry(pool.clone()).or_default();
                if *n < ROUNDS_PER_POOL {
                    *n += 1;
                    rounds.push(round(pool));
                } else {
                    again.insert(pool);
                }
            }
            Some(pool) = rounds.next(), if !rounds.is_empty() => {
                if again.remove(&pool) {
                    rounds.push(round(pool));
                } else if let Some(n) = running.get_mut(&pool) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        running.remove(&pool);
                    }
                }
            }
        }
    }
    while rounds.next().await.is_some() {}
}

/// One round over `pool`: bind its waiting claims to its idle workers. `pass`: where a round of
/// the bind path tells the pool's pass to go on without it while the stores are not listed yet;
/// `None` for the round a pass runs first itself, which then leaves the binds to its own plan.
pub(super) async fn bind_waiting(
    ctx: &Context,
    shared: &Shared,
    pool: &ObjectRef<HotPool>,
    pass: Option<&UnboundedSender<ObjectRef<HotPool>>>,
) {
    if !shared.stores.all_listed_now() {
        let Some(pass) = pass else { return };
        // The pass does not wait for these stores (it lists the workers itself): it takes the claim
        // now, and this round binds whatever is still waiting once they are listed.
        let _ = pass.unbounded_send(pool.clone());
        if tokio::time::timeout(LISTED_WAIT, shared.stores.all_listed()).await.ok() != Some(true) {
            return;
        }
    }
    for _ in 0..ROUNDS {
        let Some(obj) = shared.stores.pools.get(pool) else { return };
        if !served(ctx, shared, &obj).await {
            return;
        }
        let now = crate::runtime::clock::now();
        let claims: Vec<Arc<HotPoolClaim>> =
            shared.stores.claims.state().into_iter().filter(|c| of_pool(&obj, c) && waiting(c)).collect();
        if claims.is_empty() {
            return;
        }
        let workers: Vec<Arc<HotPoolWorker>> =
            shared.stores.workers.state().into_iter().filter(|w| owned_by(&obj, w)).collect();
        let picks = assign(&obj, &claims, &workers, &shared.ledger, now);
        if picks.is_empty() {
            return;
        }
        let started = Instant::now();
        tracing::debug!(pool = %pool, waiting = claims.len(), binds = picks.len(), "bind round");
        let ns = obj.namespace().unwrap_or_default();
        let (workers_api, claims_api) =
            (Api::namespaced(ctx.client.clone(), &ns), Api::namespaced(ctx.client.clone(), &ns));
        let binding = Binding {
            ctx,
            ledger: &shared.ledger,
            arrivals: &shared.arrivals,
            workers: &workers_api,
            claims: &claims_api,
            lease_seconds: obj.spec.claims.lease_seconds,
            now,
        };
        let outcomes: Vec<_> = stream::iter(picks)
            .map(|p| {
                let binding = &binding;
                async move { (p.claim.name_any(), bind::bind(binding, &p.claim, &p.worker, p.reference, None).await) }
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let mut events = Vec::new();
        let mut retry = false;
        for (claim, outcome) in outcomes {
            match outcome {
                Ok(Outcome::Bound { claim, note, .. }) => {
                    events.push(Deferred::normal(claim.as_ref(), "Bound", "Bind", note))
                }
                Ok(Outcome::WorkerRefused | Outcome::Refused(Refused::WorkerTaken)) => retry = true,
                Ok(other) => tracing::debug!(pool = %pool, claim, outcome = ?other, "not bound; left to the pool pass"),
                Err(err) => tracing::warn!(pool = %pool, claim, %err, "bind failed; the pool pass binds instead"),
            }
        }
        tracing::debug!(pool = %pool, bound = events.len(), retry, elapsed = ?started.elapsed(), "bind round ended");
        ctx.events.publish_later(events);
        if !retry {
            return;
        }
    }
}

/// Whether the bind path serves `pool` now: as its pass would bind claims (see the module
/// documentation).
async fn served(ctx: &Context, shared: &Shared, pool: &HotPool) -> bool {
    if pool.meta().deletion_timestamp.is_some()
        || pool.spec.policy.paused
        || !pool.finalizers().iter().any(|f| f == FINALIZER)
        || pool.validate().is_err()
        || crate::controller::inventory::aws_scope_changed(pool).is_some()
    {
        return false;
    }
    let ns = pool.namespace().unwrap_or_default();
    matches!(ctx.access.gate(&ns, &access_uses(ctx, shared, pool)).await, Gate::Allowed(_))
}

fn of_pool(pool: &HotPool, c: &HotPoolClaim) -> bool {
    c.namespace() == pool.namespace() && c.spec.pool == pool.name_any()
}

fn owned_by(pool: &HotPool, w: &HotPoolWorker) -> bool {
    w.namespace() == pool.namespace() && w.owner_references().iter().any(|o| Some(&o.uid) == pool.uid().as_ref())
}

/// A claim, the worker it gets, and the worker's reference to it.
#[derive(Debug)]
pub struct Pick {
    /// The claim, as read.
    pub claim: Arc<HotPoolClaim>,
    /// The worker, as read.
    pub worker: Arc<HotPoolWorker>,
    /// What the worker's `status.claim` becomes.
    pub reference: WorkerClaimRef,
}

/// Assign the pool's idle `workers` to its waiting `claims` (store copies) with the pass's rule,
/// leaving out what the ledger holds: each worker to one claim at most, none a bind holds.
pub fn assign(
    pool: &HotPool,
    claims: &[Arc<HotPoolClaim>],
    workers: &[Arc<HotPoolWorker>],
    ledger: &Ledger,
    now: Timestamp,
) -> Vec<Pick> {
    let claims: Vec<&Arc<HotPoolClaim>> = claims.iter().filter(|c| waiting(c) && ledger.claim_free(c)).collect();
    // An idle worker the ledger holds is left out; every other worker stays in the views, so a
    // claim a worker already names is left to the pass (it completes that binding).
    let workers: Vec<&Arc<HotPoolWorker>> = workers.iter().filter(|w| !idle(w) || ledger.worker_free(w)).collect();
    let claim_views: Vec<ClaimView> = claims.iter().map(|c| ClaimView::of(c, now)).collect();
    let mut views: Vec<WorkerView> = workers.iter().map(|w| WorkerView::of(w)).collect();
    let current_td: BTreeMap<String, String> = pool
        .status
        .as_ref()
        .map(|s| s.versions.iter().filter_map(|v| Some((v.version.clone(), v.task_definition_arn.clone()?))).collect())
        .unwrap_or_default();
    let steps = plan::plan_claims(&pool.spec, &claim_views, &mut views, &current_td, now);
    let claims_by_name: BTreeMap<String, &Arc<HotPoolClaim>> = claims.iter().map(|c| (c.name_any(), *c)).collect();
    let workers_by_name: BTreeMap<String, &Arc<HotPoolWorker>> = workers.iter().map(|w| (w.name_any(), *w)).collect();
    steps
        .into_iter()
        .filter_map(|(claim, step)| {
            let ClaimStep::Bind { worker } = step else { return None };
            let reference = views.iter().find(|v| v.name == worker).and_then(|v| v.claim.clone())?;
            Some(Pick {
                claim: (*claims_by_name.get(&claim)?).clone(),
                worker: (*workers_by_name.get(&worker)?).clone(),
                reference,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;
