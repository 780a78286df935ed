//! The users JSON API on rocket (see `examples/src/users.rs` for the
//! routes), with gino-rocket: the database bound on ignite from
//! `Rocket.toml` / `DB_*` settings, a lazy connection per request through
//! `gino_rocket::scoped`, the pool closed on shutdown.
//!
//! `cargo run --example rocket_users`; without `DB_*` variables it uses a
//! database of the test server (`DATABASE_URL`, or a throwaway cluster);
//! `PORT` picks the port.

use gino::prelude::*;
use gino_examples::users::{self, DB, NicknameBody, Page, User};
use gino_rocket::Error;
use rocket::fairing::AdHoc;
use rocket::form::{Errors, error::ErrorKind};
use rocket::http::Status;
use rocket::serde::json::Json;
use rocket::{delete, get, patch, post, routes};

/// What `GET /users` answers besides users: a malformed page (rocket's
/// `Option` query parameters would quietly ignore one), or gino's errors.
#[derive(rocket::Responder)]
enum ListError {
    #[response(status = 400, content_type = "json")]
    BadPage(&'static str),
    Database(Error),
}

impl From<gino::Error> for ListError {
    fn from(error: gino::Error) -> Self {
        ListError::Database(error.into())
    }
}

/// A page bound from the query: absent is `None`, malformed is a 400.
fn count(value: Result<u32, Errors<'_>>) -> Result<Option<u32>, ListError> {
    match value {
        Ok(n) => Ok(Some(n)),
        Err(e) if e.iter().all(|e| matches!(e.kind, ErrorKind::Missing)) => Ok(None),
        Err(_) => Err(ListError::BadPage(
            r#"{"error":"limit and offset are whole numbers"}"#,
        )),
    }
}

#[get("/users?<limit>&<offset>")]
async fn list(
    limit: Result<u32, Errors<'_>>,
    offset: Result<u32, Errors<'_>>,
) -> Result<Json<Vec<User>>, ListError> {
    let page = Page {
        limit: count(limit)?,
        offset: count(offset)?,
    };
    Ok(Json(page.load().await?))
}

#[get("/users/<id>")]
async fn show(id: i32) -> Result<Json<User>, Error> {
    Ok(Json(User::get_or_404(id).await?))
}

#[post("/users", data = "<body>")]
async fn create(body: Json<NicknameBody>) -> Result<(Status, Json<User>), Error> {
    let user = User::create().nickname(body.into_inner().nickname).await?;
    Ok((Status::Created, Json(user)))
}

#[patch("/users/<id>", data = "<body>")]
async fn update(id: i32, body: Json<NicknameBody>) -> Result<Json<User>, Error> {
    let mut user = User::get_or_404(id).await?;
    user.update()
        .nickname(body.into_inner().nickname)
        .apply()
        .await?;
    Ok(Json(user))
}

#[delete("/users/<id>")]
async fn remove(id: i32) -> Result<Status, Error> {
    User::get_or_404(id).await?.delete().await?;
    Ok(Status::NoContent)
}

#[rocket::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (settings, _database) = users::settings().await?;
    let mut figment = rocket::Config::figment()
        .merge(("address", "127.0.0.1"))
        .merge(("port", users::port()));
    if let Some(dsn) = settings.dsn.filter(|_| _database.is_some()) {
        // No DB_* variables: the test server's database.
        figment = figment
            .merge(("databases.gino.dsn", dsn))
            .merge(("databases.gino.pool_min_size", settings.pool_min_size));
    }
    let _rocket = rocket::custom(figment)
        .attach(gino_rocket::Gino::fairing(&DB))
        .attach(AdHoc::try_on_ignite("create tables", |rocket| async {
            match DB.create_all().await {
                Ok(()) => Ok(rocket),
                Err(e) => {
                    eprintln!("cannot create the tables: {e}");
                    Err(rocket)
                }
            }
        }))
        .attach(AdHoc::on_liftoff("announce", |rocket| {
            Box::pin(async move {
                let config = rocket.config();
                println!("listening on http://{}:{}", config.address, config.port);
            })
        }))
        .mount(
            "/",
            gino_rocket::scoped(routes![list, show, create, update, remove]),
        )
        .launch()
        .await?;
    Ok(())
}
