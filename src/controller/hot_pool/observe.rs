//! What one pool pass reads before it plans: the task definition each version resolves to, the
//! pool's workers (a fresh LIST, so a worker written a moment ago is never counted as missing and
//! launched twice), its tasks, its claims (from the claim store, read after the LIST: a binding
//! this process made was planned from a claim already in the store, so a listed worker naming it
//! never finds its claim missing and released) and the launches held back after a rejection. Copies
//! of workers and claims that a bind of this process wrote over after they were read are replaced
//! with what it wrote (`Ledger::overlay`).
//!
//! Tasks: those of Starting workers are described every pass. The full sweep (when a worker's task
//! is unrecorded, else every `replenishIntervalSeconds`) also lists the pool's running tasks
//! (ListTasks `startedBy`) in `spec.cluster` and in every cluster of the inventory, so tasks left in
//! a cluster `spec.cluster` no longer names are still seen, and describes every task that only one
//! of the list and the workers knows.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use crate::runtime::clock::Instant;

use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams};
use kube::{Resource, ResourceExt};

use super::aws::PoolAws;
use super::plan::{self, TaskObs};
use super::{Shared, inventory, launch};
use crate::api::OwnedResource;
use crate::api::hot_pool::{HotPool, HotPoolClaim, HotPoolStatus, HotPoolWorker, POOL_LABEL, WorkerPhase};
use crate::aws::AwsError;
use crate::aws::naming::Owner;
use crate::controller::ReconcileError;

/// Everything a pool pass read.
pub struct Observed {
    /// The pass's clock.
    pub now: Timestamp,
    /// The task definition ARN per version, where the reference resolved.
    pub current_td: BTreeMap<String, String>,
    /// Versions whose reference did not resolve: reason and message.
    pub problems: Vec<(&'static str, String)>,
    /// The pool's workers by name.
    pub workers: BTreeMap<String, HotPoolWorker>,
    /// The inventory as read, with the cluster of every worker's task.
    pub resources: Vec<OwnedResource>,
    /// The running tasks per cluster, when this pass swept.
    pub running: Option<BTreeMap<String, BTreeSet<String>>>,
    /// DescribeTasks results.
    pub tasks: BTreeMap<String, TaskObs>,
    /// The pool's claims.
    pub claims: Vec<Arc<HotPoolClaim>>,
    /// Launches held back after a rejection, by (version, task definition).
    pub held: BTreeMap<(String, String), (String, Duration)>,
    /// `spec.cluster` does not exist: nothing else was read.
    pub cluster_missing: bool,
    /// When the workers were listed (a bind of this process that touched a worker since is one the
    /// LIST may not show).
    pub listed_at: Instant,
}

/// Read everything a pass of `pool` plans from.
pub async fn observe(
    pool: &HotPool,
    old: &HotPoolStatus,
    aws: &PoolAws,
    owner: &Owner,
    shared: &Shared,
    workers_api: &Api<HotPoolWorker>,
) -> Result<Observed, ReconcileError> {
    let now = crate::runtime::clock::now();
    let (current_td, problems) = resolve_task_definitions(pool, old, aws).await?;
    let listed_at = Instant::now();
    let mut workers = list_workers(pool, owner, workers_api).await?;
    let mut resources = old.resources.clone();
    // Pools launched before the inventory existed get their entries this way, and so does a
    // cluster whose entry a crash kept from being written.
    for w in workers.values() {
        if let Some(arn) = plan::task_arn(w) {
            inventory::record(
                &mut resources,
                inventory::cluster_of(arn, &pool.spec.cluster),
                &plan::started_by(&owner.uid),
            );
        }
    }
    let key = format!("{}/{}", owner.namespace, pool.name_any());
    let every = Duration::from_secs(u64::try_from(pool.spec.replenish_interval_seconds).unwrap_or(30));
    let full = workers.values().any(|w| plan::task_arn(w).is_none()) || shared.sweep_due(&key, every);
    let (running, tasks) = match read_tasks(pool, aws, owner, &workers, &resources, full).await {
        Ok(read) => read,
        Err(e) if e.code == "ClusterNotFoundException" => {
            return Ok(Observed {
                now,
                current_td,
                problems,
                workers,
                resources,
                running: None,
                tasks: BTreeMap::new(),
                claims: Vec::new(),
                held: BTreeMap::new(),
                cluster_missing: true,
                listed_at,
            });
        }
        Err(e) => return Err(e.into()),
    };
    if full {
        shared.swept(&key);
    }
    let mut claims: Vec<Arc<HotPoolClaim>> = shared
        .stores
        .claims
        .state()
        .into_iter()
        .filter(|c| c.namespace().as_deref() == Some(owner.namespace.as_str()) && c.spec.pool == pool.name_any())
        .collect();
    shared.ledger.overlay(&mut workers, &mut claims);
    let mut held = BTreeMap::new();
    let launches = current_td.iter().map(|(v, td)| (v.clone(), td.clone()));
    let relaunches = workers.values().map(|w| (w.spec.version.clone(), w.spec.task_definition_arn.clone()));
    for (version, td) in launches.chain(relaunches) {
        let key = launch::rejection_key(pool, &version, &td);
        if let Some(blocked) = shared.rejections.blocked(&key, Instant::now()) {
            held.insert((version, td), blocked);
        }
    }
    Ok(Observed {
        now,
        current_td,
        problems,
        workers,
        resources,
        running,
        tasks,
        claims,
        held,
        cluster_missing: false,
        listed_at,
    })
}

type ResolvedTaskDefinitions = (BTreeMap<String, String>, Vec<(&'static str, String)>);

/// The task definition ARN of every version, from status when the reference still matches.
async fn resolve_task_definitions(
    pool: &HotPool,
    old: &HotPoolStatus,
    aws: &PoolAws,
) -> Result<ResolvedTaskDefinitions, AwsError> {
    let same_generation = old.observed_generation == pool.meta().generation;
    let mut out = BTreeMap::new();
    let mut problems = Vec::new();
    for (i, v) in pool.spec.versions.iter().enumerate() {
        let cached = old
            .versions
            .iter()
            .find(|s| s.version == v.version)
            .and_then(|s| s.task_definition_arn.clone())
            .filter(|arn| reference_matches(&v.task_definition, arn, same_generation));
        let arn = match cached {
            Some(a) => Some(a),
            None => aws.task_definition_arn(&v.task_definition).await?,
        };
        match arn {
            Some(a) => {
                out.insert(v.version.clone(), a);
            }
            None => problems.push((
                "TaskDefinitionNotFound",
                format!(
                    "spec.versions[{i}].taskDefinition: {:?} is not a registered task definition; register it or fix the reference",
                    v.task_definition
                ),
            )),
        }
    }
    Ok((out, problems))
}

/// True when a cached task definition ARN still answers the spec's reference. A bare family
/// (latest revision) is resolved again whenever the spec changes.
fn reference_matches(reference: &str, arn: &str, same_generation: bool) -> bool {
    if reference.starts_with("arn:") {
        return reference == arn;
    }
    let tail = arn.rsplit_once("task-definition/").map(|(_, t)| t).unwrap_or_default();
    if reference.contains(':') {
        tail == reference
    } else {
        same_generation && tail.split(':').next() == Some(reference)
    }
}

/// Workers listed per request: the pass keeps slim copies, so what it holds at once in full
/// (with `managedFields`, about half of a worker as the apiserver returns it) is one page.
const WORKERS_PAGE: u32 = 250;

/// The pool's workers as the apiserver has them now, slimmed ([`crate::controller::slim`]).
async fn list_workers(
    pool: &HotPool,
    owner: &Owner,
    api: &Api<HotPoolWorker>,
) -> Result<BTreeMap<String, HotPoolWorker>, ReconcileError> {
    let first = ListParams::default().labels(&format!("{POOL_LABEL}={}", pool.name_any())).limit(WORKERS_PAGE);
    let (mut lp, mut restarted) = (first.clone(), false);
    let mut workers = BTreeMap::new();
    loop {
        let page = match api.list(&lp).await {
            // The continue token expired (410 Gone, after the apiserver's compaction): once, the
            // listing starts over, from a new snapshot.
            Err(kube::Error::Api(e)) if e.code == 410 && lp.continue_token.is_some() && !restarted => {
                (lp, restarted) = (first.clone(), true);
                workers.clear();
                continue;
            }
            page => page?,
        };
        for mut w in page.items {
            if w.owner_references().iter().any(|o| o.uid == owner.uid) {
                crate::controller::slim::slim(&mut w);
                workers.insert(w.name_any(), w);
            }
        }
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => lp = lp.continue_token(&token),
            None => return Ok(workers),
        }
    }
}

type TaskReadings = (Option<BTreeMap<String, BTreeSet<String>>>, BTreeMap<String, TaskObs>);

/// The running tasks per cluster (when `full`), and the description of every task of a Starting
/// worker and of every task only one of the list and the workers knows.
async fn read_tasks(
    pool: &HotPool,
    aws: &PoolAws,
    owner: &Owner,
    workers: &BTreeMap<String, HotPoolWorker>,
    resources: &[OwnedResource],
    full: bool,
) -> Result<TaskReadings, AwsError> {
    let per_cluster = if full { Some(list_running(pool, aws, owner, resources).await?) } else { None };
    let known: BTreeSet<String> = workers.values().filter_map(plan::task_arn).map(str::to_string).collect();
    let mut describe: BTreeSet<String> = workers
        .values()
        .filter(|w| plan::phase(w) == WorkerPhase::Starting)
        .filter_map(plan::task_arn)
        .map(str::to_string)
        .collect();
    if let Some(m) = &per_cluster {
        let running: BTreeSet<String> = m.values().flatten().cloned().collect();
        describe.extend(known.difference(&running).cloned());
        describe.extend(running.difference(&known).cloned());
    }
    let tasks = if describe.is_empty() {
        BTreeMap::new()
    } else {
        aws.describe_tasks(&describe.into_iter().collect::<Vec<_>>()).await?
    };
    Ok((per_cluster, tasks))
}

/// The pool's running tasks in `spec.cluster` and in every recorded cluster, by cluster. A recorded
/// cluster that is gone has none; `spec.cluster` gone is an error (the pool reports it).
async fn list_running(
    pool: &HotPool,
    aws: &PoolAws,
    owner: &Owner,
    resources: &[OwnedResource],
) -> Result<BTreeMap<String, BTreeSet<String>>, AwsError> {
    let started_by = plan::started_by(&owner.uid);
    let mut out = BTreeMap::new();
    for cluster in inventory::clusters_to_search(resources, &pool.spec.cluster) {
        let arns = match aws.running_task_arns(cluster, &started_by).await {
            Ok(a) => a,
            Err(e) if e.is_not_found() && !inventory::same_cluster(cluster, &pool.spec.cluster) => BTreeSet::new(),
            Err(e) => return Err(e),
        };
        out.insert(cluster.to_string(), arns);
    }
    Ok(out)
}
