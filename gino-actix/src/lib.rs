//! gino for actix-web: what GINO's web extensions give, in actix's idiom.
//!
//! - **Start-up.** [`Extension::connect`] (through [`Gino`]) binds the
//!   application's [`gino::Gino`] from `DB_*` settings before
//!   `HttpServer::run`, retrying while the database starts.
//! - **Per request.** [`Gino::middleware`], registered with `App::wrap`,
//!   gives every request a lazy connection: borrowed at its first query,
//!   shared by every implicit query of the request (`User::get`,
//!   `.gino()`, `DB.transaction`), and given back when the response is
//!   produced, also when the handler fails, panics or the client goes away,
//!   never inside a transaction. The pool serves every worker.
//! - **Explicit access.** The [`Conn`] extractor is that connection
//!   (`release_raw()` before slow work); `web::Data<gino_actix::Gino>`
//!   reaches the database handle.
//! - **Errors.** [`Error`] is a `ResponseError`: `get_or_404` /
//!   `first_or_404` answer 404, a pool or query timeout or an unreachable database
//!   503 with `Retry-After`, anything else an opaque 500 (detail logged).
//! - **Clients that go away.** actix-web runs a handler to its end even
//!   after its client disconnected (it does not drop the handler's
//!   future), so the request's connection, and any transaction the handler
//!   holds, lasts until the handler returns; then it goes back as always.
//!   Bound slow handlers with a timeout (`gino`'s query `timeout`, or
//!   `tokio::time::timeout`) where that matters.
//! - **Shutdown.** After `HttpServer::run` returns (its graceful shutdown
//!   on SIGINT/SIGTERM waits for in-flight requests),
//!   [`Extension::close`] closes the pool.
//!
//! ```no_run
//! use actix_web::{App, HttpServer, web};
//! use gino::prelude::*;
//!
//! #[derive(Model, Debug, Clone, serde::Serialize)]
//! #[gino(table = "users")]
//! pub struct User {
//!     #[gino(primary_key)]
//!     pub id: i32,
//!     pub nickname: String,
//! }
//!
//! pub static DB: Gino = Gino::new();
//!
//! async fn user(id: web::Path<i32>) -> Result<web::Json<User>, gino_actix::Error> {
//!     Ok(web::Json(User::get_or_404(id.into_inner()).await?)) // the request's connection
//! }
//!
//! #[actix_web::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let db = gino_actix::Gino::from_env(&DB)?; // DB_HOST, DB_PORT, ..., DB_RETRY_LIMIT
//!     db.connect().await?;
//!     DB.create_all().await?;
//!     HttpServer::new({
//!         let db = db.clone();
//!         move || {
//!             App::new()
//!                 .app_data(web::Data::new(db.clone()))
//!                 .wrap(db.middleware())
//!                 .route("/users/{id}", web::get().to(user))
//!         }
//!     })
//!     .workers(4)
//!     .bind(("127.0.0.1", 8000))?
//!     .run()
//!     .await?;
//!     db.close().await; // after in-flight requests: every connection closed
//!     Ok(())
//! }
//! ```

mod body;
mod error;
mod extract;
mod middleware;
mod tenant;

pub use body::{HeldBody, HoldStreamed};
pub use error::Error;
pub use extract::{Conn, ConnRejection};
pub use gino;
pub use gino::web::TenantKey;
pub use gino::web::{Extension, Settings};
pub use middleware::{GinoMiddleware, GinoMiddlewareService};
pub use tenant::{TenantMiddleware, TenantMiddlewareService};

/// The application's database for actix-web: a [`gino::Gino`] with its
/// [`Settings`]. Cloning is cheap; share it with the workers' `App`s.
/// Start-up, shutdown and the rest of the framework-neutral request layer
/// come through `Deref` from [`Extension`]: [`connect`](Extension::connect)
/// before `HttpServer::run`, [`close`](Extension::close) after it.
///
/// ```no_run
/// static DB: gino::Gino = gino::Gino::new();
///
/// # async fn demo() -> Result<(), gino::Error> {
/// let db = gino_actix::Gino::from_env(&DB)?;
/// db.connect().await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Gino {
    extension: Extension,
}

impl Gino {
    /// `db` with `settings`.
    ///
    /// ```
    /// static DB: gino::Gino = gino::Gino::new();
    /// let mut settings = gino_actix::Settings::default();
    /// settings.pool_max_size = 20;
    /// let db = gino_actix::Gino::new(&DB, settings);
    /// # let _ = db;
    /// ```
    pub fn new(db: &'static gino::Gino, settings: Settings) -> Self {
        Gino {
            extension: Extension::new(db, settings),
        }
    }

    /// `db` with the settings of the `DB_*` environment variables; a
    /// malformed one is an error naming it.
    ///
    /// ```no_run
    /// static DB: gino::Gino = gino::Gino::new();
    /// let db = gino_actix::Gino::from_env(&DB)?;
    /// # Ok::<_, gino::Error>(())
    /// ```
    pub fn from_env(db: &'static gino::Gino) -> Result<Self, gino::Error> {
        Ok(Gino {
            extension: Extension::from_env(db)?,
        })
    }

    /// The middleware that runs every request in its scope, for
    /// `App::wrap`; see [`GinoMiddleware`].
    ///
    /// ```no_run
    /// # fn demo(db: gino_actix::Gino) {
    /// let app = actix_web::App::new().wrap(db.middleware());
    /// # let _ = app;
    /// # }
    /// ```
    pub fn middleware(&self) -> GinoMiddleware {
        GinoMiddleware::new(self.extension.clone())
    }
}

impl Gino {
    /// Serves `tenants`: requests run through
    /// [`tenant_middleware`](Self::tenant_middleware) name their tenant, and
    /// closing the extension closes the tenants' engines.
    ///
    /// ```
    /// # async fn demo(tenants: gino::Tenants) {
    /// let db = gino_actix::Gino::new(tenants.db(), Default::default()).with_tenants(tenants);
    /// assert!(db.tenants().is_some());
    /// # }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn with_tenants(self, tenants: gino::Tenants) -> Self {
        Gino {
            extension: self.extension.with_tenants(tenants),
        }
    }

    /// Middleware (for `App::wrap`) that runs each request for the tenant
    /// `pick` takes from it (a header, the host, a path segment), or answers
    /// it with `pick`'s error (`actix_web::error::ErrorBadRequest(..)`):
    /// the tenants' database is bound to the tenant's engine for the
    /// request, with a lazy connection on it, as
    /// [`middleware`](Self::middleware) does for one database. A tenant
    /// whose engine cannot be made is answered through [`Error`]
    /// ([`gino::Error::UnknownTenant`]: 404). These answers are responses,
    /// not `Err`s, so middleware wrapped around this one (`ErrorHandlers`,
    /// `DefaultHeaders`) sees them as it sees the handlers'. Handlers find
    /// the tenant as the [`TenantKey`] extension (`web::ReqData<TenantKey>`).
    ///
    /// ```
    /// # async fn demo(tenants: gino::Tenants) {
    /// use actix_web::dev::ServiceRequest;
    /// use actix_web::{App, web};
    /// use gino_actix::TenantKey;
    ///
    /// let db = gino_actix::Gino::new(tenants.db(), Default::default()).with_tenants(tenants);
    /// let app = App::new()
    ///     .route("/whoami", web::get().to(|t: web::ReqData<TenantKey>| async move {
    ///         t.into_inner().0
    ///     }))
    ///     .wrap(db.tenant_middleware(|request: &ServiceRequest| {
    ///         request
    ///             .headers()
    ///             .get("x-tenant")
    ///             .and_then(|v| v.to_str().ok())
    ///             .map(str::to_owned)
    ///             .ok_or_else(|| actix_web::error::ErrorBadRequest("X-Tenant is required"))
    ///     }));
    /// # let _ = app;
    /// # }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn tenant_middleware<F, R>(&self, pick: F) -> TenantMiddleware<F>
    where
        F: Fn(&actix_web::dev::ServiceRequest) -> Result<String, R> + 'static,
        R: Into<actix_web::Error>,
    {
        TenantMiddleware::new(self.extension.clone(), pick)
    }
}

impl std::ops::Deref for Gino {
    type Target = Extension;

    fn deref(&self) -> &Extension {
        &self.extension
    }
}
