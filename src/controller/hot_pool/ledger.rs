//! The binds of this process, from reservation to a while after their writes landed, so that the
//! two writers of bindings in one process (the bind path, `binder`, and the pool pass) never pick
//! one worker or one claim at the same time, and neither acts on a copy older than a bind it made.
//!
//! The stores lag the apiserver by a few milliseconds, and a pool pass plans from reads taken
//! before its writes; the resourceVersion preconditions make a stale write fail, but a pass's idle
//! stop (StopTask, then a delete) has no precondition to fail. So:
//!
//! - every bind reserves its worker and its claim here first, atomically, and is refused while
//!   either is reserved, or while the worker is being stopped;
//! - the bind path skips a worker or claim whose store copy is the one a bind of this process wrote
//!   over (the store has not caught up), and a worker whose write was refused at that copy;
//! - a pass replaces its copies that a bind has since written over with what the bind wrote
//!   ([`Ledger::overlay`]), skips a claim step planned from a copy a bind is writing over, and stops
//!   an idle worker only if no bind touched it since the pass listed the workers
//!   ([`Ledger::begin_stop`]).
//!
//! Another replica's binds are not here: its writes and this one's are kept apart by the
//! resourceVersion preconditions alone, as before.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use kube::ResourceExt;

use crate::api::hot_pool::{HotPoolClaim, HotPoolWorker};
use crate::runtime::clock::Instant;

/// How long a finished bind is remembered: longer than a pass that listed the workers before it
/// could still be running.
const RETAIN: Duration = Duration::from_secs(600);
/// Refused copies remembered at most; past it the oldest memory is dropped (it only saves a retry).
const MAX_REFUSED: usize = 10_000;

/// The key of a worker: `<namespace>/<name>`.
pub fn worker_key(w: &HotPoolWorker) -> String {
    format!("{}/{}", w.namespace().unwrap_or_default(), w.name_any())
}

fn rv<K: kube::Resource>(obj: &K) -> String {
    obj.meta().resource_version.clone().unwrap_or_default()
}

/// One bind: the copies it was planned from and what its writes returned.
#[derive(Debug)]
struct Bind {
    claim_uid: String,
    worker_rv: String,
    claim_rv: String,
    /// The worker as the bind wrote it.
    worker: Option<Arc<HotPoolWorker>>,
    /// The claim as the bind wrote it.
    claim: Option<Arc<HotPoolClaim>>,
    in_flight: bool,
    /// When it was reserved, then when it ended.
    at: Instant,
}

#[derive(Debug, Default)]
struct Inner {
    /// The latest bind of each worker.
    by_worker: HashMap<String, Bind>,
    /// The worker of each claim's latest bind, by claim UID.
    by_claim: HashMap<String, String>,
    /// Workers whose write was refused (conflict or gone) at this resourceVersion.
    refused: HashMap<String, String>,
    /// Workers a pass is stopping.
    stopping: HashSet<String>,
}

/// The binds of this process (see the module documentation).
#[derive(Debug, Default)]
pub struct Ledger {
    inner: Mutex<Inner>,
}

/// A reservation refused, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// The claim is being bound, or was bound after the copy the caller holds.
    ClaimTaken,
    /// The worker is being bound or stopped, or was bound after the caller read it.
    WorkerTaken,
}

impl Ledger {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reserve `worker` for `claim`, planned from these copies. `listed_at`: when the caller read
    /// the workers (a pass's LIST); a worker a bind wrote since is refused too. `None` for the
    /// bind path, which reads the stores, whose staleness the resourceVersions show.
    pub fn reserve(
        &self,
        claim: &HotPoolClaim,
        worker: &HotPoolWorker,
        listed_at: Option<Instant>,
        now: Instant,
    ) -> Result<(), Refused> {
        let mut inner = self.lock();
        inner.purge(now);
        let (uid, key) = (claim.uid().unwrap_or_default(), worker_key(worker));
        if inner.claim_taken(&uid, &rv(claim)) {
            return Err(Refused::ClaimTaken);
        }
        if inner.worker_taken(&key, &rv(worker), listed_at) {
            return Err(Refused::WorkerTaken);
        }
        if let Some(old) = inner.by_worker.get(&key).map(|b| b.claim_uid.clone())
            && inner.by_claim.get(&old).is_some_and(|k| *k == key)
        {
            inner.by_claim.remove(&old);
        }
        inner.by_claim.insert(uid.clone(), key.clone());
        inner.by_worker.insert(
            key,
            Bind {
                claim_uid: uid,
                worker_rv: rv(worker),
                claim_rv: rv(claim),
                worker: None,
                claim: None,
                in_flight: true,
                at: now,
            },
        );
        Ok(())
    }

    /// The worker write of the bind of `key` returned `written`.
    pub fn worker_written(&self, key: &str, mut written: HotPoolWorker) {
        // Kept for minutes and only compared and replayed into status writes (metadata is ignored there).
        crate::controller::slim::slim(&mut written);
        if let Some(b) = self.lock().by_worker.get_mut(key) {
            b.worker = Some(Arc::new(written));
        }
    }

    /// The claim write of the bind of `key` returned `written`: the bind is done.
    pub fn claim_written(&self, key: &str, mut written: HotPoolClaim, now: Instant) {
        crate::controller::slim::slim(&mut written);
        if let Some(b) = self.lock().by_worker.get_mut(key) {
            b.claim = Some(Arc::new(written));
            b.in_flight = false;
            b.at = now;
        }
    }

    /// The bind of `key` ended without binding. Its worker write, if it landed, stays on record
    /// (the worker names the claim; a pass completes or undoes that); a refused worker write is
    /// remembered so the bind path does not pick that copy again.
    pub fn failed(&self, key: &str, worker_refused: bool, now: Instant) {
        let mut inner = self.lock();
        let Some(b) = inner.by_worker.get_mut(key) else { return };
        b.in_flight = false;
        b.at = now;
        if b.worker.is_some() {
            return;
        }
        let (uid, worker_rv) = (b.claim_uid.clone(), b.worker_rv.clone());
        inner.by_worker.remove(key);
        if inner.by_claim.get(&uid).is_some_and(|k| k == key) {
            inner.by_claim.remove(&uid);
        }
        if worker_refused {
            if inner.refused.len() >= MAX_REFUSED {
                inner.refused.clear();
            }
            inner.refused.insert(key.to_string(), worker_rv);
        }
    }

    /// Whether the bind path may pick this worker (its store copy): not reserved, not being
    /// stopped, and not a copy a bind of this process wrote over or had refused.
    pub fn worker_free(&self, worker: &HotPoolWorker) -> bool {
        !self.lock().worker_taken(&worker_key(worker), &rv(worker), None)
    }

    /// Whether the bind path may bind this claim (its store copy): no bind of it in flight, and
    /// not a copy a bind of this process wrote over.
    pub fn claim_free(&self, claim: &HotPoolClaim) -> bool {
        !self.lock().claim_taken(&claim.uid().unwrap_or_default(), &rv(claim))
    }

    /// Whether a pass's step on this claim (the pass's copy) must wait: a bind of it is in flight,
    /// or one wrote over that copy.
    pub fn claim_busy(&self, claim: &HotPoolClaim) -> bool {
        self.lock().claim_taken(&claim.uid().unwrap_or_default(), &rv(claim))
    }

    /// Replace a pass's copies that a finished bind wrote over with what the bind wrote, so its
    /// plan counts those binds even when the claim store has not caught up yet.
    pub fn overlay(&self, workers: &mut BTreeMap<String, HotPoolWorker>, claims: &mut [Arc<HotPoolClaim>]) {
        let inner = self.lock();
        for w in workers.values_mut() {
            if let Some(b) = inner.by_worker.get(&worker_key(w))
                && !b.in_flight
                && b.worker_rv == rv(w)
                && let Some(written) = &b.worker
            {
                *w = written.as_ref().clone();
            }
        }
        for c in claims.iter_mut() {
            let Some(b) = inner.by_claim.get(&c.uid().unwrap_or_default()).and_then(|k| inner.by_worker.get(k)) else {
                continue;
            };
            if !b.in_flight
                && b.claim_rv == rv(c.as_ref())
                && let Some(written) = &b.claim
            {
                *c = written.clone();
            }
        }
    }

    /// Mark `worker` (a pass's copy, from a LIST at `listed_at`) as being stopped, unless a bind
    /// holds it or touched it since that LIST. The bind path does not pick it until
    /// [`Ledger::end_stop`].
    pub fn begin_stop(&self, worker: &HotPoolWorker, listed_at: Instant) -> bool {
        let mut inner = self.lock();
        let key = worker_key(worker);
        if inner.worker_taken(&key, &rv(worker), Some(listed_at)) {
            return false;
        }
        inner.stopping.insert(key);
        true
    }

    /// The stop of `worker` (by key) ended.
    pub fn end_stop(&self, key: &str) {
        self.lock().stopping.remove(key);
    }
}

impl Inner {
    fn purge(&mut self, now: Instant) {
        let before = self.by_worker.len();
        self.by_worker.retain(|_, b| b.in_flight || now.saturating_duration_since(b.at) < RETAIN);
        if self.by_worker.len() != before {
            let live: HashSet<&String> = self.by_worker.keys().collect();
            self.by_claim.retain(|_, k| live.contains(k));
        }
    }

    fn claim_taken(&self, uid: &str, copy_rv: &str) -> bool {
        let Some(b) = self.by_claim.get(uid).and_then(|k| self.by_worker.get(k)) else { return false };
        // A bind whose worker write landed and whose claim write did not is left to a pass, which
        // completes it from the worker (or undoes it): the claim copy is not stale then.
        b.in_flight || (b.claim.is_some() && b.claim_rv == copy_rv)
    }

    fn worker_taken(&self, key: &str, copy_rv: &str, listed_at: Option<Instant>) -> bool {
        if self.stopping.contains(key) || self.refused.get(key).is_some_and(|r| r == copy_rv) {
            return true;
        }
        let Some(b) = self.by_worker.get(key) else { return false };
        let wrote = b.worker.is_some();
        b.in_flight || (wrote && b.worker_rv == copy_rv) || (wrote && listed_at.is_some_and(|l| b.at >= l))
    }
}

#[cfg(test)]
mod tests;
