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
    let text = read(file)?;
    trait_of_impl_around(&text, line, name)
}

/// The file's text, read once per file and expansion process.
fn read(file: PathBuf) -> Option<std::rc::Rc<str>> {
    thread_local! {
        static FILES: std::cell::RefCell<HashMap<PathBuf, Option<std::rc::Rc<str>>>> =
            std::cell::RefCell::new(HashMap::new());
    }
    FILES.with(|files| {
        files
            .borrow_mut()
            .entry(file)
            .or_insert_with_key(|file| std::fs::read_to_string(file).ok().map(Into::into))
            .clone()
    })
}

/// [`enclosing_trait`] on `text`, the method's name on line `line`
/// (1-based).
pub(crate) fn trait_of_impl_around(text: &str, line: usize, name: &str) -> Option<String> {
    let line_start = text
        .split_inclusive('\n')
        .take(line.checked_sub(1)?)
        .map(str::len)
        .sum::<usize>();
    let line_text = text.get(line_start..)?.lines().next()?;
    let at = line_start + find_fn_named(line_text, name)?;
    let header = innermost_header(text, at)?;
    trait_in_header(header)
}

/// Where `fn <name>` starts on `line`, `name` as a whole word.
fn find_fn_named(line: &str, name: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(found) = line.get(from..)?.find("fn") {
        let start = from + found;
        let rest = &line[start + 2..];
        let trimmed = rest.trim_start();
        let word_before = line[..start]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_');
        if !word_before
            && trimmed.len() < rest.len()
            && trimmed.starts_with(name)
            && !trimmed[name.len()..]
                .chars()
                .next()
                .is_some_and(|c| c.is_alphanumeric() || c == '_')
        {
            return Some(start);
        }
        from = start + 2;
    }
    None
}

/// The text before the `{` of the innermost block open at byte `at`, from
/// the end of the item or statement before it; `None` when `at` is in no
/// block or inside a comment or literal.
fn innermost_header(text: &str, at: usize) -> Option<&str> {
    let bytes = text.as_bytes();
    // (where the header starts, where its `{` is) of each open block.
    let mut open: Vec<(usize, usize)> = Vec::new();
    let mut boundary = 0;
    let mut i = 0;
    while i < at {
        match bytes[i] {
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                i = text[i..].find('\n').map_or(text.len(), |end| i + end);
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i = skip_block_comment(bytes, i)?;
                continue;
            }
            b'"' => {
                i = skip_string(bytes, i + 1)?;
                continue;
            }
            b'r' | b'b' if starts_raw_string(bytes, i) => {
                i = skip_raw_string(bytes, i)?;
                continue;
            }
            b'\'' => {
                i = skip_char_or_lifetime(text, i);
                continue;
            }
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
        i += 1;
    }
    if i != at {
        return None;
    }
    let (start, brace) = *open.last()?;
    Some(&text[start..brace])
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

/// `r"`, `r#"`, `br"`, `br#"`, not inside an identifier.
fn starts_raw_string(bytes: &[u8], i: usize) -> bool {
    if i > 0 && (bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_') {
        return false;
    }
    let mut j = i;
    if bytes[j] == b'b' {
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
    let mut j = i + usize::from(bytes[i] == b'b') + 1;
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
/// allowed); `None` for an inherent impl, any other block, or a header
/// naming `async_trait` or `cached_impl`.
fn trait_in_header(header: &str) -> Option<String> {
    if header.contains("async_trait") || header.contains("cached_impl") {
        return None;
    }
    let mut rest = header.trim();
    // Comments and outer attributes (`#[…]`, brackets balanced).
    loop {
        if rest.starts_with("//") {
            rest = rest.find('\n').map_or("", |end| &rest[end..]).trim_start();
            continue;
        }
        if rest.starts_with("/*") {
            rest = rest
                .find("*/")
                .map_or("", |end| &rest[end + 2..])
                .trim_start();
            continue;
        }
        let Some(attribute) = rest.strip_prefix('#') else {
            break;
        };
        let attribute = attribute.trim_start();
        let mut depth = 0usize;
        let mut end = None;
        for (at, c) in attribute.char_indices() {
            match c {
                '[' => depth += 1,
                ']' => {
                    depth = depth.checked_sub(1)?;
                    if depth == 0 {
                        end = Some(at + 1);
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = attribute[end?..].trim_start();
    }
    for prefix in ["unsafe", "default"] {
        if let Some(after) = rest.strip_prefix(prefix) {
            if after.starts_with(char::is_whitespace) {
                rest = after.trim_start();
            }
        }
    }
    let after_impl = rest.strip_prefix("impl")?;
    if !after_impl.starts_with(|c: char| c.is_whitespace() || c == '<') {
        return None;
    }
    // The first `for` outside angle brackets and parentheses, not a
    // `for<'a>` bound, ends the trait's path.
    let mut depth = 0i32;
    let bytes = after_impl.as_bytes();
    let mut start = None;
    for (at, &b) in bytes.iter().enumerate() {
        match b {
            b'<' | b'(' | b'[' => depth += 1,
            b'>' if at > 0 && bytes[at - 1] == b'-' => {}
            b'>' | b')' | b']' => depth -= 1,
            _ => {}
        }
        if depth == 0 && start.is_none() && !b.is_ascii_whitespace() && b != b'>' {
            start = Some(at);
        }
        let word = at == 0 || !(bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_');
        if depth == 0
            && word
            && after_impl[at..].starts_with("for")
            && after_impl[at + 3..].starts_with(char::is_whitespace)
        {
            let path = after_impl[start?..at].trim();
            return (!path.is_empty()).then(|| path.to_owned());
        }
        if depth == 0 && word && after_impl[at..].starts_with("where") {
            return None;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::trait_of_impl_around;

    fn around(text: &str, name: &str) -> Option<String> {
        let line = text
            .lines()
            .position(|line| line.contains(&format!("fn {name}")))
            .unwrap()
            + 1;
        trait_of_impl_around(text, line, name)
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
        let text = "impl T for A {\n // }\n /* } { */ const S: &str = \"}\"; const C: char = '}';\n const R: &str = r#\"}\"#; fn l<'a>(x: &'a u8) {}\n async fn get(&self) {}\n}";
        assert_eq!(around(text, "get").as_deref(), Some("T"));
    }

    #[test]
    fn a_line_without_the_function_is_no_answer() {
        let text = "impl T for A {\n async fn get(&self) {}\n}";
        assert_eq!(trait_of_impl_around(text, 1, "get"), None);
        assert_eq!(trait_of_impl_around(text, 9, "get"), None);
        assert_eq!(trait_of_impl_around(text, 2, "getter"), None);
    }
}
