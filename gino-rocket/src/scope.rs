//! [`scoped`] and [`tenant_scoped`]: the rocket-shaped way to run handlers
//! in gino's request scope (of one database, or of the request's tenant).
//! Fairings cannot wrap a handler's future, so the routes' handlers are
//! wrapped where they are mounted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use gino::web::Extension;
use rocket::http::Status;
use rocket::route::{Handler, Outcome, Route};
use rocket::{Data, Request};

use crate::Error;
use crate::body::{HoldStreamed, size_seekable};

/// Wraps the handlers of `routes` so that each request runs in gino's
/// request scope: the request's queries share one lazy connection, given
/// back when the response is produced (also on errors and on panics, which
/// rocket catches). Mount what it returns.
///
/// ```no_run
/// #[rocket::get("/")]
/// async fn index() -> &'static str { "hi" }
///
/// static DB: gino::Gino = gino::Gino::new();
///
/// #[rocket::launch]
/// fn rocket() -> _ {
///     rocket::build()
///         .attach(gino_rocket::Gino::fairing(&DB))
///         .mount("/", gino_rocket::scoped(rocket::routes![index]))
/// }
/// ```
///
/// The fairing warns at launch about mounted routes that are not scoped.
pub fn scoped(routes: Vec<Route>) -> Vec<Route> {
    wrap(routes, None)
}

/// Wraps the handlers of `routes` so that each request runs for the tenant
/// `pick` takes from it (a header, the host, a path segment), or fails with
/// `pick`'s status (rocket's catchers answer): the tenants' database is
/// bound to the tenant's engine for the request, with a lazy connection on
/// it, as [`scoped`] does for one database. Attach the fairing with
/// [`Gino::tenants`](crate::Gino::tenants): without tenants, launch is
/// refused, naming these routes. A tenant whose engine cannot be
/// made is answered through [`Error`] (`UnknownTenant`: 404); handlers find
/// the tenant with the [`Tenant`](crate::Tenant) guard.
///
/// ```no_run
/// use rocket::http::Status;
///
/// #[rocket::get("/whoami")]
/// async fn whoami(tenant: gino_rocket::Tenant) -> String { tenant.0 }
///
/// static DB: gino::Gino = gino::Gino::new();
///
/// #[rocket::launch]
/// fn rocket() -> _ {
///     let tenants = gino::Tenants::builder(&DB, |t: String| async move {
///         Ok(format!("postgres://localhost/app_{t}"))
///     })
///     .build();
///     rocket::build()
///         .attach(gino_rocket::Gino::fairing(&DB).tenants(tenants))
///         .mount("/", gino_rocket::tenant_scoped(rocket::routes![whoami], |request| {
///             request.headers().get_one("x-tenant").map(str::to_owned).ok_or(Status::BadRequest)
///         }))
/// }
/// ```
pub fn tenant_scoped<F>(routes: Vec<Route>, pick: F) -> Vec<Route>
where
    F: Fn(&Request<'_>) -> Result<String, Status> + Send + Sync + 'static,
{
    wrap(routes, Some(Arc::new(pick)))
}

/// How a route's requests find their tenant.
type Pick = Arc<dyn Fn(&Request<'_>) -> Result<String, Status> + Send + Sync>;

fn wrap(routes: Vec<Route>, tenant: Option<Pick>) -> Vec<Route> {
    routes
        .into_iter()
        .map(|mut route| {
            let mut registry = registry().lock().unwrap_or_else(|p| p.into_inner());
            let mounted = registry.entry(key(&route)).or_default();
            match tenant {
                Some(_) => mounted.for_tenants = true,
                None => mounted.plain = true,
            }
            route.handler = Box::new(Scoped {
                handler: route.handler,
                tenant: tenant.clone(),
            });
            route
        })
        .collect()
}

/// How `route` was mounted: `None` unscoped, `Some(true)` for tenants
/// only. The registry is the process's: a route mounted both ways (by
/// two rockets, say) may be either, and counts as plainly scoped.
pub(crate) fn scope_of(route: &Route) -> Option<bool> {
    registry()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&key(route))
        .map(|mounted| mounted.for_tenants && !mounted.plain)
}

/// How a route was mounted, as far as the process has seen.
#[derive(Default)]
struct Mounted {
    plain: bool,
    for_tenants: bool,
}

/// What identifies a route across the clones rocket makes of it when
/// mounting: method, unmounted URI, rank and name.
type Key = (String, String, isize, Option<String>);

fn key(route: &Route) -> Key {
    (
        route.method.as_str().to_owned(),
        route.uri.unmounted_origin.to_string(),
        route.rank,
        route.name.as_ref().map(|n| n.to_string()),
    )
}

/// The scoped routes, each with how it was mounted.
fn registry() -> &'static Mutex<HashMap<Key, Mounted>> {
    static SCOPED: OnceLock<Mutex<HashMap<Key, Mounted>>> = OnceLock::new();
    SCOPED.get_or_init(Default::default)
}

rocket::tokio::task_local! {
    /// The tenant of the handler running now, for the
    /// [`Tenant`](crate::Tenant) guard. Task-local rather than in the
    /// request's `local_cache`: rocket keeps that cache across forwards,
    /// and a route a request is forwarded to must not see the tenant of
    /// the route that forwarded it.
    static TENANT: String;
}

/// The tenant of the [`tenant_scoped`] handler the caller runs in.
pub(crate) fn current_tenant() -> Option<String> {
    TENANT.try_with(String::clone).ok()
}

/// A handler run in the request scope.
#[derive(Clone)]
struct Scoped {
    handler: Box<dyn Handler>,
    tenant: Option<Pick>,
}

#[rocket::async_trait]
impl Handler for Scoped {
    async fn handle<'r>(&self, request: &'r Request<'_>, data: Data<'r>) -> Outcome<'r> {
        let Some(extension) = request.rocket().state::<Extension>() else {
            tracing::error!(
                target: "gino::web",
                "a gino_rocket::scoped route ran without gino's fairing: attach \
                 gino_rocket::Gino::fairing(&DB); the request runs without its scope"
            );
            return self.handler.handle(request, data).await;
        };
        let scope = match &self.tenant {
            None => extension.request(),
            Some(pick) => {
                let key = match pick(request) {
                    Ok(key) => key,
                    Err(status) => return Outcome::Error(status),
                };
                match extension.tenant_request(&key).await {
                    Ok(scope) => scope,
                    Err(e) => return Outcome::from(request, Error(e)),
                }
            }
        };
        // The guards run inside the handler, so inside the scope: `Conn`
        // finds the scope's connection there, whichever route of a chain
        // of forwards runs.
        let tenant = scope.tenant();
        // A streamed body is held in flight until sent (`HoldStreamed`).
        let handle = async {
            let mut outcome = self.handler.handle(request, data).await;
            size_seekable(&mut outcome).await;
            outcome
        };
        let handling = scope.run_then(handle, HoldStreamed);
        match tenant {
            Some(tenant) => TENANT.scope(tenant.0, handling).await,
            None => handling.await,
        }
    }
}
