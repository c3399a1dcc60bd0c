//! A model client bound to one configuration's credentials: [`Credentialed`] resolves them before
//! each call and refuses the call when they cannot be had, as an SDK client does before it sends
//! a request. With [`ModelSts`](super::sts::ModelSts) behind a role's credentials provider, a
//! revoked role fails every call of its objects with `AccessDenied` (Terminal), the same
//! classification the SDK path gives a denied sts:AssumeRole.
//!
//! Credentials are resolved on every call, never cached here: the provider a source installs
//! asks the model each time, so a revoke is seen by the next call and a restore too. (Real
//! credentials of an assumed role live up to an hour; revoking a role's sessions denies them at
//! once, which is what the model shows.)

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_config::SdkConfig;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sdk_route53::types::{Change, HealthCheckConfig};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::{ConnectorError, SdkError};

use super::latency::Latency;
use crate::aws::api::ApiFuture;
use crate::aws::api::ecs::{
    CreateServiceRequest, EcsApi, EcsService, EcsTask, Page, RegisterTaskDefinitionRequest, RunTaskOutcome,
    RunTaskRequest, TaskDefinitionRevision, UpdateServiceRequest,
};
use crate::aws::api::elbv2::{
    Attributes, Elbv2Api, Listener, LoadBalancer, NewTargetGroup, RuleSpec, RulesPage, Tags, TargetGroup,
    TargetGroupHealthCheck, TargetHealth,
};
use crate::aws::api::route53::{
    ChangeInfo, HealthCheck, HealthChecksPage, HostedZone, RecordSetsPage, RecordStart, Route53Api,
};
use crate::aws::errors::{Classified, Classify};

/// A service model (`T`) whose calls first resolve the credentials of the configuration the client
/// was built for.
#[derive(Debug)]
pub struct Credentialed<T: ?Sized> {
    inner: Arc<T>,
    credentials: Option<SharedCredentialsProvider>,
    latency: Arc<Latency>,
}

impl<T: ?Sized> Credentialed<T> {
    /// `inner`'s calls under `cfg`'s credentials (none to resolve when `cfg` has no provider),
    /// each with a delay drawn from `latency`.
    pub fn new(inner: Arc<T>, cfg: &SdkConfig, latency: Arc<Latency>) -> Self {
        Self { inner, credentials: cfg.credentials_provider(), latency }
    }

    /// Resolve the credentials; an error is the call's error, classified as the SDK classifies it.
    pub async fn credentials(&self) -> Result<(), Classified> {
        match &self.credentials {
            Some(provider) => provider.provide_credentials().await.map(drop).map_err(refused),
            None => Ok(()),
        }
    }
}

/// A call whose credentials could not be resolved. The SDK resolves them before sending and fails
/// such a call as a dispatch failure; building that same error and classifying it keeps the model
/// on the SDK's rules (`AccessDenied` in the chain: Terminal; anything else: Transient).
fn refused(err: CredentialsError) -> Classified {
    type AnyOperationError = aws_sdk_route53::operation::get_hosted_zone::GetHostedZoneError;
    let failure: SdkError<AnyOperationError, HttpResponse> =
        SdkError::dispatch_failure(ConnectorError::other(Box::new(err), None));
    failure.classify()
}

// The credentials are resolved inside the returned future and before `inner` is called at all:
// some models act when the method is called, and a refused call must change nothing. The
// latency wraps the service's part (see `latency.rs`).
macro_rules! guarded {
    ($self:ident, $method:ident($($arg:expr),*)) => {
        Box::pin(async move {
            $self.credentials().await?;
            $self.latency.around(stringify!($method), async { $self.inner.$method($($arg),*).await }).await
        })
    };
}

impl<T: EcsApi + ?Sized> EcsApi for Credentialed<T> {
    fn describe_services<'a>(&'a self, cluster: &'a str, services: &'a [String]) -> ApiFuture<'a, Vec<EcsService>> {
        guarded!(self, describe_services(cluster, services))
    }

    fn create_service<'a>(&'a self, req: &'a CreateServiceRequest) -> ApiFuture<'a, EcsService> {
        guarded!(self, create_service(req))
    }

    fn update_service<'a>(&'a self, req: &'a UpdateServiceRequest) -> ApiFuture<'a, ()> {
        guarded!(self, update_service(req))
    }

    fn delete_service<'a>(&'a self, cluster: &'a str, service: &'a str) -> ApiFuture<'a, ()> {
        guarded!(self, delete_service(cluster, service))
    }

    fn register_task_definition<'a>(
        &'a self,
        req: &'a RegisterTaskDefinitionRequest,
    ) -> ApiFuture<'a, TaskDefinitionRevision> {
        guarded!(self, register_task_definition(req))
    }

    fn describe_task_definition<'a>(
        &'a self,
        task_definition: &'a str,
        include_tags: bool,
    ) -> ApiFuture<'a, TaskDefinitionRevision> {
        guarded!(self, describe_task_definition(task_definition, include_tags))
    }

    fn list_task_definitions<'a>(&'a self, family_prefix: &'a str, next_token: Option<&'a str>) -> ApiFuture<'a, Page> {
        guarded!(self, list_task_definitions(family_prefix, next_token))
    }

    fn deregister_task_definition<'a>(&'a self, task_definition: &'a str) -> ApiFuture<'a, ()> {
        guarded!(self, deregister_task_definition(task_definition))
    }

    fn run_task<'a>(&'a self, req: &'a RunTaskRequest) -> ApiFuture<'a, RunTaskOutcome> {
        guarded!(self, run_task(req))
    }

    fn list_tasks<'a>(
        &'a self,
        cluster: &'a str,
        started_by: &'a str,
        next_token: Option<&'a str>,
    ) -> ApiFuture<'a, Page> {
        guarded!(self, list_tasks(cluster, started_by, next_token))
    }

    fn describe_tasks<'a>(&'a self, cluster: &'a str, tasks: &'a [String]) -> ApiFuture<'a, Vec<EcsTask>> {
        guarded!(self, describe_tasks(cluster, tasks))
    }

    fn stop_task<'a>(&'a self, cluster: &'a str, task: &'a str, reason: &'a str) -> ApiFuture<'a, ()> {
        guarded!(self, stop_task(cluster, task, reason))
    }
}

impl<T: Elbv2Api + ?Sized> Elbv2Api for Credentialed<T> {
    fn describe_listener<'a>(&'a self, listener_arn: &'a str) -> ApiFuture<'a, Option<Listener>> {
        guarded!(self, describe_listener(listener_arn))
    }

    fn describe_load_balancer<'a>(&'a self, load_balancer_arn: &'a str) -> ApiFuture<'a, Option<LoadBalancer>> {
        guarded!(self, describe_load_balancer(load_balancer_arn))
    }

    fn describe_tags<'a>(&'a self, resource_arns: &'a [String]) -> ApiFuture<'a, BTreeMap<String, Tags>> {
        guarded!(self, describe_tags(resource_arns))
    }

    fn describe_target_groups<'a>(&'a self, names: &'a [String]) -> ApiFuture<'a, Vec<TargetGroup>> {
        guarded!(self, describe_target_groups(names))
    }

    fn describe_target_group_attributes<'a>(&'a self, target_group_arn: &'a str) -> ApiFuture<'a, Attributes> {
        guarded!(self, describe_target_group_attributes(target_group_arn))
    }

    fn create_target_group<'a>(&'a self, group: &'a NewTargetGroup) -> ApiFuture<'a, String> {
        guarded!(self, create_target_group(group))
    }

    fn modify_target_group<'a>(
        &'a self,
        target_group_arn: &'a str,
        health_check: &'a TargetGroupHealthCheck,
    ) -> ApiFuture<'a, ()> {
        guarded!(self, modify_target_group(target_group_arn, health_check))
    }

    fn modify_target_group_attributes<'a>(
        &'a self,
        target_group_arn: &'a str,
        attributes: &'a Attributes,
    ) -> ApiFuture<'a, ()> {
        guarded!(self, modify_target_group_attributes(target_group_arn, attributes))
    }

    fn describe_target_health<'a>(&'a self, target_group_arn: &'a str) -> ApiFuture<'a, Vec<TargetHealth>> {
        guarded!(self, describe_target_health(target_group_arn))
    }

    fn delete_target_group<'a>(&'a self, target_group_arn: &'a str) -> ApiFuture<'a, ()> {
        guarded!(self, delete_target_group(target_group_arn))
    }

    fn describe_rules<'a>(&'a self, listener_arn: &'a str, marker: Option<&'a str>) -> ApiFuture<'a, RulesPage> {
        guarded!(self, describe_rules(listener_arn, marker))
    }

    fn create_rule<'a>(
        &'a self,
        listener_arn: &'a str,
        priority: i32,
        rule: &'a RuleSpec,
        tags: &'a Tags,
    ) -> ApiFuture<'a, String> {
        guarded!(self, create_rule(listener_arn, priority, rule, tags))
    }

    fn modify_rule<'a>(&'a self, rule_arn: &'a str, rule: &'a RuleSpec) -> ApiFuture<'a, ()> {
        guarded!(self, modify_rule(rule_arn, rule))
    }

    fn set_rule_priority<'a>(&'a self, rule_arn: &'a str, priority: i32) -> ApiFuture<'a, ()> {
        guarded!(self, set_rule_priority(rule_arn, priority))
    }

    fn delete_rule<'a>(&'a self, rule_arn: &'a str) -> ApiFuture<'a, ()> {
        guarded!(self, delete_rule(rule_arn))
    }
}

impl<T: Route53Api + ?Sized> Route53Api for Credentialed<T> {
    fn get_hosted_zone<'a>(&'a self, zone_id: &'a str) -> ApiFuture<'a, HostedZone> {
        guarded!(self, get_hosted_zone(zone_id))
    }

    fn list_resource_record_sets<'a>(
        &'a self,
        zone_id: &'a str,
        start: &'a RecordStart,
        max_items: i32,
    ) -> ApiFuture<'a, RecordSetsPage> {
        guarded!(self, list_resource_record_sets(zone_id, start, max_items))
    }

    fn change_resource_record_sets<'a>(&'a self, zone_id: &'a str, changes: &'a [Change]) -> ApiFuture<'a, ChangeInfo> {
        guarded!(self, change_resource_record_sets(zone_id, changes))
    }

    fn get_change<'a>(&'a self, change_id: &'a str) -> ApiFuture<'a, ChangeInfo> {
        guarded!(self, get_change(change_id))
    }

    fn get_health_check<'a>(&'a self, health_check_id: &'a str) -> ApiFuture<'a, HealthCheck> {
        guarded!(self, get_health_check(health_check_id))
    }

    fn list_health_checks<'a>(&'a self, marker: Option<&'a str>) -> ApiFuture<'a, HealthChecksPage> {
        guarded!(self, list_health_checks(marker))
    }

    fn create_health_check<'a>(
        &'a self,
        caller_reference: &'a str,
        config: &'a HealthCheckConfig,
    ) -> ApiFuture<'a, String> {
        guarded!(self, create_health_check(caller_reference, config))
    }

    fn update_health_check<'a>(&'a self, health_check_id: &'a str, config: &'a HealthCheckConfig) -> ApiFuture<'a, ()> {
        guarded!(self, update_health_check(health_check_id, config))
    }

    fn delete_health_check<'a>(&'a self, health_check_id: &'a str) -> ApiFuture<'a, ()> {
        guarded!(self, delete_health_check(health_check_id))
    }

    fn add_health_check_tags<'a>(
        &'a self,
        health_check_id: &'a str,
        tags: &'a BTreeMap<String, String>,
    ) -> ApiFuture<'a, ()> {
        guarded!(self, add_health_check_tags(health_check_id, tags))
    }

    fn get_health_check_status<'a>(&'a self, health_check_id: &'a str) -> ApiFuture<'a, Vec<String>> {
        guarded!(self, get_health_check_status(health_check_id))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use aws_config::{BehaviorVersion, Region, SdkConfig};
    use aws_credential_types::Credentials;
    use aws_sdk_route53::types::{Change, ChangeAction, ResourceRecord, ResourceRecordSet, RrType};

    use crate::api::AwsOverride;
    use crate::aws::errors::ErrorCategory;
    use crate::aws::model::{FaultRates, ModelAws};
    use crate::aws::sdk::{ApiSource, AwsProvider};

    const ROLE: &str = "arn:aws:iam::123456789012:role/team-a";

    fn base() -> SdkConfig {
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(Credentials::new(
                "base", "base", None, None, "test",
            )))
            .build()
    }

    fn upsert(name: &str) -> Vec<Change> {
        let record = ResourceRecordSet::builder()
            .name(name)
            .r#type(RrType::Cname)
            .ttl(60)
            .resource_records(ResourceRecord::builder().value("target.example.com").build().expect("record"))
            .build()
            .expect("record set");
        vec![Change::builder().action(ChangeAction::Upsert).resource_record_set(record).build().expect("change")]
    }

    fn role(arn: &str) -> AwsOverride {
        AwsOverride { region: None, role_arn: Some(arn.into()), external_id: None }
    }

    #[tokio::test]
    async fn a_revoked_role_fails_every_call_as_terminal_access_denied_and_changes_nothing() {
        let model = ModelAws::new(1, FaultRates::default(), "123456789012", "us-east-1");
        let zone = model.route53.create_zone("example.com").id;
        let provider = AwsProvider::from_base(base()).with_source(Arc::new(model.clone()));
        // Built once and kept, as the controllers' cached configuration is: revoke and restore
        // must show through it.
        let r53 = provider.route53(&provider.config_for(Some(&role(ROLE))).await);
        let default = provider.route53(&provider.config_for(None).await);

        r53.get_hosted_zone(&zone).await.expect("assumable before the revoke");
        let records = model.route53.record_sets(&zone).expect("zone").len();
        assert!(model.sts.revoke_role(ROLE));
        let denied = r53.change_resource_record_sets(&zone, &upsert("a.example.com")).await.expect_err("revoked");
        assert_eq!((denied.category, denied.code.as_str()), (ErrorCategory::Terminal, "AccessDenied"), "{denied:?}");
        assert!(denied.message.contains(ROLE), "the refusal names the role: {}", denied.message);
        assert_eq!(model.route53.record_sets(&zone).expect("zone").len(), records, "a refused call changed nothing");
        default.get_hosted_zone(&zone).await.expect("the default identity assumes no role: always usable");

        assert!(model.sts.restore_role(ROLE));
        r53.change_resource_record_sets(&zone, &upsert("a.example.com")).await.expect("restored: seen at once");
        assert_eq!(model.route53.record_sets(&zone).expect("zone").len(), records + 1);
        assert_eq!(model.sts.assume_role_calls(ROLE), 3, "asked once per call, never cached");
    }

    #[tokio::test]
    async fn the_external_id_of_the_configuration_reaches_the_model() {
        let model = ModelAws::new(1, FaultRates::default(), "123456789012", "us-east-1");
        model.sts.require_external_id(ROLE, Some("tenant-1"));
        let provider = AwsProvider::from_base(base()).with_source(Arc::new(model.clone()));
        let with_id = AwsOverride { external_id: Some("tenant-1".into()), ..role(ROLE) };
        let ok = provider.ecs(&provider.config_for(Some(&with_id)).await);
        let wrong = provider.elbv2(&provider.config_for(Some(&role(ROLE))).await);
        ok.list_task_definitions("worker", None).await.expect("the right external id");
        let denied = wrong.describe_target_groups(&["tg".to_string()]).await.expect_err("no external id");
        assert_eq!((denied.category, denied.code.as_str()), (ErrorCategory::Terminal, "AccessDenied"));
        assert_eq!(model.assume_role(ROLE, Some("tenant-1")), Ok(()), "ApiSource::assume_role is the model's STS");
    }

    #[test]
    fn credentials_that_fail_otherwise_are_transient_as_in_the_sdk() {
        let err = super::refused(aws_credential_types::provider::error::CredentialsError::provider_error(
            "connection refused",
        ));
        assert_eq!((err.category, err.code.as_str()), (ErrorCategory::Transient, "DispatchFailure"));
    }
}
