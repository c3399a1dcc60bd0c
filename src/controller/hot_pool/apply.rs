//! Running a pool pass's steps in the order the plan gives them, each worker and claim write guarded
//! by the resourceVersion this pass holds. A step whose worker is no longer what the plan saw (a
//! relaunch that ECS answered without a task, a launch rejected earlier in this pass, a worker the
//! bind path took since the pass listed the workers) is skipped and decided again on the next pass,
//! which is due at once. A claim step planned from a copy the bind path is writing over is skipped
//! the same way, and an idle worker is stopped only when the [`Ledger`](super::ledger::Ledger) says
//! no bind touched it since the LIST (and none can while its task stops).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::ResourceExt;

use super::binding::BindStep;
use super::plan::{self, PoolStep};
use super::{PassResult, Pool, ledger};
use crate::api::hot_pool::{HotPoolClaim, WorkerPhase};
use crate::controller::ReconcileError;

/// How soon a pass that skipped a step looks again.
const SKIPPED_RETRY: Duration = Duration::from_secs(1);

impl Pool<'_> {
    /// Run `steps` in order. Stops at the first error (what landed is in `self`).
    pub(super) async fn run(
        &mut self,
        steps: Vec<PoolStep>,
        claims: &[Arc<HotPoolClaim>],
        result: &mut PassResult,
    ) -> Result<(), ReconcileError> {
        let claims: BTreeMap<String, &Arc<HotPoolClaim>> = claims.iter().map(|c| (c.name_any(), c)).collect();
        // Once a claim step is skipped, the plan's idle stops and launches counted a binding that did
        // not happen: they are left to the next pass, which is due at once.
        let mut skipped = false;
        for step in steps {
            if skipped && matches!(step, PoolStep::StopIdle { .. } | PoolStep::Launch { .. }) {
                continue;
            }
            match step {
                PoolStep::Recover { worker, task_arn, port } => {
                    self.write_worker(&worker, |s| {
                        s.phase = Some(WorkerPhase::Starting);
                        s.task_arn = Some(task_arn);
                        s.port = port;
                    })
                    .await?;
                }
                PoolStep::Relaunch { version, task_definition, token, workers, count } => {
                    if self.held_back(&version, &task_definition, result) {
                        for name in &workers {
                            self.delete_worker(name).await?;
                        }
                        continue;
                    }
                    let slots = vec![None; workers.len()];
                    self.take_launch_budget(workers.len()).await;
                    // The repeat starts now: a deletion of the pool waits for these rows as young.
                    let now = MicroTime(self.now);
                    for name in &workers {
                        self.write_worker(name, |s| s.started_at = Some(now.clone())).await?;
                    }
                    let accepted =
                        self.run_batch(&version, &task_definition, &token, &workers, count, &slots, result).await?;
                    // Rows RunTask gave no task were removed: the plan counted them as starting.
                    if !accepted || workers.iter().any(|w| !self.workers.contains_key(w)) {
                        result.due_in(SKIPPED_RETRY);
                    }
                }
                PoolStep::DropWorker { worker } => self.delete_worker(&worker).await?,
                PoolStep::StopOrphan { task_arn } => {
                    self.aws
                        .stop_task(&task_arn, "fargate-operator: task of a HotPool with no HotPoolWorker (orphan)")
                        .await?;
                    let note = format!("stopped task {task_arn}: no HotPoolWorker records it");
                    self.ctx.events.warning(self.pool, "OrphanStopped", "StopTask", note).await;
                }
                PoolStep::Ready { worker, ip, claimed } => {
                    let now = self.now;
                    self.write_worker(&worker, |s| plan::mark_ready(s, ip, claimed, now)).await?;
                }
                PoolStep::Lost { worker, why } => {
                    let note = format!("worker {worker}: {why}");
                    self.ctx.events.warning(self.pool, "WorkerLost", "DescribeTasks", note).await;
                    self.delete_worker(&worker).await?;
                }
                PoolStep::TimedOut { worker, why } => {
                    let note = format!("worker {worker}: {why}");
                    self.ctx.events.warning(self.pool, "StartupTimeout", "StopTask", note).await;
                    self.stop_worker(&worker, &why).await?;
                }
                PoolStep::Release { worker, on_release, why } => self.release(&worker, on_release, &why).await?,
                PoolStep::Bind { claim, worker, reference } => {
                    let Some(c) = claims.get(&claim) else { continue };
                    if self.bind(c, &worker, &reference).await? == BindStep::Skipped {
                        skipped = true;
                        result.due_in(SKIPPED_RETRY);
                    }
                }
                PoolStep::Claim { claim, step } => {
                    let Some(c) = claims.get(&claim) else { continue };
                    // The bind path is binding it, or bound it after this pass read it: the step was
                    // planned from a Pending copy.
                    if self.shared.ledger.claim_busy(c) {
                        skipped = true;
                        result.due_in(SKIPPED_RETRY);
                        continue;
                    }
                    if !self.claim_step(c, step).await? {
                        skipped = true;
                        result.due_in(SKIPPED_RETRY);
                    }
                }
                PoolStep::StopIdle { worker, why } => {
                    let Some(w) = self.workers.get(&worker) else { continue };
                    let key = ledger::worker_key(w);
                    if !self.shared.ledger.begin_stop(w, self.listed_at) {
                        result.due_in(SKIPPED_RETRY);
                        continue;
                    }
                    let stopped = self.stop_worker(&worker, &why).await;
                    self.shared.ledger.end_stop(&key);
                    stopped?;
                    let note = format!("worker {worker}: {why}");
                    self.ctx.events.normal(self.pool, "WorkerStopped", "StopTask", note).await;
                }
                PoolStep::Launch { version, task_definition, slots } => {
                    // Also rejected earlier in this pass: the rejection is recorded by then.
                    if !self.held_back(&version, &task_definition, result) {
                        self.launch_batch(&version, &task_definition, &slots, result).await?;
                    }
                }
            }
        }
        if self.workers.values().any(|w| plan::phase(w) == WorkerPhase::Starting) {
            result.due_in(super::STARTING_POLL);
        }
        Ok(())
    }
}
