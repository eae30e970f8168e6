//! `#[idempotent(key = idem_key, scope = customer_id, ttl = "24h", ..)]` on
//! a mutating async function that returns a `Result`: one run per key and
//! scope, duplicates join or replay its outcome.
//!
//! The function keeps its signature and forwards to the generated
//! `<fn>_idempotent`, which returns `Idempotent<Result<T, E>>` (the outcome
//! and whether it was replayed). The body moves to `<fn>_uncached`, called
//! from owned copies of the arguments on a task of its own, so the
//! operation runs to completion even if every caller goes away.

use std::time::Duration;

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::spanned::Spanned as _;
use syn::{Expr, ExprLit, FnArg, GenericParam, Ident, ItemFn, Lit, LitStr, Pat, Path, Token, Type};

use crate::attr::{closest, duration, Errors};

const NAMES: &[&str] = &[
    "key",
    "scope",
    "ttl",
    "name",
    "fingerprint",
    "store_err",
    "wait",
    "lease",
    "fail_open",
    "fleet",
    "crate",
];

/// The arguments as written.
#[derive(Default)]
struct IdempotentArgs {
    key: Option<Expr>,
    scope: Option<Expr>,
    ttl: Option<Duration>,
    wait: Option<Duration>,
    lease: Option<Duration>,
    name: Option<LitStr>,
    fingerprint: Option<Vec<Expr>>,
    store_err: Option<Path>,
    fail_open: Option<bool>,
    fleet: Option<bool>,
    krate: Option<Path>,
}

fn parse(input: ParseStream, errors: &mut Errors) -> syn::Result<IdempotentArgs> {
    let mut args = IdempotentArgs::default();
    while !input.is_empty() {
        let name = input.call(Ident::parse_any)?;
        input.parse::<Token![=]>()?;
        let value: Expr = input.parse()?;
        let flag = |errors: &mut Errors| match &value {
            Expr::Lit(ExprLit {
                lit: Lit::Bool(flag),
                ..
            }) => Some(flag.value),
            _ => {
                errors.at(
                    value.span(),
                    format_args!("`{name}` must be `true` or `false`"),
                );
                None
            }
        };
        let once = |taken: bool, errors: &mut Errors| {
            if taken {
                errors.at(name.span(), format_args!("`{name}` is given twice"));
            }
        };
        match name.to_string().as_str() {
            "key" => {
                once(args.key.is_some(), errors);
                args.key = Some(value);
            }
            "scope" => {
                once(args.scope.is_some(), errors);
                args.scope = Some(value);
            }
            "ttl" | "wait" | "lease" => {
                if let Some(parsed) = duration(&name, &value, errors) {
                    let slot = match name.to_string().as_str() {
                        "ttl" => &mut args.ttl,
                        "wait" => &mut args.wait,
                        _ => &mut args.lease,
                    };
                    once(slot.is_some(), errors);
                    *slot = Some(parsed);
                }
            }
            "name" => match &value {
                Expr::Lit(ExprLit {
                    lit: Lit::Str(literal),
                    ..
                }) if !literal.value().trim().is_empty() => {
                    once(args.name.is_some(), errors);
                    args.name = Some(literal.clone());
                }
                _ => errors.at(
                    value.span(),
                    "`name` must be a non-empty string literal, e.g. `name = \"payments.charge\"`",
                ),
            },
            "fingerprint" => match value {
                Expr::Array(array) => {
                    once(args.fingerprint.is_some(), errors);
                    args.fingerprint = Some(array.elems.into_iter().collect());
                }
                other => errors.at(
                    other.span(),
                    "`fingerprint` must be a list of the arguments (or expressions over them) that make a request the same request, e.g. `fingerprint = [amount, currency]`",
                ),
            },
            "store_err" => match value {
                Expr::Path(path) if path.qself.is_none() => {
                    once(args.store_err.is_some(), errors);
                    args.store_err = Some(path.path);
                }
                other => errors.at(
                    other.span(),
                    "`store_err` must be the path of a `fn(&E) -> bool` that says which errors are final (stored and replayed), e.g. `store_err = PayError::is_final`",
                ),
            },
            "fail_open" => args.fail_open = flag(errors),
            "fleet" => args.fleet = flag(errors),
            "crate" => match value {
                Expr::Path(path) if path.qself.is_none() => args.krate = Some(path.path),
                other => errors.at(
                    other.span(),
                    "`crate` must be a path to the herdcache crate, e.g. `crate = ::my_reexport::herdcache`",
                ),
            },
            unknown => {
                let valid = NAMES
                    .iter()
                    .map(|name| format!("`{name}`"))
                    .collect::<Vec<_>>()
                    .join(", ");
                match closest(unknown, NAMES.iter().copied()) {
                    Some(suggestion) => errors.at(
                        name.span(),
                        format_args!("unknown attribute `{unknown}`: did you mean `{suggestion}`? valid attributes: {valid}"),
                    ),
                    None => errors.at(
                        name.span(),
                        format_args!("unknown attribute `{unknown}`; valid attributes: {valid}"),
                    ),
                }
            }
        }
        if input.is_empty() {
            break;
        }
        input.parse::<Token![,]>()?;
    }
    Ok(args)
}

/// The function, its `<fn>_idempotent` and its `<fn>_uncached`; or every
/// mistake at once.
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let item: ItemFn = syn::parse2(item)?;
    let mut errors = Errors::default();
    let args = (|input: ParseStream| parse(input, &mut errors)).parse2(args)?;
    let sig = &item.sig;
    if sig.asyncness.is_none() {
        errors.at(
            sig.fn_token.span,
            format_args!(
                "#[idempotent] works on `async fn`: make `{}` async",
                sig.ident
            ),
        );
    }
    for param in &sig.generics.params {
        if let GenericParam::Type(ty) = param {
            errors.at(
                ty.ident.span(),
                "#[idempotent] cannot be put on a function generic over types: its records are per function",
            );
        }
    }
    let ret = match &sig.output {
        syn::ReturnType::Type(_, ty) if returns_result(ty) => Some((**ty).clone()),
        output => {
            let span = match output {
                syn::ReturnType::Type(_, ty) => ty.span(),
                syn::ReturnType::Default => sig.ident.span(),
            };
            errors.at(
                span,
                "#[idempotent] needs a function that returns `Result<T, E>`: `Ok` is stored and replayed, `Err` lets a retry run again",
            );
            None
        }
    };
    if args.key.is_none() {
        errors.at(
            Span::call_site(),
            "missing `key`: name the argument holding the idempotency key, e.g. #[idempotent(key = idem_key)]",
        );
    }
    let mut arguments = Vec::new();
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(receiver) => {
                let typed_mut = matches!(&*receiver.ty, Type::Reference(reference) if reference.mutability.is_some());
                if (receiver.reference.is_some() && receiver.mutability.is_some()) || typed_mut {
                    errors.at(
                        receiver.self_token.span,
                        "the operation runs on a task of its own, from copies of the arguments: `&mut self` cannot be copied",
                    );
                }
            }
            FnArg::Typed(typed) => {
                let Pat::Ident(pat) = &*typed.pat else {
                    errors.at(
                        typed.pat.span(),
                        "#[idempotent] needs each argument to be a name (`id: u64`), not a pattern",
                    );
                    continue;
                };
                if let Type::Reference(reference) = &*typed.ty {
                    if reference.mutability.is_some() {
                        errors.at(
                            pat.ident.span(),
                            "the operation runs on a task of its own, from copies of the arguments: an exclusive borrow (`&mut`) cannot be copied",
                        );
                    }
                }
                arguments.push((pat.ident.clone(), (*typed.ty).clone()));
            }
        }
    }
    let is_method =
        sig.receiver().is_some() || crate::validate::mentions_self_type(sig.to_token_stream());
    if is_method && args.name.is_none() {
        errors.at(
            sig.ident.span(),
            "#[idempotent] on a method needs `name = \"..\"`: its records are kept under that name, which must differ between types and survive a rename",
        );
    }
    errors.finish()?;
    let ret = ret.expect("checked above");
    Ok(generate(&item, &args, &ret, &arguments, is_method))
}

/// `Result<..>` by name, an alias such as `anyhow::Result<T>` included.
fn returns_result(ty: &Type) -> bool {
    match crate::validate::strip_type_groups(ty) {
        Type::Path(path) => path
            .path
            .segments
            .last()
            .is_some_and(|segment| segment.ident == "Result"),
        _ => false,
    }
}

fn generate(
    item: &ItemFn,
    args: &IdempotentArgs,
    ret: &Type,
    arguments: &[(Ident, Type)],
    is_method: bool,
) -> TokenStream {
    let krate = args
        .krate
        .as_ref()
        .map_or_else(|| quote!(::herdcache), ToTokens::to_token_stream);
    let private = quote!(#krate::__private);
    let sig = &item.sig;
    let fn_name = &sig.ident;
    let helper = format_ident!("{}_idempotent", fn_name);
    let uncached = format_ident!("{}_uncached", fn_name);
    let path_of = |ident: &Ident| {
        if is_method {
            quote!(Self::#ident)
        } else {
            quote!(#ident)
        }
    };
    let (helper_path, uncached_path) = (path_of(&helper), path_of(&uncached));
    let receiver = sig.receiver().map(|_| quote!(self,));
    let names: Vec<&Ident> = arguments.iter().map(|(name, _)| name).collect();

    // The function as written, forwarding. The body moved to
    // `_uncached`: an `#[expect]` about it would be unfulfilled here.
    let attrs = item.attrs.iter().map(|attr| {
        if attr.path().is_ident("expect") {
            crate::expand::expect_as_allow(attr)
        } else {
            attr.clone()
        }
    });
    let vis = &item.vis;
    let unsafe_call = |call: TokenStream| match sig.unsafety {
        Some(_) => quote!(unsafe { #call }),
        None => call,
    };
    let forward_call = unsafe_call(quote!(#helper_path(#receiver #(#names),*)));
    let forward = quote! {
        #(#attrs)*
        #[allow(clippy::used_underscore_binding, unused_mut)]
        #vis #sig {
            #forward_call.await.into_inner()
        }
    };

    // `<fn>_idempotent`: the same arguments, the outcome and how it came.
    let mut helper_sig = sig.clone();
    helper_sig.ident = helper.clone();
    helper_sig.output = syn::parse_quote!(-> #private::Idempotent<#ret>);
    let outcome = |part: &str| {
        let part = format_ident!("{}", part);
        quote!(<#ret as #private::Outcome>::#part)
    };
    let (value, failure) = (outcome("Value"), outcome("Failure"));
    let name = match &args.name {
        Some(name) => quote!(#name),
        None => quote!(::core::concat!(
            ::core::module_path!(),
            "::",
            ::core::stringify!(#fn_name)
        )),
    };
    let setting = |method: &str, duration: Option<Duration>| {
        duration.map(|duration| {
            let method = format_ident!("{}", method);
            let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
            quote!(.#method(#private::Duration::from_nanos(#nanos)))
        })
    };
    let ttl = setting("ttl", args.ttl);
    let wait = setting("wait", args.wait);
    let lease = setting("lease", args.lease);
    let fail_open = args.fail_open.map(|on| quote!(.fail_open(#on)));
    let fleet = args.fleet.map(|on| quote!(.fleet(#on)));
    // The engine carries the function's error shared (`IdemFailure`), so
    // an error that is not `Clone` reaches every duplicate as a `#[cached]`
    // function's does: `E::from(SharedError)`.
    let error_span = crate::expand::error_type_span(ret);
    let carried = quote!(#private::IdemFailure<#failure>);
    let share = crate::expand::respan(
        quote! {{
            #[allow(unused_imports)]
            use #private::{
                ShareByClone as _, ShareByMessage as _, ShareBySharedError as _,
                ShareNotPossible as _,
            };
            (&&&&#private::ShareProbe::<#failure>::new()).failure_share()
        }},
        error_span,
    );
    let store_err = args.store_err.as_ref().map(|path| {
        let span = path.span();
        quote_spanned! {span=>
            .store_err(|__herdcache_error: &#carried| #path(&__herdcache_error.get()))
        }
    });
    let ret_span = ret.span();
    let slot = quote_spanned! {ret_span=>
        #private::IdemSlot::get::<#value, #carried>(&__HERDCACHE_IDEMPOTENT, || {
            #private::IdemConfig::new(#name) #ttl #wait #lease #fail_open #fleet #store_err
        })
    };
    let key = args.key.as_ref().expect("checked");
    let key_span = key.span();
    let key = quote_spanned!(key_span=> #private::IdempotencyKey::idempotency_key(&#key));
    let key_ident = bare_ident(args.key.as_ref());
    let scope_ident = bare_ident(args.scope.as_ref());
    let scope = match &args.scope {
        Some(scope) => {
            let span = scope.span();
            quote_spanned!(span=> #private::StableDigest::new().add(&#scope).finish())
        }
        None => quote!(0u128),
    };
    let fingerprint_parts: Vec<TokenStream> = match &args.fingerprint {
        Some(parts) => parts.iter().map(ToTokens::to_token_stream).collect(),
        None => names
            .iter()
            .filter(|name| Some(**name) != key_ident && Some(**name) != scope_ident)
            .map(|name| quote!(#name))
            .collect(),
    };
    let fingerprint = fingerprint_parts.iter().map(|part| {
        let span = part.span();
        quote_spanned!(span=> .add_part(&#part))
    });
    // Every token at the error type: one that cannot hold the protocol's
    // errors is one error there.
    let from_protocol = crate::expand::respan(
        quote! {
            <#failure as ::core::convert::From<#private::IdempotencyError>>::from
        },
        error_span,
    );
    let to_error = quote! {
        |__herdcache_error: #private::IdempotencyError| -> #carried {
            #private::IdemFailure::own(#from_protocol(__herdcache_error))
        }
    };

    // Owned copies of the arguments, for the operation's own task.
    let probes = quote!(
        #[allow(unused_imports)]
        use #private::{CanCopy as _, CannotCopy as _};
    );
    let mut copies = Vec::new();
    let mut passed = Vec::new();
    let mut copy = |span: Span, borrowed: TokenStream, lent: bool| {
        let name = format_ident!("__herdcache_copy_{}", copies.len());
        let method = if lent {
            quote_spanned!(span=> copy_borrowed)
        } else {
            quote_spanned!(span=> copy_owned)
        };
        copies.push(quote_spanned! {span=>
            #[allow(clippy::used_underscore_binding)]
            let #name = {
                #probes
                (&&&#private::CopyProbe::of(#borrowed)).#method(#borrowed)
            };
        });
        if lent {
            quote!(&#name)
        } else {
            quote!(#name)
        }
    };
    if let Some(receiver) = sig.receiver() {
        let span = receiver.self_token.span;
        let lent = receiver.reference.is_some() || matches!(*receiver.ty, Type::Reference(_));
        let borrowed = if lent {
            quote_spanned!(span=> &*self)
        } else {
            quote_spanned!(span=> &self)
        };
        passed.push(copy(span, borrowed, lent));
    }
    for (name, ty) in arguments {
        let lent = matches!(ty, Type::Reference(_));
        let borrowed = if lent {
            quote_spanned!(name.span()=> &*#name)
        } else {
            quote_spanned!(name.span()=> &#name)
        };
        passed.push(copy(name.span(), borrowed, lent));
    }
    let run_call = unsafe_call(quote!(#uncached_path(#(#passed),*)));
    let doc = format!(
        "Runs `{fn_name}` at most once per idempotency key: returns its outcome and whether it was replayed (`herdcache::Idempotent`)."
    );
    let helper_fn = quote! {
        #[doc = #doc]
        #[allow(dead_code, clippy::used_underscore_binding, unused_mut, unused_variables)]
        #vis #helper_sig {
            static __HERDCACHE_IDEMPOTENT: #private::IdemSlot = #private::IdemSlot::new();
            let __herdcache_idempotency = #slot;
            let __herdcache_key = #key;
            let __herdcache_scope: u128 = #scope;
            let __herdcache_fingerprint: u128 = #private::StableDigest::new() #(#fingerprint)* .finish();
            #(#copies)*
            #private::Idempotency::run(
                __herdcache_idempotency,
                __herdcache_key,
                __herdcache_scope,
                __herdcache_fingerprint,
                #to_error,
                move || async move {
                    #run_call.await.map_err(|__herdcache_error| {
                        #private::IdemFailure::new(#share, __herdcache_error)
                    })
                },
            )
            .await
            .map(|__herdcache_outcome| {
                __herdcache_outcome.map_err(|__herdcache_error| __herdcache_error.get())
            })
        }
    };

    // `<fn>_uncached`: the body, once.
    let mut uncached_sig = sig.clone();
    uncached_sig.ident = uncached;
    let block = &item.block;
    // The body's lint attributes, `#[expect]` kept: the body is here.
    let lints = item.attrs.iter().filter(|attr| {
        ["cfg", "allow", "warn", "deny", "expect"]
            .iter()
            .any(|name| attr.path().is_ident(name))
    });
    // The key and scope are often only the protocol's: the function itself
    // passes every argument on, so nothing the user wrote goes unused.
    let uncached_fn = quote! {
        #[doc(hidden)]
        #[allow(dead_code, unused_variables, clippy::unused_async)]
        // After the allow: the user's own levels (an `#[expect]`) win.
        #(#lints)*
        #uncached_sig #block
    };
    quote! {
        #forward
        #helper_fn
        #uncached_fn
    }
}

/// The argument an expression is, if it is a bare name.
fn bare_ident(expr: Option<&Expr>) -> Option<&Ident> {
    match expr? {
        Expr::Path(path) if path.qself.is_none() => path.path.get_ident(),
        _ => None,
    }
}
