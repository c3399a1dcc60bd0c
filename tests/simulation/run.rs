//! One run: a namespace on the real apiserver, a fresh model account, the real operator (one or two
//! replicas) with every AWS call answered by the model, and the steps applied in order. The model's
//! clock moves 250 times faster than real time; at each quiescent point faults go off, the run waits
//! for every object to converge and checks the invariants (`invariants.rs`).

use std::time::{Duration, Instant};

use fargate_operator::api::{DnsFailover, FargateApp, HotPool, HotPoolClaim, HotPoolWorker};
use fargate_operator::aws::model::FaultRates;
use k8s_openapi::jiff::Timestamp;
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
/// How long a quiescent point may wait for convergence before it is a failure (a wedge or a loop).
/// `SIM_CONVERGE_SECONDS` shortens it while shrinking by hand.
fn converge_within() -> Duration {
    let secs = std::env::var("SIM_CONVERGE_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(150);
    Duration::from_secs(secs)
}
/// How long a re-create may wait for the previous object's deletion.
const DELETION_WITHIN: Duration = Duration::from_secs(90);

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
}

/// A run in progress.
pub struct Sim {
    pub ctx: TestCtx,
    pub world: World,
    ops: Vec<InProcessOperator>,
    pub expect: Expect,
    level: FaultLevel,
    /// Panics and passes of replicas already killed.
    pub gone_panics: u64,
    gone_passes: u64,
    pub report: Report,
    clock: tokio::task::JoinHandle<()>,
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
    /// A fresh namespace and account for `seed`, with one replica running.
    pub async fn start(seed: u64) -> Self {
        // `SIM_LOG=debug` (any tracing filter) shows the operator's log while replaying a failure.
        if let Ok(filter) = std::env::var("SIM_LOG") {
            fargate_operator::runtime::telemetry::init(fargate_operator::config::LogFormat::Text, &filter);
        }
        let ctx = TestCtx::new(&format!("sim-{seed}")).await;
        let world = World::new(seed).await;
        let model = world.model.clone();
        let clock = tokio::spawn(async move {
            loop {
                model.advance(Duration::from_secs(5));
                tokio::time::sleep(Duration::from_millis(20)).await;
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
            world,
            ops: Vec::new(),
            expect,
            level: FaultLevel::Off,
            gone_panics: 0,
            gone_passes: 0,
            report: Report::default(),
            clock,
        };
        sim.start_replica().await;
        sim
    }

    async fn start_replica(&mut self) {
        let source = std::sync::Arc::new(self.world.model.clone());
        // Resync at its minimum, so that a pass that forgot to requeue is still retried.
        let op = InProcessOperator::start_with_source(
            &self.ctx,
            source,
            &[
                "--resync-seconds",
                "10",
                "--aws-attempt-timeout-seconds",
                "1",
                // The model's ECS reads lag by up to 3 s of real time (world.rs).
                "--ecs-read-lag-seconds",
                "5",
            ],
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

    fn api<K>(&self) -> Api<K>
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
                let now = Timestamp::now().to_string();
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
            Step::Wait { ms } => tokio::time::sleep(Duration::from_millis(u64::from(*ms))).await,
            Step::Crash => {
                self.kill_oldest().await;
                self.start_replica().await;
            }
            Step::LeaderOverlap => {
                // Two replicas act at once for a moment, as during a rolling upgrade.
                self.start_replica().await;
                tokio::time::sleep(Duration::from_millis(700)).await;
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
            self.poke::<K>(api, name).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
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

    /// Touch an object's annotations so the operator runs a pass now: the real-time requeue delays
    /// (progress polls of 15 s) would otherwise take most of the run's wall-clock budget.
    async fn poke<K>(&self, api: &Api<K>, name: &str)
    where
        K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
    {
        let patch =
            json!({"metadata": {"annotations": {"sim.fargate.operator.dev/poke": Timestamp::now().to_string()}}});
        let _ = api.patch(name, &PatchParams::default(), &Patch::Merge(patch)).await;
    }

    /// Faults off; wait until every object is Ready and AWS matches the specs (poking every object
    /// so each observes the world afresh); check the safety invariants whenever the objects are
    /// Ready; faults back on.
    async fn quiesce(&mut self) -> Result<(), String> {
        self.world.model.set_faults(FaultRates::default());
        self.world.restore_listeners();
        for team in 0..OBJECTS {
            self.world.model.sts.restore_role(&super::world::team_role(team));
        }
        self.collect_garbage().await;
        let started = Instant::now();
        let mut last_poke = None::<Instant>;
        let (trace, mut last_trace) = (std::env::var_os("SIM_TRACE").is_some(), Instant::now());
        loop {
            if last_poke.is_none_or(|t| t.elapsed() > Duration::from_secs(2)) {
                self.poke_all().await;
                last_poke = Some(Instant::now());
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
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
            // `SIM_TRACE`: what a long quiescent point waits for, every 10 s.
            if trace && last_trace.elapsed() > Duration::from_secs(10) {
                eprintln!(
                    "{} quiescent for {:?}, waiting: {}",
                    self.ctx.namespace,
                    started.elapsed(),
                    waiting.join("; ")
                );
                last_trace = Instant::now();
            }
        }
        self.report.aws_calls = self.world.model.calls();
        self.report.passes = self.passes();
        self.world.model.set_faults(rates(self.level));
        Ok(())
    }

    /// What the kube-controller-manager's garbage collector does in a real cluster, which the test
    /// apiserver does not run: delete workers whose owning pool (by uid) is gone. Counted in the
    /// report, since each is a row the pool's own deletion did not remove.
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

    /// Poke every object, those being deleted too (a deletion blocked on a terminal error, e.g. a
    /// revoked role, retries only after 10 minutes otherwise).
    async fn poke_all(&self) {
        for i in 0..OBJECTS {
            self.poke(&self.api::<FargateApp>(), &format!("app{i}")).await;
            self.poke(&self.api::<DnsFailover>(), &format!("dr{i}")).await;
            self.poke(&self.api::<HotPool>(), &format!("pool{i}")).await;
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

    /// Stop every replica and the clock; delete the namespace.
    pub async fn finish(mut self) -> Report {
        while !self.ops.is_empty() {
            let op = self.ops.remove(0);
            op.kill().await;
        }
        self.clock.abort();
        let report = self.report;
        self.ctx.cleanup().await;
        report
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
