//! Leader election on a `coordination.k8s.io/v1` Lease (kube-lease-manager: a maintained,
//! server-side-apply based implementation, so we do not hand-roll lease arithmetic).

use std::time::{Duration, SystemTime};

use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Client};
use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Leadership, as seen by this replica.
///
/// kube-lease-manager keeps retrying while the apiserver is unreachable and only reports a loss
/// once it can read the Lease again, by which time a standby may have held it for a while. So this
/// replica also confirms its own renewals (about one GET of the Lease per renewal) and counts
/// itself a leader only until its last confirmed renewal is four fifths of the duration old (the
/// renew deadline of client-go's leader election). The manager renews at half the duration, so a
/// healthy leader is confirmed long before; one cut off from the apiserver stops its controllers
/// before any standby can take the Lease over.
pub struct Leadership {
    rx: watch::Receiver<bool>,
    supervisor: JoinHandle<()>,
    task: JoinHandle<Result<kube_lease_manager::LeaseManager, LeaseManagerError>>,
}

/// When a Lease held by `identity` stops being ours for sure: its last renewal plus the duration,
/// less `margin`. None when `identity` does not hold it.
pub fn renew_deadline(lease: &Lease, identity: &str, duration: Duration, margin: Duration) -> Option<SystemTime> {
    let spec = lease.spec.as_ref()?;
    if spec.holder_identity.as_deref() != Some(identity) {
        return None;
    }
    let renewed = spec.renew_time.as_ref().or(spec.acquire_time.as_ref())?;
    SystemTime::from(renewed.0).checked_add(duration)?.checked_sub(margin)
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
        // Renew at half the duration: the other half is for retries while the apiserver is slow.
        let grace = (secs / 2).max(2);
        let manager = LeaseManagerBuilder::new(client.clone(), name)
            .with_namespace(namespace)
            .with_identity(identity)
            .with_duration(secs)
            .with_grace(grace)
            .build()
            .await?;
        let (manager_rx, task) = manager.watch().await;
        let (tx, rx) = watch::channel(false);
        let supervisor = tokio::spawn(supervise(
            manager_rx,
            tx,
            Api::namespaced(client, namespace),
            name.to_string(),
            identity.to_string(),
            Duration::from_secs(secs),
        ));
        Ok(Self { rx, supervisor, task })
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
        if let Err(err) = self.supervisor.await {
            tracing::warn!(%err, "leader supervisor task failed");
        }
        match self.task.await {
            Ok(Ok(_)) => tracing::info!("leader lease released"),
            Ok(Err(err)) => tracing::warn!(%err, "could not release the leader lease"),
            Err(err) => tracing::warn!(%err, "leader election task failed"),
        }
    }
}

/// Publish `manager says leader && last confirmed renewal is before its deadline` on `tx` until
/// every receiver of `tx` is gone; then drop `manager` so the election task releases the Lease.
async fn supervise(
    mut manager: watch::Receiver<bool>,
    tx: watch::Sender<bool>,
    leases: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
) {
    // Also the safety margin: a leader stops this long before a standby may take over.
    let check_every = duration / 5;
    let mut deadline: Option<SystemTime> = None;
    loop {
        let held = *manager.borrow_and_update();
        if !held {
            deadline = None;
        } else if deadline.is_none_or(|d| SystemTime::now().checked_add(check_every).is_none_or(|soon| d <= soon)) {
            // Confirm when the deadline is near (and on acquiring): at most one GET per check.
            match leases.get(&name).await {
                // Someone else's holder identity is a loss at once, not at the deadline.
                Ok(lease) => deadline = renew_deadline(&lease, &identity, duration, check_every),
                Err(err) => tracing::debug!(%err, "cannot read the leader Lease to confirm renewal"),
            }
        }
        let leading = held && deadline.is_some_and(|d| SystemTime::now() < d);
        // Only a change wakes the receivers (the controllers' stop futures wait on it).
        let was = *tx.borrow();
        if was != leading {
            tx.send_replace(leading);
        }
        if was && !leading {
            let why = if !held || deadline.is_none() {
                "the Lease is held by another replica"
            } else {
                "its renewal was not confirmed before the renew deadline"
            };
            tracing::warn!(%identity, why, "stepping down as leader");
        }
        let wake = match deadline {
            Some(d) if held => d.duration_since(SystemTime::now()).unwrap_or_default().min(check_every),
            _ => check_every,
        };
        tokio::select! {
            _ = tx.closed() => return,
            changed = manager.changed() => if changed.is_err() {
                tx.send_replace(false);
                // The election task ended: nothing more will change. Wait for the consumer to go.
                tx.closed().await;
                return;
            },
            _ = tokio::time::sleep(wake.max(Duration::from_millis(200))) => {}
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

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

    fn lease(holder: &str, renewed_secs: i64) -> Lease {
        Lease {
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.into()),
                renew_time: Some(MicroTime(k8s_openapi::jiff::Timestamp::from_second(renewed_secs).expect("time"))),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn the_deadline_is_the_last_renewal_plus_the_duration_less_the_margin() {
        let d = renew_deadline(&lease("me", 1_000), "me", Duration::from_secs(10), Duration::from_secs(2));
        assert_eq!(d, Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_008)));
    }

    #[test]
    fn a_lease_held_by_another_identity_or_never_renewed_has_no_deadline() {
        assert_eq!(renew_deadline(&lease("other", 1_000), "me", Duration::from_secs(10), Duration::ZERO), None);
        assert_eq!(renew_deadline(&Lease::default(), "me", Duration::from_secs(10), Duration::ZERO), None);
    }
}
