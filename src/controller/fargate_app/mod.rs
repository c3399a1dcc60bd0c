//! The FargateApp controller: a full pass or a cheap poll of the service while a rollout runs;
//! status once per pass; a finalizer that deletes from the inventory in the order of the README.
//! A full pass observes (every read, before any write: [`observe`]), plans (a pure function
//! returning the ordered steps: target group, listener rule, task definition, service, record,
//! then whatever the spec no longer wants from the inventory in `status.resources`: [`steps`]) and
//! applies the plan, recording each result as it lands (`apply`).

mod apply;
pub mod aws;
mod cleanup;
mod dns;
pub mod ecs;
pub mod inventory;
pub mod observe;
pub mod plan;
pub mod render;
mod rule;
mod service;
pub mod steps;

use std::sync::Arc;

use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};

use self::apply::{Outcome, Pass, report};
use self::aws::FargateAws;
use self::plan::service_update;
use super::{PassEnd, ReconcileError, StatusWriter, finish_pass, gate, jittered, with_finalizer};
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
/// sizes the full-pass period against the ELBv2 budget.
const FULL_PASS_ELBV2_READS: f64 = 3.1;
/// ECS reads of a rollout poll (DescribeServices).
const POLL_ECS_READS: f64 = 1.0;
/// Share of a service's budget that periodic passes may take; the rest is for changes.
const PERIODIC_SHARE: f64 = 0.5;
/// Target group attributes (deregistration delay) are compared on spec changes and on every
/// this-many full passes: there is no batch read, and they rarely drift.
const ATTRIBUTE_CHECK_EVERY_FULL_PASSES: u64 = 12;

async fn clients(ctx: &Context, obj: &FargateApp) -> Result<FargateAws, ReconcileError> {
    let cfg = ctx.aws.config_for(obj.spec.aws.as_ref()).await;
    let owner = super::owner_of(ctx, obj, KIND)?;
    Ok(FargateAws {
        caller: ctx.caller.clone(),
        ecs: ctx.aws.ecs(&cfg),
        elb: ctx.aws.elbv2(&cfg),
        r53: ctx.aws.route53(&cfg),
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
    let generation = obj.meta().generation;
    if let Some(done) = gate(api, obj.as_ref(), obj.spec.policy.paused, ctx).await? {
        return Ok(done);
    }
    let old = obj.status.clone().unwrap_or_default();
    let mut status = old.clone();
    let aws = clients(ctx, &obj).await?;
    let writer = StatusWriter::new(api, obj.as_ref(), &ctx.metrics);
    let budgets = ctx.config.budgets();
    let full_every = passes::stretched(
        ctx.config.resync(),
        ctx.passes.len(),
        FULL_PASS_ELBV2_READS,
        budgets.elbv2_rps,
        PERIODIC_SHARE,
    );
    let synced = old.observed_generation == generation
        && old
            .conditions
            .iter()
            .any(|c| c.type_ == SYNCED && c.status == "True" && c.observed_generation == generation);
    let polled = if synced && !ctx.passes.full_due(&key, generation, full_every) {
        poll(&obj, &aws, &mut status).await.transpose()
    } else {
        None
    };
    let outcome = match polled {
        Some(outcome) => outcome,
        None => {
            let read_attributes = old.observed_generation != generation
                || ctx.passes.full_passes(&key).is_multiple_of(ATTRIBUTE_CHECK_EVERY_FULL_PASSES);
            let outcome = full_pass(&obj, &aws, &mut status, ctx, &writer, read_attributes).await;
            if outcome.is_ok() {
                ctx.passes.record_full(&key, generation);
            }
            outcome
        }
    };
    let end = match outcome {
        Ok(Outcome::Done { progressing }) => {
            let polling = ctx.passes.set_progressing(&key, progressing);
            let requeue = if progressing {
                passes::stretched(
                    passes::MIN_PROGRESS_POLL,
                    polling,
                    POLL_ECS_READS,
                    budgets.ecs_rps,
                    PERIODIC_SHARE / 2.0,
                )
            } else {
                jittered(full_every)
            };
            PassEnd::Converged { message: "every AWS resource matches the spec", requeue }
        }
        Ok(Outcome::Blocked(b)) => PassEnd::Blocked(b),
        Err(err) => PassEnd::Failed(err),
    };
    finish_pass(&writer, obj.as_ref(), ctx, &old, status, end).await.0
}

/// Bring AWS in line with the spec and fill `status`: observe, plan, apply. Read-only when nothing
/// differs. Everything made or adopted goes into the inventory as it lands; what the spec no longer
/// wants goes last.
async fn full_pass(
    obj: &FargateApp,
    aws: &FargateAws,
    status: &mut FargateAppStatus,
    ctx: &Context,
    writer: &StatusWriter<'_, FargateApp>,
    read_attributes: bool,
) -> Result<Outcome, AwsError> {
    let spec = &obj.spec;
    let names = Names::new(&obj.namespace().unwrap_or_default(), &obj.name_any());
    inventory::seed_from_status(spec, status);
    let region = ctx.aws.config_for(spec.aws.as_ref()).await.region().map(|r| r.to_string()).unwrap_or_default();
    let rendered = render::render(spec, &names.family, &region);
    let observed = observe::observe(aws, spec, &names, status, &rendered.content_hash(), read_attributes).await?;
    let plan = steps::plan(spec, &names, status, &observed, &rendered, read_attributes);
    let pass = Pass { obj, aws, ctx, writer, names: &names };
    let (reached, outcome) = apply::apply(&pass, plan, &status.resources).await;
    *status = reached;
    outcome
}

/// A poll between full passes: only the service (rollout, counts) and target health, which move
/// on their own. `None` when the service is not what the last full pass left (deleted, another
/// task definition, desired count or settings changed behind our back): the caller makes a full
/// pass instead.
async fn poll(obj: &FargateApp, aws: &FargateAws, status: &mut FargateAppStatus) -> Result<Option<Outcome>, AwsError> {
    let names = Names::new(&obj.namespace().unwrap_or_default(), &obj.name_any());
    let Some(svc) = aws.service(&obj.spec.cluster, &names.family).await? else { return Ok(None) };
    let tg_arn = status.target_group_arn.clone();
    let drifted = status.task_definition_arn.as_deref() != Some(svc.task_definition.as_str())
        || status.service_arn.as_deref() != Some(svc.arn.as_str())
        || !service_update(&obj.spec, &svc, &svc.task_definition, tg_arn.as_deref(), false).is_empty();
    if drifted {
        return Ok(None);
    }
    report(obj, aws, status, svc, tg_arn.as_deref()).await.map(Some)
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
