//! The second generator: the manifests of `examples/` (valid specs), with up to three nodes
//! replaced by a hostile value of the same type, a near miss of the old value, or anything, or
//! removed.

use proptest::prelude::*;
use serde::Deserialize;
use serde_json::Value;

use super::{free_tree, hostile_i32, hostile_int, hostile_scalar, hostile_string, shaped};

/// The documents of `examples/` of `kind`, as JSON.
fn examples(kind: &str) -> Vec<Value> {
    const FILES: &[&str] = &[
        include_str!("../../examples/fargateapp-full.yaml"),
        include_str!("../../examples/fargateapp-minimal.yaml"),
        include_str!("../../examples/dnsfailover.yaml"),
        include_str!("../../examples/hotpool.yaml"),
        include_str!("../../examples/hotpoolworker.yaml"),
    ];
    let docs = FILES.iter().flat_map(|f| serde_yaml::Deserializer::from_str(f));
    docs.filter_map(|d| serde_json::to_value(serde_yaml::Value::deserialize(d).ok()?).ok())
        .filter(|v| v.get("kind").and_then(Value::as_str) == Some(kind))
        .collect()
}

/// One edit of an example: which node (an index into its nodes, taken modulo their number) and
/// what becomes of it.
#[derive(Clone, Debug)]
pub(crate) enum Edit {
    /// Replaced by a value of the node's own type (mostly: else deserialization stops it), or by
    /// `other`.
    Replace(prop::sample::Index, Hostile),
    Remove(prop::sample::Index),
}

/// A replacement for each JSON type, and one of any type.
#[derive(Clone, Debug)]
pub(crate) struct Hostile {
    keep_type: bool,
    /// A near miss of the old value (a suffix, a small step) rather than a hostile one: specs
    /// stay valid more often and so reach the planners.
    near: bool,
    step: i32,
    string: String,
    int: i32,
    wide: i64,
    bool: bool,
    other: Value,
}

fn hostile_replacement() -> impl Strategy<Value = Hostile> {
    let other = prop_oneof![3 => hostile_scalar(), 1 => free_tree()];
    let near = (prop::bool::weighted(0.5), -3i32..=3);
    (prop::bool::weighted(0.85), near, hostile_string(), hostile_i32(), hostile_int(), any::<bool>(), other).prop_map(
        |(keep_type, (near, step), string, int, wide, bool, other)| Hostile {
            keep_type,
            near,
            step,
            string,
            int,
            wide,
            bool,
            other,
        },
    )
}

impl Hostile {
    fn replacing(&self, old: &Value) -> Value {
        match old {
            _ if !self.keep_type => self.other.clone(),
            Value::String(old) if self.near => {
                let suffix = [".", "-", "/", "*", "0", ":", "", "Z"][self.step.unsigned_abs() as usize];
                Value::String(if self.bool { format!("{old}{suffix}") } else { old.chars().skip(1).collect() })
            }
            Value::Number(n) if self.near => {
                let old = n.as_i64().unwrap_or(0);
                Value::from(old.saturating_add(i64::from(self.step)).saturating_mul(if self.bool { 2 } else { 1 }))
            }
            Value::String(_) => Value::String(self.string.clone()),
            Value::Number(n) if n.is_i64() && self.bool => Value::from(self.wide),
            Value::Number(_) => Value::from(self.int),
            Value::Bool(_) => Value::Bool(self.bool),
            Value::Array(a) if self.bool => Value::Array(a.iter().chain(a.iter()).cloned().collect()),
            Value::Array(_) => Value::Array(Vec::new()),
            _ => self.other.clone(),
        }
    }
}

/// `kind`'s example `part` (`spec` or `status`) with up to three nodes replaced or removed; when
/// the example has no such part (status), a tree shaped by `schema`.
pub(crate) fn mutated_example(kind: &str, part: &str, schema: &Value) -> BoxedStrategy<Value> {
    let bases: Vec<Value> = examples(kind).into_iter().filter_map(|e| e.get(part).cloned()).collect();
    if bases.is_empty() {
        return shaped(schema);
    }
    let edit = prop_oneof![
        4 => (any::<prop::sample::Index>(), hostile_replacement()).prop_map(|(i, v)| Edit::Replace(i, v)),
        1 => any::<prop::sample::Index>().prop_map(Edit::Remove),
    ];
    (prop::sample::select(bases), prop::collection::vec(edit, 0..4))
        .prop_map(|(mut base, edits)| {
            for e in &edits {
                apply_edit(&mut base, e);
            }
            base
        })
        .boxed()
}

fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => m.iter().for_each(|(k, c)| {
            let p = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
            out.push(p.clone());
            pointers(c, p, out);
        }),
        Value::Array(a) => a.iter().enumerate().for_each(|(i, c)| {
            let p = format!("{at}/{i}");
            out.push(p.clone());
            pointers(c, p, out);
        }),
        _ => {}
    }
}

fn apply_edit(v: &mut Value, edit: &Edit) {
    let mut all = Vec::new();
    pointers(v, String::new(), &mut all);
    let (Edit::Replace(i, _) | Edit::Remove(i)) = edit;
    if all.is_empty() {
        return;
    }
    let at = &all[i.index(all.len())];
    match edit {
        Edit::Replace(_, new) => {
            if let Some(node) = v.pointer_mut(at) {
                *node = new.replacing(node);
            }
        }
        Edit::Remove(_) => {
            let (parent, last) = at.rsplit_once('/').unwrap_or(("", at));
            match v.pointer_mut(parent) {
                Some(Value::Object(m)) => {
                    m.remove(&last.replace("~1", "/").replace("~0", "~"));
                }
                Some(Value::Array(a)) => {
                    if let Ok(i) = last.parse::<usize>()
                        && i < a.len()
                    {
                        a.remove(i);
                    }
                }
                _ => {}
            }
        }
    }
}
