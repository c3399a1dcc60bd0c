//! The simulator's steps: plain data, generated from a seed, printed and read back as JSON so a
//! failing run (or its shrunk step list) is replayed from its seed or from its list.
//!
//! A spec is a point in a small space of choices (which listener, which zone, which image, which
//! pool versions...). An `Apply` step moves an object to another point, so one step kind covers
//! creation and every edit users make: rename a record, remove a block, move to another listener
//! or zone, change and change back.

use fargate_operator::aws::model::SimRng;
use serde::{Deserialize, Serialize};

/// Objects per kind.
pub const OBJECTS: u8 = 3;
/// Claims (each against one of the pools).
pub const CLAIMS: u8 = 4;

/// A FargateApp's spec as choices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppSpec {
    /// Image tag `1` or `2`.
    pub image: u8,
    /// Which of the two listeners (on two load balancers) its rule is on.
    pub listener: u8,
    /// Path pattern `/a{i}/*` or `/b{i}/*`.
    pub path: u8,
    /// 0: no `dns` block; 1, 2: a record in zone 1 or 2.
    pub dns: u8,
    /// 0: Alias, 1: CNAME.
    pub dns_type: u8,
    /// Replicas, 1 or 2.
    pub replicas: u8,
    /// Whether it has a `loadBalancer` block at all.
    pub load_balancer: bool,
}

/// A DnsFailover's spec as choices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailoverSpec {
    /// Which of the object's two sub-zones.
    pub zone: u8,
    /// Record name `www` or `api` in that zone.
    pub name: u8,
    /// 0 Auto, 1 ForcePrimary, 2 ForceSecondary.
    pub mode: u8,
    /// Primary health check path `/health` or `/ready`.
    pub check_path: u8,
    /// Whether the secondary has a health check.
    pub secondary_check: bool,
    /// Whether the sub-zone is delegated from the parent zone.
    pub delegation: bool,
}

/// One pool version's choices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionSpec {
    /// Whether the version exists in the pool.
    pub present: bool,
    /// Which worker task definition (revision 1 or 2).
    pub task_definition: u8,
    /// `pooling`.
    pub pooling: bool,
    /// `scaleTo`, 0 to 2.
    pub scale_to: u8,
}

/// A HotPool's spec as choices: versions `1` and `2`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolSpec {
    /// Versions `1` and `2`.
    pub versions: [VersionSpec; 2],
    /// `onRelease: Recycle` instead of `Stop`.
    pub recycle: bool,
}

/// Fault levels of the AWS model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FaultLevel {
    /// No faults.
    Off,
    /// A few percent of calls throttled, failed or lost.
    Low,
    /// A fifth of calls.
    High,
}

/// One step of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Step {
    /// Create or replace FargateApp `i`'s spec.
    App { i: u8, spec: AppSpec },
    /// Create or replace DnsFailover `i`'s spec.
    Failover { i: u8, spec: FailoverSpec },
    /// Create or replace HotPool `i`'s spec.
    Pool { i: u8, spec: PoolSpec },
    /// Delete FargateApp `i`.
    DeleteApp { i: u8 },
    /// Delete DnsFailover `i`.
    DeleteFailover { i: u8 },
    /// Delete HotPool `i`.
    DeletePool { i: u8 },
    /// Create claim `i` on pool `pool`, version `version` (1 or 2); replaces an existing one.
    Claim { i: u8, pool: u8, version: u8 },
    /// Renew claim `i` (`renewedAt: now`).
    RenewClaim { i: u8 },
    /// Delete claim `i` (release).
    Release { i: u8 },
    /// A running task (the `pick`-th, modulo their number) stops on its own.
    TaskDies { pick: u16 },
    /// A health check (the `pick`-th) turns healthy or unhealthy.
    HealthFlip { pick: u16, healthy: bool },
    /// The AWS model's fault level changes.
    Faults { level: FaultLevel },
    /// Let time pass: the operator runs, the model's clock moves.
    Wait { ms: u16 },
    /// `kill -9` the operator and start a new one (state only from Kubernetes and AWS).
    Crash,
    /// A second replica starts while the first still runs, then the first is killed.
    LeaderOverlap,
    /// Team `team`'s role (every object `i == team` assumes it) stops being assumable, until the
    /// next quiescent point.
    RevokeRole { team: u8 },
    /// For `ms` times the wait scale of virtual time (0.5 to 3 s), AWS executes every call and
    /// every answer is lost (a network blip on the way back): creates land unrecorded, retries with the same token
    /// are lost too, and the passes after it must find what was made.
    AnswersLost { ms: u16 },
    /// Listener `listener` (0 or 1) is deleted behind the operator's back, with its rules, and
    /// put back at the next quiescent point.
    ListenerOutage { listener: u8 },
    /// Faults off, wait until everything converged, check every invariant.
    Quiesce,
}

fn app_spec(rng: &mut SimRng) -> AppSpec {
    AppSpec {
        image: 1 + rng.below(2) as u8,
        listener: rng.below(2) as u8,
        path: rng.below(2) as u8,
        dns: rng.below(3) as u8,
        dns_type: rng.below(2) as u8,
        replicas: 1 + rng.below(2) as u8,
        load_balancer: !rng.chance(0.2),
    }
}

fn failover_spec(rng: &mut SimRng) -> FailoverSpec {
    FailoverSpec {
        zone: rng.below(2) as u8,
        name: rng.below(2) as u8,
        mode: rng.below(3) as u8,
        check_path: rng.below(2) as u8,
        secondary_check: rng.chance(0.5),
        delegation: rng.chance(0.5),
    }
}

fn pool_spec(rng: &mut SimRng) -> PoolSpec {
    let version = |rng: &mut SimRng| VersionSpec {
        present: rng.chance(0.7),
        task_definition: 1 + rng.below(2) as u8,
        pooling: !rng.chance(0.2),
        scale_to: rng.below(3) as u8,
    };
    let mut versions = [version(rng), version(rng)];
    if !versions.iter().any(|v| v.present) {
        // A pool needs one version; the schema refuses an empty list.
        versions[rng.below(2) as usize].present = true;
    }
    PoolSpec { versions, recycle: rng.chance(0.3) }
}

/// `steps` steps from `seed`, with a quiescent point every `every` steps and at the end.
pub fn generate(seed: u64, steps: usize, every: usize) -> Vec<Step> {
    let mut rng = SimRng::new(seed);
    let mut out = Vec::with_capacity(steps + steps / every.max(1) + 1);
    let obj = |rng: &mut SimRng| rng.below(u64::from(OBJECTS)) as u8;
    for n in 0..steps {
        let roll = rng.below(100);
        let step = match roll {
            0..=17 => Step::App { i: obj(&mut rng), spec: app_spec(&mut rng) },
            18..=31 => Step::Failover { i: obj(&mut rng), spec: failover_spec(&mut rng) },
            32..=43 => Step::Pool { i: obj(&mut rng), spec: pool_spec(&mut rng) },
            44..=47 => Step::DeleteApp { i: obj(&mut rng) },
            48..=50 => Step::DeleteFailover { i: obj(&mut rng) },
            51..=53 => Step::DeletePool { i: obj(&mut rng) },
            54..=61 => Step::Claim {
                i: rng.below(u64::from(CLAIMS)) as u8,
                pool: obj(&mut rng),
                version: 1 + rng.below(2) as u8,
            },
            62..=64 => Step::RenewClaim { i: rng.below(u64::from(CLAIMS)) as u8 },
            65..=69 => Step::Release { i: rng.below(u64::from(CLAIMS)) as u8 },
            70..=74 => Step::TaskDies { pick: rng.below(1000) as u16 },
            75..=79 => Step::HealthFlip { pick: rng.below(1000) as u16, healthy: rng.chance(0.5) },
            80..=83 => Step::Faults {
                level: match rng.below(3) {
                    0 => FaultLevel::Off,
                    1 => FaultLevel::Low,
                    _ => FaultLevel::High,
                },
            },
            84..=92 => Step::Wait { ms: 50 + rng.below(700) as u16 },
            93..=94 => Step::AnswersLost { ms: 12 + rng.below(64) as u16 },
            95 => Step::ListenerOutage { listener: rng.below(2) as u8 },
            96..=97 => Step::Crash,
            98 => Step::LeaderOverlap,
            _ => Step::RevokeRole { team: obj(&mut rng) },
        };
        out.push(step);
        if every > 0 && (n + 1) % every == 0 {
            out.push(Step::Quiesce);
        }
    }
    if out.last() != Some(&Step::Quiesce) {
        out.push(Step::Quiesce);
    }
    out
}

/// Steps that count toward the budget (everything but the quiescent points).
pub fn counted(steps: &[Step]) -> usize {
    steps.iter().filter(|s| **s != Step::Quiesce).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_the_same_steps_and_they_read_back() {
        let a = generate(9, 200, 25);
        assert_eq!(a, generate(9, 200, 25));
        assert_ne!(a, generate(10, 200, 25));
        let text = serde_json::to_string(&a).expect("print");
        assert_eq!(serde_json::from_str::<Vec<Step>>(&text).expect("read back"), a);
        assert_eq!(counted(&a), 200);
    }
}
