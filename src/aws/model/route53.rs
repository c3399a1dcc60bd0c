//! The Route 53 model: [`ModelRoute53`] implements [`Route53Api`] over in-memory hosted zones,
//! record sets, changes and health checks, on a logical clock moved by [`ModelRoute53::advance`].
//!
//! What it models today:
//! - hosted zones made by [`ModelRoute53::create_zone`] (public, with four name servers and the
//!   apex SOA and NS records AWS creates); GetHostedZone takes the id with or without
//!   `/hostedzone/`; an unknown zone is `NoSuchHostedZone`;
//! - record sets in Route 53's list order (see [`records`]: name with labels reversed, then type,
//!   then set identifier) and ListResourceRecordSets paging by (name, type, identifier);
//! - ChangeResourceRecordSets validated change by change, in order, on a copy and applied whole or
//!   not at all (`InvalidChangeBatch`): CREATE of an existing set, DELETE of a missing set or of
//!   one whose fields differ (values, TTL, alias target, identifier, failover, health check),
//!   a CNAME next to another type, sets with and without identifier at one name and type, two
//!   failover records of one role, an alias to nothing (a record of the model's zones, or a
//!   registered target: [`ModelRoute53::register_alias_target`]), the apex SOA/NS deleted, a name
//!   outside the zone; `NoSuchHealthCheck` for a record naming an unknown check; `InvalidInput`
//!   for malformed sets. An accepted batch gets a change id, `PENDING` until the propagation delay
//!   passed on the clock, then `INSYNC`; with a retention set, older changes are `NoSuchChange`.
//!   While a change of the zone is pending, a batch is `PriorRequestNotComplete` at a settable rate;
//! - health checks (see [`checks`]): CallerReference memory as the CreateHealthCheck reference
//!   documents it (a deleted check's reference answers `HealthCheckAlreadyExists`), defaults filled
//!   in, the account limit (`TooManyHealthChecks`), updates, tags, `HealthCheckInUse` while a record
//!   names the check, paging in id order with a settable page size, checker reports derived from
//!   the health the world sets ([`ModelRoute53::set_health`]).
//!
//! Not modelled: private zones, traffic policies, record value syntax, batch size limits, name
//! escapes, per-record-type TTL rules, other routing policies' semantics (weighted, latency... are
//! stored and compared, not checked).
//!
//! Every call draws its fault first ([`Faults::draw`] with the model's [`SimRng`]): a refused call
//! changes nothing; a lost one executes, then answers `ResponseLost`.

pub mod checks;
pub mod records;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use aws_sdk_route53::types::{Change, HealthCheckConfig, ResourceRecord, ResourceRecordSet, RrType};

use self::checks::{CHECKER_REGIONS, CheckState, Reference};
use self::records::{BatchContext, Records, bare_zone_id, key_of, norm_name};
use super::{Fault, FaultRates, Faults, SimRng, error, lost, refusal};
use crate::aws::api::ApiFuture;
use crate::aws::api::route53::{
    ChangeInfo, HealthCheck, HealthChecksPage, HostedZone, RecordSetsPage, RecordStart, Route53Api,
};
use crate::aws::errors::{Classified, ErrorCategory};

/// Default time a change stays `PENDING`.
pub const DEFAULT_PROPAGATION: Duration = Duration::from_secs(30);
/// Default health checks per ListHealthChecks page.
pub const DEFAULT_HEALTH_CHECKS_PAGE: usize = 100;
/// Default health checks per account (the AWS default quota).
pub const DEFAULT_HEALTH_CHECK_LIMIT: usize = 200;

/// A hosted zone and its record sets.
#[derive(Clone, Debug)]
struct Zone {
    name: String,
    name_servers: Vec<String>,
    records: Records,
}

/// A submitted change batch.
#[derive(Clone, Debug)]
struct ChangeState {
    zone_id: String,
    submitted: Duration,
    insync_at: Duration,
}

/// A health check as inspection shows it: the model's own record of it.
pub use checks::CheckState as HealthCheckView;

#[derive(Debug)]
struct State {
    rng: SimRng,
    now: Duration,
    account: String,
    region: String,
    zones: BTreeMap<String, Zone>,
    changes: BTreeMap<String, ChangeState>,
    checks: BTreeMap<String, CheckState>,
    references: BTreeMap<String, Reference>,
    alias_targets: BTreeMap<String, BTreeSet<String>>,
    propagation: Duration,
    change_retention: Option<Duration>,
    reference_retention: Option<Duration>,
    page_size: usize,
    check_limit: usize,
    prior_request_rate: f64,
}

/// The in-memory Route 53 of one account.
#[derive(Debug)]
pub struct ModelRoute53 {
    state: Mutex<State>,
    faults: Faults,
}

fn not_found(code: &str, what: &str) -> Classified {
    error(ErrorCategory::NotFound, code, what)
}

impl State {
    fn zone(&self, zone_id: &str) -> Result<&Zone, Classified> {
        let id = bare_zone_id(zone_id);
        self.zones.get(id).ok_or_else(|| not_found("NoSuchHostedZone", &format!("No hosted zone found with ID: {id}")))
    }

    fn check(&self, id: &str) -> Result<&CheckState, Classified> {
        self.checks
            .get(id)
            .ok_or_else(|| not_found("NoSuchHealthCheck", &format!("No health check exists with the ID {id}")))
    }

    fn check_mut(&mut self, id: &str) -> Result<&mut CheckState, Classified> {
        self.checks
            .get_mut(id)
            .ok_or_else(|| not_found("NoSuchHealthCheck", &format!("No health check exists with the ID {id}")))
    }

    fn hosted_zone(id: &str, z: &Zone) -> HostedZone {
        HostedZone { id: format!("/hostedzone/{id}"), name: z.name.clone(), name_servers: z.name_servers.clone() }
    }

    /// An id of uppercase letters and digits, as zone and change ids look.
    fn upper_id(&mut self, prefix: char, len: usize) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        let mut out = String::from(prefix);
        for _ in 0..len {
            let i = usize::try_from(self.rng.below(ALPHABET.len() as u64)).unwrap_or(0);
            out.push(char::from(ALPHABET.get(i).copied().unwrap_or(b'A')));
        }
        out
    }

    fn uuid(&mut self) -> String {
        let h = self.rng.hex_id(32);
        let part = |a: usize, b: usize| h.get(a..b).unwrap_or_default().to_string();
        format!("{}-{}-{}-{}-{}", part(0, 8), part(8, 12), part(12, 16), part(16, 20), part(20, 32))
    }

    fn change_info(&self, id: &str, c: &ChangeState) -> ChangeInfo {
        let status = if self.now >= c.insync_at { "INSYNC" } else { "PENDING" };
        ChangeInfo { id: format!("/change/{id}"), status: status.into() }
    }

    /// Apply a batch to a zone, all or nothing, and record its change.
    fn change(&mut self, zone_id: &str, changes: &[Change]) -> Result<ChangeInfo, Classified> {
        let zone_id = bare_zone_id(zone_id).to_string();
        let zone = self.zone(&zone_id)?;
        let check_ids: BTreeSet<String> = self.checks.keys().cloned().collect();
        let others: BTreeMap<String, &Records> =
            self.zones.iter().filter(|(id, _)| **id != zone_id).map(|(id, z)| (id.clone(), &z.records)).collect();
        let ctx = BatchContext {
            zone_id: &zone_id,
            zone_name: &zone.name,
            other_zones: &others,
            health_checks: &check_ids,
            alias_targets: &self.alias_targets,
        };
        let next = records::apply_batch(&zone.records, changes, &ctx)?;
        if let Some(z) = self.zones.get_mut(&zone_id) {
            z.records = next;
        }
        let id = self.upper_id('C', 13);
        let c = ChangeState { zone_id, submitted: self.now, insync_at: self.now.saturating_add(self.propagation) };
        let info = self.change_info(&id, &c);
        self.changes.insert(id, c);
        Ok(info)
    }

    fn pending_in(&self, zone_id: &str) -> bool {
        self.changes.values().any(|c| c.zone_id == zone_id && self.now < c.insync_at)
    }

    fn get_change(&self, change_id: &str) -> Result<ChangeInfo, Classified> {
        let id = change_id.trim_start_matches("/change/");
        let gone = || not_found("NoSuchChange", &format!("A change with the specified change ID does not exist: {id}"));
        let c = self.changes.get(id).ok_or_else(gone)?;
        if self.change_retention.is_some_and(|r| self.now >= c.submitted.saturating_add(r)) {
            return Err(gone());
        }
        Ok(self.change_info(id, c))
    }

    fn create_check(&mut self, caller_reference: &str, config: &HealthCheckConfig) -> Result<String, Classified> {
        checks::check_config(config)?;
        let config = checks::with_defaults(config);
        let exists = |m: &str| error(ErrorCategory::Conflict, "HealthCheckAlreadyExists", m);
        if let Some(r) = self.references.get(caller_reference) {
            let forgotten = match (r.deleted_at, self.reference_retention) {
                (Some(at), Some(keep)) => self.now >= at.saturating_add(keep),
                _ => false,
            };
            if !forgotten {
                if r.deleted_at.is_some() {
                    return Err(exists(&format!(
                        "A health check with CallerReference {caller_reference} was created and deleted; the reference cannot be reused"
                    )));
                }
                if r.config != config {
                    return Err(exists(&format!(
                        "A health check with CallerReference {caller_reference} exists with other settings"
                    )));
                }
                return Ok(r.check_id.clone());
            }
        }
        if self.checks.len() >= self.check_limit {
            return Err(error(
                ErrorCategory::Terminal,
                "TooManyHealthChecks",
                &format!("This AWS account has reached its limit of {} health checks", self.check_limit),
            ));
        }
        let id = self.uuid();
        let check = CheckState {
            id: id.clone(),
            caller_reference: caller_reference.to_string(),
            config: config.clone(),
            version: 1,
            tags: BTreeMap::new(),
            healthy_checkers: CHECKER_REGIONS.len(),
        };
        self.checks.insert(id.clone(), check);
        self.references
            .insert(caller_reference.to_string(), Reference { check_id: id.clone(), config, deleted_at: None });
        Ok(id)
    }

    fn delete_check(&mut self, id: &str) -> Result<(), Classified> {
        self.check(id)?;
        let user = self
            .zones
            .values()
            .flat_map(|z| z.records.values())
            .find(|s| s.health_check_id() == Some(id))
            .map(|s| format!("{} {}", s.name(), s.r#type()));
        if let Some(user) = user {
            return Err(error(
                ErrorCategory::Conflict,
                "HealthCheckInUse",
                &format!("The health check {id} is still referenced from resource record set {user}"),
            ));
        }
        if let Some(check) = self.checks.remove(id)
            && let Some(r) = self.references.get_mut(&check.caller_reference)
        {
            r.deleted_at = Some(self.now);
        }
        Ok(())
    }
}

fn api_check(c: &CheckState) -> HealthCheck {
    HealthCheck { id: c.id.clone(), caller_reference: c.caller_reference.clone(), config: Some(c.config.clone()) }
}

impl ModelRoute53 {
    /// An empty Route 53 of `account` in `region`, its randomness seeded by `seed` and its calls
    /// failing at `faults`.
    pub fn new(seed: u64, faults: FaultRates, account: &str, region: &str) -> Self {
        let state = State {
            rng: SimRng::new(seed),
            now: Duration::ZERO,
            account: account.to_string(),
            region: region.to_string(),
            zones: BTreeMap::new(),
            changes: BTreeMap::new(),
            checks: BTreeMap::new(),
            references: BTreeMap::new(),
            alias_targets: BTreeMap::new(),
            propagation: DEFAULT_PROPAGATION,
            change_retention: None,
            reference_retention: None,
            page_size: DEFAULT_HEALTH_CHECKS_PAGE,
            check_limit: DEFAULT_HEALTH_CHECK_LIMIT,
            prior_request_rate: 0.0,
        };
        Self { state: Mutex::new(state), faults: Faults::new(faults) }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One call: draw its fault, run it unless refused, lose its answer if so drawn.
    fn call<T>(&self, operation: &str, f: impl FnOnce(&mut State) -> Result<T, Classified>) -> Result<T, Classified> {
        let mut st = self.lock();
        let fault = self.faults.draw(&mut st.rng);
        if let Some(e) = refusal(fault, operation) {
            return Err(e);
        }
        let out = f(&mut st);
        if fault == Fault::Lost {
            return Err(lost(operation));
        }
        out
    }

    // ---- settings ----

    /// The fault plan (e.g. `faults().set(FaultRates::default())` for a quiet phase).
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// How long a change stays `PENDING` (default [`DEFAULT_PROPAGATION`]).
    pub fn set_propagation_delay(&self, delay: Duration) {
        self.lock().propagation = delay;
    }

    /// After how long GetChange forgets a change (`NoSuchChange`); `None` (default) keeps them.
    pub fn set_change_retention(&self, retention: Option<Duration>) {
        self.lock().change_retention = retention;
    }

    /// After how long a deleted check's CallerReference is forgotten (and may create again);
    /// `None` (default) remembers it for the whole run.
    pub fn set_deleted_reference_retention(&self, retention: Option<Duration>) {
        self.lock().reference_retention = retention;
    }

    /// Health checks per ListHealthChecks page (at least 1).
    pub fn set_health_checks_page_size(&self, size: usize) {
        self.lock().page_size = size.max(1);
    }

    /// Health checks the account may have (`TooManyHealthChecks` beyond).
    pub fn set_health_check_limit(&self, limit: usize) {
        self.lock().check_limit = limit;
    }

    /// Probability that a batch sent while a change of its zone is `PENDING` is refused with
    /// `PriorRequestNotComplete` (default 0).
    pub fn set_prior_request_rate(&self, p: f64) {
        self.lock().prior_request_rate = p;
    }

    // ---- clock ----

    /// Move the clock forward: pending changes past their delay are `INSYNC`, retentions run.
    pub fn advance(&self, d: Duration) {
        let mut st = self.lock();
        st.now = st.now.saturating_add(d);
    }

    /// The model's clock (zero at creation).
    pub fn now(&self) -> Duration {
        self.lock().now
    }

    // ---- setup ----

    /// Create a public hosted zone `name`, with four name servers and its apex SOA and NS records.
    pub fn create_zone(&self, name: &str) -> HostedZone {
        let mut st = self.lock();
        let id = st.upper_id('Z', 20);
        let name = norm_name(name);
        let tlds = ["com", "net", "org", "co.uk"];
        let servers: Vec<String> =
            tlds.iter().map(|tld| format!("ns-{}.awsdns-{:02}.{tld}", st.rng.below(2048), st.rng.below(64))).collect();
        let mut records = Records::new();
        let ns = ResourceRecordSet::builder()
            .name(&name)
            .r#type(RrType::Ns)
            .ttl(172_800)
            .set_resource_records(Some(
                servers.iter().filter_map(|s| ResourceRecord::builder().value(format!("{s}.")).build().ok()).collect(),
            ))
            .build();
        let soa_value = format!(
            "{}. awsdns-hostmaster.amazon.com. 1 7200 900 1209600 86400",
            servers.first().map(String::as_str).unwrap_or_default()
        );
        let soa = ResourceRecordSet::builder()
            .name(&name)
            .r#type(RrType::Soa)
            .ttl(900)
            .set_resource_records(ResourceRecord::builder().value(soa_value).build().ok().map(|r| vec![r]))
            .build();
        for set in [ns, soa].into_iter().flatten() {
            records.insert(key_of(&set), set);
        }
        let zone = Zone { name, name_servers: servers, records };
        let out = State::hosted_zone(&id, &zone);
        st.zones.insert(id, zone);
        out
    }

    /// Declare an alias target outside the model's zones (a load balancer's DNS name under its
    /// canonical hosted zone id). Once a canonical zone has one, aliases into it must name one.
    pub fn register_alias_target(&self, canonical_zone_id: &str, dns_name: &str) {
        self.lock()
            .alias_targets
            .entry(bare_zone_id(canonical_zone_id).to_string())
            .or_default()
            .insert(norm_name(dns_name));
    }

    /// The target is gone (its load balancer deleted): new aliases to it are refused; existing
    /// records stay, as in Route 53.
    pub fn remove_alias_target(&self, canonical_zone_id: &str, dns_name: &str) {
        if let Some(names) = self.lock().alias_targets.get_mut(bare_zone_id(canonical_zone_id)) {
            names.remove(&norm_name(dns_name));
        }
    }

    // ---- world events ----

    /// Someone else changes a zone (console, another tool): the batch is validated and applied as
    /// a call would be, without faults.
    pub fn external_change(&self, zone_id: &str, changes: &[Change]) -> Result<ChangeInfo, Classified> {
        self.lock().change(zone_id, changes)
    }

    /// Someone deletes a zone with everything in it.
    pub fn delete_zone(&self, zone_id: &str) -> bool {
        self.lock().zones.remove(bare_zone_id(zone_id)).is_some()
    }

    /// The endpoint of a health check turns healthy (every checker succeeds) or unhealthy (every
    /// checker fails). False when there is no such check.
    pub fn set_health(&self, health_check_id: &str, healthy: bool) -> bool {
        self.set_healthy_checkers(health_check_id, if healthy { CHECKER_REGIONS.len() } else { 0 })
    }

    /// Only `n` of the checkers see the endpoint healthy (a partial outage).
    pub fn set_healthy_checkers(&self, health_check_id: &str, n: usize) -> bool {
        match self.lock().checks.get_mut(health_check_id) {
            Some(c) => {
                c.healthy_checkers = n.min(CHECKER_REGIONS.len());
                true
            }
            None => false,
        }
    }

    // ---- inspection ----

    /// The account and region the model stands for.
    pub fn scope(&self) -> (String, String) {
        let st = self.lock();
        (st.account.clone(), st.region.clone())
    }

    /// Every hosted zone, by id.
    pub fn zones(&self) -> Vec<HostedZone> {
        self.lock().zones.iter().map(|(id, z)| State::hosted_zone(id, z)).collect()
    }

    /// Every record set of a zone, in Route 53's list order (`None` for an unknown zone).
    pub fn record_sets(&self, zone_id: &str) -> Option<Vec<ResourceRecordSet>> {
        self.lock().zones.get(bare_zone_id(zone_id)).map(|z| z.records.values().cloned().collect())
    }

    /// Every health check, with tags, CallerReference and health, in id order.
    pub fn health_checks(&self) -> Vec<HealthCheckView> {
        self.lock().checks.values().cloned().collect()
    }

    /// Every CallerReference used, with the check it created and whether that check is deleted.
    pub fn caller_references(&self) -> BTreeMap<String, (String, bool)> {
        self.lock().references.iter().map(|(r, v)| (r.clone(), (v.check_id.clone(), v.deleted_at.is_some()))).collect()
    }

    /// Every change batch accepted, with its status now.
    pub fn changes(&self) -> Vec<ChangeInfo> {
        let st = self.lock();
        st.changes.iter().map(|(id, c)| st.change_info(id, c)).collect()
    }
}

impl Route53Api for ModelRoute53 {
    fn get_hosted_zone<'a>(&'a self, zone_id: &'a str) -> ApiFuture<'a, HostedZone> {
        let out = self.call("GetHostedZone", |st| {
            let z = st.zone(zone_id)?;
            Ok(State::hosted_zone(bare_zone_id(zone_id), z))
        });
        Box::pin(async move { out })
    }

    fn list_resource_record_sets<'a>(
        &'a self,
        zone_id: &'a str,
        start: &'a RecordStart,
        max_items: i32,
    ) -> ApiFuture<'a, RecordSetsPage> {
        let out = self.call("ListResourceRecordSets", |st| records::list(&st.zone(zone_id)?.records, start, max_items));
        Box::pin(async move { out })
    }

    fn change_resource_record_sets<'a>(&'a self, zone_id: &'a str, changes: &'a [Change]) -> ApiFuture<'a, ChangeInfo> {
        let out = self.call("ChangeResourceRecordSets", |st| {
            let id = bare_zone_id(zone_id).to_string();
            st.zone(&id)?;
            let rate = st.prior_request_rate;
            if st.pending_in(&id) && st.rng.chance(rate) {
                return Err(error(
                    ErrorCategory::Throttling,
                    "PriorRequestNotComplete",
                    "The request was rejected because Route 53 was still processing a prior request",
                ));
            }
            st.change(&id, changes)
        });
        Box::pin(async move { out })
    }

    fn get_change<'a>(&'a self, change_id: &'a str) -> ApiFuture<'a, ChangeInfo> {
        let out = self.call("GetChange", |st| st.get_change(change_id));
        Box::pin(async move { out })
    }

    fn get_health_check<'a>(&'a self, health_check_id: &'a str) -> ApiFuture<'a, HealthCheck> {
        let out = self.call("GetHealthCheck", |st| st.check(health_check_id).map(api_check));
        Box::pin(async move { out })
    }

    fn list_health_checks<'a>(&'a self, marker: Option<&'a str>) -> ApiFuture<'a, HealthChecksPage> {
        let out = self.call("ListHealthChecks", |st| {
            let (page, next_marker) = checks::page(&st.checks, marker, st.page_size);
            Ok(HealthChecksPage { health_checks: page.iter().map(api_check).collect(), next_marker })
        });
        Box::pin(async move { out })
    }

    fn create_health_check<'a>(
        &'a self,
        caller_reference: &'a str,
        config: &'a HealthCheckConfig,
    ) -> ApiFuture<'a, String> {
        let out = self.call("CreateHealthCheck", |st| st.create_check(caller_reference, config));
        Box::pin(async move { out })
    }

    fn update_health_check<'a>(&'a self, health_check_id: &'a str, config: &'a HealthCheckConfig) -> ApiFuture<'a, ()> {
        let out = self.call("UpdateHealthCheck", |st| {
            // The update carries only what changes: the settings it leads to must hold.
            let check = st.check_mut(health_check_id)?;
            let mut next = check.clone();
            checks::apply_update(&mut next, config);
            checks::check_config(&next.config)?;
            *check = next;
            Ok(())
        });
        Box::pin(async move { out })
    }

    fn delete_health_check<'a>(&'a self, health_check_id: &'a str) -> ApiFuture<'a, ()> {
        let out = self.call("DeleteHealthCheck", |st| st.delete_check(health_check_id));
        Box::pin(async move { out })
    }

    fn add_health_check_tags<'a>(
        &'a self,
        health_check_id: &'a str,
        tags: &'a BTreeMap<String, String>,
    ) -> ApiFuture<'a, ()> {
        let out = self.call("ChangeTagsForResource", |st| {
            let check = st.check_mut(health_check_id)?;
            let mut next = check.tags.clone();
            next.extend(tags.iter().map(|(k, v)| (k.clone(), v.clone())));
            // Route 53 allows 10 tags per resource.
            if next.len() > 10 {
                return Err(error(ErrorCategory::Terminal, "InvalidInput", "A resource can have at most 10 tags"));
            }
            check.tags = next;
            Ok(())
        });
        Box::pin(async move { out })
    }

    fn get_health_check_status<'a>(&'a self, health_check_id: &'a str) -> ApiFuture<'a, Vec<String>> {
        let out = self.call("GetHealthCheckStatus", |st| st.check(health_check_id).map(checks::reports));
        Box::pin(async move { out })
    }
}
