//! Spec validation in Rust, one function per kind.
//!
//! The CRD schema and its CEL rules reject bad input at `kubectl apply` time, but clusters older than
//! 1.25 ignore CEL, and some rules need AWS facts (the zone's name). Controllers call these functions
//! before touching AWS and report failures as `Degraded` with reason `InvalidSpec`. Each message
//! names the field and the fix.

use std::collections::BTreeSet;
use std::fmt;

use super::dns_failover::{DnsFailoverSpec, HealthCheckSpec, HealthCheckType};
use super::fargate_app::{FARGATE_SIZES, FargateAppSpec, FargateMemory};
use super::hot_pool::{HotPoolClaimSpec, HotPoolSpec};
use crate::runtime::clock;
use k8s_openapi::jiff::Timestamp;

/// One problem with one field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Path of the field, e.g. `spec.memory`.
    pub field: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// Every problem found in a spec.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl ValidationErrors {
    pub(crate) fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError { field: field.into(), message: message.into() });
    }

    pub(crate) fn into_result(self) -> Result<(), ValidationErrors> {
        if self.0.is_empty() { Ok(()) } else { Err(self) }
    }

    /// True when some error is about `field` (exact path).
    pub fn mentions(&self, field: &str) -> bool {
        self.0.iter().any(|e| e.field == field)
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", e.field, e.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

/// The memory sizes (MiB) Fargate accepts for `cpu`, or `None` when `cpu` is not a Fargate size.
pub fn fargate_memory_sizes(cpu: i32) -> Option<Vec<i32>> {
    FARGATE_SIZES.iter().find(|(c, _)| *c == cpu).map(|(_, memory)| match *memory {
        FargateMemory::Listed(sizes) => sizes.to_vec(),
        FargateMemory::Range { min, max, step } => (min..=max).step_by(usize::try_from(step).unwrap_or(1)).collect(),
    })
}

/// Validate a FargateApp spec.
pub fn validate_fargate_app(spec: &FargateAppSpec) -> Result<(), ValidationErrors> {
    let mut errs = ValidationErrors::default();
    match fargate_memory_sizes(spec.cpu) {
        None => errs.push(
            "spec.cpu",
            format!("{} is not a Fargate CPU size; use 256, 512, 1024, 2048, 4096, 8192 or 16384", spec.cpu),
        ),
        Some(sizes) if !sizes.contains(&spec.memory) => {
            let choices = match sizes.as_slice() {
                [min, second, .., max] if sizes.len() > 3 => format!("{min}..{max} in steps of {}", second - min),
                listed => listed.iter().map(i32::to_string).collect::<Vec<_>>().join(", "),
            };
            errs.push("spec.memory", format!("{} MiB is not valid with cpu {}; use {choices}", spec.memory, spec.cpu));
        }
        Some(_) => {}
    }
    if spec.containers.is_empty() || spec.containers.len() > 10 {
        errs.push("spec.containers", "list 1 to 10 containers");
    }
    let mut names = BTreeSet::new();
    let mut container_memory: i64 = 0;
    for (i, c) in spec.containers.iter().enumerate() {
        if !names.insert(c.name.as_str()) {
            errs.push(
                format!("spec.containers[{i}].name"),
                format!("{:?} is used twice; container names must be unique", c.name),
            );
        }
        if c.image.trim().is_empty() {
            errs.push(format!("spec.containers[{i}].image"), "set an image reference");
        }
        if let Some(hc) = &c.health_check
            && !matches!(hc.command.first().map(String::as_str), Some("CMD" | "CMD-SHELL" | "NONE"))
        {
            errs.push(
                format!("spec.containers[{i}].healthCheck.command"),
                "start the command with CMD, CMD-SHELL or NONE",
            );
        }
        if let Some(dup) = c.env.keys().find(|k| c.secrets.contains_key(*k)) {
            errs.push(
                format!("spec.containers[{i}].secrets"),
                format!("{dup:?} is also in env; a variable is either plain or secret"),
            );
        }
        if let Some(m) = c.memory
            && !(6..=122_880).contains(&m)
        {
            errs.push(format!("spec.containers[{i}].memory"), format!("{m} MiB is out of range; use 6..122880 MiB"));
        }
        // Summed wide: the schema's bounds are not there for an object the apiserver did not check
        // (an older CRD), and two large limits overflowed an i32 (found by the fuzz tests).
        container_memory = container_memory.saturating_add(i64::from(c.memory.unwrap_or(0)));
    }
    // ECS refuses a task definition over 64 KiB; env and secrets are what grows it. The containers'
    // JSON is a close measure (the rendering adds field names of about the same length), kept
    // below 60 KiB to leave room for what the operator adds (log configuration, tags).
    let size = serde_json::to_vec(&spec.containers).map(|v| v.len()).unwrap_or(0);
    if size > TASK_DEFINITION_ROOM {
        let biggest =
            spec.containers.iter().enumerate().max_by_key(|(_, c)| {
                c.env.iter().chain(c.secrets.iter()).map(|(k, v)| k.len() + v.len()).sum::<usize>()
            });
        let at = biggest.map_or("spec.containers".to_string(), |(i, _)| format!("spec.containers[{i}].env"));
        errs.push(
            at,
            format!(
                "the containers take {} KiB; ECS refuses task definitions over 64 KiB: move large values to secrets \
                 in Secrets Manager or SSM (spec.containers[].secrets holds only their ARNs) or into the image",
                size / 1024
            ),
        );
    }
    if let Some(g) = spec.ephemeral_storage_gib
        && !(21..=200).contains(&g)
    {
        errs.push(
            "spec.ephemeralStorageGiB",
            format!("{g} GiB is out of range; Fargate takes 21..200 GiB (unset: 20)"),
        );
    }
    let unlimited = spec.containers.iter().filter(|c| c.memory.is_none()).count();
    if container_memory > i64::from(spec.memory) {
        errs.push(
            "spec.containers[].memory",
            format!("containers reserve {container_memory} MiB but the task has spec.memory {} MiB", spec.memory),
        );
    } else if unlimited > 0 && container_memory > 0 && container_memory >= i64::from(spec.memory) {
        // The containers without a limit share what the others leave: nothing here.
        errs.push(
            "spec.containers[].memory",
            format!(
                "containers reserve all {container_memory} MiB of spec.memory, leaving none for the {unlimited} container(s) \
                 without a memory limit: lower the limits, raise spec.memory, or give every container a limit"
            ),
        );
    }
    let d = &spec.deployment;
    if !(d.maximum_percent > d.minimum_healthy_percent
        || (d.minimum_healthy_percent == 100 && d.maximum_percent == 100))
    {
        errs.push(
            "spec.deployment.maximumPercent",
            "must exceed minimumHealthyPercent, or a rollout cannot start a new task",
        );
    }
    if let Some(lb) = &spec.load_balancer {
        let target = match &lb.container_name {
            Some(name) => {
                let found = spec.containers.iter().find(|c| &c.name == name);
                if found.is_none() {
                    errs.push("spec.loadBalancer.containerName", format!("{name:?} is not one of spec.containers"));
                }
                found
            }
            None => {
                let found = spec.containers.iter().find(|c| c.port.is_some());
                if found.is_none() {
                    errs.push("spec.loadBalancer.containerName", "no container has a port: set spec.containers[].port or loadBalancer.containerName and containerPort");
                }
                found
            }
        };
        // The task definition maps only `containers[].port`; ECS refuses a service whose load
        // balancer names another port of the container.
        if let Some(c) = target {
            match (lb.container_port, c.port) {
                (None, None) => errs.push(
                    "spec.loadBalancer.containerPort",
                    format!("container {:?} has no port: set its spec.containers[].port", c.name),
                ),
                (Some(p), None) => errs.push(
                    "spec.loadBalancer.containerPort",
                    format!("container {:?} exposes no port: set its spec.containers[].port to {p}", c.name),
                ),
                (Some(p), Some(q)) if p != q => errs.push(
                    "spec.loadBalancer.containerPort",
                    format!("{p} is not the port container {:?} exposes ({q}): set it to {q} or remove it", c.name),
                ),
                _ => {}
            }
        }
        let hc = &lb.target_group.health_check;
        if hc.timeout_seconds >= hc.interval_seconds {
            errs.push("spec.loadBalancer.targetGroup.healthCheck.timeoutSeconds", "must be less than intervalSeconds");
        }
        if lb.additional_target_group_arns.len() > 4 {
            errs.push(
                "spec.loadBalancer.additionalTargetGroupArns",
                "at most 4: ECS allows 5 target groups per service including ours",
            );
        }
        if !matcher_is_valid(&hc.matcher) {
            errs.push(
                "spec.loadBalancer.targetGroup.healthCheck.matcher",
                format!("{:?}: use HTTP codes 200..499, e.g. 200, 200,302 or 200-399", hc.matcher),
            );
        }
        match &lb.listener_rule {
            Some(rule) => {
                for (j, p) in rule.path_patterns.iter().enumerate() {
                    if !path_pattern_is_valid(p) {
                        errs.push(
                            format!("spec.loadBalancer.listenerRule.pathPatterns[{j}]"),
                            format!("{p:?}: use letters, digits and _-.$/~\"'@:+&*? only (no spaces), e.g. /app/*"),
                        );
                    }
                }
                if rule.path_patterns.is_empty() && rule.host_headers.is_empty() {
                    errs.push("spec.loadBalancer.listenerRule", "set at least one of pathPatterns or hostHeaders");
                }
                if rule.path_patterns.len() + rule.host_headers.len() > 5 {
                    errs.push(
                        "spec.loadBalancer.listenerRule",
                        "at most 5 pathPatterns and hostHeaders together (ALB condition value limit)",
                    );
                }
                let range = &rule.priority_range;
                if range.min > range.max {
                    errs.push(
                        "spec.loadBalancer.listenerRule.priorityRange",
                        format!("min {} exceeds max {}", range.min, range.max),
                    );
                }
                if let Some(p) = rule.priority
                    && (p < range.min || p > range.max)
                {
                    errs.push(
                        "spec.loadBalancer.listenerRule.priority",
                        format!("{p} lies outside priorityRange {}..{}", range.min, range.max),
                    );
                }
            }
            None if lb.target_group.vpc_id.is_none() => {
                errs.push(
                    "spec.loadBalancer.targetGroup.vpcId",
                    "required when there is no spec.loadBalancer.listenerRule",
                );
            }
            None => {}
        }
    }
    super::aws_limits::check_common(&mut errs, &spec.tags, spec.aws.as_ref());
    if spec.dns.is_some() && spec.load_balancer.as_ref().and_then(|lb| lb.listener_rule.as_ref()).is_none() {
        errs.push(
            "spec.dns",
            "needs spec.loadBalancer.listenerRule: the record points at that listener's load balancer",
        );
    }
    errs.into_result()
}

/// Bytes of the containers' JSON a task definition may take (ECS allows 64 KiB in all).
const TASK_DEFINITION_ROOM: usize = 60 * 1024;

/// An ALB matcher: codes or ranges of codes 200..499, comma-separated.
fn matcher_is_valid(m: &str) -> bool {
    let code = |c: &str| c.len() == 3 && c.parse::<u16>().is_ok_and(|n| (200..=499).contains(&n));
    !m.is_empty()
        && m.split(',').all(|part| match part.split_once('-') {
            Some((a, b)) => code(a) && code(b) && a <= b,
            None => code(part),
        })
}

/// An ALB path pattern: 1..128 of the characters ALB accepts.
fn path_pattern_is_valid(p: &str) -> bool {
    (1..=128).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric() || "_-.$/~\"'@:+&*?".contains(c))
}

/// Lower-cased DNS name without its trailing dot.
pub fn normalize_dns_name(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// True when `name` lies strictly below `zone` (not the apex).
pub fn is_inside_zone(name: &str, zone: &str) -> bool {
    let (name, zone) = (normalize_dns_name(name), normalize_dns_name(zone));
    name.len() > zone.len() && name.ends_with(&zone) && name.as_bytes()[name.len() - zone.len() - 1] == b'.'
}

/// The FargateApp record rule that needs the zone's name (read by the controller): `spec.dns.name`
/// inside the zone of `spec.dns.hostedZoneId`, and a CNAME not at its apex (an alias may be).
pub fn validate_app_record(dns: &crate::api::fargate_app::DnsSpec, zone_name: &str) -> Result<(), ValidationErrors> {
    let mut errs = ValidationErrors::default();
    let (name, zone) = (normalize_dns_name(&dns.name), normalize_dns_name(zone_name));
    let cname = dns.record_type == crate::api::fargate_app::DnsRecordType::CNAME;
    if name == zone && cname {
        errs.push(
            "spec.dns.name",
            format!("{name:?} is the zone apex; a CNAME cannot sit there: use type Alias, or a name below {zone:?}"),
        );
    } else if name != zone && !is_inside_zone(&name, &zone) {
        errs.push(
            "spec.dns.name",
            format!(
                "{name:?} is not inside the zone {zone:?} of spec.dns.hostedZoneId: use a name ending in .{zone}, or the zone that holds {name:?}"
            ),
        );
    }
    errs.into_result()
}

/// Validate a DnsFailover spec. `zone_name` is the hosted zone's name once the controller has read it;
/// without it the zone-membership rule is skipped.
pub fn validate_dns_failover(spec: &DnsFailoverSpec, zone_name: Option<&str>) -> Result<(), ValidationErrors> {
    let mut errs = ValidationErrors::default();
    let name = normalize_dns_name(&spec.name);
    if let Some(zone) = zone_name {
        let zone_n = normalize_dns_name(zone);
        if name == zone_n {
            errs.push(
                "spec.name",
                format!("{name:?} is the zone apex; a CNAME cannot sit there: use a name below {zone_n:?}"),
            );
        } else if !is_inside_zone(&name, &zone_n) {
            errs.push("spec.name", format!("{name:?} is not inside the zone {zone_n:?} of spec.hostedZoneId"));
        }
    }
    let (primary, secondary) = (normalize_dns_name(&spec.primary.target), normalize_dns_name(&spec.secondary.target));
    if primary == secondary {
        errs.push("spec.secondary.target", "must differ from spec.primary.target");
    }
    if primary == name {
        errs.push("spec.primary.target", "must not be spec.name itself (a CNAME loop)");
    }
    if secondary == name {
        errs.push("spec.secondary.target", "must not be spec.name itself (a CNAME loop)");
    }
    check_health_check(&mut errs, "spec.primary.healthCheck", &spec.primary.health_check);
    if let Some(hc) = &spec.secondary.health_check {
        check_health_check(&mut errs, "spec.secondary.healthCheck", hc);
    }
    if !(0..=86400).contains(&spec.ttl) {
        errs.push("spec.ttl", "use 0..86400 seconds");
    }
    if let Some(d) = &spec.delegation
        && normalize_zone_id(&d.parent_hosted_zone_id) == normalize_zone_id(&spec.hosted_zone_id)
    {
        errs.push("spec.delegation.parentHostedZoneId", "must be the parent zone, not spec.hostedZoneId itself");
    }
    super::aws_limits::check_common(&mut errs, &spec.tags, spec.aws.as_ref());
    errs.into_result()
}

/// Zone ID without the `/hostedzone/` prefix Route 53 returns in some responses.
pub fn normalize_zone_id(id: &str) -> &str {
    id.trim_start_matches("/hostedzone/")
}

fn check_health_check(errs: &mut ValidationErrors, at: &str, hc: &HealthCheckSpec) {
    if !matches!(hc.request_interval_seconds, 10 | 30) {
        errs.push(format!("{at}.requestIntervalSeconds"), "use 10 or 30");
    }
    if !(1..=10).contains(&hc.failure_threshold) {
        errs.push(format!("{at}.failureThreshold"), "use 1..10");
    }
    if hc.check_type == HealthCheckType::TCP {
        if hc.path.is_some() {
            errs.push(format!("{at}.path"), "TCP checks have no path: remove it or use type HTTP/HTTPS");
        }
        if hc.search_string.as_deref().is_some_and(|s| !s.is_empty()) {
            errs.push(
                format!("{at}.searchString"),
                "TCP checks cannot match a string: remove it or use type HTTP/HTTPS",
            );
        }
    }
}

/// Validate a HotPool spec.
pub fn validate_hot_pool(spec: &HotPoolSpec) -> Result<(), ValidationErrors> {
    let mut errs = ValidationErrors::default();
    if spec.versions.is_empty() {
        errs.push("spec.versions", "list at least one worker version");
    }
    let mut seen = BTreeSet::new();
    for (i, v) in spec.versions.iter().enumerate() {
        if !seen.insert(v.version.as_str()) {
            errs.push(format!("spec.versions[{i}].version"), format!("{:?} is listed twice", v.version));
        }
        if v.task_definition.trim().is_empty() {
            errs.push(format!("spec.versions[{i}].taskDefinition"), "set family:revision or a task definition ARN");
        }
        if !(0..=500).contains(&v.scale_to) {
            errs.push(format!("spec.versions[{i}].scaleTo"), "use 0..500");
        }
        if !(1..=65535).contains(&v.port) {
            errs.push(format!("spec.versions[{i}].port"), "use 1..65535");
        }
    }
    if spec.network.subnets.is_empty() {
        errs.push("spec.network.subnets", "list at least one subnet");
    }
    super::aws_limits::check_common(&mut errs, &spec.tags, spec.aws.as_ref());
    // The schema has the same bounds; a cluster that skipped it must still not feed the lease and
    // timer arithmetic numbers it was never meant to see.
    for (field, value, min, max) in [
        ("spec.replenishIntervalSeconds", spec.replenish_interval_seconds, 5, 3600),
        ("spec.startupTimeoutSeconds", spec.startup_timeout_seconds, 30, 3600),
        ("spec.maxIdleSeconds", spec.max_idle_seconds, 0, 604_800),
        ("spec.claims.leaseSeconds", spec.claims.lease_seconds, 10, 604_800),
    ] {
        if !(min..=max).contains(&value) {
            errs.push(field, format!("{value} is out of range: use {min}..{max}"));
        }
    }
    errs.into_result()
}

/// Validate a HotPoolClaim spec at `now` (a `renewedAt` is judged against the current time).
pub fn validate_hot_pool_claim(spec: &HotPoolClaimSpec, now: Timestamp) -> Result<(), ValidationErrors> {
    let mut errs = ValidationErrors::default();
    for (field, value) in [("spec.pool", &spec.pool), ("spec.version", &spec.version), ("spec.client", &spec.client)] {
        if value.trim().is_empty() {
            errs.push(field, "must not be empty");
        }
    }
    if let Some(renewed) = &spec.renewed_at
        && clock::too_far_ahead(renewed.0, now)
    {
        errs.push(
            "spec.renewedAt",
            // No `now` in the message: it would change the status (and send an Event) every pass.
            format!(
                "{} is more than {} s ahead of the operator's clock; renew by setting it to the current \
                 time (e.g. `date -u +%Y-%m-%dT%H:%M:%SZ`); until then the lease is not extended",
                renewed.0.strftime("%Y-%m-%dT%H:%M:%SZ"),
                clock::MAX_CLOCK_SKEW.as_secs()
            ),
        );
    }
    errs.into_result()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_container_memory_must_leave_room_for_the_containers_without_a_limit() {
        let spec = |sidecar: serde_json::Value| -> FargateAppSpec {
            serde_json::from_value(serde_json::json!({
                "cluster": "apps", "cpu": 256, "memory": 512, "network": {"subnets": ["subnet-1"]},
                "containers": [{"name": "web", "image": "nginx", "port": 80}, sidecar]
            }))
            .unwrap()
        };
        let full = validate_fargate_app(&spec(serde_json::json!({"name": "s", "image": "x", "memory": 512})));
        assert!(full.unwrap_err().to_string().contains("leaving none"), "all of it for the sidecar");
        assert!(validate_fargate_app(&spec(serde_json::json!({"name": "s", "image": "x", "memory": 256}))).is_ok());
        assert!(validate_fargate_app(&spec(serde_json::json!({"name": "s", "image": "x"}))).is_ok());
    }

    #[test]
    fn an_app_record_must_lie_in_its_zone_and_a_cname_not_at_its_apex() {
        let dns = |name: &str, t: &str| -> crate::api::fargate_app::DnsSpec {
            serde_json::from_value(serde_json::json!({"hostedZoneId": "Z1", "name": name, "type": t})).unwrap()
        };
        assert!(validate_app_record(&dns("web.apps.example.com", "Alias"), "apps.example.com.").is_ok());
        assert!(validate_app_record(&dns("Apps.Example.com.", "Alias"), "apps.example.com.").is_ok(), "alias at apex");
        let apex = validate_app_record(&dns("apps.example.com", "CNAME"), "apps.example.com.").unwrap_err();
        assert!(apex.to_string().contains("spec.dns.name"), "{apex}");
        let outside = validate_app_record(&dns("web.example.org", "Alias"), "apps.example.com.").unwrap_err();
        assert!(outside.to_string().contains("not inside the zone"), "{outside}");
        assert!(validate_app_record(&dns("xapps.example.com", "Alias"), "apps.example.com").is_err(), "label boundary");
    }

    fn app(lb: serde_json::Value) -> FargateAppSpec {
        serde_json::from_value(serde_json::json!({
            "cluster": "apps", "cpu": 256, "memory": 512,
            "containers": [{"name": "web", "image": "nginx", "port": 80}],
            "network": {"subnets": ["subnet-1"]},
            "loadBalancer": lb,
        }))
        .expect("spec")
    }

    fn rule(paths: &[&str], matcher: &str) -> FargateAppSpec {
        app(serde_json::json!({
            "listenerRule": {"listenerArn": "arn:aws:elasticloadbalancing:us-east-1:1:listener/app/x/1/2", "pathPatterns": paths},
            "targetGroup": {"healthCheck": {"matcher": matcher}},
        }))
    }

    #[test]
    fn matchers_and_path_patterns_alb_refuses_are_refused_first() {
        assert!(validate_fargate_app(&rule(&["/a/*", "/b?c", "/x-y_z.html"], "200-399")).is_ok());
        assert!(validate_fargate_app(&rule(&["/a/*"], "200,302,404")).is_ok());
        for m in ["999", "100", "200-500", "399-200", "", "20", "abc"] {
            let e = validate_fargate_app(&rule(&["/a/*"], m)).expect_err(m);
            assert!(e.mentions("spec.loadBalancer.targetGroup.healthCheck.matcher"), "{m}: {e}");
        }
        for p in ["/a b/*", "/tab\there", "/é"] {
            let e = validate_fargate_app(&rule(&[p], "200")).expect_err(p);
            assert!(e.mentions("spec.loadBalancer.listenerRule.pathPatterns[0]"), "{p}: {e}");
        }
    }

    #[test]
    fn the_load_balancer_port_must_be_one_the_container_exposes() {
        let vpc = |port: serde_json::Value| {
            app(serde_json::json!({"containerPort": port, "targetGroup": {"vpcId": "vpc-1"}}))
        };
        assert!(validate_fargate_app(&vpc(serde_json::json!(80))).is_ok());
        assert!(validate_fargate_app(&vpc(serde_json::Value::Null)).is_ok());
        let e = validate_fargate_app(&vpc(serde_json::json!(9090))).expect_err("9090 is not mapped");
        assert!(e.mentions("spec.loadBalancer.containerPort") && e.to_string().contains("(80)"), "{e}");
    }

    #[test]
    fn a_task_definition_over_64_kib_is_refused_naming_the_container_with_the_most_env() {
        let mut spec = app(serde_json::json!({"containerPort": 80, "targetGroup": {"vpcId": "vpc-1"}}));
        spec.containers[0].env.insert("SMALL".into(), "x".repeat(1000));
        assert!(validate_fargate_app(&spec).is_ok());
        spec.containers[0].env.insert("BIG".into(), "x".repeat(70 * 1024));
        let e = validate_fargate_app(&spec).expect_err("too big");
        assert!(e.mentions("spec.containers[0].env") && e.to_string().contains("64 KiB"), "{e}");
    }

    #[test]
    fn tags_and_region_are_checked_for_every_kind() {
        let mut spec = rule(&["/a/*"], "200");
        spec.tags.insert("aws:owner".into(), "x".into());
        spec.aws = Some(crate::api::AwsOverride { region: Some("xx-fake-1".into()), ..Default::default() });
        let e = validate_fargate_app(&spec).expect_err("refused");
        assert!(e.mentions("spec.tags") && e.mentions("spec.aws.region"), "{e}");
    }
}
