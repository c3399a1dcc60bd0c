//! AWS fixtures a FargateApp needs to exist before it is applied (VPC, subnets, security group,
//! a shared ALB with an HTTP listener, the ECS cluster, a hosted zone), and read-only helpers that
//! inspect what the controller made, for assertions.
//!
//! Every call goes through the test's own `SdkConfig` (its own moto account), so "every resource
//! in the account" is "every resource of this test". Panics carry the failing call's name.
//!
//! moto quirks these helpers absorb (see /tmp/moto-research/FINDINGS.md):
//! - listener rule priorities come back as strings and rules in insertion order; conditions come
//!   back in the form sent (`Values` or `PathPatternConfig`/`HostHeaderConfig`), so both are merged;
//! - DescribeServices keeps deleted services with status INACTIVE (ListServices lists them too);
//! - ListTaskDefinitions filters by status (default ACTIVE) and matches `familyPrefix` exactly;
//! - Route 53 record names gain a trailing dot, alias DNS names are echoed as sent.

use std::collections::{BTreeMap, BTreeSet};

use aws_config::SdkConfig;
use aws_sdk_ecs::types::{Service as EcsService, TaskDefinition, TaskDefinitionStatus};
use aws_sdk_elasticloadbalancingv2::types::{ActionTypeEnum, Rule, TargetGroup};
use aws_sdk_route53::types::ResourceRecordSet;

/// Tag key naming the owning object: `<namespace>/<kind>/<name>`.
pub const OWNER_TAG: &str = "fargate.operator.dev/owner";
/// Tag key with the `--cluster-id` of the owning operator.
pub const CLUSTER_TAG: &str = "fargate.operator.dev/cluster";
/// Tag key with the owning object's `metadata.uid`.
pub const UID_TAG: &str = "fargate.operator.dev/uid";
/// Name of the ECS cluster [`standard`] creates.
pub const CLUSTER: &str = "apps";
/// Name of the hosted zone [`standard`] creates.
pub const ZONE: &str = "apps.example.com";
/// Name of the ALB [`standard`] creates.
pub const ALB_NAME: &str = "shared";

/// Owner tag value of a FargateApp.
pub fn app_owner(namespace: &str, name: &str) -> String {
    format!("{namespace}/FargateApp/{name}")
}

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

/// A VPC with two subnets and a security group.
#[derive(Clone, Debug)]
pub struct Network {
    /// VPC id.
    pub vpc_id: String,
    /// Subnet ids (us-east-1a, us-east-1b).
    pub subnets: Vec<String>,
    /// Security group id.
    pub security_group: String,
}

/// VPC 10.0.0.0/16 with DNS hostnames and DNS support on (ECS awsvpc needs hostnames), subnets
/// 10.0.1.0/24 in us-east-1a and 10.0.2.0/24 in us-east-1b, and one security group.
pub async fn network(cfg: &SdkConfig) -> Network {
    use aws_sdk_ec2::types::AttributeBooleanValue;
    let ec2 = aws_sdk_ec2::Client::new(cfg);
    let vpc = ec2.create_vpc().cidr_block("10.0.0.0/16").send().await.expect("ec2:CreateVpc");
    let vpc_id = vpc.vpc().and_then(|v| v.vpc_id()).expect("CreateVpc returned no VpcId").to_string();
    // AWS takes one attribute per ModifyVpcAttribute call.
    ec2.modify_vpc_attribute()
        .vpc_id(&vpc_id)
        .enable_dns_support(AttributeBooleanValue::builder().value(true).build())
        .send()
        .await
        .expect("ec2:ModifyVpcAttribute(EnableDnsSupport)");
    ec2.modify_vpc_attribute()
        .vpc_id(&vpc_id)
        .enable_dns_hostnames(AttributeBooleanValue::builder().value(true).build())
        .send()
        .await
        .expect("ec2:ModifyVpcAttribute(EnableDnsHostnames)");
    let mut subnets = Vec::new();
    for (cidr, az) in [("10.0.1.0/24", "us-east-1a"), ("10.0.2.0/24", "us-east-1b")] {
        let out = ec2
            .create_subnet()
            .vpc_id(&vpc_id)
            .cidr_block(cidr)
            .availability_zone(az)
            .send()
            .await
            .unwrap_or_else(|e| panic!("ec2:CreateSubnet {cidr} in {az}: {e:?}"));
        subnets.push(out.subnet().and_then(|s| s.subnet_id()).expect("CreateSubnet returned no SubnetId").to_string());
    }
    let sg = ec2
        .create_security_group()
        .group_name("apps")
        .description("fargate-operator test tasks")
        .vpc_id(&vpc_id)
        .send()
        .await
        .expect("ec2:CreateSecurityGroup");
    let security_group = sg.group_id().expect("CreateSecurityGroup returned no GroupId").to_string();
    Network { vpc_id, subnets, security_group }
}

/// A shared ALB with its HTTP listener.
#[derive(Clone, Debug)]
pub struct Alb {
    /// Load balancer ARN.
    pub arn: String,
    /// ARN of the HTTP:80 listener.
    pub listener_arn: String,
    /// DNS name of the load balancer.
    pub dns_name: String,
    /// Route 53 zone id of the load balancer (alias targets use it).
    pub canonical_zone_id: String,
}

/// An internet-facing application load balancer in `net`'s subnets with an HTTP:80 listener whose
/// default action is a fixed 404 response.
pub async fn alb(cfg: &SdkConfig, net: &Network, name: &str) -> Alb {
    use aws_sdk_elasticloadbalancingv2::types::{
        Action, FixedResponseActionConfig, LoadBalancerSchemeEnum, LoadBalancerTypeEnum, ProtocolEnum,
    };
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(cfg);
    let created = elb
        .create_load_balancer()
        .name(name)
        .r#type(LoadBalancerTypeEnum::Application)
        .scheme(LoadBalancerSchemeEnum::InternetFacing)
        .set_subnets(Some(net.subnets.clone()))
        .security_groups(&net.security_group)
        .send()
        .await
        .unwrap_or_else(|e| panic!("elbv2:CreateLoadBalancer {name}: {e:?}"));
    let lb = created.load_balancers().first().expect("CreateLoadBalancer returned no load balancer");
    let arn = lb.load_balancer_arn().expect("LoadBalancerArn").to_string();
    let dns_name = lb.dns_name().expect("DNSName").to_string();
    let canonical_zone_id = lb.canonical_hosted_zone_id().expect("CanonicalHostedZoneId").to_string();
    let listener = elb
        .create_listener()
        .load_balancer_arn(&arn)
        .protocol(ProtocolEnum::Http)
        .port(80)
        .default_actions(
            Action::builder()
                .r#type(ActionTypeEnum::FixedResponse)
                .fixed_response_config(
                    FixedResponseActionConfig::builder()
                        .status_code("404")
                        .content_type("text/plain")
                        .message_body("no route")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("elbv2:CreateListener");
    let listener_arn = listener
        .listeners()
        .first()
        .and_then(|l| l.listener_arn())
        .expect("CreateListener returned no ListenerArn")
        .to_string();
    Alb { arn, listener_arn, dns_name, canonical_zone_id }
}

/// Another HTTP listener (fixed 404 by default) on load balancer `lb_arn`; returns its ARN.
pub async fn listener(cfg: &SdkConfig, lb_arn: &str, port: i32) -> String {
    use aws_sdk_elasticloadbalancingv2::types::{Action, FixedResponseActionConfig, ProtocolEnum};
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(cfg);
    let not_found = FixedResponseActionConfig::builder().status_code("404").content_type("text/plain").build();
    let out = elb
        .create_listener()
        .load_balancer_arn(lb_arn)
        .protocol(ProtocolEnum::Http)
        .port(port)
        .default_actions(
            Action::builder().r#type(ActionTypeEnum::FixedResponse).fixed_response_config(not_found).build(),
        )
        .send()
        .await
        .expect("elbv2:CreateListener");
    out.listeners().first().and_then(|l| l.listener_arn()).expect("ListenerArn").to_string()
}

/// A CNAME `name` -> `value` written as someone else would (no operator involved).
pub async fn upsert_cname(r53: &aws_sdk_route53::Client, zone_id: &str, name: &str, value: &str) {
    use aws_sdk_route53::types::{Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType};
    let set = ResourceRecordSet::builder()
        .name(name)
        .r#type(RrType::Cname)
        .ttl(60)
        .resource_records(ResourceRecord::builder().value(value).build().expect("record"))
        .build()
        .expect("record set");
    let change = Change::builder().action(ChangeAction::Upsert).resource_record_set(set).build().expect("change");
    r53.change_resource_record_sets()
        .hosted_zone_id(zone_id)
        .change_batch(ChangeBatch::builder().changes(change).build().expect("batch"))
        .send()
        .await
        .expect("route53:ChangeResourceRecordSets");
}

/// An ECS cluster; returns its ARN.
pub async fn ecs_cluster(cfg: &SdkConfig, name: &str) -> String {
    let ecs = aws_sdk_ecs::Client::new(cfg);
    let out = ecs.create_cluster().cluster_name(name).send().await.expect("ecs:CreateCluster");
    out.cluster().and_then(|c| c.cluster_arn()).expect("CreateCluster returned no clusterArn").to_string()
}

/// Register a revision of the `worker` task definition HotPools run (their users register it, not
/// the operator); returns its ARN.
pub async fn worker_task_definition(cfg: &SdkConfig) -> String {
    use aws_sdk_ecs::types::{Compatibility, ContainerDefinition, NetworkMode};
    let out = aws_sdk_ecs::Client::new(cfg)
        .register_task_definition()
        .family("worker")
        .network_mode(NetworkMode::Awsvpc)
        .requires_compatibilities(Compatibility::Fargate)
        .cpu("256")
        .memory("512")
        // moto needs a container-level memory to place the task.
        .container_definitions(
            ContainerDefinition::builder().name("worker").image("example/worker:2").memory(512).essential(true).build(),
        )
        .send()
        .await
        .expect("ecs:RegisterTaskDefinition worker");
    out.task_definition().and_then(|t| t.task_definition_arn()).expect("worker ARN").to_string()
}

/// A public hosted zone; returns its id without the `/hostedzone/` prefix.
pub async fn hosted_zone(cfg: &SdkConfig, name: &str) -> String {
    let r53 = aws_sdk_route53::Client::new(cfg);
    let out = r53
        .create_hosted_zone()
        .name(name)
        .caller_reference(format!("test-{name}-{}", super::suffix()))
        .send()
        .await
        .expect("route53:CreateHostedZone");
    let id = out.hosted_zone().expect("CreateHostedZone returned no HostedZone").id();
    id.trim_start_matches("/hostedzone/").to_string()
}

/// Everything a full FargateApp refers to.
#[derive(Clone, Debug)]
pub struct Fixtures {
    /// VPC, subnets, security group.
    pub net: Network,
    /// The shared ALB and its listener.
    pub alb: Alb,
    /// ARN of the ECS cluster [`CLUSTER`].
    pub cluster_arn: String,
    /// Id of the hosted zone [`ZONE`] (no `/hostedzone/` prefix).
    pub zone_id: String,
}

/// Network, ALB [`ALB_NAME`] with listener, ECS cluster [`CLUSTER`] and zone [`ZONE`].
pub async fn standard(cfg: &SdkConfig) -> Fixtures {
    let net = network(cfg).await;
    let alb = alb(cfg, &net, ALB_NAME).await;
    let cluster_arn = ecs_cluster(cfg, CLUSTER).await;
    let zone_id = hosted_zone(cfg, ZONE).await;
    Fixtures { net, alb, cluster_arn, zone_id }
}

// ---------------------------------------------------------------------------------------------
// Inspection: ELBv2
// ---------------------------------------------------------------------------------------------

/// Tags of ELBv2 resources, by ARN (DescribeTags, 20 ARNs per call as AWS allows).
pub async fn elb_tags(cfg: &SdkConfig, arns: &[String]) -> BTreeMap<String, BTreeMap<String, String>> {
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(cfg);
    let mut out = BTreeMap::new();
    for chunk in arns.chunks(20) {
        let resp = elb
            .describe_tags()
            .set_resource_arns(Some(chunk.to_vec()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("elbv2:DescribeTags {chunk:?}: {e:?}"));
        for d in resp.tag_descriptions() {
            let tags = d
                .tags()
                .iter()
                .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string())))
                .collect();
            out.insert(d.resource_arn().unwrap_or_default().to_string(), tags);
        }
    }
    out
}

/// A target group with its tags.
#[derive(Clone, Debug)]
pub struct TargetGroupInfo {
    /// As described.
    pub tg: TargetGroup,
    /// Its tags.
    pub tags: BTreeMap<String, String>,
}

impl TargetGroupInfo {
    /// The target group ARN.
    pub fn arn(&self) -> &str {
        self.tg.target_group_arn().unwrap_or_default()
    }
}

/// Every target group of the account, with tags.
pub async fn target_groups(cfg: &SdkConfig) -> Vec<TargetGroupInfo> {
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(cfg);
    let mut tgs = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let resp =
            elb.describe_target_groups().set_marker(marker.clone()).send().await.expect("elbv2:DescribeTargetGroups");
        tgs.extend(resp.target_groups().iter().cloned());
        marker = resp.next_marker().map(str::to_string);
        if marker.is_none() {
            break;
        }
    }
    let arns: Vec<String> = tgs.iter().filter_map(|t| t.target_group_arn().map(str::to_string)).collect();
    let mut tags = elb_tags(cfg, &arns).await;
    tgs.into_iter()
        .map(|tg| {
            let tags = tags.remove(tg.target_group_arn().unwrap_or_default()).unwrap_or_default();
            TargetGroupInfo { tg, tags }
        })
        .collect()
}

/// Target groups whose owner tag is `owner`.
pub async fn owned_target_groups(cfg: &SdkConfig, owner: &str) -> Vec<TargetGroupInfo> {
    target_groups(cfg).await.into_iter().filter(|t| t.tags.get(OWNER_TAG).map(String::as_str) == Some(owner)).collect()
}

/// One target group by ARN, or None when it does not exist.
pub async fn target_group(cfg: &SdkConfig, arn: &str) -> Option<TargetGroup> {
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(cfg);
    match elb.describe_target_groups().target_group_arns(arn).send().await {
        Ok(resp) => resp.target_groups().first().cloned(),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_target_group_not_found_exception()) => None,
        Err(e) => panic!("elbv2:DescribeTargetGroups {arn}: {e:?}"),
    }
}

/// One target group by name, or None when it does not exist.
pub async fn target_group_by_name(cfg: &SdkConfig, name: &str) -> Option<TargetGroup> {
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(cfg);
    match elb.describe_target_groups().names(name).send().await {
        Ok(resp) => resp.target_groups().first().cloned(),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_target_group_not_found_exception()) => None,
        Err(e) => panic!("elbv2:DescribeTargetGroups name={name}: {e:?}"),
    }
}

/// Attributes of a target group (e.g. `deregistration_delay.timeout_seconds`), read back with
/// DescribeTargetGroupAttributes (moto's Modify response only echoes what was sent).
pub async fn target_group_attributes(cfg: &SdkConfig, arn: &str) -> BTreeMap<String, String> {
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(cfg);
    let resp = elb
        .describe_target_group_attributes()
        .target_group_arn(arn)
        .send()
        .await
        .unwrap_or_else(|e| panic!("elbv2:DescribeTargetGroupAttributes {arn}: {e:?}"));
    resp.attributes()
        .iter()
        .filter_map(|a| Some((a.key()?.to_string(), a.value().unwrap_or_default().to_string())))
        .collect()
}

/// A listener rule, normalised: numeric priority, condition values merged from both forms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleInfo {
    /// Rule ARN.
    pub arn: String,
    /// Priority; None for the default rule.
    pub priority: Option<i32>,
    /// Whether this is the listener's default rule.
    pub is_default: bool,
    /// `path-pattern` values (from `Values` and `PathPatternConfig`).
    pub path_patterns: BTreeSet<String>,
    /// `host-header` values (from `Values` and `HostHeaderConfig`).
    pub host_headers: BTreeSet<String>,
    /// Fields of any other conditions.
    pub other_conditions: Vec<String>,
    /// Target groups the rule forwards to (simple `TargetGroupArn` and `ForwardConfig`).
    pub forward_to: BTreeSet<String>,
    /// Action types in order.
    pub action_types: Vec<String>,
    /// Tags of the rule.
    pub tags: BTreeMap<String, String>,
}

impl RuleInfo {
    /// The owner tag value, if any.
    pub fn owner(&self) -> Option<&str> {
        self.tags.get(OWNER_TAG).map(String::as_str)
    }
}

fn rule_info(rule: &Rule, tags: BTreeMap<String, String>) -> RuleInfo {
    let (mut path_patterns, mut host_headers, mut other_conditions) = (BTreeSet::new(), BTreeSet::new(), Vec::new());
    for c in rule.conditions() {
        let field = c.field().unwrap_or_default();
        match field {
            "path-pattern" => {
                path_patterns.extend(c.values().iter().cloned());
                if let Some(cfg) = c.path_pattern_config() {
                    path_patterns.extend(cfg.values().iter().cloned());
                }
            }
            "host-header" => {
                host_headers.extend(c.values().iter().cloned());
                if let Some(cfg) = c.host_header_config() {
                    host_headers.extend(cfg.values().iter().cloned());
                }
            }
            other => other_conditions.push(other.to_string()),
        }
    }
    let mut forward_to = BTreeSet::new();
    let mut action_types = Vec::new();
    for a in rule.actions() {
        action_types.push(a.r#type().map(|t| t.as_str().to_string()).unwrap_or_default());
        if a.r#type() == Some(&ActionTypeEnum::Forward) {
            forward_to.extend(a.target_group_arn().map(str::to_string));
            if let Some(fc) = a.forward_config() {
                forward_to.extend(fc.target_groups().iter().filter_map(|t| t.target_group_arn().map(str::to_string)));
            }
        }
    }
    let is_default = rule.is_default().unwrap_or(false) || rule.priority() == Some("default");
    RuleInfo {
        arn: rule.rule_arn().unwrap_or_default().to_string(),
        priority: if is_default { None } else { rule.priority().and_then(|p| p.parse().ok()) },
        is_default,
        path_patterns,
        host_headers,
        other_conditions,
        forward_to,
        action_types,
        tags,
    }
}

/// Every rule on a listener (including the default one), sorted by priority (default last).
pub async fn listener_rules(cfg: &SdkConfig, listener_arn: &str) -> Vec<RuleInfo> {
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(cfg);
    let mut rules = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let resp = elb
            .describe_rules()
            .listener_arn(listener_arn)
            .set_marker(marker.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("elbv2:DescribeRules {listener_arn}: {e:?}"));
        rules.extend(resp.rules().iter().cloned());
        marker = resp.next_marker().map(str::to_string);
        if marker.is_none() {
            break;
        }
    }
    let arns: Vec<String> = rules
        .iter()
        .filter(|r| !(r.is_default().unwrap_or(false) || r.priority() == Some("default")))
        .filter_map(|r| r.rule_arn().map(str::to_string))
        .collect();
    let mut tags = elb_tags(cfg, &arns).await;
    let mut out: Vec<RuleInfo> =
        rules.iter().map(|r| rule_info(r, tags.remove(r.rule_arn().unwrap_or_default()).unwrap_or_default())).collect();
    out.sort_by_key(|r| (r.is_default, r.priority));
    out
}

/// The non-default rules on a listener, sorted by priority.
pub async fn non_default_rules(cfg: &SdkConfig, listener_arn: &str) -> Vec<RuleInfo> {
    listener_rules(cfg, listener_arn).await.into_iter().filter(|r| !r.is_default).collect()
}

/// Rules on a listener whose owner tag is `owner`, sorted by priority.
pub async fn owned_rules(cfg: &SdkConfig, listener_arn: &str, owner: &str) -> Vec<RuleInfo> {
    listener_rules(cfg, listener_arn).await.into_iter().filter(|r| r.owner() == Some(owner)).collect()
}

// ---------------------------------------------------------------------------------------------
// Inspection: ECS
// ---------------------------------------------------------------------------------------------

/// Tags of an ECS object as a map (moto reorders them on TagResource).
pub fn ecs_tag_map(tags: &[aws_sdk_ecs::types::Tag]) -> BTreeMap<String, String> {
    tags.iter().filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string()))).collect()
}

/// Every service of `cluster` described with tags, whatever its status (moto keeps deleted ones
/// as INACTIVE).
pub async fn services_in(cfg: &SdkConfig, cluster: &str) -> Vec<EcsService> {
    use aws_sdk_ecs::types::ServiceField;
    let ecs = aws_sdk_ecs::Client::new(cfg);
    let mut arns = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let resp = ecs
            .list_services()
            .cluster(cluster)
            .set_next_token(token.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("ecs:ListServices {cluster}: {e:?}"));
        arns.extend(resp.service_arns().iter().cloned());
        token = resp.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    let mut out = Vec::new();
    for chunk in arns.chunks(10) {
        let resp = ecs
            .describe_services()
            .cluster(cluster)
            .set_services(Some(chunk.to_vec()))
            .include(ServiceField::Tags)
            .send()
            .await
            .unwrap_or_else(|e| panic!("ecs:DescribeServices {chunk:?}: {e:?}"));
        out.extend(resp.services().iter().cloned());
    }
    out
}

/// ACTIVE services of cluster [`CLUSTER`].
pub async fn active_services(cfg: &SdkConfig) -> Vec<EcsService> {
    services_in(cfg, CLUSTER).await.into_iter().filter(|s| s.status() == Some("ACTIVE")).collect()
}

/// ACTIVE services of cluster [`CLUSTER`] whose owner tag is `owner`.
pub async fn owned_active_services(cfg: &SdkConfig, owner: &str) -> Vec<EcsService> {
    active_services(cfg)
        .await
        .into_iter()
        .filter(|s| ecs_tag_map(s.tags()).get(OWNER_TAG).map(String::as_str) == Some(owner))
        .collect()
}

/// One service of cluster [`CLUSTER`] by name or ARN (with tags), None if ECS reports it missing.
pub async fn service(cfg: &SdkConfig, name_or_arn: &str) -> Option<EcsService> {
    use aws_sdk_ecs::types::ServiceField;
    let ecs = aws_sdk_ecs::Client::new(cfg);
    let resp = ecs
        .describe_services()
        .cluster(CLUSTER)
        .services(name_or_arn)
        .include(ServiceField::Tags)
        .send()
        .await
        .unwrap_or_else(|e| panic!("ecs:DescribeServices {name_or_arn}: {e:?}"));
    resp.services().first().cloned()
}

/// `(family, revision)` of a task definition ARN (`…:task-definition/<family>:<rev>`).
pub fn parse_task_definition_arn(arn: &str) -> (String, i32) {
    let tail = arn
        .split_once("task-definition/")
        .map(|(_, t)| t)
        .unwrap_or_else(|| panic!("not a task definition ARN: {arn}"));
    let (family, rev) = tail.rsplit_once(':').unwrap_or_else(|| panic!("no revision in task definition ARN: {arn}"));
    (family.to_string(), rev.parse().unwrap_or_else(|_| panic!("bad revision in {arn}")))
}

/// ARNs of the revisions of exactly `family` with `status` (ListTaskDefinitions, ascending).
pub async fn task_definition_arns(cfg: &SdkConfig, family: &str, status: TaskDefinitionStatus) -> Vec<String> {
    let ecs = aws_sdk_ecs::Client::new(cfg);
    let mut arns = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let resp = ecs
            .list_task_definitions()
            .family_prefix(family)
            .status(status.clone())
            .set_next_token(token.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("ecs:ListTaskDefinitions {family}: {e:?}"));
        // familyPrefix is a prefix on AWS: keep only exactly this family.
        arns.extend(resp.task_definition_arns().iter().filter(|a| parse_task_definition_arn(a).0 == family).cloned());
        token = resp.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    arns
}

/// A task definition revision and its status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revision {
    /// Full ARN.
    pub arn: String,
    /// Revision number.
    pub revision: i32,
    /// ACTIVE or INACTIVE.
    pub active: bool,
}

/// Every revision of `family` (ACTIVE and INACTIVE), sorted by revision number.
pub async fn task_definition_revisions(cfg: &SdkConfig, family: &str) -> Vec<Revision> {
    let mut out = Vec::new();
    for (status, active) in [(TaskDefinitionStatus::Active, true), (TaskDefinitionStatus::Inactive, false)] {
        for arn in task_definition_arns(cfg, family, status).await {
            let revision = parse_task_definition_arn(&arn).1;
            out.push(Revision { arn, revision, active });
        }
    }
    out.sort_by_key(|r| r.revision);
    out
}

/// A task definition with its tags (DescribeTaskDefinition include=TAGS).
pub async fn task_definition(cfg: &SdkConfig, arn: &str) -> (TaskDefinition, BTreeMap<String, String>) {
    use aws_sdk_ecs::types::TaskDefinitionField;
    let ecs = aws_sdk_ecs::Client::new(cfg);
    let resp = ecs
        .describe_task_definition()
        .task_definition(arn)
        .include(TaskDefinitionField::Tags)
        .send()
        .await
        .unwrap_or_else(|e| panic!("ecs:DescribeTaskDefinition {arn}: {e:?}"));
    (
        resp.task_definition().cloned().expect("DescribeTaskDefinition returned no taskDefinition"),
        ecs_tag_map(resp.tags()),
    )
}

// ---------------------------------------------------------------------------------------------
// Inspection: Route 53
// ---------------------------------------------------------------------------------------------

/// Lowercase, without a trailing dot and without a `dualstack.` prefix (alias targets compare so).
pub fn normalize_dns(name: &str) -> String {
    let n = name.trim_end_matches('.').to_ascii_lowercase();
    n.strip_prefix("dualstack.").map(str::to_string).unwrap_or(n)
}

/// Every record set of a zone.
pub async fn records(cfg: &SdkConfig, zone_id: &str) -> Vec<ResourceRecordSet> {
    let r53 = aws_sdk_route53::Client::new(cfg);
    let mut out = Vec::new();
    let (mut name, mut rtype, mut ident) = (None::<String>, None, None::<String>);
    loop {
        let resp = r53
            .list_resource_record_sets()
            .hosted_zone_id(zone_id)
            .set_start_record_name(name.clone())
            .set_start_record_type(rtype.clone())
            .set_start_record_identifier(ident.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("route53:ListResourceRecordSets {zone_id}: {e:?}"));
        out.extend(resp.resource_record_sets().iter().cloned());
        if !resp.is_truncated() {
            break;
        }
        name = resp.next_record_name().map(str::to_string);
        rtype = resp.next_record_type().cloned();
        ident = resp.next_record_identifier().map(str::to_string);
        if name.is_none() {
            break;
        }
    }
    out
}

/// Record sets of a zone named `name` (compared normalised), any type.
pub async fn records_named(cfg: &SdkConfig, zone_id: &str, name: &str) -> Vec<ResourceRecordSet> {
    let want = normalize_dns(name);
    records(cfg, zone_id).await.into_iter().filter(|r| normalize_dns(r.name()) == want).collect()
}
