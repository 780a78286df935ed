//! [`GinoLayer`]: the tower layer that runs every request in gino's
//! request scope, so that its queries share one lazy connection that goes
//! back to the pool when the response is produced (a body that streams on
//! counts as in flight until it is sent).

use std::task::{Context, Poll};

use axum::response::Response;
use gino::web::{Extension, RequestFuture};
use http::Request;

use crate::body::HoldStreamed;
use tower_layer::Layer;
use tower_service::Service;

/// Runs each request in the request scope of a [`Gino`](crate::Gino): made
/// by [`Gino::layer`](crate::Gino::layer). Works with `Router::with_state`,
/// nested routers and other layers in any order.
///
/// ```no_run
/// use axum::{Router, routing::get};
///
/// static DB: gino::Gino = gino::Gino::new();
///
/// # fn demo() -> Result<(), gino::Error> {
/// let db = gino_axum::Gino::from_env(&DB)?;
/// let app: Router = Router::new()
///     .route("/", get(|| async { "hello" }))
///     .layer(db.layer());
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct GinoLayer {
    extension: Extension,
}

impl GinoLayer {
    pub(crate) fn new(extension: Extension) -> Self {
        GinoLayer { extension }
    }
}

impl<S> Layer<S> for GinoLayer {
    type Service = GinoService<S>;

    fn layer(&self, inner: S) -> GinoService<S> {
        GinoService {
            inner,
            extension: self.extension.clone(),
        }
    }
}

/// The service of [`GinoLayer`].
#[derive(Clone, Debug)]
pub struct GinoService<S> {
    inner: S,
    extension: Extension,
}

impl<S, B> Service<Request<B>> for GinoService<S>
where
    S: Service<Request<B>, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = RequestFuture<S::Future, HoldStreamed>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // The handler finds the request's connection in the scope
        // (`RequestConnection::current`), not in the request's extensions,
        // whose map and boxes would cost every request four allocations.
        // Called on the service that was polled ready (no clone: for
        // axum's routes a clone is an allocation per request). Not boxed:
        // the scope's future is written by hand, so the handler's future
        // moves with it once (boxing it measured the same).
        // A streamed body is held in flight until sent (`HoldStreamed`).
        self.extension
            .request()
            .run_then(self.inner.call(request), HoldStreamed)
    }
}
