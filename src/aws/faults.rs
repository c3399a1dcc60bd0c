//! Fault injection for tests and chaos runs: an SDK interceptor that throttles requests before
//! they are sent, or drops responses after AWS has executed the request ("succeeded but the
//! response was lost"). Configured by `FARGATE_OPERATOR_FAULTS` or, in tests, directly.
//!
//! Rules are comma-separated `<Operation|*>=<kind>(@<first N calls>|><calls after the first N>|%<rate
//! 0..1>)`, kind one of `throttle` and `5xx` (rejected before sending: nothing executed), `lost` and
//! `timeout` (AWS executes the request, the answer is dropped), e.g.
//! `CreateRule=lost@1,*=throttle%0.3,ListTasks=throttle>1,*=5xx%0.05`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

/// Marker in injected throttling errors; the classifier maps it to `Throttling`.
pub const INJECTED_THROTTLING: &str = "ThrottlingException (injected)";
/// Marker in injected 5xx errors (the request was not executed); classified `Transient`.
pub const INJECTED_UNAVAILABLE: &str = "ServiceUnavailable (injected)";
/// Marker in injected timeouts (the request was executed, the answer never came); `Transient`.
pub const INJECTED_TIMEOUT: &str = "Timeout (injected)";

/// What to inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// Reject before sending, as a throttled request.
    Throttle,
    /// Send, let AWS execute it, then drop the response.
    Lost,
    /// Reject before sending, as a 503 from AWS (nothing executed).
    Unavailable,
    /// Send, let AWS execute it, then fail as a timeout would.
    Timeout,
}

/// How often.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FaultWhen {
    /// The first N calls of the operation.
    First(u32),
    /// Each call with this probability.
    Rate(f64),
    /// Every call after the first N (e.g. to let a controller start, then cut it off).
    After(u32),
}

/// One rule.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultRule {
    /// Operation name (`*` for all).
    pub operation: String,
    /// Fault.
    pub kind: FaultKind,
    /// Frequency.
    pub when: FaultWhen,
}

/// A set of rules with per-rule call counters.
#[derive(Debug, Default)]
pub struct FaultPlan {
    rules: Vec<FaultRule>,
    seen: Mutex<HashMap<(usize, String), u32>>,
}

impl FaultPlan {
    /// Parse the rule syntax; an empty string is no faults.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut rules = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (op, rest) =
                part.split_once('=').ok_or_else(|| format!("{part:?}: expected <Operation>=<kind>@N|%rate"))?;
            let (kind, when) = if let Some((k, n)) = rest.split_once('>') {
                (k, FaultWhen::After(n.parse().map_err(|_| format!("{part:?}: >N needs a whole number"))?))
            } else if let Some((k, n)) = rest.split_once('@') {
                (k, FaultWhen::First(n.parse().map_err(|_| format!("{part:?}: @N needs a whole number"))?))
            } else if let Some((k, r)) = rest.split_once('%') {
                let rate: f64 = r.parse().map_err(|_| format!("{part:?}: %rate needs a number"))?;
                if !(0.0..=1.0).contains(&rate) {
                    return Err(format!("{part:?}: rate must be within 0..1"));
                }
                (k, FaultWhen::Rate(rate))
            } else {
                return Err(format!("{part:?}: add @N (first N calls), >N (calls after the first N) or %rate"));
            };
            let kind = match kind {
                "throttle" => FaultKind::Throttle,
                "lost" => FaultKind::Lost,
                "5xx" => FaultKind::Unavailable,
                "timeout" => FaultKind::Timeout,
                other => return Err(format!("{part:?}: unknown fault {other:?} (throttle, 5xx, lost or timeout)")),
            };
            rules.push(FaultRule { operation: op.to_string(), kind, when });
        }
        Ok(Self { rules, seen: Mutex::default() })
    }

    /// No rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The fault to inject for this call of `operation` at `phase`, if any.
    fn decide(&self, operation: &str, kind: FaultKind) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        for (i, rule) in self.rules.iter().enumerate() {
            if rule.kind != kind || (rule.operation != "*" && rule.operation != operation) {
                continue;
            }
            let n = seen.entry((i, operation.to_string())).or_insert(0);
            *n += 1;
            let hit = match rule.when {
                FaultWhen::First(limit) => *n <= limit,
                FaultWhen::After(skip) => *n > skip,
                FaultWhen::Rate(rate) => rand::random::<f64>() < rate,
            };
            if hit {
                return true;
            }
        }
        false
    }
}

/// The interceptor added to every client when a plan is configured.
#[derive(Clone, Debug)]
pub struct FaultInjector {
    plan: Arc<FaultPlan>,
}

impl FaultInjector {
    /// Inject per `plan`.
    pub fn new(plan: Arc<FaultPlan>) -> Self {
        Self { plan }
    }
}

fn operation(cfg: &ConfigBag) -> String {
    cfg.load::<Metadata>().map(|m| m.name().to_string()).unwrap_or_default()
}

impl Intercept for FaultInjector {
    fn name(&self) -> &'static str {
        "FaultInjector"
    }

    fn read_before_transmit(
        &self,
        _: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let op = operation(cfg);
        if self.plan.decide(&op, FaultKind::Throttle) {
            return Err(INJECTED_THROTTLING.into());
        }
        if self.plan.decide(&op, FaultKind::Unavailable) {
            return Err(INJECTED_UNAVAILABLE.into());
        }
        Ok(())
    }

    fn read_after_transmit(
        &self,
        _: &BeforeDeserializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let op = operation(cfg);
        if self.plan.decide(&op, FaultKind::Lost) {
            return Err("response lost (injected)".into());
        }
        if self.plan.decide(&op, FaultKind::Timeout) {
            return Err(INJECTED_TIMEOUT.into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rules_and_counts_first_calls() {
        let plan = FaultPlan::parse("CreateRule=lost@2, *=throttle%0").expect("parse");
        assert!(plan.decide("CreateRule", FaultKind::Lost));
        assert!(plan.decide("CreateRule", FaultKind::Lost));
        assert!(!plan.decide("CreateRule", FaultKind::Lost), "only the first two");
        assert!(!plan.decide("CreateService", FaultKind::Lost));
        assert!(!plan.decide("CreateService", FaultKind::Throttle), "rate 0 never fires");
        let after = FaultPlan::parse("ListTasks=throttle>1").expect("parse");
        assert!(!after.decide("ListTasks", FaultKind::Throttle), "the first call passes");
        assert!(after.decide("ListTasks", FaultKind::Throttle));
        assert!(after.decide("ListTasks", FaultKind::Throttle));
    }

    #[test]
    fn rejects_bad_rules_with_a_hint() {
        assert!(FaultPlan::parse("CreateRule=lost").unwrap_err().contains("@N"));
        assert!(FaultPlan::parse("CreateRule=boom@1").unwrap_err().contains("throttle, 5xx, lost or timeout"));
        let kinds = FaultPlan::parse("RunTask=5xx@1,StopTask=timeout%1").expect("parse");
        assert!(kinds.decide("RunTask", FaultKind::Unavailable));
        assert!(!kinds.decide("RunTask", FaultKind::Unavailable));
        assert!(kinds.decide("StopTask", FaultKind::Timeout));
        assert!(FaultPlan::parse("*=throttle%2").unwrap_err().contains("0..1"));
        assert!(FaultPlan::parse("").expect("empty").is_empty());
    }
}
