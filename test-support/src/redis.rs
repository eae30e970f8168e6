//! `redis-server`s of a test's own: one on a free loopback port, or a
//! three-node cluster, stopped when dropped; killed, restarted where it
//! was, or paused, for fault injection.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` of the test's own, on a free loopback port, stopped
/// when dropped (feature `redis`; needs `redis-server` on `PATH`).
///
/// ```no_run
/// let server = herdcache_test_support::RedisServer::start().unwrap();
/// let url = server.url(); // redis://127.0.0.1:<port>
/// ```
#[derive(Debug)]
pub struct RedisServer {
    child: std::sync::Mutex<Child>,
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

    pub(crate) fn spawn(port: u16, config: &[&str]) -> std::io::Result<Self> {
        let mut child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            // Our server, answering: a bare connect could reach another
            // test's port probe that holds the port before ours binds it
            // (ours then exits, and the test meets "connection refused").
            if answers_ping(port) && child.try_wait()?.is_none() {
                return Ok(RedisServer {
                    child: std::sync::Mutex::new(child),
                    port,
                });
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

impl RedisServer {
    /// Freezes it (`SIGSTOP`): connections stay open and nothing answers,
    /// as a server stalled by a long fork or a swapped-out host.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused server run again (`SIGCONT`); what was sent meanwhile
    /// is answered now.
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self
            .child
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .id();
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .expect("kill(1) runs");
        assert!(status.success(), "kill {signal} {pid}");
    }

    /// Stops it now (a server kept in a `static`, as a bench's, is
    /// never dropped).
    pub fn stop(&self) {
        let mut child = self
            .child
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A Redis Cluster of the test's own: three masters on free loopback
/// ports, slots spread by `redis-cli --cluster create`, stopped (and
/// their files removed) when dropped.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    dir: std::path::PathBuf,
}

impl RedisCluster {
    /// Starts three masters and makes them a cluster; returns once it
    /// is ready.
    ///
    /// # Errors
    /// When a node does not start or the cluster does not form.
    pub fn start() -> std::io::Result<Self> {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "herdcache-cluster-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)?;
        let dir_arg = dir.to_string_lossy().into_owned();
        let mut nodes = Vec::new();
        for _ in 0..3 {
            let mut last_error = None;
            for _ in 0..5 {
                let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
                let config = format!("nodes-{port}.conf");
                match RedisServer::spawn(
                    port,
                    &[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        &config,
                        "--dir",
                        &dir_arg,
                    ],
                ) {
                    Ok(node) => {
                        nodes.push(node);
                        last_error = None;
                        break;
                    }
                    Err(error) => last_error = Some(error),
                }
            }
            if let Some(error) = last_error {
                return Err(error);
            }
        }
        let cluster = RedisCluster { nodes, dir };
        let addresses: Vec<String> = cluster
            .nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port))
            .collect();
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        if !created.success() {
            return Err(std::io::Error::other("redis-cli --cluster create failed"));
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while !cluster.ready() {
            if Instant::now() > deadline {
                return Err(std::io::Error::other("the cluster never became ready"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(cluster)
    }

    /// Whether every node sees the cluster as `ok`.
    fn ready(&self) -> bool {
        self.nodes.iter().all(|node| {
            Command::new("redis-cli")
                .args(["-p", &node.port.to_string(), "cluster", "info"])
                .output()
                .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains("cluster_state:ok"))
        })
    }

    /// Its nodes' URLs.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        self.nodes.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Redis server listens on `port` and answers `PING` (`+PONG`, or an
/// error such as `-NOAUTH` with a password); a port probe never answers.
fn answers_ping(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut reply = [0u8; 1];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && matches!(reply[0], b'+' | b'-')
}

#[cfg(test)]
mod tests {
    use super::answers_ping;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// A listener that accepts one connection and replies `reply` (or
    /// nothing) to what it reads.
    fn listener(reply: Option<&'static [u8]>) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = [0u8; 6];
            let _ = stream.read_exact(&mut request);
            match reply {
                Some(reply) => stream.write_all(reply).unwrap(),
                // Silent until the client gives up.
                None => {
                    let _ = stream.read(&mut request);
                }
            }
        });
        port
    }

    #[test]
    fn a_port_that_accepts_but_does_not_answer_is_not_a_server() {
        // Another test's port probe: it accepts, it never answers.
        assert!(!answers_ping(listener(None)));
        assert!(answers_ping(listener(Some(b"+PONG\r\n"))));
        assert!(answers_ping(listener(Some(
            b"-NOAUTH Authentication required.\r\n"
        ))));
        // Not a Redis reply.
        assert!(!answers_ping(listener(Some(b"HTTP/1.1 400\r\n"))));
    }
}
