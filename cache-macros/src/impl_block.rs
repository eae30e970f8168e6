//! `#[cached_impl]`: `#[cached]` on the methods of a trait impl.
//!
//! Each `#[cached]` method is run through the same pipeline as a function;
//! the cached method stays in the impl, and its helpers go into one inherent
//! `impl` of the type written after it, since they cannot be members of the
//! trait.

use proc_macro2::TokenStream;
use quote::{quote, ToTokens as _};
use syn::{ImplItem, ItemFn, ItemImpl, Meta};

use crate::attr::Errors;

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    if let Some(token) = args.into_iter().next() {
        return Err(syn::Error::new(
            token.span(),
            "#[cached_impl] takes no arguments: they go on each method's #[cached(..)]",
        ));
    }
    let mut block: ItemImpl = syn::parse2(item).map_err(|error| {
        syn::Error::new(
            error.span(),
            "#[cached_impl] goes on an `impl` block whose methods are #[cached]",
        )
    })?;
    // A trait impl's methods have no visibility to give their helpers.
    let helper_vis: Option<syn::Visibility> = block.trait_.as_ref().map(|_| syn::parse_quote!(pub));
    let mut errors = Errors::default();
    let mut helpers = Vec::new();
    let mut attr_paths = Vec::new();
    for item in &mut block.items {
        let ImplItem::Fn(method) = item else { continue };
        let Some(position) = method.attrs.iter().position(is_cached) else {
            continue;
        };
        let attr = method.attrs.remove(position);
        // By text: `syn::Path: PartialEq` needs syn's `extra-traits`.
        let path = attr.path().to_token_stream().to_string();
        if !attr_paths.iter().any(|(seen, _)| *seen == path) {
            attr_paths.push((path, attr.path().clone()));
        }
        let args = match attr.meta {
            Meta::List(list) => list.tokens,
            other => quote!(#other),
        };
        let function = ItemFn {
            attrs: method.attrs.clone(),
            vis: method.vis.clone(),
            sig: method.sig.clone(),
            block: Box::new(method.block.clone()),
        };
        match crate::pipeline(args, &function, helper_vis.as_ref()) {
            Ok(expansion) => {
                *item = ImplItem::Verbatim(expansion.function);
                helpers.push(expansion.helpers);
            }
            // The method stays as written, without the attribute.
            Err(error) => errors.push(error),
        }
    }
    let errors = match errors.finish() {
        Ok(()) => None,
        Err(error) => Some(error.to_compile_error()),
    };
    let (impl_generics, _, where_clause) = block.generics.split_for_impl();
    let self_ty = &block.self_ty;
    let inherent = (!helpers.is_empty()).then(|| {
        quote! {
            impl #impl_generics #self_ty #where_clause {
                #(#helpers)*
            }
        }
    });
    // The `#[cached]` attributes are gone before rustc resolves them: name
    // their paths, so that the user's `use herdcache::cached` is not unused.
    let uses = attr_paths.iter().map(|(_, path)| {
        quote! {
            const _: () = {
                #[allow(unused_imports)]
                use #path as _;
            };
        }
    });
    Ok(quote! {
        #errors
        #block
        #inherent
        #(#uses)*
    })
}

/// `#[cached(..)]` or `#[herdcache::cached(..)]`.
fn is_cached(attr: &syn::Attribute) -> bool {
    attr.path()
        .segments
        .last()
        .is_some_and(|segment| segment.ident == "cached")
}
