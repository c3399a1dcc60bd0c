//! The ownership inventory every kind keeps in `status.resources`: one entry per AWS object the
//! object created or adopted. These helpers keep the list canonical (unique, sorted, so a status
//! does not change with the order things were made in) and name records the same way for every
//! kind. What an entry means, and how it is deleted, is up to the kind's own inventory module.

use super::{Blocked, Managed};
use crate::api::validation::normalize_dns_name;
use crate::api::{AwsOverride, OwnedResource};
use crate::runtime::status::ObjectStatus;

/// Condition reason of an object whose `spec.aws` changed while it owns AWS objects.
pub const REASON_AWS_SCOPE_CHANGED: &str = "AwsScopeChanged";

/// What decides where AWS objects live: the role (its account) and the region. The external id
/// is only a credential for the role.
fn scope(aws: Option<&AwsOverride>) -> (Option<&str>, Option<&str>) {
    aws.map_or((None, None), |a| (a.role_arn.as_deref(), a.region.as_deref()))
}

/// The `spec.aws` the inventory was made with, when it is not the spec's own account role and
/// region and the inventory is not empty: its objects live there and are reached only with it.
fn recorded_elsewhere<K: Managed>(obj: &K) -> Option<&AwsOverride> {
    let status = obj.status_ref()?;
    let made_with = status.made_with()?;
    (!status.resources().is_empty() && scope(Some(made_with)) != scope(obj.aws_spec())).then_some(made_with)
}

/// The `spec.aws` to reach an object's AWS objects with (observe, apply, deletion): the one its
/// inventory was made with while the spec names another account or region, else the spec's.
pub fn aws_of<K: Managed>(obj: &K) -> Option<&AwsOverride> {
    recorded_elsewhere(obj).or(obj.aws_spec())
}

/// `spec.aws` names another account or region than the objects in the inventory were made in
/// (the schema forbids the change on Kubernetes 1.25+; older API servers let it through).
pub fn aws_scope_changed<K: Managed>(obj: &K) -> Option<Blocked> {
    let made_with = recorded_elsewhere(obj)?;
    let show = |a: Option<&AwsOverride>| match scope(a) {
        (None, None) => "the operator's own account and region".to_string(),
        (role, region) => format!(
            "role {} in region {}",
            role.unwrap_or("(the operator's own)"),
            region.unwrap_or("(the operator's own)")
        ),
    };
    Some(Blocked {
        reason: REASON_AWS_SCOPE_CHANGED,
        message: format!(
            "spec.aws: changed to {} while this object owns AWS objects made with {} (status.resources), which \
             only those credentials can delete; revert spec.aws, or delete this object (its AWS objects are \
             deleted where they were made) and create it again",
            show(obj.aws_spec()),
            show(Some(made_with))
        ),
    })
}

/// Record in `status.aws` the `spec.aws` this pass worked with (`{}` for the operator's own).
pub fn record_made_with<K: Managed>(obj: &K, status: &mut K::Status) {
    if let Some(slot) = status.made_with_mut() {
        *slot = Some(obj.aws_spec().cloned().unwrap_or_default());
    }
}

/// `type` of a Route 53 record entry (every kind names records the same way).
pub const RECORD: &str = "Record";

/// A record's inventory id: `<zone>/<name>/<type>[/<set id>]`, the name without its final dot.
pub fn record_id(zone: &str, name: &str, rtype: &str, set_id: Option<&str>) -> String {
    let base = format!("{zone}/{}/{rtype}", normalize_dns_name(name));
    match set_id {
        Some(s) => format!("{base}/{s}"),
        None => base,
    }
}

/// The parts of a record id: zone, name, type and set identifier.
pub fn parse_record_id(id: &str) -> Option<(&str, &str, &str, Option<&str>)> {
    let mut parts = id.splitn(4, '/');
    let (zone, name, rtype) = (parts.next()?, parts.next()?, parts.next()?);
    Some((zone, name, rtype, parts.next()))
}

/// Add `entry` unless an entry of the same type and id is there (the first one recorded wins).
pub fn add(resources: &mut Vec<OwnedResource>, entry: OwnedResource) {
    if !resources.iter().any(|r| r.type_ == entry.type_ && r.id == entry.id) {
        resources.push(entry);
        resources.sort();
    }
}

/// Add `entry`, replacing an entry of the same type and id (for entries whose `parent` or `name`
/// moves with the spec, e.g. the target a record was last written with).
pub fn put(resources: &mut Vec<OwnedResource>, entry: OwnedResource) {
    remove(resources, &entry.type_, &entry.id);
    add(resources, entry);
}

/// Remove the entry of `type_` and `id`.
pub fn remove(resources: &mut Vec<OwnedResource>, type_: &str, id: &str) {
    resources.retain(|r| !(r.type_ == type_ && r.id == id));
}

/// Entries of `type_` whose id is not in `keep`, in inventory order.
pub fn unwanted<'a>(resources: &'a [OwnedResource], type_: &str, keep: &[&str]) -> Vec<&'a OwnedResource> {
    resources.iter().filter(|r| r.type_ == type_ && !keep.contains(&r.id.as_str())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(type_: &str, id: &str, name: Option<&str>) -> OwnedResource {
        OwnedResource { type_: type_.into(), id: id.into(), parent: None, name: name.map(str::to_string) }
    }

    #[test]
    fn record_ids_round_trip_and_name_records_without_the_final_dot() {
        let id = record_id("Z1", "API.Example.com.", "CNAME", Some("uid-primary"));
        assert_eq!(id, "Z1/api.example.com/CNAME/uid-primary");
        assert_eq!(parse_record_id(&id), Some(("Z1", "api.example.com", "CNAME", Some("uid-primary"))));
        assert_eq!(parse_record_id("ZP/sub.example.com/NS"), Some(("ZP", "sub.example.com", "NS", None)));
        assert_eq!(parse_record_id("nonsense"), None);
    }

    #[test]
    fn entries_are_unique_and_sorted_add_keeps_the_first_and_put_replaces() {
        let mut r = Vec::new();
        add(&mut r, entry("B", "2", Some("first")));
        add(&mut r, entry("A", "1", None));
        add(&mut r, entry("B", "2", Some("second")));
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].type_, "A");
        assert_eq!(r[1].name.as_deref(), Some("first"), "add does not replace");
        put(&mut r, entry("B", "2", Some("second")));
        assert_eq!(r[1].name.as_deref(), Some("second"), "put replaces");
        assert_eq!(unwanted(&r, "B", &["2"]).len(), 0);
        assert_eq!(unwanted(&r, "B", &[]).len(), 1);
        remove(&mut r, "A", "1");
        assert_eq!(r.len(), 1);
    }
}
