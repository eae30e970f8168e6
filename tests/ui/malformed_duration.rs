use herdcache::cached;

#[cached(ttl = "6os")]
async fn letter_o(id: u64) -> u64 {
    id
}

#[cached(ttl = 60)]
async fn bare_number(id: u64) -> u64 {
    id
}

#[cached(ttl = "60")]
async fn no_unit(id: u64) -> u64 {
    id
}

#[cached(ttl = "0s")]
async fn zero(id: u64) -> u64 {
    id
}

#[cached(ttl = "60 s")]
async fn a_space(id: u64) -> u64 {
    id
}

fn main() {}
