//! What each kind's spec uses in AWS, field by field, for the AccessPolicy gate.

use super::check::{Use, What};
use crate::api::{AwsOverride, DnsFailoverSpec, FargateAppSpec, HotPoolSpec, NetworkConfig};

fn push(uses: &mut Vec<Use>, field: impl Into<String>, what: What) {
    uses.push(Use { field: field.into(), what });
}

fn aws(uses: &mut Vec<Use>, aws: Option<&AwsOverride>) {
    if let Some(role) = aws.and_then(|a| a.role_arn.as_ref()) {
        push(uses, "spec.aws.roleArn", What::Role(role.clone()));
    }
}

fn network(uses: &mut Vec<Use>, net: &NetworkConfig) {
    for (i, s) in net.subnets.iter().enumerate() {
        push(uses, format!("spec.network.subnets[{i}]"), What::Subnet(s.clone()));
    }
    for (i, s) in net.security_groups.iter().enumerate() {
        push(uses, format!("spec.network.securityGroups[{i}]"), What::SecurityGroup(s.clone()));
    }
}

/// A task definition family from `family`, `family:revision` or a task definition ARN.
pub fn family(task_definition: &str) -> &str {
    let tail = task_definition.rsplit_once(":task-definition/").map_or(task_definition, |(_, t)| t);
    tail.split_once(':').map_or(tail, |(f, _)| f)
}

/// A FargateApp's uses: its role, roles passed to ECS, cluster, network, listener, extra target
/// groups and record.
pub fn fargate_app(spec: &FargateAppSpec) -> Vec<Use> {
    let mut uses = Vec::new();
    aws(&mut uses, spec.aws.as_ref());
    if let Some(r) = &spec.task_role_arn {
        push(&mut uses, "spec.taskRoleArn", What::Role(r.clone()));
    }
    if let Some(r) = &spec.execution_role_arn {
        push(&mut uses, "spec.executionRoleArn", What::Role(r.clone()));
    }
    push(&mut uses, "spec.cluster", What::Cluster(spec.cluster.clone()));
    network(&mut uses, &spec.network);
    if let Some(lb) = &spec.load_balancer {
        if let Some(rule) = &lb.listener_rule {
            push(
                &mut uses,
                "spec.loadBalancer.listenerRule.listenerArn",
                What::Listener {
                    arn: rule.listener_arn.clone(),
                    priority: rule.priority,
                    range: rule.priority_range.clone(),
                },
            );
        }
        for (i, tg) in lb.additional_target_group_arns.iter().enumerate() {
            push(&mut uses, format!("spec.loadBalancer.additionalTargetGroupArns[{i}]"), What::TargetGroup(tg.clone()));
        }
    }
    if let Some(dns) = &spec.dns {
        push(
            &mut uses,
            "spec.dns.hostedZoneId",
            What::Record {
                zone: dns.hosted_zone_id.clone(),
                name: Some(dns.name.clone()),
                name_field: "spec.dns.name".into(),
            },
        );
    }
    uses
}

/// A DnsFailover's uses: its role, the record pair's zone and name, and the parent zone of a
/// delegation (whose name, the delegated zone's, is checked once the zone is read).
pub fn dns_failover(spec: &DnsFailoverSpec) -> Vec<Use> {
    let mut uses = Vec::new();
    aws(&mut uses, spec.aws.as_ref());
    push(
        &mut uses,
        "spec.hostedZoneId",
        What::Record {
            zone: spec.hosted_zone_id.clone(),
            name: Some(spec.name.clone()),
            name_field: "spec.name".into(),
        },
    );
    if let Some(d) = &spec.delegation {
        push(&mut uses, "spec.delegation.parentHostedZoneId", delegation(&d.parent_hosted_zone_id, None));
    }
    uses
}

/// The NS delegation of zone `name` (unknown before the zone is read) in `parent`.
pub fn delegation(parent: &str, name: Option<&str>) -> What {
    What::Record {
        zone: parent.to_string(),
        name: name.map(str::to_string),
        name_field: "spec.delegation.parentHostedZoneId".into(),
    }
}

/// A HotPool's uses: its role, cluster, network, task definition families and idle tasks
/// (`others`: those the namespace's other HotPools keep).
pub fn hot_pool(spec: &HotPoolSpec, others: i64) -> Vec<Use> {
    let mut uses = Vec::new();
    aws(&mut uses, spec.aws.as_ref());
    push(&mut uses, "spec.cluster", What::Cluster(spec.cluster.clone()));
    network(&mut uses, &spec.network);
    for (i, v) in spec.versions.iter().enumerate() {
        push(
            &mut uses,
            format!("spec.versions[{i}].taskDefinition"),
            What::TaskDefinitionFamily(family(&v.task_definition).to_string()),
        );
    }
    push(&mut uses, "spec.versions[].scaleTo", What::PoolTasks { own: pool_tasks(spec), others });
    uses
}

/// The idle tasks a HotPool keeps: `scaleTo` summed over its pooling versions.
pub fn pool_tasks(spec: &HotPoolSpec) -> i64 {
    spec.versions.iter().filter(|v| v.pooling).map(|v| i64::from(v.scale_to.max(0))).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_family_is_read_from_every_task_definition_form() {
        assert_eq!(family("worker"), "worker");
        assert_eq!(family("worker:7"), "worker");
        assert_eq!(family("arn:aws:ecs:eu-west-1:111122223333:task-definition/worker:7"), "worker");
    }
}
