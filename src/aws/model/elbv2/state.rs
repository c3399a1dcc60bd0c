//! The model's state (load balancers, listeners, rules, target groups, each with its tags) and the
//! requests on load balancers, listeners, tags and target groups. Rules are in `rules.rs`.

use std::collections::{BTreeMap, BTreeSet};

use super::validate::{self, ArnKind, fail, invalid};
use super::{Action, ModelListener, ModelLoadBalancer, ModelRule, ModelTargetGroup};
use crate::aws::api::elbv2::{
    Attributes, Listener, LoadBalancer, NewTargetGroup, Tags, TargetGroup, TargetGroupHealthCheck, TargetHealth,
};
use crate::aws::errors::Classified;
use crate::aws::model::SimRng;

/// ELBv2's default quotas (each can be lowered by the simulator to reach it quickly).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Rules DescribeRules returns per page (the SDK implementation asks for 400, the maximum).
    pub rules_page_size: usize,
    /// Rules per load balancer, default rules not counted (`TooManyRules` beyond).
    pub rules_per_load_balancer: usize,
    /// Target groups per account and region (`TooManyTargetGroups` beyond).
    pub target_groups: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { rules_page_size: 400, rules_per_load_balancer: 100, target_groups: 3000 }
    }
}

/// Everything the model holds; one lock guards it all, so each request is atomic as in AWS.
#[derive(Debug)]
pub(super) struct State {
    pub account: String,
    pub region: String,
    pub rng: SimRng,
    pub limits: Limits,
    pub load_balancers: BTreeMap<String, ModelLoadBalancer>,
    pub listeners: BTreeMap<String, ModelListener>,
    /// Every rule, the listeners' default rules included.
    pub rules: BTreeMap<String, ModelRule>,
    pub target_groups: BTreeMap<String, ModelTargetGroup>,
}

/// The Route 53 zone of application load balancers' DNS names, per region (for alias records).
fn canonical_hosted_zone_id(region: &str) -> &'static str {
    match region {
        "us-east-2" => "Z3AADJGX6KTTL2",
        "us-west-1" => "Z368ELLRRE2KJ0",
        "us-west-2" => "Z1H1FL5HABSF5",
        "eu-west-1" => "Z32O12XQLNTSW2",
        "eu-central-1" => "Z215JYRZR1TBD5",
        "ap-southeast-1" => "Z1LMS91P8CMLE5",
        "ap-northeast-1" => "Z14GRHDCWA56QT",
        _ => "Z35SXDOTRQ7X7K",
    }
}

/// The target group of each forward action: the first of its weighted groups, as the SDK
/// implementation reads `ForwardConfig`.
pub(super) fn forward_to(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Forward(groups) => groups.first().map(|g| g.target_group_arn.clone()),
            Action::FixedResponse { .. } => None,
        })
        .collect()
}

/// Whether any forward action sends to `target_group_arn` (whatever its weight).
pub(super) fn forwards_to(actions: &[Action], target_group_arn: &str) -> bool {
    actions.iter().any(|a| match a {
        Action::Forward(groups) => groups.iter().any(|g| g.target_group_arn == target_group_arn),
        Action::FixedResponse { .. } => false,
    })
}

impl State {
    pub(super) fn new(seed: u64, account: &str, region: &str) -> Self {
        Self {
            account: account.into(),
            region: region.into(),
            rng: SimRng::new(seed),
            limits: Limits::default(),
            load_balancers: BTreeMap::new(),
            listeners: BTreeMap::new(),
            rules: BTreeMap::new(),
            target_groups: BTreeMap::new(),
        }
    }

    /// An ARN of this account and region for `resource` (`targetgroup/name/id`, …).
    pub(super) fn arn(&self, resource: &str) -> String {
        format!("arn:aws:elasticloadbalancing:{}:{}:{resource}", self.region, self.account)
    }

    /// `NotFound` of the kind of `arn` unless it is well formed and exists.
    pub(super) fn exists(&self, arn: &str, kind: ArnKind) -> Result<(), Classified> {
        validate::expect_arn(arn, kind)?;
        let found = match kind {
            ArnKind::LoadBalancer => self.load_balancers.contains_key(arn),
            ArnKind::Listener => self.listeners.contains_key(arn),
            ArnKind::Rule => self.rules.contains_key(arn),
            ArnKind::TargetGroup => self.target_groups.contains_key(arn),
        };
        if found { Ok(()) } else { Err(fail(kind.not_found(), format!("'{arn}' not found"))) }
    }

    // --- setup and world events -------------------------------------------------------------

    pub(super) fn create_load_balancer(&mut self, name: &str, vpc_id: &str) -> Result<ModelLoadBalancer, Classified> {
        let name_ok = !name.is_empty()
            && name.len() <= 32
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !name.starts_with('-')
            && !name.ends_with('-')
            && !name.starts_with("internal-");
        if !name_ok {
            return Err(invalid(format!("Load balancer name '{name}' is not valid")));
        }
        if self.load_balancers.values().any(|lb| lb.name == name) {
            return Err(fail("DuplicateLoadBalancerName", format!("A load balancer named '{name}' exists")));
        }
        let id = self.rng.hex_id(16);
        let digits = self.rng.below(10_000_000_000);
        let lb = ModelLoadBalancer {
            arn: self.arn(&format!("loadbalancer/app/{name}/{id}")),
            name: name.into(),
            dns_name: format!("{name}-{digits}.{}.elb.amazonaws.com", self.region),
            canonical_hosted_zone_id: canonical_hosted_zone_id(&self.region).into(),
            vpc_id: vpc_id.into(),
            tags: Tags::new(),
        };
        self.load_balancers.insert(lb.arn.clone(), lb.clone());
        Ok(lb)
    }

    pub(super) fn create_listener(
        &mut self,
        load_balancer_arn: &str,
        port: i32,
        default_actions: Vec<Action>,
    ) -> Result<ModelListener, Classified> {
        self.exists(load_balancer_arn, ArnKind::LoadBalancer)?;
        validate::port(port)?;
        if default_actions.is_empty() {
            return Err(invalid("A listener needs a default action"));
        }
        if self.listeners.values().any(|l| l.load_balancer_arn == load_balancer_arn && l.port == port) {
            return Err(fail("DuplicateListener", format!("A listener on port {port} exists")));
        }
        self.check_forwards(load_balancer_arn, &default_actions, None)?;
        // Listener ARNs extend the load balancer's: `listener/app/<name>/<lb id>/<id>`.
        let lb_path = load_balancer_arn.split_once(":loadbalancer/").map(|(_, p)| p).unwrap_or_default();
        let listener_path = format!("{lb_path}/{}", self.rng.hex_id(16));
        let rule_id = self.rng.hex_id(16);
        let default_rule_arn = self.arn(&format!("listener-rule/{listener_path}/{rule_id}"));
        let listener = ModelListener {
            arn: self.arn(&format!("listener/{listener_path}")),
            load_balancer_arn: load_balancer_arn.into(),
            port,
            default_rule_arn: default_rule_arn.clone(),
            tags: Tags::new(),
        };
        let default_rule = ModelRule {
            arn: default_rule_arn.clone(),
            listener_arn: listener.arn.clone(),
            priority: None,
            path_patterns: Vec::new(),
            host_headers: Vec::new(),
            actions: default_actions,
            tags: Tags::new(),
        };
        self.rules.insert(default_rule_arn, default_rule);
        self.listeners.insert(listener.arn.clone(), listener.clone());
        Ok(listener)
    }

    /// Delete a listener and its rules (its default rule too); the target groups stay.
    pub(super) fn delete_listener(&mut self, arn: &str) -> bool {
        self.rules.retain(|_, r| r.listener_arn != arn);
        self.listeners.remove(arn).is_some()
    }

    /// Put back a deleted listener and some of its rules, unchanged.
    pub(super) fn restore_listener(&mut self, listener: &ModelListener, rules: &[ModelRule]) -> bool {
        let clash = self.listeners.contains_key(&listener.arn)
            || self
                .listeners
                .values()
                .any(|l| l.load_balancer_arn == listener.load_balancer_arn && l.port == listener.port)
            || rules.iter().any(|r| self.rules.contains_key(&r.arn) || r.listener_arn != listener.arn);
        if clash || !self.load_balancers.contains_key(&listener.load_balancer_arn) {
            return false;
        }
        self.listeners.insert(listener.arn.clone(), listener.clone());
        self.rules.extend(rules.iter().map(|r| (r.arn.clone(), r.clone())));
        true
    }

    /// Delete a load balancer, its listeners and their rules.
    pub(super) fn delete_load_balancer(&mut self, arn: &str) -> bool {
        let listeners: Vec<String> =
            self.listeners.values().filter(|l| l.load_balancer_arn == arn).map(|l| l.arn.clone()).collect();
        for l in &listeners {
            self.delete_listener(l);
        }
        self.load_balancers.remove(arn).is_some()
    }

    /// The load balancers whose rules (default rules included) forward to `target_group_arn`,
    /// leaving out rule `except` (the one a request is about to replace).
    pub(super) fn load_balancers_of(&self, target_group_arn: &str, except: Option<&str>) -> BTreeSet<String> {
        self.rules
            .values()
            .filter(|r| Some(r.arn.as_str()) != except && forwards_to(&r.actions, target_group_arn))
            .filter_map(|r| self.listeners.get(&r.listener_arn))
            .map(|l| l.load_balancer_arn.clone())
            .collect()
    }

    /// What AWS checks of the forward actions a rule or listener of `load_balancer_arn` gets:
    /// every group exists (`TargetGroupNotFound`), ≤ 5 groups per action with weights 0–999, the
    /// group is in the load balancer's VPC, and no group ends up behind two load balancers
    /// (`TargetGroupAssociationLimit`: an application load balancer's target group serves one
    /// load balancer).
    pub(super) fn check_forwards(
        &self,
        load_balancer_arn: &str,
        actions: &[Action],
        replacing: Option<&str>,
    ) -> Result<(), Classified> {
        let vpc = self.load_balancers.get(load_balancer_arn).map(|lb| lb.vpc_id.as_str()).unwrap_or_default();
        for action in actions {
            let Action::Forward(groups) = action else { continue };
            if groups.is_empty() || groups.len() > 5 {
                return Err(invalid("A forward action takes 1 to 5 target groups"));
            }
            for g in groups {
                if !(0..=999).contains(&g.weight) {
                    return Err(invalid(format!("Weight {} must be between 0 and 999", g.weight)));
                }
                self.exists(&g.target_group_arn, ArnKind::TargetGroup)?;
                let Some(tg) = self.target_groups.get(&g.target_group_arn) else { continue };
                if tg.vpc_id != vpc {
                    return Err(invalid(format!("Target group '{}' is not in the load balancer's VPC", tg.arn)));
                }
                if self.load_balancers_of(&tg.arn, replacing).iter().any(|lb| lb != load_balancer_arn) {
                    return Err(fail(
                        "TargetGroupAssociationLimit",
                        format!("The target group '{}' cannot be associated with more than one load balancer", tg.arn),
                    ));
                }
            }
        }
        Ok(())
    }

    pub(super) fn set_target_health(&mut self, arn: &str, targets: Vec<TargetHealth>) -> Result<(), Classified> {
        self.exists(arn, ArnKind::TargetGroup)?;
        if let Some(tg) = self.target_groups.get_mut(arn) {
            tg.targets = targets;
        }
        Ok(())
    }

    // --- requests ---------------------------------------------------------------------------

    pub(super) fn describe_listener(&self, arn: &str) -> Result<Option<Listener>, Classified> {
        self.exists(arn, ArnKind::Listener)?;
        Ok(self
            .listeners
            .get(arn)
            .map(|l| Listener { arn: l.arn.clone(), load_balancer_arn: l.load_balancer_arn.clone() }))
    }

    pub(super) fn describe_load_balancer(&self, arn: &str) -> Result<Option<LoadBalancer>, Classified> {
        self.exists(arn, ArnKind::LoadBalancer)?;
        Ok(self.load_balancers.get(arn).map(|lb| LoadBalancer {
            arn: lb.arn.clone(),
            dns_name: lb.dns_name.clone(),
            canonical_hosted_zone_id: lb.canonical_hosted_zone_id.clone(),
            vpc_id: lb.vpc_id.clone(),
        }))
    }

    /// Tags of 1–20 resources of any kind; one that does not exist fails the whole call.
    pub(super) fn describe_tags(&self, arns: &[String]) -> Result<BTreeMap<String, Tags>, Classified> {
        if arns.is_empty() || arns.len() > 20 {
            return Err(invalid(format!("DescribeTags takes 1 to 20 resource ARNs, not {}", arns.len())));
        }
        let mut out = BTreeMap::new();
        for arn in arns {
            let kind = validate::arn_kind(arn)?;
            self.exists(arn, kind)?;
            let tags = match kind {
                ArnKind::LoadBalancer => self.load_balancers.get(arn).map(|x| &x.tags),
                ArnKind::Listener => self.listeners.get(arn).map(|x| &x.tags),
                ArnKind::Rule => self.rules.get(arn).map(|x| &x.tags),
                ArnKind::TargetGroup => self.target_groups.get(arn).map(|x| &x.tags),
            };
            out.insert(arn.clone(), tags.cloned().unwrap_or_default());
        }
        Ok(out)
    }

    pub(super) fn describe_target_groups(&self, names: &[String]) -> Result<Vec<TargetGroup>, Classified> {
        let mut found = Vec::new();
        for tg in self.target_groups.values().filter(|tg| names.contains(&tg.name)) {
            found.push(TargetGroup {
                arn: tg.arn.clone(),
                name: tg.name.clone(),
                protocol: tg.protocol.clone(),
                port: tg.port,
                vpc_id: tg.vpc_id.clone(),
                health_check: tg.health_check.clone(),
            });
        }
        // Like ELBv2: one unknown name fails the whole call, without saying which.
        if names.iter().any(|n| !found.iter().any(|tg| &tg.name == n)) {
            return Err(fail("TargetGroupNotFound", "One or more target groups not found".to_string()));
        }
        Ok(found)
    }

    pub(super) fn describe_target_group_attributes(&self, arn: &str) -> Result<Attributes, Classified> {
        self.exists(arn, ArnKind::TargetGroup)?;
        Ok(self.target_groups.get(arn).map(|tg| tg.attributes.clone()).unwrap_or_default())
    }

    /// CreateTargetGroup is idempotent by name: the same settings answer the existing group (its
    /// tags untouched), other settings are `DuplicateTargetGroupName`.
    pub(super) fn create_target_group(&mut self, group: &NewTargetGroup) -> Result<String, Classified> {
        validate::target_group_name(&group.name)?;
        validate::protocol(&group.protocol)?;
        validate::port(group.port)?;
        if group.vpc_id.is_empty() {
            return Err(invalid("A VPC ID is required for target type 'ip'"));
        }
        validate::health_check(&group.health_check)?;
        validate::tags(&group.tags)?;
        if let Some(existing) = self.target_groups.values().find(|tg| tg.name == group.name) {
            let same = existing.protocol == group.protocol
                && existing.port == group.port
                && existing.vpc_id == group.vpc_id
                && existing.target_type == "ip"
                && existing.health_check == group.health_check;
            return if same {
                Ok(existing.arn.clone())
            } else {
                Err(fail("DuplicateTargetGroupName", format!("A target group named '{}' exists", group.name)))
            };
        }
        if self.target_groups.len() >= self.limits.target_groups {
            return Err(fail("TooManyTargetGroups", "The account's target group quota is reached"));
        }
        let id = self.rng.hex_id(16);
        let arn = self.arn(&format!("targetgroup/{}/{id}", group.name));
        let tg = ModelTargetGroup {
            arn: arn.clone(),
            name: group.name.clone(),
            protocol: group.protocol.clone(),
            port: group.port,
            vpc_id: group.vpc_id.clone(),
            target_type: "ip".into(),
            health_check: group.health_check.clone(),
            attributes: validate::default_attributes(),
            tags: group.tags.clone(),
            targets: Vec::new(),
            load_balancer_arns: BTreeSet::new(),
        };
        self.target_groups.insert(arn.clone(), tg);
        Ok(arn)
    }

    pub(super) fn modify_target_group(&mut self, arn: &str, h: &TargetGroupHealthCheck) -> Result<(), Classified> {
        validate::health_check(h)?;
        self.exists(arn, ArnKind::TargetGroup)?;
        if let Some(tg) = self.target_groups.get_mut(arn) {
            tg.health_check = h.clone();
        }
        Ok(())
    }

    pub(super) fn modify_target_group_attributes(&mut self, arn: &str, attrs: &Attributes) -> Result<(), Classified> {
        self.exists(arn, ArnKind::TargetGroup)?;
        validate::attributes(attrs)?;
        if let Some(tg) = self.target_groups.get_mut(arn) {
            tg.attributes.extend(attrs.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        Ok(())
    }

    /// The registered targets as the simulator set them; a group no load balancer uses reports
    /// each target `unused` (AWS's `Target.NotInUse`), whatever its last health was.
    pub(super) fn describe_target_health(&self, arn: &str) -> Result<Vec<TargetHealth>, Classified> {
        self.exists(arn, ArnKind::TargetGroup)?;
        let in_use = !self.load_balancers_of(arn, None).is_empty();
        let targets = self.target_groups.get(arn).map(|tg| tg.targets.clone()).unwrap_or_default();
        Ok(targets.into_iter().map(|t| if in_use { t } else { TargetHealth { state: "unused".into(), ..t } }).collect())
    }

    /// `ResourceInUse` while any rule or listener forwards to the group; a group already gone
    /// answers success (DeleteTargetGroup lists no NotFound error).
    pub(super) fn delete_target_group(&mut self, arn: &str) -> Result<(), Classified> {
        validate::expect_arn(arn, ArnKind::TargetGroup)?;
        if self.rules.values().any(|r| forwards_to(&r.actions, arn)) {
            return Err(fail(
                "ResourceInUse",
                format!("Target group '{arn}' is currently in use by a listener or a rule"),
            ));
        }
        self.target_groups.remove(arn);
        Ok(())
    }
}
