//! Pure decisions of the HotPool controller: what each worker's task state means, which claims
//! bind which workers, what is released, stopped and launched. No I/O, so every rule is unit-tested,
//! including the exactly-once rules of binding.
//!
//! Binding is two writes: the worker first (`status.claim`), then the claim (`status.worker`). The
//! claim's status is the commit point a client sees, so after a crash between the two writes the
//! worker's claim reference is completed if the claim is still unbound, and dropped if the claim is
//! bound elsewhere. Both writes carry the resourceVersion they were planned from, so a stale read
//! fails with a conflict instead of binding twice.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::jiff::Timestamp;

use crate::api::hot_pool::{
    ClaimPhase, HotPoolClaim, HotPoolSpec, HotPoolWorker, OnRelease, PoolVersion, WhenEmpty, WorkerClaimRef,
    WorkerPhase,
};
use crate::api::validation::validate_hot_pool_claim;
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

/// What a worker's task state asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WorkerStep {
    /// Nothing changes.
    Keep,
    /// The task is RUNNING with this IP: Starting becomes Available (or Claimed when reserved).
    Ready(String),
    /// The task ended on its own or vanished: the worker is removed (and replaced).
    Lost(String),
    /// Not RUNNING within `startupTimeoutSeconds`: stop the task and remove the worker.
    TimedOut,
}

/// Decide one worker's step from what ECS said this pass. `obs` is its DescribeTasks result, if it
/// was described; `running` the ListTasks set, if a full sweep ran.
pub fn step_worker(
    w: &HotPoolWorker,
    obs: Option<&TaskObs>,
    running: Option<&BTreeSet<String>>,
    startup_timeout_seconds: i32,
    now: Timestamp,
) -> WorkerStep {
    let Some(arn) = task_arn(w) else { return WorkerStep::Keep };
    if let Some(o) = obs {
        if o.is_stopped() {
            let why = o.stopped_reason.clone().unwrap_or_else(|| format!("task is {}", o.last_status));
            return WorkerStep::Lost(why);
        }
    } else if running.is_some_and(|r| !r.contains(arn)) {
        return WorkerStep::Lost("ECS no longer lists the task as running".into());
    }
    if phase(w) != WorkerPhase::Starting {
        return WorkerStep::Keep;
    }
    if let Some(ip) = obs.and_then(TaskObs::ready_ip) {
        return WorkerStep::Ready(ip.to_string());
    }
    let started =
        w.status.as_ref().and_then(|s| micro(s.started_at.as_ref())).or(ts(w.metadata.creation_timestamp.as_ref()));
    match started {
        Some(t) if now >= plus(t, startup_timeout_seconds) => WorkerStep::TimedOut,
        _ => WorkerStep::Keep,
    }
}

/// Tasks found for workers whose task ARN was never recorded (a crash or lost response between
/// RunTask and the status write): each worker of a launch token gets one task carrying that token,
/// in name order. Returns `(worker name, task ARN)`.
pub fn recover_launches<'a>(
    pending: impl IntoIterator<Item = &'a HotPoolWorker>,
    tasks: &BTreeMap<String, TaskObs>,
    launch_tag: &str,
) -> Vec<(String, String)> {
    let mut by_token: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for w in pending {
        if let Some(token) = w.spec.launch_token.as_deref() {
            by_token.entry(token).or_default().push(w.metadata.name.as_deref().unwrap_or_default());
        }
    }
    let mut out = Vec::new();
    for (token, mut names) in by_token {
        names.sort_unstable();
        let found: Vec<&String> = tasks
            .iter()
            .filter(|(_, o)| !o.is_stopped() && o.tags.get(launch_tag).map(String::as_str) == Some(token))
            .map(|(arn, _)| arn)
            .collect();
        out.extend(names.into_iter().zip(found).map(|(n, a)| (n.to_string(), a.clone())));
    }
    out
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
        }
    }

    fn is_idle(&self) -> bool {
        self.claim.is_none() && matches!(self.phase, WorkerPhase::Available | WorkerPhase::Starting)
    }
}

/// A claim as the plan sees it.
#[derive(Clone, Debug)]
pub struct ClaimView {
    /// Name.
    pub name: String,
    /// UID.
    pub uid: String,
    /// Wanted version.
    pub version: String,
    /// Client.
    pub client: String,
    /// Creation time (arrival order).
    pub created: Timestamp,
    /// `spec.renewedAt`, unless it is invalid (too far ahead of now): then the lease runs as if
    /// it had not been renewed.
    pub renewed_at: Option<Timestamp>,
    /// Why the claim's spec is invalid (`InvalidSpec`): it is neither bound nor waited for.
    pub invalid: Option<String>,
    /// Phase.
    pub phase: ClaimPhase,
    /// Bound worker.
    pub worker: Option<String>,
    /// When bound.
    pub bound_at: Option<Timestamp>,
    /// The lease end last written to status (`status.expiresAt`).
    pub recorded_expiry: Option<Timestamp>,
}

impl ClaimView {
    /// The view of a claim object at `now`.
    pub fn of(c: &HotPoolClaim, now: Timestamp) -> Self {
        let st = c.status.as_ref();
        Self {
            name: c.metadata.name.clone().unwrap_or_default(),
            uid: c.metadata.uid.clone().unwrap_or_default(),
            version: c.spec.version.clone(),
            client: c.spec.client.clone(),
            created: ts(c.metadata.creation_timestamp.as_ref()).unwrap_or(Timestamp::UNIX_EPOCH),
            renewed_at: ts(c.spec.renewed_at.as_ref()).filter(|r| !clock::too_far_ahead(*r, now)),
            invalid: validate_hot_pool_claim(&c.spec, now).err().map(|e| e.to_string()),
            phase: st.and_then(|s| s.phase).unwrap_or_default(),
            worker: st.and_then(|s| s.worker.clone()),
            bound_at: st.and_then(|s| ts(s.bound_at.as_ref())),
            recorded_expiry: st.and_then(|s| ts(s.expires_at.as_ref())),
        }
    }

    /// When the lease of a bound claim runs out.
    pub fn expires_at(&self, lease_seconds: i32) -> Option<Timestamp> {
        let from = match (self.bound_at, self.renewed_at) {
            (Some(b), Some(r)) => Some(b.max(r)),
            (b, r) => b.or(r),
        }?;
        let computed = plus(from, lease_seconds);
        // An invalid renewal neither extends the lease nor cuts short one a valid renewal gave.
        match (&self.invalid, self.recorded_expiry) {
            (Some(_), Some(recorded)) => Some(computed.max(recorded)),
            _ => Some(computed),
        }
    }
}

/// What happens to a claim this pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClaimStep {
    /// Bind an idle Available worker: write the worker, then the claim.
    Bind { worker: String },
    /// The worker already names this claim (a crash between the two writes, or a cold start that is
    /// now running): write the claim.
    Complete { worker: String, cold_start: bool },
    /// Launch a worker reserved for this claim.
    ColdStart,
    /// Stay Pending with this reason and message.
    Pending { reason: &'static str, message: String },
    /// The lease ran out: the claim becomes Expired and its worker is released.
    Expire { worker: String },
    /// Cannot be served: Failed with this reason and message.
    Fail { reason: &'static str, message: String },
    /// Bound and healthy; `expires_at` is the lease end to show.
    Hold { expires_at: Option<Timestamp> },
    /// The spec is invalid: the claim keeps its phase (and its worker until the lease runs out)
    /// and reports `InvalidSpec` with this message; nothing is bound or launched for it.
    Invalid { message: String, expires_at: Option<Timestamp> },
    /// Expired or Failed already: nothing to do.
    Done,
}

/// What happens to a worker holding or reserving a claim that is gone, ended, or bound elsewhere.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Release {
    /// The claim let go: apply `onRelease`.
    Released { worker: String, on_release: OnRelease, why: String },
    /// The worker's reference was never committed on the claim (the claim is bound to another
    /// worker): drop the reference, the worker goes back to idle.
    Unreserve { worker: String },
}

/// Workers to release before claims are planned. `claims` are this pool's claims by name.
pub fn releases(
    workers: &[WorkerView],
    claims: &BTreeMap<String, ClaimView>,
    on_release: OnRelease,
    lease_seconds: i32,
    now: Timestamp,
) -> Vec<Release> {
    let mut out = Vec::new();
    for w in workers {
        let Some(r) = &w.claim else { continue };
        let claim = claims.get(&r.name).filter(|c| r.uid.as_deref().is_none_or(|u| u == c.uid));
        let released = |why: &str| Release::Released { worker: w.name.clone(), on_release, why: why.into() };
        match claim {
            None => out.push(released("its claim was deleted")),
            Some(c) if matches!(c.phase, ClaimPhase::Expired | ClaimPhase::Failed) => {
                out.push(released("its claim ended"))
            }
            Some(c) if c.worker.as_deref().is_some_and(|bound| bound != w.name) => {
                out.push(Release::Unreserve { worker: w.name.clone() })
            }
            Some(c) if c.phase == ClaimPhase::Bound && c.expires_at(lease_seconds).is_some_and(|e| now >= e) => {
                // Expired claims are handled in the claim pass, which releases the worker.
            }
            Some(_) => {}
        }
    }
    out
}

/// Decide every claim of the pool, in arrival order. `workers` must already reflect this pass's
/// releases; binds are applied to it as they are decided so no worker is handed out twice.
pub fn plan_claims(
    spec: &HotPoolSpec,
    claims: &[ClaimView],
    workers: &mut [WorkerView],
    current_td: &BTreeMap<String, String>,
    now: Timestamp,
) -> Vec<(String, ClaimStep)> {
    let mut ordered: Vec<&ClaimView> = claims.iter().collect();
    ordered.sort_by(|a, b| a.created.cmp(&b.created).then_with(|| a.name.cmp(&b.name)));
    let versions: BTreeMap<&str, &PoolVersion> = spec.versions.iter().map(|v| (v.version.as_str(), v)).collect();
    let lease = spec.claims.lease_seconds;
    let mut out = Vec::new();
    for c in ordered {
        let holder = workers.iter().find(|w| {
            w.claim.as_ref().is_some_and(|r| r.name == c.name && r.uid.as_deref().is_none_or(|u| u == c.uid))
        });
        let step = match c.phase {
            ClaimPhase::Expired | ClaimPhase::Failed => ClaimStep::Done,
            ClaimPhase::Bound => {
                let bound = c.worker.as_deref();
                match holder {
                    Some(w) if Some(w.name.as_str()) == bound => match (c.expires_at(lease), &c.invalid) {
                        (Some(e), _) if now >= e => ClaimStep::Expire { worker: w.name.clone() },
                        (e, Some(message)) => ClaimStep::Invalid { message: message.clone(), expires_at: e },
                        (e, None) => ClaimStep::Hold { expires_at: e },
                    },
                    _ => ClaimStep::Fail {
                        reason: "WorkerLost",
                        message: format!(
                            "worker {} is gone (its task stopped or the worker was deleted); create a new claim",
                            bound.unwrap_or("?")
                        ),
                    },
                }
            }
            // A worker already reserved for the claim completes the binding; the lease bounds it.
            ClaimPhase::Pending if c.invalid.is_some() && holder.is_none() => {
                ClaimStep::Invalid { message: c.invalid.clone().unwrap_or_default(), expires_at: None }
            }
            ClaimPhase::Pending => match holder {
                Some(w) if w.phase == WorkerPhase::Claimed => ClaimStep::Complete {
                    worker: w.name.clone(),
                    cold_start: w.claim.as_ref().is_some_and(|r| r.cold_start),
                },
                Some(w) => ClaimStep::Pending {
                    reason: "ColdStarting",
                    message: format!("worker {} was launched for this claim and is starting", w.name),
                },
                None => match versions.get(c.version.as_str()) {
                    None => ClaimStep::Pending {
                        reason: "VersionNotFound",
                        message: format!(
                            "spec.version {:?} is not one of the pool's versions ({}); add it to the HotPool or fix the claim",
                            c.version,
                            spec.versions.iter().map(|v| v.version.as_str()).collect::<Vec<_>>().join(", ")
                        ),
                    },
                    Some(v) => {
                        let td = current_td.get(&v.version);
                        let pick = pick_idle(workers, &v.version, td.map(String::as_str));
                        match pick {
                            Some(i) => {
                                let w = &mut workers[i];
                                w.phase = WorkerPhase::Claimed;
                                w.claim = Some(WorkerClaimRef {
                                    name: c.name.clone(),
                                    uid: Some(c.uid.clone()),
                                    client: Some(c.client.clone()),
                                    since: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now),
                                    cold_start: false,
                                });
                                ClaimStep::Bind { worker: w.name.clone() }
                            }
                            None if spec.claims.when_empty == WhenEmpty::Fail => ClaimStep::Fail {
                                reason: "PoolEmpty",
                                message: format!(
                                    "no Available worker of version {} and spec.claims.whenEmpty is Fail",
                                    v.version
                                ),
                            },
                            None if spec.claims.when_empty == WhenEmpty::ColdStart || !v.pooling => {
                                ClaimStep::ColdStart
                            }
                            None => {
                                // No queue position in the message: it would rewrite every waiting
                                // claim's status each time the queue moves.
                                ClaimStep::Pending {
                                    reason: "WaitingForWorker",
                                    message: format!(
                                        "no Available worker of version {}; bound in arrival order as workers start",
                                        v.version
                                    ),
                                }
                            }
                        }
                    }
                },
            },
        };
        out.push((c.name.clone(), step));
    }
    out
}

/// The idle Available worker to hand out: the current task definition first, then the one idle
/// longest (so `maxIdleSeconds` recycles as few as possible).
fn pick_idle(workers: &[WorkerView], version: &str, td: Option<&str>) -> Option<usize> {
    workers
        .iter()
        .enumerate()
        .filter(|(_, w)| w.version == version && w.phase == WorkerPhase::Available && w.claim.is_none())
        .min_by_key(|(_, w)| (td.is_some_and(|t| t != w.task_definition_arn), w.available_since, w.name.clone()))
        .map(|(i, _)| i)
}

/// Idle workers to stop, with the reason: version removed, pooling off, task definition changed,
/// idle longer than `maxIdleSeconds`, or more idle workers than the version needs. Claimed and
/// reserved workers are never stopped here.
pub fn idle_stops(
    spec: &HotPoolSpec,
    workers: &[WorkerView],
    current_td: &BTreeMap<String, String>,
    waiting: &BTreeMap<String, usize>,
    now: Timestamp,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut kept: BTreeMap<&str, Vec<&WorkerView>> = BTreeMap::new();
    // Never a worker whose task is not recorded: removing it would drop the only record of a task
    // that may be running (its launch token), leaving an orphan until the next sweep. The next pass
    // records or relaunches it, and then it can go.
    for w in workers.iter().filter(|w| w.is_idle() && w.recorded) {
        let Some(v) = spec.versions.iter().find(|v| v.version == w.version) else {
            out.push((w.name.clone(), format!("version {} was removed from spec.versions", w.version)));
            continue;
        };
        if !v.pooling {
            out.push((w.name.clone(), format!("spec.versions[{}].pooling is false", v.version)));
        } else if current_td.get(&v.version).is_some_and(|td| *td != w.task_definition_arn) {
            out.push((w.name.clone(), format!("version {} now runs another task definition", v.version)));
        } else if spec.max_idle_seconds > 0
            && w.phase == WorkerPhase::Available
            && w.available_since.is_some_and(|t| now >= plus(t, spec.max_idle_seconds))
        {
            out.push((w.name.clone(), format!("idle for more than {} s (spec.maxIdleSeconds)", spec.max_idle_seconds)));
        } else {
            kept.entry(v.version.as_str()).or_default().push(w);
        }
    }
    for v in &spec.versions {
        let Some(idle) = kept.get_mut(v.version.as_str()) else { continue };
        let want = usize::try_from(v.scale_to).unwrap_or(0) + waiting.get(&v.version).copied().unwrap_or(0);
        if idle.len() <= want {
            continue;
        }
        // Surplus: stop Starting workers first (newest first), then the Available ones idle longest
        // (so a recycled worker, just returned, is the one kept).
        // On a tie (workers launched and freed within one pass), the newer task goes first.
        let millis = |t: Option<Timestamp>| t.map_or(0, |t| t.as_millisecond());
        idle.sort_by_key(|w| match w.phase {
            WorkerPhase::Starting => (0, 0, -millis(w.started_at)),
            _ => (1, millis(w.available_since), -millis(w.started_at)),
        });
        for w in idle.iter().take(idle.len() - want) {
            out.push((
                w.name.clone(),
                format!("more idle workers of version {} than scaleTo {}", v.version, v.scale_to),
            ));
        }
    }
    out
}

/// Workers to launch per version for the pool (not counting cold starts): `scaleTo` plus the claims
/// waiting, minus idle workers already Available or Starting.
pub fn pool_deficits(
    spec: &HotPoolSpec,
    workers: &[WorkerView],
    current_td: &BTreeMap<String, String>,
    waiting: &BTreeMap<String, usize>,
    stopping: &BTreeSet<String>,
) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for v in spec.versions.iter().filter(|v| v.pooling && current_td.contains_key(&v.version)) {
        let have =
            workers.iter().filter(|w| w.version == v.version && w.is_idle() && !stopping.contains(&w.name)).count();
        let want = usize::try_from(v.scale_to).unwrap_or(0) + waiting.get(&v.version).copied().unwrap_or(0);
        if want > have {
            out.insert(v.version.clone(), want - have);
        }
    }
    out
}

/// Claims waiting per version (from the claim plan), for deficits and surplus.
pub fn waiting_per_version(claims: &[ClaimView], steps: &[(String, ClaimStep)]) -> BTreeMap<String, usize> {
    let by_name: BTreeMap<&str, &ClaimView> = claims.iter().map(|c| (c.name.as_str(), c)).collect();
    let mut out = BTreeMap::new();
    for (name, step) in steps {
        if let (ClaimStep::Pending { reason: "WaitingForWorker", .. }, Some(c)) = (step, by_name.get(name.as_str())) {
            *out.entry(c.version.clone()).or_default() += 1;
        }
    }
    out
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
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;
    use crate::api::hot_pool::{HotPoolWorkerSpec, HotPoolWorkerStatus};

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).expect("time")
    }

    fn spec(when_empty: &str, on_release: &str) -> HotPoolSpec {
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

    fn tds() -> BTreeMap<String, String> {
        [("1".to_string(), "td-1".to_string()), ("2".to_string(), "td-2".to_string())].into()
    }

    fn worker(name: &str, version: &str, phase: WorkerPhase, claim: Option<&str>) -> WorkerView {
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
        }
    }

    fn claim(name: &str, version: &str, created: i64, phase: ClaimPhase, worker: Option<&str>) -> ClaimView {
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

    fn obj(task: Option<&str>, phase: WorkerPhase, started: i64) -> HotPoolWorker {
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

    fn running(ip: &str) -> TaskObs {
        TaskObs {
            last_status: "RUNNING".into(),
            desired_status: "RUNNING".into(),
            ip: Some(ip.into()),
            ..Default::default()
        }
    }

    #[test]
    fn starting_worker_becomes_ready_only_when_running_with_an_ip() {
        let w = obj(Some("arn:1"), WorkerPhase::Starting, 0);
        let mut pending = running("10.0.0.1");
        pending.last_status = "PENDING".into();
        assert_eq!(step_worker(&w, Some(&pending), None, 300, t(10)), WorkerStep::Keep);
        let mut no_ip = running("");
        no_ip.ip = None;
        assert_eq!(step_worker(&w, Some(&no_ip), None, 300, t(10)), WorkerStep::Keep);
        assert_eq!(step_worker(&w, Some(&running("10.0.0.1")), None, 300, t(10)), WorkerStep::Ready("10.0.0.1".into()));
    }

    #[test]
    fn startup_timeout_and_lost_tasks() {
        let w = obj(Some("arn:1"), WorkerPhase::Starting, 0);
        let mut pending = running("10.0.0.1");
        pending.last_status = "PROVISIONING".into();
        assert_eq!(step_worker(&w, Some(&pending), None, 300, t(299)), WorkerStep::Keep);
        assert_eq!(step_worker(&w, Some(&pending), None, 300, t(300)), WorkerStep::TimedOut);
        let mut stopped = running("10.0.0.1");
        stopped.last_status = "STOPPED".into();
        stopped.desired_status = "STOPPED".into();
        stopped.stopped_reason = Some("Essential container exited".into());
        let avail = obj(Some("arn:1"), WorkerPhase::Available, 0);
        assert_eq!(
            step_worker(&avail, Some(&stopped), None, 300, t(1)),
            WorkerStep::Lost("Essential container exited".into())
        );
        let listed: BTreeSet<String> = ["arn:other".to_string()].into();
        assert!(matches!(step_worker(&avail, None, Some(&listed), 300, t(1)), WorkerStep::Lost(_)));
        let listed: BTreeSet<String> = ["arn:1".to_string()].into();
        assert_eq!(step_worker(&avail, None, Some(&listed), 300, t(1)), WorkerStep::Keep);
        // A worker whose launch was never recorded is left to launch recovery.
        assert_eq!(
            step_worker(&obj(None, WorkerPhase::Starting, 0), None, Some(&listed), 300, t(1000)),
            WorkerStep::Keep
        );
    }

    #[test]
    fn launch_recovery_assigns_each_task_of_a_token_once() {
        let mut a = obj(None, WorkerPhase::Starting, 0);
        a.metadata.name = Some("b-worker".into());
        let mut b = obj(None, WorkerPhase::Starting, 0);
        b.metadata.name = Some("a-worker".into());
        let tagged = |tok: &str| {
            let mut o = running("10.0.0.1");
            o.tags.insert("launch".into(), tok.into());
            o
        };
        let tasks: BTreeMap<String, TaskObs> = [
            ("arn:x".to_string(), tagged("tok")),
            ("arn:y".to_string(), tagged("tok")),
            ("arn:z".to_string(), tagged("other")),
        ]
        .into();
        let got = recover_launches([&a, &b], &tasks, "launch");
        assert_eq!(got, vec![("a-worker".into(), "arn:x".into()), ("b-worker".into(), "arn:y".into())]);
        // Only one task found for two workers: one worker stays unassigned and is launched again.
        let one: BTreeMap<String, TaskObs> = [("arn:x".to_string(), tagged("tok"))].into();
        assert_eq!(recover_launches([&a, &b], &one, "launch").len(), 1);
    }

    #[test]
    fn claims_bind_distinct_workers_in_arrival_order_and_the_rest_wait() {
        let spec = spec("Wait", "Stop");
        let mut workers = vec![
            worker("w1", "1", WorkerPhase::Available, None),
            worker("w2", "1", WorkerPhase::Available, None),
            worker("w3", "1", WorkerPhase::Starting, None),
        ];
        let claims: Vec<ClaimView> =
            (0..5).map(|i| claim(&format!("c{i}"), "1", 10 - i, ClaimPhase::Pending, None)).collect();
        let steps = plan_claims(&spec, &claims, &mut workers, &tds(), t(100));
        let bound: Vec<(&str, &str)> = steps
            .iter()
            .filter_map(|(c, s)| match s {
                ClaimStep::Bind { worker } => Some((c.as_str(), worker.as_str())),
                _ => None,
            })
            .collect();
        // The two oldest claims (c4, c3) get the two Available workers, each once.
        assert_eq!(bound.len(), 2);
        assert_eq!(bound.iter().map(|b| b.0).collect::<BTreeSet<_>>(), ["c3", "c4"].into());
        assert_eq!(bound.iter().map(|b| b.1).collect::<BTreeSet<_>>(), ["w1", "w2"].into());
        let waiting = waiting_per_version(&claims, &steps);
        assert_eq!(waiting.get("1"), Some(&3));
        // Deficit: scaleTo 2 + 3 waiting, minus the one Starting idle worker.
        let deficits = pool_deficits(&spec, &workers, &tds(), &waiting, &BTreeSet::new());
        assert_eq!(deficits.get("1"), Some(&4));
        // A second pass over the result binds nothing twice.
        let again = plan_claims(&spec, &claims, &mut workers, &tds(), t(100));
        assert!(again.iter().all(|(_, s)| !matches!(s, ClaimStep::Bind { .. })));
    }

    #[test]
    fn a_crash_between_the_two_writes_is_completed_not_bound_again() {
        let spec = spec("Wait", "Stop");
        let mut workers =
            vec![worker("w1", "1", WorkerPhase::Claimed, Some("c1")), worker("w2", "1", WorkerPhase::Available, None)];
        let claims = vec![claim("c1", "1", 0, ClaimPhase::Pending, None)];
        let steps = plan_claims(&spec, &claims, &mut workers, &tds(), t(5));
        assert_eq!(steps, vec![("c1".into(), ClaimStep::Complete { worker: "w1".into(), cold_start: false })]);
    }

    #[test]
    fn a_worker_reference_not_committed_on_the_claim_is_dropped() {
        let workers = vec![
            worker("w1", "1", WorkerPhase::Claimed, Some("c1")),
            worker("w2", "1", WorkerPhase::Claimed, Some("c1")),
        ];
        let claims: BTreeMap<String, ClaimView> =
            [("c1".to_string(), claim("c1", "1", 0, ClaimPhase::Bound, Some("w2")))].into();
        assert_eq!(
            releases(&workers, &claims, OnRelease::Stop, 60, t(5)),
            vec![Release::Unreserve { worker: "w1".into() }]
        );
    }

    #[test]
    fn deleted_and_ended_claims_release_their_workers() {
        let workers = vec![
            worker("w1", "1", WorkerPhase::Claimed, Some("gone")),
            worker("w2", "1", WorkerPhase::Claimed, Some("c2")),
            worker("w3", "1", WorkerPhase::Claimed, Some("c3")),
        ];
        let mut recreated = claim("c3", "1", 0, ClaimPhase::Pending, None);
        recreated.uid = "a-new-uid".into();
        let claims: BTreeMap<String, ClaimView> =
            [("c2".to_string(), claim("c2", "1", 0, ClaimPhase::Expired, Some("w2"))), ("c3".to_string(), recreated)]
                .into();
        let got = releases(&workers, &claims, OnRelease::Recycle, 60, t(5));
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(got.iter().all(|r| matches!(r, Release::Released { on_release: OnRelease::Recycle, .. })));
    }

    #[test]
    fn leases_expire_and_renewal_extends_them() {
        let spec = spec("Wait", "Stop");
        let mut workers = vec![worker("w1", "1", WorkerPhase::Claimed, Some("c1"))];
        let mut c = claim("c1", "1", 0, ClaimPhase::Bound, Some("w1"));
        let steps = plan_claims(&spec, std::slice::from_ref(&c), &mut workers, &tds(), t(59));
        assert_eq!(steps[0].1, ClaimStep::Hold { expires_at: Some(t(60)) });
        let steps = plan_claims(&spec, std::slice::from_ref(&c), &mut workers, &tds(), t(60));
        assert_eq!(steps[0].1, ClaimStep::Expire { worker: "w1".into() });
        c.renewed_at = Some(t(50));
        let steps = plan_claims(&spec, std::slice::from_ref(&c), &mut workers, &tds(), t(60));
        assert_eq!(steps[0].1, ClaimStep::Hold { expires_at: Some(t(110)) });
    }

    fn claim_obj(renewed_at: &str, bound: bool) -> HotPoolClaim {
        let mut c: HotPoolClaim = serde_json::from_value(serde_json::json!({
            "apiVersion": "fargate.operator.dev/v1alpha1", "kind": "HotPoolClaim",
            "metadata": {"name": "c1", "uid": "uid-c1", "creationTimestamp": "2027-01-15T08:00:00Z"},
            "spec": {"pool": "p", "version": "1", "client": "api", "renewedAt": renewed_at}
        }))
        .expect("claim");
        if bound {
            c.status = Some(crate::api::hot_pool::HotPoolClaimStatus {
                phase: Some(ClaimPhase::Bound),
                worker: Some("w1".into()),
                bound_at: Some(Time(t(0))),
                ..Default::default()
            });
        }
        c
    }

    #[test]
    fn a_renewal_at_the_end_of_time_is_refused_and_the_lease_runs_from_the_binding() {
        let spec = spec("Wait", "Stop");
        let c = ClaimView::of(&claim_obj("9999-12-30T21:59:59Z", true), t(10));
        assert_eq!(c.renewed_at, None);
        assert!(c.invalid.as_deref().is_some_and(|m| m.starts_with("spec.renewedAt: 9999-12-30T21:59:59Z")), "{c:?}");
        let mut workers = vec![worker("w1", "1", WorkerPhase::Claimed, Some("c1"))];
        let steps = plan_claims(&spec, std::slice::from_ref(&c), &mut workers, &tds(), t(59));
        assert!(matches!(&steps[0].1, ClaimStep::Invalid { expires_at: Some(e), .. } if *e == t(60)), "{steps:?}");
        let steps = plan_claims(&spec, std::slice::from_ref(&c), &mut workers, &tds(), t(60));
        assert_eq!(steps[0].1, ClaimStep::Expire { worker: "w1".into() });
        // A valid renewal's lease end (recorded in status) is not cut short by an invalid one.
        let mut renewed = claim_obj("9999-12-30T21:59:59Z", true);
        if let Some(s) = renewed.status.as_mut() {
            s.expires_at = Some(Time(t(500)));
        }
        let c = ClaimView::of(&renewed, t(100));
        let steps = plan_claims(&spec, std::slice::from_ref(&c), &mut workers, &tds(), t(100));
        assert!(matches!(&steps[0].1, ClaimStep::Invalid { expires_at: Some(e), .. } if *e == t(500)), "{steps:?}");
        // A renewal within the clock skew is a renewal.
        let skewed = ClaimView::of(&claim_obj(&t(100).to_string(), true), t(0));
        assert_eq!((skewed.renewed_at, skewed.invalid), (Some(t(100)), None));
    }

    #[test]
    fn an_invalid_pending_claim_takes_no_worker_and_is_not_waited_for() {
        let c = ClaimView::of(&claim_obj("9999-12-30T21:59:59Z", false), t(0));
        let mut workers = vec![worker("w1", "1", WorkerPhase::Available, None)];
        let steps = plan_claims(&spec("Wait", "Stop"), std::slice::from_ref(&c), &mut workers, &tds(), t(1));
        assert!(matches!(steps[0].1, ClaimStep::Invalid { expires_at: None, .. }), "{steps:?}");
        assert!(workers[0].claim.is_none());
        assert!(waiting_per_version(std::slice::from_ref(&c), &steps).is_empty());
        // A worker reserved for it before it became invalid completes the binding.
        let mut reserved = vec![worker("w1", "1", WorkerPhase::Claimed, Some("c1"))];
        let steps = plan_claims(&spec("Wait", "Stop"), std::slice::from_ref(&c), &mut reserved, &tds(), t(1));
        assert!(matches!(steps[0].1, ClaimStep::Complete { .. }), "{steps:?}");
    }

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
        assert_eq!(step_worker(&late, None, None, i32::MAX, t(0)), WorkerStep::Keep);
        assert_eq!(step_worker(&w, None, None, i32::MAX, end), WorkerStep::TimedOut);
        let mut idle = worker("w2", "1", WorkerPhase::Available, None);
        idle.available_since = Some(end);
        let mut spec = spec("Wait", "Stop");
        spec.max_idle_seconds = i32::MAX;
        let _ = idle_stops(&spec, &[idle], &tds(), &BTreeMap::new(), end);
    }

    #[test]
    fn bound_claim_whose_worker_is_gone_fails() {
        let spec = spec("Wait", "Stop");
        let c = claim("c1", "1", 0, ClaimPhase::Bound, Some("w9"));
        let steps = plan_claims(&spec, &[c], &mut [], &tds(), t(1));
        assert!(matches!(steps[0].1, ClaimStep::Fail { reason: "WorkerLost", .. }));
    }

    #[test]
    fn when_empty_fail_cold_start_and_pooling_off() {
        let claims = vec![claim("c1", "1", 0, ClaimPhase::Pending, None)];
        let steps = plan_claims(&spec("Fail", "Stop"), &claims, &mut [], &tds(), t(1));
        assert!(matches!(steps[0].1, ClaimStep::Fail { reason: "PoolEmpty", .. }));
        let steps = plan_claims(&spec("ColdStart", "Stop"), &claims, &mut [], &tds(), t(1));
        assert_eq!(steps[0].1, ClaimStep::ColdStart);
        // Version 2 has pooling off: even Wait claims cold-start.
        let claims = vec![claim("c2", "2", 0, ClaimPhase::Pending, None)];
        let steps = plan_claims(&spec("Wait", "Stop"), &claims, &mut [], &tds(), t(1));
        assert_eq!(steps[0].1, ClaimStep::ColdStart);
        // A reserved worker that is still starting keeps the claim Pending without a second launch.
        let mut reserved = vec![worker("w1", "2", WorkerPhase::Starting, Some("c2"))];
        let steps = plan_claims(&spec("Wait", "Stop"), &claims, &mut reserved, &tds(), t(1));
        assert!(matches!(steps[0].1, ClaimStep::Pending { reason: "ColdStarting", .. }));
        let claims = vec![claim("c3", "9", 0, ClaimPhase::Pending, None)];
        let steps = plan_claims(&spec("Wait", "Stop"), &claims, &mut [], &tds(), t(1));
        assert!(matches!(steps[0].1, ClaimStep::Pending { reason: "VersionNotFound", .. }));
    }

    #[test]
    fn idle_workers_are_stopped_for_pool_changes_but_claimed_ones_never() {
        let mut s = spec("Wait", "Stop");
        let workers = vec![
            worker("gone-idle", "0", WorkerPhase::Available, None),
            worker("gone-claimed", "0", WorkerPhase::Claimed, Some("c")),
            worker("nopool", "2", WorkerPhase::Available, None),
            worker("a", "1", WorkerPhase::Available, None),
            worker("b", "1", WorkerPhase::Available, None),
            worker("c", "1", WorkerPhase::Starting, None),
        ];
        let stops = idle_stops(&s, &workers, &tds(), &BTreeMap::new(), t(10));
        let names: BTreeSet<&str> = stops.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["gone-idle", "nopool", "c"].into(), "{stops:?}");
        // maxIdleSeconds recycles old idle workers.
        let stops = idle_stops(&s, &workers, &tds(), &BTreeMap::new(), t(600));
        assert!(stops.iter().any(|(n, _)| n == "a"));
        // A new task definition replaces idle workers.
        s.max_idle_seconds = 0;
        let changed: BTreeMap<String, String> = [("1".to_string(), "td-new".to_string())].into();
        let stops = idle_stops(&s, &workers, &changed, &BTreeMap::new(), t(10));
        assert!(stops.iter().any(|(n, _)| n == "a") && stops.iter().any(|(n, _)| n == "b"));
        assert!(!stops.iter().any(|(n, _)| n == "gone-claimed"));
    }

    #[test]
    fn a_worker_whose_task_is_not_recorded_is_never_stopped() {
        let s = spec("Wait", "Stop");
        let mut unrecorded = worker("unrecorded", "0", WorkerPhase::Starting, None);
        unrecorded.recorded = false;
        let mut surplus = worker("surplus", "1", WorkerPhase::Starting, None);
        surplus.recorded = false;
        let workers = vec![unrecorded, surplus, worker("a", "1", WorkerPhase::Available, None)];
        let mut one = s.clone();
        one.versions[0].scale_to = 0;
        let stops = idle_stops(&one, &workers, &tds(), &BTreeMap::new(), t(10));
        let names: Vec<&str> = stops.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["a"], "version removed or surplus, an unrecorded worker stays: {stops:?}");
    }

    #[test]
    fn surplus_stops_the_longest_idle_and_on_a_tie_the_newer_task() {
        let s = spec("Wait", "Stop");
        let mut recycled = worker("recycled", "1", WorkerPhase::Available, None);
        recycled.started_at = Some(t(0));
        recycled.available_since = Some(t(100));
        let mut refill = worker("refill", "1", WorkerPhase::Available, None);
        refill.started_at = Some(t(90));
        refill.available_since = Some(t(100));
        let mut old = worker("old", "1", WorkerPhase::Available, None);
        old.available_since = Some(t(50));
        let stops = idle_stops(&s, &[recycled, refill, old], &tds(), &BTreeMap::new(), t(101));
        let names: Vec<&str> = stops.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["old"], "scaleTo 2 of 3: the longest idle goes");
        let mut s1 = s.clone();
        s1.versions[0].scale_to = 1;
        let mut recycled = worker("recycled", "1", WorkerPhase::Available, None);
        recycled.started_at = Some(t(0));
        recycled.available_since = Some(t(100));
        let mut refill = worker("refill", "1", WorkerPhase::Available, None);
        refill.started_at = Some(t(90));
        refill.available_since = Some(t(100));
        let stops = idle_stops(&s1, &[recycled, refill], &tds(), &BTreeMap::new(), t(101));
        assert_eq!(stops.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["refill"]);
    }

    #[test]
    fn launches_are_split_into_calls_of_ten() {
        assert_eq!(batches(0, 10), Vec::<usize>::new());
        assert_eq!(batches(10, 10), vec![10]);
        assert_eq!(batches(23, 10), vec![10, 10, 3]);
        assert!(started_by("3f2b0a").len() <= 36);
    }
}
