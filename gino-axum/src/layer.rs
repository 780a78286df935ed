//! [`GinoLayer`]: the tower layer that runs every request in gino's
//! request scope, so that its queries share one lazy connection that goes
//! back to the pool when the response is produced.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use gino::web::Extension;
use http::Request;
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
    S: Service<Request<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // The handler finds the request's connection in the scope
        // (`RequestConnection::current`), not in the request's extensions,
        // whose map and boxes would cost every request four allocations.
        let scope = self.extension.request();
        // Called here, on the service that was polled ready (no clone: for
        // axum's routes a clone is an allocation per request), and boxed
        // first, so that the scope's wrappers move a pointer instead of the
        // handler's (often large) future.
        let handled = Box::pin(self.inner.call(request));
        ResponseFuture::new(Box::pin(scope.run(handled)))
    }
}

/// The response future of [`GinoService`]: the inner service's, run in
/// the request scope.
pub struct ResponseFuture<T> {
    inner: Pin<Box<dyn Future<Output = T> + Send>>,
}

impl<T> ResponseFuture<T> {
    pub(crate) fn new(inner: Pin<Box<dyn Future<Output = T> + Send>>) -> Self {
        ResponseFuture { inner }
    }
}

impl<T> Future for ResponseFuture<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        self.inner.as_mut().poll(cx)
    }
}

impl<T> std::fmt::Debug for ResponseFuture<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
