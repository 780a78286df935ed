//! [`Conn`]: the request's connection as an extractor, for handlers that
//! use it explicitly (early release, a transaction on it).

use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use gino::web::{ErrorResponse, RequestConnection};
use http::request::Parts;

/// The request's connection, shared with every implicit query of the
/// request; all of [`gino::Connection`]'s methods through `Deref`.
///
/// `conn.release_raw()` gives the raw connection back before slow work that
/// needs no database (GINO's `release(permanent=False)`); the next query
/// borrows again. With `use_connection_for_request` off, `Conn` is a lazy
/// connection of the handler's own, released when the handler ends.
///
/// ```
/// use axum::Json;
/// use diesel::dsl::sql;
/// use diesel::sql_types::Integer;
/// use gino_axum::{Conn, Error};
///
/// async fn handler(conn: Conn) -> Result<Json<i32>, Error> {
///     let pid: i32 = conn.one(diesel::select(sql::<Integer>("pg_backend_pid()"))).await?;
///     conn.release_raw().await?; // back to the pool during the slow part
///     // ... call another service ...
///     Ok(Json(pid))
/// }
/// ```
#[derive(Clone, Debug)]
pub struct Conn(pub RequestConnection);

impl std::ops::Deref for Conn {
    type Target = gino::Connection;

    fn deref(&self) -> &gino::Connection {
        &self.0
    }
}

impl<'a> From<&'a Conn> for gino::Bind<'a> {
    fn from(conn: &'a Conn) -> Self {
        gino::Bind::from(&conn.0)
    }
}

/// Why a [`Conn`] could not be extracted: the router lacks gino's layer,
/// or no database is bound. Answers 500 (the detail is logged).
#[derive(Debug)]
pub struct ConnRejection(gino::Error);

impl IntoResponse for ConnRejection {
    fn into_response(self) -> Response {
        crate::error::respond(ErrorResponse::report(&self.0))
    }
}

impl std::fmt::Display for ConnRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for ConnRejection {}

impl<S: Send + Sync> FromRequestParts<S> for Conn {
    type Rejection = ConnRejection;

    async fn from_request_parts(_: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match RequestConnection::current() {
            Some(conn) => conn.map(Conn).map_err(ConnRejection),
            None => Err(ConnRejection(gino::Error::Configuration(
                "the Conn extractor needs gino's layer: add `.layer(db.layer())` to the router \
                 (outside the routes that use Conn)"
                    .to_owned(),
            ))),
        }
    }
}
