//! DnsFailover against moto and the real apiserver: health checks, the record pair, the manual DR
//! switch, validation against the zone, zero writes when converged, and deletion.

mod support;

use std::time::Duration;

use aws_sdk_route53::types::{HealthCheckConfig, ResourceRecordSet};
use fargate_operator::api::DnsFailover;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use serde_json::json;
use support::operator::InProcessOperator;
use support::{TestCtx, fixtures};

const WAIT: Duration = Duration::from_secs(60);

struct Setup {
    ctx: TestCtx,
    r53: aws_sdk_route53::Client,
    zone: String,
    op: InProcessOperator,
    api: Api<DnsFailover>,
}

impl Setup {
    async fn new(name: &str) -> Self {
        Self::with_faults(name, "").await
    }

    async fn with_faults(name: &str, faults: &str) -> Self {
        let ctx = TestCtx::new(name).await;
        let cfg = ctx.sdk_config().await;
        let zone = fixtures::hosted_zone(&cfg, "acs.app.com").await;
        let op = InProcessOperator::start_with_faults(&ctx, faults).await;
        let api = Api::namespaced(ctx.client.clone(), &ctx.namespace);
        Self { r53: aws_sdk_route53::Client::new(&cfg), ctx, zone, op, api }
    }

    fn manifest(&self, name: &str, record: &str) -> DnsFailover {
        let mut v = support::yaml_docs("examples/dnsfailover.yaml").remove(0);
        v["metadata"] = json!({"name": name});
        v["spec"]["hostedZoneId"] = json!(self.zone);
        v["spec"]["name"] = json!(record);
        v["spec"].as_object_mut().expect("spec").remove("delegation");
        v["spec"]["aws"] = serde_json::to_value(self.ctx.aws_override()).expect("aws");
        serde_json::from_value(v).expect("DnsFailover")
    }

    async fn wait(&self, name: &str, type_: &'static str, status: &'static str) -> DnsFailover {
        let cond = move |o: Option<&DnsFailover>| {
            o.is_some_and(|o| {
                let st = o.status.as_ref();
                st.and_then(|s| s.observed_generation) == o.metadata.generation
                    && st.is_some_and(|s| s.conditions.iter().any(|c| c.type_ == type_ && c.status == status))
            })
        };
        tokio::time::timeout(WAIT, await_condition(self.api.clone(), name, cond))
            .await
            .unwrap_or_else(|_| panic!("{name}: {type_}={status} not reached"))
            .expect("watch")
            .expect("object")
    }

    async fn records(&self, record: &str) -> Vec<ResourceRecordSet> {
        let cfg = self.ctx.sdk_config().await;
        fixtures::records_named(&cfg, &self.zone, record).await
    }

    async fn health_check(&self, id: &str) -> Option<HealthCheckConfig> {
        match self.r53.get_health_check().health_check_id(id).send().await {
            Ok(r) => r.health_check().and_then(|h| h.health_check_config()).cloned(),
            Err(_) => None,
        }
    }

    /// Delete `dev` (the object every test names so), check that neither a record at `record` nor a
    /// health check of ours is left, and end the test.
    async fn finish_deleted(self, record: &str) {
        let uid = self.api.get("dev").await.expect("get dev").uid().expect("uid");
        self.delete_and_wait("dev", &uid).await;
        assert!(self.records(record).await.is_empty(), "records left at {record}");
        assert_eq!(self.our_health_checks().await, 0, "health checks left");
        self.op.stop().await;
        self.ctx.cleanup().await;
    }

    /// Delete `name` and wait until it is gone (its finalizer removed).
    async fn delete_and_wait(&self, name: &str, uid: &str) {
        self.api.delete(name, &DeleteParams::default()).await.expect("delete");
        tokio::time::timeout(WAIT, await_condition(self.api.clone(), name, conditions::is_deleted(uid)))
            .await
            .unwrap_or_else(|_| panic!("{name} not deleted within {WAIT:?}"))
            .expect("watch");
    }

    async fn our_health_checks(&self) -> usize {
        let all = self.r53.list_health_checks().send().await.expect("list health checks");
        all.health_checks()
            .iter()
            .filter(|h| h.caller_reference().contains("-primary-") || h.caller_reference().contains("-secondary-"))
            .count()
    }
}

fn primary_id(o: &DnsFailover) -> String {
    o.status.as_ref().and_then(|s| s.health_checks.as_ref()).map(|h| h.primary.id.clone()).unwrap_or_default()
}

#[tokio::test]
async fn example_creates_the_pair_and_mode_switches_through_the_health_check_only() {
    let s = Setup::new("dnsf-example").await;
    s.api.create(&PostParams::default(), &s.manifest("dev", "dev.acs.app.com")).await.expect("create");
    let o = s.wait("dev", "Synced", "True").await;
    let hc_id = primary_id(&o);
    assert!(!hc_id.is_empty(), "status.healthChecks.primary.id");

    let records = s.records("dev.acs.app.com").await;
    assert_eq!(records.len(), 2, "{records:?}");
    let primary = records.iter().find(|r| r.failover().map(|f| f.as_str()) == Some("PRIMARY")).expect("PRIMARY");
    let secondary = records.iter().find(|r| r.failover().map(|f| f.as_str()) == Some("SECONDARY")).expect("SECONDARY");
    assert_eq!(primary.r#type().as_str(), "CNAME");
    assert_eq!(primary.ttl(), Some(60));
    assert_eq!(primary.health_check_id(), Some(hc_id.as_str()));
    assert_eq!(fixtures::normalize_dns(primary.resource_records()[0].value()), "lb.dev.app.com");
    assert_eq!(fixtures::normalize_dns(secondary.resource_records()[0].value()), "lb.drdev.app.com");
    assert!(secondary.health_check_id().is_none(), "the example's secondary has no check");
    assert_eq!(s.our_health_checks().await, 1);

    // The shared poller reads the check (moto always reports success): primary healthy and active.
    let o = s.wait("dev", "PrimaryHealthy", "True").await;
    let active = serde_json::to_value(o.status.as_ref().and_then(|s| s.active_target)).expect("json");
    assert_eq!(active, json!("primary"));
    assert!(
        o.status.as_ref().is_some_and(|s| s.conditions.iter().any(|c| c.type_ == "FailedOver" && c.status == "False"))
    );
    let hc = s.health_check(&hc_id).await.expect("health check");
    assert_eq!(hc.r#type().as_str(), "HTTPS");
    assert_eq!(hc.resource_path(), Some("/app/health"));
    assert_eq!(hc.fully_qualified_domain_name(), Some("lb.dev.app.com"));
    assert_eq!((hc.port(), hc.request_interval(), hc.failure_threshold()), (Some(443), Some(30), Some(3)));
    assert_eq!((hc.disabled(), hc.inverted()), (Some(false), Some(false)));

    // Converged: no Route 53 writes on the next resyncs (resync is 10 s).
    let m = &s.op.metrics;
    let writes = |m: &fargate_operator::runtime::metrics::Metrics| {
        [
            "ChangeResourceRecordSets",
            "CreateHealthCheck",
            "UpdateHealthCheck",
            "DeleteHealthCheck",
            "ChangeTagsForResource",
        ]
        .iter()
        .map(|op| m.aws_call_count("route53", op, "success"))
        .sum::<u64>()
    };
    let before = (writes(m), m.aws_call_count("route53", "GetHealthCheck", "success"));
    let deadline = std::time::Instant::now() + WAIT;
    while m.aws_call_count("route53", "GetHealthCheck", "success") < before.1 + 2 {
        assert!(std::time::Instant::now() < deadline, "no resync within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(writes(m), before.0, "a converged DnsFailover makes no Route 53 writes");

    // The DR switch: health check flags change, records do not.
    for (mode, disabled, inverted, active) in [
        ("ForceSecondary", true, true, "secondary"),
        ("ForcePrimary", true, false, "primary"),
        ("Auto", false, false, "primary"),
    ] {
        let patched = s
            .api
            .patch("dev", &PatchParams::default(), &Patch::Merge(json!({"spec": {"mode": mode}})))
            .await
            .expect("patch");
        let o = s.wait("dev", "Synced", "True").await;
        assert_eq!(o.metadata.generation, patched.metadata.generation);
        let hc = s.health_check(&hc_id).await.expect("same health check");
        assert_eq!((hc.disabled(), hc.inverted()), (Some(disabled), Some(inverted)), "{mode}");
        assert_eq!(primary_id(&o), hc_id, "{mode}: the switch updates the check in place");
        assert_eq!(s.records("dev.acs.app.com").await, records, "{mode}: records untouched");
        let active_now = serde_json::to_value(o.status.as_ref().and_then(|s| s.active_target)).expect("json");
        assert_eq!(active_now, json!(active), "{mode}");
    }

    // Delete: no record and no health check left.
    s.finish_deleted("dev.acs.app.com").await;
}

#[tokio::test]
async fn apex_and_foreign_records_are_refused() {
    let s = Setup::new("dnsf-refused").await;
    s.api.create(&PostParams::default(), &s.manifest("apex", "acs.app.com")).await.expect("create apex");
    let o = s.wait("apex", "Degraded", "True").await;
    let c = o.status.as_ref().and_then(|s| s.conditions.iter().find(|c| c.type_ == "Degraded")).expect("Degraded");
    assert_eq!(c.reason, "InvalidSpec");
    assert!(c.message.contains("spec.name") && c.message.contains("apex"), "{}", c.message);

    // Someone else's plain CNAME at the name.
    let foreign = ResourceRecordSet::builder()
        .name("taken.acs.app.com.")
        .r#type(aws_sdk_route53::types::RrType::Cname)
        .ttl(300)
        .resource_records(
            aws_sdk_route53::types::ResourceRecord::builder().value("elsewhere.example.com").build().expect("rr"),
        )
        .build()
        .expect("set");
    let change = aws_sdk_route53::types::Change::builder()
        .action(aws_sdk_route53::types::ChangeAction::Create)
        .resource_record_set(foreign)
        .build()
        .expect("change");
    s.r53
        .change_resource_record_sets()
        .hosted_zone_id(&s.zone)
        .change_batch(aws_sdk_route53::types::ChangeBatch::builder().changes(change).build().expect("batch"))
        .send()
        .await
        .expect("foreign record");
    s.api.create(&PostParams::default(), &s.manifest("taken", "taken.acs.app.com")).await.expect("create taken");
    let o = s.wait("taken", "Degraded", "True").await;
    let c = o.status.as_ref().and_then(|s| s.conditions.iter().find(|c| c.type_ == "Degraded")).expect("Degraded");
    assert_eq!(c.reason, "NameConflict");
    assert_eq!(s.records("taken.acs.app.com").await.len(), 1, "the foreign record is untouched");

    // Invalid without any AWS fact (the test apiserver drops the CEL rule that says so): refused
    // before any call, Synced=False naming the field, and fixed by an edit.
    let mut same = s.manifest("same", "same.acs.app.com");
    same.spec.secondary.target = same.spec.primary.target.clone();
    s.api.create(&PostParams::default(), &same).await.expect("create same");
    let o = s.wait("same", "Synced", "False").await;
    let c = o.status.as_ref().and_then(|s| s.conditions.iter().find(|c| c.type_ == "Degraded")).expect("Degraded");
    assert_eq!(c.reason, "InvalidSpec");
    assert!(c.message.contains("spec.secondary.target"), "{}", c.message);
    assert!(s.records("same.acs.app.com").await.is_empty());
    assert_eq!(s.our_health_checks().await, 0, "nothing is created for a refused object");
    let fixed = serde_json::json!({"spec": {"secondary": {"target": "other.example.net"}}});
    s.api.patch("same", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&fixed)).await.expect("fix");
    s.wait("same", "Synced", "True").await;
    assert_eq!(s.records("same.acs.app.com").await.len(), 2, "the pair, once the spec is valid");
    s.op.stop().await;
    s.ctx.cleanup().await;
}

#[tokio::test]
async fn delegation_writes_the_parent_ns_record_and_removes_it_on_delete() {
    let s = Setup::new("dnsf-delegation").await;
    let cfg = s.ctx.sdk_config().await;
    let parent = fixtures::hosted_zone(&cfg, "app.com").await;
    let zone = s.r53.get_hosted_zone().id(&s.zone).send().await.expect("zone");
    let mut servers: Vec<String> = zone
        .delegation_set()
        .expect("delegation set")
        .name_servers()
        .iter()
        .map(|n| fixtures::normalize_dns(n))
        .collect();
    servers.sort();
    assert!(!servers.is_empty());

    let mut m = s.manifest("dev", "dev.acs.app.com");
    m.spec.delegation =
        Some(serde_json::from_value(json!({"parentHostedZoneId": parent, "ttl": 3600})).expect("delegation"));
    s.api.create(&PostParams::default(), &m).await.expect("create");
    let o = s.wait("dev", "DelegationReady", "True").await;
    let d = o.status.as_ref().and_then(|s| s.delegation.clone()).expect("status.delegation");
    assert_eq!(d.name_servers, servers);
    assert!(d.in_sync);
    let ns = fixtures::records_named(&cfg, &parent, "acs.app.com").await;
    let ns: Vec<_> = ns.into_iter().filter(|r| r.r#type().as_str() == "NS").collect();
    assert_eq!(ns.len(), 1, "{ns:?}");
    assert_eq!(ns[0].ttl(), Some(3600));
    let mut values: Vec<String> = ns[0].resource_records().iter().map(|v| fixtures::normalize_dns(v.value())).collect();
    values.sort();
    assert_eq!(values, servers, "the parent delegates to the zone's own name servers");

    let uid = o.uid().expect("uid");
    s.delete_and_wait("dev", &uid).await;
    let left: Vec<_> = fixtures::records_named(&cfg, &parent, "acs.app.com")
        .await
        .into_iter()
        .filter(|r| r.r#type().as_str() == "NS")
        .collect();
    assert!(left.is_empty(), "the delegation goes with the object: {left:?}");
    s.op.stop().await;
    s.ctx.cleanup().await;
}

/// Two DnsFailovers delegating one sub-zone: the second is refused before it writes, and deleting
/// it leaves the first one's delegation in place.
#[tokio::test]
async fn a_second_delegation_of_one_zone_is_refused_and_its_deletion_leaves_the_first() {
    let s = Setup::new("dnsf-delegation-twice").await;
    let cfg = s.ctx.sdk_config().await;
    let parent = fixtures::hosted_zone(&cfg, "app.com").await;
    let delegating = |name: &str, record: &str| {
        let mut m = s.manifest(name, record);
        m.spec.delegation =
            Some(serde_json::from_value(json!({"parentHostedZoneId": parent, "ttl": 3600})).expect("delegation"));
        m
    };
    let ns_records = || async {
        fixtures::records_named(&cfg, &parent, "acs.app.com")
            .await
            .into_iter()
            .filter(|r| r.r#type().as_str() == "NS")
            .count()
    };
    let refused = |o: &DnsFailover| {
        let degraded = o.status.as_ref().and_then(|st| st.conditions.iter().find(|c| c.type_ == "Degraded")).cloned();
        let degraded = degraded.expect("Degraded");
        assert_eq!(degraded.reason, "DelegationInUse");
        assert!(
            degraded.message.contains("spec.delegation") && degraded.message.contains("/dev"),
            "{}",
            degraded.message
        );
        assert!(
            !o.status.as_ref().is_some_and(|st| st.resources.iter().any(|r| r.id.contains("/NS"))),
            "the refused object never records the delegation as its own"
        );
    };
    // `old` exists first, without a delegation.
    s.api.create(&PostParams::default(), &s.manifest("old", "old.acs.app.com")).await.expect("create old");
    s.wait("old", "Synced", "True").await;
    s.api.create(&PostParams::default(), &delegating("dev", "dev.acs.app.com")).await.expect("create dev");
    s.wait("dev", "DelegationReady", "True").await;
    // A newer object asking for the same delegation is refused...
    s.api.create(&PostParams::default(), &delegating("prod", "prod.acs.app.com")).await.expect("create prod");
    let prod = s.wait("prod", "Degraded", "True").await;
    refused(&prod);
    // ...and so is an older one whose spec gains it later: the object that records it keeps it.
    s.api
        .replace("old", &PostParams::default(), &{
            let mut o = delegating("old", "old.acs.app.com");
            o.metadata.resource_version = s.api.get("old").await.expect("old").metadata.resource_version;
            o
        })
        .await
        .expect("edit old");
    let old = s.wait("old", "Degraded", "True").await;
    refused(&old);

    s.delete_and_wait("prod", &prod.uid().expect("uid")).await;
    s.delete_and_wait("old", &old.uid().expect("uid")).await;
    assert_eq!(ns_records().await, 1, "deleting the refused objects leaves the delegation");
    let dev = s.api.get("dev").await.expect("dev");
    s.delete_and_wait("dev", &dev.uid().expect("uid")).await;
    assert_eq!(ns_records().await, 0, "the delegation goes with the object that manages it");
    s.op.stop().await;
    s.ctx.cleanup().await;
}

/// 300 DnsFailovers in one zone: their record pairs travel in a handful of ChangeBatches.
#[tokio::test]
async fn three_hundred_objects_in_one_zone_share_a_few_change_batches() {
    let ctx = TestCtx::new("dnsf-batch").await;
    let cfg = ctx.sdk_config().await;
    let zone = fixtures::hosted_zone(&cfg, "acs.app.com").await;
    // A generous budget: this measures batching, not the rate limiter (at AWS's CreateHealthCheck
    // quota, 0.5/s after a burst of 50, 300 checks take 8 minutes).
    let op = InProcessOperator::start_with(&ctx, "", &["--route53-rps", "2000", "--aws-quota-scale", "100"]).await;
    let api: Api<DnsFailover> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let s = Setup { r53: aws_sdk_route53::Client::new(&cfg), ctx, zone, op, api };
    const N: usize = 300;
    let objects: Vec<DnsFailover> =
        (0..N).map(|i| s.manifest(&format!("d{i}"), &format!("d{i}.acs.app.com"))).collect();
    let pp = PostParams::default();
    futures::future::join_all(objects.iter().map(|o| s.api.create(&pp, o))).await.into_iter().for_each(|r| {
        r.expect("create");
    });
    for i in 0..N {
        s.wait(&format!("d{i}"), "Synced", "True").await;
    }
    let calls = s.op.metrics.aws_call_count("route53", "ChangeResourceRecordSets", "success");
    eprintln!("{calls} ChangeResourceRecordSets calls for {N} objects");
    assert!(calls >= 1);
    // One call per object without batching. How many batches there are depends on how far apart
    // the 300 first passes land (a batch goes out at most 2 s after its first change), i.e. on the
    // machine's speed and load: 15 on an idle CI machine, 19 under a parallel build. `make bench`
    // reports the number; this checks that batching happens at all (10+ changes per call).
    assert!(calls as usize * 100 <= N * 10, "{calls} ChangeResourceRecordSets calls for {N} objects (want <= 10%)");
    let all = fixtures::records(&cfg, &s.zone).await;
    let pairs = all.iter().filter(|r| r.r#type().as_str() == "CNAME").count();
    assert_eq!(pairs, 2 * N, "every object got its PRIMARY and SECONDARY record");
    s.op.stop().await;
    s.ctx.cleanup().await;
}

/// The request interval cannot change in place: a new check replaces the old one, the record points
/// at it, and the old one is deleted.
#[tokio::test]
async fn interval_change_replaces_the_health_check() {
    let s = Setup::new("dnsf-replace").await;
    s.api.create(&PostParams::default(), &s.manifest("dev", "dev.acs.app.com")).await.expect("create");
    let o = s.wait("dev", "Synced", "True").await;
    let old_id = primary_id(&o);
    let patched = s
        .api
        .patch(
            "dev",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"primary": {"healthCheck": {"requestIntervalSeconds": 10}}}})),
        )
        .await
        .expect("patch");
    let o = s.wait("dev", "Synced", "True").await;
    assert_eq!(o.metadata.generation, patched.metadata.generation);
    let new_id = primary_id(&o);
    assert_ne!(new_id, old_id, "a new check");
    assert_eq!(s.health_check(&new_id).await.and_then(|h| h.request_interval()), Some(10));
    assert!(s.health_check(&old_id).await.is_none(), "the old check is deleted");
    assert_eq!(s.our_health_checks().await, 1);
    let records = s.records("dev.acs.app.com").await;
    let primary = records.iter().find(|r| r.failover().map(|f| f.as_str()) == Some("PRIMARY")).expect("PRIMARY");
    assert_eq!(primary.health_check_id(), Some(new_id.as_str()), "the record points at the new check");
    s.op.stop().await;
    s.ctx.cleanup().await;
}

/// CreateHealthCheck takes no tags: the check made by a create whose response was lost, or whose
/// tagging call failed, is found by its CallerReference and still gets the owner tags (found by the
/// chaos run: such checks were invisible to an audit by owner tag).
#[tokio::test]
async fn a_lost_create_or_a_failed_tagging_still_ends_with_one_tagged_check() {
    for (case, faults) in [("lost", "CreateHealthCheck=lost@1"), ("tagging", "ChangeTagsForResource=throttle@1")] {
        let s = Setup::with_faults(&format!("dnsf-tag-{case}"), faults).await;
        s.api.create(&PostParams::default(), &s.manifest("dev", "dev.acs.app.com")).await.expect("create");
        let o = s.wait("dev", "Synced", "True").await;
        let id = primary_id(&o);
        assert_eq!(s.our_health_checks().await, 1, "{case}: one check");
        let tags = s
            .r53
            .list_tags_for_resource()
            .resource_type(aws_sdk_route53::types::TagResourceType::Healthcheck)
            .resource_id(&id)
            .send()
            .await
            .expect("tags");
        let owner = tags
            .resource_tag_set()
            .map(|t| t.tags())
            .unwrap_or_default()
            .iter()
            .find(|t| t.key() == Some("fargate.operator.dev/owner"))
            .and_then(|t| t.value().map(str::to_string));
        assert_eq!(owner, Some(format!("{}/DnsFailover/dev", s.ctx.namespace)), "{case}: owner tag on {id}");
        s.op.stop().await;
        s.ctx.cleanup().await;
    }
}

/// The kinds and ids of `status.resources`.
fn inventory(o: &DnsFailover) -> Vec<(String, String)> {
    o.status.as_ref().map(|s| s.resources.iter().map(|r| (r.type_.clone(), r.id.clone())).collect()).unwrap_or_default()
}

/// The NS records named `name` in `zone`.
async fn ns_records(s: &Setup, zone: &str, name: &str) -> usize {
    let cfg = s.ctx.sdk_config().await;
    fixtures::records_named(&cfg, zone, name).await.into_iter().filter(|r| r.r#type().as_str() == "NS").count()
}

#[tokio::test]
async fn renaming_the_record_and_removing_the_delegation_leave_nothing_behind() {
    let s = Setup::new("dnsf-edits").await;
    let cfg = s.ctx.sdk_config().await;
    let parent = fixtures::hosted_zone(&cfg, "app.com").await;
    let mut m = s.manifest("dev", "dev.acs.app.com");
    m.spec.delegation = Some(serde_json::from_value(json!({"parentHostedZoneId": parent})).expect("delegation"));
    s.api.create(&PostParams::default(), &m).await.expect("create");
    let o = s.wait("dev", "DelegationReady", "True").await;
    let inv = inventory(&o);
    assert!(inv.iter().any(|(t, id)| t == "HealthCheck" && *id == primary_id(&o)), "{inv:?}");
    assert_eq!(
        inv.iter().filter(|(t, id)| t == "Record" && id.contains("/dev.acs.app.com/CNAME/")).count(),
        2,
        "{inv:?}"
    );
    assert!(inv.iter().any(|(t, id)| t == "Record" && id.ends_with("/acs.app.com/NS")), "{inv:?}");

    // Rename: the pair moves, nothing of ours stays at the old name.
    s.api
        .patch("dev", &PatchParams::default(), &Patch::Merge(json!({"spec": {"name": "prod.acs.app.com"}})))
        .await
        .expect("rename");
    let o = s.wait("dev", "Synced", "True").await;
    assert!(s.records("dev.acs.app.com").await.is_empty(), "the old name's records are deleted");
    assert_eq!(s.records("prod.acs.app.com").await.len(), 2);
    assert!(inventory(&o).iter().all(|(_, id)| !id.contains("/dev.acs.app.com/")), "{:?}", inventory(&o));

    // Removing the delegation removes the parent's NS record.
    s.api
        .patch("dev", &PatchParams::default(), &Patch::Merge(json!({"spec": {"delegation": null}})))
        .await
        .expect("remove delegation");
    let o = s.wait("dev", "Synced", "True").await;
    assert_eq!(ns_records(&s, &parent, "acs.app.com").await, 0, "the delegation is removed from the parent");
    assert!(inventory(&o).iter().all(|(_, id)| !id.ends_with("/NS")), "{:?}", inventory(&o));

    s.finish_deleted("prod.acs.app.com").await;
}

/// A check is replaced (its id in status changes) and then the record change fails: the old check
/// stays in the inventory and is deleted once the records point at the new one. Before the
/// inventory, its id was lost with that pass and the check leaked.
#[tokio::test]
async fn a_check_replaced_in_a_pass_whose_record_change_failed_is_still_deleted() {
    let s = Setup::with_faults("dnsf-replace-fail", "ChangeResourceRecordSets=5xx>1").await;
    s.api.create(&PostParams::default(), &s.manifest("dev", "dev.acs.app.com")).await.expect("create");
    let old_id = primary_id(&s.wait("dev", "Synced", "True").await);
    s.api
        .patch(
            "dev",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"primary": {"healthCheck": {"requestIntervalSeconds": 10}}}})),
        )
        .await
        .expect("patch");
    let old = old_id.clone();
    let replaced = move |o: Option<&DnsFailover>| o.is_some_and(|o| !primary_id(o).is_empty() && primary_id(o) != old);
    let o = tokio::time::timeout(WAIT, await_condition(s.api.clone(), "dev", replaced))
        .await
        .expect("the new check is in status")
        .expect("watch")
        .expect("object");
    assert!(inventory(&o).contains(&("HealthCheck".into(), old_id.clone())), "{:?}", inventory(&o));
    assert!(s.health_check(&old_id).await.is_some(), "the record still uses the old check");

    // The faults end (a new operator without them): the records move, then the old check goes.
    let Setup { ctx, r53, zone, op, api } = s;
    op.stop().await;
    let s = Setup { op: InProcessOperator::start(&ctx).await, ctx, r53, zone, api };
    let o = s.wait("dev", "Synced", "True").await;
    assert!(s.health_check(&old_id).await.is_none(), "the replaced check is deleted");
    assert_eq!(s.our_health_checks().await, 1);
    assert!(!inventory(&o).contains(&("HealthCheck".into(), old_id)));
    s.op.stop().await;
    s.ctx.cleanup().await;
}

#[tokio::test]
async fn moving_to_another_zone_moves_the_pair_and_the_delegation() {
    let s = Setup::new("dnsf-move").await;
    let cfg = s.ctx.sdk_config().await;
    let parent = fixtures::hosted_zone(&cfg, "app.com").await;
    let other = fixtures::hosted_zone(&cfg, "ops.app.com").await;
    let mut m = s.manifest("dev", "dev.acs.app.com");
    m.spec.delegation = Some(serde_json::from_value(json!({"parentHostedZoneId": parent})).expect("delegation"));
    s.api.create(&PostParams::default(), &m).await.expect("create");
    s.wait("dev", "DelegationReady", "True").await;
    assert_eq!(ns_records(&s, &parent, "acs.app.com").await, 1);

    s.api
        .patch(
            "dev",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"hostedZoneId": other, "name": "dev.ops.app.com"}})),
        )
        .await
        .expect("move");
    let o = s.wait("dev", "Synced", "True").await;
    assert!(s.records("dev.acs.app.com").await.is_empty(), "the old zone's pair is deleted");
    assert_eq!(fixtures::records_named(&cfg, &other, "dev.ops.app.com").await.len(), 2);
    assert_eq!(ns_records(&s, &parent, "acs.app.com").await, 0, "the old zone's delegation is deleted");
    assert_eq!(ns_records(&s, &parent, "ops.app.com").await, 1, "the new zone is delegated");
    assert!(inventory(&o).iter().all(|(_, id)| !id.contains("acs.app.com/")), "{:?}", inventory(&o));
    s.op.stop().await;
    s.ctx.cleanup().await;
}

/// A pass killed after it wrote the pair into a new zone, before its status write: the pair was
/// listed in the written inventory before the change was sent, so the next move deletes it. Found
/// by the simulator (a zone move, then `kill -9`): the pair stayed in the zone left behind.
#[tokio::test]
async fn a_pair_written_by_a_killed_pass_is_deleted_by_the_next_move() {
    let s = Setup::new("dnsf-killmove").await;
    let cfg = s.ctx.sdk_config().await;
    let other = fixtures::hosted_zone(&cfg, "ops.app.com").await;
    s.api.create(&PostParams::default(), &s.manifest("dev", "dev.acs.app.com")).await.expect("create");
    s.wait("dev", "Synced", "True").await;
    let Setup { ctx, r53, zone, op, api } = s;
    op.stop().await;
    // Every change after the first is throttled: the move's pass writes the pair into the new zone,
    // then retries deleting the old pair for seconds, and is killed meanwhile.
    let op = InProcessOperator::start_with_faults(&ctx, "ChangeResourceRecordSets=throttle>1").await;
    let to = |zone: &str, name: &str| Patch::Merge(json!({"spec": {"hostedZoneId": zone, "name": name}}));
    api.patch("dev", &PatchParams::default(), &to(&other, "dev.ops.app.com")).await.expect("move");
    support::poll_aws("the pair in the new zone", Duration::from_millis(50), || async {
        let n = fixtures::records_named(&cfg, &other, "dev.ops.app.com").await.len();
        if n == 2 { Ok(()) } else { Err(format!("{n} record(s)")) }
    })
    .await;
    op.kill().await;

    api.patch("dev", &PatchParams::default(), &to(&zone, "dev.acs.app.com")).await.expect("move back");
    let s = Setup { op: InProcessOperator::start(&ctx).await, ctx, r53, zone, api };
    s.wait("dev", "Synced", "True").await;
    let left = fixtures::records_named(&cfg, &other, "dev.ops.app.com").await;
    assert!(left.is_empty(), "the pair the killed pass wrote is deleted: {left:?}");
    assert_eq!(s.records("dev.acs.app.com").await.len(), 2);
    s.finish_deleted("dev.acs.app.com").await;
}

/// Route 53 refuses a deleted check's CallerReference for good (the test moto does too): a check
/// replaced and replaced back, or removed and re-added, gets a reference of its own each time.
#[tokio::test]
async fn a_check_replaced_back_or_re_added_gets_a_new_reference() {
    let s = Setup::new("dnsf-reref").await;
    s.api.create(&PostParams::default(), &s.manifest("dev", "dev.acs.app.com")).await.expect("create");
    let first = primary_id(&s.wait("dev", "Synced", "True").await);
    for interval in [10, 30] {
        let patch = json!({"spec": {"primary": {"healthCheck": {"requestIntervalSeconds": interval}}}});
        s.api.patch("dev", &PatchParams::default(), &Patch::Merge(patch)).await.expect("patch interval");
        s.wait("dev", "Synced", "True").await;
    }
    let back = primary_id(&s.wait("dev", "Synced", "True").await);
    assert_ne!(back, first, "30 -> 10 -> 30 ends on a new check");
    assert_eq!(s.health_check(&back).await.and_then(|h| h.request_interval()), Some(30));
    assert_eq!(s.our_health_checks().await, 1, "the replaced checks are deleted");

    // The secondary's check removed, then added back.
    let hc = json!({"type": "HTTPS", "path": "/health"});
    for secondary in [json!({"healthCheck": hc}), json!({"healthCheck": null}), json!({"healthCheck": hc})] {
        s.api
            .patch("dev", &PatchParams::default(), &Patch::Merge(json!({"spec": {"secondary": secondary}})))
            .await
            .expect("patch secondary");
        s.wait("dev", "Synced", "True").await;
    }
    assert_eq!(s.our_health_checks().await, 2, "one check per side, none left over");
    s.finish_deleted("dev.acs.app.com").await;
}

/// A GetChange that fails is the pass's error, named in `lastError`, not a change left PENDING
/// without a word. (The test moto answers every change INSYNC at once, so the PENDING change is
/// written into status as a slow Route 53 would have left it.)
#[tokio::test]
async fn a_failing_get_change_is_reported_not_swallowed() {
    let s = Setup::with_faults("dnsf-getchange", "GetChange=5xx%1").await;
    s.api.create(&PostParams::default(), &s.manifest("dev", "dev.acs.app.com")).await.expect("create");
    s.wait("dev", "Synced", "True").await;
    let pending = json!({"status": {"change": {"id": "/change/CPENDING0001", "status": "PENDING"}}});
    s.api.patch_status("dev", &PatchParams::default(), &Patch::Merge(pending)).await.expect("patch status");
    let cond = |o: Option<&DnsFailover>| {
        o.and_then(|o| o.status.as_ref()?.last_error.as_ref()).is_some_and(|e| e.operation.contains("GetChange"))
    };
    let app = tokio::time::timeout(WAIT, await_condition(s.api.clone(), "dev", cond))
        .await
        .expect("lastError names GetChange")
        .expect("watch")
        .expect("object");
    let st = app.status.expect("status");
    assert!(st.conditions.iter().any(|c| c.type_ == "Synced" && c.status == "False"), "{:?}", st.conditions);
    s.op.stop().await;
    s.ctx.cleanup().await;
}
