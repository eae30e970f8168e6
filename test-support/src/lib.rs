//! herdcache's own test harness (not published): `redis-server`s of a
//! test's own, and a [`FaultProxy`] that sits between one instance and
//! Redis and injects the faults a fleet meets: a cut connection, a
//! blackhole, a slow link, a heal. std only.
//!
//! ```no_run
//! use herdcache_test_support::{FaultProxy, RedisServer};
//!
//! let server = RedisServer::start().unwrap();
//! let proxy = FaultProxy::start(server.port()).unwrap();
//! // Instance A talks to Redis through proxy.url(); the test cuts it off:
//! proxy.cut();
//! // ... and heals it.
//! proxy.heal();
//! ```

mod proxy;
mod redis;

pub use proxy::{FaultProxy, Mode};
pub use redis::{RedisCluster, RedisServer};
