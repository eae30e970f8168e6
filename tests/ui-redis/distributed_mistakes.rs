use herdcache::cached;

#[derive(Clone, Hash, PartialEq, Eq)]
struct Sku(u64);

// A key that cannot travel: one error at `distributed`, naming it.
#[cached(ttl = "60s", distributed = true)]
async fn by_sku(sku: Sku) -> u64 {
    sku.0
}

#[derive(Clone)]
struct Price(u64);

// A value that cannot travel: one error at `distributed`, naming it.
#[cached(ttl = "60s", distributed = true)]
async fn price(sku: u64) -> Price {
    Price(sku)
}

fn main() {}
