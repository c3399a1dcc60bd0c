//! The DnsFailover controller: health checks whose CallerReferences (stem + nonce) are recorded in
//! the inventory before each create, the PRIMARY/SECONDARY record pair (changes merged per zone by
//! the shared Route 53 batcher), the manual DR switch through the primary's health check, NS
//! delegation into the parent zone, status (with the health poller's readings applied here: this
//! is the one writer of the status), cleanup of what an edit no longer wants and deletion, both
//! from the inventory in `status.resources`.

mod apply;
pub mod aws;
mod cleanup;
pub mod health;
pub mod inventory;
pub mod observe;
pub mod plan;
pub mod readings;
pub mod steps;

use std::sync::Arc;
use std::time::Duration;

use kube::Resource;
use kube::api::Api;
use kube::runtime::controller::Action;

use self::aws::FailoverAws;
use super::{
    PassEnd, ReconcileError, StatusWriter, finish_pass, jittered, record_paused, with_finalizer, write_status,
};
use crate::api::dns_failover::DnsFailover;
use crate::runtime::Context;
use crate::runtime::conditions::{self, READY};
use crate::runtime::status::ObjectStatus;

const KIND: &str = "DnsFailover";

async fn clients(ctx: &Context, obj: &DnsFailover) -> Result<FailoverAws, ReconcileError> {
    let cfg = ctx.aws.config_for(obj.spec.aws.as_ref()).await;
    Ok(FailoverAws {
        caller: ctx.caller.clone(),
        r53: ctx.aws.route53(&cfg),
        batcher: ctx.route53.clone(),
        scope: obj.spec.aws.as_ref().map_or_else(String::new, |a| {
            format!(
                "{}|{}|{}",
                a.role_arn.as_deref().unwrap_or(""),
                a.external_id.as_deref().unwrap_or(""),
                a.region.as_deref().unwrap_or("")
            )
        }),
        facts: ctx.facts.clone(),
        owner: super::owner_of(ctx, obj, KIND)?,
    })
}

/// Reconcile one DnsFailover (the controller's entry point).
pub async fn reconcile(obj: Arc<DnsFailover>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    with_finalizer(
        obj,
        ctx,
        |api, obj, ctx| async move { apply(&api, obj, &ctx).await },
        |api, obj, ctx| async move { cleanup::cleanup(&api, obj, &ctx).await },
    )
    .await
}

async fn apply(api: &Api<DnsFailover>, obj: Arc<DnsFailover>, ctx: &Context) -> Result<Action, ReconcileError> {
    let generation = obj.meta().generation;
    let old = obj.status.clone().unwrap_or_default();
    let mut status = old.clone();
    status.observed_generation = generation;
    if obj.spec.policy.paused {
        record_paused(&mut status, generation);
        write_status(api, &obj, &status, ctx).await?;
        return Ok(Action::requeue(jittered(ctx.config.resync())));
    }
    let aws = clients(ctx, &obj).await?;
    let writer = StatusWriter::new(api, obj.as_ref(), &ctx.metrics);
    // observe → plan (a value) → apply: the plan decides every step before the first write.
    let outcome = match observe::observe(&aws, &obj.spec, &status).await {
        Ok(observed) => {
            let nonce: String = uuid::Uuid::new_v4().simple().to_string().chars().take(6).collect();
            let plan = steps::plan(&obj.spec, &aws.owner.uid, &status, &observed, &nonce);
            let (reached, outcome) = apply::apply(&aws, &obj.spec, plan, &writer, generation).await;
            status = reached;
            outcome
        }
        Err(e) => Err(e),
    };
    // The poller's latest reading of the checks this status now names (the one status writer).
    let flip = readings::apply_reading(
        &mut status,
        &obj,
        ctx.health.latest(&obj).as_ref(),
        k8s_openapi::jiff::Timestamp::now(),
    );
    let end = match outcome {
        Ok(None) => {
            conditions::set_condition(
                status.conditions_mut(),
                READY,
                true,
                "RecordsInPlace",
                "Route 53 serves the failover pair as specified",
                generation,
            );
            let pending = status.change.as_ref().is_some_and(|c| c.status == "PENDING");
            let requeue = if pending { Duration::from_secs(10) } else { jittered(ctx.config.resync()) };
            PassEnd::Converged { message: "health checks and both records match the spec", requeue }
        }
        Ok(Some(b)) => PassEnd::Blocked(b),
        Err(err) => PassEnd::Failed(err),
    };
    let (result, written) = finish_pass(&writer, obj.as_ref(), ctx, &old, status, end).await;
    if !written {
        return result;
    }
    if let Some(f) = flip {
        let note = format!("Route 53 now answers the {:?} target ({})", f.to, f.reason).to_lowercase();
        ctx.events.warning(obj.as_ref(), &f.reason, "Failover", note).await;
    }
    result
}
