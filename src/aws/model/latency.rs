//! Latency: every call's round trip, and latency faults (a call that answers late, or never).
//! Drawn per call, on tokio's clock, by the clients a [`ModelAws`](super::ModelAws) hands out
//! (around the service models, whose state is only touched under a lock and never waits).
//!
//! The round trip (between a minimum and a maximum, half before the service acts and half after,
//! zero unless set) is there even with faults off: under a paused clock a call that takes no time
//! makes a whole reconcile pass atomic, so a crash or a fault window could never land between a
//! create and the write that records it.
//!
//! A slow call waits up to [`FaultRates::slow_max`] in all, part before the service acts and part
//! after (so another request can act between the two). A hung call never answers: half of them
//! act first (the answer is lost in the network), half never reach the service. Only the caller's
//! per-attempt timeout gets a pass past one.

use std::sync::Mutex;
use std::time::Duration;

use super::{FaultRates, SimRng};

/// The latency of one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delay {
    /// Wait `before` the service acts and `after` it answered.
    Slow { before: Duration, after: Duration },
    /// Never answer; the service acts first when `acts`.
    Hang { acts: bool },
}

/// Latency rates (from the fault rates) and the generator they are drawn with.
#[derive(Debug)]
pub struct Latency {
    state: Mutex<(FaultRates, SimRng)>,
    round_trip: Mutex<RoundTrips>,
}

/// Round trips: every call's, and the slower ones of some methods.
#[derive(Debug, Default)]
struct RoundTrips {
    any: (Duration, Duration),
    /// By the client method's name (`run_task`).
    by_method: std::collections::BTreeMap<&'static str, (Duration, Duration)>,
}

impl Latency {
    /// Latency at `rates`, drawn from `seed`.
    pub fn new(seed: u64, rates: FaultRates) -> Self {
        Self { state: Mutex::new((rates, SimRng::new(seed))), round_trip: Mutex::new(RoundTrips::default()) }
    }

    /// Every call's round trip lies between `min` and `max` (not a fault: it stays when the fault
    /// rates change).
    pub fn set_round_trip(&self, min: Duration, max: Duration) {
        self.round_trip.lock().unwrap_or_else(|p| p.into_inner()).any = (min, max.max(min));
    }

    /// Calls of client method `method` (e.g. `run_task`) take between `min` and `max` instead: some
    /// AWS actions are slow, and a client's timeout then often ends the wait after the action ran.
    pub fn set_round_trip_of(&self, method: &'static str, min: Duration, max: Duration) {
        self.round_trip.lock().unwrap_or_else(|p| p.into_inner()).by_method.insert(method, (min, max.max(min)));
    }

    /// Change the rates.
    pub fn set(&self, rates: FaultRates) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).0 = rates;
    }

    /// The delay of one call of `method`.
    pub fn draw(&self, method: &str) -> Delay {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (rates, rng) = &mut *guard;
        if rng.chance(rates.hang) {
            return Delay::Hang { acts: rng.chance(0.5) };
        }
        let (min, max) = {
            let trips = self.round_trip.lock().unwrap_or_else(|p| p.into_inner());
            trips.by_method.get(method).copied().unwrap_or(trips.any)
        };
        let trip = if max.is_zero() { Duration::ZERO } else { min + (max - min).mul_f64(rng.unit()) };
        let (half, rest) = (trip / 2, trip - trip / 2);
        if !rng.chance(rates.slow) {
            return Delay::Slow { before: half, after: rest };
        }
        let total = rates.slow_max.mul_f64(rng.unit());
        let before = total.mul_f64(rng.unit());
        Delay::Slow { before: before + half, after: total.saturating_sub(before) + rest }
    }

    /// Run `call` with one drawn delay.
    pub async fn around<T>(&self, method: &str, call: impl std::future::Future<Output = T>) -> T {
        match self.draw(method) {
            Delay::Slow { before, after } => {
                tokio::time::sleep(before).await;
                let out = call.await;
                tokio::time::sleep(after).await;
                out
            }
            Delay::Hang { acts } => {
                if acts {
                    drop(call.await);
                }
                std::future::pending().await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_follow_their_rates_and_stay_within_the_bound() {
        let none = Latency::new(1, FaultRates::default());
        assert!((0..100).all(|_| none.draw("any") == Delay::Slow { before: Duration::ZERO, after: Duration::ZERO }));
        let max = Duration::from_millis(300);
        let slow = Latency::new(2, FaultRates { slow: 1.0, slow_max: max, ..FaultRates::default() });
        for _ in 0..100 {
            let Delay::Slow { before, after } = slow.draw("any") else { panic!("no hang at rate 0") };
            assert!(before + after <= max);
        }
        let hung = Latency::new(3, FaultRates { hang: 1.0, ..FaultRates::default() });
        assert!(matches!(hung.draw("any"), Delay::Hang { .. }));
        let (min, max) = (Duration::from_millis(20), Duration::from_millis(80));
        none.set_round_trip(min, max);
        for _ in 0..100 {
            let Delay::Slow { before, after } = none.draw("any") else { panic!("no hang at rate 0") };
            assert!((min..=max).contains(&(before + after)) && before.abs_diff(after) <= Duration::from_nanos(1));
        }
        none.set_round_trip_of("run_task", Duration::from_secs(1), Duration::from_secs(1));
        assert_eq!(
            none.draw("run_task"),
            Delay::Slow { before: Duration::from_millis(500), after: Duration::from_millis(500) }
        );
        assert!(matches!(none.draw("list_tasks"), Delay::Slow { before, .. } if before <= max / 2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_call_that_acts_acts_once_and_never_answers() {
        let hung = Latency::new(4, FaultRates { hang: 1.0, ..FaultRates::default() });
        let acted = std::sync::atomic::AtomicU32::new(0);
        for _ in 0..20 {
            let call = async { acted.fetch_add(1, std::sync::atomic::Ordering::Relaxed) };
            let answer = tokio::time::timeout(Duration::from_secs(5), hung.around("any", call)).await;
            assert!(answer.is_err(), "no answer");
        }
        let n = acted.load(std::sync::atomic::Ordering::Relaxed);
        assert!(n > 0 && n < 20, "some hung calls act, some never arrive: {n}");
    }
}
