//! The FargateApp controller: a full pass (target group, listener rule, task definition, service,
//! record, then whatever the spec no longer wants, from the inventory in `status.resources`) or a
//! cheap poll of the service while a rollout runs; status once per pass; a finalizer that deletes
//! from the inventory in the order of the README.

pub mod aws;
mod cleanup;
mod dns;
pub mod ecs;
pub mod inventory;
pub mod plan;
pub mod render;
mod rule;
mod service;

use std::sync::Arc;

use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};

use self::aws::{FargateAws, ListenerInfo};
use self::plan::{DesiredTargetGroup, lb_target, readiness, service_update};
use super::{Blocked, PassEnd, ReconcileError, StatusWriter, finish_pass, gate, jittered, with_finalizer};
use crate::api::fargate_app::{FargateApp, FargateAppStatus, ReplicaCounts, RolloutStatus};
use crate::api::{AdoptionPolicy, OwnedResource};
use crate::aws::AwsError;
use crate::aws::naming::aws_name;
use crate::runtime::conditions::{self, PROGRESSING, READY, SYNCED};
use crate::runtime::status::ObjectStatus;
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

/// What the apply pass produced.
enum Outcome {
    Done { progressing: bool },
    Blocked(Blocked),
}

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
            let outcome = converge(&obj, &aws, &mut status, ctx, &writer, read_attributes).await;
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

/// What every step of one full pass works with.
#[derive(Clone, Copy)]
struct Pass<'a> {
    obj: &'a FargateApp,
    aws: &'a FargateAws,
    ctx: &'a Context,
    writer: &'a StatusWriter<'a, FargateApp>,
    names: &'a Names,
}

/// Bring AWS in line with the spec and fill `status`. Read-only when nothing differs. Everything
/// made or adopted goes into the inventory as it lands; what the spec no longer wants goes last.
async fn converge(
    obj: &FargateApp,
    aws: &FargateAws,
    status: &mut FargateAppStatus,
    ctx: &Context,
    writer: &StatusWriter<'_, FargateApp>,
    read_attributes: bool,
) -> Result<Outcome, AwsError> {
    let spec = &obj.spec;
    let names = Names::new(&obj.namespace().unwrap_or_default(), &obj.name_any());
    let tags = aws.owner.tags(&spec.tags);
    let pass = Pass { obj, aws, ctx, writer, names: &names };
    inventory::seed_from_status(spec, status);
    let before = status.resources.clone();

    // 1. Target group and listener rule.
    let (mut listener, mut tg_arn, mut rule_arn) = (None, None, None);
    if let Some(lb) = &spec.load_balancer {
        if let Some(rule) = &lb.listener_rule {
            match rule::listener(aws, &rule.listener_arn).await? {
                Ok(info) => listener = Some(info),
                Err(blocked) => return Ok(Outcome::Blocked(blocked)),
            }
        }
        let arn = match ensure_target_group(&pass, status, listener.as_ref(), read_attributes).await? {
            Ok(arn) => arn,
            Err(blocked) => return Ok(Outcome::Blocked(blocked)),
        };
        inventory::add(&mut status.resources, inventory::target_group(&arn));
        if let Some(rule) = &lb.listener_rule {
            // An ALB target group is forwarded to by one load balancer only: a rule left on
            // another one goes before the new rule is made (also one whose create was planned
            // there and answered too late to be recorded).
            cleanup::settle_planned(aws, &mut status.resources).await?;
            let elsewhere: Vec<OwnedResource> =
                inventory::rules_on_other_load_balancers(&status.resources, &rule.listener_arn)
                    .into_iter()
                    .cloned()
                    .collect();
            cleanup::remove_rules(aws, &mut status.resources, &elsewhere).await?;
            // A rule on a listener this object has none recorded on may be created now: planned
            // first, so a crash before the status write and a later listener edit cannot leak it.
            let planned = inventory::planned(inventory::LISTENER_RULE, &rule.listener_arn);
            let on_listener = |r: &OwnedResource| {
                r.type_ == inventory::LISTENER_RULE && r.parent.as_deref() == Some(rule.listener_arn.as_str())
            };
            if !status.resources.iter().any(|r| on_listener(r) || *r == planned) {
                record_planned(&mut status.resources, writer, &planned).await?;
            }
            match rule::ensure_rule(aws, rule, &arn, &tags).await? {
                Ok((made, priority)) => {
                    inventory::remove(&mut status.resources, &planned.type_, &planned.id);
                    inventory::add(&mut status.resources, inventory::listener_rule(&made, &rule.listener_arn));
                    status.listener_rule_priority = Some(priority);
                    rule_arn = Some(made);
                }
                Err(blocked) => return Ok(Outcome::Blocked(blocked)),
            }
        }
        tg_arn = Some(arn);
    }
    status.target_group_arn.clone_from(&tg_arn);
    status.listener_rule_arn.clone_from(&rule_arn);
    if rule_arn.is_none() {
        status.listener_rule_priority = None;
    }
    status.load_balancer_dns_name = listener.as_ref().map(|l| l.dns_name.clone());

    // 2. Task definition and service.
    let observed_service = match ensure_service(&pass, status, tg_arn.as_deref()).await? {
        Ok(observed) => observed,
        Err(blocked) => return Ok(Outcome::Blocked(blocked)),
    };

    // 3. DNS record.
    let desired_dns = spec.dns.as_ref().zip(listener.as_ref());
    if let Err(blocked) = dns::sync(aws, desired_dns, &mut status.resources, Some(writer)).await? {
        return Ok(Outcome::Blocked(blocked));
    }
    status.url = plan::url(spec, listener.as_ref().map(|l| l.dns_name.as_str()));

    // 4. What the spec no longer wants: a rule on the old listener, a removed target group, a
    //    service in the old cluster.
    let wanted = inventory::Wanted {
        rule: rule_arn.as_deref(),
        record: desired_dns.map(|(dns, _)| inventory::dns_record_id(dns)),
        service: status.service_arn.as_deref(),
        target_group: tg_arn.as_deref(),
    };
    cleanup::remove_unwanted(aws, &mut status.resources, &wanted).await?;
    for gone in before.iter().filter(|r| !inventory::is_planned(r) && !status.resources.contains(r)) {
        let replaced = status.resources.iter().any(|r| r.type_ == gone.type_ && r.id == gone.id);
        if !replaced {
            let message = format!(
                "{} {} is no longer wanted by the spec: deleted (or found gone, or no longer ours)",
                gone.type_, gone.id
            );
            // One action per kind of object: Events with the same reason and action are folded.
            let action = match gone.type_.as_str() {
                inventory::LISTENER_RULE => "DeleteRule",
                inventory::RECORD => "ChangeResourceRecordSets",
                inventory::SERVICE => "DeleteService",
                _ => "DeleteTargetGroup",
            };
            ctx.events.normal(obj, "Deleted", action, message).await;
        }
    }

    // 5. Readiness from what ECS and the target group report.
    let Some(svc) = observed_service else {
        return Ok(just_created(obj, status));
    };
    report(obj, aws, status, svc, tg_arn.as_deref()).await
}

/// Our target group, created, adopted or brought in line with the spec. The inner `Err` is a
/// conflict a human must resolve.
async fn ensure_target_group(
    pass: &Pass<'_>,
    status: &mut FargateAppStatus,
    listener: Option<&ListenerInfo>,
    read_attributes: bool,
) -> Result<Result<String, Blocked>, AwsError> {
    let Pass { obj, aws, ctx, writer, names } = *pass;
    let spec = &obj.spec;
    let Some(lb) = &spec.load_balancer else {
        return Ok(Err(Blocked { reason: "InvalidSpec", message: "spec.loadBalancer is not set".into() }));
    };
    let vpc_id = lb.target_group.vpc_id.clone().or_else(|| listener.map(|l| l.vpc_id.clone())).unwrap_or_default();
    let Some((_, port)) = lb_target(spec, lb) else {
        return Ok(Err(Blocked { reason: "InvalidSpec", message: "no container port for the load balancer".into() }));
    };
    let desired = DesiredTargetGroup {
        name: names.target_group.clone(),
        port,
        protocol: format!("{:?}", lb.target_group.protocol),
        vpc_id,
        health: lb.target_group.health_check.clone(),
        deregistration_delay: lb.target_group.deregistration_delay_seconds,
    };
    let recorded = status.target_group_arn.clone();
    let planned = inventory::planned(inventory::TARGET_GROUP, &desired.name);
    let was_planned = status.resources.contains(&planned);
    match aws.target_group(&desired.name, read_attributes, recorded.as_deref()).await? {
        None => {
            record_planned(&mut status.resources, writer, &planned).await?;
            let arn = aws.create_target_group(&desired, &aws.owner.tags(&spec.tags)).await?;
            inventory::remove(&mut status.resources, &planned.type_, &planned.id);
            aws.set_deregistration_delay(&arn, desired.deregistration_delay).await?;
            ctx.events.normal(obj, "Created", "CreateTargetGroup", format!("target group {}", desired.name)).await;
            Ok(Ok(arn))
        }
        Some((observed, owned))
            if !adoptable(
                spec,
                owned,
                recorded.as_deref(),
                &observed.arn,
                was_planned || status.resources.contains(&inventory::target_group(&observed.arn)),
            ) =>
        {
            Ok(Err(name_conflict("target group", &desired.name, owned)))
        }
        Some((observed, _)) => {
            inventory::remove(&mut status.resources, &planned.type_, &planned.id);
            let changes = plan::target_group_changes(&desired, &observed);
            if !changes.immutable.is_empty() {
                return Ok(Err(Blocked {
                    reason: "ImmutableFieldChanged",
                    message: format!(
                        "target group {} cannot change {} in place; delete and re-create the FargateApp to apply it",
                        desired.name,
                        changes.immutable.join(", ")
                    ),
                }));
            }
            if changes.health_check {
                aws.modify_target_group(&observed.arn, &desired).await?;
            }
            if changes.deregistration_delay && read_attributes {
                aws.set_deregistration_delay(&observed.arn, desired.deregistration_delay).await?;
            }
            Ok(Ok(observed.arn))
        }
    }
}

/// The task definition revision (registered only when the rendered content changed) and the
/// service running it. Returns the service as ECS reports it (None right after a create ECS does
/// not list yet); the inner `Err` is a conflict a human must resolve.
async fn ensure_service(
    pass: &Pass<'_>,
    status: &mut FargateAppStatus,
    tg_arn: Option<&str>,
) -> Result<Result<Option<plan::ObservedService>, Blocked>, AwsError> {
    let Pass { obj, aws, ctx, writer, names } = *pass;
    let spec = &obj.spec;
    let tags = aws.owner.tags(&spec.tags);
    let region = ctx.aws.config_for(spec.aws.as_ref()).await.region().map(|r| r.to_string()).unwrap_or_default();
    let rendered = render::render(spec, &names.family, &region);
    let hash = rendered.content_hash();
    let service = match aws.service(&spec.cluster, &names.family).await {
        Ok(s) => s,
        Err(e) if e.code == "ClusterNotFoundException" => {
            return Ok(Err(Blocked {
                reason: "ClusterNotFound",
                message: format!(
                    "spec.cluster: ECS cluster {:?} does not exist in this account and region",
                    spec.cluster
                ),
            }));
        }
        Err(e) => return Err(e),
    };
    let planned = inventory::planned(inventory::SERVICE, &format!("{}/{}", spec.cluster, names.family));
    let was_planned = status.resources.contains(&planned);
    if let Some(s) = &service
        && !adoptable(
            spec,
            s.ours,
            status.service_arn.as_deref(),
            &s.arn,
            was_planned || status.resources.iter().any(|r| r.type_ == inventory::SERVICE && r.id == s.arn),
        )
    {
        return Ok(Err(name_conflict("ECS service", &names.family, s.ours)));
    }
    inventory::add(&mut status.resources, inventory::family(&names.family));
    let mut registered = false;
    let td_arn = match service::find_revision(aws, status, service.as_ref(), &names.family, &hash).await? {
        Some(arn) => arn,
        None => {
            let arn = aws.register_task_definition(&rendered, &tags).await?;
            registered = true;
            ctx.events.normal(obj, "TaskDefinitionRegistered", "RegisterTaskDefinition", arn.clone()).await;
            arn
        }
    };
    status.task_definition_arn = Some(td_arn.clone());
    status.task_definition_hash = Some(hash);

    let restart = spec.restarted_at.is_some() && spec.restarted_at != status.restarted_at;
    let observed = match service {
        None => {
            record_planned(&mut status.resources, writer, &planned).await?;
            let arn = service::create_service(aws, obj, names, &td_arn, tg_arn, &tags).await?;
            ctx.events.normal(obj, "Created", "CreateService", format!("service {}", names.family)).await;
            status.restarted_at = spec.restarted_at.clone();
            inventory::add(&mut status.resources, inventory::service(&arn, &spec.cluster));
            status.service_arn = Some(arn);
            // Read it back so this pass reports what ECS says, not a placeholder the next pass rewrites.
            aws.service(&spec.cluster, &names.family).await?
        }
        Some(s) => {
            let update = service_update(spec, &s, &td_arn, tg_arn, restart);
            if !update.is_empty() {
                service::update_service(aws, obj, names, &update, tg_arn).await?;
                if update.task_definition.is_some() || update.force_new_deployment {
                    ctx.events.normal(obj, "RolloutStarted", "UpdateService", format!("rolling to {td_arn}")).await;
                }
                status.restarted_at = spec.restarted_at.clone();
            }
            Some(s)
        }
    };
    if let Some(svc) = &observed {
        inventory::remove(&mut status.resources, &planned.type_, &planned.id);
        inventory::add(&mut status.resources, inventory::service(&svc.arn, &spec.cluster));
        status.service_arn = Some(svc.arn.clone());
    }
    if registered {
        service::prune_revisions(aws, &names.family, &td_arn, spec.keep_task_definition_revisions).await?;
    }
    Ok(Ok(observed))
}

/// Readiness while ECS has not reported a just-created service.
fn just_created(obj: &FargateApp, status: &mut FargateAppStatus) -> Outcome {
    let c = status.conditions_mut();
    let generation = obj.meta().generation;
    let message = "service created; waiting for ECS to report";
    conditions::set_condition(c, READY, false, "ServiceCreated", message, generation);
    conditions::set_condition(c, PROGRESSING, true, "ServiceCreated", message, generation);
    Outcome::Done { progressing: true }
}

/// Replicas, rollout and readiness from what ECS and the target group report.
async fn report(
    obj: &FargateApp,
    aws: &FargateAws,
    status: &mut FargateAppStatus,
    svc: plan::ObservedService,
    tg_arn: Option<&str>,
) -> Result<Outcome, AwsError> {
    // No running task, no target to be unhealthy: skip the read.
    let unhealthy = match tg_arn {
        Some(arn) if svc.running > 0 => aws.unhealthy_targets(arn).await?,
        _ => 0,
    };
    status.replicas = Some(ReplicaCounts { desired: svc.desired, running: svc.running, pending: svc.pending });
    status.rollout = svc.rollout.as_ref().map(|(state, reason, failed)| RolloutStatus {
        state: state.clone(),
        reason: reason.clone(),
        failed_tasks: *failed,
    });
    let (ready, reason, message) = readiness(&svc, unhealthy);
    let generation = obj.meta().generation;
    let c = status.conditions_mut();
    conditions::set_condition(c, READY, ready, reason, &message, generation);
    let progressing = !ready && matches!(reason, "RolloutInProgress" | "TasksNotRunning");
    conditions::set_condition(c, PROGRESSING, progressing, reason, &message, generation);
    if reason == "RolloutFailed" {
        return Ok(Outcome::Blocked(Blocked { reason: "RolloutFailed", message }));
    }
    Ok(Outcome::Done { progressing })
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

/// Whether an existing resource with our name may be used. `IfTagged`: it carries our owner tags.
/// `Never`: only one this object made: recorded in status (or its inventory), or whose create it
/// recorded as planned before sending it (the answer was lost), never one found.
fn adoptable(
    spec: &crate::api::fargate_app::FargateAppSpec,
    owned: bool,
    recorded: Option<&str>,
    arn: &str,
    planned: bool,
) -> bool {
    match spec.policy.adoption {
        AdoptionPolicy::IfTagged => owned,
        AdoptionPolicy::Never => owned && (recorded == Some(arn) || planned),
    }
}

/// Record a create as planned in the inventory, and write it, before the create is sent.
async fn record_planned(
    resources: &mut Vec<OwnedResource>,
    writer: &StatusWriter<'_, FargateApp>,
    planned: &OwnedResource,
) -> Result<(), AwsError> {
    inventory::add(resources, planned.clone());
    writer.record_resources(resources).await
}

fn name_conflict(what: &str, name: &str, owned: bool) -> Blocked {
    let why = if owned {
        "carries this object's owner tags but is not recorded in its status, and spec.policy.adoption is Never"
    } else {
        "exists without this object's owner tags"
    };
    Blocked {
        reason: crate::runtime::conditions::REASON_NAME_CONFLICT,
        message: format!("a {what} named {name} {why}; it is left untouched"),
    }
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
