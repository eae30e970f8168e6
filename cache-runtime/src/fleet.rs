//! A fleet: how the Redis tier (feature `redis`) shares the values, loads
//! and invalidations of `distributed = true` functions across instances.
//! Set-up is on [`Runtime`], each knob on [`RuntimeBuilder`], and the bound
//! under each fault, with what stays in Redis, on [`RedisTier`].
//!
//! # Reads
//!
//! Memory, then Redis, then the body. A miss asks Redis inside the single
//! flight: one Redis read per instance, however many callers wait. A fresh
//! value there fills memory with the *rest* of its life, so the staleness
//! budget holds fleet-wide. A value past its freshness but within its `swr`
//! or `fail_safe` window becomes this instance's fallback while the body
//! runs. A loaded value is written back with its horizons, and Redis
//! expires it (`PX`) at the last one. Values over
//! [`max_payload`](RuntimeBuilder::max_payload) stay in memory.
//!
//! Refreshes (`swr`, `early_refresh`) read Redis first too, under the same
//! lock: a hot key that goes stale on every instance at once is refreshed
//! once for the fleet. `<fn>_refresh` always runs the body.
//!
//! # One origin call for the fleet
//!
//! With nothing fresh in Redis, one instance takes the key's lock
//! (`SET NX PX`) and runs the body. The others wait for its value, woken by
//! its "filled" message on the bus, with a poll (2 ms, doubling to 50 ms)
//! as the backstop. They run the body themselves only if the lock goes away
//! without a value, or after [`max_wait`](RuntimeBuilder::max_wait).
//!
//! The holder extends the lock every third of
//! [`lock_ttl`](RuntimeBuilder::lock_ttl) while its load runs, for at most
//! `max_wait`, so a slow origin does not let a second instance in. It
//! releases the lock after the write-back (a compare-and-delete script).
//! A holder that is cancelled (a client hung up) or panics releases it at
//! once; one that dies leaves it to expire after `lock_ttl`.
//! [`fleet_lock(false)`](RuntimeBuilder::fleet_lock) turns the lock off
//! (one load per instance) for origins cheaper than two round trips.
//!
//! # Redis is never on the critical path
//!
//! - Every Redis call has a [`timeout`](RuntimeBuilder::timeout).
//! - Failures in a row open a circuit [`breaker`](RuntimeBuilder::breaker):
//!   functions then work from memory and their body. When it has been open
//!   long enough, one call probes (the others still skip Redis), and its
//!   success closes it. Its state is `l2_breaker_open` in stats; a `warn`
//!   event says when it opens and an `info` one when it closes.
//! - A load that meets a failing Redis leaves Redis alone for the rest of
//!   that load. A slow Redis costs a caller about one timeout before its
//!   body and at most one after it (the write-back).
//! - An unreachable Redis is counted in `l2_errors`, never an error for the
//!   caller.
//! - A payload that is corrupt, truncated or foreign is a miss
//!   (`l2_corrupt`); the load that follows overwrites it.
//!
//! # Connections
//!
//! Each tokio runtime that calls Redis more than once gets a connection of
//! its own, made on it in the background on its second call. A read's
//! request and reply then stay on the caller's runtime. At most 16 runtimes
//! are remembered, the least recently used forgotten first. Calls use a
//! shared connection until it is ready, and always where a runtime cannot
//! host one: see
//! [`connection_per_runtime`](RuntimeBuilder::connection_per_runtime). That
//! shared connection, the bus subscription and lock upkeep run on a small
//! runtime of the tier's own (thread `herdcache-redis`). So they outlive
//! the runtime that made the first call (each `#[tokio::test]` has its
//! own), and serve callers on any runtime.
//!
//! # Keys in Redis
//!
//! (`{ns}` stands for the namespace; the braces around `<digest>` are
//! literal: a Redis Cluster hash tag.)
//!
//! - A value: `{ns}:{name}:v{version}:e{ns_epoch}.{fn_epoch}:{<digest>}`.
//!   The function's epoch moves on its `invalidate_all` (and on the
//!   process-wide [`invalidate_all`](crate::invalidate_all())); the
//!   namespace's moves when more
//!   invalidations are kept for replay than
//!   [`pending_limit`](RuntimeBuilder::pending_limit). Either puts every old
//!   copy out of reach.
//! - Its fleet lock: the value's key plus `:lock`.
//! - Its version: `{ns}:{name}:v{version}:{<digest>}:ver`, under no epoch.
//! - A tag's version: `{ns}:tag:<digest>`, a counter.
//! - The bus: the pub/sub channel `{ns}:bus`. It carries keys and tags,
//!   never values.
//!
//! The digest is the xxh3-128 of the key's postcard bytes: the same in
//! every process, build and platform (pinned by a test). So no key text
//! reaches Redis, and names have a fixed length without glob characters.
//! The braces keep a value, its lock and its version on one Redis Cluster
//! slot. How long each key lives is in [`RedisTier`]'s "What stays in
//! Redis". The password never appears in logs or `Debug` output.
//!
//! # Invalidation reaches the fleet
//!
//! `<fn>_invalidate` and `<fn>_expire` of a distributed function bump the
//! key's version and delete its copy in Redis; `invalidate_all` bumps the
//! function's epoch. Then the operation goes to this process's memory, then
//! on the bus, so a miss in between cannot refill the old value. Every
//! other instance drops (or expires) its memory copy when the message
//! arrives; an instance ignores its own messages. An invalidation is sent
//! even while the breaker is open (only reads are skipped). A memory-only
//! function's key invalidation stays in its process.
//!
//! Versions, not timing: a load reads its key's version (in the same round
//! trip as the value) and its tags' versions before its body runs, and its
//! copy in Redis carries them. A write-back of a load that began before an
//! invalidation anywhere in the fleet is never served, wherever and
//! whenever it lands. A key's version is kept for the function's longest
//! value life plus [`longest_load`](RuntimeBuilder::longest_load).
//!
//! Tags: `invalidate_tag` and `expire_tag` bump the tag's version in Redis,
//! then publish on the bus, and reach every instance's entries with that
//! tag, memory-only functions included. A copy in Redis whose tags moved
//! since its load began is never served (a miss, and overwritten).
//! Expiring a tag ends the shared copy too; each instance's memory copy is
//! stale, as without Redis.
//!
//! # What holds across instances, and what does not
//!
//! Values, the fleet lock and versions are in Redis, so they hold whatever
//! the bus does. The bus only makes other instances drop their *memory*
//! copies sooner: until its message arrives (a publish: milliseconds),
//! another instance may serve its memory copy. Messages sent while an
//! instance's subscription was down are lost, so when it comes back the
//! instance drops its distributed entries from memory and ends every tagged
//! entry: a reconnect costs misses, never a stale value.
//!
//! Nothing compares clocks across machines. Freshness travels as absolute
//! times, but invalidation is by versions (`INCR`), so clock skew can
//! shorten or lengthen a value's life by the skew, never bring back an
//! invalidated one.
//!
//! # Under faults, nothing acknowledged is lost while the process runs
//!
//! An invalidation that cannot reach Redis (timeout, refused, cut
//! mid-command) is kept and replayed in order once Redis answers (version
//! bump, delete, bus message). Until then its instance does not use the
//! Redis copies it ends, so its own answers stay right. Kept operations
//! coalesce and are bounded by [`pending_limit`](RuntimeBuilder::pending_limit).
//! They show as `fleet_pending` in stats (`fleet_failures` counts them
//! since start). [`flush_fleet`] waits for them: before
//! answering a write that must be seen fleet-wide, and at exit through
//! [`flush_fleet_on_drop`], which waits up to
//! its timeout and logs what is left, by function: operations still kept
//! when the process exits are lost. The bound for each fault (a partition of the writer
//! or of a reader, a Redis restart, a failover) is the table in
//! [`RedisTier`]. A soak with a history checker (`tests/soak.rs`) checks it
//! under random faults.
//!
//! # Redis Cluster
//!
//! The same behaviour, tested against a 3-master cluster the test creates.
//! A value, its lock and its version share a slot (the braces in the key).
//! Tag versions are read one `GET` each (their slots differ). The bus
//! subscribes through one node: a cluster's `PUBLISH` reaches every node.
//!
//! # TLS
//!
//! `rediss://` URLs need the `redis-tls` feature (the system's OpenSSL,
//! through `native-tls`). `rediss://host:6380/#insecure` skips certificate
//! checks (for tests with their own CA). Tested against a `redis-server`
//! with TLS and a certificate the test makes.
//!
//! # Known limits
//!
//! - Invalidations published before an instance's first subscription are
//!   not seen by it (its memory is nearly empty then).
//! - On a cluster the bus subscribes through the first node given. If that
//!   node goes away, the bus reconnects to it, and flushes when it is back.
//! - A tier built by hand ([`RuntimeBuilder::build`] and
//!   [`FnCache::with_redis`](crate::FnCache::with_redis)) is not reached by
//!   `invalidate_tag`: install it.

pub use crate::redis::{
    flush_fleet, flush_fleet_on_drop, FlushOnDrop, InstallError, RedisTier, Runtime, RuntimeBuilder,
};
