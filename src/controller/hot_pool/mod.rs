//! The HotPool controller: keeps `scaleTo` idle ECS worker tasks per pooled version, binds
//! HotPoolClaims to them exactly once, and stops what nobody needs.
//!
//! One reconcile per pool decides everything about that pool (kube-runtime never runs two
//! reconciles of one object at once), triggered by the pool, its workers (owner references) and its
//! claims (mapped by `spec.pool`). Workers are read with a fresh LIST each pass rather than from a
//! cache, so a worker written a moment ago is never counted as missing and launched twice; claims
//! come from a reflector store, and every worker or claim status write carries the resourceVersion
//! it was planned from, so a stale read ends in a conflict and a retry, never in a double binding.
//!
//! A worker object is written before its task is launched, carrying the RunTask idempotency token
//! (`spec.launchToken`, also a task tag). After a crash or a lost response between RunTask and the
//! status write, the next pass finds the task by that tag, or repeats RunTask with the same token,
//! so a task is never launched twice for one worker.
//!
//! A pass, in order: resolve task definitions, list workers, `observe` the tasks (recover, relaunch,
//! stop orphans, apply each worker's step), the claims pass (`binding`), idle stops and `launch`,
//! then `status`. Worker writes live in `workers`, pool deletion in `cleanup`, the pure decisions in
//! `plan`.

pub mod aws;
mod binding;
pub mod claim;
mod cleanup;
pub mod inventory;
pub mod launch;
mod observe;
pub mod plan;
mod status;
mod workers;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};

use self::aws::PoolAws;
use super::{PassEnd, ReconcileError, StatusWriter, error_policy, finish_pass, gate, jittered, with_finalizer};
use crate::api::OwnedResource;
use crate::api::hot_pool::{
    HotPool, HotPoolClaim, HotPoolStatus, HotPoolWorker, POOL_LABEL, WorkerClaimRef, WorkerPhase,
};
use crate::aws::naming::Owner;
use crate::runtime::Context;

const KIND: &str = "HotPool";
/// Label on workers: the launch token they were started with.
pub const LAUNCH_LABEL: &str = "fargate.operator.dev/launch";
/// How often a pool with Starting workers looks at them again.
const STARTING_POLL: Duration = Duration::from_secs(3);
/// The longest a pass waits for a deadline (a lease end, a startup timeout) before looking again;
/// the backstop `replenishIntervalSeconds` is never longer.
const MAX_WAKE: Duration = Duration::from_secs(3600);

/// State shared by every HotPool reconcile.
pub struct Shared {
    /// Every HotPoolClaim the operator watches.
    pub claims: Store<HotPoolClaim>,
    /// True once the claim store holds its first full list. Not `Store::wait_until_ready`: in
    /// kube-runtime 5.0 it wakes only the last of several concurrent waiters (its `DelayedInit`
    /// polls one oneshot receiver, which keeps a single waker), so after a leader takeover every
    /// pool reconcile but one waited forever (found by the chaos run). A watch channel wakes all.
    claims_ready: tokio::sync::watch::Receiver<bool>,
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

/// Run the HotPool controller (and the claim controller for claims whose pool is missing) until
/// `stop` resolves.
pub async fn run(
    ctx: Arc<Context>,
    stop_pools: impl std::future::Future<Output = ()> + Send + Sync + 'static,
    stop_claims: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let pools: Api<HotPool> = super::api_for(&ctx);
    let workers: Api<HotPoolWorker> = super::api_for(&ctx);
    let claims: Api<HotPoolClaim> = super::api_for(&ctx);
    let (reader, writer) = reflector::store();
    let (ready_tx, claims_ready) = tokio::sync::watch::channel(false);
    // The store is updated before the event reaches the controller, so a reconcile triggered by a
    // claim always sees that claim.
    let claim_events = reflector::reflector(writer, watcher(claims, watcher::Config::default().any_semantic()))
        .default_backoff()
        .inspect_ok(move |event| {
            if matches!(event, watcher::Event::InitDone) {
                ready_tx.send_replace(true);
            }
        })
        .touched_objects();
    let shared = Arc::new(Shared {
        claims: reader,
        claims_ready,
        last_sweep: Mutex::new(HashMap::new()),
        rejections: launch::Rejections::default(),
    });
    let pool_controller = Controller::new(pools, watcher::Config::default().any_semantic())
        .with_config(super::controller_config(&ctx))
        .owns(workers, watcher::Config::default().any_semantic())
        .watches_stream(claim_events, |c: HotPoolClaim| {
            c.namespace().map(|ns| ObjectRef::<HotPool>::new(&c.spec.pool).within(&ns))
        })
        .graceful_shutdown_on(stop_pools)
        .run(super::guard(move |pool, ctx| reconcile(pool, ctx, shared.clone())), error_policy::<HotPool>, ctx.clone())
        .for_each(|result| async move {
            if let Err(err) = result {
                tracing::debug!(kind = KIND, %err, "controller event");
            }
        });
    tokio::join!(pool_controller, claim::run(ctx, stop_claims));
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
    let cfg = ctx.aws.config_for(pool.spec.aws.as_ref()).await;
    PoolAws { caller: ctx.caller.clone(), ecs: ctx.aws.ecs(&cfg), cluster: pool.spec.cluster.clone() }
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
    if let Some(done) = gate(api, pool.as_ref(), pool.spec.policy.paused, ctx).await? {
        return Ok(done);
    }
    let old = pool.status.clone().unwrap_or_default();
    let mut status = old.clone();
    tracing::debug!(pool = %pool.name_any(), "waiting for the claim store");
    if shared.claims_ready.clone().wait_for(|ready| *ready).await.is_err() {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    tracing::debug!(pool = %pool.name_any(), "credentials");
    let aws = pool_aws(ctx, &pool).await;
    let writer = StatusWriter::new(api, pool.as_ref(), &ctx.metrics);
    let mut pass = Pool::new(&pool, ctx, shared, &writer, aws, status.resources.clone())?;
    let outcome = pass.converge(&mut status).await;
    // Also after a failed pass: a RunTask it made may have started tasks in a cluster it recorded.
    status.resources = std::mem::take(&mut pass.resources);
    let backstop = Duration::from_secs(u64::try_from(pool.spec.replenish_interval_seconds).unwrap_or(30));
    let end = match outcome {
        Ok(done) => {
            let requeue = done.next.map_or(jittered(backstop), |n| n.min(jittered(backstop)));
            match done.problems.first() {
                None => PassEnd::Converged { message: "workers match the plan table", requeue },
                Some((reason, _)) => {
                    let message = done.problems.iter().map(|(_, m)| m.as_str()).collect::<Vec<_>>().join("; ");
                    let operation = if *reason == launch::REASON_LAUNCH_REJECTED {
                        "ecs:RunTask"
                    } else {
                        "ecs:DescribeTaskDefinition"
                    };
                    PassEnd::Partial { problem: super::Blocked { reason, message }, operation, requeue }
                }
            }
        }
        // No cluster, no workers: a problem for a human, reported as such and looked at again
        // at the backstop interval (not retried as an AWS error).
        Err(ReconcileError::Aws(err)) if err.code == "ClusterNotFoundException" => {
            let blocked = super::Blocked {
                reason: "ClusterNotFound",
                message: format!(
                    "spec.cluster: ECS cluster {:?} does not exist in this account and region; create it or fix spec.cluster",
                    pool.spec.cluster
                ),
            };
            PassEnd::BlockedFor(blocked, jittered(backstop))
        }
        Err(ReconcileError::Aws(err)) => PassEnd::Failed(err),
        Err(other) => PassEnd::Error(other),
    };
    finish_pass(&writer, pool.as_ref(), ctx, &old, status, end).await.0
}

/// One converge pass over one pool.
struct Pool<'a> {
    pool: &'a HotPool,
    ctx: &'a Context,
    shared: &'a Shared,
    aws: PoolAws,
    owner: Owner,
    name: String,
    namespace: String,
    started_by: String,
    workers_api: Api<HotPoolWorker>,
    claims_api: Api<HotPoolClaim>,
    /// Fresh worker objects by name, updated by every write of this pass.
    workers: BTreeMap<String, HotPoolWorker>,
    /// Claims to launch a reserved worker for, by version.
    cold_starts: Vec<(String, WorkerClaimRef)>,
    /// Versions whose resolved task definition RunTask did not find: resolved again next pass.
    stale_task_definitions: BTreeSet<String>,
    /// The ownership inventory (`status.resources`), updated as the pass goes.
    resources: Vec<OwnedResource>,
    /// The pool's status writer (a new cluster is recorded before the first RunTask into it).
    writer: &'a StatusWriter<'a, HotPool>,
    now: Timestamp,
}

impl<'a> Pool<'a> {
    fn new(
        pool: &'a HotPool,
        ctx: &'a Context,
        shared: &'a Shared,
        writer: &'a StatusWriter<'a, HotPool>,
        aws: PoolAws,
        resources: Vec<OwnedResource>,
    ) -> Result<Self, ReconcileError> {
        let owner = owner(ctx, pool)?;
        let namespace = owner.namespace.clone();
        Ok(Self {
            pool,
            ctx,
            shared,
            aws,
            name: pool.name_any(),
            started_by: plan::started_by(&owner.uid),
            owner,
            workers_api: Api::namespaced(ctx.client.clone(), &namespace),
            claims_api: Api::namespaced(ctx.client.clone(), &namespace),
            namespace,
            workers: BTreeMap::new(),
            cold_starts: Vec::new(),
            stale_task_definitions: BTreeSet::new(),
            resources,
            writer,
            now: Timestamp::now(),
        })
    }

    async fn converge(&mut self, status: &mut HotPoolStatus) -> Result<PassResult, ReconcileError> {
        let mut result = PassResult::default();
        let mut current_td = self.resolve_task_definitions(status, &mut result).await?;
        tracing::debug!(pool = %self.name, "listing workers");
        self.list_workers().await?;
        self.record_worker_clusters();
        let key = format!("{}/{}", self.namespace, self.name);
        tracing::debug!(pool = %self.name, workers = self.workers.len(), "observing tasks");
        self.observe_and_repair(&key, &mut result).await?;
        tracing::debug!(pool = %self.name, "claims");
        let waiting = self.claims_pass(&current_td, &mut result).await?;
        tracing::debug!(pool = %self.name, "idle stops and launches");
        self.stop_idle(&current_td, &waiting).await?;
        self.launch(&current_td, &waiting, &mut result).await?;
        for version in &self.stale_task_definitions {
            current_td.remove(version);
        }
        tracing::debug!(pool = %self.name, "pass done");
        self.fill_status(status, &current_td);
        if self.workers.values().any(|w| plan::phase(w) == WorkerPhase::Starting) {
            result.due_in(STARTING_POLL);
        }
        Ok(result)
    }

    /// The task definition ARN of every version, from status when the reference still matches.
    async fn resolve_task_definitions(
        &self,
        old: &HotPoolStatus,
        result: &mut PassResult,
    ) -> Result<BTreeMap<String, String>, ReconcileError> {
        let same_generation = old.observed_generation == self.pool.meta().generation;
        let mut out = BTreeMap::new();
        for (i, v) in self.pool.spec.versions.iter().enumerate() {
            let cached = old
                .versions
                .iter()
                .find(|s| s.version == v.version)
                .and_then(|s| s.task_definition_arn.clone())
                .filter(|arn| reference_matches(&v.task_definition, arn, same_generation));
            let arn = match cached {
                Some(a) => Some(a),
                None => self.aws.task_definition_arn(&v.task_definition).await?,
            };
            match arn {
                Some(a) => {
                    out.insert(v.version.clone(), a);
                }
                None => result.problem(
                    "TaskDefinitionNotFound",
                    format!(
                        "spec.versions[{i}].taskDefinition: {:?} is not a registered task definition; register it or fix the reference",
                        v.task_definition
                    ),
                ),
            }
        }
        Ok(out)
    }

    async fn list_workers(&mut self) -> Result<(), ReconcileError> {
        let lp = ListParams::default().labels(&format!("{POOL_LABEL}={}", self.name));
        let uid = self.owner.uid.clone();
        self.workers = self
            .workers_api
            .list(&lp)
            .await?
            .items
            .into_iter()
            .filter(|w| w.owner_references().iter().any(|o| o.uid == uid))
            .map(|w| (w.name_any(), w))
            .collect();
        Ok(())
    }

    /// Record the cluster of every task a worker holds. Pools launched before the inventory existed
    /// get their entries this way, and so does a cluster whose entry a crash kept from being written
    /// (it is recorded before RunTask, but written with the status at the end of the pass).
    fn record_worker_clusters(&mut self) {
        for w in self.workers.values() {
            if let Some(arn) = plan::task_arn(w) {
                let cluster = inventory::cluster_of(arn, &self.pool.spec.cluster);
                inventory::record(&mut self.resources, cluster, &self.started_by);
            }
        }
    }
}

/// True when a cached task definition ARN still answers the spec's reference. A bare family
/// (latest revision) is resolved again whenever the spec changes.
fn reference_matches(reference: &str, arn: &str, same_generation: bool) -> bool {
    if reference.starts_with("arn:") {
        return reference == arn;
    }
    let tail = arn.rsplit_once("task-definition/").map(|(_, t)| t).unwrap_or_default();
    if reference.contains(':') {
        tail == reference
    } else {
        same_generation && tail.split(':').next() == Some(reference)
    }
}
