//! `#[invalidate(get_user(id), Self::list(org), self.get(id), tags = [..])]`
//! on a mutating async function: once its body returned a success (`Ok`,
//! `Some`, any other value), bust the named functions' keys and the tags,
//! before returning; a failed write busts nothing.
//!
//! Each named call becomes a call of the function's `<fn>_invalidate`
//! helper with the same arguments, spanned at the call: a function that is
//! not `#[cached]` is rustc's "cannot find `get_user_invalidate`" at its
//! name (or this macro's own error, when the writer's file proves it: see
//! `not_cached.rs`), a wrong argument count is rustc's E0061 at the call.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::{Expr, ExprCall, ExprMethodCall, ExprPath, Ident, ItemFn, Token};

use crate::expand::{is_place, tag_value};

/// The arguments as written.
struct InvalidateArgs {
    calls: Vec<Expr>,
    tags: Vec<Expr>,
    krate: Option<TokenStream>,
}

fn parse(input: ParseStream) -> syn::Result<InvalidateArgs> {
    let mut args = InvalidateArgs {
        calls: Vec::new(),
        tags: Vec::new(),
        krate: None,
    };
    let mut errors: Option<syn::Error> = None;
    let mut push = |error: syn::Error| match &mut errors {
        Some(all) => all.combine(error),
        None => errors = Some(error),
    };
    while !input.is_empty() {
        // `tags = [..]` or `crate = path`; anything else is a call.
        if (input.peek(Ident::peek_any)) && input.peek2(Token![=]) && !input.peek2(Token![==]) {
            let name = input.call(Ident::parse_any)?;
            input.parse::<Token![=]>()?;
            let value: Expr = input.parse()?;
            match name.to_string().as_str() {
                "tags" => match crate::tags::list(value) {
                    Ok(tags) => args.tags.extend(tags),
                    Err(error) => push(error),
                },
                "crate" => args.krate = Some(value.into_token_stream()),
                other => push(syn::Error::new(
                    name.span(),
                    format_args!(
                        "unknown argument `{other}`: `#[invalidate]` takes calls of `#[cached]` functions (`get_user(id)`, `Self::get(id)`, `self.get(id)`) and `tags = [..]`"
                    ),
                )),
            }
        } else {
            let call: Expr = input.parse()?;
            match call {
                Expr::Call(ExprCall { ref func, .. }) if matches!(**func, Expr::Path(_)) => {
                    args.calls.push(call);
                }
                Expr::MethodCall(_) => args.calls.push(call),
                other => push(syn::Error::new_spanned(
                    other,
                    "expected a call of a `#[cached]` function with the arguments whose entry to bust, e.g. `get_user(id)`, `Self::get(id)` or `self.get(id)`, or `tags = [..]`",
                )),
            }
        }
        if input.is_empty() {
            break;
        }
        input.parse::<Token![,]>()?;
    }
    match errors {
        Some(errors) => Err(errors),
        None => Ok(args),
    }
}

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let item: ItemFn = syn::parse2(item).map_err(|error| {
        syn::Error::new(
            error.span(),
            "#[invalidate] goes on an `async fn` (a free function or a method)",
        )
    })?;
    let args = parse.parse2(args)?;
    if item.sig.asyncness.is_none() {
        return Err(syn::Error::new_spanned(
            item.sig.fn_token,
            "#[invalidate] goes on an `async fn`: the busts it adds after the write are awaited",
        ));
    }
    if args.calls.is_empty() && args.tags.is_empty() {
        return Err(syn::Error::new(
            Span::call_site(),
            "#[invalidate] needs something to bust: calls of `#[cached]` functions (`get_user(id)`) and/or `tags = [..]`",
        ));
    }
    let krate = args.krate.unwrap_or_else(|| quote!(::herdcache));
    let private = quote!(#krate::__private);
    // The busts' arguments and tags are read before the body runs, from
    // copies: the body may consume or change its arguments.
    let (copies, busts): (Vec<TokenStream>, Vec<TokenStream>) = args
        .calls
        .iter()
        .enumerate()
        .map(|(i, call)| bust(i, call, &item.sig.ident))
        .unzip();
    let (tags_before, tags_after) = if args.tags.is_empty() {
        (None, None)
    } else {
        let pushes = crate::tags::pushes(&args.tags);
        (
            Some(quote! {
                let __herdcache_tags = {
                    let mut __herdcache_tags = #private::Tags::new();
                    #pushes
                    __herdcache_tags
                };
            }),
            Some(quote! {
                #private::invalidate_tags(__herdcache_tags.names()).await;
            }),
        )
    };
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = &item;
    let body = write_body(&item);
    let new_body = quote! {
        #(#copies)*
        #tags_before
        let __herdcache_written = #body.await;
        if {
            #[allow(unused_imports)]
            use #private::{WriteIsPlain as _, WriteIsResultOrOption as _};
            (&#private::WriteProbe(&__herdcache_written)).succeeded()
        } {
            #(#busts)*
            #tags_after
        }
        __herdcache_written
    };
    // The user's braces, as for `#[cached]`: rustc still warns of an unused
    // function.
    let mut new_body = proc_macro2::Group::new(proc_macro2::Delimiter::Brace, new_body);
    new_body.set_span(block.brace_token.span.join());
    Ok(quote! {
        #(#attrs)*
        #vis #sig #new_body
    })
}

/// The body as an async block whose output is pinned to the declared return
/// type at the user's span, so that `?` infers and `return` leaves the
/// block, not the function.
fn write_body(item: &ItemFn) -> TokenStream {
    let ret = match &item.sig.output {
        syn::ReturnType::Default => quote!(()),
        syn::ReturnType::Type(_, ty) => ty.to_token_stream(),
    };
    let ret_span = match &item.sig.output {
        syn::ReturnType::Default => item.sig.ident.span(),
        syn::ReturnType::Type(_, ty) => syn::spanned::Spanned::span(ty),
    };
    let fake_return = crate::expand::fake_return(&ret, ret_span);
    let statements = &item.block.stmts;
    let span = item.block.brace_token.span.join();
    let async_block = quote_spanned!(span=> async);
    quote! {
        #async_block {
            #fake_return
            #(#statements)*
        }
    }
}

/// `get_user(id)` → a copy of each argument (`let __herdcache_bust_0_0 =
/// id.clone();`, before the body) and `get_user_invalidate(<copies>).await;`
/// (after it), at the call's span; or, for a name that the writer's file
/// proves is not `#[cached]`, one error at the name.
fn bust(index: usize, call: &Expr, writer: &Ident) -> (TokenStream, TokenStream) {
    let span = syn::spanned::Spanned::span(call);
    let arguments = match call {
        Expr::Call(ExprCall { args, .. }) | Expr::MethodCall(ExprMethodCall { args, .. }) => args,
        _ => unreachable!("parse keeps only calls"),
    };
    let (copies, args): (Vec<TokenStream>, Vec<Ident>) = arguments
        .iter()
        .enumerate()
        .map(|(j, arg)| {
            let arg_span = syn::spanned::Spanned::span(arg);
            let local = format_ident!("__herdcache_bust_{}_{}", index, j, span = arg_span);
            // `&name`: a borrow of a copy, so the body may still move `name`.
            if let Expr::Reference(syn::ExprReference {
                mutability: None,
                expr,
                ..
            }) = arg
            {
                if is_place(expr) {
                    let owned = format_ident!("{}_owned", local);
                    return (
                        quote_spanned! {arg_span=>
                            let #owned = ::core::clone::Clone::clone(&(#expr));
                            let #local = &#owned;
                        },
                        local,
                    );
                }
            }
            let value = tag_value(arg);
            (quote_spanned!(arg_span=> let #local = #value;), local)
        })
        .unzip();
    let call = match call {
        Expr::Call(ExprCall { func, .. }) => {
            let Expr::Path(func) = &**func else {
                unreachable!("parse keeps only calls of a path")
            };
            let proof = match func.path.get_ident() {
                Some(name) if func.qself.is_none() => {
                    crate::not_cached::surely_not_cached(name, writer).map(|proof| (name, proof))
                }
                _ => None,
            };
            if let Some((name, proof)) = proof {
                let method = if proof.in_impl {
                    format!(", or `Self::{name}(..)` for a method")
                } else {
                    String::new()
                };
                let (fix, why) = if proof.is_async {
                    ("put #[cached(..)] on it, or ", "")
                } else {
                    ("", " (it goes on an `async fn`)")
                };
                let error = syn::Error::new(
                    name.span(),
                    format_args!(
                        "`{name}` is not #[cached]{why}, so it has no `{name}_invalidate` to bust: {fix}name a #[cached] function (by its path if it is elsewhere: `module::{name}(..)`{method})"
                    ),
                );
                return (quote!(#(#copies)*), error.to_compile_error());
            }
            let mut func: ExprPath = func.clone();
            let last = func
                .path
                .segments
                .last_mut()
                .expect("a path has a last segment");
            last.ident = helper(&last.ident);
            quote_spanned! {span=> #func(#(#args),*).await; }
        }
        Expr::MethodCall(ExprMethodCall {
            receiver,
            method,
            turbofish,
            ..
        }) => {
            let method = helper(method);
            quote_spanned! {span=> #receiver.#method #turbofish(#(#args),*).await; }
        }
        _ => unreachable!("parse keeps only calls"),
    };
    (quote!(#(#copies)*), call)
}

/// `<name>_invalidate`, at the name's span: a function that is not
/// `#[cached]` is reported at it.
fn helper(name: &Ident) -> Ident {
    format_ident!("{}_invalidate", name, span = name.span())
}
