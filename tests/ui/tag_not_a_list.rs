use herdcache::cached;

#[cached(ttl = "60s", tags = "user:{user_id}")]
async fn get_member(user_id: u64) -> String {
    user_id.to_string()
}

fn main() {}
