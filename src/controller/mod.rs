//! Controllers, one per kind, on a shared driver.
//!
//! The driver owns what every kind does the same way: watching, per-object backoff, metrics, panics
//! caught per object (`guard`), the finalizer and `DeletionBlocked`, validation into `Degraded` and
//! `paused` (`pipeline::drive`), the end of every pass (`pass::finish_pass`: outcome into conditions, one
//! resourceVersion-guarded status write, Events) and the inventory helpers. Each kind's module holds
//! only what is its own: its observe, decide and apply steps.

pub mod access;
pub mod dns_failover;
pub mod error;
pub mod fargate_app;
pub mod hot_pool;
pub mod inventory;
pub mod pass;
pub mod pipeline;
pub mod record_mark;
pub mod slim;

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use crate::runtime::clock::Instant;

use futures::{FutureExt, StreamExt};
use k8s_openapi::NamespaceResourceScope;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use error::ReconcileError;
pub use pass::{PassEnd, StatusWriter, finish_pass, is_stale_write};

use crate::api::validation::{
    ValidationErrors, validate_dns_failover, validate_fargate_app, validate_hot_pool, validate_hot_pool_claim,
};
use crate::api::{DnsFailover, FargateApp, HotPool, HotPoolClaim, HotPoolWorker};
use crate::runtime::conditions::{self, DEGRADED, READY};
use crate::runtime::context::Context;
use crate::runtime::status::{ObjectStatus, apply_status, apply_status_at, set_last_error};

/// A kind the operator manages.
pub trait Managed:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + Debug
    + Serialize
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
    /// Its status type.
    type Status: ObjectStatus;
    /// Kind name for metrics and logs.
    const KIND: &'static str;
    /// Current status, if any.
    fn status_ref(&self) -> Option<&Self::Status>;
    /// Spec validation that needs no AWS facts.
    fn validate(&self) -> Result<(), ValidationErrors>;
    /// `spec.aws`, for kinds that make AWS objects.
    fn aws_spec(&self) -> Option<&crate::api::AwsOverride> {
        None
    }
}

macro_rules! managed {
    ($t:ty, $status:ty, $kind:literal, |$o:ident| $validate:expr) => {
        managed!(@impl $t, $status, $kind, |$o| $validate, {});
    };
    ($t:ty, $status:ty, $kind:literal, |$o:ident| $validate:expr, aws) => {
        managed!(@impl $t, $status, $kind, |$o| $validate, {
            fn aws_spec(&self) -> Option<&crate::api::AwsOverride> {
                self.spec.aws.as_ref()
            }
        });
    };
    (@impl $t:ty, $status:ty, $kind:literal, |$o:ident| $validate:expr, {$($aws:tt)*}) => {
        impl Managed for $t {
            type Status = $status;
            const KIND: &'static str = $kind;
            fn status_ref(&self) -> Option<&Self::Status> {
                self.status.as_ref()
            }
            fn validate(&self) -> Result<(), ValidationErrors> {
                let $o = self;
                $validate
            }
            $($aws)*
        }
    };
}

managed!(FargateApp, crate::api::FargateAppStatus, "FargateApp", |o| with_owner(o, validate_fargate_app(&o.spec)), aws);
managed!(
    DnsFailover,
    crate::api::DnsFailoverStatus,
    "DnsFailover",
    |o| with_owner(o, validate_dns_failover(&o.spec, None)),
    aws
);
managed!(HotPool, crate::api::HotPoolStatus, "HotPool", |o| with_owner(o, validate_hot_pool(&o.spec)), aws);

/// `result`, plus an error when the owner tag `<namespace>/<kind>/<name>` of `obj` is too long for
/// AWS (kinds that tag what they make).
fn with_owner<K: Managed>(obj: &K, result: Result<(), ValidationErrors>) -> Result<(), ValidationErrors> {
    let mut errs = result.err().unwrap_or_default();
    crate::api::aws_limits::check_owner(&mut errs, &obj.namespace().unwrap_or_default(), K::KIND, &obj.name_any());
    errs.into_result()
}
managed!(HotPoolWorker, crate::api::HotPoolWorkerStatus, "HotPoolWorker", |_o| Ok(()));
managed!(HotPoolClaim, crate::api::HotPoolClaimStatus, "HotPoolClaim", |o| validate_hot_pool_claim(
    &o.spec,
    crate::runtime::clock::now()
));

/// The resync period with up to 10% jitter, so objects created together do not resync together.
pub fn jittered(period: Duration) -> Duration {
    period.mul_f64(1.0 - 0.1 * crate::runtime::backoff::unit_random())
}

/// A problem a human must fix (not an AWS error): reported as `Degraded` with `reason`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blocked {
    /// PascalCase reason, e.g. `NameConflict`.
    pub reason: &'static str,
    /// What is wrong and what to do.
    pub message: String,
}

/// Record a [`Blocked`] outcome: Degraded, not Synced, not Ready, lastError.
pub fn record_blocked<S: ObjectStatus>(status: &mut S, b: &Blocked, generation: Option<i64>) {
    let c = status.conditions_mut();
    conditions::set_condition(c, DEGRADED, true, b.reason, &b.message, generation);
    conditions::set_condition(c, conditions::SYNCED, false, b.reason, &b.message, generation);
    conditions::set_condition(c, READY, false, b.reason, &b.message, generation);
    set_last_error(status.last_error_mut(), "reconcile", b.reason, &b.message);
}

/// Record `spec.policy.paused`: not Synced, reason `Paused`; nothing else changes.
pub fn record_paused<S: ObjectStatus>(status: &mut S, generation: Option<i64>) {
    let msg = "spec.policy.paused is set: no AWS writes";
    conditions::set_condition(
        status.conditions_mut(),
        conditions::SYNCED,
        false,
        conditions::REASON_PAUSED,
        msg,
        generation,
    );
    *status.observed_generation_mut() = generation;
}

/// Record a failed AWS call: not Synced; Degraded when retrying cannot help; Ready=False on an object
/// that has none yet (readiness is otherwise unknown, so the last known value stays); lastError.
pub fn record_aws_error<S: ObjectStatus>(status: &mut S, err: &crate::aws::AwsError, generation: Option<i64>) {
    let c = status.conditions_mut();
    let msg = err.to_string();
    conditions::set_condition(c, conditions::SYNCED, false, err.category.reason(), &msg, generation);
    if err.category == crate::aws::ErrorCategory::Terminal {
        conditions::set_condition(c, DEGRADED, true, err.category.reason(), &msg, generation);
    }
    if conditions::find(c, READY).is_none() {
        conditions::set_condition(c, READY, false, err.category.reason(), &msg, generation);
    }
    set_last_error(status.last_error_mut(), &err.operation_path(), &err.code, &err.message);
}

/// Write `status` (server-side apply) only when it differs from what the object has, and only
/// over the version `obj` is: a status built from an older copy would put back an older
/// `status.resources` and lose what another writer recorded since (found by the simulator: a
/// blocked deletion's write dropped a health check that another replica's pass had just
/// recorded, which then leaked). When the object changed, nothing is written: the change queues
/// another pass, which writes from the newer copy.
pub async fn write_status<K: Managed>(
    api: &Api<K>,
    obj: &K,
    status: &K::Status,
    ctx: &Context,
) -> Result<(), ReconcileError> {
    if obj.status_ref() == Some(status) {
        return Ok(());
    }
    // Counted before sending so a watcher never sees a write the metric does not yet show.
    ctx.metrics.status_written(K::KIND);
    let result = match obj.meta().resource_version.as_deref() {
        Some(version) => apply_status_at(api, &obj.name_any(), version, status).await.map(drop),
        None => apply_status(api, obj, status).await,
    };
    match result {
        Err(kube::Error::Api(e)) if e.code == 409 => {
            tracing::debug!(kind = K::KIND, object = %obj.name_any(), "status not written: the object changed since it was read");
            Ok(())
        }
        other => Ok(other?),
    }
}

/// Record a deletion that cannot finish yet: `DeletionBlocked` with the error's reason, and the
/// error in `lastError`. The finalizer stays until a later attempt succeeds.
pub fn record_deletion_blocked<S: ObjectStatus>(status: &mut S, err: &crate::aws::AwsError, generation: Option<i64>) {
    let msg = format!("waiting to delete: {err}");
    conditions::set_condition(
        status.conditions_mut(),
        conditions::DELETION_BLOCKED,
        true,
        err.category.reason(),
        &msg,
        generation,
    );
    set_last_error(status.last_error_mut(), &err.operation_path(), &err.code, &err.message);
}

/// An Event for every change of `Ready` or `Degraded` between `old` and `new`: Normal when it got
/// better, Warning when it got worse (a first `Ready=False` is not news).
pub async fn emit_transitions<K: Managed>(ctx: &Context, obj: &K, old: &K::Status, new: &K::Status) {
    for (type_, good_when_true) in [(READY, true), (DEGRADED, false)] {
        let before = conditions::find(old.conditions(), type_).map(|c| c.status.clone());
        let Some(after) = conditions::find(new.conditions(), type_) else { continue };
        if before.as_deref() == Some(after.status.as_str()) {
            continue;
        }
        if (after.status == "True") == good_when_true {
            ctx.events.normal(obj, &after.reason, type_, after.message.clone()).await;
        } else if before.is_some() || type_ == DEGRADED {
            ctx.events.warning(obj, &after.reason, type_, after.message.clone()).await;
        }
    }
}

/// Run `apply` or, once the object is being deleted, `cleanup`, under the finalizer
/// `fargate.operator.dev/cleanup`, with the reconcile metrics around it.
pub async fn with_finalizer<K, A, C, FA, FC>(
    obj: Arc<K>,
    ctx: Arc<Context>,
    apply: A,
    cleanup: C,
) -> Result<Action, ReconcileError>
where
    K: Managed,
    A: FnOnce(Api<K>, Arc<K>, Arc<Context>) -> FA,
    C: FnOnce(Api<K>, Arc<K>, Arc<Context>) -> FC,
    FA: std::future::Future<Output = Result<Action, ReconcileError>>,
    FC: std::future::Future<Output = Result<Action, ReconcileError>>,
{
    let started = Instant::now();
    ctx.metrics.reconcile_started(K::KIND);
    let ns = obj.namespace().ok_or(ReconcileError::MissingMetadata("metadata.namespace"))?;
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &ns);
    let (name, deleting) = (obj.name_any(), obj.meta().deletion_timestamp.is_some());
    tracing::debug!(kind = K::KIND, object = %name, namespace = %ns, deleting, rv = ?obj.resource_version(), "pass begins");
    let result = kube::runtime::finalizer::finalizer(&api, crate::api::FINALIZER, obj, |event| async {
        match event {
            // Boxed, so the finalizer's own future does not reserve room for the largest pass.
            kube::runtime::finalizer::Event::Apply(obj) => Box::pin(apply(api.clone(), obj, ctx.clone())).await,
            kube::runtime::finalizer::Event::Cleanup(obj) => match fresh(&api, &obj).await? {
                Some(obj) => {
                    let action = Box::pin(cleanup(api.clone(), obj.clone(), ctx.clone())).await?;
                    inventory_unchanged(&api, &obj).await?;
                    Ok(action)
                }
                None => Ok(Action::await_change()),
            },
        }
    })
    .await
    .map_err(|e| ReconcileError::Finalizer(Box::new(e)));
    ctx.metrics.reconcile_finished(K::KIND, started.elapsed());
    tracing::debug!(kind = K::KIND, object = %name, namespace = %ns, ok = result.is_ok(), "pass ends");
    result
}

/// The object as the apiserver holds it now, for a deletion: the cached copy may predate the last
/// status write, whose inventory names what a pass made moments before the deletion (found by
/// the simulator under load: a cleanup from a lagging copy finished with the service running).
/// `None` when it is gone, or replaced by a new object of the same name.
async fn fresh<K: Managed>(api: &Api<K>, obj: &K) -> Result<Option<Arc<K>>, ReconcileError> {
    let Some(now) = api.get_opt(&obj.name_any()).await? else { return Ok(None) };
    Ok((now.uid() == obj.uid()).then(|| Arc::new(now)))
}

/// After a cleanup, before the finalizer goes: the inventory has no entry the cleanup did not see.
/// Another writer may have recorded one meanwhile (a replica whose pass was running when the
/// deletion began, during a leader change or a rolling upgrade: it records a create before sending
/// it); removing the finalizer then would leak what that create makes. The cleanup runs again and
/// deletes (or settles) it.
async fn inventory_unchanged<K: Managed>(api: &Api<K>, seen: &K) -> Result<(), ReconcileError> {
    let Some(now) = fresh(api, seen).await? else { return Ok(()) };
    let before = seen.status_ref().map(|s| s.resources()).unwrap_or_default();
    let added =
        now.status_ref().map(|s| s.resources()).unwrap_or_default().iter().filter(|r| !before.contains(r)).count();
    if added > 0 {
        return Err(ReconcileError::InventoryGrew(added));
    }
    Ok(())
}

/// Requeue after an error with per-object exponential backoff by category.
pub fn error_policy<K: Managed>(obj: Arc<K>, err: &ReconcileError, ctx: Arc<Context>) -> Action {
    let category = err.category();
    ctx.metrics.reconcile_failed(K::KIND, category.as_str());
    let key = ObjectRef::from_obj(obj.as_ref()).to_string();
    let delay = ctx.backoff.on_failure(&key, category);
    tracing::warn!(kind = K::KIND, object = %key, category = category.as_str(), ?delay, error = %err, "reconcile failed");
    Action::requeue(delay)
}

/// Controller settings from the flags (`--max-concurrent-reconciles`).
pub(crate) fn controller_config(ctx: &Context) -> kube::runtime::controller::Config {
    kube::runtime::controller::Config::default().concurrency(ctx.config.max_concurrent_reconciles)
}

/// The owner identity (tags, names, tokens) of `obj`, of kind `kind`.
pub(crate) fn owner_of<K: Resource>(
    ctx: &Context,
    obj: &K,
    kind: &str,
) -> Result<crate::aws::naming::Owner, ReconcileError> {
    Ok(crate::aws::naming::Owner {
        cluster_id: ctx.config.cluster_id.clone(),
        namespace: obj.namespace().ok_or(ReconcileError::MissingMetadata("metadata.namespace"))?,
        kind: kind.into(),
        name: obj.name_any(),
        uid: obj.uid().ok_or(ReconcileError::MissingMetadata("metadata.uid"))?,
    })
}

pub(crate) fn api_for<K: Managed>(ctx: &Context) -> Api<K> {
    match &ctx.config.namespace {
        Some(ns) => Api::namespaced(ctx.client.clone(), ns),
        None => Api::all(ctx.client.clone()),
    }
}

/// The text of a panic's payload (what `panic!` was given), for the log and the error.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// Run `fut`; a panic inside it becomes `Err` with the panic's message.
pub(crate) async fn catch_panic<T>(fut: impl std::future::Future<Output = T>) -> Result<T, String> {
    // Boxed: the reconcile futures are deep, and one more layer of nesting overflows the compiler's
    // layout query depth.
    std::panic::AssertUnwindSafe(Box::pin(fut)).catch_unwind().await.map_err(|payload| panic_message(payload.as_ref()))
}

/// Run one reconcile of `obj`, turning a panic inside it into [`ReconcileError::Panicked`]: a bug
/// hit by one object's input must not end the process (kube-runtime re-raises a reconcile's panic
/// in the controller's stream, which ends every controller). The object backs off instead.
pub(crate) async fn guarded<K: Managed>(
    obj: &K,
    metrics: &crate::runtime::metrics::Metrics,
    reconcile: impl std::future::Future<Output = Result<Action, ReconcileError>>,
) -> Result<Action, ReconcileError> {
    match catch_panic(reconcile).await {
        Ok(result) => result,
        Err(msg) => {
            metrics.reconcile_panicked(K::KIND);
            let key = ObjectRef::from_obj(obj).to_string();
            tracing::error!(kind = K::KIND, object = %key, panic = %msg, "reconcile panicked; the object backs off");
            Err(ReconcileError::Panicked(msg))
        }
    }
}

/// `reconcile` with every call run through [`guarded`]: what each controller hands to
/// `Controller::run`.
pub(crate) fn guard<K, R, Fut>(
    mut reconcile: R,
) -> impl FnMut(Arc<K>, Arc<Context>) -> futures::future::BoxFuture<'static, Result<Action, ReconcileError>>
where
    K: Managed,
    R: FnMut(Arc<K>, Arc<Context>) -> Fut,
    Fut: std::future::Future<Output = Result<Action, ReconcileError>> + Send + 'static,
{
    move |obj, ctx| {
        let metrics = ctx.metrics.clone();
        // Boxed before it is wrapped: each async layer that takes a future by value keeps its
        // own copy of it, and the reconcile future held three (48 KiB in a debug build, for
        // each of up to --max-concurrent-reconciles passes of each kind).
        let fut = Box::pin(reconcile(obj.clone(), ctx));
        Box::pin(async move { guarded(obj.as_ref(), &metrics, fut).await })
    }
}

/// The watch of `K` a controller runs on, and the store it fills: objects enter the store slimmed
/// ([`slim::slim`]), so every reader of the store (the reconciles, the health poller) shares one
/// lean copy of each object. Every change reaches the store; only those of [`pass_worthy`] start
/// a pass.
fn slim_watch<K: Managed>(
    ctx: &Context,
) -> (Store<K>, impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static) {
    use kube::runtime::utils::PredicateConfig;
    let (reader, writer) = reflector::store();
    let events = watcher(api_for::<K>(ctx), slim::watch_config()).modify(slim::slim::<K>);
    let applied = reflector::reflector(writer, events).applied_objects();
    (reader, applied.predicate_filter(pass_worthy::<K>, PredicateConfig::default()))
}

/// What a watched change must touch to start a pass: the spec (`generation`), the deletion, the
/// finalizers, labels or annotations. A status write starts none: the object's controller is the
/// one writer of its status, and it already knows what it wrote (at 1,000 DnsFailovers each pass's
/// own status writes started one or two more passes, each reading Route 53 again). What changes
/// in AWS is found by the periodic passes, rollout polls and health readings.
fn pass_worthy<K: kube::Resource>(obj: &K) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let meta = obj.meta();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    meta.generation.hash(&mut hasher);
    meta.deletion_timestamp.as_ref().map(|t| t.0.as_millisecond()).hash(&mut hasher);
    meta.finalizers.hash(&mut hasher);
    meta.labels.hash(&mut hasher);
    meta.annotations.hash(&mut hasher);
    Some(hasher.finish())
}

async fn run_one<K, R, Fut>(
    ctx: Arc<Context>,
    stop: impl std::future::Future<Output = ()> + Send + Sync + 'static,
    reconcile: R,
    triggers: impl futures::Stream<Item = ObjectRef<K>> + Send + 'static,
    (store, objects): (Store<K>, impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static),
) where
    K: Managed,
    R: FnMut(Arc<K>, Arc<Context>) -> Fut,
    Fut: std::future::Future<Output = Result<Action, ReconcileError>> + Send + 'static,
{
    Controller::for_stream(objects, store)
        .with_config(controller_config(&ctx))
        .reconcile_on(triggers)
        .reconcile_all_on(ctx.access.changes())
        .graceful_shutdown_on(stop)
        .run(guard(reconcile), error_policy::<K>, ctx)
        .for_each(|result| async move {
            if let Err(err) = result {
                tracing::debug!(kind = K::KIND, %err, "controller event");
            }
        })
        .await;
}

/// Run every controller until `stop` resolves, then let in-flight reconciles finish.
pub async fn run_all<F>(ctx: Arc<Context>, stop: F)
where
    F: Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + Sync>>,
{
    // Health readings reach the DnsFailover controller as reconcile triggers: the poller writes no
    // status. Both end with this call (the leadership term).
    let (health_tx, health_rx) = tokio::sync::mpsc::unbounded_channel();
    let health_triggers = futures::stream::unfold(health_rx, |mut rx| async { rx.recv().await.map(|o| (o, rx)) });
    let (access, access_watch) = access::Access::watch(&ctx, stop());
    let apps = slim_watch::<FargateApp>(&ctx);
    let failovers = slim_watch::<DnsFailover>(&ctx);
    let ctx = Arc::new(Context { access, fargate_apps: Some(apps.0.clone()), ..(*ctx).clone() });
    let failover_store = failovers.0.clone();
    tokio::join!(
        access_watch,
        run_one(ctx.clone(), stop(), fargate_app::reconcile, futures::stream::empty(), apps),
        run_one(ctx.clone(), stop(), dns_failover::reconcile, health_triggers, failovers),
        dns_failover::poller::run(ctx.clone(), failover_store, stop(), health_tx),
        hot_pool::run(ctx.clone(), stop()),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::conditions::REASON_INVALID_SPEC;

    fn app(memory: i32) -> FargateApp {
        let mut app: FargateApp = serde_json::from_value(serde_json::json!({
            "apiVersion": "fargate.operator.dev/v1alpha1", "kind": "FargateApp",
            "metadata": {"name": "a", "namespace": "n", "generation": 3},
            "spec": {"cluster": "apps", "cpu": 256, "memory": memory,
                     "containers": [{"name": "web", "image": "nginx", "port": 80}],
                     "network": {"subnets": ["subnet-1"]}}
        }))
        .expect("app");
        app.status = None;
        app
    }

    #[tokio::test]
    async fn a_panicking_reconcile_is_an_error_of_its_object_and_backs_off() {
        let obj = app(512);
        let panics = async {
            if obj.spec.memory == 512 {
                panic!("boom at {}", obj.spec.cpu);
            }
            Ok(Action::await_change())
        };
        let metrics = crate::runtime::metrics::Metrics::new();
        match guarded(&obj, &metrics, panics).await {
            Err(err @ ReconcileError::Panicked(_)) => {
                assert_eq!(err.to_string(), "reconcile panicked: boom at 256");
                assert_eq!(err.category(), crate::aws::ErrorCategory::Transient);
            }
            other => panic!("expected a caught panic, got {other:?}"),
        }
        assert!(guarded(&obj, &metrics, async { Ok(Action::await_change()) }).await.is_ok());
        assert_eq!(metrics.panic_count("FargateApp"), 1);
    }

    #[test]
    fn invalid_spec_is_degraded_with_the_field_and_a_second_pass_changes_nothing() {
        let mut obj = app(4096);
        let errs = obj.validate().expect_err("memory 4096 with cpu 256 is invalid");
        // What drive() records for a spec that fails validation.
        let invalid = |obj: &FargateApp| {
            let mut status = obj.status.clone().unwrap_or_default();
            let blocked = Blocked { reason: REASON_INVALID_SPEC, message: errs.to_string() };
            record_blocked(&mut status, &blocked, obj.metadata.generation);
            status.observed_generation = obj.metadata.generation;
            status
        };
        let first = invalid(&obj);
        assert!(conditions::is_true(&first.conditions, DEGRADED));
        assert!(!conditions::is_true(&first.conditions, READY));
        let degraded = conditions::find(&first.conditions, DEGRADED).expect("Degraded");
        assert_eq!(degraded.reason, REASON_INVALID_SPEC);
        assert!(
            degraded.message.starts_with("spec.memory: 4096 MiB is not valid with cpu 256"),
            "{}",
            degraded.message
        );
        assert_eq!(first.observed_generation, Some(3));
        obj.status = Some(first.clone());
        assert_eq!(invalid(&obj), first, "a converged object must not cause a status write");
    }
}
