//! The PATCH kinds, as pure functions on JSON objects.
//!
//! - `application/merge-patch+json`: RFC 7386.
//! - `application/strategic-merge-patch+json`: treated as a merge patch (no list merge keys, no
//!   `$patch` directives).
//! - `application/json-patch+json`: RFC 6902 through the `json-patch` crate, except that a `test`
//!   of `null` passes on a path that does not exist, as the apiserver's JSON patch does (kube's
//!   finalizer helper tests `/metadata/finalizers` against `null` before adding the first one). A
//!   failed patch is 422 Invalid.
//! - `application/apply-patch+yaml` (server-side apply), simplified to one manager per field: on the
//!   main resource the applied `spec` replaces the stored one (what the manager no longer sends
//!   disappears; a `spec` not sent at all is kept), other top-level fields sent replace the stored
//!   ones, `metadata.labels` and `metadata.annotations` are merged in, and `metadata.finalizers` and
//!   `metadata.ownerReferences` are replaced only when sent. On `/status` the applied `status`
//!   replaces the stored one. There is no field ownership: no apply conflicts, `force` changes
//!   nothing, and one manager's apply can drop what another set in `spec`.

use json_patch::PatchOperation;
use serde_json::{Map, Value};

use super::error::{ApiError, Result};

/// A parsed PATCH body.
#[derive(Debug, Clone)]
pub(super) enum PatchBody {
    /// Merge and strategic merge patches.
    Merge(Value),
    Json(json_patch::Patch),
    Apply(Value),
}

impl PatchBody {
    /// Parse `body` by the request's Content-Type.
    pub fn parse(content_type: &str, body: &[u8]) -> Result<Self> {
        let media = content_type.split(';').next().unwrap_or_default().trim();
        let bad = |e: &dyn std::fmt::Display| ApiError::bad_request(format!("cannot decode the {media} body: {e}"));
        match media {
            "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
                serde_json::from_slice(body).map(PatchBody::Merge).map_err(|e| bad(&e))
            }
            "application/json-patch+json" => serde_json::from_slice(body).map(PatchBody::Json).map_err(|e| bad(&e)),
            // The body is YAML; kube sends JSON, which serde_json reads faster and exactly.
            "application/apply-patch+yaml" => match serde_json::from_slice(body) {
                Ok(v) => Ok(PatchBody::Apply(v)),
                Err(_) => serde_yaml::from_slice(body).map(PatchBody::Apply).map_err(|e| bad(&e)),
            },
            other => Err(ApiError::unsupported_media_type(other)),
        }
    }

    /// The `metadata.resourceVersion` a merge or apply body carries, if any (a precondition).
    pub fn resource_version(&self) -> Option<&str> {
        match self {
            PatchBody::Merge(v) | PatchBody::Apply(v) => resource_version(v),
            PatchBody::Json(_) => None,
        }
    }
}

/// `metadata.resourceVersion` of an object, if set and non-empty.
pub(super) fn resource_version(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/resourceVersion").and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// Apply a merge or JSON patch to `doc` in place (apply patches go through [`apply_main`] and
/// [`apply_status`]).
pub(super) fn patch_in_place(doc: &mut Value, patch: &PatchBody) -> Result<()> {
    match patch {
        PatchBody::Merge(p) => {
            if !p.is_object() {
                return Err(ApiError::bad_request("a merge patch must be a JSON object"));
            }
            json_patch::merge(doc, p);
            Ok(())
        }
        PatchBody::Json(p) => json(doc, p),
        PatchBody::Apply(_) => Err(ApiError::internal("an apply patch given to patch_in_place")),
    }
}

fn json(doc: &mut Value, p: &json_patch::Patch) -> Result<()> {
    // `test` with `null` of a missing path passes in the apiserver; the crate calls it an error.
    let ops: Vec<PatchOperation> =
        p.0.iter()
            .filter(|op| match op {
                PatchOperation::Test(t) => !(t.value.is_null() && doc.pointer(t.path.as_str()).is_none()),
                _ => true,
            })
            .cloned()
            .collect();
    json_patch::patch(doc, &ops).map_err(|e| ApiError::invalid(format!("the JSON patch could not be applied: {e}")))
}

/// Server-side apply of `applied` to the main resource of `stored` (see the module docs). The
/// caller keeps server-owned metadata and, for kinds with a status subresource, the status.
pub(super) fn apply_main(stored: &Value, applied: &Value) -> Result<Value> {
    let applied = applied.as_object().ok_or_else(|| ApiError::bad_request("an apply patch must be an object"))?;
    let mut out = stored.clone();
    let out_map = out.as_object_mut().ok_or_else(|| ApiError::internal("stored object is not a JSON object"))?;
    for (key, value) in applied {
        match key.as_str() {
            "metadata" => {
                let meta = out_map.entry("metadata").or_insert_with(|| Value::Object(Map::new()));
                apply_metadata(meta, value)?;
            }
            _ => {
                out_map.insert(key.clone(), value.clone());
            }
        }
    }
    Ok(out)
}

fn apply_metadata(stored: &mut Value, applied: &Value) -> Result<()> {
    let (Some(stored), Some(applied)) = (stored.as_object_mut(), applied.as_object()) else {
        return Err(ApiError::bad_request("metadata must be an object"));
    };
    for key in ["labels", "annotations"] {
        match applied.get(key) {
            Some(Value::Object(add)) => {
                let map = stored.entry(key).or_insert_with(|| Value::Object(Map::new()));
                if !map.is_object() {
                    *map = Value::Object(Map::new());
                }
                if let Some(map) = map.as_object_mut() {
                    map.extend(add.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
            }
            Some(Value::Null) | None => {}
            Some(_) => return Err(ApiError::bad_request(format!("metadata.{key} must be an object"))),
        }
    }
    for key in ["finalizers", "ownerReferences"] {
        if let Some(v) = applied.get(key) {
            stored.insert(key.into(), v.clone());
        }
    }
    Ok(())
}

/// Server-side apply of `applied` to the `/status` of `stored`: its `status`, when sent, replaces
/// the stored one; nothing else changes.
pub(super) fn apply_status(stored: &Value, applied: &Value) -> Result<Value> {
    let mut out = stored.clone();
    if let Some(status) = applied.get("status") {
        let map = out.as_object_mut().ok_or_else(|| ApiError::internal("stored object is not a JSON object"))?;
        map.insert("status".into(), status.clone());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn merge_and_json() {
        let mut doc = json!({"metadata": {"name": "a"}, "spec": {"x": 1, "y": 2}});
        let p = PatchBody::parse("application/merge-patch+json", br#"{"spec": {"x": null, "z": 3}}"#).unwrap();
        patch_in_place(&mut doc, &p).unwrap();
        assert_eq!(doc["spec"], json!({"y": 2, "z": 3}));

        let ops = br#"[{"op": "test", "path": "/metadata/finalizers", "value": null},
                       {"op": "add", "path": "/metadata/finalizers", "value": ["f"]}]"#;
        let p = PatchBody::parse("application/json-patch+json", ops).unwrap();
        patch_in_place(&mut doc, &p).unwrap();
        assert_eq!(doc["metadata"]["finalizers"], json!(["f"]));
        // The same test now fails (the path exists and is not null): 422, document unchanged.
        let before = doc.clone();
        assert_eq!(patch_in_place(&mut doc, &p).unwrap_err().code, 422);
        assert_eq!(doc, before);
        assert_eq!(PatchBody::parse("text/plain", b"{}").unwrap_err().code, 415);
    }

    #[test]
    fn apply() {
        let stored = json!({"metadata": {"name": "a", "labels": {"x": "1"}, "finalizers": ["f"]},
                            "spec": {"a": 1, "b": 2}, "status": {"s": 1}});
        let applied = json!({"metadata": {"name": "a", "labels": {"y": "2"}}, "spec": {"a": 3}});
        let out = apply_main(&stored, &applied).unwrap();
        assert_eq!(out["spec"], json!({"a": 3}));
        assert_eq!(out["metadata"]["labels"], json!({"x": "1", "y": "2"}));
        assert_eq!(out["metadata"]["finalizers"], json!(["f"]));
        let out = apply_status(&stored, &json!({"status": {"t": 2}})).unwrap();
        assert_eq!((&out["status"], &out["spec"]), (&json!({"t": 2}), &stored["spec"]));
        let yaml = PatchBody::parse("application/apply-patch+yaml", b"spec:\n  a: 1\n").unwrap();
        assert!(matches!(yaml, PatchBody::Apply(v) if v == json!({"spec": {"a": 1}})));
    }
}
