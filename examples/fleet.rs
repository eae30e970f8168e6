//! Three instances of a service, as three OS processes, sharing one cache
//! through Redis. Run it with:
//!
//! ```text
//! cargo run -p herdcache-examples --example fleet --features redis
//! ```
//!
//! It starts a `redis-server` of its own on a free loopback port (or uses
//! `HERDCACHE_REDIS_URL` when set), serves a slow pretend exchange-rate API
//! (300 ms a quote, and every quote is billed), then starts this same
//! program three times as instances and drives them over their stdin. The
//! output shows what the fleet did: one API call for a burst of callers on
//! every instance, a rate loaded by one instance served by another, and an
//! invalidation in one seen by all.

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use herdcache::cached;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};

/// A rate, shared by every instance through Redis for 5 minutes.
#[cached(ttl = "5m", distributed = true)]
async fn exchange_rate(pair: String) -> String {
    let api = std::env::var("FLEET_API").expect("set by the fleet");
    let mut stream = tokio::net::TcpStream::connect(api)
        .await
        .expect("the pretend API");
    stream
        .write_all(format!("{pair}\n").as_bytes())
        .await
        .expect("the pretend API");
    let mut quote = String::new();
    tokio::io::BufReader::new(stream)
        .read_line(&mut quote)
        .await
        .expect("the pretend API");
    quote.trim().to_owned()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("instance") => instance(&args[2]),
        _ => fleet(),
    }
}

// ------------------------------------------------------------ an instance

/// One instance: reads commands on stdin, answers one line each.
#[tokio::main]
async fn instance(name: &str) {
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let (command, pair) = line.split_once(' ').unwrap_or((line.as_str(), ""));
        let pair = pair.to_owned();
        let answer = match command {
            // 100 callers at once on one key.
            "burst" => {
                let started = Instant::now();
                let callers: Vec<_> = (0..100)
                    .map(|_| tokio::spawn(exchange_rate(pair.clone())))
                    .collect();
                let mut rates = Vec::new();
                for caller in callers {
                    rates.push(caller.await.expect("a caller"));
                }
                rates.dedup();
                format!(
                    "{name}: 100 callers got {rates:?} in {:.0?}",
                    started.elapsed()
                )
            }
            "get" => {
                let before = exchange_rate_cache().stats();
                let started = Instant::now();
                let rate = exchange_rate(pair).await;
                let took = started.elapsed();
                let after = exchange_rate_cache().stats();
                let how = if after.loads > before.loads {
                    "this instance called the API"
                } else if after.l2_hits > before.l2_hits {
                    "read from Redis: another instance loaded it"
                } else {
                    "from this instance's memory"
                };
                format!("{name}: {rate} in {took:.1?} ({how})")
            }
            "invalidate" => {
                exchange_rate_invalidate(pair).await;
                format!("{name}: invalidated")
            }
            _ => format!("{name}: unknown command {line:?}"),
        };
        println!("{answer}");
    }
}

// ---------------------------------------------------------------- the fleet

/// The instances, and the API they share.
fn fleet() {
    // Redis: the environment's, or one of our own for the demo.
    let own_server;
    let url = match std::env::var("HERDCACHE_REDIS_URL") {
        Ok(url) => url,
        Err(_) => match herdcache_test_support::RedisServer::start() {
            Ok(server) => {
                own_server = server;
                own_server.url()
            }
            Err(error) => {
                eprintln!(
                    "The fleet needs Redis: put `redis-server` on PATH, or set HERDCACHE_REDIS_URL ({error})."
                );
                std::process::exit(1);
            }
        },
    };
    let api = PretendApi::start();
    let namespace = format!("fleet-demo-{}", std::process::id());
    let mut instances: Vec<Instance> = ["instance 1", "instance 2", "instance 3"]
        .iter()
        .map(|name| Instance::start(name, &url, &namespace, &api.address))
        .collect();

    println!(
        "A fleet of 3 processes sharing one cache through Redis; the API takes 300 ms a quote.\n"
    );

    // What the demo shows is also checked: a fleet that did otherwise
    // exits with an error (CI runs this example).
    let mut wrong: Vec<&str> = Vec::new();
    let show = |answer: String| {
        println!("   {answer}");
        answer
    };

    println!("1. A burst: 100 callers on each instance ask for EUR/USD at once");
    for answer in ask_all(&mut instances, "burst EUR/USD") {
        if !show(answer).contains("[\"EUR/USD = 1.01 (quote #1)\"]") {
            wrong.push("every caller gets quote #1");
        }
    }
    println!("   API calls so far: {}\n", api.calls());
    if api.calls() != 1 {
        wrong.push("one API call for the burst");
    }

    println!("2. One instance loads GBP/USD; the others read it from Redis");
    show(instances[0].ask("get GBP/USD"));
    for other in &mut instances[1..] {
        let answer = show(other.ask("get GBP/USD"));
        if !(answer.contains("quote #2") && answer.contains("read from Redis")) {
            wrong.push("the others read it from Redis");
        }
    }
    println!("   API calls so far: {}\n", api.calls());
    if api.calls() != 2 {
        wrong.push("one API call for GBP/USD");
    }

    println!("3. Instance 3 invalidates GBP/USD; the bus tells the others");
    show(instances[2].ask("invalidate GBP/USD"));
    // The bus takes a few milliseconds.
    std::thread::sleep(Duration::from_millis(100));
    for other in &mut instances[..2] {
        if !show(other.ask("get GBP/USD")).contains("quote #3") {
            wrong.push("the old quote is gone everywhere");
        }
    }
    println!("   API calls so far: {}", api.calls());
    if api.calls() != 3 {
        wrong.push("one API call after the invalidation");
    }
    println!("   (neither served quote #2 from its memory: the invalidation reached both)");

    for instance in &mut instances {
        instance.stop();
    }
    if !wrong.is_empty() {
        eprintln!("The fleet did not do what this demo shows: {wrong:?}");
        std::process::exit(1);
    }
}

/// Sends `command` to every instance at once, then reads each answer.
fn ask_all(instances: &mut [Instance], command: &str) -> Vec<String> {
    for instance in instances.iter_mut() {
        instance.send(command);
    }
    instances.iter_mut().map(Instance::answer).collect()
}

/// An instance process and its pipes.
struct Instance {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Instance {
    fn start(name: &str, url: &str, namespace: &str, api: &str) -> Self {
        let mut child = Command::new(std::env::current_exe().expect("this program"))
            .args(["instance", name])
            .env("HERDCACHE_REDIS_URL", url)
            .env("HERDCACHE_NAMESPACE", namespace)
            .env("FLEET_API", api)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting an instance");
        let stdin = child.stdin.take().expect("piped");
        let stdout = BufReader::new(child.stdout.take().expect("piped"));
        Instance {
            child,
            stdin,
            stdout,
        }
    }

    fn send(&mut self, command: &str) {
        writeln!(self.stdin, "{command}").expect("an instance's stdin");
    }

    fn answer(&mut self) -> String {
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .expect("an instance's answer");
        line.trim_end().to_owned()
    }

    fn ask(&mut self, command: &str) -> String {
        self.send(command);
        self.answer()
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A slow, billed exchange-rate API on a loopback port: 300 ms a quote.
struct PretendApi {
    address: String,
    calls: Arc<AtomicUsize>,
    _runtime: tokio::runtime::Runtime,
}

impl PretendApi {
    fn start() -> Self {
        let runtime = tokio::runtime::Runtime::new().expect("a runtime for the API");
        let calls = Arc::new(AtomicUsize::new(0));
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("a loopback port");
        let address = listener.local_addr().expect("bound").to_string();
        let counted = Arc::clone(&calls);
        runtime.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let counted = Arc::clone(&counted);
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut pair = String::new();
                    if tokio::io::BufReader::new(read)
                        .read_line(&mut pair)
                        .await
                        .is_ok()
                    {
                        let quote = counted.fetch_add(1, Ordering::SeqCst) + 1;
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        let rate = 1.0 + (quote as f64) / 100.0;
                        let answer = format!("{} = {rate:.2} (quote #{quote})\n", pair.trim());
                        let _ = write.write_all(answer.as_bytes()).await;
                    }
                });
            }
        });
        PretendApi {
            address,
            calls,
            _runtime: runtime,
        }
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}
