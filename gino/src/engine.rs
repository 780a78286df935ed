//! `Engine`: GINO's `GinoEngine`, a pool of raw connections plus the
//! defaults every query on them uses.
//!
//! An engine borrows raw connections and runs one statement on a connection
//! borrowed for it. An engine and its connections belong together, but the
//! dependency points one way: the methods of `Engine` that hand out
//! higher-level values are defined with those values — `acquire` in
//! `connection`, `transaction`/`begin` in `transaction`, the query API
//! (`all`, `status`, ...) in `executor` — and appear on `Engine` all the same.
//!
//! Uses: `config`, `wire` (the connector), `pool`, `statement`, `task`, `sync`, `budget`
//! (an engine gives up idle connections to its budget).

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool::Runtime;
use deadpool::managed::{Object, Pool, PoolError, QueueMode, TimeoutType, Timeouts};

use crate::budget::Reclaim;
use crate::config::{DatabaseUrl, EngineOptions};
use crate::error::{Error, Result};
use crate::pool::{Manager, OpenCount, RawConn};
use crate::statement::{Again, Deadline, Load, Reread, Statement, deadline_after, run_statement};
use crate::sync::lock;
use crate::task::TaskKey;
use crate::wire::Connector;

/// Creates an [`Engine`] for a `postgresql://` or `postgres://` URL:
/// GINO's `create_engine`.
///
/// `options.min_size` connections are opened right away, so a wrong URL
/// fails here; with `min_size(0)` nothing is opened until first use. URL
/// query parameters are applied on top of `options` (see
/// [`EngineOptions`]).
///
/// ```
/// # async fn demo(url: &str) -> gino::Result<()> {
/// use gino::{create_engine, EngineOptions};
/// let engine = create_engine(url, EngineOptions::new().max_size(5)).await?;
/// engine.close().await;
/// # Ok(()) }
/// # gino_testkit::doc::run(demo);
/// ```
pub async fn create_engine(url: &str, options: EngineOptions) -> Result<Engine> {
    let routing = if options.replicas.is_empty() {
        None
    } else {
        ANY_REPLICAS.store(true, Ordering::Relaxed);
        Some(Routing::new(&options).await?)
    };
    let url: DatabaseUrl = url.parse()?;
    let (connect, options) = url.resolve(options)?;
    let echo = Arc::new(AtomicBool::new(options.echo));
    let manager = Manager {
        connector: Connector::new(connect)?,
        echo: echo.clone(),
        statement_cache: options.statement_cache,
        on_connect: options.on_connect.clone(),
        budget: options.connection_budget.clone(),
        generation: AtomicU64::new(0),
    };
    let source = if options.pooled {
        let pool = Pool::builder(manager)
            // The most recently used connection first: a sequential caller
            // keeps one warm instead of cycling through every backend.
            .queue_mode(QueueMode::Lifo)
            .max_size(options.max_size)
            .wait_timeout(options.acquire_timeout)
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| Error::Configuration(format!("cannot build the pool: {e}")))?;
        Source::Pool(pool)
    } else {
        Source::Direct(Box::new(manager), Default::default())
    };
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let engine = Engine {
        inner: Arc::new(EngineInner {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            source,
            timeout: AtomicU64::new(timeout_nanos(options.timeout)),
            options,
            echo,
            url,
            closed: AtomicBool::new(false),
            last_borrow: AtomicU64::new(0),
            tenant: std::sync::OnceLock::new(),
            routing,
        }),
    };
    if engine.inner.routing.is_some() {
        spawn_replica_checks(&engine);
    }
    if let (Some(lifetime), true) = (
        engine.inner.options.max_inactive_connection_lifetime,
        engine.inner.options.pooled,
    ) {
        spawn_inactive_sweeps(&engine, lifetime);
    }
    if let Some(budget) = &engine.inner.options.connection_budget {
        let reclaim: Arc<dyn Reclaim> = engine.inner.clone();
        budget.attach(Arc::downgrade(&reclaim));
    }
    engine.warm_up().await?;
    Ok(engine)
}

/// An optional timeout as one atomic word: `u64::MAX` is none, and a
/// timeout longer than that (585 years) is taken as none too.
fn timeout_nanos(timeout: Option<Duration>) -> u64 {
    timeout.map_or(u64::MAX, |t| {
        u64::try_from(t.as_nanos()).unwrap_or(u64::MAX)
    })
}

enum Source {
    Pool(Pool<Manager>),
    /// No pool: a connection per acquire, counted while open.
    Direct(Box<Manager>, Arc<std::sync::atomic::AtomicUsize>),
}

struct EngineInner {
    id: u64,
    source: Source,
    options: EngineOptions,
    /// The default query timeout ([`timeout_nanos`]): the options' until
    /// [`Engine::set_timeout`] changes it.
    timeout: AtomicU64,
    echo: Arc<AtomicBool>,
    url: DatabaseUrl,
    closed: AtomicBool,
    /// When the engine last lent a connection, in milliseconds of
    /// [`clock`]; kept only for engines on a connection budget, which
    /// takes idle connections from the least recently used first.
    last_borrow: AtomicU64,
    /// The tenant registry (its id) and key this engine serves, if any.
    tenant: std::sync::OnceLock<(u64, Arc<str>)>,
    /// Read replicas, when the engine has any.
    routing: Option<Routing>,
}

/// Whether any engine of the process has read replicas: until one does,
/// queries skip the question of where a read may run.
static ANY_REPLICAS: AtomicBool = AtomicBool::new(false);

/// Whether some engine has read replicas (see [`ANY_REPLICAS`]).
pub(crate) fn any_replicas() -> bool {
    ANY_REPLICAS.load(Ordering::Relaxed)
}

/// An engine's read replicas and what was routed where.
struct Routing {
    replicas: Vec<Replica>,
    next: std::sync::atomic::AtomicUsize,
    max_lag: u64,
    check_every: Duration,
    primary_reads: AtomicU64,
    writes: AtomicU64,
    fallbacks: AtomicU64,
    /// Tasks that wrote through the engine, and when (µs of [`micros`]):
    /// their reads go only to replicas known to have replayed that write.
    pins: Mutex<HashMap<TaskKey, u64>>,
    /// Whether `pins` has any, so that reads skip its lock while none do.
    pinned: AtomicBool,
}

/// How many writing tasks read-your-writes remembers at least; past this
/// the oldest half are forgotten (tasks end without telling).
const PIN_LIMIT: usize = 10_000;

/// One replica: its own engine, and whether reads may go there.
struct Replica {
    engine: Engine,
    in_rotation: AtomicBool,
    /// WAL bytes behind the primary at the last check.
    lag: AtomicU64,
    /// When (µs of [`micros`]) the last check that found the replica
    /// replayed up to the primary's position began: every write that
    /// ended before then is on the replica. 0 until one does.
    caught_up: AtomicU64,
    reads: AtomicU64,
    /// Whether a check found the server out of recovery (no standby),
    /// which is said once.
    not_standby: AtomicBool,
}

impl Routing {
    async fn new(options: &EngineOptions) -> Result<Routing> {
        let mut replicas = Vec::with_capacity(options.replicas.len());
        for url in &options.replicas {
            // The replica's pool opens lazily: a replica that is down when
            // the engine is made is out of rotation, not an error.
            let mut own = options.clone();
            own.replicas = Vec::new();
            own.min_size = 0;
            let engine = Box::pin(create_engine(url, own)).await?;
            replicas.push(Replica {
                engine,
                in_rotation: AtomicBool::new(true),
                not_standby: AtomicBool::new(false),
                lag: AtomicU64::new(0),
                caught_up: AtomicU64::new(0),
                reads: AtomicU64::new(0),
            });
        }
        Ok(Routing {
            replicas,
            next: Default::default(),
            max_lag: options.replica_max_lag,
            check_every: options.replica_check_interval,
            primary_reads: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            fallbacks: AtomicU64::new(0),
            pins: Mutex::new(HashMap::new()),
            pinned: AtomicBool::new(false),
        })
    }

    /// The next replica in rotation, round robin, that has replayed the
    /// running task's last write if it made one.
    fn pick(&self) -> Option<&Replica> {
        let wrote_at = self.task_wrote_at();
        let n = self.replicas.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n).map(|i| &self.replicas[(start + i) % n]).find(|r| {
            r.in_rotation.load(Ordering::Relaxed)
                && wrote_at.is_none_or(|at| r.caught_up.load(Ordering::Relaxed) > at)
        })
    }

    /// When the running task last wrote, if read-your-writes still
    /// remembers it.
    fn task_wrote_at(&self) -> Option<u64> {
        if !self.pinned.load(Ordering::Relaxed) {
            return None;
        }
        lock(&self.pins).get(&TaskKey::current()).copied()
    }

    /// Remembers that the running task has just written.
    fn pin_task(&self) {
        let mut pins = lock(&self.pins);
        pins.insert(TaskKey::current(), micros());
        if pins.len() > PIN_LIMIT {
            self.forget_pins(&mut pins);
        }
        self.pinned.store(!pins.is_empty(), Ordering::Relaxed);
    }

    /// Forgets the writes every replica has replayed, and over
    /// [`PIN_LIMIT`] the older half of the rest.
    fn forget_pins(&self, pins: &mut HashMap<TaskKey, u64>) {
        let horizon = self
            .replicas
            .iter()
            .map(|r| r.caught_up.load(Ordering::Relaxed))
            .min()
            .unwrap_or(u64::MAX);
        pins.retain(|_, at| *at >= horizon);
        if pins.len() > PIN_LIMIT {
            let mut times: Vec<u64> = pins.values().copied().collect();
            let middle = times.len() / 2;
            let cut = *times.select_nth_unstable(middle).1;
            pins.retain(|_, at| *at >= cut);
        }
        self.pinned.store(!pins.is_empty(), Ordering::Relaxed);
    }
}

/// What an engine with replicas routed where ([`Engine::routing`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RoutingStats {
    /// Reads that ran on a connection of the engine's own pool, the
    /// primary's (no replica in rotation or caught up with the task's
    /// writes, a fallback, `.primary()`, a locking read).
    pub primary_reads: u64,
    /// Statements that wrote (as [`Engine::routing`] counts writes) on a
    /// connection of the engine's own pool; statements on a connection or
    /// in a transaction are not counted here.
    pub writes: u64,
    /// Reads meant for a replica that went to the primary because the
    /// replica could not be reached, refused them as writes (25006) or as
    /// the primary's only (55000, recovery in progress), or cancelled them
    /// for its recovery (40001).
    pub fallbacks: u64,
    /// Each replica, in configuration order.
    pub replicas: Vec<ReplicaStats>,
}

/// One replica in [`RoutingStats`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReplicaStats {
    /// Its URL, password hidden.
    pub url: String,
    /// Reads it answered.
    pub reads: u64,
    /// Whether reads go there now (reachable, and lag within the bound).
    pub in_rotation: bool,
    /// WAL bytes behind the primary at the last check.
    pub lag_bytes: u64,
    /// `false` once a check found the server out of recovery: no standby,
    /// whose lag cannot be measured (it counts as caught up) and which
    /// does not refuse writes. A warning says so when first found.
    pub standby: bool,
}

/// Checks every replica's reachability and lag on the engine's interval,
/// for as long as the engine lives.
fn spawn_replica_checks(engine: &Engine) {
    let every = engine
        .inner
        .routing
        .as_ref()
        .map_or(Duration::from_secs(1), |r| r.check_every);
    // Replicas start in rotation; the first check comes one interval
    // later (a replica that is down meanwhile is found by the first read
    // sent to it, which falls back).
    spawn_periodic(engine, every, |engine| async move {
        engine.check_replicas().await;
    });
}

/// Closes pooled connections left unused for `lifetime`, checking four
/// times per `lifetime`, so that none stays open much past it.
fn spawn_inactive_sweeps(engine: &Engine, lifetime: Duration) {
    let every = (lifetime / 4).max(Duration::from_millis(10));
    spawn_periodic(engine, every, move |engine| async move {
        engine.close_inactive(lifetime);
    });
}

/// Runs `work` on the engine every `period`, from one period after now
/// until the engine is closed or dropped (the task holds no reference
/// that keeps it alive).
fn spawn_periodic<F, Fut>(engine: &Engine, period: Duration, work: F)
where
    F: Fn(Engine) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let weak = Arc::downgrade(&engine.inner);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(period).await;
            let Some(inner) = weak.upgrade() else { return };
            if inner.closed.load(Ordering::Acquire) {
                return;
            }
            work(Engine { inner }).await;
        }
    });
}

/// Milliseconds since the first call: a cheap monotonic stamp.
fn clock() -> u64 {
    u64::try_from(since_start().as_millis()).unwrap_or(u64::MAX)
}

/// Microseconds since the process first asked.
fn micros() -> u64 {
    u64::try_from(since_start().as_micros()).unwrap_or(u64::MAX)
}

fn since_start() -> Duration {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START.get_or_init(std::time::Instant::now).elapsed()
}

/// Renews an engine's connections ([`Engine::renew_connections`]) when
/// dropped, unless [disarmed](Self::disarm): SQL that may change enum
/// types holds one, so that the renewal comes however that SQL ends, also
/// when its future is dropped after a change committed.
pub(crate) struct RenewOnDrop(Option<Engine>);

impl RenewOnDrop {
    pub(crate) fn new(engine: &Engine) -> Self {
        RenewOnDrop(Some(engine.clone()))
    }

    /// Nothing changed: no renewal.
    pub(crate) fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for RenewOnDrop {
    fn drop(&mut self) {
        if let Some(engine) = &self.0 {
            engine.renew_connections();
        }
    }
}

impl Engine {
    /// After SQL that may have changed enum types: the pool lends no
    /// connection opened before it again ([`Manager::renew_connections`]),
    /// nor do the replicas' pools, which replay the change.
    pub(crate) fn renew_connections(&self) {
        if let Source::Pool(pool) = &self.inner.source {
            pool.manager().renew_connections();
        }
        if let Some(routing) = &self.inner.routing {
            for replica in &routing.replicas {
                replica.engine.renew_connections();
            }
        }
    }
}

impl EngineInner {
    /// Closes the idle pooled connections `close` picks, given how long
    /// each has been idle.
    fn close_idle_where(&self, mut close: impl FnMut(Duration) -> bool) -> usize {
        match &self.source {
            Source::Pool(pool) => pool
                .retain(|pg, metrics| !close(pg.idle_for(&metrics)))
                .removed
                .len(),
            Source::Direct(..) => 0,
        }
    }
}

impl Reclaim for EngineInner {
    fn close_one_idle(&self) -> bool {
        let mut once = true;
        self.close_idle_where(|_| std::mem::take(&mut once)) > 0
    }

    fn last_used(&self) -> u64 {
        self.last_borrow.load(Ordering::Relaxed)
    }
}

/// A source of database connections: a pool of diesel-async connections
/// with the engine's defaults. Cloning is cheap and shares the pool.
///
/// Query methods ([`all`](Self::all), [`status`](Self::status), ...) run on
/// the current task's reusable connection of this engine if there is one,
/// else on a pooled connection borrowed for that one query (GINO's
/// `acquire(reuse=True)`).
#[derive(Clone)]
pub struct Engine {
    inner: Arc<EngineInner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("url", &self.inner.url)
            .field("status", &self.pool_status())
            .finish()
    }
}

/// A snapshot of an engine's pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStatus {
    /// Most connections the pool may hold.
    pub max_size: usize,
    /// Connections currently open (idle or in use).
    pub size: usize,
    /// Idle connections ready to be borrowed.
    pub available: usize,
    /// Tasks waiting for a connection.
    pub waiting: usize,
}

impl PoolStatus {
    /// Connections borrowed now: open and not idle (asyncpg's pool size
    /// less its `qsize`, in GINO's tests).
    ///
    /// ```
    /// # async fn demo(engine: &gino::Engine) -> gino::Result<()> {
    /// let before = engine.pool_status().in_use();
    /// let conn = engine.acquire().await?;
    /// conn.has_raw_connection().await; // borrowed at acquire: not lazy
    /// assert_eq!(engine.pool_status().in_use(), before + 1);
    /// conn.release().await?;
    /// assert_eq!(engine.pool_status().in_use(), before);
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn in_use(&self) -> usize {
        self.size.saturating_sub(self.available)
    }
}

impl Engine {
    async fn warm_up(&self) -> Result<()> {
        let wanted = self.inner.options.min_size;
        if wanted == 0 || !self.inner.options.pooled {
            return Ok(());
        }
        // Each opening is bounded as a borrow's is: a server that accepts
        // and never answers fails the start-up rather than hanging it.
        let (deadline, limit) = (Deadline::none(), self.inner.options.acquire_timeout);
        let borrowed =
            futures_util::future::join_all((0..wanted).map(|_| self.borrow(limit, &deadline)))
                .await;
        for result in borrowed {
            if let Err(e) = result {
                self.close().await;
                return Err(e);
            }
        }
        Ok(())
    }

    pub(crate) fn id(&self) -> u64 {
        self.inner.id
    }

    /// The options this engine was created with (URL parameters applied).
    ///
    /// ```
    /// # async fn demo(url: &str) -> gino::Result<()> {
    /// let engine = gino::create_engine(&format!("{url}?max_size=3"), Default::default()).await?;
    /// assert_eq!(engine.pool_status().max_size, 3);
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn options(&self) -> &EngineOptions {
        &self.inner.options
    }

    /// Changes the default query timeout of the engine (and of its read
    /// replicas) at run time, GINO's `engine.update_execution_options(timeout=...)`:
    /// queries started from now on that have no `.timeout(..)` of their own
    /// (nor their connection's [`query_timeout`](crate::Connection::query_timeout))
    /// are cancelled after it, with [`Error::QueryTimeout`]. `None` lets
    /// them run as long as they take. [`options`](Self::options) keeps
    /// what the engine was created with.
    ///
    /// ```
    /// # async fn demo(engine: &gino::Engine) -> gino::Result<()> {
    /// use std::time::Duration;
    /// engine.set_timeout(Some(Duration::from_millis(100)));
    /// let slow = engine.status(gino::text("SELECT pg_sleep(5)")).await;
    /// assert!(matches!(slow, Err(gino::Error::QueryTimeout(_))));
    /// engine.set_timeout(None);
    /// assert_eq!(engine.timeout(), None);
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn set_timeout(&self, timeout: Option<Duration>) {
        self.inner
            .timeout
            .store(timeout_nanos(timeout), Ordering::Relaxed);
        if let Some(routing) = &self.inner.routing {
            for replica in &routing.replicas {
                replica.engine.set_timeout(timeout);
            }
        }
    }

    /// The default query timeout; see [`set_timeout`](Self::set_timeout).
    ///
    /// ```
    /// # async fn demo(url: &str) -> gino::Result<()> {
    /// use std::time::Duration;
    /// let options = gino::EngineOptions::new().timeout(Duration::from_secs(3));
    /// let engine = gino::create_engine(url, options).await?;
    /// assert_eq!(engine.timeout(), Some(Duration::from_secs(3)));
    /// # engine.close().await;
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn timeout(&self) -> Option<Duration> {
        match self.inner.timeout.load(Ordering::Relaxed) {
            u64::MAX => None,
            nanos => Some(Duration::from_nanos(nanos)),
        }
    }

    /// The URL this engine connects to (its `Display` masks the password).
    ///
    /// ```
    /// # async fn demo(engine: &gino::Engine) {
    /// println!("connected to {}", engine.url()); // postgres://user:***@host/db
    /// assert!(engine.url().database().is_some());
    /// # }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn url(&self) -> &DatabaseUrl {
        &self.inner.url
    }

    /// Turns statement logging on or off at run time.
    ///
    /// ```
    /// # async fn demo(engine: &gino::Engine) {
    /// engine.set_echo(true);
    /// assert!(engine.echo());
    /// # engine.set_echo(false);
    /// # }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn set_echo(&self, echo: bool) {
        self.inner.echo.store(echo, Ordering::Relaxed);
    }

    /// Whether statements are logged; see [`set_echo`](Self::set_echo).
    ///
    /// ```
    /// # async fn demo(url: &str) -> gino::Result<()> {
    /// let quiet = gino::create_engine(url, gino::EngineOptions::new()).await?;
    /// assert!(!quiet.echo()); // off by default
    /// let loud = gino::create_engine(url, gino::EngineOptions::new().echo(true)).await?;
    /// assert!(loud.echo());
    /// loud.set_echo(false);
    /// assert!(!loud.echo());
    /// # quiet.close().await;
    /// # loud.close().await;
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn echo(&self) -> bool {
        self.inner.echo.load(Ordering::Relaxed)
    }

    /// A snapshot of the pool. Without pooling, `size` counts the open
    /// connections and the rest is zero.
    ///
    /// A connection given back in the middle of a statement outside a
    /// transaction (its future was dropped) counts as borrowed until a task
    /// of gino's has seen the statement to its end, cancelling it if it
    /// runs on; then it is `available` again. Inside a transaction it is
    /// closed at once (and its statement cancelled).
    ///
    /// ```
    /// # async fn demo(engine: &gino::Engine) -> gino::Result<()> {
    /// let conn = engine.acquire().await?;
    /// # conn.status(gino::text("SELECT 1")).await?;
    /// let status = engine.pool_status();
    /// assert!(status.available < status.size && status.size <= status.max_size);
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn pool_status(&self) -> PoolStatus {
        match &self.inner.source {
            Source::Pool(pool) => {
                let s = pool.status();
                PoolStatus {
                    max_size: s.max_size,
                    size: s.size,
                    available: s.available,
                    waiting: s.waiting,
                }
            }
            Source::Direct(_, open) => PoolStatus {
                max_size: 0,
                size: open.load(Ordering::Relaxed),
                available: 0,
                waiting: 0,
            },
        }
    }

    /// Closes the pool: idle connections close now, borrowed ones when they
    /// come back; borrowing afterwards fails with [`Error::PoolClosed`].
    ///
    /// ```
    /// # async fn demo(engine: gino::Engine) {
    /// engine.close().await;
    /// assert!(matches!(engine.acquire().await, Err(gino::Error::PoolClosed)));
    /// # }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub async fn close(&self) {
        self.close_now();
    }

    /// Closes the pool after the connections borrowed from it come back,
    /// waiting for them at most `timeout`: what a server does at shutdown,
    /// once its in-flight requests are done. From the start no borrow
    /// succeeds ([`Error::PoolClosed`], a borrow waiting for the pool
    /// too), idle connections close, and each borrowed one closes as it
    /// comes back. Returns whether all came back in time; a connection
    /// still borrowed at the deadline is closed when it comes back.
    ///
    /// ```
    /// # async fn demo(engine: gino::Engine) {
    /// use std::time::Duration;
    /// let all_back = engine.close_gracefully(Duration::from_secs(10)).await;
    /// assert!(all_back);
    /// # }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub async fn close_gracefully(&self, timeout: Duration) -> bool {
        self.inner.closed.store(true, Ordering::Release);
        // Waiters fail now, and connections given back close rather than
        // wait in the pool for a borrow that can no longer come.
        if let Source::Pool(pool) = &self.inner.source {
            pool.close();
        }
        let deadline = deadline_after(timeout);
        let borrowed = |status: PoolStatus| status.size.saturating_sub(status.available);
        let all_back = loop {
            let out = borrowed(self.pool_status());
            if out == 0 {
                break true;
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(
                    target: "gino",
                    "closing the pool with {out} connection(s) still borrowed after {timeout:?}"
                );
                break false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        self.close_now();
        all_back
    }

    /// Marks the engine as tenant `key`'s of the registry `registry`.
    pub(crate) fn mark_tenant(&self, registry: u64, key: Arc<str>) {
        let _ = self.inner.tenant.set((registry, key));
    }

    /// The registry and key of the tenant this engine serves, if any.
    pub(crate) fn tenant(&self) -> Option<&(u64, Arc<str>)> {
        self.inner.tenant.get()
    }

    /// Connects once, so that a wrong host, database or password fails
    /// here rather than at the first query; the connection stays pooled.
    pub(crate) async fn prove(&self) -> Result<()> {
        let deadline = Deadline::none();
        self.borrow(self.inner.options.acquire_timeout, &deadline)
            .await
            .map(drop)
    }

    /// What this engine routed to its primary and replicas, if it has
    /// replicas ([`EngineOptions::replica`]).
    ///
    /// Implicit reads (plain `SELECT`s through `.gino()` or the query API
    /// of a `Gino` or an `Engine`, and the model API's `get`, `query` and
    /// `select`) go to a replica in
    /// rotation, round robin; everything else goes to the primary: writes,
    /// locking reads (`FOR UPDATE`), statements inside a transaction, on an
    /// acquired connection, or bound with `.bind(...)` to a connection.
    /// Read-your-writes, in two parts:
    /// - within a reusable connection's scope (a web request's lazy
    ///   connection, `engine.acquire()` made reusable), once a write or a
    ///   transaction ran on it, later reads of that scope run on it too,
    ///   on the primary. A write is a statement whose command tag is not
    ///   `SELECT`, one whose SQL shows a write (`WITH .. INSERT ..
    ///   SELECT`, `SELECT .. INTO`, `set_config`, `nextval`; a row lock or
    ///   a `WITH` that only reads is none),
    ///   and anything run for its effect: with `status()` or
    ///   `status_and_all()` (`CREATE TABLE .. AS` ends with a `SELECT`
    ///   tag), or by a closure on the raw connection (`Connection::run`);
    /// - a task (a tokio task, or a thread outside one) that wrote through
    ///   the engine, or on a connection (as soon as the write is
    ///   committed, while the connection is still held), or whose request
    ///   scope wrote and has ended, reads afterwards only from replicas that a
    ///   check begun after the write found replayed up to the primary's
    ///   WAL insert position (so commits with `synchronous_commit = off`
    ///   count too); until one has, from the primary. A task that keeps
    ///   writing more often than the checks run keeps reading on the
    ///   primary. The engine remembers at least the 10,000 most recent
    ///   writing tasks; a keep-alive HTTP connection is one task, so a
    ///   client that writes then reads on it sees its write.
    ///
    /// Other tasks may read a replica that has not replayed a write yet
    /// (bounded by the lag bound below): use `.primary()` for a read that
    /// must see every commit. A replica that cannot be reached, or lags
    /// more than [`EngineOptions::replica_max_lag`], leaves the rotation
    /// until a check (every [`EngineOptions::replica_check_interval`])
    /// finds it well again. A read whose replica cannot be reached, or
    /// fails there in a way the primary would not (the connection breaks
    /// or the server shuts down while the read runs, or the replica's
    /// recovery cancels it: SQLSTATE `40001`), runs again on the primary (a
    /// fallback), so a replica going away loses no read. So does a
    /// statement whose SQL reads like a read but writes (a function that
    /// inserts, say), which the replica refuses (SQLSTATE `25006`) before
    /// doing anything: it runs once, on the primary, and counts as the
    /// task's write (a function only the primary runs, refused with
    /// `55000` "recovery is in progress", runs there too); mark such a statement `.primary()` to save the
    /// replica's round trip (read-your-writes then goes by its SQL, which
    /// shows no write: run it in a transaction, which pins the task's
    /// reads, when they must see it). A replica whose
    /// pool is merely busy (no connection within the acquire timeout)
    /// stays in rotation.
    ///
    /// ```
    /// # async fn demo(url: &str) -> gino::Result<()> {
    /// // Here the "replica" is the same server, to show the routing.
    /// let engine = gino::create_engine(url, gino::EngineOptions::new().replica(url)).await?;
    /// let stats = engine.routing().expect("has replicas");
    /// assert_eq!(stats.replicas.len(), 1);
    /// # engine.close().await;
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn routing(&self) -> Option<RoutingStats> {
        let routing = self.inner.routing.as_ref()?;
        Some(RoutingStats {
            primary_reads: routing.primary_reads.load(Ordering::Relaxed),
            writes: routing.writes.load(Ordering::Relaxed),
            fallbacks: routing.fallbacks.load(Ordering::Relaxed),
            replicas: routing
                .replicas
                .iter()
                .map(|r| ReplicaStats {
                    url: r.engine.url().to_string(),
                    reads: r.reads.load(Ordering::Relaxed),
                    in_rotation: r.in_rotation.load(Ordering::Relaxed),
                    lag_bytes: r.lag.load(Ordering::Relaxed),
                    standby: !r.not_standby.load(Ordering::Relaxed),
                })
                .collect(),
        })
    }

    /// Whether reads may leave the primary.
    pub(crate) fn has_replicas(&self) -> bool {
        self.inner.routing.is_some()
    }

    /// Runs a statement that is not a replica's read (a write, or a read
    /// that must see the primary) on a connection borrowed just for it;
    /// when it wrote (as its [`writes`](Statement::writes) tells), later
    /// reads of the running task see the write (read-your-writes).
    pub(crate) async fn run_on_primary<R, S: Statement<R>>(
        &self,
        timeout: Option<Duration>,
        statement: S,
    ) -> Result<R> {
        let Some(routing) = &self.inner.routing else {
            return self.run_once(timeout, statement).await;
        };
        let writes = statement.writes();
        let (mut raw, deadline) = self.borrow_for(timeout).await?;
        let result = run_statement(raw.get(), &deadline, statement, &mut None).await;
        if writes.wrote(&raw.get().wire) {
            routing.writes.fetch_add(1, Ordering::Relaxed);
            routing.pin_task();
        } else {
            routing.primary_reads.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    /// Keeps the running task's reads off replicas that have not replayed
    /// what it wrote so far (a connection or transaction of the task that
    /// wrote has ended).
    pub(crate) fn pin_task(&self) {
        if let Some(routing) = &self.inner.routing {
            routing.pin_task();
        }
    }

    /// Runs a read on a replica in rotation, or on the primary when there
    /// is none, it cannot be reached, or the read fails there in a way the
    /// primary would not (the connection broke, the server is shutting
    /// down, a conflict with the replica's recovery cancelled it, or the
    /// replica refused a write its SQL did not show, or a function only
    /// the primary runs): the statement runs
    /// again on the primary then. A read only reads, and a refused write
    /// did nothing, so running it twice is safe.
    pub(crate) async fn run_read<R, S: Reread<R>>(
        &self,
        timeout: Option<Duration>,
        mut statement: S,
    ) -> Result<R> {
        let Some(routing) = &self.inner.routing else {
            return self.run_once(timeout, statement).await;
        };
        // Closing the engine closes its replicas last (a graceful close
        // waits first): from its start, a read borrows from none of them,
        // as from the primary, and a replica's closed pool is no fault to
        // take it out of rotation for.
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(Error::PoolClosed);
        }
        // One deadline for both tries: the statement's timeout bounds the
        // read, not each server's part of it.
        let deadline = self.deadline(timeout);
        let mut wrote = false;
        if let Some(replica) = routing.pick() {
            let error = match replica.engine.borrow_until(&deadline).await {
                Ok(mut raw) => {
                    replica.reads.fetch_add(1, Ordering::Relaxed);
                    match run_statement(raw.get(), &deadline, Again(&mut statement), &mut None)
                        .await
                    {
                        Err(e) if e.is_retryable() || primary_only(&e) => e,
                        done => return done,
                    }
                }
                // The caller's own time ran out waiting for the replica's
                // pool: a busy replica, not a broken one, and no time is
                // left to spend on the primary.
                Err(e @ Error::QueryTimeout(_)) => return Err(e),
                Err(e) => e,
            };
            wrote = refused_as_a_write(&error);
            if error.is_connection_lost() || !(error.is_retryable() || primary_only(&error)) {
                replica.in_rotation.store(false, Ordering::Relaxed);
            }
            routing.fallbacks.fetch_add(1, Ordering::Relaxed);
            let advice = if wrote {
                " (it writes: mark it `.primary()` to send it there at once)"
            } else {
                ""
            };
            tracing::warn!(
                target: "gino",
                "read on replica {} failed, running it on the primary{advice}: {error}",
                replica.engine.url()
            );
        }
        let result = self.run_until(&deadline, statement).await;
        if wrote {
            // A function that writes, say: the write is the task's, and its
            // later reads must see it.
            routing.writes.fetch_add(1, Ordering::Relaxed);
            routing.pin_task();
        } else {
            routing.primary_reads.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    /// One round of replica checks: reachable, and within the lag bound.
    async fn check_replicas(&self) {
        use diesel::dsl::sql;
        use diesel::sql_types::{BigInt, Bool, Text};
        let Some(routing) = &self.inner.routing else {
            return;
        };
        let started = micros();
        // Where the primary inserts WAL now: past every commit that has
        // returned, even with `synchronous_commit = off`, whose commits
        // return before their WAL is written. At the start of a page that
        // position lies past the page header, which a replica that has
        // replayed everything stops before: `header` is that gap then.
        let position = || {
            diesel::select(sql::<(Text, BigInt)>(
                "l::text, (pg_wal_lsn_diff(l, '0/0') \
                 % current_setting('wal_block_size')::numeric)::bigint \
                 FROM pg_current_wal_insert_lsn() AS l",
            ))
        };
        // A primary that is itself in recovery (55000) has no position to
        // compare: replicas count by answering. A primary that did not
        // answer (busy, restarting) says nothing of their lag: they may
        // leave rotation on this round, not come back into it.
        let asked: Result<Vec<(String, i64)>> = self
            .run_once(Some(routing.check_every), Load::all(position()))
            .await;
        let (primary, position_known) = match asked {
            Ok(rows) => (rows.into_iter().next(), true),
            Err(e) => (None, e.sqlstate() == Some("55000")),
        };
        for replica in &routing.replicas {
            let behind = match &primary {
                Some((lsn, _)) => format!(
                    "greatest(coalesce(pg_wal_lsn_diff('{lsn}'::pg_lsn, \
                     pg_last_wal_replay_lsn()), 0), 0)::bigint"
                ),
                None => "0::bigint".to_owned(),
            };
            let lag = replica
                .engine
                .run_once(
                    Some(routing.check_every),
                    Load::all(diesel::select(sql::<(BigInt, Bool)>(&format!(
                        "{behind}, pg_is_in_recovery()"
                    )))),
                )
                .await
                .map(|rows: Vec<(i64, bool)>| {
                    let (bytes, standby) = rows.first().copied().unwrap_or((0, true));
                    if !standby && !replica.not_standby.swap(true, Ordering::Relaxed) {
                        tracing::warn!(
                            target: "gino",
                            "replica {} is not a standby (it is not in recovery): its lag \
                             cannot be measured, so it counts as caught up, and a write that \
                             reaches it is not refused; point the replica at a hot standby",
                            replica.engine.url()
                        );
                    }
                    bytes
                });
            let well = match lag {
                Ok(_) if !position_known => replica.in_rotation.load(Ordering::Relaxed),
                Ok(bytes) => {
                    let bytes = u64::try_from(bytes).unwrap_or(0);
                    replica.lag.store(bytes, Ordering::Relaxed);
                    if primary.as_ref().is_some_and(|(_, header)| {
                        bytes == 0 || (bytes <= 40 && i64::try_from(bytes) == Ok(*header))
                    }) {
                        replica.caught_up.store(started, Ordering::Relaxed);
                    }
                    bytes <= routing.max_lag
                }
                Err(_) => false,
            };
            let was = replica.in_rotation.swap(well, Ordering::Relaxed);
            if was != well {
                tracing::info!(
                    target: "gino",
                    "replica {} {} rotation",
                    replica.engine.url(),
                    if well { "back in" } else { "out of" }
                );
            }
        }
        routing.forget_pins(&mut lock(&routing.pins));
    }

    /// Closes the pooled connections nobody has used for `idle_for`,
    /// returning how many: a quiet pool shrinks (its next borrow opens a
    /// connection again). Borrowed connections are left alone.
    ///
    /// ```
    /// # async fn demo(engine: gino::Engine) -> gino::Result<()> {
    /// use std::time::Duration;
    /// drop(engine.acquire().await?); // one idle connection now
    /// assert_eq!(engine.close_idle(Duration::ZERO), 1);
    /// assert_eq!(engine.pool_status().size, 0);
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn close_idle(&self, idle_for: Duration) -> usize {
        self.inner.close_idle_where(|idle| idle >= idle_for)
    }

    /// [`close_idle`](Self::close_idle) that keeps `min_size` connections
    /// open: the sweep of `max_inactive_connection_lifetime`.
    fn close_inactive(&self, lifetime: Duration) {
        let keep = self.inner.options.min_size;
        let mut open = self.pool_status().size;
        let closed = self.inner.close_idle_where(|idle| {
            let close = open > keep && idle >= lifetime;
            open -= usize::from(close);
            close
        });
        if closed > 0 {
            tracing::debug!(target: "gino", "closed {closed} connections inactive for {lifetime:?}");
        }
    }

    /// Whether [`close`](Self::close) (or a graceful close) has begun.
    ///
    /// ```
    /// # async fn demo(engine: gino::Engine) {
    /// assert!(!engine.is_closed());
    /// engine.close().await;
    /// assert!(engine.is_closed());
    /// # }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    /// Closing needs no waiting; `close` is async so that it can wait for
    /// borrowed connections later without an API change.
    pub(crate) fn close_now(&self) {
        self.inner.closed.store(true, Ordering::Release);
        if let Source::Pool(pool) = &self.inner.source {
            pool.close();
        }
        if let Some(routing) = &self.inner.routing {
            for replica in &routing.replicas {
                replica.engine.close_now();
            }
        }
    }

    /// Borrows a raw connection, waiting at most `acquire_timeout` for the
    /// pool and never past `deadline`.
    pub(crate) async fn borrow(
        &self,
        acquire_timeout: Option<Duration>,
        deadline: &Deadline,
    ) -> Result<RawConn> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(Error::PoolClosed);
        }
        if self.inner.options.connection_budget.is_some() {
            self.inner.last_borrow.store(clock(), Ordering::Relaxed);
        }
        match &self.inner.source {
            Source::Pool(pool) => {
                let remaining = deadline.remaining();
                let wait = match (acquire_timeout, remaining) {
                    (Some(a), Some(r)) => Some(a.min(r)),
                    (a, r) => a.or(r),
                };
                // Not boxed: the checkout (2 KB; opening a connection is boxed
                // in `Manager::create`) costs less to carry than to allocate.
                match deadline.wait(checkout(pool, wait)).await? {
                    Ok(object) => Ok(RawConn::pooled(object)),
                    Err(PoolError::Timeout(_)) => match (acquire_timeout, remaining) {
                        (Some(a), Some(r)) if a < r => Err(Error::PoolTimeout(a)),
                        (Some(a), None) => Err(Error::PoolTimeout(a)),
                        _ => Err(deadline.error()),
                    },
                    Err(PoolError::Backend(e)) => Err(e),
                    Err(PoolError::Closed) => Err(Error::PoolClosed),
                    Err(e) => Err(Error::Connection(e.to_string())),
                }
            }
            Source::Direct(manager, open) => {
                let opening = Box::pin(manager.open());
                let conn = match acquire_timeout {
                    // Opening is an unpooled engine's whole acquiring.
                    Some(limit) => deadline
                        .wait(tokio::time::timeout(limit, opening))
                        .await?
                        .map_err(|_| Error::PoolTimeout(limit))??,
                    None => deadline.wait(opening).await??,
                };
                Ok(RawConn::direct(conn, OpenCount::new(open)))
            }
        }
    }

    /// Runs one statement on a connection borrowed just for it.
    pub(crate) async fn run_once<R, S: Statement<R>>(
        &self,
        timeout: Option<Duration>,
        statement: S,
    ) -> Result<R> {
        self.run_until(&self.deadline(timeout), statement).await
    }

    /// [`run_once`](Self::run_once) due by `deadline`.
    async fn run_until<R, S: Statement<R>>(&self, deadline: &Deadline, statement: S) -> Result<R> {
        let mut raw = self.borrow_until(deadline).await?;
        run_statement(raw.get(), deadline, statement, &mut None).await
    }

    /// A connection for one statement, and the statement's deadline (its
    /// `timeout`, else the engine's), which the wait for it counts against.
    async fn borrow_for(&self, timeout: Option<Duration>) -> Result<(RawConn, Deadline)> {
        let deadline = self.deadline(timeout);
        let raw = self.borrow_until(&deadline).await?;
        Ok((raw, deadline))
    }

    /// A connection for a statement due by `deadline`, which the wait for
    /// it counts against.
    async fn borrow_until(&self, deadline: &Deadline) -> Result<RawConn> {
        self.borrow(self.inner.options.acquire_timeout, deadline)
            .await
    }

    /// The deadline of a statement starting now: its `timeout`, else the
    /// engine's.
    pub(crate) fn deadline(&self, timeout: Option<Duration>) -> Deadline {
        Deadline::new(timeout.or_else(|| self.timeout()))
    }
}

/// Something that names an engine when asked: an engine, or a database
/// whose bound engine is looked up at that moment.
pub(crate) trait EngineSource: Sync {
    fn engine(&self) -> Result<Engine>;
}

impl EngineSource for Engine {
    fn engine(&self) -> Result<Engine> {
        Ok(self.clone())
    }
}

/// Something an engine can be made from: a URL, a URL with options, or an
/// existing engine. Accepted by [`Gino::set_bind`](crate::Gino::set_bind).
pub trait IntoEngine: Send {
    /// Creates (or hands over) the engine.
    fn into_engine(self) -> impl Future<Output = Result<Engine>> + Send;
}

impl IntoEngine for Engine {
    async fn into_engine(self) -> Result<Engine> {
        Ok(self)
    }
}

impl IntoEngine for &str {
    async fn into_engine(self) -> Result<Engine> {
        create_engine(self, EngineOptions::default()).await
    }
}

impl IntoEngine for String {
    async fn into_engine(self) -> Result<Engine> {
        create_engine(&self, EngineOptions::default()).await
    }
}

impl IntoEngine for &String {
    async fn into_engine(self) -> Result<Engine> {
        create_engine(self, EngineOptions::default()).await
    }
}

impl<S: AsRef<str> + Send> IntoEngine for (S, EngineOptions) {
    async fn into_engine(self) -> Result<Engine> {
        create_engine(self.0.as_ref(), self.1).await
    }
}

/// Checks a connection out of `pool`, waiting at most `wait` for one.
///
/// A free connection is taken without arming the wait's timer: a tokio
/// timer takes a reference to the runtime (an atomic both workers write)
/// and reads the clock, on every checkout, for a wait that almost never
/// happens. Only when the pool has none free does the checkout wait, with
/// the timer. A waiter already queued keeps its place: a connection given
/// back goes to the queue's first waiter before anyone can take it without
/// waiting.
async fn checkout(
    pool: &Pool<Manager>,
    wait: Option<Duration>,
) -> std::result::Result<Object<Manager>, PoolError<Error>> {
    // Opening a connection (a free slot, none idle) counts against the
    // wait too: a server that accepts and never answers must not hold the
    // caller past it. deadpool arms that timer only when it opens one.
    let waits = |slot| Timeouts {
        wait: slot,
        create: wait,
        ..Timeouts::default()
    };
    if wait.is_some_and(|wait| !wait.is_zero()) {
        // deadpool reads a zero wait as "only if one is free now".
        match pool.timeout_get(&waits(Some(Duration::ZERO))).await {
            Err(PoolError::Timeout(TimeoutType::Wait)) => {}
            taken => return taken,
        }
    }
    pool.timeout_get(&waits(wait)).await
}

/// Whether a replica refused `error`'s statement as a write (SQLSTATE
/// `25006`, read-only SQL transaction): a statement whose SQL looked like a
/// read wrote (a function that writes, `nextval`, `SELECT ... INTO`).
/// The replica did nothing, and the primary can run it.
fn refused_as_a_write(error: &Error) -> bool {
    error.sqlstate() == Some("25006")
}

/// Whether a replica refused `error`'s statement as only the primary can
/// run it: a write ([`refused_as_a_write`]), or a function a server in
/// recovery refuses (`pg_current_wal_lsn()`, say: SQLSTATE `55000` with
/// "recovery is in progress"; other `55000`s, such as `currval` of a
/// sequence this session never stepped, would mean something else on the
/// primary). The replica stays in rotation; the primary runs it.
fn primary_only(error: &Error) -> bool {
    refused_as_a_write(error)
        || matches!(error, Error::Database(e)
            if e.code() == "55000" && e.message().contains("recovery is in progress"))
}

#[cfg(test)]
pub(crate) mod tests {
    use crate::statement::{Deadline, Load};

    /// An engine that has not connected (and cannot): for the sizes of
    /// the futures it makes.
    pub(crate) async fn unconnected() -> crate::Engine {
        crate::create_engine(
            "postgresql://nobody@127.0.0.1:1/x",
            crate::EngineOptions::new().min_size(0),
        )
        .await
        .expect("an engine that has not connected yet")
    }

    /// A test's own database and an engine on it; keep the database
    /// alive as long as the engine (it is dropped when the value is).
    pub(crate) async fn connected() -> (gino_testkit::TestDatabase, crate::Engine) {
        let db = gino_testkit::TestDatabase::create().await;
        let engine = crate::create_engine(db.url(), crate::EngineOptions::new())
            .await
            .expect("engine for the test database");
        (db, engine)
    }

    /// Every statement future embeds these; their state is moved (memcpy)
    /// each time such a future is created, boxed or awaited, which measured
    /// 18k instructions per lookup when the opening of a connection was
    /// inline; 1.6 KB and 2.1 KB until the wait for a deadline stopped
    /// holding the checkout twice and the rare round trips (a resync, a
    /// deferred rollback, a `BEGIN` sent on its own) were boxed. Sizes, not
    /// times: they do not drift.
    #[tokio::test]
    async fn statement_futures_stay_small() {
        let engine = unconnected().await;
        let query = || diesel::select(diesel::dsl::sql::<diesel::sql_types::Integer>("1"));
        let statement = || Load::<_, i32>::all(query());
        let deadline = Deadline::none();
        let borrow = std::mem::size_of_val(&engine.borrow(None, &deadline));
        let run_once = std::mem::size_of_val(&engine.run_once(None, statement()));
        let root = crate::root::Root::new(engine.clone(), None, None);
        let explicit = crate::root::Access::Explicit;
        let on_root = std::mem::size_of_val(&root.run_as(explicit, None, statement()));
        assert!(borrow <= 1024, "Engine::borrow: {borrow} bytes");
        assert!(run_once <= 1280, "Engine::run_once: {run_once} bytes");
        assert!(on_root <= 1280, "Root::run_as: {on_root} bytes");
    }
}
