//! Running migrations at start-up: the role Alembic plays for GINO.
//!
//! Migrations are diesel's: one directory per migration under
//! `migrations/`, named `<version>_<name>` with an `up.sql` (and a
//! `down.sql`), as `diesel migration generate` makes them. [`embed_migrations!`]
//! compiles them into the binary, and [`Gino::run_migrations`] applies the
//! pending ones, recording them in diesel's `__diesel_schema_migrations`
//! table, so the diesel CLI and gino agree on what has run. Unlike diesel's
//! own harness this needs no blocking thread, so it also works on a
//! current-thread runtime.
//!
//! `create_all` suits tests and prototypes; migrations suit a schema that
//! evolves in production.
//!
//! [`embed_migrations!`]: crate::embed_migrations

// Layer: beside `model`; uses `api`, `connection` and `text`, and the query API of `executor`.

use std::time::Duration;

use crate::api::Gino;
use crate::connection::Connection;
use crate::engine::RenewOnDrop;
use crate::error::{Error, Result};

/// One embedded migration; made by [`embed_migrations!`](crate::embed_migrations).
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// diesel's version: the directory name up to the first `_`, dashes
    /// removed (`2024-01-31-120000_users` → `20240131120000`).
    pub version: &'static str,
    /// The directory name.
    pub name: &'static str,
    /// `up.sql`.
    pub up: &'static str,
    /// `down.sql`, if there is one.
    pub down: Option<&'static str>,
    /// `false` when `metadata.toml` says `run_in_transaction = false`
    /// (e.g. for `CREATE INDEX CONCURRENTLY`). Its `up.sql` still goes to
    /// the server in one message, which PostgreSQL runs as one implicit
    /// transaction when it holds several statements (as with diesel's
    /// CLI): give a statement that refuses any transaction a migration of
    /// its own.
    pub run_in_transaction: bool,
}

/// The migrations of a directory, in version order.
///
/// Two migrations of one version are refused at compile time: the version
/// is recorded once, so the second would never run.
///
/// ```compile_fail
/// // tests/migrations_duplicate holds 2024-01-01-000000_a and 20240101000000_b.
/// static MIGRATIONS: gino::migrate::EmbeddedMigrations = gino::embed_migrations!("tests/migrations_duplicate");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct EmbeddedMigrations {
    migrations: &'static [Migration],
}

impl EmbeddedMigrations {
    /// Wraps migrations, which run in the order given: sorted by version,
    /// as `embed_migrations!` produces them.
    ///
    /// ```
    /// use gino::migrate::{EmbeddedMigrations, Migration};
    /// static MIGRATIONS: EmbeddedMigrations = EmbeddedMigrations::new(&[Migration {
    ///     version: "20240131120000",
    ///     name: "2024-01-31-120000_users",
    ///     up: "CREATE TABLE users (id serial PRIMARY KEY)",
    ///     down: Some("DROP TABLE users"),
    ///     run_in_transaction: true,
    /// }]);
    /// assert_eq!(MIGRATIONS.migrations()[0].name, "2024-01-31-120000_users");
    /// ```
    pub const fn new(migrations: &'static [Migration]) -> Self {
        EmbeddedMigrations { migrations }
    }

    /// All migrations, oldest first.
    ///
    /// ```
    /// static MIGRATIONS: gino::migrate::EmbeddedMigrations = gino::embed_migrations!("tests/migrations");
    /// let versions: Vec<&str> = MIGRATIONS.migrations().iter().map(|m| m.version).collect();
    /// assert_eq!(versions, ["20240101000000", "20240201000000"]);
    /// ```
    pub fn migrations(&self) -> &'static [Migration] {
        self.migrations
    }
}

const SETUP: &str = "CREATE TABLE IF NOT EXISTS __diesel_schema_migrations (
    version VARCHAR(50) PRIMARY KEY NOT NULL,
    run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
)";

/// Serializes concurrent migrators (several instances starting at once):
/// an arbitrary, fixed advisory lock key.
const LOCK_KEY: i64 = 0x0067_696e_6f6d_6967; // "ginomig"

async fn batch(conn: &Connection, sql: &'static str) -> Result<()> {
    use diesel_async::SimpleAsyncConnection;
    conn.run(move |c| Box::pin(async move { c.batch_execute(sql).await }))
        .await
}

async fn advisory(conn: &Connection, function: &str) -> Result<()> {
    conn.status(diesel::sql_query(format!("SELECT {function}({LOCK_KEY})")))
        .await
        .map(|_| ())
}

/// The error of a failed migration: [`Error::Migration`] naming it, or,
/// when its own `COMMIT` or `ROLLBACK` ended the transaction it ran in, a
/// misuse said in the migration's terms (as [`left_open`]'s already is).
fn migration_error(migration: &Migration, error: Error) -> Error {
    if !crate::root::is_ended_by_sql(&error) {
        if matches!(error, Error::TransactionMisuse(_)) {
            return error;
        }
        return Error::Migration {
            name: migration.name.to_owned(),
            source: Box::new(error),
        };
    }
    Error::TransactionMisuse(format!(
        "migration {} ended its transaction with SQL of its own (a COMMIT or ROLLBACK in \
         up.sql), so what it ran is not recorded as applied: drop BEGIN/COMMIT from it (every \
         migration runs in a transaction of its own), or set run_in_transaction = false in its \
         metadata.toml ({error})",
        migration.name
    ))
}

/// The error of a migration outside a transaction that opened one and
/// left it open: recorded in it, it would be rolled back with its record
/// when its connection goes back, and reported applied.
fn left_open(migration: &Migration) -> Error {
    Error::TransactionMisuse(format!(
        "migration {} runs outside a transaction (run_in_transaction = false) but opened one \
         (a BEGIN in up.sql) and left it open, so what it ran would be rolled back: end it \
         with COMMIT, or drop BEGIN and run_in_transaction = false to have it run in a \
         transaction of its own",
        migration.name
    ))
}

impl Gino {
    /// Applies the migrations not applied yet, oldest first, each in its own
    /// transaction (unless it opts out), and returns the versions applied.
    /// A failing migration stops the run with its error; the ones before it
    /// stay applied.
    ///
    /// The engine's query `timeout` does not apply: a migration takes what
    /// it takes, and so does the wait for another instance migrating at
    /// the same time.
    ///
    /// ```
    /// # async fn demo(db: &gino::Gino) -> gino::Result<()> {
    /// static MIGRATIONS: gino::migrate::EmbeddedMigrations = gino::embed_migrations!("tests/migrations");
    /// let applied = db.run_migrations(&MIGRATIONS).await?;
    /// println!("applied {applied:?}");
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub async fn run_migrations(
        &self,
        migrations: &EmbeddedMigrations,
    ) -> Result<Vec<&'static str>> {
        let conn = self
            .engine()?
            .acquire()
            .reusable(false)
            .query_timeout(Duration::MAX)
            .await?;
        // Session-level advisory locks outlive the release to the pool: until
        // the lock is surely released, the connection is closed rather than
        // pooled, also if this future is dropped half-way.
        conn.root.hold_session_state(true).await?;
        // A migration that ran, or failed, may have dropped or created an
        // enum type; one may have committed before this future is dropped.
        let renew = RenewOnDrop::new(conn.engine());
        let result = self.migrate_on(&conn, migrations).await;
        if matches!(&result, Ok(applied) if applied.is_empty()) {
            renew.disarm();
        }
        let unlocked = advisory(&conn, "pg_advisory_unlock").await;
        if unlocked.is_ok() {
            conn.root.hold_session_state(false).await?;
        }
        conn.release().await?;
        let applied = result?;
        unlocked?;
        Ok(applied)
    }

    async fn migrate_on(
        &self,
        conn: &Connection,
        migrations: &EmbeddedMigrations,
    ) -> Result<Vec<&'static str>> {
        advisory(conn, "pg_advisory_lock").await?;
        batch(conn, SETUP).await?;
        #[derive(diesel::QueryableByName)]
        struct Applied {
            #[diesel(sql_type = diesel::sql_types::Text)]
            version: String,
        }
        let applied: Vec<Applied> = conn
            .all(diesel::sql_query(
                "SELECT version FROM __diesel_schema_migrations",
            ))
            .await?;
        let mut done = Vec::new();
        for migration in migrations.migrations() {
            if applied.iter().any(|a| a.version == migration.version) {
                continue;
            }
            let record = crate::text::text(
                "INSERT INTO __diesel_schema_migrations (version) VALUES (:version)",
            )
            .bind::<diesel::sql_types::Text, _>("version", migration.version);
            let run = async {
                batch(conn, migration.up).await?;
                // Outside a transaction, a script may have opened one of its
                // own: the record would go in it, and out with its rollback.
                if !migration.run_in_transaction && conn.root.server_in_transaction().await? {
                    return Err(left_open(migration));
                }
                conn.status(record).await
            };
            let ran = if migration.run_in_transaction {
                conn.transaction(run).await
            } else {
                run.await
            };
            ran.map_err(|e| migration_error(migration, e))?;
            tracing::info!(target: "gino", "applied migration {}", migration.name);
            done.push(migration.version);
        }
        Ok(done)
    }
}
