//! Command line and environment: parsed once into [`Config`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::aws::BudgetSettings;

/// Kubernetes controller for ECS Fargate services, Route 53 failover and hot worker pools.
#[derive(Debug, Parser)]
#[command(name = "fargate-operator", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every controller.
    Run(Box<Config>),
    /// Print every CRD as YAML (or write one file per CRD with --out-dir).
    Crd {
        /// Write `<plural>.<group>.yaml` files into this directory instead of printing.
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
}

/// Where DnsFailover health check status is read (`--health-source`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum HealthSource {
    /// Route 53's `HealthCheckStatus` metric in CloudWatch, many checks per call.
    #[default]
    Cloudwatch,
    /// GetHealthCheckStatus, one check per call.
    Route53,
}

/// Log output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Settings of `fargate-operator run`. Every flag also reads `FARGATE_OPERATOR_<FLAG>`.
#[derive(Clone, Debug, Args)]
pub struct Config {
    /// Value of the `fargate.operator.dev/cluster` tag on every AWS resource; tells this
    /// operator's resources apart from other clusters' in the same account.
    #[arg(long, env = "FARGATE_OPERATOR_CLUSTER_ID", value_parser = parse_cluster_id)]
    pub cluster_id: String,
    /// Default AWS region (else the SDK's chain: AWS_REGION, profile, IMDS).
    #[arg(long, env = "FARGATE_OPERATOR_REGION")]
    pub region: Option<String>,
    /// Endpoint URL for every AWS service, for local emulators such as moto.
    #[arg(long, env = "FARGATE_OPERATOR_AWS_ENDPOINT_URL")]
    pub aws_endpoint_url: Option<String>,
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "FARGATE_OPERATOR_NAMESPACE")]
    pub namespace: Option<String>,
    /// Seconds between drift checks of a converged object (jittered by up to 10%). FargateApps
    /// stretch it so that periodic full passes take at most half of the ELBv2 budget.
    #[arg(long, env = "FARGATE_OPERATOR_RESYNC_SECONDS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(10..=86400))]
    pub resync_seconds: u64,
    /// Run controllers only while holding the leader Lease (for more than one replica).
    #[arg(long, env = "FARGATE_OPERATOR_LEADER_ELECT", default_value_t = false)]
    pub leader_elect: bool,
    /// Name of the leader-election Lease.
    #[arg(long, env = "FARGATE_OPERATOR_LEADER_ELECTION_NAME", default_value = "fargate-operator")]
    pub leader_election_name: String,
    /// Namespace of the leader-election Lease (default: the pod's namespace, else `default`).
    #[arg(long, env = "FARGATE_OPERATOR_LEADER_ELECTION_NAMESPACE")]
    pub leader_election_namespace: Option<String>,
    /// Seconds a leader's Lease stays valid without renewal; a standby takes over after it.
    #[arg(long, env = "FARGATE_OPERATOR_LEASE_DURATION_SECONDS", default_value_t = 15, value_parser = clap::value_parser!(u64).range(5..=300))]
    pub lease_duration_seconds: u64,
    /// Identity in the Lease (default: POD_NAME, else hostname plus a random suffix).
    #[arg(long, env = "FARGATE_OPERATOR_IDENTITY")]
    pub identity: Option<String>,
    /// Address of the metrics and health server (`/metrics`, `/healthz`, `/readyz`).
    #[arg(long, env = "FARGATE_OPERATOR_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,
    /// Seconds between sweeps of every DnsFailover's health checks (one shared poller).
    #[arg(long, env = "FARGATE_OPERATOR_HEALTH_POLL_SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub health_poll_seconds: u64,
    /// Where health check status is read: `cloudwatch` reads Route 53's `HealthCheckStatus`
    /// metric for up to 500 checks per GetMetricData call (us-east-1), and reads a check with
    /// GetHealthCheckStatus only while CloudWatch has no datapoint for it yet; `route53` reads every
    /// check with GetHealthCheckStatus (one per second per account).
    #[arg(long, env = "FARGATE_OPERATOR_HEALTH_SOURCE", value_enum, default_value_t = HealthSource::Cloudwatch)]
    pub health_source: HealthSource,
    /// Route 53 requests per second (client-side budget; AWS allows about 5 per account).
    #[arg(long, env = "FARGATE_OPERATOR_ROUTE53_RPS", default_value_t = 4.0, value_parser = parse_rate)]
    pub route53_rps: f64,
    /// ECS requests per second (client-side budget).
    #[arg(long, env = "FARGATE_OPERATOR_ECS_RPS", default_value_t = 20.0, value_parser = parse_rate)]
    pub ecs_rps: f64,
    /// ELBv2 requests per second (client-side budget; Describe calls allow 10/s).
    #[arg(long, env = "FARGATE_OPERATOR_ELBV2_RPS", default_value_t = 8.0, value_parser = parse_rate)]
    pub elbv2_rps: f64,
    /// Reconciles of one kind running at once (0: no bound). Each waits for its AWS budget, so
    /// beyond the budget more only queue: with 1,000 new objects and no bound every object waits
    /// behind every other's first call and none finishes until nearly all do (measured with 1,000
    /// of every kind: after 12 minutes 13 of 1,000 FargateApps were Synced, at 297 MiB RSS). A
    /// bound also shrinks DnsFailover's Route 53 change batches (objects of a zone are merged while
    /// they reconcile together); 64 keeps batches of dozens of changes.
    #[arg(long, env = "FARGATE_OPERATOR_MAX_CONCURRENT_RECONCILES", default_value_t = 64, value_parser = clap::value_parser!(u16).range(0..=4096))]
    pub max_concurrent_reconciles: u16,
    /// Fargate tasks launched per second by HotPools (AWS allows 20/s after a burst of 100).
    #[arg(long, env = "FARGATE_OPERATOR_LAUNCHES_PER_SECOND", default_value_t = 10.0, value_parser = parse_rate)]
    pub launches_per_second: f64,
    /// Multiplies AWS's per-action quotas the operator keeps under (RegisterTaskDefinition 1/s,
    /// CreateHealthCheck 0.5/s, ...; `docs/budgets.md`), for accounts whose quotas were raised.
    #[arg(long, env = "FARGATE_OPERATOR_AWS_QUOTA_SCALE", default_value_t = 1.0, value_parser = parse_quota_scale)]
    pub aws_quota_scale: f64,
    /// Longest wait for one AWS request's answer before it counts as a timeout (transient: retried,
    /// as a lost answer is). Without it, a request whose connection hangs would hold its object's
    /// reconcile, and so the object, forever.
    #[arg(long, env = "FARGATE_OPERATOR_AWS_ATTEMPT_TIMEOUT_SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub aws_attempt_timeout_seconds: u64,
    /// How long after a launch a HotPool task that ECS's reads (ListTasks, DescribeTasks, StopTask)
    /// do not show is taken for not shown yet rather than gone: those reads lag RunTask by seconds.
    /// A worker is not replaced, and a pool's deletion waits, until then.
    #[arg(long, env = "FARGATE_OPERATOR_ECS_READ_LAG_SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub ecs_read_lag_seconds: u64,
    /// Namespaces no AccessPolicy names may use nothing in AWS (without it they may use anything).
    #[arg(long, env = "FARGATE_OPERATOR_REQUIRE_ACCESS_POLICY", default_value_t = false)]
    pub require_access_policy: bool,
    /// Log format.
    #[arg(long, env = "FARGATE_OPERATOR_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log filter in `RUST_LOG` syntax.
    #[arg(long, env = "FARGATE_OPERATOR_LOG_LEVEL", default_value = "info,kube_runtime::controller=warn")]
    pub log_level: String,
}

fn parse_cluster_id(s: &str) -> Result<String, String> {
    let ok = !s.is_empty() && s.len() <= 128 && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok { Ok(s.to_string()) } else { Err("use 1-128 characters from [A-Za-z0-9-_.]".into()) }
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 10_000.0 => Ok(v),
        _ => Err("use a number of requests per second in (0, 10000]".into()),
    }
}

fn parse_quota_scale(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.01..=1000.0).contains(&v) => Ok(v),
        _ => Err("use a factor in [0.01, 1000] (1: AWS's default quotas)".into()),
    }
}

impl Config {
    /// The client-side AWS budgets from the flags.
    pub fn budgets(&self) -> BudgetSettings {
        BudgetSettings {
            ecs_rps: self.ecs_rps,
            elbv2_rps: self.elbv2_rps,
            route53_rps: self.route53_rps,
            launches_per_second: self.launches_per_second,
            action_quota_scale: self.aws_quota_scale,
        }
    }

    /// Retries and the per-attempt timeout of AWS calls.
    pub fn retry(&self) -> crate::aws::RetryPolicy {
        crate::aws::RetryPolicy {
            attempt_timeout: Duration::from_secs(self.aws_attempt_timeout_seconds),
            ..crate::aws::RetryPolicy::default()
        }
    }

    /// See `--ecs-read-lag-seconds`.
    pub fn ecs_read_lag(&self) -> Duration {
        Duration::from_secs(self.ecs_read_lag_seconds)
    }

    /// The drift-check period.
    pub fn resync(&self) -> Duration {
        Duration::from_secs(self.resync_seconds)
    }

    /// Parse `fargate-operator run <args>` (tests build configs this way).
    pub fn from_args<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let argv = ["fargate-operator".into(), "run".into()].into_iter().chain(args.into_iter().map(Into::into));
        match Cli::try_parse_from(argv)?.command {
            Command::Run(cfg) => Ok(*cfg),
            Command::Crd { .. } => Err(clap::Error::new(clap::error::ErrorKind::InvalidSubcommand)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_contract() {
        let c = Config::from_args(["--cluster-id", "prod"]).unwrap();
        assert_eq!(c.resync_seconds, 300);
        assert_eq!(c.metrics_addr.to_string(), "0.0.0.0:8080");
        assert!(!c.leader_elect);
        assert!(c.namespace.is_none());
        assert_eq!(c.log_format, LogFormat::Text);
    }

    #[test]
    fn cluster_id_is_required_and_checked() {
        let err = Config::from_args(Vec::<String>::new()).unwrap_err().to_string();
        assert!(err.contains("--cluster-id"), "{err}");
        let err = Config::from_args(["--cluster-id", "a b"]).unwrap_err().to_string();
        assert!(err.contains("[A-Za-z0-9-_.]"), "{err}");
    }

    #[test]
    fn rates_must_be_positive() {
        let err = Config::from_args(["--cluster-id", "x", "--route53-rps", "0"]).unwrap_err().to_string();
        assert!(err.contains("requests per second"), "{err}");
        let c = Config::from_args(["--cluster-id", "x", "--route53-rps", "2.5", "--leader-elect"]).unwrap();
        assert_eq!(c.budgets().route53_rps, 2.5);
        assert!(c.leader_elect);
    }
}
