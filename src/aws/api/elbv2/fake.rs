//! A hand-written [`Elbv2Api`] for unit tests: one listener's rules, listed `page_size` per
//! DescribeRules page; tags by ARN (DescribeTags refuses more than 20 ARNs, as ELBv2 does, and an
//! ARN it does not know is NotFound); target groups that DeleteTargetGroup refuses with
//! `ResourceInUse` while a rule forwards to them. It logs every request; what it was not written
//! for fails with `NotFaked`.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::{
    Attributes, Elbv2Api, Listener, LoadBalancer, NewTargetGroup, Rule, RuleSpec, RulesPage, Tags, TargetGroup,
    TargetGroupHealthCheck, TargetHealth,
};
use crate::aws::api::ApiFuture;
use crate::aws::api::route53::fake::{RequestLog, error, page};
use crate::aws::errors::ErrorCategory;

/// The fake; set the fields a test needs and leave the others default.
#[derive(Debug, Default)]
pub(crate) struct FakeElbv2 {
    /// The listener's rules, in priority order (the default rule last, as ELBv2 lists it).
    pub rules: Vec<Rule>,
    /// Rules per DescribeRules page (at least 1).
    pub page_size: usize,
    /// Tags of every resource DescribeTags knows.
    pub tags: BTreeMap<String, Tags>,
    /// ARNs of the target groups that exist.
    pub target_groups: Mutex<Vec<String>>,
    /// Every request.
    pub log: RequestLog,
}

impl Elbv2Api for FakeElbv2 {
    fn describe_listener<'a>(&'a self, _: &'a str) -> ApiFuture<'a, Option<Listener>> {
        self.log.not_faked("DescribeListeners")
    }

    fn describe_load_balancer<'a>(&'a self, _: &'a str) -> ApiFuture<'a, Option<LoadBalancer>> {
        self.log.not_faked("DescribeLoadBalancers")
    }

    fn describe_tags<'a>(&'a self, resource_arns: &'a [String]) -> ApiFuture<'a, BTreeMap<String, Tags>> {
        self.log.record(format!("DescribeTags {}", resource_arns.len()));
        let answer = if resource_arns.len() > 20 {
            Err(error(ErrorCategory::Terminal, "ValidationError"))
        } else {
            resource_arns
                .iter()
                .map(|arn| match self.tags.get(arn) {
                    Some(tags) => Ok((arn.clone(), tags.clone())),
                    None if arn.contains(":targetgroup/") => Err(error(ErrorCategory::NotFound, "TargetGroupNotFound")),
                    None => Err(error(ErrorCategory::NotFound, "RuleNotFound")),
                })
                .collect()
        };
        Box::pin(async move { answer })
    }

    fn describe_target_groups<'a>(&'a self, _: &'a [String]) -> ApiFuture<'a, Vec<TargetGroup>> {
        self.log.not_faked("DescribeTargetGroups")
    }

    fn describe_target_group_attributes<'a>(&'a self, _: &'a str) -> ApiFuture<'a, Attributes> {
        self.log.not_faked("DescribeTargetGroupAttributes")
    }

    fn create_target_group<'a>(&'a self, _: &'a NewTargetGroup) -> ApiFuture<'a, String> {
        self.log.not_faked("CreateTargetGroup")
    }

    fn modify_target_group<'a>(&'a self, _: &'a str, _: &'a TargetGroupHealthCheck) -> ApiFuture<'a, ()> {
        self.log.not_faked("ModifyTargetGroup")
    }

    fn modify_target_group_attributes<'a>(&'a self, _: &'a str, _: &'a Attributes) -> ApiFuture<'a, ()> {
        self.log.not_faked("ModifyTargetGroupAttributes")
    }

    fn describe_target_health<'a>(&'a self, _: &'a str) -> ApiFuture<'a, Vec<TargetHealth>> {
        self.log.not_faked("DescribeTargetHealth")
    }

    fn delete_target_group<'a>(&'a self, target_group_arn: &'a str) -> ApiFuture<'a, ()> {
        self.log.record(format!("DeleteTargetGroup {target_group_arn}"));
        let answer = if self.rules.iter().any(|r| r.forward_to.iter().any(|t| t == target_group_arn)) {
            Err(error(ErrorCategory::Conflict, "ResourceInUse"))
        } else {
            let mut groups = self.target_groups.lock().unwrap_or_else(|p| p.into_inner());
            let before = groups.len();
            groups.retain(|g| g != target_group_arn);
            if groups.len() < before { Ok(()) } else { Err(error(ErrorCategory::NotFound, "TargetGroupNotFound")) }
        };
        Box::pin(async move { answer })
    }

    fn describe_rules<'a>(&'a self, _: &'a str, marker: Option<&'a str>) -> ApiFuture<'a, RulesPage> {
        self.log.record(format!("DescribeRules {}", marker.unwrap_or("-")));
        let (rules, next_marker) = page(&self.rules, marker, self.page_size);
        Box::pin(async move { Ok(RulesPage { rules, next_marker }) })
    }

    fn create_rule<'a>(&'a self, _: &'a str, _: i32, _: &'a RuleSpec, _: &'a Tags) -> ApiFuture<'a, String> {
        self.log.not_faked("CreateRule")
    }

    fn modify_rule<'a>(&'a self, _: &'a str, _: &'a RuleSpec) -> ApiFuture<'a, ()> {
        self.log.not_faked("ModifyRule")
    }

    fn set_rule_priority<'a>(&'a self, _: &'a str, _: i32) -> ApiFuture<'a, ()> {
        self.log.not_faked("SetRulePriorities")
    }

    fn delete_rule<'a>(&'a self, _: &'a str) -> ApiFuture<'a, ()> {
        self.log.not_faked("DeleteRule")
    }
}
