//! Rebuilding `postgres://` URLs for other databases on the same server.

use std::os::unix::ffi::OsStrExt;

use tokio_postgres::config::{Config, Host};

/// Everything of a server's URL except the database name, so that a URL for
/// any database on that server is `prefix/<dbname>query`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UrlTemplate {
    /// `postgres://user[:password]@host:port[,host:port...]`
    prefix: String,
    /// Empty, or `?` followed by the query parameters.
    query: String,
}

/// The parameters the template regenerates itself from the parsed config;
/// all others are carried over untouched.
const REBUILT_PARAMS: &[&str] = &["host", "port", "user", "password", "dbname"];

impl UrlTemplate {
    /// A plain TCP server without password.
    pub(crate) fn tcp(user: &str, host: &str, port: u16) -> UrlTemplate {
        UrlTemplate {
            prefix: format!("postgres://{}@{}:{port}", encode(user.as_bytes()), host),
            query: String::new(),
        }
    }

    /// Parses `DATABASE_URL` (URL or `key=value` form) and returns the template
    /// and the name of the database it points at.
    pub(crate) fn from_database_url(database_url: &str) -> Result<(UrlTemplate, String), String> {
        let config: Config = database_url
            .parse()
            .map_err(|e| format!("not a valid connection string: {}", crate::describe(&e)))?;

        // Extra parameters (sslmode, application_name, options, ...) are
        // forwarded as written rather than regenerated from `Config`, so
        // nothing the user configured is lost in translation.
        let mut params: Vec<(String, String)> = match strip_scheme(database_url) {
            Some(rest) => url_query_params(rest),
            None => keyword_params(database_url)
                .into_iter()
                .map(|(key, value)| {
                    let segment =
                        format!("{}={}", encode(key.as_bytes()), encode(value.as_bytes()));
                    (key, segment)
                })
                .collect(),
        };
        params.retain(|(key, _)| !REBUILT_PARAMS.contains(&key.as_str()));

        let mut leading = Vec::new();
        let mut userinfo = String::new();
        match (config.get_user(), config.get_password()) {
            (Some(user), password) => {
                userinfo.push_str(&encode(user.as_bytes()));
                if let Some(password) = password {
                    userinfo.push(':');
                    userinfo.push_str(&encode(password));
                }
                userinfo.push('@');
            }
            // `:password@` would set the user to the empty string instead of
            // letting the client default it, so use the query form.
            (None, Some(password)) => leading.push(format!("password={}", encode(password))),
            (None, None) => {}
        }

        let ports = config.get_ports();
        let port_for = |i: usize| ports.get(i).or(ports.first()).copied().unwrap_or(5432);
        let hosts: Vec<Host> = if config.get_hosts().is_empty() {
            // Only `hostaddr` was given: the addresses are the hosts.
            params.retain(|(key, _)| key != "hostaddr");
            config
                .get_hostaddrs()
                .iter()
                .map(|addr| Host::Tcp(addr.to_string()))
                .collect()
        } else {
            config.get_hosts().to_vec()
        };

        let authority = if hosts.iter().all(|host| matches!(host, Host::Tcp(_))) {
            let mut authority = Vec::new();
            for (i, host) in hosts.iter().enumerate() {
                if let Host::Tcp(name) = host {
                    authority.push(if name.contains(':') {
                        format!("[{name}]:{}", port_for(i))
                    } else {
                        format!("{name}:{}", port_for(i))
                    });
                }
            }
            authority.join(",")
        } else {
            // A socket directory cannot go into the authority part; the
            // URL parser accepts it as `?host=/path` (one parameter per host).
            for host in &hosts {
                let encoded = match host {
                    Host::Tcp(name) => encode(name.as_bytes()),
                    Host::Unix(path) => encode(path.as_os_str().as_bytes()),
                };
                leading.push(format!("host={encoded}"));
            }
            let ports: Vec<String> = (0..hosts.len()).map(|i| port_for(i).to_string()).collect();
            leading.push(format!("port={}", ports.join(",")));
            String::new()
        };

        let all_params: Vec<String> = leading
            .into_iter()
            .chain(params.into_iter().map(|(_, segment)| segment))
            .collect();
        let query = if all_params.is_empty() {
            String::new()
        } else {
            format!("?{}", all_params.join("&"))
        };

        // Like libpq, the server defaults the database to the user name.
        let database = config
            .get_dbname()
            .or(config.get_user())
            .map(str::to_owned)
            .or_else(|| std::env::var("USER").ok())
            .unwrap_or_else(|| "postgres".to_owned());

        Ok((
            UrlTemplate {
                prefix: format!("postgres://{userinfo}{authority}"),
                query,
            },
            database,
        ))
    }

    pub(crate) fn for_database(&self, database: &str) -> String {
        format!(
            "{}/{}{}",
            self.prefix,
            encode(database.as_bytes()),
            self.query
        )
    }
}

fn strip_scheme(s: &str) -> Option<&str> {
    s.strip_prefix("postgres://")
        .or_else(|| s.strip_prefix("postgresql://"))
}

/// `(key, raw segment)` for each query parameter of a URL without scheme,
/// split the way tokio-postgres splits it.
fn url_query_params(rest: &str) -> Vec<(String, String)> {
    // tokio-postgres takes everything up to the first `@` as credentials, so
    // a `?` inside a password is not the start of the query.
    let after_credentials = rest.split_once('@').map_or(rest, |(_, tail)| tail);
    let Some((_, query)) = after_credentials.split_once('?') else {
        return Vec::new();
    };
    query
        .split('&')
        .filter(|segment| !segment.is_empty())
        .map(|segment| {
            let key = segment.split_once('=').map_or(segment, |(key, _)| key);
            (key.to_owned(), segment.to_owned())
        })
        .collect()
}

/// `key = value` pairs of a libpq keyword/value connection string, unquoted
/// and unescaped. The string has already been validated by tokio-postgres.
fn keyword_params(s: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| !c.is_whitespace() && *c != '=') {
            key.push(c);
        }
        if key.is_empty() {
            break;
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next_if_eq(&'=').is_none() {
            break;
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let quoted = chars.next_if_eq(&'\'').is_some();
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => value.extend(chars.next()),
                '\'' if quoted => break,
                c if !quoted && c.is_whitespace() => break,
                c => value.push(c),
            }
        }
        pairs.push((key, value));
    }
    pairs
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub(crate) fn encode(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xF)]));
        }
    }
    out
}

/// The URL with any password in the user-info part replaced by `***`, for
/// messages that may end up in CI logs.
pub(crate) fn redact(url: &str) -> String {
    let Some(rest) = strip_scheme(url) else {
        return url.to_owned();
    };
    let scheme = &url[..url.len() - rest.len()];
    let Some((userinfo, tail)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}{user}:***@{tail}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rebuilding must not change how tokio-postgres connects, apart from
    /// the database name.
    fn assert_round_trip(database_url: &str) -> String {
        let (template, _) = UrlTemplate::from_database_url(database_url).unwrap();
        let url = template.for_database("other db/ü");
        let mut expected: Config = database_url.parse().unwrap();
        expected.dbname("other db/ü");
        // The rebuilt URL spells out the default port.
        if expected.get_ports().is_empty() {
            for _ in expected.get_hosts().to_vec() {
                expected.port(5432);
            }
        }
        let actual: Config = url.parse().unwrap();
        assert_eq!(actual, expected, "{database_url} -> {url}");
        url
    }

    #[test]
    fn url_form_keeps_credentials_host_port_and_query() {
        let url = assert_round_trip(
            "postgresql://alice:s%40c:r%2Ft@db.example:6543/app?sslmode=disable&application_name=my%20app",
        );
        assert_eq!(
            url,
            "postgres://alice:s%40c%3Ar%2Ft@db.example:6543/other%20db%2F%C3%BC\
             ?sslmode=disable&application_name=my%20app"
        );
        let (_, database) = UrlTemplate::from_database_url("postgres://alice@h/app").unwrap();
        assert_eq!(database, "app");
    }

    #[test]
    fn default_port_and_database() {
        let (template, database) =
            UrlTemplate::from_database_url("postgres://bob@localhost").unwrap();
        assert_eq!(database, "bob");
        assert_eq!(
            template.for_database("x"),
            "postgres://bob@localhost:5432/x"
        );
    }

    #[test]
    fn keyword_form() {
        let url = assert_round_trip(
            r"host=db port=5433 user=carol password='it\'s a\\b' dbname=app options='-c search_path=a'",
        );
        assert!(url.starts_with("postgres://carol:"), "{url}");
        assert!(url.contains("@db:5433/"), "{url}");
        assert!(url.ends_with("?options=-c%20search_path%3Da"), "{url}");
    }

    #[test]
    fn unix_socket_host_goes_into_the_query() {
        let url = assert_round_trip("host=/var/run/postgresql user=postgres dbname=app");
        assert_eq!(
            url,
            "postgres://postgres@/other%20db%2F%C3%BC?host=%2Fvar%2Frun%2Fpostgresql&port=5432"
        );
        assert_round_trip("postgres://postgres@/app?host=/tmp&port=5444&sslmode=disable");
    }

    #[test]
    fn ipv6_and_multiple_hosts() {
        let url = assert_round_trip("postgres://u@[::1]:5433,other:5434/x");
        assert!(
            url.starts_with("postgres://u@[::1]:5433,other:5434/"),
            "{url}"
        );
    }

    #[test]
    fn password_without_user() {
        assert_round_trip("host=h password=secret");
    }

    #[test]
    fn hostaddr_only() {
        let (template, _) = UrlTemplate::from_database_url("hostaddr=127.0.0.1 user=u").unwrap();
        assert_eq!(template.for_database("d"), "postgres://u@127.0.0.1:5432/d");
    }

    #[test]
    fn invalid_urls_are_rejected() {
        assert!(UrlTemplate::from_database_url("postgres://u@h/d?nonsense=1").is_err());
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact("postgres://u:pw@h:1/d"), "postgres://u:***@h:1/d");
        assert_eq!(redact("postgres://u@h:1/d"), "postgres://u@h:1/d");
    }
}
