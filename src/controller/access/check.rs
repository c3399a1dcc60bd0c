//! The pure AccessPolicy decision: given the policies that name a namespace and what one object
//! uses, is every use allowed, and which rule priorities may an automatic priority take.

use crate::api::AccessPolicy;
use crate::api::access_policy::Allow;
use crate::api::fargate_app::PriorityRange;

/// The condition reason of a refusal.
pub const REASON_NOT_PERMITTED: &str = "NotPermitted";

/// One AWS object a spec field names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Use {
    /// The field, as a user writes it: `spec.network.securityGroups[0]`.
    pub field: String,
    /// What it names.
    pub what: What,
}

/// The AWS objects an AccessPolicy governs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum What {
    /// An IAM role ARN (assumed, passed to ECS as task or execution role).
    Role(String),
    /// A listener rule on `arn`: at `priority`, or (unset) the lowest free one in `range`. The
    /// use's field is the rule's `listenerArn`; refusals of a priority name its siblings.
    Listener { arn: String, priority: Option<i32>, range: PriorityRange },
    /// A record `name` in zone `zone`; `name_field` is the name's field. `None`: only the zone is
    /// checked now (an NS delegation, whose name is the delegated zone's, known after a read).
    Record { zone: String, name: Option<String>, name_field: String },
    /// An ECS cluster, by name or ARN.
    Cluster(String),
    /// A subnet id.
    Subnet(String),
    /// A security group id.
    SecurityGroup(String),
    /// A target group ARN the object does not create.
    TargetGroup(String),
    /// A task definition family.
    TaskDefinitionFamily(String),
    /// Pool tasks: this object's, and the namespace's other objects' together.
    PoolTasks { own: i64, others: i64 },
}

/// What an allowed object may do beyond its spec: the priority range an automatic listener rule
/// priority is chosen from (the spec's range narrowed to the policy's).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grant {
    /// `Some` when a policy narrows the spec's `priorityRange`.
    pub priority_range: Option<PriorityRange>,
}

/// `*` matches any run of characters (also none); everything else matches itself.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    // Iterative wildcard matching with one backtrack point: linear in practice, never exponential.
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// A DNS name as compared: lowercase, no trailing dot.
fn dns(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// A hosted zone id without `/hostedzone/`.
fn zone_id(id: &str) -> &str {
    id.trim_start_matches("/hostedzone/")
}

/// An ECS cluster's name from a name or an ARN.
fn cluster_name(cluster: &str) -> &str {
    cluster.rsplit_once(":cluster/").map_or(cluster, |(_, name)| name)
}

fn any_match(patterns: &[String], value: &str) -> bool {
    patterns.iter().any(|p| glob_match(p, value))
}

/// Decide `uses` for namespace `namespace` under `policies` (those that name it). `require`:
/// `--require-access-policy`. `Ok(None)`: no policy governs the namespace. A refusal is the
/// message of `Degraded`/`NotPermitted`: the field, the value, the policies and what to do.
pub fn decide(namespace: &str, policies: &[&AccessPolicy], require: bool, uses: &[Use]) -> Result<Grant, String> {
    if policies.is_empty() {
        if require && let Some(first) = uses.first() {
            return Err(format!(
                "{}: namespace {namespace} is named by no AccessPolicy, and the operator runs with \
                 --require-access-policy, so objects here may use nothing in AWS: create an AccessPolicy \
                 whose spec.namespaces (or spec.namespaceSelector) names {namespace}",
                first.field
            ));
        }
        return Ok(Grant::default());
    }
    let names = policy_names(policies);
    let allows: Vec<&Allow> = policies.iter().map(|p| &p.spec.allow).collect();
    let mut grant = Grant::default();
    for u in uses {
        let refused = |what: &str, value: &str, list: &str, allowed: Vec<String>| {
            let allowed = if allowed.is_empty() { "nothing".to_string() } else { allowed.join(", ") };
            format!(
                "{}: {what} {value} is not allowed in namespace {namespace} by {names} (allow.{list}: {allowed}); \
                 use one it allows, or ask a cluster admin to add it",
                u.field
            )
        };
        let list = |pick: fn(&Allow) -> &Vec<String>| -> Vec<String> {
            allows.iter().flat_map(|a| pick(a).iter().cloned()).collect()
        };
        match &u.what {
            What::Role(arn) if !any_match(&list(|a| &a.roles), arn) => {
                return Err(refused("role", arn, "roles", list(|a| &a.roles)));
            }
            What::Cluster(c) => {
                let allowed = list(|a| &a.clusters);
                if !any_match(&allowed, c) && !any_match(&allowed, cluster_name(c)) {
                    return Err(refused("cluster", c, "clusters", allowed));
                }
            }
            What::Subnet(s) if !any_match(&list(|a| &a.subnets), s) => {
                return Err(refused("subnet", s, "subnets", list(|a| &a.subnets)));
            }
            What::SecurityGroup(s) if !any_match(&list(|a| &a.security_groups), s) => {
                return Err(refused("security group", s, "securityGroups", list(|a| &a.security_groups)));
            }
            What::TargetGroup(s) if !any_match(&list(|a| &a.target_groups), s) => {
                return Err(refused("target group", s, "targetGroups", list(|a| &a.target_groups)));
            }
            What::TaskDefinitionFamily(f) if !any_match(&list(|a| &a.task_definition_families), f) => {
                return Err(refused(
                    "task definition family",
                    f,
                    "taskDefinitionFamilies",
                    list(|a| &a.task_definition_families),
                ));
            }
            What::Listener { arn, priority, range } => {
                let grants: Vec<PriorityRange> = allows
                    .iter()
                    .flat_map(|a| a.listeners.iter())
                    .filter(|l| glob_match(&l.arn, arn))
                    .map(|l| l.priority_range.clone().unwrap_or_default())
                    .collect();
                if grants.is_empty() {
                    let allowed = allows.iter().flat_map(|a| a.listeners.iter().map(|l| l.arn.clone())).collect();
                    return Err(refused("listener", arn, "listeners", allowed));
                }
                let ranges = grants.iter().map(|r| format!("{}..{}", r.min, r.max)).collect::<Vec<_>>().join(", ");
                let rule = u.field.trim_end_matches(".listenerArn");
                match priority {
                    Some(p) if !grants.iter().any(|r| r.min <= *p && *p <= r.max) => {
                        return Err(format!(
                            "{rule}.priority: {p} is outside the priorities {names} allows on listener {arn} \
                             ({ranges}); pick one inside, or leave priority unset to take a free one there"
                        ));
                    }
                    Some(_) => {}
                    None => {
                        let narrowed = grants.iter().find_map(|r| {
                            let (min, max) = (r.min.max(range.min), r.max.min(range.max));
                            (min <= max).then_some(PriorityRange { min, max })
                        });
                        let Some(narrowed) = narrowed else {
                            return Err(format!(
                                "{rule}.priorityRange: {}..{} shares no priority with what {names} allows on \
                                 listener {arn} ({ranges}); set a range that overlaps it",
                                range.min, range.max
                            ));
                        };
                        if narrowed != *range {
                            grant.priority_range = Some(narrowed);
                        }
                    }
                }
            }
            What::Record { zone, name, name_field } => {
                let zones: Vec<_> = allows
                    .iter()
                    .flat_map(|a| a.hosted_zones.iter())
                    .filter(|z| glob_match(zone_id(&z.id), zone_id(zone)))
                    .collect();
                if zones.is_empty() {
                    let allowed = allows.iter().flat_map(|a| a.hosted_zones.iter().map(|z| z.id.clone())).collect();
                    return Err(refused("hosted zone", zone, "hostedZones", allowed));
                }
                if let Some(name) = name
                    && !zones
                        .iter()
                        .any(|z| z.names.is_empty() || z.names.iter().any(|p| glob_match(&dns(p), &dns(name))))
                {
                    let allowed: Vec<String> = zones.iter().flat_map(|z| z.names.iter().cloned()).collect();
                    return Err(format!(
                        "{name_field}: name {name} is not allowed in zone {zone} in namespace {namespace} by {names} \
                         (allow.hostedZones[].names: {}); use a name it allows",
                        allowed.join(", ")
                    ));
                }
            }
            What::PoolTasks { own, others } => {
                let limits: Vec<Option<i32>> = allows.iter().map(|a| a.max_pool_tasks).collect();
                let limit = if limits.contains(&None) { None } else { limits.into_iter().flatten().max() };
                if let Some(limit) = limit
                    && own.saturating_add(*others) > i64::from(limit)
                {
                    return Err(format!(
                        "{}: this HotPool keeps {own} idle tasks and the namespace's other HotPools {others}, more \
                         than the {limit} {names} allows namespace {namespace} (allow.maxPoolTasks); lower scaleTo",
                        u.field
                    ));
                }
            }
            _ => {}
        }
    }
    Ok(grant)
}

/// `AccessPolicy a` or `AccessPolicies a, b`.
fn policy_names(policies: &[&AccessPolicy]) -> String {
    let names: Vec<String> = policies.iter().map(|p| p.metadata.name.clone().unwrap_or_default()).collect();
    if names.len() == 1 { format!("AccessPolicy {}", names[0]) } else { format!("AccessPolicies {}", names.join(", ")) }
}

#[cfg(test)]
mod tests;
