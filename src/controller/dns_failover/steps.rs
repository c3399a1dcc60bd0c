//! One DnsFailover pass as a value: from the spec, the status and what [`observe`](super::observe)
//! read, [`plan`] returns the ordered Route 53 steps (health check creates and updates, the record
//! pair, the delegation, then the deletes of what the spec no longer wants) and the status edits
//! known before any call. It makes no call and reads no clock: the same inputs give the same plan.
//! [`apply`](super::apply) runs the steps in order and records each result as it lands.

use aws_sdk_route53::types as r53;

use super::inventory;
use super::observe::{Observed, ParentNs, Zone};
use super::plan::{HealthCheckAction, HealthCheckConfig, caller_reference, desired_health_check, health_check_action};
use crate::api::OwnedResource;
use crate::api::dns_failover::{
    ActiveTarget, DnsFailoverSpec, DnsFailoverStatus, FailoverMode, HealthCheckStatus, HealthChecksStatus,
};
use crate::api::validation::{normalize_dns_name, normalize_zone_id, validate_dns_failover};
use crate::controller::Blocked;
use crate::controller::record_mark::{Mark, mark_name};
use crate::runtime::conditions::{REASON_INVALID_SPEC, REASON_NAME_CONFLICT};

/// The two sides, in the order their checks are ensured.
pub const SIDES: [&str; 2] = ["primary", "secondary"];

/// The health check a record of the pair names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckRef {
    /// The side has no health check.
    None,
    /// A check that exists now (kept or updated in place).
    Id(String),
    /// The check this plan's [`Step::CreateCheck`] for the side makes.
    Created(&'static str),
}

/// One record of the failover pair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PairRecord {
    /// `primary` or `secondary`.
    pub side: &'static str,
    /// Its health check.
    pub check: CheckRef,
}

/// One Route 53 step, in the order the plan lists them.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Bring the side's check `id` in line in place (mode switch, threshold, path...).
    UpdateCheck { side: &'static str, id: String, want: HealthCheckConfig },
    /// Create the side's check with `reference`; `new`: the reference is recorded in the inventory
    /// (and written) first, else it is a planned create repeated after a lost answer.
    CreateCheck { side: &'static str, reference: String, new: bool, want: HealthCheckConfig },
    /// UPSERT both records in one change batch: Route 53 never serves half a pair.
    UpsertPair { zone: String, records: Vec<PairRecord> },
    /// UPSERT the zone's NS record into the parent zone.
    UpsertDelegation { parent: String, zone_name: String, name_servers: Vec<String>, ttl: i64 },
    /// Delete the record an inventory entry names, while it is still ours.
    DeleteRecord(OwnedResource),
    /// Delete a health check no side uses (after the records stopped naming it).
    DeleteCheck(String),
    /// Delete the check a planned create left with this reference, if one was made.
    DeleteByReference(String),
    /// Read a PENDING change's propagation (GetChange).
    FollowChange,
}

/// The pass: steps, then the outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The status to apply the steps from: the inventory lists every record the steps write before
    /// they write it, sides without a check are cleared, a removed delegation is forgotten.
    pub status: DnsFailoverStatus,
    /// What to do, in order.
    pub steps: Vec<Step>,
    /// After the steps, the pass stops here (the steps were what could safely be done).
    pub blocked: Option<Blocked>,
    /// The side Route 53 answers, as far as the plan knows (a new primary check makes it unknown).
    pub active_target: ActiveTarget,
    /// The delegation is in place after the steps: the zone's name and name servers.
    pub delegated: Option<(String, Vec<String>)>,
}

impl Plan {
    fn blocked(status: &DnsFailoverStatus, blocked: Blocked) -> Self {
        Plan {
            status: status.clone(),
            steps: Vec::new(),
            blocked: Some(blocked),
            active_target: status.active_target.unwrap_or_default(),
            delegated: None,
        }
    }
}

/// Reason when another DnsFailover already manages the sub-zone's delegation.
pub const REASON_DELEGATION_IN_USE: &str = "DelegationInUse";

/// The pass stops before any write: the zone is missing, the spec is invalid for it, or the name
/// holds a record this object does not own. `observe` stops reading there too.
pub fn gate(
    spec: &DnsFailoverSpec,
    uid: &str,
    zone: Option<&Zone>,
    records: &[r53::ResourceRecordSet],
) -> Option<Blocked> {
    let Some(zone) = zone else { return Some(zone_missing(spec)) };
    if let Err(errs) = validate_dns_failover(spec, Some(&zone.name)) {
        return Some(Blocked { reason: REASON_INVALID_SPEC, message: errs.to_string() });
    }
    let ours: Vec<String> = SIDES.iter().map(|s| set_identifier(uid, s)).collect();
    let foreign = records.iter().find(|r| !r.set_identifier().is_some_and(|id| ours.iter().any(|o| o == id)))?;
    Some(Blocked {
        reason: REASON_NAME_CONFLICT,
        message: format!(
            "{} already has a {} record this object does not own (set identifier {:?}); it is left untouched",
            spec.name,
            foreign.r#type().as_str(),
            foreign.set_identifier().unwrap_or("none")
        ),
    })
}

fn zone_missing(spec: &DnsFailoverSpec) -> Blocked {
    Blocked {
        reason: "ZoneNotFound",
        message: format!(
            "spec.hostedZoneId: hosted zone {:?} does not exist in this account",
            normalize_zone_id(&spec.hosted_zone_id)
        ),
    }
}

/// SetIdentifier of a side's record: identifies our records among others at the same name.
pub fn set_identifier(uid: &str, side: &str) -> String {
    format!("{side}-{}", &uid.chars().filter(|c| *c != '-').take(12).collect::<String>())
}

/// The status entry of a side's check.
pub fn side_status<'a>(status: &'a mut DnsFailoverStatus, side: &str) -> &'a mut HealthCheckStatus {
    let checks = status.health_checks.get_or_insert_with(HealthChecksStatus::default);
    if side == "primary" { &mut checks.primary } else { &mut checks.secondary }
}

/// The check id status names for `side` (empty when none).
pub fn recorded_check(status: &DnsFailoverStatus, side: &str) -> String {
    status
        .health_checks
        .as_ref()
        .map(|h| if side == "primary" { h.primary.id.clone() } else { h.secondary.id.clone() })
        .unwrap_or_default()
}

/// The check each side wants (the primary's carries the DR switch; the secondary's may be absent).
pub fn wanted_checks(spec: &DnsFailoverSpec) -> [Option<HealthCheckConfig>; 2] {
    [
        Some(desired_health_check(&spec.primary.health_check, &spec.primary.target, spec.mode)),
        spec.secondary
            .health_check
            .as_ref()
            .map(|hc| desired_health_check(hc, &spec.secondary.target, FailoverMode::Auto)),
    ]
}

/// Plan one pass. `nonce` makes a new CallerReference unique (its caller draws it at random).
/// The health checks a pass will create that the status alone shows (a wanted side with no check
/// recorded), known before any read; a recorded check found gone or replaced adds to it later.
pub fn checks_unrecorded(spec: &DnsFailoverSpec, status: &DnsFailoverStatus) -> usize {
    SIDES
        .iter()
        .zip(wanted_checks(spec))
        .filter(|(side, want)| want.is_some() && recorded_check(status, side).is_empty())
        .count()
}

pub fn plan(spec: &DnsFailoverSpec, uid: &str, status: &DnsFailoverStatus, observed: &Observed, nonce: &str) -> Plan {
    if let Some(refused) = &observed.not_permitted {
        return Plan::blocked(status, refused.clone());
    }
    if let Some(blocked) = gate(spec, uid, observed.zone.as_ref(), &observed.records) {
        return Plan::blocked(status, blocked);
    }
    let Some(zone) = observed.zone.as_ref() else { return Plan::blocked(status, zone_missing(spec)) };
    // An object from before the inventory that reported a delegation: the delegation is its own.
    let legacy_delegation = status.resources.is_empty() && status.delegation.is_some();
    let mut status = status.clone();
    let mut steps = Vec::new();
    let mut keep_checks: Vec<String> = Vec::new();
    let mut creating: Vec<String> = Vec::new();
    let mut pair = Vec::new();
    let mut primary_replaced = false;
    for (i, (side, want)) in SIDES.iter().zip(wanted_checks(spec)).enumerate() {
        let recorded = recorded_check(&status, side);
        // A check the status names is in the inventory until it is deleted, even if a later step
        // fails after its replacement took its place in status.
        if !recorded.is_empty() {
            inventory::add(&mut status.resources, inventory::health_check(&recorded, None));
        }
        let Some(want) = want else {
            *side_status(&mut status, side) = HealthCheckStatus::default();
            pair.push(PairRecord { side, check: CheckRef::None });
            continue;
        };
        let have = observed.checks[i].as_ref().filter(|_| !recorded.is_empty());
        let action = have.map(|have| health_check_action(&want, have));
        match action {
            Some(HealthCheckAction::Keep) => {
                keep_checks.push(recorded.clone());
                pair.push(PairRecord { side, check: CheckRef::Id(recorded) });
            }
            Some(HealthCheckAction::Update) => {
                keep_checks.push(recorded.clone());
                steps.push(Step::UpdateCheck { side, id: recorded.clone(), want });
                pair.push(PairRecord { side, check: CheckRef::Id(recorded) });
            }
            // Type or interval changed, or the check is gone: a new one; the old one (listed in the
            // inventory) goes after the records point at the new one.
            Some(HealthCheckAction::Replace) | None => {
                let stem = caller_reference(uid, side, &want);
                let (reference, new) = match inventory::planned(&status.resources, &stem) {
                    Some(r) => (r, false),
                    None => (format!("{stem}-{nonce}"), true),
                };
                creating.push(reference.clone());
                primary_replaced |= *side == "primary" && !recorded.is_empty();
                steps.push(Step::CreateCheck { side, reference, new, want });
                pair.push(PairRecord { side, check: CheckRef::Created(side) });
            }
        }
    }

    // Listed before they are written: an answer lost after Route 53 applied the change must not
    // leave records no inventory names.
    let zone_id = normalize_zone_id(&spec.hosted_zone_id).to_string();
    let mut keep_records: Vec<String> = Vec::new();
    for side in SIDES {
        let entry = inventory::record(&zone_id, &spec.name, "CNAME", Some(&set_identifier(uid, side)));
        keep_records.push(entry.id.clone());
        inventory::add(&mut status.resources, entry);
    }
    let in_place = pair.iter().all(|p| match &p.check {
        CheckRef::None => record_in_place(spec, uid, p.side, "", &observed.records),
        CheckRef::Id(id) => record_in_place(spec, uid, p.side, id, &observed.records),
        CheckRef::Created(_) => false,
    });
    if !in_place {
        steps.push(Step::UpsertPair { zone: zone_id.clone(), records: pair });
    }

    let mut delegated = None;
    if let Some(delegation) = &spec.delegation {
        let parent = normalize_zone_id(&delegation.parent_hosted_zone_id).to_string();
        let mine = inventory::delegation(&parent, &zone.name, &zone_id);
        if let Some(other) = observed.delegated_by.as_ref().filter(|_| !status.resources.contains(&mine)) {
            return stop(
                status,
                steps,
                Blocked {
                    reason: REASON_DELEGATION_IN_USE,
                    message: format!(
                        "spec.delegation: DnsFailover {other} already delegates {} from zone {parent}, and one object \
                         manages a delegation (deleting either would un-delegate the zone for both): remove \
                         spec.delegation here; the zone stays delegated",
                        zone.name
                    ),
                },
            );
        }
        if let Mark::Other(owner) = &observed.delegation_mark {
            return stop(
                status,
                steps,
                Blocked {
                    reason: REASON_NAME_CONFLICT,
                    message: format!(
                        "spec.delegation: the parent zone's delegation of {} belongs to {owner} (its TXT record {} \
                         says so); it is left untouched",
                        zone.name,
                        mark_name(&zone.name)
                    ),
                },
            );
        }
        let marked = matches!(observed.delegation_mark, Mark::Ours(_));
        let recorded_by_us = status.resources.contains(&mine) || legacy_delegation;
        let recorded = status.delegation.as_ref().map(|d| d.name_servers.clone()).unwrap_or_default();
        let mut foreign = false;
        let in_sync = match &observed.parent {
            Some(ParentNs::ZoneMissing) | None => {
                return stop(
                    status,
                    steps,
                    Blocked {
                        reason: "ZoneNotFound",
                        message: format!(
                            "spec.delegation.parentHostedZoneId: hosted zone {parent:?} does not exist in this account"
                        ),
                    },
                );
            }
            // Our servers, but neither our mark nor our inventory: someone else delegated the zone
            // already. It serves what the spec asks for, and it stays theirs: never rewritten, never
            // deleted with this object.
            Some(ParentNs::Present { values, .. }) if *values == zone.name_servers && !marked && !recorded_by_us => {
                foreign = true;
                true
            }
            Some(ParentNs::Present { ttl, values }) if *values == zone.name_servers && *ttl == Some(delegation.ttl) => {
                true
            }
            // Other servers than ours, and not the ones we wrote before: someone else's delegation.
            Some(ParentNs::Present { values, .. }) if *values != zone.name_servers && *values != recorded => {
                return stop(
                    status,
                    steps,
                    Blocked {
                        reason: REASON_NAME_CONFLICT,
                        message: format!(
                            "the parent zone already delegates {} to other name servers ({}); it is left untouched",
                            zone.name,
                            values.join(", ")
                        ),
                    },
                );
            }
            _ => false,
        };
        if !foreign {
            // Listed (with the zone whose servers make it ours) before it is written, and also when
            // it is in place already: a pass that read a status older than its own last write must
            // not drop it.
            inventory::add(&mut status.resources, inventory::delegation(&parent, &zone.name, &zone_id));
            keep_records.push(inventory::record_id(&parent, &zone.name, "NS", None));
            // Written with its mark; one of ours from before marks gets its mark this way.
            if !in_sync || !marked {
                steps.push(Step::UpsertDelegation {
                    parent,
                    zone_name: zone.name.clone(),
                    name_servers: zone.name_servers.clone(),
                    ttl: delegation.ttl,
                });
            }
        }
        delegated = Some((zone.name.clone(), zone.name_servers.clone()));
    } else {
        status.delegation = None;
        status.conditions.retain(|c| c.type_ != "DelegationReady");
    }

    // Records of an earlier name, zone or delegation: deleted while they are still ours.
    for id in inventory::unwanted_records(&status.resources, &keep_records) {
        if let Some(entry) = status.resources.iter().find(|r| r.id == id) {
            steps.push(Step::DeleteRecord(entry.clone()));
        }
    }
    // Then checks no side uses any more (Route 53 refuses to delete one a record still uses). A check
    // listed with a reference this pass repeats is the one the repeat returns, which the pair is
    // about to name (its entry can outlive the planned one when a stale write merged only it).
    keep_checks.extend(
        status
            .resources
            .iter()
            .filter(|r| r.type_ == inventory::HEALTH_CHECK && !inventory::is_planned(r))
            .filter(|r| r.name.as_ref().is_some_and(|n| creating.contains(n)))
            .map(|r| r.id.clone()),
    );
    let keep: Vec<&str> = keep_checks.iter().map(String::as_str).collect();
    steps.extend(inventory::unwanted_checks(&status.resources, &keep).into_iter().map(Step::DeleteCheck));
    // A planned create this pass does not repeat was left by an edit after its answer was lost (the
    // side's check removed or its type changed): the check it may have made is found by reference.
    steps.extend(
        status
            .resources
            .iter()
            .filter(|r| inventory::is_planned(r))
            .filter_map(|r| r.name.clone())
            .filter(|reference| !creating.contains(reference))
            .map(Step::DeleteByReference),
    );
    steps.push(Step::FollowChange);
    let active_target = match spec.mode {
        FailoverMode::ForcePrimary => ActiveTarget::Primary,
        FailoverMode::ForceSecondary => ActiveTarget::Secondary,
        // Route 53 decides from health; the shared poller reports what it answers.
        FailoverMode::Auto => status.active_target.filter(|_| !primary_replaced).unwrap_or_default(),
    };
    Plan { status, steps, blocked: None, active_target, delegated }
}

/// The target and the failover role of a side's record.
pub fn side_target<'a>(spec: &'a DnsFailoverSpec, side: &str) -> (&'a String, r53::ResourceRecordSetFailover) {
    if side == "primary" {
        (&spec.primary.target, r53::ResourceRecordSetFailover::Primary)
    } else {
        (&spec.secondary.target, r53::ResourceRecordSetFailover::Secondary)
    }
}

/// Whether Route 53 serves the side's record as the spec wants it, naming `check` (empty: none).
fn record_in_place(
    spec: &DnsFailoverSpec,
    uid: &str,
    side: &str,
    check: &str,
    existing: &[r53::ResourceRecordSet],
) -> bool {
    let (target, failover) = side_target(spec, side);
    let set_id = set_identifier(uid, side);
    existing.iter().any(|e| {
        let values: Vec<String> = e.resource_records().iter().map(|v| normalize_dns_name(v.value())).collect();
        e.set_identifier() == Some(set_id.as_str())
            && e.failover() == Some(&failover)
            && e.ttl() == Some(spec.ttl)
            && e.health_check_id().unwrap_or_default() == check
            && values == [normalize_dns_name(target)]
    })
}

fn stop(status: DnsFailoverStatus, steps: Vec<Step>, blocked: Blocked) -> Plan {
    let active_target = status.active_target.unwrap_or_default();
    Plan { status, steps, blocked: Some(blocked), active_target, delegated: None }
}

#[cfg(test)]
mod tests;
