//! The users JSON API as an axum router, shared by the axum examples
//! (`axum_users`, and `axum_tenants` per tenant): every handler runs its
//! queries implicitly, on the request's lazy connection.

use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use gino::prelude::*;
use gino_axum::Error;

use crate::users::{NicknameBody, Page, User};

/// Serves `app` on `PORT` until Ctrl-C or SIGTERM, printing the
/// `listening on` line, then closes `db` after the requests in flight.
pub async fn serve(app: Router, db: &gino_axum::Gino) -> Result<(), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", crate::users::port())).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(db.shutdown_on(crate::users::stop_signal()))
        .await?;
    db.close().await;
    Ok(())
}

/// `/users` (list, create) and `/users/{id}` (show, update, delete).
pub fn users_router() -> Router {
    Router::new()
        .route("/users", get(list).post(create))
        .route("/users/{id}", get(show).patch(update).delete(delete))
}

async fn list(Query(page): Query<Page>) -> Result<Json<Vec<User>>, Error> {
    Ok(Json(page.load().await?))
}

async fn show(Path(id): Path<i32>) -> Result<Json<User>, Error> {
    Ok(Json(User::get_or_404(id).await?))
}

async fn create(Json(body): Json<NicknameBody>) -> Result<(StatusCode, Json<User>), Error> {
    let user = User::create().nickname(body.nickname).await?;
    Ok((StatusCode::CREATED, Json(user)))
}

async fn update(Path(id): Path<i32>, Json(body): Json<NicknameBody>) -> Result<Json<User>, Error> {
    let mut user = User::get_or_404(id).await?;
    user.update().nickname(body.nickname).apply().await?;
    Ok(Json(user))
}

async fn delete(Path(id): Path<i32>) -> Result<StatusCode, Error> {
    User::get_or_404(id).await?.delete().await?;
    Ok(StatusCode::NO_CONTENT)
}
