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

use diesel_async::methods::{ExecuteDsl, LoadQuery};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use futures_util::future::BoxFuture;
use futures_util::{FutureExt, TryStreamExt};
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::pool::PgConn;
use crate::wire::WireState;

/// When a statement (and any wait for a connection it needs) must be done.
pub(crate) struct Deadline {
    at: Option<Instant>,
    timeout: Duration,
}

impl Deadline {
    pub(crate) fn new(timeout: Option<Duration>) -> Self {
        Deadline {
            at: timeout.map(|t| Instant::now() + t),
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
    pub(crate) async fn wait<F: Future>(&self, fut: F) -> Result<F::Output> {
        match self.at {
            None => Ok(fut.await),
            Some(at) => tokio::time::timeout_at(at, fut)
                .await
                .map_err(|_| self.error()),
        }
    }
}

/// One statement, run on a raw connection.
pub(crate) trait Statement<R>: Send {
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

/// How long a timed-out statement may take to end once its cancel request
/// went out. A cancel can be lost (PgBouncer 1.18 drops tokio-postgres's
/// cancel connection); past this the caller gets its timeout anyway.
pub(crate) const CANCEL_GRACE: Duration = Duration::from_secs(1);

/// Runs `statement` on `pg`, cancelling it on the server at the deadline.
///
/// On timeout the cancel request goes out and the statement is still
/// awaited to its end, so the connection is in a known state afterwards
/// and the cancel cannot hit a later statement. If it has not ended
/// [`CANCEL_GRACE`] later (the cancel was lost), the timeout error comes
/// anyway and the connection stays marked as interrupted: given back, it
/// is closed; kept by a connection, it is resynchronised before its next
/// statement.
pub(crate) async fn run_statement<R, S: Statement<R>>(
    pg: &mut PgConn,
    deadline: &Deadline,
    statement: S,
) -> Result<R> {
    let PgConn {
        conn,
        wire,
        addr,
        in_flight,
        ..
    } = pg;
    wire.begin_statement();
    let sent_before = wire.bytes_sent();
    let token = deadline.at.map(|_| conn.cancel_token());
    *in_flight = true;
    let mut fut = statement.run(conn, wire);
    let result = match deadline.at {
        None => fut.await,
        Some(at) => {
            tokio::select! {
                biased;
                result = &mut fut => result,
                _ = tokio::time::sleep_until(at) => {
                    let token = token.expect("made when there is a deadline");
                    let cancelled = tokio::time::timeout(CANCEL_GRACE, async {
                        // Boxed: connecting (TLS included) is a large state
                        // machine that every statement's future would
                        // otherwise carry inline, and move, for a rare path.
                        if let Err(e) = Box::pin(addr.cancel(&token)).await {
                            tracing::warn!(target: "gino", "could not cancel a timed-out query: {e}");
                        }
                        (&mut fut).await
                    })
                    .await;
                    let Ok(result) = cancelled else {
                        tracing::warn!(
                            target: "gino",
                            "a timed-out statement still runs {CANCEL_GRACE:?} after its cancel \
                             request (lost?): giving up on its connection"
                        );
                        return Err(deadline.error());
                    };
                    if result.is_err() && wire.error_code().as_deref() == Some("57014") {
                        wire.settle().await;
                        *in_flight = false;
                        return Err(deadline.error());
                    }
                    result
                }
            }
        }
    };
    if result.is_err() {
        // Until the server's ReadyForQuery arrives, the connection's
        // transaction status is that of before the error.
        wire.settle().await;
    }
    *in_flight = false;
    result.map_err(|e| {
        let error = Error::from_diesel(e, wire.error_code());
        if error.is_connection_lost() && wire.bytes_sent() == sent_before {
            Error::NotSent(Box::new(error))
        } else {
            error
        }
    })
}

/// Loads every row of a query.
pub(crate) struct LoadAll<'q, Q, U>(pub(crate) Q, pub(crate) PhantomData<fn(&'q ()) -> U>);
/// Loads at most the given number of rows of a query, reading no further.
pub(crate) struct LoadSome<'q, Q, U>(
    pub(crate) Q,
    pub(crate) usize,
    pub(crate) PhantomData<fn(&'q ()) -> U>,
);
/// Executes a statement; yields the row count and the command tag.
pub(crate) struct Execute<Q>(pub(crate) Q);

impl<'q, Q, U> Statement<Vec<U>> for LoadAll<'q, Q, U>
where
    Q: LoadQuery<'q, AsyncPgConnection, U> + Send + 'q,
    U: Send + 'static,
{
    fn run<'c>(
        self,
        conn: &'c mut AsyncPgConnection,
        _: &'c WireState,
    ) -> BoxFuture<'c, diesel::QueryResult<Vec<U>>>
    where
        Self: 'c,
    {
        self.0.load(conn).boxed()
    }
}

impl<'q, Q, U> Statement<Vec<U>> for LoadSome<'q, Q, U>
where
    Q: LoadQuery<'q, AsyncPgConnection, U> + Send + 'q,
    U: Send + 'static,
{
    fn run<'c>(
        self,
        conn: &'c mut AsyncPgConnection,
        _: &'c WireState,
    ) -> BoxFuture<'c, diesel::QueryResult<Vec<U>>>
    where
        Self: 'c,
    {
        let LoadSome(query, limit, _) = self;
        async move {
            let stream = query.load_stream(conn).await?;
            futures_util::pin_mut!(stream);
            let mut rows = Vec::with_capacity(limit);
            while rows.len() < limit {
                match stream.try_next().await? {
                    Some(row) => rows.push(row),
                    None => break,
                }
            }
            Ok(rows)
        }
        .boxed()
    }
}

/// Executes a statement and picks up its command tag from the wire.
impl<Q> Statement<(usize, Option<String>)> for Execute<Q>
where
    Q: ExecuteDsl<AsyncPgConnection> + Send,
{
    fn run<'c>(
        self,
        conn: &'c mut AsyncPgConnection,
        wire: &'c WireState,
    ) -> BoxFuture<'c, diesel::QueryResult<(usize, Option<String>)>>
    where
        Self: 'c,
    {
        self.0
            .execute(conn)
            .map(|r| r.map(|rows| (rows, wire.tag())))
            .boxed()
    }
}
