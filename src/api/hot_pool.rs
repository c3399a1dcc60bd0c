//! `HotPool` (the plan table), `HotPoolWorker` (one row per ECS task) and `HotPoolClaim` (a client
//! taking a worker).

// kube-derive takes one `printcolumn(...)` per column; clippy mistakes the repeated `type_ = ...` for
// a duplicated attribute.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, MicroTime, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::common::{AwsOverride, LastError, NetworkConfig, Policy, conditions_schema};

/// Label on every HotPoolWorker naming its pool.
pub const POOL_LABEL: &str = "fargate.operator.dev/pool";
/// Label on every HotPoolWorker naming its worker version.
pub const VERSION_LABEL: &str = "fargate.operator.dev/version";

/// A pool of pre-started ECS worker tasks, kept per worker version.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "fargate.operator.dev",
    version = "v1alpha1",
    kind = "HotPool",
    plural = "hotpools",
    shortname = "hp",
    category = "fargate",
    namespaced,
    status = "HotPoolStatus",
    derive = "PartialEq",
    doc = "A pool of pre-started ECS worker tasks per worker version (the plan table of a worker manager).",
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Available", type_ = "integer", json_path = ".status.available"),
    printcolumn(name = "Claimed", type_ = "integer", json_path = ".status.claimed"),
    printcolumn(name = "Starting", type_ = "integer", json_path = ".status.starting"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(super::common::AWS_UNCHANGED_RULE).message(super::common::AWS_UNCHANGED_MESSAGE))]
pub struct HotPoolSpec {
    /// ECS cluster name or ARN the workers run in.
    #[schemars(length(min = 1, max = 2048))]
    pub cluster: String,
    /// Subnets, security groups and public IP setting of the worker tasks.
    pub network: NetworkConfig,
    /// The plan table: one entry per worker version (unique by `version`).
    #[schemars(length(min = 1, max = 50))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["version".into()]))]
    pub versions: Vec<PoolVersion>,
    /// Seconds between backstop refill checks; claims and task state changes refill immediately.
    #[serde(default = "default_replenish")]
    #[schemars(range(min = 5, max = 3600))]
    pub replenish_interval_seconds: i32,
    /// A worker not RUNNING with an IP within this many seconds is stopped and replaced.
    #[serde(default = "default_startup_timeout")]
    #[schemars(range(min = 30, max = 3600))]
    pub startup_timeout_seconds: i32,
    /// Idle workers older than this are recycled (0 = never).
    #[serde(default)]
    #[schemars(range(min = 0, max = 604800))]
    pub max_idle_seconds: i32,
    /// How claims are leased, released and served when no worker is idle.
    #[serde(default)]
    pub claims: ClaimPolicy,
    /// Extra tags on every task (the owner tags are always added).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    #[schemars(schema_with = "super::common::string_map_schema")]
    pub tags: std::collections::BTreeMap<String, String>,
    /// Region and role overrides for this object's AWS calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<AwsOverride>,
    /// Deletion, adoption and pause policy.
    #[serde(default)]
    pub policy: Policy,
}

fn default_replenish() -> i32 {
    30
}
fn default_startup_timeout() -> i32 {
    300
}
fn default_true() -> bool {
    true
}

/// One row of the plan table.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolVersion {
    /// Worker version, e.g. `2.4.1` (a label value: letters, digits, `.`, `-`, `_`).
    #[schemars(regex(pattern = r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$"), length(min = 1, max = 63))]
    pub version: String,
    /// Task definition to launch: `family:revision` or a full ARN.
    #[schemars(
        regex(pattern = r"^(arn:aws[a-zA-Z-]*:ecs:.+:task-definition/)?[a-zA-Z0-9_-]{1,255}(:[0-9]+)?$"),
        length(max = 2048)
    )]
    pub task_definition: String,
    /// Keep idle workers of this version (false: claims always cold-start).
    #[serde(default = "default_true")]
    pub pooling: bool,
    /// Idle (Available) workers to keep for this version (0..500).
    #[serde(default)]
    #[schemars(range(min = 0, max = 500))]
    pub scale_to: i32,
    /// Port the worker serves on (reported to claimants).
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
}

/// Claim handling.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClaimPolicy {
    /// Seconds a claim lasts after binding or its last `renewedAt` (10..604800).
    #[serde(default = "default_lease")]
    #[schemars(range(min = 10, max = 604800))]
    pub lease_seconds: i32,
    /// What happens to a released worker: `Stop` (default) or `Recycle` (back to Available).
    #[serde(default)]
    pub on_release: OnRelease,
    /// What a claim does when no worker is Available: `Wait` (default), `ColdStart` or `Fail`.
    #[serde(default)]
    pub when_empty: WhenEmpty,
}

impl Default for ClaimPolicy {
    fn default() -> Self {
        Self { lease_seconds: default_lease(), on_release: OnRelease::default(), when_empty: WhenEmpty::default() }
    }
}

fn default_lease() -> i32 {
    600
}

/// Fate of a released worker.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
pub enum OnRelease {
    /// Stop the task (default): a worker serves one claim.
    #[default]
    Stop,
    /// Return the worker to Available.
    Recycle,
}

/// Claim behaviour when the pool has no Available worker of the version.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
pub enum WhenEmpty {
    /// Stay Pending; bound in arrival order when a worker becomes Available (default).
    #[default]
    Wait,
    /// Launch a worker for this claim.
    ColdStart,
    /// Fail the claim at once.
    Fail,
}

/// Observed state of a HotPool.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct HotPoolStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Synced, Progressing, Degraded, DeletionBlocked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
    /// The last error; cleared on success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<LastError>,
    /// Worker counts per version.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["version".into()]))]
    pub versions: Vec<VersionStatus>,
    /// Available workers over all versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available: Option<i32>,
    /// Claimed workers over all versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed: Option<i32>,
    /// Starting workers over all versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starting: Option<i32>,
    /// Every ECS cluster this pool has started tasks in, one entry each:
    /// `{type: Tasks, id: <cluster as spec.cluster named it>, name: <startedBy>}`, the ECS tasks this
    /// pool started in that cluster, found by ListTasks `startedBy`. A cluster is recorded before the
    /// first RunTask into it; after a `spec.cluster` edit the old cluster's entry stays until no task
    /// of the pool runs there and no worker is there. Deleting the pool stops the tasks of every entry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<super::common::OwnedResource>,
    /// The `spec.aws` (account role and region) the objects in `resources` were made with. They can
    /// only be deleted with it: while `resources` is not empty, a changed `spec.aws` is refused
    /// (`Degraded`, reason `AwsScopeChanged`) and deletion keeps using this one. `{}`: the
    /// operator's own account and region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<super::common::AwsOverride>,
}

/// Worker counts of one version.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VersionStatus {
    /// Worker version.
    pub version: String,
    /// Resolved task definition ARN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_definition_arn: Option<String>,
    /// Target of Available workers.
    pub scale_to: i32,
    /// Idle workers ready to be claimed.
    pub available: i32,
    /// Workers held by a claim.
    pub claimed: i32,
    /// Workers launched but not yet RUNNING with an IP.
    pub starting: i32,
    /// Workers being stopped.
    pub stopping: i32,
}

/// One pre-started worker task (a row of the implementation table). Created and owned by the controller.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "fargate.operator.dev",
    version = "v1alpha1",
    kind = "HotPoolWorker",
    plural = "hotpoolworkers",
    shortname = "hpw",
    category = "fargate",
    namespaced,
    status = "HotPoolWorkerStatus",
    derive = "PartialEq",
    doc = "One pre-started ECS worker task of a HotPool; created and managed by the controller.",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Pool", type_ = "string", json_path = ".spec.pool"),
    printcolumn(name = "Version", type_ = "string", json_path = ".spec.version"),
    printcolumn(name = "IP", type_ = "string", json_path = ".status.ip"),
    printcolumn(name = "Port", type_ = "integer", json_path = ".status.port"),
    printcolumn(name = "Claim", type_ = "string", json_path = ".status.claim.name"),
    printcolumn(name = "Task", type_ = "string", json_path = ".status.taskArn", priority = 1),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct HotPoolWorkerSpec {
    /// Name of the HotPool this worker belongs to.
    #[schemars(length(min = 1, max = 253))]
    pub pool: String,
    /// Worker version.
    #[schemars(length(min = 1, max = 63))]
    pub version: String,
    /// Task definition ARN the task was launched from.
    #[schemars(length(min = 1, max = 2048))]
    pub task_definition_arn: String,
    /// Idempotency token (`clientToken`) of the RunTask call that launched this worker, shared by the
    /// up to 10 workers launched together; it finds the task again after a crash before the task ARN
    /// was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub launch_token: Option<String>,
}

/// Lifecycle phase of a worker.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
pub enum WorkerPhase {
    /// Launched; not yet RUNNING with an IP.
    #[default]
    Starting,
    /// Idle and claimable.
    Available,
    /// Held by a claim.
    Claimed,
    /// Being stopped. This controller removes a worker as soon as StopTask succeeds, so a worker is
    /// seen in this phase only by other tools that stop tasks first.
    Stopping,
    /// Did not start, or stopped on its own. Reserved: this controller removes such a worker at once
    /// (Event `WorkerLost` or `StartupTimeout` on the pool) and launches a replacement.
    Failed,
}

/// Observed state of a worker.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct HotPoolWorkerStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Synced, Degraded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
    /// The last error; cleared on success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<LastError>,
    /// Starting, Available, Claimed, Stopping or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<WorkerPhase>,
    /// ECS task ARN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_arn: Option<String>,
    /// Private IP of the task's ENI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// Port the worker serves on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
    /// When the task was launched (microsecond precision: pool decisions order workers by it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<MicroTime>,
    /// When the worker became Available (microsecond precision).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_since: Option<MicroTime>,
    /// The claim holding this worker, while Claimed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<WorkerClaimRef>,
}

/// Which claim holds a worker.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkerClaimRef {
    /// HotPoolClaim name.
    pub name: String,
    /// HotPoolClaim UID (guards against a re-created claim of the same name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Client holding the claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// When it was bound (or, for a cold start, reserved).
    pub since: Time,
    /// True when the worker was launched for this claim (no idle worker was available).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cold_start: bool,
}

/// A client taking one worker of a version from a HotPool.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "fargate.operator.dev",
    version = "v1alpha1",
    kind = "HotPoolClaim",
    plural = "hotpoolclaims",
    shortname = "hpc",
    category = "fargate",
    namespaced,
    status = "HotPoolClaimStatus",
    derive = "PartialEq",
    doc = "A client's claim on one worker of a HotPool; deleting it releases the worker.",
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Pool", type_ = "string", json_path = ".spec.pool"),
    printcolumn(name = "Version", type_ = "string", json_path = ".spec.version"),
    printcolumn(name = "Worker", type_ = "string", json_path = ".status.worker"),
    printcolumn(name = "IP", type_ = "string", json_path = ".status.ip"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.pool == oldSelf.pool && self.version == oldSelf.version").message("spec.pool and spec.version of a claim cannot change: delete it and create a new claim")
)]
pub struct HotPoolClaimSpec {
    /// Name of the HotPool (same namespace).
    #[schemars(length(min = 1, max = 253))]
    pub pool: String,
    /// Worker version wanted.
    #[schemars(length(min = 1, max = 63))]
    pub version: String,
    /// Who holds the claim, e.g. a service API id.
    #[schemars(length(min = 1, max = 253))]
    pub client: String,
    /// Patch to now to extend the lease by `leaseSeconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renewed_at: Option<Time>,
}

/// Lifecycle phase of a claim.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
pub enum ClaimPhase {
    /// Waiting for a worker.
    #[default]
    Pending,
    /// Holding a worker.
    Bound,
    /// The lease ran out; the worker was released.
    Expired,
    /// Could not be served (e.g. `whenEmpty: Fail`, unknown pool or version).
    Failed,
}

/// Observed state of a claim.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct HotPoolClaimStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready (bound and usable), Degraded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
    /// The last error; cleared on success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<LastError>,
    /// Pending, Bound, Expired or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<ClaimPhase>,
    /// Name of the bound HotPoolWorker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// Private IP of the worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// Port of the worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
    /// ECS task ARN of the worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_arn: Option<String>,
    /// When the claim was bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bound_at: Option<Time>,
    /// When the lease runs out unless renewed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Time>,
    /// True when a worker was launched for this claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cold_start: Option<bool>,
}
