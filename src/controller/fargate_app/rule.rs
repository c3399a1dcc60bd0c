//! The FargateApp's listener rule: found by our owner tags on the listener, created at the spec's
//! priority (or the lowest free one in the range) and kept in line with the spec. A listener that is
//! gone is reported on the field that names it, and forgotten, so a listener created again under
//! another ARN is read afresh.

use std::collections::BTreeMap;

use super::aws::{FargateAws, ListenerInfo, taken_priorities};
use super::plan::{lowest_free_priority, rule_needs_modify};
use crate::aws::AwsError;
use crate::controller::Blocked;

/// The load balancer behind the spec's listener. The inner `Err`: the listener is gone.
pub async fn listener(aws: &FargateAws, listener_arn: &str) -> Result<Result<ListenerInfo, Blocked>, AwsError> {
    match aws.listener(listener_arn).await {
        Ok(info) => Ok(Ok(info)),
        Err(e) if e.is_not_found() => Ok(Err(listener_gone(aws, listener_arn))),
        Err(e) => Err(e),
    }
}

fn listener_gone(aws: &FargateAws, listener_arn: &str) -> Blocked {
    aws.facts.forget_listener(listener_arn);
    Blocked {
        reason: "ListenerNotFound",
        message: format!(
            "spec.loadBalancer.listenerRule.listenerArn: listener {listener_arn} does not exist; point it at an existing listener"
        ),
    }
}

/// Our rule on the listener: created at the right priority or brought in line. The inner `Err` is a
/// conflict a human must resolve.
pub async fn ensure_rule(
    aws: &FargateAws,
    rule: &crate::api::fargate_app::ListenerRuleSpec,
    tg_arn: &str,
    tags: &BTreeMap<String, String>,
) -> Result<Result<(String, i32), Blocked>, AwsError> {
    let range = &rule.priority_range;
    let lock = aws.facts.listener_lock(&rule.listener_arn);
    let _serialised = lock.lock().await;
    // Another creator (a human, another cluster) may take the priority we picked: re-read and take
    // the next free one.
    for _ in 0..5 {
        let rules = match aws.rules(&rule.listener_arn).await {
            Ok(rules) => rules,
            Err(e) if e.is_not_found() => return Ok(Err(listener_gone(aws, &rule.listener_arn))),
            Err(e) => return Err(e),
        };
        let ours = rules.iter().find(|r| r.ours).cloned();
        let taken = taken_priorities(&rules, ours.as_ref().map(|r| r.arn.as_str()));
        if let Some(ours) = ours {
            if rule_needs_modify(&ours, &rule.path_patterns, &rule.host_headers, tg_arn) {
                aws.modify_rule(&ours.arn, &rule.path_patterns, &rule.host_headers, tg_arn).await?;
            }
            let current = ours.priority.unwrap_or_default();
            let wanted = match rule.priority {
                Some(p) => p,
                None if (range.min..=range.max).contains(&current) => current,
                None => match lowest_free_priority(&taken, range.min, range.max) {
                    Some(p) => p,
                    None => return Ok(Err(no_free_priority(range.min, range.max))),
                },
            };
            if wanted != current {
                if taken.contains(&wanted) {
                    return Ok(Err(priority_conflict(wanted)));
                }
                aws.set_rule_priority(&ours.arn, wanted).await?;
            }
            return Ok(Ok((ours.arn, wanted)));
        }
        let priority = match rule.priority {
            Some(p) if taken.contains(&p) => return Ok(Err(priority_conflict(p))),
            Some(p) => p,
            None => match lowest_free_priority(&taken, range.min, range.max) {
                Some(p) => p,
                None => return Ok(Err(no_free_priority(range.min, range.max))),
            },
        };
        match aws.create_rule(&rule.listener_arn, priority, &rule.path_patterns, &rule.host_headers, tg_arn, tags).await
        {
            Ok(arn) => return Ok(Ok((arn, priority))),
            Err(e) if e.code == "PriorityInUse" && rule.priority.is_none() => continue,
            Err(e) if e.code == "PriorityInUse" => return Ok(Err(priority_conflict(priority))),
            Err(e) => return Err(e),
        }
    }
    Ok(Err(Blocked {
        reason: "PriorityConflict",
        message: "listener priorities kept changing under us; retrying later".into(),
    }))
}

/// Whether an existing resource with our name may be used. `IfTagged`: it carries our owner tags.
/// `Never`: only the one this object already records in status (created by it), never one found.
fn priority_conflict(p: i32) -> Blocked {
    Blocked {
        reason: "PriorityConflict",
        message: format!(
            "listener rule priority {p} is taken by a rule this object does not own; choose another spec.loadBalancer.listenerRule.priority or omit it"
        ),
    }
}

fn no_free_priority(min: i32, max: i32) -> Blocked {
    Blocked {
        reason: "PriorityConflict",
        message: format!("no free listener rule priority in spec.loadBalancer.listenerRule.priorityRange {min}..{max}"),
    }
}
