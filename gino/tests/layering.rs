//! The core's modules import only what lies below them (see
//! ARCHITECTURE.md): every `crate::` path in `gino/src` is checked against
//! the layer order here, so an upward import fails the build's tests
//! instead of quietly closing a circle.

use std::collections::HashMap;
use std::path::Path;

/// The core bottom-up. A module may use the modules of lower layers only;
/// modules of one layer do not use each other.
const LAYERS: &[&[&str]] = &[
    &[
        "error", "framing", "sync", "task", "drive", "scoped", "lex", "passfile", "x509",
    ],
    &[
        "budget",
        "service",
        "auth",
        "peer",
        "session_state",
        "binding",
    ],
    &["config", "text", "json"],
    &["tls", "unnamed", "opening"],
    &["wire"],
    &["pool"],
    &["statement"],
    &["engine"],
    &["root"],
    &["context"],
    &["connection"],
    &["transaction"],
    &["cursor"],
    &["api"],
    &["bind"],
    &["executor"],
    &["tenant"],
    &["model", "migrate", "web"],
    &["loader", "bulk", "schema"],
    &["prelude"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

fn src() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// What `lib.rs` re-exports at the crate root, by name: `crate::Engine`
/// names the module `engine`.
fn root_reexports() -> HashMap<String, String> {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    let mut names = HashMap::new();
    for line in lib.lines() {
        let Some(path) = line.trim().strip_prefix("pub use ") else {
            continue;
        };
        let Some((module, items)) = path.trim_end_matches(';').split_once("::") else {
            continue;
        };
        for item in items.trim_matches(|c| c == '{' || c == '}').split(',') {
            names.insert(item.trim().to_owned(), module.to_owned());
        }
    }
    names
}

/// The modules a source file names through `crate::` (or `$crate::`)
/// paths, outside comments and its unit tests (which may use anything).
fn used_modules(text: &str, reexports: &HashMap<String, String>) -> Vec<(String, usize)> {
    let mut used = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    for (number, line) in lines.iter().enumerate() {
        let next = lines.get(number + 1).map(|l| l.trim());
        // Tests (shared with other modules' tests or not) are not layers.
        let tests = |l: &str| l.starts_with("mod tests") || l.starts_with("pub(crate) mod tests");
        if line.trim() == "#[cfg(test)]" && next.is_some_and(tests) {
            break;
        }
        let code = line.split("//").next().unwrap_or("");
        for (at, _) in code.match_indices("crate::") {
            let rest = &code[at + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            assert!(
                !name.is_empty(),
                "line {}: `{}`: write one `use crate::module::...` per module, so the layer check \
                 can read it",
                number + 1,
                line.trim()
            );
            let module = reexports.get(&name).cloned().unwrap_or(name);
            used.push((module, number + 1));
        }
    }
    used
}

/// Every source file with the top-level module it belongs to: `engine.rs`
/// is `engine`, `web/settings.rs` is `web`.
fn source_files() -> Vec<(String, std::path::PathBuf)> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(src()).unwrap() {
        let path = entry.unwrap().path();
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap()
            .to_owned();
        if path.is_dir() {
            for inner in std::fs::read_dir(&path).unwrap() {
                let inner = inner.unwrap().path();
                if inner.extension().is_some_and(|e| e == "rs") {
                    files.push((name.clone(), inner));
                }
            }
        } else if name != "lib" && path.extension().is_some_and(|e| e == "rs") {
            files.push((name, path));
        }
    }
    files
}

#[test]
fn modules_import_only_lower_layers() {
    let reexports = root_reexports();
    let mut violations = Vec::new();
    let mut seen = Vec::new();
    for (module, path) in source_files() {
        let own = layer_of(&module).unwrap_or_else(|| {
            panic!("module `{module}` has no place in LAYERS: add it where it belongs")
        });
        seen.push(module.clone());
        let text = std::fs::read_to_string(&path).unwrap();
        for (used, line) in used_modules(&text, &reexports) {
            if used == module {
                continue;
            }
            match layer_of(&used) {
                // Items of the crate root that are not modules (macros
                // exported by the derive crate, `Result`).
                None => {}
                Some(layer) if layer < own => {}
                Some(_) => violations.push(format!("{}:{line} uses `{used}`", path.display())),
            }
        }
    }
    for layer in LAYERS {
        for module in *layer {
            assert!(
                seen.iter().any(|m| m == module),
                "LAYERS names `{module}`, which is not a module of gino/src"
            );
        }
    }
    assert!(
        violations.is_empty(),
        "imports that do not point down the layers:\n{}",
        violations.join("\n")
    );
}

#[test]
fn the_check_reads_paths_and_reexports() {
    let reexports = root_reexports();
    assert_eq!(reexports.get("Engine").map(String::as_str), Some("engine"));
    let used = used_modules(
        "use crate::pool::RawConn; // crate::api in a comment\nlet e: crate::Engine;\n\
         #[cfg(test)]\nmod tests {\n    use crate::api::Gino;\n}",
        &reexports,
    );
    assert_eq!(
        used,
        [("pool".to_owned(), 1), ("engine".to_owned(), 2)],
        "comments and unit tests are skipped, root re-exports resolve to their module"
    );
}
