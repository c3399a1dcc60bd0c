//! Each worker's step from its task state, launch recovery, the idle workers a pool change stops and
//! the workers each version lacks.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::jiff::Timestamp;

use super::super::aws::LaunchedTask;
use super::super::inventory::same_cluster;
use super::{TaskObs, WorkerView, micro, phase, plus, task_arn, ts};
use crate::api::hot_pool::{HotPoolSpec, HotPoolWorker, WorkerPhase};

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
/// was described; `running` the ListTasks set, if a full sweep ran; a task launched less than
/// `read_lag` ago that neither shows is taken for not shown yet.
pub fn step_worker(
    w: &HotPoolWorker,
    obs: Option<&TaskObs>,
    running: Option<&BTreeSet<String>>,
    startup_timeout_seconds: i32,
    read_lag: std::time::Duration,
    now: Timestamp,
) -> WorkerStep {
    let Some(arn) = task_arn(w) else { return WorkerStep::Keep };
    if let Some(o) = obs {
        if o.is_stopped() {
            let why = o.stopped_reason.clone().unwrap_or_else(|| format!("task is {}", o.last_status));
            return WorkerStep::Lost(why);
        }
    } else if running.is_some_and(|r| !r.contains(arn)) && !launched_within(w, now, read_lag) {
        // ListTasks and DescribeTasks lag RunTask by seconds: a task launched moments ago that
        // neither shows is not gone. Taking it for lost removed its worker without stopping it,
        // and a pool deleted next could no longer find it (found by the simulator).
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

/// Whether `w`'s task was launched (or, before a task was recorded, the worker written) less than
/// `grace` before `now`.
pub fn launched_within(w: &HotPoolWorker, now: Timestamp, grace: std::time::Duration) -> bool {
    let started =
        w.status.as_ref().and_then(|s| micro(s.started_at.as_ref())).or(ts(w.metadata.creation_timestamp.as_ref()));
    let grace = k8s_openapi::jiff::SignedDuration::try_from(grace).unwrap_or_default();
    started.is_some_and(|t| now.duration_since(t) < grace)
}

/// What a pool's deletion waits for: tasks ListTasks showed (`listed`) that StopTask did not know
/// (`unknown`): ECS's reads lag each other, and a listed task exists whatever StopTask says (found
/// by the simulator: a task with no worker left, listed but not yet described, ran on after its
/// pool was gone); tasks of workers launched under `read_lag` ago that StopTask did not know; and
/// workers whose task was never recorded (RunTask's answer lost, or its call still running)
/// written under `in_flight` ago: a RunTask call may act until its last retry
/// (`RetryPolicy::longest_call`), and ListTasks shows the task `read_lag` later. Counting any of
/// them as stopped would leave a task running with nothing to find it.
pub fn deletion_waits_for(
    workers: &[HotPoolWorker],
    unknown: &BTreeSet<String>,
    listed: &BTreeSet<String>,
    read_lag: std::time::Duration,
    in_flight: std::time::Duration,
    now: Timestamp,
) -> usize {
    let listed_unknown = unknown.intersection(listed).count();
    let recorded_unknown =
        |w: &&HotPoolWorker| task_arn(w).is_some_and(|arn| unknown.contains(arn) && !listed.contains(arn));
    let unrecorded = |w: &&HotPoolWorker| task_arn(w).is_none() && w.spec.launch_token.is_some();
    let waits_known = workers.iter().filter(|w| launched_within(w, now, read_lag)).filter(recorded_unknown).count();
    let window = read_lag.saturating_add(in_flight);
    let waits_unrecorded = workers.iter().filter(|w| launched_within(w, now, window)).filter(unrecorded).count();
    listed_unknown.saturating_add(waits_known).saturating_add(waits_unrecorded)
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

/// Idle workers to stop, with the reason: version removed, pooling off, task in a cluster other than
/// `spec.cluster` (they are replaced there), task definition changed, idle longer than
/// `maxIdleSeconds`, or more idle workers than the version needs. Claimed and reserved workers are
/// never stopped here.
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
        } else if let Some(c) = w.cluster.as_deref().filter(|c| !same_cluster(c, &spec.cluster)) {
            out.push((w.name.clone(), format!("its task is in cluster {c}, spec.cluster is now {}", spec.cluster)));
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

/// Pair the tasks one RunTask call returned with the workers it was made for (`workers`: name, and
/// whether the worker is reserved for a claim), all written with launch token `token`. RunTask gives
/// every task of a call the same tags and `startedBy`, so the tasks of one call are alike and a task
/// may go to any of its workers; what matters is that no task goes to two workers. A task is skipped
/// when a worker already holds it (`taken`: a repeated token returns the tasks of the first call,
/// some of which launch recovery has recorded), when its launch tag names another token, or when it
/// was paired already. Reserved workers are served first, then the others in the order given; a
/// worker left out got no task. Never by position: with some tasks failing for capacity, or a
/// repeated token, the i-th task is not the i-th worker's.
pub fn pair_launched(
    workers: &[(String, bool)],
    token: &str,
    tasks: &[LaunchedTask],
    taken: &BTreeSet<String>,
) -> Vec<(String, String)> {
    let mut free: Vec<&str> = Vec::new();
    for t in tasks {
        let ours = t.launch_tag.as_deref().is_none_or(|tag| tag == token);
        if ours && !taken.contains(&t.arn) && !free.contains(&t.arn.as_str()) {
            free.push(&t.arn);
        }
    }
    let reserved_first = workers.iter().filter(|(_, r)| *r).chain(workers.iter().filter(|(_, r)| !*r));
    reserved_first.zip(free).map(|((name, _), arn)| (name.clone(), arn.to_string())).collect()
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

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::super::fixtures::*;
    use super::*;

    /// The default `--ecs-read-lag-seconds`.
    const LAG: std::time::Duration = std::time::Duration::from_secs(60);

    #[test]
    fn starting_worker_becomes_ready_only_when_running_with_an_ip() {
        let w = obj(Some("arn:1"), WorkerPhase::Starting, 0);
        let mut pending = running("10.0.0.1");
        pending.last_status = "PENDING".into();
        assert_eq!(step_worker(&w, Some(&pending), None, 300, LAG, t(10)), WorkerStep::Keep);
        let mut no_ip = running("");
        no_ip.ip = None;
        assert_eq!(step_worker(&w, Some(&no_ip), None, 300, LAG, t(10)), WorkerStep::Keep);
        assert_eq!(
            step_worker(&w, Some(&running("10.0.0.1")), None, 300, LAG, t(10)),
            WorkerStep::Ready("10.0.0.1".into())
        );
    }

    #[test]
    fn startup_timeout_and_lost_tasks() {
        let w = obj(Some("arn:1"), WorkerPhase::Starting, 0);
        let mut pending = running("10.0.0.1");
        pending.last_status = "PROVISIONING".into();
        assert_eq!(step_worker(&w, Some(&pending), None, 300, LAG, t(299)), WorkerStep::Keep);
        assert_eq!(step_worker(&w, Some(&pending), None, 300, LAG, t(300)), WorkerStep::TimedOut);
        let mut stopped = running("10.0.0.1");
        stopped.last_status = "STOPPED".into();
        stopped.desired_status = "STOPPED".into();
        stopped.stopped_reason = Some("Essential container exited".into());
        let avail = obj(Some("arn:1"), WorkerPhase::Available, 0);
        assert_eq!(
            step_worker(&avail, Some(&stopped), None, 300, LAG, t(1)),
            WorkerStep::Lost("Essential container exited".into())
        );
        let listed: BTreeSet<String> = ["arn:other".to_string()].into();
        assert_eq!(
            step_worker(&avail, None, Some(&listed), 300, LAG, t(59)),
            WorkerStep::Keep,
            "a task launched under a minute ago may not be listed yet"
        );
        assert!(matches!(step_worker(&avail, None, Some(&listed), 300, LAG, t(60)), WorkerStep::Lost(_)));
        let listed: BTreeSet<String> = ["arn:1".to_string()].into();
        assert_eq!(step_worker(&avail, None, Some(&listed), 300, LAG, t(1)), WorkerStep::Keep);
        // A worker whose launch was never recorded is left to launch recovery.
        assert_eq!(
            step_worker(&obj(None, WorkerPhase::Starting, 0), None, Some(&listed), 300, LAG, t(1000)),
            WorkerStep::Keep
        );
    }

    #[test]
    fn a_deletion_waits_for_young_tasks_ecs_does_not_know_and_young_unrecorded_launches() {
        let recorded = obj(Some("arn:1"), WorkerPhase::Starting, 0);
        let mut unrecorded = obj(None, WorkerPhase::Starting, 0);
        if let Some(s) = unrecorded.status.as_mut() {
            s.started_at = None;
        }
        unrecorded.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t(0)));
        let unknown: BTreeSet<String> = ["arn:1".to_string()].into();
        let workers = [recorded.clone(), unrecorded.clone()];
        let no = std::time::Duration::ZERO;
        let none = BTreeSet::new();
        assert_eq!(deletion_waits_for(&workers, &unknown, &none, LAG, no, t(59)), 2);
        assert_eq!(
            deletion_waits_for(&workers, &BTreeSet::new(), &none, LAG, no, t(59)),
            1,
            "StopTask knew arn:1: stopped"
        );
        assert_eq!(
            deletion_waits_for(&workers, &unknown, &none, LAG, no, t(60)),
            0,
            "a minute on, ListTasks shows what exists"
        );
        // A RunTask call may still act until its last retry: an unrecorded launch waits that much longer.
        let call = std::time::Duration::from_secs(30);
        assert_eq!(deletion_waits_for(&workers, &unknown, &none, LAG, call, t(80)), 1, "the unrecorded launch only");
        assert_eq!(deletion_waits_for(&workers, &unknown, &none, LAG, call, t(90)), 0);
        let mut never_launched = unrecorded;
        never_launched.spec.launch_token = None;
        assert_eq!(deletion_waits_for(&[never_launched], &unknown, &none, LAG, no, t(1)), 0, "no token, no RunTask");
    }

    #[test]
    fn a_deletion_waits_for_every_listed_task_stop_task_does_not_know_however_old_its_worker() {
        let listed: BTreeSet<String> = ["arn:1".to_string(), "arn:orphan".to_string()].into();
        let unknown = listed.clone();
        let old = obj(Some("arn:1"), WorkerPhase::Available, 0);
        let no = std::time::Duration::ZERO;
        assert_eq!(
            deletion_waits_for(std::slice::from_ref(&old), &unknown, &listed, LAG, no, t(1000)),
            2,
            "listed: it exists"
        );
        assert_eq!(
            deletion_waits_for(&[old], &unknown, &BTreeSet::new(), LAG, no, t(1000)),
            0,
            "an old worker's task neither listed nor known is gone"
        );
        let young = obj(Some("arn:1"), WorkerPhase::Starting, 0);
        assert_eq!(deletion_waits_for(&[young], &unknown, &listed, LAG, no, t(1)), 2, "counted once");
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
    fn idle_workers_in_a_cluster_spec_cluster_no_longer_names_are_stopped_claimed_ones_never() {
        let mut s = spec("Wait", "Stop");
        s.cluster = "arn:aws:ecs:us-east-1:123456789012:cluster/spare".into();
        let in_spare = |name: &str, phase, claim| {
            let mut w = worker(name, "1", phase, claim);
            w.cluster = Some("spare".into());
            w
        };
        let mut unknown = worker("old-format-arn", "1", WorkerPhase::Available, None);
        unknown.cluster = None;
        let workers = vec![
            worker("old-idle", "1", WorkerPhase::Available, None),
            worker("old-starting", "1", WorkerPhase::Starting, None),
            worker("old-claimed", "1", WorkerPhase::Claimed, Some("c")),
            in_spare("new-a", WorkerPhase::Available, None),
            unknown,
        ];
        let stops = idle_stops(&s, &workers, &tds(), &BTreeMap::new(), t(10));
        let names: BTreeSet<&str> = stops.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["old-idle", "old-starting"].into(), "{stops:?}");
        assert!(stops.iter().all(|(_, why)| why.contains("cluster workers")), "{stops:?}");
        // The deficit after those stops is filled in spec.cluster.
        let left: Vec<WorkerView> = workers.into_iter().filter(|w| !names.contains(w.name.as_str())).collect();
        assert_eq!(pool_deficits(&s, &left, &tds(), &BTreeMap::new(), &BTreeSet::new()).get("1"), None);
    }

    fn task(arn: &str, tag: Option<&str>) -> LaunchedTask {
        LaunchedTask { arn: arn.into(), launch_tag: tag.map(str::to_string) }
    }

    fn names(workers: &[&str], reserved: &str) -> Vec<(String, bool)> {
        workers.iter().map(|w| (w.to_string(), *w == reserved)).collect()
    }

    #[test]
    fn launched_tasks_are_paired_by_launch_tag_each_once_never_by_position() {
        let none = BTreeSet::new();
        // Some tasks failed for capacity: two tasks for three workers; the reserved one (last) is
        // served first, the third worker gets none.
        let got = pair_launched(
            &names(&["w1", "w2", "w3"], "w3"),
            "tok",
            &[task("t1", Some("tok")), task("t2", Some("tok"))],
            &none,
        );
        assert_eq!(got, [("w3".to_string(), "t1".to_string()), ("w1".to_string(), "t2".to_string())]);

        // A lost response recovered: launch recovery recorded t1 and t2 on two workers; the repeated
        // RunTask (same token) for the third returns all three tasks of the first call. Position
        // would give the third worker t1, a task another worker holds.
        let taken: BTreeSet<String> = ["t1".to_string(), "t2".to_string()].into();
        let first_call = [task("t1", Some("tok")), task("t2", Some("tok")), task("t3", Some("tok"))];
        let got = pair_launched(&names(&["w3"], ""), "tok", &first_call, &taken);
        assert_eq!(got, [("w3".to_string(), "t3".to_string())]);
        // Every task of the token held already: the worker gets none (it is removed and replaced).
        let all: BTreeSet<String> = ["t1", "t2", "t3"].iter().map(|t| t.to_string()).collect();
        assert!(pair_launched(&names(&["w3"], ""), "tok", &first_call, &all).is_empty());

        // A task of another token, or one listed twice, goes to nobody (twice); a response without
        // tags is the call's own.
        let got = pair_launched(
            &names(&["w1", "w2", "w3"], ""),
            "tok",
            &[task("other", Some("not-tok")), task("t1", None), task("t1", Some("tok"))],
            &none,
        );
        assert_eq!(got, [("w1".to_string(), "t1".to_string())]);
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
}
