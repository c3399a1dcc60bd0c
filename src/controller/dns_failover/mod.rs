//! The DnsFailover controller: health checks whose CallerReferences (stem + nonce) are recorded in
//! the inventory before each create, the PRIMARY/SECONDARY record pair (changes merged per zone by
//! the shared Route 53 batcher), the manual DR switch through the primary's health check, NS
//! delegation into the parent zone, status (with the health poller's readings applied here: this
//! is the one writer of the status), cleanup of what an edit no longer wants and deletion, both
//! from the inventory in `status.resources`.

pub mod aws;
mod cleanup;
pub mod health;
pub mod inventory;
pub mod plan;
pub mod readings;

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_route53::types as r53;
use kube::Resource;
use kube::api::Api;
use kube::runtime::controller::Action;

use self::aws::FailoverAws;
use self::plan::{
    HealthCheckAction, HealthCheckConfig, caller_reference, desired_health_check, health_check_action, set_identifier,
};
use super::{
    Blocked, PassEnd, ReconcileError, StatusWriter, finish_pass, jittered, record_paused, with_finalizer, write_status,
};
use crate::api::dns_failover::{
    ActiveTarget, ChangeStatus, DnsFailover, DnsFailoverStatus, FailoverMode, HealthCheckStatus, HealthChecksStatus,
};
use crate::api::validation::{normalize_dns_name, normalize_zone_id, validate_dns_failover};
use crate::aws::AwsError;
use crate::aws::errors::build_error;
use crate::runtime::Context;
use crate::runtime::conditions::{self, READY, REASON_INVALID_SPEC, REASON_NAME_CONFLICT};
use crate::runtime::status::ObjectStatus;

const KIND: &str = "DnsFailover";
const SIDES: [&str; 2] = ["primary", "secondary"];

async fn clients(ctx: &Context, obj: &DnsFailover) -> Result<FailoverAws, ReconcileError> {
    let cfg = ctx.aws.config_for(obj.spec.aws.as_ref()).await;
    Ok(FailoverAws {
        caller: ctx.caller.clone(),
        r53: ctx.aws.route53(&cfg),
        batcher: ctx.route53.clone(),
        scope: obj.spec.aws.as_ref().map_or_else(String::new, |a| {
            format!(
                "{}|{}|{}",
                a.role_arn.as_deref().unwrap_or(""),
                a.external_id.as_deref().unwrap_or(""),
                a.region.as_deref().unwrap_or("")
            )
        }),
        facts: ctx.facts.clone(),
        owner: super::owner_of(ctx, obj, KIND)?,
    })
}

/// Reconcile one DnsFailover (the controller's entry point).
pub async fn reconcile(obj: Arc<DnsFailover>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    with_finalizer(
        obj,
        ctx,
        |api, obj, ctx| async move { apply(&api, obj, &ctx).await },
        |api, obj, ctx| async move { cleanup::cleanup(&api, obj, &ctx).await },
    )
    .await
}

async fn apply(api: &Api<DnsFailover>, obj: Arc<DnsFailover>, ctx: &Context) -> Result<Action, ReconcileError> {
    let generation = obj.meta().generation;
    let old = obj.status.clone().unwrap_or_default();
    let mut status = old.clone();
    status.observed_generation = generation;
    if obj.spec.policy.paused {
        record_paused(&mut status, generation);
        write_status(api, &obj, &status, ctx).await?;
        return Ok(Action::requeue(jittered(ctx.config.resync())));
    }
    let aws = clients(ctx, &obj).await?;
    let writer = StatusWriter::new(api, obj.as_ref(), &ctx.metrics);
    let persist = Persist { writer: &writer };
    let outcome = converge(&obj, &aws, &mut status, &persist).await;
    // The poller's latest reading of the checks this status now names (the one status writer).
    let flip = readings::apply_reading(
        &mut status,
        &obj,
        ctx.health.latest(&obj).as_ref(),
        k8s_openapi::jiff::Timestamp::now(),
    );
    let end = match outcome {
        Ok(None) => {
            conditions::set_condition(
                status.conditions_mut(),
                READY,
                true,
                "RecordsInPlace",
                "Route 53 serves the failover pair as specified",
                generation,
            );
            let pending = status.change.as_ref().is_some_and(|c| c.status == "PENDING");
            let requeue = if pending { Duration::from_secs(10) } else { jittered(ctx.config.resync()) };
            PassEnd::Converged { message: "health checks and both records match the spec", requeue }
        }
        Ok(Some(b)) => PassEnd::Blocked(b),
        Err(err) => PassEnd::Failed(err),
    };
    let (result, written) = finish_pass(&writer, obj.as_ref(), ctx, &old, status, end).await;
    if !written {
        return result;
    }
    if let Some(f) = flip {
        let note = format!("Route 53 now answers the {:?} target ({})", f.to, f.reason).to_lowercase();
        ctx.events.warning(obj.as_ref(), &f.reason, "Failover", note).await;
    }
    result
}

fn side_status<'a>(status: &'a mut DnsFailoverStatus, side: &str) -> &'a mut HealthCheckStatus {
    let checks = status.health_checks.get_or_insert_with(HealthChecksStatus::default);
    if side == "primary" { &mut checks.primary } else { &mut checks.secondary }
}

/// Writes the status in the middle of a pass, so that a create's idempotency token is recorded
/// before the create is sent (the pass's final write comes at its end, as always).
struct Persist<'a> {
    writer: &'a StatusWriter<'a, DnsFailover>,
}

impl Persist<'_> {
    /// Record `status.resources` (see [`StatusWriter::record`]).
    async fn write(&self, status: &DnsFailoverStatus) -> Result<(), AwsError> {
        self.writer.record_resources(&status.resources).await
    }
}

/// Create the side's check with the reference planned for it: planned (stem + nonce) and recorded
/// first when there is none, repeated as it is after a lost answer (Route 53 then returns the
/// check it made).
async fn create_planned(
    aws: &FailoverAws,
    status: &mut DnsFailoverStatus,
    stem: &str,
    want: &HealthCheckConfig,
    persist: &Persist<'_>,
) -> Result<String, AwsError> {
    let reference = match inventory::planned(&status.resources, stem) {
        Some(r) => r,
        None => {
            let nonce: String = uuid::Uuid::new_v4().simple().to_string().chars().take(6).collect();
            let r = format!("{stem}-{nonce}");
            inventory::plan_create(&mut status.resources, &r);
            persist.write(status).await?;
            r
        }
    };
    let tags = aws.owner.tags(&Default::default());
    let id = match aws.create_health_check(&reference, want, &tags).await {
        Ok(id) => id,
        // The reference with other settings (the mode changed after a lost answer), or a deleted
        // check's: find the check by its reference; with none, the next pass plans a new one.
        Err(e) if e.code == "HealthCheckAlreadyExists" => match aws.find_by_reference(&reference).await? {
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
                inventory::unplan(&mut status.resources, &reference);
                return Err(e);
            }
        },
        Err(e) => return Err(e),
    };
    inventory::unplan(&mut status.resources, &reference);
    inventory::add(&mut status.resources, inventory::health_check(&id, Some(&reference)));
    Ok(id)
}

/// Ensure one side's health check; returns its id (empty when the side has none).
async fn ensure_health_check(
    aws: &FailoverAws,
    status: &mut DnsFailoverStatus,
    side: &str,
    want: Option<HealthCheckConfig>,
    persist: &Persist<'_>,
) -> Result<String, AwsError> {
    let recorded = side_status(status, side).id.clone();
    // A check the status names is in the inventory until it is deleted, even if a later step of
    // this pass fails after its replacement took its place in status.
    if !recorded.is_empty() {
        inventory::add(&mut status.resources, inventory::health_check(&recorded, None));
    }
    let Some(want) = want else {
        *side_status(status, side) = HealthCheckStatus::default();
        return Ok(String::new());
    };
    let stem = caller_reference(&aws.owner.uid, side, &want);
    let have =
        if recorded.is_empty() { None } else { aws.health_check(&recorded).await?.map(|h| (recorded.clone(), h)) };
    let id = match have {
        Some((id, have)) => match health_check_action(&want, &have) {
            HealthCheckAction::Keep => id,
            HealthCheckAction::Update => {
                aws.update_health_check(&id, &want).await?;
                id
            }
            // The old check (listed in the inventory) goes after the records point at the new one.
            HealthCheckAction::Replace => create_planned(aws, status, &stem, &want, persist).await?,
        },
        None => create_planned(aws, status, &stem, &want, persist).await?,
    };
    inventory::add(&mut status.resources, inventory::health_check(&id, None));
    let entry = side_status(status, side);
    if entry.id != id {
        // A new check has no reading yet: Unknown, so the poller reads it first.
        entry.status = crate::api::dns_failover::HealthState::Unknown;
    }
    entry.id = id.clone();
    Ok(id)
}

fn record(
    name: &str,
    ttl: i64,
    side: &str,
    uid: &str,
    target: &str,
    health_check: &str,
) -> Result<r53::ResourceRecordSet, AwsError> {
    r53::ResourceRecordSet::builder()
        .name(format!("{}.", name.trim_end_matches('.')))
        .r#type(r53::RrType::Cname)
        .ttl(ttl)
        .set_identifier(set_identifier(uid, side))
        .failover(if side == "primary" {
            r53::ResourceRecordSetFailover::Primary
        } else {
            r53::ResourceRecordSetFailover::Secondary
        })
        .set_health_check_id((!health_check.is_empty()).then(|| health_check.to_string()))
        .resource_records(
            r53::ResourceRecord::builder().value(target.trim_end_matches('.')).build().map_err(build_error)?,
        )
        .build()
        .map_err(build_error)
}

fn same_record(a: &r53::ResourceRecordSet, b: &r53::ResourceRecordSet) -> bool {
    let values = |r: &r53::ResourceRecordSet| -> Vec<String> {
        r.resource_records().iter().map(|v| normalize_dns_name(v.value())).collect()
    };
    a.set_identifier() == b.set_identifier()
        && a.failover() == b.failover()
        && a.ttl() == b.ttl()
        && a.health_check_id().unwrap_or_default() == b.health_check_id().unwrap_or_default()
        && values(a) == values(b)
}

async fn converge(
    obj: &DnsFailover,
    aws: &FailoverAws,
    status: &mut DnsFailoverStatus,
    persist: &Persist<'_>,
) -> Result<Option<Blocked>, AwsError> {
    let spec = &obj.spec;
    let zone = normalize_zone_id(&spec.hosted_zone_id).to_string();
    let (zone_name, name_servers) = match aws.zone(&zone).await {
        Ok(z) => z,
        Err(e) if e.is_not_found() => {
            return Ok(Some(Blocked {
                reason: "ZoneNotFound",
                message: format!("spec.hostedZoneId: hosted zone {zone:?} does not exist in this account"),
            }));
        }
        Err(e) => return Err(e),
    };
    if let Err(errs) = validate_dns_failover(spec, Some(&zone_name)) {
        return Ok(Some(Blocked { reason: REASON_INVALID_SPEC, message: errs.to_string() }));
    }
    let uid = aws.owner.uid.clone();
    let ours: Vec<String> = SIDES.iter().map(|s| set_identifier(&uid, s)).collect();
    let existing = aws.records_at(&zone, &spec.name).await?;
    if let Some(foreign) = existing.iter().find(|r| !r.set_identifier().is_some_and(|id| ours.iter().any(|o| o == id)))
    {
        return Ok(Some(Blocked {
            reason: REASON_NAME_CONFLICT,
            message: format!(
                "{} already has a {} record this object does not own (set identifier {:?}); it is left untouched",
                spec.name,
                foreign.r#type().as_str(),
                foreign.set_identifier().unwrap_or("none")
            ),
        }));
    }

    let primary_want = desired_health_check(&spec.primary.health_check, &spec.primary.target, spec.mode);
    let old_primary = status.health_checks.as_ref().map(|h| h.primary.id.clone()).unwrap_or_default();
    let primary_id = ensure_health_check(aws, status, "primary", Some(primary_want), persist).await?;
    let secondary_want = spec
        .secondary
        .health_check
        .as_ref()
        .map(|hc| desired_health_check(hc, &spec.secondary.target, FailoverMode::Auto));
    let secondary_id = ensure_health_check(aws, status, "secondary", secondary_want, persist).await?;

    let desired = [
        record(&spec.name, spec.ttl, "primary", &uid, &spec.primary.target, &primary_id)?,
        record(&spec.name, spec.ttl, "secondary", &uid, &spec.secondary.target, &secondary_id)?,
    ];
    // Listed before they are written: an answer lost after Route 53 applied the change must not
    // leave records no inventory names.
    let mut keep_records: Vec<String> = Vec::new();
    for side in SIDES {
        let entry = inventory::record(&zone, &spec.name, "CNAME", Some(&set_identifier(&uid, side)));
        keep_records.push(entry.id.clone());
        inventory::add(&mut status.resources, entry);
    }
    let in_place = desired.iter().all(|d| existing.iter().any(|e| same_record(d, e)));
    if !in_place {
        // Both records in one ChangeBatch: Route 53 never serves half a pair.
        let changes = desired
            .iter()
            .map(|set| {
                r53::Change::builder()
                    .action(r53::ChangeAction::Upsert)
                    .resource_record_set(set.clone())
                    .build()
                    .map_err(build_error)
            })
            .collect::<Result<Vec<_>, _>>()?;
        if let Some((id, state)) = aws.change(&zone, changes).await? {
            status.change = Some(ChangeStatus { id, status: state });
        }
    }
    // Only a new primary check makes the active side unknown (it decides the failover).
    let replaced = !old_primary.is_empty() && old_primary != primary_id;
    if let Some(delegation) = &spec.delegation {
        if let Some(blocked) =
            ensure_delegation(aws, delegation, (&zone, &zone_name), &name_servers, status, obj.meta().generation)
                .await?
        {
            return Ok(Some(blocked));
        }
        keep_records.push(inventory::record_id(
            normalize_zone_id(&delegation.parent_hosted_zone_id),
            &zone_name,
            "NS",
            None,
        ));
    } else {
        status.delegation = None;
        status.conditions.retain(|c| c.type_ != "DelegationReady");
    }
    // Records of an earlier name, zone or delegation: deleted while they are still ours.
    for id in inventory::unwanted_records(&status.resources, &keep_records) {
        let entry = status.resources.iter().find(|r| r.id == id).cloned();
        if let Some(entry) = entry
            && inventory::delete_record(aws, &entry).await?
        {
            inventory::remove(&mut status.resources, inventory::RECORD, &id);
        }
    }
    // Then checks no side uses any more (Route 53 refuses to delete one a record still uses): from
    // the inventory, so a check replaced in a pass that then failed is still deleted.
    for id in inventory::unwanted_checks(&status.resources, &[primary_id.as_str(), secondary_id.as_str()]) {
        aws.delete_health_check(&id).await?;
        inventory::remove(&mut status.resources, inventory::HEALTH_CHECK, &id);
    }
    // A planned create still listed here was left by an edit after its answer was lost (the side's
    // check removed or its type changed): the check it may have made is found by its reference.
    let stale: Vec<String> =
        status.resources.iter().filter(|r| inventory::is_planned(r)).filter_map(|r| r.name.clone()).collect();
    for reference in stale {
        if let Some(id) = aws.find_by_reference(&reference).await? {
            aws.delete_health_check(&id).await?;
        }
        inventory::unplan(&mut status.resources, &reference);
    }
    // Propagation: a PENDING change is followed with GetChange until INSYNC.
    if let Some(change) = status.change.as_mut()
        && change.status == "PENDING"
        && let Some(now) = aws.change_status(&change.id).await?
    {
        change.status = now;
    }
    let pending = status.change.as_ref().is_some_and(|c| c.status == "PENDING");
    conditions::set_condition(
        status.conditions_mut(),
        crate::runtime::conditions::PROGRESSING,
        pending,
        if pending { "ChangePending" } else { "ChangeInSync" },
        if pending { "Route 53 is propagating the last change" } else { "the last Route 53 change is in sync" },
        obj.meta().generation,
    );
    status.active_target = Some(match spec.mode {
        FailoverMode::ForcePrimary => ActiveTarget::Primary,
        FailoverMode::ForceSecondary => ActiveTarget::Secondary,
        // Route 53 decides from health; the shared poller (health.rs) reports what it answers.
        FailoverMode::Auto => status.active_target.filter(|_| !replaced).unwrap_or_default(),
    });
    Ok(None)
}

/// NS values of the record named `zone_name` in the parent zone, sorted and normalised.
async fn parent_ns(
    aws: &FailoverAws,
    parent: &str,
    zone_name: &str,
) -> Result<Option<(r53::ResourceRecordSet, Vec<String>)>, AwsError> {
    let sets = aws.records_at(parent, zone_name).await?;
    Ok(sets.into_iter().find(|r| *r.r#type() == r53::RrType::Ns).map(|r| {
        let mut values: Vec<String> = r.resource_records().iter().map(|v| normalize_dns_name(v.value())).collect();
        values.sort();
        (r, values)
    }))
}

/// UPSERT the zone's NS record into its parent so the zone resolves; `DelegationReady` when it
/// matches. An NS record there with other servers is someone else's delegation: NameConflict.
async fn ensure_delegation(
    aws: &FailoverAws,
    delegation: &crate::api::dns_failover::Delegation,
    (zone, zone_name): (&str, &str),
    name_servers: &[String],
    status: &mut DnsFailoverStatus,
    generation: Option<i64>,
) -> Result<Option<Blocked>, AwsError> {
    let parent = normalize_zone_id(&delegation.parent_hosted_zone_id).to_string();
    let current = match parent_ns(aws, &parent, zone_name).await {
        Ok(c) => c,
        Err(e) if e.is_not_found() => {
            return Ok(Some(Blocked {
                reason: "ZoneNotFound",
                message: format!(
                    "spec.delegation.parentHostedZoneId: hosted zone {parent:?} does not exist in this account"
                ),
            }));
        }
        Err(e) => return Err(e),
    };
    let recorded = status.delegation.as_ref().map(|d| d.name_servers.clone()).unwrap_or_default();
    let in_sync = match &current {
        Some((set, values)) if values == name_servers && set.ttl() == Some(delegation.ttl) => true,
        Some((_, values)) if values != name_servers && *values != recorded => {
            return Ok(Some(Blocked {
                reason: REASON_NAME_CONFLICT,
                message: format!(
                    "the parent zone already delegates {zone_name} to other name servers ({}); it is left untouched",
                    values.join(", ")
                ),
            }));
        }
        _ => false,
    };
    // Listed (with the zone whose servers make it ours) before it is written, and also when it is in
    // place already: a pass that read a status older than its own last write must not drop it.
    inventory::add(&mut status.resources, inventory::delegation(&parent, zone_name, zone));
    if !in_sync {
        let set = r53::ResourceRecordSet::builder()
            .name(zone_name)
            .r#type(r53::RrType::Ns)
            .ttl(delegation.ttl)
            .set_resource_records(Some(
                name_servers
                    .iter()
                    .map(|n| r53::ResourceRecord::builder().value(format!("{n}.")).build().map_err(build_error))
                    .collect::<Result<Vec<_>, _>>()?,
            ))
            .build()
            .map_err(build_error)?;
        let change = r53::Change::builder()
            .action(r53::ChangeAction::Upsert)
            .resource_record_set(set)
            .build()
            .map_err(build_error)?;
        aws.change(&parent, vec![change]).await?;
    }
    status.delegation =
        Some(crate::api::dns_failover::DelegationStatus { name_servers: name_servers.to_vec(), in_sync: true });
    conditions::set_condition(
        status.conditions_mut(),
        "DelegationReady",
        true,
        "Delegated",
        &format!("the parent zone delegates {} to its name servers", zone_name.trim_end_matches('.')),
        generation,
    );
    Ok(None)
}
