//! One pool pass decided at once, as a value: every step in the order it is applied (recover and
//! relaunch unrecorded launches, stop orphans, each worker's step, releases, each claim's step, idle
//! stops, launches), the inventory after it, and the problems and wake-up it reports.
//!
//! The stages depend on each other (a worker found RUNNING can be bound in the same pass, a worker
//! released by an expired claim is not launched again), so each stage is decided on the workers as
//! the steps before it leave them: the plan applies its own steps to copies of the workers they
//! change. Apply runs the steps in order; a step whose worker is no longer what the plan saw (a
//! relaunch that ECS answered without a task) is skipped and decided again on the next pass.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use k8s_openapi::jiff::Timestamp;

use super::{
    ClaimStep, ClaimView, Release, TaskObs, WorkerStep, WorkerView, claim_ref, idle_stops, phase, plan_claims,
    pool_deficits, recover_launches, releases, step_worker, task_arn, waiting_per_version,
};
use crate::api::OwnedResource;
use crate::api::hot_pool::{HotPoolSpec, HotPoolWorker, HotPoolWorkerStatus, OnRelease, WorkerClaimRef, WorkerPhase};
use crate::aws::naming::Owner;
use crate::controller::hot_pool::inventory;
use crate::runtime::clock::{self, plus_secs};

/// The longest a pass waits for a deadline (a lease end, a startup timeout) before looking again.
pub const MAX_WAKE: Duration = Duration::from_secs(3600);

/// Condition reason of a version whose launches ECS rejects.
pub const REASON_LAUNCH_REJECTED: &str = "LaunchRejected";

/// Everything a pass read, as the plan needs it.
pub struct PassInput<'a> {
    /// The pool's spec.
    pub spec: &'a HotPoolSpec,
    /// The pool's owner marks (an orphan task is stopped only when it carries them).
    pub owner: &'a Owner,
    /// The pool's workers, fresh from a LIST.
    pub workers: &'a BTreeMap<String, HotPoolWorker>,
    /// DescribeTasks results by task ARN.
    pub tasks: &'a BTreeMap<String, TaskObs>,
    /// The running tasks per cluster, when this pass listed them (the full sweep).
    pub running: Option<&'a BTreeMap<String, BTreeSet<String>>>,
    /// The pool's claims.
    pub claims: &'a [ClaimView],
    /// The task definition ARN per version, where the reference resolved.
    pub current_td: &'a BTreeMap<String, String>,
    /// Launches held back after a recent rejection, by (version, task definition): the message and
    /// the time left.
    pub held: &'a BTreeMap<(String, String), (String, Duration)>,
    /// The inventory as read (with the clusters of every worker's task).
    pub resources: &'a [OwnedResource],
    /// The launch-token tag key.
    pub launch_tag: &'a str,
    /// Most tasks one RunTask starts.
    pub run_task_max: usize,
    /// How long after a launch a task ECS's reads do not show is taken for not shown yet
    /// (`--ecs-read-lag-seconds`).
    pub read_lag: Duration,
    /// The pass's clock.
    pub now: Timestamp,
}

/// One step of a pass.
#[derive(Clone, Debug, PartialEq)]
pub enum PoolStep {
    /// A launch whose task ARN was never recorded found its task: record it.
    Recover { worker: String, task_arn: String, port: Option<i32> },
    /// Repeat RunTask with the launch's own token for workers whose task was never found.
    Relaunch {
        version: String,
        task_definition: String,
        token: String,
        workers: Vec<String>,
        /// Tasks the first call with `token` asked for (every row of the token).
        count: usize,
    },
    /// Remove a worker row that has no task (its version's launches are held back).
    DropWorker { worker: String },
    /// Stop a task of this pool that no worker records.
    StopOrphan { task_arn: String },
    /// The worker's task runs with this IP.
    Ready { worker: String, ip: String, claimed: bool },
    /// The worker's task ended on its own: remove the worker.
    Lost { worker: String, why: String },
    /// The worker did not start in time: stop its task and remove it.
    TimedOut { worker: String, why: String },
    /// A claim let go of the worker.
    Release { worker: String, on_release: OnRelease, why: String },
    /// Bind the claim to an idle worker: the worker names the claim first, then the claim the worker.
    Bind { claim: String, worker: String, reference: WorkerClaimRef },
    /// Any other claim step (complete, cold start, pending, expire, fail, hold, invalid).
    Claim { claim: String, step: ClaimStep },
    /// Stop an idle worker the pool no longer wants.
    StopIdle { worker: String, why: String },
    /// Launch workers of a version: one per slot, reserved for a claim when the slot names one.
    Launch { version: String, task_definition: String, slots: Vec<Option<WorkerClaimRef>> },
}

/// A pass's decisions.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PassPlan {
    /// In the order they are applied.
    pub steps: Vec<PoolStep>,
    /// The inventory once the steps landed (recorded clusters with nothing of ours dropped).
    pub resources: Vec<OwnedResource>,
    /// Problems that keep a version from launching: reason and message.
    pub problems: Vec<(&'static str, String)>,
    /// Earliest moment something is due (a lease end, a startup deadline, a held-back launch).
    pub next: Option<Duration>,
}

impl PassPlan {
    /// Report a problem once.
    pub fn problem(&mut self, reason: &'static str, message: String) {
        if !self.problems.iter().any(|(_, m)| *m == message) {
            self.problems.push((reason, message));
        }
    }

    /// Look again within `d`.
    pub fn due_in(&mut self, d: Duration) {
        self.next = Some(self.next.map_or(d, |n| n.min(d)));
    }
}

/// The workers as the steps planned so far leave them: the observed ones borrowed, copied only
/// once a step changes one (a pool of 500 workers was copied whole on every pass).
type Working<'a> = BTreeMap<&'a str, Cow<'a, HotPoolWorker>>;

/// Decide a whole pass.
pub fn plan_pass(input: &PassInput<'_>) -> PassPlan {
    let spec = input.spec;
    let now = input.now;
    let mut out = PassPlan { resources: input.resources.to_vec(), ..Default::default() };
    let mut workers: Working<'_> = input.workers.iter().map(|(n, w)| (n.as_str(), Cow::Borrowed(w))).collect();

    // Launches whose task ARN was never recorded: found by their token, or launched again with it.
    let unrecorded: Vec<String> =
        workers.iter().filter(|(_, w)| task_arn(w).is_none()).map(|(n, _)| n.to_string()).collect();
    let known: BTreeSet<&str> = input.workers.values().filter_map(task_arn).collect();
    let unknown: BTreeMap<String, TaskObs> = input
        .tasks
        .iter()
        .filter(|(arn, _)| !known.contains(arn.as_str()))
        .map(|(a, o)| (a.clone(), o.clone()))
        .collect();
    let recovered =
        recover_launches(unrecorded.iter().filter_map(|n| input.workers.get(n)), &unknown, input.launch_tag);
    for (name, arn) in &recovered {
        let port = workers.get(name.as_str()).and_then(|w| port_of(spec, &w.spec.version));
        out.steps.push(PoolStep::Recover { worker: name.clone(), task_arn: arn.clone(), port });
        if let Some(w) = workers.get_mut(name.as_str()) {
            let s = w.to_mut().status.get_or_insert_with(Default::default);
            s.phase = Some(WorkerPhase::Starting);
            s.task_arn = Some(arn.clone());
            s.port = port;
        }
    }
    let relaunch: Vec<String> =
        unrecorded.iter().filter(|n| !recovered.iter().any(|(r, _)| r == *n)).cloned().collect();
    plan_relaunches(input, &relaunch, &mut workers, &mut out);

    // Tasks of this pool that no worker knows.
    let adopted: BTreeSet<&str> = recovered.iter().map(|(_, a)| a.as_str()).collect();
    for (arn, o) in &unknown {
        let ours = input.owner.owns(o.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        if !adopted.contains(arn.as_str()) && !o.is_stopped() && ours {
            out.steps.push(PoolStep::StopOrphan { task_arn: arn.clone() });
        }
    }

    // Each recorded worker's step. Not the ones relaunched: their tasks are newer than the task
    // list, so they would look lost (and be deleted, orphaning the tasks).
    let running: Option<BTreeSet<String>> = input.running.map(|m| m.values().flatten().cloned().collect());
    let names: Vec<String> =
        workers.keys().filter(|n| !relaunch.iter().any(|r| r == *n)).map(|n| n.to_string()).collect();
    for name in names {
        let Some(w) = workers.get(name.as_str()) else { continue };
        let obs = task_arn(w).and_then(|a| input.tasks.get(a));
        match step_worker(w, obs, running.as_ref(), spec.startup_timeout_seconds, input.read_lag, now) {
            WorkerStep::Keep => {
                if phase(w) == WorkerPhase::Starting
                    && let Some(started) = w.status.as_ref().and_then(|s| s.started_at.as_ref())
                {
                    let deadline = plus_secs(started.0, i64::from(spec.startup_timeout_seconds));
                    out.due_in(clock::until(now, deadline, MAX_WAKE));
                }
            }
            WorkerStep::Ready(ip) => {
                let claimed = claim_ref(w).is_some();
                out.steps.push(PoolStep::Ready { worker: name.clone(), ip: ip.clone(), claimed });
                if let Some(s) = workers.get_mut(name.as_str()).and_then(|w| w.to_mut().status.as_mut()) {
                    mark_ready(s, ip, claimed, now);
                }
            }
            WorkerStep::Lost(why) => {
                out.steps.push(PoolStep::Lost { worker: name.clone(), why });
                workers.remove(name.as_str());
            }
            WorkerStep::TimedOut => {
                let why = format!(
                    "not RUNNING with an IP within {} s (spec.startupTimeoutSeconds)",
                    spec.startup_timeout_seconds
                );
                out.steps.push(PoolStep::TimedOut { worker: name.clone(), why });
                workers.remove(name.as_str());
            }
        }
    }
    if let Some(per_cluster) = input.running {
        drop_empty_clusters(spec, &workers, per_cluster, &mut out.resources);
    }

    plan_claims_and_launches(input, &workers, &mut out);
    out
}

/// Relaunch the unrecorded workers per (token, version, task definition), or drop their rows when
/// the version's launches are held back.
fn plan_relaunches(input: &PassInput<'_>, relaunch: &[String], workers: &mut Working<'_>, out: &mut PassPlan) {
    let mut groups: BTreeMap<(String, String, String), Vec<String>> = BTreeMap::new();
    for n in relaunch {
        let Some(w) = workers.get(n.as_str()) else { continue };
        let Some(token) = w.spec.launch_token.clone() else { continue };
        groups.entry((token, w.spec.version.clone(), w.spec.task_definition_arn.clone())).or_default().push(n.clone());
    }
    for ((token, version, td), mut group) in groups {
        group.sort();
        if let Some((message, left)) = input.held.get(&(version.clone(), td.clone())) {
            out.problem(REASON_LAUNCH_REJECTED, message.clone());
            out.due_in(*left);
            for name in group {
                workers.remove(name.as_str());
                out.steps.push(PoolStep::DropWorker { worker: name });
            }
            continue;
        }
        // The repeated call must be the first call again: ECS refuses a clientToken reused with
        // other parameters, and `count` was every row of the token, also those launch recovery
        // has paired since (their tasks come back too and are skipped as taken).
        let launched = workers.values().filter(|w| w.spec.launch_token.as_deref() == Some(token.as_str())).count();
        for chunk in group.chunks(input.run_task_max.max(1)) {
            for name in chunk {
                if let Some(w) = workers.get_mut(name.as_str()) {
                    w.to_mut().status.get_or_insert_with(Default::default).phase = Some(WorkerPhase::Starting);
                }
            }
            out.steps.push(PoolStep::Relaunch {
                version: version.clone(),
                task_definition: td.clone(),
                token: token.clone(),
                workers: chunk.to_vec(),
                count: launched.max(chunk.len()),
            });
        }
    }
}

/// Forget the recorded clusters (other than `spec.cluster`) where the sweep found no running task
/// of ours and no worker's task is. Not while a worker's task is unrecorded: it may be in one.
fn drop_empty_clusters(
    spec: &HotPoolSpec,
    workers: &Working<'_>,
    per_cluster: &BTreeMap<String, BTreeSet<String>>,
    resources: &mut Vec<OwnedResource>,
) {
    let mut worker_clusters = BTreeSet::new();
    for w in workers.values() {
        let Some(arn) = task_arn(w) else { return };
        worker_clusters.insert(inventory::cluster_name(inventory::cluster_of(arn, &spec.cluster)).to_string());
    }
    inventory::drop_empty(resources, &spec.cluster, per_cluster, &worker_clusters);
}

/// Releases, each claim's step, idle stops and launches, on the workers the steps before left.
fn plan_claims_and_launches(input: &PassInput<'_>, workers: &Working<'_>, out: &mut PassPlan) {
    let spec = input.spec;
    let now = input.now;
    let mut views: Vec<WorkerView> = workers.values().map(|w| WorkerView::of(w)).collect();
    let by_name: BTreeMap<String, ClaimView> = input.claims.iter().map(|c| (c.name.clone(), c.clone())).collect();
    for r in releases(&views, &by_name, spec.claims.on_release, spec.claims.lease_seconds, now) {
        let (worker, on_release, why) = match r {
            Release::Released { worker, on_release, why } => (worker, on_release, why),
            Release::Unreserve { worker } => (worker, OnRelease::Recycle, "unreserved".to_string()),
        };
        release_view(&mut views, &worker, on_release, now);
        out.steps.push(PoolStep::Release { worker, on_release, why });
    }
    let steps = plan_claims(spec, input.claims, &mut views, input.current_td, now);
    let waiting = waiting_per_version(input.claims, &steps);
    let mut cold: BTreeMap<String, Vec<WorkerClaimRef>> = BTreeMap::new();
    for (name, step) in steps {
        match step {
            ClaimStep::Bind { worker } => {
                let Some(reference) = views.iter().find(|w| w.name == worker).and_then(|w| w.claim.clone()) else {
                    continue;
                };
                out.steps.push(PoolStep::Bind { claim: name, worker, reference });
                continue;
            }
            ClaimStep::ColdStart => {
                if let Some(c) = by_name.get(&name)
                    && input.current_td.contains_key(&c.version)
                {
                    cold.entry(c.version.clone()).or_default().push(WorkerClaimRef {
                        name: c.name.clone(),
                        uid: Some(c.uid.clone()),
                        client: Some(c.client.clone()),
                        since: Time(now),
                        cold_start: true,
                    });
                }
            }
            ClaimStep::Expire { ref worker } => release_view(&mut views, worker, spec.claims.on_release, now),
            ClaimStep::Hold { expires_at: Some(e) } | ClaimStep::Invalid { expires_at: Some(e), .. } => {
                out.due_in(clock::until(now, e, MAX_WAKE));
            }
            _ => {}
        }
        out.steps.push(PoolStep::Claim { claim: name, step });
    }

    let stops = idle_stops(spec, &views, input.current_td, &waiting, now);
    let stopping: BTreeSet<String> = stops.iter().map(|(n, _)| n.clone()).collect();
    for (worker, why) in stops {
        out.steps.push(PoolStep::StopIdle { worker, why });
    }

    let mut slots: BTreeMap<String, Vec<Option<WorkerClaimRef>>> =
        cold.into_iter().map(|(v, refs)| (v, refs.into_iter().map(Some).collect())).collect();
    for (version, n) in pool_deficits(spec, &views, input.current_td, &waiting, &stopping) {
        slots.entry(version).or_default().extend(std::iter::repeat_n(None, n));
    }
    for (version, wanted) in slots {
        let Some(td) = input.current_td.get(&version) else { continue };
        if let Some((message, left)) = input.held.get(&(version.clone(), td.clone())) {
            out.problem(REASON_LAUNCH_REJECTED, message.clone());
            out.due_in(*left);
            continue;
        }
        for batch in wanted.chunks(input.run_task_max.max(1)) {
            out.steps.push(PoolStep::Launch {
                version: version.clone(),
                task_definition: td.clone(),
                slots: batch.to_vec(),
            });
        }
    }
}

/// What a release does to a worker: a reserved worker that never started joins the pool; otherwise
/// `Recycle` returns it to Available and `Stop` removes it.
fn release_view(views: &mut Vec<WorkerView>, worker: &str, on_release: OnRelease, now: Timestamp) {
    let Some(i) = views.iter().position(|w| w.name == worker) else { return };
    match (views[i].phase, on_release) {
        (WorkerPhase::Starting, _) => views[i].claim = None,
        (_, OnRelease::Recycle) => {
            let w = &mut views[i];
            w.claim = None;
            w.phase = WorkerPhase::Available;
            w.available_since = Some(now);
        }
        (_, OnRelease::Stop) => {
            views.remove(i);
        }
    }
}

/// What [`PoolStep::Ready`] writes on the worker (the plan's copy and apply's write alike): its IP,
/// and Claimed when a claim reserved it, else Available from `now`.
pub fn mark_ready(s: &mut HotPoolWorkerStatus, ip: String, claimed: bool, now: Timestamp) {
    s.ip = Some(ip);
    if claimed {
        s.phase = Some(WorkerPhase::Claimed);
    } else {
        s.phase = Some(WorkerPhase::Available);
        s.available_since = Some(MicroTime(now));
    }
}

/// The port a version's workers listen on.
pub fn port_of(spec: &HotPoolSpec, version: &str) -> Option<i32> {
    spec.versions.iter().find(|v| v.version == version).map(|v| v.port)
}

#[cfg(test)]
mod tests;
