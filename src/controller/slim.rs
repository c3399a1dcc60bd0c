//! What the watch caches keep of each object. Every store holds the objects of its kind for the
//! whole leadership term, and most of a typical object is metadata the controllers never read:
//! `managedFields` (about three quarters of a FargateApp as the apiserver returns it) and
//! `kubectl apply`'s copy of the whole manifest in the `last-applied-configuration` annotation.
//! Both are dropped before an object enters a store. Nothing the operator writes is built from a
//! cached copy's `managedFields`: status and finalizer writes are patches, which leave the fields
//! the request does not name as they are. Every watch lists in pages ([`watch_config`]), so no
//! more than a page of whole objects is held before it is slimmed.

use k8s_openapi::api::core::v1::Namespace;
use kube::Resource;
use kube::runtime::watcher;

/// Objects per page of a watch's (re)list.
const LIST_PAGE: u32 = 100;

/// How every watch of the operator lists: in pages of [`LIST_PAGE`], each page slimmed before the
/// next is read. Not `any_semantic`: a list at resourceVersion 0 is served from the apiserver's
/// watch cache, which ignores the page size and returns every object at once, whole; on a restart
/// at 1,000 of every kind those lists, `managedFields` and all, were the largest thing in the
/// heap. Paged lists are read from etcd, once per watch start.
pub fn watch_config() -> watcher::Config {
    watcher::Config::default().page_size(LIST_PAGE)
}

/// `kubectl apply`'s record of the last manifest it applied.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Drop the metadata no controller reads.
pub fn slim<K: Resource>(obj: &mut K) {
    let meta = obj.meta_mut();
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
        if annotations.is_empty() {
            meta.annotations = None;
        }
    }
}

/// `obj` [`slim`]med: for what a write answers (the whole object, managedFields included), kept
/// by a pass or the bind ledger.
pub fn slimmed<K: Resource>(mut obj: K) -> K {
    slim(&mut obj);
    obj
}

/// A namespace as the access gate reads it: its name and labels.
pub fn slim_namespace(ns: &mut Namespace) {
    slim(ns);
    ns.metadata.annotations = None;
    ns.spec = None;
    ns.status = None;
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;

    #[test]
    fn watches_list_in_pages_from_etcd_not_whole_from_the_watch_cache() {
        let config = watch_config();
        assert_eq!(config.page_size, Some(LIST_PAGE));
        // `Any` (resourceVersion 0) would be served by the watch cache, which ignores the page size.
        assert_eq!(config.list_semantic, watcher::ListSemantic::MostRecent);
    }

    #[test]
    fn managed_fields_and_the_last_applied_manifest_are_dropped_and_the_rest_kept() {
        let mut ns = Namespace::default();
        ns.metadata.name = Some("team-a".into());
        ns.metadata.labels = Some([("team".to_string(), "a".to_string())].into());
        ns.metadata.managed_fields = Some(vec![ManagedFieldsEntry::default()]);
        ns.metadata.annotations = Some(
            [
                (LAST_APPLIED.to_string(), "{}".to_string()),
                ("fargate.operator.dev/mode".to_string(), "Auto".to_string()),
            ]
            .into(),
        );
        let mut kept = ns.clone();
        slim(&mut kept);
        assert_eq!(kept.metadata.managed_fields, None);
        assert_eq!(
            kept.metadata.annotations,
            Some([("fargate.operator.dev/mode".to_string(), "Auto".to_string())].into()),
            "annotations the operator reads stay"
        );
        assert_eq!(kept.metadata.labels, ns.metadata.labels);
        slim_namespace(&mut ns);
        assert_eq!((ns.metadata.annotations, ns.metadata.labels.is_some()), (None, true));
    }
}
