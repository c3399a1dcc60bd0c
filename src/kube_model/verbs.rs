//! The verbs other than watch: get, list, create, replace, patch, delete and deletecollection, on
//! the main resource and on `/status`.
//!
//! - create (POST): 409 AlreadyExists for a taken name; `generateName`; sets uid, creationTimestamp,
//!   `generation: 1` and the namespace of the path; drops `status` for kinds with a status
//!   subresource. The namespace need not exist.
//! - replace (PUT): 409 Conflict when the body's resourceVersion is set and not the stored one;
//!   without one, 422 for the operator's own kinds (custom resources refuse unconditional updates)
//!   and an unconditional update for others. On the main resource the stored status is kept
//!   (status-subresource kinds), on `/status` only the status changes. 404 when absent.
//! - patch (PATCH): see [`super::patch`] for the kinds. A resourceVersion in the body (or put there
//!   by a JSON patch) that is not the stored one is 409. Apply to an absent object creates it (main
//!   resource only). `fieldManager` is required for apply (422); `force` is accepted and changes
//!   nothing.
//! - delete (DELETE): `preconditions` (uid, resourceVersion) are checked (409); `propagationPolicy`
//!   and `gracePeriodSeconds` are ignored (every deletion cascades in the background, at once).
//!   Answers the object while finalizers hold it, else a `Status` Success.
//! - deletecollection (DELETE on a collection): deletes each object the selectors match, as
//!   DELETE does, and answers the list of them.
//! - list: every match, sorted by namespace and name, with the current resourceVersion; `limit`,
//!   `continue`, `resourceVersion` and `resourceVersionMatch` are ignored (always the newest state,
//!   in one page).
//!
//! `dryRun` is refused (400) rather than silently written.

use http::Method;
use serde_json::{Value, json};

use super::error::{self, ApiError, Result};
use super::patch::{self, PatchBody};
use super::route::{Query, Route};
use super::select::Selector;
use super::store::{self, Deleted, Key, Store};

/// One request, parsed.
#[derive(Debug)]
pub(super) struct Request<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    pub route: &'a Route,
    pub query: &'a Query,
    pub content_type: &'a str,
    pub body: &'a [u8],
}

/// Answer `req` (not a watch) from `store`: (HTTP code, JSON body).
pub(super) fn handle(store: &mut Store, req: &Request<'_>) -> Result<(u16, Value)> {
    let route = req.route;
    let is_write = *req.method != Method::GET;
    if is_write && req.query.get("dryRun").is_some_and(|v| !v.is_empty()) {
        return Err(ApiError::bad_request("dryRun is not supported by the in-memory apiserver"));
    }
    match (req.method, route.name.as_deref()) {
        (&Method::GET, None) if !route.status => list(store, route, req.query).map(|l| (200, l)),
        (&Method::GET, Some(name)) => get(store, route, name).map(|o| (200, o)),
        (&Method::POST, None) if !route.status => {
            let obj = parse_json(req.body)?;
            create(store, route, None, obj).map(|o| (201, o))
        }
        (&Method::PUT, Some(name)) => replace(store, route, name, req.body).map(|o| (200, o)),
        (&Method::PATCH, Some(name)) => patch(store, req, name),
        (&Method::DELETE, Some(name)) if !route.status => delete(store, route, name, req.body).map(|o| (200, o)),
        (&Method::DELETE, None) if !route.status => delete_collection(store, route, req.query).map(|l| (200, l)),
        _ => Err(ApiError::method_not_allowed(req.method.as_str(), req.path)),
    }
}

fn key(route: &Route, name: &str) -> Key {
    (route.resource.qualified(), route.namespace.clone().unwrap_or_default(), name.to_string())
}

fn parse_json(body: &[u8]) -> Result<Value> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("cannot decode the body: {e}")))
}

fn get(store: &Store, route: &Route, name: &str) -> Result<Value> {
    store.get(&key(route, name)).cloned().ok_or_else(|| ApiError::not_found(&route.resource.qualified(), name))
}

fn list(store: &Store, route: &Route, query: &Query) -> Result<Value> {
    let selector = Selector::parse(query.get("labelSelector"), query.get("fieldSelector"))?;
    let resource = route.resource.qualified();
    let items: Vec<Value> = store
        .list(&resource, route.namespace.as_deref())
        .map(|(_, o)| o)
        .filter(|o| selector.matches(o))
        .cloned()
        .collect();
    Ok(list_body(store, route, items))
}

fn list_body(store: &Store, route: &Route, items: Vec<Value>) -> Value {
    let (api_version, kind) = store.kind_of(&route.resource);
    json!({
        "kind": format!("{kind}List"),
        "apiVersion": api_version,
        "metadata": { "resourceVersion": store.resource_version().to_string() },
        "items": items,
    })
}

/// Store a new object from `obj` (a POST body, or an apply to an absent object, whose URL names it
/// `url_name`).
pub(super) fn create(store: &mut Store, route: &Route, url_name: Option<&str>, mut obj: Value) -> Result<Value> {
    let res = &route.resource;
    if !obj.is_object() || !obj.get("metadata").is_none_or(Value::is_object) {
        return Err(ApiError::bad_request("the body must be a JSON object with object metadata"));
    }
    let meta_str = |obj: &Value, f: &str| {
        obj.pointer(&format!("/metadata/{f}")).and_then(Value::as_str).filter(|s| !s.is_empty()).map(String::from)
    };
    if let Some(ns) = meta_str(&obj, "namespace")
        && route.namespace.as_deref() != Some(ns.as_str())
    {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    let name = match (meta_str(&obj, "name"), url_name, meta_str(&obj, "generateName")) {
        (Some(name), Some(url), _) if name != url => return Err(name_mismatch(&name, url)),
        (Some(name), _, _) => name,
        (None, Some(url), _) => url.to_string(),
        (None, None, Some(prefix)) => store.generate_name(&prefix),
        (None, None, None) => {
            return Err(ApiError::invalid("metadata.name: Required value: name or generateName is required"));
        }
    };
    let key = key(route, &name);
    if store.get(&key).is_some() {
        return Err(ApiError::already_exists(&res.qualified(), &name));
    }
    if res.has_status_subresource()
        && let Some(map) = obj.as_object_mut()
    {
        map.remove("status");
    }
    let uid = store.next_uid();
    store::set_meta(&mut obj, "name", Value::String(name))?;
    match &route.namespace {
        Some(ns) => store::set_meta(&mut obj, "namespace", Value::String(ns.clone()))?,
        None => store::remove_meta(&mut obj, "namespace"),
    }
    store::set_meta(&mut obj, "uid", Value::String(uid))?;
    store::set_meta(&mut obj, "creationTimestamp", store::now()?)?;
    store::set_meta(&mut obj, "generation", Value::from(1))?;
    for server_owned in ["deletionTimestamp", "deletionGracePeriodSeconds", "resourceVersion"] {
        store::remove_meta(&mut obj, server_owned);
    }
    let (api_version, kind) = store.kind_of(res);
    if let Some(map) = obj.as_object_mut() {
        map.entry("apiVersion").or_insert(Value::String(api_version));
        map.entry("kind").or_insert(Value::String(kind));
    }
    store.learn_kind(res, &obj);
    store.insert(key, obj)
}

fn name_mismatch(body: &str, url: &str) -> ApiError {
    ApiError::bad_request(format!("the name of the object ({body}) does not match the name on the URL ({url})"))
}

/// 409 when `precondition` (a resourceVersion the client sent) is not `stored`'s.
fn check_resource_version(route: &Route, name: &str, precondition: Option<&str>, stored: &Value) -> Result<()> {
    match precondition {
        Some(rv) if Some(rv) != patch::resource_version(stored) => {
            Err(ApiError::conflict(&route.resource.qualified(), name))
        }
        _ => Ok(()),
    }
}

/// `target` with the `status` of `source` (none if `source` has none).
fn with_status_of(mut target: Value, source: &Value) -> Result<Value> {
    let map = target.as_object_mut().ok_or_else(|| ApiError::invalid("the object is not a JSON object"))?;
    match source.get("status") {
        Some(status) => map.insert("status".into(), status.clone()),
        None => map.remove("status"),
    };
    Ok(target)
}

/// The object a write to `route` makes of `stored` and the `written` result of the verb: only the
/// status for `/status`, everything but the status on the main resource of a status-subresource
/// kind, everything otherwise.
fn confine(route: &Route, stored: &Value, written: Value) -> Result<Value> {
    if route.status {
        with_status_of(stored.clone(), &written)
    } else if route.resource.has_status_subresource() {
        with_status_of(written, stored)
    } else {
        Ok(written)
    }
}

fn replace(store: &mut Store, route: &Route, name: &str, body: &[u8]) -> Result<Value> {
    let key = key(route, name);
    let stored = store.get(&key).cloned().ok_or_else(|| ApiError::not_found(&key.0, name))?;
    let body = parse_json(body)?;
    if let Some(body_name) = body.pointer("/metadata/name").and_then(Value::as_str)
        && body_name != name
    {
        return Err(name_mismatch(body_name, name));
    }
    let precondition = patch::resource_version(&body);
    if precondition.is_none() && route.resource.has_status_subresource() {
        // Custom resources refuse unconditional updates.
        return Err(ApiError::invalid("metadata.resourceVersion: Invalid value: 0x0: must be specified for an update"));
    }
    check_resource_version(route, name, precondition, &stored)?;
    if !route.status {
        store.learn_kind(&route.resource, &body);
    }
    let new = confine(route, &stored, body)?;
    store.update(&key, route.resource.has_status_subresource(), new)
}

fn patch(store: &mut Store, req: &Request<'_>, name: &str) -> Result<(u16, Value)> {
    let route = req.route;
    let body = PatchBody::parse(req.content_type, req.body)?;
    if matches!(body, PatchBody::Apply(_)) && req.query.get("fieldManager").is_none_or(str::is_empty) {
        return Err(ApiError::invalid("fieldManager: Required value: is required for apply patch"));
    }
    let key = key(route, name);
    let Some(stored) = store.get(&key).cloned() else {
        return match body {
            PatchBody::Apply(obj) if !route.status => create(store, route, Some(name), obj).map(|o| (201, o)),
            _ => Err(ApiError::not_found(&key.0, name)),
        };
    };
    check_resource_version(route, name, body.resource_version(), &stored)?;
    let patched = match &body {
        PatchBody::Apply(applied) if route.status => patch::apply_status(&stored, applied)?,
        PatchBody::Apply(applied) => patch::apply_main(&stored, applied)?,
        PatchBody::Merge(_) | PatchBody::Json(_) => {
            let mut doc = stored.clone();
            patch::patch_in_place(&mut doc, &body)?;
            check_resource_version(route, name, patch::resource_version(&doc), &stored)?;
            doc
        }
    };
    let new = confine(route, &stored, patched)?;
    store.update(&key, route.resource.has_status_subresource(), new).map(|o| (200, o))
}

fn delete(store: &mut Store, route: &Route, name: &str, body: &[u8]) -> Result<Value> {
    let key = key(route, name);
    let stored = store.get(&key).cloned().ok_or_else(|| ApiError::not_found(&key.0, name))?;
    let options = if body.iter().all(u8::is_ascii_whitespace) { Value::Null } else { parse_json(body)? };
    if options.get("dryRun").and_then(Value::as_array).is_some_and(|d| !d.is_empty()) {
        return Err(ApiError::bad_request("dryRun is not supported by the in-memory apiserver"));
    }
    let pre = |f: &str| options.pointer(&format!("/preconditions/{f}")).and_then(Value::as_str);
    if let Some(uid) = pre("uid")
        && Some(uid) != store::uid(&stored)
    {
        return Err(ApiError::conflict(&key.0, name));
    }
    check_resource_version(route, name, pre("resourceVersion"), &stored)?;
    Ok(match store.delete(&key)? {
        Deleted::Pending(obj) => obj,
        Deleted::Removed(obj) => {
            error::success(&route.resource.group, &route.resource.plural, name, store::uid(&obj).unwrap_or_default())
        }
    })
}

fn delete_collection(store: &mut Store, route: &Route, query: &Query) -> Result<Value> {
    let selector = Selector::parse(query.get("labelSelector"), query.get("fieldSelector"))?;
    let resource = route.resource.qualified();
    let keys: Vec<Key> = store
        .list(&resource, route.namespace.as_deref())
        .filter(|(_, o)| selector.matches(o))
        .map(|(k, _)| k.clone())
        .collect();
    let mut items = Vec::new();
    for key in keys {
        match store.delete(&key) {
            Ok(Deleted::Pending(obj) | Deleted::Removed(obj)) => items.push(obj),
            // Collected with an owner deleted earlier in this loop.
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(list_body(store, route, items))
}
