use herdcache::cached;

#[cached(ttl = "60s", distributed = true)]
async fn price(sku: u64) -> u64 {
    sku
}

fn main() {}
