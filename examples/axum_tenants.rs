//! A multi-tenant users API on axum: the header `X-Tenant: <t>` picks the
//! database `<DB_DATABASE>_<t>`, whose engine gino makes on first use
//! (tables created then) and evicts when more than `DB_TENANT_CAP` tenants
//! are live; `DB_TENANT_CONNECTIONS` caps the connections of all tenants
//! together. Routes: the users API of the web examples, per tenant, and
//! `GET /tenant` → `{"tenant": "<t>", "database": "<current_database()>"}`.
//! A missing or malformed `X-Tenant` gets 400, a tenant without a database
//! 404, both with a JSON error body.
//!
//! `cargo run --example axum_tenants`, then
//! `curl -H 'X-Tenant: acme' localhost:8000/tenant`.
//! Without `DB_*` variables it uses a database of the test server
//! (`DATABASE_URL`, or a throwaway cluster) as `DB_DATABASE` and creates
//! the tenants `acme` and `globex` next to it; `PORT` picks the port.

use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::routing::get;
use axum::{Extension, Json};
use gino::web::Settings;
use gino::{Engine, Tenants};
use gino_axum::{Error, TenantKey};
use gino_examples::axum_api::{json_api, serve, users_routes};
use gino_examples::users::{self, DB};
use serde_json::{Value, json};

/// `GET /tenant`: which tenant, and which database the request ran on.
async fn tenant(Extension(TenantKey(tenant)): Extension<TenantKey>) -> Result<Json<Value>, Error> {
    let database: String = DB
        .one(gino::diesel::select(gino::diesel::dsl::sql::<
            gino::diesel::sql_types::Text,
        >("current_database()")))
        .await?;
    Ok(Json(json!({ "tenant": tenant, "database": database })))
}

/// The tenant a request names in `X-Tenant`: lowercase letters, digits
/// and `_`, at most `longest` of them (it becomes part of a database name,
/// which PostgreSQL keeps to 63 bytes).
fn pick_tenant(request: &Parts, longest: usize) -> Result<String, (StatusCode, Json<Value>)> {
    let reject = |message: &str| (StatusCode::BAD_REQUEST, Json(json!({ "error": message })));
    let tenant = request
        .headers
        .get("x-tenant")
        .ok_or_else(|| reject("the X-Tenant header is required"))?
        .to_str()
        .map_err(|_| reject("X-Tenant must be text"))?;
    let valid = !tenant.is_empty()
        && tenant.len() <= longest
        && tenant
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !valid {
        return Err(reject(&format!(
            "X-Tenant must be 1 to {longest} lowercase letters, digits or underscores"
        )));
    }
    Ok(tenant.to_owned())
}

/// A numeric `DB_*` variable, or `default` when it is unset or empty (as
/// `DB_TENANT_CAP: ${DB_TENANT_CAP}` of an unset variable in a compose file
/// gives), as `Settings` reads its own.
fn env_number(name: &str, default: usize) -> Result<usize, gino::Error> {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => {
            value.trim().parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                gino::Error::Configuration(format!(
                    "{name} must be a whole number of at least 1, not {value:?}"
                ))
            })
        }
        _ => Ok(default),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    users::init_tracing();
    let (settings, guard) = users::settings().await?;
    let base = settings.database_name();
    // Without DB_* settings: two demo tenants next to the test database.
    let demo = match &guard {
        Some(_) => Some(DemoTenants::create(&settings, &base, &["acme", "globex"]).await?),
        None => None,
    };

    // `{base}_{tenant}` within PostgreSQL's 63 bytes: a longer tenant is
    // the client's 400, not a 500 when its database is named.
    let longest = 32.min(63usize.saturating_sub(base.len() + 1));
    if longest == 0 {
        return Err(format!(
            "the database name {base:?} leaves no room for a tenant in PostgreSQL's 63 bytes: \
             name a shorter DB_DATABASE"
        )
        .into());
    }
    let locate_settings = settings.clone();
    let tenants = Tenants::builder(&DB, move |tenant: String| {
        let url = locate_settings
            .for_database(&format!("{base}_{tenant}"))
            .url();
        async move { Ok(url) }
    })
    .options(settings.engine_options()?)
    .cap(env_number("DB_TENANT_CAP", 16)?)
    .connections(env_number("DB_TENANT_CONNECTIONS", 50)?)
    // A tenant's tables are made when its engine is.
    .prepare(|engine: Engine| async move { DB.scoped_bind(&engine, DB.create_all()).await })
    .try_build()?;
    let db = gino_axum::Gino::new(&DB, settings).with_tenants(tenants);

    // The tenant layer on the routes only: an unknown path or method is
    // the API's JSON 404 or 405, with no tenant needed and none made.
    let app = json_api(
        users_routes()
            .route("/tenant", get(tenant))
            .route_layer(db.tenant_layer(move |request: &Parts| pick_tenant(request, longest))),
    );
    serve(app, &db).await?;
    if let Some(demo) = demo {
        demo.drop_all().await;
    }
    drop(guard);
    Ok(())
}

/// The demo tenants' databases, made at start and dropped at exit.
struct DemoTenants {
    admin: Engine,
    names: Vec<String>,
}

impl DemoTenants {
    async fn create(settings: &Settings, base: &str, tenants: &[&str]) -> gino::Result<Self> {
        let admin = gino::create_engine(&settings.url(), Default::default()).await?;
        let mut names = Vec::new();
        for tenant in tenants {
            let name = format!("{base}_{tenant}");
            admin
                .status(gino::diesel::sql_query(format!(
                    "CREATE DATABASE \"{name}\""
                )))
                .await?;
            names.push(name);
        }
        Ok(DemoTenants { admin, names })
    }

    async fn drop_all(self) {
        for name in &self.names {
            let drop = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
            if let Err(e) = self.admin.status(gino::diesel::sql_query(drop)).await {
                eprintln!("could not drop the demo database {name}: {e}");
            }
        }
        self.admin.close().await;
    }
}
