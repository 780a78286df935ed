//! Server-side cursors: `iterate()` reads a large result in batches
//! instead of loading it whole (GINO's `iterate` and `Cursor`).
//!
//! PostgreSQL declares cursors only for queries (`SELECT`, `VALUES`,
//! `TABLE`, a `WITH` that changes nothing). Any other statement that
//! `iterate()` is given (`INSERT ... RETURNING`, a `DELETE ... RETURNING`,
//! a statement with no rows at all) runs whole when the cursor is opened,
//! as the server runs such statements whole even behind asyncpg's portal
//! under GINO, and the cursor hands out its rows from memory.
//!
//! Uses: `root` (the transaction's connection), `context` (where the code
//! reading a cursor is), `statement`, `lex` (what is code, when telling
//! queries from other statements).

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel_async::AsyncPgConnection;
use diesel_async::methods::LoadQuery;
use futures_util::Stream;

use crate::context::Stack;
use crate::error::{Error, Result};
use crate::lex;
use crate::root::{Access, Root};
use crate::statement::{Execute, Load, Loadable, Statement, Writes};

/// How many rows a cursor fetches per round trip unless told otherwise.
pub const DEFAULT_PREFETCH: usize = 100;

/// The most rows one `FETCH` or `MOVE` can name: PostgreSQL's grammar
/// takes a 32-bit count, so larger requests go in steps of this many.
const MOST_PER_COMMAND: usize = i32::MAX as usize;

/// `DECLARE <name> NO SCROLL CURSOR FOR <query>`, with the query's binds.
struct Declare<Q> {
    name: String,
    query: Q,
}

impl<Q: QueryFragment<Pg>> QueryFragment<Pg> for Declare<Q> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> diesel::QueryResult<()> {
        // Each cursor has its own name, so caching the statement would only
        // fill the cache.
        out.unsafe_to_cache_prepared();
        out.push_sql("DECLARE ");
        out.push_identifier(&self.name)?;
        out.push_sql(" NO SCROLL CURSOR FOR ");
        self.query.walk_ast(out.reborrow())
    }
}

impl<Q> QueryId for Declare<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

/// `FETCH`/`MOVE` on a cursor; a `FETCH` yields rows of the declared
/// query's SQL type `ST`, so they load as the query's rows would. Public
/// only because [`Cursor`]'s bounds name it.
#[doc(hidden)]
pub struct Command<ST> {
    sql: String,
    sql_type: PhantomData<fn() -> ST>,
}

impl<ST> QueryFragment<Pg> for Command<ST> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> diesel::QueryResult<()> {
        out.unsafe_to_cache_prepared();
        out.push_sql(&self.sql);
        Ok(())
    }
}

impl<ST> QueryId for Command<ST> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<ST: 'static> Query for Command<ST> {
    type SqlType = ST;
}

impl<ST, Conn> diesel::query_dsl::RunQueryDsl<Conn> for Command<ST> {}

struct Fetch<ST, U>(Command<ST>, PhantomData<fn() -> U>);

impl<ST, U> Statement<Vec<U>> for Fetch<ST, U>
where
    ST: Send + 'static,
    Command<ST>: LoadQuery<'static, AsyncPgConnection, U>,
    U: Send + 'static,
{
    fn run<'c>(
        self,
        conn: &'c mut AsyncPgConnection,
        _: &'c crate::wire::WireState,
    ) -> futures_util::future::BoxFuture<'c, diesel::QueryResult<Vec<U>>>
    where
        Self: 'c,
    {
        Box::pin(diesel_async::RunQueryDsl::load(self.0, conn))
    }
}

/// A cursor's step that marks the cursor as [moving](Cursor::moving)
/// once it is handed its connection, not before: a step still waiting for
/// the connection has moved nothing.
struct Marked<'a, S> {
    moving: &'a mut bool,
    command: S,
}

impl<R, S: Statement<R>> Statement<R> for Marked<'_, S> {
    const CARRIES_OPENING: bool = S::CARRIES_OPENING;

    fn writes(&self) -> Writes {
        self.command.writes()
    }

    fn run<'c>(
        self,
        conn: &'c mut AsyncPgConnection,
        wire: &'c crate::wire::WireState,
    ) -> futures_util::future::BoxFuture<'c, diesel::QueryResult<R>>
    where
        Self: 'c,
    {
        *self.moving = true;
        self.command.run(conn, wire)
    }
}

/// A server-side cursor over a query's rows, loaded as `U`: made by
/// `iterate()` inside a transaction.
///
/// Rows come in batches of [`prefetch`](Self::prefetch) rows; the whole
/// result is never in memory at once. The cursor lives as long as its
/// transaction: read it before the transaction ends. A statement that is
/// not a query (`INSERT ... RETURNING`) has no server-side cursor: it runs
/// whole when `iterate()` opens the cursor, which then reads from memory.
///
/// A call dropped while it reads (a `timeout` around `next()`, a lost
/// `select!` race), or failed, may leave the server's cursor moved past
/// rows nobody got: every later call that needs the server fails with
/// [`Error::CursorInterrupted`] rather than skip them. Rows already read
/// into memory are never lost, and are still returned.
///
/// ```
/// # async fn demo(db: &gino::Gino) -> gino::Result<()> {
/// use diesel::dsl::sql;
/// use diesel::sql_types::Integer;
///
/// db.transaction(async {
///     let mut cursor = db.iterate::<i32, _>(diesel::select(sql::<Integer>("generate_series(1, 1000)"))).await?;
///     let first = cursor.next().await?;          // Some(1)
///     let batch = cursor.many(10).await?;        // [2, ..., 11]
///     cursor.forward(100).await?;                // skips 12 ..= 111
///     assert_eq!(cursor.next().await?, Some(112));
///     Ok::<_, gino::Error>(())
/// })
/// .await?;
/// # Ok(()) }
/// # gino_testkit::doc::run(demo);
/// ```
pub struct Cursor<U, ST> {
    root: Arc<Root>,
    /// How the `DECLARE` came to the root: every `FETCH` and `MOVE` comes
    /// the same way, so one of a managed block waits out a block joined
    /// beside it rather than reading inside its savepoint.
    access: Access,
    name: String,
    buffer: VecDeque<U>,
    prefetch: usize,
    exhausted: bool,
    /// Set once a `FETCH` or `MOVE` goes to the connection, and left set
    /// if its future is dropped or it fails: the server went on to move
    /// the cursor (a transaction awaits an interrupted statement), so the
    /// rows it read are gone and reading on would silently skip them. A
    /// step that ends before its statement goes (it timed out waiting for
    /// the connection) leaves it clear: the cursor has not moved.
    moving: bool,
    timeout: Option<Duration>,
    /// [`MOST_PER_COMMAND`]; smaller in tests, which cannot make 2³¹ rows.
    per_command: usize,
    sql_type: PhantomData<fn() -> ST>,
}

impl<U, ST> std::fmt::Debug for Cursor<U, ST> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cursor")
            .field("name", &self.name)
            .field("buffered", &self.buffer.len())
            .field("exhausted", &self.exhausted)
            .finish()
    }
}

pub(crate) fn needs_transaction() -> Error {
    Error::TransactionMisuse(
        "iterate() reads through a server-side cursor, which PostgreSQL keeps only inside a \
         transaction: run it inside db.transaction(...) (or a begun transaction)"
            .to_owned(),
    )
}

/// Whether PostgreSQL can declare a cursor for the statement `sql`: a
/// query, after any leading parentheses, that changes no data (a `WITH`
/// holding an `INSERT`, `UPDATE`, `DELETE` or `MERGE` is refused with
/// 0A000) and creates no table (`SELECT ... INTO` is refused with 42601).
/// Only code counts: words inside literals, quoted identifiers, dollar
/// quotes and comments do not. Errs towards `false`: a query wrongly
/// judged a write is read whole, which is slower but correct.
pub(crate) fn can_declare(sql: &str) -> bool {
    let code = lex::code_only(sql);
    let rest = code.trim_start_matches(|c: char| c == '(' || c.is_whitespace());
    let first_word = |word: &str| {
        rest.get(..word.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(word))
            && !rest[word.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
    };
    let with = first_word("WITH");
    if !(with || ["SELECT", "VALUES", "TABLE"].into_iter().any(first_word)) {
        return false;
    }
    let upper = rest.to_ascii_uppercase();
    let mut words = upper
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| !word.is_empty());
    let mut before = "";
    !words.any(|word| {
        let writes = match word {
            "INTO" => true,
            // `FOR UPDATE` and `FOR NO KEY UPDATE` lock the rows a query
            // reads; a cursor may do that.
            "UPDATE" => with && !matches!(before, "FOR" | "KEY"),
            "INSERT" | "DELETE" | "MERGE" => with,
            _ => false,
        };
        before = word;
        writes
    })
}

/// Opens a cursor for `load`'s query on `root`, which must be inside a
/// transaction: a server-side cursor when `declarable` (see
/// [`can_declare`]), otherwise the statement's rows read whole.
pub(crate) async fn open<'q, Q, U>(
    (root, access): (Arc<Root>, Access),
    load: Load<Q, U>,
    declarable: bool,
    timeout: Option<Duration>,
) -> Result<Cursor<U, Q::SqlType>>
where
    Q: Loadable<'q, U>,
    Q::Query: QueryFragment<Pg>,
    U: Send + 'static,
{
    static NEXT: AtomicU64 = AtomicU64::new(1);
    // One time limit for the wait for the connection and the statement.
    let deadline = root.engine.deadline(timeout);
    if !root.in_transaction(&deadline).await? {
        return Err(needs_transaction());
    }
    let left = deadline.remaining();
    let (name, buffer, exhausted) = if declarable {
        let name = format!("gino_cursor_{}", NEXT.fetch_add(1, Ordering::Relaxed));
        let declare = Declare {
            name: name.clone(),
            query: load.into_query(),
        };
        root.run_as(access, left, Execute(declare)).await?;
        (name, VecDeque::new(), false)
    } else {
        let rows = root.run_as(access, left, load).await?;
        (String::new(), rows.into(), true)
    };
    Ok(Cursor {
        root,
        access,
        name,
        buffer,
        prefetch: DEFAULT_PREFETCH,
        exhausted,
        moving: false,
        per_command: MOST_PER_COMMAND,
        timeout,
        sql_type: PhantomData,
    })
}

impl<U, ST> Cursor<U, ST>
where
    ST: Send + 'static,
    Command<ST>: LoadQuery<'static, AsyncPgConnection, U>,
    U: Send + 'static,
{
    /// Rows fetched per round trip by [`next`](Self::next) and the stream
    /// (default [`DEFAULT_PREFETCH`]).
    ///
    /// ```
    /// # async fn demo(conn: &gino::Connection) -> gino::Result<()> {
    /// use diesel::dsl::sql;
    /// use diesel::sql_types::Integer;
    /// let tx = conn.begin().await?;
    /// let query = diesel::select(sql::<Integer>("generate_series(1, 10)"));
    /// let mut cursor = conn.iterate::<i32, _>(query).await?.prefetch(5);
    /// let before = conn.stats().statements;
    /// for _ in 0..5 {
    ///     cursor.next().await?;
    /// }
    /// assert_eq!(conn.stats().statements, before + 1); // one FETCH of 5 rows
    /// tx.commit().await?;
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn prefetch(mut self, rows: usize) -> Self {
        self.prefetch = rows.max(1);
        self
    }

    fn command(&self, verb: &str, count: usize) -> Command<ST> {
        Command {
            sql: format!("{verb} {count} FROM \"{}\"", self.name.replace('"', "\"\"")),
            sql_type: PhantomData,
        }
    }

    /// How a step comes to the connection: as the cursor was opened,
    /// unless the code reading it is in a managed block of the cursor's
    /// connection now (one nested in the block it was opened in, or one
    /// around the manual transaction it was opened in, or the block around
    /// the one it was opened in, which has ended): that block waits for the
    /// step, so the step must not wait for the block, and runs as the
    /// block's statements do.
    fn access_now(&self) -> Access {
        if let Access::Contextual(_) = self.access
            && let Some(found) = Stack::find_access(self.root.engine.id())
            && Arc::ptr_eq(&found.root, &self.root)
        {
            return found.access;
        }
        self.access
    }

    /// Runs a `FETCH` or `MOVE`, keeping [`moving`](Self::moving) set
    /// from when it goes to the connection until it ends.
    async fn step<R>(&mut self, command: impl Statement<R>) -> Result<R> {
        if self.moving {
            return Err(Error::CursorInterrupted);
        }
        let access = self.access_now();
        let marked = Marked {
            moving: &mut self.moving,
            command,
        };
        let result = self.root.run_as(access, self.timeout, marked).await;
        // Cleared only once the step is known to have ended: one that
        // timed out with its cancel lost may still move the cursor, and a
        // failed one leaves the transaction failed anyway.
        if result.is_ok() {
            self.moving = false;
        }
        result
    }

    async fn fetch(&mut self, count: usize) -> Result<Vec<U>> {
        if self.exhausted || count == 0 {
            return Ok(Vec::new());
        }
        let count = count.min(self.per_command);
        let command = self.command("FETCH FORWARD", count);
        let rows = self.step(Fetch(command, PhantomData)).await?;
        if rows.len() < count {
            self.exhausted = true;
        }
        Ok(rows)
    }

    /// The next row, or `None` at the end.
    ///
    /// ```
    /// # async fn demo(db: &gino::Gino) -> gino::Result<()> {
    /// use diesel::dsl::sql;
    /// use diesel::sql_types::Integer;
    /// let tx = db.begin().await?;
    /// let mut cursor = db.iterate::<i32, _>(diesel::select(sql::<Integer>("generate_series(1, 2)"))).await?;
    /// assert_eq!(cursor.next().await?, Some(1));
    /// assert_eq!(cursor.next().await?, Some(2));
    /// assert_eq!(cursor.next().await?, None);
    /// tx.commit().await?;
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub async fn next(&mut self) -> Result<Option<U>> {
        if self.buffer.is_empty() {
            let rows = self.fetch(self.prefetch).await?;
            self.buffer.extend(rows);
        }
        Ok(self.buffer.pop_front())
    }

    /// Up to `n` next rows (fewer at the end).
    ///
    /// ```
    /// # async fn demo(db: &gino::Gino) -> gino::Result<()> {
    /// use diesel::dsl::sql;
    /// use diesel::sql_types::Integer;
    /// let tx = db.begin().await?;
    /// let mut cursor = db.iterate::<i32, _>(diesel::select(sql::<Integer>("generate_series(1, 5)"))).await?;
    /// assert_eq!(cursor.many(2).await?, [1, 2]);
    /// assert_eq!(cursor.many(10).await?, [3, 4, 5]);
    /// assert!(cursor.many(10).await?.is_empty());
    /// tx.commit().await?;
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub async fn many(&mut self, n: usize) -> Result<Vec<U>> {
        // Gathered in the buffer, not taken out first: a call dropped
        // half-way leaves the rows it had for the next.
        while self.buffer.len() < n && !self.exhausted {
            let rows = self.fetch(n - self.buffer.len()).await?;
            self.buffer.extend(rows);
        }
        let taken = n.min(self.buffer.len());
        Ok(self.buffer.drain(..taken).collect())
    }

    /// Skips `n` rows without reading them.
    ///
    /// ```
    /// # async fn demo(db: &gino::Gino) -> gino::Result<()> {
    /// use diesel::dsl::sql;
    /// use diesel::sql_types::Integer;
    /// let tx = db.begin().await?;
    /// let mut cursor = db.iterate::<i32, _>(diesel::select(sql::<Integer>("generate_series(1, 10)"))).await?;
    /// cursor.forward(3).await?;
    /// assert_eq!(cursor.next().await?, Some(4));
    /// cursor.forward(100).await?; // past the end
    /// assert_eq!(cursor.next().await?, None);
    /// tx.commit().await?;
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub async fn forward(&mut self, n: usize) -> Result<()> {
        let buffered = n.min(self.buffer.len());
        self.buffer.drain(..buffered);
        let mut rest = n - buffered;
        while rest > 0 && !self.exhausted {
            let step = rest.min(self.per_command);
            let command = self.command("MOVE FORWARD", step);
            let moved = self.step(Execute(command)).await?;
            // Moved past the end: reading on would cost a round trip for
            // nothing.
            if moved < step {
                self.exhausted = true;
            }
            rest -= step;
        }
        Ok(())
    }

    /// The remaining rows as a `futures` stream.
    ///
    /// ```
    /// # async fn demo(db: &gino::Gino) -> gino::Result<()> {
    /// use diesel::dsl::sql;
    /// use diesel::sql_types::Integer;
    /// use futures_util::TryStreamExt;
    ///
    /// let sum = db
    ///     .transaction(async {
    ///         let cursor = db.iterate::<i32, _>(diesel::select(sql::<Integer>("generate_series(1, 10)"))).await?;
    ///         cursor.into_stream().try_fold(0, |sum, n| async move { Ok(sum + n) }).await
    ///     })
    ///     .await?;
    /// assert_eq!(sum, 55);
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    ///
    /// The stream is `Unpin` (boxed once per cursor), so that
    /// `StreamExt::next` works on it as on any stream a library hands out:
    ///
    /// ```
    /// # async fn demo(db: &gino::Gino) -> gino::Result<()> {
    /// # use diesel::dsl::sql;
    /// # use diesel::sql_types::Integer;
    /// use futures_util::StreamExt;
    ///
    /// let tx = db.begin().await?;
    /// let cursor = db.iterate::<i32, _>(diesel::select(sql::<Integer>("generate_series(1, 3)"))).await?;
    /// let mut rows = cursor.into_stream();
    /// while let Some(n) = rows.next().await {
    ///     println!("{}", n?);
    /// }
    /// # drop(rows);
    /// tx.commit().await?;
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn into_stream(self) -> impl Stream<Item = Result<U>> + Send + Unpin
    where
        ST: Send,
    {
        Box::pin(futures_util::stream::try_unfold(
            self,
            |mut cursor| async move { Ok(cursor.next().await?.map(|row| (row, cursor))) },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::can_declare;
    use crate::prelude::*;
    use diesel::dsl::sql;
    use diesel::sql_types::Integer;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_text_is_judged_declarable_or_not_without_a_panic(
            sql in crate::lex::tests::sql_text()
        ) {
            let _ = can_declare(&sql);
        }
    }

    #[test]
    fn cursors_are_declared_for_queries_that_change_nothing() {
        for query in [
            "SELECT 1",
            "  select * from users",
            "(SELECT 1) UNION (SELECT 2)",
            "VALUES (1), (2)",
            "TABLE users",
            "-- a comment\nSELECT 1",
            "/* a comment */ SELECT 1",
            "WITH a AS (SELECT 1) SELECT * FROM a",
            "WITH inserted AS (SELECT 1) SELECT * FROM a_update, inserted",
            "SELECT * FROM users FOR UPDATE",
            "SELECT into_account FROM users",
            "WITH a AS (SELECT 'insert' AS \"update\") SELECT * FROM a",
            "SELECT 'it''s into' FROM users",
            "SELECT $$ insert into $$, $tag$ 'into $tag$ FROM users",
            r"WITH a AS (SELECT E'it\'s insert' AS w) SELECT * FROM a",
            "WITH a AS (SELECT 1 /* delete /* nested */ into */) SELECT * FROM a",
            "WITH a AS (SELECT 1 -- insert\n) SELECT * FROM a",
            "/* (*/ ( SELECT 1)",
            "WITH due AS (SELECT id FROM jobs) SELECT * FROM jobs FOR UPDATE",
            "WITH due AS (SELECT 1) SELECT * FROM jobs FOR NO KEY UPDATE SKIP LOCKED",
            "WITH due AS (SELECT 1) SELECT * FROM jobs FOR  /* */ UPDATE OF jobs",
        ] {
            assert!(can_declare(query), "{query}");
        }
        for statement in [
            "INSERT INTO users (name) VALUES ('a') RETURNING id",
            "UPDATE users SET name = 'b' RETURNING id",
            "DELETE FROM users RETURNING id",
            "WITH gone AS (DELETE FROM users RETURNING id) SELECT * FROM gone",
            "with moved as (insert into b select * from a returning *) select * from moved",
            "rollback",
            "SELECT * INTO TEMP copied FROM users",
            "WITH a AS (SELECT 1 AS n) SELECT n INTO copied FROM a",
            "WITH a AS (SELECT 'x') INSERT INTO b SELECT * FROM a RETURNING *",
            "WITH a AS (SELECT 1 FOR UPDATE) UPDATE b SET x = 1 RETURNING *",
            "SHOW search_path",
            "SELECTED",
            "",
            "-- only a comment",
            "/* unterminated",
        ] {
            assert!(!can_declare(statement), "{statement}");
        }
    }

    /// Counts past 2³¹ go in steps; with steps of 3 the same loops run on
    /// a result that fits in a test.
    #[tokio::test]
    async fn counts_larger_than_one_command_go_in_steps() {
        let (_db, engine) = crate::engine::tests::connected().await;
        let tx = engine.begin().await.expect("begin");
        let query = diesel::select(sql::<Integer>("generate_series(1, 20)"));
        let mut cursor = query
            .gino()
            .bind(&tx)
            .iterate::<i32>()
            .await
            .expect("cursor");
        cursor.per_command = 3;

        assert_eq!(cursor.many(8).await.unwrap(), (1..=8).collect::<Vec<_>>());
        assert!(cursor.buffer.is_empty() && !cursor.exhausted);
        cursor.forward(7).await.unwrap();
        assert_eq!(cursor.next().await.unwrap(), Some(16));
        // next() fetched 16 to 18 in one step of 3: 17 and 18 are buffered.
        cursor.forward(10).await.unwrap();
        assert!(cursor.exhausted, "a step that moved short ends the cursor");
        assert_eq!(cursor.next().await.unwrap(), None);
        tx.commit().await.expect("commit");
        engine.close().await;
    }
}
