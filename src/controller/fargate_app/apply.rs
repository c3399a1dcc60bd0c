//! Runs a FargateApp [`Plan`]'s steps in order against AWS, recording each result in the status as
//! it lands: a create recorded as planned (and written) before it is sent and as made once it
//! answers, an entry removed as its object goes (with a `Deleted` Event for an object the pass
//! started with), the `Created`, `TaskDefinitionRegistered` and `RolloutStarted` Events, and last
//! the readiness from what ECS and the target group report (also what a poll reports). What landed
//! before an error is kept in the status returned.

use kube::Resource;

use super::aws::FargateAws;
use super::inventory::{self, LISTENER_RULE, RECORD, SERVICE, TARGET_GROUP};
use super::plan::{ObservedService, readiness};
use super::steps::{Plan, Revision, Serving, Step, TargetGroupArn};
use super::{Names, cleanup, dns, rule, service};
use crate::api::OwnedResource;
use crate::api::fargate_app::{FargateApp, FargateAppStatus, ReplicaCounts, RolloutStatus};
use crate::aws::AwsError;
use crate::aws::errors::build_error;
use crate::aws::naming::idempotency_token;
use crate::controller::{Blocked, StatusWriter};
use crate::runtime::Context;
use crate::runtime::conditions::{self, PROGRESSING, READY};
use crate::runtime::passes::PassLog;
use crate::runtime::status::ObjectStatus;

/// How a pass (full or poll) ended, short of an AWS error.
pub enum Outcome {
    /// Everything matches the spec; `progressing`: a rollout is running (poll soon).
    Done { progressing: bool },
    /// A problem a human must fix.
    Blocked(Blocked),
}

/// What every step of one full pass works with.
#[derive(Clone, Copy)]
pub struct Pass<'a> {
    /// The object.
    pub obj: &'a FargateApp,
    /// Its AWS clients.
    pub aws: &'a FargateAws,
    /// The operator's context (Events).
    pub ctx: &'a Context,
    /// Mid-pass status writes (planned creates).
    pub writer: &'a StatusWriter<'a, FargateApp>,
    /// Its AWS names.
    pub names: &'a Names,
    /// Its key in the pass bookkeeping (`ctx.passes`).
    pub key: &'a str,
}

/// Run `plan` from `plan.status`. `before`: the inventory the pass started with (a `Deleted` Event
/// is for those entries). Returns the status reached (also after an error) and the outcome.
pub async fn apply(
    pass: &Pass<'_>,
    plan: Plan,
    before: &[OwnedResource],
) -> (FargateAppStatus, Result<Outcome, AwsError>) {
    let mut run = Run { pass: *pass, status: plan.status, before, target_group: None, revision: None, created: None };
    for step in plan.steps {
        match run.step(step).await {
            Ok(None) => {}
            Ok(Some(outcome)) => return (run.status, Ok(outcome)),
            Err(e) => return (run.status, Err(e)),
        }
    }
    // A plan that is not blocked ends with its Report, which returned above.
    (run.status, Ok(plan.blocked.map_or(Outcome::Done { progressing: false }, Outcome::Blocked)))
}

struct Run<'a> {
    pass: Pass<'a>,
    status: FargateAppStatus,
    before: &'a [OwnedResource],
    /// The ARN of the target group this pass created.
    target_group: Option<String>,
    /// The ARN of the revision this pass registered.
    revision: Option<String>,
    /// The service this pass created, as ECS reported it right after.
    created: Option<ObservedService>,
}

impl Run<'_> {
    /// Run one step; `Some` ends the pass.
    async fn step(&mut self, step: Step) -> Result<Option<Outcome>, AwsError> {
        let Pass { obj, aws, ctx, writer, names, key } = self.pass;
        let spec = &obj.spec;
        match step {
            Step::CreateTargetGroup(desired) => {
                let planned = inventory::planned(TARGET_GROUP, &desired.name);
                self.record_planned(&planned).await?;
                let arn = aws.create_target_group(&desired, &aws.owner.tags(&spec.tags)).await?;
                self.made(&planned, inventory::target_group(&arn));
                self.status.target_group_arn = Some(arn.clone());
                self.target_group = Some(arn);
                ctx.events.normal(obj, "Created", "CreateTargetGroup", format!("target group {}", desired.name)).await;
            }
            Step::ModifyTargetGroup { arn, want } => aws.modify_target_group(&arn, &want).await?,
            Step::SetDeregistrationDelay { target_group, seconds } => {
                aws.set_deregistration_delay(&self.target_group(&target_group)?, seconds).await?;
            }
            Step::DeleteRule(entry) => {
                aws.delete_rule(&entry.id).await?;
                self.forget(&entry).await;
            }
            Step::ModifyRule { arn, rule, forward } => {
                let tg = self.target_group(&forward)?;
                aws.modify_rule(&arn, &rule.path_patterns, &rule.host_headers, &tg).await?;
            }
            Step::SetRulePriority { arn, rule, priority, taken } => {
                match rule::set_priority(aws, &arn, &rule, priority, &taken).await? {
                    Ok(p) => self.status.listener_rule_priority = Some(p),
                    Err(blocked) => return Ok(Some(Outcome::Blocked(blocked))),
                }
            }
            Step::CreateRule { rule, priority, forward, taken, record } => {
                let (tg, tags) = (self.target_group(&forward)?, aws.owner.tags(&spec.tags));
                let planned = inventory::planned(LISTENER_RULE, &rule.listener_arn);
                if record {
                    self.record_planned(&planned).await?;
                }
                match rule::create(aws, &rule, priority, &taken, &tg, &tags).await? {
                    Ok((arn, p)) => {
                        self.made(&planned, inventory::listener_rule(&arn, &rule.listener_arn));
                        (self.status.listener_rule_arn, self.status.listener_rule_priority) = (Some(arn), Some(p));
                    }
                    Err(blocked) => return Ok(Some(Outcome::Blocked(blocked))),
                }
            }
            Step::RegisterTaskDefinition(rendered) => {
                let arn = aws.register_task_definition(&rendered, &aws.owner.tags(&spec.tags)).await?;
                ctx.events.normal(obj, "TaskDefinitionRegistered", "RegisterTaskDefinition", arn.clone()).await;
                self.status.task_definition_arn = Some(arn.clone());
                self.status.task_definition_hash = Some(rendered.content_hash());
                self.revision = Some(arn);
            }
            Step::CreateService { task_definition, target_group } => {
                let td = self.revision(&task_definition)?;
                let tg = target_group.map(|t| self.target_group(&t)).transpose()?;
                let planned = inventory::planned(SERVICE, &format!("{}/{}", spec.cluster, names.family));
                // The token: the one recorded with a create whose answer was lost (ECS answers with
                // the service it made), else a new one recorded before it is sent, so that moving
                // back to a cluster never repeats the token of a service deleted there since.
                let nonce = uuid::Uuid::new_v4().simple().to_string();
                let token = service_token(&self.status.resources, &planned, &aws.owner.uid, &spec.cluster, &nonce);
                let planned = OwnedResource { name: Some(token.clone()), ..planned };
                inventory::put(&mut self.status.resources, planned.clone());
                self.pass.writer.record_resources(&self.status.resources).await?;
                let tags = aws.owner.tags(&spec.tags);
                let created = service::create_service(aws, obj, names, &td, tg.as_deref(), &tags, &token).await?;
                ctx.events.normal(obj, "Created", "CreateService", format!("service {}", names.family)).await;
                self.status.restarted_at.clone_from(&spec.restarted_at);
                let arn = created.arn.clone();
                self.made(&planned, inventory::service(&arn, &spec.cluster));
                self.status.service_arn = Some(arn);
                // CreateService answers with the service as ECS made it: this pass reports that,
                // without reading it back.
                self.created = Some(aws.observed_service(created));
            }
            Step::UpdateService { mut update, task_definition, target_group } => {
                let td = self.revision(&task_definition)?;
                let tg = target_group.map(|t| self.target_group(&t)).transpose()?;
                if update.task_definition.is_some() {
                    update.task_definition = Some(td.clone());
                }
                service::update_service(aws, obj, names, &update, tg.as_deref()).await?;
                if update.task_definition.is_some() || update.force_new_deployment {
                    ctx.events.normal(obj, "RolloutStarted", "UpdateService", format!("rolling to {td}")).await;
                }
                self.status.restarted_at.clone_from(&spec.restarted_at);
            }
            Step::PruneRevisions => {
                let current = self.revision(&Revision::Registered)?;
                service::prune_revisions(aws, &names.family, &current, spec.keep_task_definition_revisions).await?;
            }
            Step::ForgetRecord(entry) => self.forget(&entry).await,
            Step::ChangeRecords { zone, deletes, upsert, zone_may_be_gone } => {
                let (mut put, mut upserts) = (None, Vec::new());
                if let Some(write) = upsert {
                    let entry = inventory::record(&write.dns, &write.listener.dns_name);
                    if let Some(planned) = write.record {
                        inventory::put(&mut self.status.resources, planned);
                    }
                    // Written before the record even when its entry is there already: the write is
                    // refused if the object changed since this pass read it, so a pass planned from
                    // a stale spec never writes a record the current one no longer wants (a second
                    // replica re-wrote one the first had just deleted after the `dns` block was
                    // removed, with no entry left to delete it: found by the simulator, seed 8).
                    writer.record_resources(&self.status.resources).await?;
                    upserts.push(dns::record_set(&write.dns, &write.listener)?);
                    if write.mark {
                        upserts.push(dns::mark_set(&write.dns.name, &aws.owner)?);
                    }
                    put = Some(entry);
                }
                let sets = deletes.iter().map(|(_, set)| set.clone()).collect();
                dns::send(aws, &zone, sets, upserts, zone_may_be_gone).await?;
                for (entry, _) in &deletes {
                    self.forget(entry).await;
                }
                if let Some(entry) = put {
                    inventory::put(&mut self.status.resources, entry.clone());
                    self.undo_if_unwanted(&zone, &entry).await?;
                }
            }
            Step::DeleteService(entry) => {
                cleanup::delete_service(aws, &entry).await?;
                // Kept until ECS reports it INACTIVE, so a later pass checks again.
                if cleanup::service_gone(aws, &entry).await? {
                    self.forget(&entry).await;
                }
            }
            Step::DeleteTargetGroup(entry) => {
                cleanup::delete_target_group(aws, &entry.id).await?;
                self.forget(&entry).await;
            }
            Step::Report { service, target_group, settled } => {
                settled.apply_to(&mut self.status);
                let svc = match service {
                    Serving::Observed(svc) => Some(*svc),
                    Serving::Created => self.created.take(),
                };
                let tg = target_group.map(|t| self.target_group(&t)).transpose()?;
                return Ok(Some(match svc {
                    Some(svc) => report(obj, aws, (&ctx.passes, key), &mut self.status, svc, tg.as_deref()).await?,
                    None => just_created(obj, &mut self.status),
                }));
            }
        }
        Ok(None)
    }

    /// The record of `entry` was just written, fenced before it was sent. When the object changed
    /// while the write was in flight (its budget wait, its retries), a pass planned from the newer
    /// spec may have deleted the record and dropped its entry before this write landed, leaving it
    /// with nothing to delete it. If the object as it is now no longer wants the record, this pass
    /// deletes it again (with its mark, when still ours) and drops the entry.
    async fn undo_if_unwanted(&mut self, zone: &str, entry: &OwnedResource) -> Result<(), AwsError> {
        let Some(latest) = self.pass.writer.changed_since_read().await? else { return Ok(()) };
        if inventory::wants_record(latest.as_ref(), &entry.id) {
            return Ok(());
        }
        if let Some((set, mark)) = dns::still_ours(self.pass.aws, entry).await? {
            dns::send(self.pass.aws, zone, dns::with_mark(set, mark), Vec::new(), true).await?;
        }
        self.forget(entry).await;
        Ok(())
    }

    fn target_group(&self, tg: &TargetGroupArn) -> Result<String, AwsError> {
        match tg {
            TargetGroupArn::Known(arn) => Ok(arn.clone()),
            // Steps run in order and stop at the first error: the create ran before this.
            TargetGroupArn::Created => {
                self.target_group.clone().ok_or_else(|| build_error("the target group was not created before its use"))
            }
        }
    }

    fn revision(&self, revision: &Revision) -> Result<String, AwsError> {
        match revision {
            Revision::Known(arn) => Ok(arn.clone()),
            Revision::Registered => self
                .revision
                .clone()
                .ok_or_else(|| build_error("the task definition was not registered before its use")),
        }
    }

    /// Record a create as planned in the inventory, and write it, before the create is sent.
    async fn record_planned(&mut self, planned: &OwnedResource) -> Result<(), AwsError> {
        inventory::add(&mut self.status.resources, planned.clone());
        self.pass.writer.record_resources(&self.status.resources).await
    }

    /// A planned create answered: its entry replaces the plan.
    fn made(&mut self, planned: &OwnedResource, entry: OwnedResource) {
        inventory::remove(&mut self.status.resources, &planned.type_, &planned.id);
        inventory::add(&mut self.status.resources, entry);
    }

    /// The object `entry` names is deleted, gone, or no longer ours: the entry goes.
    async fn forget(&mut self, entry: &OwnedResource) {
        inventory::remove(&mut self.status.resources, &entry.type_, &entry.id);
        let known = self.before.iter().any(|b| b.type_ == entry.type_ && b.id == entry.id);
        if !known || inventory::is_planned(entry) {
            return;
        }
        let message = format!(
            "{} {} is no longer wanted by the spec: deleted (or found gone, or no longer ours)",
            entry.type_, entry.id
        );
        // One action per kind of object: Events with the same reason and action are folded.
        let action = match entry.type_.as_str() {
            LISTENER_RULE => "DeleteRule",
            RECORD => "ChangeResourceRecordSets",
            SERVICE => "DeleteService",
            _ => "DeleteTargetGroup",
        };
        self.pass.ctx.events.normal(self.pass.obj, "Deleted", action, message).await;
    }
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

/// Replicas, rollout and readiness from what ECS and the target group report. Target health is
/// read only when it can decide readiness and ECS reports the service otherwise than when its
/// targets were last read healthy (and every few full passes): `(passes, key)` remembers that.
pub async fn report(
    obj: &FargateApp,
    aws: &FargateAws,
    (passes, key): (&PassLog, &str),
    status: &mut FargateAppStatus,
    svc: ObservedService,
    tg_arn: Option<&str>,
) -> Result<Outcome, AwsError> {
    let unhealthy = match tg_arn {
        Some(arn)
            if super::plan::reads_target_health(&svc)
                && super::plan::rereads_target_health(&svc, passes.healthy_as(key), passes.full_passes(key)) =>
        {
            let unhealthy = aws.unhealthy_targets(arn).await?;
            passes.set_healthy_as(key, (unhealthy == 0).then(|| super::plan::steady_fingerprint(&svc)));
            unhealthy
        }
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

/// The CreateService token for the `planned` create: the one recorded with it (a repeat after a
/// lost answer), else a new one from `nonce`.
fn service_token(
    resources: &[OwnedResource],
    planned: &OwnedResource,
    uid: &str,
    cluster: &str,
    nonce: &str,
) -> String {
    resources
        .iter()
        .find(|r| r.type_ == planned.type_ && r.id == planned.id)
        .and_then(|r| r.name.clone())
        .unwrap_or_else(|| idempotency_token(uid, &format!("create-service/{cluster}/{nonce}"), 36))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_create_repeats_its_recorded_token_and_a_new_one_never_repeats_an_old_one() {
        let planned = inventory::planned(SERVICE, "a/fa-ns-web");
        let first = service_token(&[], &planned, "uid", "a", "n1");
        assert!(first.len() <= 36, "{first}");
        let recorded = vec![OwnedResource { name: Some(first.clone()), ..planned.clone() }];
        assert_eq!(service_token(&recorded, &planned, "uid", "a", "n2"), first, "a lost answer is repeated as sent");
        // Back in cluster a after a move to b: a create with a new token, not the deleted service's.
        assert_ne!(service_token(&[], &planned, "uid", "a", "n3"), first);
        // A planned entry from before tokens were recorded gets a new one.
        assert_ne!(service_token(std::slice::from_ref(&planned), &planned, "uid", "a", "n4"), first);
    }
}
