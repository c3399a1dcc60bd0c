//! The claims pass: release the workers of claims that let go, then decide every claim of the pool
//! in arrival order (bind, complete a half-written binding, cold-start, wait, expire, fail) and
//! write the worker first, then the claim.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use super::plan::{self, ClaimStep, ClaimView, Release, WorkerView};
use super::{MAX_WAKE, PassResult, Pool, claim};
use crate::api::hot_pool::{ClaimPhase, HotPoolClaim, HotPoolClaimStatus, OnRelease, WorkerClaimRef, WorkerPhase};
use crate::controller::ReconcileError;
use crate::runtime::clock::{self, plus_secs};
use crate::runtime::conditions::REASON_INVALID_SPEC;

impl Pool<'_> {
    /// Claims: releases first, then every claim in arrival order. Returns claims waiting per version.
    pub(super) async fn claims_pass(
        &mut self,
        current_td: &BTreeMap<String, String>,
        result: &mut PassResult,
    ) -> Result<BTreeMap<String, usize>, ReconcileError> {
        let spec = &self.pool.spec;
        let claims: Vec<Arc<HotPoolClaim>> = self
            .shared
            .claims
            .state()
            .into_iter()
            .filter(|c| c.namespace().as_deref() == Some(self.namespace.as_str()) && c.spec.pool == self.name)
            .collect();
        let views: Vec<ClaimView> = claims.iter().map(|c| ClaimView::of(c, self.now)).collect();
        let by_name: BTreeMap<String, ClaimView> = views.iter().map(|c| (c.name.clone(), c.clone())).collect();
        let worker_views: Vec<WorkerView> = self.workers.values().map(WorkerView::of).collect();
        for r in plan::releases(&worker_views, &by_name, spec.claims.on_release, spec.claims.lease_seconds, self.now) {
            match r {
                Release::Released { worker, on_release, why } => self.release(&worker, on_release, &why).await?,
                Release::Unreserve { worker } => self.release(&worker, OnRelease::Recycle, "unreserved").await?,
            }
        }
        let mut worker_views: Vec<WorkerView> = self.workers.values().map(WorkerView::of).collect();
        let steps = plan::plan_claims(spec, &views, &mut worker_views, current_td, self.now);
        let waiting = plan::waiting_per_version(&views, &steps);
        let claim_objs: BTreeMap<String, &Arc<HotPoolClaim>> = claims.iter().map(|c| (c.name_any(), c)).collect();
        let mut cold: Vec<(String, WorkerClaimRef)> = Vec::new();
        for (name, step) in steps {
            let Some(claim) = claim_objs.get(&name) else { continue };
            match step {
                ClaimStep::Bind { worker } => {
                    let Some(r) = worker_views.iter().find(|w| w.name == worker).and_then(|w| w.claim.clone()) else {
                        continue;
                    };
                    self.write_worker(&worker, |s| {
                        s.phase = Some(WorkerPhase::Claimed);
                        s.claim = Some(r.clone());
                    })
                    .await?;
                    self.bind_claim(claim, &worker, false).await?;
                }
                ClaimStep::Complete { worker, cold_start } => self.bind_claim(claim, &worker, cold_start).await?,
                ClaimStep::ColdStart => {
                    let r = WorkerClaimRef {
                        name: name.clone(),
                        uid: claim.uid(),
                        client: Some(claim.spec.client.clone()),
                        since: Time(self.now),
                        cold_start: true,
                    };
                    cold.push((claim.spec.version.clone(), r));
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
                    self.ctx.events.warning(claim.as_ref(), "LeaseExpired", "Release", msg).await;
                    self.release(&worker, spec.claims.on_release, "its claim expired").await?;
                }
                ClaimStep::Fail { reason, message } => {
                    self.set_claim(claim, ClaimPhase::Failed, reason, &message, |_| {}).await?;
                    self.ctx.events.warning(claim.as_ref(), reason, "Bind", message).await;
                }
                ClaimStep::Hold { expires_at } => {
                    if let Some(e) = expires_at {
                        result.due_in(clock::until(self.now, e, MAX_WAKE));
                    }
                    let worker = claim.status.as_ref().and_then(|s| s.worker.clone()).unwrap_or_default();
                    let msg = self.bound_message(&worker);
                    self.set_claim(claim, ClaimPhase::Bound, "Bound", &msg, |s| s.expires_at = expires_at.map(Time))
                        .await?;
                }
                ClaimStep::Invalid { message, expires_at } => {
                    if let Some(e) = expires_at {
                        result.due_in(clock::until(self.now, e, MAX_WAKE));
                    }
                    let phase = claim.status.as_ref().and_then(|s| s.phase).unwrap_or_default();
                    let new = claim::invalid_status(claim, phase, &message, |s| {
                        if phase == ClaimPhase::Bound {
                            s.expires_at = expires_at.map(Time);
                        }
                    });
                    if claim::put_status(&self.claims_api, claim, new, self.ctx).await? {
                        self.ctx.events.warning(claim.as_ref(), REASON_INVALID_SPEC, "Validate", message).await;
                    }
                }
                ClaimStep::Done => {}
            }
        }
        self.cold_starts = cold;
        Ok(waiting)
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
