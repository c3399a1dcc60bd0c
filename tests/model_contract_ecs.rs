#![cfg(feature = "sim")]
//! Contract test of the ECS model: the same scripted [`EcsApi`] calls against moto (through
//! [`SdkEcs`], the production implementation) and against [`ModelEcs`], answers normalised (ARNs
//! of this account reduced to their resource part, task ARNs to their order of appearance) and
//! compared step by step.
//!
//! Where moto is known to differ from AWS the model follows AWS's documentation; those steps are
//! recorded for both but compared only on the model's side, against AWS's documented answer:
//! - DeleteService: moto turns the service INACTIVE at once, AWS DRAINING, then INACTIVE.
//! - UpdateService of a deleted service: moto updates it, AWS answers ServiceNotActiveException.
//! - CreateService of a live name: moto replaces the service, AWS answers InvalidParameterException.
//! - RegisterTaskDefinition: moto answers no tags, AWS the revision's.
//! - stoppedReason: moto answers an empty one for a task not stopped; both read as none here.
//! - RunTask of an INACTIVE revision: moto starts it, AWS answers ClientException.
//! - StopTask of an unknown task: moto fails with a 500, AWS answers InvalidParameterException.
//! - Task lifecycle: moto starts tasks RUNNING at once, the model goes PROVISIONING → PENDING →
//!   RUNNING over its start delay (so lastStatus and the IP are compared after it). Both answer a
//!   repeated clientToken of CreateService and RunTask with the first call's service or tasks.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_ecs::types::{AwsVpcConfiguration, ContainerDefinition, NetworkConfiguration};
use fargate_operator::aws::Classified;
use fargate_operator::aws::api::ecs::{
    CreateServiceRequest, EcsApi, EcsService, EcsTask, RegisterTaskDefinitionRequest, RunTaskRequest, SdkEcs,
    UpdateServiceRequest,
};
use fargate_operator::aws::model::FaultRates;
use fargate_operator::aws::model::ecs::ModelEcs;

const CLUSTER: &str = "apps";
const LAUNCH_TAG: &str = "fargate.operator.dev/launch";

/// Steps recorded for both but compared on the model's side only (see the module docs).
const MOTO_DIFFERS: &[&str] = &[
    "delete_service.describe",
    "update_deleted_service",
    "create_live_duplicate",
    "register.tags",
    "run_task_inactive_revision",
    "stop_unknown_task",
];

/// The normalised answers of one run, in order, and the task ARNs seen (their index names them).
#[derive(Default)]
struct Log {
    steps: Vec<(&'static str, String)>,
    tasks: Vec<String>,
}

impl Log {
    fn push(&mut self, step: &'static str, answer: String) {
        self.steps.push((step, answer));
    }

    /// `task#N` for a task ARN, numbered by first appearance.
    fn task(&mut self, arn: &str) -> String {
        let index = self.tasks.iter().position(|a| a == arn).unwrap_or_else(|| {
            self.tasks.push(arn.to_string());
            self.tasks.len() - 1
        });
        format!("task#{index}")
    }

    fn get(&self, step: &str) -> Vec<&str> {
        self.steps.iter().filter(|(s, _)| *s == step).map(|(_, a)| a.as_str()).collect()
    }
}

/// The resource part of an ARN (`task-definition/web:2`, `service/apps/svc`).
fn resource(arn: &str) -> String {
    arn.splitn(6, ':').nth(5).unwrap_or(arn).to_string()
}

fn error_of(e: &Classified) -> String {
    format!("error {} ({})", e.code, e.category)
}

fn answer<T>(r: &Result<T, Classified>, ok: impl FnOnce(&T) -> String) -> String {
    match r {
        Ok(v) => ok(v),
        Err(e) => error_of(e),
    }
}

fn service(s: &EcsService) -> String {
    format!(
        "{} status={} desired={} td={} tags={:?}",
        resource(&s.arn),
        s.status,
        s.desired_count,
        resource(&s.task_definition),
        s.tags
    )
}

fn task(log: &mut Log, t: &EcsTask) -> String {
    format!(
        "{} desired={} startedBy={} group={} reason={:?} tags={:?}",
        log.task(&t.arn),
        t.desired_status,
        t.started_by,
        t.group,
        t.stopped_reason.as_deref().filter(|r| !r.is_empty()),
        t.tags
    )
}

fn network(subnet: &str, security_group: &str) -> NetworkConfiguration {
    let vpc = AwsVpcConfiguration::builder().subnets(subnet).security_groups(security_group).build().expect("vpc");
    NetworkConfiguration::builder().awsvpc_configuration(vpc).build()
}

fn td_request(family: &str) -> RegisterTaskDefinitionRequest {
    RegisterTaskDefinitionRequest {
        family: family.into(),
        cpu: "256".into(),
        memory: "512".into(),
        // moto needs a container-level memory to place the task.
        container_definitions: vec![
            ContainerDefinition::builder().name("app").image("example/app:1").memory(512).build(),
        ],
        tags: BTreeMap::from([("owner".into(), "contract".into())]),
        ..Default::default()
    }
}

/// The script. `settle` lets time pass (the model's clock; moto has none).
async fn script(ecs: &dyn EcsApi, net: &NetworkConfiguration, settle: &dyn Fn(Duration)) -> Log {
    let mut log = Log::default();

    // Task definitions: two revisions, another family sharing the prefix, describe, list, deregister.
    for _ in 0..2 {
        let r = ecs.register_task_definition(&td_request("web")).await;
        log.push("register", answer(&r, |t| resource(&t.arn)));
        log.push("register.tags", answer(&r, |t| format!("{:?}", t.tags)));
    }
    let r = ecs.register_task_definition(&td_request("web-extra")).await;
    log.push("register", answer(&r, |t| resource(&t.arn)));
    let rev1 = ecs.describe_task_definition("web:1", false).await.map(|t| t.arn).unwrap_or_default();
    let rev2 = ecs.describe_task_definition("web", false).await.map(|t| t.arn).unwrap_or_default();
    log.push("describe_td.family", resource(&rev2));
    let r = ecs.describe_task_definition(&rev1, true).await;
    log.push("describe_td.arn", answer(&r, |t| format!("{} tags={:?}", resource(&t.arn), t.tags)));
    let r = ecs.describe_task_definition("nope", false).await;
    log.push("describe_td.unknown", answer(&r, |t| resource(&t.arn)));
    let list = |log: &mut Log, r: Result<fargate_operator::aws::api::ecs::Page, Classified>| {
        log.push(
            "list_td",
            answer(&r, |p| {
                format!("{:?} next={}", p.arns.iter().map(|a| resource(a)).collect::<Vec<_>>(), p.next_token.is_some())
            }),
        )
    };
    list(&mut log, ecs.list_task_definitions("web", None).await);
    let r = ecs.deregister_task_definition("web:1").await;
    log.push("deregister", answer(&r, |_| "ok".into()));
    list(&mut log, ecs.list_task_definitions("web", None).await);
    let r = ecs.describe_task_definition(&rev1, false).await;
    log.push("describe_td.inactive", answer(&r, |t| resource(&t.arn)));
    let r = ecs.describe_task_definition("web", false).await;
    log.push("describe_td.family_after", answer(&r, |t| resource(&t.arn)));
    let r = ecs.deregister_task_definition("web:99").await;
    log.push("deregister.unknown", answer(&r, |_| "ok".into()));

    // Services.
    let create = |token: &str, desired: i32| CreateServiceRequest {
        cluster: CLUSTER.into(),
        service_name: "svc".into(),
        task_definition: rev2.clone(),
        desired_count: desired,
        network_configuration: Some(net.clone()),
        client_token: token.into(),
        tags: BTreeMap::from([("owner".into(), "contract".into())]),
        ..Default::default()
    };
    let r = ecs.create_service(&create("tok-1", 1)).await;
    log.push("create_service", answer(&r, service));
    let r = ecs.create_service(&create("tok-1", 1)).await;
    log.push("create_service_token_repeat", answer(&r, service));
    let r = ecs.describe_services(CLUSTER, &["svc".to_string()]).await;
    log.push("describe_services", answer(&r, |v| format!("{:?}", v.iter().map(service).collect::<Vec<_>>())));
    let r = ecs.describe_services(CLUSTER, &["ghost".to_string()]).await;
    log.push("describe_services.unknown", answer(&r, |v| format!("{} services", v.len())));
    // Many names in one call (the operator reads up to 10 apps' services together): the known
    // ones answer, an unknown one is left out.
    let r = ecs.describe_services(CLUSTER, &["ghost".to_string(), "svc".to_string()]).await;
    log.push("describe_services.many", answer(&r, |v| format!("{:?}", v.iter().map(service).collect::<Vec<_>>())));
    let update = |service: &str| UpdateServiceRequest {
        cluster: CLUSTER.into(),
        service: service.into(),
        desired_count: Some(3),
        ..Default::default()
    };
    let r = ecs.update_service(&update("svc")).await;
    log.push("update_service", answer(&r, |_| "ok".into()));
    let r = ecs.describe_services(CLUSTER, &["svc".to_string()]).await;
    log.push(
        "update_service.describe",
        answer(&r, |v| format!("{:?}", v.iter().map(|s| s.desired_count).collect::<Vec<_>>())),
    );
    let r = ecs.update_service(&update("ghost")).await;
    log.push("update_service.unknown", answer(&r, |_| "ok".into()));
    let r = ecs.delete_service(CLUSTER, "svc").await;
    log.push("delete_service", answer(&r, |_| "ok".into()));
    let r = ecs.describe_services(CLUSTER, &["svc".to_string()]).await;
    log.push(
        "delete_service.describe",
        answer(&r, |v| format!("{:?}", v.iter().map(|s| s.status.clone()).collect::<Vec<_>>())),
    );
    let r = ecs.update_service(&update("svc")).await;
    log.push("update_deleted_service", answer(&r, |_| "ok".into()));
    settle(Duration::from_secs(120));
    let r = ecs.create_service(&create("tok-2", 2)).await;
    log.push("create_service.again", answer(&r, service));
    let r = ecs.create_service(&create("tok-3", 2)).await;
    log.push("create_live_duplicate", answer(&r, service));

    // Tasks.
    let tags = BTreeMap::from([(LAUNCH_TAG.to_string(), "launch-1".to_string()), ("owner".into(), "contract".into())]);
    let run = RunTaskRequest {
        cluster: CLUSTER.into(),
        task_definition: rev2.clone(),
        count: 2,
        client_token: "run-1".into(),
        started_by: "pool-1".into(),
        network_configuration: Some(net.clone()),
        tags,
    };
    let r = ecs.run_task(&run).await;
    let started: Vec<String> = r.as_ref().map(|o| o.tasks.iter().map(|t| t.arn.clone()).collect()).unwrap_or_default();
    let a = match &r {
        Ok(o) => {
            format!("{:?} failures={}", o.tasks.iter().map(|t| task(&mut log, t)).collect::<Vec<_>>(), o.failures.len())
        }
        Err(e) => error_of(e),
    };
    log.push("run_task", a);
    let r = ecs.run_task(&run).await;
    let a = match &r {
        Ok(o) => format!("{:?}", o.tasks.iter().map(|t| log.task(&t.arn)).collect::<Vec<_>>()),
        Err(e) => error_of(e),
    };
    log.push("run_task_token_repeat", a);
    let r = ecs
        .run_task(&RunTaskRequest { task_definition: rev1.clone(), client_token: "run-2".into(), ..run.clone() })
        .await;
    log.push("run_task_inactive_revision", answer(&r, |o| format!("{} tasks", o.tasks.len())));
    let r = ecs.list_tasks(CLUSTER, "pool-1", None).await;
    let a = match &r {
        Ok(p) => {
            let mut names: Vec<String> = p.arns.iter().filter(|a| started.contains(a)).map(|a| log.task(a)).collect();
            names.sort();
            format!("{names:?}")
        }
        Err(e) => error_of(e),
    };
    log.push("list_tasks", a);
    let r = ecs.list_tasks(CLUSTER, "nobody", None).await;
    log.push("list_tasks.other", answer(&r, |p| format!("{} tasks", p.arns.len())));
    settle(Duration::from_secs(60));
    let mut asked = started.clone();
    asked.push(format!("{}-unknown", started.first().cloned().unwrap_or_default()));
    let r = ecs.describe_tasks(CLUSTER, &asked).await;
    let a = match &r {
        Ok(v) => format!("{:?}", v.iter().map(|t| task(&mut log, t)).collect::<Vec<_>>()),
        Err(e) => error_of(e),
    };
    log.push("describe_tasks", a);
    let a = match &r {
        Ok(v) => format!("{:?}", v.iter().map(|t| (t.last_status.clone(), t.private_ip.is_some())).collect::<Vec<_>>()),
        Err(e) => error_of(e),
    };
    log.push("task_status_after_start", a);
    let first = started.first().cloned().unwrap_or_default();
    for step in ["stop_task", "stop_task.again"] {
        let r = ecs.stop_task(CLUSTER, &first, "done").await;
        log.push(step, answer(&r, |_| "ok".into()));
    }
    let r = ecs.describe_tasks(CLUSTER, std::slice::from_ref(&first)).await;
    let a = match &r {
        Ok(v) => format!("{:?}", v.iter().map(|t| task(&mut log, t)).collect::<Vec<_>>()),
        Err(e) => error_of(e),
    };
    log.push("stop_task.describe", a);
    let r = ecs.list_tasks(CLUSTER, "pool-1", None).await;
    let a = match &r {
        Ok(p) => {
            format!("{:?}", p.arns.iter().filter(|a| started.contains(a)).map(|a| log.task(a)).collect::<Vec<_>>())
        }
        Err(e) => error_of(e),
    };
    log.push("stop_task.list", a);
    let unknown = format!("{}0", first.trim_end_matches(|c: char| c.is_ascii_hexdigit()));
    let r = ecs.stop_task(CLUSTER, &unknown, "done").await;
    log.push("stop_unknown_task", answer(&r, |_| "ok".into()));

    // A cluster that does not exist.
    let gone = "nowhere";
    log.push(
        "missing.describe_services",
        answer(&ecs.describe_services(gone, &["svc".to_string()]).await, |_| "ok".into()),
    );
    log.push(
        "missing.create_service",
        answer(&ecs.create_service(&CreateServiceRequest { cluster: gone.into(), ..create("tok-9", 1) }).await, |_| {
            "ok".into()
        }),
    );
    log.push(
        "missing.update_service",
        answer(&ecs.update_service(&UpdateServiceRequest { cluster: gone.into(), ..update("svc") }).await, |_| {
            "ok".into()
        }),
    );
    log.push("missing.delete_service", answer(&ecs.delete_service(gone, "svc").await, |_| "ok".into()));
    log.push(
        "missing.run_task",
        answer(
            &ecs.run_task(&RunTaskRequest { cluster: gone.into(), client_token: "run-9".into(), ..run.clone() }).await,
            |_| "ok".into(),
        ),
    );
    log.push("missing.list_tasks", answer(&ecs.list_tasks(gone, "pool-1", None).await, |_| "ok".into()));
    log.push("missing.describe_tasks", answer(&ecs.describe_tasks(gone, &started).await, |_| "ok".into()));
    log.push("missing.stop_task", answer(&ecs.stop_task(gone, &first, "done").await, |_| "ok".into()));
    log
}

#[tokio::test]
async fn the_model_answers_the_script_as_moto_does_except_where_moto_differs_from_aws() {
    let ctx = support::TestCtx::new("model-contract-ecs").await;
    let cfg = ctx.sdk_config().await;
    let net = support::fixtures::network(&cfg).await;
    let network = network(&net.subnets[0], &net.security_group);
    support::fixtures::ecs_cluster(&cfg, CLUSTER).await;
    let moto = script(&SdkEcs::new(aws_sdk_ecs::Client::new(&cfg)), &network, &|_| {}).await;

    let model = ModelEcs::new(7, FaultRates::default(), &ctx.account, support::REGION);
    model.create_cluster(CLUSTER);
    let ours = script(&model, &network, &|d| model.advance(d)).await;

    let steps: Vec<&str> = moto.steps.iter().map(|(s, _)| *s).collect();
    assert_eq!(steps, ours.steps.iter().map(|(s, _)| *s).collect::<Vec<_>>(), "the same script ran");
    let mut mismatches = Vec::new();
    for ((step, m), (_, o)) in moto.steps.iter().zip(&ours.steps) {
        if MOTO_DIFFERS.contains(step) {
            eprintln!("{step}: moto {m} | model {o} (moto differs from AWS: not compared)");
        } else if m != o {
            mismatches.push(format!("{step}:\n  moto  {m}\n  model {o}"));
        }
    }
    assert!(mismatches.is_empty(), "the model differs from moto:\n{}", mismatches.join("\n"));

    // What AWS documents where moto differs: the model's side of the skipped steps.
    let one = |step: &str| ours.get(step).first().map(|s| s.to_string()).unwrap_or_default();
    assert_eq!(one("delete_service.describe"), r#"["DRAINING"]"#);
    assert_eq!(one("update_deleted_service"), "error ServiceNotActiveException (terminal)");
    assert!(one("create_live_duplicate").starts_with("error InvalidParameterException"));
    assert_eq!(one("register.tags"), r#"{"owner": "contract"}"#);
    assert_eq!(one("create_service_token_repeat"), one("create_service"), "a repeated token answers the first service");
    assert_eq!(one("run_task_token_repeat"), r#"["task#0", "task#1"]"#, "a repeated token answers the first tasks");
    assert_eq!(one("run_task_inactive_revision"), "error ClientException (terminal)");
    assert_eq!(one("stop_unknown_task"), "error InvalidParameterException (terminal)");
    let services = model.services();
    assert_eq!(services.iter().map(|s| s.service.status.as_str()).collect::<Vec<_>>(), ["INACTIVE", "ACTIVE"]);
    ctx.cleanup().await;
}
