use herdcache::cached;

// `version` without `distributed`.
#[cached(ttl = "60s", version = 2)]
async fn stock(sku: u64) -> u64 {
    sku
}

// Not a flag.
#[cached(ttl = "60s", distributed = "yes")]
async fn price(sku: u64) -> u64 {
    sku
}

fn main() {}
