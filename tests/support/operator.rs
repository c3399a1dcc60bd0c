//! The operator run in-process (`operator::run_with`), so a test can read its metrics registry
//! directly: AWS call counts per operation and outcome, status writes per kind.

use std::sync::Arc;
use std::time::Duration;

use fargate_operator::aws::AwsProvider;
use fargate_operator::config::Config;
use fargate_operator::operator::{RunError, run_with};
use fargate_operator::runtime::metrics::Metrics;
use fargate_operator::runtime::shutdown::Shutdown;
use tokio::task::JoinHandle;

use super::TestCtx;

/// Mutating operations a FargateApp controller may call, as `(service, operation)` metric labels.
pub const FARGATE_APP_MUTATING_CALLS: &[(&str, &str)] = &[
    ("ecs", "RegisterTaskDefinition"),
    ("ecs", "DeregisterTaskDefinition"),
    ("ecs", "CreateService"),
    ("ecs", "UpdateService"),
    ("ecs", "DeleteService"),
    ("ecs", "TagResource"),
    ("elbv2", "CreateTargetGroup"),
    ("elbv2", "ModifyTargetGroup"),
    ("elbv2", "ModifyTargetGroupAttributes"),
    ("elbv2", "DeleteTargetGroup"),
    ("elbv2", "CreateRule"),
    ("elbv2", "ModifyRule"),
    ("elbv2", "DeleteRule"),
    ("elbv2", "SetRulePriorities"),
    ("elbv2", "AddTags"),
    ("route53", "ChangeResourceRecordSets"),
];

/// Every `outcome` label of `fargate_operator_aws_calls_total`.
pub const OUTCOMES: &[&str] = &["success", "throttling", "transient", "not_found", "conflict", "terminal"];

/// `fargate-operator run` in a tokio task of the test, watching only the test's namespace.
pub struct InProcessOperator {
    /// The operator's metrics registry.
    pub metrics: Arc<Metrics>,
    shutdown: Shutdown,
    handle: JoinHandle<Result<(), RunError>>,
}

impl InProcessOperator {
    /// Start with resync every 10 s, cluster id `test`, metrics on an ephemeral port, AWS at moto.
    pub async fn start(ctx: &TestCtx) -> Self {
        Self::start_with_faults(ctx, "").await
    }

    /// Like [`start`](Self::start), injecting AWS faults per `faults` (see `aws::faults`).
    pub async fn start_with_faults(ctx: &TestCtx, faults: &str) -> Self {
        Self::start_with(ctx, faults, &[]).await
    }

    /// Like [`start_with_faults`](Self::start_with_faults) with extra `run` flags.
    pub async fn start_with(ctx: &TestCtx, faults: &str, extra: &[&str]) -> Self {
        let plan = fargate_operator::aws::faults::FaultPlan::parse(faults).expect("fault plan");
        let aws = AwsProvider::from_base(super::moto_base_config().await).with_faults(plan);
        Self::spawn(ctx, &super::aws_endpoint(), extra, aws, None).await
    }

    /// Like [`start_with`](Self::start_with), with every AWS call answered by `source` (the
    /// simulator's in-memory model) instead of moto.
    pub async fn start_with_source(
        ctx: &TestCtx,
        source: Arc<dyn fargate_operator::aws::sdk::ApiSource>,
        extra: &[&str],
    ) -> Self {
        let aws = AwsProvider::from_base(super::moto_base_config().await).with_source(source);
        Self::spawn(ctx, &super::aws_endpoint(), extra, aws, None).await
    }

    /// Like [`start_with_source`](Self::start_with_source), talking to Kubernetes through `client`
    /// (the simulator's in-memory API server) and with the base AWS configuration of `ctx` (built
    /// without IO by [`TestCtx::in_memory`]): nothing here touches the network or the filesystem,
    /// so it runs on a paused tokio clock.
    pub async fn start_with_source_and_client(
        ctx: &TestCtx,
        source: Arc<dyn fargate_operator::aws::sdk::ApiSource>,
        extra: &[&str],
        client: kube::Client,
    ) -> Self {
        let aws = AwsProvider::from_base(ctx.aws.base().clone()).with_source(source);
        Self::spawn(ctx, &super::aws_endpoint(), extra, aws, Some(client)).await
    }

    /// Like [`start`](Self::start), against the AWS endpoint `endpoint` with the static credentials
    /// `credentials` (tests/iam_policy.rs: its own moto that enforces IAM, and an IAM user's key).
    pub async fn start_with_credentials(
        ctx: &TestCtx,
        endpoint: &str,
        credentials: aws_credential_types::Credentials,
    ) -> Self {
        let base = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(super::REGION))
            .endpoint_url(endpoint)
            .credentials_provider(credentials)
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .load()
            .await;
        Self::spawn(ctx, endpoint, &[], AwsProvider::from_base(base), None).await
    }

    /// `run` with the test flags (resync 10 s, health poll 1 s, cluster id `test`, the test's
    /// namespace) plus `extra` (which may override them), on `aws`, through `client` (default: a
    /// new client for the test apiserver).
    async fn spawn(
        ctx: &TestCtx,
        endpoint: &str,
        extra: &[&str],
        aws: AwsProvider,
        client: Option<kube::Client>,
    ) -> Self {
        let base = [
            ("--cluster-id", "test"),
            ("--namespace", ctx.namespace.as_str()),
            ("--metrics-addr", "127.0.0.1:0"),
            ("--region", super::REGION),
            ("--aws-endpoint-url", endpoint),
            ("--resync-seconds", "10"),
            ("--health-poll-seconds", "1"),
        ];
        // A flag in `extra` replaces the test default.
        let args = base
            .into_iter()
            .filter(|(flag, _)| !extra.contains(flag))
            .flat_map(|(flag, value)| [flag, value])
            .chain(extra.iter().copied());
        let config = Config::from_args(args).expect("operator flags");
        let client = match client {
            Some(c) => c,
            None => super::client().await,
        };
        let metrics = Arc::new(Metrics::new());
        let shutdown = Shutdown::new();
        let handle = tokio::spawn(run_with(config, shutdown.clone(), metrics.clone(), client, aws));
        Self { metrics, shutdown, handle }
    }

    /// Trigger shutdown and wait (30 s at most) for a clean end.
    pub async fn stop(self) {
        self.shutdown.trigger();
        match tokio::time::timeout(Duration::from_secs(30), self.handle).await {
            Err(_) => panic!("operator did not stop within 30s of shutdown"),
            Ok(Err(join)) => panic!("operator task failed: {join}"),
            Ok(Ok(Err(run))) => panic!("operator ended with an error: {run}"),
            Ok(Ok(Ok(()))) => {}
        }
    }

    /// End the operator at once, as `kill -9` would: in-flight reconciles stop wherever they are.
    pub async fn kill(self) {
        self.handle.abort();
        let _ = self.handle.await;
    }

    /// Whether the operator task has ended (it should not before `stop`).
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }

    /// Sum of attempts of every mutating FargateApp operation, any outcome.
    pub fn mutating_calls(&self) -> u64 {
        FARGATE_APP_MUTATING_CALLS
            .iter()
            .flat_map(|(service, op)| OUTCOMES.iter().map(move |o| self.metrics.aws_call_count(service, op, o)))
            .sum()
    }

    /// Mutating calls per `service:operation` with a non-zero count (for assertion messages).
    pub fn mutating_call_breakdown(&self) -> Vec<(String, u64)> {
        FARGATE_APP_MUTATING_CALLS
            .iter()
            .map(|(service, op)| {
                let n = OUTCOMES.iter().map(|o| self.metrics.aws_call_count(service, op, o)).sum();
                (format!("{service}:{op}"), n)
            })
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}
