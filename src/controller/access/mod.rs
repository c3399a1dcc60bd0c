//! AccessPolicy enforcement: every pass of a FargateApp, DnsFailover or HotPool checks what its
//! spec uses in AWS (`uses`) against the AccessPolicies that name its namespace (`check`) before
//! any AWS call; a refusal is `Degraded`/`NotPermitted` naming the field and the policy. The
//! policies and the namespaces' labels come from watches that live as long as the leadership term;
//! a change of either re-runs every object's pass, so a grant or a revocation shows at once.

pub mod check;
pub mod uses;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::Api;
use kube::core::{Selector, SelectorExt};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::watch;

pub use check::{Grant, REASON_NOT_PERMITTED, Use, What};

use super::Blocked;
use crate::api::AccessPolicy;
use crate::runtime::Context;

/// How long a pass waits for the first list of policies (at startup) before it gives up and is
/// retried with backoff: deciding without them would let everything through.
const READY_WAIT: Duration = Duration::from_secs(10);

/// The AccessPolicies and namespace labels of the current leadership term. `Default` has none and
/// refuses nothing: it is what code paths without a term (unit tests of one pass) use.
#[derive(Clone, Default)]
pub struct Access {
    live: Option<Arc<Live>>,
}

struct Live {
    policies: Store<AccessPolicy>,
    namespaces: Store<Namespace>,
    require: bool,
    changes: watch::Receiver<u64>,
    /// Whether each store holds its first full list. Not `Store::wait_until_ready`: in
    /// kube-runtime 5.0 it wakes only one of several concurrent waiters (see `hot_pool::Shared`).
    policies_listed: watch::Receiver<bool>,
    namespaces_listed: watch::Receiver<bool>,
}

/// The gate's answer for one pass.
#[derive(Debug, PartialEq, Eq)]
pub enum Gate {
    /// Every use is allowed; the grant may narrow an automatic rule priority.
    Allowed(Grant),
    /// A use is refused: `Degraded`/`NotPermitted`.
    Refused(Blocked),
    /// The policies or the namespace's labels are not known yet: retried with backoff.
    Unknown(String),
}

impl Access {
    /// Watch AccessPolicies and Namespaces until `stop`. Returns the access the term's passes use
    /// and the future that keeps it current (to be run alongside the controllers).
    pub fn watch(
        ctx: &Context,
        stop: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> (Self, impl std::future::Future<Output = ()> + Send + 'static) {
        let (policies, policy_writer) = reflector::store();
        let (namespaces, namespace_writer) = reflector::store();
        let (tx, changes) = watch::channel(0u64);
        let (policies_listed_tx, policies_listed) = watch::channel(false);
        let (namespaces_listed_tx, namespaces_listed) = watch::channel(false);
        let live = Arc::new(Live {
            policies: policies.clone(),
            namespaces,
            require: ctx.config.require_access_policy,
            changes,
            policies_listed,
            namespaces_listed,
        });
        let policy_api: Api<AccessPolicy> = Api::all(ctx.client.clone());
        let namespace_api: Api<Namespace> = Api::all(ctx.client.clone());
        let tx = Arc::new(tx);
        let (ptx, ntx) = (tx.clone(), tx);
        let policy_events = reflector::reflector(
            policy_writer,
            watcher(policy_api, super::slim::watch_config()).modify(super::slim::slim),
        )
        .default_backoff()
        .for_each({
            let mut listed = false;
            move |event| {
                if matches!(event, Ok(watcher::Event::InitDone)) {
                    policies_listed_tx.send_replace(true);
                }
                if changed(&event, &mut listed, "AccessPolicy") {
                    ptx.send_modify(|n| *n = n.wrapping_add(1));
                }
                async {}
            }
        });
        let namespace_events = reflector::reflector(
            namespace_writer,
            watcher(namespace_api, super::slim::watch_config()).modify(super::slim::slim_namespace),
        )
        .default_backoff()
        .for_each({
            let mut listed = false;
            move |event| {
                if matches!(event, Ok(watcher::Event::InitDone)) {
                    namespaces_listed_tx.send_replace(true);
                }
                // Labels matter only to policies that select namespaces by label.
                let selects = policies.state().iter().any(|p| p.spec.namespace_selector.is_some());
                if changed(&event, &mut listed, "Namespace") && selects {
                    ntx.send_modify(|n| *n = n.wrapping_add(1));
                }
                async {}
            }
        });
        let run = async move {
            tokio::select! {
                _ = stop => {}
                _ = async { tokio::join!(policy_events, namespace_events) } => {}
            }
        };
        (Self { live: Some(live) }, run)
    }

    /// A stream that yields once per change of the policies (or of the labels they select by):
    /// every object is looked at again.
    pub fn changes(&self) -> impl Stream<Item = ()> + Send + 'static {
        let rx = self.live.as_ref().map(|l| l.changes.clone());
        futures::stream::unfold(rx, |rx| async move {
            let mut rx = rx?;
            rx.changed().await.ok()?;
            Some(((), Some(rx)))
        })
    }

    /// A counter of the changes [`changes`](Self::changes) yields: a decision taken under one
    /// value may differ under the next.
    pub fn epoch(&self) -> u64 {
        self.live.as_ref().map_or(0, |l| *l.changes.borrow())
    }

    /// Decide `uses` of an object in `namespace`, waiting (briefly) for the first list of
    /// policies and namespaces.
    pub async fn gate(&self, namespace: &str, uses: &[Use]) -> Gate {
        let Some(live) = &self.live else { return Gate::Allowed(Grant::default()) };
        let (mut p, mut n) = (live.policies_listed.clone(), live.namespaces_listed.clone());
        let ready = async { p.wait_for(|r| *r).await.is_ok() && n.wait_for(|r| *r).await.is_ok() };
        match tokio::time::timeout(READY_WAIT, ready).await {
            Ok(true) => self.check(namespace, uses),
            _ => Gate::Unknown("AccessPolicies are not readable yet (is the AccessPolicy CRD installed, and may the operator list and watch accesspolicies and namespaces?)".into()),
        }
    }

    /// Whether any policy limits pool tasks: only then does a HotPool pass sum its namespace's
    /// other pools.
    pub fn limits_pool_tasks(&self) -> bool {
        self.live.as_ref().is_some_and(|l| l.policies.state().iter().any(|p| p.spec.allow.max_pool_tasks.is_some()))
    }

    /// Decide `uses` with the policies as they are now (the stores are ready: a pass checks after
    /// [`Access::gate`] let it through).
    pub fn check(&self, namespace: &str, uses: &[Use]) -> Gate {
        let Some(live) = &self.live else { return Gate::Allowed(Grant::default()) };
        let all = live.policies.state();
        let labels = live
            .namespaces
            .get(&reflector::ObjectRef::new(namespace))
            .map(|n| n.metadata.labels.clone().unwrap_or_default());
        let mut naming = Vec::new();
        for p in &all {
            match names(p, namespace, labels.as_ref()) {
                Ok(true) => naming.push(p.as_ref()),
                Ok(false) => {}
                Err(e) => return Gate::Unknown(e),
            }
        }
        naming.sort_by_key(|p| p.metadata.name.clone());
        match check::decide(namespace, &naming, live.require, uses) {
            Ok(grant) => Gate::Allowed(grant),
            Err(message) => Gate::Refused(Blocked { reason: REASON_NOT_PERMITTED, message }),
        }
    }
}

/// Whether policy `p` names `namespace` (whose labels are `labels`, `None` when not read).
fn names(p: &AccessPolicy, namespace: &str, labels: Option<&BTreeMap<String, String>>) -> Result<bool, String> {
    if p.spec.namespaces.iter().any(|n| n == namespace) {
        return Ok(true);
    }
    let Some(selector) = &p.spec.namespace_selector else { return Ok(false) };
    let name = p.metadata.name.clone().unwrap_or_default();
    let selector = Selector::try_from(selector.clone())
        .map_err(|e| format!("AccessPolicy {name}: spec.namespaceSelector is not a valid selector: {e}"))?;
    let Some(labels) = labels else {
        return Err(format!(
            "the labels of namespace {namespace} are not read yet (AccessPolicy {name} selects by label)"
        ));
    };
    Ok(selector.matches(labels))
}

/// Whether a watch event changes what the store holds (the first list does not: every object is
/// reconciled at the start of a term anyway; a re-list does, as the policies may have changed
/// while the watch was down).
fn changed<K>(event: &Result<watcher::Event<K>, watcher::Error>, listed: &mut bool, what: &str) -> bool {
    match event {
        Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_)) => true,
        Ok(watcher::Event::InitDone) => std::mem::replace(listed, true),
        Ok(_) => false,
        Err(err) => {
            tracing::warn!(%err, "{what} watch failed; retrying");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(json: serde_json::Value) -> AccessPolicy {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a_policy_names_a_namespace_by_name_or_by_label() {
        let by_name = policy(serde_json::json!({"metadata": {"name": "a"}, "spec": {"namespaces": ["team-a"]}}));
        assert_eq!(names(&by_name, "team-a", None), Ok(true));
        assert_eq!(names(&by_name, "team-b", None), Ok(false));
        let by_label = policy(serde_json::json!({"metadata": {"name": "b"},
            "spec": {"namespaceSelector": {"matchLabels": {"team": "b"}}}}));
        let labels = BTreeMap::from([("team".to_string(), "b".to_string())]);
        assert_eq!(names(&by_label, "team-b", Some(&labels)), Ok(true));
        assert_eq!(names(&by_label, "team-a", Some(&BTreeMap::new())), Ok(false));
        assert!(names(&by_label, "team-b", None).is_err(), "unknown labels are not a no");
    }
}
