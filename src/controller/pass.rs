//! The end of every reconcile pass, the same for each kind: the outcome recorded in conditions,
//! `lastError` and the per-object backoff; the status written once, conditional on the
//! resourceVersion the pass read (a pass planned from a stale copy is refused and starts again);
//! Events for what changed.

use std::time::Duration;

use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;

use super::{Blocked, Managed, ReconcileError, emit_transitions, record_aws_error, record_blocked};
use crate::aws::AwsError;
use crate::runtime::Context;
use crate::runtime::conditions::{self, DEGRADED, REASON_WAITING_FOR_QUOTA, SYNCED};
use crate::runtime::status::{ObjectStatus, set_last_error};

/// How a pass ended.
pub enum PassEnd {
    /// Every write the spec needs was made: `Synced`, not `Degraded`; the next pass after `requeue`.
    Converged {
        /// The `Synced` message, e.g. "every AWS resource matches the spec".
        message: &'static str,
        /// When to look again.
        requeue: Duration,
    },
    /// A problem a human must fix: `Degraded` with its reason; looked at again after 5 minutes or
    /// an edit.
    Blocked(Blocked),
    /// Like `Blocked`, looked at again after `requeue`.
    BlockedFor(Blocked, Duration),
    /// The pass did what it could, but part of the object cannot be made to match (e.g. one HotPool
    /// version whose task definition ECS rejects): not `Synced`, `Degraded` with the problem, and
    /// `lastError` names `operation`; not an error of the pass (no backoff).
    Partial {
        /// What is wrong and what to do.
        problem: Blocked,
        /// The AWS operation that refused, as `service:Operation`.
        operation: &'static str,
        /// When to look again.
        requeue: Duration,
    },
    /// The object's turn in a slow AWS action quota (e.g. CreateHealthCheck's 0.5/s) is further
    /// off than a pass waits: nothing was sent; not `Synced` (`WaitingForQuota`), not an error,
    /// and the pass comes back when the turn is due, which the object holds meanwhile.
    Queued(crate::aws::Queued),
    /// An AWS call failed: recorded, retried with the per-object backoff.
    Failed(AwsError),
    /// Any other error (Kubernetes, missing metadata): status written as it is, retried with backoff.
    Error(ReconcileError),
}

/// How long a blocked object waits before it is looked at again without an edit.
const BLOCKED_RECHECK: Duration = Duration::from_secs(300);

/// Record `end` in `status`, write it (once, conditional on the version the pass read) and emit the
/// Events of what changed since `old`. Returns the action and whether the status was written (a
/// pass that read a stale copy writes nothing and is requeued at once).
pub async fn finish_pass<K: Managed>(
    writer: &StatusWriter<'_, K>,
    obj: &K,
    ctx: &Context,
    old: &K::Status,
    mut status: K::Status,
    end: PassEnd,
) -> (Result<Action, ReconcileError>, bool) {
    let generation = obj.meta().generation;
    *status.observed_generation_mut() = generation;
    let result = match end {
        PassEnd::Converged { message, requeue } => {
            let c = status.conditions_mut();
            conditions::set_condition(c, SYNCED, true, "Synced", message, generation);
            conditions::set_condition(c, DEGRADED, false, "AsExpected", "no problems found", generation);
            *status.last_error_mut() = None;
            ctx.backoff.on_success(&ObjectRef::from_obj(obj).to_string());
            Ok(Action::requeue(requeue))
        }
        PassEnd::Blocked(b) => {
            record_blocked(&mut status, &b, generation);
            Ok(Action::requeue(BLOCKED_RECHECK))
        }
        PassEnd::BlockedFor(b, requeue) => {
            record_blocked(&mut status, &b, generation);
            Ok(Action::requeue(requeue))
        }
        PassEnd::Partial { problem, operation, requeue } => {
            let c = status.conditions_mut();
            conditions::set_condition(c, SYNCED, false, problem.reason, &problem.message, generation);
            conditions::set_condition(c, DEGRADED, true, problem.reason, &problem.message, generation);
            set_last_error(status.last_error_mut(), operation, problem.reason, &problem.message);
            ctx.backoff.on_success(&ObjectRef::from_obj(obj).to_string());
            Ok(Action::requeue(requeue))
        }
        PassEnd::Queued(q) => {
            let message = queued_message(&q, crate::runtime::clock::now());
            let c = status.conditions_mut();
            conditions::set_condition(c, SYNCED, false, REASON_WAITING_FOR_QUOTA, &message, generation);
            // Readiness is unknown on a new object; one already known stays as it was.
            if conditions::find(c, conditions::READY).is_none_or(|r| r.reason == REASON_WAITING_FOR_QUOTA) {
                conditions::set_condition(c, conditions::READY, false, REASON_WAITING_FOR_QUOTA, &message, generation);
            }
            Ok(Action::requeue(q.wait))
        }
        PassEnd::Error(err) => Err(err),
        PassEnd::Failed(err) => {
            record_aws_error(&mut status, &err, generation);
            Err(ReconcileError::Aws(err))
        }
    };
    match writer.write(&status).await {
        Ok(()) => {}
        // The object changed since this pass read it: its conditions describe a spec that is no
        // longer current and are not written, but what it made and deleted is merged into the
        // newer object's inventory (a create must never be forgotten). The newer version
        // triggers a pass of its own.
        Err(e) if is_stale_write(&e) => {
            tracing::debug!(kind = K::KIND, object = %obj.name_any(), "stale read; merging the inventory only");
            // Against what this pass last wrote (a mid-pass write may have listed a planned create
            // the pass then resolved), else what it read.
            let before = writer.current().unwrap_or_else(|| old.clone());
            if let Err(err) = writer.merge_into_latest(&before, &status).await {
                return (Err(err), false);
            }
            return (Ok(Action::requeue(Duration::from_secs(1))), false);
        }
        Err(e) => return (Err(e), false),
    }
    emit_transitions(ctx, obj, old, &status).await;
    (result, true)
}

/// What `Synced` says while a pass is queued: the quota, and when the turn comes, to ten seconds
/// (so that a pass coming back early, to the same turn, writes the same message).
fn queued_message(q: &crate::aws::Queued, now: k8s_openapi::jiff::Timestamp) -> String {
    let wait = i64::try_from(q.wait.as_secs()).unwrap_or(i64::MAX);
    let due = now.as_second().saturating_add(wait);
    let due = k8s_openapi::jiff::Timestamp::from_second(due.saturating_add(5) / 10 * 10).unwrap_or(now);
    let calls = if q.count == 1 { "call is" } else { "calls are" };
    format!(
        "waiting for AWS's {}:{} quota, shared by every object of the account: this object's {} {calls} due at about {due}; nothing is sent before (--aws-quota-scale, if the account's quota was raised)",
        q.service, q.operation, q.count
    )
}

/// Writes one object's status during one pass, each write conditional on the resourceVersion the
/// pass read (then on the version its own previous write produced). A pass that planned from a stale
/// copy of the object (the reconcile cache lags behind the pass before it) gets a conflict instead of
/// overwriting newer status, so it cannot drop what that pass recorded, e.g. a create's idempotency
/// token written before the create was sent.
pub struct StatusWriter<'a, K: Managed> {
    api: &'a Api<K>,
    metrics: &'a crate::runtime::metrics::Metrics,
    name: String,
    state: std::sync::Mutex<(Option<String>, Option<K::Status>)>,
    /// The resourceVersion this pass's last write produced (none written: `None`).
    last_written: std::sync::Mutex<Option<String>>,
    /// The `spec.aws` this pass works with, recorded as `status.aws` with the first mid-pass write
    /// when none is recorded yet, so a create is never in the inventory without where it was made.
    made_with: Option<crate::api::AwsOverride>,
    /// The `metadata.generation` the pass read.
    generation: Option<i64>,
}

impl<'a, K: Managed> StatusWriter<'a, K> {
    /// A writer for `obj` as the pass read it.
    pub fn new(api: &'a Api<K>, obj: &K, metrics: &'a crate::runtime::metrics::Metrics) -> Self {
        let state = (obj.meta().resource_version.clone(), obj.status_ref().cloned());
        Self {
            api,
            metrics,
            name: obj.name_any(),
            state: std::sync::Mutex::new(state),
            last_written: std::sync::Mutex::new(None),
            made_with: Some(super::inventory::aws_of(obj).cloned().unwrap_or_default()),
            generation: obj.meta().generation,
        }
    }

    /// Write `status` unless it is what the object already has. `Err` 409: the object changed since
    /// this pass read it (nothing was written).
    pub async fn write(&self, status: &K::Status) -> Result<(), ReconcileError> {
        let (version, current) = self.state.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if current.as_ref() == Some(status) {
            return Ok(());
        }
        self.metrics.status_written(K::KIND);
        let Some(version) = version else {
            return Err(ReconcileError::MissingMetadata("metadata.resourceVersion"));
        };
        let written = match crate::runtime::status::apply_status_at(self.api, &self.name, &version, status).await {
            Ok(written) => written,
            Err(e) => {
                let err = ReconcileError::from(e);
                if !is_stale_write(&err) {
                    return Err(err);
                }
                self.write_after_metadata_change(current.as_ref(), status).await.ok_or(err)??
            }
        };
        self.note_written(written.meta().resource_version.clone());
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) =
            (written.meta().resource_version.clone(), Some(status.clone()));
        Ok(())
    }

    /// After a conflict: when only metadata changed since this pass read the object (an
    /// annotation, a label, a `kubectl apply` of the same spec), the same generation with the
    /// status this pass last read or wrote, this pass's status is still the truth; write it at the
    /// new resourceVersion. `None` when the spec or the status changed (another pass, another
    /// replica): the caller treats the write as stale. Without this, an object whose metadata
    /// changes more often than a pass takes never gets its status written, and every pass plans
    /// again what the last one made.
    async fn write_after_metadata_change(
        &self,
        read: Option<&K::Status>,
        status: &K::Status,
    ) -> Option<Result<K, ReconcileError>> {
        let latest = match self.api.get(&self.name).await {
            Ok(latest) => latest,
            Err(e) => return Some(Err(e.into())),
        };
        if latest.meta().generation != self.generation || latest.status_ref() != read {
            return None;
        }
        let version = latest.meta().resource_version.clone()?;
        Some(crate::runtime::status::apply_status_at(self.api, &self.name, &version, status).await.map_err(Into::into))
    }

    /// After an AWS write the pass fenced: `None` when the object is still as this pass read or last
    /// wrote it, so no newer pass can have undone the write while it was in flight; else the
    /// object as it is now (`Some(None)`: gone), for the pass to check that it still wants what
    /// it wrote.
    pub async fn changed_since_read(&self) -> Result<Option<Option<K>>, crate::aws::AwsError> {
        let latest = self.api.get_opt(&self.name).await.map_err(|e| crate::aws::AwsError {
            service: "kubernetes",
            operation: "get",
            category: crate::aws::ErrorCategory::Transient,
            code: "ReadFailed".into(),
            message: format!("could not read the object after a write to AWS: {e}"),
        })?;
        Ok(match latest {
            Some(obj) if self.still_as_read(&obj) => None,
            other => Some(other),
        })
    }

    /// `Ok` when the object is still as this pass read or last wrote it, read from the apiserver;
    /// else the conflict a refused write gets.
    async fn fence(&self) -> Result<(), ReconcileError> {
        match self.api.get_opt(&self.name).await? {
            Some(latest) if self.still_as_read(&latest) => Ok(()),
            _ => Err(ReconcileError::Kube(kube::Error::Api(
                kube::core::Status {
                    code: 409,
                    reason: "Conflict".into(),
                    message: format!("{} changed since this pass read it", self.name),
                    ..kube::core::Status::failure("", "")
                }
                .boxed(),
            ))),
        }
    }

    /// Whether `latest` is the object as this pass read or last wrote it: the same resourceVersion,
    /// or only its metadata changed (the same generation and status, as in [`write`](Self::write)),
    /// in which case later writes go from its version.
    fn still_as_read(&self, latest: &K) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let version = latest.meta().resource_version.clone();
        if version == state.0 {
            return true;
        }
        if latest.meta().generation == self.generation && latest.status_ref() == state.1.as_ref() {
            state.0 = version;
            return true;
        }
        false
    }

    fn note_written(&self, version: Option<String>) {
        *self.last_written.lock().unwrap_or_else(|p| p.into_inner()) = version;
    }

    /// The resourceVersion this pass's last status write produced, if it wrote.
    pub fn written_version(&self) -> Option<String> {
        self.last_written.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The status as this pass last wrote it (or read it).
    pub fn current(&self) -> Option<K::Status> {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).1.clone()
    }

    /// After a write refused as stale: apply this pass's inventory changes (entries `after` has
    /// and `before` had not, and the other way round) and the action fields it changed
    /// ([`ObjectStatus::carry_actions`]) to the object as it is now, and write that.
    pub async fn merge_into_latest(&self, before: &K::Status, after: &K::Status) -> Result<(), ReconcileError> {
        let mut carried = K::Status::default();
        after.carry_actions(before, &mut carried);
        if before.resources() == after.resources() && carried == K::Status::default() {
            return Ok(());
        }
        let (before_status, after_status) = (before, after);
        let (before, after) = (before.resources(), after.resources());
        let mut refused = ReconcileError::MissingMetadata("metadata.resourceVersion");
        for _attempt in 0..3 {
            let latest = self.api.get(&self.name).await?;
            let mut status = latest.status_ref().cloned().unwrap_or_default();
            after_status.carry_actions(before_status, &mut status);
            if let Some(resources) = status.resources_mut() {
                for gone in before.iter().filter(|e| !after.contains(e)) {
                    super::inventory::remove(resources, &gone.type_, &gone.id);
                }
                for new in after.iter().filter(|e| !before.contains(e)) {
                    super::inventory::put(resources, new.clone());
                }
            }
            if latest.status_ref() == Some(&status) {
                return Ok(());
            }
            let Some(version) = latest.meta().resource_version.clone() else { break };
            self.metrics.status_written(K::KIND);
            match crate::runtime::status::apply_status_at(self.api, &self.name, &version, &status).await {
                Ok(written) => {
                    self.note_written(written.meta().resource_version.clone());
                    return Ok(());
                }
                // Changed again between the read and the write: read it again.
                Err(e) => {
                    refused = e.into();
                    if !is_stale_write(&refused) {
                        break;
                    }
                }
            }
        }
        Err(refused)
    }

    /// In the middle of a pass: record `resources` as the inventory (see [`record`](Self::record)),
    /// e.g. a create planned before it is sent.
    pub async fn record_resources(&self, resources: &[crate::api::OwnedResource]) -> Result<(), crate::aws::AwsError> {
        let resources = resources.to_vec();
        self.record(|s| {
            if let Some(slot) = s.resources_mut() {
                *slot = resources;
            }
        })
        .await
    }

    /// In the middle of a pass: write the status as last written (or read) with `change` applied,
    /// e.g. a create's idempotency token added to the inventory before the create is sent. The rest
    /// of the status (conditions, observedGeneration) describes the last finished pass until this
    /// one finishes. Refused when the object changed since the pass read it, so nothing is created
    /// on a stale plan.
    pub async fn record(&self, change: impl FnOnce(&mut K::Status)) -> Result<(), crate::aws::AwsError> {
        let mut recorded = self.current().unwrap_or_default();
        change(&mut recorded);
        if let Some(slot) = recorded.made_with_mut()
            && slot.is_none()
        {
            slot.clone_from(&self.made_with);
        }
        // A status write equal to the one held is skipped, and so would fence nothing: the object
        // is read instead (an AWS write whose entry is recorded already, e.g. a record put back,
        // must not go out from a stale plan either: found by the simulator, seed 8).
        let written =
            if self.current().as_ref() == Some(&recorded) { self.fence().await } else { self.write(&recorded).await };
        written.map_err(|e| {
            let stale = is_stale_write(&e);
            crate::aws::AwsError {
                service: "kubernetes",
                operation: "status",
                category: if stale {
                    crate::aws::ErrorCategory::Conflict
                } else {
                    crate::aws::ErrorCategory::Transient
                },
                code: if stale { "StaleObject" } else { "StatusWriteFailed" }.into(),
                message: format!("could not record a planned create before sending it: {e}"),
            }
        })
    }
}

/// Whether `err` is a status write refused because the object changed since it was read.
pub fn is_stale_write(err: &ReconcileError) -> bool {
    matches!(err, ReconcileError::Kube(kube::Error::Api(resp)) if resp.code == 409)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn a_queued_pass_says_which_quota_and_when_to_ten_seconds() {
        let q = crate::aws::Queued {
            service: "route53",
            operation: "CreateHealthCheck",
            count: 2,
            wait: Duration::from_secs(96),
        };
        let now = k8s_openapi::jiff::Timestamp::from_second(1_800_000_003).expect("time");
        let message = super::queued_message(&q, now);
        assert!(message.starts_with("waiting for AWS's route53:CreateHealthCheck quota"), "{message}");
        assert!(message.contains("2 calls are due at about 2027-01-15T08:01:40Z"), "{message}");
        let later = super::queued_message(&crate::aws::Queued { wait: Duration::from_secs(94), ..q.clone() }, now);
        assert_eq!(later, message, "a pass back early to the same turn writes the same message");
        let huge = crate::aws::Queued { wait: Duration::MAX, ..q };
        assert!(super::queued_message(&huge, now).contains("waiting"), "no overflow");
    }
}
