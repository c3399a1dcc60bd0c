//! What one FargateApp full pass reads before it plans: the load balancer behind the spec's listener
//! (remembered by the process), the target group named after the app (its attributes only when
//! asked), the listener's rules with ownership, the ECS service, the task definition revision that
//! carries the rendered content hash, the record the spec asks for and the recorded ones it no
//! longer does, and what planned creates whose answers were lost made. Reading stops where the plan
//! stops anyway (the listener gone, a name or priority conflict, the cluster missing, a record
//! someone else owns), using the same gates as [`plan`](super::steps::plan).

use aws_sdk_route53::types as r53;

use super::aws::FargateAws;
use super::cleanup::made_by;
use super::inventory::{self, LISTENER_RULE, SERVICE, TARGET_GROUP};
use super::plan::{ObservedRule, ObservedService, ObservedTargetGroup};
use super::steps::{record_gate, rule_gate, service_gate, target_group_gate, zone_gate};
use super::{Names, dns, service};
use crate::api::OwnedResource;
use crate::api::fargate_app::{FargateAppSpec, FargateAppStatus};
use crate::api::validation::normalize_zone_id;
use crate::aws::AwsError;
use crate::aws::facts::ListenerInfo;

/// The spec's listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Listener {
    /// It exists, on this load balancer.
    Found(ListenerInfo),
    /// It does not exist (any more).
    Gone,
}

/// Everything a full pass read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    /// The spec's listener; `None` when the spec names none.
    pub listener: Option<Listener>,
    /// The target group named after the app, and whether it carries our owner tags.
    pub target_group: Option<(ObservedTargetGroup, bool)>,
    /// The rules of the spec's listener (the default rule left out).
    pub rules: Vec<ObservedRule>,
    /// How many rule creates and priority moves this process had sent on the listener when
    /// `rules` was read (see [`Facts::listener_lock`](crate::aws::facts::Facts::listener_lock)).
    pub rules_seen: u64,
    /// Per planned create read: the planned entry and the entries for what it made (none: nothing).
    pub planned: Vec<(OwnedResource, Vec<OwnedResource>)>,
    /// `spec.cluster` does not exist.
    pub cluster_missing: bool,
    /// The ECS service named after the app (not INACTIVE).
    pub service: Option<ObservedService>,
    /// The revision carrying the rendered content hash and our owner tags, if there is one.
    pub revision: Option<String>,
    /// How many ACTIVE revisions the family had, when this pass listed them.
    pub active_revisions: Option<usize>,
    /// The name of `spec.dns`'s hosted zone (`None`: no record asked for, or the zone not found).
    pub zone_name: Option<String>,
    /// The record at `spec.dns`'s name and type.
    pub record: Option<r53::ResourceRecordSet>,
    /// The ownership mark next to it.
    pub record_mark: dns::Mark,
    /// The recorded records the spec no longer asks for, each with the record set it names and its
    /// mark while that is still ours (`None`: gone, or no longer ours).
    pub old_records: Vec<(OwnedResource, Option<(r53::ResourceRecordSet, dns::Mark)>)>,
}

impl Observed {
    /// The load balancer behind the spec's listener, when it exists.
    pub fn listener_info(&self) -> Option<&ListenerInfo> {
        match &self.listener {
            Some(Listener::Found(info)) => Some(info),
            _ => None,
        }
    }
}

/// Read what the plan needs. `hash`: the rendered task definition's content hash.
pub async fn observe(
    aws: &FargateAws,
    spec: &FargateAppSpec,
    names: &Names,
    status: &FargateAppStatus,
    hash: &str,
    read_attributes: bool,
) -> Result<Observed, AwsError> {
    let mut o = Observed::default();
    if let Some(dns) = &spec.dns {
        // Before anything is written: a name outside the zone would be refused by Route 53 only
        // after the rest of the app was made.
        o.zone_name = match aws.zone_name(normalize_zone_id(&dns.hosted_zone_id)).await {
            Ok(name) => Some(name),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e),
        };
        if zone_gate(spec, &o).is_some() {
            return Ok(o);
        }
    }
    let rule = spec.load_balancer.as_ref().and_then(|lb| lb.listener_rule.as_ref());
    if let Some(rule) = rule {
        o.listener = Some(match aws.listener(&rule.listener_arn).await {
            Ok(info) => Listener::Found(info),
            Err(e) if e.is_not_found() => gone(aws, &rule.listener_arn),
            Err(e) => return Err(e),
        });
        if o.listener == Some(Listener::Gone) {
            return Ok(o);
        }
    }
    if spec.load_balancer.is_some() {
        if target_group_gate(spec, names, status, &o).is_some() {
            return Ok(o);
        }
        let recorded = status.target_group_arn.as_deref();
        o.target_group = aws.target_group(&names.target_group, read_attributes, recorded).await?;
        if target_group_gate(spec, names, status, &o).is_some() {
            return Ok(o);
        }
    }
    if let Some(rule) = rule {
        // Read before the rules: a create or move this process makes meanwhile shows as a change.
        o.rules_seen = aws.facts.listener_lock(&rule.listener_arn).lock().await.changes();
        o.rules = match aws.rules(&rule.listener_arn).await {
            Ok(rules) => rules,
            Err(e) if e.is_not_found() => {
                o.listener = Some(gone(aws, &rule.listener_arn));
                return Ok(o);
            }
            Err(e) => return Err(e),
        };
        // Rules planned on a listener: the plan deletes one left on another load balancer before
        // it makes ours, so they are read before the plan can stop at a priority conflict.
        for entry in planned(status, |e| e.type_ == LISTENER_RULE) {
            let made = if inventory::planned_key(&entry) == Some(rule.listener_arn.as_str()) {
                let ours = o.rules.iter().filter(|r| r.ours);
                ours.map(|r| inventory::listener_rule(&r.arn, &rule.listener_arn)).collect()
            } else {
                made_by(aws, &entry).await?
            };
            o.planned.push((entry, made));
        }
        if rule_gate(rule, &o).is_some() {
            return Ok(o);
        }
    }
    o.service = match aws.service(&spec.cluster, &names.family).await {
        Ok(s) => s,
        Err(e) if e.code == "ClusterNotFoundException" => {
            o.cluster_missing = true;
            return Ok(o);
        }
        Err(e) => return Err(e),
    };
    if service_gate(spec, names, status, &o).is_some() {
        return Ok(o);
    }
    (o.revision, o.active_revisions) =
        service::find_revision(aws, status, o.service.as_ref(), &names.family, hash).await?;
    let listener = o.listener_info().cloned();
    let desired = spec.dns.as_ref().zip(listener.as_ref());
    if let Some((dns, info)) = desired {
        let zone = normalize_zone_id(&dns.hosted_zone_id);
        o.record = aws.record(zone, &dns.name, r53::RrType::from(inventory::rr_type(dns.record_type))).await?;
        // A record in place and recorded as ours is neither written nor deleted by this pass: its
        // mark is read only when the spec changed or on the periodic full check.
        let settled = dns::record_state(dns, info, &status.resources, o.record.as_ref(), &dns::Mark::None) == Ok(true);
        o.record_mark =
            if settled && !read_attributes { dns::Mark::Unread } else { dns::read_mark(aws, zone, &dns.name).await? };
        if record_gate(spec, status, &o).is_some() {
            return Ok(o);
        }
    }
    let keep: Vec<String> = desired.map(|(dns, _)| inventory::dns_record_id(dns)).into_iter().collect();
    let keep: Vec<&str> = keep.iter().map(String::as_str).collect();
    for entry in inventory::unwanted(&status.resources, inventory::RECORD, &keep) {
        o.old_records.push((entry.clone(), dns::still_ours(aws, entry).await?));
    }
    // The planned creates the plan does not repeat: what they made is deleted as unwanted.
    let current_service = inventory::planned(SERVICE, &format!("{}/{}", spec.cluster, names.family));
    let later = |e: &OwnedResource| match e.type_.as_str() {
        TARGET_GROUP => spec.load_balancer.is_none(),
        LISTENER_RULE => rule.is_none(),
        SERVICE => e.id != current_service.id,
        _ => false,
    };
    for entry in planned(status, later) {
        let made = made_by(aws, &entry).await?;
        o.planned.push((entry, made));
    }
    Ok(o)
}

/// The listener is gone: the process forgets its load balancer, so one created again under another
/// ARN is read afresh.
fn gone(aws: &FargateAws, listener_arn: &str) -> Listener {
    aws.facts.forget_listener(listener_arn);
    Listener::Gone
}

/// The planned creates in the inventory that `which` selects.
fn planned(status: &FargateAppStatus, which: impl Fn(&OwnedResource) -> bool) -> Vec<OwnedResource> {
    status.resources.iter().filter(|e| inventory::is_planned(e) && which(e)).cloned().collect()
}
