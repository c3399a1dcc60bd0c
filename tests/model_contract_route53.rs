#![cfg(feature = "sim")]
//! Contract test of the Route 53 model: one scripted sequence of [`Route53Api`] calls runs
//! against moto (through [`SdkRoute53`]) and against [`ModelRoute53`], and their normalised
//! answers are compared step by step (zone and change ids, health check ids and name servers
//! differ: the answers keep shapes, counts, statuses and error codes, and name health checks by
//! the label the script gave them).
//!
//! Where moto differs from AWS the model follows AWS's documentation and the step is marked
//! `aws_only`: the model's answer is checked against what AWS answers, moto's is printed, not
//! compared. The differences seen (moto as `make env-up` runs it):
//! - ChangeResourceRecordSets answers `INSYNC` at once; AWS answers `PENDING` until the change
//!   propagated (the model: `PENDING` until its propagation delay passed on its clock). moto's
//!   change ids also lack the `/change/` prefix.
//! - A DELETE whose values differ from the record's: AWS `InvalidChangeBatch` ("the values
//!   provided do not match the current values"); moto `InvalidInput`.
//! - A CNAME next to another type at one name: AWS `InvalidChangeBatch` (RFC 1034); moto takes it.
//! - CreateHealthCheck with a check's CallerReference and other settings: AWS
//!   `HealthCheckAlreadyExists` (CreateHealthCheck API reference, `CallerReference`); moto returns
//!   the existing check. Same settings, and a deleted check's reference, moto answers as AWS does.
//! - DeleteHealthCheck of a check a record uses: AWS `HealthCheckInUse`; moto deletes it.
//! - GetChange of an unknown id: AWS `NoSuchChange`; moto `INSYNC`.
//! - ListResourceRecordSets paging inside a failover pair: AWS continues at NextRecordIdentifier;
//!   moto answers no identifier and the next page starts the name over (records repeat), so the
//!   listing is compared as every record once, in order.
//! - The default port of an HTTPS check: AWS 443, moto 80 (the script sends the port).

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_route53::types::{
    AliasTarget, Change, ChangeAction, HealthCheckConfig, HealthCheckType, ResourceRecord, ResourceRecordSet,
    ResourceRecordSetFailover, RrType, TagResourceType,
};
use fargate_operator::aws::Classified;
use fargate_operator::aws::api::route53::{RecordStart, Route53Api, SdkRoute53};
use fargate_operator::aws::model::FaultRates;
use fargate_operator::aws::model::route53::ModelRoute53;
use support::TestCtx;

const ZONE: &str = "contract.example.com";
/// us-east-1's ALB canonical zone, and a load balancer name under it.
const ALB_ZONE: &str = "Z35SXDOTRQ7X7K";
const ALB_DNS: &str = "contract-alb-1.us-east-1.elb.amazonaws.com";

/// One step's normalised answer; `aws_only` steps are not compared with moto.
#[derive(Debug)]
struct Step {
    name: &'static str,
    answer: String,
    aws_only: bool,
}

struct Script<'a> {
    api: &'a dyn Route53Api,
    zone: String,
    steps: Vec<Step>,
    /// Health check id → the script's label for it.
    labels: BTreeMap<String, String>,
}

fn err(e: &Classified) -> String {
    format!("err {} {}", e.code, e.category.as_str())
}

fn cname(name: &str, value: &str) -> ResourceRecordSet {
    ResourceRecordSet::builder()
        .name(format!("{name}.{ZONE}."))
        .r#type(RrType::Cname)
        .ttl(60)
        .resource_records(ResourceRecord::builder().value(value).build().expect("rr"))
        .build()
        .expect("set")
}

fn alias_a(name: &str) -> ResourceRecordSet {
    let target = AliasTarget::builder()
        .hosted_zone_id(ALB_ZONE)
        .dns_name(ALB_DNS)
        .evaluate_target_health(true)
        .build()
        .expect("alias");
    ResourceRecordSet::builder()
        .name(format!("{name}.{ZONE}."))
        .r#type(RrType::A)
        .alias_target(target)
        .build()
        .expect("set")
}

fn failover(side: ResourceRecordSetFailover, value: &str, check: &str) -> ResourceRecordSet {
    let mut set = cname("failover", value);
    set.set_identifier = Some(format!("contract-{}", side.as_str().to_lowercase()));
    set.failover = Some(side);
    set.health_check_id = Some(check.to_string());
    set
}

fn change(action: ChangeAction, set: ResourceRecordSet) -> Change {
    Change::builder().action(action).resource_record_set(set).build().expect("change")
}

fn check_config(fqdn: &str) -> HealthCheckConfig {
    HealthCheckConfig::builder()
        .r#type(HealthCheckType::Https)
        .fully_qualified_domain_name(fqdn)
        .resource_path("/healthz")
        // moto's default port for HTTPS is 80; AWS's (and the model's) 443.
        .port(443)
        .request_interval(30)
        .failure_threshold(3)
        .build()
        .expect("config")
}

impl Script<'_> {
    fn push(&mut self, name: &'static str, answer: String, aws_only: bool) {
        self.steps.push(Step { name, answer, aws_only });
    }

    fn label(&self, id: &str) -> String {
        self.labels.get(id).cloned().unwrap_or_else(|| "?".into())
    }

    /// A record set without what differs between moto and the model: SOA/NS values (name
    /// servers) are counted; health check ids are labels; names lowercase, absolute.
    fn record(&self, s: &ResourceRecordSet) -> String {
        let norm = |n: &str| format!("{}.", n.trim_end_matches('.').to_ascii_lowercase());
        let mut values: Vec<String> = s.resource_records().iter().map(|r| r.value().to_string()).collect();
        values.sort();
        let values =
            if matches!(s.r#type(), RrType::Soa | RrType::Ns) { format!("{}", values.len()) } else { values.join(",") };
        let alias = s.alias_target().map(|a| format!("alias {} {}", norm(a.dns_name()), a.evaluate_target_health()));
        format!(
            "{} {} id={} ttl={:?} values={values} {} failover={:?} check={}",
            norm(s.name()),
            s.r#type(),
            s.set_identifier().unwrap_or("-"),
            s.ttl(),
            alias.unwrap_or_default(),
            s.failover().map(|f| f.as_str().to_string()),
            s.health_check_id().map(|c| self.label(c)).unwrap_or_else(|| "-".into()),
        )
    }

    async fn change(&mut self, name: &'static str, changes: Vec<Change>, aws_only: bool) -> Option<String> {
        match self.api.change_resource_record_sets(&self.zone, &changes).await {
            Ok(c) => {
                self.push(name, "ok".into(), aws_only);
                Some(c.id)
            }
            Err(e) => {
                self.push(name, err(&e), aws_only);
                None
            }
        }
    }

    async fn create_check(
        &mut self,
        name: &'static str,
        reference: &str,
        fqdn: &str,
        aws_only: bool,
    ) -> Option<String> {
        match self.api.create_health_check(reference, &check_config(fqdn)).await {
            Ok(id) => {
                let answer = match self.labels.get(&id) {
                    Some(l) => format!("ok existing {l}"),
                    None => format!("ok new {name}"),
                };
                self.labels.entry(id.clone()).or_insert_with(|| name.to_string());
                self.push(name, answer, aws_only);
                Some(id)
            }
            Err(e) => {
                self.push(name, err(&e), aws_only);
                None
            }
        }
    }

    /// The zone's record sets, two per page: every record once, in order (compared), and whether
    /// no page repeated one (AWS continues at NextRecordIdentifier; moto starts the name over).
    async fn list_paged(&mut self, name: &'static str, no_repeats: &'static str) {
        let mut start = RecordStart::default();
        let (mut seen, mut repeats) = (Vec::new(), 0);
        for _ in 0..20 {
            let page = self.api.list_resource_record_sets(&self.zone, &start, 2).await.expect("list");
            assert!(page.record_sets.len() <= 2, "a page holds at most MaxItems");
            for r in page.record_sets.iter().map(|s| self.record(s)) {
                if seen.contains(&r) {
                    repeats += 1;
                } else {
                    seen.push(r);
                }
            }
            match page.next {
                Some(n) => start = n,
                None => break,
            }
        }
        self.push(name, seen.join("\n"), false);
        self.push(no_repeats, format!("{}", repeats == 0), true);
    }

    /// The tags of a health check: moto through ListTagsForResource (not a trait call), the
    /// model through inspection.
    async fn tags(&self, id: &str, target: &Target<'_>) -> BTreeMap<String, String> {
        match target {
            Target::Model(m) => m.health_checks().into_iter().find(|h| h.id == id).map(|h| h.tags).unwrap_or_default(),
            Target::Moto(client) => {
                let out = client
                    .list_tags_for_resource()
                    .resource_type(TagResourceType::Healthcheck)
                    .resource_id(id)
                    .send()
                    .await
                    .expect("ListTagsForResource");
                out.resource_tag_set()
                    .map(|s| {
                        s.tags()
                            .iter()
                            .map(|t| (t.key().unwrap_or_default().into(), t.value().unwrap_or_default().into()))
                            .collect()
                    })
                    .unwrap_or_default()
            }
        }
    }

    async fn run(&mut self, target: &Target<'_>) {
        let model = match target {
            Target::Model(m) => Some(*m),
            Target::Moto(_) => None,
        };
        let z = self.api.get_hosted_zone(&self.zone).await.expect("zone");
        self.push("get_hosted_zone", format!("{} ns={}", z.name, z.name_servers.len()), false);
        let missing = self.api.get_hosted_zone("ZNOSUCHZONE00000").await.map(|_| ()).map_err(|e| err(&e));
        self.push("get_unknown_zone", format!("{missing:?}"), false);

        let first = self.change("create_alias", vec![change(ChangeAction::Create, alias_a("app"))], false).await;
        if let Some(id) = &first {
            // moto answers INSYNC at once; AWS (and the model) PENDING until propagated.
            let status = self.api.get_change(id).await.map(|c| c.status).unwrap_or_else(|e| err(&e));
            self.push("change_status_at_once", status, true);
        }
        let app = format!("app.{ZONE}");
        self.change("create_cname", vec![change(ChangeAction::Create, cname("www", &app))], false).await;
        self.change("create_again", vec![change(ChangeAction::Create, cname("www", &app))], false).await;
        self.change("delete_wrong_value", vec![change(ChangeAction::Delete, cname("www", "other.example.net"))], true)
            .await;
        let next_to_a = vec![change(ChangeAction::Create, cname("app", "x.example.net"))];
        if self.change("cname_next_to_a", next_to_a, true).await.is_some() {
            // moto took it: take it away again so the listings stay comparable.
            let undo = vec![change(ChangeAction::Delete, cname("app", "x.example.net"))];
            self.api.change_resource_record_sets(&self.zone, &undo).await.expect("undo moto's CNAME");
        }
        self.change("upsert", vec![change(ChangeAction::Upsert, cname("www", "edge.example.net"))], false).await;
        // In one batch, a DELETE then a CREATE of the same name.
        let swap = vec![
            change(ChangeAction::Delete, cname("www", "edge.example.net")),
            change(ChangeAction::Create, cname("www", "edge2.example.net")),
        ];
        self.change("delete_then_create", swap, false).await;
        // A good change with a bad one: nothing applies.
        let half = vec![
            change(ChangeAction::Create, cname("half", "x.example.net")),
            change(ChangeAction::Create, cname("www", "edge2.example.net")),
        ];
        self.change("half_bad_batch", half, false).await;

        let p = self.create_check("hc_primary", "contract-p", "p.example.net", false).await.expect("primary check");
        let s = self.create_check("hc_secondary", "contract-s", "s.example.net", false).await.expect("secondary check");
        self.create_check("hc_same_again", "contract-p", "p.example.net", false).await;
        self.create_check("hc_other_config", "contract-p", "q.example.net", true).await;
        let pair = vec![
            change(ChangeAction::Create, failover(ResourceRecordSetFailover::Primary, "p.example.net", &p)),
            change(ChangeAction::Create, failover(ResourceRecordSetFailover::Secondary, "s.example.net", &s)),
        ];
        let pair_change = self.change("failover_pair", pair, false).await;
        self.list_paged("list_paged", "list_paged_no_repeats").await;
        let start = RecordStart { name: format!("www.{ZONE}."), rtype: Some(RrType::Cname), identifier: None };
        let at = self.api.list_resource_record_sets(&self.zone, &start, 1).await.expect("list at");
        let first_at: Vec<String> = at.record_sets.iter().map(|s| self.record(s)).collect();
        self.push("list_from_name_type", first_at.join(" | "), false);

        if let Some(id) = &pair_change {
            // moto answers the id without its `/change/` prefix: compare success only.
            let ok = self.api.get_change(id).await.map(|_| ()).map_err(|e| err(&e));
            self.push("get_change", format!("{ok:?}"), false);
        }
        if let Some(m) = model {
            m.advance(Duration::from_secs(600));
        }
        if let Some(id) = &pair_change {
            let status = self.api.get_change(id).await.map(|c| c.status).unwrap_or_else(|e| err(&e));
            self.push("get_change_later", status, false);
        }
        let unknown = self.api.get_change("C0000NOSUCHCHANGE").await.map(|c| c.status).map_err(|e| err(&e));
        self.push("get_unknown_change", format!("{unknown:?}"), true);

        let tags: BTreeMap<String, String> = [("owner".to_string(), "contract".to_string())].into();
        let tagged = self.api.add_health_check_tags(&p, &tags).await.map_err(|e| err(&e));
        self.push("tag_check", format!("{tagged:?}"), false);
        let more: BTreeMap<String, String> = [("team".to_string(), "dns".to_string())].into();
        self.api.add_health_check_tags(&p, &more).await.expect("more tags");
        let read = self.tags(&p, target).await;
        self.push("read_tags", format!("{read:?}"), false);
        let got = self.api.get_health_check(&p).await.expect("get check");
        let cfg = got.config.expect("config");
        let shape = format!(
            "{} {:?} {:?} {:?} {:?} {:?}",
            got.caller_reference,
            cfg.r#type,
            cfg.fully_qualified_domain_name,
            cfg.port,
            cfg.request_interval,
            cfg.failure_threshold
        );
        self.push("get_check", shape, false);
        let listed = self.api.list_health_checks(None).await.expect("list checks");
        let mut refs: Vec<String> = listed.health_checks.iter().map(|h| h.caller_reference.clone()).collect();
        refs.sort();
        self.push("list_checks", refs.join(","), false);
        // Shared reads take a check's settings from the list: they must be the ones GetHealthCheck gives.
        let in_list = listed.health_checks.iter().find(|h| h.id == p).and_then(|h| h.config.clone());
        let same = in_list.as_ref() == Some(&cfg);
        self.push("list_checks_config_as_get", format!("{same}"), false);
        let status = self.api.get_health_check_status(&s).await.map_err(|e| err(&e));
        let healthy = status.map(|r| !r.is_empty() && r.iter().all(|s| s.starts_with("Success")));
        self.push("check_status", format!("{healthy:?}"), false);

        let in_use = self.api.delete_health_check(&p).await.map_err(|e| err(&e));
        self.push("delete_check_in_use", format!("{in_use:?}"), true);
        let x = self.create_check("hc_deleted", "contract-x", "x.example.net", false).await.expect("x check");
        let deleted = self.api.delete_health_check(&x).await.map_err(|e| err(&e));
        self.push("delete_check", format!("{deleted:?}"), false);
        self.create_check("hc_reuse_deleted_ref", "contract-x", "x.example.net", false).await;
        let gone = self.api.get_health_check(&x).await.map(|_| ()).map_err(|e| err(&e));
        self.push("get_deleted_check", format!("{gone:?}"), false);
    }
}

/// What the script runs against besides the trait: moto's client (tags) or the model (its clock,
/// tags).
enum Target<'a> {
    Moto(&'a aws_sdk_route53::Client),
    Model(&'a ModelRoute53),
}

/// The script against `api`.
async fn run<'a>(api: &'a dyn Route53Api, zone: String, target: Target<'_>) -> Script<'a> {
    let mut script = Script { api, zone, steps: Vec::new(), labels: BTreeMap::new() };
    script.run(&target).await;
    script
}

/// What AWS answers at the steps where moto differs (the model must answer this).
fn aws_answer(step: &str) -> &'static str {
    match step {
        "change_status_at_once" => "PENDING",
        "cname_next_to_a" => "err InvalidChangeBatch conflict",
        "list_paged_no_repeats" => "true",
        "delete_wrong_value" => "err InvalidChangeBatch conflict",
        "hc_other_config" => "err HealthCheckAlreadyExists conflict",
        "get_unknown_change" => "Err(\"err NoSuchChange not_found\")",
        "delete_check_in_use" => "Err(\"err HealthCheckInUse conflict\")",
        _ => "?",
    }
}

#[tokio::test]
async fn route53_model_answers_like_moto_and_like_aws_where_moto_differs() {
    let ctx = TestCtx::new("model-contract-r53").await;
    let cfg = ctx.sdk_config().await;
    let client = aws_sdk_route53::Client::new(&cfg);
    let zone = client
        .create_hosted_zone()
        .name(ZONE)
        .caller_reference(format!("contract-{}", support::suffix()))
        .send()
        .await
        .expect("route53:CreateHostedZone");
    let moto_zone = zone.hosted_zone().expect("zone").id().trim_start_matches("/hostedzone/").to_string();
    let sdk = SdkRoute53::new(client.clone());
    let moto = run(&sdk, moto_zone, Target::Moto(&client)).await;

    let model = ModelRoute53::new(14, FaultRates::default(), &ctx.account, support::REGION);
    let model_zone = model.create_zone(ZONE).id;
    model.register_alias_target(ALB_ZONE, ALB_DNS);
    let modelled = run(&model, model_zone.clone(), Target::Model(&model)).await;

    assert_eq!(moto.steps.len(), modelled.steps.len(), "both ran the whole script");
    let mut mismatches = Vec::new();
    for (a, b) in moto.steps.iter().zip(&modelled.steps) {
        assert_eq!(a.name, b.name);
        if b.aws_only {
            println!("{} (moto differs from AWS): moto {:?}, model {:?}", b.name, a.answer, b.answer);
            assert_eq!(b.answer, aws_answer(b.name), "model at {}", b.name);
        } else if a.answer != b.answer {
            mismatches.push(format!("{}:\n  moto:  {}\n  model: {}", a.name, a.answer, b.answer));
        }
    }
    assert!(mismatches.is_empty(), "model differs from moto:\n{}", mismatches.join("\n"));
    let listed_as_got = moto.steps.iter().find(|s| s.name == "list_checks_config_as_get").map(|s| s.answer.as_str());
    assert_eq!(
        listed_as_got,
        Some("true"),
        "moto's ListHealthChecks gives each check's settings as GetHealthCheck does"
    );

    // The model keeps the references of deleted checks.
    assert_eq!(model.caller_references().get("contract-x").map(|(_, deleted)| *deleted), Some(true));
}
