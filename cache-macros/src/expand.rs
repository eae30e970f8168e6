//! Writing the code: the cached function and its helpers.
//!
//! The function keeps its signature; only its body is rewritten. Generated
//! code names only `#krate::__private::…`, `::core` and `::std`, and its
//! locals start with `__herdcache_`.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::{Attribute, Ident, ItemFn, Type};

use crate::validate::{KeySpec, Plan, ReturnKind};

pub(crate) fn expand(plan: &Plan, item: &ItemFn) -> TokenStream {
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
    };
    let cached = cx.cached_fn();
    let refresh = cx.refresh_fn();
    let uncached = cx.uncached_fn();
    let invalidate = cx.invalidate_fn();
    let handle = cx.cache_fn();
    quote! {
        #cached
        #refresh
        #uncached
        #invalidate
        #handle
    }
}

struct Context<'a> {
    plan: &'a Plan,
    item: &'a ItemFn,
    private: TokenStream,
    site: TokenStream,
}

impl Context<'_> {
    /// The original function, its body now going through the cache.
    fn cached_fn(&self) -> TokenStream {
        let ItemFn {
            attrs, vis, sig, ..
        } = self.item;
        let private = &self.private;
        let prelude = self.prelude();
        let from_value = self.wrap_value(quote!(__herdcache_value));
        let load = self.load_call(quote!(load));
        let alias_check = self.alias_check();
        quote! {
            #(#attrs)*
            #vis #sig {
                #alias_check
                #prelude
                if let ::core::option::Option::Some(__herdcache_value) =
                    #private::FnCache::get_fresh(__herdcache_cache, &__herdcache_key)
                {
                    return #from_value;
                }
                #load
            }
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
        let load = self.load_call(quote!(refresh));
        quote! {
            #head #signature {
                #prelude
                #load
            }
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

    /// `<fn>_invalidate(<the arguments the key uses>)`.
    fn invalidate_fn(&self) -> TokenStream {
        let sig = &self.item.sig;
        let ident = format_ident!("{}_invalidate", sig.ident);
        let doc = format!(
            "Drops the cached value of `{}` for these arguments. Once this returns, no call sees a value loaded before it.",
            sig.ident
        );
        let params = self.plan.args.iter().filter_map(|arg| {
            if !self.plan.key_args.contains(&arg.ident) {
                return None;
            }
            let (name, ty) = (&arg.ident, &arg.ty);
            Some(quote!(#name: #ty))
        });
        let head = self.helper_head(&doc);
        let generics = &sig.generics;
        let where_clause = &sig.generics.where_clause;
        let unsafety = &sig.unsafety;
        let prelude = self.prelude();
        let private = &self.private;
        quote! {
            #head async #unsafety fn #ident #generics (#(#params),*) #where_clause {
                #prelude
                #private::FnCache::invalidate(__herdcache_cache, &__herdcache_key);
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
        quote! {
            #head fn #ident() -> &'static #private::CacheHandle {
                #private::CacheHandle::of(#site, #scope)
            }
        }
    }

    /// What every helper starts with: its doc, `cfg` and lint attributes
    /// kept from the function, and the function's visibility. Helpers a
    /// caller does not use must not warn.
    fn helper_head(&self, doc: &str) -> TokenStream {
        let vis = &self.item.vis;
        let lints = lint_attrs(&self.item.attrs);
        // After the copied lints, so a `#[deny(unused)]` does not undo it.
        quote! {
            #[doc = #doc]
            #(#lints)*
            #[allow(dead_code)]
            #vis
        }
    }

    /// The signature of a helper taking the same arguments as the function.
    fn helper_signature(&self, ident: &Ident) -> TokenStream {
        let mut sig = self.item.sig.clone();
        sig.ident = ident.clone();
        quote!(#sig)
    }

    /// Resolves the cache and computes the key: `__herdcache_cache`, `__herdcache_key`.
    fn prelude(&self) -> TokenStream {
        let private = &self.private;
        let site = &self.site;
        let value = self.value_type();
        let config = self.config();
        let key = self.key();
        let scope = self.scope();
        quote! {
            static __HERDCACHE_SLOT: #private::Slot = #private::Slot::new(#site);
            let __herdcache_key = #key;
            let __herdcache_cache = __HERDCACHE_SLOT.cache::<_, #value>(#scope, #config);
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

    fn value_type(&self) -> TokenStream {
        let (private, ret) = (&self.private, &self.plan.ret);
        match self.plan.kind {
            ReturnKind::Plain => quote!(#ret),
            ReturnKind::Result | ReturnKind::Option => {
                quote!(<#ret as #private::Outcome>::Value)
            }
        }
    }

    fn wrap_value(&self, value: TokenStream) -> TokenStream {
        let (private, ret) = (&self.private, &self.plan.ret);
        match self.plan.kind {
            ReturnKind::Plain => value,
            ReturnKind::Result | ReturnKind::Option => {
                quote!(<#ret as #private::Outcome>::from_value(#value))
            }
        }
    }

    fn config(&self) -> TokenStream {
        let private = &self.private;
        let plan = self.plan;
        let fn_name = &self.item.sig.ident;
        let name = match &plan.name {
            Some(name) => quote!(#name),
            // A method's default name carries its type; a free function's, its module.
            None if plan.in_impl => quote! {
                ::std::format!("{}::{}", ::core::any::type_name::<Self>(), ::core::stringify!(#fn_name))
            },
            None => quote! {
                ::core::concat!(::core::module_path!(), "::", ::core::stringify!(#fn_name))
            },
        };
        let ttl_nanos = u64::try_from(plan.ttl.as_nanos()).unwrap_or(u64::MAX);
        let jitter = plan.jitter;
        let capacity = plan
            .max_capacity
            .map(|capacity| quote!(.max_capacity(#capacity)));
        quote! {
            || #private::CacheConfig::new(#name, #private::Duration::from_nanos(#ttl_nanos))
                .jitter(#jitter)
                #capacity
        }
    }

    /// The owned key, from the arguments it names, each part checked.
    fn key(&self) -> TokenStream {
        let private = &self.private;
        let probe = |span: proc_macro2::Span, call: TokenStream| {
            quote_spanned! {span=>
                {
                    #[allow(unused_imports)]
                    use #private::{InvalidKeyPart as _, ValidKeyPart as _};
                    #call
                }
            }
        };
        match &self.plan.key {
            KeySpec::Expr(expr) => {
                let span = syn::spanned::Spanned::span(expr);
                probe(
                    span,
                    quote_spanned! {span=>
                        let __herdcache_part = #expr;
                        (&&&#private::KeyProbe::of(&__herdcache_part)).key_value(__herdcache_part)
                    },
                )
            }
            KeySpec::Args(idents) => {
                let owned: Vec<TokenStream> = idents
                    .iter()
                    .map(|ident| {
                        let borrowed = self.borrowed_arg(ident);
                        probe(
                            ident.span(),
                            quote_spanned! {ident.span()=>
                                (&&&#private::KeyProbe::of(#borrowed)).key_part(#borrowed)
                            },
                        )
                    })
                    .collect();
                match owned.as_slice() {
                    [single] => single.clone(),
                    many => quote!((#(#many,)*)),
                }
            }
        }
    }

    /// One argument as a reference to the value the key copies: the
    /// argument itself behind a reference (`&str` keys as `String`), a
    /// borrow of it otherwise.
    fn borrowed_arg(&self, ident: &Ident) -> TokenStream {
        let ty = self
            .plan
            .args
            .iter()
            .find(|arg| &arg.ident == ident)
            .map(|arg| &arg.ty);
        let span = ident.span();
        match ty {
            Some(Type::Reference(_)) => quote_spanned!(span=> &*#ident),
            _ => quote_spanned!(span=> &#ident),
        }
    }

    /// `__herdcache_cache.<method>(key, share, loader).await`, boxed: the
    /// slow path holds the body's whole state, and unboxed it would make
    /// every call's future that big, which a hit then pays to move (measured:
    /// 360 bytes and 64 instructions of `memcpy` per hit for a one-line body).
    /// The box is allocated on a miss only.
    fn load_call(&self, method: TokenStream) -> TokenStream {
        let private = &self.private;
        let ret = &self.plan.ret;
        let loader = self.loader();
        let call = |share: TokenStream, loader: TokenStream| {
            quote! {
                ::std::boxed::Box::pin(
                    #private::FnCache::#method(__herdcache_cache, __herdcache_key, #share, #loader)
                ).await
            }
        };
        match self.plan.kind {
            ReturnKind::Result => {
                // Spanned at the error type: one that cannot be shared is
                // reported there.
                let span = error_type_span(ret);
                let share = quote_spanned! {span=> {
                    #[allow(unused_imports)]
                    use #private::{ShareByClone as _, ShareBySharedError as _, ShareNotPossible as _};
                    (&&&#private::ShareProbe::<<#ret as #private::Outcome>::Failure>::new())
                        .failure_share()
                }};
                call(share, loader)
            }
            ReturnKind::Option => call(quote!(#private::FailureShare::unit()), loader),
            ReturnKind::Plain => {
                let call = call(
                    quote!(#private::FailureShare::never()),
                    quote!(#private::plain(#loader)),
                );
                quote!(#call.0)
            }
        }
    }

    /// The body as a future that owns the arguments. The unreachable
    /// `return` pins the future's output to the declared return type at the
    /// user's span, so `?` infers and type errors land on the user's code
    /// (as tracing's `#[instrument]` does).
    fn loader(&self) -> TokenStream {
        let ret = &self.plan.ret;
        let block = &self.item.block;
        let ret_span = syn::spanned::Spanned::span(ret);
        let fake_return = quote_spanned! {ret_span=>
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
        };
        quote! {
            async move {
                #fake_return
                #block
            }
        }
    }
}

/// The span of `E` in `Result<T, E>`, or of the whole type for an alias
/// such as `anyhow::Result<T>`.
fn error_type_span(ret: &Type) -> proc_macro2::Span {
    let error_type = match crate::validate::strip_type_groups(ret) {
        Type::Path(path) => {
            path.path
                .segments
                .last()
                .and_then(|segment| match &segment.arguments {
                    syn::PathArguments::AngleBracketed(args) if args.args.len() == 2 => {
                        args.args.last()
                    }
                    _ => None,
                })
        }
        _ => None,
    };
    match error_type {
        Some(error_type) => syn::spanned::Spanned::span(error_type),
        None => syn::spanned::Spanned::span(ret),
    }
}

/// The attributes a helper keeps from the function: `cfg` and lint levels.
/// An `expect` becomes an `allow`: the lint it expects may not fire in a
/// helper, and an unfulfilled expectation is itself a warning.
fn lint_attrs(attrs: &[Attribute]) -> impl Iterator<Item = Attribute> + '_ {
    attrs.iter().filter_map(|attr| {
        let path = attr.path();
        if ["cfg", "allow", "warn", "deny"]
            .iter()
            .any(|name| path.is_ident(name))
        {
            return Some(attr.clone());
        }
        if !path.is_ident("expect") {
            return None;
        }
        let mut allow = attr.clone();
        if let syn::Meta::List(list) = &mut allow.meta {
            list.path = syn::parse_quote!(allow);
        }
        Some(allow)
    })
}
