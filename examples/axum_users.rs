//! The users JSON API on axum (see `examples/src/users.rs` for the routes),
//! with gino-axum: the database bound at start-up from `DB_*` settings, a
//! lazy connection per request, the pool closed after in-flight requests
//! at shutdown.
//!
//! `cargo run --example axum_users`, then
//! `curl -X POST localhost:8000/users -H 'content-type: application/json' -d '{"nickname":"fantix"}'`.
//! Without `DB_*` variables it uses a database of the test server
//! (`DATABASE_URL`, or a throwaway cluster); `PORT` picks the port.

use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use gino::prelude::*;
use gino_axum::Error;
use gino_examples::users::{self, DB, NicknameBody, Page, User};

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

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    users::init_tracing();
    let (settings, _database) = users::settings().await?;
    let db = gino_axum::Gino::new(&DB, settings);
    db.connect().await?;
    DB.create_all().await?;

    let app = Router::new()
        .route("/users", get(list).post(create))
        .route("/users/{id}", get(show).patch(update).delete(delete))
        .layer(db.layer());
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", users::port())).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(db.shutdown_on(users::stop_signal()))
        .await?;
    db.close().await;
    Ok(())
}
