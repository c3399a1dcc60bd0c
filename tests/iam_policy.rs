//! `deploy/iam-policy.json` is the operator's least-privilege IAM policy. The tests:
//!
//! - `policy_allows_exactly_what_the_operator_calls` (no environment): the policy's actions are
//!   exactly the AWS operations `src/` passes to `AwsCaller::call`/`call_create` plus
//!   `sts:AssumeRole` and the three permissions AWS checks implicitly (below), every statement has
//!   a unique `Sid`, creates require the owner tag in the request and changes to existing ECS and
//!   ELBv2 resources require it on the resource.
//! - `full_policy_reconciles_every_kind_and_cleans_up`: the operator runs in-process as an IAM user
//!   holding the policy, against a moto that enforces IAM, through a FargateApp with a listener
//!   rule and a record, a DnsFailover with delegation and a HotPool (through `spec.aws.roleArn`, a
//!   role holding the same policy) with a claim; everything converges and is deleted again, and no
//!   AWS call of the operator is refused. On the way, the `Resource` patterns of the file (which
//!   moto cannot evaluate) are matched against the ARNs of what the operator made and touched.
//! - `removing_any_statement_fails_visibly`: the same scenario once per statement, with that
//!   statement removed from the user's and the role's policy: some object must report it as
//!   `Degraded`, `Synced=False` or `DeletionBlocked` with `AccessDenied` in `status.lastError`,
//!   while the operator keeps running and stops cleanly.
//!
//! The moto (its own server on a free loopback port, not the shared one on 15000, which runs
//! without authentication) is `hack/moto-iam-server.py`: moto 5.2.5 with
//! `INITIAL_NO_AUTH_ACTION_COUNT=3` (the three requests `hack/moto-iam-principals.py` needs to
//! create an administrator), two wire-format fixes that do not touch policy evaluation (see the
//! script), and ECS tasks kept RUNNING.
//!
//! What moto 5.2.5 enforces (moto/iam/access_control.py, moto/core/authorization.py), and so what
//! these tests prove and do not prove:
//! - Enforced: the SigV4 signature and access key of every request; `Action`/`NotAction` (with
//!   `*` wildcards) and `Effect` of the identity policies of an IAM user or an assumed role
//!   (inline and attached, also through groups), an explicit Deny winning; for `sts:AssumeRole`
//!   the `Resource` (the role ARN) and the role's trust policy (`Principal.AWS`, and `StringEquals`
//!   on `sts:ExternalId`).
//! - Not enforced: `Resource` for ECS, ELBv2 and Route 53. moto never computes the resource of
//!   such a request and compares each statement's `Resource` with the string `*`, so a statement
//!   scoped to ARNs never matches and denies everything. The tests therefore give moto the policy
//!   with the `Resource` of every statement except `sts:AssumeRole` widened to `*`
//!   ([`for_moto`]); the file's ARN patterns are matched against real ARNs by the full-policy test
//!   ([`grants_on`]), not by moto.
//! - Not enforced: `Condition`s of identity policies. moto passes no request context, so every
//!   condition (`Null`, `StringEquals`, `ForAllValues:*` on `aws:RequestTag`, `aws:ResourceTag`,
//!   `ecs:CreateAction`, `iam:PassedToService`, Route 53 record types...) holds. The tag
//!   conditions are only checked statically.
//! - Not enforced: permissions AWS checks on top of the called action: `iam:PassRole` for the task
//!   and execution roles of a task definition, `ecs:TagResource` and `elasticloadbalancing:AddTags`
//!   for tags given on create. The three statements that grant only those
//!   ([`IMPLICIT_ACTIONS`]) cannot be shown to be needed here; the removal test skips exactly them
//!   and says so.
//! - Not enforced: any CloudWatch permission. moto 5.2.5 answers GetMetricData to a principal
//!   whose policies do not allow it (checked by hand), so the statement granting only
//!   `cloudwatch:GetMetricData` ([`UNENFORCED_ACTIONS`]) is skipped by the removal test too. What a
//!   refusal does (the objects turn `Degraded`/`HealthSourceRefused` with the error in
//!   `lastError`, and health is read one check at a time) is unit-tested in
//!   `controller::dns_failover::readings`.
//! - Not exercised: `route53:GetChange` (moto's changes are INSYNC at once, so the operator never
//!   follows one) and the ops a converged scenario has no reason to call (listed on stderr by the
//!   full-policy test). Their statements are still proven by their other actions.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_credential_types::Credentials;
use fargate_operator::api::{DnsFailover, FargateApp, HotPool, HotPoolClaim, HotPoolWorker};
use futures::StreamExt;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use support::operator::InProcessOperator;
use support::{TestCtx, fixtures};

/// Requests moto serves without authentication: `hack/moto-iam-principals.py` bootstraps its
/// administrator with exactly these (its `BOOTSTRAP_CALLS`).
const MOTO_BOOTSTRAP_CALLS: u32 = 3;
/// How long one phase of the scenario (converge, delete) may take.
const PHASE: Duration = Duration::from_secs(120);
/// Removal runs at the same time (each one an operator and a namespace; moto serves them all).
const PARALLEL_RUNS: usize = 4;
/// Permissions AWS checks besides the called action, never requested by the operator itself.
const IMPLICIT_ACTIONS: &[&str] = &["iam:PassRole", "ecs:TagResource", "elasticloadbalancing:AddTags"];
/// Permissions the operator asks for that moto does not enforce (see the module docs).
const UNENFORCED_ACTIONS: &[&str] = &["cloudwatch:GetMetricData"];
/// Owner tag key every resource the operator creates carries.
const CLUSTER_TAG: &str = "fargate.operator.dev/cluster";

fn project_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

// ---------------------------------------------------------------------------------------------
// The policy
// ---------------------------------------------------------------------------------------------

/// deploy/iam-policy.json.
fn policy() -> Value {
    serde_json::from_str(&support::read_project_file("deploy/iam-policy.json")).expect("deploy/iam-policy.json is JSON")
}

fn statements(policy: &Value) -> &Vec<Value> {
    policy["Statement"].as_array().expect("Statement is a list")
}

/// A string-or-list policy element as a list.
fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().map(|x| x.as_str().expect("a string").to_string()).collect(),
        _ => Vec::new(),
    }
}

fn sid(statement: &Value) -> String {
    statement["Sid"].as_str().unwrap_or_default().to_string()
}

/// The policy as moto can evaluate it: `Resource` widened to `*` except for `sts:AssumeRole`
/// (moto compares the `Resource` of every other service with `*`; see the module docs).
fn for_moto(policy: &Value) -> Value {
    let mut p = policy.clone();
    for st in p["Statement"].as_array_mut().expect("Statement") {
        if !strings(&st["Action"]).iter().any(|a| a == "sts:AssumeRole") {
            st["Resource"] = json!("*");
        }
        // moto names an action after the SigV4 signing name, which for CloudWatch is
        // `monitoring`; IAM's prefix is `cloudwatch`. The statement grants both to moto.
        let actions = strings(&st["Action"]);
        if actions.iter().any(|a| a.starts_with("cloudwatch:")) {
            let both: Vec<String> = actions
                .iter()
                .flat_map(|a| [a.clone(), a.replacen("cloudwatch:", "monitoring:", 1)])
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            st["Action"] = json!(both);
        }
    }
    p
}

/// `policy` without the statement `sid`.
fn without(policy: &Value, sid_: &str) -> Value {
    let mut p = policy.clone();
    p["Statement"].as_array_mut().expect("Statement").retain(|s| sid(s) != sid_);
    p
}

/// Every `(service label, operation)` that `src/` passes to `AwsCaller::call`/`call_create`, read
/// from the source (`Service::Ecs, "RegisterTaskDefinition"`, across line breaks).
fn operations_in_src() -> BTreeSet<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read src dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&project_root().join("src"), &mut files);
    let mut ops = BTreeSet::new();
    for file in files {
        // Only the call sites, not the unit tests of the caller and the budgets.
        if file.ends_with("aws/caller.rs") || file.ends_with("aws/budget.rs") || file.ends_with("budget/quotas.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("read source");
        for (service, label) in
            [("Ecs", "ecs"), ("Elbv2", "elbv2"), ("Route53", "route53"), ("Sts", "sts"), ("CloudWatch", "cloudwatch")]
        {
            let needle = format!("Service::{service},");
            let mut rest = text.as_str();
            while let Some(at) = rest.find(&needle) {
                rest = &rest[at + needle.len()..];
                let trimmed = rest.trim_start();
                if let Some(lit) = trimmed.strip_prefix('"') {
                    let op = &lit[..lit.find('"').expect("closing quote")];
                    ops.insert((label.to_string(), op.to_string()));
                }
            }
        }
    }
    ops
}

/// The IAM action of an operation metric label pair.
fn iam_action(service: &str, op: &str) -> String {
    let prefix = match service {
        "elbv2" => "elasticloadbalancing",
        other => other,
    };
    format!("{prefix}:{op}")
}

/// IAM's wildcard match: `*` any run of characters, `?` one character.
fn iam_glob(pattern: &str, s: &str) -> bool {
    let (p, s): (Vec<char>, Vec<char>) = (pattern.chars().collect(), s.chars().collect());
    // Classic two-pointer match with backtracking to the last `*`.
    let (mut i, mut j, mut star, mut mark) = (0, 0, None, 0);
    while j < s.len() {
        if i < p.len() && (p[i] == '?' || p[i] == s[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(st) = star {
            i = st + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|c| *c == '*')
}

/// Whether the statement of `policy` that grants `action` lets it act on `arn` (its `Resource`
/// only; conditions are not evaluated).
fn grants_on(policy: &Value, action: &str, arn: &str) -> Result<(), String> {
    let st = statements(policy)
        .iter()
        .find(|st| strings(&st["Action"]).iter().any(|a| a == action))
        .ok_or(format!("no statement grants {action}"))?;
    let resources = strings(&st["Resource"]);
    if resources.iter().any(|r| iam_glob(r, arn)) {
        Ok(())
    } else {
        Err(format!("{}: {action} on {arn} is outside {resources:?}", sid(st)))
    }
}

#[test]
fn iam_glob_matches_like_iam() {
    assert!(iam_glob("arn:aws:ecs:*:*:service/*/*", "arn:aws:ecs:us-east-1:1:service/apps/web"));
    assert!(!iam_glob("arn:aws:ecs:*:*:service/*/*", "arn:aws:ecs:us-east-1:1:task-definition/web:1"));
    assert!(iam_glob("*", "anything"));
    assert!(iam_glob("arn:aws:route53:::hostedzone/*", "arn:aws:route53:::hostedzone/Z1"));
    assert!(!iam_glob("arn:aws:route53:::hostedzone/*", "arn:aws:route53:::healthcheck/1"));
    assert!(iam_glob("a?c*", "abcdef") && !iam_glob("a?c", "ac"));
}

#[test]
fn policy_allows_exactly_what_the_operator_calls() {
    let policy = policy();
    assert_eq!(policy["Version"], "2012-10-17");
    let ops = operations_in_src();
    assert!(ops.len() >= 30, "the source scan found too few operations: {ops:?}");
    let mut wanted: BTreeSet<String> = ops.iter().map(|(s, o)| iam_action(s, o)).collect();
    wanted.insert("sts:AssumeRole".into());
    wanted.extend(IMPLICIT_ACTIONS.iter().map(|a| a.to_string()));

    let mut granted = BTreeSet::new();
    let mut sids = BTreeSet::new();
    for st in statements(&policy) {
        let sid = sid(st);
        assert!(!sid.is_empty(), "every statement has a Sid: {st}");
        assert!(sids.insert(sid.clone()), "Sid {sid} is used twice");
        assert_eq!(st["Effect"], "Allow", "{sid}");
        assert!(st.get("NotAction").is_none() && st.get("NotResource").is_none(), "{sid}: no Not* elements");
        let actions = strings(&st["Action"]);
        assert!(!actions.is_empty(), "{sid}: no actions");
        for a in &actions {
            assert!(!a.contains('*'), "{sid}: wildcard action {a}");
            assert!(granted.insert(a.clone()), "{a} is granted by two statements");
        }
        assert!(!strings(&st["Resource"]).is_empty(), "{sid}: no Resource");
        let condition = st.get("Condition").map(|c| c.to_string()).unwrap_or_default();
        let has = |key: &str| condition.contains(&format!("\"{key}\""));
        for a in &actions {
            let op = a.split_once(':').map(|(_, op)| op).unwrap_or_default();
            let service = a.split_once(':').map(|(s, _)| s).unwrap_or_default();
            if !matches!(service, "ecs" | "elasticloadbalancing") {
                continue;
            }
            let creates = op.starts_with("Create") || op == "RegisterTaskDefinition" || op == "RunTask";
            let changes = ["Update", "Delete", "Modify", "Stop", "SetRule"].iter().any(|p| op.starts_with(p));
            if creates || IMPLICIT_ACTIONS.contains(&a.as_str()) {
                assert!(
                    has(&format!("aws:RequestTag/{CLUSTER_TAG}")),
                    "{sid}: {a} without the owner tag in the request"
                );
            } else if changes {
                assert!(
                    has(&format!("aws:ResourceTag/{CLUSTER_TAG}")),
                    "{sid}: {a} is not limited to resources carrying the owner tag"
                );
            }
        }
        if actions.iter().any(|a| a == "iam:PassRole") {
            assert!(condition.contains("\"iam:PassedToService\":\"ecs-tasks.amazonaws.com\""), "{sid}: {condition}");
        }
        if actions.iter().any(|a| a.starts_with("route53:")) {
            let resources = strings(&st["Resource"]);
            assert!(
                resources.iter().all(|r| r == "*" || r.starts_with("arn:aws:route53:::")),
                "{sid}: Route 53 resources {resources:?}"
            );
        }
    }
    // ecs:DeregisterTaskDefinition has no resource-level permissions or tag conditions in ECS.
    assert_eq!(granted, wanted, "the policy grants exactly the operations src/ calls (+ AssumeRole and implicit)");
}

// ---------------------------------------------------------------------------------------------
// A moto that enforces IAM
// ---------------------------------------------------------------------------------------------

/// hack/moto-iam-server.py on a free loopback port; killed on drop.
struct IamMoto {
    child: Child,
    endpoint: String,
    log: PathBuf,
}

impl IamMoto {
    fn start() -> Self {
        let python = support::cache_dir().join("venv/bin/python");
        assert!(python.exists(), "{} missing; run hack/setup.sh", python.display());
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("addr").port();
        let log_dir = support::cache_dir().join("logs");
        std::fs::create_dir_all(&log_dir).expect("log dir");
        let log = log_dir.join(format!("moto-iam-{port}.log"));
        let out = std::fs::File::create(&log).expect("moto log");
        let child = Command::new(python)
            .arg(project_root().join("hack/moto-iam-server.py"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("INITIAL_NO_AUTH_ACTION_COUNT", MOTO_BOOTSTRAP_CALLS.to_string())
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log fd"))
            .stderr(out)
            .spawn()
            .expect("start hack/moto-iam-server.py");
        let mut moto = Self { child, endpoint: format!("http://127.0.0.1:{port}"), log };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !moto.answers(port) {
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!("moto-iam-server exited ({status}); log {}:\n{}", moto.log.display(), moto.log_text());
            }
            assert!(Instant::now() < deadline, "moto-iam-server not up in 60 s; log:\n{}", moto.log_text());
            std::thread::sleep(Duration::from_millis(200));
        }
        moto
    }

    /// `GET /moto-api/` answers (not an AWS request, so it does not count against the
    /// unauthenticated ones).
    fn answers(&self, port: u16) -> bool {
        use std::io::Read;
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return false };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        if s.write_all(b"GET /moto-api/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_err() {
            return false;
        }
        let mut head = [0u8; 12];
        s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") && &head[9..12] == b"200"
    }

    fn log_text(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Run hack/moto-iam-principals.py: an administrator (bootstrapped when `admin` is None) and a
    /// user + role per `(name, policy)`.
    fn principals(
        &self,
        admin: Option<&Principal>,
        wanted: &[(String, Value)],
    ) -> (Principal, BTreeMap<String, Principal>) {
        let request = json!({
            "endpoint": self.endpoint,
            "admin": admin.map(|a| json!({"access_key_id": a.access_key_id, "secret_access_key": a.secret_access_key})),
            "principals": wanted.iter().map(|(n, p)| json!({"name": n, "policy": p})).collect::<Vec<_>>(),
        });
        let mut child = Command::new(support::cache_dir().join("venv/bin/python"))
            .arg(project_root().join("hack/moto-iam-principals.py"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run hack/moto-iam-principals.py");
        child.stdin.take().expect("stdin").write_all(request.to_string().as_bytes()).expect("write request");
        let out = child.wait_with_output().expect("moto-iam-principals output");
        assert!(
            out.status.success(),
            "hack/moto-iam-principals.py failed: {}\nmoto log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log_text()
        );
        let v: Value = serde_json::from_slice(&out.stdout).expect("principals JSON");
        let parse = |p: &Value| Principal {
            access_key_id: p["access_key_id"].as_str().expect("key").into(),
            secret_access_key: p["secret_access_key"].as_str().expect("secret").into(),
            role_arn: p["role_arn"].as_str().unwrap_or_default().into(),
        };
        let made =
            v["principals"].as_object().expect("principals").iter().map(|(k, p)| (k.clone(), parse(p))).collect();
        (parse(&v["admin"]), made)
    }
}

impl Drop for IamMoto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Kept for a failed test to read.
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

/// An IAM user's access key, and the role that trusts it (same policy).
#[derive(Clone, Debug)]
struct Principal {
    access_key_id: String,
    secret_access_key: String,
    role_arn: String,
}

impl Principal {
    fn credentials(&self) -> Credentials {
        Credentials::new(&self.access_key_id, &self.secret_access_key, None, None, "moto-iam-user")
    }

    async fn sdk_config(&self, endpoint: &str) -> SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(support::REGION))
            .endpoint_url(endpoint)
            .credentials_provider(self.credentials())
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .load()
            .await
    }
}

// ---------------------------------------------------------------------------------------------
// The world every run shares, made by the administrator
// ---------------------------------------------------------------------------------------------

/// The name of the parent zone of every run's delegated sub-zone.
const PARENT_ZONE: &str = "app.com";
/// The ECS cluster of the pools.
const WORKERS: &str = "workers";

struct World {
    moto: IamMoto,
    admin: Principal,
    admin_cfg: SdkConfig,
    fx: fixtures::Fixtures,
    parent_zone: String,
    worker_task_definition: String,
}

impl World {
    async fn new() -> Self {
        let moto = IamMoto::start();
        let (admin, _) = moto.principals(None, &[]);
        let admin_cfg = admin.sdk_config(&moto.endpoint).await;
        // The shared fixtures, in moto's default account (where every IAM user of this test is).
        let fx = fixtures::standard(&admin_cfg).await;
        fixtures::ecs_cluster(&admin_cfg, WORKERS).await;
        let parent_zone = fixtures::hosted_zone(&admin_cfg, PARENT_ZONE).await;
        let worker_task_definition = fixtures::worker_task_definition(&admin_cfg).await;
        Self { moto, admin, admin_cfg, fx, parent_zone, worker_task_definition }
    }

    /// One user + role per `(name, policy)`.
    fn principals(&self, wanted: &[(String, Value)]) -> BTreeMap<String, Principal> {
        self.moto.principals(Some(&self.admin), wanted).1
    }
}

// ---------------------------------------------------------------------------------------------
// The scenario: one object of every kind, converge, delete
// ---------------------------------------------------------------------------------------------

/// One object as the scenario sees it.
#[derive(Debug)]
struct Seen {
    kind: &'static str,
    name: String,
    generation: Option<i64>,
    status: Value,
}

impl Seen {
    fn condition(&self, type_: &str) -> Option<&str> {
        self.status["conditions"].as_array()?.iter().find(|c| c["type"] == type_)?["status"].as_str()
    }

    /// Its report of an AccessDenied: `Degraded`, `Synced=False` or `DeletionBlocked` with
    /// AccessDenied in `lastError`.
    fn access_denied(&self) -> Option<String> {
        let last = self.status.get("lastError")?;
        let (code, message) = (last["code"].as_str().unwrap_or(""), last["message"].as_str().unwrap_or(""));
        if !(code.contains("AccessDenied") || message.contains("AccessDenied")) {
            return None;
        }
        let visible = self.condition("Degraded") == Some("True")
            || self.condition("Synced") == Some("False")
            || self.condition("DeletionBlocked") == Some("True");
        visible.then(|| {
            let conds: Vec<String> = self.status["conditions"]
                .as_array()
                .map(|cs| cs.iter().map(|c| format!("{}={}/{}", c["type"], c["status"], c["reason"])).collect())
                .unwrap_or_default();
            format!(
                "{}/{}: lastError {} {code}: {message} [{}]",
                self.kind,
                self.name,
                last["operation"].as_str().unwrap_or(""),
                conds.join(", ").replace('"', "")
            )
        })
    }

    fn current(&self) -> bool {
        self.generation.is_some() && self.status["observedGeneration"].as_i64() == self.generation
    }
}

/// How a phase ended.
enum End {
    /// The phase's goal was reached.
    Reached,
    /// An object reports an AccessDenied (its description).
    Denied(String),
}

struct Run<'a> {
    world: &'a World,
    ctx: TestCtx,
    principal: Principal,
    /// Unique per run: the DNS labels.
    tag: String,
    zone: String,
}

impl<'a> Run<'a> {
    async fn new(world: &'a World, name: &str, principal: Principal) -> Self {
        let ctx = TestCtx::new(name).await;
        let tag = format!("r{}", support::suffix());
        let zone = fixtures::hosted_zone(&world.admin_cfg, &format!("{tag}.{PARENT_ZONE}")).await;
        Self { world, ctx, principal, tag, zone }
    }

    async fn operator(&self) -> InProcessOperator {
        InProcessOperator::start_with_credentials(&self.ctx, &self.world.moto.endpoint, self.principal.credentials())
            .await
    }

    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.ctx.client.clone(), &self.ctx.namespace)
    }

    /// examples/fargateapp-full.yaml at this world's ALB listener, cluster and zone, with the
    /// operator's own credentials (no spec.aws).
    fn app(&self) -> FargateApp {
        let fx = &self.world.fx;
        let mut v = support::yaml_docs("examples/fargateapp-full.yaml").remove(0);
        v["metadata"] = json!({"name": "web"});
        let spec = &mut v["spec"];
        spec["cluster"] = json!(fx.cluster_arn);
        spec["network"]["subnets"] = json!(fx.net.subnets);
        spec["network"]["securityGroups"] = json!([fx.net.security_group]);
        spec["loadBalancer"]["listenerRule"]["listenerArn"] = json!(fx.alb.listener_arn);
        // Runs share the listener: each its own path, or their rules overlap (RuleOverlap).
        spec["loadBalancer"]["listenerRule"]["pathPatterns"] = json!([format!("/{}/*", self.tag)]);
        spec["dns"]["hostedZoneId"] = json!(fx.zone_id);
        spec["dns"]["name"] = json!(format!("web-{}.{}", self.tag, fixtures::ZONE));
        serde_json::from_value(v).expect("FargateApp")
    }

    /// examples/dnsfailover.yaml in this run's zone, delegated from the parent zone.
    fn failover(&self) -> DnsFailover {
        let mut v = support::yaml_docs("examples/dnsfailover.yaml").remove(0);
        v["metadata"] = json!({"name": "dev"});
        v["spec"]["hostedZoneId"] = json!(self.zone);
        v["spec"]["name"] = json!(format!("dev.{}.{PARENT_ZONE}", self.tag));
        v["spec"]["delegation"]["parentHostedZoneId"] = json!(self.world.parent_zone);
        serde_json::from_value(v).expect("DnsFailover")
    }

    /// examples/hotpool.yaml with one version of one worker, through `spec.aws.roleArn` (the role
    /// that trusts this run's user and holds the same policy).
    fn pool(&self) -> HotPool {
        let fx = &self.world.fx;
        let mut v = support::yaml_docs("examples/hotpool.yaml").remove(0);
        v["metadata"] = json!({"name": "workers-pool"});
        v["spec"]["cluster"] = json!(WORKERS);
        v["spec"]["network"] = json!({"subnets": fx.net.subnets, "securityGroups": [fx.net.security_group]});
        v["spec"]["versions"] = json!([{
            "version": "2.4.1", "taskDefinition": self.world.worker_task_definition,
            "pooling": true, "scaleTo": 1, "port": 7000
        }]);
        v["spec"]["aws"] = json!({"region": support::REGION, "roleArn": self.principal.role_arn});
        serde_json::from_value(v).expect("HotPool")
    }

    fn claim(&self) -> HotPoolClaim {
        let mut v = support::yaml_docs("examples/hotpool.yaml").remove(1);
        v["metadata"] = json!({"name": "job-42"});
        serde_json::from_value(v).expect("HotPoolClaim")
    }

    async fn create_all(&self) {
        let pp = PostParams::default();
        self.api::<FargateApp>().create(&pp, &self.app()).await.expect("create FargateApp");
        self.api::<DnsFailover>().create(&pp, &self.failover()).await.expect("create DnsFailover");
        self.api::<HotPool>().create(&pp, &self.pool()).await.expect("create HotPool");
        self.api::<HotPoolClaim>().create(&pp, &self.claim()).await.expect("create HotPoolClaim");
    }

    async fn list<K>(&self, kind: &'static str, out: &mut Vec<Seen>)
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug
            + serde::Serialize,
    {
        let items = self.api::<K>().list(&ListParams::default()).await.unwrap_or_else(|e| panic!("list {kind}: {e}"));
        for o in items.items {
            let v = serde_json::to_value(&o).expect("object JSON");
            out.push(Seen { kind, name: o.name_any(), generation: o.meta().generation, status: v["status"].clone() });
        }
    }

    /// Every object of the run, every kind.
    async fn seen(&self) -> Vec<Seen> {
        let mut out = Vec::new();
        self.list::<FargateApp>("FargateApp", &mut out).await;
        self.list::<DnsFailover>("DnsFailover", &mut out).await;
        self.list::<HotPool>("HotPool", &mut out).await;
        self.list::<HotPoolClaim>("HotPoolClaim", &mut out).await;
        self.list::<HotPoolWorker>("HotPoolWorker", &mut out).await;
        out
    }

    /// Poll (every 500 ms, [`PHASE`] at most) until an object reports an AccessDenied or `goal`
    /// holds (`Err` says what is still missing).
    async fn phase(&self, what: &str, goal: impl Fn(&[Seen]) -> Result<(), String>) -> End {
        let deadline = Instant::now() + PHASE;
        loop {
            let seen = self.seen().await;
            if let Some(denied) = seen.iter().find_map(Seen::access_denied) {
                return End::Denied(denied);
            }
            match goal(&seen) {
                Ok(()) => return End::Reached,
                Err(missing) if Instant::now() >= deadline => {
                    panic!("{}: {what} not reached within {PHASE:?}: {missing}\nobjects: {seen:#?}", self.ctx.namespace)
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
    }

    /// Every kind at its converged state.
    fn converged(seen: &[Seen]) -> Result<(), String> {
        let find = |kind: &str| seen.iter().find(|s| s.kind == kind).ok_or(format!("no {kind}"));
        let app = find("FargateApp")?;
        if !(app.current() && app.condition("Synced") == Some("True") && app.status["listenerRulePriority"].is_i64()) {
            return Err(format!("FargateApp not synced with a listener rule: {}", app.status));
        }
        let dnsf = find("DnsFailover")?;
        let dnsf_ok = dnsf.current()
            && ["Synced", "DelegationReady", "PrimaryHealthy"].iter().all(|c| dnsf.condition(c) == Some("True"));
        if !dnsf_ok {
            return Err(format!("DnsFailover not synced, delegated and healthy: {}", dnsf.status));
        }
        let pool = find("HotPool")?;
        let pool_ok = pool.condition("Ready") == Some("True")
            && pool.status["available"] == 1
            && pool.status["claimed"] == 1
            && pool.status["starting"] == 0;
        if !pool_ok {
            return Err(format!("HotPool not Ready with 1 available and 1 claimed: {}", pool.status));
        }
        let claim = find("HotPoolClaim")?;
        if claim.status["phase"] != "Bound" {
            return Err(format!("claim not Bound: {}", claim.status));
        }
        Ok(())
    }

    /// Delete the claim, the pool, the app and the failover (each through its finalizer).
    async fn delete_all(&self) {
        let dp = DeleteParams::default();
        let _ = self.api::<HotPoolClaim>().delete("job-42", &dp).await;
        let _ = self.api::<HotPool>().delete("workers-pool", &dp).await;
        let _ = self.api::<FargateApp>().delete("web", &dp).await;
        let _ = self.api::<DnsFailover>().delete("dev", &dp).await;
    }

    fn gone(seen: &[Seen]) -> Result<(), String> {
        let left: Vec<String> = seen.iter().map(|s| format!("{}/{}", s.kind, s.name)).collect();
        if left.is_empty() { Ok(()) } else { Err(format!("still there: {left:?}")) }
    }

    /// Converge, then delete: the first AccessDenied any object reports, if any.
    async fn scenario(&self) -> Option<String> {
        self.create_all().await;
        if let End::Denied(d) = self.phase("every kind converged", Self::converged).await {
            return Some(d);
        }
        self.delete_all().await;
        match self.phase("every object deleted", Self::gone).await {
            End::Denied(d) => Some(d),
            End::Reached => None,
        }
    }

    /// `(IAM action, resource ARN)` for every resource of a converged run the operator acts on,
    /// from the objects' status (and the role, roles and listener their specs name).
    async fn touched_arns(&self) -> Vec<(String, String)> {
        let seen = self.seen().await;
        let status = |kind: &str| seen.iter().find(|s| s.kind == kind).map(|s| s.status.clone()).unwrap_or_default();
        let text = |v: &Value| v.as_str().unwrap_or_else(|| panic!("expected a string, got {v}")).to_string();
        let (app, dnsf, claim) = (status("FargateApp"), status("DnsFailover"), status("HotPoolClaim"));
        let mut out = Vec::new();
        let mut add = |actions: &[&str], arn: String| {
            out.extend(actions.iter().map(|a| (a.to_string(), arn.clone())));
        };
        add(&["ecs:CreateService", "ecs:UpdateService", "ecs:DeleteService"], text(&app["serviceArn"]));
        add(&["ecs:StopTask"], text(&claim["taskArn"]));
        let tg = text(&app["targetGroupArn"]);
        add(
            &[
                "elasticloadbalancing:CreateTargetGroup",
                "elasticloadbalancing:AddTags",
                "elasticloadbalancing:ModifyTargetGroup",
                "elasticloadbalancing:ModifyTargetGroupAttributes",
                "elasticloadbalancing:DeleteTargetGroup",
            ],
            tg,
        );
        add(&["elasticloadbalancing:CreateRule"], self.world.fx.alb.listener_arn.clone());
        add(
            &[
                "elasticloadbalancing:CreateRule",
                "elasticloadbalancing:AddTags",
                "elasticloadbalancing:ModifyRule",
                "elasticloadbalancing:DeleteRule",
                "elasticloadbalancing:SetRulePriorities",
            ],
            text(&app["listenerRuleArn"]),
        );
        let zone_actions =
            ["route53:ChangeResourceRecordSets", "route53:ListResourceRecordSets", "route53:GetHostedZone"];
        for zone in [&self.world.fx.zone_id, &self.zone, &self.world.parent_zone] {
            add(&zone_actions, format!("arn:aws:route53:::hostedzone/{zone}"));
        }
        let check = text(&dnsf["healthChecks"]["primary"]["id"]);
        add(
            &[
                "route53:GetHealthCheck",
                "route53:GetHealthCheckStatus",
                "route53:UpdateHealthCheck",
                "route53:DeleteHealthCheck",
                "route53:ChangeTagsForResource",
            ],
            format!("arn:aws:route53:::healthcheck/{check}"),
        );
        let change = text(&dnsf["change"]["id"]);
        add(&["route53:GetChange"], format!("arn:aws:route53:::change/{}", change.trim_start_matches("/change/")));
        add(&["sts:AssumeRole"], self.principal.role_arn.clone());
        let spec = serde_json::to_value(self.app().spec).expect("spec");
        for role in ["executionRoleArn", "taskRoleArn"] {
            add(&["iam:PassRole"], text(&spec[role]));
        }
        out
    }

    /// Remove what a refused run leaves: finalizers (the operator is stopped), objects, namespace.
    async fn cleanup(self) {
        async fn strip<K>(api: Api<K>)
        where
            K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
        {
            let patch = Patch::Merge(json!({"metadata": {"finalizers": null}}));
            if let Ok(list) = api.list(&ListParams::default()).await {
                for o in list.items {
                    let _ = api.patch(&o.name_any(), &PatchParams::default(), &patch).await;
                }
            }
        }
        strip(self.api::<FargateApp>()).await;
        strip(self.api::<DnsFailover>()).await;
        strip(self.api::<HotPool>()).await;
        strip(self.api::<HotPoolClaim>()).await;
        strip(self.api::<HotPoolWorker>()).await;
        self.ctx.cleanup().await;
    }
}

/// Every AWS operation `src/` calls that the operator attempted, and what came back.
fn call_outcomes(op: &InProcessOperator) -> BTreeMap<String, BTreeMap<&'static str, u64>> {
    let outcomes = ["success", "throttling", "transient", "not_found", "conflict", "terminal"];
    operations_in_src()
        .into_iter()
        .map(|(service, name)| {
            let counts = outcomes
                .iter()
                .map(|o| (*o, op.metrics.aws_call_count(&service, &name, o)))
                .filter(|(_, n)| *n > 0)
                .collect();
            (iam_action(&service, &name), counts)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn full_policy_reconciles_every_kind_and_cleans_up() {
    let started = Instant::now();
    let world = World::new().await;
    let full = for_moto(&policy());
    let principal = world.principals(&[("full".into(), full)]).remove("full").expect("principal");
    let run = Run::new(&world, "iam-full", principal).await;
    let op = run.operator().await;

    run.create_all().await;
    if let End::Denied(d) = run.phase("every kind converged", Run::converged).await {
        panic!("with the full policy nothing may be refused, but {d}");
    }
    // moto does not evaluate `Resource` (see the module docs): check the file's ARN patterns
    // against the ARNs of what the operator really made and touched.
    let arns = run.touched_arns().await;
    let file = policy();
    let outside: Vec<String> = arns.iter().filter_map(|(action, arn)| grants_on(&file, action, arn).err()).collect();
    assert!(outside.is_empty(), "deploy/iam-policy.json does not cover: {outside:#?}");
    eprintln!("{} (action, ARN) pairs are inside the policy's Resource patterns", arns.len());
    run.delete_all().await;
    if let End::Denied(d) = run.phase("every object deleted", Run::gone).await {
        panic!("with the full policy nothing may be refused, but {d}");
    }
    assert!(!op.is_finished(), "the operator must still be running");
    let outcomes = call_outcomes(&op);
    let refused: Vec<_> = outcomes.iter().filter(|(_, c)| c.contains_key("terminal")).collect();
    assert!(refused.is_empty(), "AWS calls refused with the full policy: {refused:?}");
    let unused: Vec<_> = outcomes.iter().filter(|(_, c)| !c.contains_key("success")).map(|(a, _)| a).collect();
    eprintln!("operations the scenario did not need under moto: {unused:?}");
    for needed in
        ["ecs:RegisterTaskDefinition", "ecs:RunTask", "elasticloadbalancing:CreateRule", "route53:CreateHealthCheck"]
    {
        assert!(outcomes[needed].contains_key("success"), "{needed} was never called: {outcomes:?}");
    }
    op.stop().await;
    run.cleanup().await;
    eprintln!("full-policy scenario took {:?}", started.elapsed());
}

#[tokio::test]
async fn removing_any_statement_fails_visibly() {
    let started = Instant::now();
    let world = World::new().await;
    let full = for_moto(&policy());
    // moto names CloudWatch actions `monitoring:*` (see `for_moto`); both names are unenforced.
    let untestable = |a: &str| {
        IMPLICIT_ACTIONS.contains(&a)
            || UNENFORCED_ACTIONS.iter().any(|u| *u == a || u.replacen("cloudwatch:", "monitoring:", 1) == a)
    };
    let (testable, implicit): (Vec<&Value>, Vec<&Value>) =
        statements(&full).iter().partition(|st| strings(&st["Action"]).iter().any(|a| !untestable(a)));
    // moto never asks for or never checks these (see the module docs): their necessity is AWS's
    // rule, not shown here.
    let skipped: Vec<String> = implicit.iter().map(|s| sid(s)).collect();
    assert_eq!(
        skipped.len(),
        IMPLICIT_ACTIONS.len() + UNENFORCED_ACTIONS.len(),
        "one statement per implicit or unenforced permission: {skipped:?}"
    );
    eprintln!("not testable against moto (implicit or unenforced permissions): {skipped:?}");

    let wanted: Vec<(String, Value)> =
        testable.iter().enumerate().map(|(i, st)| (format!("without-{i}"), without(&full, &sid(st)))).collect();
    let principals = world.principals(&wanted);
    let world = &world;
    let results: Vec<(String, Result<String, String>, Duration)> = futures::stream::iter(testable.iter().enumerate())
        .map(|(i, st)| {
            let principal = principals[&format!("without-{i}")].clone();
            let sid = sid(st);
            async move {
                let t = Instant::now();
                let run = Run::new(world, &format!("iam-{i}"), principal).await;
                let op = run.operator().await;
                let denied = run.scenario().await;
                let running = !op.is_finished();
                op.stop().await;
                run.cleanup().await;
                let result = match (denied, running) {
                    (Some(d), true) => Ok(d),
                    (Some(d), false) => Err(format!("the operator ended (crashed?) after: {d}")),
                    (None, _) => Err("everything converged and was deleted: the statement is not needed".into()),
                };
                (sid, result, t.elapsed())
            }
        })
        .buffer_unordered(PARALLEL_RUNS)
        .collect()
        .await;

    let mut failures = Vec::new();
    for (sid, result, took) in &results {
        match result {
            Ok(denied) => eprintln!("without {sid} ({took:.0?}): {denied}"),
            Err(e) => failures.push(format!("without {sid}: {e}")),
        }
    }
    assert_eq!(results.len(), testable.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    eprintln!("{} removal runs took {:?}", results.len(), started.elapsed());
}
