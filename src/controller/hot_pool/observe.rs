//! Looking at the pool's tasks each pass: recover launches whose task ARN was never recorded
//! (found by their launch tag), relaunch the rest with their token, stop tasks of the pool that no
//! worker records (orphans), and apply each worker's step (Starting -> Available, lost, timed out).
//!
//! The full sweep lists the pool's tasks (ListTasks `startedBy`) in `spec.cluster` and in every
//! cluster of the inventory, so tasks left in a cluster `spec.cluster` no longer names are still
//! seen; a recorded cluster with nothing of ours left is dropped from the inventory.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::ResourceExt;

use super::aws::TAG_LAUNCH;
use super::plan::{self, WorkerStep};
use super::{MAX_WAKE, PassResult, Pool, inventory};
use crate::api::hot_pool::{HotPoolWorker, WorkerPhase};
use crate::controller::ReconcileError;
use crate::runtime::clock::{self, plus_secs};

impl Pool<'_> {
    /// Look at the tasks: recover unrecorded launches, stop orphans, and apply each worker's step.
    pub(super) async fn observe_and_repair(
        &mut self,
        key: &str,
        result: &mut PassResult,
    ) -> Result<(), ReconcileError> {
        let every = Duration::from_secs(u64::try_from(self.pool.spec.replenish_interval_seconds).unwrap_or(30));
        let unrecorded: Vec<String> =
            self.workers.values().filter(|w| plan::task_arn(w).is_none()).map(|w| w.name_any()).collect();
        let full = !unrecorded.is_empty() || self.shared.sweep_due(key, every);
        let per_cluster = if full { Some(self.list_running().await?) } else { None };
        let running: Option<BTreeSet<String>> = per_cluster.as_ref().map(|m| m.values().flatten().cloned().collect());
        let known: BTreeSet<String> = self.workers.values().filter_map(plan::task_arn).map(str::to_string).collect();
        let mut describe: BTreeSet<String> = self
            .workers
            .values()
            .filter(|w| plan::phase(w) == WorkerPhase::Starting)
            .filter_map(plan::task_arn)
            .map(str::to_string)
            .collect();
        if let Some(r) = &running {
            describe.extend(known.difference(r).cloned());
            describe.extend(r.difference(&known).cloned());
        }
        let obs = if describe.is_empty() {
            BTreeMap::new()
        } else {
            self.aws.describe_tasks(&describe.into_iter().collect::<Vec<_>>()).await?
        };
        if full {
            self.shared.swept(key);
        }

        // Launches whose task ARN was never recorded.
        let unknown: BTreeMap<String, plan::TaskObs> =
            obs.iter().filter(|(arn, _)| !known.contains(*arn)).map(|(a, o)| (a.clone(), o.clone())).collect();
        let pending: Vec<&HotPoolWorker> = unrecorded.iter().filter_map(|n| self.workers.get(n)).collect();
        let recovered = plan::recover_launches(pending, &unknown, TAG_LAUNCH);
        let adopted: BTreeSet<String> = recovered.iter().map(|(_, arn)| arn.clone()).collect();
        for (name, arn) in &recovered {
            let port = self.port_of(name);
            self.write_worker(name, |s| {
                s.phase = Some(WorkerPhase::Starting);
                s.task_arn = Some(arn.clone());
                s.port = port;
            })
            .await?;
        }
        let relaunch: Vec<String> =
            unrecorded.iter().filter(|n| !recovered.iter().any(|(r, _)| r == *n)).cloned().collect();
        self.relaunch(&relaunch, result).await?;

        // Tasks of this pool that no worker knows: stop them.
        for (arn, o) in &unknown {
            if adopted.contains(arn)
                || o.is_stopped()
                || !self.owner.owns(o.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            {
                continue;
            }
            self.aws.stop_task(arn, "fargate-operator: task of a HotPool with no HotPoolWorker (orphan)").await?;
            self.ctx
                .events
                .warning(
                    self.pool,
                    "OrphanStopped",
                    "StopTask",
                    format!("stopped task {arn}: no HotPoolWorker records it"),
                )
                .await;
        }

        // Each recorded worker's step. Not the ones just relaunched: their tasks are newer than the
        // task list above, so they would look lost (and be deleted, orphaning the tasks: found by
        // the chaos run after a leader died between creating workers and recording their tasks).
        let names: Vec<String> = self.workers.keys().filter(|n| !relaunch.contains(n)).cloned().collect();
        for name in names {
            let Some(w) = self.workers.get(&name) else { continue };
            let step = plan::step_worker(
                w,
                plan::task_arn(w).and_then(|a| obs.get(a)),
                running.as_ref(),
                self.pool.spec.startup_timeout_seconds,
                self.now,
            );
            match step {
                WorkerStep::Keep => {
                    if plan::phase(w) == WorkerPhase::Starting
                        && let Some(started) = w.status.as_ref().and_then(|s| s.started_at.as_ref())
                    {
                        let deadline = plus_secs(started.0, i64::from(self.pool.spec.startup_timeout_seconds));
                        result.due_in(clock::until(self.now, deadline, MAX_WAKE));
                    }
                }
                WorkerStep::Ready(ip) => {
                    let reserved = plan::claim_ref(w).is_some();
                    let now = self.now;
                    self.write_worker(&name, |s| {
                        s.ip = Some(ip.clone());
                        if reserved {
                            s.phase = Some(WorkerPhase::Claimed);
                        } else {
                            s.phase = Some(WorkerPhase::Available);
                            s.available_since = Some(MicroTime(now));
                        }
                    })
                    .await?;
                }
                WorkerStep::Lost(why) => {
                    self.ctx
                        .events
                        .warning(self.pool, "WorkerLost", "DescribeTasks", format!("worker {name}: {why}"))
                        .await;
                    self.delete_worker(&name).await?;
                }
                WorkerStep::TimedOut => {
                    let why = format!(
                        "not RUNNING with an IP within {} s (spec.startupTimeoutSeconds)",
                        self.pool.spec.startup_timeout_seconds
                    );
                    self.ctx
                        .events
                        .warning(self.pool, "StartupTimeout", "StopTask", format!("worker {name}: {why}"))
                        .await;
                    self.stop_worker(&name, &why).await?;
                }
            }
        }
        if let Some(per_cluster) = &per_cluster {
            self.drop_empty_clusters(per_cluster);
        }
        Ok(())
    }

    /// The pool's running tasks in `spec.cluster` and in every recorded cluster, by cluster. A
    /// recorded cluster that is gone has none; `spec.cluster` gone is an error (the pool reports it).
    async fn list_running(&self) -> Result<BTreeMap<String, BTreeSet<String>>, ReconcileError> {
        let mut out = BTreeMap::new();
        for cluster in inventory::clusters_to_search(&self.resources, &self.pool.spec.cluster) {
            let arns = match self.aws.running_task_arns(cluster, &self.started_by).await {
                Ok(a) => a,
                Err(e) if e.is_not_found() && !inventory::same_cluster(cluster, &self.pool.spec.cluster) => {
                    BTreeSet::new()
                }
                Err(e) => return Err(e.into()),
            };
            out.insert(cluster.to_string(), arns);
        }
        Ok(out)
    }

    /// Forget the recorded clusters (other than `spec.cluster`) where the sweep found no running
    /// task of ours and no worker's task is. Not while a worker's task is unrecorded: it may be in
    /// one of them.
    fn drop_empty_clusters(&mut self, per_cluster: &BTreeMap<String, BTreeSet<String>>) {
        let mut worker_clusters = BTreeSet::new();
        for w in self.workers.values() {
            let Some(arn) = plan::task_arn(w) else { return };
            worker_clusters
                .insert(inventory::cluster_name(inventory::cluster_of(arn, &self.pool.spec.cluster)).to_string());
        }
        let dropped =
            inventory::drop_empty(&mut self.resources, &self.pool.spec.cluster, per_cluster, &worker_clusters);
        for cluster in dropped {
            tracing::info!(pool = %self.name, cluster, "no task of the pool is left in the cluster; its inventory entry is dropped");
        }
    }

    pub(super) fn port_of(&self, worker: &str) -> Option<i32> {
        let version = &self.workers.get(worker)?.spec.version;
        self.pool.spec.versions.iter().find(|v| &v.version == version).map(|v| v.port)
    }
}
