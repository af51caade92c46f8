//! Batching without a timer, for every queue whose items are cheaper to handle together (writes into one
//! Raft entry, renews and writes forwarded to the leader in one request, read-index requests sharing one
//! round trip).
//!
//! The loop takes a free slot (at most `in_flight` batches run at once), then takes *everything* queued
//! by then (up to `max_batch`) and hands it to the handler on its own task. So:
//! - under light load an item is handled at once, alone: no batching window adds latency;
//! - under load, items queue while every slot is busy and the next batch takes them all: batches grow
//!   with the load, and `in_flight` batches overlap (one is being made durable or crossing the network
//!   while the next one forms);
//! - every item that entered the queue before a batch was taken is in that batch or an earlier one
//!   (read-index batching relies on this: its round trip starts after each of its items arrived).
//!
//! Items still queued when `shutdown` is cancelled are dropped, which drops their reply channels: their
//! callers see "unavailable". Batches already handed out run on tasks this loop tracks: [`run`] returns only
//! once they have finished (each handler is bounded), so the node's task table, which tracks `run`, covers
//! them too.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How many batches at most, and how large.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Most items in one batch.
    pub max_batch: usize,
    /// Most batches being handled at once.
    pub in_flight: usize,
}

/// Run the batching loop until `shutdown` is cancelled or every sender is dropped.
pub async fn run<T, H, F>(mut rx: mpsc::Receiver<T>, shape: Shape, shutdown: CancellationToken, mut handle: H)
where
    T: Send + 'static,
    H: FnMut(Vec<T>) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(shape.in_flight.max(1)));
    let max_batch = shape.max_batch.max(1);
    let batches = TaskTracker::new();
    loop {
        let slot = tokio::select! {
            _ = shutdown.cancelled() => break,
            slot = Arc::clone(&slots).acquire_owned() => match slot { Ok(slot) => slot, Err(_) => break },
        };
        let first = tokio::select! {
            _ = shutdown.cancelled() => break,
            next = rx.recv() => match next { Some(item) => item, None => break },
        };
        let mut batch = Vec::with_capacity(rx.len().min(max_batch - 1) + 1);
        batch.push(first);
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        let work = handle(batch);
        batches.spawn(async move {
            work.await;
            drop(slot);
        });
    }
    batches.close();
    batches.wait().await;
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use tokio::sync::oneshot;

    use super::*;

    #[tokio::test]
    async fn a_lone_item_goes_out_alone_and_items_queued_behind_a_busy_slot_share_batches() {
        let (tx, rx) = mpsc::channel::<(u32, oneshot::Sender<usize>)>(64);
        let shutdown = CancellationToken::new();
        let (started_tx, mut started_rx) = mpsc::unbounded_channel::<()>();
        let (release_tx, release_rx) = tokio::sync::watch::channel(false);
        let shape = Shape { max_batch: 10, in_flight: 1 };
        let task = tokio::spawn(run(rx, shape, shutdown.clone(), move |batch: Vec<(u32, oneshot::Sender<usize>)>| {
            let (started, mut release) = (started_tx.clone(), release_rx.clone());
            async move {
                // The first batch is held until released, so that the next items queue behind it.
                if batch[0].0 == 0 {
                    let _ = started.send(());
                    let _ = release.wait_for(|r| *r).await;
                }
                let size = batch.len();
                for (_, reply) in batch {
                    let _ = reply.send(size);
                }
            }
        }));

        let (first_tx, first_rx) = oneshot::channel();
        tx.send((0, first_tx)).await.expect("test setup");
        started_rx.recv().await.expect("test setup");
        let mut later = Vec::new();
        for n in 1..=25 {
            let (reply, rx) = oneshot::channel();
            tx.send((n, reply)).await.expect("test setup");
            later.push(rx);
        }
        release_tx.send(true).expect("test setup");
        assert_eq!(first_rx.await.expect("test setup"), 1, "an item arriving at an idle loop is not held back");
        let mut sizes = Vec::new();
        for rx in later {
            sizes.push(rx.await.expect("test setup"));
        }
        let expected: Vec<usize> = [vec![10; 10], vec![10; 10], vec![5; 5]].concat();
        assert_eq!(sizes, expected, "25 queued items go out as 10 + 10 + 5, in order");
        shutdown.cancel();
        task.await.expect("test setup");
    }

    #[tokio::test]
    async fn never_more_batches_in_flight_than_slots() {
        let (tx, rx) = mpsc::channel::<oneshot::Sender<()>>(256);
        let shutdown = CancellationToken::new();
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let (r, m) = (Arc::clone(&running), Arc::clone(&most));
        let shape = Shape { max_batch: 2, in_flight: 3 };
        let task = tokio::spawn(run(rx, shape, shutdown.clone(), move |batch: Vec<oneshot::Sender<()>>| {
            let (running, most) = (Arc::clone(&r), Arc::clone(&m));
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
                running.fetch_sub(1, Ordering::SeqCst);
                for reply in batch {
                    let _ = reply.send(());
                }
            }
        }));
        let mut waits = Vec::new();
        for _ in 0..40 {
            let (reply, rx) = oneshot::channel();
            tx.send(reply).await.expect("test setup");
            waits.push(rx);
        }
        for rx in waits {
            rx.await.expect("test setup");
        }
        let most = most.load(Ordering::SeqCst);
        assert!(most <= 3, "at most 3 batches at once, saw {most}");
        assert!(most >= 2, "batches overlap when slots allow it, saw {most}");
        shutdown.cancel();
        task.await.expect("test setup");
    }

    #[tokio::test]
    async fn run_returns_only_after_the_batches_it_handed_out() {
        let (tx, rx) = mpsc::channel::<u32>(8);
        let shutdown = CancellationToken::new();
        let finished = Arc::new(AtomicUsize::new(0));
        let (started_tx, started) = oneshot::channel::<()>();
        let started_tx = std::sync::Mutex::new(Some(started_tx));
        let done = Arc::clone(&finished);
        let task = tokio::spawn(run(rx, Shape { max_batch: 4, in_flight: 1 }, shutdown.clone(), move |_batch| {
            if let Some(tx) = started_tx.lock().expect("test lock").take() {
                let _ = tx.send(());
            }
            let done = Arc::clone(&done);
            async move {
                tokio::time::sleep(Duration::from_millis(200)).await;
                done.fetch_add(1, Ordering::SeqCst);
            }
        }));
        tx.send(1).await.expect("test setup");
        started.await.expect("a batch started");
        shutdown.cancel();
        task.await.expect("test setup");
        assert_eq!(finished.load(Ordering::SeqCst), 1, "the batch in flight finished before run returned");
    }

    #[tokio::test]
    async fn queued_items_are_dropped_at_shutdown() {
        let (tx, rx) = mpsc::channel::<oneshot::Sender<()>>(8);
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        let (reply, waiting) = oneshot::channel();
        tx.send(reply).await.expect("test setup");
        run(rx, Shape { max_batch: 4, in_flight: 1 }, shutdown, |_batch: Vec<oneshot::Sender<()>>| async {}).await;
        assert!(waiting.await.is_err(), "the caller learns its item was dropped");
    }
}
