//! What travels to Redis: the key's digest in the key name, and the value
//! in a versioned envelope with its horizons as wall-clock milliseconds.
//!
//! Key names are `{ns}:{name}:v{version}:e{ns_epoch}.{fn_epoch}:{<digest>}`
//! (the epochs move when a namespace or a function is invalidated whole):
//! the digest is the xxh3-128 of the key's postcard bytes, 32 hex digits, the same in every
//! process, build and platform (postcard's encoding is specified, xxh3 is
//! portable). No user text from the key reaches the name, and the braces
//! make a value and its lock share a Redis Cluster slot.
//!
//! The envelope, format 2, little-endian:
//!
//! ```text
//! [0]      format byte (2)
//! [1..9]   fresh_until, ms since the Unix epoch
//! [9..17]  stale_until
//! [17..25] fail_safe_until
//! [25..29] how long the load took, µs
//! [29..45] the value's digest: xxh3-128 of its postcard bytes, the
//!          `Entry::digest` (and `ETag`) of the value on every instance
//! [45]     n, the number of versions: the key's own (digest 0) first,
//!          then one per tag
//! [46..]   n × (the digest, the version in Redis when the load began:
//!          16 + 8 bytes)
//! [..]     the value, postcard
//! ```
//!
//! The horizons sit at a fixed place so that a refresh the origin
//! answered "not modified" rewrites them alone (`RedisTier::retime`,
//! guarded by the digest) instead of sending the value again. Format 1
//! (no digest) is read as a miss, as is anything else: another format
//! byte, a short buffer, a digest that does not match the payload, a
//! payload postcard cannot read as the value's type. Corrupt or foreign:
//! a miss, never a panic.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde::Serialize;

const FORMAT: u8 = 2;
const HEADER: usize = 46;
/// Where the horizons are (`fresh_until` to `fail_safe_until`).
pub(crate) const HORIZONS: std::ops::Range<usize> = 1..25;
/// Where the value's digest is.
pub(crate) const DIGEST: std::ops::Range<usize> = 29..45;

/// The digest of a value's bytes (what `Entry::digest` computes).
pub(crate) fn payload_digest(payload: &[u8]) -> u128 {
    xxhash_rust::xxh3::xxh3_128(payload)
}

/// How a key (to Redis as its digest, over the bus as its bytes) or a
/// value travels: postcard both ways. Chosen for a key by a key probe,
/// for a value by a value probe, so that a type lacking a serde trait
/// is one error naming it.
pub struct Wire<T> {
    pub(crate) to_bytes: fn(&T) -> Option<Vec<u8>>,
    pub(crate) from_bytes: fn(&[u8]) -> Option<T>,
}

impl<T> Clone for Wire<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Wire<T> {}

impl<T: Serialize + DeserializeOwned> Wire<T> {
    /// Postcard, both ways.
    pub fn postcard() -> Self {
        Wire {
            to_bytes: |item| postcard::to_allocvec(item).ok(),
            from_bytes: |bytes| postcard::from_bytes(bytes).ok(),
        }
    }
}

/// How one function's keys and values go to Redis: made by the macro for a
/// `distributed = true` function, where the key and value types are known.
pub struct Codec<K, V> {
    pub(crate) key: Wire<K>,
    pub(crate) value: Wire<V>,
    /// `version = n`: a new key space when the value's shape changes.
    pub(crate) version: u32,
}

impl<K, V> Clone for Codec<K, V> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<K, V> Copy for Codec<K, V> {}

impl<K, V> Codec<K, V> {
    /// The codec of keys (through `key`) and values (through `value`), in
    /// key space `version`.
    pub fn new(version: u32, key: Wire<K>, value: Wire<V>) -> Self {
        Codec {
            key,
            value,
            version,
        }
    }
}

impl<K, V> Codec<K, V>
where
    K: Serialize + DeserializeOwned,
    V: Serialize + DeserializeOwned,
{
    /// [`new`](Self::new) for types known to travel (by hand).
    pub fn of(version: u32) -> Self {
        Self::new(version, Wire::postcard(), Wire::postcard())
    }
}

/// The 128-bit digest of a key's bytes, as 32 hex digits.
pub(crate) fn digest(key_bytes: &[u8]) -> String {
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(key_bytes))
}

/// The prefix of a function's keys in Redis: `{ns}:{name}:v{version}`.
/// The name is reduced to characters that are safe in any key (no glob
/// characters, no spaces).
pub(crate) fn function_prefix(namespace: &str, name: &str, version: u32) -> String {
    let name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{namespace}:{name}:v{version}")
}

/// The Redis key of a function's entry:
/// `{ns}:{name}:v{version}:e{namespace epoch}.{function epoch}:{<digest>}`.
/// The epochs move on `invalidate_all` (the function's) and when the
/// operations kept for replay overflow (the namespace's): every copy under
/// the old name is then out of reach, and expires.
pub(crate) fn key_name(prefix: &str, epochs: Epochs, digest: &str) -> String {
    let Epochs {
        namespace,
        function,
    } = epochs;
    format!("{prefix}:e{namespace}.{function}:{{{digest}}}")
}

/// The key of an entry's version: `{prefix}:{<digest>}:ver`. Not under an
/// epoch: an invalidation bumps the one version every copy of the key
/// carries, whichever epoch its writer or its reader knew (an instance's
/// knowledge of the epochs may lag, after a partition or a Redis restart),
/// and it shares the entry's Cluster slot.
pub(crate) fn version_key(prefix: &str, digest: &str) -> String {
    format!("{prefix}:{{{digest}}}:ver")
}

/// The namespace's and a function's epochs, as this instance knows them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Epochs {
    pub(crate) namespace: u64,
    pub(crate) function: u64,
}

/// An entry as Redis holds it: its horizons in ms since the Unix epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Envelope {
    pub(crate) fresh_until_ms: u64,
    pub(crate) stale_until_ms: u64,
    pub(crate) fail_safe_until_ms: u64,
    pub(crate) load_micros: u32,
    /// Each tag's digest and its version in Redis when the load began.
    pub(crate) tags: Vec<(u128, u64)>,
}

/// The 128-bit digest of a tag (its key in Redis is `{ns}:tag:{hex}`).
pub(crate) fn tag_digest(tag: &str) -> u128 {
    xxhash_rust::xxh3::xxh3_128(tag.as_bytes())
}

impl Envelope {
    pub(crate) fn encode(&self, payload: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(HEADER + payload.len());
        bytes.push(FORMAT);
        bytes.extend_from_slice(&self.fresh_until_ms.to_le_bytes());
        bytes.extend_from_slice(&self.stale_until_ms.to_le_bytes());
        bytes.extend_from_slice(&self.fail_safe_until_ms.to_le_bytes());
        bytes.extend_from_slice(&self.load_micros.to_le_bytes());
        bytes.extend_from_slice(&payload_digest(payload).to_le_bytes());
        // At most 255 versions (the key's and 254 tags) travel; a function
        // with more keeps its values in memory (see `prepare_l2_write`).
        bytes.push(u8::try_from(self.tags.len()).unwrap_or(u8::MAX));
        for (digest, version) in self.tags.iter().take(255) {
            bytes.extend_from_slice(&digest.to_le_bytes());
            bytes.extend_from_slice(&version.to_le_bytes());
        }
        bytes.extend_from_slice(payload);
        bytes
    }

    /// The envelope and its payload, or `None` for anything that is not a
    /// format-2 envelope whose digest matches its payload.
    pub(crate) fn decode(bytes: &[u8]) -> Option<(Envelope, &[u8])> {
        if bytes.len() < HEADER || bytes[0] != FORMAT {
            return None;
        }
        let tags_end = HEADER + usize::from(bytes[45]) * 24;
        if bytes.len() < tags_end {
            return None;
        }
        let tags = bytes[HEADER..tags_end]
            .chunks_exact(24)
            .map(|tag| {
                let mut digest = [0u8; 16];
                digest.copy_from_slice(&tag[..16]);
                let mut version = [0u8; 8];
                version.copy_from_slice(&tag[16..]);
                (u128::from_le_bytes(digest), u64::from_le_bytes(version))
            })
            .collect();
        let u64_at = |at: usize| {
            let mut word = [0u8; 8];
            word.copy_from_slice(&bytes[at..at + 8]);
            u64::from_le_bytes(word)
        };
        let mut micros = [0u8; 4];
        micros.copy_from_slice(&bytes[25..29]);
        let envelope = Envelope {
            fresh_until_ms: u64_at(1),
            stale_until_ms: u64_at(9),
            fail_safe_until_ms: u64_at(17),
            load_micros: u32::from_le_bytes(micros),
            tags,
        };
        let ordered = envelope.fresh_until_ms <= envelope.stale_until_ms
            && envelope.stale_until_ms <= envelope.fail_safe_until_ms;
        let payload = &bytes[tags_end..];
        let mut digest = [0u8; 16];
        digest.copy_from_slice(&bytes[DIGEST]);
        let intact = u128::from_le_bytes(digest) == payload_digest(payload);
        (ordered && intact).then_some((envelope, payload))
    }
}

/// Now, in ms since the Unix epoch (0 before it).
pub(crate) fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pinned: a change here moves every key of every fleet. The digests
    /// were checked against the reference xxHash (Python's `xxhash`,
    /// `xxh3_128_hexdigest`) of the same bytes.
    #[test]
    fn digests_are_stable_across_processes_builds_and_platforms() {
        let forty_two = postcard::to_allocvec(&42u64).unwrap();
        assert_eq!(forty_two, [42]);
        assert_eq!(digest(&forty_two), "14c9ae9594c463c479d03016b7aeed0d");
        let pair = postcard::to_allocvec(&("user", 7u32)).unwrap();
        assert_eq!(pair, [4, b'u', b's', b'e', b'r', 7]);
        assert_eq!(digest(&pair), "bf96d84ec148b18f97a9babef294cfaf");
        assert_eq!(digest(&[]).len(), 32);
    }

    #[test]
    fn key_names_hold_no_user_text_and_no_glob_characters() {
        let prefix = function_prefix("app", "my_crate::users::get*user [v]", 2);
        let epochs = Epochs {
            namespace: 3,
            function: 4,
        };
        let name = key_name(&prefix, epochs, &digest(b"k"));
        assert!(name.starts_with("app:my_crate::users::get_user__v_:v2:e3.4:{"));
        assert!(!name.contains(['*', '?', '[', ']', ' ']));
        assert_eq!(
            name.len(),
            "app:my_crate::users::get_user__v_:v2:e3.4:{}".len() + 32
        );
    }

    #[test]
    fn an_envelope_round_trips_and_anything_else_is_refused() {
        let envelope = Envelope {
            fresh_until_ms: 10,
            stale_until_ms: 20,
            fail_safe_until_ms: 30,
            load_micros: 7,
            tags: vec![(tag_digest("user:1"), 3), (tag_digest("all"), 0)],
        };
        let bytes = envelope.encode(b"payload");
        assert_eq!(
            Envelope::decode(&bytes),
            Some((envelope.clone(), &b"payload"[..]))
        );
        for cut in 0..HEADER + 48 {
            assert_eq!(Envelope::decode(&bytes[..cut]), None, "truncated at {cut}");
        }
        let mut foreign = bytes.clone();
        foreign[0] = b'{';
        assert_eq!(Envelope::decode(&foreign), None);
        let mut more_tags_than_bytes = bytes.clone();
        more_tags_than_bytes[45] = 9;
        assert_eq!(Envelope::decode(&more_tags_than_bytes), None);
        let mut disordered = bytes.clone();
        disordered[1] = 99;
        assert_eq!(Envelope::decode(&disordered), None);
        // A flipped bit in the value: its digest no longer matches.
        let mut corrupt = bytes.clone();
        *corrupt.last_mut().unwrap() ^= 1;
        assert_eq!(Envelope::decode(&corrupt), None);
        // Format 1 (no digest): a miss.
        let mut old = bytes.clone();
        old[0] = 1;
        assert_eq!(Envelope::decode(&old), None);
        // The digest is the value's, where `retime` looks for it.
        assert_eq!(&bytes[DIGEST], &payload_digest(b"payload").to_le_bytes());
        assert_eq!(&bytes[HORIZONS][..8], &10u64.to_le_bytes());
    }
}
