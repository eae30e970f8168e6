//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

/// Waits until `condition` holds, polling; fails the test after a deadline
/// generous enough for a loaded 2-core machine. Progress is decided by the
/// condition, never by how long we slept.
pub async fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Fails the test if `future` does not finish within a generous deadline:
/// the way a test says "nobody hangs".
pub async fn finishes<F: std::future::Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(30), future)
        .await
        .unwrap_or_else(|_| panic!("{what} hung"))
}

/// A gate loaders wait on until the test opens it.
pub struct Gate(Semaphore);

impl Gate {
    pub const fn new() -> Self {
        Gate(Semaphore::const_new(0))
    }

    pub async fn pass(&self) {
        self.0.acquire().await.expect("gate closed").forget();
    }

    /// Lets everyone through, now and later.
    pub fn open(&self) {
        self.0.add_permits(Semaphore::MAX_PERMITS / 2);
    }
}

/// Runs `futures` concurrently on the calling task and returns their
/// outputs in order: many callers inside one `testing::isolate` scope
/// (which follows a task, so spawned tasks would each get their own).
pub async fn join_all<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut running: Vec<Option<std::pin::Pin<Box<F>>>> = futures
        .into_iter()
        .map(|future| Some(Box::pin(future)))
        .collect();
    let mut outputs: Vec<Option<F::Output>> = running.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (slot, output) in running.iter_mut().zip(outputs.iter_mut()) {
            if let Some(future) = slot {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(done) => {
                        *output = Some(done);
                        *slot = None;
                    }
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs
        .into_iter()
        .map(|output| output.expect("every future finished"))
        .collect()
}

/// The `RESULT` line a child process (this test binary run again) printed,
/// once it exited successfully.
pub fn child_result(output: std::process::Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .lines()
        // libtest may print `test <name> ... ` on the same line.
        .find_map(|line| line.split_once("RESULT ").map(|(_, result)| result))
        .unwrap_or_else(|| panic!("no result in {stdout}"))
        .to_owned()
}

/// The number `name=<n>` in a child's `RESULT` line.
pub fn result_field(result: &str, name: &str) -> u64 {
    result
        .split_whitespace()
        .find_map(|pair| pair.strip_prefix(&format!("{name}=")))
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {result}"))
}

/// A connection to the test's own `redis-server` at `url`.
pub async fn redis_at(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Waits (30 s at most) until another process has set `key`.
pub async fn wait_for_key(redis: &mut redis::aio::MultiplexedConnection, key: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let value: Option<u8> = redis::AsyncCommands::get(redis, key).await.unwrap();
        if value.is_some() {
            return;
        }
        assert!(Instant::now() < deadline, "waited too long for {key}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
