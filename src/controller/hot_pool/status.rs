//! The pool's status from the workers at the end of a pass: counts per version and in total, the
//! resolved task definitions, and the Ready and Progressing conditions.

use std::collections::BTreeMap;

use kube::Resource;

use super::{Pool, plan};
use crate::api::hot_pool::{HotPoolStatus, VersionStatus, WorkerPhase};
use crate::runtime::conditions::{self, PROGRESSING, READY};
use crate::runtime::status::ObjectStatus;

impl Pool<'_> {
    pub(super) fn fill_status(&self, status: &mut HotPoolStatus, current_td: &BTreeMap<String, String>) {
        let mut per: BTreeMap<String, VersionStatus> = BTreeMap::new();
        for v in &self.pool.spec.versions {
            per.insert(
                v.version.clone(),
                VersionStatus {
                    version: v.version.clone(),
                    task_definition_arn: current_td.get(&v.version).cloned(),
                    scale_to: if v.pooling { v.scale_to } else { 0 },
                    ..Default::default()
                },
            );
        }
        for w in self.workers.values() {
            let e = per
                .entry(w.spec.version.clone())
                .or_insert_with(|| VersionStatus { version: w.spec.version.clone(), ..Default::default() });
            match (plan::phase(w), plan::claim_ref(w).is_some()) {
                (WorkerPhase::Available, false) => e.available += 1,
                (WorkerPhase::Available | WorkerPhase::Claimed, _) => e.claimed += 1,
                (WorkerPhase::Starting, _) => e.starting += 1,
                (WorkerPhase::Stopping | WorkerPhase::Failed, _) => e.stopping += 1,
            }
        }
        let versions: Vec<VersionStatus> = per.into_values().collect();
        status.available = Some(versions.iter().map(|v| v.available).sum());
        status.claimed = Some(versions.iter().map(|v| v.claimed).sum());
        status.starting = Some(versions.iter().map(|v| v.starting).sum());
        let short: Vec<String> = versions
            .iter()
            .filter(|v| v.available < v.scale_to)
            .map(|v| format!("{}: {}/{} available", v.version, v.available, v.scale_to))
            .collect();
        let generation = self.pool.meta().generation;
        let starting = status.starting.unwrap_or(0);
        let c = status.conditions_mut();
        if short.is_empty() {
            conditions::set_condition(
                c,
                READY,
                true,
                "PoolFull",
                "every pooled version has scaleTo Available workers",
                generation,
            );
        } else {
            conditions::set_condition(c, READY, false, "Replenishing", &short.join(", "), generation);
        }
        if starting > 0 {
            conditions::set_condition(
                c,
                PROGRESSING,
                true,
                "WorkersStarting",
                &format!("{starting} worker(s) starting"),
                generation,
            );
        } else {
            conditions::set_condition(c, PROGRESSING, false, "Idle", "no worker is starting", generation);
        }
        status.versions = versions;
    }
}
