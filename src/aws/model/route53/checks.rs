//! Health checks: CallerReference memory, the settings Route 53 fills in, updates, tags and the
//! checker reports GetHealthCheckStatus answers.
//!
//! CallerReference follows the CreateHealthCheck API reference: the same reference and settings
//! as an existing check return that check; the same reference with other settings, or the
//! reference of a check that was deleted ("regardless of the settings"), is
//! `HealthCheckAlreadyExists`; "Route 53 does not store the CallerReference for a deleted health
//! check indefinitely ... will be deleted after a number of days": kept here until the settable
//! retention passes on the model's clock (forever by default).

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_route53::types::{HealthCheckConfig, HealthCheckType};

use crate::aws::errors::{Classified, ErrorCategory};
use crate::aws::model::error;

/// Checker regions Route 53 uses by default; GetHealthCheckStatus answers one report per region.
pub const CHECKER_REGIONS: [&str; 8] = [
    "us-east-1",
    "us-west-1",
    "us-west-2",
    "eu-west-1",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-northeast-1",
    "sa-east-1",
];

/// A health check as the model keeps it.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckState {
    /// Id (a UUID, as AWS's).
    pub id: String,
    /// The CallerReference of its create.
    pub caller_reference: String,
    /// Its settings, with the defaults Route 53 fills in.
    pub config: HealthCheckConfig,
    /// HealthCheckVersion: 1, plus one per update.
    pub version: i64,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// How many of the [`CHECKER_REGIONS`] checkers see the endpoint healthy (the world sets it).
    pub healthy_checkers: usize,
}

/// What a CallerReference was used for.
#[derive(Clone, Debug, PartialEq)]
pub struct Reference {
    /// The check it created.
    pub check_id: String,
    /// The settings it was sent with (defaults filled in).
    pub config: HealthCheckConfig,
    /// When that check was deleted, on the model's clock.
    pub deleted_at: Option<Duration>,
}

/// `config` with the defaults Route 53 reports for settings a create left out (request interval
/// 30 s, failure threshold 3, the type's port, latency not measured, not inverted, enabled, SNI
/// for HTTPS), so a retry that spells a default out is "the same settings".
pub fn with_defaults(config: &HealthCheckConfig) -> HealthCheckConfig {
    let mut c = config.clone();
    let https = matches!(c.r#type, HealthCheckType::Https | HealthCheckType::HttpsStrMatch);
    let http = matches!(c.r#type, HealthCheckType::Http | HealthCheckType::HttpStrMatch);
    c.request_interval = c.request_interval.or(Some(30));
    c.failure_threshold = c.failure_threshold.or(Some(3));
    if https {
        c.port = c.port.or(Some(443));
        c.enable_sni = c.enable_sni.or(Some(true));
    } else if http {
        c.port = c.port.or(Some(80));
    }
    c.measure_latency = c.measure_latency.or(Some(false));
    c.inverted = c.inverted.or(Some(false));
    c.disabled = c.disabled.or(Some(false));
    c
}

/// Settings Route 53 refuses as `InvalidInput`.
pub fn check_config(c: &HealthCheckConfig) -> Result<(), Classified> {
    let bad = |m: &str| Err(error(ErrorCategory::Terminal, "InvalidInput", m));
    if let Some(i) = c.request_interval
        && i != 10
        && i != 30
    {
        return bad("RequestInterval must be 10 or 30");
    }
    if let Some(t) = c.failure_threshold
        && !(1..=10).contains(&t)
    {
        return bad("FailureThreshold must be between 1 and 10");
    }
    if let Some(p) = c.port
        && !(1..=65535).contains(&p)
    {
        return bad("Port must be between 1 and 65535");
    }
    let endpoint = matches!(
        c.r#type,
        HealthCheckType::Http
            | HealthCheckType::Https
            | HealthCheckType::HttpStrMatch
            | HealthCheckType::HttpsStrMatch
            | HealthCheckType::Tcp
    );
    if endpoint && c.ip_address.is_none() && c.fully_qualified_domain_name.is_none() {
        return bad("an endpoint health check needs an IPAddress or a FullyQualifiedDomainName");
    }
    if matches!(c.r#type, HealthCheckType::HttpStrMatch | HealthCheckType::HttpsStrMatch) && c.search_string.is_none() {
        return bad("a string-matching health check needs a SearchString");
    }
    Ok(())
}

/// UpdateHealthCheck: the mutable settings `update` carries replace the check's; the version
/// moves on.
pub fn apply_update(check: &mut CheckState, update: &HealthCheckConfig) {
    let c = &mut check.config;
    if update.fully_qualified_domain_name.is_some() {
        c.fully_qualified_domain_name = update.fully_qualified_domain_name.clone();
    }
    if update.ip_address.is_some() {
        c.ip_address = update.ip_address.clone();
    }
    if update.port.is_some() {
        c.port = update.port;
    }
    if update.resource_path.is_some() {
        c.resource_path = update.resource_path.clone();
    }
    if update.search_string.is_some() {
        c.search_string = update.search_string.clone();
    }
    if update.failure_threshold.is_some() {
        c.failure_threshold = update.failure_threshold;
    }
    if update.inverted.is_some() {
        c.inverted = update.inverted;
    }
    if update.disabled.is_some() {
        c.disabled = update.disabled;
    }
    if update.enable_sni.is_some() {
        c.enable_sni = update.enable_sni;
    }
    check.version = check.version.saturating_add(1);
}

/// The checkers' latest reports, as GetHealthCheckStatus's `StatusReport.Status`: the first
/// `healthy_checkers` regions succeed, the others fail. Raw observations: Inverted and Disabled
/// change how Route 53 uses them, not what the checkers see.
pub fn reports(check: &CheckState) -> Vec<String> {
    let tcp = check.config.r#type == HealthCheckType::Tcp;
    CHECKER_REGIONS
        .iter()
        .enumerate()
        .map(|(i, _)| {
            match (i < check.healthy_checkers, tcp) {
                (true, false) => "Success: HTTP Status Code 200, OK",
                (false, false) => "Failure: HTTP Status Code 503, Service Unavailable",
                (true, true) => "Success: TCP connection established",
                (false, true) => "Failure: Connection timed out. The endpoint or the internet connection is down, or requests are being blocked by your firewall.",
            }
            .to_string()
        })
        .collect()
}

/// The page of checks (in id order) from `marker` (the id of its first check), `size` long, and
/// the id that starts the next page.
pub fn page(
    checks: &BTreeMap<String, CheckState>,
    marker: Option<&str>,
    size: usize,
) -> (Vec<CheckState>, Option<String>) {
    let mut rest = checks.range(marker.unwrap_or_default().to_string()..).map(|(_, c)| c);
    let page: Vec<CheckState> = rest.by_ref().take(size.max(1)).cloned().collect();
    (page, rest.next().map(|c| c.id.clone()))
}
