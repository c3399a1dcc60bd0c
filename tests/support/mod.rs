//! Test support: the real local environment (etcd + kube-apiserver + moto from `hack/`), started
//! once or reused, with a namespace and an AWS account of its own for each test so tests run in
//! parallel without seeing each other.
#![allow(dead_code)]

pub mod app;
pub mod fixtures;
pub mod operator;
pub mod pool;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Once;
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use fargate_operator::api::{AwsOverride, crds};
use fargate_operator::aws::AwsProvider;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, Config};

/// kube-apiserver's loopback port (hack/lib.sh; `FARGATE_OPERATOR_APISERVER_PORT` overrides).
pub fn apiserver_port() -> u16 {
    port_from_env("FARGATE_OPERATOR_APISERVER_PORT", 16443)
}

/// moto's loopback port (hack/lib.sh; `FARGATE_OPERATOR_MOTO_PORT` overrides).
pub fn moto_port() -> u16 {
    port_from_env("FARGATE_OPERATOR_MOTO_PORT", 15000)
}

fn port_from_env(var: &str, default: u16) -> u16 {
    std::env::var(var).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}
/// Region every test uses.
pub const REGION: &str = "us-east-1";

/// The cache directory the hack/ scripts use.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("FARGATE_OPERATOR_CACHE").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into())).join(".cache/fargate-operator")
    })
}

/// The kubeconfig hack/env-up.sh writes.
pub fn kubeconfig_path() -> PathBuf {
    cache_dir().join("env/kubeconfig")
}

/// moto's endpoint.
pub fn aws_endpoint() -> String {
    format!("http://127.0.0.1:{}", moto_port())
}

fn project_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn port_open(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(300)).is_ok()
}

static ENV: Once = Once::new();

/// Start the environment unless it is already up. Serialised across test processes by `flock`,
/// since nextest runs every test in its own process.
pub fn ensure_env() {
    ENV.call_once(|| {
        if kubeconfig_path().exists() && port_open(apiserver_port()) && port_open(moto_port()) {
            return;
        }
        std::fs::create_dir_all(cache_dir()).expect("create cache dir");
        let lock = cache_dir().join("env-up.lock");
        let status = Command::new("flock")
            .arg(&lock)
            .arg("bash")
            .arg(project_root().join("hack/env-up.sh"))
            .status()
            .expect("run hack/env-up.sh (is util-linux installed?)");
        assert!(status.success(), "hack/env-up.sh failed; see its output above");
    });
}

/// A kube client for the test apiserver.
pub async fn client() -> Client {
    ensure_env();
    fargate_operator::operator::install_crypto_provider();
    let kc = Kubeconfig::read_from(kubeconfig_path()).expect("read kubeconfig");
    let cfg = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.expect("kubeconfig");
    Client::try_from(cfg).expect("client")
}

/// Create or replace every CRD and wait until each is Established.
///
/// Not server-side apply: the v1.20 test apiserver's typed SSA patch rejects
/// `x-kubernetes-validations` as an unknown field, while create/update simply drop it (as
/// `kubectl apply --validate=false` does). Clusters >= 1.25 keep the CEL rules.
pub async fn install_crds(client: &Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for mut crd in crds() {
        let name = crd.metadata.name.clone().expect("crd name");
        match api.get_opt(&name).await.expect("get CRD") {
            None => match api.create(&PostParams::default(), &crd).await {
                Ok(_) => {}
                // Another test process created it first.
                Err(kube::Error::Api(resp)) if resp.code == 409 => {}
                Err(e) => panic!("create CRD {name}: {e}"),
            },
            Some(existing) => {
                crd.metadata.resource_version = existing.metadata.resource_version.clone();
                let same = serde_json::to_value(&existing.spec.versions[0].schema).ok()
                    == serde_json::to_value(&crd.spec.versions[0].schema).ok();
                if !same {
                    match api.replace(&name, &PostParams::default(), &crd).await {
                        Ok(_) => {}
                        Err(kube::Error::Api(resp)) if resp.code == 409 => {}
                        Err(e) => panic!("replace CRD {name}: {e}"),
                    }
                }
            }
        }
        tokio::time::timeout(
            Duration::from_secs(30),
            await_condition(api.clone(), &name, conditions::is_crd_established()),
        )
        .await
        .unwrap_or_else(|_| panic!("CRD {name} not Established within 30s"))
        .expect("watch CRD");
    }
}

/// A random lowercase suffix.
pub fn suffix() -> String {
    format!("{:06x}", rand::random::<u32>() & 0xff_ffff)
}

/// A fresh 12-digit AWS account id: moto keeps separate state per account.
pub fn fresh_account() -> String {
    format!("{:012}", rand::random::<u64>() % 1_000_000_000_000)
}

/// Base SDK config for moto with its dummy credentials (they only ever reach loopback).
pub async fn moto_base_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(aws_endpoint())
        // moto accepts any key; these never leave loopback.
        .credentials_provider(Credentials::new("testing", "testing", None, None, "moto"))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await
}

/// Base SDK config for an `ApiSource` (the in-memory AWS model), built without loading anything:
/// no profile files, no environment, no IMDS, nothing that would block or open a connection on
/// the simulator's paused clock. Its clients are never built: the source answers every call.
pub fn model_base_config() -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(Credentials::new(
            "model", "model", None, None, "model",
        )))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .build()
}

/// Everything one test needs: a client, its own namespace and its own AWS account.
pub struct TestCtx {
    /// Client for the real apiserver (or for an in-memory one, see [`TestCtx::in_memory`]).
    pub client: Client,
    /// The test's namespace.
    pub namespace: String,
    /// The test's moto account.
    pub account: String,
    /// Role in that account (`spec.aws.roleArn` for objects of this test).
    pub role_arn: String,
    /// Provider whose `config_for(&self.aws())` yields credentials of that account.
    pub aws: AwsProvider,
}

impl TestCtx {
    /// Set up for a test called `name`.
    pub async fn new(name: &str) -> Self {
        let client = client().await;
        install_crds(&client).await;
        let namespace = format!("t-{}-{}", name.replace('_', "-").chars().take(40).collect::<String>(), suffix());
        let ns_api: Api<Namespace> = Api::all(client.clone());
        let ns = Namespace {
            metadata: kube::api::ObjectMeta { name: Some(namespace.clone()), ..Default::default() },
            ..Default::default()
        };
        ns_api.create(&PostParams::default(), &ns).await.expect("create namespace");
        let account = fresh_account();
        let role_arn = format!("arn:aws:iam::{account}:role/fargate-operator-test");
        let aws = AwsProvider::from_base(moto_base_config().await);
        Self { client, namespace, account, role_arn, aws }
    }

    /// Set up for a test called `name` against `client` (the simulator's in-memory API server,
    /// `fargate_operator::kube_model`): no environment, no CRDs to install (the in-memory server
    /// serves any kind), no namespace to create (it stores objects in any namespace). The
    /// namespace is `name` itself: each in-memory server holds one test's objects only, so a fixed
    /// name keeps a run repeatable. `aws` is built without IO, for an `ApiSource`.
    pub fn in_memory(name: &str, client: Client) -> Self {
        let account = "123456789012".to_string();
        let role_arn = format!("arn:aws:iam::{account}:role/fargate-operator-test");
        let aws = AwsProvider::from_base(model_base_config());
        Self { client, namespace: name.to_string(), account, role_arn, aws }
    }

    /// `spec.aws` that puts an object's calls into this test's account.
    pub fn aws_override(&self) -> AwsOverride {
        AwsOverride { region: Some(REGION.into()), role_arn: Some(self.role_arn.clone()), external_id: None }
    }

    /// SDK config bound to this test's account (through a real `sts:AssumeRole` against moto).
    pub async fn sdk_config(&self) -> SdkConfig {
        self.aws.config_for(Some(&self.aws_override())).await
    }

    /// Delete this test's objects, then its namespace. The objects go first because the test
    /// apiserver runs no namespace controller: a deleted namespace stays Terminating with its
    /// contents, which a later operator watching all namespaces would still see.
    pub async fn cleanup(self) {
        use fargate_operator::api::{DnsFailover, FargateApp, HotPool, HotPoolClaim, HotPoolWorker};
        let lp = kube::api::ListParams::default();
        let dp = DeleteParams::default();
        let _ = Api::<FargateApp>::namespaced(self.client.clone(), &self.namespace).delete_collection(&dp, &lp).await;
        let _ = Api::<DnsFailover>::namespaced(self.client.clone(), &self.namespace).delete_collection(&dp, &lp).await;
        let _ = Api::<HotPool>::namespaced(self.client.clone(), &self.namespace).delete_collection(&dp, &lp).await;
        let _ =
            Api::<HotPoolWorker>::namespaced(self.client.clone(), &self.namespace).delete_collection(&dp, &lp).await;
        let _ = Api::<HotPoolClaim>::namespaced(self.client.clone(), &self.namespace).delete_collection(&dp, &lp).await;
        // The test's operator is stopped by now, and the test API server runs no namespace
        // controller: objects still holding a finalizer would stay forever (a thousand of them
        // had piled up in the shared environment), so their finalizers go.
        strip_finalizers::<FargateApp>(&self.client, &self.namespace).await;
        strip_finalizers::<DnsFailover>(&self.client, &self.namespace).await;
        strip_finalizers::<HotPool>(&self.client, &self.namespace).await;
        strip_finalizers::<HotPoolWorker>(&self.client, &self.namespace).await;
        strip_finalizers::<HotPoolClaim>(&self.client, &self.namespace).await;
        let ns_api: Api<Namespace> = Api::all(self.client.clone());
        let _ = ns_api.delete(&self.namespace, &dp).await;
    }

    /// Run kubectl against the test apiserver; returns (success, stdout, stderr).
    pub fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
        kubectl(args, stdin)
    }
}

/// Run kubectl with the test kubeconfig.
pub fn kubectl(args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    use std::io::Write;
    let mut cmd = Command::new("kubectl");
    cmd.arg("--kubeconfig").arg(kubeconfig_path()).args(args);
    cmd.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("spawn kubectl");
    if let Some(input) = stdin {
        child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write stdin");
    } else {
        drop(child.stdin.take());
    }
    let out = child.wait_with_output().expect("kubectl output");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Read a file of the project (examples, crds).
pub fn read_project_file(rel: &str) -> String {
    std::fs::read_to_string(project_root().join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

/// Every YAML document of a project file, as JSON values.
pub fn yaml_docs(rel: &str) -> Vec<serde_json::Value> {
    let text = read_project_file(rel);
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).expect("valid YAML"))
        .filter(|v: &serde_json::Value| !v.is_null())
        .collect()
}

/// Deadline of the documented AWS polls (drift repair, resync counter, a lost answer executed).
pub const POLL_DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);

/// Poll AWS state (there is nothing to watch on the AWS side) every `every` until `check` returns
/// Ok, at most [`POLL_DEADLINE`]; panics with the last Err.
pub async fn poll_aws<F, Fut>(what: &str, every: std::time::Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let deadline = std::time::Instant::now() + POLL_DEADLINE;
    loop {
        match check().await {
            Ok(()) => return,
            Err(last) if std::time::Instant::now() >= deadline => {
                panic!("{what} not reached within {POLL_DEADLINE:?}: {last}")
            }
            Err(_) => tokio::time::sleep(every).await,
        }
    }
}

/// Remove the finalizers of every `K` left in `namespace` (best effort: the end of a test).
async fn strip_finalizers<K>(client: &kube::Client, namespace: &str)
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let Ok(left) = api.list(&kube::api::ListParams::default()).await else { return };
    let patch = serde_json::json!({"metadata": {"finalizers": null}});
    for obj in left {
        let name = kube::ResourceExt::name_any(&obj);
        let _ = api.patch(&name, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch)).await;
    }
}
