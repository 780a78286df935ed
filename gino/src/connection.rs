//! `Connection`: GINO's `GinoConnection`, with reuse, laziness and release,
//! and [`Engine::acquire`], which makes one.
//!
//! A connection is a handle on a [`Root`]; acquiring one as reusable puts
//! its root on the task's reuse context, where later reusing acquires and
//! implicit queries find it.
//!
//! Uses: `root`, `context`, `engine`.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel_async::AsyncPgConnection;
use futures_util::future::BoxFuture;

use crate::context::{Registration, Stack};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::root::{Access, Root};
use crate::statement::Deadline;

impl Engine {
    /// Acquires a connection (GINO's `acquire`); chain options before
    /// `.await`: [`timeout`](Acquire::timeout), [`reuse`](Acquire::reuse),
    /// [`lazy`](Acquire::lazy), [`reusable`](Acquire::reusable).
    ///
    /// ```
    /// # async fn demo(engine: &gino::Engine) -> gino::Result<()> {
    /// let outer = engine.acquire().await?;
    /// let inner = engine.acquire().reuse(true).await?;   // shares outer's connection
    /// assert!(inner.is_reusing());
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn acquire(&self) -> Acquire<'_> {
        Acquire::new(self)
    }

    /// The newest reusable connection of this engine still held by the
    /// current task, as a reusing connection; `None` if there is none.
    ///
    /// ```
    /// # async fn demo(engine: &gino::Engine) -> gino::Result<()> {
    /// assert!(engine.current_connection().is_none());
    /// let conn = engine.acquire().await?;
    /// assert!(engine.current_connection().is_some());
    /// conn.release().await?;
    /// assert!(engine.current_connection().is_none());
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn current_connection(&self) -> Option<Connection> {
        Stack::find(self.id()).map(Connection::found)
    }
}

/// Options of [`Engine::acquire`], chained before `.await`.
///
/// ```
/// # async fn demo(engine: &gino::Engine) -> gino::Result<()> {
/// use std::time::Duration;
/// let conn = engine
///     .acquire()
///     .reuse(true)
///     .lazy(true)
///     .timeout(Duration::from_secs(2))
///     .await?;
/// conn.release().await?;
/// # Ok(()) }
/// # gino_testkit::doc::run(demo);
/// ```
#[must_use = "an acquire does nothing until awaited"]
pub struct Acquire<'a> {
    engine: Option<std::borrow::Cow<'a, Engine>>,
    timeout: Option<Duration>,
    query_timeout: Option<Duration>,
    reuse: bool,
    lazy: bool,
    reusable: bool,
}

impl<'a> Acquire<'a> {
    pub(crate) fn new(engine: &'a Engine) -> Self {
        Self::with(Some(std::borrow::Cow::Borrowed(engine)))
    }

    fn with(engine: Option<std::borrow::Cow<'a, Engine>>) -> Self {
        Acquire {
            engine,
            timeout: None,
            query_timeout: None,
            reuse: false,
            lazy: false,
            reusable: true,
        }
    }

    /// Longest wait for a pooled connection (default: the engine's
    /// `acquire_timeout`, or no limit). On a [`lazy`](Self::lazy)
    /// connection it bounds the borrow at its first query, where GINO
    /// ignores it.
    ///
    /// ```
    /// # async fn demo(url: &str) -> gino::Result<()> {
    /// use std::time::Duration;
    /// let options = gino::EngineOptions::new().max_size(1).acquire_timeout(Duration::from_secs(30));
    /// let engine = gino::create_engine(url, options).await?;
    /// let _busy = engine.acquire().await?; // the only connection
    /// let quick = engine.acquire().timeout(Duration::from_millis(50)).await;
    /// assert!(matches!(quick, Err(gino::Error::PoolTimeout(t)) if t == Duration::from_millis(50)));
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Default timeout of the queries run on this connection (default: the
    /// engine's [`timeout`](crate::EngineOptions::timeout)); a query's own
    /// `.timeout(...)` still wins. GINO's
    /// `conn.execution_options(timeout=...)`. It belongs to the connection
    /// returned, not to the raw connection: other connections reusing it
    /// keep their own.
    ///
    /// ```
    /// # async fn demo(engine: &gino::Engine) -> gino::Result<()> {
    /// use std::time::Duration;
    /// let conn = engine.acquire().query_timeout(Duration::from_millis(100)).await?;
    /// let slow = gino::text("SELECT pg_sleep(5)");
    /// let err = conn.status(slow).await.unwrap_err();
    /// assert!(matches!(err, gino::Error::QueryTimeout(t) if t == Duration::from_millis(100)));
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn query_timeout(mut self, timeout: Duration) -> Self {
        self.query_timeout = Some(timeout);
        self
    }

    /// Share the newest reusable connection of this engine in the current
    /// task instead of borrowing another, if there is one. A reusing
    /// connection is never itself reusable. Its statements run as the
    /// task's implicit ones would where each is made (GINO's `engine.all(q)`
    /// is `acquire(reuse=True)` then `.all(q)`): inside the transaction
    /// block they are made in, not in one that a future joined beside them
    /// opened on the same connection.
    ///
    /// ```
    /// # async fn demo(engine: &gino::Engine) -> gino::Result<()> {
    /// use diesel::dsl::sql;
    /// use diesel::sql_types::Integer;
    /// let pid = || diesel::select(sql::<Integer>("pg_backend_pid()"));
    /// let outer = engine.acquire().await?;
    /// let shared = engine.acquire().reuse(true).await?;
    /// let own = engine.acquire().reuse(false).await?;
    /// let outer_pid: i32 = outer.one(pid()).await?;
    /// assert_eq!(shared.one::<i32, _>(pid()).await?, outer_pid);
    /// assert_ne!(own.one::<i32, _>(pid()).await?, outer_pid);
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn reuse(mut self, reuse: bool) -> Self {
        self.reuse = reuse;
        self
    }

    /// Borrow from the pool only when the first query needs it.
    ///
    /// ```
    /// # async fn demo(engine: &gino::Engine) -> gino::Result<()> {
    /// let conn = engine.acquire().lazy(true).await?;
    /// assert!(!conn.has_raw_connection().await);
    /// conn.status(gino::text("SELECT 1")).await?; // borrows now
    /// assert!(conn.has_raw_connection().await);
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn lazy(mut self, lazy: bool) -> Self {
        self.lazy = lazy;
        self
    }

    /// Whether later reusing acquires in this task may share this
    /// connection (default `true`). With `false` (and no reuse) the
    /// connection is isolated.
    ///
    /// ```
    /// # async fn demo(engine: &gino::Engine) -> gino::Result<()> {
    /// let isolated = engine.acquire().reusable(false).await?;
    /// assert!(engine.current_connection().is_none());
    /// let next = engine.acquire().reuse(true).await?;
    /// assert!(!next.is_reusing()); // found nothing to share, so borrowed its own
    /// # drop(isolated);
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn reusable(mut self, reusable: bool) -> Self {
        self.reusable = reusable;
        self
    }

    async fn run(self) -> Result<Connection> {
        self.run_with_access().await.map(|(conn, _)| conn)
    }

    /// The connection, with how statements on it come to its root: as
    /// found in the context (inside the managed level of the scope it was
    /// found in), or as one of the caller's own.
    pub(crate) async fn run_with_access(self) -> Result<(Connection, Access)> {
        let engine = &*self.engine.ok_or(Error::Uninitialized)?;
        let timeout = self.timeout.or(engine.options().acquire_timeout);
        if self.reuse
            && let Some(found) = Stack::find_access(engine.id())
        {
            let mut conn = Connection::found(found.root);
            conn.query_timeout = self.query_timeout;
            if !self.lazy {
                conn.root.ensure_raw(self.timeout).await?;
            }
            return Ok((conn, found.access));
        }
        let started = Instant::now();
        let raw = if self.lazy {
            None
        } else {
            Some(engine.borrow(timeout, &Deadline::none()).await?)
        };
        let root = Arc::new(Root::new(engine.clone(), raw, timeout));
        if !self.lazy {
            root.usage.record_borrow(started.elapsed());
        }
        let registration = self
            .reusable
            .then(|| Stack::register(engine.id(), root.clone()));
        let conn = Connection {
            root,
            reusing: false,
            released: AtomicBool::new(false),
            registration: registration.map(|r| Mutex::new(Some(r))),
            query_timeout: self.query_timeout,
            found: false,
        };
        Ok((conn, Access::Explicit))
    }
}

impl Acquire<'static> {
    /// An acquire from `engine`, failing with `Uninitialized` without one.
    pub(crate) fn unbound_or(engine: Option<Engine>) -> Self {
        Self::with(engine.map(std::borrow::Cow::Owned))
    }
}

impl<'a> IntoFuture for Acquire<'a> {
    type Output = Result<Connection>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<Connection>> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}

/// What a [`Connection`] has done so far; see [`Connection::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionStats {
    /// Raw connections borrowed from the pool (a lazy connection borrows on
    /// its first query, and again after `release_raw`).
    pub borrows: u32,
    /// Time spent waiting for those borrows.
    pub borrow_wait: Duration,
    /// Statements run.
    pub statements: u64,
}

/// A database connection of an [`Engine`]: GINO's `GinoConnection`.
///
/// A `Connection` refers to zero or one raw connection: a lazy one borrows
/// from the pool on its first query, and [`release_raw`](Self::release_raw)
/// gives the raw connection back early while keeping this one usable.
/// Several `Connection`s can share one raw connection through
/// [`Acquire::reuse`]; the raw connection goes back to the pool when the
/// connection that borrowed it (the root) is released or dropped.
///
/// Dropping a connection releases it. A transaction still open then is
/// rolled back: by an explicit `ROLLBACK` on [`release`](Self::release), or
/// by closing the raw connection when the connection is dropped without
/// release (e.g. because its future was cancelled), so a connection never
/// goes back to the pool inside a transaction.
///
/// A statement whose future is dropped while it runs (a `select!`, a
/// timeout of the caller's own, a client that left) is not left running
/// for nobody: outside a transaction it is cancelled on the server if it
/// runs on past 100 ms, so the connection's next statement does not wait
/// out an abandoned one, and a connection given back meanwhile returns to
/// the pool once it has ended; inside a transaction it is awaited before
/// the next statement, since the transaction may go on, and cancelled if
/// the transaction's connection is given back.
///
/// ```
/// # async fn demo(engine: &gino::Engine) -> gino::Result<()> {
/// use diesel::dsl::sql;
/// use diesel::sql_types::Integer;
///
/// let conn = engine.acquire().await?;
/// let two: i32 = conn.scalar(diesel::select(sql::<Integer>("1 + 1"))).await?.unwrap();
/// assert_eq!(two, 2);
/// conn.release().await?;
/// # Ok(()) }
/// # gino_testkit::doc::run(demo);
/// ```
pub struct Connection {
    pub(crate) root: Arc<Root>,
    reusing: bool,
    released: AtomicBool,
    /// Its entry in the task's reuse context, until released; `None` for
    /// connections that never had one (reusing, lazy request connections),
    /// whose release then takes no lock.
    registration: Option<Mutex<Option<Registration>>>,
    /// Default timeout of queries run through this handle.
    query_timeout: Option<Duration>,
    /// Found in the task's context (`acquire().reuse(true)`,
    /// [`Engine::current_connection`]): its statements run as the
    /// context's implicit statements there would ([`Connection::access`]).
    found: bool,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("reusing", &self.reusing)
            .field("released", &self.is_released())
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// A reusing connection of `root`, found in the task's context.
    fn found(root: Arc<Root>) -> Self {
        let mut conn = Connection::reusing(root);
        conn.found = true;
        conn
    }

    /// How this connection's statements come to its root. One found in
    /// the context runs them as the context's implicit statements run
    /// where each is made: inside the block of the scope it runs in,
    /// waiting out a block that a future beside it opened on top, which
    /// the statement is no part of (GINO's `engine.all(q)` is
    /// `acquire(reuse=True)` then `.all(q)`). Any other runs them inside
    /// whatever is open on it, as the caller named it.
    pub(crate) fn access(&self) -> Access {
        if self.found
            && let Some(here) = Stack::find_access(self.engine().id())
            && Arc::ptr_eq(&here.root, &self.root)
        {
            return here.access;
        }
        Access::Explicit
    }

    pub(crate) fn reusing(root: Arc<Root>) -> Self {
        Connection {
            root,
            reusing: true,
            released: AtomicBool::new(false),
            registration: None,
            query_timeout: None,
            found: false,
        }
    }

    /// The default timeout of queries run on this connection, if it has
    /// one of its own ([`Acquire::query_timeout`]); else the engine's
    /// applies.
    ///
    /// ```
    /// # async fn demo(engine: &gino::Engine) -> gino::Result<()> {
    /// use std::time::Duration;
    /// let mut conn = engine.acquire().await?;
    /// assert_eq!(conn.query_timeout(), None);
    /// conn.set_query_timeout(Some(Duration::from_secs(2)));
    /// assert_eq!(conn.query_timeout(), Some(Duration::from_secs(2)));
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn query_timeout(&self) -> Option<Duration> {
        self.query_timeout
    }

    /// Sets or clears ([`None`]: the engine's applies again) the default
    /// timeout of queries run on this connection; see
    /// [`Acquire::query_timeout`].
    ///
    /// ```
    /// # async fn demo(engine: &gino::Engine) -> gino::Result<()> {
    /// use std::time::Duration;
    /// let mut conn = engine.acquire().await?;
    /// conn.set_query_timeout(Some(Duration::from_millis(100)));
    /// let err = conn.status(gino::text("SELECT pg_sleep(5)")).await.unwrap_err();
    /// assert!(matches!(err, gino::Error::QueryTimeout(_)));
    /// conn.set_query_timeout(None);
    /// conn.status(gino::text("SELECT pg_sleep(0.2)")).await?;
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn set_query_timeout(&mut self, timeout: Option<Duration>) {
        self.query_timeout = timeout;
    }

    /// The engine this connection belongs to.
    ///
    /// ```
    /// # async fn demo(engine: &gino::Engine) -> gino::Result<()> {
    /// let conn = engine.acquire().await?;
    /// // A reusing acquire on its engine finds `conn`.
    /// let shared = conn.engine().acquire().reuse(true).await?;
    /// assert!(shared.is_reusing());
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn engine(&self) -> &Engine {
        &self.root.engine
    }

    /// Whether this connection shares another connection's raw connection.
    ///
    /// ```
    /// # async fn demo(engine: &gino::Engine) -> gino::Result<()> {
    /// let outer = engine.acquire().reuse(true).await?; // nothing to reuse yet
    /// let inner = engine.acquire().reuse(true).await?;
    /// assert!(!outer.is_reusing());
    /// assert!(inner.is_reusing());
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn is_reusing(&self) -> bool {
        self.reusing
    }

    /// Whether this connection and `other` run on one raw connection: one
    /// reuses the other, or both reuse a third (GINO's
    /// `a.raw_connection is b.raw_connection`). Asks nothing of the
    /// server, and borrows nothing for a lazy connection.
    ///
    /// ```
    /// # async fn demo(engine: &gino::Engine) -> gino::Result<()> {
    /// let outer = engine.acquire().await?;
    /// let inner = engine.acquire().reuse(true).await?;
    /// assert!(inner.shares_raw_with(&outer));
    /// let held = &outer;
    /// engine
    ///     .transaction_with(|tx| async move {
    ///         assert!(tx.connection().shares_raw_with(held)); // reused
    ///         Ok::<_, gino::Error>(())
    ///     })
    ///     .await?;
    /// let other = engine.acquire().reuse(false).await?;
    /// assert!(!other.shares_raw_with(&inner));
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn shares_raw_with(&self, other: &Connection) -> bool {
        Arc::ptr_eq(&self.root, &other.root)
    }

    /// Whether this connection (or, for a reusing one, the connection it
    /// reuses) was released permanently.
    ///
    /// ```
    /// # async fn demo(engine: &gino::Engine) -> gino::Result<()> {
    /// let outer = engine.acquire().await?;
    /// let inner = engine.acquire().reuse(true).await?;
    /// assert!(!inner.is_released());
    /// outer.release().await?;
    /// assert!(outer.is_released());
    /// assert!(inner.is_released()); // the connection it reuses is gone
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn is_released(&self) -> bool {
        self.released.load(Ordering::Acquire) || self.root.is_released()
    }

    /// What this connection (with every connection reusing it) has done so
    /// far: borrows from the pool, the time spent waiting for them, and the
    /// statements run. The web extensions report it per request.
    ///
    /// ```
    /// # async fn demo(engine: &gino::Engine) -> gino::Result<()> {
    /// use diesel::dsl::sql;
    /// use diesel::sql_types::Integer;
    /// let conn = engine.acquire().lazy(true).await?;
    /// assert_eq!(conn.stats().borrows, 0);
    /// conn.one::<i32, _>(diesel::select(sql::<Integer>("1"))).await?;
    /// conn.one::<i32, _>(diesel::select(sql::<Integer>("2"))).await?;
    /// let stats = conn.stats();
    /// assert_eq!((stats.borrows, stats.statements), (1, 2));
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn stats(&self) -> ConnectionStats {
        let usage = &self.root.usage;
        ConnectionStats {
            borrows: usage.borrows.load(Ordering::Relaxed),
            borrow_wait: Duration::from_nanos(usage.borrow_wait_nanos.load(Ordering::Relaxed)),
            statements: usage.statements.load(Ordering::Relaxed),
        }
    }

    /// Whether a raw connection is currently borrowed (`false` for a lazy
    /// connection before its first query and after `release_raw`).
    ///
    /// ```
    /// # async fn demo(engine: &gino::Engine) -> gino::Result<()> {
    /// let conn = engine.acquire().lazy(true).await?;
    /// assert!(!conn.has_raw_connection().await);
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub async fn has_raw_connection(&self) -> bool {
        !self.is_released() && self.root.has_raw().await
    }

    pub(crate) fn check_usable(&self) -> Result<()> {
        if self.is_released() {
            Err(Error::ConnectionReleased)
        } else {
            Ok(())
        }
    }

    fn unregister(&self) {
        if let Some(registration) = &self.registration {
            registration
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
        }
    }

    /// Releases this connection for good (GINO's `release()`).
    ///
    /// For the connection that borrowed the raw connection, this rolls back
    /// a manual transaction left open, returns the raw connection to the
    /// pool and invalidates every connection reusing it. For a reusing
    /// connection it invalidates only this one. Using the connection
    /// afterwards, or releasing it again, is [`Error::ConnectionReleased`].
    /// Releasing the connection of a managed transaction from inside its
    /// block is [`Error::TransactionMisuse`], and changes nothing: the rest
    /// of the block would otherwise run outside the transaction. Releasing
    /// a reusing one ([`Transaction::connection`](crate::Transaction::connection)
    /// of a transaction on a connection, say) ends that handle only: the
    /// transaction goes on, and ends as its block or its manual
    /// `commit`/`rollback` says.
    ///
    /// ```
    /// # async fn demo(engine: &gino::Engine) -> gino::Result<()> {
    /// let conn = engine.acquire().await?;
    /// conn.release().await?;
    /// assert!(matches!(conn.release().await, Err(gino::Error::ConnectionReleased)));
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub async fn release(&self) -> Result<()> {
        self.check_usable()?;
        if !self.reusing {
            self.root.release(true, "release").await?;
        }
        if self.released.swap(true, Ordering::AcqRel) {
            return Err(Error::ConnectionReleased);
        }
        self.unregister();
        Ok(())
    }

    /// Returns the raw connection to the pool but keeps this connection
    /// usable: the next query borrows again (GINO's
    /// `release(permanent=False)`). A manual transaction still open is
    /// rolled back; inside a managed one (its block still running) this is
    /// [`Error::TransactionMisuse`], as is [`release`](Self::release).
    /// On a reusing connection this does nothing: the raw connection belongs
    /// to the connection it reuses.
    ///
    /// ```
    /// # async fn demo(engine: &gino::Engine) -> gino::Result<()> {
    /// let conn = engine.acquire().await?;
    /// conn.release_raw().await?;          // e.g. before slow, non-database work
    /// assert!(!conn.has_raw_connection().await);
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub async fn release_raw(&self) -> Result<()> {
        self.check_usable()?;
        if !self.reusing {
            self.root.release(false, "release_raw").await?;
        }
        Ok(())
    }

    /// Runs `f` with the raw diesel-async connection, for anything gino does
    /// not wrap, within the connection's [query timeout](Self::query_timeout).
    /// Leave no transaction open in it: a connection found inside a
    /// transaction on release is rolled back or closed.
    ///
    /// ```
    /// # async fn demo(conn: &gino::Connection) -> gino::Result<()> {
    /// use diesel_async::RunQueryDsl;
    /// let rows = conn
    ///     .run(|c| Box::pin(diesel::sql_query("SELECT 1").execute(c)))
    ///     .await?;
    /// assert_eq!(rows, 1);
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub async fn run<R, F>(&self, f: F) -> Result<R>
    where
        F: for<'c> FnOnce(&'c mut AsyncPgConnection) -> BoxFuture<'c, diesel::QueryResult<R>>
            + Send,
    {
        self.check_usable()?;
        self.root.run_as(self.access(), self.query_timeout, f).await
    }

    /// Runs this connection's future `fut` with this connection as the
    /// task's contextual connection: implicit execution inside (`DB.all`,
    /// `.gino()`, models) uses it. The connection is released when `fut`
    /// ends, also when it is dropped early. This is what the web extensions
    /// do for every request.
    ///
    /// ```
    /// # async fn demo(engine: &gino::Engine, db: &gino::Gino) -> gino::Result<()> {
    /// use diesel::dsl::sql;
    /// use diesel::sql_types::Integer;
    /// let conn = engine.acquire().lazy(true).await?;
    /// let n: Option<i32> = conn
    ///     .scope(async { db.scalar(diesel::select(sql::<Integer>("7"))).await })
    ///     .await?;
    /// assert_eq!(n, Some(7));
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub async fn scope<F: Future>(self, fut: F) -> F::Output {
        let engine_id = self.engine().id();
        let root = self.root.clone();
        let output = Stack::scope(engine_id, root, fut).await;
        // A reusing connection has nothing to give back. An error here
        // means someone released it already, or a block of another future
        // still runs on it: dropped below, it is released all the same,
        // and that block's next statement fails (`ConnectionReleased`).
        let _ = self.release().await;
        output
    }
}

impl Connection {
    /// A lazy connection of `engine`, not on any reuse context: what a web
    /// request's scope starts with. Borrows nothing until its first query.
    #[cfg(feature = "web")]
    pub(crate) fn lazy(engine: Engine) -> Connection {
        let timeout = engine.options().acquire_timeout;
        Connection {
            root: Arc::new(Root::new(engine, None, timeout)),
            reusing: false,
            released: AtomicBool::new(false),
            registration: None,
            query_timeout: None,
            found: false,
        }
    }

    /// Releases right away when that needs no round trip (nothing left
    /// open on the raw connection, or none held): what [`release`]
    /// (Self::release) does then. `false` leaves everything as it was, for
    /// `release` to roll back.
    #[cfg(feature = "web")]
    pub(crate) fn release_if_clean(&self) -> bool {
        if self.reusing || !self.root.release_if_clean() {
            return false;
        }
        self.released.store(true, Ordering::Release);
        self.unregister();
        true
    }

    /// Releases without awaiting, as dropping does: the raw connection
    /// goes back if it is clean and closes otherwise.
    pub(crate) fn release_now(&self) {
        self.unregister();
        if !self.reusing && !self.released.swap(true, Ordering::AcqRel) {
            self.root.release_now();
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.release_now();
    }
}
