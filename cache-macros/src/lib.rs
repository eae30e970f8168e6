//! The `#[cached]` attribute of [herdcache](https://docs.rs/herdcache).
//! Use it through the `herdcache` crate, which holds the runtime the
//! generated code calls.
//!
//! One pipeline, one file per phase: `attr` parses the arguments,
//! `validate` checks them against the function, `expand` writes code.

#![forbid(unsafe_code)]

mod attr;
mod expand;
mod idempotent;
mod impl_block;
mod invalidate;
mod not_cached;
mod source;
mod stubs;
mod tags;
mod validate;

use proc_macro::TokenStream;
use syn::parse::Parser;

/// Caches an async function or method.
///
/// ```text
/// #[cached(ttl = "60s", jitter = 0.1, key = user_id)]
/// async fn get_user(user_id: u64, db: &PgPool) -> anyhow::Result<User> { … }
/// ```
///
/// Its attributes, with their defaults, are the table in the README:
/// <https://github.com/herdcache/herdcache#attributes>. What the cache
/// does (return types, keys, single flight, the helpers it writes,
/// invalidation, tags, errors) is on the `herdcache` crate's front page.
/// This page says what each freshness policy does.
///
/// # Freshness policies: your staleness budget
///
/// Each entry lives through three horizons:
///
/// ```text
///  written        fresh_until          stale_until         fail_safe_until
///    |---- fresh ----|---- stale (swr) ----|---- fallback only ----|  gone
/// ```
///
/// A value is fresh for its drawn ttl (`ttl·(1 ± jitter)`, or its `ttl_for`
/// if shorter) from the moment it is stored. After that the next call loads
/// again, unless a policy says otherwise. The memory tier drops expired
/// entries itself.
///
/// Pick the policies by how stale a value may be. A display name can be a
/// minute old, an exchange rate a few seconds, an account balance before a
/// payment never (no policy: a short ttl, and `<fn>_invalidate` after each
/// write).
///
/// ```ignore
/// // Profiles: a minute of staleness is fine; never make a caller wait at expiry.
/// #[cached(ttl = "5m", swr = "1m")]
/// async fn profile(id: u64) -> Result<Profile, DbError> { /* … */ }
///
/// // A hot key under steady load: refresh before it expires, not at it.
/// #[cached(ttl = "30s", early_refresh = 1.0)]
/// async fn feature_flags() -> Result<Flags, ApiError> { /* … */ }
///
/// // A paid API that goes down: the last good answer beats an error, for 10 minutes,
/// // and the API is asked again at most every 30 s meanwhile.
/// #[cached(ttl = "1m", fail_safe = "10m", fail_safe_throttle = "30s")]
/// async fn quote(symbol: &str) -> Result<Quote, ApiError> { /* … */ }
///
/// // "Not found" is worth remembering for a minute; a timeout never is.
/// fn not_found_only(e: &ApiError) -> Option<Duration> {
///     matches!(e, ApiError::NotFound).then_some(Duration::from_secs(60))
/// }
/// #[cached(ttl = "10m", negative = not_found_only)]
/// async fn lookup(id: u64) -> Result<Record, ApiError> { /* … */ }
///
/// // An access token is good until shortly before it says it expires.
/// #[cached(ttl = "1h", ttl_for = Token::lifetime)]
/// async fn token(scope: &str) -> Result<Token, AuthError> { /* … */ }
///
/// // An SLA: answer within 300 ms with the last value if the origin is slow,
/// // never wait more than 2 s for a cold key.
/// #[cached(ttl = "30s", fail_safe = "10m", timeout = "300ms", hard_timeout = "2s")]
/// async fn recommendations(user: u64) -> anyhow::Result<Arc<Vec<Item>>> { /* … */ }
/// ```
///
/// - **`swr`**: past `fresh_until`, a call returns the stale value at once
///   and starts one background refresh for the key (never two). Callers
///   never wait for it. Past `stale_until`, callers wait for a load as
///   usual, joining the refresh if one is in flight. A failed refresh is
///   counted (`refresh_errors`) and is a `warn` event; the stale value
///   stays until `stale_until`.
/// - **`early_refresh`**: XFetch (Vattani et al., VLDB 2015). A fresh hit
///   starts a refresh when `now + load_time·β·(−ln u) ≥ fresh_until`, `u`
///   uniform. A hot key is refreshed shortly before it expires, so its
///   expiry is a non-event.
/// - **`fail_safe`**: when a load returns `Err` (or panics) and the key has
///   a value within its window, every caller of that load gets `Ok(old
///   value)` (`fail_safe_hits`). The value is then served as fresh for
///   `fail_safe_throttle`; throttling never extends the window. `None` is an
///   answer, not a failure: it never triggers fail-safe, and it ends the old
///   value (a deleted user disappears). `<fn>_refresh` returns its error and
///   leaves the cached value alone.
/// - **`negative_ttl`, `negative`**: a cached failure is shared by later
///   callers without running the body (`negative_hits`). Each gets the
///   error as callers that joined a failing load do (`herdcache::SharedError`).
///   `negative` decides per error and wins over `negative_ttl` for `Err`.
/// - **`ttl_for`**: the value's own freshness, capped by `ttl`.
/// - **`timeout`, `hard_timeout`**: a function with either runs its load on
///   a task of its own, so a caller who stops waiting does not cancel it.
///   The load stores its value when it lands, and callers arriving
///   meanwhile join it and wait at most their own deadline. A soft
///   `timeout` needs a fallback (`swr` or `fail_safe`) and is not a failure
///   (nothing is throttled). A `hard_timeout` with no fallback is
///   `Err(E::from(herdcache::Error::Timeout))`: `anyhow::Error`,
///   `std::io::Error` (`ErrorKind::TimedOut`) and `Box<dyn Error + Send +
///   Sync>` convert already; your own enum takes a `#[from]
///   herdcache::Error` variant. Deadlines are tokio timers: the runtime
///   needs its time driver (`#[tokio::main]` and `#[tokio::test]` have it).
///
/// # Retries and the origin's circuit breaker
///
/// ```ignore
/// // A flaky payment provider: up to 3 calls a load, waits drawn from
/// // [0, 100 ms), [0, 200 ms); a declined card is not retried.
/// #[cached(ttl = "30s", retry = 3, retry_if = PayError::is_transient)]
/// async fn fx_rate(pair: &str) -> Result<Rate, PayError> { /* … */ }
///
/// // Stop calling a failing origin; fail-safe answers while it recovers.
/// #[cached(ttl = "1m", fail_safe = "1h", circuit_breaker = true)]
/// async fn catalog(id: u64) -> Result<Item, ApiError> { /* … */ }
/// ```
///
/// - **`retry = n`** (on a `Result` only): a load calls the body up to `n`
///   times in all. The `k`th retry waits a draw from
///   `[0, min(retry_cap, retry_base · 2ᵏ⁻¹))` (defaults 100 ms and 2 s):
///   full jitter, so a fleet's retries spread out instead of arriving in
///   lockstep. Only the caller leading the load retries: callers that
///   joined it wait for its last attempt, so 1 000 callers of a cold key
///   still make at most `n` calls. A retry whose wait would end past
///   `hard_timeout` is not made. Each attempt calls the body with its own
///   copies of the arguments (`Clone`: `&T` is copied, `&self` too, an
///   owned `self` needs `Self: Clone`; an `&mut` argument is a compile
///   error; with `circuit_breaker` alone, the one call takes the arguments
///   as given). An argument under `#[cfg]` is a compile error with either.
///   The cap is never below the base. Retries wait on tokio timers; outside a tokio runtime a
///   failure is not retried. Counted in `Stats::retries`, a `debug` event
///   each.
/// - **`retry_if = path`**: a `fn(&E) -> bool` saying which errors are
///   worth a retry (default: every `Err`). With a breaker, only those count
///   as the origin failing: a `NotFound` it answered shows it is up.
/// - **`circuit_breaker = true`**, or an expression of
///   `herdcache::CircuitBreaker` settings (`CircuitBreaker::new()
///   .failure_ratio(0.25).min_calls(20)`): one breaker per function,
///   judging every call of the body. Closed, it opens once at least
///   `min_calls` (10) calls ended within the rolling `window` (30 s) and
///   `failure_ratio` (0.5) of them failed. Open, no call is made: the load
///   fails at once with `E::from(herdcache::Error::OriginUnavailable)` (so
///   the error type converts from `herdcache::Error`, as for
///   `hard_timeout`), which fail-safe answers with the last good value like
///   any failure. After `break_for` (5 s) it is half-open: exactly one call
///   at a time, across all keys, goes through as a probe, and every other
///   load is refused. A failed probe, or one still running after
///   `probe_timeout` (30 s: a hung call), opens it again for twice the last
///   break, up to `max_break` (60 s); `probes` (3) successes in a row close
///   it. A call that hangs while it is closed counts only when it ends:
///   give the origin's calls their own timeouts. Its state is `Stats::breaker` (`herdcache::BreakerState`), its
///   openings and refusals are counted, and each move is a tracing event
///   (`warn` when it opens). It reads the cache's clock, so tests drive it
///   with `herdcache::testing::isolate_with_clock`.
///
/// **Background work** (`swr`, `early_refresh`, the timeouts) runs on the
/// calling task's tokio runtime. Outside one, none starts: the value stays
/// stale and the first caller past its window loads. It runs from copies of
/// the arguments (`ToOwned` behind a reference; `Self: Clone` for `&self`:
/// a repository holding a pool usually is), made only when a refresh
/// starts. It calls `<fn>_uncached`, so the body is not compiled again; the
/// body must be `Send`. An argument that cannot be copied to a `'static`
/// value is one compile error at it (`&str` can; a `Cow<'a, str>` or a
/// struct borrowing data cannot). A refresh outlives the caller who started
/// it; an invalidation while it runs wins (it does not store); a panic in
/// it is counted and poisons nothing. On an associated function with
/// neither `self` nor `Self` in its signature, put
/// `#[herdcache::cached_impl]` on the impl, so the macro knows it sits in
/// one.
///
/// A hit on a function with policies reads a millisecond clock kept by a
/// thread of herdcache's (started by the first such function); a function
/// without them reads no clock at all. Tests move that clock by hand with
/// `herdcache::testing::isolate_with_clock`.
#[proc_macro_attribute]
pub fn cached(args: TokenStream, item: TokenStream) -> TokenStream {
    let (args, item) = (
        proc_macro2::TokenStream::from(args),
        proc_macro2::TokenStream::from(item),
    );
    if let Some(error) = in_trait_impl(&item) {
        // The method as written is a valid member of the trait: one error.
        let mut out = error.to_compile_error();
        out.extend(item);
        return out.into();
    }
    match cached_fn(args.clone(), item.clone()) {
        Ok(expanded) => expanded.into(),
        // The function is still emitted unchanged, and its helpers as stubs,
        // so one mistake in the attribute gives one error, not one per use
        // of the function or its helpers.
        Err(error) => {
            let mut out = error.to_compile_error();
            if let Ok(function) = syn::parse2::<syn::ItemFn>(item.clone()) {
                out.extend(stubs::helpers(&function, &args, None));
            }
            out.extend(item);
            out.into()
        }
    }
}

/// Lets `#[cached]` work on the methods of a trait impl.
///
/// The helpers `#[cached]` writes beside a method (`<fn>_invalidate`, …)
/// cannot be members of a trait impl; on an impl marked `cached_impl` they go
/// into a separate inherent `impl` of the type instead (`pub` for a trait
/// impl, whose methods have no visibility to copy), as associated
/// functions. With `#[async_trait]`, put `cached_impl` above it, so it sees
/// the `async fn`s first.
///
/// ```text
/// #[herdcache::cached_impl]
/// #[async_trait::async_trait]
/// impl UserStore for PgRepo {
///     #[cached(ttl = "60s", key = id)]
///     async fn get(&self, id: u64) -> Option<User> { … }
/// }
///
/// PgRepo::get_invalidate(7).await;
/// ```
#[proc_macro_attribute]
pub fn cached_impl(args: TokenStream, item: TokenStream) -> TokenStream {
    let item = proc_macro2::TokenStream::from(item);
    match impl_block::expand(args.into(), item.clone()) {
        Ok(expanded) => expanded.into(),
        Err(error) => {
            let mut out = error.to_compile_error();
            out.extend(item);
            out.into()
        }
    }
}

/// Busts cached entries after a successful write.
///
/// ```text
/// #[herdcache::invalidate(get_user(id), Self::list_members(org), tags = ["org:{org}"])]
/// async fn rename_user(&self, id: u64, org: u64, name: &str) -> Result<(), DbError> { … }
/// ```
///
/// Once the body returned `Ok`, `Some` or any other value, it awaits each
/// named function's `<fn>_invalidate` with the given arguments (expressions
/// over this function's own arguments and `self`) and invalidates the tags
/// (templates over the arguments, or expressions), then returns. After
/// `Err` or `None` it busts nothing. Free functions are named by path,
/// methods as `Self::name(..)`, `Type::name(..)` or, when their key reads
/// `self`, `self.name(..)`. A name that is not `#[cached]` is one error at
/// it: "`name` is not #[cached]" when the function is plainly defined in the
/// same file, or else rustc's "cannot find function `<name>_invalidate`"
/// (which may add a guess of a similarly named cached function's helper).
///
/// It busts and never writes through: a bust after a successful write is
/// always safe, while a write-through that fails after the write leaves
/// the cache wrong.
#[proc_macro_attribute]
pub fn invalidate(args: TokenStream, item: TokenStream) -> TokenStream {
    let item = proc_macro2::TokenStream::from(item);
    match invalidate::expand(args.into(), item.clone()) {
        Ok(expanded) => expanded.into(),
        // The function unchanged: one error, not one per use of it.
        Err(error) => {
            let mut out = error.to_compile_error();
            out.extend(item);
            out.into()
        }
    }
}

/// Runs a mutating async function at most once per idempotency key: a
/// duplicate (a client's retry, a double click, a redelivered message)
/// joins the run in flight or gets its stored outcome, in one process or,
/// with the Redis runtime installed, across the fleet.
///
/// ```ignore
/// #[herdcache::idempotent(key = idem_key, scope = customer_id, ttl = "24h", name = "payments.charge")]
/// async fn charge(idem_key: &str, customer_id: u64, amount: u64, currency: &str) -> Result<Receipt, PayError> {
///     /* … */
/// }
/// // For an HTTP layer: the outcome, and whether it was replayed.
/// let charged = charge_idempotent(key, customer, 500, "EUR").await;
/// if charged.replayed() { /* mark the response */ }
/// ```
///
/// The function keeps its signature and must return a `Result<T, E>`
/// whose `E: From<herdcache::IdempotencyError>` (the protocol's errors
/// reach the caller as `E`; `anyhow::Error` and `std::io::Error` convert
/// already). It gains `<fn>_idempotent(..)`, returning
/// `herdcache::Idempotent<Result<T, E>>`: `replayed()` says whether this
/// caller got an outcome it did not run, `outcome()` borrows the result
/// and `into_inner()` returns it.
///
/// An error reaches the caller that started the run as the body returned
/// it. Duplicates that joined the failed run get a clone, or, for an error
/// that is not `Clone` (`anyhow::Error`), `E::from(herdcache::SharedError)`
/// carrying its message.
///
/// | attribute | meaning | default |
/// |---|---|---|
/// | `key = idem_key` | the idempotency key: an argument or expression of type `&str`, `String`, `Option<..>` of them (`None` or empty: `IdempotencyError::MissingKey`; over 255 bytes or with control characters: `InvalidKey`), refused before anything runs. **Required** | — |
/// | `scope = customer_id` | whose key it is (a tenant, a principal): one customer's key never answers another's. Any `Hash` value | none |
/// | `ttl = "24h"` | how long a completed record is kept and replayed, judged from the record's own time | `24h` |
/// | `name = "payments.charge"` | the records' stable name. Set it: renaming or moving a function must not forget every key. Required on methods | the function's module path and name |
/// | `fingerprint = [amount, currency]` | what makes a request the same request; another payload under the same key is `IdempotencyError::PayloadMismatch` | every argument but `key`, `scope` and `self` |
/// | `store_err = PayError::is_final` | a `fn(&E) -> bool`: errors that are final (a card declined) are stored and replayed; others release the key so a retry runs again | no error is stored |
/// | `wait = "2s"` | how long a duplicate in another instance waits for the run to finish before `IdempotencyError::InProgress { retry_after }` | `2s` |
/// | `lease = "10s"` | a claim's lease in Redis, extended by a heartbeat while the operation runs; a claim whose holder died is taken over after it | `10s` |
/// | `fail_open = true` | Redis unreachable: run anyway (per process only) instead of `IdempotencyError::Unavailable` | `false` |
/// | `fleet = true` | no Redis tier installed is `Unavailable`, not a per-process record, so a fleet that forgot its configuration never runs twice silently | `false` |
/// | `crate = path` | where the `herdcache` crate is, if re-exported | `::herdcache` |
///
/// - **Outcomes**: `Ok` is stored and replayed (`()` too). `Err` releases
///   the key, unless `store_err` calls it final. A panic releases it.
/// - **Duplicates in one process** join the run in flight (single flight)
///   and get its outcome, with `replayed() == true`.
/// - **The run finishes** even if every caller goes away: it runs on a task
///   of its own, from owned copies of the arguments (`ToOwned` behind a
///   reference; `Self: Clone` for `&self`), and its outcome is stored for
///   the retry. The body lives in a hidden `<fn>_uncached`, compiled once.
/// - **Across a fleet** (the Redis runtime installed): one Lua-scripted
///   claim per record with a fencing token and a lease; completion is a
///   compare-and-set on the token, so a holder whose lease was lost cannot
///   overwrite a newer claim. Redis unreachable: `Unavailable`, nothing
///   runs (unless `fail_open`). Record names hold digests, never the key
///   or scope text.
/// - **Where**: a free function, or a method taking `self` or naming
///   `Self` in its signature (it reaches its helpers as `Self::…`); not an
///   associated function with neither, nor a trait impl's method. An
///   `#[expect]` on the function stays on the body.
/// - **HTTP**: `IdempotencyError::http_status` maps the errors to 400
///   (missing or invalid key), 409 with `Retry-After` (in progress), 422
///   (payload mismatch), 503 (unavailable).
#[proc_macro_attribute]
pub fn idempotent(args: TokenStream, item: TokenStream) -> TokenStream {
    let item = proc_macro2::TokenStream::from(item);
    match idempotent::expand(args.into(), item.clone()) {
        Ok(expanded) => expanded.into(),
        // The function unchanged: one error, not one per use of it (nor
        // a warning for a key only the attribute used).
        Err(error) => {
            let mut out = error.to_compile_error();
            out.extend(quote::quote!(#[allow(unused_variables)]));
            out.extend(item);
            out.into()
        }
    }
}

/// The error for an `async fn` whose source shows it in a trait impl with
/// no `#[cached_impl]` (its helpers cannot be members of the trait). With
/// `#[async_trait]` the method arrives rewritten, and `validate` says it.
fn in_trait_impl(item: &proc_macro2::TokenStream) -> Option<syn::Error> {
    let function: syn::ItemFn = syn::parse2(item.clone()).ok()?;
    function.sig.asyncness?;
    let name = &function.sig.ident;
    let tr = source::enclosing_trait(name.span(), &name.to_string())?;
    Some(syn::Error::new(
        name.span(),
        format_args!(
            "#[cached] on `{name}`, a method of `impl {tr} for ..`: its helpers (`{name}_invalidate`, ..) cannot be members of the trait; put #[herdcache::cached_impl] on the impl, which moves them to an inherent impl"
        ),
    ))
}

fn cached_fn(
    args: proc_macro2::TokenStream,
    item: proc_macro2::TokenStream,
) -> syn::Result<proc_macro2::TokenStream> {
    let item: syn::ItemFn = syn::parse2(item).map_err(|error| {
        syn::Error::new(
            error.span(),
            "#[cached] goes on an `async fn` (a free function or a method)",
        )
    })?;
    let name = &item.sig.ident;
    let site = Site {
        attribute: proc_macro2::Span::call_site(),
        in_impl: false,
        place: source::enclosing_place(name.span(), &name.to_string()),
        helper_vis: None,
    };
    let expand::Expansion { function, helpers } = pipeline(args, &item, &site)?;
    Ok(quote::quote!(#function #helpers))
}

/// Where a `#[cached]` function is written, as far as the macro knows.
struct Site {
    /// The `#[cached]` attribute, for errors about it as a whole.
    attribute: proc_macro2::Span,
    /// Known to be in an impl (`#[cached_impl]`), even with no `self`.
    in_impl: bool,
    /// Where the source shows it, if it says surely.
    place: Option<source::Place>,
    /// The helpers' visibility, when not the function's.
    helper_vis: Option<syn::Visibility>,
}

/// parse -> validate -> expand, for one function.
fn pipeline(
    args: proc_macro2::TokenStream,
    item: &syn::ItemFn,
    site: &Site,
) -> syn::Result<expand::Expansion> {
    let mut errors = attr::Errors::default();
    let args = (|input: syn::parse::ParseStream| attr::parse(input, &mut errors)).parse2(args)?;
    let plan = validate::validate(args, item, site, &mut errors);
    errors.finish()?;
    let plan = plan.expect("a plan is made whenever there are no errors");
    Ok(expand::expand(&plan, item, site.helper_vis.as_ref()))
}
