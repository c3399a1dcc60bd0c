use std::sync::Arc;

use aws_sdk_route53::types::{Change, ChangeAction, HealthCheckConfig, HealthCheckType, ResourceRecord, RrType};

use super::*;
use crate::aws::model::FaultRates;
use crate::aws::model::route53::ModelRoute53;
use crate::aws::{BudgetSettings, Budgets, RetryPolicy};
use crate::runtime::metrics::Metrics;

fn caller() -> (AwsCaller, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new());
    (AwsCaller::new(Budgets::new(BudgetSettings::default()), metrics.clone(), RetryPolicy::default()), metrics)
}

fn calls(metrics: &Metrics, operation: &str) -> u64 {
    ["success", "throttling", "transient", "not_found", "conflict", "terminal"]
        .iter()
        .map(|outcome| metrics.aws_call_count("route53", operation, outcome))
        .sum()
}

fn upsert(name: &str, rtype: RrType, value: &str) -> Change {
    let set = ResourceRecordSet::builder()
        .name(name)
        .r#type(rtype)
        .ttl(60)
        .resource_records(ResourceRecord::builder().value(value).build().expect("record"))
        .build()
        .expect("set");
    Change::builder().action(ChangeAction::Upsert).resource_record_set(set).build().expect("change")
}

/// A zone with an A and a TXT record at each of `names` names (`svcN.example.com`).
fn zone_with(names: usize) -> (Arc<ModelRoute53>, String) {
    let m = Arc::new(ModelRoute53::new(5, FaultRates::default(), "123456789012", "us-east-1"));
    let zone = m.create_zone("example.com").id.trim_start_matches("/hostedzone/").to_string();
    let mut changes = Vec::new();
    for i in 0..names {
        changes.push(upsert(&format!("svc{i}.example.com"), RrType::A, &format!("10.0.{}.{}", i / 250, i % 250)));
        changes.push(upsert(&format!("svc{i}.example.com"), RrType::Txt, "\"mark\""));
    }
    for batch in changes.chunks(500) {
        m.external_change(&zone, batch).expect("records");
    }
    (m, zone)
}

#[tokio::test(start_paused = true)]
async fn names_asked_together_share_one_walk_of_the_zone() {
    let (m, zone) = zone_with(40);
    let (reads, (caller, metrics)) = (Route53Reads::default(), caller());
    let names: Vec<String> = (0..40).map(|i| format!("SVC{i}.example.com.")).collect();
    let answers =
        futures::future::join_all(names.iter().map(|n| reads.records_at(&caller, m.as_ref(), &zone, n))).await;
    for (i, answer) in answers.into_iter().enumerate() {
        let sets = answer.expect("records");
        assert_eq!(sets.len(), 2, "svc{i}: its A and TXT");
        assert!(sets.iter().all(|s| s.name().starts_with(&format!("svc{i}."))), "{sets:?}");
    }
    // 80 records and the zone's SOA and NS: one page of 300.
    assert_eq!(calls(&metrics, "ListResourceRecordSets"), 1);
    // One name alone is read at its name.
    let one = reads.records_at(&caller, m.as_ref(), &zone, "svc3.example.com").await.expect("records");
    assert_eq!(one.len(), 2);
    assert_eq!(calls(&metrics, "ListResourceRecordSets"), 2);
}

#[tokio::test(start_paused = true)]
async fn a_zone_larger_than_the_names_asked_is_read_name_by_name_after_one_try() {
    // 700 names, 1,400 record sets: five pages of 300.
    let (m, zone) = zone_with(700);
    let (reads, (caller, metrics)) = (Route53Reads::default(), caller());
    let ask = |names: Vec<String>| {
        let (reads, caller, m, zone) = (&reads, &caller, m.clone(), zone.clone());
        async move {
            let asks = names.iter().map(|n| reads.records_at(caller, m.as_ref(), &zone, n));
            futures::future::join_all(asks).await.into_iter().map(|a| a.expect("records").len()).collect::<Vec<_>>()
        }
    };
    let names = |from: usize| (from..from + 3).map(|i| format!("svc{i}.example.com")).collect::<Vec<_>>();
    assert_eq!(ask(names(0)).await, vec![2, 2, 2]);
    // The walk was abandoned after three pages, then each name read alone.
    assert_eq!(calls(&metrics, "ListResourceRecordSets"), 3 + 3);
    assert_eq!(ask(names(10)).await, vec![2, 2, 2]);
    assert_eq!(calls(&metrics, "ListResourceRecordSets"), 6 + 3, "no second try at walking");
}

fn check_config(fqdn: &str) -> HealthCheckConfig {
    HealthCheckConfig::builder()
        .r#type(HealthCheckType::Https)
        .fully_qualified_domain_name(fqdn)
        .port(443)
        .resource_path("/health")
        .request_interval(30)
        .failure_threshold(3)
        .build()
        .expect("config")
}

#[tokio::test(start_paused = true)]
async fn checks_asked_together_are_listed_once_and_a_deleted_one_is_none() {
    let (m, _) = zone_with(0);
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            m.create_health_check(&format!("ref-{i}"), &check_config(&format!("h{i}.example.net")))
                .await
                .expect("check"),
        );
    }
    m.delete_health_check(&ids[4]).await.expect("delete");
    let (reads, (caller, metrics)) = (Route53Reads::default(), caller());
    let answers = futures::future::join_all(ids.iter().map(|id| reads.health_check(&caller, m.as_ref(), id))).await;
    let fqdns: Vec<Option<String>> = answers
        .into_iter()
        .map(|a| a.expect("answer").and_then(|h| h.config?.fully_qualified_domain_name().map(str::to_string)))
        .collect();
    let mut expected: Vec<Option<String>> = (0..4).map(|i| Some(format!("h{i}.example.net"))).collect();
    expected.push(None);
    assert_eq!(fqdns, expected);
    assert_eq!((calls(&metrics, "ListHealthChecks"), calls(&metrics, "GetHealthCheck")), (1, 0));
    // One check alone: GetHealthCheck.
    assert!(reads.health_check(&caller, m.as_ref(), &ids[0]).await.expect("answer").is_some());
    assert_eq!((calls(&metrics, "ListHealthChecks"), calls(&metrics, "GetHealthCheck")), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn an_account_with_more_checks_than_the_ids_asked_is_listed_once_at_most() {
    let (m, _) = zone_with(0);
    m.set_health_checks_page_size(2);
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(
            m.create_health_check(&format!("ref-{i}"), &check_config(&format!("h{i}.example.net")))
                .await
                .expect("check"),
        );
    }
    let (reads, (caller, metrics)) = (Route53Reads::default(), caller());
    let ask = |ids: Vec<String>| {
        let (reads, caller, m) = (&reads, &caller, m.clone());
        async move {
            let asks = ids.iter().map(|id| reads.health_check(caller, m.as_ref(), id));
            futures::future::join_all(asks).await.into_iter().map(|a| a.expect("answer").is_some()).collect::<Vec<_>>()
        }
    };
    assert_eq!(ask(ids[..2].to_vec()).await, vec![true, true]);
    // Two pages of the four listed, abandoned, then one GetHealthCheck each.
    assert_eq!((calls(&metrics, "ListHealthChecks"), calls(&metrics, "GetHealthCheck")), (2, 2));
    assert_eq!(ask(ids[2..5].to_vec()).await, vec![true, true, true]);
    assert_eq!((calls(&metrics, "ListHealthChecks"), calls(&metrics, "GetHealthCheck")), (2, 5), "not listed again");
}

#[tokio::test(start_paused = true)]
async fn the_objects_of_one_change_share_its_get_change_and_an_in_sync_change_is_not_read_again() {
    let (m, zone) = zone_with(1);
    let change = m.external_change(&zone, &[upsert("new.example.com", RrType::A, "10.1.0.1")]).expect("change");
    let (reads, (caller, metrics)) = (Route53Reads::default(), caller());
    let ask = || futures::future::join_all((0..5).map(|_| reads.change_status(&caller, m.as_ref(), &change.id)));
    let answers = ask().await;
    assert!(answers.iter().all(|a| a.as_ref().ok() == Some(&Some("PENDING".to_string()))), "{answers:?}");
    assert_eq!(calls(&metrics, "GetChange"), 1, "five askers at once, one call");
    m.advance(std::time::Duration::from_secs(3600));
    let answers = ask().await;
    assert!(answers.iter().all(|a| a.as_ref().ok() == Some(&Some("INSYNC".to_string()))), "{answers:?}");
    assert_eq!(calls(&metrics, "GetChange"), 2);
    let bare = change.id.trim_start_matches("/change/");
    assert_eq!(reads.change_status(&caller, m.as_ref(), bare).await.ok(), Some(Some("INSYNC".into())));
    assert_eq!(calls(&metrics, "GetChange"), 2, "remembered as in sync");
}
