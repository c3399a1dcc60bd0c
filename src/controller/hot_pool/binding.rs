//! Claim writes of a pass: a binding (through `bind`, shared with the bind path: the worker names
//! the claim first, then the claim its worker, so a crash in between is completed by the next
//! pass, never bound twice), and every other claim step the plan decided (pending, cold start,
//! expiry, failure, hold, invalid). Events are published after the writes, off the pass's path.

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use super::bind::{self, Binding, Outcome};
use super::ledger::Refused;
use super::plan::{self, ClaimStep};
use super::{Pool, claim};
use crate::api::hot_pool::{ClaimPhase, HotPoolClaim, HotPoolClaimStatus, WorkerClaimRef, WorkerPhase};
use crate::controller::ReconcileError;
use crate::runtime::conditions::REASON_INVALID_SPEC;
use crate::runtime::events::Deferred;

/// How a pass's bind step ended.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum BindStep {
    /// Bound as planned.
    Bound,
    /// The bind path has bound (or is binding) this claim: the plan's counts hold.
    TakenByBindPath,
    /// Not bound: the worker is no longer the idle worker the plan saw, or the claim went away.
    Skipped,
}

impl Pool<'_> {
    /// Bind `claim` to `worker`: the worker first, then the claim (see `bind`).
    pub(super) async fn bind(
        &mut self,
        claim: &Arc<HotPoolClaim>,
        worker: &str,
        reference: &WorkerClaimRef,
    ) -> Result<BindStep, ReconcileError> {
        let Some(w) = self.workers.get(worker).filter(|w| super::stores::idle(w)).cloned() else {
            return Ok(BindStep::Skipped);
        };
        let binding = Binding {
            ctx: self.ctx,
            ledger: &self.shared.ledger,
            arrivals: &self.shared.arrivals,
            workers: &self.workers_api,
            claims: &self.claims_api,
            lease_seconds: self.pool.spec.claims.lease_seconds,
            now: self.now,
        };
        let step = match bind::bind(&binding, claim, &w, reference.clone(), Some(self.listed_at)).await? {
            Outcome::Bound { worker: written, claim: bound, note } => {
                self.workers.insert(worker.to_string(), *written);
                self.ctx.events.publish_later(vec![Deferred::normal(bound.as_ref(), "Bound", "Bind", note)]);
                BindStep::Bound
            }
            Outcome::Refused(Refused::ClaimTaken) => BindStep::TakenByBindPath,
            Outcome::Refused(Refused::WorkerTaken) | Outcome::WorkerRefused => BindStep::Skipped,
            Outcome::ClaimLost { worker: current } | Outcome::Unfinished { worker: current } => {
                self.workers.insert(worker.to_string(), *current);
                BindStep::Skipped
            }
        };
        Ok(step)
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
                self.ctx.events.publish_later(vec![Deferred::warning(claim, "LeaseExpired", "Release", msg)]);
                self.release(&worker, spec.claims.on_release, "its claim expired").await?;
            }
            ClaimStep::Fail { reason, message } => {
                self.set_claim(claim, ClaimPhase::Failed, reason, &message, |_| {}).await?;
                self.ctx.events.publish_later(vec![Deferred::warning(claim, reason, "Bind", message)]);
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
                    self.ctx.events.publish_later(vec![Deferred::warning(
                        claim,
                        REASON_INVALID_SPEC,
                        "Validate",
                        message,
                    )]);
                }
            }
        }
        Ok(true)
    }

    pub(super) fn bound_message(&self, worker: &str) -> String {
        bind::bound_note(worker, self.workers.get(worker).and_then(|w| w.status.as_ref()))
    }

    /// Commit a binding on the claim (the worker already names it).
    pub(super) async fn bind_claim(
        &self,
        claim: &HotPoolClaim,
        worker: &str,
        cold_start: bool,
    ) -> Result<(), ReconcileError> {
        let ws = self.workers.get(worker).and_then(|w| w.status.clone()).unwrap_or_default();
        let new = bind::bound_status(claim, worker, &ws, self.pool.spec.claims.lease_seconds, cold_start, self.now);
        if claim::put_status(&self.claims_api, claim, new, self.ctx).await? {
            bind::record_bound(self.ctx, &self.shared.arrivals, claim, cold_start, self.now);
            let note = self.bound_message(worker);
            self.ctx.events.publish_later(vec![Deferred::normal(claim, "Bound", "Bind", note)]);
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
