//! HotPoolClaim status: how it is computed and written (shared with the pool controller), and the
//! small controller for claims the pool controller cannot see: a missing pool, or an invalid spec.
//!
//! The claim controller has no watch of its own: it reads the HotPool controller's claim store and
//! runs on its claim events (`stores`), and looks a claim's pool up in the pool store, asking the
//! apiserver only when the store says the pool is missing or going (before writing for it).

use std::sync::Arc;

use futures::StreamExt;
use futures::channel::mpsc::UnboundedReceiver;
use kube::api::{Api, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};

use super::super::{Managed, ReconcileError, error_policy, jittered};
use crate::api::hot_pool::{ClaimPhase, HotPool, HotPoolClaim, HotPoolClaimStatus};
use crate::runtime::Context;
use crate::runtime::conditions::{self, DEGRADED, READY, REASON_INVALID_SPEC};
use crate::runtime::status::set_last_error;

/// The claim's status with `phase`, a `Ready` condition (true only when Bound) and `Degraded`
/// (true only when Failed), then `extra` applied.
pub fn next_status(
    claim: &HotPoolClaim,
    phase: ClaimPhase,
    reason: &str,
    message: &str,
    extra: impl FnOnce(&mut HotPoolClaimStatus),
) -> HotPoolClaimStatus {
    let mut new = claim.status.clone().unwrap_or_default();
    let generation = claim.meta().generation;
    new.phase = Some(phase);
    new.observed_generation = generation;
    let failed = phase == ClaimPhase::Failed;
    let c = &mut new.conditions;
    conditions::set_condition(c, READY, phase == ClaimPhase::Bound, reason, message, generation);
    let (d_reason, d_message) = if failed { (reason, message) } else { ("AsExpected", "no problems found") };
    conditions::set_condition(c, DEGRADED, failed, d_reason, d_message, generation);
    if failed {
        set_last_error(&mut new.last_error, "bind", reason, message);
    } else {
        new.last_error = None;
    }
    extra(&mut new);
    new
}

/// The status of a claim whose spec is invalid: it keeps `phase` (a Bound claim stays Ready: its
/// worker is still its own), `Degraded`/`InvalidSpec` with `message`, then `extra` applied.
pub fn invalid_status(
    claim: &HotPoolClaim,
    phase: ClaimPhase,
    message: &str,
    extra: impl FnOnce(&mut HotPoolClaimStatus),
) -> HotPoolClaimStatus {
    let reason = if phase == ClaimPhase::Bound { "Bound" } else { REASON_INVALID_SPEC };
    let ready_message =
        if phase == ClaimPhase::Bound { "bound; the spec has an error (see Degraded)" } else { message };
    next_status(claim, phase, reason, ready_message, |s| {
        conditions::set_condition(
            &mut s.conditions,
            DEGRADED,
            true,
            REASON_INVALID_SPEC,
            message,
            s.observed_generation,
        );
        set_last_error(&mut s.last_error, "validate", REASON_INVALID_SPEC, message);
        extra(s);
    })
}

/// Write `new` as the claim's status when it differs, guarded by the resourceVersion `claim` was
/// read with (a stale copy fails with 409 instead of overwriting a binding). Returns whether it wrote.
pub async fn put_status(
    api: &Api<HotPoolClaim>,
    claim: &HotPoolClaim,
    new: HotPoolClaimStatus,
    ctx: &Context,
) -> Result<bool, ReconcileError> {
    if claim.status.as_ref() == Some(&new) {
        return Ok(false);
    }
    let mut obj = claim.clone();
    obj.status = Some(new);
    ctx.metrics.status_written("HotPoolClaim");
    api.replace_status(&claim.name_any(), &PostParams::default(), &obj).await?;
    Ok(true)
}

/// Run the claim controller on the shared stores and the claim triggers until `stop` resolves.
pub async fn run(
    ctx: Arc<Context>,
    stores: super::stores::Stores,
    triggers: UnboundedReceiver<ObjectRef<HotPoolClaim>>,
    stop: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let pools = stores.pools.clone();
    // No stream of its own: every claim event arrives as a trigger, and the claim is read from the
    // shared store.
    Controller::for_stream(futures::stream::pending(), stores.claims)
        .with_config(super::super::controller_config(&ctx))
        .reconcile_on(triggers)
        .graceful_shutdown_on(stop)
        .run(
            super::super::guard(move |claim, ctx| reconcile(claim, ctx, pools.clone())),
            error_policy::<HotPoolClaim>,
            ctx,
        )
        .for_each(|result| async move {
            if let Err(err) = result {
                tracing::debug!(kind = "HotPoolClaim", %err, "controller event");
            }
        })
        .await;
}

async fn reconcile(
    claim: Arc<HotPoolClaim>,
    ctx: Arc<Context>,
    pools: Store<HotPool>,
) -> Result<Action, ReconcileError> {
    let ns = claim.namespace().ok_or(ReconcileError::MissingMetadata("metadata.namespace"))?;
    let api: Api<HotPoolClaim> = Api::namespaced(ctx.client.clone(), &ns);
    let phase = claim.status.as_ref().and_then(|s| s.phase).unwrap_or_default();
    // Validated before the pool lookup, so an invalid spec is what a claim of a missing pool shows.
    let invalid = claim.validate().err();
    let cached = pools.get(&ObjectRef::new(&claim.spec.pool).within(&ns));
    if cached.is_some_and(|p| p.metadata.deletion_timestamp.is_none()) {
        // The pool's controller owns this claim's status, an invalid spec included: one writer.
        return Ok(Action::await_change());
    }
    // Missing or going in the store, which may lag: the apiserver decides before anything is written.
    let pools: Api<HotPool> = Api::namespaced(ctx.client.clone(), &ns);
    if pools.get_opt(&claim.spec.pool).await?.is_some() {
        // The pool's controller owns this claim's status, an invalid spec included: one writer.
        return Ok(Action::await_change());
    }
    // A claim that holds (or held) a worker of a deleted pool is told so; the spec error matters
    // only for one still waiting.
    if let Some(errs) = invalid.filter(|_| phase == ClaimPhase::Pending) {
        put_status(&api, &claim, invalid_status(&claim, phase, &errs.to_string(), |_| {}), &ctx).await?;
        return Ok(Action::requeue(jittered(ctx.config.resync())));
    }
    let Some(new) = pool_gone_status(&claim, &ns) else { return Ok(Action::await_change()) };
    put_status(&api, &claim, new, &ctx).await?;
    Ok(Action::requeue(jittered(ctx.config.resync())))
}

/// What a claim says once its pool is gone: a Bound claim failed (`PoolDeleted`), a Pending one
/// waiting for a pool that does not exist (`PoolNotFound`); `None` for one already done. Written
/// by the pool's own deletion while it still exists (it owns its claims' status until then), and
/// by this controller after.
pub fn pool_gone_status(claim: &HotPoolClaim, ns: &str) -> Option<HotPoolClaimStatus> {
    let phase = claim.status.as_ref().and_then(|s| s.phase).unwrap_or_default();
    Some(match phase {
        ClaimPhase::Expired | ClaimPhase::Failed => return None,
        ClaimPhase::Bound => next_status(
            claim,
            ClaimPhase::Failed,
            "PoolDeleted",
            &format!("HotPool {} was deleted while this claim held a worker", claim.spec.pool),
            |_| {},
        ),
        ClaimPhase::Pending => next_status(
            claim,
            ClaimPhase::Pending,
            "PoolNotFound",
            &format!(
                "spec.pool: HotPool {:?} does not exist in namespace {ns}; create it or fix spec.pool",
                claim.spec.pool
            ),
            |_| {},
        ),
    })
}
