//! The FargateApp test harness: one test's namespace, AWS account, fixtures and running operator,
//! the full example pointed at them, and watches that wait for a status.

use std::time::Duration;

use aws_config::SdkConfig;
use fargate_operator::api::FargateApp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use serde::Serialize;
use serde_json::{Value, json};

use super::TestCtx;
use super::fixtures::{self, Fixtures};
use super::operator::InProcessOperator;

/// How long any status transition may take.
pub const WAIT: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

/// One test's world: namespace + account, AWS fixtures, and a running operator.
pub struct Setup {
    pub ctx: TestCtx,
    pub cfg: SdkConfig,
    pub fx: Fixtures,
    pub op: InProcessOperator,
    pub api: Api<FargateApp>,
}

impl Setup {
    pub async fn new(name: &str) -> Self {
        Self::with_faults(name, "").await
    }

    /// A setup whose operator injects AWS faults (`aws::faults` syntax).
    pub async fn with_faults(name: &str, faults: &str) -> Self {
        Self::with_flags(name, faults, &[]).await
    }

    /// A setup whose operator injects `faults` and runs with the extra flags `extra`.
    pub async fn with_flags(name: &str, faults: &str, extra: &[&str]) -> Self {
        let ctx = TestCtx::new(name).await;
        let cfg = ctx.sdk_config().await;
        let fx = fixtures::standard(&cfg).await;
        let op = InProcessOperator::start_with(&ctx, faults, extra).await;
        let api = Api::namespaced(ctx.client.clone(), &ctx.namespace);
        Self { ctx, cfg, fx, op, api }
    }

    /// examples/fargateapp-full.yaml as JSON, pointed at this test's fixtures and account:
    /// subnets, security group, listener, zone (record `<name>.apps.example.com`), cluster (by ARN)
    /// and `spec.aws`.
    pub fn app_json(&self, name: &str) -> Value {
        let mut v = super::yaml_docs("examples/fargateapp-full.yaml")
            .into_iter()
            .find(|d| d["kind"] == "FargateApp")
            .expect("examples/fargateapp-full.yaml holds a FargateApp");
        v["metadata"] = json!({"name": name, "namespace": self.ctx.namespace});
        let spec = &mut v["spec"];
        spec["cluster"] = json!(self.fx.cluster_arn);
        spec["network"]["subnets"] = json!(self.fx.net.subnets);
        spec["network"]["securityGroups"] = json!([self.fx.net.security_group]);
        spec["loadBalancer"]["listenerRule"]["listenerArn"] = json!(self.fx.alb.listener_arn);
        spec["dns"]["hostedZoneId"] = json!(self.fx.zone_id);
        spec["dns"]["name"] = json!(format!("{name}.{}", fixtures::ZONE));
        spec["aws"] = serde_json::to_value(self.ctx.aws_override()).expect("spec.aws");
        v
    }

    pub async fn create(&self, app: Value) -> FargateApp {
        let app: FargateApp = serde_json::from_value(app).expect("a valid FargateApp");
        self.api.create(&PostParams::default(), &app).await.unwrap_or_else(|e| panic!("create {}: {e}", app.name_any()))
    }

    pub async fn merge_patch(&self, name: &str, patch: &(impl Serialize + std::fmt::Debug)) -> FargateApp {
        self.api
            .patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .unwrap_or_else(|e| panic!("patch {name}: {e}"))
    }

    pub async fn finish(self) {
        assert!(!self.op.is_finished(), "the operator must still be running at the end of the test");
        self.op.stop().await;
        self.ctx.cleanup().await;
    }
}

pub fn condition<'a>(app: &'a FargateApp, type_: &str) -> Option<&'a Condition> {
    app.status.as_ref()?.conditions.iter().find(|c| c.type_ == type_)
}

/// Status describes the current spec.
pub fn current(app: &FargateApp) -> bool {
    app.status.as_ref().and_then(|s| s.observed_generation).is_some()
        && app.status.as_ref().and_then(|s| s.observed_generation) == app.metadata.generation
}

pub fn status_json(app: Option<&FargateApp>) -> String {
    app.map(|a| serde_json::to_string_pretty(&a.status).unwrap_or_default()).unwrap_or_else(|| "<object gone>".into())
}

/// Wait (watch, 120 s) until `cond` holds for the object; panic with its last status otherwise.
pub async fn wait_app(
    api: &Api<FargateApp>,
    name: &str,
    what: &str,
    cond: impl Fn(&FargateApp) -> bool + Send + 'static,
) -> FargateApp {
    match tokio::time::timeout(
        WAIT,
        await_condition(api.clone(), name, move |o: Option<&FargateApp>| o.is_some_and(&cond)),
    )
    .await
    {
        Ok(found) => found.expect("watch FargateApp").expect("object"),
        Err(_) => {
            let last = api.get_opt(name).await.ok().flatten();
            panic!("{name}: {what} not reached within {WAIT:?}; last status: {}", status_json(last.as_ref()))
        }
    }
}

/// Wait until condition `type_` has `status` (and `reason`, when given) for the current generation.
pub async fn wait_condition(
    api: &Api<FargateApp>,
    name: &str,
    type_: &'static str,
    status: &'static str,
    reason: Option<&'static str>,
) -> FargateApp {
    let what =
        format!("{type_}={status}{} at the current generation", reason.map(|r| format!(" ({r})")).unwrap_or_default());
    wait_app(api, name, &what, move |a| {
        current(a) && condition(a, type_).is_some_and(|c| c.status == status && reason.is_none_or(|r| c.reason == r))
    })
    .await
}

pub async fn wait_synced(api: &Api<FargateApp>, name: &str) -> FargateApp {
    wait_condition(api, name, "Synced", "True", None).await
}

pub async fn wait_deleted(api: &Api<FargateApp>, name: &str, uid: &str) {
    if tokio::time::timeout(WAIT, await_condition(api.clone(), name, conditions::is_deleted(uid))).await.is_err() {
        let last = api.get_opt(name).await.ok().flatten();
        panic!("{name} not deleted within {WAIT:?}; last status: {}", status_json(last.as_ref()));
    }
}

pub fn status_of(app: &FargateApp) -> fargate_operator::api::FargateAppStatus {
    app.status.clone().expect("status")
}
