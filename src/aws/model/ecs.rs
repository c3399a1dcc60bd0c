//! [`ModelEcs`]: an in-memory ECS implementing [`EcsApi`], for deterministic simulation.
//!
//! What it models today, following AWS's documentation where moto differs:
//! - **Clusters** made by the simulator ([`ModelEcs::create_cluster`]); every call against a cluster
//!   that does not exist (or was deleted, [`ModelEcs::delete_cluster`]) is
//!   `ClusterNotFoundException`. Clusters are named by name or ARN.
//! - **Task definitions**: families of revisions numbered from 1, never reused (a revision after a
//!   deregistered one is still `max + 1`); Register is not idempotent; tags; DescribeTaskDefinition
//!   by `family` (newest ACTIVE revision), `family:N` or ARN (also INACTIVE); ListTaskDefinitions of
//!   the ACTIVE revisions of a family, sorted, in pages (AWS documents `familyPrefix` as the full
//!   family name; [`EcsSettings::list_task_definitions_by_prefix`] widens it to a real prefix, the
//!   looser contract of the trait); Deregister turns a revision INACTIVE, after which it cannot
//!   start tasks or services (`ClientException`) but running ones keep it.
//! - **Services**: CreateService with `clientToken` memory (a repeat with the same token and
//!   request answers the first call's service, in its current state; the same token with another
//!   request is `InvalidParameterException`), a live service of the same name refused
//!   (`InvalidParameterException`, also while the old one drains); UpdateService changes only what it
//!   sets and starts a new deployment when the task definition, network, load balancers change or a
//!   new deployment is forced; counts and the PRIMARY deployment's rollout settle after the start
//!   delay. DeleteService (force) turns the service DRAINING, then INACTIVE after the drain delay;
//!   INACTIVE services are still described for a retention period, then unknown. Writes to a
//!   DRAINING or INACTIVE service are `ServiceNotActiveException`, to an unknown one
//!   `ServiceNotFoundException`. Services start no tasks of their own in the model.
//! - **RunTask** with `clientToken` memory (a repeat answers the first call's tasks and failures,
//!   also when some tasks failed for capacity), `count` 1..=10, each task failing for capacity with a
//!   settable probability drawn from the model's [`SimRng`], tags (the launch tag included) and
//!   `startedBy` on each task, group `family:<family>`; an unknown or INACTIVE task definition,
//!   missing network configuration or a bad tag set is a terminal error and starts nothing.
//! - **Tasks** go PROVISIONING → PENDING (private IP attached) → RUNNING over the start delay;
//!   StopTask (and a task stopping on its own, [`ModelEcs::stop_task_on_its_own`]) sets desired
//!   STOPPED and the reason at once, then STOPPING/DEPROVISIONING → STOPPED after the stop delay.
//!   ListTasks (desired RUNNING, by `startedBy`, pages) shows a new task only after the list lag;
//!   DescribeTasks (1..=100) after the describe lag, stopped tasks for a retention period, unknown ones
//!   absent. StopTask of a stopped task succeeds; of an unknown one is `InvalidParameterException`
//!   ("The referenced task was not found").
//! - **Faults** per call from [`Faults::draw`] with the model's generator: throttling and 5xx
//!   refuse before anything happens, a lost answer executes the call and then fails with
//!   [`lost`](super::lost).
//!
//! Time is the model's own logical clock ([`ModelEcs::advance`]); every delay is stored on the thing
//! it applies to when it is created, so changing a setting does not rewrite what already happened.
//! Everything is deterministic for a seed and a sequence of calls.

mod api;
mod services;
mod state;
mod tasks;

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use super::{FaultRates, Faults, SimRng};
use crate::aws::api::ecs::{EcsService, EcsTask};
pub use state::EcsSettings;
use state::State;

/// The in-memory ECS of one account and region. See the module docs.
#[derive(Debug)]
pub struct ModelEcs {
    faults: Faults,
    state: Mutex<State>,
}

/// A task as the model knows it, for invariant checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskInfo {
    /// The task as DescribeTasks shows it (whether or not DescribeTasks would show it now).
    pub task: EcsTask,
    /// ARN of its task definition revision.
    pub task_definition: String,
    /// Whether DescribeTasks shows it now (not before the describe lag, not after the retention of a
    /// stopped task, not once its cluster was deleted).
    pub visible: bool,
    /// Whether ListTasks (desired RUNNING) shows it now.
    pub listed: bool,
}

/// A service as the model knows it, for invariant checks.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceInfo {
    /// Cluster name.
    pub cluster: String,
    /// Service name.
    pub name: String,
    /// The service as DescribeServices shows it.
    pub service: EcsService,
    /// Whether DescribeServices shows it now (an INACTIVE service is shown for a retention period).
    pub visible: bool,
}

/// A task definition revision as the model knows it, for invariant checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskDefinitionInfo {
    /// ARN (`…:task-definition/family:revision`).
    pub arn: String,
    /// Family.
    pub family: String,
    /// Revision number.
    pub revision: u32,
    /// `ACTIVE` or `INACTIVE`.
    pub status: String,
    /// Tags.
    pub tags: BTreeMap<String, String>,
}

impl ModelEcs {
    /// An empty ECS (no cluster) of `account` in `region`, its randomness seeded with `seed`.
    pub fn new(seed: u64, faults: FaultRates, account: &str, region: &str) -> Self {
        Self { faults: Faults::new(faults), state: Mutex::new(State::new(SimRng::new(seed), account, region)) }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    // --- setup -------------------------------------------------------------------------------

    /// Create cluster `name` (idempotent, as CreateCluster is); answers its ARN.
    pub fn create_cluster(&self, name: &str) -> String {
        self.state().create_cluster(name)
    }

    /// Delete cluster `name` behind everyone's back, with everything in it: its services and tasks
    /// are forgotten and every call against it is `ClusterNotFoundException`. False when there was
    /// no such cluster.
    pub fn delete_cluster(&self, name: &str) -> bool {
        self.state().delete_cluster(name)
    }

    /// Change the fault rates (e.g. a quiet phase that lets everything converge).
    pub fn set_faults(&self, rates: FaultRates) {
        self.faults.set(rates);
    }

    /// Calls answered so far.
    pub fn calls(&self) -> u64 {
        self.faults.calls()
    }

    /// The current settings (delays, lags, capacity failure rate, page size).
    pub fn settings(&self) -> EcsSettings {
        self.state().settings
    }

    /// Replace the settings; they apply to what is created or changed from now on.
    pub fn set_settings(&self, settings: EcsSettings) {
        self.state().settings = settings;
    }

    /// Probability in `[0, 1]` that each task of a RunTask fails for capacity.
    pub fn set_capacity_failure_rate(&self, rate: f64) {
        self.state().settings.capacity_failure_rate = rate;
    }

    /// Time from RunTask to RUNNING (PENDING, with its IP, at half of it).
    pub fn set_start_delay(&self, delay: Duration) {
        self.state().settings.start_delay = delay;
    }

    /// Time before a new task shows in ListTasks.
    pub fn set_list_lag(&self, lag: Duration) {
        self.state().settings.list_lag = lag;
    }

    // --- the world ---------------------------------------------------------------------------

    /// The model's clock: time since it was made.
    pub fn now(&self) -> Duration {
        self.state().now
    }

    /// Move the clock forward by `d`: tasks start and stop, services settle, drain and are forgotten.
    pub fn advance(&self, d: Duration) {
        let mut s = self.state();
        s.now = s.now.saturating_add(d);
    }

    /// Task `arn` stops on its own (as when its essential container exits) with `reason`. False
    /// when the model knows no such task or it is already stopping.
    pub fn stop_task_on_its_own(&self, arn: &str, reason: &str) -> bool {
        self.state().stop_on_its_own(arn, reason)
    }

    /// A task chosen with the model's generator among those desired RUNNING stops on its own with
    /// `reason`; answers its ARN, `None` when no task runs.
    pub fn stop_random_task(&self, reason: &str) -> Option<String> {
        self.state().stop_random(reason)
    }

    /// The PRIMARY deployment of service `service` in `cluster` fails (as a deployment circuit
    /// breaker reports it) with `failed_tasks` more failed tasks. False when there is no live service.
    pub fn fail_service_deployment(&self, cluster: &str, service: &str, failed_tasks: i32) -> bool {
        self.state().fail_deployment(cluster, service, failed_tasks)
    }

    // --- inspection --------------------------------------------------------------------------

    /// The names of the clusters that exist.
    pub fn clusters(&self) -> Vec<String> {
        self.state().clusters.keys().cloned().collect()
    }

    /// Every task ever started (also stopped and forgotten ones), in start order.
    pub fn tasks(&self) -> Vec<TaskInfo> {
        self.state().task_infos()
    }

    /// Every service ever created (also deleted and forgotten ones), in creation order.
    pub fn services(&self) -> Vec<ServiceInfo> {
        self.state().service_infos()
    }

    /// Every task definition revision ever registered, by family and revision.
    pub fn task_definitions(&self) -> Vec<TaskDefinitionInfo> {
        self.state().task_definition_infos()
    }
}

#[cfg(test)]
mod tests;
