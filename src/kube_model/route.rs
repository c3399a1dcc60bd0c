//! Request URLs: which resource, namespace, object and subresource a path names, and the query
//! parameters.
//!
//! Paths are `/api/v1/...` (the core group) and `/apis/{group}/{version}/...`, followed by
//! `namespaces/{ns}/{plural}[/{name}[/status]]` (namespaced) or `{plural}[/{name}[/status]]`
//! (cluster-scoped, or every namespace for a list or watch). `/api/v1/namespaces/{name}` is the
//! Namespace object itself. The version is carried but not part of an object's identity: the model
//! serves one version per resource. Anything else (discovery, `/version`, other subresources) is not
//! a route, and the server answers 404.

/// A resource: group, version and plural name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ResourceId {
    /// API group; empty for the core group.
    pub group: String,
    pub version: String,
    pub plural: String,
}

impl ResourceId {
    /// `apiVersion` of the resource's objects: `v1` or `group/version`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.clone() } else { format!("{}/{}", self.group, self.version) }
    }

    /// `plural.group` (or `plural` for the core group): the identity of the resource in the store
    /// and the name the real apiserver gives it in messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() { self.plural.clone() } else { format!("{}.{}", self.plural, self.group) }
    }

    /// True when the resource has a `status` subresource whose content the main resource's writes
    /// leave alone: every resource of this operator's group.
    pub fn has_status_subresource(&self) -> bool {
        self.group == "fargate.operator.dev"
    }
}

/// What a path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Route {
    pub resource: ResourceId,
    /// `None` for cluster-scoped paths (which, for a list or watch, cover every namespace).
    pub namespace: Option<String>,
    /// `None` for the collection.
    pub name: Option<String>,
    /// True for `.../{name}/status`.
    pub status: bool,
}

/// Parse a URL path; `None` when it names no resource.
pub(super) fn parse_path(path: &str) -> Option<Route> {
    let segments: Vec<String> = path.split('/').filter(|s| !s.is_empty()).map(|s| decode(s, false)).collect();
    let (group, version, rest) = match segments.as_slice() {
        [api, version, rest @ ..] if api == "api" => (String::new(), version.clone(), rest),
        [apis, group, version, rest @ ..] if apis == "apis" => (group.clone(), version.clone(), rest),
        _ => return None,
    };
    let resource =
        |plural: &String| ResourceId { group: group.clone(), version: version.clone(), plural: plural.clone() };
    let route = |plural: &String, namespace: Option<&String>, name: Option<&String>, status: bool| {
        Some(Route { resource: resource(plural), namespace: namespace.cloned(), name: name.cloned(), status })
    };
    match rest {
        // `namespaces/{name}/status` is the Namespace's status, not a resource called "status".
        [plural, name, sub] if plural == "namespaces" && sub == "status" => route(plural, None, Some(name), true),
        [ns_kw, ns, plural, rest @ ..] if ns_kw == "namespaces" => match rest {
            [] => route(plural, Some(ns), None, false),
            [name] => route(plural, Some(ns), Some(name), false),
            [name, sub] if sub == "status" => route(plural, Some(ns), Some(name), true),
            _ => None,
        },
        [plural] => route(plural, None, None, false),
        [plural, name] => route(plural, None, Some(name), false),
        [plural, name, sub] if sub == "status" => route(plural, None, Some(name), true),
        _ => None,
    }
}

/// Decoded query parameters, in order.
#[derive(Debug, Clone, Default)]
pub(super) struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// Parse `a=b&c=d` (form-encoded, as kube writes it).
    pub fn parse(query: Option<&str>) -> Self {
        let pairs = query
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once('=') {
                Some((k, v)) => (decode(k, true), decode(v, true)),
                None => (decode(p, true), String::new()),
            })
            .collect();
        Self { pairs }
    }

    /// The last value of `key`, if given.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// True when `key` is `true` or `1`.
    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1"))
    }
}

/// Percent-decode `s` (and `+` as a space in query strings). Invalid escapes stay as they are.
fn decode(s: &str, plus_is_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' if plus_is_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let r = parse_path("/apis/fargate.operator.dev/v1alpha1/namespaces/ns1/hotpools/p1/status").unwrap();
        assert_eq!(r.resource.qualified(), "hotpools.fargate.operator.dev");
        assert_eq!((r.namespace.as_deref(), r.name.as_deref(), r.status), (Some("ns1"), Some("p1"), true));
        let r = parse_path("/api/v1/namespaces/ns1").unwrap();
        assert_eq!((r.resource.plural.as_str(), r.namespace, r.name.as_deref()), ("namespaces", None, Some("ns1")));
        let r = parse_path("/api/v1/namespaces/ns1/status").unwrap();
        assert_eq!((r.name.as_deref(), r.status), (Some("ns1"), true));
        let r = parse_path("/api/v1/namespaces/ns1/configmaps").unwrap();
        assert_eq!((r.resource.api_version(), r.namespace.as_deref(), r.name), ("v1".into(), Some("ns1"), None));
        let r = parse_path("/apis/events.k8s.io/v1/events").unwrap();
        assert_eq!((r.namespace, r.name), (None, None));
        assert!(parse_path("/version").is_none());
        assert!(parse_path("/apis/g/v1/namespaces/a/things/b/scale").is_none());
    }

    #[test]
    fn query() {
        let q = Query::parse(Some("watch=1&labelSelector=fargate.operator.dev%2Fpool%3Dpool1&x=a+b&x=c"));
        assert!(q.flag("watch"));
        assert_eq!(q.get("labelSelector"), Some("fargate.operator.dev/pool=pool1"));
        assert_eq!(q.get("x"), Some("c"));
        assert_eq!(decode("100%", true), "100%");
        assert_eq!(decode("%zz%41", true), "%zzA");
    }
}
