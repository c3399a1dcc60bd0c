//! Deleting a DnsFailover: the records and health checks its inventory lists (a planned create
//! whose answer never came is found by its CallerReference, which is used up so that a create
//! still on its way cannot make a check later), the pair at the spec's name (our set
//! identifiers), and the delegation's NS record while its values are still the zone's own name
//! servers. Checks go last: Route 53 refuses to delete one a record still uses.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_route53::types as r53;
use kube::Resource;
use kube::api::Api;
use kube::runtime::controller::Action;

use super::aws::FailoverAws;
use super::steps::{SIDES, set_identifier, wanted_checks};
use super::{clients, inventory};
use crate::api::DeletionPolicy;
use crate::api::dns_failover::{DnsFailover, DnsFailoverSpec};
use crate::api::validation::normalize_zone_id;
use crate::aws::AwsError;
use crate::aws::errors::build_error;
use crate::aws::route53_batch::Urgency;
use crate::controller::{ReconcileError, record_deletion_blocked, write_status};
use crate::runtime::Context;
use crate::runtime::absences::Absences;

pub(super) async fn cleanup(
    api: &Api<DnsFailover>,
    obj: Arc<DnsFailover>,
    ctx: &Context,
) -> Result<Action, ReconcileError> {
    ctx.health.forget(&obj);
    let key = kube::runtime::reflector::ObjectRef::from_obj(obj.as_ref()).to_string();
    ctx.failover_passes.forget(&key);
    ctx.caller.budgets().forget_held(&key);
    if obj.spec.policy.deletion == DeletionPolicy::Retain {
        ctx.absences.forget(&key);
        return Ok(Action::await_change());
    }
    // A create that settles a planned reference spends a turn the object still holds.
    let aws = clients(ctx, &obj, Some(&key)).await?;
    let grace = crate::runtime::absences::grace(ctx.config.retry().longest_call());
    match delete_all(&obj, &aws, (&ctx.absences, &key, grace)).await {
        Ok(()) => {
            ctx.absences.forget(&key);
            Ok(Action::await_change())
        }
        Err(err) => {
            let mut status = obj.status.clone().unwrap_or_default();
            record_deletion_blocked(&mut status, &err, obj.meta().generation);
            write_status(api, &obj, &status, ctx).await?;
            Err(ReconcileError::Aws(err))
        }
    }
}

/// Delete everything; a recorded record found absent whose absence is younger than its grace
/// (the object's `key` in `absences`, see [`crate::runtime::absences`]) fails the deletion with
/// `RecordNotSeenYet`, to look again once the grace has passed.
async fn delete_all(
    obj: &DnsFailover,
    aws: &FailoverAws,
    (absences, key, grace): (&Absences, &str, Duration),
) -> Result<(), AwsError> {
    let spec = &obj.spec;
    let zone = normalize_zone_id(&spec.hosted_zone_id).to_string();
    // First what the inventory lists (records of earlier names and zones, earlier checks); then
    // what the spec names, for objects from before the inventory and creates whose answer was lost.
    let resources = obj.status.as_ref().map(|s| s.resources.clone()).unwrap_or_default();
    // The inventory is read from the object each attempt (entries are not dropped one by one), so
    // the absences are confirmed together, and a record this process deleted needs no grace.
    let mut absent = Vec::new();
    for r in resources.iter().filter(|r| r.type_ == inventory::RECORD) {
        match inventory::delete_record(aws, r).await? {
            inventory::Deleted::NotThere => absent.push(r.id.clone()),
            inventory::Deleted::Done => absences.deleted(key, &r.id),
        }
    }
    let held = absences.all_confirmed(key, &absent, grace).err().map(|left| (absent.join(", "), left));
    let ours: Vec<String> = SIDES.iter().map(|s| set_identifier(&aws.owner.uid, s)).collect();
    match aws.records_at(&zone, &spec.name).await {
        Ok(existing) => {
            let changes = existing
                .into_iter()
                .filter(|r| r.set_identifier().is_some_and(|id| ours.iter().any(|o| o == id)))
                .map(|set| {
                    r53::Change::builder()
                        .action(r53::ChangeAction::Delete)
                        .resource_record_set(set)
                        .build()
                        .map_err(build_error)
                })
                .collect::<Result<Vec<_>, _>>()?;
            if !changes.is_empty() {
                aws.change(&zone, changes, Urgency::Prompt).await?;
            }
        }
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e),
    }
    // Before the checks: a record of ours that lands late may use one.
    if let Some((id, left)) = held {
        return Err(crate::runtime::absences::record_not_seen_yet(&id, left));
    }
    // The spec's delegation only for an object from before the inventory that reported one in
    // status (a delegation is now always recorded before it is written): otherwise one whose
    // delegation was refused because another object manages it (`DelegationInUse`), or one deleted
    // before its first pass, would un-delegate the zone for that object.
    let legacy = resources.is_empty() && obj.status.as_ref().is_some_and(|s| s.delegation.is_some());
    if let Some(delegation) = spec.delegation.as_ref().filter(|_| legacy) {
        let parent = normalize_zone_id(&delegation.parent_hosted_zone_id).to_string();
        let zone_facts = match aws.zone(&zone).await {
            Ok(z) => Some(z),
            // The zone is gone: its delegation cannot be told apart from anyone else's; leave it.
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e),
        };
        // Only our delegation: the NS values must be the zone's own name servers.
        if let Some((zone_name, _)) = zone_facts {
            inventory::delete_record(aws, &inventory::delegation(&parent, &zone_name, &zone)).await?;
        }
    }
    let mut ids: Vec<String> = obj
        .status
        .as_ref()
        .and_then(|s| s.health_checks.as_ref())
        .map(|h| vec![h.primary.id.clone(), h.secondary.id.clone()])
        .unwrap_or_default();
    // Checks go last: Route 53 refuses to delete one a record still uses. A planned create whose
    // answer never came is found by its reference.
    ids.extend(
        resources
            .iter()
            .filter(|r| r.type_ == inventory::HEALTH_CHECK && !inventory::is_planned(r))
            .map(|r| r.id.clone()),
    );
    for r in resources.iter().filter(|r| inventory::is_planned(r)) {
        if let Some(reference) = &r.name {
            ids.extend(settle_reference(aws, spec, reference).await?);
        }
    }
    ids.sort();
    ids.dedup();
    for id in ids.into_iter().filter(|i| !i.is_empty()) {
        aws.delete_health_check(&id).await?;
    }
    Ok(())
}

/// The check a planned create with `reference` made, if any, such that no check with it can
/// appear later. Not finding it is not enough: the create may still be on its way (another
/// replica's pass, or a request whose client gave up, that AWS executes after the deletion
/// finished, leaking a check no inventory names; found by the simulator with two replicas). So
/// the reference is used up here: created with the spec's primary settings, it gives a check to
/// delete now, and the late create then gets `HealthCheckAlreadyExists` (Route 53 refuses a
/// deleted check's reference whatever the settings) instead of making one. If the late create
/// landed first, with other settings, that error comes here and the check is found by reference.
async fn settle_reference(
    aws: &FailoverAws,
    spec: &DnsFailoverSpec,
    reference: &str,
) -> Result<Option<String>, AwsError> {
    if let Some(id) = aws.find_by_reference(reference).await? {
        return Ok(Some(id));
    }
    let [primary, _] = wanted_checks(spec);
    let Some(want) = primary else { return Ok(None) };
    match aws.create_health_check(reference, &want, &aws.owner.tags(&spec.tags)).await {
        Ok(id) => Ok(Some(id)),
        Err(e) if e.code == "HealthCheckAlreadyExists" => aws.find_by_reference(reference).await,
        // Route 53 refuses these settings: the planned create, made from the same spec, was (or
        // will be) refused too. Waiting on it would wedge the deletion.
        Err(e) if e.category == crate::aws::ErrorCategory::Terminal => Ok(None),
        Err(e) => Err(e),
    }
}
