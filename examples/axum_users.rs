//! The users JSON API on axum (see `examples/src/users.rs` for the routes),
//! with gino-axum: the database bound at start-up from `DB_*` settings, a
//! lazy connection per request, the pool closed after in-flight requests
//! at shutdown.
//!
//! `cargo run --example axum_users`, then
//! `curl -X POST localhost:8000/users -H 'content-type: application/json' -d '{"nickname":"fantix"}'`.
//! Without `DB_*` variables it uses a database of the test server
//! (`DATABASE_URL`, or a throwaway cluster); `PORT` picks the port.

use gino_examples::axum_api::users_router;
use gino_examples::users::{self, DB};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    users::init_tracing();
    let (settings, _database) = users::settings().await?;
    let db = gino_axum::Gino::new(&DB, settings);
    db.connect().await?;
    DB.create_all().await?;

    let app = users_router().layer(db.layer());
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", users::port())).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(db.shutdown_on(users::stop_signal()))
        .await?;
    db.close().await;
    Ok(())
}
