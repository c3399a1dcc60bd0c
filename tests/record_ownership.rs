//! FargateApp records carry an ownership mark (a TXT record at `_fargate-operator.<name>`, as
//! external-dns does), against the real apiserver and moto: the mark is written and deleted with
//! the record, a record marked by another owner is never taken or deleted, a mark deleted behind
//! the operator's back is written again, and a record whose status entry was lost is still known
//! as ours by its mark.

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

    // The mark deleted behind the operator's back: written again by a resync pass.
    let r53 = aws_sdk_route53::Client::new(&s.cfg);
    let set = fixtures::records_named(&s.cfg, &s.fx.zone_id, MARK).await.remove(0);
    let delete = aws_sdk_route53::types::Change::builder()
        .action(aws_sdk_route53::types::ChangeAction::Delete)
        .resource_record_set(set)
        .build()
        .expect("change");
    let batch = aws_sdk_route53::types::ChangeBatch::builder().changes(delete).build().expect("batch");
    r53.change_resource_record_sets().hosted_zone_id(&s.fx.zone_id).change_batch(batch).send().await.expect("delete");
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
