//! Parsing `#[cached(...)]` arguments into [`CachedArgs`]. No code is
//! written here. Syntax errors stop the parse; a bad value is recorded in
//! [`Errors`] and parsing goes on, so every mistake is reported at once.

use std::time::Duration;

use proc_macro2::Span;
use syn::ext::IdentExt;
use syn::parse::ParseStream;
use syn::spanned::Spanned as _;
use syn::{Expr, ExprLit, ExprUnary, Ident, Lit, LitStr, Path, Token, UnOp};

/// The arguments as written.
pub(crate) struct CachedArgs {
    pub(crate) ttl: Option<Duration>,
    /// `ttl` was written, valid or not: a malformed one is not also "missing".
    pub(crate) ttl_written: bool,
    pub(crate) jitter: Option<f64>,
    pub(crate) key: Option<Expr>,
    pub(crate) max_capacity: Option<u64>,
    pub(crate) name: Option<LitStr>,
    pub(crate) krate: Option<Path>,
    /// Each policy with the span of its name, for errors that involve it.
    pub(crate) swr: Option<(Swr, Span)>,
    pub(crate) early_refresh: Option<(f64, Span)>,
    pub(crate) fail_safe: Option<(Duration, Span)>,
    pub(crate) fail_safe_throttle: Option<(Duration, Span)>,
    pub(crate) negative_ttl: Option<(Duration, Span)>,
    pub(crate) negative: Option<(Path, Span)>,
    pub(crate) ttl_for: Option<(Path, Span)>,
    pub(crate) timeout: Option<(Duration, Span)>,
    pub(crate) hard_timeout: Option<(Duration, Span)>,
    /// `tags = [..]`: templates and expressions, as written.
    pub(crate) tags: Option<Vec<Expr>>,
    /// `distributed = true`, with the span of its name.
    pub(crate) distributed: Option<(bool, Span)>,
    /// `version = n`, with the span of its name.
    pub(crate) version: Option<(u32, Span)>,
    /// `memory = "moka"` or `"quick"`: the memory tier.
    pub(crate) memory: Option<Memory>,
    /// `retry = n`: the calls of the body a load makes at most.
    pub(crate) retry: Option<(u32, Span)>,
    /// `retry_if = path`: which errors are worth a retry.
    pub(crate) retry_if: Option<(Path, Span)>,
    /// `retry_base`, `retry_cap`: the backoff's first window and its cap.
    pub(crate) retry_base: Option<(Duration, Span)>,
    pub(crate) retry_cap: Option<(Duration, Span)>,
    /// `circuit_breaker = true`, or an expression of its settings.
    pub(crate) circuit_breaker: Option<(Breaker, Span)>,
}

/// `circuit_breaker = true` (the defaults) or an expression that makes
/// `herdcache::CircuitBreaker` settings.
#[derive(Clone)]
pub(crate) enum Breaker {
    Defaults,
    Off,
    Settings(Expr),
}

/// The memory tier a function chose.
#[derive(Clone, Copy)]
pub(crate) enum Memory {
    Moka,
    Quick,
}

/// `swr = "30s"`, or `swr = true` for a window as long as the ttl.
#[derive(Clone, Copy)]
pub(crate) enum Swr {
    Window(Duration),
    SameAsTtl,
    Off,
}

const NAMES: &[&str] = &[
    "ttl",
    "jitter",
    "key",
    "max_capacity",
    "name",
    "crate",
    "swr",
    "early_refresh",
    "fail_safe",
    "fail_safe_throttle",
    "negative_ttl",
    "negative",
    "ttl_for",
    "timeout",
    "hard_timeout",
    "tags",
    "distributed",
    "version",
    "memory",
    "retry",
    "retry_if",
    "retry_base",
    "retry_cap",
    "circuit_breaker",
];

/// [`NAMES`] as an error lists them: `` `ttl`, `jitter`, … ``.
fn valid() -> String {
    NAMES
        .iter()
        .map(|name| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Designed but not built yet: say so instead of calling them unknown.
const PLANNED: &[&str] = &[];

/// Errors gathered along the pipeline, reported together.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    pub(crate) fn at(&mut self, span: Span, message: impl std::fmt::Display) {
        self.push(syn::Error::new(span, message));
    }

    pub(crate) fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

/// Parses `name = value, ...`, recording bad values in `errors`.
pub(crate) fn parse(input: ParseStream, errors: &mut Errors) -> syn::Result<CachedArgs> {
    let mut args = CachedArgs {
        ttl: None,
        ttl_written: false,
        jitter: None,
        key: None,
        max_capacity: None,
        name: None,
        krate: None,
        swr: None,
        early_refresh: None,
        fail_safe: None,
        fail_safe_throttle: None,
        negative_ttl: None,
        negative: None,
        ttl_for: None,
        timeout: None,
        hard_timeout: None,
        tags: None,
        distributed: None,
        version: None,
        memory: None,
        retry: None,
        retry_if: None,
        retry_base: None,
        retry_cap: None,
        circuit_breaker: None,
    };
    while !input.is_empty() {
        let name = input.call(Ident::parse_any)?;
        input.parse::<Token![=]>()?;
        let value: Expr = input.parse()?;
        match name.to_string().as_str() {
            "ttl" => {
                args.ttl_written = true;
                if let Some(ttl) = duration(&name, &value, errors) {
                    set_once(&mut args.ttl, ttl, &name, errors);
                }
            }
            "jitter" => {
                if let Some(jitter) = jitter(&value, errors) {
                    set_once(&mut args.jitter, jitter, &name, errors);
                }
            }
            "key" => set_once(&mut args.key, value, &name, errors),
            "max_capacity" => {
                if let Some(capacity) = capacity(&value, errors) {
                    set_once(&mut args.max_capacity, capacity, &name, errors);
                }
            }
            "name" => match &value {
                Expr::Lit(ExprLit {
                    lit: Lit::Str(name_lit),
                    ..
                }) if !name_lit.value().trim().is_empty() => {
                    set_once(&mut args.name, name_lit.clone(), &name, errors)
                }
                _ => errors.at(
                    value.span(),
                    "`name` must be a non-empty string literal, e.g. `name = \"users.get\"`",
                ),
            },
            "crate" => match value {
                Expr::Path(path) if path.qself.is_none() => {
                    set_once(&mut args.krate, path.path, &name, errors)
                }
                other => errors.at(
                    other.span(),
                    "`crate` must be a path to the herdcache crate, e.g. `crate = ::my_reexport::herdcache`",
                ),
            },
            "swr" => {
                if let Some(swr) = swr(&name, &value, errors) {
                    set_once(&mut args.swr, (swr, name.span()), &name, errors);
                }
            }
            "early_refresh" => {
                if let Some(beta) = early_refresh(&value, errors) {
                    set_once(&mut args.early_refresh, (beta, name.span()), &name, errors);
                }
            }
            "fail_safe" | "fail_safe_throttle" | "negative_ttl" | "timeout" | "hard_timeout"
            | "retry_base" | "retry_cap" => {
                if let Some(duration) = duration(&name, &value, errors) {
                    let slot = match name.to_string().as_str() {
                        "fail_safe" => &mut args.fail_safe,
                        "retry_base" => &mut args.retry_base,
                        "retry_cap" => &mut args.retry_cap,
                        "fail_safe_throttle" => &mut args.fail_safe_throttle,
                        "timeout" => &mut args.timeout,
                        "hard_timeout" => &mut args.hard_timeout,
                        _ => &mut args.negative_ttl,
                    };
                    set_once(slot, (duration, name.span()), &name, errors);
                }
            }
            "negative" | "ttl_for" | "retry_if" => match value {
                Expr::Path(path) if path.qself.is_none() => {
                    let slot = if name == "negative" {
                        &mut args.negative
                    } else if name == "retry_if" {
                        &mut args.retry_if
                    } else {
                        &mut args.ttl_for
                    };
                    set_once(slot, (path.path, name.span()), &name, errors);
                }
                other => errors.at(
                    other.span(),
                    if name == "negative" {
                        "`negative` must be the path of a `fn(&E) -> Option<Duration>`, e.g. `negative = rules::not_found_for_5m`"
                    } else if name == "retry_if" {
                        "`retry_if` must be the path of a `fn(&E) -> bool` that says which errors are worth a retry, e.g. `retry_if = ApiError::is_transient`"
                    } else {
                        "`ttl_for` must be the path of a `fn(&T) -> Duration`, e.g. `ttl_for = Token::lifetime`"
                    },
                ),
            },
            "retry" => {
                let parsed = match &value {
                    Expr::Lit(ExprLit {
                        lit: Lit::Int(int), ..
                    }) => int.base10_parse::<u32>().ok().filter(|n| (1..=100).contains(n)),
                    _ => None,
                };
                match parsed {
                    Some(attempts) => set_once(&mut args.retry, (attempts, name.span()), &name, errors),
                    None => errors.at(
                        value.span(),
                        "`retry` must be the number of calls a load makes at most, an integer literal from 1 to 100, e.g. `retry = 3`",
                    ),
                }
            }
            "circuit_breaker" => {
                let breaker = match &value {
                    Expr::Lit(ExprLit {
                        lit: Lit::Bool(flag),
                        ..
                    }) if flag.value => Some(Breaker::Defaults),
                    Expr::Lit(ExprLit {
                        lit: Lit::Bool(_), ..
                    }) => Some(Breaker::Off),
                    Expr::Lit(_) => None,
                    settings => Some(Breaker::Settings(settings.clone())),
                };
                match breaker {
                    Some(breaker) => set_once(&mut args.circuit_breaker, (breaker, name.span()), &name, errors),
                    None => errors.at(
                        value.span(),
                        "`circuit_breaker` must be `true`, or an expression making `herdcache::CircuitBreaker` settings, e.g. `circuit_breaker = CircuitBreaker::new().failure_ratio(0.25)`",
                    ),
                }
            }
            "distributed" => match &value {
                Expr::Lit(ExprLit {
                    lit: Lit::Bool(flag),
                    ..
                }) => set_once(&mut args.distributed, (flag.value, name.span()), &name, errors),
                _ => errors.at(
                    value.span(),
                    "`distributed` must be `true` or `false`",
                ),
            },
            "version" => {
                let parsed = match &value {
                    Expr::Lit(ExprLit {
                        lit: Lit::Int(int), ..
                    }) => int.base10_parse::<u32>().ok(),
                    _ => None,
                };
                match parsed {
                    Some(version) => set_once(&mut args.version, (version, name.span()), &name, errors),
                    None => errors.at(
                        value.span(),
                        "`version` must be an integer literal, e.g. `version = 2`",
                    ),
                }
            }
            "memory" => {
                // A literal passed through `macro_rules!` arrives in an
                // invisible group.
                let mut literal = &value;
                while let Expr::Group(group) = literal {
                    literal = &group.expr;
                }
                let memory = match literal {
                    Expr::Lit(ExprLit {
                        lit: Lit::Str(name), ..
                    }) => match name.value().as_str() {
                        "moka" => Some(Memory::Moka),
                        "quick" => Some(Memory::Quick),
                        _ => None,
                    },
                    _ => None,
                };
                match memory {
                    Some(memory) => set_once(&mut args.memory, memory, &name, errors),
                    None => errors.at(
                        value.span(),
                        "`memory` must be \"moka\" (the default: TinyLFU admission, proactive expiry) or \"quick\" (quick_cache: faster hits that scale with cores, smaller entries)",
                    ),
                }
            }
            "tags" => match crate::tags::list(value) {
                Ok(tags) => set_once(&mut args.tags, tags, &name, errors),
                Err(error) => errors.push(error),
            },
            planned if PLANNED.contains(&planned) => errors.at(
                name.span(),
                format_args!(
                    "`{planned}` is not supported by this version of herdcache yet; supported attributes: {}", valid()
                ),
            ),
            unknown => match closest_valid(unknown) {
                Some(suggestion) => {
                    // A misspelt `ttl` is not also a missing one.
                    args.ttl_written |= suggestion == "ttl";
                    errors.at(
                        name.span(),
                        format_args!(
                            "unknown attribute `{unknown}`: did you mean `{suggestion}`? valid attributes: {}", valid()
                        ),
                    )
                }
                None => errors.at(
                    name.span(),
                    format_args!("unknown attribute `{unknown}`; valid attributes: {}", valid()),
                ),
            },
        }
        if input.is_empty() {
            break;
        }
        input.parse::<Token![,]>()?;
    }
    Ok(args)
}

/// The valid attribute name within two edits of `name`, if any.
fn closest_valid(name: &str) -> Option<&'static str> {
    closest(name, NAMES.iter().copied())
}

/// The candidate within two edits of `name`, if any (the nearest; the
/// first of equals).
pub(crate) fn closest<'a>(
    name: &str,
    candidates: impl Iterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .map(|candidate| (edit_distance(name, candidate), candidate))
        .filter(|(distance, _)| *distance <= 2)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// Levenshtein distance, for suggestions.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

/// Keeps the first value; a repeat is an error at the repeated name (the
/// copy-paste bug tracing-attributes once had in this spot).
fn set_once<T>(slot: &mut Option<T>, value: T, name: &Ident, errors: &mut Errors) {
    if slot.is_some() {
        errors.at(name.span(), format_args!("`{name}` is given twice"));
    } else {
        *slot = Some(value);
    }
}

pub(crate) fn duration(name: &Ident, value: &Expr, errors: &mut Errors) -> Option<Duration> {
    let Expr::Lit(ExprLit {
        lit: Lit::Str(lit), ..
    }) = value
    else {
        errors.at(
            value.span(),
            format_args!("`{name}` must be a duration string, e.g. `{name} = \"60s\"`"),
        );
        return None;
    };
    match parse_duration(&lit.value()) {
        Ok(duration) if duration.is_zero() => {
            errors.at(
                lit.span(),
                format_args!("`{name}` must be greater than zero"),
            );
            None
        }
        Ok(duration) => Some(duration),
        Err(reason) => {
            errors.at(lit.span(), reason);
            None
        }
    }
}

/// Parses durations such as `"60s"`, `"300ms"`, `"1h30m"`, `"1.5s"`.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let malformed = || {
        format!(
            "malformed duration `{text}`: expected numbers with units, e.g. \"60s\", \"300ms\", \"5m\", \"1h30m\" (units: ns, us, ms, s, m, h, d)"
        )
    };
    // As documented: numbers and units, nothing between or around them.
    if text.contains(char::is_whitespace) {
        // The fix, when taking the spaces out is one (`"1 min"` is not).
        let joined: String = text.split_whitespace().collect();
        return Err(match parse_duration(&joined) {
            Ok(_) => format!(
                "malformed duration `{text}`: no spaces in a duration, write `\"{joined}\"`"
            ),
            Err(_) => malformed(),
        });
    }
    let mut rest = text;
    if rest.is_empty() {
        return Err(malformed());
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_len]
            .replace('_', "")
            .parse()
            .map_err(|_| malformed())?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds_per_unit = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86_400.0,
            _ => return Err(malformed()),
        };
        rest = &rest[unit_len..];
        total += Duration::try_from_secs_f64(number * seconds_per_unit).map_err(|_| malformed())?;
    }
    Ok(total)
}

fn swr(name: &Ident, value: &Expr, errors: &mut Errors) -> Option<Swr> {
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Bool(flag),
            ..
        }) => Some(if flag.value { Swr::SameAsTtl } else { Swr::Off }),
        Expr::Lit(ExprLit {
            lit: Lit::Str(_), ..
        }) => duration(name, value, errors).map(Swr::Window),
        other => {
            errors.at(
                other.span(),
                "`swr` must be a duration string or a bool, e.g. `swr = \"30s\"`, or `swr = true` for a window as long as the ttl",
            );
            None
        }
    }
}

fn early_refresh(value: &Expr, errors: &mut Errors) -> Option<f64> {
    let number = match value {
        Expr::Lit(ExprLit { lit, .. }) => literal_number(lit),
        _ => None,
    };
    match number {
        Some(beta) if beta > 0.0 && beta.is_finite() => Some(beta),
        _ => {
            errors.at(
                value.span(),
                "`early_refresh` must be a positive number (XFetch's β; 1.0 is the usual choice), e.g. `early_refresh = 1.0`",
            );
            None
        }
    }
}

fn jitter(value: &Expr, errors: &mut Errors) -> Option<f64> {
    let number = match value {
        Expr::Lit(ExprLit { lit, .. }) => literal_number(lit),
        Expr::Unary(ExprUnary {
            op: UnOp::Neg(_),
            expr,
            ..
        }) => match &**expr {
            Expr::Lit(ExprLit { lit, .. }) => literal_number(lit).map(|n| -n),
            _ => None,
        },
        _ => None,
    };
    match number {
        Some(n) if (0.0..=1.0).contains(&n) => Some(n),
        Some(n) => {
            errors.at(
                value.span(),
                format_args!("`jitter` must be within 0.0..=1.0 (a fraction of the ttl), got {n}"),
            );
            None
        }
        None => {
            errors.at(
                value.span(),
                "`jitter` must be a number within 0.0..=1.0, e.g. `jitter = 0.1`",
            );
            None
        }
    }
}

fn literal_number(lit: &Lit) -> Option<f64> {
    match lit {
        Lit::Float(f) => f.base10_parse().ok(),
        Lit::Int(i) => i.base10_parse::<u64>().ok().map(|n| n as f64),
        _ => None,
    }
}

fn capacity(value: &Expr, errors: &mut Errors) -> Option<u64> {
    let parsed = match value {
        Expr::Lit(ExprLit {
            lit: Lit::Int(int), ..
        }) => int.base10_parse::<u64>().ok(),
        _ => None,
    };
    match parsed {
        Some(n) if n > 0 => Some(n),
        _ => {
            errors.at(
                value.span(),
                "`max_capacity` must be a positive integer literal, e.g. `max_capacity = 10_000`",
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations_in_every_unit_and_combined() {
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert!(parse_duration("60 s")
            .unwrap_err()
            .contains("write `\"60s\"`"));
        assert!(parse_duration(" 60s").is_err());
        // Taking the spaces out is suggested only when that is the fix.
        let one_min = parse_duration("1 min").unwrap_err();
        assert!(!one_min.contains("write"), "{one_min}");
        assert!(
            one_min.contains("units: ns, us, ms, s, m, h, d"),
            "{one_min}"
        );
        assert!(parse_duration("1h 30m").is_err());
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("10_000ms"), Ok(Duration::from_secs(10)));
    }

    #[test]
    fn near_misses_get_a_suggestion() {
        assert_eq!(super::closest_valid("tll"), Some("ttl"));
        assert_eq!(super::closest_valid("jiter"), Some("jitter"));
        assert_eq!(super::closest_valid("keys"), Some("key"));
        assert_eq!(super::closest_valid("stale_while_revalidate"), None);
    }

    #[test]
    fn malformed_durations_are_rejected() {
        for bad in ["", "6os", "60", "s", "10 parsecs", "1.2.3s", "-5s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
