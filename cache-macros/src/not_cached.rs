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
//! - the writer is a free function or a method at the top of its file;
//! - the file holds exactly one `fn stock`, at its top, with no attribute
//!   but inert built-in ones;
//! - nothing in the file can put `stock_invalidate` in scope another way:
//!   the word itself, a glob import, a macro call at the top, an attribute
//!   that may add items, a renamed attribute, a raw identifier, a shebang,
//!   or a non-ASCII or control character outside comments and literals;
//! - no file in the crate's folder names `include` or a `path` attribute
//!   (which could make the writer's file part of another module).
//!
//! Any doubt answers no, and rustc's own error stands. A typo (`stok`
//! beside a cached `stock`) is rustc's too: its guess is then right.

use std::path::{Path, PathBuf};

use crate::source;

/// True when the writer's file proves that `target`, named in the
/// `#[invalidate]` on the function `writer`, is a function that is not
/// `#[cached]` and that no `<target>_invalidate` is in scope.
pub(crate) fn surely_not_cached(target: &syn::Ident, writer: &syn::Ident) -> bool {
    let (target_span, writer_span) = (target.span().unwrap(), writer.span().unwrap());
    let (Some(file), Some(target_file)) = (writer_span.local_file(), target_span.local_file())
    else {
        return false;
    };
    if file != target_file {
        return false;
    }
    let Some((text, clean)) = source::read(file.clone()) else {
        return false;
    };
    file_proves(
        &text,
        &clean,
        writer_span.line(),
        &writer.to_string(),
        &target.to_string(),
    ) && crate_folder_includes_nothing(&file)
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
    "derive",
];

/// Attributes whose expansion is known to add no `<name>_invalidate` but
/// their own function's (`#[cached]` on a function other than the target).
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
];

/// Derives of the standard library.
const STD_DERIVES: &[&str] = &[
    "Debug",
    "Clone",
    "Copy",
    "PartialEq",
    "Eq",
    "PartialOrd",
    "Ord",
    "Hash",
    "Default",
];

/// Names whose import or rename could make a known attribute another
/// crate's (derives: see [`STD_DERIVES`], trusted from `std` or `core`).
const RENAMEABLE: &[&str] = &[
    "cached",
    "invalidate",
    "idempotent",
    "cached_impl",
    "herdcache",
    "tokio",
    "main",
    "test",
    "async_trait",
];

/// [`surely_not_cached`] on one file's text, the writer's name on line
/// `writer_line` (1-based).
fn file_proves(text: &str, clean: &[u8], writer_line: usize, writer: &str, target: &str) -> bool {
    file_proves_inner(text, clean, writer_line, writer, target).is_some()
}

fn file_proves_inner(
    text: &str,
    clean: &[u8],
    writer_line: usize,
    writer: &str,
    target: &str,
) -> Option<()> {
    // A shebang line is not code the cleaner understands.
    if text.starts_with("#!") && !text[2..].trim_start().starts_with('[') {
        return None;
    }
    // Outside comments and literals, only ASCII other than control
    // characters: a byte-order mark or an invisible space could hide a
    // token from this reader, but not from rustc.
    let strange = text.bytes().zip(clean).any(|(original, &cleaned)| {
        (cleaned == b'_' && !original.is_ascii())
            || (cleaned.is_ascii_control() && !matches!(cleaned, b'\n' | b'\r' | b'\t'))
    });
    if strange {
        return None;
    }
    let tokens = tokens(clean)?;
    let word = |t: &Token| (t.kind == Kind::Word).then(|| &text[t.start..t.end]);
    let helper = format!("{target}_invalidate");
    if tokens.iter().any(|t| word(t) == Some(helper.as_str())) {
        return None;
    }
    let line_of = |at: usize| clean[..at].iter().filter(|&&b| b == b'\n').count() + 1;
    let fn_named = |name: &str| -> Vec<usize> {
        (0..tokens.len().saturating_sub(1))
            .filter(|&at| word(&tokens[at]) == Some("fn") && word(&tokens[at + 1]) == Some(name))
            .collect()
    };
    // The writer (its name on its line): at the top, or a method of an
    // impl at the top.
    let writers = fn_named(writer);
    let mut writers = writers
        .iter()
        .filter(|&&at| line_of(tokens[at + 1].start) == writer_line);
    let &at = writers.next()?;
    if writers.next().is_some() {
        return None;
    }
    match tokens[at].depth {
        0 => {}
        1 => {
            let headers = source::open_headers(clean, tokens[at].start)?;
            let [header] = headers.as_slice() else {
                return None;
            };
            if !source::starts_with_word(source::item_keywords(header)?, b"impl") {
                return None;
            }
        }
        _ => return None,
    }
    // The target: one plain function at the top.
    let [at] = fn_named(target)[..] else {
        return None;
    };
    if tokens[at].depth != 0 {
        return None;
    }
    plain_item(&tokens, text, at)?;
    everything_at_the_top_known(&tokens, text)
}

/// The tokens before the `fn` at `at`, back to the item before it, are
/// only inert attributes and qualifiers (`pub(crate) const async unsafe
/// extern "C"`).
fn plain_item(tokens: &[Token], text: &str, at: usize) -> Option<()> {
    let start = tokens[..at]
        .iter()
        .rposition(|t| t.depth == 0 && matches!(t.kind, Kind::Punct(b';' | b'}')))
        .map_or(0, |end| end + 1);
    let mut i = start;
    while i < at {
        if let Some((path, end)) = attribute_at(tokens, text, i) {
            if !INERT.contains(&path.as_str()) || path == "derive" {
                return None;
            }
            i = end;
            continue;
        }
        let token = &tokens[i];
        let fine = match token.kind {
            Kind::Word => matches!(
                &text[token.start..token.end],
                "pub" | "crate" | "self" | "super" | "in" | "const" | "async" | "unsafe" | "extern"
            ),
            Kind::Literal => true,
            Kind::Punct(b) => matches!(b, b'(' | b')' | b':'),
        };
        if !fine {
            return None;
        }
        i += 1;
    }
    Some(())
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
            Kind::Word => path.push_str(&text[t.start..t.end]),
            Kind::Punct(b':') => path.push(':'),
            _ => break,
        }
    }
    Some((path, close + 1))
}

/// Nothing at the top of the file can bring `<target>_invalidate` into
/// scope unseen: every attribute is inert or known (derives the standard
/// library's), no macro is called, no import is a glob, and no known
/// attribute's name comes from elsewhere.
fn everything_at_the_top_known(tokens: &[Token], text: &str) -> Option<()> {
    let word = |t: &Token| (t.kind == Kind::Word).then(|| &text[t.start..t.end]);
    let punct = |at: usize, b: u8| tokens.get(at).is_some_and(|t| t.kind == Kind::Punct(b));
    let mut i = 0;
    while i < tokens.len() {
        let token = &tokens[i];
        // A raw identifier (`r#stock`) reads as another word here.
        if word(token) == Some("r") && punct(i + 1, b'#') && tokens[i + 1].start == token.end {
            return None;
        }
        if token.depth != 0 {
            i += 1;
            continue;
        }
        if let Some((path, end)) = attribute_at(tokens, text, i) {
            let known = INERT.contains(&path.as_str()) || KNOWN.contains(&path.as_str());
            if !known {
                return None;
            }
            if path == "derive" {
                let derived = tokens[i..end].iter().filter_map(word).skip(1);
                let std_paths = [
                    "std", "core", "fmt", "hash", "cmp", "clone", "marker", "default",
                ];
                if !derived
                    .clone()
                    .all(|name| STD_DERIVES.contains(&name) || std_paths.contains(&name))
                {
                    return None;
                }
            }
            i = end;
            continue;
        }
        match word(token) {
            // A macro called at the top may add any item; a definition
            // (`macro_rules! name`) adds none.
            Some(name) if punct(i + 1, b'!') && name != "macro_rules" => {
                let next = tokens.get(i + 2)?;
                if matches!(next.kind, Kind::Word | Kind::Punct(b'(' | b'[' | b'{')) {
                    return None;
                }
            }
            Some("use") => {
                let end = i + tokens[i..]
                    .iter()
                    .position(|t| t.depth == 0 && t.kind == Kind::Punct(b';'))?;
                let names: Vec<&str> = tokens[i + 1..end].iter().filter_map(word).collect();
                let glob = tokens[i..end].iter().any(|t| t.kind == Kind::Punct(b'*'));
                let from = names.first().copied().unwrap_or_default();
                let foreign = names.iter().any(|name| {
                    (RENAMEABLE.contains(name)
                        && !matches!(from, "herdcache" | "tokio" | "async_trait"))
                        || (STD_DERIVES.contains(name) && !matches!(from, "std" | "core"))
                });
                if glob || foreign {
                    return None;
                }
            }
            Some("as")
                if tokens.get(i + 1).and_then(word).is_some_and(|alias| {
                    RENAMEABLE.contains(&alias) || STD_DERIVES.contains(&alias)
                }) =>
            {
                return None;
            }
            _ => {}
        }
        i += 1;
    }
    Some(())
}

/// No Rust file in the crate's folder (or, for a file outside it, the
/// file's own folder) names `include` or carries a `path` attribute: then
/// the writer's file is its module's whole source, as rustc reads it.
fn crate_folder_includes_nothing(file: &Path) -> bool {
    let folder = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .filter(|dir| file.starts_with(dir))
        .or_else(|| file.parent().map(Path::to_path_buf));
    let Some(folder) = folder else {
        return false;
    };
    let mut files = Vec::new();
    if !rust_files(&folder, &folder, &mut files) {
        return false;
    }
    files.iter().all(|path| {
        let Some((text, clean)) = source::read(path.clone()) else {
            return false;
        };
        let Some(tokens) = tokens(&clean) else {
            return false;
        };
        let word = |t: &Token| (t.kind == Kind::Word).then(|| &text[t.start..t.end]);
        if tokens.iter().any(|t| word(t) == Some("include")) {
            return false;
        }
        (0..tokens.len()).all(|i| match attribute_at(&tokens, &text, i) {
            Some((_, end)) => !tokens[i..end].iter().any(|t| word(t) == Some("path")),
            None => true,
        })
    })
}

/// The `.rs` files under `dir` (not in the crate's `target/` or a hidden
/// folder); false when there are too many to read for one error.
fn rust_files(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
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
        if kind.is_dir() {
            let skipped = name.starts_with('.') || (dir == root && name == "target");
            if !skipped && !rust_files(root, &path, out) {
                return false;
            }
        } else if name.ends_with(".rs") {
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
        assert!(!proves(
            &with_writer("#[cached(ttl = \"1m\")]\nasync fn stock(id: u64) -> u64 { id }"),
            "stock"
        ));
        assert!(!proves(
            &with_writer("#[herdcache::cached]\nasync fn stock(id: u64) -> u64 { id }"),
            "stock"
        ));
        assert!(!proves(
            &with_writer("#[cfg(test)]\nasync fn stock(id: u64) -> u64 { id }"),
            "stock"
        ));
        assert!(!proves(
            &with_writer("#[make_helpers]\nasync fn stock(id: u64) -> u64 { id }"),
            "stock"
        ));
        // Nothing by that name (a typo): rustc's guess is then right.
        assert!(!proves(
            &with_writer("async fn stok(id: u64) -> u64 { id }"),
            "stock"
        ));
        // Two functions of that name, or one in a module or impl.
        assert!(!proves(
            &with_writer("async fn stock() {}\nmod m { async fn stock() {} }"),
            "stock"
        ));
        assert!(!proves(
            &with_writer("mod m { async fn stock() {} }"),
            "stock"
        ));
        assert!(!proves(
            &with_writer("impl A { async fn stock() {} }"),
            "stock"
        ));
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
            "#[derive(Debug, serde::Serialize)]\nstruct A;",
            "#[make_helpers]\nfn other() {}",
            "#[cfg_attr(test, make_helpers)]\nfn other() {}",
            "use helpers::make as cached;\n#[cached]\nfn other() {}",
            "use my_macros::cached;\n#[cached]\nfn other() {}",
            "use my_macros::Helpers as Debug;\n#[derive(Debug)]\nstruct A;",
            "use my_macros::Debug;\n#[derive(Debug)]\nstruct A;",
            "extern crate my_macros as herdcache;",
            "fn r#stock_invalidate() {}",
            "const X: u8 = r#u8::MAX;",
        ] {
            assert!(
                !proves(&with_writer(&format!("{before}\n{plain}")), "stock"),
                "{before}"
            );
        }
        // Known attributes, std derives and macros used inside bodies are fine.
        let fine = "use std::fmt::Debug;\n#[derive(Debug, Clone, PartialEq)]\nstruct A;\n#[herdcache::cached]\nasync fn other() -> u8 { println!(\"x\"); 1 }\nmacro_rules! m { () => {} }";
        assert!(proves(&with_writer(&format!("{fine}\n{plain}")), "stock"));
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
