//! Route 53 change batching: changes from every object in one hosted zone are merged into as few
//! ChangeResourceRecordSets calls as the limits allow, one call in flight per zone, under the
//! Route 53 budget. A batch rejected because of one object's change is split in halves and retried
//! until the bad change stands alone, so it never blocks the others.
//!
//! One worker per (zone, scope), the scope being the account and region an object's calls go to
//! (its `spec.aws` role and region): a batch is sent through the [`Route53Api`] of that scope,
//! never under another object's role. A batcher belongs to one leadership term: when the term's
//! last handle is dropped its workers are aborted, so no batch is sent by a replica that no longer
//! leads.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_route53::types::{Change, ChangeAction};
use tokio::sync::{mpsc, oneshot};

use super::api::route53::Route53Api;
use super::{AwsCaller, AwsError, ErrorCategory, Service};

/// At most this many record changes per batch (UPSERT counts twice).
pub const MAX_RECORDS: usize = 1000;
/// At most this many characters of record values per batch (UPSERT counts twice).
pub const MAX_VALUE_CHARS: usize = 32_000;
/// A zone's worker sends once no new change arrived for this long...
pub const QUIET: Duration = Duration::from_millis(300);
/// ...or this long after the first change of the batch, whichever comes first.
pub const MAX_LINGER: Duration = Duration::from_secs(2);
/// A batch of [`Urgency::Patient`] changes only waits this long for the next one: longer than the
/// 2 s between two new DnsFailovers' CreateHealthCheck turns (0.5/s), so they share batches...
pub const PATIENT_QUIET: Duration = Duration::from_secs(3);
/// ...for at most this long after its first change.
pub const PATIENT_MAX_LINGER: Duration = Duration::from_secs(15);

/// How long a change may wait for others to share its batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Urgency {
    /// A change someone waits for (a failover switch, an edit): [`QUIET`] and [`MAX_LINGER`].
    Prompt,
    /// The first records of a new object, which Route 53's quotas pace a couple of seconds apart:
    /// [`PATIENT_QUIET`] and [`PATIENT_MAX_LINGER`], so new objects of one zone coming 2 s apart
    /// share batches (the bench's 1,000 over 5 zones come 10 s apart per zone and still go alone).
    /// A prompt change arriving meanwhile sends the batch on the prompt schedule.
    Patient,
}

/// (records, value characters) one change costs against the batch limits.
pub fn cost(change: &Change) -> (usize, usize) {
    let weight = if *change.action() == ChangeAction::Upsert { 2 } else { 1 };
    let set = change.resource_record_set();
    let chars: usize = set.map(|s| s.resource_records().iter().map(|r| r.value().len()).sum()).unwrap_or(0);
    let records = set.map(|s| s.resource_records().len().max(1)).unwrap_or(1);
    (records * weight, chars * weight)
}

/// Split submissions (each a group of changes that must go together) into batches within the limits,
/// keeping each group whole and the order stable.
pub fn pack(groups: &[Vec<Change>]) -> Vec<Vec<usize>> {
    let mut batches: Vec<Vec<usize>> = Vec::new();
    let (mut records, mut chars) = (0, 0);
    for (i, g) in groups.iter().enumerate() {
        let (r, c) = g.iter().map(cost).fold((0, 0), |(a, b), (x, y)| (a + x, b + y));
        let fits = records + r <= MAX_RECORDS && chars + c <= MAX_VALUE_CHARS;
        if batches.is_empty() || !fits {
            batches.push(Vec::new());
            records = 0;
            chars = 0;
        }
        if let Some(last) = batches.last_mut() {
            last.push(i);
        }
        records += r;
        chars += c;
    }
    batches
}

struct Submission {
    changes: Vec<Change>,
    urgency: Urgency,
    api: Arc<dyn Route53Api>,
    reply: oneshot::Sender<Result<(String, String), AwsError>>,
}

/// Per-zone batching of Route 53 changes, shared by every controller of one leadership term.
#[derive(Clone)]
pub struct Route53Batcher {
    caller: AwsCaller,
    zones: Arc<Zones>,
}

/// The workers by (zone, scope); aborted when the last handle goes.
#[derive(Default)]
struct Zones {
    workers: Mutex<HashMap<(String, String), ZoneWorker>>,
}

struct ZoneWorker {
    tx: mpsc::UnboundedSender<Submission>,
    task: tokio::task::AbortHandle,
}

impl Drop for Zones {
    fn drop(&mut self) {
        let workers = self.workers.get_mut().unwrap_or_else(|p| p.into_inner());
        for w in workers.values() {
            w.task.abort();
        }
    }
}

impl std::fmt::Debug for Route53Batcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Route53Batcher")
    }
}

impl Route53Batcher {
    /// A batcher sending through `caller`.
    pub fn new(caller: AwsCaller) -> Self {
        Self { caller, zones: Arc::default() }
    }

    fn spawn(&self, zone: &str) -> ZoneWorker {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(zone_worker(self.caller.clone(), zone.to_string(), rx)).abort_handle();
        ZoneWorker { tx, task }
    }

    /// Submit `changes` (applied together, in one batch) to `zone`, sent through `api`, whose
    /// account and region `scope` names; resolves with the change's (id, status) once the batch
    /// holding them was accepted.
    pub async fn submit(
        &self,
        zone: &str,
        scope: &str,
        api: Arc<dyn Route53Api>,
        changes: Vec<Change>,
        urgency: Urgency,
    ) -> Result<(String, String), AwsError> {
        let (reply, rx) = oneshot::channel();
        let sub = Submission { changes, urgency, api, reply };
        let sender = {
            let mut zones = self.zones.workers.lock().unwrap_or_else(|p| p.into_inner());
            let entry = zones.entry((zone.to_string(), scope.to_string())).or_insert_with(|| self.spawn(zone));
            if entry.tx.is_closed() {
                *entry = self.spawn(zone);
            }
            entry.tx.clone()
        };
        if let Err(mpsc::error::SendError(sub)) = sender.send(sub) {
            let _ = sub.reply.send(Err(worker_gone()));
        }
        rx.await.unwrap_or_else(|_| Err(worker_gone()))
    }
}

fn worker_gone() -> AwsError {
    AwsError {
        service: "route53",
        operation: "ChangeResourceRecordSets",
        category: ErrorCategory::Transient,
        code: "BatcherStopped".into(),
        message: "the zone's batch worker stopped; retrying".into(),
    }
}

async fn zone_worker(caller: AwsCaller, zone: String, mut rx: mpsc::UnboundedReceiver<Submission>) {
    while let Some(first) = rx.recv().await {
        // Let concurrent reconciles add their changes to this batch: wait for a quiet moment, but
        // never hold the first change longer than its linger, nor a prompt one longer than
        // MAX_LINGER.
        let mut batch = Linger::new(first.urgency, tokio::time::Instant::now());
        let mut pending = vec![first];
        loop {
            let wait = batch.wait(tokio::time::Instant::now());
            match tokio::time::timeout(wait, rx.recv()).await {
                Ok(Some(more)) => {
                    batch.add(more.urgency, tokio::time::Instant::now());
                    pending.push(more);
                }
                Ok(None) | Err(_) => break,
            }
            if tokio::time::Instant::now() >= batch.deadline {
                break;
            }
        }
        let groups: Vec<Vec<Change>> = pending.iter().map(|s| s.changes.clone()).collect();
        let mut results: Vec<Option<Result<(String, String), AwsError>>> = (0..pending.len()).map(|_| None).collect();
        for batch in pack(&groups) {
            send_bisecting(&caller, &zone, &pending, &batch, &mut results).await;
        }
        for (sub, result) in pending.into_iter().zip(results) {
            let _ = sub.reply.send(result.unwrap_or_else(|| Err(worker_gone())));
        }
    }
}

/// When a batch in the making is sent: after its quiet time without a new change, or at its
/// deadline.
struct Linger {
    quiet: Duration,
    deadline: tokio::time::Instant,
}

impl Linger {
    fn new(urgency: Urgency, now: tokio::time::Instant) -> Self {
        match urgency {
            Urgency::Prompt => Self { quiet: QUIET, deadline: now + MAX_LINGER },
            Urgency::Patient => Self { quiet: PATIENT_QUIET, deadline: now + PATIENT_MAX_LINGER },
        }
    }

    /// A change of `urgency` joined the batch at `now`.
    fn add(&mut self, urgency: Urgency, now: tokio::time::Instant) {
        if urgency == Urgency::Prompt {
            let prompt = Self::new(urgency, now);
            self.quiet = prompt.quiet;
            self.deadline = self.deadline.min(prompt.deadline);
        }
    }

    /// How long to wait for the next change at `now`.
    fn wait(&self, now: tokio::time::Instant) -> Duration {
        self.quiet.min(self.deadline.saturating_duration_since(now))
    }
}

/// Send `idx` as one batch; if AWS rejects it as invalid and it holds more than one submission,
/// split it and send the halves, so one bad change cannot block the others.
async fn send_bisecting(
    caller: &AwsCaller,
    zone: &str,
    pending: &[Submission],
    idx: &[usize],
    results: &mut [Option<Result<(String, String), AwsError>>],
) {
    let mut stack = vec![idx.to_vec()];
    while let Some(part) = stack.pop() {
        let Some(&first) = part.first() else { continue };
        let changes: Vec<Change> = part.iter().flat_map(|&i| pending[i].changes.clone()).collect();
        let api = &pending[first].api;
        let outcome = caller
            .call(Service::Route53, "ChangeResourceRecordSets", || api.change_resource_record_sets(zone, &changes))
            .await
            .map(|info| (info.id, info.status));
        if tracing::enabled!(tracing::Level::DEBUG) {
            let summary: Vec<String> = changes.iter().map(describe).collect();
            tracing::debug!(zone, changes = ?summary, outcome = ?outcome.as_ref().map(|(id, _)| id), "Route 53 batch sent");
        }
        match outcome {
            Err(e) if part.len() > 1 && matches!(e.category, ErrorCategory::Terminal | ErrorCategory::Conflict) => {
                let (a, b) = part.split_at(part.len() / 2);
                stack.push(b.to_vec());
                stack.push(a.to_vec());
            }
            other => {
                for &i in &part {
                    results[i] = Some(other.clone());
                }
            }
        }
    }
}

/// `ACTION name TYPE set-identifier`, for the debug log.
fn describe(change: &Change) -> String {
    let set = change.resource_record_set();
    format!(
        "{} {} {} {}",
        change.action().as_str(),
        set.map(|s| s.name()).unwrap_or_default(),
        set.map(|s| s.r#type().as_str()).unwrap_or_default(),
        set.and_then(|s| s.set_identifier()).unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::api::route53::fake::{FakeRoute53, caller};
    use aws_sdk_route53::types::{ResourceRecord, ResourceRecordSet, RrType};

    fn upsert(value_len: usize) -> Change {
        upsert_at("a", value_len)
    }

    fn upsert_at(name: &str, value_len: usize) -> Change {
        let set = ResourceRecordSet::builder()
            .name(format!("{name}.example.com."))
            .r#type(RrType::Cname)
            .ttl(60)
            .resource_records(ResourceRecord::builder().value("x".repeat(value_len)).build().expect("rr"))
            .build()
            .expect("set");
        Change::builder().action(ChangeAction::Upsert).resource_record_set(set).build().expect("change")
    }

    #[tokio::test]
    async fn the_terms_zone_workers_end_with_its_last_batcher_and_scopes_get_their_own() {
        let batcher = Route53Batcher::new(caller());
        let handles: Vec<tokio::task::AbortHandle> = ["role-a|us-east-1", "role-b|us-east-1"]
            .iter()
            .map(|scope| {
                let w = batcher.spawn("Z1");
                let task = w.task.clone();
                batcher.zones.workers.lock().expect("lock").insert(("Z1".into(), (*scope).into()), w);
                task
            })
            .collect();
        assert_eq!(batcher.zones.workers.lock().expect("lock").len(), 2, "one worker per scope");
        let other_handle = batcher.clone();
        drop(batcher);
        tokio::task::yield_now().await;
        assert!(handles.iter().all(|h| !h.is_finished()), "a handle of the term is still alive");
        drop(other_handle);
        for _ in 0..100 {
            if handles.iter().all(tokio::task::AbortHandle::is_finished) {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("zone workers still running after the term's last batcher was dropped");
    }

    /// Route 53 rejects a whole batch for one bad change: the batch is halved until the bad change
    /// stands alone, and a scope's changes never travel through another scope's account (moto
    /// shows the end state, not which request carried which change through which client).
    #[tokio::test(start_paused = true)]
    async fn a_rejected_change_is_bisected_alone_and_each_scope_uses_its_own_api() {
        let batcher = Route53Batcher::new(caller());
        let a = Arc::new(FakeRoute53 { rejected_names: vec!["bad.example.com.".into()], ..FakeRoute53::default() });
        let b = Arc::new(FakeRoute53::default());
        let mut submissions: Vec<_> = ["g0", "g1", "bad", "g2"]
            .iter()
            .map(|name| batcher.submit("Z1", "account-a", a.clone(), vec![upsert_at(name, 8)], Urgency::Prompt))
            .collect();
        submissions.push(batcher.submit("Z1", "account-b", b.clone(), vec![upsert_at("other", 8)], Urgency::Prompt));
        let results = futures::future::join_all(submissions).await;

        let err = results[2].clone().expect_err("the bad change fails");
        assert_eq!((err.category, err.code.as_str()), (ErrorCategory::Conflict, "InvalidChangeBatch"));
        for i in [0, 1, 3, 4] {
            assert_eq!(results[i].as_ref().map(|(_, status)| status.as_str()), Ok("PENDING"), "submission {i}");
        }
        let sent = |names: &str| format!("ChangeResourceRecordSets Z1 {names}");
        assert_eq!(
            a.log.requests(),
            [
                sent("g0.example.com.,g1.example.com.,bad.example.com.,g2.example.com."),
                sent("g0.example.com.,g1.example.com."),
                sent("bad.example.com.,g2.example.com."),
                sent("bad.example.com."),
                sent("g2.example.com."),
            ],
            "merged first, then halves until the bad change stands alone"
        );
        assert_eq!(b.log.requests(), [sent("other.example.com.")], "account b sends only its own change");
    }

    /// New objects' first records arriving 2 s apart (CreateHealthCheck's pace) share a batch; a
    /// prompt change (a failover switch) is sent on its own schedule and takes the waiting ones.
    #[tokio::test(start_paused = true)]
    async fn patient_changes_2_s_apart_share_a_batch_and_a_prompt_one_sends_it_early() {
        let batcher = Route53Batcher::new(caller());
        let api = Arc::new(FakeRoute53::default());
        let submit = |name: &'static str, urgency| {
            let (batcher, api) = (batcher.clone(), api.clone());
            tokio::spawn(async move { batcher.submit("Z1", "a", api, vec![upsert_at(name, 8)], urgency).await })
        };
        let mut sent = Vec::new();
        for name in ["n0", "n1", "n2"] {
            sent.push(submit(name, Urgency::Patient));
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        assert!(api.log.requests().is_empty(), "still waiting for more: {:?}", api.log.requests());
        for s in sent.drain(..) {
            s.await.expect("join").expect("sent");
        }
        assert_eq!(api.log.requests(), ["ChangeResourceRecordSets Z1 n0.example.com.,n1.example.com.,n2.example.com."]);

        let first = submit("n3", Urgency::Patient);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let switch = submit("flip", Urgency::Prompt);
        tokio::time::sleep(QUIET + Duration::from_millis(50)).await;
        assert_eq!(api.log.requests().len(), 2, "sent a quiet moment after the prompt change");
        first.await.expect("join").expect("sent");
        switch.await.expect("join").expect("sent");
    }

    #[test]
    fn upserts_count_twice_against_both_limits() {
        assert_eq!(cost(&upsert(10)), (2, 20));
    }

    #[test]
    fn packing_respects_record_and_character_limits_and_keeps_pairs_whole() {
        // 300 objects x a pair of UPSERTs = 1,200 weighted records: two batches.
        let groups: Vec<Vec<Change>> = (0..300).map(|_| vec![upsert(20), upsert(20)]).collect();
        let batches = pack(&groups);
        assert_eq!(batches.len(), 2);
        assert_eq!(batches[0].len(), 250, "1000 / (2 changes x 2) = 250 pairs");
        assert_eq!(batches.iter().map(Vec::len).sum::<usize>(), 300);
        // Long values hit the 32,000-character limit first.
        let long: Vec<Vec<Change>> = (0..10).map(|_| vec![upsert(4000)]).collect();
        let batches = pack(&long);
        assert!(batches.iter().all(|b| b.len() <= 4), "8,000 weighted chars each: at most 4 per batch: {batches:?}");
    }
}
