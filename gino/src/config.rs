//! Database URLs and engine options (GINO's `make_url` and `create_engine`
//! keyword arguments).
//!
//! Uses: `error` only.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::error::{Error, Result};

/// Transaction isolation levels of PostgreSQL.
///
/// Parsed case-insensitively from `"read committed"`, `"repeatable_read"`,
/// `"SERIALIZABLE"` and so on.
///
/// ```
/// use gino::IsolationLevel;
/// let level: IsolationLevel = "repeatable read".parse().unwrap();
/// assert_eq!(level, IsolationLevel::RepeatableRead);
/// assert!("eventual".parse::<IsolationLevel>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IsolationLevel {
    /// Behaves as `ReadCommitted` in PostgreSQL.
    ReadUncommitted,
    /// PostgreSQL's default.
    ReadCommitted,
    /// Snapshot isolation.
    RepeatableRead,
    /// Full serializability; be ready to retry on SQLSTATE 40001.
    Serializable,
}

impl IsolationLevel {
    pub(crate) fn as_sql(self) -> &'static str {
        match self {
            IsolationLevel::ReadUncommitted => "READ UNCOMMITTED",
            IsolationLevel::ReadCommitted => "READ COMMITTED",
            IsolationLevel::RepeatableRead => "REPEATABLE READ",
            IsolationLevel::Serializable => "SERIALIZABLE",
        }
    }
}

impl FromStr for IsolationLevel {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let normalized = s.trim().to_ascii_lowercase().replace(['_', '-'], " ");
        match normalized.as_str() {
            "read uncommitted" => Ok(IsolationLevel::ReadUncommitted),
            "read committed" => Ok(IsolationLevel::ReadCommitted),
            "repeatable read" => Ok(IsolationLevel::RepeatableRead),
            "serializable" => Ok(IsolationLevel::Serializable),
            _ => Err(Error::Configuration(format!(
                "unknown isolation level `{s}`: use one of read_uncommitted, read_committed, \
                 repeatable_read, serializable"
            ))),
        }
    }
}

impl fmt::Display for IsolationLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_sql())
    }
}

/// Options of an [`Engine`](crate::Engine), set in code or as query
/// parameters of the database URL.
///
/// Every option can also be given in the URL (`?max_size=20&echo=true`); a
/// value in the URL takes precedence, so deployment configuration wins over
/// code defaults. An unknown parameter is a configuration error.
///
/// | option | URL parameter | default |
/// | --- | --- | --- |
/// | [`min_size`](Self::min_size) | `min_size` / `pool_min_size` | 1 |
/// | [`max_size`](Self::max_size) | `max_size` / `pool_max_size` | 10 |
/// | [`acquire_timeout`](Self::acquire_timeout) | `acquire_timeout` | none (wait) |
/// | [`echo`](Self::echo) | `echo` | false |
/// | [`statement_timeout`](Self::statement_timeout) | `statement_timeout` | server's |
/// | [`timeout`](Self::timeout) | `timeout` | none |
/// | [`application_name`](Self::application_name) | `application_name` | none |
/// | [`isolation_level`](Self::isolation_level) | `isolation_level` | server's |
/// | [`pool`](Self::pool) | `pool` | true |
/// | [`connect_timeout`](Self::connect_timeout) | `connect_timeout` | none |
/// | [`statement_cache`](Self::statement_cache) | `statement_cache` | true |
///
/// Durations in the URL are seconds (`2.5`) or carry a unit (`500ms`, `3s`, `1m`).
///
/// ```
/// use std::time::Duration;
/// let options = gino::EngineOptions::new()
///     .max_size(20)
///     .acquire_timeout(Duration::from_secs(5))
///     .echo(true);
/// # let _ = options;
/// ```
#[derive(Debug, Clone)]
pub struct EngineOptions {
    pub(crate) min_size: usize,
    pub(crate) max_size: usize,
    pub(crate) acquire_timeout: Option<Duration>,
    pub(crate) echo: bool,
    pub(crate) statement_timeout: Option<Duration>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) application_name: Option<String>,
    pub(crate) isolation_level: Option<IsolationLevel>,
    pub(crate) pooled: bool,
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) statement_cache: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            min_size: 1,
            max_size: 10,
            acquire_timeout: None,
            echo: false,
            statement_timeout: None,
            timeout: None,
            application_name: None,
            isolation_level: None,
            pooled: true,
            connect_timeout: None,
            statement_cache: true,
        }
    }
}

impl EngineOptions {
    /// The defaults (see the table above).
    pub fn new() -> Self {
        Self::default()
    }

    /// Connections opened when the engine is created (`0` opens none, so an
    /// engine for an unreachable server can still be created).
    pub fn min_size(mut self, size: usize) -> Self {
        self.min_size = size;
        self
    }

    /// Most connections the pool holds at once.
    pub fn max_size(mut self, size: usize) -> Self {
        self.max_size = size;
        self
    }

    /// Longest wait for a free pooled connection before
    /// [`Error::PoolTimeout`]; per-acquire timeouts override it.
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = Some(timeout);
        self
    }

    /// Log every statement with its bind values and duration through
    /// `tracing` (target `gino::echo`, level INFO).
    pub fn echo(mut self, echo: bool) -> Self {
        self.echo = echo;
        self
    }

    /// PostgreSQL's `statement_timeout` for every connection of the engine,
    /// enforced by the server.
    pub fn statement_timeout(mut self, timeout: Duration) -> Self {
        self.statement_timeout = Some(timeout);
        self
    }

    /// Default client-side timeout of every query run through the engine;
    /// a query that exceeds it is cancelled on the server and fails with
    /// [`Error::QueryTimeout`]. `.timeout(..)` on a query overrides it.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// `application_name` reported to the server (visible in `pg_stat_activity`).
    pub fn application_name(mut self, name: impl Into<String>) -> Self {
        self.application_name = Some(name.into());
        self
    }

    /// Isolation level of every transaction that does not choose its own.
    pub fn isolation_level(mut self, level: IsolationLevel) -> Self {
        self.isolation_level = Some(level);
        self
    }

    /// `false` disables pooling: every acquire opens a new connection and
    /// release closes it.
    pub fn pool(mut self, pooled: bool) -> Self {
        self.pooled = pooled;
        self
    }

    /// Longest wait for the server to accept a new connection.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// `false` turns off the per-connection cache of prepared statements
    /// (on by default: a repeated query is parsed and planned once per
    /// connection). Turn it off behind PgBouncer in transaction pooling
    /// mode, where a connection's prepared statements may belong to another
    /// server session.
    ///
    /// ```
    /// let behind_pgbouncer = gino::EngineOptions::new().statement_cache(false);
    /// # let _ = behind_pgbouncer;
    /// ```
    pub fn statement_cache(mut self, enabled: bool) -> Self {
        self.statement_cache = enabled;
        self
    }

    /// Sets an option by its URL parameter name, for configuration that comes
    /// as text (environment variables, config files).
    ///
    /// ```
    /// let options = gino::EngineOptions::new().set("max_size", "4").unwrap();
    /// assert!(gino::EngineOptions::new().set("max_sise", "4").is_err());
    /// # let _ = options;
    /// ```
    pub fn set(mut self, key: &str, value: &str) -> Result<Self> {
        match key {
            "min_size" | "pool_min_size" => self.min_size = parse_number(key, value)?,
            "max_size" | "pool_max_size" => self.max_size = parse_number(key, value)?,
            "acquire_timeout" => self.acquire_timeout = Some(parse_duration(key, value)?),
            "echo" => self.echo = parse_bool(key, value)?,
            "statement_timeout" => self.statement_timeout = Some(parse_duration(key, value)?),
            "timeout" => self.timeout = Some(parse_duration(key, value)?),
            "application_name" => self.application_name = Some(value.to_owned()),
            "isolation_level" => self.isolation_level = Some(value.parse()?),
            "pool" => self.pooled = parse_bool(key, value)?,
            "connect_timeout" => self.connect_timeout = Some(parse_duration(key, value)?),
            "statement_cache" => self.statement_cache = parse_bool(key, value)?,
            _ => {
                return Err(Error::Configuration(format!(
                    "unknown engine option `{key}`: known options are min_size, max_size, \
                     acquire_timeout, echo, statement_timeout, timeout, application_name, \
                     isolation_level, pool, connect_timeout, statement_cache"
                )));
            }
        }
        Ok(self)
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.max_size == 0 {
            return Err(Error::Configuration(
                "max_size must be at least 1".to_owned(),
            ));
        }
        if self.min_size > self.max_size {
            return Err(Error::Configuration(format!(
                "min_size ({}) is larger than max_size ({})",
                self.min_size, self.max_size
            )));
        }
        Ok(())
    }
}

fn parse_number(key: &str, value: &str) -> Result<usize> {
    value.trim().parse().map_err(|_| {
        Error::Configuration(format!(
            "option `{key}` must be a whole number, got `{value}`"
        ))
    })
}

fn parse_bool(key: &str, value: &str) -> Result<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(Error::Configuration(format!(
            "option `{key}` must be true or false, got `{value}`"
        ))),
    }
}

fn parse_duration(key: &str, value: &str) -> Result<Duration> {
    let v = value.trim();
    let (number, scale) = if let Some(n) = v.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix('m') {
        (n, 60.0)
    } else {
        (v, 1.0)
    };
    number
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite() && *n >= 0.0)
        .map(|n| Duration::from_secs_f64(n * scale))
        .ok_or_else(|| {
            Error::Configuration(format!(
                "option `{key}` must be a duration such as `2.5`, `500ms` or `3s`, got `{value}`"
            ))
        })
}

/// A parsed `postgresql://` / `postgres://` URL.
///
/// `postgresql://user:password@host:port/database?param=value`; several
/// hosts may be given as `host1:5432,host2:5433`, and a Unix socket
/// directory as `?host=/var/run/postgresql`.
///
/// ```
/// let url: gino::DatabaseUrl = "postgres://alice:s3cret@db.example.com:6543/shop?application_name=web"
///     .parse()
///     .unwrap();
/// assert_eq!(url.database(), Some("shop"));
/// assert_eq!(url.to_string(), "postgres://alice:***@db.example.com:6543/shop?application_name=web");
/// assert!("mysql://localhost/shop".parse::<gino::DatabaseUrl>().is_err());
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    user: Option<String>,
    password: Option<String>,
    hosts: Vec<(String, Option<u16>)>,
    database: Option<String>,
    params: Vec<(String, String)>,
}

impl DatabaseUrl {
    /// The database name, if the URL names one.
    pub fn database(&self) -> Option<&str> {
        self.database.as_deref()
    }

    /// The user name, if the URL names one.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// The query parameters, decoded.
    pub fn params(&self) -> &[(String, String)] {
        &self.params
    }

    /// Splits the URL into what tokio-postgres needs to connect and the
    /// engine options, applying URL parameters on top of `options`.
    pub(crate) fn resolve(
        &self,
        mut options: EngineOptions,
    ) -> Result<(tokio_postgres::Config, EngineOptions)> {
        let mut pg = tokio_postgres::Config::new();
        pg.ssl_mode(tokio_postgres::config::SslMode::Disable);
        let mut user = self.user.clone();
        let mut password = self.password.clone();
        let mut database = self.database.clone();
        let mut hosts = self.hosts.clone();
        let mut extra_ports = Vec::new();
        let mut server_options = Vec::new();
        for (key, value) in &self.params {
            match key.as_str() {
                "user" => user = Some(value.clone()),
                "password" => password = Some(value.clone()),
                "dbname" => database = Some(value.clone()),
                "host" => hosts = value.split(',').map(|h| (h.to_owned(), None)).collect(),
                "port" => {
                    for p in value.split(',') {
                        extra_ports.push(parse_port(p)?);
                    }
                }
                "options" => server_options.push(value.clone()),
                "keepalives" => {
                    pg.keepalives(parse_bool(key, value)?);
                }
                "keepalives_idle" => {
                    pg.keepalives_idle(parse_duration(key, value)?);
                }
                "target_session_attrs" => {
                    pg.target_session_attrs(match value.as_str() {
                        "any" => tokio_postgres::config::TargetSessionAttrs::Any,
                        "read-write" => tokio_postgres::config::TargetSessionAttrs::ReadWrite,
                        "read-only" => tokio_postgres::config::TargetSessionAttrs::ReadOnly,
                        _ => {
                            return Err(Error::Configuration(format!(
                                "target_session_attrs must be any, read-write or read-only, \
                                 got `{value}`"
                            )));
                        }
                    });
                }
                "sslmode" => match value.as_str() {
                    "disable" | "allow" | "prefer" => {}
                    _ => {
                        return Err(Error::Configuration(format!(
                            "sslmode={value} needs TLS, which this version of gino does not \
                             support yet: use sslmode=disable or prefer"
                        )));
                    }
                },
                _ => options = options.set(key, value)?,
            }
        }
        options.validate()?;
        if hosts.is_empty() {
            hosts.push(("localhost".to_owned(), None));
        }
        for (i, (host, port)) in hosts.iter().enumerate() {
            pg.host(host);
            let port = port.or_else(|| extra_ports.get(i).copied()).unwrap_or(5432);
            pg.port(port);
        }
        pg.user(user.unwrap_or_else(default_user));
        if let Some(password) = password {
            pg.password(password);
        }
        if let Some(database) = database {
            pg.dbname(database);
        }
        if let Some(name) = &options.application_name {
            pg.application_name(name);
        }
        if let Some(timeout) = options.statement_timeout {
            server_options.push(format!("-c statement_timeout={}", timeout.as_millis()));
        }
        if !server_options.is_empty() {
            pg.options(server_options.join(" "));
        }
        if let Some(timeout) = options.connect_timeout {
            pg.connect_timeout(timeout);
        }
        Ok((pg, options))
    }
}

fn default_user() -> String {
    std::env::var("PGUSER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "postgres".to_owned())
}

fn parse_port(text: &str) -> Result<u16> {
    text.parse().map_err(|_| {
        Error::Configuration(format!(
            "invalid port `{text}` in database URL: expected a number from 1 to 65535"
        ))
    })
}

fn percent_decode(part: &str, what: &str) -> Result<String> {
    let bytes = part.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| {
                    Error::Configuration(format!(
                        "invalid percent-encoding in the {what} of the database URL: `{part}`"
                    ))
                })?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| {
        Error::Configuration(format!(
            "the {what} of the database URL is not valid UTF-8 once decoded"
        ))
    })
}

impl FromStr for DatabaseUrl {
    type Err = Error;

    fn from_str(url: &str) -> Result<Self> {
        let (scheme, rest) = url.split_once("://").ok_or_else(|| {
            Error::Configuration(format!(
                "`{}` is not a database URL: expected postgresql://user:password@host:port/database",
                mask_password(url)
            ))
        })?;
        if !matches!(scheme, "postgresql" | "postgres") {
            return Err(Error::Configuration(format!(
                "unsupported URL scheme `{scheme}`: gino speaks PostgreSQL, use postgresql:// or postgres://"
            )));
        }
        let (before_query, query) = match rest.split_once('?') {
            Some((a, q)) => (a, Some(q)),
            None => (rest, None),
        };
        let (authority, path) = match before_query.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (before_query, None),
        };
        let (userinfo, hostlist) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(info) => match info.split_once(':') {
                Some((u, p)) => (
                    Some(percent_decode(u, "user name")?),
                    Some(percent_decode(p, "password")?),
                ),
                None => (Some(percent_decode(info, "user name")?), None),
            },
        };
        let mut hosts = Vec::new();
        if !hostlist.is_empty() {
            for spec in hostlist.split(',') {
                hosts.push(parse_host(spec)?);
            }
        }
        let database = match path {
            Some(p) if !p.is_empty() => Some(percent_decode(p, "database name")?),
            _ => None,
        };
        let mut params = Vec::new();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').ok_or_else(|| {
                Error::Configuration(format!(
                    "query parameter `{pair}` of the database URL has no value: write `{pair}=...`"
                ))
            })?;
            params.push((
                percent_decode(key, "query")?,
                percent_decode(value, "query")?,
            ));
        }
        Ok(DatabaseUrl {
            user: user.filter(|u| !u.is_empty()),
            password,
            hosts,
            database,
            params,
        })
    }
}

fn parse_host(spec: &str) -> Result<(String, Option<u16>)> {
    if let Some(rest) = spec.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(|| {
            Error::Configuration(format!("unclosed `[` in host `{spec}` of the database URL"))
        })?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(parse_port(p)?),
            None if after.is_empty() => None,
            None => {
                return Err(Error::Configuration(format!(
                    "unexpected `{after}` after host `[{host}]` in the database URL"
                )));
            }
        };
        return Ok((host.to_owned(), port));
    }
    match spec.split_once(':') {
        Some((host, port)) => Ok((percent_decode(host, "host")?, Some(parse_port(port)?))),
        None => Ok((percent_decode(spec, "host")?, None)),
    }
}

/// Masks the password of a URL that does not parse (so it cannot be
/// parsed to mask it, which would recurse): whatever sits between the
/// user's `:` and the `@` may be a password.
fn mask_password(url: &str) -> String {
    match url.rsplit_once('@') {
        Some((userinfo, rest)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{rest}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

impl fmt::Display for DatabaseUrl {
    /// Shows the URL with the password masked, safe for logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("postgres://")?;
        if let Some(user) = &self.user {
            f.write_str(user)?;
            if self.password.is_some() {
                f.write_str(":***")?;
            }
            f.write_str("@")?;
        }
        for (i, (host, port)) in self.hosts.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if host.contains(':') {
                write!(f, "[{host}]")?;
            } else {
                f.write_str(host)?;
            }
            if let Some(port) = port {
                write!(f, ":{port}")?;
            }
        }
        if let Some(db) = &self.database {
            write!(f, "/{db}")?;
        }
        for (i, (key, value)) in self.params.iter().enumerate() {
            let sep = if i == 0 { '?' } else { '&' };
            let shown = if key == "password" { "***" } else { value };
            write!(f, "{sep}{key}={shown}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_full_url() {
        let url: DatabaseUrl =
            "postgresql://u%40x:p%3Aw@h1:5433,[::1]:6000/my%20db?application_name=app&max_size=3"
                .parse()
                .unwrap();
        assert_eq!(url.user(), Some("u@x"));
        assert_eq!(url.password.as_deref(), Some("p:w"));
        assert_eq!(
            url.hosts,
            vec![("h1".into(), Some(5433)), ("::1".into(), Some(6000))]
        );
        assert_eq!(url.database(), Some("my db"));
        let (pg, options) = url.resolve(EngineOptions::new()).unwrap();
        assert_eq!(options.max_size, 3);
        assert_eq!(pg.get_application_name(), Some("app"));
        assert_eq!(pg.get_ports(), &[5433, 6000]);
    }

    #[test]
    fn rejects_bad_parts_naming_them() {
        let err = |u: &str| match u
            .parse::<DatabaseUrl>()
            .and_then(|u| u.resolve(EngineOptions::new()))
        {
            Err(Error::Configuration(m)) => m,
            other => panic!("expected a configuration error for {u}, got {other:?}"),
        };
        assert!(err("mysql://localhost/db").contains("mysql"));
        assert!(err("postgres://localhost:99999/db").contains("99999"));
        assert!(err("postgres://localhost/db?bogus=1").contains("bogus"));
        assert!(err("postgres://localhost/db?max_size=ten").contains("max_size"));
        assert!(err("postgres://localhost/db?isolation_level=chaos").contains("chaos"));
        assert!(err("postgres://localhost/db?sslmode=require").contains("sslmode"));
        assert!(err("localhost/db").contains("not a database URL"));
        assert!(err("postgres://localhost/db?min_size=5&max_size=2").contains("min_size"));
        assert!(err("postgres://localhost/db?flag").contains("flag"));
        assert!(err("postgres://local%zzhost/db").contains("percent"));
    }

    #[test]
    fn durations_accept_units() {
        assert_eq!(
            parse_duration("t", "1.5").unwrap(),
            Duration::from_millis(1500)
        );
        assert_eq!(
            parse_duration("t", "250ms").unwrap(),
            Duration::from_millis(250)
        );
        assert_eq!(parse_duration("t", "2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("t", "-1").is_err());
        assert!(parse_duration("t", "soon").is_err());
    }

    #[test]
    fn statement_timeout_and_options_reach_server_options() {
        let url: DatabaseUrl = "postgres://h/db?options=-c%20search_path%3Dx&statement_timeout=2s"
            .parse()
            .unwrap();
        let (pg, _) = url.resolve(EngineOptions::new()).unwrap();
        assert_eq!(
            pg.get_options(),
            Some("-c search_path=x -c statement_timeout=2000")
        );
    }
}
