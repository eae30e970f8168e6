//! The fleet half of `#[idempotent]` (the crate root picks this file with
//! the Redis tier): records in Redis, shared by every instance.
//!
//! A record is one Redis hash at `{ns}:idem:{digest}`, the digest being the
//! hex xxh3-128 of the function's name, the scope and the key, so no key or
//! scope text reaches a key name, and every script touches one key (one
//! Cluster slot). Its fields:
//!
//! ```text
//! s  state: p (in progress) or d (done)
//! f  the request's fingerprint, 32 hex digits
//! t  the claim's fencing token (unique per claim)
//! l  in progress: the lease's end, ms since the Unix epoch by Redis TIME
//! x  the record's end (claim + ttl, then completion + ttl), same clock
//! o  done: the outcome (format byte 1, 0 = Ok / 1 = Err, postcard)
//! ```
//!
//! Every decision is one Lua script judged by Redis `TIME`, so instances
//! whose clocks disagree still agree on leases and expiry; the record's
//! `PEXPIRE` only reclaims memory. Claim: take an absent or expired record,
//! take over one whose lease ran out (same fingerprint only), or answer
//! what is there. While the operation runs, a heartbeat extends the lease
//! every third of it. Completion is a compare-and-set on the token, so a
//! holder whose lease was lost and taken over does not overwrite the newer
//! claim; release is a compare-and-delete on it. A duplicate whose record
//! is in progress elsewhere polls with jittered backoff up to `wait`.

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::time::Instant;

use crate::expiry::random_unit;
use crate::idempotent::{
    Count, IdemFailure, Idempotency, IdempotencyError, IdempotentError, Landing,
};
use crate::outcome::FailureShare;
use crate::redis::RedisTier;

/// What an idempotent function's outcome must be: with the `redis` feature,
/// `serde::Serialize + DeserializeOwned` (a record in Redis stores it) and
/// `Clone + Send + Sync + 'static` (every duplicate gets a copy). The same
/// of an error type whose errors are stored (`store_err`).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be the outcome of an idempotent function: it needs `Clone + Send + Sync + 'static`, and `serde::Serialize + serde::de::DeserializeOwned` to be stored in Redis",
    label = "the outcome of this idempotent function",
    note = "derive them: `#[derive(Clone, serde::Serialize, serde::Deserialize)]`"
)]
pub trait StoredOutcome: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {}

impl<T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static> StoredOutcome for T {}

/// How an `Ok` value travels: postcard, appended to a buffer.
pub(crate) struct OkWire<T> {
    encode: fn(&T, Vec<u8>) -> Option<Vec<u8>>,
    decode: fn(&[u8]) -> Option<T>,
}

impl<T: StoredOutcome> OkWire<T> {
    pub(crate) fn new() -> Self {
        OkWire {
            encode: |value, buffer| postcard::to_extend(value, buffer).ok(),
            decode: |bytes| postcard::from_bytes(bytes).ok(),
        }
    }
}

/// How a final error travels: as [`OkWire`], made only by `store_err`.
pub(crate) struct ErrWire<E> {
    encode: fn(&E, Vec<u8>) -> Option<Vec<u8>>,
    decode: fn(&[u8]) -> Option<E>,
}

impl<E: StoredOutcome> ErrWire<E> {
    pub(crate) fn new() -> Self {
        ErrWire {
            encode: |error, buffer| postcard::to_extend(error, buffer).ok(),
            decode: |bytes| postcard::from_bytes(bytes).ok(),
        }
    }
}

/// The outcome format's first byte.
const FORMAT: u8 = 1;

fn encode<T, E>(
    ok: &OkWire<T>,
    err: Option<&ErrWire<E>>,
    outcome: &Result<T, E>,
) -> Option<Vec<u8>> {
    match outcome {
        Ok(value) => (ok.encode)(value, vec![FORMAT, 0]),
        Err(error) => (err?.encode)(error, vec![FORMAT, 1]),
    }
}

/// `None` for anything but an outcome this function wrote: another format,
/// a short buffer, bytes postcard cannot read as the type, or an `Err`
/// from a function that stores none.
fn decode<T, E>(ok: &OkWire<T>, err: Option<&ErrWire<E>>, bytes: &[u8]) -> Option<Result<T, E>> {
    match bytes {
        [FORMAT, 0, rest @ ..] => (ok.decode)(rest).map(Ok),
        [FORMAT, 1, rest @ ..] => (err?.decode)(rest).map(Err),
        _ => None,
    }
}

/// The Redis tier a function's records live in.
pub(crate) struct Fleet {
    tier: Arc<RedisTier>,
}

/// The installed tier, if any (deciding it, as a `distributed` function's
/// first call does).
pub(crate) fn installed_fleet() -> Option<Fleet> {
    crate::redis::installed().map(|tier| Fleet { tier })
}

impl<T, E> Idempotency<T, E>
where
    T: StoredOutcome,
    E: IdempotentError,
{
    /// These records in `tier` rather than the installed one: for tests,
    /// which stand for several instances in one process with several
    /// tiers. Call before the first `run`.
    #[doc(hidden)]
    #[must_use]
    pub fn with_tier(self, tier: Arc<RedisTier>) -> Self {
        let _ = self.fleet.set(Some(Fleet { tier }));
        self
    }
}

/// What a claim found.
enum Claim {
    /// This run holds the record now; `took_over` when it took over one
    /// whose lease had run out.
    Claimed { took_over: bool },
    /// Completed: the stored outcome.
    Done(Vec<u8>),
    /// In progress elsewhere, its lease running out in `retry_after`.
    Busy { retry_after: Duration },
    /// Live, with another fingerprint.
    Mismatch,
    /// A record this code did not write (or a key of another type).
    Corrupt,
    /// Redis did not answer (or the breaker is open).
    Failed,
}

/// Now, in ms since the Unix epoch, by the Redis server's clock.
const NOW: &str = "local function now_ms() \
    local t = redis.call('TIME') \
    return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) \
end ";

/// KEYS[1] the record; ARGV fingerprint, token, lease ms, ttl ms. Returns
/// {code, retry_after ms, outcome}: 0 claimed, 1 taken over, 2 done, 3 in
/// progress, 4 another fingerprint, 5 corrupt. (The outcome is always a
/// string: a Lua array ends at its first nil.)
static CLAIM: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{NOW}
        local now = now_ms()
        local took = 0
        if redis.call('EXISTS', KEYS[1]) == 1 then
            if redis.call('TYPE', KEYS[1]).ok ~= 'hash' then return {{5, 0, ''}} end
            local r = redis.call('HMGET', KEYS[1], 's', 'f', 'l', 'x', 'o')
            local state, fp, lease, expires = r[1], r[2], tonumber(r[3]), tonumber(r[4])
            if (state ~= 'p' and state ~= 'd') or not fp or not expires
                or (state == 'p' and not lease) then
                return {{5, 0, ''}}
            end
            if expires > now then
                if fp ~= ARGV[1] then return {{4, 0, ''}} end
                if state == 'd' then return {{2, 0, r[5] or ''}} end
                if lease > now then return {{3, lease - now, ''}} end
                took = 1
            end
            redis.call('DEL', KEYS[1])
        end
        redis.call('HSET', KEYS[1], 's', 'p', 'f', ARGV[1], 't', ARGV[2],
            'l', now + tonumber(ARGV[3]), 'x', now + tonumber(ARGV[4]))
        redis.call('PEXPIRE', KEYS[1], ARGV[4])
        return {{took, 0, ''}}"
    )
});

/// KEYS[1] the record; ARGV token, lease ms. 1 extended, 0 not held.
static EXTEND: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{NOW}
        if redis.call('TYPE', KEYS[1]).ok ~= 'hash' then return 0 end
        local r = redis.call('HMGET', KEYS[1], 's', 't', 'x')
        if r[1] ~= 'p' or r[2] ~= ARGV[1] then return 0 end
        local now = now_ms()
        local lease = now + tonumber(ARGV[2])
        local expires = math.max(tonumber(r[3]) or 0, lease)
        redis.call('HSET', KEYS[1], 'l', lease, 'x', expires)
        redis.call('PEXPIRE', KEYS[1], expires - now)
        return 1"
    )
});

/// KEYS[1] the record; ARGV token, outcome, ttl ms. 1 stored, 0 the claim
/// is not this token's any more (nothing written).
static COMPLETE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{NOW}
        if redis.call('TYPE', KEYS[1]).ok ~= 'hash' then return 0 end
        local r = redis.call('HMGET', KEYS[1], 's', 't')
        if r[1] ~= 'p' or r[2] ~= ARGV[1] then return 0 end
        local now = now_ms()
        redis.call('HSET', KEYS[1], 's', 'd', 'o', ARGV[2], 'x', now + tonumber(ARGV[3]))
        redis.call('HDEL', KEYS[1], 'l')
        redis.call('PEXPIRE', KEYS[1], ARGV[3])
        return 1"
    )
});

/// KEYS[1] the record; ARGV token. 1 deleted, 0 not this token's claim.
static RELEASE: LazyLock<String> = LazyLock::new(|| {
    String::from(
        "if redis.call('TYPE', KEYS[1]).ok ~= 'hash' then return 0 end
        local r = redis.call('HMGET', KEYS[1], 's', 't')
        if r[1] ~= 'p' or r[2] ~= ARGV[1] then return 0 end
        return redis.call('DEL', KEYS[1])",
    )
});

/// Claim tokens made by this process.
static TOKENS: AtomicU64 = AtomicU64::new(0);

/// A span in ms for a script, at least 1 and at most a century: Redis
/// refuses a `PEXPIRE` whose end overflows its clock, and a record kept a
/// century is kept for ever.
fn millis(duration: Duration) -> Vec<u8> {
    const CENTURY_MS: u64 = 100 * 365 * 86_400 * 1000;
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .clamp(1, CENTURY_MS)
        .to_string()
        .into_bytes()
}

impl Fleet {
    /// The record's key: `{ns}:idem:{digest}`.
    fn record_key(&self, name: &str, scope: u128, key: &str) -> String {
        let mut digest = xxhash_rust::xxh3::Xxh3::new();
        // Lengths first, so that no two (name, key) pairs run together.
        digest.update(&(name.len() as u64).to_le_bytes());
        digest.update(name.as_bytes());
        digest.update(&scope.to_le_bytes());
        digest.update(key.as_bytes());
        format!("{}:idem:{:032x}", self.tier.namespace(), digest.digest128())
    }

    /// A token no other claim has: this tier's node, a count, and a random
    /// draw (two processes may share a node id only by chance).
    fn token(&self) -> String {
        format!(
            "{:016x}-{:x}-{:013x}",
            self.tier.node(),
            TOKENS.fetch_add(1, Ordering::Relaxed),
            (random_unit() * (1u64 << 52) as f64) as u64
        )
    }

    async fn eval<R: redis::FromRedisValue>(
        &self,
        script: &'static str,
        key: &str,
        args: &[&[u8]],
    ) -> Option<R> {
        // EVAL with the text: the scripts are a few hundred bytes, and
        // EVALSHA would need a second round trip whenever Redis restarts.
        let mut command = redis::cmd("EVAL");
        command.arg(script).arg(1).arg(key);
        for arg in args {
            command.arg(*arg);
        }
        self.tier
            .attempt(|mut connection| async move { command.query_async(&mut connection).await })
            .await
    }

    async fn claim(
        &self,
        key: &str,
        fingerprint: &str,
        token: &str,
        lease: Duration,
        ttl: Duration,
    ) -> Claim {
        let answer = self
            .eval::<(i64, i64, Vec<u8>)>(
                &CLAIM,
                key,
                &[
                    fingerprint.as_bytes(),
                    token.as_bytes(),
                    &millis(lease),
                    &millis(ttl),
                ],
            )
            .await;
        match answer {
            Some((0, _, _)) => Claim::Claimed { took_over: false },
            Some((1, _, _)) => Claim::Claimed { took_over: true },
            Some((2, _, outcome)) => Claim::Done(outcome),
            Some((3, ms, _)) => Claim::Busy {
                retry_after: Duration::from_millis(u64::try_from(ms).unwrap_or(0).max(1)),
            },
            Some((4, _, _)) => Claim::Mismatch,
            Some(_) => Claim::Corrupt,
            None => Claim::Failed,
        }
    }

    async fn extend(&self, key: &str, token: &str, lease: Duration) -> Option<bool> {
        self.eval::<i64>(&EXTEND, key, &[token.as_bytes(), &millis(lease)])
            .await
            .map(|extended| extended == 1)
    }

    async fn complete(
        &self,
        key: &str,
        token: &str,
        outcome: &[u8],
        ttl: Duration,
    ) -> Option<bool> {
        self.eval::<i64>(&COMPLETE, key, &[token.as_bytes(), outcome, &millis(ttl)])
            .await
            .map(|stored| stored == 1)
    }

    async fn release(&self, key: &str, token: &str) -> Option<bool> {
        self.eval::<i64>(&RELEASE, key, &[token.as_bytes()])
            .await
            .map(|deleted| deleted == 1)
    }
}

/// `span` from now, or a far future for a span past what `Instant` holds
/// (a `wait` of `Duration::MAX` must not panic).
fn later(span: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(span)
        .unwrap_or_else(|| now + Duration::from_secs(30 * 365 * 86_400))
}

/// The first pause of a duplicate polling for another instance's outcome.
const FIRST_POLL: Duration = Duration::from_millis(10);
/// The longest pause between polls.
const LAST_POLL: Duration = Duration::from_millis(250);

/// One run of `operation` for record `id` through the fleet's records: the
/// claim (or the answer already there, or the wait for another instance's),
/// the run with its heartbeat, and the completion or release.
pub(crate) async fn drive<T, E, Op, Fut>(
    idempotency: &'static Idempotency<T, E>,
    fleet: &'static Fleet,
    id: &(u128, String),
    fingerprint: u128,
    operation: Op,
) -> Landing<T, E>
where
    T: StoredOutcome,
    E: IdempotentError,
    Op: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
{
    let config = &idempotency.config;
    let key = fleet.record_key(config.name, id.0, &id.1);
    let fingerprint = format!("{fingerprint:032x}");
    let token = fleet.token();
    let deadline = later(config.wait);
    let mut pause = FIRST_POLL;
    loop {
        match fleet
            .claim(&key, &fingerprint, &token, config.lease, config.ttl)
            .await
        {
            Claim::Claimed { took_over } => {
                if took_over {
                    idempotency.counters.add(Count::Takeovers);
                }
                return run_claimed(idempotency, fleet, &key, &token, operation).await;
            }
            Claim::Done(bytes) => {
                return match decode(&idempotency.ok_wire, config.err_wire.as_ref(), &bytes) {
                    Some(outcome) => Landing::Replayed(outcome),
                    None => corrupt(idempotency),
                }
            }
            Claim::Busy { retry_after } => {
                let now = Instant::now();
                if now >= deadline {
                    return Landing::Refused(IdempotencyError::InProgress { retry_after });
                }
                // Jittered, so that the duplicates of a fleet do not poll
                // in step.
                let jittered = pause.mul_f64(0.5 + random_unit());
                tokio::time::sleep(jittered.min(deadline - now)).await;
                pause = (pause * 2).min(LAST_POLL);
            }
            Claim::Mismatch => return Landing::Refused(IdempotencyError::PayloadMismatch),
            Claim::Corrupt => return corrupt(idempotency),
            Claim::Failed if config.fail_open => {
                // Unrecorded: Redis cannot say whether it ran before, and
                // the function chose running twice over not running.
                return match idempotency.run_operation(operation).await {
                    Ok(outcome) => Landing::Ran(outcome),
                    Err(payload) => Landing::Panicked(Mutex::new(Some(payload))),
                };
            }
            Claim::Failed => return Landing::Refused(IdempotencyError::Unavailable),
        }
    }
}

/// A record this code cannot read: refused, never run (running it could
/// run a request a second time), never a panic.
fn corrupt<T, E>(idempotency: &Idempotency<T, E>) -> Landing<T, E> {
    idempotency.counters.add(Count::Corrupt);
    tracing::warn!(
        target: "herdcache",
        function = idempotency.config.name,
        "an idempotency record in Redis cannot be decoded: the request is refused as Unavailable"
    );
    Landing::Refused(IdempotencyError::Unavailable)
}

/// Runs the claimed operation with its heartbeat, then stores or releases.
async fn run_claimed<T, E, Op, Fut>(
    idempotency: &'static Idempotency<T, E>,
    fleet: &Fleet,
    key: &str,
    token: &str,
    operation: Op,
) -> Landing<T, E>
where
    T: StoredOutcome,
    E: IdempotentError,
    Op: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let config = &idempotency.config;
    let ran = tokio::select! {
        biased;
        ran = idempotency.run_operation(operation) => ran,
        never = heartbeat(fleet, key, token, config.lease) => match never {},
    };
    let outcome = match ran {
        Ok(outcome) => outcome,
        Err(payload) => {
            release(idempotency, fleet, key, token).await;
            return Landing::Panicked(Mutex::new(Some(payload)));
        }
    };
    let keep = match &outcome {
        Ok(_) => true,
        Err(error) => idempotency.is_final(error),
    };
    if !keep {
        release(idempotency, fleet, key, token).await;
        return Landing::Ran(outcome);
    }
    let Some(bytes) = encode(&idempotency.ok_wire, config.err_wire.as_ref(), &outcome) else {
        tracing::warn!(
            target: "herdcache",
            function = config.name,
            "an idempotent outcome cannot be encoded: not stored, the claim is released"
        );
        idempotency.counters.add(Count::StoreFailures);
        release(idempotency, fleet, key, token).await;
        return Landing::Ran(outcome);
    };
    // Redis may be unreachable for a moment: keep trying (and keep the
    // lease) for a few leases, rather than let a retry run it again.
    let stored = tokio::select! {
        biased;
        stored = complete(fleet, key, token, &bytes, config.ttl, config.lease.saturating_mul(3)) => stored,
        never = heartbeat(fleet, key, token, config.lease) => match never {},
    };
    match stored {
        Some(true) => {}
        Some(false) => {
            idempotency.counters.add(Count::Fenced);
            tracing::warn!(
                target: "herdcache",
                function = config.name,
                "an idempotent run outlived its lease and its claim was taken over: its outcome is not stored, the newer claim's record is left intact"
            );
        }
        None => {
            idempotency.counters.add(Count::StoreFailures);
            tracing::warn!(
                target: "herdcache",
                function = config.name,
                "Redis did not take an idempotent outcome: a retry after the lease may run the request again"
            );
        }
    }
    Landing::Ran(outcome)
}

/// Extends the lease every third of it, for as long as it is polled. Once
/// the claim is found taken over it stops: the run goes on (it cannot be
/// stopped safely), and its completion will be refused.
async fn heartbeat(fleet: &Fleet, key: &str, token: &str, lease: Duration) -> Infallible {
    loop {
        tokio::time::sleep(lease / 3).await;
        if fleet.extend(key, token, lease).await == Some(false) {
            return std::future::pending().await;
        }
    }
}

/// The completion's compare-and-set, tried again with backoff while Redis
/// does not answer, for up to `give_up`.
async fn complete(
    fleet: &Fleet,
    key: &str,
    token: &str,
    outcome: &[u8],
    ttl: Duration,
    give_up: Duration,
) -> Option<bool> {
    let deadline = later(give_up);
    let mut pause = FIRST_POLL;
    loop {
        if let Some(stored) = fleet.complete(key, token, outcome, ttl).await {
            return Some(stored);
        }
        if Instant::now() + pause > deadline {
            return None;
        }
        tokio::time::sleep(pause.mul_f64(0.5 + random_unit())).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

/// Lets a retry run again: compare-and-delete, tried a few times. If Redis
/// never takes it, the lease (no longer extended) runs out instead.
async fn release<T, E>(idempotency: &Idempotency<T, E>, fleet: &Fleet, key: &str, token: &str) {
    idempotency.counters.add(Count::Released);
    for attempt in 0..3u32 {
        if fleet.release(key, token).await.is_some() {
            return;
        }
        tokio::time::sleep(FIRST_POLL * 2u32.pow(attempt)).await;
    }
}

/// A stored final error travels as the error itself.
impl<E: Serialize> Serialize for IdemFailure<E> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.get().serialize(serializer)
    }
}

/// Read back, a stored error is shared by cloning it (a stored error is
/// `Clone`: it is replayed to every duplicate).
impl<'de, E> serde::Deserialize<'de> for IdemFailure<E>
where
    E: serde::Deserialize<'de> + Clone + Send + Sync + 'static,
{
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let error = E::deserialize(deserializer)?;
        Ok(IdemFailure::new(FailureShare::by_clone(), error))
    }
}
