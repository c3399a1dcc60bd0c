//! A pair or delegation write that landed after the object changed. The write was fenced before it
//! was sent (`StatusWriter::record_resources` is refused on a changed object), but not during its
//! flight (its wait in the zone's batch and for the Route 53 budget, its retries): a pass planned
//! from the newer spec may meanwhile have deleted those records and dropped their entries, and the
//! late write would then leave records nothing deletes. After such a write the pass reads the
//! object again; when it changed and no longer wants what was written (another zone or name, no
//! delegation or another parent, being deleted, gone, or re-created under the same name), the pass
//! deletes those records again while they are still ours, and drops their entries.

use super::aws::FailoverAws;
use super::inventory;
use super::steps::{SIDES, set_identifier};
use crate::api::OwnedResource;
use crate::api::dns_failover::{DnsFailover, DnsFailoverSpec, DnsFailoverStatus};
use crate::api::validation::normalize_zone_id;
use crate::aws::AwsError;
use crate::controller::StatusWriter;

/// The inventory ids of the failover pair `spec` asks for, as object `uid`.
pub fn pair_ids(spec: &DnsFailoverSpec, uid: &str) -> Vec<String> {
    let zone = normalize_zone_id(&spec.hosted_zone_id);
    SIDES.iter().map(|side| inventory::record(zone, &spec.name, "CNAME", Some(&set_identifier(uid, side))).id).collect()
}

/// The live object `latest` as it is now (`None`: gone), when it is still the object `uid`.
fn live<'a>(latest: Option<&'a DnsFailover>, uid: &str) -> Option<&'a DnsFailover> {
    latest.filter(|o| o.metadata.deletion_timestamp.is_none() && o.metadata.uid.as_deref() == Some(uid))
}

/// Whether `latest` still wants the pair `written` (the ids of [`pair_ids`]).
pub fn wants_pair(latest: Option<&DnsFailover>, uid: &str, written: &[String]) -> bool {
    live(latest, uid).is_some_and(|o| pair_ids(&o.spec, uid) == written)
}

/// Whether `latest` still wants the delegation of its zone into `parent` that `spec` wrote.
pub fn wants_delegation(latest: Option<&DnsFailover>, uid: &str, spec: &DnsFailoverSpec, parent: &str) -> bool {
    live(latest, uid).is_some_and(|o| {
        normalize_zone_id(&o.spec.hosted_zone_id) == normalize_zone_id(&spec.hosted_zone_id)
            && o.spec.delegation.as_ref().is_some_and(|d| normalize_zone_id(&d.parent_hosted_zone_id) == parent)
    })
}

/// After a write of the records `ids` (entries of `status`): when the object changed since the
/// pass read it and `wanted` says the object as it is now does not want them, delete them again
/// and drop their entries.
pub async fn undo_if_unwanted(
    aws: &FailoverAws,
    writer: &StatusWriter<'_, DnsFailover>,
    status: &mut DnsFailoverStatus,
    ids: &[String],
    wanted: impl FnOnce(Option<&DnsFailover>) -> bool,
) -> Result<(), AwsError> {
    let Some(latest) = writer.changed_since_read().await? else { return Ok(()) };
    if wanted(latest.as_ref()) {
        return Ok(());
    }
    let written: Vec<OwnedResource> = status.resources.iter().filter(|r| ids.contains(&r.id)).cloned().collect();
    for entry in written {
        inventory::delete_record(aws, &entry).await?;
        inventory::remove(&mut status.resources, inventory::RECORD, &entry.id);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failover(uid: &str, extra: serde_json::Value) -> DnsFailover {
        let mut v = serde_json::json!({
            "apiVersion": "fargate.operator.dev/v1alpha1", "kind": "DnsFailover",
            "metadata": {"name": "dr", "namespace": "team-a", "uid": uid},
            "spec": {
                "hostedZoneId": "/hostedzone/Z1", "name": "www.example.com",
                "primary": {"target": "a.example.com", "healthCheck": {"type": "HTTPS", "path": "/"}},
                "secondary": {"target": "b.example.com"},
                "delegation": {"parentHostedZoneId": "ZPARENT"}
            }
        });
        for (k, val) in extra.as_object().into_iter().flatten() {
            v["spec"][k] = val.clone();
        }
        serde_json::from_value(v).expect("a DnsFailover")
    }

    #[test]
    fn a_late_write_is_wanted_only_by_the_same_live_object_with_the_same_names() {
        let dr = failover("u1", serde_json::json!({}));
        let written = pair_ids(&dr.spec, "u1");
        assert_eq!(written.len(), 2);
        assert!(wants_pair(Some(&dr), "u1", &written));
        assert!(wants_pair(Some(&failover("u1", serde_json::json!({"hostedZoneId": "Z1"}))), "u1", &written));
        let renamed = failover("u1", serde_json::json!({"name": "web.example.com"}));
        assert!(!wants_pair(Some(&renamed), "u1", &written), "renamed");
        assert!(!wants_pair(Some(&failover("u2", serde_json::json!({}))), "u1", &written), "re-created");
        assert!(!wants_pair(None, "u1", &written), "gone");
        let mut deleting = dr.clone();
        deleting.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time("2026-12-06T00:00:00Z".parse().expect("time")));
        assert!(!wants_pair(Some(&deleting), "u1", &written), "being deleted");

        assert!(wants_delegation(Some(&dr), "u1", &dr.spec, "ZPARENT"));
        let other_parent = failover("u1", serde_json::json!({"delegation": {"parentHostedZoneId": "ZOTHER"}}));
        assert!(!wants_delegation(Some(&other_parent), "u1", &dr.spec, "ZPARENT"));
        let mut undelegated = dr.clone();
        undelegated.spec.delegation = None;
        assert!(!wants_delegation(Some(&undelegated), "u1", &dr.spec, "ZPARENT"));
        let moved = failover("u1", serde_json::json!({"hostedZoneId": "Z2"}));
        assert!(!wants_delegation(Some(&moved), "u1", &dr.spec, "ZPARENT"), "another zone");
    }
}
