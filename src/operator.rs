//! `fargate-operator run`: wire the runtime together and run the controllers.

use std::sync::Arc;

use kube::Client;

use crate::aws::{AwsCaller, AwsProvider, Budgets};
use crate::config::Config;
use crate::controller;
use crate::runtime::backoff::{BackoffTracker, RequeuePolicy};
use crate::runtime::events::EventRecorder;
use crate::runtime::leader::{self, Leadership};
use crate::runtime::metrics::Metrics;
use crate::runtime::server::{self, Health};
use crate::runtime::shutdown::Shutdown;
use crate::runtime::{Context, telemetry};

/// Why `run` stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// No usable kubeconfig or in-cluster config.
    #[error("cannot build a Kubernetes client: {0}")]
    Client(#[source] kube::Error),
    /// The metrics address could not be bound.
    #[error("cannot serve metrics on {addr}: {source}")]
    Bind {
        /// The address from `--metrics-addr`.
        addr: std::net::SocketAddr,
        /// The bind error.
        source: std::io::Error,
    },
    /// The leader Lease could not be set up.
    #[error("leader election: {0}")]
    Leader(#[from] kube_lease_manager::LeaseManagerError),
    /// The leader-election task ended (it only does on a bug in it): exit so the pod restarts.
    #[error("the leader election task ended")]
    LostLeadership,
}

/// Install the process-wide rustls crypto provider. Both kube and the AWS SDK link rustls; with two
/// providers compiled in, rustls refuses to pick one and panics at the first TLS handshake.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// Run until SIGTERM/SIGINT (Ok) or the end of the leader-election task (Err).
pub async fn run(config: Config) -> Result<(), RunError> {
    telemetry::init(config.log_format, &config.log_level);
    install_crypto_provider();
    let shutdown = Shutdown::new();
    shutdown.trigger_on_signals();
    run_until(config, shutdown).await
}

/// Run until `shutdown` triggers. Split from [`run`] so tests drive shutdown themselves.
pub async fn run_until(config: Config, shutdown: Shutdown) -> Result<(), RunError> {
    let client = Client::try_default().await.map_err(RunError::Client)?;
    let aws = AwsProvider::new(config.region.clone(), config.aws_endpoint_url.clone()).await;
    run_with(config, shutdown, Arc::new(Metrics::new()), client, aws).await
}

/// Run with a given client, AWS provider and metrics registry (tests inject theirs to count calls).
pub async fn run_with(
    config: Config,
    shutdown: Shutdown,
    metrics: Arc<Metrics>,
    client: Client,
    aws: AwsProvider,
) -> Result<(), RunError> {
    let health = Arc::new(Health::default());
    let (addr, server_task) = server::serve(config.metrics_addr, metrics.clone(), health.clone(), shutdown.wait())
        .await
        .map_err(|source| RunError::Bind { addr: config.metrics_addr, source })?;
    tracing::info!(%addr, "serving /metrics, /healthz and /readyz");

    let caller = AwsCaller::new(Budgets::new(config.budgets()), metrics.clone(), config.retry());
    let identity = config.identity.clone().unwrap_or_else(leader::default_identity);
    let base = Context {
        client: client.clone(),
        config: Arc::new(config.clone()),
        aws,
        caller: caller.clone(),
        metrics: metrics.clone(),
        events: EventRecorder::new(client.clone(), Some(identity.clone())),
        backoff: Arc::new(BackoffTracker::new(RequeuePolicy::default())),
        route53: crate::aws::route53_batch::Route53Batcher::new(caller.clone()),
        facts: Arc::default(),
        passes: Arc::default(),
        failover_passes: Arc::default(),
        absences: Arc::default(),
        written: Arc::default(),
        health: Arc::default(),
        access: Default::default(),
        fargate_apps: None,
    };
    // A standby is ready too: readiness gates traffic (metrics scrapes), not leadership.
    health.set_ready(true);

    let mut leadership = None;
    if config.leader_elect {
        let namespace = config.leader_election_namespace.clone().unwrap_or_else(leader::default_namespace);
        let lease_duration = std::time::Duration::from_secs(config.lease_duration_seconds);
        leadership = Some(
            Leadership::start(client.clone(), &namespace, &config.leader_election_name, &identity, lease_duration)
                .await?,
        );
        tracing::info!(%identity, lease = %config.leader_election_name, %namespace, "standing by for leadership");
    }

    // One term per stretch of leadership. A replica that loses the Lease (an apiserver outage
    // longer than the renew deadline, or another replica holding it) stops its controllers at once
    // (see `lead`) and stands by again in the same process: nothing waits on a pod restart.
    let result = loop {
        if let Some(l) = leadership.as_mut() {
            tokio::select! {
                acquired = l.acquired() => if !acquired {
                    break Err(RunError::LostLeadership);
                },
                _ = shutdown.wait() => break Ok(()),
            }
            tracing::info!(%identity, "acquired leadership");
        }
        lead(&base, &shutdown, leadership.as_ref()).await;
        if shutdown.is_triggered() || leadership.is_none() {
            break Ok(());
        }
        tracing::warn!(%identity, "lost leadership: controllers stopped, standing by again");
    };

    health.set_ready(false);
    if let Some(l) = leadership {
        l.release().await;
    }
    shutdown.trigger();
    let _ = server_task.await;
    match &result {
        Ok(()) => tracing::info!("shut down cleanly"),
        Err(err) => tracing::error!(%err, "leader election ended"),
    }
    result
}

/// Run the controllers for one leadership term: until shutdown (gracefully) or, with
/// `leadership`, its loss (at once).
/// What one term learned about objects (pass history, error backoff) is not carried into the next:
/// another replica may have changed AWS in between, so the next term starts with full passes.
async fn lead(base: &Context, shutdown: &Shutdown, leadership: Option<&Leadership>) {
    let ctx = Arc::new(Context {
        backoff: Arc::new(BackoffTracker::new(RequeuePolicy::default())),
        passes: Arc::default(),
        failover_passes: Arc::default(),
        absences: Arc::default(),
        written: Arc::default(),
        health: Arc::default(),
        // Its zone workers end with the term (aborted when the term's last context goes).
        route53: crate::aws::route53_batch::Route53Batcher::new(base.caller.clone()),
        ..base.clone()
    });
    let stop_on = {
        let shutdown = shutdown.clone();
        let lost = leadership.map(|l| l.lost());
        let lost = futures::future::FutureExt::shared(async move {
            match lost {
                Some(lost) => lost.await,
                None => std::future::pending().await,
            }
        });
        move || -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + Sync>> {
            let (stop, lost) = (shutdown.wait(), lost.clone());
            Box::pin(async move {
                tokio::select! { _ = stop => {}, _ = lost => {} }
            })
        }
    };
    base.metrics.set_leader(true);
    tracing::info!(cluster_id = %base.config.cluster_id, namespace = ?base.config.namespace, "starting controllers");
    let controllers = controller::run_all(ctx, stop_on);
    match leadership {
        // SIGTERM lets in-flight reconciles finish while the Lease is still ours. A lost Lease may
        // already be another replica's: drop in-flight reconciles at their next await instead of
        // overlapping with the new leader (no worse than a kill -9, which every step tolerates).
        Some(l) => {
            tokio::select! {
                _ = controllers => {}
                _ = l.lost() => tracing::warn!("leadership lost: in-flight reconciles dropped"),
            }
        }
        None => controllers.await,
    }
    base.metrics.set_leader(false);
}
