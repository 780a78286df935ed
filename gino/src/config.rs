//! Database URLs and engine options (GINO's `make_url` and `create_engine`
//! keyword arguments).
//!
//! Uses: `error`, `budget` (an option holds one), `passfile` (where it is),
//! `auth` (`require_auth`), `service` (a service's parameters).

use std::fmt;
#[cfg(test)]
use std::path::Path;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::auth::RequireAuth;
use crate::budget::ConnectionBudget;
use crate::error::{Error, Result};
use crate::passfile::PassFile;

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

/// How a connection negotiates TLS: libpq's `sslmode`, with libpq's
/// meanings.
///
/// | mode | encrypted | server certificate checked |
/// | --- | --- | --- |
/// | `disable` | never | — |
/// | `allow` | only if the server insists (plaintext is tried first) | as `prefer` |
/// | `prefer` (default) | if the server supports TLS, else plaintext | only if a root certificate is configured |
/// | `require` | always | only if a root certificate is configured (then as `verify-ca`) |
/// | `verify-ca` | always | chain up to a trusted root |
/// | `verify-full` | always | chain, and the host name is in the certificate |
///
/// TLS is never used on Unix-domain sockets, as libpq does. One deviation
/// from libpq, for the same reason: on a loopback address (`127.0.0.1`,
/// `::1`, `localhost`) `prefer` behaves as `allow`, plaintext first and TLS
/// only if the server insists, since no one can listen in there and TLS
/// would cost every round trip (~15% of a primary-key lookup, measured).
/// `require` and stronger encrypt loopback connections too. A root
/// certificate is configured with `sslrootcert` (a PEM file, or `system`
/// for the operating system's store), or found at `~/.postgresql/root.crt`.
///
/// ```
/// use gino::SslMode;
/// let mode: SslMode = "verify-full".parse().unwrap();
/// assert_eq!(mode, SslMode::VerifyFull);
/// assert!("bogus".parse::<SslMode>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SslMode {
    /// Plaintext only.
    Disable,
    /// Plaintext first; TLS if the server refuses plaintext.
    Allow,
    /// TLS if the server offers it, plaintext otherwise (libpq's default).
    #[default]
    Prefer,
    /// TLS or no connection.
    Require,
    /// TLS with the server's certificate chain checked against the roots.
    VerifyCa,
    /// TLS with the chain checked and the host name matched.
    VerifyFull,
}

impl SslMode {
    /// libpq's name of the mode.
    ///
    /// ```
    /// use gino::SslMode;
    /// assert_eq!(SslMode::VerifyFull.as_str(), "verify-full");
    /// assert_eq!(SslMode::default().as_str(), "prefer");
    /// assert_eq!(SslMode::Require.as_str().parse::<SslMode>().unwrap(), SslMode::Require);
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// Whether a connection without TLS is refused.
    #[cfg(not(feature = "tls"))]
    pub(crate) fn requires_tls(self) -> bool {
        matches!(
            self,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull
        )
    }
}

impl FromStr for SslMode {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.trim() {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => {
                return Err(Error::Configuration(format!(
                    "unknown sslmode `{s}`: use one of disable, allow, prefer, require, \
                     verify-ca, verify-full"
                )));
            }
        })
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the root certificates that vouch for the server come from:
/// libpq's `sslrootcert`.
///
/// `"system"` means the operating system's store (as in libpq 16, this
/// makes `verify-full` the default mode and refuses weaker ones, since
/// anyone can get a publicly trusted certificate for a name they own); any
/// other text is the path of a PEM file (write `./system` for a file named
/// `system`).
///
/// ```
/// use gino::SslRootCert;
/// assert_eq!("system".parse::<SslRootCert>().unwrap(), SslRootCert::System);
/// assert_eq!(
///     "/etc/ssl/db-ca.pem".parse::<SslRootCert>().unwrap(),
///     SslRootCert::File("/etc/ssl/db-ca.pem".into())
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SslRootCert {
    /// The certificates of this PEM file.
    File(PathBuf),
    /// The operating system's trusted roots.
    System,
}

impl FromStr for SslRootCert {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "" => Err(Error::Configuration(
                "sslrootcert is empty: give the path of a PEM file, or `system`".to_owned(),
            )),
            "system" => Ok(SslRootCert::System),
            path => Ok(SslRootCert::File(PathBuf::from(path))),
        }
    }
}

impl fmt::Display for SslRootCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SslRootCert::File(path) => write!(f, "{}", path.display()),
            SslRootCert::System => f.write_str("system"),
        }
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
/// | [`max_inactive_connection_lifetime`](Self::max_inactive_connection_lifetime) | `max_inactive_connection_lifetime` | 300 s (`0`: never) |
/// | [`echo`](Self::echo) | `echo` | false |
/// | [`statement_timeout`](Self::statement_timeout) | `statement_timeout` | server's |
/// | [`timeout`](Self::timeout) | `timeout`, or asyncpg's `command_timeout` | none |
/// | [`application_name`](Self::application_name) | `application_name` | none |
/// | [`isolation_level`](Self::isolation_level) | `isolation_level` | server's |
/// | [`pool`](Self::pool) | `pool` | true |
/// | [`connect_timeout`](Self::connect_timeout) | `connect_timeout` | none |
/// | [`statement_cache`](Self::statement_cache) | `statement_cache`, or asyncpg's `statement_cache_size` (`0`: off; any other size: on, as gino's cache keeps every statement) | true |
/// | [`ssl_mode`](Self::ssl_mode) | `sslmode`, or asyncpg's `ssl` (a mode, or `true` for `verify-full`, `false` for `disable`) | `PGSSLMODE`, else `prefer` |
/// | [`ssl_root_cert`](Self::ssl_root_cert) | `sslrootcert` | `PGSSLROOTCERT`, else `~/.postgresql/root.crt` if it exists |
/// | [`ssl_cert`](Self::ssl_cert) | `sslcert` | `PGSSLCERT`, else `~/.postgresql/postgresql.crt` if it exists |
/// | [`ssl_key`](Self::ssl_key) | `sslkey` | `PGSSLKEY`, else `~/.postgresql/postgresql.key` |
///
/// The URL also takes libpq's connection parameters: `host`, `port`,
/// `user`, `password`, `dbname`, `options` (e.g. `-c search_path=app`),
/// `hostaddr` (the IP address to connect to, one per host, so that no
/// name is looked up; the host's name still serves TLS checks and the
/// password file), `passfile`, `channel_binding` (`prefer` by default: a password login
/// over TLS is bound to the server's certificate when the server offers
/// it; `require` refuses a login without), `require_auth` (the ways a
/// server may have the client log in, e.g. `scram-sha-256`, or
/// `!password,!md5` for all but those; the names are `none`, `password`,
/// `md5`, `gss`, `sspi` and `scram-sha-256`: a server that asks for
/// another gets no answer and the connection fails with
/// [`Error::Configuration`]), `load_balance_hosts`
/// (`random` tries the hosts, and each host's addresses, in a random
/// order for every new connection), `ssl_min_protocol_version` (`TLSv1.2`
/// by default) and `ssl_max_protocol_version` (`TLSv1.2` or `TLSv1.3`),
/// `sslcrl` and `sslcrldir` (certificate revocation lists, PEM or DER, a
/// file and a directory of them, checked whenever the server's chain is;
/// `~/.postgresql/root.crl` when present), `sslsni` (`0` leaves the host
/// name out of the handshake), `sslcertmode` (`allow` by default: the
/// client certificate goes to a server that asks for it; `disable` never
/// sends it; `require` fails the handshake, with [`Error::Tls`], when the
/// server does not ask), `gssencmode` (`disable` or `prefer`: gino
/// has no GSSAPI encryption), `sslcompression` (ignored, as by libpq 14
/// and later), `client_encoding` (`UTF8` only, which gino always uses),
/// `sslnegotiation` (`postgres` only: PostgreSQL 17's `direct` is refused
/// with a message), `sslpassword` (the passphrase of an `sslkey` that is
/// an encrypted PKCS#8 key, `BEGIN ENCRYPTED PRIVATE KEY`),
/// `sslkeylogfile` (a file the TLS sessions' secrets are appended to, in
/// the key log format Wireshark reads, for debugging; it decrypts the
/// traffic, so keep it out of production), `min_protocol_version` and
/// `max_protocol_version` (`3.0`, `3.2` or `latest`: gino speaks protocol
/// 3.0, so a minimum of `3.2` is refused), `krbsrvname`, `gsslib` and
/// `gssdelegation` (taken and unused: gino does not speak GSSAPI, and a
/// server that asks for it is refused), `tcp_user_timeout` (milliseconds,
/// as in libpq, or a duration with its unit: how long sent data may stay
/// unacknowledged before the connection is dropped; Linux),
/// `fallback_application_name` (the `application_name` when neither the
/// URL, the options nor `PGAPPNAME` give one, as tools set it),
/// `requirepeer` (the operating-system user a server on a
/// Unix-domain socket must run as, e.g. `postgres`, looked up in
/// `/etc/passwd`; another is an [`Error::Configuration`] before anything
/// is sent), `keepalives`,
/// `keepalives_idle`, `keepalives_interval` (whole seconds up to 32767),
/// `keepalives_count` (up to 127; 0 in any of the three keeps the
/// system's default) and `target_session_attrs` (`any`, `read-write`,
/// `read-only`, `primary`, `standby`, `prefer-standby`), and, like libpq,
/// falls back to the environment for what it leaves out: `PGHOST`,
/// `PGPORT`, `PGUSER`, `PGPASSWORD`, `PGDATABASE`, `PGAPPNAME`,
/// `PGOPTIONS`, `PGCONNECT_TIMEOUT`, `PGTARGETSESSIONATTRS`,
/// `PGHOSTADDR`, `PGPASSFILE`, `PGCHANNELBINDING`, `PGREQUIREAUTH`,
/// `PGREQUIREPEER`, `PGMINPROTOCOLVERSION`, `PGMAXPROTOCOLVERSION`,
/// `PGLOADBALANCEHOSTS`,
/// `PGSSLMINPROTOCOLVERSION`, `PGSSLMAXPROTOCOLVERSION`, `PGSSLCRL`,
/// `PGSSLCRLDIR`, `PGSSLSNI`, `PGSSLCERTMODE` and the `PGSSL*` variables
/// above.
///
/// `service=name` (or `PGSERVICE`) takes the parameters of section
/// `[name]` of libpq's service file (`servicefile`, else `PGSERVICEFILE`,
/// else `~/.pg_service.conf`, then `PGSYSCONFDIR/pg_service.conf`): they fill
/// what the URL leaves out and come before the environment, as in libpq.
///
/// When neither the URL nor `PGPASSWORD` gives a password, each new
/// connection looks for one in libpq's password file: `passfile`, else
/// `PGPASSFILE`, else `~/.pgpass`, with lines of
/// `host:port:database:user:password` (`*` matches anything; a Unix
/// socket also matches `localhost`). As libpq does, gino ignores a file
/// that group or others can read.
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
#[derive(Clone)]
pub struct EngineOptions {
    pub(crate) min_size: usize,
    pub(crate) max_size: usize,
    pub(crate) acquire_timeout: Option<Duration>,
    pub(crate) max_inactive_connection_lifetime: Option<Duration>,
    pub(crate) echo: bool,
    pub(crate) statement_timeout: Option<Duration>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) application_name: Option<String>,
    pub(crate) isolation_level: Option<IsolationLevel>,
    pub(crate) pooled: bool,
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) statement_cache: bool,
    pub(crate) ssl_mode: Option<SslMode>,
    pub(crate) ssl_root_cert: Option<SslRootCert>,
    pub(crate) ssl_cert: Option<PathBuf>,
    pub(crate) ssl_key: Option<PathBuf>,
    pub(crate) on_connect: Option<OnConnect>,
    pub(crate) connection_budget: Option<ConnectionBudget>,
    pub(crate) replicas: Vec<String>,
    pub(crate) replica_max_lag: u64,
    pub(crate) replica_check_interval: Duration,
}

/// Code run on every new connection before its first use; see
/// [`EngineOptions::on_connect`].
pub type OnConnect = std::sync::Arc<
    dyn for<'c> Fn(
            &'c mut diesel_async::AsyncPgConnection,
        ) -> futures_util::future::BoxFuture<'c, diesel::QueryResult<()>>
        + Send
        + Sync,
>;

impl fmt::Debug for EngineOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineOptions")
            .field("min_size", &self.min_size)
            .field("max_size", &self.max_size)
            .field("acquire_timeout", &self.acquire_timeout)
            .field(
                "max_inactive_connection_lifetime",
                &self.max_inactive_connection_lifetime,
            )
            .field("echo", &self.echo)
            .field("statement_timeout", &self.statement_timeout)
            .field("timeout", &self.timeout)
            .field("application_name", &self.application_name)
            .field("isolation_level", &self.isolation_level)
            .field("pooled", &self.pooled)
            .field("connect_timeout", &self.connect_timeout)
            .field("statement_cache", &self.statement_cache)
            .field("ssl_mode", &self.ssl_mode)
            .field("ssl_root_cert", &self.ssl_root_cert)
            .field("ssl_cert", &self.ssl_cert)
            .field("ssl_key", &self.ssl_key)
            .field("on_connect", &self.on_connect.as_ref().map(|_| "<hook>"))
            .field("connection_budget", &self.connection_budget)
            .field("replicas", &self.replicas.len())
            .field("replica_max_lag", &self.replica_max_lag)
            .field("replica_check_interval", &self.replica_check_interval)
            .finish()
    }
}

/// asyncpg's default `max_inactive_connection_lifetime`, which GINO's
/// engines have.
const DEFAULT_INACTIVE_LIFETIME: Duration = Duration::from_secs(300);

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            min_size: 1,
            max_size: 10,
            acquire_timeout: None,
            max_inactive_connection_lifetime: Some(DEFAULT_INACTIVE_LIFETIME),
            echo: false,
            statement_timeout: None,
            timeout: None,
            application_name: None,
            isolation_level: None,
            pooled: true,
            connect_timeout: None,
            statement_cache: true,
            ssl_mode: None,
            ssl_root_cert: None,
            ssl_cert: None,
            ssl_key: None,
            on_connect: None,
            connection_budget: None,
            replicas: Vec::new(),
            replica_max_lag: 16 * 1024 * 1024,
            replica_check_interval: Duration::from_secs(1),
        }
    }
}

impl EngineOptions {
    /// The defaults (see the table above).
    ///
    /// ```
    /// # async fn demo(url: &str) -> gino::Result<()> {
    /// let engine = gino::create_engine(url, gino::EngineOptions::new()).await?;
    /// let pool = engine.pool_status();
    /// assert_eq!((pool.size, pool.max_size), (1, 10)); // min_size 1, max_size 10
    /// assert!(!engine.echo());
    /// # engine.close().await;
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Connections opened when the engine is created (`0` opens none, so an
    /// engine for an unreachable server can still be created).
    ///
    /// ```
    /// # async fn demo(url: &str) -> gino::Result<()> {
    /// use gino::{create_engine, EngineOptions};
    /// let warm = create_engine(url, EngineOptions::new().min_size(3)).await?;
    /// assert_eq!(warm.pool_status().size, 3);
    /// // Nothing listens on port 1, but nothing is opened yet either.
    /// let unreachable = "postgres://app@127.0.0.1:1/shop";
    /// let cold = create_engine(unreachable, EngineOptions::new().min_size(0)).await?;
    /// assert_eq!(cold.pool_status().size, 0);
    /// # warm.close().await;
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn min_size(mut self, size: usize) -> Self {
        self.min_size = size;
        self
    }

    /// Most connections the pool holds at once.
    ///
    /// ```
    /// # async fn demo(url: &str) -> gino::Result<()> {
    /// use gino::{create_engine, EngineOptions};
    /// let engine = create_engine(url, EngineOptions::new().max_size(3)).await?;
    /// assert_eq!(engine.pool_status().max_size, 3);
    /// let too_small = create_engine(url, EngineOptions::new().min_size(5).max_size(2)).await;
    /// assert!(matches!(too_small, Err(gino::Error::Configuration(_))));
    /// # engine.close().await;
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn max_size(mut self, size: usize) -> Self {
        self.max_size = size;
        self
    }

    /// Longest wait for a free pooled connection before
    /// [`Error::PoolTimeout`]; per-acquire timeouts override it. Opening a
    /// new connection counts too: each opening may take this long (an
    /// unpooled engine's is its whole wait), those of `create_engine`'s
    /// first `min_size` connections as well. Zero is refused: no
    /// connection could be opened in it.
    ///
    /// ```
    /// # async fn demo(url: &str) -> gino::Result<()> {
    /// use std::time::Duration;
    /// let limit = Duration::from_millis(100);
    /// let options = gino::EngineOptions::new().max_size(1).acquire_timeout(limit);
    /// let engine = gino::create_engine(url, options).await?;
    /// let _busy = engine.acquire().await?; // the only connection
    /// let waited = engine.acquire().await;
    /// assert!(matches!(waited, Err(gino::Error::PoolTimeout(t)) if t == limit));
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = Some(timeout);
        self
    }

    /// How long a pooled connection may sit unused before the pool closes
    /// it (asyncpg's `max_inactive_connection_lifetime`, which GINO passes
    /// on; default 300 s, `Duration::ZERO` keeps idle connections open for
    /// good). The pool keeps `min_size` connections whatever their age; a
    /// quiet application's pool shrinks to that, and opens connections
    /// again as it is used.
    ///
    /// ```
    /// # async fn demo(url: &str) -> gino::Result<()> {
    /// use std::time::Duration;
    /// let options = gino::EngineOptions::new()
    ///     .min_size(0)
    ///     .max_inactive_connection_lifetime(Duration::from_millis(200));
    /// let engine = gino::create_engine(url, options).await?;
    /// drop(engine.acquire().await?);
    /// assert_eq!(engine.pool_status().size, 1);
    /// tokio::time::sleep(Duration::from_millis(600)).await;
    /// assert_eq!(engine.pool_status().size, 0); // closed as inactive
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn max_inactive_connection_lifetime(mut self, lifetime: Duration) -> Self {
        self.max_inactive_connection_lifetime = (!lifetime.is_zero()).then_some(lifetime);
        self
    }

    /// Log every statement with its bind values and duration through
    /// `tracing` (target `gino::echo`, level INFO).
    ///
    /// ```
    /// # async fn demo(url: &str) -> gino::Result<()> {
    /// let engine = gino::create_engine(url, gino::EngineOptions::new().echo(true)).await?;
    /// assert!(engine.echo()); // can be turned off later with `engine.set_echo(false)`
    /// # engine.close().await;
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn echo(mut self, echo: bool) -> Self {
        self.echo = echo;
        self
    }

    /// PostgreSQL's `statement_timeout` for every connection of the engine,
    /// enforced by the server.
    ///
    /// ```
    /// # async fn demo(url: &str) -> gino::Result<()> {
    /// use std::time::Duration;
    /// let options = gino::EngineOptions::new().statement_timeout(Duration::from_millis(100));
    /// let engine = gino::create_engine(url, options).await?;
    /// let slow = engine.status(gino::text("SELECT pg_sleep(5)")).await;
    /// assert_eq!(slow.unwrap_err().sqlstate(), Some("57014")); // query_canceled
    /// # engine.close().await;
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn statement_timeout(mut self, timeout: Duration) -> Self {
        self.statement_timeout = Some(timeout);
        self
    }

    /// Default client-side timeout of every query run through the engine;
    /// a query that exceeds it is cancelled on the server and fails with
    /// [`Error::QueryTimeout`]. `.timeout(..)` on a query overrides it.
    /// Zero is a configuration error when the engine is created (as
    /// asyncpg's `command_timeout=0` is): leave it unset for no timeout.
    ///
    /// ```
    /// # async fn demo(url: &str) -> gino::Result<()> {
    /// use std::time::Duration;
    /// let options = gino::EngineOptions::new().timeout(Duration::from_millis(100));
    /// let engine = gino::create_engine(url, options).await?;
    /// let slow = engine.status(gino::text("SELECT pg_sleep(5)")).await;
    /// assert!(matches!(slow, Err(gino::Error::QueryTimeout(_))));
    /// # engine.close().await;
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// `application_name` reported to the server (visible in `pg_stat_activity`).
    ///
    /// ```
    /// # async fn demo(url: &str) -> gino::Result<()> {
    /// use diesel::dsl::sql;
    /// use diesel::sql_types::Text;
    /// let options = gino::EngineOptions::new().application_name("billing");
    /// let engine = gino::create_engine(url, options).await?;
    /// let setting = diesel::select(sql::<Text>("current_setting('application_name')"));
    /// let name: String = engine.one(setting).await?;
    /// assert_eq!(name, "billing");
    /// # engine.close().await;
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn application_name(mut self, name: impl Into<String>) -> Self {
        self.application_name = Some(name.into());
        self
    }

    /// Isolation level of every connection of the engine
    /// (`default_transaction_isolation`, so statements outside explicit
    /// transactions run at it too), and of transactions that do not choose
    /// their own.
    ///
    /// ```
    /// # async fn demo(url: &str) -> gino::Result<()> {
    /// use diesel::dsl::sql;
    /// use diesel::sql_types::Text;
    /// use gino::IsolationLevel;
    /// let options = gino::EngineOptions::new().isolation_level(IsolationLevel::Serializable);
    /// let engine = gino::create_engine(url, options).await?;
    /// let setting = diesel::select(sql::<Text>("current_setting('transaction_isolation')"));
    /// let level: String = engine.one(setting).await?;
    /// assert_eq!(level, "serializable");
    /// # engine.close().await;
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn isolation_level(mut self, level: IsolationLevel) -> Self {
        self.isolation_level = Some(level);
        self
    }

    /// `false` disables pooling: every acquire opens a new connection and
    /// release closes it.
    ///
    /// ```
    /// # async fn demo(url: &str) -> gino::Result<()> {
    /// let engine = gino::create_engine(url, gino::EngineOptions::new().pool(false)).await?;
    /// assert_eq!(engine.pool_status().size, 0); // min_size opens nothing without a pool
    /// let conn = engine.acquire().await?;
    /// assert_eq!(engine.pool_status().size, 1);
    /// conn.release().await?;
    /// assert_eq!(engine.pool_status().size, 0);
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn pool(mut self, pooled: bool) -> Self {
        self.pooled = pooled;
        self
    }

    /// Longest wait for the server to accept a new connection; zero waits
    /// as long as it takes, as libpq's `connect_timeout=0` does.
    ///
    /// ```
    /// # async fn demo() -> gino::Result<()> {
    /// use std::time::{Duration, Instant};
    /// // Accepts TCP connections (the kernel does) but never answers.
    /// let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let url = format!("postgres://app@{}/shop", silent.local_addr().unwrap());
    /// let options = gino::EngineOptions::new().connect_timeout(Duration::from_millis(200));
    /// let started = Instant::now();
    /// let failed = gino::create_engine(&url, options).await;
    /// assert!(matches!(failed, Err(gino::Error::Connection(_))));
    /// assert!(started.elapsed() < Duration::from_secs(5));
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// `false` turns off the per-connection cache of prepared statements
    /// (on by default: a repeated query is parsed and planned once per
    /// connection). Without it every statement is sent unnamed, parsed in
    /// the same round trip that runs it, as sqlx and asyncpg do: what a
    /// pooler needs that hands each round trip to whichever server
    /// connection is free (PgBouncer in transaction mode, any version).
    /// With the cache on, PgBouncer's transaction mode needs 1.21 or newer
    /// with `max_prepared_statements`.
    ///
    /// ```
    /// let uncached = gino::EngineOptions::new().statement_cache(false);
    /// # let _ = uncached;
    /// ```
    pub fn statement_cache(mut self, enabled: bool) -> Self {
        self.statement_cache = enabled;
        self
    }

    /// TLS negotiation, libpq's `sslmode` (see [`SslMode`]).
    ///
    /// ```
    /// use gino::{EngineOptions, SslMode};
    /// let managed_db = EngineOptions::new()
    ///     .ssl_mode(SslMode::VerifyFull)
    ///     .ssl_root_cert(gino::SslRootCert::System);
    /// # let _ = managed_db;
    /// ```
    pub fn ssl_mode(mut self, mode: SslMode) -> Self {
        self.ssl_mode = Some(mode);
        self
    }

    /// The roots that vouch for the server's certificate, libpq's
    /// `sslrootcert` (see [`SslRootCert`]).
    ///
    /// ```
    /// let options = gino::EngineOptions::new()
    ///     .ssl_mode(gino::SslMode::VerifyCa)
    ///     .ssl_root_cert(gino::SslRootCert::File("/etc/db/ca.pem".into()));
    /// # let _ = options;
    /// ```
    pub fn ssl_root_cert(mut self, roots: SslRootCert) -> Self {
        self.ssl_root_cert = Some(roots);
        self
    }

    /// A client certificate (PEM, optionally followed by its chain) to
    /// present to servers that ask for one, libpq's `sslcert`; its key is
    /// [`ssl_key`](Self::ssl_key).
    ///
    /// ```
    /// let options = gino::EngineOptions::new()
    ///     .ssl_cert("/etc/db/client.crt")
    ///     .ssl_key("/etc/db/client.key");
    /// # let _ = options;
    /// ```
    pub fn ssl_cert(mut self, path: impl Into<PathBuf>) -> Self {
        self.ssl_cert = Some(path.into());
        self
    }

    /// The private key (PEM: PKCS#8, PKCS#1 or SEC1) of
    /// [`ssl_cert`](Self::ssl_cert), libpq's `sslkey`.
    ///
    /// ```
    /// let options = gino::EngineOptions::new().ssl_key("/etc/db/client.key");
    /// # let _ = options;
    /// ```
    pub fn ssl_key(mut self, path: impl Into<PathBuf>) -> Self {
        self.ssl_key = Some(path.into());
        self
    }

    /// A read replica of the engine's database (a streaming standby, or
    /// PgBouncer in front of some): implicit reads may run there, each
    /// replica with its own pool of these options; see
    /// [`Engine::routing`](crate::Engine::routing) for the rules. A server
    /// that is no standby (not in recovery) is warned of at its first
    /// check ([`ReplicaStats::standby`](crate::ReplicaStats::standby)).
    ///
    /// ```
    /// let options = gino::EngineOptions::new()
    ///     .replica("postgres://app@replica-1/shop")
    ///     .replica("postgres://app@replica-2/shop");
    /// # let _ = options;
    /// ```
    pub fn replica(mut self, url: impl Into<String>) -> Self {
        self.replicas.push(url.into());
        self
    }

    /// How far (bytes of WAL) a replica may be behind the primary and stay
    /// in rotation; default 16 MiB. Read from the servers
    /// (`pg_current_wal_lsn()` against `pg_last_wal_replay_lsn()`).
    ///
    /// ```
    /// let options = gino::EngineOptions::new().replica_max_lag(1024 * 1024);
    /// # let _ = options;
    /// ```
    pub fn replica_max_lag(mut self, bytes: u64) -> Self {
        self.replica_max_lag = bytes;
        self
    }

    /// How often replicas' health and lag are checked; default 1 s.
    ///
    /// ```
    /// let options = gino::EngineOptions::new()
    ///     .replica_check_interval(std::time::Duration::from_millis(250));
    /// # let _ = options;
    /// ```
    pub fn replica_check_interval(mut self, every: Duration) -> Self {
        self.replica_check_interval = every;
        self
    }

    /// Draws this engine's connections from `budget`, shared with other
    /// engines: opening a connection takes a unit of it and waits, up to
    /// the acquire timeout, when none is left (see [`ConnectionBudget`]).
    ///
    /// ```
    /// use gino::{ConnectionBudget, EngineOptions};
    /// let budget = ConnectionBudget::new(50);
    /// let per_tenant = EngineOptions::new().max_size(10).connection_budget(budget);
    /// # let _ = per_tenant;
    /// ```
    pub fn connection_budget(mut self, budget: ConnectionBudget) -> Self {
        self.connection_budget = Some(budget);
        self
    }

    /// Runs `hook` on every new connection before its first use (GINO's
    /// `init`): `SET` a session variable, prepare a statement, load
    /// something. If it fails, the connection is discarded and whoever
    /// needed it gets the error; it must leave no transaction open.
    ///
    /// What the hook sets is the connection's for every user. A session
    /// changed later (a `SET` or `RESET` that is not `LOCAL`, in a
    /// transaction or not; `set_config(.., .., false)`; a session advisory
    /// lock; a temporary table; `LISTEN`, `PREPARE`; a plan that DDL
    /// outdated) is closed when given back rather than handed on with the
    /// change: use `SET LOCAL` or `set_config(.., .., true)` (a bound
    /// third argument is read from each run's value) in a transaction for
    /// a setting of one unit of work, which keeps the connection.
    /// Statements are read for this whole, however long the script; what
    /// a function or a `DO` block does inside is seen only for the
    /// settings the server reports (time zone, date style, application
    /// name, ...), not for `search_path` or custom settings.
    ///
    /// ```
    /// use diesel_async::SimpleAsyncConnection;
    /// let options = gino::EngineOptions::new().on_connect(|conn| {
    ///     Box::pin(async move { conn.batch_execute("SET search_path TO app, public").await })
    /// });
    /// # let _ = options;
    /// ```
    pub fn on_connect<F>(mut self, hook: F) -> Self
    where
        F: for<'c> Fn(
                &'c mut diesel_async::AsyncPgConnection,
            ) -> futures_util::future::BoxFuture<'c, diesel::QueryResult<()>>
            + Send
            + Sync
            + 'static,
    {
        self.on_connect = Some(std::sync::Arc::new(hook));
        self
    }

    /// The option `key` names as [`set`](Self::set) takes it, aliases
    /// folded (`pool_max_size` is `max_size`), and its value here: what two
    /// spellings of one setting are compared by (`echo=yes` and `echo=on`
    /// agree). `None` for a key `set` does not take.
    #[cfg(any(feature = "web", test))]
    pub(crate) fn named_value(&self, key: &str) -> Option<(&'static str, String)> {
        let value = |v: &dyn fmt::Debug| format!("{v:?}");
        Some(match key {
            "min_size" | "pool_min_size" => ("min_size", value(&self.min_size)),
            "max_size" | "pool_max_size" => ("max_size", value(&self.max_size)),
            "acquire_timeout" => ("acquire_timeout", value(&self.acquire_timeout)),
            "max_inactive_connection_lifetime" => (
                "max_inactive_connection_lifetime",
                value(&self.max_inactive_connection_lifetime),
            ),
            "echo" => ("echo", value(&self.echo)),
            "statement_timeout" => ("statement_timeout", value(&self.statement_timeout)),
            "timeout" | "command_timeout" => ("timeout", value(&self.timeout)),
            "application_name" => ("application_name", value(&self.application_name)),
            "isolation_level" => ("isolation_level", value(&self.isolation_level)),
            "pool" => ("pool", value(&self.pooled)),
            "connect_timeout" => ("connect_timeout", value(&self.connect_timeout)),
            "statement_cache" | "statement_cache_size" => {
                ("statement_cache", value(&self.statement_cache))
            }
            "sslmode" | "ssl" => ("sslmode", value(&self.ssl_mode)),
            "sslrootcert" => ("sslrootcert", value(&self.ssl_root_cert)),
            "sslcert" => ("sslcert", value(&self.ssl_cert)),
            "sslkey" => ("sslkey", value(&self.ssl_key)),
            _ => return None,
        })
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
            "max_inactive_connection_lifetime" => {
                self = self.max_inactive_connection_lifetime(parse_duration(key, value)?);
            }
            "echo" => self.echo = parse_bool(key, value)?,
            "statement_timeout" => self.statement_timeout = Some(parse_duration(key, value)?),
            "timeout" | "command_timeout" => self.timeout = Some(parse_duration(key, value)?),
            "application_name" => self.application_name = Some(value.to_owned()),
            "isolation_level" => self.isolation_level = Some(value.parse()?),
            "pool" => self.pooled = parse_bool(key, value)?,
            "connect_timeout" => self.connect_timeout = Some(parse_duration(key, value)?),
            "statement_cache" => self.statement_cache = parse_bool(key, value)?,
            "statement_cache_size" => self.statement_cache = parse_number(key, value)? > 0,
            "sslmode" => self.ssl_mode = Some(value.parse()?),
            "ssl" => self.ssl_mode = Some(parse_ssl(key, value)?),
            "sslrootcert" => self.ssl_root_cert = Some(value.parse()?),
            "sslcert" => self.ssl_cert = Some(parse_path(key, value)?),
            "sslkey" => self.ssl_key = Some(parse_path(key, value)?),
            _ => {
                return Err(Error::Configuration(format!(
                    "unknown engine option `{key}`: known options are min_size, max_size, \
                     acquire_timeout, max_inactive_connection_lifetime, echo, \
                     statement_timeout, timeout, application_name, isolation_level, pool, \
                     connect_timeout, statement_cache, sslmode, sslrootcert, sslcert, sslkey"
                )));
            }
        }
        Ok(self)
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if let Some(timeout) = self.statement_timeout {
            check_statement_timeout(timeout)?;
        }
        if self.replica_check_interval.is_zero() {
            // Also each check's time limit: every check would be cancelled
            // as it is sent, and every replica leave rotation for good.
            return Err(Error::Configuration(
                "option `replica_check_interval` must be longer than zero".to_owned(),
            ));
        }
        if self.acquire_timeout.is_some_and(|t| t.is_zero()) {
            // No connection could be opened in it (each opening is bounded
            // by it too): every borrow that found no idle one would fail.
            return Err(Error::Configuration(
                "option `acquire_timeout` must be longer than zero: leave it unset to wait \
                 without limit"
                    .to_owned(),
            ));
        }
        if self.timeout.is_some_and(|t| t.is_zero()) {
            // A deadline that has passed before the query is sent would
            // fail some queries and not others; asyncpg refuses it too.
            return Err(Error::Configuration(
                "option `timeout` must be longer than zero: leave it unset for no timeout"
                    .to_owned(),
            ));
        }
        if self
            .connection_budget
            .as_ref()
            .is_some_and(|b| b.limit() == 0)
        {
            // Every connection would wait for a unit that never exists.
            return Err(Error::Configuration(
                "the connection budget's limit is 0, which allows no connection: give \
                 ConnectionBudget::new a limit of at least 1"
                    .to_owned(),
            ));
        }
        if let Some(budget) = &self.connection_budget
            && self.min_size > budget.limit()
        {
            // Its warm-up would wait for units no one can give back.
            return Err(Error::Configuration(format!(
                "option `min_size` ({}) is more than the connection budget allows ({}): the \
                 engine could never open them; lower min_size or raise the budget",
                self.min_size,
                budget.limit()
            )));
        }
        check_pool_sizes(("min_size", self.min_size), ("max_size", self.max_size))
    }
}

/// Refuses a `statement_timeout` the server cannot take as it is meant:
/// past `i32::MAX` milliseconds every connection is refused (`22023`),
/// and under a millisecond it would be sent as 0, which turns the
/// timeout off. Zero itself is PostgreSQL's "no timeout".
fn check_statement_timeout(timeout: Duration) -> Result<()> {
    let longest = Duration::from_millis(i32::MAX as u64);
    if timeout > longest {
        return Err(Error::Configuration(format!(
            "option `statement_timeout` ({timeout:?}) is longer than PostgreSQL takes \
             ({longest:?}, about 24.8 days): leave it unset for no timeout"
        )));
    }
    if !timeout.is_zero() && timeout < Duration::from_millis(1) {
        return Err(Error::Configuration(format!(
            "option `statement_timeout` ({timeout:?}) is shorter than PostgreSQL's unit, one \
             millisecond: it would be sent as 0, which means no timeout"
        )));
    }
    Ok(())
}

/// The longest name PostgreSQL keeps, in bytes (`NAMEDATALEN - 1`).
const MAX_NAME_BYTES: usize = 63;

/// Refuses a database or user name the server would cut short: it would
/// silently reach the object of the shorter name (two tenants' databases
/// whose names differ only past the cut would be one).
fn check_name_length(what: &str, name: &str) -> Result<()> {
    if name.len() <= MAX_NAME_BYTES {
        return Ok(());
    }
    // `floor_char_boundary` is newer than the crate's MSRV.
    let cut = (0..=MAX_NAME_BYTES)
        .rev()
        .find(|&cut| name.is_char_boundary(cut))
        .unwrap_or(0);
    Err(Error::Configuration(format!(
        "the {what} `{name}` is {} bytes long: PostgreSQL cuts names at {MAX_NAME_BYTES} \
         bytes, so it would reach `{}`; use a shorter name",
        name.len(),
        &name[..cut]
    )))
}

/// The rules a pool's sizes follow, each size given with the name the
/// user set it by (an option, an environment variable), so the error
/// names what to change.
pub(crate) fn check_pool_sizes(
    (min_name, min): (&str, usize),
    (max_name, max): (&str, usize),
) -> Result<()> {
    if max == 0 {
        return Err(Error::Configuration(format!(
            "{max_name} must be at least 1"
        )));
    }
    // The pool sets aside a slot per connection up front: a size no
    // server can serve would only exhaust memory.
    if max > MOST_CONNECTIONS {
        return Err(Error::Configuration(format!(
            "{max_name} ({max}) is more connections than a PostgreSQL server takes \
             (max_connections is at most {MOST_CONNECTIONS})"
        )));
    }
    if min > max {
        return Err(Error::Configuration(format!(
            "{min_name} ({min}) is larger than {max_name} ({max})"
        )));
    }
    Ok(())
}

fn parse_path(key: &str, value: &str) -> Result<PathBuf> {
    if value.is_empty() {
        return Err(Error::Configuration(format!(
            "option `{key}` is empty: give the path of a PEM file"
        )));
    }
    Ok(PathBuf::from(value))
}

pub(crate) fn parse_number(key: &str, value: &str) -> Result<usize> {
    value.trim().parse().map_err(|_| {
        Error::Configuration(format!(
            "option `{key}` must be a whole number, got `{value}`"
        ))
    })
}

pub(crate) fn parse_bool(key: &str, value: &str) -> Result<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(Error::Configuration(format!(
            "option `{key}` must be true or false, got `{value}`"
        ))),
    }
}

/// asyncpg's `ssl` (GINO's `create_engine(..., ssl=True)`, its web
/// extensions' `DB_SSL`): an sslmode, or a boolean.
pub(crate) fn parse_ssl(key: &str, value: &str) -> Result<SslMode> {
    value
        .parse::<SslMode>()
        .or_else(|_| match parse_bool(key, value) {
            // asyncpg's `ssl=True` is a default TLS context, which checks the
            // chain and the host name.
            Ok(true) => Ok(SslMode::VerifyFull),
            Ok(false) => Ok(SslMode::Disable),
            Err(_) => Err(Error::Configuration(format!(
                "option `{key}` must be an sslmode (disable, allow, prefer, require, verify-ca, \
             verify-full) or true/false, got `{value}`"
            ))),
        })
}

pub(crate) fn parse_duration(key: &str, value: &str) -> Result<Duration> {
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
        // `try_`: a duration too long for `Duration` is bad input, not a
        // panic.
        .and_then(|n| Duration::try_from_secs_f64(n * scale).ok())
        .ok_or_else(|| {
            Error::Configuration(format!(
                "option `{key}` must be a duration such as `2.5`, `500ms` or `3s`, got `{value}`"
            ))
        })
}

/// Named parameters in the order given: key, value.
type Pairs = Vec<(String, String)>;

/// A parsed `postgresql://` / `postgres://` URL.
///
/// `postgresql://user:password@host:port/database?param=value`; several
/// hosts may be given as `host1:5432,host2:5433`, and a Unix socket
/// directory as `?host=/var/run/postgresql`. GINO's URLs that name its
/// driver (`asyncpg://`, `postgresql+asyncpg://`) are taken as they are.
///
/// ```
/// let url: gino::DatabaseUrl = "postgres://alice:s3cret@db.example.com:6543/shop?application_name=web"
///     .parse()
///     .unwrap();
/// assert_eq!(url.database(), Some("shop"));
/// assert_eq!(url.to_string(), "postgres://alice:***@db.example.com:6543/shop?application_name=web");
/// assert!("mysql://localhost/shop".parse::<gino::DatabaseUrl>().is_err());
/// let gino: gino::DatabaseUrl = "postgresql+asyncpg://alice@db/shop".parse().unwrap();
/// assert_eq!(gino.to_string(), "postgres://alice@db/shop");
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
    ///
    /// ```
    /// let url: gino::DatabaseUrl = "postgres://alice@db.example.com/my%20shop".parse().unwrap();
    /// assert_eq!(url.database(), Some("my shop")); // percent-decoded
    /// let no_db: gino::DatabaseUrl = "postgres://alice@db.example.com".parse().unwrap();
    /// assert_eq!(no_db.database(), None);
    /// ```
    pub fn database(&self) -> Option<&str> {
        self.database.as_deref()
    }

    /// The user name, if the URL names one.
    ///
    /// ```
    /// let url: gino::DatabaseUrl = "postgres://alice:s3cret@db.example.com/shop".parse().unwrap();
    /// assert_eq!(url.user(), Some("alice")); // never the password
    /// let no_user: gino::DatabaseUrl = "postgres://db.example.com/shop".parse().unwrap();
    /// assert_eq!(no_user.user(), None);
    /// ```
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// The query parameters, decoded.
    ///
    /// ```
    /// let url: gino::DatabaseUrl = "postgres://db/shop?max_size=20&options=-c%20search_path%3Dapp"
    ///     .parse()
    ///     .unwrap();
    /// let params: Vec<_> = url.params().iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    /// assert_eq!(params, [("max_size", "20"), ("options", "-c search_path=app")]);
    /// ```
    pub fn params(&self) -> &[(String, String)] {
        &self.params
    }

    /// The last value of the query parameter `key`.
    pub(crate) fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the URL itself gives the connection parameter `key`, in its
    /// authority or its query: a service's value for it does not apply.
    fn gives(&self, key: &str) -> bool {
        let in_authority = match key {
            "user" => self.user.is_some(),
            "password" => self.password.is_some(),
            "dbname" => self.database.is_some(),
            "host" => !self.hosts.is_empty(),
            "port" => self.hosts.iter().any(|(_, port)| port.is_some()),
            _ => false,
        };
        in_authority || self.param(key).is_some()
    }

    /// The service this URL names (`service`, else `PGSERVICE`) and the
    /// parameters it gives that the URL itself does not, in its file's
    /// order; `None` without a service.
    pub(crate) fn service_params(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<(String, Pairs)>> {
        let service = self.param("service").map(str::to_owned);
        let Some(name) = service.or_else(|| env("PGSERVICE")) else {
            return Ok(None);
        };
        let file = self.param("servicefile").map(str::to_owned);
        let mut params = crate::service::lookup(&name, file, env)?;
        params.retain(|(key, _)| !self.gives(key));
        Ok(Some((name, params)))
    }

    /// Splits the URL into what is needed to connect and the engine
    /// options, applying URL parameters on top of `options` and libpq's
    /// environment variables under both.
    pub(crate) fn resolve(&self, options: EngineOptions) -> Result<(ConnectConfig, EngineOptions)> {
        self.resolve_in(options, &|name| std::env::var(name).ok())
    }

    /// [`resolve`](Self::resolve) with the environment given as a
    /// function, so that it can be tested.
    pub(crate) fn resolve_in(
        &self,
        mut options: EngineOptions,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(ConnectConfig, EngineOptions)> {
        let env = |name: &str| env(name).filter(|v| !v.is_empty());
        let mut pg = tokio_postgres::Config::new();
        // gino negotiates TLS itself (see `wire`); tokio-postgres must not.
        pg.ssl_mode(tokio_postgres::config::SslMode::Disable);
        let mut user = self.user.clone();
        let mut password = self.password.clone();
        let mut database = self.database.clone();
        let mut hosts = self.hosts.clone();
        let mut extra_ports = Vec::new();
        let mut server_options = Vec::new();
        let mut target = None;
        let mut passfile = None;
        let mut channel_binding = None;
        let mut require_auth = None;
        let mut require_peer = None;
        let mut fallback_name = None;
        let mut load_balance = None;
        let mut hostaddrs = None;
        let mut tls_params = TlsParams::default();
        let mut protocol = (None, None);
        let mut apply = |key: &str, value: &String| -> Result<()> {
            match key {
                // Given empty, as in libpq: the default user, the default
                // password file, no peer to require, without the
                // environment's (which counts only for what is not given).
                "user" => user = Some(value.clone()),
                "password" => password = Some(value.clone()),
                "dbname" => database = Some(value.clone()),
                "host" => {
                    // The URL's ports stay for the hosts named here, as
                    // libpq keeps ports apart from host names.
                    if extra_ports.is_empty() && hosts.iter().any(|(_, port)| port.is_some()) {
                        extra_ports = hosts.iter().map(|(_, port)| port.unwrap_or(5432)).collect();
                    }
                    hosts = value.split(',').map(|h| (h.to_owned(), None)).collect();
                }
                "port" => extra_ports = parse_ports(value)?,
                // The last given wins, as for every other parameter.
                "options" => server_options = vec![value.clone()],
                "passfile" => passfile = Some(value.clone()),
                "channel_binding" => channel_binding = Some(value.clone()),
                "require_auth" => require_auth = Some(value.clone()),
                "requirepeer" => require_peer = Some(value.clone()),
                "fallback_application_name" => fallback_name = Some(value.clone()),
                "load_balance_hosts" => load_balance = Some(value.clone()),
                "hostaddr" => hostaddrs = Some(value.clone()),
                "ssl_min_protocol_version" => tls_params.min_version = Some(value.clone()),
                "ssl_max_protocol_version" => tls_params.max_version = Some(value.clone()),
                "sslcrl" => tls_params.crl = Some(value.clone()),
                "sslcrldir" => tls_params.crl_dir = Some(value.clone()),
                "sslsni" => tls_params.sni = Some(value.clone()),
                "sslcertmode" => tls_params.cert_mode = Some(value.clone()),
                "sslkeylogfile" => tls_params.key_log = Some(value.clone()),
                "sslpassword" => tls_params.key_password = Some(KeyPassword(value.clone())),
                "min_protocol_version" => protocol.0 = Some(value.clone()),
                "max_protocol_version" => protocol.1 = Some(value.clone()),
                // Settings of GSSAPI authentication, which gino does not
                // speak: a server that asks for it is refused whatever
                // they say, so a URL written for libpq may keep them.
                "krbsrvname" | "gsslib" => {}
                "gssdelegation" => drop(parse_bool(key, value)?),
                // GSSAPI encryption, which gino does not speak: `prefer`
                // (libpq's default) and `disable` mean plain TLS or none.
                "gssencmode" => without_effect(
                    key,
                    value,
                    &["disable", "prefer"],
                    (
                        "require",
                        "asks for GSSAPI encryption, which gino does not support: use TLS \
                         (sslmode=verify-full) instead",
                    ),
                )?,
                // Obsolete: libpq 14 and later ignore it (TLS compression
                // is gone from TLS libraries), and so does gino.
                "sslcompression" => drop(parse_bool(key, value)?),
                // The driver speaks UTF-8 only (it sets the encoding in
                // the startup message); a URL naming it is taken.
                "client_encoding" => {
                    let utf8 = ["utf8", "utf-8", "unicode"];
                    if !utf8.iter().any(|name| value.eq_ignore_ascii_case(name)) {
                        return Err(Error::Configuration(format!(
                            "client_encoding `{value}`: gino's connections always use UTF8, \
                             and PostgreSQL converts from the database's encoding; leave \
                             client_encoding out or set it to UTF8"
                        )));
                    }
                }
                // PostgreSQL 17's direct TLS handshake is not spoken yet;
                // `postgres` (the default) asks for TLS as every server
                // understands.
                "sslnegotiation" => without_effect(
                    key,
                    value,
                    &["postgres"],
                    (
                        "direct",
                        "(PostgreSQL 17's direct TLS) is not supported by gino: use \
                         sslnegotiation=postgres, the default, which every server takes",
                    ),
                )?,
                "keepalives" => {
                    pg.keepalives(parse_bool(key, value)?);
                }
                "keepalives_idle" => {
                    if let Some(idle) = keepalive_seconds(key, value)? {
                        pg.keepalives_idle(idle);
                    }
                }
                "keepalives_interval" => {
                    if let Some(interval) = keepalive_seconds(key, value)? {
                        pg.keepalives_interval(interval);
                    }
                }
                // libpq counts milliseconds; 0 keeps the system's default.
                "tcp_user_timeout" => {
                    let number = value.trim();
                    let timeout = match number.parse::<u64>() {
                        Ok(millis) => Duration::from_millis(millis),
                        // `2.5` would read as seconds elsewhere; libpq
                        // takes whole milliseconds only.
                        // A bare number other than whole milliseconds
                        // (`2.5`, `1e3`) would read as seconds elsewhere;
                        // libpq takes whole milliseconds only.
                        Err(_)
                            if number.ends_with(|c: char| c.is_ascii_digit())
                                && !number.bytes().all(|b| b.is_ascii_digit()) =>
                        {
                            return Err(Error::Configuration(format!(
                                "{key}: `{value}` is not a whole number of milliseconds (or a \
                                 duration with its unit, e.g. `2.5s`)"
                            )));
                        }
                        Err(_) => parse_duration(key, value)?,
                    };
                    if !timeout.is_zero() {
                        pg.tcp_user_timeout(timeout);
                    }
                }
                "keepalives_count" => {
                    let count = parse_number(key, value)?;
                    if count != 0 {
                        let count = u32::try_from(count)
                            .ok()
                            .filter(|count| *count <= MOST_KEEPALIVE_PROBES)
                            .ok_or_else(|| keepalive_refused(key, value, MOST_KEEPALIVE_PROBES))?;
                        pg.keepalives_retries(count);
                    }
                }
                "target_session_attrs" => target = Some(value.parse()?),
                "service" | "servicefile" => {}
                _ => {
                    if let Some(why) = not_spoken(key) {
                        return Err(Error::Configuration(format!("{key}: {why}")));
                    }
                    options = std::mem::take(&mut options).set(key, value)?;
                }
            }
            Ok(())
        };
        // A service's parameters, under what the URL gives.
        if let Some((name, params)) = self.service_params(&env)? {
            for (key, value) in params {
                apply(&key, &value).map_err(|e| match e {
                    Error::Configuration(m) => {
                        Error::Configuration(format!("service `{name}`: {m}"))
                    }
                    other => other,
                })?;
            }
        }
        let mut after_secret = false;
        for (key, value) in &self.params {
            // The rest of a password whose `&` was not escaped reads as a
            // pair of its own: its key is not repeated.
            apply(key, value).map_err(|e| unless_secret(e, after_secret, AFTER_SECRET))?;
            after_secret |= is_secret(key);
        }
        options.validate()?;
        check_protocol_versions(
            protocol.0.or_else(|| env("PGMINPROTOCOLVERSION")),
            protocol.1.or_else(|| env("PGMAXPROTOCOLVERSION")),
        )?;

        // What the URL and the code leave out comes from libpq's
        // environment variables, then from libpq's defaults.
        let hostaddrs = match given_or_env(hostaddrs, "PGHOSTADDR", &env) {
            Some(list) => parse_hostaddrs(&list)?,
            None => Vec::new(),
        };
        if hosts.is_empty() {
            hosts = match env("PGHOST") {
                Some(list) => list.split(',').map(|h| (h.to_owned(), None)).collect(),
                // Addresses alone: each is its own name too (for TLS).
                None if !hostaddrs.is_empty() => {
                    hostaddrs.iter().map(|a| (a.to_string(), None)).collect()
                }
                None => vec![("localhost".to_owned(), None)],
            };
        }
        // An empty host (`postgres://:5433/db`, `host=a,,b`) is the
        // default one, as in libpq, not a name to resolve.
        for (host, _) in hosts.iter_mut().filter(|(host, _)| host.is_empty()) {
            *host = env("PGHOST")
                .filter(|name| !name.contains(','))
                .unwrap_or_else(|| "localhost".to_owned());
        }
        // Hosts with ports of their own (`h:5555`) take no `PGPORT`, as
        // libpq's port list is then the URL's.
        let own_ports = hosts.iter().any(|(_, port)| port.is_some());
        if extra_ports.is_empty()
            && !own_ports
            && let Some(list) = env("PGPORT")
        {
            extra_ports = parse_ports(&list)?;
        }
        if !hostaddrs.is_empty() && hostaddrs.len() != hosts.len() {
            return Err(Error::Configuration(format!(
                "{} host names but {} hostaddr values: give one address per host, in the same \
                 order",
                hosts.len(),
                hostaddrs.len()
            )));
        }
        if extra_ports.len() > 1 && extra_ports.len() != hosts.len() {
            // libpq refuses it too: which port would the hosts past the
            // list, or the ports past the hosts, go with?
            return Err(Error::Configuration(format!(
                "{} hosts but {} ports: give one port for every host, or one per host in the \
                 same order",
                hosts.len(),
                extra_ports.len()
            )));
        }
        for address in hostaddrs {
            pg.hostaddr(address);
        }
        for (i, (host, port)) in hosts.iter().enumerate() {
            pg.host(host);
            // One port for all hosts, or one per host, as libpq takes them.
            let listed = extra_ports.get(i).or(match extra_ports.len() {
                1 => extra_ports.first(),
                _ => None,
            });
            pg.port(port.or(listed.copied()).unwrap_or(5432));
        }
        let user = given_or_env(user, "PGUSER", &env)
            .or_else(|| env("USER"))
            .unwrap_or_else(|| "postgres".to_owned());
        check_name_length("user name", &user)?;
        pg.user(&user);
        // Given empty, the server takes the user's name, as the password
        // file must.
        let database = given_or_env(database, "PGDATABASE", &env);
        if let Some(database) = &database {
            check_name_length("database name", database)?;
        }
        // An empty password is none, as libpq has it: the file may hold one.
        let password = password
            .filter(|p| !p.is_empty())
            .or_else(|| env("PGPASSWORD"));
        let passfile = match password {
            Some(password) => {
                pg.password(password);
                None
            }
            None => PassFile::locate(
                given_or_env(passfile, "PGPASSFILE", &env),
                &env,
                &user,
                database.as_deref(),
            ),
        };
        if let Some(database) = database {
            pg.dbname(database);
        }
        if options.application_name.is_none() {
            options.application_name = env("PGAPPNAME");
        }
        // A tool's own name (`fallback_application_name`) gives way to the
        // one the user chose, in the URL, the options or PGAPPNAME.
        if let Some(name) = options.application_name.as_ref().or(fallback_name.as_ref()) {
            pg.application_name(name);
        }
        if server_options.is_empty() {
            server_options.extend(env("PGOPTIONS"));
        }
        if let Some(timeout) = options.statement_timeout {
            server_options.push(format!("-c statement_timeout={}", timeout.as_millis()));
        }
        if let Some(level) = options.isolation_level {
            // Every statement of the engine's connections runs at it, as
            // GINO applies it per connection; a space in an option's value
            // is escaped with a backslash.
            server_options.push(format!(
                "-c default_transaction_isolation={}",
                level.as_sql().to_ascii_lowercase().replace(' ', "\\ ")
            ));
        }
        if !server_options.is_empty() {
            pg.options(server_options.join(" "));
        }
        if options.connect_timeout.is_none()
            && let Some(value) = env("PGCONNECT_TIMEOUT")
        {
            options.connect_timeout = Some(parse_duration("PGCONNECT_TIMEOUT", &value)?);
        }
        // Zero (in the URL, code or PGCONNECT_TIMEOUT) waits indefinitely,
        // as in libpq; a timer that fires at once would fail at random.
        if let Some(timeout) = options.connect_timeout.filter(|t| !t.is_zero()) {
            pg.connect_timeout(timeout);
        }
        if let Some(value) = channel_binding.or_else(|| env("PGCHANNELBINDING")) {
            use tokio_postgres::config::ChannelBinding::*;
            let modes = [
                ("disable", Disable),
                ("prefer", Prefer),
                ("require", Require),
            ];
            pg.channel_binding(one_of("channel_binding", &value, &modes)?);
        }
        if let Some(value) = load_balance.or_else(|| env("PGLOADBALANCEHOSTS")) {
            use tokio_postgres::config::LoadBalanceHosts::*;
            let orders = [("disable", Disable), ("random", Random)];
            pg.load_balance_hosts(one_of("load_balance_hosts", &value, &orders)?);
        }
        let target = match target {
            Some(target) => target,
            None => match env("PGTARGETSESSIONATTRS") {
                Some(value) => value.parse()?,
                None => TargetSessionAttrs::Any,
            },
        };
        let require_auth = given_or_env(require_auth, "PGREQUIREAUTH", &env)
            .map(|value| RequireAuth::parse(&value))
            .transpose()?;
        refuse_nul(&pg)?;
        let tls = TlsSettings::resolve(&options, tls_params, &env)?;
        Ok((
            ConnectConfig {
                pg,
                target,
                tls,
                passfile,
                require_auth,
                require_peer: given_or_env(require_peer, "PGREQUIREPEER", &env),
            },
            options,
        ))
    }
}

/// An error for a NUL character in what the startup message carries: the
/// protocol ends strings with one, so the server would never see the rest.
fn refuse_nul(pg: &tokio_postgres::Config) -> Result<()> {
    use tokio_postgres::config::Host;
    let hosts = pg.get_hosts().iter().filter_map(|host| match host {
        Host::Tcp(name) => Some(("host", Some(name.as_str()))),
        #[cfg(unix)]
        Host::Unix(_) => None,
    });
    let texts = [
        ("user name", pg.get_user()),
        ("database name", pg.get_dbname()),
        ("options", pg.get_options()),
        ("application_name", pg.get_application_name()),
    ];
    let password = pg.get_password().is_some_and(|p| p.contains(&0));
    let holding = texts
        .into_iter()
        .chain(hosts)
        .find(|(_, text)| text.is_some_and(|t| t.contains('\0')))
        .map(|(what, _)| what)
        .or(password.then_some("password"));
    match holding {
        Some(what) => Err(Error::Configuration(format!(
            "a NUL character (`%00` in a URL) in the {what}, which PostgreSQL cannot take: \
             remove it"
        ))),
        None => Ok(()),
    }
}

/// Which of several servers a connection settles on: libpq's
/// `target_session_attrs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum TargetSessionAttrs {
    #[default]
    Any,
    /// `SHOW transaction_read_only` is `off`.
    ReadWrite,
    /// `SHOW transaction_read_only` is `on`.
    ReadOnly,
    /// Not in recovery.
    Primary,
    /// In recovery (a hot standby).
    Standby,
    /// A standby if one answers, else any server.
    PreferStandby,
}

impl TargetSessionAttrs {
    /// What a server must be, in words.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            TargetSessionAttrs::Any => "reachable",
            TargetSessionAttrs::ReadWrite => "read-write",
            TargetSessionAttrs::ReadOnly => "read-only",
            TargetSessionAttrs::Primary => "primary",
            TargetSessionAttrs::Standby | TargetSessionAttrs::PreferStandby => "standby",
        }
    }
}

impl FromStr for TargetSessionAttrs {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        use TargetSessionAttrs::*;
        let choices = [
            ("any", Any),
            ("read-write", ReadWrite),
            ("read-only", ReadOnly),
            ("primary", Primary),
            ("standby", Standby),
            ("prefer-standby", PreferStandby),
        ];
        one_of("target_session_attrs", s, &choices)
    }
}

/// The TLS settings of a connection, resolved from the URL, the options,
/// libpq's environment variables and files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TlsSettings {
    pub(crate) mode: SslMode,
    pub(crate) root_cert: Option<SslRootCert>,
    /// Where the default root certificate file was looked for, for the
    /// error when a verifying mode finds none.
    pub(crate) default_root_cert: Option<PathBuf>,
    pub(crate) cert: Option<PathBuf>,
    pub(crate) key: Option<PathBuf>,
    /// libpq's `ssl_min_protocol_version` (`TLSv1.2` by default) and
    /// `ssl_max_protocol_version` (none).
    pub(crate) versions: (TlsVersion, Option<TlsVersion>),
    /// Certificate revocation lists: libpq's `sslcrl` (a file, by default
    /// `~/.postgresql/root.crl` if it exists) and `sslcrldir` (every file
    /// of a directory).
    pub(crate) crl: Option<PathBuf>,
    pub(crate) crl_dir: Option<PathBuf>,
    /// libpq's `sslsni`: whether the handshake names the host (Server Name
    /// Indication, on by default; never for an IP address).
    pub(crate) sni: bool,
    /// libpq's `sslcertmode=require`: the server must ask for the client
    /// certificate (`cert` is then set). `disable` leaves `cert` unset.
    pub(crate) require_client_cert: bool,
    /// libpq's `sslkeylogfile`: where the sessions' secrets are appended,
    /// for a tool such as Wireshark to decrypt the traffic.
    pub(crate) key_log: Option<PathBuf>,
    /// libpq's `sslpassword`: the passphrase of an encrypted `key`.
    pub(crate) key_password: Option<KeyPassword>,
}

/// The passphrase of an encrypted client key, kept out of `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct KeyPassword(pub(crate) String);

impl fmt::Debug for KeyPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyPassword(***)")
    }
}

/// libpq's `sslcertmode`: whether the client certificate goes to the
/// server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CertMode {
    /// Never.
    Disable,
    /// When the server asks for it.
    Allow,
    /// When the server asks for it, which it must.
    Require,
}

/// The URL's parameters for TLS that are not engine options.
#[derive(Debug, Default)]
pub(crate) struct TlsParams {
    min_version: Option<String>,
    max_version: Option<String>,
    crl: Option<String>,
    crl_dir: Option<String>,
    sni: Option<String>,
    cert_mode: Option<String>,
    key_log: Option<String>,
    key_password: Option<KeyPassword>,
}

/// A TLS protocol version as libpq names it (`TLSv1.2`); rustls speaks
/// 1.2 and 1.3 only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum TlsVersion {
    V1_0,
    V1_1,
    V1_2,
    V1_3,
}

impl fmt::Display for TlsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsVersion::V1_0 => "TLSv1",
            TlsVersion::V1_1 => "TLSv1.1",
            TlsVersion::V1_2 => "TLSv1.2",
            TlsVersion::V1_3 => "TLSv1.3",
        })
    }
}

impl TlsVersion {
    /// `value` of the setting `key`; `None` for an empty one (no bound).
    fn parse(key: &str, value: &str) -> Result<Option<Self>> {
        Ok(Some(match value.to_ascii_lowercase().as_str() {
            "" => return Ok(None),
            "tlsv1" => TlsVersion::V1_0,
            "tlsv1.1" => TlsVersion::V1_1,
            "tlsv1.2" => TlsVersion::V1_2,
            "tlsv1.3" => TlsVersion::V1_3,
            _ => {
                return Err(Error::Configuration(format!(
                    "unknown {key} `{value}`: use TLSv1.2 or TLSv1.3 (or TLSv1, TLSv1.1, which \
                     gino's TLS does not speak)"
                )));
            }
        }))
    }
}

impl TlsSettings {
    fn resolve(
        options: &EngineOptions,
        params: TlsParams,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        let min = params
            .min_version
            .or_else(|| env("PGSSLMINPROTOCOLVERSION"));
        let max = params
            .max_version
            .or_else(|| env("PGSSLMAXPROTOCOLVERSION"));
        let (min_key, max_key) = ("ssl_min_protocol_version", "ssl_max_protocol_version");
        // libpq's floor is TLSv1.2; an empty value lifts a bound.
        let min = match min {
            Some(min) => TlsVersion::parse(min_key, &min)?.unwrap_or(TlsVersion::V1_0),
            None => TlsVersion::V1_2,
        };
        let max = match max {
            Some(max) => TlsVersion::parse(max_key, &max)?,
            None => None,
        };
        if let Some(max) = max.filter(|max| *max < min) {
            return Err(Error::Configuration(format!(
                "{max_key} is below {min_key} ({max} < {min}): no TLS version is left"
            )));
        }
        let explicit_mode = match options.ssl_mode {
            Some(mode) => Some(mode),
            None => env("PGSSLMODE").map(|v| v.parse()).transpose()?,
        };
        let root_cert = match &options.ssl_root_cert {
            Some(root) => Some(root.clone()),
            None => env("PGSSLROOTCERT").map(|v| v.parse()).transpose()?,
        };
        let home = env("HOME").map(|h| PathBuf::from(h).join(".postgresql"));
        let default_root_cert = home.as_ref().map(|dir| dir.join("root.crt"));
        let root_cert = root_cert.or_else(|| {
            default_root_cert
                .as_ref()
                .filter(|path| path.is_file())
                .map(|path| SslRootCert::File(path.clone()))
        });
        let mode = match (explicit_mode, &root_cert) {
            (Some(mode), Some(SslRootCert::System))
                if mode != SslMode::VerifyFull && mode != SslMode::Disable =>
            {
                return Err(Error::Configuration(format!(
                    "sslrootcert=system needs sslmode=verify-full, not {mode}: anyone can get a \
                     certificate from a public authority for a name they own, so only the host \
                     name check makes the system's roots meaningful (libpq refuses this too)"
                )));
            }
            (Some(mode), _) => mode,
            (None, Some(SslRootCert::System)) => SslMode::VerifyFull,
            (None, _) => SslMode::Prefer,
        };
        // A file: as given, else from libpq's variable, else libpq's
        // default in ~/.postgresql when it exists.
        let file = |given: Option<PathBuf>, variable: &str, default: &str| {
            let given = match given {
                // Given empty, as in libpq: the default file, not the
                // environment's.
                Some(path) if path.as_os_str().is_empty() => None,
                Some(path) => return Some(path),
                None => env(variable).map(PathBuf::from),
            };
            given.or_else(|| {
                home.as_ref()
                    .map(|dir| dir.join(default))
                    .filter(|path| path.is_file())
            })
        };
        let modes = [
            ("disable", CertMode::Disable),
            ("allow", CertMode::Allow),
            ("require", CertMode::Require),
        ];
        let cert_mode = match params.cert_mode.or_else(|| env("PGSSLCERTMODE")) {
            Some(value) => one_of("sslcertmode", &value, &modes)?,
            None => CertMode::Allow,
        };
        // `disable` sends no certificate, whatever sslcert says.
        let cert = (cert_mode != CertMode::Disable)
            .then(|| file(options.ssl_cert.clone(), "PGSSLCERT", "postgresql.crt"))
            .flatten();
        let require_client_cert = cert_mode == CertMode::Require;
        if require_client_cert && mode == SslMode::Disable {
            return Err(Error::Configuration(
                "sslcertmode=require needs a server that asks for the client certificate, which \
                 only a TLS session can: it cannot go with sslmode=disable"
                    .to_owned(),
            ));
        }
        if require_client_cert && cert.is_none() {
            return Err(Error::Configuration(
                "sslcertmode=require sends a client certificate, but none is configured: set \
                 sslcert and sslkey (or put them in ~/.postgresql/postgresql.crt and .key)"
                    .to_owned(),
            ));
        }
        let key = cert.as_ref().and_then(|_| {
            options
                .ssl_key
                .clone()
                .or_else(|| env("PGSSLKEY").map(PathBuf::from))
                .or_else(|| home.as_ref().map(|dir| dir.join("postgresql.key")))
        });
        let crl = file(params.crl.map(PathBuf::from), "PGSSLCRL", "root.crl");
        let crl_dir = given_or_env(params.crl_dir, "PGSSLCRLDIR", &env).map(PathBuf::from);
        let sni = match params.sni.or_else(|| env("PGSSLSNI")) {
            Some(value) => parse_bool("sslsni", &value)?,
            None => true,
        };
        Ok(TlsSettings {
            mode,
            root_cert,
            default_root_cert,
            cert,
            key,
            versions: (min, max),
            crl,
            crl_dir,
            sni,
            require_client_cert,
            key_log: params
                .key_log
                .filter(|path| !path.is_empty())
                .map(PathBuf::from),
            key_password: params.key_password,
        })
    }
}

/// Everything needed to open a connection: the startup parameters and
/// hosts (in tokio-postgres' config, whose own TLS and host selection gino
/// does not use), which server to settle on, TLS, and the password file
/// to look in when no password is given.
#[derive(Debug, Clone)]
pub(crate) struct ConnectConfig {
    pub(crate) pg: tokio_postgres::Config,
    pub(crate) target: TargetSessionAttrs,
    pub(crate) tls: TlsSettings,
    pub(crate) passfile: Option<PassFile>,
    /// The methods a server may have the client log in by (libpq's
    /// `require_auth`); `None` allows every one.
    pub(crate) require_auth: Option<RequireAuth>,
    /// The operating-system user a server on a Unix-domain socket must run
    /// as (libpq's `requirepeer`).
    pub(crate) require_peer: Option<String>,
}

/// The value of setting `key` that `value` names among `choices`, or an
/// error listing them.
fn one_of<T: Copy>(key: &str, value: &str, choices: &[(&str, T)]) -> Result<T> {
    match choices.iter().find(|(name, _)| *name == value) {
        Some(&(_, chosen)) => Ok(chosen),
        None => {
            let names: Vec<_> = choices.iter().map(|(name, _)| *name).collect();
            Err(Error::Configuration(format!(
                "unknown {key} `{value}`: use one of {}",
                names.join(", ")
            )))
        }
    }
}

/// Why gino refuses a libpq connection parameter it knows but does not
/// speak, so that a URL written for libpq fails saying so rather than
/// "unknown engine option".
fn not_spoken(key: &str) -> Option<&'static str> {
    Some(match key {
        "requiressl" => "deprecated in favour of sslmode: use sslmode=require",
        "replication" => {
            "replication connections (walsender) are not supported: gino runs SQL sessions"
        }
        "oauth_issuer" | "oauth_client_id" | "oauth_client_secret" | "oauth_scope" => {
            "OAuth login (libpq 18) is not supported: log in with a password or a client \
             certificate"
        }
        "scram_client_key" | "scram_server_key" => {
            "SCRAM key pass-through (libpq 18, for postgres_fdw and dblink) is not supported: \
             give the password"
        }
        _ => return None,
    })
}

/// libpq 18's `min_protocol_version` and `max_protocol_version` (`3.0`,
/// `3.2` or `latest`, the newest the client speaks). gino speaks protocol
/// 3.0, which every server takes: any ceiling is met, and a floor above it
/// is refused rather than ignored.
fn check_protocol_versions(min: Option<String>, max: Option<String>) -> Result<()> {
    const VERSIONS: [(&str, u8); 3] = [("3.0", 0), ("3.2", 2), ("latest", 0)];
    let parse = |key: &str, value: Option<String>| match value {
        Some(value) => one_of(key, &value, &VERSIONS).map(|minor| Some((value, minor))),
        None => Ok(None),
    };
    let min = parse("min_protocol_version", min)?;
    let max = parse("max_protocol_version", max)?;
    if let (Some((low, lo)), Some((high, hi))) = (&min, &max)
        && hi < lo
    {
        return Err(Error::Configuration(format!(
            "max_protocol_version={high} is below min_protocol_version={low}: no protocol \
             version is left"
        )));
    }
    match min {
        Some((value, minor)) if minor > 0 => Err(Error::Configuration(format!(
            "min_protocol_version={value} asks for protocol 3.2 (PostgreSQL 18), which gino \
             does not speak yet: it speaks protocol 3.0, which every server takes; leave \
             min_protocol_version out or set it to 3.0"
        ))),
        _ => Ok(()),
    }
}

/// A libpq setting gino takes only in the values that change nothing for
/// it (`inert`); `refused` is the value it cannot honour, with why.
fn without_effect(key: &str, value: &str, inert: &[&str], refused: (&str, &str)) -> Result<()> {
    let choices: Vec<_> = inert
        .iter()
        .map(|name| (*name, false))
        .chain([(refused.0, true)])
        .collect();
    if one_of(key, value, &choices)? {
        return Err(Error::Configuration(format!("{key}={value} {}", refused.1)));
    }
    Ok(())
}

/// libpq's `hostaddr`: comma-separated IP addresses to connect to, one
/// per host, whose names then serve TLS and the password file only.
fn parse_hostaddrs(list: &str) -> Result<Vec<std::net::IpAddr>> {
    list.split(',')
        .map(|address| {
            address.trim().parse().map_err(|_| {
                Error::Configuration(format!(
                    "hostaddr `{address}` is not an IP address: put host names in `host`"
                ))
            })
        })
        .collect()
}

/// A port list; an empty item is the default port, as in libpq.
fn parse_ports(list: &str) -> Result<Vec<u16>> {
    list.split(',')
        .map(|port| match port.trim() {
            "" => Ok(5432),
            port => parse_port(port),
        })
        .collect()
}

/// Linux's largest `TCP_KEEPIDLE` and `TCP_KEEPINTVL`, in seconds.
const MOST_KEEPALIVE_SECONDS: u32 = 32_767;
/// Linux's largest `TCP_KEEPCNT`.
const MOST_KEEPALIVE_PROBES: u32 = 127;

/// `keepalives_idle` / `keepalives_interval`: whole seconds the kernel
/// takes (a fraction would be cut off, and a value past its limit refused
/// by every connect); `None` for 0, the system's default.
fn keepalive_seconds(key: &str, value: &str) -> Result<Option<Duration>> {
    let duration = parse_duration(key, value)?;
    if duration.is_zero() {
        return Ok(None);
    }
    if duration.subsec_nanos() != 0 || duration.as_secs() > u64::from(MOST_KEEPALIVE_SECONDS) {
        return Err(keepalive_refused(key, value, MOST_KEEPALIVE_SECONDS));
    }
    Ok(Some(duration))
}

fn keepalive_refused(key: &str, value: &str, most: u32) -> Error {
    Error::Configuration(format!(
        "{key}: `{value}` is not a whole number from 1 to {most}, which is what the kernel \
         takes (0 keeps the system's default)"
    ))
}

/// A connection parameter as libpq settles it: its value when given, else
/// the environment variable `var`'s, and neither when it was given empty
/// (the environment counts only for what is not given).
fn given_or_env(
    given: Option<String>,
    var: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<String> {
    match given {
        Some(value) if value.is_empty() => None,
        Some(value) => Some(value),
        None => env(var),
    }
}

/// PostgreSQL's largest `max_connections`: the most connections a pool of
/// one server can use.
pub(crate) const MOST_CONNECTIONS: usize = 262_143;

pub(crate) fn parse_port(text: &str) -> Result<u16> {
    text.parse().ok().filter(|port| *port != 0).ok_or_else(|| {
        Error::Configuration(format!(
            "invalid port `{text}` in database URL: expected a number from 1 to 65535"
        ))
    })
}

/// `%XX` escapes of a part of a database URL undone; a malformed escape
/// or a result that is not UTF-8 is an error naming `what` part it is.
pub(crate) fn percent_decode(part: &str, what: &str) -> Result<String> {
    let bytes = part.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                // Two hex digits: `from_str_radix` alone would take `%+1`.
                .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| {
                    // A password is never repeated, not even a malformed one.
                    let shown = if is_secret(what) { "***" } else { part };
                    Error::Configuration(format!(
                        "invalid percent-encoding in the {what} of the database URL: `{shown}` \
                         (write `%` itself as `%25`)"
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
        let not_a_url = || {
            Error::Configuration(format!(
                "`{}` is not a database URL: expected postgresql://user:password@host:port/database",
                mask_password(url)
            ))
        };
        let RawUrl {
            scheme,
            userinfo,
            hosts: hostlist,
            path,
            query,
            ..
        } = RawUrl::split(url).ok_or_else(not_a_url)?;
        // Text before a `://` that no scheme could spell (`u:p@h/x://`)
        // is not shown as one: it may hold a password.
        if !is_scheme(scheme) {
            return Err(not_a_url());
        }
        // GINO's URLs name its driver too (`asyncpg://`,
        // `postgresql+asyncpg://`): the same server, taken as they are.
        if !matches!(
            scheme,
            "postgresql" | "postgres" | "asyncpg" | "postgresql+asyncpg" | "postgres+asyncpg"
        ) {
            return Err(Error::Configuration(format!(
                "unsupported URL scheme `{scheme}`: gino speaks PostgreSQL, use postgresql:// or postgres://"
            )));
        }
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
        // An `@` not read as the end of a user part: a password holding a
        // raw `/` or `?` may have been read as a host and a port, so their
        // errors repeat nothing of them.
        let unsure = userinfo.is_none() && url.contains('@');
        let mut hosts = Vec::new();
        if !hostlist.is_empty() {
            for spec in hostlist.split(',') {
                hosts.push(
                    parse_host(spec).map_err(|e| {
                        unless_secret(e, unsure, "a host or port of the database URL")
                    })?,
                );
            }
        }
        let database = match path {
            Some(p) if !p.is_empty() => Some(percent_decode(p, "database name")?),
            _ => None,
        };
        let mut params = Vec::new();
        let mut after_secret = false;
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').ok_or_else(|| {
                let no_value = Error::Configuration(format!(
                    "query parameter `{pair}` of the database URL has no value: write \
                     `{pair}=...`"
                ));
                unless_secret(no_value, after_secret, AFTER_SECRET)
            })?;
            let key = percent_decode(key, "query")
                .map_err(|e| unless_secret(e, after_secret, AFTER_SECRET))?;
            // libpq refuses both; the value, which may be (the rest of) a
            // password, is never repeated.
            if key.is_empty() {
                let no_key = Error::Configuration(
                    "a query parameter of the database URL has no name (`=value`)".to_owned(),
                );
                return Err(unless_secret(no_key, after_secret, AFTER_SECRET));
            }
            if value.contains('=') {
                let second = Error::Configuration(format!(
                    "the value of `{key}` in the database URL holds a second `=`: write `=` in \
                     a value as `%3D`"
                ));
                return Err(unless_secret(second, after_secret, AFTER_SECRET));
            }
            after_secret |= is_secret(&key);
            // The value is never repeated: it may be a password, or the
            // rest of one in a URL whose password was not escaped.
            let value = percent_decode(value, "query").map_err(|_| {
                Error::Configuration(format!(
                    "the value of `{key}` in the database URL is not valid percent-encoded \
                     UTF-8 (write `%` itself as `%25`)"
                ))
            })?;
            params.push((key, value));
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

/// Whether `text` could be a URL's scheme (RFC 3986: a letter, then
/// letters, digits, `+`, `-` or `.`), such as `postgresql+asyncpg`.
pub(crate) fn is_scheme(text: &str) -> bool {
    text.starts_with(|c: char| c.is_ascii_alphabetic())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// A database URL's parts as written, split as libpq splits them (see
/// [`split_userinfo`]); nothing is decoded or checked.
pub(crate) struct RawUrl<'a> {
    pub(crate) scheme: &'a str,
    pub(crate) userinfo: Option<&'a str>,
    /// The host list, ports included.
    pub(crate) hosts: &'a str,
    /// After the `/` that ends the host list, up to the `?`.
    pub(crate) path: Option<&'a str>,
    /// After the `?`.
    pub(crate) query: Option<&'a str>,
    /// Everything up to the end of the host list.
    #[cfg_attr(not(feature = "web"), allow(dead_code))] // A tenant's URL is made from it.
    pub(crate) server: &'a str,
}

impl<'a> RawUrl<'a> {
    /// `None` without a `://`.
    pub(crate) fn split(url: &'a str) -> Option<Self> {
        let (scheme, rest) = url.split_once("://")?;
        let (userinfo, rest) = split_userinfo(rest);
        let (before_query, query) = match rest.split_once('?') {
            Some((a, q)) => (a, Some(q)),
            None => (rest, None),
        };
        let (hosts, path) = match before_query.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (before_query, None),
        };
        // `rest` is the end of `url`, and the host list its start.
        let server = &url[..url.len() - rest.len() + hosts.len()];
        Some(RawUrl {
            scheme,
            userinfo,
            hosts,
            path,
            query,
            server,
        })
    }
}

/// Splits `user:password` off what follows a URL's `://`, as libpq does:
/// up to the last `@` before the first `/`, so that a password may hold a
/// raw `?` or `@` (`postgres://app:pa?ss@db/shop`). An `@` that text
/// reading as query parameters precedes (a `?`, then an `=`) is the
/// query's (`postgres://db?application_name=me@work`): the user part ends
/// at the last `@` before it, if any.
fn split_userinfo(rest: &str) -> (Option<&str>, &str) {
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let reads_as_query = |userinfo: &str| {
        userinfo
            .find('?')
            .is_some_and(|query| userinfo[query..].contains('='))
    };
    rest[..authority_end]
        .rmatch_indices('@')
        .map(|(at, _)| at)
        .find(|&at| !reads_as_query(&rest[..at]))
        .map_or((None, rest), |at| (Some(&rest[..at]), &rest[at + 1..]))
}

/// What a query parameter that follows a password is called in errors: it
/// may be the rest of the password.
const AFTER_SECRET: &str = "a query parameter after the password of the database URL";

/// `error` of a part of a URL, or, when that part may be a piece of a
/// password written with URL delimiters (read as something else), an
/// error that names only `what` the part is and how to write such a
/// password, repeating nothing of it.
fn unless_secret(error: Error, may_be_secret: bool, what: &str) -> Error {
    match error {
        Error::Configuration(_) if may_be_secret => Error::Configuration(format!(
            "{what} is invalid (a password holding `/`, `?`, `#`, `@` or `&` is written \
             percent-encoded: `%2F`, `%3F`, `%23`, `%40`, `%26`)"
        )),
        other => other,
    }
}

fn parse_host(spec: &str) -> Result<(String, Option<u16>)> {
    if let Some(rest) = spec.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(|| {
            Error::Configuration(format!("unclosed `[` in host `{spec}` of the database URL"))
        })?;
        let port = match after.strip_prefix(':') {
            Some(p) => own_port(p)?,
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
        Some((host, port)) => Ok((percent_decode(host, "host")?, own_port(port)?)),
        None => Ok((percent_decode(spec, "host")?, None)),
    }
}

/// The port after a URL's host and `:`: none when empty (`h:`), as in
/// libpq.
fn own_port(text: &str) -> Result<Option<u16>> {
    (!text.is_empty()).then(|| parse_port(text)).transpose()
}

/// Whether a URL part or query parameter of this name holds a secret,
/// which no message or `Display` may repeat.
fn is_secret(name: &str) -> bool {
    matches!(name, "password" | "sslpassword")
}

/// Masks the passwords of a URL that does not parse (so it cannot be
/// parsed to mask them, which would recurse): the value of every
/// `password` or `sslpassword` pair that a `?` or `&` starts, then
/// whatever sits between the user's `:` and the last `@`. In a malformed
/// URL a password may hold a `?` or an `@`, so more is masked rather than
/// less.
fn mask_password(url: &str) -> String {
    let mut pairs_masked = String::with_capacity(url.len());
    for (at, piece) in url.split_inclusive(['?', '&']).enumerate() {
        let (pair, separator) = match piece.strip_suffix(['?', '&']) {
            Some(pair) => (pair, &piece[pair.len()..]),
            None => (piece, ""),
        };
        match pair.split_once('=') {
            Some((key, _))
                if at > 0 && is_secret(&percent_decode(key, "query").unwrap_or_default()) =>
            {
                pairs_masked.push_str(&format!("{key}=***{separator}"));
            }
            _ => pairs_masked.push_str(piece),
        }
    }
    match pairs_masked.rsplit_once('@') {
        Some((userinfo, rest)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{rest}"),
            None => pairs_masked,
        },
        None => pairs_masked,
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
            let shown = if is_secret(key) { "***" } else { value };
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
    fn every_option_set_takes_can_be_compared() {
        // The keys `set` knows, as its error lists them.
        let unknown = EngineOptions::new().set("no_such_option", "1").unwrap_err();
        let message = unknown.to_string();
        let known = message
            .split("known options are ")
            .nth(1)
            .expect("the list");
        let options = EngineOptions::new();
        for key in known.split(", ").map(|k| k.trim_start_matches("and ")) {
            assert_eq!(
                options.named_value(key).map(|(name, _)| name),
                Some(key),
                "`{key}` has no value to compare"
            );
        }
        let spelled = |key: &str, value: &str| {
            EngineOptions::new()
                .set(key, value)
                .unwrap()
                .named_value(key)
        };
        assert_eq!(spelled("pool_max_size", "7"), spelled("max_size", "7"));
        // asyncpg's names for a query timeout and the statement cache.
        assert_eq!(spelled("command_timeout", "60"), spelled("timeout", "60s"));
        assert_eq!(
            spelled("statement_cache_size", "0"),
            spelled("statement_cache", "false")
        );
        assert_eq!(
            spelled("statement_cache_size", "100"),
            spelled("statement_cache", "true")
        );
        assert!(
            EngineOptions::new()
                .set("statement_cache_size", "-1")
                .is_err()
        );
        assert_eq!(spelled("echo", "yes"), spelled("echo", "on"));
        // asyncpg's `ssl`: a mode, or a boolean.
        assert_eq!(spelled("ssl", "true"), spelled("sslmode", "verify-full"));
        assert_eq!(spelled("ssl", "off"), spelled("sslmode", "disable"));
        assert_eq!(spelled("ssl", "require"), spelled("sslmode", "require"));
        let maybe = EngineOptions::new().set("ssl", "maybe").unwrap_err();
        assert!(
            maybe.to_string().contains("or true/false, got `maybe`"),
            "{maybe}"
        );
        // libpq's own `sslmode` stays as strict as libpq's.
        assert!(EngineOptions::new().set("sslmode", "true").is_err());
        assert_ne!(
            spelled("statement_timeout", "5"),
            spelled("statement_timeout", "6")
        );
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn resolve(url: &str) -> Result<(ConnectConfig, EngineOptions)> {
        url.parse::<DatabaseUrl>()?
            .resolve_in(EngineOptions::new(), &no_env)
    }

    fn resolve_with_env(url: &str, vars: &[(&str, &str)]) -> Result<ConnectConfig> {
        let env = |name: &str| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        };
        Ok(url
            .parse::<DatabaseUrl>()?
            .resolve_in(EngineOptions::new(), &env)?
            .0)
    }

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
        let (connect, options) = url.resolve_in(EngineOptions::new(), &no_env).unwrap();
        assert_eq!(options.max_size, 3);
        assert_eq!(connect.pg.get_application_name(), Some("app"));
        assert_eq!(connect.pg.get_ports(), &[5433, 6000]);
    }

    #[test]
    fn rejects_bad_parts_naming_them() {
        let err = |u: &str| match resolve(u) {
            Err(Error::Configuration(m)) => m,
            other => panic!("expected a configuration error for {u}, got {other:?}"),
        };
        assert!(err("mysql://localhost/db").contains("mysql"));
        assert!(err("postgres://localhost:99999/db").contains("99999"));
        assert!(err("postgres://localhost:0/db").contains("invalid port `0`"));
        assert!(err("postgres://localhost/db?bogus=1").contains("bogus"));
        assert!(err("postgres://localhost/db?max_size=ten").contains("max_size"));
        assert!(err("postgres://localhost/db?isolation_level=chaos").contains("chaos"));
        assert!(err("postgres://localhost/db?sslmode=bogus").contains("unknown sslmode `bogus`"));
        assert!(err("postgres://localhost/db?sslmode=REQUIRE").contains("REQUIRE"));
        assert!(err("postgres://localhost/db?sslrootcert=").contains("sslrootcert"));
        assert!(err("postgres://localhost/db?sslcert=").contains("sslcert"));
        assert!(err("postgres://localhost/db?sslkey=").contains("sslkey"));
        assert!(
            err("postgres://localhost/db?sslrootcert=system&sslmode=require")
                .contains("sslrootcert=system needs sslmode=verify-full")
        );
        assert!(err("postgres://localhost/db?target_session_attrs=master").contains("master"));
        assert!(err("postgres://localhost/db?keepalives=maybe").contains("keepalives"));
        assert!(err("postgres://localhost/db?keepalives_idle=soon").contains("keepalives_idle"));
        assert!(err("postgres://localhost/db?keepalives_count=x").contains("keepalives_count"));
        assert!(err("postgres://localhost/db?connect_timeout=x").contains("connect_timeout"));
        assert!(err("postgres://localhost/db?port=5432,x").contains("`x`"));
        assert!(err("postgres://localhost/db?hostaddr=nope").contains("hostaddr `nope`"));
        assert!(err("localhost/db").contains("not a database URL"));
        assert!(err("postgres://localhost/db?min_size=5&max_size=2").contains("min_size"));
        assert!(err("postgres://localhost/db?flag").contains("flag"));
        assert!(err("postgres://local%zzhost/db").contains("percent"));
        assert!(err("postgres://localhost/db?timeout=0").contains("`timeout` must be longer"));
        assert!(err("postgres://localhost/db?command_timeout=0").contains("`timeout`"));
        for (url, part) in [
            ("postgres://u%00x@localhost/db", "in the user name, which"),
            ("postgres://u:p%00@localhost/db", "in the password, which"),
            ("postgres://localhost/d%00b", "in the database name, which"),
            ("postgres://local%00host/db", "in the host, which"),
            (
                "postgres://localhost/db?application_name=a%00",
                "in the application_name, which",
            ),
            (
                "postgres://localhost/db?options=-c%00",
                "in the options, which",
            ),
        ] {
            assert!(err(url).contains(part), "{url}: {}", err(url));
        }
        let password = err("postgres://u:s3cret%+1@localhost/db");
        assert!(password.contains("password"), "{password}");
        assert!(!password.contains("s3cret"), "{password}");
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
        // Too long for a `Duration`, infinite, not a number: errors, not panics.
        for huge in ["1e30", "1e300m", "inf", "NaN", "-0.5s"] {
            assert!(parse_duration("t", huge).is_err(), "{huge}");
        }
    }

    #[test]
    fn statement_timeout_and_options_reach_server_options() {
        let url: DatabaseUrl = "postgres://h/db?options=-c%20search_path%3Dx&statement_timeout=2s"
            .parse()
            .unwrap();
        let (connect, _) = url.resolve_in(EngineOptions::new(), &no_env).unwrap();
        assert_eq!(
            connect.pg.get_options(),
            Some("-c search_path=x -c statement_timeout=2000")
        );
    }

    #[test]
    fn statement_timeouts_the_server_cannot_take_are_refused() {
        let resolved = |timeout: Duration| {
            let url: DatabaseUrl = "postgres://h/db".parse().unwrap();
            url.resolve_in(EngineOptions::new().statement_timeout(timeout), &no_env)
                .map(|(connect, _)| connect.pg.get_options().map(str::to_owned))
        };
        let longest = Duration::from_millis(i32::MAX as u64);
        assert_eq!(
            resolved(longest).unwrap().as_deref(),
            Some("-c statement_timeout=2147483647")
        );
        assert_eq!(
            resolved(Duration::ZERO).unwrap().as_deref(),
            Some("-c statement_timeout=0"),
            "PostgreSQL's own 'no timeout'"
        );
        for refused in [
            longest + Duration::from_millis(1),
            Duration::from_micros(500),
        ] {
            let err = resolved(refused).unwrap_err();
            assert!(matches!(err, Error::Configuration(_)), "{refused:?}: {err}");
            assert!(err.to_string().contains("statement_timeout"), "{err}");
        }
        // From the URL too.
        let url: DatabaseUrl = "postgres://h/db?statement_timeout=3000000".parse().unwrap();
        assert!(url.resolve_in(EngineOptions::new(), &no_env).is_err());
    }

    #[test]
    fn an_empty_host_is_the_default_one() {
        let hosts = |url: &str, env: &dyn Fn(&str) -> Option<String>| {
            let url: DatabaseUrl = url.parse().unwrap();
            let (connect, _) = url.resolve_in(EngineOptions::new(), env).unwrap();
            let names: Vec<String> = connect
                .pg
                .get_hosts()
                .iter()
                .map(|host| match host {
                    tokio_postgres::config::Host::Tcp(name) => name.clone(),
                    tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
                })
                .collect();
            (names, connect.pg.get_ports().to_vec())
        };
        assert_eq!(
            hosts("postgres://:5433/db", &no_env),
            (vec!["localhost".to_owned()], vec![5433])
        );
        assert_eq!(
            hosts("postgres://h/db?host=a,,b", &no_env).0,
            ["a", "localhost", "b"]
        );
        // `host=` names other hosts; the URL's port stays theirs.
        assert_eq!(
            hosts("postgres://db:6438/x?host=h", &no_env),
            (vec!["h".to_owned()], vec![6438])
        );
        let pghost = |name: &str| (name == "PGHOST").then(|| "db.internal".to_owned());
        assert_eq!(
            hosts("postgres://u@:5433/db", &pghost),
            (vec!["db.internal".to_owned()], vec![5433])
        );
    }

    #[test]
    fn a_replica_check_interval_of_zero_is_refused() {
        let url: DatabaseUrl = "postgres://h/db".parse().unwrap();
        let zero = EngineOptions::new().replica_check_interval(Duration::ZERO);
        let err = url.resolve_in(zero, &no_env).unwrap_err();
        assert!(err.to_string().contains("replica_check_interval"), "{err}");
    }

    #[test]
    fn names_the_server_would_cut_short_are_refused() {
        let long = "d".repeat(63);
        let resolved = |url: &str| {
            url.parse::<DatabaseUrl>()
                .unwrap()
                .resolve_in(EngineOptions::new(), &no_env)
        };
        resolved(&format!("postgres://h/{long}")).unwrap();
        let err = resolved(&format!("postgres://h/{long}x")).unwrap_err();
        assert!(
            err.to_string().contains(&format!("reach `{long}`")),
            "{err}"
        );
        // Cut on a character's boundary, as the server cuts it.
        let accented = format!("postgres://h/{}%C3%A9", "d".repeat(62));
        let err = resolved(&accented).unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("reach `{}`", "d".repeat(62))),
            "{err}"
        );
        assert!(resolved(&format!("postgres://{long}u@h/db")).is_err());
        let from_env = |name: &str| (name == "PGDATABASE").then(|| format!("{long}x"));
        let url: DatabaseUrl = "postgres://h".parse().unwrap();
        assert!(url.resolve_in(EngineOptions::new(), &from_env).is_err());
    }

    #[test]
    fn ssl_settings_follow_libpq() {
        let tls = |url: &str| resolve(url).unwrap().0.tls;
        assert_eq!(tls("postgres://h/db").mode, SslMode::Prefer);
        assert_eq!(
            tls("postgres://h/db?sslmode=disable").mode,
            SslMode::Disable
        );
        let full =
            tls("postgres://h/db?sslmode=verify-full&sslrootcert=/ca.pem&sslcert=/c&sslkey=/k");
        assert_eq!(full.mode, SslMode::VerifyFull);
        assert_eq!(full.root_cert, Some(SslRootCert::File("/ca.pem".into())));
        assert_eq!(full.cert.as_deref(), Some(Path::new("/c")));
        assert_eq!(full.key.as_deref(), Some(Path::new("/k")));
        // The system's roots make verify-full the default.
        let system = tls("postgres://h/db?sslrootcert=system");
        assert_eq!(
            (system.mode, system.root_cert),
            (SslMode::VerifyFull, Some(SslRootCert::System))
        );
        // Code sets a mode, the URL overrides it.
        let (connect, _) = "postgres://h/db?sslmode=require"
            .parse::<DatabaseUrl>()
            .unwrap()
            .resolve_in(EngineOptions::new().ssl_mode(SslMode::Disable), &no_env)
            .unwrap();
        assert_eq!(connect.tls.mode, SslMode::Require);
    }

    #[test]
    fn the_environment_fills_what_the_url_leaves_out() {
        let env = [
            ("PGHOST", "db1,db2"),
            ("PGPORT", "6000,6001"),
            ("PGUSER", "alice"),
            ("PGPASSWORD", "s3cret"),
            ("PGDATABASE", "shop"),
            ("PGAPPNAME", "billing"),
            ("PGOPTIONS", "-c search_path=app"),
            ("PGCONNECT_TIMEOUT", "7"),
            ("PGTARGETSESSIONATTRS", "read-write"),
            ("PGSSLMODE", "require"),
            ("PGSSLROOTCERT", "/etc/ca.pem"),
        ];
        let from_env = resolve_with_env("postgres://", &env).unwrap();
        let pg = &from_env.pg;
        assert_eq!(
            pg.get_hosts(),
            [
                tokio_postgres::config::Host::Tcp("db1".into()),
                tokio_postgres::config::Host::Tcp("db2".into())
            ]
        );
        assert_eq!(pg.get_ports(), [6000, 6001]);
        assert_eq!(pg.get_user(), Some("alice"));
        assert_eq!(pg.get_password(), Some(&b"s3cret"[..]));
        assert_eq!(pg.get_dbname(), Some("shop"));
        assert_eq!(pg.get_application_name(), Some("billing"));
        assert_eq!(pg.get_options(), Some("-c search_path=app"));
        assert_eq!(pg.get_connect_timeout(), Some(&Duration::from_secs(7)));
        // A tool's fallback name gives way to PGAPPNAME and the URL's.
        let named = |url: &str, vars: &[(&str, &str)]| {
            let config = resolve_with_env(url, vars).unwrap();
            config.pg.get_application_name().map(str::to_owned)
        };
        let tool = "postgres://h/db?fallback_application_name=tool";
        assert_eq!(named(tool, &[]).as_deref(), Some("tool"));
        assert_eq!(
            named(tool, &[("PGAPPNAME", "billing")]).as_deref(),
            Some("billing")
        );
        let both = format!("{tool}&application_name=web");
        assert_eq!(named(&both, &[]).as_deref(), Some("web"));
        for zero in [
            "postgres://h/db?connect_timeout=0",
            "postgres://h/db?connect_timeout=0s",
        ] {
            let (waits, _) = resolve(zero).unwrap();
            assert_eq!(
                waits.pg.get_connect_timeout(),
                None,
                "{zero} waits indefinitely"
            );
        }
        assert_eq!(from_env.target, TargetSessionAttrs::ReadWrite);
        assert_eq!(from_env.tls.mode, SslMode::Require);
        assert_eq!(
            from_env.tls.root_cert,
            Some(SslRootCert::File("/etc/ca.pem".into()))
        );

        // Whatever the URL says wins.
        let from_url = resolve_with_env(
            "postgres://bob:pw@h:5555/inventory?application_name=web&sslmode=disable\
             &target_session_attrs=any&options=-c%20x%3D1",
            &env,
        )
        .unwrap();
        let pg = &from_url.pg;
        assert_eq!(
            pg.get_hosts(),
            [tokio_postgres::config::Host::Tcp("h".into())]
        );
        assert_eq!(pg.get_ports(), [5555]);
        assert_eq!(pg.get_user(), Some("bob"));
        assert_eq!(pg.get_password(), Some(&b"pw"[..]));
        assert_eq!(pg.get_dbname(), Some("inventory"));
        assert_eq!(pg.get_application_name(), Some("web"));
        assert_eq!(pg.get_options(), Some("-c x=1"));
        assert_eq!(from_url.target, TargetSessionAttrs::Any);
        assert_eq!(from_url.tls.mode, SslMode::Disable);
        let asyncpg_style = resolve_with_env("postgres://h/db?ssl=true", &[]).unwrap();
        assert_eq!(asyncpg_style.tls.mode, SslMode::VerifyFull);

        // A bad value in the environment is an error naming the variable.
        let bad = resolve_with_env("postgres://h/db", &[("PGCONNECT_TIMEOUT", "soon")]);
        assert!(matches!(bad, Err(Error::Configuration(m)) if m.contains("PGCONNECT_TIMEOUT")));
        let bound = resolve_with_env("postgres://h/db", &[("PGCHANNELBINDING", "require")]);
        assert_eq!(
            bound.unwrap().pg.get_channel_binding(),
            tokio_postgres::config::ChannelBinding::Require
        );
        let scram = || crate::auth::RequireAuth::parse("scram-sha-256").ok();
        let required = resolve_with_env("postgres://h/db", &[("PGREQUIREAUTH", "scram-sha-256")]);
        assert_eq!(required.unwrap().require_auth, scram());
        let url_first = resolve_with_env(
            "postgres://h/db?require_auth=scram-sha-256",
            &[("PGREQUIREAUTH", "password")],
        );
        assert_eq!(url_first.unwrap().require_auth, scram());
        let unknown = resolve_with_env("postgres://h/db?require_auth=kerberos", &[]);
        assert!(matches!(unknown, Err(Error::Configuration(m)) if m.contains("`kerberos`")));
        let random = resolve_with_env("postgres://h/db", &[("PGLOADBALANCEHOSTS", "random")]);
        assert_eq!(
            random.unwrap().pg.get_load_balance_hosts(),
            tokio_postgres::config::LoadBalanceHosts::Random
        );
        // hostaddr: one address per host, or the addresses alone.
        let both = resolve_with_env("postgres://a,b/db?hostaddr=10.0.0.1,::1", &[]).unwrap();
        let addresses: Vec<std::net::IpAddr> =
            vec!["10.0.0.1".parse().unwrap(), "::1".parse().unwrap()];
        assert_eq!(both.pg.get_hostaddrs(), addresses);
        let named = [("PGHOSTADDR", "10.0.0.1"), ("PGHOST", "db.example.com")];
        let named = resolve_with_env("postgres:///db", &named).unwrap();
        assert_eq!(
            named.pg.get_hosts(),
            [tokio_postgres::config::Host::Tcp("db.example.com".into())]
        );
        let alone = resolve_with_env("postgres:///db", &[("PGHOSTADDR", "10.0.0.1")]).unwrap();
        assert_eq!(
            alone.pg.get_hosts(),
            [tokio_postgres::config::Host::Tcp("10.0.0.1".into())]
        );
        let bad = resolve_with_env("postgres://a,b/db?hostaddr=10.0.0.1", &[]);
        assert!(
            matches!(bad, Err(Error::Configuration(m)) if m.contains("2 host names but 1 hostaddr"))
        );
        let bad = resolve_with_env("postgres://a/db?hostaddr=db.example.com", &[]);
        assert!(matches!(bad, Err(Error::Configuration(m)) if m.contains("not an IP address")));
        // Revocation lists: a file and a directory, from the URL or the
        // environment.
        let crls = resolve_with_env(
            "postgres://h/db?sslcrl=/etc/ca.crl",
            &[("PGSSLCRLDIR", "/etc/crls")],
        );
        let tls = crls.unwrap().tls;
        assert_eq!(tls.crl.as_deref(), Some(Path::new("/etc/ca.crl")));
        assert_eq!(tls.crl_dir.as_deref(), Some(Path::new("/etc/crls")));
        assert!(tls.sni);
        let no_sni = resolve_with_env("postgres://h/db?sslsni=0", &[]).unwrap();
        assert!(!no_sni.tls.sni);
        // GSSAPI: never used, so `disable` and `prefer` change nothing.
        assert!(
            resolve_with_env("postgres://h/db?gssencmode=disable&sslcompression=0", &[]).is_ok()
        );
        let gss = resolve_with_env("postgres://h/db?gssencmode=require", &[]);
        assert!(matches!(gss, Err(Error::Configuration(m)) if m.contains("GSSAPI")));
        // TLS versions: libpq's names, any case; TLSv1.2 at least unless said.
        let versions =
            |url: &str, env: &[(&str, &str)]| resolve_with_env(url, env).map(|c| c.tls.versions);
        assert_eq!(
            versions("postgres://h/db", &[]).unwrap(),
            (TlsVersion::V1_2, None)
        );
        assert_eq!(
            versions("postgres://h/db?ssl_min_protocol_version=tlsv1.3", &[]).unwrap(),
            (TlsVersion::V1_3, None)
        );
        assert_eq!(
            versions(
                "postgres://h/db?ssl_min_protocol_version=",
                &[("PGSSLMAXPROTOCOLVERSION", "TLSv1.2")]
            )
            .unwrap(),
            (TlsVersion::V1_0, Some(TlsVersion::V1_2))
        );
        let inverted = versions(
            "postgres://h/db?ssl_min_protocol_version=TLSv1.3&ssl_max_protocol_version=TLSv1.2",
            &[],
        );
        assert!(
            matches!(inverted, Err(Error::Configuration(m)) if m.contains("(TLSv1.2 < TLSv1.3)"))
        );
        let bad = versions("postgres://h/db?ssl_max_protocol_version=SSLv3", &[]);
        assert!(
            matches!(bad, Err(Error::Configuration(m)) if m.contains("ssl_max_protocol_version `SSLv3`"))
        );
        let bad = resolve_with_env("postgres://h/db?load_balance_hosts=on", &[]);
        assert!(
            matches!(bad, Err(Error::Configuration(m)) if m.contains("load_balance_hosts `on`"))
        );
        let bad = resolve_with_env("postgres://h/db?channel_binding=yes", &[]);
        assert!(matches!(bad, Err(Error::Configuration(m)) if m.contains("channel_binding `yes`")));
        let bad = resolve_with_env("postgres://h/db", &[("PGSSLMODE", "on")]);
        assert!(matches!(bad, Err(Error::Configuration(m)) if m.contains("sslmode `on`")));
    }

    #[test]
    fn a_password_file_is_looked_in_only_without_a_password() {
        let home = [("HOME", "/home/app")];
        let file = |url: &str, env: &[(&str, &str)]| {
            resolve_with_env(url, env).unwrap().passfile.map(|f| f.path)
        };
        let home_file = Some(PathBuf::from("/home/app/.pgpass"));
        assert_eq!(file("postgres://app@h/shop", &home), home_file);
        // An empty password is none.
        assert_eq!(file("postgres://app:@h/shop", &home), home_file);
        let given = Some(PathBuf::from("/etc/pgpass"));
        assert_eq!(
            file("postgres://app@h/shop?passfile=/etc/pgpass", &home),
            given
        );
        let env = [("HOME", "/home/app"), ("PGPASSFILE", "/etc/pgpass")];
        assert_eq!(file("postgres://app@h/shop", &env), given);
        assert_eq!(
            file("postgres://app:pw@h/shop?passfile=/etc/pgpass", &env),
            None
        );
        assert_eq!(file("postgres://app@h/shop?password=pw", &env), None);
        assert_eq!(file("postgres://app@h/shop", &[("PGPASSWORD", "pw")]), None);
        assert_eq!(file("postgres://app@h/shop", &[]), None);
    }

    /// A parameter given empty is unset, as in libpq: its default applies.
    #[test]
    fn empty_user_passfile_and_requirepeer_take_libpqs_defaults() {
        // Given empty, the environment does not count (only for what is
        // not given): the system's user, the home's file, no peer.
        let env = [
            ("HOME", "/home/app"),
            ("USER", "app"),
            ("PGUSER", "from_env"),
            ("PGPASSFILE", "/etc/pgpass"),
            ("PGREQUIREPEER", "postgres"),
        ];
        let connect =
            resolve_with_env("postgres://h/shop?user=&passfile=&requirepeer=", &env).unwrap();
        assert_eq!(connect.pg.get_user(), Some("app"));
        assert_eq!(
            connect.passfile.map(|f| f.path),
            Some(PathBuf::from("/home/app/.pgpass"))
        );
        assert_eq!(connect.require_peer, None);
    }

    /// Hosts and ports pair up as libpq pairs them: one port for all, or
    /// one each; other counts are refused.
    #[test]
    fn a_port_list_of_another_length_than_the_hosts_is_refused() {
        for url in [
            "postgres:///db?host=a,b,c&port=6000,6001",
            "postgres:///db?host=a&port=1,2,3",
            "postgres://a,b/db?port=1,2,3",
            // A host's own port does not make a list of another length fit.
            "postgres://a:5555,b/db?port=1,2,3",
            "postgres://a:5555,b,c/db?port=1,2",
        ] {
            assert!(
                matches!(resolve(url), Err(Error::Configuration(m)) if m.contains("ports")),
                "{url}"
            );
        }
        let (connect, _) = resolve("postgres:///db?host=a,b,c&port=6000").unwrap();
        assert_eq!(connect.pg.get_ports(), [6000, 6000, 6000]);
        // Hosts with ports of their own take none from PGPORT, as libpq's
        // port list is then the URL's (a host without one: 5432).
        let connect =
            resolve_with_env("postgres://a:5555,b/db", &[("PGPORT", "6000,6001")]).unwrap();
        assert_eq!(connect.pg.get_ports(), [5555, 5432]);
    }

    #[test]
    fn a_service_fills_what_the_url_leaves_out_and_beats_the_environment() {
        use tokio_postgres::config::Host;
        let files = crate::service::tests::Files::new("config");
        let file = files.write(
            "services.conf",
            "[shop]\nhost=db1\nport=6000\nuser=app\npassword=s3cret\ndbname=shop\n\
             application_name=web\nmax_size=3\n[broken]\ncolour=blue\n",
        );
        let env = [("PGSERVICEFILE", file.as_str()), ("PGUSER", "env-user")];
        let all = resolve_with_env("postgres:///?service=shop", &env).unwrap();
        assert_eq!(all.pg.get_hosts(), [Host::Tcp("db1".into())]);
        assert_eq!(all.pg.get_ports(), [6000]);
        assert_eq!(all.pg.get_user(), Some("app"));
        assert_eq!(all.pg.get_password(), Some(&b"s3cret"[..]));
        assert_eq!(all.pg.get_dbname(), Some("shop"));
        assert_eq!(all.pg.get_application_name(), Some("web"));
        let (_, options) = "postgres:///?service=shop"
            .parse::<DatabaseUrl>()
            .unwrap()
            .resolve_in(EngineOptions::new(), &|name| {
                env.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            })
            .unwrap();
        assert_eq!(options.max_size, 3);

        // What the URL says wins; PGSERVICE names the service too.
        let env = [("PGSERVICEFILE", file.as_str()), ("PGSERVICE", "shop")];
        let url = resolve_with_env("postgres://bob@h:7000/inv?application_name=api", &env);
        let pg = url.unwrap().pg;
        assert_eq!(pg.get_hosts(), [Host::Tcp("h".into())]);
        assert_eq!(pg.get_ports(), [7000]);
        assert_eq!(pg.get_user(), Some("bob"));
        assert_eq!(pg.get_dbname(), Some("inv"));
        assert_eq!(pg.get_application_name(), Some("api"));
        // The service's port serves a host the URL gives without one.
        let port = resolve_with_env("postgres://h/inv", &env).unwrap().pg;
        assert_eq!(port.get_ports(), [6000]);

        let err = |url: &str| match resolve_with_env(url, &env) {
            Err(Error::Configuration(m)) => m,
            other => panic!("expected a configuration error for {url}, got {other:?}"),
        };
        assert!(
            err("postgres:///?service=broken")
                .contains("service `broken`: unknown engine option `colour`")
        );
        assert!(err("postgres:///?service=gone").contains("service `gone` is not defined"));

        // The URL's servicefile names the file, before PGSERVICEFILE.
        let given = files.write("given.conf", "[shop]\nport=6100\n");
        let url = format!("postgres://h/inv?service=shop&servicefile={given}");
        let pg = resolve_with_env(&url, &[("PGSERVICEFILE", file.as_str())]);
        assert_eq!(pg.unwrap().pg.get_ports(), [6100]);
    }

    #[test]
    fn one_port_serves_every_host() {
        let (connect, _) = resolve("postgres://a,b:7000,c/db?port=6000").unwrap();
        assert_eq!(connect.pg.get_ports(), [6000, 7000, 6000]);
        let (connect, _) = resolve("postgres:///db?host=a,b&port=6000,6001").unwrap();
        assert_eq!(connect.pg.get_ports(), [6000, 6001]);
    }

    #[test]
    fn keepalives_reach_the_config() {
        let (connect, _) =
            resolve("postgres://h/db?keepalives_idle=30&keepalives_interval=5&keepalives_count=3")
                .unwrap();
        assert!(connect.pg.get_keepalives());
        assert_eq!(connect.pg.get_keepalives_idle(), Duration::from_secs(30));
        assert_eq!(
            connect.pg.get_keepalives_interval(),
            Some(Duration::from_secs(5))
        );
        assert_eq!(connect.pg.get_keepalives_retries(), Some(3));
        let (off, _) = resolve("postgres://h/db?keepalives=0").unwrap();
        assert!(!off.pg.get_keepalives());
        // 0 is the system's default, as in libpq.
        let (default, _) =
            resolve("postgres://h/db?keepalives_idle=0&keepalives_interval=0&keepalives_count=0")
                .unwrap();
        assert_eq!(default.pg.get_keepalives_interval(), None);
        assert_eq!(default.pg.get_keepalives_retries(), None);
    }

    /// What the kernel would refuse on every connect (`EINVAL`, read as
    /// "cannot connect"), or a fraction it would cut off, is refused at
    /// once, naming the setting.
    #[test]
    fn keepalives_the_kernel_refuses_are_refused() {
        for setting in [
            "keepalives_idle=500ms",
            "keepalives_idle=1.5",
            "keepalives_idle=600m",
            "keepalives_idle=32768",
            "keepalives_interval=0.5",
            "keepalives_count=128",
            "keepalives_count=4294967296",
        ] {
            let refused = resolve(&format!("postgres://h/db?{setting}"));
            let key = setting.split('=').next().unwrap();
            assert!(
                matches!(&refused, Err(Error::Configuration(m)) if m.contains(key) && m.contains("kernel")),
                "{setting}: {refused:?}"
            );
        }
        let (most, _) =
            resolve("postgres://h/db?keepalives_idle=32767&keepalives_count=127").unwrap();
        assert_eq!(most.pg.get_keepalives_idle(), Duration::from_secs(32_767));
        assert_eq!(most.pg.get_keepalives_retries(), Some(127));
    }

    /// An empty value, or an empty item of a port list, is libpq's
    /// default, not a value to fail on (or to take the environment's).
    #[test]
    fn empty_values_take_libpqs_defaults() {
        let env = [
            ("PGSSLCRL", "/env/root.crl"),
            ("PGSSLCRLDIR", "/env/crls"),
            ("PGREQUIREAUTH", "password"),
            ("PGHOSTADDR", "10.0.0.1"),
            ("PGDATABASE", "envdb"),
            ("HOME", "/home/app"),
        ];
        let connect = resolve_with_env(
            "postgres://app@h/?sslcrl=&sslcrldir=&require_auth=&hostaddr=&dbname=",
            &env,
        )
        .unwrap();
        assert_eq!(connect.tls.crl, None);
        assert_eq!(connect.tls.crl_dir, None);
        assert_eq!(connect.require_auth, None);
        assert!(connect.pg.get_hostaddrs().is_empty());
        assert_eq!(connect.pg.get_dbname(), None);
        // The server takes the user's name for the database: so does the
        // password file.
        let home = |name: &str| (name == "HOME").then(|| "/home/app".to_owned());
        assert_eq!(
            connect.passfile,
            PassFile::locate(None, &home, "app", Some("app"))
        );
        let ports = |url: &str| resolve(url).unwrap().0.pg.get_ports().to_vec();
        assert_eq!(ports("postgres:///db?host=a,b&port=6000,"), [6000, 5432]);
        assert_eq!(ports("postgres://h/db?port="), [5432]);
        assert_eq!(ports("postgres://h:,[::1]:/db"), [5432, 5432]);
    }

    /// `options` given twice: the last wins, as every other parameter,
    /// and as in libpq (appending one to a URL overrides its options).
    #[test]
    fn the_last_options_given_win() {
        let url = "postgres://h/db?options=-c%20search_path%3Dold&options=-c%20work_mem%3D1MB";
        let (connect, _) = resolve(url).unwrap();
        assert_eq!(connect.pg.get_options(), Some("-c work_mem=1MB"));
    }

    #[test]
    fn libpq_settings_gino_speaks_in_part_take_what_it_speaks() {
        for taken in [
            "client_encoding=UTF8",
            "client_encoding=utf-8",
            "client_encoding=unicode",
            "sslnegotiation=postgres",
            "min_protocol_version=3.0",
            "min_protocol_version=latest&max_protocol_version=3.0",
            "max_protocol_version=3.2",
            "max_protocol_version=latest",
            "krbsrvname=postgres&gsslib=gssapi&gssdelegation=1",
        ] {
            let url = format!("postgres://h/db?{taken}");
            assert!(resolve(&url).is_ok(), "{taken}");
        }
        for (refused, why) in [
            ("client_encoding=LATIN1", "client_encoding `LATIN1`"),
            ("sslnegotiation=direct", "sslnegotiation=direct"),
            ("sslnegotiation=fast", "sslnegotiation `fast`"),
            (
                "min_protocol_version=3.2",
                "min_protocol_version=3.2 asks for protocol 3.2",
            ),
            (
                "min_protocol_version=3.1",
                "unknown min_protocol_version `3.1`",
            ),
            ("max_protocol_version=2", "unknown max_protocol_version `2`"),
            (
                "min_protocol_version=3.2&max_protocol_version=3.0",
                "max_protocol_version=3.0 is below min_protocol_version=3.2",
            ),
            ("gssdelegation=maybe", "gssdelegation"),
            (
                "requiressl=1",
                "requiressl: deprecated in favour of sslmode",
            ),
            (
                "replication=database",
                "replication: replication connections",
            ),
            (
                "oauth_issuer=https://id.example.com",
                "oauth_issuer: OAuth login",
            ),
            (
                "scram_client_key=a2V5",
                "scram_client_key: SCRAM key pass-through",
            ),
        ] {
            let url = format!("postgres://h/db?{refused}");
            let Err(Error::Configuration(message)) = resolve(&url) else {
                panic!("{refused} was taken");
            };
            assert!(message.contains(why), "{refused}: {message}");
        }
        // The environment's bounds count when the URL gives none.
        let env = [("PGMINPROTOCOLVERSION", "3.2")];
        assert!(resolve_with_env("postgres://h/db", &env).is_err());
        let url = "postgres://h/db?min_protocol_version=3.0";
        assert!(resolve_with_env(url, &env).is_ok());
        let env = [("PGMAXPROTOCOLVERSION", "3.9")];
        assert!(resolve_with_env("postgres://h/db", &env).is_err());
    }

    #[test]
    fn passwords_in_the_query_are_never_shown() {
        let url: DatabaseUrl = "postgres://h/db?password=p1&sslpassword=p2&sslkey=/k"
            .parse()
            .unwrap();
        let shown = format!("{url} {url:?}");
        assert!(!shown.contains("p1") && !shown.contains("p2"), "{shown}");
        assert!(shown.contains("sslpassword=***&sslkey=/k"), "{shown}");
        let (connect, _) = url.resolve_in(EngineOptions::new(), &no_env).unwrap();
        assert_eq!(connect.tls.key_password, Some(KeyPassword("p2".to_owned())));
        assert!(!format!("{:?}", connect.tls).contains("p2"));
        // Nor in the errors of URLs that do not parse: a malformed escape
        // in a query's password, a URL without its scheme.
        for url in [
            "postgres://h/db?password=s3cret%zz",
            "postgres://h/db?sslpassword=s3cret%4",
            "h/db?password=s3cret&sslmode=require",
            "u:s3cret@h/db?sslpassword=s3cret",
            "h/db?application_name=x&pass%77ord=s3cret",
            "u:s3cret@h/x://y",
            // A password with a raw `/` or `?…=` reads as a host and a port.
            "postgres://app:s3cret/xY9@db/shop",
            "postgres://app:s3cret?a=b@db/shop",
            "postgres://app:[s3cret/x@db/shop",
            // A password in the query with a raw `&`.
            "postgres://h/db?password=ab&s3cret",
            "postgres://h/db?password=ab&s3cret%zz=1",
            // A password with a raw `?` or `=` where a query begins: libpq
            // refuses a parameter with no name or a second `=`.
            "postgres://:?=?password=p%40s3cret",
            "postgres://h/db?password=s3cret=x",
            "postgres://h/db?sslmode=require&password=a&x==s3cret",
        ] {
            let message = url.parse::<DatabaseUrl>().unwrap_err().to_string();
            assert!(!message.contains("s3cret"), "{message}");
        }
        let url: DatabaseUrl = "postgres://h/db?password=ab&s3cret=x".parse().unwrap();
        let message = url
            .resolve_in(EngineOptions::new(), &no_env)
            .map(drop)
            .unwrap_err()
            .to_string();
        assert!(!message.contains("s3cret"), "{message}");
    }

    #[test]
    fn a_password_may_hold_a_raw_question_mark_as_in_libpq() {
        let url: DatabaseUrl = "postgres://app:pa?ss@db:5433/shop?sslmode=disable"
            .parse()
            .unwrap();
        assert_eq!(url.user(), Some("app"));
        assert_eq!(url.password.as_deref(), Some("pa?ss"));
        assert_eq!(url.hosts, vec![("db".into(), Some(5433))]);
        assert_eq!(url.database(), Some("shop"));
        assert_eq!(url.params, [("sslmode".into(), "disable".into())]);
        // An `@` in a query's value is the query's, with or without a path.
        for text in [
            "postgres://db?application_name=me@work",
            "postgres://db/shop?application_name=me@work",
        ] {
            let url: DatabaseUrl = text.parse().unwrap();
            assert_eq!(
                (url.user(), url.password.as_deref()),
                (None, None),
                "{text}"
            );
            assert_eq!(url.hosts, vec![("db".into(), None)], "{text}");
            assert_eq!(
                url.params,
                [("application_name".into(), "me@work".into())],
                "{text}"
            );
        }
    }

    #[test]
    fn sslkeylogfile_names_the_file_an_empty_value_none() {
        let key_log = |url: &str| resolve(url).unwrap().0.tls.key_log;
        assert_eq!(
            key_log("postgres://h/db?sslkeylogfile=/var/tmp/keys"),
            Some(PathBuf::from("/var/tmp/keys"))
        );
        assert_eq!(key_log("postgres://h/db?sslkeylogfile="), None);
        assert_eq!(key_log("postgres://h/db"), None);
    }

    #[test]
    fn tcp_user_timeout_counts_milliseconds_as_libpq_does() {
        let timeout = |url: &str| resolve(url).map(|(c, _)| c.pg.get_tcp_user_timeout().copied());
        let millis = Some(Duration::from_millis(2500));
        assert_eq!(
            timeout("postgres://h/db?tcp_user_timeout=2500").unwrap(),
            millis
        );
        assert_eq!(
            timeout("postgres://h/db?tcp_user_timeout=2.5s").unwrap(),
            millis
        );
        assert_eq!(timeout("postgres://h/db?tcp_user_timeout=0").unwrap(), None);
        assert_eq!(
            timeout("postgres://h/db?tcp_user_timeout=%202500").unwrap(),
            millis
        );
        // A whole number too large is not called a fraction.
        assert!(matches!(
            timeout("postgres://h/db?tcp_user_timeout=99999999999999999999999"),
            Err(Error::Configuration(m)) if !m.contains("whole number")
        ));
        // Not seconds: libpq takes whole milliseconds.
        for fraction in ["2500.0", "1.5", "1e3", "-1"] {
            assert!(matches!(
                timeout(&format!("postgres://h/db?tcp_user_timeout={fraction}")),
                Err(Error::Configuration(m)) if m.contains("milliseconds")
            ));
        }
        assert!(matches!(
            timeout("postgres://h/db?tcp_user_timeout=soon"),
            Err(Error::Configuration(m)) if m.contains("tcp_user_timeout")
        ));
    }
}
