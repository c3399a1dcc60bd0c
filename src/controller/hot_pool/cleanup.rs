//! Deleting a pool: stop every task it launched (unless `policy.deletion: Retain`), found by
//! `startedBy` in every cluster of the inventory and in `spec.cluster`, and through its workers
//! (each task in the cluster its ARN names), then tell its claims (`PoolDeleted`) and remove its
//! workers. A cluster that is gone has no tasks left to stop.

use std::collections::BTreeSet;
use std::sync::Arc;

use kube::api::{Api, DeleteParams, ListParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};

use super::{inventory, owner, plan, pool_aws};
use crate::api::DeletionPolicy;
use crate::api::hot_pool::{HotPool, HotPoolClaim, HotPoolWorker, POOL_LABEL};
use crate::aws::AwsError;
use crate::controller::{ReconcileError, record_deletion_blocked, write_status};
use crate::runtime::Context;

/// Deleting the pool: stop every task it launched (unless `policy.deletion: Retain`) and remove
/// its workers.
pub(super) async fn cleanup(_api: &Api<HotPool>, pool: Arc<HotPool>, ctx: &Context) -> Result<Action, ReconcileError> {
    let owner = owner(ctx, &pool)?;
    let workers_api: Api<HotPoolWorker> = Api::namespaced(ctx.client.clone(), &owner.namespace);
    let lp = ListParams::default().labels(&format!("{POOL_LABEL}={}", pool.name_any()));
    let workers: Vec<HotPoolWorker> = workers_api
        .list(&lp)
        .await?
        .items
        .into_iter()
        .filter(|w| w.owner_references().iter().any(|o| o.uid == owner.uid))
        .collect();
    if pool.spec.policy.deletion != DeletionPolicy::Retain {
        let aws = pool_aws(ctx, &pool).await;
        let mut arns: BTreeSet<String> = workers.iter().filter_map(plan::task_arn).map(str::to_string).collect();
        let mut listed = BTreeSet::new();
        let started_by = plan::started_by(&owner.uid);
        let resources = pool.status.as_ref().map(|s| s.resources.as_slice()).unwrap_or_default();
        for cluster in inventory::clusters_to_search(resources, &pool.spec.cluster) {
            match aws.running_task_arns(cluster, &started_by).await {
                Ok(running) => listed.extend(running),
                // The cluster is gone, and every task in it: nothing is left to stop there (StopTask
                // of a worker's task in it finds no cluster, which counts as stopped).
                Err(e) if e.is_not_found() => {
                    tracing::info!(pool = %pool.name_any(), cluster, error = %e, "cluster is gone; no task to stop there");
                }
                Err(e) => return Err(cleanup_error(ctx, &pool, e).await),
            }
        }
        arns.extend(listed.iter().cloned());
        tracing::debug!(pool = %pool.name_any(), workers = workers.len(), tasks = ?arns, "deleting the pool: stopping its tasks");
        let mut unknown = BTreeSet::new();
        for arn in &arns {
            match aws.stop_task_if_known(arn, "fargate-operator: HotPool deleted").await {
                Ok(true) => {}
                Ok(false) => {
                    unknown.insert(arn.clone());
                }
                Err(e) => return Err(cleanup_error(ctx, &pool, e).await),
            }
        }
        // ECS's reads lag its launches by seconds: a task StopTask does not know yet, or one
        // ListTasks does not show yet, is not gone (found by the simulator). The deletion waits
        // and stops it on a later attempt.
        let read_lag = ctx.config.ecs_read_lag();
        let in_flight = ctx.config.retry().longest_call();
        let unknown =
            plan::deletion_waits_for(&workers, &unknown, &listed, read_lag, in_flight, crate::runtime::clock::now());
        if unknown > 0 {
            let e = AwsError {
                service: "ecs",
                operation: "StopTask",
                category: crate::aws::ErrorCategory::Conflict,
                code: "TaskNotYetKnown".into(),
                message: format!(
                    "{unknown} task(s) launched moments ago are not known to StopTask yet (ECS's reads lag by up to {}s); retrying so they are stopped",
                    read_lag.as_secs()
                ),
            };
            return Err(cleanup_error(ctx, &pool, e).await);
        }
        if !arns.is_empty() {
            ctx.events.normal(pool.as_ref(), "Deleted", "StopTask", format!("stopped {} task(s)", arns.len())).await;
        }
    }
    // The pool owns its claims' status while it exists: tell them before it goes, since no
    // event of their own would (a Bound claim would otherwise stay Ready for a stopped task).
    let claims_api: Api<HotPoolClaim> = Api::namespaced(ctx.client.clone(), &owner.namespace);
    for claim in claims_api.list(&ListParams::default()).await?.items.iter().filter(|c| c.spec.pool == pool.name_any())
    {
        if let Some(new) = super::claim::pool_gone_status(claim, &owner.namespace) {
            match super::claim::put_status(&claims_api, claim, new, ctx).await {
                Ok(_) => {}
                // Released (deleted) meanwhile: nothing to tell.
                Err(ReconcileError::Kube(kube::Error::Api(e))) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
    }
    for w in &workers {
        match workers_api.delete(&w.name_any(), &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    // A pass that had not seen the deletion may have written workers meanwhile, its RunTask
    // (fenced by a fresh read of the pool, `launch::fence`) about to start their tasks: the
    // cleanup starts over, stopping them, until no worker appeared while it ran.
    let listed: BTreeSet<String> = workers.iter().map(ResourceExt::name_any).collect();
    let appeared = workers_api
        .list(&lp)
        .await?
        .items
        .into_iter()
        .filter(|w| w.owner_references().iter().any(|o| o.uid == owner.uid) && !listed.contains(&w.name_any()))
        .count();
    if appeared > 0 {
        return Err(ReconcileError::RacedDeletion(format!(
            "{appeared} worker(s) of HotPool {} were written while its deletion ran; deleting again",
            pool.name_any()
        )));
    }
    Ok(Action::await_change())
}

async fn cleanup_error(ctx: &Context, pool: &HotPool, e: AwsError) -> ReconcileError {
    let mut status = pool.status.clone().unwrap_or_default();
    record_deletion_blocked(&mut status, &e, pool.meta().generation);
    if let Some(ns) = pool.namespace() {
        let api: Api<HotPool> = Api::namespaced(ctx.client.clone(), &ns);
        if let Err(err) = write_status(&api, pool, &status, ctx).await {
            tracing::warn!(%err, "could not record DeletionBlocked");
        }
    }
    ReconcileError::Aws(e)
}
