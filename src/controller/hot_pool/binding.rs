//! Claim writes of a pass: a binding (the worker names the claim first, then the claim its worker,
//! so a crash in between is completed by the next pass, never bound twice), and every other claim
//! step the plan decided (pending, cold start, expiry, failure, hold, invalid).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use crate::runtime::clock::Instant;

use super::plan::{self, ClaimStep};
use super::{Pool, claim};
use crate::api::hot_pool::{ClaimPhase, HotPoolClaim, HotPoolClaimStatus, WorkerClaimRef, WorkerPhase};
use crate::controller::ReconcileError;
use crate::runtime::clock::plus_secs;
use crate::runtime::conditions::REASON_INVALID_SPEC;

impl Pool<'_> {
    /// Bind `claim` to `worker`: the worker first, then the claim. Skipped when the worker is no
    /// longer the idle worker the plan saw (the next pass decides again).
    pub(super) async fn bind(
        &mut self,
        claim: &HotPoolClaim,
        worker: &str,
        reference: &WorkerClaimRef,
    ) -> Result<bool, ReconcileError> {
        let idle = self
            .workers
            .get(worker)
            .is_some_and(|w| plan::phase(w) == WorkerPhase::Available && plan::claim_ref(w).is_none());
        if !idle {
            return Ok(false);
        }
        self.write_worker(worker, |s| {
            s.phase = Some(WorkerPhase::Claimed);
            s.claim = Some(reference.clone());
        })
        .await?;
        self.bind_claim(claim, worker, false).await?;
        Ok(true)
    }

    /// Apply one claim step other than a bind. False when it was skipped because its worker is gone.
    pub(super) async fn claim_step(&mut self, claim: &HotPoolClaim, step: ClaimStep) -> Result<bool, ReconcileError> {
        let spec = &self.pool.spec;
        match step {
            ClaimStep::Bind { .. } | ClaimStep::Done => {}
            ClaimStep::Complete { worker, cold_start } => {
                let uid = claim.uid();
                let holds = self.workers.get(&worker).is_some_and(|w| {
                    plan::phase(w) == WorkerPhase::Claimed
                        && plan::claim_ref(w).is_some_and(|r| {
                            r.name == claim.name_any() && r.uid.as_deref().is_none_or(|u| Some(u) == uid.as_deref())
                        })
                });
                if !holds {
                    return Ok(false);
                }
                self.bind_claim(claim, &worker, cold_start).await?;
            }
            ClaimStep::ColdStart => {
                let msg = format!("launching a worker of version {} for this claim", claim.spec.version);
                self.set_claim(claim, ClaimPhase::Pending, "ColdStarting", &msg, |_| {}).await?;
            }
            ClaimStep::Pending { reason, message } => {
                self.set_claim(claim, ClaimPhase::Pending, reason, &message, |_| {}).await?;
            }
            ClaimStep::Expire { worker } => {
                let lease = spec.claims.lease_seconds;
                let msg = format!("the lease of {lease} s ran out without spec.renewedAt being renewed");
                self.set_claim(claim, ClaimPhase::Expired, "LeaseExpired", &msg, |_| {}).await?;
                self.ctx.events.warning(claim, "LeaseExpired", "Release", msg).await;
                self.release(&worker, spec.claims.on_release, "its claim expired").await?;
            }
            ClaimStep::Fail { reason, message } => {
                self.set_claim(claim, ClaimPhase::Failed, reason, &message, |_| {}).await?;
                self.ctx.events.warning(claim, reason, "Bind", message).await;
            }
            ClaimStep::Hold { expires_at } => {
                let worker = claim.status.as_ref().and_then(|s| s.worker.clone()).unwrap_or_default();
                let msg = self.bound_message(&worker);
                self.set_claim(claim, ClaimPhase::Bound, "Bound", &msg, |s| s.expires_at = expires_at.map(Time))
                    .await?;
            }
            ClaimStep::Invalid { message, expires_at } => {
                let phase = claim.status.as_ref().and_then(|s| s.phase).unwrap_or_default();
                let new = claim::invalid_status(claim, phase, &message, |s| {
                    if phase == ClaimPhase::Bound {
                        s.expires_at = expires_at.map(Time);
                    }
                });
                if claim::put_status(&self.claims_api, claim, new, self.ctx).await? {
                    self.ctx.events.warning(claim, REASON_INVALID_SPEC, "Validate", message).await;
                }
            }
        }
        Ok(true)
    }

    pub(super) fn bound_message(&self, worker: &str) -> String {
        match self.workers.get(worker).and_then(|w| w.status.as_ref()) {
            Some(s) => format!(
                "bound to worker {worker} at {}:{}",
                s.ip.as_deref().unwrap_or("?"),
                s.port.map(|p| p.to_string()).unwrap_or_else(|| "?".into())
            ),
            None => format!("bound to worker {worker}"),
        }
    }

    /// Commit a binding on the claim (the worker already names it).
    pub(super) async fn bind_claim(
        &self,
        claim: &HotPoolClaim,
        worker: &str,
        cold_start: bool,
    ) -> Result<(), ReconcileError> {
        let ws = self.workers.get(worker).and_then(|w| w.status.clone()).unwrap_or_default();
        let lease = i64::from(self.pool.spec.claims.lease_seconds);
        let now = self.now;
        let msg = self.bound_message(worker);
        let written = self
            .set_claim(claim, ClaimPhase::Bound, "Bound", &msg, |s| {
                s.worker = Some(worker.to_string());
                s.ip = ws.ip.clone();
                s.port = ws.port;
                s.task_arn = ws.task_arn.clone();
                s.bound_at = Some(Time(now));
                s.expires_at = Some(Time(plus_secs(now, lease)));
                s.cold_start = Some(cold_start);
            })
            .await?;
        if written {
            let created = claim.metadata.creation_timestamp.as_ref().map_or(now, |t| t.0);
            let waited = now.duration_since(created).as_secs_f64().max(0.0);
            self.ctx.metrics.claim_bound(cold_start, waited);
            if let Some(seen) = self.shared.arrivals.bound(&claim.uid().unwrap_or_default(), Instant::now()) {
                self.ctx.metrics.claim_bind_observed(seen);
            }
            self.ctx.events.normal(claim, "Bound", "Bind", msg).await;
        }
        Ok(())
    }

    /// Write a claim's status (phase, conditions, extra fields) when it changed, guarded by the
    /// resourceVersion it was read with. Returns whether a write happened.
    pub(super) async fn set_claim(
        &self,
        claim: &HotPoolClaim,
        phase: ClaimPhase,
        reason: &str,
        message: &str,
        extra: impl FnOnce(&mut HotPoolClaimStatus),
    ) -> Result<bool, ReconcileError> {
        let new = claim::next_status(claim, phase, reason, message, extra);
        claim::put_status(&self.claims_api, claim, new, self.ctx).await
    }
}
