//! Shrinking a failing run: drop chunks of steps (halves, then quarters, down to single steps)
//! and keep every removal after which the run still fails, within a time budget. What is left is
//! the short list a developer replays with `make sim STEPS_FILE=...`.

use std::time::{Duration, Instant};

use super::steps::Step;

/// The shortest failing list found within `budget` (real time), and its failure. `fails` runs a
/// candidate list (on a runtime of its own, so each candidate starts from a fresh clock) and
/// returns its failure, if any.
pub fn shrink<F>(steps: Vec<Step>, failure: String, budget: Duration, mut fails: F) -> (Vec<Step>, String)
where
    F: FnMut(Vec<Step>) -> Option<String>,
{
    let started = Instant::now();
    let (mut best, mut why) = (steps, failure);
    let mut chunk = best.len() / 2;
    while chunk >= 1 {
        let mut start = 0;
        while start < best.len() {
            if started.elapsed() > budget {
                return (best, why);
            }
            let end = (start + chunk).min(best.len());
            let mut candidate: Vec<Step> = best[..start].iter().chain(&best[end..]).cloned().collect();
            // Invariants are checked at quiescent points: the list must still end with one.
            if candidate.last() != Some(&Step::Quiesce) {
                candidate.push(Step::Quiesce);
            }
            if candidate.len() < best.len()
                && let Some(again) = fails(candidate.clone())
            {
                best = candidate;
                why = again;
                continue;
            }
            start = end;
        }
        chunk /= 2;
    }
    (best, why)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::steps::FaultLevel;

    #[test]
    fn shrinking_keeps_only_the_steps_the_failure_needs() {
        // A "bug" that needs a crash after a delete of app 1, with noise around them.
        let noise = Step::Wait { ms: 1 };
        let steps = vec![
            noise.clone(),
            Step::DeleteApp { i: 1 },
            Step::Faults { level: FaultLevel::Low },
            noise.clone(),
            Step::Crash,
            noise,
            Step::Quiesce,
        ];
        let fails = |s: Vec<Step>| {
            let d = s.iter().position(|x| *x == Step::DeleteApp { i: 1 })?;
            let c = s.iter().position(|x| *x == Step::Crash)?;
            (d < c).then(|| "leak".to_string())
        };
        let (best, why) = shrink(steps, "leak".into(), Duration::from_secs(10), fails);
        assert_eq!(best, vec![Step::DeleteApp { i: 1 }, Step::Crash, Step::Quiesce]);
        assert_eq!(why, "leak");
    }
}
