//! What this process knows about AWS objects that do not change once they exist, so a resync does
//! not read them again: a hosted zone's name and name servers, the load balancer behind a listener.
//! Also the creates this process has attempted, so a lost response is searched for only when one
//! may have happened (a full ListHealthChecks per new object made creating N objects cost N² reads).
//!
//! Only successful reads are remembered; an object deleted later surfaces as an error of the call
//! that needs it (e.g. NoSuchHostedZone on the record change).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

/// The load balancer behind a listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerInfo {
    /// Load balancer ARN.
    pub lb_arn: String,
    /// DNS name.
    pub dns_name: String,
    /// Hosted zone of the DNS name (for alias records).
    pub canonical_zone_id: String,
    /// VPC.
    pub vpc_id: String,
}

/// A hosted zone's name and name servers: remembered, else read (`route53:GetHostedZone`) and
/// remembered.
pub async fn hosted_zone(
    facts: &Facts,
    caller: &crate::aws::AwsCaller,
    r53: &dyn crate::aws::api::route53::Route53Api,
    zone: &str,
) -> Result<ZoneFacts, crate::aws::AwsError> {
    if let Some(known) = facts.zone(zone) {
        return Ok(known);
    }
    let _reading = facts.read_lock(&format!("zone {zone}")).await;
    if let Some(known) = facts.zone(zone) {
        return Ok(known);
    }
    let found = caller.call(crate::aws::Service::Route53, "GetHostedZone", || r53.get_hosted_zone(zone)).await?;
    let mut servers: Vec<String> =
        found.name_servers.iter().map(|n| n.trim_end_matches('.').to_ascii_lowercase()).collect();
    servers.sort();
    if !found.name.is_empty() {
        facts.remember_zone(zone, (found.name.clone(), servers.clone()));
    }
    Ok((found.name, servers))
}

/// A hosted zone's name and sorted, lower-case name servers.
pub type ZoneFacts = (String, Vec<String>);

/// Remembered facts, shared by every reconcile of the process.
#[derive(Debug, Default)]
pub struct Facts {
    zones: Mutex<HashMap<String, ZoneFacts>>,
    listeners: Mutex<HashMap<String, ListenerInfo>>,
    attempted: Mutex<HashSet<String>>,
    rule_tags: Mutex<HashMap<String, BTreeMap<String, String>>>,
    listener_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<PriorityLog>>>>,
    reads: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// Read locks kept before they are all dropped ([`Facts::read_lock`]).
const MAX_READ_LOCKS: usize = 4096;

/// How many priority changes a [`PriorityLog`] keeps.
const PRIORITY_LOG: usize = 1024;

/// The listener rule priorities this process took on one listener (rule creates and moves, each
/// counted before it is sent: one whose answer is lost may have taken its priority).
#[derive(Debug, Default)]
pub struct PriorityLog {
    changes: u64,
    /// (change number, from 1; priority), the last [`PRIORITY_LOG`] changes.
    taken: VecDeque<(u64, i32)>,
}

impl PriorityLog {
    /// How many creates and moves this process sent on the listener so far.
    pub fn changes(&self) -> u64 {
        self.changes
    }

    /// The priorities taken after the first `seen` changes; `None` when those are no longer kept.
    pub fn taken_since(&self, seen: u64) -> Option<Vec<i32>> {
        let first = self.taken.front().map_or(self.changes + 1, |(n, _)| *n);
        (seen + 1 >= first).then(|| self.taken.iter().filter(|(n, _)| *n > seen).map(|(_, p)| *p).collect())
    }

    /// Record a create of, or a move to, `priority`, before it is sent.
    pub fn take(&mut self, priority: i32) {
        self.changes += 1;
        self.taken.push_back((self.changes, priority));
        if self.taken.len() > PRIORITY_LOG {
            self.taken.pop_front();
        }
    }
}

impl Facts {
    /// The facts of hosted zone `id`, if read before.
    pub fn zone(&self, id: &str) -> Option<ZoneFacts> {
        self.zones.lock().unwrap_or_else(|p| p.into_inner()).get(id).cloned()
    }

    /// Remember hosted zone `id`.
    pub fn remember_zone(&self, id: &str, facts: ZoneFacts) {
        self.zones.lock().unwrap_or_else(|p| p.into_inner()).insert(id.to_string(), facts);
    }

    /// Held while a fact is read, so the passes that start together (64 at once after a restart)
    /// send one read per fact and the others find it remembered: check, take this, check again.
    /// A failed read remembers nothing; the next holder reads again.
    pub async fn read_lock(&self, key: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut reads = self.reads.lock().unwrap_or_else(|p| p.into_inner());
            // Keys come from specs (a zone id typed wrong and edited many times): forget them all
            // now and then. A read in flight then may be repeated once, nothing worse.
            if reads.len() >= MAX_READ_LOCKS && !reads.contains_key(key) {
                reads.clear();
            }
            reads.entry(key.to_string()).or_default().clone()
        };
        lock.lock_owned().await
    }

    /// The load balancer behind `listener_arn`, if read before.
    pub fn listener(&self, listener_arn: &str) -> Option<ListenerInfo> {
        self.listeners.lock().unwrap_or_else(|p| p.into_inner()).get(listener_arn).cloned()
    }

    /// Remember the load balancer behind `listener_arn`.
    pub fn remember_listener(&self, listener_arn: &str, info: ListenerInfo) {
        self.listeners.lock().unwrap_or_else(|p| p.into_inner()).insert(listener_arn.to_string(), info);
    }

    /// Forget the load balancer behind `listener_arn` (the listener was deleted).
    pub fn forget_listener(&self, listener_arn: &str) {
        self.listeners.lock().unwrap_or_else(|p| p.into_inner()).remove(listener_arn);
    }

    /// Record that a create with idempotency key `key` is about to be sent; true if one was before.
    pub fn attempt(&self, key: &str) -> bool {
        !self.attempted.lock().unwrap_or_else(|p| p.into_inner()).insert(key.to_string())
    }

    /// Tags of listener rules read (or set) before, by rule ARN; and the ARNs not known yet. Rule
    /// tags are read once per process: telling our rules from others' otherwise costs a
    /// DescribeTags of every rule on the listener per object per pass (N² reads per listener).
    pub fn rule_tags(&self, arns: &[String]) -> (BTreeMap<String, BTreeMap<String, String>>, Vec<String>) {
        let map = self.rule_tags.lock().unwrap_or_else(|p| p.into_inner());
        let mut known = BTreeMap::new();
        let mut missing = Vec::new();
        for arn in arns {
            match map.get(arn) {
                Some(t) => {
                    known.insert(arn.clone(), t.clone());
                }
                None => missing.push(arn.clone()),
            }
        }
        (known, missing)
    }

    /// Remember the tags of listener rule `arn`.
    pub fn remember_rule_tags(&self, arn: &str, tags: BTreeMap<String, String>) {
        self.rule_tags.lock().unwrap_or_else(|p| p.into_inner()).insert(arn.to_string(), tags);
    }

    /// The lock serialising "pick a free priority, create (or move) the rule" on a listener in this
    /// process, so two objects never race for the same priority (each race costs a PriorityInUse,
    /// a re-read and a retry). It guards the priorities this process took there: a pass that read
    /// the rules after `n` changes adds the ones taken since, instead of reading the rules again.
    pub fn listener_lock(&self, listener_arn: &str) -> Arc<tokio::sync::Mutex<PriorityLog>> {
        self.listener_locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(listener_arn.to_string())
            .or_default()
            .clone()
    }

    /// Whether a create with `key` was attempted by this process.
    pub fn attempted(&self, key: &str) -> bool {
        self.attempted.lock().unwrap_or_else(|p| p.into_inner()).contains(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_reads_and_attempts() {
        let f = Facts::default();
        assert!(f.zone("Z1").is_none());
        f.remember_zone("Z1", ("a.com.".into(), vec!["ns1".into()]));
        assert_eq!(f.zone("Z1").map(|z| z.0), Some("a.com.".into()));
        assert!(!f.attempted("ref"));
        assert!(!f.attempt("ref"), "the first attempt");
        assert!(f.attempt("ref"), "a repeat");
        assert!(f.attempted("ref"));
    }

    /// 64 passes that start together (a restart) send one GetHostedZone, and a failed read is
    /// not remembered.
    #[tokio::test(start_paused = true)]
    async fn passes_that_start_together_read_a_fact_once() {
        use crate::aws::api::route53::HostedZone;
        use crate::aws::api::route53::fake::{FakeRoute53, caller};
        let zone = HostedZone { id: "/hostedzone/Z1".into(), name: "a.com.".into(), name_servers: vec!["NS1.".into()] };
        let fake = FakeRoute53 { zones: vec![zone], ..FakeRoute53::default() };
        let (facts, caller) = (Facts::default(), caller());
        let reads = (0..64).map(|_| hosted_zone(&facts, &caller, &fake, "Z1"));
        for read in futures::future::join_all(reads).await {
            assert_eq!(read, Ok(("a.com.".to_string(), vec!["ns1".to_string()])));
        }
        assert_eq!(fake.log.requests(), ["GetHostedZone Z1"]);
        let missing = futures::future::join_all((0..2).map(|_| hosted_zone(&facts, &caller, &fake, "Z9"))).await;
        assert!(missing.iter().all(|r| r.as_ref().is_err_and(|e| e.is_not_found())));
        assert_eq!(fake.log.requests().len(), 3, "each waiter reads again after a failed read");
    }

    #[test]
    fn the_priority_log_tells_what_was_taken_since_a_read_while_it_keeps_it() {
        let mut log = PriorityLog::default();
        assert_eq!(log.taken_since(0), Some(vec![]));
        log.take(10);
        log.take(11);
        assert_eq!((log.changes(), log.taken_since(0), log.taken_since(1)), (2, Some(vec![10, 11]), Some(vec![11])));
        assert_eq!(log.taken_since(2), Some(vec![]));
        for p in 0..PRIORITY_LOG {
            log.take(i32::try_from(p).unwrap_or_default());
        }
        assert_eq!(log.taken_since(1), None, "the second change is no longer kept");
        assert_eq!(log.taken_since(2).map(|t| t.len()), Some(PRIORITY_LOG));
    }
}
