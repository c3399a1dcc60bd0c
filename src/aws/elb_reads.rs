//! ELBv2 reads shared between the FargateApp passes of one AWS configuration (see
//! [`super::coalesce`]): a listener's rules are walked once for every pass that asks within the
//! linger (each app on a listener used to walk all of them), and target groups are read by name,
//! up to [`TARGET_GROUP_NAMES_PER_CALL`] per call.
//!
//! DescribeTargetGroups fails as a whole when one name is unknown, without saying which, so a
//! failed batch is read again name by name; callers batch only names they expect to exist (a group
//! recorded in status) and read a group they are about to create alone.

use std::collections::HashMap;

use super::api::elbv2::{Elbv2Api, Rule, TARGET_GROUP_NAMES_PER_CALL, TargetGroup};
use super::coalesce::Coalesced;
use super::{AwsCaller, AwsError, Service};

type RulesAnswer = Result<Vec<Rule>, AwsError>;
type GroupAnswer = Result<Option<TargetGroup>, AwsError>;

/// Queued ELBv2 reads of one configuration.
#[derive(Debug, Default)]
pub struct ElbReads {
    rules: Coalesced<(), RulesAnswer>,
    target_groups: Coalesced<String, GroupAnswer>,
}

impl ElbReads {
    /// Every rule of the listener (the default one included), page by page, shared with the other
    /// passes asking for the same listener.
    pub async fn rules(&self, caller: &AwsCaller, elb: &dyn Elbv2Api, listener_arn: &str) -> RulesAnswer {
        let walk = |turn: AwsCaller, asked: Vec<()>| async move {
            let answer = walk_rules(&turn, elb, listener_arn).await;
            vec![answer; asked.len()]
        };
        match self.rules.ask(listener_arn, (), caller.turn(Service::Elbv2), walk).await {
            Some(answer) => answer,
            None => walk_rules(caller, elb, listener_arn).await,
        }
    }

    /// The target group named `name`, `None` when there is none. `shared`: read together with
    /// other passes' names (use it when the group most likely exists).
    pub async fn target_group(&self, caller: &AwsCaller, elb: &dyn Elbv2Api, name: &str, shared: bool) -> GroupAnswer {
        if shared {
            let send = |turn: AwsCaller, names: Vec<String>| async move { read_groups(&turn, elb, names).await };
            if let Some(answer) = self.target_groups.ask("", name.to_string(), caller.turn(Service::Elbv2), send).await
            {
                return answer;
            }
        }
        read_group(caller, elb, name).await
    }
}

async fn walk_rules(caller: &AwsCaller, elb: &dyn Elbv2Api, listener_arn: &str) -> RulesAnswer {
    let mut rules = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let page = caller
            .call(Service::Elbv2, "DescribeRules", || elb.describe_rules(listener_arn, marker.as_deref()))
            .await?;
        rules.extend(page.rules);
        marker = page.next_marker;
        if marker.is_none() {
            return Ok(rules);
        }
    }
}

async fn read_group(caller: &AwsCaller, elb: &dyn Elbv2Api, name: &str) -> GroupAnswer {
    let names = [name.to_string()];
    match caller.call(Service::Elbv2, "DescribeTargetGroups", || elb.describe_target_groups(&names)).await {
        Ok(groups) => Ok(groups.into_iter().find(|g| g.name == name)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Answers for `asked`, in order: 20 distinct names per call; a call refused because one of its
/// names is unknown is read again name by name.
async fn read_groups(caller: &AwsCaller, elb: &dyn Elbv2Api, asked: Vec<String>) -> Vec<GroupAnswer> {
    let mut names = asked.clone();
    names.sort();
    names.dedup();
    let mut answers: HashMap<String, GroupAnswer> = HashMap::new();
    for chunk in names.chunks(TARGET_GROUP_NAMES_PER_CALL) {
        match caller.call(Service::Elbv2, "DescribeTargetGroups", || elb.describe_target_groups(chunk)).await {
            Ok(groups) => {
                for name in chunk {
                    answers.insert(name.clone(), Ok(groups.iter().find(|g| &g.name == name).cloned()));
                }
            }
            Err(e) if e.is_not_found() => {
                for name in chunk {
                    let answer = if chunk.len() == 1 { Ok(None) } else { read_group(caller, elb, name).await };
                    answers.insert(name.clone(), answer);
                }
            }
            Err(e) => {
                for name in chunk {
                    answers.insert(name.clone(), Err(e.clone()));
                }
            }
        }
    }
    asked.iter().map(|name| answers.get(name).cloned().unwrap_or(Ok(None))).collect()
}

#[cfg(test)]
mod tests;
