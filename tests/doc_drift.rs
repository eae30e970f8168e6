//! The prose docs against the tree. Fails, listing every problem, when:
//!
//! 1. README.md, ARCHITECTURE.md or BENCHMARKS.md names a path that does not
//!    exist: a markdown link target (not a URL or `#anchor`), from the root;
//!    or an inline code span outside fenced blocks, made of `A-Za-z0-9_.-/`
//!    only, holding a `/` or ending in .rs .md .sh .toml or .stderr, not
//!    absolute (`/proc`) nor a bare extension (`.rs`), from the root or one
//!    of `ROOTS` (a table of `cache-runtime/src` files says `tier/moka.rs`).
//! 2. ARCHITECTURE.md leaves out a file: each `.rs` under `cache-runtime/src`
//!    and `cache-macros/src` (recursively), in `tests/` and in
//!    `cache-runtime/tests/`, and each trybuild case `tests/ui*/*.rs`. It is
//!    mentioned, as a whole word, by its path from the root; or from its own
//!    folder (`tier/quick.rs`, `fn_cache.rs`) when no other of these files
//!    shares that (so `lib.rs`, `tags.rs`, `policies.rs` are written in
//!    full); or, for a trybuild case, by its name (`missing_ttl`).
//! 3. A code span names `herdcache::…` or `herdcache_runtime::…` whose first
//!    segment is no `pub` item (fn, struct, enum, trait, type, mod, const,
//!    static; `pub(crate)` does not count) nor `pub use`d name in `src/`,
//!    `cache-runtime/src/` or `cache-macros/src/`. Later segments may also be
//!    members (rule 4): `herdcache::Error::Timeout`.
//! 4. A code span names `Type::member` (or `Type::{a, b}`), `Type` declared
//!    in the workspace's source (not in a doc example), and no fn, const,
//!    field or variant is named `member` anywhere in it. Grep-level: a
//!    renamed or removed function is caught, one put on the wrong type is
//!    not. Other crates' types (`Arc::ptr_eq`) and the helpers `#[cached]`
//!    writes (`UserRepo::list_invalidate`) are skipped.

use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;

const DOCS: [&str; 3] = ["README.md", "ARCHITECTURE.md", "BENCHMARKS.md"];
const EXTENSIONS: [&str; 5] = [".rs", ".md", ".sh", ".toml", ".stderr"];
/// Where a code span's path may be relative to, after the root.
const ROOTS: &str = "cache-runtime/src cache-macros/src src tests cache-runtime/tests test-support/src examples benches cache-runtime/benches";
/// The folders whose files ARCHITECTURE.md must name (the `src` ones deep).
const DESCRIBED: &str = "cache-runtime/src cache-macros/src tests cache-runtime/tests";
/// Where public items are declared.
const SOURCES: [&str; 3] = ["src", "cache-runtime/src", "cache-macros/src"];
const AMBIGUOUS: &str = " (by its path from the root: its short name is not unique)";
const HELPERS: [&str; 5] = ["_invalidate", "_expire", "_refresh", "_uncached", "_cache"];
const ITEMS: [&str; 8] = [
    "fn", "struct", "enum", "trait", "type", "mod", "const", "static",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `.rs` files in `dir` (and below, if `deep`), as paths from the root.
fn rust_files(dir: &str, deep: bool) -> Vec<String> {
    let mut found = Vec::new();
    let entries = fs::read_dir(root().join(dir)).into_iter().flatten();
    for entry in entries.flatten() {
        let path = format!("{dir}/{}", entry.file_name().to_string_lossy());
        if entry.path().is_dir() && deep {
            found.extend(rust_files(&path, true));
        } else if path.ends_with(".rs") {
            found.push(path);
        }
    }
    found.sort();
    found
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The identifier `text` starts with (maybe empty).
fn ident(text: &str) -> &str {
    &text[..text.find(|c: char| !is_word(c)).unwrap_or(text.len())]
}

/// The words of a line of code.
fn words(line: &str) -> Vec<&str> {
    line.split(|c: char| !is_word(c))
        .filter(|w| !w.is_empty())
        .collect()
}

/// The inline code spans of `text`, with their line, and its prose: the
/// text with spans and fenced blocks blanked (lines kept).
fn code_spans(text: &str) -> (Vec<(usize, String)>, String) {
    let mut fenced = false;
    let mut prose: Vec<u8> = Vec::new();
    for line in text.split_inclusive('\n') {
        let fence = line.trim_start().starts_with("```");
        fenced ^= fence;
        let keep = !(fence || fenced);
        prose.extend_from_slice(if keep { line.as_bytes() } else { b"\n" });
    }
    let run = |bytes: &[u8], at: usize| bytes[at..].iter().take_while(|b| **b == b'`').count();
    let (mut spans, mut i) = (Vec::new(), 0);
    while i < prose.len() {
        let n = run(&prose, i);
        let mut j = i + n;
        while n > 0 && j < prose.len() && run(&prose, j) != n {
            j += run(&prose, j).max(1);
        }
        if n == 0 || j >= prose.len() {
            i += n.max(1); // text, or backticks that close nowhere
            continue;
        }
        let line = prose[..i].iter().filter(|b| **b == b'\n').count() + 1;
        let span = String::from_utf8_lossy(&prose[i + n..j]).trim().to_owned();
        spans.push((line, span));
        for byte in prose[i..j + n].iter_mut().filter(|b| **b != b'\n') {
            *byte = b' ';
        }
        i = j + n;
    }
    let prose = String::from_utf8(prose).expect("only ASCII was blanked");
    (spans, prose)
}

/// Whether `needle` occurs in `text` as a whole path, not inside a longer one.
fn mentions(text: &str, needle: &str) -> bool {
    text.match_indices(needle).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let mut after = text[at + needle.len()..].chars();
        let after_ok = match after.next() {
            Some('.') => !after.next().is_some_and(|c| c.is_ascii_alphanumeric()),
            next => !next.is_some_and(|c| is_word(c) || "/-".contains(c)),
        };
        after_ok && !before.is_some_and(|c| is_word(c) || "./-".contains(c))
    })
}

/// In the source under `dirs`: the `pub` names (items and `pub use`d ones), the
/// types declared in code, and the members (fns, consts, fields, variants).
fn declared<'a>(dirs: impl Iterator<Item = &'a &'a str>) -> [BTreeSet<String>; 3] {
    let [mut public, mut types, mut members] = [(); 3].map(|()| BTreeSet::new());
    for file in dirs.flat_map(|dir| rust_files(dir, true)) {
        let source = fs::read_to_string(root().join(file)).unwrap_or_default();
        for (at, _) in source.match_indices("pub use ") {
            let end = source[at..].find(';').map_or(source.len(), |end| at + end);
            public.extend(words(&source[at..end]).into_iter().map(str::to_owned));
        }
        for line in source.lines().map(str::trim_start) {
            for pair in words(line).windows(2) {
                if ["struct", "enum", "trait", "type"].contains(&pair[0]) && !line.starts_with("//")
                {
                    types.insert(pair[1].to_owned());
                }
                if ["fn", "const", "static"].contains(&pair[0]) {
                    members.insert(pair[1].to_owned());
                }
            }
            // `pub name: T`, `Name,`, `Name(..)`, `Name { .. }`: a field or a variant.
            let field = line
                .trim_start_matches("pub(crate) ")
                .trim_start_matches("pub ");
            let next = field[ident(field).len()..].trim_start();
            if next.is_empty() || next.starts_with([',', '(', '{', '=']) || next.starts_with(": ") {
                members.insert(ident(field).to_owned());
            }
            // `pub [async|unsafe|const] <item> NAME`.
            let words = words(line.strip_prefix("pub ").unwrap_or_default());
            let lead = words
                .iter()
                .take_while(|w| ITEMS.contains(w) || ["async", "unsafe"].contains(w))
                .count();
            if words[..lead].iter().any(|w| ITEMS.contains(w)) && lead < words.len() {
                public.insert(words[lead].to_owned());
            }
        }
    }
    [public, types, members]
}

/// The `Type::member` pairs in a code span (`Type::{a, b}` gives both).
fn type_members(span: &str) -> Vec<(&str, &str)> {
    let mut pairs = Vec::new();
    for (at, _) in span.match_indices("::") {
        let ty = &span[span[..at].rfind(|c: char| !is_word(c)).map_or(0, |i| i + 1)..at];
        let tail = &span[at + 2..];
        let names: Vec<&str> = match tail.strip_prefix('{') {
            Some(list) => list[..list.find('}').unwrap_or(list.len())]
                .split(',')
                .collect(),
            None => vec![ident(tail)],
        };
        if ty.starts_with(|c: char| c.is_ascii_uppercase()) {
            pairs.extend(names.into_iter().map(|name| (ty, name.trim())));
        }
    }
    pairs
}

#[test]
fn the_docs_name_what_exists_and_architecture_covers_every_file() {
    let root = root();
    let [public, ..] = declared(SOURCES.iter());
    let [_, types, members] = declared(SOURCES.iter().chain(&["test-support/src"]));
    let mut problems = Vec::new();

    for doc in DOCS {
        let (spans, prose) = code_spans(&fs::read_to_string(root.join(doc)).expect(doc));
        // 1. Link targets, from the root.
        for (at, _) in prose.match_indices("](") {
            let target = &prose[at + 2..];
            let target = &target[..target.find([')', ' ', '\n']).unwrap_or(target.len())];
            let path = target.split('#').next().unwrap_or_default();
            if !target.contains("://") && !target.starts_with('#') && !root.join(path).exists() {
                let line = prose[..at].matches('\n').count() + 1;
                problems.push(format!(
                    "{doc}:{line} links to `{target}`, which does not exist"
                ));
            }
        }
        for (line, span) in &spans {
            // 1. Paths in code spans, from the root or one of `ROOTS`.
            let path_like = span.chars().all(|c| is_word(c) || "-./".contains(c));
            let named = span.contains('/') || EXTENSIONS.iter().any(|e| span.ends_with(e));
            // Cargo's output folder exists only once something was built
            // (and not here at all under `CARGO_TARGET_DIR`).
            let bare = span.starts_with('/')
                || span.starts_with("target/")
                || EXTENSIONS.contains(&span.as_str());
            let roots = || std::iter::once("").chain(ROOTS.split(' '));
            let found = || roots().any(|r| root.join(r).join(span).exists());
            if path_like && named && !bare && !found() {
                let tried = ROOTS.replace(' ', ", ");
                problems.push(format!(
                    "{doc}:{line} names `{span}`, which does not exist (tried the root, {tried})"
                ));
            }
            // 3. Paths of the crates users name.
            let path = span.split_once("herdcache_runtime::");
            if let Some((_, path)) = path.or_else(|| span.split_once("herdcache::")) {
                let path = path.split(|c: char| !is_word(c) && c != ':').next();
                let segments = path
                    .unwrap_or_default()
                    .split("::")
                    .filter(|s| !s.is_empty());
                for (i, segment) in segments.enumerate() {
                    let member = i > 0 && members.contains(segment);
                    if !public.contains(segment) && !member {
                        problems.push(format!("{doc}:{line} names `{span}`, but `{segment}` is no `pub` item or re-export in {}", SOURCES.join(", ")));
                    }
                }
            }
            // 4. `Type::member`, for the workspace's own types.
            for (ty, member) in type_members(span) {
                let helper = HELPERS.iter().any(|h| member.ends_with(h));
                if types.contains(ty) && !members.contains(member) && !helper {
                    problems.push(format!("{doc}:{line} names `{ty}::{member}`, but no fn, const, field or variant `{member}` exists in the source"));
                }
            }
        }
    }

    // 2. ARCHITECTURE.md mentions every file it must describe.
    let architecture = fs::read_to_string(root.join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let mut described = Vec::new(); // (from the root, from its folder)
    for dir in DESCRIBED.split(' ') {
        for path in rust_files(dir, dir.ends_with("src")) {
            described.push((path[dir.len() + 1..].to_owned(), path));
        }
    }
    for (short, full) in &described {
        let unique = described.iter().filter(|(other, _)| other == short).count() == 1;
        let by_short = unique && mentions(&architecture, short);
        if !mentions(&architecture, full) && !by_short {
            let ambiguous = if unique { "" } else { AMBIGUOUS };
            problems.push(format!(
                "ARCHITECTURE.md does not mention {full}{ambiguous}"
            ));
        }
    }
    let ui = fs::read_dir(root.join("tests")).expect("tests/").flatten();
    let ui = ui
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|d| d.starts_with("ui"));
    for case in ui.flat_map(|dir| rust_files(&format!("tests/{dir}"), false)) {
        let name = case[case.rfind('/').unwrap_or(0) + 1..].trim_end_matches(".rs");
        if !mentions(&architecture, &case) && !mentions(&architecture, name) {
            problems.push(format!(
                "ARCHITECTURE.md does not mention the trybuild case {case} (`{name}`)"
            ));
        }
    }

    assert!(
        problems.is_empty(),
        "the docs drifted from the tree ({} problems; the rules are at the top of tests/doc_drift.rs):\n  - {}\n",
        problems.len(),
        problems.join("\n  - ")
    );
}
