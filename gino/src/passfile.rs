//! libpq's password file (`~/.pgpass`): where it is, and the password it
//! holds for a host, port, database and user.
//!
//! A connection whose URL and environment give no password looks it up
//! here when it opens, as libpq, asyncpg and sqlx do. Each line is
//! `hostname:port:database:username:password`; a field of `*` alone
//! matches anything, `\` escapes a `:` or a `\`, lines starting with `#`
//! are comments, and the first matching line wins. A file that group or
//! others can read is ignored with a warning, as libpq ignores it. The
//! file is read again for every new connection, so a changed password
//! takes effect without a restart.
//!
//! Uses: nothing of gino.

use std::path::{Path, PathBuf};

use tokio_postgres::config::Host;

/// Where to look for passwords, and for whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PassFile {
    pub(crate) path: PathBuf,
    /// The user the connection logs in as.
    user: String,
    /// The database it opens (the server's default is the user's name).
    database: String,
}

impl PassFile {
    /// The file `given` (the `passfile` parameter, else `PGPASSFILE`),
    /// else `$HOME/.pgpass`; `None` when there is no home to find it in.
    pub(crate) fn locate(
        given: Option<String>,
        env: &dyn Fn(&str) -> Option<String>,
        user: &str,
        database: Option<&str>,
    ) -> Option<PassFile> {
        let path = match given {
            Some(path) => PathBuf::from(path),
            None => PathBuf::from(env("HOME")?).join(".pgpass"),
        };
        Some(PassFile {
            path,
            user: user.to_owned(),
            database: database.unwrap_or(user).to_owned(),
        })
    }

    /// The file's lines, read now; empty (after a warning where the reason
    /// is worth one) when it is missing, unreadable or too open.
    pub(crate) fn read(&self) -> Entries {
        Entries {
            text: read_private(&self.path).unwrap_or_default(),
        }
    }

    /// The password for this user and database at `host:port`, from the
    /// first line of `entries` that matches.
    pub(crate) fn password(&self, entries: &Entries, host: &Host, port: u16) -> Option<String> {
        let port = port.to_string();
        let (name, unix) = match host {
            Host::Tcp(name) => (name.clone(), false),
            Host::Unix(dir) => (dir.to_string_lossy().into_owned(), true),
        };
        entries.lines().find_map(|fields| {
            let [h, p, d, u, password] = fields;
            // A Unix socket is `localhost` too, as asyncpg has it (libpq
            // says so of its default socket directory).
            let host_matches = h.matches(&name) || (unix && h.matches("localhost"));
            (host_matches && p.matches(&port) && d.matches(&self.database) && u.matches(&self.user))
                .then(|| password.unescaped())
        })
    }
}

/// The text of a file only its owner can read: libpq's rule for a file
/// that holds passwords.
fn read_private(path: &Path) -> Option<String> {
    let metadata = std::fs::metadata(path).ok()?;
    if !metadata.is_file() {
        tracing::warn!(target: "gino", "password file {} is not a plain file: ignored", path.display());
        return None;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if metadata.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                target: "gino",
                "password file {} has group or world access: ignored; make it readable by its \
                 owner only (chmod 600)",
                path.display()
            );
            return None;
        }
    }
    match std::fs::read_to_string(path) {
        Ok(text) => Some(text),
        Err(e) => {
            tracing::warn!(target: "gino", "cannot read password file {}: {e}", path.display());
            None
        }
    }
}

/// The lines of a password file.
#[derive(Debug, Default)]
pub(crate) struct Entries {
    text: String,
}

impl Entries {
    /// Each entry's five fields; comments and lines with fewer fields are
    /// skipped, as libpq skips them.
    fn lines(&self) -> impl Iterator<Item = [Field<'_>; 5]> {
        self.text.lines().filter_map(|line| {
            if line.starts_with('#') {
                return None;
            }
            let mut fields = split(line);
            let entry = [
                fields.next()?,
                fields.next()?,
                fields.next()?,
                fields.next()?,
                // The password is the rest of the line, colons and all.
                Field(fields.rest),
            ];
            Some(entry)
        })
    }
}

/// The first four fields of `line`, split at colons not escaped by `\`.
fn split(line: &str) -> Split<'_> {
    Split { rest: line }
}

struct Split<'a> {
    rest: &'a str,
}

impl<'a> Iterator for Split<'a> {
    type Item = Field<'a>;

    fn next(&mut self) -> Option<Field<'a>> {
        let mut escaped = false;
        for (i, c) in self.rest.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                ':' => {
                    let field = &self.rest[..i];
                    self.rest = &self.rest[i + 1..];
                    return Some(Field(field));
                }
                _ => {}
            }
        }
        None
    }
}

/// One field of a line, still escaped.
#[derive(Debug, Clone, Copy)]
struct Field<'a>(&'a str);

impl Field<'_> {
    fn matches(self, value: &str) -> bool {
        self.0 == "*" || self.unescaped() == value
    }

    fn unescaped(self) -> String {
        let mut out = String::with_capacity(self.0.len());
        let mut chars = self.0.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => out.extend(chars.next()),
                c => out.push(c),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(user: &str, database: Option<&str>) -> PassFile {
        PassFile::locate(Some("/unused".into()), &|_| None, user, database).unwrap()
    }

    fn entries(text: &str) -> Entries {
        Entries { text: text.into() }
    }

    fn tcp(name: &str) -> Host {
        Host::Tcp(name.into())
    }

    #[test]
    fn the_first_matching_line_wins() {
        let lines = entries(
            "# host:port:database:user:password\n\
             db1:5432:shop:app:first\n\
             db1:5432:shop:app:second\n\
             *:*:*:app:anywhere\n",
        );
        let app = file("app", Some("shop"));
        assert_eq!(
            app.password(&lines, &tcp("db1"), 5432).as_deref(),
            Some("first")
        );
        assert_eq!(
            app.password(&lines, &tcp("db1"), 6432).as_deref(),
            Some("anywhere")
        );
        assert_eq!(
            app.password(&lines, &tcp("db2"), 5432).as_deref(),
            Some("anywhere")
        );
        assert_eq!(
            file("other", Some("shop")).password(&lines, &tcp("db1"), 5432),
            None
        );
    }

    #[test]
    fn escapes_colons_and_backslashes_and_keeps_the_rest_of_the_line() {
        let lines = entries("h\\:1:5432:d:u\\\\x:pa\\:ss:wo\\\\rd\r\n");
        let password = file("u\\x", Some("d")).password(&lines, &tcp("h:1"), 5432);
        assert_eq!(password.as_deref(), Some("pa:ss:wo\\rd"));
    }

    #[test]
    fn the_database_defaults_to_the_user_s_name() {
        let lines = entries("*:*:app:app:mine\n*:*:*:*:fallback\n");
        assert_eq!(
            file("app", None).password(&lines, &tcp("h"), 1).as_deref(),
            Some("mine")
        );
        let other = file("app", Some("postgres")).password(&lines, &tcp("h"), 1);
        assert_eq!(other.as_deref(), Some("fallback"));
    }

    #[test]
    fn a_unix_socket_matches_its_directory_or_localhost() {
        let lines = entries("/tmp/sock:5432:*:*:by-path\nlocalhost:6000:*:*:by-name\n");
        let app = file("app", None);
        let socket = |dir: &str| Host::Unix(dir.into());
        assert_eq!(
            app.password(&lines, &socket("/tmp/sock"), 5432).as_deref(),
            Some("by-path")
        );
        assert_eq!(
            app.password(&lines, &socket("/run/pg"), 6000).as_deref(),
            Some("by-name")
        );
        assert_eq!(app.password(&lines, &tcp("/tmp/sock"), 6000), None);
    }

    #[test]
    fn short_lines_and_a_literal_star_are_not_wildcards_elsewhere() {
        let lines = entries("db:5432:only-four\n\n*x:*:*:*:no\n*:*:*:*:*\n");
        assert_eq!(
            file("u", None)
                .password(&lines, &tcp("db"), 5432)
                .as_deref(),
            Some("*")
        );
    }

    #[test]
    fn the_file_is_the_given_one_else_the_homes() {
        // `given` is the parameter, else PGPASSFILE (settled by the caller).
        let at = |given: Option<&str>, env: &dyn Fn(&str) -> Option<String>| {
            PassFile::locate(given.map(str::to_owned), env, "u", None).map(|f| f.path)
        };
        let home = |name: &str| (name == "HOME").then(|| "/home/app".to_owned());
        assert_eq!(at(Some("/x"), &home), Some(PathBuf::from("/x")));
        assert_eq!(at(None, &home), Some(PathBuf::from("/home/app/.pgpass")));
        assert_eq!(at(None, &|_| None), None);
    }

    #[cfg(unix)]
    #[test]
    fn a_file_others_can_read_is_ignored() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("gino-pgpass-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pgpass");
        std::fs::write(&path, "*:*:*:*:secret\n").unwrap();
        let at = PassFile::locate(Some(path.to_string_lossy().into()), &|_| None, "u", None);
        let at = at.unwrap();
        let set = |mode| std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode));
        set(0o600).unwrap();
        assert_eq!(
            at.password(&at.read(), &tcp("h"), 1).as_deref(),
            Some("secret")
        );
        set(0o644).unwrap();
        assert_eq!(at.password(&at.read(), &tcp("h"), 1), None);
        std::fs::remove_dir_all(&dir).unwrap();
        let gone = at.read();
        assert_eq!(at.password(&gone, &tcp("h"), 1), None);
    }
}
