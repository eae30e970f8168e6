//! A TCP proxy on loopback between one instance and `redis-server`, which a
//! test drives: pass, cut, blackhole, delay, heal.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// What the proxy does with traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Forwards both ways.
    Pass,
    /// Closes every connection and refuses new ones (the port stops
    /// listening): a pod cut off from Redis, a reset.
    Cut,
    /// Keeps connections open and answers nothing: bytes wait, unread,
    /// as a dropped route makes TCP wait, so calls time out. New
    /// connections are accepted and left waiting. On heal, what waited
    /// goes through, as TCP would deliver it.
    Blackhole,
    /// Forwards each chunk after this delay.
    Delay(Duration),
}

/// A fault-injecting TCP proxy to `127.0.0.1:<upstream>`, on a free loopback
/// port of its own; stopped when dropped.
pub struct FaultProxy {
    inner: Arc<Inner>,
}

struct Inner {
    upstream: u16,
    port: u16,
    state: Mutex<State>,
    changed: Condvar,
    stopped: AtomicBool,
}

struct State {
    mode: Mode,
    /// Both ends of every open connection, to close on a cut.
    open: Vec<TcpStream>,
    /// Connections accepted so far.
    accepted: u64,
}

/// How long a blocked thread waits before it looks at the mode again.
const POLL: Duration = Duration::from_millis(5);

impl FaultProxy {
    /// A proxy to `127.0.0.1:<upstream>`, passing traffic.
    ///
    /// # Errors
    /// When no loopback port can be bound.
    pub fn start(upstream: u16) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let inner = Arc::new(Inner {
            upstream,
            port,
            state: Mutex::new(State {
                mode: Mode::Pass,
                open: Vec::new(),
                accepted: 0,
            }),
            changed: Condvar::new(),
            stopped: AtomicBool::new(false),
        });
        let accepting = Arc::clone(&inner);
        std::thread::Builder::new()
            .name("fault-proxy".into())
            .spawn(move || accepting.accept_forever(Some(listener)))?;
        Ok(FaultProxy { inner })
    }

    /// `redis://127.0.0.1:<port>`: the URL an instance uses to go through it.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.inner.port)
    }

    /// Its own port.
    pub fn port(&self) -> u16 {
        self.inner.port
    }

    /// Connections it accepted so far.
    pub fn accepted(&self) -> u64 {
        self.inner.state().accepted
    }

    /// The mode now.
    pub fn mode(&self) -> Mode {
        self.inner.state().mode
    }

    /// Sets the mode: see [`Mode`].
    pub fn set(&self, mode: Mode) {
        let mut state = self.inner.state();
        state.mode = mode;
        if mode == Mode::Cut {
            for stream in state.open.drain(..) {
                let _ = stream.shutdown(Shutdown::Both);
            }
        }
        drop(state);
        self.inner.changed.notify_all();
    }

    /// [`Mode::Cut`].
    pub fn cut(&self) {
        self.set(Mode::Cut);
    }

    /// [`Mode::Blackhole`].
    pub fn blackhole(&self) {
        self.set(Mode::Blackhole);
    }

    /// [`Mode::Delay`].
    pub fn delay(&self, by: Duration) {
        self.set(Mode::Delay(by));
    }

    /// Back to [`Mode::Pass`].
    pub fn heal(&self) {
        self.set(Mode::Pass);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.inner.stopped.store(true, Ordering::Release);
        self.cut();
    }
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    fn mode(&self) -> Mode {
        self.state().mode
    }

    /// Waits while the mode is `mode` (or until stopped).
    fn wait_while(&self, mode: Mode) {
        let mut state = self.state();
        while state.mode == mode && !self.stopped() {
            state = self
                .changed
                .wait_timeout(state, POLL * 10)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Accepts connections while not cut; while cut, the port does not
    /// listen at all (connects are refused), and listens again on heal.
    fn accept_forever(self: Arc<Self>, mut listener: Option<TcpListener>) {
        while !self.stopped() {
            if self.mode() == Mode::Cut {
                listener = None;
                self.wait_while(Mode::Cut);
                continue;
            }
            let Some(bound) = &listener else {
                // Rebinding the same port may fail for a moment.
                match TcpListener::bind(("127.0.0.1", self.port)) {
                    Ok(bound) => {
                        let _ = bound.set_nonblocking(true);
                        listener = Some(bound);
                    }
                    Err(_) => std::thread::sleep(POLL),
                }
                continue;
            };
            let _ = bound.set_nonblocking(true);
            match bound.accept() {
                Ok((client, _)) => {
                    self.state().accepted += 1;
                    let handler = Arc::clone(&self);
                    std::thread::spawn(move || handler.serve(client));
                }
                Err(error) if error.kind() == ErrorKind::WouldBlock => std::thread::sleep(POLL),
                Err(_) => std::thread::sleep(POLL),
            }
        }
    }

    /// One client connection: connects upstream (not while blackholed),
    /// then pumps both ways.
    fn serve(self: Arc<Self>, client: TcpStream) {
        let _ = client.set_nonblocking(false);
        self.wait_while(Mode::Blackhole);
        if self.mode() == Mode::Cut || self.stopped() {
            let _ = client.shutdown(Shutdown::Both);
            return;
        }
        let Ok(server) = TcpStream::connect(("127.0.0.1", self.upstream)) else {
            let _ = client.shutdown(Shutdown::Both);
            return;
        };
        let (Ok(client_out), Ok(server_out)) = (client.try_clone(), server.try_clone()) else {
            return;
        };
        {
            let mut state = self.state();
            if state.mode == Mode::Cut {
                let _ = client.shutdown(Shutdown::Both);
                let _ = server.shutdown(Shutdown::Both);
                return;
            }
            for stream in [&client, &server] {
                if let Ok(clone) = stream.try_clone() {
                    state.open.push(clone);
                }
            }
        }
        let upstream = Arc::clone(&self);
        std::thread::spawn(move || upstream.pump(client, server_out));
        self.pump(server, client_out);
    }

    /// Copies `from` to `to` as the mode says, until either end closes.
    fn pump(&self, mut from: TcpStream, mut to: TcpStream) {
        let _ = from.set_read_timeout(Some(POLL));
        let mut buffer = [0u8; 16 * 1024];
        loop {
            match self.mode() {
                _ if self.stopped() => break,
                Mode::Cut => break,
                // Nothing is read: the bytes wait in the kernel's buffers.
                Mode::Blackhole => {
                    self.wait_while(Mode::Blackhole);
                    continue;
                }
                Mode::Pass | Mode::Delay(_) => {}
            }
            let read = match from.read(&mut buffer) {
                Ok(0) => break,
                Ok(read) => read,
                Err(error)
                    if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
                {
                    continue
                }
                Err(_) => break,
            };
            // The mode may have changed while this read waited: a chunk
            // read as the blackhole began waits for the heal too.
            let forward = loop {
                match self.mode() {
                    _ if self.stopped() => break false,
                    Mode::Cut => break false,
                    Mode::Blackhole => self.wait_while(Mode::Blackhole),
                    Mode::Delay(by) => {
                        std::thread::sleep(by);
                        break true;
                    }
                    Mode::Pass => break true,
                }
            };
            if !forward || to.write_all(&buffer[..read]).is_err() {
                break;
            }
        }
        let _ = from.shutdown(Shutdown::Both);
        let _ = to.shutdown(Shutdown::Both);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server on loopback: what it reads, it writes back.
    fn echo() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                std::thread::spawn(move || {
                    let mut buffer = [0u8; 1024];
                    while let Ok(read) = stream.read(&mut buffer) {
                        if read == 0 || stream.write_all(&buffer[..read]).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        port
    }

    fn round_trip(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
        stream.write_all(b"ping")?;
        let mut answer = [0u8; 4];
        stream.read_exact(&mut answer)?;
        Ok(answer.to_vec())
    }

    #[test]
    fn passes_cuts_refuses_blackholes_and_heals() {
        let proxy = FaultProxy::start(echo()).unwrap();
        let mut stream = TcpStream::connect(("127.0.0.1", proxy.port())).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        assert_eq!(round_trip(&mut stream).unwrap(), b"ping");

        proxy.cut();
        assert!(round_trip(&mut stream).is_err(), "closed");
        // Refused (the listener is gone) within a moment.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", proxy.port())).is_ok() {
            assert!(std::time::Instant::now() < deadline, "still accepting");
            std::thread::sleep(POLL);
        }

        proxy.heal();
        let mut stream = loop {
            match TcpStream::connect(("127.0.0.1", proxy.port())) {
                Ok(stream) => break stream,
                Err(_) => std::thread::sleep(POLL),
            }
        };
        stream
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        assert_eq!(round_trip(&mut stream).unwrap(), b"ping");

        proxy.blackhole();
        let error = round_trip(&mut stream).unwrap_err();
        assert!(
            matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            "a timeout, not a refusal: {error:?}"
        );
        proxy.heal();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut late = [0u8; 4];
        stream.read_exact(&mut late).unwrap();
        assert_eq!(&late, b"ping", "what waited goes through on heal");

        proxy.delay(Duration::from_millis(50));
        let started = std::time::Instant::now();
        assert_eq!(round_trip(&mut stream).unwrap(), b"ping");
        assert!(started.elapsed() >= Duration::from_millis(100), "both ways");
    }
}
