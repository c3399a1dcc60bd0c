//! An in-memory model of the AWS services this operator calls, for deterministic simulation: the
//! per-service traits of [`crate::aws::api`] implemented over plain state, with the behaviour of AWS
//! that moto does not show (idempotency tokens remembered, CallerReferences that outlive a deleted
//! health check, tasks that stop on their own or show late in ListTasks, ResourceInUse when
//! deletes run out of order) and faults chosen by a seed.
//!
//! Built for tests and with the `sim` feature only: production builds do not carry it.
//!
//! Everything random comes from one [`SimRng`] per model, seeded by the caller, so a run is
//! replayed exactly from its seed. Faults are drawn per call by [`Faults::draw`]:
//! throttling and 5xx are refused before anything happens; a lost response executes the call and
//! then answers with a transient error, as a dropped connection does.

pub mod credentialed;
pub mod ecs;
pub mod elbv2;
pub mod latency;
pub mod route53;
pub mod source;
pub mod sts;

pub use source::ModelAws;

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::errors::{Classified, ErrorCategory};

/// A small deterministic generator (SplitMix64): the same seed gives the same sequence on every
/// platform and every version of this crate's dependencies, which a replayed seed needs.
#[derive(Debug, Clone)]
pub struct SimRng {
    state: u64,
}

impl SimRng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        // 53 random bits: every value is exactly representable.
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.unit() < p
    }

    /// A number in `[0, n)`; 0 when `n` is 0.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// An id of `len` lowercase hex digits, as AWS ids look.
    pub fn hex_id(&mut self, len: usize) -> String {
        let mut out = String::with_capacity(len);
        while out.len() < len {
            out.push_str(&format!("{:016x}", self.next_u64()));
        }
        out.truncate(len);
        out
    }
}

/// Fault rates per call, each in `[0, 1]`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FaultRates {
    /// Refused with a throttling error before anything happens.
    pub throttle: f64,
    /// Refused with a 5xx before anything happens.
    pub server_error: f64,
    /// Executed, then the answer is lost (a transient error is returned).
    pub lost: f64,
    /// Answers late: up to `slow_max` in all, before and after the service acts.
    pub slow: f64,
    /// Longest delay of a slow call.
    pub slow_max: std::time::Duration,
    /// Never answers (acting first or not): only the caller's attempt timeout ends it.
    pub hang: f64,
}

/// What a call does, drawn from the rates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer normally.
    None,
    /// Refuse: throttled.
    Throttle,
    /// Refuse: 5xx.
    ServerError,
    /// Execute, then lose the answer.
    Lost,
}

/// The fault plan of one model: rates and the generator that draws from them.
#[derive(Debug)]
pub struct Faults {
    rates: Mutex<FaultRates>,
    /// Calls drawn for so far (every call draws once), for per-pass call bounds.
    calls: AtomicU64,
}

impl Faults {
    /// Faults at `rates`.
    pub fn new(rates: FaultRates) -> Self {
        Self { rates: Mutex::new(rates), calls: AtomicU64::new(0) }
    }

    /// Change the rates (e.g. a quiet phase that lets everything converge).
    pub fn set(&self, rates: FaultRates) {
        *self.rates.lock().unwrap_or_else(|p| p.into_inner()) = rates;
    }

    /// Calls answered so far (each draws its fault once).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// The fault for one call.
    pub fn draw(&self, rng: &mut SimRng) -> Fault {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let r = *self.rates.lock().unwrap_or_else(|p| p.into_inner());
        if rng.chance(r.throttle) {
            Fault::Throttle
        } else if rng.chance(r.server_error) {
            Fault::ServerError
        } else if rng.chance(r.lost) {
            Fault::Lost
        } else {
            Fault::None
        }
    }
}

/// The error a refused call answers with (`None` for [`Fault::None`] and [`Fault::Lost`], which
/// execute).
pub fn refusal(fault: Fault, operation: &str) -> Option<Classified> {
    match fault {
        Fault::Throttle => Some(error(ErrorCategory::Throttling, "ThrottlingException", operation)),
        Fault::ServerError => Some(error(ErrorCategory::Transient, "ServiceUnavailable", operation)),
        Fault::None | Fault::Lost => None,
    }
}

/// The error a call whose answer was lost returns, after it executed.
pub fn lost(operation: &str) -> Classified {
    error(ErrorCategory::Transient, "ResponseLost", operation)
}

/// An AWS error as the model answers it.
pub fn error(category: ErrorCategory, code: &str, message: &str) -> Classified {
    Classified { category, code: code.into(), message: format!("{message} (model)") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_replays_the_same_sequence_and_another_does_not() {
        let (mut a, mut b, mut c) = (SimRng::new(7), SimRng::new(7), SimRng::new(8));
        let xs: Vec<u64> = (0..5).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..5).map(|_| b.next_u64()).collect();
        let zs: Vec<u64> = (0..5).map(|_| c.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs, zs);
        // Pinned, so a change of the generator (which would change every replayed seed) is noticed.
        assert_eq!(SimRng::new(0).next_u64(), 0xE220_A839_7B1D_CDAF);
        assert!((0..1000).all(|_| (0.0..1.0).contains(&a.unit())));
        assert_eq!(a.hex_id(20).len(), 20);
    }

    #[test]
    fn faults_follow_their_rates() {
        let mut rng = SimRng::new(1);
        let none = Faults::new(FaultRates::default());
        assert!((0..100).all(|_| none.draw(&mut rng) == Fault::None));
        let all_lost = Faults::new(FaultRates { lost: 1.0, ..Default::default() });
        assert_eq!(all_lost.draw(&mut rng), Fault::Lost);
        assert_eq!(refusal(Fault::Lost, "RunTask"), None, "a lost answer executes first");
        let code = refusal(Fault::Throttle, "RunTask").map(|e| e.category);
        assert_eq!(code, Some(ErrorCategory::Throttling));
    }
}
