//! Tests of the in-memory apiserver through kube's real client and the project's real types, on
//! tokio's paused clock.

mod crud;
mod lifecycle;
mod runtime;
mod status;
mod watch;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ObjectMeta, PostParams};
use kube::core::{ApiResource, DynamicObject, Status};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use crate::api::hot_pool::POOL_LABEL;
use crate::api::{HotPool, HotPoolClaim, HotPoolClaimSpec, HotPoolWorker, HotPoolWorkerSpec};

const NS: &str = "default";

/// The apiserver's answer of a failed call (panics on any other result).
fn api_error<T: std::fmt::Debug>(result: kube::Result<T>) -> Status {
    match result {
        Err(kube::Error::Api(status)) => *status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn claim(name: &str, pool: &str) -> HotPoolClaim {
    HotPoolClaim::new(
        name,
        HotPoolClaimSpec { pool: pool.into(), version: "v1".into(), client: "client-1".into(), renewed_at: None },
    )
}

fn pool(name: &str) -> HotPool {
    serde_json::from_value(json!({
        "apiVersion": "fargate.operator.dev/v1alpha1",
        "kind": "HotPool",
        "metadata": { "name": name, "namespace": NS },
        "spec": {
            "cluster": "cluster-1",
            "network": { "subnets": ["subnet-1"] },
            "versions": [{ "version": "v1", "taskDefinition": "worker:1", "port": 8080 }],
        },
    }))
    .expect("a valid HotPool")
}

/// A worker of `owner` (controller owner reference and pool label).
fn worker(name: &str, owner: &HotPool) -> HotPoolWorker {
    let mut w = HotPoolWorker::new(
        name,
        HotPoolWorkerSpec {
            pool: owner.name_any(),
            version: "v1".into(),
            task_definition_arn: "arn:aws:ecs:eu-west-1:1:task-definition/worker:1".into(),
            launch_token: None,
        },
    );
    w.metadata.labels = Some([(POOL_LABEL.to_string(), owner.name_any())].into());
    w.metadata.owner_references = Some(vec![owner.controller_owner_ref(&()).expect("the pool has a uid")]);
    w
}

fn config_map(name: &str, data: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta { name: Some(name.into()), ..Default::default() },
        data: Some(data.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
        ..Default::default()
    }
}

/// The stored JSON of a HotPool (to see fields the typed object fills with defaults).
async fn raw_pool(client: &kube::Client, name: &str) -> serde_json::Value {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), NS, &ApiResource::erase::<HotPool>(&()));
    api.get(name).await.expect("get raw").data
}

async fn create<K>(api: &Api<K>, obj: &K) -> K
where
    K: Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    api.create(&PostParams::default(), obj).await.expect("create")
}
