#![doc = include_str!("../../README.md")]
#![warn(missing_docs)]

mod api;
mod config;
mod connection;
mod context;
mod engine;
mod error;
mod executor;
mod pool;
pub mod prelude;
mod text;
mod transaction;
mod wire;

pub use api::Gino;
pub use config::{DatabaseUrl, EngineOptions, IsolationLevel};
pub use connection::{Acquire, Connection};
pub use engine::{create_engine, Engine, IntoEngine, PoolStatus};
pub use error::{DatabaseError, Error, Result};
pub use executor::{Bind, Compiled, Executor, GinoQuery, Status};
pub use text::{text, Text};
pub use transaction::{Begin, ManagedTransaction, Transaction};

/// Re-exports of the crates gino builds on, so that applications and the
/// derive use the same versions.
pub mod reexports {
    pub use diesel;
    pub use diesel_async;
}
