//! The `#[cached]` attribute of [herdcache](https://docs.rs/herdcache).
//! Use it through the `herdcache` crate, which holds the runtime the
//! generated code calls.
//!
//! One pipeline, one file per phase: `attr` parses the arguments,
//! `validate` checks them against the function, `expand` writes code.

#![forbid(unsafe_code)]

mod attr;
mod expand;
mod impl_block;
mod invalidate;
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
/// | attribute | meaning | default |
/// |---|---|---|
/// | `ttl = "60s"` | how long a value is fresh (required); units `ns us ms s m h d`, combinable: `"1h30m"` | — |
/// | `jitter = 0.1` | each entry's ttl is drawn from `ttl·(1 ± jitter)`, `0.0..=1.0` | `0` |
/// | `key = expr` | an argument, a tuple, or an expression over the arguments and `self` | every argument but `self` |
/// | `max_capacity = 10_000` | bound of the in-memory tier, in entries | `10_000` |
/// | `name = "users.get"` | name in `herdcache::stats()` | the function's path (`module::Type::method` for a method taking `self` or mentioning `Self`) |
/// | `crate = path` | where the `herdcache` crate is, if re-exported | `::herdcache` |
/// | `swr = "30s"` / `true` | serve stale this long after the ttl while one background refresh runs | off |
/// | `early_refresh = 1.0` | XFetch's β: a fresh hit may refresh in the background before expiry | off |
/// | `fail_safe = "10m"` | keep a value this long past its stale window; a load returning `Err` answers with it | off |
/// | `fail_safe_throttle = "5s"` | serve a fallback as fresh this long once it answered | `5s` |
/// | `negative_ttl = "5s"` | cache `Err` and `None` this long | off |
/// | `negative = path` | `fn(&E) -> Option<Duration>`: which errors to cache, how long | off |
/// | `ttl_for = path` | `fn(&T) -> Duration`: the value's own freshness, capped by `ttl` | off |
/// | `timeout = "300ms"` | with a stale or fail-safe fallback, wait this long for a load, then serve it | off |
/// | `hard_timeout = "5s"` | wait at most this long: the fallback, else `herdcache::Error::Timeout` as `E` | off |
/// | `tags = ["user:{id}", "all", expr]` | names `herdcache::invalidate_tag` drops the value by: templates over the arguments, constants, or expressions yielding tags | none |
/// | `distributed = true` | share values with every instance through Redis (feature `redis`); key and value `Serialize + Deserialize` | off |
/// | `version = 2` | the key space of a `distributed` function in Redis | `1` |
/// | `memory = "quick"` / `"moka"` | the memory tier: moka (TinyLFU, proactive expiry) or quick_cache (S3-FIFO: faster hits that scale with cores, smaller entries) | the process default (`herdcache::Memory::set_default`, else `HERDCACHE_MEMORY`, else moka) |
///
/// `Ok`, `Some` and plain values are cached; `Err` and `None` are not. The
/// value must be `Clone + Send + Sync + 'static` (return `Arc<T>` for big
/// values).
///
/// **On a method, `self` is not part of the key unless the key reads it**:
/// one cache serves every instance. Write `key = (self.tenant, id)` when
/// instances hold different data; `<fn>_invalidate` then takes `&self`.
/// Fields in the key (`key = req.id`, `self.name`) are copied, not moved.
///
/// Beside the function it writes `<fn>_invalidate` and `<fn>_expire` (the
/// key's arguments),
/// `<fn>_refresh` and `<fn>_uncached` (all arguments, `self` included) and
/// `<fn>_cache()`, with the function's visibility. In a trait impl, put
/// `#[herdcache::cached_impl]` on the impl (above `#[async_trait]`), which
/// moves the helpers to an inherent impl. See the `herdcache` crate for the
/// guarantees.
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
/// `self`, `self.name(..)`.
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
