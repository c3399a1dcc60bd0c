//! The stored objects and what every write does to them: one global integer resourceVersion, the
//! event log watches read, generation, finalizers and garbage collection.
//!
//! Objects are JSON values keyed by (resource `plural.group`, namespace or `""`, name). Every write
//! takes the next resourceVersion and appends one event to the log (`ADDED`, `MODIFIED` or
//! `DELETED`, the object serialized once). The log keeps the last `capacity` events; a watch that
//! needs an older one gets 410 Expired.
//!
//! An update that changes nothing (ignoring resourceVersion) is not a write: no new
//! resourceVersion, no event, as in Kubernetes. An update keeps the server-owned metadata (name,
//! namespace, uid, creationTimestamp, deletionTimestamp, deletionGracePeriodSeconds, generation),
//! may not add a finalizer to an object being deleted (422), and bumps `generation` when `spec`
//! changes (for kinds with a status subresource: anything but metadata and status). An update that
//! leaves a deleting object without finalizers removes it instead (only a `DELETED` event).
//!
//! Garbage collection is synchronous, inside the write that removes an object: every object whose
//! `ownerReferences` name the removed uid and no other owner that still exists is deleted as a
//! DELETE would (so its finalizers hold it), recursively — kube's background cascading deletion,
//! without its delay.

use std::collections::{BTreeMap, HashMap, VecDeque};

use bytes::Bytes;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::{Map, Value};

use super::error::{ApiError, Result};
use super::route::ResourceId;

/// (resource `plural.group`, namespace or `""`, name).
pub(super) type Key = (String, String, String);

/// The type of a watch event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One write, as the event log keeps it.
#[derive(Debug, Clone)]
pub(super) struct LoggedEvent {
    pub rv: u64,
    pub key: Key,
    pub kind: EventType,
    /// The object after the write (the last state, with the new resourceVersion, for `DELETED`),
    /// serialized.
    pub object: Bytes,
    pub labels: Option<Map<String, Value>>,
    /// The labels before a `MODIFIED` write, so a label-selected watch sees an object enter or
    /// leave its selection.
    pub prev_labels: Option<Map<String, Value>>,
}

/// What a DELETE did.
#[derive(Debug, Clone)]
pub(super) enum Deleted {
    /// Finalizers hold the object: it now has a deletionTimestamp.
    Pending(Value),
    /// The object is gone (its last state).
    Removed(Value),
}

/// All objects and the event log.
#[derive(Debug)]
pub(super) struct Store {
    objects: BTreeMap<Key, Value>,
    uids: HashMap<String, Key>,
    /// (apiVersion, kind) of each resource, learned from the objects written.
    kinds: HashMap<String, (String, String)>,
    rv: u64,
    uid_counter: u64,
    name_counter: u64,
    log: VecDeque<LoggedEvent>,
    log_capacity: usize,
    /// The resourceVersion of the newest event dropped from the log (0: none dropped).
    dropped: u64,
    /// Whether removing an object collects what it owned (see `KubeModel::set_garbage_collection`).
    collect_garbage: bool,
}

impl Store {
    pub fn new(log_capacity: usize) -> Self {
        Self {
            objects: BTreeMap::new(),
            uids: HashMap::new(),
            kinds: HashMap::new(),
            rv: 0,
            uid_counter: 0,
            name_counter: 0,
            log: VecDeque::new(),
            log_capacity: log_capacity.max(1),
            dropped: 0,
            collect_garbage: true,
        }
    }

    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// The current (newest) resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    /// Turn garbage collection on or off for later removals.
    pub fn set_collect_garbage(&mut self, on: bool) {
        self.collect_garbage = on;
    }

    pub fn get(&self, key: &Key) -> Option<&Value> {
        self.objects.get(key)
    }

    /// The objects of `resource` in `namespace` (every namespace when `None`), by namespace and name.
    pub fn list<'a>(
        &'a self,
        resource: &'a str,
        namespace: Option<&'a str>,
    ) -> impl Iterator<Item = (&'a Key, &'a Value)> + 'a {
        let start = (resource.to_string(), namespace.unwrap_or_default().to_string(), String::new());
        self.objects
            .range(start..)
            .take_while(move |((r, ns, _), _)| r == resource && namespace.is_none_or(|n| n == ns))
    }

    /// (apiVersion, kind) of `res`'s objects: as last written, else guessed from the path.
    pub fn kind_of(&self, res: &ResourceId) -> (String, String) {
        self.kinds.get(&res.qualified()).cloned().unwrap_or_else(|| (res.api_version(), res.plural.clone()))
    }

    /// Remember `obj`'s apiVersion and kind for `res` (for lists and bookmarks).
    pub fn learn_kind(&mut self, res: &ResourceId, obj: &Value) {
        if let (Some(api_version), Some(kind)) = (obj["apiVersion"].as_str(), obj["kind"].as_str()) {
            self.kinds.insert(res.qualified(), (api_version.to_string(), kind.to_string()));
        }
    }

    /// A new unique uid, shaped like a UUID.
    pub fn next_uid(&mut self) -> String {
        self.uid_counter += 1;
        format!("00000000-0000-4000-8000-{:012x}", self.uid_counter)
    }

    /// `prefix` plus a new five-character suffix (as `generateName` does, but deterministic).
    pub fn generate_name(&mut self, prefix: &str) -> String {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        self.name_counter += 1;
        let mut n = self.name_counter;
        let mut suffix = String::new();
        for _ in 0..5 {
            suffix.push(char::from(ALPHABET[(n % ALPHABET.len() as u64) as usize]));
            n /= ALPHABET.len() as u64;
        }
        format!("{prefix}{suffix}")
    }

    /// The events after resourceVersion `after`; 410 when some of them were dropped from the log.
    pub fn events_after(&self, after: u64) -> Result<impl Iterator<Item = &LoggedEvent>> {
        if after < self.dropped {
            return Err(ApiError::expired(format!("too old resource version: {after} ({})", self.dropped + 1)));
        }
        let start = self.log.partition_point(|e| e.rv <= after);
        Ok(self.log.range(start..))
    }

    /// Store a new object (the caller has filled its metadata but not its resourceVersion).
    pub fn insert(&mut self, key: Key, mut obj: Value) -> Result<Value> {
        let rv = self.bump();
        set_meta(&mut obj, "resourceVersion", Value::String(rv.to_string()))?;
        if let Some(uid) = obj.pointer("/metadata/uid").and_then(Value::as_str) {
            self.uids.insert(uid.to_string(), key.clone());
        }
        self.log_event(rv, &key, EventType::Added, &obj, None)?;
        self.objects.insert(key, obj.clone());
        Ok(obj)
    }

    /// Replace the stored object at `key` with `new` (see the module docs for what an update keeps,
    /// refuses and does). Returns the object as written.
    pub fn update(&mut self, key: &Key, status_subresource: bool, mut new: Value) -> Result<Value> {
        let prev = self.objects.get(key).ok_or_else(|| ApiError::not_found(&key.0, &key.2))?.clone();
        if !new.get("metadata").is_some_and(Value::is_object) {
            return Err(ApiError::invalid("metadata must be an object"));
        }
        for field in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "resourceVersion",
        ] {
            match prev.pointer(&format!("/metadata/{field}")) {
                Some(v) => set_meta(&mut new, field, v.clone())?,
                None => remove_meta(&mut new, field),
            }
        }
        if is_deleting(&prev) {
            let before = finalizers(&prev);
            if let Some(added) = finalizers(&new).into_iter().find(|f| !before.contains(f)) {
                return Err(ApiError::invalid(format!(
                    "metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, \
                     found new finalizers [\"{added}\"]"
                )));
            }
        }
        if new == prev {
            return Ok(new);
        }
        if spec_part(&prev, status_subresource) != spec_part(&new, status_subresource) {
            let generation = prev.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(0) + 1;
            set_meta(&mut new, "generation", Value::from(generation))?;
        }
        let prev_labels = labels(&prev);
        if is_deleting(&new) && finalizers(&new).is_empty() {
            return self.remove(key, Some(new));
        }
        let rv = self.bump();
        set_meta(&mut new, "resourceVersion", Value::String(rv.to_string()))?;
        self.log_event(rv, key, EventType::Modified, &new, prev_labels)?;
        self.objects.insert(key.clone(), new.clone());
        Ok(new)
    }

    /// DELETE the object at `key`: with finalizers it gets a deletionTimestamp (once) and stays;
    /// otherwise it is removed, and what it owned is collected.
    pub fn delete(&mut self, key: &Key) -> Result<Deleted> {
        let obj = self.objects.get(key).ok_or_else(|| ApiError::not_found(&key.0, &key.2))?.clone();
        if finalizers(&obj).is_empty() {
            return self.remove(key, None).map(Deleted::Removed);
        }
        if is_deleting(&obj) {
            return Ok(Deleted::Pending(obj));
        }
        let mut new = obj.clone();
        set_meta(&mut new, "deletionTimestamp", now()?)?;
        set_meta(&mut new, "deletionGracePeriodSeconds", Value::from(0))?;
        let rv = self.bump();
        set_meta(&mut new, "resourceVersion", Value::String(rv.to_string()))?;
        self.log_event(rv, key, EventType::Modified, &new, labels(&obj))?;
        self.objects.insert(key.clone(), new.clone());
        Ok(Deleted::Pending(new))
    }

    /// Remove the object at `key` (its last state is `last`, or the stored one), then collect the
    /// objects it owned. Returns the last state with the resourceVersion of its removal.
    fn remove(&mut self, key: &Key, last: Option<Value>) -> Result<Value> {
        let stored = self.objects.remove(key).ok_or_else(|| ApiError::not_found(&key.0, &key.2))?;
        let mut last = last.unwrap_or(stored);
        let rv = self.bump();
        set_meta(&mut last, "resourceVersion", Value::String(rv.to_string()))?;
        self.log_event(rv, key, EventType::Deleted, &last, None)?;
        let mut orphaned_uids = Vec::new();
        if let Some(uid) = uid(&last) {
            self.uids.remove(uid);
            if self.collect_garbage {
                orphaned_uids.push(uid.to_string());
            }
        }
        while let Some(owner) = orphaned_uids.pop() {
            for dependent in self.dependents_of(&owner) {
                if let Deleted::Removed(gone) = self.delete(&dependent)?
                    && let Some(uid) = uid(&gone)
                {
                    orphaned_uids.push(uid.to_string());
                }
            }
        }
        Ok(last)
    }

    /// The objects owned by `owner_uid` that have no other owner still present.
    fn dependents_of(&self, owner_uid: &str) -> Vec<Key> {
        self.objects
            .iter()
            .filter(|(_, obj)| {
                let owners: Vec<&str> = obj
                    .pointer("/metadata/ownerReferences")
                    .and_then(Value::as_array)
                    .map(|refs| refs.iter().filter_map(|r| r["uid"].as_str()).collect())
                    .unwrap_or_default();
                owners.contains(&owner_uid) && owners.iter().all(|u| *u == owner_uid || !self.uids.contains_key(*u))
            })
            .map(|(key, _)| key.clone())
            .collect()
    }

    fn bump(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    fn log_event(
        &mut self,
        rv: u64,
        key: &Key,
        kind: EventType,
        obj: &Value,
        prev_labels: Option<Map<String, Value>>,
    ) -> Result<()> {
        let object = serde_json::to_vec(obj).map_err(|e| ApiError::internal(format!("cannot serialize: {e}")))?;
        self.log.push_back(LoggedEvent {
            rv,
            key: key.clone(),
            kind,
            object: Bytes::from(object),
            labels: labels(obj),
            prev_labels,
        });
        while self.log.len() > self.log_capacity {
            if let Some(dropped) = self.log.pop_front() {
                self.dropped = dropped.rv;
            }
        }
        Ok(())
    }
}

/// The current time as a `metav1.Time` JSON value (tokio's clock under the simulator).
pub(super) fn now() -> Result<Value> {
    serde_json::to_value(Time(crate::runtime::clock::now()))
        .map_err(|e| ApiError::internal(format!("cannot format the time: {e}")))
}

/// Set `metadata.{field}` (creating `metadata` if needed).
pub(super) fn set_meta(obj: &mut Value, field: &str, value: Value) -> Result<()> {
    let map = obj.as_object_mut().ok_or_else(|| ApiError::invalid("the object is not a JSON object"))?;
    let meta = map.entry("metadata").or_insert_with(|| Value::Object(Map::new()));
    let meta = meta.as_object_mut().ok_or_else(|| ApiError::invalid("metadata must be an object"))?;
    meta.insert(field.to_string(), value);
    Ok(())
}

/// Remove `metadata.{field}` if present.
pub(super) fn remove_meta(obj: &mut Value, field: &str) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove(field);
    }
}

pub(super) fn uid(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/uid").and_then(Value::as_str)
}

fn labels(obj: &Value) -> Option<Map<String, Value>> {
    obj.pointer("/metadata/labels").and_then(Value::as_object).cloned()
}

fn finalizers(obj: &Value) -> Vec<&str> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|f| f.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn is_deleting(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp").is_some_and(|t| !t.is_null())
}

/// What `generation` tracks: `spec`, or for kinds with a status subresource everything but
/// metadata and status.
fn spec_part(obj: &Value, status_subresource: bool) -> Value {
    if !status_subresource {
        return obj.get("spec").cloned().unwrap_or(Value::Null);
    }
    let mut part = obj.as_object().cloned().unwrap_or_default();
    part.remove("metadata");
    part.remove("status");
    Value::Object(part)
}
