//! A connection per calling runtime, driven where its callers run.
//!
//! The tier's shared connection is driven on the tier's own thread, so that
//! it outlives whichever runtime made it. A read through it crosses threads
//! twice: the caller wakes the tier's thread to write the request, and the
//! tier's thread wakes the caller with the reply. On this project's 2-vCPU
//! VMs each wake costs tens of microseconds, more than a loopback round
//! trip (a raw `GET` driven on the caller's thread: ~21 µs; driven on
//! another: ~80 µs).
//!
//! So each runtime that calls Redis again gets a connection of its own, made
//! on it (its driver is a task there): on a current-thread runtime a read
//! never leaves the caller's thread, and on a multi-thread one the driver
//! is woken on the caller's worker. It is made in the background on the
//! runtime's second call (a runtime made for one call never connects), and
//! calls go through the shared connection meanwhile, as they do when the
//! runtime cannot host one:
//!
//! - a runtime built without I/O (`enable_io`): making the connection
//!   panics inside the task that tries (tokio reports it, once per such
//!   runtime, on stderr), and that runtime keeps the shared connection;
//! - a build with `panic = "abort"`, where that panic would end the
//!   process: no runtime gets its own connection;
//! - Redis refusing or failing the connection: tried again a second later;
//! - a current-thread runtime's connection used from a thread other than
//!   the one that drives it (`Handle::block_on` elsewhere while nobody runs
//!   the runtime would wait on a driver that never runs).
//!
//! A runtime that ends takes its connection's driver with it; its entry
//! stays until it is the least recently used of [`MAX_RUNTIMES`] (a test
//! suite makes one runtime per test).

use std::sync::{Arc, Mutex, PoisonError};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use tokio::runtime::{Handle, Id, RuntimeFlavor};

use super::{Backend, Connection};

/// Runtimes remembered at once; the oldest is forgotten first.
pub(super) const MAX_RUNTIMES: usize = 16;

/// How long after a failed connection the next read tries again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

enum State {
    /// Called once: a second call makes the connection.
    Seen,
    Connecting,
    /// With the thread that drives it, for a current-thread runtime.
    Ready(Connection, Option<ThreadId>),
    /// The runtime cannot host a connection (no I/O driver).
    Unable,
    Failed(Instant),
}

struct Local {
    runtime: Id,
    state: Arc<Mutex<State>>,
    /// When this runtime last called, in calls: the least recent is
    /// forgotten first.
    used: u64,
}

/// The connections of the runtimes that read, by runtime.
#[derive(Default)]
pub(super) struct Locals(Mutex<(Vec<Local>, u64)>);

/// The calling thread's id, read once per thread.
fn this_thread() -> ThreadId {
    thread_local! {
        static ID: ThreadId = std::thread::current().id();
    }
    ID.with(|id| *id)
}

impl Locals {
    /// The calling runtime's own connection, if it has one by now (and, on a
    /// current-thread runtime, this is its thread); on the runtime's second
    /// call, starts making it. `None`: use the shared connection.
    pub(super) fn here(&self, backend: &Backend, tier: &Handle) -> Option<Connection> {
        // Without unwinding, a runtime without I/O could not be told apart
        // from one with it without ending the process.
        if !cfg!(panic = "unwind") {
            return None;
        }
        let handle = Handle::try_current().ok()?;
        let runtime = handle.id();
        if runtime == tier.id() {
            return None;
        }
        let mut guard = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let (locals, clock) = &mut *guard;
        *clock += 1;
        let now = *clock;
        let state = match locals.iter_mut().find(|local| local.runtime == runtime) {
            Some(local) => {
                local.used = now;
                let mut state = local.state.lock().unwrap_or_else(PoisonError::into_inner);
                match &*state {
                    State::Ready(connection, driver) => {
                        return match driver {
                            Some(thread) if *thread != this_thread() => None,
                            _ => Some(connection.clone()),
                        };
                    }
                    State::Connecting | State::Unable => return None,
                    State::Failed(at) if at.elapsed() < RETRY_AFTER => return None,
                    State::Seen | State::Failed(_) => *state = State::Connecting,
                }
                Arc::clone(&local.state)
            }
            None => {
                if locals.len() == MAX_RUNTIMES {
                    if let Some(oldest) = locals
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, local)| local.used)
                        .map(|(at, _)| at)
                    {
                        locals.swap_remove(oldest);
                    }
                }
                locals.push(Local {
                    runtime,
                    state: Arc::new(Mutex::new(State::Seen)),
                    used: now,
                });
                return None;
            }
        };
        drop(guard);
        connect_on(&handle, backend.clone(), state);
        None
    }

    /// How many runtimes have a connection of their own ready.
    #[cfg(test)]
    pub(super) fn ready(&self) -> usize {
        self.count(|state| matches!(state, State::Ready(..)))
    }

    /// How many runtimes were found unable to host one.
    #[cfg(test)]
    pub(super) fn unable(&self) -> usize {
        self.count(|state| matches!(state, State::Unable))
    }

    #[cfg(test)]
    fn count(&self, which: impl Fn(&State) -> bool) -> usize {
        let guard = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        guard
            .0
            .iter()
            .filter(|local| which(&local.state.lock().unwrap_or_else(PoisonError::into_inner)))
            .count()
    }
}

/// Makes a connection on `handle`'s runtime (where its driver then runs)
/// and records how it went in `state`.
fn connect_on(handle: &Handle, backend: Backend, state: Arc<Mutex<State>>) {
    let current_thread = handle.runtime_flavor() == RuntimeFlavor::CurrentThread;
    let made = handle.spawn(async move { backend.connect().await });
    handle.spawn(async move {
        let outcome = match made.await {
            // On a current-thread runtime this task runs on the thread
            // that drives it.
            Ok(Ok(connection)) => {
                State::Ready(connection, current_thread.then(this_thread))
            }
            Ok(Err(error)) => {
                tracing::debug!(target: "herdcache", %error, "a runtime's own Redis connection failed: its reads use the shared one");
                State::Failed(Instant::now())
            }
            Err(error) => {
                // Panicked (no I/O driver), or the runtime is ending.
                tracing::debug!(target: "herdcache", %error, "this runtime cannot drive a Redis connection: its reads use the shared one");
                State::Unable
            }
        };
        *state.lock().unwrap_or_else(PoisonError::into_inner) = outcome;
    });
}
