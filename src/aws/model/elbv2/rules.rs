//! Listener rules: DescribeRules (priority order, the default rule last, in pages), CreateRule,
//! ModifyRule, SetRulePriorities and DeleteRule, with the checks AWS makes.

use super::state::{State, forward_to};
use super::validate::{self, ArnKind, fail, invalid};
use super::{Action, ModelRule, WeightedTarget};
use crate::aws::api::elbv2::{Rule, RuleSpec, RulesPage, Tags};
use crate::aws::errors::Classified;

/// What a new rule is (the operator's [`RuleSpec`] or a rule the simulator adds as someone else).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewRule {
    /// `path-pattern` values.
    pub path_patterns: Vec<String>,
    /// `host-header` values.
    pub host_headers: Vec<String>,
    /// Its actions (forward, possibly weighted, or a fixed response).
    pub actions: Vec<Action>,
}

impl From<&RuleSpec> for NewRule {
    fn from(spec: &RuleSpec) -> Self {
        Self {
            path_patterns: spec.path_patterns.clone(),
            host_headers: spec.host_headers.clone(),
            actions: vec![Action::Forward(vec![WeightedTarget {
                target_group_arn: spec.target_group_arn.clone(),
                weight: 1,
            }])],
        }
    }
}

/// Where a rule sorts in DescribeRules: by priority, the default rule last.
fn order(rule: &ModelRule) -> (bool, i32) {
    (rule.priority.is_none(), rule.priority.unwrap_or(0))
}

/// The marker of a page starting at `rule`: its priority, or `default`.
fn marker_of(rule: &ModelRule) -> String {
    rule.priority.map_or_else(|| "default".to_string(), |p| p.to_string())
}

fn view(rule: &ModelRule) -> Rule {
    Rule {
        arn: rule.arn.clone(),
        priority: rule.priority,
        is_default: rule.priority.is_none(),
        path_patterns: rule.path_patterns.clone(),
        host_headers: rule.host_headers.clone(),
        forward_to: forward_to(&rule.actions),
    }
}

/// Conditions: at least one, each value 1–128 characters, at most 5 values in all.
fn check_conditions(rule: &NewRule) -> Result<(), Classified> {
    let values = rule.path_patterns.len().saturating_add(rule.host_headers.len());
    if values == 0 {
        return Err(invalid("A rule needs at least one condition"));
    }
    if values > 5 {
        return Err(invalid("A rule takes at most 5 condition values"));
    }
    if rule.path_patterns.iter().chain(&rule.host_headers).any(|v| v.is_empty() || v.len() > 128) {
        return Err(invalid("Condition values must be 1 to 128 characters"));
    }
    if rule.actions.is_empty() {
        return Err(invalid("A rule needs an action"));
    }
    Ok(())
}

impl State {
    /// The rules of `listener_arn` in DescribeRules' order.
    pub(super) fn rules_of(&self, listener_arn: &str) -> Vec<&ModelRule> {
        let mut rules: Vec<&ModelRule> = self.rules.values().filter(|r| r.listener_arn == listener_arn).collect();
        rules.sort_by_key(|r| order(r));
        rules
    }

    /// One page from `marker` (the priority of the first rule of the page, or `default`). A
    /// marker names a position, not an index, so rules created or deleted between pages neither
    /// repeat nor hide the others.
    pub(super) fn describe_rules(&self, listener_arn: &str, marker: Option<&str>) -> Result<RulesPage, Classified> {
        self.exists(listener_arn, ArnKind::Listener)?;
        let from = match marker {
            None => (false, i32::MIN),
            Some("default") => (true, 0),
            Some(m) => (false, m.parse().map_err(|_| invalid(format!("Marker '{m}' is not valid")))?),
        };
        let rest: Vec<&ModelRule> = self.rules_of(listener_arn).into_iter().filter(|r| order(r) >= from).collect();
        let size = self.limits.rules_page_size.max(1);
        let next_marker = rest.get(size).map(|r| marker_of(r));
        Ok(RulesPage { rules: rest.iter().take(size).map(|r| view(r)).collect(), next_marker })
    }

    /// CreateRule (and the simulator's rules of others): listener, priority range, conditions,
    /// tags, forward targets, the priority taken, then the rule quota of the load balancer.
    pub(super) fn create_rule(
        &mut self,
        listener_arn: &str,
        priority: i32,
        rule: &NewRule,
        tags: &Tags,
    ) -> Result<String, Classified> {
        validate::priority(priority)?;
        check_conditions(rule)?;
        validate::tags(tags)?;
        self.exists(listener_arn, ArnKind::Listener)?;
        let lb = self.listeners.get(listener_arn).map(|l| l.load_balancer_arn.clone()).unwrap_or_default();
        self.check_forwards(&lb, &rule.actions, None)?;
        if self.rules.values().any(|r| r.listener_arn == listener_arn && r.priority == Some(priority)) {
            return Err(fail("PriorityInUse", format!("Priority '{priority}' is currently in use")));
        }
        let on_lb = self
            .rules
            .values()
            .filter(|r| r.priority.is_some())
            .filter(|r| self.listeners.get(&r.listener_arn).is_some_and(|l| l.load_balancer_arn == lb))
            .count();
        if on_lb >= self.limits.rules_per_load_balancer {
            return Err(fail("TooManyRules", "The load balancer's rule quota is reached"));
        }
        // Rule ARNs extend the listener's: `listener-rule/app/<lb>/<lb id>/<listener id>/<id>`.
        let listener_path = listener_arn.split_once(":listener/").map(|(_, p)| p).unwrap_or_default();
        let id = self.rng.hex_id(16);
        let arn = self.arn(&format!("listener-rule/{listener_path}/{id}"));
        let model = ModelRule {
            arn: arn.clone(),
            listener_arn: listener_arn.into(),
            priority: Some(priority),
            path_patterns: rule.path_patterns.clone(),
            host_headers: rule.host_headers.clone(),
            actions: rule.actions.clone(),
            tags: tags.clone(),
        };
        self.rules.insert(arn.clone(), model);
        Ok(arn)
    }

    /// The rule at `arn` that the request may change: `RuleNotFound`, and the default rule is
    /// `OperationNotPermitted` (its actions are the listener's, changed by ModifyListener).
    fn changeable(&self, arn: &str) -> Result<&ModelRule, Classified> {
        self.exists(arn, ArnKind::Rule)?;
        let rule = self.rules.get(arn).ok_or_else(|| fail("RuleNotFound", format!("'{arn}' not found")))?;
        if rule.priority.is_none() {
            return Err(fail("OperationNotPermitted", "The default rule cannot be changed this way"));
        }
        Ok(rule)
    }

    /// ModifyRule: replace the conditions and actions (tags and priority stay).
    pub(super) fn modify_rule(&mut self, arn: &str, spec: &NewRule) -> Result<(), Classified> {
        check_conditions(spec)?;
        let rule = self.changeable(arn)?;
        let lb = self.listeners.get(&rule.listener_arn).map(|l| l.load_balancer_arn.clone()).unwrap_or_default();
        self.check_forwards(&lb, &spec.actions, Some(arn))?;
        if let Some(rule) = self.rules.get_mut(arn) {
            rule.path_patterns = spec.path_patterns.clone();
            rule.host_headers = spec.host_headers.clone();
            rule.actions = spec.actions.clone();
        }
        Ok(())
    }

    /// SetRulePriorities for one rule; its own priority again is a no-op.
    pub(super) fn set_rule_priority(&mut self, arn: &str, priority: i32) -> Result<(), Classified> {
        validate::priority(priority)?;
        let rule = self.changeable(arn)?;
        let listener = rule.listener_arn.clone();
        if self.rules.values().any(|r| r.arn != arn && r.listener_arn == listener && r.priority == Some(priority)) {
            return Err(fail("PriorityInUse", format!("Priority '{priority}' is currently in use")));
        }
        if let Some(rule) = self.rules.get_mut(arn) {
            rule.priority = Some(priority);
        }
        Ok(())
    }

    /// DeleteRule; its tags go with it.
    pub(super) fn delete_rule(&mut self, arn: &str) -> Result<(), Classified> {
        self.changeable(arn)?;
        self.rules.remove(arn);
        Ok(())
    }
}
