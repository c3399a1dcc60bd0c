//! [`SdkEcs`]: [`EcsApi`] over `aws_sdk_ecs::Client`, one SDK request per method, SDK errors
//! classified at the boundary, SDK shapes turned into the plain values of [`super`].

use std::collections::BTreeMap;

use aws_sdk_ecs::types as sdk;

use super::super::{ApiFuture, classified};
use super::{
    CreateServiceRequest, EcsApi, EcsService, EcsTask, Page, RegisterTaskDefinitionRequest, RunTaskOutcome,
    RunTaskRequest, ServiceDeployment, TaskDefinitionRevision, TaskFailure, UpdateServiceRequest,
};

/// [`EcsApi`] over the AWS SDK: one SDK request per method.
#[derive(Clone, Debug)]
pub struct SdkEcs {
    client: aws_sdk_ecs::Client,
}

impl SdkEcs {
    /// Calls through `client` (its interceptors, fault injection included, stay in place).
    pub fn new(client: aws_sdk_ecs::Client) -> Self {
        Self { client }
    }
}

fn tags_of(tags: &[sdk::Tag]) -> BTreeMap<String, String> {
    tags.iter().map(|t| (t.key().unwrap_or_default().to_string(), t.value().unwrap_or_default().to_string())).collect()
}

fn sdk_tags(tags: &BTreeMap<String, String>) -> Vec<sdk::Tag> {
    tags.iter().map(|(k, v)| sdk::Tag::builder().key(k).value(v).build()).collect()
}

fn text(s: Option<&str>) -> String {
    s.unwrap_or_default().to_string()
}

fn page(arns: &[String], next_token: Option<&str>) -> Page {
    Page { arns: arns.to_vec(), next_token: next_token.filter(|t| !t.is_empty()).map(str::to_string) }
}

fn revision_of(td: Option<&sdk::TaskDefinition>, tags: &[sdk::Tag]) -> TaskDefinitionRevision {
    TaskDefinitionRevision { arn: text(td.and_then(|t| t.task_definition_arn())), tags: tags_of(tags) }
}

/// The plain value of an SDK service.
fn service_of(s: &sdk::Service) -> EcsService {
    EcsService {
        arn: text(s.service_arn()),
        status: text(s.status()),
        desired_count: s.desired_count(),
        running_count: s.running_count(),
        pending_count: s.pending_count(),
        task_definition: text(s.task_definition()),
        network_configuration: s.network_configuration().cloned(),
        load_balancers: s.load_balancers().to_vec(),
        deployment_configuration: s.deployment_configuration().cloned(),
        health_check_grace_period_seconds: s.health_check_grace_period_seconds(),
        deployments: s
            .deployments()
            .iter()
            .map(|d| ServiceDeployment {
                status: text(d.status()),
                rollout_state: d.rollout_state().map(|r| r.as_str().to_string()),
                rollout_state_reason: d.rollout_state_reason().map(str::to_string),
                failed_tasks: d.failed_tasks(),
            })
            .collect(),
        latest_event: s.events().first().and_then(|e| e.id()).map(str::to_string),
        tags: tags_of(s.tags()),
    }
}

/// The plain value of an SDK task.
fn task_of(t: &sdk::Task) -> EcsTask {
    let private_ip = t
        .attachments()
        .iter()
        .flat_map(|a| a.details())
        .find(|d| d.name() == Some("privateIPv4Address"))
        .and_then(|d| d.value())
        .filter(|v| !v.is_empty())
        .map(str::to_string);
    EcsTask {
        arn: text(t.task_arn()),
        cluster_arn: text(t.cluster_arn()),
        last_status: text(t.last_status()),
        desired_status: text(t.desired_status()),
        started_by: text(t.started_by()),
        group: text(t.group()),
        stopped_reason: t.stopped_reason().map(str::to_string),
        private_ip,
        tags: tags_of(t.tags()),
    }
}

impl EcsApi for SdkEcs {
    fn describe_services<'a>(&'a self, cluster: &'a str, services: &'a [String]) -> ApiFuture<'a, Vec<EcsService>> {
        Box::pin(async move {
            let out = self
                .client
                .describe_services()
                .cluster(cluster)
                .set_services(Some(services.to_vec()))
                .include(sdk::ServiceField::Tags)
                .send()
                .await
                .map_err(classified)?;
            Ok(out.services().iter().map(service_of).collect())
        })
    }

    fn create_service<'a>(&'a self, req: &'a CreateServiceRequest) -> ApiFuture<'a, EcsService> {
        Box::pin(async move {
            let out = self
                .client
                .create_service()
                .cluster(&req.cluster)
                .service_name(&req.service_name)
                .task_definition(&req.task_definition)
                .desired_count(req.desired_count)
                .launch_type(sdk::LaunchType::Fargate)
                .set_network_configuration(req.network_configuration.clone())
                .set_deployment_configuration(req.deployment_configuration.clone())
                .set_load_balancers(Some(req.load_balancers.clone()))
                .set_health_check_grace_period_seconds(req.health_check_grace_period_seconds)
                .client_token(&req.client_token)
                .propagate_tags(sdk::PropagateTags::Service)
                .enable_ecs_managed_tags(true)
                .set_tags(Some(sdk_tags(&req.tags)))
                .send()
                .await
                .map_err(classified)?;
            Ok(out.service().map(service_of).unwrap_or_default())
        })
    }

    fn update_service<'a>(&'a self, req: &'a UpdateServiceRequest) -> ApiFuture<'a, ()> {
        Box::pin(async move {
            self.client
                .update_service()
                .cluster(&req.cluster)
                .service(&req.service)
                .set_task_definition(req.task_definition.clone())
                .set_desired_count(req.desired_count)
                .set_network_configuration(req.network_configuration.clone())
                .set_deployment_configuration(req.deployment_configuration.clone())
                .set_load_balancers(req.load_balancers.clone())
                .set_health_check_grace_period_seconds(req.health_check_grace_period_seconds)
                .set_force_new_deployment(req.force_new_deployment.then_some(true))
                .send()
                .await
                .map_err(classified)?;
            Ok(())
        })
    }

    fn delete_service<'a>(&'a self, cluster: &'a str, service: &'a str) -> ApiFuture<'a, ()> {
        Box::pin(async move {
            self.client
                .delete_service()
                .cluster(cluster)
                .service(service)
                .force(true)
                .send()
                .await
                .map_err(classified)?;
            Ok(())
        })
    }

    fn register_task_definition<'a>(
        &'a self,
        req: &'a RegisterTaskDefinitionRequest,
    ) -> ApiFuture<'a, TaskDefinitionRevision> {
        Box::pin(async move {
            let out = self
                .client
                .register_task_definition()
                .family(&req.family)
                .network_mode(sdk::NetworkMode::Awsvpc)
                .requires_compatibilities(sdk::Compatibility::Fargate)
                .cpu(&req.cpu)
                .memory(&req.memory)
                .set_runtime_platform(req.runtime_platform.clone())
                .set_ephemeral_storage(
                    req.ephemeral_storage_gib.map(|g| sdk::EphemeralStorage::builder().size_in_gib(g).build()),
                )
                .set_execution_role_arn(req.execution_role_arn.clone())
                .set_task_role_arn(req.task_role_arn.clone())
                .set_container_definitions(Some(req.container_definitions.clone()))
                .set_tags(Some(sdk_tags(&req.tags)))
                .send()
                .await
                .map_err(classified)?;
            Ok(revision_of(out.task_definition(), out.tags()))
        })
    }

    fn describe_task_definition<'a>(
        &'a self,
        task_definition: &'a str,
        include_tags: bool,
    ) -> ApiFuture<'a, TaskDefinitionRevision> {
        Box::pin(async move {
            let include = include_tags.then(|| vec![sdk::TaskDefinitionField::Tags]);
            let out = self
                .client
                .describe_task_definition()
                .task_definition(task_definition)
                .set_include(include)
                .send()
                .await
                .map_err(classified)?;
            Ok(revision_of(out.task_definition(), out.tags()))
        })
    }

    fn list_task_definitions<'a>(&'a self, family_prefix: &'a str, next_token: Option<&'a str>) -> ApiFuture<'a, Page> {
        Box::pin(async move {
            let out = self
                .client
                .list_task_definitions()
                .family_prefix(family_prefix)
                .status(sdk::TaskDefinitionStatus::Active)
                .set_next_token(next_token.map(str::to_string))
                .send()
                .await
                .map_err(classified)?;
            Ok(page(out.task_definition_arns(), out.next_token()))
        })
    }

    fn deregister_task_definition<'a>(&'a self, task_definition: &'a str) -> ApiFuture<'a, ()> {
        Box::pin(async move {
            self.client
                .deregister_task_definition()
                .task_definition(task_definition)
                .send()
                .await
                .map_err(classified)?;
            Ok(())
        })
    }

    fn run_task<'a>(&'a self, req: &'a RunTaskRequest) -> ApiFuture<'a, RunTaskOutcome> {
        Box::pin(async move {
            let out = self
                .client
                .run_task()
                .cluster(&req.cluster)
                .task_definition(&req.task_definition)
                .count(req.count)
                .client_token(&req.client_token)
                .started_by(&req.started_by)
                .launch_type(sdk::LaunchType::Fargate)
                .set_network_configuration(req.network_configuration.clone())
                .set_tags(Some(sdk_tags(&req.tags)))
                .send()
                .await
                .map_err(classified)?;
            Ok(RunTaskOutcome {
                tasks: out.tasks().iter().map(task_of).collect(),
                failures: out
                    .failures()
                    .iter()
                    .map(|f| TaskFailure {
                        arn: f.arn().map(str::to_string),
                        reason: f.reason().unwrap_or("unknown").to_string(),
                        detail: f.detail().map(str::to_string),
                    })
                    .collect(),
            })
        })
    }

    fn list_tasks<'a>(
        &'a self,
        cluster: &'a str,
        started_by: &'a str,
        next_token: Option<&'a str>,
    ) -> ApiFuture<'a, Page> {
        Box::pin(async move {
            let out = self
                .client
                .list_tasks()
                .cluster(cluster)
                .started_by(started_by)
                .desired_status(sdk::DesiredStatus::Running)
                .max_results(100)
                .set_next_token(next_token.map(str::to_string))
                .send()
                .await
                .map_err(classified)?;
            Ok(page(out.task_arns(), out.next_token()))
        })
    }

    fn describe_tasks<'a>(&'a self, cluster: &'a str, tasks: &'a [String]) -> ApiFuture<'a, Vec<EcsTask>> {
        Box::pin(async move {
            let out = self
                .client
                .describe_tasks()
                .cluster(cluster)
                .set_tasks(Some(tasks.to_vec()))
                .include(sdk::TaskField::Tags)
                .send()
                .await
                .map_err(classified)?;
            Ok(out.tasks().iter().map(task_of).collect())
        })
    }

    fn stop_task<'a>(&'a self, cluster: &'a str, task: &'a str, reason: &'a str) -> ApiFuture<'a, ()> {
        Box::pin(async move {
            self.client.stop_task().cluster(cluster).task(task).reason(reason).send().await.map_err(classified)?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_reads_its_ip_from_the_eni_attachment_and_its_tags() {
        let detail = |name: &str, value: &str| sdk::KeyValuePair::builder().name(name).value(value).build();
        let task = sdk::Task::builder()
            .task_arn("arn:aws:ecs:us-east-1:1:task/apps/abc")
            .last_status("RUNNING")
            .attachments(
                sdk::Attachment::builder()
                    .details(detail("subnetId", "subnet-1"))
                    .details(detail("privateIPv4Address", "10.0.0.7"))
                    .build(),
            )
            .tags(sdk::Tag::builder().key("k").value("v").build())
            .build();
        let t = task_of(&task);
        assert_eq!(t.private_ip.as_deref(), Some("10.0.0.7"));
        assert_eq!(t.tags, BTreeMap::from([("k".to_string(), "v".to_string())]));
        assert_eq!((t.last_status.as_str(), t.desired_status.as_str()), ("RUNNING", ""));
        let empty = sdk::Task::builder()
            .attachments(sdk::Attachment::builder().details(detail("privateIPv4Address", "")).build())
            .build();
        assert_eq!(task_of(&empty).private_ip, None, "an empty address is no address yet");
    }

    #[test]
    fn a_service_keeps_its_deployments_and_an_empty_next_token_ends_a_list() {
        let service = sdk::Service::builder()
            .service_arn("arn:svc")
            .status("ACTIVE")
            .desired_count(2)
            .deployments(
                sdk::Deployment::builder()
                    .status("PRIMARY")
                    .rollout_state(sdk::DeploymentRolloutState::Failed)
                    .failed_tasks(3)
                    .build(),
            )
            .build();
        let s = service_of(&service);
        assert_eq!((s.arn.as_str(), s.desired_count), ("arn:svc", 2));
        assert_eq!(
            s.deployments,
            [ServiceDeployment {
                status: "PRIMARY".into(),
                rollout_state: Some("FAILED".into()),
                rollout_state_reason: None,
                failed_tasks: 3
            }]
        );
        assert_eq!(page(&["a".into()], Some("")).next_token, None);
        assert_eq!(page(&[], Some("t")).next_token.as_deref(), Some("t"));
    }
}
