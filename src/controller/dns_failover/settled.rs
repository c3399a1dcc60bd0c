//! Passes between a DnsFailover's full passes. A full pass reads the records at the name and both
//! health checks (three Route 53 reads); once one has found everything in place, the object is
//! *settled* at that generation until its next full pass is due (`--resync-seconds`, stretched to
//! the Route 53 budget). A pass that starts in between, because the health poller has a reading
//! the status does not show yet, reads nothing but a PENDING change's propagation (GetChange), and
//! applies the reading: at 1,000 objects a full pass per reading took the whole 4/s budget and the
//! readings came minutes late.
//!
//! Drift (a record or check changed behind our back) is found by the next full pass, as before: a
//! reading never was a drift check. A new generation, a new leadership term or a process restart
//! starts with a full pass.

use std::time::Duration;

use super::aws::FailoverAws;
use crate::api::dns_failover::{DnsFailover, DnsFailoverStatus};
use crate::aws::AwsError;
use k8s_openapi::jiff::Timestamp;

use crate::runtime::conditions::{self, READY, SYNCED};
use crate::runtime::passes;

/// How often a settled object's PENDING change is read again.
pub const CHANGE_POLL: Duration = Duration::from_secs(10);

/// What a pass between full passes read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Between {
    /// Until the next full pass.
    pub left: Duration,
    /// The state GetChange gave for the PENDING change the status names (not read when none is).
    pub change: Option<String>,
}

/// Whether `obj` is settled: its status says the last pass of this generation found everything in
/// place, and the pass log says a full pass is not due yet (`left`, when so).
pub fn settled(obj: &DnsFailover, status: &DnsFailoverStatus, left: Option<Duration>) -> Option<Duration> {
    let generation = obj.metadata.generation;
    let current = |type_: &str| {
        conditions::find(&status.conditions, type_)
            .is_some_and(|c| c.status == "True" && c.observed_generation == generation)
    };
    (status.observed_generation == generation && current(SYNCED) && current(READY)).then_some(left?)
}

/// The reads of a pass between full passes: at most one GetChange.
pub async fn observe(aws: &FailoverAws, status: &DnsFailoverStatus, left: Duration) -> Result<Between, AwsError> {
    let change = match status.change.as_ref().filter(|c| c.status == "PENDING") {
        Some(c) => aws.change_status(&c.id).await?,
        None => None,
    };
    Ok(Between { left, change })
}

/// The status after a pass between full passes (the change's state recorded), and whether the
/// change is still PENDING.
pub fn plan(status: &DnsFailoverStatus, between: &Between, generation: Option<i64>) -> (DnsFailoverStatus, bool) {
    let mut status = status.clone();
    if let (Some(change), Some(now)) = (status.change.as_mut(), &between.change) {
        change.status = now.clone();
    }
    let pending = super::apply::mark_change(&mut status, generation);
    (status, pending)
}

/// When the next pass comes: in [`CHANGE_POLL`] while a change is PENDING (on a slot, so the
/// objects of one change batch ask together and share the GetChange), else when the full pass
/// is due, `left` from now.
pub fn next_pass(pending: bool, left: Duration, now: Timestamp) -> Duration {
    if pending { passes::aligned(CHANGE_POLL, passes::POLL_SLOT, now).min(left) } else { left }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::dns_failover::ChangeStatus;

    fn obj(generation: i64) -> DnsFailover {
        let mut o = DnsFailover::new(
            "dr",
            serde_json::from_value(serde_json::json!({
                "hostedZoneId": "Z1", "name": "a.example.com",
                "primary": {"target": "p.example.net", "healthCheck": {"type": "HTTPS"}}, "secondary": {"target": "s.example.net"}
            }))
            .expect("spec"),
        );
        o.metadata.generation = Some(generation);
        o
    }

    fn converged(generation: i64) -> DnsFailoverStatus {
        let mut st = DnsFailoverStatus { observed_generation: Some(generation), ..Default::default() };
        conditions::set_condition(&mut st.conditions, SYNCED, true, "Synced", "ok", Some(generation));
        conditions::set_condition(&mut st.conditions, READY, true, "RecordsInPlace", "ok", Some(generation));
        st
    }

    #[test]
    fn only_an_object_converged_at_its_generation_and_not_due_is_settled() {
        let left = Some(Duration::from_secs(100));
        assert_eq!(settled(&obj(2), &converged(2), left), left);
        assert_eq!(settled(&obj(2), &converged(2), None), None, "a full pass is due");
        assert_eq!(settled(&obj(3), &converged(2), left), None, "the spec changed since");
        let mut failed = converged(2);
        conditions::set_condition(&mut failed.conditions, SYNCED, false, "Throttling", "slow down", Some(2));
        assert_eq!(settled(&obj(2), &failed, left), None, "the last pass did not converge");
        let mut not_ready = converged(2);
        conditions::set_condition(&mut not_ready.conditions, READY, false, "Pending", "wait", Some(2));
        assert_eq!(settled(&obj(2), &not_ready, left), None);
    }

    #[test]
    fn a_pending_change_is_followed_and_the_next_pass_is_the_full_one_once_in_sync() {
        let mut st = converged(2);
        st.change = Some(ChangeStatus { id: "/change/C1".into(), status: "PENDING".into() });
        let left = Duration::from_secs(300);
        let (still, pending) = plan(&st, &Between { left, change: Some("PENDING".into()) }, Some(2));
        assert!(pending);
        assert!(conditions::is_true(&still.conditions, conditions::PROGRESSING));
        let (done, pending) = plan(&st, &Between { left, change: Some("INSYNC".into()) }, Some(2));
        assert!(!pending);
        assert_eq!(done.change.as_ref().map(|c| c.status.as_str()), Some("INSYNC"));
        assert!(!conditions::is_true(&done.conditions, conditions::PROGRESSING));
    }

    #[test]
    fn polls_of_a_pending_change_end_on_a_slot_and_never_after_the_full_pass() {
        let at = |ms: i64| Timestamp::from_millisecond(ms).expect("time");
        let left = Duration::from_secs(300);
        // Ended at 1 s and at 1.5 s: both come back at 12 s (10 s on a slot of 2 s, a fifth of it).
        assert_eq!(next_pass(true, left, at(1_000)), Duration::from_secs(11));
        assert_eq!(next_pass(true, left, at(1_500)), Duration::from_millis(10_500));
        assert_eq!(next_pass(true, Duration::from_secs(3), at(1_000)), Duration::from_secs(3));
        assert_eq!(next_pass(false, left, at(1_000)), left);
    }

    #[test]
    fn a_settled_pass_without_a_change_leaves_the_status_as_it_was() {
        let mut st = converged(2);
        super::super::apply::mark_change(&mut st, Some(2));
        let left = Duration::from_secs(42);
        assert_eq!(plan(&st, &Between { left, change: None }, Some(2)), (st, false));
    }
}
