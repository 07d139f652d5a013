//! The shape docs/design.md describes, checked on the built binaries: the
//! supervisor never links or maps libpython; only the worker does.

use std::process::Command;

fn ldd(exe: &str) -> String {
    let out = Command::new("ldd").arg(exe).output().expect("ldd runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn pythond_does_not_link_libpython_and_the_worker_does() {
    let sup = ldd(env!("CARGO_BIN_EXE_pythond"));
    assert!(
        !sup.contains("libpython"),
        "pythond links libpython:\n{sup}"
    );
    let worker = ldd(env!("CARGO_BIN_EXE_pythond-worker"));
    assert!(
        worker.contains("libpython"),
        "pythond-worker embeds CPython:\n{worker}"
    );
}

#[test]
fn the_worker_loads_the_libpython_it_was_built_for() {
    // The rpath (build.rs) wins over the loader's default path, where
    // another libpython3.x may live (Debian's, on this machine).
    let worker = ldd(env!("CARGO_BIN_EXE_pythond-worker"));
    let line = worker
        .lines()
        .find(|l| l.contains("libpython"))
        .expect("a libpython line");
    let libdir = Command::new(std::env::var("PYO3_PYTHON").unwrap_or("python3".into()))
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_config_var('LIBDIR'))",
        ])
        .output()
        .expect("the build's python3 runs");
    let libdir = String::from_utf8_lossy(&libdir.stdout).trim().to_owned();
    assert!(
        line.contains(&libdir),
        "loaded from {line:?}, built for {libdir}"
    );
}

/// The top-level modules of its crate that the source `text` uses
/// (`crate::x` paths, also inside `crate::{x, y::z}`), comments left out.
fn uses(text: &str) -> std::collections::BTreeSet<String> {
    let code: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = std::collections::BTreeSet::new();
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut rest = code.as_str();
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Split the group's top level at commas.
            let (mut depth, mut item, mut end) = (1, String::new(), group.len());
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 1 => {
                        out.insert(ident(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                if depth == 0 {
                    end = j;
                    break;
                }
                if depth == 1 {
                    item.push(c);
                }
            }
            out.insert(ident(&item));
            rest = &group[end..];
        } else {
            out.insert(ident(rest));
        }
    }
    out.retain(|m| !m.is_empty() && m != "self");
    out
}

/// Module → the crate's other top-level modules it uses.
fn module_graph(
    src: &std::path::Path,
) -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    fn walk(dir: &std::path::Path, files: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, files);
            } else if p.extension().is_some_and(|x| x == "rs") {
                files.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(src, &mut files);
    let mut g = std::collections::BTreeMap::<String, std::collections::BTreeSet<String>>::new();
    for f in files {
        let rel = f.strip_prefix(src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_owned();
        if ["lib", "main", "bin"].contains(&top.as_str()) {
            continue;
        }
        let mut deps = uses(&std::fs::read_to_string(&f).unwrap());
        deps.remove(&top);
        g.entry(top).or_default().extend(deps);
    }
    let names: std::collections::BTreeSet<String> = g.keys().cloned().collect();
    for deps in g.values_mut() {
        deps.retain(|d| names.contains(d));
    }
    g
}

/// A cycle through `start`, if any (depth-first).
fn cycle_from(
    g: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
    start: &str,
) -> Option<Vec<String>> {
    fn go(
        g: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
        start: &str,
        at: &str,
        path: &mut Vec<String>,
    ) -> bool {
        for next in &g[at] {
            if next == start {
                return true;
            }
            if !path.contains(next) {
                path.push(next.clone());
                if go(g, start, next, path) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start.to_owned()];
    go(g, start, start, &mut path).then_some(path)
}

#[test]
fn no_crate_has_an_import_cycle_between_its_modules() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cycles = Vec::new();
    for src in [
        "src",
        "crates/core/src",
        "crates/python/src",
        "crates/worker/src",
    ] {
        let g = module_graph(&root.join(src));
        assert!(g.len() > 3, "{src}: modules found: {g:?}");
        for m in g.keys() {
            if let Some(c) = cycle_from(&g, m) {
                cycles.push(format!("{src}: {} -> {m}", c.join(" -> ")));
            }
        }
    }
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_cycle_check_sees_a_cycle() {
    let dir = tempfile::tempdir().unwrap();
    for (f, text) in [
        ("a.rs", "use crate::b::X;"),
        ("b.rs", "use crate::{c::{Y, Z}, self};"),
        ("c/mod.rs", "fn f() { crate::a::g() }"),
        ("d.rs", "// crate::a is only mentioned\nuse crate::c;"),
    ] {
        let p = dir.path().join(f);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    let g = module_graph(dir.path());
    assert_eq!(
        cycle_from(&g, "a"),
        Some(vec!["a".into(), "b".into(), "c".into()])
    );
    assert_eq!(cycle_from(&g, "d"), None);
}

/// What build.rs hands lld (`--symbol-ordering-file`): one symbol per line
/// as `scripts/idle-order.sh` writes it, comments starting with `#`. A
/// malformed line is not an error to the linker, only a name it never finds.
#[test]
fn the_idle_code_lists_hold_one_symbol_per_line() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/idle-order");
    for bin in ["pythond", "pythond-worker"] {
        let path = dir.join(format!("{bin}.txt"));
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut seen = std::collections::BTreeSet::new();
        for (n, line) in text.lines().enumerate() {
            if line.starts_with('#') {
                continue;
            }
            let at = format!("{}:{}", path.display(), n + 1);
            assert!(
                !line.is_empty() && !line.contains(char::is_whitespace),
                "{at}: not one symbol: {line:?}"
            );
            // callgrind's recursion marks (`name'2`) are not symbol names.
            assert!(!line.contains('\''), "{at}: {line}");
            assert!(seen.insert(line), "{at}: listed twice: {line}");
        }
        assert!(
            seen.len() > 50,
            "{}: only {} symbols",
            path.display(),
            seen.len()
        );
    }
}
