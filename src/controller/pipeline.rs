//! The one shape of a reconcile pass, run by [`drive`]: gate (`paused`, validation) → observe (the
//! AWS reads) → plan (a pure function returning a value) → apply (the steps, each result recorded as
//! it lands) → status, Events and backoff through [`finish_pass`]. A kind supplies the three middle
//! parts by implementing [`Pipeline`]; what a pass does with success, a problem for a human or an
//! AWS error exists once, here and in `pass.rs`.

use futures::future::BoxFuture;
use kube::api::Api;
use kube::runtime::controller::Action;

use super::access::{self, Gate};
use super::{
    Blocked, Managed, PassEnd, ReconcileError, StatusWriter, finish_pass, jittered, record_paused, write_status,
};
use crate::runtime::Context;
use crate::runtime::conditions::REASON_INVALID_SPEC;
use crate::runtime::status::ObjectStatus;

/// An Event a pass emits once its status is written (a pass whose write is refused as stale emits
/// nothing: the pass that follows decides again).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PassEvent {
    /// Warning (else Normal).
    pub warning: bool,
    /// PascalCase reason.
    pub reason: String,
    /// The action, e.g. the AWS operation.
    pub action: &'static str,
    /// What happened.
    pub note: String,
}

/// What applying a plan left.
pub struct Applied<S> {
    /// The status reached: what landed is recorded, also when a step failed.
    pub status: S,
    /// How the pass ended.
    pub end: PassEnd,
    /// Events to emit after the status is written.
    pub events: Vec<PassEvent>,
}

/// One kind's observe, plan and apply, for one object and one pass (the implementor holds the
/// object's AWS clients).
pub trait Pipeline<K: Managed>: Send + Sync {
    /// Whether a pass that would start from a cached copy older than this process's own last
    /// status write of the object is skipped (`runtime::written`): it would read everything again
    /// and have its write refused.
    const SKIP_BEHIND_CACHE: bool = true;

    /// What the object's spec uses in AWS, field by field, for the AccessPolicy gate.
    fn access_uses(&self, _obj: &K) -> Vec<access::Use> {
        Vec::new()
    }

    /// The object as its pass sees it under `grant` (an automatic rule priority narrowed to what
    /// the policy allows); `None` when the grant changes nothing.
    fn narrowed(&self, _obj: &K, _grant: &access::Grant) -> Option<K> {
        None
    }

    /// Everything the pass read.
    type Observed: Send;
    /// The pass's decisions.
    type Plan: Send;

    /// The reads the plan needs (AWS, and Kubernetes objects the kind owns), made before any write.
    fn observe<'a>(
        &'a self,
        obj: &'a K,
        status: &'a K::Status,
    ) -> BoxFuture<'a, Result<Self::Observed, ReconcileError>>;

    /// Decide every step: pure (no call, no clock; anything random is drawn by the implementor and
    /// passed in), so the same inputs give the same plan. It takes what was observed, so a plan
    /// that carries part of it (a HotPool's workers and claims) moves it instead of a copy.
    fn plan(&self, obj: &K, status: &K::Status, observed: Self::Observed) -> Self::Plan;

    /// Run the plan's steps in order, recording each result in the status (mid-pass writes through
    /// `writer`, e.g. a create's token before the create is sent).
    fn apply<'a>(
        &'a self,
        obj: &'a K,
        plan: Self::Plan,
        writer: &'a StatusWriter<'a, K>,
    ) -> BoxFuture<'a, Applied<K::Status>>;

    /// Last edits of the status whatever the pass's end (an invalid spec, a failed read, a plan run
    /// to the end), e.g. readings another task hands this object's one status writer; returns the
    /// Events they call for.
    fn finish(&self, _obj: &K, _status: &mut K::Status, _end: &PassEnd) -> Vec<PassEvent> {
        Vec::new()
    }

    /// The pass's status is written (or was already as written): what the kind remembers about
    /// the object on the strength of that status (e.g. that it is settled) may be recorded now,
    /// and not before, since a later pass plans from the written status.
    fn written(&self, _obj: &K) {}
}

/// Observe, plan and apply one pass over `obj` (as the gate let it through).
async fn observe_plan_apply<K: Managed, P: Pipeline<K>>(
    pipeline: &P,
    obj: &K,
    old: &K::Status,
    writer: &StatusWriter<'_, K>,
) -> Applied<K::Status> {
    match pipeline.observe(obj, old).await {
        Ok(observed) => {
            // Consumed by the plan, not held through apply, the longest part of a pass (a HotPool
            // pass over 500 workers held them three times over).
            let plan = pipeline.plan(obj, old, observed);
            pipeline.apply(obj, plan, writer).await
        }
        Err(ReconcileError::Aws(err)) => Applied { status: old.clone(), end: PassEnd::Failed(err), events: Vec::new() },
        Err(err) => Applied { status: old.clone(), end: PassEnd::Error(err), events: Vec::new() },
    }
}

/// Run one pass of `pipeline` over `obj`. `paused`: status says so and nothing else happens. A spec
/// that fails validation is `Blocked` (`Degraded`/`InvalidSpec`, looked at again after an edit or
/// five minutes) without any AWS call; so is one that uses what no AccessPolicy of its namespace
/// allows (`Degraded`/`NotPermitted`).
///
/// The Kubernetes calls of a pass (status, AccessPolicy reads, Events) are boxed where they are
/// awaited: a future reserves room for the largest thing it awaits for its whole life, and a pass
/// spends most of its life in AWS calls (boxed too, by the pipeline), so this halved what each
/// pass in flight holds.
pub async fn drive<K: Managed, P: Pipeline<K>>(
    pipeline: &P,
    api: &Api<K>,
    obj: &K,
    paused: bool,
    ctx: &Context,
) -> Result<Action, ReconcileError> {
    let key = kube::runtime::reflector::ObjectRef::from_obj(obj).to_string();
    if P::SKIP_BEHIND_CACHE && ctx.written.is_behind(&key, obj.meta().resource_version.as_deref()) {
        ctx.metrics.pass_skipped_behind_cache(K::KIND);
        return Ok(Action::requeue(crate::runtime::written::RETRY));
    }
    let old = obj.status_ref().cloned().unwrap_or_default();
    if paused {
        let mut status = old;
        record_paused(&mut status, obj.meta().generation);
        Box::pin(write_status(api, obj, &status, ctx)).await?;
        return Ok(Action::requeue(jittered(ctx.config.resync())));
    }
    let writer = StatusWriter::new(api, obj, &ctx.metrics);
    let mut applied = match obj.validate() {
        Err(errs) => Applied {
            status: old.clone(),
            end: PassEnd::Blocked(Blocked { reason: REASON_INVALID_SPEC, message: errs.to_string() }),
            events: Vec::new(),
        },
        Ok(()) if let Some(blocked) = super::inventory::aws_scope_changed(obj) => {
            Applied { status: old.clone(), end: PassEnd::Blocked(blocked), events: Vec::new() }
        }
        Ok(()) => {
            let namespace = obj.meta().namespace.clone().unwrap_or_default();
            match Box::pin(ctx.access.gate(&namespace, &pipeline.access_uses(obj))).await {
                Gate::Refused(blocked) => {
                    Applied { status: old.clone(), end: PassEnd::Blocked(blocked), events: Vec::new() }
                }
                Gate::Unknown(why) => Applied {
                    status: old.clone(),
                    end: PassEnd::Error(ReconcileError::AccessUnknown(why)),
                    events: Vec::new(),
                },
                Gate::Allowed(grant) => {
                    let narrowed = pipeline.narrowed(obj, &grant);
                    observe_plan_apply(pipeline, narrowed.as_ref().unwrap_or(obj), &old, &writer).await
                }
            }
        }
    };
    *applied.status.observed_generation_mut() = obj.meta().generation;
    if super::inventory::aws_of(obj) == obj.aws_spec() {
        super::inventory::record_made_with(obj, &mut applied.status);
    }
    let finished = pipeline.finish(obj, &mut applied.status, &applied.end);
    applied.events.extend(finished);
    let (result, written) = Box::pin(finish_pass(&writer, obj, ctx, &old, applied.status, applied.end)).await;
    ctx.written.record(&key, writer.written_version().as_deref());
    if written {
        pipeline.written(obj);
        for e in applied.events {
            if e.warning {
                Box::pin(ctx.events.warning(obj, &e.reason, e.action, e.note)).await;
            } else {
                Box::pin(ctx.events.normal(obj, &e.reason, e.action, e.note)).await;
            }
        }
    }
    result
}
