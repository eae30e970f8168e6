//! Methods and borrowed arguments key correctly: `self` is never part of
//! the key, `&str` and `&T` arguments are keyed by owned copies.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use herdcache::cached;

static LIST_LOADS: AtomicUsize = AtomicUsize::new(0);

struct UserRepo {
    region: &'static str,
}

impl UserRepo {
    /// Lists one page of an organisation's users.
    #[cached(ttl = "5m", key = (org, page))]
    async fn list(&self, org: &str, page: u32) -> Vec<String> {
        LIST_LOADS.fetch_add(1, SeqCst);
        vec![format!("{org}/{page} from {}", self.region)]
    }
}

#[tokio::test]
async fn a_method_is_keyed_on_its_arguments_not_on_self() {
    let eu = UserRepo { region: "eu" };
    let us = UserRepo { region: "us" };
    assert_eq!(eu.list("acme", 1).await, ["acme/1 from eu"]);
    // Another instance shares the cache: `self` is not in the key.
    assert_eq!(us.list("acme", 1).await, ["acme/1 from eu"]);
    // A borrowed argument built at run time finds the same key.
    let org = String::from("ac") + "me";
    assert_eq!(eu.list(&org, 1).await, ["acme/1 from eu"]);
    assert_eq!(LIST_LOADS.load(SeqCst), 1);

    assert_eq!(us.list("acme", 2).await, ["acme/2 from us"]);
    assert_eq!(us.list("globex", 1).await, ["globex/1 from us"]);
    assert_eq!(LIST_LOADS.load(SeqCst), 3);

    // The helpers are associated functions taking the key's arguments.
    UserRepo::list_invalidate("acme", 1).await;
    assert_eq!(us.list("acme", 1).await, ["acme/1 from us"]);
    assert_eq!(LIST_LOADS.load(SeqCst), 4);
    assert_eq!(us.list_refresh("acme", 2).await, ["acme/2 from us"]);
    assert_eq!(eu.list_uncached("acme", 2).await, ["acme/2 from eu"]);
    assert_eq!(UserRepo::list_cache().stats().hits, 2);
    assert!(UserRepo::list_cache().stats().loads >= 5);
}

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct Query {
    table: String,
    limit: u32,
}

static QUERY_LOADS: AtomicUsize = AtomicUsize::new(0);

/// With no `key`, every argument is the key; `&Query` is keyed by a clone.
#[cached(ttl = "60s")]
async fn run_query(query: &Query, shard: u8) -> usize {
    QUERY_LOADS.fetch_add(1, SeqCst);
    query.table.len() * query.limit as usize + shard as usize
}

#[tokio::test]
async fn borrowed_struct_arguments_are_keyed_by_value() {
    let users = Query {
        table: "users".into(),
        limit: 10,
    };
    assert_eq!(run_query(&users, 0).await, 50);
    assert_eq!(run_query(&users.clone(), 0).await, 50);
    assert_eq!(run_query(&users, 1).await, 51);
    let fewer = Query { limit: 5, ..users };
    assert_eq!(run_query(&fewer, 0).await, 25);
    assert_eq!(QUERY_LOADS.load(SeqCst), 3);
    run_query_invalidate(&fewer, 0).await;
    assert_eq!(run_query(&fewer, 0).await, 25);
    assert_eq!(QUERY_LOADS.load(SeqCst), 4);
}

static FIELD_LOADS: AtomicUsize = AtomicUsize::new(0);

/// A key expression over a field: the other fields do not matter.
#[cached(ttl = "60s", key = query.table.clone())]
async fn table_size(query: &Query) -> usize {
    FIELD_LOADS.fetch_add(1, SeqCst);
    query.table.len()
}

#[tokio::test]
async fn a_key_expression_picks_what_identifies_the_value() {
    let a = Query {
        table: "orders".into(),
        limit: 1,
    };
    let b = Query {
        table: "orders".into(),
        limit: 99,
    };
    assert_eq!(table_size(&a).await, 6);
    assert_eq!(table_size(&b).await, 6);
    assert_eq!(FIELD_LOADS.load(SeqCst), 1);
    // `_invalidate` takes the arguments the key uses: here `query`.
    table_size_invalidate(&b).await;
    assert_eq!(table_size(&a).await, 6);
    assert_eq!(FIELD_LOADS.load(SeqCst), 2);
}

static RECEIVER_LOADS: AtomicUsize = AtomicUsize::new(0);

struct Page {
    number: u32,
    name: String,
}

/// Methods on the argument's fields in the key: a `Copy` field consumed by
/// value (`max`) and a `String` read through `&self` (`to_lowercase`). The
/// key moves neither: the body still owns the whole `page`.
#[cached(ttl = "60s", key = (page.number.max(1), page.name.to_lowercase()))]
async fn page_title(page: Page) -> String {
    RECEIVER_LOADS.fetch_add(1, SeqCst);
    format!("{} {}", page.name, page.number)
}

#[tokio::test]
async fn methods_on_fields_in_a_key_read_them_without_moving_them() {
    let first = Page {
        number: 0,
        name: "Intro".into(),
    };
    let same_key = Page {
        number: 1,
        name: "INTRO".into(),
    };
    assert_eq!(page_title(first).await, "Intro 0");
    assert_eq!(page_title(same_key).await, "Intro 0", "the same key: a hit");
    assert_eq!(RECEIVER_LOADS.load(SeqCst), 1);
}

static REGION_LOADS: AtomicUsize = AtomicUsize::new(0);

#[derive(Clone, Copy)]
enum Region {
    Eu,
    Us,
}

impl Region {
    /// A borrow of `self`: the key reads it from a copy of the argument.
    fn name(&self) -> &str {
        match self {
            Region::Eu => "eu",
            Region::Us => "us",
        }
    }
}

#[cached(ttl = "60s", key = region.name().to_owned())]
async fn region_label(region: Region) -> String {
    REGION_LOADS.fetch_add(1, SeqCst);
    region.name().to_uppercase()
}

#[tokio::test]
async fn a_key_may_borrow_from_a_copy_argument_s_method() {
    assert_eq!(region_label(Region::Eu).await, "EU");
    assert_eq!(region_label(Region::Eu).await, "EU");
    assert_eq!(region_label(Region::Us).await, "US");
    assert_eq!(REGION_LOADS.load(SeqCst), 2);
}

struct Cats;
struct Dogs;

impl Cats {
    #[cached(ttl = "60s")]
    async fn name(id: u32) -> String {
        format!("cat {id}")
    }
}

impl Dogs {
    #[cached(ttl = "60s")]
    async fn name(id: u32) -> String {
        format!("dog {id}")
    }
}

#[tokio::test]
async fn same_named_functions_in_two_impls_have_separate_caches() {
    assert_eq!(Cats::name(1).await, "cat 1");
    assert_eq!(Dogs::name(1).await, "dog 1");
    assert_eq!(Cats::name(1).await, "cat 1");
    assert_eq!(Dogs::name(1).await, "dog 1");
}

struct Store<T>(PhantomData<T>);

impl<T: Send + Sync + 'static> Store<T> {
    #[cached(ttl = "60s")]
    async fn describe(&self, id: u64) -> String {
        format!("{}#{id}", std::any::type_name::<T>())
    }
}

#[tokio::test]
async fn each_instantiation_of_a_generic_impl_has_its_own_cache() {
    let bytes = Store::<u8>(PhantomData);
    let words = Store::<u16>(PhantomData);
    assert_eq!(bytes.describe(1).await, "u8#1");
    assert_eq!(words.describe(1).await, "u16#1");
    assert_eq!(bytes.describe(1).await, "u8#1");
    assert_eq!(words.describe(1).await, "u16#1");
    assert_eq!(Store::<u8>::describe_cache().stats().hits, 1);
    assert_eq!(Store::<u16>::describe_cache().stats().hits, 1);
    let names: Vec<String> = herdcache::stats().into_iter().map(|(n, _)| n).collect();
    assert!(
        names.iter().any(|n| n.ends_with("Store<u8>::describe")),
        "{names:?}"
    );
    assert!(
        names.iter().any(|n| n.ends_with("Store<u16>::describe")),
        "{names:?}"
    );
}

#[derive(Clone)]
struct Client {
    base: String,
}

impl Client {
    /// `self` by value works too.
    #[cached(ttl = "60s")]
    async fn fetch(self, path: String) -> String {
        format!("{}{path}", self.base)
    }
}

#[tokio::test]
async fn a_method_taking_self_by_value_is_cached() {
    let client = Client {
        base: "https://a".into(),
    };
    assert_eq!(client.clone().fetch("/x".into()).await, "https://a/x");
    let other = Client {
        base: "https://b".into(),
    };
    assert_eq!(other.fetch("/x".into()).await, "https://a/x");
}

static FORMAT_LOADS: AtomicUsize = AtomicUsize::new(0);

/// Inline format captures count as arguments the key uses.
#[cached(ttl = "60s", key = format!("{org}:{page}"))]
async fn page_label(org: &str, page: u32, verbose: bool) -> String {
    FORMAT_LOADS.fetch_add(1, SeqCst);
    if verbose {
        format!("organisation {org}, page {page}")
    } else {
        format!("{org}#{page}")
    }
}

#[tokio::test]
async fn a_format_key_is_invalidated_by_the_names_it_captures() {
    assert_eq!(page_label("acme", 1, false).await, "acme#1");
    assert_eq!(
        page_label("acme", 1, true).await,
        "acme#1",
        "verbose is not in the key"
    );
    page_label_invalidate("acme", 1).await;
    assert_eq!(
        page_label("acme", 1, true).await,
        "organisation acme, page 1"
    );
    assert_eq!(FORMAT_LOADS.load(SeqCst), 2);
}

/// `key = (org)` is `key = org`: keyed by an owned copy, not moved.
#[cached(ttl = "60s", key = (org))]
async fn org_name(org: String, suffix: &str) -> String {
    format!("{org}{suffix}")
}

#[tokio::test]
async fn a_parenthesised_key_is_a_plain_argument() {
    assert_eq!(org_name("acme".into(), "!").await, "acme!");
    assert_eq!(org_name("acme".into(), "?").await, "acme!");
    org_name_invalidate("acme".into()).await;
    assert_eq!(org_name("acme".into(), "?").await, "acme?");
}

/// A width taken from a variable is a capture too: `_invalidate` takes it.
#[cached(ttl = "60s", key = format!("{org:>width$}"))]
async fn padded(org: &str, width: usize) -> String {
    format!("[{org:>width$}]")
}

#[tokio::test]
async fn a_format_width_argument_is_part_of_the_key() {
    assert_eq!(padded("ab", 4).await, "[  ab]");
    padded_invalidate("ab", 4).await;
    assert_eq!(padded_cache().stats().invalidations, 1);
}

/// The body is compiled once, in `<fn>_uncached`, and the function and
/// `_refresh` call it: a `static` declared in the body is one item, so every
/// path sees the same address. (Before, the body was compiled in the
/// function, `_refresh` and `_uncached`: three statics, three addresses.)
#[cached(ttl = "60s")]
async fn where_the_body_lives(id: u64) -> usize {
    static MARK: u8 = 0;
    let _ = id;
    std::ptr::addr_of!(MARK) as usize
}

struct Bodies;

impl Bodies {
    #[cached(ttl = "60s")]
    async fn where_the_method_body_lives(id: u64) -> usize {
        static MARK: u8 = 0;
        let _ = id;
        std::ptr::addr_of!(MARK) as usize
    }
}

#[tokio::test]
async fn the_body_is_compiled_once() {
    herdcache::testing::isolate(async {
        let cached = where_the_body_lives(1).await;
        assert_eq!(where_the_body_lives_refresh(2).await, cached);
        assert_eq!(where_the_body_lives_uncached(3).await, cached);
        let cached = Bodies::where_the_method_body_lives(1).await;
        assert_eq!(Bodies::where_the_method_body_lives_refresh(2).await, cached);
        assert_eq!(
            Bodies::where_the_method_body_lives_uncached(3).await,
            cached
        );
    })
    .await;
}
