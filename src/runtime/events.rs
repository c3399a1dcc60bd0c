//! Kubernetes Events (`events.k8s.io/v1`) for the objects the controllers manage.

use std::sync::Arc;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource};

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
    recorder: Recorder,
    /// Taken by each batch of [`EventRecorder::publish_later`], so deferred Events go one at a
    /// time: a burst of them does not compete with the writes they report on.
    later: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for EventRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EventRecorder")
    }
}

impl EventRecorder {
    /// A recorder reporting as `fargate-operator` from `instance` (the pod name).
    pub fn new(client: Client, instance: Option<String>) -> Self {
        let reporter = Reporter { controller: "fargate-operator".into(), instance };
        Self { recorder: Recorder::new(client, reporter), later: Arc::default() }
    }

    /// A Normal event.
    pub async fn normal<K: Resource<DynamicType = ()>>(&self, obj: &K, reason: &str, action: &str, note: String) {
        self.publish(obj, EventType::Normal, reason, action, note).await;
    }

    /// A Warning event.
    pub async fn warning<K: Resource<DynamicType = ()>>(&self, obj: &K, reason: &str, action: &str, note: String) {
        self.publish(obj, EventType::Warning, reason, action, note).await;
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

    async fn publish<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        self.publish_to(&obj.object_ref(&()), type_, reason, action, note).await;
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
        let event = Event { type_, reason: reason.into(), note: Some(note), action: action.into(), secondary: None };
        if let Err(err) = self.recorder.publish(&event, reference).await {
            tracing::warn!(%err, reason, "could not publish Event");
        }
    }
}
