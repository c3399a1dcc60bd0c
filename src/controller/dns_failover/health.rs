//! What a health reading means: Route 53's checker reports as a health state, the side Route 53
//! answers, and the status (conditions, failover) an observation gives. Pure, so flips are
//! unit-tested (moto always reports healthy). The poller that reads them is `poller`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::api::dns_failover::{ActiveTarget, DnsFailoverStatus, Failover, FailoverMode, HealthState};
use crate::runtime::conditions;
use crate::runtime::status::ObjectStatus;

/// Route 53 counts a check healthy when more than 18% of its checkers report success.
pub fn health_from_reports<'a>(reports: impl IntoIterator<Item = &'a str>) -> HealthState {
    let (mut ok, mut all) = (0usize, 0usize);
    for r in reports {
        all += 1;
        if r.starts_with("Success") {
            ok += 1;
        }
    }
    if all == 0 {
        HealthState::Unknown
    } else if ok * 100 > all * 18 {
        HealthState::Healthy
    } else {
        HealthState::Unhealthy
    }
}

/// Which side Route 53 answers, given the mode and the primary's health.
pub fn active_target(mode: FailoverMode, primary: HealthState) -> ActiveTarget {
    match (mode, primary) {
        (FailoverMode::ForcePrimary, _) => ActiveTarget::Primary,
        (FailoverMode::ForceSecondary, _) => ActiveTarget::Secondary,
        (FailoverMode::Auto, HealthState::Healthy) => ActiveTarget::Primary,
        (FailoverMode::Auto, HealthState::Unhealthy) => ActiveTarget::Secondary,
        (FailoverMode::Auto, HealthState::Unknown) => ActiveTarget::Unknown,
    }
}

/// Status after a health observation; pure so flips are unit-tested (moto always reports healthy).
/// Returns the new status and the failover that happened, if any.
pub fn observe(
    old: &DnsFailoverStatus,
    mode: FailoverMode,
    primary: HealthState,
    secondary: HealthState,
    generation: Option<i64>,
    now: Timestamp,
) -> (DnsFailoverStatus, Option<Failover>) {
    let mut st = old.clone();
    if let Some(checks) = st.health_checks.as_mut() {
        checks.primary.status = primary;
        if !checks.secondary.id.is_empty() {
            checks.secondary.status = secondary;
        }
    }
    let before = old.active_target.unwrap_or_default();
    let after = active_target(mode, primary);
    st.active_target = Some(after);
    let mut flip = None;
    if before != after && before != ActiveTarget::Unknown && after != ActiveTarget::Unknown {
        let reason = match (mode, after) {
            (FailoverMode::ForceSecondary, _) => "ForcedSecondary",
            (FailoverMode::ForcePrimary, _) => "ForcedPrimary",
            (_, ActiveTarget::Secondary) => "PrimaryUnhealthy",
            _ => "PrimaryRecovered",
        };
        let f = Failover { time: Time(now), from: before, to: after, reason: reason.into() };
        st.last_failover = Some(f.clone());
        flip = Some(f);
    }
    let c = st.conditions_mut();
    let (healthy, reason) = match primary {
        HealthState::Healthy => (true, "Healthy"),
        HealthState::Unhealthy => (false, "Unhealthy"),
        HealthState::Unknown => (false, "Unknown"),
    };
    conditions::set_condition(
        c,
        "PrimaryHealthy",
        healthy,
        reason,
        &format!("Route 53 checkers report the primary {reason}"),
        generation,
    );
    let failed_over = after == ActiveTarget::Secondary;
    let msg = if failed_over { "Route 53 answers the secondary target" } else { "Route 53 answers the primary target" };
    conditions::set_condition(
        c,
        "FailedOver",
        failed_over,
        if failed_over { "Secondary" } else { "Primary" },
        msg,
        generation,
    );
    (st, flip)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::dns_failover::{HealthCheckStatus, HealthChecksStatus};

    fn status(active: ActiveTarget) -> DnsFailoverStatus {
        DnsFailoverStatus {
            active_target: Some(active),
            health_checks: Some(HealthChecksStatus {
                primary: HealthCheckStatus { id: "p".into(), status: HealthState::Unknown },
                secondary: HealthCheckStatus::default(),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn health_follows_route53s_threshold() {
        assert_eq!(health_from_reports(["Success: 200", "Failure: timeout", "Failure: timeout"]), HealthState::Healthy);
        assert_eq!(health_from_reports(["Failure: x"; 8]), HealthState::Unhealthy);
        assert_eq!(health_from_reports(std::iter::empty()), HealthState::Unknown);
    }

    #[test]
    fn a_flip_records_the_failover_and_sets_conditions() {
        let now = Timestamp::UNIX_EPOCH;
        let (st, flip) = observe(
            &status(ActiveTarget::Primary),
            FailoverMode::Auto,
            HealthState::Unhealthy,
            HealthState::Unknown,
            Some(1),
            now,
        );
        let f = flip.expect("a failover");
        assert_eq!(
            (f.from, f.to, f.reason.as_str()),
            (ActiveTarget::Primary, ActiveTarget::Secondary, "PrimaryUnhealthy")
        );
        assert_eq!(st.last_failover, Some(f));
        assert!(conditions::is_true(&st.conditions, "FailedOver"));
        assert!(!conditions::is_true(&st.conditions, "PrimaryHealthy"));
        // Recovery flips back; a second identical observation changes nothing.
        let (back, flip) = observe(&st, FailoverMode::Auto, HealthState::Healthy, HealthState::Unknown, Some(1), now);
        assert_eq!(flip.map(|f| f.reason), Some("PrimaryRecovered".to_string()));
        let (again, flip) =
            observe(&back, FailoverMode::Auto, HealthState::Healthy, HealthState::Unknown, Some(1), now);
        assert!(flip.is_none());
        assert_eq!(again, back, "a steady state writes nothing");
    }

    #[test]
    fn forced_modes_win_over_health_and_unknown_is_no_flip() {
        assert_eq!(active_target(FailoverMode::ForceSecondary, HealthState::Healthy), ActiveTarget::Secondary);
        assert_eq!(active_target(FailoverMode::ForcePrimary, HealthState::Unhealthy), ActiveTarget::Primary);
        let (_, flip) = observe(
            &status(ActiveTarget::Unknown),
            FailoverMode::Auto,
            HealthState::Healthy,
            HealthState::Unknown,
            None,
            Timestamp::UNIX_EPOCH,
        );
        assert!(flip.is_none(), "the first observation is not a failover");
    }
}
