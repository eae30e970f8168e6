use herdcache::cached;

/// A connection pool: not `Hash`, not `Eq`.
#[derive(Clone)]
struct Pool;

#[derive(Clone)]
struct User;

// No `key`: every argument is the key, the pool included.
#[cached(ttl = "1m")]
async fn get_user(id: u64, db: &Pool) -> Option<User> {
    let _ = (id, db);
    Some(User)
}



/// Application state: not even `Clone`.
struct AppState;

trait Repo {}

// The key would have to copy the state and the trait object.
#[cached(ttl = "1m")]
async fn get_order(id: u64, state: &AppState, repo: &dyn Repo) -> Option<u64> {
    let _ = (state, repo);
    Some(id)
}
fn main() {}
