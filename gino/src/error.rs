//! The one error type of gino, which every layer returns.
//!
//! Uses: nothing of gino (the bottom layer).

use std::fmt;
use std::time::Duration;

/// A `Result` whose error is [`gino::Error`](Error).
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in gino.
///
/// Match on the variants to react to a particular failure; every message says
/// what to do about it.
///
/// ```
/// # async fn demo(db: &gino::Gino) -> gino::Result<()> {
/// use diesel::dsl::sql;
/// use diesel::sql_types::Integer;
/// use gino::prelude::*;
///
/// match db.one::<i32, _>(diesel::select(sql::<Integer>("1"))).await {
///     Ok(one) => assert_eq!(one, 1),
///     Err(gino::Error::Uninitialized) => eprintln!("call DB.set_bind(url) first"),
///     Err(gino::Error::Database(e)) => eprintln!("SQLSTATE {}: {}", e.code(), e.message()),
///     Err(e) => return Err(e),
/// }
/// # Ok(()) }
/// # gino_testkit::doc::run(demo);
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A URL, option or setting is malformed or unknown; the message names it.
    #[error("invalid configuration: {0}")]
    Configuration(String),

    /// The `Gino` has no engine bound and nothing else to run on.
    #[error(
        "Gino engine is not initialized: call `set_bind(url)` (or `with_bind`) on the Gino \
         before running queries, or run them on an engine or connection with `.bind(...)`"
    )]
    Uninitialized,

    /// No pooled connection became free in time.
    #[error(
        "timed out after {0:?} waiting for a connection from the pool: raise the pool's \
         `max_size` or the acquire timeout, or release connections sooner"
    )]
    PoolTimeout(Duration),

    /// The pool was closed with `Engine::close`.
    #[error("the engine is closed: create a new engine (or `set_bind` again) to run queries")]
    PoolClosed,

    /// A query (including any wait for a lazy connection) did not finish in
    /// time; it was cancelled on the server.
    #[error("query timed out after {0:?} and was cancelled on the server")]
    QueryTimeout(Duration),

    /// The row an instance-level operation was meant for does not exist.
    #[error("no such row: the row this operation refers to does not exist (any more)")]
    NoSuchRow,

    /// An instance-level operation needs to locate the row, but the model
    /// has no primary key.
    #[error(
        "model `{0}` has no primary key, so its rows cannot be located: declare one with \
         #[gino(primary_key)] or give the model a lookup with #[gino(lookup = path::to_fn)]"
    )]
    NoPrimaryKey(&'static str),

    /// A model value was built in memory (`User::create()...build()`)
    /// without a value for a field that has no default.
    #[error(
        "model `{model}` was built without a value for `{field}`, which has no default: set it \
         on the builder, or declare one with #[gino(default = ...)]"
    )]
    MissingValue {
        /// The model's name.
        model: &'static str,
        /// The field left unset.
        field: &'static str,
    },

    /// A row of a bulk insert failed; nothing of the batch was saved.
    #[error("row {index} of the batch failed, so none was inserted: {source}")]
    BatchRow {
        /// The row's index in the rows given.
        index: usize,
        /// Why it failed, e.g. a constraint violation.
        source: Box<Error>,
    },

    /// A migration failed: it is not recorded as applied, and the
    /// migrations after it did not run. Run in a transaction (the
    /// default), nothing of it stays; run outside one
    /// (`run_in_transaction = false`), what its `up.sql` did before the
    /// failure stays. [`sqlstate`](Self::sqlstate),
    /// [`is_connection_lost`](Self::is_connection_lost) and
    /// [`is_retryable`](Self::is_retryable) answer for its cause.
    #[error("migration {name} failed: {source}")]
    Migration {
        /// The migration's directory name, e.g. `2024-01-01-000000_create_users`.
        name: String,
        /// Why, e.g. the database's error for a statement of its `up.sql`.
        source: Box<Error>,
    },

    /// A tenant's database does not exist (or the tenant registry's
    /// locator refused the key): web integrations answer `404 Not Found`.
    /// Nothing is cached, so a database created later is found.
    #[error("unknown tenant `{0}`: no database exists for it")]
    UnknownTenant(String),

    /// A connection of one tenant was used inside another tenant's scope
    /// (carried out of its request into a spawned task or a stored handle);
    /// the statement was not sent.
    #[error(
        "a connection of tenant `{connection}` was used inside the scope of tenant `{scope}`: \
         connections do not cross tenants; run the work in the tenant's own scope \
         (Tenants::run) or let the scope's connection be found implicitly"
    )]
    TenantMismatch {
        /// The tenant the connection belongs to.
        connection: String,
        /// The tenant whose scope it was used in.
        scope: String,
    },

    /// A row that was asked for does not exist: what web integrations turn
    /// into `404 Not Found` (`User::get(id).or_not_found()`).
    #[error("not found: no row matches")]
    NotFound,

    /// `one()` found no row.
    #[error(
        "the query returned no row, but exactly one was expected: use `first()` or \
         `one_or_none()` when no row is acceptable"
    )]
    NoResultFound,

    /// `one()` or `one_or_none()` found more than one row.
    #[error(
        "the query returned more than one row, but at most one was expected: add a \
         filter or a limit, or use `first()` or `all()`"
    )]
    MultipleResultsFound,

    /// PostgreSQL reported an error; see [`DatabaseError`] for its SQLSTATE.
    #[error("{0}")]
    Database(Box<DatabaseError>),

    /// The server could not be reached or the connection broke.
    #[error("connection error: {0}")]
    Connection(String),

    /// The connection was lost before any byte of the statement reached
    /// the server: the statement did not run, so running it again (on
    /// another connection) is safe even for work that is not idempotent.
    /// It holds the underlying connection error (its SQLSTATE too).
    ///
    /// A lazy connection (a web request's, say) rarely gets this between
    /// transactions: a statement whose raw connection the server has left
    /// goes to a fresh one instead.
    #[error(
        "connection lost before the statement was sent (it did not run; running it again is safe): {0}"
    )]
    NotSent(#[source] Box<Error>),

    /// TLS could not be established: the server refused it where it is
    /// required, or its certificate failed a check; the message says which,
    /// and what to set.
    #[error("TLS error: {0}")]
    Tls(String),

    /// A transaction or connection was used in a way its mode does not allow.
    #[error("illegal transaction use: {0}")]
    TransactionMisuse(String),

    /// `COMMIT` found the transaction failed by an earlier error and rolled
    /// it back instead: nothing of it was saved. A nested transaction (a
    /// savepoint) in that state is rolled back to its savepoint the same way.
    #[error(
        "the transaction was rolled back instead of committed, because a statement in it \
         failed earlier: nothing was saved; handle that statement's error (or use a nested \
         transaction around it) and retry"
    )]
    TransactionAborted,

    /// A call on a [`Cursor`](crate::Cursor) (`next`, `many`, `forward`)
    /// was dropped (or failed) while its `FETCH` or `MOVE` ran: the server
    /// may have moved the cursor on, so the rows that call read are gone,
    /// and reading on would silently skip them. The cursor refuses to read
    /// from the server again (rows it holds in memory still come); open a
    /// new one.
    #[error(
        "a call on this cursor was dropped while it read: the rows it read are lost and where \
         the cursor stands is unknown; open a new cursor (with OFFSET, or a WHERE on the last \
         key read) to go on"
    )]
    CursorInterrupted,

    /// The connection was released and cannot run queries any more.
    #[error(
        "this connection was released: acquire a new one (a non-permanent \
         `release(false)` keeps a connection usable)"
    )]
    ConnectionReleased,

    /// Control flow of `Transaction::raise_commit` / `raise_rollback`:
    /// propagate it with `?`; the transaction it names catches it.
    #[error(
        "transaction ended early by raise_commit/raise_rollback; propagate this error with `?` \
         out of the transaction it belongs to"
    )]
    EarlyExit,

    /// An error of diesel's that is not from the database, e.g. a row that
    /// cannot be deserialized into the requested type.
    #[error("query error: {}", with_sources(.0))]
    Query(diesel::result::Error),
}

/// Whether a failure diesel-async reports as "unable to send" is the
/// driver refusing to encode the statement (too many parameters, a message
/// over 1 GB, a NUL in its text, binds that do not match its parameters):
/// nothing went out and the connection is sound, so it is not
/// a lost connection, and running it again fails again. tokio-postgres's
/// error kinds reach gino only as diesel-async's text of them.
fn refused_by_the_client(message: &str) -> bool {
    message.starts_with("error encoding message to server")
        || message.starts_with("error serializing parameter")
        || (message.starts_with("expected ") && message.contains(" parameters but got "))
}

/// Details of an error reported by PostgreSQL.
///
/// ```
/// # async fn demo(engine: &gino::Engine) -> gino::Result<()> {
/// engine.status(gino::text("CREATE TABLE tags (name text PRIMARY KEY)")).await?;
/// engine.status(gino::text("INSERT INTO tags VALUES ('rust')")).await?;
/// let err = engine.status(gino::text("INSERT INTO tags VALUES ('rust')")).await.unwrap_err();
/// if let gino::Error::Database(e) = err {
///     if e.code() == "23505" {
///         println!("duplicate value violates {:?}", e.constraint());
///     }
/// #   assert_eq!(e.constraint(), Some("tags_pkey"));
/// # } else { panic!("not a database error") }
/// # Ok(()) }
/// # gino_testkit::doc::run(demo);
/// ```
#[derive(Debug, Clone)]
pub struct DatabaseError {
    pub(crate) code: String,
    pub(crate) message: String,
    pub(crate) detail: Option<String>,
    pub(crate) hint: Option<String>,
    pub(crate) table: Option<String>,
    pub(crate) column: Option<String>,
    pub(crate) constraint: Option<String>,
}

impl DatabaseError {
    /// The five-character SQLSTATE, e.g. `"23505"` for a unique violation.
    ///
    /// ```
    /// # async fn demo(engine: &gino::Engine) -> gino::Result<()> {
    /// let failed = engine.status(gino::text("SELECT 1 / 0")).await;
    /// let Err(gino::Error::Database(e)) = failed else { panic!("expected a database error") };
    /// assert_eq!(e.code(), "22012"); // division_by_zero
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn code(&self) -> &str {
        &self.code
    }

    /// PostgreSQL's primary message.
    ///
    /// ```
    /// # async fn demo(engine: &gino::Engine) -> gino::Result<()> {
    /// let failed = engine.status(gino::text("SELECT 1 / 0")).await;
    /// let Err(gino::Error::Database(e)) = failed else { panic!("expected a database error") };
    /// assert_eq!(e.message(), "division by zero");
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn message(&self) -> &str {
        &self.message
    }

    /// PostgreSQL's DETAIL, when it sent one.
    ///
    /// ```
    /// # async fn demo(engine: &gino::Engine) -> gino::Result<()> {
    /// engine.status(gino::text("CREATE TABLE users (email text UNIQUE)")).await?;
    /// let add_ann = || gino::text("INSERT INTO users VALUES ('ann@example.com')");
    /// engine.status(add_ann()).await?;
    /// let failed = engine.status(add_ann()).await;
    /// let Err(gino::Error::Database(e)) = failed else { panic!("expected a unique violation") };
    /// assert_eq!(e.detail(), Some("Key (email)=(ann@example.com) already exists."));
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }

    /// PostgreSQL's HINT, when it sent one.
    ///
    /// ```
    /// # async fn demo(engine: &gino::Engine) -> gino::Result<()> {
    /// let failed = engine.status(gino::text("SELECT lower(42)")).await;
    /// let Err(gino::Error::Database(e)) = failed else { panic!("expected a database error") };
    /// assert_eq!(e.code(), "42883"); // undefined_function: lower(integer)
    /// assert!(e.hint().unwrap().contains("explicit type casts"));
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn hint(&self) -> Option<&str> {
        self.hint.as_deref()
    }

    /// The table the error concerns, when known.
    ///
    /// ```
    /// # async fn demo(engine: &gino::Engine) -> gino::Result<()> {
    /// engine.status(gino::text("CREATE TABLE users (id int, name text NOT NULL)")).await?;
    /// let failed = engine.status(gino::text("INSERT INTO users (id) VALUES (1)")).await;
    /// let Err(gino::Error::Database(e)) = failed else { panic!("expected a not-null violation") };
    /// assert_eq!(e.table(), Some("users"));
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn table(&self) -> Option<&str> {
        self.table.as_deref()
    }

    /// The column the error concerns, when known.
    ///
    /// ```
    /// # async fn demo(engine: &gino::Engine) -> gino::Result<()> {
    /// engine.status(gino::text("CREATE TABLE users (id int, name text NOT NULL)")).await?;
    /// let failed = engine.status(gino::text("INSERT INTO users (id) VALUES (1)")).await;
    /// let Err(gino::Error::Database(e)) = failed else { panic!("expected a not-null violation") };
    /// assert_eq!(e.column(), Some("name"));
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn column(&self) -> Option<&str> {
        self.column.as_deref()
    }

    /// The violated constraint, for constraint violations.
    ///
    /// ```
    /// # async fn demo(engine: &gino::Engine) -> gino::Result<()> {
    /// engine.status(gino::text("CREATE TABLE users (email text UNIQUE)")).await?;
    /// let add_ann = || gino::text("INSERT INTO users VALUES ('ann@example.com')");
    /// engine.status(add_ann()).await?;
    /// let failed = engine.status(add_ann()).await;
    /// let Err(gino::Error::Database(e)) = failed else { panic!("expected a unique violation") };
    /// assert_eq!(e.constraint(), Some("users_email_key"));
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn constraint(&self) -> Option<&str> {
        self.constraint.as_deref()
    }

    /// `true` for `23505 unique_violation`.
    ///
    /// ```
    /// # async fn demo(engine: &gino::Engine) -> gino::Result<()> {
    /// engine.status(gino::text("CREATE TABLE users (email text UNIQUE)")).await?;
    /// let add_ann = || gino::text("INSERT INTO users VALUES ('ann@example.com')");
    /// engine.status(add_ann()).await?;
    /// let failed = engine.status(add_ann()).await;
    /// let Err(gino::Error::Database(e)) = failed else { panic!("expected a unique violation") };
    /// assert!(e.is_unique_violation());
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn is_unique_violation(&self) -> bool {
        self.code == "23505"
    }

    /// `true` for `23503 foreign_key_violation`.
    ///
    /// ```
    /// # async fn demo(engine: &gino::Engine) -> gino::Result<()> {
    /// engine.status(gino::text("CREATE TABLE users (id int PRIMARY KEY)")).await?;
    /// engine.status(gino::text("CREATE TABLE orders (user_id int REFERENCES users)")).await?;
    /// let failed = engine.status(gino::text("INSERT INTO orders VALUES (7)")).await;
    /// let Err(gino::Error::Database(e)) = failed else { panic!("expected a foreign key violation") };
    /// assert!(e.is_foreign_key_violation());
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn is_foreign_key_violation(&self) -> bool {
        self.code == "23503"
    }

    /// `true` for `23502 not_null_violation`.
    ///
    /// ```
    /// # async fn demo(engine: &gino::Engine) -> gino::Result<()> {
    /// engine.status(gino::text("CREATE TABLE users (name text NOT NULL)")).await?;
    /// let failed = engine.status(gino::text("INSERT INTO users VALUES (NULL)")).await;
    /// let Err(gino::Error::Database(e)) = failed else { panic!("expected a not-null violation") };
    /// assert!(e.is_not_null_violation());
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn is_not_null_violation(&self) -> bool {
        self.code == "23502"
    }

    /// `true` for `23514 check_violation`.
    ///
    /// ```
    /// # async fn demo(engine: &gino::Engine) -> gino::Result<()> {
    /// engine.status(gino::text("CREATE TABLE accounts (balance int CHECK (balance >= 0))")).await?;
    /// let failed = engine.status(gino::text("INSERT INTO accounts VALUES (-1)")).await;
    /// let Err(gino::Error::Database(e)) = failed else { panic!("expected a check violation") };
    /// assert!(e.is_check_violation());
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn is_check_violation(&self) -> bool {
        self.code == "23514"
    }

    /// `true` for `40001 serialization_failure` and `40P01 deadlock_detected`:
    /// the transaction may succeed when retried.
    ///
    /// ```
    /// # async fn demo(engine: &gino::Engine) -> gino::Result<()> {
    /// use gino::{IsolationLevel, text};
    /// engine.status(text("CREATE TABLE stock (n int)")).await?;
    /// engine.status(text("INSERT INTO stock VALUES (1)")).await?;
    /// let (a, b) = (engine.acquire().await?, engine.acquire().await?);
    /// let tx = a.begin().isolation_level(IsolationLevel::RepeatableRead).await?;
    /// a.status(text("SELECT n FROM stock")).await?; // takes the transaction's snapshot
    /// b.status(text("UPDATE stock SET n = 2")).await?; // commits meanwhile
    /// let failed = a.status(text("UPDATE stock SET n = 3")).await;
    /// let Err(gino::Error::Database(e)) = failed else { panic!("expected a serialization failure") };
    /// assert!(e.is_retryable()); // 40001: run the whole transaction again
    /// tx.rollback().await?;
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn is_retryable(&self) -> bool {
        self.code == "40001" || self.code == "40P01"
    }
}

impl fmt::Display for DatabaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "database error {}: {}", self.code, self.message)?;
        if let Some(detail) = &self.detail {
            write!(f, " (detail: {detail})")?;
        }
        if let Some(hint) = &self.hint {
            write!(f, " (hint: {hint})")?;
        }
        Ok(())
    }
}

impl std::error::Error for DatabaseError {}

impl DatabaseError {
    /// An error of gino's own with a SQLSTATE, for what the server would
    /// refuse the same way: `code` and `message`, nothing else.
    pub(crate) fn refused(code: &str, message: &str) -> Self {
        DatabaseError {
            code: code.to_owned(),
            message: message.to_owned(),
            detail: None,
            hint: None,
            table: None,
            column: None,
            constraint: None,
        }
    }

    pub(crate) fn from_postgres(db: &tokio_postgres::error::DbError) -> Self {
        DatabaseError {
            code: db.code().code().to_owned(),
            message: db.message().to_owned(),
            detail: db.detail().map(str::to_owned),
            hint: db.hint().map(str::to_owned),
            table: db.table().map(str::to_owned),
            column: db.column().map(str::to_owned),
            constraint: db.constraint().map(str::to_owned),
        }
    }
}

impl Error {
    /// The SQLSTATE when this is a database error, or a batch's row or a
    /// migration that failed with one ([`Error::BatchRow`],
    /// [`Error::Migration`]).
    ///
    /// ```
    /// # async fn demo(engine: &gino::Engine) {
    /// let err = engine.status(gino::text("SELECT 1/0")).await.unwrap_err();
    /// if err.sqlstate() == Some("22012") {
    ///     eprintln!("division by zero");
    /// }
    /// # assert_eq!(err.sqlstate(), Some("22012"));
    /// assert_eq!(gino::Error::NotFound.sqlstate(), None);
    /// # }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            Error::Database(e) => Some(e.code()),
            Error::NotSent(e) => e.sqlstate(),
            Error::BatchRow { source, .. } | Error::Migration { source, .. } => source.sqlstate(),
            _ => None,
        }
    }

    /// Whether the connection was lost, or the server cannot take it (it is
    /// shutting down, starting, or unreachable): a broken socket
    /// ([`Error::Connection`], [`Error::NotSent`]) and SQLSTATEs `08xxx` (connection
    /// exception), `57P01` (admin shutdown, e.g. a terminated backend),
    /// `57P02` (crash shutdown) and `57P03` (cannot connect now) alike. The
    /// original detail stays in the error.
    ///
    /// ```
    /// # async fn demo(engine: &gino::Engine) {
    /// // The server ends the session: a lost connection, not a failed query.
    /// let sql = gino::text("SELECT pg_terminate_backend(pg_backend_pid())");
    /// let err = engine.status(sql).await.unwrap_err();
    /// if err.is_connection_lost() {
    ///     eprintln!("database unavailable: {err}");
    /// }
    /// # assert!(err.is_connection_lost(), "{err:?}");
    /// let err = engine.status(gino::text("SELECT 1/0")).await.unwrap_err();
    /// assert!(!err.is_connection_lost());
    /// # }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn is_connection_lost(&self) -> bool {
        match self {
            Error::Migration { source, .. } => source.is_connection_lost(),
            Error::Connection(_) | Error::NotSent(_) => true,
            Error::Database(e) => {
                matches!(e.code(), "57P01" | "57P02" | "57P03") || e.code().starts_with("08")
            }
            _ => false,
        }
    }

    /// Whether the same work may succeed if tried again: a lost connection
    /// or a server that is not ready ([`is_connection_lost`](Self::is_connection_lost)),
    /// no pooled connection in time, a serialization failure or a deadlock.
    /// Retry whole transactions, and only idempotent work after a lost
    /// connection: a statement may have run before the connection broke
    /// (except after [`Error::NotSent`]: that one provably did not).
    ///
    /// ```
    /// # async fn demo(db: &gino::Gino) -> gino::Result<()> {
    /// let mut tries = 0;
    /// loop {
    ///     match db.status(diesel::sql_query("SELECT 1")).await {
    ///         Err(e) if e.is_retryable() && tries < 3 => tries += 1,
    ///         other => break other.map(drop),
    ///     }
    /// }
    /// # }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Migration { source, .. } => source.is_retryable(),
            Error::PoolTimeout(_) => true,
            Error::Database(e) if e.is_retryable() => true,
            other => other.is_connection_lost(),
        }
    }

    /// The same error again, for a failure several callers share (a tenant
    /// creation they all waited for): each gets its own, of the same kind,
    /// so that each is answered alike. diesel's errors are not `Clone`; one
    /// comes again as its message.
    pub(crate) fn replay(&self) -> Error {
        use diesel::result::Error as D;
        match self {
            Error::Configuration(m) => Error::Configuration(m.clone()),
            Error::Uninitialized => Error::Uninitialized,
            Error::PoolTimeout(t) => Error::PoolTimeout(*t),
            Error::PoolClosed => Error::PoolClosed,
            Error::QueryTimeout(t) => Error::QueryTimeout(*t),
            Error::NoSuchRow => Error::NoSuchRow,
            Error::NoPrimaryKey(model) => Error::NoPrimaryKey(model),
            Error::MissingValue { model, field } => Error::MissingValue { model, field },
            Error::BatchRow { index, source } => Error::BatchRow {
                index: *index,
                source: Box::new(source.replay()),
            },
            Error::Migration { name, source } => Error::Migration {
                name: name.clone(),
                source: Box::new(source.replay()),
            },
            Error::UnknownTenant(key) => Error::UnknownTenant(key.clone()),
            Error::TenantMismatch { connection, scope } => Error::TenantMismatch {
                connection: connection.clone(),
                scope: scope.clone(),
            },
            Error::NotFound => Error::NotFound,
            Error::NoResultFound => Error::NoResultFound,
            Error::MultipleResultsFound => Error::MultipleResultsFound,
            Error::Database(e) => Error::Database(e.clone()),
            Error::Connection(m) => Error::Connection(m.clone()),
            Error::NotSent(e) => Error::NotSent(Box::new(e.replay())),
            Error::Tls(m) => Error::Tls(m.clone()),
            Error::TransactionMisuse(m) => Error::TransactionMisuse(m.clone()),
            Error::TransactionAborted => Error::TransactionAborted,
            Error::CursorInterrupted => Error::CursorInterrupted,
            Error::ConnectionReleased => Error::ConnectionReleased,
            Error::EarlyExit => Error::EarlyExit,
            Error::Query(e) => Error::Query(D::QueryBuilderError(with_sources(e).into())),
        }
    }

    /// Builds the error for a diesel failure; `code` is the SQLSTATE the
    /// connection observed on the wire for that statement, since diesel's
    /// error type does not carry it.
    pub(crate) fn from_diesel(err: diesel::result::Error, code: Option<String>) -> Self {
        use diesel::result::{DatabaseErrorKind, Error as D};
        match err {
            D::DatabaseError(DatabaseErrorKind::UnableToSendCommand, info)
                if code.is_none() && refused_by_the_client(info.message()) =>
            {
                let message = info.message();
                // tokio-postgres's cause does not reach diesel-async's text.
                let advice = if message.starts_with("error encoding") {
                    ": the statement could not be sent: more than 65535 parameters, a message \
                     over 1 GB, or a NUL byte in its SQL; split a large statement (insert_many \
                     splits its rows into statements that fit)"
                } else {
                    ""
                };
                Error::Query(D::SerializationError(format!("{message}{advice}").into()))
            }
            D::DatabaseError(
                DatabaseErrorKind::UnableToSendCommand | DatabaseErrorKind::ClosedConnection,
                info,
            ) if code.is_none() => Error::Connection(info.message().to_owned()),
            D::DatabaseError(kind, info) => Error::Database(Box::new(DatabaseError {
                code: code.unwrap_or_else(|| fallback_code(&kind).to_owned()),
                message: info.message().to_owned(),
                detail: info.details().map(str::to_owned),
                hint: info.hint().map(str::to_owned),
                table: info.table_name().map(str::to_owned),
                column: info.column_name().map(str::to_owned),
                constraint: info.constraint_name().map(str::to_owned),
            })),
            other => Error::Query(other),
        }
    }

    /// Builds the error for a failure of tokio-postgres (connecting, cancelling).
    pub(crate) fn from_postgres(err: tokio_postgres::Error) -> Self {
        match err.as_db_error() {
            Some(db) => Error::Database(Box::new(DatabaseError::from_postgres(db))),
            // tokio-postgres keeps the reason in the error's source.
            None => Error::Connection(with_sources(&err)),
        }
    }
}

/// An error's message followed by those of its sources: diesel's
/// deserialization errors name only the field, and the reason is in the
/// source.
fn with_sources(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let message = e.to_string();
        if !text.contains(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        source = e.source();
    }
    text
}

/// SQLSTATE by diesel's classification, used only if the wire observer saw no
/// ErrorResponse (which a server-side error always sends).
fn fallback_code(kind: &diesel::result::DatabaseErrorKind) -> &'static str {
    use diesel::result::DatabaseErrorKind as K;
    match kind {
        K::UniqueViolation => "23505",
        K::ForeignKeyViolation => "23503",
        K::NotNullViolation => "23502",
        K::CheckViolation => "23514",
        K::RestrictViolation => "23001",
        K::ExclusionViolation => "23P01",
        K::SerializationFailure => "40001",
        K::ReadOnlyTransaction => "25006",
        _ => "XX000",
    }
}
