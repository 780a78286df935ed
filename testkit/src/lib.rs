//! Test and example support for gino: a real PostgreSQL server, and a fresh
//! database for every test.
//!
//! The server is found once per process:
//!
//! 1. `DATABASE_URL`, when it is set and a connection to it succeeds;
//! 2. otherwise a throwaway cluster started from the locally installed
//!    PostgreSQL binaries (`initdb`, `pg_ctl`, `postgres`), which is stopped
//!    and deleted when the process exits;
//! 3. otherwise [`Server::get`] panics and explains how to provide one.
//!
//! ```no_run
//! # async fn example() {
//! let db = gino_testkit::TestDatabase::create().await;
//! let (client, connection) = tokio_postgres::connect(db.url(), tokio_postgres::NoTls)
//!     .await
//!     .unwrap();
//! tokio::spawn(connection);
//! client.batch_execute("CREATE TABLE t (id int)").await.unwrap();
//! // The database is dropped together with `db`.
//! # }
//! ```

mod cluster;
pub mod doc;
mod pgbouncer;
mod tls;
mod url;

pub use cluster::{Cluster, ClusterBuilder};
pub use pgbouncer::PgBouncer;
pub use tls::{Issued, TestCa, self_signed_server};

use std::env::{self, VarError};
use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::io::Write;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config, NoTls};

use crate::cluster::StartError;
use crate::url::UrlTemplate;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

const HOW_TO_PROVIDE_A_SERVER: &str = "Set DATABASE_URL=postgres://user@host:port/db to a \
    reachable server, or install PostgreSQL server binaries (Debian/Ubuntu: \
    `apt-get install postgresql`; they provide initdb and pg_ctl)";

/// The PostgreSQL server the tests use.
///
/// ```no_run
/// let server = gino_testkit::Server::get();
/// println!("admin database: {}", server.admin_url());
/// println!("another database: {}", server.url_for("my_db"));
/// ```
pub struct Server {
    template: UrlTemplate,
    admin_url: String,
    /// The throwaway cluster, when there is one; kept for the process.
    cluster: Option<Cluster>,
}

impl Server {
    /// The process-wide server (`DATABASE_URL` or a throwaway cluster),
    /// started on first use and shared by all tests of the process.
    ///
    /// Panics with a message saying how to provide a server when there is
    /// none. Blocks while a throwaway cluster starts (about a second).
    ///
    /// ```no_run
    /// let server = gino_testkit::Server::get();
    /// assert!(server.admin_url().starts_with("postgres://"));
    /// ```
    pub fn get() -> &'static Server {
        // The outcome is kept even when it is an error, so that every test
        // fails with the same message instead of retrying the start.
        static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();
        match SERVER.get_or_init(Server::find_or_start) {
            Ok(server) => server,
            Err(message) => panic!("{message}"),
        }
    }

    /// URL of the admin database (for example
    /// `postgres://postgres@127.0.0.1:5432/postgres`): `DATABASE_URL`'s
    /// database, or `postgres` on a throwaway cluster.
    ///
    /// ```no_run
    /// let url = gino_testkit::Server::get().admin_url();
    /// # let _ = url;
    /// ```
    pub fn admin_url(&self) -> &str {
        &self.admin_url
    }

    /// The same server's URL for another database name. Keeps user,
    /// password, host, port and any query string of `DATABASE_URL`.
    ///
    /// ```no_run
    /// let url = gino_testkit::Server::get().url_for("reports");
    /// assert!(url.contains("/reports"));
    /// ```
    pub fn url_for(&self, database: &str) -> String {
        self.template.for_database(database)
    }

    /// `true` when this is a throwaway cluster started by the testkit,
    /// `false` when it is the server of `DATABASE_URL`.
    ///
    /// ```no_run
    /// if gino_testkit::Server::get().is_throwaway() {
    ///     println!("using a private cluster");
    /// }
    /// ```
    pub fn is_throwaway(&self) -> bool {
        self.cluster.is_some()
    }

    fn find_or_start() -> Result<Server, String> {
        let database_url_error = match env::var("DATABASE_URL") {
            Err(VarError::NotPresent) => None,
            Err(VarError::NotUnicode(_)) => Some("DATABASE_URL is not valid UTF-8".to_owned()),
            Ok(value) if value.trim().is_empty() => None,
            Ok(value) => match Server::reachable(value.trim()) {
                Ok(server) => return Ok(server),
                Err(e) => Some(e),
            },
        };
        let url_note = match &database_url_error {
            Some(e) => {
                // Written past the test harness' output capture: silently
                // ignoring a configured server would be surprising.
                let _ = writeln!(
                    std::io::stderr(),
                    "gino-testkit: DATABASE_URL is set but unusable ({e}); \
                     starting a throwaway PostgreSQL cluster instead"
                );
                format!("\nDATABASE_URL is set, but connecting to it failed: {e}")
            }
            None => String::new(),
        };
        match cluster::start() {
            Ok(cluster) => {
                let template = UrlTemplate::tcp("postgres", "127.0.0.1", cluster.port());
                Ok(Server {
                    admin_url: template.for_database("postgres"),
                    template,
                    cluster: Some(cluster),
                })
            }
            Err(StartError::NoBinaries) => Err(format!(
                "gino-testkit: no PostgreSQL server found. {HOW_TO_PROVIDE_A_SERVER}.{url_note}"
            )),
            Err(StartError::Failed(e)) => Err(format!(
                "gino-testkit: could not start a throwaway PostgreSQL cluster: {e}\n\
                 {HOW_TO_PROVIDE_A_SERVER}.{url_note}"
            )),
        }
    }

    /// The server of `database_url`, if it answers `SELECT 1`.
    fn reachable(database_url: &str) -> Result<Server, String> {
        let (template, admin_database) = UrlTemplate::from_database_url(database_url)?;
        let server = Server {
            admin_url: template.for_database(&admin_database),
            template,
            cluster: None,
        };
        // Probed through the rebuilt URL, as that is what the tests will use.
        // Server::get is sync and may run inside a test's runtime, hence a
        // runtime of its own on another thread.
        block_on_own_thread(async {
            let client = connect(&server.admin_url).await?;
            client
                .simple_query("SELECT 1")
                .await
                .map_err(|e| describe(&e))?;
            Ok(())
        })?;
        Ok(server)
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("admin_url", &url::redact(&self.admin_url))
            .field("throwaway", &self.is_throwaway())
            .finish()
    }
}

/// A database created for one test and dropped when this guard is dropped.
///
/// Dropping uses `DROP DATABASE ... WITH (FORCE)`, so connections the test
/// left open do not keep the database alive. It works inside any tokio
/// runtime and outside of one.
///
/// ```no_run
/// # async fn example() {
/// let db = gino_testkit::TestDatabase::create().await;
/// println!("{} at {}", db.name(), db.url());
/// drop(db); // the database is gone now
/// # }
/// ```
pub struct TestDatabase {
    server: &'static Server,
    name: String,
    url: String,
}

impl TestDatabase {
    /// Creates a fresh, empty database with a unique name on
    /// [`Server::get`]'s server.
    ///
    /// Panics with a clear message when there is no server or the database
    /// cannot be created. Must be called inside a tokio runtime.
    ///
    /// ```no_run
    /// # async fn example() {
    /// let db = gino_testkit::TestDatabase::create().await;
    /// # let _ = db;
    /// # }
    /// ```
    pub async fn create() -> TestDatabase {
        let server = Server::get();
        let name = unique_name();
        if let Err(e) = create_database(server.admin_url(), &name).await {
            panic!(
                "gino-testkit: could not create test database {name} on {}: {e}",
                url::redact(server.admin_url())
            );
        }
        TestDatabase {
            url: server.url_for(&name),
            name,
            server,
        }
    }

    /// `postgres://` URL of the new database.
    ///
    /// ```no_run
    /// # async fn example() {
    /// let db = gino_testkit::TestDatabase::create().await;
    /// let (client, connection) =
    ///     tokio_postgres::connect(db.url(), tokio_postgres::NoTls).await.unwrap();
    /// # let _ = (client, connection);
    /// # }
    /// ```
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Name of the new database, `gino_test_<pid>_<counter>_<suffix>`.
    ///
    /// ```no_run
    /// # async fn example() {
    /// let db = gino_testkit::TestDatabase::create().await;
    /// assert!(db.name().starts_with("gino_test_"));
    /// # }
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Debug for TestDatabase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestDatabase")
            .field("name", &self.name)
            .field("url", &url::redact(&self.url))
            .finish()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop cannot await, and blocking on the caller's runtime would
        // panic (or deadlock a current-thread runtime), so the drop runs on
        // a thread with a runtime of its own.
        let result = block_on_own_thread(drop_database(self.server.admin_url(), &self.name));
        if let Err(e) = result {
            // Not eprintln!: a panic here would abort a test that is
            // already unwinding. Leaked databases should be seen, so this
            // also bypasses the harness' output capture.
            let _ = writeln!(
                std::io::stderr(),
                "gino-testkit: warning: could not drop test database {}: {e}",
                self.name
            );
        }
    }
}

async fn create_database(admin_url: &str, name: &str) -> Result<(), String> {
    let client = connect(admin_url).await?;
    let sql = format!("CREATE DATABASE {}", quote_ident(name));
    let mut retries = 0;
    loop {
        match client.batch_execute(&sql).await {
            Ok(()) => return Ok(()),
            // Any session connected to template1 (someone's psql, another
            // tool) makes CREATE DATABASE fail until it disconnects.
            Err(e) if e.code() == Some(&SqlState::OBJECT_IN_USE) && retries < 20 => {
                retries += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(describe(&e)),
        }
    }
}

async fn drop_database(admin_url: &str, name: &str) -> Result<(), String> {
    let client = connect(admin_url).await?;
    let ident = quote_ident(name);
    match client
        .batch_execute(&format!("DROP DATABASE IF EXISTS {ident} WITH (FORCE)"))
        .await
    {
        Ok(()) => Ok(()),
        // WITH (FORCE) needs PostgreSQL 13; older servers reject the syntax.
        Err(e) if e.code() == Some(&SqlState::SYNTAX_ERROR) => {
            client
                .execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE datname = $1 AND pid <> pg_backend_pid()",
                    &[&name],
                )
                .await
                .map_err(|e| describe(&e))?;
            client
                .batch_execute(&format!("DROP DATABASE IF EXISTS {ident}"))
                .await
                .map_err(|e| describe(&e))
        }
        Err(e) => Err(describe(&e)),
    }
}

/// Connects without TLS and drives the connection on the current runtime.
async fn connect(url: &str) -> Result<Client, String> {
    let mut config: Config = url
        .parse()
        .map_err(|e| format!("invalid connection URL: {}", describe(&e)))?;
    config.connect_timeout(CONNECT_TIMEOUT);
    // connect_timeout covers the TCP connect only; a server that accepts
    // but never answers the startup would otherwise hang the test run.
    let (client, connection) = tokio::time::timeout(CONNECT_TIMEOUT * 2, config.connect(NoTls))
        .await
        .map_err(|_| format!("timed out connecting to {}", crate::url::redact(url)))?
        .map_err(|e| describe(&e))?;
    // Connection errors resurface on the client's next query.
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// Runs `future` to completion on a new thread with its own current-thread
/// runtime, so it works whether or not the caller is inside a runtime.
fn block_on_own_thread<T: Send>(
    future: impl Future<Output = Result<T, String>> + Send,
) -> Result<T, String> {
    std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .name("gino-testkit".to_owned())
            .spawn_scoped(scope, || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| format!("could not build a tokio runtime: {e}"))?
                    .block_on(future)
            })
            .map_err(|e| format!("could not spawn a thread: {e}"))?;
        handle
            .join()
            .unwrap_or_else(|_| Err("the gino-testkit worker thread panicked".to_owned()))
    })
}

fn unique_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let counter = COUNTER.fetch_add(1, Ordering::Relaxed);
    // pid and counter are unique within a run; the time suffix keeps a
    // database left behind by a killed earlier run with the same pid from
    // colliding.
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "gino_test_{}_{counter}_{}",
        std::process::id(),
        base36(nanos % 36u128.pow(8))
    )
}

fn base36(mut n: u128) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut digits = Vec::new();
    loop {
        digits.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    digits.reverse();
    String::from_utf8(digits).unwrap_or_default()
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The error with its chain of causes; tokio-postgres' `Display` alone only
/// says e.g. "db error" or "error connecting to server".
fn describe(error: &(dyn StdError + 'static)) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}
