//! `tags = [..]`, shared by `#[cached]` (the tags a load carries) and
//! `#[invalidate]` (the tags a write busts): statements that push each tag
//! into a `Tags` named `__herdcache_tags`.

use proc_macro2::TokenStream;
use quote::quote_spanned;
use syn::{Expr, ExprLit, Lit};

use crate::expand::tag_value;

/// One statement per tag. A template literal is `format!`ed, so that an
/// unknown `{name}` is rustc's error at that part of the string (with its
/// "a local variable with a similar name exists"); a literal without
/// braces is a constant; any other expression adds what it yields (one tag
/// or an iterable of them), at its own span.
pub(crate) fn pushes(tags: &[Expr]) -> TokenStream {
    tags.iter()
        .map(|tag| {
            let span = syn::spanned::Spanned::span(tag);
            match tag {
                Expr::Lit(ExprLit {
                    lit: Lit::Str(template),
                    ..
                }) if template.value().contains(['{', '}']) => quote_spanned! {span=>
                    __herdcache_tags.push(::std::format!(#template));
                },
                Expr::Lit(ExprLit {
                    lit: Lit::Str(constant),
                    ..
                }) => quote_spanned! {span=>
                    __herdcache_tags.push(#constant);
                },
                expr => {
                    let expr = tag_value(expr);
                    quote_spanned! {span=>
                        __herdcache_tags.add(#expr);
                    }
                }
            }
        })
        .collect()
}

/// Parses the list of `tags = [..]`: an array expression, else an error at
/// the value.
pub(crate) fn list(value: Expr) -> syn::Result<Vec<Expr>> {
    match value {
        Expr::Array(array) => Ok(array.elems.into_iter().collect()),
        other => Err(syn::Error::new_spanned(
            other,
            "`tags` must be a list, e.g. `tags = [\"user:{user_id}\", \"all-users\"]`",
        )),
    }
}
