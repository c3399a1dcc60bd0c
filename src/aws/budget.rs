//! Client-side request budgets, kept the way AWS counts: per account (and per Region for ECS and
//! ELBv2), one token bucket per service (the `--*-rps` flags), one per action group that AWS
//! throttles on its own (`quotas`), and one for Fargate launches.
//!
//! Hand-written rather than a rate-limiter crate because it runs on tokio's clock, so tests can
//! pause time and observe exact waits, and because reservations (tokens may go negative) queue
//! callers in arrival order instead of waking them all at once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

mod held;
mod quotas;
pub use quotas::{ActionQuota, QUOTAS};

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
        let wait = self.reserve().await;
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        wait
    }

    /// Reserve one token without waiting for it: returns how long from now until it may be spent.
    pub async fn reserve(&self) -> Duration {
        let mut s = self.state.lock().await;
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(s.last).as_secs_f64();
        s.tokens = (s.tokens + elapsed * self.rate).min(self.burst);
        s.last = now;
        // Reserve the token now, even if that drives the balance negative: the debt is the queue.
        s.tokens -= 1.0;
        if s.tokens >= 0.0 { Duration::ZERO } else { Duration::from_secs_f64(-s.tokens / self.rate) }
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
    /// Amazon CloudWatch (Route 53 health check metrics, always in us-east-1).
    CloudWatch,
}

impl Service {
    /// Lowercase name used in metrics and error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ecs => "ecs",
            Self::Elbv2 => "elbv2",
            Self::Route53 => "route53",
            Self::Sts => "sts",
            Self::CloudWatch => "cloudwatch",
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
    /// `--aws-quota-scale`: multiplies every action group's rate and burst.
    pub action_quota_scale: f64,
}

impl Default for BudgetSettings {
    fn default() -> Self {
        Self { ecs_rps: 20.0, elbv2_rps: 8.0, route53_rps: 4.0, launches_per_second: 10.0, action_quota_scale: 1.0 }
    }
}

/// Whose AWS quota a call spends. AWS throttles per account, and ECS and ELBv2 also per Region;
/// Route 53 and STS are global services, so their calls spend the account's one quota wherever
/// they are made from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Scope {
    /// The 12-digit account of the role the calls are made with; empty for the operator's own
    /// identity (its account is not looked up: one more STS call for a name).
    pub account: String,
    /// The Region of the calls; empty for the operator's default Region.
    pub region: String,
}

impl Scope {
    /// The scope of calls made with `role_arn` (the operator's identity when `None`) in `region`
    /// (the default Region when `None`).
    pub fn of(role_arn: Option<&str>, region: Option<&str>) -> Self {
        // arn:aws:iam::<account>:role/<name>; a malformed ARN keys on itself, so it still gets
        // its own budget rather than sharing the operator's.
        let account = role_arn.map_or_else(String::new, |arn| match arn.split(':').nth(4) {
            Some(account) if !account.is_empty() => account.to_string(),
            _ => arn.to_string(),
        });
        Self { account, region: region.unwrap_or_default().to_string() }
    }

    /// The scope AWS counts `service`'s calls in.
    fn counted_for(&self, service: Service) -> Self {
        match service {
            // CloudWatch is regional, but the operator calls it in us-east-1 only.
            Service::Route53 | Service::Sts | Service::CloudWatch => {
                Self { account: self.account.clone(), region: String::new() }
            }
            Service::Ecs | Service::Elbv2 => self.clone(),
        }
    }
}

/// One token bucket of the operator: a service's (from the `--*-rps` flags), an action group's
/// (from AWS's published quotas) or the Fargate launches'.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum BucketKey {
    Service(Service),
    Action(Service, &'static str),
    Launches,
}

/// Calls per second `operation` may make under `settings` by its action group's own quota (AWS's
/// published rate times `--aws-quota-scale`), when it has one.
pub fn action_rate(settings: &BudgetSettings, service: Service, operation: &str) -> Option<f64> {
    let group = quotas::group_of(service, operation)?;
    quotas::group_quota(service, group).map(|q| q.rate * settings.action_quota_scale)
}

/// The operator's budgets, shared by every controller: for each scope (account, and Region where
/// AWS counts per Region) one bucket per service, one per throttled action group, and one for
/// Fargate launches, made on first use.
#[derive(Clone, Debug)]
pub struct Budgets {
    settings: BudgetSettings,
    buckets: Arc<std::sync::Mutex<BucketMap>>,
    held: Arc<held::Held>,
}

type BucketMap = HashMap<(Scope, BucketKey), Arc<TokenBucket>>;

impl Budgets {
    /// Budgets with the rates of `s`. Every bucket's burst is two seconds' worth of tokens (at
    /// least 1), or AWS's published burst for an action group.
    pub fn new(s: BudgetSettings) -> Self {
        Self { settings: s, buckets: Arc::default(), held: Arc::default() }
    }

    fn bucket(&self, scope: Scope, key: BucketKey) -> Arc<TokenBucket> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        buckets
            .entry((scope, key))
            .or_insert_with(|| {
                let (rate, burst) = match key {
                    BucketKey::Service(service) => {
                        let rate = self.settings.rate_of(service);
                        (rate, (rate * 2.0).ceil())
                    }
                    BucketKey::Action(service, group) => {
                        let scale = self.settings.action_quota_scale;
                        quotas::group_quota(service, group).map_or((1.0, 1.0), |q| (q.rate * scale, q.burst * scale))
                    }
                    BucketKey::Launches => {
                        (self.settings.launches_per_second, (self.settings.launches_per_second * 2.0).ceil())
                    }
                };
                Arc::new(TokenBucket::new(rate, burst))
            })
            .clone()
    }

    /// The bucket of one service in `scope`.
    pub fn for_service_in(&self, scope: &Scope, service: Service) -> Arc<TokenBucket> {
        self.bucket(scope.counted_for(service), BucketKey::Service(service))
    }

    /// The bucket of one service for the operator's own identity and Region.
    pub fn for_service(&self, service: Service) -> Arc<TokenBucket> {
        self.for_service_in(&Scope::default(), service)
    }

    /// The bucket of the action group `operation` belongs to in `scope`, when AWS gives that group
    /// a quota lower than the service's budget can keep under.
    pub fn for_action_in(&self, scope: &Scope, service: Service, operation: &str) -> Option<Arc<TokenBucket>> {
        let group = quotas::group_of(service, operation)?;
        Some(self.bucket(scope.counted_for(service), BucketKey::Action(service, group)))
    }

    /// Make `holder` (an object's key) hold `count` tokens of the action group `operation` belongs
    /// to in `scope`, reserving those it does not hold yet; returns how long until the last may be
    /// spent, zero when the operation has no group of its own (see `held.rs`).
    pub async fn hold(&self, holder: &str, scope: &Scope, service: Service, operation: &str, count: usize) -> Duration {
        let Some(group) = quotas::group_of(service, operation) else { return Duration::ZERO };
        let bucket = self.bucket(scope.counted_for(service), BucketKey::Action(service, group));
        self.held.hold(holder, &scope.counted_for(service), group, &bucket, count).await
    }

    /// Spend a token `holder` holds for `operation`'s action group in `scope`: how long until it
    /// may be spent, `None` when it holds none.
    pub fn spend_held(&self, holder: &str, scope: &Scope, service: Service, operation: &str) -> Option<Duration> {
        let group = quotas::group_of(service, operation)?;
        self.held.spend(holder, &scope.counted_for(service), group)
    }

    /// Forget the turns `holder` holds (the object is gone).
    pub fn forget_held(&self, holder: &str) {
        self.held.forget(holder);
    }

    /// The Fargate launch bucket of `scope` (one token per task started).
    pub fn launches_in(&self, scope: &Scope) -> Arc<TokenBucket> {
        self.bucket(scope.clone(), BucketKey::Launches)
    }

    /// The Fargate launch bucket of the operator's own identity and Region.
    pub fn launches(&self) -> Arc<TokenBucket> {
        self.launches_in(&Scope::default())
    }
}

impl BudgetSettings {
    fn rate_of(&self, service: Service) -> f64 {
        match service {
            Service::Ecs => self.ecs_rps,
            Service::Elbv2 => self.elbv2_rps,
            Service::Route53 => self.route53_rps,
            // STS allows far more; this only keeps a burst of new roles from stampeding it.
            Service::Sts => 5.0,
            // GetMetricData allows 50 per second or more; a sweep of 1,000 objects takes 4 calls.
            Service::CloudWatch => 5.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_actions_rate_is_its_groups_quota_times_the_scale() {
        let scaled = BudgetSettings { action_quota_scale: 20.0, ..BudgetSettings::default() };
        assert_eq!(action_rate(&BudgetSettings::default(), Service::Route53, "GetHealthCheckStatus"), Some(1.0));
        assert_eq!(action_rate(&scaled, Service::Route53, "GetHealthCheckStatus"), Some(20.0));
        assert_eq!(action_rate(&scaled, Service::Route53, "ListResourceRecordSets"), None, "no group of its own");
    }

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

    #[test]
    fn a_scope_is_the_roles_account_and_route53_counts_one_per_account() {
        let s = Scope::of(Some("arn:aws:iam::111122223333:role/team-a"), Some("eu-west-1"));
        assert_eq!((s.account.as_str(), s.region.as_str()), ("111122223333", "eu-west-1"));
        assert_eq!(Scope::of(None, None), Scope::default());
        assert_eq!(Scope::of(Some("not-an-arn"), None).account, "not-an-arn", "a bad ARN keys on itself");
        let budgets = Budgets::new(BudgetSettings::default());
        let other_region = Scope::of(Some("arn:aws:iam::111122223333:role/team-b"), Some("us-east-1"));
        assert!(Arc::ptr_eq(
            &budgets.for_service_in(&s, Service::Route53),
            &budgets.for_service_in(&other_region, Service::Route53)
        ));
        assert!(!Arc::ptr_eq(
            &budgets.for_service_in(&s, Service::Ecs),
            &budgets.for_service_in(&other_region, Service::Ecs)
        ));
        let other_account = Scope::of(Some("arn:aws:iam::444455556666:role/x"), Some("eu-west-1"));
        assert!(!Arc::ptr_eq(
            &budgets.for_service_in(&s, Service::Route53),
            &budgets.for_service_in(&other_account, Service::Route53)
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn an_action_group_is_held_to_awss_quota_below_the_service_budget() {
        let budgets = Budgets::new(BudgetSettings { ecs_rps: 1000.0, ..BudgetSettings::default() });
        let scope = Scope::default();
        let register = budgets.for_action_in(&scope, Service::Ecs, "RegisterTaskDefinition").expect("grouped");
        let deregister = budgets.for_action_in(&scope, Service::Ecs, "DeregisterTaskDefinition").expect("grouped");
        assert!(Arc::ptr_eq(&register, &deregister), "one group, one bucket");
        let unthrottled = "ListTagsForResource";
        assert!(budgets.for_action_in(&scope, Service::Ecs, unthrottled).is_none());
        // 20 at once, then one per second.
        for _ in 0..20 {
            assert_eq!(register.acquire().await, Duration::ZERO);
        }
        assert_eq!(deregister.acquire().await, Duration::from_secs(1));
    }
}
