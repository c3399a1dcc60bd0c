//! FargateApp spec edits as GitOps users make them, against the real apiserver and moto: each edit
//! must leave exactly the AWS objects the new spec asks for (read from AWS directly, by owner tag),
//! record them in `status.resources`, and the app must still delete completely afterwards.

mod support;

use std::collections::BTreeSet;

use aws_config::SdkConfig;
use fargate_operator::api::FargateApp;
use kube::ResourceExt;
use kube::api::DeleteParams;
use serde_json::json;
use support::app::{Setup, condition, status_of, wait_condition, wait_deleted, wait_synced};
use support::fixtures::{self, app_owner};

/// `(type, id)` of every inventory entry.
fn inventory(app: &FargateApp) -> BTreeSet<(String, String)> {
    status_of(app).resources.into_iter().map(|r| (r.type_, r.id)).collect()
}

/// The inventory entries of `type_`.
fn entries(app: &FargateApp, type_: &str) -> Vec<fargate_operator::api::OwnedResource> {
    status_of(app).resources.into_iter().filter(|r| r.type_ == type_).collect()
}

/// Record types at `name` in the test zone, sorted.
async fn record_types(s: &Setup, name: &str) -> Vec<String> {
    let mut types: Vec<String> = fixtures::records_named(&s.cfg, &s.fx.zone_id, name)
        .await
        .iter()
        .map(|r| r.r#type().as_str().to_string())
        .collect();
    types.sort();
    types
}

/// Where the record of `rtype` at `name` points (alias target or first value), normalised.
async fn record_target(s: &Setup, name: &str, rtype: &str) -> Option<String> {
    fixtures::records_named(&s.cfg, &s.fx.zone_id, name).await.into_iter().find(|r| r.r#type().as_str() == rtype).map(
        |r| {
            let target = r
                .alias_target()
                .map(|a| a.dns_name().to_string())
                .or_else(|| r.resource_records().first().map(|v| v.value().to_string()))
                .unwrap_or_default();
            fixtures::normalize_dns(&target)
        },
    )
}

/// Patch the spec and wait until a pass at the new generation is Synced.
async fn edit(s: &Setup, name: &str, spec: serde_json::Value) -> FargateApp {
    s.merge_patch(name, &json!({ "spec": spec })).await;
    wait_synced(&s.api, name).await
}

/// Delete the app and check AWS holds nothing carrying its owner tag, and no record at `names`.
async fn delete_and_check_nothing_left(s: &Setup, name: &str, listeners: &[&str], names: &[&str]) {
    let uid = s.api.get(name).await.expect("get").uid().expect("uid");
    s.api.delete(name, &DeleteParams::default()).await.expect("delete");
    wait_deleted(&s.api, name, &uid).await;
    nothing_left(&s.cfg, &s.ctx.namespace, name, listeners).await;
    for n in names {
        assert_eq!(record_types(s, n).await, Vec::<String>::new(), "no record is left at {n}");
        let mark = format!("_fargate-operator.{n}");
        assert_eq!(record_types(s, &mark).await, Vec::<String>::new(), "no ownership mark is left at {mark}");
    }
}

/// No rule on `listeners`, no service, no target group carrying the app's owner tag.
async fn nothing_left(cfg: &SdkConfig, namespace: &str, name: &str, listeners: &[&str]) {
    let owner = app_owner(namespace, name);
    for l in listeners {
        assert!(fixtures::owned_rules(cfg, l, &owner).await.is_empty(), "no rule of {owner} on {l}");
    }
    assert!(fixtures::owned_active_services(cfg, &owner).await.is_empty(), "no service of {owner}");
    assert!(fixtures::owned_target_groups(cfg, &owner).await.is_empty(), "no target group of {owner}");
}

#[tokio::test]
async fn renaming_retyping_and_removing_the_record_leave_no_record_behind() {
    let s = Setup::new("fa-edit-dns").await;
    s.create(s.app_json("web")).await;
    let app = wait_synced(&s.api, "web").await;
    let alb = fixtures::normalize_dns(&s.fx.alb.dns_name);
    assert_eq!(record_types(&s, "web.apps.example.com").await, ["A"]);
    let zone = &s.fx.zone_id;
    assert!(inventory(&app).contains(&("Record".into(), format!("{zone}/web.apps.example.com/A"))), "{app:?}");
    // Someone else's record in the same zone is never touched by any of the edits below.
    let r53 = aws_sdk_route53::Client::new(&s.cfg);
    fixtures::upsert_cname(&r53, zone, "mine.apps.example.com", "elsewhere.example.net").await;

    // Rename: the new name is written, the old one deleted.
    let app = edit(&s, "web", json!({"dns": {"name": "www.apps.example.com"}})).await;
    assert_eq!(record_types(&s, "web.apps.example.com").await, Vec::<String>::new(), "the old name is deleted");
    assert_eq!(record_target(&s, "www.apps.example.com", "A").await.as_deref(), Some(alb.as_str()));
    assert_eq!(entries(&app, "Record").len(), 1, "{:?}", entries(&app, "Record"));

    // Alias -> CNAME -> Alias at the same name: one record at a time, never both, never a loop.
    let app = edit(&s, "web", json!({"dns": {"type": "CNAME"}})).await;
    assert_eq!(record_types(&s, "www.apps.example.com").await, ["CNAME"]);
    assert_eq!(record_target(&s, "www.apps.example.com", "CNAME").await.as_deref(), Some(alb.as_str()));
    assert_eq!(entries(&app, "Record")[0].id, format!("{zone}/www.apps.example.com/CNAME"));
    edit(&s, "web", json!({"dns": {"type": "Alias"}})).await;
    assert_eq!(record_types(&s, "www.apps.example.com").await, ["A"]);

    // Remove the block: the record goes, and so does its entry.
    let app = edit(&s, "web", json!({"dns": null})).await;
    assert_eq!(record_types(&s, "www.apps.example.com").await, Vec::<String>::new());
    assert!(entries(&app, "Record").is_empty(), "{:?}", entries(&app, "Record"));
    assert!(status_of(&app).url.is_some_and(|u| !u.contains("www.apps")), "the url no longer names the record");

    delete_and_check_nothing_left(&s, "web", &[&s.fx.alb.listener_arn], &["web.apps.example.com"]).await;
    assert_eq!(record_types(&s, "mine.apps.example.com").await, ["CNAME"], "someone else's record stays");
    s.finish().await;
}

#[tokio::test]
async fn moving_the_rule_to_another_listener_and_another_load_balancer_leaves_one_rule() {
    let s = Setup::new("fa-edit-listener").await;
    let second = fixtures::listener(&s.cfg, &s.fx.alb.arn, 8080).await;
    let other = fixtures::alb(&s.cfg, &s.fx.net, "other").await;
    s.create(s.app_json("web")).await;
    let app = wait_synced(&s.api, "web").await;
    let owner = app_owner(&s.ctx.namespace, "web");
    let tg = status_of(&app).target_group_arn.expect("target group");
    let first = s.fx.alb.listener_arn.clone();

    // Another listener of the same load balancer: the new rule is made, then the old one goes.
    let app = edit(&s, "web", json!({"loadBalancer": {"listenerRule": {"listenerArn": second}}})).await;
    assert!(fixtures::owned_rules(&s.cfg, &first, &owner).await.is_empty(), "the rule on the old listener is gone");
    let rules = fixtures::owned_rules(&s.cfg, &second, &owner).await;
    assert_eq!(rules.len(), 1, "{rules:?}");
    assert_eq!(rules[0].forward_to, BTreeSet::from([tg.clone()]), "it forwards to the same target group");
    assert_eq!(status_of(&app).listener_rule_arn.as_deref(), Some(rules[0].arn.as_str()));
    let recorded = entries(&app, "ListenerRule");
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert_eq!(recorded[0].parent.as_deref(), Some(second.as_str()));

    // A listener on another load balancer: one rule there, and the record follows the load balancer.
    let app = edit(&s, "web", json!({"loadBalancer": {"listenerRule": {"listenerArn": other.listener_arn}}})).await;
    for l in [&first, &second] {
        assert!(fixtures::owned_rules(&s.cfg, l, &owner).await.is_empty(), "no rule of ours left on {l}");
    }
    assert_eq!(fixtures::owned_rules(&s.cfg, &other.listener_arn, &owner).await.len(), 1);
    assert_eq!(status_of(&app).target_group_arn.as_deref(), Some(tg.as_str()), "the target group is kept");
    assert_eq!(
        record_target(&s, "web.apps.example.com", "A").await,
        Some(fixtures::normalize_dns(&other.dns_name)),
        "the record points at the new load balancer"
    );
    assert_eq!(entries(&app, "ListenerRule").len(), 1);

    // And back: nothing accumulates.
    let app = edit(&s, "web", json!({"loadBalancer": {"listenerRule": {"listenerArn": first}}})).await;
    assert!(fixtures::owned_rules(&s.cfg, &other.listener_arn, &owner).await.is_empty());
    assert_eq!(fixtures::owned_rules(&s.cfg, &first, &owner).await.len(), 1);
    assert_eq!(record_target(&s, "web.apps.example.com", "A").await, Some(fixtures::normalize_dns(&s.fx.alb.dns_name)));
    assert_eq!(entries(&app, "ListenerRule").len(), 1);

    delete_and_check_nothing_left(&s, "web", &[&first, &second, &other.listener_arn], &["web.apps.example.com"]).await;
    s.finish().await;
}

#[tokio::test]
async fn removing_the_load_balancer_removes_its_rule_record_and_target_group() {
    let s = Setup::new("fa-edit-lb").await;
    s.create(s.app_json("web")).await;
    let app = wait_synced(&s.api, "web").await;
    let owner = app_owner(&s.ctx.namespace, "web");
    let tg = status_of(&app).target_group_arn.expect("target group");

    let app = edit(&s, "web", json!({"loadBalancer": null, "dns": null})).await;
    assert!(fixtures::owned_rules(&s.cfg, &s.fx.alb.listener_arn, &owner).await.is_empty(), "the rule is gone");
    assert!(fixtures::target_group(&s.cfg, &tg).await.is_none(), "the target group is gone");
    assert_eq!(record_types(&s, "web.apps.example.com").await, Vec::<String>::new(), "the record is gone");
    let services = fixtures::owned_active_services(&s.cfg, &owner).await;
    assert_eq!(services.len(), 1, "the service stays");
    assert!(services[0].load_balancers().is_empty(), "and no longer registers with a target group");
    let types: BTreeSet<String> = inventory(&app).into_iter().map(|(t, _)| t).collect();
    assert_eq!(types, BTreeSet::from(["Service".to_string(), "TaskDefinitionFamily".to_string()]));
    let st = status_of(&app);
    assert_eq!((st.target_group_arn, st.listener_rule_arn, st.load_balancer_dns_name), (None, None, None));
    // Each deletion an edit caused is an Event on the object.
    let events: kube::Api<k8s_openapi::api::events::v1::Event> =
        kube::Api::namespaced(s.ctx.client.clone(), &s.ctx.namespace);
    let notes: Vec<String> = events
        .list(&Default::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("Deleted"))
        .filter_map(|e| e.note)
        .collect();
    for what in ["TargetGroup", "ListenerRule", "Record"] {
        assert!(notes.iter().any(|n| n.starts_with(what)), "no Deleted Event for the {what}: {notes:?}");
    }

    delete_and_check_nothing_left(&s, "web", &[&s.fx.alb.listener_arn], &["web.apps.example.com"]).await;
    s.finish().await;
}

#[tokio::test]
async fn a_listener_deleted_under_the_app_is_reported_and_the_app_still_deletes() {
    let s = Setup::new("fa-edit-gone").await;
    s.create(s.app_json("web")).await;
    let app = wait_synced(&s.api, "web").await;
    let tg = status_of(&app).target_group_arn.expect("target group");
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&s.cfg);
    elb.delete_listener().listener_arn(&s.fx.alb.listener_arn).send().await.expect("DeleteListener");

    // The next full pass (any edit) says which field names what is gone.
    s.merge_patch("web", &json!({"spec": {"replicas": 3}})).await;
    let app = wait_condition(&s.api, "web", "Degraded", "True", Some("ListenerNotFound")).await;
    let message = &support::app::condition(&app, "Degraded").expect("Degraded").message;
    assert!(message.contains("spec.loadBalancer.listenerRule.listenerArn"), "{message}");

    delete_and_check_nothing_left(&s, "web", &[], &["web.apps.example.com"]).await;
    assert!(fixtures::target_group(&s.cfg, &tg).await.is_none(), "the target group is gone");
    s.finish().await;
}

#[tokio::test]
async fn moving_to_another_cluster_moves_the_service() {
    let s = Setup::new("fa-edit-cluster").await;
    let second = fixtures::ecs_cluster(&s.cfg, "apps2").await;
    s.create(s.app_json("web")).await;
    let app = wait_synced(&s.api, "web").await;
    let old = status_of(&app).service_arn.expect("service");

    let app = edit(&s, "web", json!({"cluster": second})).await;
    let owner = app_owner(&s.ctx.namespace, "web");
    let moved: Vec<_> = fixtures::services_in(&s.cfg, "apps2")
        .await
        .into_iter()
        .filter(|svc| svc.status() == Some("ACTIVE"))
        .filter(|svc| fixtures::ecs_tag_map(svc.tags()).get(fixtures::OWNER_TAG) == Some(&owner))
        .collect();
    assert_eq!(moved.len(), 1, "one service in the new cluster");
    assert!(fixtures::owned_active_services(&s.cfg, &owner).await.is_empty(), "none left in the old one");
    let svc = fixtures::service(&s.cfg, &old).await;
    assert!(svc.as_ref().is_none_or(|v| v.status() != Some("ACTIVE")), "the old service is deleted: {svc:?}");
    let services = entries(&app, "Service");
    assert_eq!(services.len(), 1, "{services:?}");
    assert_eq!(services[0].parent.as_deref(), Some(second.as_str()));

    s.api.delete("web", &DeleteParams::default()).await.expect("delete");
    wait_deleted(&s.api, "web", &app.uid().expect("uid")).await;
    let left: Vec<_> =
        fixtures::services_in(&s.cfg, "apps2").await.into_iter().filter(|svc| svc.status() == Some("ACTIVE")).collect();
    assert!(left.is_empty(), "{left:?}");
    nothing_left(&s.cfg, &s.ctx.namespace, "web", &[&s.fx.alb.listener_arn]).await;
    s.finish().await;
}

/// The way out of a deletion AWS keeps refusing (a role that can no longer be assumed, a permission
/// taken away): `DeletionBlocked` says why, and `spec.policy.deletion: Retain` lets the object go,
/// leaving its AWS objects (listed in `status.resources`) in place.
#[tokio::test]
async fn a_deletion_aws_keeps_refusing_is_reported_and_retain_lets_the_object_go() {
    use kube::runtime::wait::await_condition;
    let s = Setup::new("fa-edit-wayout").await;
    s.create(s.app_json("web")).await;
    let app = wait_synced(&s.api, "web").await;
    let recorded = status_of(&app).resources;
    assert!(!recorded.is_empty());
    let support::app::Setup { ctx, cfg, fx, op, api } = s;
    op.stop().await;
    // Every AWS call now fails as if AWS refused it.
    let op = support::operator::InProcessOperator::start_with_faults(&ctx, "*=5xx%1").await;
    let s = support::app::Setup { ctx, cfg, fx, op, api };

    s.api.delete("web", &DeleteParams::default()).await.expect("delete");
    let blocked = tokio::time::timeout(
        support::app::WAIT,
        await_condition(s.api.clone(), "web", |o: Option<&FargateApp>| {
            o.and_then(|a| support::app::condition(a, "DeletionBlocked")).is_some_and(|c| c.status == "True")
        }),
    )
    .await
    .expect("DeletionBlocked within the wait")
    .expect("watch")
    .expect("the object is still there");
    assert_eq!(status_of(&blocked).resources, recorded, "nothing was deleted, so the inventory is intact");

    s.merge_patch("web", &json!({"spec": {"policy": {"deletion": "Retain"}}})).await;
    wait_deleted(&s.api, "web", &app.uid().expect("uid")).await;
    let owner = app_owner(&s.ctx.namespace, "web");
    assert_eq!(fixtures::owned_active_services(&s.cfg, &owner).await.len(), 1, "Retain leaves the service");
    assert_eq!(fixtures::owned_rules(&s.cfg, &s.fx.alb.listener_arn, &owner).await.len(), 1, "and the rule");
    s.finish().await;
}

/// Two apps on one shared load balancer: a record at the same name that another app wrote points
/// at the same load balancer, yet it is not ours: `NameConflict`, and deleting the second app leaves
/// the first app's record alone.
#[tokio::test]
async fn a_record_another_app_wrote_on_the_shared_load_balancer_is_not_ours() {
    let s = Setup::new("fa-edit-shared").await;
    s.create(s.app_json("first")).await;
    wait_synced(&s.api, "first").await;
    let mut second = s.app_json("second");
    second["spec"]["dns"]["name"] = json!("first.apps.example.com");
    second["spec"]["loadBalancer"]["listenerRule"]["pathPatterns"] = json!(["/second/*"]);
    s.create(second).await;
    let app = wait_condition(&s.api, "second", "Degraded", "True", Some("NameConflict")).await;
    let message = &support::app::condition(&app, "Degraded").expect("Degraded").message;
    assert!(message.contains("spec.dns.name"), "{message}");
    assert!(entries(&app, "Record").is_empty(), "not recorded: {:?}", entries(&app, "Record"));

    delete_and_check_nothing_left(&s, "second", &[&s.fx.alb.listener_arn], &[]).await;
    assert_eq!(record_types(&s, "first.apps.example.com").await, ["A"], "the first app's record stays");
    delete_and_check_nothing_left(&s, "first", &[&s.fx.alb.listener_arn], &["first.apps.example.com"]).await;
    s.finish().await;
}

/// A CreateRule whose answer is lost, the operator stopped before a later pass records the rule,
/// then a move to another load balancer: the rule made on the old listener (recorded as planned
/// before it was sent) is found and deleted, never left forwarding to the target group.
#[tokio::test]
async fn a_rule_whose_create_answer_was_lost_does_not_survive_a_listener_move() {
    // Every pass after the first fails at the target group step, before the rule step could
    // find the rule by its tags and record it.
    let s = Setup::with_faults("fa-edit-lostrule", "CreateRule=lost@1,DescribeTargetGroups=5xx>1").await;
    let other = fixtures::alb(&s.cfg, &s.fx.net, "other").await;
    s.create(s.app_json("web")).await;
    support::app::wait_app(&s.api, "web", "the lost CreateRule recorded as an error", |a| {
        a.status.as_ref().and_then(|st| st.last_error.as_ref()).is_some_and(|e| e.operation.contains("CreateRule"))
    })
    .await;
    let support::app::Setup { ctx, cfg, fx, op, api } = s;
    op.stop().await;
    let owner = app_owner(&ctx.namespace, "web");
    assert_eq!(fixtures::owned_rules(&cfg, &fx.alb.listener_arn, &owner).await.len(), 1, "the lost create made a rule");
    let op = support::operator::InProcessOperator::start(&ctx).await;
    let s = support::app::Setup { ctx, cfg, fx, op, api };
    s.merge_patch("web", &json!({"spec": {"loadBalancer": {"listenerRule": {"listenerArn": other.listener_arn}}}}))
        .await;
    let app = wait_synced(&s.api, "web").await;
    assert!(fixtures::owned_rules(&s.cfg, &s.fx.alb.listener_arn, &owner).await.is_empty(), "none on the old one");
    assert_eq!(fixtures::owned_rules(&s.cfg, &other.listener_arn, &owner).await.len(), 1);
    assert!(status_of(&app).resources.iter().all(|r| !r.id.starts_with("planned:")), "{:?}", status_of(&app));
    delete_and_check_nothing_left(&s, "web", &[&s.fx.alb.listener_arn, &other.listener_arn], &["web.apps.example.com"])
        .await;
    s.finish().await;
}

/// The operator of `s` stopped, `patch` merged into the app's spec while none runs, and another
/// operator started with `faults` (the apiserver and AWS keep everything).
async fn restart_operator_after(s: Setup, patch: serde_json::Value, faults: &str) -> Setup {
    let Setup { ctx, cfg, fx, op, api } = s;
    op.stop().await;
    let patch = json!({ "spec": patch });
    api.patch("web", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch)).await.expect("patch");
    let op = support::operator::InProcessOperator::start_with_faults(&ctx, faults).await;
    Setup { ctx, cfg, fx, op, api }
}

/// A record re-pointed to another load balancer whose UPSERT executed but whose answer was lost,
/// then moved back before any pass confirmed it: the inventory names both targets from before the
/// change was sent, so the record is still ours and is re-pointed back, not a NameConflict.
#[tokio::test]
async fn a_record_re_point_whose_answer_was_lost_then_moved_back_is_still_ours() {
    let s = Setup::new("fa-edit-lostupsert").await;
    let other = fixtures::alb(&s.cfg, &s.fx.net, "other").await;
    let first = s.fx.alb.listener_arn.clone();
    s.create(s.app_json("web")).await;
    wait_synced(&s.api, "web").await;
    // The move is the new operator's first pass: its UPSERT executes, the answer is lost and every
    // retry fails; every pass after it fails at the target group step, before it could see where
    // the record points and record that.
    let to_other = json!({"loadBalancer": {"listenerRule": {"listenerArn": other.listener_arn}}});
    let faults = "ChangeResourceRecordSets=lost@1,ChangeResourceRecordSets=5xx>1,DescribeTargetGroups=5xx>1";
    let s = restart_operator_after(s, to_other, faults).await;
    let moved = fixtures::normalize_dns(&other.dns_name);
    support::poll_aws("the lost UPSERT executed", std::time::Duration::from_millis(200), || {
        let s = &s;
        let moved = moved.clone();
        async move {
            match record_target(s, "web.apps.example.com", "A").await {
                Some(t) if t == moved => Ok(()),
                other => Err(format!("record points at {other:?}")),
            }
        }
    })
    .await;
    support::app::wait_app(&s.api, "web", "the pass failed after the lost UPSERT", |a| {
        a.status
            .as_ref()
            .and_then(|st| st.last_error.as_ref())
            .is_some_and(|e| e.operation.contains("ChangeResourceRecordSets"))
    })
    .await;
    let back = json!({"loadBalancer": {"listenerRule": {"listenerArn": first}}});
    let s = restart_operator_after(s, back, "").await;
    let app = wait_synced(&s.api, "web").await;
    assert_eq!(
        record_target(&s, "web.apps.example.com", "A").await,
        Some(fixtures::normalize_dns(&s.fx.alb.dns_name)),
        "the record points back at the first load balancer"
    );
    let records = entries(&app, "Record");
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].parent, None, "the confirmed record names one target");
    delete_and_check_nothing_left(&s, "web", &[&first, &other.listener_arn], &["web.apps.example.com"]).await;
    s.finish().await;
}

/// A re-point that never reached Route 53, then the app deleted while no operator ran: the record
/// still points at the old load balancer, which the inventory names from before the change was
/// sent, so deletion removes it instead of leaving it behind as someone else's.
#[tokio::test]
async fn a_record_re_point_that_never_landed_is_still_deleted_with_the_app() {
    let s = Setup::new("fa-edit-failedupsert").await;
    let other = fixtures::alb(&s.cfg, &s.fx.net, "other").await;
    let first = s.fx.alb.listener_arn.clone();
    s.create(s.app_json("web")).await;
    wait_synced(&s.api, "web").await;
    let to_other = json!({"loadBalancer": {"listenerRule": {"listenerArn": other.listener_arn}}});
    let s = restart_operator_after(s, to_other, "ChangeResourceRecordSets=5xx>0").await;
    support::app::wait_app(&s.api, "web", "the UPSERT refused", |a| {
        a.status
            .as_ref()
            .and_then(|st| st.last_error.as_ref())
            .is_some_and(|e| e.operation.contains("ChangeResourceRecordSets"))
    })
    .await;
    assert_eq!(
        record_target(&s, "web.apps.example.com", "A").await,
        Some(fixtures::normalize_dns(&s.fx.alb.dns_name)),
        "the record still points at the first load balancer"
    );
    let Setup { ctx, cfg, fx, op, api } = s;
    op.stop().await;
    let uid = api.get("web").await.expect("get").uid().expect("uid");
    api.delete("web", &DeleteParams::default()).await.expect("delete");
    let op = support::operator::InProcessOperator::start(&ctx).await;
    let s = Setup { ctx, cfg, fx, op, api };
    wait_deleted(&s.api, "web", &uid).await;
    nothing_left(&s.cfg, &s.ctx.namespace, "web", &[&first, &other.listener_arn]).await;
    assert_eq!(record_types(&s, "web.apps.example.com").await, Vec::<String>::new(), "the record is deleted");
    s.finish().await;
}

/// On API servers without CEL (before Kubernetes 1.25) a `spec.aws` edit reaches the operator: the
/// app says it cannot move (its objects are reached only with the credentials they were made
/// with), makes nothing in the new region, and its deletion still removes everything where it is.
#[tokio::test]
async fn a_changed_spec_aws_is_refused_and_deletion_uses_the_recorded_one() {
    let s = Setup::new("fa-edit-awsscope").await;
    s.create(s.app_json("web")).await;
    let app = wait_synced(&s.api, "web").await;
    assert_eq!(status_of(&app).aws, Some(s.ctx.aws_override()), "status.aws records what the objects were made with");
    let moved = fargate_operator::api::AwsOverride { region: Some("us-west-2".into()), ..s.ctx.aws_override() };
    s.merge_patch("web", &json!({"spec": {"aws": moved}})).await;
    let app = wait_condition(&s.api, "web", "Degraded", "True", Some("AwsScopeChanged")).await;
    let message = status_of(&app).last_error.map(|e| e.message).unwrap_or_default();
    assert!(message.starts_with("spec.aws: changed to role"), "{message}");
    assert_eq!(status_of(&app).aws, Some(s.ctx.aws_override()), "the recorded scope is kept");
    let west = s.ctx.aws.config_for(Some(&moved)).await;
    let owner = app_owner(&s.ctx.namespace, "web");
    // (No ECS cluster exists there, so no service could be.)
    assert!(fixtures::owned_target_groups(&west, &owner).await.is_empty(), "nothing is made in the new region");
    let first = s.fx.alb.listener_arn.clone();
    delete_and_check_nothing_left(&s, "web", &[&first], &["web.apps.example.com"]).await;
    s.finish().await;
}

#[tokio::test]
async fn a_new_rule_that_would_take_another_apps_requests_is_refused_until_narrowed() {
    let s = Setup::new("fa-rule-overlap").await;
    s.create(s.app_json("web")).await;
    wait_synced(&s.api, "web").await;
    let listener = s.fx.alb.listener_arn.clone();
    let owner = app_owner(&s.ctx.namespace, "greedy");

    // `/*` without a host condition would take web's `/app/*` requests at a better priority.
    let mut greedy = s.app_json("greedy");
    greedy["spec"]["loadBalancer"]["listenerRule"]["pathPatterns"] = json!(["/*"]);
    s.create(greedy).await;
    let app = wait_condition(&s.api, "greedy", "Degraded", "True", Some("RuleOverlap")).await;
    let message = app
        .status
        .as_ref()
        .and_then(|st| st.conditions.iter().find(|c| c.type_ == "Degraded"))
        .map(|c| c.message.clone());
    let message = message.unwrap_or_default();
    assert!(message.contains("spec.loadBalancer.listenerRule") && message.contains("/app/*"), "{message}");
    assert!(fixtures::owned_rules(&s.cfg, &listener, &owner).await.is_empty(), "no rule was made");

    // Narrowed so the two cannot match one request: made.
    let app = edit(&s, "greedy", json!({"loadBalancer": {"listenerRule": {"pathPatterns": ["/api/*"]}}})).await;
    assert_eq!(fixtures::owned_rules(&s.cfg, &listener, &owner).await.len(), 1);
    assert_eq!(entries(&app, "ListenerRule").len(), 1);

    // Widened again: refused, and the rule keeps serving its narrow paths.
    s.merge_patch("greedy", &json!({"spec": {"loadBalancer": {"listenerRule": {"pathPatterns": ["/*"]}}}})).await;
    wait_condition(&s.api, "greedy", "Degraded", "True", Some("RuleOverlap")).await;
    let rules = fixtures::owned_rules(&s.cfg, &listener, &owner).await;
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].path_patterns, BTreeSet::from(["/api/*".to_string()]), "the rule is not widened");

    delete_and_check_nothing_left(&s, "greedy", &[&listener], &["greedy.apps.example.com"]).await;
    delete_and_check_nothing_left(&s, "web", &[&listener], &["web.apps.example.com"]).await;
    s.finish().await;
}

#[tokio::test]
async fn a_record_name_outside_its_zone_is_refused_before_anything_is_made_or_deleted() {
    let s = Setup::new("fa-zone-name").await;
    let listener = s.fx.alb.listener_arn.clone();
    let mut app = s.app_json("web");
    app["spec"]["dns"]["name"] = json!("web.example.org");
    s.create(app).await;
    let refused = wait_condition(&s.api, "web", "Degraded", "True", Some("InvalidSpec")).await;
    let message = condition(&refused, "Degraded").map(|c| c.message.clone()).unwrap_or_default();
    assert!(message.contains("spec.dns.name") && message.contains("apps.example.com"), "{message}");
    nothing_left(&s.cfg, &s.ctx.namespace, "web", &[&listener]).await;

    // Fixed: made. Then renamed out of the zone again: refused, and nothing is deleted.
    edit(&s, "web", json!({"dns": {"name": "web.apps.example.com"}})).await;
    assert_eq!(record_types(&s, "web.apps.example.com").await, ["A"]);
    s.merge_patch("web", &json!({"spec": {"dns": {"name": "www.example.org"}}})).await;
    wait_condition(&s.api, "web", "Degraded", "True", Some("InvalidSpec")).await;
    assert_eq!(record_types(&s, "web.apps.example.com").await, ["A"], "the record is kept");
    assert_eq!(fixtures::owned_rules(&s.cfg, &listener, &app_owner(&s.ctx.namespace, "web")).await.len(), 1);

    delete_and_check_nothing_left(&s, "web", &[&listener], &["web.apps.example.com"]).await;
    s.finish().await;
}
