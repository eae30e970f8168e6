use herdcache::cached;

#[cached(ttl = "1m", key = usr_id)]
async fn get_user(user_id: u64) -> u64 {
    user_id
}

#[cached(ttl = "1m", key = (org, pag))]
async fn list(org: &str, page: u32) -> Vec<String> {
    vec![format!("{org}/{page}")]
}

#[cached(ttl = "1m", key = (self.tenant, id))]
async fn find(id: u64) -> u64 {
    id
}

fn main() {}
