//! The HotPool's ownership inventory (`status.resources`): one `Tasks` entry per ECS cluster the
//! pool has started tasks in, `{type: Tasks, id: <cluster as spec.cluster named it>, name: <startedBy>}`,
//! meaning "the ECS tasks this pool started in that cluster, found by ListTasks startedBy". A pass
//! records `spec.cluster` before its first RunTask there, and the cluster of every task a worker
//! records (so pools launched before the inventory existed are covered). The status is written at the
//! end of every pass, also one that failed.
//!
//! Task ARNs name their cluster (`arn:aws:ecs:<region>:<account>:task/<cluster>/<id>`), so a task
//! is described and stopped in its own cluster, whatever `spec.cluster` says now.

use std::collections::{BTreeMap, BTreeSet};

use crate::api::OwnedResource;
use crate::controller::inventory::{add, remove};

/// `type` of the entry of one cluster's tasks (id: the cluster, name: `startedBy`).
pub const TASKS: &str = "Tasks";

/// The name of a cluster given by name or ARN (`arn:aws:ecs:<region>:<account>:cluster/<name>`).
pub fn cluster_name(cluster: &str) -> &str {
    cluster.split_once(":cluster/").map_or(cluster, |(_, name)| name)
}

/// The cluster name in a task ARN; `None` for the old format without one
/// (`arn:aws:ecs:<region>:<account>:task/<id>`).
pub fn task_cluster(task_arn: &str) -> Option<&str> {
    let (_, path) = task_arn.split_once(":task/")?;
    path.split_once('/').map(|(cluster, _)| cluster).filter(|c| !c.is_empty())
}

/// The cluster a task is in: its ARN's, or `fallback` (spec.cluster) for an old-format ARN.
pub fn cluster_of<'a>(task_arn: &'a str, fallback: &'a str) -> &'a str {
    task_cluster(task_arn).unwrap_or(fallback)
}

/// Whether two cluster references (names or ARNs) are the same cluster.
pub fn same_cluster(a: &str, b: &str) -> bool {
    cluster_name(a) == cluster_name(b)
}

/// Record `cluster`'s tasks unless an entry names that cluster already (by name or ARN). Returns
/// whether the entry is new.
pub fn record(resources: &mut Vec<OwnedResource>, cluster: &str, started_by: &str) -> bool {
    if clusters(resources).iter().any(|c| same_cluster(c, cluster)) {
        return false;
    }
    add(
        resources,
        OwnedResource { type_: TASKS.into(), id: cluster.into(), parent: None, name: Some(started_by.into()) },
    );
    true
}

/// The recorded clusters, as they were named when recorded.
pub fn clusters(resources: &[OwnedResource]) -> Vec<&str> {
    resources.iter().filter(|r| r.type_ == TASKS).map(|r| r.id.as_str()).collect()
}

/// Every cluster the pool may have tasks in: `spec_cluster` first, then the recorded ones (each
/// cluster once).
pub fn clusters_to_search<'a>(resources: &'a [OwnedResource], spec_cluster: &'a str) -> Vec<&'a str> {
    let mut out = vec![spec_cluster];
    for c in clusters(resources) {
        if !out.iter().any(|o| same_cluster(o, c)) {
            out.push(c);
        }
    }
    out
}

/// Drop the entries of clusters other than `spec_cluster` that have nothing of ours left: ListTasks
/// `startedBy` found no running task there (`running`, by the cluster as searched; a cluster that
/// is gone counts as empty) and no worker's task is there (`worker_clusters`, by name). A cluster
/// that was not searched is kept. Returns the ids dropped.
pub fn drop_empty(
    resources: &mut Vec<OwnedResource>,
    spec_cluster: &str,
    running: &BTreeMap<String, BTreeSet<String>>,
    worker_clusters: &BTreeSet<String>,
) -> Vec<String> {
    let empty: Vec<String> = clusters(resources)
        .into_iter()
        .filter(|c| !same_cluster(c, spec_cluster))
        .filter(|c| running.iter().any(|(searched, arns)| same_cluster(searched, c) && arns.is_empty()))
        .filter(|c| !worker_clusters.contains(cluster_name(c)))
        .map(str::to_string)
        .collect();
    for id in &empty {
        remove(resources, TASKS, id);
    }
    empty
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEW: &str = "arn:aws:ecs:us-east-1:123456789012:task/workers/0123456789abcdef";
    const OLD: &str = "arn:aws:ecs:us-east-1:123456789012:task/0123456789abcdef";

    #[test]
    fn a_task_arn_names_its_cluster_unless_it_is_of_the_old_format() {
        assert_eq!(task_cluster(NEW), Some("workers"));
        assert_eq!(task_cluster(OLD), None);
        assert_eq!(task_cluster("garbage"), None);
        assert_eq!(cluster_of(NEW, "other"), "workers");
        assert_eq!(cluster_of(OLD, "other"), "other");
        assert_eq!(cluster_name("arn:aws:ecs:us-east-1:123456789012:cluster/workers"), "workers");
        assert_eq!(cluster_name("workers"), "workers");
        assert!(same_cluster("arn:aws:ecs:us-east-1:123456789012:cluster/workers", "workers"));
    }

    #[test]
    fn each_cluster_is_recorded_once_by_name_or_arn() {
        let mut r = Vec::new();
        record(&mut r, "arn:aws:ecs:us-east-1:123456789012:cluster/workers", "hotpool-x");
        record(&mut r, "workers", "hotpool-x");
        record(&mut r, "spare", "hotpool-x");
        assert_eq!(clusters(&r), ["arn:aws:ecs:us-east-1:123456789012:cluster/workers", "spare"]);
        assert_eq!(r[0].name.as_deref(), Some("hotpool-x"));
        assert_eq!(r[0].type_, TASKS);
        assert_eq!(clusters_to_search(&r, "spare"), ["spare", "arn:aws:ecs:us-east-1:123456789012:cluster/workers"]);
    }

    #[test]
    fn only_a_searched_empty_cluster_no_worker_is_in_and_not_the_spec_cluster_is_dropped() {
        let mut r = Vec::new();
        for c in ["old", "older", "unsearched", "workers"] {
            record(&mut r, c, "hotpool-x");
        }
        let running: BTreeMap<String, BTreeSet<String>> = [
            ("old".to_string(), BTreeSet::new()),
            ("older".to_string(), BTreeSet::new()),
            ("workers".to_string(), BTreeSet::new()),
        ]
        .into();
        let with_workers: BTreeSet<String> = ["older".to_string()].into();
        assert_eq!(drop_empty(&mut r, "workers", &running, &with_workers), ["old"]);
        assert_eq!(clusters(&r), ["older", "unsearched", "workers"]);
        let running: BTreeMap<String, BTreeSet<String>> = [("older".to_string(), ["t".to_string()].into())].into();
        assert!(drop_empty(&mut r, "workers", &running, &BTreeSet::new()).is_empty(), "a task runs there");
    }
}
