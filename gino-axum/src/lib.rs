//! gino for axum: binds a [`gino::Gino`] at start-up, gives every request a
//! lazy connection released at response end, and closes the pool at
//! shutdown. The integration itself is tracked as its own issue; this crate
//! currently re-exports gino so applications can depend on it already.

pub use gino;
