//! `FargateApp`: one ECS service on Fargate with its task definition, target group, listener rule and DNS.

// kube-derive takes one `printcolumn(...)` per column; clippy mistakes the repeated `type_ = ...` for
// a duplicated attribute.
#![allow(clippy::duplicated_attributes)]
use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::common::{AwsOverride, LastError, NetworkConfig, Policy, conditions_schema, string_map_schema};

/// Fargate CPU units and the memory sizes (MiB) each accepts, as AWS documents them.
pub const FARGATE_SIZES: &[(i32, FargateMemory)] = &[
    // 0.25 vCPU takes 0.5, 1 or 2 GB, not 1.5 (AWS's table lists the three values).
    (256, FargateMemory::Listed(&[512, 1024, 2048])),
    (512, FargateMemory::Range { min: 1024, max: 4096, step: 1024 }),
    (1024, FargateMemory::Range { min: 2048, max: 8192, step: 1024 }),
    (2048, FargateMemory::Range { min: 4096, max: 16384, step: 1024 }),
    (4096, FargateMemory::Range { min: 8192, max: 30720, step: 1024 }),
    (8192, FargateMemory::Range { min: 16384, max: 61440, step: 4096 }),
    (16384, FargateMemory::Range { min: 32768, max: 122880, step: 8192 }),
];

/// The task memory sizes (MiB) Fargate takes for one CPU size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FargateMemory {
    /// Exactly these.
    Listed(&'static [i32]),
    /// `min..=max` in steps of `step`.
    Range {
        /// Smallest.
        min: i32,
        /// Largest.
        max: i32,
        /// Increment.
        step: i32,
    },
}

/// An ECS service on Fargate behind an existing ALB listener, with optional Route 53 record.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "fargate.operator.dev",
    version = "v1alpha1",
    kind = "FargateApp",
    plural = "fargateapps",
    shortname = "fa",
    category = "fargate",
    namespaced,
    status = "FargateAppStatus",
    derive = "PartialEq",
    doc = "An ECS service on Fargate: task definition, service, target group, listener rule and DNS record.",
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Desired", type_ = "integer", json_path = ".status.replicas.desired"),
    printcolumn(name = "Running", type_ = "integer", json_path = ".status.replicas.running"),
    printcolumn(name = "Rollout", type_ = "string", json_path = ".status.rollout.state"),
    printcolumn(name = "URL", type_ = "string", json_path = ".status.url"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new(CPU_MEMORY_RULE).message("spec.memory is not valid for spec.cpu: see https://docs.aws.amazon.com/AmazonECS/latest/developerguide/fargate-tasks-services.html#fargate-tasks-size (e.g. cpu 256 takes memory 512, 1024 or 2048)"),
    validation = Rule::new("self.containers.all(c, self.containers.exists_one(d, d.name == c.name))").message("spec.containers[].name must be unique"),
    validation = Rule::new("!has(self.loadBalancer) || !has(self.loadBalancer.containerName) || self.containers.exists(c, c.name == self.loadBalancer.containerName)").message("spec.loadBalancer.containerName must name one of spec.containers"),
    validation = Rule::new("!has(self.dns) || (has(self.loadBalancer) && has(self.loadBalancer.listenerRule))").message("spec.dns needs spec.loadBalancer.listenerRule: the record points at that listener's load balancer"),
    validation = Rule::new(super::common::AWS_UNCHANGED_RULE).message(super::common::AWS_UNCHANGED_MESSAGE)
)]
pub struct FargateAppSpec {
    /// ECS cluster name or ARN the service runs in.
    #[schemars(length(min = 1, max = 2048))]
    pub cluster: String,
    /// Containers of the task (1..10). The first one with a `port` receives load-balancer traffic
    /// unless `loadBalancer.containerName` says otherwise.
    #[schemars(length(min = 1, max = 10))]
    pub containers: Vec<ContainerSpec>,
    /// Task CPU units: 256, 512, 1024, 2048, 4096, 8192 or 16384.
    #[schemars(extend("enum" = [256, 512, 1024, 2048, 4096, 8192, 16384]))]
    pub cpu: i32,
    /// Task memory in MiB; must be a valid Fargate size for `cpu`.
    #[schemars(range(min = 512, max = 122880))]
    pub memory: i32,
    /// CPU architecture of the task.
    #[serde(default)]
    pub cpu_architecture: CpuArchitecture,
    /// Ephemeral storage of each task in GiB (Fargate: 21..200); unset = Fargate's default 20 GiB.
    #[serde(default, rename = "ephemeralStorageGiB", skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 21, max = 200))]
    pub ephemeral_storage_gib: Option<i32>,
    /// IAM role ECS uses to pull images, write logs and read secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^arn:aws[a-zA-Z-]*:iam::\d{12}:role/.+$"), length(max = 2048))]
    pub execution_role_arn: Option<String>,
    /// IAM role the application assumes inside the task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^arn:aws[a-zA-Z-]*:iam::\d{12}:role/.+$"), length(max = 2048))]
    pub task_role_arn: Option<String>,
    /// Subnets, security groups and public IP setting of the tasks.
    pub network: NetworkConfig,
    /// ECS desired count.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0, max = 5000))]
    pub replicas: i32,
    /// `Enforce` keeps `replicas` at all times; `InitialOnly` sets it at creation and never resets a
    /// count changed by external autoscaling.
    #[serde(default)]
    pub replicas_policy: ReplicasPolicy,
    /// Rolling deployment settings.
    #[serde(default)]
    pub deployment: DeploymentSpec,
    /// Change this timestamp to force a new deployment (like `kubectl rollout restart`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarted_at: Option<Time>,
    /// How many task definition revisions registered by this object to keep; older ones are deregistered.
    #[serde(default = "default_keep_revisions")]
    #[schemars(range(min = 1, max = 100))]
    pub keep_task_definition_revisions: i32,
    /// Target group and optional listener rule on an existing ALB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancerSpec>,
    /// Optional Route 53 record pointing at the listener's load balancer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<DnsSpec>,
    /// Extra tags on every AWS resource (the owner tags are always added).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "string_map_schema")]
    pub tags: BTreeMap<String, String>,
    /// Region and role overrides for this object's AWS calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<AwsOverride>,
    /// Deletion, adoption and pause policy.
    #[serde(default)]
    pub policy: Policy,
}

/// CEL form of [`FARGATE_SIZES`], kept next to it so the two cannot drift unnoticed (a unit test
/// compares them).
pub const CPU_MEMORY_RULE: &str = "(self.cpu == 256 && (self.memory == 512 || self.memory == 1024 || self.memory == 2048)) || \
(self.cpu == 512 && self.memory >= 1024 && self.memory <= 4096 && self.memory % 1024 == 0) || \
(self.cpu == 1024 && self.memory >= 2048 && self.memory <= 8192 && self.memory % 1024 == 0) || \
(self.cpu == 2048 && self.memory >= 4096 && self.memory <= 16384 && self.memory % 1024 == 0) || \
(self.cpu == 4096 && self.memory >= 8192 && self.memory <= 30720 && self.memory % 1024 == 0) || \
(self.cpu == 8192 && self.memory >= 16384 && self.memory <= 61440 && self.memory % 4096 == 0) || \
(self.cpu == 16384 && self.memory >= 32768 && self.memory <= 122880 && self.memory % 8192 == 0)";

fn default_replicas() -> i32 {
    1
}
fn default_keep_revisions() -> i32 {
    5
}
fn default_true() -> bool {
    true
}

/// One container of the task.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerSpec {
    /// Container name (DNS label), unique within the task.
    #[schemars(regex(pattern = r"^[a-zA-Z0-9][a-zA-Z0-9_-]{0,254}$"), length(max = 255))]
    pub name: String,
    /// Image reference, e.g. `123456789012.dkr.ecr.us-east-1.amazonaws.com/web:1.4.2`.
    #[schemars(length(min = 1, max = 1024))]
    pub image: String,
    /// TCP container port the application listens on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
    /// Overrides the image's ENTRYPOINT.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub command: Vec<String>,
    /// Overrides the image's CMD.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub args: Vec<String>,
    /// Plain environment variables (name -> value). Order never matters.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "string_map_schema")]
    pub env: BTreeMap<String, String>,
    /// Secret environment variables (name -> Secrets Manager or SSM Parameter ARN); values are
    /// never read or logged by the operator.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "string_map_schema")]
    pub secrets: BTreeMap<String, String>,
    /// If an essential container stops, the whole task stops.
    #[serde(default = "default_true")]
    pub essential: bool,
    /// Container health check run by the ECS agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<ContainerHealthCheck>,
    /// CloudWatch Logs group; when set, the `awslogs` log driver is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[\.\-_/#A-Za-z0-9]{1,512}$"))]
    pub log_group: Option<String>,
    /// Hard memory limit of this container in MiB (defaults to an even share of the task memory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 6, max = 122880))]
    pub memory: Option<i32>,
}

/// ECS container health check.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.command[0] in ['CMD', 'CMD-SHELL', 'NONE']").message("spec.containers[].healthCheck.command must start with CMD, CMD-SHELL or NONE"))]
#[schemars(extend("x-kubernetes-map-type" = "atomic"))]
pub struct ContainerHealthCheck {
    /// Command, starting with `CMD` or `CMD-SHELL`, e.g. `[CMD-SHELL, "curl -f localhost:8080/health"]`.
    #[schemars(length(min = 1, max = 50))]
    pub command: Vec<String>,
    /// Seconds between checks (5..300).
    #[serde(default = "default_hc_interval")]
    #[schemars(range(min = 5, max = 300))]
    pub interval_seconds: i32,
    /// Seconds before a check counts as failed (2..120).
    #[serde(default = "default_hc_timeout")]
    #[schemars(range(min = 2, max = 120))]
    pub timeout_seconds: i32,
    /// Consecutive failures before the container is unhealthy (1..10).
    #[serde(default = "default_hc_retries")]
    #[schemars(range(min = 1, max = 10))]
    pub retries: i32,
    /// Grace period in seconds before failures count (0..300).
    #[serde(default)]
    #[schemars(range(min = 0, max = 300))]
    pub start_period_seconds: i32,
}

fn default_hc_interval() -> i32 {
    30
}
fn default_hc_timeout() -> i32 {
    5
}
fn default_hc_retries() -> i32 {
    3
}

/// CPU architecture of the Fargate task.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[allow(non_camel_case_types, clippy::upper_case_acronyms)]
pub enum CpuArchitecture {
    /// Intel/AMD (default).
    #[default]
    X86_64,
    /// Graviton.
    ARM64,
}

/// How `replicas` is enforced.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
pub enum ReplicasPolicy {
    /// Keep the desired count at `replicas` at all times (default).
    #[default]
    Enforce,
    /// Set the desired count only when the service is created, for external autoscaling.
    InitialOnly,
}

/// Rolling deployment settings of the ECS service.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.maximumPercent > self.minimumHealthyPercent || self.minimumHealthyPercent == 100 && self.maximumPercent == 100").message("spec.deployment.maximumPercent must exceed minimumHealthyPercent, or a rollout cannot start a new task"))]
pub struct DeploymentSpec {
    /// Lower bound of running tasks during a deployment, in percent of desired (0..100).
    #[serde(default = "default_min_healthy")]
    #[schemars(range(min = 0, max = 100))]
    pub minimum_healthy_percent: i32,
    /// Upper bound of running tasks during a deployment, in percent of desired (100..200).
    #[serde(default = "default_max_percent")]
    #[schemars(range(min = 100, max = 200))]
    pub maximum_percent: i32,
    /// Deployment circuit breaker: stop (and optionally roll back) a deployment that cannot reach steady state.
    #[serde(default)]
    pub circuit_breaker: CircuitBreaker,
    /// Seconds ECS ignores failing load-balancer health checks after a task starts (0..2147483647).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 2147483647))]
    pub health_check_grace_period_seconds: Option<i32>,
}

impl Default for DeploymentSpec {
    fn default() -> Self {
        Self {
            minimum_healthy_percent: default_min_healthy(),
            maximum_percent: default_max_percent(),
            circuit_breaker: CircuitBreaker::default(),
            health_check_grace_period_seconds: None,
        }
    }
}

fn default_min_healthy() -> i32 {
    100
}
fn default_max_percent() -> i32 {
    200
}

/// ECS deployment circuit breaker.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CircuitBreaker {
    /// Turn the circuit breaker on (default true).
    #[serde(default = "default_true")]
    pub enable: bool,
    /// Roll back to the last completed deployment when it trips (default true).
    #[serde(default = "default_true")]
    pub rollback: bool,
}

impl Default for CircuitBreaker {
    fn default() -> Self {
        Self { enable: true, rollback: true }
    }
}

/// Load balancing of the service: our own `ip` target group plus optional listener rule.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.listenerRule) || (has(self.targetGroup) && has(self.targetGroup.vpcId))").message("spec.loadBalancer.targetGroup.vpcId is required when there is no spec.loadBalancer.listenerRule"))]
#[schemars(extend("x-kubernetes-map-type" = "atomic"))]
pub struct LoadBalancerSpec {
    /// Container that receives traffic; default: the first container with a `port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub container_name: Option<String>,
    /// Port of that container; default: its `port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub container_port: Option<i32>,
    /// The `ip` target group the operator creates for this service.
    #[serde(default)]
    pub target_group: TargetGroupSpec,
    /// Existing target groups (e.g. an internal NLB's) the service also registers into (at most 4:
    /// ECS allows 5 per service in all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 4), inner(regex(pattern = r"^arn:aws[a-zA-Z-]*:elasticloadbalancing:.+:targetgroup/.+$")))]
    pub additional_target_group_arns: Vec<String>,
    /// A rule on an existing ALB listener that forwards matching requests to the target group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_rule: Option<ListenerRuleSpec>,
}

/// Settings of the target group the operator creates.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetGroupSpec {
    /// VPC of the target group; required only without `listenerRule` (otherwise the listener's
    /// load balancer VPC is used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^vpc-[0-9a-zA-Z]+$"))]
    pub vpc_id: Option<String>,
    /// Protocol between the load balancer and the tasks.
    #[serde(default)]
    pub protocol: TargetProtocol,
    /// Target health check.
    #[serde(default)]
    pub health_check: TargetHealthCheck,
    /// Seconds the load balancer drains a deregistering target (0..3600).
    #[serde(default = "default_dereg_delay")]
    #[schemars(range(min = 0, max = 3600))]
    pub deregistration_delay_seconds: i32,
}

fn default_dereg_delay() -> i32 {
    30
}

/// Target group protocol.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[allow(clippy::upper_case_acronyms)]
pub enum TargetProtocol {
    /// Plain HTTP (default).
    #[default]
    HTTP,
    /// HTTPS to the tasks.
    HTTPS,
}

/// Target group health check.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.timeoutSeconds < self.intervalSeconds").message("spec.loadBalancer.targetGroup.healthCheck.timeoutSeconds must be less than intervalSeconds"))]
pub struct TargetHealthCheck {
    /// HTTP path probed on each target.
    #[serde(default = "default_hc_path")]
    #[schemars(regex(pattern = r"^/.*$"), length(max = 1024))]
    pub path: String,
    /// Seconds between probes (5..300).
    #[serde(default = "default_tg_interval")]
    #[schemars(range(min = 5, max = 300))]
    pub interval_seconds: i32,
    /// Seconds before a probe fails (2..120).
    #[serde(default = "default_hc_timeout")]
    #[schemars(range(min = 2, max = 120))]
    pub timeout_seconds: i32,
    /// Consecutive successes before a target is healthy (2..10).
    #[serde(default = "default_threshold")]
    #[schemars(range(min = 2, max = 10))]
    pub healthy_threshold: i32,
    /// Consecutive failures before a target is unhealthy (2..10).
    #[serde(default = "default_threshold")]
    #[schemars(range(min = 2, max = 10))]
    pub unhealthy_threshold: i32,
    /// HTTP codes that mean healthy, e.g. `200` or `200-399` (each 200..499, as ALB accepts).
    #[serde(default = "default_matcher")]
    #[schemars(regex(pattern = r"^[2-4][0-9]{2}([,-][2-4][0-9]{2})*$"))]
    pub matcher: String,
}

impl Default for TargetHealthCheck {
    fn default() -> Self {
        Self {
            path: default_hc_path(),
            interval_seconds: default_tg_interval(),
            timeout_seconds: default_hc_timeout(),
            healthy_threshold: default_threshold(),
            unhealthy_threshold: default_threshold(),
            matcher: default_matcher(),
        }
    }
}

fn default_hc_path() -> String {
    "/".into()
}
fn default_tg_interval() -> i32 {
    30
}
fn default_threshold() -> i32 {
    3
}
fn default_matcher() -> String {
    "200-399".into()
}

/// A forward rule on an existing ALB listener.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("(has(self.pathPatterns) && size(self.pathPatterns) > 0) || (has(self.hostHeaders) && size(self.hostHeaders) > 0)").message("spec.loadBalancer.listenerRule needs at least one of pathPatterns or hostHeaders"),
    validation = Rule::new("self.priorityRange.min <= self.priorityRange.max").message("spec.loadBalancer.listenerRule.priorityRange.min must not exceed max"),
    validation = Rule::new("!has(self.priority) || (self.priority >= self.priorityRange.min && self.priority <= self.priorityRange.max)").message("spec.loadBalancer.listenerRule.priority must lie inside priorityRange")
)]
#[schemars(extend("x-kubernetes-map-type" = "atomic"))]
pub struct ListenerRuleSpec {
    /// ARN of the existing ALB listener.
    #[schemars(regex(pattern = r"^arn:aws[a-zA-Z-]*:elasticloadbalancing:.+:listener/app/.+$"), length(max = 2048))]
    pub listener_arn: String,
    /// Path patterns, e.g. `/app/*` (up to 5 values with hostHeaders together): letters, digits
    /// and `_-.$/~"'@:+&*?`, no spaces (what ALB accepts).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 5),
        inner(length(min = 1, max = 128), regex(pattern = r#"^[A-Za-z0-9_\-.$/~"'@:+&*?]+$"#))
    )]
    pub path_patterns: Vec<String>,
    /// Host headers, e.g. `web.example.com`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 5), inner(length(min = 1, max = 128)))]
    pub host_headers: Vec<String>,
    /// Rule priority (1..50000); omitted = the lowest free priority inside `priorityRange`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 50000))]
    pub priority: Option<i32>,
    /// Range searched for a free priority when `priority` is omitted.
    #[serde(default)]
    pub priority_range: PriorityRange,
}

/// Inclusive range of listener rule priorities.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PriorityRange {
    /// Lowest priority to use (1..50000).
    #[serde(default = "default_prio_min")]
    #[schemars(range(min = 1, max = 50000))]
    pub min: i32,
    /// Highest priority to use (1..50000).
    #[serde(default = "default_prio_max")]
    #[schemars(range(min = 1, max = 50000))]
    pub max: i32,
}

impl Default for PriorityRange {
    fn default() -> Self {
        Self { min: default_prio_min(), max: default_prio_max() }
    }
}

fn default_prio_min() -> i32 {
    1
}
fn default_prio_max() -> i32 {
    50000
}

/// Route 53 record for the app.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-map-type" = "atomic"))]
pub struct DnsSpec {
    /// Hosted zone ID, e.g. `Z123ABC` (a `/hostedzone/` prefix is accepted).
    #[schemars(regex(pattern = r"^(/hostedzone/)?[A-Z0-9]{1,32}$"))]
    pub hosted_zone_id: String,
    /// Fully qualified record name inside that zone, e.g. `web.apps.example.com`.
    #[schemars(
        regex(pattern = r"^([a-zA-Z0-9_]([a-zA-Z0-9_-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z]{2,63}\.?$"),
        length(max = 253)
    )]
    pub name: String,
    /// `Alias` (an A alias with evaluateTargetHealth, default) or `CNAME`.
    #[serde(default, rename = "type")]
    pub record_type: DnsRecordType,
    /// TTL in seconds (CNAME only; alias records take the target's TTL).
    #[serde(default = "default_dns_ttl")]
    #[schemars(range(min = 0, max = 2147483647))]
    pub ttl: i64,
}

fn default_dns_ttl() -> i64 {
    60
}

/// Kind of DNS record.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[allow(clippy::upper_case_acronyms)]
pub enum DnsRecordType {
    /// A alias to the load balancer with evaluateTargetHealth (default).
    #[default]
    Alias,
    /// CNAME to the load balancer's DNS name.
    CNAME,
}

/// Observed state of a FargateApp.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct FargateAppStatus {
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
    /// Task definition revision the service runs (or rolls to).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_definition_arn: Option<String>,
    /// Content hash of the rendered task definition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_definition_hash: Option<String>,
    /// ARN of the ECS service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_arn: Option<String>,
    /// ARN of the target group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_group_arn: Option<String>,
    /// ARN of the listener rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_rule_arn: Option<String>,
    /// Priority of the listener rule (assigned or specified).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_rule_priority: Option<i32>,
    /// DNS name of the listener's load balancer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer_dns_name: Option<String>,
    /// Best user-facing address of the app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Desired, running and pending task counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<ReplicaCounts>,
    /// State of the newest deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutStatus>,
    /// The `spec.restartedAt` already rolled out (a different value forces a new deployment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarted_at: Option<Time>,
    /// Every AWS object this FargateApp created or adopted: its target group, listener rule (with
    /// the listener it is on), ECS service (with its cluster), task definition family and Route 53
    /// record (with the load balancer name it points at). Deletion, and cleanup after an edit that no
    /// longer wants one of them (a renamed record, a moved listener, a removed load balancer), work
    /// from this list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<super::common::OwnedResource>,
    /// The `spec.aws` (account role and region) the objects in `resources` were made with. They can
    /// only be deleted with it: while `resources` is not empty, a changed `spec.aws` is refused
    /// (`Degraded`, reason `AwsScopeChanged`) and deletion keeps using this one. `{}`: the
    /// operator's own account and region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<super::common::AwsOverride>,
}

/// ECS task counts.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaCounts {
    /// Desired count of the service.
    pub desired: i32,
    /// Running tasks.
    pub running: i32,
    /// Pending tasks.
    pub pending: i32,
}

/// Rollout state of the newest (PRIMARY) deployment.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStatus {
    /// ECS rollout state: IN_PROGRESS, COMPLETED or FAILED.
    pub state: String,
    /// ECS's reason for that state.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Tasks of this deployment that failed to start.
    #[serde(default)]
    pub failed_tasks: i32,
}
