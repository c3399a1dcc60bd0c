//! The Route 53 calls this operator makes ([`Route53Api`]) and their SDK implementation
//! ([`SdkRoute53`]).
//!
//! FargateApp reads and writes its alias record; DnsFailover its failover pair, delegation NS
//! records and health checks, and the health poller reads health check status. Each method is one
//! request; `AwsCaller` budgets, retries and counts it. Record sets and changes are the SDK's data
//! types (the controllers plan in them); everything else is a plain value of this module.
//!
//! Error codes an implementation should use (the controllers match on the category):
//! `NoSuchHostedZone`, `NoSuchHealthCheck`, `NoSuchChange` (NotFound); `InvalidChangeBatch`,
//! `HealthCheckAlreadyExists`, `HealthCheckInUse`, `ConcurrentModification` (Conflict);
//! `PriorRequestNotComplete`, `Throttling` (Throttling); `InvalidInput`, `TooManyHealthChecks`,
//! `AccessDenied` (Terminal).

use std::collections::BTreeMap;

use aws_sdk_route53 as sdk;
use sdk::types::{Change, ChangeBatch, HealthCheckConfig, ResourceRecordSet, RrType, Tag, TagResourceType};

use super::{ApiFuture, classified};
use crate::aws::errors::{Classified, ErrorCategory};

/// Health checks per ListHealthChecks page the SDK implementation asks for (the API's maximum).
pub const HEALTH_CHECKS_PAGE_SIZE: i32 = 1000;

/// A hosted zone: its name and the name servers it is delegated to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostedZone {
    /// Zone id, as AWS returns it (`/hostedzone/Z...`).
    pub id: String,
    /// Zone name with its trailing dot (`example.com.`).
    pub name: String,
    /// Name servers of its delegation set, as listed (empty for a private zone).
    pub name_servers: Vec<String>,
}

/// Where ListResourceRecordSets starts, or continues (records are sorted by name, then type).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordStart {
    /// First record name to list (absolute, `a.example.com.`); empty for the zone's first record.
    pub name: String,
    /// First type at that name; only with a name.
    pub rtype: Option<RrType>,
    /// First set identifier at that name and type (weighted, failover... records).
    pub identifier: Option<String>,
}

/// One page of ListResourceRecordSets.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RecordSetsPage {
    /// The record sets of this page, in Route 53's order.
    pub record_sets: Vec<ResourceRecordSet>,
    /// Where the next page starts; `None` on the last.
    pub next: Option<RecordStart>,
}

/// A submitted change batch: its id and propagation status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChangeInfo {
    /// Change id, as AWS returns it (`/change/C...`).
    pub id: String,
    /// `PENDING` until every Route 53 server has it, then `INSYNC`.
    pub status: String,
}

/// A health check: its id, the CallerReference it was created with, and its configuration.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HealthCheck {
    /// Id.
    pub id: String,
    /// The CallerReference of its create.
    pub caller_reference: String,
    /// Its configuration, when reported.
    pub config: Option<HealthCheckConfig>,
}

/// One page of ListHealthChecks.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HealthChecksPage {
    /// The health checks of this page.
    pub health_checks: Vec<HealthCheck>,
    /// Marker of the next page; `None` on the last.
    pub next_marker: Option<String>,
}

/// The Route 53 requests of this operator, one AWS request per method.
pub trait Route53Api: Send + Sync + std::fmt::Debug {
    /// GetHostedZone. An unknown zone is `NoSuchHostedZone`.
    fn get_hosted_zone<'a>(&'a self, zone_id: &'a str) -> ApiFuture<'a, HostedZone>;

    /// ListResourceRecordSets: at most `max_items` record sets of the zone from `start` on (a page
    /// may hold records of later names: filter by name). Unknown zone: `NoSuchHostedZone`.
    fn list_resource_record_sets<'a>(
        &'a self,
        zone_id: &'a str,
        start: &'a RecordStart,
        max_items: i32,
    ) -> ApiFuture<'a, RecordSetsPage>;

    /// ChangeResourceRecordSets: apply `changes` as one batch, all or nothing. A batch that
    /// cannot apply (creating a record that exists, deleting one that does not or with other
    /// values, an alias to nothing) is `InvalidChangeBatch` and changes nothing; a second batch
    /// while one is being applied may be `PriorRequestNotComplete`. Unknown zone: `NoSuchHostedZone`.
    fn change_resource_record_sets<'a>(&'a self, zone_id: &'a str, changes: &'a [Change]) -> ApiFuture<'a, ChangeInfo>;

    /// GetChange: the status of a change batch (`PENDING`, later `INSYNC`). Route 53 forgets
    /// changes after a while: `NoSuchChange`.
    fn get_change<'a>(&'a self, change_id: &'a str) -> ApiFuture<'a, ChangeInfo>;

    /// GetHealthCheck. A deleted or unknown check is `NoSuchHealthCheck`.
    fn get_health_check<'a>(&'a self, health_check_id: &'a str) -> ApiFuture<'a, HealthCheck>;

    /// ListHealthChecks: one page of the account's health checks from `marker` (the first page
    /// when `None`); follow [`HealthChecksPage::next_marker`] for the rest.
    fn list_health_checks<'a>(&'a self, marker: Option<&'a str>) -> ApiFuture<'a, HealthChecksPage>;

    /// CreateHealthCheck; returns its id. Sent again with the same `caller_reference` and config
    /// while that check exists, it returns the same check; with another config, or once that
    /// check was deleted (Route 53 remembers a deleted check's reference for days), it is
    /// `HealthCheckAlreadyExists`. Over the account's limit: `TooManyHealthChecks`.
    fn create_health_check<'a>(
        &'a self,
        caller_reference: &'a str,
        config: &'a HealthCheckConfig,
    ) -> ApiFuture<'a, String>;

    /// UpdateHealthCheck: set the mutable settings of `config` (domain name, port, resource path,
    /// search string, failure threshold, inverted, disabled); type and request interval cannot
    /// change and are not sent. Unknown check: `NoSuchHealthCheck`.
    fn update_health_check<'a>(&'a self, health_check_id: &'a str, config: &'a HealthCheckConfig) -> ApiFuture<'a, ()>;

    /// DeleteHealthCheck. A check a record still uses is `HealthCheckInUse`; a gone one is
    /// `NoSuchHealthCheck`.
    fn delete_health_check<'a>(&'a self, health_check_id: &'a str) -> ApiFuture<'a, ()>;

    /// ChangeTagsForResource on a health check: add (or overwrite) `tags`, leaving the others.
    fn add_health_check_tags<'a>(
        &'a self,
        health_check_id: &'a str,
        tags: &'a BTreeMap<String, String>,
    ) -> ApiFuture<'a, ()>;

    /// GetHealthCheckStatus: the latest status report of each Route 53 checker
    /// (`Success: HTTP Status Code 200, OK`, `Failure: ...`). Unknown check: `NoSuchHealthCheck`.
    fn get_health_check_status<'a>(&'a self, health_check_id: &'a str) -> ApiFuture<'a, Vec<String>>;
}

/// [`Route53Api`] over the AWS SDK client (production).
#[derive(Clone, Debug)]
pub struct SdkRoute53 {
    client: sdk::Client,
}

impl SdkRoute53 {
    /// Wrap an SDK client (its interceptors, e.g. fault injection, stay on).
    pub fn new(client: sdk::Client) -> Self {
        Self { client }
    }
}

/// A request the SDK's builders refused before sending (a bug of ours): terminal.
fn invalid_request(err: impl std::fmt::Display) -> Classified {
    Classified { category: ErrorCategory::Terminal, code: "InvalidRequest".into(), message: err.to_string() }
}

fn change_info_of(c: Option<&sdk::types::ChangeInfo>) -> ChangeInfo {
    c.map(|c| ChangeInfo { id: c.id().to_string(), status: c.status().as_str().to_string() }).unwrap_or_default()
}

fn health_check_of(h: &sdk::types::HealthCheck) -> HealthCheck {
    HealthCheck {
        id: h.id().to_string(),
        caller_reference: h.caller_reference().to_string(),
        config: h.health_check_config().cloned(),
    }
}

impl Route53Api for SdkRoute53 {
    fn get_hosted_zone<'a>(&'a self, zone_id: &'a str) -> ApiFuture<'a, HostedZone> {
        Box::pin(async move {
            let out = self.client.get_hosted_zone().id(zone_id).send().await.map_err(classified)?;
            Ok(HostedZone {
                id: out.hosted_zone().map(|z| z.id().to_string()).unwrap_or_default(),
                name: out.hosted_zone().map(|z| z.name().to_string()).unwrap_or_default(),
                name_servers: out.delegation_set().map(|d| d.name_servers().to_vec()).unwrap_or_default(),
            })
        })
    }

    fn list_resource_record_sets<'a>(
        &'a self,
        zone_id: &'a str,
        start: &'a RecordStart,
        max_items: i32,
    ) -> ApiFuture<'a, RecordSetsPage> {
        Box::pin(async move {
            let out = self
                .client
                .list_resource_record_sets()
                .hosted_zone_id(zone_id)
                .set_start_record_name(Some(start.name.clone()).filter(|n| !n.is_empty()))
                .set_start_record_type(start.rtype.clone())
                .set_start_record_identifier(start.identifier.clone())
                .max_items(max_items)
                .send()
                .await
                .map_err(classified)?;
            let next = out.is_truncated().then(|| RecordStart {
                name: out.next_record_name().unwrap_or_default().to_string(),
                rtype: out.next_record_type().cloned(),
                identifier: out.next_record_identifier().map(str::to_string),
            });
            Ok(RecordSetsPage { record_sets: out.resource_record_sets().to_vec(), next })
        })
    }

    fn change_resource_record_sets<'a>(&'a self, zone_id: &'a str, changes: &'a [Change]) -> ApiFuture<'a, ChangeInfo> {
        Box::pin(async move {
            let batch = ChangeBatch::builder().set_changes(Some(changes.to_vec())).build().map_err(invalid_request)?;
            let out = self
                .client
                .change_resource_record_sets()
                .hosted_zone_id(zone_id)
                .change_batch(batch)
                .send()
                .await
                .map_err(classified)?;
            Ok(change_info_of(out.change_info()))
        })
    }

    fn get_change<'a>(&'a self, change_id: &'a str) -> ApiFuture<'a, ChangeInfo> {
        Box::pin(async move {
            let out = self.client.get_change().id(change_id).send().await.map_err(classified)?;
            Ok(change_info_of(out.change_info()))
        })
    }

    fn get_health_check<'a>(&'a self, health_check_id: &'a str) -> ApiFuture<'a, HealthCheck> {
        Box::pin(async move {
            let out =
                self.client.get_health_check().health_check_id(health_check_id).send().await.map_err(classified)?;
            Ok(out.health_check().map(health_check_of).unwrap_or_default())
        })
    }

    fn list_health_checks<'a>(&'a self, marker: Option<&'a str>) -> ApiFuture<'a, HealthChecksPage> {
        Box::pin(async move {
            let out = self
                .client
                .list_health_checks()
                .set_marker(marker.map(str::to_string))
                .max_items(HEALTH_CHECKS_PAGE_SIZE)
                .send()
                .await
                .map_err(classified)?;
            Ok(HealthChecksPage {
                health_checks: out.health_checks().iter().map(health_check_of).collect(),
                next_marker: out.next_marker().filter(|_| out.is_truncated()).map(str::to_string),
            })
        })
    }

    fn create_health_check<'a>(
        &'a self,
        caller_reference: &'a str,
        config: &'a HealthCheckConfig,
    ) -> ApiFuture<'a, String> {
        Box::pin(async move {
            let out = self
                .client
                .create_health_check()
                .caller_reference(caller_reference)
                .health_check_config(config.clone())
                .send()
                .await
                .map_err(classified)?;
            Ok(out.health_check().map(|h| h.id().to_string()).unwrap_or_default())
        })
    }

    fn update_health_check<'a>(&'a self, health_check_id: &'a str, c: &'a HealthCheckConfig) -> ApiFuture<'a, ()> {
        Box::pin(async move {
            self.client
                .update_health_check()
                .health_check_id(health_check_id)
                .set_fully_qualified_domain_name(c.fully_qualified_domain_name().map(str::to_string))
                .set_port(c.port())
                .set_resource_path(c.resource_path().map(str::to_string))
                .set_search_string(c.search_string().map(str::to_string))
                .set_failure_threshold(c.failure_threshold())
                .set_inverted(c.inverted())
                .set_disabled(c.disabled())
                .send()
                .await
                .map_err(classified)?;
            Ok(())
        })
    }

    fn delete_health_check<'a>(&'a self, health_check_id: &'a str) -> ApiFuture<'a, ()> {
        Box::pin(async move {
            self.client.delete_health_check().health_check_id(health_check_id).send().await.map_err(classified)?;
            Ok(())
        })
    }

    fn add_health_check_tags<'a>(
        &'a self,
        health_check_id: &'a str,
        tags: &'a BTreeMap<String, String>,
    ) -> ApiFuture<'a, ()> {
        Box::pin(async move {
            let tags = tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect();
            self.client
                .change_tags_for_resource()
                .resource_type(TagResourceType::Healthcheck)
                .resource_id(health_check_id)
                .set_add_tags(Some(tags))
                .send()
                .await
                .map_err(classified)?;
            Ok(())
        })
    }

    fn get_health_check_status<'a>(&'a self, health_check_id: &'a str) -> ApiFuture<'a, Vec<String>> {
        Box::pin(async move {
            let out = self
                .client
                .get_health_check_status()
                .health_check_id(health_check_id)
                .send()
                .await
                .map_err(classified)?;
            Ok(out
                .health_check_observations()
                .iter()
                .filter_map(|o| o.status_report())
                .filter_map(|s| s.status())
                .map(str::to_string)
                .collect())
        })
    }
}

#[cfg(test)]
pub(crate) mod fake;
