//! What every kind's status has in common, and the way status is written: server-side apply, only
//! when it changed, optionally with the resourceVersion the writer read as a precondition.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::{
    DnsFailoverStatus, FIELD_MANAGER, FargateAppStatus, HotPoolClaimStatus, HotPoolStatus, HotPoolWorkerStatus,
    LastError, OwnedResource,
};

/// The fields every status carries.
pub trait ObjectStatus: Default + Clone + PartialEq + Serialize + Send + Sync {
    /// `status.observedGeneration`.
    fn observed_generation_mut(&mut self) -> &mut Option<i64>;
    /// `status.conditions`.
    fn conditions_mut(&mut self) -> &mut Vec<Condition>;
    /// `status.lastError`.
    fn last_error_mut(&mut self) -> &mut Option<LastError>;
    /// `status.conditions`, read-only.
    fn conditions(&self) -> &[Condition];
    /// `status.resources`, the ownership inventory, for kinds that make AWS objects.
    fn resources_mut(&mut self) -> Option<&mut Vec<OwnedResource>>;
    /// `status.resources`, read-only (empty for kinds without one).
    fn resources(&self) -> &[OwnedResource];
}

macro_rules! impl_object_status {
    ($($t:ty: $inventory:tt),*) => {$(
        impl ObjectStatus for $t {
            fn observed_generation_mut(&mut self) -> &mut Option<i64> { &mut self.observed_generation }
            fn conditions_mut(&mut self) -> &mut Vec<Condition> { &mut self.conditions }
            fn last_error_mut(&mut self) -> &mut Option<LastError> { &mut self.last_error }
            fn conditions(&self) -> &[Condition] { &self.conditions }
            impl_object_status!(@inventory $inventory);
        }
    )*};
    (@inventory yes) => {
        fn resources_mut(&mut self) -> Option<&mut Vec<OwnedResource>> { Some(&mut self.resources) }
        fn resources(&self) -> &[OwnedResource] { &self.resources }
    };
    (@inventory no) => {
        fn resources_mut(&mut self) -> Option<&mut Vec<OwnedResource>> { None }
        fn resources(&self) -> &[OwnedResource] { &[] }
    };
}

impl_object_status!(
    FargateAppStatus: yes,
    DnsFailoverStatus: yes,
    HotPoolStatus: yes,
    HotPoolWorkerStatus: no,
    HotPoolClaimStatus: no
);

/// Record `error` in `status.lastError`, keeping the old timestamp when the same error repeats so a
/// persistent failure does not cause a status write per retry.
pub fn set_last_error(slot: &mut Option<LastError>, operation: &str, code: &str, message: &str) {
    if let Some(e) = slot
        && e.operation == operation
        && e.code == code
        && e.message == message
    {
        return;
    }
    *slot = Some(LastError {
        operation: operation.into(),
        code: code.into(),
        message: message.into(),
        time: Time(Timestamp::now()),
    });
}

/// Server-side apply `status` on `obj` as field manager `fargate-operator`.
pub async fn apply_status<K, S>(api: &Api<K>, obj: &K, status: &S) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    S: Serialize,
{
    api.patch_status(
        &obj.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch::<K, S>(status, None)),
    )
    .await?;
    Ok(())
}

/// Server-side apply `status` on object `name` with `resource_version` as a precondition: the write
/// is refused (409) when the object changed since that version. Returns the object as written.
pub async fn apply_status_at<K, S>(
    api: &Api<K>,
    name: &str,
    resource_version: &str,
    status: &S,
) -> Result<K, kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    S: Serialize,
{
    let patch = patch::<K, S>(status, Some(resource_version));
    api.patch_status(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch)).await
}

fn patch<K: Resource<DynamicType = ()>, S: Serialize>(status: &S, resource_version: Option<&str>) -> serde_json::Value {
    let mut patch = serde_json::json!({"apiVersion": K::api_version(&()), "kind": K::kind(&()), "status": status});
    if let Some(v) = resource_version {
        patch["metadata"] = serde_json::json!({"resourceVersion": v});
    }
    patch
}
