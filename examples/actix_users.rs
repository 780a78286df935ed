//! The users JSON API on actix-web (see `examples/src/users.rs` for the
//! routes), with gino-actix: the database bound at start-up from `DB_*`
//! settings, a lazy connection per request on every worker, the pool
//! closed after the server stopped.
//!
//! `cargo run --example actix_users`; without `DB_*` variables it uses a
//! database of the test server (`DATABASE_URL`, or a throwaway cluster);
//! `PORT` picks the port.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::{Payload, ServiceResponse};
use actix_web::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers};
use actix_web::{App, FromRequest, HttpRequest, HttpResponse, HttpServer, web};
use gino::prelude::*;
use gino::web::ErrorResponse;
use gino_actix::Error;
use gino_examples::users::{self, DB, NicknameBody, Page, User, is_json, refusal_body};

async fn list(page: web::Query<Page>) -> Result<web::Json<Vec<User>>, Error> {
    Ok(web::Json(page.load().await?))
}

async fn show(id: web::Path<i32>) -> Result<web::Json<User>, Error> {
    Ok(web::Json(User::get_or_404(id.into_inner()).await?))
}

/// actix's `Json`, taking a body only of the types the other examples
/// take ([`is_json`]): actix's own check also takes `text/json`, and a
/// predicate given to its `JsonConfig` can only add types.
struct Body<T>(T);

impl<T: serde::de::DeserializeOwned + 'static> FromRequest for Body<T> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let typed = request
            .headers()
            .get(CONTENT_TYPE)
            .is_some_and(|kind| is_json(kind.as_bytes()));
        if !typed {
            // 415, as axum and rocket answer (actix's own refusal is a 400).
            let refused = actix_web::error::ErrorUnsupportedMediaType(users::NOT_JSON);
            return Box::pin(std::future::ready(Err(refused)));
        }
        let json = web::Json::<T>::from_request(request, payload);
        Box::pin(async move {
            match json.await {
                Ok(json) => Ok(Body(json.into_inner())),
                // JSON of the wrong shape: 422, as axum and rocket answer
                // (actix answers every body serde refuses with 400).
                Err(e) => Err(match e.as_error::<actix_web::error::JsonPayloadError>() {
                    Some(actix_web::error::JsonPayloadError::Deserialize(refusal))
                        if refusal.classify() == serde_json::error::Category::Data =>
                    {
                        actix_web::error::ErrorUnprocessableEntity(refusal.to_string())
                    }
                    _ => e,
                }),
            }
        })
    }
}

async fn create(Body(body): Body<NicknameBody>) -> Result<HttpResponse, Error> {
    let user = User::create().nickname(body.nickname).await?;
    Ok(HttpResponse::Created()
        .insert_header((actix_web::http::header::LOCATION, user.location()))
        .json(user))
}

async fn update(
    id: web::Path<i32>,
    Body(body): Body<NicknameBody>,
) -> Result<web::Json<User>, Error> {
    let mut user = User::get_or_404(id.into_inner()).await?;
    user.update().nickname(body.nickname).apply().await?;
    Ok(web::Json(user))
}

async fn delete(id: web::Path<i32>) -> Result<HttpResponse, Error> {
    users::delete_user(id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The framework's own error answers (a body, query or path its extractors
/// refused, an unknown path) in JSON, as gino's are: the error's message
/// becomes `{"error": "..."}`, its status and other headers stay. An
/// answer already in JSON (gino's) passes as it is.
fn json_error<B>(answer: ServiceResponse<B>) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let json = answer
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|kind| is_json(kind.as_bytes()));
    if json {
        return Ok(ErrorHandlerResponse::Response(answer.map_into_left_body()));
    }
    let status = answer.status();
    let message = answer.response().error().map(ToString::to_string);
    let body = refusal_body(&message.unwrap_or_default(), status.canonical_reason());
    let (request, refusal) = answer.into_parts();
    let mut json = HttpResponse::build(status);
    // Its other headers stay: a 405's `Allow`, say.
    for (name, value) in refusal.headers() {
        if name != CONTENT_TYPE && name != CONTENT_LENGTH {
            json.append_header((name.clone(), value.clone()));
        }
    }
    let json = json.content_type(ErrorResponse::CONTENT_TYPE).body(body);
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(request, json).map_into_right_body(),
    ))
}

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    users::init_tracing();
    let (settings, _database) = users::settings().await?;
    let settings_shutdown = settings.shutdown_timeout;
    let db = gino_actix::Gino::new(&DB, settings);
    db.connect().await?;
    DB.create_all().await?;

    let server = HttpServer::new({
        let db = db.clone();
        move || {
            App::new()
                .app_data(web::Data::new(db.clone()))
                // An `{id}` that is not an i32: 400, as in axum and rocket
                // (actix's `Path` answers 404 by default).
                .app_data(
                    web::PathConfig::default()
                        .error_handler(|_, _| actix_web::error::ErrorBadRequest(users::BAD_ID)),
                )
                .wrap(db.middleware())
                .wrap(ErrorHandlers::new().default_handler(json_error))
                // Resources, so that a method a path does not take is a 405.
                // HEAD answers as GET without the body (as axum and rocket
                // do on their own; actix routes GET alone).
                .service(web::resource("/users").get(list).head(list).post(create))
                .service(
                    web::resource("/users/{id}")
                        .get(show)
                        .head(show)
                        .patch(update)
                        .delete(delete),
                )
        }
    })
    .bind(("127.0.0.1", users::port()?))?
    // actix stops at once on Ctrl-C, cutting requests in flight: both
    // signals are caught here instead, and stop it gracefully, after the
    // requests in flight; then the pool closes.
    .disable_signals()
    // Those get `DB_SHUTDOWN_TIMEOUT` (30 s), as in the axum and rocket
    // examples, not actix's own 30 s whatever the setting.
    .shutdown_timeout(settings_shutdown.as_secs().max(1));
    let addr = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    let stop = users::stop_signal();
    actix_web::rt::spawn(async move {
        stop.await;
        handle.stop(true).await;
    });
    println!("listening on http://{addr}");
    server.await?;
    db.close().await;
    Ok(())
}
