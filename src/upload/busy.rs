//! One writer per upload, with take-over: a new PATCH for an upload whose previous request is
//! still held (its connection died on a cut link and nothing said so) does not wait for it or
//! get refused — it tells the old writer to stop, waits for it to let go (the bytes it wrote
//! are kept and flushed), and takes its place. Callers have checked that the upload is the
//! caller's own, so only its owner can take it over.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::OwnedMutexGuard;
use tokio_util::sync::CancellationToken;

struct Slot {
    lock: Arc<tokio::sync::Mutex<()>>,
    /// Cancelled to ask the current writer to stop.
    current: CancellationToken,
}

/// Uploads being written right now.
#[derive(Default)]
pub struct Busy(Arc<Mutex<HashMap<String, Slot>>>);

/// Held while writing an upload; `stop` fires when another request takes the upload over.
pub struct Writer {
    pub stop: CancellationToken,
    map: Arc<Mutex<HashMap<String, Slot>>>,
    id: String,
    _held: OwnedMutexGuard<()>,
}

impl Drop for Writer {
    fn drop(&mut self) {
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        // Forget the slot when nobody else holds or waits for it (the map's own reference
        // and ours are the only ones).
        if let Some(slot) = m.get(&self.id)
            && Arc::strong_count(&slot.lock) <= 2
            && slot.current == self.stop
        {
            m.remove(&self.id);
        }
    }
}

impl Busy {
    /// Becomes the writer of `id`, stopping the writer before (if any) and waiting at most
    /// `patience` for it to let go. `None` if it did not.
    pub async fn take_over(&self, id: &str, patience: Duration) -> Option<Writer> {
        let stop = CancellationToken::new();
        let lock = {
            let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
            let slot = m.entry(id.to_string()).or_insert_with(|| Slot {
                lock: Arc::new(tokio::sync::Mutex::new(())),
                current: CancellationToken::new(),
            });
            slot.current.cancel();
            slot.current = stop.clone();
            slot.lock.clone()
        };
        let held = tokio::time::timeout(patience, lock.lock_owned()).await.ok()?;
        if stop.is_cancelled() {
            // Taken over in turn while waiting.
            return None;
        }
        Some(Writer { stop, map: self.0.clone(), id: id.to_string(), _held: held })
    }

    /// Whether a request is writing `id` now.
    pub fn is_busy(&self, id: &str) -> bool {
        let m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        m.get(id).is_some_and(|s| s.lock.try_lock().is_err())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_new_writer_stops_the_old_one_and_takes_its_place() {
        let busy = Busy::default();
        let first = busy.take_over("up_1", Duration::from_secs(1)).await.expect("free");
        assert!(busy.is_busy("up_1"));
        let stop = first.stop.clone();
        // The first writer notices it was asked to stop and lets go.
        let old = tokio::spawn(async move {
            stop.cancelled().await;
            drop(first);
        });
        let second = busy.take_over("up_1", Duration::from_secs(1)).await.expect("taken over");
        old.await.unwrap();
        assert!(!second.stop.is_cancelled());
        // Another upload is independent.
        assert!(busy.take_over("up_2", Duration::from_millis(10)).await.is_some());
        drop(second);
        assert!(!busy.is_busy("up_1"));
        assert!(busy.0.lock().unwrap().is_empty(), "slots are forgotten when let go");
    }

    #[tokio::test]
    async fn a_writer_that_never_lets_go_is_waited_for_only_so_long() {
        let busy = Busy::default();
        let _stuck = busy.take_over("up_1", Duration::from_secs(1)).await.unwrap();
        assert!(busy.take_over("up_1", Duration::from_millis(50)).await.is_none());
    }
}
