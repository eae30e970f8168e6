//! `tags = [..]` on `#[cached]`: templates over the arguments, constants and
//! expressions; `invalidate_tag` and `expire_tag` reach every function that
//! carries the tag. (The engine's linearizability across in-flight loads,
//! refreshes and timeouts is tested in `cache-runtime/tests/tags.rs`.)

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use herdcache::cached;

static USER_LOADS: AtomicUsize = AtomicUsize::new(0);
static POST_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "60s", tags = ["tags-test:user:{user_id}", "tags-test:all-users"])]
async fn user(user_id: u64) -> String {
    let n = USER_LOADS.fetch_add(1, SeqCst);
    format!("user {user_id} #{n}")
}

#[cached(ttl = "60s", key = (author, page), tags = ["tags-test:user:{author}", extra.clone()])]
async fn posts(author: u64, page: u32, extra: Vec<String>) -> Vec<String> {
    POST_LOADS.fetch_add(1, SeqCst);
    vec![format!("post by {author} p{page}"); extra.len()]
}

#[tokio::test]
async fn a_template_tag_reaches_every_function_that_carries_it() {
    let before = USER_LOADS.load(SeqCst);
    let first = user(1).await;
    assert_eq!(user(1).await, first);
    user(2).await;
    posts(1, 0, vec!["tags-test:feed".into()]).await;
    posts(2, 0, vec![]).await;
    let posts_before = POST_LOADS.load(SeqCst);

    herdcache::invalidate_tag("tags-test:user:1").await;
    assert_ne!(user(1).await, first, "user 1 loaded again");
    assert_eq!(USER_LOADS.load(SeqCst), before + 3);
    user(2).await;
    assert_eq!(USER_LOADS.load(SeqCst), before + 3, "user 2 untouched");
    posts(1, 0, vec!["tags-test:feed".into()]).await;
    posts(2, 0, vec![]).await;
    assert_eq!(
        POST_LOADS.load(SeqCst),
        posts_before + 1,
        "only author 1's posts"
    );

    // A tag an expression yielded.
    herdcache::invalidate_tags(["tags-test:feed"]).await;
    posts(1, 0, vec!["tags-test:feed".into()]).await;
    assert_eq!(POST_LOADS.load(SeqCst), posts_before + 2);

    herdcache::expire_tag("tags-test:all-users").await;
    user(2).await;
    assert_eq!(
        USER_LOADS.load(SeqCst),
        before + 4,
        "no swr: expired is reloaded"
    );
}

static ISOLATED_LOADS: AtomicUsize = AtomicUsize::new(0);

#[cached(ttl = "60s", tags = ["tags-test:isolated:{id}"])]
async fn isolated(id: u64) -> usize {
    let _ = id;
    ISOLATED_LOADS.fetch_add(1, SeqCst)
}

#[tokio::test]
async fn an_isolated_test_reaches_its_own_entries_by_tag() {
    herdcache::testing::isolate(async {
        let first = isolated(1).await;
        assert_eq!(isolated(1).await, first);
        herdcache::invalidate_tag("tags-test:isolated:1").await;
        assert_ne!(isolated(1).await, first, "loaded again");
    })
    .await;
}
