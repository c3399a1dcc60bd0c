//! The CloudWatch call this operator makes ([`CloudWatchApi`]) and its SDK implementation
//! ([`SdkCloudWatch`]): Route 53 publishes every health check's status as the metric
//! `AWS/Route53 HealthCheckStatus` (1 healthy, 0 unhealthy, one datapoint a minute, in us-east-1
//! only), and one GetMetricData request reads it for up to 500 checks, where GetHealthCheckStatus
//! reads one check per request at one request per second.
//!
//! Error codes an implementation should use: `Throttling` (Throttling), `AccessDenied`,
//! `InvalidParameterValue` (Terminal).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use aws_sdk_cloudwatch as sdk;
use sdk::types::{Dimension, Metric, MetricDataQuery, MetricStat, ScanBy};

use super::{ApiFuture, classified};

/// Metrics one GetMetricData request may read (CloudWatch's limit, not adjustable).
pub const METRICS_PER_REQUEST: usize = 500;
/// The Region CloudWatch keeps Route 53's metrics in.
pub const ROUTE53_METRICS_REGION: &str = "us-east-1";

/// One page of health check statuses.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StatusPage {
    /// The latest status of each check that has a datapoint in the window: `true` when healthy
    /// (the minute's minimum is 1). A check without a datapoint is missing (too new, or unknown).
    pub healthy: BTreeMap<String, bool>,
    /// Where the next page starts (the same request with this token); `None` on the last.
    pub next_token: Option<String>,
}

/// The CloudWatch calls of this operator.
pub trait CloudWatchApi: Send + Sync + std::fmt::Debug {
    /// GetMetricData: the latest `HealthCheckStatus` of each of `health_check_ids` (at most
    /// [`METRICS_PER_REQUEST`]) within the last `window`.
    fn health_check_statuses<'a>(
        &'a self,
        health_check_ids: &'a [String],
        window: Duration,
        next_token: Option<&'a str>,
    ) -> ApiFuture<'a, StatusPage>;
}

/// [`CloudWatchApi`] over the AWS SDK client (production).
#[derive(Clone, Debug)]
pub struct SdkCloudWatch {
    client: sdk::Client,
}

impl SdkCloudWatch {
    /// Wrap an SDK client (its interceptors, e.g. fault injection, stay on).
    pub fn new(client: sdk::Client) -> Self {
        Self { client }
    }
}

/// The query id of the `i`th check: ids must start with a lowercase letter and be unique per request.
fn query_id(i: usize) -> String {
    format!("h{i}")
}

impl CloudWatchApi for SdkCloudWatch {
    fn health_check_statuses<'a>(
        &'a self,
        health_check_ids: &'a [String],
        window: Duration,
        next_token: Option<&'a str>,
    ) -> ApiFuture<'a, StatusPage> {
        Box::pin(async move {
            let end = SystemTime::now();
            let start = end.checked_sub(window).unwrap_or(SystemTime::UNIX_EPOCH);
            let mut request = self
                .client
                .get_metric_data()
                .start_time(start.into())
                .end_time(end.into())
                .scan_by(ScanBy::TimestampDescending)
                .set_next_token(next_token.map(str::to_string));
            for (i, id) in health_check_ids.iter().enumerate() {
                let metric = Metric::builder()
                    .namespace("AWS/Route53")
                    .metric_name("HealthCheckStatus")
                    .dimensions(Dimension::builder().name("HealthCheckId").value(id).build())
                    .build();
                let stat = MetricStat::builder().metric(metric).period(60).stat("Minimum").build();
                request = request.metric_data_queries(
                    MetricDataQuery::builder().id(query_id(i)).metric_stat(stat).return_data(true).build(),
                );
            }
            let out = request.send().await.map_err(classified)?;
            let mut healthy = BTreeMap::new();
            for result in out.metric_data_results() {
                let Some(index) = result.id().and_then(|q| q.strip_prefix('h')).and_then(|n| n.parse::<usize>().ok())
                else {
                    continue;
                };
                let Some(id) = health_check_ids.get(index) else { continue };
                // Newest first (TimestampDescending): the first value is the latest minute.
                if let Some(value) = result.values().first() {
                    healthy.insert(id.clone(), *value >= 1.0);
                }
            }
            Ok(StatusPage { healthy, next_token: out.next_token().map(str::to_string) })
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn query_ids_start_with_a_letter_and_map_back_to_their_check() {
        let id = super::query_id(499);
        assert_eq!(id, "h499");
        assert_eq!(id.strip_prefix('h').and_then(|n| n.parse::<usize>().ok()), Some(499));
    }
}
