//! AWS access shared by every controller: SDK configuration, request budgets, error
//! classification, retries, naming and tags.

pub mod api;
pub mod budget;
pub mod caller;
pub mod coalesce;
pub mod ecs_network;
pub mod ecs_reads;
pub mod elb_reads;
pub mod errors;
pub mod facts;
pub mod faults;
#[cfg(any(test, feature = "sim"))]
pub mod model;
pub mod naming;
pub mod route53_batch;
pub mod route53_reads;
pub mod sdk;

pub use budget::{BudgetSettings, Budgets, Service, TokenBucket};
pub use caller::{AwsCaller, Queued, RetryPolicy};
pub use errors::{AwsError, Classified, Classify, ErrorCategory};
pub use naming::Owner;
pub use sdk::AwsProvider;
