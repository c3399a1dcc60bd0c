//! Reads of many passes sent as one: the first pass to ask for a key waits for its turn in the
//! service's queue (at least a moment) while others join, then takes every queued question and
//! sends them together, with that turn; each asker gets its own answer. While the queue is long
//! (a restart: every object's first pass at once) a batch gathers everyone who asked meanwhile;
//! a fixed moment made batches of one or two. Used for DescribeServices (10 services per call), DescribeRules (one walk per
//! listener) and DescribeTargetGroups (20 names per call).
//!
//! A read is always sent after every asker of its batch joined, so an answer is never older than
//! the question: a pass that read a change counter and then asked sees every change made before.
//! An asker whose sender went away (the first asker's pass was cancelled) gets `None` and reads
//! alone.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::oneshot;

/// How long the first read of a batch waits for others: short against a pass (tens of ms of
/// AWS calls), long enough for passes started by one watch event or timer to join.
pub const LINGER: Duration = Duration::from_millis(10);

/// A queued question and where its answer goes.
type Waiter<Q, A> = (Q, oneshot::Sender<A>);

/// Questions queued per key (a cluster, a listener, a configuration).
#[derive(Debug)]
pub struct Coalesced<Q, A> {
    queued: Mutex<HashMap<String, Vec<Waiter<Q, A>>>>,
}

impl<Q, A> Default for Coalesced<Q, A> {
    fn default() -> Self {
        Self { queued: Mutex::new(HashMap::new()) }
    }
}

/// Takes a key's queue when dropped: dropping its senders sends its askers to read alone.
struct TakeOnDrop<'a, Q, A> {
    coalesced: &'a Coalesced<Q, A>,
    key: &'a str,
}

impl<Q, A> TakeOnDrop<'_, Q, A> {
    fn take(&self) -> Vec<Waiter<Q, A>> {
        self.coalesced.queued.lock().unwrap_or_else(|p| p.into_inner()).remove(self.key).unwrap_or_default()
    }

    /// Take the queue and stand down: a queue formed from now on is the next batch's, which this
    /// guard must not take when it goes out of scope.
    fn take_and_disarm(self) -> Vec<Waiter<Q, A>> {
        let taken = self.take();
        std::mem::forget(self);
        taken
    }
}

impl<Q, A> Drop for TakeOnDrop<'_, Q, A> {
    fn drop(&mut self) {
        drop(self.take());
    }
}

impl<Q, A> Coalesced<Q, A> {
    /// Ask `question` under `key`. The first asker of a batch awaits `turn` (and [`LINGER`]),
    /// then runs `send` with what `turn` gave and every question queued by then (in the order
    /// asked); `send` answers each, in the same order. Other askers never poll their `turn`.
    /// `None`: the asker that took this question away was cancelled before answering; read alone.
    pub async fn ask<T, W, F, Fut>(&self, key: &str, question: Q, turn: W, send: F) -> Option<A>
    where
        W: Future<Output = T>,
        F: FnOnce(T, Vec<Q>) -> Fut,
        Fut: Future<Output = Vec<A>>,
    {
        let (tx, rx) = oneshot::channel();
        let first = {
            let mut queued = self.queued.lock().unwrap_or_else(|p| p.into_inner());
            let queue = queued.entry(key.to_string()).or_default();
            queue.push((question, tx));
            queue.len() == 1
        };
        if first {
            // Cancelled while lingering, the first asker must not leave the queue behind: later
            // askers would join it and wait for a send that never comes.
            let guard = TakeOnDrop { coalesced: self, key };
            let (turn, ()) = futures::join!(turn, tokio::time::sleep(LINGER));
            let (questions, senders): (Vec<Q>, Vec<oneshot::Sender<A>>) = guard.take_and_disarm().into_iter().unzip();
            // Cancelled from here on, the senders are dropped with this future: the askers read alone.
            let answers = send(turn, questions).await;
            for (tx, answer) in senders.into_iter().zip(answers) {
                // An asker that is gone (its pass cancelled) needs no answer.
                let _ = tx.send(answer);
            }
        }
        rx.await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(start_paused = true)]
    async fn askers_of_one_key_share_one_send_and_other_keys_send_apart() {
        let c: Coalesced<u32, u32> = Coalesced::default();
        let sends = AtomicUsize::new(0);
        let send = |(), qs: Vec<u32>| {
            sends.fetch_add(1, Ordering::SeqCst);
            async move { qs.iter().map(|q| q * 10).collect() }
        };
        let asks = [("a", 1), ("a", 2), ("b", 3), ("a", 4)];
        let answers = futures::future::join_all(asks.iter().map(|(k, q)| c.ask(k, *q, async {}, send))).await;
        assert_eq!(answers, vec![Some(10), Some(20), Some(30), Some(40)]);
        assert_eq!(sends.load(Ordering::SeqCst), 2);
    }

    /// While the first asker waits for its turn in a long queue, later askers join its batch.
    #[tokio::test(start_paused = true)]
    async fn askers_during_the_first_askers_wait_for_its_turn_join_its_batch() {
        let c: Coalesced<u32, u32> = Coalesced::default();
        let sends = AtomicUsize::new(0);
        let send = |(), qs: Vec<u32>| {
            sends.fetch_add(1, Ordering::SeqCst);
            async move { qs }
        };
        let turn = tokio::time::sleep(Duration::from_secs(2));
        let late = |q: u32, after_ms: u64| {
            let send = &send;
            let c = &c;
            async move {
                tokio::time::sleep(Duration::from_millis(after_ms)).await;
                c.ask("k", q, async {}, send).await
            }
        };
        let (a, b, d) = futures::join!(c.ask("k", 1, turn, send), late(2, 500), late(3, 1_900));
        assert_eq!((a, b, d), (Some(1), Some(2), Some(3)));
        assert_eq!(sends.load(Ordering::SeqCst), 1, "one read for the three, sent at the turn");
    }

    #[tokio::test(start_paused = true)]
    async fn an_asker_after_the_send_starts_a_new_batch() {
        let c: Coalesced<(), usize> = Coalesced::default();
        let sends = AtomicUsize::new(0);
        let send = |(), qs: Vec<()>| {
            let n = sends.fetch_add(1, Ordering::SeqCst);
            async move { vec![n; qs.len()] }
        };
        assert_eq!(c.ask("k", (), async {}, send).await, Some(0));
        assert_eq!(c.ask("k", (), async {}, send).await, Some(1));
    }

    /// A batch forming while the previous one is being sent is answered as a batch: the previous
    /// first asker must not take its queue away when it finishes.
    #[tokio::test(start_paused = true)]
    async fn a_batch_forming_during_a_send_is_not_broken_up_when_that_send_ends() {
        let c: Coalesced<u32, u32> = Coalesced::default();
        let sends = AtomicUsize::new(0);
        let send = |(), qs: Vec<u32>| {
            sends.fetch_add(1, Ordering::SeqCst);
            async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                qs
            }
        };
        let first = c.ask("k", 1, async {}, send);
        let later = async {
            // Joins after the first batch was taken (10 ms) and lingers past its send's end (30 ms).
            tokio::time::sleep(Duration::from_millis(25)).await;
            let (a, b) = futures::join!(c.ask("k", 2, async {}, send), async {
                tokio::time::sleep(Duration::from_millis(1)).await;
                c.ask("k", 3, async {}, send).await
            });
            (a, b)
        };
        let (one, (two, three)) = futures::join!(first, later);
        assert_eq!((one, two, three), (Some(1), Some(2), Some(3)), "None: sent away to read alone");
        assert_eq!(sends.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_first_asker_cancelled_while_lingering_leaves_the_others_to_read_alone() {
        let c: Coalesced<(), ()> = Coalesced::default();
        let send = |(), qs: Vec<()>| async move { qs };
        let mut first = Box::pin(c.ask("k", (), async {}, send));
        assert!(futures::poll!(first.as_mut()).is_pending(), "lingering");
        let mut second = Box::pin(c.ask("k", (), async {}, send));
        assert!(futures::poll!(second.as_mut()).is_pending(), "queued behind the first");
        drop(first);
        assert_eq!(second.await, None, "the second is told to read alone, not stranded");
        assert_eq!(c.ask("k", (), async {}, send).await, Some(()), "the queue was not left behind");
    }
}
