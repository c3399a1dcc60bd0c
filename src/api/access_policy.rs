//! `AccessPolicy` (cluster-scoped): what the objects of some namespaces may use in AWS. The
//! operator acts with one identity for every namespace; a policy keeps one team's objects off
//! another team's roles, listeners, zones, clusters, networks and target groups.

// kube-derive takes one `printcolumn(...)` per column; clippy mistakes the repeated `type_ = ...` for
// a duplicated attribute.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// What the FargateApps, DnsFailovers and HotPools of some namespaces may use in AWS. A namespace
/// named by several policies may use what any of them allows. Patterns take `*` for any run of
/// characters (`arn:aws:iam::111122223333:role/team-a-*`, `*`).
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "fargate.operator.dev",
    version = "v1alpha1",
    kind = "AccessPolicy",
    plural = "accesspolicies",
    shortname = "ap",
    category = "fargate",
    derive = "PartialEq",
    doc = "What the objects of some namespaces may use in AWS (roles, listeners, hosted zones, clusters, networks, target groups, task definitions, pool size).",
    printcolumn(name = "Namespaces", type_ = "string", json_path = ".spec.namespaces"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct AccessPolicySpec {
    /// Namespaces this policy applies to, by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), inner(length(min = 1, max = 63)))]
    pub namespaces: Vec<String>,
    /// Namespaces this policy applies to, by label (in addition to `namespaces`). An empty
    /// selector (`{}`) selects every namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    /// What those namespaces may use. A list left out allows nothing of its kind.
    #[serde(default)]
    pub allow: Allow,
}

/// The AWS objects a policy's namespaces may use. Every list holds patterns (`*` matches any run
/// of characters); an empty or missing list allows nothing of its kind.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Allow {
    /// IAM role ARNs for `spec.aws.roleArn`, `spec.taskRoleArn` and `spec.executionRoleArn`, e.g.
    /// `arn:aws:iam::111122223333:role/team-a-*`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 2048)))]
    pub roles: Vec<String>,
    /// ALB listeners a FargateApp may add its rule to, each with the rule priorities it may take.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub listeners: Vec<ListenerGrant>,
    /// Route 53 hosted zones FargateApps and DnsFailovers may write records (and NS delegations)
    /// into, each with the record names allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub hosted_zones: Vec<ZoneGrant>,
    /// ECS clusters (names or ARNs; a pattern is compared with both), e.g. `apps`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 2048)))]
    pub clusters: Vec<String>,
    /// Subnet IDs tasks may run in, e.g. `subnet-0abc*` or `*`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), inner(length(min = 1, max = 256)))]
    pub subnets: Vec<String>,
    /// Security group IDs tasks may use, e.g. `sg-0team-a`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256), inner(length(min = 1, max = 256)))]
    pub security_groups: Vec<String>,
    /// Target group ARNs a FargateApp may register its tasks with
    /// (`spec.loadBalancer.additionalTargetGroupArns`); the target group it creates itself needs
    /// no entry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 2048)))]
    pub target_groups: Vec<String>,
    /// Task definition families a HotPool version may run (`spec.versions[].taskDefinition`), e.g.
    /// `team-a-*`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 255)))]
    pub task_definition_families: Vec<String>,
    /// Most pool tasks the namespaces' HotPools may ask for together (the sum of `scaleTo` over
    /// every pooling version of every HotPool in a namespace); unset = no limit. With several
    /// policies naming a namespace, the largest limit applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100000))]
    pub max_pool_tasks: Option<i32>,
}

/// One listener a policy allows, with the rule priorities allowed on it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.priorityRange) || self.priorityRange.min <= self.priorityRange.max").message("allow.listeners[].priorityRange.min must not exceed max"))]
pub struct ListenerGrant {
    /// Listener ARN (or a pattern of ARNs).
    #[schemars(length(min = 1, max = 2048))]
    pub arn: String,
    /// Rule priorities allowed on the listener; unset = 1..50000. A FargateApp whose
    /// `listenerRule.priority` is unset takes the lowest free priority inside both this range
    /// and its own `priorityRange`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_range: Option<super::fargate_app::PriorityRange>,
}

/// One hosted zone a policy allows, with the record names allowed in it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ZoneGrant {
    /// Hosted zone ID, e.g. `Z0APPS` (with or without `/hostedzone/`).
    #[schemars(regex(pattern = r"^(/hostedzone/)?[A-Z0-9*]{1,32}$"))]
    pub id: String,
    /// Record names allowed in the zone, compared without case and without the trailing dot,
    /// e.g. `*.team-a.example.com`; unset or empty = any name in the zone. For an NS delegation
    /// the name is the delegated zone's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 255)))]
    pub names: Vec<String>,
}
