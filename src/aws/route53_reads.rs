//! Route 53 reads shared between the DnsFailover passes of one AWS configuration (see
//! [`super::coalesce`]). Passes often start together (a first sync, a sweep of health readings
//! that changed, a restart), and each reads the record sets at its name and its health checks:
//! one ListResourceRecordSets and one or two GetHealthCheck per object, from a budget of a few
//! calls per second for the whole account.
//!
//! When several passes ask at once and walking is cheaper than asking one by one, the zone's record
//! sets are walked (300 a page) and the account's health checks listed (1,000 a page) once, and
//! every pass gets its part. The sizes seen by the last walk decide "cheaper" (a first batch
//! assumes one page); a walk or listing that turns out longer than the names asked is abandoned for
//! reads one by one, and the size remembered as twice what was read, so a large zone or account
//! costs about twice the reads a few times at most. A batch is sent only after
//! every asker joined, so no answer is older than its question.
//!
//! The objects of one change batch (`route53_batch`) share its change id; their GetChange polls
//! asking at once share one call, and an id once seen INSYNC is not read again (Route 53 never
//! puts a change back to PENDING).

use std::collections::HashMap;
use std::sync::Mutex;

use aws_sdk_route53::types::ResourceRecordSet;

use super::api::route53::{HealthCheck, RecordStart, Route53Api};
use super::coalesce::Coalesced;
use super::{AwsCaller, AwsError, Service};
use crate::api::validation::normalize_dns_name;

/// Record sets per ListResourceRecordSets page of a walk (Route 53's maximum).
const RECORDS_PAGE: i32 = 300;
/// Record sets a read at one name asks for (every type and set identifier at a name fits).
const RECORDS_AT_NAME: i32 = 20;
/// Zones (and the health-check key) whose size is remembered, at most.
const MAX_SIZES: usize = 4096;
/// Health checks per ListHealthChecks page.
const CHECKS_PAGE: usize = super::api::route53::HEALTH_CHECKS_PAGE_SIZE as usize;

type RecordsAnswer = Result<Vec<ResourceRecordSet>, AwsError>;
type CheckAnswer = Result<Option<HealthCheck>, AwsError>;
type ChangeAnswer = Result<Option<String>, AwsError>;
/// Change ids remembered as INSYNC, at most (then forgotten all at once: a few extra reads).
const MAX_IN_SYNC: usize = 4096;

/// Queued Route 53 reads of one configuration, and the sizes the last walks found.
#[derive(Debug, Default)]
pub struct Route53Reads {
    records: Coalesced<String, RecordsAnswer>,
    checks: Coalesced<String, CheckAnswer>,
    changes: Coalesced<(), ChangeAnswer>,
    /// Change ids seen INSYNC.
    in_sync: Mutex<std::collections::HashSet<String>>,
    /// Record sets per zone, and health checks under the key "", as the last walk counted them.
    sizes: Mutex<HashMap<String, usize>>,
}

/// Pages a walk of `size` items takes (at least one).
fn pages(size: usize, per_page: usize) -> usize {
    size.div_ceil(per_page.max(1)).max(1)
}

impl Route53Reads {
    fn size(&self, key: &str) -> usize {
        self.sizes.lock().unwrap_or_else(|p| p.into_inner()).get(key).copied().unwrap_or(0)
    }

    fn remember_size(&self, key: &str, size: usize) {
        let mut sizes = self.sizes.lock().unwrap_or_else(|p| p.into_inner());
        // Keys come from specs (zone ids): bounded like the process's other facts.
        if sizes.len() >= MAX_SIZES && !sizes.contains_key(key) {
            sizes.clear();
        }
        sizes.insert(key.to_string(), size);
    }

    /// A walk of `key` was abandoned after `pages` pages: remember it as at least twice that, so
    /// batches growing one name at a time do not each try (and abandon) a walk again.
    fn remember_abandoned(&self, key: &str, pages: usize, per_page: usize) {
        self.remember_size(key, pages.saturating_mul(2).saturating_mul(per_page));
    }

    /// Every record set named `name` in `zone`.
    pub async fn records_at(&self, caller: &AwsCaller, r53: &dyn Route53Api, zone: &str, name: &str) -> RecordsAnswer {
        let name = normalize_dns_name(name);
        let send =
            |turn: AwsCaller, names: Vec<String>| async move { self.send_records(&turn, r53, zone, names).await };
        match self.records.ask(zone, name.clone(), caller.turn(Service::Route53), send).await {
            Some(answer) => answer,
            None => read_at(caller, r53, zone, &name).await,
        }
    }

    async fn send_records(
        &self,
        caller: &AwsCaller,
        r53: &dyn Route53Api,
        zone: &str,
        asked: Vec<String>,
    ) -> Vec<RecordsAnswer> {
        let mut distinct = asked.clone();
        distinct.sort();
        distinct.dedup();
        if distinct.len() > pages(self.size(zone), RECORDS_PAGE as usize) {
            match walk_zone(caller, r53, zone, distinct.len()).await {
                Ok(Some(sets)) => {
                    self.remember_size(zone, sets.len());
                    let mut by_name: HashMap<String, Vec<ResourceRecordSet>> = HashMap::new();
                    for set in sets {
                        by_name.entry(normalize_dns_name(set.name())).or_default().push(set);
                    }
                    return asked.iter().map(|name| Ok(by_name.get(name).cloned().unwrap_or_default())).collect();
                }
                // Larger than the last walk saw: remember that, and read name by name.
                Ok(None) => self.remember_abandoned(zone, distinct.len(), RECORDS_PAGE as usize),
                Err(e) => return asked.iter().map(|_| Err(e.clone())).collect(),
            }
        }
        let mut answers = HashMap::new();
        for name in distinct {
            let answer = read_at(caller, r53, zone, &name).await;
            answers.insert(name, answer);
        }
        asked.iter().map(|name| answers.get(name).cloned().unwrap_or_else(|| Ok(Vec::new()))).collect()
    }

    /// The health check `id`; `None` when it does not exist.
    pub async fn health_check(&self, caller: &AwsCaller, r53: &dyn Route53Api, id: &str) -> CheckAnswer {
        let send = |turn: AwsCaller, ids: Vec<String>| async move { self.send_checks(&turn, r53, ids).await };
        match self.checks.ask("", id.to_string(), caller.turn(Service::Route53), send).await {
            Some(answer) => answer,
            None => read_check(caller, r53, id).await,
        }
    }

    /// The propagation state of change `id` (`/change/...` or the bare id): `PENDING` or
    /// `INSYNC`; a change Route 53 no longer knows (it keeps them for a limited time) is long in
    /// sync.
    pub async fn change_status(&self, caller: &AwsCaller, r53: &dyn Route53Api, id: &str) -> ChangeAnswer {
        let id = id.trim_start_matches("/change/");
        if self.in_sync.lock().unwrap_or_else(|p| p.into_inner()).contains(id) {
            return Ok(Some(IN_SYNC.into()));
        }
        let send = |turn: AwsCaller, asked: Vec<()>| async move {
            let answer = read_change(&turn, r53, id).await;
            asked.iter().map(|()| answer.clone()).collect()
        };
        let answer = match self.changes.ask(id, (), caller.turn(Service::Route53), send).await {
            Some(answer) => answer,
            None => read_change(caller, r53, id).await,
        };
        if matches!(&answer, Ok(Some(s)) if s == IN_SYNC) {
            let mut in_sync = self.in_sync.lock().unwrap_or_else(|p| p.into_inner());
            if in_sync.len() >= MAX_IN_SYNC {
                in_sync.clear();
            }
            in_sync.insert(id.to_string());
        }
        answer
    }

    async fn send_checks(&self, caller: &AwsCaller, r53: &dyn Route53Api, asked: Vec<String>) -> Vec<CheckAnswer> {
        let mut distinct = asked.clone();
        distinct.sort();
        distinct.dedup();
        if distinct.len() > pages(self.size(""), CHECKS_PAGE) {
            match list_checks(caller, r53, distinct.len()).await {
                Ok(None) => self.remember_abandoned("", distinct.len(), CHECKS_PAGE),
                Ok(Some(all)) => {
                    self.remember_size("", all.len());
                    let by_id: HashMap<&str, &HealthCheck> = all.iter().map(|h| (h.id.as_str(), h)).collect();
                    return asked.iter().map(|id| Ok(by_id.get(id.as_str()).map(|h| (*h).clone()))).collect();
                }
                Err(e) => return asked.iter().map(|_| Err(e.clone())).collect(),
            }
        }
        let mut answers = HashMap::new();
        for id in distinct {
            let answer = read_check(caller, r53, &id).await;
            answers.insert(id, answer);
        }
        asked.iter().map(|id| answers.get(id).cloned().unwrap_or(Ok(None))).collect()
    }
}

/// The record sets at `name` (normalised): ListResourceRecordSets from that name, one page unless
/// the name has more sets than a page holds (as a walk would give them all).
async fn read_at(caller: &AwsCaller, r53: &dyn Route53Api, zone: &str, name: &str) -> RecordsAnswer {
    let mut start = RecordStart { name: format!("{name}."), ..RecordStart::default() };
    let mut sets = Vec::new();
    loop {
        let page = caller
            .call(Service::Route53, "ListResourceRecordSets", || {
                r53.list_resource_record_sets(zone, &start, RECORDS_AT_NAME)
            })
            .await?;
        sets.extend(page.record_sets.into_iter().filter(|r| normalize_dns_name(r.name()) == name));
        match page.next {
            Some(next) if normalize_dns_name(&next.name) == name => start = next,
            _ => return Ok(sets),
        }
    }
}

/// Every record set of the zone, page by page; `None` once `max_pages` were read and more remain
/// (a walk that would cost more than reading each name alone is abandoned).
async fn walk_zone(
    caller: &AwsCaller,
    r53: &dyn Route53Api,
    zone: &str,
    max_pages: usize,
) -> Result<Option<Vec<ResourceRecordSet>>, AwsError> {
    let mut sets = Vec::new();
    let mut start = RecordStart::default();
    for _ in 0..max_pages {
        let page = caller
            .call(Service::Route53, "ListResourceRecordSets", || {
                r53.list_resource_record_sets(zone, &start, RECORDS_PAGE)
            })
            .await?;
        sets.extend(page.record_sets);
        match page.next {
            Some(next) => start = next,
            None => return Ok(Some(sets)),
        }
    }
    Ok(None)
}

/// A change's state, as Route 53's GetChange gives it.
const IN_SYNC: &str = "INSYNC";

async fn read_change(caller: &AwsCaller, r53: &dyn Route53Api, id: &str) -> ChangeAnswer {
    match caller.call(Service::Route53, "GetChange", || r53.get_change(id)).await {
        Ok(c) => Ok(Some(c.status).filter(|s| !s.is_empty())),
        Err(e) if e.is_not_found() => Ok(Some(IN_SYNC.into())),
        Err(e) => Err(e),
    }
}

async fn read_check(caller: &AwsCaller, r53: &dyn Route53Api, id: &str) -> CheckAnswer {
    match caller.call(Service::Route53, "GetHealthCheck", || r53.get_health_check(id)).await {
        Ok(h) => Ok(Some(h)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Every health check of the account, page by page; `None` once `max_pages` were read and more
/// remain (like [`walk_zone`]).
async fn list_checks(
    caller: &AwsCaller,
    r53: &dyn Route53Api,
    max_pages: usize,
) -> Result<Option<Vec<HealthCheck>>, AwsError> {
    let mut all = Vec::new();
    let mut marker: Option<String> = None;
    for _ in 0..max_pages {
        let page =
            caller.call(Service::Route53, "ListHealthChecks", || r53.list_health_checks(marker.as_deref())).await?;
        all.extend(page.health_checks);
        marker = page.next_marker;
        if marker.is_none() {
            return Ok(Some(all));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests;
