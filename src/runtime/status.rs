//! What every kind's status has in common, and the way status is written: server-side apply, only
//! when it changed, optionally with the resourceVersion the writer read as a precondition.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::{
    AwsOverride, DnsFailoverStatus, FIELD_MANAGER, FargateAppStatus, HotPoolClaimStatus, HotPoolStatus,
    HotPoolWorkerStatus, LastError, OwnedResource,
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
    /// `status.aws`, the `spec.aws` the inventory was made with (kinds with an inventory).
    fn made_with_mut(&mut self) -> Option<&mut Option<AwsOverride>>;
    /// `status.aws`, read-only.
    fn made_with(&self) -> Option<&AwsOverride>;
    /// After this pass's status write was refused as stale: copy into `latest` the fields that
    /// record an AWS action of the pass which landed and which the inventory does not hold (e.g. the
    /// `restartedAt` a forced deployment answered), where the pass changed them from `before`, so
    /// the next pass does not repeat the action.
    fn carry_actions(&self, before: &Self, latest: &mut Self);
}

macro_rules! impl_object_status {
    ($($t:ty: $inventory:tt [$($action:ident),*]),*) => {$(
        impl ObjectStatus for $t {
            fn observed_generation_mut(&mut self) -> &mut Option<i64> { &mut self.observed_generation }
            fn conditions_mut(&mut self) -> &mut Vec<Condition> { &mut self.conditions }
            fn last_error_mut(&mut self) -> &mut Option<LastError> { &mut self.last_error }
            fn conditions(&self) -> &[Condition] { &self.conditions }
            impl_object_status!(@inventory $inventory);
            #[allow(unused_variables)]
            fn carry_actions(&self, before: &Self, latest: &mut Self) {
                $(if self.$action != before.$action { latest.$action.clone_from(&self.$action); })*
            }
        }
    )*};
    (@inventory yes) => {
        fn resources_mut(&mut self) -> Option<&mut Vec<OwnedResource>> { Some(&mut self.resources) }
        fn resources(&self) -> &[OwnedResource] { &self.resources }
        fn made_with_mut(&mut self) -> Option<&mut Option<AwsOverride>> { Some(&mut self.aws) }
        fn made_with(&self) -> Option<&AwsOverride> { self.aws.as_ref() }
    };
    (@inventory no) => {
        fn resources_mut(&mut self) -> Option<&mut Vec<OwnedResource>> { None }
        fn resources(&self) -> &[OwnedResource] { &[] }
        fn made_with_mut(&mut self) -> Option<&mut Option<AwsOverride>> { None }
        fn made_with(&self) -> Option<&AwsOverride> { None }
    };
}

impl_object_status!(
    FargateAppStatus: yes [restarted_at],
    DnsFailoverStatus: yes [],
    HotPoolStatus: yes [],
    HotPoolWorkerStatus: no [],
    HotPoolClaimStatus: no []
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
        time: Time(crate::runtime::clock::now()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stale_pass_carries_the_restart_it_answered_and_nothing_else() {
        let restart = Some(Time(k8s_openapi::jiff::Timestamp::from_second(1_800_000_000).expect("time")));
        let before = FargateAppStatus::default();
        let after = FargateAppStatus { restarted_at: restart.clone(), observed_generation: Some(7), ..before.clone() };
        let mut latest = FargateAppStatus { observed_generation: Some(8), ..Default::default() };
        after.carry_actions(&before, &mut latest);
        assert_eq!(latest.restarted_at, restart, "the forced deployment is not repeated");
        assert_eq!(latest.observed_generation, Some(8), "the newer object's own fields stay");
        let mut untouched = FargateAppStatus { restarted_at: None, ..Default::default() };
        before.carry_actions(&before, &mut untouched);
        assert_eq!(untouched, FargateAppStatus::default(), "a pass that changed nothing carries nothing");
    }
}
