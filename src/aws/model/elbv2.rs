//! The ELBv2 model: [`ModelElbv2`] implements [`Elbv2Api`] over in-memory application load
//! balancers, listeners, listener rules and `ip` target groups of one account and region.
//!
//! AWS behaviours it models (from the ELBv2 API reference; moto shows only some of them):
//! - CreateTargetGroup is idempotent by name: the same settings answer the existing group, other
//!   settings are `DuplicateTargetGroupName`; names, ports, health checks (ranges, timeout below
//!   the interval, matcher codes) and attributes are validated (`ValidationError`); the account's
//!   quota is `TooManyTargetGroups`. New groups carry ELBv2's default attributes
//!   (`deregistration_delay.timeout_seconds` = 300, …); ModifyTargetGroupAttributes sets only the
//!   keys it is given and refuses unknown keys.
//! - DeleteTargetGroup is `ResourceInUse` while a rule or a listener's default action forwards to
//!   the group (weighted forwards included); a group already gone answers success.
//! - Rules: priorities 1..=50000, unique per listener (`PriorityInUse`); at least one condition
//!   and at most five condition values; DescribeRules lists by priority with the default rule
//!   last (priority `default`), in pages of [`Limits::rules_page_size`]; the default rule cannot
//!   be modified, re-prioritised or deleted (`OperationNotPermitted`); `TooManyRules` beyond the
//!   load balancer's quota. A target group serves one load balancer: forwarding to it from a
//!   rule of another load balancer is `TargetGroupAssociationLimit`.
//! - DescribeTags takes 1–20 ARNs of any kind; one that does not exist fails the call with its
//!   NotFound code. Malformed ARNs are `ValidationError` everywhere.
//! - DescribeTargetHealth reports the targets the simulator set ([`ModelElbv2::set_target_health`]),
//!   each `unused` while no load balancer forwards to the group.
//!
//! The simulator also gets setup ([`ModelElbv2::create_load_balancer`],
//! [`ModelElbv2::create_listener`], [`ModelElbv2::add_rule`] for rules made by others), world events
//! ([`ModelElbv2::delete_listener`], [`ModelElbv2::delete_load_balancer`]: rules go with them) and
//! inspection of everything with its tags. Every request draws its fault from the model's
//! [`SimRng`](super::SimRng): throttling and 5xx refuse before anything happens, a lost answer executes first.
//! Ids come from the same generator, so a seed and a call sequence replay exactly.

mod rules;
mod state;
mod validate;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard};

pub use rules::NewRule;
pub use state::Limits;
use state::State;

use super::{Fault, FaultRates, Faults, lost, refusal};
use crate::aws::api::ApiFuture;
use crate::aws::api::elbv2::{
    Attributes, Elbv2Api, Listener, LoadBalancer, NewTargetGroup, RuleSpec, RulesPage, Tags, TargetGroup,
    TargetGroupHealthCheck, TargetHealth,
};
use crate::aws::errors::Classified;

/// One target group of a forward action and its weight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WeightedTarget {
    /// ARN of the target group.
    pub target_group_arn: String,
    /// Weight, 0–999.
    pub weight: i32,
}

/// A rule's or a listener's action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Forward to one or more (weighted) target groups.
    Forward(Vec<WeightedTarget>),
    /// Answer with a fixed HTTP status.
    FixedResponse {
        /// HTTP status code, e.g. `404`.
        status_code: String,
    },
}

/// An application load balancer as the model holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelLoadBalancer {
    /// ARN.
    pub arn: String,
    /// Name (unique in the account and region).
    pub name: String,
    /// `name-<digits>.<region>.elb.amazonaws.com`.
    pub dns_name: String,
    /// Route 53 zone of the DNS name (ELBv2's zone for the region).
    pub canonical_hosted_zone_id: String,
    /// Its VPC.
    pub vpc_id: String,
    /// Tags.
    pub tags: Tags,
}

/// A listener as the model holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelListener {
    /// ARN.
    pub arn: String,
    /// Its load balancer.
    pub load_balancer_arn: String,
    /// Port.
    pub port: i32,
    /// ARN of its default rule (whose actions are the listener's default actions).
    pub default_rule_arn: String,
    /// Tags.
    pub tags: Tags,
}

/// A listener rule as the model holds it (default rules included).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelRule {
    /// ARN.
    pub arn: String,
    /// Its listener.
    pub listener_arn: String,
    /// Priority; `None` for the default rule.
    pub priority: Option<i32>,
    /// `path-pattern` values.
    pub path_patterns: Vec<String>,
    /// `host-header` values.
    pub host_headers: Vec<String>,
    /// Actions in order.
    pub actions: Vec<Action>,
    /// Tags.
    pub tags: Tags,
}

/// A target group as the model holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelTargetGroup {
    /// ARN.
    pub arn: String,
    /// Name.
    pub name: String,
    /// `HTTP` or `HTTPS`.
    pub protocol: String,
    /// Port.
    pub port: i32,
    /// VPC.
    pub vpc_id: String,
    /// Always `ip` (what the operator creates).
    pub target_type: String,
    /// Health check.
    pub health_check: TargetGroupHealthCheck,
    /// Every attribute.
    pub attributes: Attributes,
    /// Tags.
    pub tags: Tags,
    /// Registered targets with the health the simulator gave them.
    pub targets: Vec<TargetHealth>,
    /// Load balancers whose rules or listeners forward to it (filled by inspection).
    pub load_balancer_arns: BTreeSet<String>,
}

/// The ELBv2 model of one account and region.
#[derive(Debug)]
pub struct ModelElbv2 {
    faults: Faults,
    state: Mutex<State>,
}

impl ModelElbv2 {
    /// An empty model: ids and faults drawn from `seed`, faults at `faults`.
    pub fn new(seed: u64, faults: FaultRates, account: &str, region: &str) -> Self {
        Self { faults: Faults::new(faults), state: Mutex::new(State::new(seed, account, region)) }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One request: draw its fault, refuse it or run it, lose the answer if so drawn.
    fn call<T>(&self, operation: &str, run: impl FnOnce(&mut State) -> Result<T, Classified>) -> Result<T, Classified> {
        let mut state = self.lock();
        let fault = self.faults.draw(&mut state.rng);
        if let Some(refused) = refusal(fault, operation) {
            return Err(refused);
        }
        let answer = run(&mut state);
        if fault == Fault::Lost { Err(lost(operation)) } else { answer }
    }

    // --- setup ------------------------------------------------------------------------------

    /// Change the fault rates (e.g. a quiet phase to let everything converge).
    pub fn set_faults(&self, rates: FaultRates) {
        self.faults.set(rates);
    }

    /// Calls answered so far.
    pub fn calls(&self) -> u64 {
        self.faults.calls()
    }

    /// Change the quotas and the DescribeRules page size.
    pub fn set_limits(&self, limits: Limits) {
        self.lock().limits = limits;
    }

    /// Create an internet-facing application load balancer `name` in `vpc_id` (no faults).
    /// `DuplicateLoadBalancerName` if the name is taken; `ValidationError` for a bad name.
    pub fn create_load_balancer(&self, name: &str, vpc_id: &str) -> Result<ModelLoadBalancer, Classified> {
        self.lock().create_load_balancer(name, vpc_id)
    }

    /// Create a listener on `port` of a load balancer with its default actions (no faults).
    /// `DuplicateListener` if the port is taken; forwards are checked as CreateRule checks them.
    pub fn create_listener(
        &self,
        load_balancer_arn: &str,
        port: i32,
        default_actions: Vec<Action>,
    ) -> Result<ModelListener, Classified> {
        self.lock().create_listener(load_balancer_arn, port, default_actions)
    }

    /// A rule someone else creates (no faults; the checks of CreateRule); returns its ARN.
    pub fn add_rule(
        &self,
        listener_arn: &str,
        priority: i32,
        rule: &NewRule,
        tags: &Tags,
    ) -> Result<String, Classified> {
        self.lock().create_rule(listener_arn, priority, rule, tags)
    }

    // --- world events -----------------------------------------------------------------------

    /// A listener deleted behind the operator's back: its rules go with it, the target groups
    /// stay. False if it did not exist.
    pub fn delete_listener(&self, listener_arn: &str) -> bool {
        self.lock().delete_listener(listener_arn)
    }

    /// A listener put back as it was (same ARN) with `rules` (its default rule and any others
    /// the caller kept), as if its owners recreated it and every spec followed the new ARN. The
    /// operator's rules are not among them: it must notice they are gone and recreate them.
    /// False if its load balancer is gone, or the listener or a rule exists already.
    pub fn restore_listener(&self, listener: &ModelListener, rules: &[ModelRule]) -> bool {
        self.lock().restore_listener(listener, rules)
    }

    /// A load balancer deleted behind the operator's back, with its listeners and their rules.
    /// False if it did not exist.
    pub fn delete_load_balancer(&self, load_balancer_arn: &str) -> bool {
        self.lock().delete_load_balancer(load_balancer_arn)
    }

    /// Set a target group's registered targets and their health (`TargetGroupNotFound` if the
    /// group does not exist).
    pub fn set_target_health(&self, target_group_arn: &str, targets: Vec<TargetHealth>) -> Result<(), Classified> {
        self.lock().set_target_health(target_group_arn, targets)
    }

    // --- inspection -------------------------------------------------------------------------

    /// Every load balancer, by ARN order.
    pub fn load_balancers(&self) -> Vec<ModelLoadBalancer> {
        self.lock().load_balancers.values().cloned().collect()
    }

    /// Every listener, by ARN order.
    pub fn listeners(&self) -> Vec<ModelListener> {
        self.lock().listeners.values().cloned().collect()
    }

    /// Every rule (default rules included) with its tags: by listener, then as DescribeRules
    /// lists them.
    pub fn rules(&self) -> Vec<ModelRule> {
        let state = self.lock();
        state.listeners.keys().flat_map(|l| state.rules_of(l)).cloned().collect()
    }

    /// Every target group with its tags, targets and the load balancers that use it.
    pub fn target_groups(&self) -> Vec<ModelTargetGroup> {
        let state = self.lock();
        state
            .target_groups
            .values()
            .map(|tg| ModelTargetGroup { load_balancer_arns: state.load_balancers_of(&tg.arn, None), ..tg.clone() })
            .collect()
    }
}

impl Elbv2Api for ModelElbv2 {
    fn describe_listener<'a>(&'a self, listener_arn: &'a str) -> ApiFuture<'a, Option<Listener>> {
        Box::pin(async move { self.call("DescribeListeners", |s| s.describe_listener(listener_arn)) })
    }

    fn describe_load_balancer<'a>(&'a self, load_balancer_arn: &'a str) -> ApiFuture<'a, Option<LoadBalancer>> {
        Box::pin(async move { self.call("DescribeLoadBalancers", |s| s.describe_load_balancer(load_balancer_arn)) })
    }

    fn describe_tags<'a>(&'a self, resource_arns: &'a [String]) -> ApiFuture<'a, BTreeMap<String, Tags>> {
        Box::pin(async move { self.call("DescribeTags", |s| s.describe_tags(resource_arns)) })
    }

    fn describe_target_groups<'a>(&'a self, names: &'a [String]) -> ApiFuture<'a, Vec<TargetGroup>> {
        Box::pin(async move { self.call("DescribeTargetGroups", |s| s.describe_target_groups(names)) })
    }

    fn describe_target_group_attributes<'a>(&'a self, target_group_arn: &'a str) -> ApiFuture<'a, Attributes> {
        Box::pin(async move {
            self.call("DescribeTargetGroupAttributes", |s| s.describe_target_group_attributes(target_group_arn))
        })
    }

    fn create_target_group<'a>(&'a self, group: &'a NewTargetGroup) -> ApiFuture<'a, String> {
        Box::pin(async move { self.call("CreateTargetGroup", |s| s.create_target_group(group)) })
    }

    fn modify_target_group<'a>(
        &'a self,
        target_group_arn: &'a str,
        health_check: &'a TargetGroupHealthCheck,
    ) -> ApiFuture<'a, ()> {
        Box::pin(
            async move { self.call("ModifyTargetGroup", |s| s.modify_target_group(target_group_arn, health_check)) },
        )
    }

    fn modify_target_group_attributes<'a>(
        &'a self,
        target_group_arn: &'a str,
        attributes: &'a Attributes,
    ) -> ApiFuture<'a, ()> {
        Box::pin(async move {
            self.call("ModifyTargetGroupAttributes", |s| s.modify_target_group_attributes(target_group_arn, attributes))
        })
    }

    fn describe_target_health<'a>(&'a self, target_group_arn: &'a str) -> ApiFuture<'a, Vec<TargetHealth>> {
        Box::pin(async move { self.call("DescribeTargetHealth", |s| s.describe_target_health(target_group_arn)) })
    }

    fn delete_target_group<'a>(&'a self, target_group_arn: &'a str) -> ApiFuture<'a, ()> {
        Box::pin(async move { self.call("DeleteTargetGroup", |s| s.delete_target_group(target_group_arn)) })
    }

    fn describe_rules<'a>(&'a self, listener_arn: &'a str, marker: Option<&'a str>) -> ApiFuture<'a, RulesPage> {
        Box::pin(async move { self.call("DescribeRules", |s| s.describe_rules(listener_arn, marker)) })
    }

    fn create_rule<'a>(
        &'a self,
        listener_arn: &'a str,
        priority: i32,
        rule: &'a RuleSpec,
        tags: &'a Tags,
    ) -> ApiFuture<'a, String> {
        Box::pin(async move {
            self.call("CreateRule", |s| s.create_rule(listener_arn, priority, &NewRule::from(rule), tags))
        })
    }

    fn modify_rule<'a>(&'a self, rule_arn: &'a str, rule: &'a RuleSpec) -> ApiFuture<'a, ()> {
        Box::pin(async move { self.call("ModifyRule", |s| s.modify_rule(rule_arn, &NewRule::from(rule))) })
    }

    fn set_rule_priority<'a>(&'a self, rule_arn: &'a str, priority: i32) -> ApiFuture<'a, ()> {
        Box::pin(async move { self.call("SetRulePriorities", |s| s.set_rule_priority(rule_arn, priority)) })
    }

    fn delete_rule<'a>(&'a self, rule_arn: &'a str) -> ApiFuture<'a, ()> {
        Box::pin(async move { self.call("DeleteRule", |s| s.delete_rule(rule_arn)) })
    }
}
