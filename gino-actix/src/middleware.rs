//! [`GinoMiddleware`]: the actix middleware that runs every request in
//! gino's request scope, so that its queries share one lazy connection
//! that goes back to the pool when the response is produced (a body that
//! streams on counts as in flight until it is sent).

use std::future::{Ready, ready};

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use gino::web::{Extension, RequestFuture};

use crate::body::{HeldBody, HoldStreamed};

/// Runs each request in the request scope of a [`Gino`](crate::Gino):
/// made by [`Gino::middleware`](crate::Gino::middleware), registered with
/// `App::wrap`. Works with every worker of the server.
///
/// ```no_run
/// use actix_web::{App, HttpServer, web};
///
/// static DB: gino::Gino = gino::Gino::new();
///
/// # async fn demo() -> std::io::Result<()> {
/// let db = gino_actix::Gino::from_env(&DB).expect("DB_* settings");
/// db.connect().await.expect("database");
/// HttpServer::new({
///     let db = db.clone();
///     move || App::new().wrap(db.middleware()).route("/", web::get().to(|| async { "hi" }))
/// })
/// .bind(("127.0.0.1", 8000))?
/// .run()
/// .await?;
/// db.close().await;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct GinoMiddleware {
    extension: Extension,
}

impl GinoMiddleware {
    pub(crate) fn new(extension: Extension) -> Self {
        GinoMiddleware { extension }
    }
}

impl<S, B> Transform<S, ServiceRequest> for GinoMiddleware
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    S::Future: 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<HeldBody<B>>;
    type Error = actix_web::Error;
    type Transform = GinoMiddlewareService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(GinoMiddlewareService {
            service,
            extension: self.extension.clone(),
        }))
    }
}

/// The service of [`GinoMiddleware`].
#[derive(Debug)]
pub struct GinoMiddlewareService<S> {
    service: S,
    extension: Extension,
}

impl<S, B> Service<ServiceRequest> for GinoMiddlewareService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    type Response = ServiceResponse<HeldBody<B>>;
    type Error = actix_web::Error;
    type Future = RequestFuture<S::Future, HoldStreamed>;

    forward_ready!(service);

    fn call(&self, request: ServiceRequest) -> Self::Future {
        // The handler finds the request's connection in the scope
        // (`RequestConnection::current`), not in the request's extensions.
        // A streamed body is held in flight until sent (`HoldStreamed`).
        self.extension
            .request()
            .run_then(self.service.call(request), HoldStreamed)
    }
}
