//! HotPool against moto and the real apiserver: the plan and implementation tables, claims bound
//! exactly once (also in a burst, and from cached state with every ECS call failing), release with Stop and Recycle, lease expiry, lost and orphan
//! tasks, pool deletion, a lost RunTask response followed by a controller restart, and a move to
//! another cluster (idle workers replaced there, the claimed one kept until released, deletion
//! stopping tasks in both).
//!
//! moto starts Fargate tasks RUNNING with an ENI IP at once (env-up pins its state machine so they
//! stay RUNNING); stopping a task "behind the operator's back" is a StopTask from the test.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ecs::types::DesiredStatus;
use fargate_operator::api::hot_pool::{ClaimPhase, WorkerPhase};
use fargate_operator::api::{HotPool, HotPoolClaim, HotPoolWorker};
use fargate_operator::controller::hot_pool::plan::started_by;
use kube::ResourceExt;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::wait::await_condition;
use serde_json::json;
use support::operator::InProcessOperator;
use support::pool::{Setup, WAIT, eventually, versions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_version_pool_reaches_its_counts_and_kubectl_shows_the_table() {
    let s = Setup::new("hp-table").await;
    let td_ref = s.tds[1].rsplit('/').next().expect("family:rev").to_string();
    let mut versions = versions(&s, &[("2.4.1", 0, 3, true), ("2.5.0", 1, 2, true)]);
    versions[1]["taskDefinition"] = json!(td_ref); // family:revision form is resolved to the ARN
    s.create_pool(&s.pool("pool", versions, json!({}))).await;
    let pool = s.wait_counts("pool", 5, 0).await;
    let st = pool.status.expect("status");
    let by_version: BTreeMap<&str, (i32, i32, Option<&str>)> = st
        .versions
        .iter()
        .map(|v| (v.version.as_str(), (v.available, v.scale_to, v.task_definition_arn.as_deref())))
        .collect();
    assert_eq!(by_version["2.4.1"], (3, 3, Some(s.tds[0].as_str())));
    assert_eq!(by_version["2.5.0"], (2, 2, Some(s.tds[1].as_str())));
    // The ownership inventory: the cluster the pool started its tasks in, and how to find them.
    let uid = s.uid("pool").await;
    let inventory: Vec<(&str, &str, Option<&str>)> =
        st.resources.iter().map(|r| (r.type_.as_str(), r.id.as_str(), r.name.as_deref())).collect();
    assert_eq!(inventory, [("Tasks", s.cluster.as_str(), Some(started_by(&uid).as_str()))]);

    let workers = s.assert_one_task_per_worker("pool").await;
    assert_eq!(workers.len(), 5);
    for w in &workers {
        let ws = w.status.as_ref().expect("worker status");
        assert_eq!(ws.phase, Some(WorkerPhase::Available));
        assert_eq!(ws.port, Some(7000));
        let (_, ip, tags) = s.task_state(ws.task_arn.as_deref().expect("arn")).await;
        assert_eq!(ws.ip, ip, "the worker's IP is its task's ENI address");
        assert_eq!(tags.get("fargate.operator.dev/uid"), Some(&uid));
        assert_eq!(tags.get("fargate.operator.dev/version"), Some(&w.spec.version));
        assert_eq!(w.labels().get("fargate.operator.dev/version"), Some(&w.spec.version));
    }
    // The implementation table, as a user sees it.
    let (ok, out, err) =
        s.ctx.kubectl(&["get", "hpw", "-n", &s.ctx.namespace, "-l", "fargate.operator.dev/pool=pool"], None);
    assert!(ok, "{err}");
    let rows: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(rows.len(), 5, "{out}");
    assert!(
        out.lines().next().is_some_and(|h| h.contains("PHASE") && h.contains("IP") && h.contains("VERSION")),
        "{out}"
    );
    assert!(rows.iter().all(|r| r.contains("Available") && r.contains("7000")), "{out}");
    // Converged: a resync launches and writes nothing.
    let launches = s.op().metrics.aws_call_count("ecs", "RunTask", "success");
    let writes = s.op().metrics.status_write_count("HotPoolWorker");
    s.pools
        .patch("pool", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"annotations": {"touch": "1"}}})))
        .await
        .expect("touch");
    s.wait_counts("pool", 5, 0).await;
    assert_eq!(s.op().metrics.aws_call_count("ecs", "RunTask", "success"), launches);
    assert_eq!(s.op().metrics.status_write_count("HotPoolWorker"), writes);
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_binds_with_ip_and_port_the_pool_refills_and_release_stops_the_worker() {
    let s = Setup::new("hp-claim").await;
    s.create_pool(&s.pool("pool", versions(&s, &[("1", 0, 2, true), ("cold", 1, 0, false)]), json!({}))).await;
    s.wait_counts("pool", 2, 0).await;

    s.create_claim("job-1", "pool", "1").await;
    let c = s.wait_claim("job-1", ClaimPhase::Bound).await;
    let cs = c.status.expect("claim status");
    let worker_name = cs.worker.clone().expect("worker");
    let worker = s.workers.get(&worker_name).await.expect("worker");
    let ws = worker.status.expect("worker status");
    assert_eq!(ws.phase, Some(WorkerPhase::Claimed));
    assert_eq!(ws.claim.as_ref().map(|r| r.name.as_str()), Some("job-1"));
    assert_eq!(cs.ip, ws.ip);
    assert!(cs.ip.is_some());
    assert_eq!(cs.port, Some(7000));
    assert_eq!(cs.task_arn, ws.task_arn);
    assert_eq!(cs.cold_start, Some(false));
    assert!(cs.bound_at.is_some() && cs.expires_at.is_some());
    assert!(cs.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    // The pool refills to scaleTo idle workers besides the claimed one.
    s.wait_counts("pool", 2, 1).await;
    s.assert_one_task_per_worker("pool").await;
    s.wait_bound_metric("pool", 1).await;

    // A version with pooling off cold-starts a worker for the claim.
    s.create_claim("job-cold", "pool", "cold").await;
    let c = s.wait_claim("job-cold", ClaimPhase::Bound).await;
    assert_eq!(c.status.as_ref().and_then(|s| s.cold_start), Some(true));
    s.wait_bound_metric("cold", 1).await;

    // A claim on a pool that does not exist says so.
    s.create_claim("lost", "no-such-pool", "1").await;
    let c = s.wait_claim("lost", ClaimPhase::Pending).await;
    tokio::time::timeout(
        WAIT,
        await_condition(s.claims.clone(), "lost", |o: Option<&HotPoolClaim>| {
            o.and_then(|c| c.status.as_ref()).is_some_and(|s| {
                s.conditions.iter().any(|c| c.reason == "PoolNotFound" && c.message.contains("spec.pool"))
            })
        }),
    )
    .await
    .unwrap_or_else(|_| panic!("no PoolNotFound on {:?}", c.status))
    .expect("watch");

    // Deleting the claim releases the worker with onRelease: Stop: its task is stopped.
    let task = cs.task_arn.expect("task");
    s.claims.delete("job-1", &DeleteParams::default()).await.expect("delete claim");
    s.wait_worker_gone(&worker_name).await;
    assert_eq!(s.task_state(&task).await.0, "STOPPED");
    s.wait_counts("pool", 2, 1).await;
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recycle_returns_the_worker_and_an_unrenewed_lease_expires() {
    let s = Setup::new("hp-recycle").await;
    let claims = json!({"leaseSeconds": 10, "onRelease": "Recycle", "whenEmpty": "Wait"});
    s.create_pool(&s.pool("pool", versions(&s, &[("1", 0, 1, true)]), json!({"claims": claims}))).await;
    s.wait_counts("pool", 1, 0).await;

    s.create_claim("a", "pool", "1").await;
    let bound = s.wait_claim("a", ClaimPhase::Bound).await.status.expect("status");
    let w = bound.worker.clone().expect("worker");
    s.wait_counts("pool", 1, 1).await;
    s.claims.delete("a", &DeleteParams::default()).await.expect("delete claim");
    // The worker goes back to Available; the surplus idle worker (the older one) is stopped.
    tokio::time::timeout(
        WAIT,
        await_condition(s.workers.clone(), &w, |o: Option<&HotPoolWorker>| {
            o.and_then(|w| w.status.as_ref())
                .is_some_and(|s| s.phase == Some(WorkerPhase::Available) && s.claim.is_none())
        }),
    )
    .await
    .expect("recycled worker Available")
    .expect("watch");
    s.wait_counts("pool", 1, 0).await;
    assert_eq!(s.task_state(bound.task_arn.as_deref().expect("arn")).await.0, "RUNNING");
    s.assert_one_task_per_worker("pool").await;

    // A lease of 10 s: renewing moves expiresAt, then without renewal the claim expires and its
    // worker is recycled.
    s.create_claim("b", "pool", "1").await;
    let first = s.wait_claim("b", ClaimPhase::Bound).await.status.expect("status");
    let renewed = k8s_openapi::jiff::Timestamp::now() + k8s_openapi::jiff::SignedDuration::from_secs(2);
    s.claims
        .patch("b", &PatchParams::default(), &Patch::Merge(json!({"spec": {"renewedAt": renewed.to_string()}})))
        .await
        .expect("renew");
    let before = first.expires_at.expect("expiresAt").0;
    tokio::time::timeout(
        WAIT,
        await_condition(s.claims.clone(), "b", move |o: Option<&HotPoolClaim>| {
            o.and_then(|c| c.status.as_ref()).and_then(|s| s.expires_at.as_ref()).is_some_and(|e| e.0 > before)
        }),
    )
    .await
    .expect("renewal extends expiresAt")
    .expect("watch");
    let expired = s.wait_claim("b", ClaimPhase::Expired).await.status.expect("status");
    assert!(expired.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "False" && c.reason == "LeaseExpired"));
    let w = expired.worker.expect("worker");
    tokio::time::timeout(
        WAIT,
        await_condition(s.workers.clone(), &w, |o: Option<&HotPoolWorker>| {
            o.and_then(|w| w.status.as_ref()).is_some_and(|s| s.phase == Some(WorkerPhase::Available))
        }),
    )
    .await
    .expect("expired claim's worker recycled")
    .expect("watch");
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_concurrent_claims_on_a_pool_of_ten_each_get_their_own_worker() {
    let s = Setup::new("hp-burst").await;
    s.create_pool(&s.pool("pool", versions(&s, &[("1", 0, 10, true)]), json!({}))).await;
    s.wait_counts("pool", 10, 0).await;

    let names: Vec<String> = (0..40).map(|i| format!("burst-{i:02}")).collect();
    futures::future::join_all(names.iter().map(|n| s.create_claim(n, "pool", "1"))).await;
    let mut bound: BTreeMap<String, String> = BTreeMap::new();
    for n in &names {
        let st = s.wait_claim(n, ClaimPhase::Bound).await.status.expect("status");
        bound.insert(n.clone(), st.worker.expect("worker"));
    }
    let distinct: BTreeSet<&String> = bound.values().collect();
    assert_eq!(distinct.len(), 40, "two claims share a worker: {bound:?}");
    // Each worker names the claim that names it.
    for (claim, worker) in &bound {
        let w = s.workers.get(worker).await.expect("worker");
        assert_eq!(w.status.and_then(|s| s.claim).map(|r| r.name), Some(claim.clone()));
    }
    let pool = s.wait_counts("pool", 10, 40).await;
    let workers = s.assert_one_task_per_worker("pool").await;
    assert_eq!(workers.len(), 50);
    // No task was launched twice: every task the pool ever started is one of these workers.
    let ever = s.tasks(&pool.uid().expect("uid"), None).await;
    assert_eq!(ever.len(), 50, "tasks launched: {}", ever.len());
    s.wait_bound_metric("pool", 40).await;
    s.finish().await;
}

/// Every claim of `names` Bound, each to its own worker, worker and claim naming each other (the
/// worker's reference carries the claim's UID, the claim its worker's address and task).
async fn assert_bound_pairwise(s: &Setup, names: &[String]) -> BTreeMap<String, String> {
    let mut bound: BTreeMap<String, String> = BTreeMap::new();
    for n in names {
        let c = s.wait_claim(n, ClaimPhase::Bound).await;
        let cs = c.status.clone().expect("claim status");
        let worker = cs.worker.clone().expect("worker");
        let w = s.workers.get(&worker).await.expect("worker");
        let ws = w.status.expect("worker status");
        assert_eq!(ws.phase, Some(WorkerPhase::Claimed), "{worker}");
        let r = ws.claim.expect("the worker names its claim");
        assert_eq!((r.name.as_str(), r.uid.as_deref()), (n.as_str(), c.metadata.uid.as_deref()), "{worker}");
        assert_eq!((cs.ip, cs.port, cs.task_arn), (ws.ip, ws.port, ws.task_arn), "{n} and {worker} disagree");
        assert!(cs.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        bound.insert(n.clone(), worker);
    }
    let distinct: BTreeSet<&String> = bound.values().collect();
    assert_eq!(distinct.len(), names.len(), "two claims share a worker: {bound:?}");
    bound
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_thirty_claims_on_a_full_pool_is_bound_at_once_each_to_its_own_idle_worker() {
    let s = Setup::new("hp-bind-burst").await;
    s.create_pool(&s.pool("pool", versions(&s, &[("1", 0, 32, true)]), json!({}))).await;
    s.wait_counts("pool", 32, 0).await;
    let idle: BTreeSet<String> = s.pool_workers("pool").await.iter().map(|w| w.name_any()).collect();

    let names: Vec<String> = (0..30).map(|i| format!("burst-{i:02}")).collect();
    futures::future::join_all(names.iter().map(|n| s.create_claim(n, "pool", "1"))).await;
    let bound = assert_bound_pairwise(&s, &names).await;
    // Each got a worker that was idle before the burst: none waited for a launch.
    assert!(bound.values().all(|w| idle.contains(w)), "{bound:?}");
    // Every binding was timed from the watch event of its claim.
    let metrics = s.op().metrics.clone();
    eventually("30 binds in hotpool_claim_bind_seconds", || {
        let m = metrics.clone();
        async move { m.claim_bind_count() == 30 }
    })
    .await;
    s.wait_bound_metric("pool", 30).await;
    // The pool refills to 32 idle workers besides the 30 claimed, one task each.
    s.wait_counts("pool", 32, 30).await;
    assert_eq!(s.assert_one_task_per_worker("pool").await.len(), 62);
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_are_bound_from_cached_state_while_every_ecs_call_fails() {
    let mut s = Setup::new("hp-bind-no-aws").await;
    s.create_pool(&s.pool("pool", versions(&s, &[("1", 0, 6, true)]), json!({}))).await;
    s.wait_counts("pool", 6, 0).await;
    // A new leader whose every ECS call is refused: its pool passes fail from their first read (the
    // sweep's ListTasks), so only a bind path with no AWS call can bind.
    if let Some(op) = s.op.take() {
        op.kill().await;
    }
    let refused = "ListTasks=throttle>0,DescribeTasks=throttle>0,DescribeTaskDefinition=throttle>0,RunTask=throttle>0,StopTask=throttle>0";
    s.op = Some(InProcessOperator::start_with_faults(&s.ctx, refused).await);
    let names: Vec<String> = (0..5).map(|i| format!("cached-{i}")).collect();
    futures::future::join_all(names.iter().map(|n| s.create_claim(n, "pool", "1"))).await;
    assert_bound_pairwise(&s, &names).await;
    let m = s.op().metrics.clone();
    // The pool passes do try (and fail): they read ECS before anything else.
    eventually("a throttled ecs:ListTasks", || {
        let m = m.clone();
        async move { m.aws_call_count("ecs", "ListTasks", "throttling") > 0 }
    })
    .await;
    for op in ["ListTasks", "DescribeTasks", "DescribeTaskDefinition", "RunTask", "StopTask"] {
        assert_eq!(m.aws_call_count("ecs", op, "success"), 0, "ecs:{op} succeeded");
    }
    assert_eq!(m.claim_bind_count(), 5);
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_tasks_are_replaced_orphans_stopped_and_deleting_the_pool_stops_everything_and_fails_its_claims() {
    let s = Setup::new("hp-sweep").await;
    s.create_pool(&s.pool("pool", versions(&s, &[("1", 0, 2, true)]), json!({"replenishIntervalSeconds": 5}))).await;
    s.wait_counts("pool", 2, 0).await;
    let uid = s.uid("pool").await;
    let workers = s.pool_workers("pool").await;
    let victim = workers[0].clone();
    let victim_task = victim.status.as_ref().and_then(|s| s.task_arn.clone()).expect("arn");

    // A task stopped behind the operator's back: its worker is removed and replaced.
    s.ecs
        .stop_task()
        .cluster(&s.cluster)
        .task(&victim_task)
        .reason("test: stopped by hand")
        .send()
        .await
        .expect("ecs:StopTask");
    s.wait_worker_gone(&victim.name_any()).await;
    s.wait_counts("pool", 2, 0).await;
    s.assert_one_task_per_worker("pool").await;

    // A task with the pool's startedBy and owner tags but no worker is stopped.
    let pool = s.pools.get("pool").await.expect("pool");
    let tags = [
        ("fargate.operator.dev/cluster", "test".to_string()),
        ("fargate.operator.dev/owner", format!("{}/HotPool/pool", s.ctx.namespace)),
        ("fargate.operator.dev/uid", uid.clone()),
        ("fargate.operator.dev/launch", "not-ours".into()),
    ];
    let orphan = s.run_task_by_hand(&pool, &tags).await;
    eventually("orphan stopped", || async { s.task_state(&orphan).await.0 == "STOPPED" }).await;
    s.assert_one_task_per_worker("pool").await;

    // Deleting the pool stops every task it launched, removes its workers and fails the claim
    // that held one (no event of the claim's own would: it stayed Ready for a stopped task; found
    // by the simulator).
    s.create_claim("held", "pool", "1").await;
    s.wait_claim("held", ClaimPhase::Bound).await;
    s.pools.delete("pool", &DeleteParams::default()).await.expect("delete pool");
    let failed = s.wait_claim("held", ClaimPhase::Failed).await;
    let ready = failed.status.iter().flat_map(|st| st.conditions.iter()).find(|c| c.type_ == "Ready").cloned();
    assert_eq!(ready.map(|c| (c.status, c.reason)), Some(("False".into(), "PoolDeleted".into())));
    tokio::time::timeout(WAIT, await_condition(s.pools.clone(), "pool", |o: Option<&HotPool>| o.is_none()))
        .await
        .expect("pool deleted")
        .expect("watch");
    assert!(s.tasks(&uid, Some(DesiredStatus::Running)).await.is_empty(), "running tasks left after deletion");
    assert!(s.pool_workers("pool").await.is_empty(), "workers left after deletion");
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_run_task_response_and_a_restart_launch_no_duplicate() {
    // Every ListTasks after the first is throttled: the first controller cannot look for the lost
    // tasks, so it is the restarted one that must find them.
    let mut s = Setup::with_faults("hp-restart", "RunTask=lost@1,ListTasks=throttle>1").await;
    s.create_pool(&s.pool("pool", versions(&s, &[("1", 0, 3, true)]), json!({}))).await;
    // RunTask ran in AWS but its response was lost: workers exist, their task ARNs are unknown.
    // The controller is killed at that moment; a new one takes over.
    s.kill_operator_after("RunTask", "transient").await;
    let uid = s.uid("pool").await;
    assert_eq!(s.tasks(&uid, None).await.len(), 3, "the lost call launched the batch once");
    s.op = Some(InProcessOperator::start(&s.ctx).await);
    s.wait_counts("pool", 3, 0).await;
    let workers = s.assert_one_task_per_worker("pool").await;
    assert_eq!(workers.len(), 3);
    assert_eq!(s.tasks(&uid, None).await.len(), 3, "a task was launched twice");
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_written_by_a_launcher_that_died_before_run_task_are_launched_once_and_kept() {
    // Every RunTask is rejected before it is sent: the first controller writes its workers (the
    // intent, with the launch token) and never launches them.
    let mut s = Setup::with_faults("hp-relaunch", "RunTask=throttle>0").await;
    // No periodic sweep during the test: an orphaned task must not be hidden by one.
    s.create_pool(&s.pool("pool", versions(&s, &[("1", 0, 3, true)]), json!({"replenishIntervalSeconds": 3600}))).await;
    s.kill_operator_after("RunTask", "throttling").await;
    let written: BTreeSet<String> = s.pool_workers("pool").await.iter().map(|w| w.name_any()).collect();
    assert_eq!(written.len(), 3, "the workers are written before RunTask");
    let uid = s.uid("pool").await;
    assert!(s.tasks(&uid, None).await.is_empty(), "nothing was launched");

    // The next controller launches those workers with their token and keeps them: their tasks are
    // newer than its task list, which must not make them look lost.
    s.op = Some(InProcessOperator::start(&s.ctx).await);
    s.wait_counts("pool", 3, 0).await;
    let workers = s.assert_one_task_per_worker("pool").await;
    let kept: BTreeSet<String> = workers.iter().map(|w| w.name_any()).collect();
    assert_eq!(kept, written, "the relaunched workers were deleted and replaced");
    assert_eq!(s.tasks(&uid, None).await.len(), 3, "a task was orphaned or launched twice");
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_version_stops_its_idle_workers_but_never_a_claimed_one() {
    let s = Setup::new("hp-versions").await;
    s.create_pool(&s.pool("pool", versions(&s, &[("old", 0, 2, true), ("new", 1, 1, true)]), json!({}))).await;
    s.wait_counts("pool", 3, 0).await;
    s.create_claim("keeps", "pool", "old").await;
    let held = s.wait_claim("keeps", ClaimPhase::Bound).await.status.expect("status");
    s.wait_counts("pool", 3, 1).await;

    // Drop version "old" from the plan table.
    let patch = json!({"spec": {"versions": versions(&s, &[("new", 1, 1, true)])}});
    s.pools.patch("pool", &PatchParams::default(), &Patch::Merge(patch)).await.expect("patch versions");
    s.wait_counts("pool", 1, 1).await;
    let workers = s.assert_one_task_per_worker("pool").await;
    let old: Vec<&HotPoolWorker> = workers.iter().filter(|w| w.spec.version == "old").collect();
    assert_eq!(old.len(), 1, "only the claimed worker of the removed version is left");
    assert_eq!(old[0].name_any(), held.worker.clone().expect("worker"));
    assert_eq!(s.task_state(held.task_arn.as_deref().expect("arn")).await.0, "RUNNING");
    let c = s.claims.get("keeps").await.expect("claim");
    assert_eq!(c.status.and_then(|s| s.phase), Some(ClaimPhase::Bound));

    // pooling: false on the remaining version stops its idle worker too.
    let patch = json!({"spec": {"versions": versions(&s, &[("new", 1, 1, false)])}});
    s.pools.patch("pool", &PatchParams::default(), &Patch::Merge(patch)).await.expect("patch pooling");
    s.wait_counts("pool", 0, 1).await;
    assert_eq!(s.assert_one_task_per_worker("pool").await.len(), 1);
    s.finish().await;
}

/// A new leader finds several pools at once, and every first reconcile waits for the claim store
/// together. kube-runtime 5.0's `Store::wait_until_ready` wakes only one of such waiters: the
/// chaos run's new leader served one pool of ten and left the others waiting forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_serves_every_pool_that_already_exists() {
    let mut s = Setup::new("hp-takeover").await;
    if let Some(op) = s.op.take() {
        op.kill().await;
    }
    let names = ["p0", "p1", "p2", "p3", "p4", "p5", "p6", "p7"];
    for name in names {
        s.create_pool(&s.pool(name, versions(&s, &[("1", 0, 1, true)]), json!({}))).await;
        s.create_claim(&format!("c-{name}"), name, "1").await;
    }
    // More claims make the claim store's first list slower than the pools' first reconciles.
    for i in 0..150 {
        s.create_claim(&format!("elsewhere-{i}"), "no-such-pool", "1").await;
    }
    s.op = Some(InProcessOperator::start(&s.ctx).await);
    for name in names {
        s.wait_claim(&format!("c-{name}"), ClaimPhase::Bound).await;
        s.wait_counts(name, 1, 1).await;
    }
    s.finish().await;
}

/// `Degraded` is True with `reason` and a message containing `field`.
fn degraded_for(p: &HotPool, reason: &str, field: &str) -> bool {
    p.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Degraded" && c.status == "True" && c.reason == reason && c.message.contains(field))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_whose_launches_ecs_rejects_does_not_stop_claims_on_the_others() {
    let s = Setup::new("hp-rejected").await;
    s.create_pool(&s.pool(
        "pool",
        versions(&s, &[("good", 0, 1, true), ("bad", 1, 1, true)]),
        json!({"replenishIntervalSeconds": 5}),
    ))
    .await;
    s.wait_counts("pool", 2, 0).await;

    // The bad version's revision is deleted, then its worker's task stops: the replacement's
    // RunTask is refused ("Unable to describe task definition").
    let bad_td = s.tds[1].clone();
    s.ecs.deregister_task_definition().task_definition(&bad_td).send().await.expect("deregister");
    s.ecs.delete_task_definitions().task_definitions(&bad_td).send().await.expect("delete revision");
    let bad_worker = s.pool_workers("pool").await.into_iter().find(|w| w.spec.version == "bad").expect("bad worker");
    let arn = bad_worker.status.as_ref().and_then(|s| s.task_arn.clone()).expect("arn");
    s.ecs.stop_task().cluster(&s.cluster).task(&arn).send().await.expect("ecs:StopTask");
    s.wait_pool("pool", "Degraded/LaunchRejected naming spec.versions[1]", |p| {
        degraded_for(p, "LaunchRejected", "spec.versions[1]")
    })
    .await;
    let first_rejection = std::time::Instant::now();

    // Claims on the healthy version still bind, one after another (each a pass of the pool).
    for name in ["c1", "c2", "c3"] {
        s.create_claim(name, "pool", "good").await;
        s.wait_claim(name, ClaimPhase::Bound).await;
    }
    // Each bind was a pass; without the wait after a rejection each would have called RunTask for
    // the bad version again. With it: one call per 30 s at most (the delay then doubles).
    let rejected = s.op().metrics.aws_call_count("ecs", "RunTask", "terminal")
        + s.op().metrics.aws_call_count("ecs", "RunTask", "not_found");
    let allowed = 1 + first_rejection.elapsed().as_secs() / 30;
    assert!((1..=allowed).contains(&rejected), "{rejected} rejected RunTask calls, at most {allowed} expected");
    // Nothing of the rejected launch is left behind: every worker row gets its task (a row of a
    // launch in flight has none for a moment, so this waits).
    let workers = s.workers.clone();
    eventually("every worker row has a task", || {
        let workers = workers.clone();
        async move {
            let lp = kube::api::ListParams::default().labels("fargate.operator.dev/pool=pool");
            let items = workers.list(&lp).await.expect("list workers").items;
            items.iter().all(|w| w.status.as_ref().and_then(|s| s.task_arn.as_ref()).is_some())
        }
    })
    .await;
    s.wait_pool("pool", "still Degraded for the bad version", |p| {
        degraded_for(p, "LaunchRejected", "spec.versions[1]")
            || degraded_for(p, "TaskDefinitionNotFound", "spec.versions[1]")
    })
    .await;
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_on_a_cluster_that_is_gone_reports_it_and_its_deletion_completes() {
    let s = Setup::new("hp-no-cluster").await;
    let mut pool = s.pool("pool", versions(&s, &[("1", 0, 2, true)]), json!({}));
    pool.spec.cluster = "deleted-cluster".into();
    s.create_pool(&pool).await;
    s.wait_pool("pool", "Degraded/ClusterNotFound naming spec.cluster", |p| {
        degraded_for(p, "ClusterNotFound", "spec.cluster")
    })
    .await;
    assert!(s.pool_workers("pool").await.is_empty(), "no worker row is written for a pool without a cluster");
    s.pools.delete("pool", &DeleteParams::default()).await.expect("delete pool");
    tokio::time::timeout(WAIT, await_condition(s.pools.clone(), "pool", |o: Option<&HotPool>| o.is_none()))
        .await
        .expect("the pool's deletion completes: a missing cluster has no tasks to stop")
        .expect("watch");
    s.finish().await;
}

/// The `Tasks` entries of the pool's inventory: (cluster, startedBy).
fn inventory(p: &HotPool) -> Vec<(String, Option<String>)> {
    p.status.as_ref().map_or_else(Vec::new, |s| {
        s.resources.iter().filter(|r| r.type_ == "Tasks").map(|r| (r.id.clone(), r.name.clone())).collect()
    })
}

/// Move the pool to `cluster` and wait until the edit's generation is Ready with `available` idle
/// and `claimed` claimed workers.
async fn move_pool(s: &Setup, pool: &str, cluster: &str, available: i32, claimed: i32) -> HotPool {
    let patch = json!({"spec": {"cluster": cluster}});
    let edited = s.pools.patch(pool, &PatchParams::default(), &Patch::Merge(patch)).await.expect("patch cluster");
    let generation = edited.metadata.generation;
    s.wait_pool(pool, "the moved pool Ready with its counts", move |p| {
        let st = p.status.as_ref();
        st.is_some_and(|s| s.observed_generation == generation)
            && st.and_then(|s| s.available) == Some(available)
            && st.and_then(|s| s.claimed) == Some(claimed)
            && st.and_then(|s| s.starting) == Some(0)
            && st.is_some_and(|s| s.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_a_pool_to_another_cluster_replaces_its_idle_workers_and_keeps_the_claimed_one_until_released() {
    let s = Setup::new("hp-move").await;
    let spare = s.another_cluster("spare").await;
    s.create_pool(&s.pool("pool", versions(&s, &[("1", 0, 2, true)]), json!({"replenishIntervalSeconds": 5}))).await;
    s.wait_counts("pool", 2, 0).await;
    s.create_claim("held", "pool", "1").await;
    let held = s.wait_claim("held", ClaimPhase::Bound).await.status.expect("claim status");
    let held_task = held.task_arn.clone().expect("task");
    let held_worker = held.worker.clone().expect("worker");
    s.wait_counts("pool", 2, 1).await;
    let uid = s.uid("pool").await;
    let before = s.tasks_in(&s.cluster, &uid, Some(DesiredStatus::Running)).await;
    assert_eq!(before.len(), 3);

    let moved = move_pool(&s, "pool", &spare, 2, 1).await;
    // The idle tasks in the old cluster are stopped; the claimed one runs on, and the new cluster
    // has scaleTo idle workers of the pool.
    let old = s.tasks_in(&s.cluster, &uid, Some(DesiredStatus::Running)).await;
    assert_eq!(old, [held_task.clone()].into(), "only the claimed task is left in the old cluster");
    for arn in before.iter().filter(|a| **a != held_task) {
        assert_eq!(s.task_state(arn).await.0, "STOPPED", "idle task {arn} of the old cluster");
    }
    let new = s.tasks_in(&spare, &uid, Some(DesiredStatus::Running)).await;
    assert_eq!(new.len(), 2, "scaleTo idle workers in the new cluster: {new:?}");
    let workers = s.assert_one_task_per_worker("pool").await;
    for w in &workers {
        let arn = w.status.as_ref().and_then(|s| s.task_arn.clone()).expect("arn");
        if w.name_any() == held_worker {
            assert_eq!(arn, held_task);
            assert_eq!(w.status.as_ref().and_then(|s| s.phase), Some(WorkerPhase::Claimed));
        } else {
            assert!(new.contains(&arn), "idle worker {} is not in the new cluster", w.name_any());
        }
    }
    assert_eq!(s.claims.get("held").await.expect("claim").status.and_then(|s| s.phase), Some(ClaimPhase::Bound));
    let both: Vec<(String, Option<String>)> =
        vec![(spare.clone(), Some(started_by(&uid))), (s.cluster.clone(), Some(started_by(&uid)))];
    assert_eq!(inventory(&moved), both, "both clusters have tasks of the pool");

    // Released (onRelease: Stop), the claimed task stops in its own cluster, and the old cluster,
    // empty now, leaves the inventory.
    s.claims.delete("held", &DeleteParams::default()).await.expect("delete claim");
    s.wait_worker_gone(&held_worker).await;
    assert_eq!(s.task_state(&held_task).await.0, "STOPPED");
    assert!(s.tasks_in(&s.cluster, &uid, Some(DesiredStatus::Running)).await.is_empty());
    let only_new = vec![(spare.clone(), Some(started_by(&uid)))];
    let expected = only_new.clone();
    s.wait_pool("pool", "only the new cluster in status.resources", move |p| inventory(p) == expected).await;
    s.wait_counts("pool", 2, 0).await;
    assert_eq!(s.tasks_in(&spare, &uid, Some(DesiredStatus::Running)).await.len(), 2);
    s.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_pool_after_a_cluster_move_stops_its_tasks_in_both_clusters() {
    let s = Setup::new("hp-move-delete").await;
    let spare = s.another_cluster("spare").await;
    s.create_pool(&s.pool("pool", versions(&s, &[("1", 0, 1, true)]), json!({}))).await;
    s.wait_counts("pool", 1, 0).await;
    s.create_claim("held", "pool", "1").await;
    s.wait_claim("held", ClaimPhase::Bound).await;
    s.wait_counts("pool", 1, 1).await;
    let uid = s.uid("pool").await;
    let moved = move_pool(&s, "pool", &spare, 1, 1).await;
    assert_eq!(inventory(&moved).len(), 2, "{:?}", inventory(&moved));
    // A task of the pool in the old cluster that no worker records and that carries no owner tags
    // (the sweep leaves such a task alone): only ListTasks startedBy in that cluster finds it.
    let unrecorded = s.run_task_by_hand(&moved, &[]).await;
    assert_eq!(s.tasks_in(&s.cluster, &uid, Some(DesiredStatus::Running)).await.len(), 2);
    assert_eq!(s.tasks_in(&spare, &uid, Some(DesiredStatus::Running)).await.len(), 1);

    s.pools.delete("pool", &DeleteParams::default()).await.expect("delete pool");
    tokio::time::timeout(WAIT, await_condition(s.pools.clone(), "pool", |o: Option<&HotPool>| o.is_none()))
        .await
        .expect("pool deleted")
        .expect("watch");
    for cluster in [&s.cluster, &spare] {
        let left = s.tasks_in(cluster, &uid, Some(DesiredStatus::Running)).await;
        assert!(left.is_empty(), "tasks left running in cluster {cluster}: {left:?}");
    }
    assert_eq!(s.task_state(&unrecorded).await.0, "STOPPED");
    s.finish().await;
}
