// An unused cached function still gets rustc's `dead_code` warning (made an
// error here), once, at the function: its generated helpers do not.
#![deny(dead_code)]

use herdcache::cached;

#[cached(ttl = "1m")]
async fn forgotten(id: u64) -> u64 {
    id
}

fn main() {}
