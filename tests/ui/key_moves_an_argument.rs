use herdcache::cached;

struct Request {
    id: String,
}

// A field is copied through a borrow, so `key = req.id` works; an
// expression that moves the field out is an error at that expression.
#[cached(ttl = "1m", key = Some(req.id))]
async fn handle(req: Request) -> String {
    req.id
}

fn main() {}
