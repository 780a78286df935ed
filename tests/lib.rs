//! Cross-crate integration tests of gino live next to this file; each test
//! binary runs in its own process, which matters for the process-wide
//! default database. [`web`] is what the web extensions' tests share, and
//! [`tenants`] what their tenant tests share.

#[path = "support/web.rs"]
pub mod web;

#[path = "support/tenants.rs"]
pub mod tenants;
