//! ELBv2 and Route 53 reads and writes of the FargateApp controller (the ECS ones are in `ecs.rs`).
//! Every call goes through `AwsCaller` (budget, retries, metrics) under the AWS operation's own name,
//! to the [`Elbv2Api`] and [`Route53Api`] of the object's account and region.

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_sdk_route53::types as r53;

use super::plan::{DesiredTargetGroup, ObservedRule, ObservedTargetGroup, sorted};
use crate::aws::api::elbv2::{self, Elbv2Api};
use crate::aws::api::route53::{RecordStart, Route53Api};
use crate::aws::naming::Owner;
use crate::aws::{AwsCaller, AwsError, Service};

/// Clients for one object's account and region.
pub struct FargateAws {
    /// Caller (budget, retries, metrics).
    pub caller: AwsCaller,
    /// ECS.
    pub ecs: std::sync::Arc<dyn crate::aws::api::ecs::EcsApi>,
    /// ELBv2.
    pub elb: Arc<dyn Elbv2Api>,
    /// Route 53.
    pub r53: Arc<dyn Route53Api>,
    /// Owner identity and tags.
    pub owner: Owner,
    /// Facts remembered by the process (the load balancer behind a listener).
    pub facts: std::sync::Arc<crate::aws::facts::Facts>,
    /// DescribeServices shared with the other objects of the same AWS configuration.
    pub service_reads: Arc<crate::aws::ecs_reads::ServiceReads>,
    /// DescribeRules and DescribeTargetGroups shared likewise.
    pub elb_reads: Arc<crate::aws::elb_reads::ElbReads>,
}

pub use crate::aws::facts::ListenerInfo;

/// The health check of the desired target group, as ELBv2 takes it.
fn health_check_of(d: &DesiredTargetGroup) -> elbv2::TargetGroupHealthCheck {
    let h = &d.health;
    elbv2::TargetGroupHealthCheck {
        path: h.path.clone(),
        interval_seconds: h.interval_seconds,
        timeout_seconds: h.timeout_seconds,
        healthy_threshold: h.healthy_threshold,
        unhealthy_threshold: h.unhealthy_threshold,
        matcher: h.matcher.clone(),
    }
}

fn rule_spec(paths: &[String], hosts: &[String], tg_arn: &str) -> elbv2::RuleSpec {
    elbv2::RuleSpec {
        path_patterns: paths.to_vec(),
        host_headers: hosts.to_vec(),
        target_group_arn: tg_arn.to_string(),
    }
}

/// NotFound counts as done (deletes).
fn gone_is_done(result: Result<(), AwsError>) -> Result<(), AwsError> {
    match result {
        Err(e) if !e.is_not_found() => Err(e),
        _ => Ok(()),
    }
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
        let _reading = self.facts.read_lock(&format!("listener {listener_arn}")).await;
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
        let listener =
            self.caller.call(Service::Elbv2, "DescribeListeners", || self.elb.describe_listener(listener_arn)).await?;
        let lb_arn = listener.map(|l| l.load_balancer_arn).unwrap_or_default();
        let lb = self
            .caller
            .call(Service::Elbv2, "DescribeLoadBalancers", || self.elb.describe_load_balancer(&lb_arn))
            .await?
            .unwrap_or_default();
        Ok(ListenerInfo {
            lb_arn,
            dns_name: lb.dns_name,
            canonical_zone_id: lb.canonical_hosted_zone_id,
            vpc_id: lb.vpc_id,
        })
    }

    /// Tags of ELBv2 resources (≤ 20 ARNs per call).
    async fn elb_tags(&self, arns: &[String]) -> Result<BTreeMap<String, BTreeMap<String, String>>, AwsError> {
        let mut out = BTreeMap::new();
        for chunk in arns.chunks(20) {
            out.extend(self.caller.call(Service::Elbv2, "DescribeTags", || self.elb.describe_tags(chunk)).await?);
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
        // A group recorded in status most likely exists: read with other passes' names.
        let found = self.elb_reads.target_group(&self.caller, self.elb.as_ref(), name, recorded.is_some()).await?;
        let Some(tg) = found else { return Ok(None) };
        let delay = if read_attributes {
            let attrs = self
                .caller
                .call(Service::Elbv2, "DescribeTargetGroupAttributes", || {
                    self.elb.describe_target_group_attributes(&tg.arn)
                })
                .await?;
            attrs.get(elbv2::DEREGISTRATION_DELAY).and_then(|v| v.parse().ok())
        } else {
            None
        };
        let owned = recorded == Some(tg.arn.as_str())
            || self.elb_tags(std::slice::from_ref(&tg.arn)).await?.get(&tg.arn).is_some_and(|t| self.owns(t));
        let h = tg.health_check;
        let observed = ObservedTargetGroup {
            arn: tg.arn,
            port: tg.port,
            protocol: tg.protocol,
            vpc_id: tg.vpc_id,
            path: h.path,
            interval: h.interval_seconds,
            timeout: h.timeout_seconds,
            healthy: h.healthy_threshold,
            unhealthy: h.unhealthy_threshold,
            matcher: h.matcher,
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
        let group = elbv2::NewTargetGroup {
            name: d.name.clone(),
            protocol: d.protocol.clone(),
            port: d.port,
            vpc_id: d.vpc_id.clone(),
            health_check: health_check_of(d),
            tags: tags.clone(),
        };
        self.caller.call_create(Service::Elbv2, "CreateTargetGroup", || self.elb.create_target_group(&group)).await
    }

    /// Bring the health check in line.
    pub async fn modify_target_group(&self, arn: &str, d: &DesiredTargetGroup) -> Result<(), AwsError> {
        let health = health_check_of(d);
        self.caller.call(Service::Elbv2, "ModifyTargetGroup", || self.elb.modify_target_group(arn, &health)).await
    }

    /// Set the deregistration delay.
    pub async fn set_deregistration_delay(&self, arn: &str, seconds: i32) -> Result<(), AwsError> {
        let attributes = BTreeMap::from([(elbv2::DEREGISTRATION_DELAY.to_string(), seconds.to_string())]);
        self.caller
            .call(Service::Elbv2, "ModifyTargetGroupAttributes", || {
                self.elb.modify_target_group_attributes(arn, &attributes)
            })
            .await
    }

    /// Targets of the group that are not healthy (initial/draining/unused are not counted).
    pub async fn unhealthy_targets(&self, arn: &str) -> Result<usize, AwsError> {
        let targets =
            self.caller.call(Service::Elbv2, "DescribeTargetHealth", || self.elb.describe_target_health(arn)).await?;
        Ok(targets.iter().filter(|t| t.state == "unhealthy").count())
    }

    /// Delete a target group; NotFound counts as done.
    pub async fn delete_target_group(&self, arn: &str) -> Result<(), AwsError> {
        gone_is_done(self.caller.call(Service::Elbv2, "DeleteTargetGroup", || self.elb.delete_target_group(arn)).await)
    }

    /// Whether the target group `arn` carries our owner tags; None when it is gone.
    pub async fn target_group_is_ours(&self, arn: &str) -> Result<Option<bool>, AwsError> {
        match self.elb_tags(&[arn.to_string()]).await {
            Ok(tags) => Ok(Some(tags.get(arn).is_some_and(|t| self.owns(t)))),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every rule of the listener but the default one, with ownership (read page by page, one
    /// walk shared by the passes that ask for the listener together).
    pub async fn rules(&self, listener_arn: &str) -> Result<Vec<ObservedRule>, AwsError> {
        let walked = self.elb_reads.rules(&self.caller, self.elb.as_ref(), listener_arn).await?;
        let mut rules = Vec::new();
        for r in walked.into_iter().filter(|r| !r.is_default) {
            let mut forward = r.forward_to;
            forward.sort();
            rules.push(ObservedRule {
                arn: r.arn,
                priority: r.priority,
                path_patterns: sorted(&r.path_patterns),
                host_headers: sorted(&r.host_headers),
                forward_to: forward,
                ours: false,
            });
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
        let rule = rule_spec(paths, hosts, tg_arn);
        let arn = self
            .caller
            .call_create(Service::Elbv2, "CreateRule", || self.elb.create_rule(listener_arn, priority, &rule, tags))
            .await?;
        if !arn.is_empty() {
            self.facts.remember_rule_tags(&arn, tags.clone());
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
        let rule = rule_spec(paths, hosts, tg_arn);
        self.caller.call(Service::Elbv2, "ModifyRule", || self.elb.modify_rule(arn, &rule)).await
    }

    /// Move our rule to another priority.
    pub async fn set_rule_priority(&self, arn: &str, priority: i32) -> Result<(), AwsError> {
        self.caller.call(Service::Elbv2, "SetRulePriorities", || self.elb.set_rule_priority(arn, priority)).await
    }

    /// Delete a rule; NotFound counts as done.
    pub async fn delete_rule(&self, arn: &str) -> Result<(), AwsError> {
        gone_is_done(self.caller.call(Service::Elbv2, "DeleteRule", || self.elb.delete_rule(arn)).await)
    }

    /// The hosted zone's name (remembered for the process: a zone's name never changes).
    pub async fn zone_name(&self, zone: &str) -> Result<String, AwsError> {
        let (name, _) = crate::aws::facts::hosted_zone(&self.facts, &self.caller, self.r53.as_ref(), zone).await?;
        Ok(name)
    }

    /// The record set at `name` of `rtype` in the zone, if any.
    pub async fn record(
        &self,
        zone: &str,
        name: &str,
        rtype: r53::RrType,
    ) -> Result<Option<r53::ResourceRecordSet>, AwsError> {
        let start = RecordStart {
            name: format!("{}.", name.trim_end_matches('.')),
            rtype: Some(rtype.clone()),
            identifier: None,
        };
        let page = self
            .caller
            .call(Service::Route53, "ListResourceRecordSets", || self.r53.list_resource_record_sets(zone, &start, 1))
            .await?;
        let wanted = crate::api::validation::normalize_dns_name(name);
        Ok(page
            .record_sets
            .into_iter()
            .find(|r| crate::api::validation::normalize_dns_name(r.name()) == wanted && *r.r#type() == rtype))
    }

    /// Apply `changes` to the zone in one change batch (atomic in Route 53).
    pub async fn change_records(&self, zone: &str, changes: Vec<r53::Change>) -> Result<(), AwsError> {
        if changes.is_empty() {
            return Ok(());
        }
        self.caller
            .call(Service::Route53, "ChangeResourceRecordSets", || self.r53.change_resource_record_sets(zone, &changes))
            .await?;
        Ok(())
    }
}

pub use crate::aws::errors::build_error;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::ErrorCategory;
    use crate::aws::api::elbv2::fake::FakeElbv2;
    use crate::aws::api::route53::fake::{caller, owner};

    fn fargate_aws(elb: Arc<FakeElbv2>) -> FargateAws {
        // The SDK clients are built but never called.
        let cfg = aws_config::SdkConfig::builder().behavior_version(aws_config::BehaviorVersion::latest()).build();
        let provider = crate::aws::AwsProvider::from_base(cfg.clone());
        FargateAws {
            caller: caller(),
            ecs: provider.ecs(&cfg),
            elb,
            r53: provider.route53(&cfg),
            owner: owner("FargateApp"),
            facts: Arc::default(),
            service_reads: Arc::default(),
            elb_reads: Arc::default(),
        }
    }

    fn rule(i: i32, tg: &str) -> elbv2::Rule {
        elbv2::Rule {
            arn: format!("arn:rule/{i}"),
            priority: Some(i),
            path_patterns: vec![format!("/p{i}/*"), format!("/p{i}")],
            forward_to: vec![tg.to_string()],
            ..elbv2::Rule::default()
        }
    }

    /// 25 rules and the default one, 10 to a DescribeRules page (AWS pages at 400, so moto would
    /// need hundreds of rules): every page is read, the default rule skipped, and the tags are
    /// read 20 ARNs at a time to tell ours.
    #[tokio::test(start_paused = true)]
    async fn rules_are_read_across_pages_and_tagged_in_chunks_of_twenty() {
        let mut rules: Vec<elbv2::Rule> = (1..=25).map(|i| rule(i, "arn:targetgroup/other")).collect();
        rules.push(elbv2::Rule { arn: "arn:rule/default".into(), is_default: true, ..elbv2::Rule::default() });
        let mut tags: BTreeMap<String, elbv2::Tags> = rules.iter().map(|r| (r.arn.clone(), BTreeMap::new())).collect();
        tags.insert("arn:rule/17".into(), owner("FargateApp").tags(&BTreeMap::new()));
        let fake = Arc::new(FakeElbv2 { rules, page_size: 10, tags, ..FakeElbv2::default() });
        let aws = fargate_aws(fake.clone());

        let observed = aws.rules("arn:listener/1").await.expect("rules");
        assert_eq!(observed.iter().filter_map(|r| r.priority).collect::<Vec<_>>(), (1..=25).collect::<Vec<_>>());
        let ours: Vec<&str> = observed.iter().filter(|r| r.ours).map(|r| r.arn.as_str()).collect();
        assert_eq!(ours, ["arn:rule/17"]);
        assert_eq!(observed[0].path_patterns, ["/p1", "/p1/*"], "sorted");
        assert_eq!(
            fake.log.requests(),
            ["DescribeRules -", "DescribeRules 10", "DescribeRules 20", "DescribeTags 20", "DescribeTags 5"]
        );
    }

    /// A target group a rule still forwards to answers ResourceInUse: the delete reports the
    /// conflict at once (not retried, not taken for done); a group already gone is done.
    #[tokio::test(start_paused = true)]
    async fn deleting_a_target_group_in_use_is_a_conflict_and_a_gone_one_is_done() {
        let fake = Arc::new(FakeElbv2 {
            rules: vec![rule(1, "arn:targetgroup/used")],
            target_groups: std::sync::Mutex::new(vec!["arn:targetgroup/used".into(), "arn:targetgroup/free".into()]),
            ..FakeElbv2::default()
        });
        let aws = fargate_aws(fake.clone());
        let err = aws.delete_target_group("arn:targetgroup/used").await.expect_err("in use");
        assert_eq!((err.category, err.code.as_str()), (ErrorCategory::Conflict, "ResourceInUse"));
        assert_eq!(aws.delete_target_group("arn:targetgroup/free").await, Ok(()));
        assert_eq!(aws.delete_target_group("arn:targetgroup/free").await, Ok(()), "TargetGroupNotFound: done");
        assert_eq!(
            fake.log.requests(),
            [
                "DeleteTargetGroup arn:targetgroup/used",
                "DeleteTargetGroup arn:targetgroup/free",
                "DeleteTargetGroup arn:targetgroup/free"
            ]
        );
        assert_eq!(*fake.target_groups.lock().expect("groups"), ["arn:targetgroup/used"], "the used group stays");
    }
}
