//! Pure decisions of the HotPool controller: what each worker's task state means, which claims
//! bind which workers, what is released, stopped and launched. No I/O, so every rule is unit-tested,
//! including the exactly-once rules of binding.
//!
//! This module holds what both halves share (a task as ECS reports it, a worker as the plan sees it,
//! the pool's `startedBy`); `workers` decides each worker's step, launch recovery, idle stops and
//! deficits; `claims` decides releases and each claim's step.

mod claims;
mod pass;
mod workers;

use std::collections::BTreeMap;

use k8s_openapi::jiff::Timestamp;

pub use self::claims::*;
pub use self::pass::*;
pub use self::workers::*;
use crate::api::hot_pool::{HotPoolWorker, WorkerClaimRef, WorkerPhase};
use crate::runtime::clock;

/// What ECS says about one task.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaskObs {
    /// `lastStatus`, e.g. `PROVISIONING`, `RUNNING`, `STOPPED`.
    pub last_status: String,
    /// `desiredStatus`.
    pub desired_status: String,
    /// Private IPv4 address of the task's ENI, once attached.
    pub ip: Option<String>,
    /// Why it stopped.
    pub stopped_reason: Option<String>,
    /// `startedBy`.
    pub started_by: String,
    /// Tags.
    pub tags: BTreeMap<String, String>,
}

impl TaskObs {
    /// True once the task is stopping or stopped.
    pub fn is_stopped(&self) -> bool {
        self.desired_status == "STOPPED"
            || matches!(
                self.last_status.as_str(),
                "DEACTIVATING" | "STOPPING" | "DEPROVISIONING" | "STOPPED" | "DELETED"
            )
    }

    /// The IP to serve on, once the task is RUNNING with one.
    pub fn ready_ip(&self) -> Option<&str> {
        if self.last_status == "RUNNING" && !self.is_stopped() { self.ip.as_deref() } else { None }
    }
}

/// The phase a worker is in (a worker written before its first status is Starting).
pub fn phase(w: &HotPoolWorker) -> WorkerPhase {
    w.status.as_ref().and_then(|s| s.phase).unwrap_or_default()
}

/// The claim holding or reserving a worker.
pub fn claim_ref(w: &HotPoolWorker) -> Option<&WorkerClaimRef> {
    w.status.as_ref().and_then(|s| s.claim.as_ref())
}

/// The worker's task ARN, once recorded.
pub fn task_arn(w: &HotPoolWorker) -> Option<&str> {
    w.status.as_ref().and_then(|s| s.task_arn.as_deref())
}

fn ts(t: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>) -> Option<Timestamp> {
    t.map(|t| t.0)
}

fn micro(t: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime>) -> Option<Timestamp> {
    t.map(|t| t.0)
}

/// `t` plus `n` seconds; never panics (see [`clock::plus_secs`]).
fn plus(t: Timestamp, n: i32) -> Timestamp {
    clock::plus_secs(t, i64::from(n))
}

/// The workers of one claim's pool as the claim pass sees them.
#[derive(Clone, Debug)]
pub struct WorkerView {
    /// Worker name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Task definition ARN.
    pub task_definition_arn: String,
    /// Phase.
    pub phase: WorkerPhase,
    /// Holding or reserving claim.
    pub claim: Option<WorkerClaimRef>,
    /// When it became Available.
    pub available_since: Option<Timestamp>,
    /// Launch time (or creation).
    pub started_at: Option<Timestamp>,
    /// Whether its task ARN is recorded. A worker without one may have a running task nobody has
    /// found yet (RunTask's answer lost, or the process died before writing it down).
    pub recorded: bool,
    /// The cluster its task is in, from the task ARN (`None` before the ARN is recorded, or for an
    /// old-format ARN, which names none).
    pub cluster: Option<String>,
}

impl WorkerView {
    /// The view of a worker object.
    pub fn of(w: &HotPoolWorker) -> Self {
        let st = w.status.as_ref();
        Self {
            name: w.metadata.name.clone().unwrap_or_default(),
            version: w.spec.version.clone(),
            task_definition_arn: w.spec.task_definition_arn.clone(),
            phase: phase(w),
            claim: st.and_then(|s| s.claim.clone()),
            available_since: st.and_then(|s| micro(s.available_since.as_ref())),
            started_at: st.and_then(|s| micro(s.started_at.as_ref())).or(ts(w.metadata.creation_timestamp.as_ref())),
            recorded: task_arn(w).is_some(),
            cluster: task_arn(w).and_then(super::inventory::task_cluster).map(str::to_string),
        }
    }

    fn is_idle(&self) -> bool {
        self.claim.is_none() && matches!(self.phase, WorkerPhase::Available | WorkerPhase::Starting)
    }
}

/// Split `n` launches into RunTask calls of at most `max` tasks.
pub fn batches(n: usize, max: usize) -> Vec<usize> {
    let max = max.max(1);
    let mut out = vec![max; n / max];
    if !n.is_multiple_of(max) {
        out.push(n % max);
    }
    out
}

/// `startedBy` of every task of the pool with this UID (≤ 36 characters, an ECS limit).
pub fn started_by(pool_uid: &str) -> String {
    format!("hotpool-{}", &crate::aws::naming::sha256_hex(pool_uid.as_bytes())[..28])
}

#[cfg(test)]
pub(super) mod fixtures {
    //! Worker, claim and spec values the plan tests share.

    use std::collections::BTreeMap;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;

    use super::{ClaimView, TaskObs, WorkerView};
    use crate::api::hot_pool::{
        ClaimPhase, HotPoolSpec, HotPoolWorker, HotPoolWorkerSpec, HotPoolWorkerStatus, WorkerClaimRef, WorkerPhase,
    };

    pub fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).expect("time")
    }

    pub fn spec(when_empty: &str, on_release: &str) -> HotPoolSpec {
        serde_json::from_value(serde_json::json!({
            "cluster": "workers", "network": {"subnets": ["subnet-1"]},
            "versions": [
                {"version": "1", "taskDefinition": "w:1", "scaleTo": 2, "port": 7000},
                {"version": "2", "taskDefinition": "w:2", "scaleTo": 1, "port": 7000, "pooling": false}
            ],
            "maxIdleSeconds": 600,
            "claims": {"leaseSeconds": 60, "whenEmpty": when_empty, "onRelease": on_release}
        }))
        .expect("spec")
    }

    pub fn tds() -> BTreeMap<String, String> {
        [("1".to_string(), "td-1".to_string()), ("2".to_string(), "td-2".to_string())].into()
    }

    pub fn worker(name: &str, version: &str, phase: WorkerPhase, claim: Option<&str>) -> WorkerView {
        WorkerView {
            name: name.into(),
            version: version.into(),
            task_definition_arn: format!("td-{version}"),
            phase,
            claim: claim.map(|c| WorkerClaimRef {
                name: c.into(),
                uid: Some(format!("uid-{c}")),
                client: None,
                since: Time(t(0)),
                cold_start: false,
            }),
            available_since: Some(t(0)),
            started_at: Some(t(0)),
            recorded: true,
            cluster: Some("workers".into()),
        }
    }

    pub fn claim(name: &str, version: &str, created: i64, phase: ClaimPhase, worker: Option<&str>) -> ClaimView {
        ClaimView {
            name: name.into(),
            uid: format!("uid-{name}"),
            version: version.into(),
            client: "api".into(),
            created: t(created),
            renewed_at: None,
            invalid: None,
            phase,
            worker: worker.map(str::to_string),
            bound_at: worker.map(|_| t(0)),
            recorded_expiry: None,
        }
    }

    pub fn obj(task: Option<&str>, phase: WorkerPhase, started: i64) -> HotPoolWorker {
        let mut w = HotPoolWorker::new(
            "w1",
            HotPoolWorkerSpec {
                pool: "p".into(),
                version: "1".into(),
                task_definition_arn: "td-1".into(),
                launch_token: Some("tok".into()),
            },
        );
        w.status = Some(HotPoolWorkerStatus {
            phase: Some(phase),
            task_arn: task.map(str::to_string),
            started_at: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(t(started))),
            ..Default::default()
        });
        w
    }

    pub fn running(ip: &str) -> TaskObs {
        TaskObs {
            last_status: "RUNNING".into(),
            desired_status: "RUNNING".into(),
            ip: Some(ip.into()),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::fixtures::*;
    use super::*;
    use crate::api::hot_pool::{ClaimPhase, WorkerPhase};

    #[test]
    fn times_at_the_ends_of_time_never_panic() {
        let end = Timestamp::MAX;
        let mut c = claim("c1", "1", 0, ClaimPhase::Bound, Some("w1"));
        c.bound_at = Some(end);
        assert_eq!(c.expires_at(604_800), Some(end));
        c.bound_at = Some(Timestamp::MIN);
        assert_eq!(c.expires_at(i32::MIN), Some(Timestamp::MIN));
        let w = obj(Some("arn:t"), WorkerPhase::Starting, 0);
        let mut late = w.clone();
        if let Some(s) = late.status.as_mut() {
            s.started_at = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(end));
        }
        assert_eq!(
            step_worker(&late, None, None, i32::MAX, std::time::Duration::from_secs(60), t(0)),
            WorkerStep::Keep
        );
        assert_eq!(
            step_worker(&w, None, None, i32::MAX, std::time::Duration::from_secs(60), end),
            WorkerStep::TimedOut
        );
        let mut idle = worker("w2", "1", WorkerPhase::Available, None);
        idle.available_since = Some(end);
        let mut spec = spec("Wait", "Stop");
        spec.max_idle_seconds = i32::MAX;
        let _ = idle_stops(&spec, &[idle], &tds(), &BTreeMap::new(), end);
    }

    #[test]
    fn launches_are_split_into_calls_of_ten() {
        assert_eq!(batches(0, 10), Vec::<usize>::new());
        assert_eq!(batches(10, 10), vec![10]);
        assert_eq!(batches(23, 10), vec![10, 10, 3]);
        assert!(started_by("3f2b0a").len() <= 36);
    }
}
