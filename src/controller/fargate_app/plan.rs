//! Pure decisions of the FargateApp controller: desired AWS state from the spec, and what differs
//! from what was observed. No I/O here, so every case is unit-tested.

use std::collections::BTreeSet;

use crate::api::AdoptionPolicy;
use crate::api::fargate_app::{FargateAppSpec, ListenerRuleSpec, LoadBalancerSpec, ReplicasPolicy, TargetHealthCheck};
use crate::controller::Blocked;
use crate::runtime::conditions::REASON_NAME_CONFLICT;

/// The target group we want.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredTargetGroup {
    /// Name (≤ 32 characters, derived from namespace/name).
    pub name: String,
    /// Port of the container receiving traffic.
    pub port: i32,
    /// `HTTP` or `HTTPS`.
    pub protocol: String,
    /// VPC of the target group.
    pub vpc_id: String,
    /// Health check.
    pub health: TargetHealthCheck,
    /// Deregistration delay (s).
    pub deregistration_delay: i32,
}

/// The target group as AWS reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObservedTargetGroup {
    /// ARN.
    pub arn: String,
    /// Port.
    pub port: i32,
    /// Protocol.
    pub protocol: String,
    /// VPC.
    pub vpc_id: String,
    /// Health check path.
    pub path: String,
    /// Interval (s).
    pub interval: i32,
    /// Timeout (s).
    pub timeout: i32,
    /// Healthy threshold.
    pub healthy: i32,
    /// Unhealthy threshold.
    pub unhealthy: i32,
    /// Matcher HTTP codes.
    pub matcher: String,
    /// `deregistration_delay.timeout_seconds`, if reported.
    pub deregistration_delay: Option<i32>,
}

#[cfg(test)]
impl ObservedTargetGroup {
    /// The group `d` asks for as AWS reports it once made (attributes unread).
    pub fn made_as(d: &DesiredTargetGroup, arn: &str) -> Self {
        let h = &d.health;
        Self {
            arn: arn.into(),
            port: d.port,
            protocol: d.protocol.clone(),
            vpc_id: d.vpc_id.clone(),
            path: h.path.clone(),
            interval: h.interval_seconds,
            timeout: h.timeout_seconds,
            healthy: h.healthy_threshold,
            unhealthy: h.unhealthy_threshold,
            matcher: h.matcher.clone(),
            deregistration_delay: None,
        }
    }
}

/// What to do about the target group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetGroupChanges {
    /// Port, protocol or VPC differ: these cannot be modified in place.
    pub immutable: Vec<&'static str>,
    /// The health check needs ModifyTargetGroup.
    pub health_check: bool,
    /// The deregistration delay needs ModifyTargetGroupAttributes.
    pub deregistration_delay: bool,
}

impl TargetGroupChanges {
    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        self.immutable.is_empty() && !self.health_check && !self.deregistration_delay
    }
}

/// Compare the target group.
pub fn target_group_changes(d: &DesiredTargetGroup, o: &ObservedTargetGroup) -> TargetGroupChanges {
    let mut immutable = Vec::new();
    if d.port != o.port {
        immutable.push("port");
    }
    if !d.protocol.eq_ignore_ascii_case(&o.protocol) {
        immutable.push("protocol");
    }
    if d.vpc_id != o.vpc_id {
        immutable.push("vpcId");
    }
    let h = &d.health;
    let health_check = h.path != o.path
        || h.interval_seconds != o.interval
        || h.timeout_seconds != o.timeout
        || h.healthy_threshold != o.healthy
        || h.unhealthy_threshold != o.unhealthy
        || h.matcher != o.matcher;
    TargetGroupChanges {
        immutable,
        health_check,
        deregistration_delay: o.deregistration_delay != Some(d.deregistration_delay),
    }
}

/// Container and port that receive load-balancer traffic.
pub fn lb_target(spec: &FargateAppSpec, lb: &LoadBalancerSpec) -> Option<(String, i32)> {
    let container = match &lb.container_name {
        Some(name) => spec.containers.iter().find(|c| &c.name == name)?,
        None => spec.containers.iter().find(|c| c.port.is_some())?,
    };
    let port = lb.container_port.or(container.port)?;
    Some((container.name.clone(), port))
}

/// A listener rule as AWS reports it (ours or someone else's).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObservedRule {
    /// ARN.
    pub arn: String,
    /// Priority (`None` for the default rule).
    pub priority: Option<i32>,
    /// Path patterns, sorted.
    pub path_patterns: Vec<String>,
    /// Host headers, sorted.
    pub host_headers: Vec<String>,
    /// Target groups it forwards to, sorted.
    pub forward_to: Vec<String>,
    /// Carries our owner tags.
    pub ours: bool,
}

/// Lowest priority in `min..=max` not in `taken`, if any.
pub fn lowest_free_priority(taken: &BTreeSet<i32>, min: i32, max: i32) -> Option<i32> {
    (min..=max).find(|p| !taken.contains(p))
}

/// Sorted, deduplicated copy.
pub fn sorted(values: &[String]) -> Vec<String> {
    let set: BTreeSet<&String> = values.iter().collect();
    set.into_iter().cloned().collect()
}

/// Whether our rule's conditions or action differ from the spec.
pub fn rule_needs_modify(rule: &ObservedRule, paths: &[String], hosts: &[String], tg_arn: &str) -> bool {
    rule.path_patterns != sorted(paths) || rule.host_headers != sorted(hosts) || rule.forward_to != [tg_arn.to_string()]
}

/// Set of taken priorities on a listener (ours excluded when `except` names our rule).
pub fn taken_priorities(rules: &[ObservedRule], except: Option<&str>) -> BTreeSet<i32> {
    rules.iter().filter(|r| Some(r.arn.as_str()) != except).filter_map(|r| r.priority).collect()
}

/// The priority the spec asks for where `taken` are held by others: the spec's (`Err` when
/// taken), else the lowest free one in the range (`Err` when it is full).
pub fn free_priority(rule: &ListenerRuleSpec, taken: &BTreeSet<i32>) -> Result<i32, Blocked> {
    let range = &rule.priority_range;
    match rule.priority {
        Some(p) if taken.contains(&p) => Err(priority_conflict(p)),
        Some(p) => Ok(p),
        None => lowest_free_priority(taken, range.min, range.max).ok_or_else(|| Blocked {
            reason: "PriorityConflict",
            message: format!(
                "no free listener rule priority in spec.loadBalancer.listenerRule.priorityRange {}..{}",
                range.min, range.max
            ),
        }),
    }
}

/// Our rule among the listener's `rules` (the first carrying our owner tags) and the priority it is
/// to have: ours keeps the spec's priority, or without one its current one while in the range;
/// else [`free_priority`] among the others.
pub fn rule_priority<'a>(
    rule: &ListenerRuleSpec,
    rules: &'a [ObservedRule],
) -> Result<(Option<&'a ObservedRule>, i32), Blocked> {
    let range = &rule.priority_range;
    let ours = rules.iter().find(|r| r.ours);
    match ours.map(|r| r.priority.unwrap_or_default()) {
        Some(current) if rule.priority.map_or((range.min..=range.max).contains(&current), |p| p == current) => {
            Ok((ours, current))
        }
        _ => Ok((ours, free_priority(rule, &taken_priorities(rules, ours.map(|r| r.arn.as_str())))?)),
    }
}

/// Priority `p` is taken by a rule this object does not own.
pub fn priority_conflict(p: i32) -> Blocked {
    Blocked {
        reason: "PriorityConflict",
        message: format!(
            "listener rule priority {p} is taken by a rule this object does not own; choose another spec.loadBalancer.listenerRule.priority or omit it"
        ),
    }
}

/// The spec's listener does not exist.
pub fn listener_not_found(listener_arn: &str) -> Blocked {
    Blocked {
        reason: "ListenerNotFound",
        message: format!(
            "spec.loadBalancer.listenerRule.listenerArn: listener {listener_arn} does not exist; point it at an existing listener"
        ),
    }
}

/// Whether an existing resource with our name may be used. `IfTagged`: it carries our owner tags.
/// `Never`: only one this object made: recorded in status (or its inventory), or whose create it
/// recorded as planned before sending it (the answer was lost), never one found.
pub fn adoptable(spec: &FargateAppSpec, owned: bool, recorded: Option<&str>, arn: &str, planned: bool) -> bool {
    match spec.policy.adoption {
        AdoptionPolicy::IfTagged => owned,
        AdoptionPolicy::Never => owned && (recorded == Some(arn) || planned),
    }
}

/// A `what` named `name` exists and may not be used.
pub fn name_conflict(what: &str, name: &str, owned: bool) -> Blocked {
    let why = if owned {
        "carries this object's owner tags but is not recorded in its status, and spec.policy.adoption is Never"
    } else {
        "exists without this object's owner tags"
    };
    Blocked { reason: REASON_NAME_CONFLICT, message: format!("a {what} named {name} {why}; it is left untouched") }
}

/// minimumHealthyPercent, maximumPercent and the circuit breaker (enable, rollback) when reported.
pub type DeploymentSettings = (i32, i32, Option<(bool, bool)>);

/// The ECS service as AWS reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObservedService {
    /// ARN.
    pub arn: String,
    /// `ACTIVE`, `DRAINING` or `INACTIVE`.
    pub status: String,
    /// Desired count.
    pub desired: i32,
    /// Running tasks.
    pub running: i32,
    /// Pending tasks.
    pub pending: i32,
    /// Task definition ARN.
    pub task_definition: String,
    /// Subnets, sorted.
    pub subnets: Vec<String>,
    /// Security groups, sorted.
    pub security_groups: Vec<String>,
    /// `assignPublicIp` is ENABLED.
    pub public_ip: Option<bool>,
    /// (target group ARN, container, port), sorted.
    pub load_balancers: Vec<(String, String, i32)>,
    /// minimumHealthyPercent, maximumPercent, circuit breaker (enable, rollback), when reported.
    pub deployment: Option<DeploymentSettings>,
    /// Health check grace period, when reported.
    pub grace_period: Option<i32>,
    /// PRIMARY deployment's rollout state, reason and failed tasks.
    pub rollout: Option<(String, String, i32)>,
    /// The id of ECS's newest event about the service.
    pub latest_event: Option<String>,
    /// Carries our owner tags.
    pub ours: bool,
}

/// What UpdateService must change.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceUpdate {
    /// New task definition.
    pub task_definition: Option<String>,
    /// New desired count.
    pub desired: Option<i32>,
    /// Network configuration differs.
    pub network: bool,
    /// Load balancers differ.
    pub load_balancers: bool,
    /// Deployment configuration differs.
    pub deployment: bool,
    /// Health check grace period differs.
    pub grace_period: bool,
    /// `restartedAt` changed: force a new deployment.
    pub force_new_deployment: bool,
}

impl ServiceUpdate {
    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// The desired load balancer attachments: ours plus the additional target groups.
pub fn desired_load_balancers(spec: &FargateAppSpec, target_group_arn: Option<&str>) -> Vec<(String, String, i32)> {
    let Some(lb) = &spec.load_balancer else { return vec![] };
    let Some((container, port)) = lb_target(spec, lb) else { return vec![] };
    let mut out: Vec<_> = target_group_arn
        .into_iter()
        .map(str::to_string)
        .chain(lb.additional_target_group_arns.iter().cloned())
        .map(|tg| (tg, container.clone(), port))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Compare the service with the spec. `restart` is true when `spec.restartedAt` differs from the
/// restart already rolled out.
pub fn service_update(
    spec: &FargateAppSpec,
    o: &ObservedService,
    task_definition: &str,
    target_group_arn: Option<&str>,
    restart: bool,
) -> ServiceUpdate {
    let mut u = ServiceUpdate::default();
    if o.task_definition != task_definition {
        u.task_definition = Some(task_definition.to_string());
    }
    if spec.replicas_policy == ReplicasPolicy::Enforce && o.desired != spec.replicas {
        u.desired = Some(spec.replicas);
    }
    u.network = o.subnets != sorted(&spec.network.subnets)
        || o.security_groups != sorted(&spec.network.security_groups)
        || o.public_ip != Some(spec.network.assign_public_ip);
    u.load_balancers = o.load_balancers != desired_load_balancers(spec, target_group_arn);
    let d = &spec.deployment;
    let want =
        (d.minimum_healthy_percent, d.maximum_percent, Some((d.circuit_breaker.enable, d.circuit_breaker.rollback)));
    // Unreported settings are unknown, not different: some ECS implementations omit what was set at
    // creation, and rewriting it every resync would be a write loop.
    u.deployment = o.deployment.is_some_and(|d| d != want);
    // Only with a load balancer does ECS accept a grace period.
    let want_grace = if desired_load_balancers(spec, target_group_arn).is_empty() {
        None
    } else {
        Some(d.health_check_grace_period_seconds.unwrap_or(0))
    };
    u.grace_period = want_grace.is_some_and(|want| o.grace_period.is_some_and(|g| g != want));
    u.force_new_deployment = restart;
    u
}

/// Readiness of the service, per API.md: ACTIVE, running == desired, rollout COMPLETED and no
/// unhealthy targets. Returns (ready, reason, message).
pub fn readiness(service: &ObservedService, unhealthy_targets: usize) -> (bool, &'static str, String) {
    if service.status != "ACTIVE" {
        return (false, "ServiceNotActive", format!("service is {}", service.status));
    }
    if let Some((state, reason, _)) = &service.rollout {
        if state == "FAILED" {
            return (false, "RolloutFailed", format!("deployment failed: {reason}"));
        }
        if state != "COMPLETED" {
            return (false, "RolloutInProgress", format!("deployment {state}: {reason}"));
        }
    }
    if service.running != service.desired {
        return (false, "TasksNotRunning", format!("{} of {} tasks running", service.running, service.desired));
    }
    if unhealthy_targets > 0 {
        return (false, "UnhealthyTargets", format!("{unhealthy_targets} target(s) unhealthy"));
    }
    (true, "ServiceReady", format!("{} task(s) running on the current task definition", service.running))
}

/// Whether a pass reads the target group's health: only when a task runs and everything ECS
/// reports already says ready, since only then can target health decide readiness (a pass polling
/// a rollout, or waiting for tasks, skips the read).
pub fn reads_target_health(service: &ObservedService) -> bool {
    service.running > 0 && readiness(service, 0).0
}

/// Full passes between two reads of target health while ECS reports the service as it was when
/// every target was last read healthy.
pub const TARGET_HEALTH_EVERY_FULL_PASSES: u64 = 4;

/// What ECS reports of a service that a change of its targets' health shows in: ECS stops a task
/// that fails its load balancer health checks and starts another (counts, an event), so while
/// none of this moves, targets read healthy are still healthy.
pub fn steady_fingerprint(service: &ObservedService) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (&service.arn, &service.task_definition, service.desired, service.running, service.pending).hash(&mut h);
    (&service.rollout, &service.latest_event).hash(&mut h);
    h.finish()
}

/// Whether a pass that may read target health ([`reads_target_health`]) reads it: unless the
/// last read found every target healthy with ECS reporting the service as now (`healthy_as`),
/// and this is not one of every [`TARGET_HEALTH_EVERY_FULL_PASSES`] full passes (`full_passes`
/// this process made). At 1,000 apps DescribeTargetHealth was half the reads of a converged app.
pub fn rereads_target_health(service: &ObservedService, healthy_as: Option<u64>, full_passes: u64) -> bool {
    healthy_as != Some(steady_fingerprint(service)) || full_passes.is_multiple_of(TARGET_HEALTH_EVERY_FULL_PASSES)
}

/// The best user-facing URL: the DNS name (or the load balancer's), plus the first path pattern
/// without its wildcard.
pub fn url(spec: &FargateAppSpec, lb_dns: Option<&str>) -> Option<String> {
    let rule = spec.load_balancer.as_ref()?.listener_rule.as_ref()?;
    let host = spec
        .dns
        .as_ref()
        .map(|d| d.name.trim_end_matches('.').to_string())
        .or_else(|| rule.host_headers.first().filter(|h| !h.contains('*')).cloned())
        .or_else(|| lb_dns.map(str::to_string))?;
    let path = rule.path_patterns.first().map(|p| p.trim_end_matches('*').to_string()).unwrap_or_else(|| "/".into());
    let path = if path.starts_with('/') { path } else { format!("/{path}") };
    Some(format!("http://{host}{path}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(extra: serde_json::Value) -> FargateAppSpec {
        let mut v = serde_json::json!({
            "cluster": "apps", "cpu": 256, "memory": 512,
            "containers": [{"name": "web", "image": "web:1", "port": 8080}],
            "network": {"subnets": ["subnet-b", "subnet-a"], "securityGroups": ["sg-1"]},
            "replicas": 2
        });
        for (k, val) in extra.as_object().expect("object") {
            v[k] = val.clone();
        }
        serde_json::from_value(v).expect("spec")
    }

    fn converged(spec: &FargateAppSpec, td: &str, tg: Option<&str>) -> ObservedService {
        let d = &spec.deployment;
        ObservedService {
            arn: "arn:svc".into(),
            status: "ACTIVE".into(),
            desired: spec.replicas,
            running: spec.replicas,
            pending: 0,
            task_definition: td.into(),
            subnets: sorted(&spec.network.subnets),
            security_groups: sorted(&spec.network.security_groups),
            public_ip: Some(spec.network.assign_public_ip),
            load_balancers: desired_load_balancers(spec, tg),
            deployment: Some((d.minimum_healthy_percent, d.maximum_percent, Some((true, true)))),
            grace_period: if tg.is_some() { Some(0) } else { None },
            rollout: Some(("COMPLETED".into(), String::new(), 0)),
            latest_event: None,
            ours: true,
        }
    }

    #[test]
    fn converged_service_needs_no_update_whatever_the_subnet_order() {
        let s = spec(serde_json::json!({}));
        let o = converged(&s, "arn:td:3", None);
        assert!(service_update(&s, &o, "arn:td:3", None, false).is_empty());
    }

    #[test]
    fn drift_is_detected_field_by_field() {
        let s = spec(serde_json::json!({}));
        let mut o = converged(&s, "arn:td:3", None);
        o.desired = 5;
        o.subnets = vec!["subnet-a".into()];
        let u = service_update(&s, &o, "arn:td:4", None, true);
        assert_eq!(u.desired, Some(2));
        assert_eq!(u.task_definition.as_deref(), Some("arn:td:4"));
        assert!(u.network && u.force_new_deployment && !u.load_balancers);
    }

    #[test]
    fn initial_only_never_resets_an_autoscaled_count() {
        let s = spec(serde_json::json!({"replicasPolicy": "InitialOnly"}));
        let mut o = converged(&s, "arn:td:3", None);
        o.desired = 9;
        assert_eq!(service_update(&s, &o, "arn:td:3", None, false).desired, None);
    }

    #[test]
    fn unreported_deployment_settings_are_not_a_diff_but_changed_ones_are() {
        let s = spec(serde_json::json!({}));
        let mut o = converged(&s, "arn:td:3", None);
        o.deployment = None;
        o.grace_period = None;
        assert!(service_update(&s, &o, "arn:td:3", None, false).is_empty());
        o.deployment = Some((50, 200, Some((true, true))));
        assert!(service_update(&s, &o, "arn:td:3", None, false).deployment);
    }

    #[test]
    fn lowest_free_priority_skips_taken_ones() {
        let taken: BTreeSet<i32> = [10, 11, 13].into();
        assert_eq!(lowest_free_priority(&taken, 10, 20), Some(12));
        assert_eq!(lowest_free_priority(&taken, 10, 11), None);
    }

    #[test]
    fn target_group_diff_separates_immutable_fields() {
        let d = DesiredTargetGroup {
            name: "tg".into(),
            port: 8080,
            protocol: "HTTP".into(),
            vpc_id: "vpc-1".into(),
            health: TargetHealthCheck::default(),
            deregistration_delay: 20,
        };
        let o = ObservedTargetGroup { deregistration_delay: Some(20), ..ObservedTargetGroup::made_as(&d, "arn") };
        assert!(target_group_changes(&d, &o).is_empty());
        let drifted = ObservedTargetGroup { path: "/other".into(), port: 80, deregistration_delay: None, ..o };
        let c = target_group_changes(&d, &drifted);
        assert_eq!(c.immutable, ["port"]);
        assert!(c.health_check && c.deregistration_delay);
    }

    #[test]
    fn readiness_follows_the_contract() {
        let s = spec(serde_json::json!({}));
        let ok = converged(&s, "td", None);
        assert!(readiness(&ok, 0).0);
        assert_eq!(readiness(&ok, 1).1, "UnhealthyTargets");
        let failed = ObservedService { rollout: Some(("FAILED".into(), "circuit breaker".into(), 3)), ..ok.clone() };
        assert_eq!(readiness(&failed, 0).1, "RolloutFailed");
        let starting = ObservedService { running: 1, ..ok.clone() };
        assert_eq!(readiness(&starting, 0).1, "TasksNotRunning");
        let progressing = ObservedService { rollout: Some(("IN_PROGRESS".into(), String::new(), 0)), ..ok };
        assert_eq!(readiness(&progressing, 0).1, "RolloutInProgress");
    }

    #[test]
    fn target_health_is_read_again_when_ecs_reports_a_change_and_every_few_full_passes() {
        let ok = converged(&spec(serde_json::json!({})), "td:1", None);
        let healthy = Some(steady_fingerprint(&ok));
        assert!(rereads_target_health(&ok, None, 1), "never read healthy in this process");
        assert!(!rereads_target_health(&ok, healthy, 1), "as it was: the last read stands");
        assert!(rereads_target_health(&ok, healthy, TARGET_HEALTH_EVERY_FULL_PASSES), "the backstop");
        for changed in [
            ObservedService { latest_event: Some("stopped a task: failed ELB health checks".into()), ..ok.clone() },
            ObservedService { running: 3, desired: 3, ..ok.clone() },
            ObservedService { pending: 1, ..ok.clone() },
            ObservedService { task_definition: "td:2".into(), ..ok.clone() },
            ObservedService { rollout: Some(("COMPLETED".into(), "another deployment".into(), 0)), ..ok.clone() },
        ] {
            assert!(rereads_target_health(&changed, healthy, 1), "{changed:?}");
        }
    }

    #[test]
    fn target_health_is_read_only_when_ecs_already_says_ready() {
        let s = spec(serde_json::json!({}));
        let ok = converged(&s, "td", None);
        assert!(ok.running > 0 && reads_target_health(&ok));
        let progressing = ObservedService { rollout: Some(("IN_PROGRESS".into(), String::new(), 0)), ..ok.clone() };
        assert!(progressing.running > 0 && !reads_target_health(&progressing), "a rollout poll skips the read");
        let failed = ObservedService { rollout: Some(("FAILED".into(), String::new(), 1)), ..ok.clone() };
        assert!(!reads_target_health(&failed));
        let short = ObservedService { desired: ok.running + 1, ..ok.clone() };
        assert!(!reads_target_health(&short), "tasks not all running");
        let none = ObservedService { running: 0, desired: 0, ..ok };
        assert!(!reads_target_health(&none), "no task, no target");
    }

    #[test]
    fn url_prefers_dns_then_host_header_then_load_balancer() {
        let with_rule = |extra: serde_json::Value| {
            let mut v = serde_json::json!({"loadBalancer": {"listenerRule": {
                "listenerArn": "arn:aws:elasticloadbalancing:us-east-1:1:listener/app/x/1/2", "pathPatterns": ["/app/*"]}}});
            for (k, val) in extra.as_object().expect("object") {
                v[k] = val.clone();
            }
            spec(v)
        };
        assert_eq!(url(&with_rule(serde_json::json!({})), Some("lb.aws")).as_deref(), Some("http://lb.aws/app/"));
        let dns = with_rule(serde_json::json!({"dns": {"hostedZoneId": "Z1", "name": "web.example.com."}}));
        assert_eq!(url(&dns, Some("lb.aws")).as_deref(), Some("http://web.example.com/app/"));
        assert_eq!(url(&spec(serde_json::json!({})), Some("lb.aws")), None);
    }
}
