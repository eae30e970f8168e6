use herdcache::{cached, invalidate};

#[cached(ttl = "60s")]
async fn get_user(id: u64) -> String {
    id.to_string()
}

async fn not_cached(id: u64) -> String {
    id.to_string()
}

// Not `#[cached]`: the missing `not_cached_invalidate` names it.
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

fn main() {}
