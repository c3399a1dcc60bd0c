//! A real-time limit on each step of a run. On the paused clock, virtual time moves only when every
//! task waits: a loop that keeps some task runnable (a zero-delay requeue, a watch that re-lists at
//! once forever) stops virtual time, so no virtual deadline ever passes and the run would hang.
//! A thread of its own measures real time instead and wakes the step's `select!` (a channel wake
//! needs no timer); a thread stuck without ever yielding cannot be woken, so past a grace period the
//! watchdog ends the process with a message rather than let the test hang.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// The armed step (its number, since when) and whether the run is over.
#[derive(Debug, Default)]
struct Shared {
    armed: Mutex<Option<(u64, Instant)>>,
    done: AtomicBool,
}

/// One run's watchdog: [`arm`](Self::arm) before a step, [`fired`](Self::fired) in a `select!`
/// beside it, [`disarm`](Self::disarm) after it.
#[derive(Debug)]
pub struct Watchdog {
    shared: Arc<Shared>,
    fired: watch::Receiver<u64>,
    next: u64,
    /// Real time a step may take.
    pub limit: Duration,
}

impl Watchdog {
    /// A watchdog allowing `limit` of real time per step; `grace` more and the process exits.
    pub fn start(limit: Duration, grace: Duration) -> Self {
        let shared = Arc::new(Shared::default());
        let (tx, fired) = watch::channel(0);
        let s = Arc::clone(&shared);
        std::thread::spawn(move || {
            while !s.done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                let armed = *s.armed.lock().unwrap_or_else(|p| p.into_inner());
                let Some((n, since)) = armed else { continue };
                if since.elapsed() > limit + grace {
                    eprintln!(
                        "simulation: a step has run for {:?} of real time and its thread never yields to the \
                         watchdog: a task loops without an await; exiting",
                        since.elapsed()
                    );
                    std::process::exit(101);
                }
                if since.elapsed() > limit {
                    tx.send_replace(n);
                }
            }
        });
        Self { shared, fired, next: 0, limit }
    }

    /// Start timing a step; returns its number for [`fired`](Self::fired).
    pub fn arm(&mut self) -> u64 {
        self.next += 1;
        *self.shared.armed.lock().unwrap_or_else(|p| p.into_inner()) = Some((self.next, Instant::now()));
        self.next
    }

    /// The step is over.
    pub fn disarm(&self) {
        *self.shared.armed.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Resolves once step `n` has taken more than the limit (never otherwise).
    pub async fn fired(&self, n: u64) {
        let mut rx = self.fired.clone();
        if rx.wait_for(|fired| *fired == n).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.shared.done.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_loop_that_stops_virtual_time_is_cut_off_in_real_time() {
        let rt =
            tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().expect("runtime");
        let mut dog = Watchdog::start(Duration::from_millis(300), Duration::from_secs(60));
        rt.block_on(async {
            // Always runnable: tokio never finds every task waiting, so the clock never moves and
            // the sleep below would never end.
            tokio::spawn(async {
                loop {
                    tokio::task::yield_now().await;
                }
            });
            let n = dog.arm();
            let cut_off = tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(1)) => false,
                () = dog.fired(n) => true,
            };
            dog.disarm();
            assert!(cut_off, "the watchdog ends the step");
        });
    }
}
