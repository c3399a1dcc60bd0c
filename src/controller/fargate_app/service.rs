//! The FargateApp's task definition revisions and ECS service: the revision to run (found by its
//! content-hash tag, only among revisions carrying our owner tags), old revisions pruned, and the
//! service created with its idempotency token or updated in place.

use std::collections::BTreeMap;

use super::Names;
use super::aws::FargateAws;
use super::plan;
use crate::api::FargateApp;
use crate::api::fargate_app::FargateAppStatus;
use crate::aws::api::ecs::{CreateServiceRequest, UpdateServiceRequest};
use crate::aws::{AwsError, Service};

/// The revision to run: the service's when its hash matches, else the newest revision of the family
/// carrying the hash (registered before a crash), else None (register). With it, how many ACTIVE
/// revisions the family has, when they were listed.
pub async fn find_revision(
    aws: &FargateAws,
    status: &FargateAppStatus,
    service: Option<&plan::ObservedService>,
    family: &str,
    hash: &str,
) -> Result<(Option<String>, Option<usize>), AwsError> {
    if let Some(s) = service {
        // Converged: status already says which revision carries this hash; no AWS call.
        if status.task_definition_hash.as_deref() == Some(hash)
            && status.task_definition_arn.as_deref() == Some(&s.task_definition)
        {
            return Ok((Some(s.task_definition.clone()), None));
        }
        if carries(aws, &s.task_definition, hash).await? {
            return Ok((Some(s.task_definition.clone()), None));
        }
    }
    let revisions = aws.revisions(family).await?;
    let listed = Some(revisions.len());
    for arn in revisions.into_iter().take(3) {
        if carries(aws, &arn, hash).await? {
            return Ok((Some(arn), listed));
        }
    }
    Ok((None, listed))
}

/// Whether revision `arn` is ours and was registered with content hash `hash`.
async fn carries(aws: &FargateAws, arn: &str, hash: &str) -> Result<bool, AwsError> {
    Ok(aws.task_definition_marks(arn).await?.is_some_and(|m| m.ours && m.hash.as_deref() == Some(hash)))
}

pub async fn prune_revisions(aws: &FargateAws, family: &str, current: &str, keep: i32) -> Result<(), AwsError> {
    let revisions = aws.revisions(family).await?;
    let keep = usize::try_from(keep).unwrap_or(0).max(1);
    for arn in revisions.iter().skip(keep) {
        if arn != current {
            deregister_if_ours(aws, arn).await?;
        }
    }
    Ok(())
}

/// Deregister revision `arn` if it carries our owner tags: a family name is derived from
/// namespace/name only, so another cluster's operator may register into the same family.
pub async fn deregister_if_ours(aws: &FargateAws, arn: &str) -> Result<(), AwsError> {
    if aws.task_definition_marks(arn).await?.is_some_and(|m| m.ours) {
        aws.deregister(arn).await?;
    }
    Ok(())
}

fn deployment(
    spec: &crate::api::fargate_app::FargateAppSpec,
) -> Result<aws_sdk_ecs::types::DeploymentConfiguration, AwsError> {
    use aws_sdk_ecs::types::{DeploymentCircuitBreaker, DeploymentConfiguration};
    let d = &spec.deployment;
    let breaker = DeploymentCircuitBreaker::builder()
        .enable(d.circuit_breaker.enable)
        .rollback(d.circuit_breaker.rollback)
        .build();
    Ok(DeploymentConfiguration::builder()
        .minimum_healthy_percent(d.minimum_healthy_percent)
        .maximum_percent(d.maximum_percent)
        .deployment_circuit_breaker(breaker)
        .build())
}

fn load_balancers(
    spec: &crate::api::fargate_app::FargateAppSpec,
    tg_arn: Option<&str>,
) -> Vec<aws_sdk_ecs::types::LoadBalancer> {
    plan::desired_load_balancers(spec, tg_arn)
        .into_iter()
        .map(|(tg, container, port)| {
            aws_sdk_ecs::types::LoadBalancer::builder()
                .target_group_arn(tg)
                .container_name(container)
                .container_port(port)
                .build()
        })
        .collect()
}

/// Create the service with `token` (planned and recorded by the caller); its ARN. Not retried on a
/// transient error: the next pass finds the service by name before creating again.
pub async fn create_service(
    aws: &FargateAws,
    obj: &FargateApp,
    names: &Names,
    td_arn: &str,
    tg_arn: Option<&str>,
    tags: &BTreeMap<String, String>,
    token: &str,
) -> Result<crate::aws::api::ecs::EcsService, AwsError> {
    let spec = &obj.spec;
    let load_balancers = load_balancers(spec, tg_arn);
    let grace = (!load_balancers.is_empty()).then(|| spec.deployment.health_check_grace_period_seconds.unwrap_or(0));
    let req = CreateServiceRequest {
        cluster: spec.cluster.clone(),
        service_name: names.family.clone(),
        task_definition: td_arn.to_string(),
        desired_count: spec.replicas,
        network_configuration: Some(crate::aws::ecs_network::awsvpc(&spec.network)?),
        deployment_configuration: Some(deployment(spec)?),
        load_balancers,
        health_check_grace_period_seconds: grace,
        client_token: token.to_string(),
        tags: tags.clone(),
    };
    aws.caller.call_create(Service::Ecs, "CreateService", || aws.ecs.create_service(&req)).await
}

/// Update what `u` says differs.
pub async fn update_service(
    aws: &FargateAws,
    obj: &FargateApp,
    names: &Names,
    u: &plan::ServiceUpdate,
    tg_arn: Option<&str>,
) -> Result<(), AwsError> {
    let spec = &obj.spec;
    let req = UpdateServiceRequest {
        cluster: spec.cluster.clone(),
        service: names.family.clone(),
        task_definition: u.task_definition.clone(),
        desired_count: u.desired,
        network_configuration: if u.network { Some(crate::aws::ecs_network::awsvpc(&spec.network)?) } else { None },
        deployment_configuration: if u.deployment { Some(deployment(spec)?) } else { None },
        load_balancers: u.load_balancers.then(|| load_balancers(spec, tg_arn)),
        health_check_grace_period_seconds: u
            .grace_period
            .then(|| spec.deployment.health_check_grace_period_seconds.unwrap_or(0)),
        force_new_deployment: u.force_new_deployment,
    };
    aws.caller.call(Service::Ecs, "UpdateService", || aws.ecs.update_service(&req)).await
}
