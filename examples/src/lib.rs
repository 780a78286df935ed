//! Runnable examples of gino: `cargo run --example <name>` from the
//! repository root. Each example gets a database from `gino-testkit`: the
//! server in `DATABASE_URL`, or a throwaway PostgreSQL cluster.
//!
//! The web examples (`axum_users`, ...) serve one users JSON API, so that
//! one client can drive any of them; what they share lives in [`users`].

pub mod axum_api;
pub mod users;

/// README.md's Rust blocks, compiled as doctests so README cannot drift
/// from the API.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

/// A database URL for the examples: `DATABASE_URL` when it is set and
/// reachable (a fresh database on that server), otherwise a database of a
/// throwaway cluster started from the local PostgreSQL binaries. The
/// database is dropped with the returned guard.
pub async fn database_url() -> (String, gino_testkit::TestDatabase) {
    let database = gino_testkit::TestDatabase::create().await;
    (database.url().to_owned(), database)
}
