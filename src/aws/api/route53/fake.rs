//! A hand-written [`Route53Api`] for unit tests. It accepts a change batch unless one of its
//! changes touches a record name it was told to reject (then the whole batch is
//! `InvalidChangeBatch`, as Route 53 answers), answers GetChange from a script (then
//! `NoSuchChange`), and lists its health checks a few per page. It logs every request; what it was
//! not written for fails with `NotFaked`.
//!
//! Also the few helpers that the ELBv2 fake and the tests of code calling a fake share: the
//! request log, paging by index markers, a fake's errors, a test caller and owner.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use aws_sdk_route53::types::{Change, HealthCheckConfig};

use super::{ChangeInfo, HealthCheck, HealthChecksPage, HostedZone, RecordSetsPage, RecordStart, Route53Api};
use crate::aws::api::ApiFuture;
use crate::aws::errors::{Classified, ErrorCategory};
use crate::aws::{AwsCaller, BudgetSettings, Budgets, Owner, RetryPolicy};
use crate::runtime::metrics::Metrics;

/// An AWS error as a fake answers it.
pub(crate) fn error(category: ErrorCategory, code: &str) -> Classified {
    Classified { category, code: code.into(), message: format!("{code} (fake)") }
}

/// A caller with the default budgets and retries, counting into its own metrics.
pub(crate) fn caller() -> AwsCaller {
    AwsCaller::new(Budgets::new(BudgetSettings::default()), Arc::new(Metrics::new()), RetryPolicy::default())
}

/// The owner of the object under test: cluster `c1`, `ns/<kind>/app`, uid `u1`.
pub(crate) fn owner(kind: &str) -> Owner {
    Owner { cluster_id: "c1".into(), namespace: "ns".into(), kind: kind.into(), name: "app".into(), uid: "u1".into() }
}

/// The page of `items` that `marker` (an index; the start when `None`) begins, `size` long, and
/// the marker of the next page.
pub(crate) fn page<T: Clone>(items: &[T], marker: Option<&str>, size: usize) -> (Vec<T>, Option<String>) {
    let from: usize = marker.and_then(|m| m.parse().ok()).unwrap_or(0);
    let to = (from + size.max(1)).min(items.len());
    (items.get(from..to).unwrap_or_default().to_vec(), (to < items.len()).then(|| to.to_string()))
}

/// The requests a fake received, in order: operation and argument.
#[derive(Debug, Default)]
pub(crate) struct RequestLog(Mutex<Vec<String>>);

impl RequestLog {
    /// Log one request.
    pub fn record(&self, request: String) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(request);
    }

    /// The requests so far.
    pub fn requests(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Log a request the fake was not written for, and fail it with `NotFaked`.
    pub fn not_faked<'a, T: Send + 'a>(&self, operation: &str) -> ApiFuture<'a, T> {
        self.record(operation.to_string());
        Box::pin(async { Err(error(ErrorCategory::Terminal, "NotFaked")) })
    }
}

/// The fake; set the fields a test needs and leave the others default.
#[derive(Debug, Default)]
pub(crate) struct FakeRoute53 {
    /// A batch with a change to one of these record names is rejected whole.
    pub rejected_names: Vec<String>,
    /// GetChange answers, in order; `NoSuchChange` once they are used up.
    pub change_statuses: Mutex<VecDeque<Result<&'static str, Classified>>>,
    /// The account's health checks, listed `page_size` per ListHealthChecks page.
    pub health_checks: Vec<HealthCheck>,
    /// Health checks per page (at least 1).
    pub page_size: usize,
    /// Hosted zones GetHostedZone answers (others: `NoSuchHostedZone`).
    pub zones: Vec<HostedZone>,
    /// Every request.
    pub log: RequestLog,
}

impl Route53Api for FakeRoute53 {
    fn get_hosted_zone<'a>(&'a self, id: &'a str) -> ApiFuture<'a, HostedZone> {
        self.log.record(format!("GetHostedZone {id}"));
        let found = self.zones.iter().find(|z| z.id.trim_start_matches("/hostedzone/") == id).cloned();
        Box::pin(async move {
            // A real answer takes a while: concurrent passes overlap.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            found.ok_or_else(|| error(ErrorCategory::NotFound, "NoSuchHostedZone"))
        })
    }

    fn list_resource_record_sets<'a>(
        &'a self,
        _: &'a str,
        _: &'a RecordStart,
        _: i32,
    ) -> ApiFuture<'a, RecordSetsPage> {
        self.log.not_faked("ListResourceRecordSets")
    }

    fn change_resource_record_sets<'a>(&'a self, zone_id: &'a str, changes: &'a [Change]) -> ApiFuture<'a, ChangeInfo> {
        let names: Vec<&str> = changes.iter().filter_map(|c| c.resource_record_set()).map(|s| s.name()).collect();
        self.log.record(format!("ChangeResourceRecordSets {zone_id} {}", names.join(",")));
        let rejected = names.iter().any(|n| self.rejected_names.iter().any(|r| r == n));
        let id = format!("/change/C{}", self.log.requests().len());
        Box::pin(async move {
            if rejected {
                return Err(error(ErrorCategory::Conflict, "InvalidChangeBatch"));
            }
            Ok(ChangeInfo { id, status: "PENDING".into() })
        })
    }

    fn get_change<'a>(&'a self, change_id: &'a str) -> ApiFuture<'a, ChangeInfo> {
        self.log.record(format!("GetChange {change_id}"));
        let answer = self.change_statuses.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
        Box::pin(async move {
            match answer {
                Some(Ok(status)) => Ok(ChangeInfo { id: format!("/change/{change_id}"), status: status.into() }),
                Some(Err(e)) => Err(e),
                None => Err(error(ErrorCategory::NotFound, "NoSuchChange")),
            }
        })
    }

    fn get_health_check<'a>(&'a self, _: &'a str) -> ApiFuture<'a, HealthCheck> {
        self.log.not_faked("GetHealthCheck")
    }

    fn list_health_checks<'a>(&'a self, marker: Option<&'a str>) -> ApiFuture<'a, HealthChecksPage> {
        self.log.record(format!("ListHealthChecks {}", marker.unwrap_or("-")));
        let (health_checks, next_marker) = page(&self.health_checks, marker, self.page_size);
        Box::pin(async move { Ok(HealthChecksPage { health_checks, next_marker }) })
    }

    fn create_health_check<'a>(&'a self, _: &'a str, _: &'a HealthCheckConfig) -> ApiFuture<'a, String> {
        self.log.not_faked("CreateHealthCheck")
    }

    fn update_health_check<'a>(&'a self, _: &'a str, _: &'a HealthCheckConfig) -> ApiFuture<'a, ()> {
        self.log.not_faked("UpdateHealthCheck")
    }

    fn delete_health_check<'a>(&'a self, _: &'a str) -> ApiFuture<'a, ()> {
        self.log.not_faked("DeleteHealthCheck")
    }

    fn add_health_check_tags<'a>(&'a self, _: &'a str, _: &'a BTreeMap<String, String>) -> ApiFuture<'a, ()> {
        self.log.not_faked("ChangeTagsForResource")
    }

    fn get_health_check_status<'a>(&'a self, _: &'a str) -> ApiFuture<'a, Vec<String>> {
        self.log.not_faked("GetHealthCheckStatus")
    }
}
