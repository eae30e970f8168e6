use herdcache::cached;

// Tags do not reach the copy in Redis yet.
#[cached(ttl = "60s", distributed = true, tags = ["sku:{sku}"])]
async fn price(sku: u64) -> u64 {
    sku
}

// `version` without `distributed`.
#[cached(ttl = "60s", version = 2)]
async fn stock(sku: u64) -> u64 {
    sku
}

fn main() {}
