//! [`scoped`]: the rocket-shaped way to run handlers in gino's request
//! scope. Fairings cannot wrap a handler's future, so the routes' handlers
//! are wrapped where they are mounted.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

use gino::web::{Extension, RequestConnection};
use rocket::route::{Handler, Outcome, Route};
use rocket::{Data, Request};

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
    routes
        .into_iter()
        .map(|mut route| {
            registry()
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key(&route));
            route.handler = Box::new(Scoped(route.handler));
            route
        })
        .collect()
}

/// Whether `route` was wrapped by [`scoped`] (before it was mounted).
pub(crate) fn is_scoped(route: &Route) -> bool {
    registry()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .contains(&key(route))
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

fn registry() -> &'static Mutex<HashSet<Key>> {
    static SCOPED: OnceLock<Mutex<HashSet<Key>>> = OnceLock::new();
    SCOPED.get_or_init(Default::default)
}

/// The request's connection as the wrapper left it for the `Conn` guard.
pub(crate) struct ScopedConnection(pub(crate) Option<RequestConnection>);

/// A handler run in the request scope.
#[derive(Clone)]
struct Scoped(Box<dyn Handler>);

#[rocket::async_trait]
impl Handler for Scoped {
    async fn handle<'r>(&self, request: &'r Request<'_>, data: Data<'r>) -> Outcome<'r> {
        let Some(extension) = request.rocket().state::<Extension>() else {
            tracing::error!(
                target: "gino::web",
                "a gino_rocket::scoped route ran without gino's fairing: attach \
                 gino_rocket::Gino::fairing(&DB); the request runs without its scope"
            );
            return self.0.handle(request, data).await;
        };
        let scope = extension.request();
        request.local_cache(|| ScopedConnection(scope.connection()));
        scope.run(self.0.handle(request, data)).await
    }
}
