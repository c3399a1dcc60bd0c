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

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// Every CRD of the operator, in a stable order.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![FargateApp::crd(), DnsFailover::crd(), HotPool::crd(), HotPoolWorker::crd(), HotPoolClaim::crd()]
}
