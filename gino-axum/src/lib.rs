//! gino for axum: what GINO's web extensions give, in axum's idiom.
//!
//! - **Start-up.** [`Extension::connect`] (through [`Gino`]) binds the application's
//!   [`gino::Gino`] from `DB_*` settings before `axum::serve`, retrying
//!   while the database starts.
//! - **Per request.** [`Gino::layer`] is a tower layer that gives every
//!   request a lazy connection: borrowed at its first query, shared by every
//!   implicit query of the request (`User::get`, `.gino()`,
//!   `DB.transaction`), and given back when the response is produced, also
//!   when the handler fails, panics or the client goes away, never inside a
//!   transaction.
//! - **Explicit access.** The [`Conn`] extractor is that connection
//!   (`release_raw()` before slow work).
//! - **Errors.** [`Error`] turns gino's errors into responses:
//!   `get_or_404` / `first_or_404` answer 404, a pool or query timeout or an
//!   unreachable database 503 with `Retry-After`, anything else an opaque
//!   500 (detail logged).
//! - **Shutdown.** [`Extension::shutdown_on`] plugs into
//!   `with_graceful_shutdown`, and [`Extension::close`] after `serve`
//!   returns closes the pool: every request the server took, wherever it
//!   was in its layers, found the database.
//!
//! ```no_run
//! use axum::extract::Path;
//! use axum::routing::get;
//! use axum::{Json, Router};
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
//! async fn user(Path(id): Path<i32>) -> Result<Json<User>, gino_axum::Error> {
//!     Ok(Json(User::get_or_404(id).await?)) // on the request's lazy connection
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let db = gino_axum::Gino::from_env(&DB)?; // DB_HOST, DB_PORT, ..., DB_RETRY_LIMIT
//!     db.connect().await?;
//!     DB.create_all().await?;
//!     let app = Router::new()
//!         .route("/users/{id}", get(user))
//!         .layer(db.layer());
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:8000").await?;
//!     axum::serve(listener, app)
//!         .with_graceful_shutdown(db.shutdown_on(async {
//!             let _ = tokio::signal::ctrl_c().await;
//!         }))
//!         .await?;
//!     db.close().await; // returns once the pool is closed
//!     Ok(())
//! }
//! ```

mod body;
mod error;
mod extract;
mod layer;
mod tenant;

pub use body::HoldStreamed;
pub use error::Error;
pub use extract::{Conn, ConnRejection};
pub use gino;
pub use gino::web::TenantKey;
pub use gino::web::{Extension, Settings};
pub use layer::{GinoLayer, GinoService};
pub use tenant::{ResponseFuture, TenantLayer, TenantService};

/// The application's database for axum: a [`gino::Gino`] with its
/// [`Settings`]. Cloning is cheap. Start-up, shutdown and the rest of the
/// framework-neutral request layer come through `Deref` from
/// [`Extension`]: [`connect`](Extension::connect) before `axum::serve`,
/// [`shutdown_on`](Extension::shutdown_on) for `with_graceful_shutdown`,
/// [`close`](Extension::close) after it.
///
/// ```no_run
/// static DB: gino::Gino = gino::Gino::new();
///
/// # async fn demo() -> Result<(), gino::Error> {
/// let db = gino_axum::Gino::from_env(&DB)?;
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
    /// let mut settings = gino_axum::Settings::default();
    /// settings.pool_max_size = 20;
    /// let db = gino_axum::Gino::new(&DB, settings);
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
    /// let db = gino_axum::Gino::from_env(&DB)?;
    /// # Ok::<_, gino::Error>(())
    /// ```
    pub fn from_env(db: &'static gino::Gino) -> Result<Self, gino::Error> {
        Ok(Gino {
            extension: Extension::from_env(db)?,
        })
    }

    /// `service` (a whole `Router`, say) with every request run in its
    /// scope: [`layer`](Self::layer) applied around the router instead of
    /// inside it. Cheaper per request than `Router::layer`, for which axum
    /// clones the route's boxed service twice and boxes the response
    /// future; serve it with `into_make_service`.
    ///
    /// ```no_run
    /// use axum::ServiceExt;
    /// use axum::extract::Request;
    ///
    /// # async fn demo(db: gino_axum::Gino, router: axum::Router) -> std::io::Result<()> {
    /// let app = db.wrap(router);
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:8000").await?;
    /// axum::serve(listener, ServiceExt::<Request>::into_make_service(app)).await
    /// # }
    /// ```
    pub fn wrap<S>(&self, service: S) -> GinoService<S> {
        tower_layer::Layer::layer(&self.layer(), service)
    }

    /// The layer that runs every request in its scope; see [`GinoLayer`].
    ///
    /// ```no_run
    /// # fn demo(db: gino_axum::Gino) {
    /// let app: axum::Router = axum::Router::new().layer(db.layer());
    /// # }
    /// ```
    pub fn layer(&self) -> GinoLayer {
        GinoLayer::new(self.extension.clone())
    }
}

impl Gino {
    /// Serves `tenants`: requests run through [`tenant_layer`](Self::tenant_layer)
    /// name their tenant, and shutting down closes the tenants' engines.
    ///
    /// ```
    /// # async fn demo(tenants: gino::Tenants) {
    /// let db = gino_axum::Gino::new(tenants.db(), Default::default()).with_tenants(tenants);
    /// assert!(db.tenants().is_some());
    /// # }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn with_tenants(self, tenants: gino::Tenants) -> Self {
        Gino {
            extension: self.extension.with_tenants(tenants),
        }
    }

    /// A tower layer that runs each request for the tenant `pick` takes
    /// from it (a header, the host, a path segment, a claim an earlier
    /// layer put in the extensions), or answers with `pick`'s rejection:
    /// the tenants' database is bound to the tenant's engine for the
    /// request, with a lazy connection on it, as [`layer`](Self::layer)
    /// does for one database. A tenant whose engine cannot be made answers
    /// through [`Error`] ([`gino::Error::UnknownTenant`]: 404). Handlers
    /// find the tenant as the [`TenantKey`] extension.
    ///
    /// ```
    /// # async fn demo(tenants: gino::Tenants) {
    /// use axum::routing::get;
    /// use axum::{Extension, Router};
    /// use http::StatusCode;
    /// use gino_axum::TenantKey;
    ///
    /// let db = gino_axum::Gino::new(tenants.db(), Default::default()).with_tenants(tenants);
    /// let app: Router = Router::new()
    ///     .route("/whoami", get(|Extension(TenantKey(t)): Extension<TenantKey>| async move { t }))
    ///     .layer(db.tenant_layer(|request: &http::request::Parts| {
    ///         request
    ///             .headers
    ///             .get("x-tenant")
    ///             .and_then(|v| v.to_str().ok())
    ///             .map(str::to_owned)
    ///             .ok_or((StatusCode::BAD_REQUEST, "X-Tenant is required"))
    ///     }));
    /// # let _ = app;
    /// # }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn tenant_layer<F, R>(&self, pick: F) -> TenantLayer<F>
    where
        F: Fn(&http::request::Parts) -> Result<String, R> + Send + Sync + 'static,
        R: axum::response::IntoResponse,
    {
        TenantLayer::new(self.extension.clone(), pick)
    }
}

impl std::ops::Deref for Gino {
    type Target = Extension;

    fn deref(&self) -> &Extension {
        &self.extension
    }
}
