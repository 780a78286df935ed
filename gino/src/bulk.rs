//! Inserting many rows at once (GINO's `executemany`): `User::insert_many(rows)`.
//!
//! Uses: `model`, `executor`, `bind`, `engine`, `connection` and `context` (whether a transaction is open).

use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;

use futures_util::future::BoxFuture;

use crate::bind::{Bind, Resolved};
use crate::connection::Connection;
use crate::context::Stack;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::executor::{Compiled, Executor};
use crate::model::Model;
use crate::statement::Deadline;

/// PostgreSQL's limit of bind parameters in one statement.
pub const MAX_BIND_PARAMETERS: usize = 65_535;

/// A bulk insert to await: made by `Model::insert_many(rows)`.
///
/// Counting inserts send each column as one array (`INSERT ... SELECT *
/// FROM UNNEST($1, $2, ...)`, one prepared statement whatever the number
/// of rows); with [`returning`](InsertMany::returning), or when a column is
/// an array itself, they are multi-row `INSERT ... VALUES`. Either way as
/// many rows per statement as PostgreSQL's bind-parameter limit would allow
/// in `VALUES`, all in one transaction (none for a single statement
/// outside one): a failing row aborts the whole batch, and the error
/// ([`Error::BatchRow`]) names the row (by its index in `rows`) with the
/// database's error, constraint included. A failure that is not a row's
/// doing (a timeout, a deadlock, a lost connection, or one no row repeats
/// when tried alone) comes as it is, still atomic. A row holding a serial key of
/// its own (not 0) keeps it, as GINO's executemany inserts the keys it is
/// given; such a batch goes as `VALUES` rows, with `DEFAULT` for rows whose
/// key is 0.
///
/// ```
/// # use gino::prelude::*;
/// # #[derive(Model, Debug, Clone)]
/// # #[gino(table = "users")]
/// # pub struct User { #[gino(primary_key)] pub id: i32, pub nickname: String }
/// # async fn demo() -> gino::Result<()> {
/// # User::create_table().await?;
/// let rows = (0..10_000).map(|i| User { id: 0, nickname: format!("user{i}") });
/// let inserted: u64 = User::insert_many(rows).await?;
/// assert_eq!(inserted, 10_000);
/// # Ok(()) }
/// # gino_testkit::doc::run(demo);
/// ```
#[must_use = "an insert does nothing until awaited"]
pub struct InsertMany<'a, M, Out = u64> {
    rows: Vec<M>,
    bind: Bind<'a>,
    output: PhantomData<fn() -> Out>,
}

impl<'a, M: Model + BulkInsert> InsertMany<'a, M, u64> {
    /// Inserts `rows` on the model's database.
    ///
    /// ```
    /// # use gino::prelude::*;
    /// # #[derive(Model, Debug, Clone)]
    /// # #[gino(table = "users")]
    /// # pub struct User { #[gino(primary_key)] pub id: i32, pub nickname: String }
    /// # async fn demo() -> gino::Result<()> {
    /// # User::create_table().await?;
    /// let rows: Vec<User> = ["ann", "bob"].map(|n| User { id: 0, nickname: n.into() }).into();
    /// let inserted = gino::bulk::InsertMany::new(rows).await?;
    /// assert_eq!(inserted, 2);
    /// assert_eq!(users::table.count().gino().one::<i64>().await?, 2);
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn new(rows: Vec<M>) -> InsertMany<'static, M, u64> {
        InsertMany {
            rows,
            bind: M::DB.bind(),
            output: PhantomData,
        }
    }

    /// Returns the stored rows (with database-assigned values) instead of
    /// their count.
    ///
    /// ```
    /// # use gino::prelude::*;
    /// # #[derive(Model, Debug, Clone)]
    /// # #[gino(table = "users")]
    /// # pub struct User { #[gino(primary_key)] pub id: i32, pub nickname: String }
    /// # async fn demo() -> gino::Result<()> {
    /// # User::create_table().await?;
    /// let rows = ["ann", "bob"].map(|n| User { id: 0, nickname: n.into() });
    /// let stored: Vec<User> = User::insert_many(rows).returning().await?;
    /// assert_eq!(stored.len(), 2);
    /// assert!(stored.iter().all(|u| u.id > 0)); // serial ids assigned by the database
    /// assert_ne!(stored[0].id, stored[1].id);
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn returning(self) -> InsertMany<'a, M, Vec<M>> {
        InsertMany {
            rows: self.rows,
            bind: self.bind,
            output: PhantomData,
        }
    }
}

impl<'a, M, Out> InsertMany<'a, M, Out> {
    /// Runs on `to` instead of the model's database (inside a transaction
    /// of `to`, the batch is a savepoint of it).
    ///
    /// ```
    /// # use gino::prelude::*;
    /// # #[derive(Model, Debug, Clone)]
    /// # #[gino(table = "users")]
    /// # pub struct User { #[gino(primary_key)] pub id: i32, pub nickname: String }
    /// # async fn demo(engine: &gino::Engine) -> gino::Result<()> {
    /// # User::create_table().await?;
    /// let conn = engine.acquire().reusable(false).await?; // never used implicitly
    /// let tx = conn.begin().await?;
    /// let rows = ["ann", "bob"].map(|n| User { id: 0, nickname: n.into() });
    /// assert_eq!(User::insert_many(rows).bind(&tx).await?, 2);
    /// tx.rollback().await?;
    /// assert_eq!(users::table.count().gino().one::<i64>().await?, 0);
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn bind<'b>(self, to: impl Into<Bind<'b>>) -> InsertMany<'b, M, Out> {
        InsertMany {
            rows: self.rows,
            bind: to.into(),
            output: PhantomData,
        }
    }
}

impl<M: BulkInsert, Out: Mode<M>> InsertMany<'_, M, Out> {
    /// The statements the insert would run, in order, without running
    /// them: one per chunk of rows the bind-parameter limit allows (GINO's
    /// `compile` of a statement with several parameter sets). Fails only
    /// when a row cannot be serialized (a JSON property).
    ///
    /// ```
    /// # use gino::prelude::*;
    /// # #[derive(Model, Debug, Clone)]
    /// # #[gino(table = "users")]
    /// # pub struct User { #[gino(primary_key)] pub id: i32, pub nickname: String }
    /// let rows = ["ann", "bob"].map(|n| User { id: 0, nickname: n.into() });
    /// let statements = User::insert_many(rows.clone()).compile()?;
    /// assert_eq!(
    ///     statements[0].sql(),
    ///     "INSERT INTO \"users\" (\"nickname\") SELECT * FROM UNNEST($1)"
    /// );
    /// let returning = User::insert_many(rows).returning().compile()?;
    /// assert!(returning[0].sql().starts_with(
    ///     "INSERT INTO \"users\" (\"nickname\") VALUES ($1), ($2) RETURNING"
    /// ));
    /// assert_eq!(returning[0].binds(), ["\"ann\"", "\"bob\""]);
    /// # Ok::<(), gino::Error>(())
    /// ```
    pub fn compile(&self) -> Result<Vec<Compiled>> {
        let mut statements = Vec::new();
        for chunk in self.rows.chunks(per_statement(&self.rows)) {
            Extend::extend(&mut statements, M::compile_rows(chunk, Out::RETURNING)?);
        }
        Ok(statements)
    }
}

/// What `#[derive(Model)]` implements for bulk inserts: the multi-row
/// statements for a slice of rows.
#[doc(hidden)]
pub trait BulkInsert: Model {
    /// Bind parameters each row of `rows` takes (more when a row of them
    /// holds a serial key of its own, which then goes in too).
    fn parameters_per_row(rows: &[Self]) -> usize;

    /// Inserts `rows`; yields the number inserted.
    fn insert_rows<'b>(rows: &[Self], on: Bind<'b>) -> BoxFuture<'b, Result<u64>>;

    /// Inserts `rows` returning them as stored.
    fn insert_rows_returning<'b>(rows: &[Self], on: Bind<'b>) -> BoxFuture<'b, Result<Vec<Self>>>;

    /// The statements `insert_rows` (or, with `returning`,
    /// `insert_rows_returning`) would run for `rows`.
    fn compile_rows(rows: &[Self], returning: bool) -> Result<Vec<Compiled>>;
}

/// How a batch of rows is inserted and what it yields: a count (`u64`) or
/// the stored rows (`Vec<M>`).
#[doc(hidden)]
pub trait Mode<M: BulkInsert>: Sized + Send + 'static {
    /// Whether the statements return the rows.
    const RETURNING: bool;
    fn insert<'b>(rows: &[M], on: Bind<'b>) -> BoxFuture<'b, Result<Self>>;
    fn extend(&mut self, more: Self);
    fn empty() -> Self;
}

impl<M: BulkInsert> Mode<M> for u64 {
    const RETURNING: bool = false;
    fn insert<'b>(rows: &[M], on: Bind<'b>) -> BoxFuture<'b, Result<u64>> {
        M::insert_rows(rows, on)
    }
    fn extend(&mut self, more: u64) {
        *self += more;
    }
    fn empty() -> u64 {
        0
    }
}

impl<M: BulkInsert> Mode<M> for Vec<M> {
    const RETURNING: bool = true;
    fn insert<'b>(rows: &[M], on: Bind<'b>) -> BoxFuture<'b, Result<Vec<M>>> {
        M::insert_rows_returning(rows, on)
    }
    fn extend(&mut self, more: Vec<M>) {
        Extend::extend(self, more);
    }
    fn empty() -> Vec<M> {
        Vec::new()
    }
}

/// Where a batch's statements run: on the connection it was bound to
/// (under that connection's query timeout), or on the engine's contextual
/// connection; in a transaction there, that transaction.
#[derive(Clone, Copy)]
struct On<'a> {
    engine: &'a Engine,
    conn: Option<&'a Connection>,
}

impl<'a> On<'a> {
    fn bind(self) -> Bind<'a> {
        self.conn
            .map_or(Bind::Engine(self.engine), Bind::Connection)
    }

    /// `fut` in a managed transaction (a savepoint inside an open one).
    async fn transaction<T, E, F>(self, fut: F) -> Result<T, E>
    where
        F: Future<Output = Result<T, E>> + Send + 'a,
        T: Send + 'static,
        E: From<Error> + Send + 'static,
    {
        match self.conn {
            Some(conn) => conn.transaction(fut).await,
            None => self.engine.transaction(fut).await,
        }
    }
}

/// Inserts `rows` in a savepoint of the transaction `on` is in, so that a
/// failure leaves the transaction usable for finding the culprit.
async fn attempt<M: BulkInsert>(on: On<'_>, rows: &[M]) -> Result<u64> {
    on.transaction(u64::insert(rows, on.bind())).await
}

/// SQLSTATE classes a row's values can cause: data exceptions (`22`: a
/// NUL in text, a number out of range), integrity constraints (`23`),
/// `WITH CHECK OPTION` (`44`), a value past a limit (`54`: an index row too
/// large) and what a trigger raises for a row (`09`, `27`, `2F`, `38`,
/// `39`, `P0`). Any other failure (a timeout, a deadlock, a lost
/// connection) is not a row's doing, and is never pinned on one.
const ROW_CLASSES: [&str; 10] = ["09", "22", "23", "27", "2F", "38", "39", "44", "54", "P0"];

/// Whether `error` may be the doing of a row of the statement that failed.
fn may_be_a_rows(error: &Error) -> bool {
    matches!(error, Error::Database(e) if ROW_CLASSES.iter().any(|class| e.code().starts_with(class)))
}

/// Finds the first row of `rows` that fails after the ones before it, by
/// halving in savepoints; each successful half stays inserted (in the
/// enclosing transaction), as it was when the whole chunk failed. Counting
/// inserts suffice: nothing needs to come back.
///
/// `None` when that row, tried alone, does not fail: the chunk's failure
/// did not come again, so it is pinned on no row. An error a row cannot
/// cause ends the search.
async fn culprit<M: BulkInsert>(on: On<'_>, rows: &[M]) -> Result<Option<(usize, Error)>> {
    let (mut start, mut end) = (0, rows.len());
    while end - start > 1 {
        let middle = start + (end - start) / 2;
        match attempt::<M>(on, &rows[start..middle]).await {
            Err(e) if may_be_a_rows(&e) => end = middle,
            Err(other) => return Err(other),
            Ok(_) => start = middle,
        }
    }
    match attempt::<M>(on, &rows[start..end]).await {
        Err(e) if may_be_a_rows(&e) => Ok(Some((start, e))),
        Err(other) => Err(other),
        Ok(_) => Ok(None),
    }
}

/// Why a batch failed, as it leaves its transaction (which rolls back).
enum Failure {
    /// Not a row's fault (connection, timeout, ...).
    Other(Error),
    /// The statement of the chunk starting at row `start` failed with an
    /// error a row may cause; which row, if any, is found afterwards.
    Chunk { start: usize, error: Error },
    /// The row at `index` fails after the rows before it.
    Row { index: usize, error: Error },
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure::Other(error)
    }
}

impl Failure {
    /// The failure of the chunk starting at row `start`.
    fn of_chunk(start: usize, error: Error) -> Self {
        if may_be_a_rows(&error) {
            Failure::Chunk { start, error }
        } else {
            Failure::Other(error)
        }
    }
}

/// Rows of `rows` per statement; the same for every slice of one batch.
fn per_statement<M: BulkInsert>(rows: &[M]) -> usize {
    (MAX_BIND_PARAMETERS / M::parameters_per_row(rows).max(1)).max(1)
}

/// Every chunk, one statement each; no savepoints, which only finding a
/// failing row needs.
async fn insert_all<M: BulkInsert, Out: Mode<M>>(on: On<'_>, rows: &[M]) -> Result<Out, Failure> {
    let mut output = Out::empty();
    let per = per_statement(rows);
    for (i, chunk) in rows.chunks(per).enumerate() {
        match Out::insert(chunk, on.bind()).await {
            Ok(more) => output.extend(more),
            Err(error) => return Err(Failure::of_chunk(i * per, error)),
        }
    }
    Ok(output)
}

/// After chunk `start` failed with `first`: the rows before it again,
/// then halving the chunk in savepoints to the first row that fails (or
/// `first` itself, when no row does now); always ends in `Err`, so that
/// its transaction rolls back.
async fn locate<M: BulkInsert>(
    on: On<'_>,
    rows: &[M],
    start: usize,
    first: Error,
) -> Result<std::convert::Infallible, Failure> {
    let per = per_statement(rows);
    for chunk in rows[..start].chunks(per) {
        u64::insert(chunk, on.bind()).await?;
    }
    let end = (start + per).min(rows.len());
    match culprit(on, &rows[start..end]).await? {
        Some((offset, error)) => Err(Failure::Row {
            index: start + offset,
            error,
        }),
        None => Err(Failure::Other(first)),
    }
}

/// Whether the insert would run inside an open transaction: on `conn`, or
/// on the engine's contextual connection of this task.
async fn in_transaction(engine: &Engine, conn: Option<&Connection>) -> Result<bool> {
    let root = match conn {
        Some(conn) => Some(conn.root.clone()),
        None => Stack::find(engine.id()),
    };
    match root {
        Some(root) => root.in_transaction(&Deadline::none()).await,
        None => Ok(false),
    }
}

/// The whole batch in one transaction (a savepoint inside an open one);
/// a batch of one statement outside a transaction needs none.
/// The statements run on the connection the batch was bound to, under
/// its query timeout, or on the engine's contextual connection, which
/// within the transaction is the transaction's.
/// Only when a statement fails does a second transaction find the row.
async fn run<M: BulkInsert, Out: Mode<M>>(bind: Bind<'_>, rows: Vec<M>) -> Result<Out> {
    if rows.is_empty() {
        return Ok(Out::empty());
    }
    let resolved = bind.resolve()?;
    let (engine, conn) = match &resolved {
        Resolved::Connection(conn) => (conn.engine().clone(), Some(*conn)),
        Resolved::Engine(engine) => (engine.clone(), None),
    };
    // Rows of database-assigned columns alone go one statement each
    // (`DEFAULT VALUES`): several of them need the transaction too.
    let one_statement =
        rows.len() == 1 || (M::parameters_per_row(&rows) > 0 && rows.len() <= per_statement(&rows));
    let on = On {
        engine: &engine,
        conn,
    };
    let inserted = if one_statement && !in_transaction(&engine, conn).await? {
        // One statement is atomic by itself: no transaction around it,
        // which would cost two more round trips.
        Out::insert(&rows, on.bind())
            .await
            .map_err(|error| Failure::of_chunk(0, error))
    } else {
        on.transaction(insert_all::<M, Out>(on, &rows)).await
    };
    let (start, first) = match inserted {
        Ok(output) => return Ok(output),
        Err(Failure::Chunk { start, error }) => (start, error),
        Err(Failure::Other(error)) | Err(Failure::Row { error, .. }) => return Err(error),
    };
    match on.transaction(locate(on, &rows, start, first)).await {
        Err(Failure::Row { index, error }) => Err(Error::BatchRow {
            index,
            source: Box::new(error),
        }),
        Err(Failure::Other(error)) | Err(Failure::Chunk { error, .. }) => Err(error),
        Ok(never) => match never {},
    }
}

impl<'a, M: BulkInsert, Out: Mode<M>> IntoFuture for InsertMany<'a, M, Out> {
    type Output = Result<Out>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<Out>> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(run::<M, Out>(self.bind, self.rows))
    }
}

/// Runs an insert statement built by the derive on `on`, counting rows.
#[doc(hidden)]
pub fn execute<'b, Q>(query: Q, on: Bind<'b>) -> BoxFuture<'b, Result<u64>>
where
    Q: diesel_async::methods::ExecuteDsl<diesel_async::AsyncPgConnection> + Send + 'b,
{
    Box::pin(async move { Ok(Executor::new(query, on).status().await?.rows()) })
}

/// Runs an insert statement built by the derive on `on`, loading the rows.
#[doc(hidden)]
pub fn load<'b, Q, M>(query: Q, on: Bind<'b>) -> BoxFuture<'b, Result<Vec<M>>>
where
    Q: crate::Loadable<'static, M>,
    M: Send + 'static,
{
    Box::pin(Executor::new(query, on).all())
}

/// The text of a counting insert into `table`: each of `columns` (their SQL
/// names, as diesel's `Column::NAME` gives them) sent as one array and
/// unnested by the server. Named from diesel's own table, so that it writes
/// where every other statement of the model does, also on a `table!` the
/// model only names (`diesel_table`, with a schema or renamed columns). The
/// text is made once per model, in `cache`.
#[doc(hidden)]
pub fn unnest_insert_sql<T>(
    cache: &'static std::sync::OnceLock<String>,
    table: T,
    columns: &[&str],
) -> Result<String>
where
    T: diesel::query_builder::QueryFragment<diesel::pg::Pg>,
{
    use diesel::query_builder::QueryBuilder;

    if let Some(sql) = cache.get() {
        return Ok(sql.clone());
    }
    let mut out = diesel::pg::PgQueryBuilder::default();
    out.push_sql("INSERT INTO ");
    table
        .to_sql(&mut out, &diesel::pg::Pg)
        .map_err(Error::Query)?;
    out.push_sql(" (");
    for (i, column) in columns.iter().enumerate() {
        if i > 0 {
            out.push_sql(", ");
        }
        out.push_identifier(column).map_err(Error::Query)?;
    }
    out.push_sql(") SELECT * FROM UNNEST(");
    for i in 1..=columns.len() {
        if i > 1 {
            out.push_sql(", ");
        }
        out.push_sql(&format!("${i}"));
    }
    out.push_sql(")");
    Ok(cache.get_or_init(|| out.finish()).clone())
}
