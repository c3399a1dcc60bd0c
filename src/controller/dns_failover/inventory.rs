//! The DnsFailover's ownership inventory (`status.resources`): every health check, failover record
//! and delegation NS record it made. An edit that no longer wants one of them (a renamed record, a
//! moved zone, a replaced check, a removed `delegation`) and the object's deletion remove exactly
//! what is listed here, never what the current spec would name, and only while it still carries our
//! marks (our set identifier, our zone's name servers).

use crate::controller::record_mark::Mark;
use aws_sdk_route53::types as r53;

use super::aws::FailoverAws;
use crate::api::OwnedResource;
use crate::api::validation::normalize_dns_name;
use crate::aws::AwsError;
use crate::aws::errors::build_error;
use crate::aws::route53_batch::Urgency;

use crate::controller::inventory::parse_record_id;
pub use crate::controller::inventory::{RECORD, add, record_id, remove};

/// `type` of a Route 53 health check entry.
pub const HEALTH_CHECK: &str = "HealthCheck";

/// A health check entry (`reference`: its CallerReference, when known).
pub fn health_check(id: &str, reference: Option<&str>) -> OwnedResource {
    OwnedResource { type_: HEALTH_CHECK.into(), id: id.into(), parent: None, name: reference.map(str::to_string) }
}

/// A record entry.
pub fn record(zone: &str, name: &str, rtype: &str, set_id: Option<&str>) -> OwnedResource {
    OwnedResource { type_: RECORD.into(), id: record_id(zone, name, rtype, set_id), parent: None, name: None }
}

/// The delegation's NS record of `zone_name` in `parent`; `name` is the delegated zone's id, whose
/// name servers make the record ours (also after `hostedZoneId` moved to another zone).
pub fn delegation(parent: &str, zone_name: &str, zone_id: &str) -> OwnedResource {
    OwnedResource { name: Some(zone_id.to_string()), ..record(parent, zone_name, "NS", None) }
}

/// The id of a planned create's entry: Route 53 has not named the check yet.
const PLANNED: &str = "planned:";

/// Whether `r` is a create planned (its reference recorded) but not yet answered.
pub fn is_planned(r: &OwnedResource) -> bool {
    r.type_ == HEALTH_CHECK && r.id.starts_with(PLANNED)
}

/// Health check entries whose id is not in `keep` (planned creates, which have no id yet, aside).
pub fn unwanted_checks(resources: &[OwnedResource], keep: &[&str]) -> Vec<String> {
    resources
        .iter()
        .filter(|r| r.type_ == HEALTH_CHECK && !is_planned(r) && !keep.contains(&r.id.as_str()))
        .map(|r| r.id.clone())
        .collect()
}

/// The CallerReference of a planned create (an entry without id) whose reference starts with
/// `stem`.
pub fn planned(resources: &[OwnedResource], stem: &str) -> Option<String> {
    let prefix = format!("{stem}-");
    resources.iter().filter(|r| is_planned(r)).filter_map(|r| r.name.clone()).find(|n| n.starts_with(&prefix))
}

/// Record a planned create with `reference` (no id yet).
pub fn plan_create(resources: &mut Vec<OwnedResource>, reference: &str) {
    resources.push(health_check(&format!("{PLANNED}{reference}"), Some(reference)));
    resources.sort();
}

/// The planned create with `reference` is done (or abandoned).
pub fn unplan(resources: &mut Vec<OwnedResource>, reference: &str) {
    resources.retain(|r| !(is_planned(r) && r.name.as_deref() == Some(reference)));
}

/// Record entries not in `keep` (ids).
pub fn unwanted_records(resources: &[OwnedResource], keep: &[String]) -> Vec<String> {
    resources.iter().filter(|r| r.type_ == RECORD && !keep.contains(&r.id)).map(|r| r.id.clone()).collect()
}

/// What [`delete_record`] did with a recorded record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deleted {
    /// Deleted, or it can never be ours to delete again (its zone, or the zone it delegates, is
    /// gone): the entry goes.
    Done,
    /// Nothing of ours at its name: gone, or a write of it recorded by another replica has not
    /// landed yet. The entry goes once that has stayed so for a grace period
    /// ([`crate::runtime::absences`]).
    NotThere,
}

/// Delete the record an entry names, if it is still there and still ours: a failover record with
/// the entry's set identifier, or an NS record whose values are the name servers of the zone the
/// entry names. A zone that is gone took the record with it.
pub async fn delete_record(aws: &FailoverAws, entry: &OwnedResource) -> Result<Deleted, AwsError> {
    let Some((zone, name, rtype, set_id)) = parse_record_id(&entry.id) else { return Ok(Deleted::Done) };
    let our_name_servers = match (rtype, entry.name.as_deref()) {
        ("NS", Some(delegated)) => match aws.zone(delegated).await {
            Ok((_, servers)) => Some(servers),
            // The delegated zone is gone: the record cannot be told apart from anyone else's.
            Err(e) if e.is_not_found() => return Ok(Deleted::Done),
            Err(e) => return Err(e),
        },
        _ => None,
    };
    let our_name_servers = our_name_servers.as_deref();
    let sets = match aws.records_at(zone, name).await {
        Ok(s) => s,
        Err(e) if e.is_not_found() => return Ok(Deleted::Done),
        Err(e) => return Err(e),
    };
    let values = |s: &r53::ResourceRecordSet| {
        let mut v: Vec<String> = s.resource_records().iter().map(|r| normalize_dns_name(r.value())).collect();
        v.sort();
        v
    };
    // A delegation's mark decides: another owner's leaves it alone, ours deletes it with the NS
    // record; without one (from before marks), the NS values must be the zone's own servers.
    let mark = match rtype {
        "NS" => super::observe::delegation_mark(aws, zone, name).await?,
        _ => Mark::None,
    };
    let ours = sets.into_iter().find(|s| {
        normalize_dns_name(s.name()) == name
            && s.r#type().as_str() == rtype
            && match (set_id, rtype, &mark) {
                (Some(sid), ..) => s.set_identifier() == Some(sid),
                (None, "NS", Mark::Ours(_)) => true,
                (None, "NS", Mark::None) => our_name_servers.is_some_and(|ns| {
                    let mut ns: Vec<String> = ns.iter().map(|n| normalize_dns_name(n)).collect();
                    ns.sort();
                    values(s) == ns
                }),
                _ => false,
            }
    });
    let Some(set) = ours else { return Ok(Deleted::NotThere) };
    let mut sets = vec![set];
    if let Mark::Ours(m) = mark {
        sets.push(*m);
    }
    let changes = sets
        .into_iter()
        .map(|set| r53::Change::builder().action(r53::ChangeAction::Delete).resource_record_set(set).build())
        .collect::<Result<Vec<_>, _>>()
        .map_err(build_error)?;
    aws.change(zone, changes, Urgency::Prompt).await?;
    Ok(Deleted::Done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_unique_sorted_and_the_unwanted_ones_are_found() {
        let mut r = Vec::new();
        add(&mut r, health_check("hc-2", Some("ref-2")));
        add(&mut r, record("Z1", "a.example.com", "CNAME", Some("s")));
        add(&mut r, health_check("hc-1", None));
        add(&mut r, health_check("hc-2", None));
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].id, "hc-1");
        assert_eq!(r[1].name.as_deref(), Some("ref-2"), "an entry is not replaced by a later add");
        assert_eq!(unwanted_checks(&r, &["hc-2"]), vec!["hc-1".to_string()]);
        assert_eq!(unwanted_records(&r, &[]), vec!["Z1/a.example.com/CNAME/s".to_string()]);
        remove(&mut r, HEALTH_CHECK, "hc-1");
        assert_eq!(unwanted_checks(&r, &["hc-2"]), Vec::<String>::new());
        plan_create(&mut r, "uid-primary-abcd1234-n1");
        plan_create(&mut r, "uid-secondary-abcd1234-n2");
        assert_eq!(planned(&r, "uid-primary-abcd1234").as_deref(), Some("uid-primary-abcd1234-n1"));
        assert_eq!(planned(&r, "uid-primary-ffff0000"), None, "another configuration plans its own");
        assert_eq!(unwanted_checks(&r, &["hc-2"]), Vec::<String>::new(), "a planned create is not deleted");
        unplan(&mut r, "uid-primary-abcd1234-n1");
        assert_eq!(planned(&r, "uid-primary-abcd1234"), None);
        assert!(planned(&r, "uid-secondary-abcd1234").is_some());
    }
}
