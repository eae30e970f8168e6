//! Isolating tests from each other's cached values.
//!
//! Cached functions keep one cache per process, which is what a service
//! wants and what tests do not: `cargo test` runs the tests of a crate as
//! threads of one process, so two `#[tokio::test]`s that each build their
//! own repository would see each other's values, loads and stats.
//!
//! [`isolate`] runs a future in a scope of its own: every cached function it
//! calls (while it is polled) uses caches made for that scope, fresh, with
//! their own stats; [`crate::stats()`], `<fn>_cache()` and
//! [`crate::invalidate_all()`] see only the scope's caches. When the future
//! is dropped, its caches are emptied.
//!
//! ```
//! # use herdcache_runtime::testing;
//! # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
//! # rt.block_on(async {
//! // #[tokio::test]
//! // async fn lists_the_users_of_an_empty_database() {
//! testing::isolate(async {
//!     // build the repo, call its cached methods, assert on stats…
//! })
//! .await;
//! // }
//! # });
//! ```
//!
//! The scope follows the future, not the thread: a task it spawns with
//! `tokio::spawn` is outside it unless wrapped in `isolate` too. Code that
//! never calls `isolate` pays one relaxed atomic load per call for this.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};

/// Whether any future was ever isolated: until then no call looks further.
/// Read on every call: alone on its cache line, so no write nearby makes
/// the cores that read it miss.
static USED: Aligned = Aligned(AtomicBool::new(false));

#[repr(align(128))]
struct Aligned(AtomicBool);
static NEXT_ISOLATION: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The scope of the isolated future being polled on this thread; 0: none.
    static CURRENT: Cell<u64> = const { Cell::new(0) };
}

/// The isolation of the calling code: 0 outside [`isolate`].
#[inline]
pub(crate) fn current_isolation() -> u64 {
    if USED.0.load(Ordering::Relaxed) {
        CURRENT.with(Cell::get)
    } else {
        0
    }
}

/// Runs `future` with caches of its own: see the [module docs](self).
pub fn isolate<F: Future>(future: F) -> Isolated<F> {
    USED.0.store(true, Ordering::Relaxed);
    Isolated {
        isolation: NEXT_ISOLATION.fetch_add(1, Ordering::Relaxed),
        future: Box::pin(future),
    }
}

/// The future [`isolate`] returns.
#[must_use = "futures do nothing unless awaited"]
pub struct Isolated<F> {
    isolation: u64,
    future: Pin<Box<F>>,
}

impl<F: Future> Future for Isolated<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // Restored by a guard, so that a panic in the future does not leave
        // the thread inside the scope.
        struct Restore(u64);
        impl Drop for Restore {
            fn drop(&mut self) {
                CURRENT.with(|current| current.set(self.0));
            }
        }
        let _restore = Restore(CURRENT.with(|current| current.replace(self.isolation)));
        self.future.as_mut().poll(cx)
    }
}

impl<F> Drop for Isolated<F> {
    fn drop(&mut self) {
        crate::registry::drop_isolation(self.isolation);
    }
}

#[cfg(feature = "redis")]
pub use redis_server::RedisServer;

#[cfg(feature = "redis")]
mod redis_server {
    use std::net::{TcpListener, TcpStream};
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    /// A `redis-server` of the test's own, on a free loopback port, stopped
    /// when dropped (feature `redis`; needs `redis-server` on `PATH`).
    ///
    /// ```no_run
    /// let server = herdcache_runtime::testing::RedisServer::start().unwrap();
    /// let url = server.url(); // redis://127.0.0.1:<port>
    /// ```
    #[derive(Debug)]
    pub struct RedisServer {
        child: Child,
        port: u16,
    }

    impl RedisServer {
        /// Starts one, and waits until it accepts connections.
        ///
        /// # Errors
        /// When `redis-server` cannot be run, or never listens.
        pub fn start() -> std::io::Result<Self> {
            Self::start_with(&[])
        }

        /// Starts one with extra configuration (`["--requirepass", "pw"]`).
        ///
        /// # Errors
        /// As [`start`](Self::start).
        pub fn start_with(config: &[&str]) -> std::io::Result<Self> {
            let mut last_error = None;
            // A port found free may be taken before the server binds it:
            // try a few.
            for _ in 0..5 {
                let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
                match Self::spawn(port, config) {
                    Ok(server) => return Ok(server),
                    Err(error) => last_error = Some(error),
                }
            }
            Err(last_error.unwrap_or_else(|| std::io::Error::other("redis-server did not start")))
        }

        /// Starts one on `port` (a server that comes back where it was).
        ///
        /// # Errors
        /// When `redis-server` cannot be run, or never listens there.
        pub fn start_on(port: u16) -> std::io::Result<Self> {
            Self::spawn(port, &[])
        }

        fn spawn(port: u16, config: &[&str]) -> std::io::Result<Self> {
            let mut child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .args(config)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?;
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Ok(RedisServer { child, port });
                }
                if let Some(status) = child.try_wait()? {
                    return Err(std::io::Error::other(format!(
                        "redis-server exited with {status} on port {port}"
                    )));
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(std::io::Error::other("redis-server never listened"));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }

        /// Its URL.
        pub fn url(&self) -> String {
            format!("redis://127.0.0.1:{}", self.port)
        }

        /// Its port.
        pub fn port(&self) -> u16 {
            self.port
        }
    }

    impl Drop for RedisServer {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
