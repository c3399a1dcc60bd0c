//! Watches: raw watch streams, kube-runtime's watcher and reflector, 410 Expired, timeouts.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, WatchEvent, WatchParams};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, reflector};
use kube::{Api, ResourceExt};
use serde_json::json;
use tokio::time::Instant;

use super::*;
use crate::kube_model::KubeModel;

/// A short description of a watcher event, to compare sequences.
fn describe(event: &Event<HotPoolClaim>) -> String {
    match event {
        Event::Init => "Init".into(),
        Event::InitApply(o) => format!("InitApply {}", o.name_any()),
        Event::InitDone => "InitDone".into(),
        Event::Apply(o) => format!("Apply {} {}", o.name_any(), o.spec.client),
        Event::Delete(o) => format!("Delete {}", o.name_any()),
    }
}

async fn next<S>(stream: &mut S) -> String
where
    S: futures::Stream<Item = Result<Event<HotPoolClaim>, watcher::Error>> + Unpin,
{
    match tokio::time::timeout(Duration::from_secs(30), stream.next()).await {
        Ok(Some(Ok(event))) => describe(&event),
        Ok(Some(Err(watcher::Error::WatchError(status)))) => format!("Err {} {}", status.code, status.reason),
        Ok(Some(Err(e))) => format!("Err {e}"),
        Ok(None) => "End".into(),
        Err(_) => "Timeout".into(),
    }
}

/// The next raw watch event (`None` at the end); panics after an hour of virtual time.
async fn next_raw<S>(stream: &mut S) -> Option<WatchEvent<HotPoolClaim>>
where
    S: futures::Stream<Item = kube::Result<WatchEvent<HotPoolClaim>>> + Unpin,
{
    match tokio::time::timeout(Duration::from_secs(3600), stream.try_next()).await {
        Ok(item) => item.expect("a watch event"),
        Err(_) => panic!("no watch event within an hour"),
    }
}

#[tokio::test(start_paused = true)]
async fn watcher_sees_events_in_order() {
    let model = KubeModel::new();
    let api: Api<HotPoolClaim> = Api::namespaced(model.client(), NS);
    create(&api, &claim("a", "pool1")).await;
    let mut events = watcher::watcher(api.clone(), watcher::Config::default().any_semantic()).boxed();
    for expected in ["Init", "InitApply a", "InitDone"] {
        assert_eq!(next(&mut events).await, expected);
    }
    create(&api, &claim("b", "pool1")).await;
    let patch = json!({ "spec": { "client": "client-2" } });
    api.patch("a", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("patch");
    api.delete("b", &DeleteParams::default()).await.expect("delete");
    for expected in ["Apply b client-1", "Apply a client-2", "Delete b"] {
        assert_eq!(next(&mut events).await, expected);
    }
    assert_eq!(next(&mut events).await, "Timeout", "nothing more");
}

#[tokio::test(start_paused = true)]
async fn reflector_converges_to_the_listed_state() {
    let model = KubeModel::new();
    let api: Api<HotPoolClaim> = Api::namespaced(model.client(), NS);
    for name in ["a", "b", "c"] {
        create(&api, &claim(name, "pool1")).await;
    }
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher::watcher(api.clone(), watcher::Config::default()));
    let task = tokio::spawn(stream.applied_objects().for_each(|_| async {}));
    reader.wait_until_ready().await.expect("ready");

    api.delete("b", &DeleteParams::default()).await.expect("delete");
    create(&api, &claim("d", "pool1")).await;
    let patch = json!({ "spec": { "client": "client-9" } });
    api.patch("c", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("patch");

    let listed = api.list(&ListParams::default()).await.expect("list");
    let want: Vec<(String, Option<String>)> = listed.iter().map(|c| (c.name_any(), c.resource_version())).collect();
    let start = Instant::now();
    loop {
        let mut have: Vec<_> = reader.state().iter().map(|c| (c.name_any(), c.resource_version())).collect();
        have.sort();
        if have == want {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "store {have:?} never reached {want:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    task.abort();
}

#[tokio::test(start_paused = true)]
async fn expired_resource_version_and_watcher_recovery() {
    let model = KubeModel::with_event_log(4);
    let api: Api<HotPoolClaim> = Api::namespaced(model.client(), NS);
    for i in 0..6 {
        create(&api, &claim(&format!("c{i}"), "pool1")).await;
    }

    // A raw watch from resourceVersion 1, older than the log keeps: one ERROR 410, then the end.
    let mut raw = api.watch(&WatchParams::default(), "1").await.expect("watch").boxed();
    match next_raw(&mut raw).await {
        Some(WatchEvent::Error(status)) => assert_eq!((status.code, status.reason.as_str()), (410, "Expired")),
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }
    assert!(next_raw(&mut raw).await.is_none());

    // From a recent resourceVersion, the logged events after it are replayed.
    let rv = (model.resource_version() - 2).to_string();
    let mut raw = api.watch(&WatchParams::default(), &rv).await.expect("watch").boxed();
    for name in ["c4", "c5"] {
        match next_raw(&mut raw).await {
            Some(WatchEvent::Added(c)) => assert_eq!(c.name_any(), name),
            other => panic!("expected ADDED {name}, got {other:?}"),
        }
    }

    // A watcher whose watch falls behind the log gets the 410 and lists again.
    let mut events = watcher::watcher(api.clone(), watcher::Config::default()).boxed();
    let mut initial = Vec::new();
    for _ in 0..8 {
        initial.push(next(&mut events).await);
    }
    assert_eq!(initial.first().map(String::as_str), Some("Init"));
    assert_eq!(initial.last().map(String::as_str), Some("InitDone"));
    for i in 0..6 {
        api.delete(&format!("c{i}"), &DeleteParams::default()).await.expect("delete");
    }
    create(&api, &claim("z", "pool1")).await;
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(next(&mut events).await);
    }
    assert_eq!(seen, ["Err 410 Expired", "Init", "InitApply z", "InitDone"]);
}

#[tokio::test(start_paused = true)]
async fn watch_timeout_ends_with_a_bookmark() {
    let model = KubeModel::new();
    let api: Api<HotPoolClaim> = Api::namespaced(model.client(), NS);
    create(&api, &claim("a", "pool1")).await;
    let rv = model.resource_version().to_string();
    let start = Instant::now();
    let mut raw = api.watch(&WatchParams::default().timeout(10), &rv).await.expect("watch").boxed();
    match next_raw(&mut raw).await {
        Some(WatchEvent::Bookmark(b)) => assert_eq!(b.metadata.resource_version, rv),
        other => panic!("expected a BOOKMARK, got {other:?}"),
    }
    assert!(next_raw(&mut raw).await.is_none());
    assert_eq!(start.elapsed(), Duration::from_secs(10));

    // Without bookmarks the stream just ends; from "0" it starts with the current objects.
    let mut wp = WatchParams::default().timeout(5);
    wp.bookmarks = false;
    let mut raw = api.watch(&wp, "0").await.expect("watch").boxed();
    assert!(matches!(next_raw(&mut raw).await, Some(WatchEvent::Added(c)) if c.name_any() == "a"));
    assert!(next_raw(&mut raw).await.is_none());
    assert_eq!(start.elapsed(), Duration::from_secs(15));
}

#[tokio::test(start_paused = true)]
async fn label_selected_watch_sees_objects_enter_and_leave() {
    let model = KubeModel::new();
    let api: Api<HotPoolClaim> = Api::namespaced(model.client(), NS);
    create(&api, &claim("a", "pool1")).await;
    let rv = model.resource_version().to_string();
    let wp = WatchParams::default().labels("team=x").timeout(60);
    let mut raw = api.watch(&wp, &rv).await.expect("watch").boxed();
    for team in ["x", "y"] {
        let patch = json!({ "metadata": { "labels": { "team": team } } });
        api.patch("a", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("label");
    }
    assert!(matches!(next_raw(&mut raw).await, Some(WatchEvent::Added(_))));
    assert!(matches!(next_raw(&mut raw).await, Some(WatchEvent::Deleted(_))));
}
