//! `Gino`: the `db` value of an application (GINO's `Gino`): which engine
//! is bound, the default database `.gino()` falls back to, and the
//! connection and transaction API delegated to the bound engine.
//!
//! Uses: `engine`, `connection`, `transaction`.

use std::future::{Future, IntoFuture};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crate::connection::{Acquire, Connection};
use crate::engine::{Engine, EngineSource, IntoEngine};
use crate::error::{Error, Result};
use crate::scoped::{Scoped, scoped_local};
use crate::transaction::{Begin, ManagedTransaction, Origin, WithTransaction};

/// The database of an application: binds an engine, runs the query API on
/// it, and is what models belong to. Usually one `static` named `DB`.
///
/// Queries run implicitly: on the current task's contextual connection of
/// the bound engine (a managed transaction, a reusable acquired connection,
/// a web request's connection) if there is one, else on the engine itself. While nothing is
/// bound they fail with [`Error::Uninitialized`]; nothing panics.
///
/// `Gino::new()` makes the application's *default* database: plain diesel
/// queries run with `.gino()` (and models that name no database) use the
/// default database bound most recently. [`Gino::secondary`] makes one that
/// is used only where it is named.
///
/// ```
/// use diesel::dsl::sql;
/// use diesel::sql_types::Integer;
/// use gino::prelude::*;
///
/// pub static DB: Gino = Gino::new();
///
/// # async fn demo(url: &str) -> gino::Result<()> {
/// DB.set_bind(url).await?;
/// let two: i32 = diesel::select(sql::<Integer>("2")).gino().one().await?;
/// DB.pop_bind().expect("bound").close().await;
/// # Ok(()) }
/// # gino_testkit::doc::run(demo);
/// ```
pub struct Gino {
    engine: RwLock<Option<Engine>>,
    /// The bound engine's id (0: unbound), written with `engine`: finding
    /// a task's connection of the bound engine reads it instead of taking
    /// the lock and a reference to the engine, which every core's queries
    /// would otherwise contend for.
    bound_id: AtomicU64,
    default: bool,
    id: AtomicU64,
}

impl std::fmt::Debug for Gino {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gino")
            .field("default", &self.default)
            .field("engine", &self.engine.read().ok().and_then(|e| e.clone()))
            .finish()
    }
}

impl Default for Gino {
    fn default() -> Self {
        Gino::new()
    }
}

impl Drop for Gino {
    /// A default database dropped while bound stops being the one `.gino()`
    /// falls back to (a `static` is never dropped; a `Gino` held by a value
    /// is).
    fn drop(&mut self) {
        let id = *self.id.get_mut();
        if self.default && id != 0 {
            forget_default(id);
        }
    }
}

/// Engines of bound default databases, newest last.
static DEFAULTS: Mutex<Vec<(u64, Engine)>> = Mutex::new(Vec::new());

/// The id of the newest engine of [`DEFAULTS`] (0: none), kept by
/// [`change_defaults`] for the lookup that every query of a model of the
/// default database makes: a load of a line that no query writes, where
/// the lock was a write to one that every worker thread shares.
static DEFAULT_ENGINE_ID: AtomicU64 = AtomicU64::new(0);

fn defaults() -> std::sync::MutexGuard<'static, Vec<(u64, Engine)>> {
    DEFAULTS.lock().unwrap_or_else(|p| p.into_inner())
}

/// Changes the bound default databases, and the id of the newest.
fn change_defaults(change: impl FnOnce(&mut Vec<(u64, Engine)>)) {
    let mut list = defaults();
    change(&mut list);
    let newest = list.last().map_or(0, |(_, engine)| engine.id());
    DEFAULT_ENGINE_ID.store(newest, Ordering::Release);
}

/// Takes the engine of the default `Gino` of id `owner` off the defaults.
fn forget_default(owner: u64) {
    change_defaults(|list| list.retain(|(id, _)| *id != owner));
}

/// The id of the engine `.gino()` falls back to, if any: as
/// [`default_engine`], without taking a reference to it.
pub(crate) fn default_engine_id() -> Option<u64> {
    ScopedBind::innermost(|b| b.default, |b| b.engine.id()).or_else(|| {
        let id = DEFAULT_ENGINE_ID.load(Ordering::Acquire);
        (id != 0).then_some(id)
    })
}

/// The engine `.gino()` falls back to: the newest bound default database's.
pub(crate) fn default_engine() -> Result<Engine> {
    if let Some(engine) = ScopedBind::find(|b| b.default) {
        return Ok(engine);
    }
    defaults()
        .last()
        .map(|(_, e)| e.clone())
        .ok_or(Error::Uninitialized)
}

scoped_local! {
    static SCOPED_BIND: Arc<ScopedBind>;
}

/// `f` run in `binding` ([`Gino::binding`]), as a future in
/// [`Gino::scoped_bind`] runs.
#[cfg(feature = "web")]
pub(crate) fn in_binding<R>(binding: &Arc<ScopedBind>, f: impl FnOnce() -> R) -> R {
    SCOPED_BIND.sync_scope(binding, f)
}

/// `F` in the scope of a [`Gino::scoped_bind`].
pub(crate) type BindScope<F> = Scoped<Arc<ScopedBind>, F>;

/// A database bound to an engine for one task's scope, over the scopes
/// around it.
pub(crate) struct ScopedBind {
    db: u64,
    default: bool,
    engine: Engine,
    parent: Option<Arc<ScopedBind>>,
}

impl ScopedBind {
    /// The engine of the innermost scope that `matches`.
    fn find(matches: impl Fn(&ScopedBind) -> bool) -> Option<Engine> {
        Self::innermost(matches, |bind| bind.engine.clone())
    }

    /// `read` of the innermost scope that `matches`.
    fn innermost<T>(
        matches: impl Fn(&ScopedBind) -> bool,
        read: impl Fn(&ScopedBind) -> T,
    ) -> Option<T> {
        SCOPED_BIND
            .try_with(|scope| {
                let mut level = Some(scope);
                while let Some(bind) = level {
                    if matches(bind) {
                        return Some(read(bind));
                    }
                    level = bind.parent.as_ref();
                }
                None
            })
            .ok()
            .flatten()
    }
}

/// The innermost engine the current task is scoped to, if any.
pub(crate) fn scoped_engine() -> Option<Engine> {
    ScopedBind::find(|_| true)
}

impl Gino {
    /// A default database, unbound. `const`, so it can live in a `static`.
    ///
    /// ```
    /// static DB: gino::Gino = gino::Gino::new();
    /// assert!(!DB.is_bound());
    /// ```
    pub const fn new() -> Self {
        Gino {
            engine: RwLock::new(None),
            bound_id: AtomicU64::new(0),
            default: true,
            id: AtomicU64::new(0),
        }
    }

    /// A database used only where it is named (`DB2.all(..)`,
    /// `.bind(&DB2)`, models declared with it), never as the fallback of
    /// `.gino()`.
    ///
    /// ```
    /// static REPORTING: gino::Gino = gino::Gino::secondary();
    /// assert!(!REPORTING.is_bound());
    /// ```
    pub const fn secondary() -> Self {
        Gino {
            engine: RwLock::new(None),
            bound_id: AtomicU64::new(0),
            default: false,
            id: AtomicU64::new(0),
        }
    }

    pub(crate) fn is_default(&self) -> bool {
        self.default
    }

    fn id(&self) -> u64 {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let id = self.id.load(Ordering::Acquire);
        if id != 0 {
            return id;
        }
        let fresh = NEXT.fetch_add(1, Ordering::Relaxed);
        match self
            .id
            .compare_exchange(0, fresh, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => fresh,
            Err(existing) => existing,
        }
    }

    /// Binds an engine, made from a URL (`"postgresql://..."`), a URL with
    /// [`EngineOptions`](crate::EngineOptions), or an existing [`Engine`],
    /// and returns it. A previous engine is replaced (not closed).
    ///
    /// ```
    /// # async fn demo(url: &str) -> gino::Result<()> {
    /// static DB: gino::Gino = gino::Gino::new();
    /// let engine = DB.set_bind((url, gino::EngineOptions::new().max_size(4))).await?;
    /// assert!(DB.is_bound());
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub async fn set_bind(&self, bind: impl IntoEngine) -> Result<Engine> {
        let engine = bind.into_engine().await?;
        // The default list changes under the bind's lock, so that binds
        // changing at once leave the two agreeing (no path takes the
        // bind's lock while holding the list's).
        let mut bound = self.engine.write().unwrap_or_else(|p| p.into_inner());
        self.bound_id.store(engine.id(), Ordering::Release);
        *bound = Some(engine.clone());
        if self.default {
            let id = self.id();
            change_defaults(|list| {
                list.retain(|(owner, _)| *owner != id);
                list.push((id, engine.clone()));
            });
        }
        drop(bound);
        Ok(engine)
    }

    /// Unbinds and returns the engine, usually to close it.
    ///
    /// ```
    /// # async fn demo(db: &gino::Gino) {
    /// if let Some(engine) = db.pop_bind() {
    ///     engine.close().await;
    /// }
    /// assert!(db.pop_bind().is_none());
    /// # }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn pop_bind(&self) -> Option<Engine> {
        self.unbind_if(|_| true)
    }

    /// Unbinds the bound engine if `which` says so of it.
    fn unbind_if(&self, which: impl FnOnce(&Engine) -> bool) -> Option<Engine> {
        let mut bound = self.engine.write().unwrap_or_else(|p| p.into_inner());
        if !bound.as_ref().is_some_and(which) {
            return None;
        }
        self.bound_id.store(0, Ordering::Release);
        if self.default {
            forget_default(self.id());
        }
        bound.take()
    }

    /// Whether an engine is bound.
    ///
    /// ```
    /// # async fn demo(url: &str) -> gino::Result<()> {
    /// let db = gino::Gino::secondary();
    /// assert!(!db.is_bound());
    /// db.set_bind(url).await?;
    /// assert!(db.is_bound());
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn is_bound(&self) -> bool {
        self.engine
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// The engine bound for every task, a task's own bind aside.
    pub(crate) fn bound_engine(&self) -> Option<Engine> {
        self.engine
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The id of [`engine`](Self::engine)'s engine, if bound.
    pub(crate) fn engine_id(&self) -> Option<u64> {
        let db = self.id();
        ScopedBind::innermost(|b| b.db == db, |b| b.engine.id()).or_else(|| {
            let id = self.bound_id.load(Ordering::Acquire);
            (id != 0).then_some(id)
        })
    }

    /// The engine this database runs on here: inside a
    /// [`scoped_bind`](Self::scoped_bind), the scope's engine; elsewhere
    /// the bound engine, or [`Error::Uninitialized`].
    ///
    /// ```
    /// let db = gino::Gino::secondary();
    /// assert!(matches!(db.engine(), Err(gino::Error::Uninitialized)));
    /// ```
    pub fn engine(&self) -> Result<Engine> {
        if let Some(engine) = ScopedBind::find(|b| b.db == self.id()) {
            return Ok(engine);
        }
        self.bound_engine().ok_or(Error::Uninitialized)
    }

    /// Runs `fut` with this database bound to `engine` for the current
    /// task only (GINO's FAQ recipe for a database per user, with a
    /// context variable): model calls, `.gino()` queries, transactions and
    /// the web request's connection inside it all run on `engine`, while
    /// other tasks keep the global bind. Scopes nest (the innermost wins);
    /// spawned tasks start outside them. [`Tenants`](crate::Tenants) opens
    /// such a scope per tenant.
    ///
    /// ```
    /// # async fn demo(url: &str) -> gino::Result<()> {
    /// use diesel::sql_types::Text;
    /// use gino::prelude::*;
    ///
    /// static DB: Gino = Gino::secondary();
    /// let current = || DB.one::<String, _>(diesel::select(
    ///     diesel::dsl::sql::<Text>("current_setting('application_name')"),
    /// ));
    /// DB.set_bind(format!("{url}?application_name=global")).await?;
    /// let tenant = gino::create_engine(
    ///     &format!("{url}?application_name=tenant"), Default::default()).await?;
    ///
    /// let inside = DB.scoped_bind(&tenant, async { current().await }).await?;
    /// assert_eq!(inside, "tenant");
    /// assert_eq!(current().await?, "global");
    /// # DB.pop_bind().unwrap().close().await;
    /// # tenant.close().await;
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub async fn scoped_bind<F: IntoFuture>(&self, engine: &Engine, fut: F) -> F::Output {
        // Converted inside the scope: a builder (`DB.create_all()`) may
        // look up its engine as it becomes a future.
        self.bind_scope(engine, async move { fut.into_future().await })
            .await
    }

    /// `fut` in the scope of [`scoped_bind`](Self::scoped_bind), as a
    /// future whose type can be named (the web request's future holds it).
    pub(crate) fn bind_scope<F: Future>(&self, engine: &Engine, fut: F) -> BindScope<F> {
        SCOPED_BIND.scope(self.binding(engine), fut)
    }

    /// This database bound to `engine` inside the scopes the caller runs
    /// in: what [`bind_scope`](Self::bind_scope) runs its future in, and
    /// [`in_binding`] runs code in.
    pub(crate) fn binding(&self, engine: &Engine) -> Arc<ScopedBind> {
        Arc::new(ScopedBind {
            db: self.id(),
            default: self.default,
            engine: engine.clone(),
            parent: SCOPED_BIND.try_with(Arc::clone).ok(),
        })
    }

    /// Binds `bind` for the duration of `scope(engine)`, then unbinds and
    /// closes the engine, also when the scope fails, panics or is dropped.
    ///
    /// ```
    /// # async fn demo(url: &str) -> gino::Result<()> {
    /// static DB: gino::Gino = gino::Gino::new();
    /// let status = DB
    ///     .with_bind(url, |_engine| async {
    ///         DB.status(diesel::sql_query("SELECT 1")).await
    ///     })
    ///     .await?;
    /// assert_eq!(status, "SELECT 1");
    /// assert!(!DB.is_bound());
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub async fn with_bind<B, F, Fut, T, E>(&self, bind: B, scope: F) -> Result<T, E>
    where
        B: IntoEngine,
        F: FnOnce(Engine) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: From<Error>,
    {
        /// Closes the scope's engine, and unbinds it if it is still the
        /// one bound: a bind made meanwhile (by the scope, or by another
        /// scope beside it) is not this scope's to end.
        struct Unbind<'a>(&'a Gino, Engine);
        impl Drop for Unbind<'_> {
            fn drop(&mut self) {
                let own = self.1.id();
                self.0.unbind_if(|bound| bound.id() == own);
                self.1.close_now();
            }
        }
        let engine = self.set_bind(bind).await?;
        let _unbind = Unbind(self, engine.clone());
        scope(engine).await
    }

    /// Acquires a connection from the bound engine; see [`Engine::acquire`].
    /// The engine is the one bound when this is called: unbound then, the
    /// acquire fails with [`Error::Uninitialized`] when awaited.
    ///
    /// ```
    /// # async fn demo(db: &gino::Gino) -> gino::Result<()> {
    /// let conn = db.acquire().lazy(true).await?;
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn acquire(&self) -> Acquire<'static> {
        Acquire::unbound_or(self.engine().ok())
    }

    /// The current task's newest contextual connection of the bound engine,
    /// as a reusing connection; see [`Engine::current_connection`].
    ///
    /// ```
    /// # async fn demo(db: &gino::Gino) -> gino::Result<()> {
    /// let conn = db.acquire().await?;
    /// assert!(db.current_connection().is_some());
    /// conn.release().await?;
    /// assert!(db.current_connection().is_none());
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn current_connection(&self) -> Option<Connection> {
        self.engine().ok()?.current_connection()
    }

    /// Runs `fut` in a managed transaction on the contextual connection or
    /// a connection of the bound engine. See [`Transaction`](crate::Transaction).
    ///
    /// ```
    /// # async fn demo(db: &gino::Gino) -> gino::Result<()> {
    /// // Err rolls back and comes back to the caller unchanged.
    /// let result: Result<(), gino::Error> = db
    ///     .transaction(async {
    ///         db.status(diesel::sql_query("CREATE TEMP TABLE t (x int)")).await?;
    ///         Err(gino::Error::NoSuchRow)
    ///     })
    ///     .await;
    /// assert!(matches!(result, Err(gino::Error::NoSuchRow)));
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn transaction<F>(&self, fut: F) -> ManagedTransaction<'_, F> {
        ManagedTransaction::new(Origin::Engine(self), fut)
    }

    /// Runs `block` in a managed transaction, handing it the transaction
    /// (GINO's `async with db.transaction() as tx`). Its error type is
    /// [`gino::Error`](crate::Error), so the block needs no annotation;
    /// [`transaction`](Self::transaction) takes blocks with errors of
    /// their own.
    ///
    /// ```
    /// # async fn demo(db: &gino::Gino) -> gino::Result<()> {
    /// db.transaction_with(|tx| async move {
    ///     db.status(diesel::sql_query("CREATE TEMP TABLE t (x int)")).await?;
    ///     tx.raise_rollback()?; // no Transaction::current() needed
    ///     Ok(())
    /// })
    /// .await?;
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn transaction_with<C, Fut, T>(
        &self,
        block: C,
    ) -> ManagedTransaction<'_, WithTransaction<C>>
    where
        C: FnOnce(crate::transaction::Transaction) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        ManagedTransaction::new(Origin::Engine(self), WithTransaction::new(block))
    }

    /// Begins a manual transaction on the contextual connection or a new
    /// reusable connection of the bound engine; implicit queries of the task
    /// run in it until it ends.
    ///
    /// ```
    /// # async fn demo(db: &gino::Gino) -> gino::Result<()> {
    /// let tx = db.begin().await?;
    /// db.status(diesel::sql_query("CREATE TEMP TABLE t (x int)")).await?; // inside tx
    /// tx.rollback().await?;
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn begin(&self) -> Begin<'_> {
        Begin::new(Origin::Engine(self))
    }
}

impl EngineSource for Gino {
    fn engine(&self) -> Result<Engine> {
        Gino::engine(self)
    }
}
