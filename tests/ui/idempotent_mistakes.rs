use herdcache::idempotent;

#[derive(Debug, Clone)]
struct PayError;

impl From<herdcache::IdempotencyError> for PayError {
    fn from(_: herdcache::IdempotencyError) -> Self {
        PayError
    }
}

// No key: every mistake of one attribute at once.
#[idempotent(ttl = "1 day", scope = customer)]
async fn a(customer: u64) -> Result<u64, PayError> {
    Ok(customer)
}

// Not a Result: nothing to store or release.
#[idempotent(key = key)]
async fn b(key: &str) -> u64 {
    key.len() as u64
}

// A misspelt attribute, and an exclusive borrow that cannot be copied.
#[idempotent(key = key, fingerprnt = [amount])]
async fn c(key: &str, amount: &mut u64) -> Result<u64, PayError> {
    Ok(*amount)
}

// Not async.
#[idempotent(key = key)]
fn d(key: &str) -> Result<u64, PayError> {
    Ok(key.len() as u64)
}

struct Ledger;

impl Ledger {
    // A method's records need a name.
    #[idempotent(key = key)]
    async fn post(&self, key: &str) -> Result<u64, PayError> {
        Ok(key.len() as u64)
    }
}

fn main() {}
