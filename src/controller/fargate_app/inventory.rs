//! The FargateApp's ownership inventory (`status.resources`): its target group, listener rule, ECS
//! service, task definition family and Route 53 record. Each pass records what it made or adopted
//! as it lands; what the spec no longer wants (a rule on the old listener, a renamed record, the
//! target group of a removed `loadBalancer`) is found here, purely, from the inventory and the
//! spec; the pass's plan turns it into delete steps. Objects made before the inventory existed are
//! recorded from the status fields of that time the first time a pass sees them.

use crate::api::OwnedResource;
use crate::api::fargate_app::{DnsRecordType, DnsSpec, FargateAppSpec, FargateAppStatus};
use crate::api::validation::normalize_zone_id;
pub use crate::controller::inventory::{RECORD, add, parse_record_id, put, record_id, remove, unwanted};

/// `type` of the target group entry (id: ARN).
pub const TARGET_GROUP: &str = "TargetGroup";
/// `type` of the listener rule entry (id: ARN, parent: listener ARN).
pub const LISTENER_RULE: &str = "ListenerRule";
/// `type` of the ECS service entry (id: ARN, parent: cluster as the spec named it).
pub const SERVICE: &str = "Service";
/// `type` of the task definition family entry (id: family; only revisions carrying our owner tags
/// are ever deregistered).
pub const TASK_DEFINITION_FAMILY: &str = "TaskDefinitionFamily";

/// A target group entry.
pub fn target_group(arn: &str) -> OwnedResource {
    OwnedResource { type_: TARGET_GROUP.into(), id: arn.into(), parent: None, name: None }
}

/// A listener rule entry.
pub fn listener_rule(arn: &str, listener_arn: &str) -> OwnedResource {
    OwnedResource { type_: LISTENER_RULE.into(), id: arn.into(), parent: Some(listener_arn.into()), name: None }
}

/// An ECS service entry.
pub fn service(arn: &str, cluster: &str) -> OwnedResource {
    OwnedResource { type_: SERVICE.into(), id: arn.into(), parent: Some(cluster.into()), name: None }
}

/// A task definition family entry.
pub fn family(name: &str) -> OwnedResource {
    OwnedResource { type_: TASK_DEFINITION_FAMILY.into(), id: name.into(), parent: None, name: None }
}

/// The id prefix of a create recorded before it was sent, whose answer has not come yet.
const PLANNED: &str = "planned:";

/// A create of a `type_` object named `key`, recorded before it is sent: after a lost answer it
/// tells the next pass that the object with that name and our tags is this object's own.
pub fn planned(type_: &str, key: &str) -> OwnedResource {
    OwnedResource { type_: type_.into(), id: format!("{PLANNED}{key}"), parent: None, name: None }
}

/// The name a planned create was recorded with (None for any other entry).
pub fn planned_key(entry: &OwnedResource) -> Option<&str> {
    entry.id.strip_prefix(PLANNED)
}

/// Whether `entry` is a planned create (no AWS id yet).
pub fn is_planned(entry: &OwnedResource) -> bool {
    entry.id.starts_with(PLANNED)
}

/// Route 53 type of a record of `record_type`.
pub fn rr_type(record_type: DnsRecordType) -> &'static str {
    match record_type {
        DnsRecordType::Alias => "A",
        DnsRecordType::CNAME => "CNAME",
    }
}

/// Inventory id of the record `dns` asks for.
pub fn dns_record_id(dns: &DnsSpec) -> String {
    record_id(normalize_zone_id(&dns.hosted_zone_id), &dns.name, rr_type(dns.record_type), None)
}

/// The record entry for `dns`, written to point at `target` (a load balancer DNS name). The target
/// is what makes the record ours: records carry no tags.
pub fn record(dns: &DnsSpec, target: &str) -> OwnedResource {
    OwnedResource { type_: RECORD.into(), id: dns_record_id(dns), parent: None, name: Some(target.into()) }
}

/// Whether `app` as it is now (`None`: gone) wants the record of entry `id`: not being deleted, and
/// its `dns` naming that record behind a listener rule.
pub fn wants_record(app: Option<&crate::api::fargate_app::FargateApp>, id: &str) -> bool {
    app.filter(|a| a.metadata.deletion_timestamp.is_none())
        .filter(|a| a.spec.load_balancer.as_ref().is_some_and(|lb| lb.listener_rule.is_some()))
        .and_then(|a| a.spec.dns.as_ref())
        .is_some_and(|dns| dns_record_id(dns) == id)
}

/// The listener ARN a rule ARN belongs to:
/// `…:listener-rule/app/<lb>/<lb id>/<listener id>/<rule id>` → `…:listener/app/<lb>/<lb id>/<listener id>`.
pub fn listener_of_rule(rule_arn: &str) -> Option<String> {
    let (head, path) = rule_arn.split_once(":listener-rule/")?;
    let (listener_path, _rule_id) = path.rsplit_once('/')?;
    Some(format!("{head}:listener/{listener_path}"))
}

/// The load balancer part of a listener ARN (`app/<lb>/<lb id>`): two listeners with the same one
/// are on the same load balancer.
pub fn load_balancer_of_listener(listener_arn: &str) -> Option<&str> {
    let (_, path) = listener_arn.split_once(":listener/")?;
    path.rsplit_once('/').map(|(lb, _)| lb)
}

/// The service name of an ECS service ARN (`…:service/<cluster>/<name>` or `…:service/<name>`).
pub fn service_name(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// Record what an object made before the inventory existed, from the status fields of that time.
/// Runs once: an inventory that has entries is left as it is.
pub fn seed_from_status(spec: &FargateAppSpec, status: &mut FargateAppStatus) {
    if !status.resources.is_empty() {
        return;
    }
    let mut seeded = Vec::new();
    if let Some(arn) = &status.target_group_arn {
        add(&mut seeded, target_group(arn));
    }
    if let Some(arn) = &status.listener_rule_arn
        && let Some(listener) = listener_of_rule(arn)
    {
        add(&mut seeded, listener_rule(arn, &listener));
    }
    if let Some(arn) = &status.service_arn {
        add(&mut seeded, service(arn, &spec.cluster));
    }
    if let Some(f) = status.task_definition_arn.as_deref().and_then(super::ecs::family_of) {
        add(&mut seeded, family(f));
    }
    if let (Some(dns), Some(target)) = (&spec.dns, &status.load_balancer_dns_name) {
        add(&mut seeded, record(dns, target));
    }
    status.resources = seeded;
}

/// Listener rule entries on a load balancer other than `listener_arn`'s: an ALB target group can
/// be forwarded to by one load balancer only, so these go before the rule on the new one is made.
pub fn rules_on_other_load_balancers<'a>(resources: &'a [OwnedResource], listener_arn: &str) -> Vec<&'a OwnedResource> {
    let lb = load_balancer_of_listener(listener_arn);
    resources
        .iter()
        .filter(|r| r.type_ == LISTENER_RULE && !is_planned(r) && r.parent.as_deref() != Some(listener_arn))
        .filter(|r| lb.is_none() || r.parent.as_deref().and_then(load_balancer_of_listener) != lb)
        .collect()
}

/// What a pass keeps: the entries the spec still wants. Everything else in the inventory is
/// deleted by the pass, in the order rules → records → services → target groups.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Wanted<'a> {
    /// The rule in place for `spec.loadBalancer.listenerRule`.
    pub rule: Option<&'a str>,
    /// The record id of `spec.dns`, when it is written.
    pub record: Option<String>,
    /// The service in `spec.cluster`.
    pub service: Option<&'a str>,
    /// The target group of `spec.loadBalancer`.
    pub target_group: Option<&'a str>,
}

/// The entries `wanted` does not keep, in deletion order.
pub fn unwanted_entries(resources: &[OwnedResource], wanted: &Wanted<'_>) -> Vec<OwnedResource> {
    let record = wanted.record.as_deref();
    [(LISTENER_RULE, wanted.rule), (RECORD, record), (SERVICE, wanted.service), (TARGET_GROUP, wanted.target_group)]
        .into_iter()
        .flat_map(|(type_, keep)| unwanted(resources, type_, keep.as_slice()).into_iter().cloned())
        .filter(|e| !is_planned(e))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/shared/50dc6c495c0c9188/f2f7dc8efc522ab2/9683b2d02a6cabee";
    const LISTENER: &str =
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/shared/50dc6c495c0c9188/f2f7dc8efc522ab2";
    const OTHER_LISTENER_SAME_LB: &str =
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/shared/50dc6c495c0c9188/0000000000000001";
    const LISTENER_OTHER_LB: &str =
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/other/1111111111111111/f2f7dc8efc522ab2";

    #[test]
    fn arns_give_their_listener_load_balancer_and_service_name() {
        assert_eq!(listener_of_rule(RULE).as_deref(), Some(LISTENER));
        assert_eq!(listener_of_rule("garbage"), None);
        assert_eq!(load_balancer_of_listener(LISTENER), Some("app/shared/50dc6c495c0c9188"));
        assert_eq!(load_balancer_of_listener(OTHER_LISTENER_SAME_LB), load_balancer_of_listener(LISTENER));
        assert_ne!(load_balancer_of_listener(LISTENER_OTHER_LB), load_balancer_of_listener(LISTENER));
        assert_eq!(service_name("arn:aws:ecs:us-east-1:1:service/apps/fa-web-1"), "fa-web-1");
        assert_eq!(service_name("arn:aws:ecs:us-east-1:1:service/fa-web-1"), "fa-web-1");
    }

    #[test]
    fn only_rules_on_another_load_balancer_go_first() {
        let resources = vec![listener_rule("r1", LISTENER), listener_rule("r2", LISTENER_OTHER_LB)];
        let first = |listener: &str| -> Vec<String> {
            rules_on_other_load_balancers(&resources, listener).iter().map(|r| r.id.clone()).collect()
        };
        assert_eq!(first(OTHER_LISTENER_SAME_LB), ["r2"]);
        assert_eq!(first(LISTENER_OTHER_LB), ["r1"]);
        assert_eq!(first("unparsable"), ["r1", "r2"], "a listener ARN that does not parse: every rule elsewhere");
    }

    fn dns(name: &str, record_type: DnsRecordType) -> DnsSpec {
        serde_json::from_value(serde_json::json!({
            "hostedZoneId": "/hostedzone/Z1", "name": name, "type": format!("{record_type:?}")
        }))
        .expect("a DnsSpec")
    }

    #[test]
    fn everything_not_wanted_is_unwanted_in_deletion_order() {
        let mut r = Vec::new();
        for e in [
            target_group("tg-old"),
            target_group("tg"),
            service("svc", "apps"),
            listener_rule("rule-old", LISTENER),
            listener_rule("rule", LISTENER),
            record(&dns("old.example.com", DnsRecordType::Alias), "lb"),
            record(&dns("web.example.com", DnsRecordType::Alias), "lb"),
            family("fa-web"),
        ] {
            add(&mut r, e);
        }
        let wanted = Wanted {
            rule: Some("rule"),
            record: Some(dns_record_id(&dns("web.example.com.", DnsRecordType::Alias))),
            service: Some("svc"),
            target_group: Some("tg"),
        };
        let gone: Vec<(String, String)> = unwanted_entries(&r, &wanted).into_iter().map(|e| (e.type_, e.id)).collect();
        assert_eq!(
            gone,
            [
                (LISTENER_RULE.to_string(), "rule-old".to_string()),
                (RECORD.to_string(), "Z1/old.example.com/A".to_string()),
                (TARGET_GROUP.to_string(), "tg-old".to_string()),
            ]
        );
        // The Alias record is unwanted once the spec asks for a CNAME at the same name.
        let cname = Wanted { record: Some(dns_record_id(&dns("web.example.com", DnsRecordType::CNAME))), ..wanted };
        assert!(unwanted_entries(&r, &cname).iter().any(|e| e.id == "Z1/web.example.com/A"));
        // Nothing wanted: every entry but the family goes, rules first and target groups last.
        let all = unwanted_entries(&r, &Wanted::default());
        assert_eq!(all.len(), 7);
        assert_eq!(all.first().map(|e| e.type_.as_str()), Some(LISTENER_RULE));
        assert_eq!(all.last().map(|e| e.type_.as_str()), Some(TARGET_GROUP));
    }

    #[test]
    fn a_record_is_wanted_only_by_a_live_app_whose_dns_names_it_behind_a_rule() {
        let app = |dns: serde_json::Value, deleting: bool| -> crate::api::fargate_app::FargateApp {
            let mut v = serde_json::json!({
                "apiVersion": "fargate.operator.dev/v1alpha1", "kind": "FargateApp",
                "metadata": {"name": "web", "namespace": "team-a"},
                "spec": {
                    "cluster": "apps", "cpu": 256, "memory": 512,
                    "network": {"subnets": ["s"]},
                    "containers": [{"name": "web", "image": "nginx", "port": 80}],
                    "loadBalancer": {"listenerRule": {"listenerArn": LISTENER, "pathPatterns": ["/*"]}},
                    "dns": dns
                }
            });
            if deleting {
                v["metadata"]["deletionTimestamp"] = serde_json::json!("2026-12-06T00:00:00Z");
            }
            serde_json::from_value(v).expect("a FargateApp")
        };
        let web = serde_json::json!({"hostedZoneId": "Z1", "name": "web.example.com"});
        let id = dns_record_id(&serde_json::from_value(web.clone()).expect("dns"));
        assert!(wants_record(Some(&app(web.clone(), false)), &id));
        assert!(!wants_record(Some(&app(web, true)), &id), "being deleted");
        assert!(!wants_record(None, &id), "gone");
        let renamed = serde_json::json!({"hostedZoneId": "Z1", "name": "www.example.com"});
        assert!(!wants_record(Some(&app(renamed, false)), &id), "renamed");
        let mut no_rule = app(serde_json::json!({"hostedZoneId": "Z1", "name": "web.example.com"}), false);
        no_rule.spec.load_balancer = None;
        assert!(!wants_record(Some(&no_rule), &id), "no listener rule to point at");
    }

    #[test]
    fn status_fields_of_before_the_inventory_are_recorded_once() {
        let spec: FargateAppSpec = serde_json::from_value(serde_json::json!({
            "cluster": "apps",
            "cpu": 256,
            "memory": 512,
            "network": {"subnets": ["s"]},
            "containers": [{"name": "web", "image": "nginx"}],
            "dns": {"hostedZoneId": "Z1", "name": "web.example.com"}
        }))
        .expect("a FargateAppSpec");
        let mut status = FargateAppStatus {
            target_group_arn: Some("tg".into()),
            listener_rule_arn: Some(RULE.into()),
            service_arn: Some("arn:aws:ecs:us-east-1:1:service/apps/fa".into()),
            task_definition_arn: Some("arn:aws:ecs:us-east-1:1:task-definition/fa-web:3".into()),
            load_balancer_dns_name: Some("shared-1.elb.amazonaws.com".into()),
            ..Default::default()
        };
        seed_from_status(&spec, &mut status);
        let types: Vec<&str> = status.resources.iter().map(|r| r.type_.as_str()).collect();
        assert_eq!(types, [LISTENER_RULE, RECORD, SERVICE, TARGET_GROUP, TASK_DEFINITION_FAMILY]);
        let rule = status.resources.iter().find(|r| r.type_ == LISTENER_RULE).expect("rule");
        assert_eq!(rule.parent.as_deref(), Some(LISTENER));
        let before = status.resources.clone();
        status.target_group_arn = Some("another".into());
        seed_from_status(&spec, &mut status);
        assert_eq!(status.resources, before, "a recorded inventory is not seeded again");
    }
}
