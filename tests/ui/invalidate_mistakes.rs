use herdcache::{cached, invalidate};

#[cached(ttl = "60s")]
async fn get_user(id: u64) -> String {
    id.to_string()
}

async fn not_cached(id: u64) -> String {
    id.to_string()
}

// Not `#[cached]`, as this file shows: one error at the name, in
// herdcache's words (rustc's would guess `get_user_invalidate`).
#[invalidate(not_cached(id))]
async fn write_a(id: u64) -> Result<(), ()> {
    let _ = id;
    Ok(())
}

// One argument too many: at the call.
#[invalidate(get_user(id, 2))]
async fn write_b(id: u64) -> Result<(), ()> {
    let _ = id;
    Ok(())
}

// A tag naming no argument: at `{user}`.
#[invalidate(tags = ["user:{user}"])]
async fn write_c(id: u64) -> Result<(), ()> {
    let _ = id;
    Ok(())
}

fn not_async(id: u64) -> u64 {
    id
}

// Not cached and not async: the error says #[cached] would not fit it.
#[invalidate(not_async(id))]
async fn write_e(id: u64) -> Result<(), ()> {
    let _ = id;
    Ok(())
}

mod inventory {
    #[herdcache::cached(ttl = "60s")]
    pub async fn price(sku: u64) -> u64 {
        sku
    }
}
#[allow(unused_imports)]
use inventory::price;

// Cached elsewhere, its helper not imported: rustc's error, which names
// the import to add.
#[invalidate(price(sku))]
async fn write_d(sku: u64) -> Result<(), ()> {
    let _ = sku;
    Ok(())
}

fn main() {}
