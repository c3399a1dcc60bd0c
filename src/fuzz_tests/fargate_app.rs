//! FargateApp: hostile spec and status through deserialization, `Managed::validate`, the inventory
//! seeding and scope checks, the status merge, rendering, the gates and the full-pass plan against
//! empty and hostile observed state.

use aws_sdk_route53::types as r53;
use kube::api::ObjectMeta;
use serde_json::Value;

use super::{Draw, Pools, Reach, fuzz, part_of, pools};
use crate::api::{FargateApp, FargateAppSpec, FargateAppStatus, OwnedResource};
use crate::aws::facts::ListenerInfo;
use crate::controller::Managed;
use crate::controller::fargate_app::Names;
use crate::controller::fargate_app::inventory::{self, LISTENER_RULE, SERVICE, TARGET_GROUP};
use crate::controller::fargate_app::observe::{Listener, Observed};
use crate::controller::fargate_app::plan::{
    ObservedRule, ObservedService, ObservedTargetGroup, desired_load_balancers, readiness, url,
};
use crate::controller::fargate_app::render::render;
use crate::controller::fargate_app::steps::{plan, record_gate, rule_gate, service_gate, target_group_gate};
use crate::runtime::status::ObjectStatus;

fn ids(status: &FargateAppStatus) -> Vec<String> {
    let fields =
        [&status.target_group_arn, &status.listener_rule_arn, &status.service_arn, &status.task_definition_arn];
    let mut out: Vec<String> = fields.into_iter().flatten().cloned().collect();
    for r in &status.resources {
        out.push(r.id.clone());
        out.extend(r.parent.clone());
        out.extend(r.name.clone());
    }
    out
}

fn entry(d: &Draw<'_>) -> OwnedResource {
    let type_ = match d.i64().rem_euclid(4) {
        0 => TARGET_GROUP,
        1 => LISTENER_RULE,
        2 => SERVICE,
        _ => inventory::RECORD,
    };
    OwnedResource { type_: type_.into(), id: d.s(), parent: d.b().then(|| d.s()), name: d.b().then(|| d.s()) }
}

fn mark(d: &Draw<'_>) -> crate::controller::fargate_app::dns::Mark {
    use crate::controller::fargate_app::dns::Mark;
    match d.i64().rem_euclid(3) {
        0 => Mark::None,
        1 => record_set(d).map_or(Mark::None, |s| Mark::Ours(Box::new(s))),
        _ => Mark::Other(d.s()),
    }
}

fn record_set(d: &Draw<'_>) -> Option<r53::ResourceRecordSet> {
    let rtype = if d.b() { r53::RrType::A } else { r53::RrType::from(d.s().as_str()) };
    let mut b = r53::ResourceRecordSet::builder().name(d.s()).r#type(rtype);
    if d.b() {
        b = b.ttl(d.i64());
    }
    if d.b() {
        b = b.set_identifier(d.s());
    }
    if d.b() {
        b = b.resource_records(r53::ResourceRecord::builder().value(d.s()).build().ok()?);
    }
    if d.b() {
        let target = r53::AliasTarget::builder().hosted_zone_id(d.s()).dns_name(d.s()).evaluate_target_health(d.b());
        b = b.alias_target(target.build().ok()?);
    }
    b.build().ok()
}

fn service(d: &Draw<'_>) -> ObservedService {
    ObservedService {
        arn: d.s(),
        status: if d.b() { "ACTIVE".into() } else { d.s() },
        desired: d.i32(),
        running: d.i32(),
        pending: d.i32(),
        task_definition: d.s(),
        subnets: d.strings(3),
        security_groups: d.strings(3),
        public_ip: d.b().then(|| d.b()),
        load_balancers: (0..d.i64().rem_euclid(3)).map(|_| (d.s(), d.s(), d.i32())).collect(),
        deployment: d.b().then(|| (d.i32(), d.i32(), d.b().then(|| (d.b(), d.b())))),
        grace_period: d.b().then(|| d.i32()),
        rollout: d.b().then(|| (d.s(), d.s(), d.i32())),
        latest_event: d.b().then(|| d.s()),
        ours: d.b(),
    }
}

/// What observe could have read, from the pools and the ids the status names.
fn observed(spec: &FargateAppSpec, status: &FargateAppStatus, d: &Draw<'_>) -> Observed {
    let info = || ListenerInfo { lb_arn: d.s(), dns_name: d.s(), canonical_zone_id: d.s(), vpc_id: d.s() };
    let listener = spec
        .load_balancer
        .as_ref()
        .and_then(|lb| lb.listener_rule.as_ref())
        .map(|_| if d.b() { Listener::Found(info()) } else { Listener::Gone });
    let target_group = d.b().then(|| {
        let tg = ObservedTargetGroup {
            arn: d.s(),
            port: d.i32(),
            protocol: d.s(),
            vpc_id: d.s(),
            path: d.s(),
            interval: d.i32(),
            timeout: d.i32(),
            healthy: d.i32(),
            unhealthy: d.i32(),
            matcher: d.s(),
            deregistration_delay: d.b().then(|| d.i32()),
        };
        (tg, d.b())
    });
    let rules = (0..d.i64().rem_euclid(4))
        .map(|_| ObservedRule {
            arn: d.s(),
            priority: d.b().then(|| d.i32()),
            path_patterns: d.strings(2),
            host_headers: d.strings(2),
            forward_to: d.strings(2),
            ours: d.b(),
        })
        .collect();
    let planned = status
        .resources
        .iter()
        .filter(|r| inventory::is_planned(r))
        .map(|r| (r.clone(), (0..d.i64().rem_euclid(3)).map(|_| entry(d)).collect()))
        .collect();
    let old_records = status
        .resources
        .iter()
        .filter(|r| r.type_ == inventory::RECORD)
        .map(|r| (r.clone(), if d.b() { record_set(d).map(|s| (s, mark(d))) } else { None }))
        .collect();
    Observed {
        listener,
        target_group,
        rules,
        rules_seen: d.i64().unsigned_abs(),
        planned,
        cluster_missing: d.b(),
        service: d.b().then(|| service(d)),
        revision: d.b().then(|| d.s()),
        active_revisions: d.b().then(|| usize::try_from(d.i64().unsigned_abs()).unwrap_or(usize::MAX)),
        zone_name: d.b().then(|| d.s()),
        record: if d.b() { record_set(d) } else { None },
        record_mark: mark(d),
        old_records,
    }
}

fn app(spec: FargateAppSpec, status: FargateAppStatus, generation: i64) -> FargateApp {
    let metadata = ObjectMeta {
        name: Some("web".into()),
        namespace: Some("team".into()),
        uid: Some("u-1".into()),
        generation: Some(generation),
        ..Default::default()
    };
    FargateApp { metadata, spec, status: Some(status) }
}

fn one(spec: Value, status: Value, other: Value, pools: Pools, reach: &Reach) {
    let Ok(spec) = serde_json::from_value::<FargateAppSpec>(spec) else { return };
    reach.parsed();
    let status: FargateAppStatus = serde_json::from_value(status).unwrap_or_default();
    let other: FargateAppStatus = serde_json::from_value(other).unwrap_or_default();
    let d = Draw::new(&pools, ids(&status));
    let obj = app(spec, status.clone(), d.i64());
    let valid = obj.validate().is_ok();
    // What every pass does before it plans, whether the spec is valid or not.
    let _ = crate::controller::inventory::aws_scope_changed(&obj);
    let mut written = status.clone();
    crate::controller::inventory::record_made_with(&obj, &mut written);
    let mut latest = other.clone();
    written.carry_actions(&status, &mut latest);
    let mut seeded = status.clone();
    inventory::seed_from_status(&obj.spec, &mut seeded);
    for id in ids(&seeded) {
        let _ =
            (inventory::listener_of_rule(&id), inventory::service_name(&id), inventory::load_balancer_of_listener(&id));
    }
    if !valid {
        return;
    }
    reach.valid();
    let spec = &obj.spec;
    let names = Names::new(&d.s(), &d.s());
    let rendered = render(spec, &names.family, &d.s());
    let _ = rendered.content_hash();
    let _ = desired_load_balancers(spec, status.target_group_arn.as_deref());
    for observed in [Observed::default(), observed(spec, &seeded, &d)] {
        let _ = target_group_gate(spec, &names, &seeded, &observed);
        let _ = service_gate(spec, &names, &seeded, &observed);
        let _ = record_gate(spec, &seeded, &observed);
        if let Some(rule) = spec.load_balancer.as_ref().and_then(|lb| lb.listener_rule.as_ref()) {
            let _ = rule_gate(rule, &observed);
        }
        let _ = url(spec, observed.listener_info().map(|l| l.dns_name.as_str()));
        if let Some(svc) = &observed.service {
            let _ = readiness(svc, usize::try_from(d.i64().unsigned_abs() % 1000).unwrap_or(0));
        }
        for read_attributes in [false, true] {
            let p = plan(spec, &names, &seeded, &observed, &rendered, read_attributes);
            reach.stepped(p.steps.len());
            let mut after = p.status.clone();
            for step in &p.steps {
                if let crate::controller::fargate_app::steps::Step::Report { settled, .. } = step {
                    settled.apply_to(&mut after);
                }
            }
            after.carry_actions(&seeded, &mut latest);
        }
    }
}

#[test]
fn fargate_app_never_panics() {
    let strategy =
        (part_of("FargateApp", "spec"), part_of("FargateApp", "status"), part_of("FargateApp", "status"), pools());
    fuzz("FargateApp", file!(), strategy, |(spec, status, other, pools), reach| one(spec, status, other, pools, reach));
}
