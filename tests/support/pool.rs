//! A HotPool test setup on the real environment: a namespace and AWS account of its own, a
//! network, an ECS cluster, two worker task definitions, the operator in-process, and helpers that
//! wait on watches (or poll AWS, which has no watch).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::Duration;

use aws_sdk_ecs::types::{DesiredStatus, TaskField};
use fargate_operator::api::hot_pool::ClaimPhase;
use fargate_operator::api::{HotPool, HotPoolClaim, HotPoolWorker};
use fargate_operator::controller::hot_pool::inventory::task_cluster;
use fargate_operator::controller::hot_pool::plan::started_by;
use kube::ResourceExt;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::wait::await_condition;
use serde_json::json;

use super::operator::InProcessOperator;
use super::{TestCtx, fixtures};
pub const WAIT: Duration = Duration::from_secs(90);

pub struct Setup {
    pub ctx: TestCtx,
    pub ecs: aws_sdk_ecs::Client,
    pub net: fixtures::Network,
    pub cluster: String,
    /// Task definition ARNs of family `worker`, revisions 1 and 2.
    pub tds: Vec<String>,
    pub op: Option<InProcessOperator>,
    pub pools: Api<HotPool>,
    pub workers: Api<HotPoolWorker>,
    pub claims: Api<HotPoolClaim>,
}

impl Setup {
    pub async fn new(name: &str) -> Self {
        Self::with_faults(name, "").await
    }

    pub async fn with_faults(name: &str, faults: &str) -> Self {
        let ctx = TestCtx::new(name).await;
        let cfg = ctx.sdk_config().await;
        let net = fixtures::network(&cfg).await;
        let cluster = "workers".to_string();
        fixtures::ecs_cluster(&cfg, &cluster).await;
        let ecs = aws_sdk_ecs::Client::new(&cfg);
        let tds = vec![fixtures::worker_task_definition(&cfg).await, fixtures::worker_task_definition(&cfg).await];
        let op = Some(InProcessOperator::start_with_faults(&ctx, faults).await);
        let ns = ctx.namespace.clone();
        Self {
            pools: Api::namespaced(ctx.client.clone(), &ns),
            workers: Api::namespaced(ctx.client.clone(), &ns),
            claims: Api::namespaced(ctx.client.clone(), &ns),
            ctx,
            ecs,
            net,
            cluster,
            tds,
            op,
        }
    }

    pub fn op(&self) -> &InProcessOperator {
        self.op.as_ref().expect("operator running")
    }

    /// Kill the operator (no cleanup, like kill -9) once it has made an ECS `op` call that ended in
    /// `outcome`.
    pub async fn kill_operator_after(&mut self, op: &'static str, outcome: &'static str) {
        let metrics = self.op().metrics.clone();
        eventually(&format!("an ecs:{op} ending in {outcome}"), || {
            let m = metrics.clone();
            async move { m.aws_call_count("ecs", op, outcome) >= 1 }
        })
        .await;
        if let Some(op) = self.op.take() {
            op.kill().await;
        }
    }

    /// The example pool with this test's network, cluster and account, and `versions`.
    pub fn pool(&self, name: &str, versions: serde_json::Value, extra: serde_json::Value) -> HotPool {
        let mut v = super::yaml_docs("examples/hotpool.yaml").remove(0);
        v["metadata"] = json!({"name": name});
        v["spec"]["cluster"] = json!(self.cluster);
        v["spec"]["network"] = json!({"subnets": self.net.subnets, "securityGroups": [self.net.security_group]});
        v["spec"]["versions"] = versions;
        v["spec"]["aws"] = serde_json::to_value(self.ctx.aws_override()).expect("aws");
        if let Some(obj) = extra.as_object() {
            for (k, val) in obj {
                v["spec"][k] = val.clone();
            }
        }
        serde_json::from_value(v).expect("HotPool")
    }

    pub async fn create_pool(&self, pool: &HotPool) -> HotPool {
        self.pools.create(&PostParams::default(), pool).await.expect("create HotPool")
    }

    pub fn claim(&self, name: &str, pool: &str, version: &str) -> HotPoolClaim {
        serde_json::from_value(json!({
            "apiVersion": "fargate.operator.dev/v1alpha1", "kind": "HotPoolClaim",
            "metadata": {"name": name},
            "spec": {"pool": pool, "version": version, "client": format!("client-{name}")}
        }))
        .expect("HotPoolClaim")
    }

    pub async fn create_claim(&self, name: &str, pool: &str, version: &str) {
        self.claims.create(&PostParams::default(), &self.claim(name, pool, version)).await.expect("create claim");
    }

    pub async fn wait_pool(&self, name: &str, what: &str, pred: impl Fn(&HotPool) -> bool + Send + 'static) -> HotPool {
        let waited = tokio::time::timeout(
            WAIT,
            await_condition(self.pools.clone(), name, move |o: Option<&HotPool>| o.is_some_and(&pred)),
        )
        .await;
        match waited {
            Ok(found) => found.expect("watch").expect("object"),
            Err(_) => {
                let now = self.pools.get_opt(name).await.ok().flatten().and_then(|p| p.status);
                panic!("HotPool {name}: {what} not reached; status: {now:#?}")
            }
        }
    }

    /// Wait until the pool is Ready with exactly `available` idle and `claimed` claimed workers.
    pub async fn wait_counts(&self, name: &str, available: i32, claimed: i32) -> HotPool {
        self.wait_pool(name, &format!("available={available} claimed={claimed} Ready"), move |p| {
            let s = p.status.as_ref();
            s.and_then(|s| s.available) == Some(available)
                && s.and_then(|s| s.claimed) == Some(claimed)
                && s.and_then(|s| s.starting) == Some(0)
                && s.is_some_and(|s| s.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .await
    }

    pub async fn wait_claim(&self, name: &str, phase: ClaimPhase) -> HotPoolClaim {
        let cond =
            move |o: Option<&HotPoolClaim>| o.is_some_and(|c| c.status.as_ref().and_then(|s| s.phase) == Some(phase));
        tokio::time::timeout(WAIT, await_condition(self.claims.clone(), name, cond))
            .await
            .unwrap_or_else(|_| panic!("claim {name}: phase {phase:?} not reached"))
            .expect("watch")
            .expect("object")
    }

    pub async fn wait_worker_gone(&self, name: &str) {
        tokio::time::timeout(
            WAIT,
            await_condition(self.workers.clone(), name, |o: Option<&HotPoolWorker>| o.is_none()),
        )
        .await
        .unwrap_or_else(|_| panic!("worker {name} was not removed"))
        .expect("watch");
    }

    pub async fn pool_workers(&self, pool: &str) -> Vec<HotPoolWorker> {
        let lp = ListParams::default().labels(&format!("fargate.operator.dev/pool={pool}"));
        self.workers.list(&lp).await.expect("list workers").items
    }

    pub async fn uid(&self, pool: &str) -> String {
        self.pools.get(pool).await.expect("pool").uid().expect("uid")
    }

    /// Another ECS cluster in this test's account (for moving a pool there).
    pub async fn another_cluster(&self, name: &str) -> String {
        fixtures::ecs_cluster(&self.ctx.sdk_config().await, name).await;
        name.to_string()
    }

    /// ARNs of the pool's tasks with `desired` status (all of them when `None`), in every cluster of
    /// this test's account.
    pub async fn tasks(&self, pool_uid: &str, desired: Option<DesiredStatus>) -> BTreeSet<String> {
        let clusters = self.ecs.list_clusters().send().await.expect("ecs:ListClusters");
        let mut out = BTreeSet::new();
        for cluster in clusters.cluster_arns() {
            out.extend(self.tasks_in(cluster, pool_uid, desired.clone()).await);
        }
        out
    }

    /// ARNs of the pool's tasks in `cluster` with `desired` status (all of them when `None`).
    pub async fn tasks_in(&self, cluster: &str, pool_uid: &str, desired: Option<DesiredStatus>) -> BTreeSet<String> {
        let statuses = match desired {
            Some(d) => vec![d],
            None => vec![DesiredStatus::Running, DesiredStatus::Stopped],
        };
        let mut out = BTreeSet::new();
        for d in statuses {
            let mut token = None;
            loop {
                let page = self
                    .ecs
                    .list_tasks()
                    .cluster(cluster)
                    .started_by(started_by(pool_uid))
                    .desired_status(d.clone())
                    .set_next_token(token)
                    .send()
                    .await
                    .expect("ecs:ListTasks");
                out.extend(page.task_arns().iter().cloned());
                token = page.next_token().map(str::to_string);
                if token.is_none() {
                    break;
                }
            }
        }
        out
    }

    /// Start a task by hand in the test cluster as the pool `pool` would (its startedBy and
    /// network), with `tags`; returns its ARN.
    pub async fn run_task_by_hand(&self, pool: &HotPool, tags: &[(&str, String)]) -> String {
        let uid = pool.uid().expect("uid");
        let net = fargate_operator::aws::ecs_network::awsvpc(&pool.spec.network).expect("network");
        let tags: Vec<aws_sdk_ecs::types::Tag> =
            tags.iter().map(|(k, v)| aws_sdk_ecs::types::Tag::builder().key(*k).value(v).build()).collect();
        let out = self
            .ecs
            .run_task()
            .cluster(&self.cluster)
            .task_definition(&self.tds[0])
            .launch_type(aws_sdk_ecs::types::LaunchType::Fargate)
            .started_by(started_by(&uid))
            .network_configuration(net)
            .set_tags((!tags.is_empty()).then_some(tags))
            .send()
            .await
            .expect("ecs:RunTask by hand");
        out.tasks().first().and_then(|t| t.task_arn()).expect("task arn").to_string()
    }

    pub async fn task_state(&self, arn: &str) -> (String, Option<String>, BTreeMap<String, String>) {
        let out = self
            .ecs
            .describe_tasks()
            .cluster(task_cluster(arn).unwrap_or(&self.cluster))
            .tasks(arn)
            .include(TaskField::Tags)
            .send()
            .await
            .expect("ecs:DescribeTasks");
        let t = out.tasks().first().expect("task");
        let ip = t
            .attachments()
            .iter()
            .flat_map(|a| a.details())
            .find(|d| d.name() == Some("privateIPv4Address"))
            .and_then(|d| d.value())
            .map(str::to_string);
        (t.desired_status().unwrap_or_default().to_string(), ip, fixtures::ecs_tag_map(t.tags()))
    }

    /// Every running task of the pool is one worker's, and every worker has its own task. Waits for
    /// it (a pass may be between creating a worker and recording its task), failing after `WAIT`.
    pub async fn assert_one_task_per_worker(&self, pool: &str) -> Vec<HotPoolWorker> {
        let uid = self.uid(pool).await;
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let workers = self.pool_workers(pool).await;
            let arns: Vec<Option<String>> =
                workers.iter().map(|w| w.status.as_ref().and_then(|s| s.task_arn.clone())).collect();
            let distinct: BTreeSet<String> = arns.iter().flatten().cloned().collect();
            assert_eq!(distinct.len(), arns.iter().flatten().count(), "two workers share a task: {arns:?}");
            let running = self.tasks(&uid, Some(DesiredStatus::Running)).await;
            if arns.iter().all(Option::is_some) && running == distinct {
                return workers;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "running tasks and workers differ: workers {arns:?}, running {running:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Wait until the operator has counted `n` claims bound from `source` (metrics follow the write).
    pub async fn wait_bound_metric(&self, source: &'static str, n: u64) {
        let metrics = self.op().metrics.clone();
        eventually(&format!("{n} claim(s) bound from {source}"), || {
            let m = metrics.clone();
            async move { m.claims_bound_count(source) == n }
        })
        .await;
    }

    pub async fn finish(mut self) {
        if let Some(op) = self.op.take() {
            op.stop().await;
        }
        self.ctx.cleanup().await;
    }
}

/// Poll `check` (an AWS fact, which has no watch) every 200 ms until it holds.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "{what}: not reached within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub fn versions(s: &Setup, scale: &[(&str, usize, i32, bool)]) -> serde_json::Value {
    json!(
        scale
            .iter()
            .map(|(v, td, n, pooling)| json!({"version": v, "taskDefinition": s.tds[*td], "scaleTo": n, "port": 7000, "pooling": pooling}))
            .collect::<Vec<_>>()
    )
}
