//! The tenant layer: picks each request's tenant from the request, then
//! runs the request in that tenant's scope (its database bound to the
//! tenant's engine, made on first use, and a lazy connection on it).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::response::{IntoResponse, Response};
use gino::web::{Extension, TenantKey};
use http::Request;
use http::request::Parts;
use tower_layer::Layer;
use tower_service::Service;

use crate::Error;
use crate::body::HoldStreamed;

/// A tower layer running each request in the scope of the tenant `pick`
/// names (see [`Gino::tenant_layer`](crate::Gino::tenant_layer)).
pub struct TenantLayer<F> {
    extension: Extension,
    pick: Arc<F>,
}

impl<F> Clone for TenantLayer<F> {
    fn clone(&self) -> Self {
        TenantLayer {
            extension: self.extension.clone(),
            pick: self.pick.clone(),
        }
    }
}

impl<F> std::fmt::Debug for TenantLayer<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantLayer")
            .field("extension", &self.extension)
            .finish_non_exhaustive()
    }
}

impl<F> TenantLayer<F> {
    pub(crate) fn new(extension: Extension, pick: F) -> Self {
        TenantLayer {
            extension,
            pick: Arc::new(pick),
        }
    }
}

impl<S, F> Layer<S> for TenantLayer<F> {
    type Service = TenantService<S, F>;

    fn layer(&self, inner: S) -> TenantService<S, F> {
        TenantService {
            inner,
            extension: self.extension.clone(),
            pick: self.pick.clone(),
        }
    }
}

/// The service of a [`TenantLayer`].
pub struct TenantService<S, F> {
    inner: S,
    extension: Extension,
    pick: Arc<F>,
}

impl<S: Clone, F> Clone for TenantService<S, F> {
    fn clone(&self) -> Self {
        TenantService {
            inner: self.inner.clone(),
            extension: self.extension.clone(),
            pick: self.pick.clone(),
        }
    }
}

impl<S, F> std::fmt::Debug for TenantService<S, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantService")
            .field("extension", &self.extension)
            .finish_non_exhaustive()
    }
}

impl<S, F, R, B> Service<Request<B>> for TenantService<S, F>
where
    S: Service<Request<B>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    F: Fn(&Parts) -> Result<String, R> + Send + Sync + 'static,
    R: IntoResponse,
    B: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<Result<Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // The clone is not ready; the ready one handles this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let (parts, body) = request.into_parts();
        let key = match (self.pick)(&parts) {
            Ok(key) => key,
            Err(rejection) => {
                let response = rejection.into_response();
                return ResponseFuture::new(Box::pin(async move { Ok(response) }));
            }
        };
        let mut request = Request::from_parts(parts, body);
        let extension = self.extension.clone();
        let handled: Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>> =
            Box::pin(async move {
                let scope = match extension.tenant_request(&key).await {
                    Ok(scope) => scope,
                    Err(e) => return Ok(Error(e).into_response()),
                };
                request.extensions_mut().insert(TenantKey(key));
                scope.run_then(inner.call(request), HoldStreamed).await
            });
        ResponseFuture::new(handled)
    }
}

/// The response future of [`TenantService`]: the tenant's lookup, then
/// the inner service's future in the tenant's request scope.
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
