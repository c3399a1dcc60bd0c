//! The FargateApp's listener rule writes that depend on the listener's priorities: the create at
//! the priority the plan chose, and the move to another priority. Both run under the listener's
//! lock in this process, which guards the priorities this process took there: when another pass
//! took one since the plan's read, the priority is chosen again with it (no second read). A create
//! that meets PriorityInUse anyway (a human, another cluster) reads the rules again and takes the
//! next free priority, five attempts in all. A listener found gone then is reported on the field
//! that names it, and forgotten, so a listener created again under another ARN is read afresh.

use std::collections::{BTreeMap, BTreeSet};

use super::aws::FargateAws;
use super::plan::{ObservedRule, free_priority, listener_not_found, priority_conflict, taken_priorities};
use super::steps::Taken;
use crate::api::fargate_app::ListenerRuleSpec;
use crate::aws::AwsError;
use crate::aws::facts::PriorityLog;
use crate::controller::Blocked;

/// Our rule on the listener (if it has one) and the priorities the others hold, read now.
async fn reread(
    aws: &FargateAws,
    rule: &ListenerRuleSpec,
) -> Result<Result<(Option<ObservedRule>, BTreeSet<i32>), Blocked>, AwsError> {
    match aws.rules(&rule.listener_arn).await {
        Ok(rules) => {
            let ours = rules.iter().find(|r| r.ours).cloned();
            let taken = taken_priorities(&rules, ours.as_ref().map(|r| r.arn.as_str()));
            Ok(Ok((ours, taken)))
        }
        Err(e) if e.is_not_found() => {
            aws.facts.forget_listener(&rule.listener_arn);
            Ok(Err(listener_not_found(&rule.listener_arn)))
        }
        Err(e) => Err(e),
    }
}

/// The plan's `priority`, or, when this process took priorities on the listener since the plan's
/// read, one chosen again with them. `None`: read the rules: those changes are no longer known, or
/// they leave no free priority (the log keeps what was taken, not what was freed since).
fn rechosen(log: &PriorityLog, rule: &ListenerRuleSpec, priority: i32, seen: &Taken) -> Option<Result<i32, Blocked>> {
    let since = log.taken_since(seen.changes)?;
    if since.is_empty() {
        return Some(Ok(priority));
    }
    let taken: BTreeSet<i32> = seen.priorities.iter().copied().chain(since).collect();
    free_priority(rule, &taken).ok().map(Ok)
}

/// The priority to try next: the one `chosen`, or one chosen from the rules read now, with our
/// rule as that read found it (None without a read). The inner `Err` ends the attempt.
async fn next_priority(
    aws: &FargateAws,
    rule: &ListenerRuleSpec,
    chosen: Option<Result<i32, Blocked>>,
) -> Result<Result<(i32, Option<ObservedRule>), Blocked>, AwsError> {
    match chosen {
        Some(chosen) => Ok(chosen.map(|p| (p, None))),
        None => Ok(match reread(aws, rule).await? {
            Ok((ours, taken)) => free_priority(rule, &taken).map(|p| (p, ours)),
            Err(blocked) => Err(blocked),
        }),
    }
}

/// What a refused priority means: read again and choose another when the spec leaves the choice to
/// us (a human or another cluster took it since the read), else a conflict.
fn refused(e: AwsError, rule: &ListenerRuleSpec, priority: i32) -> Result<Result<(), Blocked>, AwsError> {
    match e.code.as_str() {
        "PriorityInUse" if rule.priority.is_none() => Ok(Ok(())),
        "PriorityInUse" => Ok(Err(priority_conflict(priority))),
        _ => Err(e),
    }
}

fn kept_changing() -> Blocked {
    Blocked { reason: "PriorityConflict", message: "listener priorities kept changing under us; retrying later".into() }
}

/// Create our rule forwarding to `tg_arn` at `priority`, chosen from `seen`. Returns its ARN and
/// priority; the inner `Err` is a conflict a human must resolve.
pub async fn create(
    aws: &FargateAws,
    rule: &ListenerRuleSpec,
    priority: i32,
    seen: &Taken,
    tg_arn: &str,
    tags: &BTreeMap<String, String>,
) -> Result<Result<(String, i32), Blocked>, AwsError> {
    let lock = aws.facts.listener_lock(&rule.listener_arn);
    let mut log = lock.lock().await;
    let mut chosen = rechosen(&log, rule, priority, seen);
    for _ in 0..5 {
        let priority = match next_priority(aws, rule, chosen.take()).await? {
            // Only this object makes rules with its tags, one pass at a time: one that shows up
            // now is the one it made, and a later pass brings it in line.
            Ok((_, Some(ours))) => return Ok(Ok((ours.arn, ours.priority.unwrap_or_default()))),
            Ok((p, None)) => p,
            Err(blocked) => return Ok(Err(blocked)),
        };
        log.take(priority);
        match aws.create_rule(&rule.listener_arn, priority, &rule.path_patterns, &rule.host_headers, tg_arn, tags).await
        {
            Ok(arn) => return Ok(Ok((arn, priority))),
            Err(e) => {
                if let Err(blocked) = refused(e, rule, priority)? {
                    return Ok(Err(blocked));
                }
            }
        }
    }
    Ok(Err(kept_changing()))
}

/// Move our rule `arn` to `priority`, chosen from `seen`. Returns the priority it has now.
pub async fn set_priority(
    aws: &FargateAws,
    arn: &str,
    rule: &ListenerRuleSpec,
    priority: i32,
    seen: &Taken,
) -> Result<Result<i32, Blocked>, AwsError> {
    let lock = aws.facts.listener_lock(&rule.listener_arn);
    let mut log = lock.lock().await;
    let mut chosen = rechosen(&log, rule, priority, seen);
    for _ in 0..5 {
        let priority = match next_priority(aws, rule, chosen.take()).await? {
            // Already there, as the read shows.
            Ok((p, Some(ours))) if ours.priority == Some(p) => return Ok(Ok(p)),
            Ok((p, _)) => p,
            Err(blocked) => return Ok(Err(blocked)),
        };
        log.take(priority);
        match aws.set_rule_priority(arn, priority).await {
            Ok(()) => return Ok(Ok(priority)),
            Err(e) => {
                if let Err(blocked) = refused(e, rule, priority)? {
                    return Ok(Err(blocked));
                }
            }
        }
    }
    Ok(Err(kept_changing()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(extra: serde_json::Value) -> ListenerRuleSpec {
        let mut v = serde_json::json!({"listenerArn": "arn:listener", "priorityRange": {"min": 10, "max": 12}});
        for (k, val) in extra.as_object().into_iter().flatten() {
            v[k] = val.clone();
        }
        serde_json::from_value(v).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Three apps plan priority 10 from the same read; the lock hands them 10, 11, 12 in turn
    /// without a second read, and an explicit priority taken meanwhile is a conflict.
    #[test]
    fn a_priority_taken_since_the_read_is_chosen_again_without_reading() {
        let auto = rule(serde_json::json!({}));
        let seen = Taken { changes: 0, priorities: Vec::new() };
        let mut log = PriorityLog::default();
        let mut got = Vec::new();
        for _ in 0..3 {
            let p = rechosen(&log, &auto, 10, &seen).and_then(Result::ok).unwrap_or_default();
            log.take(p);
            got.push(p);
        }
        assert_eq!(got, [10, 11, 12]);
        // The log keeps what was taken, not what was freed since: no free priority by it means a
        // read of the rules, never a conflict reported from the log alone.
        assert_eq!(rechosen(&log, &auto, 10, &seen), None);
        let explicit = rule(serde_json::json!({"priority": 11}));
        assert_eq!(rechosen(&log, &explicit, 11, &seen), None, "11 is taken since: read whether it still is");
        let after = Taken { changes: 3, priorities: vec![10, 12] };
        assert_eq!(rechosen(&log, &explicit, 11, &after).and_then(Result::ok), Some(11), "nothing taken since");
    }
}
