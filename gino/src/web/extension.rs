//! The request layer: start-up with retries, a scope per request with the
//! request's lazy connection, and shutdown once in-flight requests are
//! done.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::api::Gino;
use crate::engine::{Engine, create_engine};
use crate::error::{Error, Result};
use crate::tenant::Tenants;
use crate::web::Settings;
use crate::web::request::{Bound, Ending, RequestScope};

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
    /// The engine a close took from the database: requests that begin
    /// afterwards get a lazy connection of it, whose queries fail with
    /// [`Error::PoolClosed`] (503) rather than
    /// [`Error::Uninitialized`] (500, a server without a database).
    closed_engine: std::sync::Mutex<Option<Engine>>,
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
                closed_engine: std::sync::Mutex::new(None),
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
    ///
    /// ```
    /// # async fn demo(tenants: gino::Tenants) {
    /// use gino::web::{Extension, Settings};
    /// let extension = Extension::new(tenants.db(), Settings::default());
    /// assert!(extension.tenants().is_none());
    /// let extension = extension.with_tenants(tenants.clone());
    /// assert!(std::ptr::eq(extension.tenants().unwrap().db(), tenants.db()));
    /// # }
    /// # gino_testkit::doc::run(demo);
    /// ```
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
    /// error. A configuration or TLS certificate error, a login the
    /// server refuses, or a database it does not have, fails at once.
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
                    // Serving again after a close (an app restarted in
                    // the same process): the next close closes this pool,
                    // and the tenants are served again.
                    if let Some(tenants) = &self.inner.tenants {
                        tenants.reopen();
                    }
                    *crate::sync::lock(&self.inner.closed_engine) = None;
                    self.inner.draining.store(false, Ordering::SeqCst);
                    self.inner.closed.store(false, Ordering::SeqCst);
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
                    // What waiting cannot mend (a bad setting, a failed TLS
                    // check, a wrong password) is not counted as an attempt
                    // of many.
                    let count = if worth_retrying(&e) {
                        format!(" (attempt {attempt} of {attempts})")
                    } else {
                        String::new()
                    };
                    tracing::error!(target: "gino::web", "cannot connect to the database{count}: {e}");
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
        match self.inner.db.engine() {
            Ok(engine) => self.scope(Some(engine), None, in_flight),
            Err(_) => {
                let closed = crate::sync::lock(&self.inner.closed_engine).clone();
                let bound = closed.clone().map(Bound::Closed);
                self.scope(closed, bound, in_flight)
            }
        }
    }

    /// Counts as a request in flight until dropped, so that shutdown waits
    /// for it: for what a request's response still does after its handling
    /// ended (a streamed body, which the web crates hold with this). Made
    /// in a request's [`Then`](crate::web::Then), it also keeps the
    /// request's tenant, for [`ResponseHold::in_scope`].
    ///
    /// ```
    /// # async fn demo(extension: gino::web::Extension) {
    /// let hold = extension.hold();
    /// assert_eq!(extension.in_flight(), 1);
    /// drop(hold);
    /// assert_eq!(extension.in_flight(), 0);
    /// # }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn hold(&self) -> ResponseHold {
        let binding = Ending::take().map(|(bound, db)| RequestBinding {
            binding: db.binding(bound.engine()),
            _bound: bound,
        });
        ResponseHold {
            binding,
            _in_flight: self.enter(),
        }
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
        Ok(self.scope(Some(engine), Some(Bound::Tenant(lease)), in_flight))
    }

    fn enter(&self) -> InFlight {
        self.inner.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(self.clone())
    }

    fn scope(
        &self,
        engine: Option<Engine>,
        bound: Option<Bound>,
        in_flight: InFlight,
    ) -> RequestScope {
        let with_connection = self.inner.settings.use_connection_for_request;
        RequestScope::new(self.inner.db, engine, with_connection, bound, in_flight)
    }

    /// Starts shutting down: the pool closes (and the database is unbound)
    /// as soon as no request is in flight, right away if none is. A
    /// request that begins before then is served, and waited for too (the
    /// server took it before it stopped taking requests); queries of
    /// requests that begin once the pool is closed find it closed
    /// ([`Error::PoolClosed`], answered 503).
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

    /// A future that waits for `signal` and says that the server is
    /// stopping: what a server's graceful shutdown takes. The pool stays
    /// open: a request the server has taken may still be on its way here
    /// through outer layers (an authentication awaiting a session store,
    /// a concurrency limit's queue), where no count of this extension sees
    /// it, and it must find the database. [`close`](Self::close) closes the
    /// pool once the server has returned, after the last request and
    /// streamed body, as a graceful shutdown waits for them.
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
                "shutting down: the server finishes {} request(s) in flight, then the database \
                 pool closes",
                this.in_flight()
            );
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
        // Not `draining`: the last request ending would close the pool at
        // once, and this would find nothing left to close gracefully.
        let deadline = crate::statement::deadline_after(self.inner.settings.shutdown_timeout);
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
        if let Some(engine) = self.unbind_once() {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            engine.close_gracefully(left).await;
        }
    }

    /// Closes without waiting: no request is in flight.
    fn close_now(&self) {
        if let Some(engine) = self.unbind_once() {
            engine.close_now();
            tracing::info!(target: "gino::web", "database pool closed");
        }
    }

    /// The first close's part of closing: the tenants closed, the database
    /// unbound; its engine, to close, is kept for requests that come later
    /// (their queries find the pool closed). `None` for every later close.
    fn unbind_once(&self) -> Option<Engine> {
        if self.inner.closed.swap(true, Ordering::SeqCst) {
            return None;
        }
        if let Some(tenants) = &self.inner.tenants {
            tenants.close();
        }
        // Kept for later requests before it is unbound: a request between
        // the two would find neither, and answer 500 rather than 503.
        let engine = self.inner.db.bound_engine()?;
        *crate::sync::lock(&self.inner.closed_engine) = Some(engine.clone());
        self.inner.db.pop_bind();
        Some(engine)
    }
}

/// Creates the engine and proves it with one round trip.
async fn open(url: &str, settings: &Settings) -> Result<Engine> {
    let engine = create_engine(url, settings.engine_options()?).await?;
    match engine.prove().await {
        Ok(()) => Ok(engine),
        Err(e) => {
            engine.close().await;
            Err(e)
        }
    }
}

/// Whether a failed start-up may succeed later (the server is starting):
/// no answer, or an answer that says so (SQLSTATE classes `08`
/// connection, `53` resources such as too many connections, `57`
/// operator intervention such as `57P03` "starting up", `58` system). A
/// malformed setting, a refused certificate, a refused login (class
/// `28`), a database that does not exist (`3D000`: a server still
/// running its set-up scripts does not take TCP connections yet) or a
/// setting the server refuses (`22023`, `42704`) will not.
fn worth_retrying(error: &Error) -> bool {
    match error {
        Error::Configuration(_) | Error::Tls(_) => false,
        Error::Database(e) => ["08", "53", "57", "58"]
            .iter()
            .any(|class| e.code().starts_with(class)),
        _ => true,
    }
}

/// A response still on its way out, counted as a request in flight until
/// dropped: see [`Extension::hold`].
#[must_use = "the response counts as in flight only while this lives"]
pub struct ResponseHold {
    // Dropped first: a tenant's lease ends before the request stops
    // counting, so that a shutdown closing then finds it unused.
    binding: Option<RequestBinding>,
    _in_flight: InFlight,
}

/// A tenant request's bind, kept for its response: the lease keeps the
/// tenant's engine from eviction.
struct RequestBinding {
    binding: Arc<crate::api::ScopedBind>,
    _bound: Bound,
}

impl ResponseHold {
    /// Runs `f` (a poll of the response's body) where the request's
    /// handler ran: for a tenant's request, the tenants' database bound to
    /// the tenant's engine, so that a body streaming on queries its own
    /// tenant's database; otherwise as it is.
    ///
    /// ```
    /// # async fn demo(extension: gino::web::Extension) {
    /// let hold = extension.hold();
    /// assert_eq!(hold.in_scope(|| 2 + 2), 4);
    /// # }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn in_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.binding {
            Some(request) => crate::api::in_binding(&request.binding, f),
            None => f(),
        }
    }
}

impl std::fmt::Debug for ResponseHold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResponseHold")
    }
}

/// Counts a request as in flight while it lives.
pub(super) struct InFlight(Extension);

impl InFlight {
    /// The database of the extension the request came to.
    pub(super) fn db(&self) -> &'static Gino {
        self.0.db()
    }

    /// The extension the request came to.
    pub(super) fn extension(&self) -> &Extension {
        &self.0
    }
}

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

    /// What connecting `db` to `dsn` gives within five seconds, with five
    /// retries a minute apart: a failure not worth retrying comes at once.
    async fn first_attempt(
        db: &'static Gino,
        dsn: String,
    ) -> std::result::Result<Result<Engine>, tokio::time::error::Elapsed> {
        let settings = Settings {
            dsn: Some(dsn),
            retry_limit: 5,
            retry_interval: Duration::from_secs(60),
            ..Settings::default()
        };
        let extension = Extension::new(db, settings);
        tokio::time::timeout(Duration::from_secs(5), extension.connect()).await
    }

    #[tokio::test]
    async fn retries_are_not_spent_on_configuration_errors() {
        let result = first_attempt(&DB, "postgres://h/db?nonsense=1".to_owned()).await;
        assert!(
            matches!(result, Ok(Err(Error::Configuration(_)))),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn retries_are_not_spent_on_a_database_that_does_not_exist() {
        let server = gino_testkit::Server::get();
        // Its own database: a connect that succeeded by mistake would bind it.
        static MISSING: Gino = Gino::secondary();
        let result = first_attempt(&MISSING, server.url_for("gino_no_such_database")).await;
        assert!(
            matches!(&result, Ok(Err(Error::Database(e))) if e.code() == "3D000"),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn retries_are_not_spent_on_a_setting_the_server_refuses() {
        let url = gino_testkit::Server::get().url_for("postgres");
        let sep = if url.contains('?') { '&' } else { '?' };
        static REFUSED: Gino = Gino::secondary();
        let dsn = format!("{url}{sep}options=-c%20work_mem%3Dbanana");
        let result = first_attempt(&REFUSED, dsn).await;
        assert!(
            matches!(&result, Ok(Err(Error::Database(e))) if e.code() == "22023"),
            "{result:?}"
        );
    }
}
