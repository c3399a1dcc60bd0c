//! Watch streams: a 200 response whose body is newline-delimited JSON watch events.
//!
//! A watch reads the store's event log from a cursor: with `resourceVersion=r` it first replays the
//! logged events after `r`, then follows new ones as they are written (it wakes on a
//! `tokio::sync::watch` channel carrying the newest resourceVersion). With `resourceVersion`
//! absent, empty or `0` it starts with a synthetic `ADDED` event for every current object that
//! matches, then follows; with `sendInitialEvents=true` those are followed by a `BOOKMARK`
//! annotated `k8s.io/initial-events-end` (a streaming list; its state is always the newest).
//!
//! Label and field selectors filter events as the apiserver does: a `MODIFIED` write that makes an
//! object enter the selection is `ADDED`, one that makes it leave is `DELETED`.
//!
//! When the cursor is (or falls) behind the oldest event the log keeps — a watch from an old
//! resourceVersion, or one whose client stopped reading while more writes than the log holds were
//! made — the stream sends one `ERROR` event with a 410 Expired `Status` and ends, so a
//! kube-runtime watcher re-lists.
//!
//! The stream ends after `timeoutSeconds` on tokio's clock (1800 s when not given or 0; the
//! apiserver picks 30 to 60 minutes), with a `BOOKMARK` of the newest resourceVersion seen when
//! `allowWatchBookmarks` is set. No periodic bookmarks are sent.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body::Frame;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::Shared;
use super::error::{ApiError, Result};
use super::route::{Query, Route};
use super::select::Selector;
use super::store::{EventType, LoggedEvent};

/// `timeoutSeconds` when the client gives none.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

/// The frames of a watch response body.
pub(super) type WatchFrames = futures::stream::BoxStream<'static, std::result::Result<Frame<Bytes>, Infallible>>;

struct WatchState {
    shared: Arc<Shared>,
    resource: String,
    namespace: Option<String>,
    selector: Selector,
    /// Every event up to this resourceVersion has been considered.
    cursor: u64,
    deadline: Instant,
    /// (apiVersion, kind) for bookmarks, when the client allows them.
    bookmark_kind: Option<(String, String)>,
    pending: VecDeque<Bytes>,
    finished: bool,
    changed: tokio::sync::watch::Receiver<u64>,
}

/// Start a watch of `route` (a collection): the frames of the response body, or an error answered
/// before the stream starts (a bad parameter).
pub(super) fn start(shared: Arc<Shared>, route: &Route, query: &Query) -> Result<WatchFrames> {
    let selector = Selector::parse(query.get("labelSelector"), query.get("fieldSelector"))?;
    let timeout = match query.get("timeoutSeconds").filter(|t| !t.is_empty()) {
        Some(t) => match t.parse::<u64>() {
            Ok(0) => DEFAULT_TIMEOUT,
            Ok(secs) => Duration::from_secs(secs),
            Err(_) => return Err(ApiError::bad_request(format!("invalid timeoutSeconds {t:?}"))),
        },
        None => DEFAULT_TIMEOUT,
    };
    let from = match query.get("resourceVersion").filter(|rv| !rv.is_empty() && *rv != "0") {
        Some(rv) => {
            Some(rv.parse::<u64>().map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {rv:?}")))?)
        }
        None => None,
    };
    let send_initial = query.flag("sendInitialEvents");
    let allow_bookmarks = query.flag("allowWatchBookmarks");
    let resource = route.resource.qualified();
    let mut changed = shared.changed.subscribe();
    changed.borrow_and_update();

    let store = shared.store();
    let kind = store.kind_of(&route.resource);
    let mut pending = VecDeque::new();
    let cursor = match from {
        Some(rv) if !send_initial => rv,
        _ => {
            let current = store.list(&resource, route.namespace.as_deref()).map(|(_, o)| o);
            for obj in current.filter(|o| selector.matches(o)) {
                pending.push_back(line(EventType::Added.as_str(), &serialize(obj)?));
            }
            if send_initial {
                let end = json!({ "k8s.io/initial-events-end": "true" });
                pending.push_back(bookmark(&kind, store.resource_version(), Some(end))?);
            }
            store.resource_version()
        }
    };
    drop(store);

    let state = WatchState {
        shared,
        resource,
        namespace: route.namespace.clone(),
        selector,
        cursor,
        deadline: Instant::now() + timeout,
        bookmark_kind: allow_bookmarks.then_some(kind),
        pending,
        finished: false,
        changed,
    };
    Ok(Box::pin(futures::stream::unfold(state, next_frame)))
}

async fn next_frame(mut st: WatchState) -> Option<(std::result::Result<Frame<Bytes>, Infallible>, WatchState)> {
    loop {
        if let Some(line) = st.pending.pop_front() {
            return Some((Ok(Frame::data(line)), st));
        }
        if st.finished {
            return None;
        }
        // Mark the newest version seen before reading the log, so a write after the read wakes us.
        st.changed.borrow_and_update();
        st.read_log();
        if !st.pending.is_empty() || st.finished {
            continue;
        }
        tokio::select! {
            biased;
            () = tokio::time::sleep_until(st.deadline) => {
                st.finished = true;
                if let Some(kind) = &st.bookmark_kind
                    && let Ok(b) = bookmark(kind, st.cursor, None)
                {
                    st.pending.push_back(b);
                }
            }
            changed = st.changed.changed() => {
                if changed.is_err() {
                    st.finished = true;
                }
            }
        }
    }
}

impl WatchState {
    /// Queue the events after the cursor that this watch selects, and move the cursor past every
    /// event read; queue a 410 and finish if the log no longer holds them.
    fn read_log(&mut self) {
        let shared = Arc::clone(&self.shared);
        let store = shared.store();
        let events = match store.events_after(self.cursor) {
            Ok(events) => events,
            Err(expired) => {
                self.finish_with(&expired);
                return;
            }
        };
        for event in events {
            self.cursor = event.rv;
            if let Some(kind) = self.translate(event) {
                self.pending.push_back(line(kind.as_str(), &event.object));
            }
        }
        self.cursor = self.cursor.max(store.resource_version());
    }

    fn finish_with(&mut self, error: &ApiError) {
        self.finished = true;
        match serde_json::to_vec(&error.to_status()) {
            Ok(status) => self.pending.push_back(line("ERROR", &status)),
            Err(e) => tracing::error!(%e, "kube model: cannot serialize a watch error"),
        }
    }

    /// What `event` is to this watch: `None` when it does not concern it.
    fn translate(&self, event: &LoggedEvent) -> Option<EventType> {
        let (resource, namespace, name) = &event.key;
        if *resource != self.resource || self.namespace.as_ref().is_some_and(|ns| ns != namespace) {
            return None;
        }
        let now = self.selector.matches_parts(event.labels.as_ref(), name, namespace);
        match event.kind {
            EventType::Added | EventType::Deleted => now.then_some(event.kind),
            EventType::Modified => {
                let before = self.selector.matches_parts(event.prev_labels.as_ref(), name, namespace);
                match (before, now) {
                    (true, true) => Some(EventType::Modified),
                    (false, true) => Some(EventType::Added),
                    (true, false) => Some(EventType::Deleted),
                    (false, false) => None,
                }
            }
        }
    }
}

fn serialize(obj: &Value) -> Result<Vec<u8>> {
    serde_json::to_vec(obj).map_err(|e| ApiError::internal(format!("cannot serialize: {e}")))
}

/// `{"type":..,"object":..}` and a newline.
fn line(event_type: &str, object: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(object.len() + 32);
    out.extend_from_slice(b"{\"type\":\"");
    out.extend_from_slice(event_type.as_bytes());
    out.extend_from_slice(b"\",\"object\":");
    out.extend_from_slice(object);
    out.extend_from_slice(b"}\n");
    Bytes::from(out)
}

fn bookmark((api_version, kind): &(String, String), rv: u64, annotations: Option<Value>) -> Result<Bytes> {
    let mut metadata = json!({ "resourceVersion": rv.to_string() });
    if let Some(a) = annotations {
        metadata["annotations"] = a;
    }
    let obj = json!({ "apiVersion": api_version, "kind": kind, "metadata": metadata });
    Ok(line("BOOKMARK", &serialize(&obj)?))
}
