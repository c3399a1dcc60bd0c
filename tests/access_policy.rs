//! AccessPolicy against the real apiserver and moto: two teams share one AWS account, one ALB and
//! one hosted zone; team B cannot use team A's listener, zone, record, role or security group, and
//! deleting B's refused objects leaves A's record. Refusals are `Degraded`/`NotPermitted` naming
//! the field and the policy, with no AWS object made; a revoked policy stops changes, a restored
//! one resumes them.

mod support;

use fargate_operator::api::{AccessPolicy, DnsFailover, FargateApp};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::{Value, json};
use support::TestCtx;
use support::app::{Setup, condition, wait_condition, wait_deleted, wait_synced};
use support::fixtures::{self, app_owner};
use support::operator::InProcessOperator;

const A_TASK_ROLE: &str = "arn:aws:iam::123456789012:role/web";
const A_EXEC_ROLE: &str = "arn:aws:iam::123456789012:role/ecsTaskExecution";
const B_TASK_ROLE: &str = "arn:aws:iam::123456789012:role/team-b-web";

/// A change to a manifest.
type Edit = Box<dyn Fn(&mut Value)>;

/// Team B: its own namespace and operator, in team A's account under its own role.
struct TeamB {
    ctx: TestCtx,
    op: InProcessOperator,
    apps: Api<FargateApp>,
    failovers: Api<DnsFailover>,
}

async fn create_policy(client: &kube::Client, name: &str, namespace: &str, allow: Value) -> AccessPolicy {
    let p: AccessPolicy = serde_json::from_value(json!({
        "apiVersion": "fargate.operator.dev/v1alpha1", "kind": "AccessPolicy",
        "metadata": {"name": name}, "spec": {"namespaces": [namespace], "allow": allow}
    }))
    .expect("AccessPolicy");
    Api::<AccessPolicy>::all(client.clone()).create(&PostParams::default(), &p).await.expect("create AccessPolicy")
}

async fn delete_policy(client: &kube::Client, name: &str) {
    let _ = Api::<AccessPolicy>::all(client.clone()).delete(name, &DeleteParams::default()).await;
}

async fn security_group(cfg: &aws_config::SdkConfig, vpc: &str, name: &str) -> String {
    let ec2 = aws_sdk_ec2::Client::new(cfg);
    let sg = ec2
        .create_security_group()
        .group_name(name)
        .description("team b")
        .vpc_id(vpc)
        .send()
        .await
        .expect("ec2:CreateSecurityGroup");
    sg.group_id().expect("GroupId").to_string()
}

fn degraded_message(app: &FargateApp) -> String {
    condition(app, "Degraded").map(|c| c.message.clone()).unwrap_or_default()
}

/// Wait until `name` is refused, check the message names `field` and B's policy, and that AWS
/// holds nothing of it.
async fn refused(a: &Setup, b: &TeamB, name: &str, field: &str, listeners: &[&str]) {
    let app = wait_condition(&b.apps, name, "Degraded", "True", Some("NotPermitted")).await;
    let message = degraded_message(&app);
    assert!(message.starts_with(field), "{name}: {message}");
    assert!(message.contains(&format!("AccessPolicy {}", b.ctx.namespace)), "{name}: {message}");
    let owner = app_owner(&b.ctx.namespace, name);
    for l in listeners {
        assert!(fixtures::owned_rules(&a.cfg, l, &owner).await.is_empty(), "{name}: no rule on {l}");
    }
    assert!(fixtures::owned_target_groups(&a.cfg, &owner).await.is_empty(), "{name}: no target group");
    assert!(fixtures::owned_active_services(&a.cfg, &owner).await.is_empty(), "{name}: no service");
    assert!(status_resources(&app).is_empty(), "{name}: nothing recorded");
}

fn status_resources(app: &FargateApp) -> Vec<fargate_operator::api::OwnedResource> {
    app.status.as_ref().map(|s| s.resources.clone()).unwrap_or_default()
}

async fn delete_app(api: &Api<FargateApp>, name: &str) {
    let uid = api.get(name).await.expect("get").uid().expect("uid");
    api.delete(name, &DeleteParams::default()).await.expect("delete");
    wait_deleted(api, name, &uid).await;
}

#[tokio::test]
async fn team_b_cannot_use_team_a_listener_zone_record_role_or_security_group() {
    let flags = ["--require-access-policy"];
    let a = Setup::with_flags("ap-team-a", "", &flags).await;
    let client = a.ctx.client.clone();
    // A second listener and zone only team A may use; team B's own security group.
    let a_listener = fixtures::listener(&a.cfg, &a.fx.alb.arn, 8081).await;
    let a_zone = fixtures::hosted_zone(&a.cfg, "team-a.example.com").await;
    let b_sg = security_group(&a.cfg, &a.fx.net.vpc_id, "team-b").await;
    let shared = a.fx.alb.listener_arn.clone();

    let mut b_ctx = TestCtx::new("ap-team-b").await;
    b_ctx.account = a.ctx.account.clone();
    b_ctx.role_arn = format!("arn:aws:iam::{}:role/team-b-deployer", a.ctx.account);
    let a_policy = a.ctx.namespace.clone();
    let b_policy = b_ctx.namespace.clone();
    create_policy(
        &client,
        &a_policy,
        &a.ctx.namespace,
        json!({
            "roles": [a.ctx.role_arn, A_TASK_ROLE, A_EXEC_ROLE],
            "listeners": [{"arn": shared, "priorityRange": {"min": 100, "max": 199}}, {"arn": a_listener}],
            "hostedZones": [{"id": a.fx.zone_id, "names": ["web.apps.example.com"]}, {"id": a_zone}],
            "clusters": ["apps"], "subnets": ["*"], "securityGroups": [a.fx.net.security_group]
        }),
    )
    .await;
    let b_allow = json!({
        "roles": [b_ctx.role_arn, "arn:aws:iam::123456789012:role/team-b-*", A_EXEC_ROLE],
        "listeners": [{"arn": shared, "priorityRange": {"min": 200, "max": 299}}],
        "hostedZones": [{"id": a.fx.zone_id, "names": ["*.b.apps.example.com"]}],
        "clusters": ["apps"], "subnets": ["*"], "securityGroups": [b_sg]
    });
    create_policy(&client, &b_policy, &b_ctx.namespace, b_allow.clone()).await;
    let b = TeamB {
        op: InProcessOperator::start_with(&b_ctx, "", &flags).await,
        apps: Api::namespaced(client.clone(), &b_ctx.namespace),
        failovers: Api::namespaced(client.clone(), &b_ctx.namespace),
        ctx: b_ctx,
    };

    // Team A's app, inside its policy: made as always.
    a.create(a.app_json("web")).await;
    wait_synced(&a.api, "web").await;
    let a_record = fixtures::records_named(&a.cfg, &a.fx.zone_id, "web.apps.example.com").await;
    assert_eq!(a_record.len(), 1, "team A's record");

    // Team B's app, inside its policy: made, its automatic priority inside B's range (not A's).
    let b_app = |name: &str, edit: &dyn Fn(&mut Value)| {
        let mut v = a.app_json(name);
        v["metadata"]["namespace"] = json!(b.ctx.namespace);
        let spec = &mut v["spec"];
        spec["aws"]["roleArn"] = json!(b.ctx.role_arn);
        spec["taskRoleArn"] = json!(B_TASK_ROLE);
        spec["network"]["securityGroups"] = json!([b_sg]);
        spec["loadBalancer"]["listenerRule"]["pathPatterns"] = json!([format!("/b/{name}/*")]);
        spec["loadBalancer"]["listenerRule"]["priorityRange"] = json!({"min": 1, "max": 50000});
        spec["dns"]["name"] = json!(format!("{name}.b.apps.example.com"));
        edit(&mut v);
        serde_json::from_value::<FargateApp>(v).expect("FargateApp")
    };
    let create_b = |app: FargateApp| {
        let api = b.apps.clone();
        async move { api.create(&PostParams::default(), &app).await.expect("create B app") }
    };
    create_b(b_app("shop", &|_| {})).await;
    wait_synced(&b.apps, "shop").await;
    let owner = app_owner(&b.ctx.namespace, "shop");
    let rules = fixtures::owned_rules(&a.cfg, &shared, &owner).await;
    assert_eq!(rules.len(), 1);
    let priority = rules[0].priority.expect("priority");
    assert!((200..=299).contains(&priority), "B's rule takes a priority inside B's range: {priority}");

    // Each of team A's things, refused to team B before any AWS write.
    let cases: Vec<(&str, &str, Edit)> = vec![
        ("a-listener", "spec.loadBalancer.listenerRule.listenerArn", {
            let l = a_listener.clone();
            Box::new(move |v| v["spec"]["loadBalancer"]["listenerRule"]["listenerArn"] = json!(l))
        }),
        (
            "a-priority",
            "spec.loadBalancer.listenerRule.priority",
            Box::new(|v| v["spec"]["loadBalancer"]["listenerRule"]["priority"] = json!(150)),
        ),
        ("a-zone", "spec.dns.hostedZoneId", {
            let z = a_zone.clone();
            Box::new(move |v| {
                v["spec"]["dns"]["hostedZoneId"] = json!(z);
                v["spec"]["dns"]["name"] = json!("x.team-a.example.com");
            })
        }),
        ("a-record", "spec.dns.name", Box::new(|v| v["spec"]["dns"]["name"] = json!("web.apps.example.com"))),
        ("a-role", "spec.aws.roleArn", {
            let r = a.ctx.role_arn.clone();
            Box::new(move |v| v["spec"]["aws"]["roleArn"] = json!(r))
        }),
        ("a-task-role", "spec.taskRoleArn", Box::new(|v| v["spec"]["taskRoleArn"] = json!(A_TASK_ROLE))),
        ("a-sg", "spec.network.securityGroups[0]", {
            let sg = a.fx.net.security_group.clone();
            Box::new(move |v| v["spec"]["network"]["securityGroups"] = json!([sg]))
        }),
    ];
    for (name, _, edit) in &cases {
        create_b(b_app(name, edit.as_ref())).await;
    }
    for (name, field, _) in &cases {
        refused(&a, &b, name, field, &[&shared, &a_listener]).await;
    }

    // A DnsFailover of team B at team A's record name: refused too.
    let mut df = support::yaml_docs("examples/dnsfailover.yaml").remove(0);
    df["metadata"] = json!({"name": "a-record", "namespace": b.ctx.namespace});
    df["spec"]["hostedZoneId"] = json!(a.fx.zone_id);
    df["spec"]["name"] = json!("web.apps.example.com");
    df["spec"].as_object_mut().expect("spec").remove("delegation");
    df["spec"]["aws"] = json!({"region": support::REGION, "roleArn": b.ctx.role_arn});
    let df: DnsFailover = serde_json::from_value(df).expect("DnsFailover");
    b.failovers.create(&PostParams::default(), &df).await.expect("create DnsFailover");
    let cond = |o: Option<&DnsFailover>| {
        o.and_then(|o| o.status.as_ref()).is_some_and(|s| {
            s.conditions.iter().any(|c| c.type_ == "Degraded" && c.status == "True" && c.reason == "NotPermitted")
        })
    };
    let df = tokio::time::timeout(
        support::app::WAIT,
        kube::runtime::wait::await_condition(b.failovers.clone(), "a-record", cond),
    )
    .await
    .expect("DnsFailover refused in time")
    .expect("watch")
    .expect("object");
    let message =
        df.status.as_ref().and_then(|s| s.conditions.iter().find(|c| c.type_ == "Degraded")).map(|c| c.message.clone());
    assert!(message.as_deref().unwrap_or_default().starts_with("spec.name"), "{message:?}");

    // Deleting B's objects that named A's record leaves A's record as it was.
    let uid = df.uid().expect("uid");
    b.failovers.delete("a-record", &DeleteParams::default()).await.expect("delete DnsFailover");
    tokio::time::timeout(
        support::app::WAIT,
        kube::runtime::wait::await_condition(
            b.failovers.clone(),
            "a-record",
            kube::runtime::wait::conditions::is_deleted(&uid),
        ),
    )
    .await
    .expect("DnsFailover deleted in time")
    .expect("watch");
    for (name, _, _) in &cases {
        delete_app(&b.apps, name).await;
    }
    assert_eq!(
        fixtures::records_named(&a.cfg, &a.fx.zone_id, "web.apps.example.com").await,
        a_record,
        "team A's record is untouched"
    );

    // A revoked policy: B's app is refused (nothing deleted); restored: it is Synced again.
    delete_policy(&client, &b_policy).await;
    let app = wait_condition(&b.apps, "shop", "Degraded", "True", Some("NotPermitted")).await;
    assert!(degraded_message(&app).contains("--require-access-policy"), "{}", degraded_message(&app));
    assert_eq!(fixtures::owned_rules(&a.cfg, &shared, &owner).await.len(), 1, "a refusal deletes nothing");
    create_policy(&client, &b_policy, &b.ctx.namespace, b_allow).await;
    let app = wait_condition(&b.apps, "shop", "Degraded", "False", None).await;
    assert_eq!(condition(&app, "Synced").map(|c| c.status.as_str()), Some("True"));

    delete_app(&b.apps, "shop").await;
    assert!(fixtures::owned_rules(&a.cfg, &shared, &owner).await.is_empty(), "B's rule is deleted with B's app");
    delete_app(&a.api, "web").await;
    b.op.stop().await;
    b.ctx.cleanup().await;
    delete_policy(&client, &a_policy).await;
    delete_policy(&client, &b_policy).await;
    a.finish().await;
}
