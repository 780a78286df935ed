//! Running diesel queries: GINO's `GinoExecutor` (`.gino()` on any diesel
//! query), the query API of `Gino`, `Engine` and `Connection` (`all`,
//! `first`, `one`, `one_or_none`, `scalar`, `status`, `iterate`, `prepare`,
//! `compile`), and what a run returns (`Status`, `Compiled`).
//!
//! Uses: `bind` (where a query runs), `statement` (how one runs), `cursor`,
//! and the types it adds the query API to: `api`, `engine`, `connection`.

use std::fmt;
use std::time::Duration;

use diesel::pg::Pg;
use diesel::query_builder::{AsQuery, QueryFragment, QueryId};
use diesel_async::AsyncPgConnection;
use diesel_async::methods::ExecuteDsl;

use crate::api::Gino;
use crate::bind::{Bind, SqlKind, Target};
use crate::connection::Connection;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::statement::{Execute, Load, Loadable, Tagged, Writes};

/// PostgreSQL's command tag of a statement, e.g. `UPDATE 8`, as returned by
/// [`Executor::status`].
///
/// ```
/// # async fn demo(db: &gino::Gino) -> gino::Result<()> {
/// let status = db.status(diesel::sql_query("CREATE TEMP TABLE t (x int)")).await?;
/// assert_eq!(status, "CREATE TABLE");
/// # Ok(()) }
/// # gino_testkit::doc::run(demo);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    tag: String,
    rows: u64,
}

impl Status {
    fn from_wire(tag: Option<String>, rows: usize) -> Self {
        Status {
            // None only for an empty statement, which PostgreSQL answers
            // without a tag: an empty one, as asyncpg gives GINO.
            tag: tag.unwrap_or_default(),
            rows: rows as u64,
        }
    }

    /// The command tag as PostgreSQL sent it.
    ///
    /// ```
    /// # async fn demo(conn: &gino::Connection) -> gino::Result<()> {
    /// conn.status(diesel::sql_query("CREATE TEMP TABLE t (x int)")).await?;
    /// let status = conn.status(diesel::sql_query("INSERT INTO t VALUES (1), (2)")).await?;
    /// assert_eq!(status.tag(), "INSERT 0 2");
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// With the rows the statement affected as its tag counts them (an
    /// `UPDATE` without `RETURNING` returns none), or else the `loaded`.
    fn from_tag(tag: Option<String>, loaded: usize) -> Self {
        let counted = tag
            .as_deref()
            .and_then(|tag| tag.rsplit(' ').next()?.parse::<usize>().ok());
        Status::from_wire(tag, counted.unwrap_or(loaded))
    }

    /// Rows the statement affected or returned.
    ///
    /// ```
    /// # async fn demo(engine: &gino::Engine) -> gino::Result<()> {
    /// let status = engine.status(diesel::sql_query("SELECT generate_series(1, 3)")).await?;
    /// assert_eq!(status.rows(), 3);
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn rows(&self) -> u64 {
        self.rows
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.tag)
    }
}

impl PartialEq<str> for Status {
    fn eq(&self, other: &str) -> bool {
        self.tag == other
    }
}

impl PartialEq<&str> for Status {
    fn eq(&self, other: &&str) -> bool {
        self.tag == *other
    }
}

/// A query compiled to SQL, without running it: [`Executor::compile`].
///
/// ```
/// use diesel::dsl::sql;
/// use diesel::sql_types::Integer;
/// use gino::prelude::*;
///
/// let q = diesel::select(sql::<Integer>("1 + ").bind::<Integer, _>(41));
/// let compiled = q.gino().compile();
/// assert_eq!(compiled.sql(), "SELECT 1 + $1");
/// assert_eq!(compiled.binds(), ["41"]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compiled {
    sql: String,
    binds: Vec<String>,
}

impl Compiled {
    /// Compiles `query`; the same as `query.gino().compile()`, for a query
    /// borrowed rather than owned.
    ///
    /// ```
    /// use diesel::dsl::sql;
    /// use diesel::sql_types::Integer;
    /// let q = diesel::select(sql::<Integer>("").bind::<Integer, _>(7));
    /// assert_eq!(gino::Compiled::of(&q).binds(), ["7"]);
    /// ```
    ///
    /// A query that cannot be built compiles to SQL saying why, rather
    /// than panicking, since compiling is what one does to look at it:
    ///
    /// ```
    /// let unbound = gino::text("SELECT :a");
    /// let compiled = gino::Compiled::of(&unbound);
    /// assert!(compiled.sql().starts_with("<cannot render query"), "{}", compiled.sql());
    /// assert!(compiled.binds().is_empty());
    /// ```
    pub fn of<Q: QueryFragment<Pg>>(query: &Q) -> Self {
        let debug = diesel::debug_query::<Pg, _>(query);
        // diesel renders bind values only through `Debug`; its pretty form
        // puts each top-level value on lines of its own, which is what is
        // split here.
        // A query that cannot be built (a `text()` parameter left unbound)
        // fails the formatting, which `format!` would turn into a panic;
        // its SQL says why, and it has no binds to show.
        let mut pretty = String::new();
        if std::fmt::Write::write_fmt(&mut pretty, format_args!("{debug:#?}")).is_err() {
            pretty.clear();
        }
        let mut binds: Vec<String> = Vec::new();
        let mut in_binds = false;
        for line in pretty.lines() {
            if line == "    binds: [" {
                in_binds = true;
            } else if in_binds && line.starts_with("    ]") {
                break;
            } else if in_binds {
                let body = &line[8.min(line.len())..];
                let starts_value = line.starts_with("        ")
                    && !body.starts_with(' ')
                    && !body.starts_with([')', ']', '}']);
                match binds.last_mut() {
                    Some(current) if !starts_value => {
                        current.push('\n');
                        current.push_str(body);
                    }
                    _ => binds.push(body.to_owned()),
                }
            }
        }
        for bind in &mut binds {
            if bind.ends_with(',') {
                bind.pop();
            }
        }
        Compiled {
            sql: crate::bind::render(query),
            binds,
        }
    }

    /// The SQL text, with `$1`-style placeholders.
    ///
    /// ```
    /// use diesel::sql_types::Integer;
    /// let q = gino::text("SELECT :a + :b, :a").bind::<Integer, _>("a", 1).bind::<Integer, _>("b", 2);
    /// assert_eq!(gino::Compiled::of(&q).sql(), "SELECT $1 + $2, $3");
    /// ```
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// The bind values, rendered with `Debug`, in placeholder order.
    ///
    /// ```
    /// use diesel::sql_types::{Integer, Text};
    /// let q = gino::text("SELECT :n, :s").bind::<Integer, _>("n", 7).bind::<Text, _>("s", "hi");
    /// assert_eq!(gino::Compiled::of(&q).binds(), ["7", "\"hi\""]);
    /// ```
    pub fn binds(&self) -> &[String] {
        &self.binds
    }
}

impl fmt::Display for Compiled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} -- binds: [{}]", self.sql, self.binds.join(", "))
    }
}

/// Adds `.gino()` to every diesel query: GINO's `query.gino` extension.
///
/// ```
/// # async fn demo() -> gino::Result<()> {
/// use diesel::dsl::sql;
/// use diesel::sql_types::Text;
/// use gino::prelude::*;
///
/// let greeting: String = diesel::select(sql::<Text>("'hello'")).gino().one().await?;
/// # Ok(()) }
/// # gino_testkit::doc::run(demo);
/// ```
pub trait GinoQuery: Sized {
    /// Wraps the query for execution through gino.
    fn gino(self) -> Executor<'static, Self>;
}

impl<Q: QueryFragment<Pg> + QueryId> GinoQuery for Q {
    fn gino(self) -> Executor<'static, Self> {
        Executor {
            query: self,
            bind: Bind::Default,
            timeout: None,
            route: Some(crate::bind::route::<Q>),
            kind: Some(crate::bind::sql_kind::<Q>),
            primary: false,
        }
    }
}

/// A query ready to run: returned by `.gino()` and used by every query API
/// of [`Gino`], [`Engine`] and [`Connection`].
///
/// Without [`bind`](Self::bind) it runs implicitly on the database its
/// table belongs to (a model declared with `db = X` owns its table; every
/// other query goes to the default `Gino`): on the task's contextual
/// connection of that database if there is one, else on its engine.
#[must_use = "a query does nothing until one of all/first/one/one_or_none/scalar/status is awaited"]
pub struct Executor<'a, Q> {
    query: Q,
    bind: Bind<'a>,
    timeout: Option<Duration>,
    /// Where an unbound query of a model's table runs; set by `.gino()`.
    route: Option<fn(&Q) -> Option<&'static Gino>>,
    /// What the query's SQL shows it does (a read may run on a read
    /// replica); set by `.gino()` and the query API.
    kind: Option<fn(&Q) -> SqlKind>,
    /// Sent to the primary by [`primary`](Self::primary).
    primary: bool,
}

impl<'a, Q> Executor<'a, Q> {
    pub(crate) fn new(query: Q, bind: Bind<'a>) -> Self {
        Executor {
            query,
            bind,
            timeout: None,
            route: None,
            kind: None,
            primary: false,
        }
    }

    /// An executor for `query` at `bind` whose SQL says whether it only
    /// reads (the query API of `Gino`, `Engine` and `Connection`).
    pub(crate) fn classified(query: Q, bind: Bind<'a>) -> Self
    where
        Q: QueryFragment<Pg> + QueryId,
    {
        Executor {
            kind: Some(crate::bind::sql_kind::<Q>),
            ..Executor::new(query, bind)
        }
    }

    /// Runs on the primary even if it only reads and the engine has read
    /// replicas (a read that must see the latest commit of another
    /// request, say); see [`Engine::routing`](crate::Engine::routing).
    ///
    /// ```
    /// # async fn demo() -> gino::Result<()> {
    /// use diesel::dsl::sql;
    /// use diesel::sql_types::Integer;
    /// use gino::prelude::*;
    /// let fresh: i32 = diesel::select(sql::<Integer>("1")).gino().primary().one().await?;
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn primary(mut self) -> Self {
        self.primary = true;
        self
    }

    /// Treats the query as a read that a replica may answer, whatever its
    /// SQL (a function call gino cannot tell from a write, say); it still
    /// runs on the primary inside a transaction, on a connection, or when
    /// no replica is in rotation.
    ///
    /// ```
    /// # async fn demo() -> gino::Result<()> {
    /// use diesel::dsl::sql;
    /// use diesel::sql_types::Integer;
    /// use gino::prelude::*;
    /// let n: i32 = diesel::select(sql::<Integer>("1")).gino().replica().one().await?;
    /// # let _ = n;
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn replica(mut self) -> Self {
        self.kind = Some(|_| SqlKind::Read);
        self.primary = false;
        self
    }

    /// What this query's SQL does, where that decides something (`place`
    /// runs on an engine with read replicas): a read sent to the primary
    /// with [`primary`](Self::primary) is one as a row lock is, the
    /// primary's and no write.
    fn sql_kind(&self, place: Bind<'_>) -> Option<SqlKind> {
        let kind = self.kind?;
        if !place.has_replicas() {
            return None;
        }
        Some(match kind(&self.query) {
            SqlKind::Read if self.primary => SqlKind::Lock,
            kind => kind,
        })
    }

    /// Where the query runs: its bind, or for an unbound query, the
    /// database of the table it names.
    /// The query's own timeout, else its connection's; `None` leaves it to
    /// the engine's.
    fn time_limit(&self) -> Option<Duration> {
        self.timeout.or_else(|| self.bind.query_timeout())
    }

    fn place(&self) -> Bind<'a> {
        match (self.bind, self.route) {
            (Bind::Default, Some(route)) => route(&self.query).map_or(Bind::Default, Bind::Db),
            (bind, _) => bind,
        }
    }

    /// The query itself (GINO's `executor.query`).
    ///
    /// ```
    /// use diesel::dsl::sql;
    /// use diesel::sql_types::Integer;
    /// use gino::prelude::*;
    /// let executor = diesel::select(sql::<Integer>("1")).gino();
    /// let query = executor.query(); // the diesel query, e.g. to build on it
    /// # let _ = query;
    /// ```
    pub fn query(&self) -> &Q {
        &self.query
    }

    /// The query, taken back out.
    ///
    /// ```
    /// use diesel::dsl::sql;
    /// use diesel::sql_types::Integer;
    /// use gino::prelude::*;
    /// let query = diesel::select(sql::<Integer>("1")).gino().into_query();
    /// # let _ = query;
    /// ```
    pub fn into_query(self) -> Q {
        self.query
    }

    /// Runs on `to` (an [`Engine`], a [`Connection`], a [`Transaction`](crate::Transaction) or
    /// a [`Gino`]) instead of implicitly.
    ///
    /// ```
    /// # async fn demo(engine: &gino::Engine) -> gino::Result<()> {
    /// use diesel::dsl::sql;
    /// use diesel::sql_types::Integer;
    /// use gino::prelude::*;
    /// // Not reusable: nothing runs on `conn` unless bound to it.
    /// let conn = engine.acquire().reusable(false).await?;
    /// conn.status(gino::text("CREATE TEMP TABLE t AS SELECT 3 AS n")).await?;
    /// let n: i32 = diesel::select(sql::<Integer>("n FROM t")).gino().bind(&conn).one().await?;
    /// assert_eq!(n, 3);
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn bind<'b>(self, to: impl Into<Bind<'b>>) -> Executor<'b, Q> {
        Executor {
            query: self.query,
            bind: to.into(),
            timeout: self.timeout,
            route: self.route,
            kind: self.kind,
            primary: self.primary,
        }
    }

    /// Fails with [`Error::QueryTimeout`] if the query (with any wait for a
    /// lazy connection) takes longer; the query is cancelled on the server.
    /// Overrides the engine's default `timeout` and the connection's
    /// ([`Connection::query_timeout`](crate::Connection::query_timeout)).
    ///
    /// ```
    /// # async fn demo() -> gino::Result<()> {
    /// use std::time::Duration;
    /// use gino::prelude::*;
    /// let slow = diesel::sql_query("SELECT pg_sleep(10)");
    /// let err = slow.gino().timeout(Duration::from_millis(100)).status().await.unwrap_err();
    /// assert!(matches!(err, gino::Error::QueryTimeout(_)));
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The query as SQL and bind values, without running it.
    ///
    /// ```
    /// use diesel::dsl::sql;
    /// use diesel::sql_types::Text;
    /// use gino::prelude::*;
    /// let q = diesel::select(sql::<Text>("").bind::<Text, _>("hi"));
    /// assert_eq!(q.gino().compile().binds(), ["\"hi\""]);
    /// ```
    pub fn compile(&self) -> Compiled
    where
        Q: QueryFragment<Pg>,
    {
        Compiled::of(&self.query)
    }

    async fn load_some<'q, U>(self, limit: u32) -> Result<Vec<U>>
    where
        Q: Loadable<'q, U>,
        U: Send + 'static,
    {
        let place = self.place();
        let kind = self.sql_kind(place);
        run_loading(
            place,
            self.time_limit(),
            kind,
            Load::some(self.query, limit),
        )
        .await
    }

    /// All rows, loaded as `U`.
    ///
    /// ```
    /// # async fn demo() -> gino::Result<()> {
    /// use diesel::dsl::sql;
    /// use diesel::sql_types::Integer;
    /// use gino::prelude::*;
    /// let rows: Vec<i32> = diesel::select(sql::<Integer>("generate_series(1, 3)"))
    ///     .gino()
    ///     .all()
    ///     .await?;
    /// assert_eq!(rows, [1, 2, 3]);
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub async fn all<'q, U>(self) -> Result<Vec<U>>
    where
        Q: Loadable<'q, U>,
        U: Send + 'static,
    {
        let place = self.place();
        let kind = self.sql_kind(place);
        run_loading(place, self.time_limit(), kind, Load::all(self.query)).await
    }

    /// The first row, or `None` when there is none. The server is asked for
    /// one row (the protocol's row limit, as asyncpg's `fetchrow` under
    /// GINO's `first`): it stops there, neither computing nor sending the
    /// rest, and the query's text is not changed (its prepared statement
    /// is the same as `all()`'s). A statement that changes data
    /// (`UPDATE ... RETURNING`) still runs whole, as PostgreSQL runs those.
    ///
    /// ```
    /// # async fn demo() -> gino::Result<()> {
    /// use diesel::dsl::sql;
    /// use diesel::sql_types::Integer;
    /// use gino::prelude::*;
    /// let first: Option<i32> = diesel::select(sql::<Integer>("generate_series(4, 6)"))
    ///     .gino()
    ///     .first()
    ///     .await?;
    /// assert_eq!(first, Some(4));
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub async fn first<'q, U>(self) -> Result<Option<U>>
    where
        Q: Loadable<'q, U>,
        U: Send + 'static,
    {
        Ok(self.load_some(1).await?.pop())
    }

    /// The first row, or [`Error::NotFound`] when there is none (which the
    /// web extensions answer with 404): GINO's `first_or_404`.
    ///
    /// ```
    /// # async fn demo() -> gino::Result<()> {
    /// use diesel::dsl::sql;
    /// use diesel::sql_types::Integer;
    /// use gino::prelude::*;
    /// let missing = diesel::select(sql::<Integer>("1 WHERE false")).gino().first_or_404::<i32>().await;
    /// assert!(matches!(missing, Err(gino::Error::NotFound)));
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub async fn first_or_404<'q, U>(self) -> Result<U>
    where
        Q: Loadable<'q, U>,
        U: Send + 'static,
    {
        self.first().await?.ok_or(Error::NotFound)
    }

    /// Exactly one row: [`Error::NoResultFound`] when there is none,
    /// [`Error::MultipleResultsFound`] when there are more.
    ///
    /// ```
    /// # async fn demo() -> gino::Result<()> {
    /// use diesel::dsl::sql;
    /// use diesel::sql_types::Integer;
    /// use gino::prelude::*;
    /// let one: i32 = diesel::select(sql::<Integer>("1")).gino().one().await?;
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub async fn one<'q, U>(self) -> Result<U>
    where
        Q: Loadable<'q, U>,
        U: Send + 'static,
    {
        self.one_or_none().await?.ok_or(Error::NoResultFound)
    }

    /// One row or none: [`Error::MultipleResultsFound`] when there are more.
    ///
    /// ```
    /// # async fn demo() -> gino::Result<()> {
    /// use diesel::dsl::sql;
    /// use diesel::sql_types::Integer;
    /// use gino::prelude::*;
    /// let none: Option<i32> = diesel::select(sql::<Integer>("1 WHERE false"))
    ///     .gino()
    ///     .one_or_none()
    ///     .await?;
    /// assert_eq!(none, None);
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub async fn one_or_none<'q, U>(self) -> Result<Option<U>>
    where
        Q: Loadable<'q, U>,
        U: Send + 'static,
    {
        let mut rows = self.load_some(2).await?;
        if rows.len() > 1 {
            return Err(Error::MultipleResultsFound);
        }
        Ok(rows.pop())
    }

    /// The value of a single-column query's first row; `None` when there
    /// is no row. (A NULL value loads as `None` when `T` is an `Option`.)
    ///
    /// ```
    /// # async fn demo() -> gino::Result<()> {
    /// use diesel::dsl::sql;
    /// use diesel::sql_types::BigInt;
    /// use gino::prelude::*;
    /// let none: Option<i64> = diesel::select(sql::<BigInt>("1 WHERE false")).gino().scalar().await?;
    /// assert_eq!(none, None);
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub async fn scalar<'q, T>(self) -> Result<Option<T>>
    where
        Q: Loadable<'q, T>,
        T: Send + 'static,
    {
        self.first().await
    }

    /// Reads the rows through a server-side cursor, in batches; see
    /// [`Cursor`](crate::Cursor). Needs a transaction (the contextual one,
    /// or `.bind(&tx)`): elsewhere it is [`Error::TransactionMisuse`].
    ///
    /// A statement PostgreSQL declares no cursor for (`INSERT ...
    /// RETURNING`, or one with no rows) runs whole here, and the cursor
    /// hands out its rows.
    ///
    /// ```
    /// # async fn demo(db: &'static gino::Gino) -> gino::Result<()> {
    /// use diesel::dsl::sql;
    /// use diesel::sql_types::Integer;
    /// use gino::prelude::*;
    ///
    /// let tx = db.begin().await?;
    /// let mut cursor = diesel::select(sql::<Integer>("generate_series(1, 3)"))
    ///     .gino()
    ///     .bind(&tx)
    ///     .iterate::<i32>()
    ///     .await?;
    /// while let Some(n) = cursor.next().await? {
    ///     println!("{n}");
    /// }
    /// tx.commit().await?;
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub async fn iterate<'q, U>(self) -> Result<crate::Cursor<U, <Q as AsQuery>::SqlType>>
    where
        Q: Loadable<'q, U>,
        Q::Query: QueryFragment<Pg> + QueryId,
        U: Send + 'static,
    {
        let on = match self.place().target()? {
            Target::Root(root, access) => (root, access),
            Target::Engine(_) => return Err(crate::cursor::needs_transaction()),
        };
        let timeout = self.time_limit();
        let load = Load::all(self.query);
        let declarable = crate::bind::declarable(load.query());
        crate::cursor::open(on, load, declarable, timeout).await
    }

    /// Runs the statement and returns PostgreSQL's command tag, e.g.
    /// `UPDATE 8` or `INSERT 0 1`.
    ///
    /// ```
    /// # async fn demo() -> gino::Result<()> {
    /// use gino::prelude::*;
    /// let status = diesel::sql_query("SELECT 1").gino().status().await?;
    /// assert_eq!(status, "SELECT 1");
    /// assert_eq!(status.rows(), 1);
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub async fn status(self) -> Result<Status>
    where
        Q: ExecuteDsl<AsyncPgConnection> + Send,
    {
        let place = self.place();
        let (rows, tag) = place
            .run(self.time_limit(), Tagged(Execute(self.query)))
            .await?;
        Ok(Status::from_wire(tag, rows))
    }

    /// Runs the statement and returns PostgreSQL's command tag together
    /// with the rows it returned, loaded as `U`: GINO's `status, rows =
    /// await engine.status(...)`, in one round trip. It runs where
    /// [`status`](Self::status) runs (never on a read replica).
    ///
    /// ```
    /// # async fn demo(engine: &gino::Engine) -> gino::Result<()> {
    /// use diesel::sql_types::{Integer, Text};
    /// let conn = engine.acquire().await?;
    /// conn.status(gino::text("CREATE TEMP TABLE t (id serial, name text)")).await?;
    /// let insert = gino::text("INSERT INTO t (name) VALUES ('a'), ('b') RETURNING id, name")
    ///     .columns::<(Integer, Text)>();
    /// let (status, rows) = conn.status_and_all::<(i32, String), _>(insert).await?;
    /// assert_eq!(status, "INSERT 0 2");
    /// assert_eq!(rows, [(1, "a".to_owned()), (2, "b".to_owned())]);
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub async fn status_and_all<'q, U>(self) -> Result<(Status, Vec<U>)>
    where
        Q: Loadable<'q, U>,
        U: Send + 'static,
    {
        let place = self.place();
        let timeout = self.time_limit();
        // Run for its effect, as `status()` is.
        let load = Load::all(self.query).writing(Writes::Yes);
        let (rows, tag) = place.run(timeout, Tagged(load)).await?;
        Ok((Status::from_tag(tag, rows.len()), rows))
    }
}

/// Runs a load: as a read (a replica may answer, where its place has one)
/// when its SQL is one, else where its place says; for read-your-writes,
/// a write or not as its SQL shows ([`Executor::sql_kind`]), else as its
/// command tag does.
async fn run_loading<'q, Q: Loadable<'q, U>, U: Send + 'static>(
    place: Bind<'_>,
    timeout: Option<Duration>,
    kind: Option<SqlKind>,
    load: Load<Q, U>,
) -> Result<Vec<U>> {
    match kind {
        Some(SqlKind::Read) => place.run_read(timeout, load.writing(Writes::No)).await,
        Some(SqlKind::Lock) => place.run(timeout, load.writing(Writes::No)).await,
        Some(SqlKind::Write) => place.run(timeout, load.writing(Writes::Yes)).await,
        None => place.run(timeout, load).await,
    }
}

/// A query with parameters, to run many times with different values
/// (GINO's `prepare`): returned by `prepare(build)` on a [`Gino`],
/// [`Engine`] or [`Connection`].
///
/// `build` makes the query from the values; every query it makes has the
/// same SQL, so each connection parses and plans it once and keeps it
/// prepared (see [`EngineOptions::statement_cache`](crate::EngineOptions::statement_cache)),
/// and later runs only bind new values. Nothing is sent before the first
/// run (GINO's `conn.prepare` sends at once), so SQL the server rejects
/// fails there, with the database's error.
///
/// ```
/// # async fn demo(engine: &gino::Engine) -> gino::Result<()> {
/// use diesel::dsl::sql;
/// use diesel::sql_types::Integer;
///
/// let square = engine.prepare(|n: i32| {
///     diesel::select(sql::<Integer>("").bind::<Integer, _>(n).sql(" * ").bind::<Integer, _>(n))
/// });
/// assert_eq!(square.run(3).one::<i32>().await?, 9);
/// assert_eq!(square.run(4).one::<i32>().await?, 16);
/// # Ok(()) }
/// # gino_testkit::doc::run(demo);
/// ```
pub struct Prepared<'a, F> {
    build: F,
    bind: Bind<'a>,
}

impl<'a, F> Prepared<'a, F> {
    pub(crate) fn new(build: F, bind: Bind<'a>) -> Self {
        Prepared { build, bind }
    }

    /// The query for `values`, ready to run with any of [`Executor`]'s
    /// methods (`all`, `one`, `status`, ...).
    ///
    /// ```
    /// # async fn demo(engine: &gino::Engine) -> gino::Result<()> {
    /// use diesel::dsl::sql;
    /// use diesel::sql_types::Integer;
    /// let up_to = engine.prepare(|n: i32| {
    ///     diesel::select(sql::<Integer>("generate_series(1, ").bind::<Integer, _>(n).sql(")"))
    /// });
    /// assert_eq!(up_to.run(3).all::<i32>().await?, [1, 2, 3]);
    /// assert_eq!(up_to.run(1).first::<i32>().await?, Some(1));
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn run<A, Q>(&self, values: A) -> Executor<'a, KeepPrepared<Q>>
    where
        F: Fn(A) -> Q,
    {
        Executor::new(KeepPrepared((self.build)(values)), self.bind)
    }
}

/// A query whose prepared statement is kept even if diesel would not keep
/// it (raw SQL fragments make diesel assume the text changes from run to
/// run); made by [`Prepared::run`], whose queries have one text.
#[derive(Debug, Clone, Copy)]
pub struct KeepPrepared<Q>(Q);

impl<Q: QueryFragment<Pg>> QueryFragment<Pg> for KeepPrepared<Q> {
    fn walk_ast<'b>(
        &'b self,
        pass: diesel::query_builder::AstPass<'_, 'b, Pg>,
    ) -> diesel::QueryResult<()> {
        self.0.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, _: &Pg) -> diesel::QueryResult<bool> {
        Ok(true)
    }
}

impl<Q: QueryId> QueryId for KeepPrepared<Q> {
    type QueryId = Q::QueryId;
    const HAS_STATIC_QUERY_ID: bool = Q::HAS_STATIC_QUERY_ID;
}

impl<Q: diesel::query_builder::Query> diesel::query_builder::Query for KeepPrepared<Q> {
    type SqlType = Q::SqlType;
}

impl<Q, Conn> diesel::query_dsl::RunQueryDsl<Conn> for KeepPrepared<Q> {}

/// A statement prepared once per distinct SQL text and kept, where diesel
/// would prepare it anew on every run: an `INSERT` whose `VALUES` hold
/// `DEFAULT` for unset options changes text with the options set, so
/// diesel calls it unsafe to cache; keyed by its text, it is safe. Used by
/// `#[derive(Model)]`'s `create()`.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct CachedByText<Q>(pub Q);

impl<Q: QueryFragment<Pg>> QueryFragment<Pg> for CachedByText<Q> {
    fn walk_ast<'b>(
        &'b self,
        pass: diesel::query_builder::AstPass<'_, 'b, Pg>,
    ) -> diesel::QueryResult<()> {
        self.0.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, _: &Pg) -> diesel::QueryResult<bool> {
        Ok(true)
    }
}

impl<Q> QueryId for CachedByText<Q> {
    type QueryId = ();
    // No static identity: the statement cache keys it by its SQL text.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: diesel::query_builder::Query> diesel::query_builder::Query for CachedByText<Q> {
    type SqlType = Q::SqlType;
}

impl<Q, Conn> diesel::query_dsl::RunQueryDsl<Conn> for CachedByText<Q> {}

/// A query of the catalog answering yes or no, ready for an [`Executor`].
#[doc(hidden)]
pub trait CatalogQuery:
    diesel::query_builder::Query<SqlType = diesel::sql_types::Bool>
    + QueryFragment<Pg>
    + QueryId
    + Send
    + 'static
{
}

impl<Q> CatalogQuery for Q where
    Q: diesel::query_builder::Query<SqlType = diesel::sql_types::Bool>
        + QueryFragment<Pg>
        + QueryId
        + Send
        + 'static
{
}

/// `SELECT EXISTS (SELECT 1 FROM <from_where> $name AND <schema test>)`:
/// a catalog lookup of `name`, or of `schema.name` when qualified (else
/// by `visible`, the search path's test).
#[doc(hidden)]
pub fn catalog_lookup(
    from_where: &str,
    visible: &'static str,
    name: &str,
) -> impl CatalogQuery + use<> {
    use diesel::dsl::sql;
    use diesel::sql_types::{Bool, Nullable, Text};
    let (schema, object) = match name.split_once('.') {
        Some((schema, object)) if !visible.is_empty() => (Some(schema.to_owned()), object),
        _ => (None, name),
    };
    let visible = if visible.is_empty() { "true" } else { visible };
    diesel::select(
        sql::<Bool>("EXISTS (SELECT 1 FROM ")
            .sql(from_where)
            .bind::<Text, _>(object.to_owned())
            .sql(" AND CASE WHEN ")
            .bind::<Nullable<Text>, _>(schema.clone())
            .sql("::text IS NULL THEN ")
            .sql(visible)
            .sql(" ELSE n.nspname = ")
            .bind::<Nullable<Text>, _>(schema)
            .sql(" END)"),
    )
}

/// A [`catalog_lookup`] of a relation of the kinds `kinds` (`'S'` for a
/// sequence, `'r', 'v'` and the rest for a table).
#[doc(hidden)]
pub fn relation_lookup(kinds: &str, name: &str) -> impl CatalogQuery + use<> {
    catalog_lookup(
        &format!(
            "pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ({kinds}) AND c.relname = "
        ),
        "pg_catalog.pg_table_is_visible(c.oid)",
        name,
    )
}

/// The query API shared by [`Gino`], [`Engine`] and [`Connection`]: each
/// method wraps the query in an [`Executor`] bound to `self.bind()`.
/// `$recv` and `$ty` name the receiver in the generated examples.
macro_rules! query_methods {
    ($recv:literal, $ty:literal) => {
        #[doc = concat!(
            "All rows of `query`; see [`Executor::all`](crate::Executor::all).\n\n",
            "```\n# async fn demo(", $recv, ": &", $ty, ") -> gino::Result<()> {\n",
            "use diesel::dsl::sql;\nuse diesel::sql_types::Integer;\n",
            "let rows: Vec<i32> = ", $recv,
            ".all(diesel::select(sql::<Integer>(\"generate_series(1, 3)\"))).await?;\n",
            "assert_eq!(rows, [1, 2, 3]);\n# Ok(()) }\n# gino_testkit::doc::run(demo);\n```"
        )]
        pub async fn all<'q, U, Q>(&self, query: Q) -> $crate::Result<Vec<U>>
        where
            Q: $crate::Loadable<'q, U>,
            Q: diesel::query_builder::QueryFragment<diesel::pg::Pg> + diesel::query_builder::QueryId,
            U: Send + 'static,
        {
            $crate::Executor::classified(query, self.bind()).all().await
        }

        #[doc = concat!(
            "The first row of `query`, or `None`; see ",
            "[`Executor::first`](crate::Executor::first).\n\n",
            "```\n# async fn demo(", $recv, ": &", $ty, ") -> gino::Result<()> {\n",
            "use diesel::dsl::sql;\nuse diesel::sql_types::Integer;\n",
            "let first: Option<i32> = ", $recv,
            ".first(diesel::select(sql::<Integer>(\"generate_series(5, 9)\"))).await?;\n",
            "assert_eq!(first, Some(5));\n# Ok(()) }\n# gino_testkit::doc::run(demo);\n```"
        )]
        pub async fn first<'q, U, Q>(&self, query: Q) -> $crate::Result<Option<U>>
        where
            Q: $crate::Loadable<'q, U>,
            Q: diesel::query_builder::QueryFragment<diesel::pg::Pg> + diesel::query_builder::QueryId,
            U: Send + 'static,
        {
            $crate::Executor::classified(query, self.bind()).first().await
        }

        #[doc = concat!(
            "The first row of `query`, or [`Error::NotFound`](crate::Error::NotFound) (404 in the ",
            "web extensions); see [`Executor::first_or_404`](crate::Executor::first_or_404).\n\n",
            "```\n# async fn demo(", $recv, ": &", $ty, ") -> gino::Result<()> {\n",
            "use diesel::dsl::sql;\nuse diesel::sql_types::Integer;\n",
            "let missing = ", $recv,
            ".first_or_404::<i32, _>(diesel::select(sql::<Integer>(\"1 WHERE false\"))).await;\n",
            "assert!(matches!(missing, Err(gino::Error::NotFound)));\n# Ok(()) }\n# gino_testkit::doc::run(demo);\n```"
        )]
        pub async fn first_or_404<'q, U, Q>(&self, query: Q) -> $crate::Result<U>
        where
            Q: $crate::Loadable<'q, U>,
            Q: diesel::query_builder::QueryFragment<diesel::pg::Pg> + diesel::query_builder::QueryId,
            U: Send + 'static,
        {
            $crate::Executor::classified(query, self.bind()).first_or_404().await
        }

        #[doc = concat!(
            "Exactly one row of `query`; see [`Executor::one`](crate::Executor::one).\n\n",
            "```\n# async fn demo(", $recv, ": &", $ty, ") -> gino::Result<()> {\n",
            "use diesel::dsl::sql;\nuse diesel::sql_types::Integer;\n",
            "let none = ", $recv,
            ".one::<i32, _>(diesel::select(sql::<Integer>(\"1 WHERE false\"))).await;\n",
            "assert!(matches!(none, Err(gino::Error::NoResultFound)));\n# Ok(()) }\n# gino_testkit::doc::run(demo);\n```"
        )]
        pub async fn one<'q, U, Q>(&self, query: Q) -> $crate::Result<U>
        where
            Q: $crate::Loadable<'q, U>,
            Q: diesel::query_builder::QueryFragment<diesel::pg::Pg> + diesel::query_builder::QueryId,
            U: Send + 'static,
        {
            $crate::Executor::classified(query, self.bind()).one().await
        }

        #[doc = concat!(
            "One row of `query` or none; see ",
            "[`Executor::one_or_none`](crate::Executor::one_or_none).\n\n",
            "```\n# async fn demo(", $recv, ": &", $ty, ") -> gino::Result<()> {\n",
            "use diesel::dsl::sql;\nuse diesel::sql_types::Integer;\n",
            "let two = ", $recv,
            ".one_or_none::<i32, _>(diesel::select(sql::<Integer>(\"generate_series(1, 2)\"))).await;\n",
            "assert!(matches!(two, Err(gino::Error::MultipleResultsFound)));\n# Ok(()) }\n# gino_testkit::doc::run(demo);\n```"
        )]
        pub async fn one_or_none<'q, U, Q>(&self, query: Q) -> $crate::Result<Option<U>>
        where
            Q: $crate::Loadable<'q, U>,
            Q: diesel::query_builder::QueryFragment<diesel::pg::Pg> + diesel::query_builder::QueryId,
            U: Send + 'static,
        {
            $crate::Executor::classified(query, self.bind()).one_or_none().await
        }

        #[doc = concat!(
            "The single value of `query`'s first row, `None` without a row; see ",
            "[`Executor::scalar`](crate::Executor::scalar).\n\n",
            "```\n# async fn demo(", $recv, ": &", $ty, ") -> gino::Result<()> {\n",
            "use diesel::dsl::sql;\nuse diesel::sql_types::BigInt;\n",
            "let n: Option<i64> = ", $recv,
            ".scalar(diesel::select(sql::<BigInt>(\"count(*) FROM pg_class\"))).await?;\n",
            "assert!(n.unwrap() > 0);\n# Ok(()) }\n# gino_testkit::doc::run(demo);\n```"
        )]
        pub async fn scalar<'q, T, Q>(&self, query: Q) -> $crate::Result<Option<T>>
        where
            Q: $crate::Loadable<'q, T>,
            Q: diesel::query_builder::QueryFragment<diesel::pg::Pg> + diesel::query_builder::QueryId,
            T: Send + 'static,
        {
            $crate::Executor::classified(query, self.bind()).scalar().await
        }

        #[doc = concat!(
            "Runs `query` and returns PostgreSQL's command tag; see ",
            "[`Executor::status`](crate::Executor::status).\n\n",
            "```\n# async fn demo(", $recv, ": &", $ty, ") -> gino::Result<()> {\n",
            "let status = ", $recv,
            ".status(diesel::sql_query(\"CREATE TEMP TABLE IF NOT EXISTS t (x int)\")).await?;\n",
            "assert_eq!(status, \"CREATE TABLE\");\n# Ok(()) }\n# gino_testkit::doc::run(demo);\n```"
        )]
        pub async fn status<Q>(&self, query: Q) -> $crate::Result<$crate::Status>
        where
            Q: diesel_async::methods::ExecuteDsl<diesel_async::AsyncPgConnection> + Send,
        {
            $crate::Executor::new(query, self.bind()).status().await
        }

        #[doc = concat!(
            "Runs `query` and returns PostgreSQL's command tag with the rows it returned; see ",
            "[`Executor::status_and_all`](crate::Executor::status_and_all).\n\n",
            "```\n# async fn demo(", $recv, ": &", $ty, ") -> gino::Result<()> {\n",
            "use diesel::dsl::sql;\nuse diesel::sql_types::Integer;\n",
            "let (status, rows) = ", $recv,
            ".status_and_all::<i32, _>(diesel::select(sql::<Integer>(\"generate_series(1, 2)\"))).await?;\n",
            "assert_eq!(status, \"SELECT 2\");\nassert_eq!(rows, [1, 2]);\n# Ok(()) }\n# gino_testkit::doc::run(demo);\n```"
        )]
        pub async fn status_and_all<'q, U, Q>(&self, query: Q) -> $crate::Result<($crate::Status, Vec<U>)>
        where
            Q: $crate::Loadable<'q, U>,
            U: Send + 'static,
        {
            $crate::Executor::new(query, self.bind()).status_and_all().await
        }

        #[doc = concat!(
            "Reads `query`'s rows through a server-side cursor (inside a transaction); see ",
            "[`Executor::iterate`](crate::Executor::iterate).\n\n",
            "```\n# async fn demo(", $recv, ": &", $ty, ") -> gino::Result<()> {\n",
            "use diesel::dsl::sql;\nuse diesel::sql_types::Integer;\n",
            "let tx = ", $recv, ".begin().await?;\n",
            "let mut rows = ", $recv,
            ".iterate::<i32, _>(diesel::select(sql::<Integer>(\"generate_series(1, 3)\"))).await?;\n",
            "assert_eq!(rows.many(5).await?, [1, 2, 3]);\ntx.commit().await?;\n# Ok(()) }\n# gino_testkit::doc::run(demo);\n```"
        )]
        pub async fn iterate<'q, U, Q>(
            &self,
            query: Q,
        ) -> $crate::Result<$crate::Cursor<U, <Q as diesel::query_builder::AsQuery>::SqlType>>
        where
            Q: $crate::Loadable<'q, U>,
            <Q as diesel::query_builder::AsQuery>::Query:
                diesel::query_builder::QueryFragment<diesel::pg::Pg> + diesel::query_builder::QueryId,
            U: Send + 'static,
        {
            $crate::Executor::new(query, self.bind()).iterate().await
        }

        #[doc = concat!(
            "A query to run many times with different values; see ",
            "[`Prepared`](crate::Prepared).\n\n",
            "```\n# async fn demo(", $recv, ": &", $ty, ") -> gino::Result<()> {\n",
            "use diesel::dsl::sql;\nuse diesel::sql_types::Integer;\n",
            "let plus_one = ", $recv,
            ".prepare(|n: i32| diesel::select(sql::<Integer>(\"\").bind::<Integer, _>(n).sql(\" + 1\")));\n",
            "assert_eq!(plus_one.run(41).one::<i32>().await?, 42);\n# Ok(()) }\n# gino_testkit::doc::run(demo);\n```"
        )]
        pub fn prepare<F>(&self, build: F) -> $crate::Prepared<'_, F> {
            $crate::Prepared::new(build, self.bind())
        }

        #[doc = concat!(
            "Whether the table (or view) `name` exists: `\"users\"`, or schema-qualified ",
            "`\"app.users\"`; names are taken as written, not case-folded.\n\n",
            "```\n# async fn demo(", $recv, ": &", $ty, ") -> gino::Result<()> {\n",
            "assert!(", $recv, ".has_table(\"pg_catalog.pg_class\").await?);\n",
            "assert!(!", $recv, ".has_table(\"no_such_table\").await?);\n# Ok(()) }\n# gino_testkit::doc::run(demo);\n```"
        )]
        pub async fn has_table(&self, name: &str) -> $crate::Result<bool> {
            let tables = "'r', 'p', 'v', 'm', 'f'";
            $crate::Executor::new($crate::executor::relation_lookup(tables, name), self.bind())
                .one()
                .await
        }

        #[doc = concat!(
            "Whether the schema `name` exists.\n\n",
            "```\n# async fn demo(", $recv, ": &", $ty, ") -> gino::Result<()> {\n",
            "assert!(", $recv, ".has_schema(\"public\").await?);\n# Ok(()) }\n# gino_testkit::doc::run(demo);\n```"
        )]
        pub async fn has_schema(&self, name: &str) -> $crate::Result<bool> {
            $crate::Executor::new($crate::executor::catalog_lookup(
                "pg_catalog.pg_namespace n WHERE true AND n.nspname = ",
                "",
                name,
            ), self.bind()).one().await
        }

        #[doc = concat!(
            "Whether the sequence `name` exists: `\"tickets\"` or `\"app.tickets\"`.\n\n",
            "```\n# async fn demo(", $recv, ": &", $ty, ") -> gino::Result<()> {\n",
            "assert!(!", $recv, ".has_sequence(\"no_such_sequence\").await?);\n# Ok(()) }\n# gino_testkit::doc::run(demo);\n```"
        )]
        pub async fn has_sequence(&self, name: &str) -> $crate::Result<bool> {
            $crate::Executor::new($crate::executor::relation_lookup("'S'", name), self.bind())
                .one()
                .await
        }

        #[doc = concat!(
            "Whether the type `name` exists (an enum, say): `\"mood\"` or `\"app.mood\"`.\n\n",
            "```\n# async fn demo(", $recv, ": &", $ty, ") -> gino::Result<()> {\n",
            "assert!(", $recv, ".has_type(\"int4\").await?);\n# Ok(()) }\n# gino_testkit::doc::run(demo);\n```"
        )]
        pub async fn has_type(&self, name: &str) -> $crate::Result<bool> {
            $crate::Executor::new($crate::executor::catalog_lookup(
                "pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace \
                 WHERE t.typname = ",
                "pg_catalog.pg_type_is_visible(t.oid)",
                name,
            ), self.bind()).one().await
        }

        #[doc = concat!(
            "`query` as SQL and bind values, without running it; see ",
            "[`Executor::compile`](crate::Executor::compile).\n\n",
            "```\n# fn demo(", $recv, ": &", $ty, ") {\n",
            "use diesel::dsl::sql;\nuse diesel::sql_types::Integer;\n",
            "let q = diesel::select(sql::<Integer>(\"\").bind::<Integer, _>(7));\n",
            "assert_eq!(", $recv, ".compile(&q).sql(), \"SELECT $1\");\n# }\n```"
        )]
        pub fn compile<Q>(&self, query: &Q) -> $crate::Compiled
        where
            Q: diesel::query_builder::QueryFragment<diesel::pg::Pg>,
        {
            $crate::Compiled::of(query)
        }
    };
}

impl Gino {
    pub(crate) fn bind(&self) -> Bind<'_> {
        Bind::Db(self)
    }

    query_methods!("db", "gino::Gino");
}

impl Engine {
    pub(crate) fn bind(&self) -> Bind<'_> {
        Bind::Engine(self)
    }

    query_methods!("engine", "gino::Engine");
}

impl Connection {
    pub(crate) fn bind(&self) -> Bind<'_> {
        Bind::Connection(self)
    }

    query_methods!("conn", "gino::Connection");
}
