//! Whole-pass plans: each stage decided on the workers the stages before it leave.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::super::fixtures::*;
use super::*;
use crate::api::hot_pool::{ClaimPhase, HotPoolWorker, WorkerPhase};

const TAG: &str = "fargate.operator.dev/launch";

fn owner() -> Owner {
    Owner {
        cluster_id: "c".into(),
        namespace: "ns".into(),
        kind: "HotPool".into(),
        name: "p".into(),
        uid: "uid-p".into(),
    }
}

fn named(name: &str, version: &str, task: Option<&str>, phase: WorkerPhase) -> HotPoolWorker {
    let mut w = obj(task, phase, 0);
    w.metadata.name = Some(name.into());
    w.spec.version = version.into();
    w.spec.task_definition_arn = format!("td-{version}");
    w
}

struct World {
    spec: crate::api::hot_pool::HotPoolSpec,
    workers: BTreeMap<String, HotPoolWorker>,
    tasks: BTreeMap<String, TaskObs>,
    running: Option<BTreeMap<String, BTreeSet<String>>>,
    claims: Vec<ClaimView>,
    held: BTreeMap<(String, String), (String, Duration)>,
}

impl World {
    fn new(when_empty: &str, on_release: &str) -> Self {
        Self {
            spec: spec(when_empty, on_release),
            workers: BTreeMap::new(),
            tasks: BTreeMap::new(),
            running: None,
            claims: Vec::new(),
            held: BTreeMap::new(),
        }
    }

    fn add(&mut self, w: HotPoolWorker) {
        self.workers.insert(w.metadata.name.clone().unwrap_or_default(), w);
    }

    fn plan(&self) -> PassPlan {
        let owner = owner();
        let tds = tds();
        plan_pass(&PassInput {
            spec: &self.spec,
            owner: &owner,
            workers: &self.workers,
            tasks: &self.tasks,
            running: self.running.as_ref(),
            claims: &self.claims,
            current_td: &tds,
            held: &self.held,
            resources: &[],
            launch_tag: TAG,
            run_task_max: 10,
            read_lag: std::time::Duration::from_secs(60),
            now: t(100),
        })
    }
}

fn launches(p: &PassPlan) -> Vec<(String, usize, usize)> {
    p.steps
        .iter()
        .filter_map(|s| match s {
            PoolStep::Launch { version, slots, .. } => {
                Some((version.clone(), slots.len(), slots.iter().filter(|s| s.is_some()).count()))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn a_worker_found_running_is_bound_in_the_same_pass() {
    let mut w = World::new("Wait", "Recycle");
    w.add(named("a", "1", Some("arn:aws:ecs:r:1:task/workers/a"), WorkerPhase::Starting));
    w.add(named("b", "1", Some("arn:aws:ecs:r:1:task/workers/b"), WorkerPhase::Available));
    w.tasks.insert("arn:aws:ecs:r:1:task/workers/a".into(), running("10.0.0.1"));
    w.claims = vec![claim("c1", "1", 0, ClaimPhase::Pending, None), claim("c2", "1", 1, ClaimPhase::Pending, None)];
    let p = w.plan();
    let ready = p.steps.iter().position(|s| matches!(s, PoolStep::Ready { worker, .. } if worker == "a"));
    let binds: Vec<(usize, &str)> = p
        .steps
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match s {
            PoolStep::Bind { worker, .. } => Some((i, worker.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(binds.len(), 2, "both claims bind: {:?}", p.steps);
    assert!(ready.is_some_and(|r| binds.iter().all(|(i, _)| *i > r)), "Ready is applied before the binds");
    assert_eq!(launches(&p), vec![("1".into(), 2, 0)], "scaleTo 2 is refilled for the two bound workers");
}

#[test]
fn a_worker_released_by_an_expired_claim_is_reused_not_launched_again() {
    let mut w = World::new("Wait", "Recycle");
    let mut held = named("a", "1", Some("arn:aws:ecs:r:1:task/workers/a"), WorkerPhase::Claimed);
    held.status.as_mut().expect("status").claim = worker("a", "1", WorkerPhase::Claimed, Some("c1")).claim;
    w.add(held);
    w.add(named("b", "1", Some("arn:aws:ecs:r:1:task/workers/b"), WorkerPhase::Available));
    let mut expired = claim("c1", "1", 0, ClaimPhase::Bound, Some("a"));
    expired.bound_at = Some(t(0));
    w.claims = vec![expired];
    let p = w.plan();
    assert!(
        p.steps
            .iter()
            .any(|s| matches!(s, PoolStep::Claim { step: ClaimStep::Expire { worker }, .. } if worker == "a")),
        "{:?}",
        p.steps
    );
    assert_eq!(launches(&p), Vec::new(), "the recycled worker and b make scaleTo 2");
}

#[test]
fn a_held_back_version_drops_its_unrecorded_rows_and_launches_nothing_while_others_launch() {
    let mut w = World::new("Wait", "Recycle");
    w.spec.versions[1].pooling = true;
    w.add(named("u", "1", None, WorkerPhase::Starting));
    w.held.insert(
        ("1".into(), "td-1".into()),
        ("spec.versions[0] (1): ECS rejected RunTask".into(), Duration::from_secs(30)),
    );
    let p = w.plan();
    assert!(p.steps.contains(&PoolStep::DropWorker { worker: "u".into() }));
    assert!(!p.steps.iter().any(|s| matches!(s, PoolStep::Relaunch { .. })));
    assert_eq!(launches(&p), vec![("2".into(), 1, 0)]);
    assert_eq!(p.problems.len(), 1);
    assert_eq!(p.problems[0].0, REASON_LAUNCH_REJECTED);
    assert_eq!(p.next, Some(Duration::from_secs(30)));
}

#[test]
fn unrecorded_launches_are_recovered_by_token_or_relaunched_with_it_never_lost() {
    let mut w = World::new("Wait", "Recycle");
    w.add(named("u1", "1", None, WorkerPhase::Starting));
    w.add(named("u2", "1", None, WorkerPhase::Starting));
    let mut found = running("10.0.0.9");
    found.tags.insert(TAG.into(), "tok".into());
    w.tasks.insert("arn:aws:ecs:r:1:task/workers/x".into(), found);
    w.running = Some([("workers".to_string(), ["arn:aws:ecs:r:1:task/workers/x".to_string()].into())].into());
    let p = w.plan();
    assert_eq!(
        p.steps[0],
        PoolStep::Recover { worker: "u1".into(), task_arn: "arn:aws:ecs:r:1:task/workers/x".into(), port: Some(7000) }
    );
    assert_eq!(
        p.steps[1],
        PoolStep::Relaunch {
            version: "1".into(),
            task_definition: "td-1".into(),
            token: "tok".into(),
            workers: vec!["u2".into()],
            // The first call asked for both: ECS refuses the token with another count.
            count: 2,
        }
    );
    assert!(!p.steps.iter().any(|s| matches!(s, PoolStep::Lost { .. } | PoolStep::StopOrphan { .. })), "{:?}", p.steps);
    assert!(
        p.steps.iter().any(|s| matches!(s, PoolStep::Ready { worker, .. } if worker == "u1")),
        "the recovered task is RUNNING: ready in the same pass"
    );
    assert_eq!(launches(&p), Vec::new(), "u1 and u2 make scaleTo 2");
}

#[test]
fn only_running_tasks_with_our_marks_are_stopped_as_orphans() {
    let mut w = World::new("Wait", "Recycle");
    let mut ours = running("10.0.0.1");
    ours.tags = owner().tags(&BTreeMap::new());
    let mut stopped = ours.clone();
    stopped.desired_status = "STOPPED".into();
    w.tasks.insert("ours".into(), ours);
    w.tasks.insert("stopped".into(), stopped);
    w.tasks.insert("foreign".into(), running("10.0.0.2"));
    let p = w.plan();
    let orphans: Vec<&PoolStep> = p.steps.iter().filter(|s| matches!(s, PoolStep::StopOrphan { .. })).collect();
    assert_eq!(orphans, vec![&PoolStep::StopOrphan { task_arn: "ours".into() }]);
}

#[test]
fn launches_are_batched_with_cold_starts_first_and_a_lost_worker_replaced() {
    let mut w = World::new("ColdStart", "Recycle");
    w.spec.versions[0].scale_to = 12;
    w.add(named("gone", "1", Some("arn:aws:ecs:r:1:task/workers/gone"), WorkerPhase::Available));
    w.running = Some([("workers".to_string(), BTreeSet::new())].into());
    w.claims = vec![claim("c1", "1", 0, ClaimPhase::Pending, None)];
    let p = w.plan();
    assert!(p.steps.iter().any(|s| matches!(s, PoolStep::Lost { worker, .. } if worker == "gone")));
    assert!(
        p.steps.iter().any(|s| matches!(s, PoolStep::Claim { claim, step: ClaimStep::ColdStart } if claim == "c1")),
        "{:?}",
        p.steps
    );
    // 12 for scaleTo (the lost worker is not counted) plus the cold start, in batches of 10.
    assert_eq!(launches(&p), vec![("1".into(), 10, 1), ("1".into(), 3, 0)]);
}
