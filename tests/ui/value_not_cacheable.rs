use std::rc::Rc;

use herdcache::cached;

struct Report {
    rows: Vec<u64>,
}

// Not `Clone`, in a `Result`: one error, at the return type.
#[cached(ttl = "1m")]
async fn report(id: u64) -> Result<Report, std::io::Error> {
    Ok(Report { rows: vec![id] })
}

// Not `Clone`, returned plain.
#[cached(ttl = "1m")]
async fn plain_report(id: u64) -> Report {
    Report { rows: vec![id] }
}

// `Clone` but not `Send`: an `Rc`.
#[cached(ttl = "1m")]
async fn shared_report(id: u64) -> Option<Rc<Vec<u64>>> {
    Some(Rc::new(vec![id]))
}

struct Repo;

// A method, whose helpers need the value type too.
impl Repo {
    #[cached(ttl = "1m")]
    async fn find(&self, id: u64) -> Report {
        Report { rows: vec![id] }
    }
}

fn main() {
    let _ = Report { rows: vec![] }.rows;
}
