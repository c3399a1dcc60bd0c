//! HotPool, HotPoolWorker and HotPoolClaim: hostile specs and statuses through deserialization,
//! `Managed::validate` (claims at hostile times), the claim views and lease arithmetic, the claim
//! status builders, the inventory helpers, the status merge, and the whole pool pass
//! (`plan_pass`) over workers and claims that name each other, with hostile ECS answers.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::ObjectMeta;
use proptest::prelude::*;
use serde_json::Value;

use super::{Draw, Pools, Reach, fuzz, part_of, pools};
use crate::api::hot_pool::WorkerClaimRef;
use crate::api::validation::validate_hot_pool_claim;
use crate::api::{HotPool, HotPoolClaim, HotPoolClaimStatus, HotPoolSpec, HotPoolStatus, HotPoolWorker};
use crate::aws::naming::Owner;
use crate::controller::Managed;
use crate::controller::hot_pool::claim::{invalid_status, next_status, pool_gone_status};
use crate::controller::hot_pool::inventory;
use crate::controller::hot_pool::plan::{ClaimView, PassInput, TaskObs, WorkerView, batches, plan_pass, started_by};
use crate::runtime::clock;
use crate::runtime::status::ObjectStatus;

const TASK_STATES: &[&str] = &["PROVISIONING", "PENDING", "RUNNING", "STOPPING", "STOPPED", "DELETED", ""];

fn meta(name: String, d: &Draw<'_>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some("team".into()),
        uid: Some(d.s()),
        generation: d.b().then(|| d.i64()),
        creation_timestamp: d.b().then(|| Time(d.time())),
        ..Default::default()
    }
}

/// Workers and claims from the generated values, cross-linked now and then: a worker's version is
/// one the spec has, a claim names a worker, a worker names a claim.
fn objects(
    spec: &HotPoolSpec,
    workers: Vec<(Value, Value)>,
    claims: Vec<(Value, Value)>,
    d: &Draw<'_>,
) -> (BTreeMap<String, HotPoolWorker>, Vec<HotPoolClaim>) {
    let versions: Vec<&str> = spec.versions.iter().map(|v| v.version.as_str()).collect();
    let pick =
        |d: &Draw<'_>| versions.get(d.i64().unsigned_abs() as usize % versions.len().max(1)).map(|v| v.to_string());
    let mut ws = BTreeMap::new();
    for (i, (s, st)) in workers.into_iter().enumerate() {
        let Ok(mut w) = serde_json::from_value::<HotPoolWorker>(serde_json::json!({
            "apiVersion": "fargate.operator.dev/v1alpha1", "kind": "HotPoolWorker",
            "metadata": {"name": format!("w{i}")}, "spec": s, "status": st
        })) else {
            continue;
        };
        w.metadata = meta(format!("w{i}"), d);
        if d.b()
            && let Some(v) = pick(d)
        {
            w.spec.version = v;
        }
        let _ = w.validate();
        ws.insert(format!("w{i}"), w);
    }
    let mut cs = Vec::new();
    for (i, (s, st)) in claims.into_iter().enumerate() {
        let Ok(mut c) = serde_json::from_value::<HotPoolClaim>(serde_json::json!({
            "apiVersion": "fargate.operator.dev/v1alpha1", "kind": "HotPoolClaim",
            "metadata": {"name": format!("c{i}")}, "spec": s, "status": st
        })) else {
            continue;
        };
        c.metadata = meta(format!("c{i}"), d);
        if d.b()
            && let Some(v) = pick(d)
        {
            c.spec.version = v;
        }
        if d.b() {
            let worker = format!("w{}", d.i64().rem_euclid(4));
            let status = c.status.get_or_insert_with(HotPoolClaimStatus::default);
            status.worker = Some(worker.clone());
            if let Some(w) = ws.get_mut(&worker)
                && d.b()
            {
                let ws = w.status.get_or_insert_with(Default::default);
                ws.claim = Some(WorkerClaimRef {
                    name: format!("c{i}"),
                    uid: c.metadata.uid.clone(),
                    client: d.b().then(|| d.s()),
                    since: Time(d.time()),
                    cold_start: d.b(),
                });
            }
        }
        cs.push(c);
    }
    (ws, cs)
}

fn task(d: &Draw<'_>, started_by: &str) -> TaskObs {
    let state = |d: &Draw<'_>| {
        if d.b() { TASK_STATES[d.i64().unsigned_abs() as usize % TASK_STATES.len()].to_string() } else { d.s() }
    };
    TaskObs {
        last_status: state(d),
        desired_status: state(d),
        ip: d.b().then(|| d.s()),
        stopped_reason: d.b().then(|| d.s()),
        started_by: if d.b() { started_by.to_string() } else { d.s() },
        tags: (0..d.i64().rem_euclid(3)).map(|_| (d.s(), d.s())).collect(),
    }
}

fn lease_arithmetic(claims: &[ClaimView], d: &Draw<'_>) {
    for c in claims {
        let _ = c.expires_at(d.i32());
    }
    let (a, b) = (d.time(), d.time());
    let _ = clock::plus_secs(a, d.i64());
    let _ = clock::until(a, b, Duration::from_secs(d.i64().unsigned_abs()));
    let _ = clock::too_far_ahead(a, b);
    let _ = batches(d.i64().unsigned_abs() as usize % 100_000, d.i64().unsigned_abs() as usize);
}

fn one(
    spec: Value,
    status: Value,
    other: Value,
    workers: Vec<(Value, Value)>,
    claims: Vec<(Value, Value)>,
    pools: Pools,
    reach: &Reach,
) {
    let d = Draw::new(&pools, Vec::new());
    let now = if d.b() { d.time() } else { clock::now() };
    let mut claim_objs = Vec::new();
    // Claims are decided whatever their pool: a claim's own controller handles a missing pool.
    for (s, st) in &claims {
        let Ok(c) = serde_json::from_value::<HotPoolClaim>(serde_json::json!({
            "apiVersion": "fargate.operator.dev/v1alpha1", "kind": "HotPoolClaim",
            "metadata": {"name": "c", "namespace": "team", "generation": d.i64()}, "spec": s, "status": st
        })) else {
            continue;
        };
        let _ = c.validate();
        let _ = validate_hot_pool_claim(&c.spec, now);
        let phase = c.status.as_ref().and_then(|s| s.phase).unwrap_or_default();
        let _ = next_status(&c, phase, &d.s(), &d.s(), |_| {});
        let _ = invalid_status(&c, phase, &d.s(), |_| {});
        let _ = pool_gone_status(&c, "team");
        claim_objs.push(c);
    }
    let Ok(spec) = serde_json::from_value::<HotPoolSpec>(spec) else { return };
    reach.parsed();
    let status: HotPoolStatus = serde_json::from_value(status).unwrap_or_default();
    let mut latest: HotPoolStatus = serde_json::from_value(other).unwrap_or_default();
    let pool = HotPool { metadata: meta("pool".into(), &d), spec, status: Some(status.clone()) };
    let valid = pool.validate().is_ok();
    let _ = crate::controller::inventory::aws_scope_changed(&pool);
    let mut written = status.clone();
    crate::controller::inventory::record_made_with(&pool, &mut written);
    written.carry_actions(&status, &mut latest);
    let mut resources = status.resources.clone();
    let _ = inventory::clusters_to_search(&resources, &pool.spec.cluster);
    let _ = inventory::record(&mut resources, &d.s(), &d.s());
    if !valid {
        return;
    }
    reach.valid();
    let spec = &pool.spec;
    let (workers, claim_objs) = objects(spec, workers, claims, &d);
    let claims: Vec<ClaimView> = claim_objs.iter().map(|c| ClaimView::of(c, now)).collect();
    for w in workers.values() {
        let _ = WorkerView::of(w);
    }
    lease_arithmetic(&claims, &d);
    let uid = pool.metadata.uid.clone().unwrap_or_default();
    let started_by = started_by(&uid);
    let arns: Vec<String> = workers.values().filter_map(|w| w.status.as_ref()?.task_arn.clone()).collect();
    let tasks: BTreeMap<String, TaskObs> =
        arns.iter().filter(|_| d.b()).map(|a| (a.clone(), task(&d, &started_by))).collect();
    let running: BTreeMap<String, BTreeSet<String>> =
        [(spec.cluster.clone(), arns.iter().cloned().chain([d.s()]).collect())].into();
    let current_td: BTreeMap<String, String> =
        spec.versions.iter().filter(|_| d.b()).map(|v| (v.version.clone(), d.s())).collect();
    let held: BTreeMap<(String, String), (String, Duration)> = spec
        .versions
        .iter()
        .filter(|_| d.b())
        .map(|v| ((v.version.clone(), d.s()), (d.s(), Duration::from_secs(d.i64().unsigned_abs()))))
        .collect();
    let owner = Owner { cluster_id: d.s(), namespace: "team".into(), kind: "HotPool".into(), name: "pool".into(), uid };
    for full_sweep in [false, true] {
        let p = plan_pass(&PassInput {
            spec,
            owner: &owner,
            workers: &workers,
            tasks: &tasks,
            running: full_sweep.then_some(&running),
            claims: &claims,
            current_td: &current_td,
            held: &held,
            resources: &resources,
            launch_tag: crate::controller::hot_pool::aws::TAG_LAUNCH,
            run_task_max: usize::try_from(d.i64().unsigned_abs() % 20).unwrap_or(1),
            read_lag: Duration::from_secs(d.i64().unsigned_abs()),
            now,
        });
        reach.stepped(p.steps.len());
        let mut after = status.clone();
        after.resources = p.resources;
        after.carry_actions(&status, &mut latest);
    }
}

fn pairs(kind: &'static str) -> impl Strategy<Value = Vec<(Value, Value)>> {
    prop::collection::vec((part_of(kind, "spec"), part_of(kind, "status")), 0..6)
}

#[test]
fn hot_pool_never_panics() {
    let strategy = (
        (part_of("HotPool", "spec"), part_of("HotPool", "status"), part_of("HotPool", "status")),
        pairs("HotPoolWorker"),
        pairs("HotPoolClaim"),
        pools(),
    );
    fuzz("HotPool", file!(), strategy, |((spec, status, other), workers, claims, pools), reach| {
        one(spec, status, other, workers, claims, pools, reach)
    });
}
