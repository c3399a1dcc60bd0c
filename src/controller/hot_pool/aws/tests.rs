//! `PoolAws` against a small hand-written [`EcsApi`] that shows what moto does not: RunTask
//! starting fewer tasks than asked (with failure reasons), a RunTask response lost after ECS
//! started the tasks (and the same client token answering those tasks again), ListTasks and
//! DescribeTasks lagging behind each other, and a cluster deleted under recorded tasks.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use aws_sdk_ecs::types::{AwsVpcConfiguration, NetworkConfiguration};

use super::super::plan::{self, WorkerStep, fixtures};
use super::*;
use crate::api::hot_pool::WorkerPhase;
use crate::aws::api::ApiFuture;
use crate::aws::api::ecs::{
    CreateServiceRequest, EcsService, Page, RegisterTaskDefinitionRequest, RunTaskOutcome, TaskDefinitionRevision,
    TaskFailure, UpdateServiceRequest,
};
use crate::aws::{BudgetSettings, Budgets, Classified, ErrorCategory, RetryPolicy};
use crate::runtime::metrics::Metrics;

const CLUSTER: &str = "apps";

fn error(category: ErrorCategory, code: &str, message: &str) -> Classified {
    Classified { category, code: code.into(), message: message.into() }
}

fn no_cluster() -> Classified {
    error(ErrorCategory::NotFound, "ClusterNotFoundException", "Cluster not found.")
}

fn arn(cluster: &str, id: &str) -> String {
    format!("arn:aws:ecs:us-east-1:123456789012:task/{cluster}/{id}")
}

/// What the fake ECS knows and what it was asked.
#[derive(Debug, Default)]
struct State {
    /// Tasks a RunTask with a new token can still start; the rest fail for capacity.
    capacity: usize,
    /// Drop the answer of the next RunTask after starting its tasks (as a timeout would).
    lose_next_answer: bool,
    /// RunTask answers by client token: a repeated token answers the first call's tasks.
    by_token: BTreeMap<String, RunTaskOutcome>,
    /// Tasks started so far.
    started: usize,
    /// Each RunTask request, in order.
    run_requests: Vec<RunTaskRequest>,
    /// Tasks DescribeTasks answers, by ARN (a task started a moment ago may not be here yet).
    described: BTreeMap<String, EcsTask>,
    /// ARNs ListTasks answers, two per page (a task started a moment ago may not be here yet).
    listed: Vec<String>,
    /// Clusters that were deleted.
    gone: BTreeSet<String>,
    /// Each DescribeTasks request: cluster and number of ARNs.
    describe_requests: Vec<(String, usize)>,
}

#[derive(Debug, Default)]
struct FakeEcs(Mutex<State>);

impl FakeEcs {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap()
    }

    fn cluster_exists(&self, cluster: &str) -> Result<(), Classified> {
        if self.state().gone.contains(cluster) { Err(no_cluster()) } else { Ok(()) }
    }
}

fn unused<'a, T: Send + 'a>() -> ApiFuture<'a, T> {
    Box::pin(async { Err(error(ErrorCategory::Terminal, "NotInThisFake", "the pool does not call this")) })
}

impl EcsApi for FakeEcs {
    fn describe_services<'a>(&'a self, _: &'a str, _: &'a [String]) -> ApiFuture<'a, Vec<EcsService>> {
        unused()
    }
    fn create_service<'a>(&'a self, _: &'a CreateServiceRequest) -> ApiFuture<'a, EcsService> {
        unused()
    }
    fn update_service<'a>(&'a self, _: &'a UpdateServiceRequest) -> ApiFuture<'a, ()> {
        unused()
    }
    fn delete_service<'a>(&'a self, _: &'a str, _: &'a str) -> ApiFuture<'a, ()> {
        unused()
    }
    fn register_task_definition<'a>(
        &'a self,
        _: &'a RegisterTaskDefinitionRequest,
    ) -> ApiFuture<'a, TaskDefinitionRevision> {
        unused()
    }
    fn describe_task_definition<'a>(&'a self, _: &'a str, _: bool) -> ApiFuture<'a, TaskDefinitionRevision> {
        unused()
    }
    fn list_task_definitions<'a>(&'a self, _: &'a str, _: Option<&'a str>) -> ApiFuture<'a, Page> {
        unused()
    }
    fn deregister_task_definition<'a>(&'a self, _: &'a str) -> ApiFuture<'a, ()> {
        unused()
    }
    fn stop_task<'a>(&'a self, _: &'a str, _: &'a str, _: &'a str) -> ApiFuture<'a, ()> {
        unused()
    }

    fn run_task<'a>(&'a self, req: &'a RunTaskRequest) -> ApiFuture<'a, RunTaskOutcome> {
        Box::pin(async move {
            self.cluster_exists(&req.cluster)?;
            let mut s = self.state();
            s.run_requests.push(req.clone());
            if !s.by_token.contains_key(&req.client_token) {
                let mut outcome = RunTaskOutcome::default();
                for _ in 0..req.count {
                    if s.capacity == 0 {
                        let reason = "Capacity is unavailable at this time".to_string();
                        outcome.failures.push(TaskFailure { reason, ..Default::default() });
                        continue;
                    }
                    s.capacity -= 1;
                    s.started += 1;
                    let task = EcsTask {
                        arn: arn(&req.cluster, &format!("t{}", s.started)),
                        last_status: "PROVISIONING".into(),
                        desired_status: "RUNNING".into(),
                        started_by: req.started_by.clone(),
                        tags: req.tags.clone(),
                        ..Default::default()
                    };
                    outcome.tasks.push(task);
                }
                s.by_token.insert(req.client_token.clone(), outcome);
            }
            if std::mem::take(&mut s.lose_next_answer) {
                return Err(error(ErrorCategory::Transient, "Timeout", "the answer was lost"));
            }
            Ok(s.by_token[&req.client_token].clone())
        })
    }

    fn list_tasks<'a>(&'a self, cluster: &'a str, _: &'a str, next_token: Option<&'a str>) -> ApiFuture<'a, Page> {
        Box::pin(async move {
            self.cluster_exists(cluster)?;
            let s = self.state();
            let from: usize = next_token.map_or(Ok(0), str::parse).unwrap_or(0);
            let arns: Vec<String> = s.listed.iter().skip(from).take(2).cloned().collect();
            let next = from + arns.len();
            Ok(Page { arns, next_token: (next < s.listed.len()).then(|| next.to_string()) })
        })
    }

    fn describe_tasks<'a>(&'a self, cluster: &'a str, tasks: &'a [String]) -> ApiFuture<'a, Vec<EcsTask>> {
        Box::pin(async move {
            self.state().describe_requests.push((cluster.to_string(), tasks.len()));
            self.cluster_exists(cluster)?;
            let s = self.state();
            Ok(tasks.iter().filter_map(|a| s.described.get(a).cloned()).collect())
        })
    }
}

fn pool(fake: &Arc<FakeEcs>) -> (PoolAws, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new());
    let budgets = Budgets::new(BudgetSettings { ecs_rps: 1000.0, ..BudgetSettings::default() });
    let caller = AwsCaller::new(budgets, metrics.clone(), RetryPolicy::default());
    (PoolAws { caller, ecs: fake.clone(), cluster: CLUSTER.into() }, metrics)
}

fn network() -> NetworkConfiguration {
    let vpc = AwsVpcConfiguration::builder().subnets("subnet-1").build().unwrap();
    NetworkConfiguration::builder().awsvpc_configuration(vpc).build()
}

/// RunTask for `count` workers with launch token `token` (also the launch tag, as launch.rs does).
async fn launch(aws: &PoolAws, token: &str, count: usize) -> Result<Launched, AwsError> {
    let tags = BTreeMap::from([(TAG_LAUNCH.to_string(), token.to_string()), ("owner".into(), "me".into())]);
    let network = network();
    let req = LaunchRequest {
        task_definition_arn: "arn:aws:ecs:us-east-1:123456789012:task-definition/w:1",
        count,
        token,
        started_by: "hotpool-1",
        tags: &tags,
        network: &network,
    };
    aws.run_tasks(&req).await
}

fn workers(names: &[(&str, bool)]) -> Vec<(String, bool)> {
    names.iter().map(|(n, reserved)| (n.to_string(), *reserved)).collect()
}

#[tokio::test(start_paused = true)]
async fn a_partial_run_task_pairs_the_started_tasks_and_reports_each_failure() {
    let fake = Arc::new(FakeEcs::default());
    fake.state().capacity = 2;
    let (aws, _) = pool(&fake);

    let launched = launch(&aws, "tok-1", 3).await.expect("RunTask answered");

    assert_eq!(launched.tasks.len(), 2);
    assert!(launched.tasks.iter().all(|t| t.launch_tag.as_deref() == Some("tok-1")), "{launched:?}");
    assert_eq!(launched.failures, ["Capacity is unavailable at this time"]);
    let sent = &fake.state().run_requests[0];
    assert_eq!((sent.cluster.as_str(), sent.count, sent.client_token.as_str()), (CLUSTER, 3, "tok-1"));
    // The reserved worker gets a task first; one of the plain workers is left without one.
    let paired = plan::pair_launched(
        &workers(&[("w-a", false), ("w-b", false), ("w-c", true)]),
        "tok-1",
        &launched.tasks,
        &BTreeSet::new(),
    );
    let names: Vec<&str> = paired.iter().map(|(w, _)| w.as_str()).collect();
    assert_eq!(names, ["w-c", "w-a"]);
    let tasks: BTreeSet<&str> = paired.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(tasks.len(), 2, "each task goes to one worker: {paired:?}");
}

#[tokio::test(start_paused = true)]
async fn a_lost_run_task_answer_is_not_resent_and_the_same_token_gets_the_first_tasks_back() {
    let fake = Arc::new(FakeEcs::default());
    {
        let mut s = fake.state();
        s.capacity = 10;
        s.lose_next_answer = true;
    }
    let (aws, metrics) = pool(&fake);

    let err = launch(&aws, "tok-1", 2).await.expect_err("the answer was lost");
    assert_eq!((err.category, err.code.as_str()), (ErrorCategory::Transient, "Timeout"));
    assert_eq!(fake.state().run_requests.len(), 1, "a RunTask whose answer was lost is not sent again at once");
    assert_eq!(metrics.aws_call_count("ecs", "RunTask", "transient"), 1);
    assert_eq!(fake.state().started, 2, "ECS started the tasks all the same");

    // The next pass: launch recovery recorded one of the two tasks by its launch tag; the other
    // worker repeats RunTask with the same token and gets the first call's tasks, not new ones.
    let recovered = arn(CLUSTER, "t1");
    let again = launch(&aws, "tok-1", 1).await.expect("RunTask answered");
    assert_eq!(fake.state().started, 2, "no task started twice");
    let paired = plan::pair_launched(&workers(&[("w-b", false)]), "tok-1", &again.tasks, &BTreeSet::from([recovered]));
    assert_eq!(paired, [("w-b".to_string(), arn(CLUSTER, "t2"))]);
}

fn task(arn: &str, last: &str) -> EcsTask {
    EcsTask { arn: arn.into(), last_status: last.into(), desired_status: "RUNNING".into(), ..Default::default() }
}

#[tokio::test(start_paused = true)]
async fn lagging_lists_and_a_deleted_old_cluster_lose_no_worker() {
    let fake = Arc::new(FakeEcs::default());
    let (old, listed_only, described_only, both, gone) =
        (arn("old", "o1"), arn(CLUSTER, "a1"), arn(CLUSTER, "a2"), arn(CLUSTER, "a3"), arn(CLUSTER, "a4"));
    {
        let mut s = fake.state();
        s.gone.insert("old".into());
        // a1 started a moment ago: ListTasks has it, DescribeTasks not yet. a2: the other way round.
        s.listed = vec![listed_only.clone(), both.clone(), arn(CLUSTER, "a5")];
        s.described.insert(described_only.clone(), task(&described_only, "PENDING"));
        s.described.insert(both.clone(), task(&both, "RUNNING"));
    }
    let (aws, _) = pool(&fake);

    let running = aws.running_task_arns(CLUSTER, "hotpool-1").await.expect("ListTasks");
    assert_eq!(running.len(), 3, "every page is read: {running:?}");
    let all = [old.clone(), listed_only.clone(), described_only.clone(), both.clone(), gone.clone()];
    let obs = aws.describe_tasks(&all).await.expect("a deleted cluster other than spec.cluster knows no task");
    assert_eq!(obs.keys().collect::<Vec<_>>(), [&described_only, &both]);

    let step = |task: &str| {
        let w = fixtures::obj(Some(task), WorkerPhase::Starting, 0);
        // Two minutes after the launch: past the grace in which a task neither read shows is
        // taken for not shown yet.
        plan::step_worker(&w, obs.get(task), Some(&running), 300, std::time::Duration::from_secs(60), fixtures::t(120))
    };
    assert_eq!(step(&listed_only), WorkerStep::Keep, "listed, not described yet");
    assert_eq!(step(&described_only), WorkerStep::Keep, "described, not listed yet");
    assert_eq!(step(&both), WorkerStep::Keep);
    assert!(matches!(step(&gone), WorkerStep::Lost(_)), "neither listed nor described");

    fake.state().gone.insert(CLUSTER.into());
    let err = aws.describe_tasks(&all).await.expect_err("spec.cluster gone is the pool's problem");
    assert_eq!(err.code, "ClusterNotFoundException");
}

#[tokio::test(start_paused = true)]
async fn describe_tasks_asks_each_cluster_at_most_100_arns_at_a_time() {
    let fake = Arc::new(FakeEcs::default());
    let (aws, _) = pool(&fake);
    let mut arns: Vec<String> = (0..150).map(|i| arn(CLUSTER, &format!("a{i}"))).collect();
    arns.push(arn("other", "b"));
    aws.describe_tasks(&arns).await.expect("DescribeTasks");
    let asked = fake.state().describe_requests.clone();
    let want = [(CLUSTER.to_string(), 100), (CLUSTER.to_string(), 50), ("other".to_string(), 1)];
    assert_eq!(asked, want);
}
