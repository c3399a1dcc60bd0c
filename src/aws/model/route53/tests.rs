//! The Route 53 behaviours moto does not show (or shows differently): list order, batch
//! atomicity and in-order validation, DELETE matching every field, change propagation on the
//! clock, CallerReference memory after a delete, HealthCheckInUse, checker reports, faults.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_route53::types::{
    AliasTarget, Change, ChangeAction, HealthCheckConfig, HealthCheckType, ResourceRecord, ResourceRecordSet,
    ResourceRecordSetFailover, RrType,
};

use super::*;
use crate::aws::model::FaultRates;

fn model() -> ModelRoute53 {
    ModelRoute53::new(7, FaultRates::default(), "123456789012", "us-east-1")
}

fn cname(name: &str, value: &str) -> ResourceRecordSet {
    ResourceRecordSet::builder()
        .name(name)
        .r#type(RrType::Cname)
        .ttl(60)
        .resource_records(ResourceRecord::builder().value(value).build().unwrap())
        .build()
        .unwrap()
}

fn a_record(name: &str, ip: &str) -> ResourceRecordSet {
    ResourceRecordSet::builder()
        .name(name)
        .r#type(RrType::A)
        .ttl(60)
        .resource_records(ResourceRecord::builder().value(ip).build().unwrap())
        .build()
        .unwrap()
}

fn alias(name: &str, zone: &str, target: &str) -> ResourceRecordSet {
    ResourceRecordSet::builder()
        .name(name)
        .r#type(RrType::A)
        .alias_target(
            AliasTarget::builder().hosted_zone_id(zone).dns_name(target).evaluate_target_health(true).build().unwrap(),
        )
        .build()
        .unwrap()
}

fn failover(name: &str, side: ResourceRecordSetFailover, value: &str, check: Option<&str>) -> ResourceRecordSet {
    let mut s = cname(name, value);
    s.set_identifier = Some(side.as_str().to_lowercase());
    s.failover = Some(side);
    s.health_check_id = check.map(str::to_string);
    s
}

fn ch(action: ChangeAction, set: ResourceRecordSet) -> Change {
    Change::builder().action(action).resource_record_set(set).build().unwrap()
}

fn http_check(fqdn: &str) -> HealthCheckConfig {
    HealthCheckConfig::builder()
        .r#type(HealthCheckType::Https)
        .fully_qualified_domain_name(fqdn)
        .resource_path("/h")
        .build()
        .unwrap()
}

fn code<T: std::fmt::Debug>(r: Result<T, Classified>) -> String {
    r.expect_err("an error").code
}

async fn names(m: &ModelRoute53, zone: &str) -> Vec<String> {
    let page = m.list_resource_record_sets(zone, &RecordStart::default(), 300).await.unwrap();
    page.record_sets.iter().map(|s| format!("{} {}", s.name(), s.r#type())).collect()
}

#[tokio::test]
async fn a_zone_starts_with_its_ns_and_soa_and_unknown_zones_are_no_such_hosted_zone() {
    let m = model();
    let z = m.create_zone("Example.com");
    assert!(z.id.starts_with("/hostedzone/Z"));
    assert_eq!(z.name, "example.com.");
    assert_eq!(z.name_servers.len(), 4);
    let got = m.get_hosted_zone(z.id.trim_start_matches("/hostedzone/")).await.unwrap();
    assert_eq!(got, z);
    assert_eq!(names(&m, &z.id).await, ["example.com. NS", "example.com. SOA"]);
    assert_eq!(code(m.get_hosted_zone("ZNOPE").await), "NoSuchHostedZone");
    assert_eq!(code(m.list_resource_record_sets("ZNOPE", &RecordStart::default(), 10).await), "NoSuchHostedZone");
}

#[tokio::test]
async fn records_list_by_reversed_labels_then_type_and_page_by_name_type_identifier() {
    let m = model();
    let z = m.create_zone("example.com.").id;
    let sets = [
        a_record("www.example.com", "10.0.0.1"),
        a_record("www-a.example.com", "10.0.0.2"),
        a_record("a.www.example.com", "10.0.0.3"),
        failover("f.example.com", ResourceRecordSetFailover::Secondary, "s.example.net", None),
        failover("f.example.com", ResourceRecordSetFailover::Primary, "p.example.net", None),
    ];
    let changes: Vec<Change> = sets.into_iter().map(|s| ch(ChangeAction::Create, s)).collect();
    m.change_resource_record_sets(&z, &changes).await.unwrap();
    // Keys keep the trailing dot (`com.example.www.`), so `www-a` (`-` sorts before `.`) comes
    // before `www`, and `www` before its child `a.www`.
    assert_eq!(
        names(&m, &z).await,
        [
            "example.com. NS",
            "example.com. SOA",
            "f.example.com. CNAME",
            "f.example.com. CNAME",
            "www-a.example.com. A",
            "www.example.com. A",
            "a.www.example.com. A",
        ]
    );
    // Paging: two at a time, continuing at (name, type, identifier).
    let mut start = RecordStart::default();
    let mut seen = Vec::new();
    loop {
        let page = m.list_resource_record_sets(&z, &start, 2).await.unwrap();
        seen.extend(page.record_sets.iter().map(|s| (s.name().to_string(), s.set_identifier().map(str::to_string))));
        match page.next {
            Some(n) => start = n,
            None => break,
        }
    }
    assert_eq!(seen.len(), 7);
    assert_eq!(seen[2], ("f.example.com.".into(), Some("primary".into())));
    assert_eq!(seen[3], ("f.example.com.".into(), Some("secondary".into())));
    // A start at a name and type finds that set first.
    let start = RecordStart { name: "www.example.com".into(), rtype: Some(RrType::A), identifier: None };
    let page = m.list_resource_record_sets(&z, &start, 1).await.unwrap();
    assert_eq!(page.record_sets[0].name(), "www.example.com.");
    assert_eq!(page.next.unwrap().name, "a.www.example.com.");
}

#[tokio::test]
async fn a_batch_applies_in_order_and_whole_or_not_at_all() {
    let m = model();
    let z = m.create_zone("example.com").id;
    m.change_resource_record_sets(&z, &[ch(ChangeAction::Create, cname("x.example.com", "a.example.net"))])
        .await
        .unwrap();
    // DELETE then CREATE of the same name in one batch: fine, since changes apply in order.
    let swap = [
        ch(ChangeAction::Delete, cname("x.example.com", "a.example.net")),
        ch(ChangeAction::Create, a_record("x.example.com", "10.0.0.9")),
    ];
    m.change_resource_record_sets(&z, &swap).await.unwrap();
    // A good change followed by a bad one: nothing lands.
    let before = m.record_sets(&z).unwrap();
    let bad = [
        ch(ChangeAction::Create, a_record("y.example.com", "10.0.0.1")),
        ch(ChangeAction::Create, a_record("x.example.com", "10.0.0.9")),
    ];
    assert_eq!(code(m.change_resource_record_sets(&z, &bad).await), "InvalidChangeBatch");
    assert_eq!(m.record_sets(&z).unwrap(), before);
    // A CNAME next to the A is refused; an UPSERT replaces.
    let conflict = [ch(ChangeAction::Create, cname("x.example.com", "b.example.net"))];
    assert_eq!(code(m.change_resource_record_sets(&z, &conflict).await), "InvalidChangeBatch");
    m.change_resource_record_sets(&z, &[ch(ChangeAction::Upsert, a_record("x.example.com", "10.0.0.7"))])
        .await
        .unwrap();
    let sets = m.record_sets(&z).unwrap();
    let x = sets.iter().find(|s| s.name() == "x.example.com.").unwrap();
    assert_eq!(x.resource_records()[0].value(), "10.0.0.7");
    // Outside the zone.
    let outside = [ch(ChangeAction::Create, a_record("x.example.org", "10.0.0.1"))];
    assert_eq!(code(m.change_resource_record_sets(&z, &outside).await), "InvalidChangeBatch");
}

#[tokio::test]
async fn delete_must_match_every_field() {
    let m = model();
    let z = m.create_zone("example.com").id;
    let check = m.create_health_check("r1", &http_check("p.example.net")).await.unwrap();
    let primary = failover("f.example.com", ResourceRecordSetFailover::Primary, "p.example.net", Some(&check));
    m.change_resource_record_sets(&z, &[ch(ChangeAction::Create, primary.clone())]).await.unwrap();
    let mut other_ttl = primary.clone();
    other_ttl.ttl = Some(300);
    let mut no_check = primary.clone();
    no_check.health_check_id = None;
    let mut other_value = primary.clone();
    other_value.resource_records = Some(vec![ResourceRecord::builder().value("q.example.net").build().unwrap()]);
    for wrong in [other_ttl, no_check, other_value] {
        assert_eq!(
            code(m.change_resource_record_sets(&z, &[ch(ChangeAction::Delete, wrong)]).await),
            "InvalidChangeBatch"
        );
    }
    // The apex SOA cannot go.
    let soa = m.record_sets(&z).unwrap().into_iter().find(|s| *s.r#type() == RrType::Soa).unwrap();
    assert_eq!(code(m.change_resource_record_sets(&z, &[ch(ChangeAction::Delete, soa)]).await), "InvalidChangeBatch");
    // Names compare without case or trailing dot.
    let mut upper = primary;
    upper.name = "F.Example.COM".into();
    m.change_resource_record_sets(&z, &[ch(ChangeAction::Delete, upper)]).await.unwrap();
}

#[tokio::test]
async fn failover_pairs_aliases_and_health_check_references_are_checked() {
    let m = model();
    let z = m.create_zone("example.com").id;
    let p = failover("f.example.com", ResourceRecordSetFailover::Primary, "p.example.net", None);
    let mut p2 = failover("f.example.com", ResourceRecordSetFailover::Primary, "q.example.net", None);
    p2.set_identifier = Some("other".into());
    let s = failover("f.example.com", ResourceRecordSetFailover::Secondary, "s.example.net", None);
    m.change_resource_record_sets(&z, &[ch(ChangeAction::Create, p), ch(ChangeAction::Create, s)]).await.unwrap();
    assert_eq!(code(m.change_resource_record_sets(&z, &[ch(ChangeAction::Create, p2)]).await), "InvalidChangeBatch");
    let plain = cname("f.example.com", "x.example.net");
    assert_eq!(code(m.change_resource_record_sets(&z, &[ch(ChangeAction::Create, plain)]).await), "InvalidChangeBatch");
    // Unknown health check.
    let with_check = failover("g.example.com", ResourceRecordSetFailover::Primary, "p.example.net", Some("nope"));
    assert_eq!(
        code(m.change_resource_record_sets(&z, &[ch(ChangeAction::Create, with_check)]).await),
        "NoSuchHealthCheck"
    );
    // Failover without identifier is malformed.
    let mut bare = cname("h.example.com", "p.example.net");
    bare.failover = Some(ResourceRecordSetFailover::Primary);
    assert_eq!(code(m.change_resource_record_sets(&z, &[ch(ChangeAction::Create, bare)]).await), "InvalidInput");
    // Aliases: into the zone itself must name an existing record of the type; into a registered
    // canonical zone must name a registered target; other canonical zones are not checked.
    let zid = z.trim_start_matches("/hostedzone/");
    let to_nothing = alias("al.example.com", zid, "missing.example.com");
    assert_eq!(
        code(m.change_resource_record_sets(&z, &[ch(ChangeAction::Create, to_nothing)]).await),
        "InvalidChangeBatch"
    );
    let inner = [
        ch(ChangeAction::Create, a_record("t.example.com", "10.0.0.1")),
        ch(ChangeAction::Create, alias("al.example.com", zid, "t.example.com")),
    ];
    m.change_resource_record_sets(&z, &inner).await.unwrap();
    m.register_alias_target("Z35SXDOTRQ7X7K", "my-alb-1.us-east-1.elb.amazonaws.com");
    let lb = alias("lb.example.com", "Z35SXDOTRQ7X7K", "My-ALB-1.us-east-1.elb.amazonaws.com");
    m.change_resource_record_sets(&z, &[ch(ChangeAction::Create, lb)]).await.unwrap();
    let gone = alias("lb2.example.com", "Z35SXDOTRQ7X7K", "gone.us-east-1.elb.amazonaws.com");
    assert_eq!(code(m.change_resource_record_sets(&z, &[ch(ChangeAction::Create, gone)]).await), "InvalidChangeBatch");
    let unchecked = alias("lb3.example.com", "Z1H1FL5HABSF5", "any.elb.amazonaws.com");
    m.change_resource_record_sets(&z, &[ch(ChangeAction::Create, unchecked)]).await.unwrap();
}

#[tokio::test]
async fn changes_are_pending_until_the_propagation_delay_passes() {
    let m = model();
    m.set_propagation_delay(Duration::from_secs(20));
    let z = m.create_zone("example.com").id;
    let c = m
        .change_resource_record_sets(&z, &[ch(ChangeAction::Create, a_record("a.example.com", "10.0.0.1"))])
        .await
        .unwrap();
    assert!(c.id.starts_with("/change/C"));
    assert_eq!(c.status, "PENDING");
    m.advance(Duration::from_secs(19));
    assert_eq!(m.get_change(&c.id).await.unwrap().status, "PENDING");
    m.advance(Duration::from_secs(1));
    let bare = c.id.trim_start_matches("/change/");
    assert_eq!(m.get_change(bare).await.unwrap().status, "INSYNC");
    assert_eq!(code(m.get_change("CNOPE").await), "NoSuchChange");
    m.set_change_retention(Some(Duration::from_secs(60)));
    m.advance(Duration::from_secs(60));
    assert_eq!(code(m.get_change(bare).await), "NoSuchChange");
}

#[tokio::test]
async fn a_second_batch_while_one_is_pending_may_be_prior_request_not_complete() {
    let m = model();
    m.set_prior_request_rate(1.0);
    let z = m.create_zone("example.com").id;
    m.change_resource_record_sets(&z, &[ch(ChangeAction::Create, a_record("a.example.com", "10.0.0.1"))])
        .await
        .unwrap();
    let next = [ch(ChangeAction::Create, a_record("b.example.com", "10.0.0.1"))];
    let err = m.change_resource_record_sets(&z, &next).await.unwrap_err();
    assert_eq!((err.code.as_str(), err.category), ("PriorRequestNotComplete", ErrorCategory::Throttling));
    m.advance(DEFAULT_PROPAGATION);
    m.change_resource_record_sets(&z, &next).await.unwrap();
}

#[tokio::test]
async fn caller_references_are_remembered_even_after_the_check_is_deleted() {
    let m = model();
    let id = m.create_health_check("ref", &http_check("a.example.net")).await.unwrap();
    // Same reference, same settings (a default spelled out): the same check.
    let mut explicit = http_check("a.example.net");
    explicit.request_interval = Some(30);
    assert_eq!(m.create_health_check("ref", &explicit).await.unwrap(), id);
    assert_eq!(m.health_checks().len(), 1);
    assert_eq!(code(m.create_health_check("ref", &http_check("b.example.net")).await), "HealthCheckAlreadyExists");
    m.delete_health_check(&id).await.unwrap();
    assert_eq!(code(m.get_health_check(&id).await), "NoSuchHealthCheck");
    assert_eq!(code(m.delete_health_check(&id).await), "NoSuchHealthCheck");
    // Deleted: the reference answers HealthCheckAlreadyExists whatever the settings...
    assert_eq!(code(m.create_health_check("ref", &http_check("a.example.net")).await), "HealthCheckAlreadyExists");
    assert_eq!(m.caller_references()["ref"], (id.clone(), true));
    // ...until Route 53 forgets it.
    m.set_deleted_reference_retention(Some(Duration::from_secs(86_400)));
    m.advance(Duration::from_secs(86_400));
    let again = m.create_health_check("ref", &http_check("a.example.net")).await.unwrap();
    assert_ne!(again, id);
}

#[tokio::test]
async fn a_check_in_use_cannot_be_deleted_and_tags_updates_status_follow_the_world() {
    let m = model();
    let z = m.create_zone("example.com").id;
    let id = m.create_health_check("r", &http_check("p.example.net")).await.unwrap();
    let got = m.get_health_check(&id).await.unwrap();
    let config = got.config.unwrap();
    assert_eq!((config.port, config.request_interval, config.failure_threshold), (Some(443), Some(30), Some(3)));
    let rec = failover("f.example.com", ResourceRecordSetFailover::Primary, "p.example.net", Some(&id));
    m.change_resource_record_sets(&z, &[ch(ChangeAction::Create, rec.clone())]).await.unwrap();
    assert_eq!(code(m.delete_health_check(&id).await), "HealthCheckInUse");
    let tags: BTreeMap<String, String> = [("a".to_string(), "1".to_string())].into();
    m.add_health_check_tags(&id, &tags).await.unwrap();
    let more: BTreeMap<String, String> =
        [("a".to_string(), "2".to_string()), ("b".to_string(), "3".to_string())].into();
    m.add_health_check_tags(&id, &more).await.unwrap();
    assert_eq!(m.health_checks()[0].tags, more);
    assert_eq!(code(m.add_health_check_tags("nope", &tags).await), "NoSuchHealthCheck");
    let update = HealthCheckConfig::builder().r#type(HealthCheckType::Https).failure_threshold(5).build().unwrap();
    m.update_health_check(&id, &update).await.unwrap();
    let too_many = HealthCheckConfig::builder().r#type(HealthCheckType::Https).failure_threshold(11).build().unwrap();
    assert_eq!(code(m.update_health_check(&id, &too_many).await), "InvalidInput");
    let v = &m.health_checks()[0];
    assert_eq!((v.version, v.config.failure_threshold, v.config.resource_path.as_deref()), (2, Some(5), Some("/h")));
    let status = m.get_health_check_status(&id).await.unwrap();
    assert_eq!(status.len(), 8);
    assert!(status.iter().all(|s| s.starts_with("Success")));
    assert!(m.set_health(&id, false));
    assert!(m.get_health_check_status(&id).await.unwrap().iter().all(|s| s.starts_with("Failure")));
    m.set_healthy_checkers(&id, 3);
    let mixed = m.get_health_check_status(&id).await.unwrap();
    assert_eq!(mixed.iter().filter(|s| s.starts_with("Success")).count(), 3);
    // Once the record is gone, the check can go.
    m.change_resource_record_sets(&z, &[ch(ChangeAction::Delete, rec)]).await.unwrap();
    m.delete_health_check(&id).await.unwrap();
    assert_eq!(code(m.get_health_check_status(&id).await), "NoSuchHealthCheck");
}

#[tokio::test]
async fn health_checks_page_in_id_order_and_the_limit_holds() {
    let m = model();
    m.set_health_checks_page_size(2);
    m.set_health_check_limit(5);
    for i in 0..5 {
        m.create_health_check(&format!("r{i}"), &http_check("a.example.net")).await.unwrap();
    }
    assert_eq!(code(m.create_health_check("r9", &http_check("a.example.net")).await), "TooManyHealthChecks");
    let mut marker: Option<String> = None;
    let mut ids = Vec::new();
    loop {
        let page = m.list_health_checks(marker.as_deref()).await.unwrap();
        assert!(page.health_checks.len() <= 2);
        ids.extend(page.health_checks.into_iter().map(|h| h.id));
        marker = page.next_marker;
        if marker.is_none() {
            break;
        }
    }
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted);
    assert_eq!(ids.len(), 5);
}

#[tokio::test]
async fn a_seed_replays_ids_and_faults() {
    let rates = FaultRates { throttle: 0.2, server_error: 0.1, lost: 0.2, ..FaultRates::default() };
    let run = |seed| async move {
        let m = ModelRoute53::new(seed, rates, "1", "us-east-1");
        let z = m.create_zone("example.com").id;
        let mut out = vec![z.clone()];
        for i in 0..20 {
            let r = m.create_health_check(&format!("r{i}"), &http_check("a.example.net")).await;
            out.push(format!("{r:?}"));
            let c = [ch(ChangeAction::Upsert, a_record(&format!("n{i}.example.com"), "10.0.0.1"))];
            out.push(format!("{:?}", m.change_resource_record_sets(&z, &c).await.map(|c| c.id)));
        }
        (out, m.health_checks().len(), m.record_sets(&z).unwrap().len())
    };
    let (a, b, c) = (run(3).await, run(3).await, run(4).await);
    assert_eq!(a, b);
    assert_ne!(a.0, c.0);
    // Lost answers executed: more checks exist than creates answered Ok.
    let ok = a.0.iter().filter(|s| s.starts_with("Ok(\"") && !s.contains("/change/")).count();
    assert!(a.1 > ok, "a lost create still creates ({} checks, {ok} answered)", a.1);
    assert!(a.0.iter().any(|s| s.contains("ThrottlingException")));
}
