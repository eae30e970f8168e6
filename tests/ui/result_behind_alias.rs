use herdcache::cached;

#[derive(Clone, Debug)]
struct DbError;

/// Named neither `Result` nor `Option`: the macro cannot tell by name.
type DbResult<T> = Result<T, DbError>;
type Maybe<T> = Option<T>;

#[cached(ttl = "1m")]
async fn load(id: u64) -> DbResult<u64> {
    Ok(id)
}

#[cached(ttl = "1m")]
async fn find(id: u64) -> Maybe<u64> {
    Some(id)
}

fn main() {}
