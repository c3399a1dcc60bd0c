//! The HotPool controller: keeps `scaleTo` idle ECS worker tasks per pooled version, binds
//! HotPoolClaims to them exactly once, and stops what nobody needs.
//!
//! Three parts share one set of watches (`stores`: one reflector each for pools, workers and
//! claims, with `managedFields` and the last-applied annotation dropped before anything is stored):
//!
//! - the pool pass: one reconcile per pool decides everything about that pool (kube-runtime never
//!   runs two reconciles of one object at once), triggered by the pool, its workers and its claims
//!   (a claim waiting for a worker through the bind path, once that has bound it or left it); it
//!   starts with a round of the bind path itself, from the stores, before its AWS reads;
//! - the bind path (`binder`): a claim that appears while its pool has an Available worker is bound
//!   from the stores at once, with two apiserver writes and no AWS call, without waiting for a pool
//!   pass (whose AWS reads and launches take seconds); the claims of a burst are bound concurrently;
//! - the claim controller (`claim`), for claims whose pool does not exist.
//!
//! Exactly one process writes worker and claim status (the leader); in it, two writers make
//! bindings, the bind path and the pool pass (which binds claims that waited, as workers start or
//! come back). Every worker and claim write carries the resourceVersion it was planned from, so a
//! stale read ends in a conflict and a retry, never in a double binding, and both reserve a worker
//! and a claim in the `ledger` before writing, so they never pick the same worker, and a pass's
//! idle stop (StopTask has no precondition) never stops a worker the bind path took after the
//! pass's LIST. Workers are read by the pass with a fresh LIST rather than from the store, so a
//! worker written a moment ago is never counted as missing and launched twice.
//!
//! A worker object is written before its task is launched, carrying the RunTask idempotency token
//! (`spec.launchToken`, also a task tag). After a crash or a lost response between RunTask and the
//! status write, the next pass finds the task by that tag, or repeats RunTask with the same token,
//! so a task is never launched twice for one worker.
//!
//! A pass runs through the shared `pipeline::drive` like every kind: `observe` reads (task
//! definitions, workers, tasks, claims, held-back launches), the pure `plan::plan_pass` decides every
//! step as a value (recover, relaunch, orphans, each worker's step, releases, each claim's step, idle
//! stops, launches), `apply` runs them in order, and the status is written once at the end. Worker
//! writes live in `workers`, claim writes in `binding` (a binding itself in `bind`, shared with the
//! bind path), RunTask in `launch`, pool deletion in `cleanup`. Events about claims are published
//! after the writes they report, off the path of the next bind.

mod apply;
pub mod arrivals;
pub mod aws;
mod bind;
mod binder;
mod binding;
pub mod claim;
mod cleanup;
pub mod inventory;
pub mod launch;
pub mod ledger;
mod observe;
pub mod plan;
mod status;
pub mod stores;
mod workers;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::runtime::clock::Instant;

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;

use self::aws::PoolAws;
use super::pipeline::{Applied, Pipeline, drive};
use super::{PassEnd, ReconcileError, StatusWriter, error_policy, jittered, with_finalizer};
use crate::api::OwnedResource;
use crate::api::hot_pool::{HotPool, HotPoolClaim, HotPoolStatus, HotPoolWorker};
use crate::aws::naming::Owner;
use crate::runtime::Context;

const KIND: &str = "HotPool";
/// Label on workers: the launch token they were started with.
pub const LAUNCH_LABEL: &str = "fargate.operator.dev/launch";
/// How often a pool with Starting workers looks at them again.
const STARTING_POLL: Duration = Duration::from_secs(3);

/// State shared by every HotPool reconcile and the bind path.
pub struct Shared {
    /// The pools, workers and claims the operator watches.
    stores: stores::Stores,
    /// When each waiting claim was first seen.
    arrivals: Arc<arrivals::Arrivals>,
    /// The binds of this process, shared by the bind path and the passes.
    ledger: ledger::Ledger,
    /// When each pool last listed all its tasks (the orphan and lost-task sweep).
    last_sweep: Mutex<HashMap<String, Instant>>,
    /// Versions whose RunTask ECS rejected recently.
    rejections: launch::Rejections,
}

impl Shared {
    fn sweep_due(&self, key: &str, every: Duration) -> bool {
        let map = self.last_sweep.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key).is_none_or(|t| t.elapsed() >= every)
    }

    fn swept(&self, key: &str) {
        self.last_sweep.lock().unwrap_or_else(|p| p.into_inner()).insert(key.to_string(), Instant::now());
    }
}

/// Run the HotPool controller (the pool passes, the bind path, and the claim controller for claims
/// whose pool is missing) until `stop` resolves; then let what is in flight finish.
pub async fn run(ctx: Arc<Context>, stop: impl std::future::Future<Output = ()> + Send + Sync + 'static) {
    let stop = stop.shared();
    let arrivals = Arc::new(arrivals::Arrivals::default());
    let (stores, pool_stream, triggers, watches) = stores::watch_all(&ctx, arrivals.clone());
    let shared = Arc::new(Shared {
        stores: stores.clone(),
        arrivals,
        ledger: ledger::Ledger::default(),
        last_sweep: Mutex::new(HashMap::new()),
        rejections: launch::Rejections::default(),
    });
    let pass_shared = shared.clone();
    let pool_controller = Controller::for_stream(pool_stream, stores.pools.clone())
        .with_config(super::controller_config(&ctx))
        .reconcile_all_on(ctx.access.changes())
        .reconcile_on(triggers.pools)
        .graceful_shutdown_on(stop.clone())
        .run(
            super::guard(move |pool, ctx| reconcile(pool, ctx, pass_shared.clone())),
            error_policy::<HotPool>,
            ctx.clone(),
        )
        .for_each(|result| async move {
            if let Err(err) = result {
                tracing::debug!(kind = KIND, %err, "controller event");
            }
        });
    // The stores stop with the term; what is in flight finishes on them as they are.
    let stop_watches = stop.clone();
    let watches = async move {
        tokio::select! {
            _ = stop_watches => {}
            _ = watches => {}
        }
    };
    tokio::join!(
        watches,
        pool_controller,
        binder::run(ctx.clone(), shared, triggers.binds, triggers.pass, stop.clone()),
        claim::run(ctx, stores, triggers.claims, stop),
    );
}

/// Reconcile one HotPool.
pub async fn reconcile(obj: Arc<HotPool>, ctx: Arc<Context>, shared: Arc<Shared>) -> Result<Action, ReconcileError> {
    with_finalizer(
        obj,
        ctx,
        |api, obj, ctx| async move { apply(&api, obj, &ctx, &shared).await },
        |api, obj, ctx| async move { cleanup::cleanup(&api, obj, &ctx).await },
    )
    .await
}

async fn pool_aws(ctx: &Context, pool: &HotPool) -> PoolAws {
    let clients = ctx.aws.clients_for(super::inventory::aws_of(pool)).await;
    PoolAws { caller: ctx.caller.scoped(clients.scope), ecs: clients.ecs, cluster: pool.spec.cluster.clone() }
}

fn owner(ctx: &Context, pool: &HotPool) -> Result<Owner, ReconcileError> {
    super::owner_of(ctx, pool, KIND)
}

/// What a converge pass leaves for the status and the requeue.
#[derive(Default)]
struct PassResult {
    /// Problems that keep a version from launching (Degraded): condition reason and message.
    problems: Vec<(&'static str, String)>,
    /// Earliest moment something is due (lease expiry, startup deadline, polling).
    next: Option<Duration>,
}

impl PassResult {
    fn problem(&mut self, reason: &'static str, message: String) {
        if !self.problems.iter().any(|(_, m)| *m == message) {
            self.problems.push((reason, message));
        }
    }

    fn due_in(&mut self, d: Duration) {
        self.next = Some(self.next.map_or(d, |n| n.min(d)));
    }
}

async fn apply(
    api: &Api<HotPool>,
    pool: Arc<HotPool>,
    ctx: &Context,
    shared: &Shared,
) -> Result<Action, ReconcileError> {
    tracing::debug!(pool = %pool.name_any(), "waiting for the claim store");
    if !shared.stores.claims_listed().await {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    // Claims waiting while an idle worker is there are bound first, from the stores and with no AWS
    // call (the bind path does this on their watch events; this covers an event it missed, and a
    // pass whose AWS reads fail).
    binder::bind_waiting(ctx, shared, &ObjectRef::from_obj(pool.as_ref()), None).await;
    let pass = PoolPass { ctx, shared, aws: pool_aws(ctx, &pool).await, owner: owner(ctx, &pool)? };
    drive(&pass, api, pool.as_ref(), pool.spec.policy.paused, ctx).await
}

/// One pass over one pool, run by the shared [`drive`]: observe (`observe.rs`), plan (the pure
/// `plan::plan_pass`), apply (`apply.rs`, with the writes of `workers`, `binding` and `launch`).
struct PoolPass<'a> {
    ctx: &'a Context,
    shared: &'a Shared,
    aws: PoolAws,
    owner: Owner,
}

/// A pass's decisions, with what applying them needs from the reads.
enum PoolPlan {
    /// `spec.cluster` does not exist: nothing to do but say so.
    ClusterMissing { status: Box<HotPoolStatus> },
    /// Run the steps.
    Run(Box<RunPlan>),
}

struct RunPlan {
    status: HotPoolStatus,
    decided: plan::PassPlan,
    workers: BTreeMap<String, HotPoolWorker>,
    claims: Vec<Arc<HotPoolClaim>>,
    current_td: BTreeMap<String, String>,
    now: Timestamp,
    listed_at: Instant,
}

impl Pipeline<HotPool> for PoolPass<'_> {
    /// A pool pass binds claims from a fresh LIST of workers with guarded writes, which a lagging
    /// copy of the pool does not affect; waiting for the pool's own status event would delay them.
    const SKIP_BEHIND_CACHE: bool = false;
    type Observed = observe::Observed;
    type Plan = PoolPlan;

    fn access_uses(&self, obj: &HotPool) -> Vec<super::access::Use> {
        access_uses(self.ctx, self.shared, obj)
    }

    fn observe<'a>(
        &'a self,
        obj: &'a HotPool,
        status: &'a HotPoolStatus,
    ) -> BoxFuture<'a, Result<observe::Observed, ReconcileError>> {
        Box::pin(async move {
            let workers_api: Api<HotPoolWorker> = Api::namespaced(self.ctx.client.clone(), &self.owner.namespace);
            observe::observe(obj, status, &self.aws, &self.owner, self.shared, &workers_api).await
        })
    }

    fn plan(&self, obj: &HotPool, status: &HotPoolStatus, observed: observe::Observed) -> PoolPlan {
        if observed.cluster_missing {
            // The clusters of the workers' tasks, found by observe, stay in the inventory.
            let status = HotPoolStatus { resources: observed.resources, ..status.clone() };
            return PoolPlan::ClusterMissing { status: Box::new(status) };
        }
        let claims: Vec<plan::ClaimView> =
            observed.claims.iter().map(|c| plan::ClaimView::of(c, observed.now)).collect();
        let mut decided = plan::plan_pass(&plan::PassInput {
            spec: &obj.spec,
            owner: &self.owner,
            workers: &observed.workers,
            tasks: &observed.tasks,
            running: observed.running.as_ref(),
            claims: &claims,
            current_td: &observed.current_td,
            held: &observed.held,
            resources: &observed.resources,
            launch_tag: aws::TAG_LAUNCH,
            run_task_max: aws::RUN_TASK_MAX,
            read_lag: self.ctx.config.ecs_read_lag(),
            now: observed.now,
        });
        // The versions whose reference did not resolve first: they name the operation to fix.
        let planned = std::mem::take(&mut decided.problems);
        for (reason, message) in observed.problems.iter().cloned().chain(planned) {
            decided.problem(reason, message);
        }
        PoolPlan::Run(Box::new(RunPlan {
            status: status.clone(),
            decided,
            workers: observed.workers,
            claims: observed.claims,
            current_td: observed.current_td,
            now: observed.now,
            listed_at: observed.listed_at,
        }))
    }

    fn apply<'a>(
        &'a self,
        obj: &'a HotPool,
        plan: PoolPlan,
        writer: &'a StatusWriter<'a, HotPool>,
    ) -> BoxFuture<'a, Applied<HotPoolStatus>> {
        Box::pin(async move {
            let backstop = Duration::from_secs(u64::try_from(obj.spec.replenish_interval_seconds).unwrap_or(30));
            let run = match plan {
                PoolPlan::ClusterMissing { status } => {
                    // No cluster, no workers: a problem for a human, looked at again at the backstop
                    // interval (not retried as an AWS error).
                    let end = PassEnd::BlockedFor(cluster_missing(obj), jittered(backstop));
                    return Applied { status: *status, end, events: Vec::new() };
                }
                PoolPlan::Run(run) => *run,
            };
            let RunPlan { mut status, decided, workers, claims, mut current_td, now, listed_at } = run;
            let mut result = PassResult { problems: decided.problems, next: decided.next };
            let mut pass = Pool {
                pool: obj,
                ctx: self.ctx,
                shared: self.shared,
                aws: &self.aws,
                name: obj.name_any(),
                namespace: self.owner.namespace.clone(),
                started_by: plan::started_by(&self.owner.uid),
                owner: &self.owner,
                workers_api: Api::namespaced(self.ctx.client.clone(), &self.owner.namespace),
                claims_api: Api::namespaced(self.ctx.client.clone(), &self.owner.namespace),
                workers,
                stale_task_definitions: BTreeSet::new(),
                resources: decided.resources,
                writer,
                now,
                listed_at,
            };
            let outcome = pass.run(decided.steps, &claims, &mut result).await;
            // Also after a failed pass: a RunTask it made may have started tasks in a cluster it recorded.
            status.resources = std::mem::take(&mut pass.resources);
            for version in &pass.stale_task_definitions {
                current_td.remove(version);
            }
            if outcome.is_ok() {
                pass.fill_status(&mut status, &current_td);
            } else {
                // observedGeneration moves on with a failed pass too: the references it resolved
                // go with it, or a family reference would not be resolved again after the edit.
                for v in &mut status.versions {
                    v.task_definition_arn = current_td.get(&v.version).cloned();
                }
            }
            let end = match outcome {
                Ok(()) => {
                    let requeue = result.next.map_or(jittered(backstop), |n| n.min(jittered(backstop)));
                    match result.problems.first() {
                        None => PassEnd::Converged { message: "workers match the plan table", requeue },
                        Some((reason, _)) => {
                            let message =
                                result.problems.iter().map(|(_, m)| m.as_str()).collect::<Vec<_>>().join("; ");
                            let operation = if *reason == launch::REASON_LAUNCH_REJECTED {
                                "ecs:RunTask"
                            } else {
                                "ecs:DescribeTaskDefinition"
                            };
                            PassEnd::Partial { problem: super::Blocked { reason, message }, operation, requeue }
                        }
                    }
                }
                Err(ReconcileError::Aws(err)) if err.code == "ClusterNotFoundException" => {
                    PassEnd::BlockedFor(cluster_missing(obj), jittered(backstop))
                }
                Err(ReconcileError::Aws(err)) => PassEnd::Failed(err),
                Err(other) => PassEnd::Error(other),
            };
            Applied { status, end, events: Vec::new() }
        })
    }
}

/// What a pool's spec uses in AWS, for the AccessPolicy gate (its pass's, and the bind path's).
fn access_uses(ctx: &Context, shared: &Shared, obj: &HotPool) -> Vec<super::access::Use> {
    if !ctx.access.limits_pool_tasks() {
        return super::access::uses::hot_pool(&obj.spec, 0);
    }
    let others = shared
        .stores
        .pools
        .state()
        .iter()
        .filter(|p| p.namespace() == obj.namespace() && p.uid() != obj.uid() && p.metadata.deletion_timestamp.is_none())
        .map(|p| super::access::uses::pool_tasks(&p.spec))
        .fold(0i64, i64::saturating_add);
    super::access::uses::hot_pool(&obj.spec, others)
}

fn cluster_missing(pool: &HotPool) -> super::Blocked {
    super::Blocked {
        reason: "ClusterNotFound",
        message: format!(
            "spec.cluster: ECS cluster {:?} does not exist in this account and region; create it or fix spec.cluster",
            pool.spec.cluster
        ),
    }
}

/// The writes of one pass over one pool.
struct Pool<'a> {
    pool: &'a HotPool,
    ctx: &'a Context,
    shared: &'a Shared,
    aws: &'a PoolAws,
    owner: &'a Owner,
    name: String,
    namespace: String,
    started_by: String,
    workers_api: Api<HotPoolWorker>,
    claims_api: Api<HotPoolClaim>,
    /// The pool's workers by name, updated by every write of this pass.
    workers: BTreeMap<String, HotPoolWorker>,
    /// Versions whose resolved task definition RunTask did not find: resolved again next pass.
    stale_task_definitions: BTreeSet<String>,
    /// The ownership inventory (`status.resources`), updated as the pass goes.
    resources: Vec<OwnedResource>,
    /// The pool's status writer (a new cluster is recorded before the first RunTask into it).
    writer: &'a StatusWriter<'a, HotPool>,
    now: Timestamp,
    /// When the workers were listed (see `Ledger`).
    listed_at: Instant,
}
