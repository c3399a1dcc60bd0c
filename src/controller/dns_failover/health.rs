//! The shared health poller: one background task reads GetHealthCheckStatus for every DnsFailover
//! under its own small budget (Route 53 allows about 1 such call per second), instead of each
//! reconcile polling. It writes no status: it records each reading (`readings`) and, when a reading
//! would change an object's status, triggers that object's reconcile, which applies it (and emits
//! the Event of a switch of the active side).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};

use super::clients;
use super::readings::{Reading, Readings, apply_reading};
use crate::api::dns_failover::{ActiveTarget, DnsFailover, DnsFailoverStatus, Failover, FailoverMode, HealthState};
use crate::aws::{Service, TokenBucket};
use crate::runtime::Context;
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

async fn poll_once(ctx: &Context, bucket: &TokenBucket, trigger: &Trigger) {
    let api: Api<DnsFailover> = match &ctx.config.namespace {
        Some(ns) => Api::namespaced(ctx.client.clone(), ns),
        None => Api::all(ctx.client.clone()),
    };
    let list = match api.list(&ListParams::default()).await {
        Ok(l) => l,
        Err(err) => {
            tracing::warn!(%err, "health poller: cannot list DnsFailovers");
            return;
        }
    };
    let listed: std::collections::HashSet<String> = list.items.iter().map(Readings::key_of).collect();
    for obj in reading_order(list.items) {
        if let Err(panic) = crate::controller::catch_panic(poll_object(ctx, bucket, &obj, trigger)).await {
            ctx.metrics.reconcile_panicked("DnsFailover");
            tracing::error!(object = %ObjectRef::from_obj(&obj), %panic, "health poller: reading panicked; skipped");
        }
    }
    ctx.health.retain_listed(&listed);
}

/// Read one object's health checks, record the reading, and ask for a reconcile when it changes
/// what the status says.
async fn poll_object(ctx: &Context, bucket: &TokenBucket, obj: &DnsFailover, trigger: &Trigger) {
    if obj.meta().deletion_timestamp.is_some() || obj.spec.policy.paused {
        return;
    }
    let Some(status) = obj.status.clone() else { return };
    let Some(checks) = status.health_checks.clone() else { return };
    if checks.primary.id.is_empty() {
        return;
    }
    let Ok(aws) = clients(ctx, obj).await else { return };
    // A blip keeps what was known; only a terminal failure makes the side Unknown.
    let mut states = [checks.primary.status, checks.secondary.status];
    for (i, id) in [&checks.primary.id, &checks.secondary.id].into_iter().enumerate() {
        if id.is_empty() {
            continue;
        }
        bucket.acquire().await;
        let resp =
            aws.caller.call(Service::Route53, "GetHealthCheckStatus", || aws.r53.get_health_check_status(id)).await;
        match resp {
            Ok(reports) => states[i] = health_from_reports(reports.iter().map(String::as_str)),
            // A denied or otherwise terminal failure needs a human (health stays Unknown until
            // then); throttling and blips are retried next round and only debug noise.
            Err(err) if err.category == crate::aws::ErrorCategory::Terminal => {
                states[i] = HealthState::Unknown;
                tracing::warn!(%err, object = %obj.name_any(), "health poller: GetHealthCheckStatus failed")
            }
            Err(err) => {
                tracing::debug!(%err, object = %obj.name_any(), "health poller: GetHealthCheckStatus failed")
            }
        }
    }
    let reading = Reading {
        uid: obj.uid().unwrap_or_default(),
        generation: obj.meta().generation,
        primary_id: checks.primary.id.clone(),
        secondary_id: checks.secondary.id.clone(),
        primary: states[0],
        secondary: states[1],
    };
    let mut new = status.clone();
    apply_reading(&mut new, obj, Some(&reading), crate::runtime::clock::now());
    ctx.health.record(obj, reading);
    if new != status {
        // The controller is gone only when the term ends, and the poller with it.
        let _ = trigger.send(ObjectRef::from_obj(obj));
    }
}

/// Asks the DnsFailover controller to reconcile an object.
pub type Trigger = tokio::sync::mpsc::UnboundedSender<ObjectRef<DnsFailover>>;

/// Objects whose primary check has no reading yet first: a sweep makes one call per check at about
/// one per second, so at 1,000 objects a new object would otherwise wait up to half an hour for
/// its first reading (and its `Ready`).
fn reading_order(mut items: Vec<DnsFailover>) -> Vec<DnsFailover> {
    items.sort_by_key(|o| {
        o.status
            .as_ref()
            .and_then(|s| s.health_checks.as_ref())
            .is_some_and(|c| c.primary.status != HealthState::Unknown)
    });
    items
}

/// Poll until `stop` resolves, sending objects whose status a reading changes to `trigger`.
pub async fn run(ctx: Arc<Context>, stop: impl std::future::Future<Output = ()> + Send, trigger: Trigger) {
    let bucket = TokenBucket::new(1.0, 1.0);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = poll_once(&ctx, &bucket, &trigger) => {}
        }
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(Duration::from_secs(ctx.config.health_poll_seconds)) => {}
        }
    }
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
    fn checks_without_a_reading_are_read_first() {
        let with = |name: &str, state: HealthState| {
            let mut o = DnsFailover::new(
                name,
                serde_json::from_value(serde_json::json!({
                    "hostedZoneId": "Z1", "name": "a.example.com",
                    "primary": {"target": "p.example.net", "healthCheck": {"type": "HTTPS"}},
                    "secondary": {"target": "s.example.net"}
                }))
                .expect("spec"),
            );
            o.status = Some(DnsFailoverStatus {
                health_checks: Some(HealthChecksStatus {
                    primary: HealthCheckStatus { id: "hc".into(), status: state },
                    ..Default::default()
                }),
                ..Default::default()
            });
            o
        };
        let order: Vec<String> = reading_order(vec![
            with("known", HealthState::Healthy),
            with("new", HealthState::Unknown),
            with("down", HealthState::Unhealthy),
            with("new2", HealthState::Unknown),
        ])
        .iter()
        .map(|o| o.name_any())
        .collect();
        assert_eq!(order, ["new", "new2", "known", "down"]);
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
