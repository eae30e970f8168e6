use herdcache::invalidate;

// Not async.
#[invalidate(tags = ["all"])]
fn write_a() {}

// Not a call.
#[invalidate(42, tags = ["all"])]
async fn write_b() {}

// An unknown argument.
#[invalidate(tag = ["all"])]
async fn write_c() {}

fn main() {}
