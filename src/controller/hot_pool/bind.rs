//! One binding of a waiting claim to an idle worker, made the same way by both writers of
//! bindings (the bind path, `binder`, and the pool pass): reserved in the [`Ledger`], then two
//! apiserver writes and no AWS call. The worker is written first (`status.claim`), then the claim
//! (`status.worker`, `ip`, `port`, `taskArn`, `boundAt`, `expiresAt`); each write carries the
//! resourceVersion of the copy it was planned from, so a stale copy ends in a conflict, never in a
//! second binding.
//!
//! A worker write refused (409, or the worker is gone) binds nothing; the caller picks again. A
//! claim write refused as stale is tried again from a fresh read while the claim still waits; a
//! claim that is gone or no longer waiting gets its worker back (written back as it was, guarded by
//! the version just written), and a claim that keeps conflicting is left to the next pool pass,
//! which completes the binding from the worker. The caller publishes the `Bound` Event, after its
//! writes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::{Resource, ResourceExt};

use super::arrivals::Arrivals;
use super::claim;
use super::ledger::{self, Ledger, Refused};
use super::stores;
use crate::api::hot_pool::{
    ClaimPhase, HotPoolClaim, HotPoolClaimStatus, HotPoolWorker, HotPoolWorkerStatus, WorkerClaimRef, WorkerPhase,
};
use crate::controller::ReconcileError;
use crate::controller::slim::slimmed;
use crate::runtime::Context;
use crate::runtime::clock::{Instant, plus_secs};

/// Claim writes a bind tries (the first, and fresh reads after conflicts) before leaving the
/// binding to the next pool pass.
const CLAIM_ATTEMPTS: usize = 3;

/// What a bind needs besides the two objects.
pub struct Binding<'a> {
    /// The controller's context (metrics).
    pub ctx: &'a Context,
    /// The binds of this process.
    pub ledger: &'a Ledger,
    /// When each waiting claim was first seen.
    pub arrivals: &'a Arrivals,
    /// Workers of the pool's namespace.
    pub workers: &'a Api<HotPoolWorker>,
    /// Claims of the pool's namespace.
    pub claims: &'a Api<HotPoolClaim>,
    /// The pool's `claims.leaseSeconds`.
    pub lease_seconds: i32,
    /// The bind's clock (`boundAt`, the worker's `claim.since`).
    pub now: Timestamp,
}

/// How a bind ended.
#[derive(Debug)]
pub enum Outcome {
    /// Bound: the worker and the claim as written, and the note of the `Bound` Event.
    Bound { worker: Box<HotPoolWorker>, claim: Box<HotPoolClaim>, note: String },
    /// The ledger refused the reservation: nothing was written.
    Refused(Refused),
    /// The worker write was refused (its copy was stale, or it is gone): nothing was written.
    WorkerRefused,
    /// The worker was written but the claim is gone or no longer waiting: the worker as it is now
    /// (given back, or as written when giving it back failed; the next pass releases it then).
    ClaimLost { worker: Box<HotPoolWorker> },
    /// The worker was written, the claim write kept conflicting: left to the next pass, which
    /// completes the binding from the worker.
    Unfinished { worker: Box<HotPoolWorker> },
}

/// The note of a claim's `Bound` Event and Ready condition.
pub fn bound_note(worker: &str, status: Option<&HotPoolWorkerStatus>) -> String {
    match status {
        Some(s) => format!(
            "bound to worker {worker} at {}:{}",
            s.ip.as_deref().unwrap_or("?"),
            s.port.map(|p| p.to_string()).unwrap_or_else(|| "?".into())
        ),
        None => format!("bound to worker {worker}"),
    }
}

/// The status a bound claim gets: its worker's address and task, and the lease from `now`.
pub fn bound_status(
    claim: &HotPoolClaim,
    worker: &str,
    ws: &HotPoolWorkerStatus,
    lease_seconds: i32,
    cold_start: bool,
    now: Timestamp,
) -> HotPoolClaimStatus {
    let note = bound_note(worker, Some(ws));
    claim::next_status(claim, ClaimPhase::Bound, "Bound", &note, |s| {
        s.worker = Some(worker.to_string());
        s.ip = ws.ip.clone();
        s.port = ws.port;
        s.task_arn = ws.task_arn.clone();
        s.bound_at = Some(Time(now));
        s.expires_at = Some(Time(plus_secs(now, i64::from(lease_seconds))));
        s.cold_start = Some(cold_start);
    })
}

/// Count a binding in the metrics: by source, the wait since creation, and the wait since the
/// controller first saw the claim.
pub fn record_bound(ctx: &Context, arrivals: &Arrivals, claim: &HotPoolClaim, cold_start: bool, now: Timestamp) {
    let created = claim.metadata.creation_timestamp.as_ref().map_or(now, |t| t.0);
    ctx.metrics.claim_bound(cold_start, now.duration_since(created).as_secs_f64().max(0.0));
    if let Some(waited) = arrivals.bound(&claim.uid().unwrap_or_default(), Instant::now()) {
        ctx.metrics.claim_bind_observed(waited);
    }
}

fn refused(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409 || s.code == 404)
}

/// Bind `claim` to `worker` (the copies planned from) with `reference` as the worker's claim.
/// `listed_at`: when a pass listed the workers (see [`Ledger::reserve`]); `None` for the bind path.
pub async fn bind(
    b: &Binding<'_>,
    claim: &HotPoolClaim,
    worker: &HotPoolWorker,
    reference: WorkerClaimRef,
    listed_at: Option<Instant>,
) -> Result<Outcome, ReconcileError> {
    if let Err(r) = b.ledger.reserve(claim, worker, listed_at, Instant::now()) {
        return Ok(Outcome::Refused(r));
    }
    let key = ledger::worker_key(worker);
    let mut obj = worker.clone();
    let mut st = obj.status.clone().unwrap_or_default();
    st.phase = Some(WorkerPhase::Claimed);
    st.claim = Some(reference);
    st.observed_generation = obj.meta().generation;
    obj.status = Some(st);
    b.ctx.metrics.status_written("HotPoolWorker");
    let written = match b.workers.replace_status(&worker.name_any(), &PostParams::default(), &obj).await {
        Ok(w) => slimmed(w),
        Err(e) => {
            b.ledger.failed(&key, refused(&e), Instant::now());
            return if refused(&e) { Ok(Outcome::WorkerRefused) } else { Err(e.into()) };
        }
    };
    b.ledger.worker_written(&key, written.clone());
    let name = written.name_any();
    let ws = written.status.clone().unwrap_or_default();
    let mut current = claim.clone();
    for _ in 0..CLAIM_ATTEMPTS {
        let mut obj = current.clone();
        obj.status = Some(bound_status(&current, &name, &ws, b.lease_seconds, false, b.now));
        b.ctx.metrics.status_written("HotPoolClaim");
        match b.claims.replace_status(&claim.name_any(), &PostParams::default(), &obj).await {
            Ok(bound) => {
                let bound = slimmed(bound);
                b.ledger.claim_written(&key, bound.clone(), Instant::now());
                record_bound(b.ctx, b.arrivals, &bound, false, b.now);
                return Ok(Outcome::Bound {
                    worker: Box::new(written),
                    claim: Box::new(bound),
                    note: bound_note(&name, Some(&ws)),
                });
            }
            Err(e) if refused(&e) => match b.claims.get_opt(&claim.name_any()).await {
                // The same claim, still waiting, still for this worker's pool and version (both
                // immutable on Kubernetes 1.25+, not before).
                Ok(Some(fresh))
                    if fresh.uid() == claim.uid()
                        && stores::waiting(&fresh)
                        && fresh.spec.pool == claim.spec.pool
                        && fresh.spec.version == claim.spec.version =>
                {
                    current = fresh
                }
                Ok(_) => return Ok(give_back(b, &key, worker, written).await),
                Err(e) => {
                    b.ledger.failed(&key, false, Instant::now());
                    return Err(e.into());
                }
            },
            Err(e) => {
                b.ledger.failed(&key, false, Instant::now());
                return Err(e.into());
            }
        }
    }
    b.ledger.failed(&key, false, Instant::now());
    Ok(Outcome::Unfinished { worker: Box::new(written) })
}

/// The claim `written` was reserved for is gone or bound elsewhere: write the worker back as it
/// was before the bind, guarded by the version just written (a conflict leaves it to the next
/// pass, which releases it).
async fn give_back(b: &Binding<'_>, key: &str, before: &HotPoolWorker, written: HotPoolWorker) -> Outcome {
    let mut obj = written.clone();
    obj.status = before.status.clone();
    b.ctx.metrics.status_written("HotPoolWorker");
    let worker = match b.workers.replace_status(&written.name_any(), &PostParams::default(), &obj).await {
        Ok(back) => {
            let back = slimmed(back);
            b.ledger.worker_written(key, back.clone());
            back
        }
        Err(err) => {
            tracing::debug!(worker = %written.name_any(), %err, "could not give the worker back; the next pass releases it");
            written
        }
    };
    b.ledger.failed(key, false, Instant::now());
    Outcome::ClaimLost { worker: Box::new(worker) }
}
