//! `embed_migrations!`: diesel-style migration directories compiled into the
//! binary.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::{LitStr, Result};

/// One `<version>_<name>/` directory.
struct Found {
    /// diesel's version: the name up to its first `_`, dashes removed.
    version: String,
    name: String,
    up: String,
    down: Option<String>,
    in_transaction: bool,
    /// Its `metadata.toml`, if it has one.
    metadata: Option<String>,
}

/// Whether a migration's `metadata.toml` says `run_in_transaction =
/// false`, its one setting in diesel, read as TOML reads a line: any
/// whitespace around the `=`, a `#` comment after the value, `\r\n` line
/// ends. (A full TOML parser is not worth a dependency for one key.)
fn runs_outside_a_transaction(metadata: &str) -> bool {
    metadata.lines().any(|line| {
        let line = line.split('#').next().unwrap_or_default();
        let Some((key, value)) = line.split_once('=') else {
            return false;
        };
        key.trim() == "run_in_transaction" && value.trim() == "false"
    })
}

pub fn expand(dir: Option<LitStr>) -> Result<TokenStream> {
    let relative = dir
        .as_ref()
        .map_or_else(|| "migrations".to_owned(), LitStr::value);
    let manifest = std::env::var("CARGO_MANIFEST_DIR")
        .map_err(|_| syn::Error::new(Span::call_site(), "CARGO_MANIFEST_DIR is not set"))?;
    let root = std::path::Path::new(&manifest).join(&relative);
    let error = |message: String| syn::Error::new(Span::call_site(), message);
    let entries = std::fs::read_dir(&root).map_err(|e| {
        error(format!(
            "cannot read the migrations directory {}: {e} (paths are relative to the crate's \
             Cargo.toml)",
            root.display()
        ))
    })?;
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| error(e.to_string()))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if !path.is_dir() || name.starts_with('.') {
            continue;
        }
        let up = path.join("up.sql");
        if !up.is_file() {
            return Err(error(format!("migration {name} has no up.sql")));
        }
        let down = path.join("down.sql");
        let metadata_path = path.join("metadata.toml");
        let metadata = match std::fs::read(&metadata_path) {
            Ok(bytes) => Some(
                String::from_utf8(bytes)
                    .map_err(|_| error(format!("migration {name}: metadata.toml is not UTF-8")))?,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(error(format!("migration {name}: metadata.toml: {e}"))),
        };
        let in_transaction = !metadata.as_deref().is_some_and(runs_outside_a_transaction);
        found.push(Found {
            version: name.split('_').next().unwrap_or(&name).replace('-', ""),
            name,
            up: up.display().to_string(),
            down: down.is_file().then(|| down.display().to_string()),
            in_transaction,
            metadata: metadata
                .is_some()
                .then(|| metadata_path.display().to_string()),
        });
    }
    // In version order, as diesel's harness runs them: a name's dashes
    // would otherwise sort `2024-02-01-000000_b` before `20240131000000_a`.
    found.sort_by(|a, b| (&a.version, &a.name).cmp(&(&b.version, &b.name)));
    if let Some(pair) = found
        .windows(2)
        .find(|pair| pair[0].version == pair[1].version)
    {
        return Err(error(format!(
            "migrations {} and {} have the same version {}: one version is recorded once, so \
             the second would never run; rename one of them",
            pair[0].name, pair[1].name, pair[0].version
        )));
    }
    let migrations = found.iter().map(|m| {
        let (name, version) = (&m.name, &m.version);
        let up = &m.up;
        let down = match &m.down {
            Some(path) => quote!(::core::option::Option::Some(::core::include_str!(#path))),
            None => quote!(::core::option::Option::None),
        };
        let in_transaction = m.in_transaction;
        quote! {
            ::gino::migrate::Migration {
                version: #version,
                name: #name,
                up: ::core::include_str!(#up),
                down: #down,
                run_in_transaction: #in_transaction,
            }
        }
    });
    // Read by the compiler too, so that a changed setting rebuilds.
    let tracked = found.iter().filter_map(|m| m.metadata.as_ref());
    Ok(quote! {{
        #(const _: &[u8] = ::core::include_bytes!(#tracked);)*
        ::gino::migrate::EmbeddedMigrations::new(&[#(#migrations),*])
    }})
}

#[cfg(test)]
mod tests {
    use super::runs_outside_a_transaction;

    #[test]
    fn metadata_is_read_as_toml_reads_its_line() {
        for outside in [
            "run_in_transaction = false",
            "run_in_transaction=false\r\n",
            "run_in_transaction\t=\tfalse",
            "run_in_transaction = false # CREATE INDEX CONCURRENTLY needs it",
            "# no transaction\nrun_in_transaction = false\n",
        ] {
            assert!(runs_outside_a_transaction(outside), "{outside:?}");
        }
        for inside in [
            "",
            "run_in_transaction = true",
            "# run_in_transaction = false",
            "not_run_in_transaction = false",
        ] {
            assert!(!runs_outside_a_transaction(inside), "{inside:?}");
        }
    }
}
