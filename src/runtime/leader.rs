//! Leader election on a `coordination.k8s.io/v1` Lease (kube-lease-manager: a maintained,
//! server-side-apply based implementation, so we do not hand-roll lease arithmetic).

use std::time::Duration;

use kube::Client;
use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Leadership, as seen by this replica.
pub struct Leadership {
    rx: watch::Receiver<bool>,
    task: JoinHandle<Result<kube_lease_manager::LeaseManager, LeaseManagerError>>,
}

impl Leadership {
    /// Start competing for Lease `name` in `namespace` as `identity`. A holder that stops renewing
    /// loses the Lease after `duration`.
    pub async fn start(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        duration: Duration,
    ) -> Result<Self, LeaseManagerError> {
        let secs = duration.as_secs().max(5);
        let manager = LeaseManagerBuilder::new(client, name)
            .with_namespace(namespace)
            .with_identity(identity)
            .with_duration(secs)
            // Renew a third of the duration before expiry: tolerates a slow apiserver round trip.
            .with_grace((secs / 3).max(2))
            .build()
            .await?;
        let (rx, task) = manager.watch().await;
        Ok(Self { rx, task })
    }

    /// Wait until this replica leads. Returns false if the election task ended first.
    pub async fn acquired(&mut self) -> bool {
        self.rx.wait_for(|leading| *leading).await.is_ok()
    }

    /// Resolves when leadership is lost (or the election task ends).
    pub fn lost(&self) -> impl std::future::Future<Output = ()> + Send + Sync + 'static {
        let mut rx = self.rx.clone();
        async move {
            let _ = rx.wait_for(|leading| !*leading).await;
        }
    }

    /// Give the Lease up (so a standby takes over at once instead of after the duration).
    pub async fn release(self) {
        drop(self.rx);
        match self.task.await {
            Ok(Ok(_)) => tracing::info!("leader lease released"),
            Ok(Err(err)) => tracing::warn!(%err, "could not release the leader lease"),
            Err(err) => tracing::warn!(%err, "leader election task failed"),
        }
    }
}

/// Identity for the Lease: `POD_NAME` when set (the chart injects it), else hostname plus a random
/// suffix so two local processes never share one.
pub fn default_identity() -> String {
    if let Ok(pod) = std::env::var("POD_NAME")
        && !pod.is_empty()
    {
        return pod;
    }
    let host = std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()).unwrap_or_else(|| "fargate-operator".into());
    format!("{host}-{:08x}", rand::random::<u32>())
}

/// Namespace for the Lease: the pod's (from the service account mount or `POD_NAMESPACE`), else `default`.
pub fn default_namespace() -> String {
    if let Ok(ns) = std::env::var("POD_NAMESPACE")
        && !ns.is_empty()
    {
        return ns;
    }
    std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "default".into())
}
