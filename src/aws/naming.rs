//! Deterministic AWS names, owner tags and idempotency tokens.
//!
//! Names derive from namespace/name only, so a crash between a create and the status write finds
//! the same resource again (adopt) instead of creating a second one.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

/// Tag: the `--cluster-id` of the operator that owns the resource.
pub const TAG_CLUSTER: &str = "fargate.operator.dev/cluster";
/// Tag: `<namespace>/<kind>/<name>` of the owning object.
pub const TAG_OWNER: &str = "fargate.operator.dev/owner";
/// Tag: `metadata.uid` of the owning object.
pub const TAG_UID: &str = "fargate.operator.dev/uid";

/// Identity of the Kubernetes object that owns AWS resources.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    /// `--cluster-id`.
    pub cluster_id: String,
    /// Object namespace.
    pub namespace: String,
    /// Object kind, e.g. `FargateApp`.
    pub kind: String,
    /// Object name.
    pub name: String,
    /// Object UID.
    pub uid: String,
}

impl Owner {
    /// `<namespace>/<kind>/<name>`.
    pub fn owner_value(&self) -> String {
        format!("{}/{}/{}", self.namespace, self.kind, self.name)
    }

    /// The owner tags, merged over `extra` (owner tags win).
    pub fn tags(&self, extra: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        let mut tags = extra.clone();
        tags.insert(TAG_CLUSTER.into(), self.cluster_id.clone());
        tags.insert(TAG_OWNER.into(), self.owner_value());
        tags.insert(TAG_UID.into(), self.uid.clone());
        tags
    }

    /// True when `tags` mark the resource as this object's (same cluster, owner and uid).
    pub fn owns<'a>(&self, tags: impl IntoIterator<Item = (&'a str, &'a str)>) -> bool {
        let (mut cluster, mut owner, mut uid) = (false, false, false);
        for (k, v) in tags {
            match k {
                TAG_CLUSTER => cluster = v == self.cluster_id,
                TAG_OWNER => owner = v == self.owner_value(),
                TAG_UID => uid = v == self.uid,
                _ => {}
            }
        }
        cluster && owner && uid
    }
}

/// Hex SHA-256 of `input`.
pub fn sha256_hex(input: &[u8]) -> String {
    let digest = Sha256::digest(input);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A name of at most `max_len` characters from `[A-Za-z0-9-]` for `namespace/name`: a readable
/// prefix plus a hash of the full identity, so distinct objects never collide after truncation.
pub fn aws_name(prefix: &str, namespace: &str, name: &str, max_len: usize) -> String {
    let hash = &sha256_hex(format!("{prefix}/{namespace}/{name}").as_bytes())[..8];
    let readable: String = format!("{prefix}-{namespace}-{name}")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' })
        .collect();
    let room = max_len.saturating_sub(hash.len() + 1);
    let mut head: String = readable.chars().take(room).collect();
    while head.ends_with('-') {
        head.pop();
    }
    if head.is_empty() { hash.to_string() } else { format!("{head}-{hash}") }
}

/// An idempotency token of at most `max_len` characters from the object's uid and a content hash:
/// the same request retried gets the same token, a different request a new one.
pub fn idempotency_token(uid: &str, content_hash: &str, max_len: usize) -> String {
    let full = sha256_hex(format!("{uid}/{content_hash}").as_bytes());
    full.chars().take(max_len.min(full.len())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner() -> Owner {
        Owner {
            cluster_id: "prod".into(),
            namespace: "web".into(),
            kind: "FargateApp".into(),
            name: "shop".into(),
            uid: "u-1".into(),
        }
    }

    #[test]
    fn names_are_deterministic_bounded_and_distinct() {
        let a = aws_name("fa", "team-a", "a-very-long-application-name-that-overflows", 32);
        assert_eq!(a, aws_name("fa", "team-a", "a-very-long-application-name-that-overflows", 32));
        assert!(a.len() <= 32, "{a}");
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        assert!(!a.starts_with('-') && !a.ends_with('-'));
        let b = aws_name("fa", "team-a", "a-very-long-application-name-that-overflows-2", 32);
        assert_ne!(a, b, "truncation must not make two objects share a name");
        assert_eq!(aws_name("fa", "a.b", "c", 255), format!("fa-a-b-c-{}", &sha256_hex(b"fa/a.b/c")[..8]));
    }

    #[test]
    fn owner_tags_win_and_ownership_needs_all_three() {
        let o = owner();
        let extra = BTreeMap::from([(TAG_OWNER.to_string(), "spoof".to_string()), ("team".into(), "web".into())]);
        let tags = o.tags(&extra);
        assert_eq!(tags[TAG_OWNER], "web/FargateApp/shop");
        assert_eq!(tags["team"], "web");
        assert!(o.owns(tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))));
        let mut other = tags.clone();
        other.insert(TAG_UID.into(), "u-2".into());
        assert!(!o.owns(other.iter().map(|(k, v)| (k.as_str(), v.as_str()))), "a re-created object is not the owner");
    }

    #[test]
    fn tokens_follow_content() {
        let t1 = idempotency_token("u-1", "h1", 36);
        assert_eq!(t1.len(), 36);
        assert_eq!(t1, idempotency_token("u-1", "h1", 36));
        assert_ne!(t1, idempotency_token("u-1", "h2", 36));
    }
}
