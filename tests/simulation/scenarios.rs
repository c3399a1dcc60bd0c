//! Scripted scenarios on the simulator's world: races the random steps found once, replayed on
//! purpose so that they are checked on every run, whatever the seeds draw.

use aws_sdk_route53::types::{Change, ChangeAction, ResourceRecordSet};
use fargate_operator::runtime::clock;
use k8s_openapi::jiff::Timestamp;

use super::run::Sim;
use super::steps::{AppSpec, FailoverSpec, Step};
use super::world::APP_ZONES;

/// Run `script` on a simulator started from `seed`, on a current-thread runtime with a paused
/// clock (as `run_steps` does).
fn scripted<F>(seed: u64, script: F)
where
    F: for<'a> FnOnce(&'a mut Sim) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + 'a>>,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime");
    let out = rt.block_on(async {
        clock::use_virtual_time(super::EPOCH.parse::<Timestamp>().expect("epoch"));
        let mut sim = Sim::start(seed).await;
        let out = script(&mut sim).await;
        sim.finish().await;
        out
    });
    clock::use_wall_time();
    if let Err(why) = out {
        panic!("{why}");
    }
}

fn app(dns: u8) -> AppSpec {
    AppSpec { image: 1, listener: 0, path: 0, dns, dns_type: 0, replicas: 1, load_balancer: true }
}

/// The record sets named `names` in `zone`, as the model holds them.
fn sets_named(sim: &Sim, zone: &str, names: &[&str]) -> Vec<ResourceRecordSet> {
    let sets = sim.world.model.route53.record_sets(zone).unwrap_or_default();
    sets.into_iter().filter(|r| names.contains(&r.name.as_str())).collect()
}

/// Create or delete `sets` in `zone` behind the operator's back.
fn change(sim: &Sim, zone: &str, action: ChangeAction, sets: &[ResourceRecordSet]) -> Result<(), String> {
    let changes: Vec<Change> = sets
        .iter()
        .map(|set| Change::builder().action(action.clone()).resource_record_set(set.clone()).build().expect("change"))
        .collect();
    sim.world.model.route53.external_change(zone, &changes).map(|_| ()).map_err(|e| format!("{e:?}"))
}

/// A FargateApp's `dns` block is removed while its record is absent from the zone, and then the
/// record lands: another replica's write of it, recorded before it was sent, arrived after this
/// pass looked. The entry is kept for a grace period instead of dropped at once, so the record is
/// found and deleted. Dropped, the record stayed forever (the simulator's seed 8 of a CI run: a
/// leader overlap right after the `dns` block was removed).
#[test]
fn a_record_that_lands_after_a_pass_found_it_absent_is_still_deleted() {
    scripted(8, |sim| {
        Box::pin(async move {
            sim.step(&Step::App { i: 0, spec: app(1) }).await?;
            sim.step(&Step::Quiesce).await?;
            let zone = sim.world.app_zones[0].clone();
            let name = format!("app0.{}.", APP_ZONES[0]);
            let ours = sets_named(sim, &zone, &[&name, &format!("_fargate-operator.{name}")]);
            if ours.len() != 2 {
                return Err(format!("the record and its mark, before: {ours:?}"));
            }
            // The record is not there when the edit's pass looks...
            change(sim, &zone, ChangeAction::Delete, &ours)?;
            sim.step(&Step::App { i: 0, spec: app(0) }).await?;
            sim.step(&Step::Wait { ms: 250 }).await?;
            // Status says an entry is held, not only that everything matches.
            let api = sim.api::<fargate_operator::api::FargateApp>();
            let app0 = api.get("app0").await.map_err(|e| e.to_string())?;
            let synced = app0.status.and_then(|s| s.conditions.into_iter().find(|c| c.type_ == "Synced"));
            if !synced.as_ref().is_some_and(|c| c.message.contains("second look")) {
                return Err(format!("Synced while the entry is held: {synced:?}"));
            }
            // ...and lands after it.
            change(sim, &zone, ChangeAction::Create, &ours)?;
            sim.step(&Step::Quiesce).await
        })
    });
}

/// The same race for a DnsFailover renamed while its pair is absent from the zone: the old name's
/// entries are kept for the grace period, and the pair that lands late is deleted.
#[test]
fn a_failover_pair_that_lands_after_a_pass_found_it_absent_is_still_deleted() {
    let failover =
        |name| FailoverSpec { zone: 0, name, mode: 0, check_path: 0, secondary_check: false, delegation: false };
    scripted(8, |sim| {
        Box::pin(async move {
            sim.step(&Step::Failover { i: 0, spec: failover(0) }).await?;
            sim.step(&Step::Quiesce).await?;
            let (zone, zone_name) = sim.world.failover_zones[0][0].clone();
            let pair = sets_named(sim, &zone, &[&format!("www.{zone_name}.")]);
            if pair.len() != 2 {
                return Err(format!("the pair, before: {pair:?}"));
            }
            change(sim, &zone, ChangeAction::Delete, &pair)?;
            sim.step(&Step::Failover { i: 0, spec: failover(1) }).await?;
            sim.step(&Step::Wait { ms: 250 }).await?;
            change(sim, &zone, ChangeAction::Create, &pair)?;
            sim.step(&Step::Quiesce).await
        })
    });
}

/// A converged app's target health is read again only when ECS reports its service otherwise than
/// when every target was last read healthy, or every few full passes: a target turning unhealthy
/// while ECS reports nothing new (the model's ECS never replaces a task) still shows, within
/// those few passes, as `Ready=False` with `UnhealthyTargets`.
#[test]
fn target_health_is_read_every_few_full_passes_and_an_unhealthy_target_still_shows() {
    use fargate_operator::api::FargateApp;
    use fargate_operator::aws::api::elbv2::TargetHealth;
    use std::time::Duration;
    scripted(8, |sim| {
        Box::pin(async move {
            sim.step(&Step::App { i: 0, spec: app(0) }).await?;
            sim.step(&Step::Quiesce).await?;
            // The simulator's resync is 10 s: 12 full passes in two minutes.
            let before = sim.calls("elbv2", "DescribeTargetHealth");
            tokio::time::sleep(Duration::from_secs(120)).await;
            let reads = sim.calls("elbv2", "DescribeTargetHealth").saturating_sub(before);
            if reads > 5 {
                return Err(format!("{reads} target health reads in 12 full passes of a steady app"));
            }
            let api = sim.api::<FargateApp>();
            let app = api.get("app0").await.map_err(|e| e.to_string())?;
            let tg = app.status.and_then(|s| s.target_group_arn).ok_or("no target group")?;
            let target = TargetHealth { target_id: "10.0.0.9".into(), port: Some(80), state: "unhealthy".into() };
            sim.world.model.elbv2.set_target_health(&tg, vec![target]).map_err(|e| format!("{e:?}"))?;
            for _ in 0..12 {
                tokio::time::sleep(Duration::from_secs(10)).await;
                let app = api.get("app0").await.map_err(|e| e.to_string())?;
                let ready = app.status.and_then(|s| s.conditions.into_iter().find(|c| c.type_ == "Ready"));
                if ready.as_ref().is_some_and(|c| c.status == "False" && c.reason == "UnhealthyTargets") {
                    return Ok(());
                }
            }
            Err("an unhealthy target did not show within 12 full passes".into())
        })
    });
}
