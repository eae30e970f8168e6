//! What parsing cannot check: the arguments against the function they sit
//! on. Produces the [`Plan`] that expansion follows.

use std::time::Duration;

use proc_macro2::{TokenStream, TokenTree};
use quote::{quote, ToTokens};
use syn::spanned::Spanned as _;
use syn::{Expr, FnArg, GenericParam, Ident, ItemFn, LitStr, Pat, ReturnType, Signature, Type};

use crate::attr::{CachedArgs, Errors, Swr};

/// A named argument other than `self`.
pub(crate) struct Arg {
    pub(crate) ident: Ident,
    pub(crate) ty: Type,
}

/// How the key is computed from the arguments.
pub(crate) enum KeySpec {
    /// These arguments, each made owned, as one value or a tuple.
    Args(Vec<Ident>),
    /// An expression written by the user, used as is.
    Expr(Expr),
}

/// How the return type is cached.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReturnKind {
    /// `Result<T, E>`: `Ok` cached, `Err` passed on.
    Result,
    /// `Option<T>`: `Some` cached, `None` passed on.
    Option,
    /// Any other type: always cached.
    Plain,
}

/// How a method takes `self`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Receiver {
    /// `&self`.
    Shared,
    /// `&mut self`.
    Exclusive,
    /// `self`, `mut self`, `self: Arc<Self>`, …
    Owned,
}

/// The freshness policies, checked.
pub(crate) struct Policy {
    pub(crate) swr: Option<Duration>,
    pub(crate) early_refresh: Option<f64>,
    pub(crate) fail_safe: Option<Duration>,
    pub(crate) fail_safe_throttle: Option<Duration>,
    pub(crate) negative_ttl: Option<Duration>,
    pub(crate) negative: Option<syn::Path>,
    pub(crate) ttl_for: Option<syn::Path>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) hard_timeout: Option<Duration>,
    /// `retry = n` with its backoff's base and cap.
    pub(crate) retry: Option<RetrySpec>,
    /// `retry_if = path`: which failures are transient.
    pub(crate) retry_if: Option<syn::Path>,
    /// `circuit_breaker`: its settings (`None` inside for the defaults),
    /// and the attribute's span.
    pub(crate) circuit_breaker: Option<(Option<Expr>, proc_macro2::Span)>,
}

/// `retry = n`, `retry_base`, `retry_cap`.
pub(crate) struct RetrySpec {
    pub(crate) attempts: u32,
    pub(crate) base: Option<Duration>,
    pub(crate) cap: Option<Duration>,
}

impl Policy {
    /// Whether a load's calls of the body go through `FnCache::attempts`.
    pub(crate) fn has_attempts(&self) -> bool {
        self.retry.is_some() || self.circuit_breaker.is_some()
    }

    /// Whether a hit may start a background refresh.
    pub(crate) fn refreshes(&self) -> bool {
        self.swr.is_some() || self.early_refresh.is_some()
    }

    /// Whether callers may stop waiting for a load.
    pub(crate) fn has_deadlines(&self) -> bool {
        self.timeout.is_some() || self.hard_timeout.is_some()
    }

    /// Whether the body may run later, from copies of the arguments.
    pub(crate) fn runs_in_background(&self) -> bool {
        self.refreshes() || self.has_deadlines()
    }
}

/// Everything expansion needs, checked.
pub(crate) struct Plan {
    pub(crate) ttl: Duration,
    pub(crate) jitter: f64,
    pub(crate) max_capacity: Option<u64>,
    pub(crate) name: Option<LitStr>,
    pub(crate) krate: TokenStream,
    pub(crate) args: Vec<Arg>,
    pub(crate) key: KeySpec,
    /// The arguments the key uses, in declaration order: `<fn>_invalidate`'s parameters.
    pub(crate) key_args: Vec<Ident>,
    /// The key reads `self`: `<fn>_invalidate` then takes `&self` too.
    pub(crate) key_uses_self: bool,
    /// The function sits in an impl: it has `self`, or `Self` in its signature.
    pub(crate) in_impl: bool,
    /// How the function's code names its sibling items (`<fn>_uncached`).
    pub(crate) siblings: Siblings,
    pub(crate) ret: Type,
    pub(crate) kind: ReturnKind,
    pub(crate) receiver: Option<Receiver>,
    pub(crate) policy: Policy,
    /// `tags = [..]`: each a template literal or an expression.
    pub(crate) tags: Vec<Expr>,
    /// `distributed = true`: the key space version, and the attribute's
    /// span (where a key or value that cannot travel is reported).
    pub(crate) distributed: Option<(u32, proc_macro2::Span)>,
    /// `memory = ".."`: the memory tier, else the process default.
    pub(crate) memory: Option<crate::attr::Memory>,
}

/// How a cached function's code reaches `<fn>_uncached`, the item that
/// holds its body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Siblings {
    /// In an impl: `Self::<fn>_uncached`.
    OfSelf,
    /// In a module or a block: `<fn>_uncached`.
    InScope,
    /// An associated function with no `self` and no `Self` in its signature
    /// could be either, and its source did not say (no file, a macro's
    /// body, a header the reader cannot read), or an argument is under
    /// `#[cfg]`: the body is inlined where it is needed instead.
    Unknown,
}

pub(crate) fn validate(
    args: CachedArgs,
    item: &ItemFn,
    site: &crate::Site,
    errors: &mut Errors,
) -> Option<Plan> {
    let sig = &item.sig;
    check_signature(sig, errors);
    if !args.ttl_written {
        errors.at(
            site.attribute,
            "missing `ttl`: every cached function needs a freshness budget, e.g. #[cached(ttl = \"60s\")]",
        );
    }
    let (has_receiver, named) = named_arguments(sig, errors);
    let (key, key_args, key_uses_self) =
        key_spec(args.key.clone(), &named, &sig.ident, has_receiver, errors);
    check_key_types(&key_args, &named, errors);
    let ret = return_type(sig, errors);
    let kind = return_kind(&ret);
    let receiver = receiver(sig);
    let policy = policy(&args, kind, errors);
    if policy.runs_in_background() {
        check_copyable(sig, errors);
    } else if policy.retry.is_some() {
        check_retryable(sig, errors);
    }
    let in_impl = site.in_impl || has_receiver || mentions_self_type(sig.to_token_stream());
    // An argument under `#[cfg]` may not exist: a call passing every
    // argument cannot be written, so the body is inlined.
    let cfg_arguments = sig
        .inputs
        .iter()
        .any(|input| matches!(input, syn::FnArg::Typed(typed) if !typed.attrs.is_empty()));
    if cfg_arguments && policy.has_attempts() {
        errors.at(
            site.attribute,
            "`retry` and `circuit_breaker` call the body through a helper that takes every argument: an argument under `#[cfg]` may not exist; move the `#[cfg]` to the function, or drop the attribute",
        );
    }
    let siblings = match site.place {
        _ if cfg_arguments => Siblings::Unknown,
        _ if in_impl => Siblings::OfSelf,
        Some(crate::source::Place::Impl) => Siblings::OfSelf,
        Some(crate::source::Place::Outside) => Siblings::InScope,
        None => Siblings::Unknown,
    };
    let distributed = distributed(&args, errors);
    let krate = args
        .krate
        .map_or_else(|| quote!(::herdcache), |path| path.to_token_stream());
    Some(Plan {
        ttl: args.ttl?,
        jitter: args.jitter.unwrap_or(0.0),
        max_capacity: args.max_capacity,
        name: args.name,
        krate,
        args: named,
        key,
        key_args,
        key_uses_self,
        in_impl,
        siblings,
        ret,
        kind,
        receiver,
        policy,
        tags: args.tags.unwrap_or_default(),
        distributed,
        memory: args.memory,
    })
}

/// `distributed = true` and its `version`.
fn distributed(args: &CachedArgs, errors: &mut Errors) -> Option<(u32, proc_macro2::Span)> {
    let on = args.distributed.filter(|(on, _)| *on);
    if let (None, Some((_, span))) = (on, args.version) {
        errors.at(
            span,
            "`version` names the key space of a `distributed` function in Redis: add `distributed = true`, or remove it",
        );
    }
    let (_, span) = on?;
    Some((args.version.map_or(1, |(version, _)| version), span))
}

fn receiver(sig: &Signature) -> Option<Receiver> {
    sig.receiver().map(|receiver| match &receiver.reference {
        Some(_) if receiver.mutability.is_some() => Receiver::Exclusive,
        Some(_) => Receiver::Shared,
        None => Receiver::Owned,
    })
}

/// The policies, and the rules between them and the return type.
fn policy(args: &CachedArgs, kind: ReturnKind, errors: &mut Errors) -> Policy {
    let swr = match args.swr {
        Some((Swr::Window(window), _)) => Some(window),
        Some((Swr::SameAsTtl, _)) => args.ttl,
        Some((Swr::Off, _)) | None => None,
    };
    if kind == ReturnKind::Plain {
        for (name, span) in [
            (
                "negative_ttl",
                args.negative_ttl.as_ref().map(|(_, span)| *span),
            ),
            ("negative", args.negative.as_ref().map(|(_, span)| *span)),
            ("fail_safe", args.fail_safe.as_ref().map(|(_, span)| *span)),
        ] {
            if let Some(span) = span {
                errors.at(
                    span,
                    format_args!(
                        "`{name}` needs a return type that can fail: this function returns a plain value, always cached; return `Result<T, E>` or `Option<T>`"
                    ),
                );
            }
        }
    }
    if let (ReturnKind::Option, Some((_, span))) = (kind, &args.negative) {
        errors.at(
            *span,
            "`negative` is a rule over the error of a `Result`; for `None`, use `negative_ttl = \"..\"`",
        );
    }
    if let (Some((_, span)), None, None) = (&args.timeout, &swr, &args.fail_safe) {
        errors.at(
            *span,
            "a soft `timeout` serves a fallback once it elapses, and there is none: add `swr` or `fail_safe`, or use `hard_timeout`",
        );
    }
    if let (Some((soft, span)), Some((hard, _))) = (&args.timeout, &args.hard_timeout) {
        if soft >= hard {
            errors.at(
                *span,
                "`timeout` must be shorter than `hard_timeout`: callers give up at `hard_timeout`, so a soft timeout after it never fires",
            );
        }
    }
    if let (Some((_, span)), ReturnKind::Option | ReturnKind::Plain) = (&args.hard_timeout, kind) {
        errors.at(
            *span,
            "`hard_timeout` answers a caller that stops waiting with `herdcache::Error::Timeout` as the error of a `Result`: this function returns no `Result`",
        );
    }
    if let (Some((_, span)), None) = (&args.fail_safe_throttle, &args.fail_safe) {
        errors.at(
            *span,
            "`fail_safe_throttle` has nothing to throttle without `fail_safe = \"..\"`",
        );
    }
    let (retry, retry_if, circuit_breaker) = attempts(args, kind, errors);
    Policy {
        retry,
        retry_if,
        circuit_breaker,
        swr,
        early_refresh: args.early_refresh.map(|(beta, _)| beta),
        fail_safe: args.fail_safe.map(|(window, _)| window),
        fail_safe_throttle: args.fail_safe_throttle.map(|(throttle, _)| throttle),
        negative_ttl: args.negative_ttl.map(|(ttl, _)| ttl),
        negative: args.negative.as_ref().map(|(path, _)| path.clone()),
        ttl_for: args.ttl_for.as_ref().map(|(path, _)| path.clone()),
        timeout: args.timeout.map(|(timeout, _)| timeout),
        hard_timeout: args.hard_timeout.map(|(timeout, _)| timeout),
    }
}

/// `retry`, `retry_if` and `circuit_breaker`, and the rules between them
/// and the return type.
#[allow(clippy::type_complexity)]
fn attempts(
    args: &CachedArgs,
    kind: ReturnKind,
    errors: &mut Errors,
) -> (
    Option<RetrySpec>,
    Option<syn::Path>,
    Option<(Option<Expr>, proc_macro2::Span)>,
) {
    let breaker = match &args.circuit_breaker {
        Some((crate::attr::Breaker::Defaults, span)) => Some((None, *span)),
        Some((crate::attr::Breaker::Settings(settings), span)) => {
            Some((Some(settings.clone()), *span))
        }
        Some((crate::attr::Breaker::Off, _)) | None => None,
    };
    if kind != ReturnKind::Result {
        let what = if kind == ReturnKind::Option {
            "returns an `Option`: `None` is an answer, not a failure"
        } else {
            "returns a plain value, which cannot fail"
        };
        for (name, span) in [
            ("retry", args.retry.map(|(_, span)| span)),
            ("circuit_breaker", breaker.as_ref().map(|(_, span)| *span)),
        ] {
            if let Some(span) = span {
                errors.at(
                    span,
                    format_args!(
                        "`{name}` acts on the errors of a `Result`, and this function {what}; return `Result<T, E>`"
                    ),
                );
            }
        }
    }
    for (name, span) in [
        ("retry_base", args.retry_base.map(|(_, span)| span)),
        ("retry_cap", args.retry_cap.map(|(_, span)| span)),
    ] {
        if let (Some(span), None) = (span, args.retry) {
            errors.at(
                span,
                format_args!("`{name}` shapes the waits between retries: add `retry = n`"),
            );
        }
    }
    if let (Some((base, _)), Some((cap, span))) = (args.retry_base, args.retry_cap) {
        if cap < base {
            errors.at(
                span,
                "`retry_cap` must not be shorter than `retry_base`: it bounds the waits that start at the base",
            );
        }
    }
    if let (Some((_, span)), None, None) = (&args.retry_if, args.retry, &breaker) {
        errors.at(
            *span,
            "`retry_if` says which errors are worth a retry (and count against the circuit breaker): add `retry = n` or `circuit_breaker = true`",
        );
    }
    let retry = args.retry.map(|(attempts, _)| RetrySpec {
        attempts,
        base: args.retry_base.map(|(base, _)| base),
        cap: args.retry_cap.map(|(cap, _)| cap),
    });
    let retry_if = args.retry_if.as_ref().map(|(path, _)| path.clone());
    (retry, retry_if, breaker)
}

/// A background refresh runs from copies of the arguments: `&mut` ones
/// cannot be copied. (Other arguments are checked by type, at the argument.)
fn check_copyable(sig: &Signature, errors: &mut Errors) {
    for span in exclusive_borrows(sig) {
        errors.at(
            span,
            "swr, early_refresh and the timeouts run the body on a task of its own, from copies of the arguments: an exclusive borrow (`&mut`) cannot be copied",
        );
    }
}

/// A retry calls the body again with copies of the arguments: `&mut` ones
/// cannot be copied.
fn check_retryable(sig: &Signature, errors: &mut Errors) {
    for span in exclusive_borrows(sig) {
        errors.at(
            span,
            "`retry` calls the body again with copies of the arguments: an exclusive borrow (`&mut`) cannot be copied",
        );
    }
}

/// Where the signature takes an exclusive borrow (`&mut self`, `x: &mut T`).
fn exclusive_borrows(sig: &Signature) -> Vec<proc_macro2::Span> {
    let mut spans = Vec::new();
    for input in &sig.inputs {
        let span = match input {
            FnArg::Receiver(receiver)
                if (receiver.reference.is_some() && receiver.mutability.is_some())
                    || matches!(&*receiver.ty, Type::Reference(reference) if reference.mutability.is_some()) =>
            {
                receiver.self_token.span
            }
            FnArg::Typed(typed) => match &*typed.ty {
                Type::Reference(reference) if reference.mutability.is_some() => typed.pat.span(),
                _ => continue,
            },
            FnArg::Receiver(_) => continue,
        };
        spans.push(span);
    }
    spans
}

/// What the function must be: async, not generic over types, not variadic.
fn check_signature(sig: &Signature, errors: &mut Errors) {
    if sig.asyncness.is_none() && made_by_async_trait(sig) {
        errors.at(
            sig.ident.span(),
            format_args!(
                "#[cached] on `{}` ran after #[async_trait] rewrote it: put #[herdcache::cached_impl] on the impl, above #[async_trait]",
                sig.ident
            ),
        );
    } else if sig.asyncness.is_none() {
        errors.at(
            sig.fn_token.span,
            format_args!(
                "#[cached] works on `async fn`: make `{}` async (the cache waits on loads in flight)",
                sig.ident
            ),
        );
    }
    for param in &sig.generics.params {
        match param {
            GenericParam::Lifetime(_) => {}
            GenericParam::Type(ty) => errors.at(
                ty.ident.span(),
                format_args!(
                    "#[cached] cannot cache a generic function: the type parameter `{}` would need one cache per type; cache a concrete wrapper instead",
                    ty.ident
                ),
            ),
            GenericParam::Const(c) => errors.at(
                c.ident.span(),
                format_args!(
                    "#[cached] cannot cache a function generic over the constant `{}`; cache a concrete wrapper instead",
                    c.ident
                ),
            ),
        }
    }
    if let Some(variadic) = &sig.variadic {
        errors.at(
            variadic.span(),
            "#[cached] cannot cache a variadic function",
        );
    }
}

/// `#[async_trait]` turns `async fn f(..) -> T` into `fn f<'life0, 'async_trait>(..)
/// -> Pin<Box<dyn Future<Output = T> + Send + 'async_trait>>`.
fn made_by_async_trait(sig: &Signature) -> bool {
    sig.generics
        .lifetimes()
        .any(|lifetime| lifetime.lifetime.ident == "async_trait")
}

/// Whether the function takes `self`, and its other arguments by name.
fn named_arguments(sig: &Signature, errors: &mut Errors) -> (bool, Vec<Arg>) {
    let mut has_receiver = false;
    let mut named = Vec::new();
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(_) => has_receiver = true,
            FnArg::Typed(typed) => match &*typed.pat {
                Pat::Ident(pat) if pat.subpat.is_none() && pat.by_ref.is_none() => named.push(Arg {
                    ident: pat.ident.clone(),
                    ty: (*typed.ty).clone(),
                }),
                pat => errors.at(
                    pat.span(),
                    "#[cached] needs each argument to be a plain name (the key and the helpers refer to it); bind a name here and destructure in the body",
                ),
            },
        }
    }
    (has_receiver, named)
}

/// An `impl Trait` argument has no type the key could name.
fn check_key_types(key_args: &[Ident], named: &[Arg], errors: &mut Errors) {
    for ident in key_args {
        let arg = named.iter().find(|arg| &arg.ident == ident);
        if let Some(Type::ImplTrait(impl_trait)) = arg.map(|arg| &arg.ty) {
            errors.at(
                impl_trait.span(),
                format_args!(
                    "`{ident}` is part of the key but its type is `impl Trait`, which #[cached] cannot key; give it a concrete type or leave it out of `key`"
                ),
            );
        }
    }
}

/// The declared return type (`()` when there is none); not `impl Trait`.
fn return_type(sig: &Signature, errors: &mut Errors) -> Type {
    let ret = match &sig.output {
        ReturnType::Default => syn::parse_quote!(()),
        ReturnType::Type(_, ty) => (**ty).clone(),
    };
    if let Type::ImplTrait(impl_trait) = &ret {
        errors.at(
            impl_trait.span(),
            "#[cached] needs a concrete return type: the value is stored and cloned (return `Arc<T>` for big values)",
        );
    }
    ret
}

/// Works out the key, the arguments it uses, and whether it reads `self`.
fn key_spec(
    key: Option<Expr>,
    args: &[Arg],
    fn_name: &Ident,
    has_receiver: bool,
    errors: &mut Errors,
) -> (KeySpec, Vec<Ident>, bool) {
    let names: Vec<&Ident> = args.iter().map(|arg| &arg.ident).collect();
    let Some(mut expr) = key else {
        let all: Vec<Ident> = names.into_iter().cloned().collect();
        return (KeySpec::Args(all.clone()), all, false);
    };
    // `key = (org)` is `key = org`.
    while let Expr::Paren(paren) = expr {
        expr = *paren.expr;
    }
    let not_an_argument = |ident: &Ident, errors: &mut Errors| {
        let list = if names.is_empty() {
            "it has none".to_owned()
        } else {
            names
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        errors.at(
            ident.span(),
            format_args!("`{ident}` is not an argument of `{fn_name}` (arguments: {list})"),
        );
    };
    // `key = a` and `key = (a, b)`: every name must be an argument.
    let plain_names: Option<Vec<&Ident>> = match &expr {
        Expr::Path(path) => path.path.get_ident().map(|ident| vec![ident]),
        Expr::Tuple(tuple) => tuple
            .elems
            .iter()
            .map(|elem| match elem {
                Expr::Path(path) => path.path.get_ident(),
                _ => None,
            })
            .collect(),
        _ => None,
    };
    if let Some(plain) = plain_names.filter(|plain| !plain.iter().any(|i| *i == "self")) {
        let mut ok = true;
        for ident in &plain {
            if !names.contains(ident) && !is_constant_name(ident) {
                not_an_argument(ident, errors);
                ok = false;
            }
        }
        // A constant in the tuple (`key = (id, SCHEMA_VERSION)`): the whole
        // key is an expression, each part copied or kept as it is.
        if ok && plain.iter().any(|ident| !names.contains(ident)) {
            let used = in_declaration_order(args, |arg| plain.contains(&&arg.ident));
            return (KeySpec::Expr(expr), used, false);
        }
        let used = in_declaration_order(args, |arg| plain.contains(&&arg.ident));
        let owned = plain.into_iter().cloned().collect();
        return (
            if ok {
                KeySpec::Args(owned)
            } else {
                KeySpec::Args(Vec::new())
            },
            used,
            false,
        );
    }
    // Any other expression: rustc checks the names; we find which arguments
    // it uses, and whether it reads `self`.
    let mut mentioned = Vec::new();
    scan_idents(expr.to_token_stream(), false, &mut mentioned);
    let used = in_declaration_order(args, |arg| mentioned.contains(&arg.ident));
    let self_token = mentioned.iter().find(|ident| *ident == "self");
    if let (Some(self_token), false) = (self_token, has_receiver) {
        errors.at(
            self_token.span(),
            format_args!("the key reads `self`, but `{fn_name}` takes no `self`"),
        );
    }
    (KeySpec::Expr(expr), used, self_token.is_some())
}

/// `SCHEMA_VERSION`: by convention a constant, not a misspelt argument.
fn is_constant_name(ident: &Ident) -> bool {
    let name = ident.to_string();
    name.chars().any(|c| c.is_ascii_uppercase())
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

fn in_declaration_order(args: &[Arg], used: impl Fn(&Arg) -> bool) -> Vec<Ident> {
    args.iter()
        .filter(|arg| used(arg))
        .map(|arg| arg.ident.clone())
        .collect()
}

/// Collects the identifiers a key expression reads as variables (`self`
/// included): not field or method names after `.`, not path segments after
/// `::`; inside a macro call (`format!(..)`), also the names its string
/// literals capture.
fn scan_idents(tokens: TokenStream, in_macro: bool, out: &mut Vec<Ident>) {
    let mut after_dot_or_colons = false;
    let mut after_bang = false;
    let mut colons = 0;
    for tree in tokens {
        match &tree {
            TokenTree::Group(group) => {
                scan_idents(group.stream(), in_macro || after_bang, out);
            }
            TokenTree::Ident(ident) => {
                if !after_dot_or_colons {
                    out.push(ident.clone());
                }
            }
            TokenTree::Punct(_) => {}
            TokenTree::Literal(literal) if in_macro => {
                // `format!("{org}:{page:>width$}")` reads `org`, `page`, `width`.
                if let Ok(syn::Lit::Str(text)) =
                    syn::parse2::<syn::Lit>(literal.clone().into_token_stream())
                {
                    for name in format_captures(&text.value()) {
                        if syn::parse_str::<Ident>(&name).is_ok() || name == "self" {
                            out.push(Ident::new(&name, text.span()));
                        }
                    }
                }
            }
            TokenTree::Literal(_) => {}
        }
        let punct = match &tree {
            TokenTree::Punct(punct) => Some(punct.as_char()),
            _ => None,
        };
        colons = if punct == Some(':') { colons + 1 } else { 0 };
        after_dot_or_colons = punct == Some('.') || colons >= 2;
        after_bang = punct == Some('!');
    }
}

/// The names a format string captures: inline arguments (`{org}`,
/// `{page:>4}`) and width or precision arguments (`{:>width$}`,
/// `{:.prec$}`); not `{{`, `{0}` or `{}`.
fn format_captures(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        rest = &rest[open + 1..];
        if let Some(escaped) = rest.strip_prefix('{') {
            rest = escaped;
            continue;
        }
        let Some(close) = rest.find('}') else { break };
        let (argument, spec) = rest[..close]
            .split_once(':')
            .unwrap_or((&rest[..close], ""));
        rest = &rest[close + 1..];
        let argument = argument.trim();
        if argument.starts_with(|c: char| c.is_alphabetic() || c == '_') {
            names.push(argument.to_owned());
        }
        // `name$` in the spec: a width or precision taken from a variable.
        for (index, _) in spec.match_indices('$') {
            let name: String = spec[..index]
                .chars()
                .rev()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            if name.starts_with(|c: char| c.is_alphabetic() || c == '_') {
                names.push(name);
            }
        }
    }
    names
}

/// `Result`/`Option` by the last path segment's name, so aliases such as
/// `anyhow::Result<T>` and `io::Result<T>` count.
pub(crate) fn return_kind(ret: &Type) -> ReturnKind {
    let Type::Path(path) = strip_type_groups(ret) else {
        return ReturnKind::Plain;
    };
    match path.path.segments.last() {
        Some(segment) if segment.ident == "Result" => ReturnKind::Result,
        Some(segment) if segment.ident == "Option" => ReturnKind::Option,
        _ => ReturnKind::Plain,
    }
}

/// `(T)` and a `$ret:ty` passed through `macro_rules!` are `T`.
pub(crate) fn strip_type_groups(mut ty: &Type) -> &Type {
    loop {
        match ty {
            Type::Paren(paren) => ty = &paren.elem,
            Type::Group(group) => ty = &group.elem,
            _ => return ty,
        }
    }
}

pub(crate) fn mentions_self_type(tokens: TokenStream) -> bool {
    tokens.into_iter().any(|tree| match tree {
        TokenTree::Ident(ident) => ident == "Self",
        TokenTree::Group(group) => mentions_self_type(group.stream()),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::format_captures;

    #[test]
    fn format_captures_are_the_inline_names() {
        assert_eq!(format_captures("{org}:{page:>4}"), ["org", "page"]);
        assert_eq!(
            format_captures("{{org}} {} {0} {1:?}"),
            Vec::<String>::new()
        );
        assert_eq!(format_captures("{_x}/{user_id}"), ["_x", "user_id"]);
    }

    #[test]
    fn width_and_precision_arguments_are_captures_too() {
        assert_eq!(format_captures("{org:>width$}"), ["org", "width"]);
        assert_eq!(format_captures("{:.prec$} {0:1$}"), ["prec"]);
        assert_eq!(format_captures("{self}"), ["self"]);
    }
}
