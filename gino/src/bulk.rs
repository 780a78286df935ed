//! Inserting many rows at once (GINO's `executemany`): `User::insert_many(rows)`.
//!
//! Uses: `model`, `executor`, `bind`, `engine`.

use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;

use futures_util::future::BoxFuture;

use crate::bind::{Bind, Resolved};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::executor::Executor;
use crate::model::Model;

/// PostgreSQL's limit of bind parameters in one statement.
pub const MAX_BIND_PARAMETERS: usize = 65_535;

/// A bulk insert to await: made by `Model::insert_many(rows)`.
///
/// The rows go in multi-row `INSERT`s, as many rows per statement as
/// PostgreSQL's bind-parameter limit allows, all in one transaction: a
/// failing row aborts the whole batch, and the error
/// ([`Error::BatchRow`]) names the row (by its index in `rows`) with the
/// database's error, constraint included.
///
/// ```
/// # use gino::prelude::*;
/// # #[derive(Model, Debug, Clone)]
/// # #[gino(table = "users")]
/// # pub struct User { #[gino(primary_key)] pub id: i32, pub nickname: String }
/// # async fn demo() -> gino::Result<()> {
/// let rows = (0..10_000).map(|i| User { id: 0, nickname: format!("user{i}") });
/// let inserted: u64 = User::insert_many(rows).await?;
/// assert_eq!(inserted, 10_000);
/// # Ok(()) }
/// ```
#[must_use = "an insert does nothing until awaited"]
pub struct InsertMany<'a, M, Out = u64> {
    rows: Vec<M>,
    bind: Bind<'a>,
    output: PhantomData<fn() -> Out>,
}

impl<'a, M: Model + BulkInsert> InsertMany<'a, M, u64> {
    /// Inserts `rows` on the model's database.
    pub fn new(rows: Vec<M>) -> InsertMany<'static, M, u64> {
        InsertMany {
            rows,
            bind: M::DB.bind(),
            output: PhantomData,
        }
    }

    /// Returns the stored rows (with database-assigned values) instead of
    /// their count.
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
    pub fn bind<'b>(self, to: impl Into<Bind<'b>>) -> InsertMany<'b, M, Out> {
        InsertMany {
            rows: self.rows,
            bind: to.into(),
            output: PhantomData,
        }
    }
}

/// What `#[derive(Model)]` implements for bulk inserts: the multi-row
/// statements for a slice of rows.
#[doc(hidden)]
pub trait BulkInsert: Model {
    /// Bind parameters one row takes.
    const PARAMETERS_PER_ROW: usize;

    /// Inserts `rows`; yields the number inserted.
    fn insert_rows<'b>(rows: &[Self], on: Bind<'b>) -> BoxFuture<'b, Result<u64>>;

    /// Inserts `rows` returning them as stored.
    fn insert_rows_returning<'b>(rows: &[Self], on: Bind<'b>) -> BoxFuture<'b, Result<Vec<Self>>>;
}

/// How a batch of rows is inserted and what it yields: a count (`u64`) or
/// the stored rows (`Vec<M>`).
#[doc(hidden)]
pub trait Mode<M: BulkInsert>: Sized + Send + 'static {
    fn insert<'b>(rows: &[M], on: Bind<'b>) -> BoxFuture<'b, Result<Self>>;
    fn extend(&mut self, more: Self);
    fn empty() -> Self;
}

impl<M: BulkInsert> Mode<M> for u64 {
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

/// Inserts `rows` in a savepoint of the transaction `engine` is in, so
/// that a failure leaves the transaction usable for finding the culprit.
async fn attempt<M: BulkInsert, Out: Mode<M>>(engine: &Engine, rows: &[M]) -> Result<Out> {
    engine
        .transaction(Out::insert(rows, Bind::Engine(engine)))
        .await
}

/// Finds the first row of `rows` that fails after the ones before it, by
/// halving; each successful half stays inserted (in the enclosing
/// savepoint), as it was when the whole chunk failed. Counting inserts
/// suffice: nothing needs to come back.
async fn culprit<M: BulkInsert>(engine: &Engine, rows: &[M]) -> (usize, Option<Error>) {
    let (mut start, mut end) = (0, rows.len());
    let mut error = None;
    while end - start > 1 {
        let middle = start + (end - start) / 2;
        match attempt::<M, u64>(engine, &rows[start..middle]).await {
            Err(e) => {
                error = Some(e);
                end = middle;
            }
            Ok(_) => start = middle,
        }
    }
    match attempt::<M, u64>(engine, &rows[start..end]).await {
        Err(e) => (start, Some(e)),
        Ok(_) => (start, error),
    }
}

async fn insert_all<M: BulkInsert, Out: Mode<M>>(engine: &Engine, rows: &[M]) -> Result<Out> {
    let per_statement = (MAX_BIND_PARAMETERS / M::PARAMETERS_PER_ROW.max(1)).max(1);
    let mut output = Out::empty();
    let mut offset = 0;
    for chunk in rows.chunks(per_statement) {
        match attempt::<M, Out>(engine, chunk).await {
            Ok(more) => output.extend(more),
            // Only a database error can be pinned on a row.
            Err(Error::Database(first)) => {
                let (index, error) = culprit(engine, chunk).await;
                let source = match error {
                    Some(e @ Error::Database(_)) => e,
                    _ => Error::Database(first),
                };
                return Err(Error::BatchRow {
                    index: offset + index,
                    source: Box::new(source),
                });
            }
            Err(other) => return Err(other),
        }
        offset += chunk.len();
    }
    Ok(output)
}

/// The whole batch in one transaction (a savepoint inside an open one).
/// Within it the engine's contextual connection is the transaction's, so
/// the statements run there; on a given connection that is the connection.
async fn run<M: BulkInsert, Out: Mode<M>>(bind: Bind<'_>, rows: Vec<M>) -> Result<Out> {
    if rows.is_empty() {
        return Ok(Out::empty());
    }
    match bind.resolve()? {
        Resolved::Connection(conn) => {
            let engine = conn.engine();
            conn.transaction(insert_all::<M, Out>(engine, &rows)).await
        }
        Resolved::Engine(engine) => {
            engine
                .transaction(insert_all::<M, Out>(&engine, &rows))
                .await
        }
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
    Q: diesel_async::methods::LoadQuery<'static, diesel_async::AsyncPgConnection, M>
        + Send
        + 'static,
    M: Send + 'static,
{
    Box::pin(Executor::new(query, on).all())
}
