//! The library's modules import one way only: no module imports another
//! that imports it back, directly or through others, and the leaves (the
//! config and the formats with no I/O) import nothing of the crate.
//!
//! Read from the source text: each file under `src/` is a module, and an
//! import is every path into the crate outside tests and comments
//! (`crate::a::b`, `super::x`, `self::x`, or a child module's name). Written
//! here because the tools that draw a crate's module graph count a type and
//! its own methods as a cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Modules that import nothing of the crate outside themselves.
const LEAVES: &[&str] = &["config", "format"];

#[test]
fn no_module_imports_another_that_imports_it_back() {
    let graph = Graph::read();
    let cycles = graph.cycles();
    assert!(
        cycles.is_empty(),
        "modules that import each other, with what each takes from the next:\n{}",
        cycles
            .iter()
            .map(|(set, cycle)| graph.describe(set, cycle))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn the_crate_s_folders_import_one_way_too() {
    let graph = Graph::read().folders();
    let cycles = graph.cycles();
    assert!(
        cycles.is_empty(),
        "top-level modules that import each other, with what each takes from the next:\n{}",
        cycles
            .iter()
            .map(|(set, cycle)| graph.describe(set, cycle))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn the_leaves_import_nothing_of_the_crate() {
    let graph = Graph::read();
    let mut wrong = Vec::new();
    for leaf in LEAVES {
        assert!(graph.modules.contains(*leaf), "no module {leaf}");
        for (to, names) in graph.edges.get(*leaf).into_iter().flatten() {
            if !to.starts_with(&format!("{leaf}::")) {
                wrong.push(format!("{leaf} -> {to}: {}", join(names)));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "leaves that import the crate:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_reader_sees_imports_comments_and_tests_as_they_are() {
    let modules: BTreeSet<String> = ["", "a", "a::b", "a::c", "d"].map(String::from).into();
    let source = "use crate::d::{self, X};\n\
        use super::c::Y; // crate::a::z\n\
        /* super::super::d */\n\
        fn f() { b::g(); }\n\
        #[cfg(test)]\nmod tests { use crate::a::c; }\n";
    let found = imports("a::b", source, &modules);
    let want: BTreeMap<String, BTreeSet<String>> = [
        (
            "d".to_string(),
            ["(the module)".to_string(), "X".to_string()].into(),
        ),
        ("a::c".to_string(), ["Y".to_string()].into()),
    ]
    .into();
    assert_eq!(found, want);
    let found = imports("a", "fn f() { b::g(); let c = 1; }", &modules);
    assert_eq!(found.keys().collect::<Vec<_>>(), ["a::b"]);
    let found = imports(
        "a::b",
        "mod inner { use super::X; }\nuse super::Y;",
        &modules,
    );
    assert_eq!(found.keys().collect::<Vec<_>>(), ["a"]);
}

/// Modules and who imports what from whom.
struct Graph {
    modules: BTreeSet<String>,
    /// from -> to -> the names taken.
    edges: BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
}

impl Graph {
    fn read() -> Graph {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        // main.rs is the binary over the library, not one of its modules.
        files.retain(|f| f != &src.join("main.rs"));
        let named: Vec<(String, PathBuf)> = files
            .into_iter()
            .map(|f| {
                (
                    module_of(&f.strip_prefix(&src).unwrap().to_string_lossy()),
                    f,
                )
            })
            .collect();
        let modules: BTreeSet<String> = named.iter().map(|(m, _)| m.clone()).collect();
        let mut edges = BTreeMap::new();
        for (module, file) in &named {
            let text = std::fs::read_to_string(file).unwrap();
            edges.insert(module.clone(), imports(module, &text, &modules));
        }
        Graph { modules, edges }
    }

    /// The graph of the crate's top-level modules: each with everything
    /// inside it (`rtsp` with `rtsp::session` ...).
    fn folders(&self) -> Graph {
        let top = |m: &str| m.split("::").next().unwrap_or_default().to_string();
        let mut edges: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
        for (from, tos) in &self.edges {
            for (to, names) in tos {
                let (from, to) = (top(from), top(to));
                if from != to {
                    let taken = edges.entry(from).or_default().entry(to).or_default();
                    taken.extend(names.iter().cloned());
                }
            }
        }
        let modules: BTreeSet<String> = self.modules.iter().map(|m| top(m)).collect();
        for m in &modules {
            edges.entry(m.clone()).or_default();
        }
        Graph { modules, edges }
    }

    /// Every strongly connected set of two or more modules (Tarjan's
    /// algorithm): each set, and one cycle through it.
    fn cycles(&self) -> Vec<(BTreeSet<String>, Vec<String>)> {
        let mut index = BTreeMap::new();
        let mut low = BTreeMap::new();
        let mut stack = Vec::new();
        let mut sets = Vec::new();
        for m in &self.modules {
            if !index.contains_key(m) {
                self.connect(m, &mut index, &mut low, &mut stack, &mut sets);
            }
        }
        sets.into_iter()
            .filter(|s: &Vec<String>| s.len() > 1)
            .map(|s| {
                let set = s.into_iter().collect();
                let cycle = self.cycle_within(&set);
                (set, cycle)
            })
            .collect()
    }

    fn connect(
        &self,
        m: &str,
        index: &mut BTreeMap<String, usize>,
        low: &mut BTreeMap<String, usize>,
        stack: &mut Vec<String>,
        sets: &mut Vec<Vec<String>>,
    ) {
        let i = index.len();
        index.insert(m.to_string(), i);
        low.insert(m.to_string(), i);
        stack.push(m.to_string());
        for to in self.edges.get(m).into_iter().flat_map(|e| e.keys()) {
            if !index.contains_key(to) {
                self.connect(to, index, low, stack, sets);
                let l = low[to].min(low[m]);
                low.insert(m.to_string(), l);
            } else if stack.contains(to) {
                let l = index[to].min(low[m]);
                low.insert(m.to_string(), l);
            }
        }
        if low[m] == index[m] {
            let at = stack.iter().position(|s| s == m).unwrap();
            sets.push(stack.split_off(at));
        }
    }

    /// A shortest cycle through the first module of a strongly connected
    /// set, by breadth-first search inside the set.
    fn cycle_within(&self, set: &BTreeSet<String>) -> Vec<String> {
        let start = set.iter().next().unwrap().clone();
        let mut came_from: BTreeMap<String, String> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([start.clone()]);
        while let Some(m) = queue.pop_front() {
            for to in self.edges[&m].keys().filter(|t| set.contains(*t)) {
                if *to == start {
                    let mut cycle = vec![m.clone()];
                    while let Some(p) = came_from.get(cycle.last().unwrap()) {
                        cycle.push(p.clone());
                    }
                    cycle.reverse();
                    return cycle;
                }
                if !came_from.contains_key(to) {
                    came_from.insert(to.clone(), m.clone());
                    queue.push_back(to.clone());
                }
            }
        }
        unreachable!("a strongly connected set has a cycle through each member")
    }

    fn describe(&self, set: &BTreeSet<String>, cycle: &[String]) -> String {
        let members: Vec<&str> = set.iter().map(|m| shown(m)).collect();
        let mut lines = vec![
            format!(
                "  {} modules tied together: {}",
                set.len(),
                members.join(", ")
            ),
            "  one loop among them:".to_string(),
        ];
        for (i, from) in cycle.iter().enumerate() {
            let to = &cycle[(i + 1) % cycle.len()];
            let names = &self.edges[from][to];
            lines.push(format!(
                "    {} -> {}: {}",
                shown(from),
                shown(to),
                join(names)
            ));
        }
        lines.join("\n")
    }
}

fn shown(module: &str) -> &str {
    if module.is_empty() {
        "(crate root)"
    } else {
        module
    }
}

fn join(names: &BTreeSet<String>) -> String {
    names.iter().cloned().collect::<Vec<_>>().join(", ")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `rtsp/session.rs` -> `rtsp::session`; `rtsp/mod.rs` -> `rtsp`;
/// `lib.rs` -> `` (the crate root).
fn module_of(relative: &str) -> String {
    let path = relative.trim_end_matches(".rs");
    let path = path.trim_end_matches("/mod");
    match path {
        "lib" => String::new(),
        p => p.replace('/', "::"),
    }
}

/// The modules that `module`'s source imports, each with the names taken
/// from it.
fn imports(
    module: &str,
    source: &str,
    modules: &BTreeSet<String>,
) -> BTreeMap<String, BTreeSet<String>> {
    let code = without_tests(&without_comments(source));
    let children: BTreeSet<&str> = modules
        .iter()
        .filter_map(|m| {
            let rest = if module.is_empty() {
                m.as_str()
            } else {
                m.strip_prefix(module)?.strip_prefix("::")?
            };
            (!rest.is_empty() && !rest.contains("::")).then_some(rest)
        })
        .collect();
    let mut found: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let chars: Vec<char> = code.chars().collect();
    let inline = inline_modules(&chars);
    let mut i = 0;
    while i < chars.len() {
        let starts_word = i == 0 || !is_ident(chars[i - 1]) && chars[i - 1] != ':';
        if !starts_word || !is_ident(chars[i]) {
            i += 1;
            continue;
        }
        let word_end = (i..chars.len())
            .find(|&j| !is_ident(chars[j]))
            .unwrap_or(chars.len());
        let word: String = chars[i..word_end].iter().collect();
        let base = match word.as_str() {
            "crate" => Some(String::new()),
            // `super` in a module written inline (`mod fourcc { ... }`) is
            // the file's own module.
            "super" if inline.iter().any(|r| r.contains(&i)) => Some(module.to_string()),
            "super" => Some(parent(module)),
            "self" => Some(module.to_string()),
            w if children.contains(w) => Some(join_path(module, w)),
            _ => None,
        };
        let followed = chars[word_end..].starts_with(&[':', ':']);
        match base {
            Some(base) if followed => {
                let mut paths = Vec::new();
                let start = if children.contains(word.as_str()) {
                    i
                } else {
                    word_end + 2
                };
                let end = path_tree(&chars, start, &mut Vec::new(), &mut paths);
                for path in paths {
                    let (to, name) = resolve(&base, module, &path, modules, &word);
                    if to != module {
                        found.entry(to).or_default().insert(name);
                    }
                }
                i = end;
            }
            _ => i = word_end,
        }
    }
    found
}

/// Where the modules written inline in a file (`mod name { ... }`) lie.
fn inline_modules(chars: &[char]) -> Vec<std::ops::Range<usize>> {
    let mut found = Vec::new();
    let text: String = chars.iter().collect();
    let mut from = 0;
    while let Some(at) = text[from..].find("mod ").map(|a| a + from) {
        from = at + 4;
        let starts_word = at == 0 || !is_ident(text[..at].chars().last().unwrap());
        let after = text[from..].trim_start_matches(|c: char| is_ident(c) || c.is_whitespace());
        if !starts_word || !after.starts_with('{') {
            continue;
        }
        let open = text.len() - after.len();
        let mut depth = 0;
        for (i, c) in text[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        // In characters, as the reader counts.
                        let start = text[..at].chars().count();
                        let end = text[..open + i].chars().count();
                        found.push(start..end);
                        break;
                    }
                }
                _ => {}
            }
        }
    }
    found
}

/// Reads the path tree at `at` (`a::b::{c, d::e}`, `X`, `{self, Y}`) into
/// `paths`, each a list of segments; returns where it ends.
fn path_tree(
    chars: &[char],
    mut at: usize,
    prefix: &mut Vec<String>,
    paths: &mut Vec<Vec<String>>,
) -> usize {
    let skip_space = |at: &mut usize| {
        while *at < chars.len() && chars[*at].is_whitespace() {
            *at += 1;
        }
    };
    let depth = prefix.len();
    loop {
        skip_space(&mut at);
        if at < chars.len() && chars[at] == '{' {
            at += 1;
            loop {
                at = path_tree(chars, at, prefix, paths);
                skip_space(&mut at);
                match chars.get(at) {
                    Some(',') => at += 1,
                    Some('}') => {
                        at += 1;
                        break;
                    }
                    _ => break,
                }
                skip_space(&mut at);
                if chars.get(at) == Some(&'}') {
                    at += 1;
                    break;
                }
            }
            prefix.truncate(depth);
            return at;
        }
        let end = (at..chars.len())
            .find(|&j| !is_ident(chars[j]))
            .unwrap_or(chars.len());
        if end == at {
            if prefix.len() > depth || !prefix.is_empty() {
                paths.push(prefix.clone());
            }
            prefix.truncate(depth);
            return at;
        }
        prefix.push(chars[at..end].iter().collect());
        at = end;
        if chars[at..].starts_with(&[':', ':']) {
            at += 2;
        } else {
            paths.push(prefix.clone());
            prefix.truncate(depth);
            return at;
        }
    }
}

/// The module a path from `base` lands in (the longest one that exists),
/// and the name it takes there.
fn resolve(
    base: &str,
    module: &str,
    path: &[String],
    modules: &BTreeSet<String>,
    word: &str,
) -> (String, String) {
    let mut to = base.to_string();
    let mut rest = path;
    // A child's name starts the path itself.
    if word != "crate" && word != "super" && word != "self" {
        to = module.to_string();
    }
    while let Some((first, tail)) = rest.split_first() {
        let next = if first == "super" {
            parent(&to)
        } else {
            join_path(&to, first)
        };
        if first == "self" {
            rest = tail;
            continue;
        }
        if !modules.contains(&next) {
            break;
        }
        to = next;
        rest = tail;
    }
    let name = rest
        .first()
        .cloned()
        .unwrap_or_else(|| "(the module)".to_string());
    (to, name)
}

fn parent(module: &str) -> String {
    module
        .rsplit_once("::")
        .map(|(p, _)| p.to_string())
        .unwrap_or_default()
}

fn join_path(module: &str, name: &str) -> String {
    if module.is_empty() {
        name.to_string()
    } else {
        format!("{module}::{name}")
    }
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The source without `//` and `/* */` comments (and so without doc
/// comments' links).
fn without_comments(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut chars = source.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            if c == '\\' {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        match (c, chars.peek()) {
            ('"', _) => {
                in_string = true;
                out.push(c);
            }
            ('/', Some('/')) => {
                for n in chars.by_ref() {
                    if n == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            ('/', Some('*')) => {
                chars.next();
                let mut last = ' ';
                for n in chars.by_ref() {
                    if last == '*' && n == '/' {
                        break;
                    }
                    last = n;
                }
            }
            _ => out.push(c),
        }
    }
    out
}

/// The source without the items under `#[cfg(test)]` or
/// `#[cfg(all(test, ...))]`: a test's imports are not the module's.
fn without_tests(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    loop {
        let at = ["#[cfg(test)]", "#[cfg(all(test"]
            .iter()
            .filter_map(|a| rest.find(a))
            .min();
        let Some(at) = at else {
            out.push_str(rest);
            return out;
        };
        out.push_str(&rest[..at]);
        // The item ends at its first `;` outside braces, or at the brace
        // that closes its first block.
        let item = &rest[at..];
        let attribute_end = item.find(']').unwrap() + 1;
        let mut depth = 0usize;
        let mut end = item.len();
        for (i, c) in item[attribute_end..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = attribute_end + i + 1;
                        break;
                    }
                }
                ';' if depth == 0 => {
                    end = attribute_end + i + 1;
                    break;
                }
                _ => {}
            }
        }
        rest = &item[end..];
    }
}
