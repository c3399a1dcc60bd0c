//! Property tests that feed hostile spec and status JSON through deserialization, validation, the
//! inventory helpers, status merging and the pure planners of every kind, and require that nothing
//! panics (debug builds, so an integer overflow panics too). Issue #15 item 3.
//!
//! Arbitrary JSON alone dies in deserialization, so the inputs come from three generators, mixed:
//! - values shaped by the kind's CRD schema (the same `crds()` the apiserver gets), with hostile
//!   scalars where the schema has a scalar and, now and then, a value of the wrong type;
//! - the manifests of `examples/` with up to three nodes replaced (by a hostile value of the same
//!   type, a near miss, or anything) or removed;
//! - free JSON trees whose keys are the schemas' property names.
//!
//! What the planners read from AWS (`Observed`, tasks, claims) is drawn from the same hostile
//! pools, mixed with identifiers taken from the generated status, so a status that claims
//! resources with odd ids meets an AWS that reports them.
//!
//! Cases per test: proptest's `PROPTEST_CASES` (default 256; `make fuzz` sets many more). Each test
//! prints how many cases ran and how far they got. A failure is shrunk, printed, and its seed saved
//! under `proptest-regressions/fuzz_tests/`, which is replayed first on every later run.

mod dns_failover;
mod fargate_app;
mod hot_pool;
mod mutate;

use std::cell::Cell;
use std::collections::BTreeSet;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};
use serde_json::{Map, Value};

use self::mutate::mutated_example;

/// How far one case got: counted per test and printed at the end.
#[derive(Default)]
pub(crate) struct Reach {
    cases: Cell<u64>,
    parsed: Cell<u64>,
    valid: Cell<u64>,
    stepped: Cell<u64>,
}

impl Reach {
    pub(crate) fn parsed(&self) {
        self.parsed.set(self.parsed.get() + 1);
    }
    pub(crate) fn valid(&self) {
        self.valid.set(self.valid.get() + 1);
    }
    /// A plan of this case had steps (it got past its gates); several plans run per case.
    pub(crate) fn stepped(&self, steps: usize) {
        if steps > 0 {
            self.stepped.set(self.stepped.get() + 1);
        }
    }
}

/// Run `body` on `strategy`'s values under proptest with failures persisted next to `source`, and
/// print how many cases ran, deserialized and passed validation.
pub(crate) fn fuzz<S: Strategy>(name: &str, source: &'static str, strategy: S, body: impl Fn(S::Value, &Reach))
where
    S::Value: std::fmt::Debug,
{
    let config = Config {
        failure_persistence: Some(Box::new(FileFailurePersistence::SourceParallel("proptest-regressions"))),
        source_file: Some(source),
        ..Config::default()
    };
    let reach = Reach::default();
    let mut runner = TestRunner::new(config);
    let result = runner.run(&strategy, |v| {
        reach.cases.set(reach.cases.get() + 1);
        body(v, &reach);
        Ok::<(), TestCaseError>(())
    });
    eprintln!(
        "fuzz {name}: {} cases ran, {} deserialized, {} passed validation; {} plans had steps",
        reach.cases.get(),
        reach.parsed.get(),
        reach.valid.get(),
        reach.stepped.get()
    );
    if let Err(e) = result {
        panic!("fuzz {name} failed: {e}");
    }
}

/// The CRD schema of `kind`'s `spec` or `status` (`part`), as JSON.
pub(crate) fn schema(kind: &str, part: &str) -> Value {
    let crd = crate::api::crds().into_iter().find(|c| c.spec.names.kind == kind);
    let props = crd
        .and_then(|c| c.spec.versions.into_iter().next())
        .and_then(|v| v.schema)
        .and_then(|s| s.open_api_v3_schema)
        .and_then(|s| s.properties)
        .and_then(|mut p| p.remove(part));
    serde_json::to_value(props).unwrap_or(Value::Null)
}

/// Every property name and enum value in every CRD: keys for free trees, and strings the code
/// may compare against.
fn vocabulary() -> (Vec<String>, Vec<String>) {
    static VOCABULARY: std::sync::OnceLock<(Vec<String>, Vec<String>)> = std::sync::OnceLock::new();
    VOCABULARY.get_or_init(collect_vocabulary).clone()
}

fn collect_vocabulary() -> (Vec<String>, Vec<String>) {
    fn walk(v: &Value, keys: &mut BTreeSet<String>, words: &mut BTreeSet<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::Object(props)) = m.get("properties") {
                    keys.extend(props.keys().cloned());
                }
                if let Some(Value::Array(values)) = m.get("enum") {
                    words.extend(values.iter().filter_map(|e| e.as_str().map(String::from)));
                }
                m.values().for_each(|c| walk(c, keys, words));
            }
            Value::Array(a) => a.iter().for_each(|c| walk(c, keys, words)),
            _ => {}
        }
    }
    let (mut keys, mut words) = (BTreeSet::new(), BTreeSet::new());
    for crd in crate::api::crds() {
        walk(&serde_json::to_value(crd).unwrap_or(Value::Null), &mut keys, &mut words);
    }
    (keys.into_iter().collect(), words.into_iter().collect())
}

/// Strings that have broken parsers before: empty, blank, huge, control and bidi characters, ARNs
/// and ids with parts missing, DNS names at the edges, and timestamps at the ends of time.
const HOSTILE_STRINGS: &[&str] = &[
    "",
    " ",
    "\0",
    "é",
    "ü✓\u{202e}漢字",
    "a\nb",
    ".",
    "..",
    "*",
    "/",
    "//",
    ":",
    ":::::",
    "-",
    "arn:",
    "arn:aws",
    "arn:aws:ecs",
    "arn:aws:ecs:::",
    "arn:aws:ecs:us-east-1:1:task/",
    "arn:aws:ecs:us-east-1:1:task/c/t",
    "arn:aws:ecs:us-east-1:1:task/t",
    "arn:aws:ecs:us-east-1:1:service/apps/fa-team-web",
    "arn:aws:ecs:us-east-1:1:task-definition/fa-team-web:1",
    "arn:aws:ecs:us-east-1:1:task-definition/x:",
    "arn:aws:ecs:us-east-1:1:cluster/",
    "arn:aws:elasticloadbalancing:us-east-1:1:listener/app/shared/50dc6c495c0c9188/f2f7dc8efc522ab2",
    "arn:aws:elasticloadbalancing:us-east-1:1:listener/app/",
    "arn:aws:elasticloadbalancing:us-east-1:1:listener-rule/app/shared/50dc/f2f7/1",
    "arn:aws:elasticloadbalancing:us-east-1:1:listener-rule/",
    "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/fa-team-web/1",
    "Z1",
    "/hostedzone/",
    "/hostedzone/Z1",
    "example.com",
    "example.com.",
    "a.example.com",
    "*.example.com",
    ".example.com",
    "example..com",
    "xn--",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "-009999-01-01T00:00:00Z",
    "1970-01-01T00:00:00Z",
    "2024-02-30T00:00:00Z",
    "2100-01-01T00:00:00.999999999Z",
    "2.4.1",
    "worker:42",
    "Stop",
    "Wait",
    "Auto",
    "subnet-1",
    "sg-1",
    "|",
    "#",
    "%00",
];

fn long_strings() -> impl Strategy<Value = String> {
    prop_oneof![
        (0usize..5000).prop_map(|n| "a".repeat(n)),
        (0usize..600).prop_map(|n| "é".repeat(n)),
        (0usize..300).prop_map(|n| "a.".repeat(n)),
        (0usize..200).prop_map(|n| "arn:aws:x:".repeat(n)),
    ]
}

/// A hostile string.
pub(crate) fn hostile_string() -> BoxedStrategy<String> {
    let (_, words) = vocabulary();
    prop_oneof![
        5 => prop::sample::select(HOSTILE_STRINGS).prop_map(String::from),
        2 => prop::sample::select(words),
        2 => "[a-z0-9:/.*-]{0,24}",
        1 => any::<String>(),
        1 => long_strings(),
        1 => timestamp_string(),
    ]
    .boxed()
}

/// A hostile integer: the ends of every width, zero, one, minus one, and anything.
pub(crate) fn hostile_int() -> BoxedStrategy<i64> {
    prop_oneof![
        3 => prop::sample::select(vec![
            0,
            1,
            -1,
            2,
            10,
            30,
            60,
            300,
            3600,
            i64::MIN,
            i64::MAX,
            i64::from(i32::MIN),
            i64::from(i32::MAX),
            i64::from(i32::MAX) + 1,
            i64::from(i32::MIN) - 1,
            i64::from(u32::MAX),
            253_402_300_799,
            -377_705_116_800,
        ]),
        2 => -100i64..100_000,
        1 => any::<i64>(),
    ]
    .boxed()
}

/// A hostile integer that fits an `i32` field.
pub(crate) fn hostile_i32() -> BoxedStrategy<i32> {
    prop_oneof![
        3 => prop::sample::select(vec![0, 1, -1, 2, 10, 30, 60, 300, 3600, 65535, 65536, i32::MIN, i32::MAX, i32::MAX - 1]),
        2 => -100i32..100_000,
        1 => any::<i32>(),
    ]
    .boxed()
}

/// A number JSON can hold that no field expects: u64 above i64, fractions, the ends of f64.
fn hostile_number() -> BoxedStrategy<Value> {
    prop_oneof![
        4 => hostile_int().prop_map(Value::from),
        1 => Just(Value::from(u64::MAX)),
        1 => prop::sample::select(vec![0.5, -0.0, 1e308, -1e308, f64::MIN_POSITIVE, 2147483647.5, 9.3e18])
            .prop_map(Value::from),
    ]
    .boxed()
}

/// An RFC 3339 time anywhere jiff can represent, or at its edges.
fn timestamp_string() -> BoxedStrategy<String> {
    use k8s_openapi::jiff::Timestamp;
    let (min, max) = (Timestamp::MIN.as_second(), Timestamp::MAX.as_second());
    prop_oneof![
        (min..=max).prop_map(|s| Timestamp::from_second(s).map(|t| t.to_string()).unwrap_or_default()),
        (0i64..4_102_444_800).prop_map(|s| Timestamp::from_second(s).map(|t| t.to_string()).unwrap_or_default()),
        prop::sample::select(vec![Timestamp::MIN.to_string(), Timestamp::MAX.to_string()]),
    ]
    .boxed()
}

/// A hostile scalar of any type.
fn hostile_scalar() -> BoxedStrategy<Value> {
    prop_oneof![
        3 => hostile_string().prop_map(Value::String),
        3 => hostile_number(),
        1 => any::<bool>().prop_map(Value::Bool),
        1 => Just(Value::Null),
    ]
    .boxed()
}

/// A JSON tree whose object keys are mostly the CRDs' property names.
pub(crate) fn free_tree() -> BoxedStrategy<Value> {
    let (keys, _) = vocabulary();
    let key = prop_oneof![4 => prop::sample::select(keys), 1 => hostile_string()];
    hostile_scalar()
        .prop_recursive(5, 96, 8, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(key.clone(), inner, 0..8)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
        .boxed()
}

/// A value shaped by `schema` (an OpenAPI v3 schema as JSON), with hostile scalars, absent optional
/// fields, and now and then a value of another type.
pub(crate) fn shaped(schema: &Value) -> BoxedStrategy<Value> {
    // Rare: one wrong-typed node fails the whole document's deserialization.
    let typed = shaped_typed(schema);
    prop_oneof![60 => typed, 1 => hostile_scalar()].boxed()
}

fn shaped_typed(schema: &Value) -> BoxedStrategy<Value> {
    let get = |k: &str| schema.get(k);
    if let Some(Value::Array(values)) = get("enum") {
        let values = values.clone();
        return prop_oneof![12 => prop::sample::select(values), 1 => hostile_string().prop_map(Value::String)].boxed();
    }
    if get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
        return prop_oneof![hostile_number(), hostile_string().prop_map(Value::String)].boxed();
    }
    for alt in ["anyOf", "oneOf"] {
        if let Some(Value::Array(alts)) = get(alt)
            && !alts.is_empty()
        {
            return prop::strategy::Union::new(alts.iter().map(shaped)).boxed();
        }
    }
    match get("type").and_then(Value::as_str) {
        Some("object") => {
            if let Some(Value::Object(props)) = get("properties") {
                let required: BTreeSet<&str> = get("required")
                    .and_then(Value::as_array)
                    .map(|r| r.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let fields: Vec<BoxedStrategy<Option<(String, Value)>>> = props
                    .iter()
                    .map(|(name, s)| {
                        let name = name.clone();
                        let present = if required.contains(name.as_str()) { 0.95 } else { 0.6 };
                        prop::option::weighted(present, shaped(s).prop_map(move |v| (name.clone(), v))).boxed()
                    })
                    .collect();
                return fields.prop_map(|f| Value::Object(f.into_iter().flatten().collect::<Map<_, _>>())).boxed();
            }
            match get("additionalProperties") {
                Some(s @ Value::Object(_)) => prop::collection::btree_map(hostile_string(), shaped(s), 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect()))
                    .boxed(),
                _ => free_tree(),
            }
        }
        Some("array") => match get("items") {
            Some(items) => prop::collection::vec(shaped(items), 0..5).prop_map(Value::Array).boxed(),
            None => prop::collection::vec(hostile_scalar(), 0..5).prop_map(Value::Array).boxed(),
        },
        Some("string") if get("format").and_then(Value::as_str) == Some("date-time") => {
            prop_oneof![4 => timestamp_string(), 1 => hostile_string()].prop_map(Value::String).boxed()
        }
        Some("string") => hostile_string().prop_map(Value::String).boxed(),
        Some("integer") if get("format").and_then(Value::as_str) == Some("int32") => {
            prop_oneof![12 => hostile_i32().prop_map(Value::from), 1 => hostile_number()].boxed()
        }
        Some("integer") | Some("number") => {
            prop_oneof![12 => hostile_int().prop_map(Value::from), 1 => hostile_number()].boxed()
        }
        Some("boolean") => any::<bool>().prop_map(Value::Bool).boxed(),
        _ => free_tree(),
    }
}

/// A `spec` or `status` of `kind` from any of the three generators.
pub(crate) fn part_of(kind: &str, part: &str) -> BoxedStrategy<Value> {
    let schema = schema(kind, part);
    prop_oneof![
        4 => shaped(&schema),
        4 => mutated_example(kind, part, &schema),
        1 => free_tree(),
    ]
    .boxed()
}

/// Hostile values for what AWS reports, drawn in turn by the planners' observed-state builders:
/// the strings are mixed with ids the generated status names.
#[derive(Clone, Debug)]
pub(crate) struct Pools {
    pub strings: Vec<String>,
    pub ints: Vec<i64>,
    pub bits: Vec<bool>,
}

pub(crate) fn pools() -> impl Strategy<Value = Pools> {
    (
        prop::collection::vec(hostile_string(), 1..12),
        prop::collection::vec(hostile_int(), 1..12),
        prop::collection::vec(any::<bool>(), 1..12),
    )
        .prop_map(|(strings, ints, bits)| Pools { strings, ints, bits })
}

/// A cursor over [`Pools`]: each draw takes the next value, wrapping around.
pub(crate) struct Draw<'a> {
    pools: &'a Pools,
    extra: Vec<String>,
    at: Cell<usize>,
}

impl<'a> Draw<'a> {
    /// Draws from `pools`, with the strings of `extra` (ids from a status) mixed in.
    pub(crate) fn new(pools: &'a Pools, extra: Vec<String>) -> Self {
        Self { pools, extra, at: Cell::new(0) }
    }
    fn next(&self) -> usize {
        let n = self.at.get();
        self.at.set(n.wrapping_add(1));
        n
    }
    pub(crate) fn s(&self) -> String {
        let n = self.next();
        let all = self.pools.strings.len() + self.extra.len();
        let i = n.wrapping_mul(7) % all.max(1);
        self.pools.strings.get(i).or_else(|| self.extra.get(i - self.pools.strings.len())).cloned().unwrap_or_default()
    }
    pub(crate) fn i64(&self) -> i64 {
        let n = self.next();
        self.pools.ints.get(n % self.pools.ints.len().max(1)).copied().unwrap_or_default()
    }
    pub(crate) fn i32(&self) -> i32 {
        let v = self.i64();
        i32::try_from(v).unwrap_or(if v < 0 { i32::MIN } else { i32::MAX })
    }
    pub(crate) fn b(&self) -> bool {
        let n = self.next();
        self.pools.bits.get(n % self.pools.bits.len().max(1)).copied().unwrap_or_default()
    }
    /// Up to `max` strings.
    pub(crate) fn strings(&self, max: usize) -> Vec<String> {
        let n = usize::try_from(self.i64().unsigned_abs() % (max as u64 + 1)).unwrap_or(0);
        (0..n).map(|_| self.s()).collect()
    }
    /// A time from the pools: seconds since the epoch, clamped to what jiff holds.
    pub(crate) fn time(&self) -> k8s_openapi::jiff::Timestamp {
        use k8s_openapi::jiff::Timestamp;
        let s = self.i64().clamp(Timestamp::MIN.as_second(), Timestamp::MAX.as_second());
        Timestamp::from_second(s).unwrap_or(Timestamp::UNIX_EPOCH)
    }
}

/// The generator itself must not panic, and must reach the planners: a smoke check of both.
#[test]
fn generators_produce_values_that_deserialize() {
    let mut runner = TestRunner::deterministic();
    let strategy = part_of("FargateApp", "spec");
    let parsed = (0..200)
        .filter_map(|_| strategy.new_tree(&mut runner).ok())
        .filter(|t| serde_json::from_value::<crate::api::FargateAppSpec>(t.current()).is_ok())
        .count();
    assert!(parsed > 20, "only {parsed} of 200 generated FargateApp specs deserialize");
}
