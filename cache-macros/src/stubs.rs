//! When an attribute has a mistake, the function is emitted as written,
//! with its compile error. Its helpers are emitted too, as stubs with the
//! signatures they would have had, so that each call of `<fn>_invalidate`
//! or `<fn>_cache()` elsewhere in the crate does not add an error of its
//! own: one mistake, one error.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Expr, FnArg, ItemFn, MetaNameValue, Pat, Token, Visibility};

/// The helpers of `item` as stubs, given the attribute's arguments as
/// written (read leniently: a key that cannot be read means every argument).
pub(crate) fn helpers(item: &ItemFn, args: &TokenStream, vis: Option<&Visibility>) -> TokenStream {
    // Rewritten by `#[async_trait]`: surely in a trait impl, where helpers
    // cannot go (the error says to use `cached_impl`).
    if item
        .sig
        .generics
        .lifetimes()
        .any(|lifetime| lifetime.lifetime.ident == "async_trait")
    {
        return TokenStream::new();
    }
    let pairs = Punctuated::<MetaNameValue, Token![,]>::parse_terminated
        .parse2(args.clone())
        .unwrap_or_default();
    let value = |name: &str| {
        pairs
            .iter()
            .find(|pair| pair.path.is_ident(name))
            .map(|pair| pair.value.clone())
    };
    let krate = match value("crate") {
        Some(Expr::Path(path)) => quote!(#path),
        _ => quote!(::herdcache),
    };
    let (key_args, key_uses_self) = key_arguments(item, value("key"));
    let vis = vis.unwrap_or(&item.vis);
    let sig = &item.sig;
    let name = &sig.ident;
    let renamed = |suffix: &str| {
        let mut sig = sig.clone();
        sig.ident = format_ident!("{}_{}", name, suffix);
        sig
    };
    let (refresh, uncached) = (renamed("refresh"), renamed("uncached"));
    let mut entry = renamed("entry");
    let ret: syn::Type = match &sig.output {
        syn::ReturnType::Type(_, ret) => (**ret).clone(),
        syn::ReturnType::Default => syn::parse_quote!(()),
    };
    // No stub over `impl Trait` (itself an error): nothing to infer it from.
    let entry = (!matches!(ret, syn::Type::ImplTrait(_))).then(|| {
        let ret = crate::expand::entry_return(&ret, crate::validate::return_kind(&ret), &krate);
        entry.output = syn::parse_quote!(-> #ret);
        quote! {
            #[allow(dead_code, unused_variables, clippy::unused_async)]
            #vis #entry { ::core::unreachable!() }
        }
    });
    let invalidate = format_ident!("{}_invalidate", name);
    let expire = format_ident!("{}_expire", name);
    let cache = format_ident!("{}_cache", name);
    let receiver = (key_uses_self && sig.receiver().is_some()).then(|| quote!(&self,));
    let generics = &sig.generics;
    let where_clause = &sig.generics.where_clause;
    quote! {
        #[allow(dead_code, unused_variables, clippy::unused_async)]
        #vis #refresh { ::core::unreachable!() }
        #entry
        #[allow(dead_code, unused_variables, clippy::unused_async)]
        #vis #uncached { ::core::unreachable!() }
        #[allow(dead_code, unused_variables, clippy::unused_async)]
        #vis async fn #invalidate #generics (#receiver #(#key_args),*) #where_clause {}
        #[allow(dead_code, unused_variables, clippy::unused_async)]
        #vis async fn #expire #generics (#receiver #(#key_args),*) #where_clause {}
        #[allow(dead_code)]
        #vis fn #cache() -> &'static #krate::__private::CacheHandle { ::core::unreachable!() }
    }
}

/// The parameters `<fn>_invalidate` would take: the arguments the key
/// names (every argument without a key), and whether it reads `self`. A
/// key part that names no argument but is within two edits of one (the
/// misspelling the attribute's error points at) counts as that argument,
/// so that the calls written for the intended key add no error.
fn key_arguments(item: &ItemFn, key: Option<Expr>) -> (Vec<TokenStream>, bool) {
    let arguments: Vec<String> = item
        .sig
        .inputs
        .iter()
        .filter_map(|input| match input {
            FnArg::Typed(typed) => match &*typed.pat {
                Pat::Ident(pat) => Some(pat.ident.to_string()),
                _ => None,
            },
            FnArg::Receiver(_) => None,
        })
        .collect();
    let key_text = key.as_ref().map(|key| {
        let mut text = quote!(#key).to_string();
        for part in key_parts(key) {
            if part != "self" && !arguments.contains(&part) {
                if let Some(meant) =
                    crate::attr::closest(&part, arguments.iter().map(String::as_str))
                {
                    text.push(' ');
                    text.push_str(meant);
                }
            }
        }
        text
    });
    let mentions = |name: &str| {
        key_text.as_ref().is_none_or(|text| {
            text.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .any(|word| word == name)
        })
    };
    let params = item
        .sig
        .inputs
        .iter()
        .filter_map(|input| match input {
            FnArg::Typed(typed) => match &*typed.pat {
                Pat::Ident(pat) if mentions(&pat.ident.to_string()) => {
                    let (ident, ty) = (&pat.ident, &typed.ty);
                    Some(quote!(#ident: #ty))
                }
                _ => None,
            },
            FnArg::Receiver(_) => None,
        })
        .collect();
    let uses_self = key_text.is_some_and(|text| {
        text.split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .any(|word| word == "self")
    });
    (params, uses_self)
}

/// The names a key made of plain names (`id`, `(org, page)`) is made of.
fn key_parts(key: &Expr) -> Vec<String> {
    let name = |expr: &Expr| match expr {
        Expr::Path(path) => path.path.get_ident().map(ToString::to_string),
        _ => None,
    };
    match key {
        Expr::Tuple(tuple) => tuple.elems.iter().filter_map(name).collect(),
        Expr::Paren(paren) => name(&paren.expr).into_iter().collect(),
        other => name(other).into_iter().collect(),
    }
}
