//! The simulated AWS account: the in-memory model with what users bring (clusters, two load
//! balancers with a listener each, hosted zones, worker task definitions) and a few resources of
//! someone else's that the operator must never touch. Also turns a step's choices into the
//! manifest a user would apply.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_ecs::types::{AwsVpcConfiguration, ContainerDefinition, NetworkConfiguration};
use aws_sdk_route53::types::{Change, ChangeAction, ResourceRecord, ResourceRecordSet, RrType};
use fargate_operator::aws::api::ecs::{EcsApi, RegisterTaskDefinitionRequest, RunTaskRequest};
use fargate_operator::aws::model::elbv2::{Action, Limits, ModelListener, ModelRule, NewRule};
use fargate_operator::aws::model::{FaultRates, ModelAws};
use fargate_operator::aws::naming::TAG_OWNER;
use serde_json::{Value, json};

use super::steps::{AppSpec, FailoverSpec, PoolSpec};

/// Account and region of the model.
pub const ACCOUNT: &str = "123456789012";
/// Region of the model.
pub const REGION: &str = "us-east-1";
/// The parent zone DnsFailovers delegate from.
pub const PARENT_ZONE: &str = "example.com";
/// The role object `i` of every kind assumes (`spec.aws.roleArn`): one team per index.
pub fn team_role(i: u8) -> String {
    format!("arn:aws:iam::{ACCOUNT}:role/team-{i}")
}
/// The FargateApps' two zones.
pub const APP_ZONES: [&str; 2] = ["apps.example.com", "other.example.com"];

/// What the operator must leave alone, as it was at the start.
#[derive(Clone, Debug)]
pub struct Foreign {
    /// A rule of another team on the first listener.
    pub rule_arn: String,
    /// A record of another team in the first app zone.
    pub record: ResourceRecordSet,
    /// A task someone else runs in the workers' cluster.
    pub task_arn: String,
}

/// The model and the names and ids users put in their specs.
#[derive(Clone, Debug)]
pub struct World {
    /// The AWS model.
    pub model: ModelAws,
    /// Listener ARNs, one on each of two load balancers.
    pub listeners: [String; 2],
    /// App zone ids (in [`APP_ZONES`] order).
    pub app_zones: [String; 2],
    /// Parent zone id.
    pub parent_zone: String,
    /// Per DnsFailover, its two sub-zones: (id, name).
    pub failover_zones: Vec<[(String, String); 2]>,
    /// Worker task definition ARNs (revisions 1 and 2).
    pub worker_definitions: [String; 2],
    /// Someone else's resources.
    pub foreign: Foreign,
    /// Listeners deleted behind the operator's back, with the rules that are not the operator's,
    /// to put back at the next quiescent point.
    pub outages: Vec<(ModelListener, Vec<ModelRule>)>,
}

impl World {
    /// A fresh account from `seed`, faults off.
    pub async fn new(seed: u64) -> Self {
        let model = ModelAws::new(seed, FaultRates::default(), ACCOUNT, REGION);
        // AWS's rough edges on: RunTask starting only some tasks, tasks missing from ListTasks and
        // DescribeTasks for a while, small pages (every pagination path runs), Route 53 refusing a
        // batch while the zone's last change is PENDING.
        let mut ecs = model.ecs.settings();
        ecs.capacity_failure_rate = 0.1;
        // The model's clock is the operator's (virtual time, one to one, run.rs): AWS's lags are
        // seconds, drawn per task so that the tasks of one RunTask show one by one (a pass after a
        // lost RunTask answer then often finds some of them, and launches the rest again with the
        // same token, which answers all of them). 0.2 to 4.2 s and 0.1 to 4.1 s: under the
        // operator's read-lag grace of 5 s.
        ecs.list_lag = Duration::from_millis(200);
        ecs.describe_lag = Duration::from_millis(100);
        ecs.lag_spread = Duration::from_secs(4);
        ecs.page_size = 3;
        model.ecs.set_settings(ecs);
        // Every AWS call takes 10-100 ms of virtual time, as over a real network: steps, crashes
        // and fault windows then land in the middle of passes, between a create and its record.
        model.latency.set_round_trip(Duration::from_millis(10), Duration::from_millis(100));
        // RunTask is slow (it places tasks): 0.2 to 2 s, against the operator's attempt timeout of
        // 1 s (run.rs), so that many launches time out after ECS acted and the next pass finds
        // some of their tasks and launches the rest again with the same token.
        model.latency.set_round_trip_of("run_task", Duration::from_millis(200), Duration::from_secs(2));
        model.elbv2.set_limits(Limits { rules_page_size: 2, ..Limits::default() });
        model.route53.set_health_checks_page_size(2);
        model.route53.set_prior_request_rate(0.05);
        model.ecs.create_cluster("apps");
        model.ecs.create_cluster("workers");
        let mut listeners = Vec::new();
        for name in ["shared-a", "shared-b"] {
            let lb = model.elbv2.create_load_balancer(name, "vpc-1").expect("load balancer");
            model.route53.register_alias_target(&lb.canonical_hosted_zone_id, &lb.dns_name);
            let fixed = vec![Action::FixedResponse { status_code: "404".into() }];
            listeners.push(model.elbv2.create_listener(&lb.arn, 80, fixed).expect("listener").arn);
        }
        let listeners: [String; 2] = listeners.try_into().expect("two listeners");
        let app_zones = APP_ZONES.map(|z| model.route53.create_zone(z).id);
        let parent_zone = model.route53.create_zone(PARENT_ZONE).id;
        let failover_zones = (0..super::steps::OBJECTS)
            .map(|i| {
                ["a", "b"].map(|s| {
                    let name = format!("d{i}{s}.{PARENT_ZONE}");
                    (model.route53.create_zone(&name).id, name)
                })
            })
            .collect();
        let mut worker_definitions = Vec::new();
        for tag in ["1", "2"] {
            let req = RegisterTaskDefinitionRequest {
                family: "worker".into(),
                cpu: "256".into(),
                memory: "512".into(),
                container_definitions: vec![
                    ContainerDefinition::builder().name("worker").image(format!("example/worker:{tag}")).build(),
                ],
                ..Default::default()
            };
            worker_definitions.push(model.ecs.register_task_definition(&req).await.expect("worker revision").arn);
        }
        let worker_definitions: [String; 2] = worker_definitions.try_into().expect("two revisions");
        let foreign = plant_foreign(&model, &listeners[0], &app_zones[0], &worker_definitions[0]).await;
        Self { model, listeners, app_zones, parent_zone, failover_zones, worker_definitions, foreign, outages: vec![] }
    }

    /// Listener `which` is deleted behind the operator's back (its rules go with it), until
    /// [`restore_listeners`](Self::restore_listeners): the apps on it cannot serve meanwhile, and
    /// edits and deletions of them must neither wedge nor leak.
    pub fn listener_outage(&mut self, which: u8) {
        let arn = &self.listeners[usize::from(which % 2)];
        let Some(listener) = self.model.elbv2.listeners().into_iter().find(|l| &l.arn == arn) else { return };
        let kept: Vec<ModelRule> = self
            .model
            .elbv2
            .rules()
            .into_iter()
            .filter(|r| &r.listener_arn == arn && !r.tags.contains_key(TAG_OWNER))
            .collect();
        if self.model.elbv2.delete_listener(arn) {
            self.outages.push((listener, kept));
        }
    }

    /// The listeners of every outage back, with their default and other owners' rules (as if the
    /// platform team recreated them and every spec followed): the operator must recreate its own.
    pub fn restore_listeners(&mut self) {
        for (listener, rules) in self.outages.drain(..) {
            assert!(self.model.elbv2.restore_listener(&listener, &rules), "listener {} restored", listener.arn);
        }
    }

    /// FargateApp `i` as a user writes it.
    pub fn app(&self, i: u8, s: &AppSpec) -> Value {
        let mut spec = json!({
            "cluster": "apps",
            "containers": [{"name": "web", "image": format!("example/web:{}", s.image), "port": 8080}],
            "cpu": 256, "memory": 512,
            "network": {"subnets": ["subnet-1"], "securityGroups": ["sg-1"]},
            "replicas": s.replicas,
            "aws": {"roleArn": team_role(i)},
        });
        if s.load_balancer {
            let path = if s.path == 0 { format!("/a{i}/*") } else { format!("/b{i}/*") };
            spec["loadBalancer"] = json!({
                "containerName": "web", "containerPort": 8080,
                "listenerRule": {
                    "listenerArn": self.listeners[usize::from(s.listener % 2)],
                    "pathPatterns": [path],
                    "priorityRange": {"min": 100, "max": 199},
                },
            });
        }
        if s.dns > 0 && s.load_balancer {
            let z = usize::from((s.dns - 1) % 2);
            spec["dns"] = json!({
                "hostedZoneId": self.app_zones[z],
                "name": format!("app{i}.{}", APP_ZONES[z]),
                "type": if s.dns_type == 0 { "Alias" } else { "CNAME" },
            });
        }
        object("FargateApp", &format!("app{i}"), spec)
    }

    /// DnsFailover `i` as a user writes it.
    pub fn failover(&self, i: u8, s: &FailoverSpec) -> Value {
        let (zone_id, zone_name) = &self.failover_zones[usize::from(i)][usize::from(s.zone % 2)];
        let check =
            |path: &str| json!({"type": "HTTPS", "path": path, "requestIntervalSeconds": 30, "failureThreshold": 3});
        let mut secondary = json!({"target": format!("dr{i}.example.net")});
        if s.secondary_check {
            secondary["healthCheck"] = check("/health");
        }
        let mode = ["Auto", "ForcePrimary", "ForceSecondary"][usize::from(s.mode % 3)];
        let mut spec = json!({
            "hostedZoneId": zone_id,
            "name": format!("{}.{zone_name}", if s.name == 0 { "www" } else { "api" }),
            "ttl": 60,
            "primary": {"target": format!("lb{i}.example.net"), "healthCheck": check(if s.check_path == 0 { "/health" } else { "/ready" })},
            "secondary": secondary,
            "mode": mode,
            "aws": {"roleArn": team_role(i)},
        });
        if s.delegation {
            spec["delegation"] = json!({"parentHostedZoneId": self.parent_zone, "ttl": 300});
        }
        object("DnsFailover", &format!("dr{i}"), spec)
    }

    /// HotPool `i` as a user writes it.
    pub fn pool(&self, i: u8, s: &PoolSpec) -> Value {
        let versions: Vec<Value> = s
            .versions
            .iter()
            .enumerate()
            .filter(|(_, v)| v.present)
            .map(|(n, v)| {
                json!({
                    "version": (n + 1).to_string(),
                    "taskDefinition": self.worker_definitions[usize::from(v.task_definition.saturating_sub(1) % 2)],
                    "pooling": v.pooling, "scaleTo": v.scale_to, "port": 7000,
                })
            })
            .collect();
        let spec = json!({
            "cluster": "workers",
            "network": {"subnets": ["subnet-1"]},
            // The orphan and lost-task sweep at its minimum (the default is 30 s), so that it runs
            // often against tasks that are still starting (20 s) or not listed yet (3 s).
            "replenishIntervalSeconds": 5,
            "versions": versions,
            "claims": {"leaseSeconds": 600, "onRelease": if s.recycle { "Recycle" } else { "Stop" }, "whenEmpty": "Wait"},
            "aws": {"roleArn": team_role(i)},
        });
        object("HotPool", &format!("pool{i}"), spec)
    }
}

fn object(kind: &str, name: &str, spec: Value) -> Value {
    json!({"apiVersion": "fargate.operator.dev/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec})
}

/// Someone else's rule, record and task, made outside the operator.
async fn plant_foreign(model: &ModelAws, listener: &str, zone: &str, task_definition: &str) -> Foreign {
    let rule = NewRule {
        path_patterns: vec!["/legacy/*".into()],
        host_headers: vec![],
        actions: vec![Action::FixedResponse { status_code: "410".into() }],
    };
    let tags = BTreeMap::from([("team".to_string(), "legacy".to_string())]);
    let rule_arn = model.elbv2.add_rule(listener, 100, &rule, &tags).expect("foreign rule");
    let record = ResourceRecordSet::builder()
        .name(format!("legacy.{}.", APP_ZONES[0]))
        .r#type(RrType::Cname)
        .ttl(300)
        .resource_records(ResourceRecord::builder().value("legacy.example.net").build().expect("record"))
        .build()
        .expect("record set");
    let change = Change::builder().action(ChangeAction::Create).resource_record_set(record.clone()).build();
    model.route53.external_change(zone, &[change.expect("change")]).expect("foreign record");
    let run = RunTaskRequest {
        cluster: "workers".into(),
        task_definition: task_definition.into(),
        count: 1,
        client_token: "someone-else".into(),
        started_by: "batch-job".into(),
        network_configuration: Some(
            NetworkConfiguration::builder()
                .awsvpc_configuration(AwsVpcConfiguration::builder().subnets("subnet-1").build().expect("awsvpc"))
                .build(),
        ),
        ..Default::default()
    };
    // Someone else's task is there from the start: no capacity failure for it.
    let rate = model.ecs.settings().capacity_failure_rate;
    model.ecs.set_capacity_failure_rate(0.0);
    let task_arn = model.ecs.run_task(&run).await.expect("foreign task").tasks.first().expect("one task").arn.clone();
    model.ecs.set_capacity_failure_rate(rate);
    Foreign { rule_arn, record, task_arn }
}

#[cfg(test)]
mod tests {
    //! The in-memory API server applies no CRD defaults (the real one does). The operator reads
    //! typed objects, and every `default` in the generated CRDs comes from a serde default of the
    //! Rust types (schemars derives it from `#[serde(default)]`), so an object read without the
    //! defaults applied must be the same object. This checks it for every manifest the steps of a
    //! few seeds apply, with the defaults of `crds()` applied as the apiserver would.

    use fargate_operator::api::{DnsFailover, FargateApp, HotPool, crds};
    use serde::de::DeserializeOwned;
    use serde_json::Value;

    use super::World;
    use crate::steps::{Step, generate};

    /// The apiserver's structural defaulting: a missing field (or a `null` one that is not
    /// nullable) with a `default` gets it, then its value is defaulted in turn.
    fn apply_defaults(schema: &Value, value: &mut Value) {
        if let (Some(props), Some(obj)) = (schema.get("properties").and_then(Value::as_object), value.as_object_mut()) {
            for (name, sub) in props {
                let nullable = sub.get("nullable").and_then(Value::as_bool).unwrap_or(false);
                let absent = obj.get(name).is_none_or(|v| v.is_null() && !nullable);
                if let (true, Some(default)) = (absent, sub.get("default")) {
                    obj.insert(name.clone(), default.clone());
                }
                if let Some(child) = obj.get_mut(name) {
                    apply_defaults(sub, child);
                }
            }
        }
        if let (Some(items), Some(list)) = (schema.get("items"), value.as_array_mut()) {
            list.iter_mut().for_each(|v| apply_defaults(items, v));
        }
        if let (Some(values), Some(map)) =
            (schema.get("additionalProperties").filter(|s| s.is_object()), value.as_object_mut())
        {
            map.values_mut().for_each(|v| apply_defaults(values, v));
        }
    }

    fn same_when_defaulted<K: DeserializeOwned + serde::Serialize>(schemas: &[(String, Value)], manifest: &Value) {
        let kind = manifest["kind"].as_str().expect("kind");
        let (_, schema) = schemas.iter().find(|(k, _)| k == kind).expect("a CRD of the kind");
        let mut defaulted = manifest.clone();
        apply_defaults(schema, &mut defaulted);
        assert_ne!(&defaulted, manifest, "the schema has defaults for {kind}");
        let raw: K = serde_json::from_value(manifest.clone()).expect("the manifest reads");
        let full: K = serde_json::from_value(defaulted).expect("the defaulted manifest reads");
        assert_eq!(
            serde_json::to_value(&raw).expect("raw"),
            serde_json::to_value(&full).expect("defaulted"),
            "{kind}: the CRD's defaults differ from the Rust type's"
        );
    }

    #[tokio::test]
    async fn the_manifests_need_no_defaults_from_the_api_server() {
        let world = World::new(1).await;
        let schemas: Vec<(String, Value)> = crds()
            .into_iter()
            .map(|c| {
                let schema = serde_json::to_value(&c.spec.versions[0].schema).expect("schema");
                (c.spec.names.kind, schema["openAPIV3Schema"].clone())
            })
            .collect();
        for seed in 1..=8 {
            for step in generate(seed, 200, 25) {
                match step {
                    Step::App { i, spec } => same_when_defaulted::<FargateApp>(&schemas, &world.app(i, &spec)),
                    Step::Failover { i, spec } => {
                        same_when_defaulted::<DnsFailover>(&schemas, &world.failover(i, &spec))
                    }
                    Step::Pool { i, spec } => same_when_defaulted::<HotPool>(&schemas, &world.pool(i, &spec)),
                    _ => {}
                }
            }
        }
    }
}
