//! Cross-crate integration tests of gino live next to this file; each test
//! binary runs in its own process, which matters for the process-wide
//! default database. [`web`] is what the web extensions' tests share.

#[path = "support/web.rs"]
pub mod web;
