//! The FargateApp controller: observe -> pure plan -> apply -> status, with a finalizer that
//! deletes in the order of API.md.

pub mod aws;
pub mod plan;
pub mod render;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_route53::types as r53;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};

use self::aws::{FargateAws, ListenerInfo, build_error, taken_priorities};
use self::plan::{DesiredTargetGroup, lb_target, lowest_free_priority, readiness, rule_needs_modify, service_update};
use super::{
    Blocked, ReconcileError, emit_transitions, gate, jittered, record_aws_error, record_blocked, with_finalizer,
    write_status,
};
use crate::api::fargate_app::{DnsRecordType, FargateApp, FargateAppStatus, ReplicaCounts, RolloutStatus};
use crate::api::{AdoptionPolicy, DeletionPolicy};
use crate::aws::naming::{aws_name, idempotency_token};
use crate::aws::{AwsError, ErrorCategory, Service};
use crate::runtime::conditions::{self, DEGRADED, DELETION_BLOCKED, PROGRESSING, READY, SYNCED};
use crate::runtime::status::{ObjectStatus, set_last_error};
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
        |api, obj, ctx| async move { cleanup(&api, obj, &ctx).await },
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
            let outcome = converge(&obj, &aws, &mut status, ctx, read_attributes).await;
            if outcome.is_ok() {
                ctx.passes.record_full(&key, generation);
            }
            outcome
        }
    };
    status.observed_generation = generation;
    let result = match outcome {
        Ok(Outcome::Done { progressing }) => {
            let c = status.conditions_mut();
            conditions::set_condition(c, SYNCED, true, "Synced", "every AWS resource matches the spec", generation);
            conditions::set_condition(c, DEGRADED, false, "AsExpected", "no problems found", generation);
            status.last_error = None;
            ctx.backoff.on_success(&key);
            let polling = ctx.passes.set_progressing(&key, progressing);
            let wait = if progressing {
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
            Ok(Action::requeue(wait))
        }
        Ok(Outcome::Blocked(b)) => {
            record_blocked(&mut status, &b, generation);
            Ok(Action::requeue(Duration::from_secs(300)))
        }
        Err(err) => {
            record_aws_error(&mut status, &err, generation);
            Err(ReconcileError::Aws(err))
        }
    };
    emit_transitions(ctx, obj.as_ref(), &old, &status).await;
    write_status(api, &obj, &status, ctx).await?;
    result
}

/// Bring AWS in line with the spec and fill `status`. Read-only when nothing differs.
async fn converge(
    obj: &FargateApp,
    aws: &FargateAws,
    status: &mut FargateAppStatus,
    ctx: &Context,
    read_attributes: bool,
) -> Result<Outcome, AwsError> {
    let spec = &obj.spec;
    let ns = obj.namespace().unwrap_or_default();
    let names = Names::new(&ns, &obj.name_any());
    let tags = aws.owner.tags(&spec.tags);
    let region = ctx.aws.config_for(spec.aws.as_ref()).await.region().map(|r| r.to_string()).unwrap_or_default();

    // 1. Target group and listener rule.
    let mut listener: Option<ListenerInfo> = None;
    let mut tg_arn: Option<String> = None;
    if let Some(lb) = &spec.load_balancer {
        if let Some(rule) = &lb.listener_rule {
            listener = Some(aws.listener(&rule.listener_arn).await?);
        }
        let vpc_id =
            lb.target_group.vpc_id.clone().or_else(|| listener.as_ref().map(|l| l.vpc_id.clone())).unwrap_or_default();
        let Some((_, port)) = lb_target(spec, lb) else {
            return Ok(Outcome::Blocked(Blocked {
                reason: "InvalidSpec",
                message: "no container port for the load balancer".into(),
            }));
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
        let arn = match aws.target_group(&desired.name, read_attributes, recorded.as_deref()).await? {
            None => {
                let arn = aws.create_target_group(&desired, &tags).await?;
                aws.set_deregistration_delay(&arn, desired.deregistration_delay).await?;
                ctx.events.normal(obj, "Created", "CreateTargetGroup", format!("target group {}", desired.name)).await;
                arn
            }
            Some((observed, owned)) if !adoptable(spec, owned, status.target_group_arn.as_deref(), &observed.arn) => {
                return Ok(Outcome::Blocked(name_conflict("target group", &desired.name, owned)));
            }
            Some((observed, _)) => {
                let changes = plan::target_group_changes(&desired, &observed);
                if !changes.immutable.is_empty() {
                    return Ok(Outcome::Blocked(Blocked {
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
                observed.arn
            }
        };
        status.target_group_arn = Some(arn.clone());
        tg_arn = Some(arn.clone());

        if let (Some(rule), Some(info)) = (&lb.listener_rule, &listener) {
            status.load_balancer_dns_name = Some(info.dns_name.clone());
            match ensure_rule(aws, rule, &arn, &tags).await? {
                Ok((rule_arn, priority)) => {
                    status.listener_rule_arn = Some(rule_arn);
                    status.listener_rule_priority = Some(priority);
                }
                Err(blocked) => return Ok(Outcome::Blocked(blocked)),
            }
        }
    }

    // 2. Task definition: register only when the rendered content changed.
    let rendered = render::render(spec, &names.family, &region);
    let hash = rendered.content_hash();
    let service = match aws.service(&spec.cluster, &names.family).await {
        Ok(s) => s,
        Err(e) if e.code == "ClusterNotFoundException" => {
            return Ok(Outcome::Blocked(Blocked {
                reason: "ClusterNotFound",
                message: format!(
                    "spec.cluster: ECS cluster {:?} does not exist in this account and region",
                    spec.cluster
                ),
            }));
        }
        Err(e) => return Err(e),
    };
    if let Some(s) = &service
        && !adoptable(spec, s.ours, status.service_arn.as_deref(), &s.arn)
    {
        return Ok(Outcome::Blocked(name_conflict("ECS service", &names.family, s.ours)));
    }
    let mut registered = false;
    let td_arn = match find_revision(aws, status, service.as_ref(), &names.family, &hash).await? {
        Some(arn) => arn,
        None => {
            let resp = aws
                .caller
                .call_create(Service::Ecs, "RegisterTaskDefinition", || rendered.to_request(&aws.ecs, &tags).send())
                .await?;
            registered = true;
            let arn = resp.task_definition().and_then(|t| t.task_definition_arn()).unwrap_or_default().to_string();
            ctx.events.normal(obj, "TaskDefinitionRegistered", "RegisterTaskDefinition", arn.clone()).await;
            arn
        }
    };
    status.task_definition_arn = Some(td_arn.clone());
    status.task_definition_hash = Some(hash);

    // 3. Service.
    let restart = spec.restarted_at.is_some() && spec.restarted_at != status.restarted_at;
    let observed_service = match service {
        None => {
            let arn = create_service(aws, obj, &names, &td_arn, tg_arn.as_deref(), &tags).await?;
            ctx.events.normal(obj, "Created", "CreateService", format!("service {}", names.family)).await;
            status.restarted_at = spec.restarted_at.clone();
            // AWS identifiers go to status right after each create.
            status.service_arn = Some(arn);
            // Read it back so this pass reports what ECS says, not a placeholder the next pass rewrites.
            aws.service(&spec.cluster, &names.family).await?
        }
        Some(s) => {
            let update = service_update(spec, &s, &td_arn, tg_arn.as_deref(), restart);
            if !update.is_empty() {
                update_service(aws, obj, &names, &update, tg_arn.as_deref()).await?;
                if update.task_definition.is_some() || update.force_new_deployment {
                    ctx.events.normal(obj, "RolloutStarted", "UpdateService", format!("rolling to {td_arn}")).await;
                }
                status.restarted_at = spec.restarted_at.clone();
            }
            Some(s)
        }
    };
    if registered {
        prune_revisions(aws, &names.family, &td_arn, spec.keep_task_definition_revisions).await?;
    }

    // 4. DNS record.
    if let (Some(dns), Some(info)) = (&spec.dns, &listener)
        && let Err(blocked) = ensure_dns(aws, dns, info, status).await?
    {
        return Ok(Outcome::Blocked(blocked));
    }
    status.url = plan::url(spec, listener.as_ref().map(|l| l.dns_name.as_str()));

    // 5. Readiness from what ECS and the target group report.
    if let Some(svc) = &observed_service {
        status.service_arn = Some(svc.arn.clone());
    }
    let Some(svc) = observed_service else {
        return Ok(just_created(obj, status));
    };
    report(obj, aws, status, svc, tg_arn.as_deref()).await
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

/// Our rule on the listener: created at the right priority or brought in line. The inner `Err` is a
/// conflict a human must resolve.
async fn ensure_rule(
    aws: &FargateAws,
    rule: &crate::api::fargate_app::ListenerRuleSpec,
    tg_arn: &str,
    tags: &BTreeMap<String, String>,
) -> Result<Result<(String, i32), Blocked>, AwsError> {
    let range = &rule.priority_range;
    let lock = aws.facts.listener_lock(&rule.listener_arn);
    let _serialised = lock.lock().await;
    // Another creator (a human, another cluster) may take the priority we picked: re-read and take
    // the next free one.
    for _ in 0..5 {
        let rules = aws.rules(&rule.listener_arn).await?;
        let ours = rules.iter().find(|r| r.ours).cloned();
        let taken = taken_priorities(&rules, ours.as_ref().map(|r| r.arn.as_str()));
        if let Some(ours) = ours {
            if rule_needs_modify(&ours, &rule.path_patterns, &rule.host_headers, tg_arn) {
                aws.modify_rule(&ours.arn, &rule.path_patterns, &rule.host_headers, tg_arn).await?;
            }
            let current = ours.priority.unwrap_or_default();
            let wanted = match rule.priority {
                Some(p) => p,
                None if (range.min..=range.max).contains(&current) => current,
                None => match lowest_free_priority(&taken, range.min, range.max) {
                    Some(p) => p,
                    None => return Ok(Err(no_free_priority(range.min, range.max))),
                },
            };
            if wanted != current {
                if taken.contains(&wanted) {
                    return Ok(Err(priority_conflict(wanted)));
                }
                aws.set_rule_priority(&ours.arn, wanted).await?;
            }
            return Ok(Ok((ours.arn, wanted)));
        }
        let priority = match rule.priority {
            Some(p) if taken.contains(&p) => return Ok(Err(priority_conflict(p))),
            Some(p) => p,
            None => match lowest_free_priority(&taken, range.min, range.max) {
                Some(p) => p,
                None => return Ok(Err(no_free_priority(range.min, range.max))),
            },
        };
        match aws.create_rule(&rule.listener_arn, priority, &rule.path_patterns, &rule.host_headers, tg_arn, tags).await
        {
            Ok(arn) => return Ok(Ok((arn, priority))),
            Err(e) if e.code == "PriorityInUse" && rule.priority.is_none() => continue,
            Err(e) if e.code == "PriorityInUse" => return Ok(Err(priority_conflict(priority))),
            Err(e) => return Err(e),
        }
    }
    Ok(Err(Blocked {
        reason: "PriorityConflict",
        message: "listener priorities kept changing under us; retrying later".into(),
    }))
}

/// Whether an existing resource with our name may be used. `IfTagged`: it carries our owner tags.
/// `Never`: only the one this object already records in status (created by it), never one found.
fn adoptable(spec: &crate::api::fargate_app::FargateAppSpec, owned: bool, recorded: Option<&str>, arn: &str) -> bool {
    match spec.policy.adoption {
        AdoptionPolicy::IfTagged => owned,
        AdoptionPolicy::Never => owned && recorded == Some(arn),
    }
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

fn priority_conflict(p: i32) -> Blocked {
    Blocked {
        reason: "PriorityConflict",
        message: format!(
            "listener rule priority {p} is taken by a rule this object does not own; choose another spec.loadBalancer.listenerRule.priority or omit it"
        ),
    }
}

fn no_free_priority(min: i32, max: i32) -> Blocked {
    Blocked {
        reason: "PriorityConflict",
        message: format!("no free listener rule priority in spec.loadBalancer.listenerRule.priorityRange {min}..{max}"),
    }
}

/// The revision to run: the service's when its hash matches, else the newest revision of the family
/// carrying the hash (registered before a crash), else None (register).
async fn find_revision(
    aws: &FargateAws,
    status: &FargateAppStatus,
    service: Option<&plan::ObservedService>,
    family: &str,
    hash: &str,
) -> Result<Option<String>, AwsError> {
    if let Some(s) = service {
        // Converged: status already says which revision carries this hash; no AWS call.
        if status.task_definition_hash.as_deref() == Some(hash)
            && status.task_definition_arn.as_deref() == Some(&s.task_definition)
        {
            return Ok(Some(s.task_definition.clone()));
        }
        if aws.task_definition_hash(&s.task_definition).await?.as_deref() == Some(hash) {
            return Ok(Some(s.task_definition.clone()));
        }
    }
    for arn in aws.revisions(family).await?.into_iter().take(3) {
        if aws.task_definition_hash(&arn).await?.as_deref() == Some(hash) {
            return Ok(Some(arn));
        }
    }
    Ok(None)
}

async fn prune_revisions(aws: &FargateAws, family: &str, current: &str, keep: i32) -> Result<(), AwsError> {
    let revisions = aws.revisions(family).await?;
    for arn in revisions.iter().skip(keep.max(1) as usize) {
        if arn != current {
            aws.deregister(arn).await?;
        }
    }
    Ok(())
}

fn deployment(
    spec: &crate::api::fargate_app::FargateAppSpec,
) -> Result<aws_sdk_ecs::types::DeploymentConfiguration, AwsError> {
    use aws_sdk_ecs::types::{DeploymentCircuitBreaker, DeploymentConfiguration};
    let d = &spec.deployment;
    let breaker = DeploymentCircuitBreaker::builder()
        .enable(d.circuit_breaker.enable)
        .rollback(d.circuit_breaker.rollback)
        .build();
    Ok(DeploymentConfiguration::builder()
        .minimum_healthy_percent(d.minimum_healthy_percent)
        .maximum_percent(d.maximum_percent)
        .deployment_circuit_breaker(breaker)
        .build())
}

fn load_balancers(
    spec: &crate::api::fargate_app::FargateAppSpec,
    tg_arn: Option<&str>,
) -> Vec<aws_sdk_ecs::types::LoadBalancer> {
    plan::desired_load_balancers(spec, tg_arn)
        .into_iter()
        .map(|(tg, container, port)| {
            aws_sdk_ecs::types::LoadBalancer::builder()
                .target_group_arn(tg)
                .container_name(container)
                .container_port(port)
                .build()
        })
        .collect()
}

async fn create_service(
    aws: &FargateAws,
    obj: &FargateApp,
    names: &Names,
    td_arn: &str,
    tg_arn: Option<&str>,
    tags: &BTreeMap<String, String>,
) -> Result<String, AwsError> {
    use aws_sdk_ecs::types::{LaunchType, PropagateTags, Tag};
    let spec = &obj.spec;
    let lbs = load_balancers(spec, tg_arn);
    let grace = (!lbs.is_empty()).then(|| spec.deployment.health_check_grace_period_seconds.unwrap_or(0));
    let token = idempotency_token(&aws.owner.uid, "create-service", 36);
    let tags: Vec<Tag> = tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect();
    let (net, dep) = (crate::aws::ecs_network::awsvpc(&spec.network)?, deployment(spec)?);
    let resp = aws
        .caller
        .call_create(Service::Ecs, "CreateService", || {
            aws.ecs
                .create_service()
                .cluster(&spec.cluster)
                .service_name(&names.family)
                .task_definition(td_arn)
                .desired_count(spec.replicas)
                .launch_type(LaunchType::Fargate)
                .network_configuration(net.clone())
                .deployment_configuration(dep.clone())
                .set_load_balancers(Some(lbs.clone()))
                .set_health_check_grace_period_seconds(grace)
                .client_token(&token)
                .propagate_tags(PropagateTags::Service)
                .enable_ecs_managed_tags(true)
                .set_tags(Some(tags.clone()))
                .send()
        })
        .await?;
    Ok(resp.service().and_then(|s| s.service_arn()).unwrap_or_default().to_string())
}

async fn update_service(
    aws: &FargateAws,
    obj: &FargateApp,
    names: &Names,
    u: &plan::ServiceUpdate,
    tg_arn: Option<&str>,
) -> Result<(), AwsError> {
    let spec = &obj.spec;
    let net = if u.network { Some(crate::aws::ecs_network::awsvpc(&spec.network)?) } else { None };
    let dep = if u.deployment { Some(deployment(spec)?) } else { None };
    let lbs = if u.load_balancers { Some(load_balancers(spec, tg_arn)) } else { None };
    let grace = u.grace_period.then(|| spec.deployment.health_check_grace_period_seconds.unwrap_or(0));
    aws.caller
        .call(Service::Ecs, "UpdateService", || {
            aws.ecs
                .update_service()
                .cluster(&spec.cluster)
                .service(&names.family)
                .set_task_definition(u.task_definition.clone())
                .set_desired_count(u.desired)
                .set_network_configuration(net.clone())
                .set_deployment_configuration(dep.clone())
                .set_load_balancers(lbs.clone())
                .set_health_check_grace_period_seconds(grace)
                .force_new_deployment(u.force_new_deployment)
                .send()
        })
        .await?;
    Ok(())
}

fn record_set(dns: &crate::api::fargate_app::DnsSpec, info: &ListenerInfo) -> Result<r53::ResourceRecordSet, AwsError> {
    let name = format!("{}.", dns.name.trim_end_matches('.'));
    match dns.record_type {
        DnsRecordType::Alias => r53::ResourceRecordSet::builder()
            .name(name)
            .r#type(r53::RrType::A)
            .alias_target(
                r53::AliasTarget::builder()
                    .hosted_zone_id(&info.canonical_zone_id)
                    .dns_name(&info.dns_name)
                    .evaluate_target_health(true)
                    .build()
                    .map_err(build_error)?,
            )
            .build()
            .map_err(build_error),
        DnsRecordType::CNAME => r53::ResourceRecordSet::builder()
            .name(name)
            .r#type(r53::RrType::Cname)
            .ttl(dns.ttl)
            .resource_records(r53::ResourceRecord::builder().value(&info.dns_name).build().map_err(build_error)?)
            .build()
            .map_err(build_error),
    }
}

fn same_target(a: &str, b: &str) -> bool {
    let norm = |s: &str| crate::api::validation::normalize_dns_name(s).trim_start_matches("dualstack.").to_string();
    norm(a) == norm(b)
}

async fn ensure_dns(
    aws: &FargateAws,
    dns: &crate::api::fargate_app::DnsSpec,
    info: &ListenerInfo,
    status: &FargateAppStatus,
) -> Result<Result<(), Blocked>, AwsError> {
    let zone = crate::api::validation::normalize_zone_id(&dns.hosted_zone_id);
    let rtype = match dns.record_type {
        DnsRecordType::Alias => r53::RrType::A,
        DnsRecordType::CNAME => r53::RrType::Cname,
    };
    match aws.record(zone, &dns.name, rtype).await? {
        Some(current) if same_target(&current, &info.dns_name) => return Ok(Ok(())),
        // Ours from before (the load balancer changed): safe to rewrite. Anything else is not ours.
        Some(current) if status.load_balancer_dns_name.as_deref().is_none_or(|prev| !same_target(&current, prev)) => {
            return Ok(Err(Blocked {
                reason: crate::runtime::conditions::REASON_NAME_CONFLICT,
                message: format!(
                    "{} already points at {current}, not written by this object; it is left untouched",
                    dns.name
                ),
            }));
        }
        _ => {}
    }
    aws.change_record(zone, r53::ChangeAction::Upsert, record_set(dns, info)?).await?;
    Ok(Ok(()))
}

/// Delete in the order of API.md: listener rule -> DNS record -> service -> target group -> revisions.
async fn cleanup(api: &Api<FargateApp>, obj: Arc<FargateApp>, ctx: &Context) -> Result<Action, ReconcileError> {
    if obj.spec.policy.deletion == DeletionPolicy::Retain {
        ctx.events
            .normal(obj.as_ref(), "Retained", "Delete", "deletion policy Retain: AWS resources left in place".into())
            .await;
        return Ok(Action::await_change());
    }
    let aws = clients(ctx, &obj).await?;
    match delete_all(&obj, &aws).await {
        Ok(()) => {
            ctx.passes.forget(&ObjectRef::from_obj(obj.as_ref()).to_string());
            ctx.events
                .normal(obj.as_ref(), "Deleted", "Delete", "every AWS resource of this app is deleted".into())
                .await;
            Ok(Action::await_change())
        }
        Err(err) => {
            let mut status = obj.status.clone().unwrap_or_default();
            let msg = format!("waiting to delete: {err}");
            conditions::set_condition(
                status.conditions_mut(),
                DELETION_BLOCKED,
                true,
                err.category.reason(),
                &msg,
                obj.meta().generation,
            );
            set_last_error(&mut status.last_error, &err.operation_path(), &err.code, &err.message);
            write_status(api, &obj, &status, ctx).await?;
            Err(ReconcileError::Aws(err))
        }
    }
}

async fn delete_all(obj: &FargateApp, aws: &FargateAws) -> Result<(), AwsError> {
    let spec = &obj.spec;
    let names = Names::new(&obj.namespace().unwrap_or_default(), &obj.name_any());
    let listener = match spec.load_balancer.as_ref().and_then(|lb| lb.listener_rule.as_ref()) {
        Some(rule) => {
            match aws.listener(&rule.listener_arn).await {
                Ok(info) => {
                    for r in aws.rules(&rule.listener_arn).await?.into_iter().filter(|r| r.ours) {
                        aws.delete_rule(&r.arn).await?;
                    }
                    Some(info)
                }
                // The listener is gone, and with it our rule.
                Err(e) if e.is_not_found() => None,
                Err(e) => return Err(e),
            }
        }
        None => None,
    };
    if let (Some(dns), Some(info)) = (&spec.dns, &listener) {
        let zone = crate::api::validation::normalize_zone_id(&dns.hosted_zone_id);
        let rtype = match dns.record_type {
            DnsRecordType::Alias => r53::RrType::A,
            DnsRecordType::CNAME => r53::RrType::Cname,
        };
        match aws.record(zone, &dns.name, rtype).await {
            Ok(Some(current)) if same_target(&current, &info.dns_name) => {
                aws.change_record(zone, r53::ChangeAction::Delete, record_set(dns, info)?).await?;
            }
            Ok(_) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    match aws.service(&spec.cluster, &names.family).await {
        Ok(Some(s)) if s.ours => {
            aws.delete_service(&spec.cluster, &names.family).await?;
            // The target group cannot go while the service still drains its tasks from it.
            if let Some(after) = aws.service(&spec.cluster, &names.family).await?
                && after.status != "INACTIVE"
            {
                return Err(AwsError {
                    service: "ecs",
                    operation: "DeleteService",
                    category: ErrorCategory::Conflict,
                    code: "ServiceDraining".into(),
                    message: format!(
                        "service {} is {}; its target group and revisions go once it is INACTIVE",
                        names.family, after.status
                    ),
                });
            }
        }
        Ok(_) => {}
        Err(e) if e.is_not_found() || e.code == "ClusterNotFoundException" => {}
        Err(e) => return Err(e),
    }
    if spec.load_balancer.is_some()
        && let Some((tg, true)) = aws.target_group(&names.target_group, false, None).await?
    {
        aws.delete_target_group(&tg.arn).await?;
    }
    for arn in aws.revisions(&names.family).await? {
        aws.deregister(&arn).await?;
    }
    Ok(())
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

    #[test]
    fn alias_targets_compare_without_case_dot_or_dualstack() {
        assert!(same_target("dualstack.Shared-1.us-east-1.elb.amazonaws.com.", "shared-1.us-east-1.elb.amazonaws.com"));
        assert!(!same_target("a.elb.amazonaws.com", "b.elb.amazonaws.com"));
    }
}
