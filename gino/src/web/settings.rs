//! The database settings of a web application: GINO's extension config
//! (`dsn`, `host`, ..., `use_connection_for_request`, `retry_limit`) plus
//! gino's engine options, from `DB_*` environment variables or any serde
//! source (a config file, rocket's figment).

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use crate::config::{
    DatabaseUrl, EngineOptions, RawUrl, SslMode, SslRootCert, check_pool_sizes, is_scheme,
    parse_bool, parse_duration, parse_number, parse_port, parse_ssl, percent_decode,
};
use crate::error::{Error, Result};

/// The database settings of a web application, with the defaults of GINO's
/// extensions.
///
/// | setting | variable | default |
/// | --- | --- | --- |
/// | `dsn` | `DB_DSN` | none; when set, replaces host, port, user, password and database |
/// | `host` | `DB_HOST` | `localhost` |
/// | `port` | `DB_PORT` | `5432` |
/// | `user` | `DB_USER` | `postgres` |
/// | `password` | `DB_PASSWORD` | empty (then `PGPASSWORD`, or the password file `~/.pgpass`); a variable set empty is unset, as every other |
/// | `database` | `DB_DATABASE` | `postgres` |
/// | `pool_min_size` | `DB_POOL_MIN_SIZE` | 5 |
/// | `pool_max_size` | `DB_POOL_MAX_SIZE` | 10 |
/// | `echo` | `DB_ECHO` | false |
/// | `ssl` | `DB_SSL` | unset: the URL's `sslmode`, else libpq's `prefer` |
/// | `ssl_root_cert` | `DB_SSL_ROOT_CERT` | unset |
/// | `use_connection_for_request` | `DB_USE_CONNECTION_FOR_REQUEST` | true |
/// | `retry_limit` | `DB_RETRY_LIMIT` | 1 (retries after a failed first attempt, as gino-aiohttp counts; gino-starlette counts the first attempt too) |
/// | `retry_interval` | `DB_RETRY_INTERVAL` | 1 s |
/// | `acquire_timeout` | `DB_ACQUIRE_TIMEOUT` | 30 s (then 503) |
/// | `statement_timeout` | `DB_STATEMENT_TIMEOUT` | the server's |
/// | `max_inactive_connection_lifetime` | `DB_MAX_INACTIVE_CONNECTION_LIFETIME` | 300 s (`0`: never close idle connections) |
/// | `statement_cache` | `DB_STATEMENT_CACHE` | true |
/// | `shutdown_timeout` | `DB_SHUTDOWN_TIMEOUT` | 30 s |
/// | `replica_dsns` | `DB_REPLICA_DSNS` | none; comma-separated URLs of read replicas |
/// | `kwargs` | `DB_KWARGS` | none; more engine options, `key=value` separated by spaces, as in a libpq connection string (`application_name='my shop'`) |
///
/// Booleans are `true`/`false`, `1`/`0`, `yes`/`no` or `on`/`off` in any
/// case; durations are seconds (`1.5`) or carry a unit (`500ms`, `2s`,
/// `1m`). `ssl` takes an [`SslMode`] (`require`, `verify-full`, ...) or a
/// boolean: `true` is `verify-full`, as asyncpg's `ssl=True` checks the
/// certificate and the host name, and `false` is `disable`. The roots
/// that vouch for the server are `ssl_root_cert` (`system` for the
/// operating system's, as asyncpg's default context trusts), else libpq's
/// `PGSSLROOTCERT` or `~/.postgresql/root.crt`; a checking mode with none
/// of them stops start-up with an error saying so. A setting changed from
/// its default that the DSN's query or `kwargs` give differently
/// (`?sslmode=`, `?max_size=`, ...) is refused by
/// [`validate`](Self::validate) rather than one of them silently winning.
///
/// ```
/// use gino::web::Settings;
/// let vars = [("DB_HOST", "db.internal"), ("DB_POOL_MAX_SIZE", "20"), ("DB_ECHO", "yes")];
/// let settings = Settings::from_lookup(|name| {
///     vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
/// })
/// .unwrap();
/// assert_eq!(settings.host, "db.internal");
/// assert_eq!(settings.pool_max_size, 20);
/// assert!(settings.echo);
/// assert_eq!(settings.url(), "postgres://postgres@db.internal:5432/postgres");
/// ```
#[derive(Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Settings {
    /// A database URL; when set, it replaces the five parts below.
    #[serde(deserialize_with = "optional_text")]
    pub dsn: Option<String>,
    /// Host name, IP address, or Unix socket directory (starting with `/`).
    #[serde(deserialize_with = "text")]
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// User name.
    #[serde(deserialize_with = "text")]
    pub user: String,
    /// Password; never shown in errors, logs or `Debug`.
    #[serde(deserialize_with = "text")]
    pub password: String,
    /// Database name.
    #[serde(deserialize_with = "text")]
    pub database: String,
    /// Connections opened at start-up and kept.
    pub pool_min_size: usize,
    /// Most connections open at once.
    pub pool_max_size: usize,
    /// Log every statement (`tracing`, target `gino::echo`).
    #[serde(deserialize_with = "flexible_bool")]
    pub echo: bool,
    /// TLS mode; unset leaves it to the URL (libpq's `prefer` by default).
    #[serde(deserialize_with = "ssl_mode")]
    pub ssl: Option<SslMode>,
    /// The roots that vouch for the server (a PEM file, or `system`).
    #[serde(deserialize_with = "root_cert")]
    pub ssl_root_cert: Option<SslRootCert>,
    /// Give every request a lazy connection that its queries share.
    #[serde(deserialize_with = "flexible_bool")]
    pub use_connection_for_request: bool,
    /// Retries after a failed first attempt to reach the database at
    /// start-up.
    pub retry_limit: u32,
    /// Pause between start-up attempts.
    #[serde(deserialize_with = "duration")]
    pub retry_interval: Duration,
    /// Longest wait for a pooled connection; past it a request gets 503.
    #[serde(deserialize_with = "optional_duration")]
    pub acquire_timeout: Option<Duration>,
    /// PostgreSQL's `statement_timeout` for every connection.
    #[serde(deserialize_with = "optional_duration")]
    pub statement_timeout: Option<Duration>,
    /// How long a pooled connection may sit unused before it is closed
    /// (asyncpg's `max_inactive_connection_lifetime`); unset: 300 s.
    #[serde(deserialize_with = "optional_duration")]
    pub max_inactive_connection_lifetime: Option<Duration>,
    /// Keep prepared statements per connection (turn off behind PgBouncer
    /// in transaction mode).
    #[serde(deserialize_with = "flexible_bool")]
    pub statement_cache: bool,
    /// Longest wait at shutdown for in-flight requests and their
    /// connections.
    #[serde(deserialize_with = "duration")]
    pub shutdown_timeout: Duration,
    /// Read replicas' URLs (see [`EngineOptions::replica`]); never shown
    /// in `Debug`, as they may hold passwords.
    #[serde(deserialize_with = "url_list")]
    pub replica_dsns: Vec<String>,
    /// More engine options by name (GINO's `kwargs` / `DB_KWARGS`), as
    /// [`EngineOptions::set`] takes them: `DB_KWARGS="statement_cache=false
    /// application_name=shop"`, or a map in a config file.
    #[serde(deserialize_with = "kwargs")]
    pub kwargs: Vec<(String, String)>,
}

/// The process environment as settings read it, once no variable they
/// read holds bytes that are not UTF-8: such a value would otherwise read as
/// unset, and the setting fall back to its default without a word.
fn env_lookup() -> Result<impl Fn(&str) -> Option<String>> {
    all_text(std::env::vars_os())?;
    Ok(|name: &str| std::env::var(name).ok())
}

/// Refuses a variable of `vars` that settings read (`DB_` and a
/// [key](Settings::KEYS)) whose value is not UTF-8. Other `DB_*` variables
/// are the app's own business.
fn all_text(vars: impl Iterator<Item = (std::ffi::OsString, std::ffi::OsString)>) -> Result<()> {
    let read = |name: &str| {
        name.strip_prefix("DB_")
            .is_some_and(|key| Settings::KEYS.iter().any(|k| k.to_ascii_uppercase() == key))
    };
    for (name, value) in vars {
        let name = name.to_string_lossy();
        if read(&name) && value.to_str().is_none() {
            return Err(named(&name, "is not valid UTF-8, and settings are text"));
        }
    }
    Ok(())
}

/// Whether a URL's query pair (`key=value`, as written) is `dbname`.
fn is_dbname(pair: &str) -> bool {
    let key = pair.split_once('=').map_or(pair, |(key, _)| key);
    percent_decode(key, "query").is_ok_and(|key| key == "dbname")
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            dsn: None,
            host: "localhost".to_owned(),
            port: 5432,
            user: "postgres".to_owned(),
            password: String::new(),
            database: "postgres".to_owned(),
            pool_min_size: 5,
            pool_max_size: 10,
            echo: false,
            ssl: None,
            ssl_root_cert: None,
            use_connection_for_request: true,
            retry_limit: 1,
            retry_interval: Duration::from_secs(1),
            acquire_timeout: Some(Duration::from_secs(30)),
            statement_timeout: None,
            max_inactive_connection_lifetime: None,
            statement_cache: true,
            shutdown_timeout: Duration::from_secs(30),
            replica_dsns: Vec::new(),
            kwargs: Vec::new(),
        }
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dsn = self
            .dsn
            .as_ref()
            .map(|dsn| match dsn.parse::<DatabaseUrl>() {
                Ok(url) => url.to_string(),
                Err(_) => "<unparsable>".to_owned(),
            });
        f.debug_struct("Settings")
            .field("dsn", &dsn)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field(
                "password",
                &if self.password.is_empty() { "" } else { "***" },
            )
            .field("database", &self.database)
            .field("pool_min_size", &self.pool_min_size)
            .field("pool_max_size", &self.pool_max_size)
            .field("echo", &self.echo)
            .field("ssl", &self.ssl)
            .field("ssl_root_cert", &self.ssl_root_cert)
            .field(
                "use_connection_for_request",
                &self.use_connection_for_request,
            )
            .field("retry_limit", &self.retry_limit)
            .field("retry_interval", &self.retry_interval)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .field(
                "max_inactive_connection_lifetime",
                &self.max_inactive_connection_lifetime,
            )
            .field("statement_cache", &self.statement_cache)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("replica_dsns", &self.replica_dsns.len())
            // Keys only: an entry the engine refuses (`password=...`) is
            // still shown before validation.
            .field(
                "kwargs",
                &self.kwargs.iter().map(|(key, _)| key).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Settings {
    /// The names of the settings, as serde and figment read them (and, in
    /// upper case after `DB_`, as the environment does).
    ///
    /// ```
    /// assert!(gino::web::Settings::KEYS.contains(&"pool_max_size"));
    /// ```
    pub const KEYS: &'static [&'static str] = &[
        "dsn",
        "host",
        "port",
        "user",
        "password",
        "database",
        "pool_min_size",
        "pool_max_size",
        "echo",
        "ssl",
        "ssl_root_cert",
        "use_connection_for_request",
        "retry_limit",
        "retry_interval",
        "acquire_timeout",
        "statement_timeout",
        "max_inactive_connection_lifetime",
        "statement_cache",
        "shutdown_timeout",
        "replica_dsns",
        "kwargs",
    ];

    /// The settings from `DB_*` environment variables over the defaults.
    /// A malformed value is an error naming the variable, and so is one
    /// that the query of `DB_DSN`, the libpq service it names, or
    /// `DB_KWARGS` contradicts (even one given at its default value: give
    /// each setting in one place).
    ///
    /// ```no_run
    /// let settings = gino::web::Settings::from_env()?;
    /// # Ok::<_, gino::Error>(())
    /// ```
    pub fn from_env() -> Result<Settings> {
        Settings::from_lookup(env_lookup()?)
    }

    /// [`from_env`](Self::from_env) with the variables looked up by `var`
    /// (for tests, or configuration kept elsewhere).
    ///
    /// ```
    /// let settings = gino::web::Settings::from_lookup(|name| {
    ///     (name == "DB_USE_CONNECTION_FOR_REQUEST").then(|| "off".to_owned())
    /// })?;
    /// assert!(!settings.use_connection_for_request);
    /// # Ok::<_, gino::Error>(())
    /// ```
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Settings> {
        Settings::default().with_lookup(var)
    }

    /// These settings with the `DB_*` environment variables that are set
    /// put over them, read as [`from_env`](Self::from_env) reads them: the
    /// text of a password is kept as written, whatever it looks like. For
    /// settings read from a file first.
    ///
    /// ```no_run
    /// let mut settings = gino::web::Settings::default();
    /// settings.pool_max_size = 20; // from a config file, say
    /// let settings = settings.with_env()?; // DB_POOL_MAX_SIZE still wins
    /// # Ok::<_, gino::Error>(())
    /// ```
    pub fn with_env(self) -> Result<Settings> {
        self.with_lookup(env_lookup()?)
    }

    /// [`with_env`](Self::with_env) with the variables looked up by `var`.
    ///
    /// ```
    /// let mut settings = gino::web::Settings::default();
    /// settings.database = "shop".into();
    /// let settings = settings.with_lookup(|name| (name == "DB_PASSWORD").then(|| "0123".to_owned()))?;
    /// assert_eq!((settings.database.as_str(), settings.password.as_str()), ("shop", "0123"));
    ///
    /// // A variable set empty is no value, for the password as for the rest.
    /// let settings = settings.with_lookup(|name| (name == "DB_PASSWORD").then(String::new))?;
    /// assert_eq!(settings.password, "0123");
    /// # Ok::<_, gino::Error>(())
    /// ```
    pub fn with_lookup(self, var: impl Fn(&str) -> Option<String>) -> Result<Settings> {
        let mut s = self;
        // Trimmed: an env file written on Windows (`docker --env-file`)
        // ends every value with `\r`, which no host, user or database has.
        let get = |name: &str| {
            var(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        if let Some(dsn) = get("DB_DSN") {
            // Parsed now, so that a bad URL fails start-up naming the
            // variable (its errors never show the password).
            dsn.parse::<DatabaseUrl>()
                .map_err(|e| named("DB_DSN", &problem(e)))?;
            s.dsn = Some(dsn);
        }
        if let Some(v) = get("DB_HOST") {
            s.host = v;
        }
        if let Some(v) = get("DB_PORT") {
            s.port = parse_port(&v).map_err(|_| {
                named(
                    "DB_PORT",
                    &format!("expected a port number from 1 to 65535, got `{v}`"),
                )
            })?;
        }
        if let Some(v) = get("DB_USER") {
            s.user = v;
        }
        // Kept as written (spaces may be part of it), but an empty one is
        // unset, as `DB_PASSWORD: ${DB_PASSWORD}` of an unset variable in
        // a compose file gives: it must not wipe a configured password.
        if let Some(v) = var("DB_PASSWORD").filter(|v| !v.is_empty()) {
            s.password = v;
        }
        if let Some(v) = get("DB_DATABASE") {
            s.database = v;
        }
        if let Some(v) = get("DB_POOL_MIN_SIZE") {
            s.pool_min_size = parse_number("DB_POOL_MIN_SIZE", &v)?;
        }
        if let Some(v) = get("DB_POOL_MAX_SIZE") {
            s.pool_max_size = parse_number("DB_POOL_MAX_SIZE", &v)?;
        }
        if let Some(v) = get("DB_ECHO") {
            s.echo = parse_bool("DB_ECHO", &v)?;
        }
        if let Some(v) = get("DB_SSL") {
            s.ssl = Some(parse_ssl("DB_SSL", &v)?);
        }
        if let Some(v) = get("DB_SSL_ROOT_CERT") {
            s.ssl_root_cert = Some(v.parse()?);
        }
        if let Some(v) = get("DB_USE_CONNECTION_FOR_REQUEST") {
            s.use_connection_for_request = parse_bool("DB_USE_CONNECTION_FOR_REQUEST", &v)?;
        }
        if let Some(v) = get("DB_RETRY_LIMIT") {
            let limit = parse_number("DB_RETRY_LIMIT", &v)?;
            s.retry_limit = u32::try_from(limit).unwrap_or(u32::MAX);
        }
        if let Some(v) = get("DB_RETRY_INTERVAL") {
            s.retry_interval = parse_duration("DB_RETRY_INTERVAL", &v)?;
        }
        if let Some(v) = get("DB_ACQUIRE_TIMEOUT") {
            s.acquire_timeout = Some(parse_duration("DB_ACQUIRE_TIMEOUT", &v)?);
        }
        if let Some(v) = get("DB_STATEMENT_TIMEOUT") {
            s.statement_timeout = Some(parse_duration("DB_STATEMENT_TIMEOUT", &v)?);
        }
        if let Some(v) = get("DB_MAX_INACTIVE_CONNECTION_LIFETIME") {
            s.max_inactive_connection_lifetime =
                Some(parse_duration("DB_MAX_INACTIVE_CONNECTION_LIFETIME", &v)?);
        }
        if let Some(v) = get("DB_STATEMENT_CACHE") {
            s.statement_cache = parse_bool("DB_STATEMENT_CACHE", &v)?;
        }
        if let Some(v) = get("DB_SHUTDOWN_TIMEOUT") {
            s.shutdown_timeout = parse_duration("DB_SHUTDOWN_TIMEOUT", &v)?;
        }
        if let Some(v) = get("DB_REPLICA_DSNS") {
            s.replica_dsns = parse_url_list("DB_REPLICA_DSNS", &v)?;
        }
        if let Some(v) = get("DB_KWARGS") {
            s.kwargs = parse_kwargs("DB_KWARGS", &v)?;
        }
        // A variable given here counts as set even at its default value.
        s.validate_given(|key| get(&variable(key)).is_some())?;
        Ok(s)
    }

    /// Checks what a value on its own cannot show: a pool whose minimum
    /// exceeds its maximum, a `kwargs` entry the engine does not know, and
    /// a setting that the DSN's query, its libpq service (`service=`, else
    /// `PGSERVICE`) or `kwargs` contradict.
    ///
    /// ```
    /// let mut settings = gino::web::Settings::default();
    /// settings.pool_min_size = 20;
    /// assert!(settings.validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<()> {
        self.validate_given(|_| false)
    }

    /// [`validate`](Self::validate) for a source that knows which settings
    /// it gave: `given` is asked by [key](Self::KEYS), and a setting it
    /// gave counts as set even at its default value, so that it still
    /// clashes with a DSN or `kwargs` that says otherwise (`validate`
    /// takes a setting at its default for one left out). The `DB_*`
    /// variables are checked so by [`with_env`](Self::with_env); rocket's
    /// figment is asked with `contains`.
    ///
    /// ```
    /// let mut settings = gino::web::Settings::default();
    /// settings.dsn = Some("postgres://localhost/shop?echo=on".into());
    /// assert!(settings.validate().is_ok()); // echo = false is the default
    /// // ...but a config file that said `echo = false` contradicts the DSN.
    /// let err = settings.validate_given(|key| key == "echo").unwrap_err();
    /// assert!(err.to_string().contains("echo=on"), "{err}");
    /// ```
    pub fn validate_given(&self, given: impl Fn(&str) -> bool) -> Result<()> {
        let given: &dyn Fn(&str) -> bool = &given;
        check_pool_sizes(
            ("DB_POOL_MIN_SIZE", self.pool_min_size),
            ("DB_POOL_MAX_SIZE", self.pool_max_size),
        )?;
        self.engine_options()?;
        self.check_agrees("DB_KWARGS", &self.kwargs, given)?;
        // A DSN or service that does not parse fails where it is used,
        // with its own message.
        let url = self.url().parse::<DatabaseUrl>().ok();
        let dsn = url
            .as_ref()
            .map_or_else(Vec::new, |url| url.params().to_vec());
        self.check_agrees("DB_DSN", &dsn, given)?;
        // A service's engine options would override the settings as
        // silently as the DSN's would.
        let (service, from_service) = url
            .and_then(|url| url.service_params(&|name| std::env::var(name).ok()).ok())
            .flatten()
            .map(|(name, params)| (format!("the service `{name}`"), params))
            .unwrap_or_default();
        self.check_agrees(&service, &from_service, given)?;
        for (at, (key, value)) in self.kwargs.iter().enumerate() {
            let earlier = self.kwargs[..at].iter().map(|pair| ("DB_KWARGS", pair));
            let in_dsn = dsn.iter().map(|pair| ("DB_DSN", pair));
            let in_service = from_service.iter().map(|pair| (service.as_str(), pair));
            for (source, (other_key, other_value)) in earlier.chain(in_dsn).chain(in_service) {
                if disagree((key, value), (other_key, other_value)) {
                    return Err(named(
                        "DB_KWARGS",
                        &format!(
                            "{key}={value}, but {source} says {other_key}={other_value}: give \
                             it in one place"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// `options` with [`kwargs`](Self::kwargs) applied.
    fn with_kwargs(&self, mut options: EngineOptions) -> Result<EngineOptions> {
        for (key, value) in &self.kwargs {
            options = options
                .set(key, value)
                .map_err(|e| named("DB_KWARGS", &problem(e)))?;
        }
        Ok(options)
    }

    /// A setting that engine options by name (the DSN's query, `kwargs`)
    /// give too must say the same, unless it was not `given` and is at its
    /// default (then the named option applies): with `DB_SSL=verify-full`
    /// beside `?sslmode=disable`, which one applied would be an accident
    /// of order. Compared by what each sets, as [`disagree`] compares two
    /// names.
    fn check_agrees(
        &self,
        source: &str,
        named_options: &[(String, String)],
        given: &dyn Fn(&str) -> bool,
    ) -> Result<()> {
        let ours = self.typed_options();
        let defaults = Settings::default().typed_options();
        for (key, value) in named_options {
            // An option without a setting of its own, or one the engine
            // cannot take (reported where it is applied), clashes with none.
            let Some((option, now)) = ours.named_value(key) else {
                continue;
            };
            let Some(setting) = setting_key(option) else {
                continue;
            };
            let Some((_, theirs)) = ours
                .clone()
                .set(key, value)
                .ok()
                .and_then(|o| o.named_value(key))
            else {
                continue;
            };
            let changed =
                given(setting) || defaults.named_value(key).is_some_and(|(_, d)| d != now);
            if changed && theirs != now {
                return Err(named(
                    &variable(setting),
                    &format!(
                        "{source} says {key}={value}, and this setting says otherwise: give it \
                         in one place"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The database URL: `dsn`, or one made of the parts.
    ///
    /// ```
    /// let mut settings = gino::web::Settings::default();
    /// settings.user = "app".into();
    /// settings.password = "p@ss".into();
    /// settings.database = "shop".into();
    /// assert_eq!(settings.url(), "postgres://app:p%40ss@localhost:5432/shop");
    /// ```
    pub fn url(&self) -> String {
        if let Some(dsn) = &self.dsn {
            return dsn.clone();
        }
        let mut url = String::from("postgres://");
        url.push_str(&encode(&self.user));
        if !self.password.is_empty() {
            url.push(':');
            url.push_str(&encode(&self.password));
        }
        url.push('@');
        let socket_dir = self.host.starts_with('/');
        if !socket_dir {
            if self.host.contains(':') {
                url.push_str(&format!("[{}]:{}", self.host, self.port));
            } else {
                url.push_str(&format!("{}:{}", encode(&self.host), self.port));
            }
        }
        url.push('/');
        url.push_str(&encode(&self.database));
        if socket_dir {
            url.push_str(&format!("?host={}&port={}", encode(&self.host), self.port));
        }
        url
    }

    /// The name of the database these settings reach: the DSN's, or
    /// `database`.
    ///
    /// ```
    /// let mut settings = gino::web::Settings::default();
    /// settings.dsn = Some("postgres://app@db:5432/shop?sslmode=require".into());
    /// assert_eq!(settings.database_name(), "shop");
    /// ```
    pub fn database_name(&self) -> String {
        let Some(dsn) = &self.dsn else {
            return self.database.clone();
        };
        match dsn.parse::<DatabaseUrl>() {
            // A `dbname` parameter overrides the path, as in libpq.
            Ok(url) => url
                .param("dbname")
                .or(url.database())
                .unwrap_or_default()
                .to_owned(),
            // Malformed (engine creation says how): the path as written.
            Err(_) => RawUrl::split(dsn)
                .and_then(|raw| raw.path)
                .unwrap_or_default()
                .to_owned(),
        }
    }

    /// The same settings for the database `name` on the same server (a
    /// DSN gets its database replaced): a tenant's database, say.
    ///
    /// ```
    /// let mut settings = gino::web::Settings::default();
    /// settings.dsn = Some("postgres://app@db:5432/shop?sslmode=require".into());
    /// let tenant = settings.for_database("shop_acme");
    /// assert_eq!(tenant.url(), "postgres://app@db:5432/shop_acme?sslmode=require");
    /// ```
    pub fn for_database(&self, name: &str) -> Settings {
        let mut settings = self.clone();
        settings.database = name.to_owned();
        if let Some(raw) = self.dsn.as_deref().and_then(RawUrl::split) {
            // Split as the engine reads the URL (a password may hold a raw
            // `?`), and without a `dbname` parameter, which would override
            // the new path.
            let mut dsn = format!("{}/{}", raw.server, encode(name));
            let query = raw.query.unwrap_or_default().split('&');
            for (i, pair) in query.filter(|p| !p.is_empty() && !is_dbname(p)).enumerate() {
                dsn.push(if i == 0 { '?' } else { '&' });
                dsn.push_str(pair);
            }
            settings.dsn = Some(dsn);
        }
        settings
    }

    /// The engine options these settings ask for; an error names a
    /// [`kwargs`](Self::kwargs) entry the engine does not know.
    ///
    /// ```
    /// let mut settings = gino::web::Settings::default();
    /// settings.kwargs.push(("application_name".into(), "shop".into()));
    /// assert!(format!("{:?}", settings.engine_options()?).contains("shop"));
    /// settings.kwargs.push(("max_queries".into(), "50000".into()));
    /// assert!(settings.engine_options().unwrap_err().to_string().contains("max_queries"));
    /// # Ok::<_, gino::Error>(())
    /// ```
    pub fn engine_options(&self) -> Result<EngineOptions> {
        self.with_kwargs(self.typed_options())
    }

    /// The engine options of the typed settings, without `kwargs`.
    fn typed_options(&self) -> EngineOptions {
        let mut options = EngineOptions::new()
            .min_size(self.pool_min_size)
            .max_size(self.pool_max_size)
            .echo(self.echo)
            .statement_cache(self.statement_cache);
        if let Some(mode) = self.ssl {
            options = options.ssl_mode(mode);
        }
        if let Some(roots) = &self.ssl_root_cert {
            options = options.ssl_root_cert(roots.clone());
        }
        if let Some(timeout) = self.acquire_timeout {
            options = options.acquire_timeout(timeout);
        }
        if let Some(timeout) = self.statement_timeout {
            options = options.statement_timeout(timeout);
        }
        if let Some(lifetime) = self.max_inactive_connection_lifetime {
            options = options.max_inactive_connection_lifetime(lifetime);
        }
        for replica in &self.replica_dsns {
            options = options.replica(replica.clone());
        }
        options
    }
}

/// Whether two named engine options set the same option (aliases
/// folded: `pool_max_size` is `max_size`) to different effect (`echo=yes`
/// and `echo=on` agree); one the engine cannot take is reported where it
/// is applied.
fn disagree(a: (&str, &str), b: (&str, &str)) -> bool {
    let effect = |(key, value): (&str, &str)| {
        EngineOptions::new()
            .set(key, value)
            .ok()
            .and_then(|options| options.named_value(key))
    };
    matches!((effect(a), effect(b)), (Some(x), Some(y)) if x.0 == y.0 && x.1 != y.1)
}

/// The typed setting (its key, as [`Settings::KEYS`] names it) behind an
/// engine option, if one is.
fn setting_key(option: &str) -> Option<&'static str> {
    Some(match option {
        "min_size" => "pool_min_size",
        "max_size" => "pool_max_size",
        "echo" => "echo",
        "statement_cache" => "statement_cache",
        "acquire_timeout" => "acquire_timeout",
        "statement_timeout" => "statement_timeout",
        "max_inactive_connection_lifetime" => "max_inactive_connection_lifetime",
        "sslmode" => "ssl",
        "sslrootcert" => "ssl_root_cert",
        _ => return None,
    })
}

/// The environment variable of the setting `key`: `DB_` and the key in
/// upper case.
fn variable(key: &str) -> String {
    format!("DB_{}", key.to_ascii_uppercase())
}

fn named(variable: &str, problem: &str) -> Error {
    Error::Configuration(format!("{variable}: {problem}"))
}

/// What is wrong, without the "invalid configuration" of the error that
/// [`named`] puts it in again.
fn problem(error: Error) -> String {
    match error {
        Error::Configuration(problem) => problem,
        other => other.to_string(),
    }
}

/// Percent-encodes what may not appear raw in a URL's parts.
fn encode(part: &str) -> String {
    let mut out = String::with_capacity(part.len());
    for byte in part.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// A value from a config source: text, or already typed.
#[derive(Deserialize)]
#[serde(untagged)]
enum Loose {
    Bool(bool),
    Number(f64),
    Text(String),
}

/// A scalar as the text the environment would give.
fn loose_text(value: Loose) -> String {
    match value {
        Loose::Bool(b) => b.to_string(),
        Loose::Number(n) => n.to_string(),
        Loose::Text(text) => text,
    }
}

/// `key=value` pairs separated by white space (`DB_KWARGS`, as GINO's
/// demo apps read it), written as in a libpq connection string: white
/// space around `=` is allowed, and a value with spaces is single-quoted,
/// `\'` and `\\` escaping a quote and a backslash
/// (`application_name='my shop'`).
fn parse_kwargs(variable: &str, text: &str) -> Result<Vec<(String, String)>> {
    let bad = |what: &str| {
        named(
            variable,
            &format!(
                "expected key=value pairs separated by spaces (a value with spaces \
                 'single-quoted'), {what}"
            ),
        )
    };
    let mut pairs = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        let key_end = rest
            .find(|c: char| c == '=' || c.is_whitespace())
            .unwrap_or(rest.len());
        let key = &rest[..key_end];
        let Some(after) = rest[key_end..].trim_start().strip_prefix('=') else {
            return Err(bad(&format!("got `{key}` without `=`")));
        };
        if key.is_empty() {
            return Err(bad("got `=` without a key"));
        }
        let (value, after) = conninfo_value(after.trim_start())
            .map_err(|problem| bad(&format!("the value of `{key}` {problem}")))?;
        pairs.push((key.to_owned(), value));
        rest = after.trim_start();
    }
    Ok(pairs)
}

/// The value of a `key=value` pair at the start of `text`, as libpq reads
/// it: up to white space, or single-quoted; `\` takes the next character
/// as it is. The value and the text after it, or what is wrong with it.
fn conninfo_value(text: &str) -> std::result::Result<(String, &str), &'static str> {
    let (quoted, body) = match text.strip_prefix('\'') {
        Some(body) => (true, body),
        None => (false, text),
    };
    let mut value = String::new();
    let mut chars = body.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '\\' => value.push(chars.next().ok_or("ends in `\\`")?.1),
            '\'' if quoted => return Ok((value, &body[at + 1..])),
            c if c.is_whitespace() && !quoted => return Ok((value, &body[at..])),
            c => value.push(c),
        }
    }
    if quoted {
        Err("has a quote that is not closed")
    } else {
        Ok((value, ""))
    }
}

/// `kwargs`: a map of engine options (values of any scalar type), or the
/// text `DB_KWARGS` takes.
fn kwargs<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Vec<(String, String)>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Kwargs {
        Map(std::collections::BTreeMap<String, Loose>),
        Text(String),
    }
    Ok(match Option::<Kwargs>::deserialize(d)? {
        None => Vec::new(),
        Some(Kwargs::Text(text)) => {
            parse_kwargs("kwargs", &text).map_err(serde::de::Error::custom)?
        }
        Some(Kwargs::Map(map)) => map
            .into_iter()
            .map(|(key, value)| (key, loose_text(value)))
            .collect(),
    })
}

/// Comma-separated URLs, each checked (errors never show a password).
fn parse_url_list(variable: &str, text: &str) -> Result<Vec<String>> {
    checked_urls(variable, split_urls(text))
}

/// `urls` trimmed, the empty ones left out, each checked to be a database
/// URL (an error names `variable`, never a password).
fn checked_urls<'a>(
    variable: &str,
    urls: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<String>> {
    urls.into_iter()
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .map(|url| {
            url.parse::<DatabaseUrl>()
                .map(|_| url.to_owned())
                .map_err(|e| named(variable, &problem(e)))
        })
        .collect()
}

/// Comma-separated URLs split at the commas that a scheme follows
/// (`postgres://`), so that a URL keeps a comma of its own: several hosts
/// (`postgres://a,b/shop`), or one in a password.
fn split_urls(text: &str) -> Vec<&str> {
    let starts_url = |rest: &str| {
        let rest = rest.trim_start_matches(|c: char| c == ',' || c.is_whitespace());
        rest.split_once("://")
            .is_some_and(|(scheme, _)| is_scheme(scheme))
    };
    let mut urls = Vec::new();
    let mut start = 0;
    for (comma, _) in text.match_indices(',') {
        if starts_url(&text[comma + 1..]) {
            urls.push(&text[start..comma]);
            start = comma + 1;
        }
    }
    urls.push(&text[start..]);
    urls
}

/// URLs as a list, or as one comma-separated text (an environment
/// variable through figment).
fn url_list<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Urls {
        One(String),
        Many(Vec<String>),
    }
    // Each URL of a list is one, commas and all.
    match Option::<Urls>::deserialize(d)? {
        None => Ok(Vec::new()),
        Some(Urls::One(text)) => parse_url_list("replica_dsns", &text),
        Some(Urls::Many(list)) => checked_urls("replica_dsns", list.iter().map(String::as_str)),
    }
    .map_err(serde::de::Error::custom)
}

/// Text, also where a config source typed it: figment and TOML read a
/// password `12345` as a number, a database `true` as a boolean.
fn text<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Typed {
        Text(String),
        Signed(i64),
        Unsigned(u64),
        Float(f64),
        Bool(bool),
    }
    Ok(match Typed::deserialize(d)? {
        Typed::Text(text) => text,
        Typed::Signed(n) => n.to_string(),
        Typed::Unsigned(n) => n.to_string(),
        Typed::Float(x) => x.to_string(),
        Typed::Bool(b) => b.to_string(),
    })
}

fn optional_text<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    struct Text(#[serde(deserialize_with = "text")] String);
    Ok(Option::<Text>::deserialize(d)?.map(|Text(text)| text))
}

fn flexible_bool<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<bool, D::Error> {
    match Loose::deserialize(d)? {
        Loose::Bool(b) => Ok(b),
        Loose::Number(n) if n == 0.0 || n == 1.0 => Ok(n == 1.0),
        // serde does not say which field this is; its caller (figment,
        // serde_json) names it, so the message does not make up a name.
        Loose::Text(text) => parse_bool("", &text)
            .map_err(|_| serde::de::Error::custom(format!("expected true or false, got `{text}`"))),
        Loose::Number(n) => Err(serde::de::Error::custom(format!(
            "expected true or false, got {n}"
        ))),
    }
}

fn to_duration<E: serde::de::Error>(value: Loose) -> std::result::Result<Duration, E> {
    let expected = "expected a duration: seconds (1.5) or text with a unit (\"500ms\", \"2s\")";
    match value {
        // `try_`: negative, not finite or too large for a `Duration` is an
        // error, not a panic.
        Loose::Number(n) => Duration::try_from_secs_f64(n).map_err(|_| E::custom(expected)),
        Loose::Text(text) => {
            parse_duration("", &text).map_err(|_| E::custom(format!("{expected}, got `{text}`")))
        }
        _ => Err(E::custom(expected)),
    }
}

fn duration<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Duration, D::Error> {
    to_duration(Loose::deserialize(d)?)
}

fn optional_duration<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Duration>, D::Error> {
    Option::<Loose>::deserialize(d)?
        .map(to_duration)
        .transpose()
}

fn ssl_mode<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<SslMode>, D::Error> {
    let Some(value) = Option::<Loose>::deserialize(d)? else {
        return Ok(None);
    };
    parse_ssl("ssl", &loose_text(value))
        .map(Some)
        .map_err(serde::de::Error::custom)
}

fn root_cert<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<SslRootCert>, D::Error> {
    Option::<String>::deserialize(d)?
        .map(|text| text.parse().map_err(serde::de::Error::custom))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn a_variable_that_is_not_text_is_named_not_ignored() {
        use std::os::unix::ffi::OsStringExt;
        let var =
            |name: &str, value: &[u8]| (name.into(), std::ffi::OsString::from_vec(value.to_vec()));
        all_text([var("DB_HOST", b"db"), var("OTHER", b"\xff")].into_iter()).unwrap();
        // A `DB_*` variable no setting reads is not the settings' to refuse.
        all_text([var("DB_BACKUP_DIR", b"/srv/caf\xe9")].into_iter()).unwrap();
        let err = all_text([var("DB_REPLICA_DSNS", b"\xff")].into_iter()).unwrap_err();
        assert!(err.to_string().contains("DB_REPLICA_DSNS"), "{err}");
        let err = all_text([var("DB_PASSWORD", b"pa\xffss")].into_iter()).unwrap_err();
        assert!(err.to_string().contains("DB_PASSWORD"), "{err}");
        assert!(!err.to_string().contains("pa"), "never the value: {err}");
    }

    #[test]
    fn another_database_on_the_same_server() {
        let dsn = |dsn: &str| Settings {
            dsn: Some(dsn.to_owned()),
            ..Settings::default()
        };
        let cases = [
            (
                "postgres://u:p@h:5432/app?sslmode=require",
                "app",
                "postgres://u:p@h:5432/app_t1?sslmode=require",
            ),
            ("postgres://h", "", "postgres://h/app_t1"),
            (
                "postgres:///app?host=/run/postgresql",
                "app",
                "postgres:///app_t1?host=/run/postgresql",
            ),
            ("postgresql://h/my%20db", "my db", "postgresql://h/app_t1"),
            // Malformed escapes stay as written.
            ("postgres://h/a%+1b%2", "a%+1b%2", "postgres://h/app_t1"),
            // A `dbname` parameter names the database over the path, so
            // it goes: it would take every tenant to the same one.
            (
                "postgres://u@h/shop?dbname=shop&sslmode=require",
                "shop",
                "postgres://u@h/app_t1?sslmode=require",
            ),
            (
                "postgres://u@h/?db%6Eame=shop",
                "shop",
                "postgres://u@h/app_t1",
            ),
            // A raw `?` in a password is the password's, as the engine
            // reads it.
            (
                "postgres://app:pa?ss@db/shop",
                "shop",
                "postgres://app:pa?ss@db/app_t1",
            ),
        ];
        for (given, name, tenant) in cases {
            let settings = dsn(given);
            assert_eq!(settings.database_name(), name, "{given}");
            assert_eq!(settings.for_database("app_t1").url(), tenant, "{given}");
        }
        // A name that is not URL-safe is escaped, and reads back the same.
        let odd = dsn("postgres://h/app").for_database("a b/c?d");
        assert_eq!(odd.url(), "postgres://h/a%20b%2Fc%3Fd");
        assert_eq!(odd.database_name(), "a b/c?d");
        // Without a DSN, the parts.
        let parts = Settings::default().for_database("shop_acme");
        assert_eq!(parts.database_name(), "shop_acme");
        assert!(parts.url().ends_with("/shop_acme"), "{}", parts.url());
    }

    fn from(vars: &[(&str, &str)]) -> Result<Settings> {
        Settings::from_lookup(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn defaults_are_those_of_gino_extensions() {
        let s = from(&[]).unwrap();
        assert_eq!(s, Settings::default());
        assert_eq!(
            (
                s.host.as_str(),
                s.port,
                s.user.as_str(),
                s.password.as_str()
            ),
            ("localhost", 5432, "postgres", "")
        );
        assert_eq!(s.database, "postgres");
        assert_eq!((s.pool_min_size, s.pool_max_size), (5, 10));
        assert!(!s.echo && s.use_connection_for_request && s.ssl.is_none());
        assert_eq!(
            (s.retry_limit, s.retry_interval),
            (1, Duration::from_secs(1))
        );
        assert_eq!(s.url(), "postgres://postgres@localhost:5432/postgres");
    }

    #[test]
    fn values_but_the_password_are_trimmed() {
        let s = from(&[
            ("DB_HOST", "db\r"),
            ("DB_PORT", " 6543\r"),
            ("DB_USER", " app\r"),
            ("DB_PASSWORD", " secret\r"),
            ("DB_DATABASE", "shop\r\n"),
            ("DB_SSL_ROOT_CERT", "/ca.pem\r"),
        ])
        .unwrap();
        assert_eq!(s.url(), "postgres://app:%20secret%0D@db:6543/shop");
        assert_eq!(s.ssl_root_cert, Some(SslRootCert::File("/ca.pem".into())));
        let dsn = from(&[("DB_DSN", "postgres://app@db/shop\r")]).unwrap();
        assert_eq!(dsn.url(), "postgres://app@db/shop");
    }

    #[test]
    fn every_variable_is_read() {
        let s = from(&[
            ("DB_HOST", "db"),
            ("DB_PORT", "6543"),
            ("DB_USER", "app"),
            ("DB_PASSWORD", "pa:ss/word"),
            ("DB_DATABASE", "shop"),
            ("DB_POOL_MIN_SIZE", "2"),
            ("DB_POOL_MAX_SIZE", "4"),
            ("DB_ECHO", "ON"),
            ("DB_SSL", "verify-full"),
            ("DB_SSL_ROOT_CERT", "/ca.pem"),
            ("DB_USE_CONNECTION_FOR_REQUEST", "No"),
            ("DB_RETRY_LIMIT", "7"),
            ("DB_RETRY_INTERVAL", "250ms"),
            ("DB_ACQUIRE_TIMEOUT", "2.5"),
            ("DB_STATEMENT_TIMEOUT", "10s"),
            ("DB_MAX_INACTIVE_CONNECTION_LIFETIME", "90"),
            ("DB_STATEMENT_CACHE", "0"),
            ("DB_SHUTDOWN_TIMEOUT", "1m"),
        ])
        .unwrap();
        assert_eq!(s.url(), "postgres://app:pa%3Ass%2Fword@db:6543/shop");
        assert_eq!((s.pool_min_size, s.pool_max_size), (2, 4));
        assert!(s.echo && !s.use_connection_for_request && !s.statement_cache);
        assert_eq!(s.ssl, Some(SslMode::VerifyFull));
        assert_eq!(s.ssl_root_cert, Some(SslRootCert::File("/ca.pem".into())));
        assert_eq!(s.retry_limit, 7);
        assert_eq!(s.retry_interval, Duration::from_millis(250));
        assert_eq!(s.acquire_timeout, Some(Duration::from_millis(2500)));
        assert_eq!(s.statement_timeout, Some(Duration::from_secs(10)));
        assert_eq!(
            s.max_inactive_connection_lifetime,
            Some(Duration::from_secs(90))
        );
        assert_eq!(s.shutdown_timeout, Duration::from_secs(60));
        for (value, mode) in [("true", SslMode::VerifyFull), ("off", SslMode::Disable)] {
            assert_eq!(from(&[("DB_SSL", value)]).unwrap().ssl, Some(mode));
        }
    }

    #[test]
    fn a_setting_the_dsn_gives_too_must_agree_with_it() {
        // Every setting an option stands for is one that serde and the
        // variables know, so that `given` is asked by a key it can answer.
        for option in [
            "min_size",
            "max_size",
            "echo",
            "statement_cache",
            "acquire_timeout",
            "statement_timeout",
            "max_inactive_connection_lifetime",
            "sslmode",
            "sslrootcert",
        ] {
            let key = setting_key(option).expect("an option with a setting");
            assert!(Settings::KEYS.contains(&key), "{option} → {key}");
        }
        let dsn = "postgres://u:hunter2@h/d?sslmode=disable&max_size=20&acquire_timeout=5s&echo=on";
        // Left at their defaults, the settings yield to the DSN.
        from(&[("DB_DSN", dsn)]).unwrap();
        // Saying the same in both places is fine.
        from(&[
            ("DB_DSN", dsn),
            ("DB_POOL_MAX_SIZE", "20"),
            ("DB_SSL", "false"),
        ])
        .unwrap();
        from(&[("DB_DSN", dsn), ("DB_ACQUIRE_TIMEOUT", "5000ms")]).unwrap();
        for (variable, value) in [
            ("DB_SSL", "verify-full"),
            ("DB_SSL", "true"),
            ("DB_POOL_MAX_SIZE", "15"),
            ("DB_ACQUIRE_TIMEOUT", "1s"),
            // Given, though at its default: it still says otherwise.
            ("DB_ECHO", "off"),
            (
                "DB_POOL_MAX_SIZE",
                &Settings::default().pool_max_size.to_string(),
            ),
        ] {
            match from(&[("DB_DSN", dsn), (variable, value)]) {
                Err(Error::Configuration(m)) => {
                    assert!(m.contains(variable) && m.contains("DB_DSN says"), "{m}");
                    assert!(!m.contains("hunter2"), "{m}");
                }
                other => panic!("{variable}={value} beside {dsn}: {other:?}"),
            }
        }
        match from(&[
            ("DB_KWARGS", "statement_cache=false"),
            ("DB_STATEMENT_CACHE", "true"),
        ]) {
            Err(Error::Configuration(m)) => assert!(
                m.contains("DB_STATEMENT_CACHE") && m.contains("DB_KWARGS says"),
                "{m}"
            ),
            other => panic!("DB_STATEMENT_CACHE=true beside statement_cache=false: {other:?}"),
        }
        let mut typed = Settings {
            dsn: Some("postgres://h/d?sslrootcert=/ca.pem".into()),
            ssl_root_cert: Some(SslRootCert::System),
            ..Settings::default()
        };
        assert!(typed.validate().is_err());
        typed.ssl_root_cert = Some(SslRootCert::File("/ca.pem".into()));
        typed.validate().unwrap();
    }

    #[test]
    fn a_service_s_engine_options_must_agree_with_the_settings() {
        let files = crate::service::tests::Files::new("web-settings");
        let file = files.write("services.conf", "[shop]\nhost=db1\nmax_size=30\n");
        let dsn = format!("postgres://u@h/d?service=shop&servicefile={file}");
        from(&[("DB_DSN", &dsn)]).unwrap();
        from(&[("DB_DSN", &dsn), ("DB_POOL_MAX_SIZE", "30")]).unwrap();
        for (variable, value) in [("DB_POOL_MAX_SIZE", "20"), ("DB_KWARGS", "max_size=25")] {
            match from(&[("DB_DSN", &dsn), (variable, value)]) {
                Err(Error::Configuration(m)) => assert!(
                    m.contains(variable) && m.contains("the service `shop` says max_size=30"),
                    "{m}"
                ),
                other => panic!("{variable}={value} beside the service: {other:?}"),
            }
        }
        // What the URL gives is not the service's to say.
        let overridden = format!("{dsn}&max_size=20");
        from(&[("DB_DSN", &overridden), ("DB_POOL_MAX_SIZE", "20")]).unwrap();
    }

    #[test]
    fn kwargs_are_written_as_in_a_libpq_connection_string() {
        let pairs = parse_kwargs(
            "DB_KWARGS",
            "  application_name = 'my shop'\tsslrootcert='/etc/my ca/root.crt' \
             echo=on empty='' quote='it\\'s' slash=a\\\\b  ",
        )
        .unwrap();
        assert_eq!(
            pairs,
            [
                ("application_name", "my shop"),
                ("sslrootcert", "/etc/my ca/root.crt"),
                ("echo", "on"),
                ("empty", ""),
                ("quote", "it's"),
                ("slash", "a\\b"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        assert_eq!(parse_kwargs("DB_KWARGS", "   ").unwrap(), []);
        let settings = from(&[("DB_KWARGS", "application_name='my shop'")]).unwrap();
        let options = settings.engine_options().unwrap();
        assert_eq!(options.application_name.as_deref(), Some("my shop"));
    }

    #[test]
    fn kwargs_name_more_engine_options() {
        let s = from(&[(
            "DB_KWARGS",
            "max_inactive_connection_lifetime=59 application_name=shop",
        )])
        .unwrap();
        assert_eq!(
            s.kwargs,
            [
                ("max_inactive_connection_lifetime".into(), "59".into()),
                ("application_name".into(), "shop".into())
            ]
        );
        let options = s.engine_options().unwrap();
        assert_eq!(options.application_name.as_deref(), Some("shop"));
        assert_eq!(
            options.max_inactive_connection_lifetime,
            Some(Duration::from_secs(59))
        );
        let err = |vars: &[(&str, &str)]| match from(vars) {
            Err(Error::Configuration(m)) => m,
            other => panic!("expected a configuration error for {vars:?}, got {other:?}"),
        };
        // asyncpg's own keywords are not gino's: named, with what is known.
        let unknown = err(&[("DB_KWARGS", "max_queries=50000")]);
        assert!(
            unknown.contains("DB_KWARGS") && unknown.contains("max_queries"),
            "{unknown}"
        );
        assert!(err(&[("DB_KWARGS", "echo")]).contains("key=value"));
        assert!(err(&[("DB_KWARGS", "=on")]).contains("without a key"));
        assert!(err(&[("DB_KWARGS", "application_name='shop")]).contains("not closed"));
        assert!(err(&[("DB_KWARGS", "application_name=shop\\")]).contains("ends in"));
        assert!(err(&[("DB_KWARGS", "echo=maybe")]).contains("DB_KWARGS"));
        // Said twice, it must agree.
        let twice = err(&[("DB_KWARGS", "max_size=20"), ("DB_POOL_MAX_SIZE", "15")]);
        assert!(
            twice.contains("DB_POOL_MAX_SIZE") && twice.contains("DB_KWARGS says"),
            "{twice}"
        );
        from(&[("DB_KWARGS", "max_size=20"), ("DB_POOL_MAX_SIZE", "20")]).unwrap();
        let dsn = err(&[
            ("DB_KWARGS", "application_name=a"),
            ("DB_DSN", "postgres://h/d?application_name=b"),
        ]);
        assert!(
            dsn.contains("DB_KWARGS") && dsn.contains("DB_DSN says"),
            "{dsn}"
        );
        // Spellings of one option are compared by what they set.
        from(&[
            ("DB_KWARGS", "echo=yes statement_timeout=5"),
            ("DB_DSN", "postgres://h/d?echo=on&statement_timeout=5s"),
        ])
        .unwrap();
        let alias = err(&[
            ("DB_KWARGS", "pool_max_size=20"),
            ("DB_DSN", "postgres://h/d?max_size=30"),
        ]);
        assert!(alias.contains("max_size=30"), "{alias}");
        let twice = err(&[("DB_KWARGS", "max_size=20 pool_max_size=30")]);
        assert!(twice.contains("DB_KWARGS says max_size=20"), "{twice}");
        let s = from(&[("DB_KWARGS", "application_name=secret")]).unwrap();
        assert!(!format!("{s:?}").contains("secret"));
        // A config file's map, its values of any scalar type.
        let s: Settings = serde_json::from_str(
            r#"{"kwargs": {"max_inactive_connection_lifetime": 59, "statement_cache": false}}"#,
        )
        .unwrap();
        let options = s.engine_options().unwrap();
        assert!(!options.statement_cache);
        let s: Settings = serde_json::from_str(r#"{"kwargs": "echo=yes"}"#).unwrap();
        assert!(s.engine_options().unwrap().echo);
    }

    #[test]
    fn the_dsn_replaces_the_parts() {
        let s = from(&[
            ("DB_DSN", "postgresql://u:secret@h:1/d?application_name=x"),
            ("DB_HOST", "ignored"),
        ])
        .unwrap();
        assert_eq!(s.url(), "postgresql://u:secret@h:1/d?application_name=x");
    }

    #[test]
    fn bad_values_name_the_variable_and_never_the_password() {
        let err = |vars: &[(&str, &str)]| match from(vars) {
            Err(Error::Configuration(m)) => m,
            other => panic!("expected a configuration error for {vars:?}, got {other:?}"),
        };
        for (var, value) in [
            ("DB_PORT", "http"),
            ("DB_PORT", "70000"),
            ("DB_POOL_MIN_SIZE", "-1"),
            ("DB_POOL_MAX_SIZE", "many"),
            ("DB_POOL_MAX_SIZE", "1000000000"),
            ("DB_POOL_MAX_SIZE", "0"),
            ("DB_PORT", "0"),
            ("DB_SHUTDOWN_TIMEOUT", "1e30"),
            ("DB_ECHO", "maybe"),
            ("DB_SSL", "bogus"),
            ("DB_USE_CONNECTION_FOR_REQUEST", "2"),
            ("DB_RETRY_LIMIT", "x"),
            ("DB_RETRY_INTERVAL", "soon"),
            ("DB_ACQUIRE_TIMEOUT", "-3"),
            ("DB_STATEMENT_TIMEOUT", "1h"),
            ("DB_STATEMENT_CACHE", "yep"),
            ("DB_SHUTDOWN_TIMEOUT", "later"),
        ] {
            let message = err(&[(var, value)]);
            assert!(message.contains(var), "{var}={value}: {message}");
        }
        let message = err(&[("DB_DSN", "mysql://u:hunter2@h/d")]);
        assert!(
            message.contains("DB_DSN") && !message.contains("hunter2"),
            "{message}"
        );
        let message = err(&[("DB_DSN", "nonsense:hunter2@h")]);
        assert!(!message.contains("hunter2"), "{message}");
        let message = err(&[("DB_POOL_MIN_SIZE", "9"), ("DB_POOL_MAX_SIZE", "3")]);
        assert!(message.contains("DB_POOL_MIN_SIZE"), "{message}");
        let s = from(&[("DB_PASSWORD", "hunter2")]).unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
        let s = from(&[("DB_DSN", "postgres://u:hunter2@h/d")]).unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn unix_sockets_and_ipv6_hosts_make_valid_urls() {
        let mut s = Settings {
            host: "/var/run/postgresql".into(),
            ..Settings::default()
        };
        assert_eq!(
            s.url(),
            "postgres://postgres@/postgres?host=%2Fvar%2Frun%2Fpostgresql&port=5432"
        );
        s.url().parse::<DatabaseUrl>().unwrap();
        s.host = "::1".into();
        assert_eq!(s.url(), "postgres://postgres@[::1]:5432/postgres");
        s.url().parse::<DatabaseUrl>().unwrap();
    }

    #[test]
    fn variables_go_over_settings_as_text() {
        let base = Settings {
            database: "shop".into(),
            pool_max_size: 20,
            ..Settings::default()
        };
        let vars = |name: &str| match name {
            "DB_PASSWORD" => Some("0123".to_owned()),
            "DB_POOL_MAX_SIZE" => Some("30".to_owned()),
            _ => None,
        };
        let s = base.clone().with_lookup(vars).unwrap();
        assert_eq!((s.database.as_str(), s.password.as_str()), ("shop", "0123"));
        assert_eq!(s.pool_max_size, 30);
        let bad = base.with_lookup(|name| (name == "DB_PORT").then(|| "x".to_owned()));
        assert!(bad.unwrap_err().to_string().contains("DB_PORT"));
        let dsn =
            Settings::from_lookup(|name| (name == "DB_DSN").then(|| "mysql://h/d".to_owned()));
        let dsn = dsn.unwrap_err().to_string();
        assert_eq!(dsn.matches("invalid configuration").count(), 1, "{dsn}");
        assert!(
            dsn.contains("DB_DSN: unsupported URL scheme `mysql`"),
            "{dsn}"
        );
    }

    #[test]
    fn serde_takes_typed_and_textual_values() {
        let s: Settings = serde_json::from_str(
            r#"{"host": "db", "port": 6000, "echo": "yes", "retry_interval": 0.5,
                "acquire_timeout": "2s", "ssl": true, "use_connection_for_request": "off"}"#,
        )
        .unwrap();
        assert_eq!((s.host.as_str(), s.port), ("db", 6000));
        assert_eq!(s.retry_interval, Duration::from_millis(500));
        assert_eq!(s.acquire_timeout, Some(Duration::from_secs(2)));
        assert_eq!(s.ssl, Some(SslMode::VerifyFull));
        assert!(!s.use_connection_for_request);
        for key in Settings::KEYS {
            let one = serde_json::json!({ *key: null });
            if let Err(e) = serde_json::from_value::<Settings>(one) {
                assert!(
                    !e.to_string().contains("unknown field"),
                    "KEYS names `{key}`, which serde does not know: {e}"
                );
            }
        }
        // Text settings a config source typed: taken as their text.
        let typed: Settings = serde_json::from_str(
            r#"{"user": 1000, "password": 12345, "database": true, "host": 1.5, "dsn": null}"#,
        )
        .unwrap();
        assert_eq!(
            [typed.user, typed.password, typed.database, typed.host],
            ["1000", "12345", "true", "1.5"]
        );
        let dsn: Settings = serde_json::from_str(r#"{"dsn": "postgres://h/d"}"#).unwrap();
        assert_eq!(dsn.dsn.as_deref(), Some("postgres://h/d"));
        let unknown = serde_json::from_str::<Settings>(r#"{"hots": "db"}"#).unwrap_err();
        assert!(unknown.to_string().contains("hots"), "{unknown}");
        // Durations out of `Duration`'s range are errors, not panics.
        for bad in ["1e30", "-1", "\"1e30\""] {
            let json = format!(r#"{{"shutdown_timeout": {bad}}}"#);
            let err = serde_json::from_str::<Settings>(&json).unwrap_err();
            assert!(err.to_string().contains("duration"), "{bad}: {err}");
        }
    }

    #[test]
    fn replica_urls_keep_their_own_commas() {
        let settings = |text: &str| {
            Settings::from_lookup(|name| (name == "DB_REPLICA_DSNS").then(|| text.to_owned()))
        };
        let text = "postgres://a,b:6432/db, postgresql://u:p,w@c/db,,postgres://d/db";
        assert_eq!(
            settings(text).unwrap().replica_dsns,
            [
                "postgres://a,b:6432/db",
                "postgresql://u:p,w@c/db",
                "postgres://d/db"
            ]
        );
        // A list from a config file: each item is one URL, commas and all.
        let listed: Settings = serde_json::from_str(
            r#"{"replica_dsns": ["postgres://a,b/db", "postgresql://u:p,w@c/db"]}"#,
        )
        .unwrap();
        assert_eq!(
            listed.replica_dsns,
            ["postgres://a,b/db", "postgresql://u:p,w@c/db"]
        );
        let refused = serde_json::from_str::<Settings>(
            r#"{"replica_dsns": ["postgres://a/db", "u:s3cret@c/db"]}"#,
        )
        .unwrap_err();
        assert!(refused.to_string().contains("replica_dsns"), "{refused}");
        assert!(!refused.to_string().contains("s3cret"), "{refused}");
        // A URL gino does not speak is refused, its password unrepeated.
        let refused = settings("postgres://a/db,mysql://u:s3cret@b/db").unwrap_err();
        assert!(refused.to_string().contains("DB_REPLICA_DSNS"), "{refused}");
        assert!(!refused.to_string().contains("s3cret"), "{refused}");
    }
}
