//! Times no one should write, written into every date-time field of every kind (spec and status,
//! year 9999 and year 1), against the real apiserver and moto: the operator keeps running, a claim
//! renewed into the far future is `InvalidSpec` naming `spec.renewedAt` (also when its pool does not
//! exist) and keeps its worker, and other claims still bind. On the code before this test, the
//! first pool pass after the `renewedAt` patch panicked in the lease arithmetic and ended the
//! process.

mod support;

use fargate_operator::api::hot_pool::ClaimPhase;
use fargate_operator::api::{DnsFailover, FargateApp, HotPoolClaim};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::wait::await_condition;
use serde_json::{Value, json};
use support::fixtures;
use support::pool::{Setup, WAIT, versions};

const FAR_FUTURE: &str = "9999-12-30T21:59:59Z";
const FAR_FUTURE_MICRO: &str = "9999-12-30T21:59:59.999999Z";
const FAR_PAST: &str = "0001-01-01T00:00:00Z";
const FAR_PAST_MICRO: &str = "0001-01-01T00:00:00.000000Z";

/// Merge-patch `body` into the status of `name` (the status subresource, as a user with status
/// rights, or a buggy tool, could).
async fn patch_status<K>(api: &Api<K>, name: &str, body: Value)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(json!({ "status": body })))
        .await
        .unwrap_or_else(|e| panic!("patch status of {name}: {e}"));
}

/// Wait until `name` is `Degraded` for `InvalidSpec` with a message naming `field`.
async fn wait_invalid(claims: &Api<HotPoolClaim>, name: &str, field: &'static str) -> HotPoolClaim {
    let cond = move |o: Option<&HotPoolClaim>| {
        o.and_then(|c| c.status.as_ref()).is_some_and(|s| {
            s.conditions.iter().any(|c| {
                c.type_ == "Degraded" && c.status == "True" && c.reason == "InvalidSpec" && c.message.contains(field)
            })
        })
    };
    tokio::time::timeout(WAIT, await_condition(claims.clone(), name, cond))
        .await
        .unwrap_or_else(|_| panic!("claim {name}: Degraded/InvalidSpec naming {field} not reached"))
        .expect("watch")
        .expect("object")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn far_future_and_far_past_times_in_every_field_neither_crash_nor_wedge_the_operator() {
    let s = Setup::new("hostile-times").await;
    // The longest maxIdleSeconds, so an idle worker's availableSince reaches the idle arithmetic.
    s.create_pool(&s.pool("pool", versions(&s, &[("1", 0, 2, true)]), json!({"maxIdleSeconds": 604800}))).await;
    s.wait_counts("pool", 2, 0).await;
    s.create_claim("a", "pool", "1").await;
    let bound = s.wait_claim("a", ClaimPhase::Bound).await.status.expect("status");
    let worker_a = bound.worker.clone().expect("worker");

    // A bound claim renewed to the end of time: refused, and it keeps its worker with the lease of
    // its binding (expiresAt unchanged).
    s.claims
        .patch("a", &PatchParams::default(), &Patch::Merge(json!({"spec": {"renewedAt": FAR_FUTURE}})))
        .await
        .expect("renew to year 9999");
    let a = wait_invalid(&s.claims, "a", "spec.renewedAt").await.status.expect("status");
    assert_eq!(a.phase, Some(ClaimPhase::Bound), "an invalid renewal must not cost the claim its worker");
    assert_eq!(a.worker.as_deref(), Some(worker_a.as_str()));
    assert_eq!(a.expires_at, bound.expires_at, "the lease runs from the binding, not from year 9999");
    assert!(
        a.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True"),
        "still bound and usable: {:?}",
        a.conditions
    );

    // The same on a claim whose pool does not exist: the spec error shows, not PoolNotFound.
    let mut orphan = s.claim("orphan", "no-such-pool", "1");
    orphan.spec.renewed_at = Some(serde_json::from_value(json!(FAR_FUTURE)).expect("time"));
    s.claims.create(&PostParams::default(), &orphan).await.expect("create orphan claim");
    let o = wait_invalid(&s.claims, "orphan", "spec.renewedAt").await.status.expect("status");
    assert_eq!(o.phase, Some(ClaimPhase::Pending));

    // Every status time of workers and claims, at both ends of time.
    let idle = s
        .pool_workers("pool")
        .await
        .into_iter()
        .map(|w| w.metadata.name.expect("name"))
        .find(|n| *n != worker_a)
        .expect("an idle worker");
    patch_status(&s.workers, &idle, json!({"startedAt": FAR_PAST_MICRO, "availableSince": FAR_FUTURE_MICRO})).await;
    patch_status(
        &s.workers,
        &worker_a,
        json!({"startedAt": FAR_PAST_MICRO, "availableSince": FAR_FUTURE_MICRO, "claim": {"since": FAR_PAST}}),
    )
    .await;
    patch_status(&s.claims, "a", json!({"boundAt": FAR_FUTURE, "expiresAt": FAR_PAST})).await;

    // FargateApp: spec.restartedAt at the end of time, status times at the start.
    let cfg = s.ctx.sdk_config().await;
    let apps: Api<FargateApp> = Api::namespaced(s.ctx.client.clone(), &s.ctx.namespace);
    let mut app = support::yaml_docs("examples/fargateapp-minimal.yaml").remove(0);
    app["spec"]["cluster"] = json!(s.cluster);
    app["spec"]["network"] = json!({"subnets": s.net.subnets, "securityGroups": [s.net.security_group]});
    app["spec"]["aws"] = serde_json::to_value(s.ctx.aws_override()).expect("aws");
    app["spec"]["restartedAt"] = json!(FAR_FUTURE);
    let app: FargateApp = serde_json::from_value(app).expect("FargateApp");
    apps.create(&PostParams::default(), &app).await.expect("create FargateApp");
    let synced = |o: Option<&FargateApp>| {
        o.and_then(|a| a.status.as_ref())
            .is_some_and(|s| s.conditions.iter().any(|c| c.type_ == "Synced" && c.status == "True"))
    };
    tokio::time::timeout(WAIT, await_condition(apps.clone(), "hello", synced))
        .await
        .expect("FargateApp with restartedAt in year 9999 Synced")
        .expect("watch");
    patch_status(
        &apps,
        "hello",
        json!({"restartedAt": FAR_PAST, "lastError": {"operation": "x", "code": "y", "message": "z", "time": FAR_PAST},
               "conditions": [{"type": "Ready", "status": "False", "reason": "X", "message": "m", "lastTransitionTime": FAR_FUTURE}]}),
    )
    .await;
    // A pass over those: the patch left only a Ready condition, a pass writes Synced again.
    let passed = |o: Option<&FargateApp>| {
        o.and_then(|a| a.status.as_ref()).is_some_and(|s| s.conditions.iter().any(|c| c.type_ == "Synced"))
    };
    if tokio::time::timeout(WAIT, await_condition(apps.clone(), "hello", passed)).await.is_err() {
        let now = apps.get("hello").await.ok().and_then(|a| a.status);
        panic!("FargateApp did not pass over far-past status times; status: {now:#?}");
    }

    // DnsFailover: its last failover and last error at the end of time.
    let zone = fixtures::hosted_zone(&cfg, "hostile.example.com").await;
    let failovers: Api<DnsFailover> = Api::namespaced(s.ctx.client.clone(), &s.ctx.namespace);
    let mut dnsf = support::yaml_docs("examples/dnsfailover.yaml").remove(0);
    dnsf["metadata"] = json!({"name": "dr"});
    dnsf["spec"]["hostedZoneId"] = json!(zone);
    dnsf["spec"]["name"] = json!("api.hostile.example.com");
    dnsf["spec"].as_object_mut().expect("spec").remove("delegation");
    dnsf["spec"]["aws"] = serde_json::to_value(s.ctx.aws_override()).expect("aws");
    let dnsf: DnsFailover = serde_json::from_value(dnsf).expect("DnsFailover");
    failovers.create(&PostParams::default(), &dnsf).await.expect("create DnsFailover");
    let has_checks = |o: Option<&DnsFailover>| {
        o.and_then(|d| d.status.as_ref())
            .and_then(|s| s.health_checks.as_ref())
            .is_some_and(|c| !c.primary.id.is_empty())
    };
    tokio::time::timeout(WAIT, await_condition(failovers.clone(), "dr", has_checks))
        .await
        .expect("DnsFailover health checks created")
        .expect("watch");
    patch_status(
        &failovers,
        "dr",
        json!({"lastFailover": {"from": "primary", "to": "secondary", "reason": "PrimaryUnhealthy", "time": FAR_FUTURE},
               "lastError": {"operation": "x", "code": "y", "message": "z", "time": FAR_FUTURE},
               "conditions": [{"type": "Ready", "status": "False", "reason": "X", "message": "m", "lastTransitionTime": FAR_PAST}]}),
    )
    .await;
    let passed = |o: Option<&DnsFailover>| {
        o.and_then(|d| d.status.as_ref()).is_some_and(|s| s.conditions.iter().any(|c| c.type_ == "Synced"))
    };
    tokio::time::timeout(WAIT, await_condition(failovers.clone(), "dr", passed))
        .await
        .expect("DnsFailover passes over far-future status times")
        .expect("watch");

    // Other claims still bind, and the pool still converges.
    s.create_claim("c", "pool", "1").await;
    let c = s.wait_claim("c", ClaimPhase::Bound).await.status.expect("status");
    assert_ne!(c.worker.as_deref(), Some(worker_a.as_str()), "c got a worker of its own");
    s.wait_counts("pool", 2, 2).await;
    // Fixing the renewal clears the error.
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    s.claims
        .patch("a", &PatchParams::default(), &Patch::Merge(json!({"spec": {"renewedAt": now}})))
        .await
        .expect("renew now");
    let cleared = |o: Option<&HotPoolClaim>| {
        o.and_then(|c| c.status.as_ref()).is_some_and(|s| {
            s.phase == Some(ClaimPhase::Bound)
                && s.conditions.iter().any(|c| c.type_ == "Degraded" && c.status == "False")
        })
    };
    tokio::time::timeout(WAIT, await_condition(s.claims.clone(), "a", cleared))
        .await
        .expect("a fixed renewal clears Degraded")
        .expect("watch");
    assert!(!s.op().is_finished(), "the operator process must still be running");
    for kind in ["FargateApp", "DnsFailover", "HotPool", "HotPoolClaim"] {
        assert_eq!(s.op().metrics.panic_count(kind), 0, "no {kind} reconcile panicked (and was caught)");
    }
    s.finish().await;
}
