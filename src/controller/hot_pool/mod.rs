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

pub mod aws;
pub mod claim;
pub mod launch;
pub mod plan;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};

use self::aws::{PoolAws, TAG_LAUNCH};
use self::plan::{ClaimStep, ClaimView, Release, WorkerStep, WorkerView};
use super::{
    ReconcileError, emit_transitions, error_policy, gate, jittered, record_aws_error, with_finalizer, write_status,
};
use crate::api::DeletionPolicy;
use crate::api::hot_pool::{
    ClaimPhase, HotPool, HotPoolClaim, HotPoolClaimStatus, HotPoolStatus, HotPoolWorker, HotPoolWorkerStatus,
    OnRelease, POOL_LABEL, VersionStatus, WorkerClaimRef, WorkerPhase,
};
use crate::aws::AwsError;
use crate::aws::naming::Owner;
use crate::runtime::Context;
use crate::runtime::clock::{self, plus_secs};
use crate::runtime::conditions::{self, DEGRADED, PROGRESSING, READY, REASON_INVALID_SPEC, SYNCED};
use crate::runtime::status::ObjectStatus;

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
        |api, obj, ctx| async move { cleanup(&api, obj, &ctx).await },
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
    let generation = pool.meta().generation;
    if let Some(done) = gate(api, pool.as_ref(), pool.spec.policy.paused, ctx).await? {
        return Ok(done);
    }
    let old = pool.status.clone().unwrap_or_default();
    let mut status = old.clone();
    tracing::debug!(pool = %pool.name_any(), "waiting for the claim store");
    if shared.claims_ready.clone().wait_for(|ready| *ready).await.is_err() {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let key = ObjectRef::from_obj(pool.as_ref()).to_string();
    tracing::debug!(pool = %pool.name_any(), "credentials");
    let aws = pool_aws(ctx, &pool).await;
    let mut pass = Pool::new(&pool, ctx, shared, aws)?;
    let outcome = pass.converge(&mut status).await;
    status.observed_generation = generation;
    let backstop = Duration::from_secs(u64::try_from(pool.spec.replenish_interval_seconds).unwrap_or(30));
    let result = match outcome {
        Ok(done) => {
            let c = status.conditions_mut();
            if done.problems.is_empty() {
                conditions::set_condition(c, SYNCED, true, "Synced", "workers match the plan table", generation);
                conditions::set_condition(c, DEGRADED, false, "AsExpected", "no problems found", generation);
                status.last_error = None;
            } else {
                let msg = done.problems.iter().map(|(_, m)| m.as_str()).collect::<Vec<_>>().join("; ");
                let reason = done.problems.first().map_or("TaskDefinitionNotFound", |(r, _)| *r);
                let operation =
                    if reason == launch::REASON_LAUNCH_REJECTED { "ecs:RunTask" } else { "ecs:DescribeTaskDefinition" };
                conditions::set_condition(c, SYNCED, false, reason, &msg, generation);
                conditions::set_condition(c, DEGRADED, true, reason, &msg, generation);
                crate::runtime::status::set_last_error(&mut status.last_error, operation, reason, &msg);
            }
            ctx.backoff.on_success(&key);
            Ok(Action::requeue(done.next.map_or(jittered(backstop), |n| n.min(jittered(backstop)))))
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
            super::record_blocked(&mut status, &blocked, generation);
            Ok(Action::requeue(jittered(backstop)))
        }
        Err(ReconcileError::Aws(err)) => {
            record_aws_error(&mut status, &err, generation);
            Err(ReconcileError::Aws(err))
        }
        Err(other) => Err(other),
    };
    emit_transitions(ctx, pool.as_ref(), &old, &status).await;
    write_status(api, &pool, &status, ctx).await?;
    result
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
    now: Timestamp,
}

impl<'a> Pool<'a> {
    fn new(pool: &'a HotPool, ctx: &'a Context, shared: &'a Shared, aws: PoolAws) -> Result<Self, ReconcileError> {
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
            now: Timestamp::now(),
        })
    }

    async fn converge(&mut self, status: &mut HotPoolStatus) -> Result<PassResult, ReconcileError> {
        let mut result = PassResult::default();
        let mut current_td = self.resolve_task_definitions(status, &mut result).await?;
        tracing::debug!(pool = %self.name, "listing workers");
        self.list_workers().await?;
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

    /// Look at the tasks: recover unrecorded launches, stop orphans, and apply each worker's step.
    async fn observe_and_repair(&mut self, key: &str, result: &mut PassResult) -> Result<(), ReconcileError> {
        let every = Duration::from_secs(u64::try_from(self.pool.spec.replenish_interval_seconds).unwrap_or(30));
        let unrecorded: Vec<String> =
            self.workers.values().filter(|w| plan::task_arn(w).is_none()).map(|w| w.name_any()).collect();
        let full = !unrecorded.is_empty() || self.shared.sweep_due(key, every);
        let running = if full { Some(self.aws.running_task_arns(&self.started_by).await?) } else { None };
        let known: BTreeSet<String> = self.workers.values().filter_map(plan::task_arn).map(str::to_string).collect();
        let mut describe: BTreeSet<String> = self
            .workers
            .values()
            .filter(|w| plan::phase(w) == WorkerPhase::Starting)
            .filter_map(plan::task_arn)
            .map(str::to_string)
            .collect();
        if let Some(r) = &running {
            describe.extend(known.difference(r).cloned());
            describe.extend(r.difference(&known).cloned());
        }
        let obs = if describe.is_empty() {
            BTreeMap::new()
        } else {
            self.aws.describe_tasks(&describe.into_iter().collect::<Vec<_>>()).await?
        };
        if full {
            self.shared.swept(key);
        }

        // Launches whose task ARN was never recorded.
        let unknown: BTreeMap<String, plan::TaskObs> =
            obs.iter().filter(|(arn, _)| !known.contains(*arn)).map(|(a, o)| (a.clone(), o.clone())).collect();
        let pending: Vec<&HotPoolWorker> = unrecorded.iter().filter_map(|n| self.workers.get(n)).collect();
        let recovered = plan::recover_launches(pending, &unknown, TAG_LAUNCH);
        let adopted: BTreeSet<String> = recovered.iter().map(|(_, arn)| arn.clone()).collect();
        for (name, arn) in &recovered {
            let port = self.port_of(name);
            self.write_worker(name, |s| {
                s.phase = Some(WorkerPhase::Starting);
                s.task_arn = Some(arn.clone());
                s.port = port;
            })
            .await?;
        }
        let relaunch: Vec<String> =
            unrecorded.iter().filter(|n| !recovered.iter().any(|(r, _)| r == *n)).cloned().collect();
        self.relaunch(&relaunch, result).await?;

        // Tasks of this pool that no worker knows: stop them.
        for (arn, o) in &unknown {
            if adopted.contains(arn)
                || o.is_stopped()
                || !self.owner.owns(o.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            {
                continue;
            }
            self.aws.stop_task(arn, "fargate-operator: task of a HotPool with no HotPoolWorker (orphan)").await?;
            self.ctx
                .events
                .warning(
                    self.pool,
                    "OrphanStopped",
                    "StopTask",
                    format!("stopped task {arn}: no HotPoolWorker records it"),
                )
                .await;
        }

        // Each recorded worker's step. Not the ones just relaunched: their tasks are newer than the
        // task list above, so they would look lost (and be deleted, orphaning the tasks: found by
        // the chaos run after a leader died between creating workers and recording their tasks).
        let names: Vec<String> = self.workers.keys().filter(|n| !relaunch.contains(n)).cloned().collect();
        for name in names {
            let Some(w) = self.workers.get(&name) else { continue };
            let step = plan::step_worker(
                w,
                plan::task_arn(w).and_then(|a| obs.get(a)),
                running.as_ref(),
                self.pool.spec.startup_timeout_seconds,
                self.now,
            );
            match step {
                WorkerStep::Keep => {
                    if plan::phase(w) == WorkerPhase::Starting
                        && let Some(started) = w.status.as_ref().and_then(|s| s.started_at.as_ref())
                    {
                        let deadline = plus_secs(started.0, i64::from(self.pool.spec.startup_timeout_seconds));
                        result.due_in(clock::until(self.now, deadline, MAX_WAKE));
                    }
                }
                WorkerStep::Ready(ip) => {
                    let reserved = plan::claim_ref(w).is_some();
                    let now = self.now;
                    self.write_worker(&name, |s| {
                        s.ip = Some(ip.clone());
                        if reserved {
                            s.phase = Some(WorkerPhase::Claimed);
                        } else {
                            s.phase = Some(WorkerPhase::Available);
                            s.available_since = Some(MicroTime(now));
                        }
                    })
                    .await?;
                }
                WorkerStep::Lost(why) => {
                    self.ctx
                        .events
                        .warning(self.pool, "WorkerLost", "DescribeTasks", format!("worker {name}: {why}"))
                        .await;
                    self.delete_worker(&name).await?;
                }
                WorkerStep::TimedOut => {
                    let why = format!(
                        "not RUNNING with an IP within {} s (spec.startupTimeoutSeconds)",
                        self.pool.spec.startup_timeout_seconds
                    );
                    self.ctx
                        .events
                        .warning(self.pool, "StartupTimeout", "StopTask", format!("worker {name}: {why}"))
                        .await;
                    self.stop_worker(&name, &why).await?;
                }
            }
        }
        Ok(())
    }

    fn port_of(&self, worker: &str) -> Option<i32> {
        let version = &self.workers.get(worker)?.spec.version;
        self.pool.spec.versions.iter().find(|v| &v.version == version).map(|v| v.port)
    }

    /// Claims: releases first, then every claim in arrival order. Returns claims waiting per version.
    async fn claims_pass(
        &mut self,
        current_td: &BTreeMap<String, String>,
        result: &mut PassResult,
    ) -> Result<BTreeMap<String, usize>, ReconcileError> {
        let spec = &self.pool.spec;
        let claims: Vec<Arc<HotPoolClaim>> = self
            .shared
            .claims
            .state()
            .into_iter()
            .filter(|c| c.namespace().as_deref() == Some(self.namespace.as_str()) && c.spec.pool == self.name)
            .collect();
        let views: Vec<ClaimView> = claims.iter().map(|c| ClaimView::of(c, self.now)).collect();
        let by_name: BTreeMap<String, ClaimView> = views.iter().map(|c| (c.name.clone(), c.clone())).collect();
        let worker_views: Vec<WorkerView> = self.workers.values().map(WorkerView::of).collect();
        for r in plan::releases(&worker_views, &by_name, spec.claims.on_release, spec.claims.lease_seconds, self.now) {
            match r {
                Release::Released { worker, on_release, why } => self.release(&worker, on_release, &why).await?,
                Release::Unreserve { worker } => self.release(&worker, OnRelease::Recycle, "unreserved").await?,
            }
        }
        let mut worker_views: Vec<WorkerView> = self.workers.values().map(WorkerView::of).collect();
        let steps = plan::plan_claims(spec, &views, &mut worker_views, current_td, self.now);
        let waiting = plan::waiting_per_version(&views, &steps);
        let claim_objs: BTreeMap<String, &Arc<HotPoolClaim>> = claims.iter().map(|c| (c.name_any(), c)).collect();
        let mut cold: Vec<(String, WorkerClaimRef)> = Vec::new();
        for (name, step) in steps {
            let Some(claim) = claim_objs.get(&name) else { continue };
            match step {
                ClaimStep::Bind { worker } => {
                    let Some(r) = worker_views.iter().find(|w| w.name == worker).and_then(|w| w.claim.clone()) else {
                        continue;
                    };
                    self.write_worker(&worker, |s| {
                        s.phase = Some(WorkerPhase::Claimed);
                        s.claim = Some(r.clone());
                    })
                    .await?;
                    self.bind_claim(claim, &worker, false).await?;
                }
                ClaimStep::Complete { worker, cold_start } => self.bind_claim(claim, &worker, cold_start).await?,
                ClaimStep::ColdStart => {
                    let r = WorkerClaimRef {
                        name: name.clone(),
                        uid: claim.uid(),
                        client: Some(claim.spec.client.clone()),
                        since: Time(self.now),
                        cold_start: true,
                    };
                    cold.push((claim.spec.version.clone(), r));
                    let msg = format!("launching a worker of version {} for this claim", claim.spec.version);
                    self.set_claim(claim, ClaimPhase::Pending, "ColdStarting", &msg, |_| {}).await?;
                }
                ClaimStep::Pending { reason, message } => {
                    self.set_claim(claim, ClaimPhase::Pending, reason, &message, |_| {}).await?;
                }
                ClaimStep::Expire { worker } => {
                    let lease = spec.claims.lease_seconds;
                    let msg = format!("the lease of {lease} s ran out without spec.renewedAt being renewed");
                    self.set_claim(claim, ClaimPhase::Expired, "LeaseExpired", &msg, |_| {}).await?;
                    self.ctx.events.warning(claim.as_ref(), "LeaseExpired", "Release", msg).await;
                    self.release(&worker, spec.claims.on_release, "its claim expired").await?;
                }
                ClaimStep::Fail { reason, message } => {
                    self.set_claim(claim, ClaimPhase::Failed, reason, &message, |_| {}).await?;
                    self.ctx.events.warning(claim.as_ref(), reason, "Bind", message).await;
                }
                ClaimStep::Hold { expires_at } => {
                    if let Some(e) = expires_at {
                        result.due_in(clock::until(self.now, e, MAX_WAKE));
                    }
                    let worker = claim.status.as_ref().and_then(|s| s.worker.clone()).unwrap_or_default();
                    let msg = self.bound_message(&worker);
                    self.set_claim(claim, ClaimPhase::Bound, "Bound", &msg, |s| s.expires_at = expires_at.map(Time))
                        .await?;
                }
                ClaimStep::Invalid { message, expires_at } => {
                    if let Some(e) = expires_at {
                        result.due_in(clock::until(self.now, e, MAX_WAKE));
                    }
                    let phase = claim.status.as_ref().and_then(|s| s.phase).unwrap_or_default();
                    let new = claim::invalid_status(claim, phase, &message, |s| {
                        if phase == ClaimPhase::Bound {
                            s.expires_at = expires_at.map(Time);
                        }
                    });
                    if claim::put_status(&self.claims_api, claim, new, self.ctx).await? {
                        self.ctx.events.warning(claim.as_ref(), REASON_INVALID_SPEC, "Validate", message).await;
                    }
                }
                ClaimStep::Done => {}
            }
        }
        self.cold_starts = cold;
        Ok(waiting)
    }

    fn bound_message(&self, worker: &str) -> String {
        match self.workers.get(worker).and_then(|w| w.status.as_ref()) {
            Some(s) => format!(
                "bound to worker {worker} at {}:{}",
                s.ip.as_deref().unwrap_or("?"),
                s.port.map(|p| p.to_string()).unwrap_or_else(|| "?".into())
            ),
            None => format!("bound to worker {worker}"),
        }
    }

    /// Commit a binding on the claim (the worker already names it).
    async fn bind_claim(&self, claim: &HotPoolClaim, worker: &str, cold_start: bool) -> Result<(), ReconcileError> {
        let ws = self.workers.get(worker).and_then(|w| w.status.clone()).unwrap_or_default();
        let lease = i64::from(self.pool.spec.claims.lease_seconds);
        let now = self.now;
        let msg = self.bound_message(worker);
        let written = self
            .set_claim(claim, ClaimPhase::Bound, "Bound", &msg, |s| {
                s.worker = Some(worker.to_string());
                s.ip = ws.ip.clone();
                s.port = ws.port;
                s.task_arn = ws.task_arn.clone();
                s.bound_at = Some(Time(now));
                s.expires_at = Some(Time(plus_secs(now, lease)));
                s.cold_start = Some(cold_start);
            })
            .await?;
        if written {
            let created = claim.metadata.creation_timestamp.as_ref().map_or(now, |t| t.0);
            let waited = now.duration_since(created).as_secs_f64().max(0.0);
            self.ctx.metrics.claim_bound(cold_start, waited);
            self.ctx.events.normal(claim, "Bound", "Bind", msg).await;
        }
        Ok(())
    }

    /// Write a claim's status (phase, conditions, extra fields) when it changed, guarded by the
    /// resourceVersion it was read with. Returns whether a write happened.
    async fn set_claim(
        &self,
        claim: &HotPoolClaim,
        phase: ClaimPhase,
        reason: &str,
        message: &str,
        extra: impl FnOnce(&mut HotPoolClaimStatus),
    ) -> Result<bool, ReconcileError> {
        let new = claim::next_status(claim, phase, reason, message, extra);
        claim::put_status(&self.claims_api, claim, new, self.ctx).await
    }

    /// Change a worker's status with `f` and write it when it changed, guarded by the
    /// resourceVersion of the copy this pass holds (updated from the response).
    async fn write_worker(
        &mut self,
        name: &str,
        f: impl FnOnce(&mut HotPoolWorkerStatus),
    ) -> Result<(), ReconcileError> {
        let Some(w) = self.workers.get(name) else { return Ok(()) };
        let mut obj = w.clone();
        let mut st = obj.status.clone().unwrap_or_default();
        f(&mut st);
        st.observed_generation = obj.meta().generation;
        if obj.status.as_ref() == Some(&st) {
            return Ok(());
        }
        obj.status = Some(st);
        self.ctx.metrics.status_written("HotPoolWorker");
        let written = self.workers_api.replace_status(name, &PostParams::default(), &obj).await?;
        self.workers.insert(name.to_string(), written);
        Ok(())
    }

    async fn delete_worker(&mut self, name: &str) -> Result<(), ReconcileError> {
        if let Some(w) = self.workers.get(name) {
            tracing::debug!(pool = %self.name, worker = name, task = ?plan::task_arn(w), token = ?w.spec.launch_token, phase = ?plan::phase(w), "deleting worker");
        }
        match self.workers_api.delete(name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
        self.workers.remove(name);
        Ok(())
    }

    /// Stop the worker's task (if it has one) and remove the worker.
    async fn stop_worker(&mut self, name: &str, why: &str) -> Result<(), ReconcileError> {
        if let Some(arn) = self.workers.get(name).and_then(plan::task_arn).map(str::to_string) {
            let reason = format!("fargate-operator: {why}");
            self.aws.stop_task(&arn, &reason.chars().take(255).collect::<String>()).await?;
        }
        self.delete_worker(name).await
    }

    /// A claim let go of `worker`: a reserved worker that never started joins the pool; otherwise
    /// `onRelease` decides between stopping it and returning it to Available.
    async fn release(&mut self, worker: &str, on_release: OnRelease, why: &str) -> Result<(), ReconcileError> {
        let Some(w) = self.workers.get(worker) else { return Ok(()) };
        let now = self.now;
        match (plan::phase(w), on_release) {
            (WorkerPhase::Starting, _) => self.write_worker(worker, |s| s.claim = None).await,
            (_, OnRelease::Recycle) => {
                self.write_worker(worker, |s| {
                    s.claim = None;
                    s.phase = Some(WorkerPhase::Available);
                    s.available_since = Some(MicroTime(now));
                })
                .await
            }
            (_, OnRelease::Stop) => self.stop_worker(worker, &format!("released: {why}")).await,
        }
    }

    /// Stop idle workers the plan no longer wants.
    async fn stop_idle(
        &mut self,
        current_td: &BTreeMap<String, String>,
        waiting: &BTreeMap<String, usize>,
    ) -> Result<(), ReconcileError> {
        let views: Vec<WorkerView> = self.workers.values().map(WorkerView::of).collect();
        for (name, why) in plan::idle_stops(&self.pool.spec, &views, current_td, waiting, self.now) {
            self.stop_worker(&name, &why).await?;
            self.ctx.events.normal(self.pool, "WorkerStopped", "StopTask", format!("worker {name}: {why}")).await;
        }
        Ok(())
    }

    fn fill_status(&self, status: &mut HotPoolStatus, current_td: &BTreeMap<String, String>) {
        let mut per: BTreeMap<String, VersionStatus> = BTreeMap::new();
        for v in &self.pool.spec.versions {
            per.insert(
                v.version.clone(),
                VersionStatus {
                    version: v.version.clone(),
                    task_definition_arn: current_td.get(&v.version).cloned(),
                    scale_to: if v.pooling { v.scale_to } else { 0 },
                    ..Default::default()
                },
            );
        }
        for w in self.workers.values() {
            let e = per
                .entry(w.spec.version.clone())
                .or_insert_with(|| VersionStatus { version: w.spec.version.clone(), ..Default::default() });
            match (plan::phase(w), plan::claim_ref(w).is_some()) {
                (WorkerPhase::Available, false) => e.available += 1,
                (WorkerPhase::Available | WorkerPhase::Claimed, _) => e.claimed += 1,
                (WorkerPhase::Starting, _) => e.starting += 1,
                (WorkerPhase::Stopping | WorkerPhase::Failed, _) => e.stopping += 1,
            }
        }
        let versions: Vec<VersionStatus> = per.into_values().collect();
        status.available = Some(versions.iter().map(|v| v.available).sum());
        status.claimed = Some(versions.iter().map(|v| v.claimed).sum());
        status.starting = Some(versions.iter().map(|v| v.starting).sum());
        let short: Vec<String> = versions
            .iter()
            .filter(|v| v.available < v.scale_to)
            .map(|v| format!("{}: {}/{} available", v.version, v.available, v.scale_to))
            .collect();
        let generation = self.pool.meta().generation;
        let starting = status.starting.unwrap_or(0);
        let c = status.conditions_mut();
        if short.is_empty() {
            conditions::set_condition(
                c,
                READY,
                true,
                "PoolFull",
                "every pooled version has scaleTo Available workers",
                generation,
            );
        } else {
            conditions::set_condition(c, READY, false, "Replenishing", &short.join(", "), generation);
        }
        if starting > 0 {
            conditions::set_condition(
                c,
                PROGRESSING,
                true,
                "WorkersStarting",
                &format!("{starting} worker(s) starting"),
                generation,
            );
        } else {
            conditions::set_condition(c, PROGRESSING, false, "Idle", "no worker is starting", generation);
        }
        status.versions = versions;
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

/// Deleting the pool: stop every task it launched (unless `policy.deletion: Retain`) and remove
/// its workers.
async fn cleanup(_api: &Api<HotPool>, pool: Arc<HotPool>, ctx: &Context) -> Result<Action, ReconcileError> {
    let owner = owner(ctx, &pool)?;
    let workers_api: Api<HotPoolWorker> = Api::namespaced(ctx.client.clone(), &owner.namespace);
    let lp = ListParams::default().labels(&format!("{POOL_LABEL}={}", pool.name_any()));
    let workers: Vec<HotPoolWorker> = workers_api
        .list(&lp)
        .await?
        .items
        .into_iter()
        .filter(|w| w.owner_references().iter().any(|o| o.uid == owner.uid))
        .collect();
    if pool.spec.policy.deletion != DeletionPolicy::Retain {
        let aws = pool_aws(ctx, &pool).await;
        let mut arns: BTreeSet<String> = workers.iter().filter_map(plan::task_arn).map(str::to_string).collect();
        match aws.running_task_arns(&plan::started_by(&owner.uid)).await {
            Ok(running) => arns.extend(running),
            // The cluster is gone, and every task in it: nothing is left to stop.
            Err(e) if e.is_not_found() => {
                tracing::info!(pool = %pool.name_any(), error = %e, "the pool's cluster is gone; no task to stop");
                arns.clear();
            }
            Err(e) => return Err(cleanup_error(ctx, &pool, e).await),
        }
        for arn in &arns {
            if let Err(e) = aws.stop_task(arn, "fargate-operator: HotPool deleted").await {
                return Err(cleanup_error(ctx, &pool, e).await);
            }
        }
        if !arns.is_empty() {
            ctx.events.normal(pool.as_ref(), "Deleted", "StopTask", format!("stopped {} task(s)", arns.len())).await;
        }
    }
    for w in &workers {
        match workers_api.delete(&w.name_any(), &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Action::await_change())
}

async fn cleanup_error(ctx: &Context, pool: &HotPool, e: AwsError) -> ReconcileError {
    let mut status = pool.status.clone().unwrap_or_default();
    let msg = format!("cannot stop the pool's tasks: {e}; the finalizer stays until it succeeds");
    conditions::set_condition(
        &mut status.conditions,
        conditions::DELETION_BLOCKED,
        true,
        e.category.reason(),
        &msg,
        pool.meta().generation,
    );
    if let Some(ns) = pool.namespace() {
        let api: Api<HotPool> = Api::namespaced(ctx.client.clone(), &ns);
        if let Err(err) = write_status(&api, pool, &status, ctx).await {
            tracing::warn!(%err, "could not record DeletionBlocked");
        }
    }
    ReconcileError::Aws(e)
}
