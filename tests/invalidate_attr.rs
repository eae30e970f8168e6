//! `#[herdcache::invalidate(..)]`: a successful write busts the named
//! functions' keys and the tags before it returns; a failed write busts
//! nothing. Free functions by path, methods as `Self::f(..)` and
//! `self.f(..)` (for a key that reads `self`).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

use herdcache::{cached, invalidate};

static BALANCE: AtomicU64 = AtomicU64::new(100);
static BALANCE_READS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "1h")]
async fn balance(account: u64) -> u64 {
    BALANCE_READS.fetch_add(1, SeqCst);
    BALANCE.load(SeqCst) + account
}

#[derive(Debug, PartialEq)]
struct Declined;

/// The account-balance case: a payment busts the balance read before it.
#[invalidate(balance(account))]
async fn pay(account: u64, amount: u64) -> Result<u64, Declined> {
    let current = BALANCE.load(SeqCst);
    if amount > current {
        return Err(Declined);
    }
    BALANCE.store(current - amount, SeqCst);
    Ok(current - amount)
}

#[tokio::test]
async fn a_successful_write_busts_before_returning_and_a_failed_one_busts_nothing() {
    assert_eq!(balance(1).await, 101);
    assert_eq!(pay(1, 30).await, Ok(70));
    // The very next read sees the payment: the bust ran before `pay` returned.
    assert_eq!(balance(1).await, 71);
    let reads = BALANCE_READS.load(SeqCst);
    assert_eq!(pay(1, 1_000).await, Err(Declined));
    assert_eq!(balance(1).await, 71);
    assert_eq!(
        BALANCE_READS.load(SeqCst),
        reads,
        "a declined payment busted nothing"
    );
}

static PROFILE_LOADS: AtomicUsize = AtomicUsize::new(0);
static TEAM_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "1h", tags = ["invalidate-test:user:{id}"])]
async fn profile(id: u64) -> String {
    format!("profile {id} #{}", PROFILE_LOADS.fetch_add(1, SeqCst))
}

#[cached(ttl = "1h", tags = ["invalidate-test:org:{org}"])]
async fn team(org: u64) -> Option<String> {
    Some(format!("team {org} #{}", TEAM_LOADS.fetch_add(1, SeqCst)))
}

/// Tags over the arguments; an `Option` that is `None` is a failed write.
#[invalidate(tags = ["invalidate-test:user:{id}", format!("invalidate-test:org:{org}")])]
async fn move_user(id: u64, org: u64, allowed: bool) -> Option<()> {
    allowed.then_some(())
}

#[tokio::test]
async fn tags_are_busted_after_success_only() {
    let (profile_before, team_before) = (profile(7).await, team(3).await);
    assert_eq!(move_user(7, 3, false).await, None);
    assert_eq!(profile(7).await, profile_before);
    assert_eq!(team(3).await, team_before);
    assert_eq!(move_user(7, 3, true).await, Some(()));
    assert_ne!(profile(7).await, profile_before);
    assert_ne!(team(3).await, team_before);
}

struct Repo {
    tenant: u64,
    loads: Arc<AtomicUsize>,
}

impl Repo {
    #[cached(ttl = "1h", key = id)]
    async fn name(&self, id: u64) -> String {
        self.loads.fetch_add(1, SeqCst);
        format!("name {id}")
    }

    #[cached(ttl = "1h", key = (self.tenant, id))]
    async fn settings(&self, id: u64) -> String {
        self.loads.fetch_add(1, SeqCst);
        format!("settings {} {id}", self.tenant)
    }

    /// A plain return value: returning is success.
    #[invalidate(Self::name(id), self.settings(id))]
    async fn rename(&self, id: u64) {
        let _ = (self.tenant, id);
    }
}

#[tokio::test]
async fn methods_are_busted_through_self() {
    let repo = Repo {
        tenant: 9,
        loads: Arc::default(),
    };
    repo.name(5).await;
    repo.settings(5).await;
    repo.name(5).await;
    repo.settings(5).await;
    assert_eq!(repo.loads.load(SeqCst), 2);
    repo.rename(5).await;
    repo.name(5).await;
    repo.settings(5).await;
    assert_eq!(repo.loads.load(SeqCst), 4);
}

static NAME_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "1h", tags = ["invalidate-test:name:{name}"])]
async fn by_name(name: &str) -> usize {
    let _ = name;
    NAME_LOADS.fetch_add(1, SeqCst)
}

fn save(name: String) -> Result<(), Declined> {
    drop(name);
    Ok(())
}

/// The body consumes `name`, and the busts still name it: their arguments
/// and tags are read before the body runs.
#[invalidate(by_name(&name), tags = ["invalidate-test:name:{name}"])]
async fn rename(mut name: String) -> Result<(), Declined> {
    name.push_str(" (renamed)");
    save(name)
}

#[tokio::test]
async fn busts_read_the_arguments_as_they_were_before_the_body() {
    let first = by_name("ada").await;
    assert_eq!(by_name("ada").await, first);
    rename("ada".to_owned()).await.unwrap();
    assert_ne!(
        by_name("ada").await,
        first,
        "busted under the original name"
    );
}
