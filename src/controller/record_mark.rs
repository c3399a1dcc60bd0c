//! Ownership marks of Route 53 records, which carry no tags: a TXT record next to the record, as
//! external-dns writes, at `_fargate-operator.<name>` (a TXT cannot share a name with a CNAME),
//! saying `heritage=fargate-operator,owner=<cluster id>/<namespace>/<kind>/<name>`. It is written
//! and deleted in the same change batch as the record it marks (FargateApp records, DnsFailover NS
//! delegations). A record marked by another owner is never changed or deleted; one marked by the
//! object is its own even when the status that recorded it is lost.

use aws_sdk_route53::types as r53;

use crate::aws::AwsError;
use crate::aws::errors::build_error;
use crate::aws::naming::Owner;

/// The first label of the ownership TXT record next to a record (a TXT cannot share a name with
/// a CNAME, so it sits one label below).
pub const MARK_LABEL: &str = "_fargate-operator";

/// What the ownership TXT record next to a record says.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Mark {
    /// No mark (no TXT record, or one this operator did not write).
    #[default]
    None,
    /// Ours: the record set of the mark (deleted with the record).
    Ours(Box<r53::ResourceRecordSet>),
    /// Another owner's (`<cluster id>/<namespace>/<kind>/<name>`).
    Other(String),
    /// Not read this pass: the record is in place and recorded as ours, so nothing is written or
    /// deleted; the mark is read on a spec change and on the periodic full check (Route 53's read
    /// budget is the scarcest).
    Unread,
}

/// The name of the mark of the record `name`.
pub fn mark_name(name: &str) -> String {
    format!("{MARK_LABEL}.{}.", name.trim_end_matches('.'))
}

/// The owner a mark names: `<cluster id>/<namespace>/<kind>/<name>`.
fn mark_owner(owner: &Owner) -> String {
    format!("{}/{}", owner.cluster_id, owner.owner_value())
}

/// The mark record set of the record `name`, written by `owner`.
pub fn mark_set(name: &str, owner: &Owner) -> Result<r53::ResourceRecordSet, AwsError> {
    let value = format!("\"heritage=fargate-operator,owner={}\"", mark_owner(owner));
    r53::ResourceRecordSet::builder()
        .name(mark_name(name))
        .r#type(r53::RrType::Txt)
        .ttl(300)
        .resource_records(r53::ResourceRecord::builder().value(value).build().map_err(build_error)?)
        .build()
        .map_err(build_error)
}

/// What the TXT record set `found` at a record's mark name says about `owner`'s claim.
pub fn mark_of(found: Option<&r53::ResourceRecordSet>, owner: &Owner) -> Mark {
    let Some(set) = found else { return Mark::None };
    let named = set.resource_records().iter().find_map(|v| {
        let v = v.value().trim_matches('"');
        let fields = v.strip_prefix("heritage=fargate-operator,")?;
        fields.split(',').find_map(|f| f.strip_prefix("owner=")).map(str::to_string)
    });
    match named {
        Some(o) if o == mark_owner(owner) => Mark::Ours(Box::new(set.clone())),
        Some(o) => Mark::Other(o),
        None => Mark::None,
    }
}
