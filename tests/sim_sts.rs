//! A role that stops being assumable, against the in-memory AWS model: a DnsFailover whose
//! `spec.aws.roleArn` is revoked reports AccessDenied (Degraded) instead of retrying blindly, its
//! deletion waits (finalizer, `DeletionBlocked`) rather than forgetting what it created, and once
//! the role is restored the deletion completes and leaves nothing in Route 53.
#![cfg(feature = "sim")]

mod support;

use std::sync::Arc;
use std::time::Duration;

use fargate_operator::api::DnsFailover;
use fargate_operator::aws::model::{FaultRates, ModelAws};
use fargate_operator::runtime::conditions::{DEGRADED, DELETION_BLOCKED, READY};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::await_condition;
use serde_json::json;
use support::TestCtx;
use support::operator::InProcessOperator;

const WAIT: Duration = Duration::from_secs(60);
const ROLE: &str = "arn:aws:iam::123456789012:role/team-a";
const RECORD: &str = "dev.acs.app.com";

/// Move the model's clock a second every 20 ms of real time until `done` resolves (Route 53
/// changes stay PENDING until it moves), failing the test after [`WAIT`].
async fn run_clock_until<T>(model: &ModelAws, what: &str, done: impl std::future::Future<Output = T>) -> T {
    let clock = async {
        loop {
            model.advance(Duration::from_secs(1));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::select! {
        out = tokio::time::timeout(WAIT, done) => out.unwrap_or_else(|_| panic!("{what} within {WAIT:?}")),
        () = clock => unreachable!("the clock never ends"),
    }
}

/// The condition `type_` of `o` when it is about `o`'s current generation.
fn current<'a>(o: &'a DnsFailover, type_: &str) -> Option<&'a Condition> {
    let c = o.status.as_ref()?.conditions.iter().find(|c| c.type_ == type_)?;
    (c.observed_generation == o.metadata.generation).then_some(c)
}

fn is_true_naming(o: Option<&DnsFailover>, type_: &str, word: &str) -> bool {
    o.and_then(|o| current(o, type_)).is_some_and(|c| c.status == "True" && c.message.contains(word))
}

#[tokio::test]
async fn a_revoked_role_degrades_and_blocks_deletion_until_it_is_restored() {
    let ctx = TestCtx::new("sim-sts").await;
    let model = ModelAws::new(7, FaultRates::default(), "123456789012", "us-east-1");
    let zone = model.route53.create_zone("acs.app.com").id;
    let op = InProcessOperator::start_with_source(&ctx, Arc::new(model.clone()), &[]).await;
    let api: Api<DnsFailover> = Api::namespaced(ctx.client.clone(), &ctx.namespace);

    let mut manifest = support::yaml_docs("examples/dnsfailover.yaml").remove(0);
    manifest["metadata"] = json!({"name": "dev"});
    manifest["spec"]["hostedZoneId"] = json!(zone);
    manifest["spec"]["name"] = json!(RECORD);
    manifest["spec"].as_object_mut().expect("spec").remove("delegation");
    manifest["spec"]["aws"] = json!({"roleArn": ROLE});
    let obj: DnsFailover = serde_json::from_value(manifest).expect("DnsFailover");
    api.create(&PostParams::default(), &obj).await.expect("create");
    let ready = |o: Option<&DnsFailover>| o.and_then(|o| current(o, READY)).is_some_and(|c| c.status == "True");
    run_clock_until(&model, "Ready", await_condition(api.clone(), "dev", ready)).await.expect("watch");
    let ours = |model: &ModelAws| {
        let records = model.route53.record_sets(&zone).unwrap_or_default();
        let records = records.iter().filter(|r| r.name().trim_end_matches('.') == RECORD).count();
        (records, model.route53.health_checks().len())
    };
    assert_eq!(ours(&model), (2, 1), "the failover pair and the primary's health check");

    // The team takes the operator out of the role's trust policy; an edit makes the next pass.
    assert!(model.sts.revoke_role(ROLE));
    let ttl = json!({"spec": {"ttl": 120}});
    api.patch("dev", &PatchParams::default(), &Patch::Merge(&ttl)).await.expect("change the ttl");
    let degraded = |o: Option<&DnsFailover>| is_true_naming(o, DEGRADED, "AccessDenied");
    let seen = run_clock_until(&model, "Degraded naming AccessDenied", await_condition(api.clone(), "dev", degraded))
        .await
        .expect("watch")
        .expect("object");
    let last = seen.status.and_then(|s| s.last_error).expect("lastError");
    assert_eq!(last.code, "AccessDenied", "{last:?}");
    assert!(last.message.contains(ROLE), "the refusal names the role: {last:?}");

    // Deleting while the role is refused: nothing can be removed, so the object stays and says why.
    api.delete("dev", &DeleteParams::default()).await.expect("delete");
    let blocked = |o: Option<&DnsFailover>| is_true_naming(o, DELETION_BLOCKED, "AccessDenied");
    let held = run_clock_until(&model, "DeletionBlocked", await_condition(api.clone(), "dev", blocked))
        .await
        .expect("watch")
        .expect("the finalizer keeps the object");
    assert!(held.metadata.deletion_timestamp.is_some());
    assert_eq!(ours(&model), (2, 1), "nothing was removed with the role refused");

    // A terminal error waits minutes or for a change: after fixing the role a human nudges the
    // object, as the test does with an annotation.
    assert!(model.sts.restore_role(ROLE));
    let nudge = json!({"metadata": {"annotations": {"test/nudge": "role restored"}}});
    api.patch("dev", &PatchParams::default(), &Patch::Merge(&nudge)).await.expect("nudge");
    run_clock_until(&model, "deletion", await_condition(api.clone(), "dev", |o: Option<&DnsFailover>| o.is_none()))
        .await
        .expect("watch");
    assert_eq!(ours(&model), (0, 0), "no record and no health check left");
    assert!(model.sts.assume_role_calls(ROLE) > 0, "the object's calls went through the model's STS");
    op.stop().await;
    ctx.cleanup().await;
}
