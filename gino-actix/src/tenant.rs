//! The tenant middleware: picks each request's tenant from the request,
//! then runs the request in that tenant's scope (its database bound to the
//! tenant's engine, made on first use, and a lazy connection on it).

use std::future::{Ready, ready};
use std::rc::Rc;
use std::sync::Arc;

use actix_web::HttpMessage;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use futures_util::future::LocalBoxFuture;
use gino::web::{Extension, TenantKey};

use crate::Error;
use crate::body::{HeldBody, HoldStreamed};

/// Middleware running each request in the scope of the tenant `pick`
/// names (see [`Gino::tenant_middleware`](crate::Gino::tenant_middleware)).
pub struct TenantMiddleware<F> {
    extension: Extension,
    pick: Arc<F>,
}

impl<F> Clone for TenantMiddleware<F> {
    fn clone(&self) -> Self {
        TenantMiddleware {
            extension: self.extension.clone(),
            pick: self.pick.clone(),
        }
    }
}

impl<F> std::fmt::Debug for TenantMiddleware<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantMiddleware")
            .field("extension", &self.extension)
            .finish_non_exhaustive()
    }
}

impl<F> TenantMiddleware<F> {
    pub(crate) fn new(extension: Extension, pick: F) -> Self {
        TenantMiddleware {
            extension,
            pick: Arc::new(pick),
        }
    }
}

impl<S, B, F, R> Transform<S, ServiceRequest> for TenantMiddleware<F>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    S::Future: 'static,
    B: MessageBody + 'static,
    F: Fn(&ServiceRequest) -> Result<String, R> + 'static,
    R: Into<actix_web::Error>,
{
    type Response = ServiceResponse<EitherBody<HeldBody<B>>>;
    type Error = actix_web::Error;
    type Transform = TenantMiddlewareService<S, F>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(TenantMiddlewareService {
            service: Rc::new(service),
            extension: self.extension.clone(),
            pick: self.pick.clone(),
        }))
    }
}

/// The service of a [`TenantMiddleware`].
pub struct TenantMiddlewareService<S, F> {
    service: Rc<S>,
    extension: Extension,
    pick: Arc<F>,
}

impl<S, F> std::fmt::Debug for TenantMiddlewareService<S, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantMiddlewareService")
            .field("extension", &self.extension)
            .finish_non_exhaustive()
    }
}

impl<S, B, F, R> Service<ServiceRequest> for TenantMiddlewareService<S, F>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    S::Future: 'static,
    B: MessageBody + 'static,
    F: Fn(&ServiceRequest) -> Result<String, R> + 'static,
    R: Into<actix_web::Error>,
{
    type Response = ServiceResponse<EitherBody<HeldBody<B>>>;
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    // A request refused here is answered, not failed: outer middleware
    // (`ErrorHandlers`, `DefaultHeaders`) passes an `Err` by untouched, and
    // must see these answers as it sees every other.
    fn call(&self, request: ServiceRequest) -> Self::Future {
        let key = match (self.pick)(&request) {
            Ok(key) => key,
            Err(rejection) => {
                let answer = request.error_response(rejection.into());
                return Box::pin(async move { Ok(answer.map_into_right_body()) });
            }
        };
        let (service, extension) = (self.service.clone(), self.extension.clone());
        Box::pin(async move {
            let scope = match extension.tenant_request(&key).await {
                Ok(scope) => scope,
                Err(e) => return Ok(request.error_response(Error(e)).map_into_right_body()),
            };
            request.extensions_mut().insert(TenantKey(key));
            let answer = scope.run_then(service.call(request), HoldStreamed).await?;
            Ok(answer.map_into_left_body())
        })
    }
}
