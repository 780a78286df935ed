//! Cross-crate integration tests of gino live next to this file; each test
//! binary runs in its own process, which matters for the process-wide
//! default database.
