//! Tenants: a database per tenant, each served by an engine of its own
//! that is made on first use, kept while used, and closed when evicted.
//!
//! GINO's FAQ ("How to use multiple databases for different users on the
//! fly?") keeps a dict of engines keyed by database name, creates missing
//! ones in a future shared by concurrent first requests, and binds the
//! request's engine in a context variable. [`Tenants`] is that recipe made
//! safe at scale: creation is single-flight and a failure is not cached;
//! the number of live engines is capped, the least recently used going
//! first and closing only once the work still using it is done; a
//! [`ConnectionBudget`] caps the connections of all tenants together; quiet
//! pools shrink. [`Tenants::run`] (and the web extensions' tenant
//! middleware) run work with the database bound to the tenant's engine
//! ([`Gino::scoped_bind`]); a connection of one tenant used inside another
//! tenant's scope fails with [`Error::TenantMismatch`].
//!
//! Uses: `api` (scoped binds), `engine`, `budget`, `config`.

use std::collections::HashMap;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::api::Gino;
use crate::budget::ConnectionBudget;
use crate::config::EngineOptions;
use crate::engine::{Engine, PoolStatus, create_engine};
use crate::error::{Error, Result};

type Locate =
    Box<dyn Fn(String) -> Pin<Box<dyn Future<Output = Result<String>> + Send>> + Send + Sync>;
type Prepare =
    Box<dyn Fn(Engine) -> Pin<Box<dyn Future<Output = Result<()>> + Send>> + Send + Sync>;

/// The engines of a database's tenants (see the [module](self) docs).
/// Cloning shares the registry.
///
/// ```
/// # async fn demo(url: &str) -> gino::Result<()> {
/// use diesel::sql_types::Text;
/// use gino::prelude::*;
///
/// static DB: Gino = Gino::new();
/// let base = url.to_owned();
/// let tenants = gino::Tenants::builder(&DB, move |tenant: String| {
///     // Any key-to-URL rule; here every tenant shares the test database.
///     // A key may come from a request: one that is no plain name is
///     // nobody's, rather than text spliced into the URL.
///     let url = base.clone();
///     async move {
///         if tenant.is_empty() || !tenant.chars().all(|c| c.is_ascii_alphanumeric()) {
///             return Err(gino::Error::UnknownTenant(tenant));
///         }
///         Ok(format!("{url}?application_name=tenant_{tenant}"))
///     }
/// })
/// .cap(100)
/// .connections(20)
/// .build();
///
/// let name = tenants
///     .run("acme", async {
///         // Implicit queries run on acme's engine.
///         DB.one::<String, _>(diesel::select(diesel::dsl::sql::<Text>(
///             "current_setting('application_name')",
///         )))
///         .await
///     })
///     .await??;
/// assert_eq!(name, "tenant_acme");
/// assert!(matches!(
///     tenants.lease("x&host=elsewhere").await,
///     Err(gino::Error::UnknownTenant(_))
/// ));
/// assert_eq!(tenants.stats().live, 1);
/// tenants.close();
/// # Ok(()) }
/// # gino_testkit::doc::run(demo);
/// ```
#[derive(Clone)]
pub struct Tenants {
    inner: Arc<Inner>,
}

struct Inner {
    id: u64,
    db: &'static Gino,
    locate: Locate,
    prepare: Option<Prepare>,
    options: EngineOptions,
    cap: usize,
    idle_after: Duration,
    budget: Option<ConnectionBudget>,
    state: Mutex<State>,
    created: AtomicU64,
    evicted: AtomicU64,
    failed: AtomicU64,
}

/// A tenant being made: everyone asking for it meanwhile waits for the one
/// creation, and shares its failure (nobody tries again behind it; the
/// next request after it starts afresh).
type Pending = Arc<Creation>;

#[derive(Default)]
struct Creation {
    made: tokio::sync::OnceCell<Arc<Tenant>>,
    failed: Mutex<Option<Failure>>,
}

/// A failed creation, told again to each caller that waited for it: each
/// gets the error the creation got, so that all are answered alike (a
/// wrong password is no "try again" for the callers behind the first).
struct Failure(Error);

/// The error of tenant `key`'s creation, as every caller gets it: a
/// connection's failure says whose engine it was.
fn creation_error(key: &str, error: Error) -> Error {
    match error {
        Error::Connection(message) => Error::Connection(format!(
            "tenant `{key}`'s engine could not be made: {message}"
        )),
        other => other,
    }
}

impl Creation {
    /// The tenant, made once by whoever comes first.
    async fn run<F: Future<Output = Result<Arc<Tenant>>>>(
        &self,
        key: &str,
        create: impl FnOnce() -> F,
    ) -> Result<&Arc<Tenant>> {
        self.made
            .get_or_try_init(|| async {
                if let Some(Failure(error)) =
                    &*self.failed.lock().unwrap_or_else(|p| p.into_inner())
                {
                    return Err(error.replay());
                }
                let made = create().await.map_err(|e| creation_error(key, e));
                if let Err(e) = &made {
                    *self.failed.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some(Failure(e.replay()));
                }
                made
            })
            .await
    }
}

/// A caller's wait for a tenant's creation. The creation leaves the
/// registry's list when it ends, or when its last waiter is dropped (a
/// client gone): a key nobody waits for any more must not stay listed.
struct Waiting<'a> {
    tenants: &'a Tenants,
    key: &'a str,
    /// Taken, and dropped under the registry's lock, so that waiters
    /// dropped at once count one another out.
    pending: Option<Pending>,
}

impl Waiting<'_> {
    fn creation(&self) -> &Creation {
        self.pending.as_ref().expect("taken only when done")
    }

    /// Ends the wait with the creation's outcome: the creation leaves the
    /// list (anyone still waiting holds it), and the tenant comes out.
    fn done(mut self, state: &mut State, made: Result<Arc<Tenant>>) -> Result<Arc<Tenant>> {
        let pending = self.pending.take().expect("done once");
        self.unlist(state, &pending);
        made
    }

    /// Takes the creation off the registry's list, unless another has
    /// taken its place there.
    fn unlist(&self, state: &mut State, pending: &Pending) {
        if state
            .pending
            .get(self.key)
            .is_some_and(|p| Arc::ptr_eq(p, pending))
        {
            state.pending.remove(self.key);
        }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let Some(pending) = self.pending.take() else {
            return;
        };
        let mut state = self.tenants.lock();
        // The list's and this: nobody else waits for it.
        if Arc::strong_count(&pending) == 2 {
            self.unlist(&mut state, &pending);
        }
        drop(pending);
    }
}

struct State {
    live: HashMap<Arc<str>, Arc<Tenant>>,
    pending: HashMap<Arc<str>, Pending>,
    last_sweep: Instant,
    closed: bool,
}

/// One tenant's engine and who is using it.
struct Tenant {
    key: Arc<str>,
    engine: Engine,
    leases: AtomicUsize,
    /// Out of the registry: the engine closes when its last lease ends.
    retired: AtomicBool,
    /// When it was last leased, for least-recently-used eviction.
    last_used: Mutex<Instant>,
}

impl Tenant {
    fn lease(self: &Arc<Self>) -> TenantLease {
        self.leases.fetch_add(1, Ordering::SeqCst);
        *self.last_used.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        TenantLease {
            tenant: self.clone(),
        }
    }

    /// Takes the tenant out of service: its engine closes now if nobody
    /// uses it, else when the last user is done.
    fn retire(&self) {
        self.retired.store(true, Ordering::SeqCst);
        if self.leases.load(Ordering::SeqCst) == 0 {
            self.engine.close_now();
        }
    }

    fn last_used(&self) -> Instant {
        *self.last_used.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A tenant's engine, kept open while the lease lives (a request, a job).
///
/// ```
/// # async fn demo(tenants: gino::Tenants) -> gino::Result<()> {
/// let lease = tenants.lease("acme").await?;
/// assert_eq!(lease.key(), "acme");
/// let rows = lease.engine().status(diesel::sql_query("SELECT 1")).await?;
/// # let _ = rows;
/// # Ok(()) }
/// # gino_testkit::doc::run(demo);
/// ```
pub struct TenantLease {
    tenant: Arc<Tenant>,
}

impl TenantLease {
    /// The tenant's engine.
    ///
    /// ```
    /// # async fn demo(tenants: gino::Tenants) -> gino::Result<()> {
    /// use diesel::{dsl::sql, sql_types::Text};
    /// let lease = tenants.lease("acme").await?;
    /// let q = diesel::select(sql::<Text>("current_setting('application_name')"));
    /// // The test's tenants differ by application name: acme's engine is acme's.
    /// assert_eq!(lease.engine().one::<String, _>(q).await?, "tenant_acme");
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn engine(&self) -> &Engine {
        &self.tenant.engine
    }

    /// The tenant's key.
    ///
    /// ```
    /// # async fn demo(tenants: gino::Tenants) -> gino::Result<()> {
    /// let lease = tenants.lease("globex").await?;
    /// assert_eq!(lease.key(), "globex");
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn key(&self) -> &str {
        &self.tenant.key
    }
}

impl std::fmt::Debug for TenantLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantLease")
            .field("key", &self.key())
            .finish()
    }
}

impl Drop for TenantLease {
    fn drop(&mut self) {
        let tenant = &self.tenant;
        if tenant.leases.fetch_sub(1, Ordering::SeqCst) == 1
            && tenant.retired.load(Ordering::SeqCst)
        {
            tenant.engine.close_now();
        }
    }
}

/// A snapshot of a registry ([`Tenants::stats`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TenantStats {
    /// Tenants with a live engine.
    pub live: usize,
    /// Engines made since the registry began.
    pub created: u64,
    /// Engines evicted to stay within the cap.
    pub evicted: u64,
    /// Creations that failed (not cached: the next request tries again).
    pub failed: u64,
    /// Tenants whose engine is being made now.
    pub creating: usize,
    /// Connections open across all tenants, when there is a budget.
    pub open_connections: Option<usize>,
    /// Each live tenant, by key.
    pub tenants: Vec<TenantUsage>,
}

/// One tenant in [`TenantStats`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TenantUsage {
    /// The tenant's key.
    pub key: String,
    /// Requests or jobs using it now.
    pub in_use: usize,
    /// Its pool.
    pub pool: PoolStatus,
}

/// Configures a [`Tenants`] registry ([`Tenants::builder`]).
pub struct TenantsBuilder {
    db: &'static Gino,
    locate: Locate,
    prepare: Option<Prepare>,
    options: EngineOptions,
    cap: usize,
    connections: Option<usize>,
    idle_after: Duration,
}

impl std::fmt::Debug for TenantsBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantsBuilder")
            .field("options", &self.options)
            .field("cap", &self.cap)
            .field("connections", &self.connections)
            .field("idle_after", &self.idle_after)
            .finish()
    }
}

impl TenantsBuilder {
    /// Options of every tenant's engine (pool size, timeouts, TLS, ...);
    /// the defaults otherwise. Read replicas are not among them: a replica
    /// URL names one database, and every tenant's reads would go there, so
    /// a tenant's engine with replicas in these options is refused
    /// ([`Error::Configuration`]).
    ///
    /// ```
    /// # async fn demo(url: &'static str) -> gino::Result<()> {
    /// static DB: gino::Gino = gino::Gino::secondary();
    /// let builder = gino::Tenants::builder(&DB, move |_tenant: String| async move { Ok(url.to_owned()) });
    /// let tenants = builder.options(gino::EngineOptions::new().max_size(5)).build();
    /// let lease = tenants.lease("acme").await?;
    /// assert_eq!(lease.engine().pool_status().max_size, 5);
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn options(mut self, options: EngineOptions) -> Self {
        self.options = options;
        self
    }

    /// The most tenants with a live engine (default 64); past it, the least
    /// recently used is evicted (its engine closes once nobody uses it).
    ///
    /// ```
    /// # async fn demo(url: &'static str) -> gino::Result<()> {
    /// static DB: gino::Gino = gino::Gino::secondary();
    /// let builder = gino::Tenants::builder(&DB, move |_tenant: String| async move { Ok(url.to_owned()) });
    /// let tenants = builder.cap(1).build();
    /// drop(tenants.lease("acme").await?);
    /// drop(tenants.lease("globex").await?); // acme's engine makes room
    /// let stats = tenants.stats();
    /// assert_eq!((stats.live, stats.evicted), (1, 1));
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn cap(mut self, cap: usize) -> Self {
        self.cap = cap.max(1);
        self
    }

    /// The most connections open across all tenants (default: no limit but
    /// each pool's own): opening one more waits, up to the acquire timeout,
    /// and idle connections of other tenants are closed to make room.
    ///
    /// ```
    /// # async fn demo(url: &'static str) -> gino::Result<()> {
    /// static DB: gino::Gino = gino::Gino::secondary();
    /// let builder = gino::Tenants::builder(&DB, move |_tenant: String| async move { Ok(url.to_owned()) });
    /// let tenants = builder.connections(50).build();
    /// let _lease = tenants.lease("acme").await?;
    /// assert!(tenants.stats().open_connections.is_some_and(|n| (1..=50).contains(&n)));
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn connections(mut self, limit: usize) -> Self {
        self.connections = Some(limit.max(1));
        self
    }

    /// How long a connection may sit idle before its pool closes it
    /// (default 60 s); checked as tenants are used.
    ///
    /// ```
    /// # async fn demo(url: &'static str) -> gino::Result<()> {
    /// # static DB: gino::Gino = gino::Gino::secondary();
    /// # let builder = gino::Tenants::builder(&DB, move |_tenant: String| async move { Ok(url.to_owned()) });
    /// let builder = builder.idle_after(std::time::Duration::from_secs(10));
    /// assert!(format!("{builder:?}").contains("idle_after: 10s"));
    /// let tenants = builder.build();
    /// # let _ = tenants;
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn idle_after(mut self, idle_after: Duration) -> Self {
        self.idle_after = idle_after;
        self
    }

    /// Runs `prepare` on each tenant's new engine before any work uses it
    /// (create tables, run migrations, check a schema version); when it
    /// fails, the engine is closed and the request gets its error (the next
    /// one tries again).
    ///
    /// ```
    /// # async fn demo(url: &'static str) -> gino::Result<()> {
    /// static DB: gino::Gino = gino::Gino::secondary();
    /// let builder = gino::Tenants::builder(&DB, move |_tenant: String| async move { Ok(url.to_owned()) });
    /// let tenants = builder
    ///     .prepare(|engine: gino::Engine| async move {
    ///         engine.status(gino::text("CREATE TABLE IF NOT EXISTS seen (x int)")).await?;
    ///         Ok(())
    ///     })
    ///     .build();
    /// let lease = tenants.lease("acme").await?;
    /// assert!(lease.engine().has_table("seen").await?);
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn prepare<F, Fut>(mut self, prepare: F) -> Self
    where
        F: Fn(Engine) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        self.prepare = Some(Box::new(move |engine| Box::pin(prepare(engine))));
        self
    }

    /// The registry, once the options every tenant's engine is made with
    /// are known to be good: a start-up that checks them fails with
    /// [`Error::Configuration`] rather than serve every tenant's first
    /// request a 500 (a pool's `min_size` above the `connections` budget,
    /// a zero `acquire_timeout`, ...).
    ///
    /// ```
    /// static DB: gino::Gino = gino::Gino::new();
    /// let builder = || gino::Tenants::builder(&DB, |tenant: String| async move {
    ///     Ok(format!("postgres://app@db.internal/app_{tenant}"))
    /// });
    /// let options = gino::EngineOptions::new().min_size(5);
    /// assert!(builder().options(options.clone()).connections(3).try_build().is_err());
    /// assert!(builder().options(options).connections(5).try_build().is_ok());
    /// ```
    pub fn try_build(self) -> Result<Tenants> {
        let tenants = self.build();
        tenants.inner.options.validate()?;
        Ok(tenants)
    }

    /// The registry. Its engines are made on first use, so options they
    /// cannot be made with fail each tenant's first request;
    /// [`try_build`](Self::try_build) refuses them at once.
    ///
    /// ```
    /// static DB: gino::Gino = gino::Gino::new();
    /// let tenants = gino::Tenants::builder(&DB, |tenant: String| async move {
    ///     Ok(format!("postgres://app@db.internal/app_{tenant}"))
    /// })
    /// .build();
    /// assert_eq!(tenants.stats().live, 0); // engines are made on first use
    /// ```
    pub fn build(self) -> Tenants {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let budget = self.connections.map(ConnectionBudget::new);
        let options = match &budget {
            Some(budget) => self.options.connection_budget(budget.clone()),
            None => self.options,
        };
        Tenants {
            inner: Arc::new(Inner {
                id: NEXT.fetch_add(1, Ordering::Relaxed),
                db: self.db,
                locate: self.locate,
                prepare: self.prepare,
                options,
                cap: self.cap,
                idle_after: self.idle_after,
                budget,
                state: Mutex::new(State {
                    live: HashMap::new(),
                    pending: HashMap::new(),
                    last_sweep: Instant::now(),
                    closed: false,
                }),
                created: AtomicU64::new(0),
                evicted: AtomicU64::new(0),
                failed: AtomicU64::new(0),
            }),
        }
    }
}

impl std::fmt::Debug for Tenants {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tenants")
            .field("cap", &self.inner.cap)
            .field("budget", &self.inner.budget)
            .field("live", &self.lock().live.len())
            .finish()
    }
}

impl Tenants {
    /// A registry for `db`, whose tenants' database URLs `locate` gives
    /// (or an error: [`Error::UnknownTenant`] answers 404 on the web). The
    /// key is the caller's (a header, a subdomain, a claim): `locate` is
    /// where to check it.
    ///
    /// ```
    /// static DB: gino::Gino = gino::Gino::new();
    /// let tenants = gino::Tenants::builder(&DB, |tenant: String| async move {
    ///     if !tenant.chars().all(|c| c.is_ascii_alphanumeric()) {
    ///         return Err(gino::Error::UnknownTenant(tenant));
    ///     }
    ///     Ok(format!("postgres://app@db.internal/app_{tenant}"))
    /// })
    /// .build();
    /// # let _ = tenants;
    /// ```
    pub fn builder<F, Fut>(db: &'static Gino, locate: F) -> TenantsBuilder
    where
        F: Fn(String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String>> + Send + 'static,
    {
        TenantsBuilder {
            db,
            locate: Box::new(move |key| Box::pin(locate(key))),
            prepare: None,
            options: EngineOptions::default(),
            cap: 64,
            connections: None,
            idle_after: Duration::from_secs(60),
        }
    }

    /// The database whose engine the tenants' scopes replace.
    ///
    /// ```
    /// static DB: gino::Gino = gino::Gino::new();
    /// let tenants = gino::Tenants::builder(&DB, |tenant: String| async move {
    ///     Ok(format!("postgres://app@db.internal/app_{tenant}"))
    /// })
    /// .build();
    /// assert!(std::ptr::eq(tenants.db(), &DB));
    /// ```
    pub fn db(&self) -> &'static Gino {
        self.inner.db
    }

    /// Runs `fut` with [`db`](Self::db) bound to tenant `key`'s engine
    /// (made if needed) for the current task; the engine stays open until
    /// `fut` is done. Fails before running `fut` when the tenant's engine
    /// cannot be made.
    ///
    /// ```
    /// # async fn demo(tenants: gino::Tenants) -> gino::Result<()> {
    /// let status = tenants
    ///     .run("acme", async { tenants.db().status(diesel::sql_query("SELECT 1")).await })
    ///     .await??;
    /// assert_eq!(status, "SELECT 1");
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub async fn run<F: IntoFuture>(&self, key: &str, fut: F) -> Result<F::Output> {
        let lease = self.lease(key).await?;
        Ok(self.inner.db.scoped_bind(lease.engine(), fut).await)
    }

    /// Tenant `key`'s engine, made on first use: concurrent first callers
    /// share one creation; a failed one is not remembered.
    ///
    /// ```
    /// # async fn demo(tenants: gino::Tenants) -> gino::Result<()> {
    /// let (a, b) = tokio::join!(tenants.lease("acme"), tenants.lease("acme"));
    /// assert_eq!(tenants.stats().created, 1);
    /// # drop((a?, b?));
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub async fn lease(&self, key: &str) -> Result<TenantLease> {
        loop {
            let pending = {
                let mut state = self.lock();
                if state.closed {
                    return Err(Error::PoolClosed);
                }
                self.sweep(&mut state);
                if let Some(tenant) = state.live.get(key) {
                    return Ok(tenant.lease());
                }
                let pending = state.pending.entry(Arc::from(key)).or_default().clone();
                Waiting {
                    tenants: self,
                    key,
                    pending: Some(pending),
                }
            };
            let made = pending
                .creation()
                .run(key, || self.create(key))
                .await
                .cloned();
            let mut state = self.lock();
            let tenant = pending.done(&mut state, made)?;
            match state.live.get(key) {
                Some(live) if Arc::ptr_eq(live, &tenant) => return Ok(tenant.lease()),
                // Made by a creation that lost the race with another one.
                Some(live) => {
                    let lease = live.lease();
                    tenant.retire();
                    return Ok(lease);
                }
                // Closed while it was being made: nobody will use it.
                None if state.closed => {
                    tenant.retire();
                    return Err(Error::PoolClosed);
                }
                None if tenant.retired.load(Ordering::SeqCst) => continue,
                None => {
                    state.live.insert(tenant.key.clone(), tenant.clone());
                    let lease = tenant.lease();
                    self.evict_over_cap(&mut state, key);
                    return Ok(lease);
                }
            }
        }
    }

    /// What the registry holds now.
    ///
    /// ```
    /// # async fn demo(tenants: gino::Tenants) -> gino::Result<()> {
    /// let lease = tenants.lease("acme").await?;
    /// let stats = tenants.stats();
    /// assert_eq!((stats.live, stats.tenants[0].key.as_str(), stats.tenants[0].in_use), (1, "acme", 1));
    /// # drop(lease);
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn stats(&self) -> TenantStats {
        let state = self.lock();
        let mut tenants: Vec<TenantUsage> = state
            .live
            .values()
            .map(|t| TenantUsage {
                key: t.key.to_string(),
                in_use: t.leases.load(Ordering::SeqCst),
                pool: t.engine.pool_status(),
            })
            .collect();
        tenants.sort_by(|a, b| a.key.cmp(&b.key));
        TenantStats {
            live: state.live.len(),
            created: self.inner.created.load(Ordering::Relaxed),
            evicted: self.inner.evicted.load(Ordering::Relaxed),
            failed: self.inner.failed.load(Ordering::Relaxed),
            creating: state.pending.len(),
            open_connections: self.inner.budget.as_ref().map(ConnectionBudget::open),
            tenants,
        }
    }

    /// Stops making engines and closes every tenant's engine, each once the
    /// work still using it is done; leasing afterwards fails with
    /// [`Error::PoolClosed`] (until a web extension that closed them
    /// connects again: `gino::web::Extension::connect`).
    ///
    /// ```
    /// # async fn demo(tenants: gino::Tenants) -> gino::Result<()> {
    /// tenants.close();
    /// assert!(matches!(tenants.lease("acme").await, Err(gino::Error::PoolClosed)));
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        for (_, tenant) in state.live.drain() {
            tenant.retire();
        }
    }

    /// Makes engines again after a [`close`](Self::close): for a web
    /// extension that serves again (an app restarted in the same process).
    #[cfg(feature = "web")]
    pub(crate) fn reopen(&self) {
        self.lock().closed = false;
    }

    async fn create(&self, key: &str) -> Result<Arc<Tenant>> {
        let made = async {
            if !self.inner.options.replicas.is_empty() {
                return Err(Error::Configuration(
                    "a tenant registry's engine options name read replicas: a replica URL is \
                     one database, and every tenant's reads would go to it; leave replicas \
                     out of the tenants' options"
                        .to_owned(),
                ));
            }
            let url = (self.inner.locate)(key.to_owned()).await?;
            let engine = create_engine(&url, self.inner.options.clone()).await?;
            let ready = async {
                engine.prove().await?;
                match &self.inner.prepare {
                    Some(prepare) => prepare(engine.clone()).await,
                    None => Ok(()),
                }
            };
            match ready.await {
                Ok(()) => Ok(engine),
                Err(e) => {
                    engine.close_now();
                    Err(e)
                }
            }
        }
        .await;
        let engine = match made {
            Ok(engine) => engine,
            Err(e) => {
                self.inner.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(target: "gino", "cannot make tenant `{key}`'s engine: {e}");
                // 3D000: the database does not exist.
                return Err(match e.sqlstate() {
                    Some("3D000") => Error::UnknownTenant(key.to_owned()),
                    _ => e,
                });
            }
        };
        let key: Arc<str> = Arc::from(key);
        engine.mark_tenant(self.inner.id, key.clone());
        self.inner.created.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(target: "gino", "tenant `{key}`'s engine is ready");
        Ok(Arc::new(Tenant {
            key,
            engine,
            leases: AtomicUsize::new(0),
            retired: AtomicBool::new(false),
            last_used: Mutex::new(Instant::now()),
        }))
    }

    /// Evicts the least recently used tenants (never `keep`) until the
    /// live ones fit the cap.
    fn evict_over_cap(&self, state: &mut State, keep: &str) {
        while state.live.len() > self.inner.cap {
            let Some(oldest) = state
                .live
                .values()
                .filter(|t| &*t.key != keep)
                .min_by_key(|t| t.last_used())
                .map(|t| t.key.clone())
            else {
                return;
            };
            if let Some(tenant) = state.live.remove(&oldest) {
                tracing::debug!(target: "gino", "evicting tenant `{oldest}`'s engine");
                self.inner.evicted.fetch_add(1, Ordering::Relaxed);
                tenant.retire();
            }
        }
    }

    /// Closes connections idle longer than `idle_after`, at most four
    /// times per `idle_after`.
    fn sweep(&self, state: &mut State) {
        let idle_after = self.inner.idle_after;
        if state.last_sweep.elapsed() < idle_after / 4 {
            return;
        }
        state.last_sweep = Instant::now();
        for tenant in state.live.values() {
            tenant.engine.close_idle(idle_after);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}
