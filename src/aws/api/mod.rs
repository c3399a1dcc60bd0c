//! The AWS calls this operator makes, one narrow trait per service, and their SDK implementations.
//!
//! Each trait method is one AWS request (one page of a paginated read), sent once: budgets, retries
//! and metrics stay in [`AwsCaller`](super::AwsCaller), which wraps every call the controllers make,
//! so a fake or modelled implementation is retried, throttled and counted exactly like the SDK.
//! Methods take and return plain values: the controllers never see an SDK client, fluent builder or
//! operation output. Where a controller already plans in an SDK *data* type (a Route 53 `Change`, an
//! ECS `ContainerDefinition`), the trait takes that type as it is; it is a plain value an in-memory
//! implementation can read.
//!
//! Errors are [`Classified`] (category, code, message), the same value the retry loop and the
//! controllers look at, so an implementation that is not the SDK can produce any AWS error.

pub mod cloudwatch;
pub mod ecs;
pub mod elbv2;
pub mod route53;

use futures::future::BoxFuture;

use super::errors::{Classified, Classify};

/// What every trait method returns: one request's answer, or its classified error.
pub type ApiFuture<'a, T> = BoxFuture<'a, Result<T, Classified>>;

impl Classify for Classified {
    fn classify(&self) -> Classified {
        self.clone()
    }
}

/// Classify an SDK error at the trait boundary.
pub(crate) fn classified<E: Classify>(err: E) -> Classified {
    err.classify()
}
