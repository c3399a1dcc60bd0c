//! ECS reads and writes of the HotPool controller: stand-alone Fargate tasks launched in batches of
//! at most 10 into `spec.cluster`, found again by `startedBy` and tags, observed in batches of at
//! most 100. A task is described and stopped in the cluster its ARN names, which is not
//! `spec.cluster` any more after an edit of it.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ecs::types::{DesiredStatus, LaunchType, NetworkConfiguration, Tag, TaskField};

use super::inventory;
use super::plan::TaskObs;
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
    pub ecs: aws_sdk_ecs::Client,
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

fn task_obs(t: &aws_sdk_ecs::types::Task) -> TaskObs {
    let ip = t
        .attachments()
        .iter()
        .flat_map(|a| a.details())
        .find(|d| d.name() == Some("privateIPv4Address"))
        .and_then(|d| d.value())
        .filter(|v| !v.is_empty())
        .map(str::to_string);
    TaskObs {
        last_status: t.last_status().unwrap_or_default().to_string(),
        desired_status: t.desired_status().unwrap_or_default().to_string(),
        ip,
        stopped_reason: t.stopped_reason().map(str::to_string),
        started_by: t.started_by().unwrap_or_default().to_string(),
        tags: t
            .tags()
            .iter()
            .map(|tag| (tag.key().unwrap_or_default().to_string(), tag.value().unwrap_or_default().to_string()))
            .collect(),
    }
}

impl PoolAws {
    /// The ARN of `task_definition` (`family`, `family:revision` or an ARN); `None` when ECS does
    /// not know it.
    pub async fn task_definition_arn(&self, task_definition: &str) -> Result<Option<String>, AwsError> {
        let out = self
            .caller
            .call(Service::Ecs, "DescribeTaskDefinition", || {
                self.ecs.describe_task_definition().task_definition(task_definition).send()
            })
            .await;
        match out {
            Ok(o) => Ok(o.task_definition().and_then(|t| t.task_definition_arn()).map(str::to_string)),
            Err(e) if e.is_not_found() || (e.code == "ClientException" && e.message.contains("task definition")) => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Start up to 10 tasks in one RunTask call. Not retried on a transient error: the tasks may
    /// have started, and the next pass finds them by their launch tag before launching again.
    pub async fn run_tasks(&self, req: &LaunchRequest<'_>) -> Result<Launched, AwsError> {
        let tags: Vec<Tag> = req.tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect();
        let count = i32::try_from(req.count.clamp(1, RUN_TASK_MAX)).unwrap_or(1);
        let out = self
            .caller
            .call_create(Service::Ecs, "RunTask", || {
                self.ecs
                    .run_task()
                    .cluster(&self.cluster)
                    .task_definition(req.task_definition_arn)
                    .count(count)
                    .client_token(req.token)
                    .started_by(req.started_by)
                    .launch_type(LaunchType::Fargate)
                    .network_configuration(req.network.clone())
                    .set_tags(Some(tags.clone()))
                    .send()
            })
            .await?;
        Ok(Launched {
            tasks: out
                .tasks()
                .iter()
                .filter_map(|t| {
                    let launch_tag =
                        t.tags().iter().find(|tag| tag.key() == Some(TAG_LAUNCH)).and_then(|tag| tag.value());
                    Some(LaunchedTask { arn: t.task_arn()?.to_string(), launch_tag: launch_tag.map(str::to_string) })
                })
                .collect(),
            failures: out.failures().iter().map(|f| f.reason().unwrap_or("unknown").to_string()).collect(),
        })
    }

    /// ARNs of every task in `cluster` started by `started_by` that ECS still wants running.
    pub async fn running_task_arns(&self, cluster: &str, started_by: &str) -> Result<BTreeSet<String>, AwsError> {
        let mut arns = BTreeSet::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .caller
                .call(Service::Ecs, "ListTasks", || {
                    self.ecs
                        .list_tasks()
                        .cluster(cluster)
                        .started_by(started_by)
                        .desired_status(DesiredStatus::Running)
                        .max_results(100)
                        .set_next_token(token.clone())
                        .send()
                })
                .await?;
            arns.extend(out.task_arns().iter().cloned());
            match out.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => return Ok(arns),
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
                let resp = self
                    .caller
                    .call(Service::Ecs, "DescribeTasks", || {
                        self.ecs
                            .describe_tasks()
                            .cluster(cluster)
                            .set_tasks(Some(chunk.to_vec()))
                            .include(TaskField::Tags)
                            .send()
                    })
                    .await;
                let resp = match resp {
                    Ok(r) => r,
                    Err(e) if e.is_not_found() && !inventory::same_cluster(cluster, &self.cluster) => break,
                    Err(e) => return Err(e),
                };
                for t in resp.tasks() {
                    if let Some(arn) = t.task_arn() {
                        out.insert(arn.to_string(), task_obs(t));
                    }
                }
            }
        }
        Ok(out)
    }

    /// Stop one task, in the cluster its ARN names; a task (or cluster) ECS no longer knows counts as
    /// stopped.
    pub async fn stop_task(&self, arn: &str, reason: &str) -> Result<(), AwsError> {
        let cluster = inventory::cluster_of(arn, &self.cluster);
        let out = self
            .caller
            .call(Service::Ecs, "StopTask", || self.ecs.stop_task().cluster(cluster).task(arn).reason(reason).send())
            .await;
        match out {
            Ok(_) => Ok(()),
            Err(e)
                if e.is_not_found() || (e.code == "InvalidParameterException" && e.message.contains("not found")) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}
