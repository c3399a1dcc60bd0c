//! The ECS calls this operator makes, as the [`EcsApi`] trait, and [`SdkEcs`], its implementation
//! over `aws_sdk_ecs::Client` used in production.
//!
//! Today the FargateApp controller describes, creates, updates and deletes one ECS service per
//! object and registers, describes, lists and deregisters its task definition revisions; the HotPool
//! controller resolves a task definition, starts stand-alone Fargate tasks with RunTask, and lists,
//! describes and stops them. Those twelve requests are the whole trait.
//!
//! Each method sends one request (one page of a paginated read) and is not retried here: the
//! controllers wrap every call in [`AwsCaller`](crate::aws::AwsCaller) under the AWS operation's own
//! name (`DescribeServices`, `RunTask`, ...), which budgets, retries and counts it. Errors come back
//! [`Classified`](crate::aws::Classified); the SDK implementation (`ecs/sdk.rs`) classifies
//! `SdkError`s, fault injection included, with the same [`Classify`](crate::aws::Classify) rules as
//! before the trait existed.
//!
//! What is read comes back as small plain structs holding the fields the controllers use (and, for
//! a task, its cluster and group, which say where it runs).
//! Requests are plain structs too; where a controller already plans in an ECS SDK data type
//! (`NetworkConfiguration`, `DeploymentConfiguration`, `LoadBalancer`, `ContainerDefinition`,
//! `RuntimePlatform`), the request takes it as it is, and a service's read echoes the same types.

use std::collections::BTreeMap;

use aws_sdk_ecs::types::{
    ContainerDefinition, DeploymentConfiguration, LoadBalancer, NetworkConfiguration, RuntimePlatform,
};

use super::ApiFuture;

mod sdk;
pub use sdk::SdkEcs;

/// The ECS requests of this operator. Every method is one AWS request; see the module docs.
///
/// Error conventions (what ECS answers, and so what an implementation must answer): a missing
/// cluster is `ClusterNotFoundException` (category `NotFound`); a missing service on a write is
/// `ServiceNotFoundException` (`NotFound`) or, once deleted, `ServiceNotActiveException`
/// (`Terminal`); a task definition ECS does not know is `ClientException` (`Terminal`) with a
/// message naming the task definition; a task ECS does not know, on StopTask, is
/// `InvalidParameterException` (`Terminal`) whose message says "not found". Reads of several
/// things (DescribeServices, DescribeTasks) do not fail for the ones ECS does not know: those are
/// simply absent from the result.
pub trait EcsApi: Send + Sync + std::fmt::Debug {
    /// DescribeServices of the service `service` (name or ARN) in `cluster`, with its tags. The
    /// result holds the service when ECS knows it (also an `INACTIVE` one, recently deleted), and is
    /// empty when it does not. A missing cluster is `ClusterNotFoundException`.
    fn describe_services<'a>(&'a self, cluster: &'a str, services: &'a [String]) -> ApiFuture<'a, Vec<EcsService>>;

    /// CreateService (launch type FARGATE, tags propagated from the service, ECS managed tags on).
    /// `client_token` makes it idempotent: a repeat with the same token and request answers the
    /// service the first call created. A live service of the same name is
    /// `InvalidParameterException`; a missing cluster `ClusterNotFoundException`.
    fn create_service<'a>(&'a self, req: &'a CreateServiceRequest) -> ApiFuture<'a, EcsService>;

    /// UpdateService: changes only what the request sets (`None` leaves a setting as it is).
    /// A missing service is `ServiceNotFoundException`, a deleted one `ServiceNotActiveException`.
    fn update_service<'a>(&'a self, req: &'a UpdateServiceRequest) -> ApiFuture<'a, ()>;

    /// DeleteService with `force` (also while tasks run; they are stopped). The service turns
    /// `DRAINING`, then `INACTIVE`. Missing or already deleted: as for
    /// [`update_service`](Self::update_service).
    fn delete_service<'a>(&'a self, cluster: &'a str, service: &'a str) -> ApiFuture<'a, ()>;

    /// RegisterTaskDefinition: a new revision (`family:N+1`) of the request's family, with its
    /// tags. Not idempotent: every call registers a revision. Answers the revision's ARN and tags.
    fn register_task_definition<'a>(
        &'a self,
        req: &'a RegisterTaskDefinitionRequest,
    ) -> ApiFuture<'a, TaskDefinitionRevision>;

    /// DescribeTaskDefinition of `task_definition` (`family` for the newest ACTIVE revision,
    /// `family:revision` or an ARN, also of an INACTIVE revision), with its tags when `include_tags`.
    /// One ECS does not know is `ClientException` ("Unable to describe task definition").
    fn describe_task_definition<'a>(
        &'a self,
        task_definition: &'a str,
        include_tags: bool,
    ) -> ApiFuture<'a, TaskDefinitionRevision>;

    /// One page of ListTaskDefinitions: ARNs of the ACTIVE revisions of the family `family_prefix`
    /// (AWS documents the parameter as the full family name; callers still check each ARN's family,
    /// in case an implementation also matches longer names), from `next_token` on. No match is an
    /// empty page, not an error.
    fn list_task_definitions<'a>(&'a self, family_prefix: &'a str, next_token: Option<&'a str>) -> ApiFuture<'a, Page>;

    /// DeregisterTaskDefinition of the revision `task_definition` (ARN or `family:revision`): it
    /// turns INACTIVE (running tasks and services keep it). One ECS does not know is
    /// `ClientException`.
    fn deregister_task_definition<'a>(&'a self, task_definition: &'a str) -> ApiFuture<'a, ()>;

    /// RunTask (launch type FARGATE): starts up to `count` (1..=10) tasks. It may start fewer: each
    /// task it could not start is a [`TaskFailure`] (capacity, limits) in the answer, not an
    /// error. `client_token` makes it idempotent: a repeat with the same token answers the tasks the
    /// first call started. A missing cluster is `ClusterNotFoundException`; an unusable task
    /// definition, role or tag set is a `Terminal` error (nothing started).
    fn run_task<'a>(&'a self, req: &'a RunTaskRequest) -> ApiFuture<'a, RunTaskOutcome>;

    /// One page (≤ 100 ARNs) of ListTasks: ARNs of the tasks in `cluster` started by `started_by`
    /// whose desired status is RUNNING, from `next_token` on. A task just started may be missing
    /// for a while; a stopped one drops out. A missing cluster is `ClusterNotFoundException`.
    fn list_tasks<'a>(
        &'a self,
        cluster: &'a str,
        started_by: &'a str,
        next_token: Option<&'a str>,
    ) -> ApiFuture<'a, Page>;

    /// DescribeTasks of `tasks` (≤ 100 ARNs) in `cluster`, with their tags. Tasks ECS does not know
    /// (long stopped, or not visible yet) are absent from the result. A missing cluster is
    /// `ClusterNotFoundException`.
    fn describe_tasks<'a>(&'a self, cluster: &'a str, tasks: &'a [String]) -> ApiFuture<'a, Vec<EcsTask>>;

    /// StopTask of `task` (ARN) in `cluster`, `reason` shown as its stopped reason. Stopping a
    /// stopped task succeeds; a task ECS does not know is `InvalidParameterException` ("The
    /// referenced task was not found"), a missing cluster `ClusterNotFoundException`.
    fn stop_task<'a>(&'a self, cluster: &'a str, task: &'a str, reason: &'a str) -> ApiFuture<'a, ()>;
}

/// One page of a paginated list of ARNs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Page {
    /// The ARNs on this page.
    pub arns: Vec<String>,
    /// The token of the next page; `None` on the last page (an empty token counts as none).
    pub next_token: Option<String>,
}

/// A service as DescribeServices (or CreateService) answers it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EcsService {
    /// `serviceArn`.
    pub arn: String,
    /// `ACTIVE`, `DRAINING` or `INACTIVE`.
    pub status: String,
    /// `desiredCount`.
    pub desired_count: i32,
    /// `runningCount`.
    pub running_count: i32,
    /// `pendingCount`.
    pub pending_count: i32,
    /// ARN of the task definition revision the service runs.
    pub task_definition: String,
    /// `networkConfiguration`, when reported.
    pub network_configuration: Option<NetworkConfiguration>,
    /// `loadBalancers`.
    pub load_balancers: Vec<LoadBalancer>,
    /// `deploymentConfiguration`, when reported.
    pub deployment_configuration: Option<DeploymentConfiguration>,
    /// `healthCheckGracePeriodSeconds`, when reported.
    pub health_check_grace_period_seconds: Option<i32>,
    /// `deployments` (the `PRIMARY` one is the rollout in progress or done).
    pub deployments: Vec<ServiceDeployment>,
    /// The id of the newest of `events` (ECS lists them newest first): a task stopped for failing
    /// its load balancer health checks, a task started, a steady state reached.
    pub latest_event: Option<String>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
}

/// One deployment of a service.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceDeployment {
    /// `PRIMARY`, `ACTIVE` or `INACTIVE`.
    pub status: String,
    /// `IN_PROGRESS`, `COMPLETED` or `FAILED`, when reported.
    pub rollout_state: Option<String>,
    /// Why the rollout is in that state, when reported.
    pub rollout_state_reason: Option<String>,
    /// Tasks of this deployment that failed to start.
    pub failed_tasks: i32,
}

/// A task definition revision as RegisterTaskDefinition or DescribeTaskDefinition answers it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaskDefinitionRevision {
    /// `taskDefinitionArn` (`arn:...:task-definition/family:revision`).
    pub arn: String,
    /// Tags (empty when they were not asked for).
    pub tags: BTreeMap<String, String>,
}

/// A task as RunTask or DescribeTasks answers it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EcsTask {
    /// `taskArn`.
    pub arn: String,
    /// `clusterArn`.
    pub cluster_arn: String,
    /// `lastStatus` (`PROVISIONING`, `PENDING`, `RUNNING`, `STOPPED`, ...); empty when not reported.
    pub last_status: String,
    /// `desiredStatus` (`RUNNING` or `STOPPED`); empty when not reported.
    pub desired_status: String,
    /// `startedBy`; empty when not reported.
    pub started_by: String,
    /// `group` (e.g. `family:<name>`); empty when not reported.
    pub group: String,
    /// `stoppedReason`, once stopping.
    pub stopped_reason: Option<String>,
    /// Private IPv4 address of the task's ENI, once attached (a non-empty `privateIPv4Address`
    /// detail of its attachments).
    pub private_ip: Option<String>,
    /// Tags (RunTask answers the request's; DescribeTasks asks for them).
    pub tags: BTreeMap<String, String>,
}

/// A task RunTask could not start.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaskFailure {
    /// The resource the failure is about, when reported.
    pub arn: Option<String>,
    /// `reason` (e.g. `RESOURCE:ENI`, `Capacity is unavailable at this time`).
    pub reason: String,
    /// `detail`, when reported.
    pub detail: Option<String>,
}

/// What RunTask answered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunTaskOutcome {
    /// The tasks started (for a repeated token: those the first call with it started).
    pub tasks: Vec<EcsTask>,
    /// One entry per task that could not be started.
    pub failures: Vec<TaskFailure>,
}

/// A CreateService request (launch type FARGATE, `propagateTags` SERVICE, ECS managed tags on).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CreateServiceRequest {
    /// Cluster name or ARN.
    pub cluster: String,
    /// Service name.
    pub service_name: String,
    /// Task definition ARN.
    pub task_definition: String,
    /// `desiredCount`.
    pub desired_count: i32,
    /// awsvpc configuration.
    pub network_configuration: Option<NetworkConfiguration>,
    /// Deployment configuration.
    pub deployment_configuration: Option<DeploymentConfiguration>,
    /// Target groups to register the tasks in.
    pub load_balancers: Vec<LoadBalancer>,
    /// `healthCheckGracePeriodSeconds` (only with load balancers).
    pub health_check_grace_period_seconds: Option<i32>,
    /// Idempotency token (≤ 36 characters).
    pub client_token: String,
    /// Tags.
    pub tags: BTreeMap<String, String>,
}

/// An UpdateService request; `None` leaves a setting unchanged.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UpdateServiceRequest {
    /// Cluster name or ARN.
    pub cluster: String,
    /// Service name or ARN.
    pub service: String,
    /// New task definition ARN.
    pub task_definition: Option<String>,
    /// New `desiredCount`.
    pub desired_count: Option<i32>,
    /// New awsvpc configuration.
    pub network_configuration: Option<NetworkConfiguration>,
    /// New deployment configuration.
    pub deployment_configuration: Option<DeploymentConfiguration>,
    /// New load balancers (`Some(vec![])` removes them all).
    pub load_balancers: Option<Vec<LoadBalancer>>,
    /// New `healthCheckGracePeriodSeconds`.
    pub health_check_grace_period_seconds: Option<i32>,
    /// Start a new deployment even if nothing else changed.
    pub force_new_deployment: bool,
}

/// A RegisterTaskDefinition request (network mode awsvpc, FARGATE compatibility).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RegisterTaskDefinitionRequest {
    /// Family.
    pub family: String,
    /// Task CPU units.
    pub cpu: String,
    /// Task memory (MiB).
    pub memory: String,
    /// CPU architecture and operating system family.
    pub runtime_platform: Option<RuntimePlatform>,
    /// Ephemeral storage in GiB (unset: Fargate's default).
    pub ephemeral_storage_gib: Option<i32>,
    /// Execution role ARN.
    pub execution_role_arn: Option<String>,
    /// Task role ARN.
    pub task_role_arn: Option<String>,
    /// Containers, in order.
    pub container_definitions: Vec<ContainerDefinition>,
    /// Tags of the revision.
    pub tags: BTreeMap<String, String>,
}

/// A RunTask request (launch type FARGATE).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunTaskRequest {
    /// Cluster name or ARN.
    pub cluster: String,
    /// Task definition (ARN, `family:revision` or `family`).
    pub task_definition: String,
    /// Tasks to start (1..=10).
    pub count: i32,
    /// Idempotency token (≤ 64 characters).
    pub client_token: String,
    /// `startedBy` (≤ 36 characters).
    pub started_by: String,
    /// awsvpc configuration.
    pub network_configuration: Option<NetworkConfiguration>,
    /// Tags of every task.
    pub tags: BTreeMap<String, String>,
}
