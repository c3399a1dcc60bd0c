//! Shared plumbing: panic-free time arithmetic, context, backoff, conditions, events, metrics, health server, leader election,
//! shutdown and telemetry.

pub mod absences;
pub mod backoff;
pub mod clock;
pub mod conditions;
pub mod context;
pub mod events;
pub mod leader;
pub mod metrics;
pub mod passes;
pub mod server;
pub mod shutdown;
pub mod status;
pub mod telemetry;
pub mod written;

pub use context::Context;
