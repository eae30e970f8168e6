//! The `#[cached]` attribute of [herdcache](https://docs.rs/herdcache).
//! Use it through the `herdcache` crate, which holds the runtime the
//! generated code calls.
//!
//! One pipeline, one file per phase: [`attr`] parses the arguments,
//! [`validate`] checks them against the function, [`expand`] writes code.

#![forbid(unsafe_code)]

mod attr;
mod expand;
mod validate;

use proc_macro::TokenStream;
use syn::parse::Parser;

/// Caches an async function or method. See the `herdcache` crate's docs.
#[proc_macro_attribute]
pub fn cached(args: TokenStream, item: TokenStream) -> TokenStream {
    let item = proc_macro2::TokenStream::from(item);
    match cached_impl(args.into(), item.clone()) {
        Ok(expanded) => expanded.into(),
        // The function is still emitted unchanged, so one mistake in the
        // attribute gives one error, not one per use of the function.
        Err(error) => {
            let mut out = error.to_compile_error();
            out.extend(item);
            out.into()
        }
    }
}

fn cached_impl(
    args: proc_macro2::TokenStream,
    item: proc_macro2::TokenStream,
) -> syn::Result<proc_macro2::TokenStream> {
    let mut errors = attr::Errors::default();
    let args = (|input: syn::parse::ParseStream| attr::parse(input, &mut errors)).parse2(args)?;
    let item: syn::ItemFn = syn::parse2(item).map_err(|error| {
        syn::Error::new(
            error.span(),
            "#[cached] goes on an `async fn` (a free function or a method)",
        )
    })?;
    let plan = validate::validate(args, &item, &mut errors);
    errors.finish()?;
    let plan = plan.expect("a plan is made whenever there are no errors");
    Ok(expand::expand(&plan, &item))
}
