//! The load generator: N clients over a Zipf-distributed key set for a
//! fixed time, a read/write mix, conditional reads; prints requests/s, the
//! latency percentiles, database queries per request and how the cache
//! answered.
//!
//! ```text
//! cargo run -p service --release --bin loadgen -- [options]
//!   --url URL          load a running service (default: start instances of our own)
//!   --scenario NAME    compare (default): caching on against HERDCACHE_DISABLED=1
//!                      expiry: a 1 s ttl with swr against the same without
//!                      db-down: the database fails half-way; fail-safe holds
//!                      (the cached instance runs a 1 s ttl, so entries expire
//!                      during the outage and fail-safe answers them)
//!   --fault MODE       db-down's fault: fail (default: every call fails at
//!                      once) or hang (every call hangs for DB_TIMEOUT_MS, 1 s,
//!                      then fails: a paused database; the cached instance's
//!                      100 ms `timeout` hands callers the fallback)
//!   --clients N        concurrent clients (32)
//!   --keys N           users in the key set (1000)
//!   --zipf-s S         Zipf exponent (1.0)
//!   --seconds N        how long each run lasts (10)
//!   --writes F         share of requests that are PUTs (0.05; db-down: 0)
//!   --inm F            share of reads sending If-None-Match with the ETag seen last (0.5)
//!   --db-latency-ms N  the started instances' DB_LATENCY_MS (2; expiry: 25, so a load shows)
//! ```
//!
//! The instances it starts are this binary run again with `--serve` (the
//! service, configured by the environment), on free loopback ports, one
//! after the other, each with an in-memory database of its own.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const USAGE: &str = "usage: loadgen [--url URL] [--scenario compare|expiry|db-down] [--fault fail|hang] [--clients N] [--keys N] [--zipf-s S] [--seconds N] [--writes F] [--inm F] [--db-latency-ms N]";

#[derive(Clone, Debug)]
struct Options {
    url: Option<String>,
    scenario: Scenario,
    /// db-down's fault mode, as `POST /admin/db-fault` takes it.
    fault: &'static str,
    clients: usize,
    keys: u32,
    zipf_s: f64,
    seconds: u64,
    /// `None`: the scenario's default (0.05; 0 for db-down).
    writes: Option<f64>,
    inm: f64,
    /// `None`: the scenario's default (2 ms; 25 ms for expiry).
    db_latency_ms: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scenario {
    Compare,
    Expiry,
    DbDown,
}

impl Options {
    fn writes(&self) -> f64 {
        self.writes.unwrap_or(match self.scenario {
            // A write busts its user for good (no fallback), and every
            // write fails while the database is down: the outage is
            // about reads.
            Scenario::DbDown => 0.0,
            Scenario::Compare | Scenario::Expiry => 0.05,
        })
    }

    fn db_latency(&self) -> u64 {
        self.db_latency_ms.unwrap_or(match self.scenario {
            Scenario::Expiry => 25,
            Scenario::Compare | Scenario::DbDown => 2,
        })
    }
}

fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        url: None,
        scenario: Scenario::Compare,
        fault: "fail",
        clients: 32,
        keys: 1000,
        zipf_s: 1.0,
        seconds: 10,
        writes: None,
        inm: 0.5,
        db_latency_ms: None,
    };
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        fn num<T: std::str::FromStr>(flag: &str, text: String) -> Result<T, String> {
            text.parse()
                .map_err(|_| format!("{flag}: `{text}` is not a number\n{USAGE}"))
        }
        match flag.as_str() {
            "--url" => options.url = Some(value()?.trim_end_matches('/').to_owned()),
            "--scenario" => {
                options.scenario = match value()?.as_str() {
                    "compare" => Scenario::Compare,
                    "expiry" => Scenario::Expiry,
                    "db-down" => Scenario::DbDown,
                    other => return Err(format!("--scenario {other}: unknown\n{USAGE}")),
                }
            }
            "--fault" => {
                options.fault = match value()?.as_str() {
                    "fail" => "fail",
                    "hang" => "hang",
                    other => return Err(format!("--fault {other}: fail or hang\n{USAGE}")),
                }
            }
            "--clients" => options.clients = num(flag, value()?)?,
            "--keys" => options.keys = num(flag, value()?)?,
            "--zipf-s" => options.zipf_s = num(flag, value()?)?,
            "--seconds" => options.seconds = num(flag, value()?)?,
            "--writes" => options.writes = Some(num(flag, value()?)?),
            "--inm" => options.inm = num(flag, value()?)?,
            "--db-latency-ms" => options.db_latency_ms = Some(num(flag, value()?)?),
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown option {other}\n{USAGE}")),
        }
    }
    if options.clients == 0 || options.keys == 0 || options.seconds == 0 {
        return Err(format!(
            "--clients, --keys and --seconds must be positive\n{USAGE}"
        ));
    }
    if !(0.0..=1.0).contains(&options.writes()) || !(0.0..=1.0).contains(&options.inm) {
        return Err(format!(
            "--writes and --inm are fractions in 0..=1\n{USAGE}"
        ));
    }
    Ok(options)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--serve") {
        serve_child();
        return;
    }
    let options = match parse_args(&args) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("loadgen: no tokio runtime: {error}");
            std::process::exit(1);
        }
    };
    if let Err(error) = runtime.block_on(run(options)) {
        eprintln!("loadgen: {error}");
        std::process::exit(1);
    }
}

/// `--serve`: the service itself, configured by the environment.
fn serve_child() {
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    if let Err(error) = runtime.block_on(service::run_from_env()) {
        eprintln!("service: {error}");
        std::process::exit(1);
    }
}

// ------------------------------------------------------------ instances

/// A service instance this process started, killed when dropped.
struct Instance {
    child: Child,
    url: String,
}

impl Instance {
    fn start(options: &Options, env: &[(&str, &str)]) -> Result<Self, String> {
        let exe = std::env::current_exe().map_err(|e| format!("this binary: {e}"))?;
        let mut command = Command::new(exe);
        command
            .arg("--serve")
            .env("SERVICE_ADDR", "127.0.0.1:0")
            .env("DATABASE_URL", "sqlite::memory:")
            .env("SEED_USERS", options.keys.max(1000).to_string())
            .env("DB_LATENCY_MS", options.db_latency().to_string())
            .env("RUST_LOG", "error")
            // Each instance alone: no fleet, no switches from our environment.
            .env_remove("HERDCACHE_REDIS_URL")
            .env_remove("HERDCACHE_DISABLED")
            .env_remove("CACHE_PROFILE")
            .env_remove("DB_FAULT")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command
            .spawn()
            .map_err(|e| format!("starting an instance: {e}"))?;
        let stdout = child.stdout.take().ok_or("the instance's stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(url) = line.strip_prefix("listening on ") {
                        return Ok(Instance {
                            child,
                            url: url.trim().to_owned(),
                        });
                    }
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err("an instance exited before listening".to_owned());
                }
            }
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ------------------------------------------------------------ the load

/// Zipf over `1..=n`: rank k drawn with probability ∝ 1/k^s.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: u32, s: f64) -> Self {
        let mut cdf = Vec::with_capacity(n as usize);
        let mut sum = 0.0;
        for k in 1..=n {
            sum += 1.0 / f64::from(k).powf(s);
            cdf.push(sum);
        }
        for c in &mut cdf {
            *c /= sum;
        }
        Zipf { cdf }
    }

    fn sample(&self, rng: &mut impl Rng) -> u32 {
        let u: f64 = rng.random();
        let index = self.cdf.partition_point(|c| *c < u);
        index.min(self.cdf.len() - 1) as u32 + 1
    }
}

/// How a response was answered, by `X-Cache`.
const SERVED: [&str; 6] = ["hit", "stale", "fail_safe", "loaded", "coalesced", "remote"];

#[derive(Default)]
struct Tally {
    /// Latencies in microseconds, before the fault (all, without one).
    latencies: Vec<u32>,
    /// After the database went down (db-down).
    after_fault: Vec<u32>,
    errors: u64,
    errors_after_fault: u64,
    /// Reads after the fault, and how many failed.
    reads_after_fault: u64,
    read_errors_after_fault: u64,
    not_modified: u64,
    served: [u64; SERVED.len()],
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.latencies.extend(other.latencies);
        self.after_fault.extend(other.after_fault);
        self.errors += other.errors;
        self.errors_after_fault += other.errors_after_fault;
        self.reads_after_fault += other.reads_after_fault;
        self.read_errors_after_fault += other.read_errors_after_fault;
        self.not_modified += other.not_modified;
        for (a, b) in self.served.iter_mut().zip(other.served) {
            *a += b;
        }
    }
}

/// One run's figures.
struct Report {
    label: String,
    requests: u64,
    seconds: f64,
    latencies: Vec<u32>,
    after_fault: Vec<u32>,
    errors: u64,
    errors_after_fault: u64,
    reads_after_fault: u64,
    read_errors_after_fault: u64,
    not_modified: u64,
    served: [u64; SERVED.len()],
    db_queries: u64,
}

async fn db_queries(client: &reqwest::Client, url: &str) -> Result<u64, String> {
    let debug: serde_json::Value = client
        .get(format!("{url}/debug/cache"))
        .send()
        .await
        .map_err(|e| format!("GET {url}/debug/cache: {e}"))?
        .json()
        .await
        .map_err(|e| format!("/debug/cache: {e}"))?;
    debug["db_queries"]
        .as_u64()
        .ok_or_else(|| "/debug/cache has no db_queries".to_owned())
}

/// One read of every key, so each has a value to fall back on (db-down:
/// the cache is warm when the database goes).
async fn warm(client: &reqwest::Client, url: &str, keys: u32) -> Result<(), String> {
    for key in 1..=keys {
        client
            .get(format!("{url}/users/{key}"))
            .send()
            .await
            .map_err(|e| format!("warming {url}/users/{key}: {e}"))?;
    }
    Ok(())
}

async fn set_fault(client: &reqwest::Client, url: &str, mode: &str) -> Result<(), String> {
    let response = client
        .post(format!("{url}/admin/db-fault"))
        .json(&serde_json::json!({ "mode": mode }))
        .send()
        .await
        .map_err(|e| format!("POST /admin/db-fault: {e}"))?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("POST /admin/db-fault: {}", response.status()))
    }
}

/// One client's loop until `deadline`.
#[allow(clippy::too_many_arguments)]
async fn client_loop(
    id: usize,
    client: reqwest::Client,
    url: Arc<str>,
    options: Arc<Options>,
    zipf: Arc<Zipf>,
    deadline: Instant,
    fault_at: Option<Instant>,
    done: Arc<AtomicU64>,
) -> Tally {
    let mut rng = StdRng::seed_from_u64(0x5EED ^ id as u64);
    let mut etags: HashMap<u32, String> = HashMap::new();
    let mut tally = Tally::default();
    let mut writes = 0u64;
    while Instant::now() < deadline {
        let key = zipf.sample(&mut rng);
        let write = rng.random_bool(options.writes());
        let request = if write {
            writes += 1;
            client
                .put(format!("{url}/users/{key}"))
                .json(&serde_json::json!({
                    "name": format!("User {key} ({id}.{writes})"),
                    "email": format!("user{key}@example.com"),
                }))
        } else {
            let mut request = client.get(format!("{url}/users/{key}"));
            if let Some(etag) = etags.get(&key) {
                if rng.random_bool(options.inm) {
                    request = request.header("if-none-match", etag);
                }
            }
            request
        };
        let started = Instant::now();
        let result = request.send().await;
        let mut ok = false;
        if let Ok(response) = result {
            let status = response.status();
            if status == reqwest::StatusCode::NOT_MODIFIED {
                tally.not_modified += 1;
            }
            ok = status.is_success() || status == reqwest::StatusCode::NOT_MODIFIED;
            if let Some(served) = response.headers().get("x-cache") {
                if let Some(i) = SERVED
                    .iter()
                    .position(|s| served.as_bytes() == s.as_bytes())
                {
                    tally.served[i] += 1;
                }
            }
            if let Some(etag) = response.headers().get("etag").and_then(|v| v.to_str().ok()) {
                etags.insert(key, etag.to_owned());
            }
            // Read the body to the end, so the connection is reused.
            ok &= response.bytes().await.is_ok();
        }
        let took = started.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
        let after = fault_at.is_some_and(|at| started >= at);
        if after {
            tally.after_fault.push(took);
            tally.errors_after_fault += u64::from(!ok);
            if !write {
                tally.reads_after_fault += 1;
                tally.read_errors_after_fault += u64::from(!ok);
            }
        } else {
            tally.latencies.push(took);
        }
        tally.errors += u64::from(!ok);
        done.fetch_add(1, Relaxed);
    }
    tally
}

/// Loads `url` for the configured time; with `fault`, the database fails
/// from half-way on (and is healed at the end).
async fn load(options: &Options, label: &str, url: &str, fault: bool) -> Result<Report, String> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(options.clients)
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| format!("an HTTP client: {e}"))?;
    if fault {
        warm(&client, url, options.keys).await?;
    }
    let queries_before = db_queries(&client, url).await?;
    let zipf = Arc::new(Zipf::new(options.keys, options.zipf_s));
    let run_for = Duration::from_secs(options.seconds);
    let started = Instant::now();
    let deadline = started + run_for;
    let fault_at = fault.then(|| started + run_for / 2);
    let done = Arc::new(AtomicU64::new(0));
    let shared_options = Arc::new(options.clone());
    let url_arc: Arc<str> = Arc::from(url);
    let clients: Vec<_> = (0..options.clients)
        .map(|id| {
            tokio::spawn(client_loop(
                id,
                client.clone(),
                Arc::clone(&url_arc),
                Arc::clone(&shared_options),
                Arc::clone(&zipf),
                deadline,
                fault_at,
                Arc::clone(&done),
            ))
        })
        .collect();

    let bar = indicatif::ProgressBar::new(options.seconds * 10);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{prefix:>24} [{bar:40}] {elapsed:>3} {msg}")
            .map_err(|e| e.to_string())?
            .progress_chars("=> "),
    );
    bar.set_prefix(label.to_owned());
    let mut faulted = false;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Some(at) = fault_at {
            if !faulted && Instant::now() >= at {
                set_fault(&client, url, options.fault).await?;
                faulted = true;
            }
        }
        let elapsed = started.elapsed().as_secs_f64().max(0.001);
        let n = done.load(Relaxed);
        bar.set_position((elapsed * 10.0) as u64);
        bar.set_message(format!(
            "{n} requests, {:.0}/s{}",
            n as f64 / elapsed,
            if faulted { ", database DOWN" } else { "" }
        ));
    }
    let mut tally = Tally::default();
    for client in clients {
        tally.merge(client.await.map_err(|e| format!("a client: {e}"))?);
    }
    let seconds = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    if faulted {
        set_fault(&client, url, "ok").await?;
    }
    let queries_after = db_queries(&client, url).await?;
    let requests = done.load(Relaxed);
    tally.latencies.sort_unstable();
    tally.after_fault.sort_unstable();
    eprintln!("{label:>24}: {requests} requests in {seconds:.1} s");
    Ok(Report {
        label: label.to_owned(),
        requests,
        seconds,
        latencies: tally.latencies,
        after_fault: tally.after_fault,
        errors: tally.errors,
        errors_after_fault: tally.errors_after_fault,
        reads_after_fault: tally.reads_after_fault,
        read_errors_after_fault: tally.read_errors_after_fault,
        not_modified: tally.not_modified,
        served: tally.served,
        db_queries: queries_after.saturating_sub(queries_before),
    })
}

// ------------------------------------------------------------ the table

fn percentile(sorted: &[u32], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted.len()) - 1;
    Some(f64::from(sorted[index]) / 1000.0)
}

fn ms(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.2} ms"))
}

fn share(part: u64, whole: u64) -> String {
    if whole == 0 {
        "-".to_owned()
    } else {
        format!("{:.1}%", part as f64 * 100.0 / whole as f64)
    }
}

fn print_table(options: &Options, reports: &[Report]) {
    let mut rows: Vec<(String, Vec<String>)> = Vec::new();
    let mut row = |name: &str, cell: &dyn Fn(&Report) -> String| {
        rows.push((name.to_owned(), reports.iter().map(cell).collect()));
    };
    let fault = options.scenario == Scenario::DbDown;
    let before = if fault { " (db up)" } else { "" };
    row("requests/s", &|r| {
        format!("{:.0}", r.requests as f64 / r.seconds)
    });
    row(&format!("p50{before}"), &|r| {
        ms(percentile(&r.latencies, 50.0))
    });
    row(&format!("p99{before}"), &|r| {
        ms(percentile(&r.latencies, 99.0))
    });
    row(&format!("p99.9{before}"), &|r| {
        ms(percentile(&r.latencies, 99.9))
    });
    if fault {
        row("p50 (db down)", &|r| ms(percentile(&r.after_fault, 50.0)));
        row("p99 (db down)", &|r| ms(percentile(&r.after_fault, 99.0)));
        row("p99.9 (db down)", &|r| ms(percentile(&r.after_fault, 99.9)));
        row("read errors (db down)", &|r| {
            share(r.read_errors_after_fault, r.reads_after_fault)
        });
        row("all errors (db down)", &|r| {
            share(r.errors_after_fault, r.after_fault.len() as u64)
        });
    }
    row("errors", &|r| share(r.errors, r.requests));
    row("db queries/request", &|r| {
        if r.requests == 0 {
            "-".to_owned()
        } else {
            format!("{:.3}", r.db_queries as f64 / r.requests as f64)
        }
    });
    row("304 Not Modified", &|r| share(r.not_modified, r.requests));
    for (i, name) in SERVED.iter().enumerate() {
        row(&format!("x-cache: {name}"), &|r| {
            share(r.served[i], r.requests)
        });
    }

    let width = rows.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
    let columns: Vec<usize> = reports
        .iter()
        .enumerate()
        .map(|(i, report)| {
            rows.iter()
                .map(|(_, cells)| cells[i].len())
                .chain([report.label.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    println!();
    println!(
        "{} clients, {} keys (Zipf s={}), {} s a run, {:.0}% writes, If-None-Match on {:.0}% of reads, DB latency {} ms",
        options.clients,
        options.keys,
        options.zipf_s,
        options.seconds,
        options.writes() * 100.0,
        options.inm * 100.0,
        options.db_latency(),
    );
    if fault {
        println!("the database's fault half-way: {}", options.fault);
    }
    let mut header = format!("{:width$}", "");
    for (report, w) in reports.iter().zip(&columns) {
        header.push_str(&format!("  {:>w$}", report.label));
    }
    println!("{header}");
    println!("{}", "-".repeat(header.len()));
    for (name, cells) in &rows {
        let mut line = format!("{name:width$}");
        for (cell, w) in cells.iter().zip(&columns) {
            line.push_str(&format!("  {cell:>w$}"));
        }
        println!("{line}");
    }
}

async fn run(options: Options) -> Result<(), String> {
    let fault = options.scenario == Scenario::DbDown;
    let mut reports = Vec::new();
    if let Some(url) = &options.url {
        reports.push(load(&options, url, url, fault).await?);
    } else {
        let runs: Vec<(&str, Vec<(&str, &str)>)> = match options.scenario {
            Scenario::Compare => vec![
                ("herdcache", vec![]),
                ("HERDCACHE_DISABLED=1", vec![("HERDCACHE_DISABLED", "1")]),
            ],
            Scenario::DbDown => vec![
                ("herdcache, ttl 1s", vec![("CACHE_PROFILE", "short")]),
                ("HERDCACHE_DISABLED=1", vec![("HERDCACHE_DISABLED", "1")]),
            ],
            Scenario::Expiry => vec![
                ("ttl 1s + swr 2s", vec![("CACHE_PROFILE", "short")]),
                ("ttl 1s, no swr", vec![("CACHE_PROFILE", "short-noswr")]),
            ],
        };
        // One at a time: the runs do not share the machine.
        for (label, env) in runs {
            let instance = Instance::start(&options, &env)?;
            reports.push(load(&options, label, &instance.url, fault).await?);
        }
    }
    print_table(&options, &reports);
    Ok(())
}
