//! The status subresource, generation, and the patch kinds (merge, JSON, server-side apply).

use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use super::*;
use crate::api::HotPoolClaimStatus;
use crate::api::hot_pool::ClaimPhase;
use crate::kube_model::KubeModel;

const MANAGER: &str = "fargate-operator";

#[tokio::test(start_paused = true)]
async fn status_subresource_and_generation() {
    let model = KubeModel::new();
    let api: Api<HotPoolClaim> = Api::namespaced(model.client(), NS);

    // Status sent with a create is dropped.
    let mut c = claim("c1", "pool1");
    c.status = Some(HotPoolClaimStatus { phase: Some(ClaimPhase::Bound), ..Default::default() });
    let created = create(&api, &c).await;
    assert_eq!(created.status, None);

    // Apply to /status (forced, with a field manager) writes only the status.
    let pp = PatchParams::apply(MANAGER).force();
    let status = json!({
        "apiVersion": "fargate.operator.dev/v1alpha1", "kind": "HotPoolClaim",
        "spec": { "pool": "changed", "version": "v9", "client": "x" },
        "status": { "phase": "Pending", "observedGeneration": 1, "worker": "w1" },
    });
    let applied = api.patch_status("c1", &pp, &Patch::Apply(&status)).await.expect("apply status");
    let st = applied.status.clone().expect("status");
    assert_eq!(
        (st.phase, st.observed_generation, st.worker.as_deref()),
        (Some(ClaimPhase::Pending), Some(1), Some("w1"))
    );
    assert_eq!(applied.spec, created.spec, "a status write leaves the spec");
    assert_eq!(applied.meta().generation, Some(1));
    assert!(applied.resource_version() > created.resource_version());

    // The applied status replaces the stored one: a field no longer sent disappears.
    let status = json!({ "apiVersion": "fargate.operator.dev/v1alpha1", "kind": "HotPoolClaim",
                         "status": { "phase": "Pending", "observedGeneration": 1 } });
    let applied = api.patch_status("c1", &pp, &Patch::Apply(&status)).await.expect("apply status");
    assert_eq!(applied.status.as_ref().and_then(|s| s.worker.clone()), None);

    // The same apply again changes nothing: no new resourceVersion.
    let again = api.patch_status("c1", &pp, &Patch::Apply(&status)).await.expect("apply status again");
    assert_eq!(again.resource_version(), applied.resource_version());

    // replace_status changes only the status.
    let mut obj = again.clone();
    obj.spec.client = "someone-else".into();
    obj.status = Some(HotPoolClaimStatus { phase: Some(ClaimPhase::Bound), ..Default::default() });
    let replaced = api.replace_status("c1", &PostParams::default(), &obj).await.expect("replace status");
    assert_eq!(replaced.status.as_ref().and_then(|s| s.phase), Some(ClaimPhase::Bound));
    assert_eq!(replaced.spec.client, "client-1");
    // ... and is refused from a stale resourceVersion, or without one (custom resources refuse
    // unconditional updates).
    assert_eq!(api_error(api.replace_status("c1", &PostParams::default(), &obj).await).code, 409);
    obj.metadata.resource_version = None;
    assert_eq!(api_error(api.replace_status("c1", &PostParams::default(), &obj).await).code, 422);
    assert_eq!(api_error(api.replace("c1", &PostParams::default(), &obj).await).code, 422);

    // A spec patch bumps generation and leaves the status, even when the patch sends one.
    let patch = json!({ "spec": { "client": "client-2" }, "status": { "phase": "Failed" } });
    let patched = api.patch("c1", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("merge patch");
    assert_eq!(patched.meta().generation, Some(2));
    assert_eq!(patched.spec.client, "client-2");
    assert_eq!(patched.status, replaced.status);

    // A replace of the main resource keeps the stored status too; a metadata-only change keeps generation.
    let mut obj = patched.clone();
    obj.status = None;
    obj.metadata.labels = Some([("a".to_string(), "b".to_string())].into());
    let replaced = api.replace("c1", &PostParams::default(), &obj).await.expect("replace");
    assert_eq!(replaced.status, patched.status);
    assert_eq!(replaced.meta().generation, Some(2));

    // A merge patch carrying a stale resourceVersion conflicts.
    let patch = json!({ "metadata": { "resourceVersion": created.resource_version() }, "spec": { "client": "c3" } });
    let err = api_error(api.patch("c1", &PatchParams::default(), &Patch::Merge(&patch)).await);
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));

    // A strategic merge patch (as a merge patch) and a JSON patch on the main resource.
    let patch = json!({ "spec": { "client": "c4" } });
    let p = api.patch("c1", &PatchParams::default(), &Patch::Strategic(&patch)).await.expect("strategic patch");
    assert_eq!((p.spec.client.as_str(), p.meta().generation), ("c4", Some(3)));
    let ops: json_patch::Patch =
        serde_json::from_value(json!([{ "op": "replace", "path": "/spec/client", "value": "c5" }])).expect("ops");
    let p = api.patch("c1", &PatchParams::default(), &Patch::Json::<()>(ops)).await.expect("json patch");
    assert_eq!((p.spec.client.as_str(), p.meta().generation), ("c5", Some(4)));

    // /status of an absent object.
    assert_eq!(api_error(api.patch_status("absent", &pp, &Patch::Apply(&status)).await).code, 404);
}

#[tokio::test(start_paused = true)]
async fn server_side_apply_on_the_main_resource() {
    let model = KubeModel::new();
    let client = model.client();
    let api: Api<HotPool> = Api::namespaced(client.clone(), NS);
    let pp = PatchParams::apply(MANAGER).force();

    // Apply to an absent object creates it.
    let first = json!({
        "apiVersion": "fargate.operator.dev/v1alpha1", "kind": "HotPool",
        "metadata": { "name": "p1", "labels": { "a": "1" } },
        "spec": {
            "cluster": "cluster-1", "network": { "subnets": ["subnet-1"] }, "maxIdleSeconds": 60,
            "versions": [{ "version": "v1", "taskDefinition": "worker:1", "port": 8080 }],
        },
        "status": { "available": 3 },
    });
    let created = api.patch("p1", &pp, &Patch::Apply(&first)).await.expect("apply creates");
    assert_eq!(created.meta().generation, Some(1));
    assert_eq!(created.status, None, "status is not written through the main resource");
    assert_eq!(raw_pool(&client, "p1").await["spec"]["maxIdleSeconds"], 60);

    // A finalizer added by someone else is kept by the next apply.
    let ops: json_patch::Patch =
        serde_json::from_value(json!([{ "op": "add", "path": "/metadata/finalizers", "value": ["keep/me"] }]))
            .expect("ops");
    api.patch("p1", &PatchParams::default(), &Patch::Json::<()>(ops)).await.expect("add finalizer");

    // The next apply no longer sends maxIdleSeconds: it disappears; labels merge.
    let mut second = first.clone();
    second["spec"].as_object_mut().expect("spec").remove("maxIdleSeconds");
    second["metadata"]["labels"] = json!({ "b": "2" });
    let applied = api.patch("p1", &pp, &Patch::Apply(&second)).await.expect("apply");
    let raw = raw_pool(&client, "p1").await;
    assert!(raw["spec"].get("maxIdleSeconds").is_none(), "{raw}");
    assert_eq!(applied.finalizers(), ["keep/me"]);
    assert_eq!(applied.labels().get("a").map(String::as_str), Some("1"));
    assert_eq!(applied.labels().get("b").map(String::as_str), Some("2"));
    assert_eq!(applied.meta().generation, Some(2));

    // Applying the same again is not a write.
    let again = api.patch("p1", &pp, &Patch::Apply(&second)).await.expect("apply again");
    assert_eq!(again.resource_version(), applied.resource_version());
    assert_eq!(again.meta().generation, Some(2));

    // An apply carrying a stale resourceVersion conflicts.
    let mut stale = second.clone();
    stale["metadata"]["resourceVersion"] = json!(created.resource_version());
    assert_eq!(api_error(api.patch("p1", &pp, &Patch::Apply(&stale)).await).code, 409);
}
