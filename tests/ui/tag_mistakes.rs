use herdcache::cached;

// A template naming no argument: the error is at `{usr_id}`.
#[cached(ttl = "60s", tags = ["user:{usr_id}"])]
async fn get_user(user_id: u64) -> String {
    user_id.to_string()
}

// An expression that yields no tag: the error is at it.
#[cached(ttl = "60s", tags = [org_id])]
async fn get_org(org_id: u64) -> String {
    org_id.to_string()
}

fn main() {}
