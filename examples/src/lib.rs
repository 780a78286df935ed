//! Runnable examples of gino: `cargo run --example <name>` from the
//! repository root. Each example gets a database from `gino-testkit`: the
//! server in `DATABASE_URL`, or a throwaway PostgreSQL cluster.
//!
//! The web examples (`axum_users`, ...) serve one users JSON API, so that
//! one client can drive any of them; what they share lives in [`users`].

pub mod users;
