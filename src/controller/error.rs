//! Errors of a reconcile, with the category that decides backoff, metrics labels and reasons.

use crate::api::validation::ValidationErrors;
use crate::aws::{AwsError, ErrorCategory};

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The Kubernetes API failed.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// An AWS call failed (after its retries).
    #[error(transparent)]
    Aws(#[from] AwsError),
    /// The spec is invalid (reported in status; retried only on a spec change or after minutes).
    #[error("invalid spec: {0}")]
    Invalid(#[from] ValidationErrors),
    /// The object lacks something the apiserver always sets (namespace, uid).
    #[error("object is missing {0}")]
    MissingMetadata(&'static str),
    /// The reconcile panicked (a bug): caught so one object cannot end the process; it backs off
    /// like a transient error.
    #[error("reconcile panicked: {0}")]
    Panicked(String),
    /// A cleanup finished, but meanwhile another writer recorded AWS objects in the inventory
    /// (a create it is about to send): the finalizer stays and the cleanup runs again.
    #[error("{0} AWS object(s) were recorded in status.resources while the deletion ran; deleting them too")]
    InventoryGrew(usize),
    /// A pass raced a deletion of its object (a launch fenced off, workers that appeared while the
    /// pool's cleanup ran): it stops, and the next attempt starts from a fresh read.
    #[error("{0}")]
    RacedDeletion(String),
    /// The AccessPolicies (or a namespace's labels) are not known yet: no pass may decide without
    /// them; retried with backoff.
    #[error("{0}")]
    AccessUnknown(String),
    /// Adding or removing the finalizer, or the wrapped reconcile, failed.
    #[error(transparent)]
    Finalizer(#[from] Box<kube::runtime::finalizer::Error<ReconcileError>>),
}

impl ReconcileError {
    /// Category for backoff and the `category` metric label.
    pub fn category(&self) -> ErrorCategory {
        match self {
            Self::Kube(kube::Error::Api(resp)) if resp.code == 409 => ErrorCategory::Conflict,
            Self::Kube(kube::Error::Api(resp)) if resp.code == 429 => ErrorCategory::Throttling,
            Self::Kube(kube::Error::Api(resp)) if resp.code == 404 => ErrorCategory::NotFound,
            Self::Kube(kube::Error::Api(resp)) if (400..500).contains(&resp.code) => ErrorCategory::Terminal,
            Self::Kube(_) | Self::Panicked(_) | Self::AccessUnknown(_) => ErrorCategory::Transient,
            Self::Aws(e) => e.category,
            Self::Invalid(_) | Self::MissingMetadata(_) => ErrorCategory::Terminal,
            Self::InventoryGrew(_) | Self::RacedDeletion(_) => ErrorCategory::Conflict,
            Self::Finalizer(e) => match e.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(inner)
                | kube::runtime::finalizer::Error::CleanupFailed(inner) => inner.category(),
                _ => ErrorCategory::Transient,
            },
        }
    }
}
