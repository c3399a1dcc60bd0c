//! The FargateApp's Route 53 record: an A alias (or a CNAME) to the listener's load balancer, and
//! the records earlier specs asked for (another name, zone or type) deleted while they still point
//! where we wrote them. Records carry no tags, so each record we write gets an ownership TXT record
//! next to it, as external-dns does: `_fargate-operator.<name>` saying
//! `heritage=fargate-operator,owner=<cluster id>/<namespace>/FargateApp/<name>` ([`Mark`]), written
//! and deleted in the same change batch as the record. A record whose mark names another owner is
//! never changed or deleted, whatever the inventory says; one whose mark names this object is ours
//! even when the status that recorded it was lost. Records written before marks existed are ours
//! by the inventory entry's target (a record pointing anywhere else is someone else's), and get
//! their mark on the next pass. The planner decides from [`record_state`] and groups with
//! [`by_zone`]; apply and the finalizer send with [`send`].
//!
//! Changes in one zone go in one change batch, which Route 53 applies atomically: switching
//! `dns.type` deletes the old A record and creates the CNAME at the same name in one step (the two
//! cannot exist side by side).

use std::collections::BTreeMap;

use aws_sdk_route53::types as r53;

use super::aws::{FargateAws, ListenerInfo, build_error};
use super::inventory;
use crate::api::OwnedResource;
use crate::api::fargate_app::{DnsRecordType, DnsSpec};
use crate::api::validation::normalize_dns_name;
use crate::aws::AwsError;
use crate::controller::Blocked;

pub use crate::controller::record_mark::{MARK_LABEL, Mark, mark_name, mark_of, mark_set};

/// The record set `dns` asks for, pointing at `info`'s load balancer.
pub fn record_set(dns: &DnsSpec, info: &ListenerInfo) -> Result<r53::ResourceRecordSet, AwsError> {
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
        DnsRecordType::CNAME => {
            let value = r53::ResourceRecord::builder().value(&info.dns_name).build().map_err(build_error)?;
            r53::ResourceRecordSet::builder()
                .name(name)
                .r#type(r53::RrType::Cname)
                .ttl(dns.ttl)
                .resource_records(value)
                .build()
                .map_err(build_error)
        }
    }
}

/// Where a record set points: its alias target or its first value.
pub fn target_of(set: &r53::ResourceRecordSet) -> String {
    set.alias_target()
        .map(|a| a.dns_name().to_string())
        .or_else(|| set.resource_records().first().map(|v| v.value().to_string()))
        .unwrap_or_default()
}

/// Whether two load balancer names are the same (case, final dot and `dualstack.` ignored).
pub fn same_target(a: &str, b: &str) -> bool {
    let norm = |s: &str| normalize_dns_name(s).trim_start_matches("dualstack.").to_string();
    norm(a) == norm(b)
}

/// A Route 53 type from an inventory record id's type.
fn rr_type(t: &str) -> r53::RrType {
    r53::RrType::from(t)
}

fn change(action: r53::ChangeAction, set: r53::ResourceRecordSet) -> Result<r53::Change, AwsError> {
    r53::Change::builder().action(action).resource_record_set(set).build().map_err(build_error)
}

/// The mark next to the record `name` in `zone`, as it concerns this object.
pub async fn read_mark(aws: &FargateAws, zone: &str, name: &str) -> Result<Mark, AwsError> {
    let found = aws.record(zone, &mark_name(name), r53::RrType::Txt).await?;
    Ok(mark_of(found.as_ref(), &aws.owner))
}

/// The observed record an inventory entry names, with its mark, if it is still ours: its mark
/// names this object, or (without a mark) it still points where we wrote it. `Ok(None)`: gone,
/// its zone is gone, or it is no longer ours; the entry can be dropped.
pub async fn still_ours(
    aws: &FargateAws,
    entry: &OwnedResource,
) -> Result<Option<(r53::ResourceRecordSet, Mark)>, AwsError> {
    let Some((zone, name, t, _)) = inventory::parse_record_id(&entry.id) else { return Ok(None) };
    let read =
        async { Ok::<_, AwsError>((aws.record(zone, name, rr_type(t)).await?, read_mark(aws, zone, name).await?)) };
    let (set, mark) = match read.await {
        Ok(found) => found,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e),
    };
    let ours = |s: &r53::ResourceRecordSet| match &mark {
        Mark::Ours(_) => true,
        Mark::Other(_) => false,
        Mark::None | Mark::Unread => recorded_target(entry, &target_of(s)),
    };
    Ok(set.filter(ours).map(|s| (s, mark)))
}

/// Whether `target` is one the record `entry` was written with: its target, or the one before it
/// while a re-point is unconfirmed (`parent`).
fn recorded_target(entry: &OwnedResource, target: &str) -> bool {
    [entry.name.as_deref(), entry.parent.as_deref()].into_iter().flatten().any(|t| same_target(target, t))
}

/// Whether the record `dns` asks for is in place (`Ok(true)`) or is to be written (`Ok(false)`),
/// from the record `current` at its name and type and the `mark` next to it. A mark decides: ours,
/// or another owner's (`Err`, also when no record is there yet). Without one, ours is recorded in
/// `resources` and pointing where the entry says (or already where we want it): a record at our
/// name that this object never recorded is someone else's (`Err`), even when it points at the same
/// shared load balancer.
pub fn record_state(
    dns: &DnsSpec,
    info: &ListenerInfo,
    resources: &[OwnedResource],
    current: Option<&r53::ResourceRecordSet>,
    mark: &Mark,
) -> Result<bool, Blocked> {
    if let Mark::Other(owner) = mark {
        return Err(Blocked {
            reason: crate::runtime::conditions::REASON_NAME_CONFLICT,
            message: format!(
                "spec.dns.name: {} belongs to {owner} (its TXT record {} says so); it is left untouched: use another name",
                dns.name,
                mark_name(&dns.name)
            ),
        });
    }
    let id = inventory::dns_record_id(dns);
    let recorded = resources.iter().find(|r| r.type_ == inventory::RECORD && r.id == id);
    let Some(set) = current else { return Ok(false) };
    let now = target_of(set);
    let ours = matches!(mark, Mark::Ours(_))
        || recorded.is_some_and(|r| same_target(&now, &info.dns_name) || recorded_target(r, &now));
    if !ours {
        return Err(Blocked {
            reason: crate::runtime::conditions::REASON_NAME_CONFLICT,
            message: format!(
                "spec.dns.name: {} already exists (pointing at {now}) and was not written by this object; it is left untouched",
                dns.name
            ),
        });
    }
    Ok(same_target(&now, &info.dns_name))
}

/// Record sets to delete (with their inventory entries), one batch per zone: the zone `first` (the
/// record we want's: its new name answers before old ones go) first, then the others in order.
pub fn by_zone(
    first: Option<&str>,
    found: Vec<(OwnedResource, r53::ResourceRecordSet)>,
) -> Vec<(String, Vec<(OwnedResource, r53::ResourceRecordSet)>)> {
    let mut zones: BTreeMap<String, Vec<(OwnedResource, r53::ResourceRecordSet)>> = BTreeMap::new();
    for (entry, set) in found {
        let zone = inventory::parse_record_id(&entry.id).map(|(z, ..)| z.to_string()).unwrap_or_default();
        zones.entry(zone).or_default().push((entry, set));
    }
    let mut batches: Vec<_> = zones.into_iter().collect();
    batches.sort_by_key(|(z, _)| Some(z.as_str()) != first);
    batches
}

/// Send one zone's change batch (Route 53 applies it atomically). Route 53 checks a batch's changes
/// in order: the old records (an A where a CNAME comes) are deleted before the new one is created
/// at the same name. `zone_may_be_gone`: a zone that is gone took its records with it.
pub async fn send(
    aws: &FargateAws,
    zone: &str,
    deletes: Vec<r53::ResourceRecordSet>,
    upserts: Vec<r53::ResourceRecordSet>,
    zone_may_be_gone: bool,
) -> Result<(), AwsError> {
    let mut changes = Vec::new();
    for set in deletes {
        changes.push(change(r53::ChangeAction::Delete, set)?);
    }
    for set in upserts {
        changes.push(change(r53::ChangeAction::Upsert, set)?);
    }
    match aws.change_records(zone, changes).await {
        Err(e) if !(e.is_not_found() && zone_may_be_gone) => Err(e),
        _ => Ok(()),
    }
}

/// The record sets deleting the found record `set` takes: it and its mark, when ours.
pub fn with_mark(set: r53::ResourceRecordSet, mark: Mark) -> Vec<r53::ResourceRecordSet> {
    match mark {
        Mark::Ours(m) => vec![set, *m],
        _ => vec![set],
    }
}

/// Delete every recorded record that is still ours, with its mark (deletion of the app); each
/// entry leaves the inventory once its record is gone or found no longer ours. An entry whose
/// record is absent stays while `confirmed` says its absence is too young (another replica's
/// write of it may still land, see [`crate::runtime::absences`]): the deletion then fails with
/// `RecordNotSeenYet`, to look again once its grace has passed.
pub async fn delete_recorded(
    aws: &FargateAws,
    resources: &mut Vec<OwnedResource>,
    confirmed: &(dyn Fn(&OwnedResource) -> Result<(), std::time::Duration> + Sync),
) -> Result<(), AwsError> {
    let entries: Vec<OwnedResource> = resources.iter().filter(|r| r.type_ == inventory::RECORD).cloned().collect();
    let mut found = Vec::new();
    let mut held = None;
    for entry in entries {
        match still_ours(aws, &entry).await? {
            Some((set, mark)) => found.extend(with_mark(set, mark).into_iter().map(|s| (entry.clone(), s))),
            None => match confirmed(&entry) {
                Ok(()) => inventory::remove(resources, inventory::RECORD, &entry.id),
                Err(left) => held = Some((entry.id.clone(), left)),
            },
        }
    }
    for (zone, batch) in by_zone(None, found) {
        send(aws, &zone, batch.iter().map(|(_, set)| set.clone()).collect(), Vec::new(), true).await?;
        for (entry, _) in batch {
            inventory::remove(resources, inventory::RECORD, &entry.id);
        }
    }
    match held {
        None => Ok(()),
        Some((id, left)) => Err(crate::runtime::absences::record_not_seen_yet(&id, left)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alias_targets_compare_without_case_dot_or_dualstack() {
        assert!(same_target("dualstack.Shared-1.us-east-1.elb.amazonaws.com.", "shared-1.us-east-1.elb.amazonaws.com"));
        assert!(!same_target("a.elb.amazonaws.com", "b.elb.amazonaws.com"));
    }
}
