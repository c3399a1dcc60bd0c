//! The DnsFailover plan for the edits users make, without any AWS call.

use super::*;
use crate::api::dns_failover::{DelegationStatus, HealthState};

const UID: &str = "uid-1";

fn spec(extra: serde_json::Value) -> DnsFailoverSpec {
    let mut v = serde_json::json!({
        "hostedZoneId": "Z1", "name": "a.example.com",
        "primary": {"target": "p.example.net", "healthCheck": {"type": "HTTPS", "requestIntervalSeconds": 30}},
        "secondary": {"target": "s.example.net"}
    });
    for (k, val) in extra.as_object().expect("object") {
        v[k] = val.clone();
    }
    serde_json::from_value(v).expect("spec")
}

fn zone() -> Zone {
    Zone { name: "example.com.".into(), name_servers: vec!["ns-1.aws".into(), "ns-2.aws".into()] }
}

/// What Route 53 serves after a pass for `spec` made check `primary_id` (and `secondary_id`).
fn served(spec: &DnsFailoverSpec, primary_id: &str, secondary_id: &str) -> Vec<r53::ResourceRecordSet> {
    [("primary", primary_id, &spec.primary.target), ("secondary", secondary_id, &spec.secondary.target)]
        .into_iter()
        .map(|(side, id, target)| {
            r53::ResourceRecordSet::builder()
                .name("a.example.com.")
                .r#type(r53::RrType::Cname)
                .ttl(spec.ttl)
                .set_identifier(set_identifier(UID, side))
                .failover(if side == "primary" {
                    r53::ResourceRecordSetFailover::Primary
                } else {
                    r53::ResourceRecordSetFailover::Secondary
                })
                .set_health_check_id((!id.is_empty()).then(|| id.to_string()))
                .resource_records(r53::ResourceRecord::builder().value(target.as_str()).build().expect("rr"))
                .build()
                .expect("set")
        })
        .collect()
}

/// The status and observation of an object in place with primary check `hc-1` made for `spec`.
fn converged(spec: &DnsFailoverSpec) -> (DnsFailoverStatus, Observed) {
    let mut status = DnsFailoverStatus {
        active_target: Some(ActiveTarget::Secondary),
        health_checks: Some(HealthChecksStatus {
            primary: HealthCheckStatus { id: "hc-1".into(), status: HealthState::Healthy },
            secondary: HealthCheckStatus::default(),
        }),
        ..Default::default()
    };
    inventory::add(&mut status.resources, inventory::health_check("hc-1", Some("ref-hc-1")));
    let observed = Observed {
        zone: Some(zone()),
        records: served(spec, "hc-1", ""),
        checks: [wanted_checks(spec)[0].clone(), None],
        parent: None,
        delegated_by: None,
        not_permitted: None,
        delegation_mark: Default::default(),
    };
    let first = plan(spec, UID, &status, &observed, "n0");
    (first.status, observed)
}

fn kinds(plan: &Plan) -> Vec<&'static str> {
    plan.steps
        .iter()
        .map(|s| match s {
            Step::UpdateCheck { .. } => "UpdateCheck",
            Step::CreateCheck { .. } => "CreateCheck",
            Step::UpsertPair { .. } => "UpsertPair",
            Step::UpsertDelegation { .. } => "UpsertDelegation",
            Step::DeleteRecord(_) => "DeleteRecord",
            Step::DeleteCheck(_) => "DeleteCheck",
            Step::DeleteByReference(_) => "DeleteByReference",
            Step::FollowChange => "FollowChange",
        })
        .collect()
}

#[test]
fn a_new_object_creates_its_check_then_the_pair_naming_it_and_lists_both_records_first() {
    let s = spec(serde_json::json!({}));
    let observed = Observed { zone: Some(zone()), ..Default::default() };
    let p = plan(&s, UID, &DnsFailoverStatus::default(), &observed, "n1");
    assert_eq!(kinds(&p), ["CreateCheck", "UpsertPair", "FollowChange"]);
    let Step::CreateCheck { reference, new, .. } = &p.steps[0] else { panic!("{:?}", p.steps) };
    assert!(*new && reference.ends_with("-n1"), "{reference}");
    let Step::UpsertPair { records, .. } = &p.steps[1] else { panic!() };
    assert_eq!(records[0].check, CheckRef::Created("primary"));
    assert_eq!(records[1].check, CheckRef::None);
    assert_eq!(p.status.resources.iter().filter(|r| r.type_ == inventory::RECORD).count(), 2);
}

#[test]
fn a_converged_object_only_follows_its_change() {
    let s = spec(serde_json::json!({}));
    let (status, observed) = converged(&s);
    let p = plan(&s, UID, &status, &observed, "n1");
    assert_eq!(kinds(&p), ["FollowChange"]);
    assert_eq!(p.status, status, "nothing to record");
    assert_eq!(p.active_target, ActiveTarget::Secondary, "Route 53's answer is kept");
}

#[test]
fn the_dr_switch_updates_the_primary_check_in_place_and_rewrites_no_record() {
    let s = spec(serde_json::json!({}));
    let (status, observed) = converged(&s);
    let switched = spec(serde_json::json!({"mode": "ForceSecondary"}));
    let p = plan(&switched, UID, &status, &observed, "n1");
    assert_eq!(kinds(&p), ["UpdateCheck", "FollowChange"]);
    assert_eq!(p.active_target, ActiveTarget::Secondary);
}

#[test]
fn an_interval_change_points_the_pair_at_a_new_check_before_the_old_one_goes() {
    let s = spec(serde_json::json!({}));
    let (status, observed) = converged(&s);
    let ten = spec(serde_json::json!({"primary": {"target": "p.example.net",
        "healthCheck": {"type": "HTTPS", "requestIntervalSeconds": 10}}}));
    let p = plan(&ten, UID, &status, &observed, "n1");
    assert_eq!(kinds(&p), ["CreateCheck", "UpsertPair", "DeleteCheck", "FollowChange"]);
    assert_eq!(p.steps[2], Step::DeleteCheck("hc-1".into()));
    assert_eq!(p.active_target, ActiveTarget::Unknown, "a new primary check makes the answer unknown");
}

#[test]
fn changing_the_interval_back_never_reuses_a_deleted_checks_reference() {
    let thirty = spec(serde_json::json!({}));
    let ten = spec(serde_json::json!({"primary": {"target": "p.example.net",
        "healthCheck": {"type": "HTTPS", "requestIntervalSeconds": 10}}}));
    let first =
        plan(&thirty, UID, &DnsFailoverStatus::default(), &Observed { zone: Some(zone()), ..Default::default() }, "n1");
    let Step::CreateCheck { reference: thirty_ref, .. } = &first.steps[0] else { panic!() };
    // 30 → 10 landed: check hc-10 named in status; hc-30 (thirty_ref) deleted.
    let mut status = DnsFailoverStatus::default();
    status.health_checks = Some(HealthChecksStatus {
        primary: HealthCheckStatus { id: "hc-10".into(), status: HealthState::Unknown },
        secondary: HealthCheckStatus::default(),
    });
    let observed = Observed {
        zone: Some(zone()),
        records: served(&ten, "hc-10", ""),
        checks: [wanted_checks(&ten)[0].clone(), None],
        parent: None,
        delegated_by: None,
        not_permitted: None,
        delegation_mark: Default::default(),
    };
    let back = plan(&thirty, UID, &status, &observed, "n2");
    let Step::CreateCheck { reference, new, .. } = &back.steps[0] else { panic!("{:?}", back.steps) };
    assert!(*new);
    assert_ne!(reference, thirty_ref, "Route 53 refuses a deleted check's reference for good");
}

#[test]
fn a_create_whose_answer_was_lost_is_repeated_with_its_reference_and_a_stale_one_is_cleaned_up() {
    let s = spec(serde_json::json!({}));
    let stem = caller_reference(UID, "primary", wanted_checks(&s)[0].as_ref().expect("primary"));
    let mut status = DnsFailoverStatus::default();
    inventory::plan_create(&mut status.resources, &format!("{stem}-lost1"));
    inventory::plan_create(&mut status.resources, "uid-1-primary-0ldstem0-lost2");
    let p = plan(&s, UID, &status, &Observed { zone: Some(zone()), ..Default::default() }, "n1");
    assert_eq!(kinds(&p), ["CreateCheck", "UpsertPair", "DeleteByReference", "FollowChange"]);
    assert_eq!(
        p.steps[0],
        Step::CreateCheck {
            side: "primary",
            reference: format!("{stem}-lost1"),
            new: false,
            want: wanted_checks(&s)[0].clone().expect("primary")
        }
    );
    assert_eq!(p.steps[2], Step::DeleteByReference("uid-1-primary-0ldstem0-lost2".into()));
}

#[test]
fn removing_the_secondary_check_and_renaming_delete_from_the_inventory_after_the_new_pair() {
    let with = spec(
        serde_json::json!({"secondary": {"target": "s.example.net", "healthCheck": {"type": "TCP", "port": 5432}}}),
    );
    let mut status = DnsFailoverStatus::default();
    status.health_checks = Some(HealthChecksStatus {
        primary: HealthCheckStatus { id: "hc-1".into(), status: HealthState::Healthy },
        secondary: HealthCheckStatus { id: "hc-2".into(), status: HealthState::Healthy },
    });
    let old_record = inventory::record("Z1", "old.example.com", "CNAME", Some(&set_identifier(UID, "primary")));
    inventory::add(&mut status.resources, old_record.clone());
    let renamed = spec(serde_json::json!({"name": "b.example.com"}));
    let observed = Observed {
        zone: Some(zone()),
        records: Vec::new(),
        checks: [wanted_checks(&with)[0].clone(), None],
        parent: None,
        delegated_by: None,
        not_permitted: None,
        delegation_mark: Default::default(),
    };
    let p = plan(&renamed, UID, &status, &observed, "n1");
    assert_eq!(kinds(&p), ["UpsertPair", "DeleteRecord", "DeleteCheck", "FollowChange"]);
    assert_eq!(p.steps[1], Step::DeleteRecord(old_record));
    assert_eq!(p.steps[2], Step::DeleteCheck("hc-2".into()));
    assert_eq!(p.status.health_checks.as_ref().map(|h| h.secondary.id.as_str()), Some(""));
}

#[test]
fn removing_the_delegation_deletes_the_parents_ns_record_and_forgets_it() {
    let delegating = spec(serde_json::json!({"delegation": {"parentHostedZoneId": "ZP", "ttl": 300}}));
    let (mut status, mut observed) = converged(&delegating);
    observed.parent = Some(ParentNs::Absent);
    let p = plan(&delegating, UID, &status, &observed, "n1");
    assert_eq!(kinds(&p), ["UpsertDelegation", "FollowChange"]);
    assert_eq!(p.delegated, Some(("example.com.".into(), zone().name_servers)));
    status = p.status;
    status.delegation = Some(DelegationStatus { name_servers: zone().name_servers, in_sync: true });
    let removed = spec(serde_json::json!({}));
    observed.parent = None;
    let p = plan(&removed, UID, &status, &observed, "n2");
    assert_eq!(kinds(&p), ["DeleteRecord", "FollowChange"]);
    assert_eq!(p.status.delegation, None);
}

#[test]
fn someone_elses_delegation_or_record_blocks_and_is_left_alone() {
    let delegating = spec(serde_json::json!({"delegation": {"parentHostedZoneId": "ZP", "ttl": 300}}));
    let (status, mut observed) = converged(&delegating);
    observed.parent = Some(ParentNs::Present { ttl: Some(300), values: vec!["ns.elsewhere".into()] });
    let p = plan(&delegating, UID, &status, &observed, "n1");
    assert_eq!(p.blocked.as_ref().map(|b| b.reason), Some(REASON_NAME_CONFLICT));
    assert!(kinds(&p).iter().all(|k| !k.starts_with("Delete")), "{:?}", p.steps);

    let s = spec(serde_json::json!({}));
    let (status, mut observed) = converged(&s);
    let mut foreign = served(&s, "", "").remove(0);
    foreign.set_identifier = Some("someone-else".into());
    observed.records.push(foreign);
    let p = plan(&s, UID, &status, &observed, "n1");
    assert_eq!((p.blocked.as_ref().map(|b| b.reason), p.steps.len()), (Some(REASON_NAME_CONFLICT), 0));
    let p = plan(&s, UID, &status, &Observed::default(), "n1");
    assert_eq!(p.blocked.as_ref().map(|b| b.reason), Some("ZoneNotFound"));
}

#[test]
fn a_check_made_by_a_repeated_reference_is_not_deleted_by_the_pass_that_names_it() {
    // A pass made hc-new with reference R, then its final write was refused as stale: the merge kept
    // hc-new's entry next to the planned R, and status still names hc-1.
    let s = spec(serde_json::json!({}));
    let (mut status, mut observed) = converged(&s);
    let ten = spec(serde_json::json!({"primary": {"target": "p.example.net",
        "healthCheck": {"type": "HTTPS", "requestIntervalSeconds": 10}}}));
    let stem = caller_reference(UID, "primary", wanted_checks(&ten)[0].as_ref().expect("primary"));
    let reference = format!("{stem}-r1");
    inventory::plan_create(&mut status.resources, &reference);
    inventory::add(&mut status.resources, inventory::health_check("hc-new", Some(&reference)));
    observed.checks = [wanted_checks(&s)[0].clone(), None];
    let p = plan(&ten, UID, &status, &observed, "n1");
    assert_eq!(kinds(&p), ["CreateCheck", "UpsertPair", "DeleteCheck", "FollowChange"]);
    assert_eq!(p.steps[2], Step::DeleteCheck("hc-1".into()), "only the replaced check goes, never hc-new");
}

#[test]
fn a_delegation_another_dns_failover_manages_is_refused_before_any_write() {
    let delegating = spec(serde_json::json!({"delegation": {"parentHostedZoneId": "ZP", "ttl": 300}}));
    let (status, mut observed) = converged(&spec(serde_json::json!({})));
    observed.parent = Some(ParentNs::Absent);
    observed.delegated_by = Some("team-a/dr".into());
    let p = plan(&delegating, UID, &status, &observed, "n1");
    assert_eq!(p.blocked.as_ref().map(|b| b.reason), Some(REASON_DELEGATION_IN_USE));
    assert!(
        p.blocked.as_ref().is_some_and(|b| b.message.contains("team-a/dr") && b.message.contains("spec.delegation"))
    );
    assert!(!kinds(&p).contains(&"UpsertDelegation"), "{:?}", p.steps);
    assert!(!p.status.resources.iter().any(|r| r.id.contains("/NS")), "never recorded as its own");

    observed.delegated_by = None;
    assert!(kinds(&plan(&delegating, UID, &status, &observed, "n1")).contains(&"UpsertDelegation"));

    // One that recorded the delegation before the other existed keeps managing it.
    let mut mine = status.clone();
    inventory::add(&mut mine.resources, inventory::delegation("ZP", &zone().name, "Z1"));
    observed.delegated_by = Some("team-a/dr".into());
    let p = plan(&delegating, UID, &mine, &observed, "n1");
    assert_eq!(p.blocked, None);
    assert!(kinds(&p).contains(&"UpsertDelegation"));
}

#[test]
fn a_delegation_is_ours_by_its_mark_and_someone_elses_identical_one_is_left_alone() {
    use crate::controller::record_mark::Mark;
    let delegating = spec(serde_json::json!({"delegation": {"parentHostedZoneId": "ZP", "ttl": 300}}));
    let (status, mut observed) = converged(&spec(serde_json::json!({})));
    let servers = zone().name_servers;
    observed.parent = Some(ParentNs::Present { ttl: Some(60), values: servers.clone() });
    // Our servers, no mark, not recorded: someone else's; not recorded, not rewritten, not deleted.
    let p = plan(&delegating, UID, &status, &observed, "n1");
    assert_eq!(p.blocked, None);
    assert!(!kinds(&p).contains(&"UpsertDelegation"), "{:?}", p.steps);
    assert!(!p.status.resources.iter().any(|r| r.id.contains("/NS")), "not ours");
    // Another owner's mark: refused, naming it.
    observed.delegation_mark = Mark::Other("prod/team-b/DnsFailover/dr".into());
    let p = plan(&delegating, UID, &status, &observed, "n1");
    assert!(p.blocked.as_ref().is_some_and(|b| b.reason == REASON_NAME_CONFLICT && b.message.contains("team-b")));
    // Recorded by us before marks existed: rewritten once, with its mark.
    observed.delegation_mark = Mark::None;
    let mut mine = status.clone();
    inventory::add(&mut mine.resources, inventory::delegation("ZP", &zone().name, "Z1"));
    observed.parent = Some(ParentNs::Present { ttl: Some(300), values: servers });
    assert!(kinds(&plan(&delegating, UID, &mine, &observed, "n1")).contains(&"UpsertDelegation"));
    // Marked by us and in sync: nothing to do.
    observed.delegation_mark = Mark::Ours(Box::new(
        aws_sdk_route53::types::ResourceRecordSet::builder()
            .name("_fargate-operator.acs.app.com.")
            .r#type(aws_sdk_route53::types::RrType::Txt)
            .build()
            .expect("set"),
    ));
    let p = plan(&delegating, UID, &mine, &observed, "n1");
    assert!(!kinds(&p).contains(&"UpsertDelegation"), "{:?}", p.steps);
    assert!(p.status.resources.iter().any(|r| r.id.contains("/NS")), "ours");
    // An object from before the inventory that reported the delegation: its own, and marked now.
    observed.delegation_mark = Mark::None;
    let legacy = DnsFailoverStatus {
        delegation: Some(crate::api::dns_failover::DelegationStatus {
            name_servers: zone().name_servers,
            in_sync: true,
        }),
        ..Default::default()
    };
    let p = plan(&delegating, UID, &legacy, &observed, "n1");
    assert!(kinds(&p).contains(&"UpsertDelegation"), "{:?}", p.steps);
    assert!(p.status.resources.iter().any(|r| r.id.contains("/NS")), "ours");
}

#[test]
fn checks_to_create_are_known_from_the_status_before_any_read() {
    let s = spec(serde_json::json!({}));
    assert_eq!(checks_unrecorded(&s, &DnsFailoverStatus::default()), 1, "a new object: the primary's");
    let both = spec(
        serde_json::json!({"secondary": {"target": "s.example.net", "healthCheck": {"type": "TCP", "port": 443}}}),
    );
    assert_eq!(checks_unrecorded(&both, &DnsFailoverStatus::default()), 2);
    let (status, _) = converged(&s);
    assert_eq!(checks_unrecorded(&s, &status), 0, "in place: nothing to reserve");
    assert_eq!(checks_unrecorded(&both, &status), 1, "a secondary check added by an edit");
}
