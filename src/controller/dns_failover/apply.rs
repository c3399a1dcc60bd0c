//! Runs a DnsFailover [`Plan`]'s steps in order against Route 53, recording each result in the
//! status as it lands: a new health check's id (and the CallerReference it was made with, written
//! before the create is sent), the change the record pair went out in, what was deleted.

use aws_sdk_route53::types as r53;

use super::aws::FailoverAws;
use super::plan::{HealthCheckAction, HealthCheckConfig, health_check_action};
use super::steps::{CheckRef, PairRecord, Plan, Step, set_identifier, side_status, side_target};
use super::{inventory, late_writes};
use crate::api::OwnedResource;
use crate::api::dns_failover::{ChangeStatus, DelegationStatus, DnsFailoverSpec, DnsFailoverStatus, HealthState};
use crate::aws::AwsError;
use crate::aws::errors::build_error;
use crate::aws::route53_batch::Urgency;
use crate::controller::{Blocked, StatusWriter};
use crate::runtime::conditions::{self, PROGRESSING};
use crate::runtime::status::ObjectStatus;

/// Run `plan` from `plan.status`; returns the status reached (also when a step failed: what landed
/// is recorded) and the outcome.
pub async fn apply(
    aws: &FailoverAws,
    spec: &DnsFailoverSpec,
    plan: Plan,
    writer: &StatusWriter<'_, crate::api::dns_failover::DnsFailover>,
    generation: Option<i64>,
    absent_may_go: &(dyn Fn(&OwnedResource) -> bool + Sync),
) -> (DnsFailoverStatus, Result<Option<Blocked>, AwsError>) {
    let mut status = plan.status;
    let mut created: Vec<(&'static str, String)> = Vec::new();
    let upserts_delegation = plan.steps.iter().any(|s| matches!(s, Step::UpsertDelegation { .. }));
    if !upserts_delegation && let Some(delegated) = &plan.delegated {
        mark_delegated(&mut status, delegated, generation);
    }
    for step in plan.steps {
        let delegation = matches!(step, Step::UpsertDelegation { .. });
        if let Err(e) = run(aws, spec, step, &mut status, &mut created, writer, absent_may_go).await {
            return (status, Err(e));
        }
        // As soon as it lands: a later step that fails must not hide a delegation in place.
        if delegation && let Some(delegated) = &plan.delegated {
            mark_delegated(&mut status, delegated, generation);
        }
    }
    if let Some(blocked) = plan.blocked {
        return (status, Ok(Some(blocked)));
    }
    mark_change(&mut status, generation);
    status.active_target = Some(plan.active_target);
    (status, Ok(None))
}

/// `Progressing` while the last change is PENDING; returns whether it is.
pub fn mark_change(status: &mut DnsFailoverStatus, generation: Option<i64>) -> bool {
    let pending = status.change.as_ref().is_some_and(|c| c.status == "PENDING");
    conditions::set_condition(
        status.conditions_mut(),
        PROGRESSING,
        pending,
        if pending { "ChangePending" } else { "ChangeInSync" },
        if pending { "Route 53 is propagating the last change" } else { "the last Route 53 change is in sync" },
        generation,
    );
    pending
}

/// `DelegationReady`: the parent zone delegates the zone to its name servers.
fn mark_delegated(
    status: &mut DnsFailoverStatus,
    (zone_name, name_servers): &(String, Vec<String>),
    generation: Option<i64>,
) {
    status.delegation = Some(DelegationStatus { name_servers: name_servers.clone(), in_sync: true });
    conditions::set_condition(
        status.conditions_mut(),
        "DelegationReady",
        true,
        "Delegated",
        &format!("the parent zone delegates {} to its name servers", zone_name.trim_end_matches('.')),
        generation,
    );
}

async fn run(
    aws: &FailoverAws,
    spec: &DnsFailoverSpec,
    step: Step,
    status: &mut DnsFailoverStatus,
    created: &mut Vec<(&'static str, String)>,
    writer: &StatusWriter<'_, crate::api::dns_failover::DnsFailover>,
    absent_may_go: &(dyn Fn(&OwnedResource) -> bool + Sync),
) -> Result<(), AwsError> {
    match step {
        Step::UpdateCheck { id, want, .. } => aws.update_health_check(&id, &want).await,
        Step::CreateCheck { side, reference, new, want } => {
            if new {
                inventory::plan_create(&mut status.resources, &reference);
                writer.record_resources(&status.resources).await?;
            }
            let id = create(aws, status, &reference, &want).await?;
            inventory::add(&mut status.resources, inventory::health_check(&id, Some(&reference)));
            let entry = side_status(status, side);
            if entry.id != id {
                // A new check has no reading yet: Unknown, so the poller reads it first.
                entry.status = HealthState::Unknown;
            }
            entry.id.clone_from(&id);
            created.push((side, id));
            Ok(())
        }
        Step::UpsertPair { zone, records } => {
            // The plan listed the pair in the inventory; it is written before the change is sent
            // (a no-op when already there). Otherwise a crash later in this pass (its status
            // write never made) left the records in a zone the spec no longer names, with no
            // inventory entry to delete them by (found by the simulator: a zone move, then a kill).
            writer.record_resources(&status.resources).await?;
            let changes = records
                .iter()
                .map(|p| pair_record(spec, &aws.owner.uid, p, created))
                .map(|set| upsert(set?))
                .collect::<Result<Vec<_>, _>>()?;
            // An object's first pair (no change made yet) waits for other new objects of the zone.
            let urgency = if status.change.is_none() { Urgency::Patient } else { Urgency::Prompt };
            if let Some((id, state)) = aws.change(&zone, changes, urgency).await? {
                status.change = Some(ChangeStatus { id, status: state });
            }
            let (uid, written) = (&aws.owner.uid, late_writes::pair_ids(spec, &aws.owner.uid));
            late_writes::undo_if_unwanted(aws, writer, status, &written, |latest| {
                late_writes::wants_pair(latest, uid, &written)
            })
            .await
        }
        Step::UpsertDelegation { parent, zone_name, name_servers, ttl } => {
            // Recorded before it is sent, as the pair is.
            writer.record_resources(&status.resources).await?;
            let set = r53::ResourceRecordSet::builder()
                .name(&zone_name)
                .r#type(r53::RrType::Ns)
                .ttl(ttl)
                .set_resource_records(Some(
                    name_servers
                        .iter()
                        .map(|n| r53::ResourceRecord::builder().value(format!("{n}.")).build().map_err(build_error))
                        .collect::<Result<Vec<_>, _>>()?,
                ))
                .build()
                .map_err(build_error)?;
            let mark = crate::controller::record_mark::mark_set(&zone_name, &aws.owner)?;
            aws.change(&parent, vec![upsert(set)?, upsert(mark)?], Urgency::Prompt).await?;
            let written = [inventory::record_id(&parent, &zone_name, "NS", None)];
            late_writes::undo_if_unwanted(aws, writer, status, &written, |latest| {
                late_writes::wants_delegation(latest, &aws.owner.uid, spec, &parent)
            })
            .await
        }
        Step::DeleteRecord(entry) => {
            let gone = match inventory::delete_record(aws, &entry).await? {
                inventory::Deleted::Done => true,
                // Kept through a grace period otherwise: the next full pass looks again.
                inventory::Deleted::NotThere => absent_may_go(&entry),
            };
            if gone {
                inventory::remove(&mut status.resources, inventory::RECORD, &entry.id);
            }
            Ok(())
        }
        Step::DeleteCheck(id) => {
            aws.delete_health_check(&id).await?;
            inventory::remove(&mut status.resources, inventory::HEALTH_CHECK, &id);
            Ok(())
        }
        Step::DeleteByReference(reference) => {
            if let Some(id) = aws.find_by_reference(&reference).await? {
                aws.delete_health_check(&id).await?;
            }
            inventory::unplan(&mut status.resources, &reference);
            Ok(())
        }
        Step::FollowChange => {
            if let Some(change) = status.change.as_mut()
                && change.status == "PENDING"
                && let Some(now) = aws.change_status(&change.id).await?
            {
                change.status = now;
            }
            Ok(())
        }
    }
}

/// Create a check with its planned reference, repeated as it is after a lost answer (Route 53
/// then returns the check it made).
async fn create(
    aws: &FailoverAws,
    status: &mut DnsFailoverStatus,
    reference: &str,
    want: &HealthCheckConfig,
) -> Result<String, AwsError> {
    let tags = aws.owner.tags(&Default::default());
    let id = match aws.create_health_check(reference, want, &tags).await {
        Ok(id) => id,
        // The reference with other settings (the mode changed after a lost answer), or a deleted
        // check's: find the check by its reference; with none, the next pass plans a new one.
        Err(e) if e.code == "HealthCheckAlreadyExists" => match aws.find_by_reference(reference).await? {
            Some(found) => {
                if let Some(have) = aws.health_check(&found).await?
                    && health_check_action(want, &have) == HealthCheckAction::Update
                {
                    aws.update_health_check(&found, want).await?;
                }
                aws.tag_health_check(&found, &tags).await?;
                found
            }
            None => {
                inventory::unplan(&mut status.resources, reference);
                return Err(e);
            }
        },
        Err(e) => return Err(e),
    };
    inventory::unplan(&mut status.resources, reference);
    Ok(id)
}

/// The side's record set, naming the check it has now.
fn pair_record(
    spec: &DnsFailoverSpec,
    uid: &str,
    p: &PairRecord,
    created: &[(&'static str, String)],
) -> Result<r53::ResourceRecordSet, AwsError> {
    let check = match &p.check {
        CheckRef::None => None,
        CheckRef::Id(id) => Some(id.clone()),
        // Steps run in order and stop at the first error: the create ran before this.
        CheckRef::Created(side) => match created.iter().find(|(s, _)| s == side) {
            Some((_, id)) => Some(id.clone()),
            None => {
                return Err(build_error(format!("the {side} health check was not created before the record pair")));
            }
        },
    };
    let (target, failover) = side_target(spec, p.side);
    r53::ResourceRecordSet::builder()
        .name(format!("{}.", spec.name.trim_end_matches('.')))
        .r#type(r53::RrType::Cname)
        .ttl(spec.ttl)
        .set_identifier(set_identifier(uid, p.side))
        .failover(failover)
        .set_health_check_id(check.filter(|c| !c.is_empty()))
        .resource_records(
            r53::ResourceRecord::builder().value(target.trim_end_matches('.')).build().map_err(build_error)?,
        )
        .build()
        .map_err(build_error)
}

fn upsert(set: r53::ResourceRecordSet) -> Result<r53::Change, AwsError> {
    r53::Change::builder().action(r53::ChangeAction::Upsert).resource_record_set(set).build().map_err(build_error)
}
