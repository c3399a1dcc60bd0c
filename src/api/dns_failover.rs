//! `DnsFailover`: a Route 53 PRIMARY/SECONDARY failover CNAME pair with health checks.

// kube-derive takes one `printcolumn(...)` per column; clippy mistakes the repeated `type_ = ...` for
// a duplicated attribute.
#![allow(clippy::duplicated_attributes)]
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::common::{AwsOverride, LastError, Policy, conditions_schema};

/// Regex for a DNS name (optionally with a trailing dot), no wildcard.
pub const DNS_NAME_PATTERN: &str = r"^([a-zA-Z0-9_]([a-zA-Z0-9_-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z]{2,63}\.?$";

/// Route 53 failover pair: PRIMARY with a health check, SECONDARY as the fallback.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "fargate.operator.dev",
    version = "v1alpha1",
    kind = "DnsFailover",
    plural = "dnsfailovers",
    shortname = "dnsf",
    category = "fargate",
    namespaced,
    status = "DnsFailoverStatus",
    derive = "PartialEq",
    doc = "A Route 53 PRIMARY/SECONDARY failover CNAME pair with health checks, a manual DR switch and NS delegation.",
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Name", type_ = "string", json_path = ".spec.name"),
    printcolumn(name = "Mode", type_ = "string", json_path = ".spec.mode"),
    printcolumn(name = "Active", type_ = "string", json_path = ".status.activeTarget"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.primary.target.lowerAscii() != self.secondary.target.lowerAscii() && self.primary.target.lowerAscii() + '.' != self.secondary.target.lowerAscii() && self.primary.target.lowerAscii() != self.secondary.target.lowerAscii() + '.'").message("spec.primary.target and spec.secondary.target must differ"),
    validation = Rule::new("self.primary.target.lowerAscii() != self.name.lowerAscii() && self.secondary.target.lowerAscii() != self.name.lowerAscii()").message("spec.primary.target and spec.secondary.target must not point at spec.name itself"),
    validation = Rule::new(super::common::AWS_UNCHANGED_RULE).message(super::common::AWS_UNCHANGED_MESSAGE)
)]
pub struct DnsFailoverSpec {
    /// Hosted zone ID holding the record, e.g. `Z0ACS` (a `/hostedzone/` prefix is accepted).
    #[schemars(regex(pattern = r"^(/hostedzone/)?[A-Z0-9]{1,32}$"))]
    pub hosted_zone_id: String,
    /// Record name, inside the zone and never its apex (a CNAME cannot sit at the apex), e.g.
    /// `dev.acs.app.com`.
    #[schemars(
        regex(pattern = r"^([a-zA-Z0-9_]([a-zA-Z0-9_-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z]{2,63}\.?$"),
        length(max = 253)
    )]
    pub name: String,
    /// TTL of both records in seconds (0..86400).
    #[serde(default = "default_ttl")]
    #[schemars(range(min = 0, max = 86400))]
    pub ttl: i64,
    /// Where traffic goes while it is healthy; needs a health check.
    pub primary: PrimaryEndpoint,
    /// Where traffic goes when the primary is unhealthy.
    pub secondary: SecondaryEndpoint,
    /// `Auto` lets Route 53 fail over on health; `ForceSecondary` sends traffic to the secondary (DR
    /// drill or disaster); `ForcePrimary` pins it to the primary. Applied through the primary's health
    /// check, never by rewriting records.
    #[serde(default)]
    pub mode: FailoverMode,
    /// Optional NS delegation of this record's hosted zone in its parent zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegation: Option<Delegation>,
    /// Extra tags on the health checks (the owner tags are always added).
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

fn default_ttl() -> i64 {
    60
}

/// The primary side of the pair.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrimaryEndpoint {
    /// CNAME value while the primary is healthy, e.g. `lb.dev.app.com`.
    #[schemars(
        regex(pattern = r"^([a-zA-Z0-9_]([a-zA-Z0-9_-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z]{2,63}\.?$"),
        length(max = 253)
    )]
    pub target: String,
    /// Health check that decides failover (required: Route 53 needs it on a non-alias PRIMARY).
    pub health_check: HealthCheckSpec,
}

/// The secondary side of the pair.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecondaryEndpoint {
    /// CNAME value when the primary is unhealthy, e.g. `lb.drdev.app.com`.
    #[schemars(
        regex(pattern = r"^([a-zA-Z0-9_]([a-zA-Z0-9_-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z]{2,63}\.?$"),
        length(max = 253)
    )]
    pub target: String,
    /// Optional health check of the secondary (reported in status; Route 53 answers the secondary
    /// even when it is unhealthy if the primary is unhealthy too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheckSpec>,
}

/// A Route 53 health check.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.type != 'TCP' || (!has(self.path) && (!has(self.searchString) || self.searchString == ''))").message("healthCheck.path and healthCheck.searchString apply to HTTP and HTTPS checks only"),
)]
#[schemars(extend("x-kubernetes-map-type" = "atomic"))]
pub struct HealthCheckSpec {
    /// `HTTPS`, `HTTP` or `TCP`.
    #[serde(rename = "type")]
    pub check_type: HealthCheckType,
    /// Host name to probe; default: the endpoint's `target`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        regex(pattern = r"^([a-zA-Z0-9_]([a-zA-Z0-9_-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z]{2,63}\.?$"),
        length(max = 253)
    )]
    pub fqdn: Option<String>,
    /// Port to probe; default 443 for HTTPS, 80 for HTTP and TCP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
    /// Path for HTTP(S) checks, e.g. `/app/health`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^/.*$"), length(max = 255))]
    pub path: Option<String>,
    /// When set, the response body must contain this string (HTTP(S)_STR_MATCH).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub search_string: Option<String>,
    /// Seconds between probes: 10 or 30 (cannot change after creation: a change replaces the check).
    #[serde(default = "default_interval")]
    #[schemars(extend("enum" = [10, 30]))]
    pub request_interval_seconds: i32,
    /// Consecutive failures before unhealthy (1..10).
    #[serde(default = "default_threshold")]
    #[schemars(range(min = 1, max = 10))]
    pub failure_threshold: i32,
}

fn default_interval() -> i32 {
    30
}
fn default_threshold() -> i32 {
    3
}

/// Health check protocol.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[allow(clippy::upper_case_acronyms)]
pub enum HealthCheckType {
    /// HTTPS GET; healthy on 2xx/3xx.
    HTTPS,
    /// HTTP GET; healthy on 2xx/3xx.
    HTTP,
    /// TCP connect.
    TCP,
}

/// Manual DR switch.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
pub enum FailoverMode {
    /// Route 53 fails over on the primary's health (default).
    #[default]
    Auto,
    /// Treat the primary as healthy whatever its checks say (failback, or pin during maintenance).
    ForcePrimary,
    /// Treat the primary as unhealthy: traffic goes to the secondary (DR switch).
    ForceSecondary,
}

/// NS delegation of the record's zone in its parent zone.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-map-type" = "atomic"))]
pub struct Delegation {
    /// Hosted zone ID of the parent zone, e.g. `Z0APP`.
    #[schemars(regex(pattern = r"^(/hostedzone/)?[A-Z0-9]{1,32}$"))]
    pub parent_hosted_zone_id: String,
    /// TTL of the NS record in the parent zone (default 172800, two days).
    #[serde(default = "default_ns_ttl")]
    #[schemars(range(min = 0, max = 2147483647))]
    pub ttl: i64,
}

fn default_ns_ttl() -> i64 {
    172800
}

/// Observed state of a DnsFailover.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct DnsFailoverStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Synced, Progressing, Degraded, DeletionBlocked, PrimaryHealthy, FailedOver, DelegationReady.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
    /// The last error; cleared on success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<LastError>,
    /// What Route 53 answers now: `primary`, `secondary` or `unknown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_target: Option<ActiveTarget>,
    /// Health check IDs and their status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_checks: Option<HealthChecksStatus>,
    /// The last Route 53 change and whether it has propagated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<ChangeStatus>,
    /// Delegation state in the parent zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegation: Option<DelegationStatus>,
    /// The most recent switch of the active target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failover: Option<Failover>,
    /// Every AWS object this DnsFailover created or adopted (health checks, its records, the
    /// delegation's NS record in the parent zone). Deletion, and cleanup after an edit that no longer
    /// wants one of them, work from this list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<super::common::OwnedResource>,
    /// The `spec.aws` (account role and region) the objects in `resources` were made with. They can
    /// only be deleted with it: while `resources` is not empty, a changed `spec.aws` is refused
    /// (`Degraded`, reason `AwsScopeChanged`) and deletion keeps using this one. `{}`: the
    /// operator's own account and region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<super::common::AwsOverride>,
}

/// Which side Route 53 answers.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ActiveTarget {
    /// The primary target.
    Primary,
    /// The secondary target.
    Secondary,
    /// Not known yet.
    #[default]
    Unknown,
}

/// Health check IDs and statuses of both sides.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthChecksStatus {
    /// The primary's health check.
    #[serde(default)]
    pub primary: HealthCheckStatus,
    /// The secondary's health check (empty id when it has none).
    #[serde(default)]
    pub secondary: HealthCheckStatus,
}

/// One health check.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheckStatus {
    /// Route 53 health check ID.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// `Healthy`, `Unhealthy` or `Unknown`.
    #[serde(default)]
    pub status: HealthState,
}

/// Health as reported by Route 53's checkers.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
pub enum HealthState {
    /// Most checkers report success.
    Healthy,
    /// Most checkers report failure.
    Unhealthy,
    /// No data yet.
    #[default]
    Unknown,
}

/// A Route 53 change.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangeStatus {
    /// Change ID, e.g. `/change/C123`.
    pub id: String,
    /// `PENDING` or `INSYNC`.
    pub status: String,
}

/// Delegation state.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DelegationStatus {
    /// Name servers of the zone, as written into the parent.
    #[serde(default)]
    pub name_servers: Vec<String>,
    /// True when the parent's NS record matches them.
    #[serde(default)]
    pub in_sync: bool,
}

/// A switch of the active target.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Failover {
    /// When the switch was noticed.
    pub time: Time,
    /// Previous active side.
    pub from: ActiveTarget,
    /// New active side.
    pub to: ActiveTarget,
    /// Why, e.g. `PrimaryUnhealthy`, `ForcedSecondary`, `PrimaryRecovered`.
    pub reason: String,
}
