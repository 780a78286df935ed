//! Engines against a real server: GINO's `create_engine` (URLs and
//! options), pools and their timeouts, closing, and binding a `Gino`.

mod common;

use std::future::IntoFuture;
use std::sync::Mutex;
use std::time::Duration;

use common::{backend_pid, pid_query, setting, try_backend_pid};
use diesel::dsl::sql;
use diesel::sql_types::Text;
use gino::prelude::*;
use gino::{Engine, EngineOptions, Error, PoolStatus, create_engine};
use gino_testkit::TestDatabase;

/// The server parts of the test database's URL, to rebuild it in other forms.
struct ServerParts {
    user: String,
    host: String,
    port: u16,
    database: String,
}

fn server_parts(db: &TestDatabase) -> ServerParts {
    let config: tokio_postgres::Config = db.url().parse().expect("test database URL");
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        other => panic!("the tests need a TCP server, got {other:?}"),
    };
    ServerParts {
        user: config.get_user().expect("user in the test URL").to_owned(),
        host,
        port: config.get_ports().first().copied().unwrap_or(5432),
        database: db.name().to_owned(),
    }
}

/// `SHOW statement_timeout`, as the server reports it.
async fn show_statement_timeout(engine: &Engine) -> String {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        statement_timeout: String,
    }
    let row: Row = engine
        .one(diesel::sql_query("SHOW statement_timeout"))
        .await
        .expect("SHOW statement_timeout");
    row.statement_timeout
}

/// An application name no other test (or test run) uses.
fn unique_app_name(db: &TestDatabase, what: &str) -> String {
    format!("{what}_{}", db.name())
}

#[track_caller]
fn assert_sqlstate<T: std::fmt::Debug>(result: gino::Result<T>, code: &str) {
    match result {
        Err(Error::Database(e)) => assert_eq!(e.code(), code, "{e}"),
        other => panic!("expected database error {code}, got {other:?}"),
    }
}

#[track_caller]
fn configuration_message<T: std::fmt::Debug>(result: gino::Result<T>) -> String {
    match result {
        Err(Error::Configuration(message)) => message,
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

#[track_caller]
fn assert_pool_timeout<T: std::fmt::Debug>(result: gino::Result<T>, after: Duration) {
    assert!(
        matches!(result, Err(Error::PoolTimeout(t)) if t == after),
        "expected PoolTimeout({after:?}), got {result:?}"
    );
}

#[track_caller]
fn assert_uninitialized<T: std::fmt::Debug>(result: gino::Result<T>) {
    match result {
        Err(e @ Error::Uninitialized) => assert!(
            e.to_string().starts_with("Gino engine is not initialized"),
            "{e}"
        ),
        other => panic!("expected Uninitialized, got {other:?}"),
    }
}

#[tokio::test]
async fn url_with_every_part_configures_the_engine() {
    let s = common::setup().await;
    let p = server_parts(&s.db);
    for scheme in ["postgresql", "postgres"] {
        let app = unique_app_name(&s.db, scheme);
        // The server trusts the user; the password (with an encoded `@`)
        // must still be parsed without disturbing host and database.
        let url = format!(
            "{scheme}://{}:s3cr%40t@{}:{}/{}?application_name={app}&statement_timeout=1s&max_size=3",
            p.user, p.host, p.port, p.database
        );
        // URL parameters win over the options given in code.
        let options = EngineOptions::new()
            .max_size(7)
            .application_name("from_code");
        let engine = create_engine(&url, options).await.unwrap();
        assert_eq!(engine.pool_status().max_size, 3, "{url}");
        assert_eq!(setting(&engine, "application_name").await, app);
        assert_eq!(show_statement_timeout(&engine).await, "1s");
        let (user, database): (String, String) = engine
            .one(diesel::select((
                sql::<Text>("current_user::text"),
                sql::<Text>("current_database()::text"),
            )))
            .await
            .unwrap();
        assert_eq!((user, database), (p.user.clone(), p.database.clone()));
        assert!(!engine.url().to_string().contains("s3cr"));
        assert!(!format!("{engine:?}").contains("s3cr"));
        engine.close().await;
    }
}

#[tokio::test]
async fn options_apply_to_the_pool_and_every_connection() {
    let db = TestDatabase::create().await;
    let app = unique_app_name(&db, "options");
    let options = EngineOptions::new()
        .min_size(2)
        .max_size(4)
        .application_name(&app)
        .statement_timeout(Duration::from_millis(200));
    let engine = create_engine(db.url(), options).await.unwrap();
    // min_size connections are open (and idle) right after creation.
    let opened = PoolStatus {
        max_size: 4,
        size: 2,
        available: 2,
        waiting: 0,
    };
    assert_eq!(engine.pool_status(), opened);
    assert_eq!(common::session_states(&engine, &app).await.len(), 1);

    assert_eq!(setting(&engine, "application_name").await, app);
    assert_eq!(show_statement_timeout(&engine).await, "200ms");
    // The server enforces it: 57014 query_canceled.
    let slow = engine.status(diesel::sql_query("SELECT pg_sleep(5)")).await;
    assert_sqlstate(slow, "57014");
}

#[tokio::test]
async fn min_size_zero_opens_nothing_until_first_use() {
    let s = common::setup_with(EngineOptions::new().min_size(0)).await;
    assert_eq!(s.engine.pool_status().size, 0);
    backend_pid(&s.engine).await;
    assert_eq!(s.engine.pool_status().size, 1);
}

#[tokio::test]
async fn echo_can_be_set_in_the_url() {
    // What echo logs is checked in execution.rs; here only the switch.
    let s = common::setup().await;
    assert!(!s.engine.echo());
    let from_url = create_engine(
        &common::url_with(&s.db, "echo=true"),
        EngineOptions::new().min_size(0),
    )
    .await
    .unwrap();
    assert!(from_url.echo());
    from_url.set_echo(false);
    assert!(!from_url.echo());
}

#[tokio::test]
async fn malformed_urls_and_unknown_options_name_the_offending_part() {
    let db = TestDatabase::create().await;
    let good = db.url();
    let p = server_parts(&db);
    let cases = [
        ("mysql://localhost/db".to_owned(), "mysql"),
        ("alice:s3cret@localhost/db".to_owned(), "not a database URL"),
        (format!("postgres://{}:notaport/db", p.host), "notaport"),
        (format!("postgres://{}:99999/db", p.host), "99999"),
        (common::url_with(&db, "bogus_option=1"), "bogus_option"),
        (common::url_with(&db, "max_size=lots"), "max_size"),
        (
            common::url_with(&db, "statement_timeout=soon"),
            "statement_timeout",
        ),
        (common::url_with(&db, "min_size=5&max_size=2"), "min_size"),
        (common::url_with(&db, "flag"), "flag"),
        (format!("{good}%zz"), "percent"),
    ];
    for (url, offending) in cases {
        let message = configuration_message(create_engine(&url, EngineOptions::new()).await);
        assert!(
            message.contains(offending),
            "{url}: message {message:?} does not name {offending:?}"
        );
        assert!(!message.contains("s3cret"), "password shown: {message}");
    }
    let message = configuration_message(EngineOptions::new().set("pool_size", "3"));
    assert!(message.contains("pool_size"), "{message}");
    let zero = create_engine(good, EngineOptions::new().max_size(0)).await;
    assert!(configuration_message(zero).contains("max_size"));
    // A pool no server could fill sets aside memory for every slot: refused
    // (a billion aborted the process, out of memory).
    for huge in [1_000_000_000, usize::MAX] {
        let engine = create_engine(good, EngineOptions::new().max_size(huge)).await;
        assert!(configuration_message(engine).contains("max_connections"));
    }
    let url = format!(
        "{good}{}max_size=1000000000",
        if good.contains('?') { '&' } else { '?' }
    );
    assert!(
        configuration_message(create_engine(&url, EngineOptions::new()).await).contains("max_size")
    );
}

#[tokio::test]
async fn closed_engine_fails_with_pool_closed() {
    let s = common::setup().await;
    let lazy = s.engine.acquire().lazy(true).await.unwrap();
    s.engine.close().await;
    assert!(matches!(
        try_backend_pid(&s.engine).await,
        Err(Error::PoolClosed)
    ));
    assert!(matches!(s.engine.acquire().await, Err(Error::PoolClosed)));
    assert!(matches!(
        try_backend_pid(&lazy).await,
        Err(Error::PoolClosed)
    ));
    let db = Gino::secondary();
    db.set_bind(s.engine.clone()).await.unwrap();
    assert!(matches!(try_backend_pid(&db).await, Err(Error::PoolClosed)));
}

#[tokio::test]
async fn missing_database_is_sqlstate_3d000() {
    let url = gino_testkit::Server::get().url_for("gino_test_no_such_database");
    // With nothing to open at creation, creating succeeds ...
    let engine = create_engine(&url, EngineOptions::new().min_size(0))
        .await
        .unwrap();
    // ... and every borrow fails.
    assert_sqlstate(engine.acquire().await, "3D000");
    assert_sqlstate(try_backend_pid(&engine).await, "3D000");
    let lazy = engine.acquire().lazy(true).await.unwrap();
    assert_sqlstate(try_backend_pid(&lazy).await, "3D000");
    lazy.release().await.unwrap();
    // GINO's test_issue_79: a failed borrow leaves no connection behind.
    assert!(engine.current_connection().is_none());
    assert_sqlstate(engine.acquire().await, "3D000");
    assert!(engine.current_connection().is_none());
    // With the default min_size, creating opens a connection and fails.
    assert_sqlstate(create_engine(&url, EngineOptions::new()).await, "3D000");
}

#[tokio::test]
async fn unreachable_server_is_a_connection_error() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let assert_helpful = |result: gino::Result<_>| match result {
        Err(Error::Connection(message)) => {
            assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
            assert!(message.contains("PostgreSQL server running"), "{message}");
        }
        other => panic!("expected a connection error, got {other:?}"),
    };
    assert_helpful(create_engine(&url, EngineOptions::new()).await.map(drop));
    let engine = create_engine(&url, EngineOptions::new().min_size(0))
        .await
        .unwrap();
    assert_helpful(engine.acquire().await.map(drop));
}

/// Polls until `app` has `expected` sessions on the server; a closed
/// connection's backend exits a moment after the client hangs up.
async fn wait_for_sessions(monitor: &Engine, app: &str, expected: usize) {
    let mut seen = Vec::new();
    for _ in 0..100 {
        seen = common::session_states(monitor, app).await;
        if seen.len() == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("expected {expected} sessions of {app}, found {seen:?}");
}

#[tokio::test]
async fn without_pooling_every_acquire_opens_a_connection_and_release_closes_it() {
    let s = common::setup().await;
    let app = unique_app_name(&s.db, "unpooled");
    let options = EngineOptions::new().pool(false).application_name(&app);
    let engine = create_engine(s.db.url(), options).await.unwrap();
    // Nothing is opened at creation and there is no pool to report.
    assert_eq!(engine.pool_status().max_size, 0);
    wait_for_sessions(&s.engine, &app, 0).await;

    let a = engine.acquire().await.unwrap();
    let b = engine.acquire().await.unwrap();
    let (pid_a, pid_b) = (backend_pid(&a).await, backend_pid(&b).await);
    assert_ne!(pid_a, pid_b);
    wait_for_sessions(&s.engine, &app, 2).await;
    assert_eq!(engine.pool_status().size, 2, "open connections are counted");
    assert!(format!("{engine:?}").contains("size: 2"), "{engine:?}");

    a.release().await.unwrap();
    wait_for_sessions(&s.engine, &app, 1).await;
    assert_eq!(engine.pool_status().size, 1);
    drop(b);
    wait_for_sessions(&s.engine, &app, 0).await;
    assert_eq!(engine.pool_status().size, 0);

    // Nothing is kept for the next acquire either.
    let c = engine.acquire().reusable(false).await.unwrap();
    let pid_c = backend_pid(&c).await;
    assert!(pid_c != pid_a && pid_c != pid_b);
    c.release().await.unwrap();
    let once = backend_pid(&engine).await;
    assert_ne!(backend_pid(&engine).await, once);
    wait_for_sessions(&s.engine, &app, 0).await;

    engine.close().await;
    assert!(matches!(engine.acquire().await, Err(Error::PoolClosed)));
}

#[tokio::test]
async fn exhausted_pool_acquire_fails_after_its_timeout() {
    let s = common::setup_with(EngineOptions::new().max_size(1)).await;
    let holder = s.engine.acquire().await.unwrap();
    let wait = Duration::from_millis(50);
    let started = tokio::time::Instant::now();
    assert_pool_timeout(s.engine.acquire().timeout(wait).await, wait);
    assert!(started.elapsed() >= wait);
    assert_eq!(s.engine.pool_status().waiting, 0);
    drop(holder);
    s.engine.acquire().timeout(wait).await.unwrap();
}

#[tokio::test]
async fn engine_acquire_timeout_bounds_acquires_and_implicit_queries() {
    let wait = Duration::from_millis(50);
    let options = EngineOptions::new().max_size(1).acquire_timeout(wait);
    let s = common::setup_with(options).await;
    // Not reusable, so that implicit queries cannot run on it.
    let holder = s.engine.acquire().reusable(false).await.unwrap();
    assert_pool_timeout(s.engine.acquire().await, wait);
    assert_pool_timeout(try_backend_pid(&s.engine).await, wait);
    // A lazy connection's first query waits as long as its acquire allows.
    let lazy = s.engine.acquire().lazy(true).await.unwrap();
    assert_pool_timeout(try_backend_pid(&lazy).await, wait);
    // A per-acquire timeout overrides the engine's.
    let longer = Duration::from_millis(120);
    assert_pool_timeout(s.engine.acquire().timeout(longer).await, longer);
    drop(holder);
    backend_pid(&lazy).await;
}

/// With an acquire timeout, a free connection is taken at once and a
/// checkout that finds none waits its turn: the connection given back goes
/// to the checkout queued first, not to one that arrives after it.
#[tokio::test]
async fn checkouts_with_an_acquire_timeout_wait_their_turn() {
    let options = EngineOptions::new()
        .max_size(1)
        .acquire_timeout(Duration::from_secs(10));
    let s = common::setup_with(options).await;
    let holder = s.engine.acquire().reusable(false).await.unwrap();
    let held_pid = backend_pid(&holder).await;
    let engine = s.engine.clone();
    let first = tokio::spawn(async move {
        let conn = engine.acquire().reusable(false).await.unwrap();
        let pid = backend_pid(&conn).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        pid
    });
    while s.engine.pool_status().waiting == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    drop(holder);
    // Arrives after `first` queued: waits behind it, and gives up first.
    let late = Duration::from_millis(50);
    assert_pool_timeout(s.engine.acquire().timeout(late).await, late);
    assert_eq!(first.await.unwrap(), held_pid);
    assert_eq!(backend_pid(&s.engine).await, held_pid);
}

/// A lazy connection's query while the pool's only connection is held:
/// the query's timeout (from `per_query`, or the engine's `timeout`
/// option) counts the wait for the pool.
async fn lazy_query_times_out_waiting_for_the_pool(
    options: EngineOptions,
    per_query: Option<Duration>,
    expected: Duration,
) {
    let s = common::setup_with(options.max_size(1)).await;
    let holder = s.engine.acquire().reusable(false).await.unwrap();
    let lazy = s.engine.acquire().lazy(true).await.unwrap();
    let query = pid_query().gino().bind(&lazy);
    let query = match per_query {
        Some(timeout) => query.timeout(timeout),
        None => query,
    };
    let started = tokio::time::Instant::now();
    let result: gino::Result<i32> = query.one().await;
    assert!(
        matches!(result, Err(Error::QueryTimeout(t)) if t == expected),
        "expected QueryTimeout({expected:?}), got {result:?}"
    );
    assert!(started.elapsed() >= expected);
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(!lazy.has_raw_connection().await);
    drop(holder);
    backend_pid(&lazy).await;
}

#[tokio::test]
async fn lazy_query_timeout_counts_the_wait_for_the_pool() {
    let timeout = Duration::from_millis(100);
    lazy_query_times_out_waiting_for_the_pool(EngineOptions::new(), Some(timeout), timeout).await;
}

#[tokio::test]
async fn engine_default_timeout_counts_the_wait_for_the_pool() {
    let timeout = Duration::from_millis(100);
    let options = EngineOptions::new().timeout(timeout);
    lazy_query_times_out_waiting_for_the_pool(options, None, timeout).await;
}

/// GINO's `engine.update_execution_options(timeout=...)`: the engine's
/// default timeout changed at run time applies to the queries started
/// after, pooled or on a held connection; a query's own timeout still
/// wins, and `None` takes the limit away again.
#[tokio::test]
async fn the_engine_default_timeout_can_change_at_run_time() {
    let s = common::setup().await;
    let nap = |secs: f64| gino::text(format!("SELECT pg_sleep({secs})"));
    let short = Duration::from_millis(100);
    assert_eq!(s.engine.timeout(), None);
    s.engine.status(nap(0.3)).await.expect("no limit yet");

    s.engine.set_timeout(Some(short));
    assert_eq!(s.engine.timeout(), Some(short));
    let pooled = s.engine.status(nap(5.0)).await;
    assert!(
        matches!(pooled, Err(Error::QueryTimeout(t)) if t == short),
        "{pooled:?}"
    );
    let held = s.engine.acquire().await.unwrap();
    let on_held = nap(5.0).gino().bind(&held).status().await;
    assert!(
        matches!(on_held, Err(Error::QueryTimeout(t)) if t == short),
        "{on_held:?}"
    );
    // The connection was kept and cleaned up: it still answers.
    backend_pid(&held).await;
    let own = nap(0.3)
        .gino()
        .bind(&held)
        .timeout(Duration::from_secs(5))
        .status()
        .await;
    own.expect("a query's own timeout wins over the engine's");
    drop(held);

    s.engine.set_timeout(None);
    s.engine
        .status(nap(0.3))
        .await
        .expect("the limit is gone again");
    common::assert_pool_clean(&s.engine).await;
}

/// GINO's test_lazy: a lazy connection released while its first query
/// still waits for the pool. The release waits for that borrow to end, so
/// it can never return the connection under a running query nor leave the
/// borrowed one behind.
async fn release_while_the_first_query_waits_for_the_pool(options: EngineOptions) -> Error {
    let s = common::setup_with(options.max_size(1)).await;
    let holder = s.engine.acquire().reusable(false).await.unwrap();
    let lazy = s.engine.acquire().lazy(true).await.unwrap();
    let query = async {
        let result: gino::Result<i32> = pid_query()
            .gino()
            .bind(&lazy)
            .timeout(Duration::from_millis(100))
            .one()
            .await;
        result
    };
    let release = async {
        // Let the query start waiting first.
        tokio::time::sleep(Duration::from_millis(20)).await;
        lazy.release().await
    };
    let (queried, released) = tokio::time::timeout(Duration::from_secs(5), async {
        tokio::join!(query, release)
    })
    .await
    .expect("release must not hang on a borrow that fails");
    released.expect("release after a failed borrow succeeds");
    assert!(!lazy.has_raw_connection().await);
    assert!(matches!(
        lazy.release().await,
        Err(Error::ConnectionReleased)
    ));
    assert_eq!(
        s.engine.pool_status().available,
        0,
        "the holder still has it"
    );
    drop(holder);
    // The pool's only connection is free again: nothing was kept.
    common::borrow_free(&s.engine, "the released lazy connection kept nothing").await;
    queried.expect_err("the pool stayed busy for longer than the query may wait")
}

#[tokio::test]
async fn releasing_a_lazy_connection_while_its_query_times_out_on_the_pool() {
    let error = release_while_the_first_query_waits_for_the_pool(EngineOptions::new()).await;
    assert!(matches!(error, Error::QueryTimeout(_)), "{error:?}");
}

#[tokio::test]
async fn releasing_a_lazy_connection_while_its_borrow_fails() {
    let options = EngineOptions::new().acquire_timeout(Duration::from_millis(50));
    let error = release_while_the_first_query_waits_for_the_pool(options).await;
    assert!(matches!(error, Error::PoolTimeout(_)), "{error:?}");
}

#[tokio::test]
async fn releasing_a_lazy_connection_while_its_query_waits_runs_the_query_first() {
    let s = common::setup_with(EngineOptions::new().max_size(1)).await;
    let holder = s.engine.acquire().reusable(false).await.unwrap();
    let holder_pid = backend_pid(&holder).await;
    let lazy = s.engine.acquire().lazy(true).await.unwrap();
    let query = async { backend_pid(&lazy).await };
    let release = async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        lazy.release().await
    };
    let free_the_pool = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        holder.release().await.unwrap();
    };
    let (pid, released, ()) = tokio::time::timeout(Duration::from_secs(5), async {
        tokio::join!(query, release, free_the_pool)
    })
    .await
    .expect("no deadlock");
    assert_eq!(pid, holder_pid, "the query got the pool's only connection");
    released.unwrap();
    assert_eq!(s.engine.pool_status().available, 1, "and it went back");
}

#[tokio::test]
async fn set_bind_accepts_a_url_an_engine_or_a_url_with_options() {
    let s = common::setup().await;
    let db = Gino::secondary();
    assert!(!db.is_bound());
    assert!(db.pop_bind().is_none());

    let from_url = db.set_bind(s.db.url()).await.unwrap();
    assert!(db.is_bound());
    assert_eq!(backend_pid(&db).await, backend_pid(&from_url).await);
    let popped = db.pop_bind().expect("bound");
    assert!(!db.is_bound());
    // pop_bind hands the engine over; it is not closed.
    backend_pid(&popped).await;
    popped.close().await;

    db.set_bind(s.engine.clone()).await.unwrap();
    let conn = s.engine.acquire().await.unwrap();
    // Same engine, so the db finds the engine's contextual connection.
    assert_eq!(backend_pid(&db).await, backend_pid(&conn).await);
    drop(conn);

    // Binding again replaces the engine.
    let options = EngineOptions::new().max_size(2).min_size(0);
    let with_options = db.set_bind((s.db.url(), options)).await.unwrap();
    assert_eq!(db.engine().unwrap().pool_status().max_size, 2);
    backend_pid(&db).await;
    assert_eq!(with_options.pool_status().size, 1);
    db.pop_bind().unwrap().close().await;
    assert!(db.pop_bind().is_none());
}

#[tokio::test]
async fn with_bind_unbinds_and_closes_after_ok_and_after_err() {
    let s = common::setup().await;
    let db = Gino::secondary();

    let engine = db
        .with_bind(s.db.url(), |engine| async {
            assert!(db.is_bound());
            backend_pid(&db).await;
            Ok::<_, Error>(engine)
        })
        .await
        .unwrap();
    assert!(!db.is_bound());
    assert!(matches!(
        try_backend_pid(&engine).await,
        Err(Error::PoolClosed)
    ));

    let kept = Mutex::new(None);
    let failed = db
        .with_bind(s.db.url(), |engine| {
            *kept.lock().unwrap() = Some(engine);
            async {
                backend_pid(&db).await;
                Err::<(), _>(Error::NoSuchRow)
            }
        })
        .await;
    assert!(matches!(failed, Err(Error::NoSuchRow)));
    assert!(!db.is_bound());
    let engine = kept.lock().unwrap().take().unwrap();
    assert!(matches!(
        try_backend_pid(&engine).await,
        Err(Error::PoolClosed)
    ));

    // A URL that fails leaves the db unbound and never runs the scope.
    let bad = db
        .with_bind("postgres://localhost/db?bogus=1", |_| async {
            Ok::<_, Error>("the scope ran")
        })
        .await;
    assert!(matches!(bad, Err(Error::Configuration(_))));
    assert!(!db.is_bound());
}

/// Two `with_bind` scopes of one database overlapping: the one that ends
/// first closes its own engine and leaves the other's bound.
#[tokio::test]
async fn with_bind_ends_its_own_engine_not_the_one_bound_after_it() {
    let s = common::setup().await;
    let db = Gino::secondary();
    let (a_bound, b_bound, a_done) = (
        tokio::sync::Notify::new(),
        tokio::sync::Notify::new(),
        tokio::sync::Notify::new(),
    );
    let first = async {
        let engine = db
            .with_bind(s.db.url(), |engine| async {
                a_bound.notify_one();
                b_bound.notified().await;
                Ok::<_, Error>(engine)
            })
            .await;
        a_done.notify_one();
        engine
    };
    let second = async {
        a_bound.notified().await;
        db.with_bind(s.db.url(), |engine| async {
            b_bound.notify_one();
            a_done.notified().await;
            try_backend_pid(&db).await?;
            Ok::<_, Error>(engine)
        })
        .await
    };
    let (first, second) = tokio::join!(first, second);
    let (first, second) = (
        first.unwrap(),
        second.expect("the second bind outlives the first scope"),
    );
    for engine in [first, second] {
        assert!(matches!(
            try_backend_pid(&engine).await,
            Err(Error::PoolClosed)
        ));
    }
    assert!(!db.is_bound());
}

#[tokio::test]
async fn unbound_gino_fails_with_uninitialized() {
    let s = common::setup().await;
    let db = Gino::secondary();
    // Never bound, and bound then unbound: the same, and nothing panics.
    for round in 0..2 {
        assert_uninitialized(try_backend_pid(&db).await);
        assert_uninitialized(db.all::<i32, _>(pid_query()).await);
        assert_uninitialized(db.acquire().await);
        assert_uninitialized(db.transaction(async { Ok::<_, Error>(()) }).await);
        assert_uninitialized(db.begin().await);
        assert_uninitialized(db.engine());
        assert!(db.current_connection().is_none());
        if round == 0 {
            db.set_bind(s.engine.clone()).await.unwrap();
            backend_pid(&db).await;
            db.pop_bind();
        }
    }
    // A contextual connection of some engine does not make it bound.
    let _conn = s.engine.acquire().await.unwrap();
    assert_uninitialized(try_backend_pid(&db).await);
}

/// The one test of this file that binds a default `Gino` (`Gino::new()`):
/// `.gino()` without `bind` falls back to the newest bound default, which
/// is process-wide, so no other test here may touch it.
#[tokio::test]
async fn gino_query_falls_back_to_the_default_database() {
    static DB: Gino = Gino::new();
    let s = common::setup().await;
    let implicit = || async { pid_query().gino().one::<i32>().await };
    assert_uninitialized(implicit().await);

    let engine = DB.set_bind(s.engine.clone()).await.unwrap();
    implicit().await.unwrap();
    // It runs on the default engine's contextual connection when there is one.
    let conn = engine.acquire().await.unwrap();
    assert_eq!(implicit().await.unwrap(), backend_pid(&conn).await);
    drop(conn);

    // A secondary database is never the fallback.
    let secondary = Gino::secondary();
    secondary.set_bind(s.engine.clone()).await.unwrap();
    DB.pop_bind();
    assert_uninitialized(implicit().await);
}

#[tokio::test]
async fn on_connect_runs_on_every_new_connection_and_refuses_bad_ones() {
    use diesel::dsl::sql;
    use diesel::sql_types::Text;
    use diesel_async::SimpleAsyncConnection;
    let s = common::setup().await;
    // With an isolation level too, both apply (GINO's test_init_hooks,
    // READ_UNCOMMITTED as GINO spells it).
    let options = EngineOptions::new()
        .max_size(3)
        .min_size(2)
        .set("isolation_level", "READ_UNCOMMITTED")
        .unwrap()
        .on_connect(|conn| {
            Box::pin(async move { conn.batch_execute("SET search_path TO app, public").await })
        });
    let engine = create_engine(s.db.url(), options).await.unwrap();
    let conns: Vec<_> = futures_util::future::join_all(
        (0..3).map(|_| std::future::IntoFuture::into_future(engine.acquire())),
    )
    .await
    .into_iter()
    .map(Result::unwrap)
    .collect();
    for conn in &conns {
        let settings: (String, String) = conn
            .one(diesel::select((
                sql::<Text>("current_setting('search_path')"),
                sql::<Text>("current_setting('transaction_isolation')"),
            )))
            .await
            .unwrap();
        assert_eq!(settings, ("app, public".into(), "read uncommitted".into()));
    }
    drop(conns);
    engine.close().await;

    let failing = create_engine(
        s.db.url(),
        EngineOptions::new().on_connect(|conn| {
            Box::pin(async move { conn.batch_execute("SELECT no_such_function()").await })
        }),
    )
    .await
    .unwrap_err();
    let message = failing.to_string();
    assert!(
        message.contains("on_connect") && message.contains("no_such_function"),
        "{message}"
    );

    let leaves_tx_open = create_engine(
        s.db.url(),
        EngineOptions::new()
            .on_connect(|conn| Box::pin(async move { conn.batch_execute("BEGIN").await })),
    )
    .await
    .unwrap_err();
    assert!(
        leaves_tx_open
            .to_string()
            .contains("left a transaction open"),
        "{leaves_tx_open}"
    );
}

#[test]
fn an_engine_outlives_the_runtime_that_made_it() {
    use diesel::dsl::sql;
    use diesel::sql_types::Integer;
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    };
    let first = runtime();
    let (database, engine) = first.block_on(async {
        let database = gino_testkit::TestDatabase::create().await;
        let engine = create_engine(database.url(), EngineOptions::new().min_size(1))
            .await
            .unwrap();
        (database, engine)
    });
    // Its tasks, the drivers of the connections it opened, end with it.
    drop(first);
    let second = runtime();
    second.block_on(async {
        for _ in 0..3 {
            let n: i32 = engine
                .one(diesel::select(sql::<Integer>("1")))
                .await
                .expect("a connection driven by the runtime that is left");
            assert_eq!(n, 1);
        }
        engine.close().await;
    });
    drop(database);
}

#[tokio::test]
async fn duration_max_means_no_limit_rather_than_a_panic() {
    let s = common::setup_with(EngineOptions::new().timeout(Duration::MAX)).await;
    // The engine's default, a query's own, and an acquire's: none overflows
    // the clock when added to it.
    try_backend_pid(&s.engine).await.unwrap();
    let n: i32 = diesel::select(sql::<diesel::sql_types::Integer>("7"))
        .gino()
        .bind(&s.engine)
        .timeout(Duration::MAX)
        .one()
        .await
        .unwrap();
    assert_eq!(n, 7);
    let conn = s.engine.acquire().timeout(Duration::MAX).await.unwrap();
    conn.release().await.unwrap();
    assert!(s.engine.close_gracefully(Duration::MAX).await);
}

#[tokio::test]
async fn inactive_connections_are_closed_down_to_min_size() {
    // asyncpg's (and so GINO's) max_inactive_connection_lifetime.
    let s = common::setup_with(
        EngineOptions::new()
            .min_size(1)
            .max_inactive_connection_lifetime(Duration::from_millis(200)),
    )
    .await;
    let e = &s.engine;
    let held = futures_util::future::try_join_all((0..3).map(|_| e.acquire().into_future()))
        .await
        .unwrap();
    drop(held);
    assert_eq!(e.pool_status().size, 3);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(e.pool_status().size, 1, "min_size stays open");
    // A borrow after the sweep opens what it needs again.
    assert!(backend_pid(e).await > 0);

    // `0` in the URL keeps idle connections open for good.
    let kept = create_engine(
        &common::url_with(&s.db, "max_inactive_connection_lifetime=0&min_size=0"),
        EngineOptions::new().max_inactive_connection_lifetime(Duration::from_millis(50)),
    )
    .await
    .unwrap();
    drop(kept.acquire().await.unwrap());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(kept.pool_status().size, 1);
    kept.close().await;
}

/// Asserts that `create_engine` refuses `options` on `url` at once, with
/// a configuration error that says `needle` (a creation that waited would
/// have waited for ever).
async fn assert_refused(url: &str, options: EngineOptions, needle: &str) {
    let made = tokio::time::timeout(Duration::from_secs(10), create_engine(url, options))
        .await
        .expect("creation waited instead of refusing");
    let err = made.map(drop).expect_err("refused");
    assert!(
        matches!(&err, Error::Configuration(m) if m.contains(needle)),
        "{err:?}"
    );
}

/// A pool kept at more connections than its budget allows could never be
/// filled: refused at once, not a creation waiting for ever.
#[tokio::test]
async fn a_min_size_over_the_connection_budget_is_refused() {
    let db = gino_testkit::TestDatabase::create().await;
    let options = EngineOptions::new()
        .min_size(3)
        .connection_budget(gino::ConnectionBudget::new(2));
    assert_refused(db.url(), options, "min_size").await;
}

/// A budget of no connections would make every borrow wait for ever (with
/// no `acquire_timeout`): refused when the engine is made.
#[tokio::test]
async fn a_connection_budget_of_zero_is_refused() {
    let db = gino_testkit::TestDatabase::create().await;
    let options = EngineOptions::new()
        .min_size(0)
        .connection_budget(gino::ConnectionBudget::new(0));
    let needle = "give ConnectionBudget::new a limit of at least 1";
    assert_refused(db.url(), options, needle).await;
}

/// A server that accepts connections and never answers: its URL, and the
/// task holding the connections (abort it to close them).
async fn silent_server() -> (String, tokio::task::JoinHandle<()>) {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("postgres://nobody@{}/nothing", silent.local_addr().unwrap());
    let accepted = tokio::spawn(async move {
        let mut kept = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            kept.push(socket);
        }
    });
    (url, accepted)
}

/// A server that accepts and never answers: opening a connection counts
/// against the wait for one (`acquire_timeout`), pooled or not, as
/// asyncpg's `acquire(timeout=)` covers connecting.
#[tokio::test]
async fn acquire_timeout_bounds_opening_a_connection_too() {
    let (url, accepted) = silent_server().await;
    let limit = Duration::from_millis(200);
    for pooled in [true, false] {
        let options = EngineOptions::new()
            .min_size(0)
            .pool(pooled)
            .acquire_timeout(limit);
        let engine = create_engine(&url, options).await.unwrap();
        let acquired = tokio::time::timeout(Duration::from_secs(10), engine.acquire())
            .await
            .unwrap_or_else(|_| panic!("pooled {pooled}: hung opening a connection"));
        let err = acquired.expect_err("no server answered");
        assert!(
            matches!(err, Error::PoolTimeout(t) if t == limit),
            "{err:?}"
        );
        engine.close().await;
    }
    accepted.abort();
}

/// Opening the first connections at start-up is bounded as every other
/// opening: a server that accepts and never answers fails `create_engine`
/// after `acquire_timeout` instead of hanging it.
#[tokio::test]
async fn start_up_connections_are_bounded_by_the_acquire_timeout() {
    let (url, accepted) = silent_server().await;
    let limit = Duration::from_millis(200);
    let options = EngineOptions::new().min_size(2).acquire_timeout(limit);
    let created = tokio::time::timeout(Duration::from_secs(10), create_engine(&url, options))
        .await
        .expect("create_engine hung on a silent server");
    assert!(
        matches!(created, Err(Error::PoolTimeout(t)) if t == limit),
        "{:?}",
        created.map(|_| ())
    );
    accepted.abort();
}

/// No connection could be opened within a zero acquire timeout: refused,
/// as a zero `timeout` is.
#[tokio::test]
async fn a_zero_acquire_timeout_is_refused() {
    let db = gino_testkit::TestDatabase::create().await;
    let zero = EngineOptions::new().acquire_timeout(Duration::ZERO);
    assert_refused(db.url(), zero, "acquire_timeout").await;
    let url = common::url_with(&db, "acquire_timeout=0");
    assert_refused(&url, EngineOptions::new(), "acquire_timeout").await;
}

/// A connection held a long while and then given back has been idle only
/// since then: idle-closing counts from its return, not its checkout.
#[tokio::test]
async fn idle_time_counts_from_the_connections_return() {
    let s = common::setup_with(EngineOptions::new().min_size(0)).await;
    let e = &s.engine;
    let held = e.acquire().await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    held.release().await.unwrap();
    assert_eq!(e.close_idle(Duration::from_millis(400)), 0, "just back");
    assert_eq!(e.pool_status().size, 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(e.close_idle(Duration::from_millis(400)), 1, "idle since");
    assert_eq!(e.pool_status().size, 0);
}

/// A borrow waiting for the pool when a graceful close begins gets
/// `PoolClosed`, not the connection given back meanwhile: from the start
/// no borrow succeeds, as the close counts only what is borrowed.
#[tokio::test]
async fn a_borrow_waiting_when_a_graceful_close_begins_gets_nothing() {
    let s = common::setup_with(EngineOptions::new().min_size(0).max_size(1)).await;
    let engine = s.engine.clone();
    let held = engine.acquire().await.unwrap();
    let waiter = tokio::spawn({
        let engine = engine.clone();
        async move { engine.acquire().await.map(drop) }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let closing = tokio::spawn({
        let engine = engine.clone();
        async move { engine.close_gracefully(Duration::from_secs(5)).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    held.release().await.unwrap();
    let waited = waiter.await.unwrap();
    assert!(matches!(waited, Err(Error::PoolClosed)), "{waited:?}");
    assert!(closing.await.unwrap(), "every connection came back");
}

/// A replica that is no standby (here the primary itself) is found out by
/// the first check: its lag cannot be measured and it refuses no write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_is_no_standby_is_reported() {
    let db = gino_testkit::TestDatabase::create().await;
    let engine = create_engine(
        db.url(),
        EngineOptions::new()
            .replica(db.url())
            .replica_check_interval(Duration::from_millis(50)),
    )
    .await
    .unwrap();
    assert!(
        engine.routing().unwrap().replicas[0].standby,
        "not checked yet"
    );
    common::eventually("the check found it no standby", || async {
        !engine.routing().unwrap().replicas[0].standby
    })
    .await;
    assert!(engine.routing().unwrap().replicas[0].in_rotation);
    engine.close().await;
}
