//! The process-wide invalidation verbs of tags: the shared tier first (its
//! copies, kept for replay if Redis does not take them), then this
//! process's memory, then the bus (the other instances' memory). Apart
//! from `tags` so that the tag registry, on the hit path, depends on
//! nothing of the shared tier's (the bus depends on it, not the reverse).

/// Drops every entry of every function that carries `tag`: once this
/// returns, no call sees a value whose load began before it, fresh, stale
/// or as a fail-safe fallback. A load in flight may still answer the
/// callers that joined it, but what it stores is never served. O(1): the
/// tag's version moves, and entries are judged when read.
///
/// Async so that a tier shared by several processes can pass it on; in
/// memory it is done at once.
pub async fn invalidate_tag(tag: &str) {
    end_tags(vec![tag.to_owned()], true).await;
}

/// [`invalidate_tag`] for each of `tags`.
pub async fn invalidate_tags<I>(tags: I)
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    end_tags(owned(tags), true).await;
}

/// Makes every entry that carries `tag` stale at once, for data that may
/// have changed but whose old value still beats an error: under `swr` the
/// next call gets it while one refresh runs, and it stays a fail-safe
/// fallback until its window ends (the windows it was loaded with). Without
/// swr or fail-safe the function has nothing to keep, and this is
/// [`invalidate_tag`] for it.
pub async fn expire_tag(tag: &str) {
    end_tags(vec![tag.to_owned()], false).await;
}

/// [`expire_tag`] for each of `tags`.
pub async fn expire_tags<I>(tags: I)
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    end_tags(owned(tags), false).await;
}

fn owned<I>(tags: I) -> Vec<String>
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    tags.into_iter()
        .map(|tag| tag.as_ref().to_owned())
        .collect()
}

/// Invalidates (`gone`) or expires `tags`: with a Redis tier, in Redis
/// first (its shared copies), then in memory, then on the bus (the other
/// instances' memory), so that a miss in between cannot bring a copy back.
/// A bump Redis does not take is kept and replayed by the tier.
async fn end_tags(tags: Vec<String>, gone: bool) {
    let fleet = crate::redis::begin_tags(&tags, gone).await;
    crate::tags::bump_tags(&tags, gone);
    crate::redis::announce_tags(fleet, gone).await;
}
