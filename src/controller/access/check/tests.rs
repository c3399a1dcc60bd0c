use serde_json::json;

use super::*;

fn policy(name: &str, allow: serde_json::Value) -> AccessPolicy {
    serde_json::from_value(json!({
        "apiVersion": "fargate.operator.dev/v1alpha1", "kind": "AccessPolicy",
        "metadata": {"name": name},
        "spec": {"namespaces": ["team-a"], "allow": allow}
    }))
    .unwrap()
}

fn team_a() -> AccessPolicy {
    policy(
        "team-a",
        json!({
            "roles": ["arn:aws:iam::111122223333:role/team-a-*"],
            "listeners": [{"arn": "arn:aws:elasticloadbalancing:eu-west-1:111122223333:listener/app/shared/1/2",
                           "priorityRange": {"min": 100, "max": 199}}],
            "hostedZones": [{"id": "Z0APPS", "names": ["*.team-a.example.com"]}, {"id": "Z0TEAMA"}],
            "clusters": ["apps"],
            "subnets": ["*"],
            "securityGroups": ["sg-0team-a"],
            "taskDefinitionFamilies": ["team-a-*"],
            "maxPoolTasks": 10
        }),
    )
}

const LISTENER: &str = "arn:aws:elasticloadbalancing:eu-west-1:111122223333:listener/app/shared/1/2";

fn u(field: &str, what: What) -> Use {
    Use { field: field.into(), what }
}

fn listener(priority: Option<i32>, min: i32, max: i32) -> Use {
    u(
        "spec.loadBalancer.listenerRule.listenerArn",
        What::Listener { arn: LISTENER.into(), priority, range: PriorityRange { min, max } },
    )
}

fn record(zone: &str, name: Option<&str>) -> Use {
    u(
        "spec.dns.hostedZoneId",
        What::Record { zone: zone.into(), name: name.map(str::to_string), name_field: "spec.dns.name".into() },
    )
}

fn refusal(uses: &[Use]) -> String {
    let p = team_a();
    decide("team-a", &[&p], false, uses).expect_err("refused")
}

#[test]
fn globs_match_runs_of_any_characters() {
    assert!(glob_match("*", ""));
    assert!(glob_match("team-a-*", "team-a-web"));
    assert!(glob_match("*.team-a.example.com", "api.v2.team-a.example.com"));
    assert!(!glob_match("*.team-a.example.com", "team-a.example.com"));
    assert!(glob_match("a*b*c", "aXbYbZc"));
    assert!(!glob_match("a*b*c", "aXbYbZ"));
    assert!(!glob_match("sg-0team-a", "sg-0team-ab"));
    // Long hostile input stays fast (no exponential backtracking).
    let text = "a".repeat(5000);
    assert!(!glob_match(&format!("{}b", "*a".repeat(50)), &text));
}

#[test]
fn what_the_policy_allows_passes_and_narrows_an_automatic_priority() {
    let p = team_a();
    let uses = [
        u("spec.aws.roleArn", What::Role("arn:aws:iam::111122223333:role/team-a-deploy".into())),
        u("spec.cluster", What::Cluster("arn:aws:ecs:eu-west-1:111122223333:cluster/apps".into())),
        u("spec.network.subnets[0]", What::Subnet("subnet-1".into())),
        u("spec.network.securityGroups[0]", What::SecurityGroup("sg-0team-a".into())),
        listener(None, 1, 50000),
        record("/hostedzone/Z0APPS", Some("Web.Team-A.example.com.")),
        record("Z0TEAMA", Some("anything.example.org")),
        u("spec.versions[0].taskDefinition", What::TaskDefinitionFamily("team-a-worker".into())),
        u("spec.versions[].scaleTo", What::PoolTasks { own: 4, others: 6 }),
    ];
    let grant = decide("team-a", &[&p], true, &uses).expect("allowed");
    assert_eq!(grant.priority_range, Some(PriorityRange { min: 100, max: 199 }));
    // A range already inside needs no narrowing; an explicit priority inside is allowed.
    assert_eq!(decide("team-a", &[&p], true, &[listener(None, 150, 160)]), Ok(Grant::default()));
    assert_eq!(decide("team-a", &[&p], true, &[listener(Some(120), 1, 50000)]), Ok(Grant::default()));
    assert_eq!(
        decide("team-a", &[&p], true, &[listener(None, 150, 500)]).map(|g| g.priority_range),
        Ok(Some(PriorityRange { min: 150, max: 199 }))
    );
}

#[test]
fn each_refusal_names_the_field_the_value_and_the_policy() {
    let cases = [
        (u("spec.taskRoleArn", What::Role("arn:aws:iam::111122223333:role/team-b-app".into())), "spec.taskRoleArn"),
        (u("spec.cluster", What::Cluster("other".into())), "spec.cluster"),
        (u("spec.network.securityGroups[1]", What::SecurityGroup("sg-0team-b".into())), "securityGroups[1]"),
        (
            u("spec.loadBalancer.additionalTargetGroupArns[0]", What::TargetGroup("arn:tg/b".into())),
            "additionalTargetGroupArns[0]",
        ),
        (u("spec.versions[2].taskDefinition", What::TaskDefinitionFamily("team-b-w".into())), "versions[2]"),
        (record("Z0TEAMB", Some("x.team-b.example.com")), "spec.dns.hostedZoneId"),
        (record("Z0APPS", Some("web.team-b.example.com")), "spec.dns.name"),
        (listener(Some(5), 1, 50000), "spec.loadBalancer.listenerRule.priority"),
        (listener(None, 1, 99), "spec.loadBalancer.listenerRule.priorityRange"),
        (u("spec.versions[].scaleTo", What::PoolTasks { own: 5, others: 6 }), "scaleTo"),
    ];
    for (use_, field) in cases {
        let message = refusal(std::slice::from_ref(&use_));
        assert!(message.contains(field), "{use_:?}: {message}");
        assert!(message.contains("AccessPolicy team-a"), "{message}");
    }
    let other = u(
        "spec.loadBalancer.listenerRule.listenerArn",
        What::Listener { arn: format!("{LISTENER}x"), priority: None, range: PriorityRange::default() },
    );
    assert!(refusal(&[other]).starts_with("spec.loadBalancer.listenerRule.listenerArn: listener"));
    // A list left out allows nothing of its kind.
    assert!(
        refusal(&[u("spec.loadBalancer.additionalTargetGroupArns[0]", What::TargetGroup("t".into()))])
            .contains("allow.targetGroups: nothing")
    );
}

#[test]
fn a_namespace_no_policy_names_may_use_anything_unless_policies_are_required() {
    let uses = [u("spec.cluster", What::Cluster("apps".into()))];
    assert_eq!(decide("team-c", &[], false, &uses), Ok(Grant::default()));
    let message = decide("team-c", &[], true, &uses).expect_err("refused");
    assert!(message.contains("--require-access-policy") && message.contains("team-c"), "{message}");
    // Nothing used, nothing refused.
    assert_eq!(decide("team-c", &[], true, &[]), Ok(Grant::default()));
}

#[test]
fn several_policies_allow_what_any_of_them_allows() {
    let a = team_a();
    let extra = policy("shared-tg", json!({"targetGroups": ["arn:tg/shared"], "maxPoolTasks": 50}));
    let uses = [
        u("spec.loadBalancer.additionalTargetGroupArns[0]", What::TargetGroup("arn:tg/shared".into())),
        u("spec.versions[].scaleTo", What::PoolTasks { own: 40, others: 0 }),
    ];
    assert_eq!(decide("team-a", &[&a, &extra], false, &uses), Ok(Grant::default()));
    let message =
        decide("team-a", &[&a, &extra], false, &[u("spec.cluster", What::Cluster("x".into()))]).expect_err("refused");
    assert!(message.contains("AccessPolicies team-a, shared-tg"), "{message}");
    // One policy without a pool limit lifts it.
    let unlimited = policy("unlimited", json!({}));
    let huge = [u("spec.versions[].scaleTo", What::PoolTasks { own: 100_000, others: i64::MAX })];
    assert_eq!(decide("team-a", &[&a, &unlimited], false, &huge), Ok(Grant::default()));
    assert!(decide("team-a", &[&a], false, &huge).is_err(), "no overflow into an allowance");
}

#[test]
fn a_delegation_is_checked_on_its_zone_first_and_on_its_name_once_known() {
    let p = team_a();
    let zone_only =
        u("spec.delegation.parentHostedZoneId", crate::controller::access::uses::delegation("Z0APPS", None));
    assert_eq!(decide("team-a", &[&p], false, &[zone_only]), Ok(Grant::default()));
    let named = |name| {
        u("spec.delegation.parentHostedZoneId", crate::controller::access::uses::delegation("Z0APPS", Some(name)))
    };
    assert_eq!(decide("team-a", &[&p], false, &[named("dr.team-a.example.com.")]), Ok(Grant::default()));
    assert!(refusal(&[named("team-b.example.com.")]).contains("spec.delegation.parentHostedZoneId"));
}
