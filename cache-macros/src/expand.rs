//! Writing the code: the cached function and its helpers.
//!
//! The function keeps its signature; only its body is rewritten. Generated
//! code names only `#krate::__private::…`, `::core` and `::std`, and its
//! locals start with `__herdcache_`.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::{Attribute, Ident, ItemFn, Type, Visibility};

use crate::validate::{Plan, ReturnKind, Siblings};

mod key;
mod policy;

pub(crate) use key::{is_place, tag_value};

/// The cached function, and its helpers: beside it for a free function or
/// an inherent method, in an inherent impl of their own under `cached_impl`.
pub(crate) struct Expansion {
    pub(crate) function: TokenStream,
    pub(crate) helpers: TokenStream,
}

/// `helper_vis` overrides the helpers' visibility (a trait impl's methods
/// have none to copy).
pub(crate) fn expand(plan: &Plan, item: &ItemFn, helper_vis: Option<&Visibility>) -> Expansion {
    let private = {
        let krate = &plan.krate;
        quote!(#krate::__private)
    };
    let fn_name = &item.sig.ident;
    let span = fn_name.span();
    // Where the function is written: one cache per site, shared by the
    // function and its helpers, each of which resolves it on first use.
    let site = quote_spanned! {span=>
        ::core::concat!(::core::module_path!(), "::", ::core::stringify!(#fn_name),
            "@", ::core::file!(), ":", ::core::line!(), ":", ::core::column!())
    };
    let cx = Context {
        plan,
        item,
        private,
        site,
        helper_vis: helper_vis.unwrap_or(&item.vis),
    };
    let refresh = cx.refresh_fn();
    let entry = cx.entry_fn();
    let uncached = cx.uncached_fn();
    let invalidate = cx.invalidate_fn(Bust::Invalidate);
    let expire = cx.invalidate_fn(Bust::Expire);
    let handle = cx.cache_fn();
    Expansion {
        function: cx.cached_fn(),
        helpers: quote! {
            #refresh
            #entry
            #uncached
            #invalidate
            #expire
            #handle
        },
    }
}

/// What a load call does: the function's own (through the cache) or
/// `_refresh`'s (recompute now).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Load {
    Cached,
    Refresh,
    /// `_entry`'s: through the cache, answering how with the outcome.
    Entry,
}

/// What a key's helper does to its entry: `_invalidate` or `_expire`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Bust {
    Invalidate,
    Expire,
}

struct Context<'a> {
    plan: &'a Plan,
    item: &'a ItemFn,
    private: TokenStream,
    site: TokenStream,
    helper_vis: &'a Visibility,
}

impl Context<'_> {
    /// The original function, its body now going through the cache.
    fn cached_fn(&self) -> TokenStream {
        let ItemFn {
            attrs, vis, sig, ..
        } = self.item;
        let private = &self.private;
        let prelude = self.prelude();
        let load = self.load_call(Load::Cached);
        let alias_check = self.alias_check();
        let hooks = self.hooks();
        let hit = self.hit_expr();
        let from_hit = self
            .to_caller(quote!(#private::Through::to_caller(__herdcache_through, __herdcache_hit)));
        let body = quote! {
            #alias_check
            #prelude
            #hooks
            if let ::core::option::Option::Some(__herdcache_hit) = #hit {
                return #from_hit;
            }
            #load
        };
        // The user's braces around the new body: an item whose span ends in
        // the macro's tokens counts as macro-made, and rustc would then not
        // say when the function is never used.
        let mut body = proc_macro2::Group::new(proc_macro2::Delimiter::Brace, body);
        body.set_span(self.item.block.brace_token.span.join());
        // The body lives in `<fn>_uncached`: an `#[expect]` about it would
        // be unfulfilled here, so it becomes an `#[allow]`.
        let body_moved = self.uncached_path().is_some();
        let attrs = attrs.iter().map(|attr| {
            if body_moved && attr.path().is_ident("expect") {
                expect_as_allow(attr)
            } else {
                attr.clone()
            }
        });
        // `#[cached]` needs an `async fn`, even over a body that never awaits.
        quote! {
            #(#attrs)*
            // `unused_mut`: a `mut` argument the body mutates is moved on
            // to `_uncached`, where the body is.
            #[allow(clippy::unused_async, unused_mut)]
            #vis #sig #body
        }
    }

    /// `<fn>_refresh`: the same arguments; loads now and stores.
    fn refresh_fn(&self) -> TokenStream {
        let ident = format_ident!("{}_refresh", self.item.sig.ident);
        let doc = format!(
            "Recomputes `{}` now and stores the value, even if one is fresh (cache priming).",
            self.item.sig.ident
        );
        let head = self.helper_head(&doc);
        let signature = self.helper_signature(&ident);
        let prelude = self.prelude();
        let hooks = self.hooks();
        let load = self.load_call(Load::Refresh);
        quote! {
            #head #signature {
                #prelude
                #hooks
                #load
            }
        }
    }

    /// `<fn>_entry`: the same arguments; the outcome with its value in an
    /// `Entry` (how it was served, age, freshness, windows).
    fn entry_fn(&self) -> TokenStream {
        let fn_name = &self.item.sig.ident;
        let ident = format_ident!("{}_entry", fn_name);
        let doc = format!(
            "Calls `{fn_name}` through its cache and answers its value in a `herdcache::Entry`: how the call was served, the value's age, how long it stays fresh, its stale and fail-safe windows (and with serde, a digest for an HTTP `ETag`). (A function called only through this is still reported unused by rustc.)"
        );
        let head = self.helper_head(&doc);
        let mut sig = self.item.sig.clone();
        sig.ident = ident;
        let ret = entry_return(&self.plan.ret, self.plan.kind, &self.plan.krate);
        sig.output = syn::parse_quote!(-> #ret);
        let private = &self.private;
        let prelude = self.prelude();
        let hooks = self.hooks();
        let hit = self.hit_expr();
        let load = self.load_call(Load::Entry);
        quote! {
            #head #sig {
                #prelude
                #hooks
                let __herdcache_served = #private::FnCache::peek_served(__herdcache_cache, &__herdcache_key);
                if let ::core::option::Option::Some(__herdcache_hit) = #hit {
                    let __herdcache_meta = #private::FnCache::entry_meta(
                        __herdcache_cache,
                        &__herdcache_key,
                        ::core::option::Option::unwrap_or(__herdcache_served, #private::Served::Hit),
                    );
                    return #private::WithEntry::with_entry(
                        #private::Through::to_caller(__herdcache_through, __herdcache_hit),
                        __herdcache_meta,
                    );
                }
                #load
            }
        }
    }

    /// The hit of a call: `hit`, or `hit_or_refresh` for a function that
    /// refreshes in the background.
    fn hit_expr(&self) -> TokenStream {
        let private = &self.private;
        // Only functions that refresh in the background compile the
        // machinery that spawns (one instantiation per function).
        if self.plan.policy.refreshes() {
            let background = self.background();
            let tags = self.tags_source();
            quote! {
                #private::FnCache::hit_or_refresh(
                    __herdcache_cache, &__herdcache_key, __herdcache_hooks, #tags, #background,
                )
            }
        } else {
            quote!(#private::FnCache::hit(__herdcache_cache, &__herdcache_key, __herdcache_hooks))
        }
    }

    /// `<fn>_uncached`: the original body, no cache.
    fn uncached_fn(&self) -> TokenStream {
        let ident = format_ident!("{}_uncached", self.item.sig.ident);
        let doc = format!(
            "Runs the body of `{}` without the cache.",
            self.item.sig.ident
        );
        let head = self.helper_head(&doc);
        let signature = self.helper_signature(&ident);
        let block = &self.item.block;
        quote! {
            #head #signature #block
        }
    }

    /// `<fn>_invalidate` and `<fn>_expire` (`bust`), taking the arguments
    /// the key uses.
    fn invalidate_fn(&self, bust: Bust) -> TokenStream {
        let sig = &self.item.sig;
        let (ident, method) = match bust {
            Bust::Invalidate => (
                format_ident!("{}_invalidate", sig.ident),
                quote!(invalidate),
            ),
            Bust::Expire => (format_ident!("{}_expire", sig.ident), quote!(expire)),
        };
        let doc = if bust == Bust::Invalidate {
            format!(
                "Drops the cached value of `{}` for these arguments. Once this returns, no call sees a value loaded before it, not even as a fallback.",
                sig.ident
            )
        } else {
            format!(
                "Makes the cached value of `{}` for these arguments stale at once: served under `swr` while one refresh runs, and kept as a fail-safe fallback. Without either, the same as `_invalidate`.",
                sig.ident
            )
        };
        let params = self.plan.args.iter().filter_map(|arg| {
            if !self.plan.key_args.contains(&arg.ident) {
                return None;
            }
            let (name, ty) = (&arg.ident, &arg.ty);
            Some(quote!(#name: #ty))
        });
        let receiver = self.plan.key_uses_self.then(|| quote!(&self,));
        let private_path = &self.private;
        // A distributed function's entry in Redis goes too: the cache's
        // verbs always consult its shared tier.
        let call =
            quote!(#private_path::FnCache::#method(__herdcache_cache, &__herdcache_key).await;);
        let head = self.helper_head(&doc);
        let generics = &sig.generics;
        let where_clause = &sig.generics.where_clause;
        let unsafety = &sig.unsafety;
        let prelude = self.prelude();
        quote! {
            #head async #unsafety fn #ident #generics (#receiver #(#params),*) #where_clause {
                #prelude
                #call
            }
        }
    }

    /// `<fn>_cache()`: the function's stats and controls.
    fn cache_fn(&self) -> TokenStream {
        let ident = format_ident!("{}_cache", self.item.sig.ident);
        let doc = format!(
            "The cache of `{}`: `stats()`, `len()`, `invalidate_all()`.",
            self.item.sig.ident
        );
        let head = self.helper_head(&doc);
        let private = &self.private;
        let site = &self.site;
        let scope = self.scope();
        let name = self.name();
        quote! {
            #head fn #ident() -> &'static #private::CacheHandle {
                #private::CacheHandle::of(#site, #scope, || ::std::string::String::from(#name))
            }
        }
    }

    /// What every helper starts with: its doc, `cfg` and lint attributes
    /// kept from the function, and the function's visibility. Helpers a
    /// caller does not use must not warn.
    fn helper_head(&self, doc: &str) -> TokenStream {
        let vis = self.helper_vis;
        let lints = lint_attrs(&self.item.attrs);
        // After the copied lints, so a `#[deny(unused)]` does not undo it.
        quote! {
            #[doc = #doc]
            #(#lints)*
            #[allow(dead_code, clippy::unused_async, unused_mut)]
            #vis
        }
    }

    /// The signature of a helper taking the same arguments as the function.
    fn helper_signature(&self, ident: &Ident) -> TokenStream {
        let mut sig = self.item.sig.clone();
        sig.ident = ident.clone();
        quote!(#sig)
    }

    /// Checks the value type, computes the key and resolves the cache:
    /// `__herdcache_through`, `__herdcache_key`, `__herdcache_cache`.
    fn prelude(&self) -> TokenStream {
        let private = &self.private;
        let site = &self.site;
        let outcome = self.outcome_type();
        let config = self.config();
        let key = self.key();
        let scope = self.scope();
        // At the value's type: a value that cannot be cached is one error there.
        let span = type_argument_span(&self.plan.ret, 0);
        let through = quote_spanned! {span=>
            {
                #[allow(unused_imports)]
                use #private::{CacheableValue as _, NotCacheableValue as _, NotSharedValue as _};
                (&&&#private::ValueProbe::<#outcome>::new()).through()
            }
        };
        // A key or value that cannot travel to Redis is one error at
        // `distributed`.
        let codec = match self.plan.distributed {
            Some((version, span)) => {
                // Every token at `distributed`, the path to the runtime
                // included: rustc reports a bound at the path's span.
                let private = respan(private.clone(), span);
                let value = quote_spanned!(span=> <#outcome as #private::Outcome>::Value);
                quote_spanned! {span=>
                    ::core::option::Option::Some(#private::Codec::new(
                        #version,
                        {
                            #[allow(unused_imports)]
                            use #private::{KeyCannotTravel as _, KeyTravels as _};
                            (&&&#private::KeyWireProbe::of(&__herdcache_key)).wire()
                        },
                        {
                            #[allow(unused_imports)]
                            use #private::{ValueCannotTravel as _, ValueTravels as _};
                            (&&&#private::ValueWireProbe::<#value>::new()).wire()
                        },
                    ))
                }
            }
            None => quote!(::core::option::Option::None),
        };
        quote! {
            let __herdcache_through = #through;
            static __HERDCACHE_SLOT: #private::Slot = #private::Slot::new(#site);
            // The key may read an argument named `_unused` on purpose.
            #[allow(clippy::used_underscore_binding)]
            let __herdcache_key = #key;
            let __herdcache_cache = #private::Through::cache(
                __herdcache_through, &__HERDCACHE_SLOT, #scope, #config, #codec,
            );
        }
    }

    /// A method's cache is per `Self` type, so each instantiation of a
    /// generic impl has its own.
    fn scope(&self) -> TokenStream {
        if self.plan.in_impl {
            quote!(::core::any::type_name::<Self>())
        } else {
            quote!("")
        }
    }

    /// A return type the macro took for a plain value may be a `Result` or
    /// `Option` behind an alias of another name (`DbResult<T>`): caching it
    /// as a plain value would cache errors. Checked by type, at the return
    /// type.
    fn alias_check(&self) -> Option<TokenStream> {
        if self.plan.kind != ReturnKind::Plain {
            return None;
        }
        let (private, ret) = (&self.private, &self.plan.ret);
        let span = syn::spanned::Spanned::span(ret);
        Some(quote_spanned! {span=>
            {
                #[allow(unused_imports)]
                use #private::{PlainIsPlain as _, PlainIsResultOrOption as _};
                (&&&#private::PlainProbe::<#ret>::new()).check_plain();
            }
        })
    }

    /// What the engine sees: the return type, or `Plain<T>` for a plain value.
    fn outcome_type(&self) -> TokenStream {
        let (private, ret) = (&self.private, &self.plan.ret);
        match self.plan.kind {
            ReturnKind::Plain => quote!(#private::Plain<#ret>),
            ReturnKind::Result | ReturnKind::Option => quote!(#ret),
        }
    }

    /// The caller's value from the engine's outcome.
    fn to_caller(&self, outcome: TokenStream) -> TokenStream {
        match self.plan.kind {
            ReturnKind::Plain => quote!(#outcome.0),
            ReturnKind::Result | ReturnKind::Option => outcome,
        }
    }

    /// The name in stats: the attribute's, or the function's path.
    fn name(&self) -> TokenStream {
        let fn_name = &self.item.sig.ident;
        match &self.plan.name {
            Some(name) => quote!(#name),
            // A method's default name carries its type; a free function's, its module.
            None if self.plan.in_impl => quote! {
                ::std::format!("{}::{}", ::core::any::type_name::<Self>(), ::core::stringify!(#fn_name))
            },
            None => quote! {
                ::core::concat!(::core::module_path!(), "::", ::core::stringify!(#fn_name))
            },
        }
    }

    fn config(&self) -> TokenStream {
        let private = &self.private;
        let plan = self.plan;
        let name = self.name();
        let ttl_nanos = nanos(plan.ttl);
        let jitter = plan.jitter;
        let capacity = plan
            .max_capacity
            .map(|capacity| quote!(.max_capacity(#capacity)));
        let policy = &plan.policy;
        let duration = |setter: &str, duration: Option<std::time::Duration>| {
            duration.map(|duration| {
                let setter = format_ident!("{}", setter);
                let nanos = nanos(duration);
                quote!(.#setter(#private::Duration::from_nanos(#nanos)))
            })
        };
        let swr = duration("swr", policy.swr);
        let fail_safe = duration("fail_safe", policy.fail_safe);
        let throttle = duration("fail_safe_throttle", policy.fail_safe_throttle);
        let timeout = duration("timeout", policy.timeout);
        let hard_timeout = duration("hard_timeout", policy.hard_timeout);
        let early_refresh = policy
            .early_refresh
            .map(|beta| quote!(.early_refresh(#beta)));
        let varied = (policy.negative.is_some()
            || policy.negative_ttl.is_some()
            || policy.ttl_for.is_some())
        .then(|| quote!(.varied_lifetimes()));
        let distributed = plan.distributed.map(|_| quote!(.distributed()));
        let memory = plan.memory.map(|memory| match memory {
            crate::attr::Memory::Moka => quote!(.memory(#private::Memory::Moka)),
            crate::attr::Memory::Quick => quote!(.memory(#private::Memory::Quick)),
        });
        let retry = policy.retry.as_ref().map(|retry| {
            let attempts = retry.attempts;
            let base = duration("base", retry.base);
            let cap = duration("cap", retry.cap);
            quote!(.retry(#private::Retry::attempts(#attempts) #base #cap))
        });
        let breaker = policy
            .circuit_breaker
            .as_ref()
            .map(|(settings, span)| match settings {
                // The user's expression, at its own tokens: a wrong type is
                // reported there.
                Some(settings) => quote!(.circuit_breaker(#settings)),
                None => quote_spanned!(*span=> .circuit_breaker(#private::CircuitBreaker::new())),
            });
        quote! {
            || #private::CacheConfig::new(#name, #private::Duration::from_nanos(#ttl_nanos))
                .jitter(#jitter)
                #capacity #swr #fail_safe #throttle #early_refresh #varied #timeout #hard_timeout
                #distributed #memory #retry #breaker
        }
    }

    /// `__herdcache_cache.<method>(key, share, loader).await`, boxed: the
    /// slow path holds the body's whole state, and unboxed it would make
    /// every call's future that big, which a hit then pays to move (measured:
    /// 360 bytes and 64 instructions of `memcpy` per hit for a one-line body).
    /// The box is allocated on a miss only.
    fn load_call(&self, load: Load) -> TokenStream {
        let private = &self.private;
        let loader = match self.plan.kind {
            ReturnKind::Plain => {
                let loader = self.loader();
                quote!(#private::plain(#loader))
            }
            ReturnKind::Result | ReturnKind::Option => self.loader(),
        };
        // A load callers may stop waiting for runs on its own task, from
        // copies of the arguments: made in a statement of their own, before
        // the loader (an `async move`) takes the arguments.
        let deadlines = self.plan.policy.has_deadlines();
        let (method, copies, detached) = match load {
            Load::Cached | Load::Entry if deadlines => {
                let background = self.background();
                let method = if load == Load::Entry {
                    quote!(load_entry_or_detach)
                } else {
                    quote!(load_or_detach)
                };
                (
                    method,
                    Some(quote! {
                        let __herdcache_detached =
                            #private::FnCache::detachable(__herdcache_cache, #background);
                    }),
                    Some(quote!(__herdcache_detached,)),
                )
            }
            Load::Cached => (quote!(load), None, None),
            Load::Refresh => (quote!(refresh), None, None),
            Load::Entry => (quote!(load_entry), None, None),
        };
        let hooks = self.load_hooks();
        if load == Load::Entry {
            return quote! {
                #copies
                let (__herdcache_outcome, __herdcache_meta) =
                    ::std::boxed::Box::pin(#private::FnCache::#method(
                        __herdcache_cache,
                        __herdcache_key,
                        #hooks,
                        #private::Through::loader(__herdcache_through, #loader),
                        #detached
                    ))
                    .await;
                #private::WithEntry::with_entry(
                    #private::Through::to_caller(__herdcache_through, __herdcache_outcome),
                    __herdcache_meta,
                )
            };
        }
        let call = self.to_caller(quote! {
            #private::Through::to_caller(
                __herdcache_through,
                ::std::boxed::Box::pin(#private::FnCache::#method(
                    __herdcache_cache,
                    __herdcache_key,
                    #hooks,
                    #private::Through::loader(__herdcache_through, #loader),
                    #detached
                ))
                .await,
            )
        });
        quote! {
            #copies
            #call
        }
    }

    /// The load: a future that owns the arguments and awaits
    /// `<fn>_uncached` with them, the one item that holds the body, so the
    /// body is compiled once. Only where the macro cannot tell how to name
    /// that item (see [`Siblings::Unknown`]) is the body inlined here.
    fn loader(&self) -> TokenStream {
        // At the body's braces: a key expression that moves an argument the
        // body needs is reported between the two, not over the attribute.
        let body = self.item.block.brace_token.span.join();
        let async_move = quote_spanned!(body=> async move);
        let uncached_or_free = self.uncached_or_free();
        let args = self.plan.args.iter().map(|arg| &arg.ident);
        let receiver = self.item.sig.receiver().map(|_| quote!(self,));
        if self.plan.policy.has_attempts() {
            // Under `retry`, each attempt calls the body with its own
            // copies; with the breaker alone, the one attempt takes them.
            let retries = self.plan.policy.retry.is_some();
            let copy = |ident: &Ident| {
                if retries {
                    quote_spanned!(ident.span()=> ::core::clone::Clone::clone(&#ident))
                } else {
                    quote!(#ident)
                }
            };
            let args = self.plan.args.iter().map(|arg| copy(&arg.ident));
            let receiver = self.item.sig.receiver().map(|receiver| {
                let copied = copy(&Ident::new("self", receiver.self_token.span));
                quote!(#copied,)
            });
            let call = self.unsafe_if_needed(quote!(#uncached_or_free(#receiver #(#args),*)));
            let attempts = self.attempts(call);
            return quote! {
                #async_move {
                    #[allow(clippy::used_underscore_binding)]
                    #attempts
                }
            };
        }
        let Some(uncached) = self.uncached_path() else {
            return self.inline_loader();
        };
        let call = self.unsafe_if_needed(quote!(#uncached(#receiver #(#args),*)));
        quote! {
            #async_move {
                // An argument named `_unused` on purpose is passed on.
                #[allow(clippy::used_underscore_binding)]
                let __herdcache_body = #call;
                __herdcache_body.await
            }
        }
    }

    /// A call of the body's item, in `unsafe` for an `unsafe fn` (its
    /// helper is `unsafe` too: the caller's contract carries over).
    pub(super) fn unsafe_if_needed(&self, call: TokenStream) -> TokenStream {
        match self.item.sig.unsafety {
            Some(_) => quote!(unsafe { #call }),
            None => call,
        }
    }

    /// The path of `<fn>_uncached`; where the macro cannot tell (see
    /// `Siblings::Unknown`), the name as a free function's: right unless
    /// it is an associated function with no `self` and no `Self`, outside
    /// `#[cached_impl]`, whose source the macro could not read.
    pub(super) fn uncached_or_free(&self) -> TokenStream {
        self.uncached_path().unwrap_or_else(|| {
            let uncached = format_ident!("{}_uncached", self.item.sig.ident);
            quote!(#uncached)
        })
    }

    /// The path of `<fn>_uncached` from the function's own code, if the
    /// macro knows it.
    pub(super) fn uncached_path(&self) -> Option<TokenStream> {
        let uncached = format_ident!("{}_uncached", self.item.sig.ident);
        match self.plan.siblings {
            Siblings::OfSelf => Some(quote!(Self::#uncached)),
            Siblings::InScope => Some(quote!(#uncached)),
            Siblings::Unknown => None,
        }
    }

    /// The body itself as a future that owns the arguments. The unreachable
    /// `return` pins the future's output to the declared return type at the
    /// user's span, so `?` infers and type errors land on the user's code
    /// (as tracing's `#[instrument]` does).
    fn inline_loader(&self) -> TokenStream {
        let ret = &self.plan.ret;
        let fake_return = fake_return(&quote!(#ret), syn::spanned::Spanned::span(ret));
        // The body's statements, not its block: a block as the last
        // expression would lint (`unused_braces`) at the user's braces.
        let statements = &self.item.block.stmts;
        let body = self.item.block.brace_token.span.join();
        let async_move = quote_spanned!(body=> async move);
        quote! {
            #async_move {
                #fake_return
                #(#statements)*
            }
        }
    }
}

/// What `<fn>_entry` returns for a function returning `ret`: the value
/// wrapped in `Entry` inside the `Result` or `Option` (`io::Result<T>` is
/// `io::Result<Entry<T>>`), or `Entry<ret>` for a plain value.
pub(crate) fn entry_return(ret: &Type, kind: ReturnKind, krate: &TokenStream) -> Type {
    if kind != ReturnKind::Plain {
        let mut wrapped = ret.clone();
        let mut inner = &mut wrapped;
        while let Type::Group(group) = inner {
            inner = &mut group.elem;
        }
        if let Type::Path(path) = inner {
            if let Some(syn::PathSegment {
                arguments: syn::PathArguments::AngleBracketed(args),
                ..
            }) = path.path.segments.last_mut()
            {
                if let Some(syn::GenericArgument::Type(value)) = args.args.first_mut() {
                    *value = syn::parse_quote!(#krate::Entry<#value>);
                    return wrapped;
                }
            }
        }
    }
    syn::parse_quote!(#krate::Entry<#ret>)
}

/// An unreachable `return` of type `ret`, at `span`: inside an `async`
/// block over a function's body, it pins the block's output to the
/// declared return type at the user's span, so `?` infers and type errors
/// land on the user's code (as tracing's `#[instrument]` does).
pub(crate) fn fake_return(ret: &TokenStream, span: proc_macro2::Span) -> TokenStream {
    quote_spanned! {span=>
        #[allow(
            unknown_lints,
            unreachable_code,
            clippy::diverging_sub_expression,
            clippy::empty_loop,
            clippy::let_unit_value,
            clippy::let_with_type_underscore,
            clippy::unreachable
        )]
        if false {
            let __herdcache_fake_return: #ret = loop {};
            return __herdcache_fake_return;
        }
    }
}

/// `tokens` with every token at `span`.
pub(crate) fn respan(tokens: TokenStream, span: proc_macro2::Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut token| {
            if let proc_macro2::TokenTree::Group(group) = &token {
                let mut respanned =
                    proc_macro2::Group::new(group.delimiter(), respan(group.stream(), span));
                respanned.set_span(span);
                token = proc_macro2::TokenTree::Group(respanned);
            } else {
                token.set_span(span);
            }
            token
        })
        .collect()
}

/// The span of `E` in `Result<T, E>`, or of the whole type for an alias
/// such as `anyhow::Result<T>`.
pub(crate) fn error_type_span(ret: &Type) -> proc_macro2::Span {
    type_argument_span(ret, 1)
}

/// The span of the `index`th type argument of a `Result` or `Option` (`T`
/// in `Result<T, E>`), or of the whole type when it has no such argument.
pub(crate) fn type_argument_span(ret: &Type, index: usize) -> proc_macro2::Span {
    let argument = match crate::validate::strip_type_groups(ret) {
        Type::Path(path) => path.path.segments.last().and_then(|segment| {
            let is_outcome = segment.ident == "Result" || segment.ident == "Option";
            match &segment.arguments {
                syn::PathArguments::AngleBracketed(args)
                    if is_outcome && (index == 0 || args.args.len() == 2) =>
                {
                    args.args.iter().nth(index)
                }
                _ => None,
            }
        }),
        _ => None,
    };
    match argument {
        Some(argument) => syn::spanned::Spanned::span(argument),
        None => syn::spanned::Spanned::span(ret),
    }
}

/// The attributes a helper keeps from the function: `cfg` and lint levels.
/// An `expect` becomes an `allow`: the lint it expects may not fire in a
/// helper, and an unfulfilled expectation is itself a warning.
pub(crate) fn lint_attrs(attrs: &[Attribute]) -> impl Iterator<Item = Attribute> + '_ {
    attrs.iter().filter_map(|attr| {
        let path = attr.path();
        if ["cfg", "allow", "warn", "deny"]
            .iter()
            .any(|name| path.is_ident(name))
        {
            return Some(attr.clone());
        }
        path.is_ident("expect").then(|| expect_as_allow(attr))
    })
}

/// `#[expect(..)]` as `#[allow(..)]`.
pub(crate) fn expect_as_allow(attr: &Attribute) -> Attribute {
    let mut allow = attr.clone();
    if let syn::Meta::List(list) = &mut allow.meta {
        list.path = syn::parse_quote!(allow);
    }
    allow
}

fn nanos(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}
