//! Worker writes of a pass: status changes guarded by the resourceVersion this pass holds,
//! deletion, stopping a worker's task, and releasing a worker a claim let go of.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Resource;
use kube::api::{DeleteParams, PostParams};

use super::Pool;
use super::plan;
use crate::api::hot_pool::{HotPoolWorkerStatus, OnRelease, WorkerPhase};
use crate::controller::ReconcileError;

impl Pool<'_> {
    /// Change a worker's status with `f` and write it when it changed, guarded by the
    /// resourceVersion of the copy this pass holds (updated from the response).
    pub(super) async fn write_worker(
        &mut self,
        name: &str,
        f: impl FnOnce(&mut HotPoolWorkerStatus),
    ) -> Result<(), ReconcileError> {
        let Some(w) = self.workers.get(name) else { return Ok(()) };
        let mut obj = w.clone();
        let mut st = obj.status.clone().unwrap_or_default();
        f(&mut st);
        st.observed_generation = obj.meta().generation;
        if obj.status.as_ref() == Some(&st) {
            return Ok(());
        }
        obj.status = Some(st);
        self.ctx.metrics.status_written("HotPoolWorker");
        let written = self.workers_api.replace_status(name, &PostParams::default(), &obj).await?;
        self.workers.insert(name.to_string(), crate::controller::slim::slimmed(written));
        Ok(())
    }

    pub(super) async fn delete_worker(&mut self, name: &str) -> Result<(), ReconcileError> {
        if let Some(w) = self.workers.get(name) {
            tracing::debug!(pool = %self.name, worker = name, task = ?plan::task_arn(w), token = ?w.spec.launch_token, phase = ?plan::phase(w), "deleting worker");
        }
        match self.workers_api.delete(name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
        self.workers.remove(name);
        Ok(())
    }

    /// Stop the worker's task (if it has one) and remove the worker. A task launched moments ago
    /// that StopTask does not know yet (ECS's reads lag its launches) keeps its worker, so a later
    /// pass stops it again: removed, the worker would leave the task running unrecorded, and a pool
    /// deleted next could not find it (found by the simulator).
    pub(super) async fn stop_worker(&mut self, name: &str, why: &str) -> Result<(), ReconcileError> {
        let Some(w) = self.workers.get(name) else { return Ok(()) };
        if let Some(arn) = plan::task_arn(w).map(str::to_string) {
            let young = plan::launched_within(w, self.now, self.ctx.config.ecs_read_lag());
            let reason = format!("fargate-operator: {why}");
            let known = self.aws.stop_task_if_known(&arn, &reason.chars().take(255).collect::<String>()).await?;
            if !known && young {
                tracing::debug!(pool = %self.name, worker = name, task = arn, "StopTask does not know the task yet; the worker stays");
                return Ok(());
            }
        }
        self.delete_worker(name).await
    }

    /// A claim let go of `worker`: a reserved worker that never started joins the pool; otherwise
    /// `onRelease` decides between stopping it and returning it to Available.
    pub(super) async fn release(
        &mut self,
        worker: &str,
        on_release: OnRelease,
        why: &str,
    ) -> Result<(), ReconcileError> {
        let Some(w) = self.workers.get(worker) else { return Ok(()) };
        let now = self.now;
        match (plan::phase(w), on_release) {
            (WorkerPhase::Starting, _) => self.write_worker(worker, |s| s.claim = None).await,
            (_, OnRelease::Recycle) => {
                self.write_worker(worker, |s| {
                    s.claim = None;
                    s.phase = Some(WorkerPhase::Available);
                    s.available_since = Some(MicroTime(now));
                })
                .await
            }
            (_, OnRelease::Stop) => self.stop_worker(worker, &format!("released: {why}")).await,
        }
    }
}
