use std::collections::BTreeMap;
use std::sync::Arc;

use super::*;
use crate::aws::api::elbv2::{NewTargetGroup, RuleSpec, TargetGroupHealthCheck};
use crate::aws::model::FaultRates;
use crate::aws::model::elbv2::{Action, ModelElbv2};
use crate::aws::{BudgetSettings, Budgets, RetryPolicy};
use crate::runtime::metrics::Metrics;

fn caller() -> (AwsCaller, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new());
    (AwsCaller::new(Budgets::new(BudgetSettings::default()), metrics.clone(), RetryPolicy::default()), metrics)
}

/// Calls of `operation` so far, whatever their outcome.
fn calls(metrics: &Metrics, operation: &str) -> u64 {
    ["success", "throttling", "transient", "not_found", "conflict", "terminal"]
        .iter()
        .map(|outcome| metrics.aws_call_count("elbv2", operation, outcome))
        .sum()
}

/// A load balancer with one listener, and target groups `tg0`..`tg{groups}` each behind a rule.
async fn world(groups: usize) -> (Arc<ModelElbv2>, String) {
    let m = Arc::new(ModelElbv2::new(3, FaultRates::default(), "123456789012", "us-east-1"));
    let lb = m.create_load_balancer("a", "vpc-1").expect("load balancer");
    let fixed = vec![Action::FixedResponse { status_code: "404".into() }];
    let listener = m.create_listener(&lb.arn, 80, fixed).expect("listener").arn;
    for i in 0..groups {
        let group = NewTargetGroup {
            name: format!("tg{i}"),
            protocol: "HTTP".into(),
            port: 8080,
            vpc_id: "vpc-1".into(),
            health_check: TargetGroupHealthCheck {
                path: "/".into(),
                interval_seconds: 30,
                timeout_seconds: 5,
                healthy_threshold: 5,
                unhealthy_threshold: 2,
                matcher: "200".into(),
            },
            tags: BTreeMap::new(),
        };
        let arn = m.create_target_group(&group).await.expect("target group");
        let spec = RuleSpec { path_patterns: vec![format!("/{i}")], host_headers: vec![], target_group_arn: arn };
        m.create_rule(&listener, i32::try_from(i + 1).expect("small"), &spec, &BTreeMap::new()).await.expect("rule");
    }
    (m, listener)
}

#[tokio::test(start_paused = true)]
async fn passes_asking_for_one_listener_together_share_one_walk() {
    let (m, listener) = world(5).await;
    let (reads, (caller, metrics)) = (ElbReads::default(), caller());
    let answers = futures::future::join_all((0..30).map(|_| reads.rules(&caller, m.as_ref(), &listener))).await;
    for answer in answers {
        // Five rules and the default one.
        assert_eq!(answer.expect("rules").len(), 6);
    }
    assert_eq!(calls(&metrics, "DescribeRules"), 1);
    // A later pass reads again: nothing is cached past the batch.
    reads.rules(&caller, m.as_ref(), &listener).await.expect("rules");
    assert_eq!(calls(&metrics, "DescribeRules"), 2);
}

#[tokio::test(start_paused = true)]
async fn target_groups_are_read_twenty_names_a_call_and_each_pass_gets_its_own() {
    let (m, _) = world(45).await;
    let (reads, (caller, metrics)) = (ElbReads::default(), caller());
    let names: Vec<String> = (0..45).map(|i| format!("tg{i}")).collect();
    let answers =
        futures::future::join_all(names.iter().map(|n| reads.target_group(&caller, m.as_ref(), n, true))).await;
    for (name, answer) in names.iter().zip(answers) {
        assert_eq!(answer.expect("answer").map(|g| g.name), Some(name.clone()));
    }
    assert_eq!(calls(&metrics, "DescribeTargetGroups"), 3, "45 names: 20 + 20 + 5");
}

#[tokio::test(start_paused = true)]
async fn a_batch_with_an_unknown_name_is_read_again_name_by_name() {
    let (m, _) = world(3).await;
    let (reads, (caller, metrics)) = (ElbReads::default(), caller());
    let names = ["tg0", "missing", "tg2"];
    let answers =
        futures::future::join_all(names.iter().map(|n| reads.target_group(&caller, m.as_ref(), n, true))).await;
    let found: Vec<Option<String>> = answers.into_iter().map(|a| a.expect("answer").map(|g| g.name)).collect();
    assert_eq!(found, vec![Some("tg0".to_string()), None, Some("tg2".to_string())]);
    assert_eq!(calls(&metrics, "DescribeTargetGroups"), 4, "the refused batch, then one per name");
    // Read alone, an unknown name costs one call.
    assert_eq!(reads.target_group(&caller, m.as_ref(), "missing", false).await.expect("answer"), None);
    assert_eq!(calls(&metrics, "DescribeTargetGroups"), 5);
}
