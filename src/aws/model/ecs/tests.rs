//! What moto cannot show: client-token memory, capacity failures, the task lifecycle and lags,
//! retention of stopped tasks and deleted services, INACTIVE revisions refused, faults, replay.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_ecs::types::{AwsVpcConfiguration, ContainerDefinition, NetworkConfiguration};
use futures::executor::block_on;

use super::*;
use crate::aws::ErrorCategory;
use crate::aws::api::ecs::{
    CreateServiceRequest, EcsApi, RegisterTaskDefinitionRequest, RunTaskOutcome, RunTaskRequest, UpdateServiceRequest,
};

const SECOND: Duration = Duration::from_secs(1);

fn model(seed: u64) -> ModelEcs {
    let m = ModelEcs::new(seed, FaultRates::default(), "123456789012", "us-east-1");
    m.create_cluster("apps");
    m
}

fn network() -> NetworkConfiguration {
    let vpc = AwsVpcConfiguration::builder().subnets("subnet-1").build().unwrap();
    NetworkConfiguration::builder().awsvpc_configuration(vpc).build()
}

fn register(m: &ModelEcs, family: &str) -> String {
    let req = RegisterTaskDefinitionRequest {
        family: family.into(),
        cpu: "256".into(),
        memory: "512".into(),
        container_definitions: vec![ContainerDefinition::builder().name("app").image("app:1").build()],
        ..Default::default()
    };
    block_on(m.register_task_definition(&req)).unwrap().arn
}

fn run_request(td: &str, count: i32, token: &str) -> RunTaskRequest {
    RunTaskRequest {
        cluster: "apps".into(),
        task_definition: td.into(),
        count,
        client_token: token.into(),
        started_by: "pool".into(),
        network_configuration: Some(network()),
        tags: BTreeMap::from([("launch".into(), token.into())]),
    }
}

fn run(m: &ModelEcs, td: &str, count: i32, token: &str) -> RunTaskOutcome {
    block_on(m.run_task(&run_request(td, count, token))).unwrap()
}

fn listed(m: &ModelEcs) -> Vec<String> {
    block_on(m.list_tasks("apps", "pool", None)).unwrap().arns
}

fn described(m: &ModelEcs, arn: &str) -> Option<EcsTask> {
    block_on(m.describe_tasks("apps", &[arn.to_string()])).unwrap().into_iter().next()
}

#[test]
fn a_repeated_run_task_token_answers_the_first_tasks_and_failures() {
    let m = model(3);
    m.set_capacity_failure_rate(0.5);
    let td = register(&m, "w");
    let first = run(&m, &td, 10, "tok");
    assert!(!first.tasks.is_empty() && !first.failures.is_empty(), "seed 3 gives a partial start: {first:?}");
    assert_eq!(first.tasks.len() + first.failures.len(), 10);
    let again = run(&m, &td, 10, "tok");
    assert_eq!(again, first, "the same tasks and failures, nothing started again");
    assert_eq!(m.tasks().len(), first.tasks.len());
    let other = block_on(m.run_task(&RunTaskRequest { count: 1, ..run_request(&td, 10, "tok") })).unwrap_err();
    assert_eq!(other.code, "InvalidParameterException", "a token reused with another request");
    m.set_capacity_failure_rate(1.0);
    let none = run(&m, &td, 3, "tok-2");
    assert_eq!((none.tasks.len(), none.failures.len()), (0, 3));
    assert!(none.failures[0].reason.starts_with("Capacity is unavailable"));
}

#[test]
fn tasks_provision_then_run_with_an_ip_and_show_in_list_tasks_after_the_lag() {
    let m = model(1);
    m.set_settings(EcsSettings {
        start_delay: 20 * SECOND,
        list_lag: 5 * SECOND,
        describe_lag: 2 * SECOND,
        ..EcsSettings::default()
    });
    let td = register(&m, "w");
    let t = run(&m, &td, 1, "a").tasks.remove(0);
    assert_eq!(
        (t.last_status.as_str(), t.desired_status.as_str(), t.private_ip.clone()),
        ("PROVISIONING", "RUNNING", None)
    );
    assert_eq!(t.group, "family:w");
    assert_eq!(t.tags.get("launch").map(String::as_str), Some("a"));
    assert!(listed(&m).is_empty() && described(&m, &t.arn).is_none(), "not visible yet");
    m.advance(5 * SECOND);
    assert_eq!(listed(&m), std::slice::from_ref(&t.arn));
    assert_eq!(described(&m, &t.arn).unwrap().last_status, "PROVISIONING");
    m.advance(5 * SECOND);
    let pending = described(&m, &t.arn).unwrap();
    assert_eq!(pending.last_status, "PENDING");
    assert!(pending.private_ip.is_some());
    m.advance(10 * SECOND);
    assert_eq!(described(&m, &t.arn).unwrap().last_status, "RUNNING");
}

#[test]
fn with_a_lag_spread_the_tasks_of_one_run_task_show_in_list_tasks_one_by_one() {
    let m = model(5);
    m.set_settings(EcsSettings {
        list_lag: 5 * SECOND,
        describe_lag: 5 * SECOND,
        lag_spread: 100 * SECOND,
        ..EcsSettings::default()
    });
    let td = register(&m, "w");
    let arns: Vec<String> = run(&m, &td, 8, "a").tasks.into_iter().map(|t| t.arn).collect();
    let mut seen = Vec::new();
    for _ in 0..=105 {
        seen.push(listed(&m).len());
        m.advance(SECOND);
    }
    assert_eq!(seen.first(), Some(&0), "none before the lag");
    assert_eq!(seen.last(), Some(&8), "all after the lag and the spread");
    assert!(seen.iter().any(|&n| n > 0 && n < 8), "some shown before others: {seen:?}");
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "a task once listed stays listed: {seen:?}");
    assert!(arns.iter().all(|a| described(&m, a).is_some()));
}

#[test]
fn a_stopped_task_keeps_its_first_reason_is_described_for_a_while_then_is_unknown() {
    let m = model(1);
    m.set_settings(EcsSettings {
        start_delay: Duration::ZERO,
        stop_delay: 30 * SECOND,
        stopped_retention: 100 * SECOND,
        ..EcsSettings::default()
    });
    let td = register(&m, "w");
    let arn = run(&m, &td, 1, "a").tasks.remove(0).arn;
    assert!(m.stop_task_on_its_own(&arn, "Essential container in task exited"));
    block_on(m.stop_task("apps", &arn, "scale in")).unwrap();
    let t = described(&m, &arn).unwrap();
    assert_eq!((t.last_status.as_str(), t.desired_status.as_str()), ("STOPPING", "STOPPED"));
    assert_eq!(t.stopped_reason.as_deref(), Some("Essential container in task exited"));
    assert!(listed(&m).is_empty(), "desired STOPPED drops out of ListTasks at once");
    m.advance(30 * SECOND);
    assert_eq!(described(&m, &arn).unwrap().last_status, "STOPPED");
    block_on(m.stop_task("apps", &arn, "again")).unwrap();
    m.advance(100 * SECOND);
    assert!(described(&m, &arn).is_none());
    let e = block_on(m.stop_task("apps", &arn, "late")).unwrap_err();
    assert_eq!((e.code.as_str(), e.category), ("InvalidParameterException", ErrorCategory::Terminal));
    assert!(e.message.contains("not found"));
    assert!(m.tasks()[0].task.last_status == "STOPPED" && !m.tasks()[0].visible);
}

#[test]
fn revisions_are_never_reused_and_an_inactive_one_runs_nothing_but_is_still_described() {
    let m = model(1);
    let r1 = register(&m, "w");
    let r2 = register(&m, "w");
    block_on(m.deregister_task_definition(&r2)).unwrap();
    assert_eq!(block_on(m.describe_task_definition("w", false)).unwrap().arn, r1, "newest ACTIVE");
    assert_eq!(block_on(m.describe_task_definition("w:2", false)).unwrap().arn, r2, "INACTIVE by number");
    assert!(register(&m, "w").ends_with("task-definition/w:3"));
    let e = block_on(m.run_task(&run_request(&r2, 1, "x"))).unwrap_err();
    assert_eq!(e.code, "ClientException");
    let e = block_on(m.describe_task_definition("nope", false)).unwrap_err();
    assert!(e.message.contains("task definition") && e.category == ErrorCategory::Terminal);
    // ListTaskDefinitions: the family only (AWS), or every family sharing the prefix; paged.
    register(&m, "w-extra");
    assert_eq!(block_on(m.list_task_definitions("w", None)).unwrap().arns.len(), 2);
    m.set_settings(EcsSettings { page_size: 2, list_task_definitions_by_prefix: true, ..EcsSettings::default() });
    let p1 = block_on(m.list_task_definitions("w", None)).unwrap();
    let p2 = block_on(m.list_task_definitions("w", p1.next_token.as_deref())).unwrap();
    assert_eq!((p1.arns.len(), p2.arns.len(), p2.next_token), (2, 1, None));
    assert!(p2.arns[0].ends_with("w-extra:1"));
}

fn create(td: &str, token: &str) -> CreateServiceRequest {
    CreateServiceRequest {
        cluster: "apps".into(),
        service_name: "svc".into(),
        task_definition: td.into(),
        desired_count: 2,
        network_configuration: Some(network()),
        client_token: token.into(),
        ..Default::default()
    }
}

#[test]
fn a_deleted_service_drains_turns_inactive_and_is_forgotten_and_tokens_are_remembered() {
    let m = model(1);
    m.set_settings(EcsSettings {
        start_delay: 10 * SECOND,
        drain_delay: 30 * SECOND,
        inactive_retention: 60 * SECOND,
        ..EcsSettings::default()
    });
    let td = register(&m, "w");
    let first = block_on(m.create_service(&create(&td, "t1"))).unwrap();
    assert_eq!((first.running_count, first.pending_count), (0, 2));
    assert_eq!(block_on(m.create_service(&create(&td, "t1"))).unwrap(), first);
    let e = block_on(m.create_service(&create(&td, "t2"))).unwrap_err();
    assert_eq!(e.code, "InvalidParameterException", "a live service of that name");
    m.advance(10 * SECOND);
    let s = block_on(m.describe_services("apps", std::slice::from_ref(&first.arn))).unwrap().remove(0);
    assert_eq!((s.running_count, s.deployments[0].rollout_state.as_deref()), (2, Some("COMPLETED")));
    let update = UpdateServiceRequest {
        cluster: "apps".into(),
        service: "svc".into(),
        force_new_deployment: true,
        ..Default::default()
    };
    block_on(m.update_service(&update)).unwrap();
    let s = block_on(m.describe_services("apps", &["svc".to_string()])).unwrap().remove(0);
    assert_eq!(s.deployments.iter().map(|d| d.status.as_str()).collect::<Vec<_>>(), ["ACTIVE", "PRIMARY"]);
    block_on(m.delete_service("apps", "svc")).unwrap();
    assert_eq!(block_on(m.describe_services("apps", &["svc".to_string()])).unwrap()[0].status, "DRAINING");
    assert_eq!(block_on(m.update_service(&update)).unwrap_err().code, "ServiceNotActiveException");
    assert_eq!(block_on(m.delete_service("apps", "svc")).unwrap_err().code, "ServiceNotActiveException");
    assert!(block_on(m.create_service(&create(&td, "t3"))).unwrap_err().message.contains("Draining"));
    m.advance(30 * SECOND);
    assert_eq!(block_on(m.describe_services("apps", &["svc".to_string()])).unwrap()[0].status, "INACTIVE");
    m.advance(60 * SECOND);
    assert!(block_on(m.describe_services("apps", &["svc".to_string()])).unwrap().is_empty());
    let e = block_on(m.update_service(&update)).unwrap_err();
    assert_eq!((e.code.as_str(), e.category), ("ServiceNotFoundException", ErrorCategory::NotFound));
    let again = block_on(m.create_service(&create(&td, "t3"))).unwrap();
    assert_eq!(again.status, "ACTIVE");
    assert_eq!(block_on(m.create_service(&create(&td, "t1"))).unwrap().status, "INACTIVE", "t1's service");
}

#[test]
fn a_lost_answer_executes_and_a_refusal_does_not() {
    let m = model(1);
    let td = register(&m, "w");
    m.set_faults(FaultRates { lost: 1.0, ..Default::default() });
    let e = block_on(m.run_task(&run_request(&td, 2, "lost"))).unwrap_err();
    assert_eq!(e.category, ErrorCategory::Transient);
    assert_eq!(m.tasks().len(), 2, "the tasks started");
    m.set_faults(FaultRates { throttle: 1.0, ..Default::default() });
    let e = block_on(m.run_task(&run_request(&td, 2, "refused"))).unwrap_err();
    assert_eq!(e.category, ErrorCategory::Throttling);
    m.set_faults(FaultRates::default());
    assert_eq!(m.tasks().len(), 2, "nothing started");
    assert_eq!(run(&m, &td, 2, "lost").tasks.len(), 2, "the lost call's token answers its tasks");
    assert_eq!(m.tasks().len(), 2);
}

#[test]
fn a_seed_replays_the_same_ids_and_failures() {
    let go = |seed| {
        let m = model(seed);
        m.set_settings(EcsSettings { capacity_failure_rate: 0.3, ..EcsSettings::default() });
        let td = register(&m, "w");
        m.set_faults(FaultRates { lost: 0.2, ..Default::default() });
        let answers: Vec<String> =
            (0..5).map(|i| format!("{:?}", block_on(m.run_task(&run_request(&td, 4, &format!("t{i}")))))).collect();
        (answers, m.stop_random_task("chaos"))
    };
    assert_eq!(go(9), go(9));
    assert_ne!(go(9), go(10));
}

#[test]
fn missing_clusters_and_paging_of_list_tasks() {
    let m = model(1);
    m.set_settings(EcsSettings { page_size: 3, ..EcsSettings::default() });
    let td = register(&m, "w");
    let arns: Vec<String> = run(&m, &td, 5, "a").tasks.into_iter().map(|t| t.arn).collect();
    let p1 = block_on(m.list_tasks("apps", "pool", None)).unwrap();
    let p2 = block_on(m.list_tasks("apps", "pool", p1.next_token.as_deref())).unwrap();
    assert_eq!([p1.arns, p2.arns].concat(), arns);
    assert_eq!(p2.next_token, None);
    assert!(block_on(m.list_tasks("apps", "pool", Some("bogus"))).is_err());
    assert!(m.delete_cluster("apps"));
    for e in [
        block_on(m.list_tasks("apps", "pool", None)).unwrap_err(),
        block_on(m.describe_tasks("apps", &arns)).unwrap_err(),
        block_on(m.stop_task("apps", &arns[0], "x")).unwrap_err(),
        block_on(m.run_task(&run_request(&td, 1, "a"))).unwrap_err(),
        block_on(m.describe_services("arn:aws:ecs:us-east-1:123456789012:cluster/apps", &["svc".to_string()]))
            .unwrap_err(),
    ] {
        assert_eq!((e.code.as_str(), e.category), ("ClusterNotFoundException", ErrorCategory::NotFound));
    }
    assert!(m.tasks().iter().all(|t| !t.visible), "its tasks are forgotten");
}
