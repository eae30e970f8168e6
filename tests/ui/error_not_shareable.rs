use herdcache::cached;

/// Neither `Clone` nor `From<herdcache::SharedError>`.
#[derive(Debug)]
struct DbError(String);

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cached(ttl = "1m")]
async fn load(id: u64) -> Result<u64, DbError> {
    Ok(id)
}

fn main() {}
