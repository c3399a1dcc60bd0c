//! ELBv2 and Route 53 reads and writes of the FargateApp controller (the ECS ones are in `ecs.rs`).
//! Every call goes through `AwsCaller` (budget, retries, metrics) under the AWS operation's own name.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_elasticloadbalancingv2::types as elb;
use aws_sdk_route53::types as r53;

use super::plan::{DesiredTargetGroup, ObservedRule, ObservedTargetGroup, sorted};
use crate::aws::naming::Owner;
use crate::aws::{AwsCaller, AwsError, Service};

/// Clients for one object's account and region.
pub struct FargateAws {
    /// Caller (budget, retries, metrics).
    pub caller: AwsCaller,
    /// ECS.
    pub ecs: std::sync::Arc<dyn crate::aws::api::ecs::EcsApi>,
    /// ELBv2.
    pub elb: aws_sdk_elasticloadbalancingv2::Client,
    /// Route 53.
    pub r53: aws_sdk_route53::Client,
    /// Owner identity and tags.
    pub owner: Owner,
    /// Facts remembered by the process (the load balancer behind a listener).
    pub facts: std::sync::Arc<crate::aws::facts::Facts>,
}

pub use crate::aws::facts::ListenerInfo;

/// ELBv2 tags from a map.
fn elb_tags_of(tags: &BTreeMap<String, String>) -> Vec<elb::Tag> {
    tags.iter().map(|(k, v)| elb::Tag::builder().key(k).value(v).build()).collect()
}

pub(super) fn tag_map<'a>(tags: impl IntoIterator<Item = (&'a str, &'a str)>) -> BTreeMap<String, String> {
    tags.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

impl FargateAws {
    pub(super) fn owns(&self, tags: &BTreeMap<String, String>) -> bool {
        self.owner.owns(tags.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }

    /// The load balancer behind `listener_arn` (read once per process: a listener never moves).
    pub async fn listener(&self, listener_arn: &str) -> Result<ListenerInfo, AwsError> {
        if let Some(info) = self.facts.listener(listener_arn) {
            return Ok(info);
        }
        let info = self.read_listener(listener_arn).await?;
        if !info.lb_arn.is_empty() {
            self.facts.remember_listener(listener_arn, info.clone());
        }
        Ok(info)
    }

    async fn read_listener(&self, listener_arn: &str) -> Result<ListenerInfo, AwsError> {
        let out = self
            .caller
            .call(Service::Elbv2, "DescribeListeners", || {
                self.elb.describe_listeners().listener_arns(listener_arn).send()
            })
            .await?;
        let lb_arn = out.listeners().first().and_then(|l| l.load_balancer_arn()).unwrap_or_default().to_string();
        let out = self
            .caller
            .call(Service::Elbv2, "DescribeLoadBalancers", || {
                self.elb.describe_load_balancers().load_balancer_arns(&lb_arn).send()
            })
            .await?;
        let lb = out.load_balancers().first();
        Ok(ListenerInfo {
            lb_arn: lb_arn.clone(),
            dns_name: lb.and_then(|l| l.dns_name()).unwrap_or_default().to_string(),
            canonical_zone_id: lb.and_then(|l| l.canonical_hosted_zone_id()).unwrap_or_default().to_string(),
            vpc_id: lb.and_then(|l| l.vpc_id()).unwrap_or_default().to_string(),
        })
    }

    /// Tags of ELBv2 resources (≤ 20 ARNs per call).
    async fn elb_tags(&self, arns: &[String]) -> Result<BTreeMap<String, BTreeMap<String, String>>, AwsError> {
        let mut out = BTreeMap::new();
        for chunk in arns.chunks(20) {
            let resp = self
                .caller
                .call(Service::Elbv2, "DescribeTags", || {
                    self.elb.describe_tags().set_resource_arns(Some(chunk.to_vec())).send()
                })
                .await?;
            for d in resp.tag_descriptions() {
                let tags =
                    tag_map(d.tags().iter().map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default())));
                out.insert(d.resource_arn().unwrap_or_default().to_string(), tags);
            }
        }
        Ok(out)
    }

    /// Our target group by name: `Ok(None)` when absent, `Err` on failure, and `(tg, owned)`.
    /// Attributes are read only when `read_attributes` (else `deregistration_delay` is None), and
    /// tags only when the group is not the one `recorded` in status (ours since we made or adopted it).
    pub async fn target_group(
        &self,
        name: &str,
        read_attributes: bool,
        recorded: Option<&str>,
    ) -> Result<Option<(ObservedTargetGroup, bool)>, AwsError> {
        let resp = match self
            .caller
            .call(Service::Elbv2, "DescribeTargetGroups", || self.elb.describe_target_groups().names(name).send())
            .await
        {
            Ok(r) => r,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        let Some(tg) = resp.target_groups().first() else { return Ok(None) };
        let arn = tg.target_group_arn().unwrap_or_default().to_string();
        let delay = if read_attributes {
            let attrs = self
                .caller
                .call(Service::Elbv2, "DescribeTargetGroupAttributes", || {
                    self.elb.describe_target_group_attributes().target_group_arn(&arn).send()
                })
                .await?;
            attrs
                .attributes()
                .iter()
                .find(|a| a.key() == Some("deregistration_delay.timeout_seconds"))
                .and_then(|a| a.value())
                .and_then(|v| v.parse().ok())
        } else {
            None
        };
        let owned = recorded == Some(arn.as_str())
            || self.elb_tags(std::slice::from_ref(&arn)).await?.get(&arn).is_some_and(|t| self.owns(t));
        let observed = ObservedTargetGroup {
            arn,
            port: tg.port().unwrap_or_default(),
            protocol: tg.protocol().map(|p| p.as_str().to_string()).unwrap_or_default(),
            vpc_id: tg.vpc_id().unwrap_or_default().to_string(),
            path: tg.health_check_path().unwrap_or_default().to_string(),
            interval: tg.health_check_interval_seconds().unwrap_or_default(),
            timeout: tg.health_check_timeout_seconds().unwrap_or_default(),
            healthy: tg.healthy_threshold_count().unwrap_or_default(),
            unhealthy: tg.unhealthy_threshold_count().unwrap_or_default(),
            matcher: tg.matcher().and_then(|m| m.http_code()).unwrap_or_default().to_string(),
            deregistration_delay: delay,
        };
        Ok(Some((observed, owned)))
    }

    /// Create the target group with our tags; returns its ARN.
    pub async fn create_target_group(
        &self,
        d: &DesiredTargetGroup,
        tags: &BTreeMap<String, String>,
    ) -> Result<String, AwsError> {
        let h = &d.health;
        let tags = elb_tags_of(tags);
        let resp = self
            .caller
            .call_create(Service::Elbv2, "CreateTargetGroup", || {
                self.elb
                    .create_target_group()
                    .name(&d.name)
                    .protocol(elb::ProtocolEnum::from(d.protocol.as_str()))
                    .port(d.port)
                    .vpc_id(&d.vpc_id)
                    .target_type(elb::TargetTypeEnum::Ip)
                    .health_check_protocol(elb::ProtocolEnum::from(d.protocol.as_str()))
                    .health_check_path(&h.path)
                    .health_check_interval_seconds(h.interval_seconds)
                    .health_check_timeout_seconds(h.timeout_seconds)
                    .healthy_threshold_count(h.healthy_threshold)
                    .unhealthy_threshold_count(h.unhealthy_threshold)
                    .matcher(elb::Matcher::builder().http_code(&h.matcher).build())
                    .set_tags(Some(tags.clone()))
                    .send()
            })
            .await?;
        Ok(resp.target_groups().first().and_then(|t| t.target_group_arn()).unwrap_or_default().to_string())
    }

    /// Bring the health check in line.
    pub async fn modify_target_group(&self, arn: &str, d: &DesiredTargetGroup) -> Result<(), AwsError> {
        let h = &d.health;
        self.caller
            .call(Service::Elbv2, "ModifyTargetGroup", || {
                self.elb
                    .modify_target_group()
                    .target_group_arn(arn)
                    .health_check_path(&h.path)
                    .health_check_interval_seconds(h.interval_seconds)
                    .health_check_timeout_seconds(h.timeout_seconds)
                    .healthy_threshold_count(h.healthy_threshold)
                    .unhealthy_threshold_count(h.unhealthy_threshold)
                    .matcher(elb::Matcher::builder().http_code(&h.matcher).build())
                    .send()
            })
            .await?;
        Ok(())
    }

    /// Set the deregistration delay.
    pub async fn set_deregistration_delay(&self, arn: &str, seconds: i32) -> Result<(), AwsError> {
        let attr = elb::TargetGroupAttribute::builder()
            .key("deregistration_delay.timeout_seconds")
            .value(seconds.to_string())
            .build();
        self.caller
            .call(Service::Elbv2, "ModifyTargetGroupAttributes", || {
                self.elb.modify_target_group_attributes().target_group_arn(arn).attributes(attr.clone()).send()
            })
            .await?;
        Ok(())
    }

    /// Targets of the group that are not healthy (initial/draining/unused are not counted).
    pub async fn unhealthy_targets(&self, arn: &str) -> Result<usize, AwsError> {
        let resp = self
            .caller
            .call(Service::Elbv2, "DescribeTargetHealth", || {
                self.elb.describe_target_health().target_group_arn(arn).send()
            })
            .await?;
        Ok(resp
            .target_health_descriptions()
            .iter()
            .filter(|d| {
                matches!(d.target_health().and_then(|h| h.state()), Some(elb::TargetHealthStateEnum::Unhealthy))
            })
            .count())
    }

    /// Delete a target group; NotFound counts as done.
    pub async fn delete_target_group(&self, arn: &str) -> Result<(), AwsError> {
        match self
            .caller
            .call(Service::Elbv2, "DeleteTargetGroup", || self.elb.delete_target_group().target_group_arn(arn).send())
            .await
        {
            Err(e) if !e.is_not_found() => Err(e),
            _ => Ok(()),
        }
    }

    /// Whether the target group `arn` carries our owner tags; None when it is gone.
    pub async fn target_group_is_ours(&self, arn: &str) -> Result<Option<bool>, AwsError> {
        match self.elb_tags(&[arn.to_string()]).await {
            Ok(tags) => Ok(Some(tags.get(arn).is_some_and(|t| self.owns(t)))),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every rule of the listener, with ownership.
    pub async fn rules(&self, listener_arn: &str) -> Result<Vec<ObservedRule>, AwsError> {
        let mut rules = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let resp = self
                .caller
                .call(Service::Elbv2, "DescribeRules", || {
                    self.elb
                        .describe_rules()
                        .listener_arn(listener_arn)
                        .set_marker(marker.clone())
                        .page_size(400)
                        .send()
                })
                .await?;
            for r in resp.rules() {
                if r.is_default().unwrap_or(false) {
                    continue;
                }
                let mut paths = Vec::new();
                let mut hosts = Vec::new();
                for c in r.conditions() {
                    let values: Vec<String> = c
                        .path_pattern_config()
                        .map(|p| p.values().to_vec())
                        .or_else(|| c.host_header_config().map(|h| h.values().to_vec()))
                        .filter(|v| !v.is_empty())
                        .unwrap_or_else(|| c.values().to_vec());
                    match c.field() {
                        Some("path-pattern") => paths.extend(values),
                        Some("host-header") => hosts.extend(values),
                        _ => {}
                    }
                }
                let mut forward: Vec<String> = r
                    .actions()
                    .iter()
                    .filter_map(|a| {
                        a.target_group_arn().map(str::to_string).or_else(|| {
                            a.forward_config()
                                .and_then(|f| f.target_groups().first())
                                .and_then(|t| t.target_group_arn())
                                .map(str::to_string)
                        })
                    })
                    .collect();
                forward.sort();
                rules.push(ObservedRule {
                    arn: r.rule_arn().unwrap_or_default().to_string(),
                    priority: r.priority().and_then(|p| p.parse().ok()),
                    path_patterns: sorted(&paths),
                    host_headers: sorted(&hosts),
                    forward_to: forward,
                    ours: false,
                });
            }
            marker = resp.next_marker().map(str::to_string);
            if marker.is_none() {
                break;
            }
        }
        let arns: Vec<String> = rules.iter().map(|r| r.arn.clone()).collect();
        let (mut tags, missing) = self.facts.rule_tags(&arns);
        if !missing.is_empty() {
            for (arn, t) in self.elb_tags(&missing).await? {
                self.facts.remember_rule_tags(&arn, t.clone());
                tags.insert(arn, t);
            }
        }
        for r in &mut rules {
            r.ours = tags.get(&r.arn).is_some_and(|t| self.owns(t));
        }
        Ok(rules)
    }

    fn conditions(paths: &[String], hosts: &[String]) -> Vec<elb::RuleCondition> {
        let mut out = Vec::new();
        if !paths.is_empty() {
            out.push(
                elb::RuleCondition::builder()
                    .field("path-pattern")
                    .path_pattern_config(
                        elb::PathPatternConditionConfig::builder().set_values(Some(paths.to_vec())).build(),
                    )
                    .build(),
            );
        }
        if !hosts.is_empty() {
            out.push(
                elb::RuleCondition::builder()
                    .field("host-header")
                    .host_header_config(
                        elb::HostHeaderConditionConfig::builder().set_values(Some(hosts.to_vec())).build(),
                    )
                    .build(),
            );
        }
        out
    }

    fn forward(tg_arn: &str) -> Option<elb::Action> {
        Some(elb::Action::builder().r#type(elb::ActionTypeEnum::Forward).target_group_arn(tg_arn).build())
    }

    /// Create our rule at `priority`; returns its ARN.
    pub async fn create_rule(
        &self,
        listener_arn: &str,
        priority: i32,
        paths: &[String],
        hosts: &[String],
        tg_arn: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<String, AwsError> {
        let tag_pairs = tags.clone();
        let tags = elb_tags_of(tags);
        let resp = self
            .caller
            .call_create(Service::Elbv2, "CreateRule", || {
                self.elb
                    .create_rule()
                    .listener_arn(listener_arn)
                    .priority(priority)
                    .set_conditions(Some(Self::conditions(paths, hosts)))
                    .set_actions(Self::forward(tg_arn).map(|a| vec![a]))
                    .set_tags(Some(tags.clone()))
                    .send()
            })
            .await?;
        let arn = resp.rules().first().and_then(|r| r.rule_arn()).unwrap_or_default().to_string();
        if !arn.is_empty() {
            self.facts.remember_rule_tags(&arn, tag_pairs.clone());
        }
        Ok(arn)
    }

    /// Rewrite our rule's conditions and action.
    pub async fn modify_rule(
        &self,
        arn: &str,
        paths: &[String],
        hosts: &[String],
        tg_arn: &str,
    ) -> Result<(), AwsError> {
        self.caller
            .call(Service::Elbv2, "ModifyRule", || {
                self.elb
                    .modify_rule()
                    .rule_arn(arn)
                    .set_conditions(Some(Self::conditions(paths, hosts)))
                    .set_actions(Self::forward(tg_arn).map(|a| vec![a]))
                    .send()
            })
            .await?;
        Ok(())
    }

    /// Move our rule to another priority.
    pub async fn set_rule_priority(&self, arn: &str, priority: i32) -> Result<(), AwsError> {
        let p = elb::RulePriorityPair::builder().rule_arn(arn).priority(priority).build();
        self.caller
            .call(Service::Elbv2, "SetRulePriorities", || {
                self.elb.set_rule_priorities().rule_priorities(p.clone()).send()
            })
            .await?;
        Ok(())
    }

    /// Delete a rule; NotFound counts as done.
    pub async fn delete_rule(&self, arn: &str) -> Result<(), AwsError> {
        match self.caller.call(Service::Elbv2, "DeleteRule", || self.elb.delete_rule().rule_arn(arn).send()).await {
            Err(e) if !e.is_not_found() => Err(e),
            _ => Ok(()),
        }
    }

    /// The record set at `name` of `rtype` in the zone, if any.
    pub async fn record(
        &self,
        zone: &str,
        name: &str,
        rtype: r53::RrType,
    ) -> Result<Option<r53::ResourceRecordSet>, AwsError> {
        let fqdn = format!("{}.", name.trim_end_matches('.'));
        let resp = self
            .caller
            .call(Service::Route53, "ListResourceRecordSets", || {
                self.r53
                    .list_resource_record_sets()
                    .hosted_zone_id(zone)
                    .start_record_name(&fqdn)
                    .start_record_type(rtype.clone())
                    .max_items(1)
                    .send()
            })
            .await?;
        let wanted = crate::api::validation::normalize_dns_name(name);
        Ok(resp
            .resource_record_sets()
            .iter()
            .find(|r| crate::api::validation::normalize_dns_name(r.name()) == wanted && *r.r#type() == rtype)
            .cloned())
    }

    /// Apply `changes` to the zone in one change batch (atomic in Route 53).
    pub async fn change_records(&self, zone: &str, changes: Vec<r53::Change>) -> Result<(), AwsError> {
        if changes.is_empty() {
            return Ok(());
        }
        let batch = r53::ChangeBatch::builder().set_changes(Some(changes)).build().map_err(build_error)?;
        self.caller
            .call(Service::Route53, "ChangeResourceRecordSets", || {
                self.r53.change_resource_record_sets().hosted_zone_id(zone).change_batch(batch.clone()).send()
            })
            .await?;
        Ok(())
    }
}

pub use crate::aws::errors::build_error;

/// Set of taken priorities on a listener (ours excluded when `except` names our rule).
pub fn taken_priorities(rules: &[ObservedRule], except: Option<&str>) -> BTreeSet<i32> {
    rules.iter().filter(|r| Some(r.arn.as_str()) != except).filter_map(|r| r.priority).collect()
}
