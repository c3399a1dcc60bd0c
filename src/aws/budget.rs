//! Client-side request budgets: one token bucket per AWS service (and one for Fargate launches).
//!
//! Hand-written rather than a rate-limiter crate because it runs on tokio's clock, so tests can
//! pause time and observe exact waits, and because reservations (tokens may go negative) queue
//! callers in arrival order instead of waking them all at once.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// A token bucket: `rate` tokens per second, at most `burst` stored.
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    state: Mutex<BucketState>,
}

#[derive(Debug)]
struct BucketState {
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket. `rate` must be positive; `burst` is at least 1.
    pub fn new(rate: f64, burst: f64) -> Self {
        let burst = burst.max(1.0);
        Self { rate: rate.max(0.001), burst, state: Mutex::new(BucketState { tokens: burst, last: Instant::now() }) }
    }

    /// Tokens per second.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Take one token, waiting until it is available. Returns how long the caller waited.
    pub async fn acquire(&self) -> Duration {
        let wait = {
            let mut s = self.state.lock().await;
            let now = Instant::now();
            let elapsed = now.saturating_duration_since(s.last).as_secs_f64();
            s.tokens = (s.tokens + elapsed * self.rate).min(self.burst);
            s.last = now;
            // Reserve the token now, even if that drives the balance negative: the debt is the queue.
            s.tokens -= 1.0;
            if s.tokens >= 0.0 { Duration::ZERO } else { Duration::from_secs_f64(-s.tokens / self.rate) }
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        wait
    }
}

/// Which budget a call draws from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Service {
    /// Amazon ECS.
    Ecs,
    /// Elastic Load Balancing v2.
    Elbv2,
    /// Route 53 (one small budget per account).
    Route53,
    /// AWS STS (role assumption); shares no AWS budget with the others.
    Sts,
}

impl Service {
    /// Lowercase name used in metrics and error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ecs => "ecs",
            Self::Elbv2 => "elbv2",
            Self::Route53 => "route53",
            Self::Sts => "sts",
        }
    }
}

/// Requests per second allowed per service, from the `--*-rps` flags.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BudgetSettings {
    /// `--ecs-rps`.
    pub ecs_rps: f64,
    /// `--elbv2-rps`.
    pub elbv2_rps: f64,
    /// `--route53-rps`.
    pub route53_rps: f64,
    /// `--launches-per-second`: Fargate tasks started per second (RunTask counts each task).
    pub launches_per_second: f64,
}

impl Default for BudgetSettings {
    fn default() -> Self {
        Self { ecs_rps: 20.0, elbv2_rps: 8.0, route53_rps: 4.0, launches_per_second: 10.0 }
    }
}

/// The operator's budgets, shared by every controller.
#[derive(Clone, Debug)]
pub struct Budgets {
    ecs: Arc<TokenBucket>,
    elbv2: Arc<TokenBucket>,
    route53: Arc<TokenBucket>,
    sts: Arc<TokenBucket>,
    launches: Arc<TokenBucket>,
}

impl Budgets {
    /// Buckets whose burst is two seconds' worth of tokens (at least 1).
    pub fn new(s: BudgetSettings) -> Self {
        let bucket = |rps: f64| Arc::new(TokenBucket::new(rps, (rps * 2.0).ceil()));
        Self {
            ecs: bucket(s.ecs_rps),
            elbv2: bucket(s.elbv2_rps),
            route53: bucket(s.route53_rps),
            sts: bucket(5.0),
            launches: bucket(s.launches_per_second),
        }
    }

    /// The bucket of one service.
    pub fn for_service(&self, service: Service) -> &TokenBucket {
        match service {
            Service::Ecs => &self.ecs,
            Service::Elbv2 => &self.elbv2,
            Service::Route53 => &self.route53,
            Service::Sts => &self.sts,
        }
    }

    /// The Fargate launch bucket (one token per task started).
    pub fn launches(&self) -> &TokenBucket {
        &self.launches
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn burst_is_free_then_calls_are_spaced_by_rate() {
        let bucket = TokenBucket::new(2.0, 3.0);
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(bucket.acquire().await, Duration::ZERO);
        }
        // Fourth and fifth wait half a second each at 2 tokens/s.
        bucket.acquire().await;
        bucket.acquire().await;
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_millis(999) && elapsed <= Duration::from_millis(1001), "{elapsed:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_are_queued_not_stampeded() {
        let bucket = Arc::new(TokenBucket::new(10.0, 1.0));
        let start = Instant::now();
        let tasks: Vec<_> = (0..11)
            .map(|_| {
                let b = bucket.clone();
                tokio::spawn(async move { b.acquire().await })
            })
            .collect();
        for t in tasks {
            let _ = t.await;
        }
        // 1 from the burst, 10 more at 10/s: one second in all, never more.
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_millis(999) && elapsed <= Duration::from_millis(1001), "{elapsed:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn idle_bucket_refills_only_up_to_burst() {
        let bucket = TokenBucket::new(1.0, 2.0);
        tokio::time::sleep(Duration::from_secs(100)).await;
        assert_eq!(bucket.acquire().await, Duration::ZERO);
        assert_eq!(bucket.acquire().await, Duration::ZERO);
        assert_eq!(bucket.acquire().await, Duration::from_secs(1));
    }
}
