//! What one DnsFailover pass reads from Route 53 before it plans: the hosted zone (cached for the
//! process), the record sets at `spec.name`, the health checks status names, and the parent zone's
//! NS record when the spec delegates. Reading stops where the plan would stop anyway (no zone, an
//! invalid spec, a record someone else owns at the name).

use aws_sdk_route53::types as r53;

use super::aws::FailoverAws;
use super::plan::HealthCheckConfig;
use super::steps::{SIDES, gate, recorded_check, wanted_checks};
use crate::api::dns_failover::{DnsFailoverSpec, DnsFailoverStatus};
use crate::api::validation::{normalize_dns_name, normalize_zone_id};
use crate::aws::AwsError;

/// The hosted zone of `spec.hostedZoneId`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Zone {
    /// Its name (with the trailing dot Route 53 gives it).
    pub name: String,
    /// Its name servers, lower case without trailing dot, sorted.
    pub name_servers: Vec<String>,
}

/// The parent zone's NS record for our zone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParentNs {
    /// The parent zone does not exist.
    ZoneMissing,
    /// There is no NS record for our zone's name.
    Absent,
    /// The NS record: its TTL and its values (normalised, sorted).
    Present {
        /// TTL.
        ttl: Option<i64>,
        /// Name servers.
        values: Vec<String>,
    },
}

/// Everything a pass read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    /// The zone; `None` when it does not exist.
    pub zone: Option<Zone>,
    /// Record sets named `spec.name`.
    pub records: Vec<r53::ResourceRecordSet>,
    /// Per side (primary, secondary): the check status names, as Route 53 has it; `None` when
    /// there is none, the side wants none, or it is gone.
    pub checks: [Option<HealthCheckConfig>; 2],
    /// The parent's NS record (read only when the spec delegates).
    pub parent: Option<ParentNs>,
    /// Another DnsFailover (`namespace/name`, created earlier) whose spec delegates the same zone
    /// from the same parent. Read only while this object has not recorded the delegation as its
    /// own: one object manages a delegation, so that deleting the other never un-delegates it.
    pub delegated_by: Option<String>,
    /// The ownership mark next to the parent's NS record (read only when the spec delegates).
    pub delegation_mark: crate::controller::record_mark::Mark,
    /// The delegation's name (the zone's), refused by the namespace's AccessPolicies.
    pub not_permitted: Option<crate::controller::Blocked>,
}

/// Read what the plan needs.
pub async fn observe(
    aws: &FailoverAws,
    spec: &DnsFailoverSpec,
    status: &DnsFailoverStatus,
) -> Result<Observed, AwsError> {
    let zone_id = normalize_zone_id(&spec.hosted_zone_id).to_string();
    let mut observed = Observed::default();
    observed.zone = match aws.zone(&zone_id).await {
        Ok((name, name_servers)) => Some(Zone { name, name_servers }),
        Err(e) if e.is_not_found() => return Ok(observed),
        Err(e) => return Err(e),
    };
    if gate(spec, &aws.owner.uid, observed.zone.as_ref(), &[]).is_some() {
        return Ok(observed);
    }
    observed.records = aws.records_at(&zone_id, &spec.name).await?;
    if gate(spec, &aws.owner.uid, observed.zone.as_ref(), &observed.records).is_some() {
        return Ok(observed);
    }
    // Both at once: asked together they share one read (see `aws::route53_reads`).
    let reads = SIDES.iter().zip(wanted_checks(spec)).map(|(side, want)| {
        let recorded = recorded_check(status, side);
        async move {
            match want {
                Some(_) if !recorded.is_empty() => aws.health_check(&recorded).await,
                _ => Ok(None),
            }
        }
    });
    for (slot, read) in observed.checks.iter_mut().zip(futures::future::join_all(reads).await) {
        *slot = read?;
    }
    if let (Some(delegation), Some(zone)) = (&spec.delegation, &observed.zone) {
        let parent = normalize_zone_id(&delegation.parent_hosted_zone_id);
        observed.parent = Some(match parent_ns(aws, parent, &zone.name).await {
            Ok(Some((ttl, values))) => ParentNs::Present { ttl, values },
            Ok(None) => ParentNs::Absent,
            Err(e) if e.is_not_found() => ParentNs::ZoneMissing,
            Err(e) => return Err(e),
        });
        if observed.parent != Some(ParentNs::ZoneMissing) {
            observed.delegation_mark = delegation_mark(aws, parent, &zone.name).await?;
        }
    }
    Ok(observed)
}

/// The ownership mark of the delegation of `zone_name` in `parent`, as it concerns this object.
pub async fn delegation_mark(
    aws: &FailoverAws,
    parent: &str,
    zone_name: &str,
) -> Result<crate::controller::record_mark::Mark, AwsError> {
    use crate::controller::record_mark::{mark_name, mark_of};
    let sets = aws.records_at(parent, &mark_name(zone_name)).await?;
    Ok(mark_of(sets.iter().find(|r| *r.r#type() == r53::RrType::Txt), &aws.owner))
}

/// TTL and NS values (sorted, normalised) of the record named `zone_name` in the parent zone.
async fn parent_ns(
    aws: &FailoverAws,
    parent: &str,
    zone_name: &str,
) -> Result<Option<(Option<i64>, Vec<String>)>, AwsError> {
    let sets = aws.records_at(parent, zone_name).await?;
    Ok(sets.into_iter().find(|r| *r.r#type() == r53::RrType::Ns).map(|r| {
        let mut values: Vec<String> = r.resource_records().iter().map(|v| normalize_dns_name(v.value())).collect();
        values.sort();
        (r.ttl(), values)
    }))
}
