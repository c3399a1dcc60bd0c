//! The resourceVersion each object's last status write produced, so a pass that would start from a
//! cached copy older than this process's own last write is skipped instead of run.
//!
//! Why: a watch event that arrived while a pass was running (e.g. the finalizer it added) queues the
//! next pass, and that pass can start before the watch has delivered the status the first one
//! wrote. It would then read every AWS resource again and have its write refused as stale: at
//! 1,000 new objects, a wasted full pass each. The status write's own watch event brings the next
//! pass, so skipping loses nothing; a short requeue covers a watch that never delivers it.
//!
//! resourceVersions are opaque to clients in general; every etcd-backed API server hands out
//! increasing integers. A version that does not parse as one never skips. A remembered write older
//! than [`WINDOW`] is ignored, so a restored etcd (versions going backwards) cannot hold an object.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::runtime::clock::Instant;

/// How long after a write a lagging cache is waited for.
pub const WINDOW: Duration = Duration::from_secs(10);

/// When a skipped pass runs again if no watch event comes first.
pub const RETRY: Duration = Duration::from_secs(1);

/// Above this many remembered writes, expired ones are dropped on the next record.
const PRUNE_ABOVE: usize = 1024;

/// Per object (by `ObjectRef` string): the version its last status write produced, and when.
#[derive(Debug, Default)]
pub struct WrittenVersions {
    entries: Mutex<HashMap<String, (u64, Instant)>>,
}

impl WrittenVersions {
    /// Remember that a status write of `key` produced `version`.
    pub fn record(&self, key: &str, version: Option<&str>) {
        let Some(version) = version.and_then(|v| v.parse::<u64>().ok()) else { return };
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() > PRUNE_ABOVE {
            entries.retain(|_, (_, at)| at.elapsed() < WINDOW);
        }
        entries.insert(key.to_string(), (version, Instant::now()));
    }

    /// Whether a pass of `key` that read `version` would plan from a copy older than this process's
    /// last write of it. Forgets the write once the cache has caught up or the window has passed.
    pub fn is_behind(&self, key: &str, version: Option<&str>) -> bool {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let Some(&(written, at)) = entries.get(key) else { return false };
        let behind = at.elapsed() < WINDOW && version.and_then(|v| v.parse::<u64>().ok()).is_some_and(|v| v < written);
        if !behind {
            entries.remove(key);
        }
        behind
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_older_cached_copy_is_behind_until_the_cache_catches_up() {
        let w = WrittenVersions::default();
        assert!(!w.is_behind("a", Some("5")), "nothing written yet");
        w.record("a", Some("10"));
        assert!(w.is_behind("a", Some("9")));
        assert!(!w.is_behind("b", Some("9")), "per object");
        assert!(!w.is_behind("a", Some("10")), "the written version itself is current");
        assert!(!w.is_behind("a", Some("9")), "forgotten once caught up");
    }

    #[test]
    fn versions_that_are_not_integers_never_hold_a_pass() {
        let w = WrittenVersions::default();
        w.record("a", Some("10"));
        assert!(!w.is_behind("a", Some("abc")));
        w.record("a", Some("xyz"));
        assert!(!w.is_behind("a", Some("1")), "an unparsable write is not remembered");
        w.record("a", None);
        assert!(!w.is_behind("a", None));
    }
}
