//! Derive macros of gino (`#[derive(Model)]`), re-exported by `gino`.
//! The model derive is tracked as its own issue.
