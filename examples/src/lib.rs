//! Runnable examples of gino: `cargo run --example <name>` from the
//! repository root. Each example gets a database from `gino-testkit`: the
//! server in `DATABASE_URL`, or a throwaway PostgreSQL cluster.
