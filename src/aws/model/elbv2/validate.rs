//! Parameter checks ELBv2 makes before it looks at any resource (all `ValidationError`), ARN
//! parsing, and the model's errors with the category the SDK path would give them.

use crate::aws::api::elbv2::{Attributes, TargetGroupHealthCheck};
use crate::aws::errors::{Classified, classify_code};

/// An ELBv2 error: `code` classified as the SDK path classifies it (a 400 unless the code says
/// more), so a caller cannot tell the model's error from AWS's.
pub(super) fn fail(code: &str, message: impl Into<String>) -> Classified {
    super::super::error(classify_code(Some(code), Some(400)), code, &message.into())
}

/// `ValidationError` with `message`.
pub(super) fn invalid(message: impl Into<String>) -> Classified {
    fail("ValidationError", message)
}

/// The kind of resource an ELBv2 ARN names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ArnKind {
    LoadBalancer,
    Listener,
    Rule,
    TargetGroup,
}

impl ArnKind {
    /// The NotFound code of this kind.
    pub(super) fn not_found(self) -> &'static str {
        match self {
            Self::LoadBalancer => "LoadBalancerNotFound",
            Self::Listener => "ListenerNotFound",
            Self::Rule => "RuleNotFound",
            Self::TargetGroup => "TargetGroupNotFound",
        }
    }
}

/// The kind of a well-formed ELBv2 ARN (`arn:aws:elasticloadbalancing:<region>:<account>:<type>/…`);
/// anything else is `ValidationError`, as AWS answers a malformed ARN before looking it up.
pub(super) fn arn_kind(arn: &str) -> Result<ArnKind, Classified> {
    let malformed = || invalid(format!("'{arn}' is not a valid ELBv2 ARN"));
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(_partition), Some("elasticloadbalancing"), Some(_region), Some(_account), Some(resource)) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed());
    };
    let kind = match resource.split('/').next() {
        Some("loadbalancer") => ArnKind::LoadBalancer,
        Some("listener") => ArnKind::Listener,
        Some("listener-rule") => ArnKind::Rule,
        Some("targetgroup") => ArnKind::TargetGroup,
        _ => return Err(malformed()),
    };
    if resource.split('/').any(str::is_empty) { Err(malformed()) } else { Ok(kind) }
}

/// An ARN of `kind`, or `ValidationError` (a listener ARN where a rule ARN belongs is malformed
/// for that parameter).
pub(super) fn expect_arn(arn: &str, kind: ArnKind) -> Result<(), Classified> {
    if arn_kind(arn)? == kind { Ok(()) } else { Err(invalid(format!("'{arn}' is not a valid {kind:?} ARN"))) }
}

/// Target group names: 1–32 alphanumerics and hyphens, not starting or ending with a hyphen, not
/// starting with `internal-`.
pub(super) fn target_group_name(name: &str) -> Result<(), Classified> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.starts_with("internal-");
    if ok { Ok(()) } else { Err(invalid(format!("Target group name '{name}' is not valid"))) }
}

/// Protocols a target group may have.
pub(super) fn protocol(protocol: &str) -> Result<(), Classified> {
    const PROTOCOLS: &[&str] = &["HTTP", "HTTPS", "TCP", "TLS", "UDP", "TCP_UDP", "GENEVE"];
    if PROTOCOLS.contains(&protocol) { Ok(()) } else { Err(invalid(format!("Protocol '{protocol}' is not valid"))) }
}

/// A port in 1..=65535.
pub(super) fn port(port: i32) -> Result<(), Classified> {
    if (1..=65535).contains(&port) { Ok(()) } else { Err(invalid(format!("Port '{port}' is not in 1-65535"))) }
}

/// The HTTP health check ranges of ELBv2 (interval 5–300 s, timeout 2–120 s and below the
/// interval, thresholds 2–10, path starting with `/`, success codes 200–499).
pub(super) fn health_check(h: &TargetGroupHealthCheck) -> Result<(), Classified> {
    if !h.path.starts_with('/') || h.path.len() > 1024 {
        return Err(invalid(format!("Health check path '{}' must start with '/' (≤ 1024 characters)", h.path)));
    }
    if !(5..=300).contains(&h.interval_seconds) {
        return Err(invalid("Health check interval must be between 5 and 300 seconds"));
    }
    if !(2..=120).contains(&h.timeout_seconds) {
        return Err(invalid("Health check timeout must be between 2 and 120 seconds"));
    }
    if h.timeout_seconds >= h.interval_seconds {
        return Err(invalid("Health check interval must be greater than the timeout"));
    }
    for (what, n) in [("Healthy", h.healthy_threshold), ("Unhealthy", h.unhealthy_threshold)] {
        if !(2..=10).contains(&n) {
            return Err(invalid(format!("{what} threshold count must be between 2 and 10")));
        }
    }
    matcher(&h.matcher)
}

/// HTTP success codes: `200`, `200,202` or `200-299`, each code in 200..=499.
fn matcher(m: &str) -> Result<(), Classified> {
    let code_ok = |c: &str| c.len() == 3 && c.parse::<u16>().is_ok_and(|n| (200..=499).contains(&n));
    let ok = !m.is_empty()
        && m.split(',').all(|part| match part.split_once('-') {
            Some((lo, hi)) => code_ok(lo) && code_ok(hi) && lo <= hi,
            None => code_ok(part),
        });
    if ok { Ok(()) } else { Err(invalid(format!("Health check matcher HTTP code '{m}' must be within '200-499'"))) }
}

/// A listener rule priority: 1..=50000.
pub(super) fn priority(priority: i32) -> Result<(), Classified> {
    if (1..=50000).contains(&priority) {
        Ok(())
    } else {
        Err(invalid(format!("Priority '{priority}' must be between 1 and 50000")))
    }
}

/// At most 50 tags per resource; keys 1–128 characters, not starting with `aws:`; values ≤ 256.
pub(super) fn tags(tags: &crate::aws::api::elbv2::Tags) -> Result<(), Classified> {
    if tags.len() > 50 {
        return Err(fail("TooManyTags", "A resource can have at most 50 tags"));
    }
    for (k, v) in tags {
        if k.is_empty() || k.len() > 128 || k.starts_with("aws:") || v.len() > 256 {
            return Err(invalid(format!("Tag '{k}' is not valid")));
        }
    }
    Ok(())
}

/// The target group attributes of an application load balancer's `ip` group and their values
/// when the group is created.
pub(super) fn default_attributes() -> Attributes {
    [
        ("deregistration_delay.timeout_seconds", "300"),
        ("load_balancing.algorithm.anomaly_mitigation", "off"),
        ("load_balancing.algorithm.type", "round_robin"),
        ("load_balancing.cross_zone.enabled", "use_load_balancer_configuration"),
        ("slow_start.duration_seconds", "0"),
        ("stickiness.app_cookie.cookie_name", ""),
        ("stickiness.app_cookie.duration_seconds", "86400"),
        ("stickiness.enabled", "false"),
        ("stickiness.lb_cookie.duration_seconds", "86400"),
        ("stickiness.type", "lb_cookie"),
        ("target_group_health.dns_failover.minimum_healthy_targets.count", "1"),
        ("target_group_health.dns_failover.minimum_healthy_targets.percentage", "off"),
        ("target_group_health.unhealthy_state_routing.minimum_healthy_targets.count", "1"),
        ("target_group_health.unhealthy_state_routing.minimum_healthy_targets.percentage", "off"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// ModifyTargetGroupAttributes' checks: known keys only, and the ranges of the ones the operator
/// sets (deregistration delay 0–3600 s, stickiness on or off, slow start 0 or 30–900 s).
pub(super) fn attributes(attributes: &Attributes) -> Result<(), Classified> {
    let known = default_attributes();
    for (key, value) in attributes {
        if !known.contains_key(key) {
            return Err(invalid(format!("Target group attribute key '{key}' is not recognized")));
        }
        let number = || value.parse::<i64>().ok();
        let ok = match key.as_str() {
            "deregistration_delay.timeout_seconds" => number().is_some_and(|n| (0..=3600).contains(&n)),
            "slow_start.duration_seconds" => number().is_some_and(|n| n == 0 || (30..=900).contains(&n)),
            "stickiness.enabled" => value == "true" || value == "false",
            _ => true,
        };
        if !ok {
            return Err(invalid(format!("'{value}' is not a valid value for target group attribute '{key}'")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_are_parsed_by_kind_and_malformed_ones_are_validation_errors() {
        let tg = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/a/0123456789abcdef";
        assert_eq!(arn_kind(tg), Ok(ArnKind::TargetGroup));
        let rule = "arn:aws:elasticloadbalancing:us-east-1:1:listener-rule/app/lb/1/2/3";
        assert_eq!(arn_kind(rule), Ok(ArnKind::Rule));
        for bad in ["", "arn:aws:ecs:us-east-1:1:cluster/x", "arn:aws:elasticloadbalancing:r:1:targetgroup//x"] {
            assert_eq!(arn_kind(bad).map_err(|e| e.code), Err("ValidationError".to_string()), "{bad}");
        }
        assert!(expect_arn(tg, ArnKind::Rule).is_err());
    }

    #[test]
    fn health_checks_and_names_follow_elbv2_ranges() {
        let ok = TargetGroupHealthCheck {
            path: "/health".into(),
            interval_seconds: 30,
            timeout_seconds: 5,
            healthy_threshold: 5,
            unhealthy_threshold: 2,
            matcher: "200-399".into(),
        };
        assert!(health_check(&ok).is_ok());
        assert!(health_check(&TargetGroupHealthCheck { timeout_seconds: 30, ..ok.clone() }).is_err());
        assert!(health_check(&TargetGroupHealthCheck { matcher: "500".into(), ..ok.clone() }).is_err());
        assert!(health_check(&TargetGroupHealthCheck { path: "health".into(), ..ok }).is_err());
        assert!(target_group_name("app-1").is_ok());
        for bad in ["", "-a", "a-", "internal-a", "a_b", &"x".repeat(33)] {
            assert!(target_group_name(bad).is_err(), "{bad}");
        }
        let dereg = |v: &str| Attributes::from([("deregistration_delay.timeout_seconds".into(), v.into())]);
        assert!(attributes(&dereg("30")).is_ok());
        assert!(attributes(&dereg("3601")).is_err());
        assert!(attributes(&Attributes::from([("no.such".into(), "1".into())])).is_err());
    }
}
