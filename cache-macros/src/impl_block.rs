//! `#[cached_impl]`: `#[cached]` on the methods of a trait impl.
//!
//! Each `#[cached]` method is run through the same pipeline as a function;
//! the cached method stays in the impl, and its helpers go into one inherent
//! `impl` of the type written after it, since they cannot be members of the
//! trait.

use proc_macro2::TokenStream;
use quote::{quote, ToTokens as _};
use syn::spanned::Spanned as _;
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
    let trait_ = block.trait_.clone();
    for item in &mut block.items {
        let ImplItem::Fn(method) = item else { continue };
        let Some(position) = method.attrs.iter().position(is_cached) else {
            continue;
        };
        let attr = method.attrs.remove(position);
        let site = crate::Site {
            attribute: attr.path().span(),
            in_impl: true,
            place: Some(crate::source::Place::Impl),
            helper_vis: helper_vis.clone(),
        };
        // By text: `syn::Path: PartialEq` needs syn's `extra-traits`.
        let path = attr.path().to_token_stream().to_string();
        if !attr_paths.iter().any(|(seen, _)| *seen == path) {
            attr_paths.push((path, attr.path().clone()));
        }
        let args = match attr.meta {
            Meta::List(list) => list.tokens,
            // `#[cached]`: no arguments, so "missing `ttl`".
            Meta::Path(_) => TokenStream::new(),
            Meta::NameValue(name_value) => {
                errors.at(
                    name_value.eq_token.span,
                    "write the arguments in parentheses: #[cached(ttl = \"60s\")]",
                );
                continue;
            }
        };
        let mut sig = method.sig.clone();
        if let Some((_, trait_path, _)) = &trait_ {
            // The helpers sit in an inherent impl, where `Self::Error` of the
            // trait is ambiguous: name the trait.
            syn::visit_mut::VisitMut::visit_signature_mut(&mut QualifySelf(trait_path), &mut sig);
        }
        let function = ItemFn {
            attrs: method.attrs.clone(),
            vis: method.vis.clone(),
            sig,
            block: Box::new(method.block.clone()),
        };
        match crate::pipeline(args.clone(), &function, &site) {
            Ok(expansion) => {
                *item = ImplItem::Verbatim(expansion.function);
                helpers.push(expansion.helpers);
            }
            // The method stays as written, without the attribute, and its
            // helpers are stubs: one mistake, one error.
            Err(error) => {
                errors.push(error);
                helpers.push(crate::stubs::helpers(
                    &function,
                    &args,
                    site.helper_vis.as_ref(),
                ));
            }
        }
    }
    let errors = match errors.finish() {
        Ok(()) => None,
        Err(error) => Some(error.to_compile_error()),
    };
    let (impl_generics, _, where_clause) = block.generics.split_for_impl();
    let self_ty = &block.self_ty;
    // What switches the impl on or off switches its helpers too.
    let cfgs: Vec<&syn::Attribute> = block
        .attrs
        .iter()
        .filter(|attr| attr.path().is_ident("cfg"))
        .collect();
    let inherent = (!helpers.is_empty()).then(|| {
        quote! {
            #(#cfgs)*
            impl #impl_generics #self_ty #where_clause {
                #(#helpers)*
            }
        }
    });
    // The `#[cached]` attributes are gone before rustc resolves them: name
    // their paths, so that the user's `use herdcache::cached` is not unused.
    let uses = attr_paths.iter().map(|(_, path)| {
        quote! {
            #(#cfgs)*
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

/// Rewrites `Self::X` in types to `<Self as Trait>::X`.
struct QualifySelf<'a>(&'a syn::Path);

impl syn::visit_mut::VisitMut for QualifySelf<'_> {
    fn visit_type_path_mut(&mut self, ty: &mut syn::TypePath) {
        let segments = &ty.path.segments;
        let from_self = ty.qself.is_none()
            && ty.path.leading_colon.is_none()
            && segments.len() >= 2
            && segments[0].ident == "Self"
            && segments[0].arguments.is_none();
        if from_self {
            let trait_path = self.0;
            let rest: Vec<&syn::PathSegment> = segments.iter().skip(1).collect();
            *ty = syn::parse_quote!(<Self as #trait_path>::#(#rest)::*);
        }
        syn::visit_mut::visit_type_path_mut(self, ty);
    }
}
