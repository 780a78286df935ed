//! The users JSON API on axum (see `examples/src/users.rs` for the routes),
//! with gino-axum: the database bound at start-up from `DB_*` settings, a
//! lazy connection per request, the pool closed after in-flight requests
//! at shutdown.
//!
//! `cargo run --example axum_users`, then
//! `curl -X POST localhost:8000/users -H 'content-type: application/json' -d '{"nickname":"fantix"}'`.
//! Without `DB_*` variables it uses a database of the test server
//! (`DATABASE_URL`, or a throwaway cluster); `PORT` picks the port.

use gino_examples::axum_api::{serve, users_router};
use gino_examples::users::{self, DB};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    users::init_tracing();
    let (settings, _database) = users::settings().await?;
    let db = gino_axum::Gino::new(&DB, settings);
    db.connect().await?;
    DB.create_all().await?;

    serve(users_router().layer(db.layer()), &db).await
}
