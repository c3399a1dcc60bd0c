//! The FargateApp's Route 53 record: an A alias (or a CNAME) to the listener's load balancer, and
//! the records earlier specs asked for (another name, zone or type) deleted while they still point
//! where we wrote them. Records carry no tags, so the inventory entry's target is the mark: a record
//! pointing anywhere else is someone else's and is never changed or deleted.
//!
//! Changes in one zone go in one change batch, which Route 53 applies atomically: switching
//! `dns.type` deletes the old A record and creates the CNAME at the same name in one step (the two
//! cannot exist side by side).

use std::collections::BTreeMap;

use aws_sdk_route53::types as r53;

use super::aws::{FargateAws, ListenerInfo, build_error};
use super::inventory;
use crate::api::OwnedResource;
use crate::api::fargate_app::FargateApp;
use crate::api::fargate_app::{DnsRecordType, DnsSpec};
use crate::api::validation::{normalize_dns_name, normalize_zone_id};
use crate::aws::AwsError;
use crate::controller::{Blocked, StatusWriter};

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

/// The observed record an inventory entry names, if it still points where we wrote it. `Ok(None)`:
/// gone, its zone is gone, or it is no longer ours; the entry can be dropped.
pub async fn still_ours(aws: &FargateAws, entry: &OwnedResource) -> Result<Option<r53::ResourceRecordSet>, AwsError> {
    let Some((zone, name, t, _)) = inventory::parse_record_id(&entry.id) else { return Ok(None) };
    let set = match aws.record(zone, name, rr_type(t)).await {
        Ok(s) => s,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(set.filter(|s| entry.name.as_deref().is_some_and(|ours| same_target(&target_of(s), ours))))
}

/// Make the record `desired` asks for (if any) and delete the recorded ones it no longer wants.
/// The inner `Err` is a record with our name that someone else wrote.
pub async fn sync(
    aws: &FargateAws,
    desired: Option<(&DnsSpec, &ListenerInfo)>,
    resources: &mut Vec<OwnedResource>,
    writer: Option<&StatusWriter<'_, FargateApp>>,
) -> Result<Result<(), Blocked>, AwsError> {
    let wanted_id = desired.map(|(dns, _)| inventory::dns_record_id(dns));
    let mut batches: BTreeMap<String, Vec<r53::Change>> = BTreeMap::new();
    let mut upsert: Option<OwnedResource> = None;
    if let Some((dns, info)) = desired {
        let zone = normalize_zone_id(&dns.hosted_zone_id).to_string();
        let id = inventory::dns_record_id(dns);
        let recorded = resources.iter().find(|r| r.type_ == inventory::RECORD && r.id == id).cloned();
        let current = aws.record(&zone, &dns.name, rr_type(inventory::rr_type(dns.record_type))).await?;
        // Ours: recorded, and pointing where the entry says (or already where we want it). A
        // record at our name that this object never recorded is someone else's, even when it
        // points at the same shared load balancer.
        let ours = |set: &r53::ResourceRecordSet| {
            recorded.as_ref().is_some_and(|r| {
                let now = target_of(set);
                same_target(&now, &info.dns_name) || r.name.as_deref().is_some_and(|t| same_target(&now, t))
            })
        };
        match current {
            Some(set) if ours(&set) && same_target(&target_of(&set), &info.dns_name) => {
                inventory::put(resources, inventory::record(dns, &info.dns_name));
            }
            Some(set) if !ours(&set) => {
                return Ok(Err(Blocked {
                    reason: crate::runtime::conditions::REASON_NAME_CONFLICT,
                    message: format!(
                        "spec.dns.name: {} already exists (pointing at {}) and was not written by this object; it is left untouched",
                        dns.name,
                        target_of(&set)
                    ),
                }));
            }
            _ => {
                // Recorded, and written to status, before the change is sent, so neither a lost
                // answer nor a crash can lose it. An entry that names the load balancer the record
                // still points at keeps that name until the change lands.
                if recorded.is_none() {
                    inventory::add(resources, inventory::record(dns, &info.dns_name));
                    if let Some(w) = writer {
                        w.record_resources(resources).await?;
                    }
                }
                batches.entry(zone).or_default().push(change(r53::ChangeAction::Upsert, record_set(dns, info)?)?);
                upsert = Some(inventory::record(dns, &info.dns_name));
            }
        }
    }
    let keep: Vec<&str> = wanted_id.iter().map(String::as_str).collect();
    let unwanted: Vec<OwnedResource> =
        inventory::unwanted(resources, inventory::RECORD, &keep).into_iter().cloned().collect();
    let mut deleting: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for entry in unwanted {
        match still_ours(aws, &entry).await? {
            Some(set) => {
                let zone = inventory::parse_record_id(&entry.id).map(|(z, ..)| z.to_string()).unwrap_or_default();
                batches.entry(zone.clone()).or_default().push(change(r53::ChangeAction::Delete, set)?);
                deleting.entry(zone).or_default().push(entry.id.clone());
            }
            None => inventory::remove(resources, inventory::RECORD, &entry.id),
        }
    }
    // The zone of the record we want first: its new name answers before old ones go.
    let first = desired.map(|(dns, _)| normalize_zone_id(&dns.hosted_zone_id).to_string());
    let mut zones: Vec<String> = batches.keys().cloned().collect();
    zones.sort_by_key(|z| Some(z) != first.as_ref());
    for zone in zones {
        let mut changes = batches.remove(&zone).unwrap_or_default();
        // Route 53 checks a batch's changes in order: the old record (an A where a CNAME comes)
        // must go before the new one is created at the same name.
        changes.sort_by_key(|c| *c.action() != r53::ChangeAction::Delete);
        match aws.change_records(&zone, changes).await {
            Ok(()) => {}
            // A zone that is gone took its records with it.
            Err(e) if e.is_not_found() && Some(&zone) != first.as_ref() => {}
            Err(e) => return Err(e),
        }
        for id in deleting.remove(&zone).unwrap_or_default() {
            inventory::remove(resources, inventory::RECORD, &id);
        }
        if Some(&zone) == first.as_ref()
            && let Some(entry) = upsert.take()
        {
            inventory::put(resources, entry);
        }
    }
    Ok(Ok(()))
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
