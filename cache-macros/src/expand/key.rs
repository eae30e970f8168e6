//! The key: computed from the arguments (and `self`), each part an owned
//! copy checked at compile time, so that a part that cannot be a key is one
//! error at it.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::{Expr, Ident, Type};

use super::Context;
use crate::validate::{Arg, KeySpec};

impl Context<'_> {
    /// The owned key, from the arguments it names, each part checked.
    pub(super) fn key(&self) -> TokenStream {
        match &self.plan.key {
            KeySpec::Expr(Expr::Tuple(tuple)) if !tuple.elems.is_empty() => {
                let parts = tuple.elems.iter().map(|part| self.key_part(part));
                quote!((#(#parts,)*))
            }
            KeySpec::Expr(expr) => self.key_part(expr),
            KeySpec::Args(idents) => {
                let owned: Vec<TokenStream> = idents
                    .iter()
                    .map(|ident| self.probe_borrowed(ident.span(), self.borrowed_arg(ident)))
                    .collect();
                match owned.as_slice() {
                    [single] => single.clone(),
                    many => quote!((#(#many,)*)),
                }
            }
        }
    }

    /// One part of a key expression. A place (`req.id`, `self.tenant`, an
    /// argument) is copied through a borrow, as arguments are, so that the
    /// key never moves what the body still uses; any other expression
    /// (`format!(..)`, `q.table.clone()`) is a value and kept as it is.
    pub(super) fn key_part(&self, part: &Expr) -> TokenStream {
        let span = syn::spanned::Spanned::span(part);
        if let Some(ident) = argument_ident(part, &self.plan.args) {
            return self.probe_borrowed(span, self.borrowed_arg(ident));
        }
        if is_self(part)
            && self
                .item
                .sig
                .receiver()
                .is_some_and(|receiver| matches!(*receiver.ty, Type::Reference(_)))
        {
            // `self` behind a reference: key on the value, as for arguments.
            return self.probe_borrowed(span, quote_spanned!(span=> &*self));
        }
        if is_place(part) {
            return self.probe_borrowed(span, quote_spanned!(span=> &(#part)));
        }
        // A value built from places (`Some(req.id)`, `(req.org, page)`):
        // the places passed by value are cloned, so that the key does not
        // move what the body still uses.
        let mut part = part.clone();
        let private = &self.private;
        syn::visit_mut::VisitMut::visit_expr_mut(
            &mut ClonePlacesPassedByValue {
                receivers: Some(private),
            },
            &mut part,
        );
        self.probe(
            span,
            // The temporaries of `#part` (a `Copy` receiver's copy, which
            // `region.name().to_owned()` borrows) live to the end of this
            // statement; a part must be owned anyway.
            quote_spanned! {span=>
                let __herdcache_part = #part;
                (&&&#private::KeyProbe::of(&__herdcache_part)).key_value(__herdcache_part)
            },
        )
    }

    /// An owned copy of the borrowed key part `borrowed`, checked.
    pub(super) fn probe_borrowed(
        &self,
        span: proc_macro2::Span,
        borrowed: TokenStream,
    ) -> TokenStream {
        let private = &self.private;
        self.probe(
            span,
            quote_spanned! {span=>
                (&&&#private::KeyProbe::of(#borrowed)).key_part(#borrowed)
            },
        )
    }

    /// `call` with the key probes in scope, at the part's span: a part that
    /// cannot be a key is one error there.
    pub(super) fn probe(&self, span: proc_macro2::Span, call: TokenStream) -> TokenStream {
        let private = &self.private;
        quote_spanned! {span=>
            {
                #[allow(unused_imports)]
                use #private::{
                    CopiedReceiver as _, InvalidKeyPart as _, LentReceiver as _, ValidKeyPart as _,
                };
                #call
            }
        }
    }

    /// One argument as a reference to the value the key copies: the
    /// argument itself behind a reference (`&str` keys as `String`), a
    /// borrow of it otherwise.
    pub(super) fn borrowed_arg(&self, ident: &Ident) -> TokenStream {
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
}

/// A `tags = [expr]` expression as a value the hooks own, read from the
/// arguments without moving them: a place is cloned (a `String` argument,
/// `req.tags`), and so is each place passed by value inside a larger
/// expression, as for key parts.
pub(crate) fn tag_value(expr: &Expr) -> TokenStream {
    let span = syn::spanned::Spanned::span(expr);
    if is_place(expr) {
        return quote_spanned!(span=> ::core::clone::Clone::clone(&(#expr)));
    }
    let mut expr = expr.clone();
    syn::visit_mut::VisitMut::visit_expr_mut(
        &mut ClonePlacesPassedByValue { receivers: None },
        &mut expr,
    );
    quote!(#expr)
}

/// The argument `part` names, if it is one alone.
fn argument_ident<'a>(part: &Expr, args: &'a [Arg]) -> Option<&'a Ident> {
    let Expr::Path(path) = part else { return None };
    let ident = path.path.get_ident()?;
    args.iter().map(|arg| &arg.ident).find(|arg| *arg == ident)
}

/// A place expression: a variable, `self`, or a field of one, in parentheses or not.
pub(crate) fn is_place(expr: &Expr) -> bool {
    match expr {
        Expr::Path(path) => path.qself.is_none() && path.path.get_ident().is_some(),
        Expr::Field(field) => is_place(&field.base),
        Expr::Paren(paren) => is_place(&paren.expr),
        _ => false,
    }
}

/// `self`, alone.
fn is_self(expr: &Expr) -> bool {
    matches!(expr, Expr::Path(path) if path.path.is_ident("self"))
}

/// Rewrites each place passed by value inside a key expression (a call's or
/// a tuple's, an array's or a struct literal's operand) into a clone of it.
/// Method receivers and macro arguments are left alone: they borrow.
struct ClonePlacesPassedByValue<'a> {
    /// The runtime's path, to read method receivers through
    /// `ReceiverProbe` (key parts, where its traits are in scope).
    receivers: Option<&'a TokenStream>,
}

impl ClonePlacesPassedByValue<'_> {
    fn clone_if_place(expr: &mut Expr) {
        if is_place(expr) && !is_self(expr) {
            let span = syn::spanned::Spanned::span(&*expr);
            let place = expr.clone();
            *expr = syn::parse_quote_spanned!(span=> ::core::clone::Clone::clone(&#place));
        }
    }
}

impl syn::visit_mut::VisitMut for ClonePlacesPassedByValue<'_> {
    fn visit_expr_mut(&mut self, expr: &mut Expr) {
        match expr {
            Expr::Call(call) => call.args.iter_mut().for_each(Self::clone_if_place),
            Expr::Tuple(tuple) => tuple.elems.iter_mut().for_each(Self::clone_if_place),
            Expr::Array(array) => array.elems.iter_mut().for_each(Self::clone_if_place),
            Expr::Struct(literal) => literal
                .fields
                .iter_mut()
                .for_each(|field| Self::clone_if_place(&mut field.expr)),
            // A method's receiver, when a place, is read through
            // `ReceiverProbe`: copied if `Copy`, lent otherwise.
            Expr::MethodCall(call) if is_place(&call.receiver) && !is_self(&call.receiver) => {
                let Some(private) = self.receivers else {
                    return syn::visit_mut::visit_expr_mut(self, expr);
                };
                // The probe's tokens span the place from its first token to
                // its last, so that an error covers `req.id`, not `req`.
                let place = (*call.receiver).clone();
                let mut tokens = quote::ToTokens::to_token_stream(&place).into_iter();
                let first = tokens.next().map(|token| token.span());
                let last = tokens.last().map(|token| token.span()).or(first);
                let (first, last) = (
                    first.unwrap_or_else(proc_macro2::Span::call_site),
                    last.unwrap_or_else(proc_macro2::Span::call_site),
                );
                let head =
                    quote_spanned!(first=> (&&&#private::ReceiverProbe::of(&#place)).receiver);
                let args = quote_spanned!(last=> (&#place));
                *call.receiver = syn::parse_quote!(#head #args);
            }
            _ => {}
        }
        syn::visit_mut::visit_expr_mut(self, expr);
    }
}
