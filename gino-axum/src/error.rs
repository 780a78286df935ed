//! [`Error`]: gino's errors as axum responses (404, 503 with
//! `Retry-After`, opaque 500), so handlers can use `?` on gino calls.

use axum::response::{IntoResponse, Response};
use gino::web::ErrorResponse;
use http::{HeaderValue, StatusCode, header};

/// A gino error on its way to becoming a response; `?` converts
/// [`gino::Error`] into it.
///
/// [`gino::Error::NotFound`] (from `get_or_404`, `first_or_404`) answers
/// 404, a pool or query timeout or an unreachable database 503 with `Retry-After`
/// (see [`gino::web::ErrorResponse`]), and every other error an opaque 500
/// whose detail is logged, never sent.
///
/// ```
/// use axum::Json;
/// use gino_axum::Error;
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

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        respond(ErrorResponse::report(&self.0))
    }
}

/// The axum response of a framework-neutral [`ErrorResponse`].
pub(crate) fn respond(answer: ErrorResponse) -> Response {
    let status = StatusCode::from_u16(answer.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, answer.body()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(ErrorResponse::CONTENT_TYPE),
    );
    if let Some(seconds) = answer.retry_after() {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}
