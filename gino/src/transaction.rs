//! Transactions: GINO's `GinoTransaction`, managed and manual, nested as
//! savepoints, and the `transaction` / `begin` methods of engines and
//! connections.
//!
//! A transaction is a level on its connection's root; a managed one also
//! makes its connection the contextual one, and itself the current
//! transaction, for the code it runs. A managed level belongs to its block:
//! implicit statements and nested transactions of other code on the same
//! connection (a future joined beside the block) wait for it to end rather
//! than run inside it, so that a block's rollback takes only its own work.
//!
//! Uses: `connection`, `root` (levels, savepoints), `context`, `engine`.

use std::any::Any;
use std::convert::Infallible;
use std::future::{Future, IntoFuture};
use std::num::NonZeroU64;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::FutureExt;

use crate::config::IsolationLevel;
use crate::connection::Connection;
use crate::context::Stack;
use crate::engine::{Engine, EngineSource};
use crate::error::{Error, Result};
use crate::root::{Access, Level, roll_back_to, savepoint, undo_savepoint};
use crate::scoped::{Scoped, scoped_local};
use crate::statement::Deadline;
use crate::wire::TxStatus;

scoped_local! {
    /// The innermost managed transaction around the running code (`None`
    /// inside [`own_context`]).
    static CURRENT: Option<Transaction>;
}

/// A database transaction, or a savepoint inside one when nested.
///
/// Managed transactions come from `transaction(future)` on a [`Gino`](crate::Gino),
/// [`Engine`] or [`Connection`]: they commit when the future returns `Ok`
/// and roll back when it returns `Err`, panics or is dropped. Code inside
/// finds the transaction's connection implicitly, and the transaction
/// itself with [`Transaction::current`]. Manual transactions come from
/// `begin()` and end with [`commit`](Self::commit) or
/// [`rollback`](Self::rollback); one that is never ended is rolled back when
/// its connection is released.
///
/// A managed level belongs to its block. Futures joined inside one
/// transaction share its connection, so their nested blocks take turns:
/// a nested transaction or an implicit statement of code outside a block
/// (a future joined beside it) waits for that block to end instead of
/// running inside it, and each block commits or rolls back only its own
/// work. Blocks begun beside each other on one named [`Connection`] take
/// turns likewise.
///
/// ```
/// # async fn demo(db: &gino::Gino) -> gino::Result<()> {
/// use diesel::dsl::sql;
/// use diesel::sql_types::Integer;
///
/// // managed: commits on Ok
/// db.transaction(async {
///     db.status(diesel::sql_query("CREATE TEMP TABLE t (x int)")).await?;
///     Ok::<_, gino::Error>(())
/// })
/// .await?;
///
/// // manual
/// let tx = db.begin().await?;
/// let one: i32 = tx.connection().one(diesel::select(sql::<Integer>("1"))).await?;
/// tx.commit().await?;
/// # Ok(()) }
/// # gino_testkit::doc::run(demo);
/// ```
#[derive(Clone)]
pub struct Transaction {
    inner: Arc<TxInner>,
}

struct TxInner {
    id: u64,
    conn: Connection,
    managed: bool,
    parent: Option<Transaction>,
    exit: Mutex<Option<Exit>>,
}

/// An early end requested by `raise_commit` / `raise_rollback`.
struct Exit {
    commit: bool,
    value: Box<dyn Any + Send>,
}

impl std::fmt::Debug for Transaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("managed", &self.inner.managed)
            .finish_non_exhaustive()
    }
}

/// Options of a transaction; they apply to the outermost level only.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TxOptions {
    isolation_level: Option<IsolationLevel>,
    read_only: Option<bool>,
    deferrable: Option<bool>,
    /// How a transaction of an engine or database gets its connection
    /// (GINO's `reuse` and `timeout` of `engine.transaction`).
    acquire: AcquireOptions,
}

/// GINO's `reuse` and `timeout` of `engine.transaction(...)`: whether the
/// contextual connection is used (a nested level on it) or a new one is
/// borrowed, and how long the borrow may wait.
#[derive(Debug, Clone, Copy, Default)]
struct AcquireOptions {
    /// `Some(false)` borrows a new connection even with a contextual one.
    reuse: Option<bool>,
    timeout: Option<std::time::Duration>,
}

impl TxOptions {
    fn begin_sql(&self, engine_default: Option<IsolationLevel>) -> String {
        let mut sql = String::from("BEGIN");
        if let Some(level) = self.isolation_level.or(engine_default) {
            sql.push_str(" ISOLATION LEVEL ");
            sql.push_str(level.as_sql());
        }
        match self.read_only {
            Some(true) => sql.push_str(" READ ONLY"),
            Some(false) => sql.push_str(" READ WRITE"),
            None => {}
        }
        match self.deferrable {
            Some(true) => sql.push_str(" DEFERRABLE"),
            Some(false) => sql.push_str(" NOT DEFERRABLE"),
            None => {}
        }
        sql
    }
}

impl Transaction {
    async fn begin(
        (conn, access): (Connection, Access),
        options: TxOptions,
        managed: bool,
        parent: Option<Transaction>,
    ) -> Result<Transaction> {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        conn.check_usable()?;
        let root = conn.root.clone();
        let deadline = Deadline::none();
        let mut slot = root.lock_for(access, &deadline).await?;
        // A nested level (a savepoint) runs in the outermost's transaction:
        // it may repeat the isolation level that one asked for (as asyncpg
        // allows, so that code asking for one level runs inside a block of
        // it), and set nothing else.
        let isolation = match slot.levels.first() {
            Some(outermost) => {
                let same = options
                    .isolation_level
                    .is_none_or(|level| Some(level) == outermost.isolation);
                if !same || options.read_only.is_some() || options.deferrable.is_some() {
                    return Err(Error::TransactionMisuse(
                        "isolation level, read-only and deferrable can only be set on the \
                         outermost transaction, not on a nested one (a savepoint), which may \
                         only repeat the outermost's isolation level"
                            .to_owned(),
                    ));
                }
                outermost.isolation
            }
            None => options
                .isolation_level
                .or(root.engine.options().isolation_level),
        };
        let outermost = slot.levels.is_empty();
        let pg = slot.raw(&root, &deadline).await?;
        if outermost {
            // The `BEGIN` goes with the first statement (`crate::opening`);
            // a connection the server has already left fails now, as
            // sending it would.
            if pg.server_gone() {
                return Err(Error::Connection(
                    "the server closed this connection (terminated, restarted or timed out), so \
                     no transaction can begin on it: acquire another connection"
                        .to_owned(),
                ));
            }
            slot.opening = Some(options.begin_sql(root.engine.options().isolation_level));
        } else {
            slot.control(&format!("SAVEPOINT {}", savepoint(id)))
                .await?;
        }
        let task = if managed { tokio::task::try_id() } else { None };
        slot.levels.push(Level {
            id,
            managed,
            task,
            isolation,
        });
        root.pin_reads();
        drop(slot);
        Ok(Transaction {
            inner: Arc::new(TxInner {
                id,
                conn,
                managed,
                parent,
                exit: Mutex::new(None),
            }),
        })
    }

    /// The innermost managed transaction around the running code, if any.
    ///
    /// ```
    /// # async fn demo(db: &gino::Gino) -> gino::Result<()> {
    /// assert!(gino::Transaction::current().is_none());
    /// db.transaction(async {
    ///     let tx = gino::Transaction::current().expect("inside a transaction");
    ///     assert!(tx.is_managed());
    ///     Ok::<_, gino::Error>(())
    /// })
    /// .await?;
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn current() -> Option<Transaction> {
        CURRENT.try_with(Option::clone).ok().flatten()
    }

    /// The connection this transaction runs on.
    ///
    /// ```
    /// # async fn demo(engine: &gino::Engine) -> gino::Result<()> {
    /// let tx = engine.begin().await?;
    /// tx.connection().status(diesel::sql_query("CREATE TEMP TABLE t (x int)")).await?;
    /// tx.commit().await?;
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn connection(&self) -> &Connection {
        &self.inner.conn
    }

    /// Whether this transaction is managed (ends with its block) rather
    /// than manual (ends with `commit` / `rollback`).
    ///
    /// ```
    /// # async fn demo(engine: &gino::Engine) -> gino::Result<()> {
    /// let tx = engine.begin().await?;
    /// assert!(!tx.is_managed());
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn is_managed(&self) -> bool {
        self.inner.managed
    }

    /// Whether this transaction (or savepoint) is still open.
    ///
    /// ```
    /// # async fn demo(engine: &gino::Engine) -> gino::Result<()> {
    /// let conn = engine.acquire().await?;
    /// let tx = conn.begin().await?;
    /// assert!(tx.is_active().await);
    /// conn.release().await?; // rolls the transaction back
    /// assert!(!tx.is_active().await);
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub async fn is_active(&self) -> bool {
        match self.inner.conn.root.lock(&Deadline::none()).await {
            Ok(slot) => slot.depth_of(self.inner.id).is_some(),
            Err(_) => false,
        }
    }

    fn manual_only(&self, what: &str) -> Result<()> {
        if self.inner.managed {
            return Err(Error::TransactionMisuse(format!(
                "{what}() is illegal in managed mode: a managed transaction commits when its \
                 block returns Ok and rolls back on Err; use raise_commit() or \
                 raise_rollback() to end it early"
            )));
        }
        Ok(())
    }

    /// Commits a manual transaction (releases its savepoint when nested).
    ///
    /// ```
    /// # async fn demo(engine: &gino::Engine) -> gino::Result<()> {
    /// let tx = engine.begin().await?;
    /// engine.status(diesel::sql_query("CREATE TEMP TABLE t (x int)")).await?;
    /// tx.commit().await?;
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    ///
    /// A `COMMIT` that PostgreSQL turns into a rollback, because a statement
    /// in the transaction failed, is [`Error::TransactionAborted`]; so is
    /// the commit of a savepoint in which a statement failed, which rolls
    /// back to the savepoint and leaves the enclosing transaction usable.
    pub async fn commit(self) -> Result<()> {
        self.manual_only("commit")?;
        self.finish(true).await
    }

    /// Rolls back a manual transaction (to its savepoint when nested).
    ///
    /// ```
    /// # async fn demo(engine: &gino::Engine) -> gino::Result<()> {
    /// let outer = engine.begin().await?;
    /// let inner = engine.begin().await?; // a savepoint
    /// inner.rollback().await?;           // outer goes on
    /// outer.commit().await?;
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub async fn rollback(self) -> Result<()> {
        self.manual_only("rollback")?;
        self.finish(false).await
    }

    fn request_exit(&self, commit: bool, value: Box<dyn Any + Send>) -> Result<Infallible> {
        if !self.inner.managed {
            return Err(Error::TransactionMisuse(
                "raise_commit() and raise_rollback() end managed transactions; call commit() or \
                 rollback() on a manual one"
                    .to_owned(),
            ));
        }
        *self.inner.exit.lock().unwrap_or_else(|p| p.into_inner()) = Some(Exit { commit, value });
        Err(Error::EarlyExit)
    }

    /// Ends this managed transaction early with a commit: returns an error to
    /// propagate with `?`; every level inside this one commits, this one
    /// commits, and its `transaction(...)` call returns `Ok(())`. Enclosing
    /// transactions continue. For a block that returns a value, use
    /// [`raise_commit_with`](Self::raise_commit_with).
    ///
    /// ```
    /// # async fn demo(db: &gino::Gino) -> gino::Result<()> {
    /// db.transaction_with(|outer| async move {
    ///     db.status(diesel::sql_query("CREATE TABLE kept (x int)")).await?;
    ///     db.transaction_with(|_inner| async move {
    ///         outer.raise_commit()?;
    ///         Ok(()) // not reached: raise_commit returns Err
    ///     })
    ///     .await?;
    ///     Ok(()) // not reached: the inner level propagates the exit
    /// })
    /// .await?;
    /// // continues here: the outer transaction is committed
    /// db.status(diesel::sql_query("SELECT * FROM kept")).await?;
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    ///
    /// Propagate the error: GINO's exit is an exception `except Exception`
    /// cannot catch, but a Rust error can always be dropped. A block that
    /// drops it (`let _ = tx.raise_commit();`) runs on inside the level,
    /// and the level still ends as asked when the block returns `Ok`, or an
    /// error gino cannot look into (one of the app's own types, taken as
    /// the exit passed on through it). When the block returns another
    /// error of gino's own ([`Error`], or a `Box<dyn Error + Send + Sync>`
    /// holding something other than the exit), that error wins, as another
    /// exception does in GINO: this level and the levels the exit ends roll
    /// back, and the call returns the error.
    pub fn raise_commit(&self) -> Result<Infallible> {
        self.request_exit(true, Box::new(()))
    }

    /// Ends this managed transaction early with a rollback: like
    /// [`raise_commit`](Self::raise_commit), but this level and every level
    /// inside it roll back.
    ///
    /// ```
    /// # async fn demo(db: &gino::Gino) -> gino::Result<()> {
    /// db.transaction_with(|tx| async move {
    ///     db.status(diesel::sql_query("CREATE TABLE gone (x int)")).await?;
    ///     tx.raise_rollback()?;
    ///     Ok(()) // not reached: raise_rollback returns Err
    /// })
    /// .await?; // Ok(()): rolled back, and the caller goes on
    /// assert!(db.status(diesel::sql_query("SELECT * FROM gone")).await.is_err());
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn raise_rollback(&self) -> Result<Infallible> {
        self.request_exit(false, Box::new(()))
    }

    /// ```
    /// # async fn demo(db: &gino::Gino) -> gino::Result<()> {
    /// let n: i32 = db
    ///     .transaction(async {
    ///         gino::Transaction::current().unwrap().raise_commit_with(7)?;
    ///         unreachable!("raise_commit_with returns Err");
    ///     })
    ///     .await?;
    /// assert_eq!(n, 7);
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    ///
    /// [`raise_commit`](Self::raise_commit) for a block returning a value:
    /// the transaction's call returns `Ok(value)`. `T` must be the block's
    /// value type, or the call fails with [`Error::TransactionMisuse`] and
    /// the transaction is rolled back.
    pub fn raise_commit_with<T: Send + 'static>(&self, value: T) -> Result<Infallible> {
        self.request_exit(true, Box::new(value))
    }

    /// [`raise_rollback`](Self::raise_rollback) for a block returning a value.
    ///
    /// ```
    /// # async fn demo(db: &gino::Gino) -> gino::Result<()> {
    /// let found: Option<i32> = db
    ///     .transaction(async {
    ///         gino::Transaction::current().unwrap().raise_rollback_with(None::<i32>)?;
    ///         unreachable!("raise_rollback_with returns Err");
    ///     })
    ///     .await?;
    /// assert_eq!(found, None);
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn raise_rollback_with<T: Send + 'static>(&self, value: T) -> Result<Infallible> {
        self.request_exit(false, Box::new(value))
    }

    fn take_exit(&self) -> Option<Exit> {
        self.inner
            .exit
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// Whether an enclosing transaction asked to end with a commit.
    fn ancestor_exit_commits(&self) -> Option<bool> {
        enclosing(self.inner.parent.clone()).find_map(|tx| {
            let exit = tx.inner.exit.lock().unwrap_or_else(|p| p.into_inner());
            exit.as_ref().map(|exit| exit.commit)
        })
    }

    async fn finish(&self, commit: bool) -> Result<()> {
        let root = &self.inner.conn.root;
        let ended = || {
            Error::TransactionMisuse(
                "this transaction already ended: it was committed or rolled back, or ended with \
                 its connection or an enclosing transaction"
                    .to_owned(),
            )
        };
        // The root, not this handle: releasing a reusing handle of the
        // transaction's connection leaves the transaction open on it.
        let mut slot = match root.lock(&Deadline::none()).await {
            Err(Error::ConnectionReleased) => return Err(ended()),
            locked => locked?,
        };
        let depth = slot.depth_of(self.inner.id).ok_or_else(ended)?;
        // Deferred rollbacks ran in `lock`: a managed level above is a
        // block still running, whose rest would run outside its level.
        if slot.managed_from(depth + 1) {
            let what = if commit { "commit" } else { "rollback" };
            return Err(crate::root::block_still_running(what));
        }
        if slot.ended_by_sql() {
            // The server has no transaction left to end. Only this level
            // and those inside it end: an enclosing one is a block still
            // running, whose statements must go on failing rather than
            // autocommit, until it ends too.
            slot.end_levels(depth);
            return Err(crate::root::ended_by_sql());
        }
        if !commit {
            return roll_back_to(&mut slot, depth).await;
        }
        if depth > 0 {
            // The level ends before its RELEASE is sent, as in
            // `roll_back_to`: if this future is dropped with the statement
            // in flight, the server still runs it, and a deferred rollback
            // to the savepoint would then fail and abort the enclosing
            // transaction.
            slot.end_levels(depth);
            let pg = slot.raw_if_any().ok_or_else(ended)?;
            if pg.wire.tx_status() == TxStatus::Failed {
                // A statement of this level failed: as PostgreSQL does with
                // a COMMIT, end the level rolled back (which also makes the
                // enclosing transaction usable again) instead of sending a
                // RELEASE that can only fail.
                pg.control(&undo_savepoint(self.inner.id)).await?;
                return Err(Error::TransactionAborted);
            }
            let released = pg
                .control(&format!("RELEASE SAVEPOINT {}", savepoint(self.inner.id)))
                .await;
            if released.is_err() {
                // Leave the enclosing transaction usable, as it was before
                // this level began.
                let _ = pg.control(&undo_savepoint(self.inner.id)).await;
            }
            return released;
        }
        if slot.opening.is_some() {
            // No statement took the `BEGIN` to the server: nothing there
            // to commit.
            slot.forget_levels();
            return Ok(());
        }
        // Should this future be dropped with the COMMIT in flight, the
        // next user of the connection waits for it (a transaction is
        // open) and then finds the levels ended, not ended by SQL.
        slot.committing = true;
        let pg = slot.raw_if_any().ok_or_else(ended)?;
        let committed = pg.control("COMMIT").await;
        // A failed COMMIT ends the transaction on the server, so no ROLLBACK
        // follows unless the server still reports one open.
        let still_open = pg.wire.tx_status() != TxStatus::Idle;
        let rolled_back = pg.wire.tag().as_deref() == Some("ROLLBACK");
        if still_open {
            let _ = pg.control("ROLLBACK").await;
        }
        slot.forget_levels();
        match committed {
            Ok(()) if rolled_back => Err(Error::TransactionAborted),
            Ok(()) => {
                // The task's reads elsewhere see the commit while the
                // connection is still held (one that is not reusable).
                root.pin_task_if_written();
                Ok(())
            }
            failed => failed,
        }
    }
}

/// Runs `fut` with a connection context of its own, as if it were a
/// spawned task: the connections and transactions of the code around it
/// are not its contextual ones, and the connections it acquires and the
/// manual transactions it begins are seen by none but its own code.
///
/// The context of reusable connections belongs to a tokio task (GINO's
/// belongs to an asyncio task), and futures joined in one task (`join!`,
/// `join_all`) are one task: a connection one of them acquires with
/// `acquire()`, or a manual transaction it begins with `begin()`, is found
/// by the implicit statements of the others. Wrap each joined future in
/// `own_context` to keep them apart, as `asyncio.gather` keeps GINO's
/// coroutines apart. Managed transactions, `Connection::scope` and web
/// requests need no wrapping: their blocks are scopes of their own.
///
/// ```
/// # async fn demo(engine: &gino::Engine) -> gino::Result<()> {
/// use futures_util::future::join_all;
///
/// // Each future acquires, uses and releases its own reusable connection;
/// // without own_context the first release would take the connection from
/// // under the others, which would have reused it.
/// let results = join_all((0..5).map(|_| {
///     gino::own_context(async {
///         let conn = engine.acquire().reuse(true).await?;
///         assert!(!conn.is_reusing());
///         engine.status(diesel::sql_query("SELECT 1")).await?;
///         conn.release().await
///     })
/// }))
/// .await;
/// assert!(results.iter().all(Result::is_ok));
/// assert!(engine.current_connection().is_none());
/// # Ok(()) }
/// # gino_testkit::doc::run(demo);
/// ```
pub fn own_context<F: Future>(fut: F) -> impl Future<Output = F::Output> {
    outside_transactions(Stack::isolated(fut))
}

/// `fut` outside every managed transaction of the code around it, as a
/// spawned task is: [`own_context`], and a web request's handling.
pub(crate) fn outside_transactions<F: Future>(fut: F) -> Scoped<Option<Transaction>, F> {
    CURRENT.scope(None, fut)
}

/// Where a managed or manual transaction gets its connection.
#[derive(Clone, Copy)]
pub(crate) enum Origin<'a> {
    /// An engine, or a database whose engine is looked up when the
    /// transaction begins.
    Engine(&'a dyn EngineSource),
    Connection(&'a Connection),
}

impl Origin<'_> {
    /// The connection to run on: the given one, or the contextual one, or a
    /// new one (made reusable for manual transactions, so that implicit
    /// queries of the task find it); with how the transaction came there.
    async fn connection(self, reusable: bool, options: &TxOptions) -> Result<(Connection, Access)> {
        match self {
            Origin::Connection(conn) => {
                conn.check_usable()?;
                Ok((Connection::reusing(conn.root.clone()), Access::Explicit))
            }
            Origin::Engine(source) => {
                let engine = source.engine()?;
                let AcquireOptions { reuse, timeout } = options.acquire;
                let mut acquire = engine
                    .acquire()
                    .reuse(reuse != Some(false))
                    .reusable(reusable);
                if let Some(timeout) = timeout {
                    acquire = acquire.timeout(timeout);
                }
                acquire.run_with_access().await
            }
        }
    }
}

/// Rolls a managed level back if its future is dropped before it ends.
/// However the block ends (its future dropped, a panic, a failed end), a
/// connection it borrowed for itself goes back with it, as GINO's context
/// manager releases it: a `Transaction` kept past the block (returned
/// from it, or moved into another task) neither holds the pool's
/// connection nor runs statements outside the transaction.
struct BlockGuard {
    tx: Transaction,
    armed: bool,
}

impl Drop for BlockGuard {
    fn drop(&mut self) {
        if self.armed {
            self.tx.inner.conn.root.defer_rollback(self.tx.inner.id);
        }
        self.tx.inner.conn.release_now();
    }
}

/// What a managed transaction runs: a future (`transaction(fut)`), or a
/// closure handed the transaction (`transaction_with(|tx| ...)`).
#[doc(hidden)]
pub trait TxBody {
    /// The work, once started.
    type Future: Future;
    /// Starts the work inside `tx`.
    fn start(self, tx: &Transaction) -> Self::Future;
}

impl<F: Future> TxBody for F {
    type Future = F;

    fn start(self, _: &Transaction) -> F {
        self
    }
}

/// A block handed its transaction (GINO's `async with db.transaction() as
/// tx`); made by `transaction_with`.
#[doc(hidden)]
pub struct WithTransaction<C>(C);

impl<C, Fut> TxBody for WithTransaction<C>
where
    C: FnOnce(Transaction) -> Fut,
    Fut: Future,
{
    type Future = Fut;

    fn start(self, tx: &Transaction) -> Fut {
        (self.0)(tx.clone())
    }
}

impl<C> WithTransaction<C> {
    pub(crate) fn new(block: C) -> Self {
        WithTransaction(block)
    }
}

async fn run_managed<B, T, E>(origin: Origin<'_>, options: TxOptions, body: B) -> Result<T, E>
where
    B: TxBody,
    B::Future: Future<Output = Result<T, E>>,
    T: 'static,
    E: From<Error> + 'static,
{
    let (conn, access) = origin.connection(false, &options).await?;
    let parent = Transaction::current();
    let access = match access {
        // A block begun on a named connection from outside the blocks of
        // its task open on it (a future joined beside one) takes its turn
        // after them, as their documentation promises, rather than
        // nesting in one whose end it would then outlive. Inside its own
        // enclosing block there (found up the chain, past blocks of other
        // connections), it nests.
        Access::Explicit => {
            let on_conn =
                enclosing(parent.clone()).find(|tx| Arc::ptr_eq(&tx.inner.conn.root, &conn.root));
            Access::Beside(on_conn.and_then(|tx| NonZeroU64::new(tx.inner.id)))
        }
        contextual => contextual,
    };
    let tx = Transaction::begin((conn, access), options, true, parent).await?;
    let mut guard = BlockGuard {
        tx: tx.clone(),
        armed: true,
    };
    let fut = body.start(&tx);
    let engine_id = tx.inner.conn.engine().id();
    let root = tx.inner.conn.root.clone();
    let scoped = Stack::transaction_scope(
        engine_id,
        root,
        tx.inner.id,
        AssertUnwindSafe(fut).catch_unwind(),
    );
    let outcome = CURRENT.scope(Some(tx.clone()), scoped).await;
    let result = match outcome {
        Ok(result) => result,
        Err(panic) => {
            let _ = end_level(&tx, false, &mut guard).await;
            std::panic::resume_unwind(panic);
        }
    };
    let ended = match (result, tx.take_exit()) {
        (Ok(value), Some(exit)) => end_level(&tx, exit.commit, &mut guard)
            .await
            .map(|_| value)
            .map_err(E::from),
        (Err(e), Some(_)) if supersedes_exit(&e) => {
            // GINO's context manager lets another exception through and
            // rolls back: the exit was dropped and this error is the
            // block's answer.
            end_failed(&tx, &mut guard).await;
            Err(e)
        }
        (Err(_), Some(exit)) => match exit.value.downcast::<T>() {
            Ok(value) => end_level(&tx, exit.commit, &mut guard)
                .await
                .map(|_| *value)
                .map_err(E::from),
            Err(_) => {
                // The call fails, so nothing of it may be saved.
                let _ = end_level(&tx, false, &mut guard).await;
                Err(E::from(Error::TransactionMisuse(
                    "raise_commit()/raise_rollback() ended a transaction whose block returns a \
                     value: use raise_commit_with(value) or raise_rollback_with(value) with a \
                     value of the block's type"
                        .to_owned(),
                )))
            }
        },
        (Ok(value), None) => end_level(&tx, true, &mut guard)
            .await
            .map(|_| value)
            .map_err(E::from),
        (Err(e), None) if supersedes_exit(&e) => {
            end_failed(&tx, &mut guard).await;
            Err(e)
        }
        (Err(e), None) => match tx.ancestor_exit_commits() {
            // An enclosing block's raise_commit() asked every level inside
            // it to commit: if this one cannot, the enclosing commit must
            // not go on as if it had (GINO raises the commit's error).
            Some(true) => match end_level(&tx, true, &mut guard).await {
                Ok(()) => Err(e),
                Err(commit) => {
                    // The enclosing level must not commit either: its exit
                    // is withdrawn, so that it rolls back even where it
                    // cannot tell this error from the exit (an app's
                    // error type that carries both).
                    let _ = enclosing(tx.inner.parent.clone()).find_map(|tx| tx.take_exit());
                    Err(E::from(commit))
                }
            },
            _ => {
                end_failed(&tx, &mut guard).await;
                Err(e)
            }
        },
    };
    drop(guard);
    ended
}

/// `innermost` and the transactions enclosing it, innermost first.
fn enclosing(innermost: Option<Transaction>) -> impl Iterator<Item = Transaction> {
    std::iter::successors(innermost, |tx| tx.inner.parent.clone())
}

/// Ends a managed level. While it fails the level may still be open (a
/// block beside it still running, say), so `guard` stays armed: the level
/// is rolled back before its connection's next use instead of being left
/// open with no block to end it.
async fn end_level(tx: &Transaction, commit: bool, guard: &mut BlockGuard) -> Result<()> {
    let ended = tx.finish(commit).await;
    if ended.is_ok() {
        guard.armed = false;
    }
    ended
}

/// Rolls back a level whose block failed. The block's error is what the
/// caller needs; a failure to end the level is secondary (`guard` rolls
/// it back later), but not silent.
async fn end_failed(tx: &Transaction, guard: &mut BlockGuard) {
    if let Err(ending) = end_level(tx, false, guard).await {
        tracing::warn!(
            target: "gino",
            "a managed transaction whose block failed could not be ended: {ending}"
        );
    }
}

/// Whether a block's error is certainly not the [`Error::EarlyExit`] of a
/// `raise_*` call, so that it wins over an exit the block dropped. gino can
/// look into its own [`Error`] and a boxed `dyn Error + Send + Sync`; an
/// error of any other type is taken as the exit propagated through it.
fn supersedes_exit<E: 'static>(error: &E) -> bool {
    let error = error as &dyn Any;
    if let Some(e) = error.downcast_ref::<Error>() {
        return !matches!(e, Error::EarlyExit);
    }
    error
        .downcast_ref::<Box<dyn std::error::Error + Send + Sync>>()
        .is_some_and(|boxed| !matches!(boxed.downcast_ref(), Some(Error::EarlyExit)))
}

/// The option setters of [`ManagedTransaction`] and [`Begin`], which both
/// keep their options in a field `options: TxOptions`.
macro_rules! transaction_options {
    () => {
        /// Whether a transaction of an engine or database runs on the
        /// contextual connection (`true`, the default: nested in its
        /// transaction, if any, as a savepoint) or borrows a connection of
        /// its own (`false`: a transaction independent of the one around
        /// it). GINO's `engine.transaction(reuse=...)`. A transaction of a
        /// connection runs on that connection either way.
        ///
        /// ```
        /// # async fn demo(db: &gino::Gino) -> gino::Result<()> {
        /// db.transaction(async {
        ///     // Commits on its own connection even if the outer block fails.
        ///     let audit = db.begin().reuse(false).await?;
        ///     assert_eq!(audit.connection().is_reusing(), false);
        ///     audit.commit().await
        /// })
        /// .await?;
        /// # Ok(()) }
        /// # gino_testkit::doc::run(demo);
        /// ```
        pub fn reuse(mut self, reuse: bool) -> Self {
            self.options.acquire.reuse = Some(reuse);
            self
        }

        /// How long a transaction of an engine or database may wait for
        /// the pool when it borrows a connection (default: the engine's
        /// `acquire_timeout`); [`Error::PoolTimeout`] after it. GINO's
        /// `engine.transaction(timeout=...)`.
        ///
        /// ```
        /// # async fn demo(db: &gino::Gino) -> gino::Result<()> {
        /// use std::time::Duration;
        /// let tx = db.begin().acquire_timeout(Duration::from_secs(5)).await?;
        /// tx.rollback().await?;
        /// # Ok(()) }
        /// # gino_testkit::doc::run(demo);
        /// ```
        pub fn acquire_timeout(mut self, timeout: std::time::Duration) -> Self {
            self.options.acquire.timeout = Some(timeout);
            self
        }

        /// Isolation level of this transaction (overrides the engine's
        /// default); only on the outermost level, which a nested one may
        /// repeat (as asyncpg allows), but not change.
        ///
        /// ```
        /// # async fn demo(db: &gino::Gino) -> gino::Result<()> {
        /// let tx = db.begin().isolation_level(gino::IsolationLevel::Serializable).await?;
        /// tx.commit().await?;
        /// # Ok(()) }
        /// # gino_testkit::doc::run(demo);
        /// ```
        pub fn isolation_level(mut self, level: IsolationLevel) -> Self {
            self.options.isolation_level = Some(level);
            self
        }

        /// `READ ONLY` (true) or `READ WRITE` (false); only on the outermost
        /// level.
        ///
        /// ```
        /// # async fn demo(db: &gino::Gino) -> gino::Result<()> {
        /// let tx = db.begin().read_only(true).await?;
        /// tx.rollback().await?;
        /// # Ok(()) }
        /// # gino_testkit::doc::run(demo);
        /// ```
        pub fn read_only(mut self, read_only: bool) -> Self {
            self.options.read_only = Some(read_only);
            self
        }

        /// `DEFERRABLE`, for serializable read-only transactions that may
        /// wait for a snapshot free of serialization anomalies; only on the
        /// outermost level.
        ///
        /// ```
        /// # async fn demo(db: &gino::Gino) -> gino::Result<()> {
        /// use gino::IsolationLevel::Serializable;
        /// let tx = db.begin().isolation_level(Serializable).read_only(true).deferrable(true).await?;
        /// tx.commit().await?;
        /// # Ok(()) }
        /// # gino_testkit::doc::run(demo);
        /// ```
        pub fn deferrable(mut self, deferrable: bool) -> Self {
            self.options.deferrable = Some(deferrable);
            self
        }
    };
}

/// A managed transaction to await: returned by `transaction(future)`.
///
/// ```
/// # async fn demo(db: &gino::Gino) -> gino::Result<()> {
/// use gino::IsolationLevel;
/// let n: i64 = db
///     .transaction(async { Ok::<_, gino::Error>(42) })
///     .isolation_level(IsolationLevel::Serializable)
///     .read_only(true)
///     .await?;
/// # Ok(()) }
/// # gino_testkit::doc::run(demo);
/// ```
#[must_use = "a transaction does nothing until awaited"]
pub struct ManagedTransaction<'a, F> {
    origin: Origin<'a>,
    options: TxOptions,
    fut: F,
}

impl<'a, F> ManagedTransaction<'a, F> {
    pub(crate) fn new(origin: Origin<'a>, fut: F) -> Self {
        ManagedTransaction {
            origin,
            options: TxOptions::default(),
            fut,
        }
    }

    transaction_options!();
}

impl<'a, B, T, E> IntoFuture for ManagedTransaction<'a, B>
where
    B: TxBody + Send + 'a,
    B::Future: Future<Output = Result<T, E>> + Send + 'a,
    T: Send + 'static,
    E: From<Error> + Send + 'static,
{
    type Output = Result<T, E>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(run_managed(self.origin, self.options, self.fut))
    }
}

/// A manual transaction to await: returned by `begin()`.
///
/// ```
/// # async fn demo(engine: &gino::Engine) -> gino::Result<()> {
/// let tx = engine.begin().read_only(true).await?;
/// tx.rollback().await?;
/// # Ok(()) }
/// # gino_testkit::doc::run(demo);
/// ```
#[must_use = "a transaction does nothing until awaited"]
pub struct Begin<'a> {
    origin: Origin<'a>,
    options: TxOptions,
}

impl<'a> Begin<'a> {
    pub(crate) fn new(origin: Origin<'a>) -> Self {
        Begin {
            origin,
            options: TxOptions::default(),
        }
    }

    transaction_options!();
}

impl<'a> IntoFuture for Begin<'a> {
    type Output = Result<Transaction>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<Transaction>> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let on = self.origin.connection(true, &self.options).await?;
            Transaction::begin(on, self.options, false, None).await
        })
    }
}

impl Engine {
    /// Runs `fut` in a managed transaction on this engine's contextual
    /// connection (nested: a savepoint) or a newly borrowed one. See
    /// [`Transaction`](crate::Transaction).
    ///
    /// ```
    /// # async fn demo(engine: &gino::Engine) -> gino::Result<()> {
    /// engine
    ///     .transaction(async {
    ///         engine.status(diesel::sql_query("CREATE TEMP TABLE t (x int)")).await?;
    ///         Ok::<_, gino::Error>(())
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn transaction<F>(&self, fut: F) -> ManagedTransaction<'_, F> {
        ManagedTransaction::new(Origin::Engine(self), fut)
    }

    /// Runs `block` in a managed transaction, handing it the transaction
    /// (GINO's `async with engine.transaction() as tx`); its error type is
    /// [`gino::Error`](crate::Error), so `Ok(())` needs no annotation. See
    /// [`transaction`](Self::transaction) for blocks with errors of their
    /// own. A connection the block borrowed goes back with the block: the
    /// transaction kept past it is ended, and its
    /// [`connection`](Transaction::connection) released.
    ///
    /// ```
    /// # async fn demo(engine: &gino::Engine) -> gino::Result<()> {
    /// engine
    ///     .transaction_with(|tx| async move {
    ///         engine.status(diesel::sql_query("CREATE TEMP TABLE t (x int)")).await?;
    ///         tx.raise_rollback()?;
    ///         Ok(())
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn transaction_with<C, Fut, T>(
        &self,
        block: C,
    ) -> ManagedTransaction<'_, WithTransaction<C>>
    where
        C: FnOnce(Transaction) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        ManagedTransaction::new(Origin::Engine(self), WithTransaction::new(block))
    }

    /// Begins a manual transaction on this engine's contextual connection or
    /// a newly borrowed, reusable one.
    ///
    /// ```
    /// # async fn demo(engine: &gino::Engine) -> gino::Result<()> {
    /// let tx = engine.begin().await?;
    /// engine.status(diesel::sql_query("CREATE TEMP TABLE t (x int)")).await?; // inside tx
    /// tx.commit().await?;
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn begin(&self) -> Begin<'_> {
        Begin::new(Origin::Engine(self))
    }
}

impl Connection {
    /// Runs `fut` in a managed transaction on this connection (a savepoint
    /// if one is open already). Beside a managed block of the same task on
    /// this connection (a future joined beside it), it waits for that
    /// block to end; a block of another task (a spawned one) it nests in.
    /// See [`Transaction`](crate::Transaction).
    ///
    /// ```
    /// # async fn demo(conn: &gino::Connection) -> gino::Result<()> {
    /// conn.transaction(async { Ok::<_, gino::Error>(()) }).await?;
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn transaction<F>(&self, fut: F) -> ManagedTransaction<'_, F> {
        ManagedTransaction::new(Origin::Connection(self), fut)
    }

    /// Runs `block` in a managed transaction on this connection, handing
    /// it the transaction; see [`Engine::transaction_with`].
    ///
    /// ```
    /// # async fn demo(conn: &gino::Connection) -> gino::Result<()> {
    /// let n: i32 = conn.transaction_with(|_tx| async move { Ok(7) }).await?;
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn transaction_with<C, Fut, T>(
        &self,
        block: C,
    ) -> ManagedTransaction<'_, WithTransaction<C>>
    where
        C: FnOnce(Transaction) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        ManagedTransaction::new(Origin::Connection(self), WithTransaction::new(block))
    }

    /// Begins a manual transaction on this connection (a savepoint if one is
    /// open already).
    ///
    /// ```
    /// # async fn demo(conn: &gino::Connection) -> gino::Result<()> {
    /// let tx = conn.begin().await?;
    /// tx.commit().await?;
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn begin(&self) -> Begin<'_> {
        Begin::new(Origin::Connection(self))
    }
}
