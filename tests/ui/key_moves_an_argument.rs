use herdcache::cached;

struct Request {
    id: String,
}

// Fields are copied, and so are places passed by value in a key expression
// (`Some(req.id)`); a method that consumes its receiver still moves, and
// the error points at that expression.
#[cached(ttl = "1m", key = req.id.into_bytes())]
async fn handle(req: Request) -> String {
    req.id
}

fn main() {}
