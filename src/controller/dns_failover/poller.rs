//! The shared health poller: one background task per leadership term reads the health of every
//! DnsFailover's checks, instead of each reconcile polling. It writes no status: it records each
//! reading (`readings`) and, when a reading would change an object's status, triggers that
//! object's reconcile, which applies it (and emits the Event of a switch of the active side).
//!
//! A full sweep starts every `--health-poll-seconds` (start to start, or at once after a longer
//! sweep) and reads the DnsFailover controller's own store (no LIST, no second copy). With
//! `--health-source cloudwatch` (the default) it reads Route 53's `HealthCheckStatus` metric for up
//! to 500 checks per GetMetricData call, per account, and reads with GetHealthCheckStatus (one check
//! per second per account) only the checks CloudWatch has no datapoint for yet (Route 53 publishes
//! a new check's first datapoint after a few minutes), checks never read first, at most one call
//! per two seconds of the sweep period. The other half of that quota goes to the rounds between
//! full sweeps, every 5 s: they read only the checks never read, so a new object's first reading
//! waits seconds, not for the next full sweep. With `--health-source route53` every check is read
//! with GetHealthCheckStatus. A GetMetricData refused for good (AccessDenied) is reported on the
//! objects it concerns (`Degraded`, `lastError`) while their checks are read one by one.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::{StreamExt, stream};
use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};

use super::clients;
use super::health::health_from_reports;
use super::readings::{Reading, Readings, apply_reading};
use crate::api::AwsOverride;
use crate::api::dns_failover::{DnsFailover, HealthChecksStatus, HealthState};
use crate::aws::api::cloudwatch::METRICS_PER_REQUEST;
use crate::aws::{AwsError, ErrorCategory, Service};
use crate::config::HealthSource;
use crate::runtime::Context;

/// Objects a sweep reads at once.
const READS_AT_ONCE: usize = 16;

/// How often checks never read are read between full sweeps: a new object's first reading waits
/// for at most this, not for the next full sweep.
const FIRST_READINGS_EVERY: Duration = Duration::from_secs(5);

/// How far back a sweep looks for a check's latest datapoint (one a minute, published late).
const METRIC_WINDOW: Duration = Duration::from_secs(300);

/// Asks the DnsFailover controller to reconcile an object.
pub type Trigger = tokio::sync::mpsc::UnboundedSender<ObjectRef<DnsFailover>>;

/// What one sweep read from CloudWatch.
#[derive(Debug, Default)]
struct MetricReadings {
    /// Check id → healthy, for checks with a datapoint in the window.
    healthy: HashMap<String, bool>,
    /// The terminal failure of GetMetricData, per role (the objects whose checks it was to read).
    refused: HashMap<RoleKey, AwsError>,
}

/// The identity a check's metrics are read with: an object's `spec.aws` role and external id.
type RoleKey = (Option<String>, Option<String>);

fn role_key(aws: Option<&AwsOverride>) -> RoleKey {
    (aws.and_then(|a| a.role_arn.clone()), aws.and_then(|a| a.external_id.clone()))
}

/// The checks of an object the poller reads: none while it is deleted, paused or has no check.
fn checks_of(obj: &DnsFailover) -> Option<&HealthChecksStatus> {
    if obj.metadata.deletion_timestamp.is_some() || obj.spec.policy.paused {
        return None;
    }
    obj.status.as_ref()?.health_checks.as_ref().filter(|c| !c.primary.id.is_empty())
}

/// Poll the objects of `store` (the DnsFailover controller's) until `stop` resolves, sending
/// objects whose status a reading changes to `trigger`.
pub async fn run(
    ctx: Arc<Context>,
    store: Store<DnsFailover>,
    stop: impl std::future::Future<Output = ()> + Send,
    trigger: Trigger,
) {
    tokio::pin!(stop);
    // Until the first full list an empty store would read as "every object is gone" and drop
    // every reading. The poller is the store's only waiter, so `wait_until_ready` wakes it.
    tokio::select! {
        _ = &mut stop => return,
        ready = store.wait_until_ready() => if ready.is_err() { return },
    }
    let period = Duration::from_secs(ctx.config.health_poll_seconds);
    let tick = FIRST_READINGS_EVERY.min(period);
    let schedule = std::sync::Mutex::new(Schedule::new(period));
    every(tick, stop, || {
        let round = schedule.lock().unwrap_or_else(|p| p.into_inner()).next(tokio::time::Instant::now());
        sweep(&ctx, &store, &trigger, round, tick)
    })
    .await;
}

/// What a round of the poller reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Round {
    /// Every check: CloudWatch's metrics, and one by one what they do not cover.
    Full,
    /// Only the checks never read yet, one by one (between full sweeps).
    FirstReadings,
}

/// A full sweep every period (start to start), first readings in the rounds between.
#[derive(Debug)]
struct Schedule {
    period: Duration,
    last_full: Option<tokio::time::Instant>,
}

impl Schedule {
    fn new(period: Duration) -> Self {
        Self { period, last_full: None }
    }

    /// The round starting `now`.
    fn next(&mut self, now: tokio::time::Instant) -> Round {
        let due = self.last_full.is_none_or(|t| now.saturating_duration_since(t) >= self.period);
        if due {
            self.last_full = Some(now);
            Round::Full
        } else {
            Round::FirstReadings
        }
    }
}

/// Run `round` every `period`, start to start (at once after a round longer than the period),
/// until `stop` resolves. Start to start: a sweep's direct reads (one a second, up to a period's
/// worth) are part of the period; a pause after each sweep halved them, and at 1,000 new objects
/// (one every 2 s) first readings fell behind.
async fn every<F, Fut>(period: Duration, stop: impl std::future::Future<Output = ()>, mut round: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut stop = std::pin::pin!(stop);
    loop {
        let started = tokio::time::Instant::now();
        tokio::select! {
            _ = &mut stop => return,
            _ = round() => {}
        }
        let next = started.checked_add(period).unwrap_or_else(tokio::time::Instant::now);
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep_until(next) => {}
        }
    }
}

/// One round: a full sweep, or the first readings of checks never read (`tick` apart).
async fn sweep(ctx: &Context, store: &Store<DnsFailover>, trigger: &Trigger, round: Round, tick: Duration) {
    let objects = store.state();
    let read_already = |o: &DnsFailover| {
        let primary = ctx.health.latest(o).map(|r| (r.primary_id, r.primary));
        primary.is_some_and(|(id, state)| {
            state != HealthState::Unknown && checks_of(o).is_some_and(|c| c.primary.id == id)
        })
    };
    let listed: HashSet<String> = objects.iter().map(|o| Readings::key_of(o)).collect();
    if round == Round::Full {
        ctx.health.set_seen(listed.len());
    }
    let due: Vec<Arc<DnsFailover>> = objects
        .into_iter()
        .filter(|o| checks_of(o).is_some())
        .filter(|o| round == Round::Full || !(known_in_status(o) || read_already(o)))
        .collect();
    if due.is_empty() {
        return;
    }
    // GetHealthCheckStatus's own quota (one a second, times `--aws-quota-scale`): half of the
    // period's for the full sweep (checks CloudWatch has no datapoint for yet), the rest for first
    // readings between.
    let per_second =
        crate::aws::budget::action_rate(&ctx.config.budgets(), Service::Route53, "GetHealthCheckStatus").unwrap_or(1.0);
    let reads_in = |d: Duration| {
        // Saturating float-to-int: any rate and period give a count, never a panic.
        ((per_second * d.as_secs_f64()) as usize).max(1)
    };
    let (metrics, direct_left) = match (ctx.config.health_source, round) {
        (HealthSource::Cloudwatch, Round::Full) => {
            let period = Duration::from_secs(ctx.config.health_poll_seconds);
            (read_metrics(ctx, &due).await, reads_in(period / 2))
        }
        (HealthSource::Cloudwatch, Round::FirstReadings) => (MetricReadings::default(), reads_in(tick)),
        (HealthSource::Route53, _) => (MetricReadings::default(), usize::MAX),
    };
    let direct_left = AtomicUsize::new(direct_left);
    // Concurrently, in that order: a read one by one waits in the account's Route 53 queue with
    // every pass's reads (seconds each while objects are being created), and read in a row they
    // made a sweep of ten take minutes (a first reading's p99 was 2,074 s at 1,000 objects).
    stream::iter(reading_order(due, read_already))
        .for_each_concurrent(READS_AT_ONCE, |obj| {
            let (metrics, direct_left) = (&metrics, &direct_left);
            async move {
                let read = read_object(ctx, &obj, metrics, direct_left, trigger);
                if let Err(panic) = crate::controller::catch_panic(read).await {
                    ctx.metrics.reconcile_panicked("DnsFailover");
                    tracing::error!(object = %ObjectRef::from_obj(obj.as_ref()), %panic, "health poller: reading panicked; skipped");
                }
            }
        })
        .await;
    if round == Round::Full {
        ctx.health.retain_listed(&listed);
    }
}

/// Whether the status already holds a reading of the primary check.
fn known_in_status(o: &DnsFailover) -> bool {
    o.status.as_ref().and_then(|s| s.health_checks.as_ref()).is_some_and(|c| c.primary.status != HealthState::Unknown)
}

/// Read the `HealthCheckStatus` metric of every check of `objects`, per role, 500 checks a call.
async fn read_metrics(ctx: &Context, objects: &[Arc<DnsFailover>]) -> MetricReadings {
    let mut by_role: BTreeMap<RoleKey, (Option<AwsOverride>, Vec<String>)> = BTreeMap::new();
    for obj in objects {
        let Some(checks) = checks_of(obj) else { continue };
        let aws = crate::controller::inventory::aws_of(obj.as_ref());
        let entry = by_role.entry(role_key(aws)).or_insert_with(|| (aws.cloned(), Vec::new()));
        entry.1.extend([&checks.primary.id, &checks.secondary.id].into_iter().filter(|id| !id.is_empty()).cloned());
    }
    let mut out = MetricReadings::default();
    for (role, (aws, mut ids)) in by_role {
        ids.sort();
        ids.dedup();
        let Some(client) = ctx.aws.cloudwatch_for(aws.as_ref()).await else { continue };
        let caller = ctx.caller.scoped(client.scope.clone());
        'chunks: for chunk in ids.chunks(METRICS_PER_REQUEST) {
            let mut token: Option<String> = None;
            loop {
                let page = caller
                    .call(Service::CloudWatch, "GetMetricData", || {
                        client.api.health_check_statuses(chunk, METRIC_WINDOW, token.as_deref())
                    })
                    .await;
                match page {
                    Ok(page) => {
                        out.healthy.extend(page.healthy);
                        match page.next_token {
                            Some(next) if token.as_deref() != Some(next.as_str()) => token = Some(next),
                            _ => break,
                        }
                    }
                    Err(err) => {
                        if err.category == ErrorCategory::Terminal {
                            tracing::warn!(%err, "health poller: GetMetricData failed; reading checks one by one");
                            out.refused.insert(role.clone(), err);
                        } else {
                            tracing::debug!(%err, "health poller: GetMetricData failed; retried next sweep");
                        }
                        break 'chunks;
                    }
                }
            }
        }
    }
    out
}

/// Read one object's checks (from the sweep's metrics, else one by one while `direct_left`
/// allows), record the reading, and ask for a reconcile when it changes what the status says.
async fn read_object(
    ctx: &Context,
    obj: &DnsFailover,
    metrics: &MetricReadings,
    direct_left: &AtomicUsize,
    trigger: &Trigger,
) {
    let Some(checks) = checks_of(obj) else { return };
    let Some(status) = obj.status.clone() else { return };
    // A blip keeps what was known; only a terminal failure makes the side Unknown.
    let mut states = [checks.primary.status, checks.secondary.status];
    let mut aws = None;
    for (i, id) in [&checks.primary.id, &checks.secondary.id].into_iter().enumerate() {
        if id.is_empty() {
            continue;
        }
        if let Some(healthy) = metrics.healthy.get(id) {
            states[i] = if *healthy { HealthState::Healthy } else { HealthState::Unhealthy };
            continue;
        }
        if direct_left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_err() {
            continue;
        }
        if aws.is_none() {
            let Ok(clients) = clients(ctx, obj, None).await else { return };
            aws = Some(clients);
        }
        let Some(aws) = aws.as_ref() else { return };
        let resp =
            aws.caller.call(Service::Route53, "GetHealthCheckStatus", || aws.r53.get_health_check_status(id)).await;
        match resp {
            Ok(reports) => states[i] = health_from_reports(reports.iter().map(String::as_str)),
            // A denied or otherwise terminal failure needs a human (health stays Unknown until
            // then); throttling and blips are retried next round and only debug noise.
            Err(err) if err.category == ErrorCategory::Terminal => {
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
        generation: obj.metadata.generation,
        primary_id: checks.primary.id.clone(),
        secondary_id: checks.secondary.id.clone(),
        primary: states[0],
        secondary: states[1],
        source_error: metrics.refused.get(&role_key(crate::controller::inventory::aws_of(obj))).cloned(),
    };
    let mut new = status.clone();
    apply_reading(&mut new, obj, Some(&reading), crate::runtime::clock::now());
    ctx.health.record(obj, reading);
    if new != status {
        // The controller is gone only when the term ends, and the poller with it.
        let _ = trigger.send(ObjectRef::from_obj(obj));
    }
}

/// Objects whose primary check has no reading yet first: reads one by one are slow (one per
/// second), so at 1,000 objects a new object would otherwise wait up to half an hour for its
/// first reading (and its `Ready`). A reading is known from the status, or (`read_already`) from
/// this poller, before a pass has written it: such a check is not read again ahead of others.
fn reading_order(
    mut items: Vec<Arc<DnsFailover>>,
    read_already: impl Fn(&DnsFailover) -> bool,
) -> Vec<Arc<DnsFailover>> {
    items.sort_by_cached_key(|o| known_in_status(o) || read_already(o));
    items
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::dns_failover::{DnsFailoverStatus, HealthCheckStatus};

    #[tokio::test(start_paused = true)]
    async fn rounds_start_every_period_start_to_start() {
        let t0 = tokio::time::Instant::now();
        let starts = std::sync::Mutex::new(Vec::new());
        let stop = tokio::time::sleep(Duration::from_secs(100));
        every(Duration::from_secs(30), stop, || {
            starts.lock().expect("lock").push(t0.elapsed().as_secs());
            // A round of 10 s (the first one 45 s, longer than the period).
            let long = starts.lock().expect("lock").len() == 1;
            tokio::time::sleep(Duration::from_secs(if long { 45 } else { 10 }))
        })
        .await;
        assert_eq!(*starts.lock().expect("lock"), [0, 45, 75], "at once after a long round, then every 30 s");
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_sweep_every_period_and_first_readings_in_the_rounds_between() {
        let mut schedule = Schedule::new(Duration::from_secs(30));
        let t0 = tokio::time::Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let rounds: Vec<Round> = [0, 5, 10, 25, 30, 35, 62, 67].into_iter().map(|s| schedule.next(at(s))).collect();
        use Round::{FirstReadings as F, Full};
        assert_eq!(
            rounds,
            [Full, F, F, F, Full, F, Full, F],
            "a late round is a full sweep, and the period starts again"
        );
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
            Arc::new(o)
        };
        let objects = vec![
            with("known", HealthState::Healthy),
            with("new", HealthState::Unknown),
            with("down", HealthState::Unhealthy),
            with("read", HealthState::Unknown),
            with("new2", HealthState::Unknown),
        ];
        let order: Vec<String> =
            reading_order(objects, |o| o.name_any() == "read").iter().map(|o| o.name_any()).collect();
        assert_eq!(order, ["new", "new2", "known", "down", "read"], "read by the poller, not yet in status: last");
    }
}
