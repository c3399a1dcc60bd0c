#![cfg(feature = "sim")]
//! Contract test of the ELBv2 model: the same scripted [`Elbv2Api`] calls against moto (through
//! the SDK implementation) and against [`ModelElbv2`], answers normalised (ARNs replaced by the
//! names the script gave them, ids and DNS digits left out) and compared step by step.
//!
//! Where moto is known to differ from AWS the step is listed in [`MOTO_DIFFERS`] with AWS's
//! documented answer: the model must give that answer, moto's is only printed.

mod support;

use std::cmp::Reverse;
use std::collections::BTreeMap;

use fargate_operator::aws::api::elbv2::{
    Attributes, DEREGISTRATION_DELAY, Elbv2Api, NewTargetGroup, Rule, RuleSpec, SdkElbv2, Tags, TargetGroup,
    TargetGroupHealthCheck,
};
use fargate_operator::aws::errors::Classified;
use fargate_operator::aws::model::FaultRates;
use fargate_operator::aws::model::elbv2::{Action, Limits, ModelElbv2};
use support::{TestCtx, fixtures};

/// Steps where moto answers otherwise than AWS, with the answer AWS documents (the model's) and why.
const MOTO_DIFFERS: &[(&str, &str, &str)] = &[
    (
        "DescribeLoadBalancers",
        "ok dns-ok=true zone=Z35SXDOTRQ7X7K vpc-ok=true",
        "moto answers a placeholder zone (Z2P70J7EXAMPLE); AWS's ALB zone of us-east-1 is Z35SXDOTRQ7X7K",
    ),
    (
        "CreateTargetGroup tg-a again, same settings",
        "ok tg-a",
        "AWS: CreateTargetGroup is idempotent, the same settings return the existing group; moto refuses",
    ),
    ("CreateRule 0 (out of range)", "err ValidationError (terminal)", "moto does not check 1..=50000"),
    ("CreateRule 50001 (out of range)", "err ValidationError (terminal)", "moto does not check 1..=50000"),
    (
        "CreateRule on another load balancer to tg-a",
        "err TargetGroupAssociationLimit (terminal)",
        "an ALB target group serves one load balancer; moto lets a second one forward to it",
    ),
    ("DeleteRule 30 again", "err RuleNotFound (not_found)", "moto answers success for an unknown rule"),
    ("DeleteRule default", "err OperationNotPermitted (terminal)", "moto fails with a 500"),
    (
        "DeleteTargetGroup tg-a again",
        "ok ",
        "AWS's DeleteTargetGroup lists no NotFound error (the trait takes either as done); moto says \
         TargetGroupNotFound",
    ),
    ("DescribeTags 21 ARNs", "err ValidationError (terminal)", "AWS takes at most 20 ARNs; moto has no limit"),
    (
        "DescribeTags with a deleted target group",
        "err TargetGroupNotFound (not_found)",
        "moto keeps the tags of a deleted target group and answers them",
    ),
];

/// What the script runs against: a load balancer with a listener, and a second load balancer's
/// listener (for the one-load-balancer-per-target-group rule).
struct Env {
    vpc: String,
    lb: String,
    listener: String,
    other_listener: String,
}

/// A transcript: each step and its normalised outcome.
struct Script<'a> {
    api: &'a dyn Elbv2Api,
    names: BTreeMap<String, String>,
    lines: Vec<(String, String)>,
}

impl<'a> Script<'a> {
    fn new(api: &'a dyn Elbv2Api) -> Self {
        Self { api, names: BTreeMap::new(), lines: Vec::new() }
    }

    /// Call `arn` `alias` in every later outcome.
    fn name(&mut self, arn: &str, alias: &str) {
        if !arn.is_empty() {
            self.names.insert(arn.into(), alias.into());
        }
    }

    fn alias(&self, text: &str) -> String {
        let mut known: Vec<(&String, &String)> = self.names.iter().collect();
        known.sort_by_key(|(arn, _)| Reverse(arn.len()));
        known.into_iter().fold(text.to_string(), |t, (arn, alias)| t.replace(arn.as_str(), alias))
    }

    /// Tags by alias (sorted by alias, not by ARN).
    fn tags(&self, tags: BTreeMap<String, Tags>) -> String {
        let by_alias: BTreeMap<String, Tags> = tags.into_iter().map(|(arn, t)| (self.alias(&arn), t)).collect();
        format!("{by_alias:?}")
    }

    fn note(&mut self, step: &str, outcome: Result<String, Classified>) {
        let text = match outcome {
            Ok(s) => format!("ok {}", self.alias(&s)),
            Err(e) => format!("err {} ({})", e.code, e.category),
        };
        self.lines.push((step.into(), text));
    }

    /// Every rule of `listener`, following the markers.
    async fn all_rules(&self, listener: &str) -> Result<Vec<Rule>, Classified> {
        let (mut rules, mut marker) = (Vec::new(), None::<String>);
        for _ in 0..100 {
            let page = self.api.describe_rules(listener, marker.as_deref()).await?;
            rules.extend(page.rules);
            marker = page.next_marker;
            if marker.is_none() {
                break;
            }
        }
        Ok(rules)
    }
}

fn health(path: &str) -> TargetGroupHealthCheck {
    TargetGroupHealthCheck {
        path: path.into(),
        interval_seconds: 30,
        timeout_seconds: 5,
        healthy_threshold: 5,
        unhealthy_threshold: 2,
        matcher: "200-399".into(),
    }
}

fn group(name: &str, env: &Env) -> NewTargetGroup {
    NewTargetGroup {
        name: name.into(),
        protocol: "HTTP".into(),
        port: 8080,
        vpc_id: env.vpc.clone(),
        health_check: health("/health"),
        tags: Tags::from([("owner".into(), name.into())]),
    }
}

fn paths(p: &str, tg: &str) -> RuleSpec {
    RuleSpec { path_patterns: vec![p.into()], host_headers: vec![], target_group_arn: tg.into() }
}

fn tags(owner: &str) -> Tags {
    Tags::from([("owner".into(), owner.into())])
}

/// An ARN of the same kind that does not exist (its last id replaced).
fn missing(arn: &str) -> String {
    match arn.rsplit_once('/') {
        Some((head, _)) => format!("{head}/0123456789abcdef"),
        None => format!("{arn}-missing"),
    }
}

fn show_group(mut groups: Vec<TargetGroup>, env: &Env) -> String {
    if groups.is_empty() {
        return "none".into();
    }
    groups.sort_by(|a, b| a.name.cmp(&b.name));
    let show = |tg: &TargetGroup| {
        let vpc = tg.vpc_id == env.vpc;
        format!("{} {} {} {} vpc-ok={vpc} {:?}", tg.arn, tg.name, tg.protocol, tg.port, tg.health_check)
    };
    groups.iter().map(show).collect::<Vec<_>>().join("; ")
}

/// Target group names for DescribeTargetGroups.
fn group_names(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| n.to_string()).collect()
}

fn show_rules(rules: Vec<Rule>) -> String {
    let show = |r: &Rule| {
        let p = r.priority.map_or("default".to_string(), |p| p.to_string());
        format!(
            "{p} default={} paths={:?} hosts={:?} fwd={:?}",
            r.is_default, r.path_patterns, r.host_headers, r.forward_to
        )
    };
    rules.iter().map(show).collect::<Vec<_>>().join(" | ")
}

fn dereg(attrs: Attributes) -> String {
    format!("{DEREGISTRATION_DELAY}={:?}", attrs.get(DEREGISTRATION_DELAY))
}

/// Delete a rule AWS would have refused (moto creates it), so later steps compare the same state.
async fn undo(api: &dyn Elbv2Api, created: &Result<String, Classified>) {
    if let Ok(arn) = created {
        let _ = api.delete_rule(arn).await;
    }
}

fn done<T>(_: T) -> String {
    String::new()
}

/// The scripted calls.
async fn script(api: &dyn Elbv2Api, env: &Env) -> Vec<(String, String)> {
    let mut s = Script::new(api);
    s.name(&env.lb, "lb");
    s.name(&env.listener, "listener");
    s.name(&env.other_listener, "other-listener");

    // --- load balancer and listener -----------------------------------------------------------
    let r = api.describe_listener(&env.listener).await;
    s.note("DescribeListeners", r.map(|l| format!("{l:?}")));
    let r = api.describe_listener(&missing(&env.listener)).await;
    s.note("DescribeListeners missing", r.map(|l| format!("{l:?}")));
    let r = api.describe_load_balancer(&env.lb).await.map(|lb| {
        lb.map_or("none".into(), |lb| {
            let dns = lb.dns_name.starts_with("shared-") && lb.dns_name.ends_with(".us-east-1.elb.amazonaws.com");
            format!("dns-ok={dns} zone={} vpc-ok={}", lb.canonical_hosted_zone_id, lb.vpc_id == env.vpc)
        })
    });
    s.note("DescribeLoadBalancers", r);
    let r = api.describe_load_balancer(&missing(&env.lb)).await;
    s.note("DescribeLoadBalancers missing", r.map(done));

    // --- target groups ------------------------------------------------------------------------
    let a = group("tg-a", env);
    let r = api.create_target_group(&a).await;
    let tga = r.clone().unwrap_or_default();
    s.name(&tga, "tg-a");
    s.note("CreateTargetGroup tg-a", r);
    let r = api.create_target_group(&a).await;
    s.note("CreateTargetGroup tg-a again, same settings", r);
    let r = api.create_target_group(&NewTargetGroup { port: 9090, ..a.clone() }).await;
    s.note("CreateTargetGroup tg-a, other port", r);
    let r = api.create_target_group(&NewTargetGroup { health_check: health("/other"), ..a.clone() }).await;
    s.note("CreateTargetGroup tg-a, other health check", r);
    let r = api.describe_target_groups(&group_names(&["tg-a"])).await;
    s.note("DescribeTargetGroups tg-a", r.map(|g| show_group(g, env)));
    let r = api.describe_target_groups(&group_names(&["tg-missing"])).await;
    s.note("DescribeTargetGroups missing", r.map(|g| show_group(g, env)));
    let r = api.describe_target_group_attributes(&tga).await;
    s.note("DescribeTargetGroupAttributes tg-a", r.map(dereg));
    let thirty = Attributes::from([(DEREGISTRATION_DELAY.into(), "30".into())]);
    let r = api.modify_target_group_attributes(&tga, &thirty).await;
    s.note("ModifyTargetGroupAttributes tg-a delay 30", r.map(done));
    let r = api.describe_target_group_attributes(&tga).await;
    s.note("DescribeTargetGroupAttributes tg-a after", r.map(dereg));
    let r = api.describe_target_group_attributes(&missing(&tga)).await;
    s.note("DescribeTargetGroupAttributes missing", r.map(dereg));
    let r = api.modify_target_group(&tga, &health("/ready")).await;
    s.note("ModifyTargetGroup tg-a /ready", r.map(done));
    let r = api.describe_target_groups(&group_names(&["tg-a"])).await;
    s.note("DescribeTargetGroups tg-a after modify", r.map(|g| show_group(g, env)));
    let r = api.modify_target_group(&missing(&tga), &health("/ready")).await;
    s.note("ModifyTargetGroup missing", r.map(done));
    let r = api.describe_target_health(&tga).await;
    s.note("DescribeTargetHealth tg-a", r.map(|t| format!("{t:?}")));
    let r = api.create_target_group(&group("tg-b", env)).await;
    let tgb = r.clone().unwrap_or_default();
    s.name(&tgb, "tg-b");
    s.note("CreateTargetGroup tg-b", r);
    let r = api.describe_target_groups(&group_names(&["tg-b", "tg-a"])).await;
    s.note("DescribeTargetGroups tg-b tg-a", r.map(|g| show_group(g, env)));
    let r = api.describe_target_groups(&group_names(&["tg-a", "tg-missing"])).await;
    s.note("DescribeTargetGroups tg-a tg-missing", r.map(|g| show_group(g, env)));

    // --- rules --------------------------------------------------------------------------------
    let l = env.listener.as_str();
    let r = api.create_rule(l, 10, &paths("/a/*", &tga), &tags("r10")).await;
    let r10 = r.clone().unwrap_or_default();
    s.name(&r10, "r10");
    s.note("CreateRule 10", r);
    let r = api.create_rule(l, 10, &paths("/x/*", &tgb), &tags("x")).await;
    s.note("CreateRule 10 again (taken)", r);
    let hosts = RuleSpec { host_headers: vec!["b.example.com".into()], ..paths("/b/*", &tgb) };
    let r = api.create_rule(l, 20, &hosts, &tags("r20")).await;
    let r20 = r.clone().unwrap_or_default();
    s.name(&r20, "r20");
    s.note("CreateRule 20", r);
    for p in [0, 50001] {
        let r = api.create_rule(l, p, &paths("/p/*", &tgb), &Tags::new()).await;
        undo(api, &r).await;
        s.note(&format!("CreateRule {p} (out of range)"), r);
    }
    let r = api.create_rule(&missing(l), 30, &paths("/c", &tga), &Tags::new()).await;
    s.note("CreateRule on a missing listener", r);
    let r = api.create_rule(l, 30, &paths("/c", &missing(&tga)), &Tags::new()).await;
    s.note("CreateRule to a missing target group", r);
    let r = api.create_rule(l, 30, &paths("/c", &tga), &tags("r30")).await;
    let r30 = r.clone().unwrap_or_default();
    s.name(&r30, "r30");
    s.note("CreateRule 30", r);
    let r = api.create_rule(l, 40, &paths("/d", &tgb), &tags("r40")).await;
    s.name(r.as_deref().unwrap_or_default(), "r40");
    s.note("CreateRule 40", r);
    let r = api.create_rule(&env.other_listener, 1, &paths("/a", &tga), &Tags::new()).await;
    undo(api, &r).await;
    s.note("CreateRule on another load balancer to tg-a", r);
    let r = s.all_rules(l).await;
    if let Some(d) = r.as_ref().ok().and_then(|rules| rules.iter().find(|r| r.is_default)) {
        let arn = d.arn.clone();
        s.name(&arn, "default-rule");
    }
    s.note("DescribeRules", r.map(show_rules));
    let r = api.modify_rule(&r10, &paths("/b/*", &tgb)).await;
    s.note("ModifyRule 10 to tg-b", r.map(done));
    let r = api.modify_rule(&missing(&r10), &paths("/b/*", &tgb)).await;
    s.note("ModifyRule missing", r.map(done));
    let r = api.set_rule_priority(&r20, 10).await;
    s.note("SetRulePriorities 20 -> 10 (taken)", r.map(done));
    let r = api.set_rule_priority(&r20, 25).await;
    s.note("SetRulePriorities 20 -> 25", r.map(done));
    let r = s.all_rules(l).await;
    s.note("DescribeRules after", r.map(show_rules));
    let r = s.all_rules(&missing(l)).await;
    s.note("DescribeRules missing listener", r.map(show_rules));

    // --- deleting -----------------------------------------------------------------------------
    let r = api.delete_target_group(&tga).await;
    s.note("DeleteTargetGroup tg-a (rule 30 forwards to it)", r.map(done));
    let r = api.delete_rule(&r30).await;
    s.note("DeleteRule 30", r.map(done));
    let r = api.delete_rule(&r30).await;
    s.note("DeleteRule 30 again", r.map(done));
    let default_rule = s.names.iter().find(|(_, v)| *v == "default-rule").map(|(k, _)| k.clone());
    let r = api.delete_rule(&default_rule.unwrap_or_default()).await;
    s.note("DeleteRule default", r.map(done));
    let r = api.delete_target_group(&tga).await;
    s.note("DeleteTargetGroup tg-a", r.map(done));
    let r = api.describe_target_groups(&group_names(&["tg-a"])).await;
    s.note("DescribeTargetGroups tg-a deleted", r.map(|g| show_group(g, env)));
    let r = api.delete_target_group(&tga).await;
    s.note("DeleteTargetGroup tg-a again", r.map(done));

    // --- tags, 20 ARNs per call ---------------------------------------------------------------
    let mut arns = vec![tgb.clone()];
    for i in 0..20 {
        let r = api.create_target_group(&group(&format!("tg-c-{i:02}"), env)).await;
        let arn = r.clone().unwrap_or_default();
        s.name(&arn, &format!("tg-c-{i:02}"));
        arns.push(arn);
    }
    arns.extend([r10.clone(), r20.clone()]);
    let r = api.describe_tags(&arns[..21]).await;
    let r = r.map(|t| s.tags(t));
    s.note("DescribeTags 21 ARNs", r);
    let mut all = BTreeMap::new();
    let mut failed = None;
    for chunk in arns.chunks(20) {
        match api.describe_tags(chunk).await {
            Ok(t) => all.extend(t),
            Err(e) => failed = Some(e),
        }
    }
    let r = failed.map_or_else(|| Ok(s.tags(all)), Err);
    s.note("DescribeTags in batches of 20", r);
    let r = api.describe_tags(&[tgb.clone(), tga.clone()]).await;
    let r = r.map(|t| s.tags(t));
    s.note("DescribeTags with a deleted target group", r);
    s.lines
}

#[tokio::test]
async fn the_model_answers_the_elbv2_script_as_moto_does() {
    // moto
    let ctx = TestCtx::new("model-contract-elbv2").await;
    let cfg = ctx.sdk_config().await;
    let net = fixtures::network(&cfg).await;
    let shared = fixtures::alb(&cfg, &net, fixtures::ALB_NAME).await;
    let other = fixtures::alb(&cfg, &net, "other").await;
    let env = Env {
        vpc: net.vpc_id.clone(),
        lb: shared.arn.clone(),
        listener: shared.listener_arn.clone(),
        other_listener: other.listener_arn.clone(),
    };
    let sdk = SdkElbv2::new(aws_sdk_elasticloadbalancingv2::Client::new(&cfg));
    let moto = script(&sdk, &env).await;

    // the model, with two rules per DescribeRules page so the script pages through them
    let model = ModelElbv2::new(7, FaultRates::default(), &ctx.account, support::REGION);
    model.set_limits(Limits { rules_page_size: 2, ..Limits::default() });
    let fixed = || vec![Action::FixedResponse { status_code: "404".into() }];
    let vpc = "vpc-0model";
    let lb = model.create_load_balancer(fixtures::ALB_NAME, vpc).expect("model load balancer");
    let listener = model.create_listener(&lb.arn, 80, fixed()).expect("model listener");
    let other_lb = model.create_load_balancer("other", vpc).expect("model load balancer");
    let other_listener = model.create_listener(&other_lb.arn, 80, fixed()).expect("model listener");
    let env = Env { vpc: vpc.into(), lb: lb.arn, listener: listener.arn, other_listener: other_listener.arn };
    let modelled = script(&model, &env).await;

    assert_eq!(moto.len(), modelled.len());
    let mut mismatches = Vec::new();
    for ((step, m), (_, x)) in moto.iter().zip(&modelled) {
        println!("{step}\n  moto:  {m}\n  model: {x}");
        match MOTO_DIFFERS.iter().find(|(s, _, _)| s == step) {
            Some((_, aws, why)) if x != aws => mismatches.push(format!("{step}: model {x}, AWS {aws} ({why})")),
            Some(_) => {}
            None if m != x => mismatches.push(format!("{step}:\n  moto:  {m}\n  model: {x}")),
            None => {}
        }
    }
    assert!(mismatches.is_empty(), "the model differs:\n{}", mismatches.join("\n"));
    ctx.cleanup().await;
}
