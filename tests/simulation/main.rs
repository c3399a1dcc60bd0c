//! The deterministic simulator (#14): the real operator, through its real driver and reconcilers,
//! against the in-memory AWS model (`src/aws/model/`) and the in-memory Kubernetes API server
//! (`src/kube_model/`), under random steps from a seed: creates, every kind of spec edit, deletes,
//! claims, tasks dying, health flips, AWS faults, crashes and two replicas at once. At every
//! quiescent point the invariants of `invariants.rs` are checked against the model.
//!
//! - `make test` runs [`random_steps_keep_every_invariant`]: a fixed budget over fixed seeds.
//! - `make sim SEED=7` replays one seed; `make sim STEPS_FILE=f.json` replays a (shrunk) list.
//! - `make sim-soak SECONDS=600` runs fresh seeds until the time is up.
//!
//! Time is virtual. Each run (a seed, or one candidate list while shrinking) gets a current-thread
//! tokio runtime of its own with a paused clock: tokio moves the clock to the next timer whenever
//! every task waits, the operator's clock (`runtime::clock::now`) reads that virtual time, and the
//! AWS model's clock follows it one to one (`run.rs`). Nothing in a run touches the network, so a
//! run takes only the CPU its passes need, whatever the timers say. Runs go on `SIM_THREADS` OS
//! threads (default: one per core), one run per thread at a time.
//!
//! A seed fixes the step list and every draw of the model, and on one thread with virtual time the
//! interleaving of the operator's tasks with the steps too, except for what the operator and
//! kube-runtime draw themselves (HashMap order, uuids, jitter), so a replay is close to the run that
//! failed but not guaranteed identical. A failure prints its seed and a shrunk step list and writes
//! the list to a file for replay. A step that takes more than `SIM_STEP_REAL_SECONDS` of real time
//! fails the run (`watchdog.rs`): a busy loop stops virtual time, and no virtual deadline would.
#![cfg(feature = "sim")]

#[path = "../support/mod.rs"]
mod support;

mod invariants;
mod run;
mod scenarios;
mod shrink;
mod steps;
mod watchdog;
mod world;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fargate_operator::runtime::clock;
use k8s_openapi::jiff::Timestamp;

use run::{Report, Sim};
use steps::Step;
use watchdog::Watchdog;

/// Seeds `make test` runs (one per thread at a time), unless `SIM_SEEDS` names others
/// (comma-separated).
const SEEDS: &[u64] = &[1, 2, 3, 4, 5, 6, 7, 8];
/// Steps per seed, unless `SIM_STEPS` says otherwise: 4,800 in all, about a minute on two cores
/// (a debug build, the simulator alone).
const STEPS: usize = 600;
/// A quiescent point every so many steps.
const QUIESCE_EVERY: usize = 25;
/// Shrinking time after a failure, unless `SIM_SHRINK_SECONDS` says otherwise.
const SHRINK: Duration = Duration::from_secs(300);

fn env<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// What every run's virtual clock reads at its start: fixed, so that timestamps (and anything
/// derived from them) repeat from one run of a seed to the next.
const EPOCH: &str = "2030-01-01T00:00:00Z";
/// Real time one step may take, unless `SIM_STEP_REAL_SECONDS` says otherwise (see `watchdog.rs`).
const STEP_REAL: Duration = Duration::from_secs(120);

/// Run `steps` for `seed` on a runtime of its own with a paused clock; on failure the index of the
/// failing step and what failed.
fn run_steps(seed: u64, steps: &[Step]) -> Result<Report, (usize, String)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime");
    let limit = env::<u64>("SIM_STEP_REAL_SECONDS").map(Duration::from_secs).unwrap_or(STEP_REAL);
    let mut dog = Watchdog::start(limit, Duration::from_secs(60));
    let out = rt.block_on(async {
        clock::use_virtual_time(EPOCH.parse::<Timestamp>().expect("epoch"));
        let mut sim = Sim::start(seed).await;
        let mut failed = None;
        let trace = std::env::var_os("SIM_TRACE").is_some();
        for (n, step) in steps.iter().enumerate() {
            if trace {
                eprintln!("{} seed {seed} step {n}: {step:?}", clock::now());
            }
            let armed = dog.arm();
            let outcome = tokio::select! {
                r = sim.step(step) => r,
                () = dog.fired(armed) => Err(format!(
                    "step {n} ({step:?}) took more than {:?} of real time: a loop that keeps virtual time from moving, \
                     or a very slow run (SIM_STEP_REAL_SECONDS raises the limit)",
                    dog.limit
                )),
            };
            dog.disarm();
            if let Err(why) = outcome {
                failed = Some((n, why));
                break;
            }
        }
        let report = sim.finish().await;
        match failed {
            None => Ok(report),
            Some(f) => Err(f),
        }
    });
    clock::use_wall_time();
    out
}

/// Run a list; on failure shrink it, write it out and return the message to fail the test with.
fn run_or_explain(seed: u64, steps: Vec<Step>) -> Result<Report, String> {
    let (at, why) = match run_steps(seed, &steps) {
        Ok(report) => return Ok(report),
        Err(f) => f,
    };
    let failing: Vec<Step> = steps[..=at].to_vec();
    eprintln!("seed {seed}: step {at} ({:?}) failed:\n{why}\nshrinking...", steps[at]);
    let budget = env::<u64>("SIM_SHRINK_SECONDS").map(Duration::from_secs).unwrap_or(SHRINK);
    let (shrunk, why) =
        shrink::shrink(failing, why, budget, |candidate| run_steps(seed, &candidate).err().map(|(_, why)| why));
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
    let virtual_secs: f64 = reports.iter().map(|(_, r)| r.virtual_time.as_secs_f64()).sum();
    let writes: u64 = reports.iter().map(|(_, r)| r.kube_writes).sum();
    let longest = reports.iter().map(|(_, r)| r.longest_quiesce).max().unwrap_or_default();
    println!(
        "simulation: {} seed(s) {seeds:?}, {steps} steps, {} quiescent points, {} restarts, {calls} AWS calls in {passes} passes, {writes} Kubernetes writes, {orphans} orphaned worker(s) collected, {:.0} min of virtual time (longest quiescent wait {longest:?}), {:.1}s on {} thread(s), {rate:.1} steps/s",
        reports.len(),
        reports.iter().map(|(_, r)| r.quiescent_points).sum::<usize>(),
        reports.iter().map(|(_, r)| r.restarts).sum::<usize>(),
        virtual_secs / 60.0,
        elapsed.as_secs_f64(),
        threads(),
    );
}

/// OS threads that run seeds: `SIM_THREADS`, else one per core.
fn threads() -> usize {
    env("SIM_THREADS").unwrap_or_else(|| std::thread::available_parallelism().map_or(2, usize::from)).max(1)
}

/// Seeds on [`threads`] threads, each seed on a runtime (and in-memory servers) of its own; the
/// reports in the order of `seeds`.
fn run_seeds(seeds: &[u64], steps: usize) -> Result<Vec<(u64, Report)>, String> {
    let queue = Arc::new(Mutex::new(seeds.iter().copied().collect::<VecDeque<u64>>()));
    let results = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..threads().min(seeds.len()))
        .map(|_| {
            let (queue, results) = (Arc::clone(&queue), Arc::clone(&results));
            std::thread::spawn(move || {
                loop {
                    // Its own statement: a guard in a `while let` scrutinee would hold the queue
                    // for the whole run, one seed at a time.
                    let next = queue.lock().expect("queue").pop_front();
                    let Some(seed) = next else { break };
                    let list = steps::generate(seed, steps, QUIESCE_EVERY);
                    let result = run_or_explain(seed, list).map(|r| (seed, r));
                    results.lock().expect("results").push((seed, result));
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("a seed's thread panicked");
    }
    let mut results = std::mem::take(&mut *results.lock().expect("results"));
    results.sort_by_key(|(seed, _)| seeds.iter().position(|s| s == seed));
    let (ok, failed): (Vec<_>, Vec<_>) = results.into_iter().map(|(_, r)| r).partition(Result::is_ok);
    if failed.is_empty() {
        Ok(ok.into_iter().flatten().collect())
    } else {
        Err(failed.into_iter().filter_map(Result::err).collect::<Vec<_>>().join("\n\n"))
    }
}

#[test]
fn random_steps_keep_every_invariant() {
    let seeds: Vec<u64> = std::env::var("SIM_SEEDS")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| SEEDS.to_vec());
    let started = Instant::now();
    match run_seeds(&seeds, env("SIM_STEPS").unwrap_or(STEPS)) {
        Ok(reports) => print_reports(&reports, started.elapsed()),
        Err(why) => panic!("{why}"),
    }
}

/// `make sim SEED=...` (optionally `STEPS_FILE=...`): one seed, or one saved list, replayed.
#[test]
#[ignore = "run by make sim"]
fn replay() {
    let seed: u64 = env("SIM_SEED").expect("SIM_SEED=<seed>");
    let steps = match std::env::var("SIM_STEPS_FILE") {
        Ok(file) if !file.is_empty() => {
            let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("read {file}: {e}"));
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file} is not a step list: {e}"))
        }
        _ => steps::generate(seed, env("SIM_STEPS").unwrap_or(STEPS), QUIESCE_EVERY),
    };
    let started = Instant::now();
    match run_or_explain(seed, steps) {
        Ok(report) => print_reports(&[(seed, report)], started.elapsed()),
        Err(why) => panic!("{why}"),
    }
}

/// `make sim-soak SECONDS=...`: fresh seeds, one batch per thread at a time, until the time is up.
#[test]
#[ignore = "run by make sim-soak"]
fn soak() {
    let budget = Duration::from_secs(env("SIM_SECONDS").unwrap_or(600));
    let started = Instant::now();
    let mut next = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(1);
    let mut reports = Vec::new();
    while started.elapsed() < budget {
        let seeds: Vec<u64> = (0..threads() as u64).map(|k| next.wrapping_add(k)).collect();
        next = next.wrapping_add(seeds.len() as u64);
        match run_seeds(&seeds, env("SIM_STEPS").unwrap_or(STEPS)) {
            Ok(r) => reports.extend(r),
            Err(why) => panic!("{why}"),
        }
    }
    print_reports(&reports, started.elapsed());
}
