//! Tasks: RunTask with client-token memory and capacity failures, the task lifecycle over the
//! model's clock, ListTasks and DescribeTasks with their lags, StopTask and tasks stopping on
//! their own.

use std::collections::BTreeMap;
use std::time::Duration;

use super::services::check_network;
use super::state::{State, check_tags, invalid, key_of_token, token_after};
use crate::aws::api::ecs::Page;
use crate::aws::api::ecs::{EcsTask, RunTaskOutcome, RunTaskRequest, TaskFailure};
use crate::aws::errors::Classified;
use crate::aws::model::SimRng;

/// What AWS answers for a Fargate task it has no capacity for.
pub const CAPACITY_REASON: &str =
    "Capacity is unavailable at this time. Please try again later or in a different availability zone";

/// A stop: asked at `requested_at` (with the status the task had then), STOPPED at `stopped_at`.
#[derive(Clone, Debug)]
struct Stop {
    requested_at: Duration,
    stopped_at: Duration,
    reason: String,
}

/// One task.
#[derive(Clone, Debug)]
pub(super) struct Task {
    pub arn: String,
    pub cluster: String,
    cluster_arn: String,
    pub task_definition: String,
    started_by: String,
    group: String,
    tags: BTreeMap<String, String>,
    /// Start order.
    pub seq: u64,
    pending_at: Duration,
    running_at: Duration,
    listed_at: Duration,
    described_at: Duration,
    retention: Duration,
    ip: String,
    stop: Option<Stop>,
    /// Its cluster was deleted.
    pub forgotten: bool,
}

impl Task {
    /// The status the task reaches by `at` if nobody stops it.
    fn started_status(&self, at: Duration) -> &'static str {
        if at >= self.running_at {
            "RUNNING"
        } else if at >= self.pending_at {
            "PENDING"
        } else {
            "PROVISIONING"
        }
    }

    fn last_status(&self, now: Duration) -> &'static str {
        match &self.stop {
            None => self.started_status(now),
            Some(s) if now >= s.stopped_at => "STOPPED",
            // A running task is stopped (SIGTERM, then its ENI released); one that never ran is
            // only deprovisioned.
            Some(s) if self.started_status(s.requested_at) == "RUNNING" => "STOPPING",
            Some(_) => "DEPROVISIONING",
        }
    }

    pub fn desired_running(&self) -> bool {
        self.stop.is_none() && !self.forgotten
    }

    pub fn visible(&self, now: Duration) -> bool {
        !self.forgotten
            && now >= self.described_at
            && self.stop.as_ref().is_none_or(|s| now < s.stopped_at.saturating_add(self.retention))
    }

    pub fn listed(&self, now: Duration) -> bool {
        self.desired_running() && now >= self.listed_at
    }

    /// The task as DescribeTasks answers it at `now`.
    pub fn view(&self, now: Duration) -> EcsTask {
        // The ENI (and so the IP) is attached when the task turns PENDING; a task stopped before
        // that never gets one.
        let attached_by = self.stop.as_ref().map_or(now, |s| now.min(s.requested_at));
        EcsTask {
            arn: self.arn.clone(),
            cluster_arn: self.cluster_arn.clone(),
            last_status: self.last_status(now).to_string(),
            desired_status: if self.stop.is_some() { "STOPPED" } else { "RUNNING" }.to_string(),
            started_by: self.started_by.clone(),
            group: self.group.clone(),
            stopped_reason: self.stop.as_ref().map(|s| s.reason.clone()),
            private_ip: (attached_by >= self.pending_at).then(|| self.ip.clone()),
            tags: self.tags.clone(),
        }
    }
}

/// A RunTask client token: the request it came with and what it answered.
#[derive(Clone, Debug)]
pub(super) struct RunMemory {
    request: RunTaskRequest,
    task_arns: Vec<String>,
    failures: Vec<TaskFailure>,
}

impl State {
    fn outcome(&self, memory: &RunMemory) -> RunTaskOutcome {
        RunTaskOutcome {
            tasks: memory.task_arns.iter().filter_map(|a| self.tasks.get(a)).map(|t| t.view(self.now)).collect(),
            failures: memory.failures.clone(),
        }
    }

    pub fn run_task(&mut self, req: &RunTaskRequest) -> Result<RunTaskOutcome, Classified> {
        let (cluster, cluster_arn) = self.cluster(&req.cluster)?;
        if !req.client_token.is_empty() {
            if let Some(memory) = self.run_tokens.get(&req.client_token) {
                if memory.request != *req {
                    return Err(invalid("The clientToken was already used with different parameters."));
                }
                return Ok(self.outcome(memory));
            }
            if req.client_token.len() > 64 {
                return Err(invalid("clientToken must be at most 64 characters."));
            }
        }
        if !(1..=10).contains(&req.count) {
            return Err(invalid("count must be between 1 and 10."));
        }
        if req.started_by.chars().count() > 36 {
            return Err(invalid("startedBy must be at most 36 characters."));
        }
        check_tags(&req.tags)?;
        check_network(req.network_configuration.as_ref())?;
        let (family, task_definition) = self.runnable_revision(&req.task_definition)?;
        let mut memory = RunMemory { request: req.clone(), task_arns: Vec::new(), failures: Vec::new() };
        let settings = self.settings;
        for _ in 0..req.count {
            if self.rng.chance(settings.capacity_failure_rate) {
                memory.failures.push(TaskFailure { arn: None, reason: CAPACITY_REASON.into(), detail: None });
                continue;
            }
            self.task_seq = self.task_seq.saturating_add(1);
            let id = self.rng.hex_id(32);
            let arn = format!("{}:task/{cluster}/{id}", self.arn_prefix);
            let host = self.task_seq;
            let now = self.now;
            let spread = |rng: &mut SimRng| {
                let max = u64::try_from(settings.lag_spread.as_millis()).unwrap_or(u64::MAX);
                Duration::from_millis(if max == 0 { 0 } else { rng.below(max.saturating_add(1)) })
            };
            let (list_extra, describe_extra) = (spread(&mut self.rng), spread(&mut self.rng));
            let task = Task {
                arn: arn.clone(),
                cluster: cluster.clone(),
                cluster_arn: cluster_arn.clone(),
                task_definition: task_definition.clone(),
                started_by: req.started_by.clone(),
                group: format!("family:{family}"),
                tags: req.tags.clone(),
                seq: self.task_seq,
                pending_at: now.saturating_add(settings.start_delay / 2),
                running_at: now.saturating_add(settings.start_delay),
                listed_at: now.saturating_add(settings.list_lag).saturating_add(list_extra),
                described_at: now.saturating_add(settings.describe_lag).saturating_add(describe_extra),
                retention: settings.stopped_retention,
                // Unique while fewer than 2^24 tasks were started: 10.x.y.z from the start order.
                ip: format!("10.{}.{}.{}", (host >> 16) & 0xff, (host >> 8) & 0xff, host & 0xff),
                stop: None,
                forgotten: false,
            };
            self.tasks.insert(arn.clone(), task);
            memory.task_arns.push(arn);
        }
        let outcome = self.outcome(&memory);
        if !req.client_token.is_empty() {
            self.run_tokens.insert(req.client_token.clone(), memory);
        }
        Ok(outcome)
    }

    /// The task `reference` (ARN or id) names in cluster `cluster`, if DescribeTasks shows it.
    fn find_task(&self, cluster: &str, reference: &str) -> Option<&Task> {
        let id = reference.rsplit('/').next().unwrap_or(reference);
        let arn = format!("{}:task/{cluster}/{id}", self.arn_prefix);
        if reference.starts_with("arn:") && reference != arn {
            return None;
        }
        self.tasks.get(&arn).filter(|t| t.visible(self.now))
    }

    pub fn list_tasks(&self, cluster: &str, started_by: &str, token: Option<&str>) -> Result<Page, Classified> {
        let (cluster, _) = self.cluster(cluster)?;
        let after: Option<u64> = match key_of_token("task", token)? {
            Some(k) => Some(k.parse().map_err(|_| invalid("Invalid nextToken."))?),
            None => None,
        };
        let mut tasks: Vec<&Task> = self
            .tasks
            .values()
            .filter(|t| t.cluster == cluster && t.listed(self.now))
            .filter(|t| started_by.is_empty() || t.started_by == started_by)
            .filter(|t| after.is_none_or(|a| t.seq > a))
            .collect();
        tasks.sort_by_key(|t| t.seq);
        let size = self.settings.page_size.max(1);
        let more = tasks.len() > size;
        tasks.truncate(size);
        let next_token = if more { tasks.last().map(|t| token_after("task", &t.seq.to_string())) } else { None };
        Ok(Page { arns: tasks.into_iter().map(|t| t.arn.clone()).collect(), next_token })
    }

    pub fn describe_tasks(&self, cluster: &str, tasks: &[String]) -> Result<Vec<EcsTask>, Classified> {
        let (cluster, _) = self.cluster(cluster)?;
        if tasks.is_empty() {
            return Err(invalid("Tasks cannot be empty."));
        }
        if tasks.len() > 100 {
            return Err(invalid("Tasks can have at most 100 items."));
        }
        let mut seen = std::collections::BTreeSet::new();
        Ok(tasks
            .iter()
            .filter_map(|r| self.find_task(&cluster, r))
            .filter(|t| seen.insert(t.arn.clone()))
            .map(|t| t.view(self.now))
            .collect())
    }

    /// Stop `arn` with `reason` unless it is already stopping; false when it was.
    fn stop(&mut self, arn: &str, reason: &str) -> bool {
        let now = self.now;
        let stop_delay = self.settings.stop_delay;
        match self.tasks.get_mut(arn) {
            Some(t) if t.stop.is_none() => {
                t.stop =
                    Some(Stop { requested_at: now, stopped_at: now.saturating_add(stop_delay), reason: reason.into() });
                true
            }
            _ => false,
        }
    }

    pub fn stop_task(&mut self, cluster: &str, task: &str, reason: &str) -> Result<(), Classified> {
        let (cluster, _) = self.cluster(cluster)?;
        let arn = self
            .find_task(&cluster, task)
            .map(|t| t.arn.clone())
            .ok_or_else(|| invalid("The referenced task was not found."))?;
        // A task already stopping keeps its first reason; stopping it again succeeds.
        self.stop(&arn, reason);
        Ok(())
    }

    pub fn stop_on_its_own(&mut self, arn: &str, reason: &str) -> bool {
        self.tasks.get(arn).is_some_and(|t| !t.forgotten) && self.stop(arn, reason)
    }

    pub fn stop_random(&mut self, reason: &str) -> Option<String> {
        let running: Vec<String> = self.tasks.values().filter(|t| t.desired_running()).map(|t| t.arn.clone()).collect();
        let n = u64::try_from(running.len()).ok().filter(|n| *n > 0)?;
        let pick = usize::try_from(self.rng.below(n)).ok()?;
        let arn = running.get(pick)?.clone();
        self.stop(&arn, reason).then_some(arn)
    }
}
