//! The FargateApp controller: a full pass or a cheap poll of the service while a rollout runs;
//! status once per pass; a finalizer that deletes from the inventory in the order of the README.
//! A full pass observes (every read, before any write: [`observe`]), plans (a pure function
//! returning the ordered steps: target group, listener rule, task definition, service, record,
//! then whatever the spec no longer wants from the inventory in `status.resources`: [`steps`]) and
//! applies the plan, recording each result as it lands (`apply`).

mod apply;
pub mod aws;
mod cleanup;
pub mod dns;
pub mod ecs;
pub mod inventory;
pub mod observe;
pub mod overlap;
pub mod plan;
pub mod render;
mod rule;
mod service;
pub mod steps;

use std::sync::Arc;

use futures::future::BoxFuture;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};

use self::apply::{Outcome, Pass, report};
use self::aws::FargateAws;
use self::plan::service_update;
use super::access;
use super::pipeline::{Applied, Pipeline, drive};
use super::{PassEnd, ReconcileError, StatusWriter, jittered, with_finalizer};
use crate::api::fargate_app::{FargateApp, FargateAppStatus};
use crate::aws::AwsError;
use crate::aws::naming::aws_name;
use crate::runtime::conditions::SYNCED;
use crate::runtime::{Context, passes};

const KIND: &str = "FargateApp";

/// AWS names of one app, all derived from namespace/name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Names {
    /// Task definition family and service name.
    pub family: String,
    /// Target group name (≤ 32).
    pub target_group: String,
}

impl Names {
    /// Names for `namespace/name`.
    pub fn new(namespace: &str, name: &str) -> Self {
        Self { family: aws_name("fa", namespace, name, 255), target_group: aws_name("fa", namespace, name, 32) }
    }
}

/// ELBv2 reads of a steady full pass (target group, rules, target health, a share of attributes):
/// sizes the full-pass period against the ELBv2 budget. Counted as if every pass read target
/// health, though most passes of a steady app do not (`plan::rereads_target_health`): the period
/// is sized for the passes after a change, when they all do.
const FULL_PASS_ELBV2_READS: f64 = 3.1;
/// ECS reads of a rollout poll (DescribeServices).
const POLL_ECS_READS: f64 = 1.0;
/// Share of a service's budget that periodic passes may take; the rest is for changes.
const PERIODIC_SHARE: f64 = 0.5;
/// Target group attributes (deregistration delay) are compared on spec changes and on every
/// this-many full passes: there is no batch read, and they rarely drift.
const ATTRIBUTE_CHECK_EVERY_FULL_PASSES: u64 = 12;

async fn clients(ctx: &Context, obj: &FargateApp) -> Result<FargateAws, ReconcileError> {
    let clients = ctx.aws.clients_for(super::inventory::aws_of(obj)).await;
    let owner = super::owner_of(ctx, obj, KIND)?;
    Ok(FargateAws {
        caller: ctx.caller.scoped(clients.scope),
        ecs: clients.ecs,
        elb: clients.elbv2,
        r53: clients.route53,
        service_reads: clients.service_reads,
        elb_reads: clients.elb_reads,
        owner,
        facts: ctx.facts.clone(),
    })
}

/// Reconcile one FargateApp (the controller's entry point).
pub async fn reconcile(obj: Arc<FargateApp>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    with_finalizer(
        obj,
        ctx,
        |api, obj, ctx| async move { apply(&api, obj, &ctx).await },
        |api, obj, ctx| async move { cleanup::cleanup(&api, obj, &ctx).await },
    )
    .await
}

async fn apply(api: &Api<FargateApp>, obj: Arc<FargateApp>, ctx: &Context) -> Result<Action, ReconcileError> {
    let key = ObjectRef::from_obj(obj.as_ref()).to_string();
    let budgets = ctx.config.budgets();
    // Every app the controller sees shares the budget, not only those through a full pass yet:
    // while 1,000 are created the first ones would otherwise get short periods.
    let apps = ctx.passes.len().max(ctx.fargate_apps.as_ref().map_or(0, |s| s.state().len()));
    let full_every =
        passes::stretched(ctx.config.resync(), apps, FULL_PASS_ELBV2_READS, budgets.elbv2_rps, PERIODIC_SHARE);
    let pass = AppPass {
        aws: clients(ctx, &obj).await?,
        ctx,
        names: Names::new(&obj.namespace().unwrap_or_default(), &obj.name_any()),
        key,
        full_every,
    };
    drive(&pass, api, obj.as_ref(), obj.spec.policy.paused, ctx).await
}

/// One FargateApp pass: a full pass, or a poll of the service between full passes (see [`poll`]).
struct AppPass<'a> {
    aws: FargateAws,
    ctx: &'a Context,
    names: Names,
    /// The object's key in the pass bookkeeping (`ctx.passes`).
    key: String,
    /// How often a full pass is due, stretched to the ELBv2 budget.
    full_every: std::time::Duration,
}

/// What a pass read.
enum AppObserved {
    /// The service as the last full pass left it: only its state is reported.
    Poll(Box<plan::ObservedService>),
    /// Every read of a full pass; `recheck`: when to look again at a recorded record found absent
    /// (kept for now, see [`crate::runtime::absences`]).
    Full {
        observed: Box<observe::Observed>,
        rendered: Box<render::RenderedTaskDefinition>,
        read_attributes: bool,
        recheck: Option<std::time::Duration>,
    },
}

/// What a pass will do.
enum AppPlan {
    /// Report the polled service.
    Poll { status: Box<FargateAppStatus>, service: Box<plan::ObservedService> },
    /// The full pass's steps, the inventory they start from (for the Deleted Events), and when to
    /// look again at a record found absent.
    Full { plan: Box<steps::Plan>, before: Vec<crate::api::OwnedResource>, recheck: Option<std::time::Duration> },
}

impl AppPass<'_> {
    /// The status a full pass plans from: the inventory seeded from the older status fields.
    fn seeded(obj: &FargateApp, status: &FargateAppStatus) -> FargateAppStatus {
        let mut seeded = status.clone();
        inventory::seed_from_status(&obj.spec, &mut seeded);
        seeded
    }

    /// Keep the recorded records found absent for their grace (another replica's write of one may
    /// still land): they leave what the plan sees as unwanted until then. Returns when the first
    /// of them is due for its second look.
    fn hold_absent_records(&self, observed: &mut observe::Observed) -> Option<std::time::Duration> {
        let grace = crate::runtime::absences::grace(self.ctx.config.retry().longest_call());
        let absences = &self.ctx.absences;
        let mut recheck: Option<std::time::Duration> = None;
        observed.old_records.retain(|(entry, found)| {
            if found.is_some() {
                absences.present(&self.key, &entry.id);
                return true;
            }
            match absences.confirmed(&self.key, &entry.id, grace) {
                Ok(()) => true,
                Err(left) => {
                    recheck = Some(recheck.map_or(left, |r| r.min(left)));
                    false
                }
            }
        });
        recheck
    }
}

impl Pipeline<FargateApp> for AppPass<'_> {
    type Observed = AppObserved;
    type Plan = AppPlan;

    fn access_uses(&self, obj: &FargateApp) -> Vec<access::Use> {
        access::uses::fargate_app(&obj.spec)
    }

    /// An automatic rule priority is chosen inside what the policy allows on the listener.
    fn narrowed(&self, obj: &FargateApp, grant: &access::Grant) -> Option<FargateApp> {
        let range = grant.priority_range.clone()?;
        let mut narrowed = obj.clone();
        let rule = narrowed.spec.load_balancer.as_mut()?.listener_rule.as_mut()?;
        rule.priority_range = range;
        Some(narrowed)
    }

    fn observe<'a>(
        &'a self,
        obj: &'a FargateApp,
        status: &'a FargateAppStatus,
    ) -> BoxFuture<'a, Result<AppObserved, ReconcileError>> {
        Box::pin(async move {
            let generation = obj.meta().generation;
            let synced = status.observed_generation == generation
                && status
                    .conditions
                    .iter()
                    .any(|c| c.type_ == SYNCED && c.status == "True" && c.observed_generation == generation);
            if synced
                && !self.ctx.passes.full_due(&self.key, generation, self.full_every)
                // A pass holding an absent record's entry is a full one, which says so in `Synced`.
                && !self.ctx.absences.holds(&self.key)
                && let Some(svc) = poll(obj, &self.aws, &self.names, status).await?
            {
                return Ok(AppObserved::Poll(Box::new(svc)));
            }
            let spec = &obj.spec;
            let read_attributes = status.observed_generation != generation
                || self.ctx.passes.full_passes(&self.key).is_multiple_of(ATTRIBUTE_CHECK_EVERY_FULL_PASSES);
            let region = self
                .ctx
                .aws
                .config_for(super::inventory::aws_of(obj))
                .await
                .region()
                .map(|r| r.to_string())
                .unwrap_or_default();
            let rendered = render::render(spec, &self.names.family, &region);
            let seeded = Self::seeded(obj, status);
            let mut observed =
                observe::observe(&self.aws, spec, &self.names, &seeded, &rendered.content_hash(), read_attributes)
                    .await?;
            let recheck = self.hold_absent_records(&mut observed);
            Ok(AppObserved::Full {
                observed: Box::new(observed),
                rendered: Box::new(rendered),
                read_attributes,
                recheck,
            })
        })
    }

    fn plan(&self, obj: &FargateApp, status: &FargateAppStatus, observed: AppObserved) -> AppPlan {
        match observed {
            AppObserved::Poll(svc) => AppPlan::Poll { status: Box::new(status.clone()), service: svc },
            AppObserved::Full { observed, rendered, read_attributes, recheck } => {
                let seeded = Self::seeded(obj, status);
                let plan = steps::plan(&obj.spec, &self.names, &seeded, &observed, &rendered, read_attributes);
                AppPlan::Full { plan: Box::new(plan), before: seeded.resources, recheck }
            }
        }
    }

    fn apply<'a>(
        &'a self,
        obj: &'a FargateApp,
        plan: AppPlan,
        writer: &'a StatusWriter<'a, FargateApp>,
    ) -> BoxFuture<'a, Applied<FargateAppStatus>> {
        Box::pin(async move {
            let (status, outcome, full, recheck) = match plan {
                AppPlan::Poll { status, service } => {
                    let mut status = *status;
                    let tg_arn = status.target_group_arn.clone();
                    let memo = (self.ctx.passes.as_ref(), self.key.as_str());
                    let outcome = report(obj, &self.aws, memo, &mut status, *service, tg_arn.as_deref()).await;
                    (status, outcome, false, None)
                }
                AppPlan::Full { plan, before, recheck } => {
                    // Drift repaired at the same generation starts a deployment too.
                    if plan
                        .steps
                        .iter()
                        .any(|s| matches!(s, steps::Step::CreateService { .. } | steps::Step::UpdateService { .. }))
                    {
                        self.ctx.passes.rollout_started(&self.key);
                    }
                    let pass = Pass { obj, aws: &self.aws, ctx: self.ctx, writer, names: &self.names, key: &self.key };
                    let (status, outcome) = apply::apply(&pass, *plan, &before).await;
                    (status, outcome, true, recheck)
                }
            };
            if full && outcome.is_ok() {
                self.ctx.passes.record_full(&self.key, obj.meta().generation);
            }
            let end = match outcome {
                Ok(Outcome::Done { progressing }) => {
                    let polling = self.ctx.passes.set_progressing(&self.key, progressing);
                    let (after, slot) = if progressing {
                        let poll = passes::stretched(
                            passes::MIN_PROGRESS_POLL,
                            polling,
                            POLL_ECS_READS,
                            self.ctx.config.budgets().ecs_rps,
                            PERIODIC_SHARE / 2.0,
                        );
                        let age = self.ctx.passes.progressing_for(&self.key);
                        (passes::rollout_poll(poll, age, self.full_every), passes::POLL_SLOT)
                    } else {
                        (jittered(self.full_every), passes::RESYNC_SLOT)
                    };
                    let mut requeue = passes::aligned(after, slot, crate::runtime::clock::now());
                    let mut message = "every AWS resource matches the spec";
                    if let Some(recheck) = recheck {
                        // A moment after the grace, so the second look finds it passed.
                        requeue = requeue.min(recheck.saturating_add(std::time::Duration::from_secs(1)));
                        message = "every AWS resource matches the spec; a recorded record found absent keeps its entry until a second look (a write of it by another replica may still land)";
                    }
                    PassEnd::Converged { message, requeue }
                }
                Ok(Outcome::Blocked(b)) => PassEnd::Blocked(b),
                Err(err) => PassEnd::Failed(err),
            };
            Applied { status, end, events: Vec::new() }
        })
    }
}

/// A poll between full passes: only the service (rollout, counts) and target health, which move
/// on their own. `None` when the service is not what the last full pass left (deleted, another
/// task definition, desired count or settings changed behind our back): a full pass instead.
async fn poll(
    obj: &FargateApp,
    aws: &FargateAws,
    names: &Names,
    status: &FargateAppStatus,
) -> Result<Option<plan::ObservedService>, AwsError> {
    let Some(svc) = aws.service(&obj.spec.cluster, &names.family).await? else { return Ok(None) };
    let tg_arn = status.target_group_arn.as_deref();
    let drifted = status.task_definition_arn.as_deref() != Some(svc.task_definition.as_str())
        || status.service_arn.as_deref() != Some(svc.arn.as_str())
        || !service_update(&obj.spec, &svc, &svc.task_definition, tg_arn, false).is_empty();
    Ok((!drifted).then_some(svc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_bounded_and_distinct_per_object() {
        let a = Names::new("team-a", "web");
        assert!(a.target_group.len() <= 32);
        assert_ne!(a, Names::new("team-b", "web"));
        assert_eq!(a, Names::new("team-a", "web"));
    }
}
