//! An in-memory Kubernetes API server that a real `kube::Client` talks to, so the simulator can run
//! the real operator (kube-runtime controllers, watchers, finalizers, status writes) on tokio's
//! paused clock with no network.
//!
//! [`KubeModel::client`] gives a `kube::Client` over a `tower::Service` that answers every request
//! in-process: no sockets, no threads, no real sleeps; it works on a current-thread runtime with
//! paused time. Timestamps the server sets come from [`crate::runtime::clock::now`] and watch
//! timeouts from `tokio::time`, so both follow tokio's clock when it is paused.
//!
//! The server is generic over kinds: objects are stored as JSON and it never needs the Rust types.
//! Every resource of `fargate.operator.dev` has a status subresource; other resources are stored as
//! sent. What each part implements, and what it simplifies:
//!
//! - `route`: which paths are served (core and group resources, namespaced and cluster-scoped,
//!   `/status`; anything else is 404);
//! - `verbs`: get, list, create, replace, patch, delete, deletecollection;
//! - `patch`: merge, strategic merge (as merge), JSON and server-side apply patches;
//! - `store`: resourceVersion, generation, finalizers, garbage collection and the event log;
//! - `watch`: watch streams (replay from a resourceVersion, 410 Expired, timeouts, bookmarks);
//! - `select`: label and field selectors.
//!
//! Not modelled: discovery and `/version`, admission and schema validation (CRD schemas, CEL rules,
//! defaults), field ownership (`managedFields`, apply conflicts), `dryRun` (refused), pagination,
//! list at an older resourceVersion, foreground and orphan deletion (every deletion cascades in the
//! background), deletion grace periods, and authentication or authorization.

mod error;
mod patch;
mod route;
mod select;
mod service;
mod store;
mod verbs;
mod watch;

#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex, MutexGuard};

use store::Store;

/// Events the log keeps for watches by default.
pub const DEFAULT_EVENT_LOG: usize = 10_000;

/// The state every client of one model shares.
#[derive(Debug)]
struct Shared {
    store: Mutex<Store>,
    /// The newest resourceVersion, so watches wake on writes.
    changed: tokio::sync::watch::Sender<u64>,
}

impl Shared {
    /// The store, locked. Never held across an await; a poisoned lock (a panic elsewhere while
    /// holding it) is taken over as it is.
    fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// An in-memory Kubernetes API server. Cloning it is cheap; clones share the same objects.
#[derive(Debug, Clone)]
pub struct KubeModel {
    shared: Arc<Shared>,
}

impl Default for KubeModel {
    fn default() -> Self {
        Self::new()
    }
}

impl KubeModel {
    /// An empty server (no objects, not even namespaces) whose event log keeps
    /// [`DEFAULT_EVENT_LOG`] events.
    pub fn new() -> Self {
        Self::with_event_log(DEFAULT_EVENT_LOG)
    }

    /// An empty server whose event log keeps the last `capacity` events (at least one): a watch
    /// from an older resourceVersion, or one whose reader falls further behind, gets 410 Expired.
    pub fn with_event_log(capacity: usize) -> Self {
        let (changed, _) = tokio::sync::watch::channel(0);
        Self { shared: Arc::new(Shared { store: Mutex::new(Store::new(capacity)), changed }) }
    }

    /// A `kube::Client` whose every request this model answers in-process (default namespace
    /// `default`). Must be called inside a tokio runtime (the client spawns its request buffer).
    pub fn client(&self) -> kube::Client {
        kube::Client::new(service::ModelService::new(Arc::clone(&self.shared)), "default")
    }

    /// Turn the synchronous garbage collection (on by default) off or on again. Off, an object
    /// whose owners are all gone stays, as on an apiserver without kube-controller-manager: the
    /// simulator turns it off to see the workers a pool's own deletion left behind (a real
    /// collector would remove them and hide the leak).
    pub fn set_garbage_collection(&self, on: bool) {
        self.shared.store().set_collect_garbage(on);
    }

    /// Number of objects currently stored, for tests.
    pub fn len(&self) -> usize {
        self.shared.store().len()
    }

    /// True when no object is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The newest resourceVersion (0 before the first write).
    pub fn resource_version(&self) -> u64 {
        self.shared.store().resource_version()
    }
}
