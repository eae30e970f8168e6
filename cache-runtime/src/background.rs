//! Work that outlives the caller who started it: refreshes under `swr` and
//! early refresh. It runs on the tokio runtime of the calling task, from a
//! future that owns copies of the arguments, and is single-flight with the
//! foreground (it leads an attached flight that later callers join).

use std::future::Future;
use std::pin::Pin;

/// A load that owns everything it needs, ready to be spawned.
pub type BackgroundLoad<R> = Pin<Box<dyn Future<Output = R> + Send + 'static>>;

/// Runs `work` on the current tokio runtime; `false` outside of one (the
/// value then stays stale, and the first caller past its stale window loads
/// in the foreground).
pub(crate) fn spawn(work: impl Future<Output = ()> + Send + 'static) -> bool {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn(work);
            true
        }
        Err(_) => false,
    }
}
