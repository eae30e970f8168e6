use herdcache::cached;

#[cached(ttl = "1m", key = usr_id)]
async fn get_user(user_id: u64) -> u64 {
    user_id
}

#[cached(ttl = "1m", key = (org, pag))]
async fn list(org: &str, page: u32) -> Vec<String> {
    vec![format!("{org}/{page}")]
}

struct Repo;

impl Repo {
    #[cached(ttl = "1m", key = (self, id))]
    async fn find(&self, id: u64) -> u64 {
        id
    }
}

fn main() {}
