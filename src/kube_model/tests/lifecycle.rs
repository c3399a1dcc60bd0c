//! Finalizers (through kube-runtime's finalizer helper) and garbage collection by owner references.

use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{self, Event};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use super::*;
use crate::kube_model::KubeModel;

const FINALIZER: &str = "fargate.operator.dev/test-cleanup";

/// One pass of kube-runtime's finalizer helper over the stored claim; returns what it reconciled
/// ("apply" or "cleanup", or nothing when it only changed the finalizers).
async fn pass(api: &Api<HotPoolClaim>, obj: HotPoolClaim) -> Result<Vec<&'static str>, String> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = Arc::clone(&seen);
    finalizer::finalizer(api, FINALIZER, Arc::new(obj), |event| async move {
        s.lock().expect("lock").push(match event {
            Event::Apply(_) => "apply",
            Event::Cleanup(_) => "cleanup",
        });
        Ok::<_, std::io::Error>(Action::await_change())
    })
    .await
    .map_err(|e| format!("{e:?}"))?;
    let seen = seen.lock().expect("lock").clone();
    Ok(seen)
}

#[tokio::test(start_paused = true)]
async fn finalizer_helper_end_to_end() {
    let model = KubeModel::new();
    let api: Api<HotPoolClaim> = Api::namespaced(model.client(), NS);
    let fresh = create(&api, &claim("c1", "pool1")).await;

    // First pass: the finalizer is added (a JSON patch testing that there were none), nothing reconciled.
    assert_eq!(pass(&api, fresh.clone()).await, Ok(vec![]));
    let obj = api.get("c1").await.expect("get");
    assert_eq!(obj.finalizers(), [FINALIZER]);

    // A pass from the stale copy (no finalizers) fails: its `test` op no longer holds (422).
    let err = pass(&api, fresh).await.expect_err("stale add");
    assert!(err.contains("AddFinalizer") && err.contains("422"), "{err}");

    // Second pass: the object is reconciled.
    assert_eq!(pass(&api, obj).await, Ok(vec!["apply"]));

    // Delete: the finalizer holds it, with a deletionTimestamp.
    let deleting = api.delete("c1", &DeleteParams::default()).await.expect("delete");
    let deleting = deleting.left().expect("still there while the finalizer holds it");
    let stamp = deleting.meta().deletion_timestamp.clone().expect("deletionTimestamp");
    assert_eq!(deleting.meta().deletion_grace_period_seconds, Some(0));
    // A second delete keeps the first timestamp.
    tokio::time::advance(std::time::Duration::from_secs(5)).await;
    let again = api.delete("c1", &DeleteParams::default()).await.expect("delete again").left().expect("object");
    assert_eq!(again.meta().deletion_timestamp, Some(stamp));
    assert_eq!(model.len(), 1);

    // No new finalizer may be added while deleting.
    let add = json!({ "metadata": { "finalizers": [FINALIZER, "other/one"] } });
    assert_eq!(api_error(api.patch("c1", &PatchParams::default(), &Patch::Merge(&add)).await).code, 422);

    // Third pass: cleanup, then the finalizer is removed and the object is gone.
    let obj = api.get("c1").await.expect("get");
    assert_eq!(pass(&api, obj).await, Ok(vec!["cleanup"]));
    assert_eq!(api_error(api.get("c1").await).code, 404);
    assert_eq!(model.len(), 0);
}

#[tokio::test(start_paused = true)]
async fn garbage_collection_follows_owner_references() {
    let model = KubeModel::new();
    let client = model.client();
    let pools: Api<HotPool> = Api::namespaced(client.clone(), NS);
    let workers: Api<HotPoolWorker> = Api::namespaced(client.clone(), NS);
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    let pool1 = create(&pools, &pool("pool1")).await;
    let pool2 = create(&pools, &pool("pool2")).await;

    let w1 = create(&workers, &worker("w1", &pool1)).await;
    let mut held = worker("w2", &pool1);
    held.metadata.finalizers = Some(vec![FINALIZER.into()]);
    create(&workers, &held).await;
    // Owned by both pools: pool2 still exists, so it stays.
    let mut shared = worker("w3", &pool1);
    let mut owner2 = pool2.controller_owner_ref(&()).expect("uid");
    owner2.controller = None;
    shared.metadata.owner_references.get_or_insert_with(Vec::new).push(owner2);
    create(&workers, &shared).await;
    // Owned by pool2 only.
    create(&workers, &worker("w4", &pool2)).await;
    // Owned by w1: collected in turn (recursively).
    let mut grandchild = config_map("of-w1", &[]);
    grandchild.metadata.owner_references = Some(vec![w1.controller_owner_ref(&()).expect("uid")]);
    create(&maps, &grandchild).await;
    assert_eq!(model.len(), 7);

    pools.delete("pool1", &DeleteParams::default()).await.expect("delete pool1");
    assert_eq!(api_error(workers.get("w1").await).code, 404);
    assert_eq!(api_error(maps.get("of-w1").await).code, 404);
    let w2 = workers.get("w2").await.expect("held by its finalizer");
    assert!(w2.meta().deletion_timestamp.is_some());
    assert!(workers.get("w3").await.is_ok(), "pool2 still owns w3");
    assert!(workers.get("w4").await.is_ok());

    // Removing the finalizer lets w2 go.
    let remove = json!({ "metadata": { "finalizers": null } });
    workers.patch("w2", &PatchParams::default(), &Patch::Merge(&remove)).await.expect("remove finalizer");
    assert_eq!(api_error(workers.get("w2").await).code, 404);

    // Deleting pool2 now collects w3 and w4.
    pools.delete("pool2", &DeleteParams::default()).await.expect("delete pool2");
    assert_eq!(model.len(), 0);
}

#[tokio::test]
async fn garbage_collection_can_be_turned_off() {
    let model = KubeModel::new();
    model.set_garbage_collection(false);
    let client = model.client();
    let pools: Api<HotPool> = Api::namespaced(client.clone(), NS);
    let workers: Api<HotPoolWorker> = Api::namespaced(client.clone(), NS);
    let pool1 = create(&pools, &pool("pool1")).await;
    create(&workers, &worker("w1", &pool1)).await;
    pools.delete("pool1", &DeleteParams::default()).await.expect("delete pool1");
    assert!(workers.get("w1").await.is_ok(), "no collector: the orphan stays");
    model.set_garbage_collection(true);
    let pool2 = create(&pools, &pool("pool2")).await;
    create(&workers, &worker("w2", &pool2)).await;
    pools.delete("pool2", &DeleteParams::default()).await.expect("delete pool2");
    assert_eq!(api_error(workers.get("w2").await).code, 404);
    assert!(workers.get("w1").await.is_ok(), "only removals after it is back on collect");
}
