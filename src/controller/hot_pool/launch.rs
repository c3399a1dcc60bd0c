//! Launching workers: write the worker rows (the intent, with the RunTask idempotency token), call
//! RunTask, record each task on its worker; repeat RunTask with the same token for rows whose task
//! was never recorded.
//!
//! The tasks a call returns are paired with its workers by their launch tag, each task once and
//! never one a worker already holds ([`plan::pair_launched`]), not by position: when some tasks fail
//! for capacity, or a repeated token returns the first call's tasks (some recorded by launch
//! recovery), the i-th task is not the i-th worker's. A worker left without a task is removed; the
//! deficit, or its claim's next pass, launches anew.
//!
//! A RunTask that ECS rejects (a deregistered or deleted revision, PassRole denied, too many tags:
//! errors of category `terminal` or `not_found`) is a problem of that version only: its rows are
//! removed (a rejected request started nothing), the version is reported in `Degraded` with reason
//! `LaunchRejected`, and the rest of the pass goes on, so claims on the other versions keep binding,
//! expiring and releasing. The version is not tried again before a growing delay
//! ([`Rejections`]), so a pool whose claims trigger pass after pass does not call RunTask on every
//! pass; a spec edit (a new generation) or a new revision tries again at once. A missing cluster is
//! not a version's problem: the pass reports it as `ClusterNotFound`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use crate::runtime::clock::Instant;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, OwnerReference};
use kube::Resource;
use kube::ResourceExt;
use kube::api::{Api, PostParams};

use super::aws::{LaunchRequest, TAG_LAUNCH, TAG_VERSION};
use super::plan;
use super::{KIND, LAUNCH_LABEL, PassResult, Pool};
use crate::api::FIELD_MANAGER;
use crate::api::hot_pool::WorkerPhase;
use crate::api::hot_pool::{HotPool, HotPoolWorker, HotPoolWorkerSpec, POOL_LABEL, VERSION_LABEL, WorkerClaimRef};
use crate::aws::{AwsError, ErrorCategory};
use crate::controller::ReconcileError;

pub use super::plan::REASON_LAUNCH_REJECTED;
/// First wait after a rejection; it doubles per rejection in a row, up to [`REJECTION_CAP`].
const REJECTION_BASE: Duration = Duration::from_secs(30);
const REJECTION_CAP: Duration = Duration::from_secs(600);

/// Whether ECS refused the request itself (nothing was started), as opposed to a failure that
/// retrying the same request may get past. A missing cluster is the whole pool's problem, not one
/// version's: it goes up to the pass, which reports `ClusterNotFound`.
fn is_rejection(e: &AwsError) -> bool {
    matches!(e.category, ErrorCategory::Terminal | ErrorCategory::NotFound) && e.code != "ClusterNotFoundException"
}

/// Recent RunTask rejections per pool generation and version, for the leadership term.
#[derive(Debug, Default)]
pub struct Rejections {
    by_key: Mutex<HashMap<String, Rejection>>,
}

#[derive(Debug, Clone)]
struct Rejection {
    until: Instant,
    in_a_row: u32,
    message: String,
}

impl Rejections {
    /// The message of a rejection of `key` still within its delay at `now`, and what is left of it.
    pub fn blocked(&self, key: &str, now: Instant) -> Option<(String, Duration)> {
        let map = self.by_key.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key).filter(|r| now < r.until).map(|r| (r.message.clone(), r.until.saturating_duration_since(now)))
    }

    /// Record a rejection of `key` at `now`; returns the delay before the next attempt.
    pub fn rejected(&self, key: &str, message: String, now: Instant) -> Duration {
        let mut map = self.by_key.lock().unwrap_or_else(|p| p.into_inner());
        // Forget entries long past their delay, so removed pools and old generations do not pile up.
        map.retain(|_, r| now.saturating_duration_since(r.until) < REJECTION_CAP);
        let in_a_row = map.get(key).map_or(0, |r| r.in_a_row.saturating_add(1));
        let delay = crate::runtime::backoff::exponential_delay(in_a_row, REJECTION_BASE, REJECTION_CAP, 1.0);
        map.insert(key.to_string(), Rejection { until: now + delay, in_a_row, message });
        delay
    }

    /// A launch of `key` went through.
    pub fn accepted(&self, key: &str) {
        self.by_key.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }
}

/// Rejections are remembered per pool generation, version and task definition: an edit, or a new
/// revision behind a family reference, tries again at once.
pub fn rejection_key(pool: &HotPool, version: &str, td: &str) -> String {
    let (namespace, name) =
        (pool.meta().namespace.as_deref().unwrap_or_default(), pool.meta().name.as_deref().unwrap_or_default());
    format!("{namespace}/{name}/{:?}/{version}/{td}", pool.meta().generation)
}

impl Pool<'_> {
    fn rejection_key(&self, version: &str, td: &str) -> String {
        rejection_key(self.pool, version, td)
    }

    /// Whether launches of `version` on `td` wait after a rejection; if so, reported in `result`.
    pub(super) fn held_back(&self, version: &str, td: &str, result: &mut PassResult) -> bool {
        match self.shared.rejections.blocked(&self.rejection_key(version, td), Instant::now()) {
            Some((message, left)) => {
                result.problem(REASON_LAUNCH_REJECTED, message);
                result.due_in(left);
                true
            }
            None => false,
        }
    }

    fn version_field(&self, version: &str) -> String {
        match self.pool.spec.versions.iter().position(|v| v.version == version) {
            Some(i) => format!("spec.versions[{i}]"),
            None => format!("version {version}"),
        }
    }

    /// Remember a rejected RunTask of `version` and report it; its unrecorded rows are removed.
    async fn on_rejected(
        &mut self,
        version: &str,
        td: &str,
        names: &[String],
        e: &AwsError,
        result: &mut PassResult,
    ) -> Result<(), ReconcileError> {
        for name in names {
            self.delete_worker(name).await?;
        }
        let message = format!(
            "{} ({version}): ECS rejected RunTask: {e}; fix the task definition, its roles or spec.tags",
            self.version_field(version)
        );
        let delay = self.shared.rejections.rejected(&self.rejection_key(version, td), message.clone(), Instant::now());
        self.ctx.events.warning(self.pool, REASON_LAUNCH_REJECTED, "RunTask", message.clone()).await;
        tracing::warn!(pool = %self.name, version, ?delay, error = %e, "RunTask rejected; the version waits");
        result.problem(REASON_LAUNCH_REJECTED, message);
        result.due_in(delay);
        // The revision may have been deregistered or deleted: resolve the reference again next pass
        // (a family reference then finds its newest revision).
        self.stale_task_definitions.insert(version.to_string());
        Ok(())
    }

    fn new_worker(&self, name: &str, version: &str, td: &str, token: &str) -> HotPoolWorker {
        let mut w = HotPoolWorker::new(
            name,
            HotPoolWorkerSpec {
                pool: self.name.clone(),
                version: version.into(),
                task_definition_arn: td.into(),
                launch_token: Some(token.into()),
            },
        );
        w.metadata.namespace = Some(self.namespace.clone());
        w.metadata.labels = Some(
            [
                (POOL_LABEL.to_string(), self.name.clone()),
                (VERSION_LABEL.to_string(), version.to_string()),
                (LAUNCH_LABEL.to_string(), token.to_string()),
            ]
            .into(),
        );
        w.metadata.owner_references = Some(vec![OwnerReference {
            api_version: HotPool::api_version(&()).into_owned(),
            kind: KIND.into(),
            name: self.name.clone(),
            uid: self.owner.uid.clone(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }]);
        w
    }

    /// Write the workers first (the intent, with the idempotency token), then RunTask, then record
    /// each task on its worker. False when ECS rejected the launch.
    pub(super) async fn launch_batch(
        &mut self,
        version: &str,
        td: &str,
        slots: &[Option<WorkerClaimRef>],
        result: &mut PassResult,
    ) -> Result<bool, ReconcileError> {
        // The budget first: a worker's age counts from its row, and the deletion of the pool waits
        // for young rows whose task may still start; a wait here must not age them.
        self.take_launch_budget(slots.len()).await;
        let token = uuid::Uuid::new_v4().to_string();
        let mut names = Vec::with_capacity(slots.len());
        for _ in slots {
            let name = uuid::Uuid::new_v4().to_string();
            let obj = self.new_worker(&name, version, td, &token);
            let created = self
                .workers_api
                .create(&PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() }, &obj)
                .await?;
            self.workers.insert(name.clone(), crate::controller::slim::slimmed(created));
            names.push(name);
        }
        match self.run_batch(version, td, &token, &names, names.len(), slots, result).await {
            Err(ReconcileError::RacedDeletion(why)) => {
                // The fence found the pool being deleted before RunTask, and this batch's token is
                // new: no call ever carried it, so no task can. Its rows go now; left, they would
                // hold the deletion as long as a launch that may still act (minutes), which a
                // deletion right after a claim's binding met once binds stopped waiting for passes.
                for name in &names {
                    self.delete_worker(name).await?;
                }
                Err(ReconcileError::RacedDeletion(why))
            }
            other => other,
        }
    }

    /// Wait for `n` launches of the `--launches-per-second` budget.
    pub(super) async fn take_launch_budget(&self, n: usize) {
        for _ in 0..n {
            let waited = self.aws.caller.launch_token().await;
            self.ctx.metrics.budget_waited("launches", waited);
        }
    }

    /// The fence between a launch and a deletion of the pool, read after the workers are written
    /// and before RunTask: a pass that started from a copy without the deletion (another replica's,
    /// or one from before the delete) must not start tasks the cleanup may already have looked for.
    /// The cleanup lists the workers again after its last step, so a worker written before this
    /// read is seen there (and its task stopped); one written after it finds the deletion here. A
    /// relaunch's rows stay (an earlier call with their token may still act: the cleanup waits for
    /// a young worker's task and removes them); a new batch's rows are removed (`launch_batch`).
    async fn fence(&self) -> Result<(), ReconcileError> {
        let api: Api<HotPool> = Api::namespaced(self.ctx.client.clone(), &self.owner.namespace);
        let fresh = api.get_opt(&self.name).await?;
        let live = fresh.filter(|p| p.uid() == Some(self.owner.uid.clone()) && p.metadata.deletion_timestamp.is_none());
        if live.is_none() {
            return Err(ReconcileError::RacedDeletion(format!(
                "HotPool {} is being deleted: its launch is abandoned before RunTask",
                self.name
            )));
        }
        Ok(())
    }

    /// RunTask for `names` (workers already written with `token`; `count` tasks, as the first
    /// call with `token` asked; the launch budget already taken) and record the tasks. False when
    /// ECS rejected the request (the rows are removed and the version reported).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn run_batch(
        &mut self,
        version: &str,
        td: &str,
        token: &str,
        names: &[String],
        count: usize,
        slots: &[Option<WorkerClaimRef>],
        result: &mut PassResult,
    ) -> Result<bool, ReconcileError> {
        let mut tags = self.owner.tags(&self.pool.spec.tags);
        tags.insert(TAG_VERSION.into(), version.into());
        tags.insert(TAG_LAUNCH.into(), token.into());
        let network = crate::aws::ecs_network::awsvpc(&self.pool.spec.network)?;
        // Recorded, and written to status, before the call: whatever it starts is then found (and
        // stopped on deletion) in this cluster even after a crash and a `spec.cluster` edit.
        if super::inventory::record(&mut self.resources, &self.aws.cluster, &self.started_by) {
            self.writer.record_resources(&self.resources).await?;
        }
        self.fence().await?;
        let launched = match self
            .aws
            .run_tasks(&LaunchRequest {
                task_definition_arn: td,
                count,
                token,
                started_by: &self.started_by,
                tags: &tags,
                network: &network,
            })
            .await
        {
            Ok(l) => l,
            Err(e) if is_rejection(&e) => {
                self.on_rejected(version, td, names, &e, result).await?;
                return Ok(false);
            }
            Err(e) => return Err(e.into()),
        };
        self.shared.rejections.accepted(&self.rejection_key(version, td));
        tracing::debug!(pool = %self.name, token, workers = ?names, tasks = ?launched.tasks, failures = ?launched.failures, "RunTask answered");
        let taken: BTreeSet<String> = self.workers.values().filter_map(plan::task_arn).map(str::to_string).collect();
        let held = launched.tasks.iter().filter(|t| taken.contains(&t.arn)).count();
        if held > 0 {
            tracing::debug!(pool = %self.name, token, held, "RunTask answered tasks workers already hold (a repeated token)");
        }
        let workers: Vec<(String, bool)> =
            names.iter().enumerate().map(|(i, n)| (n.clone(), slots.get(i).is_some_and(Option::is_some))).collect();
        let paired: BTreeMap<String, String> =
            plan::pair_launched(&workers, token, &launched.tasks, &taken).into_iter().collect();
        let port = self.pool.spec.versions.iter().find(|v| v.version == version).map(|v| v.port);
        let now = self.now;
        let mut cold = 0;
        for (i, name) in names.iter().enumerate() {
            match paired.get(name) {
                Some(arn) => {
                    let reservation = slots.get(i).cloned().flatten();
                    cold += usize::from(reservation.is_some());
                    self.write_worker(name, |s| {
                        s.phase = Some(WorkerPhase::Starting);
                        s.task_arn = Some(arn.clone());
                        s.started_at = Some(MicroTime(now));
                        s.port = port;
                        s.claim = reservation;
                    })
                    .await?;
                }
                // Every task this call answered with is held by a worker now, so none is this
                // worker's: its row goes, and the deficit (or the claim's next pass) launches anew.
                None => self.delete_worker(name).await?,
            }
        }
        self.ctx.metrics.cold_started(cold);
        let n = paired.len();
        if n > 0 {
            let note = format!("launched {n} worker(s) of version {version} (RunTask clientToken {token})");
            self.ctx.events.normal(self.pool, "Launched", "RunTask", note).await;
        }
        if !launched.failures.is_empty() {
            let note = format!(
                "RunTask started {n} of {} worker(s) of version {version}: {}",
                names.len(),
                launched.failures.join("; ")
            );
            self.ctx.events.warning(self.pool, "LaunchFailed", "RunTask", note).await;
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rejection_holds_the_version_back_for_a_growing_delay_and_an_acceptance_clears_it() {
        let r = Rejections::default();
        let t0 = Instant::now();
        assert_eq!(r.blocked("ns/p/Some(1)/v1", t0), None);
        assert_eq!(r.rejected("ns/p/Some(1)/v1", "no".into(), t0), Duration::from_secs(30));
        assert_eq!(
            r.blocked("ns/p/Some(1)/v1", t0 + Duration::from_secs(29)),
            Some(("no".to_string(), Duration::from_secs(1)))
        );
        assert_eq!(r.blocked("ns/p/Some(1)/v1", t0 + Duration::from_secs(30)), None);
        assert_eq!(r.blocked("ns/p/Some(2)/v1", t0), None, "a new generation tries at once");
        let t1 = t0 + Duration::from_secs(31);
        assert_eq!(r.rejected("ns/p/Some(1)/v1", "no".into(), t1), Duration::from_secs(60));
        for _ in 0..10 {
            r.rejected("ns/p/Some(1)/v1", "no".into(), t1);
        }
        assert_eq!(r.rejected("ns/p/Some(1)/v1", "no".into(), t1), REJECTION_CAP);
        r.accepted("ns/p/Some(1)/v1");
        assert_eq!(r.blocked("ns/p/Some(1)/v1", t1), None);
        assert_eq!(r.rejected("ns/p/Some(1)/v1", "no".into(), t1), REJECTION_BASE, "the count starts over");
    }

    #[test]
    fn only_requests_ecs_refused_are_rejections() {
        let err = |category| AwsError {
            service: "ecs",
            operation: "RunTask",
            code: "X".into(),
            message: "m".into(),
            category,
        };
        assert!(is_rejection(&err(ErrorCategory::Terminal)));
        assert!(is_rejection(&err(ErrorCategory::NotFound)));
        assert!(!is_rejection(&err(ErrorCategory::Throttling)));
        assert!(!is_rejection(&err(ErrorCategory::Transient)));
        let mut no_cluster = err(ErrorCategory::NotFound);
        no_cluster.code = "ClusterNotFoundException".into();
        assert!(!is_rejection(&no_cluster), "a missing cluster is the pool's problem");
    }
}
