//! Record sets of one hosted zone: Route 53's list order, paging, and change batches validated
//! and applied in order on a copy, so a batch lands whole or not at all.
//!
//! Order: ListResourceRecordSets "sorts results first by DNS name with the labels reversed, for
//! example `com.example.www.`" (note the trailing dot, which puts `example-a.com.` before
//! `example.com.`: `-` sorts before `.`), then by record type, then by set identifier. Types
//! sort by their name (`A` < `CNAME` < `NS` < `SOA`), which is the order AWS shows at an apex (NS
//! before SOA). Names are kept lowercase with their trailing dot; escapes (`\052`) are not
//! modelled.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_route53::types::{Change, ChangeAction, ResourceRecordSet, RrType};

use crate::aws::api::route53::{RecordSetsPage, RecordStart};
use crate::aws::errors::{Classified, ErrorCategory};
use crate::aws::model::error;

/// Where a record set sorts: (name with labels reversed, type, set identifier or "").
pub type Key = (String, String, String);

/// A zone's record sets in list order.
pub type Records = BTreeMap<Key, ResourceRecordSet>;

/// Records per ListResourceRecordSets page at most (the API's maximum).
pub const MAX_ITEMS: i32 = 300;

/// `name` as Route 53 keeps it: lowercase, absolute.
pub fn norm_name(name: &str) -> String {
    format!("{}.", name.trim_end_matches('.').to_ascii_lowercase())
}

/// A zone id without its `/hostedzone/` prefix (the API takes both).
pub fn bare_zone_id(id: &str) -> &str {
    id.trim_start_matches("/hostedzone/")
}

/// `www.example.com.` → `com.example.www.`: the name part of the list order.
pub fn reversed(name: &str) -> String {
    let n = norm_name(name);
    let labels: Vec<&str> = n.trim_end_matches('.').split('.').collect();
    let mut out: Vec<&str> = labels.into_iter().rev().collect();
    out.push("");
    out.join(".")
}

/// Where `set` sorts.
pub fn key_of(set: &ResourceRecordSet) -> Key {
    (reversed(set.name()), set.r#type().as_str().to_string(), set.set_identifier().unwrap_or_default().to_string())
}

/// `set` as Route 53 stores and lists it: name lowercase and absolute, an alias target's name
/// too, its zone id without prefix.
pub fn normalized(set: &ResourceRecordSet) -> ResourceRecordSet {
    let mut s = set.clone();
    s.name = norm_name(&s.name);
    if let Some(a) = s.alias_target.as_mut() {
        a.dns_name = norm_name(&a.dns_name);
        a.hosted_zone_id = bare_zone_id(&a.hosted_zone_id).to_string();
    }
    s
}

/// The same record set for a DELETE: every field equal, values compared as a set (Route 53
/// does not care about their order).
fn same(a: &ResourceRecordSet, b: &ResourceRecordSet) -> bool {
    let sorted = |s: &ResourceRecordSet| {
        let mut s = normalized(s);
        if let Some(r) = s.resource_records.as_mut() {
            r.sort_by(|x, y| x.value.cmp(&y.value));
        }
        s
    };
    sorted(a) == sorted(b)
}

fn invalid_batch(message: String) -> Classified {
    error(ErrorCategory::Conflict, "InvalidChangeBatch", &message)
}

fn invalid_input(message: String) -> Classified {
    error(ErrorCategory::Terminal, "InvalidInput", &message)
}

fn describe(set: &ResourceRecordSet) -> String {
    match set.set_identifier() {
        Some(id) => format!("[name='{}', type='{}', set-identifier='{id}']", norm_name(set.name()), set.r#type()),
        None => format!("[name='{}', type='{}']", norm_name(set.name()), set.r#type()),
    }
}

/// What a batch is checked against besides the zone's own records.
pub struct BatchContext<'a> {
    /// The zone's id (bare) and name.
    pub zone_id: &'a str,
    /// The zone's name (`example.com.`).
    pub zone_name: &'a str,
    /// Record sets of the model's other zones, by bare id (alias targets into them are checked).
    pub other_zones: &'a BTreeMap<String, &'a Records>,
    /// Ids of the health checks that exist.
    pub health_checks: &'a BTreeSet<String>,
    /// Alias targets outside the model's zones known to exist, by canonical zone id; a canonical
    /// zone with none registered is not checked.
    pub alias_targets: &'a BTreeMap<String, BTreeSet<String>>,
}

/// Syntax Route 53 refuses as `InvalidInput` whatever the zone holds.
fn check_shape(action: &ChangeAction, set: &ResourceRecordSet) -> Result<(), Classified> {
    let values = set.resource_records.as_ref().is_some_and(|r| !r.is_empty());
    let plain = values && set.ttl.is_some();
    let alias = set.alias_target.is_some();
    if plain == alias || (alias && (values || set.ttl.is_some())) {
        return Err(invalid_input(format!(
            "Invalid request: Expected exactly one of [AliasTarget, all of [TTL, and ResourceRecords]], in Change with [Action={action}, Name={}, Type={}]",
            set.name(),
            set.r#type()
        )));
    }
    let policy = set.failover.is_some() || set.weight.is_some() || set.region.is_some() || set.geo_location.is_some();
    if policy != set.set_identifier.is_some() {
        return Err(invalid_input(format!(
            "Invalid request: a SetIdentifier goes with exactly one routing policy (Failover, Weight, Region, GeoLocation) in Change with [Action={action}, Name={}, Type={}]",
            set.name(),
            set.r#type()
        )));
    }
    Ok(())
}

fn in_zone(name: &str, zone_name: &str) -> bool {
    let (n, z) = (norm_name(name), norm_name(zone_name));
    n == z || n.ends_with(&format!(".{z}"))
}

/// Record sets that conflict with `set` once it is in `records`: a CNAME next to another type, a
/// set with an identifier next to one without at the same name and type, two failover records of
/// one role.
fn conflicts(records: &Records, set: &ResourceRecordSet, ctx: &BatchContext) -> Result<(), Classified> {
    let (rev, rtype, ident) = key_of(set);
    let at_name = records.iter().filter(|((r, _, _), _)| *r == rev);
    for ((_, t, i), other) in at_name {
        if *t == rtype && *i == ident {
            continue;
        }
        if *t != rtype && (rtype == "CNAME" || t == "CNAME") {
            return Err(invalid_batch(format!(
                "RRSet of type {rtype} with DNS name {} is not permitted as it conflicts with other records with the same DNS name in zone {}",
                norm_name(set.name()),
                ctx.zone_name
            )));
        }
        if *t == rtype && (i.is_empty() != ident.is_empty()) {
            return Err(invalid_batch(format!(
                "RRSet {} conflicts with the existing RRSet {}: sets with and without SetIdentifier cannot share a name and type",
                describe(set),
                describe(other)
            )));
        }
        if *t == rtype && set.failover.is_some() && other.failover == set.failover {
            return Err(invalid_batch(format!(
                "RRSet {} cannot be created because a failover record of the same role already exists: {}",
                describe(set),
                describe(other)
            )));
        }
        if *t == rtype && set.failover.is_some() != other.failover.is_some() {
            return Err(invalid_batch(format!(
                "RRSet {} mixes routing policies with {}",
                describe(set),
                describe(other)
            )));
        }
    }
    Ok(())
}

/// An alias must point at something that exists: a record of its type in a zone of the model
/// (this one included, as it is after the earlier changes of the batch), or a registered target.
fn check_alias(records: &Records, set: &ResourceRecordSet, ctx: &BatchContext) -> Result<(), Classified> {
    let Some(alias) = set.alias_target() else { return Ok(()) };
    let (zone, target) = (bare_zone_id(alias.hosted_zone_id()), norm_name(alias.dns_name()));
    let found_in = |rs: &Records| {
        let rev = reversed(&target);
        rs.iter().any(|((r, t, _), _)| *r == rev && t == set.r#type().as_str())
    };
    let known = if zone == ctx.zone_id {
        found_in(records)
    } else if let Some(rs) = ctx.other_zones.get(zone) {
        found_in(rs)
    } else {
        match ctx.alias_targets.get(zone) {
            Some(names) => names.contains(&target),
            None => true,
        }
    };
    if known {
        Ok(())
    } else {
        Err(invalid_batch(format!(
            "Tried to create an alias that targets {target}, type {} in zone {zone}, but the alias target name does not lie within the target zone",
            set.r#type()
        )))
    }
}

/// Apply `changes` in order to a copy of `records`; the first change that cannot apply refuses the
/// whole batch (and `records` stays as it was).
pub fn apply_batch(records: &Records, changes: &[Change], ctx: &BatchContext) -> Result<Records, Classified> {
    if changes.is_empty() {
        return Err(invalid_input("Invalid request: a change batch needs at least one change".into()));
    }
    let mut work = records.clone();
    for change in changes {
        let Some(raw) = change.resource_record_set() else {
            return Err(invalid_input("Invalid request: a change without a ResourceRecordSet".into()));
        };
        let action = change.action();
        check_shape(action, raw)?;
        if !in_zone(raw.name(), ctx.zone_name) {
            return Err(invalid_batch(format!(
                "RRSet with DNS name {} is not permitted in zone {}",
                norm_name(raw.name()),
                ctx.zone_name
            )));
        }
        let set = normalized(raw);
        let key = key_of(&set);
        let apex = norm_name(set.name()) == norm_name(ctx.zone_name);
        if let Some(check) = set.health_check_id().filter(|_| *action != ChangeAction::Delete)
            && !ctx.health_checks.contains(check)
        {
            return Err(error(
                ErrorCategory::NotFound,
                "NoSuchHealthCheck",
                &format!("No health check exists with the ID {check}"),
            ));
        }
        match action {
            ChangeAction::Create | ChangeAction::Upsert => {
                if *action == ChangeAction::Create && work.contains_key(&key) {
                    return Err(invalid_batch(format!(
                        "Tried to create resource record set {} but it already exists",
                        describe(&set)
                    )));
                }
                check_alias(&work, &set, ctx)?;
                conflicts(&work, &set, ctx)?;
                work.insert(key, set);
            }
            ChangeAction::Delete => {
                if apex && matches!(set.r#type(), RrType::Soa | RrType::Ns) {
                    return Err(invalid_batch(format!(
                        "A HostedZone must contain at least one NS record and exactly one SOA record for the zone itself: cannot delete {}",
                        describe(&set)
                    )));
                }
                match work.get(&key) {
                    None => {
                        return Err(invalid_batch(format!(
                            "Tried to delete resource record set {} but it was not found",
                            describe(&set)
                        )));
                    }
                    Some(have) if !same(have, &set) => {
                        return Err(invalid_batch(format!(
                            "Tried to delete resource record set {} but the values provided do not match the current values",
                            describe(&set)
                        )));
                    }
                    Some(_) => {
                        work.remove(&key);
                    }
                }
            }
            other => return Err(invalid_input(format!("Invalid request: unknown action {other}"))),
        }
    }
    Ok(work)
}

/// One ListResourceRecordSets page: at most `max_items` (1..=300) record sets from `start` on.
pub fn list(records: &Records, start: &RecordStart, max_items: i32) -> Result<RecordSetsPage, Classified> {
    if start.name.is_empty() && (start.rtype.is_some() || start.identifier.is_some()) {
        return Err(invalid_input("Invalid request: StartRecordType needs StartRecordName".into()));
    }
    if start.identifier.is_some() && start.rtype.is_none() {
        return Err(invalid_input("Invalid request: StartRecordIdentifier needs StartRecordType".into()));
    }
    let max = usize::try_from(max_items.clamp(1, MAX_ITEMS)).unwrap_or(1);
    let from: Key = if start.name.is_empty() {
        (String::new(), String::new(), String::new())
    } else {
        (
            reversed(&start.name),
            start.rtype.as_ref().map(|t| t.as_str().to_string()).unwrap_or_default(),
            start.identifier.clone().unwrap_or_default(),
        )
    };
    let mut rest = records.range(from..);
    let record_sets: Vec<ResourceRecordSet> = rest.by_ref().take(max).map(|(_, s)| s.clone()).collect();
    let next = rest.next().map(|(_, s)| RecordStart {
        name: s.name().to_string(),
        rtype: Some(s.r#type().clone()),
        identifier: s.set_identifier().map(str::to_string),
    });
    Ok(RecordSetsPage { record_sets, next })
}
