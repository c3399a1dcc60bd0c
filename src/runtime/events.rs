//! Kubernetes Events (`events.k8s.io/v1`) for the objects the controllers manage.
//!
//! An Event repeated within [`SERIES_TTL`] (same object, type, reason, action and note) patches the
//! first one's `series` count instead of creating another object, as client-go and kube's
//! `Recorder` do. What is kept to do that is a hash and the Event's name per series, not the
//! whole Event: kube's `Recorder` keeps every Event it published for six minutes (a third of the
//! operator's heap with 300 of every kind, BENCHMARKS.md), and scans them all on every publish.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::events::EventType;
use kube::{Client, Resource};

use crate::runtime::clock;

/// How long a repeat of an Event counts into the first one's series.
pub const SERIES_TTL: SignedDuration = SignedDuration::from_mins(6);
/// The reporting controller of every Event.
const CONTROLLER: &str = "fargate-operator";

/// An Event to publish later, off the path of the writes it reports ([`EventRecorder::publish_later`]).
#[derive(Clone, Debug)]
pub struct Deferred {
    reference: ObjectReference,
    type_: EventType,
    reason: String,
    action: String,
    note: String,
}

impl Deferred {
    /// A Normal Event about `obj`.
    pub fn normal<K: Resource<DynamicType = ()>>(obj: &K, reason: &str, action: &str, note: String) -> Self {
        Self::of(obj, EventType::Normal, reason, action, note)
    }

    /// A Warning Event about `obj`.
    pub fn warning<K: Resource<DynamicType = ()>>(obj: &K, reason: &str, action: &str, note: String) -> Self {
        Self::of(obj, EventType::Warning, reason, action, note)
    }

    fn of<K: Resource<DynamicType = ()>>(obj: &K, type_: EventType, reason: &str, action: &str, note: String) -> Self {
        Self { reference: obj.object_ref(&()), type_, reason: reason.into(), action: action.into(), note }
    }
}

/// Publishes Events; failures are logged, never fatal (an Event is a courtesy, not state).
#[derive(Clone)]
pub struct EventRecorder {
    client: Client,
    instance: String,
    series: Arc<Mutex<SeriesLog>>,
    /// Taken by each batch of [`EventRecorder::publish_later`], so deferred Events go one at a
    /// time: a burst of them does not compete with the writes they report on.
    later: Arc<tokio::sync::Mutex<()>>,
}

/// The Event an object's repeat goes into.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Series {
    name: String,
    count: i32,
    last: Timestamp,
}

impl Series {
    fn live_at(&self, now: Timestamp) -> bool {
        self.last.checked_add(SERIES_TTL).is_ok_and(|end| end > now)
    }
}

/// Series younger than [`SERIES_TTL`], by a hash of what makes two Events the same.
#[derive(Debug, Default)]
struct SeriesLog {
    series: HashMap<u64, Series>,
    swept: Option<Timestamp>,
}

impl SeriesLog {
    /// The series `key` continues at `now` (its count raised), if there is one.
    fn repeat(&mut self, key: u64, now: Timestamp) -> Option<Series> {
        // Expired series go at most once a minute: a sweep visits them all.
        if self.swept.is_none_or(|t| t.checked_add(SignedDuration::from_mins(1)).is_ok_and(|next| next < now)) {
            self.series.retain(|_, s| s.live_at(now));
            self.swept = Some(now);
        }
        let s = self.series.get_mut(&key).filter(|s| s.live_at(now))?;
        s.count = s.count.saturating_add(1);
        s.last = now;
        Some(s.clone())
    }

    fn started(&mut self, key: u64, name: String, now: Timestamp) {
        self.series.insert(key, Series { name, count: 1, last: now });
    }

    fn forget(&mut self, key: u64) {
        self.series.remove(&key);
    }
}

/// What makes two Events one series.
fn series_key(reference: &ObjectReference, type_: EventType, reason: &str, action: &str, note: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (&reference.namespace, &reference.kind, &reference.name, &reference.uid).hash(&mut h);
    (matches!(type_, EventType::Warning), reason, action, note).hash(&mut h);
    h.finish()
}

impl std::fmt::Debug for EventRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EventRecorder")
    }
}

impl EventRecorder {
    /// A recorder reporting as `fargate-operator` from `instance` (the pod name).
    pub fn new(client: Client, instance: Option<String>) -> Self {
        Self {
            client,
            instance: instance.unwrap_or_else(|| CONTROLLER.into()),
            series: Arc::default(),
            later: Arc::default(),
        }
    }

    /// A Normal event.
    pub async fn normal<K: Resource<DynamicType = ()>>(&self, obj: &K, reason: &str, action: &str, note: String) {
        self.publish_to(&obj.object_ref(&()), EventType::Normal, reason, action, note).await;
    }

    /// A Warning event.
    pub async fn warning<K: Resource<DynamicType = ()>>(&self, obj: &K, reason: &str, action: &str, note: String) {
        self.publish_to(&obj.object_ref(&()), EventType::Warning, reason, action, note).await;
    }

    /// Publish `events`, in order, from a task of their own, one batch after the other: the caller
    /// goes on without waiting for the apiserver (a claim's binding is not held up by the Event
    /// that reports it).
    pub fn publish_later(&self, events: Vec<Deferred>) {
        if events.is_empty() {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            let _one_at_a_time = this.later.lock().await;
            for e in events {
                this.publish_to(&e.reference, e.type_, &e.reason, &e.action, e.note).await;
            }
        });
    }

    async fn publish_to(
        &self,
        reference: &ObjectReference,
        type_: EventType,
        reason: &str,
        action: &str,
        mut note: String,
    ) {
        // The API rejects notes over 1 KiB.
        if note.len() > 1000 {
            let mut cut = 1000;
            while !note.is_char_boundary(cut) {
                cut -= 1;
            }
            note.truncate(cut);
        }
        let namespace = reference.namespace.as_deref().unwrap_or("default");
        let events: Api<K8sEvent> = Api::namespaced(self.client.clone(), namespace);
        let key = series_key(reference, type_, reason, action, &note);
        let now = clock::now();
        let repeat = self.series.lock().unwrap_or_else(|p| p.into_inner()).repeat(key, now);
        if let Some(series) = repeat {
            let patch = serde_json::json!({"series": {"count": series.count, "lastObservedTime": MicroTime(now)}});
            match events.patch(&series.name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) => return,
                // Gone (the apiserver's Event TTL) or refused: start a new series.
                Err(err) => tracing::debug!(%err, reason, "could not count a repeated Event; creating it"),
            }
            self.series.lock().unwrap_or_else(|p| p.into_inner()).forget(key);
        }
        let event = self.event(reference, type_, reason, action, note, now);
        let name = event.metadata.name.clone().unwrap_or_default();
        match events.create(&PostParams::default(), &event).await {
            Ok(_) => self.series.lock().unwrap_or_else(|p| p.into_inner()).started(key, name, now),
            Err(err) => tracing::warn!(%err, reason, "could not publish Event"),
        }
    }

    fn event(
        &self,
        reference: &ObjectReference,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
        now: Timestamp,
    ) -> K8sEvent {
        let name = format!("{}.{:x}", reference.name.as_deref().unwrap_or(CONTROLLER), now.as_nanosecond());
        K8sEvent {
            action: Some(action.into()),
            reason: Some(reason.into()),
            event_time: Some(MicroTime(now)),
            regarding: Some(reference.clone()),
            note: Some(note),
            metadata: ObjectMeta { namespace: reference.namespace.clone(), name: Some(name), ..ObjectMeta::default() },
            reporting_controller: Some(CONTROLLER.into()),
            reporting_instance: Some(self.instance.clone()),
            type_: Some(if matches!(type_, EventType::Warning) { "Warning" } else { "Normal" }.into()),
            ..K8sEvent::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    #[test]
    fn a_repeat_within_the_ttl_continues_the_series_and_a_later_one_starts_anew() {
        let mut log = SeriesLog::default();
        let t0 = at("2026-01-01T00:00:00Z");
        assert_eq!(log.repeat(1, t0), None, "never published");
        log.started(1, "app.1".into(), t0);
        let t1 = at("2026-01-01T00:05:00Z");
        assert_eq!(log.repeat(1, t1), Some(Series { name: "app.1".into(), count: 2, last: t1 }));
        let t2 = at("2026-01-01T00:10:59Z");
        assert_eq!(log.repeat(1, t2).map(|s| s.count), Some(3), "within six minutes of the last repeat");
        assert_eq!(log.repeat(1, at("2026-01-01T00:17:00Z")), None, "six minutes after the last repeat");
        log.started(2, "app.2".into(), t0);
        log.repeat(3, at("2026-01-01T01:00:00Z"));
        assert!(log.series.is_empty(), "a sweep drops expired series");
    }

    #[test]
    fn the_key_tells_objects_reasons_and_notes_apart() {
        let r = |uid: &str| ObjectReference { uid: Some(uid.into()), name: Some("app".into()), ..Default::default() };
        let k = series_key(&r("u1"), EventType::Normal, "Created", "Create", "note");
        assert_eq!(k, series_key(&r("u1"), EventType::Normal, "Created", "Create", "note"));
        assert_ne!(k, series_key(&r("u2"), EventType::Normal, "Created", "Create", "note"));
        assert_ne!(k, series_key(&r("u1"), EventType::Warning, "Created", "Create", "note"));
        assert_ne!(k, series_key(&r("u1"), EventType::Normal, "Created", "Create", "other note"));
    }
}
