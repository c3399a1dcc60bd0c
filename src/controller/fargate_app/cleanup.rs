//! Deleting what a FargateApp made: everything on deletion (the finalizer), from the inventory in
//! `status.resources`, in the order listener rules → records → services → target groups → task
//! definition revisions, touching only objects that still carry our marks; and the checks before a
//! pass's delete step (a service or target group the edit no longer wants). Deletion also looks for
//! what a crash may have left unrecorded under the names this object derives (found by owner tags
//! only), and what a planned create made ([`made_by`], which a pass's observe uses too). A parent
//! that is gone (listener, zone, cluster) took its children with it.

use std::sync::Arc;

use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};

use super::aws::FargateAws;
use super::inventory::{self, LISTENER_RULE, SERVICE, TARGET_GROUP, TASK_DEFINITION_FAMILY};
use super::{Names, dns, service};
use crate::api::fargate_app::{FargateApp, FargateAppStatus};
use crate::api::{DeletionPolicy, OwnedResource};
use crate::aws::{AwsError, ErrorCategory};
use crate::controller::{ReconcileError, record_deletion_blocked, write_status};
use crate::runtime::Context;

/// Planned creates become entries for what they made, if anything, found by name and our tags, so
/// what was made is deleted like any other entry.
async fn settle_planned(aws: &FargateAws, resources: &mut Vec<OwnedResource>) -> Result<(), AwsError> {
    let planned: Vec<OwnedResource> = resources.iter().filter(|r| inventory::is_planned(r)).cloned().collect();
    for entry in planned {
        for made in made_by(aws, &entry).await? {
            inventory::add(resources, made);
        }
        inventory::remove(resources, &entry.type_, &entry.id);
    }
    Ok(())
}

/// The entries for what the planned create `entry` made, if anything (its answer was lost, then
/// the spec moved on: the load balancer removed, the listener or the cluster changed), found by
/// name and our tags. A parent that is gone (listener, cluster) took it with it.
pub async fn made_by(aws: &FargateAws, entry: &OwnedResource) -> Result<Vec<OwnedResource>, AwsError> {
    let key = inventory::planned_key(entry).unwrap_or_default();
    Ok(match entry.type_.as_str() {
        TARGET_GROUP => match aws.target_group(key, false, None).await? {
            Some((tg, true)) => vec![inventory::target_group(&tg.arn)],
            _ => Vec::new(),
        },
        LISTENER_RULE => match aws.rules(key).await {
            Ok(rules) => rules.into_iter().filter(|r| r.ours).map(|r| inventory::listener_rule(&r.arn, key)).collect(),
            Err(e) if e.is_not_found() => Vec::new(),
            Err(e) => return Err(e),
        },
        SERVICE => match key.rsplit_once('/') {
            Some((cluster, name)) => match aws.service(cluster, name).await {
                Ok(Some(s)) if s.ours && s.status != "INACTIVE" => vec![inventory::service(&s.arn, cluster)],
                Ok(_) => Vec::new(),
                Err(e) if e.is_not_found() => Vec::new(),
                Err(e) => return Err(e),
            },
            None => Vec::new(),
        },
        _ => Vec::new(),
    })
}

/// Delete listener rule entries now (before a rule is made on another load balancer).
pub async fn remove_rules(
    aws: &FargateAws,
    resources: &mut Vec<OwnedResource>,
    rules: &[OwnedResource],
) -> Result<(), AwsError> {
    for entry in rules {
        aws.delete_rule(&entry.id).await?;
        inventory::remove(resources, LISTENER_RULE, &entry.id);
    }
    Ok(())
}

/// Delete the target group `arn` if it still carries our owner tags.
pub async fn delete_target_group(aws: &FargateAws, arn: &str) -> Result<(), AwsError> {
    if aws.target_group_is_ours(arn).await? == Some(true) {
        aws.delete_target_group(arn).await?;
    }
    Ok(())
}

/// The cluster and name of a service entry.
fn service_of(entry: &OwnedResource) -> (&str, &str) {
    (entry.parent.as_deref().unwrap_or_default(), inventory::service_name(&entry.id))
}

/// Delete the service an entry names, if it is still the one we recorded and ours.
pub async fn delete_service(aws: &FargateAws, entry: &OwnedResource) -> Result<(), AwsError> {
    let (cluster, name) = service_of(entry);
    match aws.service(cluster, name).await {
        Ok(Some(s)) if s.ours && s.arn == entry.id && s.status == "ACTIVE" => aws.delete_service(cluster, name).await,
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(e),
    }
}

/// Whether the service an entry names is gone or INACTIVE, or no longer ours to wait for (another
/// service by now, or its owner tags were taken off: never deleted, and never waited for).
pub async fn service_gone(aws: &FargateAws, entry: &OwnedResource) -> Result<bool, AwsError> {
    let (cluster, name) = service_of(entry);
    match aws.service(cluster, name).await {
        Ok(Some(s)) => Ok(s.arn != entry.id || s.status == "INACTIVE" || !s.ours),
        Ok(None) => Ok(true),
        Err(e) if e.is_not_found() => Ok(true),
        Err(e) => Err(e),
    }
}

/// The finalizer's work: delete everything, or leave it with `deletion: Retain`.
pub async fn cleanup(api: &Api<FargateApp>, obj: Arc<FargateApp>, ctx: &Context) -> Result<Action, ReconcileError> {
    let key = ObjectRef::from_obj(obj.as_ref()).to_string();
    if obj.spec.policy.deletion == DeletionPolicy::Retain {
        // What this process remembers of the object goes with it, as after a deletion.
        ctx.passes.forget(&key);
        ctx.absences.forget(&key);
        ctx.events
            .normal(obj.as_ref(), "Retained", "Delete", "deletion policy Retain: AWS resources left in place".into())
            .await;
        return Ok(Action::await_change());
    }
    let aws = super::clients(ctx, &obj).await?;
    let mut status = obj.status.clone().unwrap_or_default();
    let grace = crate::runtime::absences::grace(ctx.config.retry().longest_call());
    let confirmed = |entry: &OwnedResource| ctx.absences.confirmed(&key, &entry.id, grace);
    match delete_all(&obj, &aws, &mut status, &confirmed).await {
        Ok(()) => {
            ctx.passes.forget(&key);
            ctx.absences.forget(&key);
            ctx.events
                .normal(obj.as_ref(), "Deleted", "Delete", "every AWS resource of this app is deleted".into())
                .await;
            Ok(Action::await_change())
        }
        Err(err) => {
            record_deletion_blocked(&mut status, &err, obj.meta().generation);
            write_status(api, &obj, &status, ctx).await?;
            Err(ReconcileError::Aws(err))
        }
    }
}

/// Delete every AWS object of the app. The inventory shrinks as objects go, so a deletion that
/// stops half-way (a service still draining) resumes where it stopped.
async fn delete_all(
    obj: &FargateApp,
    aws: &FargateAws,
    status: &mut FargateAppStatus,
    confirmed: &(dyn Fn(&OwnedResource) -> Result<(), std::time::Duration> + Sync),
) -> Result<(), AwsError> {
    let spec = &obj.spec;
    let names = Names::new(&obj.namespace().unwrap_or_default(), &obj.name_any());
    inventory::seed_from_status(spec, status);
    let resources = &mut status.resources;

    // What a crash may have left unrecorded: our rule on the spec's listener (found by our tags).
    // A record is always recorded before it is written, so none is searched for.
    if let Some(rule) = spec.load_balancer.as_ref().and_then(|lb| lb.listener_rule.as_ref()) {
        // The listener may be cached by this process and deleted since: the rules read says so.
        let rules = match aws.listener(&rule.listener_arn).await {
            Ok(_) => aws.rules(&rule.listener_arn).await,
            Err(e) => Err(e),
        };
        match rules {
            Ok(rules) => {
                for r in rules.into_iter().filter(|r| r.ours) {
                    inventory::add(resources, inventory::listener_rule(&r.arn, &rule.listener_arn));
                }
            }
            // The listener is gone, and with it every rule on it.
            Err(e) if e.is_not_found() => aws.facts.forget_listener(&rule.listener_arn),
            Err(e) => return Err(e),
        }
    }
    // A failed read is the deletion's error, not "no service": skipping it could let the deletion
    // finish with the service running.
    match aws.service(&spec.cluster, &names.family).await {
        Ok(Some(s)) if s.ours && s.status == "ACTIVE" => {
            inventory::add(resources, inventory::service(&s.arn, &spec.cluster));
        }
        Ok(_) => {}
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e),
    }
    if let Some((tg, true)) = aws.target_group(&names.target_group, false, None).await? {
        inventory::add(resources, inventory::target_group(&tg.arn));
    }
    inventory::add(resources, inventory::family(&names.family));
    // A planned create's object, if it was made, becomes an entry like any other.
    settle_planned(aws, resources).await?;

    // Rules, records, then services: a target group goes once nothing forwards to it.
    let rules: Vec<OwnedResource> = resources.iter().filter(|r| r.type_ == LISTENER_RULE).cloned().collect();
    remove_rules(aws, resources, &rules).await?;
    dns::delete_recorded(aws, resources, confirmed).await?;
    let services: Vec<OwnedResource> = resources.iter().filter(|r| r.type_ == SERVICE).cloned().collect();
    for entry in &services {
        delete_service(aws, entry).await?;
    }
    for entry in &services {
        if !service_gone(aws, entry).await? {
            let (_, name) = service_of(entry);
            return Err(AwsError {
                service: "ecs",
                operation: "DeleteService",
                category: ErrorCategory::Conflict,
                code: "ServiceDraining".into(),
                message: format!("service {name} is draining; its target group and revisions go once it is INACTIVE"),
            });
        }
        inventory::remove(resources, SERVICE, &entry.id);
    }
    let groups: Vec<OwnedResource> = resources.iter().filter(|r| r.type_ == TARGET_GROUP).cloned().collect();
    for entry in groups {
        delete_target_group(aws, &entry.id).await?;
        inventory::remove(resources, TARGET_GROUP, &entry.id);
    }
    let families: Vec<OwnedResource> =
        resources.iter().filter(|r| r.type_ == TASK_DEFINITION_FAMILY).cloned().collect();
    for entry in families {
        for arn in aws.revisions(&entry.id).await? {
            service::deregister_if_ours(aws, &arn).await?;
        }
        inventory::remove(resources, TASK_DEFINITION_FAMILY, &entry.id);
    }
    Ok(())
}
