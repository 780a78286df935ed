//! The users JSON API as an axum router, shared by the axum examples
//! (`axum_users`, and `axum_tenants` per tenant): every handler runs its
//! queries implicitly, on the request's lazy connection.

use axum::body::Body;
use axum::extract::{Path, Query};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::map_response;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use gino::prelude::*;
use gino::web::ErrorResponse;
use gino_axum::Error;

use crate::users::{NicknameBody, Page, User, is_json, refusal_body};

/// Serves `app` on `PORT` until Ctrl-C or SIGTERM, printing the
/// `listening on` line, then closes `db` after the requests in flight.
/// Those get `DB_SHUTDOWN_TIMEOUT` (30 s) from the signal, as in the actix
/// and rocket examples; axum's graceful shutdown alone would wait for
/// them, and for a client that never finishes sending its request, for
/// ever.
pub async fn serve(app: Router, db: &gino_axum::Gino) -> Result<(), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", crate::users::port()?)).await?;
    let stop = crate::users::stop_signal();
    let (stopping, stopped) = tokio::sync::oneshot::channel();
    let signal = async move {
        stop.await;
        let _ = stopping.send(());
    };
    let grace = db.settings().shutdown_timeout;
    let out_of_time = async move {
        match stopped.await {
            Ok(()) => tokio::time::sleep(grace).await,
            Err(_) => std::future::pending().await,
        }
    };
    println!("listening on http://{}", listener.local_addr()?);
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(db.shutdown_on(signal))
        .into_future();
    tokio::select! {
        served = served => {
            served?;
            db.close().await;
        }
        () = out_of_time => {
            // The requests still running are dropped with the runtime:
            // their connections go back (or, inside a transaction, close)
            // as they do when a client goes away.
            eprintln!(
                "{} request(s) still in flight {grace:?} after the stop signal: stopping \
                 without them",
                db.in_flight()
            );
        }
    }
    Ok(())
}

/// `/users` (list, create) and `/users/{id}` (show, update, delete), every
/// error in JSON: axum's own refusals too (a malformed body or query, an
/// unknown path, a method the path does not take), with their status and
/// message.
pub fn users_router() -> Router {
    json_api(users_routes())
}

/// The routes of [`users_router`] alone, for an app to add its own and
/// layer them (`route_layer`) before [`json_api`] finishes the router.
pub fn users_routes() -> Router {
    Router::new()
        .route("/users", get(list).post(create))
        .route("/users/{id}", get(show).patch(update).delete(delete))
}

/// `routes` with the API's 404 for unknown paths, and every error answer
/// in JSON: what was added to `routes` before this is covered too.
pub fn json_api(routes: Router) -> Router {
    routes
        .fallback(unknown_path)
        .layer(map_response(json_errors))
}

/// The framework's own error answers (a body or query its extractors
/// refused, a method the path does not take) in JSON, as gino's are: its
/// message becomes `{"error": "..."}`, its status and other headers stay.
/// An answer already in JSON (gino's, a handler's) passes as it is.
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let json = response
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|kind| is_json(kind.as_bytes()));
    if json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    // axum's rejections are one short line; the limit only guards against
    // an error body some other layer streams.
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .unwrap_or_default();
    let body = refusal_body(&String::from_utf8_lossy(&text), status.canonical_reason());
    parts.headers.remove(CONTENT_LENGTH);
    parts.headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static(ErrorResponse::CONTENT_TYPE),
    );
    Response::from_parts(parts, Body::from(body))
}

/// A path the API does not have.
async fn unknown_path() -> StatusCode {
    StatusCode::NOT_FOUND
}

async fn list(Query(page): Query<Page>) -> Result<Json<Vec<User>>, Error> {
    Ok(Json(page.load().await?))
}

async fn show(Path(id): Path<i32>) -> Result<Json<User>, Error> {
    Ok(Json(User::get_or_404(id).await?))
}

async fn create(Json(body): Json<NicknameBody>) -> Result<impl IntoResponse, Error> {
    let user = User::create().nickname(body.nickname).await?;
    Ok((
        StatusCode::CREATED,
        [(LOCATION, user.location())],
        Json(user),
    ))
}

async fn update(Path(id): Path<i32>, Json(body): Json<NicknameBody>) -> Result<Json<User>, Error> {
    let mut user = User::get_or_404(id).await?;
    user.update().nickname(body.nickname).apply().await?;
    Ok(Json(user))
}

async fn delete(Path(id): Path<i32>) -> Result<StatusCode, Error> {
    crate::users::delete_user(id).await?;
    Ok(StatusCode::NO_CONTENT)
}
