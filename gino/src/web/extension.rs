//! The request layer: start-up with retries, a scope per request with the
//! request's lazy connection, and shutdown once in-flight requests are
//! done.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use futures_util::future::Either;
use tracing::Instrument;

use crate::api::Gino;
use crate::connection::Connection;
use crate::context::Stack;
use crate::engine::{Engine, create_engine};
use crate::error::{Error, Result};
use crate::tenant::{TenantLease, Tenants};
use crate::web::Settings;

/// A web application's database: the [`Gino`] it binds at start-up, its
/// [`Settings`], and the requests in flight. Cloning is cheap and shares
/// all of it.
///
/// ```no_run
/// use gino::web::{Extension, Settings};
///
/// static DB: gino::Gino = gino::Gino::new();
///
/// # async fn demo() -> gino::Result<()> {
/// let extension = Extension::new(&DB, Settings::from_env()?);
/// extension.connect().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Extension {
    inner: Arc<Inner>,
}

struct Inner {
    db: &'static Gino,
    settings: Settings,
    /// Requests whose scope has begun and not ended.
    in_flight: AtomicUsize,
    /// Shutdown began: the pool closes when no request is in flight.
    draining: AtomicBool,
    closed: AtomicBool,
    /// Woken when the last in-flight request ends.
    idle: tokio::sync::Notify,
    /// The tenants requests may name.
    tenants: Option<Tenants>,
}

impl std::fmt::Debug for Extension {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Extension")
            .field("settings", &self.inner.settings)
            .field("in_flight", &self.in_flight())
            .field("draining", &self.inner.draining.load(Ordering::Relaxed))
            .finish()
    }
}

impl Extension {
    /// The extension of `db` with `settings`. Nothing connects until
    /// [`connect`](Self::connect).
    ///
    /// ```
    /// static DB: gino::Gino = gino::Gino::new();
    /// let extension = gino::web::Extension::new(&DB, gino::web::Settings::default());
    /// assert_eq!(extension.in_flight(), 0);
    /// ```
    pub fn new(db: &'static Gino, settings: Settings) -> Self {
        Extension::serving(db, settings, None)
    }

    fn serving(db: &'static Gino, settings: Settings, tenants: Option<Tenants>) -> Self {
        Extension {
            inner: Arc::new(Inner {
                db,
                settings,
                in_flight: AtomicUsize::new(0),
                draining: AtomicBool::new(false),
                closed: AtomicBool::new(false),
                idle: tokio::sync::Notify::new(),
                tenants,
            }),
        }
    }

    /// The extension serving `tenants`: each request names its tenant
    /// ([`tenant_request`](Self::tenant_request)) and runs with the
    /// tenants' database bound to that tenant's engine. Shutting down
    /// closes the tenants' engines too.
    ///
    /// ```
    /// # async fn demo(tenants: gino::Tenants) {
    /// use gino::web::{Extension, Settings};
    /// let extension = Extension::new(tenants.db(), Settings::default()).with_tenants(tenants);
    /// assert!(extension.tenants().is_some());
    /// # }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn with_tenants(self, tenants: Tenants) -> Self {
        Extension::serving(self.inner.db, self.inner.settings.clone(), Some(tenants))
    }

    /// The tenants this extension serves, if any.
    pub fn tenants(&self) -> Option<&Tenants> {
        self.inner.tenants.as_ref()
    }

    /// The extension of `db` with the settings of the `DB_*` environment
    /// variables ([`Settings::from_env`]).
    ///
    /// ```no_run
    /// static DB: gino::Gino = gino::Gino::new();
    /// let extension = gino::web::Extension::from_env(&DB)?;
    /// # Ok::<_, gino::Error>(())
    /// ```
    pub fn from_env(db: &'static Gino) -> Result<Self> {
        Ok(Extension::new(db, Settings::from_env()?))
    }

    /// The database this extension binds.
    ///
    /// ```
    /// static DB: gino::Gino = gino::Gino::new();
    /// let extension = gino::web::Extension::new(&DB, Default::default());
    /// assert!(std::ptr::eq(extension.db(), &DB));
    /// ```
    pub fn db(&self) -> &'static Gino {
        self.inner.db
    }

    /// The settings.
    ///
    /// ```
    /// static DB: gino::Gino = gino::Gino::new();
    /// let extension = gino::web::Extension::new(&DB, Default::default());
    /// assert_eq!(extension.settings().pool_max_size, 10);
    /// ```
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// Requests in flight right now.
    ///
    /// ```
    /// static DB: gino::Gino = gino::Gino::new();
    /// let extension = gino::web::Extension::new(&DB, Default::default());
    /// assert_eq!(extension.in_flight(), 0);
    /// ```
    pub fn in_flight(&self) -> usize {
        self.inner.in_flight.load(Ordering::SeqCst)
    }

    /// Start-up: creates the engine, proves it with one round trip, and
    /// binds it to the database. While the server cannot be reached, tries
    /// again `retry_limit` times, `retry_interval` apart, logging each
    /// failure (`tracing`, target `gino::web`); then fails with the last
    /// error. A configuration or TLS certificate error fails at once.
    ///
    /// ```
    /// # async fn demo(extension: gino::web::Extension) -> gino::Result<()> {
    /// let engine = extension.connect().await?;
    /// println!("connected to {}", engine.url()); // the password masked
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub async fn connect(&self) -> Result<Engine> {
        let settings = &self.inner.settings;
        settings.validate()?;
        let url = settings.url();
        let attempts = settings.retry_limit.saturating_add(1);
        let mut attempt = 1;
        loop {
            match open(&url, settings).await {
                Ok(engine) => {
                    self.inner.db.set_bind(engine.clone()).await?;
                    tracing::info!(target: "gino::web", "database ready at {}", engine.url());
                    return Ok(engine);
                }
                Err(e) if attempt < attempts && worth_retrying(&e) => {
                    tracing::warn!(
                        target: "gino::web",
                        "database not reachable (attempt {attempt} of {attempts}): {e}; \
                         retrying in {:?}",
                        settings.retry_interval
                    );
                    tokio::time::sleep(settings.retry_interval).await;
                    attempt += 1;
                }
                Err(e) => {
                    tracing::error!(
                        target: "gino::web",
                        "cannot connect to the database (attempt {attempt} of {attempts}): {e}"
                    );
                    return Err(e);
                }
            }
        }
    }

    /// Begins a request's scope. Run the request's handling with
    /// [`RequestScope::run`]; the scope counts as in flight until then.
    ///
    /// With `use_connection_for_request` (the default) the scope holds a
    /// lazy connection of the bound engine: nothing is borrowed until the
    /// first query, and every implicit query of the request (`User::get`,
    /// `.gino()`, `DB.transaction`) shares it. An unbound database gives the
    /// scope no connection (its queries fail with
    /// [`Error::Uninitialized`](crate::Error::Uninitialized) as anywhere).
    ///
    /// ```
    /// # async fn demo(extension: gino::web::Extension) {
    /// # extension.connect().await.unwrap();
    /// let scope = extension.request();
    /// let conn = scope.connection(); // for the handler's explicit use
    /// let answer = scope.run(async { "handled" }).await;
    /// # let _ = (conn, answer);
    /// # }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn request(&self) -> RequestScope {
        let in_flight = self.enter();
        let engine = self.inner.db.engine().ok();
        self.scope(engine, None, in_flight)
    }

    /// Begins the scope of a request for tenant `key` (see
    /// [`with_tenants`](Self::with_tenants)): like [`request`](Self::request),
    /// with the tenants' database bound to the tenant's engine (made on
    /// first use) for the request, and the lazy connection on it. Fails
    /// when the tenant's engine cannot be made
    /// ([`Error::UnknownTenant`] answers 404).
    ///
    /// ```
    /// # async fn demo(tenants: gino::Tenants) -> gino::Result<()> {
    /// use gino::web::{Extension, Settings};
    /// let db = tenants.db();
    /// let extension = Extension::new(db, Settings::default()).with_tenants(tenants);
    /// let scope = extension.tenant_request("acme").await?;
    /// let status = scope.run(db.status(diesel::sql_query("SELECT 1"))).await?;
    /// assert_eq!(status, "SELECT 1");
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub async fn tenant_request(&self, key: &str) -> Result<RequestScope> {
        let Some(tenants) = &self.inner.tenants else {
            return Err(Error::Configuration(
                "this web extension serves no tenants: build it with `with_tenants`".to_owned(),
            ));
        };
        let in_flight = self.enter();
        let lease = tenants.lease(key).await?;
        let engine = lease.engine().clone();
        Ok(self.scope(Some(engine), Some(lease), in_flight))
    }

    fn enter(&self) -> InFlight {
        self.inner.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(self.clone())
    }

    fn scope(
        &self,
        engine: Option<Engine>,
        tenant: Option<TenantLease>,
        in_flight: InFlight,
    ) -> RequestScope {
        let conn = engine
            .filter(|_| self.inner.settings.use_connection_for_request)
            .map(|engine| Arc::new(Connection::lazy(engine)));
        RequestScope {
            conn,
            tenant: tenant.map(|lease| (lease, self.inner.db)),
            in_flight,
        }
    }

    /// Starts shutting down: the pool closes (and the database is unbound)
    /// as soon as no request is in flight, right away if none is.
    /// Requests that begin afterwards find no pool (503).
    ///
    /// ```no_run
    /// # fn demo(extension: gino::web::Extension) {
    /// extension.shutdown();
    /// # }
    /// ```
    pub fn shutdown(&self) {
        self.inner.draining.store(true, Ordering::SeqCst);
        if self.in_flight() == 0 {
            self.close_now();
        }
    }

    /// A future that waits for `signal`, then [shuts down](Self::shutdown):
    /// what a server's graceful shutdown takes, so that the pool closes
    /// after the requests still in flight are done.
    ///
    /// ```
    /// # async fn demo(extension: gino::web::Extension) {
    /// # extension.connect().await.unwrap();
    /// let stop = extension.shutdown_on(async {
    ///     let _ = tokio::signal::ctrl_c().await;
    /// });
    /// # let _ = stop;
    /// # }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn shutdown_on<F>(&self, signal: F) -> impl Future<Output = ()> + Send + 'static
    where
        F: Future + Send + 'static,
    {
        let this = self.clone();
        async move {
            signal.await;
            tracing::info!(
                target: "gino::web",
                "shutting down: the database pool closes once {} in-flight request(s) are done",
                this.in_flight()
            );
            this.shutdown();
        }
    }

    /// Shuts down and waits until the pool is closed: for in-flight
    /// requests to end and their connections to come back, at most
    /// `shutdown_timeout` in all.
    ///
    /// ```
    /// # async fn demo(extension: gino::web::Extension) {
    /// # extension.connect().await.unwrap();
    /// extension.close().await;
    /// assert!(!extension.db().is_bound());
    /// # }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub async fn close(&self) {
        self.inner.draining.store(true, Ordering::SeqCst);
        let deadline = tokio::time::Instant::now() + self.inner.settings.shutdown_timeout;
        loop {
            let idle = self.inner.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.in_flight() == 0 {
                break;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                tracing::warn!(
                    target: "gino::web",
                    "closing the database pool with {} request(s) still in flight",
                    self.in_flight()
                );
                break;
            }
        }
        if !self.inner.closed.swap(true, Ordering::SeqCst) {
            if let Some(tenants) = &self.inner.tenants {
                tenants.close();
            }
            if let Some(engine) = self.inner.db.pop_bind() {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                engine.close_gracefully(left).await;
            }
        }
    }

    /// Closes without waiting: no request is in flight.
    fn close_now(&self) {
        if !self.inner.closed.swap(true, Ordering::SeqCst) {
            if let Some(tenants) = &self.inner.tenants {
                tenants.close();
            }
            if let Some(engine) = self.inner.db.pop_bind() {
                engine.close_now();
                tracing::info!(target: "gino::web", "database pool closed");
            }
        }
    }
}

/// Creates the engine and proves it with one round trip.
async fn open(url: &str, settings: &Settings) -> Result<Engine> {
    let engine = create_engine(url, settings.engine_options()).await?;
    match engine.prove().await {
        Ok(()) => Ok(engine),
        Err(e) => {
            engine.close().await;
            Err(e)
        }
    }
}

/// Whether a failed start-up may succeed later (the server is starting);
/// a malformed setting or a refused certificate will not.
fn worth_retrying(error: &Error) -> bool {
    !matches!(error, Error::Configuration(_) | Error::Tls(_))
}

/// Counts a request as in flight while it lives.
struct InFlight(Extension);

impl Drop for InFlight {
    fn drop(&mut self) {
        let inner = &self.0.inner;
        if inner.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            inner.idle.notify_waiters();
            if inner.draining.load(Ordering::SeqCst) {
                self.0.close_now();
            }
        }
    }
}

/// One request's scope: its lazy connection, if it has one, made the
/// contextual connection of the code [`run`](Self::run) runs. Made by
/// [`Extension::request`].
#[must_use = "a request scope does nothing until run"]
pub struct RequestScope {
    conn: Option<Arc<Connection>>,
    /// The request's tenant, and the database bound to its engine.
    tenant: Option<(TenantLease, &'static Gino)>,
    in_flight: InFlight,
}

tokio::task_local! {
    /// The request whose scope the running code is in.
    static CURRENT: Current;
}

/// What code running in a request's scope can ask for: the database, and
/// the request's connection if it has one.
struct Current {
    db: &'static Gino,
    conn: Option<Arc<Connection>>,
}

impl std::fmt::Debug for RequestScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestScope")
            .field("connection", &self.conn)
            .finish()
    }
}

/// The tenant a request runs for: the tenant middleware of each web crate
/// puts it in the request's extensions, for handlers to read.
///
/// ```
/// # async fn demo(tenants: gino::Tenants) -> gino::Result<()> {
/// use gino::web::{Extension, Settings, TenantKey};
/// let extension = Extension::new(tenants.db(), Settings::default()).with_tenants(tenants);
/// let scope = extension.tenant_request("acme").await?;
/// assert_eq!(scope.tenant(), Some(TenantKey("acme".to_owned())));
/// # Ok(()) }
/// # gino_testkit::doc::run(demo);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TenantKey(pub String);

impl RequestScope {
    /// The tenant of a [`tenant_request`](Extension::tenant_request).
    pub fn tenant(&self) -> Option<TenantKey> {
        self.tenant
            .as_ref()
            .map(|(lease, _)| TenantKey(lease.key().to_owned()))
    }

    /// The request's connection, for handlers that use it explicitly (to
    /// release it early, say); `None` when `use_connection_for_request` is
    /// off or nothing is bound.
    ///
    /// ```
    /// # async fn demo(extension: gino::web::Extension) {
    /// # extension.connect().await.unwrap();
    /// let scope = extension.request();
    /// assert!(scope.connection().is_some());
    /// # }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn connection(&self) -> Option<RequestConnection> {
        self.conn.clone().map(RequestConnection)
    }

    /// Runs the request's handling `fut` in the scope, and gives the
    /// connection back when it ends: with a `ROLLBACK` of anything left
    /// open when `fut` completes, and when it is dropped (the client went
    /// away) or panics, by the rule that a connection goes back to the pool
    /// only outside a transaction and is closed otherwise.
    ///
    /// The scope is a `tracing` span (`gino_request`, target `gino::web`)
    /// that records the borrows of the request's connection, the time spent
    /// waiting for them, and the statements run.
    ///
    /// ```
    /// # async fn demo(extension: gino::web::Extension, db: &'static gino::Gino) -> gino::Result<()> {
    /// # extension.connect().await.unwrap();
    /// use diesel::dsl::sql;
    /// use diesel::sql_types::Integer;
    /// let n: i32 = extension
    ///     .request()
    ///     .run(async { db.one(diesel::select(sql::<Integer>("1"))).await })
    ///     .await?;
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub async fn run<F: Future>(self, fut: F) -> F::Output {
        match &self.tenant {
            Some((lease, db)) => {
                let (engine, db) = (lease.engine().clone(), *db);
                // Boxed: the scoped bind holds the request's future twice,
                // which every request's future would carry otherwise.
                Box::pin(db.scoped_bind(&engine, self.run_in_scope(fut))).await
            }
            None => self.run_in_scope(fut).await,
        }
    }

    /// [`run`](Self::run) inside the tenant's scoped bind, if any.
    async fn run_in_scope<F: Future>(self, fut: F) -> F::Output {
        let span = tracing::info_span!(
            target: "gino::web",
            "gino_request",
            borrows = tracing::field::Empty,
            borrow_wait_us = tracing::field::Empty,
            statements = tracing::field::Empty,
            tenant = tracing::field::Empty,
        );
        // Without a subscriber that wants the span, entering, leaving and
        // recording it is work for nobody on every request.
        let recording = !span.is_disabled();
        if let (true, Some((lease, _))) = (recording, &self.tenant) {
            span.record("tenant", lease.key());
        }
        let current = Current {
            db: self.in_flight.0.db(),
            conn: self.conn.clone(),
        };
        let fut = CURRENT.scope(current, fut);
        let Some(conn) = self.conn.clone() else {
            return in_span(recording, &span, fut).await;
        };
        // Gives the connection back if this future is dropped, even while
        // a handler still holds a clone of it.
        let release = ReleaseOnDrop(conn.clone());
        let engine_id = conn.engine().id();
        let scoped = Stack::scope(engine_id, conn.root.clone(), fut);
        let output = in_span(recording, &span, scoped).await;
        if recording || tracing::enabled!(target: "gino::web", tracing::Level::DEBUG) {
            report(&span, &conn);
        }
        // Released already (explicitly) is fine.
        let _ = conn.release().await;
        drop(release);
        output
    }
}

/// `fut` inside `span` when the span records anything.
fn in_span<F: Future>(
    recording: bool,
    span: &tracing::Span,
    fut: F,
) -> impl Future<Output = F::Output> {
    if recording {
        Either::Left(fut.instrument(span.clone()))
    } else {
        Either::Right(fut)
    }
}

/// Records what a request's connection did on its span, and tells it in a
/// debug event when it used the database.
fn report(span: &tracing::Span, conn: &Connection) {
    let stats = conn.stats();
    span.record("borrows", stats.borrows);
    span.record(
        "borrow_wait_us",
        u64::try_from(stats.borrow_wait.as_micros()).unwrap_or(u64::MAX),
    );
    span.record("statements", stats.statements);
    if stats.borrows > 0 {
        tracing::debug!(
            target: "gino::web",
            parent: span,
            "request used the database: {} statement(s), {} borrow(s), {:?} waiting for a \
             connection",
            stats.statements,
            stats.borrows,
            stats.borrow_wait
        );
    }
}

struct ReleaseOnDrop(Arc<Connection>);

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        self.0.release_now();
    }
}

/// The connection of a request, for handlers that use it explicitly: every
/// method of [`Connection`] through `Deref`. Implicit queries of the
/// request run on the same connection.
///
/// [`release_raw`](Connection::release_raw) gives the raw connection back
/// before slow work that needs no database (GINO's
/// `release(permanent=False)`); the next query borrows again.
/// [`release`](Connection::release) ends it for the rest of the request;
/// later queries then borrow for themselves, one at a time.
///
/// ```
/// # async fn demo(conn: gino::web::RequestConnection) -> gino::Result<()> {
/// conn.release_raw().await?;  // before a slow call to another service
/// # Ok(()) }
/// # gino_testkit::doc::run(demo);
/// ```
#[derive(Clone, Debug)]
pub struct RequestConnection(Arc<Connection>);

impl RequestConnection {
    /// The connection of the request whose scope the calling code runs in
    /// ([`RequestScope::run`]), for extractors and request guards: `None`
    /// outside a request's scope; a lazy connection of its own
    /// ([`own`](Self::own)) when the request has none
    /// (`use_connection_for_request` off); an error when no database is
    /// bound.
    ///
    /// ```
    /// # async fn demo(extension: gino::web::Extension) -> gino::Result<()> {
    /// # extension.connect().await?;
    /// use gino::web::RequestConnection;
    /// assert!(RequestConnection::current().is_none());
    /// let conn = extension.request().run(async { RequestConnection::current() }).await;
    /// let conn = conn.expect("in a request's scope")?;
    /// assert_eq!(conn.stats().borrows, 0); // lazy: nothing borrowed yet
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn current() -> Option<Result<Self>> {
        CURRENT
            .try_with(|current| match &current.conn {
                Some(conn) => Ok(RequestConnection(conn.clone())),
                None => current.db.engine().map(|e| Self::own(&e)),
            })
            .ok()
    }

    /// A connection of its own for a request that has none (when
    /// `use_connection_for_request` is off): lazy, released when the last
    /// clone is dropped.
    ///
    /// ```
    /// # async fn demo(db: &gino::Gino) -> gino::Result<()> {
    /// let conn = gino::web::RequestConnection::own(&db.engine()?);
    /// # Ok(()) }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn own(engine: &Engine) -> Self {
        RequestConnection(Arc::new(Connection::lazy(engine.clone())))
    }
}

impl std::ops::Deref for RequestConnection {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.0
    }
}

impl AsRef<Connection> for RequestConnection {
    fn as_ref(&self) -> &Connection {
        &self.0
    }
}

impl<'a> From<&'a RequestConnection> for crate::Bind<'a> {
    fn from(conn: &'a RequestConnection) -> Self {
        crate::Bind::Connection(&conn.0)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    static DB: Gino = Gino::secondary();

    #[tokio::test]
    async fn in_flight_requests_are_counted_until_they_end() {
        let extension = Extension::new(&DB, Settings::default());
        let first = extension.request();
        let second = extension.request();
        assert_eq!(extension.in_flight(), 2);
        assert!(first.connection().is_none(), "nothing is bound");
        drop(first);
        assert_eq!(extension.in_flight(), 1);
        second.run(async {}).await;
        assert_eq!(extension.in_flight(), 0);
    }

    /// Every request's future holds these, allocated and moved once per
    /// request: 3 KB before the scoped bind and the reuse scope stopped
    /// holding the request's future twice, and the release stopped
    /// carrying its rare rollback. Sizes, not times: they do not drift.
    #[tokio::test]
    async fn request_futures_stay_small() {
        let engine = crate::engine::tests::unconnected().await;
        let conn = Connection::lazy(engine.clone());
        let release = std::mem::size_of_val(&conn.release());
        let handler: std::pin::Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(async {});
        let run = std::mem::size_of_val(
            &Extension::new(&DB, Settings::default())
                .request()
                .run(handler),
        );
        assert!(release <= 512, "Connection::release: {release} bytes");
        assert!(run <= 1024, "RequestScope::run: {run} bytes");
    }

    #[tokio::test]
    async fn retries_are_not_spent_on_configuration_errors() {
        let settings = Settings {
            dsn: Some("postgres://h/db?nonsense=1".to_owned()),
            retry_limit: 5,
            retry_interval: Duration::from_secs(60),
            ..Settings::default()
        };
        let extension = Extension::new(&DB, settings);
        let result = tokio::time::timeout(Duration::from_secs(5), extension.connect()).await;
        assert!(
            matches!(result, Ok(Err(Error::Configuration(_)))),
            "{result:?}"
        );
    }
}
