//! GINO Is Not ORM — for Rust: an async data layer for PostgreSQL on
//! diesel's query builder and diesel-async.
//!
//! - An [`Engine`] (GINO's `GinoEngine`) is a pool of connections, made by
//!   [`create_engine`] from a `postgresql://` URL and [`EngineOptions`].
//! - A [`Connection`] can be reused by nested calls of a task, borrowed
//!   lazily and released early ([`Engine::acquire`]).
//! - A [`Transaction`] is managed (`transaction(future)`: commit on `Ok`,
//!   rollback on `Err`, panic or cancellation) or manual (`begin()`); nested
//!   ones are savepoints; code inside finds it implicitly.
//! - `.gino()` ([`GinoQuery`]) runs any diesel query: `all`, `first`,
//!   `one`, `one_or_none`, `scalar`, `status`, `status_and_all`, `iterate`,
//!   `compile`, with `timeout` and `bind`. [`text`] runs raw SQL with
//!   `:named` parameters, and `.columns::<ST>()` types its rows.
//! - A [`Gino`] is the application's `db`: it binds an engine and runs the
//!   same query API implicitly on the task's contextual connection or its
//!   engine.
//!
//! ```
//! use gino::prelude::*;
//! use diesel::dsl::sql;
//! use diesel::sql_types::Integer;
//!
//! static DB: Gino = Gino::new();
//!
//! # async fn demo(url: &str) -> gino::Result<()> {
//! DB.set_bind(url).await?; // "postgresql://localhost/gino"
//! let n: i32 = diesel::select(sql::<Integer>("1 + 1")).gino().one().await?;
//! assert_eq!(n, 2);
//! DB.transaction_with(|_tx| async {
//!     DB.status(diesel::sql_query("CREATE TEMP TABLE t (x int)")).await?;
//!     Ok(())
//! })
//! .await?;
//! DB.pop_bind().expect("bound").close().await;
//! # Ok(()) }
//! # gino_testkit::doc::run(demo);
//! ```
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod api;
mod auth;
mod bind;
mod binding;
mod budget;
pub mod bulk;
mod config;
mod connection;
mod context;
mod cursor;
mod drive;
mod engine;
mod error;
mod executor;
mod framing;
#[cfg(feature = "json")]
pub mod json;
mod lex;
pub mod loader;
pub mod migrate;
pub mod model;
mod opening;
mod passfile;
mod peer;
mod pool;
pub mod prelude;
mod root;
pub mod schema;
mod scoped;
mod service;
mod session_state;
mod statement;
mod sync;
mod task;
pub mod tenant;
mod text;
#[cfg(feature = "tls")]
mod tls;
mod transaction;
mod unnamed;
#[cfg(feature = "web")]
pub mod web;
mod wire;
#[cfg(feature = "tls")]
mod x509;

/// diesel, the version gino builds on: `use gino::diesel;` lets a crate
/// whose only database dependency is gino write diesel queries beyond the
/// [`prelude`] (models and tables never need it).
///
/// ```
/// use gino::diesel;
/// use gino::diesel::sql_types::Integer;
///
/// let query = diesel::select(diesel::dsl::sql::<Integer>("1 + 1"));
/// let sql = diesel::debug_query::<diesel::pg::Pg, _>(&query).to_string();
/// assert!(sql.starts_with("SELECT 1 + 1"));
/// ```
pub use diesel;

pub use api::Gino;
pub use bind::Bind;
pub use budget::ConnectionBudget;
pub use config::{DatabaseUrl, EngineOptions, IsolationLevel, OnConnect, SslMode, SslRootCert};
pub use connection::{Acquire, Connection, ConnectionStats};
pub use cursor::{Cursor, DEFAULT_PREFETCH};
pub use engine::{Engine, IntoEngine, PoolStatus, ReplicaStats, RoutingStats, create_engine};
pub use error::{DatabaseError, Error, Result};
pub use executor::{CachedByText, Compiled, Executor, GinoQuery, KeepPrepared, Prepared, Status};
#[doc(hidden)]
pub use gino_macros::__model_with_columns;
/// A table without a model (GINO core's `db.Table`): diesel's `table!`
/// syntax with gino's attributes, making the same module diesel's `table!`
/// makes (with no diesel dependency needed) and registering the table with
/// its database for `create_all`;
/// see [`schema`](crate::schema#tables-without-models).
pub use gino_macros::table;
pub use gino_macros::{Columns, DbEnum, Model, embed_migrations};
pub use model::{Model, Run};
pub use schema::SchemaOp;
pub use statement::Loadable;
pub use tenant::{TenantLease, TenantStats, TenantUsage, Tenants, TenantsBuilder};
pub use text::{Text, TextQuery, text};
pub use transaction::{
    Begin, ManagedTransaction, Transaction, TxBody, WithTransaction, own_context,
};

/// Re-exports of the crates gino builds on, so that applications and the
/// derive use the same versions.
pub mod reexports {
    pub use diesel;
    pub use diesel_async;
    pub use futures_util;
    pub use inventory;
    #[cfg(feature = "json")]
    pub use serde_json;
}
