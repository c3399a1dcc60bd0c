//! Create, get, list, replace and delete; the errors a real apiserver answers; selectors.

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, ResourceExt};

use super::*;
use crate::kube_model::KubeModel;

#[tokio::test(start_paused = true)]
async fn create_get_list_replace_delete() {
    let model = KubeModel::new();
    let client = model.client();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), NS);

    let created = create(&api, &config_map("cm1", &[("a", "1")])).await;
    assert_eq!(created.namespace().as_deref(), Some(NS));
    assert!(created.uid().is_some_and(|u| !u.is_empty()));
    assert!(created.creation_timestamp().is_some());
    assert_eq!(created.meta().generation, Some(1));
    let rv1: u64 = created.resource_version().expect("rv").parse().expect("integer rv");
    assert_eq!(model.len(), 1);

    let got = api.get("cm1").await.expect("get");
    assert_eq!(got, created);

    // AlreadyExists.
    let err = api_error(api.create(&PostParams::default(), &config_map("cm1", &[])).await);
    assert_eq!((err.code, err.reason.as_str()), (409, "AlreadyExists"));

    // NotFound for get, replace and delete; get_opt sees None.
    let err = api_error(api.get("absent").await);
    assert_eq!((err.code, err.reason.as_str()), (404, "NotFound"));
    assert!(api.get_opt("absent").await.expect("get_opt").is_none());
    let err = api_error(api.replace("absent", &PostParams::default(), &config_map("absent", &[])).await);
    assert_eq!(err.code, 404);
    assert_eq!(api_error(api.delete("absent", &DeleteParams::default()).await).code, 404);

    // Replace at the current resourceVersion bumps it; replacing again from the old one conflicts.
    let mut edit = got.clone();
    edit.data = Some([("a".to_string(), "2".to_string())].into());
    let replaced = api.replace("cm1", &PostParams::default(), &edit).await.expect("replace");
    let rv2: u64 = replaced.resource_version().expect("rv").parse().expect("integer rv");
    assert!(rv2 > rv1);
    assert_eq!(replaced.uid(), created.uid());
    assert_eq!(replaced.creation_timestamp(), created.creation_timestamp());
    let err = api_error(api.replace("cm1", &PostParams::default(), &edit).await);
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    assert_eq!(api.get("cm1").await.expect("get").data, replaced.data);
    // Core kinds take an unconditional replace (no resourceVersion).
    edit.metadata.resource_version = None;
    edit.data = Some([("a".to_string(), "3".to_string())].into());
    let replaced = api.replace("cm1", &PostParams::default(), &edit).await.expect("unconditional replace");
    assert_eq!(replaced.data, edit.data);

    // The list carries the current resourceVersion; an all-namespaces list sees other namespaces.
    let other: Api<ConfigMap> = Api::namespaced(client.clone(), "elsewhere");
    create(&other, &config_map("cm2", &[])).await;
    let list = api.list(&ListParams::default()).await.expect("list");
    assert_eq!(list.items.iter().map(|c| c.name_any()).collect::<Vec<_>>(), ["cm1"]);
    assert_eq!(list.metadata.resource_version, Some(model.resource_version().to_string()));
    let all: Api<ConfigMap> = Api::all(client.clone());
    let names: Vec<_> =
        all.list(&ListParams::default()).await.expect("list all").iter().map(|c| c.name_any()).collect();
    assert_eq!(names, ["cm1", "cm2"]);

    // Delete: gone at once without finalizers (a Status answer), and a second delete is 404.
    let deleted = api.delete("cm1", &DeleteParams::default()).await.expect("delete");
    assert!(deleted.is_right(), "no finalizers: deleted at once");
    assert_eq!(api_error(api.get("cm1").await).code, 404);
    assert_eq!(model.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn generate_name_namespaces_and_preconditions() {
    let model = KubeModel::new();
    let client = model.client();

    // Namespaces are cluster-scoped objects; objects may live in namespaces that do not exist.
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns =
        Namespace { metadata: ObjectMeta { name: Some("team-a".into()), ..Default::default() }, ..Default::default() };
    let ns = create(&namespaces, &ns).await;
    assert_eq!(ns.namespace(), None);
    assert_eq!(namespaces.get("team-a").await.expect("get ns").uid(), ns.uid());

    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "team-b");
    let mut cm = config_map("", &[]);
    cm.metadata.name = None;
    cm.metadata.generate_name = Some("gen-".into());
    let a = create(&api, &cm).await;
    let b = create(&api, &cm).await;
    assert!(a.name_any().starts_with("gen-") && a.name_any().len() == 9, "{}", a.name_any());
    assert_ne!(a.name_any(), b.name_any());
    assert_ne!(a.uid(), b.uid());

    // A body naming another namespace than the path is refused.
    let mut wrong = config_map("x", &[]);
    wrong.metadata.namespace = Some("team-c".into());
    assert_eq!(api_error(api.create(&PostParams::default(), &wrong).await).code, 400);

    // Delete preconditions.
    let dp = DeleteParams::default()
        .preconditions(kube::api::Preconditions { resource_version: Some("1".into()), uid: None });
    assert_eq!(api_error(api.delete(&a.name_any(), &dp).await).code, 409);
    let dp = DeleteParams::default()
        .preconditions(kube::api::Preconditions { resource_version: a.resource_version(), uid: a.uid() });
    api.delete(&a.name_any(), &dp).await.expect("delete with preconditions");
    assert_eq!(model.len(), 2);

    // Paths that name no resource are 404 with a Status.
    let req = http::Request::get("/version").body(Vec::new()).expect("request");
    let err = client.request::<serde_json::Value>(req).await.expect_err("no discovery");
    assert!(matches!(err, kube::Error::Api(s) if s.code == 404));
}

#[tokio::test(start_paused = true)]
async fn label_and_field_selectors() {
    let model = KubeModel::new();
    let client = model.client();
    let pools: Api<HotPool> = Api::namespaced(client.clone(), NS);
    let workers: Api<HotPoolWorker> = Api::namespaced(client.clone(), NS);
    let pool1 = create(&pools, &pool("pool1")).await;
    let pool2 = create(&pools, &pool("pool2")).await;
    for (name, owner) in [("w1", &pool1), ("w2", &pool1), ("w3", &pool2)] {
        create(&workers, &worker(name, owner)).await;
    }
    let mut unlabeled = worker("w4", &pool2);
    unlabeled.metadata.labels = None;
    create(&workers, &unlabeled).await;

    let names = |lp: ListParams| {
        let workers = workers.clone();
        async move { workers.list(&lp).await.expect("list").iter().map(|w| w.name_any()).collect::<Vec<_>>() }
    };
    assert_eq!(names(ListParams::default().labels(&format!("{POOL_LABEL}=pool1"))).await, ["w1", "w2"]);
    assert_eq!(names(ListParams::default().labels(&format!("{POOL_LABEL}==pool2"))).await, ["w3"]);
    assert_eq!(names(ListParams::default().labels(&format!("{POOL_LABEL}!=pool1"))).await, ["w3", "w4"]);
    assert_eq!(names(ListParams::default().labels(POOL_LABEL)).await, ["w1", "w2", "w3"]);
    assert_eq!(names(ListParams::default().labels(&format!("!{POOL_LABEL}"))).await, ["w4"]);
    assert_eq!(names(ListParams::default().labels(&format!("{POOL_LABEL} in (pool2,pool9)"))).await, ["w3"]);
    assert_eq!(names(ListParams::default().labels(&format!("{POOL_LABEL} notin (pool2)"))).await, ["w1", "w2", "w4"]);
    assert_eq!(names(ListParams::default().fields("metadata.name=w2")).await, ["w2"]);
    assert_eq!(names(ListParams::default().fields("metadata.namespace=other")).await, Vec::<String>::new());

    // deletecollection with a selector deletes exactly the matches.
    let lp = ListParams::default().labels(&format!("{POOL_LABEL}=pool1"));
    let deleted = workers.delete_collection(&DeleteParams::default(), &lp).await.expect("deletecollection");
    let deleted: Vec<_> = deleted.left().expect("a list").iter().map(|w| w.name_any()).collect();
    assert_eq!(deleted, ["w1", "w2"]);
    assert_eq!(names(ListParams::default()).await, ["w3", "w4"]);
}

#[tokio::test(start_paused = true)]
async fn the_operator_event_recorder_creates_then_patches_an_event() {
    use k8s_openapi::api::events::v1::Event;

    let model = KubeModel::new();
    let client = model.client();
    let claims: Api<HotPoolClaim> = Api::namespaced(client.clone(), NS);
    let c = create(&claims, &claim("c1", "pool1")).await;
    let recorder = crate::runtime::events::EventRecorder::new(client.clone(), Some("pod-1".into()));
    recorder.warning(&c, "NoWorker", "Bind", "no worker available".into()).await;
    recorder.warning(&c, "NoWorker", "Bind", "no worker available".into()).await;

    let events: Api<Event> = Api::namespaced(client, NS);
    let list = events.list(&ListParams::default()).await.expect("list events");
    assert_eq!(list.items.len(), 1, "{list:?}");
    let event = &list.items[0];
    assert_eq!(event.reason.as_deref(), Some("NoWorker"));
    assert_eq!(event.regarding.as_ref().and_then(|r| r.uid.clone()), c.uid());
    assert_eq!(event.series.as_ref().map(|s| s.count), Some(2), "the repeat is a merge patch of the series");
}
