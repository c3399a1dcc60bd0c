//! The one path every AWS call takes: budget, metrics, classification and retry.
//!
//! The SDK's own retries are disabled (see `sdk.rs`) so that retries happen in exactly one layer,
//! each attempt is counted in the metrics and draws from the client-side budget.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::budget::{Budgets, Scope, Service};
use super::errors::{AwsError, Classified, Classify};
use crate::runtime::backoff::{exponential_delay, unit_random};
use crate::runtime::metrics::Metrics;

/// Retry settings for retryable (throttling, transient) errors.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, including the first.
    pub max_attempts: u32,
    /// First delay after a transient error.
    pub transient_base: Duration,
    /// First delay after throttling.
    pub throttling_base: Duration,
    /// Longest delay between attempts.
    pub cap: Duration,
    /// Longest wait for one attempt's answer; past it the attempt is a transient `AttemptTimeout`
    /// (AWS may have executed it, as with a lost answer).
    pub attempt_timeout: Duration,
}

impl RetryPolicy {
    /// The longest one call can take with every attempt timing out and the longest delays between
    /// them: how long after a call started AWS may still act on it.
    pub fn longest_call(&self) -> Duration {
        let mut total = self.attempt_timeout.saturating_mul(self.max_attempts);
        let base = self.throttling_base.max(self.transient_base);
        let delays = self.max_attempts.saturating_sub(1);
        for attempt in 0..delays {
            // exponential_delay's bound: the base doubled per attempt, capped (its jitter only shortens).
            let delay = base.saturating_mul(2u32.saturating_pow(attempt.min(30))).min(self.cap);
            if delay == self.cap || attempt >= 30 {
                // Every later delay is this one too (capped, or the doubling stopped): counted at
                // once, not one by one (a policy of u32::MAX attempts took minutes here).
                return total.saturating_add(delay.saturating_mul(delays - attempt));
            }
            total = total.saturating_add(delay);
        }
        total
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            transient_base: Duration::from_millis(200),
            throttling_base: Duration::from_secs(1),
            cap: Duration::from_secs(20),
            attempt_timeout: Duration::from_secs(30),
        }
    }
}

/// The longest a pass waits in a slow action group's queue (see [`AwsCaller::reserve`]); a later
/// turn is held for the object and the pass ends until then.
pub const QUEUE_HORIZON: Duration = Duration::from_secs(5);

/// Calls whose turn in their action group's queue is further off than [`QUEUE_HORIZON`]: the
/// object holds the turn and its pass comes back when it is due.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Queued {
    /// Service, e.g. `route53`.
    pub service: &'static str,
    /// Operation, e.g. `CreateHealthCheck`.
    pub operation: &'static str,
    /// How many calls the pass needs.
    pub count: usize,
    /// How long until the last of them may be sent.
    pub wait: Duration,
}

/// Makes AWS calls on behalf of the controllers.
#[derive(Clone, Debug)]
pub struct AwsCaller {
    budgets: Budgets,
    metrics: Arc<Metrics>,
    retry: RetryPolicy,
    /// Whose quota the calls spend (the operator's own identity unless [`scoped`](Self::scoped)).
    scope: Arc<Scope>,
    /// The object whose pass makes the calls, when tokens may be held for it (see [`Self::reserve`]).
    holder: Option<Arc<str>>,
    /// A service token taken by [`Self::turn`], spent by this caller's next first attempt there.
    prepaid: Option<(Service, Arc<AtomicBool>)>,
}

impl AwsCaller {
    /// A caller drawing from `budgets` and counting into `metrics`.
    pub fn new(budgets: Budgets, metrics: Arc<Metrics>, retry: RetryPolicy) -> Self {
        Self { budgets, metrics, retry, scope: Arc::default(), holder: None, prepaid: None }
    }

    /// This caller spending the quota of `scope` (an object's account and Region).
    pub fn scoped(&self, scope: Arc<Scope>) -> Self {
        Self { scope, ..self.clone() }
    }

    /// This caller making the calls of `holder`'s pass (an object's key), which may hold turns in
    /// slow action groups across passes ([`Self::reserve`]).
    pub fn held_by(&self, holder: &str) -> Self {
        Self { holder: Some(holder.into()), ..self.clone() }
    }

    /// Wait for a turn in `service`'s queue, and return this caller with the turn in hand: its
    /// next first attempt of a `service` call spends it instead of queueing again. A shared read's
    /// first asker waits its turn while others join the batch (`coalesce`): while the queue is
    /// long, a batch is as large as the wait allows, not only what joined in a few milliseconds.
    pub async fn turn(&self, service: Service) -> Self {
        let waited = self.budgets.for_service_in(&self.scope, service).acquire().await;
        if !waited.is_zero() {
            self.metrics.budget_waited(service.as_str(), waited);
        }
        Self { prepaid: Some((service, Arc::new(AtomicBool::new(true)))), ..self.clone() }
    }

    /// Whether a first attempt of a `service` call has a turn in hand (and spend it).
    fn spend_prepaid(&self, service: Service) -> bool {
        self.prepaid.as_ref().is_some_and(|(s, turn)| *s == service && turn.swap(false, Ordering::Relaxed))
    }

    /// Before a pass sends `count` calls of `operation`: make sure they will not wait longer than
    /// [`QUEUE_HORIZON`] for the action group's quota. The turns are reserved for the holder
    /// either way (and spent by its calls, in this pass or the one that comes back for them);
    /// `Err` says how long until they are due, so the pass can end and give up its slot. A caller
    /// without a holder, or an operation without a group of its own, is never queued here.
    pub async fn reserve(&self, service: Service, operation: &'static str, count: usize) -> Result<(), Queued> {
        let Some(holder) = self.holder.as_deref().filter(|_| count > 0) else { return Ok(()) };
        let wait = self.budgets.hold(holder, &self.scope, service, operation, count).await;
        if wait <= QUEUE_HORIZON {
            return Ok(());
        }
        self.metrics.budget_queued(service.as_str(), operation);
        Err(Queued { service: service.as_str(), operation, count, wait })
    }

    /// The shared budgets.
    pub fn budgets(&self) -> &Budgets {
        &self.budgets
    }

    /// Take one Fargate launch token of this caller's account and Region; returns the wait.
    pub async fn launch_token(&self) -> Duration {
        self.budgets.launches_in(&self.scope).acquire().await
    }

    /// Run `call` (which builds and sends one request) under the `service` budget, retrying
    /// throttling and transient failures with growing, jittered delays. Other errors return at once.
    pub async fn call<T, E, F, Fut>(&self, service: Service, operation: &'static str, call: F) -> Result<T, AwsError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: Classify,
    {
        self.call_with(service, operation, true, call).await
    }

    /// Like [`call`](Self::call) for a create that is not idempotent by itself: a transient error
    /// may mean AWS executed it and the response was lost, so it is returned rather than retried,
    /// and the caller re-observes (finding the resource by name or tags) before creating again.
    /// Throttled requests were not executed and are retried.
    pub async fn call_create<T, E, F, Fut>(
        &self,
        service: Service,
        operation: &'static str,
        call: F,
    ) -> Result<T, AwsError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: Classify,
    {
        self.call_with(service, operation, false, call).await
    }

    async fn call_with<T, E, F, Fut>(
        &self,
        service: Service,
        operation: &'static str,
        retry_transient: bool,
        mut call: F,
    ) -> Result<T, AwsError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: Classify,
    {
        let mut attempt = 0u32;
        loop {
            // The action's own quota first: a call waiting for a slow group (RegisterTaskDefinition
            // refills at 1/s) then holds no service token other calls could use.
            // A first attempt spends a turn its holder reserved; a retry queues again.
            let held = match &self.holder {
                Some(holder) if attempt == 0 => self.budgets.spend_held(holder, &self.scope, service, operation),
                _ => None,
            };
            let mut waited = match (held, self.budgets.for_action_in(&self.scope, service, operation)) {
                (Some(due), _) => {
                    tokio::time::sleep(due).await;
                    due
                }
                (None, Some(bucket)) => bucket.acquire().await,
                (None, None) => Duration::ZERO,
            };
            if attempt > 0 || !self.spend_prepaid(service) {
                waited += self.budgets.for_service_in(&self.scope, service).acquire().await;
            }
            if !waited.is_zero() {
                self.metrics.budget_waited(service.as_str(), waited);
            }
            let answer = match tokio::time::timeout(self.retry.attempt_timeout, call()).await {
                Ok(answer) => answer.map_err(|e| e.classify()),
                Err(_) => Err(Classified {
                    category: super::ErrorCategory::Transient,
                    code: "AttemptTimeout".into(),
                    message: format!("no answer within {} s", self.retry.attempt_timeout.as_secs_f64()),
                }),
            };
            match answer {
                Ok(v) => {
                    self.metrics.aws_call(service.as_str(), operation, "success");
                    return Ok(v);
                }
                Err(c) => {
                    self.metrics.aws_call(service.as_str(), operation, c.category.as_str());
                    attempt += 1;
                    let retryable = match c.category {
                        super::ErrorCategory::Throttling => true,
                        super::ErrorCategory::Transient => retry_transient,
                        _ => false,
                    };
                    if !retryable || attempt >= self.retry.max_attempts {
                        return Err(AwsError::new(service.as_str(), operation, c));
                    }
                    let base = if c.category == super::ErrorCategory::Throttling {
                        self.retry.throttling_base
                    } else {
                        self.retry.transient_base
                    };
                    let delay = exponential_delay(attempt - 1, base, self.retry.cap, unit_random());
                    tracing::debug!(service = service.as_str(), operation, code = %c.code, attempt, ?delay, "retrying AWS call");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_longest_call_counts_every_attempt_timing_out_and_every_delay() {
        let p = super::RetryPolicy { attempt_timeout: std::time::Duration::from_secs(1), ..Default::default() };
        assert_eq!(p.longest_call(), std::time::Duration::from_secs(4 + 1 + 2 + 4));
        let huge = super::RetryPolicy { max_attempts: u32::MAX, attempt_timeout: std::time::Duration::MAX, ..p };
        assert_eq!(huge.longest_call(), std::time::Duration::MAX, "saturates");
    }

    use std::sync::Mutex;

    use tokio::time::Instant;

    use super::*;
    use crate::aws::budget::{BudgetSettings, Scope};
    use crate::aws::errors::{Classified, ErrorCategory};

    struct Fake(ErrorCategory);
    impl Classify for Fake {
        fn classify(&self) -> Classified {
            Classified { category: self.0, code: format!("{:?}", self.0), message: "injected".into() }
        }
    }

    fn caller() -> (AwsCaller, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::new());
        let budgets = Budgets::new(BudgetSettings { ecs_rps: 1000.0, ..BudgetSettings::default() });
        (AwsCaller::new(budgets, metrics.clone(), RetryPolicy::default()), metrics)
    }

    /// Fails with `category` `failures` times, then succeeds; records when each attempt started.
    async fn run(category: ErrorCategory, failures: usize) -> (Result<u32, AwsError>, Vec<Duration>, Arc<Metrics>) {
        let (caller, metrics) = caller();
        let start = Instant::now();
        let times = Mutex::new(Vec::new());
        let result = caller
            .call(Service::Ecs, "CreateService", || {
                let n = {
                    let mut t = times.lock().unwrap();
                    t.push(start.elapsed());
                    t.len()
                };
                async move { if n <= failures { Err(Fake(category)) } else { Ok(7) } }
            })
            .await;
        let times = times.into_inner().unwrap();
        (result, times, metrics)
    }

    fn gaps(times: &[Duration]) -> Vec<Duration> {
        times.windows(2).map(|w| w[1] - w[0]).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_is_retried_with_growing_delays() {
        let (result, times, metrics) = run(ErrorCategory::Throttling, 3).await;
        assert_eq!(result, Ok(7));
        let gaps = gaps(&times);
        assert_eq!(gaps.len(), 3);
        assert!(gaps[0] >= Duration::from_millis(500), "{gaps:?}");
        assert!(gaps[1] >= gaps[0] && gaps[2] >= gaps[1], "{gaps:?}");
        assert_eq!(metrics.aws_call_count("ecs", "CreateService", "throttling"), 3);
        assert_eq!(metrics.aws_call_count("ecs", "CreateService", "success"), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn transient_errors_are_retried_then_given_up() {
        let (result, times, _) = run(ErrorCategory::Transient, 10).await;
        let err = result.unwrap_err();
        assert_eq!(err.category, ErrorCategory::Transient);
        assert_eq!(times.len(), 4, "max_attempts bounds the retries");
        let gaps = gaps(&times);
        assert!(gaps.windows(2).all(|w| w[1] >= w[0]), "{gaps:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn creates_return_transient_errors_for_re_observation_but_retry_throttling() {
        let (caller, _) = caller();
        let attempts = Mutex::new(0);
        let err = caller
            .call_create(Service::Ecs, "CreateService", || {
                *attempts.lock().unwrap() += 1;
                async { Err::<(), _>(Fake(ErrorCategory::Transient)) }
            })
            .await
            .unwrap_err();
        assert_eq!((err.category, *attempts.lock().unwrap()), (ErrorCategory::Transient, 1));
        let attempts = Mutex::new(0);
        let ok = caller
            .call_create(Service::Ecs, "CreateService", || {
                let n = {
                    let mut a = attempts.lock().unwrap();
                    *a += 1;
                    *a
                };
                async move { if n < 3 { Err(Fake(ErrorCategory::Throttling)) } else { Ok(()) } }
            })
            .await;
        assert!(ok.is_ok());
        assert_eq!(*attempts.lock().unwrap(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn terminal_conflict_and_not_found_are_not_retried() {
        for category in [ErrorCategory::Terminal, ErrorCategory::Conflict, ErrorCategory::NotFound] {
            let (result, times, _) = run(category, 1).await;
            assert_eq!(result.unwrap_err().category, category);
            assert_eq!(times.len(), 1, "{category:?} must not be retried");
        }
    }

    /// Answers `Ok(7)` from the second attempt on; the first never answers.
    async fn hang_once(caller: &AwsCaller, idempotent: bool) -> (Result<u32, AwsError>, u32) {
        let attempts = Mutex::new(0u32);
        let call = || {
            let n = {
                let mut a = attempts.lock().unwrap();
                *a += 1;
                *a
            };
            async move {
                if n == 1 {
                    std::future::pending::<()>().await;
                }
                Ok::<u32, Fake>(7)
            }
        };
        let result = if idempotent {
            caller.call(Service::Ecs, "DescribeTasks", call).await
        } else {
            caller.call_create(Service::Ecs, "CreateService", call).await
        };
        (result, attempts.into_inner().unwrap())
    }

    #[tokio::test(start_paused = true)]
    async fn an_attempt_that_never_answers_times_out_as_transient() {
        let (caller, metrics) = caller();
        let start = Instant::now();
        let (result, attempts) = hang_once(&caller, true).await;
        assert_eq!(result.expect("retried after the timeout"), 7);
        assert_eq!(attempts, 2);
        assert!(start.elapsed() >= RetryPolicy::default().attempt_timeout, "waited for the timeout");
        assert_eq!(metrics.aws_call_count("ecs", "DescribeTasks", "transient"), 1);

        let (result, attempts) = hang_once(&caller, false).await;
        let err = result.expect_err("a create that may have run is not repeated blindly");
        assert_eq!((err.code.as_str(), err.category, attempts), ("AttemptTimeout", ErrorCategory::Transient, 1));
    }

    /// CreateHealthCheck refills at 0.5/s after a burst of 50: the 51st and 52nd checks of one
    /// pass are 2 and 4 s away (within the horizon), the next pass's 6 and 8 s (beyond it). That
    /// pass holds its turns; coming back, its calls spend them and reserve nothing new.
    #[tokio::test(start_paused = true)]
    async fn a_holder_beyond_the_horizon_is_queued_and_spends_its_turn_when_back() {
        let (caller, metrics) = caller();
        let route53 = |c: &AwsCaller, n| {
            let c = c.clone();
            async move { c.reserve(Service::Route53, "CreateHealthCheck", n).await }
        };
        let bucket = caller.budgets().for_action_in(&Scope::default(), Service::Route53, "CreateHealthCheck");
        let bucket = bucket.expect("a group of its own");
        for _ in 0..50 {
            bucket.acquire().await;
        }
        let (a, b) = (caller.held_by("ns/a"), caller.held_by("ns/b"));
        assert_eq!(route53(&a, 2).await, Ok(()));
        let queued = route53(&b, 2).await.expect_err("beyond the horizon");
        assert_eq!((queued.operation, queued.count, queued.wait), ("CreateHealthCheck", 2, Duration::from_secs(8)));
        assert_eq!(metrics.budget_queued_count("route53", "CreateHealthCheck"), 1);
        assert_eq!(route53(&caller, 9).await, Ok(()), "a caller without a holder is never queued here");

        tokio::time::sleep(Duration::from_secs(4)).await;
        assert_eq!(route53(&b, 2).await, Ok(()), "its turns are 2 and 4 s away now");
        let start = Instant::now();
        for _ in 0..2 {
            b.call(Service::Route53, "CreateHealthCheck", || async { Ok::<u32, Fake>(1) }).await.expect("call");
        }
        assert_eq!(start.elapsed(), Duration::from_secs(4), "spent its held turns, not new ones");
        assert_eq!(bucket.reserve().await, Duration::from_secs(2), "the next turn is the one after b\'s 8 s");
    }
}

#[cfg(test)]
mod turn_tests {
    use tokio::time::Instant;

    use super::*;
    use crate::aws::budget::BudgetSettings;
    use crate::runtime::metrics::Metrics;

    /// A turn taken ahead is spent by the next first attempt: the call does not queue again.
    #[tokio::test(start_paused = true)]
    async fn a_call_with_a_turn_in_hand_spends_it_and_queues_no_more() {
        // ELBv2 at 1 call/s, burst 2.
        let budgets = Budgets::new(BudgetSettings { elbv2_rps: 1.0, ..BudgetSettings::default() });
        let caller = AwsCaller::new(budgets, Arc::new(Metrics::new()), RetryPolicy::default());
        let ok = || async { Ok::<_, crate::aws::errors::Classified>(()) };
        let start = Instant::now();
        let turned = caller.turn(Service::Elbv2).await;
        turned.call(Service::Elbv2, "DescribeRules", ok).await.expect("call");
        caller.call(Service::Elbv2, "DescribeRules", ok).await.expect("call");
        assert_eq!(start.elapsed(), Duration::ZERO, "two tokens of the burst: the turn's and the second call's");
        turned.call(Service::Elbv2, "DescribeRules", ok).await.expect("call");
        assert_eq!(start.elapsed(), Duration::from_secs(1), "a turn is spent once; the next call queues");
    }
}
