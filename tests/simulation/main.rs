//! The deterministic simulator (#14): the real operator, through its real driver and reconcilers,
//! against the in-memory AWS model (`src/aws/model/`) and the real kube-apiserver, under random
//! steps from a seed: creates, every kind of spec edit, deletes, claims, tasks dying, health
//! flips, AWS faults, crashes and two replicas at once. At every quiescent point the invariants
//! of `invariants.rs` are checked against the model.
//!
//! - `make test` runs [`random_steps_keep_every_invariant`]: a fixed budget over fixed seeds.
//! - `make sim SEED=7` replays one seed; `make sim STEPS_FILE=f.json` replays a (shrunk) list.
//! - `make sim-soak SECONDS=600` runs fresh seeds until the time is up.
//!
//! A seed fixes the step list and every draw of the model; it does not fix how the operator's
//! passes interleave with the steps, which run in real time against a real apiserver. A failure
//! prints its seed and a shrunk step list and writes the list to a file for replay.
#![cfg(feature = "sim")]

#[path = "../support/mod.rs"]
mod support;

mod invariants;
mod run;
mod shrink;
mod steps;
mod world;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use run::{Report, Sim};
use steps::Step;

/// Seeds `make test` runs (all at once), unless `SIM_SEEDS` names others (comma-separated).
const SEEDS: &[u64] = &[1, 2, 3, 4, 5, 6, 7, 8];
/// Steps per seed, unless `SIM_STEPS` says otherwise.
const STEPS: usize = 250;
/// A quiescent point every so many steps.
const QUIESCE_EVERY: usize = 25;
/// Shrinking time after a failure, unless `SIM_SHRINK_SECONDS` says otherwise.
const SHRINK: Duration = Duration::from_secs(300);

fn env<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// Run `steps` for `seed`; on failure the index of the failing step and what failed.
async fn run_steps(seed: u64, steps: &[Step]) -> Result<Report, (usize, String)> {
    let mut sim = Sim::start(seed).await;
    let mut failed = None;
    let trace = std::env::var_os("SIM_TRACE").is_some();
    for (n, step) in steps.iter().enumerate() {
        if trace {
            eprintln!(
                "{} seed {seed} ns {} step {n}: {step:?}",
                k8s_openapi::jiff::Timestamp::now(),
                sim.ctx.namespace
            );
        }
        if let Err(why) = sim.step(step).await {
            failed = Some((n, why));
            break;
        }
    }
    let report = sim.finish().await;
    match failed {
        None => Ok(report),
        Some(f) => Err(f),
    }
}

/// Run a list; on failure shrink it, write it out and return the message to fail the test with.
async fn run_or_explain(seed: u64, steps: Vec<Step>) -> Result<Report, String> {
    let (at, why) = match run_steps(seed, &steps).await {
        Ok(report) => return Ok(report),
        Err(f) => f,
    };
    let failing: Vec<Step> = steps[..=at].to_vec();
    eprintln!("seed {seed}: step {at} ({:?}) failed:\n{why}\nshrinking...", steps[at]);
    let budget = env::<u64>("SIM_SHRINK_SECONDS").map(Duration::from_secs).unwrap_or(SHRINK);
    let (shrunk, why) = shrink::shrink(failing, why, budget, |candidate| async move {
        run_steps(seed, &candidate).await.err().map(|(_, why)| why)
    })
    .await;
    // One step per line: short enough to read in a CI log, and still a JSON list to replay.
    let lines: Vec<String> = shrunk.iter().map(|s| serde_json::to_string(s).unwrap_or_default()).collect();
    let list = format!("[\n  {}\n]", lines.join(",\n  "));
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("sim-failures");
    let file = dir.join(format!("seed-{seed}.json"));
    let written = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&file, &list));
    let file = if written.is_ok() { file.display().to_string() } else { "(not written)".into() };
    Err(format!(
        "seed {seed} failed:\n{why}\n{} step(s) reproduce it: {list}\nreplay: make sim SEED={seed} STEPS_FILE={file}",
        shrunk.len()
    ))
}

fn print_reports(reports: &[(u64, Report)], elapsed: Duration) {
    let steps: usize = reports.iter().map(|(_, r)| r.steps).sum();
    let calls: u64 = reports.iter().map(|(_, r)| r.aws_calls).sum();
    let passes: u64 = reports.iter().map(|(_, r)| r.passes).sum();
    let seeds: Vec<u64> = reports.iter().map(|(s, _)| *s).collect();
    let orphans: usize = reports.iter().map(|(_, r)| r.orphans_collected).sum();
    let rate = steps as f64 / elapsed.as_secs_f64().max(0.001);
    println!(
        "simulation: {} seed(s) {seeds:?}, {steps} steps, {} quiescent points, {} restarts, {calls} AWS calls in {passes} passes, {orphans} orphaned worker(s) collected, {:.1}s, {rate:.1} steps/s",
        reports.len(),
        reports.iter().map(|(_, r)| r.quiescent_points).sum::<usize>(),
        reports.iter().map(|(_, r)| r.restarts).sum::<usize>(),
        elapsed.as_secs_f64(),
    );
}

/// Seeds run together, each in its own namespace and model account.
async fn run_seeds(seeds: &[u64], steps: usize) -> Result<Vec<(u64, Report)>, String> {
    let runs = seeds.iter().map(|&seed| async move {
        let list = steps::generate(seed, steps, QUIESCE_EVERY);
        run_or_explain(seed, list).await.map(|r| (seed, r))
    });
    let results = futures::future::join_all(runs).await;
    let (ok, failed): (Vec<_>, Vec<_>) = results.into_iter().partition(Result::is_ok);
    if failed.is_empty() {
        Ok(ok.into_iter().flatten().collect())
    } else {
        Err(failed.into_iter().filter_map(Result::err).collect::<Vec<_>>().join("\n\n"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_steps_keep_every_invariant() {
    let seeds: Vec<u64> = std::env::var("SIM_SEEDS")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| SEEDS.to_vec());
    let started = Instant::now();
    match run_seeds(&seeds, env("SIM_STEPS").unwrap_or(STEPS)).await {
        Ok(reports) => print_reports(&reports, started.elapsed()),
        Err(why) => panic!("{why}"),
    }
}

/// `make sim SEED=...` (optionally `STEPS_FILE=...`): one seed, or one saved list, replayed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by make sim"]
async fn replay() {
    let seed: u64 = env("SIM_SEED").expect("SIM_SEED=<seed>");
    let steps = match std::env::var("SIM_STEPS_FILE") {
        Ok(file) if !file.is_empty() => {
            let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("read {file}: {e}"));
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file} is not a step list: {e}"))
        }
        _ => steps::generate(seed, env("SIM_STEPS").unwrap_or(STEPS), QUIESCE_EVERY),
    };
    let started = Instant::now();
    match run_or_explain(seed, steps).await {
        Ok(report) => print_reports(&[(seed, report)], started.elapsed()),
        Err(why) => panic!("{why}"),
    }
}

/// `make sim-soak SECONDS=...`: fresh seeds, two at a time, until the time is up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by make sim-soak"]
async fn soak() {
    let budget = Duration::from_secs(env("SIM_SECONDS").unwrap_or(600));
    let started = Instant::now();
    let mut next = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(1);
    let mut reports = Vec::new();
    while started.elapsed() < budget {
        let seeds = [next, next.wrapping_add(1)];
        next = next.wrapping_add(2);
        match run_seeds(&seeds, env("SIM_STEPS").unwrap_or(STEPS)).await {
            Ok(r) => reports.extend(r),
            Err(why) => panic!("{why}"),
        }
    }
    print_reports(&reports, started.elapsed());
}
