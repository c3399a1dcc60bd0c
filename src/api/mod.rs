//! CRD types of `fargate.operator.dev/v1alpha1`, one file per kind, plus their validation.

pub mod common;
pub mod dns_failover;
pub mod fargate_app;
pub mod hot_pool;
pub mod validation;

pub use common::*;
pub use dns_failover::{DnsFailover, DnsFailoverSpec, DnsFailoverStatus};
pub use fargate_app::{FargateApp, FargateAppSpec, FargateAppStatus};
pub use hot_pool::{
    HotPool, HotPoolClaim, HotPoolClaimSpec, HotPoolClaimStatus, HotPoolSpec, HotPoolStatus, HotPoolWorker,
    HotPoolWorkerSpec, HotPoolWorkerStatus,
};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray,
};
use kube::CustomResourceExt;

/// Every CRD of the operator, in a stable order.
pub fn crds() -> Vec<CustomResourceDefinition> {
    let mut crds =
        vec![FargateApp::crd(), DnsFailover::crd(), HotPool::crd(), HotPoolWorker::crd(), HotPoolClaim::crd()];
    for crd in &mut crds {
        strip_status_defaults(crd);
    }
    crds
}

/// Remove `default`s under `.status`: only the controller writes status, so defaults there do
/// nothing, and older apiservers (1.20) reject an empty-string default as null.
fn strip_status_defaults(crd: &mut CustomResourceDefinition) {
    fn strip(schema: &mut JSONSchemaProps) {
        schema.default = None;
        for prop in schema.properties.iter_mut().flat_map(|p| p.values_mut()) {
            strip(prop);
        }
        if let Some(JSONSchemaPropsOrArray::Schema(items)) = schema.items.as_mut() {
            strip(items);
        }
    }
    for version in &mut crd.spec.versions {
        let status = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
            .and_then(|s| s.properties.as_mut())
            .and_then(|p| p.get_mut("status"));
        if let Some(status) = status {
            strip(status);
        }
    }
}
