//! Pure decisions of the DnsFailover controller: the health check configuration each side needs,
//! what differs from Route 53, and the record pair.

use crate::api::dns_failover::{FailoverMode, HealthCheckSpec, HealthCheckType};
use crate::aws::naming::sha256_hex;

/// A Route 53 health check as we want it (or as Route 53 reports it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCheckConfig {
    /// `HTTPS`, `HTTP`, `TCP`, `HTTPS_STR_MATCH` or `HTTP_STR_MATCH`.
    pub check_type: String,
    /// Host probed.
    pub fqdn: String,
    /// Port probed.
    pub port: i32,
    /// Path (HTTP(S) only).
    pub path: Option<String>,
    /// Body match (STR_MATCH only).
    pub search_string: Option<String>,
    /// 10 or 30.
    pub interval: i32,
    /// 1..10.
    pub failure_threshold: i32,
    /// Route 53 `Inverted`.
    pub inverted: bool,
    /// Route 53 `Disabled` (always healthy).
    pub disabled: bool,
}

/// The health check for `hc` probing `target`, with the primary's `mode` applied (the secondary's
/// check is always `Auto`). `ForcePrimary`: disabled (always healthy). `ForceSecondary`: disabled and
/// inverted (always unhealthy). Records are never rewritten for a switch.
pub fn desired_health_check(hc: &HealthCheckSpec, target: &str, mode: FailoverMode) -> HealthCheckConfig {
    let matching = hc.search_string.as_deref().is_some_and(|s| !s.is_empty());
    let check_type = match (hc.check_type, matching) {
        (HealthCheckType::HTTPS, true) => "HTTPS_STR_MATCH",
        (HealthCheckType::HTTP, true) => "HTTP_STR_MATCH",
        (HealthCheckType::HTTPS, false) => "HTTPS",
        (HealthCheckType::HTTP, false) => "HTTP",
        (HealthCheckType::TCP, _) => "TCP",
    };
    let default_port = if hc.check_type == HealthCheckType::HTTPS { 443 } else { 80 };
    let http = hc.check_type != HealthCheckType::TCP;
    HealthCheckConfig {
        check_type: check_type.into(),
        fqdn: hc.fqdn.clone().unwrap_or_else(|| target.to_string()).trim_end_matches('.').to_ascii_lowercase(),
        port: hc.port.unwrap_or(default_port),
        path: if http { Some(hc.path.clone().unwrap_or_else(|| "/".into())) } else { None },
        search_string: if matching { hc.search_string.clone() } else { None },
        interval: hc.request_interval_seconds,
        failure_threshold: hc.failure_threshold,
        inverted: mode == FailoverMode::ForceSecondary,
        disabled: mode != FailoverMode::Auto,
    }
}

/// What to do about an existing health check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HealthCheckAction {
    /// Matches.
    Keep,
    /// Mutable settings differ: UpdateHealthCheck.
    Update,
    /// Type or request interval differ: they cannot change, so create a new one and delete the old.
    Replace,
}

/// Compare a health check.
pub fn health_check_action(want: &HealthCheckConfig, have: &HealthCheckConfig) -> HealthCheckAction {
    if want.check_type != have.check_type || want.interval != have.interval {
        HealthCheckAction::Replace
    } else if want != have {
        HealthCheckAction::Update
    } else {
        HealthCheckAction::Keep
    }
}

/// The stem of a side's CallerReference: object uid + side + the immutable configuration. Each
/// create adds a nonce planned (and recorded in `status.resources`) before the call: a retry after
/// a lost response repeats the same reference (Route 53 answers with the existing check), and a
/// check removed and re-added, or replaced and replaced back, gets a new one (Route 53 refuses a
/// deleted check's reference for good).
pub fn caller_reference(uid: &str, side: &str, want: &HealthCheckConfig) -> String {
    let hash = sha256_hex(format!("{}/{}/{}", side, want.check_type, want.interval).as_bytes());
    format!("{uid}-{side}-{}", &hash[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hc(extra: serde_json::Value) -> HealthCheckSpec {
        let mut v = serde_json::json!({"type": "HTTPS", "requestIntervalSeconds": 30, "failureThreshold": 3});
        for (k, val) in extra.as_object().expect("object") {
            v[k] = val.clone();
        }
        serde_json::from_value(v).expect("hc")
    }

    #[test]
    fn mode_maps_to_disabled_and_inverted() {
        let h = hc(serde_json::json!({}));
        let auto = desired_health_check(&h, "lb.example.com", FailoverMode::Auto);
        assert!(!auto.disabled && !auto.inverted);
        let primary = desired_health_check(&h, "lb.example.com", FailoverMode::ForcePrimary);
        assert!(primary.disabled && !primary.inverted);
        let secondary = desired_health_check(&h, "lb.example.com", FailoverMode::ForceSecondary);
        assert!(secondary.disabled && secondary.inverted);
        assert_eq!(health_check_action(&secondary, &auto), HealthCheckAction::Update, "a switch is an in-place update");
    }

    #[test]
    fn defaults_by_type_and_string_match() {
        let https = desired_health_check(&hc(serde_json::json!({})), "LB.example.com.", FailoverMode::Auto);
        assert_eq!((https.check_type.as_str(), https.port, https.path.as_deref()), ("HTTPS", 443, Some("/")));
        assert_eq!(https.fqdn, "lb.example.com");
        let m = desired_health_check(
            &hc(serde_json::json!({"searchString": "ok", "type": "HTTP"})),
            "x.com",
            FailoverMode::Auto,
        );
        assert_eq!((m.check_type.as_str(), m.port), ("HTTP_STR_MATCH", 80));
        let tcp =
            desired_health_check(&hc(serde_json::json!({"type": "TCP", "port": 5432})), "db.com", FailoverMode::Auto);
        assert_eq!((tcp.path, tcp.port), (None, 5432));
    }

    #[test]
    fn immutable_changes_replace_and_references_follow_them() {
        let a = desired_health_check(&hc(serde_json::json!({})), "x.com", FailoverMode::Auto);
        let b =
            desired_health_check(&hc(serde_json::json!({"requestIntervalSeconds": 10})), "x.com", FailoverMode::Auto);
        assert_eq!(health_check_action(&b, &a), HealthCheckAction::Replace);
        assert_ne!(caller_reference("u", "primary", &a), caller_reference("u", "primary", &b));
        let c = desired_health_check(&hc(serde_json::json!({"failureThreshold": 5})), "x.com", FailoverMode::Auto);
        assert_eq!(caller_reference("u", "primary", &a), caller_reference("u", "primary", &c));
        assert_eq!(health_check_action(&a, &a), HealthCheckAction::Keep);
    }
}
