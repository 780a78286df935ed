//! Running one statement on a raw connection: the lowest layer that
//! speaks SQL.
//!
//! It owns the [`Deadline`] of a statement (and of any wait for a
//! connection it needs), the server-side cancel of a statement that
//! outlives it, and the [`Statement`]s that run a diesel query: load all
//! rows, load some, execute and read the command tag. Everything above
//! (roots, engines, cursors, the executor) runs SQL through
//! [`run_statement`].
//!
//! Uses: `pool` (the raw connection), `wire` (error codes, tags, cancel).

use std::future::Future;
use std::marker::PhantomData;
use std::time::Duration;

use diesel::backend::Backend;
use diesel::deserialize::FromSqlRow;
use diesel::expression::QueryMetadata;
use diesel::pg::{Pg, PgQueryBuilder};
use diesel::query_builder::{AsQuery, AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::TypeMetadata;
// Public because diesel-async turns on diesel's third-party-backend
// feature, which it needs for the same bound on its `LoadQuery`.
use diesel::query_dsl::CompatibleType;
use diesel_async::methods::{ExecuteDsl, LoadQuery};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use futures_util::future::{BoxFuture, Either};
use futures_util::{FutureExt, StreamExt, TryStreamExt};
use tokio::time::Instant;

use crate::drive::drive;
use crate::error::{DatabaseError, Error, Result};
use crate::pool::{CANCEL_GRACE, PgConn, cancel_and_wait};
use crate::wire::{TxStatus, WireState};

/// `timeout` from now; one too long to add to an `Instant` (a caller's
/// `Duration::MAX` for "no limit") is taken as thirty years, as tokio's
/// own timers do, rather than panicking.
pub(crate) fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .unwrap_or_else(|| now + Duration::from_secs(30 * 365 * 86_400))
}

/// When a statement (and any wait for a connection it needs) must be done.
pub(crate) struct Deadline {
    at: Option<Instant>,
    timeout: Duration,
}

impl Deadline {
    pub(crate) fn new(timeout: Option<Duration>) -> Self {
        Deadline {
            at: timeout.map(deadline_after),
            timeout: timeout.unwrap_or_default(),
        }
    }

    pub(crate) fn none() -> Self {
        Deadline::new(None)
    }

    pub(crate) fn remaining(&self) -> Option<Duration> {
        self.at
            .map(|at| at.saturating_duration_since(Instant::now()))
    }

    pub(crate) fn error(&self) -> Error {
        Error::QueryTimeout(self.timeout)
    }

    /// Awaits `fut`, failing with [`Error::QueryTimeout`] at the deadline.
    ///
    /// Not an `async fn`: one would keep `fut` twice, as its argument and
    /// in the state that awaits it (rustc does not overlap the two), and
    /// every statement's future carries the checkout's through here.
    pub(crate) fn wait<F: Future>(&self, fut: F) -> impl Future<Output = Result<F::Output>> {
        match self.at {
            None => Either::Left(fut.map(Ok)),
            Some(at) => Either::Right(
                tokio::time::timeout_at(at, fut).map(|timed| timed.map_err(|_| self.error())),
            ),
        }
    }
}

/// Whether a statement wrote, for read-your-writes with read replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Writes {
    /// As its command tag shows: a write unless the tag is `SELECT` (none,
    /// after a failure or a load cut short, may be one).
    ByTag,
    /// Its SQL shows a write, or it ran for its effect, whatever its tag:
    /// `WITH .. INSERT .. SELECT`, `CREATE TABLE .. AS` and `SELECT ..
    /// INTO` end with a `SELECT` tag, and so does a `set_config` that a
    /// later read of the scope must see.
    Yes,
    /// Its SQL shows a read (a row lock included), whatever its tag: a load
    /// cut short by a row limit (`first()`) ends with none.
    No,
}

impl Writes {
    /// Whether the statement that just ran on `wire` wrote.
    pub(crate) fn wrote(self, wire: &WireState) -> bool {
        match self {
            Writes::ByTag => wire.may_have_written(),
            Writes::Yes => true,
            Writes::No => false,
        }
    }
}

/// One statement, run on a raw connection.
pub(crate) trait Statement<R>: Send {
    /// Whether the statement starts with a message of the extended query
    /// protocol, in front of which a transaction's opening can go
    /// ([`crate::opening`]). A closure handed the raw connection may send a
    /// simple query first, which an opening cannot precede.
    const CARRIES_OPENING: bool = true;

    /// Whether the statement counts as a write for read-your-writes.
    fn writes(&self) -> Writes {
        Writes::ByTag
    }

    fn run<'c>(
        self,
        conn: &'c mut AsyncPgConnection,
        wire: &'c WireState,
    ) -> BoxFuture<'c, diesel::QueryResult<R>>
    where
        Self: 'c;
}

impl<R, F> Statement<R> for F
where
    F: for<'c> FnOnce(&'c mut AsyncPgConnection) -> BoxFuture<'c, diesel::QueryResult<R>> + Send,
{
    const CARRIES_OPENING: bool = false;

    /// Whatever the raw connection is used for may write.
    fn writes(&self) -> Writes {
        Writes::Yes
    }

    fn run<'c>(
        self,
        conn: &'c mut AsyncPgConnection,
        _: &'c WireState,
    ) -> BoxFuture<'c, diesel::QueryResult<R>>
    where
        Self: 'c,
    {
        self(conn)
    }
}

/// Waits for the `ReadyForQuery` that follows a statement's error, up to
/// the statement's deadline and [`CANCEL_GRACE`] past it (or past now):
/// whether it came. A server, or a network, gone silent after the error
/// leaves the statement in flight, its connection's state unknown, rather
/// than its caller waiting past its timeout for as long as TCP takes to
/// notice.
async fn settle_within(
    driver: &crate::drive::Driver,
    wire: &WireState,
    deadline: &Deadline,
) -> bool {
    let settle = drive(driver, wire.settle());
    match deadline.at {
        None => {
            settle.await;
            true
        }
        Some(at) => tokio::time::timeout_at(at.max(Instant::now()) + CANCEL_GRACE, settle)
            .await
            .is_ok(),
    }
}

/// Runs `statement` on `pg`, cancelling it on the server at the deadline.
///
/// On timeout the cancel request goes out and the statement is still
/// awaited to its end, so the connection is in a known state afterwards
/// and the cancel cannot hit a later statement. If it has not ended
/// [`CANCEL_GRACE`] later (the cancel was lost), the timeout error comes
/// anyway and the connection stays marked as interrupted: given back, it
/// is closed (a second cancel would be lost too); kept by a connection, it
/// is resynchronised before its next statement.
///
/// `opening` is a transaction's `BEGIN` that has not reached the server
/// yet: it goes in front of the statement ([`crate::opening`]), or on its
/// own before a statement that cannot carry it, and is cleared once the
/// server has run it.
pub(crate) async fn run_statement<R, S: Statement<R>>(
    pg: &mut PgConn,
    deadline: &Deadline,
    statement: S,
    opening: &mut Option<String>,
) -> Result<R> {
    if let Some(begin) = opening.as_deref() {
        if S::CARRIES_OPENING {
            pg.wire.arm_opening(begin);
        } else {
            // Boxed: rare (a closure's statement), and large.
            let sent = Box::pin(pg.control(begin)).await;
            pg.settle_opening(opening);
            sent?;
        }
    }
    pg.start_statement();
    let PgConn {
        conn,
        driver,
        wire,
        addr,
        in_flight,
        cancel_lost,
        ..
    } = pg;
    let sent_before = wire.bytes_sent();
    let token = deadline.at.map(|_| conn.cancel_token());
    let mut fut = std::pin::pin!(drive(driver, statement.run(conn, wire)));
    let result = 'run: {
        let result = match deadline.at {
            None => fut.await,
            Some(at) => {
                tokio::select! {
                    biased;
                    result = &mut fut => result,
                    _ = tokio::time::sleep_until(at) => {
                        let token = token.expect("made when there is a deadline");
                        let Some(result) = cancel_and_wait(addr, &token, &mut fut).await else {
                            tracing::warn!(
                                target: "gino",
                                "a timed-out statement still runs {CANCEL_GRACE:?} after its \
                                 cancel request (lost?): giving up on its connection"
                            );
                            *cancel_lost = true;
                            break 'run Err(deadline.error());
                        };
                        if result.is_err() && wire.error_code().as_deref() == Some("57014") {
                            if Box::pin(settle_within(driver, wire, deadline)).await {
                                *in_flight = false;
                            }
                            break 'run Err(deadline.error());
                        }
                        result
                    }
                }
            }
        };
        // Until the server's ReadyForQuery arrives, the connection's
        // transaction status is that of before the error. A failure the
        // server did not report (a row diesel cannot decode, a message
        // tokio-postgres did not expect) may come while the reply still
        // streams in, with no error to wait for: the statement stays in
        // flight, and the next use of the connection syncs with the server
        // first. Boxed: rare, and its timer would grow every statement's
        // future.
        let ended = match &result {
            Ok(_) => true,
            Err(_) if wire.bytes_sent() == sent_before => true,
            Err(_) if wire.error_seen() => Box::pin(settle_within(driver, wire, deadline)).await,
            Err(_) => false,
        };
        if ended {
            *in_flight = false;
        }
        result.map_err(|e| {
            if wire.copy_in_refused() {
                // Not a lost connection: trying again fails the same way.
                let refused = DatabaseError::refused("0A000", crate::wire::COPY_IN_REFUSED);
                return Error::Database(Box::new(refused));
            }
            let error = Error::from_diesel(e, wire.error_code());
            if error.is_connection_lost() && wire.bytes_sent() == sent_before {
                Error::NotSent(Box::new(error))
            } else {
                error
            }
        })
    };
    if S::CARRIES_OPENING && opening.is_some() {
        // Gone out with the statement: the server ran the `BEGIN` if the
        // statement succeeded (the two are one batch), and otherwise if a
        // transaction is open now. Unknown while the statement's end is.
        let went_out = !wire.withdraw_opening();
        if went_out && !*in_flight && (result.is_ok() || wire.tx_status() != TxStatus::Idle) {
            *opening = None;
        }
    }
    result
}

/// A diesel query that loads rows as `U`: exactly the queries
/// diesel-async's `LoadQuery` accepts for PostgreSQL (every `SELECT`,
/// table, `sql_query` and `RETURNING` statement), under a name gino can
/// add to. gino may run such a query twice: a read that a read replica was
/// answering when it went away (or cancelled for a conflict with its
/// recovery) runs again on the primary; see
/// [`Engine::routing`](crate::Engine::routing).
///
/// Write it where you would write diesel-async's `LoadQuery` bound in code
/// generic over queries that gino runs:
///
/// ```
/// # async fn demo() -> gino::Result<()> {
/// use gino::prelude::*;
///
/// async fn count_rows<Q>(query: Q) -> gino::Result<usize>
/// where
///     Q: gino::Loadable<'static, i32> + diesel::query_builder::QueryFragment<diesel::pg::Pg>
///         + diesel::query_builder::QueryId,
/// {
///     Ok(query.gino().all::<i32>().await?.len())
/// }
///
/// use diesel::dsl::sql;
/// use diesel::sql_types::Integer;
/// assert_eq!(count_rows(diesel::select(sql::<Integer>("generate_series(1, 4)"))).await?, 4);
/// # Ok(()) }
/// # gino_testkit::doc::run(demo);
/// ```
pub trait Loadable<'q, U>:
    AsQuery<Query: Send + 'q> + LoadQuery<'q, AsyncPgConnection, U> + Send + 'q
{
    /// Loads the rows of `query` (at most `limit`, reading no further)
    /// without consuming it.
    ///
    /// The query is diesel's `AsQuery::Query` rather than a type of this
    /// trait's own: a future that holds it is then `Send` whatever
    /// lifetimes its binds borrow (a projection through this trait, whose
    /// lifetime parameter rustc erases inside futures, makes an `async`
    /// block awaiting it fail with "implementation of `Send` is not general
    /// enough").
    #[doc(hidden)]
    fn load_lent<'c>(
        query: &'c mut <Self as AsQuery>::Query,
        limit: Option<usize>,
        conn: &'c mut AsyncPgConnection,
    ) -> impl Future<Output = diesel::QueryResult<Vec<U>>> + Send + 'c
    where
        Self: 'c;
}

impl<'q, Q, U, ST> Loadable<'q, U> for Q
where
    Q: AsQuery + Send + 'q,
    Q::Query: QueryFragment<Pg> + QueryId + Send + 'q,
    Q::SqlType: CompatibleType<U, Pg, SqlType = ST>,
    U: FromSqlRow<ST, Pg> + Send + 'static,
    Pg: QueryMetadata<Q::SqlType>,
    ST: 'static,
{
    fn load_lent<'c>(
        query: &'c mut Q::Query,
        limit: Option<usize>,
        conn: &'c mut AsyncPgConnection,
    ) -> impl Future<Output = diesel::QueryResult<Vec<U>>> + Send + 'c
    where
        Q: 'c,
    {
        let query = Lent(query);
        async move {
            let Some(limit) = limit else {
                return query.load(conn).await;
            };
            let stream = query.load_stream(conn).await?;
            futures_util::pin_mut!(stream);
            let mut rows = Vec::with_capacity(limit);
            while rows.len() < limit {
                match stream.try_next().await? {
                    Some(row) => rows.push(row),
                    None => return Ok(rows),
                }
            }
            // Rows past the limit come only where the protocol's row limit
            // did not reach the statement's `Execute` (a caller of this
            // trait, or a type lookup diesel ran first that took it). The
            // server then computes every row, and a later one may fail it:
            // the statement failed, and inside a transaction the
            // transaction with it, so its error must not be dropped with
            // the rows. A later row that only fails to decode is the
            // caller's to skip.
            while let Some(later) = stream.next().await {
                match later {
                    Err(diesel::result::Error::DeserializationError(_)) | Ok(_) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(rows)
        }
    }
}

/// A query lent to one run, so that it is still there for another: the
/// same SQL, binds and prepared-statement identity as the query itself.
struct Lent<'a, Q>(&'a mut Q);

// Every method is passed on, defaults included: a query may override one
// (gino's `KeepPrepared` says it is safe to cache; `CachedByText` names its
// statement by its text), and the lent query must behave exactly as it.
impl<Q: QueryId> QueryId for Lent<'_, Q> {
    type QueryId = Q::QueryId;
    const HAS_STATIC_QUERY_ID: bool = Q::HAS_STATIC_QUERY_ID;
    const IS_WINDOW_FUNCTION: bool = Q::IS_WINDOW_FUNCTION;

    fn query_id() -> Option<std::any::TypeId> {
        Q::query_id()
    }
}

impl<Q: QueryFragment<Pg>> QueryFragment<Pg> for Lent<'_, Q> {
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, Pg>) -> diesel::QueryResult<()> {
        self.0.walk_ast(pass)
    }

    fn to_sql(&self, out: &mut PgQueryBuilder, backend: &Pg) -> diesel::QueryResult<()> {
        self.0.to_sql(out, backend)
    }

    fn collect_binds<'b>(
        &'b self,
        out: &mut <Pg as Backend>::BindCollector<'b>,
        metadata_lookup: &mut <Pg as TypeMetadata>::MetadataLookup,
        backend: &'b Pg,
    ) -> diesel::QueryResult<()> {
        self.0.collect_binds(out, metadata_lookup, backend)
    }

    fn is_safe_to_cache_prepared(&self, backend: &Pg) -> diesel::QueryResult<bool> {
        self.0.is_safe_to_cache_prepared(backend)
    }

    fn is_noop(&self, backend: &Pg) -> diesel::QueryResult<bool> {
        self.0.is_noop(backend)
    }
}

impl<Q: Query> Query for Lent<'_, Q> {
    type SqlType = Q::SqlType;
}

/// A statement that can run again after a run that failed: a read whose
/// replica went away runs again on the primary.
pub(crate) trait Reread<R>: Statement<R> {
    fn run_again<'c>(
        &'c mut self,
        conn: &'c mut AsyncPgConnection,
        wire: &'c WireState,
    ) -> BoxFuture<'c, diesel::QueryResult<R>>;
}

/// One run of a [`Reread`] statement that leaves it for another.
pub(crate) struct Again<'s, S>(pub(crate) &'s mut S);

impl<R, S: Reread<R>> Statement<R> for Again<'_, S> {
    fn writes(&self) -> Writes {
        self.0.writes()
    }

    fn run<'c>(
        self,
        conn: &'c mut AsyncPgConnection,
        wire: &'c WireState,
    ) -> BoxFuture<'c, diesel::QueryResult<R>>
    where
        Self: 'c,
    {
        self.0.run_again(conn, wire)
    }
}

/// Loads the rows of a query: all of them, or at most `limit` (reading no
/// further, so that a query matching millions of rows by mistake is not
/// loaded to find out it matched more than one).
pub(crate) struct Load<Q: AsQuery, U> {
    query: Q::Query,
    limit: Option<u32>,
    /// What its SQL shows ([`Statement::writes`]).
    writes: Writes,
    rows: PhantomData<fn() -> U>,
}

impl<Q: AsQuery, U> Load<Q, U> {
    pub(crate) fn all(query: Q) -> Self {
        Load::new(query, None)
    }

    pub(crate) fn some(query: Q, limit: u32) -> Self {
        Load::new(query, Some(limit))
    }

    /// The query to load.
    pub(crate) fn query(&self) -> &Q::Query {
        &self.query
    }

    pub(crate) fn into_query(self) -> Q::Query {
        self.query
    }

    /// Counts as a write for read-your-writes as `writes` says
    /// ([`Statement::writes`]).
    pub(crate) fn writing(self, writes: Writes) -> Self {
        Load { writes, ..self }
    }

    fn new(query: Q, limit: Option<u32>) -> Self {
        Load {
            query: query.as_query(),
            limit,
            writes: Writes::ByTag,
            rows: PhantomData,
        }
    }
}

impl<Q: AsQuery, U> Load<Q, U> {
    /// One run: with a limit, the server is asked for that many rows only
    /// (the protocol's row limit, as asyncpg's `fetchrow`, which GINO's
    /// `first` uses), so that it neither computes nor sends the rest.
    // Not an `async fn`: its future would capture `'q` (the query's
    // lifetime) too, and could not be boxed for as long as it borrows.
    #[allow(clippy::manual_async_fn)]
    fn load<'q, 'c>(
        query: &'c mut Q::Query,
        limit: Option<u32>,
        conn: &'c mut AsyncPgConnection,
        wire: &'c WireState,
    ) -> impl Future<Output = diesel::QueryResult<Vec<U>>> + Send + 'c
    where
        Q: Loadable<'q, U> + 'c,
        U: 'c,
    {
        async move {
            let _limit = limit.map(|rows| wire.limit_rows(rows));
            Q::load_lent(query, limit.map(|rows| rows as usize), conn).await
        }
    }
}

impl<'q, Q: Loadable<'q, U>, U> Statement<Vec<U>> for Load<Q, U> {
    fn writes(&self) -> Writes {
        self.writes
    }

    fn run<'c>(
        self,
        conn: &'c mut AsyncPgConnection,
        wire: &'c WireState,
    ) -> BoxFuture<'c, diesel::QueryResult<Vec<U>>>
    where
        Self: 'c,
    {
        let Load {
            mut query, limit, ..
        } = self;
        async move { Self::load(&mut query, limit, conn, wire).await }.boxed()
    }
}

impl<'q, Q: Loadable<'q, U>, U> Reread<Vec<U>> for Load<Q, U> {
    fn run_again<'c>(
        &'c mut self,
        conn: &'c mut AsyncPgConnection,
        wire: &'c WireState,
    ) -> BoxFuture<'c, diesel::QueryResult<Vec<U>>> {
        Self::load(&mut self.query, self.limit, conn, wire).boxed()
    }
}

/// Executes a statement; yields the number of rows it affected or returned.
pub(crate) struct Execute<Q>(pub(crate) Q);

impl<Q> Statement<usize> for Execute<Q>
where
    Q: ExecuteDsl<AsyncPgConnection> + Send,
{
    /// A statement run for its effect (`status()`), not its rows.
    fn writes(&self) -> Writes {
        Writes::Yes
    }

    fn run<'c>(
        self,
        conn: &'c mut AsyncPgConnection,
        _: &'c WireState,
    ) -> BoxFuture<'c, diesel::QueryResult<usize>>
    where
        Self: 'c,
    {
        self.0.execute(conn)
    }
}

/// Runs a statement and picks up its command tag from the wire: diesel
/// returns rows or a count, never the tag.
pub(crate) struct Tagged<S>(pub(crate) S);

impl<R: Send + 'static, S: Statement<R>> Statement<(R, Option<String>)> for Tagged<S> {
    const CARRIES_OPENING: bool = S::CARRIES_OPENING;

    fn writes(&self) -> Writes {
        self.0.writes()
    }

    fn run<'c>(
        self,
        conn: &'c mut AsyncPgConnection,
        wire: &'c WireState,
    ) -> BoxFuture<'c, diesel::QueryResult<(R, Option<String>)>>
    where
        Self: 'c,
    {
        self.0
            .run(conn, wire)
            .map(move |r| r.map(|value| (value, wire.tag())))
            .boxed()
    }
}
