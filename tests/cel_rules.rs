//! The CRDs' CEL rules (x-kubernetes-validations), evaluated client-side with kube's CEL support,
//! since the test apiserver (v1.20) drops them. Each rule is checked for a pass and a rejection, and
//! against the Rust validation that mirrors it.

use fargate_operator::api::validation::{fargate_memory_sizes, validate_dns_failover, validate_fargate_app};
use fargate_operator::api::{DnsFailover, FargateApp, HotPool, HotPoolClaim};
use kube::CustomResourceExt;
use kube_cel::Validator;
use serde_json::{Value, json};

fn schema_of<K: CustomResourceExt>() -> Value {
    let crd = K::crd();
    serde_json::to_value(
        crd.spec.versions[0].schema.as_ref().and_then(|s| s.open_api_v3_schema.as_ref()).expect("schema"),
    )
    .expect("json")
}

/// CEL errors for `obj` (empty when every rule passes).
fn cel_errors<K: CustomResourceExt>(obj: &Value) -> Vec<String> {
    match Validator::new().validate(&schema_of::<K>(), obj, None) {
        Ok(()) => vec![],
        Err(errs) => errs.into_vec().into_iter().map(|e| e.to_string()).collect(),
    }
}

fn app(spec_patch: Value) -> Value {
    let mut obj = json!({
        "apiVersion": "fargate.operator.dev/v1alpha1", "kind": "FargateApp",
        "metadata": {"name": "a", "namespace": "n"},
        "spec": {"cluster": "apps", "cpu": 256, "memory": 512,
                 "containers": [{"name": "web", "image": "nginx", "port": 80}],
                 "network": {"subnets": ["subnet-1"]},
                 "deployment": {"minimumHealthyPercent": 100, "maximumPercent": 200}}
    });
    for (k, v) in spec_patch.as_object().expect("object") {
        obj["spec"][k] = v.clone();
    }
    obj
}

fn rust_app_valid(obj: &Value) -> bool {
    let app: FargateApp = serde_json::from_value(obj.clone()).expect("deserialize");
    validate_fargate_app(&app.spec).is_ok()
}

/// AWS's table of Fargate task sizes, written out from the ECS developer guide ("Task CPU and
/// memory"), independently of the code's own table, so a wrong size there fails here.
fn aws_documented_sizes(cpu: i32) -> Vec<i32> {
    let gb = |g: i32| g * 1024;
    match cpu {
        256 => vec![512, gb(1), gb(2)],
        512 => (1..=4).map(gb).collect(),
        1024 => (2..=8).map(gb).collect(),
        2048 => (4..=16).map(gb).collect(),
        4096 => (8..=30).map(gb).collect(),
        8192 => (16..=60).step_by(4).map(gb).collect(),
        16384 => (32..=120).step_by(8).map(gb).collect(),
        _ => vec![],
    }
}

#[test]
fn cel_and_rust_agree_with_aws_on_every_fargate_size() {
    let compiled = kube_cel::compile_schema(&schema_of::<FargateApp>());
    let validator = Validator::new();
    for cpu in [256, 512, 1024, 2048, 4096, 8192, 16384] {
        let sizes = aws_documented_sizes(cpu);
        assert_eq!(fargate_memory_sizes(cpu).expect("cpu"), sizes, "the code's table for cpu {cpu}");
        for memory in (512..=122880).step_by(512) {
            let obj = app(json!({"cpu": cpu, "memory": memory}));
            let cel_ok = validator.validate_compiled(&compiled, &obj, None).is_ok();
            let want = sizes.contains(&memory);
            assert_eq!(cel_ok, want, "CEL: cpu {cpu} memory {memory}");
            assert_eq!(rust_app_valid(&obj), want, "Rust: cpu {cpu} memory {memory}");
        }
    }
}

#[test]
fn fargate_app_cross_field_rules() {
    let cases: Vec<(&str, Value, Option<&str>)> = vec![
        ("valid", json!({}), None),
        (
            "duplicate container names",
            json!({"containers": [{"name": "a", "image": "x"}, {"name": "a", "image": "y"}]}),
            Some("unique"),
        ),
        (
            "listener rule without conditions",
            json!({"loadBalancer": {"listenerRule": {"listenerArn": "arn:aws:elasticloadbalancing:us-east-1:1:listener/app/x/1/2"}}}),
            Some("at least one of pathPatterns or hostHeaders"),
        ),
        (
            "listener rule with a path",
            json!({"loadBalancer": {"listenerRule": {"listenerArn": "arn:aws:elasticloadbalancing:us-east-1:1:listener/app/x/1/2", "pathPatterns": ["/a/*"]}}}),
            None,
        ),
        (
            "priority outside range",
            json!({"loadBalancer": {"listenerRule": {"listenerArn": "arn:aws:elasticloadbalancing:us-east-1:1:listener/app/x/1/2", "pathPatterns": ["/a/*"], "priority": 5, "priorityRange": {"min": 10, "max": 20}}}}),
            Some("priority must lie inside priorityRange"),
        ),
        ("target group without vpc or rule", json!({"loadBalancer": {"targetGroup": {}}}), Some("vpcId is required")),
        (
            "dns without listener rule",
            json!({"dns": {"hostedZoneId": "Z1", "name": "a.example.com"}}),
            Some("spec.dns needs"),
        ),
        (
            "lb container unknown",
            json!({"loadBalancer": {"containerName": "nope", "targetGroup": {"vpcId": "vpc-1"}}}),
            Some("containerName must name"),
        ),
        (
            "max not above min",
            json!({"deployment": {"minimumHealthyPercent": 50, "maximumPercent": 50}}),
            Some("maximumPercent"),
        ),
        (
            "health check command",
            json!({"containers": [{"name": "w", "image": "x", "healthCheck": {"command": ["curl"]}}]}),
            Some("CMD"),
        ),
    ];
    for (what, patch, want) in cases {
        let obj = app(patch);
        let errs = cel_errors::<FargateApp>(&obj);
        match want {
            None => {
                assert!(errs.is_empty(), "{what}: unexpected CEL errors {errs:?}");
                assert!(rust_app_valid(&obj), "{what}: Rust validation rejected a valid spec");
            }
            Some(msg) => {
                assert!(errs.iter().any(|e| e.contains(msg)), "{what}: want {msg:?}, got {errs:?}");
                assert!(!rust_app_valid(&obj), "{what}: Rust validation accepted what CEL rejects");
            }
        }
    }
}

fn failover(primary: &str, secondary: &str, hc: Value) -> Value {
    json!({
        "apiVersion": "fargate.operator.dev/v1alpha1", "kind": "DnsFailover",
        "metadata": {"name": "d", "namespace": "n"},
        "spec": {"hostedZoneId": "Z1", "name": "dev.acs.app.com",
                 "primary": {"target": primary, "healthCheck": hc},
                 "secondary": {"target": secondary}}
    })
}

#[test]
fn dns_failover_rules() {
    let https = json!({"type": "HTTPS", "path": "/health", "requestIntervalSeconds": 30, "failureThreshold": 3});
    let cases: Vec<(&str, Value, Option<&str>)> = vec![
        ("valid", failover("lb.dev.app.com", "lb.dr.app.com", https.clone()), None),
        ("same targets", failover("lb.dev.app.com", "lb.dev.app.com", https.clone()), Some("must differ")),
        ("same up to case and dot", failover("LB.dev.app.com", "lb.dev.app.com.", https.clone()), Some("must differ")),
        (
            "target is the name",
            failover("dev.acs.app.com", "lb.dr.app.com", https.clone()),
            Some("must not point at spec.name"),
        ),
        (
            "TCP with path",
            failover(
                "lb.dev.app.com",
                "lb.dr.app.com",
                json!({"type": "TCP", "path": "/x", "requestIntervalSeconds": 30, "failureThreshold": 3}),
            ),
            Some("HTTP and HTTPS checks only"),
        ),
    ];
    for (what, obj, want) in cases {
        let errs = cel_errors::<DnsFailover>(&obj);
        let rust: DnsFailover = serde_json::from_value(obj.clone()).expect("deserialize");
        let rust_ok = validate_dns_failover(&rust.spec, Some("acs.app.com")).is_ok();
        match want {
            None => assert!(errs.is_empty() && rust_ok, "{what}: {errs:?} rust_ok={rust_ok}"),
            Some(msg) => {
                assert!(errs.iter().any(|e| e.contains(msg)), "{what}: want {msg:?}, got {errs:?}");
                assert!(!rust_ok, "{what}: Rust validation accepted what CEL rejects");
            }
        }
    }
}

#[test]
fn claim_pool_and_version_are_immutable() {
    let claim = |pool: &str| {
        json!({"apiVersion": "fargate.operator.dev/v1alpha1", "kind": "HotPoolClaim",
               "metadata": {"name": "c", "namespace": "n"},
               "spec": {"pool": pool, "version": "1", "client": "x"}})
    };
    let schema = schema_of::<HotPoolClaim>();
    assert!(Validator::new().validate(&schema, &claim("a"), Some(&claim("a"))).is_ok());
    let err = Validator::new().validate(&schema, &claim("b"), Some(&claim("a"))).expect_err("pool change must fail");
    assert!(err.into_vec().iter().any(|e| e.to_string().contains("cannot change")));
}

#[test]
fn every_cel_rule_compiles() {
    for (kind, schema) in [
        ("FargateApp", schema_of::<FargateApp>()),
        ("DnsFailover", schema_of::<DnsFailover>()),
        ("HotPool", schema_of::<HotPool>()),
        ("HotPoolClaim", schema_of::<HotPoolClaim>()),
    ] {
        let compiled = kube_cel::compile_schema(&schema);
        assert!(!compiled.has_errors(), "{kind}: {:?}", compiled.compilation_errors());
    }
}

/// `spec.aws` of every kind cannot be added, removed or changed; an update that keeps it passes.
#[test]
fn spec_aws_cannot_change_on_any_kind() {
    fn check<K: CustomResourceExt>(base: Value) {
        let schema = schema_of::<K>();
        let with = |aws: Option<Value>| {
            let mut o = base.clone();
            match aws {
                Some(a) => o["spec"]["aws"] = a,
                None => {
                    o["spec"].as_object_mut().expect("spec").remove("aws");
                }
            }
            o
        };
        let east = Some(json!({"region": "us-east-1"}));
        let west = Some(json!({"region": "us-west-2"}));
        let role = Some(json!({"region": "us-east-1", "roleArn": "arn:aws:iam::123456789012:role/r"}));
        let v = Validator::new();
        let kind = base["kind"].as_str().unwrap_or("?").to_string();
        for same in [None, east.clone()] {
            assert!(v.validate(&schema, &with(same.clone()), Some(&with(same))).is_ok(), "{kind}: unchanged passes");
        }
        for (old, new) in [(None, east.clone()), (east.clone(), None), (east.clone(), west), (east, role)] {
            let err = v.validate(&schema, &with(new.clone()), Some(&with(old.clone()))).expect_err("a change fails");
            assert!(err.to_string().contains("spec.aws cannot change"), "{kind} {old:?} -> {new:?}: {err}");
        }
    }
    check::<FargateApp>(app(json!({})));
    check::<DnsFailover>(failover("a.example.com", "b.example.com", json!({})));
    let pool = json!({
        "apiVersion": "fargate.operator.dev/v1alpha1", "kind": "HotPool",
        "metadata": {"name": "p", "namespace": "n"},
        "spec": {"cluster": "workers", "network": {"subnets": ["subnet-1"]},
                 "versions": [{"version": "1", "taskDefinition": "worker:1", "scaleTo": 1, "port": 7000}]}
    });
    check::<HotPool>(pool);
}

/// Found by the fuzz tests (`src/fuzz_tests/`): two container memory limits whose sum passes
/// `i32::MAX` (`[2, 2147483647]` with cpu 256) overflowed the sum and panicked in validation. The
/// schema bounds each limit to 6..122880, but the Rust validation also runs on objects the
/// apiserver did not check against this schema (an older CRD).
#[test]
fn container_memory_limits_out_of_range_are_invalid_and_never_overflow() {
    let containers = json!([
        {"name": "a", "image": "nginx", "memory": 2},
        {"name": "b", "image": "nginx", "memory": i32::MAX}
    ]);
    let obj = app(json!({ "containers": containers }));
    let parsed: FargateApp = serde_json::from_value(obj).expect("deserialize");
    let errs = validate_fargate_app(&parsed.spec).expect_err("limits out of range");
    assert!(errs.mentions("spec.containers[0].memory"), "{errs}");
    assert!(errs.mentions("spec.containers[1].memory"), "{errs}");
    assert!(errs.to_string().contains("use 6..122880 MiB"), "{errs}");
    let in_range = json!([
        {"name": "a", "image": "nginx", "memory": 122880},
        {"name": "b", "image": "nginx", "memory": 122880}
    ]);
    let parsed: FargateApp = serde_json::from_value(app(json!({ "containers": in_range }))).expect("deserialize");
    let errs = validate_fargate_app(&parsed.spec).expect_err("over spec.memory");
    assert!(errs.mentions("spec.containers[].memory"), "{errs}");
}
