//! The ELBv2 calls this operator makes ([`Elbv2Api`]) and their SDK implementation ([`SdkElbv2`]).
//!
//! The FargateApp controller reads a listener's load balancer, its rules (with their tags) and
//! target groups, and creates, modifies and deletes one target group and one listener rule per
//! object. Each method is one request; `AwsCaller` budgets, retries and counts it. Reads return
//! only the fields the controller uses, as plain values.
//!
//! Error codes an implementation should use (the controllers match on the category, some on the
//! code): `ListenerNotFound`, `LoadBalancerNotFound`, `TargetGroupNotFound`, `RuleNotFound`
//! (category NotFound); `PriorityInUse`, `ResourceInUse`, `DuplicateTargetGroupName` (Conflict);
//! `ValidationError`, `TooManyRules`, `TooManyTargetGroups`, `AccessDenied` (Terminal).

use std::collections::BTreeMap;

use aws_sdk_elasticloadbalancingv2 as sdk;
use sdk::types as elb;

use super::{ApiFuture, classified};

/// Tags of one resource, key to value.
pub type Tags = BTreeMap<String, String>;

/// Target group attributes, key to value.
pub type Attributes = BTreeMap<String, String>;

/// The deregistration delay attribute of a target group (seconds, as a string).
pub const DEREGISTRATION_DELAY: &str = "deregistration_delay.timeout_seconds";

/// Pages of DescribeRules the SDK implementation asks for (the API's maximum).
pub const RULES_PAGE_SIZE: i32 = 400;
/// Names one DescribeTargetGroups call asks for. ELBv2 documents no limit on `Names`; 20 is the
/// limit of its other list reads (DescribeTags) and keeps a batch that fails on one unknown
/// name cheap to retry name by name.
pub const TARGET_GROUP_NAMES_PER_CALL: usize = 20;

/// A listener, as far as the operator needs it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listener {
    /// ARN of the listener.
    pub arn: String,
    /// ARN of the load balancer it belongs to.
    pub load_balancer_arn: String,
}

/// A load balancer, as far as the operator needs it (alias records and target group VPC).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadBalancer {
    /// ARN.
    pub arn: String,
    /// Public DNS name (`name-123.region.elb.amazonaws.com`).
    pub dns_name: String,
    /// Route 53 hosted zone of the DNS name, for alias records.
    pub canonical_hosted_zone_id: String,
    /// VPC the load balancer lives in.
    pub vpc_id: String,
}

/// The HTTP health check of a target group (what CreateTargetGroup sets and ModifyTargetGroup changes).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TargetGroupHealthCheck {
    /// Path probed on each target.
    pub path: String,
    /// Seconds between probes.
    pub interval_seconds: i32,
    /// Seconds before a probe fails.
    pub timeout_seconds: i32,
    /// Consecutive successes before a target is healthy.
    pub healthy_threshold: i32,
    /// Consecutive failures before a target is unhealthy.
    pub unhealthy_threshold: i32,
    /// HTTP codes that count as success (`200`, `200-399`).
    pub matcher: String,
}

/// A target group as DescribeTargetGroups reports it (absent fields read as empty or zero).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TargetGroup {
    /// ARN.
    pub arn: String,
    /// Name (unique per account and region).
    pub name: String,
    /// `HTTP` or `HTTPS`.
    pub protocol: String,
    /// Port targets receive traffic on.
    pub port: i32,
    /// VPC of the group.
    pub vpc_id: String,
    /// Its health check.
    pub health_check: TargetGroupHealthCheck,
}

/// A target group to create: target type `ip`, health checked over its own protocol.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewTargetGroup {
    /// Name (≤ 32 characters).
    pub name: String,
    /// `HTTP` or `HTTPS`.
    pub protocol: String,
    /// Port targets receive traffic on.
    pub port: i32,
    /// VPC of the group.
    pub vpc_id: String,
    /// Its health check.
    pub health_check: TargetGroupHealthCheck,
    /// Tags set by the create itself.
    pub tags: Tags,
}

/// One registered target and its health.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TargetHealth {
    /// Target id (an IP address for `ip` groups).
    pub target_id: String,
    /// Port, when reported.
    pub port: Option<i32>,
    /// `initial`, `healthy`, `unhealthy`, `unused`, `draining` or `unavailable`.
    pub state: String,
}

/// What a rule matches and where it forwards (what CreateRule and ModifyRule set).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleSpec {
    /// `path-pattern` values; no condition when empty.
    pub path_patterns: Vec<String>,
    /// `host-header` values; no condition when empty.
    pub host_headers: Vec<String>,
    /// The one target group it forwards to.
    pub target_group_arn: String,
}

/// A listener rule as DescribeRules reports it. Conditions other than path and host are not read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rule {
    /// ARN.
    pub arn: String,
    /// Priority; `None` for the default rule (AWS says `default`).
    pub priority: Option<i32>,
    /// The listener's default rule (cannot be deleted, matches everything else).
    pub is_default: bool,
    /// `path-pattern` values, as listed.
    pub path_patterns: Vec<String>,
    /// `host-header` values, as listed.
    pub host_headers: Vec<String>,
    /// The target group each forward action sends to, in action order.
    pub forward_to: Vec<String>,
}

/// One page of DescribeRules.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RulesPage {
    /// The rules of this page, in AWS's order.
    pub rules: Vec<Rule>,
    /// Marker of the next page; `None` on the last.
    pub next_marker: Option<String>,
}

/// The ELBv2 requests of this operator, one AWS request per method.
pub trait Elbv2Api: Send + Sync + std::fmt::Debug {
    /// DescribeListeners for one ARN. `None` only if AWS answered without it; an unknown listener
    /// is the error `ListenerNotFound`.
    fn describe_listener<'a>(&'a self, listener_arn: &'a str) -> ApiFuture<'a, Option<Listener>>;

    /// DescribeLoadBalancers for one ARN. An unknown one is `LoadBalancerNotFound`; an empty or
    /// malformed ARN is `ValidationError`.
    fn describe_load_balancer<'a>(&'a self, load_balancer_arn: &'a str) -> ApiFuture<'a, Option<LoadBalancer>>;

    /// DescribeTags for at most 20 resources (load balancers, listeners, rules, target groups),
    /// keyed by ARN. If any of them does not exist the whole call fails with that resource's
    /// NotFound code (e.g. `TargetGroupNotFound`, `RuleNotFound`).
    fn describe_tags<'a>(&'a self, resource_arns: &'a [String]) -> ApiFuture<'a, BTreeMap<String, Tags>>;

    /// DescribeTargetGroups by name, at most [`TARGET_GROUP_NAMES_PER_CALL`] names: the groups, in
    /// any order. If any name does not exist the whole call fails with `TargetGroupNotFound`
    /// (which name is not said), not an empty or partial answer.
    fn describe_target_groups<'a>(&'a self, names: &'a [String]) -> ApiFuture<'a, Vec<TargetGroup>>;

    /// DescribeTargetGroupAttributes: every attribute, key to value (e.g. [`DEREGISTRATION_DELAY`]).
    /// An unknown group is `TargetGroupNotFound`.
    fn describe_target_group_attributes<'a>(&'a self, target_group_arn: &'a str) -> ApiFuture<'a, Attributes>;

    /// CreateTargetGroup; returns the new group's ARN. Creating a group that exists with the same
    /// settings returns the existing one; with other settings it is `DuplicateTargetGroupName`.
    /// Over the account's limit: `TooManyTargetGroups`.
    fn create_target_group<'a>(&'a self, group: &'a NewTargetGroup) -> ApiFuture<'a, String>;

    /// ModifyTargetGroup: set the group's health check. Unknown group: `TargetGroupNotFound`.
    fn modify_target_group<'a>(
        &'a self,
        target_group_arn: &'a str,
        health_check: &'a TargetGroupHealthCheck,
    ) -> ApiFuture<'a, ()>;

    /// ModifyTargetGroupAttributes: set the given attributes, leaving the others.
    fn modify_target_group_attributes<'a>(
        &'a self,
        target_group_arn: &'a str,
        attributes: &'a Attributes,
    ) -> ApiFuture<'a, ()>;

    /// DescribeTargetHealth: every registered target of the group (empty when none).
    fn describe_target_health<'a>(&'a self, target_group_arn: &'a str) -> ApiFuture<'a, Vec<TargetHealth>>;

    /// DeleteTargetGroup. A group still used by a listener or rule is `ResourceInUse` (Conflict):
    /// it stays. A group already gone answers success or `TargetGroupNotFound`; both mean done.
    fn delete_target_group<'a>(&'a self, target_group_arn: &'a str) -> ApiFuture<'a, ()>;

    /// DescribeRules: one page of the listener's rules, starting at `marker` (the first page when
    /// `None`); follow [`RulesPage::next_marker`] for the rest. Unknown listener: `ListenerNotFound`.
    fn describe_rules<'a>(&'a self, listener_arn: &'a str, marker: Option<&'a str>) -> ApiFuture<'a, RulesPage>;

    /// CreateRule at `priority` with `tags`; returns the rule's ARN. A priority another rule of
    /// the listener has is `PriorityInUse` (Conflict); nothing is created then.
    fn create_rule<'a>(
        &'a self,
        listener_arn: &'a str,
        priority: i32,
        rule: &'a RuleSpec,
        tags: &'a Tags,
    ) -> ApiFuture<'a, String>;

    /// ModifyRule: replace the rule's conditions and actions. Unknown rule: `RuleNotFound`.
    fn modify_rule<'a>(&'a self, rule_arn: &'a str, rule: &'a RuleSpec) -> ApiFuture<'a, ()>;

    /// SetRulePriorities for one rule. A priority taken by another rule is `PriorityInUse`.
    fn set_rule_priority<'a>(&'a self, rule_arn: &'a str, priority: i32) -> ApiFuture<'a, ()>;

    /// DeleteRule. Unknown rule: `RuleNotFound`; the default rule cannot be deleted
    /// (`OperationNotPermitted`).
    fn delete_rule<'a>(&'a self, rule_arn: &'a str) -> ApiFuture<'a, ()>;
}

/// [`Elbv2Api`] over the AWS SDK client (production).
#[derive(Clone, Debug)]
pub struct SdkElbv2 {
    client: sdk::Client,
}

impl SdkElbv2 {
    /// Wrap an SDK client (its interceptors, e.g. fault injection, stay on).
    pub fn new(client: sdk::Client) -> Self {
        Self { client }
    }
}

fn sdk_tags(tags: &Tags) -> Vec<elb::Tag> {
    tags.iter().map(|(k, v)| elb::Tag::builder().key(k).value(v).build()).collect()
}

/// Set a [`TargetGroupHealthCheck`] on a CreateTargetGroup or ModifyTargetGroup request (two
/// builder types with the same setters).
macro_rules! with_health_check {
    ($request:expr, $h:expr) => {
        $request
            .health_check_path(&$h.path)
            .health_check_interval_seconds($h.interval_seconds)
            .health_check_timeout_seconds($h.timeout_seconds)
            .healthy_threshold_count($h.healthy_threshold)
            .unhealthy_threshold_count($h.unhealthy_threshold)
            .matcher(elb::Matcher::builder().http_code(&$h.matcher).build())
    };
}

fn conditions(rule: &RuleSpec) -> Vec<elb::RuleCondition> {
    let mut out = Vec::new();
    if !rule.path_patterns.is_empty() {
        let config = elb::PathPatternConditionConfig::builder().set_values(Some(rule.path_patterns.clone())).build();
        out.push(elb::RuleCondition::builder().field("path-pattern").path_pattern_config(config).build());
    }
    if !rule.host_headers.is_empty() {
        let config = elb::HostHeaderConditionConfig::builder().set_values(Some(rule.host_headers.clone())).build();
        out.push(elb::RuleCondition::builder().field("host-header").host_header_config(config).build());
    }
    out
}

fn forward(rule: &RuleSpec) -> elb::Action {
    elb::Action::builder().r#type(elb::ActionTypeEnum::Forward).target_group_arn(&rule.target_group_arn).build()
}

fn target_group_of(tg: &elb::TargetGroup) -> TargetGroup {
    TargetGroup {
        arn: tg.target_group_arn().unwrap_or_default().to_string(),
        name: tg.target_group_name().unwrap_or_default().to_string(),
        protocol: tg.protocol().map(|p| p.as_str().to_string()).unwrap_or_default(),
        port: tg.port().unwrap_or_default(),
        vpc_id: tg.vpc_id().unwrap_or_default().to_string(),
        health_check: TargetGroupHealthCheck {
            path: tg.health_check_path().unwrap_or_default().to_string(),
            interval_seconds: tg.health_check_interval_seconds().unwrap_or_default(),
            timeout_seconds: tg.health_check_timeout_seconds().unwrap_or_default(),
            healthy_threshold: tg.healthy_threshold_count().unwrap_or_default(),
            unhealthy_threshold: tg.unhealthy_threshold_count().unwrap_or_default(),
            matcher: tg.matcher().and_then(|m| m.http_code()).unwrap_or_default().to_string(),
        },
    }
}

fn rule_of(r: &elb::Rule) -> Rule {
    let (mut path_patterns, mut host_headers) = (Vec::new(), Vec::new());
    for c in r.conditions() {
        // Newer responses carry the values in the typed config, older ones in `values`.
        let values: Vec<String> = c
            .path_pattern_config()
            .map(|p| p.values().to_vec())
            .or_else(|| c.host_header_config().map(|h| h.values().to_vec()))
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| c.values().to_vec());
        match c.field() {
            Some("path-pattern") => path_patterns.extend(values),
            Some("host-header") => host_headers.extend(values),
            _ => {}
        }
    }
    let forward_to = r
        .actions()
        .iter()
        .filter_map(|a| {
            a.target_group_arn().or_else(|| {
                a.forward_config().and_then(|f| f.target_groups().first()).and_then(|t| t.target_group_arn())
            })
        })
        .map(str::to_string)
        .collect();
    Rule {
        arn: r.rule_arn().unwrap_or_default().to_string(),
        priority: r.priority().and_then(|p| p.parse().ok()),
        is_default: r.is_default().unwrap_or(false),
        path_patterns,
        host_headers,
        forward_to,
    }
}

impl Elbv2Api for SdkElbv2 {
    fn describe_listener<'a>(&'a self, listener_arn: &'a str) -> ApiFuture<'a, Option<Listener>> {
        Box::pin(async move {
            let out = self.client.describe_listeners().listener_arns(listener_arn).send().await.map_err(classified)?;
            Ok(out.listeners().first().map(|l| Listener {
                arn: l.listener_arn().unwrap_or_default().to_string(),
                load_balancer_arn: l.load_balancer_arn().unwrap_or_default().to_string(),
            }))
        })
    }

    fn describe_load_balancer<'a>(&'a self, load_balancer_arn: &'a str) -> ApiFuture<'a, Option<LoadBalancer>> {
        Box::pin(async move {
            let out = self
                .client
                .describe_load_balancers()
                .load_balancer_arns(load_balancer_arn)
                .send()
                .await
                .map_err(classified)?;
            Ok(out.load_balancers().first().map(|lb| LoadBalancer {
                arn: lb.load_balancer_arn().unwrap_or_default().to_string(),
                dns_name: lb.dns_name().unwrap_or_default().to_string(),
                canonical_hosted_zone_id: lb.canonical_hosted_zone_id().unwrap_or_default().to_string(),
                vpc_id: lb.vpc_id().unwrap_or_default().to_string(),
            }))
        })
    }

    fn describe_tags<'a>(&'a self, resource_arns: &'a [String]) -> ApiFuture<'a, BTreeMap<String, Tags>> {
        Box::pin(async move {
            let out = self
                .client
                .describe_tags()
                .set_resource_arns(Some(resource_arns.to_vec()))
                .send()
                .await
                .map_err(classified)?;
            Ok(out
                .tag_descriptions()
                .iter()
                .map(|d| {
                    let tags = d
                        .tags()
                        .iter()
                        .map(|t| (t.key().unwrap_or_default().to_string(), t.value().unwrap_or_default().to_string()))
                        .collect();
                    (d.resource_arn().unwrap_or_default().to_string(), tags)
                })
                .collect())
        })
    }

    fn describe_target_groups<'a>(&'a self, names: &'a [String]) -> ApiFuture<'a, Vec<TargetGroup>> {
        Box::pin(async move {
            let out = self
                .client
                .describe_target_groups()
                .set_names(Some(names.to_vec()))
                .send()
                .await
                .map_err(classified)?;
            Ok(out.target_groups().iter().map(target_group_of).collect())
        })
    }

    fn describe_target_group_attributes<'a>(&'a self, target_group_arn: &'a str) -> ApiFuture<'a, Attributes> {
        Box::pin(async move {
            let out = self
                .client
                .describe_target_group_attributes()
                .target_group_arn(target_group_arn)
                .send()
                .await
                .map_err(classified)?;
            Ok(out
                .attributes()
                .iter()
                .filter_map(|a| Some((a.key()?.to_string(), a.value().unwrap_or_default().to_string())))
                .collect())
        })
    }

    fn create_target_group<'a>(&'a self, group: &'a NewTargetGroup) -> ApiFuture<'a, String> {
        Box::pin(async move {
            let protocol = elb::ProtocolEnum::from(group.protocol.as_str());
            let request = self
                .client
                .create_target_group()
                .name(&group.name)
                .protocol(protocol.clone())
                .port(group.port)
                .vpc_id(&group.vpc_id)
                .target_type(elb::TargetTypeEnum::Ip)
                .health_check_protocol(protocol)
                .set_tags(Some(sdk_tags(&group.tags)));
            let out = with_health_check!(request, group.health_check).send().await.map_err(classified)?;
            Ok(out.target_groups().first().and_then(|t| t.target_group_arn()).unwrap_or_default().to_string())
        })
    }

    fn modify_target_group<'a>(
        &'a self,
        target_group_arn: &'a str,
        h: &'a TargetGroupHealthCheck,
    ) -> ApiFuture<'a, ()> {
        Box::pin(async move {
            let request = self.client.modify_target_group().target_group_arn(target_group_arn);
            with_health_check!(request, h).send().await.map_err(classified)?;
            Ok(())
        })
    }

    fn modify_target_group_attributes<'a>(
        &'a self,
        target_group_arn: &'a str,
        attributes: &'a Attributes,
    ) -> ApiFuture<'a, ()> {
        Box::pin(async move {
            let attributes =
                attributes.iter().map(|(k, v)| elb::TargetGroupAttribute::builder().key(k).value(v).build()).collect();
            self.client
                .modify_target_group_attributes()
                .target_group_arn(target_group_arn)
                .set_attributes(Some(attributes))
                .send()
                .await
                .map_err(classified)?;
            Ok(())
        })
    }

    fn describe_target_health<'a>(&'a self, target_group_arn: &'a str) -> ApiFuture<'a, Vec<TargetHealth>> {
        Box::pin(async move {
            let out = self
                .client
                .describe_target_health()
                .target_group_arn(target_group_arn)
                .send()
                .await
                .map_err(classified)?;
            Ok(out
                .target_health_descriptions()
                .iter()
                .map(|d| TargetHealth {
                    target_id: d.target().and_then(|t| t.id()).unwrap_or_default().to_string(),
                    port: d.target().and_then(|t| t.port()),
                    state: d
                        .target_health()
                        .and_then(|h| h.state())
                        .map(|s| s.as_str().to_string())
                        .unwrap_or_default(),
                })
                .collect())
        })
    }

    fn delete_target_group<'a>(&'a self, target_group_arn: &'a str) -> ApiFuture<'a, ()> {
        Box::pin(async move {
            self.client.delete_target_group().target_group_arn(target_group_arn).send().await.map_err(classified)?;
            Ok(())
        })
    }

    fn describe_rules<'a>(&'a self, listener_arn: &'a str, marker: Option<&'a str>) -> ApiFuture<'a, RulesPage> {
        Box::pin(async move {
            let out = self
                .client
                .describe_rules()
                .listener_arn(listener_arn)
                .set_marker(marker.map(str::to_string))
                .page_size(RULES_PAGE_SIZE)
                .send()
                .await
                .map_err(classified)?;
            Ok(RulesPage {
                rules: out.rules().iter().map(rule_of).collect(),
                next_marker: out.next_marker().map(str::to_string),
            })
        })
    }

    fn create_rule<'a>(
        &'a self,
        listener_arn: &'a str,
        priority: i32,
        rule: &'a RuleSpec,
        tags: &'a Tags,
    ) -> ApiFuture<'a, String> {
        Box::pin(async move {
            let out = self
                .client
                .create_rule()
                .listener_arn(listener_arn)
                .priority(priority)
                .set_conditions(Some(conditions(rule)))
                .actions(forward(rule))
                .set_tags(Some(sdk_tags(tags)))
                .send()
                .await
                .map_err(classified)?;
            Ok(out.rules().first().and_then(|r| r.rule_arn()).unwrap_or_default().to_string())
        })
    }

    fn modify_rule<'a>(&'a self, rule_arn: &'a str, rule: &'a RuleSpec) -> ApiFuture<'a, ()> {
        Box::pin(async move {
            self.client
                .modify_rule()
                .rule_arn(rule_arn)
                .set_conditions(Some(conditions(rule)))
                .actions(forward(rule))
                .send()
                .await
                .map_err(classified)?;
            Ok(())
        })
    }

    fn set_rule_priority<'a>(&'a self, rule_arn: &'a str, priority: i32) -> ApiFuture<'a, ()> {
        Box::pin(async move {
            let pair = elb::RulePriorityPair::builder().rule_arn(rule_arn).priority(priority).build();
            self.client.set_rule_priorities().rule_priorities(pair).send().await.map_err(classified)?;
            Ok(())
        })
    }

    fn delete_rule<'a>(&'a self, rule_arn: &'a str) -> ApiFuture<'a, ()> {
        Box::pin(async move {
            self.client.delete_rule().rule_arn(rule_arn).send().await.map_err(classified)?;
            Ok(())
        })
    }
}

#[cfg(test)]
pub(crate) mod fake;
