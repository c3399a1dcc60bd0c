//! Where DnsFailover health comes from, against moto and the real apiserver: with the default
//! `--health-source cloudwatch` the poller reads Route 53's `HealthCheckStatus` metric for many
//! checks in one GetMetricData call (in us-east-1, whatever the object's Region), reads a check
//! with GetHealthCheckStatus only while CloudWatch has no datapoint for it, and a status of 0 in
//! CloudWatch fails the pair over (moto's GetHealthCheckStatus always reports success, so the flip
//! can only come from the metric).

mod support;

use std::time::Duration;

use aws_sdk_cloudwatch::types::{Dimension, MetricDatum};
use fargate_operator::api::{AwsOverride, DnsFailover};
use fargate_operator::runtime::metrics::Metrics;
use kube::api::{Api, PostParams};
use kube::runtime::wait::await_condition;
use serde_json::json;
use support::operator::InProcessOperator;
use support::{TestCtx, fixtures};

const WAIT: Duration = Duration::from_secs(60);
const OBJECTS: usize = 3;

fn manifest(ctx: &TestCtx, zone: &str, name: &str) -> DnsFailover {
    let mut v = support::yaml_docs("examples/dnsfailover.yaml").remove(0);
    v["metadata"] = json!({"name": name});
    v["spec"]["hostedZoneId"] = json!(zone);
    v["spec"]["name"] = json!(format!("{name}.acs.app.com"));
    v["spec"].as_object_mut().expect("spec").remove("delegation");
    v["spec"]["aws"] = serde_json::to_value(ctx.aws_override()).expect("aws");
    serde_json::from_value(v).expect("DnsFailover")
}

async fn wait_for(api: &Api<DnsFailover>, name: &str, type_: &'static str, status: &'static str) -> DnsFailover {
    let cond = move |o: Option<&DnsFailover>| {
        o.and_then(|o| o.status.as_ref())
            .is_some_and(|s| s.conditions.iter().any(|c| c.type_ == type_ && c.status == status))
    };
    tokio::time::timeout(WAIT, await_condition(api.clone(), name, cond))
        .await
        .unwrap_or_else(|_| panic!("{name}: {type_}={status} not reached"))
        .expect("watch")
        .expect("object")
}

fn primary_check(o: &DnsFailover) -> String {
    o.status.as_ref().and_then(|s| s.health_checks.as_ref()).map(|h| h.primary.id.clone()).expect("primary check")
}

/// Publish `value` (1 healthy, 0 unhealthy) as the check's `HealthCheckStatus` of the minute
/// `minutes_ago`, as Route 53 does every minute (the poller reads the minute's minimum, so a
/// recovery shows in the minute after a failure).
async fn publish(cw: &aws_sdk_cloudwatch::Client, check: &str, value: f64, minutes_ago: u64) {
    let at = std::time::SystemTime::now() - Duration::from_secs(60 * minutes_ago);
    let datum = MetricDatum::builder()
        .metric_name("HealthCheckStatus")
        .dimensions(Dimension::builder().name("HealthCheckId").value(check).build())
        .value(value)
        .timestamp(at.into())
        .build();
    cw.put_metric_data().namespace("AWS/Route53").metric_data(datum).send().await.expect("PutMetricData");
}

fn calls(m: &Metrics, service: &str, op: &str) -> u64 {
    m.aws_call_count(service, op, "success")
}

/// Wait until `n` more sweeps read CloudWatch.
async fn sweeps(m: &Metrics, n: u64) {
    let start = calls(m, "cloudwatch", "GetMetricData");
    let deadline = std::time::Instant::now() + WAIT;
    while calls(m, "cloudwatch", "GetMetricData") < start + n {
        assert!(std::time::Instant::now() < deadline, "no {n} sweeps within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// CloudWatch where Route 53 publishes its metrics (us-east-1, whatever the objects' Region).
async fn cloudwatch(ctx: &TestCtx) -> aws_sdk_cloudwatch::Client {
    let metrics_cfg = ctx
        .aws
        .config_for(Some(&AwsOverride {
            region: Some("us-east-1".into()),
            role_arn: Some(ctx.role_arn.clone()),
            external_id: None,
        }))
        .await;
    aws_sdk_cloudwatch::Client::new(&metrics_cfg)
}

#[tokio::test]
async fn health_comes_from_cloudwatch_in_one_call_for_many_checks_and_a_zero_fails_over() {
    let ctx = TestCtx::new("health-cloudwatch").await;
    let cfg = ctx.sdk_config().await;
    let zone = fixtures::hosted_zone(&cfg, "acs.app.com").await;
    let cw = cloudwatch(&ctx).await;
    let op = InProcessOperator::start(&ctx).await;
    let api: Api<DnsFailover> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let names: Vec<String> = (0..OBJECTS).map(|i| format!("dr{i}")).collect();
    for name in &names {
        api.create(&PostParams::default(), &manifest(&ctx, &zone, name)).await.expect("create");
    }

    // No datapoint yet (a new check's first comes after minutes): each check is read with
    // GetHealthCheckStatus, and moto reports it healthy.
    let mut checks = Vec::new();
    for name in &names {
        checks.push(primary_check(&wait_for(&api, name, "PrimaryHealthy", "True").await));
    }
    let m = &op.metrics;
    assert!(calls(m, "route53", "GetHealthCheckStatus") >= OBJECTS as u64, "read one by one while CloudWatch has none");

    // Route 53 publishes: the first object's primary is down, the others are up.
    for (i, check) in checks.iter().enumerate() {
        publish(&cw, check, if i == 0 { 0.0 } else { 1.0 }, 2).await;
    }
    let o = wait_for(&api, "dr0", "FailedOver", "True").await;
    let active = serde_json::to_value(o.status.as_ref().and_then(|s| s.active_target)).expect("json");
    assert_eq!(active, json!("secondary"), "the metric's 0 is the primary's health");
    assert_eq!(
        o.status.as_ref().and_then(|s| s.last_failover.as_ref()).map(|f| f.reason.as_str()),
        Some("PrimaryUnhealthy")
    );

    // Every check has a datapoint now: a sweep is one GetMetricData for all three objects and no
    // GetHealthCheckStatus.
    sweeps(m, 1).await;
    let (metric_calls, status_calls) =
        (calls(m, "cloudwatch", "GetMetricData"), calls(m, "route53", "GetHealthCheckStatus"));
    sweeps(m, 3).await;
    assert_eq!(calls(m, "route53", "GetHealthCheckStatus"), status_calls, "no check is read one by one");
    let per_sweep = calls(m, "cloudwatch", "GetMetricData") - metric_calls;
    assert!((3..=4).contains(&per_sweep), "one call per sweep for {OBJECTS} objects, {per_sweep} in 3 sweeps");
    for name in &names[1..] {
        let o = api.get(name).await.expect("get");
        let active = serde_json::to_value(o.status.as_ref().and_then(|s| s.active_target)).expect("json");
        assert_eq!(active, json!("primary"), "{name}");
    }

    // The primary recovers.
    publish(&cw, &checks[0], 1.0, 0).await;
    let o = wait_for(&api, "dr0", "FailedOver", "False").await;
    assert_eq!(
        o.status.as_ref().and_then(|s| s.last_failover.as_ref()).map(|f| f.reason.as_str()),
        Some("PrimaryRecovered")
    );
    op.stop().await;
    ctx.cleanup().await;
}

/// Record and check reads of every outcome.
fn route53_reads(m: &Metrics) -> u64 {
    ["ListResourceRecordSets", "GetHealthCheck", "ListHealthChecks"]
        .iter()
        .flat_map(|op| {
            ["success", "throttling", "transient", "not_found", "conflict", "terminal"]
                .iter()
                .map(move |outcome| m.aws_call_count("route53", op, outcome))
        })
        .sum()
}

/// Between full passes an object is settled: the passes its health readings start read neither
/// its records nor its checks (at 1,000 objects those reads took the whole Route 53 budget and
/// failovers showed minutes late); a spec edit still gets a full pass.
#[tokio::test]
async fn a_failover_reading_starts_a_pass_that_reads_no_records_or_checks() {
    let ctx = TestCtx::new("health-settled").await;
    let cfg = ctx.sdk_config().await;
    let zone = fixtures::hosted_zone(&cfg, "acs.app.com").await;
    let cw = cloudwatch(&ctx).await;
    // No periodic full pass during the test.
    let op = InProcessOperator::start_with(&ctx, "", &["--resync-seconds", "3600"]).await;
    let api: Api<DnsFailover> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    api.create(&PostParams::default(), &manifest(&ctx, &zone, "dr0")).await.expect("create");
    let check = primary_check(&wait_for(&api, "dr0", "PrimaryHealthy", "True").await);
    let m = &op.metrics;
    let (reads, passes) = (route53_reads(m), m.reconcile_count("DnsFailover"));

    publish(&cw, &check, 0.0, 2).await;
    let o = wait_for(&api, "dr0", "FailedOver", "True").await;
    let active = serde_json::to_value(o.status.as_ref().and_then(|s| s.active_target)).expect("json");
    assert_eq!(active, json!("secondary"));
    publish(&cw, &check, 1.0, 0).await;
    wait_for(&api, "dr0", "FailedOver", "False").await;
    assert!(m.reconcile_count("DnsFailover") >= passes + 2, "each reading started a pass");
    assert_eq!(route53_reads(m), reads, "passes between full passes read no records or checks");

    // A spec edit is a new generation: a full pass reads the records and the check again.
    let patch = json!({"spec": {"primary": {"healthCheck": {"failureThreshold": 4}}}});
    let patched =
        api.patch("dr0", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(patch)).await.expect("patch");
    let generation = patched.metadata.generation;
    let cond = move |o: Option<&DnsFailover>| {
        o.and_then(|o| o.status.as_ref()).is_some_and(|s| s.observed_generation == generation)
    };
    tokio::time::timeout(WAIT, await_condition(api.clone(), "dr0", cond))
        .await
        .expect("the edit is reconciled")
        .expect("watch");
    assert!(route53_reads(m) >= reads + 2, "the edit's pass read the records and the check");
    op.stop().await;
    ctx.cleanup().await;
}

/// A pass whose health checks are far back in CreateHealthCheck's queue (0.5/s per account, here
/// scaled down to 0.01/s) holds its turn and ends, saying so in status, instead of holding a pass
/// slot until then: with a single slot, another object's failover still shows at once. (At 1,000
/// new DnsFailovers every slot waited on that quota, and first readings came half an hour late.)
#[tokio::test]
async fn a_pass_waiting_for_the_create_health_check_quota_gives_up_its_slot() {
    let ctx = TestCtx::new("health-queued").await;
    let cfg = ctx.sdk_config().await;
    let zone = fixtures::hosted_zone(&cfg, "acs.app.com").await;
    let cw = cloudwatch(&ctx).await;
    let flags = ["--max-concurrent-reconciles", "1", "--aws-quota-scale", "0.02", "--resync-seconds", "3600"];
    let op = InProcessOperator::start_with(&ctx, "", &flags).await;
    let m = &op.metrics;
    let api: Api<DnsFailover> = Api::namespaced(ctx.client.clone(), &ctx.namespace);

    // dr0 takes the quota's whole burst (one check); its health comes from CloudWatch.
    api.create(&PostParams::default(), &manifest(&ctx, &zone, "dr0")).await.expect("create");
    let has_check = |o: Option<&DnsFailover>| {
        o.and_then(|o| o.status.as_ref()?.health_checks.as_ref()).is_some_and(|h| !h.primary.id.is_empty())
    };
    let o = tokio::time::timeout(WAIT, await_condition(api.clone(), "dr0", has_check))
        .await
        .expect("dr0's check is made")
        .expect("watch")
        .expect("object");
    let check = primary_check(&o);
    publish(&cw, &check, 1.0, 2).await;
    wait_for(&api, "dr0", "PrimaryHealthy", "True").await;

    // dr1 needs two checks: their turns are 100 and 200 s away.
    let records_read = calls(m, "route53", "ListResourceRecordSets");
    let mut dr1 = manifest(&ctx, &zone, "dr1");
    dr1.spec.secondary.health_check = Some(dr1.spec.primary.health_check.clone());
    api.create(&PostParams::default(), &dr1).await.expect("create");
    let o = wait_for(&api, "dr1", "Synced", "False").await;
    let synced = o.status.as_ref().and_then(|s| s.conditions.iter().find(|c| c.type_ == "Synced")).expect("Synced");
    assert_eq!(synced.reason, "WaitingForQuota");
    assert!(synced.message.contains("route53:CreateHealthCheck") && synced.message.contains("2 calls"), "{synced:?}");
    assert!(m.budget_queued_count("route53", "CreateHealthCheck") >= 1);

    // The only slot is free: dr0's failover shows long before dr1's turn.
    publish(&cw, &check, 0.0, 1).await;
    wait_for(&api, "dr0", "FailedOver", "True").await;
    assert_eq!(calls(m, "route53", "CreateHealthCheck"), 1, "nothing of dr1's was sent before its turn");
    // Queued before its reads, which its pass at its turn makes (once, not twice).
    assert_eq!(calls(m, "route53", "ListResourceRecordSets"), records_read, "dr1 read nothing while queued");
    let o = api.get("dr1").await.expect("get");
    assert!(o.status.as_ref().is_some_and(|s| s.resources.is_empty()), "no create was planned either: {o:?}");
    op.stop().await;
    ctx.cleanup().await;
}

/// A new object's first reading does not wait for the next full sweep: between sweeps, every 5 s,
/// the checks never read are read with GetHealthCheckStatus (CloudWatch has no datapoint for a new
/// check for minutes). Here full sweeps are an hour apart, the first one before the object exists.
#[tokio::test]
async fn a_new_objects_first_reading_comes_between_full_sweeps() {
    let ctx = TestCtx::new("health-first-reading").await;
    let cfg = ctx.sdk_config().await;
    let zone = fixtures::hosted_zone(&cfg, "acs.app.com").await;
    let op = InProcessOperator::start_with(&ctx, "", &["--health-poll-seconds", "3600"]).await;
    // The first full sweep runs as the controllers start, before the object has a check.
    let api: Api<DnsFailover> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    api.create(&PostParams::default(), &manifest(&ctx, &zone, "dr0")).await.expect("create");
    let o = wait_for(&api, "dr0", "PrimaryHealthy", "True").await;
    assert!(!primary_check(&o).is_empty());
    assert_eq!(calls(&op.metrics, "cloudwatch", "GetMetricData"), 0, "no full sweep read it");
    op.stop().await;
    ctx.cleanup().await;
}
