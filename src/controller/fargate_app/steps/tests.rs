//! The FargateApp plan for the edits users make, without any AWS call: which steps, in which order.

use super::*;
use crate::api::fargate_app::DnsRecordType;
use crate::controller::fargate_app::plan::{ObservedRule, ObservedTargetGroup, desired_load_balancers, sorted};
use crate::controller::fargate_app::render::render;

const LISTENER: &str = "arn:aws:elasticloadbalancing:us-east-1:1:listener/app/shared/50dc6c495c0c9188/f2f7dc8efc522ab2";
const SAME_LB: &str = "arn:aws:elasticloadbalancing:us-east-1:1:listener/app/shared/50dc6c495c0c9188/0000000000000001";
const OTHER_LB: &str = "arn:aws:elasticloadbalancing:us-east-1:1:listener/app/other/1111111111111111/f2f7dc8efc522ab2";
const TG: &str = "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/fa-team-web/1";
const RULE: &str =
    "arn:aws:elasticloadbalancing:us-east-1:1:listener-rule/app/shared/50dc6c495c0c9188/f2f7dc8efc522ab2/1";
const TD: &str = "arn:aws:ecs:us-east-1:1:task-definition/fa-team-web:1";

fn names() -> Names {
    Names::new("team", "web")
}

/// The full example's shape: one container on 8080 behind a rule on `LISTENER`, an alias record.
fn spec(extra: serde_json::Value) -> FargateAppSpec {
    let mut v = serde_json::json!({
        "cluster": "apps", "cpu": 256, "memory": 512, "replicas": 2,
        "containers": [{"name": "web", "image": "web:1", "port": 8080}],
        "network": {"subnets": ["subnet-a"], "securityGroups": ["sg-1"]},
        "loadBalancer": {"listenerRule": {"listenerArn": LISTENER, "pathPatterns": ["/app/*"]}},
        "dns": {"hostedZoneId": "Z1", "name": "web.example.com"}
    });
    for (k, val) in extra.as_object().expect("object") {
        v[k] = val.clone();
    }
    serde_json::from_value(v).expect("spec")
}

fn on_listener(listener: &str) -> serde_json::Value {
    serde_json::json!({"loadBalancer": {"listenerRule": {"listenerArn": listener, "pathPatterns": ["/app/*"]}}})
}

/// The load balancer behind `listener` (the two listeners of `shared` share it).
fn info(listener: &str) -> ListenerInfo {
    let lb = if listener == OTHER_LB { "other" } else { "shared" };
    ListenerInfo {
        lb_arn: format!("arn:lb/{lb}"),
        dns_name: format!("{lb}-1.us-east-1.elb.amazonaws.com"),
        canonical_zone_id: "ZLB".into(),
        vpc_id: "vpc-1".into(),
    }
}

fn rendered(spec: &FargateAppSpec) -> RenderedTaskDefinition {
    render(spec, &names().family, "us-east-1")
}

fn run(spec: &FargateAppSpec, status: &FargateAppStatus, observed: &Observed) -> Plan {
    plan(spec, &names(), status, observed, &rendered(spec), false)
}

/// What AWS holds for `spec` once a pass made it: target group `TG`, our rule `RULE` at priority 1,
/// the service on revision `TD`, the record; and the status that pass left.
fn converged(spec: &FargateAppSpec) -> (FargateAppStatus, Observed) {
    let listener = spec.load_balancer.as_ref().and_then(|lb| lb.listener_rule.as_ref()).map(|r| r.listener_arn.clone());
    let mut observed = Observed {
        listener: listener.as_deref().map(|l| Listener::Found(info(l))),
        revision: Some(TD.into()),
        ..Default::default()
    };
    let desired = checked_target_group(spec, &names(), &FargateAppStatus::default(), &observed).expect("desired");
    observed.target_group = Some((ObservedTargetGroup::made_as(&desired, TG), true));
    observed.rules = vec![ObservedRule {
        arn: RULE.into(),
        priority: Some(1),
        path_patterns: vec!["/app/*".into()],
        host_headers: Vec::new(),
        forward_to: vec![TG.into()],
        ours: true,
    }];
    let svc = format!("arn:aws:ecs:us-east-1:1:service/{}/{}", spec.cluster, names().family);
    observed.service = Some(service(spec, &svc));
    let mut status =
        FargateAppStatus { target_group_arn: Some(TG.into()), service_arn: Some(svc), ..Default::default() };
    if let (Some(dns), Some(l)) = (&spec.dns, &listener) {
        let set = dns::record_set(dns, &info(l)).expect("record");
        observed.record_mark = dns::Mark::Ours(Box::new(set.clone()));
        observed.record = Some(set);
        inventory::add(&mut status.resources, inventory::record(dns, &info(l).dns_name));
    }
    let first = run(spec, &status, &observed);
    assert_eq!(kinds(&first), ["Report"], "{:?}", first.steps);
    (landed(&first), observed)
}

/// The status once every step of `p` landed (what apply does with the report's settled fields).
fn landed(p: &Plan) -> FargateAppStatus {
    let mut status = p.status.clone();
    for step in &p.steps {
        if let Step::Report { settled, .. } = step {
            settled.apply_to(&mut status);
        }
    }
    status
}

/// The service `spec` asks for, running `TD` behind `TG`.
fn service(spec: &FargateAppSpec, arn: &str) -> ObservedService {
    ObservedService {
        arn: arn.into(),
        status: "ACTIVE".into(),
        desired: spec.replicas,
        running: spec.replicas,
        task_definition: TD.into(),
        subnets: sorted(&spec.network.subnets),
        security_groups: sorted(&spec.network.security_groups),
        public_ip: Some(spec.network.assign_public_ip),
        load_balancers: desired_load_balancers(spec, Some(TG)),
        rollout: Some(("COMPLETED".into(), String::new(), 0)),
        ours: true,
        ..Default::default()
    }
}

fn kinds(plan: &Plan) -> Vec<&'static str> {
    plan.steps
        .iter()
        .map(|s| match s {
            Step::CreateTargetGroup(_) => "CreateTargetGroup",
            Step::ModifyTargetGroup { .. } => "ModifyTargetGroup",
            Step::SetDeregistrationDelay { .. } => "SetDeregistrationDelay",
            Step::DeleteRule(_) => "DeleteRule",
            Step::ModifyRule { .. } => "ModifyRule",
            Step::SetRulePriority { .. } => "SetRulePriority",
            Step::CreateRule { .. } => "CreateRule",
            Step::RegisterTaskDefinition(_) => "RegisterTaskDefinition",
            Step::CreateService { .. } => "CreateService",
            Step::UpdateService { .. } => "UpdateService",
            Step::PruneRevisions => "PruneRevisions",
            Step::ForgetRecord(_) => "ForgetRecord",
            Step::ChangeRecords { .. } => "ChangeRecords",
            Step::DeleteService(_) => "DeleteService",
            Step::DeleteTargetGroup(_) => "DeleteTargetGroup",
            Step::Report { .. } => "Report",
        })
        .collect()
}

fn entry(status: &FargateAppStatus, type_: &str) -> OwnedResource {
    status.resources.iter().find(|r| r.type_ == type_).cloned().unwrap_or_else(|| panic!("no {type_} entry"))
}

/// The converged app's record is one the spec no longer asks for: observe reads it, still ours.
fn record_left_behind(status: &FargateAppStatus, observed: &mut Observed) -> (OwnedResource, r53::ResourceRecordSet) {
    let old = entry(status, "Record");
    let set = observed.record.take().expect("the record");
    observed.old_records = vec![(old.clone(), Some((set.clone(), dns::Mark::None)))];
    (old, set)
}

#[test]
fn a_new_app_makes_target_group_rule_revision_service_then_record_naming_what_it_makes() {
    let s = spec(serde_json::json!({}));
    let observed = Observed { listener: Some(Listener::Found(info(LISTENER))), ..Default::default() };
    let p = run(&s, &FargateAppStatus::default(), &observed);
    assert_eq!(
        kinds(&p),
        [
            "CreateTargetGroup",
            "SetDeregistrationDelay",
            "CreateRule",
            "RegisterTaskDefinition",
            "CreateService",
            "PruneRevisions",
            "ChangeRecords",
            "Report"
        ]
    );
    let seconds = s.load_balancer.as_ref().map_or(-1, |lb| lb.target_group.deregistration_delay_seconds);
    assert_eq!(p.steps[1], Step::SetDeregistrationDelay { target_group: TargetGroupArn::Created, seconds });
    let Step::CreateRule { priority, forward, record, .. } = &p.steps[2] else { panic!("{:?}", p.steps) };
    assert_eq!((*priority, forward, *record), (1, &TargetGroupArn::Created, true));
    assert_eq!(
        p.steps[4],
        Step::CreateService { task_definition: Revision::Registered, target_group: Some(TargetGroupArn::Created) }
    );
    let Step::ChangeRecords { zone, deletes, upsert: Some(write), zone_may_be_gone } = &p.steps[6] else {
        panic!("{:?}", p.steps)
    };
    assert_eq!((zone.as_str(), deletes.len(), write.record.is_some(), *zone_may_be_gone), ("Z1", 0, true, false));
    let Step::Report { service: Serving::Created, target_group: Some(TargetGroupArn::Created), settled } = &p.steps[7]
    else {
        panic!("{:?}", p.steps[7])
    };
    assert!(settled.url.is_some() && p.status.url.is_none(), "the URL is shown once the steps landed");
    // Creates are recorded as planned by apply, right before they are sent, never by the plan.
    let types: Vec<&str> = p.status.resources.iter().map(|r| r.type_.as_str()).collect();
    assert_eq!(types, [inventory::TASK_DEFINITION_FAMILY]);
    assert_eq!(p.blocked, None);
}

#[test]
fn revisions_are_pruned_after_a_registration_only_when_the_family_may_hold_more_than_it_keeps() {
    let s = spec(serde_json::json!({"keepTaskDefinitionRevisions": 3}));
    let pruned = |active: Option<usize>| {
        let observed = Observed {
            listener: Some(Listener::Found(info(LISTENER))),
            active_revisions: active,
            ..Default::default()
        };
        kinds(&run(&s, &FargateAppStatus::default(), &observed)).contains(&"PruneRevisions")
    };
    assert!(!pruned(Some(0)), "a first registration: nothing to prune, no listing");
    assert!(!pruned(Some(2)), "two kept and the new one: three");
    assert!(pruned(Some(3)), "the new one is a fourth");
    assert!(pruned(None), "not listed this pass: list and prune");
}

#[test]
fn a_converged_app_plans_no_write_and_changes_no_status() {
    let s = spec(serde_json::json!({}));
    let (status, observed) = converged(&s);
    let p = run(&s, &status, &observed);
    assert_eq!(kinds(&p), ["Report"]);
    assert_eq!(p.status, status);
    let mut types: Vec<&str> = status.resources.iter().map(|r| r.type_.as_str()).collect();
    types.dedup();
    assert_eq!(types, ["ListenerRule", "Record", "Service", "TargetGroup", "TaskDefinitionFamily"]);
    assert_eq!(status.url.as_deref(), Some("http://web.example.com/app/"));
}

#[test]
fn a_rule_moved_to_another_load_balancer_goes_before_the_new_one_and_the_record_follows() {
    let (status, mut observed) = converged(&spec(serde_json::json!({})));
    let moved = spec(on_listener(OTHER_LB));
    observed.listener = Some(Listener::Found(info(OTHER_LB)));
    observed.rules = Vec::new();
    observed.record = Some(dns::record_set(moved.dns.as_ref().expect("dns"), &info(LISTENER)).expect("record"));
    let p = run(&moved, &status, &observed);
    assert_eq!(kinds(&p), ["DeleteRule", "CreateRule", "ChangeRecords", "Report"]);
    assert_eq!(p.steps[0], Step::DeleteRule(entry(&status, "ListenerRule")));
    let Step::CreateRule { rule, forward, record, .. } = &p.steps[1] else { panic!() };
    assert_eq!((rule.listener_arn.as_str(), forward, *record), (OTHER_LB, &TargetGroupArn::Known(TG.into()), true));
    let Step::ChangeRecords { upsert: Some(write), deletes, .. } = &p.steps[2] else { panic!() };
    assert_eq!((write.listener.dns_name.as_str(), deletes.len()), (info(OTHER_LB).dns_name.as_str(), 0));
    // Recorded before the UPSERT is sent with both targets: if its answer is lost, the record points
    // at one of them, and a move back finds it ours instead of a NameConflict.
    let before = entry(&status, "Record");
    let planned = write.record.clone().expect("the re-point is recorded before it is sent");
    assert_eq!(
        (planned.id.as_str(), planned.name.as_deref(), planned.parent.as_deref()),
        (before.id.as_str(), Some(info(OTHER_LB).dns_name.as_str()), before.name.as_deref())
    );
    let mut resources = status.resources.clone();
    inventory::put(&mut resources, planned);
    let dns = moved.dns.as_ref().expect("dns");
    let landed = dns::record_set(dns, &info(OTHER_LB)).expect("record");
    let back = info(LISTENER);
    assert_eq!(
        dns::record_state(dns, &back, &resources, Some(&landed), &dns::Mark::None),
        Ok(false),
        "ours: re-pointed back"
    );
    let not_landed = dns::record_set(dns, &back).expect("record");
    assert_eq!(
        dns::record_state(dns, &back, &resources, Some(&not_landed), &dns::Mark::None),
        Ok(true),
        "already in place"
    );
}

#[test]
fn a_rule_moved_to_another_listener_of_the_same_load_balancer_goes_after_the_new_one() {
    let (status, mut observed) = converged(&spec(serde_json::json!({})));
    observed.listener = Some(Listener::Found(info(SAME_LB)));
    observed.rules = Vec::new();
    let p = run(&spec(on_listener(SAME_LB)), &status, &observed);
    assert_eq!(kinds(&p), ["CreateRule", "DeleteRule", "Report"]);
    assert_eq!(p.steps[1], Step::DeleteRule(entry(&status, "ListenerRule")));
}

#[test]
fn rule_edits_are_made_in_place_conditions_before_priority() {
    let (status, observed) = converged(&spec(serde_json::json!({})));
    let edited = spec(serde_json::json!({"loadBalancer": {"listenerRule": {
        "listenerArn": LISTENER, "pathPatterns": ["/v2/*"], "priority": 7}}}));
    let p = run(&edited, &status, &observed);
    assert_eq!(kinds(&p), ["ModifyRule", "SetRulePriority", "Report"]);
    let Step::SetRulePriority { arn, priority, taken, .. } = &p.steps[1] else { panic!() };
    assert_eq!((arn.as_str(), *priority, taken), (RULE, 7, &Taken::default()));
    assert_eq!(p.status.listener_rule_priority, Some(1), "set once the move lands");
}

#[test]
fn alias_to_cname_is_one_batch_deleting_the_alias_first() {
    let (status, mut observed) = converged(&spec(serde_json::json!({})));
    let (alias, alias_set) = record_left_behind(&status, &mut observed);
    let cname = spec(serde_json::json!({"dns": {"hostedZoneId": "Z1", "name": "web.example.com", "type": "CNAME"}}));
    let p = run(&cname, &status, &observed);
    assert_eq!(kinds(&p), ["ChangeRecords", "Report"]);
    let Step::ChangeRecords { zone, deletes, upsert: Some(write), zone_may_be_gone: false } = &p.steps[0] else {
        panic!("{:?}", p.steps)
    };
    assert_eq!((zone.as_str(), deletes.as_slice()), ("Z1", [(alias, alias_set)].as_slice()));
    assert_eq!(write.dns.record_type, DnsRecordType::CNAME);
    assert!(write.record.is_some(), "a new record is recorded before it is sent");
}

#[test]
fn removed_or_renamed_records_are_deleted_in_their_zone_or_forgotten_when_gone() {
    let (status, mut observed) = converged(&spec(serde_json::json!({})));
    let (old, set) = record_left_behind(&status, &mut observed);
    let removed = spec(serde_json::json!({"dns": null}));
    let p = run(&removed, &status, &observed);
    let delete = Step::ChangeRecords {
        zone: "Z1".into(),
        deletes: vec![(old.clone(), set)],
        upsert: None,
        zone_may_be_gone: true,
    };
    assert_eq!(p.steps, [delete, p.steps[1].clone()]);
    assert_eq!(landed(&p).url.as_deref(), Some(format!("http://{}/app/", info(LISTENER).dns_name).as_str()));

    // Renamed into another zone: the new name's zone first; an old record found gone is forgotten.
    observed.old_records = vec![(old.clone(), None)];
    let renamed = spec(serde_json::json!({"dns": {"hostedZoneId": "Z2", "name": "www.example.org"}}));
    let p = run(&renamed, &status, &observed);
    assert_eq!(kinds(&p), ["ForgetRecord", "ChangeRecords", "Report"]);
    assert_eq!(p.steps[0], Step::ForgetRecord(old));
    let Step::ChangeRecords { zone, upsert: Some(_), .. } = &p.steps[1] else { panic!() };
    assert_eq!(zone, "Z2");
}

#[test]
fn removing_the_load_balancer_detaches_the_service_before_rule_record_and_target_group_go() {
    let (status, mut observed) = converged(&spec(serde_json::json!({})));
    record_left_behind(&status, &mut observed);
    observed = Observed {
        service: observed.service,
        revision: observed.revision,
        old_records: observed.old_records,
        ..Default::default()
    };
    let bare = spec(serde_json::json!({"loadBalancer": null, "dns": null}));
    let p = run(&bare, &status, &observed);
    assert_eq!(kinds(&p), ["UpdateService", "ChangeRecords", "DeleteRule", "DeleteTargetGroup", "Report"]);
    let Step::UpdateService { update, target_group: None, .. } = &p.steps[0] else { panic!("{:?}", p.steps) };
    assert!(update.load_balancers && update.task_definition.is_none(), "{update:?}");
    assert_eq!(p.steps[2], Step::DeleteRule(entry(&status, "ListenerRule")));
    assert_eq!(p.steps[3], Step::DeleteTargetGroup(entry(&status, "TargetGroup")));
    let st = landed(&p);
    assert_eq!((&st.target_group_arn, &st.listener_rule_arn, &st.load_balancer_dns_name), (&None, &None, &None));
    assert!(p.status.load_balancer_dns_name.is_some(), "the old load balancer until the steps landed");
}

#[test]
fn another_cluster_gets_a_new_service_before_the_old_one_is_deleted() {
    let (status, mut observed) = converged(&spec(serde_json::json!({})));
    observed.service = None;
    let p = run(&spec(serde_json::json!({"cluster": "apps2"})), &status, &observed);
    assert_eq!(kinds(&p), ["CreateService", "DeleteService", "Report"]);
    assert_eq!(p.steps[1], Step::DeleteService(entry(&status, "Service")));
    let Step::CreateService { task_definition: Revision::Known(td), .. } = &p.steps[0] else { panic!() };
    assert_eq!(td, TD);
    // The same cluster (the service deleted behind our back): its entry names the service the
    // create makes again, and is kept.
    let p = run(&spec(serde_json::json!({})), &status, &observed);
    assert_eq!(kinds(&p), ["CreateService", "Report"]);
}

#[test]
fn a_rule_made_by_a_lost_create_goes_before_the_rule_on_the_new_load_balancer() {
    let (mut status, mut observed) = converged(&spec(serde_json::json!({})));
    let lost = inventory::listener_rule("arn:rule/lost", LISTENER);
    inventory::remove(&mut status.resources, LISTENER_RULE, RULE);
    let planned = inventory::planned(LISTENER_RULE, LISTENER);
    inventory::add(&mut status.resources, planned.clone());
    observed.listener = Some(Listener::Found(info(OTHER_LB)));
    observed.rules = Vec::new();
    observed.record = None;
    observed.planned = vec![(planned, vec![lost.clone()])];
    let p = run(&spec(on_listener(OTHER_LB)), &status, &observed);
    assert_eq!(kinds(&p)[..2], ["DeleteRule", "CreateRule"]);
    assert_eq!(p.steps[0], Step::DeleteRule(lost));
    assert!(p.status.resources.iter().all(|r| !inventory::is_planned(r)), "{:?}", p.status.resources);
}

#[test]
fn adoption_never_uses_what_its_lost_creates_made_and_refuses_the_rest() {
    let never = spec(serde_json::json!({"policy": {"adoption": "Never"}}));
    let (_, mut observed) = converged(&never);
    observed.rules = Vec::new();
    observed.record = None;
    let mut status = FargateAppStatus::default();
    let service_key = format!("apps/{}", names().family);
    for planned in [inventory::planned(TARGET_GROUP, &names().target_group), inventory::planned(SERVICE, &service_key)]
    {
        inventory::add(&mut status.resources, planned);
    }
    let p = run(&never, &status, &observed);
    assert_eq!(p.blocked, None);
    assert_eq!(kinds(&p), ["CreateRule", "ChangeRecords", "Report"], "the target group and service are used");
    assert!(p.status.resources.iter().all(|r| !inventory::is_planned(r)), "{:?}", p.status.resources);

    let p = run(&never, &FargateAppStatus::default(), &observed);
    assert_eq!((p.blocked.map(|b| b.reason), p.steps.len()), (Some("NameConflict"), 0));
}

#[test]
fn conflicts_stop_the_plan_after_what_could_safely_be_done() {
    let s = spec(serde_json::json!({}));
    let gone = Observed { listener: Some(Listener::Gone), ..Default::default() };
    let p = run(&s, &FargateAppStatus::default(), &gone);
    assert_eq!((p.blocked.map(|b| b.reason), p.steps.len()), (Some("ListenerNotFound"), 0));

    // A priority someone else holds: the target group is made, then the pass stops.
    let explicit = spec(
        serde_json::json!({"loadBalancer": {"listenerRule": {"listenerArn": LISTENER, "priority": 100, "pathPatterns": ["/app/*"]}}}),
    );
    let foreign = ObservedRule {
        arn: "arn:rule/foreign".into(),
        priority: Some(100),
        path_patterns: vec!["/someone-else/*".into()],
        ..Default::default()
    };
    let observed = Observed {
        listener: Some(Listener::Found(info(LISTENER))),
        rules: vec![foreign.clone()],
        ..Default::default()
    };
    let p = run(&explicit, &FargateAppStatus::default(), &observed);
    assert_eq!(kinds(&p), ["CreateTargetGroup", "SetDeregistrationDelay"]);
    assert_eq!(p.blocked.map(|b| b.reason), Some("PriorityConflict"));

    // A rule of someone else's that takes the same requests (no path condition: every path).
    let catch_all = ObservedRule { path_patterns: Vec::new(), priority: Some(5), ..foreign };
    let observed = Observed { rules: vec![catch_all], ..observed };
    let p = run(&s, &FargateAppStatus::default(), &observed);
    assert_eq!(p.blocked.as_ref().map(|b| b.reason), Some("RuleOverlap"));
    assert!(!kinds(&p).contains(&"CreateRule"));

    // An edit of our rule that would make the overlap is refused too; ours keeps its conditions.
    let (status, mut observed) = converged(&s);
    let other = ObservedRule {
        arn: "arn:rule/other".into(),
        priority: Some(300),
        path_patterns: vec!["/api/*".into()],
        ..Default::default()
    };
    observed.rules.push(other);
    assert_eq!(run(&s, &status, &observed).blocked, None, "/app/* and /api/* never meet");
    let widened =
        spec(serde_json::json!({"loadBalancer": {"listenerRule": {"listenerArn": LISTENER, "pathPatterns": ["/*"]}}}));
    let p = run(&widened, &status, &observed);
    assert_eq!(p.blocked.as_ref().map(|b| b.reason), Some("RuleOverlap"));
    assert!(!kinds(&p).iter().any(|k| k.contains("Rule")), "{:?}", kinds(&p));

    let (status, mut observed) = converged(&s);
    observed.cluster_missing = true;
    observed.service = None;
    let p = run(&s, &status, &observed);
    assert_eq!((kinds(&p).len(), p.blocked.map(|b| b.reason)), (0, Some("ClusterNotFound")));
}

#[test]
fn a_mark_decides_whose_a_record_is_and_an_unmarked_record_of_ours_gets_one() {
    let owner = crate::aws::naming::Owner {
        cluster_id: "prod".into(),
        namespace: "team".into(),
        kind: "FargateApp".into(),
        name: "web".into(),
        uid: "u-1".into(),
    };
    let mine = dns::mark_set("web.example.com", &owner).expect("mark");
    assert_eq!(mine.name(), "_fargate-operator.web.example.com.");
    assert!(matches!(dns::mark_of(Some(&mine), &owner), dns::Mark::Ours(_)));
    let other = crate::aws::naming::Owner { namespace: "other".into(), ..owner.clone() };
    assert_eq!(dns::mark_of(Some(&mine), &other), dns::Mark::Other("prod/team/FargateApp/web".into()));
    let foreign = aws_sdk_route53::types::ResourceRecordSet::builder()
        .name("_fargate-operator.web.example.com.")
        .r#type(aws_sdk_route53::types::RrType::Txt)
        .resource_records(
            aws_sdk_route53::types::ResourceRecord::builder().value("\"v=spf1 -all\"").build().expect("v"),
        )
        .build()
        .expect("set");
    assert_eq!(dns::mark_of(Some(&foreign), &owner), dns::Mark::None, "a TXT we did not write is no mark");

    // Another owner's mark refuses the name, even with no record there yet and whatever the
    // inventory says; an unmarked record of ours is rewritten with its mark.
    let spec = spec(serde_json::json!({}));
    let dns_spec = spec.dns.clone().expect("dns");
    let blocked =
        dns::record_state(&dns_spec, &info(LISTENER), &[], None, &dns::Mark::Other("prod/x/FargateApp/y".into()));
    assert!(blocked.is_err_and(|b| b.reason == "NameConflict" && b.message.contains("prod/x/FargateApp/y")));
    let (status, mut observed) = converged(&spec);
    observed.record_mark = dns::Mark::None;
    let p = run(&spec, &status, &observed);
    let write = p.steps.iter().find_map(|s| match s {
        Step::ChangeRecords { upsert: Some(w), deletes, .. } if deletes.is_empty() => Some(w),
        _ => None,
    });
    assert!(write.is_some_and(|w| w.mark && w.record.is_none()), "{:?}", p.steps);
    // A mark not read this pass (the record in place and recorded): nothing is written.
    observed.record_mark = dns::Mark::Unread;
    assert_eq!(kinds(&run(&spec, &status, &observed)), ["Report"]);
}
