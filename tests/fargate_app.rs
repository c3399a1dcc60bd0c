//! FargateApp end to end: the operator in-process against the real apiserver and moto. Each test has
//! its own namespace, its own moto account (through `spec.aws.roleArn`) and its own fixtures (VPC,
//! subnets, security group, a shared ALB with an HTTP listener, ECS cluster `apps`, zone
//! `apps.example.com`), and checks the public contract only: the CRD types, status conditions and
//! the AWS state as the SDK sees it.
//!
//! moto facts these assertions rely on or avoid (/tmp/moto-research/FINDINGS.md): services never
//! run tasks, so `Ready` stays False and is not waited for; deleted services stay listed as
//! INACTIVE; rule priorities are strings and conditions come back in the form sent (the fixture
//! helpers normalise both); alias DNS names are echoed as sent (compared normalised).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use fargate_operator::api::FargateApp;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams};
use serde::Serialize;
use serde_json::{Value, json};
use support::app::{Setup, condition, current, status_of, wait_app, wait_condition, wait_deleted, wait_synced};
use support::fixtures::{self, CLUSTER_TAG, OWNER_TAG, UID_TAG, app_owner};
use support::{POLL_DEADLINE, TestCtx, poll_aws};

/// Change a service's desired count as someone else would, and check ECS took it.
async fn scale_behind_our_back(ecs: &aws_sdk_ecs::Client, service_arn: &str, count: i32) {
    let scaled = ecs
        .update_service()
        .cluster(fixtures::CLUSTER)
        .service(service_arn)
        .desired_count(count)
        .send()
        .await
        .expect("UpdateService");
    assert_eq!(scaled.service().map(|s| s.desired_count()), Some(count));
}

/// The owner tags (and the example's `team: web`) every resource of `app` must carry.
fn assert_owner_tags(tags: &BTreeMap<String, String>, app: &FargateApp, what: &str) {
    let owner = app_owner(&app.namespace().expect("namespace"), &app.name_any());
    assert_eq!(tags.get(CLUSTER_TAG).map(String::as_str), Some("test"), "{what}: cluster tag in {tags:?}");
    assert_eq!(tags.get(OWNER_TAG), Some(&owner), "{what}: owner tag in {tags:?}");
    assert_eq!(tags.get(UID_TAG).map(String::as_str), app.metadata.uid.as_deref(), "{what}: uid tag in {tags:?}");
    assert_eq!(tags.get("team").map(String::as_str), Some("web"), "{what}: spec.tags in {tags:?}");
}

/// A JSON object serialised with its keys in the given order (serde_json's own map sorts them).
#[derive(Debug)]
struct Ordered(Vec<(String, Value)>);

impl Serialize for Ordered {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// A container whose `env` keys are sent in a chosen order.
#[derive(Serialize, Debug)]
struct ContainerWithOrderedEnv {
    #[serde(flatten)]
    rest: serde_json::Map<String, Value>,
    env: Ordered,
}

// ---------------------------------------------------------------------------------------------
// Fixtures alone (run without the controller)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn fixtures_build() {
    use aws_sdk_ec2::types::VpcAttributeName;
    let ctx = TestCtx::new("fa-fixtures").await;
    let cfg = ctx.sdk_config().await;
    let fx = fixtures::standard(&cfg).await;

    let ec2 = aws_sdk_ec2::Client::new(&cfg);
    for (attr, what) in
        [(VpcAttributeName::EnableDnsHostnames, "hostnames"), (VpcAttributeName::EnableDnsSupport, "support")]
    {
        let out =
            ec2.describe_vpc_attribute().vpc_id(&fx.net.vpc_id).attribute(attr.clone()).send().await.expect("vpc attr");
        let on = match attr {
            VpcAttributeName::EnableDnsHostnames => out.enable_dns_hostnames().and_then(|v| v.value()),
            _ => out.enable_dns_support().and_then(|v| v.value()),
        };
        assert_eq!(on, Some(true), "VPC DNS {what}");
    }
    assert_eq!(fx.net.subnets.len(), 2);
    assert!(fx.net.security_group.starts_with("sg-"), "{}", fx.net.security_group);

    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&cfg);
    let listeners =
        elb.describe_listeners().listener_arns(&fx.alb.listener_arn).send().await.expect("describe listener");
    let listener = listeners.listeners().first().expect("the listener exists");
    assert_eq!(listener.load_balancer_arn(), Some(fx.alb.arn.as_str()));
    assert_eq!(listener.port(), Some(80));
    let lbs = elb.describe_load_balancers().load_balancer_arns(&fx.alb.arn).send().await.expect("describe lb");
    let lb = lbs.load_balancers().first().expect("the load balancer exists");
    assert_eq!(lb.vpc_id(), Some(fx.net.vpc_id.as_str()));
    assert_eq!(lb.dns_name(), Some(fx.alb.dns_name.as_str()));
    assert!(fx.alb.listener_arn.contains(":listener/app/"), "{}", fx.alb.listener_arn);
    assert!(fx.alb.arn.contains(&format!(":{}:", ctx.account)), "ALB {} in account {}", fx.alb.arn, ctx.account);

    let rules = fixtures::listener_rules(&cfg, &fx.alb.listener_arn).await;
    assert_eq!(rules.len(), 1, "only the default rule: {rules:?}");
    assert!(rules[0].is_default && rules[0].priority.is_none(), "{rules:?}");
    assert_eq!(rules[0].action_types, ["fixed-response"]);

    assert!(fx.cluster_arn.ends_with(":cluster/apps"), "{}", fx.cluster_arn);
    assert!(!fx.zone_id.starts_with('/'), "{}", fx.zone_id);
    let zone_records = fixtures::records(&cfg, &fx.zone_id).await;
    let types: BTreeSet<&str> = zone_records.iter().map(|r| r.r#type().as_str()).collect();
    assert_eq!(types, BTreeSet::from(["NS", "SOA"]), "a new zone holds its NS and SOA only");
    assert!(fixtures::target_groups(&cfg).await.is_empty());
    assert!(fixtures::services_in(&cfg, fixtures::CLUSTER).await.is_empty());
    ctx.cleanup().await;
}

/// The inspection helpers read what moto returns the way the tests assume: owner filters, priority
/// parsing, merged condition forms, INACTIVE services, revision statuses, alias records.
#[tokio::test]
async fn inspection_helpers_read_moto_state() {
    use aws_sdk_ecs::types::{
        AssignPublicIp, AwsVpcConfiguration, Compatibility, ContainerDefinition, LaunchType, LoadBalancer,
        NetworkConfiguration, NetworkMode,
    };
    use aws_sdk_elasticloadbalancingv2::types::{
        Action, ActionTypeEnum, PathPatternConditionConfig, ProtocolEnum, RuleCondition, Tag, TargetTypeEnum,
    };
    let ctx = TestCtx::new("fa-helpers").await;
    let cfg = ctx.sdk_config().await;
    let fx = fixtures::standard(&cfg).await;
    let owner = app_owner(&ctx.namespace, "probe");
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&cfg);
    let ecs = aws_sdk_ecs::Client::new(&cfg);

    // Two target groups, one tagged as ours.
    let mut tg_arns = Vec::new();
    for (name, tagged) in [("probe-ours", true), ("probe-other", false)] {
        let mut req = elb
            .create_target_group()
            .name(name)
            .protocol(ProtocolEnum::Http)
            .port(8080)
            .vpc_id(&fx.net.vpc_id)
            .target_type(TargetTypeEnum::Ip);
        if tagged {
            req = req.tags(Tag::builder().key(OWNER_TAG).value(&owner).build());
        }
        let out = req.send().await.expect("create tg");
        tg_arns.push(out.target_groups()[0].target_group_arn().expect("arn").to_string());
    }
    let ours = fixtures::owned_target_groups(&cfg, &owner).await;
    assert_eq!(ours.iter().map(|t| t.arn()).collect::<Vec<_>>(), [tg_arns[0].as_str()]);
    assert_eq!(fixtures::target_groups(&cfg).await.len(), 2);
    assert_eq!(
        fixtures::target_group_attributes(&cfg, &tg_arns[0])
            .await
            .get("deregistration_delay.timeout_seconds")
            .map(String::as_str),
        Some("300")
    );
    assert!(fixtures::target_group(&cfg, &tg_arns[1]).await.is_some());
    assert!(fixtures::target_group_by_name(&cfg, "probe-missing").await.is_none());

    // Rules in both condition forms, created out of priority order.
    let forward = |arn: &str| Action::builder().r#type(ActionTypeEnum::Forward).target_group_arn(arn).build();
    elb.create_rule()
        .listener_arn(&fx.alb.listener_arn)
        .priority(12)
        .conditions(RuleCondition::builder().field("path-pattern").values("/values/*").build())
        .actions(forward(&tg_arns[1]))
        .send()
        .await
        .expect("rule with Values");
    elb.create_rule()
        .listener_arn(&fx.alb.listener_arn)
        .priority(7)
        .conditions(
            RuleCondition::builder()
                .field("path-pattern")
                .path_pattern_config(PathPatternConditionConfig::builder().values("/config/*").build())
                .build(),
        )
        .actions(forward(&tg_arns[0]))
        .tags(Tag::builder().key(OWNER_TAG).value(&owner).build())
        .send()
        .await
        .expect("rule with PathPatternConfig");
    let rules = fixtures::non_default_rules(&cfg, &fx.alb.listener_arn).await;
    assert_eq!(rules.iter().map(|r| r.priority).collect::<Vec<_>>(), [Some(7), Some(12)], "{rules:?}");
    assert_eq!(rules[0].path_patterns, BTreeSet::from(["/config/*".to_string()]));
    assert_eq!(rules[1].path_patterns, BTreeSet::from(["/values/*".to_string()]));
    assert_eq!(rules[0].forward_to, BTreeSet::from([tg_arns[0].clone()]));
    let owned = fixtures::owned_rules(&cfg, &fx.alb.listener_arn, &owner).await;
    assert_eq!(owned.len(), 1);
    assert_eq!(owned[0].priority, Some(7));

    // Task definition revisions: two registered, one deregistered.
    let register = || {
        ecs.register_task_definition()
            .family("probe")
            .network_mode(NetworkMode::Awsvpc)
            .requires_compatibilities(Compatibility::Fargate)
            .cpu("256")
            .memory("512")
            .container_definitions(ContainerDefinition::builder().name("c").image("nginx").memory(512).build())
            .send()
    };
    let r1 = register().await.expect("register 1");
    let r1 = r1.task_definition().and_then(|t| t.task_definition_arn()).expect("arn").to_string();
    let r2 = register().await.expect("register 2");
    let r2 = r2.task_definition().and_then(|t| t.task_definition_arn()).expect("arn").to_string();
    ecs.deregister_task_definition().task_definition(&r1).send().await.expect("deregister");
    let revs = fixtures::task_definition_revisions(&cfg, "probe").await;
    assert_eq!(
        revs.iter().map(|r| (r.arn.as_str(), r.revision, r.active)).collect::<Vec<_>>(),
        [(r1.as_str(), 1, false), (r2.as_str(), 2, true)]
    );
    assert_eq!(fixtures::parse_task_definition_arn(&r2), ("probe".to_string(), 2));
    assert!(fixtures::task_definition_revisions(&cfg, "prob").await.is_empty(), "exact family only");

    // Services: a deleted one stays listed as INACTIVE and is filtered out.
    let net = NetworkConfiguration::builder()
        .awsvpc_configuration(
            AwsVpcConfiguration::builder()
                .set_subnets(Some(fx.net.subnets.clone()))
                .security_groups(&fx.net.security_group)
                .assign_public_ip(AssignPublicIp::Disabled)
                .build()
                .expect("awsvpc"),
        )
        .build();
    for name in ["keep", "gone"] {
        ecs.create_service()
            .cluster(fixtures::CLUSTER)
            .service_name(name)
            .task_definition(&r2)
            .desired_count(1)
            .launch_type(LaunchType::Fargate)
            .network_configuration(net.clone())
            .load_balancers(
                LoadBalancer::builder().target_group_arn(&tg_arns[0]).container_name("c").container_port(80).build(),
            )
            .tags(aws_sdk_ecs::types::Tag::builder().key(OWNER_TAG).value(format!("{owner}-{name}")).build())
            .send()
            .await
            .expect("create service");
    }
    ecs.delete_service().cluster(fixtures::CLUSTER).service("gone").force(true).send().await.expect("delete");
    assert_eq!(fixtures::services_in(&cfg, fixtures::CLUSTER).await.len(), 2, "moto keeps the INACTIVE one");
    let active = fixtures::active_services(&cfg).await;
    assert_eq!(active.iter().map(|s| s.service_name().unwrap_or_default()).collect::<Vec<_>>(), ["keep"]);
    assert_eq!(fixtures::owned_active_services(&cfg, &format!("{owner}-keep")).await.len(), 1);
    assert!(fixtures::owned_active_services(&cfg, &format!("{owner}-gone")).await.is_empty());
    assert_eq!(
        fixtures::service(&cfg, "gone").await.and_then(|s| s.status().map(str::to_string)).as_deref(),
        Some("INACTIVE")
    );

    // An alias record, listed under its normalised name.
    let r53 = aws_sdk_route53::Client::new(&cfg);
    use aws_sdk_route53::types::{AliasTarget, Change, ChangeAction, ChangeBatch, ResourceRecordSet, RrType};
    r53.change_resource_record_sets()
        .hosted_zone_id(&fx.zone_id)
        .change_batch(
            ChangeBatch::builder()
                .changes(
                    Change::builder()
                        .action(ChangeAction::Upsert)
                        .resource_record_set(
                            ResourceRecordSet::builder()
                                .name("Probe.apps.example.com")
                                .r#type(RrType::A)
                                .alias_target(
                                    AliasTarget::builder()
                                        .hosted_zone_id(&fx.alb.canonical_zone_id)
                                        .dns_name(&fx.alb.dns_name)
                                        .evaluate_target_health(true)
                                        .build()
                                        .expect("alias"),
                                )
                                .build()
                                .expect("rrset"),
                        )
                        .build()
                        .expect("change"),
                )
                .build()
                .expect("batch"),
        )
        .send()
        .await
        .expect("upsert");
    let found = fixtures::records_named(&cfg, &fx.zone_id, "probe.apps.example.com.").await;
    assert_eq!(found.len(), 1, "{found:?}");
    let alias = found[0].alias_target().expect("alias");
    assert_eq!(fixtures::normalize_dns(alias.dns_name()), fixtures::normalize_dns(&fx.alb.dns_name));
    assert!(alias.evaluate_target_health());
    ctx.cleanup().await;
}

// ---------------------------------------------------------------------------------------------
// The controller
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn full_example_creates_every_resource_as_specified() {
    use aws_sdk_ecs::types::{AssignPublicIp, Compatibility, CpuArchitecture, LaunchType, LogDriver, NetworkMode};
    use aws_sdk_elasticloadbalancingv2::types::{ProtocolEnum, TargetTypeEnum};
    use aws_sdk_route53::types::RrType;

    let s = Setup::new("fa-full").await;
    s.create(s.app_json("web")).await;
    let app = wait_synced(&s.api, "web").await;
    let st = status_of(&app);
    let cfg = &s.cfg;

    // Task definition: exactly one revision in its family, rendered as the spec says.
    let td_arn = st.task_definition_arn.clone().expect("status.taskDefinitionArn");
    let (family, _) = fixtures::parse_task_definition_arn(&td_arn);
    let revs = fixtures::task_definition_revisions(cfg, &family).await;
    assert_eq!(revs.len(), 1, "one revision in family {family}: {revs:?}");
    assert_eq!((revs[0].arn.as_str(), revs[0].active), (td_arn.as_str(), true));
    let (td, td_tags) = fixtures::task_definition(cfg, &td_arn).await;
    assert_eq!(td.cpu(), Some("512"));
    assert_eq!(td.memory(), Some("1024"));
    assert_eq!(td.runtime_platform().and_then(|p| p.cpu_architecture()), Some(&CpuArchitecture::Arm64));
    assert_eq!(td.ephemeral_storage().map(|e| e.size_in_gib()), Some(30), "spec.ephemeralStorageGiB");
    assert_eq!(td.network_mode(), Some(&NetworkMode::Awsvpc));
    assert!(td.requires_compatibilities().contains(&Compatibility::Fargate), "{:?}", td.requires_compatibilities());
    assert_eq!(td.execution_role_arn(), Some("arn:aws:iam::123456789012:role/ecsTaskExecution"));
    assert_eq!(td.task_role_arn(), Some("arn:aws:iam::123456789012:role/web"));
    let containers = td.container_definitions();
    assert_eq!(
        containers.iter().map(|c| c.name().unwrap_or_default()).collect::<Vec<_>>(),
        ["web", "metrics-sidecar"],
        "containers in spec order"
    );
    let web = &containers[0];
    assert_eq!(web.image(), Some("123456789012.dkr.ecr.us-east-1.amazonaws.com/web:1.4.2"));
    assert_eq!(web.essential(), Some(true));
    assert_eq!(web.port_mappings().iter().map(|p| p.container_port()).collect::<Vec<_>>(), [Some(8080)]);
    let env: BTreeMap<&str, &str> =
        web.environment().iter().map(|kv| (kv.name().unwrap_or_default(), kv.value().unwrap_or_default())).collect();
    assert_eq!(env, BTreeMap::from([("FEATURE_FLAGS", "checkout,search"), ("LOG_LEVEL", "info")]));
    let secrets: BTreeMap<&str, &str> = web.secrets().iter().map(|s| (s.name(), s.value_from())).collect();
    assert_eq!(
        secrets,
        BTreeMap::from([("DB_PASSWORD", "arn:aws:secretsmanager:us-east-1:123456789012:secret:web/db-AbCdEf")])
    );
    let hc = web.health_check().expect("web healthCheck");
    assert_eq!(hc.command(), ["CMD-SHELL", "curl -f http://localhost:8080/health || exit 1"]);
    assert_eq!((hc.interval(), hc.timeout(), hc.retries()), (Some(30), Some(5), Some(3)));
    let logs = web.log_configuration().expect("web logConfiguration");
    assert_eq!(logs.log_driver(), &LogDriver::Awslogs);
    let opts = logs.options().expect("awslogs options");
    assert_eq!(opts.get("awslogs-group").map(String::as_str), Some("/ecs/apps/web"));
    assert_eq!(opts.get("awslogs-region").map(String::as_str), Some("us-east-1"));
    assert!(
        opts.get("awslogs-stream-prefix").is_some_and(|p| !p.is_empty()),
        "Fargate needs a stream prefix: {opts:?}"
    );
    let sidecar = &containers[1];
    assert_eq!(sidecar.image(), Some("public.ecr.aws/aws-observability/aws-otel-collector:v0.40.0"));
    assert_eq!(sidecar.essential(), Some(false));
    assert_eq!(sidecar.memory(), Some(256));
    assert!(sidecar.log_configuration().is_none() && sidecar.health_check().is_none());
    assert_owner_tags(&td_tags, &app, "task definition");

    // Service: exactly one ACTIVE, as specified.
    let services = fixtures::active_services(cfg).await;
    assert_eq!(
        services.len(),
        1,
        "one ACTIVE service: {:?}",
        services.iter().map(|s| s.service_arn()).collect::<Vec<_>>()
    );
    let svc = &services[0];
    assert_eq!(svc.desired_count(), 2);
    assert_eq!(svc.launch_type(), Some(&LaunchType::Fargate));
    assert_eq!(svc.task_definition(), Some(td_arn.as_str()), "the service runs status.taskDefinitionArn");
    let vpc = svc.network_configuration().and_then(|n| n.awsvpc_configuration()).expect("awsvpcConfiguration");
    assert_eq!(vpc.subnets().iter().collect::<BTreeSet<_>>(), s.fx.net.subnets.iter().collect::<BTreeSet<_>>());
    assert_eq!(vpc.security_groups(), std::slice::from_ref(&s.fx.net.security_group));
    assert_eq!(vpc.assign_public_ip(), Some(&AssignPublicIp::Disabled));
    let tg_arn = st.target_group_arn.clone().expect("status.targetGroupArn");
    let lbs: Vec<_> = svc
        .load_balancers()
        .iter()
        .map(|l| (l.target_group_arn().unwrap_or_default(), l.container_name().unwrap_or_default(), l.container_port()))
        .collect();
    assert_eq!(lbs, [(tg_arn.as_str(), "web", Some(8080))]);
    assert_owner_tags(&fixtures::ecs_tag_map(svc.tags()), &app, "service");

    // Target group: the only one, ip/HTTP:8080 in the listener's VPC with the spec's health check.
    let tgs = fixtures::target_groups(cfg).await;
    assert_eq!(tgs.iter().map(|t| t.arn()).collect::<Vec<_>>(), [tg_arn.as_str()], "one target group");
    let tg = &tgs[0].tg;
    assert_eq!(tg.target_type(), Some(&TargetTypeEnum::Ip));
    assert_eq!(tg.protocol(), Some(&ProtocolEnum::Http));
    assert_eq!(tg.port(), Some(8080));
    assert_eq!(tg.vpc_id(), Some(s.fx.net.vpc_id.as_str()));
    assert_eq!(tg.health_check_path(), Some("/health"));
    assert_eq!((tg.health_check_interval_seconds(), tg.health_check_timeout_seconds()), (Some(10), Some(5)));
    assert_eq!((tg.healthy_threshold_count(), tg.unhealthy_threshold_count()), (Some(2), Some(2)));
    assert_eq!(tg.matcher().and_then(|m| m.http_code()), Some("200-399"));
    let attrs = fixtures::target_group_attributes(cfg, &tg_arn).await;
    assert_eq!(attrs.get("deregistration_delay.timeout_seconds").map(String::as_str), Some("20"));
    assert_owner_tags(&tgs[0].tags, &app, "target group");

    // Listener rule: the only one besides the default, at the lowest free priority of 100..199.
    let rules = fixtures::non_default_rules(cfg, &s.fx.alb.listener_arn).await;
    assert_eq!(rules.len(), 1, "one rule on the listener: {rules:?}");
    let rule = &rules[0];
    assert_eq!(rule.priority, Some(100));
    assert_eq!(st.listener_rule_priority, Some(100), "status.listenerRulePriority");
    assert_eq!(Some(&rule.arn), st.listener_rule_arn.as_ref(), "status.listenerRuleArn");
    assert_eq!(rule.path_patterns, BTreeSet::from(["/app/*".to_string()]));
    assert!(rule.host_headers.is_empty() && rule.other_conditions.is_empty(), "{rule:?}");
    assert_eq!(rule.action_types, ["forward"]);
    assert_eq!(rule.forward_to, BTreeSet::from([tg_arn.clone()]));
    assert_owner_tags(&rule.tags, &app, "listener rule");

    // DNS: an A alias to the ALB, evaluating target health.
    let recs = fixtures::records_named(cfg, &s.fx.zone_id, "web.apps.example.com").await;
    assert_eq!(recs.len(), 1, "one record named web.apps.example.com: {recs:?}");
    assert_eq!(recs[0].r#type(), &RrType::A);
    let alias = recs[0].alias_target().expect("an alias record");
    assert_eq!(fixtures::normalize_dns(alias.dns_name()), fixtures::normalize_dns(&s.fx.alb.dns_name));
    assert_eq!(alias.hosted_zone_id(), s.fx.alb.canonical_zone_id, "alias zone = the ALB's canonical zone");
    assert!(alias.evaluate_target_health());

    assert_eq!(st.service_arn.as_deref(), svc.service_arn(), "status.serviceArn");
    assert_eq!(st.url.as_deref(), Some("http://web.apps.example.com/app/"));
    assert_eq!(st.load_balancer_dns_name.as_deref(), Some(s.fx.alb.dns_name.as_str()));
    assert!(st.last_error.is_none(), "lastError after a successful sync: {:?}", st.last_error);
    s.finish().await;
}

#[tokio::test]
async fn converged_app_makes_no_mutating_calls() {
    let s = Setup::new("fa-converged").await;
    s.create(s.app_json("web")).await;
    wait_synced(&s.api, "web").await;
    let m = &s.op.metrics;
    // The operator's registry is the one that did the work, and every resource was created once.
    for (service, op) in [
        ("ecs", "RegisterTaskDefinition"),
        ("ecs", "CreateService"),
        ("elbv2", "CreateTargetGroup"),
        ("elbv2", "CreateRule"),
    ] {
        assert_eq!(m.aws_call_count(service, op, "success"), 1, "{service}:{op}");
    }
    assert!(m.aws_call_count("route53", "ChangeResourceRecordSets", "success") >= 1);

    let calls = s.op.mutating_calls();
    let breakdown = s.op.mutating_call_breakdown();
    let writes = m.status_write_count("FargateApp");
    let describes = m.aws_call_count("ecs", "DescribeServices", "success");
    // Two drift checks (resync 10 s) must pass; a counter has nothing to watch, so poll it.
    let deadline = Instant::now() + POLL_DEADLINE;
    while m.aws_call_count("ecs", "DescribeServices", "success") < describes + 2 {
        assert!(
            Instant::now() < deadline,
            "no two resyncs within {POLL_DEADLINE:?} (DescribeServices {} -> {})",
            describes,
            m.aws_call_count("ecs", "DescribeServices", "success")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        s.op.mutating_calls(),
        calls,
        "a converged app makes no mutating AWS calls: before {breakdown:?}, after {:?}",
        s.op.mutating_call_breakdown()
    );
    assert_eq!(m.status_write_count("FargateApp"), writes, "a converged app writes no status");
    s.finish().await;
}

/// Between full passes (here an hour apart), a rollout in progress is polled with DescribeServices
/// alone: at 1,000 apps, full passes every 15 s would need about 200 ELBv2 reads a second against
/// a budget of 8. A poll still notices the service drifting and repairs it with a full pass.
#[tokio::test]
async fn a_rollout_in_progress_is_polled_without_elbv2_reads_and_drift_still_noticed() {
    let s = Setup::with_flags("fa-poll", "", &["--resync-seconds", "3600"]).await;
    s.create(s.app_json("web")).await;
    let app = wait_synced(&s.api, "web").await;
    // moto never runs tasks, so the rollout stays in progress and the app is polled.
    assert_eq!(condition(&app, "Progressing").map(|c| c.status.as_str()), Some("True"));
    let m = s.op.metrics.clone();
    let elbv2_reads = {
        let m = m.clone();
        move || -> u64 {
            [
                "DescribeTargetGroups",
                "DescribeTargetGroupAttributes",
                "DescribeRules",
                "DescribeTags",
                "DescribeTargetHealth",
            ]
            .iter()
            .map(|op| m.aws_call_count("elbv2", op, "success"))
            .sum()
        }
    };
    let (services, reads, listings) = (
        m.aws_call_count("ecs", "DescribeServices", "success"),
        elbv2_reads(),
        m.aws_call_count("ecs", "ListTaskDefinitions", "success"),
    );
    poll_aws("a rollout poll", Duration::from_millis(200), || {
        let m = m.clone();
        async move {
            let now = m.aws_call_count("ecs", "DescribeServices", "success");
            if now > services { Ok(()) } else { Err(format!("DescribeServices still {now}")) }
        }
    })
    .await;
    // A pass queued by a watch event during the first pass (e.g. its finalizer) can start before
    // the cache holds the first pass's status; it is skipped (passes_skipped), not run in full.
    assert_eq!(
        elbv2_reads(),
        reads,
        "a poll reads no ELBv2 ({} passes skipped behind the cache)",
        m.passes_skipped_count("FargateApp")
    );
    assert_eq!(m.aws_call_count("ecs", "ListTaskDefinitions", "success"), listings, "a poll lists no revisions");

    let svc_arn = status_of(&app).service_arn.expect("serviceArn");
    scale_behind_our_back(&aws_sdk_ecs::Client::new(&s.cfg), &svc_arn, 5).await;
    let cfg = s.cfg.clone();
    poll_aws("desired count repaired between full passes", Duration::from_millis(500), || {
        let (cfg, svc_arn) = (&cfg, &svc_arn);
        async move {
            match fixtures::service(cfg, svc_arn).await.map(|s| s.desired_count()) {
                Some(2) => Ok(()),
                other => Err(format!("desiredCount {other:?}")),
            }
        }
    })
    .await;
    s.finish().await;
}

#[tokio::test]
async fn image_edit_registers_exactly_one_revision_and_env_reorder_none() {
    let s = Setup::new("fa-revisions").await;
    s.create(s.app_json("web")).await;
    let app = wait_synced(&s.api, "web").await;
    let first = status_of(&app).task_definition_arn.expect("status.taskDefinitionArn");
    let (family, first_rev) = fixtures::parse_task_definition_arn(&first);
    assert_eq!(fixtures::task_definition_revisions(&s.cfg, &family).await.len(), 1);
    let registered = s.op.metrics.aws_call_count("ecs", "RegisterTaskDefinition", "success");

    // The same env map with its keys in the other order. The apiserver stores maps with sorted
    // keys, so this alone would not even bump the generation: `keepTaskDefinitionRevisions`
    // (nothing AWS renders) changes with it to force a new generation through the controller.
    let containers: Vec<ContainerWithOrderedEnv> = serde_json::to_value(&app.spec.containers)
        .expect("containers")
        .as_array()
        .expect("array")
        .iter()
        .map(|c| {
            let mut rest = c.as_object().expect("object").clone();
            let env = rest.remove("env").and_then(|e| e.as_object().cloned()).unwrap_or_default();
            let mut pairs: Vec<(String, Value)> = env.into_iter().collect();
            pairs.reverse();
            ContainerWithOrderedEnv { rest, env: Ordered(pairs) }
        })
        .collect();
    assert_eq!(containers[0].env.0.first().map(|(k, _)| k.as_str()), Some("LOG_LEVEL"), "reversed order is sent");
    let patched =
        s.merge_patch("web", &json!({"spec": {"containers": containers, "keepTaskDefinitionRevisions": 6}})).await;
    assert!(patched.metadata.generation > app.metadata.generation, "the patch must produce a new generation");
    assert_eq!(patched.spec.containers, app.spec.containers, "same containers after the reorder");
    let app = wait_synced(&s.api, "web").await;
    assert_eq!(app.metadata.generation, patched.metadata.generation);
    assert_eq!(status_of(&app).task_definition_arn.as_deref(), Some(first.as_str()), "same revision");
    assert_eq!(fixtures::task_definition_revisions(&s.cfg, &family).await.len(), 1, "no revision for an env reorder");
    assert_eq!(s.op.metrics.aws_call_count("ecs", "RegisterTaskDefinition", "success"), registered);

    // A new image: exactly one more revision, and the service moves to it.
    let mut containers = serde_json::to_value(&app.spec.containers).expect("containers");
    containers[0]["image"] = json!("123456789012.dkr.ecr.us-east-1.amazonaws.com/web:1.4.3");
    let patched = s.merge_patch("web", &json!({"spec": {"containers": containers}})).await;
    let app = wait_app(&s.api, "web", "Synced=True for the image edit", move |a| {
        current(a)
            && a.metadata.generation == patched.metadata.generation
            && condition(a, "Synced").is_some_and(|c| c.status == "True")
    })
    .await;
    let now = status_of(&app).task_definition_arn.expect("status.taskDefinitionArn");
    assert_ne!(now, first, "the image edit must move status.taskDefinitionArn");
    let revs = fixtures::task_definition_revisions(&s.cfg, &family).await;
    assert_eq!(revs.len(), 2, "exactly one new revision: {revs:?}");
    assert_eq!(revs[1].arn, now);
    assert!(revs[1].revision > first_rev && revs[1].active, "{revs:?}");
    assert!(revs[0].active, "keepTaskDefinitionRevisions 6 keeps the old one registered: {revs:?}");
    let (td, _) = fixtures::task_definition(&s.cfg, &now).await;
    assert_eq!(td.container_definitions()[0].image(), Some("123456789012.dkr.ecr.us-east-1.amazonaws.com/web:1.4.3"));
    let services = fixtures::active_services(&s.cfg).await;
    assert_eq!(services.len(), 1);
    assert_eq!(services[0].task_definition(), Some(now.as_str()), "the service rolls to the new revision");
    assert_eq!(s.op.metrics.aws_call_count("ecs", "RegisterTaskDefinition", "success"), registered + 1);
    s.finish().await;
}

#[tokio::test]
async fn three_apps_on_one_listener_get_distinct_lowest_free_priorities() {
    let s = Setup::new("fa-priorities").await;
    let names = ["a1", "a2", "a3"];
    let apps: Vec<Value> = names
        .iter()
        .map(|n| {
            let mut v = s.app_json(n);
            let rule = &mut v["spec"]["loadBalancer"]["listenerRule"];
            rule["pathPatterns"] = json!([format!("/{n}/*")]);
            rule["priorityRange"] = json!({"min": 10, "max": 20});
            assert!(rule.get("priority").is_none(), "no explicit priority");
            v
        })
        .collect();
    futures::future::join_all(apps.into_iter().map(|a| s.create(a))).await;

    let mut from_status = BTreeMap::new();
    for n in names {
        let app = wait_synced(&s.api, n).await;
        let st = status_of(&app);
        from_status.insert(n, (st.listener_rule_priority.expect("listenerRulePriority"), st));
    }
    let prios: BTreeSet<i32> = from_status.values().map(|(p, _)| *p).collect();
    assert_eq!(prios, BTreeSet::from([10, 11, 12]), "status priorities: {from_status:?}");

    let rules = fixtures::non_default_rules(&s.cfg, &s.fx.alb.listener_arn).await;
    assert_eq!(rules.iter().map(|r| r.priority).collect::<Vec<_>>(), [Some(10), Some(11), Some(12)], "{rules:?}");
    for n in names {
        let (prio, st) = &from_status[n];
        let owned = fixtures::owned_rules(&s.cfg, &s.fx.alb.listener_arn, &app_owner(&s.ctx.namespace, n)).await;
        assert_eq!(owned.len(), 1, "{n}: one rule: {owned:?}");
        assert_eq!(owned[0].priority, Some(*prio), "{n}");
        assert_eq!(Some(&owned[0].arn), st.listener_rule_arn.as_ref(), "{n}");
        assert_eq!(owned[0].path_patterns, BTreeSet::from([format!("/{n}/*")]), "{n}");
        assert_eq!(owned[0].forward_to, st.target_group_arn.iter().cloned().collect::<BTreeSet<_>>(), "{n}");
    }
    s.finish().await;
}

#[tokio::test]
async fn outside_drift_is_repaired() {
    let s = Setup::new("fa-drift").await;
    s.create(s.app_json("web")).await;
    let app = wait_synced(&s.api, "web").await;
    let st = status_of(&app);
    let owner = app_owner(&s.ctx.namespace, "web");
    let services = fixtures::owned_active_services(&s.cfg, &owner).await;
    assert_eq!(services.len(), 1, "one service of ours");
    let (svc_arn, rule_arn, tg_arn) = (
        services[0].service_arn().expect("serviceArn").to_string(),
        st.listener_rule_arn.clone().expect("listenerRuleArn"),
        st.target_group_arn.clone().expect("targetGroupArn"),
    );
    let ecs = aws_sdk_ecs::Client::new(&s.cfg);
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&s.cfg);

    // Someone changes things behind the operator's back. The operator may be reconciling right
    // now (its own status write triggers a pass), so the drift is checked in the responses of
    // these calls, not by reading AWS afterwards, and the repair is also checked in the metrics.
    let m = &s.op.metrics;
    let (updates, rules_created, tg_modified) = (
        m.aws_call_count("ecs", "UpdateService", "success"),
        m.aws_call_count("elbv2", "CreateRule", "success"),
        m.aws_call_count("elbv2", "ModifyTargetGroup", "success"),
    );
    scale_behind_our_back(&ecs, &svc_arn, 5).await;
    elb.delete_rule().rule_arn(&rule_arn).send().await.expect("delete rule");
    let modified = elb
        .modify_target_group()
        .target_group_arn(&tg_arn)
        .health_check_path("/drift")
        .send()
        .await
        .expect("modify tg");
    assert_eq!(modified.target_groups().first().and_then(|t| t.health_check_path()), Some("/drift"));

    let (cfg, listener) = (s.cfg.clone(), s.fx.alb.listener_arn.clone());
    poll_aws("drift repaired", Duration::from_millis(500), || {
        let (cfg, listener, svc_arn, tg_arn, owner) = (&cfg, &listener, &svc_arn, &tg_arn, &owner);
        async move {
            let desired = fixtures::service(cfg, svc_arn).await.map(|s| s.desired_count());
            let rules = fixtures::owned_rules(cfg, listener, owner).await;
            let path =
                fixtures::target_group(cfg, tg_arn).await.and_then(|t| t.health_check_path().map(str::to_string));
            if desired == Some(2) && !rules.is_empty() && path.as_deref() == Some("/health") {
                Ok(())
            } else {
                Err(format!("desiredCount {desired:?}, our rules {rules:?}, health check path {path:?}"))
            }
        }
    })
    .await;

    let rules = fixtures::non_default_rules(&s.cfg, &s.fx.alb.listener_arn).await;
    assert_eq!(rules.len(), 1, "one rule again, no duplicates: {rules:?}");
    let rule = &rules[0];
    assert_eq!(rule.owner(), Some(owner.as_str()));
    assert_eq!(rule.priority, Some(100), "the lowest free priority again");
    assert_eq!(rule.path_patterns, BTreeSet::from(["/app/*".to_string()]));
    assert_eq!(rule.forward_to, BTreeSet::from([tg_arn.clone()]));
    assert_ne!(rule.arn, rule_arn, "a new rule (the old one was deleted)");
    let new_rule = rule.arn.clone();
    let app = wait_app(&s.api, "web", "status.listenerRuleArn = the recreated rule", move |a| {
        a.status.as_ref().and_then(|s| s.listener_rule_arn.as_deref()) == Some(new_rule.as_str())
    })
    .await;
    assert_eq!(status_of(&app).listener_rule_priority, Some(100));
    assert_eq!(fixtures::active_services(&s.cfg).await.len(), 1, "the service was repaired, not recreated");
    let m = &s.op.metrics;
    assert!(
        m.aws_call_count("ecs", "UpdateService", "success") > updates,
        "desiredCount was repaired by UpdateService"
    );
    assert_eq!(m.aws_call_count("elbv2", "CreateRule", "success"), rules_created + 1, "exactly one rule recreated");
    assert!(m.aws_call_count("elbv2", "ModifyTargetGroup", "success") > tg_modified, "health check repaired");
    assert_eq!(m.aws_call_count("ecs", "CreateService", "success"), 1, "the service was never recreated");
    s.finish().await;
}

#[tokio::test]
async fn delete_removes_everything_and_retain_leaves_it() {
    use aws_sdk_ecs::types::TaskDefinitionStatus;
    let s = Setup::new("fa-delete").await;
    s.create(s.app_json("web")).await;
    let mut kept = s.app_json("kept");
    kept["spec"]["loadBalancer"]["listenerRule"]["pathPatterns"] = json!(["/kept/*"]);
    kept["spec"]["policy"] = json!({"deletion": "Retain"});
    s.create(kept).await;
    let web = wait_synced(&s.api, "web").await;
    let kept = wait_synced(&s.api, "kept").await;
    let (web_st, kept_st) = (status_of(&web), status_of(&kept));
    let (web_owner, kept_owner) = (app_owner(&s.ctx.namespace, "web"), app_owner(&s.ctx.namespace, "kept"));
    let listener = s.fx.alb.listener_arn.clone();
    let cfg = &s.cfg;
    let web_services = fixtures::owned_active_services(cfg, &web_owner).await;
    assert_eq!(web_services.len(), 1, "one service of web's");
    let web_svc_arn = web_services[0].service_arn().expect("serviceArn").to_string();
    let (web_family, _) = fixtures::parse_task_definition_arn(web_st.task_definition_arn.as_deref().expect("web td"));
    let kept_td = kept_st.task_definition_arn.clone().expect("kept td");
    let (kept_family, _) = fixtures::parse_task_definition_arn(&kept_td);
    assert_ne!(web_family, kept_family, "families are per object");

    // Delete: everything of `web` goes, `kept` is untouched.
    s.api.delete("web", &DeleteParams::default()).await.expect("delete web");
    wait_deleted(&s.api, "web", &web.uid().expect("uid")).await;
    assert!(fixtures::owned_rules(cfg, &listener, &web_owner).await.is_empty(), "web's listener rule is gone");
    assert!(fixtures::owned_active_services(cfg, &web_owner).await.is_empty(), "web's service is gone");
    let web_svc = fixtures::service(cfg, &web_svc_arn).await;
    assert!(web_svc.as_ref().is_none_or(|s| s.status() == Some("INACTIVE")), "web's service: {web_svc:?}");
    assert!(fixtures::target_group(cfg, web_st.target_group_arn.as_deref().expect("web tg")).await.is_none());
    assert!(fixtures::owned_target_groups(cfg, &web_owner).await.is_empty());
    assert!(
        fixtures::records_named(cfg, &s.fx.zone_id, "web.apps.example.com").await.is_empty(),
        "web's record is gone"
    );
    assert_eq!(
        fixtures::task_definition_arns(cfg, &web_family, TaskDefinitionStatus::Active).await,
        Vec::<String>::new(),
        "every revision of {web_family} is deregistered"
    );
    let assert_kept_intact = |when: &'static str| {
        let (cfg, listener, kept_owner, kept_st, kept_td, kept_family, zone) = (
            cfg.clone(),
            listener.clone(),
            kept_owner.clone(),
            kept_st.clone(),
            kept_td.clone(),
            kept_family.clone(),
            s.fx.zone_id.clone(),
        );
        async move {
            let rules = fixtures::owned_rules(&cfg, &listener, &kept_owner).await;
            assert_eq!(
                rules.iter().map(|r| &r.arn).collect::<Vec<_>>(),
                [kept_st.listener_rule_arn.as_ref().expect("kept rule")],
                "{when}"
            );
            assert_eq!(fixtures::owned_active_services(&cfg, &kept_owner).await.len(), 1, "{when}: kept's service");
            assert!(
                fixtures::target_group(&cfg, kept_st.target_group_arn.as_deref().expect("kept tg")).await.is_some(),
                "{when}"
            );
            assert_eq!(
                fixtures::records_named(&cfg, &zone, "kept.apps.example.com").await.len(),
                1,
                "{when}: kept's record"
            );
            assert_eq!(
                fixtures::task_definition_arns(&cfg, &kept_family, TaskDefinitionStatus::Active).await,
                [kept_td],
                "{when}: kept's revision"
            );
        }
    };
    assert_kept_intact("after deleting web").await;

    // Retain: the object goes, its AWS resources stay.
    s.api.delete("kept", &DeleteParams::default()).await.expect("delete kept");
    wait_deleted(&s.api, "kept", &kept.uid().expect("uid")).await;
    assert_kept_intact("after deleting kept with deletion: Retain").await;
    s.finish().await;
}

#[tokio::test]
async fn untagged_name_conflict_is_reported_not_clobbered() {
    use aws_sdk_elasticloadbalancingv2::types::{ProtocolEnum, TargetTypeEnum};
    let s = Setup::new("fa-conflict").await;
    let name = fargate_operator::aws::naming::aws_name("fa", &s.ctx.namespace, "web", 32);
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&s.cfg);
    let created = elb
        .create_target_group()
        .name(&name)
        .protocol(ProtocolEnum::Http)
        .port(8080)
        .vpc_id(&s.fx.net.vpc_id)
        .target_type(TargetTypeEnum::Ip)
        .health_check_path("/mine")
        .send()
        .await
        .expect("pre-create the target group");
    let foreign = created.target_groups()[0].target_group_arn().expect("arn").to_string();

    s.create(s.app_json("web")).await;
    let app = wait_condition(&s.api, "web", "Degraded", "True", Some("NameConflict")).await;
    assert_ne!(status_of(&app).target_group_arn.as_deref(), Some(foreign.as_str()), "not adopted");

    let tg = fixtures::target_group_by_name(&s.cfg, &name).await.expect("the pre-created target group still exists");
    assert_eq!(tg.target_group_arn(), Some(foreign.as_str()));
    assert_eq!(tg.health_check_path(), Some("/mine"), "its health check is untouched");
    let attrs = fixtures::target_group_attributes(&s.cfg, &foreign).await;
    assert_eq!(
        attrs.get("deregistration_delay.timeout_seconds").map(String::as_str),
        Some("300"),
        "attributes untouched"
    );
    let tags = fixtures::elb_tags(&s.cfg, std::slice::from_ref(&foreign)).await;
    assert!(tags.get(&foreign).is_none_or(|t| t.is_empty()), "no tags added: {tags:?}");
    for op in ["ModifyTargetGroup", "ModifyTargetGroupAttributes", "AddTags", "DeleteTargetGroup", "CreateRule"] {
        let n: u64 = support::operator::OUTCOMES.iter().map(|o| s.op.metrics.aws_call_count("elbv2", op, o)).sum();
        assert_eq!(n, 0, "elbv2:{op} must not be called on a name conflict");
    }
    assert!(fixtures::active_services(&s.cfg).await.is_empty(), "no service was created");
    assert!(
        fixtures::non_default_rules(&s.cfg, &s.fx.alb.listener_arn).await.is_empty(),
        "no listener rule was created"
    );
    s.finish().await;
}

/// Every create's response is lost once (AWS executed it) and calls are throttled: the controller
/// must re-observe instead of creating again, and end with exactly one of each resource.
#[tokio::test]
async fn lost_responses_and_throttling_on_create_still_end_with_exactly_one_of_each() {
    let faults = "CreateTargetGroup=lost@1,CreateRule=lost@1,RegisterTaskDefinition=lost@1,CreateService=lost@1,\
                  ChangeResourceRecordSets=lost@1,*=throttle@2";
    let s = Setup::with_faults("fa-faults", faults).await;
    s.create(s.app_json("web")).await;
    let app = wait_synced(&s.api, "web").await;
    let st = status_of(&app);
    let owner = app_owner(&s.ctx.namespace, "web");
    let m = &s.op.metrics;

    // The faults really happened: each create saw a lost response (counted as transient).
    for (svc, op) in [
        ("elbv2", "CreateTargetGroup"),
        ("elbv2", "CreateRule"),
        ("ecs", "RegisterTaskDefinition"),
        ("ecs", "CreateService"),
        ("route53", "ChangeResourceRecordSets"),
    ] {
        assert!(m.aws_call_count(svc, op, "transient") >= 1, "{svc}:{op} never lost a response");
    }
    assert!(m.aws_call_count("elbv2", "DescribeListeners", "throttling") >= 1, "throttling was injected");

    // Exactly one of each, all ours, and status points at them.
    let tgs = fixtures::owned_target_groups(&s.cfg, &owner).await;
    assert_eq!(tgs.len(), 1, "{tgs:?}");
    assert_eq!(Some(tgs[0].arn()), st.target_group_arn.as_deref());
    let rules = fixtures::non_default_rules(&s.cfg, &s.fx.alb.listener_arn).await;
    assert_eq!(rules.len(), 1, "a lost CreateRule response must not leave a second rule: {rules:?}");
    assert_eq!(Some(&rules[0].arn), st.listener_rule_arn.as_ref());
    let services = fixtures::owned_active_services(&s.cfg, &owner).await;
    assert_eq!(services.len(), 1);
    let td = st.task_definition_arn.clone().expect("taskDefinitionArn");
    let (family, _) = fixtures::parse_task_definition_arn(&td);
    let revisions =
        fixtures::task_definition_arns(&s.cfg, &family, aws_sdk_ecs::types::TaskDefinitionStatus::Active).await;
    assert_eq!(revisions, std::slice::from_ref(&td), "a lost RegisterTaskDefinition response must not register twice");
    assert_eq!(services[0].task_definition(), Some(td.as_str()));
    let records = fixtures::records_named(&s.cfg, &s.fx.zone_id, &format!("web.{}", fixtures::ZONE)).await;
    assert_eq!(records.len(), 1, "{records:?}");
    s.finish().await;
}

/// Wait for Synced=True on the generation `patched` produced.
/// With `adoption: Never`, a create whose answer was lost is still this object's own: the create was
/// recorded as planned before it was sent, so the next pass uses what it made instead of reporting
/// its own target group and service as a NameConflict forever.
#[tokio::test]
async fn adoption_never_survives_a_lost_create_response() {
    let s = Setup::with_faults("fa-never-lost", "CreateTargetGroup=lost@1,CreateService=lost@1").await;
    let mut app = s.app_json("web");
    app["spec"]["policy"] = json!({"adoption": "Never"});
    s.create(app).await;
    let app = wait_synced(&s.api, "web").await;
    let m = &s.op.metrics;
    for (svc, op) in [("elbv2", "CreateTargetGroup"), ("ecs", "CreateService")] {
        assert!(m.aws_call_count(svc, op, "transient") >= 1, "{svc}:{op} never lost a response");
    }
    let owner = app_owner(&s.ctx.namespace, "web");
    let st = status_of(&app);
    let tgs = fixtures::owned_target_groups(&s.cfg, &owner).await;
    assert_eq!(tgs.iter().map(|t| t.arn()).collect::<Vec<_>>(), [st.target_group_arn.as_deref().unwrap_or("?")]);
    assert_eq!(fixtures::owned_active_services(&s.cfg, &owner).await.len(), 1);
    assert!(st.resources.iter().all(|r| !r.id.starts_with("planned:")), "no plan is left: {:?}", st.resources);
    s.finish().await;
}

async fn wait_synced_generation(api: &Api<FargateApp>, name: &str, generation: Option<i64>) -> FargateApp {
    wait_app(api, name, "Synced=True on the new generation", move |a| {
        current(a) && a.metadata.generation == generation && condition(a, "Synced").is_some_and(|c| c.status == "True")
    })
    .await
}

#[tokio::test]
async fn restarted_at_forces_one_deployment_and_old_revisions_are_pruned() {
    let s = Setup::new("fa-restart").await;
    let mut v = s.app_json("web");
    v["spec"]["keepTaskDefinitionRevisions"] = json!(1);
    s.create(v).await;
    let app = wait_synced(&s.api, "web").await;
    let m = &s.op.metrics;
    let updates = m.aws_call_count("ecs", "UpdateService", "success");

    // restartedAt: one UpdateService (forceNewDeployment), recorded in status, not repeated.
    let patched = s.merge_patch("web", &json!({"spec": {"restartedAt": "2026-11-22T10:00:00Z"}})).await;
    let app2 = wait_synced_generation(&s.api, "web", patched.metadata.generation).await;
    assert_eq!(m.aws_call_count("ecs", "UpdateService", "success"), updates + 1, "exactly one forced deployment");
    assert_eq!(status_of(&app2).restarted_at, patched.spec.restarted_at, "status records the rolled-out restart");
    assert_eq!(status_of(&app2).task_definition_arn, status_of(&app).task_definition_arn, "no new revision");

    // Two image edits with keepTaskDefinitionRevisions 1: only the revision in use stays registered.
    for tag in ["1.4.3", "1.4.4"] {
        let mut containers = serde_json::to_value(&app2.spec.containers).expect("containers");
        containers[0]["image"] = json!(format!("123456789012.dkr.ecr.us-east-1.amazonaws.com/web:{tag}"));
        let patched = s.merge_patch("web", &json!({"spec": {"containers": containers}})).await;
        wait_synced_generation(&s.api, "web", patched.metadata.generation).await;
    }
    let app3 = s.api.get("web").await.expect("get");
    let now = status_of(&app3).task_definition_arn.expect("taskDefinitionArn");
    let (family, _) = fixtures::parse_task_definition_arn(&now);
    let active =
        fixtures::task_definition_arns(&s.cfg, &family, aws_sdk_ecs::types::TaskDefinitionStatus::Active).await;
    assert_eq!(active, std::slice::from_ref(&now), "older revisions this object registered are deregistered");
    assert_eq!(m.aws_call_count("ecs", "UpdateService", "success"), updates + 3, "one more update per image edit");
    s.finish().await;
}

#[tokio::test]
async fn explicit_priority_taken_by_another_rule_is_a_priority_conflict() {
    let s = Setup::new("fa-prio-conflict").await;
    // Someone else's rule (untagged) at priority 100.
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&s.cfg);
    let foreign_tg = elb
        .create_target_group()
        .name("foreign")
        .protocol(aws_sdk_elasticloadbalancingv2::types::ProtocolEnum::Http)
        .port(80)
        .vpc_id(&s.fx.net.vpc_id)
        .target_type(aws_sdk_elasticloadbalancingv2::types::TargetTypeEnum::Ip)
        .send()
        .await
        .expect("foreign target group");
    let foreign_tg = foreign_tg.target_groups()[0].target_group_arn().expect("arn").to_string();
    elb.create_rule()
        .listener_arn(&s.fx.alb.listener_arn)
        .priority(100)
        .conditions(
            aws_sdk_elasticloadbalancingv2::types::RuleCondition::builder()
                .field("path-pattern")
                .values("/foreign/*")
                .build(),
        )
        .actions(
            aws_sdk_elasticloadbalancingv2::types::Action::builder()
                .r#type(aws_sdk_elasticloadbalancingv2::types::ActionTypeEnum::Forward)
                .target_group_arn(&foreign_tg)
                .build(),
        )
        .send()
        .await
        .expect("foreign rule");

    let mut v = s.app_json("web");
    v["spec"]["loadBalancer"]["listenerRule"]["priority"] = json!(100);
    s.create(v).await;
    let app = wait_condition(&s.api, "web", "Degraded", "True", Some("PriorityConflict")).await;
    let degraded = condition(&app, "Degraded").expect("Degraded");
    assert_eq!(degraded.reason, "PriorityConflict");
    assert!(degraded.message.contains("priority 100"), "{}", degraded.message);
    let rules = fixtures::non_default_rules(&s.cfg, &s.fx.alb.listener_arn).await;
    assert_eq!(rules.len(), 1, "the foreign rule is untouched and no second rule appears: {rules:?}");
    assert_eq!(rules[0].priority, Some(100));
    assert!(fixtures::active_services(&s.cfg).await.is_empty(), "nothing is deployed without its rule");

    // Events tell the story: the target group was created, then the conflict.
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(s.ctx.client.clone(), &s.ctx.namespace);
    let list = events.list(&Default::default()).await.expect("events");
    let reasons: BTreeSet<String> = list
        .items
        .iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("web"))
        .filter_map(|e| e.reason.clone())
        .collect();
    assert!(reasons.contains("Created") && reasons.contains("PriorityConflict"), "{reasons:?}");
    s.finish().await;
}

/// A paused app makes no AWS writes; then a target group carrying its owner tags (as after a crash
/// between create and status write) is adopted with `adoption: IfTagged` and refused with `Never`.
#[tokio::test]
async fn tagged_resources_are_adopted_if_tagged_and_refused_with_adoption_never() {
    use aws_sdk_elasticloadbalancingv2::types::{ProtocolEnum, Tag, TargetTypeEnum};
    let s = Setup::new("fa-adoption").await;
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&s.cfg);
    let mut adopted = None;
    for (name, adoption) in [("keep", "IfTagged"), ("never", "Never")] {
        let before = s.op.mutating_calls();
        let mut v = s.app_json(name);
        v["spec"]["policy"] = json!({"paused": true, "adoption": adoption});
        s.create(v).await;
        let app = wait_condition(&s.api, name, "Synced", "False", Some("Paused")).await;
        assert_eq!(s.op.mutating_calls(), before, "a paused app writes nothing to AWS");
        let tags = [
            (CLUSTER_TAG, "test".to_string()),
            (OWNER_TAG, app_owner(&s.ctx.namespace, name)),
            (UID_TAG, app.uid().expect("uid")),
        ];
        let tg_name = fargate_operator::aws::naming::aws_name("fa", &s.ctx.namespace, name, 32);
        let created = elb
            .create_target_group()
            .name(&tg_name)
            .protocol(ProtocolEnum::Http)
            .port(8080)
            .vpc_id(&s.fx.net.vpc_id)
            .target_type(TargetTypeEnum::Ip)
            .health_check_path("/pre")
            .set_tags(Some(tags.iter().map(|(k, v)| Tag::builder().key(*k).value(v).build()).collect()))
            .send()
            .await
            .expect("pre-create a tagged target group");
        let arn = created.target_groups()[0].target_group_arn().expect("arn").to_string();
        s.merge_patch(name, &json!({"spec": {"policy": {"paused": false}}})).await;
        if adoption == "IfTagged" {
            let app = wait_synced(&s.api, name).await;
            assert_eq!(status_of(&app).target_group_arn.as_deref(), Some(arn.as_str()), "the tagged group is adopted");
            let tg = fixtures::target_group(&s.cfg, &arn).await.expect("still there");
            assert_eq!(tg.health_check_path(), Some("/health"), "and brought in line with the spec");
            adopted = Some(arn);
        } else {
            let app = wait_condition(&s.api, name, "Degraded", "True", Some("NameConflict")).await;
            let msg = &condition(&app, "Degraded").expect("Degraded").message;
            assert!(msg.contains("adoption is Never"), "{msg}");
            let tg = fixtures::target_group(&s.cfg, &arn).await.expect("untouched");
            assert_eq!(tg.health_check_path(), Some("/pre"), "a refused group is not modified");
        }
    }
    let owned = fixtures::owned_target_groups(&s.cfg, &app_owner(&s.ctx.namespace, "keep")).await;
    assert_eq!(owned.iter().map(|t| t.arn().to_string()).collect::<Vec<_>>(), adopted.into_iter().collect::<Vec<_>>());
    s.finish().await;
}

#[tokio::test]
async fn cname_record_points_at_the_load_balancer_with_its_ttl() {
    let s = Setup::new("fa-cname").await;
    let mut v = s.app_json("web");
    v["spec"]["dns"]["type"] = json!("CNAME");
    v["spec"]["dns"]["ttl"] = json!(120);
    s.create(v).await;
    let app = wait_synced(&s.api, "web").await;
    let records = fixtures::records_named(&s.cfg, &s.fx.zone_id, &format!("web.{}", fixtures::ZONE)).await;
    assert_eq!(records.len(), 1, "{records:?}");
    let r = &records[0];
    assert_eq!(r.r#type().as_str(), "CNAME");
    assert_eq!(r.ttl(), Some(120));
    let value = r.resource_records().first().map(|v| v.value().to_string()).unwrap_or_default();
    assert_eq!(fixtures::normalize_dns(&value), fixtures::normalize_dns(&s.fx.alb.dns_name));
    assert_eq!(status_of(&app).url.as_deref(), Some(format!("http://web.{}/app/", fixtures::ZONE).as_str()));
    s.finish().await;
}
