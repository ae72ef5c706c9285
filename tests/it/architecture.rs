//! Architecture tests, in the spirit of rust-analyzer's: the rules of ARCHITECTURE.md that a
//! reviewer would otherwise have to remember, checked on the source text.
//!
//! - No import cycle between files, other than between a module and its own descendants.
//! - No SQL in handler modules: they parse, ask for permits and call stores.
//! - Domain modules do not import the HTTP layer (`ApiError` conversions live at the edge).
//! - Permits are made only inside `auth`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A source file and its module path (`src/archive/store.rs` → `archive::store`).
struct File {
    module: Vec<String>,
    text: String,
}

fn sources() -> BTreeMap<String, File> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths = vec![];
    walk(&root, &mut paths);
    let mut files = BTreeMap::new();
    for p in paths {
        let rel = p.strip_prefix(&root).unwrap().to_string_lossy().replace('\\', "/");
        if rel == "main.rs" {
            continue; // the binary: a crate of its own
        }
        let stem = rel.trim_end_matches(".rs");
        let module: Vec<String> = if stem == "lib" {
            vec![]
        } else {
            stem.trim_end_matches("/mod").split('/').map(String::from).collect()
        };
        let text = std::fs::read_to_string(&p).unwrap();
        // Unit tests may reach anywhere.
        let text = match text.find("#[cfg(test)]") {
            Some(i) => text[..i].to_string(),
            None => text,
        };
        files.insert(rel, File { module, text });
    }
    files
}

/// Path segments after each `crate::` / `super::` in `text`, with `use x::{a, b::c}` groups
/// expanded one level.
fn references(text: &str, prefix: &str) -> Vec<Vec<String>> {
    let mut out = vec![];
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut rest = text;
    while let Some(i) = rest.find(prefix) {
        let before = rest[..i].chars().last();
        rest = &rest[i + prefix.len()..];
        if before.is_some_and(|c| ident(c) || c == ':') && prefix != "super::" {
            continue;
        }
        let mut segs = vec![];
        let mut s = rest;
        loop {
            let n = s.find(|c: char| !ident(c)).unwrap_or(s.len());
            if n == 0 {
                break;
            }
            segs.push(s[..n].to_string());
            s = &s[n..];
            if let Some(t) = s.strip_prefix("::") {
                s = t;
            } else {
                break;
            }
        }
        if let Some(group) = s.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let mut full = segs.clone();
                full.extend(
                    item.trim()
                        .split("::")
                        .map(|x| x.trim().to_string())
                        .filter(|x| !x.is_empty() && x.chars().all(ident) && x != "self"),
                );
                out.push(full);
            }
        } else {
            out.push(segs);
        }
    }
    out
}

/// The file a path of modules (and maybe an item) resolves to: the longest known module prefix.
fn resolve(path: &[String], modules: &BTreeMap<Vec<String>, String>) -> Option<String> {
    (0..=path.len()).rev().find_map(|n| modules.get(&path[..n].to_vec()).cloned())
}

/// File → files it imports.
fn graph(files: &BTreeMap<String, File>) -> BTreeMap<String, BTreeSet<String>> {
    let modules: BTreeMap<Vec<String>, String> =
        files.iter().map(|(rel, f)| (f.module.clone(), rel.clone())).collect();
    let mut edges = BTreeMap::new();
    for (rel, f) in files {
        let mut to = BTreeSet::new();
        for path in references(&f.text, "crate::") {
            to.extend(resolve(&path, &modules));
        }
        // `super::` is the parent of this module (for `a/b/mod.rs` and `a/b.rs` alike: `a`).
        let mut parent = f.module.clone();
        parent.pop();
        for path in references(&f.text, "super::") {
            let mut full = parent.clone();
            let mut p = path.as_slice();
            while p.first().is_some_and(|s| s == "super") {
                full.pop();
                p = &p[1..];
            }
            full.extend(p.iter().cloned());
            to.extend(resolve(&full, &modules));
        }
        to.remove(rel);
        edges.insert(rel.clone(), to);
    }
    edges
}

/// Whether one module is the other or an ancestor of it.
fn related(a: &File, b: &File) -> bool {
    let (short, long) = if a.module.len() <= b.module.len() { (a, b) } else { (b, a) };
    long.module.starts_with(&short.module)
}

#[test]
fn no_import_cycles_beyond_a_module_and_its_descendants() {
    let files = sources();
    let edges = graph(&files);
    // Edges between a module and its own descendants are allowed and left out.
    let kept: BTreeMap<&String, Vec<&String>> = edges
        .iter()
        .map(|(a, to)| (a, to.iter().filter(|b| !related(&files[a], &files[*b])).collect()))
        .collect();
    // Tarjan's strongly connected components.
    struct St<'a> {
        index: BTreeMap<&'a String, usize>,
        low: BTreeMap<&'a String, usize>,
        stack: Vec<&'a String>,
        on: BTreeSet<&'a String>,
        next: usize,
        cycles: Vec<Vec<&'a String>>,
    }
    fn visit<'a>(v: &'a String, g: &BTreeMap<&'a String, Vec<&'a String>>, st: &mut St<'a>) {
        st.index.insert(v, st.next);
        st.low.insert(v, st.next);
        st.next += 1;
        st.stack.push(v);
        st.on.insert(v);
        for w in g.get(v).into_iter().flatten() {
            if !st.index.contains_key(w) {
                visit(w, g, st);
                let lw = st.low[w];
                let lv = st.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if st.on.contains(w) {
                let iw = st.index[w];
                let lv = st.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if st.low[v] == st.index[v] {
            let mut comp = vec![];
            loop {
                let w = st.stack.pop().unwrap();
                st.on.remove(w);
                comp.push(w);
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                st.cycles.push(comp);
            }
        }
    }
    let mut st = St {
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: vec![],
        on: BTreeSet::new(),
        next: 0,
        cycles: vec![],
    };
    for v in kept.keys() {
        if !st.index.contains_key(v) {
            visit(v, &kept, &mut st);
        }
    }
    let described: Vec<String> = st
        .cycles
        .iter()
        .map(|c| {
            let set: BTreeSet<&String> = c.iter().copied().collect();
            let inner: Vec<String> = c
                .iter()
                .flat_map(|a| {
                    kept[a].iter().filter(|b| set.contains(*b)).map(move |b| format!("{a} → {b}"))
                })
                .collect();
            format!("{}:\n    {}", c.len(), inner.join("\n    "))
        })
        .collect();
    assert!(described.is_empty(), "import cycles between files:\n{}", described.join("\n"));
}

/// Handler modules: the HTTP, DIMSE and WebSocket shells.
const HANDLERS: &[&str] = &[
    "http/",
    "dicomweb/",
    "broadcast/http",
    "consult/http.rs",
    "ecg/http.rs",
    "reading/http.rs",
    "signal/ws.rs",
    "signal/turn.rs",
    "upload/mod.rs",
    "dimse/mod.rs",
    "viewer.rs",
    "web.rs",
    "auth/mod.rs",
];

#[test]
fn handler_modules_hold_no_sql() {
    let files = sources();
    let offenders: Vec<String> = files
        .iter()
        .filter(|(rel, _)| HANDLERS.iter().any(|h| rel.starts_with(h)))
        .filter(|(_, f)| f.text.contains("sqlx::"))
        .map(|(rel, f)| {
            let lines: Vec<String> = f
                .text
                .lines()
                .enumerate()
                .filter(|(_, l)| l.contains("sqlx::"))
                .map(|(i, l)| format!("    {}: {}", i + 1, l.trim()))
                .collect();
            format!("{rel}\n{}", lines.join("\n"))
        })
        .collect();
    assert!(offenders.is_empty(), "SQL in handler modules:\n{}", offenders.join("\n"));
}

#[test]
fn domain_modules_do_not_import_the_http_layer() {
    let files = sources();
    let edge = |rel: &str| {
        HANDLERS.iter().any(|h| rel.starts_with(h))
            || ["error.rs", "server.rs", "state.rs", "lib.rs", "bench.rs", "operator.rs"]
                .contains(&rel)
    };
    let offenders: Vec<&String> = files
        .iter()
        .filter(|(rel, _)| !edge(rel))
        .filter(|(_, f)| f.text.contains("crate::error") || f.text.contains("ApiError"))
        .map(|(rel, _)| rel)
        .collect();
    assert!(offenders.is_empty(), "domain modules importing the HTTP layer: {offenders:?}");
}

#[test]
fn permits_are_made_only_inside_auth() {
    let files = sources();
    let offenders: Vec<&String> = files
        .iter()
        .filter(|(rel, _)| !rel.starts_with("auth/"))
        .filter(|(_, f)| f.text.contains("Permit {") || f.text.contains("Permit::new"))
        .map(|(rel, _)| rel)
        .collect();
    assert!(offenders.is_empty(), "permits made outside auth: {offenders:?}");
}
