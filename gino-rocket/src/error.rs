//! [`Error`]: gino's errors as rocket responses (404, 503 with
//! `Retry-After`, opaque 500), so handlers can use `?` on gino calls.

use std::io::Cursor;

use gino::web::ErrorResponse;
use rocket::Request;
use rocket::http::{ContentType, Header, Status};
use rocket::response::{self, Responder, Response};

/// A gino error on its way to becoming a response; `?` converts
/// [`gino::Error`] into it.
///
/// [`gino::Error::NotFound`] (from `get_or_404`, `first_or_404`) answers
/// 404, a pool or query timeout or an unreachable database 503 with `Retry-After`
/// (see [`gino::web::ErrorResponse`]), and every other error an opaque 500
/// whose detail is logged, never sent.
///
/// ```
/// use rocket::serde::json::Json;
/// use gino_rocket::Error;
///
/// async fn count(db: &'static gino::Gino) -> Result<Json<i64>, Error> {
///     use diesel::dsl::sql;
///     use diesel::sql_types::BigInt;
///     let n: i64 = db.one(diesel::select(sql::<BigInt>("count(*) FROM pg_class"))).await?;
///     Ok(Json(n))
/// }
/// ```
#[derive(Debug)]
pub struct Error(pub gino::Error);

impl From<gino::Error> for Error {
    fn from(error: gino::Error) -> Self {
        Error(error)
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

impl<'r> Responder<'r, 'static> for Error {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'static> {
        Ok(respond(ErrorResponse::report(&self.0)))
    }
}

/// The rocket response of a framework-neutral [`ErrorResponse`].
pub(crate) fn respond(answer: ErrorResponse) -> Response<'static> {
    let body = answer.body();
    let mut response = Response::build();
    response
        .status(Status::new(answer.status()))
        .header(ContentType::JSON)
        .sized_body(body.len(), Cursor::new(body));
    if let Some(seconds) = answer.retry_after() {
        response.header(Header::new("Retry-After", seconds.to_string()));
    }
    response.finalize()
}
