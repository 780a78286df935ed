//! [`Error`]: gino's errors as actix responses (404, 503 with
//! `Retry-After`, opaque 500) through `ResponseError`, so handlers can use
//! `?` on gino calls.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use gino::web::ErrorResponse;

/// A gino error on its way to becoming a response; `?` converts
/// [`gino::Error`] into it.
///
/// [`gino::Error::NotFound`] (from `get_or_404`, `first_or_404`) answers
/// 404, a pool or query timeout or an unreachable database 503 with `Retry-After`
/// (see [`gino::web::ErrorResponse`]), and every other error an opaque 500
/// whose detail is logged, never sent.
///
/// ```
/// use actix_web::web::Json;
/// use gino_actix::Error;
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

impl ResponseError for Error {
    fn status_code(&self) -> StatusCode {
        status(ErrorResponse::new(&self.0))
    }

    fn error_response(&self) -> HttpResponse {
        respond(ErrorResponse::report(&self.0))
    }
}

fn status(answer: ErrorResponse) -> StatusCode {
    StatusCode::from_u16(answer.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// The actix response of a framework-neutral [`ErrorResponse`].
pub(crate) fn respond(answer: ErrorResponse) -> HttpResponse {
    let mut response = HttpResponse::build(status(answer));
    response.insert_header((header::CONTENT_TYPE, ErrorResponse::CONTENT_TYPE));
    if let Some(seconds) = answer.retry_after() {
        response.insert_header((header::RETRY_AFTER, HeaderValue::from(seconds)));
    }
    response.body(answer.body())
}
