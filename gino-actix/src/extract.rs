//! [`Conn`]: the request's connection as an extractor, for handlers that
//! use it explicitly (early release, a transaction on it).

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError};
use gino::web::{ErrorResponse, RequestConnection};

/// The request's connection, shared with every implicit query of the
/// request; all of [`gino::Connection`]'s methods through `Deref`.
///
/// `conn.release_raw()` gives the raw connection back before slow work that
/// needs no database (GINO's `release(permanent=False)`); the next query
/// borrows again. With `use_connection_for_request` off, `Conn` is a lazy
/// connection of the handler's own, released when the handler ends.
///
/// ```
/// use actix_web::web::Json;
/// use diesel::dsl::sql;
/// use diesel::sql_types::Integer;
/// use gino_actix::{Conn, Error};
///
/// async fn handler(conn: Conn) -> Result<Json<i32>, Error> {
///     let pid: i32 = conn.one(diesel::select(sql::<Integer>("pg_backend_pid()"))).await?;
///     conn.release_raw().await?; // back to the pool during the slow part
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

/// Why a [`Conn`] could not be extracted: the app lacks gino's middleware,
/// or no database is bound. Answers 500 (the detail is logged).
#[derive(Debug)]
pub struct ConnRejection(gino::Error);

impl std::fmt::Display for ConnRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl ResponseError for ConnRejection {
    fn error_response(&self) -> HttpResponse {
        crate::error::respond(ErrorResponse::report(&self.0))
    }
}

impl FromRequest for Conn {
    type Error = ConnRejection;
    type Future = Ready<Result<Conn, ConnRejection>>;

    fn from_request(_: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(match RequestConnection::current() {
            Some(conn) => conn.map(Conn).map_err(ConnRejection),
            None => Err(ConnRejection(gino::Error::Configuration(
                "the Conn extractor needs gino's middleware: add `.wrap(db.middleware())` to the \
                 App"
                .to_owned(),
            ))),
        })
    }
}
