//! DnsFailover: hostile spec and status through deserialization, `Managed::validate`, validation
//! against a zone, the status merge, the inventory helpers and the pass plan against empty and
//! hostile Route 53 state (records that are or are not ours, checks that differ, a parent NS).

use aws_sdk_route53::types as r53;
use kube::api::ObjectMeta;
use serde_json::Value;

use super::{Draw, Pools, Reach, fuzz, part_of, pools};
use crate::api::validation::validate_dns_failover;
use crate::api::{DnsFailover, DnsFailoverSpec, DnsFailoverStatus};
use crate::controller::Managed;
use crate::controller::dns_failover::inventory;
use crate::controller::dns_failover::observe::{Observed, ParentNs, Zone};
use crate::controller::dns_failover::plan::{HealthCheckConfig, caller_reference, health_check_action};
use crate::controller::dns_failover::steps::{plan, recorded_check, set_identifier, wanted_checks};
use crate::runtime::status::ObjectStatus;

const UID: &str = "u-1";

/// Strings the plan compares with: our set identifiers, the spec's name and the zones around it.
fn extra(spec: &DnsFailoverSpec, status: &DnsFailoverStatus) -> Vec<String> {
    let mut out = vec![set_identifier(UID, "primary"), set_identifier(UID, "secondary")];
    let name = spec.name.trim_end_matches('.');
    out.push(format!("{name}."));
    if let Some((_, parent)) = name.split_once('.') {
        out.push(format!("{parent}."));
    }
    out.extend(["primary", "secondary"].map(|side| recorded_check(status, side)));
    out.extend(status.resources.iter().map(|r| r.id.clone()));
    out
}

/// The zone one label up from `spec.name`, as Route 53 names it.
fn zone_of(spec: &DnsFailoverSpec) -> String {
    let name = spec.name.trim_end_matches('.');
    format!("{}.", name.split_once('.').map_or(name, |(_, parent)| parent))
}

fn check(want: &Option<HealthCheckConfig>, d: &Draw<'_>) -> Option<HealthCheckConfig> {
    let mut c = want.clone()?;
    if d.b() {
        c.port = d.i32();
        c.interval = d.i32();
        c.failure_threshold = d.i32();
        c.path = d.b().then(|| d.s());
        c.fqdn = d.s();
        c.check_type = d.s();
        c.search_string = d.b().then(|| d.s());
        c.inverted = d.b();
        c.disabled = d.b();
    }
    Some(c)
}

fn record_set(spec: &DnsFailoverSpec, d: &Draw<'_>) -> Option<r53::ResourceRecordSet> {
    let rtype = if d.b() { r53::RrType::Cname } else { r53::RrType::from(d.s().as_str()) };
    let name = if d.b() { spec.name.clone() } else { d.s() };
    let id = if d.b() { d.s() } else { set_identifier(UID, if d.b() { "primary" } else { "secondary" }) };
    let mut b = r53::ResourceRecordSet::builder().name(name).r#type(rtype).set_identifier(id);
    if d.b() {
        b = b.ttl(d.i64());
    }
    if d.b() {
        b = b.failover(if d.b() {
            r53::ResourceRecordSetFailover::Primary
        } else {
            r53::ResourceRecordSetFailover::Secondary
        });
    }
    if d.b() {
        b = b.health_check_id(d.s());
    }
    if d.b() {
        b = b.resource_records(r53::ResourceRecord::builder().value(d.s()).build().ok()?);
    }
    b.build().ok()
}

fn observed(spec: &DnsFailoverSpec, d: &Draw<'_>) -> Observed {
    let want = wanted_checks(spec);
    Observed {
        // Mostly a zone the name is inside, and records that are ours: else the gate stops the plan.
        zone: (d.b() || d.b())
            .then(|| Zone { name: if d.b() { d.s() } else { zone_of(spec) }, name_servers: d.strings(4) }),
        records: (0..d.i64().rem_euclid(4)).filter_map(|_| record_set(spec, d)).collect(),
        checks: [check(&want[0], d), check(&want[1], d)],
        parent: d.b().then(|| match d.i64().rem_euclid(3) {
            0 => ParentNs::ZoneMissing,
            1 => ParentNs::Absent,
            _ => ParentNs::Present { ttl: d.b().then(|| d.i64()), values: d.strings(4) },
        }),
        delegated_by: d.b().then(|| d.s()),
        not_permitted: None,
        delegation_mark: Default::default(),
    }
}

fn one(spec: Value, status: Value, other: Value, pools: Pools, reach: &Reach) {
    let Ok(spec) = serde_json::from_value::<DnsFailoverSpec>(spec) else { return };
    reach.parsed();
    let status: DnsFailoverStatus = serde_json::from_value(status).unwrap_or_default();
    let mut latest: DnsFailoverStatus = serde_json::from_value(other).unwrap_or_default();
    let d = Draw::new(&pools, extra(&spec, &status));
    let metadata = ObjectMeta { name: Some("dns".into()), namespace: Some("team".into()), ..Default::default() };
    let obj = DnsFailover { metadata, spec, status: Some(status.clone()) };
    let valid = obj.validate().is_ok();
    let _ = crate::controller::inventory::aws_scope_changed(&obj);
    let mut written = status.clone();
    crate::controller::inventory::record_made_with(&obj, &mut written);
    written.carry_actions(&status, &mut latest);
    let _ = inventory::unwanted_checks(&status.resources, &[&d.s()]);
    let _ = inventory::unwanted_records(&status.resources, &[d.s()]);
    let _ = inventory::planned(&status.resources, &d.s());
    if !valid {
        return;
    }
    reach.valid();
    let spec = &obj.spec;
    let _ = validate_dns_failover(spec, Some(&d.s()));
    for (want, side) in wanted_checks(spec).iter().zip(["primary", "secondary"]) {
        if let Some(want) = want {
            let _ = caller_reference(UID, side, want);
            if let Some(have) = check(&Some(want.clone()), &d) {
                let _ = health_check_action(want, &have);
            }
        }
    }
    for observed in [Observed::default(), observed(spec, &d), observed(spec, &d)] {
        let p = plan(spec, UID, &status, &observed, &d.s());
        reach.stepped(p.steps.len());
        p.status.carry_actions(&status, &mut latest);
    }
}

#[test]
fn dns_failover_never_panics() {
    let strategy =
        (part_of("DnsFailover", "spec"), part_of("DnsFailover", "status"), part_of("DnsFailover", "status"), pools());
    fuzz("DnsFailover", file!(), strategy, |(spec, status, other, pools), reach| {
        one(spec, status, other, pools, reach)
    });
}
