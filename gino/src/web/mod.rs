//! What every web framework integration needs, once and framework-neutral
//! (GINO's extensions for Starlette, Sanic, aiohttp, ...): the database
//! settings of an application ([`Settings`], `DB_*` variables), start-up
//! that binds the application's [`Gino`](crate::Gino) with retries
//! ([`Extension::connect`]), a scope per request with a lazy connection
//! that every query of the request shares ([`Extension::request`]), the
//! answer an error gets ([`ErrorResponse`]), and shutdown that closes the
//! pool once in-flight requests are done ([`Extension::shutdown`]).
//!
//! The `gino-axum`, `gino-actix` and `gino-rocket` crates adapt this to
//! their framework's idiom; an integration for another framework needs
//! only this module.
//!
//! ```no_run
//! use gino::web::Extension;
//!
//! static DB: gino::Gino = gino::Gino::new();
//!
//! # async fn handle_request() -> gino::Result<()> { Ok(()) }
//! # async fn demo() -> gino::Result<()> {
//! let extension = Extension::from_env(&DB)?;   // DB_HOST, DB_PORT, ...
//! extension.connect().await?;                  // binds DB, retrying while the server starts
//! // for every request:
//! let scope = extension.request();
//! let result = scope.run(handle_request()).await; // queries inside share one lazy connection
//! # let _ = result;
//! // at shutdown, after the server stopped taking requests:
//! extension.close().await;
//! # Ok(()) }
//! ```
//!
//! Requires the `web` feature.

// Layer: above `executor`; uses `api`, `engine`, `connection` and
// `context` (the request's contextual connection), `tenant` (tenant requests).

mod extension;
mod request;
mod response;
mod settings;

pub use extension::{Extension, ResponseHold};
pub use request::{AsIs, RequestConnection, RequestFuture, RequestScope, TenantKey, Then};
pub use response::ErrorResponse;
pub use settings::Settings;
