//! gino for rocket: what GINO's web extensions give, in rocket's idiom
//! (compare `rocket_db_pools`).
//!
//! - **Configuration.** A `databases.gino` table in `Rocket.toml` (or
//!   `ROCKET_DATABASES`), with the keys of [`Settings`], under GINO's `DB_*`
//!   variables. A bad value aborts launch with a message naming the key.
//! - **Start-up and shutdown.** The fairing [`Gino::fairing`] binds the
//!   application's [`gino::Gino`] on ignite, retrying while the database
//!   starts (launch aborts when it never comes up), and closes the pool on
//!   shutdown once in-flight requests are done. Rocket calls it when
//!   shutdown begins, while its own grace period runs (`shutdown.grace`
//!   and `shutdown.mercy`, 2 s and 3 s by default), after which it cuts
//!   the requests still running: keep `shutdown_timeout`
//!   (`DB_SHUTDOWN_TIMEOUT`) within the two, or raise them, so that the
//!   pool does not stay open for requests rocket has let go. A request
//!   that reaches its handler while the close waits is served (rocket took
//!   it before it stopped) and waited for too; one that reaches it after
//!   the pool closed finds it closed: 503.
//! - **Per request.** Fairings cannot wrap a handler's future, so routes
//!   are mounted through [`scoped`]: every request then gets a lazy
//!   connection, shared by every implicit query of the request
//!   (`User::get`, `.gino()`, `DB.transaction`) and given back when the
//!   response is produced, also on errors and panics, never inside a
//!   transaction. The fairing warns at launch about mounted routes that
//!   are not scoped. Rocket handles each request in a task of its own and
//!   runs it to its end even when the client has gone away, so a handler's
//!   connection (and transaction) lasts until the handler returns; bound
//!   slow handlers with a timeout where that matters.
//! - **Explicit access.** The [`Conn`] request guard is that connection; a
//!   route that takes it refuses to launch without the fairing (a
//!   `Sentinel`). `&State<gino_rocket::Extension>` reaches the handle.
//! - **Errors.** [`Error`] is a `Responder`: `get_or_404` / `first_or_404`
//!   answer 404, a pool or query timeout or an unreachable database 503 with
//!   `Retry-After`, anything else an opaque 500 (detail logged).
//!
//! ```no_run
//! use gino::prelude::*;
//! use rocket::serde::json::Json;
//!
//! #[derive(Model, Debug, Clone, serde::Serialize)]
//! #[gino(table = "users")]
//! pub struct User {
//!     #[gino(primary_key)]
//!     pub id: i32,
//!     pub nickname: String,
//! }
//!
//! pub static DB: Gino = Gino::new();
//!
//! #[rocket::get("/users/<id>")]
//! async fn user(id: i32) -> Result<Json<User>, gino_rocket::Error> {
//!     Ok(Json(User::get_or_404(id).await?)) // the request's lazy connection
//! }
//!
//! #[rocket::launch]
//! fn rocket() -> _ {
//!     // Rocket.toml:  [default.databases.gino]  host = "db"  pool_max_size = 20
//!     rocket::build()
//!         .attach(gino_rocket::Gino::fairing(&DB))
//!         .mount("/", gino_rocket::scoped(rocket::routes![user]))
//! }
//! ```

mod body;
mod error;
mod guard;
mod scope;

pub use error::Error;
pub use gino;
pub use gino::web::{Extension, Settings};
pub use guard::{Conn, Tenant};
pub use scope::{scoped, tenant_scoped};

use rocket::fairing::{self, Fairing, Info, Kind};
use rocket::figment::Figment;
use rocket::figment::value::Value;
use rocket::{Build, Orbit, Rocket};

/// gino's fairing: binds a [`gino::Gino`] on ignite and closes its pool on
/// shutdown. The [`Extension`] it makes is managed state.
///
/// ```no_run
/// static DB: gino::Gino = gino::Gino::new();
/// let rocket = rocket::build().attach(gino_rocket::Gino::fairing(&DB));
/// # let _ = rocket;
/// ```
#[derive(Debug, Clone)]
pub struct Gino {
    db: &'static gino::Gino,
    name: String,
    tenants: Option<gino::Tenants>,
}

impl Gino {
    /// The fairing of `db`, configured by the `databases.gino` table of
    /// rocket's figment and the `DB_*` variables.
    ///
    /// ```no_run
    /// static DB: gino::Gino = gino::Gino::new();
    /// let fairing = gino_rocket::Gino::fairing(&DB);
    /// # let _ = fairing;
    /// ```
    pub fn fairing(db: &'static gino::Gino) -> Gino {
        Gino {
            db,
            name: "gino".to_owned(),
            tenants: None,
        }
    }

    /// Reads the `databases.<name>` table instead of `databases.gino`.
    ///
    /// An application has one gino fairing: its [`Extension`] is managed
    /// state, which rocket holds once per type, and [`scoped`] routes run
    /// in that database's request scope. Launch is refused when a second
    /// one is attached.
    ///
    /// ```no_run
    /// static DB: gino::Gino = gino::Gino::new();
    /// // Rocket.toml:  [default.databases.shop]  host = "db"
    /// let fairing = gino_rocket::Gino::fairing(&DB).named("shop");
    /// # let _ = fairing;
    /// ```
    pub fn named(mut self, name: &str) -> Gino {
        self.name = name.to_owned();
        self
    }

    /// Serves `tenants` too: routes mounted with [`tenant_scoped`] run for
    /// their request's tenant, and shutdown closes the tenants' engines.
    ///
    /// ```
    /// # async fn demo(tenants: gino::Tenants) {
    /// let fairing = gino_rocket::Gino::fairing(tenants.db()).tenants(tenants);
    /// # let _ = fairing;
    /// # }
    /// # gino_testkit::doc::run(demo);
    /// ```
    pub fn tenants(mut self, tenants: gino::Tenants) -> Gino {
        self.tenants = Some(tenants);
        self
    }

    /// The settings this fairing takes from `figment` on ignite: its
    /// `databases.<name>` table, then the `DB_*` variables; an error says
    /// what is wrong with them. For what the application sets from them
    /// before launch, such as rocket's `shutdown.grace`.
    ///
    /// ```
    /// use rocket::figment::Figment;
    /// static DB: gino::Gino = gino::Gino::new();
    /// let figment = Figment::new().merge(("databases.gino.shutdown_timeout", "5s"));
    /// let settings = gino_rocket::Gino::fairing(&DB).settings(&figment).unwrap();
    /// assert_eq!(settings.shutdown_timeout, std::time::Duration::from_secs(5));
    /// let figment = Figment::new().merge(("databases.gino", "postgres://db/app"));
    /// assert!(gino_rocket::Gino::fairing(&DB).settings(&figment).is_err());
    /// ```
    pub fn settings(&self, figment: &Figment) -> Result<Settings, String> {
        let path = format!("databases.{}", self.name);
        // `focus` would take anything but a table for no settings at all,
        // and the defaults (a local `postgres`) would be used in silence.
        if let Ok(value) = figment.find_value(&path)
            && !matches!(value, Value::Dict(..))
        {
            // The kind only: a string here is likely a URL with a password.
            let kind = match value {
                Value::String(..) | Value::Char(..) => "string",
                Value::Num(..) => "number",
                Value::Bool(..) => "boolean",
                Value::Array(..) => "list",
                _ => "empty value",
            };
            return Err(format!(
                "`{path}` is a {}, not a table of settings: write its keys under it, \
                 e.g. `[default.{path}]` with `dsn = \"postgres://...\"` in Rocket.toml or \
                 ROCKET_DATABASES='{{{}={{dsn=\"postgres://...\"}}}}'",
                kind, self.name
            ));
        }
        let table = figment.focus(&path);
        let settings: Settings = table.extract().map_err(|e| {
            let mut message = format!("invalid settings of database `{}`", self.name);
            for error in e {
                message.push_str(&format!("; {error}"));
            }
            message
        })?;
        // The variables as text, read as every gino web crate reads them
        // (figment's `Env` would type them: a password `12345` a number).
        let settings = settings.with_env().map_err(|e| e.to_string())?;
        // A key the figment gives counts as set even at its default value,
        // as a given variable does.
        settings
            .validate_given(|key| table.contains(key))
            .map_err(|e| e.to_string())?;
        Ok(settings)
    }
}

#[rocket::async_trait]
impl Fairing for Gino {
    fn info(&self) -> Info {
        Info {
            name: "gino",
            kind: Kind::Ignite | Kind::Shutdown,
        }
    }

    async fn on_ignite(&self, rocket: Rocket<Build>) -> fairing::Result {
        if let Some(first) = rocket.state::<Extension>() {
            tracing::error!(
                target: "gino::web",
                "a second gino fairing (database `{}`) is attached after the one of `{}`: \
                 an application has one, since its request scope and the Conn guard serve \
                 one database; reach another one through an engine of your own in managed \
                 state",
                self.name,
                first.settings().database_name()
            );
            return Err(rocket);
        }
        let settings = match self.settings(rocket.figment()) {
            Ok(settings) => settings,
            Err(e) => {
                tracing::error!(target: "gino::web", "{e}");
                return Err(rocket);
            }
        };
        let scopes: Vec<(String, Option<bool>)> = rocket
            .routes()
            .map(|route| {
                let name = format!("{} {}", route.method, route.uri);
                (name, scope::scope_of(route))
            })
            .collect();
        if self.tenants.is_none() {
            let tenant_routes: Vec<&str> = scopes
                .iter()
                .filter(|(_, scope)| *scope == Some(true))
                .map(|(name, _)| name.as_str())
                .collect();
            if !tenant_routes.is_empty() {
                tracing::error!(
                    target: "gino::web",
                    "these routes are mounted with gino_rocket::tenant_scoped, but gino's \
                     fairing serves no tenants, so each of their requests would fail: {}; \
                     attach gino_rocket::Gino::fairing(&DB).tenants(tenants)",
                    tenant_routes.join(", ")
                );
                return Err(rocket);
            }
        }
        let mut extension = Extension::new(self.db, settings);
        if let Some(tenants) = &self.tenants {
            extension = extension.with_tenants(tenants.clone());
        }
        if let Err(e) = extension.connect().await {
            tracing::error!(
                target: "gino::web",
                "database `{}` never came up, so rocket does not launch: {e}",
                self.name
            );
            return Err(rocket);
        }
        let unscoped: Vec<&str> = scopes
            .iter()
            .filter(|(_, scope)| scope.is_none())
            .map(|(name, _)| name.as_str())
            .collect();
        if !unscoped.is_empty() {
            tracing::warn!(
                target: "gino::web",
                "these routes run outside gino's request scope, so their queries do not share \
                 the request's connection: {}; mount them with gino_rocket::scoped(routes![...])",
                unscoped.join(", ")
            );
        }
        Ok(rocket.manage(extension))
    }

    async fn on_shutdown(&self, rocket: &Rocket<Orbit>) {
        if let Some(extension) = rocket.state::<Extension>() {
            extension.close().await;
        }
    }
}
