//! DescribeServices for many objects in one request. ECS reads up to 10 services of a cluster per
//! DescribeServices call, and every FargateApp pass reads its own service, so with many apps
//! reconciling at once (a first sync, a resync wave, rollouts being polled) most calls can be
//! shared. One of these exists per (account, Region, role) configuration (see `sdk::Clients`), so
//! reads are only ever shared between objects that use the same credentials.
//!
//! The first read of a cluster waits a moment for others to join, then sends every queued name,
//! 10 per call, and hands each waiter the services named as it asked. A waiter whose sender went
//! away (the first reader's pass was cancelled) reads alone.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::oneshot;

use super::api::ecs::{EcsApi, EcsService};
use super::{AwsCaller, AwsError, Service};

/// Services one DescribeServices call may name (ECS's limit).
pub const SERVICES_PER_CALL: usize = 10;
/// How long the first read of a batch waits for others: short against a pass (tens of ms of
/// AWS calls), long enough for passes started by one watch event or timer to join.
const LINGER: Duration = Duration::from_millis(10);

type Answer = Result<Vec<EcsService>, AwsError>;
/// A queued read: the name, and where its answer goes.
type Waiter = (String, oneshot::Sender<Answer>);

/// Queued reads per cluster.
#[derive(Debug, Default)]
pub struct ServiceReads {
    queued: Mutex<HashMap<String, Vec<Waiter>>>,
}

/// Takes a cluster's queue when dropped: dropping its senders sends its waiters to read alone.
struct TakeOnDrop<'a> {
    reads: &'a ServiceReads,
    cluster: &'a str,
}

impl TakeOnDrop<'_> {
    fn take(&self) -> Vec<Waiter> {
        self.reads.queued.lock().unwrap_or_else(|p| p.into_inner()).remove(self.cluster).unwrap_or_default()
    }
}

impl Drop for TakeOnDrop<'_> {
    fn drop(&mut self) {
        drop(self.take());
    }
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
        let (tx, rx) = oneshot::channel();
        let first = {
            let mut queued = self.queued.lock().unwrap_or_else(|p| p.into_inner());
            let queue = queued.entry(cluster.to_string()).or_default();
            queue.push((name.to_string(), tx));
            queue.len() == 1
        };
        if first {
            // Cancelled while lingering, the first reader must not leave the queue behind: later
            // readers would join it and wait for a send that never comes.
            let guard = TakeOnDrop { reads: self, cluster };
            tokio::time::sleep(LINGER).await;
            let batch = guard.take();
            Self::send(caller, ecs, cluster, batch).await;
        }
        match rx.await {
            Ok(answer) => answer,
            // The reader that took this name away was cancelled before answering.
            Err(_) => {
                let names = [name.to_string()];
                caller.call(Service::Ecs, "DescribeServices", || ecs.describe_services(cluster, &names)).await
            }
        }
    }

    async fn send(caller: &AwsCaller, ecs: &dyn EcsApi, cluster: &str, mut batch: Vec<Waiter>) {
        batch.sort_by(|a, b| a.0.cmp(&b.0));
        let mut names: Vec<String> = batch.iter().map(|(n, _)| n.clone()).collect();
        names.dedup();
        let mut answers: HashMap<String, Answer> = HashMap::new();
        for chunk in names.chunks(SERVICES_PER_CALL) {
            let answer = caller.call(Service::Ecs, "DescribeServices", || ecs.describe_services(cluster, chunk)).await;
            for name in chunk {
                let mine = answer
                    .as_ref()
                    .map(|services| services.iter().filter(|s| name_of(&s.arn) == name_of(name)).cloned().collect())
                    .map_err(Clone::clone);
                answers.insert(name.clone(), mine);
            }
        }
        for (name, tx) in batch {
            if let Some(answer) = answers.get(&name) {
                // A waiter that is gone (its pass cancelled) needs no answer.
                let _ = tx.send(answer.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests;
