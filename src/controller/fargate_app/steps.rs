//! One FargateApp full pass as a value: from the spec, the status and what
//! [`observe`](super::observe) read, [`plan`] returns the ordered AWS steps (target group, listener
//! rule, task definition, service, record batch, then the deletes of what the spec no longer wants,
//! then the readiness report) and the status edits known before any call. It makes no call and
//! reads no clock: the same inputs give the same plan. Values a step makes (a new target group's
//! ARN, a registered revision, a new service) are named symbolically and resolved by
//! [`apply`](super::apply), which runs the steps in order and records each result as it lands.
//! A create is recorded as planned in the inventory (and written) only by apply, right before it
//! is sent: a plan that stops earlier leaves no plan behind.

use aws_sdk_route53::types as r53;

use super::inventory::{self, LISTENER_RULE, RECORD, SERVICE, TARGET_GROUP};
use super::observe::{Listener, Observed};
use super::plan::{
    DesiredTargetGroup, ObservedService, ServiceUpdate, adoptable, lb_target, listener_not_found, name_conflict,
    rule_needs_modify, rule_priority, service_update, taken_priorities, target_group_changes, url,
};
use super::render::RenderedTaskDefinition;
use super::{Names, dns};
use crate::api::OwnedResource;
use crate::api::fargate_app::{DnsSpec, FargateAppSpec, FargateAppStatus, ListenerRuleSpec};
use crate::api::validation::normalize_zone_id;
use crate::aws::facts::ListenerInfo;
use crate::controller::Blocked;
use crate::runtime::conditions::REASON_INVALID_SPEC;

/// The target group a step names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetGroupArn {
    /// One that exists now.
    Known(String),
    /// The one this plan's [`Step::CreateTargetGroup`] makes.
    Created,
}

/// The task definition revision the service is to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Revision {
    /// One registered before, found by its content-hash tag.
    Known(String),
    /// The one this plan's [`Step::RegisterTaskDefinition`] registers.
    Registered,
}

/// What `service_update` compares a value this pass makes with: it differs from anything observed.
const MADE_THIS_PASS: &str = "(made by this pass)";

impl TargetGroupArn {
    fn arn(&self) -> &str {
        match self {
            Self::Known(arn) => arn,
            Self::Created => MADE_THIS_PASS,
        }
    }
}

/// What a rule's priority was chosen from: the priorities other rules held on the listener when
/// observe read it, after `changes` rule creates and moves by this process there.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Taken {
    /// This process's creates and moves on the listener before the read.
    pub changes: u64,
    /// The priorities other rules held.
    pub priorities: Vec<i32>,
}

/// The service whose state the pass reports.
#[derive(Clone, Debug, PartialEq)]
pub enum Serving {
    /// As observed before the steps (an update shows in the next poll).
    Observed(Box<ObservedService>),
    /// The one this plan's [`Step::CreateService`] makes, as ECS reports it right after.
    Created,
}

/// The record the spec asks for, to be written to point at the listener's load balancer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordWrite {
    /// What the spec asks for.
    pub dns: DnsSpec,
    /// The load balancer it points at.
    pub listener: ListenerInfo,
    /// The inventory entry to write to status before the change is sent, so neither a lost answer
    /// nor a crash can lose it: a new record's entry, or, for a record re-pointed to another load
    /// balancer, an entry naming the new target with the old one in `parent` (until the change is
    /// confirmed the record points at one of the two, and both are ours). `None`: the entry
    /// already names this target.
    pub record: Option<OwnedResource>,
    /// Write the ownership mark next to the record too (it is not there yet).
    pub mark: bool,
}

/// One AWS step, in the order the plan lists them.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Create the target group (recorded as planned, and written, before it is sent).
    CreateTargetGroup(DesiredTargetGroup),
    /// Bring the target group's health check in line.
    ModifyTargetGroup { arn: String, want: DesiredTargetGroup },
    /// Set the target group's deregistration delay.
    SetDeregistrationDelay { target_group: TargetGroupArn, seconds: i32 },
    /// Delete a rule an inventory entry names (NotFound counts as done).
    DeleteRule(OwnedResource),
    /// Rewrite our rule's conditions and forward action.
    ModifyRule { arn: String, rule: ListenerRuleSpec, forward: TargetGroupArn },
    /// Move our rule to `priority`, chosen from `taken` (again, with what this process took on the
    /// listener since, when it took any).
    SetRulePriority { arn: String, rule: ListenerRuleSpec, priority: i32, taken: Taken },
    /// Create our rule at `priority`, chosen as for [`Step::SetRulePriority`]; `record`: recorded
    /// as planned on its listener, and written, before it is sent (this object has no rule recorded
    /// there).
    CreateRule { rule: ListenerRuleSpec, priority: i32, forward: TargetGroupArn, taken: Taken, record: bool },
    /// Register the rendered task definition as a new revision.
    RegisterTaskDefinition(Box<RenderedTaskDefinition>),
    /// Create the service (recorded as planned, and written, before it is sent), then read it back.
    CreateService { task_definition: Revision, target_group: Option<TargetGroupArn> },
    /// Update what `update` says differs (its task definition is `task_definition`'s).
    UpdateService { update: ServiceUpdate, task_definition: Revision, target_group: Option<TargetGroupArn> },
    /// After a new revision: deregister ours beyond `keepTaskDefinitionRevisions`, never the new one.
    PruneRevisions,
    /// Drop a record entry whose record is gone or no longer points where we wrote it.
    ForgetRecord(OwnedResource),
    /// One change batch in `zone`: the deletes first, then the upsert. `zone_may_be_gone`: a zone
    /// that is gone took its records with it (not the zone of the record we want).
    ChangeRecords {
        zone: String,
        deletes: Vec<(OwnedResource, r53::ResourceRecordSet)>,
        upsert: Option<RecordWrite>,
        zone_may_be_gone: bool,
    },
    /// Delete the service an entry names while it is still the one recorded and ours; the entry
    /// stays until ECS reports it INACTIVE.
    DeleteService(OwnedResource),
    /// Delete the target group an entry names while it carries our owner tags.
    DeleteTargetGroup(OwnedResource),
    /// Replicas, rollout and readiness from the service and the target group's health; the status
    /// fields that are true once every step before it landed.
    Report { service: Serving, target_group: Option<TargetGroupArn>, settled: Settled },
}

/// Status fields the plan knows but that hold only once the steps before the report landed (a pass
/// stopped by a conflict or an error must not show the new URL or revision).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settled {
    /// `status.loadBalancerDnsName`.
    pub load_balancer_dns_name: Option<String>,
    /// `status.url`.
    pub url: Option<String>,
    /// `status.taskDefinitionArn` and `taskDefinitionHash` of a revision registered before (one
    /// this pass registers is recorded when it is).
    pub task_definition: Option<(String, String)>,
}

impl Settled {
    /// Write these fields into `status`.
    pub fn apply_to(&self, status: &mut FargateAppStatus) {
        status.load_balancer_dns_name.clone_from(&self.load_balancer_dns_name);
        status.url.clone_from(&self.url);
        if let Some((arn, hash)) = &self.task_definition {
            status.task_definition_arn = Some(arn.clone());
            status.task_definition_hash = Some(hash.clone());
        }
    }
}

/// The pass: steps, then the outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The status to apply the steps from: what observe found and the spec decides (entries of
    /// what exists, the target group, rule, revision, service and URL fields).
    pub status: FargateAppStatus,
    /// What to do, in order.
    pub steps: Vec<Step>,
    /// After the steps, the pass stops here (the steps were what could safely be done).
    pub blocked: Option<Blocked>,
}

/// Plan one full pass. `status` is the status the pass read (its inventory seeded), `rendered` the
/// task definition the spec asks for; `read_attributes`: observe read the target group's attributes.
pub fn plan(
    spec: &FargateAppSpec,
    names: &Names,
    status: &FargateAppStatus,
    observed: &Observed,
    rendered: &RenderedTaskDefinition,
    read_attributes: bool,
) -> Plan {
    let mut p = Planner {
        spec,
        names,
        read: status,
        observed,
        status: status.clone(),
        steps: Vec::new(),
        settled: Settled::default(),
    };
    let blocked = p.run(rendered, read_attributes).err();
    Plan { status: p.status, steps: p.steps, blocked }
}

/// The target group the spec asks for, once it may be used: the spec names a container port, and a
/// group found by the name is ours to adopt and differs in nothing that cannot change in place.
fn checked_target_group(
    spec: &FargateAppSpec,
    names: &Names,
    status: &FargateAppStatus,
    observed: &Observed,
) -> Result<DesiredTargetGroup, Blocked> {
    let invalid = |message: &str| Blocked { reason: REASON_INVALID_SPEC, message: message.into() };
    let Some(lb) = &spec.load_balancer else { return Err(invalid("spec.loadBalancer is not set")) };
    let Some((_, port)) = lb_target(spec, lb) else { return Err(invalid("no container port for the load balancer")) };
    let vpc = lb.target_group.vpc_id.clone().or_else(|| observed.listener_info().map(|l| l.vpc_id.clone()));
    let desired = DesiredTargetGroup {
        name: names.target_group.clone(),
        port,
        protocol: format!("{:?}", lb.target_group.protocol),
        vpc_id: vpc.unwrap_or_default(),
        health: lb.target_group.health_check.clone(),
        deregistration_delay: lb.target_group.deregistration_delay_seconds,
    };
    let Some((found, owned)) = &observed.target_group else { return Ok(desired) };
    let planned = inventory::planned(TARGET_GROUP, &desired.name);
    let made = status.resources.contains(&planned) || status.resources.contains(&inventory::target_group(&found.arn));
    if !adoptable(spec, *owned, status.target_group_arn.as_deref(), &found.arn, made) {
        return Err(name_conflict("target group", &desired.name, *owned));
    }
    let immutable = target_group_changes(&desired, found).immutable;
    if !immutable.is_empty() {
        return Err(Blocked {
            reason: "ImmutableFieldChanged",
            message: format!(
                "target group {} cannot change {} in place; delete and re-create the FargateApp to apply it",
                desired.name,
                immutable.join(", ")
            ),
        });
    }
    Ok(desired)
}

/// The plan stops at the target group (observe stops reading there too).
pub fn target_group_gate(
    spec: &FargateAppSpec,
    names: &Names,
    status: &FargateAppStatus,
    observed: &Observed,
) -> Option<Blocked> {
    checked_target_group(spec, names, status, observed).err()
}

/// The plan stops at the rule: conditions that would overlap another owner's rule on the listener
/// (`RuleOverlap`) for a new rule, or for an edit of ours that makes an overlap it did not have
/// (ours keeps its current conditions meanwhile); or its priority. An overlap our rule already has
/// stays: it was there when the rule was made, or the other rule made it since.
pub fn rule_gate(rule: &ListenerRuleSpec, observed: &Observed) -> Option<Blocked> {
    use super::overlap::overlapping;
    let ours = observed.rules.iter().find(|r| r.ours);
    let had_overlap = ours.is_some_and(|r| overlapping(&r.path_patterns, &r.host_headers, &observed.rules).is_some());
    if !had_overlap && let Some(other) = overlapping(&rule.path_patterns, &rule.host_headers, &observed.rules) {
        let cond = |paths: &[String], hosts: &[String]| format!("pathPatterns {paths:?}, hostHeaders {hosts:?}");
        return Some(Blocked {
            reason: REASON_RULE_OVERLAP,
            message: format!(
                "spec.loadBalancer.listenerRule: its conditions ({}) can match requests that rule {} (priority {}, {}) \
                 serves, and it belongs to someone else: narrow pathPatterns or hostHeaders so they cannot match the \
                 same requests",
                cond(&rule.path_patterns, &rule.host_headers),
                other.arn,
                other.priority.unwrap_or_default(),
                cond(&other.path_patterns, &other.host_headers),
            ),
        });
    }
    rule_priority(rule, &observed.rules).err()
}

/// Reason when a new rule would take requests another owner's rule serves.
pub const REASON_RULE_OVERLAP: &str = "RuleOverlap";

/// The plan stops at the service: the cluster is missing, or the service is not ours to use.
pub fn service_gate(
    spec: &FargateAppSpec,
    names: &Names,
    status: &FargateAppStatus,
    observed: &Observed,
) -> Option<Blocked> {
    if observed.cluster_missing {
        return Some(Blocked {
            reason: "ClusterNotFound",
            message: format!("spec.cluster: ECS cluster {:?} does not exist in this account and region", spec.cluster),
        });
    }
    let s = observed.service.as_ref()?;
    let planned = inventory::planned(SERVICE, &format!("{}/{}", spec.cluster, names.family));
    let made = status.resources.iter().any(|r| r.type_ == SERVICE && (r.id == planned.id || r.id == s.arn));
    let ok = adoptable(spec, s.ours, status.service_arn.as_deref(), &s.arn, made);
    (!ok).then(|| name_conflict("ECS service", &names.family, s.ours))
}

/// The plan stops before anything: `spec.dns.name` is not a name its zone can hold.
pub fn zone_gate(spec: &FargateAppSpec, observed: &Observed) -> Option<Blocked> {
    let (dns, zone) = spec.dns.as_ref().zip(observed.zone_name.as_ref())?;
    let errs = crate::api::validation::validate_app_record(dns, zone).err()?;
    Some(Blocked { reason: REASON_INVALID_SPEC, message: errs.to_string() })
}

/// The plan stops at the record: someone else's is at the name.
pub fn record_gate(spec: &FargateAppSpec, status: &FargateAppStatus, observed: &Observed) -> Option<Blocked> {
    let (dns, info) = spec.dns.as_ref().zip(observed.listener_info())?;
    dns::record_state(dns, info, &status.resources, observed.record.as_ref(), &observed.record_mark).err()
}

struct Planner<'a> {
    spec: &'a FargateAppSpec,
    names: &'a Names,
    /// The status the pass read: the gates decide on it, as observe did.
    read: &'a FargateAppStatus,
    observed: &'a Observed,
    status: FargateAppStatus,
    steps: Vec<Step>,
    settled: Settled,
}

impl Planner<'_> {
    fn run(&mut self, rendered: &RenderedTaskDefinition, read_attributes: bool) -> Result<(), Blocked> {
        let (spec, observed) = (self.spec, self.observed);
        let lb = spec.load_balancer.as_ref();
        let listener_rule = lb.and_then(|lb| lb.listener_rule.as_ref());
        if let Some(blocked) = zone_gate(spec, observed) {
            return Err(blocked);
        }
        if let (Some(Listener::Gone), Some(rule)) = (&observed.listener, listener_rule) {
            return Err(listener_not_found(&rule.listener_arn));
        }
        // Planned creates whose result observe read: what they made is recorded instead.
        for (planned, made) in &observed.planned {
            inventory::remove(&mut self.status.resources, &planned.type_, &planned.id);
            for entry in made {
                inventory::add(&mut self.status.resources, entry.clone());
            }
        }
        let listener = observed.listener_info();
        let tg = match lb {
            Some(_) => Some(self.target_group(read_attributes)?),
            None => None,
        };
        let rule = match (listener_rule, &tg) {
            (Some(rule), Some(tg)) => self.rule(rule, tg)?,
            _ => None,
        };
        if tg.is_none() {
            self.status.target_group_arn = None;
        }
        if listener_rule.is_none() {
            (self.status.listener_rule_arn, self.status.listener_rule_priority) = (None, None);
        }
        self.settled.load_balancer_dns_name = listener.map(|l| l.dns_name.clone());
        let (serving, service) = self.service(rendered, tg.as_ref())?;
        self.records(listener)?;
        self.settled.url = url(spec, listener.map(|l| l.dns_name.as_str()));
        self.unwanted(rule.as_deref(), service.as_deref(), tg.as_ref());
        let settled = std::mem::take(&mut self.settled);
        self.steps.push(Step::Report { service: serving, target_group: tg, settled });
        Ok(())
    }

    fn target_group(&mut self, read_attributes: bool) -> Result<TargetGroupArn, Blocked> {
        let desired = checked_target_group(self.spec, self.names, self.read, self.observed)?;
        let seconds = desired.deregistration_delay;
        let Some((found, _)) = &self.observed.target_group else {
            self.steps.push(Step::CreateTargetGroup(desired));
            self.steps.push(Step::SetDeregistrationDelay { target_group: TargetGroupArn::Created, seconds });
            return Ok(TargetGroupArn::Created);
        };
        let planned = inventory::planned(TARGET_GROUP, &desired.name);
        inventory::remove(&mut self.status.resources, &planned.type_, &planned.id);
        let changes = target_group_changes(&desired, found);
        let arn = found.arn.clone();
        if changes.health_check {
            self.steps.push(Step::ModifyTargetGroup { arn: arn.clone(), want: desired });
        }
        // Attributes are compared only when they were read (unread is unknown, not different).
        if changes.deregistration_delay && read_attributes {
            self.steps.push(Step::SetDeregistrationDelay { target_group: TargetGroupArn::Known(arn.clone()), seconds });
        }
        inventory::add(&mut self.status.resources, inventory::target_group(&arn));
        self.status.target_group_arn = Some(arn.clone());
        Ok(TargetGroupArn::Known(arn))
    }

    /// Our rule's steps; the ARN of the rule kept (None when one is created).
    fn rule(&mut self, rule: &ListenerRuleSpec, tg: &TargetGroupArn) -> Result<Option<String>, Blocked> {
        // Before anything of the rule's is planned: a rule refused on the new listener (overlap,
        // no free priority) must not cost the one still serving on the old load balancer.
        if let Some(blocked) = rule_gate(rule, self.observed) {
            return Err(blocked);
        }
        let listener = rule.listener_arn.as_str();
        // An ALB target group is forwarded to by one load balancer only: a rule left on another one
        // goes before the new rule is made (also one whose create was planned there and answered
        // too late to be recorded).
        let elsewhere = inventory::rules_on_other_load_balancers(&self.status.resources, listener);
        let elsewhere: Vec<Step> = elsewhere.into_iter().cloned().map(Step::DeleteRule).collect();
        self.steps.extend(elsewhere);
        let rules = &self.observed.rules;
        let ours = rules.iter().find(|r| r.ours);
        if let Some(ours) = ours {
            let forwards = match tg {
                TargetGroupArn::Known(arn) => !rule_needs_modify(ours, &rule.path_patterns, &rule.host_headers, arn),
                TargetGroupArn::Created => false,
            };
            if !forwards {
                let (arn, forward) = (ours.arn.clone(), tg.clone());
                self.steps.push(Step::ModifyRule { arn, rule: rule.clone(), forward });
            }
        }
        let (_, priority) = rule_priority(rule, rules)?;
        let others = taken_priorities(rules, ours.map(|r| r.arn.as_str()));
        let taken = Taken { changes: self.observed.rules_seen, priorities: others.into_iter().collect() };
        let Some(ours) = ours else {
            // Recorded as planned also when an entry on this listener names a rule found gone: the
            // create's answer may be lost, and only the planned entry finds its rule after a move.
            let planned = inventory::planned(LISTENER_RULE, listener);
            let record = !self.status.resources.contains(&planned);
            let forward = tg.clone();
            self.steps.push(Step::CreateRule { rule: rule.clone(), priority, forward, taken, record });
            return Ok(None);
        };
        inventory::add(&mut self.status.resources, inventory::listener_rule(&ours.arn, listener));
        self.status.listener_rule_arn = Some(ours.arn.clone());
        if ours.priority.unwrap_or_default() == priority {
            self.status.listener_rule_priority = Some(priority);
        } else {
            self.steps.push(Step::SetRulePriority { arn: ours.arn.clone(), rule: rule.clone(), priority, taken });
        }
        Ok(Some(ours.arn.clone()))
    }

    /// The task definition and service steps; what to report, and the service entry to keep.
    fn service(
        &mut self,
        rendered: &RenderedTaskDefinition,
        tg: Option<&TargetGroupArn>,
    ) -> Result<(Serving, Option<String>), Blocked> {
        let (spec, names) = (self.spec, self.names);
        if let Some(blocked) = service_gate(spec, names, self.read, self.observed) {
            return Err(blocked);
        }
        inventory::add(&mut self.status.resources, inventory::family(&names.family));
        let revision = match &self.observed.revision {
            Some(arn) => {
                self.settled.task_definition = Some((arn.clone(), rendered.content_hash()));
                Revision::Known(arn.clone())
            }
            None => {
                self.steps.push(Step::RegisterTaskDefinition(Box::new(rendered.clone())));
                Revision::Registered
            }
        };
        let restart = spec.restarted_at.is_some() && spec.restarted_at != self.status.restarted_at;
        let target_group = tg.cloned();
        let served = match &self.observed.service {
            None => {
                let task_definition = revision.clone();
                self.steps.push(Step::CreateService { task_definition, target_group });
                // ECS names a service by cluster and name: an entry of the same one (deleted behind
                // our back) is the service this create makes again, not one to delete.
                let same = self.status.resources.iter().find(|r| {
                    r.type_ == SERVICE
                        && r.parent.as_deref() == Some(spec.cluster.as_str())
                        && inventory::service_name(&r.id) == names.family
                });
                (Serving::Created, same.map(|r| r.id.clone()))
            }
            Some(s) => {
                let td = match &revision {
                    Revision::Known(arn) => arn.as_str(),
                    Revision::Registered => MADE_THIS_PASS,
                };
                let update = service_update(spec, s, td, tg.map(TargetGroupArn::arn), restart);
                if !update.is_empty() {
                    let task_definition = revision.clone();
                    self.steps.push(Step::UpdateService { update, task_definition, target_group });
                }
                let planned = inventory::planned(SERVICE, &format!("{}/{}", spec.cluster, names.family));
                inventory::remove(&mut self.status.resources, &planned.type_, &planned.id);
                inventory::add(&mut self.status.resources, inventory::service(&s.arn, &spec.cluster));
                self.status.service_arn = Some(s.arn.clone());
                (Serving::Observed(Box::new(s.clone())), Some(s.arn.clone()))
            }
        };
        // After a registration, old revisions beyond `keepTaskDefinitionRevisions` go; none are
        // beyond it when the family, as listed this pass, has room for the new one (a first
        // registration, typically), and then listing it again would find nothing to prune.
        let keep = usize::try_from(spec.keep_task_definition_revisions).unwrap_or(0).max(1);
        let room = self.observed.active_revisions.is_some_and(|n| n < keep);
        if revision == Revision::Registered && !room {
            self.steps.push(Step::PruneRevisions);
        }
        Ok(served)
    }

    /// The record the spec asks for and the recorded ones it no longer does, one batch per zone.
    fn records(&mut self, listener: Option<&ListenerInfo>) -> Result<(), Blocked> {
        let desired = self.spec.dns.as_ref().zip(listener);
        let mut upsert = None;
        if let Some((dns, info)) = desired {
            let entry = inventory::record(dns, &info.dns_name);
            let (current, mark) = (self.observed.record.as_ref(), &self.observed.record_mark);
            let marked = matches!(mark, dns::Mark::Ours(_) | dns::Mark::Unread);
            if dns::record_state(dns, info, &self.read.resources, current, mark)? {
                inventory::put(&mut self.status.resources, entry);
                if !marked {
                    // A record from before marks: the mark is added (the record is rewritten as is).
                    upsert = Some(RecordWrite { dns: dns.clone(), listener: info.clone(), record: None, mark: true });
                }
            } else {
                let recorded = self.status.resources.iter().find(|r| r.type_ == RECORD && r.id == entry.id);
                let record = match recorded {
                    None => Some(entry),
                    Some(r) if r.name == entry.name => None,
                    Some(r) => Some(OwnedResource { parent: r.name.clone(), ..entry }),
                };
                upsert = Some(RecordWrite { dns: dns.clone(), listener: info.clone(), record, mark: !marked });
            }
        }
        // The mark of a record whose type changes stays: the new record's is the same TXT record.
        let kept = desired.map(|(dns, _)| (normalize_zone_id(&dns.hosted_zone_id), dns::mark_name(&dns.name)));
        let mut found = Vec::new();
        for (entry, set) in &self.observed.old_records {
            let Some((set, mark)) = set else {
                self.steps.push(Step::ForgetRecord(entry.clone()));
                continue;
            };
            for s in dns::with_mark(set.clone(), mark.clone()) {
                let zone = inventory::parse_record_id(&entry.id).map(|(z, ..)| z);
                let same_mark = kept.as_ref().is_some_and(|(z, n)| {
                    Some(*z) == zone
                        && *s.r#type() == r53::RrType::Txt
                        && crate::api::validation::normalize_dns_name(s.name())
                            == crate::api::validation::normalize_dns_name(n)
                });
                if !same_mark {
                    found.push((entry.clone(), s));
                }
            }
        }
        let first = desired.map(|(dns, _)| normalize_zone_id(&dns.hosted_zone_id).to_string());
        let mut batches = dns::by_zone(first.as_deref(), found);
        if let Some(zone) = &first
            && upsert.is_some()
            && batches.first().is_none_or(|(z, _)| z != zone)
        {
            batches.insert(0, (zone.clone(), Vec::new()));
        }
        for (zone, deletes) in batches {
            let wanted = Some(&zone) == first.as_ref();
            let upsert = if wanted { upsert.take() } else { None };
            self.steps.push(Step::ChangeRecords { zone, deletes, upsert, zone_may_be_gone: !wanted });
        }
        Ok(())
    }

    /// Deletes of the entries the spec no longer wants, rules → services → target groups (records
    /// went in the record batches, rules on another load balancer before the new rule).
    fn unwanted(&mut self, rule: Option<&str>, service: Option<&str>, tg: Option<&TargetGroupArn>) {
        let target_group = match tg {
            Some(TargetGroupArn::Known(arn)) => Some(arn.as_str()),
            _ => None,
        };
        let wanted = inventory::Wanted { rule, record: None, service, target_group };
        for entry in inventory::unwanted_entries(&self.status.resources, &wanted) {
            let step = match entry.type_.as_str() {
                LISTENER_RULE => Step::DeleteRule(entry),
                SERVICE => Step::DeleteService(entry),
                TARGET_GROUP => Step::DeleteTargetGroup(entry),
                _ => continue,
            };
            if !self.steps.contains(&step) {
                self.steps.push(step);
            }
        }
    }
}

#[cfg(test)]
mod tests;
