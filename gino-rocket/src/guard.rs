//! [`Conn`]: the request's connection as a request guard, for handlers
//! that use it explicitly (early release, a transaction on it), with a
//! sentinel that refuses launch without gino's fairing.

use gino::web::{ErrorResponse, Extension, RequestConnection};
use rocket::request::{FromRequest, Outcome};
use rocket::{Ignite, Request, Rocket, Sentinel};

/// The request's connection, shared with every implicit query of a
/// [`scoped`](crate::scoped) route; all of [`gino::Connection`]'s methods
/// through `Deref`.
///
/// `conn.release_raw()` gives the raw connection back before slow work that
/// needs no database (GINO's `release(permanent=False)`); the next query
/// borrows again. In a route that is not scoped, or with
/// `use_connection_for_request` off, `Conn` is a lazy connection of the
/// handler's own. A route that takes `Conn` refuses to launch without
/// gino's fairing.
///
/// ```
/// use diesel::dsl::sql;
/// use diesel::sql_types::Integer;
/// use gino_rocket::{Conn, Error};
/// use rocket::serde::json::Json;
///
/// #[rocket::get("/pid")]
/// async fn pid(conn: Conn) -> Result<Json<i32>, Error> {
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

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Conn {
    type Error = gino::Error;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, gino::Error> {
        // The scope the handler runs in, not one cached for the request:
        // after a forward, another route's scope (or none) is the live one.
        let conn = RequestConnection::current().unwrap_or_else(|| {
            request
                .rocket()
                .state::<Extension>()
                .ok_or(gino::Error::Uninitialized)
                .and_then(|extension| extension.db().engine())
                .map(|engine| RequestConnection::own(&engine))
        });
        match conn {
            Ok(conn) => Outcome::Success(Conn(conn)),
            Err(e) => {
                let answer = ErrorResponse::report(&e);
                Outcome::Error((rocket::http::Status::new(answer.status()), e))
            }
        }
    }
}

impl Sentinel for Conn {
    fn abort(rocket: &Rocket<Ignite>) -> bool {
        if rocket.state::<Extension>().is_none() {
            tracing::error!(
                target: "gino::web",
                "a route takes gino_rocket::Conn, but gino's fairing is not attached: \
                 add .attach(gino_rocket::Gino::fairing(&DB))"
            );
            return true;
        }
        false
    }
}

/// The request's tenant in a [`tenant_scoped`](crate::tenant_scoped)
/// route, as a request guard; fails with `500` elsewhere (a route that
/// needs a tenant but is not mounted for tenants).
///
/// ```
/// #[rocket::get("/whoami")]
/// async fn whoami(tenant: gino_rocket::Tenant) -> String {
///     tenant.0
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tenant(pub String);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Tenant {
    type Error = &'static str;

    async fn from_request(_: &'r Request<'_>) -> Outcome<Self, &'static str> {
        match crate::scope::current_tenant() {
            Some(key) => Outcome::Success(Tenant(key)),
            None => {
                tracing::error!(
                    target: "gino::web",
                    "a route takes gino_rocket::Tenant but is not mounted with \
                     gino_rocket::tenant_scoped"
                );
                Outcome::Error((
                    rocket::http::Status::InternalServerError,
                    "not a tenant route",
                ))
            }
        }
    }
}
