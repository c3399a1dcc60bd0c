//! Types shared by every kind: AWS overrides, ownership policy, network settings, status pieces.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// API group of every kind.
pub const GROUP: &str = "fargate.operator.dev";
/// API version of every kind.
pub const VERSION: &str = "v1alpha1";
/// Finalizer that guards AWS cleanup.
pub const FINALIZER: &str = "fargate.operator.dev/cleanup";
/// Server-side-apply field manager for everything the operator writes.
pub const FIELD_MANAGER: &str = "fargate-operator";

/// Per-object AWS connection overrides.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsOverride {
    /// AWS region for this object's resources; defaults to the controller's `--region`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-z]{2}(-[a-z]+)+-\d$"), length(max = 32))]
    pub region: Option<String>,
    /// IAM role to assume for this object's AWS calls (cross-account), e.g.
    /// `arn:aws:iam::123456789012:role/fargate-operator`. Credentials are cached per role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^arn:aws[a-zA-Z-]*:iam::\d{12}:role/.+$"), length(max = 2048))]
    pub role_arn: Option<String>,
    /// External ID passed to `sts:AssumeRole` when the role's trust policy requires one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 1224))]
    pub external_id: Option<String>,
}

/// What happens to AWS resources when the Kubernetes object is deleted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    /// Delete every AWS resource this object created (default).
    #[default]
    Delete,
    /// Remove the finalizer and leave the AWS resources in place.
    Retain,
}

/// Whether an existing AWS resource with the expected name may be taken over.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum AdoptionPolicy {
    /// Adopt only resources that already carry this object's owner tags (default).
    #[default]
    IfTagged,
    /// Never adopt: any existing resource with the expected name is a `NameConflict`.
    Never,
}

/// Ownership and lifecycle policy.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    /// `Delete` (default) removes the AWS resources on deletion; `Retain` leaves them.
    #[serde(default)]
    pub deletion: DeletionPolicy,
    /// `IfTagged` (default) adopts existing resources only when they carry our owner tags;
    /// `Never` refuses any existing resource.
    #[serde(default)]
    pub adoption: AdoptionPolicy,
    /// When true the controller makes no AWS writes for this object (observes and reports only).
    #[serde(default)]
    pub paused: bool,
}

/// awsvpc network settings for Fargate tasks.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkConfig {
    /// Subnet IDs the tasks run in (1..16), e.g. `subnet-0abc1234`.
    #[schemars(length(min = 1, max = 16), inner(regex(pattern = r"^subnet-[0-9a-zA-Z]+$")))]
    pub subnets: Vec<String>,
    /// Security group IDs attached to the tasks' ENIs (0..5), e.g. `sg-0abc1234`.
    #[serde(default)]
    #[schemars(length(max = 5), inner(regex(pattern = r"^sg-[0-9a-zA-Z]+$")))]
    pub security_groups: Vec<String>,
    /// Give each task a public IP (needed in public subnets without a NAT gateway).
    #[serde(default)]
    pub assign_public_ip: bool,
}

/// The last AWS or validation error; cleared on the next success.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastError {
    /// What was being done, e.g. `ecs:CreateService` or `validate`.
    pub operation: String,
    /// Machine-readable code, e.g. `AccessDeniedException` or `InvalidSpec`.
    pub code: String,
    /// Human-readable message.
    pub message: String,
    /// When it happened.
    pub time: Time,
}

/// One AWS object this object created or adopted: the ownership inventory in `status.resources`.
/// Deleting the object, or an edit that no longer wants the AWS object, removes exactly these.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OwnedResource {
    /// Kind of AWS object: `HealthCheck`, `Record`, `TargetGroup`, `ListenerRule`, `Service`,
    /// `TaskDefinitionFamily`, or `Tasks` (a HotPool's ECS tasks in the cluster `id` names).
    #[serde(rename = "type")]
    pub type_: String,
    /// Its identity: an ARN, a health check id, a task definition family, an ECS cluster (`Tasks`),
    /// or `<zone>/<name>/<type>[/<set id>]` for a record; `planned:<reference or name>` for a create
    /// recorded before it was sent whose answer has not come yet.
    pub id: String,
    /// What it lives in, when deleting it needs that (a listener ARN, an ECS cluster); for a record
    /// re-pointed to another target whose change is not confirmed yet, the target it had before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// A name deleting or finding it needs: a health check's CallerReference, the target a record
    /// was written with (only a record still pointing there is ours to delete), or the `startedBy`
    /// that finds a HotPool's tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// CEL transition rule of every kind's spec: `spec.aws` (account, role, region) cannot change.
/// What the object made lives in the old account and region and is deleted with the old
/// credentials; moving it is a delete and a create.
pub const AWS_UNCHANGED_RULE: &str = "has(self.aws) == has(oldSelf.aws) && (!has(self.aws) || self.aws == oldSelf.aws)";

/// The message of [`AWS_UNCHANGED_RULE`].
pub const AWS_UNCHANGED_MESSAGE: &str = "spec.aws cannot change: what this object made lives in the old account and region; delete the object (its AWS resources go with it) and create it again with the new spec.aws";

/// Extra tags copied onto every AWS resource (owner tags always win).
pub type Tags = BTreeMap<String, String>;

/// Schema for `conditions`: a list-map keyed by `type`, so server-side apply merges per condition.
pub fn conditions_schema(generator: &mut SchemaGenerator) -> Schema {
    let item = generator.subschema_for::<Condition>();
    json_schema!({
        "type": "array",
        "description": "Current state, one entry per condition type (Ready, Synced, Progressing, Degraded, DeletionBlocked, ...).",
        "items": item,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
    })
}

/// Schema for string maps (`env`, `tags`): keys and values are strings.
pub fn string_map_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "additionalProperties": {"type": "string"},
        "maxProperties": 50,
    })
}
