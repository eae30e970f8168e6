//! What the policies add to the generated code: the hooks a load uses
//! (sharing and caching failures, a value's own ttl, the timeout error), and
//! the closure that makes a background load from copies of the arguments.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::{Ident, Type};

use super::{error_type_span, nanos, Context};
use crate::validate::{Receiver, ReturnKind};

impl Context<'_> {
    /// `__herdcache_hooks`: how a failure is shared and cached, a value's own ttl.
    pub(super) fn hooks(&self) -> TokenStream {
        let private = &self.private;
        let ret = &self.plan.ret;
        let policy = &self.plan.policy;
        let share = match self.plan.kind {
            ReturnKind::Result => {
                // Spanned at the error type: one that cannot be shared is
                // reported there.
                let span = error_type_span(ret);
                quote_spanned! {span=> {
                    #[allow(unused_imports)]
                    use #private::{
                        ShareByClone as _, ShareByMessage as _, ShareBySharedError as _,
                        ShareNotPossible as _,
                    };
                    (&&&&#private::ShareProbe::<<#ret as #private::Outcome>::Failure>::new())
                        .failure_share()
                }}
            }
            ReturnKind::Option => quote!(#private::FailureShare::unit()),
            ReturnKind::Plain => quote!(#private::FailureShare::never()),
        };
        let negative = match (&policy.negative, policy.negative_ttl) {
            (Some(rule), _) if self.plan.kind == ReturnKind::Result => {
                Some(quote!(#private::Negative::Rule(#rule)))
            }
            (_, Some(ttl)) => {
                let nanos = nanos(ttl);
                Some(quote!(#private::Negative::Always(#private::Duration::from_nanos(#nanos))))
            }
            _ => None,
        }
        .map(|negative| quote!(.negative(#negative)));
        let ttl_for = policy.ttl_for.as_ref().map(|path| quote!(.ttl_for(#path)));
        let timeout_error = policy.hard_timeout.map(|_| {
            // At the error type: one that cannot hold a timeout is one error there.
            let span = error_type_span(ret);
            quote_spanned! {span=>
                .timeout_error({
                    #[allow(unused_imports)]
                    use #private::{TimeoutConverts as _, TimeoutDoesNotConvert as _};
                    (&&&#private::TimeoutProbe::<<#ret as #private::Outcome>::Failure>::new())
                        .timeout_error()
                })
            }
        });
        let tags = self.tags();
        // Closures: a hit never builds them (a cached failure builds the
        // hooks, never the tags, which allocate).
        quote! {
            let __herdcache_hooks = || #private::Through::hooks(
                __herdcache_through,
                #private::LoadHooks::new(#share) #negative #ttl_for #timeout_error,
            );
            #tags
        }
    }

    /// `__herdcache_tags`: the tags, named from the arguments when a load
    /// begins.
    fn tags(&self) -> Option<TokenStream> {
        if self.plan.tags.is_empty() {
            return None;
        }
        let private = &self.private;
        let pushes = crate::tags::pushes(&self.plan.tags);
        Some(quote! {
            let __herdcache_tags = || {
                let mut __herdcache_tags = #private::Tags::new();
                #pushes
                __herdcache_tags
            };
        })
    }

    /// The hooks of a load, with its tags.
    pub(super) fn load_hooks(&self) -> TokenStream {
        if self.plan.tags.is_empty() {
            quote!(__herdcache_hooks())
        } else {
            let private = &self.private;
            quote!(#private::LoadHooks::tags(__herdcache_hooks(), __herdcache_tags()))
        }
    }

    /// What names a background refresh's tags.
    pub(super) fn tags_source(&self) -> TokenStream {
        if self.plan.tags.is_empty() {
            let private = &self.private;
            quote!(#private::Tags::new)
        } else {
            quote!(__herdcache_tags)
        }
    }

    /// What makes a background load (`swr`, `early_refresh`): a closure,
    /// called only when a refresh starts, that copies the arguments (and
    /// `self`) and calls `<fn>_uncached` with them, the item that holds the
    /// body.
    pub(super) fn background(&self) -> TokenStream {
        let private = &self.private;
        if !self.plan.policy.runs_in_background() {
            return quote!(|| ::core::option::Option::None);
        }
        let probes = quote!(
            #[allow(unused_imports)]
            use #private::{CanCopy as _, CannotCopy as _};
        );
        // An argument behind a reference is lent on as `&copy`; any other
        // is passed as its copy.
        let copy = |span: proc_macro2::Span, name: &Ident, borrowed: TokenStream, lent: bool| {
            let method = if lent {
                quote_spanned!(span=> copy_borrowed)
            } else {
                quote_spanned!(span=> copy_owned)
            };
            quote_spanned! {span=>
                // A copy of an argument named `_unused` on purpose.
                #[allow(clippy::used_underscore_binding)]
                let #name = {
                    #probes
                    (&&&#private::CopyProbe::of(#borrowed)).#method(#borrowed)
                };
            }
        };
        let retries = self.plan.policy.retry.is_some();
        // Under `retry`, each attempt takes its own copy of what is passed
        // by value.
        let pass = |name: &Ident, lent: bool| match (lent, retries) {
            (true, _) => quote!(&#name),
            (false, false) => quote!(#name),
            (false, true) => quote!(::core::clone::Clone::clone(&#name)),
        };
        let mut copies = Vec::new();
        let mut passed = Vec::new();
        for (index, arg) in self.plan.args.iter().enumerate() {
            let name = format_ident!("__herdcache_copy_{}", index);
            let lent = matches!(arg.ty, Type::Reference(_));
            copies.push(copy(
                arg.ident.span(),
                &name,
                self.borrowed_arg(&arg.ident),
                lent,
            ));
            passed.push(pass(&name, lent));
        }
        let uncached = self.uncached_or_free();
        let call = match (self.plan.receiver, self.item.sig.receiver()) {
            (Some(kind), Some(receiver)) => {
                let name = format_ident!("__herdcache_copy_self");
                let span = receiver.self_token.span;
                // `&self`, and `self: &Arc<Self>`: lent; `self`,
                // `self: Arc<Self>`: passed as the copy.
                let lent = kind != Receiver::Owned || matches!(*receiver.ty, Type::Reference(_));
                let borrowed = if lent {
                    quote_spanned!(span=> &*self)
                } else {
                    quote_spanned!(span=> &self)
                };
                copies.push(copy(span, &name, borrowed, lent));
                let this = pass(&name, lent);
                quote!(#uncached(#this, #(#passed),*))
            }
            _ => quote!(#uncached(#(#passed),*)),
        };
        let call = self.unsafe_if_needed(call);
        let body = if self.plan.policy.has_attempts() {
            self.attempts(call)
        } else {
            match self.plan.kind {
                ReturnKind::Plain => quote!(#private::plain(#call).await),
                ReturnKind::Result | ReturnKind::Option => quote!(#call.await),
            }
        };
        quote! {
            || {
                #(#copies)*
                #private::Through::background(__herdcache_through, async move { #body })
            }
        }
    }

    /// `FnCache::attempts(..).await` over `call` (a call of the body's
    /// item, made anew for each attempt): the retries and the circuit
    /// breaker, for a function that returns a `Result`.
    pub(super) fn attempts(&self, call: TokenStream) -> TokenStream {
        let private = &self.private;
        let ret = &self.plan.ret;
        let failure = quote!(<#ret as #private::Outcome>::Failure);
        let transient = match &self.plan.policy.retry_if {
            Some(path) => {
                // At the path: a function of the wrong type is reported there.
                let span = syn::spanned::Spanned::span(path);
                quote_spanned! {span=>
                    ::core::option::Option::Some({
                        let __herdcache_transient: fn(&#failure) -> bool = #path;
                        __herdcache_transient
                    })
                }
            }
            None => quote!(::core::option::Option::None),
        };
        let unavailable = if self.plan.policy.circuit_breaker.is_some() {
            // At the error type: one that cannot hold the breaker's error
            // is one error there.
            let span = error_type_span(ret);
            quote_spanned! {span=> {
                #[allow(unused_imports)]
                use #private::{TimeoutConverts as _, TimeoutDoesNotConvert as _};
                (&&&#private::TimeoutProbe::<#failure>::new()).unavailable_error()
            }}
        } else {
            // Without a breaker, no attempt is ever refused.
            quote! {{
                let __herdcache_unavailable: fn() -> #failure =
                    || ::core::unreachable!("herdcache: no circuit breaker to refuse a load");
                __herdcache_unavailable
            }}
        };
        // With the breaker alone there is one attempt, which takes the
        // arguments themselves.
        let method = if self.plan.policy.retry.is_some() {
            quote!(attempts)
        } else {
            quote!(attempt_once)
        };
        quote! {
            #private::FnCache::#method(__herdcache_cache, #transient, #unavailable, || #call).await
        }
    }
}
