//! FargateApp records and DnsFailover NS delegations carry an ownership mark (a TXT record at
//! `_fargate-operator.<name>`, as external-dns does), against the real apiserver and moto: the mark
//! is written and deleted with the record, a record marked by another owner is never taken or
//! deleted, a mark deleted behind the operator's back is written again, a record whose status entry
//! was lost is still known as ours by its mark, and a delegation someone else made is left alone.

mod support;

use kube::ResourceExt;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::json;
use support::app::{Setup, condition, wait_condition, wait_deleted, wait_synced};
use support::fixtures;

const NAME: &str = "web.apps.example.com";
const MARK: &str = "_fargate-operator.web.apps.example.com";

async fn mark_values(s: &Setup) -> Vec<String> {
    fixtures::records_named(&s.cfg, &s.fx.zone_id, MARK)
        .await
        .iter()
        .filter(|r| r.r#type().as_str() == "TXT")
        .flat_map(|r| r.resource_records().iter().map(|v| v.value().to_string()))
        .collect()
}

async fn wait_mark(s: &Setup, present: bool) -> Vec<String> {
    support::poll_aws("the ownership mark", std::time::Duration::from_millis(200), || async move {
        let values = mark_values(s).await;
        if values.is_empty() != present { Ok(()) } else { Err(format!("{values:?}")) }
    })
    .await;
    mark_values(s).await
}

#[tokio::test]
async fn a_record_is_marked_as_ours_and_another_owners_mark_is_never_taken() {
    let s = Setup::new("fa-record-mark").await;
    s.create(s.app_json("web")).await;
    wait_synced(&s.api, "web").await;
    let values = mark_values(&s).await;
    let owner = format!("owner=test/{}/FargateApp/web", s.ctx.namespace);
    assert!(values.len() == 1 && values[0].contains(&owner), "the mark names the app: {values:?}");

    // Another app at the same name (same namespace, same load balancer): the mark says whose it is.
    let mut thief = s.app_json("thief");
    thief["spec"]["dns"]["name"] = json!(NAME);
    thief["spec"]["loadBalancer"]["listenerRule"]["pathPatterns"] = json!(["/thief/*"]);
    s.create(thief).await;
    let refused = wait_condition(&s.api, "thief", "Degraded", "True", Some("NameConflict")).await;
    let message = condition(&refused, "Degraded").map(|c| c.message.clone()).unwrap_or_default();
    assert!(message.contains("spec.dns.name") && message.contains("FargateApp/web"), "{message}");
    let uid = refused.uid().expect("uid");
    s.api.delete("thief", &DeleteParams::default()).await.expect("delete thief");
    wait_deleted(&s.api, "thief", &uid).await;
    assert_eq!(fixtures::records_named(&s.cfg, &s.fx.zone_id, NAME).await.len(), 1, "web's record stays");
    assert_eq!(mark_values(&s).await, values, "web's mark stays");

    // The mark deleted behind the operator's back: written again by the next pass that reads it (a
    // spec change here; the periodic full check otherwise).
    let r53 = aws_sdk_route53::Client::new(&s.cfg);
    let set = fixtures::records_named(&s.cfg, &s.fx.zone_id, MARK).await.remove(0);
    let delete = aws_sdk_route53::types::Change::builder()
        .action(aws_sdk_route53::types::ChangeAction::Delete)
        .resource_record_set(set)
        .build()
        .expect("change");
    let batch = aws_sdk_route53::types::ChangeBatch::builder().changes(delete).build().expect("batch");
    r53.change_resource_record_sets().hosted_zone_id(&s.fx.zone_id).change_batch(batch).send().await.expect("delete");
    s.merge_patch("web", &json!({"spec": {"replicas": 3}})).await;
    assert_eq!(wait_mark(&s, true).await, values);

    // The status entry lost: the mark still proves the record ours (no NameConflict), and the
    // deletion removes both.
    let status = json!({"status": {"resources": serde_json::Value::Null}});
    s.api.patch_status("web", &PatchParams::default(), &Patch::Merge(&status)).await.expect("drop the inventory");
    s.merge_patch("web", &json!({"spec": {"replicas": 1}})).await;
    let app = wait_synced(&s.api, "web").await;
    let records = app.status.as_ref().map(|st| st.resources.iter().filter(|r| r.type_ == "Record").count());
    assert_eq!(records, Some(1), "the record is in the inventory again");
    let uid = app.uid().expect("uid");
    s.api.delete("web", &DeleteParams::default()).await.expect("delete web");
    wait_deleted(&s.api, "web", &uid).await;
    assert!(fixtures::records_named(&s.cfg, &s.fx.zone_id, NAME).await.is_empty(), "the record is deleted");
    assert!(wait_mark(&s, false).await.is_empty(), "the mark is deleted");
    s.finish().await;
}

/// The parent zone's NS records of `name`: (TTL, sorted values).
async fn ns_at(cfg: &aws_config::SdkConfig, zone: &str, name: &str) -> Vec<(Option<i64>, Vec<String>)> {
    fixtures::records_named(cfg, zone, name)
        .await
        .into_iter()
        .filter(|r| r.r#type().as_str() == "NS")
        .map(|r| {
            let mut v: Vec<String> = r.resource_records().iter().map(|v| fixtures::normalize_dns(v.value())).collect();
            v.sort();
            (r.ttl(), v)
        })
        .collect()
}

async fn txt_at(cfg: &aws_config::SdkConfig, zone: &str, name: &str) -> Vec<String> {
    fixtures::records_named(cfg, zone, name)
        .await
        .iter()
        .filter(|r| r.r#type().as_str() == "TXT")
        .flat_map(|r| r.resource_records().iter().map(|v| v.value().to_string()))
        .collect()
}

#[tokio::test]
async fn a_delegation_someone_else_made_is_never_taken_and_ours_is_marked() {
    use fargate_operator::api::DnsFailover;
    use kube::api::{Api, PostParams};
    use kube::runtime::wait::{await_condition, conditions};

    let ctx = support::TestCtx::new("dnsf-delegation-mark").await;
    let cfg = ctx.sdk_config().await;
    let zone = fixtures::hosted_zone(&cfg, "acs.app.com").await;
    let parent = fixtures::hosted_zone(&cfg, "app.com").await;
    let op = support::operator::InProcessOperator::start_with_faults(&ctx, "").await;
    let api: Api<DnsFailover> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let r53 = aws_sdk_route53::Client::new(&cfg);
    let got = r53.get_hosted_zone().id(&zone).send().await.expect("zone");
    let mut servers: Vec<String> =
        got.delegation_set().expect("servers").name_servers().iter().map(|n| fixtures::normalize_dns(n)).collect();
    servers.sort();
    let manifest = |name: &str| -> DnsFailover {
        let mut v = support::yaml_docs("examples/dnsfailover.yaml").remove(0);
        v["metadata"] = json!({"name": name, "namespace": ctx.namespace});
        v["spec"]["hostedZoneId"] = json!(zone);
        v["spec"]["name"] = json!("dev.acs.app.com");
        v["spec"]["delegation"] = json!({"parentHostedZoneId": parent, "ttl": 3600});
        v["spec"]["aws"] = serde_json::to_value(ctx.aws_override()).expect("aws");
        serde_json::from_value(v).expect("DnsFailover")
    };
    let ready = |name: &'static str| {
        let api = api.clone();
        async move {
            let cond = |o: Option<&DnsFailover>| {
                o.and_then(|o| o.status.as_ref()).is_some_and(|s| {
                    s.conditions.iter().any(|c| c.type_ == "DelegationReady" && c.status == "True")
                        && s.conditions.iter().any(|c| c.type_ == "Synced" && c.status == "True")
                })
            };
            tokio::time::timeout(support::app::WAIT, await_condition(api, name, cond))
                .await
                .unwrap_or_else(|_| panic!("{name} not delegated in time"))
                .expect("watch")
                .expect("object")
        }
    };
    let delete = |name: &'static str, uid: String| {
        let api = api.clone();
        async move {
            api.delete(name, &DeleteParams::default()).await.expect("delete");
            tokio::time::timeout(support::app::WAIT, await_condition(api, name, conditions::is_deleted(&uid)))
                .await
                .unwrap_or_else(|_| panic!("{name} not deleted in time"))
                .expect("watch");
        }
    };

    // Someone delegated the zone by hand, to its own servers: in place, reported, never taken.
    let values: Vec<aws_sdk_route53::types::ResourceRecord> = servers
        .iter()
        .map(|n| aws_sdk_route53::types::ResourceRecord::builder().value(format!("{n}.")).build().expect("value"))
        .collect();
    let theirs = aws_sdk_route53::types::ResourceRecordSet::builder()
        .name("acs.app.com.")
        .r#type(aws_sdk_route53::types::RrType::Ns)
        .ttl(300)
        .set_resource_records(Some(values))
        .build()
        .expect("set");
    let change = aws_sdk_route53::types::Change::builder()
        .action(aws_sdk_route53::types::ChangeAction::Create)
        .resource_record_set(theirs.clone())
        .build()
        .expect("change");
    let batch = aws_sdk_route53::types::ChangeBatch::builder().changes(change).build().expect("batch");
    r53.change_resource_record_sets().hosted_zone_id(&parent).change_batch(batch).send().await.expect("delegate");
    api.create(&PostParams::default(), &manifest("first")).await.expect("create");
    let o = ready("first").await;
    let recorded = o.status.as_ref().is_some_and(|s| s.resources.iter().any(|r| r.id.ends_with("/NS")));
    assert!(!recorded, "someone else's delegation is not in the inventory");
    assert_eq!(ns_at(&cfg, &parent, "acs.app.com").await, [(Some(300), servers.clone())], "not rewritten");
    assert!(txt_at(&cfg, &parent, "_fargate-operator.acs.app.com").await.is_empty(), "not marked as ours");
    delete("first", o.uid().expect("uid")).await;
    assert_eq!(ns_at(&cfg, &parent, "acs.app.com").await, [(Some(300), servers.clone())], "left in place");

    // Gone: the next DnsFailover delegates the zone itself, marked, and takes it away with it.
    let change = aws_sdk_route53::types::Change::builder()
        .action(aws_sdk_route53::types::ChangeAction::Delete)
        .resource_record_set(theirs)
        .build()
        .expect("change");
    let batch = aws_sdk_route53::types::ChangeBatch::builder().changes(change).build().expect("batch");
    r53.change_resource_record_sets().hosted_zone_id(&parent).change_batch(batch).send().await.expect("undelegate");
    api.create(&PostParams::default(), &manifest("second")).await.expect("create");
    let o = ready("second").await;
    assert_eq!(ns_at(&cfg, &parent, "acs.app.com").await, [(Some(3600), servers.clone())]);
    let marks = txt_at(&cfg, &parent, "_fargate-operator.acs.app.com").await;
    let owner = format!("owner=test/{}/DnsFailover/second", ctx.namespace);
    assert!(marks.len() == 1 && marks[0].contains(&owner), "{marks:?}");
    delete("second", o.uid().expect("uid")).await;
    assert!(ns_at(&cfg, &parent, "acs.app.com").await.is_empty(), "our delegation goes with the object");
    assert!(txt_at(&cfg, &parent, "_fargate-operator.acs.app.com").await.is_empty(), "and its mark");
    op.stop().await;
    ctx.cleanup().await;
}
