//! The behaviours of the ELBv2 model that moto does not show (association limit, paging, the
//! default rule, world events, faults, replay by seed).

use futures::executor::block_on;

use super::*;
use crate::aws::errors::ErrorCategory;

const VPC: &str = "vpc-1";

fn health() -> TargetGroupHealthCheck {
    TargetGroupHealthCheck {
        path: "/health".into(),
        interval_seconds: 30,
        timeout_seconds: 5,
        healthy_threshold: 5,
        unhealthy_threshold: 2,
        matcher: "200".into(),
    }
}

fn group(name: &str) -> NewTargetGroup {
    NewTargetGroup {
        name: name.into(),
        protocol: "HTTP".into(),
        port: 8080,
        vpc_id: VPC.into(),
        health_check: health(),
        tags: Tags::from([("owner".into(), name.into())]),
    }
}

fn spec(path: &str, tg: &str) -> RuleSpec {
    RuleSpec { path_patterns: vec![path.into()], host_headers: vec![], target_group_arn: tg.into() }
}

/// A model with load balancer `a` (listener on 80, fixed 404) and `b` (listener on 80).
fn world(seed: u64) -> (ModelElbv2, String, String) {
    let m = ModelElbv2::new(seed, FaultRates::default(), "123456789012", "us-east-1");
    let fixed = || vec![Action::FixedResponse { status_code: "404".into() }];
    let a = m.create_load_balancer("a", VPC).unwrap();
    let b = m.create_load_balancer("b", VPC).unwrap();
    let la = m.create_listener(&a.arn, 80, fixed()).unwrap();
    let lb = m.create_listener(&b.arn, 80, fixed()).unwrap();
    (m, la.arn, lb.arn)
}

fn code<T: std::fmt::Debug>(r: Result<T, Classified>) -> (ErrorCategory, String) {
    let e = r.unwrap_err();
    (e.category, e.code)
}

#[test]
fn load_balancers_have_a_dns_name_and_the_regions_alias_zone() {
    let (m, la, _) = world(1);
    let l = block_on(m.describe_listener(&la)).unwrap().unwrap();
    let lb = block_on(m.describe_load_balancer(&l.load_balancer_arn)).unwrap().unwrap();
    assert!(lb.dns_name.starts_with("a-") && lb.dns_name.ends_with(".us-east-1.elb.amazonaws.com"), "{lb:?}");
    assert_eq!(lb.canonical_hosted_zone_id, "Z35SXDOTRQ7X7K");
    assert_eq!(code(block_on(m.describe_load_balancer(""))).1, "ValidationError");
    let gone = format!("{}0", l.load_balancer_arn);
    assert_eq!(
        code(block_on(m.describe_load_balancer(&gone))),
        (ErrorCategory::NotFound, "LoadBalancerNotFound".into())
    );
}

#[test]
fn a_target_group_serves_one_load_balancer() {
    let (m, la, lb) = world(2);
    let tg = block_on(m.create_target_group(&group("web"))).unwrap();
    block_on(m.create_rule(&la, 1, &spec("/a", &tg), &Tags::new())).unwrap();
    // Another rule on the same load balancer may forward to it …
    block_on(m.create_rule(&la, 2, &spec("/b", &tg), &Tags::new())).unwrap();
    // … a rule of another one may not, and nothing is created.
    let refused = code(block_on(m.create_rule(&lb, 1, &spec("/a", &tg), &Tags::new())));
    assert_eq!(refused, (ErrorCategory::Terminal, "TargetGroupAssociationLimit".into()));
    assert_eq!(m.rules().len(), 4, "two default rules and two rules on a");
    assert_eq!(m.target_groups()[0].load_balancer_arns.len(), 1);
    // Once a's rules are gone, b may take it; modifying b's rule back to it is no conflict with itself.
    let other = block_on(m.create_target_group(&group("other"))).unwrap();
    let rb = block_on(m.create_rule(&lb, 1, &spec("/a", &other), &Tags::new())).unwrap();
    for r in m.rules().into_iter().filter(|r| r.listener_arn == la && r.priority.is_some()) {
        block_on(m.delete_rule(&r.arn)).unwrap();
    }
    block_on(m.modify_rule(&rb, &spec("/a", &tg))).unwrap();
    block_on(m.modify_rule(&rb, &spec("/b", &tg))).unwrap();
}

#[test]
fn rules_are_listed_by_priority_in_pages_with_the_default_rule_last() {
    let (m, la, _) = world(3);
    m.set_limits(Limits { rules_page_size: 2, ..Limits::default() });
    let tg = block_on(m.create_target_group(&group("web"))).unwrap();
    for p in [30, 10, 20] {
        block_on(m.create_rule(&la, p, &spec(&format!("/{p}"), &tg), &Tags::new())).unwrap();
    }
    let first = block_on(m.describe_rules(&la, None)).unwrap();
    assert_eq!(first.rules.iter().map(|r| r.priority).collect::<Vec<_>>(), [Some(10), Some(20)]);
    // A rule created between pages at a priority already passed does not shift the next page.
    block_on(m.create_rule(&la, 5, &spec("/5", &tg), &Tags::new())).unwrap();
    let second = block_on(m.describe_rules(&la, first.next_marker.as_deref())).unwrap();
    assert_eq!(
        second.rules.iter().map(|r| (r.priority, r.is_default)).collect::<Vec<_>>(),
        [(Some(30), false), (None, true)]
    );
    assert_eq!(second.next_marker, None);
    assert_eq!(code(block_on(m.describe_rules(&la, Some("x")))).1, "ValidationError");
}

#[test]
fn priorities_and_the_default_rule_are_guarded() {
    let (m, la, _) = world(4);
    let tg = block_on(m.create_target_group(&group("web"))).unwrap();
    let r1 = block_on(m.create_rule(&la, 1, &spec("/a", &tg), &Tags::new())).unwrap();
    let r2 = block_on(m.create_rule(&la, 2, &spec("/b", &tg), &Tags::new())).unwrap();
    assert_eq!(code(block_on(m.create_rule(&la, 1, &spec("/c", &tg), &Tags::new()))).1, "PriorityInUse");
    assert_eq!(code(block_on(m.create_rule(&la, 50001, &spec("/c", &tg), &Tags::new()))).1, "ValidationError");
    assert_eq!(code(block_on(m.set_rule_priority(&r2, 1))), (ErrorCategory::Conflict, "PriorityInUse".into()));
    block_on(m.set_rule_priority(&r2, 2)).unwrap();
    block_on(m.set_rule_priority(&r1, 3)).unwrap();
    let default = m.listeners()[0].default_rule_arn.clone();
    let default = if m.rules().iter().any(|r| r.arn == default && r.listener_arn == la) {
        default
    } else {
        m.listeners()[1].default_rule_arn.clone()
    };
    assert_eq!(code(block_on(m.delete_rule(&default))).1, "OperationNotPermitted");
    assert_eq!(code(block_on(m.delete_rule(&format!("{r1}0")))), (ErrorCategory::NotFound, "RuleNotFound".into()));
    let no_condition = RuleSpec { target_group_arn: tg.clone(), ..RuleSpec::default() };
    assert_eq!(code(block_on(m.create_rule(&la, 9, &no_condition, &Tags::new()))).1, "ValidationError");
    m.set_limits(Limits { rules_per_load_balancer: 2, ..Limits::default() });
    assert_eq!(code(block_on(m.create_rule(&la, 9, &spec("/c", &tg), &Tags::new()))).1, "TooManyRules");
}

#[test]
fn target_groups_in_use_stay_and_weighted_forwards_count() {
    let (m, la, _) = world(5);
    let a = block_on(m.create_target_group(&group("a"))).unwrap();
    let b = block_on(m.create_target_group(&group("b"))).unwrap();
    let weighted = NewRule {
        path_patterns: vec!["/w".into()],
        host_headers: vec![],
        actions: vec![Action::Forward(vec![
            WeightedTarget { target_group_arn: a.clone(), weight: 9 },
            WeightedTarget { target_group_arn: b.clone(), weight: 1 },
        ])],
    };
    let r = m.add_rule(&la, 7, &weighted, &Tags::new()).unwrap();
    assert_eq!(code(block_on(m.delete_target_group(&b))), (ErrorCategory::Conflict, "ResourceInUse".into()));
    let listed = block_on(m.describe_rules(&la, None)).unwrap();
    assert_eq!(listed.rules[0].forward_to, [a.as_str()], "the first group of a weighted forward, as the SDK reads it");
    block_on(m.delete_rule(&r)).unwrap();
    block_on(m.delete_target_group(&b)).unwrap();
    block_on(m.delete_target_group(&b)).unwrap(); // already gone: success
    assert_eq!(code(block_on(m.describe_tags(std::slice::from_ref(&b)))).1, "TargetGroupNotFound");
}

#[test]
fn create_target_group_is_idempotent_by_name_and_settings() {
    let (m, _, _) = world(6);
    let first = block_on(m.create_target_group(&group("web"))).unwrap();
    assert_eq!(block_on(m.create_target_group(&group("web"))).unwrap(), first);
    let other = NewTargetGroup { port: 9090, ..group("web") };
    assert_eq!(
        code(block_on(m.create_target_group(&other))),
        (ErrorCategory::Conflict, "DuplicateTargetGroupName".into())
    );
    m.set_limits(Limits { target_groups: 1, ..Limits::default() });
    assert_eq!(code(block_on(m.create_target_group(&group("more")))).1, "TooManyTargetGroups");
    let attrs = block_on(m.describe_target_group_attributes(&first)).unwrap();
    assert_eq!(attrs.get(crate::aws::api::elbv2::DEREGISTRATION_DELAY).map(String::as_str), Some("300"));
}

#[test]
fn deleting_a_listener_or_load_balancer_takes_their_rules_and_frees_the_groups() {
    let (m, la, lb) = world(7);
    let tg = block_on(m.create_target_group(&group("web"))).unwrap();
    let target = TargetHealth { target_id: "10.0.0.1".into(), port: Some(8080), state: "healthy".into() };
    m.set_target_health(&tg, vec![target.clone()]).unwrap();
    assert_eq!(block_on(m.describe_target_health(&tg)).unwrap()[0].state, "unused", "no load balancer uses it yet");
    block_on(m.create_rule(&la, 1, &spec("/a", &tg), &Tags::new())).unwrap();
    assert_eq!(block_on(m.describe_target_health(&tg)).unwrap(), [target]);
    let (listener, kept): (Vec<_>, Vec<_>) = (
        m.listeners().into_iter().filter(|l| l.arn == la).collect(),
        m.rules().into_iter().filter(|r| r.listener_arn == la && r.priority.is_none()).collect(),
    );
    assert!(m.delete_listener(&la));
    assert_eq!(code(block_on(m.describe_rules(&la, None))).1, "ListenerNotFound");
    assert!(m.rules().iter().all(|r| r.listener_arn != la));
    assert!(m.restore_listener(&listener[0], &kept), "back with its default rule, the other rule gone");
    assert!(!m.restore_listener(&listener[0], &kept), "only once");
    assert_eq!(block_on(m.describe_rules(&la, None)).unwrap().rules.len(), 1);
    assert!(m.delete_listener(&la));
    block_on(m.create_rule(&lb, 1, &spec("/a", &tg), &Tags::new())).unwrap();
    let b = m.listeners()[0].load_balancer_arn.clone();
    assert!(m.delete_load_balancer(&b));
    assert!(m.listeners().is_empty() && m.rules().is_empty() && m.load_balancers().len() == 1);
    block_on(m.delete_target_group(&tg)).unwrap();
}

#[test]
fn describe_tags_takes_at_most_twenty_arns() {
    let (m, la, _) = world(8);
    let arns: Vec<String> =
        (0..21).map(|i| block_on(m.create_target_group(&group(&format!("g{i}")))).unwrap()).collect();
    assert_eq!(code(block_on(m.describe_tags(&arns))).1, "ValidationError");
    let tags = block_on(m.describe_tags(&arns[..20])).unwrap();
    assert_eq!(tags.len(), 20);
    assert_eq!(tags[&arns[3]]["owner"], "g3");
    let rule = block_on(m.create_rule(&la, 1, &spec("/a", &arns[0]), &Tags::from([("k".into(), "v".into())]))).unwrap();
    assert_eq!(block_on(m.describe_tags(&[rule, la])).unwrap().values().map(Tags::len).sum::<usize>(), 1);
}

#[test]
fn faults_refuse_or_lose_answers_and_a_seed_replays() {
    let (m, la, _) = world(9);
    m.set_faults(FaultRates { throttle: 1.0, ..FaultRates::default() });
    assert_eq!(code(block_on(m.create_target_group(&group("web")))).0, ErrorCategory::Throttling);
    assert!(m.target_groups().is_empty(), "a throttled call does nothing");
    m.set_faults(FaultRates { lost: 1.0, ..FaultRates::default() });
    assert_eq!(code(block_on(m.create_target_group(&group("web")))).0, ErrorCategory::Transient);
    assert_eq!(m.target_groups().len(), 1, "a lost answer executed");
    m.set_faults(FaultRates::default());
    let arn = block_on(m.create_target_group(&group("web"))).unwrap();
    assert_eq!(m.target_groups()[0].arn, arn, "the retry finds the group it made");

    let run = |seed| {
        let (m, la, _) = world(seed);
        m.set_faults(FaultRates { throttle: 0.3, server_error: 0.1, lost: 0.2, ..FaultRates::default() });
        let outcomes: Vec<String> = (0..30)
            .map(|i| format!("{:?}", block_on(m.create_target_group(&group(&format!("g{i}"))))))
            .chain((0..30).map(|_| format!("{:?}", block_on(m.describe_rules(&la, None)).map(|r| r.rules.len()))))
            .collect();
        (outcomes, m.target_groups())
    };
    assert_eq!(run(42), run(42));
    assert_ne!(run(42).0, run(43).0);
    let _ = la;
}
