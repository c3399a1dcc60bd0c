//! ECS reads and writes of the FargateApp controller: the service, task definition revisions and
//! their tags. Every call goes through `AwsCaller` (budget, retries, metrics) to the object's
//! [`EcsApi`](crate::aws::api::ecs::EcsApi).

use std::collections::BTreeMap;

use aws_sdk_ecs::types::AssignPublicIp;

use super::aws::FargateAws;
use super::plan::{ObservedService, sorted};
use super::render::RenderedTaskDefinition;
use crate::aws::api::ecs::UpdateServiceRequest;
use crate::aws::{AwsError, Service};

/// What a task definition revision's tags say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevisionMarks {
    /// The content hash it was registered with.
    pub hash: Option<String>,
    /// It carries this object's owner tags (only those revisions are ever deregistered).
    pub ours: bool,
}

impl FargateAws {
    /// The service by name, if it exists and is not INACTIVE.
    pub async fn service(&self, cluster: &str, name: &str) -> Result<Option<ObservedService>, AwsError> {
        let services = self.service_reads.describe(&self.caller, self.ecs.as_ref(), cluster, name).await?;
        Ok(services.into_iter().find(|s| s.status != "INACTIVE").map(|s| self.observed_service(s)))
    }

    /// What a pass compares of a service, from ECS's description of it (a DescribeServices or
    /// CreateService answer).
    pub fn observed_service(&self, s: crate::aws::api::ecs::EcsService) -> ObservedService {
        let net = s.network_configuration.as_ref().and_then(|n| n.awsvpc_configuration());
        let mut lbs: Vec<(String, String, i32)> = s
            .load_balancers
            .iter()
            .map(|l| {
                (
                    l.target_group_arn().unwrap_or_default().to_string(),
                    l.container_name().unwrap_or_default().to_string(),
                    l.container_port().unwrap_or_default(),
                )
            })
            .collect();
        lbs.sort();
        let deployment = s.deployment_configuration.as_ref().and_then(|d| {
            Some((
                d.minimum_healthy_percent()?,
                d.maximum_percent()?,
                d.deployment_circuit_breaker().map(|c| (c.enable(), c.rollback())),
            ))
        });
        let primary = s.deployments.iter().find(|d| d.status == "PRIMARY");
        ObservedService {
            ours: self.owns(&s.tags),
            subnets: sorted(net.map(|n| n.subnets()).unwrap_or_default()),
            security_groups: sorted(net.map(|n| n.security_groups()).unwrap_or_default()),
            public_ip: net.and_then(|n| n.assign_public_ip()).map(|a| *a == AssignPublicIp::Enabled),
            load_balancers: lbs,
            deployment,
            grace_period: s.health_check_grace_period_seconds,
            rollout: primary.and_then(|d| {
                Some((d.rollout_state.clone()?, d.rollout_state_reason.clone().unwrap_or_default(), d.failed_tasks))
            }),
            latest_event: s.latest_event,
            arn: s.arn,
            status: s.status,
            desired: s.desired_count,
            running: s.running_count,
            pending: s.pending_count,
            task_definition: s.task_definition,
        }
    }

    /// A task definition revision's content-hash tag and whether it carries our owner tags (None
    /// when the revision is gone).
    pub async fn task_definition_marks(&self, arn: &str) -> Result<Option<RevisionMarks>, AwsError> {
        let revision = match self
            .caller
            .call(Service::Ecs, "DescribeTaskDefinition", || self.ecs.describe_task_definition(arn, true))
            .await
        {
            Ok(r) => r,
            // ECS answers ClientException for a missing revision.
            Err(e) if e.is_not_found() || e.code == "ClientException" => return Ok(None),
            Err(e) => return Err(e),
        };
        let tags = revision.tags;
        Ok(Some(RevisionMarks { hash: tags.get(super::render::TAG_CONTENT_HASH).cloned(), ours: self.owns(&tags) }))
    }

    /// Register `rendered` as a new revision tagged with `tags` and its content hash; its ARN. Not
    /// retried on a transient error (it may have been registered): the next pass finds the revision
    /// by its hash tag before registering again.
    pub async fn register_task_definition(
        &self,
        rendered: &RenderedTaskDefinition,
        tags: &BTreeMap<String, String>,
    ) -> Result<String, AwsError> {
        let req = rendered.to_request(tags);
        let revision = self
            .caller
            .call_create(Service::Ecs, "RegisterTaskDefinition", || self.ecs.register_task_definition(&req))
            .await?;
        Ok(revision.arn)
    }

    /// ACTIVE revisions of `family`, newest first.
    pub async fn revisions(&self, family: &str) -> Result<Vec<String>, AwsError> {
        let mut arns = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .caller
                .call(Service::Ecs, "ListTaskDefinitions", || self.ecs.list_task_definitions(family, token.as_deref()))
                .await?;
            arns.extend(page.arns.into_iter().filter(|a| family_of(a) == Some(family)));
            token = page.next_token;
            if token.is_none() {
                break;
            }
        }
        // Some implementations ignore `sort`; order by revision number ourselves.
        arns.sort_by_key(|a| std::cmp::Reverse(revision_of(a)));
        Ok(arns)
    }

    /// Deregister a revision; NotFound counts as done.
    pub async fn deregister(&self, arn: &str) -> Result<(), AwsError> {
        match self
            .caller
            .call(Service::Ecs, "DeregisterTaskDefinition", || self.ecs.deregister_task_definition(arn))
            .await
        {
            Err(e) if !(e.is_not_found() || e.code == "ClientException") => Err(e),
            _ => Ok(()),
        }
    }

    /// Delete the service: scale to 0, then delete with force. NotFound counts as done.
    pub async fn delete_service(&self, cluster: &str, name: &str) -> Result<(), AwsError> {
        let scale = UpdateServiceRequest {
            cluster: cluster.to_string(),
            service: name.to_string(),
            desired_count: Some(0),
            ..Default::default()
        };
        let scaled = self.caller.call(Service::Ecs, "UpdateService", || self.ecs.update_service(&scale)).await;
        match scaled {
            Err(e) if e.is_not_found() || e.code == "ServiceNotActiveException" => return Ok(()),
            Err(e) => return Err(e),
            Ok(()) => {}
        }
        match self.caller.call(Service::Ecs, "DeleteService", || self.ecs.delete_service(cluster, name)).await {
            Err(e) if !(e.is_not_found() || e.code == "ServiceNotActiveException") => Err(e),
            _ => Ok(()),
        }
    }
}

/// `family` of `arn:...:task-definition/family:rev` (or `family:rev`).
pub fn family_of(arn: &str) -> Option<&str> {
    arn.rsplit('/').next()?.rsplit_once(':').map(|(f, _)| f)
}

/// Revision number of a task definition ARN.
pub fn revision_of(arn: &str) -> u64 {
    arn.rsplit_once(':').and_then(|(_, r)| r.parse().ok()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arn_parts() {
        let arn = "arn:aws:ecs:us-east-1:123456789012:task-definition/fa-ns-web-1a2b3c4d:17";
        assert_eq!(family_of(arn), Some("fa-ns-web-1a2b3c4d"));
        assert_eq!(revision_of(arn), 17);
        assert_eq!(family_of("web:3"), Some("web"));
    }
}
