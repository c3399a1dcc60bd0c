//! The ownership inventory every kind keeps in `status.resources`: one entry per AWS object the
//! object created or adopted. These helpers keep the list canonical (unique, sorted, so a status
//! does not change with the order things were made in) and name records the same way for every
//! kind. What an entry means, and how it is deleted, is up to the kind's own inventory module.

use crate::api::OwnedResource;
use crate::api::validation::normalize_dns_name;

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
