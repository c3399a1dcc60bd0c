//! The AWS plumbing against moto over HTTP with the real aws-sdk-rust clients: per-test accounts via
//! sts:AssumeRole, the budgeted caller, metrics and error classification of real responses.

mod support;

use std::sync::Arc;

use fargate_operator::aws::{AwsCaller, Budgets, ErrorCategory, RetryPolicy, Service};
use fargate_operator::runtime::metrics::Metrics;
use support::TestCtx;

fn caller() -> (AwsCaller, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new());
    (AwsCaller::new(Budgets::new(Default::default()), metrics.clone(), RetryPolicy::default()), metrics)
}

#[tokio::test]
async fn assumed_roles_isolate_accounts() {
    let a = TestCtx::new("aws-account-a").await;
    let b = TestCtx::new("aws-account-b").await;
    let (caller, metrics) = caller();
    let ecs_a = aws_sdk_ecs::Client::new(&a.sdk_config().await);
    let ecs_b = aws_sdk_ecs::Client::new(&b.sdk_config().await);

    let created = caller
        .call(Service::Ecs, "CreateCluster", || ecs_a.create_cluster().cluster_name("apps").send())
        .await
        .expect("create cluster");
    let arn = created.cluster().and_then(|c| c.cluster_arn()).expect("arn").to_string();
    assert!(arn.contains(&format!(":{}:", a.account)), "cluster {arn} must live in the assumed account {}", a.account);

    let in_a = caller.call(Service::Ecs, "ListClusters", || ecs_a.list_clusters().send()).await.expect("list a");
    let in_b = caller.call(Service::Ecs, "ListClusters", || ecs_b.list_clusters().send()).await.expect("list b");
    assert_eq!(in_a.cluster_arns(), std::slice::from_ref(&arn));
    assert!(in_b.cluster_arns().is_empty(), "account {} sees {:?}", b.account, in_b.cluster_arns());
    assert_eq!(metrics.aws_call_count("ecs", "CreateCluster", "success"), 1);
    assert_eq!(metrics.aws_call_count("ecs", "ListClusters", "success"), 2);

    // The same role is assumed once and reused.
    let again = a.sdk_config().await;
    let ecs_again = aws_sdk_ecs::Client::new(&again);
    let listed = ecs_again.list_clusters().send().await.expect("list again");
    assert_eq!(listed.cluster_arns(), [arn]);
    a.cleanup().await;
    b.cleanup().await;
}

#[tokio::test]
async fn real_not_found_responses_are_classified_and_not_retried() {
    let ctx = TestCtx::new("aws-not-found").await;
    let cfg = ctx.sdk_config().await;
    let (caller, metrics) = caller();

    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&cfg);
    let err = caller
        .call(Service::Elbv2, "DescribeTargetGroups", || {
            elb.describe_target_groups()
                .target_group_arns(
                    "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/nope/0123456789abcdef",
                )
                .send()
        })
        .await
        .expect_err("unknown target group");
    assert_eq!(err.category, ErrorCategory::NotFound, "{err}");
    assert_eq!(err.code, "TargetGroupNotFound");
    assert_eq!(metrics.aws_call_count("elbv2", "DescribeTargetGroups", "not_found"), 1, "NotFound is not retried");

    let r53 = aws_sdk_route53::Client::new(&cfg);
    let err = caller
        .call(Service::Route53, "GetHostedZone", || r53.get_hosted_zone().id("ZNOPE12345").send())
        .await
        .expect_err("unknown zone");
    assert_eq!(err.category, ErrorCategory::NotFound, "{err}");
    assert!(err.to_string().contains("route53:GetHostedZone"), "{err}");

    let ecs = aws_sdk_ecs::Client::new(&cfg);
    let err = caller
        .call(Service::Ecs, "DescribeServices", || ecs.describe_services().cluster("missing").services("x").send())
        .await
        .expect_err("unknown cluster");
    assert_eq!(err.category, ErrorCategory::NotFound, "{err}");
    ctx.cleanup().await;
}

#[tokio::test]
async fn unreachable_endpoint_is_transient_and_retried() {
    let base = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        // Nothing listens on port 9 of loopback: a connection error, as when a response is lost.
        .endpoint_url("http://127.0.0.1:9")
        .credentials_provider(aws_credential_types::Credentials::new("testing", "testing", None, None, "moto"))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await;
    let ecs = aws_sdk_ecs::Client::new(&base);
    let metrics = Arc::new(Metrics::new());
    let retry =
        RetryPolicy { max_attempts: 3, transient_base: std::time::Duration::from_millis(10), ..RetryPolicy::default() };
    let caller = AwsCaller::new(Budgets::new(Default::default()), metrics.clone(), retry);
    let err = caller.call(Service::Ecs, "ListClusters", || ecs.list_clusters().send()).await.expect_err("no server");
    assert_eq!(err.category, ErrorCategory::Transient, "{err}");
    assert_eq!(err.code, "DispatchFailure");
    assert_eq!(metrics.aws_call_count("ecs", "ListClusters", "transient"), 3);
}

/// One object's bad change must not block the others batched with it: the rejected batch is split
/// until the bad change stands alone.
#[tokio::test]
async fn a_bad_change_is_isolated_by_bisection() {
    use aws_sdk_route53::types::{Change, ChangeAction, ResourceRecord, ResourceRecordSet, RrType};
    use fargate_operator::aws::route53_batch::{Route53Batcher, Urgency};
    let ctx = TestCtx::new("r53-bisect").await;
    let cfg = ctx.sdk_config().await;
    let r53 = aws_sdk_route53::Client::new(&cfg);
    let zone = r53
        .create_hosted_zone()
        .name("bisect.example.com")
        .caller_reference(support::suffix())
        .send()
        .await
        .expect("zone");
    let zone = zone.hosted_zone().expect("zone").id().trim_start_matches("/hostedzone/").to_string();
    let change = |action: ChangeAction, name: &str| {
        let set = ResourceRecordSet::builder()
            .name(format!("{name}.bisect.example.com."))
            .r#type(RrType::Cname)
            .ttl(60)
            .resource_records(ResourceRecord::builder().value("target.example.com").build().expect("rr"))
            .build()
            .expect("set");
        Change::builder().action(action).resource_record_set(set).build().expect("change")
    };
    let (caller, metrics) = caller();
    let batcher = Route53Batcher::new(caller);
    let good: Vec<_> = (0..4).map(|i| change(ChangeAction::Upsert, &format!("good{i}"))).collect();
    // Deleting a record that does not exist is rejected by Route 53.
    let bad = change(ChangeAction::Delete, "missing");
    let api: Arc<dyn fargate_operator::aws::api::route53::Route53Api> =
        Arc::new(fargate_operator::aws::api::route53::SdkRoute53::new(r53.clone()));
    let mut submissions: Vec<_> =
        good.iter().map(|c| batcher.submit(&zone, "", api.clone(), vec![c.clone()], Urgency::Prompt)).collect();
    submissions.insert(2, batcher.submit(&zone, "", api.clone(), vec![bad], Urgency::Prompt));
    let results = futures::future::join_all(submissions).await;
    assert!(results[2].is_err(), "the bad change fails: {:?}", results[2]);
    for (i, r) in results.iter().enumerate().filter(|(i, _)| *i != 2) {
        assert!(r.is_ok(), "submission {i} must not be blocked by the bad one: {r:?}");
    }
    let listed = r53.list_resource_record_sets().hosted_zone_id(&zone).send().await.expect("list");
    let goods = listed.resource_record_sets().iter().filter(|r| r.name().starts_with("good")).count();
    assert_eq!(goods, 4);
    // Merged first (one call), then split: a handful of calls, not one per change.
    let calls: u64 = ["success", "terminal", "conflict"]
        .iter()
        .map(|o| metrics.aws_call_count("route53", "ChangeResourceRecordSets", o))
        .sum();
    assert!(calls <= 5, "{calls} calls");
    ctx.cleanup().await;
}

/// The injected 5xx is rejected before sending and retried; the injected timeout happens after AWS
/// executed the request (the revision is registered) and is reported as a transient `Timeout`. Both
/// go through the provider's `EcsApi`, the operator's own ECS calls, which keep the fault injector.
#[tokio::test]
async fn injected_5xx_and_timeouts_behave_like_the_real_thing() {
    use aws_sdk_ecs::types::ContainerDefinition;
    use fargate_operator::aws::api::ecs::RegisterTaskDefinitionRequest;
    let ctx = TestCtx::new("aws-faults").await;
    let plan =
        fargate_operator::aws::faults::FaultPlan::parse("ListTaskDefinitions=5xx@1,RegisterTaskDefinition=timeout@1")
            .expect("fault plan");
    let aws = fargate_operator::aws::AwsProvider::from_base(support::moto_base_config().await).with_faults(plan);
    let cfg = aws.config_for(Some(&ctx.aws_override())).await;
    let ecs = aws.ecs(&cfg);
    let (caller, metrics) = caller();
    let req = RegisterTaskDefinitionRequest {
        family: "faulty".into(),
        cpu: "256".into(),
        memory: "512".into(),
        container_definitions: vec![ContainerDefinition::builder().name("app").image("busybox").memory(512).build()],
        ..Default::default()
    };

    let err = caller
        .call_create(Service::Ecs, "RegisterTaskDefinition", || ecs.register_task_definition(&req))
        .await
        .expect_err("the injected timeout");
    assert_eq!((err.category, err.code.as_str()), (ErrorCategory::Transient, "Timeout"), "{err}");
    let clean = aws_sdk_ecs::Client::new(&ctx.sdk_config().await);
    let found = clean.list_task_definitions().family_prefix("faulty").send().await.expect("ListTaskDefinitions");
    assert_eq!(found.task_definition_arns().len(), 1, "the timed-out register was executed");

    let page = caller
        .call(Service::Ecs, "ListTaskDefinitions", || ecs.list_task_definitions("faulty", None))
        .await
        .expect("a 5xx is retried");
    assert_eq!(page.arns, found.task_definition_arns());
    assert_eq!(metrics.aws_call_count("ecs", "ListTaskDefinitions", "transient"), 1);
    assert_eq!(metrics.aws_call_count("ecs", "ListTaskDefinitions", "success"), 1);
    ctx.cleanup().await;
}
