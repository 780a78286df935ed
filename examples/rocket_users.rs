//! The users JSON API on rocket (see `examples/src/users.rs` for the
//! routes), with gino-rocket: the database bound on ignite from
//! `Rocket.toml` / `DB_*` settings, a lazy connection per request through
//! `gino_rocket::scoped`, the pool closed on shutdown.
//!
//! `cargo run --example rocket_users`; without `DB_*` variables it uses a
//! database of the test server (`DATABASE_URL`, or a throwaway cluster);
//! `PORT` picks the port.

use gino::prelude::*;
use gino::web::ErrorResponse;
use gino_examples::users::{self, DB, NicknameBody, Page, User};
use gino_rocket::Error;
use rocket::fairing::{AdHoc, Fairing, Info, Kind};
use rocket::form::{Errors, Strict, error::ErrorKind};
use rocket::http::{ContentType, Method, Status};
use rocket::response::content::RawJson;
use rocket::response::status::Created;
use rocket::route::{self, Handler, Route};
use rocket::serde::json::{self, Json, serde_json::error::Category};
use rocket::{
    Data, Request, Response, Shutdown, catch, catchers, delete, get, patch, post, routes, uri,
};

/// What a route answers besides its value: a request it refuses, with the
/// reason, or gino's errors.
#[derive(rocket::Responder)]
enum ApiError {
    Refused((Status, RawJson<String>)),
    Database(Error),
}

impl ApiError {
    fn refused(status: Status, message: &str) -> Self {
        ApiError::Refused((status, RawJson(ErrorResponse::body_for(message))))
    }
}

impl From<gino::Error> for ApiError {
    fn from(error: gino::Error) -> Self {
        ApiError::Database(error.into())
    }
}

/// A page bound from the query: absent is `None`; malformed, or given
/// twice, is a 400, as axum's and actix's answer (rocket's `Option` query
/// parameters would quietly ignore a malformed one, and a lenient one takes
/// the first of two).
fn count(value: Result<Strict<u32>, Errors<'_>>) -> Result<Option<u32>, ApiError> {
    match value {
        Ok(n) => Ok(Some(n.into_inner())),
        Err(e) if e.iter().all(|e| matches!(e.kind, ErrorKind::Missing)) => Ok(None),
        Err(_) => Err(ApiError::refused(
            Status::BadRequest,
            "limit and offset are whole numbers",
        )),
    }
}

/// The `{id}` of a path, or a 400 when it is not a 32-bit integer, as
/// axum's and actix's answer (rocket's `i32` parameter would forward such a
/// request to a 422).
fn user_id(id: Result<i32, &str>) -> Result<i32, ApiError> {
    id.map_err(|_| ApiError::refused(Status::BadRequest, users::BAD_ID))
}

/// A JSON body, or its refusal: 415 unless the request says it sends JSON
/// (as [`users::is_json`] reads its type, in every example),
/// else the status rocket's `Json` guard gives (413 past the size limit,
/// 422 for JSON of the wrong shape, else 400) and serde's reason, which
/// rocket's catchers cannot see.
///
/// rocket's `Json` parses whatever the content type; a `text/plain` body
/// is what an HTML form on another site can post without the browser
/// asking first, so a JSON API that took one would take forged requests.
fn body<T>(
    kind: Option<&ContentType>,
    body: Result<Json<T>, json::Error<'_>>,
) -> Result<T, ApiError> {
    if !kind.is_some_and(|kind| users::is_json(kind.to_string().as_bytes())) {
        return Err(ApiError::refused(
            Status::UnsupportedMediaType,
            users::NOT_JSON,
        ));
    }
    body.map(Json::into_inner).map_err(|error| {
        let status = match &error {
            json::Error::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                Status::PayloadTooLarge
            }
            json::Error::Parse(_, e) if e.classify() == Category::Data => {
                Status::UnprocessableEntity
            }
            _ => Status::BadRequest,
        };
        ApiError::refused(status, &error.to_string())
    })
}

/// A fairing for paths with empty segments (`/users/`, `//users`):
/// rocket's router skips those segments, so it would serve them as
/// `/users`; axum and actix answer 404, and so does this app, by sending
/// such a request to a path no route takes.
fn exact_paths() -> AdHoc {
    AdHoc::on_request("exact paths", |request, _| {
        Box::pin(async move {
            let path = request.uri().path();
            if path != "/" && path.as_str().split('/').skip(1).any(str::is_empty) {
                request.set_uri(uri!("/-"));
            }
        })
    })
}

/// rocket reads a form POST whose body opens with `_method=<method>` as a
/// request of that method (HTML forms can only GET and POST), so an HTML
/// form on another site could DELETE a user without the browser asking
/// first. axum and actix take no such override, and nor does this app:
/// such a request is the POST it was (405 on `/users/{id}`).
struct NoMethodOverride;

#[rocket::async_trait]
impl Fairing for NoMethodOverride {
    fn info(&self) -> Info {
        Info {
            name: "no _method override",
            kind: Kind::Request,
        }
    }

    async fn on_request(&self, request: &mut Request<'_>, data: &mut Data<'_>) {
        let form = request.content_type().is_some_and(|kind| kind.is_form());
        if !form || request.method() == Method::Post {
            return;
        }
        // Read as rocket reads it when it overrides the method.
        let peeked = data.peek("_method=delete".len()).await;
        let overridden = std::str::from_utf8(peeked)
            .ok()
            .and_then(|form| rocket::form::Form::values(form).next())
            .is_some_and(|field| field.name == "_method" && field.value.parse::<Method>().is_ok());
        if overridden {
            request.set_method(Method::Post);
        }
    }
}

/// Every other error rocket answers itself (an unknown path, a panic), in
/// JSON as the routes' are.
#[catch(default)]
fn json_error(status: Status, _: &Request<'_>) -> (Status, RawJson<String>) {
    (
        status,
        RawJson(ErrorResponse::body_for(status.reason_lossy())),
    )
}

#[get("/users?<limit>&<offset>")]
async fn list(
    limit: Result<Strict<u32>, Errors<'_>>,
    offset: Result<Strict<u32>, Errors<'_>>,
) -> Result<Json<Vec<User>>, ApiError> {
    let page = Page {
        limit: count(limit)?,
        offset: count(offset)?,
    };
    Ok(Json(page.load().await?))
}

#[get("/users/<id>")]
async fn show(id: Result<i32, &str>) -> Result<Json<User>, ApiError> {
    Ok(Json(User::get_or_404(user_id(id)?).await?))
}

#[post("/users", data = "<new>")]
async fn create(
    kind: Option<&ContentType>,
    new: Result<Json<NicknameBody>, json::Error<'_>>,
) -> Result<Created<Json<User>>, ApiError> {
    let new = body(kind, new)?;
    let user = User::create().nickname(new.nickname).await?;
    Ok(Created::new(user.location()).body(Json(user)))
}

#[patch("/users/<id>", data = "<change>")]
async fn update(
    id: Result<i32, &str>,
    kind: Option<&ContentType>,
    change: Result<Json<NicknameBody>, json::Error<'_>>,
) -> Result<Json<User>, ApiError> {
    let id = user_id(id)?;
    let change = body(kind, change)?;
    let mut user = User::get_or_404(id).await?;
    user.update().nickname(change.nickname).apply().await?;
    Ok(Json(user))
}

#[delete("/users/<id>")]
async fn remove(id: Result<i32, &str>) -> Result<Status, ApiError> {
    users::delete_user(user_id(id)?).await?;
    Ok(Status::NoContent)
}

/// A method a path does not take: 405 with `Allow`, as axum and actix
/// answer (rocket has no 405: a request no route takes is a 404).
#[derive(Clone)]
struct NotAllowed {
    allow: String,
}

#[rocket::async_trait]
impl Handler for NotAllowed {
    async fn handle<'r>(&self, _: &'r Request<'_>, _: Data<'r>) -> route::Outcome<'r> {
        let body = ErrorResponse::body_for(Status::MethodNotAllowed.reason_lossy());
        route::Outcome::Success(
            Response::build()
                .status(Status::MethodNotAllowed)
                .raw_header("Allow", self.allow.clone())
                .header(ContentType::JSON)
                .sized_body(body.len(), std::io::Cursor::new(body))
                .finalize(),
        )
    }
}

/// Routes answering 405 for every method of `path` but `allowed` (and
/// `HEAD`, which rocket answers with `GET`'s route).
fn not_allowed(path: &str, allowed: &[Method]) -> Vec<Route> {
    use Method::*;
    let mut allow: Vec<&str> = allowed.iter().map(|m| m.as_str()).collect();
    if allowed.contains(&Get) {
        allow.push(Head.as_str());
    }
    let handler = NotAllowed {
        allow: allow.join(", "),
    };
    [Get, Put, Post, Delete, Options, Patch, Trace]
        .into_iter()
        .filter(|method| !allowed.contains(method))
        .map(|method| Route::new(method, path, handler.clone()))
        .collect()
}

#[rocket::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let gino = gino_rocket::Gino::fairing(&DB);
    let figment = rocket::Config::figment();
    // Rocket.toml (or ROCKET_DATABASES) configures the database as it does
    // for any rocket app; without it, the `DB_*` variables or, with none
    // given, a test server's database.
    let (settings, _database) = if figment.find_value("databases.gino").is_ok() {
        (gino.settings(&figment)?, None)
    } else {
        users::settings().await?
    };
    let mut figment = figment
        .merge(("address", "127.0.0.1"))
        .merge(("port", users::port()?))
        // The body limit of the axum and actix examples (rocket's is 1 MiB).
        .merge(("limits.json", "2MiB"))
        // Requests in flight get as long to finish at shutdown as the pool
        // waits for them (`DB_SHUTDOWN_TIMEOUT`, 30 s), as in the others.
        .merge(("shutdown.grace", settings.shutdown_timeout.as_secs()))
        .merge(("shutdown.mercy", 5))
        // Signals are caught from the start (see `stop` below), not from
        // after liftoff, when rocket would listen for them.
        .merge(("shutdown.ctrlc", false))
        .merge(("shutdown.signals", Vec::<String>::new()));
    let stop = users::stop_signal();
    // Liftoff hands over rocket's shutdown: a signal after it stops the
    // server gracefully, one before it (while the pool connects, with its
    // retries, or the tables are made) stops the start.
    let (lifted, mut liftoff) = tokio::sync::oneshot::channel::<Shutdown>();
    let lifted = std::sync::Mutex::new(Some(lifted));
    if let Some(dsn) = settings.dsn.filter(|_| _database.is_some()) {
        // No DB_* variables: the test server's database.
        figment = figment
            .merge(("databases.gino.dsn", dsn))
            .merge(("databases.gino.pool_min_size", settings.pool_min_size));
    }
    let launch = rocket::custom(figment)
        .attach(exact_paths())
        .attach(NoMethodOverride)
        .attach(gino)
        .attach(AdHoc::try_on_ignite("create tables", |rocket| async {
            // Rocket runs every ignite fairing; when gino's failed, it has
            // said why and launch is off already.
            if !DB.is_bound() {
                return Err(rocket);
            }
            match DB.create_all().await {
                Ok(()) => Ok(rocket),
                Err(e) => {
                    eprintln!("cannot create the tables: {e}");
                    Err(rocket)
                }
            }
        }))
        .attach(AdHoc::on_liftoff("announce", move |rocket| {
            let lifted = lifted.lock().unwrap().take();
            Box::pin(async move {
                if let Some(lifted) = lifted {
                    let _ = lifted.send(rocket.shutdown());
                }
                let config = rocket.config();
                println!("listening on http://{}:{}", config.address, config.port);
            })
        }))
        .mount(
            "/",
            gino_rocket::scoped(routes![list, show, create, update, remove]),
        )
        .mount("/", not_allowed("/users", &[Method::Get, Method::Post]))
        .mount(
            "/",
            not_allowed("/users/<id>", &[Method::Get, Method::Patch, Method::Delete]),
        )
        .register("/", catchers![json_error])
        .launch();
    tokio::pin!(launch);
    tokio::select! {
        ended = &mut launch => return ended_well(ended),
        () = stop => {}
    }
    match liftoff.try_recv() {
        Ok(shutdown) => {
            shutdown.notify();
            ended_well(launch.await)
        }
        // Nothing is served yet: the start is dropped where it is.
        Err(_) => {
            eprintln!("stopped while starting");
            Ok(())
        }
    }
}

/// How rocket's run ended, as the app's exit: requests still in flight at
/// the end of `shutdown.grace` (and `mercy`) are dropped, as in the axum
/// and actix examples, which is a stop, not a failure.
fn ended_well(
    ended: Result<rocket::Rocket<rocket::Ignite>, rocket::Error>,
) -> Result<(), Box<dyn std::error::Error>> {
    match ended {
        Ok(_) => Ok(()),
        Err(e) if matches!(e.kind(), rocket::error::ErrorKind::Shutdown(..)) => {
            eprintln!(
                "requests still in flight at the end of the shutdown grace: stopped without them"
            );
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}
