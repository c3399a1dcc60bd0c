//! Prometheus metrics, exposed on `--metrics-addr` at `/metrics`.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    kind: String,
    category: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AwsCallLabels {
    service: String,
    operation: String,
    outcome: String,
}

/// Buckets of `hotpool_claim_bind_seconds`: 1 ms to 10 s.
const CLAIM_BIND_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

/// Every metric the operator exports.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<KindLabels, Counter>,
    failures: Family<FailureLabels, Counter>,
    panics: Family<KindLabels, Counter>,
    duration: Family<KindLabels, Histogram, fn() -> Histogram>,
    status_writes: Family<KindLabels, Counter>,
    passes_skipped: Family<KindLabels, Counter>,
    aws_calls: Family<AwsCallLabels, Counter>,
    aws_budget_wait: Family<KindLabels, Histogram, fn() -> Histogram>,
    aws_quota_queued: Family<OperationLabels, Counter>,
    leader: Gauge<i64, AtomicI64>,
    claims_bound: Family<SourceLabels, Counter>,
    claim_wait: Histogram,
    claim_bind: Histogram,
    /// Observations of `claim_bind` (the histogram's own count is readable only in its tests).
    claim_binds: AtomicU64,
    cold_starts: Counter,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    service: String,
    operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    /// `pool` (an idle worker was ready) or `cold` (launched for the claim).
    source: String,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every family registered under the `fargate_operator` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("fargate_operator");
        let reconciles = Family::<KindLabels, Counter>::default();
        let failures = Family::<FailureLabels, Counter>::default();
        let panics = Family::<KindLabels, Counter>::default();
        let duration = Family::<KindLabels, Histogram, fn() -> Histogram>::new_with_constructor(duration_histogram);
        let status_writes = Family::<KindLabels, Counter>::default();
        let passes_skipped = Family::<KindLabels, Counter>::default();
        let aws_calls = Family::<AwsCallLabels, Counter>::default();
        let aws_budget_wait =
            Family::<KindLabels, Histogram, fn() -> Histogram>::new_with_constructor(duration_histogram);
        let aws_quota_queued = Family::<OperationLabels, Counter>::default();
        let leader = Gauge::<i64, AtomicI64>::default();
        let claims_bound = Family::<SourceLabels, Counter>::default();
        // Claim waits run from milliseconds (a hot pool) to minutes (a cold Fargate start).
        let claim_wait = Histogram::new(exponential_buckets(0.05, 2.0, 14));
        // A bind from cached state takes milliseconds; the old metric's 1 s resolution (it starts
        // at creationTimestamp) cannot show that, so this one starts at the first watch event.
        let claim_bind = Histogram::new(CLAIM_BIND_BUCKETS.iter().copied());
        let cold_starts = Counter::default();
        registry.register("reconciles", "Reconciles started, by kind", reconciles.clone());
        registry.register("reconcile_failures", "Reconciles that failed, by kind and error category", failures.clone());
        registry.register(
            "reconcile_panics",
            "Reconciles (and health readings) that panicked and were caught, by kind",
            panics.clone(),
        );
        registry.register("reconcile_duration_seconds", "Reconcile duration, by kind", duration.clone());
        registry.register(
            "status_writes",
            "Status patches sent (attempted) to the apiserver, by kind",
            status_writes.clone(),
        );
        registry.register(
            "passes_skipped",
            "Passes not run because the cached object was older than this process's own last status write, by kind",
            passes_skipped.clone(),
        );
        registry.register(
            "aws_calls",
            "AWS API calls (each attempt), by service, operation and outcome",
            aws_calls.clone(),
        );
        registry.register(
            "aws_budget_wait_seconds",
            "Time spent waiting for the client-side request budget, by service (label kind)",
            aws_budget_wait.clone(),
        );
        registry.register(
            "aws_quota_queued",
            "Passes that ended to come back when their turn in a slow AWS action quota is due, by service and operation",
            aws_quota_queued.clone(),
        );
        registry.register("leader", "1 while this replica holds the leader lease", leader.clone());
        registry.register(
            "hotpool_claims_bound",
            "HotPoolClaims bound, by source (pool: an idle worker was ready, a hit; cold: launched for the claim)",
            claims_bound.clone(),
        );
        registry.register(
            "hotpool_claim_wait_seconds",
            "Time from a HotPoolClaim's creation to its binding",
            claim_wait.clone(),
        );
        registry.register(
            "hotpool_claim_bind_seconds",
            "Time from the controller's first watch event of a HotPoolClaim to the return of its Bound status write",
            claim_bind.clone(),
        );
        registry.register(
            "hotpool_cold_starts",
            "Workers launched for a claim that found no idle worker",
            cold_starts.clone(),
        );
        Self {
            registry,
            reconciles,
            failures,
            panics,
            duration,
            status_writes,
            passes_skipped,
            aws_calls,
            aws_budget_wait,
            aws_quota_queued,
            leader,
            claims_bound,
            claim_wait,
            claim_bind,
            claim_binds: AtomicU64::new(0),
            cold_starts,
        }
    }

    /// A reconcile of `kind` started.
    pub fn reconcile_started(&self, kind: &str) {
        self.reconciles.get_or_create(&KindLabels { kind: kind.into() }).inc();
    }

    /// Reconciles of `kind` started so far.
    pub fn reconcile_count(&self, kind: &str) -> u64 {
        self.reconciles.get(&KindLabels { kind: kind.into() }).map(|c| c.get()).unwrap_or(0)
    }

    /// A reconcile of `kind` ended after `elapsed`.
    pub fn reconcile_finished(&self, kind: &str, elapsed: Duration) {
        self.duration.get_or_create(&KindLabels { kind: kind.into() }).observe(elapsed.as_secs_f64());
    }

    /// A reconcile of `kind` failed with an error of `category`.
    pub fn reconcile_failed(&self, kind: &str, category: &str) {
        self.failures.get_or_create(&FailureLabels { kind: kind.into(), category: category.into() }).inc();
    }

    /// A reconcile (or health reading) of `kind` panicked; the panic was caught.
    pub fn reconcile_panicked(&self, kind: &str) {
        self.panics.get_or_create(&KindLabels { kind: kind.into() }).inc();
    }

    /// Caught panics of `kind` so far.
    pub fn panic_count(&self, kind: &str) -> u64 {
        self.panics.get(&KindLabels { kind: kind.into() }).map(|c| c.get()).unwrap_or(0)
    }

    /// A status patch of `kind` was sent.
    pub fn status_written(&self, kind: &str) {
        self.status_writes.get_or_create(&KindLabels { kind: kind.into() }).inc();
    }

    /// A pass of `kind` was skipped: its cached object was older than its last status write.
    pub fn pass_skipped_behind_cache(&self, kind: &str) {
        self.passes_skipped.get_or_create(&KindLabels { kind: kind.into() }).inc();
    }

    /// One AWS call attempt ended with `outcome` (`success` or an error category).
    pub fn aws_call(&self, service: &str, operation: &str, outcome: &str) {
        self.aws_calls
            .get_or_create(&AwsCallLabels {
                service: service.into(),
                operation: operation.into(),
                outcome: outcome.into(),
            })
            .inc();
    }

    /// A HotPoolClaim was bound after waiting `waited_seconds`; `cold` when its worker was launched for it.
    pub fn claim_bound(&self, cold: bool, waited_seconds: f64) {
        let source = if cold { "cold" } else { "pool" };
        self.claims_bound.get_or_create(&SourceLabels { source: source.into() }).inc();
        self.claim_wait.observe(waited_seconds);
    }

    /// A HotPoolClaim's Bound status write returned `elapsed` after the controller first saw the claim.
    pub fn claim_bind_observed(&self, elapsed: Duration) {
        self.claim_bind.observe(elapsed.as_secs_f64());
        self.claim_binds.fetch_add(1, Ordering::Relaxed);
    }

    /// Binds observed by `hotpool_claim_bind_seconds` so far (tests read this).
    pub fn claim_bind_count(&self) -> u64 {
        self.claim_binds.load(Ordering::Relaxed)
    }

    /// `n` workers were launched for claims (cold starts).
    pub fn cold_started(&self, n: usize) {
        self.cold_starts.inc_by(u64::try_from(n).unwrap_or(0));
    }

    /// Claims bound so far from `source` (`pool` or `cold`); tests and benchmarks read this.
    pub fn claims_bound_count(&self, source: &str) -> u64 {
        self.claims_bound.get_or_create(&SourceLabels { source: source.into() }).get()
    }

    /// Passes of `kind` skipped behind a lagging cache so far.
    pub fn passes_skipped_count(&self, kind: &str) -> u64 {
        self.passes_skipped.get(&KindLabels { kind: kind.into() }).map(|c| c.get()).unwrap_or(0)
    }

    /// A call waited `waited` for the `service` budget.
    pub fn budget_waited(&self, service: &str, waited: Duration) {
        self.aws_budget_wait.get_or_create(&KindLabels { kind: service.into() }).observe(waited.as_secs_f64());
    }

    /// A pass ended to come back when its turn in `operation`'s action quota is due.
    pub fn budget_queued(&self, service: &str, operation: &str) {
        self.aws_quota_queued
            .get_or_create(&OperationLabels { service: service.into(), operation: operation.into() })
            .inc();
    }

    /// Passes queued for `service:operation` so far.
    pub fn budget_queued_count(&self, service: &str, operation: &str) -> u64 {
        self.aws_quota_queued
            .get(&OperationLabels { service: service.into(), operation: operation.into() })
            .map(|c| c.get())
            .unwrap_or(0)
    }

    /// Attempts of `service:operation` with `outcome` so far (tests and benchmarks read this).
    pub fn aws_call_count(&self, service: &str, operation: &str, outcome: &str) -> u64 {
        self.aws_calls
            .get(&AwsCallLabels { service: service.into(), operation: operation.into(), outcome: outcome.into() })
            .map(|c| c.get())
            .unwrap_or(0)
    }

    /// Status writes of `kind` so far.
    pub fn status_write_count(&self, kind: &str) -> u64 {
        self.status_writes.get(&KindLabels { kind: kind.into() }).map(|c| c.get()).unwrap_or(0)
    }

    /// Whether this replica leads.
    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; an error here would be a bug in the encoder.
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposes_counters_with_labels() {
        let m = Metrics::new();
        m.reconcile_started("FargateApp");
        m.reconcile_failed("FargateApp", "throttling");
        m.aws_call("ecs", "CreateService", "success");
        m.aws_call("ecs", "CreateService", "success");
        let text = m.encode();
        assert!(text.contains(r#"fargate_operator_reconciles_total{kind="FargateApp"} 1"#), "{text}");
        assert!(
            text.contains(r#"fargate_operator_reconcile_failures_total{kind="FargateApp",category="throttling"} 1"#)
        );
        assert!(text.contains(
            r#"fargate_operator_aws_calls_total{service="ecs",operation="CreateService",outcome="success"} 2"#
        ));
        assert_eq!(m.aws_call_count("ecs", "CreateService", "success"), 2);
    }

    #[test]
    fn claim_binds_are_measured_in_milliseconds() {
        let m = Metrics::new();
        m.claim_bind_observed(Duration::from_micros(1_500));
        m.claim_bind_observed(Duration::from_millis(40));
        let text = m.encode();
        assert!(text.contains(r#"fargate_operator_hotpool_claim_bind_seconds_bucket{le="0.001"} 0"#), "{text}");
        assert!(text.contains(r#"fargate_operator_hotpool_claim_bind_seconds_bucket{le="0.0025"} 1"#), "{text}");
        assert!(text.contains(r#"fargate_operator_hotpool_claim_bind_seconds_bucket{le="0.05"} 2"#), "{text}");
        assert!(text.contains(r#"fargate_operator_hotpool_claim_bind_seconds_bucket{le="10.0"} 2"#), "{text}");
        assert!(text.contains("fargate_operator_hotpool_claim_bind_seconds_sum 0.0415"), "{text}");
        assert_eq!(m.claim_bind_count(), 2);
    }
}
