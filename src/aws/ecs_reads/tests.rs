use std::sync::Arc;

use aws_sdk_ecs::types::{AwsVpcConfiguration, ContainerDefinition, NetworkConfiguration};

use super::*;
use crate::aws::api::ecs::{CreateServiceRequest, RegisterTaskDefinitionRequest};
use crate::aws::model::FaultRates;
use crate::aws::model::ecs::ModelEcs;
use crate::aws::{BudgetSettings, Budgets, RetryPolicy};
use crate::runtime::metrics::Metrics;

fn caller() -> (AwsCaller, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new());
    (AwsCaller::new(Budgets::new(BudgetSettings::default()), metrics.clone(), RetryPolicy::default()), metrics)
}

/// DescribeServices calls so far, whatever their outcome.
fn calls(metrics: &Metrics) -> u64 {
    ["success", "throttling", "transient", "not_found", "conflict", "terminal"]
        .iter()
        .map(|outcome| metrics.aws_call_count("ecs", "DescribeServices", outcome))
        .sum()
}

async fn model_with(services: usize) -> Arc<ModelEcs> {
    let m = Arc::new(ModelEcs::new(7, FaultRates::default(), "123456789012", "us-east-1"));
    m.create_cluster("apps");
    let td = m
        .register_task_definition(&RegisterTaskDefinitionRequest {
            family: "web".into(),
            cpu: "256".into(),
            memory: "512".into(),
            container_definitions: vec![ContainerDefinition::builder().name("app").image("app:1").build()],
            ..Default::default()
        })
        .await
        .expect("register")
        .arn;
    let vpc = AwsVpcConfiguration::builder().subnets("subnet-1").build().expect("vpc");
    for i in 0..services {
        m.create_service(&CreateServiceRequest {
            cluster: "apps".into(),
            service_name: format!("svc{i}"),
            task_definition: td.clone(),
            desired_count: 1,
            network_configuration: Some(NetworkConfiguration::builder().awsvpc_configuration(vpc.clone()).build()),
            ..Default::default()
        })
        .await
        .expect("create");
    }
    m
}

#[tokio::test(start_paused = true)]
async fn reads_made_together_share_calls_of_ten_and_each_gets_its_own_service() {
    let m = model_with(25).await;
    let (reads, (caller, metrics)) = (Arc::new(ServiceReads::default()), caller());
    let mut names: Vec<String> = (0..25).map(|i| format!("svc{i}")).collect();
    names.push("missing".into());
    names.push("svc3".into());
    let answers = futures::future::join_all(names.iter().map(|n| reads.describe(&caller, m.as_ref(), "apps", n))).await;
    for (name, answer) in names.iter().zip(answers) {
        let services = answer.expect("answer");
        let found: Vec<&str> = services.iter().map(|s| name_of(&s.arn)).collect();
        let expected: Vec<&str> = if name == "missing" { vec![] } else { vec![name.as_str()] };
        assert_eq!(found, expected, "{name}");
    }
    // 26 distinct names: three calls, not 27.
    assert_eq!(calls(&metrics), 3);
}

#[tokio::test(start_paused = true)]
async fn a_first_reader_cancelled_while_waiting_leaves_no_reader_stranded() {
    let m = model_with(2).await;
    let (reads, (caller, metrics)) = (Arc::new(ServiceReads::default()), caller());
    // The first reader is dropped during its linger, after the second joined its queue.
    let mut first = Box::pin(reads.describe(&caller, m.as_ref(), "apps", "svc0"));
    assert!(futures::poll!(first.as_mut()).is_pending(), "lingering");
    let mut second = Box::pin(reads.describe(&caller, m.as_ref(), "apps", "svc1"));
    assert!(futures::poll!(second.as_mut()).is_pending(), "queued behind the first");
    drop(first);
    assert_eq!(second.await.expect("answer").len(), 1, "read alone once the queue's reader went away");
    assert_eq!(calls(&metrics), 1);
    // A later reader starts a new queue rather than joining the abandoned one.
    let third = reads.describe(&caller, m.as_ref(), "apps", "svc0").await.expect("answer");
    assert_eq!(third.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_error_reaches_every_reader_of_the_call() {
    let m = model_with(1).await;
    let (reads, (caller, metrics)) = (Arc::new(ServiceReads::default()), caller());
    let answers =
        futures::future::join_all(["a", "b"].map(|n| reads.describe(&caller, m.as_ref(), "no-such-cluster", n))).await;
    for answer in answers {
        let err = answer.expect_err("a missing cluster is an error");
        assert_eq!(err.operation, "DescribeServices");
    }
    assert_eq!(calls(&metrics), 1, "one call for both");
}
