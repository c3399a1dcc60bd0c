//! Tokens of a slow action group held for one object (its *holder* key): a pass that would wait
//! long for a CreateHealthCheck token (0.5/s per account) reserves it, ends, and comes back when
//! it is due, instead of holding one of the controller's few pass slots the whole time (at 1,000
//! new DnsFailovers every slot waited on that quota, and passes that only apply a health reading
//! waited behind them for half an hour).
//!
//! A reservation is the bucket's own (the balance goes negative, see [`TokenBucket::reserve`]),
//! so no one else is given the same turn. A deleted object's turns are forgotten at once
//! ([`Held::forget`]); those of a holder that never comes back for them (its spec no longer
//! creates anything) [`STALE`] after they were due. Either way they are lost to everyone: the
//! bucket already counted them.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::{Scope, TokenBucket};

/// How long past its due time an unspent token is kept for its holder: long enough for a pass
/// that comes back at its turn to wait for a pass slot and its reads first.
pub const STALE: Duration = Duration::from_secs(600);

type Key = (String, Scope, &'static str);

/// The tokens each holder holds, per scope and action group, as the instants they may be spent.
#[derive(Debug, Default)]
pub struct Held {
    book: Mutex<HashMap<Key, Vec<Instant>>>,
}

impl Held {
    fn book(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Vec<Instant>>> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Make `holder` hold `count` tokens of `bucket` (the group `group` in `scope`), reserving
    /// those it does not hold yet; returns how long until the last of them may be spent.
    pub async fn hold(
        &self,
        holder: &str,
        scope: &Scope,
        group: &'static str,
        bucket: &TokenBucket,
        count: usize,
    ) -> Duration {
        let key: Key = (holder.to_string(), scope.clone(), group);
        let now = Instant::now();
        let missing = {
            let mut book = self.book();
            book.retain(|_, dues| dues.iter().any(|due| now.saturating_duration_since(*due) < STALE));
            count.saturating_sub(book.get(&key).map_or(0, Vec::len))
        };
        // Reserved outside the book's lock (the bucket's is async). One holder is one object,
        // whose passes never run at once, so no one else adds to this entry meanwhile.
        let mut reserved = Vec::with_capacity(missing);
        for _ in 0..missing {
            reserved.push(now + bucket.reserve().await);
        }
        let mut book = self.book();
        let dues = book.entry(key).or_default();
        dues.extend(reserved);
        dues.sort();
        let last = dues.get(count.saturating_sub(1)).copied().unwrap_or(now);
        last.saturating_duration_since(Instant::now())
    }

    /// Forget every token `holder` holds (the object is gone).
    pub fn forget(&self, holder: &str) {
        self.book().retain(|(h, _, _), _| h != holder);
    }

    /// Spend the earliest token `holder` holds of `group` in `scope`: how long until it may be
    /// spent, or `None` when it holds none.
    pub fn spend(&self, holder: &str, scope: &Scope, group: &'static str) -> Option<Duration> {
        let key: Key = (holder.to_string(), scope.clone(), group);
        let mut book = self.book();
        let dues = book.get_mut(&key)?;
        let due = (!dues.is_empty()).then(|| dues.remove(0))?;
        if dues.is_empty() {
            book.remove(&key);
        }
        Some(due.saturating_duration_since(Instant::now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_holder_keeps_its_turn_and_spends_it_when_it_comes_back() {
        let (held, bucket, scope) = (Held::default(), TokenBucket::new(0.5, 1.0), Scope::default());
        assert_eq!(held.hold("a", &scope, "g", &bucket, 1).await, Duration::ZERO, "the burst");
        assert_eq!(held.hold("b", &scope, "g", &bucket, 2).await, Duration::from_secs(4));
        // b comes back early: it still holds two, due when they were; nothing new is reserved.
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(held.hold("b", &scope, "g", &bucket, 2).await, Duration::from_secs(3));
        assert_eq!(bucket.reserve().await, Duration::from_secs(5), "the next turn is after b's");
        assert_eq!(held.spend("a", &scope, "g"), Some(Duration::ZERO));
        assert_eq!(held.spend("a", &scope, "g"), None);
        assert_eq!(held.spend("b", &scope, "g"), Some(Duration::from_secs(1)));
        assert_eq!(held.spend("b", &scope, "g"), Some(Duration::from_secs(3)));
        assert_eq!(held.spend("b", &scope, "other"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn tokens_never_spent_are_forgotten_once_stale() {
        let (held, bucket, scope) = (Held::default(), TokenBucket::new(1.0, 1.0), Scope::default());
        held.hold("gone", &scope, "g", &bucket, 3).await;
        tokio::time::sleep(STALE + Duration::from_secs(3)).await;
        held.hold("other", &scope, "g", &bucket, 0).await;
        assert_eq!(held.spend("gone", &scope, "g"), None);
        held.hold("deleted", &scope, "g", &bucket, 2).await;
        held.forget("deleted");
        assert_eq!(held.spend("deleted", &scope, "g"), None);
    }
}
