//! `Connection`: GINO's `GinoConnection`, with reuse, laziness and release.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use diesel_async::AsyncPgConnection;
use futures_util::future::BoxFuture;

use crate::context::{Registration, Stack};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::executor::{Bind, Deadline, Statement, run_statement};
use crate::pool::{PgConn, RawConn};
use crate::transaction::{Begin, ManagedTransaction, Origin};

/// The state of one underlying connection, shared by the connection that
/// borrowed it (the root) and every connection reusing it.
pub(crate) struct Root {
    pub(crate) engine: Engine,
    slot: tokio::sync::Mutex<Slot>,
    released: AtomicBool,
    /// Transaction levels whose managed scope was dropped (cancelled) while
    /// open; they are rolled back before the connection runs anything else.
    pending_rollbacks: Mutex<Vec<u64>>,
    acquire_timeout: Option<Duration>,
}

/// What sits behind the root's lock.
pub(crate) struct Slot {
    raw: Option<RawConn>,
    /// Ids of the open transaction levels, outermost first.
    pub(crate) levels: Vec<u64>,
}

impl Slot {
    pub(crate) fn has_raw(&self) -> bool {
        self.raw.is_some()
    }

    pub(crate) fn raw_if_any(&mut self) -> Option<&mut PgConn> {
        self.raw.as_mut().map(RawConn::get)
    }

    /// After a statement's future was dropped half-way, finds out with a
    /// round trip where the server stands, and rolls back a transaction the
    /// interrupted statement may have begun that no level accounts for.
    async fn resync(&mut self) {
        let untracked = self.levels.is_empty();
        let Some(pg) = self.raw_if_any() else { return };
        if !pg.in_flight {
            return;
        }
        if pg.control("SELECT 1").await.is_ok()
            && untracked
            && pg.wire.tx_status() != crate::wire::TxStatus::Idle
        {
            let _ = pg.control("ROLLBACK").await;
        }
    }

    /// The raw connection, borrowing one from the engine if this is lazy.
    pub(crate) async fn raw(&mut self, root: &Root, deadline: &Deadline) -> Result<&mut PgConn> {
        self.raw_waiting(root, root.acquire_timeout, deadline).await
    }

    /// [`raw`](Self::raw), waiting for the pool at most `acquire_timeout`.
    async fn raw_waiting(
        &mut self,
        root: &Root,
        acquire_timeout: Option<Duration>,
        deadline: &Deadline,
    ) -> Result<&mut PgConn> {
        if self.raw.is_none() {
            self.raw = Some(root.engine.borrow(acquire_timeout, deadline).await?);
        }
        Ok(self.raw.as_mut().expect("just filled").get())
    }

    /// Returns the raw connection (rolling back what is still open).
    async fn give_back(&mut self) {
        if let Some(mut raw) = self.raw.take() {
            raw.clean_up().await;
        }
        self.levels.clear();
    }
}

impl Root {
    pub(crate) fn new(
        engine: Engine,
        raw: Option<RawConn>,
        acquire_timeout: Option<Duration>,
    ) -> Self {
        Root {
            engine,
            slot: tokio::sync::Mutex::new(Slot {
                raw,
                levels: Vec::new(),
            }),
            released: AtomicBool::new(false),
            pending_rollbacks: Mutex::new(Vec::new()),
            acquire_timeout,
        }
    }

    pub(crate) fn is_released(&self) -> bool {
        self.released.load(Ordering::Acquire)
    }

    /// Queues the rollback of a transaction level; runs before the next use.
    pub(crate) fn defer_rollback(&self, level: u64) {
        self.pending_rollbacks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(level);
    }

    /// Locks the slot, after running deferred rollbacks.
    pub(crate) async fn lock(&self, deadline: &Deadline) -> Result<SlotGuard<'_>> {
        if self.is_released() {
            return Err(Error::ConnectionReleased);
        }
        let mut slot = SlotGuard {
            root: self,
            slot: deadline.wait(self.slot.lock()).await?,
        };
        slot.resync().await;
        let pending = std::mem::take(
            &mut *self
                .pending_rollbacks
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        let depth = pending
            .iter()
            .filter_map(|id| slot.levels.iter().position(|l| l == id))
            .min();
        if let Some(depth) = depth {
            if let Err(e) = crate::transaction::roll_back_to(&mut slot, depth).await {
                tracing::debug!(target: "gino", "rollback of an abandoned transaction failed: {e}");
            }
        }
        Ok(slot)
    }

    /// Marks the raw connection as holding session state (or not): while
    /// marked, it is closed instead of pooled when given back, also when
    /// the future using it is dropped.
    pub(crate) async fn hold_session_state(&self, held: bool) -> Result<()> {
        let deadline = Deadline::none();
        let mut slot = self.lock(&deadline).await?;
        slot.raw(self, &deadline).await?.holds_session_state = held;
        Ok(())
    }

    /// Whether a transaction (of gino's) is open on this connection.
    pub(crate) async fn in_transaction(&self) -> Result<bool> {
        Ok(!self.lock(&Deadline::none()).await?.levels.is_empty())
    }

    /// Runs one statement on this connection.
    pub(crate) async fn run<R, S: Statement<R>>(
        &self,
        timeout: Option<Duration>,
        statement: S,
    ) -> Result<R> {
        let deadline = Deadline::new(timeout.or(self.engine.options().timeout));
        let mut slot = self.lock(&deadline).await?;
        let pg = slot.raw(self, &deadline).await?;
        run_statement(pg, &deadline, statement).await
    }

    /// Gives the raw connection back; `permanent` also ends this root.
    async fn release(&self, permanent: bool) {
        if permanent {
            self.released.store(true, Ordering::Release);
        }
        let mut slot = self.slot.lock().await;
        slot.give_back().await;
        self.pending_rollbacks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

/// The locked slot of a root.
///
/// A root released or dropped while its slot is locked (say, by a query of
/// a connection reusing it) cannot give the raw connection back then; the
/// guard does it when the lock ends, so the raw connection does not wait for
/// every reusing connection to be dropped.
pub(crate) struct SlotGuard<'a> {
    root: &'a Root,
    slot: tokio::sync::MutexGuard<'a, Slot>,
}

impl std::ops::Deref for SlotGuard<'_> {
    type Target = Slot;

    fn deref(&self) -> &Slot {
        &self.slot
    }
}

impl std::ops::DerefMut for SlotGuard<'_> {
    fn deref_mut(&mut self) -> &mut Slot {
        &mut self.slot
    }
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        if self.root.is_released() {
            self.slot.raw.take();
            self.slot.levels.clear();
        }
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        // The raw connection's own drop decides whether it can go back to
        // the pool; levels left open make the server side non-idle, so such
        // a connection is closed rather than returned.
        self.slot.get_mut().raw.take();
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
/// ```
#[must_use = "an acquire does nothing until awaited"]
pub struct Acquire<'a> {
    engine: Option<std::borrow::Cow<'a, Engine>>,
    timeout: Option<Duration>,
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
            reuse: false,
            lazy: false,
            reusable: true,
        }
    }

    /// Longest wait for a pooled connection (default: the engine's
    /// `acquire_timeout`, or no limit).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Share the newest reusable connection of this engine in the current
    /// task instead of borrowing another, if there is one. A reusing
    /// connection is never itself reusable.
    pub fn reuse(mut self, reuse: bool) -> Self {
        self.reuse = reuse;
        self
    }

    /// Borrow from the pool only when the first query needs it.
    pub fn lazy(mut self, lazy: bool) -> Self {
        self.lazy = lazy;
        self
    }

    /// Whether later reusing acquires in this task may share this
    /// connection (default `true`). With `false` (and no reuse) the
    /// connection is isolated.
    pub fn reusable(mut self, reusable: bool) -> Self {
        self.reusable = reusable;
        self
    }

    async fn run(self) -> Result<Connection> {
        let engine = &*self.engine.ok_or(Error::Uninitialized)?;
        let timeout = self.timeout.or(engine.options().acquire_timeout);
        if self.reuse {
            if let Some(root) = Stack::find(engine.id()) {
                let conn = Connection::reusing(root);
                if !self.lazy {
                    conn.ensure_raw(self.timeout).await?;
                }
                return Ok(conn);
            }
        }
        let raw = if self.lazy {
            None
        } else {
            Some(engine.borrow(timeout, &Deadline::none()).await?)
        };
        let root = Arc::new(Root::new(engine.clone(), raw, timeout));
        let registration = self
            .reusable
            .then(|| Stack::register(engine.id(), root.clone()));
        Ok(Connection {
            root,
            reusing: false,
            released: AtomicBool::new(false),
            registration: Mutex::new(registration),
        })
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
/// ```
pub struct Connection {
    pub(crate) root: Arc<Root>,
    reusing: bool,
    released: AtomicBool,
    registration: Mutex<Option<Registration>>,
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
    pub(crate) fn reusing(root: Arc<Root>) -> Self {
        Connection {
            root,
            reusing: true,
            released: AtomicBool::new(false),
            registration: Mutex::new(None),
        }
    }

    /// The engine this connection belongs to.
    pub fn engine(&self) -> &Engine {
        &self.root.engine
    }

    /// Whether this connection shares another connection's raw connection.
    pub fn is_reusing(&self) -> bool {
        self.reusing
    }

    /// Whether this connection (or, for a reusing one, the connection it
    /// reuses) was released permanently.
    pub fn is_released(&self) -> bool {
        self.released.load(Ordering::Acquire) || self.root.is_released()
    }

    /// Whether a raw connection is currently borrowed (`false` for a lazy
    /// connection before its first query and after `release_raw`).
    ///
    /// ```
    /// # async fn demo(engine: &gino::Engine) -> gino::Result<()> {
    /// let conn = engine.acquire().lazy(true).await?;
    /// assert!(!conn.has_raw_connection().await);
    /// # Ok(()) }
    /// ```
    pub async fn has_raw_connection(&self) -> bool {
        !self.is_released() && self.root.slot.lock().await.has_raw()
    }

    pub(crate) fn check_usable(&self) -> Result<()> {
        if self.is_released() {
            Err(Error::ConnectionReleased)
        } else {
            Ok(())
        }
    }

    /// Borrows for a lazy root now, waiting for the pool at most
    /// `acquire_timeout` (default: the root's own acquire timeout).
    async fn ensure_raw(&self, acquire_timeout: Option<Duration>) -> Result<()> {
        let deadline = Deadline::none();
        let mut slot = self.root.lock(&deadline).await?;
        let timeout = acquire_timeout.or(self.root.acquire_timeout);
        slot.raw_waiting(&self.root, timeout, &deadline).await?;
        Ok(())
    }

    fn unregister(&self) {
        self.registration
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
    }

    /// Releases this connection for good (GINO's `release()`).
    ///
    /// For the connection that borrowed the raw connection, this rolls back
    /// a transaction left open, returns the raw connection to the pool and
    /// invalidates every connection reusing it. For a reusing connection it
    /// invalidates only this one. Using the connection afterwards, or
    /// releasing it again, is [`Error::ConnectionReleased`].
    ///
    /// ```
    /// # async fn demo(engine: &gino::Engine) -> gino::Result<()> {
    /// let conn = engine.acquire().await?;
    /// conn.release().await?;
    /// assert!(matches!(conn.release().await, Err(gino::Error::ConnectionReleased)));
    /// # Ok(()) }
    /// ```
    pub async fn release(&self) -> Result<()> {
        if self.released.swap(true, Ordering::AcqRel) || self.root.is_released() {
            return Err(Error::ConnectionReleased);
        }
        self.unregister();
        if !self.reusing {
            self.root.release(true).await;
        }
        Ok(())
    }

    /// Returns the raw connection to the pool but keeps this connection
    /// usable: the next query borrows again (GINO's
    /// `release(permanent=False)`). A transaction still open is rolled back.
    /// On a reusing connection this does nothing: the raw connection belongs
    /// to the connection it reuses.
    ///
    /// ```
    /// # async fn demo(engine: &gino::Engine) -> gino::Result<()> {
    /// let conn = engine.acquire().await?;
    /// conn.release_raw().await?;          // e.g. before slow, non-database work
    /// assert!(!conn.has_raw_connection().await);
    /// # Ok(()) }
    /// ```
    pub async fn release_raw(&self) -> Result<()> {
        self.check_usable()?;
        if !self.reusing {
            self.root.release(false).await;
        }
        Ok(())
    }

    /// Runs `f` with the raw diesel-async connection, for anything gino does
    /// not wrap. Leave no transaction open in it: a connection found inside a
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
    /// ```
    pub async fn run<R, F>(&self, f: F) -> Result<R>
    where
        F: for<'c> FnOnce(&'c mut AsyncPgConnection) -> BoxFuture<'c, diesel::QueryResult<R>>
            + Send,
    {
        self.check_usable()?;
        self.root.run(None, f).await
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
    /// ```
    pub async fn scope<F: Future>(self, fut: F) -> F::Output {
        let engine_id = self.engine().id();
        let root = self.root.clone();
        let output = Stack::scope(engine_id, root, None, fut).await;
        // A reusing connection has nothing to give back; an error here can
        // only mean someone released it already.
        let _ = self.release().await;
        output
    }

    /// Runs `fut` in a managed transaction on this connection (a savepoint
    /// if one is open already). See [`Transaction`](crate::Transaction).
    ///
    /// ```
    /// # async fn demo(conn: &gino::Connection) -> gino::Result<()> {
    /// conn.transaction(async { Ok::<_, gino::Error>(()) }).await?;
    /// # Ok(()) }
    /// ```
    pub fn transaction<F>(&self, fut: F) -> ManagedTransaction<'_, F> {
        ManagedTransaction::new(Origin::Connection(self), fut)
    }

    /// Begins a manual transaction on this connection (a savepoint if one is
    /// open already).
    ///
    /// ```
    /// # async fn demo(conn: &gino::Connection) -> gino::Result<()> {
    /// let tx = conn.begin().await?;
    /// tx.commit().await?;
    /// # Ok(()) }
    /// ```
    pub fn begin(&self) -> Begin<'_> {
        Begin::new(Origin::Connection(self))
    }

    pub(crate) fn bind(&self) -> Bind<'_> {
        Bind::Connection(self)
    }

    crate::executor::query_methods!("conn", "gino::Connection");
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.unregister();
        if !self.reusing && !self.released.swap(true, Ordering::AcqRel) {
            self.root.released.store(true, Ordering::Release);
            // Give the raw connection back now if nobody is using it; if the
            // lock is held, its `SlotGuard` does it when the lock ends.
            if let Ok(mut slot) = self.root.slot.try_lock() {
                slot.raw.take();
                slot.levels.clear();
            }
        }
    }
}
