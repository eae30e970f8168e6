//! A fault-injection soak with a history checker (Jepsen-style, on one
//! machine): three instance processes (this test binary run again as
//! `soak_child`) against one `redis-server`, each through a fault proxy of
//! its own; an origin whose values carry a version (a file per key); and a
//! nemesis that cuts, blackholes and slows random instances' links and
//! pauses or restarts Redis, for random short spans.
//!
//! Each instance runs concurrent reads, origin writes followed by
//! `_invalidate`, `_expire`, `invalidate_tag` or `invalidate_all`, and
//! records every operation (instance, key, start, end, version, error). The
//! checker then reports:
//! - stale reads: a read that returned a version older than one whose
//!   invalidation was acknowledged before the read began, beyond the
//!   documented bound for the faults in force (none on the writer's own
//!   instance; bus delivery on the others; a heal plus replay and resubscribe
//!   when a fault touched the writer's or the reader's link or Redis);
//! - caller errors;
//! - calls longer than the documented worst case;
//! - and origin calls per written version.
//!
//! `HERDCACHE_SOAK_SECS` (default 20), `HERDCACHE_SOAK_SEED` (default 1);
//! `HERDCACHE_SOAK_FAULTS` narrows the nemesis to some kinds (a
//! comma-separated list of cut, blackhole, delay, pause, restart), to find
//! which one breaks; `HERDCACHE_SOAK_NO_REPLAY=1` switches the replay of
//! kept invalidations off, to prove that the checker catches what it loses
//! (then the test expects violations). Run with `--features redis`:
//!
//! ```text
//! HERDCACHE_SOAK_SECS=300 HERDCACHE_SOAK_SEED=7 cargo test --features redis --test soak -- --nocapture
//! ```
#![cfg(feature = "redis")]

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use herdcache::cached;
use herdcache_test_support::{FaultProxy, RedisServer};

const INSTANCES: usize = 3;
const KEYS: u64 = 12;
const TASKS_PER_INSTANCE: usize = 4;
/// The Redis tier's settings in the children, and what they bound.
const REDIS_TIMEOUT: Duration = Duration::from_millis(100);
const MAX_WAIT: Duration = Duration::from_secs(2);
const LOCK_TTL: Duration = Duration::from_secs(1);
/// The documented worst case of one call: `max_wait` waiting for another
/// instance's load, and at most ten Redis calls each bounded by the
/// tier's timeout, plus a second of slack for a loaded 2-core machine.
const WORST_CALL: Duration = Duration::from_millis(2_000 + 10 * 100 + 1_000);
/// How long after an acknowledged invalidation another instance may still
/// serve the old value with no fault in force: the bus's delivery.
const BUS_GRACE: Duration = Duration::from_millis(500);
/// How long after a fault that touched the writer, the reader or Redis
/// heals: the replay's backoff (≤ 1 s), the bus's resubscribe backoff
/// (≤ 1 s) and a reconnect, with slack.
const HEAL_GRACE: Duration = Duration::from_secs(3);

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is set by the parent"))
}

/// A small seeded generator (xorshift64*): the same seed, the same choices.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.below(high - low + 1)
    }
}

// ---- the instance (a child process) ----

/// The origin: a file per key holding its version.
fn origin_dir() -> PathBuf {
    PathBuf::from(env("HERDCACHE_SOAK_ORIGIN"))
}

fn origin_version(dir: &Path, key: u64) -> std::io::Result<u64> {
    match std::fs::read_to_string(dir.join(key.to_string())) {
        Ok(text) => Ok(text.trim().parse().unwrap_or(0)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(error) => Err(error),
    }
}

/// Writes the next version of `key` (only its owner writes it, one task
/// at a time).
fn write_origin(dir: &Path, key: u64) -> u64 {
    static WRITING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = WRITING.lock().unwrap();
    let next = origin_version(dir, key).unwrap() + 1;
    let temporary = dir.join(format!("{key}.{}", std::process::id()));
    std::fs::write(&temporary, next.to_string()).unwrap();
    std::fs::rename(&temporary, dir.join(key.to_string())).unwrap();
    next
}

/// Loader calls, by (key, version), counted in this process.
static LOADS: std::sync::Mutex<BTreeMap<(u64, u64), u64>> = std::sync::Mutex::new(BTreeMap::new());

#[cached(
    ttl = "30s",
    fail_safe = "5m",
    distributed = true,
    tags = ["soak:{key}"],
    name = "soak.item"
)]
async fn item(key: u64) -> Result<u64, std::io::Error> {
    let version = origin_version(&origin_dir(), key)?;
    *LOADS.lock().unwrap().entry((key, version)).or_default() += 1;
    Ok(version)
}

/// One line of the history.
enum Event {
    Read {
        key: u64,
        start: u64,
        end: u64,
        version: Result<u64, String>,
    },
    /// An origin write of `version`, then its invalidation (`how`),
    /// acknowledged at `ack`.
    Write {
        key: u64,
        version: u64,
        start: u64,
        ack: u64,
        how: &'static str,
    },
}

async fn run_task(instance: u64, task: u64, seed: u64, until: u64) -> Vec<Event> {
    let dir = origin_dir();
    let mut rng = Rng::new(seed ^ (instance << 32) ^ (task << 48));
    let mut events = Vec::new();
    while now_us() < until {
        let key = rng.below(KEYS);
        let roll = rng.below(100);
        if roll < 80 || key % INSTANCES as u64 != instance {
            let start = now_us();
            let version = item(key).await.map_err(|error| error.to_string());
            events.push(Event::Read {
                key,
                start,
                end: now_us(),
                version,
            });
        } else {
            let start = now_us();
            let version = write_origin(&dir, key);
            let how = match roll {
                80..=90 => {
                    item_invalidate(key).await;
                    "invalidate"
                }
                91..=95 => {
                    item_expire(key).await;
                    "expire"
                }
                96..=98 => {
                    herdcache::invalidate_tag(&format!("soak:{key}")).await;
                    "tag"
                }
                _ => {
                    item_cache().invalidate_all().await;
                    "invalidate_all"
                }
            };
            events.push(Event::Write {
                key,
                version,
                start,
                ack: now_us(),
                how,
            });
        }
        tokio::time::sleep(Duration::from_millis(rng.between(1, 5))).await;
    }
    events
}

/// What a child does: install the tier (through its proxy), run the tasks
/// until the deadline, write its history.
#[test]
fn soak_child() {
    let Ok(instance) = std::env::var("HERDCACHE_SOAK_INSTANCE") else {
        return;
    };
    let instance: u64 = instance.parse().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let tier = herdcache::Runtime::builder()
            .redis(env("HERDCACHE_SOAK_URL"))
            .namespace("soak")
            .timeout(REDIS_TIMEOUT)
            .max_wait(MAX_WAIT)
            .lock_ttl(LOCK_TTL)
            .build()
            .unwrap();
        if std::env::var("HERDCACHE_SOAK_NO_REPLAY").is_ok() {
            tier.replay_switch(false);
        }
        herdcache::Runtime::install(Arc::clone(&tier)).unwrap();
        let seed: u64 = env("HERDCACHE_SOAK_SEED").parse().unwrap();
        let until: u64 = env("HERDCACHE_SOAK_UNTIL").parse().unwrap();
        let tasks: Vec<_> = (0..TASKS_PER_INSTANCE as u64)
            .map(|task| tokio::spawn(run_task(instance, task, seed, until)))
            .collect();
        let mut lines = Vec::new();
        for task in tasks {
            for event in task.await.unwrap() {
                lines.push(match event {
                    Event::Read {
                        key,
                        start,
                        end,
                        version,
                    } => match version {
                        Ok(version) => format!("R {instance} {key} {start} {end} {version}"),
                        Err(error) => format!("E {instance} {key} {start} {end} {error}"),
                    },
                    Event::Write {
                        key,
                        version,
                        start,
                        ack,
                        how,
                    } => format!("W {instance} {key} {start} {ack} {version} {how}"),
                });
            }
        }
        for ((key, version), calls) in LOADS.lock().unwrap().iter() {
            lines.push(format!("L {instance} {key} {version} {calls}"));
        }
        // Whatever is still kept is replayed before the history is final.
        let left = herdcache::flush_fleet(Duration::from_secs(10)).await;
        lines.push(format!("P {instance} {left}"));
        std::fs::write(env("HERDCACHE_SOAK_HISTORY"), lines.join("\n") + "\n").unwrap();
    });
}

// ---- the parent: nemesis and checker ----

/// A fault in force from `start` to `end`: on one instance's link, or on
/// Redis itself (`None`: every instance).
#[derive(Clone, Debug)]
struct Fault {
    on: Option<u64>,
    what: String,
    start: u64,
    end: u64,
}

/// Injects random faults until `until`; returns what it did.
fn nemesis(
    server: &mut RedisServer,
    proxies: &[FaultProxy],
    rng: &mut Rng,
    until: u64,
) -> Vec<Fault> {
    let mut faults = Vec::new();
    // Quiet at the start and the end: the fleet warms up, and the last
    // replays land before the children stop.
    let stop = until.saturating_sub(3_000_000);
    std::thread::sleep(Duration::from_millis(1_000));
    // HERDCACHE_SOAK_FAULTS narrows the kinds (a comma-separated list of
    // cut, blackhole, delay, pause, restart), to find which one breaks.
    let kinds = std::env::var("HERDCACHE_SOAK_FAULTS")
        .unwrap_or_else(|_| "cut,blackhole,delay,pause,restart".to_owned());
    let allowed = |roll: u64| {
        let kind = match roll {
            0..=29 => "cut",
            30..=54 => "blackhole",
            55..=79 => "delay",
            80..=91 => "pause",
            _ => "restart",
        };
        kinds.split(',').any(|allowed| allowed.trim() == kind)
    };
    while now_us() < stop {
        let roll = rng.below(100);
        if !allowed(roll) {
            continue;
        }
        let hold = Duration::from_millis(rng.between(200, 1_500));
        let start = now_us();
        let (on, what) = match roll {
            0..=29 => {
                let on = rng.below(INSTANCES as u64);
                proxies[on as usize].cut();
                (Some(on), "cut".to_owned())
            }
            30..=54 => {
                let on = rng.below(INSTANCES as u64);
                proxies[on as usize].blackhole();
                (Some(on), "blackhole".to_owned())
            }
            55..=79 => {
                let on = rng.below(INSTANCES as u64);
                let by = rng.between(5, 150);
                proxies[on as usize].delay(Duration::from_millis(by));
                (Some(on), format!("delay {by}ms"))
            }
            80..=91 => {
                server.pause();
                (None, "redis paused".to_owned())
            }
            _ => {
                let port = server.port();
                server.stop();
                *server = RedisServer::start_on(port).unwrap();
                (None, "redis restarted".to_owned())
            }
        };
        if what != "redis restarted" {
            std::thread::sleep(hold);
        }
        match on {
            Some(on) => proxies[on as usize].heal(),
            None if what == "redis paused" => server.resume(),
            None => {}
        }
        faults.push(Fault {
            on,
            what,
            start,
            end: now_us(),
        });
        std::thread::sleep(Duration::from_millis(rng.between(100, 1_200)));
    }
    faults
}

#[derive(Default, Debug)]
struct Report {
    reads: u64,
    writes: BTreeMap<&'static str, u64>,
    stale_within_bounds: u64,
    stale_beyond_bounds: Vec<String>,
    errors: Vec<String>,
    too_long: Vec<String>,
    longest_call_us: u64,
    origin_calls: u64,
    versions_written: u64,
    pending_at_exit: u64,
}

struct Write {
    instance: u64,
    version: u64,
    ack: u64,
    how: String,
}

fn check(histories: &[String], faults: &[Fault]) -> Report {
    let mut report = Report::default();
    let mut writes: HashMap<u64, Vec<Write>> = HashMap::new();
    let mut reads = Vec::new();
    for line in histories.iter().flat_map(|history| history.lines()) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let number = |i: usize| fields[i].parse::<u64>().unwrap();
        match fields[0] {
            "R" => reads.push((number(1), number(2), number(3), number(4), number(5))),
            "E" => report.errors.push(line.to_owned()),
            "W" => {
                let how = match fields[6] {
                    "invalidate" => "invalidate",
                    "expire" => "expire",
                    "tag" => "tag",
                    _ => "invalidate_all",
                };
                *report.writes.entry(how).or_default() += 1;
                report.versions_written += 1;
                writes.entry(number(2)).or_default().push(Write {
                    instance: number(1),
                    version: number(5),
                    ack: number(4),
                    how: fields[6].to_owned(),
                });
            }
            "L" => report.origin_calls += number(4),
            "P" => report.pending_at_exit += number(2),
            _ => panic!("unknown history line {line}"),
        }
    }
    let grace = |us: Duration| us.as_micros() as u64;
    for (instance, key, start, end, version) in reads {
        report.reads += 1;
        let took = end.saturating_sub(start);
        report.longest_call_us = report.longest_call_us.max(took);
        if took > grace(WORST_CALL) {
            report
                .too_long
                .push(format!("instance {instance} key {key}: {took} µs"));
        }
        // The acknowledged writes this read must see, the earliest first.
        let Some(missed) = writes.get(&key).and_then(|writes| {
            writes
                .iter()
                .filter(|write| write.ack < start && write.version > version)
                .min_by_key(|write| write.ack)
        }) else {
            continue;
        };
        // On the writer's own instance: never stale. Elsewhere: the bus's
        // delivery, or a heal's grace after a fault on either link or on
        // Redis that overlapped the window.
        let deadline = if missed.instance == instance {
            missed.ack
        } else {
            let touched = faults
                .iter()
                .filter(|fault| {
                    fault.on.is_none()
                        || fault.on == Some(instance)
                        || fault.on == Some(missed.instance)
                })
                .filter(|fault| fault.start < start && fault.end + grace(HEAL_GRACE) > missed.ack)
                .map(|fault| fault.end + grace(HEAL_GRACE))
                .max()
                .unwrap_or(0);
            (missed.ack + grace(BUS_GRACE)).max(touched)
        };
        if start < deadline {
            report.stale_within_bounds += 1;
        } else {
            let in_force: Vec<String> = faults
                .iter()
                .filter(|fault| fault.start < start && fault.end + grace(HEAL_GRACE) > missed.ack)
                .map(|fault| {
                    format!(
                        "{} on {:?} {:+} ms to {:+} ms",
                        fault.what,
                        fault.on,
                        (fault.start as i64 - missed.ack as i64) / 1_000,
                        (fault.end as i64 - missed.ack as i64) / 1_000
                    )
                })
                .collect();
            report.stale_beyond_bounds.push(format!(
                "instance {instance} read key {key} = v{version} at +{} ms after v{} ({} by instance {}) was acknowledged; faults near: {in_force:?}",
                (start - missed.ack) / 1_000,
                missed.version,
                missed.how,
                missed.instance
            ));
        }
    }
    report
}

#[test]
fn soak() {
    if std::env::var("HERDCACHE_SOAK_INSTANCE").is_ok() {
        return;
    }
    let seconds: u64 = std::env::var("HERDCACHE_SOAK_SECS")
        .ok()
        .and_then(|secs| secs.parse().ok())
        .unwrap_or(20);
    let seed: u64 = std::env::var("HERDCACHE_SOAK_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or(1);
    let no_replay = std::env::var("HERDCACHE_SOAK_NO_REPLAY").is_ok();
    let mut server = RedisServer::start().unwrap();
    let proxies: Vec<FaultProxy> = (0..INSTANCES)
        .map(|_| FaultProxy::start(server.port()).unwrap())
        .collect();
    let dir = std::env::temp_dir().join(format!("herdcache-soak-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // The children start, connect and warm up within the first second.
    let until = now_us() + seconds * 1_000_000 + 1_000_000;
    let children: Vec<_> = (0..INSTANCES)
        .map(|instance| {
            let mut command = Command::new(std::env::current_exe().unwrap());
            command
                .args([
                    "--exact",
                    "soak_child",
                    "--nocapture",
                    "--test-threads",
                    "1",
                ])
                .env("HERDCACHE_SOAK_INSTANCE", instance.to_string())
                .env("HERDCACHE_SOAK_URL", proxies[instance].url())
                .env("HERDCACHE_SOAK_ORIGIN", &dir)
                .env(
                    "HERDCACHE_SOAK_HISTORY",
                    dir.join(format!("history-{instance}")),
                )
                .env("HERDCACHE_SOAK_SEED", seed.to_string())
                .env("HERDCACHE_SOAK_UNTIL", until.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            command.spawn().unwrap()
        })
        .collect();
    let mut rng = Rng::new(seed);
    let faults = nemesis(&mut server, &proxies, &mut rng, until);
    let mut histories = Vec::new();
    for (instance, child) in children.into_iter().enumerate() {
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "instance {instance} failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        histories.push(std::fs::read_to_string(dir.join(format!("history-{instance}"))).unwrap());
    }
    let _ = std::fs::remove_dir_all(&dir);
    let report = check(&histories, &faults);
    let mut fault_counts: BTreeMap<&str, u64> = BTreeMap::new();
    for fault in &faults {
        *fault_counts
            .entry(fault.what.split_whitespace().next().unwrap_or(""))
            .or_default() += 1;
    }
    println!(
        "soak: {seconds} s, seed {seed}, {INSTANCES} instances, replay {}",
        if no_replay { "OFF" } else { "on" }
    );
    println!("| measure | value |\n|---|---|");
    println!("| faults injected | {} ({fault_counts:?}) |", faults.len());
    println!("| reads | {} |", report.reads);
    println!("| writes, by invalidation | {:?} |", report.writes);
    println!(
        "| stale reads within the documented bounds | {} |",
        report.stale_within_bounds
    );
    println!(
        "| stale reads beyond them | {} |",
        report.stale_beyond_bounds.len()
    );
    println!("| caller errors | {} |", report.errors.len());
    println!(
        "| calls over the worst case ({} ms) | {} |",
        WORST_CALL.as_millis(),
        report.too_long.len()
    );
    println!("| longest call | {} ms |", report.longest_call_us / 1_000);
    println!(
        "| origin calls per written version | {:.2} ({} calls, {} versions) |",
        report.origin_calls as f64 / report.versions_written.max(1) as f64,
        report.origin_calls,
        report.versions_written
    );
    println!(
        "| operations still pending at exit | {} |",
        report.pending_at_exit
    );
    for violation in report.stale_beyond_bounds.iter().take(10) {
        println!("STALE {violation}");
    }
    for error in report.errors.iter().take(10) {
        println!("ERROR {error}");
    }
    for call in report.too_long.iter().take(10) {
        println!("SLOW {call}");
    }
    assert!(report.reads > 100, "the soak ran: {} reads", report.reads);
    if no_replay {
        assert!(
            !report.stale_beyond_bounds.is_empty(),
            "with the replay off, the checker reports the stale reads it lets through"
        );
        return;
    }
    assert!(
        report.stale_beyond_bounds.is_empty()
            && report.errors.is_empty()
            && report.too_long.is_empty()
            && report.pending_at_exit == 0,
        "the fleet broke its word (see the table above)"
    );
}
