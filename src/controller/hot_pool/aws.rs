//! ECS reads and writes of the HotPool controller: stand-alone Fargate tasks launched in batches of
//! at most 10 into `spec.cluster`, found again by `startedBy` and tags, observed in batches of at
//! most 100. A task is described and stopped in the cluster its ARN names, which is not
//! `spec.cluster` any more after an edit of it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use aws_sdk_ecs::types::NetworkConfiguration;

use super::inventory;
use super::plan::TaskObs;
use crate::aws::api::ecs::{EcsApi, EcsTask, RunTaskRequest};
use crate::aws::{AwsCaller, AwsError, Service};

/// Tag on every task: the launch token of the RunTask call that started it.
pub const TAG_LAUNCH: &str = "fargate.operator.dev/launch";
/// Tag on every task: the worker version.
pub const TAG_VERSION: &str = "fargate.operator.dev/version";

/// RunTask starts at most this many tasks per call (an ECS limit).
pub const RUN_TASK_MAX: usize = 10;
/// DescribeTasks takes at most this many task ARNs per call (an ECS limit).
pub const DESCRIBE_TASKS_MAX: usize = 100;

/// ECS access for one pool's account and region.
pub struct PoolAws {
    /// Caller (budget, retries, metrics).
    pub caller: AwsCaller,
    /// ECS.
    pub ecs: Arc<dyn EcsApi>,
    /// `spec.cluster` (name or ARN): where tasks are launched, and the cluster of a task whose ARN
    /// is of the old format without one.
    pub cluster: String,
}

/// One task a RunTask call returned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LaunchedTask {
    /// Its ARN.
    pub arn: String,
    /// Its [`TAG_LAUNCH`] tag, when the response carries the task's tags.
    pub launch_tag: Option<String>,
}

/// What one RunTask call returned.
#[derive(Debug, Default)]
pub struct Launched {
    /// The tasks started; for a repeated token, the tasks the first call with it started.
    pub tasks: Vec<LaunchedTask>,
    /// `reason` of each failure ECS reported (capacity, limits).
    pub failures: Vec<String>,
}

/// One RunTask request.
pub struct LaunchRequest<'a> {
    /// Task definition ARN.
    pub task_definition_arn: &'a str,
    /// Tasks to start (1..=10).
    pub count: usize,
    /// Idempotency token (also the launch tag).
    pub token: &'a str,
    /// `startedBy` (≤ 36 characters), the pool's identity.
    pub started_by: &'a str,
    /// Tags (owner tags included).
    pub tags: &'a BTreeMap<String, String>,
    /// awsvpc configuration.
    pub network: &'a NetworkConfiguration,
}

fn task_obs(t: EcsTask) -> TaskObs {
    TaskObs {
        last_status: t.last_status,
        desired_status: t.desired_status,
        ip: t.private_ip,
        stopped_reason: t.stopped_reason,
        started_by: t.started_by,
        tags: t.tags,
    }
}

impl PoolAws {
    /// The ARN of `task_definition` (`family`, `family:revision` or an ARN); `None` when ECS does
    /// not know it.
    pub async fn task_definition_arn(&self, task_definition: &str) -> Result<Option<String>, AwsError> {
        let out = self
            .caller
            .call(Service::Ecs, "DescribeTaskDefinition", || self.ecs.describe_task_definition(task_definition, false))
            .await;
        match out {
            Ok(revision) => Ok(Some(revision.arn).filter(|a| !a.is_empty())),
            Err(e) if e.is_not_found() || (e.code == "ClientException" && e.message.contains("task definition")) => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Start up to 10 tasks in one RunTask call. Not retried on a transient error: the tasks may
    /// have started, and the next pass finds them by their launch tag before launching again.
    pub async fn run_tasks(&self, req: &LaunchRequest<'_>) -> Result<Launched, AwsError> {
        let run = RunTaskRequest {
            cluster: self.cluster.clone(),
            task_definition: req.task_definition_arn.to_string(),
            count: i32::try_from(req.count.clamp(1, RUN_TASK_MAX)).unwrap_or(1),
            client_token: req.token.to_string(),
            started_by: req.started_by.to_string(),
            network_configuration: Some(req.network.clone()),
            tags: req.tags.clone(),
        };
        let out = self.caller.call_create(Service::Ecs, "RunTask", || self.ecs.run_task(&run)).await?;
        Ok(Launched {
            tasks: out
                .tasks
                .into_iter()
                .filter(|t| !t.arn.is_empty())
                .map(|mut t| LaunchedTask { launch_tag: t.tags.remove(TAG_LAUNCH), arn: t.arn })
                .collect(),
            failures: out.failures.into_iter().map(|f| f.reason).collect(),
        })
    }

    /// ARNs of every task in `cluster` started by `started_by` that ECS still wants running.
    pub async fn running_task_arns(&self, cluster: &str, started_by: &str) -> Result<BTreeSet<String>, AwsError> {
        let mut arns = BTreeSet::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .caller
                .call(Service::Ecs, "ListTasks", || self.ecs.list_tasks(cluster, started_by, token.as_deref()))
                .await?;
            arns.extend(page.arns);
            match page.next_token {
                Some(t) => token = Some(t),
                None => return Ok(arns),
            }
        }
    }

    /// The state of each task in `arns` that ECS knows (with tags), asked of each task's own
    /// cluster, ≤ 100 ARNs per call. A cluster other than `spec.cluster` that is gone knows no task;
    /// `spec.cluster` gone is an error (the pool reports it).
    pub async fn describe_tasks(&self, arns: &[String]) -> Result<BTreeMap<String, TaskObs>, AwsError> {
        let mut by_cluster: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for arn in arns {
            by_cluster.entry(inventory::cluster_of(arn, &self.cluster)).or_default().push(arn.clone());
        }
        let mut out = BTreeMap::new();
        for (cluster, arns) in by_cluster {
            for chunk in arns.chunks(DESCRIBE_TASKS_MAX) {
                let tasks = match self
                    .caller
                    .call(Service::Ecs, "DescribeTasks", || self.ecs.describe_tasks(cluster, chunk))
                    .await
                {
                    Ok(r) => r,
                    Err(e) if e.is_not_found() && !inventory::same_cluster(cluster, &self.cluster) => break,
                    Err(e) => return Err(e),
                };
                out.extend(tasks.into_iter().filter(|t| !t.arn.is_empty()).map(|t| (t.arn.clone(), task_obs(t))));
            }
        }
        Ok(out)
    }

    /// Stop one task, in the cluster its ARN names; a task (or cluster) ECS no longer knows counts as
    /// stopped.
    pub async fn stop_task(&self, arn: &str, reason: &str) -> Result<(), AwsError> {
        self.stop_task_if_known(arn, reason).await.map(|_| ())
    }

    /// [`stop_task`](Self::stop_task), telling whether ECS knew the task (`false`: "not found").
    /// A task launched seconds ago may not be known to ECS's reads yet, so for one of those
    /// "not found" does not mean it is gone.
    pub async fn stop_task_if_known(&self, arn: &str, reason: &str) -> Result<bool, AwsError> {
        let cluster = inventory::cluster_of(arn, &self.cluster);
        let out = self.caller.call(Service::Ecs, "StopTask", || self.ecs.stop_task(cluster, arn, reason)).await;
        match out {
            Ok(()) => Ok(true),
            Err(e)
                if e.is_not_found() || (e.code == "InvalidParameterException" && e.message.contains("not found")) =>
            {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests;
