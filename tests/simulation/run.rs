//! One run: an in-memory Kubernetes API server, a fresh model account, the real operator (one or
//! two replicas) with every AWS call answered by the model, and the steps applied in order, all on
//! the run's paused tokio clock (`main.rs`).
//!
//! The model's clock follows virtual time one to one: its durations are AWS's real seconds (tasks
//! start in 20 s, Route 53 changes propagate in 30 s, ECS reads lag by 1 to 3 s) and the operator's
//! timers are its real seconds. A faster model clock would need fewer passes per quiescent point,
//! but virtual seconds cost nothing by themselves: only passes cost CPU, and at one to one the
//! operator sees AWS take as long as it does. At each quiescent point faults go off, the run waits
//! (in virtual time) for every object to converge and checks the invariants (`invariants.rs`).

use std::time::Duration;

use fargate_operator::api::{DnsFailover, FargateApp, HotPool, HotPoolClaim, HotPoolWorker};
use fargate_operator::aws::model::FaultRates;
use fargate_operator::kube_model::KubeModel;
use fargate_operator::runtime::clock::{self, Instant};
use kube::Resource;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::invariants;
use super::steps::{AppSpec, CLAIMS, FailoverSpec, FaultLevel, OBJECTS, PoolSpec, Step};
use super::world::World;
use crate::support::TestCtx;
use crate::support::operator::InProcessOperator;

/// Kinds whose reconciles the per-pass call bound counts.
const KINDS: &[&str] = &["FargateApp", "DnsFailover", "HotPool", "HotPoolClaim", "HotPoolWorker"];
/// How long (virtual time) a quiescent point may wait for convergence before it is a failure (a
/// wedge or a loop). An hour: longer than any backoff (a terminal error retries after 10 minutes)
/// and any AWS delay of the model, and cheap, since waiting costs only the passes the operator
/// runs meanwhile. `SIM_CONVERGE_SECONDS` shortens it while shrinking by hand.
fn converge_within() -> Duration {
    let secs = std::env::var("SIM_CONVERGE_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3600);
    Duration::from_secs(secs)
}
/// How long (virtual time) a re-create may wait for the previous object's deletion: a service
/// drains in 30 s, tasks stop in 30 s, a terminal error retries after 10 minutes.
const DELETION_WITHIN: Duration = Duration::from_secs(1800);
/// How often the model's clock catches up with virtual time. Finer than the model's shortest
/// duration (DescribeTasks lags by 1 s), so its timing is not quantised into something else.
const MODEL_TICK: Duration = Duration::from_millis(100);
/// How often a quiescent point (and a re-create waiting for a deletion) reads the objects again.
const POLL: Duration = Duration::from_secs(1);
/// A `Wait { ms }` step lets `ms` times this much virtual time pass: 2 to 30 s, so that between
/// two quiescent points AWS sometimes finishes what the last steps started (tasks start in 20 s)
/// and sometimes does not, as it did when the model ran 250 times faster than the operator.
const WAIT_SCALE: u32 = 40;
/// How long two replicas run side by side in a `LeaderOverlap` step: long enough for both to run
/// their first passes and a few requeues (attempt timeouts, lag waits of 5 s) at once.
const OVERLAP: Duration = Duration::from_secs(5);

/// What the specs say now: the oracle the invariants compare AWS against.
#[derive(Clone, Debug, Default)]
pub struct Expect {
    /// FargateApp specs (None: absent or deleted).
    pub apps: Vec<Option<AppSpec>>,
    /// DnsFailover specs.
    pub failovers: Vec<Option<FailoverSpec>>,
    /// HotPool specs.
    pub pools: Vec<Option<PoolSpec>>,
    /// Claims: (pool, version).
    pub claims: Vec<Option<(u8, u8)>>,
}

/// Counters of a finished run.
#[derive(Clone, Copy, Debug, Default)]
pub struct Report {
    /// Steps run (quiescent points excluded).
    pub steps: usize,
    /// Quiescent points checked.
    pub quiescent_points: usize,
    /// Operator restarts (crashes and leader changes).
    pub restarts: usize,
    /// AWS calls answered by the model.
    pub aws_calls: u64,
    /// Reconcile passes of every replica.
    pub passes: u64,
    /// Workers whose pool was gone, deleted by the harness as the garbage collector would.
    pub orphans_collected: usize,
    /// Virtual time the run took.
    pub virtual_time: Duration,
    /// Writes the API server took (its last resourceVersion).
    pub kube_writes: u64,
    /// The longest a quiescent point waited for convergence (virtual time).
    pub longest_quiesce: Duration,
}

/// A run in progress.
pub struct Sim {
    pub ctx: TestCtx,
    /// The in-memory API server `ctx.client` talks to.
    pub kube: KubeModel,
    pub world: World,
    ops: Vec<InProcessOperator>,
    pub expect: Expect,
    level: FaultLevel,
    /// Panics and passes of replicas already killed.
    pub gone_panics: u64,
    gone_passes: u64,
    pub report: Report,
    clock: tokio::task::JoinHandle<()>,
    started: Instant,
}

fn rates(level: FaultLevel) -> FaultRates {
    match level {
        FaultLevel::Off => FaultRates::default(),
        FaultLevel::Low => FaultRates {
            throttle: 0.02,
            server_error: 0.02,
            lost: 0.02,
            slow: 0.05,
            slow_max: Duration::from_millis(300),
            hang: 0.005,
        },
        FaultLevel::High => FaultRates {
            throttle: 0.08,
            server_error: 0.06,
            lost: 0.06,
            slow: 0.15,
            slow_max: Duration::from_millis(600),
            hang: 0.02,
        },
    }
}

impl Sim {
    /// A fresh API server and account for `seed`, with one replica running. Call inside the run's
    /// runtime, its clock paused.
    pub async fn start(seed: u64) -> Self {
        // `SIM_LOG=debug` (any tracing filter) shows the operator's log while replaying a failure.
        if let Ok(filter) = std::env::var("SIM_LOG") {
            fargate_operator::runtime::telemetry::init(fargate_operator::config::LogFormat::Text, &filter);
        }
        let kube = KubeModel::new();
        // No garbage collector, as on the test apiserver before: a worker left behind by its
        // pool's deletion stays for `collect_garbage` to count (a collector would hide the leak).
        kube.set_garbage_collection(false);
        let ctx = TestCtx::in_memory(&format!("sim-{seed}"), kube.client());
        let world = World::new(seed).await;
        let model = world.model.clone();
        let clock = tokio::spawn(async move {
            let mut last = Instant::now();
            loop {
                tokio::time::sleep(MODEL_TICK).await;
                let now = Instant::now();
                model.advance(now - last);
                last = now;
            }
        });
        let n = usize::from(OBJECTS);
        let expect = Expect {
            apps: vec![None; n],
            failovers: vec![None; n],
            pools: vec![None; n],
            claims: vec![None; usize::from(CLAIMS)],
        };
        let mut sim = Self {
            ctx,
            kube,
            world,
            ops: Vec::new(),
            expect,
            level: FaultLevel::Off,
            gone_panics: 0,
            gone_passes: 0,
            report: Report::default(),
            clock,
            started: Instant::now(),
        };
        sim.start_replica().await;
        sim
    }

    async fn start_replica(&mut self) {
        let source = std::sync::Arc::new(self.world.model.clone());
        // Timers in virtual seconds, as the model's. Resync at its minimum, so that a pass that
        // forgot to requeue is still retried; the AWS attempt timeout short, so a hung call (the
        // model's `hang` fault) costs one second; the ECS read lag just above the model's (3 s,
        // world.rs), so the margin the operator keeps is tested tight rather than at the
        // production default of 60 s.
        let op = InProcessOperator::start_with_source_and_client(
            &self.ctx,
            source,
            &["--resync-seconds", "10", "--aws-attempt-timeout-seconds", "1", "--ecs-read-lag-seconds", "5"],
            self.ctx.client.clone(),
        )
        .await;
        self.ops.push(op);
    }

    async fn kill_oldest(&mut self) {
        if self.ops.is_empty() {
            return;
        }
        let op = self.ops.remove(0);
        self.gone_panics += KINDS.iter().map(|k| op.metrics.panic_count(k)).sum::<u64>();
        self.gone_passes += KINDS.iter().map(|k| op.metrics.reconcile_count(k)).sum::<u64>();
        op.kill().await;
        self.report.restarts += 1;
    }

    /// Panics caught in any replica so far.
    pub fn panics(&self) -> u64 {
        self.gone_panics
            + self.ops.iter().map(|op| KINDS.iter().map(|k| op.metrics.panic_count(k)).sum::<u64>()).sum::<u64>()
    }

    /// Passes of every replica so far.
    pub fn passes(&self) -> u64 {
        self.gone_passes
            + self.ops.iter().map(|op| KINDS.iter().map(|k| op.metrics.reconcile_count(k)).sum::<u64>()).sum::<u64>()
    }

    /// Successful `service:operation` calls of the replicas running now.
    pub fn calls(&self, service: &str, operation: &str) -> u64 {
        self.ops.iter().map(|op| op.metrics.aws_call_count(service, operation, "success")).sum()
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope> + Clone + DeserializeOwned + std::fmt::Debug,
        K::DynamicType: Default,
    {
        Api::namespaced(self.ctx.client.clone(), &self.ctx.namespace)
    }

    /// Run one step; an `Err` is an invariant that does not hold.
    pub async fn step(&mut self, step: &Step) -> Result<(), String> {
        match step {
            Step::App { i, spec } => {
                let manifest = self.world.app(*i, spec);
                self.apply::<FargateApp>(manifest).await?;
                self.expect.apps[usize::from(*i)] = Some(*spec);
            }
            Step::Failover { i, spec } => {
                let manifest = self.world.failover(*i, spec);
                self.apply::<DnsFailover>(manifest).await?;
                self.expect.failovers[usize::from(*i)] = Some(*spec);
            }
            Step::Pool { i, spec } => {
                let manifest = self.world.pool(*i, spec);
                self.apply::<HotPool>(manifest).await?;
                self.expect.pools[usize::from(*i)] = Some(*spec);
            }
            Step::DeleteApp { i } => {
                self.delete::<FargateApp>(&format!("app{i}")).await?;
                self.expect.apps[usize::from(*i)] = None;
            }
            Step::DeleteFailover { i } => {
                self.delete::<DnsFailover>(&format!("dr{i}")).await?;
                self.expect.failovers[usize::from(*i)] = None;
            }
            Step::DeletePool { i } => {
                self.delete::<HotPool>(&format!("pool{i}")).await?;
                self.expect.pools[usize::from(*i)] = None;
            }
            Step::Claim { i, pool, version } => self.claim(*i, *pool, *version).await?,
            Step::RenewClaim { i } => {
                let now = clock::now().to_string();
                let patch = json!({"spec": {"renewedAt": now}});
                // A claim that does not exist (or is going away) is simply not renewed.
                let _ = self
                    .api::<HotPoolClaim>()
                    .patch(&format!("claim{i}"), &PatchParams::default(), &Patch::Merge(patch))
                    .await;
            }
            Step::Release { i } => {
                self.delete::<HotPoolClaim>(&format!("claim{i}")).await?;
                self.expect.claims[usize::from(*i)] = None;
            }
            Step::TaskDies { pick } => {
                let foreign = &self.world.foreign.task_arn;
                let running: Vec<String> = self
                    .world
                    .model
                    .ecs
                    .tasks()
                    .into_iter()
                    .filter(|t| t.task.desired_status == "RUNNING" && &t.task.arn != foreign)
                    .map(|t| t.task.arn)
                    .collect();
                if !running.is_empty() {
                    let arn = &running[usize::from(*pick) % running.len()];
                    self.world.model.ecs.stop_task_on_its_own(arn, "Essential container in task exited");
                }
            }
            Step::HealthFlip { pick, healthy } => {
                let checks = self.world.model.route53.health_checks();
                if !checks.is_empty() {
                    let id = &checks[usize::from(*pick) % checks.len()].id;
                    self.world.model.route53.set_health(id, *healthy);
                }
            }
            Step::Faults { level } => {
                self.level = *level;
                self.world.model.set_faults(rates(*level));
            }
            Step::Wait { ms } => tokio::time::sleep(Duration::from_millis(u64::from(*ms)) * WAIT_SCALE).await,
            Step::AnswersLost { ms } => {
                self.world.model.set_faults(FaultRates { lost: 1.0, ..FaultRates::default() });
                tokio::time::sleep(Duration::from_millis(u64::from(*ms)) * WAIT_SCALE).await;
                self.world.model.set_faults(rates(self.level));
            }
            Step::Crash => {
                self.kill_oldest().await;
                self.start_replica().await;
            }
            Step::LeaderOverlap => {
                // Two replicas act at once for a moment, as during a rolling upgrade.
                self.start_replica().await;
                tokio::time::sleep(OVERLAP).await;
                self.kill_oldest().await;
            }
            Step::ListenerOutage { listener } => self.world.listener_outage(*listener),
            Step::RevokeRole { team } => {
                self.world.model.sts.revoke_role(&super::world::team_role(*team));
            }
            Step::Quiesce => {
                self.quiesce().await?;
                self.report.quiescent_points += 1;
            }
        }
        if *step != Step::Quiesce {
            self.report.steps += 1;
        }
        Ok(())
    }

    /// Create or replace an object's spec, as `kubectl apply --server-side` does. An object still
    /// being deleted is waited for first (a user re-creating it gets a new object).
    async fn apply<K>(&self, manifest: Value) -> Result<(), String>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + serde::Serialize
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        let api = self.api::<K>();
        let name = manifest["metadata"]["name"].as_str().unwrap_or_default().to_string();
        self.wait_deleted(&api, &name).await?;
        let params = PatchParams::apply("sim").force();
        api.patch(&name, &params, &Patch::Apply(&manifest))
            .await
            .map(|_| ())
            .map_err(|e| format!("apply {name} was refused: {e}"))
    }

    async fn wait_deleted<K>(&self, api: &Api<K>, name: &str) -> Result<(), String>
    where
        K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
    {
        let started = Instant::now();
        loop {
            match api.get_opt(name).await {
                Ok(Some(o)) if o.meta().deletion_timestamp.is_some() => {
                    // A deletion blocked by a refused role finishes only once the role is fixed:
                    // the harness fixes it, as the team would, rather than wait for the next
                    // quiescent point.
                    for team in 0..OBJECTS {
                        self.world.model.sts.restore_role(&super::world::team_role(team));
                    }
                }
                Ok(_) => return Ok(()),
                Err(e) => return Err(format!("read {name}: {e}")),
            }
            if started.elapsed() > DELETION_WITHIN {
                return Err(format!("deletion of {name} wedged: still there after {DELETION_WITHIN:?}"));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn delete<K>(&self, name: &str) -> Result<(), String>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope> + Clone + DeserializeOwned + std::fmt::Debug,
        K::DynamicType: Default,
    {
        match self.api::<K>().delete(name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(format!("delete {name}: {e}")),
        }
    }

    async fn claim(&mut self, i: u8, pool: u8, version: u8) -> Result<(), String> {
        let api = self.api::<HotPoolClaim>();
        let name = format!("claim{i}");
        if api.get_opt(&name).await.map_err(|e| e.to_string())?.is_some() {
            // A claim's spec is fixed: a client with a claim keeps it.
            return Ok(());
        }
        let claim: HotPoolClaim = serde_json::from_value(json!({
            "apiVersion": "fargate.operator.dev/v1alpha1", "kind": "HotPoolClaim",
            "metadata": {"name": name},
            "spec": {"pool": format!("pool{pool}"), "version": version.to_string(), "client": format!("client{i}")}
        }))
        .map_err(|e| e.to_string())?;
        api.create(&PostParams::default(), &claim).await.map_err(|e| format!("create {name}: {e}"))?;
        self.expect.claims[usize::from(i)] = Some((pool, version));
        Ok(())
    }

    /// Faults off; wait (virtual time) until every object is Ready and AWS matches the specs; check
    /// the safety invariants whenever the objects are Ready; faults back on. Nothing prods the
    /// operator: on virtual time its own requeues, resyncs and backoffs cost no wall-clock time, so
    /// (unlike the real-time harness, which touched every object every 2 s) convergence is the
    /// operator's alone.
    async fn quiesce(&mut self) -> Result<(), String> {
        self.world.model.set_faults(FaultRates::default());
        self.world.restore_listeners();
        for team in 0..OBJECTS {
            self.world.model.sts.restore_role(&super::world::team_role(team));
        }
        self.collect_garbage().await;
        let started = Instant::now();
        let (trace, mut last_trace) = (std::env::var_os("SIM_TRACE").is_some(), Instant::now());
        loop {
            tokio::time::sleep(POLL).await;
            let waiting = self.unconverged().await;
            let waiting = if waiting.is_empty() {
                invariants::safety(self).await?;
                match invariants::converged(self).await {
                    Ok(()) => break,
                    Err(why) => vec![why],
                }
            } else {
                waiting
            };
            if started.elapsed() > converge_within() {
                return Err(format!("not converged after {:?}: {}", converge_within(), waiting.join("; ")));
            }
            // `SIM_TRACE`: what a long quiescent point waits for, every minute of virtual time.
            if trace && last_trace.elapsed() > Duration::from_secs(60) {
                eprintln!(
                    "{} {} quiescent for {:?}, waiting: {}",
                    clock::now(),
                    self.ctx.namespace,
                    started.elapsed(),
                    waiting.join("; ")
                );
                last_trace = Instant::now();
            }
        }
        self.report.aws_calls = self.world.model.calls();
        self.report.passes = self.passes();
        self.report.longest_quiesce = self.report.longest_quiesce.max(started.elapsed());
        self.world.model.set_faults(rates(self.level));
        Ok(())
    }

    /// What the kube-controller-manager's garbage collector does in a real cluster, which the
    /// in-memory API server is told not to do (`Sim::start`): delete workers whose owning pool (by
    /// uid) is gone. Counted in the report, since each is a row the pool's own deletion did not
    /// remove.
    async fn collect_garbage(&mut self) {
        let pools: Vec<String> = match self.api::<HotPool>().list(&Default::default()).await {
            Ok(l) => l.items.into_iter().filter_map(|p| p.metadata.uid).collect(),
            Err(_) => return,
        };
        let workers = self.api::<HotPoolWorker>();
        let Ok(list) = workers.list(&Default::default()).await else { return };
        for w in list.items {
            let owners: Vec<&str> = w.metadata.owner_references.iter().flatten().map(|o| o.uid.as_str()).collect();
            if !owners.is_empty() && owners.iter().all(|o| !pools.iter().any(|p| p == o)) {
                let name = w.metadata.name.clone().unwrap_or_default();
                if workers.delete(&name, &DeleteParams::default()).await.is_ok() {
                    self.report.orphans_collected += 1;
                }
            }
        }
    }

    /// Objects that have not converged, each as `name: why`.
    async fn unconverged(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (i, spec) in self.expect.apps.iter().enumerate() {
            out.extend(converged(&self.api::<FargateApp>(), &format!("app{i}"), spec.is_some(), |s| &s.status).await);
        }
        for (i, spec) in self.expect.failovers.iter().enumerate() {
            out.extend(converged(&self.api::<DnsFailover>(), &format!("dr{i}"), spec.is_some(), |s| &s.status).await);
        }
        for (i, spec) in self.expect.pools.iter().enumerate() {
            out.extend(converged(&self.api::<HotPool>(), &format!("pool{i}"), spec.is_some(), |s| &s.status).await);
        }
        out
    }

    /// Stop every replica and the clock. The API server and the model go with the run.
    pub async fn finish(mut self) -> Report {
        while !self.ops.is_empty() {
            let op = self.ops.remove(0);
            op.kill().await;
        }
        self.clock.abort();
        self.report.virtual_time = self.started.elapsed();
        self.report.kube_writes = self.kube.resource_version();
        self.report
    }
}

/// Readiness of one object as the status says it: `Ready=True` for this generation, or gone
/// when it should be.
async fn converged<K, S>(
    api: &Api<K>,
    name: &str,
    should_exist: bool,
    status: impl Fn(&K) -> &Option<S>,
) -> Option<String>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
    S: fargate_operator::runtime::status::ObjectStatus + serde::Serialize,
{
    let obj = match api.get_opt(name).await {
        Ok(o) => o,
        Err(e) => return Some(format!("{name}: read failed: {e}")),
    };
    match (obj, should_exist) {
        (None, false) => None,
        (Some(_), false) => Some(format!("{name}: still being deleted")),
        (None, true) => Some(format!("{name}: missing")),
        (Some(o), true) => {
            let generation = o.meta().generation;
            let ready = status(&o).as_ref().and_then(|s| s.conditions().iter().find(|c| c.type_ == "Ready").cloned());
            match ready {
                Some(c) if c.status == "True" && c.observed_generation == generation => None,
                Some(c) => Some(format!(
                    "{name}: Ready={} {} {} (for generation {:?}; the object is at {generation:?})",
                    c.status, c.reason, c.message, c.observed_generation
                )),
                None => {
                    let status = serde_json::to_value(status(&o)).unwrap_or_default();
                    Some(format!("{name}: no Ready condition yet, status {status}"))
                }
            }
        }
    }
}
