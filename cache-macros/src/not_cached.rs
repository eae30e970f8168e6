//! Whether `#[invalidate(stock(sku))]` names a function that is surely not
//! `#[cached]`, read from the writer's source.
//!
//! `stock(sku)` becomes a call of `stock_invalidate(sku)`. When `stock` is
//! not cached, rustc reports the missing helper and may guess another
//! cached function's helper (`get_user_invalidate`): advice that is wrong.
//! Rustc's guess cannot be turned off, so when the file proves the
//! mistake, `#[invalidate]` reports it in its own words instead.
//!
//! "Proves" is narrow on purpose. The answer is yes only when all hold:
//! - the writer is at the top of its file, or a method of an impl there,
//!   and its own `#[invalidate]` names the target;
//! - the file holds exactly one `fn stock`, at its top, with no attribute
//!   but inert built-in ones (and `#[instrument]`);
//! - nothing in the file can put `stock_invalidate` in scope another way:
//!   the word itself, a glob import, a macro call at the top (but trusted
//!   ones), an attribute or derive that may add items (std's and a few
//!   well-known crates' derives do not), or a name those attributes,
//!   derives and macros use imported from another crate, renamed, or
//!   shadowed by a module or `extern crate`;
//! - nothing the cleaner may misread: a shebang, a `cr"…"` literal, a
//!   non-ASCII or control character outside comments and literals (a raw
//!   identifier reads as its name);
//! - in the folder of the crate's root file, no file names `include` or
//!   `macro_use`, carries a `path` attribute or a `#![feature]`, renames
//!   an `extern crate` to a name that matters, redefines a trusted macro,
//!   or names the writer's file as something to include; nothing is a
//!   link; and no trusted crate's name is another crate's (any could make
//!   the writer's file part of another module, or give its names another
//!   meaning).
//!
//! Any doubt answers no, and rustc's own error stands. A typo (`stok`
//! beside a cached `stock`) is rustc's too: its guess is then right.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::source;

/// What the writer's file proves of `target`, named in the `#[invalidate]`
/// on the function `writer`: `Some` when it is a function that is not
/// `#[cached]` and no `<target>_invalidate` can be in scope.
pub(crate) fn surely_not_cached(target: &syn::Ident, writer: &syn::Ident) -> Option<Proof> {
    let (target_span, writer_span) = (target.span().unwrap(), writer.span().unwrap());
    let file = writer_span.local_file()?;
    if target_span.local_file()? != file {
        return None;
    }
    let (text, clean) = source::read(file.clone())?;
    let facts = Facts::of(&file, text, &clean)?;
    let proof = facts.prove(
        (&writer.to_string(), writer_span.line()),
        (&target.to_string(), target_span.line()),
    )?;
    crate_includes_nothing(&file, &facts.used).then_some(proof)
}

/// A token of the cleaned text: a word (identifier, keyword or number), a
/// literal (its inside blanked) or one punctuation byte, with the number of
/// delimiters open around it.
#[derive(Clone, Copy, Debug)]
struct Token {
    kind: Kind,
    start: usize,
    end: usize,
    depth: usize,
}

impl Token {
    /// Its text.
    fn text<'a>(&self, text: &'a str) -> &'a str {
        &text[self.start..self.end]
    }

    /// Its text, if it is a word.
    fn word<'a>(&self, text: &'a str) -> Option<&'a str> {
        (self.kind == Kind::Word).then(|| self.text(text))
    }
}

/// The tokens inside the delimiters that open at token `open`.
fn inside(tokens: &[Token], open: usize) -> &[Token] {
    let depth = tokens[open].depth;
    let rest = &tokens[open + 1..];
    &rest[..rest.iter().take_while(|t| t.depth > depth).count()]
}

/// An attribute allowed at the top of the writer's file: inert, a derive's
/// helper, or known.
fn top_attribute(name: &str) -> bool {
    INERT.contains(&name) || TOP.contains(&name) || KNOWN.contains(&name)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Word,
    Literal,
    Punct(u8),
}

/// The tokens of cleaned text; `None` when its delimiters do not balance.
fn tokens(clean: &[u8]) -> Option<Vec<Token>> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < clean.len() {
        let b = clean[i];
        if b.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        // A raw identifier is its name: `r#test` is the word `test`.
        if b == b'r'
            && clean.get(i + 1) == Some(&b'#')
            && clean.get(i + 2).copied().is_some_and(source::is_word)
            && (i == 0 || !source::is_word(clean[i - 1]))
        {
            i += 2;
        }
        let start = i;
        let kind = if source::is_word(b) {
            while i < clean.len() && source::is_word(clean[i]) {
                i += 1;
            }
            Kind::Word
        } else if b == b'"' {
            i += 1 + clean[i + 1..].iter().position(|&c| c == b'"')? + 1;
            Kind::Literal
        } else {
            i += 1;
            Kind::Punct(b)
        };
        if matches!(b, b'}' | b')' | b']') {
            depth = depth.checked_sub(1)?;
        }
        out.push(Token {
            kind,
            start,
            end: i,
            depth,
        });
        if matches!(b, b'{' | b'(' | b'[') {
            depth += 1;
        }
    }
    (depth == 0).then_some(out)
}

/// Attributes that add no item: built-in and inert.
const INERT: &[&str] = &[
    "doc",
    "allow",
    "warn",
    "deny",
    "forbid",
    "expect",
    "inline",
    "cold",
    "must_use",
    "deprecated",
    "track_caller",
    "repr",
    "non_exhaustive",
    "test",
    "ignore",
    "should_panic",
];

/// Attributes that add no item, allowed at the top but not on the target:
/// `cfg` only removes items (and a `fn stock` removed is no proof),
/// `derive` is read apart, `serde` and `error` are trusted derives'
/// helpers.
const TOP: &[&str] = &[
    "cfg", "derive", "serde", "error", "sqlx", "validate", "schema", "schemars", "command", "arg",
    "clap", "strum", "display",
];

/// Attributes whose expansion adds no `<name>_invalidate` but their own
/// function's (`#[cached]` on a function other than the target).
const KNOWN: &[&str] = &[
    "cached",
    "invalidate",
    "idempotent",
    "cached_impl",
    "herdcache::cached",
    "herdcache::invalidate",
    "herdcache::idempotent",
    "herdcache::cached_impl",
    "tokio::main",
    "tokio::test",
    "async_trait",
    "async_trait::async_trait",
    "axum::async_trait",
    "axum::debug_handler",
    "instrument",
    "tracing::instrument",
    "sqlx::test",
];

/// Attributes allowed on the target besides [`INERT`]: they wrap its body
/// and add no item.
const ON_TARGET: &[&str] = &["instrument", "tracing::instrument"];

/// Macros allowed at the top: the items they add are named by their
/// arguments (`thread_local!(static NAME: ..)`).
const MACROS: &[&str] = &["thread_local", "task_local", "lazy_static"];

/// Derives that add impls only: the standard library's and those of
/// well-known crates ([`ROOTS`]).
const DERIVES: &[&str] = &[
    "Debug",
    "Clone",
    "Copy",
    "PartialEq",
    "Eq",
    "PartialOrd",
    "Ord",
    "Hash",
    "Default",
    "Serialize",
    "Deserialize",
    "Error",
    "FromRow",
    "Type",
    "Validate",
    "ToSchema",
    "JsonSchema",
    "Parser",
    "Args",
    "Subcommand",
    "ValueEnum",
    "Display",
    "EnumString",
    "EnumIter",
    "AsRefStr",
    "IntoStaticStr",
];

/// The modules between a trusted crate and its derive
/// (`std::fmt::Debug`).
const DERIVE_MODULES: &[&str] = &["fmt", "hash", "cmp", "clone", "marker", "default"];

/// The crates whose attributes and derives are trusted by name.
const ROOTS: &[&str] = &[
    "herdcache",
    "tokio",
    "async_trait",
    "std",
    "core",
    "serde",
    "thiserror",
    "sqlx",
    "validator",
    "utoipa",
    "schemars",
    "clap",
    "derive_more",
    "strum",
    "axum",
    "tracing",
    "lazy_static",
];

/// What a file says, once per file and version: `None` when something in
/// it is doubt for every name (see [`Facts::new`]).
struct Facts {
    text: Rc<str>,
    tokens: Vec<Token>,
    /// The names the file's attributes, derives and macros use.
    used: HashSet<Rc<str>>,
    /// The words of the file.
    words: HashSet<Rc<str>>,
    /// The `fn` token of each `fn <name>`, by name.
    functions: HashMap<Rc<str>, Vec<usize>>,
    /// Where each line starts, in bytes.
    line_starts: Vec<usize>,
}

impl Facts {
    /// The facts of the file, from a cache kept per file while the text
    /// read for it stays the same.
    fn of(file: &Path, text: Rc<str>, clean: &Rc<[u8]>) -> Option<Rc<Facts>> {
        type Cache = HashMap<PathBuf, (Rc<[u8]>, Option<Rc<Facts>>)>;
        thread_local! {
            static CACHE: RefCell<Cache> = RefCell::new(HashMap::new());
        }
        CACHE.with(|cache| {
            let mut cache = cache.borrow_mut();
            if let Some((seen, facts)) = cache.get(file) {
                if Rc::ptr_eq(seen, clean) {
                    return facts.clone();
                }
            }
            let facts = Facts::new(text, clean).map(Rc::new);
            cache.insert(file.to_path_buf(), (clean.clone(), facts.clone()));
            facts
        })
    }

    /// `None` on what this reader may misread (a shebang, a non-ASCII or
    /// control character outside comments and literals, delimiters that do
    /// not balance) or on anything at the top that could bring a helper in
    /// unseen (see [`everything_at_the_top_known`]).
    fn new(text: Rc<str>, clean: &[u8]) -> Option<Facts> {
        // A shebang line is not code the cleaner understands.
        if text.starts_with("#!") && !text[2..].trim_start().starts_with('[') {
            return None;
        }
        // A byte-order mark or an invisible space could hide a token from
        // this reader, but not from rustc.
        let strange = text.bytes().zip(clean).any(|(original, &cleaned)| {
            (cleaned == b'_' && !original.is_ascii())
                || (cleaned.is_ascii_control() && !matches!(cleaned, b'\n' | b'\r' | b'\t'))
        });
        if strange {
            return None;
        }
        let tokens = tokens(clean)?;
        // `cr"..."` is a raw C string since the 2021 edition, an identifier
        // and a string before it: the cleaner cannot tell which.
        if tokens
            .iter()
            .any(|t| t.kind == Kind::Literal && text[t.start..].starts_with("cr"))
        {
            return None;
        }
        let used = everything_at_the_top_known(&tokens, &text)?
            .into_iter()
            .map(Rc::from)
            .collect();
        let mut words = HashSet::new();
        let mut functions: HashMap<Rc<str>, Vec<usize>> = HashMap::new();
        for (at, token) in tokens.iter().enumerate() {
            if token.kind != Kind::Word {
                continue;
            }
            let word: Rc<str> = token.text(&text).into();
            if at > 0 && tokens[at - 1].word(&text) == Some("fn") {
                functions.entry(word.clone()).or_default().push(at - 1);
            }
            words.insert(word);
        }
        let line_starts = std::iter::once(0)
            .chain(
                clean
                    .iter()
                    .enumerate()
                    .filter(|(_, &b)| b == b'\n')
                    .map(|(at, _)| at + 1),
            )
            .collect();
        Some(Facts {
            text,
            tokens,
            used,
            words,
            functions,
            line_starts,
        })
    }

    fn line_of(&self, at: usize) -> usize {
        self.line_starts.partition_point(|&start| start <= at)
    }

    /// The `fn` tokens of `fn <name>`.
    fn functions(&self, name: &str) -> &[usize] {
        self.functions.get(name).map_or(&[], Vec::as_slice)
    }

    /// Whether `target` is a plain function at the top, no
    /// `<target>_invalidate` is in sight, and the writer (its name on line
    /// `writer_line`) is at the top or a method of an impl there, with an
    /// `#[invalidate]` naming `target` on line `target_line`. Says whether
    /// the target is an `async fn`.
    fn prove(&self, writer: (&str, usize), target: (&str, usize)) -> Option<Proof> {
        let ((writer, writer_line), (target, target_line)) = (writer, target);
        let tokens = &self.tokens;
        let text = &*self.text;
        if self.words.contains(format!("{target}_invalidate").as_str()) {
            return None;
        }
        let mut writers = self
            .functions(writer)
            .iter()
            .filter(|&&at| self.line_of(tokens[at + 1].start) == writer_line);
        let &at = writers.next()?;
        if writers.next().is_some() {
            return None;
        }
        match tokens[at].depth {
            0 => {}
            1 => {
                let brace = tokens[..at].iter().rposition(|t| t.depth == 0)?;
                // The impl's brace ends its header: after a type, not after
                // `<`, `,` or `=` (a const generic's block, `Foo<{ .. }>`).
                let after_type = brace > 0
                    && matches!(
                        tokens[brace - 1].kind,
                        Kind::Word | Kind::Punct(b'>' | b')' | b']')
                    );
                if tokens[brace].kind != Kind::Punct(b'{') || !after_type {
                    return None;
                }
                let mut i = item_start(tokens, brace);
                while let Some((_, end)) = attribute_at(tokens, text, i) {
                    i = end;
                }
                let header = &tokens[i..brace];
                let mut words = header.iter().map(|t| t.text(text));
                if words.find(|&w| w != "unsafe") != Some("impl") {
                    return None;
                }
            }
            _ => return None,
        }
        // The `#[invalidate]` read is the one on this writer; its other
        // attributes (read at the top already for a free function) could
        // change the body the bust is in.
        let in_impl = tokens[at].depth == 1;
        let mut i = item_start(tokens, at);
        let mut named = false;
        while let Some((path, end)) = attribute_at(tokens, text, i) {
            let name = path.as_str();
            if !(INERT.contains(&name) || KNOWN.contains(&name) || name == "cfg") {
                return None;
            }
            if matches!(name, "invalidate" | "herdcache::invalidate") {
                named |= tokens[i..end]
                    .iter()
                    .any(|t| t.text(text) == target && self.line_of(t.start) == target_line);
            }
            i = end;
        }
        if !named {
            return None;
        }
        let &[at] = self.functions(target) else {
            return None;
        };
        if tokens[at].depth != 0 {
            return None;
        }
        plain_item(tokens, text, at).map(|is_async| Proof { is_async, in_impl })
    }
}

/// What the file proves of a target that is not cached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Proof {
    /// It is an `async fn` (`#[cached]` could go on it).
    pub(crate) is_async: bool,
    /// The writer is a method (`Self::name(..)` is a way to name another).
    pub(crate) in_impl: bool,
}

/// The first token of the item whose token `at` is: past the `;` or `}`
/// that ends the item before it, or the `{` of the block around it.
fn item_start(tokens: &[Token], at: usize) -> usize {
    let depth = tokens[at].depth;
    tokens[..at]
        .iter()
        .rposition(|t| {
            t.depth < depth || (t.depth == depth && matches!(t.kind, Kind::Punct(b';' | b'}')))
        })
        .map_or(0, |end| end + 1)
}

/// [`surely_not_cached`] on one file's text, the writer's name on line
/// `writer_line` (1-based), the target named on the line before it.
#[cfg(test)]
fn file_proves(text: &str, clean: &[u8], writer_line: usize, writer: &str, target: &str) -> bool {
    Facts::new(text.into(), clean).is_some_and(|facts| {
        facts
            .prove((writer, writer_line), (target, writer_line - 1))
            .is_some()
    })
}

/// The tokens before the `fn` at `at`, back to the item before it, are
/// only inert attributes and qualifiers (`pub(crate) const async unsafe
/// extern "C"`); whether `async` is one.
fn plain_item(tokens: &[Token], text: &str, at: usize) -> Option<bool> {
    let mut i = item_start(tokens, at);
    let mut is_async = false;
    while i < at {
        if let Some((path, end)) = attribute_at(tokens, text, i) {
            let name = path.as_str();
            if !(INERT.contains(&name) || ON_TARGET.contains(&name)) {
                return None;
            }
            i = end;
            continue;
        }
        let token = &tokens[i];
        let fine = match token.kind {
            Kind::Word => {
                let word = token.text(text);
                is_async |= word == "async";
                matches!(
                    word,
                    "pub"
                        | "crate"
                        | "self"
                        | "super"
                        | "in"
                        | "const"
                        | "async"
                        | "unsafe"
                        | "extern"
                )
            }
            Kind::Literal => true,
            Kind::Punct(b) => matches!(b, b'(' | b')' | b':'),
        };
        if !fine {
            return None;
        }
        i += 1;
    }
    Some(is_async)
}

/// The attribute (`#[..]` or `#![..]`) starting at token `i`: its path
/// (`herdcache::cached`) and the index past its `]`.
fn attribute_at(tokens: &[Token], text: &str, i: usize) -> Option<(String, usize)> {
    let is = |at: usize, b: u8| tokens.get(at).is_some_and(|t| t.kind == Kind::Punct(b));
    if !is(i, b'#') {
        return None;
    }
    let open = if is(i + 1, b'!') { i + 2 } else { i + 1 };
    if !is(open, b'[') {
        return None;
    }
    let depth = tokens[open].depth;
    let close = open
        + tokens[open..]
            .iter()
            .position(|t| t.depth == depth && t.kind == Kind::Punct(b']'))?;
    let mut path = String::new();
    for t in &tokens[open + 1..close] {
        match t.kind {
            Kind::Word => path.push_str(t.text(text)),
            Kind::Punct(b':') => path.push(':'),
            _ => break,
        }
    }
    Some((path, close + 1))
}

/// Nothing at the top of the file can bring `<target>_invalidate` into
/// scope unseen: every attribute is inert or known, every derive and
/// macro call trusted, no import is a glob, and no name that an attribute,
/// derive or macro uses (or its path's first word) can mean something
/// else: imported from an untrusted crate, renamed, or the name of a
/// module or `extern crate` of the file's own. Returns those names.
fn everything_at_the_top_known<'a>(tokens: &[Token], text: &'a str) -> Option<HashSet<&'a str>> {
    let word = |t: &Token| t.word(text);
    let punct = |at: usize, b: u8| tokens.get(at).is_some_and(|t| t.kind == Kind::Punct(b));
    // The names the file's attributes, derives and macros use, at any
    // depth (a method writer's attributes act on the body the bust is in).
    let mut used: HashSet<&str> = HashSet::new();
    for i in 0..tokens.len() {
        if let Some((path, end)) = attribute_at(tokens, text, i) {
            used.extend(tokens[i..end].iter().find_map(word));
            if path == "derive" {
                used.extend(
                    derives(tokens, text, i, end)?
                        .into_iter()
                        .filter_map(|d| d.first().copied()),
                );
            }
        }
    }
    let mut i = 0;
    while i < tokens.len() {
        let token = &tokens[i];
        // A trusted macro's name defined here (`macro_rules! thread_local`)
        // is not the trusted macro.
        if word(token) == Some("macro_rules")
            && punct(i + 1, b'!')
            && tokens
                .get(i + 2)
                .and_then(word)
                .is_some_and(|name| MACROS.contains(&name))
        {
            return None;
        }
        if token.depth != 0 {
            i += 1;
            continue;
        }
        if let Some((path, end)) = attribute_at(tokens, text, i) {
            let name = path.as_str();
            if !top_attribute(name) {
                return None;
            }
            if name == "derive" {
                // Each derive a trusted name, or a path from a trusted
                // crate (`std::fmt::Debug`, `serde::Serialize`).
                for derive in derives(tokens, text, i, end)? {
                    let trusted = match derive.as_slice() {
                        [name] => DERIVES.contains(name),
                        [root, modules @ .., name] => {
                            ROOTS.contains(root)
                                && modules.iter().all(|module| DERIVE_MODULES.contains(module))
                                && DERIVES.contains(name)
                        }
                        [] => true,
                    };
                    if !trusted {
                        return None;
                    }
                }
            }
            i = end;
            continue;
        }
        // An `extern` block's items are the module's, and a macro called
        // in it may add any.
        if word(token) == Some("extern") {
            let next = tokens[i + 1..].iter().find(|t| t.kind != Kind::Literal);
            if next.is_some_and(|t| t.kind == Kind::Punct(b'{')) {
                return None;
            }
        }
        // A macro called at the top may add any item, but for the trusted
        // ones, called by their name or from a trusted crate; a definition
        // (`macro_rules! name`, not `macro_rules! { .. }`) adds none.
        if let Some(name) = word(token) {
            let definition =
                name == "macro_rules" && tokens.get(i + 2).is_some_and(|t| t.kind == Kind::Word);
            let opener = tokens.get(i + 2).is_some_and(|next| {
                matches!(next.kind, Kind::Word | Kind::Punct(b'(' | b'[' | b'{'))
            });
            if punct(i + 1, b'!') && !definition && opener {
                let root = path_root(tokens, text, i);
                let trusted = MACROS.contains(&name) && (root == name || ROOTS.contains(&root));
                // Attributes in its arguments land on items at the top.
                let attributes = inside(tokens, i + 2)
                    .iter()
                    .any(|t| t.kind == Kind::Punct(b'#'));
                if !trusted || attributes {
                    return None;
                }
                used.insert(root);
            }
        }
        i += 1;
    }
    for (i, token) in tokens.iter().enumerate() {
        if token.depth != 0 {
            continue;
        }
        let next_is_used = || {
            tokens
                .get(i + 1)
                .and_then(word)
                .is_some_and(|name| used.contains(name))
        };
        match word(token) {
            // An import, not `impl Trait + use<'a>`: at an item's start.
            Some("use")
                if i == 0
                    || matches!(tokens[i - 1].kind, Kind::Punct(b';' | b'}' | b']' | b')'))
                    || word(&tokens[i - 1]) == Some("pub") =>
            {
                let end = i + tokens[i..]
                    .iter()
                    .position(|t| t.depth == 0 && t.kind == Kind::Punct(b';'))?;
                let statement = &tokens[i + 1..end];
                if statement.iter().any(|t| t.kind == Kind::Punct(b'*')) {
                    return None;
                }
                let names: Vec<&str> = statement.iter().filter_map(word).collect();
                // `use herdcache::{cached as test}`: a rename at any depth.
                let renamed = names
                    .windows(2)
                    .any(|pair| pair[0] == "as" && used.contains(pair[1]));
                // The crate is the first token: `use {std::fmt::Display,
                // evil::Debug}` has none.
                let from = statement
                    .iter()
                    .find(|t| t.kind != Kind::Punct(b':'))
                    .and_then(word)
                    .unwrap_or_default();
                let foreign =
                    !ROOTS.contains(&from) && names.iter().any(|name| used.contains(name));
                if renamed || foreign {
                    return None;
                }
            }
            // `extern crate evil as herdcache;`, `mod herdcache { .. }`,
            // `extern crate herdcache;` (a crate renamed in Cargo.toml).
            Some("as" | "mod" | "crate") if next_is_used() => return None,
            _ => {}
        }
    }
    Some(used)
}

/// The derives of the `#[derive(..)]` from token `i` to `end`, each as the
/// words of its path; `None` when it has no parentheses.
fn derives<'a>(tokens: &[Token], text: &'a str, i: usize, end: usize) -> Option<Vec<Vec<&'a str>>> {
    let open = i + tokens[i..end]
        .iter()
        .position(|t| t.kind == Kind::Punct(b'('))?;
    let depth = tokens[open].depth + 1;
    let inside = tokens.get(open + 1..end.checked_sub(2)?)?;
    Some(
        inside
            .split(|t| t.kind == Kind::Punct(b',') && t.depth == depth)
            .map(|derive| {
                derive
                    .iter()
                    .filter(|t| t.kind == Kind::Word)
                    .map(|t| t.text(text))
                    .collect()
            })
            .collect(),
    )
}

/// The first word of the path that ends with the word at `i`
/// (`tokio` for `tokio::task_local`).
fn path_root<'a>(tokens: &[Token], text: &'a str, mut i: usize) -> &'a str {
    while i >= 3
        && tokens[i - 1].kind == Kind::Punct(b':')
        && tokens[i - 2].kind == Kind::Punct(b':')
        && tokens[i - 3].kind == Kind::Word
    {
        i -= 3;
    }
    tokens[i].text(text)
}

/// Nothing in the crate could make the writer's file part of another
/// module or give its names another meaning: in the folder of the crate's
/// root file, no Rust file names `include` or `macro_use`, carries a
/// `path` attribute, or names the writer's file (its stem in a literal, or
/// as a word in a macro's arguments: a macro that includes under another
/// name, such as `include_proto!("shop")`, still names the file); and no
/// link. Then the file is its module's whole source, as rustc reads it.
fn crate_includes_nothing(file: &Path, used: &HashSet<Rc<str>>) -> bool {
    crate_root().is_some_and(|root| includes_nothing(file, &root, used))
}

/// The crate's root file, from rustc's command line (a proc macro runs
/// inside rustc): the one argument naming a `.rs` file that exists.
/// `None` under rustdoc, which expands macros but does not resolve the
/// names in function bodies: a build that never called the helper.
fn crate_root() -> Option<PathBuf> {
    let mut args = std::env::args_os().map(PathBuf::from);
    let program = args.next()?;
    if program
        .file_name()
        .is_some_and(|name| name.to_string_lossy().starts_with("rustdoc"))
    {
        return None;
    }
    let args: Vec<PathBuf> = args.collect();
    // `-Zcrate-attr=..` adds attributes this reader never sees.
    if args
        .iter()
        .any(|arg| arg.to_string_lossy().contains("crate-attr"))
    {
        return None;
    }
    // A trusted crate's name given to another crate (`serde = { package =
    // "other" }` in Cargo.toml): `--extern serde=../libother-….rlib`.
    let renamed = args.windows(2).any(|pair| {
        let (flag, value) = (pair[0].to_string_lossy(), pair[1].to_string_lossy());
        let Some((name, path)) = value.split_once('=') else {
            return false;
        };
        let file = Path::new(path)
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        flag == "--extern"
            && ROOTS.contains(&name)
            && !file.starts_with(&format!("lib{name}-"))
            && !file.starts_with(&format!("lib{name}."))
    });
    if renamed {
        return None;
    }
    let mut roots = args
        .into_iter()
        .filter(|arg| is_rust_file(arg) && arg.is_file());
    let root = roots.next()?;
    if roots.next().is_some() {
        return None;
    }
    std::path::absolute(root).ok()
}

/// A name ending in `.rs`, in any case (a case-insensitive file system
/// compiles `a.RS` as `a.rs`).
fn is_rust_file(path: &Path) -> bool {
    path.extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("rs"))
}

/// [`crate_includes_nothing`] for the crate whose root file is `root`:
/// every module file is in the root's folder, or reached from a file
/// there by a `path` attribute or an `include!`, so reading that folder
/// sees them all. `used`: the names the writer's file uses in attributes,
/// derives and macro calls.
fn includes_nothing(file: &Path, root: &Path, used: &HashSet<Rc<str>>) -> bool {
    // rustc's paths are relative to its working directory. The root's
    // folder is taken as rustc takes it: a linked root file is found
    // below, and is doubt.
    let (Ok(file), Some(Ok(folder))) = (
        std::fs::canonicalize(file),
        root.parent().map(std::fs::canonicalize),
    ) else {
        return false;
    };
    // The writer file's names: its stem, and its folder's for a `mod.rs`.
    // The root file itself is no module's to include.
    let mut stems: Vec<String> = Vec::new();
    if std::fs::canonicalize(root).ok().as_ref() != Some(&file) {
        stems.extend(
            file.file_stem()
                .map(|stem| stem.to_string_lossy().to_lowercase()),
        );
        if stems.iter().any(|stem| stem == "mod") {
            let parent = file.parent().and_then(Path::file_name);
            stems.extend(parent.map(|name| name.to_string_lossy().to_lowercase()));
        }
    }
    let mut files = Vec::new();
    if !file.starts_with(&folder) || !rust_files(&folder, &folder, &mut files) {
        return false;
    }
    files.iter().all(|path| {
        let Some((text, clean)) = source::read(path.clone()) else {
            return false;
        };
        let Some(tokens) = tokens(&clean) else {
            return false;
        };
        file_includes_nothing(&tokens, &text, &stems, used)
    })
}

/// One file of the crate holds nothing that could include the writer's
/// file (whose names are `stems`) or give a name it uses (`used`) another
/// meaning in every module.
fn file_includes_nothing(
    tokens: &[Token],
    text: &str,
    stems: &[String],
    used: &HashSet<Rc<str>>,
) -> bool {
    let word = |t: &Token| t.word(text);
    let punct = |at: usize, b: u8| tokens.get(at).is_some_and(|t| t.kind == Kind::Punct(b));
    // A path to the file (`"shop/writer.rs"`), anywhere.
    let paths: Vec<String> = stems.iter().map(|stem| format!("{stem}.rs")).collect();
    let names_path = |t: &Token| {
        t.kind == Kind::Literal && {
            let literal = t.text(text).to_lowercase();
            paths.iter().any(|path| literal.contains(path.as_str()))
        }
    };
    // The file's name alone (`shop`, `"shop"`): what a macro that includes
    // under another name takes (`include_proto!("shop")`).
    let names_file = |t: &Token| {
        let named = |part: &str| stems.iter().any(|stem| part.eq_ignore_ascii_case(stem));
        match t.kind {
            // `"shop"`, `"./shop"`: the stem as a part of a path.
            Kind::Literal => text[t.start + 1..t.end - 1]
                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .any(named),
            Kind::Word => named(t.text(text)),
            Kind::Punct(_) => false,
        }
    };
    (0..tokens.len()).all(|i| {
        let token = &tokens[i];
        // `include!` and `#[macro_use]` (macros for every module after
        // it).
        if matches!(word(token), Some("include" | "macro_use")) || names_path(token) {
            return false;
        }
        let call = word(token).is_some()
            && punct(i + 1, b'!')
            && matches!(
                tokens.get(i + 2).map(|t| t.kind),
                Some(Kind::Punct(b'(' | b'[' | b'{'))
            );
        if call && in_module(tokens, text, i) && inside(tokens, i + 2).iter().any(names_file) {
            return false;
        }
        if let Some((path, end)) = attribute_at(tokens, text, i) {
            let name = path.as_str();
            let attribute = &tokens[i..end];
            if attribute.iter().any(|t| word(t) == Some("path")) {
                return false;
            }
            if !top_attribute(name) && attribute.iter().any(names_file) {
                return false;
            }
            // A nightly feature (`macro_attr`, `macro_derive`) may let a
            // `macro_rules!` be an attribute or a derive; the docs' are
            // harmless.
            if punct(i + 1, b'!') {
                let mut words = attribute.iter().filter_map(word);
                if words.any(|w| w == "feature")
                    && !words.all(|w| matches!(w, "doc_cfg" | "doc_auto_cfg"))
                {
                    return false;
                }
            }
        }
        // `macro_rules! thread_local` before `mod shop;` is the one `shop`
        // calls.
        if word(token) == Some("macro_rules")
            && punct(i + 1, b'!')
            && tokens
                .get(i + 2)
                .and_then(word)
                .is_some_and(|name| MACROS.contains(&name))
        {
            return false;
        }
        // `extern crate evil as serde;`: every module's `serde` then.
        if word(token) == Some("extern") && tokens.get(i + 1).and_then(word) == Some("crate") {
            let mut statement = tokens[i..]
                .iter()
                .take_while(|t| t.kind != Kind::Punct(b';'))
                .filter_map(word);
            if statement.any(|w| w == "as")
                && statement
                    .next()
                    .is_some_and(|alias| ROOTS.contains(&alias) || used.contains(alias))
            {
                return false;
            }
        }
        true
    })
}

/// The token at `i` is at the top of a module: of its file, or of a
/// `mod name { .. }`.
fn in_module(tokens: &[Token], text: &str, i: usize) -> bool {
    let depth = tokens[i].depth;
    if depth == 0 {
        return true;
    }
    let Some(open) = tokens[..i].iter().rposition(|t| t.depth < depth) else {
        return false;
    };
    if tokens[open].kind != Kind::Punct(b'{') {
        return false;
    }
    let mut at = item_start(tokens, open);
    while let Some((_, end)) = attribute_at(tokens, text, at) {
        at = end;
    }
    tokens[at..open]
        .iter()
        .filter(|t| t.kind == Kind::Word)
        .map(|t| t.text(text))
        .find(|&w| !matches!(w, "pub" | "crate" | "in" | "self" | "super"))
        == Some("mod")
}

/// The `.rs` files under `dir` (not in a hidden folder, nor in the
/// package's `target/` beside its `Cargo.toml`); false when there are too
/// many to read for one error, or a link.
fn rust_files(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    let package = dir == root && dir.join("Cargo.toml").is_file();
    for entry in entries {
        let Ok(entry) = entry else {
            return false;
        };
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let Ok(kind) = entry.file_type() else {
            return false;
        };
        // Not a module's name: reached only through a `path` attribute or
        // `include!`, which are doubt where they are written.
        let skipped = name.starts_with('.') || (package && name == "target");
        if skipped {
            continue;
        }
        if kind.is_dir() {
            if !rust_files(root, &path, out) {
                return false;
            }
        } else if kind.is_symlink() {
            // A linked folder may hold modules this walk would not see, a
            // linked file is a module under another name.
            return false;
        } else if is_rust_file(&path) {
            out.push(path);
        }
        if out.len() > 2_000 {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::file_proves;

    /// `file_proves` with the writer `write` on the line that declares it.
    fn proves(text: &str, target: &str) -> bool {
        let line = text
            .lines()
            .position(|line| line.contains("fn write"))
            .expect("a writer")
            + 1;
        let clean = crate::source::clean(text).expect("clean text");
        file_proves(text, &clean, line, "write", target)
    }

    const WRITER: &str =
        "#[invalidate(stock(id))]\nasync fn write(id: u64) -> Result<(), ()> { Ok(()) }\n";

    fn with_writer(before: &str) -> String {
        format!("{before}\n{WRITER}")
    }

    #[test]
    fn a_plain_function_beside_the_writer_is_surely_not_cached() {
        let plain = "use herdcache::{cached, invalidate};\n#[cached(ttl = \"1m\")]\nasync fn get_user(id: u64) -> u64 { id }\n/// Docs.\n#[allow(dead_code)]\npub(crate) async fn stock(id: u64) -> u64 { id }";
        assert!(proves(&with_writer(plain), "stock"));
        // A method writer in an impl at the top sees the module too.
        let method = "async fn stock(id: u64) -> u64 { id }\nimpl Shop {\n    #[invalidate(stock(id))]\n    async fn write(&self, id: u64) -> Result<(), ()> { Ok(()) }\n}";
        assert!(proves(method, "stock"));
    }

    #[test]
    fn a_cached_or_unknown_target_is_not() {
        for target in [
            "#[cached(ttl = \"1m\")]\nasync fn stock(id: u64) -> u64 { id }",
            "#[herdcache::cached]\nasync fn stock(id: u64) -> u64 { id }",
            "#[cfg(test)]\nasync fn stock(id: u64) -> u64 { id }",
            "#[make_helpers]\nasync fn stock(id: u64) -> u64 { id }",
            // Nothing by that name (a typo): rustc's guess is then right.
            "async fn stok(id: u64) -> u64 { id }",
            // Two functions of that name, or one in a module or impl.
            "async fn stock() {}\nmod m { async fn stock() {} }",
            "mod m { async fn stock() {} }",
            "impl A { async fn stock() {} }",
        ] {
            assert!(!proves(&with_writer(target), "stock"), "{target}");
        }
    }

    #[test]
    fn anything_that_could_bring_the_helper_is_doubt() {
        let plain = "async fn stock(id: u64) -> u64 { id }\n";
        for before in [
            "use inventory::*;",
            "use inventory::{price, *};",
            "use inventory::stock_invalidate as other;",
            "fn stock_invalidate() {}",
            "extern \"C\" { fn stock_invalidate(); }",
            "helpers!(stock);",
            "helpers! { stock }",
            "std::include!(\"more.rs\");",
            "macro_rules! m { () => {} }\nm!();",
            "#[derive(Debug, evil::Helpers)]\nstruct A;",
            "use evil::Serialize;\n#[derive(Serialize)]\nstruct A;",
            "use anyhow::Error;\n#[derive(Debug, Error)]\nstruct A;",
            "#[macro_use]\nextern crate evil;",
            "use evil as fmt;\n#[derive(fmt::Debug)]\nstruct A;",
            "mod hash { pub use evil::Debug as Hash; }\n#[derive(hash::Hash)]\nstruct A;",
            "use {std::fmt::Display, evil::Debug};\n#[derive(Debug)]\nstruct A;",
            "use evil::mk as macro_rules;\nmacro_rules! { stock }",
            "macro_rules!(stock);",
            "use herdcache::{cached as r#test, invalidate};\n#[test]\nfn other() {}",
            "extern crate evil as r#serde;\n#[derive(serde::Serialize)]\nstruct A;",
            "thread_local! { #[evil::gen] static X: u8 = 0; }",
            "lazy_static::lazy_static! { #[derive(evil::Debug)] static ref X: u8 = 0; }",
            "extern \"C\" { make_helpers!(); }",
            "unsafe extern { make_helpers!(); }",
            "extern crate evil as serde;\n#[derive(serde::Serialize)]\nstruct A;",
            "#[make_helpers]\nfn other() {}",
            "#[cfg_attr(test, make_helpers)]\nfn other() {}",
            "use helpers::make as cached;\n#[cached]\nfn other() {}",
            "use my_macros::cached;\n#[cached]\nfn other() {}",
            "use my_macros::Helpers as Debug;\n#[derive(Debug)]\nstruct A;",
            "use my_macros::Debug;\n#[derive(Debug)]\nstruct A;",
            "extern crate my_macros as herdcache;\n#[herdcache::cached]\nasync fn other() {}",
            "fn r#stock_invalidate() {}",
            "r#macro_rules!(stock);",
            "macro_rules! thread_local { ($($t:tt)*) => {} }\nthread_local!(static N: u8 = 1);",
            "use herdcache::{cached as test, invalidate};\n#[test]\nfn other() {}",
            "use evil::derive;\n#[derive(Debug)]\nstruct A;",
            "mod herdcache { pub use evil::gen as cached; }\n#[herdcache::cached]\nasync fn other() {}",
            "macro_rules! a { (cr#\" \") => {} }\nuse crate::cache::*;\nmacro_rules! b { (\" \"#) => {} }",
        ] {
            assert!(
                !proves(&with_writer(&format!("{before}\n{plain}")), "stock"),
                "{before}"
            );
        }
        // Known attributes, std derives and macros used inside bodies are fine.
        let fine = "use std::fmt::Debug;\n#[derive(Debug, Clone, PartialEq, std::hash::Hash, serde::Serialize)]\nstruct A;\n#[herdcache::cached]\nasync fn other() -> u8 { println!(\"x\"); 1 }\nmacro_rules! m { () => {} }";
        assert!(proves(&with_writer(&format!("{fine}\n{plain}")), "stock"));
        // What an application's file holds: serde's derives, an error type,
        // a test module, imports that no attribute uses.
        let app = "struct Dto { r#type: u8 }\nthread_local!(static N: u8 = 1);\ntokio::task_local! { static T: u8; }\nuse anyhow::Context;\nuse serde::{Deserialize, Serialize};\nuse std::io::Error;\n#[derive(Clone, Serialize, Deserialize)]\n#[serde(rename_all = \"camelCase\")]\nstruct Item { #[serde(default)] sku: u64 }\n#[derive(Debug, thiserror::Error)]\n#[error(\"gone\")]\nstruct Gone;\n#[cfg(test)]\nmod tests {\n    use super::*;\n    #[test]\n    fn t() {}\n}";
        assert!(proves(&with_writer(&format!("{app}\n{plain}")), "stock"));
    }

    #[test]
    fn the_writer_is_the_one_with_the_invalidate_naming_the_target() {
        let plain = "async fn stock(id: u64) -> u64 { id }\n";
        // A method after another one in its impl.
        let method = format!("{plain}impl Shop {{\n    async fn other(&self) {{}}\n    #[herdcache::invalidate(stock(id))]\n    async fn write(&self, id: u64) -> Result<(), ()> {{ Ok(()) }}\n}}");
        assert!(proves(&method, "stock"));
        // Another attribute on a method writer may change its body.
        let rewritten = method.replace(
            "    #[herdcache::invalidate",
            "    #[evil::glob_body]\n    #[herdcache::invalidate",
        );
        assert!(!proves(&rewritten, "stock"));
        // An attribute on the method imported under a known name.
        let renamed = format!(
            "use evil::glob_body as test;\n{}",
            rewritten.replace("evil::glob_body", "test")
        );
        assert!(!proves(&renamed, "stock"));
        // Inside a const generic's block in an impl's header.
        let generic = format!("{plain}impl Foo<{{ use crate::cache::*;\n    #[herdcache::invalidate(stock(id))]\n    async fn write(id: u64) -> Result<(), ()> {{ Ok(()) }}\n    1 }}> {{}}");
        assert!(!proves(&generic, "stock"));
        let compared = generic.replace("impl Foo<{", "impl Tr<[(); (1 > 0) as usize]> for Foo<{");
        assert!(!proves(&compared, "stock"));
        // A function of that name without the attribute (the writer is
        // made elsewhere, by a macro): doubt.
        let decoy = format!("{plain}\npub fn write() {{}}");
        assert!(!proves(&decoy, "stock"));
        // Inside a function whose header holds `; impl` in an attribute.
        let nested = format!("{plain}#[doc = stringify!(; impl x)]\nasync fn outer() {{ use crate::cache::*;\n{WRITER}}}");
        assert!(!proves(&nested, "stock"));
    }

    #[test]
    fn a_target_that_is_not_async_is_said_so() {
        for (target, is_async) in [("fn stock", false), ("pub async fn stock", true)] {
            let text = format!("{target}(id: u64) -> u64 {{ id }}\n{WRITER}");
            let clean = crate::source::clean(&text).unwrap();
            let facts = super::Facts::new(text.as_str().into(), &clean).unwrap();
            let proof = facts.prove(("write", 3), ("stock", 2));
            let in_impl = false;
            assert_eq!(proof, Some(super::Proof { is_async, in_impl }), "{target}");
        }
    }

    #[test]
    fn a_file_that_another_may_include_is_doubt() {
        let dir = std::env::temp_dir().join(format!("herdcache-not-cached-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("shop")).unwrap();
        let dir = std::fs::canonicalize(dir).unwrap();
        let root = dir.join("main.rs");
        let writer = dir.join("shop").join("stock_writer.rs");
        std::fs::write(&writer, WRITER).unwrap();
        let used = std::collections::HashSet::new();
        let includes_nothing =
            |root: &std::path::Path| super::includes_nothing(&writer, root, &used);
        assert!(includes_nothing(&root));
        // Files that name the writer's stem, but not as something to include.
        let fine = "#![cfg_attr(docsrs, feature(doc_cfg))]\n#[derive(serde::Serialize)]\n#[serde(rename = \"stock_writer\")]\nstruct A;\nfn f() { tracing::info!(stock_writer = 1); let _ = \"/stock_writer/:id\"; }";
        std::fs::write(dir.join("shop").join("fine.rs"), fine).unwrap();
        assert!(includes_nothing(&root));
        for (name, other) in [
            ("a.rs", "mod shop { include!(\"shop/other.rs\"); }"),
            (
                "b.rs",
                "mod shop { evil::grab!(\"shop/stock_writer.rs\"); }",
            ),
            (
                "c.rs",
                "mod shop { tonic::include_proto!(\"stock_writer\"); }",
            ),
            ("d.rs", "#[path = \"shop/x.in\"]\nmod x;"),
            ("e.rs", "#[cfg_attr(test, path = \"shop/x.in\")]\nmod x;"),
            ("f.rs", "mod shop { evil::grab_mod!(Stock_Writer); }"),
            ("f2.rs", "mod shop { inc::grab!(\"./stock_writer\"); }"),
            ("f3.rs", "extern crate evil as r#serde;"),
            ("g.rs", "#[macro_use]\nextern crate evil;"),
            (
                "g2.rs",
                "macro_rules! thread_local { ($($t:tt)*) => {} }\nmod shop;",
            ),
            ("h.rs", "#[evil::embed(stock_writer)]\nmod m {}"),
            ("i.rs", "extern crate evil as serde;"),
            ("j.rs", "#![feature(macro_attr)]"),
            ("l.RS", "include!(\"shop/stock_writer.rs\");"),
        ] {
            let path = dir.join("shop").join(name);
            std::fs::write(&path, other).unwrap();
            assert!(!includes_nothing(&root), "{other}");
            std::fs::remove_file(path).unwrap();
        }
        // A linked folder.
        #[cfg(unix)]
        {
            let link = dir.join("shop").join("linked");
            std::os::unix::fs::symlink(std::env::temp_dir(), link).unwrap();
            assert!(!includes_nothing(&root));
            std::fs::remove_file(dir.join("shop").join("linked")).unwrap();
        }
        // A writer outside the root's folder.
        let elsewhere = std::env::temp_dir()
            .join("herdcache-no-such-crate")
            .join("main.rs");
        assert!(!includes_nothing(&elsewhere));
        // The root file itself: no module includes it, its name is free.
        let c = dir.join("shop").join("c.rs");
        std::fs::write(&c, "mod shop { tonic::include_proto!(\"stock_writer\"); }").unwrap();
        assert!(!includes_nothing(&root));
        assert!(super::includes_nothing(&writer, &writer, &used));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn text_the_reader_may_misread_is_doubt() {
        let plain = "async fn stock(id: u64) -> u64 { id }\n";
        for before in [
            "\u{feff}use inventory::*;",
            "\u{200e}use inventory::*;",
            "\x0buse inventory::*;",
            "#!/usr/bin/env run-cargo-script \"quoted\"\n",
        ] {
            let text = format!("{before}\n{plain}{WRITER}");
            assert!(!proves(&text, "stock"), "{before:?}");
        }
        // Non-ASCII inside comments and literals is fine.
        let text = format!("// Prix: 3 €\nconst S: &str = \"é\";\n{plain}{WRITER}");
        assert!(proves(&text, "stock"));
        // The writer inside a macro call or a nested module: doubt.
        let wrapped = format!("{plain}scoped!(\n{WRITER});");
        assert!(!proves(&wrapped, "stock"));
        let nested = format!("{plain}mod m {{\n{WRITER}}}");
        assert!(!proves(&nested, "stock"));
    }
}
