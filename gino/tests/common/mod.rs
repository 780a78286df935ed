//! Shared set-up of gino's integration tests: a fresh database per test.
#![allow(dead_code)]

use gino::{Engine, EngineOptions, create_engine};
use gino_testkit::TestDatabase;

/// A test's own database and an engine on it.
pub struct Setup {
    pub db: TestDatabase,
    pub engine: Engine,
}

pub async fn setup() -> Setup {
    setup_with(EngineOptions::new()).await
}

pub async fn setup_with(options: EngineOptions) -> Setup {
    let db = TestDatabase::create().await;
    let engine = create_engine(db.url(), options)
        .await
        .expect("engine for the test database");
    Setup { db, engine }
}

/// A URL of the test server with extra query parameters.
pub fn url_with(db: &TestDatabase, params: &str) -> String {
    let sep = if db.url().contains('?') { '&' } else { '?' };
    format!("{}{sep}{params}", db.url())
}

/// States of the sessions of `application_name`, as pg_stat_activity shows them.
pub async fn session_states(engine: &Engine, application_name: &str) -> Vec<String> {
    use diesel::sql_types::Text;
    let q = gino::text(
        "SELECT coalesce(state, '') AS state FROM pg_stat_activity \
         WHERE application_name = :app AND pid <> pg_backend_pid()",
    )
    .bind::<Text, _>("app", application_name.to_owned());
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        state: String,
    }
    let rows: Vec<Row> = engine.all(q).await.expect("pg_stat_activity");
    rows.into_iter().map(|r| r.state).collect()
}

/// `SELECT pg_backend_pid()`: which server process, so which raw
/// connection, a query runs on.
pub fn pid_query() -> diesel::dsl::select<diesel::expression::SqlLiteral<diesel::sql_types::Integer>>
{
    diesel::select(diesel::dsl::sql("pg_backend_pid()"))
}

/// [`pid_query`] on `on`.
pub async fn try_backend_pid<'a>(on: impl Into<gino::Bind<'a>>) -> gino::Result<i32> {
    use gino::prelude::*;
    pid_query().gino().bind(on).one().await
}

/// [`try_backend_pid`] for queries that must succeed.
pub async fn backend_pid<'a>(on: impl Into<gino::Bind<'a>>) -> i32 {
    try_backend_pid(on).await.expect("SELECT pg_backend_pid()")
}

/// A connection of `engine`'s pool, borrowed within two seconds and
/// proven by a query, with its backend's pid: what a test takes to show
/// the pool's connection is free again. Panics with `why` otherwise.
pub async fn borrow_free(engine: &Engine, why: &str) -> (gino::Connection, i32) {
    let conn = engine
        .acquire()
        .timeout(std::time::Duration::from_secs(2))
        .await
        .expect(why);
    let pid = backend_pid(&conn).await;
    (conn, pid)
}

/// Another engine on the test's database, to look from outside the engine
/// under test: its connections are never the contextual ones of the
/// engine under test, so it sees only what was committed.
pub async fn observer(setup: &Setup) -> Engine {
    create_engine(setup.db.url(), EngineOptions::new().max_size(2))
        .await
        .expect("observer engine")
}

/// Sessions of the database other than the asking one (on `on`) that are
/// running a statement containing `sql` right now.
pub async fn sessions_running<'a>(on: impl Into<gino::Bind<'a>>, sql: &str) -> i64 {
    use diesel::sql_types::{BigInt, Text};
    use gino::prelude::*;
    diesel::select(
        diesel::dsl::sql::<BigInt>(
            "count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND state = 'active' AND pid <> pg_backend_pid() AND strpos(query, ",
        )
        .bind::<Text, _>(sql.to_owned())
        .sql(") > 0"),
    )
    .gino()
    .bind(on)
    .one()
    .await
    .expect("pg_stat_activity")
}

/// Asserts that `conn` is outside any transaction block.
///
/// `SAVEPOINT` is the probe because it fails with 25P01 exactly outside a
/// transaction block; `now() = statement_timestamp()` cannot be used, since
/// with the extended protocol the statement's timestamp is taken at
/// `Execute`, after the implicit transaction began at `Bind`.
pub async fn assert_outside_transaction(conn: &gino::Connection) {
    use diesel::dsl::sql;
    use diesel::sql_types::Bool;
    let no_xid: bool = conn
        .one(diesel::select(sql::<Bool>(
            "txid_current_if_assigned() IS NULL",
        )))
        .await
        .expect("transaction id query");
    assert!(no_xid, "the connection holds a transaction id");
    let probe = conn
        .status(diesel::sql_query("SAVEPOINT gino_test_probe"))
        .await;
    assert_eq!(
        probe.as_ref().err().and_then(|e| e.sqlstate()),
        Some("25P01"),
        "the connection is inside a transaction block: {probe:?}"
    );
}

/// Borrows every connection the pool may hold, all at once, and asserts
/// that each one is outside any transaction.
pub async fn assert_pool_clean(engine: &Engine) {
    let mut conns = Vec::new();
    for _ in 0..engine.pool_status().max_size {
        conns.push(
            engine
                .acquire()
                .reusable(false)
                .await
                .expect("a pooled connection"),
        );
    }
    for conn in &conns {
        assert_outside_transaction(conn).await;
    }
    for conn in conns {
        conn.release().await.expect("release");
    }
}

/// A `Write` into a shared buffer, for capturing log output.
#[derive(Clone, Default)]
struct LogBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs `fut` with a `tracing` subscriber that records what it logs (the
/// statements of engines with echo on, among it); returns the output and
/// the log.
pub async fn with_log<F: std::future::Future>(fut: F) -> (F::Output, String) {
    use tracing::instrument::WithSubscriber;
    let buffer = LogBuffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .finish();
    let output = fut.with_subscriber(subscriber).await;
    let log = String::from_utf8_lossy(&buffer.0.lock().unwrap()).into_owned();
    (output, log)
}

/// `SELECT generate_series(1, n)`: the integers 1 to `n`, with `n` bound.
pub fn series(
    n: i32,
) -> impl diesel::query_builder::Query<SqlType = diesel::sql_types::Integer>
+ diesel::query_builder::QueryFragment<diesel::pg::Pg>
+ diesel::query_builder::QueryId
+ Send {
    use diesel::sql_types::Integer;
    diesel::select(
        diesel::dsl::sql::<Integer>("generate_series(1, ")
            .bind::<Integer, _>(n)
            .sql(")"),
    )
}

/// Polls `done` until it holds, for up to 10 s: what another process does
/// (a backend leaving, a standby replaying) shows up a moment later.
pub async fn eventually<F, Fut>(what: &str, done: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if done().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{what}: not within 10 s");
}

/// `SELECT current_setting(name)`.
pub async fn setting(engine: &Engine, name: &str) -> String {
    use diesel::sql_types::Text;
    let query = diesel::select(
        diesel::dsl::sql::<Text>("current_setting(")
            .bind::<Text, _>(name)
            .sql(")"),
    );
    engine.one(query).await.expect("current_setting")
}

/// Checks the property `test` on `cases` cases of `strategy`, each run
/// to its end on `rt` (proptest's cases are synchronous); a failing case is
/// shrunk to the smallest that still fails, and panics with it.
pub fn check_cases<S, F, Fut>(rt: &tokio::runtime::Runtime, cases: u32, strategy: &S, test: F)
where
    S: proptest::strategy::Strategy,
    F: Fn(S::Value) -> Fut,
    Fut: std::future::Future<Output = Result<(), proptest::test_runner::TestCaseError>>,
{
    use proptest::test_runner::{Config, TestRunner};
    let mut runner = TestRunner::new(Config {
        cases,
        ..Config::default()
    });
    if let Err(failure) = runner.run(strategy, |case| rt.block_on(test(case))) {
        panic!("{failure}");
    }
}
