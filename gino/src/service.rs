//! libpq's connection service file (`pg_service.conf`): named sets of
//! connection parameters, so that a URL can say `?service=shop` (or the
//! environment `PGSERVICE=shop`) instead of spelling them out.
//!
//! The user's file (the URL's `servicefile`, else `PGSERVICEFILE`, else
//! `~/.pg_service.conf`) is searched first, then the system's
//! (`PGSYSCONFDIR/pg_service.conf`, else
//! `/etc/postgresql-common/pg_service.conf`, where Debian's libpq looks).
//! A service is a `[name]` section of `key=value` lines; `#` starts a
//! comment line. What the URL gives wins over the service, and
//! the service wins over the `PG*` environment variables, as in libpq.
//!
//! Uses: `error`.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Where the system's service file is when `PGSYSCONFDIR` does not say.
const SYSTEM_DIR: &str = "/etc/postgresql-common";

/// The parameters of the service `name`, in the order the file gives
/// them; an error when no file defines it. `file` is the URL's
/// `servicefile` (libpq 18), which comes before `PGSERVICEFILE`.
pub(crate) fn lookup(
    name: &str,
    file: Option<String>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<(String, String)>> {
    let user = match file.or_else(|| env("PGSERVICEFILE")) {
        Some(path) => Some(PathBuf::from(path)),
        None => env("HOME").map(|home| PathBuf::from(home).join(".pg_service.conf")),
    };
    let system = PathBuf::from(env("PGSYSCONFDIR").unwrap_or_else(|| SYSTEM_DIR.to_owned()))
        .join("pg_service.conf");
    let mut searched = Vec::new();
    for path in user.into_iter().chain([system]) {
        searched.push(path.display().to_string());
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(Error::Configuration(format!(
                    "cannot read the service file {}: {e}",
                    path.display()
                )));
            }
        };
        if let Some(params) = section(&text, name, &path)? {
            return Ok(params);
        }
    }
    Err(Error::Configuration(format!(
        "service `{name}` is not defined: add a [{name}] section to a service file (looked in {})",
        searched.join(" and ")
    )))
}

/// The `key=value` lines of section `[name]` of a service file's `text`;
/// `None` when the file has no such section.
fn section(text: &str, name: &str, path: &Path) -> Result<Option<Vec<(String, String)>>> {
    // Filled from the section's header on; the next header ends it.
    let mut found: Option<Vec<(String, String)>> = None;
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(section) = line.strip_prefix('[') {
            if found.is_some() {
                break;
            }
            // As libpq reads a header: the name and `]`, and whatever
            // follows (`[shop] # comment`).
            if section
                .strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(']'))
            {
                found = Some(Vec::new());
            }
            continue;
        }
        let Some(params) = found.as_mut() else {
            continue;
        };
        let syntax = |what: &str| {
            Error::Configuration(format!(
                "{what} in service file {}, line {}",
                path.display(),
                number + 1
            ))
        };
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| syntax("a line that is not key=value"))?;
        let key = key.trim();
        if key == "service" {
            return Err(syntax(
                "a service within a service (libpq does not nest them either)",
            ));
        }
        // libpq keeps a key's first value in the section.
        if !params.iter().any(|(given, _)| given == key) {
            params.push((key.to_owned(), value.trim().to_owned()));
        }
    }
    Ok(found)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A directory of service files for one test, removed when dropped.
    pub(crate) struct Files(pub(crate) PathBuf);

    impl Files {
        pub(crate) fn new(name: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("gino-service-{}-{name}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            Files(dir)
        }

        pub(crate) fn write(&self, name: &str, text: &str) -> String {
            let path = self.0.join(name);
            std::fs::write(&path, text).unwrap();
            path.display().to_string()
        }
    }

    impl Drop for Files {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn params(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_section_runs_to_the_next_header() {
        let text = "# services\n[other]\nhost=x\n\n  [shop]  \n host = db1 \n# a comment\n\
                    options=-c search_path=app\n[after]\nhost=y\n[shop]\nhost=z\n";
        let found = section(text, "shop", Path::new("f")).unwrap();
        assert_eq!(
            found,
            Some(params(&[
                ("host", "db1"),
                ("options", "-c search_path=app")
            ]))
        );
        assert_eq!(section(text, "none", Path::new("f")).unwrap(), None);
        assert_eq!(
            section("[empty]\n", "empty", Path::new("f")).unwrap(),
            Some(vec![])
        );
    }

    #[test]
    fn a_key_keeps_its_first_value_and_a_header_may_have_a_comment() {
        let text = "[shop] # the shop's database\nhost=a\nport=5433\nhost=b\n";
        let found = section(text, "shop", Path::new("s.conf")).unwrap();
        assert_eq!(found, Some(params(&[("host", "a"), ("port", "5433")])));
        let other = section("[shopping]\nhost=a\n", "shop", Path::new("s.conf")).unwrap();
        assert_eq!(other, None);
    }

    #[test]
    fn a_malformed_line_or_a_nested_service_is_an_error_naming_the_line() {
        let bad = section("[shop]\nhost\n", "shop", Path::new("/etc/s.conf")).unwrap_err();
        assert!(bad.to_string().contains("/etc/s.conf, line 2"), "{bad}");
        let nested = section("[shop]\nservice=other\n", "shop", Path::new("f")).unwrap_err();
        assert!(
            nested.to_string().contains("service within a service"),
            "{nested}"
        );
        // A malformed line of another section is not this one's concern.
        let other = section("[other]\nhost\n[shop]\nhost=h\n", "shop", Path::new("f"));
        assert_eq!(other.unwrap(), Some(params(&[("host", "h")])));
    }

    #[test]
    fn the_user_s_file_comes_before_the_system_s() {
        let files = Files::new("order");
        let user = files.write("user.conf", "[shop]\nhost=mine\n");
        files.write(
            "pg_service.conf",
            "[shop]\nhost=system\n[billing]\nhost=b\n",
        );
        let dir = files.0.display().to_string();
        let env = |name: &str| match name {
            "PGSERVICEFILE" => Some(user.clone()),
            "PGSYSCONFDIR" => Some(dir.clone()),
            _ => None,
        };
        assert_eq!(
            lookup("shop", None, &env).unwrap(),
            params(&[("host", "mine")])
        );
        assert_eq!(
            lookup("billing", None, &env).unwrap(),
            params(&[("host", "b")])
        );
        // The URL's servicefile comes before PGSERVICEFILE.
        let given = files.write("given.conf", "[shop]\nhost=given\n");
        let shop = lookup("shop", Some(given), &env).unwrap();
        assert_eq!(shop, params(&[("host", "given")]));
        let missing = lookup("nowhere", None, &env).unwrap_err().to_string();
        assert!(
            missing.contains("service `nowhere` is not defined"),
            "{missing}"
        );
        assert!(
            missing.contains("user.conf") && missing.contains(&dir),
            "{missing}"
        );
        // ~/.pg_service.conf when PGSERVICEFILE is not set.
        files.write(".pg_service.conf", "[home]\nport=6000\n");
        let home = |name: &str| (name == "HOME").then(|| dir.clone());
        assert_eq!(
            lookup("home", None, &home).unwrap(),
            params(&[("port", "6000")])
        );
    }
}
