//! What must hold at every quiescent point, read from the AWS model and the apiserver (never from
//! the operator's own status alone): AWS holds exactly what the specs say, by owner tag (no leak,
//! no duplicate, nothing left of a deleted or moved object); nothing of someone else's was changed;
//! no worker is held by two claims and no two workers record one task; no panic; and the AWS calls
//! per pass stay under a bound.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_route53::types::{ResourceRecordSet, RrType};
use fargate_operator::api::hot_pool::{ClaimPhase, WorkerPhase};
use fargate_operator::api::{HotPoolClaim, HotPoolWorker};
use fargate_operator::aws::naming::TAG_OWNER;
use kube::api::{Api, ListParams};

use super::run::Sim;
use super::world::{APP_ZONES, World};

/// AWS calls per reconcile pass, averaged over the run, that a run may not exceed. A pass reads
/// and writes a handful of resources; a loop that re-reads or re-writes every pass goes far above.
pub const CALLS_PER_PASS: f64 = 12.0;

/// What must hold whenever the operator is quiet, even before it has repaired what the last steps
/// broke: nothing recorded twice, nothing of someone else's touched, no panic, calls per pass
/// bounded. The error lists each one that does not hold.
pub async fn safety(sim: &Sim) -> Result<(), String> {
    let mut errs = Vec::new();
    let (workers, claims) = kube_side(sim, &mut errs).await;
    recorded_once(&workers, &claims, &mut errs);
    foreign(&sim.world, &mut errs);
    let panics = sim.panics();
    if panics > 0 {
        errs.push(format!("{panics} reconcile(s) panicked"));
    }
    let (calls, passes) = (sim.world.model.calls(), sim.passes().max(1));
    let per_pass = calls as f64 / passes as f64;
    if per_pass > CALLS_PER_PASS {
        errs.push(format!("{calls} AWS calls in {passes} passes: {per_pass:.1} per pass, above {CALLS_PER_PASS}"));
    }
    if errs.is_empty() { Ok(()) } else { Err(errs.join("\n")) }
}

/// What the operator must bring about at a quiescent point: AWS holds exactly what the specs
/// say, and every worker and claim points at a running task. The error lists what does not hold.
pub async fn converged(sim: &Sim) -> Result<(), String> {
    let mut errs = Vec::new();
    let owner = |kind: &str, name: &str| format!("{}/{kind}/{name}", sim.ctx.namespace);
    apps(sim, &owner, &mut errs);
    failovers(sim, &owner, &mut errs);
    let (workers, claims) = kube_side(sim, &mut errs).await;
    pools(sim, &owner, &workers, &claims, &mut errs);
    if errs.is_empty() { Ok(()) } else { Err(errs.join("\n")) }
}

async fn kube_side(sim: &Sim, errs: &mut Vec<String>) -> (Vec<HotPoolWorker>, Vec<HotPoolClaim>) {
    let ns = &sim.ctx.namespace;
    let workers = match Api::<HotPoolWorker>::namespaced(sim.ctx.client.clone(), ns).list(&ListParams::default()).await
    {
        Ok(l) => l.items,
        Err(e) => {
            errs.push(format!("list workers: {e}"));
            Vec::new()
        }
    };
    let claims = match Api::<HotPoolClaim>::namespaced(sim.ctx.client.clone(), ns).list(&ListParams::default()).await {
        Ok(l) => l.items,
        Err(e) => {
            errs.push(format!("list claims: {e}"));
            Vec::new()
        }
    };
    (workers, claims)
}

/// No task is recorded by two workers, and no task is held by two Bound claims.
fn recorded_once(workers: &[HotPoolWorker], claims: &[HotPoolClaim], errs: &mut Vec<String>) {
    let mut recorded: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for w in workers {
        if let Some(arn) = w.status.as_ref().and_then(|s| s.task_arn.as_deref()) {
            recorded.entry(arn).or_default().push(w.metadata.name.clone().unwrap_or_default());
        }
    }
    for (arn, names) in &recorded {
        if names.len() > 1 {
            errs.push(format!("task {arn} is recorded by {} workers: {names:?}", names.len()));
        }
    }
    let mut bound: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for c in claims {
        if let Some(s) = c.status.as_ref().filter(|s| s.phase == Some(ClaimPhase::Bound)) {
            let task = s.task_arn.clone().unwrap_or_default();
            bound.entry(task).or_default().push(c.metadata.name.clone().unwrap_or_default());
        }
    }
    for (task, names) in bound {
        if names.len() > 1 {
            errs.push(format!("task {task} is held by {} claims: {names:?}", names.len()));
        }
    }
}

fn owned_by(tags: &BTreeMap<String, String>, owner: &str) -> bool {
    tags.get(TAG_OWNER).is_some_and(|v| v == owner)
}

/// Records of a zone other than its own NS and SOA.
fn records(world: &World, zone_id: &str) -> Vec<ResourceRecordSet> {
    let zone =
        world.model.route53.zones().into_iter().find(|z| z.id.ends_with(zone_id.trim_start_matches("/hostedzone/")));
    let apex = zone.map(|z| z.name).unwrap_or_default();
    world
        .model
        .route53
        .record_sets(zone_id)
        .unwrap_or_default()
        .into_iter()
        .filter(|r| !(r.name == apex && matches!(r.r#type, RrType::Ns | RrType::Soa)))
        .collect()
}

fn apps(sim: &Sim, owner: &dyn Fn(&str, &str) -> String, errs: &mut Vec<String>) {
    let model = &sim.world.model;
    let services = model.ecs.services();
    let groups = model.elbv2.target_groups();
    let rules = model.elbv2.rules();
    let definitions = model.ecs.task_definitions();
    let zone_records: Vec<Vec<ResourceRecordSet>> =
        sim.world.app_zones.iter().map(|z| records(&sim.world, z)).collect();
    for (i, spec) in sim.expect.apps.iter().enumerate() {
        let name = format!("app{i}");
        let me = owner("FargateApp", &name);
        let active: Vec<_> =
            services.iter().filter(|s| owned_by(&s.service.tags, &me) && s.service.status == "ACTIVE").collect();
        let want_service = usize::from(spec.is_some());
        if active.len() != want_service {
            errs.push(format!("{name}: {} ACTIVE service(s), the spec says {want_service}", active.len()));
        }
        if let (Some(spec), Some(s)) = (spec, active.first()) {
            let s = &s.service;
            if s.desired_count != i32::from(spec.replicas) || s.running_count != s.desired_count {
                errs.push(format!(
                    "{name}: service desired {} running {}, spec {}",
                    s.desired_count, s.running_count, spec.replicas
                ));
            }
        }
        let lb = spec.is_some_and(|s| s.load_balancer);
        let tgs = groups.iter().filter(|g| owned_by(&g.tags, &me)).count();
        if tgs != usize::from(lb) {
            errs.push(format!("{name}: {tgs} target group(s), the spec says {}", usize::from(lb)));
        }
        let mine: Vec<_> = rules.iter().filter(|r| owned_by(&r.tags, &me)).collect();
        if mine.len() != usize::from(lb) {
            errs.push(format!("{name}: {} listener rule(s), the spec says {}", mine.len(), usize::from(lb)));
        }
        if let (Some(spec), Some(rule)) = (spec.filter(|s| s.load_balancer), mine.first()) {
            let listener = &sim.world.listeners[usize::from(spec.listener % 2)];
            let path = if spec.path == 0 { format!("/a{i}/*") } else { format!("/b{i}/*") };
            if &rule.listener_arn != listener || rule.path_patterns != [path.clone()] {
                errs.push(format!(
                    "{name}: rule on {} for {:?}, the spec says {listener} for {path}",
                    rule.listener_arn, rule.path_patterns
                ));
            }
        }
        for (z, recs) in zone_records.iter().enumerate() {
            let here: Vec<_> = recs.iter().filter(|r| r.name == format!("app{i}.{}.", APP_ZONES[z])).collect();
            let want = spec.filter(|s| s.load_balancer && s.dns > 0 && usize::from((s.dns - 1) % 2) == z);
            let want_type = want.map(|s| if s.dns_type == 0 { RrType::A } else { RrType::Cname });
            let types: Vec<_> = here.iter().map(|r| r.r#type.clone()).collect();
            if types != want_type.iter().cloned().collect::<Vec<_>>() {
                errs.push(format!("{name}: records {types:?} in {}, the spec says {want_type:?}", APP_ZONES[z]));
            }
            // The ownership mark lives and goes with the record.
            let mark = format!("_fargate-operator.app{i}.{}.", APP_ZONES[z]);
            let marks = recs.iter().filter(|r| r.name == mark && r.r#type == RrType::Txt).count();
            if marks != usize::from(want.is_some()) {
                errs.push(format!(
                    "{name}: {marks} ownership mark(s) in {}, the spec says a record: {}",
                    APP_ZONES[z],
                    want.is_some()
                ));
            }
        }
        if spec.is_none() {
            let left = definitions.iter().filter(|d| d.status == "ACTIVE" && owned_by(&d.tags, &me)).count();
            if left > 0 {
                errs.push(format!("{name}: deleted, yet {left} ACTIVE task definition revision(s) of it remain"));
            }
        }
    }
}

fn failovers(sim: &Sim, owner: &dyn Fn(&str, &str) -> String, errs: &mut Vec<String>) {
    let model = &sim.world.model;
    let checks = model.route53.health_checks();
    let parent = records(&sim.world, &sim.world.parent_zone);
    for (i, spec) in sim.expect.failovers.iter().enumerate() {
        let name = format!("dr{i}");
        let me = owner("DnsFailover", &name);
        let mine: BTreeSet<String> = checks.iter().filter(|c| owned_by(&c.tags, &me)).map(|c| c.id.clone()).collect();
        let want_checks = spec.map_or(0, |s| 1 + usize::from(s.secondary_check));
        if mine.len() != want_checks {
            let refs = model.route53.caller_references();
            let which: Vec<String> = mine
                .iter()
                .map(|id| {
                    let reference = refs.iter().find(|(_, (c, _))| c == id).map(|(r, _)| r.as_str());
                    format!("{id} (CallerReference {})", reference.unwrap_or("?"))
                })
                .collect();
            errs.push(format!("{name}: {} health check(s) {which:?}, the spec says {want_checks}", mine.len()));
        }
        for (z, (zone_id, zone_name)) in sim.world.failover_zones[i].iter().enumerate() {
            let here = records(&sim.world, zone_id);
            let want = spec.filter(|s| usize::from(s.zone % 2) == z);
            let want_name = want.map(|s| format!("{}.{zone_name}.", if s.name == 0 { "www" } else { "api" }));
            let pair = here.len() == 2
                && here.iter().all(|r| Some(&r.name) == want_name.as_ref())
                && here.iter().all(|r| r.health_check_id.as_ref().is_none_or(|id| mine.contains(id)));
            if (want.is_some() && !pair) || (want.is_none() && !here.is_empty()) {
                let names: Vec<_> =
                    here.iter().map(|r| format!("{} {:?} {:?}", r.name, r.failover, r.health_check_id)).collect();
                errs.push(format!(
                    "{name}: zone {zone_name} holds {names:?}, the spec says a pair named {want_name:?}"
                ));
            }
            let delegated =
                parent.iter().filter(|r| r.name == format!("{zone_name}.") && r.r#type == RrType::Ns).count();
            let want_delegation = usize::from(want.is_some_and(|s| s.delegation));
            if delegated != want_delegation {
                errs.push(format!(
                    "{name}: {delegated} delegation(s) of {zone_name} in the parent, the spec says {want_delegation}"
                ));
            }
            let mark = format!("_fargate-operator.{zone_name}.");
            let marks = parent.iter().filter(|r| r.name == mark && r.r#type == RrType::Txt).count();
            if marks != want_delegation {
                errs.push(format!("{name}: {marks} ownership mark(s) of the delegation of {zone_name}, the spec says {want_delegation}"));
            }
        }
    }
}

fn pools(
    sim: &Sim,
    owner: &dyn Fn(&str, &str) -> String,
    workers: &[HotPoolWorker],
    claims: &[HotPoolClaim],
    errs: &mut Vec<String>,
) {
    let tasks = sim.world.model.ecs.tasks();
    let running: BTreeMap<&str, &BTreeMap<String, String>> = tasks
        .iter()
        .filter(|t| t.task.desired_status == "RUNNING")
        .map(|t| (t.task.arn.as_str(), &t.task.tags))
        .collect();
    let mut recorded = BTreeSet::new();
    for w in workers {
        if let Some(arn) = w.status.as_ref().and_then(|s| s.task_arn.as_deref()) {
            recorded.insert(arn);
            if !running.contains_key(arn) {
                errs.push(format!("worker {:?} records {arn}, which is not running", w.metadata.name));
            }
        }
    }
    for (i, spec) in sim.expect.pools.iter().enumerate() {
        let name = format!("pool{i}");
        let me = owner("HotPool", &name);
        for (arn, tags) in &running {
            if owned_by(tags, &me) && !recorded.contains(arn) {
                let uid = tags.get(fargate_operator::aws::naming::TAG_UID).map(String::as_str).unwrap_or("?");
                errs.push(format!("{name}: task {arn} of pool uid {uid} runs with no worker recording it (leaked)"));
            }
        }
        let mine: Vec<_> = workers.iter().filter(|w| w.spec.pool == name).collect();
        if spec.is_none() && !mine.is_empty() {
            let left: Vec<String> = mine
                .iter()
                .map(|w| {
                    let owner =
                        w.metadata.owner_references.iter().flatten().map(|o| o.uid.as_str()).collect::<Vec<_>>();
                    let phase = w.status.as_ref().and_then(|s| s.phase);
                    let created = w.metadata.creation_timestamp.as_ref().map(|t| t.0.to_string());
                    format!("{:?} owner {owner:?} {phase:?} created {created:?}", w.metadata.name)
                })
                .collect();
            errs.push(format!("{name}: deleted, yet {} worker(s) remain: {left:?}", mine.len()));
        }
        for (n, v) in spec.iter().flat_map(|s| s.versions.iter().enumerate()) {
            let version = (n + 1).to_string();
            let available = mine
                .iter()
                .filter(|w| w.spec.version == version)
                .filter(|w| w.status.as_ref().and_then(|s| s.phase) == Some(WorkerPhase::Available))
                .count();
            let want = if v.present && v.pooling { usize::from(v.scale_to) } else { 0 };
            if available != want {
                errs.push(format!("{name} version {version}: {available} Available worker(s), the spec says {want}"));
            }
        }
    }
    for c in claims {
        let Some(s) = c.status.as_ref().filter(|s| s.phase == Some(ClaimPhase::Bound)) else { continue };
        let task = s.task_arn.clone().unwrap_or_default();
        if !running.contains_key(task.as_str()) {
            errs.push(format!("claim {:?} is Bound to {task}, which is not running", c.metadata.name));
        }
    }
}

fn foreign(world: &World, errs: &mut Vec<String>) {
    let f = &world.foreign;
    let rule = world.model.elbv2.rules().into_iter().find(|r| r.arn == f.rule_arn);
    if rule.as_ref().is_none_or(|r| r.priority != Some(100) || r.path_patterns != ["/legacy/*"]) {
        errs.push(format!("someone else's rule was changed or deleted: {rule:?}"));
    }
    let kept = records(world, &world.app_zones[0]).into_iter().any(|r| r == f.record);
    if !kept {
        errs.push("someone else's record was changed or deleted".into());
    }
    let task = world.model.ecs.tasks().into_iter().find(|t| t.task.arn == f.task_arn);
    if task.as_ref().is_none_or(|t| t.task.desired_status != "RUNNING") {
        errs.push("someone else's task was stopped".into());
    }
}
