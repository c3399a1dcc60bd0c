//! CRDs against the real kube-apiserver: install, examples, schema rejections, printer columns.

mod support;

use kube::api::{Api, DynamicObject, PostParams};
use kube::discovery::{ApiResource, Discovery};
use serde_json::json;
use support::{TestCtx, kubectl, yaml_docs};

fn api_resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: "fargate.operator.dev".into(),
        version: "v1alpha1".into(),
        api_version: "fargate.operator.dev/v1alpha1".into(),
        kind: kind.into(),
        plural: plural.into(),
    }
}

fn plural_of(kind: &str) -> &'static str {
    match kind {
        "FargateApp" => "fargateapps",
        "DnsFailover" => "dnsfailovers",
        "HotPool" => "hotpools",
        "HotPoolWorker" => "hotpoolworkers",
        "HotPoolClaim" => "hotpoolclaims",
        "AccessPolicy" => "accesspolicies",
        other => panic!("unknown kind {other}"),
    }
}

async fn create(ctx: &TestCtx, doc: &serde_json::Value) -> Result<DynamicObject, kube::Error> {
    let kind = doc["kind"].as_str().expect("kind");
    let ar = api_resource(kind, plural_of(kind));
    // AccessPolicy is cluster-scoped.
    let api: Api<DynamicObject> = match kind {
        "AccessPolicy" => Api::all_with(ctx.client.clone(), &ar),
        _ => Api::namespaced_with(ctx.client.clone(), &ctx.namespace, &ar),
    };
    let obj: DynamicObject = serde_json::from_value(doc.clone()).expect("object");
    api.create(&PostParams::default(), &obj).await
}

#[tokio::test]
async fn crds_install_with_names_short_names_and_status_subresource() {
    let ctx = TestCtx::new("crds-install").await;
    let discovery =
        Discovery::new(ctx.client.clone()).filter(&["fargate.operator.dev"]).run().await.expect("discovery");
    let group = discovery.groups().next().expect("group fargate.operator.dev is served");
    let mut kinds: Vec<String> = group.recommended_resources().into_iter().map(|(ar, _)| ar.kind).collect();
    kinds.sort();
    assert_eq!(kinds, ["AccessPolicy", "DnsFailover", "FargateApp", "HotPool", "HotPoolClaim", "HotPoolWorker"]);
    let scope =
        |kind: &str| group.recommended_resources().into_iter().find(|(ar, _)| ar.kind == kind).map(|(_, c)| c.scope);
    assert_eq!(scope("AccessPolicy"), Some(kube::discovery::Scope::Cluster));
    assert_eq!(scope("FargateApp"), Some(kube::discovery::Scope::Namespaced));
    // Short names resolve through the real discovery (kubectl's RESTMapper).
    for short in ["fa", "dnsf", "hp", "hpw", "hpc", "ap"] {
        let (ok, _, err) = kubectl(&["get", short, "-n", &ctx.namespace], None);
        assert!(ok, "kubectl get {short}: {err}");
    }
    ctx.cleanup().await;
}

#[tokio::test]
async fn every_example_is_accepted() {
    let ctx = TestCtx::new("examples").await;
    let mut seen = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/examples"))
        .expect("examples/")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf8"))
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    files.sort();
    let mut policies = Vec::new();
    for file in files {
        for mut doc in yaml_docs(&format!("examples/{file}")) {
            if doc["kind"] == "AccessPolicy" {
                // Cluster-scoped: a name of this test's own, deleted at the end.
                let name = format!("{}-{}", ctx.namespace, doc["metadata"]["name"].as_str().expect("name"));
                doc["metadata"]["name"] = json!(name);
                policies.push(name);
            }
            let created = create(&ctx, &doc).await.unwrap_or_else(|e| panic!("examples/{file}: rejected: {e}"));
            seen.push(created.types.expect("types").kind);
        }
    }
    for kind in ["FargateApp", "DnsFailover", "HotPool", "HotPoolWorker", "HotPoolClaim", "AccessPolicy"] {
        assert!(seen.iter().any(|k| k == kind), "no example of {kind} in examples/");
    }
    let api: Api<DynamicObject> = Api::all_with(ctx.client.clone(), &api_resource("AccessPolicy", "accesspolicies"));
    for name in policies {
        api.delete(&name, &Default::default()).await.expect("delete the example AccessPolicy");
    }
    ctx.cleanup().await;
}

#[tokio::test]
async fn schema_defaults_are_applied_by_the_apiserver() {
    let ctx = TestCtx::new("defaults").await;
    let doc = json!({
        "apiVersion": "fargate.operator.dev/v1alpha1", "kind": "FargateApp",
        "metadata": {"name": "defaults"},
        "spec": {"cluster": "apps", "cpu": 256, "memory": 512,
                 "containers": [{"name": "web", "image": "nginx", "port": 80}],
                 "network": {"subnets": ["subnet-1"]},
                 "loadBalancer": {"targetGroup": {"vpcId": "vpc-1"}}}
    });
    let obj = create(&ctx, &doc).await.expect("create");
    let spec = &obj.data["spec"];
    assert_eq!(spec["replicas"], 1);
    assert_eq!(spec["replicasPolicy"], "Enforce");
    assert_eq!(spec["cpuArchitecture"], "X86_64");
    assert_eq!(spec["keepTaskDefinitionRevisions"], 5);
    assert_eq!(spec["deployment"]["circuitBreaker"]["enable"], true);
    assert_eq!(spec["deployment"]["circuitBreaker"]["rollback"], true);
    assert_eq!(spec["policy"]["deletion"], "Delete");
    assert_eq!(spec["policy"]["adoption"], "IfTagged");
    assert_eq!(spec["containers"][0]["essential"], true);
    assert_eq!(spec["loadBalancer"]["targetGroup"]["protocol"], "HTTP");
    assert_eq!(spec["loadBalancer"]["targetGroup"]["deregistrationDelaySeconds"], 30);
    ctx.cleanup().await;
}

/// Each invalid manifest must be rejected with a message naming the offending field.
#[tokio::test]
async fn invalid_manifests_are_rejected_naming_the_field() {
    let ctx = TestCtx::new("invalid").await;
    let app = |name: &str, patch: serde_json::Value| {
        let mut doc = json!({
            "apiVersion": "fargate.operator.dev/v1alpha1", "kind": "FargateApp",
            "metadata": {"name": name},
            "spec": {"cluster": "apps", "cpu": 256, "memory": 512,
                     "containers": [{"name": "web", "image": "nginx", "port": 80}],
                     "network": {"subnets": ["subnet-1"]}}
        });
        merge(&mut doc["spec"], &patch);
        doc
    };
    let failover = |name: &str, hc: serde_json::Value| {
        json!({
            "apiVersion": "fargate.operator.dev/v1alpha1", "kind": "DnsFailover",
            "metadata": {"name": name},
            "spec": {"hostedZoneId": "Z1", "name": "a.example.com",
                     "primary": {"target": "p.example.com", "healthCheck": hc},
                     "secondary": {"target": "s.example.com"}}
        })
    };
    let mut missing_cluster = app("missing-cluster", json!({}));
    missing_cluster["spec"].as_object_mut().expect("spec").remove("cluster");
    let cases = vec![
        ("missing required field", missing_cluster, "spec.cluster"),
        ("bad enum", app("bad-enum", json!({"cpuArchitecture": "SPARC"})), "spec.cpuArchitecture"),
        ("bad cpu enum", app("bad-cpu", json!({"cpu": 300})), "spec.cpu"),
        ("out of range", app("bad-replicas", json!({"replicas": -1})), "spec.replicas"),
        (
            "too many containers",
            app(
                "too-many",
                json!({"containers": (0..11).map(|i| json!({"name": format!("c{i}"), "image": "x"})).collect::<Vec<_>>()}),
            ),
            "spec.containers",
        ),
        ("bad subnet id", app("bad-subnet", json!({"network": {"subnets": ["vpc-1"]}})), "spec.network.subnets"),
        (
            "interval not 10|30",
            failover("bad-interval", json!({"type": "HTTPS", "requestIntervalSeconds": 20})),
            "spec.primary.healthCheck.requestIntervalSeconds",
        ),
        (
            "threshold out of range",
            failover("bad-threshold", json!({"type": "HTTPS", "failureThreshold": 11})),
            "spec.primary.healthCheck.failureThreshold",
        ),
        ("bad health check type", failover("bad-type", json!({"type": "ICMP"})), "spec.primary.healthCheck.type"),
        (
            "pool scaleTo out of range",
            json!({
                "apiVersion": "fargate.operator.dev/v1alpha1", "kind": "HotPool", "metadata": {"name": "bad-pool"},
                "spec": {"cluster": "w", "network": {"subnets": ["subnet-1"]},
                         "versions": [{"version": "1", "taskDefinition": "worker:1", "scaleTo": 501, "port": 7000}]}
            }),
            "spec.versions.scaleTo",
        ),
        (
            "claim without client",
            json!({
                "apiVersion": "fargate.operator.dev/v1alpha1", "kind": "HotPoolClaim", "metadata": {"name": "bad-claim"},
                "spec": {"pool": "p", "version": "1"}
            }),
            "spec.client",
        ),
    ];
    for (what, doc, field) in cases {
        match create(&ctx, &doc).await {
            Ok(_) => panic!("{what}: accepted, expected a rejection naming {field}"),
            Err(kube::Error::Api(resp)) => {
                assert_eq!(resp.code, 422, "{what}: {resp:?}");
                assert!(resp.message.contains(field), "{what}: message does not name {field}: {}", resp.message);
            }
            Err(other) => panic!("{what}: unexpected error {other}"),
        }
    }
    ctx.cleanup().await;
}

fn merge(base: &mut serde_json::Value, patch: &serde_json::Value) {
    if let (Some(b), Some(p)) = (base.as_object_mut(), patch.as_object()) {
        for (k, v) in p {
            b.insert(k.clone(), v.clone());
        }
    }
}

#[tokio::test]
async fn printer_columns_show_in_kubectl_get() {
    let ctx = TestCtx::new("columns").await;
    for doc in yaml_docs("examples/fargateapp-minimal.yaml")
        .into_iter()
        .chain(yaml_docs("examples/dnsfailover.yaml"))
        .chain(yaml_docs("examples/hotpool.yaml"))
        .chain(yaml_docs("examples/hotpoolworker.yaml"))
    {
        create(&ctx, &doc).await.expect("create example");
    }
    let expect = [
        ("fa", vec!["NAME", "READY", "DESIRED", "RUNNING", "ROLLOUT", "URL", "AGE"]),
        ("dnsf", vec!["NAME", "READY", "NAME", "MODE", "ACTIVE", "AGE"]),
        ("hp", vec!["NAME", "READY", "AVAILABLE", "CLAIMED", "STARTING", "AGE"]),
        ("hpw", vec!["NAME", "PHASE", "POOL", "VERSION", "IP", "PORT", "CLAIM", "AGE"]),
        ("hpc", vec!["NAME", "READY", "PHASE", "POOL", "VERSION", "WORKER", "IP", "AGE"]),
    ];
    for (short, columns) in expect {
        let (ok, out, err) = kubectl(&["get", short, "-n", &ctx.namespace], None);
        assert!(ok, "kubectl get {short}: {err}");
        let header: Vec<&str> = out.lines().next().unwrap_or_default().split_whitespace().collect();
        assert_eq!(header, columns, "kubectl get {short}:\n{out}");
        assert_eq!(out.lines().count(), 2, "one object listed:\n{out}");
    }
    // The mode column reads the spec, so it is filled before any controller runs.
    let (_, out, _) = kubectl(&["get", "dnsf", "dev-acs", "-n", &ctx.namespace, "--no-headers"], None);
    assert!(out.contains("Auto") && out.contains("dev.acs.app.com"), "{out}");
    ctx.cleanup().await;
}

/// A status write conditional on the resourceVersion a pass read is refused once the object changed
/// (so a pass planned from a stale cache cannot overwrite what the pass before it recorded), and
/// goes through from the version the previous write produced.
#[tokio::test]
async fn a_status_write_from_a_stale_read_is_refused() {
    use fargate_operator::api::{DnsFailover, DnsFailoverStatus};
    use fargate_operator::runtime::status::apply_status_at;
    let ctx = TestCtx::new("crds-stale-status").await;
    let doc = yaml_docs("examples/dnsfailover.yaml").into_iter().find(|d| d["kind"] == "DnsFailover").expect("example");
    let mut doc = doc;
    doc["metadata"] = json!({"name": "stale", "namespace": ctx.namespace});
    create(&ctx, &doc).await.expect("create");
    let api: Api<DnsFailover> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let read = api.get("stale").await.expect("get");
    let first_version = read.metadata.resource_version.clone().expect("resourceVersion");
    let first = DnsFailoverStatus { observed_generation: Some(1), ..Default::default() };
    let written =
        apply_status_at(&api, "stale", &first_version, &first).await.expect("a write from the current version");
    let second = DnsFailoverStatus { observed_generation: Some(2), ..Default::default() };
    match apply_status_at(&api, "stale", &first_version, &second).await {
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        other => panic!("a write from the stale version must be a conflict: {other:?}"),
    }
    let next = written.metadata.resource_version.expect("resourceVersion");
    apply_status_at(&api, "stale", &next, &second).await.expect("a write from the version the last write produced");
    let now = api.get("stale").await.expect("get");
    assert_eq!(now.status.and_then(|s| s.observed_generation), Some(2));
    ctx.cleanup().await;
}

/// A pass whose final status write is refused as stale still lands its inventory changes: what it
/// made is added to, and what it deleted removed from, the newer object's `status.resources`, and
/// what the newer version recorded stays.
#[tokio::test]
async fn a_stale_pass_merges_its_inventory_into_the_newer_object() {
    use fargate_operator::api::{DnsFailover, DnsFailoverStatus, OwnedResource};
    use fargate_operator::controller::{StatusWriter, is_stale_write};
    use fargate_operator::runtime::metrics::Metrics;
    let entry = |id: &str| OwnedResource { type_: "HealthCheck".into(), id: id.into(), parent: None, name: None };
    let ctx = TestCtx::new("crds-merge-inventory").await;
    let mut doc = yaml_docs("examples/dnsfailover.yaml").into_iter().find(|d| d["kind"] == "DnsFailover").expect("ex");
    doc["metadata"] = json!({"name": "merge", "namespace": ctx.namespace});
    create(&ctx, &doc).await.expect("create");
    let api: Api<DnsFailover> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let metrics = Metrics::new();
    let first = StatusWriter::new(&api, &api.get("merge").await.expect("get"), &metrics);
    let recorded = DnsFailoverStatus { resources: vec![entry("kept"), entry("old")], ..Default::default() };
    first.write(&recorded).await.expect("the first write");

    // A pass that read the object before that write: it made `new` and deleted `old`.
    let mut stale_read = api.get("merge").await.expect("get");
    stale_read.status = Some(DnsFailoverStatus { resources: vec![entry("old")], ..Default::default() });
    stale_read.metadata.resource_version = Some("1".into());
    let stale = StatusWriter::new(&api, &stale_read, &metrics);
    let after = DnsFailoverStatus { resources: vec![entry("new")], ..Default::default() };
    let refused = stale.write(&after).await.expect_err("a write from a stale read is refused");
    assert!(is_stale_write(&refused), "{refused:?}");
    let before = DnsFailoverStatus { resources: vec![entry("old")], ..Default::default() };
    stale.merge_into_latest(&before, &after).await.expect("merge");
    let now = api.get("merge").await.expect("get").status.expect("status").resources;
    let ids: Vec<&str> = now.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["kept", "new"], "made: added; deleted: removed; the newer object's own entries kept");
    ctx.cleanup().await;
}

/// Recording an inventory that is already recorded still fences the AWS write after it: refused
/// once the spec changed since the pass read the object (a pass planned from the old spec must not
/// put back a record the new spec removed), allowed after a change of metadata only.
#[tokio::test]
async fn recording_an_unchanged_inventory_is_refused_once_the_spec_changed() {
    use fargate_operator::api::{DnsFailover, OwnedResource};
    use fargate_operator::controller::StatusWriter;
    use fargate_operator::runtime::metrics::Metrics;
    use kube::api::{Patch, PatchParams};
    let ctx = TestCtx::new("crds-fence").await;
    let mut doc = yaml_docs("examples/dnsfailover.yaml").into_iter().find(|d| d["kind"] == "DnsFailover").expect("ex");
    doc["metadata"] = json!({"name": "fence", "namespace": ctx.namespace});
    create(&ctx, &doc).await.expect("create");
    let api: Api<DnsFailover> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let metrics = Metrics::new();
    let entry =
        OwnedResource { type_: "Record".into(), id: "Z1/www.example.com/CNAME".into(), parent: None, name: None };
    StatusWriter::new(&api, &api.get("fence").await.expect("get"), &metrics)
        .record_resources(std::slice::from_ref(&entry))
        .await
        .expect("the first record");

    let read = api.get("fence").await.expect("get");
    let pass = StatusWriter::new(&api, &read, &metrics);
    let label = json!({"metadata": {"labels": {"team": "a"}}});
    api.patch("fence", &PatchParams::default(), &Patch::Merge(&label)).await.expect("label");
    pass.record_resources(std::slice::from_ref(&entry)).await.expect("a change of metadata only: still fenced in");

    assert!(pass.changed_since_read().await.expect("read").is_none(), "after the write: unchanged");

    let edit = json!({"spec": {"mode": "ForceSecondary"}});
    api.patch("fence", &PatchParams::default(), &Patch::Merge(&edit)).await.expect("edit the spec");
    let refused = pass.record_resources(std::slice::from_ref(&entry)).await.expect_err("the spec changed");
    assert_eq!(refused.code, "StaleObject", "{refused:?}");
    // A write already sent learns of the edit, and reads the spec it must check against.
    let now = pass.changed_since_read().await.expect("read").expect("changed").expect("still there");
    assert_eq!(now.spec.mode, fargate_operator::api::dns_failover::FailoverMode::ForceSecondary);
    api.delete("fence", &Default::default()).await.expect("delete");
    let gone = pass.changed_since_read().await.expect("read").expect("changed");
    assert!(gone.is_none() || gone.is_some_and(|o| o.metadata.deletion_timestamp.is_some()), "deleted");
    ctx.cleanup().await;
}

/// A create recorded in the middle of a pass (before it is sent) also records where it is made
/// (`status.aws`), so a process that dies before the pass's final write still knows which account
/// and region the inventory belongs to.
#[tokio::test]
async fn a_mid_pass_record_carries_the_spec_aws_it_was_made_with() {
    use fargate_operator::api::{DnsFailover, OwnedResource};
    use fargate_operator::controller::StatusWriter;
    use fargate_operator::runtime::metrics::Metrics;
    let ctx = TestCtx::new("crds-made-with").await;
    let mut doc = yaml_docs("examples/dnsfailover.yaml").into_iter().find(|d| d["kind"] == "DnsFailover").expect("ex");
    doc["metadata"] = json!({"name": "made", "namespace": ctx.namespace});
    doc["spec"]["aws"] = json!({"region": "eu-west-1"});
    create(&ctx, &doc).await.expect("create");
    let api: Api<DnsFailover> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let metrics = Metrics::new();
    let writer = StatusWriter::new(&api, &api.get("made").await.expect("get"), &metrics);
    let entry = OwnedResource { type_: "HealthCheck".into(), id: "planned:x".into(), parent: None, name: None };
    writer.record_resources(&[entry]).await.expect("record");
    let status = api.get("made").await.expect("get").status.expect("status");
    assert_eq!(status.resources.len(), 1);
    assert_eq!(status.aws.and_then(|a| a.region).as_deref(), Some("eu-west-1"));
    ctx.cleanup().await;
}

/// A status write refused only because metadata changed since the pass read the object (an
/// annotation, a label) goes through at the new version: the pass's status is still the truth for
/// the same generation and the same prior status. One that raced another status write is still
/// refused. Without this, an object whose metadata changes more often than a pass takes never got
/// its status, and each pass re-created what the last one made (found by the simulator).
#[tokio::test]
async fn a_status_write_survives_a_metadata_only_change_but_not_another_status_write() {
    use fargate_operator::api::{DnsFailover, DnsFailoverStatus};
    use fargate_operator::controller::{StatusWriter, is_stale_write};
    use fargate_operator::runtime::metrics::Metrics;
    use fargate_operator::runtime::status::apply_status_at;
    use kube::api::{Patch, PatchParams};
    let ctx = TestCtx::new("crds-metadata-change").await;
    let mut doc = yaml_docs("examples/dnsfailover.yaml").into_iter().find(|d| d["kind"] == "DnsFailover").expect("ex");
    doc["metadata"] = json!({"name": "meta", "namespace": ctx.namespace});
    create(&ctx, &doc).await.expect("create");
    let api: Api<DnsFailover> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let metrics = Metrics::new();
    let annotate = |n: u32| json!({"metadata": {"annotations": {"example.com/touched": n.to_string()}}});

    let writer = StatusWriter::new(&api, &api.get("meta").await.expect("get"), &metrics);
    api.patch("meta", &PatchParams::default(), &Patch::Merge(annotate(1))).await.expect("annotate");
    let ours = DnsFailoverStatus { observed_generation: Some(1), ..Default::default() };
    writer.write(&ours).await.expect("only metadata changed: the write goes through");
    assert_eq!(api.get("meta").await.expect("get").status, Some(ours));

    let late = StatusWriter::new(&api, &api.get("meta").await.expect("get"), &metrics);
    let version = api.get("meta").await.expect("get").metadata.resource_version.expect("resourceVersion");
    let theirs = DnsFailoverStatus { observed_generation: Some(7), ..Default::default() };
    apply_status_at(&api, "meta", &version, &theirs).await.expect("another writer");
    let refused = late.write(&DnsFailoverStatus::default()).await.expect_err("the status changed under it");
    assert!(is_stale_write(&refused), "{refused:?}");
    assert_eq!(api.get("meta").await.expect("get").status, Some(theirs), "the other write is kept");
    ctx.cleanup().await;
}

/// `kubectl apply --server-side` of a manifest without an optional block removes the block, even
/// though the apiserver filled defaults into it: such blocks are atomic (`x-kubernetes-map-type`),
/// so the defaults belong to whoever applied the block. Before, the defaults stayed behind and the
/// apply was refused for the block's missing required fields (found by the simulator).
#[tokio::test]
async fn a_server_side_apply_without_an_optional_block_removes_it() {
    use kube::api::{Patch, PatchParams};
    let ctx = TestCtx::new("crds-ssa-remove").await;
    let apply = |doc: &serde_json::Value| {
        let kind = doc["kind"].as_str().expect("kind").to_string();
        let ar = api_resource(&kind, plural_of(&kind));
        let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &ctx.namespace, &ar);
        let name = doc["metadata"]["name"].as_str().expect("name").to_string();
        let doc = doc.clone();
        async move { api.patch(&name, &PatchParams::apply("kubectl").force(), &Patch::Apply(&doc)).await }
    };
    let mut app =
        yaml_docs("examples/fargateapp-full.yaml").into_iter().find(|d| d["kind"] == "FargateApp").expect("ex");
    app["metadata"] = json!({"name": "web", "namespace": ctx.namespace});
    let mut failover =
        yaml_docs("examples/dnsfailover.yaml").into_iter().find(|d| d["kind"] == "DnsFailover").expect("ex");
    failover["metadata"] = json!({"name": "dr", "namespace": ctx.namespace});
    for doc in [&app, &failover] {
        apply(doc).await.expect("apply with every block");
    }
    let blocks = [(&mut app, vec!["dns"], "dns"), (&mut failover, vec!["delegation"], "delegation")];
    for (doc, path, block) in blocks {
        doc["spec"].as_object_mut().expect("spec").remove(path[0]);
        let applied = apply(doc).await.unwrap_or_else(|e| panic!("apply without {block}: {e}"));
        assert!(applied.data["spec"].get(block).is_none(), "{block} removed: {}", applied.data["spec"]);
    }
    let mut app =
        yaml_docs("examples/fargateapp-full.yaml").into_iter().find(|d| d["kind"] == "FargateApp").expect("ex");
    app["metadata"] = json!({"name": "web", "namespace": ctx.namespace});
    app["spec"]["loadBalancer"].as_object_mut().expect("loadBalancer").remove("listenerRule");
    app["spec"]["loadBalancer"]["targetGroup"]["vpcId"] = json!("vpc-0abc");
    app["spec"].as_object_mut().expect("spec").remove("dns");
    let applied = apply(&app).await.expect("apply without the listener rule");
    assert!(applied.data["spec"]["loadBalancer"].get("listenerRule").is_none(), "{}", applied.data["spec"]);
    ctx.cleanup().await;
}
