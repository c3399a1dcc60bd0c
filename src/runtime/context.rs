//! The shared context every reconcile receives.

use std::sync::Arc;

use kube::Client;

use super::backoff::BackoffTracker;
use super::events::EventRecorder;
use super::metrics::Metrics;
use crate::aws::{AwsCaller, AwsProvider};
use crate::config::Config;

/// Everything a controller needs, built once at startup.
#[derive(Clone)]
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// Parsed flags.
    pub config: Arc<Config>,
    /// SDK configuration per object (region, assumed role).
    pub aws: AwsProvider,
    /// Budgeted, instrumented, retrying AWS calls.
    pub caller: AwsCaller,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Kubernetes Events.
    pub events: EventRecorder,
    /// Per-object error backoff.
    pub backoff: Arc<BackoffTracker>,
    /// Route 53 changes merged per hosted zone.
    pub route53: crate::aws::route53_batch::Route53Batcher,
    /// Immutable AWS facts and attempted creates, remembered for the process.
    pub facts: Arc<crate::aws::facts::Facts>,
    /// Full passes and rollout polls per object (FargateApp), to keep periodic reads in budget.
    pub passes: Arc<crate::runtime::passes::PassLog>,
    /// Full passes per DnsFailover, and until when each stays settled (passes in between apply the
    /// health poller's readings without reading Route 53).
    pub failover_passes: Arc<crate::runtime::passes::PassLog>,
    /// Inventory entries whose AWS object a pass found absent, kept for a grace period before
    /// they are dropped (a write another replica recorded may still land).
    pub absences: Arc<crate::runtime::absences::Absences>,
    /// The resourceVersion of each object's last status write, to skip passes from a lagging cache.
    pub written: Arc<crate::runtime::written::WrittenVersions>,
    /// DnsFailover health readings, from the poller to the reconciler.
    pub health: Arc<crate::controller::dns_failover::readings::Readings>,
    /// The AccessPolicies of the leadership term (set when the controllers start).
    pub access: crate::controller::access::Access,
    /// The FargateApp controller's store for the term (set when the controllers start): how many
    /// apps share the budgets of their periodic passes.
    pub fargate_apps: Option<kube::runtime::reflector::Store<crate::api::fargate_app::FargateApp>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").field("config", &self.config).finish_non_exhaustive()
    }
}
