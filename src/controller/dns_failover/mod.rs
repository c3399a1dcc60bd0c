//! The DnsFailover controller: health checks whose CallerReferences (stem + nonce) are recorded in
//! the inventory before each create, the PRIMARY/SECONDARY record pair (changes merged per zone by
//! the shared Route 53 batcher), the manual DR switch through the primary's health check, NS
//! delegation into the parent zone, status (with the health poller's readings applied here: this
//! is the one writer of the status), cleanup of what an edit no longer wants and deletion, both
//! from the inventory in `status.resources`.
//!
//! A pass runs through the shared [`drive`]: [`observe`] reads Route 53, [`steps::plan`] decides
//! every step as a value, `apply` runs them; deletion (the finalizer) is in `cleanup`.

mod apply;
pub mod aws;
mod cleanup;
pub mod health;
pub mod inventory;
mod late_writes;
pub mod observe;
pub mod plan;
pub mod poller;
pub mod readings;
pub mod settled;
pub mod steps;

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};

use self::aws::FailoverAws;
use super::access;
use super::pipeline::{Applied, PassEvent, Pipeline, drive};
use super::{PassEnd, ReconcileError, StatusWriter, jittered, with_finalizer};
use crate::api::dns_failover::{DnsFailover, DnsFailoverStatus};
use crate::api::validation::normalize_zone_id;
use crate::aws::Queued;
use crate::aws::Service;
use crate::runtime::Context;
use crate::runtime::conditions::{self, READY};
use crate::runtime::status::ObjectStatus;

const KIND: &str = "DnsFailover";
/// What a pass that found everything in place says (a settled pass says it too: what it states
/// is what the last full pass compared).
const CONVERGED: &str = "health checks and both records matched the spec at the last full check";
/// Route 53 reads of a full pass: the records at the name and the two health checks.
const FULL_PASS_ROUTE53_READS: f64 = 3.0;
/// The share of the Route 53 budget periodic full passes may take; the rest is for creates,
/// changes and passes a spec edit or a health reading asks for.
const PERIODIC_SHARE: f64 = 0.5;

/// How often a converged object's full pass comes back: the resync, stretched so that `objects`
/// full passes per period take at most [`PERIODIC_SHARE`] of a `route53_rps` budget.
fn resync_period(resync: Duration, objects: usize, route53_rps: f64) -> Duration {
    crate::runtime::passes::stretched(resync, objects, FULL_PASS_ROUTE53_READS, route53_rps, PERIODIC_SHARE)
}

/// The object's Route 53 access; a pass's (`holder`: the object's key) may hold turns in slow
/// quotas across passes (`AwsCaller::reserve`).
async fn clients(ctx: &Context, obj: &DnsFailover, holder: Option<&str>) -> Result<FailoverAws, ReconcileError> {
    let aws = super::inventory::aws_of(obj);
    let clients = ctx.aws.clients_for(aws).await;
    let caller = ctx.caller.scoped(clients.scope);
    Ok(FailoverAws {
        caller: holder.map_or_else(|| caller.clone(), |h| caller.held_by(h)),
        r53: clients.route53,
        reads: clients.route53_reads,
        batcher: ctx.route53.clone(),
        scope: aws.map_or_else(String::new, |a| {
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
    let key = kube::runtime::reflector::ObjectRef::from_obj(obj.as_ref()).to_string();
    let pass = FailoverPass {
        aws: clients(ctx, &obj, Some(&key)).await?,
        ctx,
        nonce: uuid::Uuid::new_v4().simple().to_string().chars().take(6).collect(),
        key,
        access_epoch: ctx.access.epoch(),
        settle: std::sync::Mutex::new(None),
    };
    drive(&pass, api, obj.as_ref(), obj.spec.policy.paused, ctx).await
}

/// One DnsFailover pass: its Route 53 access, the nonce a new CallerReference gets, the object's
/// key in the pass log, the AccessPolicy epoch the pass started under, and (once the pass found
/// everything in place) how long the object stays settled once its status is written.
struct FailoverPass<'a> {
    aws: FailoverAws,
    ctx: &'a Context,
    nonce: String,
    key: String,
    access_epoch: u64,
    settle: std::sync::Mutex<Option<Duration>>,
}

/// What a pass read: everything, or (settled, see [`settled`]) at most a pending change, or
/// nothing: the checks it must create are far back in CreateHealthCheck's queue.
enum Observed {
    Full(Box<observe::Observed>),
    Between(settled::Between),
    Queued(Queued),
}

/// What a pass does.
enum Plan {
    Full(Box<steps::Plan>),
    /// The status, whether the change is still PENDING, and the time left until the full pass.
    Between(Box<DnsFailoverStatus>, bool, Duration),
    /// Come back when the turns are due.
    Queued(Queued),
}

impl Pipeline<DnsFailover> for FailoverPass<'_> {
    type Observed = Observed;
    type Plan = Plan;

    fn access_uses(&self, obj: &DnsFailover) -> Vec<access::Use> {
        access::uses::dns_failover(&obj.spec)
    }

    fn observe<'a>(
        &'a self,
        obj: &'a DnsFailover,
        status: &'a DnsFailoverStatus,
    ) -> BoxFuture<'a, Result<Observed, ReconcileError>> {
        Box::pin(async move {
            let left = self.ctx.failover_passes.settled_for(&self.key, obj.meta().generation, self.access_epoch);
            if let Some(left) = settled::settled(obj, status, left) {
                return Ok(Observed::Between(settled::observe(&self.aws, status, left).await?));
            }
            // Before any read: a pass whose new checks are far back in CreateHealthCheck's queue
            // (0.5/s) would read everything twice, now and when its turn comes.
            let creates = steps::checks_unrecorded(&obj.spec, status);
            if let Err(queued) = self.aws.caller.reserve(Service::Route53, "CreateHealthCheck", creates).await {
                return Ok(Observed::Queued(queued));
            }
            let mut observed = observe::observe(&self.aws, &obj.spec, status).await?;
            if let (Some(d), Some(zone)) = (&obj.spec.delegation, &observed.zone) {
                let (parent, zone_id) =
                    (normalize_zone_id(&d.parent_hosted_zone_id), normalize_zone_id(&obj.spec.hosted_zone_id));
                // The gate checked the parent zone; the delegated name is known only now.
                let name_use = access::Use {
                    field: "spec.delegation.parentHostedZoneId".into(),
                    what: access::uses::delegation(parent, Some(&zone.name)),
                };
                let namespace = obj.namespace().unwrap_or_default();
                if let access::Gate::Refused(b) = self.ctx.access.check(&namespace, &[name_use]) {
                    observed.not_permitted = Some(b);
                }
                let entry = inventory::delegation(parent, &zone.name, zone_id);
                if !status.resources.contains(&entry) {
                    observed.delegated_by = delegated_by(self.ctx, obj, parent, zone_id, &entry).await?;
                }
            }
            Ok(Observed::Full(Box::new(observed)))
        })
    }

    fn plan(&self, obj: &DnsFailover, status: &DnsFailoverStatus, observed: Observed) -> Plan {
        match observed {
            Observed::Full(observed) => {
                Plan::Full(Box::new(steps::plan(&obj.spec, &self.aws.owner.uid, status, &observed, &self.nonce)))
            }
            Observed::Between(between) => {
                let (status, pending) = settled::plan(status, &between, obj.meta().generation);
                Plan::Between(Box::new(status), pending, between.left)
            }
            Observed::Queued(queued) => Plan::Queued(queued),
        }
    }

    fn apply<'a>(
        &'a self,
        obj: &'a DnsFailover,
        plan: Plan,
        writer: &'a StatusWriter<'a, DnsFailover>,
    ) -> BoxFuture<'a, Applied<DnsFailoverStatus>> {
        Box::pin(async move {
            let plan = match plan {
                Plan::Full(plan) => *plan,
                Plan::Between(status, pending, left) => {
                    let requeue = settled::next_pass(pending, left, crate::runtime::clock::now());
                    let end = PassEnd::Converged { message: CONVERGED, requeue };
                    return Applied { status: *status, end, events: Vec::new() };
                }
                Plan::Queued(queued) => {
                    let status = obj.status.clone().unwrap_or_default();
                    return Applied { status, end: PassEnd::Queued(queued), events: Vec::new() };
                }
            };
            // Before anything is recorded: a pass whose checks are far back in CreateHealthCheck's
            // queue (0.5/s) holds its turn and gives up its slot to passes that need none. The
            // turns observe reserved are held already; this adds those of replaced or lost checks.
            let creates = plan.steps.iter().filter(|s| matches!(s, steps::Step::CreateCheck { .. })).count();
            if let Err(queued) = self.aws.caller.reserve(Service::Route53, "CreateHealthCheck", creates).await {
                let status = obj.status.clone().unwrap_or_default();
                return Applied { status, end: PassEnd::Queued(queued), events: Vec::new() };
            }
            let generation = obj.meta().generation;
            let grace = crate::runtime::absences::grace(self.ctx.config.retry().longest_call());
            let absent_may_go =
                |entry: &crate::api::OwnedResource| self.ctx.absences.confirmed(&self.key, &entry.id, grace).is_ok();
            let (mut status, outcome) =
                apply::apply(&self.aws, &obj.spec, plan, writer, generation, &absent_may_go).await;
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
                    // Every converged object comes back once a period: at 1,000 objects a 300 s resync
                    // alone took the whole Route 53 budget, and new objects waited behind it.
                    let config = &self.ctx.config;
                    let every =
                        resync_period(config.resync(), self.ctx.health.population(), config.budgets().route53_rps);
                    // On a slot: the objects due together share their zone walks and check listings.
                    let full = crate::runtime::passes::aligned(
                        jittered(every),
                        crate::runtime::passes::RESYNC_SLOT,
                        crate::runtime::clock::now(),
                    );
                    // Until then (once this status is written), passes only follow the change
                    // and apply health readings.
                    *self.settle.lock().unwrap_or_else(|p| p.into_inner()) = Some(full);
                    let requeue = settled::next_pass(pending, full, crate::runtime::clock::now());
                    PassEnd::Converged { message: CONVERGED, requeue }
                }
                Ok(Some(b)) => PassEnd::Blocked(b),
                Err(err) => PassEnd::Failed(err),
            };
            Applied { status, end, events: Vec::new() }
        })
    }

    fn written(&self, obj: &DnsFailover) {
        if let Some(full) = self.settle.lock().unwrap_or_else(|p| p.into_inner()).take() {
            self.ctx.failover_passes.settle_until(&self.key, obj.meta().generation, full, self.access_epoch);
        }
    }

    /// The poller's latest reading of the checks this status names, whatever the pass's end (this
    /// is the one writer of the status; a failover must show also while Route 53 throttles reads).
    fn finish(&self, obj: &DnsFailover, status: &mut DnsFailoverStatus, _end: &PassEnd) -> Vec<PassEvent> {
        let flip =
            readings::apply_reading(status, obj, self.ctx.health.latest(obj).as_ref(), crate::runtime::clock::now());
        flip.map(|f| PassEvent {
            warning: true,
            note: format!("Route 53 now answers the {:?} target ({})", f.to, f.reason).to_lowercase(),
            reason: f.reason,
            action: "Failover",
        })
        .into_iter()
        .collect()
    }
}

/// Another live DnsFailover (in the namespaces this operator watches) whose spec delegates zone
/// `zone_id` from `parent` and that has the first claim on it, as `namespace/name`: one that
/// records the delegation (`entry`) as its own, else the oldest one older than `obj`. The record
/// counts first: an older object whose spec gains the delegation later must not take it over.
async fn delegated_by(
    ctx: &Context,
    obj: &DnsFailover,
    parent: &str,
    zone_id: &str,
    entry: &crate::api::OwnedResource,
) -> Result<Option<String>, ReconcileError> {
    let api: Api<DnsFailover> = match &ctx.config.namespace {
        Some(ns) => Api::namespaced(ctx.client.clone(), ns),
        None => Api::all(ctx.client.clone()),
    };
    let age = |o: &DnsFailover| (o.metadata.creation_timestamp.clone().map(|t| t.0), o.namespace(), o.name_any());
    let mine = age(obj);
    let others = api.list(&kube::api::ListParams::default()).await?;
    Ok(others
        .items
        .into_iter()
        .filter(|o| o.uid() != obj.uid() && o.metadata.deletion_timestamp.is_none())
        .filter(|o| {
            o.spec.delegation.as_ref().is_some_and(|d| normalize_zone_id(&d.parent_hosted_zone_id) == parent)
                && normalize_zone_id(&o.spec.hosted_zone_id) == zone_id
        })
        .map(|o| (!o.status.as_ref().is_some_and(|s| s.resources.contains(entry)), age(&o), o))
        .filter(|(unrecorded, age, _)| !unrecorded || *age < mine)
        .min_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)))
        .map(|(_, _, o)| format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any())))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 571 converged objects on a 300 s resync took all of a 4/s Route 53 budget and starved the
    /// creates of the rest (BENCHMARKS.md); the period now leaves half of it.
    #[test]
    fn the_resync_stretches_to_half_the_route53_budget() {
        let resync = Duration::from_secs(300);
        assert_eq!(resync_period(resync, 100, 4.0), resync);
        assert_eq!(resync_period(resync, 1000, 4.0), Duration::from_secs(1500));
        assert_eq!(resync_period(resync, 571, 4.0).as_secs(), 856);
    }
}
