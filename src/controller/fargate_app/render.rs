//! The task definition a FargateApp asks for, rendered into a canonical form whose hash decides
//! whether a new revision is needed.
//!
//! The hash covers only what we send, in a fixed order (maps are sorted), so map order, defaults
//! AWS fills in and ARN spellings of what AWS returns can never cause a new revision.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::api::fargate_app::{ContainerHealthCheck, CpuArchitecture, FargateAppSpec};
use crate::aws::api::ecs::RegisterTaskDefinitionRequest;
use crate::aws::naming::sha256_hex;

/// Tag on every task definition revision we register: the content hash of its rendering.
pub const TAG_CONTENT_HASH: &str = "fargate.operator.dev/content-hash";

/// A task definition as we register it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RenderedTaskDefinition {
    /// Family (derived from namespace/name).
    pub family: String,
    /// Task CPU units.
    pub cpu: String,
    /// Task memory (MiB).
    pub memory: String,
    /// `X86_64` or `ARM64`.
    pub cpu_architecture: String,
    /// Ephemeral storage in GiB; left out of the hash when unset, so revisions registered before
    /// the field existed keep their hash.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ephemeral_storage_gib: Option<i32>,
    /// Execution role ARN.
    pub execution_role_arn: Option<String>,
    /// Task role ARN.
    pub task_role_arn: Option<String>,
    /// Containers, in spec order (order is meaningful to ECS: it is the start order without dependencies).
    pub containers: Vec<RenderedContainer>,
}

/// A container as we register it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RenderedContainer {
    /// Name.
    pub name: String,
    /// Image.
    pub image: String,
    /// TCP container port.
    pub port: Option<i32>,
    /// ENTRYPOINT override.
    pub command: Vec<String>,
    /// CMD override.
    pub args: Vec<String>,
    /// Environment, sorted by name.
    pub env: BTreeMap<String, String>,
    /// Secrets (name -> valueFrom), sorted by name.
    pub secrets: BTreeMap<String, String>,
    /// Essential flag.
    pub essential: bool,
    /// Health check.
    pub health_check: Option<RenderedHealthCheck>,
    /// awslogs group, when set.
    pub log_group: Option<String>,
    /// awslogs region (the task's region), when a log group is set.
    pub log_region: Option<String>,
    /// awslogs stream prefix, when a log group is set.
    pub log_stream_prefix: Option<String>,
    /// Hard memory limit (MiB).
    pub memory: i32,
}

/// Container health check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RenderedHealthCheck {
    /// Command.
    pub command: Vec<String>,
    /// Interval (s).
    pub interval: i32,
    /// Timeout (s).
    pub timeout: i32,
    /// Retries.
    pub retries: i32,
    /// Start period (s).
    pub start_period: i32,
}

impl From<&ContainerHealthCheck> for RenderedHealthCheck {
    fn from(hc: &ContainerHealthCheck) -> Self {
        Self {
            command: hc.command.clone(),
            interval: hc.interval_seconds,
            timeout: hc.timeout_seconds,
            retries: hc.retries,
            start_period: hc.start_period_seconds,
        }
    }
}

/// Render the task definition of `spec` for `family` in `region`.
///
/// Containers without an explicit `memory` share what the explicit ones leave of the task memory
/// equally (RunTask on some emulators and older agents need a container-level limit).
pub fn render(spec: &FargateAppSpec, family: &str, region: &str) -> RenderedTaskDefinition {
    // i64: user numbers summed in i32 could overflow (validation refuses such specs, but a pure
    // renderer must not rely on being called only after it).
    let explicit: i64 = spec.containers.iter().filter_map(|c| c.memory).map(i64::from).sum();
    let implicit_count = i64::try_from(spec.containers.iter().filter(|c| c.memory.is_none()).count()).unwrap_or(1);
    let share = if implicit_count > 0 {
        i32::try_from(((i64::from(spec.memory) - explicit) / implicit_count).max(6)).unwrap_or(i32::MAX)
    } else {
        0
    };
    let containers = spec
        .containers
        .iter()
        .map(|c| RenderedContainer {
            name: c.name.clone(),
            image: c.image.clone(),
            port: c.port,
            command: c.command.clone(),
            args: c.args.clone(),
            env: c.env.clone(),
            secrets: c.secrets.clone(),
            essential: c.essential,
            health_check: c.health_check.as_ref().map(RenderedHealthCheck::from),
            log_group: c.log_group.clone(),
            log_region: c.log_group.as_ref().map(|_| region.to_string()),
            log_stream_prefix: c.log_group.as_ref().map(|_| c.name.clone()),
            memory: c.memory.unwrap_or(share),
        })
        .collect();
    RenderedTaskDefinition {
        family: family.to_string(),
        cpu: spec.cpu.to_string(),
        memory: spec.memory.to_string(),
        cpu_architecture: match spec.cpu_architecture {
            CpuArchitecture::X86_64 => "X86_64".into(),
            CpuArchitecture::ARM64 => "ARM64".into(),
        },
        ephemeral_storage_gib: spec.ephemeral_storage_gib,
        execution_role_arn: spec.execution_role_arn.clone(),
        task_role_arn: spec.task_role_arn.clone(),
        containers,
    }
}

impl RenderedTaskDefinition {
    /// Content hash: 16 hex characters of SHA-256 over the canonical JSON.
    pub fn content_hash(&self) -> String {
        // Serialising plain structs and BTreeMaps cannot fail; fall back to Debug just in case.
        let bytes = serde_json::to_vec(self).unwrap_or_else(|_| format!("{self:?}").into_bytes());
        sha256_hex(&bytes)[..16].to_string()
    }

    /// The RegisterTaskDefinition request for this rendering, tagged with `tags` and the hash.
    pub fn to_request(&self, tags: &BTreeMap<String, String>) -> RegisterTaskDefinitionRequest {
        use aws_sdk_ecs::types::{
            ContainerDefinition, CpuArchitecture as SdkArch, HealthCheck, KeyValuePair, LogConfiguration, LogDriver,
            OsFamily, PortMapping, RuntimePlatform, Secret, TransportProtocol,
        };
        let mut containers = Vec::with_capacity(self.containers.len());
        for c in &self.containers {
            let mut def = ContainerDefinition::builder()
                .name(&c.name)
                .image(&c.image)
                .essential(c.essential)
                .memory(c.memory)
                .set_entry_point((!c.command.is_empty()).then(|| c.command.clone()))
                .set_command((!c.args.is_empty()).then(|| c.args.clone()));
            if let Some(port) = c.port {
                def = def.port_mappings(
                    PortMapping::builder()
                        .container_port(port)
                        .host_port(port)
                        .protocol(TransportProtocol::Tcp)
                        .build(),
                );
            }
            for (k, v) in &c.env {
                def = def.environment(KeyValuePair::builder().name(k).value(v).build());
            }
            for (k, v) in &c.secrets {
                if let Ok(secret) = Secret::builder().name(k).value_from(v).build() {
                    def = def.secrets(secret);
                }
            }
            if let Some(hc) = &c.health_check
                && let Ok(check) = HealthCheck::builder()
                    .set_command(Some(hc.command.clone()))
                    .interval(hc.interval)
                    .timeout(hc.timeout)
                    .retries(hc.retries)
                    .start_period(hc.start_period)
                    .build()
            {
                def = def.health_check(check);
            }
            if let (Some(group), Some(region), Some(prefix)) = (&c.log_group, &c.log_region, &c.log_stream_prefix)
                && let Ok(logs) = LogConfiguration::builder()
                    .log_driver(LogDriver::Awslogs)
                    .options("awslogs-group", group)
                    .options("awslogs-region", region)
                    .options("awslogs-stream-prefix", prefix)
                    .build()
            {
                def = def.log_configuration(logs);
            }
            containers.push(def.build());
        }
        let mut tags = tags.clone();
        tags.insert(TAG_CONTENT_HASH.to_string(), self.content_hash());
        RegisterTaskDefinitionRequest {
            family: self.family.clone(),
            cpu: self.cpu.clone(),
            memory: self.memory.clone(),
            runtime_platform: Some(
                RuntimePlatform::builder()
                    .cpu_architecture(SdkArch::from(self.cpu_architecture.as_str()))
                    .operating_system_family(OsFamily::Linux)
                    .build(),
            ),
            ephemeral_storage_gib: self.ephemeral_storage_gib,
            execution_role_arn: self.execution_role_arn.clone(),
            task_role_arn: self.task_role_arn.clone(),
            container_definitions: containers,
            tags,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(env: &[(&str, &str)]) -> FargateAppSpec {
        let env: serde_json::Map<String, serde_json::Value> =
            env.iter().map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string()))).collect();
        serde_json::from_value(serde_json::json!({
            "cluster": "apps", "cpu": 512, "memory": 1024,
            "containers": [
                {"name": "web", "image": "web:1", "port": 8080, "env": env, "logGroup": "/ecs/web"},
                {"name": "side", "image": "side:1", "memory": 256}
            ],
            "network": {"subnets": ["subnet-1"]}
        }))
        .expect("spec")
    }

    #[test]
    fn env_order_does_not_change_the_hash() {
        let a = render(&spec(&[("A", "1"), ("B", "2")]), "fam", "us-east-1");
        let b = render(&spec(&[("B", "2"), ("A", "1")]), "fam", "us-east-1");
        assert_eq!(a.content_hash(), b.content_hash());
    }

    #[test]
    fn every_rendered_field_changes_the_hash() {
        let base = render(&spec(&[("A", "1")]), "fam", "us-east-1");
        let mut image = spec(&[("A", "1")]);
        image.containers[0].image = "web:2".into();
        let mut cpu = spec(&[("A", "1")]);
        cpu.memory = 2048;
        for (what, other) in [("image", image), ("env value", spec(&[("A", "2")])), ("memory", cpu)] {
            assert_ne!(render(&other, "fam", "us-east-1").content_hash(), base.content_hash(), "{what}");
        }
        // Fields outside the task definition do not touch it.
        let mut replicas = spec(&[("A", "1")]);
        replicas.replicas = 7;
        assert_eq!(render(&replicas, "fam", "us-east-1").content_hash(), base.content_hash());
    }

    #[test]
    fn memory_is_shared_among_containers_without_a_limit_and_logs_are_configured() {
        let r = render(&spec(&[]), "fam", "eu-west-1");
        assert_eq!(r.containers[0].memory, 768, "1024 task MiB minus the sidecar's 256");
        assert_eq!(r.containers[1].memory, 256);
        assert_eq!(r.containers[0].log_region.as_deref(), Some("eu-west-1"));
        assert_eq!(r.containers[0].log_stream_prefix.as_deref(), Some("web"));
        assert_eq!(r.containers[1].log_group, None);
        assert_eq!(r.cpu, "512");
    }
}
