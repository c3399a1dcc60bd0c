//! The awsvpc network configuration of Fargate tasks, shared by services (FargateApp) and
//! stand-alone tasks (HotPool).

use aws_sdk_ecs::types::{AssignPublicIp, AwsVpcConfiguration, NetworkConfiguration};

use super::{AwsError, ErrorCategory};
use crate::api::NetworkConfig;

/// The ECS `networkConfiguration` for `net`.
pub fn awsvpc(net: &NetworkConfig) -> Result<NetworkConfiguration, AwsError> {
    let vpc = AwsVpcConfiguration::builder()
        .set_subnets(Some(net.subnets.clone()))
        .set_security_groups(Some(net.security_groups.clone()))
        .assign_public_ip(if net.assign_public_ip { AssignPublicIp::Enabled } else { AssignPublicIp::Disabled })
        .build()
        .map_err(|e| AwsError {
            service: "sdk",
            operation: "build",
            category: ErrorCategory::Terminal,
            code: "InvalidRequest".into(),
            message: e.to_string(),
        })?;
    Ok(NetworkConfiguration::builder().awsvpc_configuration(vpc).build())
}
