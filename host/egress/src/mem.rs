//! Giving freed heap memory back to the system once the proxy goes quiet.
//!
//! A burst of connections leaves the allocator holding the pages their
//! buffers used; with glibc's per-thread arenas that is several MiB that stay
//! resident for as long as the sidecar lives. Trimming after the burst ends
//! returns them; it costs well under a millisecond and never runs while
//! connections keep closing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

/// How long no connection may have closed before memory is trimmed.
const QUIET: Duration = Duration::from_millis(500);

/// Counts closed connections and wakes the trimmer.
#[derive(Debug, Default)]
pub(crate) struct Churn {
    closed: AtomicU64,
    wake: Notify,
}

impl Churn {
    /// Records that a client connection closed.
    pub(crate) fn closed(&self) {
        self.closed.fetch_add(1, Ordering::Relaxed);
        self.wake.notify_one();
    }

    /// Runs forever: after connections close, waits until none has closed
    /// for [`QUIET`], then releases free heap memory.
    pub(crate) async fn trim_when_quiet(self: Arc<Self>) {
        loop {
            self.wake.notified().await;
            loop {
                let seen = self.closed.load(Ordering::Relaxed);
                tokio::time::sleep(QUIET).await;
                if self.closed.load(Ordering::Relaxed) == seen {
                    break;
                }
            }
            release_free_memory();
        }
    }
}

/// Returns free heap pages to the system (glibc); elsewhere a no-op.
pub(crate) fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it has
    // no preconditions and is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}
