//! Label and field selectors of lists, watches and collection deletes.
//!
//! Label selectors take the apiserver's syntax, comma-joined requirements all of which must hold:
//! `k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)`, `k notin (a,b)` (`!=` and `notin` also match
//! objects without the label, as in Kubernetes). Field selectors support `metadata.name` and
//! `metadata.namespace` with `=`, `==` and `!=`; any other field is refused (400), as the apiserver
//! refuses fields a resource does not index.

use serde_json::{Map, Value};

use super::error::{ApiError, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
enum LabelReq {
    Eq(String, String),
    NotEq(String, String),
    Exists(String),
    NotExists(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Field {
    Name,
    Namespace,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct FieldReq {
    field: Field,
    value: String,
    equal: bool,
}

/// The selectors of one request; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Selector {
    labels: Vec<LabelReq>,
    fields: Vec<FieldReq>,
}

impl Selector {
    /// Parse `labelSelector` and `fieldSelector` (either may be absent).
    pub fn parse(labels: Option<&str>, fields: Option<&str>) -> Result<Self> {
        let labels =
            split_top_level(labels.unwrap_or_default()).iter().map(|r| parse_label_req(r)).collect::<Result<_>>()?;
        let fields =
            split_top_level(fields.unwrap_or_default()).iter().map(|r| parse_field_req(r)).collect::<Result<_>>()?;
        Ok(Self { labels, fields })
    }

    /// True when an object with these labels, name and namespace (`""` when cluster-scoped) matches.
    pub fn matches_parts(&self, labels: Option<&Map<String, Value>>, name: &str, namespace: &str) -> bool {
        let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        let labels_ok = self.labels.iter().all(|req| match req {
            LabelReq::Eq(k, v) => label(k) == Some(v.as_str()),
            LabelReq::NotEq(k, v) => label(k) != Some(v.as_str()),
            LabelReq::Exists(k) => label(k).is_some(),
            LabelReq::NotExists(k) => label(k).is_none(),
            LabelReq::In(k, vs) => label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            LabelReq::NotIn(k, vs) => label(k).is_none_or(|l| vs.iter().all(|v| v != l)),
        });
        labels_ok
            && self.fields.iter().all(|req| {
                let actual = match req.field {
                    Field::Name => name,
                    Field::Namespace => namespace,
                };
                (actual == req.value) == req.equal
            })
    }

    /// True when the stored object `obj` matches.
    pub fn matches(&self, obj: &Value) -> bool {
        let meta = obj.get("metadata");
        let s = |k: &str| meta.and_then(|m| m.get(k)).and_then(Value::as_str).unwrap_or_default();
        self.matches_parts(meta.and_then(|m| m.get("labels")).and_then(Value::as_object), s("name"), s("namespace"))
    }
}

/// Split on commas outside parentheses; drop empty parts.
fn split_top_level(s: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut current = String::new();
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    parts.push(current);
    parts.into_iter().map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect()
}

fn parse_label_req(req: &str) -> Result<LabelReq> {
    let bad = || ApiError::bad_request(format!("unable to parse requirement: invalid label selector {req:?}"));
    let key = |k: &str| {
        let k = k.trim();
        if k.is_empty() || k.contains(|c: char| c.is_whitespace() || "(),!=".contains(c)) {
            Err(bad())
        } else {
            Ok(k.to_string())
        }
    };
    if let Some(k) = req.strip_prefix('!') {
        return Ok(LabelReq::NotExists(key(k)?));
    }
    if let Some((k, v)) = req.split_once("!=") {
        return Ok(LabelReq::NotEq(key(k)?, v.trim().to_string()));
    }
    if let Some((k, v)) = req.split_once("==").or_else(|| req.split_once('=')) {
        return Ok(LabelReq::Eq(key(k)?, v.trim().to_string()));
    }
    for (op, notin) in [(" notin ", true), (" in ", false)] {
        if let Some((k, set)) = req.split_once(op) {
            let set = set.trim().strip_prefix('(').and_then(|s| s.strip_suffix(')')).ok_or_else(bad)?;
            let values = set.split(',').map(|v| v.trim().to_string()).filter(|v| !v.is_empty()).collect();
            let k = key(k)?;
            return Ok(if notin { LabelReq::NotIn(k, values) } else { LabelReq::In(k, values) });
        }
    }
    Ok(LabelReq::Exists(key(req)?))
}

fn parse_field_req(req: &str) -> Result<FieldReq> {
    let (k, v, equal) = if let Some((k, v)) = req.split_once("!=") {
        (k, v, false)
    } else if let Some((k, v)) = req.split_once("==").or_else(|| req.split_once('=')) {
        (k, v, true)
    } else {
        return Err(ApiError::bad_request(format!("invalid field selector {req:?}")));
    };
    let field = match k.trim() {
        "metadata.name" => Field::Name,
        "metadata.namespace" => Field::Namespace,
        other => return Err(ApiError::bad_request(format!("field label not supported: {other}"))),
    };
    Ok(FieldReq { field, value: v.trim().to_string(), equal })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn obj(labels: Value) -> Value {
        json!({"metadata": {"name": "a", "namespace": "ns", "labels": labels}})
    }

    #[test]
    fn label_requirements() {
        let o = obj(json!({"app": "web", "tier": "front"}));
        let m = |l: &str| Selector::parse(Some(l), None).unwrap().matches(&o);
        assert!(m("app=web") && m("app==web") && m("app") && m("!db") && m("app=web,tier=front"));
        assert!(m("app in (web, api)") && m("app notin (api)") && m("db notin (x)") && m("db!=x") && m(""));
        assert!(!m("app=api") && !m("app!=web") && !m("!app") && !m("db") && !m("app in (api)"));
        assert!(!m("app notin (web,api)") && !m("db in (x)") && !m("app=web,tier=back"));
        assert!(Selector::parse(Some("a b=c"), None).is_err());
    }

    #[test]
    fn field_requirements() {
        let o = obj(json!({}));
        let m = |f: &str| Selector::parse(None, Some(f)).unwrap().matches(&o);
        assert!(m("metadata.name=a") && m("metadata.namespace==ns") && m("metadata.name!=b"));
        assert!(!m("metadata.name=b") && !m("metadata.name=a,metadata.namespace=other"));
        assert_eq!(Selector::parse(None, Some("spec.pool=x")).unwrap_err().code, 400);
    }
}
