use herdcache::cached;

// One mistake each; the helpers are still called elsewhere. Each mistake is
// one error: the helpers exist, as stubs, with the signatures they would have.
#[cached(ttl = "6os", key = user_id)]
async fn get_user(user_id: u64, db: &str) -> Option<String> {
    Some(format!("{user_id}@{db}"))
}

// A key naming no argument (a misspelt one): its one error; the calls
// written for the key it meant add none.
#[cached(ttl = "1m", key = usr_id)]
async fn get_profile(user_id: u64, db: &str) -> u64 {
    let _ = db;
    user_id
}

// A key that reads `self` is not a misspelt argument (here, not `sent`).
#[derive(Clone, Hash, PartialEq, Eq)]
struct Pages;

impl Pages {
    #[cached(ttl = "1 min", key = (self, page))]
    async fn list(&self, page: u32, sent: u64) -> u64 {
        u64::from(page) + sent
    }
}

struct Repo;

impl Repo {
    #[cached(ttl = "1m", jiter = 0.1, key = id)]
    async fn find(&self, id: u64) -> u64 {
        id
    }
}

async fn callers() {
    get_user_invalidate(1).await;
    let _ = get_user_refresh(1, "db").await;
    let _ = get_user_uncached(1, "db").await;
    let _ = get_user_cache().stats();
    Repo::find_invalidate(2).await;
    let _ = Repo.find_refresh(2).await;
    let _ = Repo::find_cache().len();
    get_profile_invalidate(1).await;
    Pages.list_invalidate(1).await;
    get_profile_expire(1).await;
    let _ = get_profile_refresh(1, "db").await;
}

fn main() {
    let _ = callers();
}
