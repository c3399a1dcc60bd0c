//! `fargate-operator run` as a user runs it: the real binary against the real apiserver. It starts,
//! elects a leader, serves metrics and health, validates objects into status and Events, hands
//! leadership over, and shuts down cleanly on SIGTERM.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fargate_operator::api::FargateApp;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::wait::await_condition;
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use support::{TestCtx, kubeconfig_path};

const WAIT: Duration = Duration::from_secs(60);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

struct Operator {
    child: Child,
    port: u16,
}

impl Operator {
    fn start(ctx: &TestCtx, identity: &str) -> Self {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_fargate-operator"))
            .arg("run")
            .env("KUBECONFIG", kubeconfig_path())
            .env("FARGATE_OPERATOR_CLUSTER_ID", "test")
            .env("FARGATE_OPERATOR_NAMESPACE", &ctx.namespace)
            .env("FARGATE_OPERATOR_LEADER_ELECT", "true")
            .env("FARGATE_OPERATOR_LEADER_ELECTION_NAMESPACE", &ctx.namespace)
            .env("FARGATE_OPERATOR_LEASE_DURATION_SECONDS", "5")
            .env("FARGATE_OPERATOR_IDENTITY", identity)
            .env("FARGATE_OPERATOR_METRICS_ADDR", format!("127.0.0.1:{port}"))
            .env("FARGATE_OPERATOR_REGION", support::REGION)
            .env("FARGATE_OPERATOR_AWS_ENDPOINT_URL", support::aws_endpoint())
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("FARGATE_OPERATOR_LOG_FORMAT", "json")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start fargate-operator");
        let mut op = Self { child, port };
        op.wait_http_ok("/readyz");
        op
    }

    fn get(&self, path: &str) -> Option<(u16, String)> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        let code = out.split_whitespace().nth(1)?.parse().ok()?;
        let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
        Some((code, body))
    }

    /// Poll an HTTP endpoint (there is nothing to watch for a process's own port).
    fn wait_http_ok(&mut self, path: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some((200, _)) = self.get(path) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("fargate-operator exited early: {status}");
            }
            assert!(Instant::now() < deadline, "{path} not 200 within {WAIT:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn metric(&self, line_prefix: &str) -> Option<f64> {
        let (_, body) = self.get("/metrics")?;
        body.lines().find(|l| l.starts_with(line_prefix))?.rsplit(' ').next()?.parse().ok()
    }

    /// Poll a metric until `want` (a process's own port has nothing to watch).
    fn wait_metric(&mut self, line_prefix: &str, want: f64, what: &str) {
        let deadline = Instant::now() + WAIT;
        while self.metric(line_prefix) != Some(want) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("fargate-operator exited while waiting until {what}: {status}");
            }
            assert!(Instant::now() < deadline, "not {what} within {WAIT:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill").arg(format!("-{sig}")).arg(self.child.id().to_string()).status().expect("kill");
        assert!(ok.success());
    }

    fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "fargate-operator did not exit within 30s of the signal");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn wait_holder(ctx: &TestCtx, want: Option<&str>) {
    let api: Api<Lease> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let want = want.map(str::to_string);
    let cond = move |l: Option<&Lease>| {
        let holder = l.and_then(|l| l.spec.as_ref()).and_then(|s| s.holder_identity.clone()).filter(|h| !h.is_empty());
        holder == want
    };
    tokio::time::timeout(WAIT, await_condition(api, "fargate-operator", cond))
        .await
        .expect("lease holder did not become the expected one")
        .expect("watch lease");
}

async fn wait_app(ctx: &TestCtx, name: &str, what: &str, cond: impl Fn(&FargateApp) -> bool) -> FargateApp {
    let api: Api<FargateApp> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let found =
        tokio::time::timeout(WAIT, await_condition(api, name, move |o: Option<&FargateApp>| o.is_some_and(&cond)))
            .await
            .unwrap_or_else(|_| panic!("{name}: {what} not reached within {WAIT:?}"))
            .expect("watch");
    found.expect("object")
}

fn condition<'a>(
    app: &'a FargateApp,
    type_: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    app.status.as_ref()?.conditions.iter().find(|c| c.type_ == type_)
}

/// An app in the test's own (empty) moto account, so nothing another test or `make demo` created in
/// a shared account can change the outcome: there is no ECS cluster "apps" there.
fn app_manifest(ctx: &TestCtx, name: &str, memory: i32) -> FargateApp {
    serde_json::from_value(json!({
        "apiVersion": "fargate.operator.dev/v1alpha1", "kind": "FargateApp",
        "metadata": {"name": name},
        "spec": {"cluster": "apps", "cpu": 256, "memory": memory,
                 "containers": [{"name": "web", "image": "nginx", "port": 80}],
                 "network": {"subnets": ["subnet-1"]},
                 "aws": ctx.aws_override()}
    }))
    .expect("manifest")
}

#[tokio::test]
async fn run_leads_validates_into_status_and_shuts_down_cleanly() {
    let ctx = TestCtx::new("run").await;
    let mut op = Operator::start(&ctx, "op-a");
    wait_holder(&ctx, Some("op-a")).await;
    op.wait_http_ok("/healthz");

    let apps: Api<FargateApp> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let events: Api<Event> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let event_stream = watcher(events, watcher::Config::default()).applied_objects().boxed();

    // cpu 256 with memory 4096 passes the 1.20 schema (CEL is ignored there) but not our validation.
    apps.create(&PostParams::default(), &app_manifest(&ctx, "bad", 4096)).await.expect("create bad");
    apps.create(&PostParams::default(), &app_manifest(&ctx, "good", 512)).await.expect("create good");

    let bad =
        wait_app(&ctx, "bad", "Degraded=True", |a| condition(a, "Degraded").is_some_and(|c| c.status == "True")).await;
    let degraded = condition(&bad, "Degraded").expect("Degraded");
    assert_eq!(degraded.reason, "InvalidSpec");
    assert!(degraded.message.contains("spec.memory"), "{}", degraded.message);
    assert!(degraded.message.contains("use 512, 1024, 2048"), "the message says what to use: {}", degraded.message);
    let last_error = bad.status.as_ref().and_then(|s| s.last_error.as_ref()).expect("lastError");
    assert_eq!(last_error.code, "InvalidSpec");
    assert_eq!(bad.status.as_ref().and_then(|s| s.observed_generation), bad.metadata.generation);

    // A valid spec reaches AWS; the ECS cluster "apps" does not exist in this account, which is a
    // problem a human must fix, reported against the field.
    let good = wait_app(&ctx, "good", "Degraded reported", |a| condition(a, "Degraded").is_some()).await;
    let degraded = condition(&good, "Degraded").expect("Degraded");
    assert_eq!((degraded.status.as_str(), degraded.reason.as_str()), ("True", "ClusterNotFound"), "{degraded:?}");
    assert!(degraded.message.contains("spec.cluster"), "{}", degraded.message);
    assert_eq!(condition(&good, "Ready").map(|c| c.status.as_str()), Some("False"), "status must not claim readiness");

    // A Warning Event names the field.
    let event = tokio::time::timeout(
        WAIT,
        event_stream
            .try_filter(|e| {
                let hit = e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("bad")
                    && e.reason.as_deref() == Some("InvalidSpec");
                futures::future::ready(hit)
            })
            .next(),
    )
    .await
    .expect("InvalidSpec Event within 60s")
    .expect("stream")
    .expect("event");
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    assert!(event.note.unwrap_or_default().contains("spec.memory"));

    // Fixing the spec moves the object past validation, on to the missing cluster.
    apps.patch("bad", &PatchParams::default(), &Patch::Merge(json!({"spec": {"memory": 512}}))).await.expect("fix");
    let fixed = wait_app(&ctx, "bad", "past validation", |a| {
        condition(a, "Degraded").is_some_and(|c| c.reason == "ClusterNotFound")
    })
    .await;
    assert_eq!(fixed.status.as_ref().and_then(|s| s.observed_generation), fixed.metadata.generation);

    assert_eq!(op.metric("fargate_operator_leader "), Some(1.0));
    let reconciles = op.metric(r#"fargate_operator_reconciles_total{kind="FargateApp"}"#);
    assert!(reconciles.unwrap_or(0.0) >= 3.0, "reconciles: {reconciles:?}");
    let writes = op.metric(r#"fargate_operator_status_writes_total{kind="FargateApp"}"#);
    assert!(writes.unwrap_or(0.0) >= 3.0, "status writes: {writes:?}");

    op.signal("TERM");
    let status = op.wait_exit();
    assert!(status.success(), "SIGTERM must end in a clean exit, got {status}");
    // The lease is released on the way out, so a standby need not wait for it to expire.
    wait_holder(&ctx, None).await;
    ctx.cleanup().await;
}

#[tokio::test]
async fn standby_takes_over_when_the_leader_dies() {
    let ctx = TestCtx::new("failover").await;
    let leader = Operator::start(&ctx, "op-a");
    wait_holder(&ctx, Some("op-a")).await;
    let mut standby = Operator::start(&ctx, "op-b");
    // The standby serves health and metrics but runs no controllers.
    assert_eq!(standby.metric("fargate_operator_leader "), Some(0.0));
    assert_eq!(standby.metric(r#"fargate_operator_reconciles_total{kind="FargateApp"}"#), None);

    // kill -9: no release, so the standby must wait out the 5 s lease.
    leader.signal("KILL");
    drop(leader);
    wait_holder(&ctx, Some("op-b")).await;
    let apps: Api<FargateApp> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    apps.create(&PostParams::default(), &app_manifest(&ctx, "after-failover", 512)).await.expect("create");
    wait_app(&ctx, "after-failover", "reconciled by the new leader", |a| condition(a, "Ready").is_some()).await;
    assert_eq!(standby.metric("fargate_operator_leader "), Some(1.0));

    standby.signal("TERM");
    assert!(standby.wait_exit().success());
    ctx.cleanup().await;
}

#[tokio::test]
async fn a_leader_that_loses_the_lease_stands_by_and_leads_again_in_the_same_process() {
    let ctx = TestCtx::new("relead").await;
    let mut op = Operator::start(&ctx, "op-a");
    wait_holder(&ctx, Some("op-a")).await;
    op.wait_metric("fargate_operator_leader ", 1.0, "leading");

    // Another holder with a fresh renewal, as after an apiserver outage longer than the lease in
    // which a standby took over: op-a must stop its controllers, and not exit.
    let leases: Api<Lease> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(k8s_openapi::jiff::Timestamp::now());
    leases
        .patch(
            "fargate-operator",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"holderIdentity": "intruder", "renewTime": now, "acquireTime": now}})),
        )
        .await
        .expect("take the lease");
    op.wait_metric("fargate_operator_leader ", 0.0, "standing by after losing the lease");

    // The intruder never renews: once its lease expires, op-a takes it back in the same process.
    wait_holder(&ctx, Some("op-a")).await;
    op.wait_metric("fargate_operator_leader ", 1.0, "leading again");
    let apps: Api<FargateApp> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    apps.create(&PostParams::default(), &app_manifest(&ctx, "second-term", 512)).await.expect("create");
    wait_app(&ctx, "second-term", "reconciled in the second term", |a| condition(a, "Ready").is_some()).await;

    op.signal("TERM");
    assert!(op.wait_exit().success());
    ctx.cleanup().await;
}
