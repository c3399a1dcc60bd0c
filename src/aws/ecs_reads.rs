//! DescribeServices for many objects in one request. ECS reads up to 10 services of a cluster per
//! DescribeServices call, and every FargateApp pass reads its own service, so with many apps
//! reconciling at once (a first sync, a resync wave, rollouts being polled) most calls can be
//! shared. One of these exists per (account, Region, role) configuration (see `sdk::Clients`), so
//! reads are only ever shared between objects that use the same credentials.
//!
//! The first read of a cluster waits a moment for others to join (see [`super::coalesce`]), then
//! sends every queued name, 10 per call, and hands each reader the services named as it asked.

use std::collections::HashMap;

use super::api::ecs::{EcsApi, EcsService};
use super::coalesce::Coalesced;
use super::{AwsCaller, AwsError, Service};

/// Services one DescribeServices call may name (ECS's limit).
pub const SERVICES_PER_CALL: usize = 10;

type Answer = Result<Vec<EcsService>, AwsError>;

/// Queued reads per cluster.
#[derive(Debug, Default)]
pub struct ServiceReads {
    queued: Coalesced<String, Answer>,
}

/// The name of a service from its ARN (`arn:aws:ecs:<region>:<account>:service/<cluster>/<name>`,
/// or the older `service/<name>`).
fn name_of(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

impl ServiceReads {
    /// The services named `name` in `cluster` (as one DescribeServices of that name answers),
    /// read together with other objects' reads of the same cluster.
    pub async fn describe(&self, caller: &AwsCaller, ecs: &dyn EcsApi, cluster: &str, name: &str) -> Answer {
        let send = |turn: AwsCaller, names| async move { Self::send(&turn, ecs, cluster, names).await };
        let shared = self.queued.ask(cluster, name.to_string(), caller.turn(Service::Ecs), send).await;
        match shared {
            Some(answer) => answer,
            // The reader that took this name away was cancelled before answering.
            None => {
                let names = [name.to_string()];
                caller.call(Service::Ecs, "DescribeServices", || ecs.describe_services(cluster, &names)).await
            }
        }
    }

    async fn send(caller: &AwsCaller, ecs: &dyn EcsApi, cluster: &str, asked: Vec<String>) -> Vec<Answer> {
        let mut names = asked.clone();
        names.sort();
        names.dedup();
        let mut answers: HashMap<&str, Answer> = HashMap::new();
        for chunk in names.chunks(SERVICES_PER_CALL) {
            let answer = caller.call(Service::Ecs, "DescribeServices", || ecs.describe_services(cluster, chunk)).await;
            for name in chunk {
                let mine = answer
                    .as_ref()
                    .map(|services| services.iter().filter(|s| name_of(&s.arn) == name_of(name)).cloned().collect())
                    .map_err(Clone::clone);
                answers.insert(name.as_str(), mine);
            }
        }
        asked.iter().map(|name| answers.get(name.as_str()).cloned().unwrap_or_else(|| Ok(Vec::new()))).collect()
    }
}

#[cfg(test)]
mod tests;
