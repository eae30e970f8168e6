//! Whether a `#[cached]` method sits in a trait impl, read from its source.
//!
//! A method attribute sees the method only, not the impl around it. In an
//! inherent impl its helpers (`<fn>_invalidate`, …) go beside it; in a trait
//! impl they cannot (rustc says "not a member of trait" once per helper),
//! and `#[herdcache::cached_impl]` on the impl is the fix. To say so in one
//! error, the macro reads the file the method is written in (the span's
//! `local_file` and `line`, stable since Rust 1.88) and finds the block that
//! encloses the method's name: an `impl … for …` header is a trait impl.
//!
//! Only a sure answer counts: no file (rust-analyzer, generated code), a
//! line that does not hold `fn <name>`, or any header this reader does not
//! understand all give `None`, and the macro then expands as it always did.

use std::collections::HashMap;
use std::path::PathBuf;

/// The trait of the impl that encloses the method named `name` whose name
/// token has `span`, if the source says surely that it is a trait impl
/// (and not one `#[async_trait]` or `#[cached_impl]` rewrites: those are
/// handled where they are seen).
pub(crate) fn enclosing_trait(span: proc_macro2::Span, name: &str) -> Option<String> {
    let span = span.unwrap();
    let file = span.local_file()?;
    let line = span.line();
    let (text, clean) = read(file)?;
    let path = trait_of_impl_around_clean(&clean, line, name)?;
    text.get(path).map(str::to_owned)
}

/// Where a `#[cached]` function sits, as its source says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Place {
    /// In an `impl` block: its siblings are `Self::<name>`.
    Impl,
    /// In a module or a block: its siblings are in scope by name.
    Outside,
}

/// Where the function named `name` whose name token has `span` sits, if
/// the source says surely: `None` without a file, with a line that does not
/// hold `fn <name>` once, inside a macro's body or a `trait`, or with any
/// header this reader does not understand.
pub(crate) fn enclosing_place(span: proc_macro2::Span, name: &str) -> Option<Place> {
    let span = span.unwrap();
    let file = span.local_file()?;
    let line = span.line();
    let (_, clean) = read(file)?;
    place_around_clean(&clean, line, name)
}

/// [`enclosing_place`] on `text`, the function's name on line `line`.
#[cfg(test)]
pub(crate) fn place_around(text: &str, line: usize, name: &str) -> Option<Place> {
    place_around_clean(&clean(text)?, line, name)
}

fn place_around_clean(clean: &[u8], line: usize, name: &str) -> Option<Place> {
    let at = fn_start(clean, line, name)?;
    let headers = headers_around(clean, at)?;
    // Inside parentheses or brackets (a macro called with `(..)` or `[..]`,
    // whose expansion may wrap the function in an impl): no answer.
    let open = |opening: u8, closing: u8| {
        let before = &clean[..at];
        let opened = before.iter().filter(|&&b| b == opening).count();
        opened > before.iter().filter(|&&b| b == closing).count()
    };
    if open(b'(', b')') || open(b'[', b']') {
        return None;
    }
    let Some(header) = headers.last() else {
        return Some(Place::Outside);
    };
    // A header is read only when it is whole: one cut by a `;` or a brace
    // inside brackets (`impl W<[u8; 4]>`, `impl F<{ N }>`) reads as
    // neither, and gives no answer.
    let rest = item_keywords(header)?;
    if starts_with_word(rest, b"impl") {
        Some(Place::Impl)
    } else if is_module(rest) || is_function(rest) {
        Some(Place::Outside)
    } else {
        None
    }
}

/// Where the one `fn <name>` on `line` starts, in bytes of `clean`.
fn fn_start(clean: &[u8], line: usize, name: &str) -> Option<usize> {
    let line_start = clean
        .split_inclusive(|&b| b == b'\n')
        .take(line.checked_sub(1)?)
        .map(<[u8]>::len)
        .sum::<usize>();
    let line_text = clean.get(line_start..)?.split(|&b| b == b'\n').next()?;
    Some(line_start + find_fn_named(line_text, &ascii(name))?)
}

/// `text` without a leading visibility (`pub`, `pub(crate)`, `pub(in ..)`).
fn past_visibility(text: &[u8]) -> &[u8] {
    let Some(rest) = text.strip_prefix(b"pub") else {
        return text;
    };
    let rest = trim(rest);
    match rest.strip_prefix(b"(") {
        Some(inside) => match inside.iter().position(|&b| b == b')') {
            Some(close) => trim(&inside[close + 1..]),
            None => text,
        },
        None => rest,
    }
}

/// A module's header: `mod name`.
fn is_module(header: &[u8]) -> bool {
    let rest = past_visibility(header);
    starts_with_word(rest, b"mod")
        && rest[3..]
            .iter()
            .all(|&b| is_word(b) || b.is_ascii_whitespace())
}

/// A function's header, up to its body: `fn`, after qualifiers, with a
/// parameter list that closes and nothing that could be an expression.
fn is_function(header: &[u8]) -> bool {
    let mut rest = past_visibility(header);
    for qualifier in [&b"const"[..], b"async", b"unsafe"] {
        if starts_with_word(rest, qualifier) {
            rest = trim(&rest[qualifier.len()..]);
        }
    }
    if let Some(after) = rest.strip_prefix(b"extern") {
        // `extern "C"`: the ABI's literal is blanked, its quotes stay.
        let after = trim(after);
        rest = match after.strip_prefix(b"\"") {
            Some(abi) => match abi.iter().position(|&b| b == b'"') {
                Some(close) => trim(&abi[close + 1..]),
                None => return false,
            },
            None => after,
        };
    }
    let opened = rest.iter().filter(|&&b| b == b'(').count();
    starts_with_word(rest, b"fn")
        && opened > 0
        && opened == rest.iter().filter(|&&b| b == b')').count()
}

/// The headers of the blocks open at byte `at` (a `fn <name>`); `None`
/// when a header is a macro's.
fn headers_around(clean: &[u8], at: usize) -> Option<Vec<&[u8]>> {
    let headers = open_headers(clean, at)?;
    // Inside a macro's body (`macro_rules!`, `dsl! { … }`) the source is
    // not what is compiled: no answer.
    if headers.iter().any(|header| {
        let header = trim(header);
        header.ends_with(b"!") || contains(header, b"macro_rules!")
    }) {
        return None;
    }
    Some(headers)
}

/// A header past its outer attributes and the `unsafe` or `default` before
/// an `impl`; `None` when an attribute's brackets do not balance.
fn item_keywords(header: &[u8]) -> Option<&[u8]> {
    let mut rest = trim(header);
    // Outer attributes: `#[…]`, brackets balanced (literals are blank).
    while let Some(attribute) = rest.strip_prefix(b"#") {
        let attribute = trim(attribute);
        let mut depth = 0usize;
        let mut end = None;
        for (at, &b) in attribute.iter().enumerate() {
            match b {
                b'[' => depth += 1,
                b']' => {
                    depth = depth.checked_sub(1)?;
                    if depth == 0 {
                        end = Some(at + 1);
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = trim(&attribute[end?..]);
    }
    for prefix in [&b"unsafe"[..], b"default"] {
        if let Some(after) = rest.strip_prefix(prefix) {
            if after.first().is_some_and(u8::is_ascii_whitespace) {
                rest = trim(after);
            }
        }
    }
    Some(rest)
}

/// `text` starts with `word`, followed by a space or `<` (or nothing).
fn starts_with_word(text: &[u8], word: &[u8]) -> bool {
    text.strip_prefix(word).is_some_and(|after| {
        after
            .first()
            .is_none_or(|&b| b.is_ascii_whitespace() || b == b'<')
    })
}

/// A file's text and its cleaned copy (see [`clean`]).
type Read = (std::rc::Rc<str>, std::rc::Rc<[u8]>);

/// The file's text and cleaned text, read once per file and modification
/// time in this expansion process.
pub(crate) fn read(file: PathBuf) -> Option<Read> {
    type Files = HashMap<PathBuf, (Option<std::time::SystemTime>, Read)>;
    thread_local! {
        static FILES: std::cell::RefCell<Files> = std::cell::RefCell::new(HashMap::new());
    }
    let modified = std::fs::metadata(&file)
        .and_then(|meta| meta.modified())
        .ok();
    FILES.with(|files| {
        let mut files = files.borrow_mut();
        if let Some((seen, read)) = files.get(&file) {
            if *seen == modified {
                return Some(read.clone());
            }
        }
        let text = std::fs::read_to_string(&file).ok()?;
        let cleaned = clean(&text)?;
        let read: Read = (text.into(), cleaned.into());
        files.insert(file, (modified, read.clone()));
        Some(read)
    })
}

/// [`enclosing_trait`] on `text`, the method's name on line `line`
/// (1-based).
#[cfg(test)]
pub(crate) fn trait_of_impl_around(text: &str, line: usize, name: &str) -> Option<String> {
    let path = trait_of_impl_around_clean(&clean(text)?, line, name)?;
    text.get(path).map(str::to_owned)
}

/// Where the trait's path is, in bytes of the file.
fn trait_of_impl_around_clean(
    clean: &[u8],
    line: usize,
    name: &str,
) -> Option<std::ops::Range<usize>> {
    let headers = headers_around(clean, fn_start(clean, line, name)?)?;
    let header = headers.last()?;
    let path = trait_in_header(header)?;
    // The header is a slice of `clean`: its offset in the file.
    let offset = header.as_ptr() as usize - clean.as_ptr() as usize;
    Some(offset + path.start..offset + path.end)
}

/// `text` as ASCII of the same length, with what cannot hold a brace or an
/// item blanked: comments and the insides of string, raw string and char
/// literals become spaces, and every other non-ASCII byte `_` (part of an
/// identifier), so that byte offsets stay those of the file and any slice
/// is valid. `None` when a comment or literal never ends.
pub(crate) fn clean(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out: Vec<u8> = bytes
        .iter()
        .map(|&b| if b.is_ascii() { b } else { b'_' })
        .collect();
    let blank = |out: &mut Vec<u8>, from: usize, to: usize| {
        for b in &mut out[from..to] {
            if *b != b'\n' {
                *b = b' ';
            }
        }
    };
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                let end = text[i..].find('\n').map_or(text.len(), |end| i + end);
                blank(&mut out, i, end);
                i = end;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let end = skip_block_comment(bytes, i)?;
                blank(&mut out, i, end);
                i = end;
            }
            b'"' => {
                let end = skip_string(bytes, i + 1)?;
                blank(&mut out, i + 1, end - 1);
                i = end;
            }
            b'r' | b'b' | b'c' if starts_raw_string(bytes, i) => {
                let end = skip_raw_string(bytes, i)?;
                blank(&mut out, i, end);
                out[i] = b'"';
                out[end - 1] = b'"';
                i = end;
            }
            b'\'' => {
                let end = skip_char_or_lifetime(text, i);
                if bytes.get(end.wrapping_sub(1)) == Some(&b'\'') && end > i + 1 {
                    // A char literal: its inside blanked.
                    blank(&mut out, i + 1, end - 1);
                }
                i = end;
            }
            _ => i += 1,
        }
    }
    Some(out)
}

/// `name` as it reads in the cleaned text.
fn ascii(name: &str) -> Vec<u8> {
    name.bytes()
        .map(|b| if b.is_ascii() { b } else { b'_' })
        .collect()
}

pub(crate) fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn trim(text: &[u8]) -> &[u8] {
    let start = text
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(text.len());
    let end = text
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |end| end + 1);
    &text[start..end.max(start)]
}

fn contains(text: &[u8], needle: &[u8]) -> bool {
    text.windows(needle.len()).any(|window| window == needle)
}

/// Where the one `fn <name>` on `line` starts, `name` as a whole word;
/// `None` when there is none, or more than one (which is meant is unclear).
fn find_fn_named(line: &[u8], name: &[u8]) -> Option<usize> {
    let mut found = None;
    for start in 0..line.len() {
        if !line[start..].starts_with(b"fn") || (start > 0 && is_word(line[start - 1])) {
            continue;
        }
        let rest = &line[start + 2..];
        let gap = rest.iter().take_while(|b| b.is_ascii_whitespace()).count();
        let after = &rest[gap..];
        if gap > 0
            && after.starts_with(name)
            && !after.get(name.len()).copied().is_some_and(is_word)
        {
            if found.is_some() {
                return None;
            }
            found = Some(start);
        }
    }
    found
}

/// The headers (the text before each `{`, from the end of the item or
/// statement before it) of the blocks open at byte `at` of the cleaned
/// text, outermost first.
fn open_headers(clean: &[u8], at: usize) -> Option<Vec<&[u8]>> {
    let mut open: Vec<(usize, usize)> = Vec::new();
    let mut boundary = 0;
    for (i, &b) in clean.iter().enumerate().take(at) {
        match b {
            b'{' => {
                open.push((boundary, i));
                boundary = i + 1;
            }
            b'}' => {
                open.pop()?;
                boundary = i + 1;
            }
            b';' => boundary = i + 1,
            _ => {}
        }
    }
    Some(
        open.into_iter()
            .map(|(start, brace)| &clean[start..brace])
            .collect(),
    )
}

fn skip_block_comment(bytes: &[u8], mut i: usize) -> Option<usize> {
    let mut depth = 0;
    while i + 1 < bytes.len() {
        match (bytes[i], bytes[i + 1]) {
            (b'/', b'*') => {
                depth += 1;
                i += 2;
            }
            (b'*', b'/') => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => i += 1,
        }
    }
    None
}

/// Past the `"` that closes a string whose body starts at `i`.
fn skip_string(bytes: &[u8], mut i: usize) -> Option<usize> {
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// `r"`, `r#"`, `br"`, `br#"`, `cr"`, `cr#"`, not inside an identifier.
fn starts_raw_string(bytes: &[u8], i: usize) -> bool {
    if i > 0 && is_word(bytes[i - 1]) {
        return false;
    }
    let mut j = i;
    if matches!(bytes[j], b'b' | b'c') {
        j += 1;
        if bytes.get(j) != Some(&b'r') {
            return false;
        }
    }
    j += 1;
    while bytes.get(j) == Some(&b'#') {
        j += 1;
    }
    bytes.get(j) == Some(&b'"')
}

fn skip_raw_string(bytes: &[u8], i: usize) -> Option<usize> {
    let mut j = i + usize::from(matches!(bytes[i], b'b' | b'c')) + 1;
    let hashes = bytes[j..].iter().take_while(|&&b| b == b'#').count();
    j += hashes + 1;
    while j < bytes.len() {
        if bytes[j] == b'"'
            && bytes[j + 1..]
                .iter()
                .take(hashes)
                .filter(|&&b| b == b'#')
                .count()
                == hashes
        {
            return Some(j + 1 + hashes);
        }
        j += 1;
    }
    None
}

/// Past a char literal (`'x'`, `'\n'`, `'\u{1F600}'`), or past the `'` of a
/// lifetime or label.
fn skip_char_or_lifetime(text: &str, i: usize) -> usize {
    let rest = &text[i + 1..];
    let mut chars = rest.char_indices();
    match chars.next() {
        // An escape: the closing quote comes after the escaped character.
        Some((_, '\\')) => rest
            .get(2..)
            .and_then(|tail| tail.find('\''))
            .map_or(text.len(), |end| i + 1 + 2 + end + 1),
        Some(_) => match chars.next() {
            Some((at, '\'')) => i + 1 + at + 1,
            _ => i + 1,
        },
        None => text.len(),
    }
}

/// The trait of an `impl … for …` header (outer attributes and `unsafe`
/// allowed; comments and literals already blanked); `None` for an inherent
/// impl, any other block, or a header naming `async_trait` or `cached_impl`.
fn trait_in_header(header: &[u8]) -> Option<std::ops::Range<usize>> {
    if contains(header, b"async_trait") || contains(header, b"cached_impl") {
        return None;
    }
    let rest = item_keywords(header)?;
    let after_impl = rest.strip_prefix(b"impl")?;
    if !after_impl
        .first()
        .is_some_and(|&b| b.is_ascii_whitespace() || b == b'<')
    {
        return None;
    }
    // The first `for` outside brackets, not a `for<'a>` bound, ends the
    // trait's path; a `where` before it means an inherent impl.
    let mut depth = 0i32;
    let mut start = None;
    for (at, &b) in after_impl.iter().enumerate() {
        match b {
            b'<' | b'(' | b'[' => depth += 1,
            b'>' if at > 0 && after_impl[at - 1] == b'-' => {}
            b'>' | b')' | b']' => depth -= 1,
            _ => {}
        }
        if depth == 0 && start.is_none() && !b.is_ascii_whitespace() && b != b'>' {
            start = Some(at);
        }
        let word_start = at == 0 || !is_word(after_impl[at - 1]);
        if depth == 0 && word_start {
            let tail = &after_impl[at..];
            if tail.starts_with(b"for") && tail.get(3).is_some_and(u8::is_ascii_whitespace) {
                let path = trim(&after_impl[start?..at]);
                if path.is_empty() {
                    return None;
                }
                let from = path.as_ptr() as usize - header.as_ptr() as usize;
                return Some(from..from + path.len());
            }
            if tail.starts_with(b"where") && !tail.get(5).copied().is_some_and(is_word) {
                return None;
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::{place_around, trait_of_impl_around, Place};

    /// The (1-based) line of `text` that declares `fn name`.
    fn line_of(text: &str, name: &str) -> usize {
        text.lines()
            .position(|line| line.contains(&format!("fn {name}")))
            .unwrap()
            + 1
    }

    fn around(text: &str, name: &str) -> Option<String> {
        trait_of_impl_around(text, line_of(text, name), name)
    }

    #[test]
    fn a_method_of_a_trait_impl_names_its_trait() {
        let text = "struct A;\nimpl Store for A {\n    #[cached(ttl = \"1m\")]\n    async fn get(&self) -> u8 { 1 }\n}\n";
        assert_eq!(around(text, "get").as_deref(), Some("Store"));
        let generic = "impl<T: Clone> store::Store<T> for Repo<T> where T: Send {\n  async fn get(&self) {}\n}";
        assert_eq!(around(generic, "get").as_deref(), Some("store::Store<T>"));
        let attributed = "/// Docs.\n#[allow(unused)]\n#[doc = \"x { y\"]\nunsafe impl Store for A {\n async fn get(&self) {}\n}";
        assert_eq!(around(attributed, "get").as_deref(), Some("Store"));
    }

    #[test]
    fn an_inherent_impl_or_a_free_function_is_not() {
        assert_eq!(around("impl A {\n async fn get(&self) {}\n}", "get"), None);
        assert_eq!(
            around(
                "impl<T> A<T> where T: for<'a> Fn(&'a u8) {\n async fn get(&self) {}\n}",
                "get"
            ),
            None
        );
        assert_eq!(around("async fn get() {}", "get"), None);
        assert_eq!(around("mod m {\n async fn get() {}\n}", "get"), None);
        // The innermost block counts: an inherent impl inside a trait impl's
        // method.
        let nested = "impl T for A {\n fn f() {\n  impl B {\n   async fn get(&self) {}\n  }\n }\n}";
        assert_eq!(around(nested, "get"), None);
        // Impls the other attributes rewrite are theirs to report.
        assert_eq!(
            around(
                "#[async_trait]\nimpl T for A {\n async fn get(&self) {}\n}",
                "get"
            ),
            None
        );
        assert_eq!(
            around(
                "#[herdcache::cached_impl]\nimpl T for A {\n async fn get(&self) {}\n}",
                "get"
            ),
            None
        );
    }

    #[test]
    fn braces_in_comments_strings_and_chars_are_not_blocks() {
        let text = "impl T for A {\n // }\n /* } { */ const S: &str = \"}\"; const C: char = '}';\n const R: &str = r#\"}\"#; const Z: &CStr = cr#\"} \" {\"#; fn l<'a>(x: &'a u8) {}\n async fn get(&self) {}\n}";
        assert_eq!(around(text, "get").as_deref(), Some("T"));
    }

    #[test]
    fn comments_literals_and_non_ascii_text_are_not_read_as_code() {
        // Non-ASCII names and comments: no panic, and an inherent impl.
        assert_eq!(
            around(
                "struct Café;\nimpl Café {\n async fn price(&self) {}\n}",
                "price"
            ),
            None
        );
        assert_eq!(
            around(
                "impl A // prix pour A\n{\n async fn get(&self) {}\n}",
                "get"
            ),
            None
        );
        assert_eq!(
            around(
                "impl A // inherent methods for A\n{\n async fn get(&self) {}\n}",
                "get"
            ),
            None
        );
        assert_eq!(
            around(
                "impl A /* cached for speed */ {\n async fn get(&self) {}\n}",
                "get"
            ),
            None
        );
        assert_eq!(
            around(
                "#[doc = \"x ] impl Foo for Bar\"]\nimpl A {\n async fn get(&self) {}\n}",
                "get"
            ),
            None
        );
        let with_chars = "impl T for A {\n const C: char = '{';\n const D: char = '\\'';\n async fn get(&self) {}\n}";
        assert_eq!(around(with_chars, "get").as_deref(), Some("T"));
        let non_ascii_trait = "impl Größe for A {\n async fn get(&self) {}\n}";
        assert_eq!(around(non_ascii_trait, "get").as_deref(), Some("Größe"));
    }

    #[test]
    fn a_macro_body_or_an_unclear_line_is_no_answer() {
        assert_eq!(
            around(
                "dsl! {\n impl Svc for T {\n async fn get(&self) {}\n }\n}",
                "get"
            ),
            None
        );
        assert_eq!(
            around(
                "macro_rules! m { () => {\n impl Svc for T {\n async fn get(&self) {}\n }\n} }",
                "get"
            ),
            None
        );
        // Two `fn get` on one line: which one is meant is unclear.
        let both = "impl Tr for A { fn get(&self) {} } impl A { async fn get(&self) -> u8 { 1 } }";
        assert_eq!(trait_of_impl_around(both, 1, "get"), None);
    }

    #[test]
    fn a_line_without_the_function_is_no_answer() {
        let text = "impl T for A {\n async fn get(&self) {}\n}";
        assert_eq!(trait_of_impl_around(text, 1, "get"), None);
        assert_eq!(trait_of_impl_around(text, 9, "get"), None);
        assert_eq!(trait_of_impl_around(text, 2, "getter"), None);
    }

    fn place(text: &str, name: &str) -> Option<Place> {
        place_around(text, line_of(text, name), name)
    }

    #[test]
    fn a_function_s_place_is_read_from_the_blocks_around_it() {
        let free = "use x;\n#[cached(ttl = \"1m\")]\nasync fn get(id: u64) -> u8 { 1 }\n";
        assert_eq!(place(free, "get"), Some(Place::Outside));
        let in_mod = "mod users {\n  async fn get(id: u64) {}\n}";
        assert_eq!(place(in_mod, "get"), Some(Place::Outside));
        let in_fn = "fn main() {\n  async fn get(id: u64) {}\n}";
        assert_eq!(place(in_fn, "get"), Some(Place::Outside));
        let inherent = "struct A;\n#[allow(x)]\nimpl<T> A<T> {\n  async fn get(id: u64) {}\n}";
        assert_eq!(place(inherent, "get"), Some(Place::Impl));
        let unsafe_trait_impl = "unsafe impl Store for A {\n  async fn get(id: u64) {}\n}";
        assert_eq!(place(unsafe_trait_impl, "get"), Some(Place::Impl));
        // Not sure: no answer, and the macro inlines the body.
        let in_trait = "trait Store {\n  async fn get(id: u64) {}\n}";
        assert_eq!(place(in_trait, "get"), None);
        let in_macro = "macro_rules! m {\n () => { async fn get(id: u64) {} }\n}";
        assert_eq!(place(in_macro, "get"), None);
        let twice = "async fn get() {} async fn get() {}";
        assert_eq!(place(twice, "get"), None);
        // `impls` is not `impl`.
        let named = "fn impls() {\n  async fn get(id: u64) {}\n}";
        assert_eq!(place(named, "get"), Some(Place::Outside));
        let visible = "pub(crate) mod users {\n  async fn get(id: u64) {}\n}";
        assert_eq!(place(visible, "get"), Some(Place::Outside));
        let qualified = "pub async unsafe fn outer() -> u8 {\n  async fn get(id: u64) {}\n}";
        assert_eq!(place(qualified, "get"), Some(Place::Outside));
    }

    #[test]
    fn a_header_cut_short_or_a_macro_s_parentheses_give_no_answer() {
        // A `;` or braces inside the header's brackets cut it: never
        // `Outside` for what is an impl.
        let array = "impl Wrapper<[u8; 4]> {\n  async fn get(id: u64) {}\n}";
        assert_eq!(place(array, "get"), None);
        let constant = "impl Foo<{ N }> {\n  async fn get(id: u64) {}\n}";
        assert_eq!(place(constant, "get"), None);
        let bound = "impl<F> Foo<F> where F: Fn([u8; 32]) {\n  async fn get(id: u64) {}\n}";
        assert_eq!(place(bound, "get"), None);
        let parameter = "fn outer(x: [u8; 4]) {\n  async fn get(id: u64) {}\n}";
        assert_eq!(place(parameter, "get"), None);
        let block = "const _: () = {\n  async fn get(id: u64) {}\n};";
        assert_eq!(place(block, "get"), None);
        let called = "service!(Foo,\n  async fn get(id: u64) -> u64 { id }\n);";
        assert_eq!(place(called, "get"), None);
    }
}
