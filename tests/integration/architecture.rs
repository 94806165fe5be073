//! The module map kept true: every `crate::…`, `super::…`, `self::…`, child-module and
//! `embedded_server::…` path in `src/` checked against `docs/architecture.toml` (which module may
//! import which), no import cycle between modules or between files (in `src/` and in
//! `embedded-server/src/`), and the "may import" table of docs/ARCHITECTURE.md rendered from the
//! same data (`TUNE_BLESS=1` rewrites it).
//!
//! Paths are read with `syn` from the parsed source, including the tokens of macro calls
//! (`format!`, `assert!`), so an import cannot hide in a macro; `#[cfg(test)]` code counts too,
//! since a test module that reaches upwards ties the files together all the same.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::PathBuf;

use proc_macro2::{TokenStream, TokenTree};
use serde::Deserialize;
use syn::visit::Visit;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

// ---------------------------------------------------------------------------------------------
// The map (docs/architecture.toml)

#[derive(Debug, Deserialize)]
struct Map {
    module: Vec<ModuleRule>,
}

#[derive(Debug, Deserialize)]
struct ModuleRule {
    /// As docs/ARCHITECTURE.md shows it: `cli/` (a directory), `capacity` (a file), `main.rs`,
    /// `embedded-server` (the other crate).
    name: String,
    owns: String,
    may_import: Vec<String>,
    /// What else it may use (std, nix, ...): shown in the table, not checked here.
    #[serde(default)]
    also: Option<String>,
    /// Why an import that looks out of place is allowed, by the module imported.
    #[serde(default)]
    why: BTreeMap<String, String>,
}

impl Map {
    fn load() -> Map {
        let path = repo().join("docs/architecture.toml");
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// Module key (`cli`, `capacity`, `main.rs`, `embedded-server`) to what it may import.
    fn allowed(&self) -> BTreeMap<String, BTreeSet<String>> {
        self.module
            .iter()
            .map(|m| {
                let may = m.may_import.iter().map(|n| key(n)).collect();
                (key(&m.name), may)
            })
            .collect()
    }
}

/// `cli/` → `cli`: the map names directories as the doc shows them.
fn key(name: &str) -> String {
    name.trim_end_matches('/').to_string()
}

/// The "may import" table of docs/ARCHITECTURE.md, from the map.
fn render_table(map: &Map) -> String {
    let mut t = String::from("| module | owns | may import |\n| --- | --- | --- |\n");
    for m in &map.module {
        let mut may: Vec<String> = m
            .may_import
            .iter()
            .map(|n| match m.why.get(n) {
                Some(why) => format!("`{n}` ({why})"),
                None => format!("`{n}`"),
            })
            .collect();
        if let Some(also) = &m.also {
            may.push(also.clone());
        }
        let may = if may.is_empty() {
            "nothing".to_string()
        } else {
            may.join(", ")
        };
        writeln!(t, "| `{}` | {} | {may} |", m.name, m.owns.trim()).unwrap();
    }
    t
}

const TABLE_START: &str = "<!-- module-map: rendered from docs/architecture.toml; \
                           TUNE_BLESS=1 cargo test --test integration architecture rewrites it -->\n";
const TABLE_END: &str = "<!-- end module-map -->";

// ---------------------------------------------------------------------------------------------
// Reading the imports

/// One path that names another part of the code.
#[derive(Debug, Clone)]
struct Import {
    /// The file it is written in, relative to the repository.
    file: String,
    line: usize,
    /// The file it reaches (relative to the repository), or `embedded-server` from `src/`.
    to_file: String,
    /// The path as written, for the message.
    path: String,
}

/// A crate's source: its files by module path (`["verify", "plan"]` → `src/verify/plan.rs`).
struct Crate {
    dir: PathBuf,
    /// Module path → file (relative to the repository).
    files: BTreeMap<Vec<String>, String>,
    /// Names other crates know this one by (its own paths start with `crate`).
    self_names: Vec<&'static str>,
    /// Extern crates whose paths count as imports, by the node name they get.
    externs: Vec<(&'static str, &'static str)>,
}

impl Crate {
    fn open(
        dir: &str,
        self_names: Vec<&'static str>,
        externs: Vec<(&'static str, &'static str)>,
    ) -> Crate {
        let dir = repo().join(dir);
        let mut files = BTreeMap::new();
        let mut stack = vec![dir.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    let rel = p.strip_prefix(&dir).unwrap();
                    let mut segs: Vec<String> = rel
                        .iter()
                        .map(|s| s.to_string_lossy().trim_end_matches(".rs").to_string())
                        .collect();
                    match segs.last().map(String::as_str) {
                        Some("mod") => {
                            segs.pop();
                        }
                        Some("lib") if segs.len() == 1 => segs.clear(),
                        // The binary's root is a crate of its own: a module path no `crate::` reaches.
                        Some("main") if segs.len() == 1 => segs = vec!["<main>".into()],
                        _ => {}
                    }
                    let file = p
                        .strip_prefix(repo())
                        .unwrap()
                        .to_string_lossy()
                        .into_owned();
                    files.insert(segs, file);
                }
            }
        }
        Crate {
            dir,
            files,
            self_names,
            externs,
        }
    }

    /// Every import of every file the product is built from (test modules left out).
    fn imports(&self) -> Vec<Import> {
        let parsed: Vec<(&Vec<String>, &String, syn::File)> = self
            .files
            .iter()
            .map(|(modpath, file)| {
                let text = std::fs::read_to_string(repo().join(file)).unwrap();
                let ast = syn::parse_file(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
                (modpath, file, ast)
            })
            .collect();
        // Files declared `#[cfg(test)] mod x;` are tests, as inline test modules are.
        let mut tests = BTreeSet::new();
        for (modpath, _, ast) in &parsed {
            for item in &ast.items {
                if let syn::Item::Mod(m) = item {
                    if m.content.is_none() && is_test(&m.attrs) {
                        let mut p = (*modpath).clone();
                        p.push(m.ident.to_string());
                        tests.insert(p);
                    }
                }
            }
        }
        let mut all = Vec::new();
        for (modpath, file, ast) in parsed {
            if tests.iter().any(|t| modpath.starts_with(t)) {
                continue;
            }
            let is_main = modpath.first().is_some_and(|s| s == "<main>");
            let mut v = Scan {
                krate: self,
                file,
                modpath: if is_main { Vec::new() } else { modpath.clone() },
                file_depth: if is_main { 0 } else { modpath.len() },
                is_main,
                aliases: HashMap::new(),
                out: Vec::new(),
            };
            v.visit_file(&ast);
            all.extend(v.out);
        }
        all
    }

    /// The file a module path lands in: the longest prefix that is a file.
    fn file_of(&self, path: &[String]) -> Option<&String> {
        (0..=path.len())
            .rev()
            .find_map(|n| self.files.get(&path[..n]))
    }

    /// Whether file `a` is the root of a module that contains file `b`.
    fn is_ancestor(&self, a: &str, b: &str) -> bool {
        let path = |f: &str| {
            self.files
                .iter()
                .find(|(_, v)| *v == f)
                .map(|(k, _)| k.clone())
        };
        match (path(a), path(b)) {
            (Some(a), Some(b)) => a.len() < b.len() && b.starts_with(&a),
            _ => false,
        }
    }

    /// The top-level module a file belongs to (`src/verify/plan.rs` → `verify`).
    fn module_of(&self, file: &str) -> String {
        let rel = repo().join(file);
        let rel = rel.strip_prefix(&self.dir).unwrap();
        let first = rel.iter().next().unwrap().to_string_lossy().into_owned();
        match first.as_str() {
            "main.rs" => first,
            f => f.trim_end_matches(".rs").to_string(),
        }
    }
}

struct Scan<'a> {
    krate: &'a Crate,
    file: &'a str,
    /// The module the visitor is in (the file's, plus inline `mod` blocks).
    modpath: Vec<String>,
    /// How many segments of `modpath` are the file's own.
    file_depth: usize,
    is_main: bool,
    /// Names a `use` bound to a module of this crate (`use crate::verify;` → `verify`).
    aliases: HashMap<String, Vec<String>>,
    out: Vec<Import>,
}

enum Resolved {
    Local(Vec<String>),
    Extern(&'static str),
}

impl Scan<'_> {
    /// A path's segments made absolute in this crate, if it names this crate or a counted
    /// extern crate at all.
    fn resolve(&self, segs: &[String]) -> Option<Resolved> {
        let first = segs.first()?;
        if let Some((_, node)) = self.krate.externs.iter().find(|(name, _)| name == first) {
            return Some(Resolved::Extern(node));
        }
        let mut base: Vec<String>;
        let mut rest = segs;
        match first.as_str() {
            "crate" => {
                base = Vec::new();
                rest = &segs[1..];
            }
            f if self.krate.self_names.contains(&f) && self.is_main => {
                base = Vec::new();
                rest = &segs[1..];
            }
            "self" => {
                base = self.modpath.clone();
                rest = &segs[1..];
            }
            "super" => {
                base = self.modpath.clone();
                while rest.first().is_some_and(|s| s == "super") {
                    base.pop()?;
                    rest = &rest[1..];
                }
            }
            f => {
                if let Some(abs) = self.aliases.get(f) {
                    base = abs.clone();
                    rest = &segs[1..];
                } else {
                    // A child module of the file's module, named without `self::`.
                    let mut child = self.modpath[..self.file_depth].to_vec();
                    child.push(f.to_string());
                    if self.is_main || !self.krate.files.contains_key(&child) {
                        return None;
                    }
                    child.pop();
                    base = child;
                }
            }
        }
        base.extend(rest.iter().filter(|s| *s != "self").cloned());
        Some(Resolved::Local(base))
    }

    fn record(&mut self, segs: &[String], line: usize, binds: Option<String>) {
        let Some(r) = self.resolve(segs) else { return };
        let to_file = match r {
            Resolved::Extern(node) => node.to_string(),
            Resolved::Local(abs) => {
                if let Some(name) = binds {
                    if self.krate.files.contains_key(&abs) {
                        self.aliases.insert(name, abs.clone());
                    }
                }
                match self.krate.file_of(&abs) {
                    Some(f) => f.clone(),
                    None => return,
                }
            }
        };
        if to_file != self.file {
            self.out.push(Import {
                file: self.file.to_string(),
                line,
                to_file,
                path: segs.join("::"),
            });
        }
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                let name = n.ident.to_string();
                let binds = if name == "self" {
                    prefix.last().cloned()
                } else {
                    Some(name.clone())
                };
                prefix.push(name);
                self.record(&prefix.clone(), n.ident.span().start().line, binds);
                prefix.pop();
            }
            syn::UseTree::Rename(r) => {
                prefix.push(r.ident.to_string());
                self.record(
                    &prefix.clone(),
                    r.ident.span().start().line,
                    Some(r.rename.to_string()),
                );
                prefix.pop();
            }
            syn::UseTree::Glob(g) => {
                self.record(&prefix.clone(), g.star_token.spans[0].start().line, None)
            }
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.use_tree(prefix, t);
                }
            }
        }
    }

    /// Paths inside a macro call's tokens: `a::b::c` sequences.
    fn tokens(&mut self, ts: TokenStream) {
        let toks: Vec<TokenTree> = ts.into_iter().collect();
        let mut i = 0;
        while i < toks.len() {
            match &toks[i] {
                TokenTree::Group(g) => self.tokens(g.stream()),
                TokenTree::Ident(id) if !preceded_by_path_sep(&toks, i) => {
                    let line = id.span().start().line;
                    let mut segs = vec![id.to_string()];
                    let mut j = i;
                    while path_sep_at(&toks, j + 1) {
                        match toks.get(j + 3) {
                            Some(TokenTree::Ident(next)) => {
                                segs.push(next.to_string());
                                j += 3;
                            }
                            _ => break,
                        }
                    }
                    if segs.len() > 1 {
                        self.record(&segs, line, None);
                    }
                    i = j;
                }
                _ => {}
            }
            i += 1;
        }
    }
}

fn path_sep_at(toks: &[TokenTree], i: usize) -> bool {
    matches!((toks.get(i), toks.get(i + 1)),
        (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b)))
            if a.as_char() == ':' && b.as_char() == ':' && a.spacing() == proc_macro2::Spacing::Joint)
}

fn preceded_by_path_sep(toks: &[TokenTree], i: usize) -> bool {
    i >= 2 && path_sep_at(toks, i - 2)
}

/// `#[cfg(test)]` or `#[test]`: code the product does not contain.
fn is_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("test")
            || (a.path().is_ident("cfg") && a.parse_args::<syn::Ident>().is_ok_and(|i| i == "test"))
    })
}

impl<'ast> Visit<'ast> for Scan<'_> {
    fn visit_item(&mut self, i: &'ast syn::Item) {
        let attrs = match i {
            syn::Item::Fn(x) => &x.attrs,
            syn::Item::Mod(x) => &x.attrs,
            syn::Item::Use(x) => &x.attrs,
            syn::Item::Impl(x) => &x.attrs,
            syn::Item::Const(x) => &x.attrs,
            syn::Item::Static(x) => &x.attrs,
            syn::Item::Struct(x) => &x.attrs,
            syn::Item::Enum(x) => &x.attrs,
            _ => return syn::visit::visit_item(self, i),
        };
        if !is_test(attrs) {
            syn::visit::visit_item(self, i);
        }
    }

    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        if m.content.is_some() {
            self.modpath.push(m.ident.to_string());
            syn::visit::visit_item_mod(self, m);
            self.modpath.pop();
        }
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        let mut prefix = Vec::new();
        self.use_tree(&mut prefix, &u.tree);
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        let segs: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
        if segs.len() > 1 {
            let line = p.segments[0].ident.span().start().line;
            self.record(&segs, line, None);
        }
        syn::visit::visit_path(self, p);
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        self.tokens(m.tokens.clone());
        syn::visit::visit_macro(self, m);
    }

    fn visit_attribute(&mut self, a: &'ast syn::Attribute) {
        // `#[arg(default_value_t = embedded_server::server::BACKLOG)]`; doc comments are text.
        if let syn::Meta::List(l) = &a.meta {
            self.tokens(l.tokens.clone());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Graphs

/// Edges `from → to` with the first import that makes each.
type Graph = BTreeMap<String, BTreeMap<String, Import>>;

fn graph(imports: &[Import], node: impl Fn(&str) -> String) -> Graph {
    let mut g: Graph = BTreeMap::new();
    for i in imports {
        let (from, to) = (node(&i.file), node(&i.to_file));
        if from != to {
            g.entry(from)
                .or_default()
                .entry(to)
                .or_insert_with(|| i.clone());
        }
    }
    g
}

/// The strongly connected components of more than one node (Tarjan).
fn cycles(g: &Graph) -> Vec<Vec<String>> {
    struct T<'a> {
        g: &'a Graph,
        index: HashMap<&'a str, usize>,
        low: HashMap<&'a str, usize>,
        on: BTreeSet<&'a str>,
        stack: Vec<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a str) {
        let n = t.index.len();
        t.index.insert(v, n);
        t.low.insert(v, n);
        t.stack.push(v);
        t.on.insert(v);
        if let Some(ws) = t.g.get(v) {
            for w in ws.keys() {
                let w = w.as_str();
                if !t.index.contains_key(w) {
                    visit(t, w);
                    let l = t.low[w].min(t.low[v]);
                    t.low.insert(v, l);
                } else if t.on.contains(w) {
                    let l = t.index[w].min(t.low[v]);
                    t.low.insert(v, l);
                }
            }
        }
        if t.low[v] == t.index[v] {
            let mut scc = Vec::new();
            loop {
                let w = t.stack.pop().unwrap();
                t.on.remove(w);
                scc.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if scc.len() > 1 {
                scc.sort();
                t.out.push(scc);
            }
        }
    }
    let mut t = T {
        g,
        index: HashMap::new(),
        low: HashMap::new(),
        on: BTreeSet::new(),
        stack: Vec::new(),
        out: Vec::new(),
    };
    for v in g.keys() {
        if !t.index.contains_key(v.as_str()) {
            visit(&mut t, v);
        }
    }
    t.out.sort();
    t.out
}

/// Each cycle with the imports that close it.
fn describe_cycles(what: &str, g: &Graph) -> Vec<String> {
    cycles(g)
        .into_iter()
        .map(|scc| {
            let mut s = format!("import cycle between {what}: {}", scc.join(", "));
            for a in &scc {
                for (b, i) in g.get(a).into_iter().flatten() {
                    if scc.contains(b) {
                        write!(s, "\n    {a} → {b}: {}:{} `{}`", i.file, i.line, i.path).unwrap();
                    }
                }
            }
            s
        })
        .collect()
}

fn tune_crate() -> Crate {
    Crate::open(
        "src",
        vec!["tune"],
        vec![("embedded_server", "embedded-server")],
    )
}

fn server_crate() -> Crate {
    Crate::open("embedded-server/src", vec!["embedded_server"], vec![])
}

/// What the map forbids in `src/`, and every module the map or the code names that the other
/// lacks.
fn map_violations(krate: &Crate, imports: &[Import], map: &Map) -> Vec<String> {
    let allowed = map.allowed();
    let mut bad = Vec::new();
    let modules: BTreeSet<String> = krate
        .files
        .values()
        .map(|f| krate.module_of(f))
        .filter(|m| m != "lib")
        .collect();
    for m in &modules {
        if !allowed.contains_key(m) {
            bad.push(format!("module `{m}` is not in docs/architecture.toml: add a row saying what it owns and may import"));
        }
    }
    for (m, may) in &allowed {
        if m != "embedded-server" && !modules.contains(m) {
            bad.push(format!(
                "docs/architecture.toml names `{m}`, which is not a module of src/"
            ));
        }
        for t in may {
            if !allowed.contains_key(t) {
                bad.push(format!(
                    "docs/architecture.toml: `{m}` may import `{t}`, which has no row"
                ));
            }
        }
    }
    for m in &map.module {
        for n in m.why.keys() {
            if !m.may_import.contains(n) {
                bad.push(format!("docs/architecture.toml: `{}` says why it imports `{n}`, which it may not import", m.name));
            }
        }
    }
    // The map itself points one way: a cycle in what it allows is a cycle waiting to happen.
    let allowed_graph: Graph = allowed
        .iter()
        .map(|(m, may)| {
            let edges = may
                .iter()
                .map(|t| {
                    let i = Import {
                        file: "docs/architecture.toml".into(),
                        line: 0,
                        to_file: t.clone(),
                        path: String::new(),
                    };
                    (t.clone(), i)
                })
                .collect();
            (m.clone(), edges)
        })
        .collect();
    for scc in cycles(&allowed_graph) {
        bad.push(format!(
            "docs/architecture.toml allows a cycle between {}",
            scc.join(", ")
        ));
    }
    let module = |f: &str| {
        if f == "embedded-server" {
            f.to_string()
        } else {
            krate.module_of(f)
        }
    };
    let g = graph(imports, module);
    for (from, tos) in &g {
        for (to, i) in tos {
            if !allowed.get(from).is_some_and(|may| may.contains(to)) {
                bad.push(format!(
                    "{}:{}: `{from}` imports `{to}` (`{}`), which docs/architecture.toml does not allow \
                     (`{from}` may import: {})",
                    i.file,
                    i.line,
                    i.path,
                    allowed.get(from).map(|m| m.iter().cloned().collect::<Vec<_>>().join(", ")).unwrap_or_default()
                ));
            }
        }
    }
    bad
}

// ---------------------------------------------------------------------------------------------
// The tests

#[test]
fn architecture_imports_follow_the_module_map() {
    let krate = tune_crate();
    let imports = krate.imports();
    assert!(
        imports.len() > 200,
        "the scanner found only {} imports in src/: it is broken",
        imports.len()
    );
    if std::env::var_os("TUNE_ARCH_DUMP").is_some() {
        let module = |f: &str| {
            if f == "embedded-server" {
                f.to_string()
            } else {
                krate.module_of(f)
            }
        };
        for (from, tos) in graph(&imports, module) {
            eprintln!(
                "{from} -> {}",
                tos.keys().cloned().collect::<Vec<_>>().join(", ")
            );
        }
    }
    let bad = map_violations(&krate, &imports, &Map::load());
    assert!(
        bad.is_empty(),
        "{} imports break the module map:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn architecture_has_no_import_cycle() {
    let mut bad = Vec::new();
    for krate in [tune_crate(), server_crate()] {
        let imports = krate.imports();
        let module = |f: &str| {
            if f.ends_with(".rs") {
                krate.module_of(f)
            } else {
                f.to_string()
            }
        };
        bad.extend(describe_cycles("modules", &graph(&imports, module)));
        // A module's root file reaching into its own children (`mod.rs` re-exporting
        // `host::Host`) is how Rust assembles a module, not a cycle: those edges are left out.
        let imports: Vec<Import> = imports
            .into_iter()
            .filter(|i| !krate.is_ancestor(&i.file, &i.to_file))
            .collect();
        bad.extend(describe_cycles("files", &graph(&imports, str::to_string)));
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn architecture_doc_table_is_rendered_from_the_map() {
    let path = repo().join("docs/ARCHITECTURE.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let table = render_table(&Map::load());
    let start = doc.find(TABLE_START).map(|i| i + TABLE_START.len());
    let end = doc.find(TABLE_END);
    let (Some(start), Some(end)) = (start, end) else {
        panic!("docs/ARCHITECTURE.md lacks the markers around the module table:\n{TABLE_START}{table}{TABLE_END}");
    };
    if doc[start..end] != table {
        if std::env::var_os("TUNE_BLESS").is_some() {
            std::fs::write(&path, format!("{}{table}{}", &doc[..start], &doc[end..])).unwrap();
        } else {
            panic!(
                "docs/ARCHITECTURE.md's module table differs from docs/architecture.toml; rerun with \
                 TUNE_BLESS=1 to rewrite it. It should read:\n{table}"
            );
        }
    }
}

/// The checks themselves: a forbidden import and a cycle written in a scratch crate are found.
#[test]
fn architecture_check_catches_a_forbidden_import_and_a_cycle() {
    let dir = tempfile::tempdir_in(repo().join("target")).unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("low")).unwrap();
    std::fs::write(src.join("lib.rs"), "pub mod low;\npub mod high;\n").unwrap();
    std::fs::write(src.join("low/mod.rs"), "pub mod a;\npub mod b;\n").unwrap();
    std::fs::write(src.join("low/a.rs"), "use super::b::B;\npub struct A;\n").unwrap();
    std::fs::write(
        src.join("low/b.rs"),
        "pub struct B;\nfn f() { let _ = format!(\"{:?}\", crate::high::H); let _ = super::a::A; }\n",
    )
    .unwrap();
    std::fs::write(
        src.join("high.rs"),
        "use crate::low::a::A;\npub struct H;\n",
    )
    .unwrap();
    let rel = dir
        .path()
        .join("src")
        .strip_prefix(repo())
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let krate = Crate::open(&rel, vec![], vec![]);
    let imports = krate.imports();
    let map: Map = toml::from_str(
        "[[module]]\nname = \"low/\"\nowns = \"x\"\nmay_import = []\n\
         [[module]]\nname = \"high\"\nowns = \"y\"\nmay_import = [\"low/\"]\n",
    )
    .unwrap();
    let bad = map_violations(&krate, &imports, &map);
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert!(
        bad[0].contains("b.rs:2: `low` imports `high` (`crate::high::H`)"),
        "{bad:?}"
    );
    let files = describe_cycles("files", &graph(&imports, str::to_string));
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(
        files[0].contains("a.rs, ") && files[0].contains("b.rs"),
        "{files:?}"
    );
    let module = |f: &str| krate.module_of(f);
    let mods = describe_cycles("modules", &graph(&imports, module));
    assert!(mods.len() == 1 && mods[0].contains("high, low"), "{mods:?}");
}

// ---------------------------------------------------------------------------------------------
// Flag names: spelled only by the command line

/// Every long flag of tune (`workers`, `pid`, ...), from clap's own definitions.
fn tune_flags() -> BTreeSet<String> {
    let mut flags = BTreeSet::new();
    let mut stack = vec![tune::cli::Cli::command()];
    while let Some(c) = stack.pop() {
        flags.extend(
            c.get_arguments()
                .filter_map(|a| a.get_long())
                .filter(|l| !["help", "version"].contains(l))
                .map(str::to_string),
        );
        stack.extend(c.get_subcommands().cloned());
    }
    flags
}

/// Other programs' commands a fix may print whole, whose flags tune happens to share
/// (`prlimit --pid`): a flag after one of these words in the same literal is theirs.
const OTHER_COMMANDS: [&str; 2] = ["prlimit ", "nsenter "];

/// The tune flags a string literal spells (`--workers` in "run 25 workers (--workers 25)").
fn flags_in(text: &str, flags: &BTreeSet<String>) -> Vec<String> {
    let mut found = Vec::new();
    for (at, _) in text.match_indices("--") {
        let name: String = text[at + 2..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        let before = &text[..at];
        let clause = before.rsplit([';', ',', '(', ':']).next().unwrap_or(before);
        let theirs = OTHER_COMMANDS.iter().any(|c| clause.contains(c));
        if flags.contains(&name) && !theirs && !before.ends_with(|c: char| c.is_alphanumeric()) {
            found.push(format!("--{name}"));
        }
    }
    found
}

/// String literals of the product code (test modules left out), with their lines.
struct Literals(Vec<(usize, String)>);

impl Literals {
    fn tokens(&mut self, ts: TokenStream) {
        for t in ts {
            match t {
                TokenTree::Group(g) => self.tokens(g.stream()),
                TokenTree::Literal(l) => {
                    if let Ok(s) = syn::parse_str::<syn::LitStr>(&l.to_string()) {
                        self.0.push((l.span().start().line, s.value()));
                    }
                }
                _ => {}
            }
        }
    }
}

impl<'ast> Visit<'ast> for Literals {
    fn visit_item(&mut self, i: &'ast syn::Item) {
        let attrs = match i {
            syn::Item::Fn(x) => &x.attrs,
            syn::Item::Mod(x) => &x.attrs,
            syn::Item::Impl(x) => &x.attrs,
            syn::Item::Const(x) => &x.attrs,
            _ => return syn::visit::visit_item(self, i),
        };
        if !is_test(attrs) {
            syn::visit::visit_item(self, i);
        }
    }

    fn visit_lit_str(&mut self, l: &'ast syn::LitStr) {
        self.0.push((l.span().start().line, l.value()));
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        self.tokens(m.tokens.clone());
    }

    // Doc comments are attributes: they may name flags.
    fn visit_attribute(&mut self, _: &'ast syn::Attribute) {}
}

/// The flag literals of the files under `dir` that are not in an allowed directory.
fn flag_literals(dir: &std::path::Path, allowed: &[&str]) -> Vec<String> {
    let flags = tune_flags();
    let mut bad = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
            if allowed.iter().any(|a| rel.starts_with(a)) {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&p).unwrap();
                let ast = syn::parse_file(&text).unwrap_or_else(|e| panic!("{rel}: {e}"));
                let mut lits = Literals(Vec::new());
                lits.visit_file(&ast);
                for (line, s) in lits.0 {
                    for f in flags_in(&s, &flags) {
                        bad.push(format!("{}:{line}: {f} in {s:?}", p.display()));
                    }
                }
            }
        }
    }
    bad.sort();
    bad
}

/// Only the command line spells flags (`cli/` renders a [`tune::values::Suggest`] as
/// `--workers 25`, and `cmd/` resolves flags): a flag literal anywhere else in src/ fails here.
/// `docs/` is the command line's own manual (tune-*(1) and their EXAMPLES, which
/// `man_examples` runs as printed), so it spells command lines as `--help` does.
#[test]
fn architecture_no_flag_literal_below_cmd() {
    assert!(tune_flags().len() > 40, "clap's flags were not read");
    let bad = flag_literals(&repo().join("src"), &["cli/", "cmd/", "main.rs", "docs/"]);
    assert!(
        bad.is_empty(),
        "{} string literals below cmd/ spell a flag of tune; name the input with \
         values::Suggest (docs/ARCHITECTURE.md, \"Fix suggestions\") instead:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

/// The check finds a flag in a format string and leaves another program's alone.
#[test]
fn architecture_flag_check_catches_a_flag_literal() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("cli")).unwrap();
    let code = "fn f(n: u64) -> String { format!(\"run {n} workers (--workers {n})\") }\n\
                fn g() -> &'static str { \"prlimit --pid PID --nofile=N\" }\n\
                #[cfg(test)] mod tests { const T: &str = \"--workers 2\"; }\n";
    std::fs::write(dir.path().join("plan.rs"), code).unwrap();
    std::fs::write(dir.path().join("cli/x.rs"), code).unwrap();
    let bad = flag_literals(dir.path(), &["cli/"]);
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert!(
        bad[0].ends_with(":1: --workers in \"run {n} workers (--workers {n})\""),
        "{bad:?}"
    );
}
