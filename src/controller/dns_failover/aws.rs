//! Route 53 calls of the DnsFailover controller, each through `AwsCaller` under its operation name,
//! to the [`Route53Api`] of the object's account and region.

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_sdk_route53::types as r53;

use super::plan::HealthCheckConfig;
use crate::aws::api::route53::Route53Api;
use crate::aws::errors::build_error;
use crate::aws::naming::Owner;
use crate::aws::{AwsCaller, AwsError, Service};

/// Route 53 for one object's account.
pub struct FailoverAws {
    /// Caller (budget, retries, metrics).
    pub caller: AwsCaller,
    /// Route 53 of the object's account and region.
    pub r53: Arc<dyn Route53Api>,
    /// Owner identity and tags.
    pub owner: Owner,
    /// Per-zone batching of record changes.
    pub batcher: crate::aws::route53_batch::Route53Batcher,
    /// The account and region of this object's calls (`spec.aws`), which its batches go to.
    pub scope: String,
    /// Facts remembered by the process (zones, attempted health check creates).
    pub facts: std::sync::Arc<crate::aws::facts::Facts>,
    /// Record-set and health-check reads shared with the other objects of the configuration.
    pub reads: Arc<crate::aws::route53_reads::Route53Reads>,
}

fn config_of(c: &r53::HealthCheckConfig) -> HealthCheckConfig {
    HealthCheckConfig {
        check_type: c.r#type().as_str().to_string(),
        fqdn: c.fully_qualified_domain_name().unwrap_or_default().trim_end_matches('.').to_ascii_lowercase(),
        port: c.port().unwrap_or_default(),
        path: c.resource_path().map(str::to_string),
        search_string: c.search_string().filter(|s| !s.is_empty()).map(str::to_string),
        interval: c.request_interval().unwrap_or(30),
        failure_threshold: c.failure_threshold().unwrap_or(3),
        inverted: c.inverted().unwrap_or(false),
        disabled: c.disabled().unwrap_or(false),
    }
}

/// The Route 53 form of `want` (UpdateHealthCheck sends only its mutable settings).
fn sdk_config(want: &HealthCheckConfig) -> Result<r53::HealthCheckConfig, AwsError> {
    r53::HealthCheckConfig::builder()
        .r#type(r53::HealthCheckType::from(want.check_type.as_str()))
        .fully_qualified_domain_name(&want.fqdn)
        .port(want.port)
        .set_resource_path(want.path.clone())
        .set_search_string(want.search_string.clone())
        .request_interval(want.interval)
        .failure_threshold(want.failure_threshold)
        .inverted(want.inverted)
        .disabled(want.disabled)
        .build()
        .map_err(build_error)
}

impl FailoverAws {
    /// A health check's configuration; `None` when it is gone.
    pub async fn health_check(&self, id: &str) -> Result<Option<HealthCheckConfig>, AwsError> {
        let check = self.reads.health_check(&self.caller, self.r53.as_ref(), id).await?;
        Ok(check.and_then(|h| h.config.as_ref().map(config_of)))
    }

    /// The health check created with `reference`, by listing them all (deletion must not leak one
    /// whose id never reached status).
    pub async fn find_by_reference(&self, reference: &str) -> Result<Option<String>, AwsError> {
        let mut marker: Option<String> = None;
        loop {
            let page = self
                .caller
                .call(Service::Route53, "ListHealthChecks", || self.r53.list_health_checks(marker.as_deref()))
                .await?;
            if let Some(h) = page.health_checks.into_iter().find(|h| h.caller_reference == reference) {
                return Ok(Some(h.id));
            }
            marker = page.next_marker;
            if marker.is_none() {
                return Ok(None);
            }
        }
    }

    /// Create a health check with `reference` and our tags; returns its id.
    pub async fn create_health_check(
        &self,
        reference: &str,
        want: &HealthCheckConfig,
        tags: &BTreeMap<String, String>,
    ) -> Result<String, AwsError> {
        let config = sdk_config(want)?;
        self.facts.attempt(reference);
        let id = self
            .caller
            .call_create(Service::Route53, "CreateHealthCheck", || self.r53.create_health_check(reference, &config))
            .await;
        tracing::debug!(reference, outcome = ?id, "CreateHealthCheck");
        let id = id?;
        self.tag_health_check(&id, tags).await?;
        Ok(id)
    }

    /// Put our owner tags on a health check (idempotent). CreateHealthCheck takes no tags, so a
    /// check found after a lost create response or a failed tagging call is tagged here: untagged,
    /// it would be invisible to anyone auditing by owner tag.
    pub async fn tag_health_check(&self, id: &str, tags: &BTreeMap<String, String>) -> Result<(), AwsError> {
        self.caller.call(Service::Route53, "ChangeTagsForResource", || self.r53.add_health_check_tags(id, tags)).await
    }

    /// Update the mutable settings of a health check.
    pub async fn update_health_check(&self, id: &str, want: &HealthCheckConfig) -> Result<(), AwsError> {
        let config = sdk_config(want)?;
        self.caller.call(Service::Route53, "UpdateHealthCheck", || self.r53.update_health_check(id, &config)).await
    }

    /// Delete a health check; NotFound counts as done.
    pub async fn delete_health_check(&self, id: &str) -> Result<(), AwsError> {
        let outcome =
            self.caller.call(Service::Route53, "DeleteHealthCheck", || self.r53.delete_health_check(id)).await;
        tracing::debug!(id, ?outcome, "DeleteHealthCheck");
        match outcome {
            Err(e) if !e.is_not_found() => Err(e),
            _ => Ok(()),
        }
    }

    /// Every record set named `name` in the zone.
    pub async fn records_at(&self, zone: &str, name: &str) -> Result<Vec<r53::ResourceRecordSet>, AwsError> {
        self.reads.records_at(&self.caller, self.r53.as_ref(), zone, name).await
    }

    /// Apply `changes` together, merged with other objects' changes to the same zone.
    pub async fn change(
        &self,
        zone: &str,
        changes: Vec<r53::Change>,
        urgency: crate::aws::route53_batch::Urgency,
    ) -> Result<Option<(String, String)>, AwsError> {
        self.batcher.submit(zone, &self.scope, self.r53.clone(), changes, urgency).await.map(Some)
    }

    /// Current status of a change (`PENDING`/`INSYNC`), read once for all the objects of its batch
    /// asking at once. A change Route 53 no longer knows
    /// (NoSuchChange: it keeps them for a limited time) is long in sync. Any other error is the
    /// pass's: status cannot say the change propagated, and `lastError` says why (e.g. a policy
    /// without `route53:GetChange`).
    pub async fn change_status(&self, id: &str) -> Result<Option<String>, AwsError> {
        self.reads.change_status(&self.caller, self.r53.as_ref(), id).await
    }

    /// The zone's name (for the apex / inside-the-zone check) and its name servers (for delegation).
    pub async fn zone(&self, zone: &str) -> Result<(String, Vec<String>), AwsError> {
        crate::aws::facts::hosted_zone(&self.facts, &self.caller, self.r53.as_ref(), zone).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::ErrorCategory;
    use crate::aws::api::route53::HealthCheck;
    use crate::aws::api::route53::fake::{FakeRoute53, caller, error, owner};

    fn failover_aws(r53: Arc<FakeRoute53>) -> FailoverAws {
        FailoverAws {
            caller: caller(),
            r53,
            owner: owner("DnsFailover"),
            batcher: crate::aws::route53_batch::Route53Batcher::new(caller()),
            scope: String::new(),
            facts: Arc::default(),
            reads: Arc::default(),
        }
    }

    /// moto answers INSYNC at once and never forgets a change: the PENDING to INSYNC walk, a
    /// forgotten change and a denied GetChange are only seen with a fake.
    #[tokio::test(start_paused = true)]
    async fn a_change_goes_from_pending_to_insync_and_a_forgotten_one_is_in_sync() {
        let fake = Arc::new(FakeRoute53::default());
        fake.change_statuses.lock().expect("script").extend([Ok("PENDING"), Ok("INSYNC")]);
        let aws = failover_aws(fake.clone());
        assert_eq!(aws.change_status("/change/C1").await, Ok(Some("PENDING".to_string())));
        assert_eq!(aws.change_status("/change/C1").await, Ok(Some("INSYNC".to_string())));
        assert_eq!(aws.change_status("/change/C1").await, Ok(Some("INSYNC".to_string())), "remembered, not read");
        assert_eq!(aws.change_status("/change/C2").await, Ok(Some("INSYNC".to_string())), "NoSuchChange: long in sync");
        fake.change_statuses.lock().expect("script").push_back(Err(error(ErrorCategory::Terminal, "AccessDenied")));
        let err = aws.change_status("/change/C3").await.expect_err("a denied GetChange is the pass's error");
        assert_eq!((err.operation, err.code.as_str()), ("GetChange", "AccessDenied"));
        assert_eq!(
            fake.log.requests(),
            ["GetChange C1", "GetChange C1", "GetChange C2", "GetChange C3"],
            "the id is sent without its /change/ prefix, once each"
        );
    }

    /// A health check whose id never reached status is found by its CallerReference on a later
    /// ListHealthChecks page (moto would need a thousand checks to make a second page).
    #[tokio::test(start_paused = true)]
    async fn a_health_check_is_found_by_reference_on_a_later_page() {
        let checks = (0..5)
            .map(|i| HealthCheck { id: format!("hc{i}"), caller_reference: format!("ref{i}"), config: None })
            .collect();
        let fake = Arc::new(FakeRoute53 { health_checks: checks, page_size: 2, ..FakeRoute53::default() });
        let aws = failover_aws(fake.clone());
        assert_eq!(aws.find_by_reference("ref4").await, Ok(Some("hc4".to_string())));
        assert_eq!(fake.log.requests(), ["ListHealthChecks -", "ListHealthChecks 2", "ListHealthChecks 4"]);
        assert_eq!(aws.find_by_reference("ref-none").await, Ok(None), "every page read, none matches");
        assert_eq!(fake.log.requests().len(), 6);
    }
}
